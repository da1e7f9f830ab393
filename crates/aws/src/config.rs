//! Configuration a Lambda's main reads once.

use aws_config::{BehaviorVersion, SdkConfig};

/// The SDK configuration from the environment: region, credentials, and endpoint overrides
/// (`AWS_ENDPOINT_URL`, `AWS_ENDPOINT_URL_<SERVICE>`), so a local stack can point every client
/// at moto.
pub async fn load_config() -> SdkConfig {
    aws_config::defaults(BehaviorVersion::latest()).load().await
}

/// A required environment variable is missing or empty.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0} is not set: the function's template sets it")]
pub struct MissingEnv(pub String);

/// Reads a required environment variable (`TABLE_NAME`, `STATE_MACHINE_ARN`, ...).
pub fn required_env(name: &str) -> Result<String, MissingEnv> {
    match std::env::var(name) {
        Ok(v) if !v.trim().is_empty() => Ok(v),
        _ => Err(MissingEnv(name.to_owned())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn missing_variable_names_itself() {
        let err = required_env("RM_AWS_SURELY_UNSET_VARIABLE").unwrap_err();
        assert_eq!(
            err.to_string(),
            "RM_AWS_SURELY_UNSET_VARIABLE is not set: the function's template sets it"
        );
    }
}

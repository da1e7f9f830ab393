//! Configuration a Lambda's main reads once.

use aws_config::timeout::TimeoutConfig;
use aws_config::{BehaviorVersion, SdkConfig};
use std::time::Duration;

// SDK timeouts (issue 9, fault 6: "SDK calls have operation timeouts well inside the Lambda
// timeout"). Without them a call to an endpoint that accepts the connection and never answers
// waits until the Lambda itself is killed (template.yaml: 30 to 120 s per function, 25 s for the
// API, inside API Gateway's 29 s), and a killed Lambda answers nothing: no error of ours in the
// logs, the task fails as Lambda.Unknown, the API caller gets a 504. With them, the call fails
// as a Transient PortError, which the handler turns into its retryable error, and the function
// still has time left to say so.
//
// - connect 3 s: a TCP + TLS handshake to a regional endpoint takes milliseconds; 3 s covers a
//   lost SYN retransmitted once (the first retransmission fires after 1 s).
// - attempt 5 s: every call we make is a small control-plane request (one item, one page of 100
//   executions, one task token) that AWS answers in well under a second, even slowed down; an
//   attempt still unanswered after 5 s is hung, and the next attempt (the SDK's standard retry:
//   3 attempts with backoff) goes on a fresh connection.
// - operation 12 s: all attempts of one call, backoff included. A function that makes a few
//   sequential calls, one of them hung, still ends well inside its timeout: the API (25 s) can
//   spend 12 s on a hung call and answer its error with 13 s to spare; the 30 s functions have
//   time to record what they learned before the one slow call.

/// Connection timeout of every SDK call (TCP connect and TLS handshake).
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(3);
/// Timeout of one attempt of an SDK call (one HTTP request, answer read).
pub const ATTEMPT_TIMEOUT: Duration = Duration::from_secs(5);
/// Timeout of a whole SDK call, all attempts and their backoff included.
pub const OPERATION_TIMEOUT: Duration = Duration::from_secs(12);

/// The timeouts every client of a Lambda uses: [`CONNECT_TIMEOUT`], [`ATTEMPT_TIMEOUT`],
/// [`OPERATION_TIMEOUT`].
pub fn timeout_config() -> TimeoutConfig {
    timeouts(CONNECT_TIMEOUT, ATTEMPT_TIMEOUT, OPERATION_TIMEOUT)
}

/// A timeout configuration with these durations (tests use short ones).
pub fn timeouts(connect: Duration, attempt: Duration, operation: Duration) -> TimeoutConfig {
    TimeoutConfig::builder()
        .connect_timeout(connect)
        .operation_attempt_timeout(attempt)
        .operation_timeout(operation)
        .build()
}

/// The SDK configuration from the environment: region, credentials, and endpoint overrides
/// (`AWS_ENDPOINT_URL`, `AWS_ENDPOINT_URL_<SERVICE>`), so a local stack can point every client
/// at moto; with [`timeout_config`]'s timeouts, so no call outlives its Lambda.
pub async fn load_config() -> SdkConfig {
    loader().load().await
}

/// What [`load_config`] loads.
fn loader() -> aws_config::ConfigLoader {
    aws_config::defaults(BehaviorVersion::latest()).timeout_config(timeout_config())
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

    #[tokio::test]
    async fn loaded_config_has_the_timeouts() {
        // load_config's loader, without the host's environment (no IMDS lookup of a region).
        let config = loader()
            .empty_test_environment()
            .region(aws_config::Region::new("us-east-1"))
            .load()
            .await;
        let timeouts = config.timeout_config().expect("load_config sets timeouts");
        assert_eq!(timeouts.connect_timeout(), Some(CONNECT_TIMEOUT));
        assert_eq!(timeouts.operation_attempt_timeout(), Some(ATTEMPT_TIMEOUT));
        assert_eq!(timeouts.operation_timeout(), Some(OPERATION_TIMEOUT));
        assert!(
            ATTEMPT_TIMEOUT < OPERATION_TIMEOUT && OPERATION_TIMEOUT < Duration::from_secs(25),
            "an operation ends inside the shortest Lambda timeout (the API's 25 s)"
        );
    }

    #[test]
    fn missing_variable_names_itself() {
        let err = required_env("RM_AWS_SURELY_UNSET_VARIABLE").unwrap_err();
        assert_eq!(
            err.to_string(),
            "RM_AWS_SURELY_UNSET_VARIABLE is not set: the function's template sets it"
        );
    }
}

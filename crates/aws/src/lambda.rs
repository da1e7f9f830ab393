//! A Lambda `main` in one call: [`serve_task`] builds the AWS ports once and hands every
//! invocation to core's one dispatch ([`rm_core::handlers::dispatch`]), the same code the
//! local runner calls. [`LambdaError`]: a task's error as the Lambda runtime reports it, so
//! the state machine's Retry and Catch match on `errorType` (`Throttled`, `Transient`,
//! `ManifestInvalid`, ...).

use crate::{
    required_env, AwsHealth, CloudWatchAlarms, CodePipelineClient, DynamoStore, EventBridgeBus,
    SfnExecutions, SfnTaskTokens,
};
use aws_config::SdkConfig;
use lambda_runtime::{service_fn, Diagnostic, LambdaEvent};
use rm_core::error::{PortError, TaskError};
use rm_core::handlers::{dispatch, Function, TaskPorts};
use rm_core::ports::{ManifestSource, Sensors, SourceError, SystemClock};
use serde_json::Value;
use std::fmt;

/// Serves `function` of the release state machine: builds its AWS ports once (the manifest
/// source with `source`, so only check-manifest links S3), then answers every invocation with
/// [`dispatch`].
pub async fn serve_task<S: ManifestSource + 'static>(
    function: Function,
    source: impl FnOnce(&SdkConfig) -> S,
) -> Result<(), lambda_runtime::Error> {
    lambda_runtime::tracing::init_default_subscriber();
    let config = crate::load_config().await;
    let store = DynamoStore::new(
        aws_sdk_dynamodb::Client::new(&config),
        required_env("TABLE_NAME")?,
    );
    let pipelines = CodePipelineClient::new(aws_sdk_codepipeline::Client::new(&config));
    let sfn = aws_sdk_sfn::Client::new(&config);
    let tokens = SfnTaskTokens::new(sfn.clone());
    let executions = SfnExecutions::new(sfn, required_env("STATE_MACHINE_ARN")?);
    let bus = EventBridgeBus::from_env(aws_sdk_eventbridge::Client::new(&config));
    let source = source(&config);
    // The gates' sensors, built once (as the health gate does): Health asks its own endpoint.
    let alarms = CloudWatchAlarms::new(aws_sdk_cloudwatch::Client::new(&config));
    let health = AwsHealth::from_config(&config);
    let ports = &TaskPorts {
        sensors: Sensors {
            alarms: &alarms,
            health: &health,
        },
        store: &store,
        pipelines: &pipelines,
        tokens: &tokens,
        executions: &executions,
        source: &source,
        bus: &bus,
        clock: &SystemClock,
    };
    lambda_runtime::run(service_fn(move |event: LambdaEvent<Value>| async move {
        dispatch(function, event.payload, ports)
            .await
            .map_err(LambdaError::from)
    }))
    .await
}

/// The manifest source of a function that reads no manifests (all but check-manifest).
pub fn no_manifests(_: &SdkConfig) -> NoManifests {
    NoManifests
}

/// A [`ManifestSource`] that has none: only CheckManifest reads manifests.
pub struct NoManifests;

#[async_trait::async_trait]
impl ManifestSource for NoManifests {
    async fn read(
        &self,
        bucket: &str,
        key: &str,
        _version_id: Option<&str>,
        _max_bytes: usize,
    ) -> Result<Vec<u8>, SourceError> {
        Err(SourceError::Port(PortError::Other(format!(
            "this function reads no manifests (asked for s3://{bucket}/{key}): only check-manifest does"
        ))))
    }
}

/// A handler's error: wraps core's [`TaskError`]; its `errorType` is
/// [`TaskError::error_type`] and its `errorMessage` the error's text.
#[derive(Debug)]
pub struct LambdaError(pub TaskError);

impl LambdaError {
    pub fn error_type(&self) -> &'static str {
        self.0.error_type()
    }
}

impl fmt::Display for LambdaError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

impl std::error::Error for LambdaError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        Some(&self.0)
    }
}

impl From<TaskError> for LambdaError {
    fn from(e: TaskError) -> Self {
        Self(e)
    }
}

impl From<PortError> for LambdaError {
    fn from(e: PortError) -> Self {
        Self(e.into())
    }
}

impl From<LambdaError> for Diagnostic {
    fn from(e: LambdaError) -> Diagnostic {
        Diagnostic {
            error_type: e.error_type().to_owned(),
            error_message: e.0.to_string(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn error_type_is_the_task_error_kind() {
        let d: Diagnostic = LambdaError(TaskError::Throttled("slow down".into())).into();
        assert_eq!(d.error_type, "Throttled");
        assert_eq!(d.error_message, "throttled: slow down");
        let d: Diagnostic = LambdaError::from(PortError::ConditionFailed("race".into())).into();
        assert_eq!(d.error_type, "Transient");
        let d: Diagnostic = LambdaError(TaskError::PipelineNotStartable("x".into())).into();
        assert_eq!(d.error_type, "PipelineNotStartable");
    }
}

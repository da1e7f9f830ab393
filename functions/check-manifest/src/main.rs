use check_manifest::{handle, Ports};
use lambda_runtime::{service_fn, LambdaEvent};
use rm_aws::{required_env, CodePipelineClient, DynamoStore, LambdaError, S3ManifestSource};
use rm_core::ports::SystemClock;
use serde_json::Value;

#[tokio::main]
async fn main() -> Result<(), lambda_runtime::Error> {
    lambda_runtime::tracing::init_default_subscriber();
    let config = rm_aws::load_config().await;
    let store = DynamoStore::new(
        aws_sdk_dynamodb::Client::new(&config),
        required_env("TABLE_NAME")?,
    );
    let pipelines = CodePipelineClient::new(aws_sdk_codepipeline::Client::new(&config));
    let source = S3ManifestSource::new(aws_sdk_s3::Client::new(&config));
    let ports = &Ports {
        store: &store,
        pipelines: &pipelines,
        source: &source,
        clock: &SystemClock,
    };
    lambda_runtime::run(service_fn(move |event: LambdaEvent<Value>| async move {
        handle(event.payload, ports)
            .await
            .map_err(LambdaError::from)
    }))
    .await
}

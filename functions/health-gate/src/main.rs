use lambda_runtime::{service_fn, LambdaEvent};
use rm_aws::{AwsHealth, CloudWatchAlarms, CodePipelineJobs, DynamoStore, LambdaError};
use rm_core::handlers::health_gate::handle;
use rm_core::ports::{GatePorts, SystemClock};
use serde_json::Value;

#[tokio::main]
async fn main() -> Result<(), lambda_runtime::Error> {
    lambda_runtime::tracing::init_default_subscriber();
    let config = rm_aws::load_config().await;
    let alarms = CloudWatchAlarms::new(aws_sdk_cloudwatch::Client::new(&config));
    let health = AwsHealth::from_config(&config);
    let jobs = CodePipelineJobs::new(aws_sdk_codepipeline::Client::new(&config));
    // The halt, and the release that started the execution (found by its execution id).
    let store = DynamoStore::new(
        aws_sdk_dynamodb::Client::new(&config),
        rm_aws::required_env("TABLE_NAME")?,
    );
    let ports = &GatePorts {
        alarms: &alarms,
        health: &health,
        store: &store,
        clock: &SystemClock,
        jobs: &jobs,
    };
    // The payload is taken as raw JSON, so no decoding error can echo the job event (and its
    // artifact credentials) into the logs.
    lambda_runtime::run(service_fn(move |event: LambdaEvent<Value>| async move {
        handle(event.payload, ports)
            .await
            .map_err(LambdaError::from)
    }))
    .await
}

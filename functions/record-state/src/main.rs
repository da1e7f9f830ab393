use lambda_runtime::{service_fn, LambdaEvent};
use rm_aws::{required_env, CodePipelineClient, DynamoStore, LambdaError, SfnTaskTokens};
use rm_core::ports::SystemClock;
use rm_core::usecases::RunPorts;
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
    let tokens = SfnTaskTokens::new(aws_sdk_sfn::Client::new(&config));
    let ports = &RunPorts {
        store: &store,
        pipelines: &pipelines,
        tokens: &tokens,
        clock: &SystemClock,
    };
    lambda_runtime::run(service_fn(move |event: LambdaEvent<Value>| async move {
        record_state::handle(event.payload, ports)
            .await
            .map_err(LambdaError::from)
    }))
    .await
}

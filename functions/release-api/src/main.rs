use lambda_http::{service_fn, Request};
use release_api::{handle, Ports};
use rm_aws::{
    required_env, AwsHealth, CloudWatchAlarms, CodePipelineClient, DynamoStore, EventBridgeBus,
    SfnExecutions, SfnTaskTokens,
};
use rm_core::ports::{Sensors, SystemClock};
use std::convert::Infallible;

#[tokio::main]
async fn main() -> Result<(), lambda_http::Error> {
    lambda_http::tracing::init_default_subscriber();
    let config = rm_aws::load_config().await;
    let store = DynamoStore::new(
        aws_sdk_dynamodb::Client::new(&config),
        required_env("TABLE_NAME")?,
    );
    let pipelines = CodePipelineClient::new(aws_sdk_codepipeline::Client::new(&config));
    let sfn = aws_sdk_sfn::Client::new(&config);
    let tokens = SfnTaskTokens::new(sfn.clone());
    let executions = SfnExecutions::new(sfn, required_env("STATE_MACHINE_ARN")?);
    let bus = EventBridgeBus::from_env(aws_sdk_eventbridge::Client::new(&config));
    // A halt's change re-evaluates the waiting releases' gates: alarms and AWS Health.
    let alarms = CloudWatchAlarms::new(aws_sdk_cloudwatch::Client::new(&config));
    let health = AwsHealth::from_config(&config);
    let ports = &Ports {
        sensors: Sensors {
            alarms: &alarms,
            health: &health,
        },
        store: &store,
        pipelines: &pipelines,
        executions: &executions,
        tokens: &tokens,
        bus: &bus,
        clock: &SystemClock,
    };
    lambda_http::run(service_fn(move |request: Request| async move {
        Ok::<_, Infallible>(handle(request, ports).await)
    }))
    .await
}

//! CodePipelineClient against the CodePipeline emulator (rm-local, HTTP on loopback, AWS JSON
//! 1.1): ListPipelineExecutions as the real SDK client sends and reads it (`trigger`,
//! `startTime`, pages), which moto does not model.

use aws_sdk_codepipeline::types::TriggerType;
use rm_aws::CodePipelineClient;
use rm_core::error::PortError;
use rm_core::manifest::PipelineSpec;
use rm_core::ports::Pipelines;
use rm_local::emulator::{Emulator, EmulatorOptions};
use rm_local::SimFile;
use serde_json::json;
use std::time::Duration;
use time::OffsetDateTime;

async fn emulator() -> Emulator {
    let sim = SimFile::from_value(&json!({
        "defaults": {"durationSeconds": 600},
        "pipelines": {"ghost": {"exists": false}}
    }))
    .expect("valid sim file");
    Emulator::start(EmulatorOptions {
        sim,
        event_target: None,
    })
    .await
    .expect("the emulator starts")
}

async fn sdk_client(emulator: &Emulator) -> aws_sdk_codepipeline::Client {
    aws_sdk_codepipeline::Client::new(&rm_testkit::sdk_config(&emulator.url()).await)
}

/// The emulator's start times go over the wire as epoch seconds (a double): keep the instants
/// the test compares well apart.
const GAP: Duration = Duration::from_millis(50);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn find_started_finds_the_earliest_start_since_on_the_emulator() {
    let emulator = emulator().await;
    let pipelines = CodePipelineClient::new(sdk_client(&emulator).await);
    let spec = PipelineSpec::new("app", 1);

    let before_all = OffsetDateTime::now_utc();
    tokio::time::sleep(GAP).await;
    let first = pipelines.start(&spec, "token-1").await.unwrap();
    tokio::time::sleep(GAP).await;
    let between = OffsetDateTime::now_utc();
    tokio::time::sleep(GAP).await;
    let second = pipelines.start(&spec, "token-2").await.unwrap();
    tokio::time::sleep(GAP).await;
    let third = pipelines.start(&spec, "token-3").await.unwrap();
    tokio::time::sleep(GAP).await;
    let after_all = OffsetDateTime::now_utc();
    // A retried start with the first token is the first execution, not a new one.
    assert_eq!(pipelines.start(&spec, "token-1").await.unwrap(), first);

    assert_eq!(
        pipelines.find_started("app", before_all).await.unwrap(),
        Some(first.clone())
    );
    assert_eq!(
        pipelines.find_started("app", between).await.unwrap(),
        Some(second.clone())
    );
    assert_eq!(
        pipelines.find_started("app", after_all).await.unwrap(),
        None
    );
    assert_eq!(
        pipelines.find_started("other", before_all).await.unwrap(),
        None,
        "another pipeline's executions are not this one's"
    );
    let err = pipelines
        .find_started("ghost", before_all)
        .await
        .unwrap_err();
    assert!(matches!(err, PortError::NotFound(_)), "{err:?}");
    assert_eq!(emulator.calls()["app"]["ListPipelineExecutions"], 3);

    // What the adapter read: newest first, each with its trigger and start time, in pages.
    let cp = sdk_client(&emulator).await;
    let page = cp
        .list_pipeline_executions()
        .pipeline_name("app")
        .max_results(2)
        .send()
        .await
        .unwrap();
    let ids: Vec<&str> = page
        .pipeline_execution_summaries()
        .iter()
        .map(|s| s.pipeline_execution_id().unwrap())
        .collect();
    assert_eq!(ids, [third.as_str(), second.as_str()]);
    for summary in page.pipeline_execution_summaries() {
        assert_eq!(
            summary.trigger().and_then(|t| t.trigger_type()),
            Some(&TriggerType::StartPipelineExecution)
        );
        let started = summary.start_time().expect("startTime").as_nanos();
        assert!(started > before_all.unix_timestamp_nanos());
        assert!(started < after_all.unix_timestamp_nanos());
    }
    let token = page.next_token().expect("a second page").to_owned();
    let rest = cp
        .list_pipeline_executions()
        .pipeline_name("app")
        .max_results(2)
        .next_token(token)
        .send()
        .await
        .unwrap();
    let ids: Vec<&str> = rest
        .pipeline_execution_summaries()
        .iter()
        .map(|s| s.pipeline_execution_id().unwrap())
        .collect();
    assert_eq!(ids, [first.as_str()]);
    assert_eq!(rest.next_token(), None);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_emulator_rejects_bad_list_parameters_as_aws_does() {
    use aws_sdk_codepipeline::error::ProvideErrorMetadata;
    let emulator = emulator().await;
    let cp = sdk_client(&emulator).await;
    let err = cp
        .list_pipeline_executions()
        .pipeline_name("app")
        .next_token("not-a-token")
        .send()
        .await
        .unwrap_err();
    assert_eq!(err.code(), Some("InvalidNextTokenException"), "{err:?}");
    let err = cp
        .list_pipeline_executions()
        .pipeline_name("app")
        .max_results(101)
        .send()
        .await
        .unwrap_err();
    assert_eq!(err.code(), Some("ValidationException"), "{err:?}");
}

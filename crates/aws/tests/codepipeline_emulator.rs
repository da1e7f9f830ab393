//! CodePipelineClient against the CodePipeline emulator (rm-local, HTTP on loopback, AWS JSON
//! 1.1): ListPipelineExecutions as the real SDK client sends and reads it (`trigger`,
//! `startTime`, pages), which moto does not model; and what `plan` reads (issue 14): GetPipeline's
//! declaration, ListPipelineExecutions' source revisions, GetPipelineExecution's variables, from
//! the sim file's `pipelineType`, `variables`, `sourceActions`, `lastRevisions`, `lastVariables`.

use aws_sdk_codepipeline::types::TriggerType;
use rm_aws::CodePipelineClient;
use rm_core::error::PortError;
use rm_core::manifest::{PipelineSpec, SourceRevision};
use rm_core::ports::Pipelines;
use rm_core::release::RunStatus;
use rm_local::emulator::{Emulator, EmulatorOptions};
use rm_local::SimFile;
use serde_json::json;
use std::collections::BTreeMap;
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

/// What `plan` reads (issue 14), scripted in the sim file.
async fn inspect_emulator() -> Emulator {
    let sim = SimFile::from_value(&json!({
        "defaults": {"durationSeconds": 600},
        "pipelines": {
            "api": {
                "variables": ["ENV", {"name": "VERSION", "defaultValue": "latest"}],
                "sourceActions": [
                    {"name": "Source", "provider": "S3",
                     "configuration": {"AllowOverrideForS3ObjectKey": "true"}},
                    {"name": "Legacy.Code", "provider": "GitHub"},
                    "Tools"
                ],
                "lastRevisions": {"Source": "v41.zip", "Legacy.Code": "abc123"},
                "lastVariables": {"ENV": "prod", "VERSION": "41"}
            },
            "old": {"pipelineType": "V1"},
            "ghost": {"exists": false}
        }
    }))
    .expect("valid sim file");
    Emulator::start(EmulatorOptions {
        sim,
        event_target: None,
    })
    .await
    .expect("the emulator starts")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn describe_reads_the_sim_files_declaration_through_get_pipeline() {
    let emulator = inspect_emulator().await;
    let pipelines = CodePipelineClient::new(sdk_client(&emulator).await);

    let api = pipelines
        .describe("api")
        .await
        .unwrap()
        .expect("api exists");
    assert_eq!(api.pipeline_type, "V2");
    assert_eq!(
        api.variables,
        Some(vec!["ENV".to_owned(), "VERSION".to_owned()])
    );
    let actions = api.source_actions.unwrap();
    let got: Vec<(&str, &str)> = actions
        .iter()
        .map(|a| (a.name.as_str(), a.provider.as_str()))
        .collect();
    assert_eq!(
        got,
        [("Source", "S3"), ("Legacy.Code", "GitHub"), ("Tools", "")],
        "a name alone goes out with an empty provider: not known"
    );
    assert_eq!(
        actions[0].configuration,
        BTreeMap::from([("AllowOverrideForS3ObjectKey".to_owned(), "true".to_owned())])
    );

    // Without the keys: today's declaration, an S3 source action named Source; no variables
    // declared (GetPipeline has no "not known").
    let old = pipelines.describe("old").await.unwrap().unwrap();
    assert_eq!(old.pipeline_type, "V1");
    assert_eq!(old.variables, Some(vec![]));
    let source = &old.source_actions.unwrap()[0];
    assert_eq!(
        (source.name.as_str(), source.provider.as_str()),
        ("Source", "S3")
    );
    assert_eq!(source.configuration["S3ObjectKey"], "source.zip");
    assert_eq!(pipelines.describe("ghost").await.unwrap(), None);

    // The declaration as the SDK reads it: owners, versions, artifacts, default values.
    let cp = sdk_client(&emulator).await;
    let out = cp.get_pipeline().name("api").send().await.unwrap();
    let declaration = out.pipeline().unwrap();
    let source_stage = &declaration.stages()[0];
    let owners: Vec<(&str, &str, &str)> = source_stage
        .actions()
        .iter()
        .map(|a| {
            let id = a.action_type_id().unwrap();
            (a.name(), id.owner().as_str(), id.version())
        })
        .collect();
    assert_eq!(
        owners,
        [
            ("Source", "AWS", "1"),
            ("Legacy.Code", "ThirdParty", "1"),
            ("Tools", "AWS", "1")
        ]
    );
    assert_eq!(
        source_stage.actions()[1].output_artifacts()[0].name(),
        "Legacy_CodeOutput"
    );
    assert_eq!(declaration.variables()[1].default_value(), Some("latest"));
    assert_eq!(declaration.stages()[1].name(), "Deploy");
    assert_eq!(emulator.calls()["api"]["GetPipeline"], 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn recent_executions_and_variables_read_the_seeded_and_the_started_executions() {
    let emulator = inspect_emulator().await;
    let pipelines = CodePipelineClient::new(sdk_client(&emulator).await);
    let before_start = OffsetDateTime::now_utc();

    // The execution from before the emulator started.
    let listed = pipelines.recent_executions("api", 10).await.unwrap();
    assert_eq!(listed.len(), 1, "{listed:?}");
    let last = &listed[0];
    assert_eq!(last.execution_id, "sim-last-api");
    assert_eq!(last.status, RunStatus::Succeeded);
    assert_eq!(last.trigger_type.as_deref(), Some("StartPipelineExecution"));
    let ended = last.last_update.expect("lastUpdateTime");
    let started = last.started_at.expect("startTime");
    assert!(
        ended < before_start - time::Duration::seconds(59),
        "{ended}"
    );
    // Epoch seconds as a double on the wire: equal to the millisecond.
    assert!(
        ((ended - started).as_seconds_f64() - 600.0).abs() < 0.001,
        "{started} {ended}"
    );
    assert_eq!(
        last.source_revisions,
        BTreeMap::from([
            ("Legacy.Code".to_owned(), "abc123".to_owned()),
            ("Source".to_owned(), "v41.zip".to_owned())
        ])
    );
    assert_eq!(
        pipelines
            .execution_variables("api", "sim-last-api")
            .await
            .unwrap(),
        BTreeMap::from([
            ("ENV".to_owned(), "prod".to_owned()),
            ("VERSION".to_owned(), "41".to_owned())
        ])
    );
    assert!(
        emulator.executions().is_empty(),
        "not an execution the emulator started"
    );

    // A start with revisions and variables: what a later release sees.
    let mut spec = PipelineSpec::new("api", 1);
    spec.variables.insert("ENV".into(), "staging".into());
    spec.source_revisions.push(SourceRevision {
        action_name: "Source".into(),
        revision_type: "S3_OBJECT_KEY".into(),
        revision_value: "v42.zip".into(),
    });
    let id = pipelines.start(&spec, "token-1").await.unwrap();
    let listed = pipelines.recent_executions("api", 10).await.unwrap();
    let ids: Vec<&str> = listed.iter().map(|e| e.execution_id.as_str()).collect();
    assert_eq!(ids, [id.as_str(), "sim-last-api"]);
    assert_eq!(listed[0].status, RunStatus::InProgress);
    assert_eq!(
        listed[0].source_revisions,
        BTreeMap::from([("Source".to_owned(), "v42.zip".to_owned())])
    );
    assert_eq!(
        pipelines.execution_variables("api", &id).await.unwrap(),
        BTreeMap::from([
            ("ENV".to_owned(), "staging".to_owned()),
            ("VERSION".to_owned(), "latest".to_owned())
        ]),
        "resolved: the start's over the declared defaults"
    );
    let err = pipelines
        .execution_variables("api", "no-such-execution")
        .await
        .unwrap_err();
    assert!(matches!(err, PortError::NotFound(_)), "{err:?}");
    let err = pipelines.recent_executions("ghost", 10).await.unwrap_err();
    assert!(matches!(err, PortError::NotFound(_)), "{err:?}");

    // GetPipelineExecution's artifact revisions, by the source actions' output artifacts.
    let cp = sdk_client(&emulator).await;
    let out = cp
        .get_pipeline_execution()
        .pipeline_name("api")
        .pipeline_execution_id("sim-last-api")
        .send()
        .await
        .unwrap();
    let artifacts: Vec<(&str, &str)> = out
        .pipeline_execution()
        .unwrap()
        .artifact_revisions()
        .iter()
        .map(|a| (a.name().unwrap(), a.revision_id().unwrap()))
        .collect();
    assert_eq!(
        artifacts,
        [("Legacy_CodeOutput", "abc123"), ("SourceOutput", "v41.zip")]
    );
    let calls = &emulator.calls()["api"];
    assert_eq!(calls["ListPipelineExecutions"], 2);
    assert_eq!(calls["GetPipelineExecution"], 4);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn recent_executions_reads_pages_of_the_emulator_up_to_the_limit() {
    let emulator = inspect_emulator().await;
    let pipelines = CodePipelineClient::new(sdk_client(&emulator).await);
    let spec = PipelineSpec::new("api", 1);
    let mut started = Vec::new();
    for n in 0..120 {
        started.push(pipelines.start(&spec, &format!("token-{n}")).await.unwrap());
    }
    // 121 executions: the 120 started and the one from before.
    let all = pipelines.recent_executions("api", 500).await.unwrap();
    assert_eq!(all.len(), 121);
    assert_eq!(all[120].execution_id, "sim-last-api");
    assert_eq!(all[0].execution_id, started[119], "newest first");
    assert_eq!(emulator.calls()["api"]["ListPipelineExecutions"], 2);
    let some = pipelines.recent_executions("api", 110).await.unwrap();
    assert_eq!(some.len(), 110);
    assert_eq!(emulator.calls()["api"]["ListPipelineExecutions"], 4);
    let ids = |list: &[rm_core::ports::PastExecution]| -> Vec<String> {
        list.iter().map(|e| e.execution_id.clone()).collect()
    };
    assert_eq!(ids(&some), ids(&all[..110]));
}

//! What `plan` reads of the simulated pipelines (issue 14): the sim file's `pipelineType`,
//! `variables`, `sourceActions`, `lastRevisions` and `lastVariables`, validated at their paths,
//! and the `Pipelines` port's describe / recent_executions / execution_variables on them.

use rm_core::error::PortError;
use rm_core::manifest::{PipelineSpec, SourceRevision};
use rm_core::ports::{PipelineShape, Pipelines, SourceAction};
use rm_core::release::RunStatus;
use rm_local::clock::VirtualClock;
use rm_local::sim::{
    last_execution_id, DeclaredVariable, LastRevision, PipelineType, SimFile, SimPipelines,
};
use serde_json::{json, Value};
use std::collections::BTreeMap;
use std::time::Duration;
use time::macros::datetime;
use time::OffsetDateTime;

const T0: OffsetDateTime = datetime!(2026-03-01 09:00:00 UTC);

fn sim(v: Value) -> SimFile {
    SimFile::from_value(&v).expect("valid sim file")
}

/// The problems of an invalid sim file, as (path, message).
fn problems(v: Value) -> Vec<(String, String)> {
    SimFile::from_value(&v)
        .expect_err("invalid sim file")
        .0
        .into_iter()
        .map(|e| (e.path.clone(), e.message.clone()))
        .collect()
}

fn pipelines(file: SimFile) -> (SimPipelines, tokio::sync::mpsc::UnboundedReceiver<Value>) {
    let (bus, events) = tokio::sync::mpsc::unbounded_channel();
    (SimPipelines::new(file, VirtualClock::new(T0), bus), events)
}

fn map(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

/// The module docs' example.
fn api_sim() -> Value {
    json!({
        "defaults": {"durationSeconds": 600, "pipelineType": "V1"},
        "pipelines": {
            "api": {
                "pipelineType": "V2",
                "variables": ["ENV", {"name": "VERSION", "defaultValue": "latest"}],
                "sourceActions": [
                    {"name": "Source", "provider": "S3",
                     "configuration": {"AllowOverrideForS3ObjectKey": "true", "S3Bucket": "b"}},
                    "Tools"
                ],
                "lastRevisions": {"Source": "v41.zip"},
                "lastVariables": {"ENV": "prod", "VERSION": "41"}
            },
            "web": {
                "lastRevisions": [
                    {"actionName": "Source", "revisionValue": "abc123", "revisionType": "COMMIT_ID"},
                    {"actionName": "Image", "revisionValue": "sha256:0f"}
                ]
            },
            "ghost": {"exists": false, "lastRevisions": {"Source": "x"}}
        }
    })
}

#[test]
fn the_shape_keys_parse_in_both_forms_and_fall_back_to_defaults() {
    let file = sim(api_sim());
    let api = file.shape("api");
    assert_eq!(api.pipeline_type, PipelineType::V2);
    assert_eq!(
        api.variables,
        Some(vec![
            DeclaredVariable {
                name: "ENV".into(),
                default_value: None
            },
            DeclaredVariable {
                name: "VERSION".into(),
                default_value: Some("latest".into())
            },
        ])
    );
    assert_eq!(
        api.source_actions,
        Some(vec![
            SourceAction {
                name: "Source".into(),
                provider: "S3".into(),
                configuration: map(&[("AllowOverrideForS3ObjectKey", "true"), ("S3Bucket", "b")]),
            },
            SourceAction {
                name: "Tools".into(),
                provider: String::new(),
                configuration: BTreeMap::new(),
            },
        ])
    );
    assert_eq!(
        api.last_revisions,
        Some(vec![LastRevision {
            action_name: "Source".into(),
            revision_value: "v41.zip".into(),
            revision_type: None
        }])
    );
    assert_eq!(
        api.last_variables,
        Some(map(&[("ENV", "prod"), ("VERSION", "41")]))
    );
    assert!(api.ran_before());
    assert_eq!(api.variable_defaults(), map(&[("VERSION", "latest")]));

    let web = file.shape("web");
    assert_eq!(web.pipeline_type, PipelineType::V1, "from defaults");
    assert_eq!(web.variables, None);
    assert_eq!(web.source_actions, None);
    assert_eq!(
        web.last_revisions.as_ref().unwrap()[0]
            .revision_type
            .as_deref(),
        Some("COMMIT_ID")
    );
    assert_eq!(web.last_variables, None);
    assert!(web.ran_before());

    let other = SimFile::default().shape("other");
    assert_eq!(
        other.pipeline_type,
        PipelineType::V2,
        "the built-in default"
    );
    assert!(!other.ran_before());
    assert_eq!(
        other.port("other"),
        PipelineShape {
            name: "other".into(),
            pipeline_type: "V2".into(),
            variables: None,
            source_actions: None
        }
    );
}

#[test]
fn the_shape_keys_are_validated_at_their_paths() {
    let found = problems(json!({
        "defaults": {"pipelineType": "V3"},
        "pipelines": {"api": {
            "variables": [1, {"name": "A", "default": "x"}, "A", "A", "bad name",
                          {"defaultValue": "x"}, {"name": "B", "defaultValue": 2}],
            "sourceActions": [{"name": "Source", "provider": "", "configuration": {"k": true}},
                              "Source", "no/slash", 7],
            "lastRevisions": {"Source": 5},
            "lastVariables": {"ENV": 1, "bad name": "x"},
            "lastRevision": {}
        },
        "web": {
            "sourceActions": [],
            "lastRevisions": [{"actionName": "Source", "revisionValue": "x",
                               "revisionType": "BRANCH", "extra": 1},
                              {"revisionValue": ""}, "Source"],
            "lastVariables": ["ENV"]
        }}
    }));
    let paths: Vec<&str> = found.iter().map(|(p, _)| p.as_str()).collect();
    assert_eq!(
        paths,
        [
            "$.defaults.pipelineType",
            "$.pipelines.api.variables[0]",
            "$.pipelines.api.variables[1].default",
            "$.pipelines.api.variables[2]",
            "$.pipelines.api.variables[3]",
            "$.pipelines.api.variables[4]",
            "$.pipelines.api.variables[5].name",
            "$.pipelines.api.variables[6].defaultValue",
            "$.pipelines.api.sourceActions[0].provider",
            "$.pipelines.api.sourceActions[0].configuration.k",
            "$.pipelines.api.sourceActions[1]",
            "$.pipelines.api.sourceActions[2]",
            "$.pipelines.api.sourceActions[3]",
            "$.pipelines.api.lastRevisions.Source",
            "$.pipelines.api.lastVariables.ENV",
            "$.pipelines.api.lastRevision",
            "$.pipelines.web.sourceActions",
            "$.pipelines.web.lastRevisions[0].extra",
            "$.pipelines.web.lastRevisions[0].revisionType",
            "$.pipelines.web.lastRevisions[1].actionName",
            "$.pipelines.web.lastRevisions[1].revisionValue",
            "$.pipelines.web.lastRevisions[2]",
            "$.pipelines.web.lastVariables",
        ],
        "{found:#?}"
    );
    let message = |path: &str| {
        found
            .iter()
            .find(|(p, _)| p == path)
            .map(|(_, m)| m.as_str())
            .unwrap()
    };
    assert!(message("$.defaults.pipelineType").contains("\"V1\" or \"V2\""));
    assert!(
        message("$.pipelines.api.lastRevision").contains("lastRevisions, lastVariables"),
        "an unknown key names the known ones"
    );
    assert!(message("$.pipelines.api.variables[3]").contains("listed twice"));
    assert!(message("$.pipelines.api.sourceActions[1]").contains("listed twice"));
    assert!(message("$.pipelines.api.variables[4]").contains("not a variable name"));
    assert!(message("$.pipelines.api.sourceActions[2]").contains("not an action name"));
    assert!(message("$.pipelines.web.lastRevisions[0].revisionType").contains("S3_OBJECT_KEY"));
    assert!(message("$.pipelines.web.sourceActions").contains("at least one"));
    // The unknown-key message of a pipeline lists the new keys too.
    let found = problems(json!({"pipelines": {"api": {"sourceAction": "Source"}}}));
    assert!(found[0].1.contains("sourceActions"), "{found:?}");
}

#[tokio::test(start_paused = true)]
async fn describe_answers_the_declaration_and_counts_get_pipeline() {
    let (sim, _events) = pipelines(sim(api_sim()));
    let api = sim.describe("api").await.unwrap().expect("api exists");
    assert_eq!(api.name, "api");
    assert_eq!(api.pipeline_type, "V2");
    assert_eq!(
        api.variables,
        Some(vec!["ENV".to_owned(), "VERSION".to_owned()])
    );
    let actions = api.source_actions.unwrap();
    assert_eq!(actions[0].provider, "S3");
    assert_eq!(
        actions[0].configuration["AllowOverrideForS3ObjectKey"],
        "true"
    );
    assert_eq!(actions[1].provider, "", "a name alone: provider not known");

    let web = sim.describe("web").await.unwrap().unwrap();
    assert_eq!(
        (
            web.pipeline_type.as_str(),
            web.variables,
            web.source_actions
        ),
        ("V1", None, None)
    );
    assert_eq!(sim.describe("ghost").await.unwrap(), None);
    assert_eq!(sim.calls()["api"].get_pipeline, 1);
    assert_eq!(sim.calls()["ghost"].get_pipeline, 1);
}

#[tokio::test(start_paused = true)]
async fn the_execution_from_before_the_simulation_is_listed_and_read_but_never_counted() {
    let (sim, mut events) = pipelines(sim(api_sim()));
    let last = last_execution_id("api");
    assert_eq!(last, "sim-last-api");

    let listed = sim.recent_executions("api", 10).await.unwrap();
    assert_eq!(listed.len(), 1, "{listed:?}");
    let before = &listed[0];
    assert_eq!(before.execution_id, last);
    assert_eq!(before.status, RunStatus::Succeeded);
    assert_eq!(
        before.trigger_type.as_deref(),
        Some("StartPipelineExecution")
    );
    // Ended a minute before the simulation's start, after durationSeconds (600, defaults).
    assert_eq!(before.last_update, Some(T0 - time::Duration::minutes(1)));
    assert_eq!(before.started_at, Some(T0 - time::Duration::minutes(11)));
    assert_eq!(before.source_revisions, map(&[("Source", "v41.zip")]));
    assert_eq!(
        sim.execution_variables("api", &last).await.unwrap(),
        map(&[("ENV", "prod"), ("VERSION", "41")])
    );
    assert_eq!(
        sim.status("api", &last).await.unwrap().status,
        RunStatus::Succeeded
    );
    sim.stop("api", &last, "no", false)
        .await
        .expect("stopping a finished execution is not an error");

    // Not one of the simulation's executions: nothing started, running or published.
    assert!(sim.executions().is_empty());
    assert_eq!(sim.peak_running(), 0);
    assert_eq!(sim.events_emitted(), 0);
    assert!(events.try_recv().is_err());
    assert_eq!(sim.find_started("api", T0).await.unwrap(), None);
    assert_eq!(sim.history("api")[0].execution_id, last);

    // Another pipeline's id, or a pipeline without one, does not find it.
    let err = sim.execution_variables("web", &last).await.unwrap_err();
    assert!(matches!(err, PortError::NotFound(_)), "{err:?}");
    assert!(sim.recent_executions("other", 10).await.unwrap().is_empty());
    let err = sim.recent_executions("ghost", 10).await.unwrap_err();
    assert!(matches!(err, PortError::NotFound(_)), "{err:?}");
    let err = sim.execution_variables("ghost", "x").await.unwrap_err();
    assert!(matches!(err, PortError::NotFound(_)), "{err:?}");

    let calls = sim.calls();
    assert_eq!(
        calls["api"].list_executions, 2,
        "recent_executions and find_started"
    );
    assert_eq!(
        calls["api"].get_execution, 2,
        "execution_variables and status"
    );
    assert_eq!(calls["ghost"].list_executions, 1);
    assert_eq!(calls["api"].start, 0);
}

#[tokio::test(start_paused = true)]
async fn started_executions_record_their_revisions_and_variables_for_a_later_release() {
    let (sim, _events) = pipelines(sim(api_sim()));
    let mut spec = PipelineSpec::new("api", 1);
    spec.variables.insert("ENV".into(), "staging".into());
    spec.source_revisions.push(SourceRevision {
        action_name: "Source".into(),
        revision_type: "S3_OBJECT_KEY".into(),
        revision_value: "v42.zip".into(),
    });
    let id = sim.start(&spec, "token-1").await.unwrap();
    let started = &sim.executions()[0];
    assert_eq!(started.source_revisions, map(&[("Source", "v42.zip")]));
    assert_eq!(
        started.variables,
        map(&[("ENV", "staging"), ("VERSION", "latest")]),
        "the start's variables over the declared defaults"
    );

    let listed = sim.recent_executions("api", 10).await.unwrap();
    let ids: Vec<&str> = listed.iter().map(|e| e.execution_id.as_str()).collect();
    assert_eq!(ids, [id.as_str(), "sim-last-api"], "newest first");
    assert_eq!(listed[0].status, RunStatus::InProgress);
    assert_eq!(listed[0].started_at, Some(T0));
    assert_eq!(listed[0].source_revisions, map(&[("Source", "v42.zip")]));

    tokio::time::sleep(Duration::from_secs(601)).await;
    let listed = sim.recent_executions("api", 1).await.unwrap();
    assert_eq!(listed.len(), 1, "at most limit");
    assert_eq!(listed[0].status, RunStatus::Succeeded);
    assert_eq!(
        listed[0].last_update,
        Some(T0 + time::Duration::seconds(600))
    );
    assert_eq!(
        sim.execution_variables("api", &id).await.unwrap(),
        map(&[("ENV", "staging"), ("VERSION", "latest")])
    );
    // A pipeline without revisions in its start records none.
    let plain = sim
        .start(&PipelineSpec::new("web", 1), "token-2")
        .await
        .unwrap();
    assert!(sim
        .execution("web", &plain)
        .unwrap()
        .source_revisions
        .is_empty());
    assert_eq!(sim.recent_executions("api", 0).await.unwrap(), []);
}

#[tokio::test(start_paused = true)]
async fn recent_executions_count_the_pages_the_aws_adapter_would_read() {
    let (sim, _events) = pipelines(sim(json!({"defaults": {"durationSeconds": 60}})));
    for n in 0..150 {
        sim.start(&PipelineSpec::new("busy", 1), &format!("token-{n}"))
            .await
            .unwrap();
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
    let count = |sim: &SimPipelines| sim.calls()["busy"].list_executions;
    assert_eq!(sim.recent_executions("busy", 10).await.unwrap().len(), 10);
    assert_eq!(count(&sim), 1);
    assert_eq!(sim.recent_executions("busy", 100).await.unwrap().len(), 100);
    assert_eq!(count(&sim), 2);
    assert_eq!(sim.recent_executions("busy", 500).await.unwrap().len(), 150);
    assert_eq!(count(&sim), 4, "two pages: 100, then the last 50");
    let all = sim.recent_executions("busy", 500).await.unwrap();
    assert!(
        all.windows(2).all(|w| w[0].started_at > w[1].started_at),
        "newest first"
    );
}

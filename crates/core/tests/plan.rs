//! `plan`'s rules: will a manifest start on the pipelines CodePipeline describes, and would
//! it change them (issue 14).

use rm_core::memory::FakePipelines;
use rm_core::plan::{
    check_pipeline, inspect, matching_execution, median_seconds, unchanged, Unchanged,
};
use rm_core::ports::{PastExecution, PipelineShape, SourceAction};
use rm_core::{Manifest, RunStatus};
use serde_json::json;
use std::collections::BTreeMap;
use time::macros::datetime;
use time::OffsetDateTime;

fn manifest(v: serde_json::Value) -> Manifest {
    Manifest::parse(v.to_string().as_bytes()).expect("valid manifest")
}

fn shape(kind: &str, variables: &[&str], actions: Vec<SourceAction>) -> PipelineShape {
    PipelineShape {
        name: "api".into(),
        pipeline_type: kind.into(),
        variables: Some(variables.iter().map(|v| v.to_string()).collect()),
        source_actions: Some(actions),
    }
}

fn action(name: &str, provider: &str, config: &[(&str, &str)]) -> SourceAction {
    SourceAction {
        name: name.into(),
        provider: provider.into(),
        configuration: config
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect(),
    }
}

fn past(
    id: &str,
    status: RunStatus,
    start: OffsetDateTime,
    secs: i64,
    revs: &[(&str, &str)],
) -> PastExecution {
    PastExecution {
        execution_id: id.into(),
        status,
        trigger_type: Some("StartPipelineExecution".into()),
        started_at: Some(start),
        last_update: Some(start + time::Duration::seconds(secs)),
        source_revisions: revs
            .iter()
            .map(|(a, r)| (a.to_string(), r.to_string()))
            .collect(),
    }
}

fn paths(errors: &[rm_core::ValidationError]) -> Vec<String> {
    errors.iter().map(|e| e.path.clone()).collect()
}

#[test]
fn a_pipeline_that_does_not_exist_is_reported_at_its_name() {
    let m = manifest(json!({"releaseId": "r1", "pipelines": ["a", {"name": "api"}]}));
    let errors = check_pipeline(1, &m.pipelines[1], None);
    assert_eq!(paths(&errors), ["$.pipelines[1].name"]);
    assert!(
        errors[0].message.contains("\"api\" does not exist"),
        "{errors:?}"
    );
}

#[test]
fn variables_need_a_v2_pipeline_that_declares_them() {
    let m = manifest(json!({"releaseId": "r1", "pipelines": [
        {"name": "api", "variables": {"ENV": "prod", "COLOUR": "blue"}}]}));
    let spec = &m.pipelines[0];
    let v1 = check_pipeline(0, spec, Some(&shape("V1", &[], vec![])));
    assert_eq!(paths(&v1), ["$.pipelines[0].variables"]);
    assert!(v1[0].message.contains("V1 pipeline"), "{v1:?}");

    let v2 = check_pipeline(0, spec, Some(&shape("V2", &["ENV"], vec![])));
    assert_eq!(paths(&v2), ["$.pipelines[0].variables.COLOUR"]);
    assert!(v2[0].message.contains("declares ENV"), "{v2:?}");

    let ok = check_pipeline(0, spec, Some(&shape("V2", &["ENV", "COLOUR"], vec![])));
    assert!(ok.is_empty(), "{ok:?}");
}

#[test]
fn source_revisions_must_name_a_source_action_of_a_fitting_provider() {
    let m = manifest(
        json!({"releaseId": "r1", "pipelines": [{"name": "api", "sourceRevisions": [
            {"actionName": "Code", "revisionType": "COMMIT_ID", "revisionValue": "abc"},
            {"actionName": "Image", "revisionType": "COMMIT_ID", "revisionValue": "def"},
            {"actionName": "Bundle", "revisionType": "S3_OBJECT_KEY", "revisionValue": "b.zip"},
            {"actionName": "Nope", "revisionType": "COMMIT_ID", "revisionValue": "x"}
        ]}]}),
    );
    let actions = vec![
        action("Code", "CodeStarSourceConnection", &[]),
        action("Image", "ECR", &[]),
        action("Bundle", "S3", &[("S3Bucket", "b")]),
    ];
    let errors = check_pipeline(0, &m.pipelines[0], Some(&shape("V2", &[], actions.clone())));
    assert_eq!(
        paths(&errors),
        [
            "$.pipelines[0].sourceRevisions[1].revisionType",
            "$.pipelines[0].sourceRevisions[2].revisionType",
            "$.pipelines[0].sourceRevisions[3].actionName",
        ]
    );
    assert!(errors[0].message.contains("provider is ECR"), "{errors:?}");
    assert!(
        errors[1].message.contains("AllowOverrideForS3ObjectKey"),
        "{errors:?}"
    );
    assert!(
        errors[2].message.contains("Code, Image, Bundle"),
        "{errors:?}"
    );

    let mut allowed = actions;
    allowed[1] = action("Image", "CodeCommit", &[]);
    allowed[2] = action("Bundle", "S3", &[("AllowOverrideForS3ObjectKey", "true")]);
    let errors = check_pipeline(0, &m.pipelines[0], Some(&shape("V2", &[], allowed)));
    assert_eq!(
        paths(&errors),
        ["$.pipelines[0].sourceRevisions[3].actionName"]
    );
}

#[test]
fn an_unknown_shape_accepts_anything() {
    let m = manifest(json!({"releaseId": "r1", "pipelines": [{"name": "api",
        "variables": {"ENV": "prod"},
        "sourceRevisions": [{"actionName": "X", "revisionType": "IMAGE_DIGEST", "revisionValue": "sha256:1"}]}]}));
    let unknown = PipelineShape {
        name: "api".into(),
        pipeline_type: "V2".into(),
        variables: None,
        source_actions: Some(vec![action("X", "", &[])]),
    };
    assert!(check_pipeline(0, &m.pipelines[0], Some(&unknown)).is_empty());
}

fn pinned(revs: serde_json::Value, vars: serde_json::Value) -> Manifest {
    manifest(json!({"releaseId": "r1", "pipelines": [{"name": "api",
        "sourceRevisions": revs, "variables": vars}]}))
}

const T0: OffsetDateTime = datetime!(2026-11-30 10:00 UTC);

#[test]
fn unchanged_when_the_last_finished_execution_succeeded_with_every_pinned_revision() {
    let m = pinned(
        json!([{"actionName": "Code", "revisionType": "COMMIT_ID", "revisionValue": "abc"},
               {"actionName": "Image", "revisionType": "IMAGE_DIGEST", "revisionValue": "sha256:1"}]),
        json!({}),
    );
    let spec = &m.pipelines[0];
    let both = [("Code", "abc"), ("Image", "sha256:1")];
    // The newest is still running: the last *finished* one decides.
    let history = [
        past(
            "e3",
            RunStatus::InProgress,
            T0,
            0,
            &[("Code", "zzz"), ("Image", "sha256:9")],
        ),
        past("e2", RunStatus::Succeeded, T0, 100, &both),
        past("e1", RunStatus::Failed, T0, 100, &both),
    ];
    assert_eq!(
        unchanged(spec, &history, None),
        Unchanged::Yes {
            execution_id: "e2".into()
        }
    );
    // A rollback or a failure as the last finished one changes it.
    let failed = [past("e2", RunStatus::Failed, T0, 100, &both)];
    assert!(
        matches!(unchanged(spec, &failed, None), Unchanged::No(m) if m.contains("ended Failed"))
    );
    // Another revision.
    let other = [past(
        "e2",
        RunStatus::Succeeded,
        T0,
        100,
        &[("Code", "abd"), ("Image", "sha256:1")],
    )];
    assert!(
        matches!(unchanged(spec, &other, None), Unchanged::No(m) if m.contains("last ran abd"))
    );
    // A partial pin: the execution ran a source action the manifest does not pin.
    let three = [past(
        "e2",
        RunStatus::Succeeded,
        T0,
        100,
        &[("Code", "abc"), ("Image", "sha256:1"), ("Config", "c1")],
    )];
    assert!(
        matches!(unchanged(spec, &three, None), Unchanged::No(m) if m.contains("does not pin source action Config"))
    );
    // No history at all.
    assert!(matches!(unchanged(spec, &[], None), Unchanged::No(_)));
}

#[test]
fn an_s3_object_key_or_no_pin_always_changes() {
    let key = pinned(
        json!([{"actionName": "Bundle", "revisionType": "S3_OBJECT_KEY", "revisionValue": "b.zip"}]),
        json!({}),
    );
    let history = [past(
        "e1",
        RunStatus::Succeeded,
        T0,
        100,
        &[("Bundle", "b.zip")],
    )];
    assert!(
        matches!(unchanged(&key.pipelines[0], &history, None), Unchanged::No(m) if m.contains("S3_OBJECT_KEY"))
    );
    let none = manifest(json!({"releaseId": "r1", "pipelines": ["api"]}));
    assert!(matches!(
        unchanged(&none.pipelines[0], &history, None),
        Unchanged::No(_)
    ));
}

#[test]
fn variables_are_compared_with_the_execution_that_matched() {
    let m = pinned(
        json!([{"actionName": "Code", "revisionType": "COMMIT_ID", "revisionValue": "abc"}]),
        json!({"ENV": "prod"}),
    );
    let spec = &m.pipelines[0];
    let history = [past(
        "e1",
        RunStatus::Succeeded,
        T0,
        100,
        &[("Code", "abc")],
    )];
    assert_eq!(unchanged(spec, &history, None), Unchanged::NeedsVariables);
    let same = BTreeMap::from([
        ("ENV".to_string(), "prod".to_string()),
        ("X".into(), "1".into()),
    ]);
    assert_eq!(
        unchanged(spec, &history, Some(&same)),
        Unchanged::Yes {
            execution_id: "e1".into()
        }
    );
    let other = BTreeMap::from([("ENV".to_string(), "test".to_string())]);
    assert!(
        matches!(unchanged(spec, &history, Some(&other)), Unchanged::No(m) if m.contains("\"test\""))
    );
}

#[test]
fn the_median_is_of_succeeded_executions_only() {
    let h = [
        past("a", RunStatus::Succeeded, T0, 100, &[]),
        past("b", RunStatus::Failed, T0, 5, &[]),
        past("c", RunStatus::Succeeded, T0, 300, &[]),
        past("d", RunStatus::Succeeded, T0, 200, &[]),
    ];
    assert_eq!(median_seconds(&h), (Some(200), 3));
    assert_eq!(median_seconds(&h[..1]), (Some(100), 1));
    assert_eq!(
        median_seconds(&[h[0].clone(), h[2].clone()]),
        (Some(200), 2)
    );
    assert_eq!(median_seconds(&h[1..2]), (None, 0));
}

#[tokio::test]
async fn inspect_reports_every_problem_and_what_each_pipeline_would_do() {
    let fake = FakePipelines::with(&["api", "web"]);
    fake.set_shape(PipelineShape {
        name: "api".into(),
        pipeline_type: "V2".into(),
        variables: Some(vec![]),
        source_actions: Some(vec![action("Code", "CodeCommit", &[])]),
    });
    fake.add_past_execution(
        "api",
        past("api-1", RunStatus::Succeeded, T0, 120, &[("Code", "abc")]),
        BTreeMap::new(),
    );
    let m = manifest(json!({"releaseId": "r1", "pipelines": [
        {"name": "api", "sourceRevisions": [{"actionName": "Code", "revisionType": "COMMIT_ID", "revisionValue": "abc"}]},
        {"name": "web", "wave": 2},
        {"name": "gone", "wave": 2, "variables": {"A": "1"}}
    ]}));
    let inspection = inspect(&m, &fake).await.expect("inspected");
    assert_eq!(paths(&inspection.problems), ["$.pipelines[2].name"]);
    let api = &inspection.pipelines[0];
    assert_eq!(
        api.unchanged,
        Unchanged::Yes {
            execution_id: "api-1".into()
        }
    );
    assert_eq!((api.median_seconds, api.sample), (Some(120), 1));
    assert!(matches!(
        inspection.pipelines[1].unchanged,
        Unchanged::No(_)
    ));
    assert_eq!(inspection.pipelines[1].median_seconds, None);
    assert!(inspection.pipelines[2].shape.is_none());
    // Nothing was started.
    assert!(
        !fake
            .calls()
            .iter()
            .any(|c| c.starts_with("StartPipelineExecution")),
        "{:?}",
        fake.calls()
    );
}

#[tokio::test]
async fn the_start_time_check_reads_variables_only_when_the_manifest_has_some() {
    let fake = FakePipelines::with(&["api"]);
    fake.add_past_execution(
        "api",
        past("api-1", RunStatus::Succeeded, T0, 120, &[("Code", "abc")]),
        BTreeMap::from([("ENV".to_string(), "prod".to_string())]),
    );
    let plain = pinned(
        json!([{"actionName": "Code", "revisionType": "COMMIT_ID", "revisionValue": "abc"}]),
        json!({}),
    );
    assert_eq!(
        matching_execution(&plain.pipelines[0], &fake)
            .await
            .unwrap()
            .as_deref(),
        Some("api-1")
    );
    assert_eq!(fake.calls(), ["ListPipelineExecutions:api"]);
    let with_vars = pinned(
        json!([{"actionName": "Code", "revisionType": "COMMIT_ID", "revisionValue": "abc"}]),
        json!({"ENV": "test"}),
    );
    assert_eq!(
        matching_execution(&with_vars.pipelines[0], &fake)
            .await
            .unwrap(),
        None
    );
    assert_eq!(
        fake.calls(),
        [
            "ListPipelineExecutions:api",
            "ListPipelineExecutions:api",
            "GetPipelineExecution:api"
        ]
    );
}

#[test]
fn the_median_is_of_the_last_ten_succeeded_among_failures() {
    // Newest first: 12 succeeded of 100 s .. 1200 s, each after a failure; only the 10 newest
    // succeeded count (100 .. 1000 s: median 550 s).
    let mut h = Vec::new();
    for i in 1..=12 {
        h.push(past(&format!("f{i}"), RunStatus::Failed, T0, 1, &[]));
        h.push(past(
            &format!("s{i}"),
            RunStatus::Succeeded,
            T0,
            i * 100,
            &[],
        ));
    }
    assert_eq!(median_seconds(&h), (Some(550), 10));
}

//! check-manifest fed the files in events/, over the in-memory ports.

use check_manifest::Ports;
use rm_core::tasks::CheckManifestResponse;

/// The handler, its answer read back as the response the state machine receives.
async fn handle(
    payload: serde_json::Value,
    ports: &Ports<'_>,
) -> Result<CheckManifestResponse, TaskError> {
    let answer = check_manifest::handle(payload, ports).await?;
    Ok(serde_json::from_value(answer).expect("the answer is a CheckManifestResponse"))
}
use rm_core::memory::{FakePipelines, FakeSource, ManualClock, MemoryStore};
use rm_core::tasks::Outcome;
use rm_core::{ReleaseId, TaskError};
use rm_testkit::{event, event_bytes};
use serde_json::{json, Value};

const BUCKET: &str = "release-machine-manifests-111122223333";
const KEY: &str = "releases/2026.03.1/release-manifest.json";

struct World {
    store: MemoryStore,
    pipelines: FakePipelines,
    source: FakeSource,
    clock: ManualClock,
}

impl World {
    fn new(manifest: &[u8]) -> Self {
        let source = FakeSource::default();
        source.put(BUCKET, KEY, manifest.to_vec());
        World {
            store: MemoryStore::new(),
            pipelines: FakePipelines::with(&[
                "payments-db-migrate",
                "payments-api",
                "checkout-web",
                "ledger-worker",
            ]),
            source,
            clock: ManualClock::fixed(),
        }
    }

    fn ports(&self) -> Ports<'_> {
        Ports {
            store: &self.store,
            pipelines: &self.pipelines,
            source: &self.source,
            bus: &rm_core::memory::NO_BUS,
            clock: &self.clock,
        }
    }
}

fn with_execution(mut task: Value, name: &str) -> Value {
    task["executionName"] = json!(name);
    task
}

async fn stored_owner(world: &World, id: &str) -> Option<String> {
    use rm_core::ports::ReleaseStore;
    let id = ReleaseId::parse(id).unwrap();
    world.store.get(&id).await.unwrap().map(|s| s.release.owner)
}

#[tokio::test]
async fn s3_event_claims_the_release_and_returns_its_waves() {
    let world = World::new(&event_bytes("release-manifest.json"));
    let task = event("task-check-manifest.json");
    let owner = task["executionName"].as_str().unwrap().to_owned();

    let out = handle(task, &world.ports()).await.expect("valid manifest");

    assert_eq!(out.outcome, Outcome::Started);
    assert_eq!(out.release_id, "2026.03.1");
    assert_eq!(out.max_concurrency, Some(5));
    let waves: Vec<(u32, Vec<&str>)> = out
        .waves
        .iter()
        .map(|w| {
            (
                w.wave,
                w.pipelines.iter().map(|p| p.name.as_str()).collect(),
            )
        })
        .collect();
    assert_eq!(
        waves,
        vec![
            // A bare pipeline name is wave 1.
            (1, vec!["payments-db-migrate", "ledger-worker"]),
            (2, vec!["payments-api", "checkout-web"]),
        ]
    );
    assert_eq!(out.waves[0].pipelines[0].timeout_seconds, 3600);
    assert_eq!(stored_owner(&world, "2026.03.1").await, Some(owner));

    // The answer is what the state machine's Choice and Map read.
    let encoded = serde_json::to_value(&out).unwrap();
    assert_eq!(encoded["outcome"], "Started");
    assert_eq!(encoded["onFailure"], "stop");
    assert_eq!(encoded["waves"][1]["pipelines"][0]["timeoutSeconds"], 7200);
}

#[tokio::test]
async fn a_second_execution_for_the_same_release_is_a_duplicate_and_touches_nothing() {
    let world = World::new(&event_bytes("release-manifest.json"));
    let first = event("task-check-manifest.json");
    let owner = first["executionName"].as_str().unwrap().to_owned();
    handle(first, &world.ports()).await.unwrap();

    let second = with_execution(event("task-check-manifest.json"), "redelivered-event");
    let out = handle(second, &world.ports()).await.unwrap();

    assert_eq!(out.outcome, Outcome::Duplicate);
    assert_eq!(serde_json::to_value(&out).unwrap()["outcome"], "Duplicate");
    assert!(out.waves.is_empty());
    assert_eq!(stored_owner(&world, "2026.03.1").await, Some(owner));
}

#[tokio::test]
async fn a_retried_task_of_the_owner_passes() {
    let world = World::new(&event_bytes("release-manifest.json"));
    handle(event("task-check-manifest.json"), &world.ports())
        .await
        .unwrap();
    let again = handle(event("task-check-manifest.json"), &world.ports())
        .await
        .unwrap();
    assert_eq!(again.outcome, Outcome::Started);
    assert_eq!(again.waves.len(), 2);
}

#[tokio::test]
async fn an_invalid_manifest_is_rejected_with_every_path_and_records_nothing() {
    let world = World::new(&event_bytes("bad-manifests/invalid-fields.json"));
    let err = handle(event("task-check-manifest.json"), &world.ports())
        .await
        .expect_err("invalid manifest");

    assert_eq!(err.error_type(), "ManifestInvalid");
    let TaskError::ManifestInvalid(rejection) = &err else {
        panic!("{err:?}")
    };
    let paths: Vec<&str> = rejection.0.iter().map(|e| e.path.as_str()).collect();
    for expected in [
        "$.releaseId",
        "$.pipelines[0].wave",
        "$.pipelines[2].nmae",
        "$.maxConcurrency",
    ] {
        assert!(
            paths.contains(&expected),
            "{expected} missing from {paths:?}"
        );
    }
    assert!(
        paths.iter().any(|p| p.starts_with("$.pipelines[1]")),
        "duplicate pipeline not reported: {paths:?}"
    );
    assert!(err.to_string().contains("$.pipelines[0].wave"), "{err}");
    assert!(
        world.pipelines.calls().is_empty(),
        "nothing started or checked"
    );
}

#[tokio::test]
async fn a_manifest_naming_a_missing_pipeline_is_rejected_and_the_id_stays_free() {
    let world = World::new(&event_bytes("bad-manifests/unknown-pipeline.json"));
    let err = handle(event("task-check-manifest.json"), &world.ports())
        .await
        .expect_err("unknown pipeline");

    assert_eq!(err.error_type(), "ManifestInvalid");
    assert!(
        err.to_string().contains("$.pipelines[1].name"),
        "message names the path: {err}"
    );
    assert!(err.to_string().contains("no-such-pipeline"), "{err}");
    assert_eq!(stored_owner(&world, "2026.03.2").await, None);
}

#[tokio::test]
async fn empty_and_non_json_manifests_are_invalid() {
    for bad in ["bad-manifests/empty.json", "bad-manifests/not-json.json"] {
        let world = World::new(&event_bytes(bad));
        let err = handle(event("task-check-manifest.json"), &world.ports())
            .await
            .expect_err(bad);
        assert_eq!(err.error_type(), "ManifestInvalid", "{bad}: {err}");
    }
}

#[tokio::test]
async fn a_missing_object_is_unreadable() {
    let world = World::new(b"");
    let mut task = event("task-check-manifest.json");
    task["input"]["detail"]["object"]["key"] = json!("releases/gone/release-manifest.json");
    let err = handle(task, &world.ports()).await.expect_err("no object");
    assert_eq!(err.error_type(), "ManifestUnreadable");
    assert!(err.to_string().contains("does not exist"), "{err}");
}

#[tokio::test]
async fn an_inline_manifest_as_execution_input_is_accepted() {
    let world = World::new(b"");
    let task = json!({
        "input": event("release-manifest.json"),
        "executionName": "console-run-1",
    });
    let out = handle(task, &world.ports()).await.unwrap();
    assert_eq!(out.outcome, Outcome::Started);
    assert_eq!(
        stored_owner(&world, "2026.03.1").await.as_deref(),
        Some("console-run-1")
    );
}

#[tokio::test]
async fn a_malformed_payload_is_bad_input_not_a_panic() {
    let world = World::new(b"");
    for payload in [
        json!({}),
        json!("text"),
        json!({"input": {}, "executionName": 7}),
    ] {
        let err = handle(payload.clone(), &world.ports())
            .await
            .expect_err("malformed");
        assert_eq!(err.error_type(), "BadInput", "{payload}: {err}");
    }
}

#[tokio::test]
async fn the_lambda_error_carries_the_error_type_the_state_machine_matches() {
    let world = World::new(&event_bytes("bad-manifests/invalid-fields.json"));
    let err = handle(event("task-check-manifest.json"), &world.ports())
        .await
        .expect_err("invalid manifest");
    let diagnostic: lambda_runtime::Diagnostic = rm_aws::LambdaError::from(err).into();
    assert_eq!(diagnostic.error_type, "ManifestInvalid");
    assert!(
        diagnostic.error_message.contains("$.pipelines[0].wave"),
        "{}",
        diagnostic.error_message
    );
}

#[test]
fn the_task_input_wraps_the_s3_event_as_the_state_machine_does() {
    // CheckManifest's Parameters: {"input.$": "$", "executionName.$": "$$.Execution.Name"}.
    let task = event("task-check-manifest.json");
    assert_eq!(task["input"], event("s3-object-created.json"));
    assert!(task["executionName"].is_string());
}

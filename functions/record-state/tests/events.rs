//! record-state fed the CodePipeline state-change events and the RecordRelease task inputs in
//! events/.

use rm_core::memory::{FakePipelines, FakeSource, ManualClock, MemoryStore, RecordingTokens};
use rm_core::ports::ManifestPorts;
use rm_core::ports::{Clock, ReleaseStore, RunKey};
use rm_core::tasks::CheckManifestRequest;
use rm_core::usecases::{self, RunPorts};
use rm_core::{ReleaseId, RunStatus};
use rm_testkit::event;
use serde_json::{json, Value};

const EXECUTION_ID: &str = "12345678-1234-5678-abcd-12345678abcd";
const TOKEN: &str = "AQCEAAAAKgAAAAMAAAAAAAAAAeMc2fVw9ZQ8EXAMPLETASKTOKEN";

fn rid() -> ReleaseId {
    ReleaseId::parse("2026.03.1").unwrap()
}

fn key() -> RunKey {
    RunKey {
        release_id: rid(),
        pipeline: "payments-db-migrate".into(),
    }
}

struct World {
    store: MemoryStore,
    pipelines: FakePipelines,
    tokens: RecordingTokens,
    clock: ManualClock,
    owner: String,
}

impl World {
    /// The sample release claimed; payments-db-migrate started as the execution the events
    /// name, and its AwaitPipeline task waiting with a token.
    async fn waiting() -> Self {
        let owner = event("task-record-release-succeeded.json")["executionName"]
            .as_str()
            .unwrap()
            .to_owned();
        let world = World {
            store: MemoryStore::new(),
            pipelines: FakePipelines::with(&[
                "payments-db-migrate",
                "payments-api",
                "checkout-web",
                "ledger-worker",
            ]),
            tokens: RecordingTokens::default(),
            clock: ManualClock::fixed(),
            owner,
        };
        let request = CheckManifestRequest {
            input: event("release-manifest.json"),
            execution_name: world.owner.clone(),
        };
        usecases::check_manifest(
            &request,
            &ManifestPorts {
                store: &world.store,
                pipelines: &world.pipelines,
                source: &FakeSource::default(),
                bus: &rm_core::memory::NO_BUS,
                clock: &world.clock,
            },
        )
        .await
        .unwrap();
        world
            .store
            .record_start(
                &rid(),
                &world.owner,
                "payments-db-migrate",
                EXECUTION_ID,
                Clock::now(&world.clock),
                &[],
            )
            .await
            .unwrap();
        world
            .store
            .set_token(&key(), TOKEN, Clock::now(&world.clock))
            .await
            .unwrap();
        world
    }

    fn ports(&self) -> RunPorts<'_> {
        RunPorts {
            sensors: rm_core::memory::no_sensors(),
            store: &self.store,
            pipelines: &self.pipelines,
            tokens: &self.tokens,
            executions: &rm_core::memory::NO_EXECUTIONS,
            bus: &rm_core::memory::NO_BUS,
            clock: &self.clock,
        }
    }

    async fn run(&self) -> rm_core::release::RunRecord {
        self.store
            .get_run(&rid(), "payments-db-migrate")
            .await
            .unwrap()
            .unwrap()
    }
}

#[tokio::test]
async fn a_succeeded_event_records_the_change_and_completes_the_waiting_token() {
    let world = World::waiting().await;
    let out = record_state::handle(
        event("codepipeline-execution-succeeded.json"),
        &world.ports(),
    )
    .await
    .unwrap();

    assert_eq!(out["outcome"], "Recorded");
    assert_eq!(out["status"], "Succeeded");
    let sent = world.tokens.sent();
    assert_eq!(sent.len(), 1, "{sent:?}");
    assert_eq!(sent[0].0, TOKEN);
    let output = sent[0].1.as_ref().expect("SendTaskSuccess");
    assert_eq!(output["status"], "Succeeded");
    assert_eq!(output["executionId"], EXECUTION_ID);

    let run = world.run().await;
    assert_eq!(run.status, RunStatus::Succeeded);
    assert_eq!(run.task_token, None);
    assert!(run.ended_at.is_some());
    // The event's own time is the audit trail's.
    let last = run.history.last().unwrap();
    assert_eq!(
        serde_json::to_value(last).unwrap()["at"],
        json!("2026-03-02T09:31:47Z")
    );
}

#[tokio::test]
async fn duplicate_and_late_events_are_harmless() {
    let world = World::waiting().await;
    for name in [
        "codepipeline-execution-succeeded.json",
        "codepipeline-execution-succeeded.json",
        "codepipeline-execution-started.json",
    ] {
        let out = record_state::handle(event(name), &world.ports())
            .await
            .unwrap();
        assert_eq!(out["outcome"], "Recorded", "{name}");
    }
    assert_eq!(world.tokens.sent().len(), 1, "the token is sent once");
    assert_eq!(world.run().await.status, RunStatus::Succeeded);
}

#[tokio::test]
async fn failed_and_stopped_events_fail_the_token_naming_that_status() {
    for (name, status) in [
        ("codepipeline-execution-failed.json", "Failed"),
        ("codepipeline-execution-stopped.json", "Stopped"),
    ] {
        let world = World::waiting().await;
        record_state::handle(event(name), &world.ports())
            .await
            .unwrap();
        let sent = world.tokens.sent();
        assert_eq!(sent.len(), 1, "{name}");
        let (error, cause) = sent[0].1.as_ref().expect_err("SendTaskFailure");
        assert_eq!(error, "PipelineFailed", "{name}");
        assert!(
            cause.ends_with(&format!("ended {status}")),
            "{name}: {cause}"
        );
    }
}

#[tokio::test]
async fn a_started_event_records_without_completing() {
    let world = World::waiting().await;
    let out = record_state::handle(event("codepipeline-execution-started.json"), &world.ports())
        .await
        .unwrap();
    assert_eq!(out["status"], "InProgress");
    assert!(world.tokens.sent().is_empty());
    assert_eq!(world.run().await.task_token.as_deref(), Some(TOKEN));
}

#[tokio::test]
async fn an_execution_no_release_started_is_not_ours() {
    let world = World::waiting().await;
    let mut other = event("codepipeline-execution-succeeded.json");
    other["detail"]["execution-id"] = json!("99999999-0000-0000-0000-000000000000");
    let out = record_state::handle(other, &world.ports()).await.unwrap();
    assert_eq!(out["outcome"], "NotOurs");
    assert!(world.tokens.sent().is_empty());
}

#[tokio::test]
async fn an_undecodable_event_is_acknowledged_as_rejected_and_records_nothing() {
    let world = World::waiting().await;
    let mut no_id = event("codepipeline-execution-succeeded.json");
    no_id["detail"]
        .as_object_mut()
        .unwrap()
        .remove("execution-id");
    let mut stage = event("codepipeline-execution-succeeded.json");
    stage["detail-type"] = json!("CodePipeline Stage Execution State Change");
    for bad in [no_id, stage] {
        let out = record_state::handle(bad, &world.ports()).await.unwrap();
        assert_eq!(out["outcome"], "Rejected", "{out}");
        assert!(out["reason"].as_str().unwrap().len() > 10);
    }
    assert_eq!(world.run().await.status, RunStatus::InProgress);
    assert!(world.tokens.sent().is_empty());
}

#[tokio::test]
async fn record_release_succeeded_ends_the_release() {
    let world = World::waiting().await;
    // Every pipeline of the release succeeded (the other three as the event's did).
    for (i, name) in ["payments-api", "checkout-web", "ledger-worker"]
        .into_iter()
        .enumerate()
    {
        let execution_id = format!("{i:08}-1234-5678-abcd-12345678abcd");
        let now = Clock::now(&world.clock);
        world
            .store
            .record_start(&rid(), &world.owner, name, &execution_id, now, &[])
            .await
            .unwrap();
        let k = RunKey {
            release_id: rid(),
            pipeline: name.into(),
        };
        world
            .store
            .record_status(&k, RunStatus::Succeeded, now, &[])
            .await
            .unwrap();
    }
    record_state::handle(
        event("codepipeline-execution-succeeded.json"),
        &world.ports(),
    )
    .await
    .unwrap();
    let out = record_state::handle(event("task-record-release-succeeded.json"), &world.ports())
        .await
        .unwrap();
    assert_eq!(out["releaseId"], "2026.03.1");
    assert_eq!(out["status"], "SUCCEEDED");
    assert!(out["endedAt"].is_string());
    assert_eq!(out["cause"], Value::Null);
}

/// Issue 9, fault 12: a release succeeds only when every pipeline's latest run Succeeded. A
/// RecordSuccess while one pipeline succeeded and three never ran records FAILED, naming them.
#[tokio::test]
async fn record_release_succeeded_with_pipelines_that_never_ran_records_failed() {
    let world = World::waiting().await;
    record_state::handle(
        event("codepipeline-execution-succeeded.json"),
        &world.ports(),
    )
    .await
    .unwrap();
    let out = record_state::handle(event("task-record-release-succeeded.json"), &world.ports())
        .await
        .unwrap();
    assert_eq!(out["status"], "FAILED");
    let cause = out["cause"].as_str().unwrap();
    for name in [
        "payments-api (NotStarted)",
        "checkout-web (NotStarted)",
        "ledger-worker (NotStarted)",
    ] {
        assert!(cause.contains(name), "{cause}");
    }
    assert!(!cause.contains("payments-db-migrate"), "{cause}");
}

#[tokio::test]
async fn record_release_failed_names_the_pipelines_that_did_not_succeed() {
    let world = World::waiting().await;
    record_state::handle(event("codepipeline-execution-failed.json"), &world.ports())
        .await
        .unwrap();
    let out = record_state::handle(event("task-record-release-failed.json"), &world.ports())
        .await
        .unwrap();
    assert_eq!(out["status"], "FAILED");
    let cause = out["cause"].as_str().unwrap();
    assert!(cause.contains("payments-db-migrate"), "{cause}");

    // A retried RecordRelease answers the recorded end.
    let again = record_state::handle(event("task-record-release-failed.json"), &world.ports())
        .await
        .unwrap();
    assert_eq!(again, out);
}

#[tokio::test]
async fn record_release_by_another_execution_or_malformed_is_an_error() {
    let world = World::waiting().await;
    let mut other = event("task-record-release-succeeded.json");
    other["executionName"] = json!("someone-else");
    let err = record_state::handle(other, &world.ports())
        .await
        .expect_err("not the owner");
    assert_eq!(err.error_type(), "Duplicate");

    for payload in [
        json!({"action": "recordRelease", "releaseId": "2026.03.1"}),
        json!({"action": "recordRelease", "releaseId": "2026.03.1", "executionName": "x", "status": "DONE"}),
        json!({"action": "forget"}),
        json!(42),
    ] {
        let err = record_state::handle(payload.clone(), &world.ports())
            .await
            .expect_err("malformed");
        assert_eq!(err.error_type(), "BadInput", "{payload}: {err}");
    }
}

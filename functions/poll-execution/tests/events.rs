//! poll-execution fed the await task input and the scheduled event in events/.

use rm_core::memory::{FakePipelines, FakeSource, ManualClock, MemoryStore, RecordingTokens};
use rm_core::ports::ManifestPorts;
use rm_core::ports::ReleaseStore;
use rm_core::tasks::{CheckManifestRequest, PipelineRef};
use rm_core::usecases::{self, RunPorts};
use rm_core::{ReleaseId, RunStatus};
use rm_testkit::event;
use serde_json::json;

struct World {
    store: MemoryStore,
    pipelines: FakePipelines,
    tokens: RecordingTokens,
    clock: ManualClock,
}

impl World {
    /// The sample release claimed, and payments-db-migrate started.
    async fn started() -> (Self, String) {
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
        };
        let task: PipelineRef = serde_json::from_value({
            let mut t = event("task-start-pipeline.json");
            t.as_object_mut().unwrap().remove("action");
            t
        })
        .unwrap();
        let request = CheckManifestRequest {
            input: event("release-manifest.json"),
            execution_name: task.execution_name.clone(),
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
        let run = usecases::start_pipeline(&task, &world.ports())
            .await
            .unwrap();
        let execution_id = run.execution_id.unwrap();
        (world, execution_id)
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

    async fn token_on_run(&self) -> Option<String> {
        let id = ReleaseId::parse("2026.03.1").unwrap();
        self.store
            .get_run(&id, "payments-db-migrate")
            .await
            .unwrap()
            .unwrap()
            .task_token
    }
}

#[tokio::test]
async fn await_stores_the_token_of_a_running_pipeline_and_sends_nothing() {
    let (world, _) = World::started().await;
    let task = event("task-await-pipeline.json");
    let token = task["taskToken"].as_str().unwrap().to_owned();

    let out = poll_execution::handle(task, &world.ports()).await.unwrap();

    assert_eq!(out, json!({"status": "InProgress", "completed": false}));
    assert_eq!(world.token_on_run().await, Some(token));
    assert!(world.tokens.sent().is_empty());
}

#[tokio::test]
async fn await_completes_at_once_when_the_pipeline_already_finished() {
    let (world, execution_id) = World::started().await;
    world
        .pipelines
        .set_status(&execution_id, RunStatus::Succeeded);
    let task = event("task-await-pipeline.json");
    let token = task["taskToken"].as_str().unwrap().to_owned();

    let out = poll_execution::handle(task, &world.ports()).await.unwrap();

    assert_eq!(out, json!({"status": "Succeeded", "completed": true}));
    let sent = world.tokens.sent();
    assert_eq!(sent.len(), 1);
    assert_eq!(sent[0].0, token);
    let output = sent[0].1.as_ref().expect("SendTaskSuccess");
    assert_eq!(output["status"], "Succeeded");
    assert_eq!(output["pipeline"], "payments-db-migrate");
    assert_eq!(world.token_on_run().await, None);
}

#[tokio::test]
async fn the_scheduled_event_sweeps_waiting_runs_and_completes_finished_ones() {
    let (world, execution_id) = World::started().await;
    poll_execution::handle(event("task-await-pipeline.json"), &world.ports())
        .await
        .unwrap();

    // Still running: polled, nothing sent.
    let out = poll_execution::handle(event("scheduled-sweep.json"), &world.ports())
        .await
        .unwrap();
    assert_eq!(out, json!({"polled": 1, "completed": 0, "errors": 0}));
    assert!(world.tokens.sent().is_empty());

    // The state-change event was lost; the sweep finds the end.
    world.pipelines.set_status(&execution_id, RunStatus::Failed);
    let out = poll_execution::handle(event("scheduled-sweep.json"), &world.ports())
        .await
        .unwrap();
    assert_eq!(out, json!({"polled": 1, "completed": 1, "errors": 0}));
    let sent = world.tokens.sent();
    assert_eq!(sent.len(), 1);
    // A pipeline that did not succeed fails the waiting task (SendTaskFailure), so the state
    // machine's Catch takes the failure path.
    let (error, cause) = sent[0].1.as_ref().expect_err("SendTaskFailure");
    assert_eq!(error, "PipelineFailed");
    assert!(
        cause.contains("payments-db-migrate ended Failed"),
        "{cause}"
    );

    // Nothing waits any more.
    let out = poll_execution::handle(event("task-sweep.json"), &world.ports())
        .await
        .unwrap();
    assert_eq!(out, json!({"polled": 0, "completed": 0, "errors": 0}));
}

#[tokio::test]
async fn other_events_and_malformed_payloads_are_bad_input() {
    let (world, _) = World::started().await;
    let mut not_schedule = event("scheduled-sweep.json");
    not_schedule["detail-type"] = json!("Object Created");
    let err = poll_execution::handle(not_schedule, &world.ports())
        .await
        .expect_err("not the schedule");
    assert_eq!(err.error_type(), "BadInput");
    assert!(err.to_string().contains("Scheduled Event"), "{err}");

    let mut no_token = event("task-await-pipeline.json");
    no_token.as_object_mut().unwrap().remove("taskToken");
    for payload in [no_token, json!({"action": "poll"}), json!(null)] {
        let err = poll_execution::handle(payload.clone(), &world.ports())
            .await
            .expect_err("malformed");
        assert_eq!(err.error_type(), "BadInput", "{payload}: {err}");
    }
}

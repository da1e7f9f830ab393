//! start-pipelines fed the task inputs in events/, over the in-memory ports.

use rm_core::memory::{FakePipelines, FakeSource, ManualClock, MemoryStore, RecordingTokens};
use rm_core::ports::ManifestPorts;
use rm_core::ports::{ReleaseStore, StartError};
use rm_core::tasks::CheckManifestRequest;
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
    /// The sample release, claimed by the execution the task files name.
    async fn claimed() -> Self {
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
        let check = event("task-check-manifest.json");
        let request = CheckManifestRequest {
            input: event("release-manifest.json"),
            execution_name: check["executionName"].as_str().unwrap().to_owned(),
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
        .expect("the sample manifest is valid");
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

    async fn run_status(&self, pipeline: &str) -> RunStatus {
        let id = ReleaseId::parse("2026.03.1").unwrap();
        self.store
            .get_run(&id, pipeline)
            .await
            .unwrap()
            .unwrap()
            .status
    }
}

#[tokio::test]
async fn start_starts_the_pipeline_once_and_records_the_run() {
    let world = World::claimed().await;
    let out = start_pipelines::handle(event("task-start-pipeline.json"), &world.ports())
        .await
        .unwrap();
    assert_eq!(out["pipeline"], "payments-db-migrate");
    assert_eq!(out["status"], "InProgress");
    let execution_id = out["executionId"].as_str().unwrap().to_owned();
    assert_eq!(
        world.run_status("payments-db-migrate").await,
        RunStatus::InProgress
    );

    // A retried task: same run, no second start.
    let again = start_pipelines::handle(event("task-start-pipeline.json"), &world.ports())
        .await
        .unwrap();
    assert_eq!(again["executionId"], json!(execution_id));
    let starts = world
        .pipelines
        .calls()
        .into_iter()
        .filter(|c| c.starts_with("StartPipelineExecution"))
        .count();
    assert_eq!(starts, 1);
}

/// A throttled start is retried inside the task with backoff (issue 9: no state-level Retry,
/// no history events), so the task answers the started run.
#[tokio::test]
async fn a_throttled_start_is_retried_inside_the_task() {
    let world = World::claimed().await;
    world.pipelines.fail_next_starts(vec![StartError::Port(
        rm_core::error::PortError::Throttled("Rate exceeded".into()),
    )]);
    let out = start_pipelines::handle(event("task-start-pipeline.json"), &world.ports())
        .await
        .expect("retried");
    assert_eq!(out["status"], "InProgress", "{out}");
    assert_eq!(
        world.run_status("payments-db-migrate").await,
        RunStatus::InProgress
    );
}

#[tokio::test]
async fn a_pipeline_that_cannot_start_fails_the_task_by_name() {
    let world = World::claimed().await;
    world
        .pipelines
        .fail_next_starts(vec![StartError::NotStartable(
            "ConflictException: the pipeline is disabled".into(),
        )]);
    let err = start_pipelines::handle(event("task-start-pipeline.json"), &world.ports())
        .await
        .expect_err("not startable");
    assert_eq!(err.error_type(), "PipelineNotStartable");
    assert!(err.to_string().contains("payments-db-migrate"), "{err}");
}

#[tokio::test]
async fn stop_timed_out_stops_the_execution_with_a_reason() {
    let world = World::claimed().await;
    start_pipelines::handle(event("task-start-pipeline.json"), &world.ports())
        .await
        .unwrap();
    let out = start_pipelines::handle(event("task-stop-timed-out.json"), &world.ports())
        .await
        .unwrap();
    assert_eq!(out["status"], "Stopping");
    let stops = world.pipelines.stops();
    assert_eq!(stops.len(), 1);
    assert_eq!(stops[0].0, "payments-db-migrate");
    assert!(stops[0].2.contains("timeout"), "{}", stops[0].2);
}

#[tokio::test]
async fn stop_running_stops_what_runs_and_counts_the_rest() {
    let world = World::claimed().await;
    start_pipelines::handle(event("task-start-pipeline.json"), &world.ports())
        .await
        .unwrap();
    let out = start_pipelines::handle(event("task-stop-running.json"), &world.ports())
        .await
        .unwrap();
    assert_eq!(out, json!({"remaining": 1, "attempt": 1}));
    assert_eq!(world.pipelines.stops().len(), 1);
    assert_eq!(
        world.run_status("payments-db-migrate").await,
        RunStatus::Stopping
    );

    // The pipeline stopped: the next attempt finds nothing remaining.
    let exec = world
        .store
        .get_run(
            &ReleaseId::parse("2026.03.1").unwrap(),
            "payments-db-migrate",
        )
        .await
        .unwrap()
        .unwrap()
        .execution_id
        .unwrap();
    world.pipelines.set_status(&exec, RunStatus::Stopped);
    let mut next = event("task-stop-running.json");
    next["attempt"] = json!(1);
    let out = start_pipelines::handle(next, &world.ports()).await.unwrap();
    assert_eq!(out, json!({"remaining": 0, "attempt": 2}));
    assert_eq!(
        world.run_status("payments-db-migrate").await,
        RunStatus::Stopped
    );
}

#[tokio::test]
async fn a_task_of_an_unknown_release_or_action_is_a_clear_error() {
    let world = World::claimed().await;
    let mut unknown = event("task-start-pipeline.json");
    unknown["pipeline"] = json!("not-in-the-release");
    let err = start_pipelines::handle(unknown, &world.ports())
        .await
        .expect_err("unknown pipeline");
    assert_eq!(err.error_type(), "NotFound");

    for payload in [
        json!({"action": "launch"}),
        json!({"action": "start"}),
        json!([]),
    ] {
        let err = start_pipelines::handle(payload.clone(), &world.ports())
            .await
            .expect_err("bad input");
        assert_eq!(err.error_type(), "BadInput", "{payload}: {err}");
    }
}

//! Issue 9, fault 2: the reconciler, through record-state's handler on the EventBridge
//! "Step Functions Execution Status Change" event (the shape the template's rule delivers).

use record_state::handle;
use rm_core::ports::{ExecutionRunState, ExecutionState, ReleaseStore};
use rm_core::release::{ReleaseId, ReleaseStatus, RunStatus};
use rm_testkit::props::{World, SAMPLE_EXECUTION, SAMPLE_RELEASE};
use serde_json::{json, Value};

fn status_change(name: &str, status: &str, error: Option<&str>, cause: Option<&str>) -> Value {
    json!({
        "version": "0",
        "id": "315c1398-40ff-a850-213b-158f73e60175",
        "detail-type": "Step Functions Execution Status Change",
        "source": "aws.states",
        "account": "123456789012",
        "time": "2026-03-02T10:00:00Z",
        "region": "us-east-1",
        "resources": [format!("arn:aws:states:us-east-1:123456789012:execution:release-x:{name}")],
        "detail": {
            "executionArn": format!("arn:aws:states:us-east-1:123456789012:execution:release-x:{name}"),
            "stateMachineArn": "arn:aws:states:us-east-1:123456789012:stateMachine:release-x",
            "name": name,
            "status": status,
            "startDate": 1_772_442_900_000_i64,
            "stopDate": 1_772_445_600_000_i64,
            "input": "{}",
            "output": null,
            "error": error,
            "cause": cause,
        }
    })
}

async fn stored(w: &World) -> rm_core::release::StoredRelease {
    w.store
        .get(&ReleaseId::parse(SAMPLE_RELEASE).unwrap())
        .await
        .unwrap()
        .unwrap()
}

#[tokio::test]
async fn an_aborted_execution_ends_its_release_failed_and_stops_its_pipelines() {
    let w = World::new();
    w.claim_sample().await;
    w.start_sample("payments-db-migrate").await;
    w.start_sample("payments-api").await;

    let out = handle(
        status_change(SAMPLE_EXECUTION, "ABORTED", None, None),
        &w.run_ports(),
    )
    .await
    .unwrap();
    assert_eq!(out["outcome"], "Reconciled", "{out}");
    let s = stored(&w).await;
    assert_eq!(s.release.status, ReleaseStatus::Failed);
    let cause = s.release.cause.clone().unwrap();
    assert!(cause.starts_with("execution aborted"), "{cause}");
    assert!(
        cause.contains("stopping: payments-db-migrate, payments-api"),
        "{cause}"
    );
    assert_eq!(
        w.pipelines.stops().len(),
        2,
        "both running pipelines stopped"
    );
    for run in &s.runs {
        let expected = if run.execution_id.is_some() {
            RunStatus::Stopping
        } else {
            RunStatus::NotStarted
        };
        assert_eq!(run.status, expected, "{}", run.spec.name);
    }

    // Delivered again (EventBridge is at-least-once): nothing more happens.
    let again = handle(
        status_change(SAMPLE_EXECUTION, "ABORTED", None, None),
        &w.run_ports(),
    )
    .await
    .unwrap();
    assert_eq!(again["outcome"], "Nothing", "{again}");
    assert_eq!(w.pipelines.stops().len(), 2);
}

#[tokio::test]
async fn a_failure_past_every_catch_is_named_in_the_cause() {
    let w = World::new();
    w.claim_sample().await;
    let out = handle(
        status_change(
            SAMPLE_EXECUTION,
            "FAILED",
            Some("States.DataLimitExceeded"),
            Some("The state/task returned a result with a size exceeding the maximum"),
        ),
        &w.run_ports(),
    )
    .await
    .unwrap();
    assert_eq!(out["outcome"], "Reconciled", "{out}");
    let cause = stored(&w).await.release.cause.unwrap();
    assert!(
        cause.starts_with("execution failed: States.DataLimitExceeded: The state/task returned"),
        "{cause}"
    );
}

#[tokio::test]
async fn a_release_that_could_not_record_its_end_ends_as_its_runs_say() {
    let w = World::new();
    w.claim_sample().await;
    for p in rm_testkit::props::SAMPLE_PIPELINES {
        let id = w.start_sample(p).await;
        w.pipelines.set_status(&id, RunStatus::Succeeded);
        let k = rm_core::ports::RunKey {
            release_id: ReleaseId::parse(SAMPLE_RELEASE).unwrap(),
            pipeline: p.into(),
        };
        w.store
            .record_status(
                &k,
                RunStatus::Succeeded,
                rm_core::ports::Clock::now(&w.clock),
                &[],
            )
            .await
            .unwrap();
    }
    handle(
        status_change(
            SAMPLE_EXECUTION,
            "FAILED",
            Some("ReleaseNotRecorded"),
            Some("The release's end could not be recorded"),
        ),
        &w.run_ports(),
    )
    .await
    .unwrap();
    let s = stored(&w).await;
    assert_eq!(s.release.status, ReleaseStatus::Succeeded);
    assert_eq!(s.release.cause, None);
}

#[tokio::test]
async fn executions_that_hold_no_running_release_are_left_alone() {
    let w = World::new();
    w.claim_sample().await;
    let other = handle(
        status_change("someone-else", "TIMED_OUT", None, None),
        &w.run_ports(),
    )
    .await
    .unwrap();
    assert_eq!(other["outcome"], "Nothing");
    assert_eq!(stored(&w).await.release.status, ReleaseStatus::Running);

    let bad = handle(
        json!({"detail-type": "Step Functions Execution Status Change", "detail": {"status": 7}}),
        &w.run_ports(),
    )
    .await
    .unwrap();
    assert_eq!(bad["outcome"], "Rejected", "{bad}");
}

/// The sweep's half: DescribeExecution of every RUNNING release's execution.
#[tokio::test]
async fn the_sweep_reconciles_a_timed_out_execution_and_gives_up_an_abandoned_api_claim() {
    let w = World::new();
    w.claim_sample().await;
    w.start_sample("payments-api").await;
    w.executions.set_state(
        SAMPLE_EXECUTION,
        ExecutionState {
            status: ExecutionRunState::TimedOut,
            error: Some("States.Timeout".into()),
            cause: None,
        },
    );
    let out = rm_core::usecases::sweep(&w.run_ports()).await.unwrap();
    assert_eq!(out.reconciled, 1, "{out:?}");
    let s = stored(&w).await;
    assert_eq!(s.release.status, ReleaseStatus::Failed);
    assert!(s.release.cause.unwrap().starts_with("execution timed out"));

    // A release claimed through the API whose execution never started: given up after 15
    // minutes, so its id is free again; not before.
    let api = World::new();
    let submitted = rm_core::usecases::submit_release(
        &serde_json::to_vec(&json!({"releaseId": "r-api", "pipelines": ["payments-api"]})).unwrap(),
        "api-req-1",
        None,
        &api.api_ports(),
    )
    .await
    .unwrap();
    assert!(matches!(
        submitted,
        rm_core::usecases::SubmitOutcome::Accepted { .. }
    ));
    // FakeExecutions answers Running for an execution it started: make it one it never did.
    let id = ReleaseId::parse("r-api").unwrap();
    let never = World::new();
    let record = api.store.release_record(&id).await.unwrap().unwrap();
    assert_eq!(record.owner, "api-req-1");
    let ports = rm_core::ports::RunPorts {
        sensors: rm_core::memory::no_sensors(),
        executions: &never.executions,
        ..api.run_ports()
    };
    rm_core::usecases::sweep(&ports).await.unwrap();
    assert!(
        api.store.release_record(&id).await.unwrap().is_some(),
        "too early"
    );
    api.clock.advance(time::Duration::minutes(16));
    let out = rm_core::usecases::sweep(&ports).await.unwrap();
    assert_eq!(out.reconciled, 1, "{out:?}");
    assert!(
        api.store.release_record(&id).await.unwrap().is_none(),
        "given up"
    );
}

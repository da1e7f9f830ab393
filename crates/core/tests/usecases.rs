//! The use cases against in-memory ports: what the Lambdas do, without AWS.

use rm_core::memory::*;
use rm_core::ports::{
    AlarmState, ApiPorts, Clock, GatePorts, ManifestPorts, ReleaseStore, StartError,
};
use rm_core::release::{ReleaseId, ReleaseStatus, RunStatus};
use rm_core::tasks::*;
use rm_core::usecases::*;
use rm_core::TaskError;
use serde_json::json;

struct World {
    store: MemoryStore,
    pipelines: FakePipelines,
    tokens: RecordingTokens,
    clock: ManualClock,
    source: FakeSource,
}

impl World {
    fn new(existing: &[&str]) -> Self {
        Self {
            store: MemoryStore::new(),
            pipelines: FakePipelines::with(existing),
            tokens: RecordingTokens::default(),
            clock: ManualClock::fixed(),
            source: FakeSource::default(),
        }
    }

    fn ports(&self) -> RunPorts<'_> {
        RunPorts {
            sensors: rm_core::memory::no_sensors(),
            store: &self.store,
            pipelines: &self.pipelines,
            tokens: &self.tokens,
            executions: &rm_core::memory::NO_EXECUTIONS,
            clock: &self.clock,
            bus: &rm_core::memory::NO_BUS,
        }
    }

    async fn check(
        &self,
        input: serde_json::Value,
        execution: &str,
    ) -> Result<CheckManifestResponse, TaskError> {
        let req = CheckManifestRequest {
            input,
            execution_name: execution.into(),
        };
        let ports = ManifestPorts {
            store: &self.store,
            pipelines: &self.pipelines,
            source: &self.source,
            clock: &self.clock,
            bus: &rm_core::memory::NO_BUS,
        };
        check_manifest(&req, &ports).await
    }

    fn pref(&self, pipeline: &str) -> PipelineRef {
        PipelineRef {
            release_id: "r1".into(),
            execution_name: "exec-1".into(),
            pipeline: pipeline.into(),
        }
    }

    async fn status(&self, pipeline: &str) -> RunStatus {
        let id = ReleaseId::parse("r1").unwrap();
        self.store
            .get_run(&id, pipeline)
            .await
            .unwrap()
            .unwrap()
            .status
    }
}

fn s3_event(key: &str) -> serde_json::Value {
    json!({
        "version": "0", "id": "e1", "detail-type": "Object Created", "source": "aws.s3",
        "account": "123456789012", "time": "2026-01-01T00:00:00Z", "region": "us-east-1",
        "resources": ["arn:aws:s3:::manifests"],
        "detail": {"version": "0", "bucket": {"name": "manifests"},
                   "object": {"key": key, "size": 60, "etag": "x", "version-id": "v1", "sequencer": "1"},
                   "request-id": "r", "requester": "123456789012", "reason": "PutObject"}
    })
}

#[tokio::test]
async fn an_uploaded_manifest_is_validated_claimed_and_split_into_waves() {
    let w = World::new(&["app", "web", "db"]);
    w.source.put(
        "manifests",
        "release-manifest.json",
        r#"{"releaseId": 5.10, "pipelines": ["app", {"name": "db", "wave": 2, "timeoutMinutes": 5}, "web"]}"#,
    );
    let out = w
        .check(s3_event("release-manifest.json"), "exec-1")
        .await
        .unwrap();
    assert_eq!(out.outcome, Outcome::Started);
    assert_eq!(
        out.release_id, "5.10",
        "a numeric id is kept exactly as written"
    );
    assert_eq!(out.waves.len(), 2);
    assert_eq!(
        out.waves[0]
            .pipelines
            .iter()
            .map(|p| p.name.as_str())
            .collect::<Vec<_>>(),
        ["app", "web"]
    );
    assert_eq!(out.waves[1].pipelines[0].timeout_seconds, 300);
    let stored = w
        .store
        .get(&ReleaseId::parse("5.10").unwrap())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        stored.release.source.location.as_deref(),
        Some("s3://manifests/release-manifest.json?versionId=v1")
    );

    let retry = w
        .check(s3_event("release-manifest.json"), "exec-1")
        .await
        .unwrap();
    assert_eq!(
        retry.outcome,
        Outcome::Started,
        "a retried task by the owner passes"
    );
    let dup = w
        .check(s3_event("release-manifest.json"), "exec-2")
        .await
        .unwrap();
    assert_eq!(dup.outcome, Outcome::Duplicate);
}

#[tokio::test]
async fn a_manifest_naming_missing_pipelines_is_rejected_and_records_nothing() {
    let w = World::new(&["app"]);
    let err = w
        .check(
            json!({"releaseId": "r1", "pipelines": ["app", "ghost", "phantom"]}),
            "exec-1",
        )
        .await
        .unwrap_err();
    assert_eq!(err.error_type(), "ManifestInvalid");
    let msg = err.to_string();
    assert!(
        msg.contains("$.pipelines[1].name") && msg.contains("ghost"),
        "{msg}"
    );
    assert!(
        msg.contains("$.pipelines[2].name") && msg.contains("phantom"),
        "{msg}"
    );
    assert!(w
        .store
        .get(&ReleaseId::parse("r1").unwrap())
        .await
        .unwrap()
        .is_none());
}

#[tokio::test]
async fn a_missing_s3_object_is_a_clear_error() {
    let w = World::new(&["app"]);
    let err = w.check(s3_event("nope.json"), "exec-1").await.unwrap_err();
    assert_eq!(err.error_type(), "ManifestUnreadable");
    assert!(err
        .to_string()
        .contains("s3://manifests/nope.json does not exist"));
}

async fn started_world(pipelines: &[&str]) -> World {
    let w = World::new(pipelines);
    let list: Vec<_> = pipelines.iter().map(|p| json!(p)).collect();
    w.check(json!({"releaseId": "r1", "pipelines": list}), "exec-1")
        .await
        .unwrap();
    w
}

#[tokio::test]
async fn a_retried_start_never_starts_a_pipeline_twice() {
    let w = started_world(&["app"]).await;
    let first = start_pipeline(&w.pref("app"), &w.ports()).await.unwrap();
    let again = start_pipeline(&w.pref("app"), &w.ports()).await.unwrap();
    assert_eq!(first.status, RunStatus::InProgress);
    assert_eq!(first.execution_id, again.execution_id);
    let starts = w
        .pipelines
        .calls()
        .iter()
        .filter(|c| c.starts_with("StartPipelineExecution"))
        .count();
    assert_eq!(starts, 1);
}

/// Issue 9, fault 10: a throttled start is retried inside the task with backoff (no state-level
/// Retry, no history events), and one still throttled after the budget is left NotStarted for
/// the sweep, as a busy pipeline is.
#[tokio::test]
async fn throttled_starts_are_retried_inside_the_task_then_left_to_the_sweep() {
    let throttled = || StartError::Port(rm_core::error::PortError::Throttled("slow down".into()));
    let w = started_world(&["app"]).await;
    w.pipelines.fail_next_starts(vec![throttled(), throttled()]);
    let before = Clock::now(&w.clock);
    let run = start_pipeline(&w.pref("app"), &w.ports()).await.unwrap();
    assert_eq!(run.status, RunStatus::InProgress);
    assert!(Clock::now(&w.clock) > before, "it backed off");

    let w = started_world(&["app"]).await;
    w.pipelines.fail_next_starts(vec![throttled(); 20]);
    let run = start_pipeline(&w.pref("app"), &w.ports()).await.unwrap();
    assert_eq!(run.status, RunStatus::NotStarted);
    let waited = Clock::now(&w.clock) - before;
    assert!(
        waited >= rm_core::usecases::START_THROTTLE_BUDGET && waited.whole_seconds() < 60,
        "{waited}"
    );
}

#[tokio::test]
async fn a_pipeline_deleted_after_the_check_ends_not_found() {
    let w = started_world(&["app"]).await;
    w.pipelines
        .fail_next_starts(vec![StartError::NotFound("app".into())]);
    let out = start_pipeline(&w.pref("app"), &w.ports()).await.unwrap();
    assert_eq!(out.status, RunStatus::NotFound);
    let awaited = await_pipeline("r1", "exec-1", "app", "tok", 0, &w.ports())
        .await
        .unwrap();
    assert!(
        awaited.completed,
        "a terminal run completes its wait at once"
    );
}

#[tokio::test]
async fn the_event_completes_the_waiting_task_once() {
    let w = started_world(&["app"]).await;
    let started = start_pipeline(&w.pref("app"), &w.ports()).await.unwrap();
    let exec = started.execution_id.unwrap();
    let awaited = await_pipeline("r1", "exec-1", "app", "tok-1", 0, &w.ports())
        .await
        .unwrap();
    assert!(!awaited.completed);
    let change = PipelineStateChange {
        pipeline: "app".into(),
        execution_id: exec.clone(),
        status: RunStatus::Succeeded,
        at: w.clock.now_plus(180),
    };
    assert_eq!(
        record_state_change(&change, &w.ports()).await.unwrap(),
        ChangeOutcome::Recorded(RunStatus::Succeeded)
    );
    assert_eq!(
        record_state_change(&change, &w.ports()).await.unwrap(),
        ChangeOutcome::Recorded(RunStatus::Succeeded)
    );
    let sent = w.tokens.sent();
    assert_eq!(sent.len(), 1, "a duplicate event does not complete twice");
    assert_eq!(sent[0].1.as_ref().unwrap()["status"], "Succeeded");
    let other = PipelineStateChange {
        execution_id: "someone-elses".into(),
        ..change
    };
    assert_eq!(
        record_state_change(&other, &w.ports()).await.unwrap(),
        ChangeOutcome::NotOurs
    );
}

#[tokio::test]
async fn a_pipeline_that_finished_before_the_wait_is_completed_by_the_wait() {
    let w = started_world(&["app"]).await;
    let exec = start_pipeline(&w.pref("app"), &w.ports())
        .await
        .unwrap()
        .execution_id
        .unwrap();
    w.pipelines.set_status(&exec, RunStatus::Failed);
    let awaited = await_pipeline("r1", "exec-1", "app", "tok-1", 0, &w.ports())
        .await
        .unwrap();
    assert_eq!(awaited.status, RunStatus::Failed);
    assert!(awaited.completed);
    let (error, _) = w.tokens.sent()[0].1.clone().expect_err("SendTaskFailure");
    assert_eq!(error, "PipelineFailed");
}

#[tokio::test]
async fn the_sweep_completes_runs_whose_events_were_lost() {
    let w = started_world(&["app", "web"]).await;
    for p in ["app", "web"] {
        start_pipeline(&w.pref(p), &w.ports()).await.unwrap();
        await_pipeline("r1", "exec-1", p, &format!("tok-{p}"), 0, &w.ports())
            .await
            .unwrap();
    }
    let app = w
        .store
        .get_run(&ReleaseId::parse("r1").unwrap(), "app")
        .await
        .unwrap()
        .unwrap();
    w.pipelines
        .set_status(app.execution_id.as_deref().unwrap(), RunStatus::Succeeded);
    let out = sweep(&w.ports()).await.unwrap();
    assert_eq!((out.polled, out.completed, out.errors), (2, 1, 0));
    assert_eq!(w.status("app").await, RunStatus::Succeeded);
    assert_eq!(w.status("web").await, RunStatus::InProgress);
    assert_eq!(
        sweep(&w.ports()).await.unwrap().polled,
        1,
        "a completed run no longer waits"
    );
}

#[tokio::test]
async fn stop_running_stops_siblings_and_waits_until_they_are_terminal() {
    let w = started_world(&["app", "web", "db"]).await;
    for p in ["app", "web", "db"] {
        start_pipeline(&w.pref(p), &w.ports()).await.unwrap();
    }
    let rid = ReleaseId::parse("r1").unwrap();
    let app = w.store.get_run(&rid, "app").await.unwrap().unwrap();
    w.pipelines
        .set_status(app.execution_id.as_deref().unwrap(), RunStatus::Failed);
    sweep(&w.ports()).await.unwrap();
    await_pipeline("r1", "exec-1", "app", "t", 0, &w.ports())
        .await
        .unwrap();
    assert_eq!(w.status("app").await, RunStatus::Failed);

    let first = stop_running("r1", "exec-1", 0, &w.ports()).await.unwrap();
    assert_eq!((first.remaining, first.attempt), (2, 1));
    let stops = w.pipelines.stops();
    assert_eq!(stops.len(), 2);
    assert!(
        stops
            .iter()
            .all(|(_, _, reason, abandon)| reason.contains("app") && !abandon),
        "{stops:?}"
    );
    for p in ["web", "db"] {
        let run = w.store.get_run(&rid, p).await.unwrap().unwrap();
        assert_eq!(run.status, RunStatus::Stopping);
        w.pipelines
            .set_status(run.execution_id.as_deref().unwrap(), RunStatus::Stopped);
    }
    let second = stop_running("r1", "exec-1", 1, &w.ports()).await.unwrap();
    assert_eq!(second.remaining, 0);
    assert_eq!(
        w.pipelines.stops().len(),
        2,
        "a stopping run is not stopped again"
    );

    let view = record_release(
        &RecordReleaseRequest {
            release_id: "r1".into(),
            execution_name: "exec-1".into(),
            status: ReleaseStatus::Failed,
            error: Some(CaughtError {
                error: "PipelineFailed".into(),
                cause: None,
            }),
        },
        &w.ports(),
    )
    .await
    .unwrap();
    assert_eq!(view.status, ReleaseStatus::Failed);
    let cause = view.cause.unwrap();
    assert!(
        cause.contains("app (Failed)") && cause.contains("web (Stopped)"),
        "{cause}"
    );
}

#[tokio::test]
async fn a_start_asked_after_stop_was_requested_starts_nothing() {
    let w = started_world(&["app", "web"]).await;
    stop_running("r1", "exec-1", 0, &w.ports()).await.unwrap();
    let late = start_pipeline(&w.pref("web"), &w.ports()).await.unwrap();
    assert_eq!(late.status, RunStatus::NotStarted);
    assert!(w.pipelines.stops().is_empty());
}

/// Issue 9, "ended means ended": a task of an execution restarted by RedriveExecution (same
/// name, so the same owner) fails at once, non-retryably, instead of starting a pipeline of a
/// release that ended.
#[tokio::test]
async fn a_redriven_task_of_an_ended_release_starts_nothing() {
    let w = started_world(&["app"]).await;
    let view = record_release(
        &RecordReleaseRequest {
            release_id: "r1".into(),
            execution_name: "exec-1".into(),
            status: ReleaseStatus::Failed,
            error: None,
        },
        &w.ports(),
    )
    .await
    .unwrap();
    assert_eq!(view.status, ReleaseStatus::Failed);
    let err = await_pipeline("r1", "exec-1", "app", "tok", 0, &w.ports())
        .await
        .unwrap_err();
    assert_eq!(err.error_type(), "ReleaseEnded");
    assert!(!err.is_retryable());
    assert_eq!(w.status("app").await, RunStatus::NotStarted);
    assert!(w
        .pipelines
        .calls()
        .iter()
        .all(|c| !c.starts_with("StartPipelineExecution")));
}

/// Issue 9, fault 9: a token write never replaces a newer attempt's token: the older
/// invocation (still running when Step Functions retried the task) answers `superseded` and
/// leaves the run to the newer one.
#[tokio::test]
async fn an_older_attempt_never_replaces_a_newer_token() {
    let w = started_world(&["app"]).await;
    let newer = await_pipeline("r1", "exec-1", "app", "tok-new", 1, &w.ports())
        .await
        .unwrap();
    assert!(!newer.superseded);
    // The older invocation's write arrives late, stamped with its earlier time.
    let k = rm_core::ports::RunKey {
        release_id: rm_core::ReleaseId::parse("r1").unwrap(),
        pipeline: "app".into(),
    };
    let earlier = Clock::now(&w.clock) - time::Duration::seconds(5);
    let run = w.store.set_token(&k, "tok-old", earlier).await.unwrap();
    assert_eq!(run.task_token.as_deref(), Some("tok-new"));
}

#[tokio::test]
async fn the_stop_wait_is_bounded() {
    let w = started_world(&["app"]).await;
    start_pipeline(&w.pref("app"), &w.ports()).await.unwrap();
    let out = stop_running("r1", "exec-1", MAX_STOP_ATTEMPTS - 1, &w.ports())
        .await
        .unwrap();
    assert_eq!(out.remaining, 0);
    let stops = w.pipelines.stops();
    assert_eq!(stops.len(), 1, "the running pipeline is stopped: {stops:?}");
    assert!(stops[0].3, "a late stop abandons: {stops:?}");
}

#[tokio::test]
async fn success_is_recorded_only_when_every_run_succeeded() {
    let w = started_world(&["app"]).await;
    start_pipeline(&w.pref("app"), &w.ports()).await.unwrap();
    let req = RecordReleaseRequest {
        release_id: "r1".into(),
        execution_name: "exec-1".into(),
        status: ReleaseStatus::Succeeded,
        error: None,
    };
    let rid = ReleaseId::parse("r1").unwrap();
    let exec = w
        .store
        .get_run(&rid, "app")
        .await
        .unwrap()
        .unwrap()
        .execution_id
        .unwrap();
    w.pipelines.set_status(&exec, RunStatus::Succeeded);
    sweep(&w.ports()).await.unwrap();
    await_pipeline("r1", "exec-1", "app", "t", 0, &w.ports())
        .await
        .unwrap();
    let view = record_release(&req, &w.ports()).await.unwrap();
    assert_eq!(view.status, ReleaseStatus::Succeeded);
    assert_eq!(view.pipelines[0].history.len(), 2);
    let again = record_release(
        &RecordReleaseRequest {
            status: ReleaseStatus::Failed,
            ..req.clone()
        },
        &w.ports(),
    )
    .await
    .unwrap();
    assert_eq!(
        again.status,
        ReleaseStatus::Succeeded,
        "a recorded end never changes"
    );
    let intruder = RecordReleaseRequest {
        execution_name: "exec-2".into(),
        ..req
    };
    assert_eq!(
        record_release(&intruder, &w.ports(),)
            .await
            .unwrap_err()
            .error_type(),
        "Duplicate"
    );
}

#[tokio::test]
async fn the_api_claims_then_starts_and_gives_the_claim_back_if_the_start_fails() {
    let w = World::new(&["app"]);
    let execs = FakeExecutions::default();
    let api = ApiPorts {
        sensors: rm_core::memory::no_sensors(),
        store: &w.store,
        pipelines: &w.pipelines,
        executions: &execs,
        clock: &w.clock,
        bus: &rm_core::memory::NO_BUS,
        tokens: &rm_core::memory::NO_TOKENS,
    };
    let body = br#"{"releaseId": "api-1", "pipelines": ["app"]}"#;
    let out = submit_release(body, "x1", Some("arn:aws:iam::1:user/me"), &api)
        .await
        .unwrap();
    assert!(matches!(out, SubmitOutcome::Accepted { .. }));
    assert_eq!(execs.started()[0].1, json!({"claimedRelease": "api-1"}));
    let again = submit_release(body, "x2", None, &api).await.unwrap();
    assert!(matches!(again, SubmitOutcome::Conflict { .. }));
    let started_by_api = w
        .check(json!({"claimedRelease": "api-1"}), "x1")
        .await
        .unwrap();
    assert_eq!(started_by_api.outcome, Outcome::Started);

    let bad = submit_release(
        br#"{"releaseId": "", "pipelines": ["ghost"]}"#,
        "x3",
        None,
        &api,
    )
    .await
    .unwrap();
    let SubmitOutcome::Invalid(errors) = bad else {
        panic!("expected 400")
    };
    assert_eq!(errors[0].path, "$.releaseId");

    let missing = submit_release(
        br#"{"releaseId": "api-2", "pipelines": ["ghost"]}"#,
        "x4",
        None,
        &api,
    )
    .await
    .unwrap();
    assert!(matches!(missing, SubmitOutcome::Invalid(ref e) if e[0].path == "$.pipelines[0].name"));

    execs.fail_with(rm_core::error::PortError::Transient("boom".into()));
    let body3 = br#"{"releaseId": "api-3", "pipelines": ["app"]}"#;
    assert!(submit_release(body3, "x5", None, &api,).await.is_err());
    assert!(
        get_release("api-3", &api).await.unwrap().is_none(),
        "the id is not used up"
    );
    assert!(get_release("api-1", &api).await.unwrap().is_some());
}

#[tokio::test]
async fn the_health_gate_holds_on_alarms_and_answers_the_job() {
    let alarm = |name: &str, state: &str, enabled: bool| AlarmState {
        name: name.into(),
        state: state.parse().unwrap(),
        actions_enabled: enabled,
        reason: None,
        transitioned_at: None,
    };
    let alarms = FakeAlarms::with(vec![
        alarm("prod-api-5xx", "ALARM", true),
        alarm("prod-db-cpu", "OK", true),
        alarm("prod-old", "ALARM", false),
    ]);
    let health = FakeHealth::default();
    let jobs = RecordingJobs::default();
    let store = MemoryStore::new();
    let clock = ManualClock::fixed();
    let ports = GatePorts {
        alarms: &alarms,
        health: &health,
        jobs: &jobs,
        store: &store,
        clock: &clock,
    };
    let d = run_health_gate(
        "job-1",
        Some(r#"{"alarmPrefixes": ["prod-"]}"#),
        None,
        &ports,
    )
    .await
    .unwrap();
    assert!(!d.pass);
    assert!(
        d.reason.contains("prod-api-5xx") && !d.reason.contains("prod-old"),
        "{}",
        d.reason
    );
    assert_eq!(jobs.results()[0], ("job-1".into(), false, d.reason.clone()));

    let ok = run_health_gate(
        "job-2",
        Some(r#"{"alarmNames": ["prod-db-cpu"]}"#),
        None,
        &ports,
    )
    .await
    .unwrap();
    assert!(ok.pass, "{}", ok.reason);

    *alarms.error.lock().unwrap() = Some(rm_core::error::PortError::Transient("down".into()));
    let closed = run_health_gate("job-3", Some(r#"{"alarmNames": ["x"]}"#), None, &ports)
        .await
        .unwrap();
    assert!(!closed.pass && closed.reason.contains("failing closed"));
    let open = run_health_gate(
        "job-4",
        Some(r#"{"alarmNames": ["x"], "failOpen": true}"#),
        None,
        &ports,
    )
    .await
    .unwrap();
    assert!(open.pass && open.reason.contains("failing open"));

    let bad = run_health_gate("job-5", Some(r#"{"alarms": "x"}"#), None, &ports)
        .await
        .unwrap();
    assert!(!bad.pass && bad.reason.contains("UserParameters"));
    assert_eq!(jobs.results().len(), 5, "every job is answered");
}

#[test]
fn client_request_tokens_are_stable_and_use_allowed_characters() {
    let id = ReleaseId::parse("5.10").unwrap();
    let a = client_request_token(&id, "app", 1);
    assert_eq!(a, client_request_token(&id, "app", 1));
    assert_ne!(
        a,
        client_request_token(&id, "app", 2),
        "a retry starts anew"
    );
    assert_ne!(a, client_request_token(&id, "web", 1));
    assert!(a.chars().all(|c| c.is_ascii_alphanumeric() || c == '-') && a.len() <= 128);
}

trait NowPlus {
    fn now_plus(&self, secs: i64) -> time::OffsetDateTime;
}

impl NowPlus for ManualClock {
    fn now_plus(&self, secs: i64) -> time::OffsetDateTime {
        use rm_core::ports::Clock;
        self.now() + time::Duration::seconds(secs)
    }
}

/// Issue 9, fault 3: StopRunning handles each run on its own. A run whose execution
/// CodePipeline no longer knows is recorded NotFound (terminal); its siblings are still
/// stopped.
#[tokio::test]
async fn stop_running_is_not_aborted_by_a_run_that_is_gone() {
    let w = started_world(&["app", "gone", "web"]).await;
    for p in ["app", "web"] {
        start_pipeline(&w.pref(p), &w.ports()).await.unwrap();
    }
    let rid = ReleaseId::parse("r1").unwrap();
    let now = rm_core::ports::Clock::now(&w.clock);
    // Started as an execution the (fake) CodePipeline does not know: Get answers not found.
    w.store
        .record_start(&rid, "exec-1", "gone", "exec-vanished", now, &[])
        .await
        .unwrap();
    let out = stop_running("r1", "exec-1", 0, &w.ports()).await.unwrap();
    assert_eq!(out.remaining, 2);
    assert_eq!(w.status("gone").await, RunStatus::NotFound);
    for p in ["app", "web"] {
        assert_eq!(w.status(p).await, RunStatus::Stopping, "{p}");
    }
}

/// Issue 9, fault 7: StopTimedOut refreshes first; a run that in fact succeeded counts as
/// Succeeded and is not stopped.
#[tokio::test]
async fn stop_timed_out_counts_a_run_that_succeeded() {
    let w = started_world(&["app"]).await;
    let run = start_pipeline(&w.pref("app"), &w.ports()).await.unwrap();
    w.pipelines
        .set_status(run.execution_id.as_deref().unwrap(), RunStatus::Succeeded);
    let out = stop_timed_out(&w.pref("app"), &w.ports()).await.unwrap();
    assert_eq!(out.status, RunStatus::Succeeded);
    assert_eq!(w.status("app").await, RunStatus::Succeeded);
    assert!(w.pipelines.stops().is_empty());
}

/// Issue 9, fault 7: a run still not terminal after the bounded stop wait is marked
/// stopAbandoned; a run that stopped is not.
#[tokio::test]
async fn a_stop_given_up_after_the_bounded_wait_is_recorded_abandoned() {
    let w = started_world(&["app", "web"]).await;
    for p in ["app", "web"] {
        start_pipeline(&w.pref(p), &w.ports()).await.unwrap();
    }
    let rid = ReleaseId::parse("r1").unwrap();
    let web = w.store.get_run(&rid, "web").await.unwrap().unwrap();
    w.pipelines
        .set_status(web.execution_id.as_deref().unwrap(), RunStatus::Stopped);
    let out = stop_running("r1", "exec-1", MAX_STOP_ATTEMPTS - 1, &w.ports())
        .await
        .unwrap();
    assert_eq!(out.remaining, 0);
    let app = w.store.get_run(&rid, "app").await.unwrap().unwrap();
    assert!(app.stop_abandoned, "{app:?}");
    let web = w.store.get_run(&rid, "web").await.unwrap().unwrap();
    assert!(!web.stop_abandoned, "{web:?}");
    let view = rm_core::view::ReleaseView::from(&w.store.get(&rid).await.unwrap().unwrap());
    let json = serde_json::to_value(&view).unwrap();
    assert_eq!(json["pipelines"][0]["stopAbandoned"], true, "{json}");
}

/// Issue 9, fault 5: a busy start is not a failure; the run stays NotStarted, the wait retries
/// the start, and StopTimedOut fails a run still never started.
#[tokio::test]
async fn busy_starts_are_retried_by_the_wait_and_fail_at_the_timeout() {
    let w = started_world(&["app", "web"]).await;
    w.pipelines.fail_next_starts(vec![
        StartError::Busy("ConflictException: the pipeline is busy".into()),
        StartError::Busy("ConflictException: the pipeline is busy".into()),
    ]);
    let first = start_pipeline(&w.pref("app"), &w.ports()).await.unwrap();
    assert_eq!(first.status, RunStatus::NotStarted);
    let waited = await_pipeline("r1", "exec-1", "app", "t1", 0, &w.ports())
        .await
        .unwrap();
    assert_eq!(waited.status, RunStatus::NotStarted, "still busy");
    sweep(&w.ports()).await.unwrap();
    assert_eq!(
        w.status("app").await,
        RunStatus::InProgress,
        "the sweep started it"
    );

    w.pipelines
        .fail_next_starts(vec![StartError::Busy("busy".into()); 3]);
    start_pipeline(&w.pref("web"), &w.ports()).await.unwrap();
    await_pipeline("r1", "exec-1", "web", "t2", 0, &w.ports())
        .await
        .unwrap();
    let out = stop_timed_out(&w.pref("web"), &w.ports()).await.unwrap();
    assert_eq!(out.status, RunStatus::Failed);
    assert!(w.pipelines.stops().is_empty());
    let rid = ReleaseId::parse("r1").unwrap();
    let web = w.store.get_run(&rid, "web").await.unwrap().unwrap();
    assert_eq!(web.task_token, None);
}

//! poll-execution's gate, bake and halt waits (issue 12), fed the payloads the state machine
//! sends (`awaitGate`, `awaitBake`), the one-minute schedule's `{"action": "gates"}` and
//! CloudWatch's Alarm State Change event from events/, over in-memory ports in manual time.

use poll_execution::handle;
use rm_core::lifecycle::{WaitKind, WaitingFor, WaveStatus};
use rm_core::ports::{AlarmValue, Clock, ReleaseStore};
use rm_core::release::{ReleaseId, ReleaseStatus, RunStatus, StoredRelease};
use rm_core::tasks::{CheckManifestRequest, RecordReleaseRequest};
use rm_core::usecases;
use rm_testkit::event;
use rm_testkit::props::World;
use serde_json::{json, Value};
use time::Duration;

const OWNER: &str = "exec-gates";
const ALARM: &str = "prod-api-5xx";

fn rid() -> ReleaseId {
    ReleaseId::parse("r-gates").unwrap()
}

/// Claims a two-wave release with these gates.
async fn claimed(gates: Value) -> World {
    let w = World::new();
    let request = CheckManifestRequest {
        input: json!({
            "releaseId": "r-gates",
            "pipelines": [
                {"name": "payments-db-migrate", "wave": 1},
                {"name": "payments-api", "wave": 2}
            ],
            "gates": gates,
        }),
        execution_name: OWNER.into(),
    };
    usecases::check_manifest(&request, &w.manifest_ports())
        .await
        .expect("the manifest is valid");
    w
}

fn wait(action: &str, wave: u32, token: &str) -> Value {
    json!({"action": action, "releaseId": "r-gates", "executionName": OWNER, "wave": wave,
        "taskToken": token})
}

async fn poll(w: &World, payload: Value) -> Value {
    handle(payload, &w.run_ports())
        .await
        .expect("poll-execution answers")
}

async fn gates(w: &World) -> Value {
    poll(w, event("task-gates.json")).await
}

async fn release(w: &World) -> StoredRelease {
    w.store.get(&rid()).await.unwrap().unwrap()
}

/// What was sent for `token`: `Ok(output)` or `Err((error, cause))`.
fn sent(w: &World, token: &str) -> Vec<Result<Value, (String, String)>> {
    w.tokens
        .sent()
        .into_iter()
        .filter(|(t, _)| t == token)
        .map(|(_, r)| r)
        .collect()
}

fn wave_status(r: &StoredRelease, wave: u32) -> WaveStatus {
    r.release.lifecycle.wave(wave).unwrap().status
}

#[tokio::test]
async fn an_open_gate_completes_its_wait_at_once_and_records_no_wait() {
    let w = claimed(json!({"alarmNames": [ALARM]})).await;
    w.alarms.set(ALARM, AlarmValue::Ok, w.clock.now());
    poll(&w, wait("awaitGate", 1, "t-open")).await;
    assert_eq!(sent(&w, "t-open").len(), 1);
    assert!(sent(&w, "t-open")[0].is_ok());
    let r = release(&w).await;
    assert_eq!(r.release.lifecycle.waiting_for, None);
    assert!(r.release.lifecycle.waits.is_empty());
}

#[tokio::test]
async fn a_wave_waits_for_its_alarm_to_clear_then_starts_by_itself() {
    let w = claimed(json!({"alarmNames": [ALARM]})).await;
    let t0 = w.clock.now();
    w.alarms.set(ALARM, AlarmValue::Alarm, t0);
    poll(&w, wait("awaitGate", 1, "t-gate")).await;
    assert!(
        sent(&w, "t-gate").is_empty(),
        "a closed gate holds the wave"
    );
    let r = release(&w).await;
    match &r.release.lifecycle.waiting_for {
        Some(WaitingFor::Gate {
            wave: 1,
            reasons,
            since,
        }) => {
            assert_eq!(*since, t0);
            assert!(
                reasons
                    .iter()
                    .any(|x| x.contains("alarm prod-api-5xx is in ALARM")),
                "{reasons:?}"
            );
        }
        other => panic!("expected waitingFor gate, got {other:?}"),
    }
    assert_eq!(wave_status(&r, 1), WaveStatus::WaitingGate);

    // The schedule a minute later: still closed.
    w.clock.advance(Duration::minutes(1));
    let out = gates(&w).await;
    assert_eq!(out["evaluated"], 1);
    assert!(sent(&w, "t-gate").is_empty());

    // The alarm clears; CloudWatch's event re-evaluates at once.
    w.clock.advance(Duration::seconds(20));
    w.alarms.set(ALARM, AlarmValue::Ok, w.clock.now());
    let out = poll(&w, event("cloudwatch-alarm-state-change.json")).await;
    assert_eq!(out["opened"], 1, "{out}");
    assert!(sent(&w, "t-gate")[0].is_ok());
    let r = release(&w).await;
    assert_eq!(r.release.lifecycle.waiting_for, None);
    let waited = r.release.lifecycle.waits.last().unwrap();
    assert_eq!(waited.kind, WaitKind::Gate);
    assert_eq!(waited.until, Some(w.clock.now()));
    // The published Release Waiting event names what it waited for.
    let waiting: Vec<Value> = w
        .bus
        .events()
        .into_iter()
        .filter(|e| e.detail_type == "Release Waiting")
        .map(|e| e.detail)
        .collect();
    assert_eq!(waiting[0]["waitingFor"]["gate"]["wave"], 1, "{waiting:?}");
    assert_eq!(waiting.last().unwrap()["waiting"], false);
}

#[tokio::test]
async fn a_gate_fails_the_release_after_max_wait_not_counting_halted_time() {
    let w = claimed(json!({"alarmNames": [ALARM], "maxWaitMinutes": 10})).await;
    w.alarms.set(ALARM, AlarmValue::Alarm, w.clock.now());
    poll(&w, wait("awaitGate", 1, "t-gate")).await;

    w.clock.advance(Duration::minutes(5));
    usecases::set_halt("incident 4711", "alice", &w.api_ports())
        .await
        .unwrap();
    let r = release(&w).await;
    assert!(
        matches!(&r.release.lifecycle.waiting_for, Some(WaitingFor::Halt { by, reason, .. }) if by == "alice" && reason == "incident 4711"),
        "{:?}",
        r.release.lifecycle.waiting_for
    );
    // An hour halted does not count.
    w.clock.advance(Duration::minutes(60));
    gates(&w).await;
    assert!(sent(&w, "t-gate").is_empty());
    usecases::lift_halt("bob", &w.api_ports()).await.unwrap();
    let r = release(&w).await;
    assert!(matches!(
        r.release.lifecycle.waiting_for,
        Some(WaitingFor::Gate { wave: 1, .. })
    ));
    // 5 + 4 minutes closed: still waiting.
    w.clock.advance(Duration::minutes(4));
    gates(&w).await;
    assert!(sent(&w, "t-gate").is_empty());
    // 5 + 4 + 1: the limit.
    w.clock.advance(Duration::minutes(1));
    let out = gates(&w).await;
    assert_eq!(out["failed"], 1, "{out}");
    let (error, cause) = sent(&w, "t-gate")[0].clone().unwrap_err();
    assert_eq!(error, usecases::GATE_TIMED_OUT);
    assert!(cause.contains("stayed closed for 10 minutes"), "{cause}");
    assert!(cause.contains("alarm prod-api-5xx is in ALARM"), "{cause}");

    // The state machine's RecordFailure, with the cause lost on the way (moto drops it): the
    // release's cause is the recorded one.
    let record = RecordReleaseRequest {
        release_id: "r-gates".into(),
        execution_name: OWNER.into(),
        status: ReleaseStatus::Failed,
        error: Some(rm_core::tasks::CaughtError {
            error: usecases::GATE_TIMED_OUT.into(),
            cause: None,
        }),
    };
    usecases::record_release(&record, &w.run_ports())
        .await
        .unwrap();
    let r = release(&w).await;
    assert_eq!(r.release.status, ReleaseStatus::Failed);
    assert_eq!(r.release.cause.as_deref(), Some(cause.as_str()));
    assert_eq!(r.release.lifecycle.waiting_for, None);
}

#[tokio::test]
async fn a_bake_passes_and_the_wave_succeeds_at_its_end() {
    let w = claimed(json!({"alarmNames": [ALARM], "bakeMinutes": 15})).await;
    let t0 = w.clock.now();
    w.alarms.set(ALARM, AlarmValue::Ok, t0);
    poll(&w, wait("awaitBake", 1, "t-bake")).await;
    let r = release(&w).await;
    assert_eq!(
        r.release.lifecycle.waiting_for,
        Some(WaitingFor::Bake {
            wave: 1,
            until: t0 + Duration::minutes(15)
        })
    );
    assert_eq!(wave_status(&r, 1), WaveStatus::Baking);
    w.clock.advance(Duration::minutes(14));
    let out = gates(&w).await;
    assert_eq!(out["nextAt"], json!(rfc3339(t0 + Duration::minutes(15))));
    assert!(sent(&w, "t-bake").is_empty());
    w.clock.advance(Duration::minutes(1));
    gates(&w).await;
    assert!(sent(&w, "t-bake")[0].is_ok());
    let r = release(&w).await;
    assert_eq!(r.release.lifecycle.waiting_for, None);
    assert_eq!(wave_status(&r, 1), WaveStatus::Succeeded);
}

#[tokio::test]
async fn a_flap_during_the_bake_fails_it_at_its_end_from_the_alarm_history() {
    let w = claimed(json!({"alarmNames": [ALARM], "bakeMinutes": 15})).await;
    let t0 = w.clock.now();
    w.alarms.set(ALARM, AlarmValue::Ok, t0);
    poll(&w, wait("awaitBake", 1, "t-bake")).await;
    // ALARM for 30 seconds between two looks a minute apart.
    w.alarms
        .set(ALARM, AlarmValue::Alarm, t0 + Duration::seconds(190));
    w.alarms
        .set(ALARM, AlarmValue::Ok, t0 + Duration::seconds(220));
    w.clock.advance(Duration::minutes(4));
    gates(&w).await;
    assert!(sent(&w, "t-bake").is_empty(), "OK now: no early failure");
    w.clock.advance(Duration::minutes(11));
    gates(&w).await;
    let (error, cause) = sent(&w, "t-bake")[0].clone().unwrap_err();
    assert_eq!(error, usecases::BAKE_FAILED);
    assert!(cause.contains("wave 1"), "{cause}");
    assert!(cause.contains("alarm prod-api-5xx was in ALARM"), "{cause}");
    assert_eq!(wave_status(&release(&w).await, 1), WaveStatus::Failed);
}

#[tokio::test]
async fn an_alarm_during_the_bake_fails_it_early() {
    let w = claimed(json!({"alarmPrefixes": ["prod-"], "bakeMinutes": 15})).await;
    w.alarms.set(ALARM, AlarmValue::Ok, w.clock.now());
    poll(&w, wait("awaitBake", 2, "t-bake")).await;
    w.clock.advance(Duration::minutes(2));
    w.alarms.set(ALARM, AlarmValue::Alarm, w.clock.now());
    poll(&w, event("cloudwatch-alarm-state-change.json")).await;
    let (error, cause) = sent(&w, "t-bake")[0].clone().unwrap_err();
    assert_eq!(error, usecases::BAKE_FAILED);
    assert_eq!(
        cause,
        "the bake of wave 2 failed: alarm prod-api-5xx is in ALARM"
    );
}

#[tokio::test]
async fn a_halt_holds_pipeline_starts_and_lifting_it_starts_them() {
    let w = claimed(json!({})).await;
    usecases::set_halt("incident 4711", "alice", &w.api_ports())
        .await
        .unwrap();
    let payload = json!({"action": "await", "releaseId": "r-gates", "executionName": OWNER,
        "pipeline": "payments-db-migrate", "taskToken": "t-run"});
    poll(&w, payload).await;
    let r = release(&w).await;
    let run = r
        .runs
        .iter()
        .find(|x| x.spec.name == "payments-db-migrate")
        .unwrap();
    assert_eq!(run.status, RunStatus::NotStarted, "held, not started");
    assert!(
        w.pipelines.calls().iter().all(|c| !c.starts_with("Start")),
        "{:?}",
        w.pipelines.calls()
    );
    assert!(matches!(
        r.release.lifecycle.waiting_for,
        Some(WaitingFor::Halt { wave: Some(1), .. })
    ));
    // The sweep does not start it either while the halt is on.
    usecases::sweep(&w.run_ports()).await.unwrap();
    assert!(w.pipelines.calls().iter().all(|c| !c.starts_with("Start")));

    let lifted = usecases::lift_halt("bob", &w.api_ports()).await.unwrap();
    assert_eq!(lifted.map(|h| h.by), Some("alice".to_owned()));
    let r = release(&w).await;
    let run = r
        .runs
        .iter()
        .find(|x| x.spec.name == "payments-db-migrate")
        .unwrap();
    assert_ne!(run.status, RunStatus::NotStarted, "started at once");
    assert_eq!(r.release.lifecycle.waiting_for, None);
    let halts: Vec<Value> = w
        .bus
        .events()
        .into_iter()
        .filter(|e| e.detail_type == "Halt Status Change")
        .map(|e| e.detail)
        .collect();
    assert_eq!(halts.len(), 2);
    assert_eq!(halts[0]["on"], true);
    assert_eq!(halts[0]["by"], "alice");
    assert_eq!(halts[1]["on"], false);
    assert_eq!(halts[1]["by"], "bob");
}

#[tokio::test]
async fn a_halt_needs_a_reason() {
    let w = World::new();
    let e = usecases::set_halt("  ", "alice", &w.api_ports())
        .await
        .unwrap_err();
    assert!(e.to_string().contains("reason"), "{e}");
    assert_eq!(w.store.halt().await.unwrap(), None);
}

#[tokio::test]
async fn a_bake_whose_alarm_history_cannot_be_read_tries_again_then_fails_closed() {
    let w = claimed(json!({"alarmNames": [ALARM], "bakeMinutes": 5})).await;
    w.alarms.set(ALARM, AlarmValue::Ok, w.clock.now());
    poll(&w, wait("awaitBake", 1, "t-bake")).await;
    w.clock.advance(Duration::minutes(5));
    *w.alarms.error.lock().unwrap() =
        Some(rm_core::error::PortError::Throttled("slow down".into()));
    let out = gates(&w).await;
    assert_eq!(out["errors"], 1, "{out}");
    assert!(sent(&w, "t-bake").is_empty(), "tried again later");
    w.clock.advance(Duration::minutes(10));
    gates(&w).await;
    let (error, cause) = sent(&w, "t-bake")[0].clone().unwrap_err();
    assert_eq!(error, usecases::BAKE_FAILED);
    assert!(cause.contains("could not be read"), "{cause}");
}

fn rfc3339(at: time::OffsetDateTime) -> String {
    at.format(&time::format_description::well_known::Rfc3339)
        .unwrap()
}

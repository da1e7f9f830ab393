//! Issue 12 end to end: the safety gates that wait, on one loopback stack (moto, router,
//! emulator, cargo lambda watch). Alarms live in moto's CloudWatch; the re-evaluations the
//! template schedules (`{"action": "gates"}` every minute, CloudWatch Alarm State Change
//! events) are delivered by the test, as EventBridge would.
//!
//! One test, one stack (a stack costs seconds to start): the alarm gate, the failing bake and
//! the gate action that passes through continuation tokens run at once (each with its own
//! alarm); the halt runs last and alone, since it holds every release of the stack.
//!
//! Not covered here: a bake that passes. Its end reads DescribeAlarmHistory, which moto does
//! not model (it answers 500; crates/aws/tests/cloudwatch.rs tests the adapter on mocks).

use aws_sdk_cloudwatch::types::{ComparisonOperator, StateValue, Statistic};
use rm_core::lifecycle::{WaitingFor, WaveStatus};
use rm_core::release::{ReleaseStatus, StoredRelease};
use rm_e2e::{event, Stack, StackOptions};
use rm_local::emulator::GateChain;
use serde_json::{json, Value};
use std::time::{Duration, Instant};

/// How long a step may take on the loopback stack (a guard against a hang, not a budget).
const STEP: Duration = Duration::from_secs(90);

/// The emulator re-invokes a held gate action this often (CodePipeline: about a minute).
const GATE_INTERVAL: Duration = Duration::from_millis(1500);

async fn put_alarm(stack: &Stack, name: &str, state: StateValue) {
    let cw = stack.cloudwatch();
    cw.put_metric_alarm()
        .alarm_name(name)
        .metric_name("5XXError")
        .namespace("AWS/ApiGateway")
        .statistic(Statistic::Sum)
        .period(60)
        .evaluation_periods(1)
        .threshold(1.0)
        .comparison_operator(ComparisonOperator::GreaterThanThreshold)
        .send()
        .await
        .expect("PutMetricAlarm");
    set_alarm(stack, name, state).await;
}

async fn set_alarm(stack: &Stack, name: &str, state: StateValue) {
    stack
        .cloudwatch()
        .set_alarm_state()
        .alarm_name(name)
        .state_value(state)
        .state_reason("e2e")
        .send()
        .await
        .expect("SetAlarmState");
}

/// The "CloudWatch Alarm State Change" event EventBridge delivers to poll-execution (the
/// template's rule) when `alarm` changes to `state`.
fn alarm_state_change(alarm: &str, state: &str) -> Value {
    let mut e = event("cloudwatch-alarm-state-change.json");
    e["id"] = json!(rm_testkit::unique_name("cw-event"));
    e["resources"] = json!([format!(
        "arn:aws:cloudwatch:us-east-1:123456789012:alarm:{alarm}"
    )]);
    e["detail"]["alarmName"] = json!(alarm);
    e["detail"]["state"]["value"] = json!(state);
    e
}

/// The one-minute schedule's re-evaluation, delivered now: poll-execution's answer.
async fn reevaluate(stack: &Stack) -> Value {
    stack
        .invoke("poll-execution", json!({"action": "gates"}))
        .await
        .ok()
}

/// An API Gateway proxy event for `method /halt` (the sample POST's caller).
fn api_halt(method: &str, body: Option<Value>) -> Value {
    let mut e = event("apigw-post-release.json");
    e["httpMethod"] = json!(method);
    e["resource"] = json!("/halt");
    e["path"] = json!("/halt");
    e["pathParameters"] = Value::Null;
    e["body"] = body.map_or(Value::Null, |b| json!(b.to_string()));
    e["isBase64Encoded"] = json!(false);
    e["requestContext"]["requestId"] = json!(rm_testkit::unique_name("req"));
    e["requestContext"]["httpMethod"] = json!(method);
    e["requestContext"]["resourcePath"] = json!("/halt");
    e["requestContext"]["path"] = json!("/Prod/halt");
    e
}

/// `method /halt` through release-api: its status code and JSON body.
async fn halt_call(stack: &Stack, method: &str, body: Option<Value>) -> (u64, Value) {
    let response = stack
        .invoke("release-api", api_halt(method, body))
        .await
        .ok();
    let status = response["statusCode"].as_u64().unwrap_or_default();
    let body = response["body"].as_str().unwrap_or("null");
    (
        status,
        serde_json::from_str(body).unwrap_or_else(|_| json!(body)),
    )
}

/// Starts a release of `manifest` the way an upload does (its S3 event).
async fn start_release(stack: &Stack, manifest: &Value) -> String {
    let id = manifest["releaseId"].as_str().unwrap();
    let input = stack
        .upload_manifest(&format!("releases/{id}.json"), manifest)
        .await;
    stack.start_execution(id, &input).await
}

fn wave_status(release: &StoredRelease, wave: u32) -> Option<WaveStatus> {
    release
        .release
        .lifecycle
        .waves
        .iter()
        .find(|w| w.wave == wave)
        .map(|w| w.status)
}

async fn ended(stack: &Stack, id: &str, want: ReleaseStatus) -> StoredRelease {
    let release = stack
        .wait_release(id, STEP, &format!("{want:?}"), |r| {
            r.release.status != ReleaseStatus::Running
        })
        .await;
    assert_eq!(
        release.release.status,
        want,
        "{id}: {:?}\n{}",
        release.release.cause,
        stack.diagnostics_async(None).await
    );
    release
}

/// Waits until the gate action's chain satisfies `check`; returns it.
async fn chain_until(
    stack: &Stack,
    id: &str,
    what: &str,
    check: impl Fn(&GateChain) -> bool,
) -> GateChain {
    let t0 = Instant::now();
    loop {
        let chain = stack.emulator.gate_job(id).expect("the gate job exists");
        if check(&chain) {
            return chain;
        }
        assert!(
            t0.elapsed() < STEP,
            "gate job {id}: not {what} after {STEP:?}: {chain:#?}\n{}",
            stack.diagnostics_async(None).await
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Every job so far was held (PutJobSuccessResult with a continuation token), each after the
/// first carrying the previous one's token.
fn all_held(chain: &GateChain) -> bool {
    chain.jobs.iter().all(|j| {
        j.result
            .as_ref()
            .is_some_and(|r| r.success && r.continuation_token.is_some())
    }) && chain.jobs.windows(2).all(|w| {
        w[1].continuation_token.as_deref()
            == w[0]
                .result
                .as_ref()
                .and_then(|r| r.continuation_token.as_deref())
    })
}

fn last_message(chain: &GateChain) -> String {
    chain
        .jobs
        .last()
        .and_then(|j| j.result.as_ref())
        .and_then(|r| r.message.clone())
        .unwrap_or_default()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn gates_hold_and_release_end_to_end() {
    let t0 = Instant::now();
    let stack = Stack::start(StackOptions {
        sim: json!({"defaults": {"durationSeconds": 1, "stopSeconds": 1}}),
        ..StackOptions::default()
    })
    .await;
    stack.warm_up().await;
    let started = t0.elapsed();

    let (a, b, d) = tokio::join!(
        alarm_gate_holds_the_wave_until_the_alarm_clears(&stack),
        an_alarm_during_the_bake_fails_the_release(&stack),
        the_gate_action_passes_by_itself_when_its_alarm_clears(&stack),
    );
    let c = the_halt_holds_releases_and_gate_actions_until_lifted(&stack).await;
    eprintln!(
        "[e2e] gates: stack {started:.1?}; alarm gate {a:.1?}, bake {b:.1?}, gate action {d:.1?} \
         (at once), halt {c:.1?}; total {:.1?}",
        t0.elapsed()
    );
    rm_e2e::report(&json!({
        "test": "gates",
        "stackSeconds": started.as_secs_f64(),
        "alarmGateSeconds": a.as_secs_f64(),
        "bakeSeconds": b.as_secs_f64(),
        "gateActionSeconds": d.as_secs_f64(),
        "haltSeconds": c.as_secs_f64(),
        "totalSeconds": t0.elapsed().as_secs_f64(),
    }));
}

/// (a) An alarm in ALARM holds wave 1 (`waitingFor.gate`, wave WaitingGate); once it is OK,
/// the schedule's re-evaluation opens the gate, the wave starts by itself and the release
/// succeeds.
async fn alarm_gate_holds_the_wave_until_the_alarm_clears(stack: &Stack) -> Duration {
    let t0 = Instant::now();
    let alarm = "e2e-gate-a-5xx";
    put_alarm(stack, alarm, StateValue::Alarm).await;
    let manifest = json!({
        "releaseId": "gate-a-1",
        "pipelines": ["gate-a-api"],
        "gates": {"alarmNames": [alarm]},
    });
    let arn = start_release(stack, &manifest).await;
    let held = stack
        .wait_release("gate-a-1", STEP, "held at the gate", |r| {
            matches!(
                r.release.lifecycle.waiting_for,
                Some(WaitingFor::Gate { wave: 1, .. })
            )
        })
        .await;
    assert_eq!(wave_status(&held, 1), Some(WaveStatus::WaitingGate));
    let Some(WaitingFor::Gate { reasons, .. }) = &held.release.lifecycle.waiting_for else {
        unreachable!()
    };
    assert!(
        reasons.iter().any(|r| r.contains(alarm)),
        "the reason names the alarm: {reasons:?}"
    );
    let view = serde_json::to_value(stack.release_view("gate-a-1").await).unwrap();
    assert!(
        view["waitingFor"]["gate"].is_object(),
        "the release JSON shows the gate: {view:#}"
    );
    assert!(
        stack
            .emulator
            .executions()
            .iter()
            .all(|e| e.pipeline != "gate-a-api"),
        "no pipeline started behind a closed gate"
    );

    // Still ALARM: the re-evaluation keeps it closed.
    reevaluate(stack).await;
    let still = stack.release("gate-a-1").await.unwrap();
    assert_eq!(wave_status(&still, 1), Some(WaveStatus::WaitingGate));

    set_alarm(stack, alarm, StateValue::Ok).await;
    let answer = reevaluate(stack).await;
    assert!(answer["opened"].as_u64() >= Some(1), "{answer}");
    let done = ended(stack, "gate-a-1", ReleaseStatus::Succeeded).await;
    assert_eq!(done.release.lifecycle.waiting_for, None);
    assert_eq!(wave_status(&done, 1), Some(WaveStatus::Succeeded));
    let execution = stack.wait_execution(&arn, STEP).await;
    assert_eq!(execution.status().as_str(), "SUCCEEDED");
    t0.elapsed()
}

/// (b) A bake (bakeMinutes 1) fails when an alarm goes to ALARM during it: the Alarm State
/// Change event re-evaluates at once, the release FAILS with a cause naming the alarm and the
/// wave.
async fn an_alarm_during_the_bake_fails_the_release(stack: &Stack) -> Duration {
    let t0 = Instant::now();
    let alarm = "e2e-bake-b-latency";
    put_alarm(stack, alarm, StateValue::Ok).await;
    let manifest = json!({
        "releaseId": "bake-b-1",
        "pipelines": [{"name": "bake-b-api", "wave": 1}, {"name": "bake-b-web", "wave": 2}],
        "gates": {"alarmNames": [alarm], "bakeMinutes": 1},
    });
    let arn = start_release(stack, &manifest).await;
    let baking = stack
        .wait_release("bake-b-1", STEP, "baking wave 1", |r| {
            matches!(
                r.release.lifecycle.waiting_for,
                Some(WaitingFor::Bake { wave: 1, .. })
            )
        })
        .await;
    assert_eq!(wave_status(&baking, 1), Some(WaveStatus::Baking));

    set_alarm(stack, alarm, StateValue::Alarm).await;
    stack
        .invoke("poll-execution", alarm_state_change(alarm, "ALARM"))
        .await
        .ok();
    let failed = ended(stack, "bake-b-1", ReleaseStatus::Failed).await;
    let cause = failed.release.cause.clone().unwrap_or_default();
    assert!(
        cause.contains(alarm) && cause.contains("wave 1"),
        "the cause names the alarm and the wave: {cause}"
    );
    assert!(
        stack
            .emulator
            .executions()
            .iter()
            .all(|e| e.pipeline != "bake-b-web"),
        "wave 2 never started"
    );
    let execution = stack.wait_execution(&arn, STEP).await;
    assert_eq!(execution.status().as_str(), "FAILED");
    t0.elapsed()
}

/// (d) The gate action (health gate with waitMinutes) holds through continuation tokens while
/// its alarm is in ALARM and passes by itself once the alarm is OK.
async fn the_gate_action_passes_by_itself_when_its_alarm_clears(stack: &Stack) -> Duration {
    let t0 = Instant::now();
    let alarm = "e2e-action-d-5xx";
    put_alarm(stack, alarm, StateValue::Alarm).await;
    let id = stack.start_gate_job(
        &json!({
            "alarmNames": [alarm],
            "waitMinutes": 30,
            "executionId": "#{codepipeline.PipelineExecutionId}",
        }),
        "exec-no-release-d",
        GATE_INTERVAL,
    );
    let held = chain_until(stack, &id, "held twice", |c| {
        c.jobs.len() >= 2 && all_held(c)
    })
    .await;
    assert_eq!(held.status, "InProgress");
    assert!(
        last_message(&held).contains(alarm),
        "{}",
        last_message(&held)
    );

    set_alarm(stack, alarm, StateValue::Ok).await;
    let passed = chain_until(stack, &id, "ended", |c| c.status != "InProgress").await;
    assert_eq!(passed.status, "Succeeded", "{passed:#?}");
    assert!(
        last_message(&passed).contains("after waiting"),
        "{}",
        last_message(&passed)
    );
    t0.elapsed()
}

/// (c) PUT /halt holds a release before its wave (`waitingFor.halt`) and a gate action
/// (continuation tokens); DELETE /halt resumes both at once.
async fn the_halt_holds_releases_and_gate_actions_until_lifted(stack: &Stack) -> Duration {
    let t0 = Instant::now();
    let (status, on) = halt_call(stack, "PUT", Some(json!({"reason": "e2e incident"}))).await;
    assert_eq!(status, 200, "{on}");
    assert_eq!(on["on"], true);
    assert_eq!(on["reason"], "e2e incident");
    let (_, shown) = halt_call(stack, "GET", None).await;
    assert_eq!(shown, on);

    let alarm = "e2e-halt-c-ok";
    put_alarm(stack, alarm, StateValue::Ok).await;
    let arn = start_release(
        stack,
        &json!({"releaseId": "halt-c-1", "pipelines": ["halt-c-api"]}),
    )
    .await;
    let gate = stack.start_gate_job(
        &json!({
            "alarmNames": [alarm],
            "waitMinutes": 30,
            "executionId": "#{codepipeline.PipelineExecutionId}",
        }),
        "exec-no-release-c",
        GATE_INTERVAL,
    );
    let held = stack
        .wait_release("halt-c-1", STEP, "held by the halt", |r| {
            matches!(
                r.release.lifecycle.waiting_for,
                Some(WaitingFor::Halt { .. })
            )
        })
        .await;
    let Some(WaitingFor::Halt { reason, .. }) = &held.release.lifecycle.waiting_for else {
        unreachable!()
    };
    assert_eq!(reason, "e2e incident");
    let chain = chain_until(stack, &gate, "held twice", |c| {
        c.jobs.len() >= 2 && all_held(c)
    })
    .await;
    assert!(
        last_message(&chain).contains("e2e incident"),
        "{}",
        last_message(&chain)
    );
    // The schedule's re-evaluation keeps it held while the halt is on.
    reevaluate(stack).await;
    assert!(stack
        .emulator
        .executions()
        .iter()
        .all(|e| e.pipeline != "halt-c-api"));

    let lifted_at = Instant::now();
    let (status, off) = halt_call(stack, "DELETE", None).await;
    assert_eq!(status, 200, "{off}");
    assert_eq!(off["on"], false);
    assert_eq!(off["lifted"]["reason"], "e2e incident");
    // No schedule delivered: lifting the halt resumes the release by itself.
    ended(stack, "halt-c-1", ReleaseStatus::Succeeded).await;
    let resumed_in = lifted_at.elapsed();
    let chain = chain_until(stack, &gate, "ended", |c| c.status != "InProgress").await;
    assert_eq!(chain.status, "Succeeded", "{chain:#?}");
    assert_eq!(
        stack.wait_execution(&arn, STEP).await.status().as_str(),
        "SUCCEEDED"
    );
    eprintln!("[e2e] gates: the halted release ended {resumed_in:.1?} after DELETE /halt");
    t0.elapsed()
}

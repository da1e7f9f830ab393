//! Scenarios 2–17 of the end-to-end proof (scenario 1: release_from_s3.rs). Each starts its
//! own stack (moto, router, emulator, cargo lambda watch) and asserts the release and run
//! records in moto's DynamoDB (dynalite's for the concurrent retries). Scenarios 12–17 operate
//! releases (issue 11): cancel, retry, approvals, notifications.

use rm_core::lifecycle::{ApprovalStatus, WaitingFor, WaveStatus};
use rm_core::ports::ReleaseStore;
use rm_core::release::{ReleaseId, ReleaseStatus, RunStatus};
use rm_e2e::{
    assert_runs, event, manifest, run_statuses, DynamoTarget, Stack, StackOptions, DEFAULT_WAIT,
};
use rm_local::SimFile;
use serde_json::{json, Value};
use std::collections::BTreeMap;
use std::time::{Duration, Instant};

/// The caller of the sample API Gateway events (`requestContext.identity.userArn`).
const CALLER: &str = "arn:aws:iam::111122223333:user/release-manager";

async fn stack(sim: Value) -> Stack {
    let stack = Stack::start(StackOptions {
        sim,
        ..StackOptions::default()
    })
    .await;
    stack.warm_up().await;
    stack
}

/// An API Gateway proxy event (events/apigw-post-release.json) POSTing `manifest`.
fn api_post(manifest: &Value) -> Value {
    let mut e = event("apigw-post-release.json");
    e["body"] = json!(manifest.to_string());
    e["isBase64Encoded"] = json!(false);
    e["requestContext"]["requestId"] = json!(rm_testkit::unique_name("req"));
    e
}

fn api_body(response: &Value) -> Value {
    let body = response["body"].as_str().unwrap_or("null");
    serde_json::from_str(body).unwrap_or_else(|_| json!(body))
}

async fn succeeded(stack: &Stack, arn: &str) -> Value {
    let done = stack.wait_execution(arn, DEFAULT_WAIT).await;
    assert_eq!(
        done.status().as_str(),
        "SUCCEEDED",
        "{}",
        stack.diagnostics_async(Some(arn)).await
    );
    serde_json::from_str(done.output().unwrap_or("null")).unwrap()
}

/// The "Step Functions Execution Status Change" event EventBridge delivers to record-state
/// (the template's rule) for the execution `arn`: moto publishes none, so a test sends it.
/// `stopped`: the error and cause StopExecution gave.
fn execution_status_change(arn: &str, status: &str, stopped: Option<(&str, &str)>) -> Value {
    let (machine, name) = arn
        .replace(":execution:", ":stateMachine:")
        .rsplit_once(':')
        .map(|(m, n)| (m.to_owned(), n.to_owned()))
        .unwrap_or_else(|| panic!("not an execution ARN: {arn}"));
    json!({
        "version": "0",
        "id": rm_testkit::unique_name("sfn-event"),
        "detail-type": "Step Functions Execution Status Change",
        "source": "aws.states",
        "account": "123456789012",
        "time": time::OffsetDateTime::now_utc()
            .format(&time::format_description::well_known::Rfc3339)
            .unwrap(),
        "region": "us-east-1",
        "resources": [arn],
        "detail": {
            "executionArn": arn,
            "stateMachineArn": machine,
            "name": name,
            "status": status,
            "error": stopped.map(|s| s.0),
            "cause": stopped.map(|s| s.1),
        }
    })
}

/// An API Gateway proxy event for `POST /releases/{id}/{action}` with `body` (the sample
/// POST's caller), as a new API call.
fn api_operate(action: &str, id: &str, body: Option<Value>) -> Value {
    let mut e = event("apigw-post-release.json");
    e["resource"] = json!(format!("/releases/{{id}}/{action}"));
    e["path"] = json!(format!("/releases/{id}/{action}"));
    e["pathParameters"] = json!({ "id": id });
    e["body"] = body.map_or(Value::Null, |b| json!(b.to_string()));
    e["isBase64Encoded"] = json!(false);
    e["requestContext"]["requestId"] = json!(rm_testkit::unique_name("req"));
    e["requestContext"]["resourcePath"] = json!(format!("/releases/{{id}}/{action}"));
    e["requestContext"]["path"] = json!(format!("/Prod/releases/{id}/{action}"));
    e
}

/// `POST /releases/{id}/{action}` through release-api: its status code and JSON body.
async fn operate(stack: &Stack, action: &str, id: &str, body: Option<Value>) -> (u64, Value) {
    let response = stack
        .invoke("release-api", api_operate(action, id, body))
        .await
        .ok();
    let status = response["statusCode"].as_u64().unwrap_or_default();
    (status, api_body(&response))
}

/// Waits until the release waits for the approval of `wave`.
async fn waiting_for_approval(stack: &Stack, id: &str, wave: u32) {
    stack
        .wait_release(id, DEFAULT_WAIT, "waiting for an approval", |r| {
            matches!(r.release.lifecycle.waiting_for, Some(WaitingFor::Approval { wave: w, .. }) if w == wave)
        })
        .await;
}

/// Invokes poll-execution with the 5-minute schedule's event, as EventBridge would; its answer.
async fn sweep(stack: &Stack) -> Value {
    let mut tick = event("scheduled-sweep.json");
    tick["time"] = json!(time::OffsetDateTime::now_utc()
        .format(&time::format_description::well_known::Rfc3339)
        .unwrap());
    stack.invoke("poll-execution", tick).await.ok()
}

/// Sweeps every 2 s until the execution ends, which must be SUCCEEDED (within
/// [`DEFAULT_WAIT`]); how many sweeps it took.
async fn succeeded_with_sweeps(stack: &Stack, arn: &str) -> u32 {
    let t0 = Instant::now();
    let mut sweeps = 0;
    loop {
        let done = stack
            .sfn()
            .describe_execution()
            .execution_arn(arn)
            .send()
            .await
            .unwrap();
        if done.status().as_str() != "RUNNING" {
            assert_eq!(
                done.status().as_str(),
                "SUCCEEDED",
                "{}",
                stack.diagnostics_async(Some(arn)).await
            );
            return sweeps;
        }
        assert!(
            t0.elapsed() < DEFAULT_WAIT,
            "still RUNNING after {sweeps} sweeps\n{}",
            stack.diagnostics_async(Some(arn)).await
        );
        sweep(stack).await;
        sweeps += 1;
        tokio::time::sleep(Duration::from_secs(2)).await;
    }
}

/// Scenario 2: POST through the API handler: 202, then SUCCEEDED; the same again: 409.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn api_post_then_conflict() {
    let stack = stack(json!({"defaults": {"durationSeconds": 1}})).await;
    let manifest = json!({"releaseId": "api-1", "pipelines": ["orders", "billing"]});
    let response = stack.invoke("release-api", api_post(&manifest)).await.ok();
    assert_eq!(response["statusCode"], 202, "{response}");
    let body = api_body(&response);
    assert_eq!(body["releaseId"], "api-1", "{body}");
    let arn = body["executionArn"]
        .as_str()
        .unwrap_or_else(|| panic!("no executionArn in {body}"))
        .to_owned();
    succeeded(&stack, &arn).await;
    let release = stack.release("api-1").await.unwrap();
    assert_eq!(release.release.status, ReleaseStatus::Succeeded);
    assert_runs(
        &release,
        &stack.emulator.executions(),
        &[
            ("orders", RunStatus::Succeeded),
            ("billing", RunStatus::Succeeded),
        ],
    );

    let again = stack.invoke("release-api", api_post(&manifest)).await.ok();
    assert_eq!(again["statusCode"], 409, "{again}");
    assert_eq!(
        stack.emulator.executions().len(),
        2,
        "nothing started twice"
    );

    // GET /releases/{id} answers the release JSON.
    let mut get = event("apigw-get-release.json");
    get["path"] = json!("/releases/api-1");
    get["pathParameters"] = json!({"id": "api-1"});
    let got = stack.invoke("release-api", get).await.ok();
    assert_eq!(got["statusCode"], 200, "{got}");
    assert_eq!(api_body(&got)["status"], "SUCCEEDED");
}

/// Scenario 3: one pipeline fails: the siblings are stopped, the release FAILED naming it.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn one_failure_stops_the_siblings() {
    let stack = stack(json!({
        "defaults": {"durationSeconds": 60, "stopSeconds": 1},
        "pipelines": {"bad-pipe": {"outcome": "Failed", "durationSeconds": 2, "failedStage": "Deploy"}}
    }))
    .await;
    let manifest = json!({"releaseId": "fail-1", "pipelines": ["good-a", "bad-pipe", "good-b"]});
    let input = stack
        .upload_manifest("releases/fail-1.json", &manifest)
        .await;
    let arn = stack.start_execution("fail-1", &input).await;
    let done = stack.wait_execution(&arn, DEFAULT_WAIT).await;
    assert_eq!(
        done.status().as_str(),
        "FAILED",
        "{}",
        stack.diagnostics_async(Some(&arn)).await
    );
    let release = stack.release("fail-1").await.unwrap();
    assert_eq!(release.release.status, ReleaseStatus::Failed);
    let cause = release.release.cause.clone().unwrap_or_default();
    assert!(cause.contains("bad-pipe"), "cause {cause:?}");
    let executions = stack.emulator.executions();
    assert_runs(
        &release,
        &executions,
        &[
            ("good-a", RunStatus::Stopped),
            ("bad-pipe", RunStatus::Failed),
            ("good-b", RunStatus::Stopped),
        ],
    );
    assert_eq!(executions.len(), 3, "{executions:#?}");
    for e in executions {
        if e.pipeline != "bad-pipe" {
            assert!(
                e.stop_reason.is_some(),
                "{} was not stopped: {e:?}",
                e.pipeline
            );
        }
    }
}

/// Scenario 4: CodePipeline throttles the first starts: retried, nothing started twice.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn throttled_starts_are_retried_once_started() {
    let stack = stack(json!({
        "defaults": {"durationSeconds": 1, "throttleStarts": 2},
        "pipelines": {"hot": {"throttleStarts": 6}}
    }))
    .await;
    let manifest = json!({"releaseId": "throttle-1", "pipelines": ["hot", "warm", "cool"]});
    let input = stack
        .upload_manifest("releases/throttle-1.json", &manifest)
        .await;
    let arn = stack.start_execution("throttle-1", &input).await;
    succeeded(&stack, &arn).await;
    let release = stack.release("throttle-1").await.unwrap();
    assert_eq!(release.release.status, ReleaseStatus::Succeeded);
    let executions = stack.emulator.executions();
    assert_eq!(executions.len(), 3, "{executions:#?}");
    // Each run records the one execution that started, started and ended once: the throttled
    // attempts left no trace in the records.
    assert_runs(
        &release,
        &executions,
        &[
            ("hot", RunStatus::Succeeded),
            ("warm", RunStatus::Succeeded),
            ("cool", RunStatus::Succeeded),
        ],
    );
    for run in &release.runs {
        assert_eq!(
            run_statuses(run),
            [RunStatus::InProgress, RunStatus::Succeeded],
            "{}: {:?}",
            run.pipeline(),
            run.history
        );
    }
    let calls = stack.emulator.calls();
    assert_eq!(
        calls["hot"]["StartPipelineExecution.throttled"], 6,
        "{calls:?}"
    );
    for p in ["hot", "warm", "cool"] {
        assert_eq!(executions.iter().filter(|e| e.pipeline == p).count(), 1);
        assert!(calls[p]["StartPipelineExecution"] > calls[p]["StartPipelineExecution.throttled"]);
    }
}

/// Scenario 5: every state-change event is lost: the sweep, invoked as the schedule would,
/// completes the release.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn sweep_completes_when_events_are_lost() {
    let stack = stack(json!({"defaults": {"durationSeconds": 1, "events": "drop"}})).await;
    let manifest = json!({"releaseId": "sweep-1", "pipelines": ["quiet-a", "quiet-b"]});
    let input = stack
        .upload_manifest("releases/sweep-1.json", &manifest)
        .await;
    let arn = stack.start_execution("sweep-1", &input).await;
    let sweeps = succeeded_with_sweeps(&stack, &arn).await;
    assert!(stack.emulator.events().is_empty(), "no event was delivered");
    let release = stack.release("sweep-1").await.unwrap();
    assert_eq!(release.release.status, ReleaseStatus::Succeeded);
    assert_runs(
        &release,
        &stack.emulator.executions(),
        &[
            ("quiet-a", RunStatus::Succeeded),
            ("quiet-b", RunStatus::Succeeded),
        ],
    );
    eprintln!("[e2e] sweep: {sweeps} sweeps until the release ended");
}

/// Scenario 6: the same upload event delivered twice at once: one release runs, the other
/// execution ends `{"outcome": "Duplicate", "releaseId": ...}`.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn duplicate_event_runs_one_release() {
    let stack = stack(json!({"defaults": {"durationSeconds": 2}})).await;
    let manifest = json!({"releaseId": "dup-1", "pipelines": ["one", "two"]});
    let input = stack
        .upload_manifest("releases/dup-1.json", &manifest)
        .await;
    let (a, b) = tokio::join!(
        stack.start_execution("dup-1-a", &input),
        stack.start_execution("dup-1-b", &input)
    );
    let (out_a, out_b) = tokio::join!(succeeded(&stack, &a), succeeded(&stack, &b));
    let is_duplicate = |o: &Value| o["outcome"] == "Duplicate" && o["releaseId"] == "dup-1";
    let dups = [&out_a, &out_b].iter().filter(|o| is_duplicate(o)).count();
    assert_eq!(dups, 1, "exactly one Duplicate: {out_a} / {out_b}");
    let winner = if is_duplicate(&out_a) {
        "dup-1-b"
    } else {
        "dup-1-a"
    };
    let release = stack.release("dup-1").await.unwrap();
    assert_eq!(release.release.status, ReleaseStatus::Succeeded);
    assert_eq!(release.release.owner, winner);
    let executions = stack.emulator.executions();
    assert_eq!(
        executions.len(),
        2,
        "each pipeline started once: {executions:#?}"
    );
    // One run per pipeline, holding the one execution started, recorded once: the duplicate
    // execution wrote nothing.
    assert_runs(
        &release,
        &executions,
        &[("one", RunStatus::Succeeded), ("two", RunStatus::Succeeded)],
    );
    for run in &release.runs {
        assert_eq!(
            run_statuses(run),
            [RunStatus::InProgress, RunStatus::Succeeded],
            "{}: {:?}",
            run.pipeline(),
            run.history
        );
    }
}

/// Scenario 7: the health gate fails the job while a configured alarm is in ALARM (moto
/// CloudWatch), with the alarm's name; passes it once the alarm is OK.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn health_gate_follows_the_alarm() {
    let stack = stack(json!({})).await;
    let cw = stack.cloudwatch();
    let alarm = "e2e-payments-api-5xx";
    cw.put_metric_alarm()
        .alarm_name(alarm)
        .metric_name("5XXError")
        .namespace("AWS/ApiGateway")
        .statistic(aws_sdk_cloudwatch::types::Statistic::Sum)
        .period(60)
        .evaluation_periods(1)
        .threshold(1.0)
        .comparison_operator(aws_sdk_cloudwatch::types::ComparisonOperator::GreaterThanThreshold)
        .send()
        .await
        .expect("PutMetricAlarm");
    let set = |state: aws_sdk_cloudwatch::types::StateValue| {
        cw.set_alarm_state()
            .alarm_name(alarm)
            .state_value(state)
            .state_reason("e2e")
            .send()
    };
    set(aws_sdk_cloudwatch::types::StateValue::Alarm)
        .await
        .expect("SetAlarmState ALARM");

    let job = |id: &str| {
        let mut e = event("codepipeline-job.json");
        e["CodePipeline.job"]["id"] = json!(id);
        e["CodePipeline.job"]["data"]["actionConfiguration"]["configuration"]["UserParameters"] =
            json!(json!({"alarmNames": [alarm], "insufficientData": "fail"}).to_string());
        e
    };
    stack.invoke("health-gate", job("job-alarm")).await.ok();
    let results = stack.emulator.job_results();
    let result = results
        .iter()
        .find(|r| r.job_id == "job-alarm")
        .unwrap_or_else(|| panic!("no job result for job-alarm: {results:?}"));
    assert!(!result.success, "{result:?}");
    assert!(
        result
            .message
            .as_deref()
            .unwrap_or_default()
            .contains(alarm),
        "{result:?}"
    );

    set(aws_sdk_cloudwatch::types::StateValue::Ok)
        .await
        .expect("SetAlarmState OK");
    stack.invoke("health-gate", job("job-ok")).await.ok();
    let results = stack.emulator.job_results();
    let result = results
        .iter()
        .find(|r| r.job_id == "job-ok")
        .unwrap_or_else(|| panic!("no job result for job-ok: {results:?}"));
    assert!(result.success, "{result:?}");
}

/// Scenario 8 (issue 10, item 1): S3 answers GetObject of a missing manifest with 403
/// AccessDenied, as it does for a caller without s3:ListBucket (the router's rule): the
/// execution fails with `ManifestUnreadable` naming AccessDenied, nothing is recorded, and the
/// release id is not used up.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn missing_manifest_denied_by_s3_fails_unreadable() {
    let stack = Stack::start(StackOptions {
        sim: json!({"defaults": {"durationSeconds": 1}}),
        s3_denies_missing_keys: true,
        ..StackOptions::default()
    })
    .await;
    stack.warm_up().await;
    let key = "releases/denied-1/release-manifest.json";
    let input = stack.object_created_event(key);
    let arn = stack.start_execution("denied-1-a", &input).await;
    let done = stack.wait_execution(&arn, DEFAULT_WAIT).await;
    let (error, cause) = (
        done.error().unwrap_or_default(),
        done.cause().unwrap_or_default(),
    );
    assert!(
        done.status().as_str() == "FAILED"
            && error == "ManifestUnreadable"
            && cause.contains("AccessDenied")
            && cause.contains("s3:ListBucket"),
        "{} error={error:?} cause={cause:?}\n{}",
        done.status().as_str(),
        stack.diagnostics_async(Some(&arn)).await
    );
    let denied = format!(
        "s3 GET /{}/{key}: moto answered 404",
        stack.resources.bucket
    );
    assert!(
        stack.router_log().iter().any(|l| l.starts_with(&denied)),
        "the router answered AccessDenied: {:#?}",
        stack.router_log()
    );
    let items = stack
        .dynamo()
        .scan()
        .table_name(&stack.resources.table)
        .send()
        .await
        .expect("Scan the table");
    assert_eq!(items.count(), 0, "nothing recorded: {:?}", items.items());

    // The id is not used up: the manifest, uploaded now, releases.
    let input = stack
        .upload_manifest(key, &manifest("denied-1", &["after-denied"]))
        .await;
    let arn = stack.start_execution("denied-1-b", &input).await;
    succeeded(&stack, &arn).await;
    let release = stack.release("denied-1").await.unwrap();
    assert_eq!(release.release.status, ReleaseStatus::Succeeded);
}

/// Scenario 9 (issue 9, fault 2): an execution stopped from the console leaves its release
/// RUNNING. EventBridge's "Step Functions Execution Status Change" event (delivered to
/// record-state as the template's rule would; moto publishes no such event, and its
/// StopExecution does not end an execution it is running) makes the reconciler end the release
/// FAILED with a cause naming the abort and stop its running pipelines through the emulator.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn an_aborted_execution_is_reconciled() {
    let stack = stack(json!({"defaults": {"durationSeconds": 600, "stopSeconds": 1}})).await;
    let manifest = json!({"releaseId": "abort-1", "pipelines": ["long-a", "long-b"]});
    let input = stack
        .upload_manifest("releases/abort-1.json", &manifest)
        .await;
    let arn = stack.start_execution("abort-1", &input).await;
    stack
        .wait_release("abort-1", DEFAULT_WAIT, "running both pipelines", |r| {
            r.runs.iter().all(|run| run.status == RunStatus::InProgress)
        })
        .await;
    let status_change = execution_status_change(&arn, "ABORTED", None);
    let out = stack.invoke("record-state", status_change).await.ok();
    assert_eq!(out["outcome"], "Reconciled", "{out}");
    let release = stack
        .wait_release(
            "abort-1",
            DEFAULT_WAIT,
            "FAILED with its pipelines stopped",
            |r| {
                r.release.status == ReleaseStatus::Failed
                    && r.runs.iter().all(|run| run.status == RunStatus::Stopped)
            },
        )
        .await;
    let cause = release.release.cause.clone().unwrap_or_default();
    assert!(cause.starts_with("execution aborted"), "cause {cause:?}");
    for e in stack.emulator.executions() {
        assert!(
            e.stop_reason.is_some(),
            "{} was not stopped: {e:?}",
            e.pipeline
        );
    }
}

/// Scenario 10 (issue 9, fault 5): CodePipeline answers ConflictException ("the pipeline is
/// busy") to the first starts: the run waits NotStarted, the sweep (invoked as the schedule
/// would) retries the start, and the release succeeds with each pipeline started once.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn busy_pipelines_are_started_by_the_sweep() {
    let stack = stack(json!({
        "defaults": {"durationSeconds": 1},
        "pipelines": {"busy": {"startConflicts": 2}}
    }))
    .await;
    let manifest = json!({"releaseId": "busy-1", "pipelines": ["busy", "free"]});
    let input = stack
        .upload_manifest("releases/busy-1.json", &manifest)
        .await;
    let arn = stack.start_execution("busy-1", &input).await;
    succeeded_with_sweeps(&stack, &arn).await;
    let release = stack.release("busy-1").await.unwrap();
    assert_eq!(release.release.status, ReleaseStatus::Succeeded);
    let executions = stack.emulator.executions();
    for p in ["busy", "free"] {
        assert_eq!(
            executions.iter().filter(|e| e.pipeline == p).count(),
            1,
            "{p}: {executions:#?}"
        );
    }
    let calls = stack.emulator.calls();
    assert_eq!(calls["busy"]["StartPipelineExecution"], 3, "{calls:?}");
}

/// Scenario 11 (issue 9, fault 1): Step Functions throttles the completion (the router
/// answers the first three SendTask* ThrottlingException, so the SDK's three attempts of the
/// first completion all fail). The token stays on the run, and the next sweep (invoked as the
/// schedule would) sends it: the release succeeds, its pipeline started once.
/// Every SendTask* of the event's deliveries: 3 deliveries × the SDK's 3 attempts.
const SEND_FAILURES: u32 = 9;

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_throttled_completion_is_sent_again_by_the_sweep() {
    let stack = Stack::start(StackOptions {
        sim: json!({"defaults": {"durationSeconds": 2, "stopSeconds": 1}}),
        send_task_failures: SEND_FAILURES,
        ..StackOptions::default()
    })
    .await;
    stack.warm_up().await;
    let manifest = json!({"releaseId": "send-1", "pipelines": ["late"]});
    let input = stack
        .upload_manifest("releases/send-1.json", &manifest)
        .await;
    let arn = stack.start_execution("send-1", &input).await;
    // The state-change event's completion fails every time it is tried: the SDK's 3 attempts
    // in each of the emulator's 3 deliveries of the event (with fewer, a later delivery
    // completes the token before the sweep runs: a race this test must not depend on).
    let t0 = Instant::now();
    while stack
        .router_log()
        .iter()
        .filter(|l| l.contains("send_task_failures"))
        .count()
        < SEND_FAILURES as usize
    {
        assert!(
            t0.elapsed() < DEFAULT_WAIT,
            "the completion was never throttled\n{}",
            stack.diagnostics_async(Some(&arn)).await
        );
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    let run = stack.release("send-1").await.unwrap().runs[0].clone();
    assert_eq!(run.status, RunStatus::Succeeded);
    assert!(
        run.task_token.is_some(),
        "the token is kept for the next send"
    );

    let swept = sweep(&stack).await;
    assert_eq!(swept["completed"], 1, "{swept}");
    succeeded(&stack, &arn).await;
    let release = stack.release("send-1").await.unwrap();
    assert_eq!(release.release.status, ReleaseStatus::Succeeded);
    assert_eq!(stack.emulator.executions().len(), 1);
}

/// Scenario 12 (issue 11, cancel mid-wave): `POST /releases/{id}/cancel` while wave 1 runs:
/// the cancel is recorded, the execution stopped; the Execution Status Change event (sent by
/// the test: moto publishes none, and its StopExecution does not end an execution it runs)
/// makes the reconciler stop the running pipelines and end the release CANCELLED with `cancelled
/// by <arn>: <reason>`; wave 2's pipeline never starts.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn cancel_mid_wave_stops_the_wave_and_starts_nothing_else() {
    let stack = stack(json!({"defaults": {"durationSeconds": 600, "stopSeconds": 1}})).await;
    let manifest = json!({"releaseId": "cancel-1", "pipelines": [
        {"name": "first-a", "wave": 1},
        {"name": "first-b", "wave": 1},
        {"name": "second", "wave": 2},
    ]});
    let input = stack
        .upload_manifest("releases/cancel-1.json", &manifest)
        .await;
    let arn = stack.start_execution("cancel-1", &input).await;
    stack
        .wait_release("cancel-1", DEFAULT_WAIT, "running wave 1", |r| {
            r.runs
                .iter()
                .filter(|run| run.spec.wave == 1)
                .all(|run| run.status == RunStatus::InProgress)
        })
        .await;

    let (status, body) = operate(
        &stack,
        "cancel",
        "cancel-1",
        Some(json!({"reason": "bad canary"})),
    )
    .await;
    assert_eq!(status, 202, "{body}");
    assert_eq!(body["status"], "RUNNING", "the reconciler ends it: {body}");
    let cause = format!("cancelled by {CALLER}: bad canary");
    let record = stack.release("cancel-1").await.unwrap().release;
    assert!(record.stop_requested, "the stop flag is recorded");
    assert_eq!(
        record.lifecycle.cancel.as_ref().map(|c| c.cause()),
        Some(cause.clone())
    );
    let described = stack
        .sfn()
        .describe_execution()
        .execution_arn(&arn)
        .send()
        .await
        .unwrap();
    eprintln!(
        "[e2e] after StopExecution moto reports the execution {}",
        described.status().as_str()
    );

    let out = stack
        .invoke(
            "record-state",
            execution_status_change(&arn, "ABORTED", Some(("ReleaseCancelled", &cause))),
        )
        .await
        .ok();
    assert_eq!(out["outcome"], "Reconciled", "{out}");
    let release = stack
        .wait_release(
            "cancel-1",
            DEFAULT_WAIT,
            "CANCELLED with wave 1 stopped",
            |r| {
                r.release.status == ReleaseStatus::Cancelled
                    && r.runs
                        .iter()
                        .filter(|run| run.spec.wave == 1)
                        .all(|run| run.status == RunStatus::Stopped)
            },
        )
        .await;
    assert_eq!(release.release.cause.as_deref(), Some(cause.as_str()));
    assert_runs(
        &release,
        &stack.emulator.executions(),
        &[
            ("first-a", RunStatus::Stopped),
            ("first-b", RunStatus::Stopped),
            ("second", RunStatus::NotStarted),
        ],
    );
    let executions = stack.emulator.executions();
    assert_eq!(executions.len(), 2, "wave 2 never started: {executions:#?}");
    assert!(executions.iter().all(|e| e.stop_reason.is_some()));
    let view = stack.release_view("cancel-1").await.unwrap();
    let wave = |n: u32| view.waves.iter().find(|w| w.wave == n).map(|w| w.status);
    assert_eq!(wave(1), Some(WaveStatus::Cancelled), "{:?}", view.waves);
    assert_ne!(wave(2), Some(WaveStatus::Running), "{:?}", view.waves);
    assert_eq!(view.attempts.len(), 1);
    assert_eq!(view.attempts[0].status, ReleaseStatus::Cancelled);

    // It has ended: a second cancel changes nothing and says so.
    let (status, body) = operate(
        &stack,
        "cancel",
        "cancel-1",
        Some(json!({"reason": "again"})),
    )
    .await;
    assert_eq!(status, 409, "{body}");
    assert!(
        body["message"]
            .as_str()
            .unwrap_or_default()
            .contains("CANCELLED"),
        "{body}"
    );
}

/// A release of wave 1 `done` (succeeds at once), `flaky` (fails) and `slow` (stopped when
/// `flaky` fails), wave 2 `later` (never reached): it ends FAILED. Returns the stack.
async fn failed_release(stack: &Stack, id: &str) {
    let manifest = json!({"releaseId": id, "pipelines": [
        {"name": "done", "wave": 1},
        {"name": "flaky", "wave": 1},
        {"name": "slow", "wave": 1},
        {"name": "later", "wave": 2},
    ]});
    let input = stack
        .upload_manifest(&format!("releases/{id}.json"), &manifest)
        .await;
    let arn = stack.start_execution(id, &input).await;
    let done = stack.wait_execution(&arn, DEFAULT_WAIT).await;
    assert_eq!(
        done.status().as_str(),
        "FAILED",
        "{}",
        stack.diagnostics_async(Some(&arn)).await
    );
    let release = stack.release(id).await.unwrap();
    assert_eq!(release.release.status, ReleaseStatus::Failed);
    assert_runs(
        &release,
        &stack.emulator.executions(),
        &[
            ("done", RunStatus::Succeeded),
            ("flaky", RunStatus::Failed),
            ("slow", RunStatus::Stopped),
            ("later", RunStatus::NotStarted),
        ],
    );
}

/// The sim of [`failed_release`]: `flaky` fails after 6 s, `slow` would take 10 minutes.
fn failing_sim() -> Value {
    json!({
        "defaults": {"durationSeconds": 1, "stopSeconds": 1},
        "pipelines": {
            "flaky": {"outcome": "Failed", "durationSeconds": 6, "failedStage": "Deploy"},
            "slow": {"durationSeconds": 600}
        }
    })
}

/// Every pipeline succeeds within a second: what attempt 2 meets.
fn fixed_sim() -> SimFile {
    SimFile::from_value(&json!({"defaults": {"durationSeconds": 1, "stopSeconds": 1}}))
        .expect("a valid sim")
}

/// Scenario 13 (issue 11, retry): a FAILED release retried through `POST
/// /releases/{id}/retry` runs attempt 2 of the same release id: exactly the failed, stopped
/// and not-started pipelines start again (each once), the one that succeeded keeps its single
/// run, and the release SUCCEEDS as attempt 2.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn retry_reruns_only_what_did_not_succeed() {
    let stack = stack(failing_sim()).await;
    failed_release(&stack, "retry-1").await;
    let first = stack.release("retry-1").await.unwrap();
    let done_before = first
        .runs
        .iter()
        .find(|r| r.pipeline() == "done")
        .cloned()
        .unwrap();
    let done_execution: Vec<_> = stack
        .emulator
        .executions()
        .into_iter()
        .filter(|e| e.pipeline == "done")
        .collect();

    stack.emulator.load_sim(fixed_sim());
    let (status, body) = operate(&stack, "retry", "retry-1", None).await;
    assert_eq!(status, 202, "{body}");
    assert_eq!(body["attempt"], 2, "{body}");
    assert_eq!(body["status"], "RUNNING");
    let arn = body["executionArn"]
        .as_str()
        .unwrap_or_else(|| panic!("no executionArn in {body}"))
        .to_owned();
    succeeded(&stack, &arn).await;

    let release = stack.release("retry-1").await.unwrap();
    assert_eq!(release.release.status, ReleaseStatus::Succeeded);
    let executions = stack.emulator.executions();
    let mut started: Vec<&str> = executions.iter().map(|e| e.pipeline.as_str()).collect();
    started.sort_unstable();
    assert_eq!(
        started,
        ["flaky", "later", "slow"],
        "attempt 2 started exactly what did not succeed, once each"
    );
    // Attempt 2's executions (the new sim's), and `done`'s of attempt 1, which it keeps.
    let mut all = executions.clone();
    all.extend(done_execution);
    assert_runs(
        &release,
        &all,
        &[
            ("flaky", RunStatus::Succeeded),
            ("slow", RunStatus::Succeeded),
            ("later", RunStatus::Succeeded),
            ("done", RunStatus::Succeeded),
        ],
    );
    let done = release
        .runs
        .iter()
        .find(|r| r.pipeline() == "done")
        .unwrap();
    assert_eq!(done.attempt, 1, "{done:?}");
    assert_eq!(done.execution_id, done_before.execution_id);
    assert_eq!(
        run_statuses(done),
        [RunStatus::InProgress, RunStatus::Succeeded]
    );
    for p in ["flaky", "slow", "later"] {
        let run = release.runs.iter().find(|r| r.pipeline() == p).unwrap();
        assert_eq!(run.attempt, 2, "{p}: {run:?}");
        let attempts: Vec<u32> = run.history.iter().map(|h| h.attempt).collect();
        assert_eq!(
            attempts.last(),
            Some(&2),
            "{p}: the history spans attempts: {:?}",
            run.history
        );
    }
    let view = stack.release_view("retry-1").await.unwrap();
    assert_eq!(view.attempt, 2);
    let statuses: Vec<ReleaseStatus> = view.attempts.iter().map(|a| a.status).collect();
    assert_eq!(statuses, [ReleaseStatus::Failed, ReleaseStatus::Succeeded]);
    assert_eq!(view.attempts[1].requested_by.as_deref(), Some(CALLER));

    // A SUCCEEDED release is not retried.
    let (status, body) = operate(&stack, "retry", "retry-1", None).await;
    assert_eq!(status, 409, "{body}");
}

/// Scenario 14 (issue 11, concurrent retries; dynalite for faithful conditional writes): 50
/// `POST /releases/{id}/retry` at once of one FAILED release: exactly one 202, 49 409, one
/// attempt 2 and one new execution.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn fifty_concurrent_retries_give_one_attempt() {
    let stack = Stack::start(StackOptions {
        sim: failing_sim(),
        dynamo: DynamoTarget::Dynalite,
        concurrency: 8,
        ..StackOptions::default()
    })
    .await;
    stack.warm_up().await;
    failed_release(&stack, "retry-50").await;
    stack.emulator.load_sim(fixed_sim());

    let answers =
        futures::future::join_all((0..50).map(|_| operate(&stack, "retry", "retry-50", None)))
            .await;
    let mut by_status: BTreeMap<u64, usize> = BTreeMap::new();
    for (status, _) in &answers {
        *by_status.entry(*status).or_default() += 1;
    }
    assert_eq!(
        by_status,
        BTreeMap::from([(202, 1), (409, 49)]),
        "{:#?}",
        answers
            .iter()
            .filter(|(s, _)| *s != 409)
            .collect::<Vec<_>>()
    );
    let (_, accepted) = answers.iter().find(|(s, _)| *s == 202).unwrap();
    let arn = accepted["executionArn"].as_str().unwrap().to_owned();
    for (_, body) in answers.iter().filter(|(s, _)| *s == 409) {
        assert!(
            body["message"]
                .as_str()
                .unwrap_or_default()
                .contains("only a FAILED or CANCELLED release can be retried"),
            "{body}"
        );
    }
    succeeded(&stack, &arn).await;
    let release = stack.release("retry-50").await.unwrap();
    assert_eq!(release.release.status, ReleaseStatus::Succeeded);
    assert_eq!(release.release.lifecycle.attempt, 2);
    assert_eq!(release.release.lifecycle.attempts.len(), 2);
    let executions = stack
        .sfn()
        .list_executions()
        .state_machine_arn(&stack.resources.state_machine_arn)
        .send()
        .await
        .unwrap();
    assert_eq!(
        executions.executions().len(),
        2,
        "the first attempt's and one retry's: {:?}",
        executions.executions()
    );
    let mut started: Vec<&str> = stack
        .emulator
        .executions()
        .iter()
        .map(|e| e.pipeline.as_str())
        .map(|p| match p {
            "flaky" => "flaky",
            "slow" => "slow",
            "later" => "later",
            other => panic!("{other} started again"),
        })
        .collect();
    started.sort_unstable();
    assert_eq!(started, ["flaky", "later", "slow"]);
}

/// A release of wave 1 `<id>-first`, wave 2 `<id>-second`, wave 2 waiting for an approval.
async fn release_with_approval(stack: &Stack, id: &str, timeout_minutes: u32) -> String {
    let manifest = json!({
        "releaseId": id,
        "approvals": [2],
        "approvalTimeoutMinutes": timeout_minutes,
        "pipelines": [
            {"name": format!("{id}-first"), "wave": 1},
            {"name": format!("{id}-second"), "wave": 2},
        ]
    });
    let input = stack
        .upload_manifest(&format!("releases/{id}.json"), &manifest)
        .await;
    stack.start_execution(id, &input).await
}

/// Scenario 15 (issue 11, approvals): three releases whose wave 2 waits for an approval:
/// approved through the API (wave 2 runs, SUCCEEDED), rejected (FAILED, `wave 2 rejected by
/// <arn>: <reason>`, wave 2 never starts), and left to time out (`approvalTimeoutMinutes` 1:
/// moto's executor honours the task's TimeoutSecondsPath, and the release FAILS saying so).
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn approvals_approve_reject_and_time_out() {
    let stack = stack(json!({"defaults": {"durationSeconds": 1, "stopSeconds": 1}})).await;
    let t0 = Instant::now();
    let approve = release_with_approval(&stack, "appr-ok", 60).await;
    let reject = release_with_approval(&stack, "appr-no", 60).await;
    let timeout = release_with_approval(&stack, "appr-late", 1).await;
    for id in ["appr-ok", "appr-no", "appr-late"] {
        waiting_for_approval(&stack, id, 2).await;
    }
    let view = stack.release_view("appr-ok").await.unwrap();
    assert_eq!(view.approvals.len(), 1);
    assert_eq!(view.approvals[0].status, ApprovalStatus::Waiting);
    assert_eq!(
        view.waves.iter().find(|w| w.wave == 2).map(|w| w.status),
        Some(WaveStatus::WaitingApproval)
    );

    // Not the waiting wave: 409; a wave the release does not have: 400.
    let (status, body) = operate(&stack, "approve", "appr-ok", Some(json!({"wave": 1}))).await;
    assert_eq!(status, 409, "{body}");
    let (status, body) = operate(&stack, "approve", "appr-ok", Some(json!({"wave": 3}))).await;
    assert_eq!(status, 400, "{body}");

    let (status, body) = operate(&stack, "approve", "appr-ok", Some(json!({"wave": 2}))).await;
    assert_eq!(status, 202, "{body}");
    let (status, body) = operate(
        &stack,
        "reject",
        "appr-no",
        Some(json!({"wave": 2, "reason": "error budget spent"})),
    )
    .await;
    assert_eq!(status, 202, "{body}");

    succeeded(&stack, &approve).await;
    let ok = stack.release("appr-ok").await.unwrap();
    assert_eq!(ok.release.status, ReleaseStatus::Succeeded);
    let approval = &ok.release.lifecycle.approvals[0];
    assert_eq!(approval.status, ApprovalStatus::Approved);
    assert_eq!(approval.by.as_deref(), Some(CALLER));
    assert!(ok.runs.iter().all(|r| r.status == RunStatus::Succeeded));

    let done = stack.wait_execution(&reject, DEFAULT_WAIT).await;
    assert_eq!(
        done.status().as_str(),
        "FAILED",
        "{}",
        stack.diagnostics_async(Some(&reject)).await
    );
    let no = stack.release("appr-no").await.unwrap();
    assert_eq!(no.release.status, ReleaseStatus::Failed);
    let approval = &no.release.lifecycle.approvals[0];
    assert_eq!(approval.status, ApprovalStatus::Rejected);
    assert_eq!(approval.by.as_deref(), Some(CALLER));
    assert_eq!(approval.reason.as_deref(), Some("error budget spent"));
    // The release's cause names who rejected it and why, from the recorded approval: moto
    // 5.2.5 drops SendTaskFailure's `cause` (its responses.py passes only `error` on), so the
    // wait's failure carries none there.
    let rejected = format!("wave 2 rejected by {CALLER}: error budget spent");
    assert_eq!(no.release.cause.as_deref(), Some(rejected.as_str()));
    let carried: Vec<String> = stack
        .history(&reject)
        .await
        .iter()
        .filter_map(|e| e.task_failed_event_details())
        .filter(|d| d.error() == Some("ApprovalRejected"))
        .map(|d| d.cause().unwrap_or_default().to_owned())
        .collect();
    assert_eq!(
        carried.len(),
        1,
        "the wait failed with ApprovalRejected once"
    );
    if carried[0] != rejected {
        eprintln!(
            "[e2e] moto carried the rejected wait's cause as {:?} (SendTaskFailure's cause dropped)",
            carried[0]
        );
    }
    let second = no.runs.iter().find(|r| r.spec.wave == 2).unwrap();
    assert_eq!(second.status, RunStatus::NotStarted);

    // The third one's wait ends by itself, a minute after it began.
    let done = stack
        .wait_execution(&timeout, Duration::from_secs(240))
        .await;
    eprintln!(
        "[e2e] the approval timed out after {:.0?} (approvalTimeoutMinutes 1)",
        t0.elapsed()
    );
    assert_eq!(
        done.status().as_str(),
        "FAILED",
        "{}",
        stack.diagnostics_async(Some(&timeout)).await
    );
    let late = stack.release("appr-late").await.unwrap();
    assert_eq!(late.release.status, ReleaseStatus::Failed);
    let cause = late.release.cause.clone().unwrap_or_default();
    assert!(cause.contains("timed out"), "cause {cause:?}");
    assert_eq!(
        late.release.lifecycle.approvals[0].status,
        ApprovalStatus::TimedOut
    );
    let second = late.runs.iter().find(|r| r.spec.wave == 2).unwrap();
    assert_eq!(second.status, RunStatus::NotStarted);
    // Nothing of wave 2 started but the approved release's.
    let mut started: Vec<String> = stack
        .emulator
        .executions()
        .iter()
        .map(|e| e.pipeline.clone())
        .collect();
    started.sort_unstable();
    assert_eq!(
        started,
        [
            "appr-late-first",
            "appr-no-first",
            "appr-ok-first",
            "appr-ok-second"
        ]
    );
}

/// Scenario 16 (issue 11, cancel while an approval waits): the waiting approval becomes
/// Cancelled (by the canceller), the release CANCELLED, wave 2 never starts; deciding the
/// approval afterwards is 409.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn cancel_while_an_approval_waits() {
    let stack = stack(json!({"defaults": {"durationSeconds": 1, "stopSeconds": 1}})).await;
    let arn = release_with_approval(&stack, "appr-cancel", 60).await;
    waiting_for_approval(&stack, "appr-cancel", 2).await;
    let (status, body) = operate(
        &stack,
        "cancel",
        "appr-cancel",
        Some(json!({"reason": "freeze"})),
    )
    .await;
    assert_eq!(status, 202, "{body}");
    let cause = format!("cancelled by {CALLER}: freeze");
    let out = stack
        .invoke(
            "record-state",
            execution_status_change(&arn, "ABORTED", Some(("ReleaseCancelled", &cause))),
        )
        .await
        .ok();
    assert_eq!(out["outcome"], "Reconciled", "{out}");
    let release = stack
        .wait_release("appr-cancel", DEFAULT_WAIT, "CANCELLED", |r| {
            r.release.status == ReleaseStatus::Cancelled
        })
        .await;
    assert_eq!(release.release.cause.as_deref(), Some(cause.as_str()));
    let approval = &release.release.lifecycle.approvals[0];
    assert_eq!(approval.status, ApprovalStatus::Cancelled);
    assert_eq!(approval.by.as_deref(), Some(CALLER));
    assert_eq!(release.release.lifecycle.waiting_for, None);
    assert!(release
        .release
        .lifecycle
        .waits
        .iter()
        .all(|w| w.until.is_some()));
    let second = release.runs.iter().find(|r| r.spec.wave == 2).unwrap();
    assert_eq!(second.status, RunStatus::NotStarted);
    assert_eq!(stack.emulator.executions().len(), 1, "only wave 1 ran");

    let (status, body) = operate(&stack, "approve", "appr-cancel", Some(json!({"wave": 2}))).await;
    assert_eq!(status, 409, "{body}");
}

/// Scenario 17 (issue 11, notifications): the functions' PutEvents go through the router,
/// which loses the answer of the first two calls after moto took their events (the SDK puts
/// them again: duplicates), then rejects some entries of the next calls (FailedEntryCount,
/// per-entry ErrorCode) and forwards the rest to moto; a moto rule delivers `source:
/// release-machine` to a queue. For a whole release every event arrives (the rejected ones are
/// sent again, the sweep drains what is left), nothing stays in the outbox, the events, sorted,
/// have strictly increasing `detail.sequence`, and each duplicate carries the same
/// `detail.eventId` and content.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn every_event_of_a_release_arrives_despite_rejected_entries() {
    let stack = Stack::start(StackOptions {
        sim: json!({"defaults": {"durationSeconds": 1, "stopSeconds": 1}}),
        put_events_failures: 8,
        put_events_lost_answers: 2,
        ..StackOptions::default()
    })
    .await;
    stack.warm_up().await;
    let queue = stack.event_queue().await;
    let manifest = json!({"releaseId": "events-1", "pipelines": [
        {"name": "ev-a", "wave": 1},
        {"name": "ev-b", "wave": 1},
        {"name": "ev-c", "wave": 2},
    ]});
    let input = stack
        .upload_manifest("releases/events-1.json", &manifest)
        .await;
    let arn = stack.start_execution("events-1", &input).await;
    succeeded(&stack, &arn).await;
    // What the last publishes left (if their retries were rejected too) the sweep sends.
    sweep(&stack).await;

    let rejected: Vec<String> = stack
        .router_log()
        .into_iter()
        .filter(|l| l.contains("(put_events_failures)"))
        .collect();
    assert!(!rejected.is_empty(), "no entry was rejected");
    let lost = stack
        .router_log()
        .into_iter()
        .filter(|l| l.contains("(put_events_lost_answers)"))
        .count();
    assert_eq!(lost, 2, "two answers were lost");
    let id = ReleaseId::parse("events-1").unwrap();
    let left = stack.store().outbox(Some(&id), 1000).await.unwrap();
    assert!(left.is_empty(), "unpublished: {left:#?}");

    let events: Vec<Value> = stack
        .queued_events(&queue)
        .await
        .into_iter()
        .filter(|e| e["detail"]["releaseId"] == "events-1")
        .collect();
    for e in &events {
        assert_eq!(e["source"], "release-machine", "{e}");
    }
    // Duplicates share an eventId and are the same event.
    let mut by_id: BTreeMap<String, Value> = BTreeMap::new();
    let mut duplicates = 0;
    for e in &events {
        let event_id = e["detail"]["eventId"].as_str().unwrap().to_owned();
        let seen = (e["detail-type"].clone(), e["detail"].clone());
        match by_id.get(&event_id) {
            Some(first) => {
                duplicates += 1;
                assert_eq!(
                    (&first["detail-type"], &first["detail"]),
                    (&seen.0, &seen.1),
                    "two events share the eventId {event_id}"
                );
            }
            None => {
                by_id.insert(event_id, e.clone());
            }
        }
    }
    assert!(duplicates > 0, "the lost answers' events arrived twice");
    let mut unique: Vec<&Value> = by_id.values().collect();
    unique.sort_by_key(|e| e["detail"]["sequence"].as_u64().unwrap());
    let sequences: Vec<u64> = unique
        .iter()
        .map(|e| e["detail"]["sequence"].as_u64().unwrap())
        .collect();
    assert!(
        sequences.windows(2).all(|w| w[0] < w[1]),
        "sequences {sequences:?}"
    );
    for e in &unique {
        assert_eq!(
            e["detail"]["eventId"],
            format!("events-1:{}", e["detail"]["sequence"]),
            "{e}"
        );
    }
    // Every change of the release is there: the release's statuses, each wave's, each run's.
    let has = |detail_type: &str, check: &dyn Fn(&Value) -> bool| {
        unique
            .iter()
            .any(|e| e["detail-type"] == detail_type && check(&e["detail"]))
    };
    for status in ["RUNNING", "SUCCEEDED"] {
        assert!(
            has("Release Status Change", &|d| d["status"] == status
                && d["attempt"] == 1),
            "no Release Status Change {status}: {unique:#?}"
        );
    }
    for wave in [1, 2] {
        for status in ["Running", "Succeeded"] {
            assert!(
                has("Wave Status Change", &|d| d["wave"] == wave
                    && d["status"] == status),
                "no Wave Status Change {wave} {status}: {unique:#?}"
            );
        }
    }
    let release = stack.release("events-1").await.unwrap();
    for run in &release.runs {
        for entry in &run.history {
            let status = serde_json::to_value(entry.status).unwrap();
            assert!(
                has("Pipeline Run Status Change", &|d| d["pipeline"]
                    == run.pipeline()
                    && d["status"] == status
                    && d["executionId"] == json!(run.execution_id)),
                "no Pipeline Run Status Change {} {status}: {unique:#?}",
                run.pipeline()
            );
        }
    }
    eprintln!(
        "[e2e] events: {} received, {} distinct, {duplicates} duplicates; {} PutEvents calls had entries rejected",
        events.len(),
        unique.len(),
        rejected.len()
    );
}

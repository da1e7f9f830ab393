//! Engine behaviour in virtual time: timers, concurrency, aborts, tokens, load refusals,
//! history, and the seed's definition.

mod common;

use std::cell::Cell;
use std::collections::HashMap;
use std::rc::Rc;
use std::time::Duration;

use rm_states::{
    ExecutionConfig, ExecutionOutcome, ExecutionStatus, StateMachine, TaskFailure, TaskHandler,
    TaskTokens, TokenError,
};
use serde_json::{json, Value};
use time::macros::datetime;

const T0: time::OffsetDateTime = datetime!(2026-03-01 09:00 UTC);

fn load(def: Value) -> StateMachine {
    StateMachine::from_json(&def.to_string(), &HashMap::new()).unwrap_or_else(|e| panic!("{e}"))
}

fn run_with<H: TaskHandler>(
    machine: &StateMachine,
    input: Value,
    make: impl FnOnce(TaskTokens) -> H,
) -> ExecutionOutcome {
    let (execution, tokens) = machine.start(ExecutionConfig::new("exec", "sm", T0, input));
    let handler = make(tokens);
    common::virtual_runtime().block_on(execution.run(&handler))
}

fn types(outcome: &ExecutionOutcome) -> Vec<&str> {
    outcome.history.iter().map(|e| e.r#type.as_str()).collect()
}

#[test]
fn two_hour_wait_runs_in_virtual_time_with_simulated_timestamps() {
    let m = load(json!({"StartAt": "W", "States": {
        "W": {"Type": "Wait", "Seconds": 7200, "Next": "P"},
        "P": {"Type": "Pass", "Parameters": {"entered.$": "$$.State.EnteredTime", "start.$": "$$.Execution.StartTime"}, "End": true}}}));
    let out = run_with(&m, json!({}), common::ScriptedHandler::new);
    assert_eq!(out.status, ExecutionStatus::Succeeded);
    assert_eq!(
        out.output,
        Some(json!({"entered": "2026-03-01T11:00:00.000Z", "start": "2026-03-01T09:00:00.000Z"}))
    );
    assert_eq!(out.ended_at - out.started_at, time::Duration::hours(2));
    assert_eq!(out.state_transitions, 2);
    assert_eq!(
        types(&out),
        [
            "ExecutionStarted",
            "WaitStateEntered",
            "WaitStateExited",
            "PassStateEntered",
            "PassStateExited",
            "ExecutionSucceeded"
        ]
    );
    let last = out.history.last().expect("events");
    assert_eq!(last.timestamp, T0 + time::Duration::hours(2));
    assert!(out
        .history
        .windows(2)
        .all(|w| w[1].previous_event_id == w[0].id));
}

#[test]
fn wait_timestamp_in_the_simulated_future() {
    let m = load(
        json!({"StartAt": "W", "States": {"W": {"Type": "Wait", "TimestampPath": "$.at", "End": true}}}),
    );
    let out = run_with(
        &m,
        json!({"at": "2026-03-01T10:30:00Z"}),
        common::ScriptedHandler::new,
    );
    assert_eq!(out.ended_at - out.started_at, time::Duration::minutes(90));
}

#[test]
fn execution_timeout() {
    let m = load(
        json!({"StartAt": "W", "TimeoutSeconds": 60, "States": {"W": {"Type": "Wait", "Seconds": 3600, "End": true}}}),
    );
    let out = run_with(&m, json!({}), common::ScriptedHandler::new);
    assert_eq!(out.status, ExecutionStatus::TimedOut);
    assert_eq!(out.error.as_deref(), Some("States.Timeout"));
    assert_eq!(types(&out).last(), Some(&"ExecutionTimedOut"));
}

/// Counts how many invocations run at once.
struct Concurrency {
    now: Cell<usize>,
    max: Cell<usize>,
    fail_index: Option<u64>,
    tokens: TaskTokens,
    issued: Rc<std::cell::RefCell<Vec<String>>>,
}

#[async_trait::async_trait(?Send)]
impl TaskHandler for Concurrency {
    async fn invoke(&self, _f: &str, payload: Value) -> Result<Value, TaskFailure> {
        self.now.set(self.now.get() + 1);
        self.max.set(self.max.get().max(self.now.get()));
        let index = payload["index"].as_u64().unwrap_or(0);
        if let Some(token) = payload.get("token").and_then(Value::as_str) {
            // waitForTaskToken: complete it later from another task, unless this is the failing one.
            self.issued.borrow_mut().push(token.to_owned());
            let tokens = self.tokens.clone();
            let token = token.to_owned();
            let fail = self.fail_index == Some(index);
            tokio::spawn(async move {
                tokio::time::sleep(Duration::from_secs(if fail { 10 } else { 600 })).await;
                let _ = if fail {
                    tokens.send_failure(&token, "PipelineFailed", "index failed")
                } else {
                    tokens.send_success(&token, json!({"status": "Succeeded"}))
                };
            });
        } else {
            tokio::time::sleep(Duration::from_secs(30 + index % 7)).await;
        }
        self.now.set(self.now.get() - 1);
        Ok(json!({"ok": index}))
    }
}

fn concurrency(tokens: TaskTokens, fail_index: Option<u64>) -> Concurrency {
    Concurrency {
        now: Cell::new(0),
        max: Cell::new(0),
        fail_index,
        tokens,
        issued: Rc::default(),
    }
}

#[test]
fn map_respects_max_concurrency() {
    let m = load(
        json!({"StartAt": "M", "States": {"M": {"Type": "Map", "ItemsPath": "$.items", "MaxConcurrencyPath": "$.max",
        "ItemSelector": {"index.$": "$$.Map.Item.Index"},
        "ItemProcessor": {"StartAt": "T", "States": {"T": {"Type": "Task", "Resource": "arn:aws:lambda:us-east-1:123456789012:function:f", "End": true}}},
        "End": true}}}),
    );
    let items: Vec<u32> = (0..40).collect();
    let (execution, tokens) = m.start(ExecutionConfig::new(
        "e",
        "sm",
        T0,
        json!({"items": items, "max": 4}),
    ));
    let h = concurrency(tokens, None);
    let out = common::virtual_runtime().block_on(execution.run(&h));
    assert_eq!(out.status, ExecutionStatus::Succeeded);
    assert_eq!(h.max.get(), 4);
    assert_eq!(
        out.output.as_ref().and_then(Value::as_array).map(Vec::len),
        Some(40)
    );
    assert_eq!(
        out.output.as_ref().map(|o| o[39].clone()),
        Some(json!({"ok": 39}))
    );

    // 0 = unbounded.
    let (execution, tokens) = m.start(ExecutionConfig::new(
        "e",
        "sm",
        T0,
        json!({"items": items, "max": 0}),
    ));
    let h = concurrency(tokens, None);
    common::virtual_runtime().block_on(execution.run(&h));
    assert_eq!(h.max.get(), 40);
}

#[test]
fn failing_iteration_aborts_siblings_and_their_tokens() {
    let m = load(
        json!({"StartAt": "M", "States": {"M": {"Type": "Map", "ItemsPath": "$.items",
        "ItemSelector": {"index.$": "$$.Map.Item.Index"},
        "ItemProcessor": {"StartAt": "T", "States": {"T": {"Type": "Task", "Resource": "arn:aws:states:::lambda:invoke.waitForTaskToken",
            "Parameters": {"FunctionName": "await", "Payload": {"index.$": "$.index", "token.$": "$$.Task.Token"}}, "End": true}}},
        "End": true}}}),
    );
    let (execution, tokens) = m.start(ExecutionConfig::new(
        "e",
        "sm",
        T0,
        json!({"items": [0, 1, 2, 3, 4]}),
    ));
    let h = concurrency(tokens.clone(), Some(2));
    let out = common::virtual_runtime().block_on(execution.run(&h));
    assert_eq!(out.status, ExecutionStatus::Failed);
    assert_eq!(out.error.as_deref(), Some("PipelineFailed"));
    assert_eq!(out.ended_at - out.started_at, time::Duration::seconds(10));
    let t = types(&out);
    assert_eq!(t.iter().filter(|x| **x == "MapIterationAborted").count(), 4);
    assert_eq!(t.iter().filter(|x| **x == "MapIterationFailed").count(), 1);
    assert!(t.contains(&"MapStateFailed"));
    // The aborted tasks' tokens are closed: a late SendTaskSuccess gets TaskTimedOut.
    let issued = h.issued.borrow().clone();
    assert_eq!(issued.len(), 5);
    for token in &issued {
        assert_eq!(
            tokens.send_success(token, json!({})),
            Err(TokenError::TaskTimedOut)
        );
    }
    assert_eq!(tokens.waiting(), 0);
}

#[test]
fn parallel_failure_aborts_other_branches() {
    let m = load(
        json!({"StartAt": "P", "States": {"P": {"Type": "Parallel", "End": true, "Branches": [
        {"StartAt": "Slow", "States": {"Slow": {"Type": "Wait", "Seconds": 3600, "Next": "After"}, "After": {"Type": "Task", "Resource": "arn:aws:lambda:us-east-1:1:function:never", "End": true}}},
        {"StartAt": "W", "States": {"W": {"Type": "Wait", "Seconds": 5, "Next": "F"}, "F": {"Type": "Fail", "Error": "Boom"}}}]}}}),
    );
    let out = run_with(&m, json!({}), common::ScriptedHandler::new);
    assert_eq!(out.error.as_deref(), Some("Boom"));
    assert_eq!(out.ended_at - out.started_at, time::Duration::seconds(5));
    assert!(!types(&out).contains(&"LambdaFunctionScheduled"));
}

#[test]
fn token_semantics() {
    let m = load(
        json!({"StartAt": "T", "States": {"T": {"Type": "Task", "Resource": "arn:aws:states:::lambda:invoke.waitForTaskToken",
        "TimeoutSeconds": 100,
        "Parameters": {"FunctionName": "callback", "Payload": {"token.$": "$$.Task.Token", "after": 50, "output": {"v": 1}}}, "End": true}}}),
    );
    let (execution, tokens) = m.start(ExecutionConfig::new("e", "sm", T0, json!({})));
    let handler = common::ScriptedHandler::new(tokens.clone());
    let out = common::virtual_runtime().block_on(execution.run(&handler));
    assert_eq!(out.output, Some(json!({"v": 1})));
    assert_eq!(
        tokens.send_success("no-such-token", json!({})),
        Err(TokenError::InvalidToken)
    );
    assert_eq!(
        tokens.send_heartbeat("no-such-token"),
        Err(TokenError::InvalidToken)
    );
    let scheduled = out
        .history
        .iter()
        .find(|e| e.r#type == "TaskScheduled")
        .expect("TaskScheduled");
    let token = scheduled.details["parameters"]["Payload"]["token"]
        .as_str()
        .expect("token in parameters")
        .to_owned();
    assert_eq!(
        tokens.send_success(&token, json!({})),
        Err(TokenError::TaskTimedOut)
    );
    assert_eq!(
        tokens.send_failure(&token, "E", "C"),
        Err(TokenError::TaskTimedOut)
    );
    assert_eq!(
        types(&out),
        [
            "ExecutionStarted",
            "TaskStateEntered",
            "TaskScheduled",
            "TaskStarted",
            "TaskSubmitted",
            "TaskSucceeded",
            "TaskStateExited",
            "ExecutionSucceeded"
        ]
    );

    // A task that times out closes its token too.
    let m = load(
        json!({"StartAt": "T", "States": {"T": {"Type": "Task", "Resource": "arn:aws:states:::lambda:invoke.waitForTaskToken",
        "TimeoutSeconds": 10,
        "Parameters": {"FunctionName": "callback", "Payload": {"token.$": "$$.Task.Token", "after": 50}}, "End": true}}}),
    );
    let (execution, tokens) = m.start(ExecutionConfig::new("e", "sm", T0, json!({})));
    let handler = common::ScriptedHandler::new(tokens.clone());
    let out = common::virtual_runtime().block_on(execution.run(&handler));
    assert_eq!(out.error.as_deref(), Some("States.Timeout"));
    assert!(types(&out).contains(&"TaskTimedOut"));
    let token = out
        .history
        .iter()
        .find(|e| e.r#type == "TaskScheduled")
        .map(|e| e.details["parameters"]["Payload"]["token"].clone());
    let token = token
        .and_then(|t| t.as_str().map(str::to_owned))
        .expect("token");
    assert_eq!(
        tokens.send_success(&token, json!({})),
        Err(TokenError::TaskTimedOut)
    );
}

/// Sends heartbeats and completes on its own schedule; the engine must keep the task alive.
struct Heartbeats(TaskTokens);

#[async_trait::async_trait(?Send)]
impl TaskHandler for Heartbeats {
    async fn invoke(&self, _f: &str, payload: Value) -> Result<Value, TaskFailure> {
        let tokens = self.0.clone();
        let token = payload["token"].as_str().unwrap_or_default().to_owned();
        tokio::spawn(async move {
            for _ in 0..10 {
                tokio::time::sleep(Duration::from_secs(50)).await;
                assert_eq!(tokens.send_heartbeat(&token), Ok(()));
            }
            tokio::time::sleep(Duration::from_secs(50)).await;
            tokens
                .send_success(&token, json!("done"))
                .expect("still waiting");
        });
        Ok(Value::Null)
    }
}

#[test]
fn heartbeats_reset_the_heartbeat_timer() {
    let m = load(
        json!({"StartAt": "T", "States": {"T": {"Type": "Task", "Resource": "arn:aws:states:::lambda:invoke.waitForTaskToken",
        "HeartbeatSecondsPath": "$.hb",
        "Parameters": {"FunctionName": "f", "Payload": {"token.$": "$$.Task.Token"}}, "End": true}}}),
    );
    let out = run_with(&m, json!({"hb": 60}), Heartbeats);
    assert_eq!(out.output, Some(json!("done")));
    assert_eq!(out.ended_at - out.started_at, time::Duration::seconds(550));
}

#[test]
fn retry_intervals_follow_backoff_in_virtual_time() {
    // 3 failures, interval 10 s, rate 2, max delay 25 s: waits 10 + 20 + 25 = 55 s.
    let m = load(
        json!({"StartAt": "T", "States": {"T": {"Type": "Task", "Resource": "arn:aws:lambda:us-east-1:1:function:flaky",
        "Parameters": {"failures": 3},
        "Retry": [{"ErrorEquals": ["Flaky"], "IntervalSeconds": 10, "BackoffRate": 2.0, "MaxDelaySeconds": 25, "MaxAttempts": 3}], "End": true}}}),
    );
    let out = run_with(&m, json!({}), common::ScriptedHandler::new);
    assert_eq!(out.status, ExecutionStatus::Succeeded);
    assert_eq!(out.ended_at - out.started_at, time::Duration::seconds(55));
    assert_eq!(
        types(&out)
            .iter()
            .filter(|t| **t == "LambdaFunctionFailed")
            .count(),
        3
    );
    // FULL jitter: somewhere between 0 and 55 s.
    let m = load(
        json!({"StartAt": "T", "States": {"T": {"Type": "Task", "Resource": "arn:aws:lambda:us-east-1:1:function:flaky",
        "Parameters": {"failures": 3},
        "Retry": [{"ErrorEquals": ["States.ALL"], "IntervalSeconds": 10, "BackoffRate": 2.0, "MaxDelaySeconds": 25, "MaxAttempts": 3, "JitterStrategy": "FULL"}], "End": true}}}),
    );
    for _ in 0..5 {
        let out = run_with(&m, json!({}), common::ScriptedHandler::new);
        assert_eq!(out.status, ExecutionStatus::Succeeded);
        let d = out.ended_at - out.started_at;
        assert!(
            d >= time::Duration::ZERO && d <= time::Duration::seconds(55),
            "{d}"
        );
    }
}

#[test]
fn lambda_invoke_wrapper_and_progress_stream() {
    let m = load(
        json!({"StartAt": "T", "States": {"T": {"Type": "Task", "Resource": "arn:aws:states:::lambda:invoke",
        "Parameters": {"FunctionName": "arn:aws:lambda:us-east-1:123456789012:function:echo", "Payload.$": "$"}, "End": true}}}),
    );
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
    let (execution, tokens) =
        m.start(ExecutionConfig::new("e", "sm", T0, json!({"a": 1})).with_progress(tx));
    let handler = common::ScriptedHandler::new(tokens);
    let out = common::virtual_runtime().block_on(execution.run(&handler));
    let output = out.output.clone().expect("output");
    assert_eq!(output["Payload"], json!({"a": 1}));
    assert_eq!(output["StatusCode"], json!(200));
    assert_eq!(output["ExecutedVersion"], json!("$LATEST"));
    assert_eq!(output["SdkHttpMetadata"]["HttpStatusCode"], json!(200));
    assert!(output["SdkResponseMetadata"]["RequestId"].is_string());
    let mut streamed = Vec::new();
    while let Ok(ev) = rx.try_recv() {
        streamed.push(ev);
    }
    assert_eq!(streamed, out.history);
}

#[test]
fn substitutions_and_context() {
    let def = r#"{"StartAt": "P", "States": {"P": {"Type": "Pass", "Parameters": {"arn": "${Fn}", "keep": "${Unknown}",
        "name.$": "$$.Execution.Name", "id.$": "$$.Execution.Id", "sm.$": "$$.StateMachine.Name"}, "End": true}}}"#;
    let subs = HashMap::from([(
        "Fn".to_owned(),
        "arn:aws:lambda:us-east-1:1:function:x".to_owned(),
    )]);
    let m = StateMachine::from_json(def, &subs).expect("loads");
    let (execution, tokens) = m.start(ExecutionConfig::new("rel-42", "release", T0, json!({})));
    let out =
        common::virtual_runtime().block_on(execution.run(&common::ScriptedHandler::new(tokens)));
    assert_eq!(
        out.output,
        Some(
            json!({"arn": "arn:aws:lambda:us-east-1:1:function:x", "keep": "${Unknown}", "name": "rel-42",
            "id": "arn:aws:states:us-east-1:123456789012:execution:release:rel-42", "sm": "release"})
        )
    );
}

fn refused(def: Value) -> rm_states::LoadError {
    match StateMachine::from_json(&def.to_string(), &HashMap::new()) {
        Ok(_) => panic!("loaded, but should be refused: {def}"),
        Err(e) => e,
    }
}

#[test]
fn load_time_refusals_name_state_and_field() {
    let e = refused(
        json!({"StartAt": "M", "States": {"M": {"Type": "Map", "ItemReader": {}, "ItemProcessor": {"StartAt": "P", "States": {"P": {"Type": "Pass", "End": true}}}, "End": true}}}),
    );
    assert_eq!((e.state.as_str(), e.field.as_str()), ("M", "ItemReader"));
    assert!(
        e.to_string().contains("'M'") && e.to_string().contains("ItemReader"),
        "{e}"
    );

    let e = refused(
        json!({"StartAt": "M", "States": {"M": {"Type": "Map", "ToleratedFailureCount": 1, "ItemProcessor": {"StartAt": "P", "States": {"P": {"Type": "Pass", "End": true}}}, "End": true}}}),
    );
    assert_eq!(e.field, "ToleratedFailureCount");

    let e = refused(
        json!({"StartAt": "M", "States": {"M": {"Type": "Map", "ItemProcessor": {"ProcessorConfig": {"Mode": "DISTRIBUTED", "ExecutionType": "STANDARD"}, "StartAt": "P", "States": {"P": {"Type": "Pass", "End": true}}}, "End": true}}}),
    );
    assert_eq!((e.state.as_str(), e.field.as_str()), ("M", "ItemProcessor"));

    let e = refused(
        json!({"QueryLanguage": "JSONata", "StartAt": "P", "States": {"P": {"Type": "Pass", "End": true}}}),
    );
    assert_eq!(e.field, "QueryLanguage");
    let e = refused(
        json!({"StartAt": "P", "States": {"P": {"Type": "Pass", "QueryLanguage": "JSONata", "End": true}}}),
    );
    assert_eq!((e.state.as_str(), e.field.as_str()), ("P", "QueryLanguage"));

    let e = refused(
        json!({"StartAt": "P", "States": {"P": {"Type": "Pass", "Bogus": 1, "End": true}}}),
    );
    assert_eq!((e.state.as_str(), e.field.as_str()), ("P", "Bogus"));
    let e = refused(
        json!({"StartAt": "P", "States": {"P": {"Type": "Pass", "Assign": {"x": 1}, "End": true}}}),
    );
    assert_eq!(e.field, "Assign");

    let e = refused(
        json!({"StartAt": "T", "States": {"T": {"Type": "Task", "Resource": "my-function", "End": true}}}),
    );
    assert_eq!((e.state.as_str(), e.field.as_str()), ("T", "Resource"));
    let e = refused(
        json!({"StartAt": "T", "States": {"T": {"Type": "Task", "Resource": "arn:aws:states:::states:startExecution.sync:2", "End": true}}}),
    );
    assert_eq!(e.field, "Resource");
    let e = refused(
        json!({"StartAt": "T", "States": {"T": {"Type": "Task", "Resource": "arn:aws:states:us-east-1:1:activity:a", "End": true}}}),
    );
    assert_eq!(e.field, "Resource");

    // Inside a Map: the state is named with its path.
    let e = refused(
        json!({"StartAt": "M", "States": {"M": {"Type": "Map", "ItemProcessor": {"StartAt": "P", "States": {"P": {"Type": "Pass", "Credentials": {}, "End": true}}}, "End": true}}}),
    );
    assert_eq!(
        (e.state.as_str(), e.field.as_str()),
        ("M/ItemProcessor/P", "Credentials")
    );

    // Structure.
    let e = refused(json!({"StartAt": "Nope", "States": {"P": {"Type": "Pass", "End": true}}}));
    assert_eq!(e.field, "StartAt");
    let e = refused(json!({"StartAt": "P", "States": {"P": {"Type": "Pass", "Next": "Q"}}}));
    assert_eq!((e.state.as_str(), e.field.as_str()), ("P", "Next"));
    let e = refused(json!({"StartAt": "P", "States": {"P": {"Type": "Pass"}}}));
    assert_eq!(e.field, "Next");
    let e = refused(
        json!({"StartAt": "P", "States": {"P": {"Type": "Pass", "End": true, "Next": "P"}}}),
    );
    assert_eq!(e.field, "End");
    let e = refused(
        json!({"StartAt": "P", "States": {"P": {"Type": "Pass", "End": true}, "Q": {"Type": "Succeed"}}}),
    );
    assert_eq!(e.state, "Q");
    let e = refused(
        json!({"StartAt": "C", "States": {"C": {"Type": "Choice", "Choices": [{"Variable": "$.a", "StringEquals": "x", "Next": "Z"}]}}}),
    );
    assert_eq!((e.state.as_str(), e.field.as_str()), ("C", "Choices"));
    let e = refused(
        json!({"StartAt": "C", "States": {"C": {"Type": "Choice", "Choices": [{"Variable": "$.a", "StringEqualz": "x", "Next": "C"}]}}}),
    );
    assert_eq!(e.field, "Choices");
    let e = refused(
        json!({"StartAt": "T", "States": {"T": {"Type": "Task", "Resource": "arn:aws:lambda:us-east-1:1:function:f", "End": true,
        "Retry": [{"ErrorEquals": ["States.ALL", "X"]}]}}}),
    );
    assert_eq!(e.field, "Retry");
    let e = refused(
        json!({"StartAt": "T", "States": {"T": {"Type": "Task", "Resource": "arn:aws:lambda:us-east-1:1:function:f", "End": true,
        "Retry": [{"ErrorEquals": ["X"], "JitterStrategy": "HALF"}]}}}),
    );
    assert_eq!(e.field, "Retry");
    let e = refused(
        json!({"StartAt": "P", "States": {"P": {"Type": "Pass", "Parameters": {"x.$": "States.Nope(1)"}, "End": true}}}),
    );
    assert_eq!(e.field, "Parameters");
    let e = refused(
        json!({"StartAt": "P", "States": {"P": {"Type": "Pass", "ResultPath": "$.a[*]", "End": true}}}),
    );
    assert_eq!(e.field, "ResultPath");
    let e = refused(
        json!({"StartAt": "W", "States": {"W": {"Type": "Wait", "Seconds": 100_000_000, "End": true}}}),
    );
    assert_eq!(
        (e.state.as_str(), e.field.as_str(), e.message.as_str()),
        ("W", "Seconds", "must be an integer from 0 to 99999999")
    );
    let e = StateMachine::from_json("{not json", &HashMap::new()).expect_err("not JSON");
    assert!(
        e.message.starts_with("the definition is not valid JSON: "),
        "{e}"
    );
    let e = StateMachine::from_json("[]", &HashMap::new()).expect_err("not an object");
    assert_eq!(e.message, "a state machine must be a JSON object");
}

/// Stubs for the seed's Lambdas: the manifest has two pipelines; CheckPipelines reports
/// IN_PROGRESS `polls` times, then COMPLETED.
struct SeedStubs {
    polls: Cell<u32>,
    updates: Cell<u32>,
}

#[async_trait::async_trait(?Send)]
impl TaskHandler for SeedStubs {
    async fn invoke(&self, function: &str, payload: Value) -> Result<Value, TaskFailure> {
        match function.rsplit(':').next().unwrap_or_default() {
            "CheckManifest" => {
                Ok(json!({"steps": 1, "manifest": {"releaseId": "5.15", "pipelines": ["a", "b"]}}))
            }
            "RunPipeline" => Ok(json!({"error": "", "pipeline": payload["pipeline"]})),
            "CheckPipelines" => {
                self.polls.set(self.polls.get() + 1);
                let status = if self.polls.get() > 240 {
                    "COMPLETED"
                } else {
                    "IN_PROGRESS"
                };
                Ok(
                    json!({"releaseId": "5.15", "releaseStatus": status, "releaseTimestamp": "2026-03-01T11:00:00Z"}),
                )
            }
            "updateItem" => {
                self.updates.set(self.updates.get() + 1);
                assert_eq!(payload["Key"]["ReleaseId"]["S"], json!("5.15"));
                assert_eq!(
                    payload["ExpressionAttributeNames"]["#new"],
                    json!("COMPLETED")
                );
                Ok(json!({"Attributes": {}}))
            }
            other => Err(TaskFailure::new("Unknown", format!("no stub for {other}"))),
        }
    }
}

#[test]
fn seed_definition_runs_with_stub_handlers() {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../events/seed/original-release_machine.asl.json");
    let def = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let arn = |n: &str| format!("arn:aws:lambda:us-east-1:123456789012:function:{n}");
    let subs = HashMap::from([
        ("CheckManifestFunctionArn".to_owned(), arn("CheckManifest")),
        ("RunPipelineFunctionArn".to_owned(), arn("RunPipeline")),
        (
            "CheckPipelinesFunctionArn".to_owned(),
            arn("CheckPipelines"),
        ),
        (
            "DDBUpdatetem".to_owned(),
            "arn:aws:states:::dynamodb:updateItem".to_owned(),
        ),
        ("DDBTable".to_owned(), "Releases".to_owned()),
    ]);
    let m = StateMachine::from_json(&def, &subs).unwrap_or_else(|e| panic!("{e}"));
    let stubs = SeedStubs {
        polls: Cell::new(0),
        updates: Cell::new(0),
    };
    let (execution, _tokens) = m.start(ExecutionConfig::new(
        "seed",
        "release_machine",
        T0,
        json!({"bucket": "b", "key": "k"}),
    ));
    let out = common::virtual_runtime().block_on(execution.run(&stubs));
    assert_eq!(
        out.status,
        ExecutionStatus::Succeeded,
        "{:?} {:?}",
        out.error,
        out.cause
    );
    assert_eq!(stubs.updates.get(), 1);
    // 241 polls, 30 s apart: two simulated hours.
    assert_eq!(
        out.ended_at - out.started_at,
        time::Duration::seconds(241 * 30)
    );
    println!(
        "seed polling design, 2 pipelines, 2 simulated hours: {} transitions, {} events",
        out.state_transitions,
        out.history.len(),
    );
    // The polling design's cost: transitions and events grow with the release's duration.
    assert!(out.state_transitions > 700, "{}", out.state_transitions);
    assert_eq!(
        types(&out)
            .iter()
            .filter(|t| **t == "MapIterationStarted")
            .count(),
        2
    );
}

/// Like the release: each of 500 items runs ~6 states, one a waitForTaskToken task
/// completed by a simulated pipeline.
#[test]
fn map_of_500_with_task_tokens_completes_in_virtual_time() {
    let m = load(json!({"StartAt": "Prepare", "States": {
        "Prepare": {"Type": "Pass", "Result": 500, "ResultPath": "$.count", "Next": "Fan"},
        "Fan": {"Type": "Map", "ItemsPath": "$.items", "MaxConcurrency": 40, "ResultPath": null,
            "ItemSelector": {"name.$": "$$.Map.Item.Value", "release.$": "$.release"},
            "ItemProcessor": {"ProcessorConfig": {"Mode": "INLINE"}, "StartAt": "Start", "States": {
                "Start": {"Type": "Task", "Resource": "arn:aws:states:::lambda:invoke", "Parameters": {"FunctionName": "echo", "Payload.$": "$"},
                    "ResultSelector": {"started.$": "$.Payload.name"}, "ResultPath": "$.start", "Next": "Await"},
                "Await": {"Type": "Task", "Resource": "arn:aws:states:::lambda:invoke.waitForTaskToken", "TimeoutSeconds": 7800,
                    "Parameters": {"FunctionName": "callback", "Payload": {"token.$": "$$.Task.Token", "after": 7200, "output": {"status": "Succeeded"}}},
                    "ResultPath": "$.result", "Next": "Check"},
                "Check": {"Type": "Choice", "Choices": [{"Variable": "$.result.status", "StringEquals": "Succeeded", "Next": "Record"}], "Default": "Failed"},
                "Record": {"Type": "Pass", "Parameters": {"name.$": "$.name", "status.$": "$.result.status"}, "Next": "Settle"},
                "Settle": {"Type": "Wait", "Seconds": 1, "Next": "Done"},
                "Done": {"Type": "Succeed"},
                "Failed": {"Type": "Fail", "Error": "PipelineFailed"}}},
            "Next": "End"},
        "End": {"Type": "Succeed"}}}));
    let items: Vec<String> = (0..500).map(|i| format!("pipeline-{i}")).collect();
    let input = json!({"items": items, "release": "r1"});
    // The time budget is measured by the local_run bench (crates/cli/benches), not here.
    for lean in [true, false] {
        let mut config = ExecutionConfig::new("big", "sm", T0, input.clone());
        if lean {
            config = config.without_history_data();
        }
        let (execution, tokens) = m.start(config);
        let handler = common::ScriptedHandler::new(tokens);
        let out = common::virtual_runtime().block_on(execution.run(&handler));
        assert_eq!(out.status, ExecutionStatus::Succeeded, "{:?}", out.cause);
        assert_eq!(out.state_transitions, 3 + 500 * 6);
        // 13 rounds of 40 (MaxConcurrency) pipelines of 7200 s, each then waiting 1 s.
        assert_eq!(
            out.ended_at - out.started_at,
            time::Duration::seconds(13 * 7201)
        );
        let last = out.history.last().expect("events");
        assert_eq!(last.r#type, "ExecutionSucceeded");
        assert_eq!(last.timestamp, T0 + time::Duration::seconds(13 * 7201));
        // The lean history keeps the events but none of the data.
        let started = &out.history[0];
        assert_eq!(
            started.details["input"].is_null(),
            lean,
            "{:?}",
            started.details
        );
    }
}

/// What a hostile case must end with, exactly.
enum Expect {
    Output(Value),
    Failed(&'static str, &'static str),
    TimedOut(&'static str),
}

#[test]
fn hostile_inputs_give_errors_not_panics() {
    let one_year = time::Duration::days(365);
    let runtime = |cause| Expect::Failed("States.Runtime", cause);
    let cases = [
        // The next element would overflow i64: the range stops before it.
        (
            json!({"StartAt": "P", "States": {"P": {"Type": "Pass", "Parameters": {"r.$": "States.ArrayRange(9223372036854775800, 9223372036854775807, 100)"}, "End": true}}}),
            json!({}),
            Expect::Output(json!({"r": [9223372036854775800_i64]})),
            time::Duration::ZERO,
        ),
        (
            json!({"StartAt": "P", "States": {"P": {"Type": "Pass", "Parameters": {"r.$": "States.MathAdd(9223372036854775807, 1)"}, "End": true}}}),
            json!({}),
            runtime("Invalid arguments in States.MathAdd: integer overflow"),
            time::Duration::ZERO,
        ),
        (
            json!({"StartAt": "P", "States": {"P": {"Type": "Pass", "InputPath": "$.a[-9223372036854775808]", "End": true}}}),
            json!({"a": [1]}),
            runtime("Invalid path '$.a[-9223372036854775808]' : No results for path: $.a[-9223372036854775808]"),
            time::Duration::ZERO,
        ),
        // Longer than the one-year maximum execution time: States.Timeout after one year
        // (it used to "succeed" thirty simulated years later, tokio's far-future cap).
        (
            json!({"StartAt": "W", "States": {"W": {"Type": "Wait", "SecondsPath": "$.s", "End": true}}}),
            json!({"s": u64::MAX}),
            Expect::TimedOut("The execution ran longer than the one-year maximum execution time"),
            one_year,
        ),
        (
            json!({"StartAt": "W", "States": {"W": {"Type": "Wait", "TimestampPath": "$.t", "End": true}}}),
            json!({"t": "9999-12-31T23:59:59Z"}),
            Expect::TimedOut("The execution ran longer than the one-year maximum execution time"),
            one_year,
        ),
        // A heartbeat that never fires does not stop the task from completing.
        (
            json!({"StartAt": "T", "States": {"T": {"Type": "Task", "Resource": "arn:aws:states:::lambda:invoke.waitForTaskToken", "HeartbeatSecondsPath": "$.h",
            "Parameters": {"FunctionName": "callback", "Payload": {"token.$": "$$.Task.Token", "after": 5}}, "End": true}}}),
            json!({"h": u64::MAX}),
            Expect::Output(json!({})),
            time::Duration::seconds(5),
        ),
        (
            json!({"StartAt": "M", "States": {"M": {"Type": "Map", "MaxConcurrencyPath": "$.m", "ItemProcessor": {"StartAt": "P", "States": {"P": {"Type": "Pass", "End": true}}}, "End": true}}}),
            json!([1, 2]),
            runtime("Invalid path '$.m' : No results for path: $.m"),
            time::Duration::ZERO,
        ),
        (
            json!({"StartAt": "P", "States": {"P": {"Type": "Pass", "Parameters": {"r.$": "States.Base64Decode('!!!')"}, "End": true}}}),
            json!({}),
            runtime("Invalid arguments in States.Base64Decode: Invalid symbol 33, offset 0."),
            time::Duration::ZERO,
        ),
        (
            json!({"StartAt": "P", "States": {"P": {"Type": "Pass", "Parameters": {"r.$": "States.StringToJson('{')"}, "End": true}}}),
            json!({}),
            runtime("Invalid arguments in States.StringToJson: EOF while parsing an object at line 1 column 1"),
            time::Duration::ZERO,
        ),
        (
            json!({"StartAt": "F", "States": {"F": {"Type": "Fail", "ErrorPath": "$.e"}}}),
            json!({"e": {"not": "a string"}}),
            runtime(r#"The ErrorPath/CausePath must resolve to a string, got {"not":"a string"}"#),
            time::Duration::ZERO,
        ),
    ];
    for (def, input, expect, duration) in cases {
        let m = load(def.clone());
        let out = run_with(&m, input, common::ScriptedHandler::new);
        let got = (
            out.status,
            out.output.clone(),
            out.error.as_deref(),
            out.cause.as_deref(),
        );
        match expect {
            Expect::Output(v) => {
                assert_eq!(
                    got,
                    (ExecutionStatus::Succeeded, Some(v), None, None),
                    "{def}"
                )
            }
            Expect::Failed(error, cause) => assert_eq!(
                got,
                (ExecutionStatus::Failed, None, Some(error), Some(cause)),
                "{def}"
            ),
            Expect::TimedOut(cause) => assert_eq!(
                got,
                (
                    ExecutionStatus::TimedOut,
                    None,
                    Some("States.Timeout"),
                    Some(cause)
                ),
                "{def}"
            ),
        }
        assert_eq!(out.ended_at - out.started_at, duration, "{def}");
    }
}

/// The project's own definition must load unchanged (the CLI runs it with the real handlers).
#[test]
fn release_definition_loads() {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../statemachine/release.asl.json");
    let def = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let arn = |n: &str| format!("arn:aws:lambda:us-east-1:123456789012:function:{n}");
    let mut subs: HashMap<String, String> = [
        "CheckManifest",
        "PollExecution",
        "RecordState",
        "StartPipelines",
    ]
    .iter()
    .map(|n| (format!("{n}FunctionArn"), arn(n)))
    .collect();
    // Task resources are whole-value substitutions (no hard-coded partition in the file).
    subs.insert(
        "LambdaInvoke".to_owned(),
        "arn:aws:states:::lambda:invoke".to_owned(),
    );
    subs.insert(
        "LambdaInvokeWaitForTaskToken".to_owned(),
        "arn:aws:states:::lambda:invoke.waitForTaskToken".to_owned(),
    );
    if let Err(e) = StateMachine::from_json(&def, &subs) {
        panic!("{}: {e}", path.display());
    }
}

//! An execution stopped from outside, as StopExecution does: `with_abort_after` (at a given
//! simulated time) and `StopHandle::stop` (from another task, with or without error/cause).

mod common;

use std::cell::{Cell, RefCell};
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

fn types(outcome: &ExecutionOutcome) -> Vec<&str> {
    outcome.history.iter().map(|e| e.r#type.as_str()).collect()
}

/// Sets its flag when dropped: tells whether a handler future was dropped mid-flight.
struct DropFlag(Rc<Cell<u32>>);

impl Drop for DropFlag {
    fn drop(&mut self) {
        self.0.set(self.0.get() + 1);
    }
}

/// Records every call; `wait` keeps the task token and answers at once (the task then waits
/// for its token); `slow` sleeps `seconds` and counts the calls that finished and the
/// futures dropped before finishing.
#[derive(Default)]
struct Recorder {
    calls: RefCell<Vec<String>>,
    tokens: RefCell<Vec<String>>,
    finished: Cell<u32>,
    dropped: Rc<Cell<u32>>,
}

#[async_trait::async_trait(?Send)]
impl TaskHandler for Recorder {
    async fn invoke(&self, function: &str, payload: Value) -> Result<Value, TaskFailure> {
        self.calls.borrow_mut().push(function.to_owned());
        match function.rsplit(':').next().unwrap_or(function) {
            "wait" => {
                let token = payload["token"].as_str().unwrap_or_default().to_owned();
                self.tokens.borrow_mut().push(token);
                Ok(json!({"accepted": true}))
            }
            "slow" => {
                let guard = DropFlag(Rc::clone(&self.dropped));
                let secs = payload["seconds"].as_u64().unwrap_or(0);
                tokio::time::sleep(Duration::from_secs(secs)).await;
                std::mem::forget(guard);
                self.finished.set(self.finished.get() + 1);
                Ok(payload)
            }
            _ => Ok(payload),
        }
    }
}

fn token_then_next() -> StateMachine {
    load(json!({"StartAt": "Await", "States": {
        "Await": {"Type": "Task", "Resource": "arn:aws:states:::lambda:invoke.waitForTaskToken",
            "Parameters": {"FunctionName": "wait", "Payload": {"token.$": "$$.Task.Token"}},
            "TimeoutSeconds": 7200, "Next": "After"},
        "After": {"Type": "Task", "Resource": "arn:aws:states:::lambda:invoke",
            "Parameters": {"FunctionName": "after", "Payload": {}}, "End": true}}}))
}

#[test]
fn abort_after_stops_a_task_waiting_for_its_token() {
    let m = token_then_next();
    let (execution, tokens) = m.start(
        ExecutionConfig::new("e", "sm", T0, json!({})).with_abort_after(Duration::from_secs(300)),
    );
    let h = Recorder::default();
    let out = common::virtual_runtime().block_on(execution.run(&h));

    assert_eq!(out.status, ExecutionStatus::Aborted);
    assert_eq!(
        serde_json::to_value(out.status).ok(),
        Some(json!("ABORTED"))
    );
    assert_eq!(out.output, None);
    assert_eq!((out.error.as_deref(), out.cause.as_deref()), (None, None));
    assert_eq!(out.ended_at - out.started_at, time::Duration::seconds(300));
    assert_eq!(
        types(&out),
        [
            "ExecutionStarted",
            "TaskStateEntered",
            "TaskScheduled",
            "TaskStarted",
            "TaskSubmitted",
            "ExecutionAborted"
        ]
    );
    let last = out.history.last().expect("events");
    // StopExecution without error or cause: executionAbortedEventDetails has neither.
    assert_eq!(last.details, Value::Null);
    assert_eq!(last.timestamp, T0 + time::Duration::seconds(300));
    assert_eq!(last.previous_event_id, last.id - 1);
    // No further task ran.
    assert_eq!(*h.calls.borrow(), ["wait"]);
    // The outstanding token answers as for an ended execution.
    let token = h.tokens.borrow()[0].clone();
    assert_eq!(tokens.waiting(), 0);
    assert_eq!(
        tokens.send_success(&token, json!({})),
        Err(TokenError::TaskTimedOut)
    );
    assert_eq!(
        tokens.send_failure(&token, "E", "C"),
        Err(TokenError::TaskTimedOut)
    );
    assert_eq!(tokens.send_heartbeat(&token), Err(TokenError::TaskTimedOut));
    assert_eq!(
        tokens.send_success("never-issued", json!({})),
        Err(TokenError::InvalidToken)
    );
    // The whole outcome serializes with its status as AWS spells it.
    let v = serde_json::to_value(&out).expect("serializes");
    assert_eq!(v["status"], json!("ABORTED"));
}

#[test]
fn abort_drops_in_flight_handler_futures_of_every_map_iteration() {
    let m = load(json!({"StartAt": "M", "States": {
        "M": {"Type": "Map", "ItemsPath": "$.items", "MaxConcurrency": 3,
            "ItemSelector": {"seconds.$": "$$.Map.Item.Value"},
            "ItemProcessor": {"StartAt": "T", "States": {"T": {"Type": "Task",
                "Resource": "arn:aws:lambda:us-east-1:123456789012:function:slow", "End": true}}},
            "Next": "After"},
        "After": {"Type": "Task", "Resource": "arn:aws:lambda:us-east-1:123456789012:function:after", "End": true}}}));
    // 10 s finishes before the abort at 60 s; 100, 200 and the next one started (300) are
    // in flight then.
    let (execution, _tokens) = m.start(
        ExecutionConfig::new("e", "sm", T0, json!({"items": [10, 100, 200, 300, 400]}))
            .with_abort_after(Duration::from_secs(60)),
    );
    let h = Recorder::default();
    let out = common::virtual_runtime().block_on(execution.run(&h));
    assert_eq!(out.status, ExecutionStatus::Aborted);
    assert_eq!(out.ended_at - out.started_at, time::Duration::seconds(60));
    assert_eq!(h.finished.get(), 1);
    assert_eq!(
        h.dropped.get(),
        3,
        "the three running invocations were dropped"
    );
    assert_eq!(h.calls.borrow().len(), 4, "the fifth item never started");
    assert!(!h.calls.borrow().iter().any(|c| c.ends_with(":after")));
    let t = types(&out);
    assert_eq!(t.last(), Some(&"ExecutionAborted"));
    assert_eq!(
        t.iter()
            .filter(|x| **x == "LambdaFunctionSucceeded")
            .count(),
        1
    );
    assert!(!t.contains(&"MapStateSucceeded") && !t.contains(&"MapStateFailed"));
}

#[test]
fn abort_during_a_retry_backoff_runs_no_further_attempt() {
    let m = load(json!({"StartAt": "T", "States": {"T": {"Type": "Task",
        "Resource": "arn:aws:lambda:us-east-1:1:function:flaky", "Parameters": {"failures": 5},
        "Retry": [{"ErrorEquals": ["Flaky"], "IntervalSeconds": 60, "MaxAttempts": 5, "BackoffRate": 1.0}],
        "End": true}}}));
    let (execution, tokens) = m.start(
        ExecutionConfig::new("e", "sm", T0, json!({})).with_abort_after(Duration::from_secs(90)),
    );
    let h = common::ScriptedHandler::new(tokens);
    let out = common::virtual_runtime().block_on(execution.run(&h));
    assert_eq!(out.status, ExecutionStatus::Aborted);
    // Attempts at 0 s and 60 s; the one due at 120 s never comes.
    assert_eq!(h.calls.borrow().get("flaky"), Some(&2));
    assert_eq!(out.ended_at - out.started_at, time::Duration::seconds(90));
}

#[test]
fn abort_after_an_execution_that_ended_first_changes_nothing() {
    let m = load(
        json!({"StartAt": "W", "States": {"W": {"Type": "Wait", "Seconds": 30, "End": true}}}),
    );
    let (execution, _tokens) = m.start(
        ExecutionConfig::new("e", "sm", T0, json!({"a": 1}))
            .with_abort_after(Duration::from_secs(31)),
    );
    let out = common::virtual_runtime().block_on(execution.run(&Recorder::default()));
    assert_eq!(out.status, ExecutionStatus::Succeeded);
    assert_eq!(out.output, Some(json!({"a": 1})));
    assert!(!types(&out).contains(&"ExecutionAborted"));

    // The execution's own end wins a tie with the abort.
    let (execution, _tokens) = m.start(
        ExecutionConfig::new("e", "sm", T0, json!({})).with_abort_after(Duration::from_secs(30)),
    );
    let out = common::virtual_runtime().block_on(execution.run(&Recorder::default()));
    assert_eq!(out.status, ExecutionStatus::Succeeded);
}

#[test]
fn stop_handle_aborts_with_error_and_cause_from_another_task() {
    let m = token_then_next();
    let (execution, tokens) = m.start(ExecutionConfig::new("e", "sm", T0, json!({})));
    let stop = execution.stop_handle();
    let h = Recorder::default();
    let rt = common::virtual_runtime();
    let out = rt.block_on(async {
        let stopper = stop.clone();
        tokio::spawn(async move {
            tokio::time::sleep(Duration::from_secs(45)).await;
            stopper.stop(Some("Cancelled"), Some("cancelled by alice"));
            // A second stop does not replace the first.
            stopper.stop(Some("Other"), None);
        });
        execution.run(&h).await
    });
    assert!(stop.is_stopped());
    assert_eq!(out.status, ExecutionStatus::Aborted);
    assert_eq!(out.error.as_deref(), Some("Cancelled"));
    assert_eq!(out.cause.as_deref(), Some("cancelled by alice"));
    assert_eq!(out.ended_at - out.started_at, time::Duration::seconds(45));
    let last = out.history.last().expect("events");
    assert_eq!(last.r#type, "ExecutionAborted");
    assert_eq!(
        last.details,
        json!({"error": "Cancelled", "cause": "cancelled by alice"})
    );
    let token = h.tokens.borrow()[0].clone();
    assert_eq!(
        tokens.send_success(&token, json!({})),
        Err(TokenError::TaskTimedOut)
    );
    // A stop after the end changes nothing.
    stop.stop(None, None);
}

#[test]
fn stop_with_only_a_cause_and_before_the_run_starts() {
    let m = token_then_next();
    let (execution, _tokens) = m.start(ExecutionConfig::new("e", "sm", T0, json!({})));
    execution.stop_handle().stop(None, Some("not wanted"));
    let h = Recorder::default();
    let out = common::virtual_runtime().block_on(execution.run(&h));
    assert_eq!(out.status, ExecutionStatus::Aborted);
    assert_eq!(out.error, None);
    assert_eq!(out.cause.as_deref(), Some("not wanted"));
    assert_eq!(types(&out), ["ExecutionStarted", "ExecutionAborted"]);
    assert_eq!(out.history[1].details, json!({"cause": "not wanted"}));
    assert!(h.calls.borrow().is_empty());
}

/// A handler whose tokens are completed later from a spawned task: the abort must win over a
/// completion due after it, and the late completion is refused.
struct LateCallback(TaskTokens, Rc<RefCell<Vec<Result<(), TokenError>>>>);

#[async_trait::async_trait(?Send)]
impl TaskHandler for LateCallback {
    async fn invoke(&self, _f: &str, payload: Value) -> Result<Value, TaskFailure> {
        let tokens = self.0.clone();
        let token = payload["token"].as_str().unwrap_or_default().to_owned();
        let answers = Rc::clone(&self.1);
        tokio::task::spawn_local(async move {
            tokio::time::sleep(Duration::from_secs(500)).await;
            answers
                .borrow_mut()
                .push(tokens.send_success(&token, json!({})));
        });
        Ok(Value::Null)
    }
}

#[test]
fn a_completion_after_the_abort_is_refused() {
    let m = token_then_next();
    let (execution, tokens) = m.start(
        ExecutionConfig::new("e", "sm", T0, json!({})).with_abort_after(Duration::from_secs(100)),
    );
    let answers = Rc::new(RefCell::new(Vec::new()));
    let h = LateCallback(tokens, Rc::clone(&answers));
    let rt = common::virtual_runtime();
    let local = tokio::task::LocalSet::new();
    let out = local.block_on(&rt, async {
        let out = execution.run(&h).await;
        tokio::time::sleep(Duration::from_secs(1000)).await;
        out
    });
    assert_eq!(out.status, ExecutionStatus::Aborted);
    assert_eq!(*answers.borrow(), [Err(TokenError::TaskTimedOut)]);
}

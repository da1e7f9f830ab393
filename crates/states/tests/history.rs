//! What the history records: TaskSubmitted for `.waitForTaskToken` tasks, and the 25,000-event
//! quota that fails an execution as Step Functions does.

mod common;

use std::collections::HashMap;

use rm_states::{ExecutionConfig, ExecutionOutcome, ExecutionStatus, StateMachine};
use serde_json::{json, Value};
use time::macros::datetime;

const T0: time::OffsetDateTime = datetime!(2026-03-01 09:00 UTC);
const HISTORY_FULL: &str = "The execution reached the maximum number of history events (25000).";

fn run(def: Value, input: Value) -> ExecutionOutcome {
    let m = StateMachine::from_json(&def.to_string(), &HashMap::new())
        .unwrap_or_else(|e| panic!("{e}"));
    let (execution, tokens) = m.start(ExecutionConfig::new("exec", "sm", T0, input));
    let handler = common::ScriptedHandler::new(tokens);
    common::virtual_runtime().block_on(execution.run(&handler))
}

fn types(out: &ExecutionOutcome) -> Vec<&str> {
    out.history.iter().map(|e| e.r#type.as_str()).collect()
}

fn token_task(payload: Value, timeout: u64) -> Value {
    json!({"StartAt": "T", "States": {"T": {"Type": "Task",
        "Resource": "arn:aws:states:::lambda:invoke.waitForTaskToken", "TimeoutSeconds": timeout,
        "Parameters": {"FunctionName": "callback", "Payload": payload}, "End": true}}})
}

#[test]
fn wait_for_task_token_records_task_submitted_between_started_and_the_end() {
    // Completed by its token.
    let out = run(
        token_task(
            json!({"token.$": "$$.Task.Token", "after": 30, "output": {"v": 1}}),
            100,
        ),
        json!({}),
    );
    assert_eq!(out.output, Some(json!({"v": 1})));
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
    let submitted = &out.history[4];
    assert_eq!(
        submitted.details,
        json!({"resourceType": "lambda", "resource": "invoke.waitForTaskToken", "output": {"accepted": true}})
    );
    // Submitted when the invocation returned, before the token came back 30 s later.
    assert_eq!(submitted.timestamp, T0);
    assert_eq!(out.history[5].timestamp, T0 + time::Duration::seconds(30));

    // Failed through its token.
    let out = run(
        token_task(
            json!({"token.$": "$$.Task.Token", "after": 30, "fail": "PipelineFailed"}),
            100,
        ),
        json!({}),
    );
    assert_eq!(out.error.as_deref(), Some("PipelineFailed"));
    assert_eq!(
        types(&out)[2..6],
        [
            "TaskScheduled",
            "TaskStarted",
            "TaskSubmitted",
            "TaskFailed"
        ]
    );

    // Timed out while waiting for its token.
    let out = run(
        token_task(json!({"token.$": "$$.Task.Token", "after": 500}), 100),
        json!({}),
    );
    assert_eq!(out.error.as_deref(), Some("States.Timeout"));
    assert_eq!(
        types(&out)[2..6],
        [
            "TaskScheduled",
            "TaskStarted",
            "TaskSubmitted",
            "TaskTimedOut"
        ]
    );

    // A request-response task is not submitted: it ends with its answer.
    let out = run(
        json!({"StartAt": "T", "States": {"T": {"Type": "Task", "Resource": "arn:aws:states:::lambda:invoke",
            "Parameters": {"FunctionName": "echo", "Payload": {}}, "End": true}}}),
        json!({}),
    );
    assert_eq!(out.status, ExecutionStatus::Succeeded);
    assert!(!types(&out).contains(&"TaskSubmitted"), "{:?}", types(&out));
}

fn assert_history_full(out: &ExecutionOutcome) {
    assert_eq!(out.status, ExecutionStatus::Failed);
    assert_eq!(out.error.as_deref(), Some("States.Runtime"));
    assert_eq!(out.cause.as_deref(), Some(HISTORY_FULL));
    assert_eq!(out.history.len(), 25_000);
    let last = out.history.last().expect("events");
    assert_eq!(last.r#type, "ExecutionFailed");
    assert_eq!(
        last.details,
        json!({"error": "States.Runtime", "cause": HISTORY_FULL})
    );
    assert!(out
        .history
        .iter()
        .enumerate()
        .all(|(i, e)| e.id == i as u64 + 1));
}

#[test]
fn an_execution_fails_when_its_history_reaches_25000_events() {
    // A loop that never ends on its own.
    let out = run(
        json!({"StartAt": "A", "States": {"A": {"Type": "Pass", "Next": "A"}}}),
        json!({}),
    );
    assert_history_full(&out);
    assert_eq!(out.state_transitions, 12_500);

    // Neither Retry nor Catch handles it: a task retried (almost) forever still fails.
    let out = run(
        json!({"StartAt": "T", "States": {
            "T": {"Type": "Task", "Resource": "arn:aws:lambda:us-east-1:1:function:fail",
                "Parameters": {"error": "Boom"},
                "Retry": [{"ErrorEquals": ["States.ALL"], "IntervalSeconds": 1, "BackoffRate": 1.0, "MaxAttempts": 99999999}],
                "Catch": [{"ErrorEquals": ["States.ALL"], "Next": "Caught"}], "End": true},
            "Caught": {"Type": "Succeed"}}}),
        json!({}),
    );
    assert_history_full(&out);
    assert!(!types(&out).contains(&"SucceedStateEntered"));

    // Concurrent Map iterations share the one history.
    let items: Vec<u32> = (0..10).collect();
    let out = run(
        json!({"StartAt": "M", "States": {"M": {"Type": "Map", "ItemsPath": "$.items", "MaxConcurrency": 5,
            "ItemProcessor": {"StartAt": "W", "States": {"W": {"Type": "Wait", "Seconds": 1, "Next": "W"}}},
            "End": true}}}),
        json!({"items": items}),
    );
    assert_history_full(&out);
}

#[test]
fn a_history_of_exactly_25000_events_succeeds() {
    // ExecutionStarted, 2 events per state entered, ExecutionSucceeded:
    // 1 + 2 (First) + 4 per loop (C, Inc) + 2 (C) + 2 (Done) + 1 = 8 + 4 * loops.
    let def = json!({"StartAt": "First", "States": {
        "First": {"Type": "Pass", "Next": "C"},
        "C": {"Type": "Choice", "Choices": [{"Variable": "$.n", "NumericGreaterThanEqualsPath": "$.loops", "Next": "Done"}], "Default": "Inc"},
        "Inc": {"Type": "Pass", "Parameters": {"n.$": "States.MathAdd($.n, 1)", "loops.$": "$.loops"}, "Next": "C"},
        "Done": {"Type": "Succeed"}}});
    let out = run(def.clone(), json!({"n": 0, "loops": 6248}));
    assert_eq!(out.status, ExecutionStatus::Succeeded, "{:?}", out.cause);
    assert_eq!(out.history.len(), 25_000);

    // One loop more would need 25,004.
    let out = run(def, json!({"n": 0, "loops": 6249}));
    assert_history_full(&out);
}

//! Retry details the release definition relies on: `$$.State.RetryCount` in a Task's context
//! object, and a `Lambda.Unknown` failure retried by a Retry on `Lambda.Unknown`.

mod common;

use std::cell::RefCell;
use std::collections::HashMap;

use rm_states::{ExecutionConfig, ExecutionStatus, StateMachine, TaskFailure, TaskHandler};
use serde_json::{json, Value};
use time::macros::datetime;

const T0: time::OffsetDateTime = datetime!(2026-03-01 09:00 UTC);

fn load(def: Value) -> StateMachine {
    StateMachine::from_json(&def.to_string(), &HashMap::new()).unwrap_or_else(|e| panic!("{e}"))
}

/// Fails with `Lambda.Unknown` (what Step Functions reports when a Lambda ends without a
/// usable answer: out of memory, timed out inside the runtime) the first `failures` calls,
/// then echoes its payload; keeps every payload it was given.
struct Unknown {
    failures: usize,
    payloads: RefCell<Vec<Value>>,
}

impl Unknown {
    fn new(failures: usize) -> Self {
        Unknown {
            failures,
            payloads: RefCell::new(Vec::new()),
        }
    }
}

#[async_trait::async_trait(?Send)]
impl TaskHandler for Unknown {
    async fn invoke(&self, _f: &str, payload: Value) -> Result<Value, TaskFailure> {
        let n = {
            let mut p = self.payloads.borrow_mut();
            p.push(payload.clone());
            p.len()
        };
        if n <= self.failures {
            Err(TaskFailure::new(
                "Lambda.Unknown",
                "The cause could not be determined because Lambda did not return an error type.",
            ))
        } else {
            Ok(payload)
        }
    }
}

fn run(def: Value, handler: &Unknown) -> rm_states::ExecutionOutcome {
    let (execution, _tokens) = load(def).start(ExecutionConfig::new("e", "sm", T0, json!({})));
    common::virtual_runtime().block_on(execution.run(handler))
}

fn invoke_task(retry: Value) -> Value {
    json!({"StartAt": "T", "States": {"T": {"Type": "Task", "Resource": "arn:aws:states:::lambda:invoke",
        "Parameters": {"FunctionName": "f", "Payload": {"retryCount.$": "$$.State.RetryCount", "state.$": "$$.State.Name"}},
        "ResultSelector": {"payload.$": "$.Payload"},
        "Retry": retry, "End": true}}})
}

#[test]
fn retry_count_is_in_the_task_context_object() {
    let h = Unknown::new(2);
    let out = run(
        invoke_task(
            json!([{"ErrorEquals": ["States.ALL"], "IntervalSeconds": 1, "MaxAttempts": 3}]),
        ),
        &h,
    );
    assert_eq!(out.status, ExecutionStatus::Succeeded);
    let counts: Vec<Value> = h
        .payloads
        .borrow()
        .iter()
        .map(|p| p["retryCount"].clone())
        .collect();
    assert_eq!(counts, [json!(0), json!(1), json!(2)]);
    assert_eq!(
        out.output,
        Some(json!({"payload": {"retryCount": 2, "state": "T"}}))
    );
}

#[test]
fn lambda_unknown_is_retried_by_a_retry_on_lambda_unknown() {
    let retry = json!([
        {"ErrorEquals": ["Lambda.ServiceException", "Lambda.SdkClientException"], "MaxAttempts": 1},
        {"ErrorEquals": ["Lambda.Unknown"], "IntervalSeconds": 2, "BackoffRate": 2.0, "MaxAttempts": 3}
    ]);
    let h = Unknown::new(3);
    let out = run(invoke_task(retry.clone()), &h);
    assert_eq!(
        out.status,
        ExecutionStatus::Succeeded,
        "{:?} {:?}",
        out.error,
        out.cause
    );
    assert_eq!(h.payloads.borrow().len(), 4);
    // Waits 2 + 4 + 8 s in virtual time.
    assert_eq!(out.ended_at - out.started_at, time::Duration::seconds(14));
    let failed = out
        .history
        .iter()
        .filter(|e| e.r#type == "TaskFailed")
        .collect::<Vec<_>>();
    assert_eq!(failed.len(), 3);
    assert_eq!(failed[0].details["error"], json!("Lambda.Unknown"));

    // One failure more than the retrier allows: the execution fails with Lambda.Unknown.
    let h = Unknown::new(4);
    let out = run(invoke_task(retry), &h);
    assert_eq!(out.status, ExecutionStatus::Failed);
    assert_eq!(out.error.as_deref(), Some("Lambda.Unknown"));
    assert_eq!(h.payloads.borrow().len(), 4);
}

#[test]
fn lambda_unknown_is_not_retried_by_other_lambda_errors() {
    let h = Unknown::new(1);
    let out = run(
        invoke_task(
            json!([{"ErrorEquals": ["Lambda.ServiceException", "Lambda.TooManyRequestsException"], "MaxAttempts": 5}]),
        ),
        &h,
    );
    assert_eq!(out.status, ExecutionStatus::Failed);
    assert_eq!(out.error.as_deref(), Some("Lambda.Unknown"));
    assert_eq!(h.payloads.borrow().len(), 1);
}

//! record-state: records CodePipeline "Pipeline Execution State Change" events on the runs
//! (completing the waiting task on a terminal status) and, called by the state machine,
//! the end of a release (`{"action": "recordRelease", ...}`).
//!
//! Errors, by where the payload comes from:
//! - a state-machine payload that is malformed fails the task with `BadInput`;
//! - an EventBridge event that cannot be decoded (wrong detail-type, missing fields) is logged
//!   as an error and acknowledged with `{"outcome": "Rejected", "reason": ...}`: EventBridge
//!   invokes asynchronously, and retrying the same bytes cannot succeed; the sweep still
//!   polls the run, so nothing waits forever on a lost event;
//! - a failure recording a decodable event (throttling, a transient store error) fails the
//!   invocation, so Lambda's asynchronous retries deliver it again.

use super::encode;
use crate::ports::RunPorts;
use crate::tasks::RecordRequest;
use crate::usecases::{self, ChangeOutcome, Reconciled};
use crate::TaskError;
use serde_json::{json, Value};

/// Decodes the payload, records the event or the release's end, answers what was done.
pub async fn handle(payload: Value, ports: &RunPorts<'_>) -> Result<Value, TaskError> {
    match payload.get("detail-type").map(|t| t.as_str()) {
        Some(Some(EXECUTION_STATUS_CHANGE)) => return execution_ended(&payload, ports).await,
        Some(_) => return state_change(&payload, ports).await,
        None => {}
    }
    let request: RecordRequest = serde_json::from_value(payload).map_err(|e| {
        TaskError::BadInput(format!(
            "expected {{\"action\": \"recordRelease\", \"releaseId\", \"executionName\", \
             \"status\": \"SUCCEEDED\" | \"FAILED\"}} or a CodePipeline \"Pipeline Execution \
             State Change\" event: {e}"
        ))
    })?;
    match request {
        RecordRequest::RecordRelease(req) => {
            let view = usecases::record_release(&req, ports).await?;
            tracing::info!(release = %view.release_id, status = %view.status,
                cause = view.cause.as_deref().unwrap_or(""), "release recorded");
            encode(&view)
        }
    }
}

const EXECUTION_STATUS_CHANGE: &str = "Step Functions Execution Status Change";

/// The release state machine's execution ended (EventBridge, for FAILED, TIMED_OUT and
/// ABORTED): the reconciler ends the release it left RUNNING (issue 9, fault 2). An
/// undecodable event is acknowledged as `Rejected` (the sweep's DescribeExecution is the net);
/// a failure to reconcile fails the invocation, so EventBridge's asynchronous retries
/// deliver it again.
async fn execution_ended(event: &Value, ports: &RunPorts<'_>) -> Result<Value, TaskError> {
    let end = match usecases::decode_execution_event(event) {
        Ok(end) => end,
        Err(reason) => {
            let id = event.get("id").cloned().unwrap_or(Value::Null);
            tracing::error!(event_id = %id, %reason, "undecodable execution event; acknowledged");
            return Ok(json!({"outcome": "Rejected", "reason": reason}));
        }
    };
    let outcome = usecases::reconcile_execution(&end, ports).await?;
    tracing::info!(execution = %end.execution_name, status = ?end.state.status,
        outcome = ?outcome, "execution status change");
    Ok(match outcome {
        Reconciled::Nothing => json!({"outcome": "Nothing", "execution": end.execution_name}),
        Reconciled::StillRunning => {
            json!({"outcome": "StillRunning", "execution": end.execution_name})
        }
        Reconciled::Ended(view) => json!({
            "outcome": "Reconciled",
            "execution": end.execution_name,
            "release": view,
        }),
    })
}

async fn state_change(event: &Value, ports: &RunPorts<'_>) -> Result<Value, TaskError> {
    let change = match usecases::decode_state_change(event) {
        Ok(Some(change)) => change,
        Ok(None) => {
            let state = event
                .pointer("/detail/state")
                .cloned()
                .unwrap_or(Value::Null);
            tracing::info!(%state, "state not tracked; ignored");
            return Ok(json!({"outcome": "Ignored", "state": state}));
        }
        Err(reason) => {
            let id = event.get("id").cloned().unwrap_or(Value::Null);
            tracing::error!(event_id = %id, %reason, "undecodable state-change event; acknowledged without recording");
            return Ok(json!({"outcome": "Rejected", "reason": reason}));
        }
    };
    let outcome = usecases::record_state_change(&change, ports).await?;
    tracing::info!(pipeline = %change.pipeline, execution_id = %change.execution_id,
        status = %change.status, outcome = ?outcome, "state change");
    Ok(match outcome {
        ChangeOutcome::NotOurs => json!({
            "outcome": "NotOurs",
            "pipeline": change.pipeline,
            "executionId": change.execution_id,
        }),
        ChangeOutcome::Recorded(status) => json!({
            "outcome": "Recorded",
            "pipeline": change.pipeline,
            "executionId": change.execution_id,
            "status": status,
        }),
    })
}

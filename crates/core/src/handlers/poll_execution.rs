//! poll-execution: the AwaitPipeline task and the scheduled sweep.
//!
//! Payloads: `{"action": "await", ...}` from the state machine (a
//! `lambda:invoke.waitForTaskToken` task: the token is stored on the run and the status checked
//! at once), and the sweep, either as an EventBridge "Scheduled Event" (the 5-minute rule) or
//! as `{"action": "sweep"}` (by hand, or the local run).

use super::encode;
use crate::ports::RunPorts;
use crate::tasks::PollRequest;
use crate::usecases;
use crate::TaskError;
use aws_lambda_events::event::eventbridge::EventBridgeEvent;
use serde_json::Value;

/// Decodes the payload, runs the await or the sweep, answers its result.
pub async fn handle(payload: Value, ports: &RunPorts<'_>) -> Result<Value, TaskError> {
    let request = decode(payload)?;
    match &request {
        PollRequest::Await {
            release_id,
            execution_name,
            pipeline,
            task_token,
        } => {
            let out = usecases::await_pipeline(release_id, pipeline, task_token, ports).await?;
            tracing::info!(release = %release_id, execution = %execution_name, pipeline = %pipeline,
                status = %out.status, completed = out.completed, "await");
            encode(&out)
        }
        PollRequest::Sweep => {
            let out = usecases::sweep(ports).await?;
            tracing::info!(
                polled = out.polled,
                completed = out.completed,
                errors = out.errors,
                "sweep"
            );
            encode(&out)
        }
    }
}

/// An EventBridge event (it has `detail-type`) must be the schedule's; anything else is a
/// [`PollRequest`].
fn decode(payload: Value) -> Result<PollRequest, TaskError> {
    if payload.get("detail-type").is_some() {
        let event: EventBridgeEvent = serde_json::from_value(payload)
            .map_err(|e| TaskError::BadInput(format!("not an EventBridge event: {e}")))?;
        if event.detail_type != "Scheduled Event" {
            return Err(TaskError::BadInput(format!(
                "expected an EventBridge \"Scheduled Event\" (the sweep), got detail-type {:?} from {:?}",
                event.detail_type, event.source
            )));
        }
        return Ok(PollRequest::Sweep);
    }
    serde_json::from_value(payload).map_err(|e| {
        TaskError::BadInput(format!(
            "expected {{\"action\": \"await\", \"releaseId\", \"executionName\", \"pipeline\", \
             \"taskToken\"}}, {{\"action\": \"sweep\"}} or a scheduled event: {e}"
        ))
    })
}

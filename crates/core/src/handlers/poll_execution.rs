//! poll-execution: the RunPipeline task (one `.waitForTaskToken` task per pipeline: store the token, start the pipeline, check it) and the scheduled sweep.
//!
//! Payloads: `{"action": "await", ...}` from the state machine (a
//! `lambda:invoke.waitForTaskToken` task: the token is stored on the run and the status checked
//! at once), and the sweep, either as an EventBridge "Scheduled Event" (the 5-minute rule) or
//! as `{"action": "sweep"}` (by hand), or scoped to one release as `{"action": "sweep",
//! "releaseId": "..."}` (the local run, so runs sharing a state directory never poll each
//! other's runs).

use super::encode;
use crate::ports::RunPorts;
use crate::release::ReleaseId;
use crate::tasks::PollRequest;
use crate::usecases::{self, SweepOptions};
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
            retry_count,
        } => {
            let out = usecases::await_pipeline(
                release_id,
                execution_name,
                pipeline,
                task_token,
                *retry_count,
                ports,
            )
            .await?;
            tracing::info!(release = %release_id, execution = %execution_name, pipeline = %pipeline,
                status = %out.status, completed = out.completed, "await");
            encode(&out)
        }
        PollRequest::AwaitApproval(req) => {
            usecases::await_approval(req, ports).await?;
            tracing::info!(release = %req.release_id, wave = req.wave, "awaiting approval");
            encode(&serde_json::json!({"waiting": true}))
        }
        PollRequest::ApprovalTimedOut(req) => {
            let out = usecases::approval_timed_out(req, ports).await?;
            tracing::warn!(release = %req.release_id, wave = req.wave, cause = %out.cause, "approval timed out");
            encode(&out)
        }
        PollRequest::AwaitGate(req) => {
            usecases::await_gate(req, ports).await?;
            tracing::info!(release = %req.release_id, wave = req.wave, "gate evaluated");
            encode(&serde_json::json!({"waiting": true}))
        }
        PollRequest::AwaitBake(req) => {
            usecases::await_bake(req, ports).await?;
            tracing::info!(release = %req.release_id, wave = req.wave, "baking");
            encode(&serde_json::json!({"waiting": true}))
        }
        PollRequest::Gates { release_id } => {
            let scope = release_id
                .as_deref()
                .map(|raw| {
                    ReleaseId::parse(raw)
                        .map_err(|m| TaskError::BadInput(format!("gates: releaseId {raw:?} {m}")))
                })
                .transpose()?;
            let out = usecases::reevaluate_waits(ports, scope.as_ref()).await?;
            tracing::info!(
                release = release_id.as_deref().unwrap_or("*"),
                evaluated = out.evaluated,
                opened = out.opened,
                failed = out.failed,
                resumed = out.resumed,
                errors = out.errors,
                "gates"
            );
            encode(&out)
        }
        PollRequest::Sweep { release_id } => {
            let options =
                match release_id {
                    Some(raw) => SweepOptions::for_release(ReleaseId::parse(raw).map_err(|m| {
                        TaskError::BadInput(format!("sweep: releaseId {raw:?} {m}"))
                    })?),
                    None => SweepOptions::default(),
                };
            let out = usecases::sweep_with(ports, &options).await?;
            tracing::info!(
                release = release_id.as_deref().unwrap_or("*"),
                polled = out.polled,
                completed = out.completed,
                errors = out.errors,
                remaining = out.remaining,
                "sweep"
            );
            encode(&out)
        }
    }
}

/// The detail-type of CloudWatch's alarm events
/// (docs.aws.amazon.com/AmazonCloudWatch/latest/monitoring/cloudwatch-and-eventbridge.html).
pub const ALARM_STATE_CHANGE: &str = "CloudWatch Alarm State Change";

/// An EventBridge event (it has `detail-type`) is the 5-minute schedule's (the sweep) or a
/// CloudWatch alarm's state change (the gates are re-evaluated: every one, since an alarm may
/// be named by prefix); anything else is a [`PollRequest`].
fn decode(payload: Value) -> Result<PollRequest, TaskError> {
    if payload.get("detail-type").is_some() {
        let event: EventBridgeEvent = serde_json::from_value(payload)
            .map_err(|e| TaskError::BadInput(format!("not an EventBridge event: {e}")))?;
        return match event.detail_type.as_str() {
            // The schedule's sweep covers every release.
            "Scheduled Event" => Ok(PollRequest::Sweep { release_id: None }),
            ALARM_STATE_CHANGE => {
                let alarm = event.detail.get("alarmName").and_then(Value::as_str);
                let state = event.detail.pointer("/state/value").and_then(Value::as_str);
                tracing::info!(?alarm, ?state, "alarm state change: gates re-evaluated");
                Ok(PollRequest::Gates { release_id: None })
            }
            other => Err(TaskError::BadInput(format!(
                "expected an EventBridge \"Scheduled Event\" (the sweep) or a \"{ALARM_STATE_CHANGE}\" \
                 event, got detail-type {other:?} from {:?}",
                event.source
            ))),
        };
    }
    serde_json::from_value(payload).map_err(|e| {
        TaskError::BadInput(format!(
            "expected {{\"action\": \"await\", \"releaseId\", \"executionName\", \"pipeline\", \
             \"taskToken\"}}, {{\"action\": \"awaitGate\" | \"awaitBake\", \"releaseId\", \
             \"executionName\", \"wave\", \"taskToken\"}}, {{\"action\": \"gates\", \"releaseId\"?}}, \
             {{\"action\": \"sweep\", \"releaseId\"?}} or a scheduled event: {e}"
        ))
    })
}

//! start-pipelines: the StopTimedOut and StopRunning tasks, and `start` (a start by itself; the state machine starts pipelines in its RunPipeline task).
//!
//! Payload: [`StartPipelinesRequest`], tagged by `action` (`start`, `stopTimedOut`,
//! `stopRunning`), as `statemachine/release.asl.json` builds it.

use super::encode;
use crate::ports::RunPorts;
use crate::tasks::StartPipelinesRequest;
use crate::usecases;
use crate::TaskError;
use serde_json::Value;

/// Decodes the payload, runs the use case the action names, answers its result.
pub async fn handle(payload: Value, ports: &RunPorts<'_>) -> Result<Value, TaskError> {
    let request: StartPipelinesRequest = serde_json::from_value(payload).map_err(|e| {
        TaskError::BadInput(format!(
            "expected {{\"action\": \"start\" | \"stopTimedOut\" | \"stopRunning\", ...}}: {e}"
        ))
    })?;
    match &request {
        StartPipelinesRequest::Start(r) => {
            let run = usecases::start_pipeline(r, ports).await?;
            tracing::info!(release = %r.release_id, pipeline = %r.pipeline, status = %run.status,
                execution_id = run.execution_id.as_deref().unwrap_or(""), "start");
            encode(&run)
        }
        StartPipelinesRequest::StopTimedOut(r) => {
            let run = usecases::stop_timed_out(r, ports).await?;
            tracing::warn!(release = %r.release_id, pipeline = %r.pipeline, status = %run.status,
                "stopped a pipeline that outlived its timeout");
            encode(&run)
        }
        StartPipelinesRequest::StopRunning {
            release_id,
            execution_name,
            attempt,
        } => {
            let out = usecases::stop_running(release_id, execution_name, *attempt, ports).await?;
            tracing::info!(release = %release_id, attempt = out.attempt, remaining = out.remaining,
                "stop running");
            encode(&out)
        }
    }
}

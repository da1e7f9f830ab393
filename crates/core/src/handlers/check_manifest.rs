//! check-manifest: the state machine's CheckManifest task.
//!
//! Payload: `{"input": <execution input>, "executionName": "..."}` (see
//! `statemachine/release.asl.json`). The execution input is an EventBridge S3 "Object Created"
//! event, `{"claimedRelease": "id"}` from the API, or a manifest. A rejected manifest fails
//! the task with errorType `ManifestInvalid` and every problem in the message.

use super::encode;
use crate::ports::ManifestPorts;
use crate::tasks::CheckManifestRequest;
use crate::{usecases, TaskError};
use serde_json::Value;

/// Decodes the payload, runs the use case, answers its result or a typed error.
pub async fn handle(payload: Value, ports: &ManifestPorts<'_>) -> Result<Value, TaskError> {
    let request: CheckManifestRequest = serde_json::from_value(payload).map_err(|e| {
        TaskError::BadInput(format!(
            "expected {{\"input\": <execution input>, \"executionName\": \"...\"}}: {e}"
        ))
    })?;
    let result = usecases::check_manifest(&request, ports).await;
    match &result {
        Ok(r) => tracing::info!(
            execution = %request.execution_name,
            release = %r.release_id,
            outcome = ?r.outcome,
            waves = r.waves.len(),
            "manifest checked"
        ),
        Err(e) => tracing::warn!(
            execution = %request.execution_name,
            error_type = e.error_type(),
            error = %e,
            "manifest rejected"
        ),
    }
    encode(&result?)
}

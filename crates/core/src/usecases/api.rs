use super::check::claim_manifest;
use crate::error::{TaskError, ValidationError};
use crate::manifest::Manifest;
use crate::ports::{ApiPorts, Claim};
use crate::release::{ReleaseId, ReleaseSource};
use crate::view::ReleaseView;
use serde_json::json;

/// What POST /releases answers.
#[derive(Debug, Clone, PartialEq)]
pub enum SubmitOutcome {
    /// 202: claimed and the execution started.
    Accepted {
        release_id: ReleaseId,
        execution_arn: String,
    },
    /// 400: every problem at once.
    Invalid(Vec<ValidationError>),
    /// 409: the release id is already claimed.
    Conflict { release_id: ReleaseId },
}

/// POST /releases: validate, check the pipelines, claim for `execution_name`, then start the
/// execution under that name. If the start fails the claim is given up, so the id is not
/// used up.
pub async fn submit_release(
    body: &[u8],
    execution_name: &str,
    caller: Option<&str>,
    ports: &ApiPorts<'_>,
) -> Result<SubmitOutcome, TaskError> {
    let manifest = match Manifest::parse(body) {
        Ok(m) => m,
        Err(rejection) => return Ok(SubmitOutcome::Invalid(rejection.0)),
    };
    let source = ReleaseSource {
        kind: "api".into(),
        location: caller.map(|c| format!("api:{c}")),
    };
    let claim = match claim_manifest(&manifest, source, execution_name, &ports.claim()).await {
        Ok(c) => c,
        Err(TaskError::ManifestInvalid(rejection)) => {
            return Ok(SubmitOutcome::Invalid(rejection.0))
        }
        Err(e) => return Err(e),
    };
    let release_id = manifest.release_id;
    if let Claim::Duplicate { .. } = claim {
        return Ok(SubmitOutcome::Conflict { release_id });
    }
    let input = json!({ "claimedRelease": release_id.as_str() });
    match ports.executions.start(execution_name, &input).await {
        Ok(execution_arn) => Ok(SubmitOutcome::Accepted {
            release_id,
            execution_arn,
        }),
        Err(e) => {
            if let Err(undo) = ports.store.release_claim(&release_id, execution_name).await {
                tracing::error!(release = %release_id, error = %undo, "could not give up the claim after a failed start");
            }
            Err(e.into())
        }
    }
}

/// GET /releases/{id}: `None` when unknown (or the id is not a valid release id).
pub async fn get_release(
    raw_id: &str,
    ports: &ApiPorts<'_>,
) -> Result<Option<ReleaseView>, TaskError> {
    let Ok(release_id) = ReleaseId::parse(raw_id) else {
        return Ok(None);
    };
    Ok(ports
        .store
        .get(&release_id)
        .await?
        .as_ref()
        .map(ReleaseView::from))
}

use super::check::claim_manifest;
use crate::error::{PortError, TaskError, ValidationError};
use crate::manifest::Manifest;
use crate::ports::{ApiPorts, Claim};
use crate::release::{ReleaseId, ReleaseSource, ReleaseStatus, SourceKind};
use crate::view::ReleaseView;
use serde_json::json;

/// What POST /releases answers.
#[derive(Debug, Clone, PartialEq)]
pub enum SubmitOutcome {
    /// 202: claimed and the execution started; or a repeat of the request that did (`repeat`),
    /// answered with that request's execution.
    Accepted {
        release_id: ReleaseId,
        execution_arn: String,
        repeat: bool,
    },
    /// 400: every problem at once.
    Invalid(Vec<ValidationError>),
    /// 409: the release id is already claimed, for another manifest, by another caller, or by
    /// a release that has ended.
    Conflict { release_id: ReleaseId },
}

/// POST /releases: validate, check the pipelines, claim for `execution_name`, then start the
/// execution under that name. If the claim's writes or the start fail, the claim is given up
/// (issue 9, fault 4), so the id is not used up and the same POST can be sent again. `caller`
/// (the caller's IAM ARN) is recorded as `requestedBy`.
///
/// Idempotent per release id and manifest content: when the id is already claimed through the
/// API by the same caller for the same manifest ([`Manifest::content_hash`]: the normalized
/// manifest, so whitespace, key order and spelled-out defaults do not count) and the release
/// is still RUNNING, this is a repeat (a retry after API Gateway's 29 s timeout, say): the
/// answer is the first request's execution, started under its name with the same input —
/// StartExecution with a name and input already used returns that execution, and starts it
/// if the first request claimed but never started it. The claim stays one conditional write.
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
        kind: SourceKind::Api,
        location: caller.map(|c| format!("api:{c}")),
    };
    let requested_by = caller.map(str::to_owned);
    let claim_ports = ports.claim();
    let claim = claim_manifest(
        &manifest,
        source,
        requested_by,
        execution_name,
        &claim_ports,
    );
    let claim = match claim.await {
        Ok(c) => c,
        Err(TaskError::ManifestInvalid(rejection)) => {
            return Ok(SubmitOutcome::Invalid(rejection.0))
        }
        Err(e) => {
            // The release item may have been written before the error (the run items' batch
            // write was throttled, a timeout after the conditional write landed): give the
            // claim up, or the id stays RUNNING with no execution and every re-POST is 409.
            give_up_claim(ports, &manifest.release_id, execution_name, &e).await;
            return Err(e);
        }
    };
    let release_id = manifest.release_id.clone();
    let input = json!({ "claimedRelease": release_id.as_str() });
    if let Claim::Duplicate { owner } = claim {
        let stored = ports.store.release_record(&release_id).await?;
        let repeat = stored.is_some_and(|r| {
            r.owner == owner
                && r.status == ReleaseStatus::Running
                && r.source.kind == SourceKind::Api
                && r.requested_by.as_deref() == caller
                && r.manifest_hash.as_deref() == Some(manifest.content_hash().as_str())
        });
        if !repeat {
            return Ok(SubmitOutcome::Conflict { release_id });
        }
        // Not given up on failure: the claim is the first request's.
        let execution_arn = ports.executions.start(&owner, &input).await?;
        return Ok(SubmitOutcome::Accepted {
            release_id,
            execution_arn,
            repeat: true,
        });
    }
    match ports.executions.start(execution_name, &input).await {
        Ok(execution_arn) => Ok(SubmitOutcome::Accepted {
            release_id,
            execution_arn,
            repeat: false,
        }),
        Err(e) => {
            let e = TaskError::from(e);
            give_up_claim(ports, &release_id, execution_name, &e).await;
            Err(e)
        }
    }
}

/// Gives up `owner`'s claim of `release_id` after `error` (the claim's writes or the
/// StartExecution failed): [`ReleaseStore::release_claim`] deletes the release and its runs if
/// `owner` still holds it and nothing started, so the id is not used up. `owner` is this
/// request's own execution name, never started, so nothing else can hold the claim under it.
/// Failing to give it up is logged, not answered: the request fails with `error` anyway, and
/// the reconciler's sweep ends a RUNNING release that has no execution.
///
/// [`ReleaseStore::release_claim`]: crate::ports::ReleaseStore::release_claim
async fn give_up_claim(
    ports: &ApiPorts<'_>,
    release_id: &ReleaseId,
    owner: &str,
    error: &TaskError,
) {
    match ports.store.release_claim(release_id, owner).await {
        Ok(()) => tracing::warn!(release = %release_id, owner, %error,
            "gave up this request's claim (if it was written) after a failed request"),
        // Nothing of this request's was written (the failure came before the claim's write,
        // or the id is another request's).
        Err(undo @ (PortError::NotFound(_) | PortError::ConditionFailed(_))) => {
            tracing::debug!(release = %release_id, owner, %error, reason = %undo,
                "no claim to give up after a failed request")
        }
        Err(undo) => tracing::error!(release = %release_id, owner, %error, error_giving_up = %undo,
            "could not give up the claim after a failed request; the reconciler's sweep ends the release"),
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

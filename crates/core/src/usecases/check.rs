use super::release_id;
use crate::error::{Rejection, TaskError, ValidationError};
use crate::events::EventDraft;
use crate::lifecycle::{AttemptRecord, Lifecycle, WaveRecord, WaveStatus};
use crate::manifest::{Manifest, MAX_MANIFEST_BYTES};
use crate::ports::{
    Claim, ClaimPorts, ManifestPorts, NewRelease, Pipelines, PortResult, ReleaseStore, SourceError,
};
use crate::release::{ReleaseRecord, ReleaseSource, ReleaseStatus, RunRecord, SourceKind};
use crate::tasks::{
    CheckManifestRequest, CheckManifestResponse, ManifestInput, Outcome, PipelineItem, WaveItem,
};
use futures::future::BoxFuture;
use futures::stream::{self, StreamExt, TryStreamExt};

/// How many GetPipeline calls run at once.
const EXISTS_CONCURRENCY: usize = 8;

/// The CheckManifest task: read and validate the manifest, check its pipelines exist, claim
/// the release id for this execution. A rejected manifest records nothing.
pub async fn check_manifest(
    request: &CheckManifestRequest,
    ports: &ManifestPorts<'_>,
) -> Result<CheckManifestResponse, TaskError> {
    let input = ManifestInput::classify(&request.input).map_err(TaskError::BadInput)?;
    let (manifest, origin, requested_by) = match input {
        ManifestInput::Claimed { release_id: raw } => {
            return claimed_release(ports.store, &release_id(&raw)?, &request.execution_name).await;
        }
        ManifestInput::S3Object {
            bucket,
            key,
            version_id,
        } => {
            let bytes = ports
                .source
                .read(&bucket, &key, version_id.as_deref(), MAX_MANIFEST_BYTES)
                .await
                .map_err(|e| match e {
                    SourceError::Port(p) => TaskError::from(p),
                    other => TaskError::ManifestUnreadable(other.to_string()),
                })?;
            let location = match &version_id {
                Some(v) => format!("s3://{bucket}/{key}?versionId={v}"),
                None => format!("s3://{bucket}/{key}"),
            };
            let manifest = Manifest::parse(&bytes).map_err(TaskError::ManifestInvalid)?;
            let requested_by = format!("{} via {location}", s3_requester(&request.input));
            (
                manifest,
                ReleaseSource {
                    kind: SourceKind::S3,
                    location: Some(location),
                },
                requested_by,
            )
        }
        ManifestInput::Inline(value) => {
            let manifest =
                Manifest::from_value(&value, None).map_err(TaskError::ManifestInvalid)?;
            (
                manifest,
                ReleaseSource {
                    kind: SourceKind::Inline,
                    location: None,
                },
                // An inline manifest is what the local runner feeds (ARCHITECTURE.md §3a).
                LOCAL_REQUESTER.to_owned(),
            )
        }
    };
    let claim_ports = ports.claim();
    let claim = claim_manifest(
        &manifest,
        origin,
        Some(requested_by),
        &request.execution_name,
        &claim_ports,
    );
    match claim.await? {
        Claim::Claimed => Ok(started(&manifest)),
        Claim::Duplicate { .. } => Ok(duplicate(manifest.release_id.as_str())),
    }
}

/// `requestedBy` of a release from an inline manifest.
pub const LOCAL_REQUESTER: &str = "local";

/// Who uploaded the manifest, as an S3 "Object Created" event says: `detail.requester` is the
/// requester's account id or an AWS service principal (the IAM identity is only in CloudTrail
/// data events); the event's `account` (the bucket owner's) when it is missing.
fn s3_requester(event: &serde_json::Value) -> String {
    let requester = event
        .pointer("/detail/requester")
        .and_then(serde_json::Value::as_str)
        .or_else(|| event.get("account").and_then(serde_json::Value::as_str))
        .filter(|r| !r.is_empty());
    match requester {
        Some(id) if id.bytes().all(|b| b.is_ascii_digit()) => format!("account:{id}"),
        Some(principal) => format!("service:{principal}"),
        None => "account:unknown".to_owned(),
    }
}

/// Checks the pipelines exist, then claims the release id for `owner`, recording who asked
/// and the manifest's [`Manifest::content_hash`]. Shared by the CheckManifest task and the
/// API, so both reject and claim the same way.
pub async fn claim_manifest(
    manifest: &Manifest,
    source: ReleaseSource,
    requested_by: Option<String>,
    owner: &str,
    ports: &ClaimPorts<'_>,
) -> Result<Claim, TaskError> {
    let missing = find_missing_pipelines(manifest, ports.pipelines).await?;
    if !missing.is_empty() {
        return Err(TaskError::ManifestInvalid(Rejection(missing)));
    }
    let now = ports.clock.now();
    let lifecycle = Lifecycle {
        attempts: vec![AttemptRecord {
            attempt: 1,
            execution: owner.to_owned(),
            requested_at: now,
            requested_by: requested_by.clone(),
            ended_at: None,
            status: ReleaseStatus::Running,
            cause: None,
        }],
        waves: manifest
            .waves()
            .iter()
            .map(|w| WaveRecord {
                wave: w.number,
                status: WaveStatus::Pending,
                started_at: None,
                ended_at: None,
            })
            .collect(),
        approval_waves: manifest.approvals.clone(),
        approval_timeout_minutes: manifest.approval_timeout_minutes,
        gates: manifest.gates.clone(),
        skip_unchanged: manifest.skip_unchanged,
        ..Lifecycle::default()
    };
    let record = ReleaseRecord {
        release_id: manifest.release_id.clone(),
        owner: owner.to_owned(),
        status: ReleaseStatus::Running,
        requested_at: now,
        ended_at: None,
        source,
        requested_by,
        manifest_hash: Some(manifest.content_hash()),
        on_failure: manifest.on_failure,
        max_concurrency: manifest.max_concurrency,
        description: manifest.description.clone(),
        cause: None,
        stop_requested: false,
        version: 0,
        lifecycle,
    };
    let events = EventDraft::stamp(
        vec![EventDraft::release_status(
            1,
            ReleaseStatus::Running,
            None,
            now,
        )],
        &manifest.release_id,
        1,
    );
    let new = NewRelease {
        record,
        manifest: manifest.clone(),
        events,
    };
    let claim = ports.store.claim(&new).await?;
    if claim == Claim::Claimed {
        // A retried claim publishes again what is still in the outbox (at least once).
        super::lifecycle::publish(ports.store, ports.bus, Some(&manifest.release_id)).await;
    }
    Ok(claim)
}

/// GetPipeline for every pipeline of the manifest; each missing one is a validation error at
/// its path, so the user fixes them all at once.
pub async fn find_missing_pipelines(
    manifest: &Manifest,
    pipelines: &dyn Pipelines,
) -> Result<Vec<ValidationError>, TaskError> {
    // The checks are boxed before they are streamed: a closure in the stream would make the
    // callers' futures fail rustc's `Send` check (rust-lang/rust#102211), and Lambda runtimes
    // need `Send` futures.
    let checks: Vec<BoxFuture<'_, PortResult<(usize, bool)>>> = manifest
        .pipelines
        .iter()
        .enumerate()
        .map(|(i, p)| -> BoxFuture<'_, PortResult<(usize, bool)>> {
            Box::pin(async move { Ok((i, pipelines.exists(&p.name).await?)) })
        })
        .collect();
    let found: Vec<(usize, bool)> = stream::iter(checks)
        .buffered(EXISTS_CONCURRENCY)
        .try_collect()
        .await?;
    Ok(found
        .into_iter()
        .filter(|(_, exists)| !exists)
        .map(|(i, _)| {
            let name = &manifest.pipelines[i].name;
            ValidationError::new(
                format!("$.pipelines[{i}].name"),
                format!("pipeline {name:?} does not exist in this account and region"),
            )
        })
        .collect())
}

/// The API claimed the release for this execution before starting it.
async fn claimed_release(
    store: &dyn ReleaseStore,
    release_id: &crate::ReleaseId,
    execution_name: &str,
) -> Result<CheckManifestResponse, TaskError> {
    let stored = store.get(release_id).await?.ok_or_else(|| {
        TaskError::NotFound(format!(
            "release {release_id} was not claimed before this execution started"
        ))
    })?;
    if stored.release.owner != execution_name {
        return Ok(duplicate(release_id.as_str()));
    }
    // A retry (attempt n > 1) re-runs only what did not succeed: those runs move to attempt n
    // (idempotent: a run already moved is left as it is), and waves left with nothing to run
    // are passed over, with their approvals.
    let attempt = stored.release.lifecycle.attempt;
    let mut to_run = Vec::with_capacity(stored.runs.len());
    for run in stored.runs {
        if run.status.is_success() {
            continue;
        }
        if run.attempt < attempt {
            let key = super::key(release_id, &run.spec.name);
            if let Some(reset) = store.reset_run(&key, attempt).await? {
                to_run.push(reset);
                continue;
            }
        }
        to_run.push(run);
    }
    Ok(response_for(&stored.release, &to_run))
}

fn duplicate(release_id: &str) -> CheckManifestResponse {
    CheckManifestResponse {
        outcome: Outcome::Duplicate,
        release_id: release_id.to_owned(),
        on_failure: None,
        max_concurrency: None,
        waves: Vec::new(),
    }
}

fn started(manifest: &Manifest) -> CheckManifestResponse {
    CheckManifestResponse {
        outcome: Outcome::Started,
        release_id: manifest.release_id.to_string(),
        on_failure: Some(manifest.on_failure),
        max_concurrency: Some(manifest.max_concurrency),
        waves: manifest
            .waves()
            .into_iter()
            .map(|w| WaveItem {
                wave: w.number,
                approval: manifest.approvals.contains(&w.number),
                approval_timeout_seconds: u64::from(manifest.approval_timeout_minutes) * 60,
                bake_seconds: manifest
                    .gates
                    .as_ref()
                    .map_or(0, |g| u64::from(g.bake_minutes) * 60),
                gated: manifest.gates.is_some(),
                pipelines: w
                    .pipelines
                    .into_iter()
                    .map(|p| PipelineItem {
                        name: p.name.clone(),
                        timeout_seconds: p.timeout_seconds(),
                    })
                    .collect(),
            })
            .collect(),
    }
}

fn response_for(release: &ReleaseRecord, runs: &[RunRecord]) -> CheckManifestResponse {
    let manifest = Manifest {
        release_id: release.release_id.clone(),
        description: release.description.clone(),
        pipelines: runs.iter().map(|r| r.spec.clone()).collect(),
        max_concurrency: release.max_concurrency,
        on_failure: release.on_failure,
        approvals: release.lifecycle.approval_waves.clone(),
        approval_timeout_minutes: release.lifecycle.approval_timeout_minutes,
        gates: release.lifecycle.gates.clone(),
        skip_unchanged: release.lifecycle.skip_unchanged,
    };
    started(&manifest)
}

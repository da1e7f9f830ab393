use super::runs::record_and_complete;
use super::{release_id, RunPorts};
use crate::error::TaskError;
use crate::release::StoredRelease;
use crate::release::{ReleaseStatus, RunStatus};
use crate::tasks::{CaughtError, PipelineStateChange, RecordReleaseRequest};
use crate::view::ReleaseView;
use aws_lambda_events::event::codepipeline_cloudwatch::CodePipelineCloudWatchEvent;
use serde_json::Value;
use time::OffsetDateTime;

/// Decodes an EventBridge "CodePipeline Pipeline Execution State Change" event. `Ok(None)`
/// for a state we do not track; `Err` says what is wrong with the event.
pub fn decode_state_change(event: &Value) -> Result<Option<PipelineStateChange>, String> {
    let mut event = event.clone();
    // CodePipeline sends the pipeline structure version as a float (`"version": 3.0`);
    // aws_lambda_events reads it as an integer. We do not use it.
    if let Some(version) = event.pointer_mut("/detail/version") {
        if let Some(v) = version.as_f64() {
            *version = Value::from(v as i64);
        }
    }
    let event: CodePipelineCloudWatchEvent = serde_json::from_value(event)
        .map_err(|e| format!("not a CodePipeline state-change event: {e}"))?;
    if event.detail_type.as_deref() != Some("CodePipeline Pipeline Execution State Change") {
        return Err(format!(
            "expected detail-type \"CodePipeline Pipeline Execution State Change\", got {:?}",
            event.detail_type
        ));
    }
    let detail = event.detail;
    let pipeline = detail.pipeline.ok_or("the event has no detail.pipeline")?;
    let execution_id = detail
        .execution_id
        .ok_or("the event has no detail.execution-id")?;
    let Some(status) = RunStatus::from_event_state(&detail.state) else {
        return Ok(None);
    };
    let at = OffsetDateTime::from_unix_timestamp_nanos(i128::from(
        event
            .time
            .timestamp_nanos_opt()
            .ok_or("the event time is out of range")?,
    ))
    .map_err(|e| format!("the event time is out of range: {e}"))?;
    Ok(Some(PipelineStateChange {
        pipeline,
        execution_id,
        status,
        at,
    }))
}

/// What a state-change event did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ChangeOutcome {
    /// Not an execution of any release: ignored.
    NotOurs,
    /// Recorded (or a harmless duplicate / stale event).
    Recorded(RunStatus),
}

/// record-state on a CodePipeline event: records the change (duplicates and out-of-order
/// events are harmless: a status never moves backwards) and completes the waiting task on a
/// terminal status.
pub async fn record_state_change(
    change: &PipelineStateChange,
    ports: &RunPorts<'_>,
) -> Result<ChangeOutcome, TaskError> {
    let Some(k) = ports.store.find_by_execution(&change.execution_id).await? else {
        return Ok(ChangeOutcome::NotOurs);
    };
    Ok(
        match record_and_complete(
            &k,
            change.status,
            change.at,
            Some(&change.execution_id),
            ports,
        )
        .await?
        {
            Some(run) => ChangeOutcome::Recorded(run.status),
            None => ChangeOutcome::NotOurs,
        },
    )
}

/// RecordRelease: records the release's end. A retry after the end was recorded returns it
/// as recorded. The cause of a failure names the pipelines that did not succeed.
pub async fn record_release(
    req: &RecordReleaseRequest,
    ports: &RunPorts<'_>,
) -> Result<ReleaseView, TaskError> {
    let store = ports.store;
    let now = ports.clock.now();
    let rid = release_id(&req.release_id)?;
    let stored = store
        .get(&rid)
        .await?
        .ok_or_else(|| TaskError::NotFound(format!("release {rid} is not recorded")))?;
    if stored.release.owner != req.execution_name {
        return Err(TaskError::Duplicate(rid.to_string()));
    }
    if stored.release.status != ReleaseStatus::Running {
        return Ok(ReleaseView::from(&stored));
    }
    let (status, cause) = release_end(&stored, req.status, req.error.as_ref());
    super::lifecycle::finish_release(
        &ports.writer(),
        &rid,
        &req.execution_name,
        status,
        cause.as_deref(),
        now,
    )
    .await?;
    let stored = store
        .get(&rid)
        .await?
        .ok_or_else(|| TaskError::NotFound(format!("release {rid} vanished")))?;
    Ok(ReleaseView::from(&stored))
}

/// The errors an approval wait fails with: the release's cause is theirs.
pub const APPROVAL_ERRORS: [&str; 2] = [
    super::operate::APPROVAL_REJECTED,
    super::operate::APPROVAL_TIMED_OUT,
];

/// The errors a gate or bake wait fails with: the release's cause is the recorded one.
pub const WAIT_ERRORS: [&str; 2] = [super::waits::GATE_TIMED_OUT, super::waits::BAKE_FAILED];

/// The cause of a release its approval ended: the current attempt's rejected or timed-out
/// approval, in the words the operator and the timeout use.
fn approval_end(release: &crate::release::ReleaseRecord) -> Option<String> {
    use crate::lifecycle::ApprovalStatus;
    let l = &release.lifecycle;
    let a = l.approvals.iter().rev().find(|a| {
        a.attempt == l.attempt
            && matches!(
                a.status,
                ApprovalStatus::Rejected | ApprovalStatus::TimedOut
            )
    })?;
    Some(match a.status {
        ApprovalStatus::Rejected => super::operate::rejection_cause(a),
        _ => super::operate::timeout_cause(a.wave, l.approval_timeout_minutes),
    })
}

/// How a release ends when `requested` is asked for: a release succeeds only when every
/// pipeline's latest run Succeeded (issue 9, fault 12: on the success path a run that never
/// started or has not ended counts against it too). A failure's cause names the runs that
/// ended without succeeding, in wave then name order as the release JSON lists them (the same
/// cause from every store), and the caught error unless it is a pipeline's failure.
pub(super) fn release_end(
    stored: &StoredRelease,
    requested: ReleaseStatus,
    error: Option<&CaughtError>,
) -> (ReleaseStatus, Option<String>) {
    let mut runs: Vec<_> = stored.runs.iter().collect();
    runs.sort_by(|a, b| (a.spec.wave, &a.spec.name).cmp(&(b.spec.wave, &b.spec.name)));
    let not_succeeded: Vec<String> = runs
        .into_iter()
        .filter(|r| !r.status.is_success())
        .filter(|r| requested == ReleaseStatus::Succeeded || r.status.is_terminal())
        .map(|r| match &r.cause {
            Some(cause) => format!("{} ({}: {cause})", r.spec.name, r.status),
            None => format!("{} ({})", r.spec.name, r.status),
        })
        .collect();
    if requested == ReleaseStatus::Succeeded && not_succeeded.is_empty() {
        return (ReleaseStatus::Succeeded, None);
    }
    // A rejected or timed-out approval ends the release with its own words: from the
    // approval as recorded (a SendTaskFailure's cause may not reach the execution intact:
    // moto drops it), else the caught error's.
    if let Some(e) = error.filter(|e| APPROVAL_ERRORS.contains(&e.error.as_str())) {
        let cause = approval_end(&stored.release)
            .or_else(|| e.cause.clone().filter(|c| !c.is_empty()))
            .unwrap_or_else(|| e.error.clone());
        return (ReleaseStatus::Failed, Some(cause));
    }
    // A gate that stayed closed, a bake an alarm failed: the cause as the re-evaluation
    // recorded it (naming the alarm and the wave), else the caught error's.
    if let Some(e) = error.filter(|e| WAIT_ERRORS.contains(&e.error.as_str())) {
        let cause = stored
            .release
            .lifecycle
            .gate_wait
            .as_ref()
            .and_then(|g| g.failure.clone())
            .or_else(|| e.cause.clone().filter(|c| !c.is_empty()))
            .unwrap_or_else(|| e.error.clone());
        return (ReleaseStatus::Failed, Some(cause));
    }
    let mut cause = if not_succeeded.is_empty() {
        "the release failed".to_owned()
    } else {
        format!(
            "pipelines that did not succeed: {}",
            not_succeeded.join(", ")
        )
    };
    if let Some(e) = error.filter(|e| e.error != "PipelineFailed") {
        cause.push_str(&format!(
            "; error {}: {}",
            e.error,
            e.cause.as_deref().unwrap_or("")
        ));
    }
    (ReleaseStatus::Failed, Some(cause))
}

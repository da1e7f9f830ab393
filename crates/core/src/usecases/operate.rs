//! Operating a release (ARCHITECTURE.md §3a): cancel, retry, approvals. The API and the local
//! CLI (and the sim's `operator`) call these; the state machine's approval wait calls
//! [`await_approval`] and [`approval_timed_out`].

use super::lifecycle::{change_release, change_release_with_runs, Writer};
use super::release_id;
use crate::error::TaskError;
use crate::events::EventDraft;
use crate::lifecycle::{
    ApprovalRecord, ApprovalStatus, AttemptRecord, CancelRequest, WaitKind, WaitRecord, WaitingFor,
    WaveStatus,
};
use crate::ports::{ApiPorts, Executions, RunPorts, TaskTokens, TokenDelivery};
use crate::release::{ReleaseId, ReleaseRecord, ReleaseStatus};
use crate::tasks::{ApprovalRequest, ApprovalTimedOutResponse};
use serde_json::json;

/// The error a rejected approval fails its wait with.
pub const APPROVAL_REJECTED: &str = "ApprovalRejected";
/// The error a timed-out approval ends the release with.
pub const APPROVAL_TIMED_OUT: &str = "ApprovalTimedOut";
/// The error StopExecution records for a cancel.
pub const CANCELLED: &str = "ReleaseCancelled";

/// What an operator's request did.
#[derive(Debug, Clone, PartialEq)]
pub struct Operated {
    pub release: ReleaseRecord,
    /// The execution started (retry) or stopped (cancel), by name.
    pub execution: Option<String>,
}

fn not_running(r: &ReleaseRecord, what: &str) -> TaskError {
    TaskError::Conflict(format!(
        "release {} is {}{}: {what}",
        r.release_id,
        r.status,
        if r.status == ReleaseStatus::Running {
            ""
        } else {
            " (it has ended)"
        }
    ))
}

/// Cancel a RUNNING release: the cancel (who, why) and the stop flag are recorded first, then
/// the execution is stopped; the reconciler then stops the running pipelines and ends the
/// release CANCELLED with `cancelled by <who>: <reason>`. A release that already ended is a
/// [`TaskError::Conflict`]; a second cancel of the same running release repeats the stop.
pub async fn cancel_release(
    id: &ReleaseId,
    by: &str,
    reason: &str,
    ports: &ApiPorts<'_>,
) -> Result<Operated, TaskError> {
    if reason.trim().is_empty() {
        return Err(TaskError::BadInput("a cancel needs a reason".into()));
    }
    let now = ports.clock.now();
    let (release, ()) = change_release(&ports.writer(), id, |r| {
        if r.status != ReleaseStatus::Running {
            return Err(not_running(r, "only a RUNNING release can be cancelled"));
        }
        if r.lifecycle.cancel.is_none() {
            r.lifecycle.cancel = Some(CancelRequest {
                by: by.to_owned(),
                reason: reason.to_owned(),
                at: now,
                attempt: r.lifecycle.attempt,
            });
        }
        r.stop_requested = true;
        Ok((Vec::new(), ()))
    })
    .await?;
    let cause = release
        .lifecycle
        .cancel
        .as_ref()
        .map(CancelRequest::cause)
        .unwrap_or_default();
    stop_execution(ports.executions, &release.owner, &cause).await?;
    Ok(Operated {
        execution: Some(release.owner.clone()),
        release,
    })
}

async fn stop_execution(
    executions: &dyn Executions,
    name: &str,
    cause: &str,
) -> Result<(), TaskError> {
    executions.stop(name, CANCELLED, cause).await?;
    Ok(())
}

/// Retry a FAILED or CANCELLED release: attempt n+1, run by a new execution named
/// `execution_name`, claimed by one conditional write (the release item's version: two
/// concurrent retries read the same version, one write wins, the other reads again and finds
/// the release RUNNING). The new execution's CheckManifest moves the runs that did not succeed
/// to the new attempt and runs only those.
pub async fn retry_release(
    id: &ReleaseId,
    by: &str,
    execution_name: &str,
    ports: &ApiPorts<'_>,
) -> Result<Operated, TaskError> {
    let now = ports.clock.now();
    let (release, ()) = change_release_with_runs(&ports.writer(), id, |r, runs| {
        if !r.status.is_retryable() {
            return Err(TaskError::Conflict(format!(
                "release {} is {}: only a FAILED or CANCELLED release can be retried",
                r.release_id, r.status
            )));
        }
        let attempt = r.lifecycle.attempt + 1;
        r.owner = execution_name.to_owned();
        r.status = ReleaseStatus::Running;
        r.ended_at = None;
        r.cause = None;
        r.stop_requested = false;
        let l = &mut r.lifecycle;
        l.attempt = attempt;
        l.cancel = None;
        l.waiting_for = None;
        l.approval_token = None;
        l.attempts.push(AttemptRecord {
            attempt,
            execution: execution_name.to_owned(),
            requested_at: now,
            requested_by: Some(by.to_owned()),
            ended_at: None,
            status: ReleaseStatus::Running,
            cause: None,
        });
        let mut drafts = vec![EventDraft::release_status(
            attempt,
            ReleaseStatus::Running,
            None,
            now,
        )];
        for wave in l.waves.iter_mut() {
            let rerun = runs
                .iter()
                .any(|x| x.spec.wave == wave.wave && !x.status.is_success());
            if rerun && wave.status != WaveStatus::Pending {
                wave.status = WaveStatus::Pending;
                wave.started_at = None;
                wave.ended_at = None;
                drafts.push(EventDraft::wave_status(
                    attempt,
                    wave.wave,
                    WaveStatus::Pending,
                    now,
                ));
            }
        }
        Ok((drafts, ()))
    })
    .await?;
    let input = json!({ "claimedRelease": id.as_str() });
    if let Err(e) = ports.executions.start(execution_name, &input).await {
        let cause = format!("attempt {} could not start: {e}", release.lifecycle.attempt);
        // Ended again at once, so it can be retried again (the sweep would end it too).
        if let Err(undo) = super::lifecycle::finish_release(
            &ports.writer(),
            id,
            execution_name,
            ReleaseStatus::Failed,
            Some(&cause),
            ports.clock.now(),
        )
        .await
        {
            tracing::error!(release = %id, error = %undo, "could not end a retry that did not start");
        }
        return Err(e.into());
    }
    Ok(Operated {
        execution: Some(execution_name.to_owned()),
        release,
    })
}

/// A decision on a waiting approval.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Decision {
    Approve,
    Reject { reason: String },
}

/// Approve or reject the approval of `wave`, which must be waiting (else
/// [`TaskError::Conflict`]). The decision is recorded, then the waiting task is completed
/// (approved: the wave starts; rejected: the release fails with `wave N rejected by <who>:
/// <reason>`). If completing it fails, the token stays on the release and the sweep delivers
/// the decision.
pub async fn decide_approval(
    id: &ReleaseId,
    wave: u32,
    by: &str,
    decision: &Decision,
    ports: &ApiPorts<'_>,
) -> Result<ReleaseRecord, TaskError> {
    if let Decision::Reject { reason } = decision {
        if reason.trim().is_empty() {
            return Err(TaskError::BadInput("a rejection needs a reason".into()));
        }
    }
    let now = ports.clock.now();
    let (release, ()) = change_release(&ports.writer(), id, |r| {
        let waiting = matches!(r.lifecycle.waiting_for, Some(WaitingFor::Approval { wave: w, .. }) if w == wave);
        if r.status != ReleaseStatus::Running || !waiting {
            let now_waiting = match &r.lifecycle.waiting_for {
                Some(w) => format!("it waits for {}", w.describe()),
                None => "it waits for nothing".to_owned(),
            };
            return Err(TaskError::Conflict(format!(
                "release {} is {} and wave {wave} is not waiting for an approval; {now_waiting}",
                r.release_id, r.status
            )));
        }
        let attempt = r.lifecycle.attempt;
        let l = &mut r.lifecycle;
        let (status, reason) = match decision {
            Decision::Approve => (ApprovalStatus::Approved, None),
            Decision::Reject { reason } => (ApprovalStatus::Rejected, Some(reason.clone())),
        };
        if let Some(a) = l.approval_mut(wave) {
            a.status = status;
            a.by = Some(by.to_owned());
            a.at = Some(now);
            a.reason = reason;
        }
        if let Some(w) = l.open_wait_mut(WaitKind::Approval) {
            w.until = Some(now);
            w.by = Some(by.to_owned());
        }
        l.waiting_for = None;
        let mut drafts = vec![EventDraft::waiting(attempt, WaitKind::Approval, Some(wave), false, now)];
        let wave_status = match decision {
            Decision::Approve => WaveStatus::Running,
            Decision::Reject { .. } => WaveStatus::Failed,
        };
        if let Some(w) = l.wave_mut(wave) {
            w.status = wave_status;
            if wave_status == WaveStatus::Running {
                w.started_at = Some(now);
            } else {
                w.ended_at = Some(now);
            }
            drafts.push(EventDraft::wave_status(attempt, wave, wave_status, now));
        }
        Ok((drafts, ()))
    })
    .await?;
    // Recorded: a delivery that fails now is the sweep's (the token stays on the release).
    if let Err(e) =
        deliver_decision(&release, ports.store, ports.tokens, ports.bus, ports.clock).await
    {
        tracing::warn!(release = %id, wave, error = %e,
            "the decision is recorded; the sweep delivers it to the waiting execution");
    }
    Ok(release)
}

/// Completes the approval task of a release whose approval was decided but whose token is
/// still stored (the decision's delivery failed, or is under way), and drops the token.
async fn deliver_decision(
    release: &ReleaseRecord,
    store: &dyn crate::ports::ReleaseStore,
    tokens: &dyn TaskTokens,
    bus: &dyn crate::events::EventBus,
    clock: &dyn crate::ports::Clock,
) -> Result<(), TaskError> {
    let Some(token) = release.lifecycle.approval_token.clone() else {
        return Ok(());
    };
    let Some(approval) = release
        .lifecycle
        .approvals
        .iter()
        .rev()
        .find(|a| a.attempt == release.lifecycle.attempt)
    else {
        return Ok(());
    };
    let delivered = match approval.status {
        ApprovalStatus::Waiting => return Ok(()),
        ApprovalStatus::Approved => {
            tokens
                .succeed(&token, &json!({"wave": approval.wave, "approved": true}))
                .await?
        }
        ApprovalStatus::Rejected => {
            tokens
                .fail(&token, APPROVAL_REJECTED, &rejection_cause(approval))
                .await?
        }
        // Ended by the execution itself.
        ApprovalStatus::TimedOut | ApprovalStatus::Cancelled => TokenDelivery::AlreadyDone,
    };
    tracing::info!(release = %release.release_id, wave = approval.wave, ?delivered, "approval decision delivered");
    let w = Writer { store, bus, clock };
    change_release(&w, &release.release_id, |r| {
        if r.lifecycle.approval_token.as_deref() == Some(token.as_str()) {
            r.lifecycle.approval_token = None;
        }
        Ok((Vec::new(), ()))
    })
    .await?;
    Ok(())
}

/// The sweep's part: delivers decided approvals whose delivery failed.
pub async fn deliver_decisions(
    release: &ReleaseRecord,
    ports: &RunPorts<'_>,
) -> Result<(), TaskError> {
    deliver_decision(release, ports.store, ports.tokens, ports.bus, ports.clock).await
}

/// The approval wait (`.waitForTaskToken`, before a wave of the manifest's `approvals`): the
/// token is stored on the release, the approval is Waiting and `Approval Requested` is
/// published; the task ends when someone approves or rejects, or at its timeout. A retried
/// task replaces the token; a decision already made is delivered at once.
pub async fn await_approval(req: &ApprovalRequest, ports: &RunPorts<'_>) -> Result<(), TaskError> {
    let rid = release_id(&req.release_id)?;
    let now = ports.clock.now();
    let wave = req.wave;
    let (release, ()) = change_release_with_runs(&ports.writer(), &rid, |r, runs| {
        if r.owner != req.execution_name {
            return Err(TaskError::Duplicate(rid.to_string()));
        }
        if r.status != ReleaseStatus::Running {
            return Err(TaskError::ReleaseEnded(format!(
                "release {rid} ended with status {}",
                r.status
            )));
        }
        let attempt = r.lifecycle.attempt;
        let timeout = r.lifecycle.approval_timeout_minutes;
        // The waves before this one ended before it waits.
        let mut drafts = super::lifecycle::settle_waves(r, runs, Some(wave), now);
        let l = &mut r.lifecycle;
        l.approval_token = Some(req.task_token.clone());
        if l.approval_mut(wave).is_some() {
            // A retried task: the token is replaced, the decision (if any) delivered below.
            return Ok((drafts, ()));
        }
        l.approvals.push(ApprovalRecord {
            wave,
            attempt,
            status: ApprovalStatus::Waiting,
            requested_at: now,
            by: None,
            at: None,
            reason: None,
        });
        l.waits.push(WaitRecord {
            kind: WaitKind::Approval,
            wave: Some(wave),
            reasons: vec![format!("wave {wave} waits for an approval")],
            by: None,
            since: now,
            until: None,
        });
        l.waiting_for = Some(WaitingFor::Approval { wave, since: now });
        if let Some(w) = l.wave_mut(wave) {
            w.status = WaveStatus::WaitingApproval;
            drafts.push(EventDraft::wave_status(
                attempt,
                wave,
                WaveStatus::WaitingApproval,
                now,
            ));
        }
        drafts.push(EventDraft::approval_requested(
            &rid, attempt, wave, timeout, now,
        ));
        drafts.push(EventDraft::waiting(
            attempt,
            WaitKind::Approval,
            Some(wave),
            true,
            now,
        ));
        Ok((drafts, ()))
    })
    .await?;
    deliver_decision(&release, ports.store, ports.tokens, ports.bus, ports.clock).await
}

/// The approval wait timed out: the approval is TimedOut; the answer names the error and cause
/// the state machine fails the release with.
pub async fn approval_timed_out(
    req: &ApprovalRequest,
    ports: &RunPorts<'_>,
) -> Result<ApprovalTimedOutResponse, TaskError> {
    let rid = release_id(&req.release_id)?;
    let now = ports.clock.now();
    let wave = req.wave;
    let (release, ()) = change_release(&ports.writer(), &rid, |r| {
        let attempt = r.lifecycle.attempt;
        let l = &mut r.lifecycle;
        let Some(a) = l
            .approval_mut(wave)
            .filter(|a| a.status == ApprovalStatus::Waiting)
        else {
            return Ok((Vec::new(), ()));
        };
        a.status = ApprovalStatus::TimedOut;
        a.at = Some(now);
        if let Some(w) = l.open_wait_mut(WaitKind::Approval) {
            w.until = Some(now);
        }
        l.waiting_for = None;
        l.approval_token = None;
        let mut drafts = vec![EventDraft::waiting(
            attempt,
            WaitKind::Approval,
            Some(wave),
            false,
            now,
        )];
        drafts.extend(l.end_wave(wave, WaveStatus::Failed, now));
        Ok((drafts, ()))
    })
    .await?;
    Ok(ApprovalTimedOutResponse {
        error: APPROVAL_TIMED_OUT.to_owned(),
        cause: timeout_cause(wave, release.lifecycle.approval_timeout_minutes),
    })
}

/// A rejected release's cause: `wave 2 rejected by <who>: <reason>`.
pub(super) fn rejection_cause(approval: &ApprovalRecord) -> String {
    format!(
        "wave {} rejected by {}: {}",
        approval.wave,
        approval.by.as_deref().unwrap_or("unknown"),
        approval.reason.as_deref().unwrap_or("")
    )
}

/// A timed-out approval's cause.
pub(super) fn timeout_cause(wave: u32, minutes: u32) -> String {
    format!("the approval of wave {wave} timed out after {minutes} minutes")
}

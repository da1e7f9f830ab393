//! The reconciler (issue 9, fault 2): a release whose execution ended without ending it —
//! failed past every Catch (`States.Runtime`, `States.DataLimitExceeded`, the 25,000-event
//! limit), timed out, stopped from the console, or unable to record the end — is ended here,
//! with a cause that says what happened, and its running pipelines are stopped.
//!
//! Two triggers, one code path: the EventBridge "Step Functions Execution Status Change" event
//! of the release state machine (record-state; best effort, as EventBridge is), and the sweep,
//! which asks DescribeExecution about every RUNNING release's execution. The reconciler never
//! waits inside one invocation: it issues the stops, records the end, and leaves the bounded
//! wait for the stops to the sweep ([`super::runs::settle_ended`]).

use super::record::release_end;
use super::runs::stop_run;
use super::{key, RunPorts};
use crate::error::{PortError, TaskError};
use crate::ports::{ExecutionRunState, ExecutionState};
use crate::release::{ReleaseId, ReleaseRecord, ReleaseStatus, RunStatus};
use crate::tasks::CaughtError;
use crate::view::ReleaseView;
use futures::StreamExt;
use serde::Deserialize;
use serde_json::Value;

/// The error of the state machine's `ReleaseNotRecorded` Fail state: RecordSuccess or
/// RecordFailure could not record the end. The reconciler records it from the runs.
pub const RELEASE_NOT_RECORDED: &str = "ReleaseNotRecorded";

/// A release claimed through the API whose execution never started is given up after this
/// long (issue 9, fault 4): the API answers within 29 s, so its own give-up had its chance.
pub const ABANDONED_CLAIM_AFTER: time::Duration = time::Duration::minutes(15);

/// Runs stopped at once by the reconciler.
const STOP_PARALLELISM: usize = 16;

/// An execution of the release state machine that ended (or, from the sweep, its state).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExecutionEnd {
    pub execution_name: String,
    pub state: ExecutionState,
}

/// What reconciling one execution did.
#[derive(Debug, Clone, PartialEq)]
pub enum Reconciled {
    /// The execution holds no RUNNING release (it ended its release itself, or never claimed
    /// one): nothing to do.
    Nothing,
    /// The execution still runs.
    StillRunning,
    /// The release was ended; the stops were issued.
    Ended(Box<ReleaseView>),
}

/// The "Step Functions Execution Status Change" event's detail, as EventBridge sends it
/// (docs.aws.amazon.com/step-functions/latest/dg/cw-events.html: `executionArn`,
/// `stateMachineArn`, `name`, `status`, and for a failure `error` and `cause`).
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct StatusChangeDetail {
    name: String,
    status: ExecutionRunState,
    #[serde(default)]
    error: Option<String>,
    #[serde(default)]
    cause: Option<String>,
}

/// Decodes a "Step Functions Execution Status Change" event; `Err` says what is wrong.
pub fn decode_execution_event(event: &Value) -> Result<ExecutionEnd, String> {
    let detail_type = event.get("detail-type").and_then(Value::as_str);
    if detail_type != Some("Step Functions Execution Status Change") {
        return Err(format!(
            "expected detail-type \"Step Functions Execution Status Change\", got {detail_type:?}"
        ));
    }
    let detail: StatusChangeDetail =
        serde_json::from_value(event.get("detail").cloned().unwrap_or(Value::Null))
            .map_err(|e| format!("not an execution status change: {e}"))?;
    Ok(ExecutionEnd {
        execution_name: detail.name,
        state: ExecutionState {
            status: detail.status,
            error: detail.error.filter(|e| !e.is_empty()),
            cause: detail.cause.filter(|c| !c.is_empty()),
        },
    })
}

/// What happened to the execution, for the release's cause.
fn what_happened(state: &ExecutionState) -> String {
    match state.status {
        ExecutionRunState::Aborted => "execution aborted".to_owned(),
        ExecutionRunState::TimedOut => "execution timed out".to_owned(),
        ExecutionRunState::Succeeded => "execution succeeded without recording the release".into(),
        ExecutionRunState::Running | ExecutionRunState::PendingRedrive => {
            "execution still running".to_owned()
        }
        ExecutionRunState::Failed => format!(
            "execution failed: {}: {}",
            state.error.as_deref().unwrap_or("(no error)"),
            state.cause.as_deref().unwrap_or("(no cause)")
        ),
    }
}

/// Reconciles the execution `end` names with the release it holds, if that release is still
/// RUNNING: stops its running pipelines and records its end.
pub async fn reconcile_execution(
    end: &ExecutionEnd,
    ports: &RunPorts<'_>,
) -> Result<Reconciled, TaskError> {
    if still_running(&end.state) {
        return Ok(Reconciled::StillRunning);
    }
    let release = ports
        .store
        .running_releases()
        .await?
        .into_iter()
        .find(|r| r.owner == end.execution_name);
    match release {
        Some(release) => end_release(release, &end.state, ports).await,
        None => Ok(Reconciled::Nothing),
    }
}

/// Whether DescribeExecution or the event says the execution has not ended.
fn still_running(state: &ExecutionState) -> bool {
    matches!(
        state.status,
        ExecutionRunState::Running | ExecutionRunState::PendingRedrive
    )
}

/// Ends a RUNNING `release` whose execution ended as `state` (nothing while it still runs).
async fn end_release(
    release: ReleaseRecord,
    state: &ExecutionState,
    ports: &RunPorts<'_>,
) -> Result<Reconciled, TaskError> {
    if still_running(state) {
        return Ok(Reconciled::StillRunning);
    }
    let rid = release.release_id.clone();
    let owner = release.owner.clone();
    match super::lifecycle::request_stop(&ports.writer(), &rid, &owner).await {
        Ok(()) => {}
        Err(PortError::ConditionFailed(m)) => {
            tracing::info!(release = %rid, reason = %m, "ended meanwhile: nothing to reconcile");
            return Ok(Reconciled::Nothing);
        }
        Err(e) => return Err(e.into()),
    }
    let happened = what_happened(state);
    let reason = format!("release {rid}: {happened}");
    let stored = ports
        .store
        .get(&rid)
        .await?
        .ok_or_else(|| TaskError::NotFound(format!("release {rid} vanished")))?;
    // Each run on its own, 16 at a time: one that cannot be stopped never keeps the others
    // running.
    let reason = &reason;
    futures::stream::iter(stored.runs)
        .for_each_concurrent(STOP_PARALLELISM, |run| async move {
            let k = key(&run.release_id, &run.spec.name);
            if let (RunStatus::NotStarted, Some(token)) = (run.status, run.task_token.as_deref()) {
                if let Err(e) = ports.store.clear_token(&k, token).await {
                    tracing::warn!(release = %k.release_id, pipeline = %k.pipeline, error = %e,
                        "could not drop the token of a run never started");
                }
            }
            if run.status == RunStatus::InProgress {
                if let Err(e) = stop_run(run, reason, false, ports).await {
                    tracing::warn!(release = %k.release_id, pipeline = %k.pipeline, error = %e,
                        "could not stop a run; the sweep tries again");
                }
            }
        })
        .await;
    let stored = ports
        .store
        .get(&rid)
        .await?
        .ok_or_else(|| TaskError::NotFound(format!("release {rid} vanished")))?;
    // The end could not be recorded (RecordSuccess/RecordFailure failed): the runs decide, as
    // RecordSuccess would have. Otherwise the execution did not end the release: it failed.
    let not_recorded = state.status == ExecutionRunState::Succeeded
        || state.error.as_deref() == Some(RELEASE_NOT_RECORDED);
    let (status, cause) = if not_recorded {
        release_end(&stored, ReleaseStatus::Succeeded, None)
    } else {
        let error = CaughtError {
            error: "PipelineFailed".into(),
            cause: None,
        };
        let (status, cause) = release_end(&stored, ReleaseStatus::Failed, Some(&error));
        let mut stopping: Vec<(u32, &str)> = stored
            .runs
            .iter()
            .filter(|r| r.status.is_running())
            .map(|r| (r.spec.wave, r.spec.name.as_str()))
            .collect();
        stopping.sort_unstable();
        let stopping: Vec<&str> = stopping.into_iter().map(|(_, n)| n).collect();
        let mut text = happened.clone();
        if let Some(c) = cause.filter(|c| c != "the release failed") {
            text.push_str("; ");
            text.push_str(&c);
        }
        if !stopping.is_empty() {
            text.push_str(&format!("; stopping: {}", stopping.join(", ")));
        }
        (status, Some(text))
    };
    // A cancel asked for (ARCHITECTURE.md §3a): the execution was stopped on purpose.
    let (status, cause) = match (&stored.release.lifecycle.cancel, not_recorded) {
        (Some(cancel), false) => (ReleaseStatus::Cancelled, Some(cancel.cause())),
        _ => (status, cause),
    };
    let writer = ports.writer();
    let finished = super::lifecycle::finish_release(
        &writer,
        &rid,
        &owner,
        status,
        cause.as_deref(),
        ports.clock.now(),
    );
    match finished.await {
        Ok(_) => {}
        Err(PortError::ConditionFailed(m)) => {
            tracing::info!(release = %rid, reason = %m, "ended meanwhile: nothing to reconcile");
            return Ok(Reconciled::Nothing);
        }
        Err(e) => return Err(e.into()),
    }
    tracing::warn!(release = %rid, execution = %owner, %status,
        cause = cause.as_deref().unwrap_or(""), "reconciled a release its execution left RUNNING");
    let stored = ports
        .store
        .get(&rid)
        .await?
        .ok_or_else(|| TaskError::NotFound(format!("release {rid} vanished")))?;
    Ok(Reconciled::Ended(Box::new(ReleaseView::from(&stored))))
}

/// What the sweep's reconciliation did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SweepReconciled {
    /// RUNNING releases whose execution was asked about.
    pub checked: u32,
    /// Releases ended because their execution had ended.
    pub ended: u32,
    /// API claims given up because their execution never started.
    pub given_up: u32,
    pub errors: u32,
    /// Releases found RUNNING with their execution still running: the sweep's polls need not
    /// read them again to know their runs are not a stopped release's.
    pub still_running: std::collections::HashSet<ReleaseId>,
}

/// The sweep's half of the reconciler: DescribeExecution for every RUNNING release (only
/// `only`, when given: a local run's scoped sweep) and the same reconciliation for those whose
/// execution ended. A release claimed through the API whose execution does not exist
/// [`ABANDONED_CLAIM_AFTER`] after its claim is given up (issue 9, fault 4).
pub async fn reconcile_running(
    only: Option<&ReleaseId>,
    ports: &RunPorts<'_>,
) -> Result<SweepReconciled, TaskError> {
    let mut out = SweepReconciled::default();
    let now = ports.clock.now();
    for release in ports.store.running_releases().await? {
        if only.is_some_and(|id| *id != release.release_id) {
            continue;
        }
        out.checked += 1;
        let rid = release.release_id.clone();
        let result = async {
            // A decided approval whose delivery failed is delivered now.
            if release.lifecycle.approval_token.is_some() {
                super::operate::deliver_decisions(&release, ports).await?;
            }
            match ports.executions.describe(&release.owner).await? {
                Some(state) => Ok(match end_release(release, &state, ports).await? {
                    Reconciled::Ended(_) => Some(Outcome::Ended),
                    Reconciled::StillRunning => Some(Outcome::StillRunning),
                    Reconciled::Nothing => None,
                }),
                None if release.owner.starts_with("api-")
                    && now - release.requested_at > ABANDONED_CLAIM_AFTER =>
                {
                    ports
                        .store
                        .release_claim(&release.release_id, &release.owner)
                        .await?;
                    tracing::warn!(release = %rid, owner = %release.owner,
                        "gave up an API claim whose execution never started");
                    Ok(Some(Outcome::GivenUp))
                }
                None => Ok(Some(Outcome::StillRunning)),
            }
        }
        .await;
        match result {
            Ok(Some(Outcome::Ended)) => out.ended += 1,
            Ok(Some(Outcome::GivenUp)) => out.given_up += 1,
            Ok(Some(Outcome::StillRunning)) => {
                out.still_running.insert(rid);
            }
            Ok(None) => {}
            Err(e) => {
                let e: TaskError = e;
                tracing::warn!(release = %rid, error = %e, "could not reconcile a release");
                out.errors += 1;
            }
        }
    }
    Ok(out)
}

enum Outcome {
    Ended,
    GivenUp,
    StillRunning,
}

use super::lifecycle::{record_run_skipped, record_run_start, record_run_status};
use super::{key, load_run, release_id, RunPorts};
use crate::error::{PortError, TaskError};
use crate::ports::{PortResult, RunKey, StartError, TokenDelivery};
use crate::release::{ReleaseId, ReleaseRecord, ReleaseStatus, RunRecord, RunStatus};
use crate::tasks::{AwaitResponse, PipelineRef, RunResponse, StopRunningResponse};
use sha2::{Digest, Sha256};

/// The cause of a run that a busy pipeline never let start within its timeout.
pub const PIPELINE_BUSY: &str = "pipeline busy";

/// The error a RunPipeline task fails with when its pipeline ended without succeeding.
pub const PIPELINE_FAILED: &str = "PipelineFailed";

/// After this many StopRunning attempts (30 s apart) the stop is repeated with `abandon`.
pub const STOP_ABANDON_AFTER: u32 = 10;
/// After this many attempts StopRunning stops waiting: the wait is bounded.
pub const MAX_STOP_ATTEMPTS: u32 = 20;

/// StartPipelineExecution's idempotency token for a pipeline of a release's attempt: the same
/// release, pipeline and attempt always give the same token, so a retried task never starts
/// it twice, and a retry of the release (attempt 2 on) starts it anew. CodePipeline allows
/// letters, digits and `-`: a hex digest fits. Attempt 1's token is the one releases had
/// before attempts existed.
pub fn client_request_token(release_id: &ReleaseId, pipeline: &str, attempt: u32) -> String {
    let mut h = Sha256::new();
    h.update(release_id.as_str().as_bytes());
    h.update([0]);
    h.update(pipeline.as_bytes());
    if attempt > 1 {
        h.update([0]);
        h.update(attempt.to_be_bytes());
    }
    hex::encode(h.finalize())
}

fn response(run: &RunRecord) -> RunResponse {
    RunResponse {
        pipeline: run.spec.name.clone(),
        status: run.status,
        execution_id: run.execution_id.clone(),
    }
}

/// Starts a pipeline of a release by itself (start-pipelines' `start`; the state machine's
/// RunPipeline task starts pipelines in [`await_pipeline`]). Idempotent: a run already started
/// is returned as it is. A busy or throttled pipeline leaves the run NotStarted (issue 9,
/// fault 5): the wait retries the start and the sweep every 5 minutes, until the pipeline's
/// timeoutMinutes; StopTimedOut then records the run Failed.
pub async fn start_pipeline(
    req: &PipelineRef,
    ports: &RunPorts<'_>,
) -> Result<RunResponse, TaskError> {
    let rid = release_id(&req.release_id)?;
    let run = load_run(ports.store, &rid, &req.pipeline).await?;
    if run.status != RunStatus::NotStarted {
        return Ok(response(&run));
    }
    let Some(release) = startable_release(&rid, &req.execution_name, ports).await? else {
        return Ok(response(&run));
    };
    Ok(response(&start_run(run, &release, false, ports).await?))
}

/// How long a start throttled by CodePipeline is retried inside its task (backoff 1, 2, 4, 8,
/// 15 s: six attempts) before it is left to the sweep: well inside poll-execution's 120 s
/// timeout, with the SDK's own operation timeouts (about 12 s a call) on top.
pub const START_THROTTLE_BUDGET: std::time::Duration = std::time::Duration::from_secs(30);

/// The wait before the `attempt`th retry of a throttled start: exponential from 1 s, capped at
/// 15 s, with a deterministic jitter (a hash of the pipeline and attempt) so 500 throttled
/// starts do not retry in lockstep, yet a local run stays reproducible.
fn throttle_backoff(pipeline: &str, attempt: u32) -> std::time::Duration {
    let base = 1000u64 << attempt.min(4);
    let cap = base.min(15_000);
    let mut h = Sha256::new();
    h.update(pipeline.as_bytes());
    h.update(attempt.to_be_bytes());
    let digest = h.finalize();
    let r = u64::from(u16::from_be_bytes([digest[0], digest[1]]));
    // Between half and all of the capped delay.
    std::time::Duration::from_millis(cap / 2 + (cap / 2) * r / u64::from(u16::MAX))
}

/// StartPipelineExecution with the run's client request token. Throttling is retried here,
/// with backoff, for [`START_THROTTLE_BUDGET`] (issue 9, fault 10: a state-level Retry would
/// cost three history events an attempt); still throttled after that, it answers `Busy`, and
/// the sweep tries again.
async fn start_execution(
    run: &RunRecord,
    token: &str,
    ports: &RunPorts<'_>,
) -> Result<String, StartError> {
    let began = ports.clock.now();
    let mut attempt = 0u32;
    loop {
        match ports.pipelines.start(&run.spec, token).await {
            Err(StartError::Port(PortError::Throttled(m))) => {
                let waited = ports.clock.now() - began;
                if waited >= START_THROTTLE_BUDGET {
                    return Err(StartError::Busy(format!(
                        "still throttled after {waited}: {m}"
                    )));
                }
                ports
                    .clock
                    .sleep(throttle_backoff(&run.spec.name, attempt))
                    .await;
                attempt += 1;
            }
            other => return other,
        }
    }
}

/// Starts a NotStarted run (StartPipelineExecution with the run's client request token) and
/// records the start for `owner`. A busy pipeline leaves the run NotStarted.
///
/// `lost_answer`: an earlier attempt may have started the pipeline and lost the answer (the
/// task is a retry: a Lambda timeout, an SDK operation timeout). Reusing the client request
/// token makes CodePipeline return that execution — but the token's idempotency window is not
/// documented (docs.aws.amazon.com/codepipeline/latest/APIReference/API_StartPipelineExecution.html
/// only says the token "identifies a unique execution request"), so the execution is first
/// looked for with ListPipelineExecutions: one triggered by StartPipelineExecution since the
/// release was claimed is adopted, not started again (issue 9, fault 6).
async fn start_run(
    run: RunRecord,
    release: &ReleaseRecord,
    lost_answer: bool,
    ports: &RunPorts<'_>,
) -> Result<RunRecord, TaskError> {
    let owner = release.owner.as_str();
    let rid = run.release_id.clone();
    // The halt holds new starts (never a running execution): the run stays NotStarted, its
    // wait goes on, and lifting the halt starts it (`waits::reevaluate_waits`).
    if let Some(halt) = ports.store.halt().await? {
        tracing::info!(release = %rid, pipeline = %run.spec.name, reason = %halt.reason_text(),
            "start held by the halt");
        super::waits::hold_for_halt(&ports.writer(), &rid, run.spec.wave, &halt).await?;
        return Ok(run);
    }
    if release.lifecycle.skip_unchanged {
        if let Some(skipped) = skip_if_unchanged(&run, ports).await? {
            return Ok(skipped);
        }
    }
    let pipeline = run.spec.name.clone();
    let token = client_request_token(&rid, &pipeline, run.attempt);
    let k = key(&rid, &pipeline);
    let mut adopted = None;
    if lost_answer {
        if let Some(release) = ports.store.release_record(&rid).await? {
            // This attempt's request: an earlier attempt's execution is not this run's.
            let since = release
                .lifecycle
                .attempts
                .iter()
                .rev()
                .find(|a| a.attempt == run.attempt)
                .map_or(release.requested_at, |a| a.requested_at);
            adopted = ports.pipelines.find_started(&pipeline, since).await?;
            if let Some(id) = &adopted {
                tracing::warn!(release = %rid, pipeline = %pipeline, execution_id = %id,
                    "an earlier attempt started the pipeline and lost the answer: adopted");
            }
        }
    }
    let started = match adopted {
        Some(id) => Ok(id),
        None => start_execution(&run, &token, ports).await,
    };
    let execution_id = match started {
        Ok(id) => id,
        Err(StartError::NotFound(_)) => {
            return Ok(record_now(ports, &k, RunStatus::NotFound)
                .await?
                .unwrap_or(run));
        }
        Err(StartError::Busy(msg)) => {
            tracing::warn!(release = %rid, pipeline = %pipeline, error = %msg,
                "pipeline busy: the start is retried until its timeout");
            return Ok(run);
        }
        Err(StartError::NotStartable(msg)) => {
            ports.store.set_run_cause(&k, &msg).await?;
            record_now(ports, &k, RunStatus::Failed).await?;
            return Err(TaskError::PipelineNotStartable(format!(
                "pipeline {pipeline} could not be started: {msg}"
            )));
        }
        Err(StartError::Port(e)) => return Err(e.into()),
    };
    let run = record_run_start(
        &ports.writer(),
        &run,
        owner,
        &execution_id,
        ports.clock.now(),
    )
    .await?;
    // StopRunning marks the release before it lists runs; a start that landed after the
    // listing stops itself here.
    if let Some(release) = ports.store.release_record(&rid).await? {
        if release.stop_requested || release.status != ReleaseStatus::Running {
            let reason = format!("release {rid} is stopping");
            ports
                .pipelines
                .stop(&pipeline, &execution_id, &reason, false)
                .await?;
            if let Some(stopped) = record_now(ports, &k, RunStatus::Stopping).await? {
                return Ok(stopped);
            }
        }
    }
    Ok(run)
}

/// `skipUnchanged`: a run whose pipeline's most recent finished execution succeeded with the
/// manifest's revisions and variables is recorded Skipped instead of started, with that
/// execution (ListPipelineExecutions, and GetPipelineExecution when the manifest passes
/// variables). A pipeline CodePipeline no longer knows is left to the start, which records
/// NotFound.
async fn skip_if_unchanged(
    run: &RunRecord,
    ports: &RunPorts<'_>,
) -> Result<Option<RunRecord>, TaskError> {
    let matched = match crate::plan::matching_execution(&run.spec, ports.pipelines).await {
        Ok(m) => m,
        Err(PortError::NotFound(_)) => None,
        Err(e) => return Err(e.into()),
    };
    let Some(execution_id) = matched else {
        return Ok(None);
    };
    tracing::info!(release = %run.release_id, pipeline = %run.spec.name, execution_id = %execution_id,
        "unchanged since that execution: skipped");
    Ok(record_run_skipped(&ports.writer(), run, &execution_id, ports.clock.now()).await?)
}

/// The release a task of `owner` may start pipelines of: RUNNING, held by `owner`, not
/// stopping. Every start is conditional on it (issue 9, "ended means ended"): an execution
/// restarted by RedriveExecution (same name, so same owner) fails at once instead of starting
/// pipelines of a release that ended.
async fn startable_release(
    rid: &ReleaseId,
    owner: &str,
    ports: &RunPorts<'_>,
) -> Result<Option<ReleaseRecord>, TaskError> {
    let release = ports
        .store
        .release_record(rid)
        .await?
        .ok_or_else(|| TaskError::NotFound(format!("release {rid} is not recorded")))?;
    if release.owner != owner {
        return Err(TaskError::Duplicate(rid.to_string()));
    }
    if release.status != ReleaseStatus::Running {
        return Err(TaskError::ReleaseEnded(format!(
            "release {rid} already ended {}; retry the release instead of redriving its execution",
            release.status
        )));
    }
    Ok((!release.stop_requested).then_some(release))
}

/// Retries the start of a run a busy pipeline left NotStarted (issue 9, fault 5): when its
/// wait begins and on every sweep, while its release is RUNNING and not stopping. A release
/// that ended or is stopping never starts it: its token is dropped, so the sweep lets it be.
pub(super) async fn retry_busy_start(
    run: RunRecord,
    ports: &RunPorts<'_>,
) -> Result<RunRecord, TaskError> {
    if run.status != RunStatus::NotStarted {
        return Ok(run);
    }
    let k = key(&run.release_id, &run.spec.name);
    let release = ports.store.release_record(&run.release_id).await?;
    let Some(release) = release.filter(|r| r.status == ReleaseStatus::Running && !r.stop_requested)
    else {
        if let Some(token) = run.task_token.as_deref() {
            ports.store.clear_token(&k, token).await?;
        }
        return Ok(run);
    };
    match start_run(run, &release, false, ports).await {
        // Recorded Failed: the wait completes with it.
        Err(TaskError::PipelineNotStartable(m)) => {
            tracing::warn!(pipeline = %k.pipeline, error = %m, "a busy pipeline became not startable");
            load_run(ports.store, &k.release_id, &k.pipeline).await
        }
        other => other,
    }
}

/// Completes the run's waiting task if the run is terminal and still carries a token. The
/// completion is sent first and the token cleared after (a conditional write: a newer token
/// is kept), so a send that fails (throttled, 5xx, timeout) leaves the token for
/// record-state's retry and the sweep (issue 9, fault 1). Two sides that both see the
/// terminal status (the waiting task, a state-change event, the sweep) may both send: the
/// second is answered TaskTimedOut or InvalidToken, which means already done. True if this
/// call delivered the completion.
pub(super) async fn complete_if_terminal(
    run: &RunRecord,
    ports: &RunPorts<'_>,
) -> Result<bool, TaskError> {
    let (true, Some(token)) = (run.status.is_terminal(), run.task_token.as_deref()) else {
        return Ok(false);
    };
    let k = key(&run.release_id, &run.spec.name);
    // TaskTimedOut / InvalidToken: the task already ended (completed, timed out, aborted).
    let delivery = if run.status.is_success() {
        let output = serde_json::to_value(response(run))
            .map_err(|e| TaskError::Internal(format!("cannot encode the run outcome: {e}")))?;
        ports.tokens.succeed(token, &output).await?
    } else {
        // The task fails, so the state machine's Catch takes the failure path with no Choice
        // state on the success path (two history events fewer per pipeline).
        let cause = format!("pipeline {} ended {}", run.spec.name, run.status);
        ports.tokens.fail(token, PIPELINE_FAILED, &cause).await?
    };
    ports.store.clear_token(&k, token).await?;
    Ok(delivery == TokenDelivery::Delivered)
}

/// Asks CodePipeline for the status of a started, non-terminal run and records a change. An
/// execution CodePipeline no longer knows (the pipeline deleted, the execution gone) is
/// recorded NotFound, a terminal status (issue 9, fault 7).
pub(super) async fn refresh(run: RunRecord, ports: &RunPorts<'_>) -> Result<RunRecord, TaskError> {
    let Some(execution_id) = run
        .execution_id
        .as_deref()
        .filter(|_| !run.status.is_terminal())
    else {
        return Ok(run);
    };
    let status = match ports.pipelines.status(&run.spec.name, execution_id).await {
        Ok(s) => s.status,
        Err(PortError::NotFound(m)) => {
            tracing::warn!(pipeline = %run.spec.name, execution_id, error = %m,
                "the execution is gone: recorded NotFound");
            RunStatus::NotFound
        }
        Err(e) => return Err(e.into()),
    };
    if status == run.status {
        return Ok(run);
    }
    let k = key(&run.release_id, &run.spec.name);
    Ok(record_now(ports, &k, status).await?.unwrap_or(run))
}

/// Records a status change of a run, decided by this task, at the clock's now (its event
/// published: [`record_run_status`]).
async fn record_now(
    ports: &RunPorts<'_>,
    k: &RunKey,
    status: RunStatus,
) -> PortResult<Option<RunRecord>> {
    record_run_status(&ports.writer(), k, status, ports.clock.now(), None).await
}

/// The RunPipeline task (`.waitForTaskToken`, one per pipeline: issue 9, fault 10): stores the
/// token on the run, starts the pipeline if it is not started (busy or throttled: left to the
/// sweep), then checks the status at once, so a pipeline that finished before the token was
/// stored is not missed.
///
/// The token write never replaces a newer attempt's token (issue 9, fault 9): when Step
/// Functions retried this task while this invocation still ran, the newer attempt owns the
/// run, and this one answers `superseded` without touching it.
pub async fn await_pipeline(
    release: &str,
    execution_name: &str,
    pipeline: &str,
    task_token: &str,
    retry_count: u32,
    ports: &RunPorts<'_>,
) -> Result<AwaitResponse, TaskError> {
    let rid = release_id(release)?;
    let k = key(&rid, pipeline);
    let run = ports
        .store
        .set_token(&k, task_token, ports.clock.now())
        .await?;
    if run.task_token.as_deref() != Some(task_token) {
        tracing::warn!(release = %rid, pipeline, "a newer attempt of the task holds the run");
        return Ok(AwaitResponse {
            status: run.status,
            completed: false,
            superseded: true,
        });
    }
    let run = if run.status == RunStatus::NotStarted {
        match startable_release(&rid, execution_name, ports).await? {
            Some(release) => start_run(run, &release, retry_count > 0, ports).await?,
            None => run,
        }
    } else {
        run
    };
    let run = refresh(run, ports).await?;
    let completed = complete_if_terminal(&run, ports).await?;
    Ok(AwaitResponse {
        status: run.status,
        completed,
        superseded: false,
    })
}

/// Stops one run whose wait timed out; it counts as failed.
pub async fn stop_timed_out(
    req: &PipelineRef,
    ports: &RunPorts<'_>,
) -> Result<RunResponse, TaskError> {
    let rid = release_id(&req.release_id)?;
    let run = load_run(ports.store, &rid, &req.pipeline).await?;
    if run.status == RunStatus::NotStarted && ports.store.halt().await?.is_some() {
        // Held by the halt, not busy: halted time does not count against the pipeline's
        // timeout. Answered NotStarted, the state machine waits for the run again.
        tracing::info!(release = %rid, pipeline = %req.pipeline,
            "held by the halt past its timeout: waiting again");
        return Ok(response(&run));
    }
    if run.status == RunStatus::NotStarted {
        // Busy until its timeout (issue 9, fault 5): never started, it fails.
        tracing::warn!(release = %rid, pipeline = %req.pipeline,
            "pipeline busy: not started within its timeout of {} minutes", run.spec.timeout_minutes);
        let k = key(&rid, &req.pipeline);
        if let Some(token) = run.task_token.as_deref() {
            ports.store.clear_token(&k, token).await?;
        }
        ports.store.set_run_cause(&k, PIPELINE_BUSY).await?;
        let run = record_now(ports, &k, RunStatus::Failed)
            .await?
            .unwrap_or(run);
        return Ok(response(&run));
    }
    if started_late_by_the_halt(&run, ports).await? {
        // The halt held its start: it has not run its timeout yet. Answered InProgress, the
        // state machine waits for it again.
        tracing::info!(release = %rid, pipeline = %req.pipeline,
            "started late (held by the halt): waiting again");
        return Ok(response(&run));
    }
    let reason = format!(
        "release {rid}: pipeline {} ran longer than its timeout of {} minutes",
        req.pipeline, run.spec.timeout_minutes
    );
    Ok(response(&stop_run(run, &reason, false, ports).await?))
}

/// A running run that the halt held before it started (a halt wait of its wave in this
/// attempt), started less than its timeout ago.
async fn started_late_by_the_halt(
    run: &RunRecord,
    ports: &RunPorts<'_>,
) -> Result<bool, TaskError> {
    let timeout = time::Duration::minutes(i64::from(run.spec.timeout_minutes));
    let Some(started) = run.started_at.filter(|_| run.status.is_running()) else {
        return Ok(false);
    };
    if ports.clock.now() - started >= timeout {
        return Ok(false);
    }
    let Some(release) = ports.store.release_record(&run.release_id).await? else {
        return Ok(false);
    };
    let l = &release.lifecycle;
    let attempt_began = l
        .attempts
        .iter()
        .rev()
        .find(|a| a.attempt == l.attempt)
        .map_or(release.requested_at, |a| a.requested_at);
    Ok(l.waits.iter().any(|w| {
        w.kind == crate::lifecycle::WaitKind::Halt
            && w.wave == Some(run.spec.wave)
            && w.since >= attempt_began
    }))
}

/// Stops a running run. It is refreshed first (issue 9, fault 7): a run that in fact ended
/// (its events lost, the sweep not there yet) is recorded as it ended — a Succeeded run counts
/// as Succeeded — and not stopped; one CodePipeline no longer knows is recorded NotFound.
pub(super) async fn stop_run(
    run: RunRecord,
    reason: &str,
    abandon: bool,
    ports: &RunPorts<'_>,
) -> Result<RunRecord, TaskError> {
    let run = refresh(run, ports).await?;
    let (Some(execution_id), true) = (run.execution_id.as_deref(), run.status.is_running()) else {
        return Ok(run);
    };
    let k = key(&run.release_id, &run.spec.name);
    match ports
        .pipelines
        .stop(&run.spec.name, execution_id, reason, abandon)
        .await
    {
        Ok(()) => {}
        Err(PortError::NotFound(_)) => {
            return Ok(record_now(ports, &k, RunStatus::NotFound)
                .await?
                .unwrap_or(run));
        }
        Err(e) => return Err(e.into()),
    }
    Ok(record_now(ports, &k, RunStatus::Stopping)
        .await?
        .unwrap_or(run))
}

/// StopRunning: marks the release as stopping, stops every run still in progress (with
/// `abandon` once the wait has been long), then reports how many are not terminal yet.
/// Each run is handled on its own (issue 9, fault 3): one that cannot be stopped or polled
/// (an error, an unknown status) is logged and counted as not terminal; the others are still
/// stopped. After [`MAX_STOP_ATTEMPTS`] it reports none remaining, so the wait is bounded,
/// and marks every run still not terminal `stopAbandoned`.
pub async fn stop_running(
    release: &str,
    owner: &str,
    attempt: u32,
    ports: &RunPorts<'_>,
) -> Result<StopRunningResponse, TaskError> {
    let rid = release_id(release)?;
    let record = ports
        .store
        .release_record(&rid)
        .await?
        .ok_or_else(|| TaskError::NotFound(format!("release {rid} is not recorded")))?;
    if record.owner != owner {
        return Err(TaskError::Duplicate(rid.to_string()));
    }
    if record.status != ReleaseStatus::Running {
        // Ended already (the reconciler, a retried task): its runs are the sweep's to settle.
        return Ok(StopRunningResponse {
            remaining: 0,
            attempt: attempt.saturating_add(1),
        });
    }
    super::lifecycle::request_stop(&ports.writer(), &rid, owner).await?;
    let stored = ports
        .store
        .get(&rid)
        .await?
        .ok_or_else(|| TaskError::NotFound(format!("release {rid} is not recorded")))?;
    let failed: Vec<&str> = stored
        .runs
        .iter()
        .filter(|r| r.status.is_terminal() && !r.status.is_success())
        .map(|r| r.spec.name.as_str())
        .collect();
    let reason = if failed.is_empty() {
        format!("release {rid} failed")
    } else {
        format!(
            "release {rid} failed: {} did not succeed",
            failed.join(", ")
        )
    };
    let abandon = attempt >= STOP_ABANDON_AFTER;
    let mut pending: Vec<RunKey> = Vec::new();
    for run in stored.runs {
        let k = key(&rid, &run.spec.name);
        if let (RunStatus::NotStarted, Some(token)) = (run.status, run.task_token.as_deref()) {
            // Waiting for a busy pipeline: it is never started now.
            if let Err(e) = ports.store.clear_token(&k, token).await {
                tracing::warn!(release = %rid, pipeline = %k.pipeline, error = %e,
                    "could not drop the token of a run never started");
            }
        }
        if !run.status.is_running() {
            continue;
        }
        let stopped = async {
            let run = if run.status == RunStatus::InProgress || abandon {
                stop_run(run, &reason, abandon, ports).await?
            } else {
                run
            };
            refresh(run, ports).await
        }
        .await;
        match stopped {
            Ok(run) if run.status.is_terminal() => {
                // A send that fails leaves the token for the sweep: not this run's stop.
                if let Err(e) = complete_if_terminal(&run, ports).await {
                    tracing::warn!(release = %rid, pipeline = %k.pipeline, error = %e,
                        "could not complete the waiting task of a stopped run");
                }
            }
            Ok(_) => pending.push(k),
            Err(e) => {
                tracing::warn!(release = %rid, pipeline = %k.pipeline, error = %e,
                    "could not stop or poll a run; trying again on the next attempt");
                pending.push(k);
            }
        }
    }
    let mut remaining = u32::try_from(pending.len()).unwrap_or(u32::MAX);
    // Saturating: the count comes from the task input, and u32::MAX + 1 must not panic.
    let attempt = attempt.saturating_add(1);
    if attempt >= MAX_STOP_ATTEMPTS && remaining > 0 {
        tracing::warn!(release = %rid, remaining, "runs still not terminal after the bounded stop wait: abandoned");
        for k in &pending {
            ports.store.mark_stop_abandoned(k).await?;
        }
        remaining = 0;
    }
    Ok(StopRunningResponse { remaining, attempt })
}

/// How long after its release ended the sweep keeps asking a still-running run to stop before
/// it stops with `abandon` and gives up waiting: StopRunning's bounded wait.
pub const SETTLE_ABANDON_AFTER: time::Duration =
    time::Duration::seconds(30 * STOP_ABANDON_AFTER as i64);

/// The sweep's half of the bounded stop wait (issue 9): a run still running whose release
/// ended — the reconciler ended it and issued the stops, and does not wait — is stopped again
/// (refreshed first); [`SETTLE_ABANDON_AFTER`] after the release ended, with `abandon`, and
/// if it still runs it is marked `stopAbandoned` and its token dropped, so the sweep lets it
/// be. A run of a RUNNING release is left as it is.
///
/// `running`: releases the sweep already knows to be RUNNING (its reconciliation just asked);
/// their runs are left as they are without another read.
pub(super) async fn settle_ended(
    run: RunRecord,
    running: &std::collections::HashSet<ReleaseId>,
    ports: &RunPorts<'_>,
) -> Result<RunRecord, TaskError> {
    if !run.status.is_running() || run.stop_abandoned || running.contains(&run.release_id) {
        return Ok(run);
    }
    let Some(release) = ports.store.release_record(&run.release_id).await? else {
        return Ok(run);
    };
    if release.status == ReleaseStatus::Running {
        return Ok(run);
    }
    let now = ports.clock.now();
    let abandon = now - release.ended_at.unwrap_or(now) >= SETTLE_ABANDON_AFTER;
    let reason = format!("release {} ended {}", release.release_id, release.status);
    let run = if run.status == RunStatus::InProgress || abandon {
        stop_run(run, &reason, abandon, ports).await?
    } else {
        refresh(run, ports).await?
    };
    if abandon && run.status.is_running() {
        let k = key(&run.release_id, &run.spec.name);
        tracing::warn!(release = %k.release_id, pipeline = %k.pipeline,
            "still running after the bounded stop wait: abandoned");
        ports.store.mark_stop_abandoned(&k).await?;
        if let Some(token) = run.task_token.as_deref() {
            ports.store.clear_token(&k, token).await?;
        }
        return load_run(ports.store, &k.release_id, &k.pipeline).await;
    }
    Ok(run)
}

/// Lets other modules look a run up by execution id and refresh it.
pub(super) async fn record_and_complete(
    k: &RunKey,
    status: RunStatus,
    at: time::OffsetDateTime,
    execution_id: Option<&str>,
    ports: &RunPorts<'_>,
) -> Result<Option<RunRecord>, TaskError> {
    let run: PortResult<Option<RunRecord>> =
        record_run_status(&ports.writer(), k, status, at, execution_id).await;
    let Some(run) = run? else { return Ok(None) };
    complete_if_terminal(&run, ports).await?;
    Ok(Some(run))
}

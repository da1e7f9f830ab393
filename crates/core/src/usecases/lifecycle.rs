//! Writing a release's changes with their events, and publishing them.
//!
//! Every change goes through here so that it is recorded with its events in one conditional
//! write ([`ReleaseStore::update_release`] for the release item, `record_status` /
//! `record_start` for a run), and published after it ([`publish`]).

use crate::error::{PortError, TaskError};
use crate::events::{EventBus, EventDraft, ReleaseEvent, PUT_EVENTS_BATCH};
use crate::lifecycle::{ApprovalStatus, WaveStatus};
use crate::ports::{Clock, PortResult, ReleaseStore, RunKey};
use crate::release::{apply_status, ReleaseId, ReleaseRecord, ReleaseStatus, RunRecord, RunStatus};
use time::OffsetDateTime;

/// How often a release change is read and tried again when another writer got there first.
const CHANGE_ATTEMPTS: u32 = 16;

/// What a release change needs.
#[derive(Clone, Copy)]
pub struct Writer<'a> {
    pub store: &'a dyn ReleaseStore,
    pub bus: &'a dyn EventBus,
    pub clock: &'a dyn Clock,
}

/// Reads the release item, lets `change` decide (it edits the record and returns the events
/// of the change, or an error that is returned as it is), and writes it on condition that
/// nobody wrote it since it was read; on a conflict, reads and decides again. An empty list of
/// events and an unchanged record write nothing. Publishes the events after the write.
pub async fn change_release<T>(
    w: &Writer<'_>,
    release_id: &ReleaseId,
    mut change: impl FnMut(&mut ReleaseRecord) -> Result<(Vec<EventDraft>, T), TaskError>,
) -> Result<(ReleaseRecord, T), TaskError> {
    change_with(w, release_id, false, |r, _| change(r)).await
}

/// [`change_release`] for a change that looks at the runs too (one read of the whole release).
pub async fn change_release_with_runs<T>(
    w: &Writer<'_>,
    release_id: &ReleaseId,
    change: impl FnMut(&mut ReleaseRecord, &[RunRecord]) -> Result<(Vec<EventDraft>, T), TaskError>,
) -> Result<(ReleaseRecord, T), TaskError> {
    change_with(w, release_id, true, change).await
}

async fn change_with<T>(
    w: &Writer<'_>,
    release_id: &ReleaseId,
    with_runs: bool,
    mut change: impl FnMut(&mut ReleaseRecord, &[RunRecord]) -> Result<(Vec<EventDraft>, T), TaskError>,
) -> Result<(ReleaseRecord, T), TaskError> {
    let missing = || TaskError::NotFound(format!("release {release_id} is not recorded"));
    for _ in 0..CHANGE_ATTEMPTS {
        let (release, runs) = if with_runs {
            let stored = w.store.get(release_id).await?.ok_or_else(missing)?;
            (stored.release, stored.runs)
        } else {
            let release = w
                .store
                .release_record(release_id)
                .await?
                .ok_or_else(missing)?;
            (release, Vec::new())
        };
        let mut next = release.clone();
        let (drafts, out) = change(&mut next, &runs)?;
        if drafts.is_empty() && next == release {
            return Ok((next, out));
        }
        next.version = release.version + 1;
        let events = stamp(w.store, release_id, drafts).await?;
        match w.store.update_release(&next, &events).await {
            Ok(()) => {
                publish_written(w, &events).await;
                return Ok((next, out));
            }
            Err(PortError::ConditionFailed(m)) => {
                tracing::debug!(release = %release_id, reason = %m, "release changed meanwhile; deciding again");
            }
            Err(e) => return Err(e.into()),
        }
    }
    Err(TaskError::Transient(format!(
        "release {release_id} kept changing while this change was written; try again"
    )))
}

/// Allocates the drafts' sequence numbers and stamps them.
async fn stamp(
    store: &dyn ReleaseStore,
    release_id: &ReleaseId,
    drafts: Vec<EventDraft>,
) -> PortResult<Vec<ReleaseEvent>> {
    if drafts.is_empty() {
        return Ok(Vec::new());
    }
    let first = store.next_sequence(release_id, drafts.len() as u64).await?;
    Ok(EventDraft::stamp(drafts, release_id, first))
}

/// Records a run's status change with its `Pipeline Run Status Change` event, then updates its
/// wave when the run ended. `execution_id`: the execution the change is about, when an event
/// says it; a change about another execution than the run's current one (an earlier attempt's)
/// is ignored. Returns the run after the write, `None` if the run is unknown.
pub async fn record_run_status(
    w: &Writer<'_>,
    key: &RunKey,
    status: RunStatus,
    at: OffsetDateTime,
    execution_id: Option<&str>,
) -> PortResult<Option<RunRecord>> {
    let Some(run) = w.store.get_run(&key.release_id, &key.pipeline).await? else {
        return Ok(None);
    };
    if execution_id.is_some_and(|e| run.execution_id.as_deref() != Some(e)) {
        tracing::info!(release = %key.release_id, pipeline = %key.pipeline, ?execution_id,
            current = ?run.execution_id, "a change of another execution than the run's: ignored");
        return Ok(Some(run));
    }
    let mut after = run.clone();
    if !apply_status(&mut after, status, at) {
        return Ok(Some(run));
    }
    let events = stamp(
        w.store,
        &key.release_id,
        vec![EventDraft::run_status(&run, status, at)],
    )
    .await?;
    let recorded = w.store.record_status(key, status, at, &events).await?;
    if recorded.as_ref().is_some_and(|r| records(r, status, at)) {
        publish_written(w, &events).await;
    }
    Ok(recorded)
}

/// Whether `run`, as a store returned it after a write, holds the change to `status` at `at`:
/// the write recorded it (its events are in the outbox), rather than finding it stale or a
/// repeat. (Two writers of the very same change at the very same instant — one event
/// delivered twice at once — both see it: the event is then published twice, under two
/// sequence numbers; delivery is at least once.)
fn records(run: &RunRecord, status: RunStatus, at: OffsetDateTime) -> bool {
    run.history
        .iter()
        .rev()
        .any(|h| h.status == status && h.at == at)
}

/// Records a run's start with its event, and the wave as Running.
pub async fn record_run_start(
    w: &Writer<'_>,
    run: &RunRecord,
    owner: &str,
    execution_id: &str,
    at: OffsetDateTime,
) -> PortResult<RunRecord> {
    let mut started = run.clone();
    started.execution_id = Some(execution_id.to_owned());
    let events = stamp(
        w.store,
        &run.release_id,
        vec![EventDraft::run_status(&started, RunStatus::InProgress, at)],
    )
    .await?;
    let recorded = w
        .store
        .record_start(
            &run.release_id,
            owner,
            &run.spec.name,
            execution_id,
            at,
            &events,
        )
        .await?;
    if recorded.execution_id.as_deref() == Some(execution_id)
        && records(&recorded, RunStatus::InProgress, at)
    {
        publish_written(w, &events).await;
    }
    mark_wave_started(w, &run.release_id, run.spec.wave, at).await;
    Ok(recorded)
}

/// Records a run `Skipped` by `skipUnchanged` (it matches `execution_id`, an earlier
/// execution), with its event; the wave counts as started.
pub async fn record_run_skipped(
    w: &Writer<'_>,
    run: &RunRecord,
    execution_id: &str,
    at: OffsetDateTime,
) -> PortResult<Option<RunRecord>> {
    let mut skipped = run.clone();
    skipped.execution_id = Some(execution_id.to_owned());
    let events = stamp(
        w.store,
        &run.release_id,
        vec![EventDraft::run_status(&skipped, RunStatus::Skipped, at)],
    )
    .await?;
    let k = super::key(&run.release_id, &run.spec.name);
    let recorded = w
        .store
        .record_skipped(&k, execution_id, at, &events)
        .await?;
    if recorded
        .as_ref()
        .is_some_and(|r| records(r, RunStatus::Skipped, at))
    {
        publish_written(w, &events).await;
    }
    mark_wave_started(w, &run.release_id, run.spec.wave, at).await;
    Ok(recorded)
}

/// The first start of a wave marks it Running, and settles the waves before it (their Map
/// ended before this wave's began). One read of the release item for every start; the whole
/// release is read only on a wave's first start.
async fn mark_wave_started(w: &Writer<'_>, release_id: &ReleaseId, wave: u32, at: OffsetDateTime) {
    match w.store.release_record(release_id).await {
        Ok(Some(r))
            if r.lifecycle
                .wave(wave)
                .is_some_and(|x| x.status.is_open() && x.status != WaveStatus::Running) => {}
        _ => return,
    }
    let marked = change_release_with_runs(w, release_id, |r, runs| {
        let attempt = r.lifecycle.attempt;
        let mut drafts = settle_waves(r, runs, Some(wave), at);
        let Some(wr) = r.lifecycle.wave_mut(wave) else {
            return Ok((drafts, ()));
        };
        if wr.status == WaveStatus::Running || !wr.status.is_open() {
            return Ok((drafts, ()));
        }
        wr.status = WaveStatus::Running;
        wr.started_at.get_or_insert(at);
        wr.ended_at = None;
        drafts.push(EventDraft::wave_status(
            attempt,
            wave,
            WaveStatus::Running,
            at,
        ));
        Ok((drafts, ()))
    })
    .await;
    if let Err(e) = marked {
        tracing::warn!(release = %release_id, wave, error = %e, "could not mark the wave Running");
    }
}

/// Ends the Running waves before `before` (every Running wave when `None`: the release ends):
/// a wave whose runs of this attempt all succeeded is Succeeded, at its last run's end;
/// otherwise Failed (Cancelled when the release is cancelled), at `at`. Pure.
pub(super) fn settle_waves(
    r: &mut ReleaseRecord,
    runs: &[RunRecord],
    before: Option<u32>,
    at: OffsetDateTime,
) -> Vec<EventDraft> {
    let attempt = r.lifecycle.attempt;
    let cancelled = r.status == ReleaseStatus::Cancelled;
    let mut drafts = Vec::new();
    for wave in r.lifecycle.waves.iter_mut() {
        let open = matches!(
            wave.status,
            WaveStatus::Running
                | WaveStatus::WaitingApproval
                | WaveStatus::WaitingGate
                | WaveStatus::Baking
        );
        if !open || before.is_some_and(|b| wave.wave >= b) {
            continue;
        }
        let of_wave = runs.iter().filter(|x| x.spec.wave == wave.wave);
        let all_succeeded = of_wave.clone().all(|x| x.status.is_success());
        let (status, ended) = match (all_succeeded, cancelled) {
            (true, _) if matches!(wave.status, WaveStatus::Running | WaveStatus::Baking) => (
                WaveStatus::Succeeded,
                of_wave.filter_map(|x| x.ended_at).max().unwrap_or(at),
            ),
            (_, true) => (WaveStatus::Cancelled, at),
            _ => (WaveStatus::Failed, at),
        };
        wave.status = status;
        wave.ended_at = Some(ended);
        drafts.push(EventDraft::wave_status(attempt, wave.wave, status, ended));
    }
    drafts
}

/// Marks the release as stopping, on condition that `owner` holds it and it is RUNNING
/// (`ConditionFailed` otherwise).
pub async fn request_stop(w: &Writer<'_>, release_id: &ReleaseId, owner: &str) -> PortResult<()> {
    let r = change_release(w, release_id, |r| {
        running_and_owned(r, owner)?;
        r.stop_requested = true;
        Ok((Vec::new(), ()))
    })
    .await;
    r.map(|_| ()).map_err(into_port)
}

/// Records the release's end, on condition that `owner` holds it and it is RUNNING
/// (`ConditionFailed` otherwise: an ended release stays as it ended): the current attempt
/// ends with it; open waves end (Failed, or Cancelled when the release is), a waiting approval
/// is Cancelled, open waits end, and nothing is waited for.
pub async fn finish_release(
    w: &Writer<'_>,
    release_id: &ReleaseId,
    owner: &str,
    status: ReleaseStatus,
    cause: Option<&str>,
    at: OffsetDateTime,
) -> PortResult<ReleaseRecord> {
    let r = change_release_with_runs(w, release_id, |r, runs| {
        running_and_owned(r, owner)?;
        Ok((end(r, runs, status, cause, at), ()))
    })
    .await;
    r.map(|(r, ())| r).map_err(into_port)
}

/// The pure part of [`finish_release`].
fn end(
    r: &mut ReleaseRecord,
    runs: &[RunRecord],
    status: ReleaseStatus,
    cause: Option<&str>,
    at: OffsetDateTime,
) -> Vec<EventDraft> {
    let attempt = r.lifecycle.attempt;
    r.status = status;
    r.cause = cause.map(str::to_owned);
    r.ended_at = Some(at);
    let mut drafts = settle_waves(r, runs, None, at);
    let l = &mut r.lifecycle;
    if let Some(a) = l.current_attempt_mut() {
        a.status = status;
        a.cause = cause.map(str::to_owned);
        a.ended_at = Some(at);
    }
    let cancelled_by = l.cancel.as_ref().map(|c| c.by.clone());
    for approval in l.approvals.iter_mut() {
        if approval.status == ApprovalStatus::Waiting {
            approval.status = if status == ReleaseStatus::Cancelled {
                ApprovalStatus::Cancelled
            } else {
                ApprovalStatus::TimedOut
            };
            approval.at = Some(at);
            approval.by = cancelled_by.clone();
        }
    }
    for wait in l.waits.iter_mut().filter(|w| w.until.is_none()) {
        wait.until = Some(at);
        drafts.push(EventDraft::waiting(
            attempt, wait.kind, wait.wave, false, at,
        ));
    }
    l.waiting_for = None;
    l.approval_token = None;
    l.gate_wait = None;
    drafts.push(EventDraft::release_status(attempt, status, cause, at));
    drafts
}

fn running_and_owned(r: &ReleaseRecord, owner: &str) -> Result<(), TaskError> {
    if r.owner != owner {
        return Err(TaskError::Conflict(format!(
            "release {} is owned by {}, not {owner}",
            r.release_id, r.owner
        )));
    }
    if r.status != ReleaseStatus::Running {
        return Err(TaskError::Conflict(format!(
            "release {} already ended with status {}",
            r.release_id, r.status
        )));
    }
    Ok(())
}

/// The store's errors come back as they were; a refused condition as ConditionFailed.
fn into_port(e: TaskError) -> PortError {
    match e {
        TaskError::Conflict(m) => PortError::ConditionFailed(m),
        TaskError::NotFound(m) => PortError::NotFound(m),
        TaskError::Throttled(m) => PortError::Throttled(m),
        other => PortError::Transient(other.to_string()),
    }
}

/// How often the rejected entries of a PutEvents call are sent again inside one publish.
const PUBLISH_RETRIES: u32 = 3;
/// At most this many events are published by one call (the rest wait for the next).
const PUBLISH_LIMIT: usize = 1000;

/// Publishes the events a change just wrote (no read of the outbox); what is not accepted
/// stays in the outbox for the sweep's [`publish`].
async fn publish_written(w: &Writer<'_>, events: &[ReleaseEvent]) {
    if events.is_empty() {
        return;
    }
    if let Err(e) = put_batches(w.store, w.bus, events).await {
        tracing::warn!(error = %e, "events not published yet; they stay in the outbox for the sweep");
    }
}

/// Drains the outbox (of one release, or of all): puts the events in sequence order, at most
/// [`PUT_EVENTS_BATCH`] a call, sends rejected entries again, and removes what was accepted.
/// Never fails: what is not published stays in the outbox for the next publish (the sweep's).
/// Returns how many events were published.
pub async fn publish(
    store: &dyn ReleaseStore,
    bus: &dyn EventBus,
    release_id: Option<&ReleaseId>,
) -> usize {
    match try_publish(store, bus, release_id).await {
        Ok(n) => n,
        Err(e) => {
            tracing::warn!(release = ?release_id.map(ReleaseId::as_str), error = %e,
                "events not published yet; they stay in the outbox for the next publish");
            0
        }
    }
}

async fn try_publish(
    store: &dyn ReleaseStore,
    bus: &dyn EventBus,
    release_id: Option<&ReleaseId>,
) -> PortResult<usize> {
    let pending = store.outbox(release_id, PUBLISH_LIMIT).await?;
    put_batches(store, bus, &pending).await
}

/// Puts `events` in batches, sends rejected entries again, removes what was accepted from the
/// outbox. Returns how many were accepted.
async fn put_batches(
    store: &dyn ReleaseStore,
    bus: &dyn EventBus,
    events: &[ReleaseEvent],
) -> PortResult<usize> {
    let mut published = 0;
    for batch in events.chunks(PUT_EVENTS_BATCH) {
        let mut todo: Vec<ReleaseEvent> = batch.to_vec();
        for _ in 0..=PUBLISH_RETRIES {
            let rejected = bus.put(&todo).await?;
            let accepted: Vec<ReleaseEvent> = todo
                .iter()
                .enumerate()
                .filter(|(i, _)| !rejected.contains(i))
                .map(|(_, e)| e.clone())
                .collect();
            store.remove_from_outbox(&accepted).await?;
            published += accepted.len();
            todo = rejected
                .iter()
                .filter_map(|i| todo.get(*i).cloned())
                .collect();
            if todo.is_empty() {
                break;
            }
            tracing::info!(
                rejected = todo.len(),
                "PutEvents rejected entries; sending them again"
            );
        }
    }
    Ok(published)
}

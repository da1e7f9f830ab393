//! In-memory ports: the reference semantics of every port, used by unit tests of the use
//! cases and the handlers. Adapters (DynamoDB, SQLite) are checked against the same
//! contract (`rm_testkit::store_contract`).

use crate::error::PortError;
use crate::manifest::PipelineSpec;
use crate::ports::*;
use crate::release::*;
use async_trait::async_trait;
use serde_json::Value;
use std::collections::{BTreeMap, HashMap};
use std::sync::Mutex;
use time::OffsetDateTime;

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

#[derive(Default)]
struct StoreState {
    releases: BTreeMap<ReleaseId, ReleaseRecord>,
    runs: BTreeMap<(ReleaseId, String), RunRecord>,
    executions: HashMap<String, RunKey>,
    /// When the run's newest token was stored (`tokenAt`); kept when the token is cleared.
    token_at: HashMap<(ReleaseId, String), OffsetDateTime>,
    /// The sweep's order of a waiting run (`waitingSince`); present while it carries a token.
    waiting_since: HashMap<(ReleaseId, String), OffsetDateTime>,
    /// The last event sequence number allocated, by release.
    sequences: HashMap<ReleaseId, u64>,
    /// Events not yet published, by release and sequence.
    outbox: BTreeMap<(ReleaseId, u64), crate::events::ReleaseEvent>,
    halt: Option<crate::gate::Halt>,
}

impl StoreState {
    fn enqueue(&mut self, events: &[crate::events::ReleaseEvent]) {
        for e in events {
            self.outbox
                .insert((e.release_id.clone(), e.sequence), e.clone());
        }
    }
}

/// A [`ReleaseStore`] in memory.
#[derive(Default)]
pub struct MemoryStore {
    state: Mutex<StoreState>,
}

impl MemoryStore {
    pub fn new() -> Self {
        Self::default()
    }
}

fn owned_by(state: &StoreState, id: &ReleaseId, owner: &str) -> PortResult<()> {
    match state.releases.get(id) {
        Some(r) if r.owner == owner => Ok(()),
        Some(r) => Err(PortError::ConditionFailed(format!(
            "release {id} is owned by {}, not {owner}",
            r.owner
        ))),
        None => Err(PortError::NotFound(format!("release {id}"))),
    }
}

pub use crate::release::{apply_status, list_order, page_of, reset_for_attempt};

#[async_trait]
impl ReleaseStore for MemoryStore {
    async fn claim(&self, release: &NewRelease) -> PortResult<Claim> {
        let mut s = lock(&self.state);
        let id = &release.record.release_id;
        if let Some(existing) = s.releases.get(id) {
            if existing.owner != release.record.owner {
                return Ok(Claim::Duplicate {
                    owner: existing.owner.clone(),
                });
            }
            return Ok(Claim::Claimed);
        }
        s.releases.insert(id.clone(), release.record.clone());
        for spec in &release.manifest.pipelines {
            s.runs.insert(
                (id.clone(), spec.name.clone()),
                RunRecord::new(id.clone(), spec.clone()),
            );
        }
        let last = release.events.iter().map(|e| e.sequence).max().unwrap_or(0);
        s.sequences.insert(id.clone(), last);
        s.enqueue(&release.events);
        Ok(Claim::Claimed)
    }

    async fn release_claim(&self, release_id: &ReleaseId, owner: &str) -> PortResult<()> {
        let mut s = lock(&self.state);
        owned_by(&s, release_id, owner)?;
        let started = s
            .runs
            .values()
            .any(|r| &r.release_id == release_id && r.status != RunStatus::NotStarted);
        if started {
            return Err(PortError::ConditionFailed(format!(
                "release {release_id} has started runs"
            )));
        }
        s.releases.remove(release_id);
        s.runs.retain(|(id, _), _| id != release_id);
        s.outbox.retain(|(id, _), _| id != release_id);
        s.sequences.remove(release_id);
        s.token_at.retain(|(id, _), _| id != release_id);
        s.waiting_since.retain(|(id, _), _| id != release_id);
        Ok(())
    }

    async fn get(&self, release_id: &ReleaseId) -> PortResult<Option<StoredRelease>> {
        let s = lock(&self.state);
        Ok(s.releases.get(release_id).map(|r| StoredRelease {
            release: r.clone(),
            runs: s
                .runs
                .values()
                .filter(|run| &run.release_id == release_id)
                .cloned()
                .collect(),
        }))
    }

    async fn get_run(
        &self,
        release_id: &ReleaseId,
        pipeline: &str,
    ) -> PortResult<Option<RunRecord>> {
        let s = lock(&self.state);
        Ok(s.runs
            .get(&(release_id.clone(), pipeline.to_owned()))
            .cloned())
    }

    async fn record_start(
        &self,
        release_id: &ReleaseId,
        owner: &str,
        pipeline: &str,
        execution_id: &str,
        at: OffsetDateTime,
        events: &[crate::events::ReleaseEvent],
    ) -> PortResult<RunRecord> {
        let mut s = lock(&self.state);
        owned_by(&s, release_id, owner)?;
        let k = (release_id.clone(), pipeline.to_owned());
        let run = s
            .runs
            .get_mut(&k)
            .ok_or_else(|| PortError::NotFound(format!("run {pipeline} of {release_id}")))?;
        match run.execution_id.as_deref() {
            Some(existing) if existing != execution_id => {
                return Err(PortError::ConditionFailed(format!(
                    "run {pipeline} of {release_id} already has execution {existing}"
                )))
            }
            Some(_) => return Ok(run.clone()),
            None => {}
        }
        run.execution_id = Some(execution_id.to_owned());
        apply_status(run, RunStatus::InProgress, at);
        run.started_at = Some(at);
        let run = run.clone();
        s.enqueue(events);
        s.executions.insert(
            execution_id.to_owned(),
            RunKey {
                release_id: release_id.clone(),
                pipeline: pipeline.to_owned(),
            },
        );
        Ok(run)
    }

    async fn record_status(
        &self,
        key: &RunKey,
        status: RunStatus,
        at: OffsetDateTime,
        events: &[crate::events::ReleaseEvent],
    ) -> PortResult<Option<RunRecord>> {
        let mut s = lock(&self.state);
        let Some(run) = s
            .runs
            .get_mut(&(key.release_id.clone(), key.pipeline.clone()))
        else {
            return Ok(None);
        };
        let changed = apply_status(run, status, at);
        let run = run.clone();
        if changed {
            s.enqueue(events);
        }
        Ok(Some(run))
    }

    async fn record_skipped(
        &self,
        key: &RunKey,
        execution_id: &str,
        at: OffsetDateTime,
        events: &[crate::events::ReleaseEvent],
    ) -> PortResult<Option<RunRecord>> {
        let mut s = lock(&self.state);
        let Some(run) = s
            .runs
            .get_mut(&(key.release_id.clone(), key.pipeline.clone()))
        else {
            return Ok(None);
        };
        if run.status != RunStatus::NotStarted {
            return Ok(Some(run.clone()));
        }
        run.execution_id = Some(execution_id.to_owned());
        apply_status(run, RunStatus::Skipped, at);
        let run = run.clone();
        s.enqueue(events);
        Ok(Some(run))
    }

    async fn find_by_execution(&self, execution_id: &str) -> PortResult<Option<RunKey>> {
        Ok(lock(&self.state).executions.get(execution_id).cloned())
    }

    async fn set_token(
        &self,
        key: &RunKey,
        token: &str,
        at: OffsetDateTime,
    ) -> PortResult<RunRecord> {
        let mut s = lock(&self.state);
        let k = (key.release_id.clone(), key.pipeline.clone());
        let newer_stored = s.token_at.get(&k).is_some_and(|stored| *stored > at);
        let run = s.runs.get_mut(&k).ok_or_else(|| {
            PortError::NotFound(format!("run {} of {}", key.pipeline, key.release_id))
        })?;
        if newer_stored {
            return Ok(run.clone());
        }
        run.task_token = Some(token.to_owned());
        let run = run.clone();
        s.token_at.insert(k.clone(), at);
        s.waiting_since.insert(k, at);
        Ok(run)
    }

    async fn clear_token(&self, key: &RunKey, token: &str) -> PortResult<bool> {
        let mut s = lock(&self.state);
        let Some(run) = s
            .runs
            .get_mut(&(key.release_id.clone(), key.pipeline.clone()))
        else {
            return Ok(false);
        };
        if run.task_token.as_deref() == Some(token) {
            run.task_token = None;
            s.waiting_since
                .remove(&(key.release_id.clone(), key.pipeline.clone()));
            Ok(true)
        } else {
            Ok(false)
        }
    }

    async fn set_run_cause(&self, key: &RunKey, cause: &str) -> PortResult<()> {
        let mut s = lock(&self.state);
        if let Some(run) = s
            .runs
            .get_mut(&(key.release_id.clone(), key.pipeline.clone()))
        {
            run.cause = Some(cause.to_owned());
        }
        Ok(())
    }

    async fn mark_stop_abandoned(&self, key: &RunKey) -> PortResult<Option<RunRecord>> {
        let mut s = lock(&self.state);
        let Some(run) = s
            .runs
            .get_mut(&(key.release_id.clone(), key.pipeline.clone()))
        else {
            return Ok(None);
        };
        run.stop_abandoned = true;
        Ok(Some(run.clone()))
    }

    /// Least recently polled first (`waitingSince`, then release and pipeline). Nothing in
    /// memory can fail to decode, so nothing is skipped.
    async fn waiting_runs(&self) -> PortResult<Vec<RunRecord>> {
        let s = lock(&self.state);
        let mut runs: Vec<(Option<OffsetDateTime>, &RunRecord)> = s
            .runs
            .iter()
            .filter(|(_, r)| r.task_token.is_some())
            .map(|(k, r)| (s.waiting_since.get(k).copied(), r))
            .collect();
        // BTreeMap order (release, pipeline) breaks ties; the sort is stable.
        runs.sort_by_key(|(since, _)| *since);
        Ok(runs.into_iter().map(|(_, r)| r.clone()).collect())
    }

    async fn touch_waiting(&self, key: &RunKey, token: &str, at: OffsetDateTime) -> PortResult<()> {
        let mut s = lock(&self.state);
        let k = (key.release_id.clone(), key.pipeline.clone());
        let carries = s
            .runs
            .get(&k)
            .is_some_and(|r| r.task_token.as_deref() == Some(token));
        if carries {
            s.waiting_since.insert(k, at);
        }
        Ok(())
    }

    /// In order of request (requestedAt, then id), as DynamoDB's index lists them.
    async fn running_releases(&self) -> PortResult<Vec<ReleaseRecord>> {
        let s = lock(&self.state);
        let mut running: Vec<ReleaseRecord> = s
            .releases
            .values()
            .filter(|r| r.status == ReleaseStatus::Running)
            .cloned()
            .collect();
        running.sort_by_key(|r| r.requested_at);
        Ok(running)
    }

    async fn next_sequence(&self, release_id: &ReleaseId, count: u64) -> PortResult<u64> {
        let mut s = lock(&self.state);
        if !s.releases.contains_key(release_id) {
            return Err(PortError::NotFound(format!("release {release_id}")));
        }
        let last = s.sequences.entry(release_id.clone()).or_insert(0);
        let first = *last + 1;
        *last += count;
        Ok(first)
    }

    async fn update_release(
        &self,
        record: &ReleaseRecord,
        events: &[crate::events::ReleaseEvent],
    ) -> PortResult<()> {
        let mut s = lock(&self.state);
        let id = &record.release_id;
        let stored = s
            .releases
            .get_mut(id)
            .ok_or_else(|| PortError::NotFound(format!("release {id}")))?;
        if stored.version + 1 != record.version {
            return Err(PortError::ConditionFailed(format!(
                "release {id} is at version {}, not {}",
                stored.version,
                record.version.saturating_sub(1)
            )));
        }
        stored.owner = record.owner.clone();
        stored.status = record.status;
        stored.ended_at = record.ended_at;
        stored.cause = record.cause.clone();
        stored.stop_requested = record.stop_requested;
        stored.lifecycle = record.lifecycle.clone();
        stored.version = record.version;
        s.enqueue(events);
        Ok(())
    }

    async fn reset_run(&self, key: &RunKey, attempt: u32) -> PortResult<Option<RunRecord>> {
        let mut s = lock(&self.state);
        let k = (key.release_id.clone(), key.pipeline.clone());
        let Some(run) = s.runs.get_mut(&k) else {
            return Ok(None);
        };
        if !run.status.is_success() && run.attempt < attempt {
            reset_for_attempt(run, attempt);
            s.waiting_since.remove(&k);
        }
        Ok(s.runs.get(&k).cloned())
    }

    async fn outbox(
        &self,
        release_id: Option<&ReleaseId>,
        limit: usize,
    ) -> PortResult<Vec<crate::events::ReleaseEvent>> {
        let s = lock(&self.state);
        Ok(s.outbox
            .iter()
            .filter(|((id, _), _)| release_id.is_none_or(|r| r == id))
            .take(limit)
            .map(|(_, e)| e.clone())
            .collect())
    }

    async fn remove_from_outbox(&self, events: &[crate::events::ReleaseEvent]) -> PortResult<()> {
        let mut s = lock(&self.state);
        for e in events {
            s.outbox.remove(&(e.release_id.clone(), e.sequence));
        }
        Ok(())
    }

    async fn list_releases(&self, query: &ListQuery) -> PortResult<ReleasePage> {
        let s = lock(&self.state);
        let mut all: Vec<&ReleaseRecord> = s
            .releases
            .values()
            .filter(|r| query.status.is_none_or(|st| r.status == st))
            .collect();
        all.sort_by_key(|r| std::cmp::Reverse(list_order(r)));
        let after = query.next.as_deref();
        let page: Vec<ReleaseRecord> = all
            .into_iter()
            .filter(|r| after.is_none_or(|n| list_order(r).as_str() < n))
            .take(query.limit.max(1) + 1)
            .cloned()
            .collect();
        Ok(page_of(page, query.limit.max(1)))
    }

    async fn halt(&self) -> PortResult<Option<crate::gate::Halt>> {
        Ok(lock(&self.state).halt.clone())
    }

    async fn set_halt(
        &self,
        halt: Option<&crate::gate::Halt>,
    ) -> PortResult<Option<crate::gate::Halt>> {
        Ok(std::mem::replace(
            &mut lock(&self.state).halt,
            halt.cloned(),
        ))
    }
}

/// Scripted CodePipeline: which pipelines exist, what starts and polls answer; records every
/// call so tests can count them.
#[derive(Default)]
pub struct FakePipelines {
    state: Mutex<FakePipelinesState>,
}

#[derive(Default)]
struct FakePipelinesState {
    existing: Vec<String>,
    /// Execution status by execution id.
    statuses: HashMap<String, RunStatus>,
    /// Execution id by client request token.
    by_token: HashMap<String, String>,
    /// Errors to return from the next starts, in order.
    start_errors: Vec<StartError>,
    /// Errors the next starts answer after starting their execution (the answer was lost).
    lost_answers: Vec<StartError>,
    /// Every execution, in start order: what ListPipelineExecutions lists.
    history: Vec<FakeExecution>,
    /// The start time of later starts (`None`: the wall clock's now).
    now: Option<OffsetDateTime>,
    calls: Vec<String>,
    stops: Vec<(String, String, String, bool)>,
    /// What GetPipeline answers, by pipeline (default: V2, anything accepted).
    shapes: HashMap<String, crate::ports::PipelineShape>,
    /// Finished executions added by [`FakePipelines::add_past_execution`], newest last.
    past: Vec<(
        String,
        crate::ports::PastExecution,
        BTreeMap<String, String>,
    )>,
}

/// An execution in [`FakePipelines`]' history.
struct FakeExecution {
    pipeline: String,
    execution_id: String,
    started_at: OffsetDateTime,
    /// `trigger.triggerType`: `StartPipelineExecution` for the starts made through the port.
    trigger_type: String,
}

impl FakePipelines {
    pub fn with(names: &[&str]) -> Self {
        let f = Self::default();
        lock(&f.state).existing = names.iter().map(|n| n.to_string()).collect();
        f
    }

    /// Sets what GetPipelineExecution answers for an execution.
    pub fn set_status(&self, execution_id: &str, status: RunStatus) {
        lock(&self.state)
            .statuses
            .insert(execution_id.to_owned(), status);
    }

    /// The next starts fail with these errors, in order.
    pub fn fail_next_starts(&self, errors: Vec<StartError>) {
        lock(&self.state).start_errors = errors;
    }

    /// The next starts (after those failed by [`fail_next_starts`]) start their execution, as
    /// usual, then answer these errors, in order: the answer was lost (a Lambda timeout).
    ///
    /// [`fail_next_starts`]: FakePipelines::fail_next_starts
    pub fn start_then_fail_next(&self, errors: Vec<StartError>) {
        lock(&self.state).lost_answers = errors;
    }

    /// Later starts begin at `at` (their `startTime` in ListPipelineExecutions). Until this is
    /// called, a start begins at the wall clock's now.
    pub fn set_now(&self, at: OffsetDateTime) {
        lock(&self.state).now = Some(at);
    }

    /// What GetPipeline answers for `shape.name`.
    pub fn set_shape(&self, shape: crate::ports::PipelineShape) {
        lock(&self.state).shapes.insert(shape.name.clone(), shape);
    }

    /// Adds a past execution of `pipeline` (newer than those added before) and the variables
    /// GetPipelineExecution answers for it.
    pub fn add_past_execution(
        &self,
        pipeline: &str,
        execution: crate::ports::PastExecution,
        variables: BTreeMap<String, String>,
    ) {
        let mut s = lock(&self.state);
        s.statuses
            .insert(execution.execution_id.clone(), execution.status);
        s.past.push((pipeline.to_owned(), execution, variables));
    }

    /// Adds an execution of `pipeline` to its history (InProgress), as if something else
    /// started it: `trigger_type` as CodePipeline names it (`StartPipelineExecution`,
    /// `Webhook`, `CloudWatchEvent`, ...).
    pub fn add_execution(
        &self,
        pipeline: &str,
        execution_id: &str,
        started_at: OffsetDateTime,
        trigger_type: &str,
    ) {
        let mut s = lock(&self.state);
        s.statuses
            .insert(execution_id.to_owned(), RunStatus::InProgress);
        s.history.push(FakeExecution {
            pipeline: pipeline.to_owned(),
            execution_id: execution_id.to_owned(),
            started_at,
            trigger_type: trigger_type.to_owned(),
        });
    }

    /// Every call, as `Operation:pipeline`.
    pub fn calls(&self) -> Vec<String> {
        lock(&self.state).calls.clone()
    }

    /// Every stop: (pipeline, execution id, reason, abandon).
    pub fn stops(&self) -> Vec<(String, String, String, bool)> {
        lock(&self.state).stops.clone()
    }
}

#[async_trait]
impl Pipelines for FakePipelines {
    async fn find_started(
        &self,
        pipeline: &str,
        since: OffsetDateTime,
    ) -> PortResult<Option<String>> {
        let mut s = lock(&self.state);
        s.calls.push(format!("ListPipelineExecutions:{pipeline}"));
        if !s.existing.iter().any(|n| n == pipeline) {
            return Err(PortError::NotFound(format!("pipeline {pipeline}")));
        }
        Ok(s.history
            .iter()
            .filter(|e| {
                e.pipeline == pipeline
                    && e.trigger_type == "StartPipelineExecution"
                    && e.started_at >= since
            })
            .min_by_key(|e| e.started_at)
            .map(|e| e.execution_id.clone()))
    }

    async fn exists(&self, name: &str) -> PortResult<bool> {
        let mut s = lock(&self.state);
        s.calls.push(format!("GetPipeline:{name}"));
        Ok(s.existing.iter().any(|n| n == name))
    }

    async fn describe(&self, name: &str) -> PortResult<Option<crate::ports::PipelineShape>> {
        let mut s = lock(&self.state);
        s.calls.push(format!("GetPipeline:{name}"));
        if !s.existing.iter().any(|n| n == name) {
            return Ok(None);
        }
        Ok(Some(s.shapes.get(name).cloned().unwrap_or_else(|| {
            crate::ports::PipelineShape {
                name: name.to_owned(),
                pipeline_type: "V2".to_owned(),
                variables: None,
                source_actions: None,
            }
        })))
    }

    async fn recent_executions(
        &self,
        name: &str,
        limit: usize,
    ) -> PortResult<Vec<crate::ports::PastExecution>> {
        let mut s = lock(&self.state);
        s.calls.push(format!("ListPipelineExecutions:{name}"));
        if !s.existing.iter().any(|n| n == name) {
            return Err(PortError::NotFound(format!("pipeline {name}")));
        }
        Ok(s.past
            .iter()
            .rev()
            .filter(|(p, _, _)| p == name)
            .take(limit)
            .map(|(_, e, _)| e.clone())
            .collect())
    }

    async fn execution_variables(
        &self,
        name: &str,
        execution_id: &str,
    ) -> PortResult<BTreeMap<String, String>> {
        let mut s = lock(&self.state);
        s.calls.push(format!("GetPipelineExecution:{name}"));
        s.past
            .iter()
            .find(|(p, e, _)| p == name && e.execution_id == execution_id)
            .map(|(_, _, v)| v.clone())
            .ok_or_else(|| PortError::NotFound(format!("execution {execution_id} of {name}")))
    }

    async fn start(&self, spec: &PipelineSpec, token: &str) -> Result<String, StartError> {
        let mut s = lock(&self.state);
        s.calls
            .push(format!("StartPipelineExecution:{}", spec.name));
        if !s.start_errors.is_empty() {
            return Err(s.start_errors.remove(0));
        }
        if !s.existing.contains(&spec.name) {
            return Err(StartError::NotFound(spec.name.clone()));
        }
        let id = match s.by_token.get(token) {
            Some(id) => id.clone(),
            None => {
                let id = format!("exec-{}-{}", spec.name, s.by_token.len() + 1);
                s.by_token.insert(token.to_owned(), id.clone());
                s.statuses.insert(id.clone(), RunStatus::InProgress);
                let started_at = s.now.unwrap_or_else(OffsetDateTime::now_utc);
                s.history.push(FakeExecution {
                    pipeline: spec.name.clone(),
                    execution_id: id.clone(),
                    started_at,
                    trigger_type: "StartPipelineExecution".to_owned(),
                });
                id
            }
        };
        if !s.lost_answers.is_empty() {
            return Err(s.lost_answers.remove(0));
        }
        Ok(id)
    }

    async fn status(&self, pipeline: &str, execution_id: &str) -> PortResult<ExecutionStatus> {
        let mut s = lock(&self.state);
        s.calls.push(format!("GetPipelineExecution:{pipeline}"));
        let status = s
            .statuses
            .get(execution_id)
            .copied()
            .ok_or_else(|| PortError::NotFound(format!("execution {execution_id}")))?;
        Ok(ExecutionStatus {
            status,
            summary: None,
        })
    }

    async fn stop(
        &self,
        pipeline: &str,
        execution_id: &str,
        reason: &str,
        abandon: bool,
    ) -> PortResult<()> {
        let mut s = lock(&self.state);
        s.calls.push(format!("StopPipelineExecution:{pipeline}"));
        s.stops.push((
            pipeline.to_owned(),
            execution_id.to_owned(),
            reason.to_owned(),
            abandon,
        ));
        if let Some(st) = s.statuses.get_mut(execution_id) {
            if !st.is_terminal() {
                *st = RunStatus::Stopping;
            }
        }
        Ok(())
    }
}

/// What was sent for a token: the output, or (error, cause).
pub type SentToken = (String, Result<Value, (String, String)>);

/// Records every token sent; a token sent a second time answers AlreadyDone.
#[derive(Default)]
pub struct RecordingTokens {
    sent: Mutex<Vec<SentToken>>,
}

/// Task tokens for tests that send none.
pub static NO_TOKENS: RecordingTokens = RecordingTokens::new();

impl RecordingTokens {
    pub const fn new() -> Self {
        RecordingTokens {
            sent: Mutex::new(Vec::new()),
        }
    }

    /// Every (token, Ok(output) | Err((error, cause))) sent.
    pub fn sent(&self) -> Vec<SentToken> {
        lock(&self.sent).clone()
    }
}

#[async_trait]
impl TaskTokens for RecordingTokens {
    async fn succeed(&self, token: &str, output: &Value) -> PortResult<TokenDelivery> {
        let mut sent = lock(&self.sent);
        let again = sent.iter().any(|(t, _)| t == token);
        sent.push((token.to_owned(), Ok(output.clone())));
        Ok(if again {
            TokenDelivery::AlreadyDone
        } else {
            TokenDelivery::Delivered
        })
    }

    async fn fail(&self, token: &str, error: &str, cause: &str) -> PortResult<TokenDelivery> {
        let mut sent = lock(&self.sent);
        let again = sent.iter().any(|(t, _)| t == token);
        sent.push((token.to_owned(), Err((error.to_owned(), cause.to_owned()))));
        Ok(if again {
            TokenDelivery::AlreadyDone
        } else {
            TokenDelivery::Delivered
        })
    }
}

/// A clock that moves only when told.
pub struct ManualClock(Mutex<OffsetDateTime>);

impl ManualClock {
    pub fn new(start: OffsetDateTime) -> Self {
        Self(Mutex::new(start))
    }

    /// 2026-01-01T00:00:00Z.
    pub fn fixed() -> Self {
        Self::new(time::macros::datetime!(2026-01-01 00:00:00 UTC))
    }

    pub fn advance(&self, by: time::Duration) {
        *lock(&self.0) += by;
    }
}

impl Clock for ManualClock {
    fn now(&self) -> OffsetDateTime {
        *lock(&self.0)
    }

    /// A manual clock does not wait: it moves on by `d`.
    fn sleep(&self, d: std::time::Duration) -> futures::future::BoxFuture<'static, ()> {
        self.advance(time::Duration::try_from(d).unwrap_or(time::Duration::MAX));
        Box::pin(std::future::ready(()))
    }
}

/// S3 objects by (bucket, key).
#[derive(Default)]
pub struct FakeSource {
    objects: Mutex<HashMap<(String, String), Vec<u8>>>,
}

impl FakeSource {
    pub fn put(&self, bucket: &str, key: &str, body: impl Into<Vec<u8>>) {
        lock(&self.objects).insert((bucket.to_owned(), key.to_owned()), body.into());
    }
}

#[async_trait]
impl ManifestSource for FakeSource {
    async fn read(
        &self,
        bucket: &str,
        key: &str,
        _version_id: Option<&str>,
        max_bytes: usize,
    ) -> Result<Vec<u8>, SourceError> {
        let objects = lock(&self.objects);
        let body = objects
            .get(&(bucket.to_owned(), key.to_owned()))
            .ok_or_else(|| SourceError::NotFound {
                bucket: bucket.to_owned(),
                key: key.to_owned(),
            })?;
        if body.len() > max_bytes {
            return Err(SourceError::TooLarge {
                bucket: bucket.to_owned(),
                key: key.to_owned(),
                size: body.len() as u64,
                max: max_bytes,
            });
        }
        Ok(body.clone())
    }
}

/// Records StartExecution calls; fails them when told. DescribeExecution answers the state set
/// with [`FakeExecutions::set_state`], else Running for an execution it started, else `None`.
#[derive(Default)]
pub struct FakeExecutions {
    started: Mutex<Vec<(String, Value)>>,
    fail_with: Mutex<Option<PortError>>,
    states: Mutex<BTreeMap<String, ExecutionState>>,
    describe_fails_with: Mutex<Option<PortError>>,
    described: Mutex<Vec<String>>,
    stopped: Mutex<Vec<(String, String)>>,
}

/// Executions for tests that start or describe none.
pub static NO_EXECUTIONS: FakeExecutions = FakeExecutions::new();

impl FakeExecutions {
    pub const fn new() -> Self {
        FakeExecutions {
            started: Mutex::new(Vec::new()),
            fail_with: Mutex::new(None),
            states: Mutex::new(BTreeMap::new()),
            describe_fails_with: Mutex::new(None),
            described: Mutex::new(Vec::new()),
            stopped: Mutex::new(Vec::new()),
        }
    }

    /// The executions StopExecution was asked to stop, with the cause, in order. A stopped
    /// execution is described ABORTED from then on.
    pub fn stopped(&self) -> Vec<(String, String)> {
        lock(&self.stopped).clone()
    }

    pub fn started(&self) -> Vec<(String, Value)> {
        lock(&self.started).clone()
    }

    /// StartExecution fails with `e` from now on.
    pub fn fail_with(&self, e: PortError) {
        *lock(&self.fail_with) = Some(e);
    }

    /// What DescribeExecution answers for the execution `name` from now on.
    pub fn set_state(&self, name: &str, state: ExecutionState) {
        lock(&self.states).insert(name.to_owned(), state);
    }

    /// DescribeExecution fails with `e` from now on.
    pub fn fail_describes_with(&self, e: PortError) {
        *lock(&self.describe_fails_with) = Some(e);
    }

    /// The names DescribeExecution was asked about, in order.
    pub fn described(&self) -> Vec<String> {
        lock(&self.described).clone()
    }
}

#[async_trait]
impl Executions for FakeExecutions {
    async fn describe(&self, name: &str) -> PortResult<Option<ExecutionState>> {
        lock(&self.described).push(name.to_owned());
        if let Some(e) = lock(&self.describe_fails_with).clone() {
            return Err(e);
        }
        if let Some(state) = lock(&self.states).get(name) {
            return Ok(Some(state.clone()));
        }
        let started = lock(&self.started).iter().any(|(n, _)| n == name);
        Ok(started.then_some(ExecutionState {
            status: ExecutionRunState::Running,
            error: None,
            cause: None,
        }))
    }

    async fn start(&self, name: &str, input: &Value) -> PortResult<String> {
        if let Some(e) = lock(&self.fail_with).clone() {
            return Err(e);
        }
        lock(&self.started).push((name.to_owned(), input.clone()));
        Ok(format!(
            "arn:aws:states:us-east-1:123456789012:execution:release-machine:{name}"
        ))
    }

    async fn stop(&self, name: &str, error: &str, cause: &str) -> PortResult<()> {
        lock(&self.stopped).push((name.to_owned(), cause.to_owned()));
        lock(&self.states).insert(
            name.to_owned(),
            ExecutionState {
                status: ExecutionRunState::Aborted,
                error: Some(error.to_owned()),
                cause: Some(cause.to_owned()),
            },
        );
        Ok(())
    }
}

/// An event bus in memory: keeps every event put, in order; rejects the next puts' entries when
/// told (PutEvents' partial failure).
#[derive(Default)]
pub struct MemoryBus {
    events: Mutex<Vec<crate::events::ReleaseEvent>>,
    reject_next: Mutex<usize>,
}

/// A bus for tests that do not look at events.
pub static NO_BUS: MemoryBus = MemoryBus::new();

impl MemoryBus {
    pub const fn new() -> Self {
        MemoryBus {
            events: Mutex::new(Vec::new()),
            reject_next: Mutex::new(0),
        }
    }

    /// Every event put (and accepted), in order; duplicates included.
    pub fn events(&self) -> Vec<crate::events::ReleaseEvent> {
        lock(&self.events).clone()
    }

    /// The next `n` entries put are rejected (every other entry, starting with the first).
    pub fn reject_next(&self, n: usize) {
        *lock(&self.reject_next) = n;
    }
}

#[async_trait]
impl crate::events::EventBus for MemoryBus {
    async fn put(&self, events: &[crate::events::ReleaseEvent]) -> PortResult<Vec<usize>> {
        let mut rejected = Vec::new();
        let mut reject = lock(&self.reject_next);
        let mut kept = lock(&self.events);
        for (i, e) in events.iter().enumerate() {
            if *reject > 0 && i % 2 == 0 {
                *reject -= 1;
                rejected.push(i);
            } else {
                kept.push(e.clone());
            }
        }
        Ok(rejected)
    }
}

/// CloudWatch alarms as given, with their history; or an error.
#[derive(Default)]
pub struct FakeAlarms {
    pub alarms: Mutex<Vec<AlarmState>>,
    pub history: Mutex<Vec<crate::ports::AlarmTransition>>,
    pub error: Mutex<Option<PortError>>,
}

/// Sensors that see no alarm and no AWS Health issue, for tests that have no gates.
pub static NO_ALARMS: FakeAlarms = FakeAlarms::new();
/// See [`NO_ALARMS`].
pub static NO_HEALTH: FakeHealth = FakeHealth::new();

/// [`NO_ALARMS`] and [`NO_HEALTH`].
pub fn no_sensors() -> Sensors<'static> {
    Sensors {
        alarms: &NO_ALARMS,
        health: &NO_HEALTH,
    }
}

impl FakeAlarms {
    pub const fn new() -> Self {
        Self {
            alarms: Mutex::new(Vec::new()),
            history: Mutex::new(Vec::new()),
            error: Mutex::new(None),
        }
    }

    pub fn with(alarms: Vec<AlarmState>) -> Self {
        Self {
            alarms: Mutex::new(alarms),
            ..Self::default()
        }
    }

    /// Sets an alarm's state at `at` (adding it if new) and records the transition.
    pub fn set(&self, name: &str, state: AlarmValue, at: OffsetDateTime) {
        let mut alarms = lock(&self.alarms);
        match alarms.iter_mut().find(|a| a.name == name) {
            Some(a) => {
                a.state = state;
                a.transitioned_at = Some(at);
            }
            None => alarms.push(AlarmState {
                name: name.to_owned(),
                state,
                actions_enabled: true,
                reason: None,
                transitioned_at: Some(at),
            }),
        }
        lock(&self.history).push(crate::ports::AlarmTransition {
            name: name.to_owned(),
            at,
            state,
        });
    }
}

#[async_trait]
impl Alarms for FakeAlarms {
    async fn describe(&self, names: &[String], prefixes: &[String]) -> PortResult<Vec<AlarmState>> {
        if let Some(e) = lock(&self.error).clone() {
            return Err(e);
        }
        Ok(lock(&self.alarms)
            .iter()
            .filter(|a| names.contains(&a.name) || prefixes.iter().any(|p| a.name.starts_with(p)))
            .cloned()
            .collect())
    }

    async fn history(
        &self,
        names: &[String],
        prefixes: &[String],
        since: OffsetDateTime,
    ) -> PortResult<Vec<crate::ports::AlarmTransition>> {
        if let Some(e) = lock(&self.error).clone() {
            return Err(e);
        }
        Ok(lock(&self.history)
            .iter()
            .filter(|t| t.at >= since)
            .filter(|t| names.contains(&t.name) || prefixes.iter().any(|p| t.name.starts_with(p)))
            .cloned()
            .collect())
    }
}

/// AWS Health issues as given; or an error.
#[derive(Default)]
pub struct FakeHealth {
    pub issues: Mutex<Vec<HealthIssue>>,
    pub error: Mutex<Option<PortError>>,
}

impl FakeHealth {
    pub const fn new() -> Self {
        Self {
            issues: Mutex::new(Vec::new()),
            error: Mutex::new(None),
        }
    }
}

#[async_trait]
impl HealthEvents for FakeHealth {
    async fn open_issues(
        &self,
        regions: &[String],
        services: &[String],
    ) -> PortResult<Vec<HealthIssue>> {
        if let Some(e) = lock(&self.error).clone() {
            return Err(e);
        }
        Ok(lock(&self.issues)
            .iter()
            .filter(|i| regions.is_empty() || regions.contains(&i.region))
            .filter(|i| services.is_empty() || services.contains(&i.service))
            .cloned()
            .collect())
    }
}

/// Records job results: (job id, passed, message); and held jobs: (job id, continuation
/// token, message).
#[derive(Default)]
pub struct RecordingJobs {
    results: Mutex<Vec<(String, bool, String)>>,
    holds: Mutex<Vec<(String, String, String)>>,
}

impl RecordingJobs {
    pub fn results(&self) -> Vec<(String, bool, String)> {
        lock(&self.results).clone()
    }

    pub fn holds(&self) -> Vec<(String, String, String)> {
        lock(&self.holds).clone()
    }
}

#[async_trait]
impl JobResults for RecordingJobs {
    async fn succeed(&self, job_id: &str, message: &str) -> PortResult<()> {
        lock(&self.results).push((job_id.to_owned(), true, message.to_owned()));
        Ok(())
    }

    async fn fail(&self, job_id: &str, message: &str) -> PortResult<()> {
        lock(&self.results).push((job_id.to_owned(), false, message.to_owned()));
        Ok(())
    }

    async fn hold(&self, job_id: &str, continuation_token: &str, message: &str) -> PortResult<()> {
        lock(&self.holds).push((
            job_id.to_owned(),
            continuation_token.to_owned(),
            message.to_owned(),
        ));
        Ok(())
    }
}

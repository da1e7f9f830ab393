//! The ports the use cases need. Adapters: `rm-aws` (DynamoDB, CodePipeline, S3, Step
//! Functions, CloudWatch, Health) and `rm-local` (SQLite, simulated pipelines, virtual clock).
//!
//! Ports come in families, one struct per family of use cases ([`RunPorts`] for the release
//! run, [`ManifestPorts`] for the manifest check, [`ApiPorts`] for the API, [`GatePorts`] for
//! the gate): a use case takes its family's struct, never a list of positional ports.

use crate::error::PortError;
use crate::events::ReleaseEvent;
use crate::manifest::{Manifest, PipelineSpec};
use crate::release::{
    ReleaseId, ReleaseRecord, ReleaseStatus, RunRecord, RunStatus, StoredRelease,
};
use async_trait::async_trait;
use serde_json::Value;
use time::OffsetDateTime;

pub type PortResult<T> = Result<T, PortError>;

/// The outcome of claiming a release id.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Claim {
    /// This owner holds the release (a first claim, or a retry by the same owner).
    Claimed,
    /// Another owner holds it.
    Duplicate { owner: String },
}

/// A new release to claim: the release item and one run item per pipeline, all NotStarted.
#[derive(Debug, Clone)]
pub struct NewRelease {
    pub record: ReleaseRecord,
    pub manifest: Manifest,
    /// The claim's events (the release's first sequence numbers, from 1): written to the
    /// outbox with the claim; the release's sequence counter starts after the last.
    pub events: Vec<ReleaseEvent>,
}

/// Where a run's lookup by CodePipeline execution id leads.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RunKey {
    pub release_id: ReleaseId,
    pub pipeline: String,
}

/// Releases and pipeline runs. Every write to a release after the claim is conditional on its
/// owner; status changes of a run never move backwards (see [`RunStatus::rank`]).
#[async_trait]
pub trait ReleaseStore: Send + Sync {
    /// Claims the release id with one conditional write (`attribute_not_exists(pk) OR owner =
    /// :me`) and writes the run items. Retrying with the same owner passes.
    async fn claim(&self, release: &NewRelease) -> PortResult<Claim>;

    /// Gives up a claim that never started (the API's StartExecution failed): deletes the
    /// release and its runs if `owner` still holds it and nothing was started.
    async fn release_claim(&self, release_id: &ReleaseId, owner: &str) -> PortResult<()>;

    /// The release and all its runs; `None` if unknown.
    async fn get(&self, release_id: &ReleaseId) -> PortResult<Option<StoredRelease>>;

    /// The release item alone, without its runs: what a task needs to check a flag. The
    /// default reads the whole release; stores override it with a single-item read.
    async fn release_record(&self, release_id: &ReleaseId) -> PortResult<Option<ReleaseRecord>> {
        Ok(self.get(release_id).await?.map(|s| s.release))
    }

    /// One run.
    async fn get_run(
        &self,
        release_id: &ReleaseId,
        pipeline: &str,
    ) -> PortResult<Option<RunRecord>>;

    /// Records that a run was started with `execution_id` (status InProgress, startedAt, a
    /// history entry) and indexes the execution id. Idempotent for the same execution id.
    /// `events` (the run's `Pipeline Run Status Change`) go to the outbox in the same write,
    /// only if this write records the start (not on an idempotent repeat).
    async fn record_start(
        &self,
        release_id: &ReleaseId,
        owner: &str,
        pipeline: &str,
        execution_id: &str,
        at: OffsetDateTime,
        events: &[ReleaseEvent],
    ) -> PortResult<RunRecord>;

    /// Records a status change of a run (history entry with its time, attempt and execution
    /// id: [`HistoryEntry::of`]). Ignored — returns the unchanged run — when the run already
    /// has this status or a later one. Terminal statuses set endedAt. `events` go to the
    /// outbox in the same write, only if the change is recorded. Returns the run after the
    /// update, `None` if the run is unknown.
    ///
    /// [`HistoryEntry::of`]: crate::release::HistoryEntry::of
    async fn record_status(
        &self,
        key: &RunKey,
        status: RunStatus,
        at: OffsetDateTime,
        events: &[ReleaseEvent],
    ) -> PortResult<Option<RunRecord>>;

    /// Records a NotStarted run `Skipped` (`skipUnchanged`): its history entry, endedAt, and
    /// `executionId` = the earlier execution it matches. No execution-id item is written: that
    /// execution is not this run's to follow. Ignored — returns the run unchanged — when the
    /// run is no longer NotStarted; `None` if the run is unknown. `events` go to the outbox in
    /// the same write, only if it is recorded.
    async fn record_skipped(
        &self,
        key: &RunKey,
        execution_id: &str,
        at: OffsetDateTime,
        events: &[ReleaseEvent],
    ) -> PortResult<Option<RunRecord>>;

    /// Finds the run of a CodePipeline execution id (an item keyed by the execution id).
    async fn find_by_execution(&self, execution_id: &str) -> PortResult<Option<RunKey>>;

    /// Stores the waiting task's token on the run at `at` (`tokenAt`; the sweep's index orders
    /// waiting runs by `waitingSince`, set to `at` too), replacing a token stored at the same
    /// time or earlier. A token stored later (a newer attempt of the task: Step Functions
    /// retried it while this invocation still ran) is never replaced (issue 9, fault 9): the
    /// write is conditional and the run is returned unchanged, still carrying the newer token,
    /// so the caller compares `task_token` to see which happened. Returns the run after the
    /// write, so the caller sees a terminal status that arrived first.
    async fn set_token(
        &self,
        key: &RunKey,
        token: &str,
        at: OffsetDateTime,
    ) -> PortResult<RunRecord>;

    /// Removes the token if it is still `token` (a newer token is kept). True if removed.
    async fn clear_token(&self, key: &RunKey, token: &str) -> PortResult<bool>;

    /// Marks the run `stopAbandoned`: the release stopped waiting for it to stop. Returns the
    /// run after the write, `None` if the run is unknown.
    async fn mark_stop_abandoned(&self, key: &RunKey) -> PortResult<Option<RunRecord>>;

    /// Records why the run did not succeed (`pipeline busy`), when the release machine decided
    /// it. Nothing if the run is unknown.
    async fn set_run_cause(&self, key: &RunKey, cause: &str) -> PortResult<()>;

    /// Runs that carry a task token: what the sweep polls, least recently polled first
    /// (ordered by `waitingSince`). Items that cannot be decoded are skipped and logged, never
    /// an error for the whole list (issue 9, fault 8).
    async fn waiting_runs(&self) -> PortResult<Vec<RunRecord>>;

    /// The sweep polled this waiting run at `at`: moves it to the back of [`waiting_runs`]'s
    /// order (sets `waitingSince`), if it still carries `token`; otherwise nothing. So a
    /// time-boxed sweep continues where the last one stopped.
    ///
    /// [`waiting_runs`]: ReleaseStore::waiting_runs
    async fn touch_waiting(&self, key: &RunKey, token: &str, at: OffsetDateTime) -> PortResult<()>;

    /// Every release whose status is RUNNING (the sweep reconciles each with its execution).
    /// Undecodable items are skipped and logged.
    async fn running_releases(&self) -> PortResult<Vec<ReleaseRecord>>;

    /// Allocates `count` consecutive event sequence numbers of the release (an atomic counter
    /// on the release item, apart from its version) and returns the first. Numbers of a write
    /// that then fails are never used: the sequence has gaps, never repeats.
    async fn next_sequence(&self, release_id: &ReleaseId, count: u64) -> PortResult<u64>;

    /// Writes the release item's mutable fields (`owner`, `status`, `endedAt`, `cause`,
    /// `stopRequested`, `lifecycle`, `version`) as `record` has them, on condition that the
    /// stored version is `record.version - 1` (`PortError::ConditionFailed` otherwise: someone
    /// else wrote it since it was read; read again and decide again), and puts `events` in the
    /// outbox in the same write. A RUNNING release is listed by [`running_releases`], an ended
    /// one is not.
    ///
    /// [`running_releases`]: ReleaseStore::running_releases
    async fn update_release(
        &self,
        record: &ReleaseRecord,
        events: &[ReleaseEvent],
    ) -> PortResult<()>;

    /// A retry re-runs this run as `attempt`: NotStarted, no execution, start, end, token,
    /// cause or stopAbandoned; its history is kept. On condition that it did not succeed and
    /// its attempt is older (a repeat for the same attempt changes nothing). Returns the run
    /// after the write, `None` if unknown.
    async fn reset_run(&self, key: &RunKey, attempt: u32) -> PortResult<Option<RunRecord>>;

    /// Events in the outbox, not yet published: of one release, or of every release; in
    /// sequence order per release; at most `limit`.
    async fn outbox(
        &self,
        release_id: Option<&ReleaseId>,
        limit: usize,
    ) -> PortResult<Vec<ReleaseEvent>>;

    /// Removes published events from the outbox (unknown ones are ignored).
    async fn remove_from_outbox(&self, events: &[ReleaseEvent]) -> PortResult<()>;

    /// Releases newest first (by requestedAt, then id), optionally only those in `status`; at
    /// most `limit`, continuing after the page token `next` a previous page returned.
    async fn list_releases(&self, query: &ListQuery) -> PortResult<ReleasePage>;

    /// The stack-wide halt, if it is on.
    async fn halt(&self) -> PortResult<Option<crate::gate::Halt>>;

    /// Turns the halt on (`Some`) or off (`None`); returns the halt it replaced.
    async fn set_halt(
        &self,
        halt: Option<&crate::gate::Halt>,
    ) -> PortResult<Option<crate::gate::Halt>>;
}

/// What `list_releases` lists.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ListQuery {
    pub status: Option<ReleaseStatus>,
    pub limit: usize,
    /// The page token of the previous page.
    pub next: Option<String>,
}

/// A page of releases.
#[derive(Debug, Clone, PartialEq)]
pub struct ReleasePage {
    pub releases: Vec<ReleaseRecord>,
    /// Present when more releases follow.
    pub next: Option<String>,
}

/// Why CodePipeline refused to start a pipeline.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum StartError {
    #[error("pipeline {0} does not exist")]
    NotFound(String),
    #[error("{0}")]
    NotStartable(String),
    /// The pipeline is busy (ConflictException) or its execution queue is full
    /// (ConcurrentPipelineExecutionsLimitExceededException): try again later.
    #[error("pipeline busy: {0}")]
    Busy(String),
    #[error(transparent)]
    Port(#[from] PortError),
}

/// A pipeline execution's status as CodePipeline reports it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExecutionStatus {
    pub status: RunStatus,
    pub summary: Option<String>,
}

/// A pipeline's declaration as GetPipeline returns it: what `plan` checks a manifest against.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct PipelineShape {
    pub name: String,
    /// `V1` or `V2` (GetPipeline's `pipelineType`; absent means V1).
    pub pipeline_type: String,
    /// The pipeline-level variables it declares, by name. None: not known (a sim file that
    /// does not list them), so any variable is accepted.
    pub variables: Option<Vec<String>>,
    /// Its source actions (category `Source`). None: not known, so any action is accepted.
    pub source_actions: Option<Vec<SourceAction>>,
}

/// A source action of a pipeline.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct SourceAction {
    pub name: String,
    /// `actionTypeId.provider`: CodeCommit, CodeStarSourceConnection, GitHub, ECR, S3, ...
    /// Empty when not known (a sim file that lists names only): any revision type is accepted.
    pub provider: String,
    /// The action's `configuration` (e.g. S3's `AllowOverrideForS3ObjectKey`).
    pub configuration: std::collections::BTreeMap<String, String>,
}

/// A past execution of a pipeline, as ListPipelineExecutions summarises it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PastExecution {
    pub execution_id: String,
    pub status: RunStatus,
    /// `trigger.triggerType` (StartPipelineExecution, Webhook, ...), when given.
    pub trigger_type: Option<String>,
    pub started_at: Option<OffsetDateTime>,
    /// `lastUpdateTime`: for a finished execution, when it ended.
    pub last_update: Option<OffsetDateTime>,
    /// `sourceRevisions`: the revision id each source action ran, by action name.
    pub source_revisions: std::collections::BTreeMap<String, String>,
}

/// CodePipeline.
#[async_trait]
pub trait Pipelines: Send + Sync {
    /// GetPipeline: does it exist?
    async fn exists(&self, name: &str) -> PortResult<bool>;

    /// StartPipelineExecution with the spec's variables and revisions. The same
    /// `client_request_token` never starts a pipeline twice.
    async fn start(
        &self,
        spec: &PipelineSpec,
        client_request_token: &str,
    ) -> Result<String, StartError>;

    /// ListPipelineExecutions: the earliest execution of `pipeline` triggered by
    /// StartPipelineExecution at or after `since` (newest first pages are read until older
    /// than `since`). What a retried start uses when the first attempt's answer was lost and
    /// CodePipeline did not return the same execution for the client request token.
    async fn find_started(
        &self,
        pipeline: &str,
        since: OffsetDateTime,
    ) -> PortResult<Option<String>>;

    /// GetPipeline: the pipeline's declaration; None when it does not exist.
    async fn describe(&self, name: &str) -> PortResult<Option<PipelineShape>>;

    /// ListPipelineExecutions: up to `limit` of the pipeline's executions, newest first (any
    /// trigger, rollbacks included).
    async fn recent_executions(&self, name: &str, limit: usize) -> PortResult<Vec<PastExecution>>;

    /// GetPipelineExecution: the pipeline-level variables an execution resolved, by name.
    async fn execution_variables(
        &self,
        name: &str,
        execution_id: &str,
    ) -> PortResult<std::collections::BTreeMap<String, String>>;

    /// GetPipelineExecution.
    async fn status(&self, pipeline: &str, execution_id: &str) -> PortResult<ExecutionStatus>;

    /// StopPipelineExecution. Stopping an execution that is already stopping or finished is
    /// not an error.
    async fn stop(
        &self,
        pipeline: &str,
        execution_id: &str,
        reason: &str,
        abandon: bool,
    ) -> PortResult<()>;
}

/// Where a manifest is read from (S3).
#[async_trait]
pub trait ManifestSource: Send + Sync {
    /// The object's bytes; at most `max_bytes` are read, a larger object is an error.
    async fn read(
        &self,
        bucket: &str,
        key: &str,
        version_id: Option<&str>,
        max_bytes: usize,
    ) -> Result<Vec<u8>, SourceError>;
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SourceError {
    #[error("s3://{bucket}/{key} does not exist")]
    NotFound { bucket: String, key: String },
    /// The object may exist but could not be read by this caller (S3 answers AccessDenied for
    /// a missing key too when the caller lacks s3:ListBucket).
    #[error("s3://{bucket}/{key} could not be read: {reason}")]
    Unreadable {
        bucket: String,
        key: String,
        reason: String,
    },
    #[error("s3://{bucket}/{key} is {size} bytes; a manifest is at most {max} bytes")]
    TooLarge {
        bucket: String,
        key: String,
        size: u64,
        max: usize,
    },
    #[error(transparent)]
    Port(#[from] PortError),
}

/// Whether a task token was delivered.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TokenDelivery {
    Delivered,
    /// TaskTimedOut or InvalidToken: the task already ended (completed, timed out, aborted).
    AlreadyDone,
}

/// Step Functions task tokens (SendTaskSuccess / SendTaskFailure).
#[async_trait]
pub trait TaskTokens: Send + Sync {
    async fn succeed(&self, token: &str, output: &Value) -> PortResult<TokenDelivery>;
    async fn fail(&self, token: &str, error: &str, cause: &str) -> PortResult<TokenDelivery>;
}

/// A Step Functions execution's status, as DescribeExecution and the "Step Functions
/// Execution Status Change" event name it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum ExecutionRunState {
    Running,
    Succeeded,
    Failed,
    TimedOut,
    Aborted,
    PendingRedrive,
}

/// What DescribeExecution says about an execution of the release state machine.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExecutionState {
    pub status: ExecutionRunState,
    pub error: Option<String>,
    pub cause: Option<String>,
}

/// Step Functions: StartExecution (the API) and DescribeExecution (the reconciler's sweep).
#[async_trait]
pub trait Executions: Send + Sync {
    /// Starts the release state machine under `name` with `input`; returns the execution ARN.
    async fn start(&self, name: &str, input: &Value) -> PortResult<String>;

    /// DescribeExecution of the release state machine's execution named `name`; `None` if
    /// there is no such execution (ExecutionDoesNotExist).
    async fn describe(&self, name: &str) -> PortResult<Option<ExecutionState>>;

    /// StopExecution of the execution named `name` (a cancel). Stopping an execution that has
    /// already ended, or does not exist, is not an error.
    async fn stop(&self, name: &str, error: &str, cause: &str) -> PortResult<()>;
}

/// The time, so tests and the local run control it.
pub trait Clock: Send + Sync {
    fn now(&self) -> OffsetDateTime;

    /// Waits `d` (a backoff inside a task): tokio time by default, which the local run's
    /// paused runtime makes virtual; a manual test clock advances itself instead.
    fn sleep(&self, d: std::time::Duration) -> futures::future::BoxFuture<'static, ()> {
        Box::pin(tokio::time::sleep(d))
    }
}

/// The wall clock.
pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> OffsetDateTime {
        OffsetDateTime::now_utc()
    }
}

/// A CloudWatch alarm's state value, as CloudWatch names it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum AlarmValue {
    Ok,
    Alarm,
    InsufficientData,
}

impl AlarmValue {
    pub const fn as_str(self) -> &'static str {
        match self {
            AlarmValue::Ok => "OK",
            AlarmValue::Alarm => "ALARM",
            AlarmValue::InsufficientData => "INSUFFICIENT_DATA",
        }
    }
}

impl std::fmt::Display for AlarmValue {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

impl std::str::FromStr for AlarmValue {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        [
            AlarmValue::Ok,
            AlarmValue::Alarm,
            AlarmValue::InsufficientData,
        ]
        .into_iter()
        .find(|v| v.as_str() == s)
        .ok_or_else(|| format!("{s:?} is not an alarm state (OK, ALARM, INSUFFICIENT_DATA)"))
    }
}

/// A CloudWatch alarm's state.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AlarmState {
    pub name: String,
    pub state: AlarmValue,
    pub actions_enabled: bool,
    pub reason: Option<String>,
    /// When the alarm last changed state (`StateTransitionedTimestamp`; unlike
    /// `StateUpdatedTimestamp` it does not move on evaluation-state changes).
    pub transitioned_at: Option<OffsetDateTime>,
}

/// A state change of an alarm (DescribeAlarmHistory, `StateUpdate` items).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AlarmTransition {
    pub name: String,
    pub at: OffsetDateTime,
    /// The state it changed to.
    pub state: AlarmValue,
}

/// CloudWatch alarms.
#[async_trait]
pub trait Alarms: Send + Sync {
    /// Alarms with these exact names, and alarms whose names start with these prefixes.
    async fn describe(&self, names: &[String], prefixes: &[String]) -> PortResult<Vec<AlarmState>>;

    /// State changes since `since` (inclusive) of the alarms with these names or prefixes,
    /// oldest first: a bake's look back, which catches a flap a once-a-minute look misses.
    async fn history(
        &self,
        names: &[String],
        prefixes: &[String],
        since: OffsetDateTime,
    ) -> PortResult<Vec<AlarmTransition>>;
}

/// An open AWS Health issue.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HealthIssue {
    pub service: String,
    pub region: String,
    pub event_type_code: String,
    pub arn: String,
}

/// AWS Health.
#[async_trait]
pub trait HealthEvents: Send + Sync {
    /// Open events of category "issue" for these regions and services (empty = all).
    async fn open_issues(
        &self,
        regions: &[String],
        services: &[String],
    ) -> PortResult<Vec<HealthIssue>>;
}

/// CodePipeline job results, for the health gate.
#[async_trait]
pub trait JobResults: Send + Sync {
    async fn succeed(&self, job_id: &str, message: &str) -> PortResult<()>;
    async fn fail(&self, job_id: &str, message: &str) -> PortResult<()>;
    /// PutJobSuccessResult with a continuation token: the action is not done, CodePipeline
    /// invokes the function again later (a new job carrying the token).
    async fn hold(&self, job_id: &str, continuation_token: &str, message: &str) -> PortResult<()>;
}

/// What the gates look at besides the store: CloudWatch alarms and AWS Health.
#[derive(Clone, Copy)]
pub struct Sensors<'a> {
    pub alarms: &'a dyn Alarms,
    pub health: &'a dyn HealthEvents,
}

/// The release run: start, await, record, stop, sweep, reconcile, the gates between waves.
#[derive(Clone, Copy)]
pub struct RunPorts<'a> {
    pub sensors: Sensors<'a>,
    pub store: &'a dyn ReleaseStore,
    pub pipelines: &'a dyn Pipelines,
    pub tokens: &'a dyn TaskTokens,
    pub executions: &'a dyn Executions,
    pub bus: &'a dyn crate::events::EventBus,
    pub clock: &'a dyn Clock,
}

impl<'a> RunPorts<'a> {
    /// What writing a release change needs.
    pub fn writer(&self) -> crate::usecases::Writer<'a> {
        crate::usecases::Writer {
            store: self.store,
            bus: self.bus,
            clock: self.clock,
        }
    }
}

/// Claiming a release id: what the manifest check and the API share.
#[derive(Clone, Copy)]
pub struct ClaimPorts<'a> {
    pub store: &'a dyn ReleaseStore,
    pub pipelines: &'a dyn Pipelines,
    pub bus: &'a dyn crate::events::EventBus,
    pub clock: &'a dyn Clock,
}

/// The manifest check: read, validate, check the pipelines, claim.
#[derive(Clone, Copy)]
pub struct ManifestPorts<'a> {
    pub store: &'a dyn ReleaseStore,
    pub pipelines: &'a dyn Pipelines,
    pub source: &'a dyn ManifestSource,
    pub bus: &'a dyn crate::events::EventBus,
    pub clock: &'a dyn Clock,
}

impl<'a> ManifestPorts<'a> {
    pub fn claim(&self) -> ClaimPorts<'a> {
        ClaimPorts {
            store: self.store,
            pipelines: self.pipelines,
            bus: self.bus,
            clock: self.clock,
        }
    }
}

/// The API: submit a release, read releases, operate them, the halt.
#[derive(Clone, Copy)]
pub struct ApiPorts<'a> {
    pub sensors: Sensors<'a>,
    pub store: &'a dyn ReleaseStore,
    pub pipelines: &'a dyn Pipelines,
    pub executions: &'a dyn Executions,
    pub tokens: &'a dyn TaskTokens,
    pub bus: &'a dyn crate::events::EventBus,
    pub clock: &'a dyn Clock,
}

impl<'a> ApiPorts<'a> {
    /// What writing a release change needs.
    pub fn writer(&self) -> crate::usecases::Writer<'a> {
        crate::usecases::Writer {
            store: self.store,
            bus: self.bus,
            clock: self.clock,
        }
    }

    pub fn claim(&self) -> ClaimPorts<'a> {
        ClaimPorts {
            store: self.store,
            pipelines: self.pipelines,
            bus: self.bus,
            clock: self.clock,
        }
    }

    /// The run's ports (a halt change resumes waiting releases at once).
    pub fn run(&self) -> RunPorts<'a> {
        RunPorts {
            sensors: self.sensors,
            store: self.store,
            pipelines: self.pipelines,
            tokens: self.tokens,
            executions: self.executions,
            bus: self.bus,
            clock: self.clock,
        }
    }
}

/// The gate: alarms, AWS Health, and the CodePipeline job it answers.
#[derive(Clone, Copy)]
pub struct GatePorts<'a> {
    pub alarms: &'a dyn Alarms,
    pub health: &'a dyn HealthEvents,
    /// The halt, and the release that started the execution.
    pub store: &'a dyn ReleaseStore,
    pub clock: &'a dyn Clock,
    pub jobs: &'a dyn JobResults,
}

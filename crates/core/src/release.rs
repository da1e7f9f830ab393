//! Releases, pipeline runs and their statuses.

use serde::{Deserialize, Serialize};
use std::fmt;
use time::OffsetDateTime;

/// A validated release id: 1 to 80 letters, digits, `.`, `_` or `-`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(transparent)]
pub struct ReleaseId(String);

impl ReleaseId {
    pub const MAX_LEN: usize = 80;

    /// Checks the id's rules; the error says what is wrong with it.
    pub fn parse(raw: &str) -> Result<Self, String> {
        if raw.is_empty() {
            return Err("must not be empty".into());
        }
        if raw.chars().count() > Self::MAX_LEN {
            return Err(format!(
                "is {} characters long; at most {} are allowed",
                raw.chars().count(),
                Self::MAX_LEN
            ));
        }
        if let Some(bad) = raw
            .chars()
            .find(|c| !(c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-')))
        {
            return Err(format!(
                "contains {bad:?}; only letters, digits, '.', '_' and '-' are allowed"
            ));
        }
        Ok(Self(raw.to_owned()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The key of stack-wide events (`Halt Status Change`), which belong to no release.
    pub fn stack() -> Self {
        Self("halt".to_owned())
    }
}

impl fmt::Display for ReleaseId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// RUNNING -> SUCCEEDED | FAILED | CANCELLED.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum ReleaseStatus {
    Running,
    Succeeded,
    Failed,
    Cancelled,
}

impl ReleaseStatus {
    pub const ALL: [ReleaseStatus; 4] = [
        Self::Running,
        Self::Succeeded,
        Self::Failed,
        Self::Cancelled,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Running => "RUNNING",
            Self::Succeeded => "SUCCEEDED",
            Self::Failed => "FAILED",
            Self::Cancelled => "CANCELLED",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|st| st.as_str() == s)
    }

    /// A FAILED or CANCELLED release can be retried.
    pub fn is_retryable(self) -> bool {
        matches!(self, Self::Failed | Self::Cancelled)
    }
}

impl fmt::Display for ReleaseStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A pipeline run's status: CodePipeline's API statuses, plus `NotStarted` (never reached) and
/// `NotFound` (the pipeline was deleted between the check and the start) and `Skipped` (not
/// started: `skipUnchanged` found it already ran the manifest's revisions; counts as success).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum RunStatus {
    NotStarted,
    InProgress,
    Stopping,
    Stopped,
    Succeeded,
    Superseded,
    Failed,
    Cancelled,
    NotFound,
    Skipped,
}

impl RunStatus {
    pub const ALL: [RunStatus; 10] = [
        Self::NotStarted,
        Self::InProgress,
        Self::Stopping,
        Self::Stopped,
        Self::Succeeded,
        Self::Superseded,
        Self::Failed,
        Self::Cancelled,
        Self::NotFound,
        Self::Skipped,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::NotStarted => "NotStarted",
            Self::InProgress => "InProgress",
            Self::Stopping => "Stopping",
            Self::Stopped => "Stopped",
            Self::Succeeded => "Succeeded",
            Self::Superseded => "Superseded",
            Self::Failed => "Failed",
            Self::Cancelled => "Cancelled",
            Self::NotFound => "NotFound",
            Self::Skipped => "Skipped",
        }
    }

    /// Parses CodePipeline's API status (GetPipelineExecution's `status`).
    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|st| st.as_str() == s)
    }

    /// Maps an EventBridge "CodePipeline Pipeline Execution State Change" `detail.state`.
    pub fn from_event_state(state: &str) -> Option<Self> {
        Some(match state {
            "STARTED" | "RESUMED" => Self::InProgress,
            "SUCCEEDED" => Self::Succeeded,
            "FAILED" => Self::Failed,
            "STOPPING" => Self::Stopping,
            "STOPPED" => Self::Stopped,
            "SUPERSEDED" => Self::Superseded,
            "CANCELED" | "CANCELLED" => Self::Cancelled,
            _ => return None,
        })
    }

    /// A run in a terminal status never changes again.
    pub fn is_terminal(self) -> bool {
        matches!(
            self,
            Self::Stopped
                | Self::Succeeded
                | Self::Superseded
                | Self::Failed
                | Self::Cancelled
                | Self::NotFound
                | Self::Skipped
        )
    }

    /// Counts as success: Succeeded, or Skipped (unchanged, so already deployed).
    pub fn is_success(self) -> bool {
        matches!(self, Self::Succeeded | Self::Skipped)
    }

    /// Started and not yet terminal: the runs a failure must stop.
    pub fn is_running(self) -> bool {
        matches!(self, Self::InProgress | Self::Stopping)
    }

    /// Ordering used to ignore stale, out-of-order events: a status never moves to a lower rank.
    pub fn rank(self) -> u8 {
        match self {
            Self::NotStarted => 0,
            Self::InProgress => 1,
            Self::Stopping => 2,
            _ => 3,
        }
    }
}

impl fmt::Display for RunStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One entry of a run's audit trail.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct HistoryEntry {
    pub status: RunStatus,
    #[serde(with = "time::serde::rfc3339")]
    pub at: OffsetDateTime,
    /// The release attempt the run belonged to (1 for entries recorded before attempts were).
    #[serde(default = "first_attempt")]
    pub attempt: u32,
    /// The CodePipeline execution the entry is about (none before the run started).
    #[serde(default)]
    pub execution_id: Option<String>,
}

pub fn first_attempt() -> u32 {
    1
}

impl HistoryEntry {
    /// The entry a run gets when it moves to `status` at `at`: its attempt and execution.
    pub fn of(run: &RunRecord, status: RunStatus, at: OffsetDateTime) -> Self {
        Self {
            status,
            at,
            attempt: run.attempt,
            execution_id: run.execution_id.clone(),
        }
    }
}

/// How a manifest reached the state machine.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum SourceKind {
    /// Uploaded to the manifest bucket (an S3 "Object Created" event).
    S3,
    /// The manifest itself as the execution input (the local run, the console, an SDK call).
    Inline,
    /// POSTed to the API.
    Api,
}

impl SourceKind {
    pub const ALL: [SourceKind; 3] = [Self::S3, Self::Inline, Self::Api];

    /// The stored and JSON form: `s3`, `inline`, `api`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::S3 => "s3",
            Self::Inline => "inline",
            Self::Api => "api",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|k| k.as_str() == s)
    }
}

impl fmt::Display for SourceKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Where a release came from.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ReleaseSource {
    pub kind: SourceKind,
    /// `s3://bucket/key?versionId=..`, or `api:<caller>`; none for an inline manifest.
    pub location: Option<String>,
}

/// The release item.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ReleaseRecord {
    pub release_id: ReleaseId,
    /// Name of the Step Functions execution that runs this release.
    pub owner: String,
    pub status: ReleaseStatus,
    pub requested_at: OffsetDateTime,
    pub ended_at: Option<OffsetDateTime>,
    pub source: ReleaseSource,
    /// Who asked (ARCHITECTURE.md §3a "Who"): the API caller's IAM ARN; for an S3 upload
    /// `account:<id> via s3://bucket/key?versionId=..`; `local` for an inline manifest. `None`
    /// only for a release recorded before requestedBy was.
    pub requested_by: Option<String>,
    /// The hash of the normalized manifest claimed ([`crate::Manifest::content_hash`]): a POST
    /// of the same manifest by the same caller is a repeat, not a conflict. `None` for
    /// releases recorded before it was.
    pub manifest_hash: Option<String>,
    pub on_failure: crate::OnFailure,
    pub max_concurrency: u32,
    pub description: Option<String>,
    pub cause: Option<String>,
    /// Set by StopRunning before it lists the runs; a start that lands afterwards sees it and
    /// stops its own execution, so no pipeline escapes a stop.
    pub stop_requested: bool,
    /// Bumped by every write of the release item after the claim
    /// ([`crate::ports::ReleaseStore::update_release`] is conditional on it): 0 at the claim.
    pub version: u64,
    /// Attempts, waves, approvals, waits, a cancel request (ARCHITECTURE.md §3a).
    pub lifecycle: crate::lifecycle::Lifecycle,
}

/// One pipeline run item: the pipeline's spec from the manifest and what happened to it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RunRecord {
    pub release_id: ReleaseId,
    pub spec: crate::PipelineSpec,
    pub status: RunStatus,
    pub execution_id: Option<String>,
    pub started_at: Option<OffsetDateTime>,
    pub ended_at: Option<OffsetDateTime>,
    /// The waiting task's token, present while the state machine waits on this run.
    pub task_token: Option<String>,
    pub history: Vec<HistoryEntry>,
    /// StopRunning gave up waiting for this run to stop (the stop was refused or never took
    /// effect within the bounded wait): the release ended without it. Its later statuses are
    /// still recorded.
    pub stop_abandoned: bool,
    /// Why the run ended without succeeding, when the release machine decided it (`pipeline
    /// busy`: never started within its timeout); `None` when CodePipeline's status says it.
    pub cause: Option<String>,
    /// The release attempt of this run (a retry resets the runs it re-runs to the new attempt).
    pub attempt: u32,
}

impl RunRecord {
    pub fn pipeline(&self) -> &str {
        &self.spec.name
    }

    /// A new run of a claimed release: NotStarted, attempt 1, no history.
    pub fn new(release_id: ReleaseId, spec: crate::PipelineSpec) -> Self {
        Self {
            release_id,
            spec,
            status: RunStatus::NotStarted,
            execution_id: None,
            started_at: None,
            ended_at: None,
            task_token: None,
            history: Vec::new(),
            stop_abandoned: false,
            cause: None,
            attempt: 1,
        }
    }
}

/// Everything stored about a release: one Query in DynamoDB.
#[derive(Debug, Clone, PartialEq)]
pub struct StoredRelease {
    pub release: ReleaseRecord,
    pub runs: Vec<RunRecord>,
}

/// The shared rule of every store: a status only moves forward, and a terminal status sets
/// endedAt. Returns whether the run changed.
pub fn apply_status(run: &mut RunRecord, status: RunStatus, at: OffsetDateTime) -> bool {
    if run.status == status || run.status.is_terminal() || status.rank() < run.status.rank() {
        return false;
    }
    run.status = status;
    run.history.push(HistoryEntry::of(run, status, at));
    if status == RunStatus::InProgress && run.started_at.is_none() {
        run.started_at = Some(at);
    }
    if status.is_terminal() {
        run.ended_at = Some(at);
    }
    true
}

/// The order key of the release list (newest first): `requestedAt` as sortable text, then the
/// id. Also the list's page token: the key of the last release of a page.
pub fn list_order(r: &ReleaseRecord) -> String {
    // Fixed-width nanoseconds since 1970 sort as text in time order (RFC 3339 with optional
    // fractions would not: `00.5Z` < `00Z`).
    let nanos = r.requested_at.unix_timestamp_nanos().max(0);
    format!("{nanos:020}#{}", r.release_id)
}

/// A page of at most `limit` from `fetched` (at most `limit + 1`, to know whether more follow).
pub fn page_of(mut fetched: Vec<ReleaseRecord>, limit: usize) -> crate::ports::ReleasePage {
    let more = fetched.len() > limit;
    fetched.truncate(limit);
    crate::ports::ReleasePage {
        next: more.then(|| fetched.last().map(list_order)).flatten(),
        releases: fetched,
    }
}

/// The shared rule of every store for a retried run: NotStarted in the new attempt, history
/// kept.
pub fn reset_for_attempt(run: &mut RunRecord, attempt: u32) {
    run.status = RunStatus::NotStarted;
    run.attempt = attempt;
    run.execution_id = None;
    run.started_at = None;
    run.ended_at = None;
    run.task_token = None;
    run.stop_abandoned = false;
    run.cause = None;
}

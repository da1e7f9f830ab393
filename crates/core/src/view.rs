//! The one release JSON: the API's GET, the CLI's `--json` and `status` print this shape.

use crate::lifecycle::{
    ApprovalRecord, AttemptRecord, CancelRequest, WaitRecord, WaitingFor, WaveRecord,
};
use crate::manifest::OnFailure;
use crate::release::{HistoryEntry, ReleaseStatus, RunStatus, StoredRelease};
use serde::{Deserialize, Serialize};
use time::OffsetDateTime;

mod changes;
pub mod timeline;
pub use changes::{changes, wait_kind, ReleaseChange};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ReleaseView {
    pub release_id: String,
    pub status: ReleaseStatus,
    #[serde(with = "time::serde::rfc3339")]
    pub requested_at: OffsetDateTime,
    #[serde(with = "time::serde::rfc3339::option")]
    pub ended_at: Option<OffsetDateTime>,
    /// `s3://bucket/key?versionId=..`, `api:<caller>`, or `inline`.
    pub source: String,
    /// Who asked: the API caller's IAM ARN, `account:<id> via s3://bucket/key?versionId=..`
    /// for an upload, `local` for a local run (null only for a release recorded before).
    pub requested_by: Option<String>,
    pub on_failure: OnFailure,
    pub max_concurrency: u32,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    pub cause: Option<String>,
    /// The current attempt (1, then one more per retry).
    pub attempt: u32,
    pub attempts: Vec<AttemptRecord>,
    /// What a RUNNING release waits for; null when nothing.
    pub waiting_for: Option<WaitingFor>,
    /// A cancel asked for (`by`, `reason`, `at`, `attempt`): recorded before the execution is
    /// stopped, so a release still RUNNING shows it is being cancelled; null when none.
    pub cancel_requested: Option<CancelRequest>,
    pub approvals: Vec<ApprovalRecord>,
    pub waves: Vec<WaveRecord>,
    /// Every wait the release went through.
    pub waits: Vec<WaitRecord>,
    /// The manifest's `gates` (absent when it has none).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gates: Option<crate::gate::GateSettings>,
    pub pipelines: Vec<RunView>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RunView {
    pub name: String,
    pub wave: u32,
    pub status: RunStatus,
    /// The release attempt of the pipeline's latest run.
    pub attempt: u32,
    pub execution_id: Option<String>,
    #[serde(with = "time::serde::rfc3339::option")]
    pub started_at: Option<OffsetDateTime>,
    #[serde(with = "time::serde::rfc3339::option")]
    pub ended_at: Option<OffsetDateTime>,
    pub history: Vec<HistoryEntry>,
    /// The release stopped waiting for this run to stop (refused, or not within the bounded
    /// wait); its later statuses are still recorded.
    #[serde(default)]
    pub stop_abandoned: bool,
    /// Why the run did not succeed, when the release machine decided it (`pipeline busy`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cause: Option<String>,
}

impl From<&StoredRelease> for ReleaseView {
    fn from(s: &StoredRelease) -> Self {
        let r = &s.release;
        let mut pipelines: Vec<RunView> = s
            .runs
            .iter()
            .map(|run| RunView {
                name: run.spec.name.clone(),
                wave: run.spec.wave,
                status: run.status,
                attempt: run.attempt,
                execution_id: run.execution_id.clone(),
                started_at: run.started_at,
                ended_at: run.ended_at,
                history: run.history.clone(),
                stop_abandoned: run.stop_abandoned,
                cause: run.cause.clone(),
            })
            .collect();
        pipelines.sort_by(|a, b| a.wave.cmp(&b.wave).then_with(|| a.name.cmp(&b.name)));
        ReleaseView {
            release_id: r.release_id.to_string(),
            status: r.status,
            requested_at: r.requested_at,
            ended_at: r.ended_at,
            source: source_of(r),
            requested_by: r.requested_by.clone(),
            on_failure: r.on_failure,
            max_concurrency: r.max_concurrency,
            description: r.description.clone(),
            cause: r.cause.clone(),
            attempt: r.lifecycle.attempt,
            attempts: r.lifecycle.attempts.clone(),
            waiting_for: r.lifecycle.waiting_for.clone(),
            cancel_requested: r.lifecycle.cancel.clone(),
            approvals: r.lifecycle.approvals.clone(),
            waves: r.lifecycle.waves.clone(),
            waits: r.lifecycle.waits.clone(),
            gates: r.lifecycle.gates.clone(),
            pipelines,
        }
    }
}

/// One release in a list (`GET /releases`, `release-machine list`): the release item's
/// fields, without its pipelines.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ReleaseSummary {
    pub release_id: String,
    pub status: ReleaseStatus,
    pub attempt: u32,
    #[serde(with = "time::serde::rfc3339")]
    pub requested_at: OffsetDateTime,
    #[serde(with = "time::serde::rfc3339::option")]
    pub ended_at: Option<OffsetDateTime>,
    pub requested_by: Option<String>,
    pub source: String,
    pub cause: Option<String>,
    pub waiting_for: Option<WaitingFor>,
}

impl From<&crate::release::ReleaseRecord> for ReleaseSummary {
    fn from(r: &crate::release::ReleaseRecord) -> Self {
        ReleaseSummary {
            release_id: r.release_id.to_string(),
            status: r.status,
            attempt: r.lifecycle.attempt,
            requested_at: r.requested_at,
            ended_at: r.ended_at,
            requested_by: r.requested_by.clone(),
            source: source_of(r),
            cause: r.cause.clone(),
            waiting_for: r.lifecycle.waiting_for.clone(),
        }
    }
}

/// A page of releases, newest first: `next` continues the list (`?next=`), null at its end.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ReleaseList {
    pub releases: Vec<ReleaseSummary>,
    pub next: Option<String>,
}

impl From<&crate::ports::ReleasePage> for ReleaseList {
    fn from(p: &crate::ports::ReleasePage) -> Self {
        ReleaseList {
            releases: p.releases.iter().map(ReleaseSummary::from).collect(),
            next: p.next.clone(),
        }
    }
}

/// The release JSON's `source`: where it came from, or how.
fn source_of(r: &crate::release::ReleaseRecord) -> String {
    r.source
        .location
        .clone()
        .unwrap_or_else(|| r.source.kind.to_string())
}

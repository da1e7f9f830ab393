//! Notifications (ARCHITECTURE.md §3a "Events"): every change of a release is published as an
//! EventBridge event on the default bus, `source` `release-machine`.
//!
//! A change and its events are written together (the store keeps the events in an outbox with
//! the changed item, in the same conditional write); a publisher drains the outbox after the
//! write and the sweep drains what is left, so delivery is at least once and never before the
//! change is recorded. Each event carries `detail.eventId` (the same for every delivery of it)
//! and `detail.sequence`, strictly increasing per release (EventBridge does not keep order),
//! never the whole release JSON.

use crate::lifecycle::WaveStatus;
use crate::release::{ReleaseId, ReleaseStatus, RunRecord, RunStatus};
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};
use time::OffsetDateTime;

/// The events' `source`.
pub const SOURCE: &str = "release-machine";

pub const RELEASE_STATUS_CHANGE: &str = "Release Status Change";
pub const WAVE_STATUS_CHANGE: &str = "Wave Status Change";
pub const PIPELINE_RUN_STATUS_CHANGE: &str = "Pipeline Run Status Change";
pub const APPROVAL_REQUESTED: &str = "Approval Requested";
pub const RELEASE_WAITING: &str = "Release Waiting";
pub const HALT_STATUS_CHANGE: &str = "Halt Status Change";

/// PutEvents takes at most 10 entries a call.
pub const PUT_EVENTS_BATCH: usize = 10;

/// One event of a release, as the outbox keeps it and the publisher sends it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ReleaseEvent {
    pub release_id: ReleaseId,
    pub sequence: u64,
    pub detail_type: String,
    #[serde(with = "time::serde::rfc3339")]
    pub time: OffsetDateTime,
    /// Includes `releaseId`, `eventId` and `sequence`.
    pub detail: Value,
}

impl ReleaseEvent {
    /// The same for every delivery of this event: `<releaseId>:<sequence>`.
    pub fn event_id(release_id: &ReleaseId, sequence: u64) -> String {
        format!("{release_id}:{sequence}")
    }

    fn new(
        release_id: &ReleaseId,
        sequence: u64,
        detail_type: &str,
        time: OffsetDateTime,
        fields: Value,
    ) -> Self {
        let mut detail = json!({
            "releaseId": release_id.as_str(),
            "eventId": Self::event_id(release_id, sequence),
            "sequence": sequence,
        });
        if let (Some(d), Value::Object(f)) = (detail.as_object_mut(), fields) {
            d.extend(f);
        }
        Self {
            release_id: release_id.clone(),
            sequence,
            detail_type: detail_type.to_owned(),
            time,
            detail,
        }
    }

    /// The EventBridge-shaped event: `source`, `detail-type`, `time`, `detail` (what the local
    /// run appends to `events.jsonl`, and what a rule matches on AWS).
    pub fn envelope(&self) -> Value {
        let time = self
            .time
            .format(&time::format_description::well_known::Rfc3339)
            .unwrap_or_default();
        json!({
            "source": SOURCE,
            "detail-type": self.detail_type,
            "time": time,
            "detail": self.detail,
        })
    }

    /// `Halt Status Change` (`on`, `reason`, `by`): a stack-wide event, not a release's. Its
    /// `eventId` is `halt:<nanoseconds since the epoch of the change>`; it carries no
    /// `releaseId` (the `release_id` field only keys it: `halt`).
    pub fn halt_status(on: bool, reason: &str, by: &str, at: OffsetDateTime) -> Self {
        let sequence = u64::try_from(at.unix_timestamp_nanos()).unwrap_or_default();
        Self {
            release_id: ReleaseId::stack(),
            sequence,
            detail_type: HALT_STATUS_CHANGE.to_owned(),
            time: at,
            detail: json!({
                "eventId": format!("halt:{sequence}"),
                "on": on,
                "reason": reason,
                "by": by,
            }),
        }
    }

    pub fn event_id_of(&self) -> String {
        Self::event_id(&self.release_id, self.sequence)
    }
}

/// The events of one change, before their sequence numbers are known: the use case allocates
/// as many numbers as there are drafts, then stamps them in order.
#[derive(Debug, Clone, PartialEq)]
pub struct EventDraft {
    pub detail_type: &'static str,
    pub time: OffsetDateTime,
    pub fields: Value,
}

impl EventDraft {
    pub fn release_status(
        attempt: u32,
        status: ReleaseStatus,
        cause: Option<&str>,
        at: OffsetDateTime,
    ) -> Self {
        Self {
            detail_type: RELEASE_STATUS_CHANGE,
            time: at,
            fields: json!({"attempt": attempt, "status": status, "cause": cause}),
        }
    }

    pub fn wave_status(attempt: u32, wave: u32, status: WaveStatus, at: OffsetDateTime) -> Self {
        Self {
            detail_type: WAVE_STATUS_CHANGE,
            time: at,
            fields: json!({"attempt": attempt, "wave": wave, "status": status.as_str()}),
        }
    }

    pub fn run_status(run: &RunRecord, status: RunStatus, at: OffsetDateTime) -> Self {
        Self {
            detail_type: PIPELINE_RUN_STATUS_CHANGE,
            time: at,
            fields: json!({
                "attempt": run.attempt,
                "pipeline": run.spec.name,
                "wave": run.spec.wave,
                "status": status,
                "executionId": run.execution_id,
            }),
        }
    }

    pub fn approval_requested(
        release_id: &ReleaseId,
        attempt: u32,
        wave: u32,
        timeout_minutes: u32,
        at: OffsetDateTime,
    ) -> Self {
        Self {
            detail_type: APPROVAL_REQUESTED,
            time: at,
            fields: json!({
                "attempt": attempt,
                "wave": wave,
                "timeoutMinutes": timeout_minutes,
                "approve": format!("release-machine approve {release_id} --wave {wave}   (or POST /releases/{release_id}/approve {{\"wave\": {wave}}})"),
                "reject": format!("release-machine reject {release_id} --wave {wave} --reason REASON   (or POST /releases/{release_id}/reject {{\"wave\": {wave}, \"reason\": \"...\"}})"),
            }),
        }
    }

    /// `Release Waiting`: a wait begins (`waiting` true) or ends.
    pub fn waiting(
        attempt: u32,
        kind: crate::lifecycle::WaitKind,
        wave: Option<u32>,
        waiting: bool,
        at: OffsetDateTime,
    ) -> Self {
        Self {
            detail_type: RELEASE_WAITING,
            time: at,
            fields: json!({"attempt": attempt, "kind": kind, "wave": wave, "waiting": waiting}),
        }
    }

    /// `Release Waiting` as a gate, bake or halt wait begins or changes: with `waitingFor`.
    pub fn waiting_for(
        attempt: u32,
        waiting_for: &crate::lifecycle::WaitingFor,
        at: OffsetDateTime,
    ) -> Self {
        let (kind, wave) = match waiting_for {
            crate::lifecycle::WaitingFor::Approval { wave, .. } => {
                (crate::lifecycle::WaitKind::Approval, Some(*wave))
            }
            crate::lifecycle::WaitingFor::Gate { wave, .. } => {
                (crate::lifecycle::WaitKind::Gate, Some(*wave))
            }
            crate::lifecycle::WaitingFor::Bake { wave, .. } => {
                (crate::lifecycle::WaitKind::Bake, Some(*wave))
            }
            crate::lifecycle::WaitingFor::Halt { wave, .. } => {
                (crate::lifecycle::WaitKind::Halt, *wave)
            }
        };
        Self {
            detail_type: RELEASE_WAITING,
            time: at,
            fields: json!({"attempt": attempt, "kind": kind, "wave": wave, "waiting": true,
                "waitingFor": waiting_for}),
        }
    }

    /// Stamps the drafts with consecutive sequence numbers from `first`.
    pub fn stamp(drafts: Vec<EventDraft>, release_id: &ReleaseId, first: u64) -> Vec<ReleaseEvent> {
        drafts
            .into_iter()
            .zip(first..)
            .map(|(d, seq)| ReleaseEvent::new(release_id, seq, d.detail_type, d.time, d.fields))
            .collect()
    }
}

/// Where events go: EventBridge's PutEvents on AWS, `events.jsonl` locally.
#[async_trait::async_trait]
pub trait EventBus: Send + Sync {
    /// Puts up to [`PUT_EVENTS_BATCH`] events; returns the indexes of the entries that were
    /// rejected (PutEvents' `FailedEntryCount`), to be retried.
    async fn put(&self, events: &[ReleaseEvent]) -> crate::ports::PortResult<Vec<usize>>;
}

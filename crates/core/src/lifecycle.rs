//! A release's lifecycle (ARCHITECTURE.md §3a): attempts, waves, approvals, waits, a cancel
//! request. Stored with the release item as one document ([`Lifecycle`]) and changed only by
//! the pure transitions here, each of which returns the events it publishes
//! ([`crate::events`]); a use case writes the new lifecycle and its events in one conditional
//! write (`ReleaseStore::update_release`).

use serde::{Deserialize, Serialize};
use std::fmt;
use time::OffsetDateTime;

use crate::release::ReleaseStatus;

/// A wave's status in the release JSON.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum WaveStatus {
    Pending,
    WaitingApproval,
    WaitingGate,
    Running,
    Baking,
    Succeeded,
    Failed,
    Cancelled,
    Skipped,
}

impl WaveStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Pending => "Pending",
            Self::WaitingApproval => "WaitingApproval",
            Self::WaitingGate => "WaitingGate",
            Self::Running => "Running",
            Self::Baking => "Baking",
            Self::Succeeded => "Succeeded",
            Self::Failed => "Failed",
            Self::Cancelled => "Cancelled",
            Self::Skipped => "Skipped",
        }
    }

    /// Not started or under way: what a release's end settles.
    pub fn is_open(self) -> bool {
        matches!(
            self,
            Self::Pending
                | Self::WaitingApproval
                | Self::WaitingGate
                | Self::Running
                | Self::Baking
        )
    }
}

impl fmt::Display for WaveStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// An approval's status.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum ApprovalStatus {
    Waiting,
    Approved,
    Rejected,
    TimedOut,
    Cancelled,
}

impl ApprovalStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Waiting => "Waiting",
            Self::Approved => "Approved",
            Self::Rejected => "Rejected",
            Self::TimedOut => "TimedOut",
            Self::Cancelled => "Cancelled",
        }
    }
}

impl fmt::Display for ApprovalStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One attempt of a release: the first run, or a retry.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct AttemptRecord {
    pub attempt: u32,
    /// The Step Functions execution (its name) that runs this attempt.
    pub execution: String,
    #[serde(with = "time::serde::rfc3339")]
    pub requested_at: OffsetDateTime,
    pub requested_by: Option<String>,
    #[serde(default, with = "time::serde::rfc3339::option")]
    pub ended_at: Option<OffsetDateTime>,
    pub status: ReleaseStatus,
    #[serde(default)]
    pub cause: Option<String>,
}

/// One wave of the release.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct WaveRecord {
    pub wave: u32,
    pub status: WaveStatus,
    #[serde(default, with = "time::serde::rfc3339::option")]
    pub started_at: Option<OffsetDateTime>,
    #[serde(default, with = "time::serde::rfc3339::option")]
    pub ended_at: Option<OffsetDateTime>,
}

/// One approval of a wave, in one attempt.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ApprovalRecord {
    pub wave: u32,
    pub attempt: u32,
    pub status: ApprovalStatus,
    #[serde(with = "time::serde::rfc3339")]
    pub requested_at: OffsetDateTime,
    /// Who approved, rejected or cancelled it.
    #[serde(default)]
    pub by: Option<String>,
    /// When it stopped waiting.
    #[serde(default, with = "time::serde::rfc3339::option")]
    pub at: Option<OffsetDateTime>,
    #[serde(default)]
    pub reason: Option<String>,
}

/// What a wait was for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum WaitKind {
    Approval,
    Gate,
    Bake,
    Halt,
}

/// A wait the release went through (or is in: `until` null).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct WaitRecord {
    pub kind: WaitKind,
    pub wave: Option<u32>,
    #[serde(default)]
    pub reasons: Vec<String>,
    /// Who ended it (an approval's approver), or who caused it (a halt's).
    #[serde(default)]
    pub by: Option<String>,
    #[serde(with = "time::serde::rfc3339")]
    pub since: OffsetDateTime,
    #[serde(default, with = "time::serde::rfc3339::option")]
    pub until: Option<OffsetDateTime>,
}

/// What a RUNNING release waits for (`waitingFor` in the release JSON).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum WaitingFor {
    Approval {
        wave: u32,
        #[serde(with = "time::serde::rfc3339")]
        since: OffsetDateTime,
    },
    /// The gate before `wave` is closed.
    Gate {
        wave: u32,
        reasons: Vec<String>,
        #[serde(with = "time::serde::rfc3339")]
        since: OffsetDateTime,
    },
    /// `wave` succeeded; the release bakes until `until`.
    Bake {
        wave: u32,
        #[serde(with = "time::serde::rfc3339")]
        until: OffsetDateTime,
    },
    /// The stack-wide halt holds the release (before `wave`, or pipeline starts inside it).
    Halt {
        wave: Option<u32>,
        reason: String,
        by: String,
        #[serde(with = "time::serde::rfc3339")]
        since: OffsetDateTime,
    },
}

impl WaitingFor {
    /// What the release waits for, in words: `the approval of wave 2`.
    pub fn describe(&self) -> String {
        match self {
            Self::Approval { wave, .. } => format!("the approval of wave {wave}"),
            Self::Gate { wave, reasons, .. } => {
                format!("the gate before wave {wave} ({})", reasons.join("; "))
            }
            Self::Bake { wave, until } => format!(
                "the bake of wave {wave} until {}",
                until
                    .format(&time::format_description::well_known::Rfc3339)
                    .unwrap_or_default()
            ),
            Self::Halt { reason, by, .. } => format!("the halt (halted by {by}: {reason})"),
        }
    }
}

/// A gate or bake wait in progress: the task token the state machine waits on, and what the
/// re-evaluations outside the execution need.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct GateWait {
    /// `Gate` (before a wave) or `Bake` (after one).
    pub kind: WaitKind,
    pub wave: u32,
    pub token: String,
    #[serde(with = "time::serde::rfc3339")]
    pub since: OffsetDateTime,
    /// A bake's end.
    #[serde(default, with = "time::serde::rfc3339::option")]
    pub until: Option<OffsetDateTime>,
    /// The last evaluation's reasons (a closed gate).
    #[serde(default)]
    pub reasons: Vec<String>,
    /// Halted time so far (not counted against `maxWaitMinutes`).
    #[serde(default)]
    pub halted_seconds: i64,
    /// Since when the halt holds it, while it does.
    #[serde(default, with = "time::serde::rfc3339::option")]
    pub halted_since: Option<OffsetDateTime>,
    /// How it ended, once the token was answered: the cause a failed wait gives the release.
    #[serde(default)]
    pub failure: Option<String>,
}

/// A cancel that was asked for: recorded before the execution is stopped.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct CancelRequest {
    pub by: String,
    pub reason: String,
    #[serde(with = "time::serde::rfc3339")]
    pub at: OffsetDateTime,
    /// The attempt it cancels.
    pub attempt: u32,
}

impl CancelRequest {
    /// The release's cause once it ends CANCELLED.
    pub fn cause(&self) -> String {
        format!("cancelled by {}: {}", self.by, self.reason)
    }
}

/// Everything a release carries beyond its first version's fields. Stored as one document with
/// the release item.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Lifecycle {
    /// The current attempt, from 1.
    pub attempt: u32,
    #[serde(default)]
    pub attempts: Vec<AttemptRecord>,
    #[serde(default)]
    pub waves: Vec<WaveRecord>,
    #[serde(default)]
    pub approvals: Vec<ApprovalRecord>,
    #[serde(default)]
    pub waits: Vec<WaitRecord>,
    #[serde(default)]
    pub waiting_for: Option<WaitingFor>,
    #[serde(default)]
    pub cancel: Option<CancelRequest>,
    /// The waiting approval task's token (Step Functions' `$$.Task.Token`).
    #[serde(default)]
    pub approval_token: Option<String>,
    /// The manifest's `approvals`.
    #[serde(default)]
    pub approval_waves: Vec<u32>,
    /// The manifest's `approvalTimeoutMinutes`.
    #[serde(default = "default_timeout")]
    pub approval_timeout_minutes: u32,
    /// The manifest's `gates`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gates: Option<crate::gate::GateSettings>,
    /// The gate or bake wait in progress.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gate_wait: Option<GateWait>,
    /// The manifest's `skipUnchanged`.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub skip_unchanged: bool,
}

fn default_timeout() -> u32 {
    crate::manifest::DEFAULT_APPROVAL_TIMEOUT_MINUTES
}

impl Default for Lifecycle {
    fn default() -> Self {
        Self {
            attempt: 1,
            attempts: Vec::new(),
            waves: Vec::new(),
            approvals: Vec::new(),
            waits: Vec::new(),
            waiting_for: None,
            cancel: None,
            approval_token: None,
            approval_waves: Vec::new(),
            approval_timeout_minutes: default_timeout(),
            gates: None,
            gate_wait: None,
            skip_unchanged: false,
        }
    }
}

impl Lifecycle {
    pub fn wave_mut(&mut self, wave: u32) -> Option<&mut WaveRecord> {
        self.waves.iter_mut().find(|w| w.wave == wave)
    }

    /// Ends `wave` with `status` at `at`; its `Wave Status Change` draft, if it is known.
    pub fn end_wave(
        &mut self,
        wave: u32,
        status: WaveStatus,
        at: OffsetDateTime,
    ) -> Option<crate::events::EventDraft> {
        let attempt = self.attempt;
        let w = self.wave_mut(wave)?;
        w.status = status;
        w.ended_at = Some(at);
        Some(crate::events::EventDraft::wave_status(
            attempt, wave, status, at,
        ))
    }

    pub fn wave(&self, wave: u32) -> Option<&WaveRecord> {
        self.waves.iter().find(|w| w.wave == wave)
    }

    pub fn current_attempt_mut(&mut self) -> Option<&mut AttemptRecord> {
        let n = self.attempt;
        self.attempts.iter_mut().rev().find(|a| a.attempt == n)
    }

    /// The approval of `wave` in the current attempt.
    pub fn approval_mut(&mut self, wave: u32) -> Option<&mut ApprovalRecord> {
        let n = self.attempt;
        self.approvals
            .iter_mut()
            .rev()
            .find(|a| a.wave == wave && a.attempt == n)
    }

    /// The open wait of `kind`, if any.
    pub fn open_wait_mut(&mut self, kind: WaitKind) -> Option<&mut WaitRecord> {
        self.waits
            .iter_mut()
            .rev()
            .find(|w| w.kind == kind && w.until.is_none())
    }
}

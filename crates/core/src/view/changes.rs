//! What changed between two snapshots of a release: the one diff behind every progress view
//! (the local run's, `watch` against the local store, `watch` against the API).
//!
//! A watcher sees snapshots, not events: a pipeline may have gone InProgress and Succeeded
//! between two polls. [`changes`] reports each thing that differs once, in its latest state,
//! with its time from the release where the release records one (a run's history, a wave's
//! start or end, a wait's record), so lines read in the order things happened.

use super::ReleaseView;
use crate::lifecycle::{ApprovalStatus, WaitKind, WaitingFor, WaveStatus};
use crate::release::{ReleaseStatus, RunStatus};
use serde::{Deserialize, Serialize};
use std::collections::HashMap;
use time::OffsetDateTime;

/// One change between two snapshots of a release.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "change", rename_all = "camelCase")]
pub enum ReleaseChange {
    /// An execution claimed the release: its first attempt, or a retry's. The first change of
    /// a release seen for the first time.
    #[serde(rename_all = "camelCase")]
    Claimed {
        release_id: String,
        attempt: u32,
        /// The Step Functions execution running the attempt (unknown for a release recorded
        /// before attempts were).
        execution: Option<String>,
        requested_by: Option<String>,
        #[serde(with = "time::serde::rfc3339")]
        at: OffsetDateTime,
        pipelines: usize,
        waves: usize,
        max_concurrency: u32,
    },
    /// A cancel was asked for; the release is being cancelled.
    #[serde(rename_all = "camelCase")]
    CancelRequested {
        by: String,
        reason: String,
        #[serde(with = "time::serde::rfc3339")]
        at: OffsetDateTime,
    },
    /// The release no longer waits for what it waited for (how it ended shows in what
    /// follows: the wave starts, or the release ends).
    #[serde(rename_all = "camelCase")]
    WaitEnded {
        kind: WaitKind,
        wave: Option<u32>,
        #[serde(with = "time::serde::rfc3339::option")]
        at: Option<OffsetDateTime>,
    },
    /// An approval was decided, or began to wait.
    #[serde(rename_all = "camelCase")]
    Approval {
        wave: u32,
        attempt: u32,
        status: ApprovalStatus,
        by: Option<String>,
        reason: Option<String>,
        #[serde(with = "time::serde::rfc3339::option")]
        at: Option<OffsetDateTime>,
    },
    /// A wave's status changed. `position` counts from 1 among the release's `of` waves.
    #[serde(rename_all = "camelCase")]
    Wave {
        wave: u32,
        position: usize,
        of: usize,
        from: WaveStatus,
        to: WaveStatus,
        #[serde(with = "time::serde::rfc3339::option")]
        at: Option<OffsetDateTime>,
    },
    /// A pipeline's status changed (or it ran again in a later attempt).
    #[serde(rename_all = "camelCase")]
    Pipeline {
        name: String,
        wave: u32,
        from: RunStatus,
        to: RunStatus,
        attempt: u32,
        /// Why it did not succeed, when the release machine decided it.
        cause: Option<String>,
        #[serde(with = "time::serde::rfc3339::option")]
        at: Option<OffsetDateTime>,
    },
    /// The release began to wait, or what it waits for changed (a gate's reasons).
    #[serde(rename_all = "camelCase")]
    Waiting {
        waiting_for: WaitingFor,
        #[serde(with = "time::serde::rfc3339::option")]
        at: Option<OffsetDateTime>,
    },
    /// The release's status or cause changed: it ended, or a retry made it RUNNING again.
    #[serde(rename_all = "camelCase")]
    Status {
        release_id: String,
        from: ReleaseStatus,
        to: ReleaseStatus,
        cause: Option<String>,
        #[serde(with = "time::serde::rfc3339::option")]
        at: Option<OffsetDateTime>,
    },
}

impl ReleaseChange {
    /// When it happened, where the release records it.
    pub fn at(&self) -> Option<OffsetDateTime> {
        match self {
            Self::Claimed { at, .. } | Self::CancelRequested { at, .. } => Some(*at),
            Self::WaitEnded { at, .. }
            | Self::Approval { at, .. }
            | Self::Wave { at, .. }
            | Self::Pipeline { at, .. }
            | Self::Waiting { at, .. }
            | Self::Status { at, .. } => *at,
        }
    }
}

/// What a wait is, and before or after which wave.
pub fn wait_kind(waiting_for: &WaitingFor) -> (WaitKind, Option<u32>) {
    match waiting_for {
        WaitingFor::Approval { wave, .. } => (WaitKind::Approval, Some(*wave)),
        WaitingFor::Gate { wave, .. } => (WaitKind::Gate, Some(*wave)),
        WaitingFor::Bake { wave, .. } => (WaitKind::Bake, Some(*wave)),
        WaitingFor::Halt { wave, .. } => (WaitKind::Halt, *wave),
    }
}

/// Every change from `prev` to `next`, in the order they happened (by the release's own times;
/// a change without a time keeps its place after the one before it). `prev` None: `next`
/// seen for the first time, described as changes from its claim (every pipeline that left
/// NotStarted, every wave that left Pending, its wait, its end).
///
/// Pure and linear in the number of pipelines: a snapshot diffed with itself yields nothing.
pub fn changes(prev: Option<&ReleaseView>, next: &ReleaseView) -> Vec<ReleaseChange> {
    let blank;
    let (prev, claimed) = match prev {
        Some(p) if p.release_id == next.release_id => (p, p.attempt != next.attempt),
        _ => {
            blank = claimed_only(next);
            (&blank, true)
        }
    };
    let mut out = Vec::new();
    if claimed {
        let attempt = next.attempts.iter().find(|a| a.attempt == next.attempt);
        let mut waves: Vec<u32> = next.pipelines.iter().map(|p| p.wave).collect();
        waves.extend(next.waves.iter().map(|w| w.wave));
        waves.sort_unstable();
        waves.dedup();
        out.push(ReleaseChange::Claimed {
            release_id: next.release_id.clone(),
            attempt: next.attempt,
            execution: attempt.map(|a| a.execution.clone()),
            requested_by: attempt
                .and_then(|a| a.requested_by.clone())
                .or_else(|| next.requested_by.clone()),
            at: attempt.map_or(next.requested_at, |a| a.requested_at),
            pipelines: next.pipelines.len(),
            waves: waves.len(),
            max_concurrency: next.max_concurrency,
        });
    }
    if let Some(c) = &next.cancel_requested {
        if prev.cancel_requested.as_ref() != Some(c) {
            out.push(ReleaseChange::CancelRequested {
                by: c.by.clone(),
                reason: c.reason.clone(),
                at: c.at,
            });
        }
    }
    let mut began = None;
    match (&prev.waiting_for, &next.waiting_for) {
        (Some(a), b) if b.as_ref() != Some(a) => {
            let (kind, wave) = wait_kind(a);
            let same_wait = b.as_ref().is_some_and(|b| wait_kind(b) == (kind, wave));
            if same_wait {
                began = b.clone().map(|w| (w, None));
            } else {
                out.push(ReleaseChange::WaitEnded {
                    kind,
                    wave,
                    at: wait_end(next, kind, wave),
                });
                began = b.clone().map(|w| {
                    let at = wait_start(next, &w);
                    (w, at)
                });
            }
        }
        (None, Some(b)) => began = Some((b.clone(), wait_start(next, b))),
        _ => {}
    }
    for a in &next.approvals {
        let before = prev
            .approvals
            .iter()
            .find(|p| p.wave == a.wave && p.attempt == a.attempt);
        if before.map(|p| p.status) != Some(a.status) {
            out.push(ReleaseChange::Approval {
                wave: a.wave,
                attempt: a.attempt,
                status: a.status,
                by: a.by.clone(),
                reason: a.reason.clone(),
                at: if a.status == ApprovalStatus::Waiting {
                    Some(a.requested_at)
                } else {
                    a.at
                },
            });
        }
    }
    let of = next.waves.len();
    let mut wave_ends = Vec::new();
    for (i, w) in next.waves.iter().enumerate() {
        let from = prev
            .waves
            .get(i)
            .filter(|p| p.wave == w.wave)
            .or_else(|| prev.waves.iter().find(|p| p.wave == w.wave))
            .map_or(WaveStatus::Pending, |p| p.status);
        if from == w.status {
            continue;
        }
        let ended = !w.status.is_open();
        let change = ReleaseChange::Wave {
            wave: w.wave,
            position: i + 1,
            of,
            from,
            to: w.status,
            at: match w.status {
                WaveStatus::Running => w.started_at,
                _ if ended => w.ended_at,
                _ => None,
            },
        };
        if ended {
            wave_ends.push(change);
        } else {
            out.push(change);
        }
    }
    pipeline_changes(prev, next, &mut out);
    out.extend(wave_ends);
    if let Some((waiting_for, at)) = began {
        out.push(ReleaseChange::Waiting { waiting_for, at });
    }
    if prev.status != next.status || prev.cause != next.cause {
        out.push(ReleaseChange::Status {
            release_id: next.release_id.clone(),
            from: prev.status,
            to: next.status,
            cause: next.cause.clone(),
            at: next
                .ended_at
                .filter(|_| next.status != ReleaseStatus::Running),
        });
    }
    in_time_order(out)
}

fn pipeline_changes(prev: &ReleaseView, next: &ReleaseView, out: &mut Vec<ReleaseChange>) {
    // Snapshots of one release list the same pipelines in the same order; look the others up.
    let aligned = prev.pipelines.len() == next.pipelines.len()
        && prev
            .pipelines
            .iter()
            .zip(&next.pipelines)
            .all(|(a, b)| a.name == b.name);
    let by_name: HashMap<&str, &super::RunView> = if aligned {
        HashMap::new()
    } else {
        prev.pipelines
            .iter()
            .map(|p| (p.name.as_str(), p))
            .collect()
    };
    for (i, run) in next.pipelines.iter().enumerate() {
        let before = if aligned {
            prev.pipelines.get(i)
        } else {
            by_name.get(run.name.as_str()).copied()
        };
        let (from, attempt_before) = before.map_or((RunStatus::NotStarted, run.attempt), |p| {
            (p.status, p.attempt)
        });
        if from == run.status && attempt_before == run.attempt {
            continue;
        }
        let at = run
            .history
            .iter()
            .rev()
            .find(|h| h.status == run.status && h.attempt == run.attempt)
            .or_else(|| run.history.iter().rev().find(|h| h.status == run.status))
            .map(|h| h.at)
            .or(match run.status {
                RunStatus::InProgress => run.started_at,
                s if s.is_terminal() => run.ended_at,
                _ => None,
            });
        out.push(ReleaseChange::Pipeline {
            name: run.name.clone(),
            wave: run.wave,
            from,
            to: run.status,
            attempt: run.attempt,
            cause: match (run.status, &run.execution_id) {
                // What a skip matched says why it was not started.
                (RunStatus::Skipped, Some(id)) => Some(format!("unchanged since execution {id}")),
                _ => run.cause.clone(),
            },
            at,
        });
    }
}

/// When the wait `next` now waits for began: its `since`, or its record's.
fn wait_start(next: &ReleaseView, waiting_for: &WaitingFor) -> Option<OffsetDateTime> {
    match waiting_for {
        WaitingFor::Approval { since, .. }
        | WaitingFor::Gate { since, .. }
        | WaitingFor::Halt { since, .. } => Some(*since),
        WaitingFor::Bake { wave, .. } => next
            .waits
            .iter()
            .rev()
            .find(|w| w.kind == WaitKind::Bake && w.wave == Some(*wave))
            .map(|w| w.since),
    }
}

/// When a wait ended, from the release's record of it.
fn wait_end(next: &ReleaseView, kind: WaitKind, wave: Option<u32>) -> Option<OffsetDateTime> {
    next.waits
        .iter()
        .rev()
        .find(|w| w.kind == kind && w.wave == wave)
        .and_then(|w| w.until)
}

/// Stable by time: a change without one keeps the time of the change before it.
fn in_time_order(changes: Vec<ReleaseChange>) -> Vec<ReleaseChange> {
    let mut last = OffsetDateTime::UNIX_EPOCH;
    let mut keyed: Vec<(OffsetDateTime, ReleaseChange)> = changes
        .into_iter()
        .map(|c| {
            if let Some(at) = c.at() {
                last = at;
            }
            (last, c)
        })
        .collect();
    keyed.sort_by_key(|(at, _)| *at);
    keyed.into_iter().map(|(_, c)| c).collect()
}

/// `next` as it was when its execution claimed it: RUNNING, nothing started, nothing waited
/// for. What a release seen for the first time is diffed against.
fn claimed_only(next: &ReleaseView) -> ReleaseView {
    ReleaseView {
        release_id: next.release_id.clone(),
        status: ReleaseStatus::Running,
        requested_at: next.requested_at,
        ended_at: None,
        source: String::new(),
        requested_by: None,
        on_failure: next.on_failure,
        max_concurrency: next.max_concurrency,
        description: None,
        cause: None,
        attempt: next.attempt,
        attempts: Vec::new(),
        waiting_for: None,
        cancel_requested: None,
        approvals: Vec::new(),
        waves: Vec::new(),
        waits: Vec::new(),
        gates: None,
        pipelines: Vec::new(),
    }
}

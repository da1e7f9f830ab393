//! The local run's progress on stderr, through the one view ([`crate::watch::View`]): the
//! runner's events keep a snapshot of the release up to date, and what is shown of the release
//! is what [`rm_core::view::changes`] finds between two snapshots — as `watch` shows a release
//! it polls. What is not the release's state (the sweep, an operator's action, the stack-wide
//! halt, a warning) is a line of its own.

use crate::watch::{clock, View};
use indicatif::ProgressDrawTarget;
use rm_core::lifecycle::{AttemptRecord, WaitingFor, WaveRecord, WaveStatus};
use rm_core::manifest::{Manifest, OnFailure};
use rm_core::release::{HistoryEntry, ReleaseStatus, RunStatus};
use rm_core::view::{changes, wait_kind, ReleaseView, RunView};
use rm_local::sim::Operation;
use rm_local::store::RunChange;
use rm_local::Progress;
use std::collections::HashMap;
use std::io::IsTerminal;
use std::sync::Mutex;
use std::time::Duration;
use time::OffsetDateTime;

pub struct Display {
    state: Mutex<State>,
}

struct State {
    view: View,
    /// The release as the view last showed it, and as it is now: each event changes `next`,
    /// the view shows `changes(prev, next)`, and the event is applied to `prev` too (no copy
    /// of a 500-pipeline release per event).
    prev: Option<ReleaseView>,
    next: Option<ReleaseView>,
    /// A pipeline's index in the snapshots' `pipelines`.
    index: HashMap<String, usize>,
    /// The simulated time the run started at, once an event told it (a run's change carries
    /// both its time and the time elapsed).
    start: Option<OffsetDateTime>,
}

fn out() -> std::io::Stderr {
    std::io::stderr()
}

impl Display {
    pub fn new(manifest: &Manifest) -> Self {
        let waves = manifest.waves().iter().map(|w| w.number).collect();
        Self::with(
            manifest.release_id.as_str(),
            manifest.pipelines.len(),
            waves,
        )
    }

    /// A display of a run of release `_release_id` (its pipelines and waves come with the
    /// run's claim).
    pub fn with(_release_id: &str, _total: usize, _waves: Vec<u32>) -> Self {
        let view = if std::io::stderr().is_terminal() {
            View::live(ProgressDrawTarget::stderr(), None)
        } else {
            View::lines()
        };
        Self::on_view(view)
    }

    /// A display on `view` (a test's).
    pub fn on_view(view: View) -> Self {
        Display {
            state: Mutex::new(State {
                view: view.for_local_run(),
                prev: None,
                next: None,
                index: HashMap::new(),
                start: None,
            }),
        }
    }

    pub fn on(&self, p: &Progress) {
        let mut guard = self.state.lock().unwrap_or_else(|e| e.into_inner());
        let s = &mut *guard;
        match p {
            Progress::Started {
                release_id,
                execution_name,
                waves,
                max_concurrency,
            } => {
                let view = claimed(release_id, execution_name, waves, *max_concurrency);
                s.index = view
                    .pipelines
                    .iter()
                    .enumerate()
                    .map(|(i, p)| (p.name.clone(), i))
                    .collect();
                let found = changes(None, &view);
                let now = view.requested_at;
                s.view.show(&found, &view, now, &mut out());
                s.prev = Some(view.clone());
                s.next = Some(view);
            }
            Progress::Run { change, elapsed } => {
                let start = change.at - *elapsed;
                s.start = Some(start);
                let known = s.index.get(&change.pipeline).copied();
                match (known, &mut s.next, &mut s.prev) {
                    (Some(i), Some(next), Some(prev)) => {
                        for view in [&mut *next, &mut *prev] {
                            view.requested_at = start;
                            if let Some(a) = view.attempts.first_mut() {
                                a.requested_at = start;
                            }
                        }
                        apply_run(next, i, change);
                        let found = changes(Some(prev), next);
                        s.view.show(&found, next, change.at, &mut out());
                        apply_run(prev, i, change);
                    }
                    // A change before the claim (a retry resetting its runs), or of a pipeline
                    // the claim did not name: said as it is.
                    _ => {
                        if !s.view.is_live() || change.status != RunStatus::Succeeded {
                            let text = format!(
                                "[{}] wave {} {} {}",
                                elapsed_clock(*elapsed),
                                change.wave,
                                change.pipeline,
                                change.status
                            );
                            s.view.note(&text, &mut out());
                        }
                    }
                }
            }
            Progress::Waiting {
                elapsed,
                waiting_for,
            } => {
                if s.start.is_none() {
                    // Gates and approvals begin to wait when they are evaluated: now.
                    if let WaitingFor::Approval { since, .. } | WaitingFor::Gate { since, .. } =
                        waiting_for
                    {
                        s.start = Some(*since - *elapsed);
                    }
                }
                let now = s.now(*elapsed);
                match (&mut s.next, &mut s.prev) {
                    (Some(next), Some(prev)) => {
                        next.waiting_for = Some(waiting_for.clone());
                        let found = changes(Some(prev), next);
                        s.view.show(&found, next, now, &mut out());
                        prev.waiting_for = Some(waiting_for.clone());
                    }
                    _ => {
                        let text = format!(
                            "[{}] {}",
                            elapsed_clock(*elapsed),
                            crate::watch::waiting(waiting_for)
                        );
                        s.view.note(&text, &mut out());
                    }
                }
            }
            Progress::WaitEnded {
                elapsed,
                kind,
                wave,
            } => {
                let now = s.now(*elapsed);
                let current = s
                    .next
                    .as_ref()
                    .and_then(|n| n.waiting_for.as_ref())
                    .map(wait_kind);
                match (&mut s.next, &mut s.prev) {
                    (Some(next), Some(prev)) if current == Some((*kind, *wave)) => {
                        next.waiting_for = None;
                        let found = changes(Some(prev), next);
                        s.view.show(&found, next, now, &mut out());
                        prev.waiting_for = None;
                    }
                    _ => {
                        let text = format!(
                            "[{}] {}",
                            elapsed_clock(*elapsed),
                            crate::watch::wait_ended(*kind, *wave)
                        );
                        s.view.note(&text, &mut out());
                    }
                }
            }
            Progress::Stopping { elapsed } => s.note(format!(
                "[{}] the release is failing or cancelled: stopping the running pipelines",
                elapsed_clock(*elapsed)
            )),
            Progress::Sweep {
                elapsed,
                polled,
                completed,
            } => {
                if *completed > 0 || !s.view.is_live() && *polled > 0 {
                    s.note(format!(
                        "[{}] sweep: polled {polled} waiting pipelines, completed {completed}",
                        elapsed_clock(*elapsed)
                    ));
                }
            }
            Progress::EventError { message } => s.note(format!("warning: {message}")),
            Progress::Operator {
                elapsed,
                action,
                refused,
            } => {
                let what = match &action.action {
                    Operation::Approve { wave } => format!("{} approves wave {wave}", action.by),
                    Operation::Reject { wave, reason } => {
                        format!("{} rejects wave {wave}: {reason}", action.by)
                    }
                    Operation::Cancel { reason } => {
                        format!("{} cancels the release: {reason}", action.by)
                    }
                    Operation::Halt { reason } => {
                        format!("{} halts every release: {reason}", action.by)
                    }
                    Operation::Unhalt => format!("{} lifts the halt", action.by),
                };
                let when = elapsed_clock(*elapsed);
                s.note(match refused {
                    None => format!("[{when}] operator: {what}"),
                    Some(why) => format!("[{when}] operator: {what} — refused: {why}"),
                });
            }
            Progress::Halt {
                elapsed,
                on,
                reason,
                by,
            } => s.note(if *on {
                format!(
                    "[{}] halt on: halted by {by}: {reason}; no wave and no pipeline starts until it is lifted",
                    elapsed_clock(*elapsed)
                )
            } else {
                format!(
                    "[{}] halt lifted by {by} (it was: {reason})",
                    elapsed_clock(*elapsed)
                )
            }),
            Progress::GaveUp { elapsed, cause } => {
                s.note(format!("[{}] {cause}", elapsed_clock(*elapsed)))
            }
        }
    }

    pub fn finish(&self) {
        let mut s = self.state.lock().unwrap_or_else(|e| e.into_inner());
        s.view.finish();
    }
}

impl State {
    fn note(&mut self, text: String) {
        self.view.note(&text, &mut out());
    }

    /// The simulated time `elapsed` into the run (the snapshot's own start while the run's is
    /// not known yet: lines count from it all the same).
    fn now(&self, elapsed: Duration) -> OffsetDateTime {
        let start = self
            .start
            .or(self.next.as_ref().map(|n| n.requested_at))
            .unwrap_or(OffsetDateTime::UNIX_EPOCH);
        start + elapsed
    }
}

fn elapsed_clock(d: Duration) -> String {
    clock(time::Duration::try_from(d).unwrap_or(time::Duration::ZERO))
}

/// The release as its claim found it: every pipeline not started, every wave pending.
fn claimed(
    release_id: &str,
    execution: &str,
    waves: &[(u32, Vec<String>)],
    max_concurrency: u32,
) -> ReleaseView {
    // Times count from the start; the run's changes tell the simulated clock's.
    let start = OffsetDateTime::UNIX_EPOCH;
    let mut pipelines: Vec<RunView> = waves
        .iter()
        .flat_map(|(wave, names)| {
            names.iter().map(move |name| RunView {
                name: name.clone(),
                wave: *wave,
                status: RunStatus::NotStarted,
                attempt: 1,
                execution_id: None,
                started_at: None,
                ended_at: None,
                history: Vec::new(),
                stop_abandoned: false,
                cause: None,
            })
        })
        .collect();
    pipelines.sort_by(|a, b| a.wave.cmp(&b.wave).then_with(|| a.name.cmp(&b.name)));
    ReleaseView {
        release_id: release_id.to_owned(),
        status: ReleaseStatus::Running,
        requested_at: start,
        ended_at: None,
        source: "local".to_owned(),
        requested_by: None,
        on_failure: OnFailure::default(),
        max_concurrency,
        description: None,
        cause: None,
        attempt: 1,
        attempts: vec![AttemptRecord {
            attempt: 1,
            execution: execution.to_owned(),
            requested_at: start,
            requested_by: None,
            ended_at: None,
            status: ReleaseStatus::Running,
            cause: None,
        }],
        waiting_for: None,
        cancel_requested: None,
        approvals: Vec::new(),
        waves: waves
            .iter()
            .map(|(wave, _)| WaveRecord {
                wave: *wave,
                status: WaveStatus::Pending,
                started_at: None,
                ended_at: None,
            })
            .collect(),
        waits: Vec::new(),
        gates: None,
        pipelines,
    }
}

/// A run's change, applied to a snapshot: its status and history, and its wave running from
/// its first start.
fn apply_run(view: &mut ReleaseView, i: usize, change: &RunChange) {
    let Some(run) = view.pipelines.get_mut(i) else {
        return;
    };
    run.status = change.status;
    if change.execution_id.is_some() {
        run.execution_id = change.execution_id.clone();
    }
    run.history.push(HistoryEntry {
        status: change.status,
        at: change.at,
        attempt: run.attempt,
        execution_id: change.execution_id.clone(),
    });
    if change.status == RunStatus::InProgress && run.started_at.is_none() {
        run.started_at = Some(change.at);
    }
    if change.status.is_terminal() {
        run.ended_at = Some(change.at);
    }
    if change.status == RunStatus::InProgress {
        if let Some(w) = view.waves.iter_mut().find(|w| w.wave == change.wave) {
            if w.status != WaveStatus::Running {
                w.status = WaveStatus::Running;
                w.started_at = Some(change.at);
            }
        }
    }
}

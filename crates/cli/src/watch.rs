//! The one view of a release, fed snapshots: `watch` against the local store or the API, and
//! the local run's progress. What changed comes from core ([`rm_core::view::changes`]); this
//! module only shows it: a line per change when not on a terminal, a live frame on one.

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use rm_core::lifecycle::{ApprovalStatus, WaitKind, WaitingFor, WaveStatus};
use rm_core::release::{ReleaseStatus, RunStatus};
use rm_core::view::{changes, ReleaseChange, ReleaseView, RunView};
use std::collections::BTreeMap;
use std::io::{IsTerminal, Write};
use std::sync::{Arc, Condvar, Mutex, OnceLock};
use std::time::{Duration, Instant};
use time::OffsetDateTime;

/// What one poll of the release found.
// A poll's release moves once, to the view: boxing it would buy nothing.
#[allow(clippy::large_enum_variant)]
pub enum Fetched {
    Release(ReleaseView),
    /// Shown, then polled again: a network error, expired credentials.
    Retry(String),
    /// Watching cannot go on: shown, and `watch` returns `code`.
    Fatal {
        message: String,
        code: i32,
    },
}

pub struct WatchOptions {
    /// A live frame (a terminal) rather than a line per change.
    pub live: bool,
    /// The frame's width; default: the terminal's.
    pub width: Option<u16>,
    /// Never polls faster than this (at least 2 s).
    pub min_interval: Duration,
    /// Backs off to at most this while nothing changes or fetches fail.
    pub max_interval: Duration,
}

/// Polls are never closer than this, whatever the options say.
pub const MIN_INTERVAL: Duration = Duration::from_secs(2);

impl WatchOptions {
    /// Live iff stdout is a terminal; polls every 2 s, backing off to 15 s.
    pub fn for_stdout() -> Self {
        WatchOptions {
            live: std::io::stdout().is_terminal(),
            width: None,
            min_interval: MIN_INTERVAL,
            max_interval: Duration::from_secs(15),
        }
    }
}

/// The release's exit code: 0 SUCCEEDED, 1 FAILED, 5 CANCELLED, None while RUNNING.
pub fn exit_code(view: &ReleaseView) -> Option<i32> {
    match view.status {
        ReleaseStatus::Running => None,
        ReleaseStatus::Succeeded => Some(0),
        ReleaseStatus::Failed => Some(1),
        ReleaseStatus::Cancelled => Some(5),
    }
}

/// Watching stopped on Ctrl-C (the release goes on).
pub const INTERRUPTED: i32 = 130;

/// How `watch` waits and tells the time: the real clock and Ctrl-C, or a test's script.
pub struct Pace<'a> {
    /// Waits between two polls; returns early on Ctrl-C.
    pub sleep: &'a dyn Fn(Duration),
    pub now: &'a dyn Fn() -> OffsetDateTime,
    /// Ctrl-C was pressed.
    pub interrupted: &'a dyn Fn() -> bool,
    /// Says what is not the release's: a fetch that failed, why watching stopped (stderr, so
    /// that `out` stays the release's and a `--json` watch still tells).
    pub warn: &'a dyn Fn(&str),
}

/// Polls `fetch` with backoff (never faster than `min_interval`; backs off while nothing
/// changes or fetches fail, resets on a change), shows every change, ends when the release is
/// not RUNNING with its exit code (0 SUCCEEDED, 1 FAILED, 5 CANCELLED). Ctrl-C stops watching,
/// not the release, says so (`stopped watching; release X goes on: release-machine watch X`)
/// and returns 130.
pub fn watch(
    release_id: &str,
    fetch: &mut dyn FnMut() -> Fetched,
    opts: &WatchOptions,
    out: &mut dyn Write,
) -> i32 {
    let ctrl_c = ctrl_c();
    let sleep = |d: Duration| ctrl_c.sleep(d);
    let interrupted = || ctrl_c.pressed();
    let now = OffsetDateTime::now_utc;
    let warn = |text: &str| eprintln!("{text}");
    let pace = Pace {
        sleep: &sleep,
        now: &now,
        interrupted: &interrupted,
        warn: &warn,
    };
    let view = if opts.live {
        View::live(ProgressDrawTarget::stdout(), opts.width)
    } else {
        View::lines()
    };
    watch_with(release_id, fetch, opts, out, &pace, view)
}

/// [`watch`] with its clock, its sleep and its screen given: what a test drives.
pub fn watch_with(
    release_id: &str,
    fetch: &mut dyn FnMut() -> Fetched,
    opts: &WatchOptions,
    out: &mut dyn Write,
    pace: &Pace<'_>,
    mut view: View,
) -> i32 {
    let min = opts.min_interval.max(MIN_INTERVAL);
    let max = opts.max_interval.max(min);
    let mut interval = min;
    let mut prev: Option<ReleaseView> = None;
    loop {
        if (pace.interrupted)() {
            return stopped(release_id, &mut view, pace);
        }
        match fetch() {
            Fetched::Release(next) => {
                let found = changes(prev.as_ref(), &next);
                view.show(&found, &next, (pace.now)(), out);
                if let Some(code) = exit_code(&next) {
                    view.finish();
                    let _ = write!(out, "{}", summary(&next));
                    return code;
                }
                interval = if found.is_empty() {
                    (interval * 2).min(max)
                } else {
                    min
                };
                prev = Some(next);
            }
            Fetched::Retry(message) => {
                interval = (interval * 2).min(max);
                let text = format!(
                    "warning: {message}; trying again in {} s",
                    interval.as_secs()
                );
                // Above the live frame; on stderr between the lines.
                if view.is_live() {
                    view.note(&text, out);
                } else {
                    (pace.warn)(&text);
                }
            }
            Fetched::Fatal { message, code } => {
                view.finish();
                (pace.warn)(&format!("error: {message}"));
                return code;
            }
        }
        if (pace.interrupted)() {
            return stopped(release_id, &mut view, pace);
        }
        (pace.sleep)(interval);
    }
}

fn stopped(release_id: &str, view: &mut View, pace: &Pace<'_>) -> i32 {
    view.finish();
    (pace.warn)(&format!(
        "stopped watching; release {release_id} goes on: release-machine watch {release_id}"
    ));
    INTERRUPTED
}

/// Ctrl-C while watching: a flag, and a wake-up for the sleep between polls (so nothing runs
/// between polls, and Ctrl-C is answered at once).
struct CtrlC {
    pressed: Mutex<bool>,
    wake: Condvar,
}

impl CtrlC {
    fn pressed(&self) -> bool {
        *self.pressed.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn sleep(&self, d: Duration) {
        let guard = self.pressed.lock().unwrap_or_else(|e| e.into_inner());
        let _ = self.wake.wait_timeout_while(guard, d, |pressed| !*pressed);
    }
}

fn ctrl_c() -> Arc<CtrlC> {
    static CTRL_C: OnceLock<Arc<CtrlC>> = OnceLock::new();
    CTRL_C
        .get_or_init(|| {
            let state = Arc::new(CtrlC {
                pressed: Mutex::new(false),
                wake: Condvar::new(),
            });
            let handler = Arc::clone(&state);
            // Without the handler Ctrl-C still ends the process: watching stops either way.
            let _ = ctrlc::set_handler(move || {
                *handler.pressed.lock().unwrap_or_else(|e| e.into_inner()) = true;
                handler.wake.notify_all();
            });
            state
        })
        .clone()
}

/// Where the view goes: a line per change, or a live frame on a terminal with the notable
/// changes as lines above it.
pub struct View {
    live: Option<Live>,
    /// Lines stamped with the time they were seen rather than the release's own times: the
    /// local run sees each change as it happens.
    stamp_observed: bool,
}

struct Live {
    bar: ProgressBar,
    width: Option<u16>,
    last_draw: Option<Instant>,
    /// Draws no more often than this (a local run changes thousands of times a second).
    every: Duration,
}

impl View {
    /// A line per change.
    pub fn lines() -> Self {
        View {
            live: None,
            stamp_observed: false,
        }
    }

    /// A live frame drawn on `target` (lines above it), `width` wide (default: the terminal's).
    pub fn live(target: ProgressDrawTarget, width: Option<u16>) -> Self {
        let bar = ProgressBar::with_draw_target(None, target);
        bar.set_style(
            ProgressStyle::with_template("{msg}")
                .unwrap_or_else(|_| ProgressStyle::default_spinner()),
        );
        View {
            live: Some(Live {
                bar,
                width,
                last_draw: None,
                every: Duration::ZERO,
            }),
            stamp_observed: false,
        }
    }

    /// The local run's: lines stamped when seen, frames at most every 50 ms.
    pub fn for_local_run(mut self) -> Self {
        self.stamp_observed = true;
        if let Some(live) = &mut self.live {
            live.every = Duration::from_millis(50);
        }
        self
    }

    pub fn is_live(&self) -> bool {
        self.live.is_some()
    }

    /// Shows `changes`, found in `view` at `now`.
    pub fn show(
        &mut self,
        changes: &[ReleaseChange],
        view: &ReleaseView,
        now: OffsetDateTime,
        out: &mut dyn Write,
    ) {
        let origin = attempt_start(view);
        for change in changes {
            if self.live.is_some() && !notable(change) {
                continue;
            }
            let at = if self.stamp_observed {
                now
            } else {
                change.at().unwrap_or(now)
            };
            if let Some(text) = change_line(change) {
                self.note(&format!("[{}] {text}", clock(at - origin)), out);
            }
        }
        if let Some(live) = &mut self.live {
            if live.last_draw.is_none_or(|t| t.elapsed() >= live.every) {
                let width = live.width.unwrap_or_else(terminal_width);
                live.bar.set_message(render_frame(view, now, width));
                live.last_draw = Some(Instant::now());
            }
        }
    }

    /// A line that is not a change of the release (an operator's action, a sweep, a retry).
    pub fn note(&mut self, text: &str, out: &mut dyn Write) {
        match &self.live {
            Some(live) => live.bar.println(text),
            None => {
                let _ = writeln!(out, "{text}");
            }
        }
    }

    /// Clears the live frame.
    pub fn finish(&mut self) {
        if let Some(live) = &self.live {
            live.bar.finish_and_clear();
        }
    }
}

fn terminal_width() -> u16 {
    console::Term::stdout()
        .size_checked()
        .or_else(|| console::Term::stderr().size_checked())
        .map_or(100, |(_, w)| w)
}

/// A live frame shows the pipelines that start and succeed; lines above it say the rest.
fn notable(change: &ReleaseChange) -> bool {
    !matches!(
        change,
        ReleaseChange::Pipeline {
            to: RunStatus::InProgress | RunStatus::Succeeded,
            ..
        }
    )
}

/// When the current attempt was requested: what elapsed times count from.
fn attempt_start(view: &ReleaseView) -> OffsetDateTime {
    view.attempts
        .iter()
        .find(|a| a.attempt == view.attempt)
        .map_or(view.requested_at, |a| a.requested_at)
}

/// `+1:02:03`, `-0:00:05`.
pub fn clock(d: time::Duration) -> String {
    let sign = if d.is_negative() { "-" } else { "+" };
    let s = d.whole_seconds().unsigned_abs();
    format!("{sign}{}:{:02}:{:02}", s / 3600, s / 60 % 60, s % 60)
}

fn rfc3339(t: OffsetDateTime) -> String {
    t.format(&time::format_description::well_known::Rfc3339)
        .unwrap_or_else(|_| t.to_string())
}

/// A change in words, without its time: `wave 1 payments-db-migrate Succeeded`. None: said
/// by another change (a wave waiting for its approval is said by the wait).
pub fn change_line(change: &ReleaseChange) -> Option<String> {
    Some(match change {
        ReleaseChange::Claimed {
            release_id,
            attempt,
            execution,
            pipelines,
            waves,
            max_concurrency,
            ..
        } => {
            let execution = execution.as_deref().unwrap_or("(unknown)");
            let which = if *attempt > 1 {
                format!(" (attempt {attempt})")
            } else {
                String::new()
            };
            format!(
                "release {release_id}: execution {execution} claimed it{which}; {pipelines} pipelines in {waves} waves, at most {max_concurrency} at once"
            )
        }
        ReleaseChange::CancelRequested { by, reason, .. } => {
            format!("cancel requested by {by}: {reason}; the release is being cancelled")
        }
        ReleaseChange::WaitEnded { kind, wave, .. } => wait_ended(*kind, *wave),
        ReleaseChange::Waiting { waiting_for, .. } => waiting(waiting_for),
        ReleaseChange::Approval {
            wave,
            status,
            by,
            reason,
            ..
        } => {
            let by = by.as_deref().unwrap_or("someone");
            let reason = reason
                .as_deref()
                .map(|r| format!(": {r}"))
                .unwrap_or_default();
            match status {
                ApprovalStatus::Waiting => return None,
                ApprovalStatus::Approved => format!("wave {wave} approved by {by}"),
                ApprovalStatus::Rejected => format!("wave {wave} rejected by {by}{reason}"),
                ApprovalStatus::TimedOut => format!("the approval of wave {wave} timed out"),
                ApprovalStatus::Cancelled => {
                    format!("the approval of wave {wave} was cancelled{reason}")
                }
            }
        }
        ReleaseChange::Wave {
            wave,
            position,
            of,
            to,
            ..
        } => match to {
            WaveStatus::Running => format!("wave {wave} ({position}/{of}) started"),
            WaveStatus::Succeeded
            | WaveStatus::Failed
            | WaveStatus::Cancelled
            | WaveStatus::Skipped => format!("wave {wave} {to}"),
            // The wait's own line says it.
            WaveStatus::Pending
            | WaveStatus::WaitingApproval
            | WaveStatus::WaitingGate
            | WaveStatus::Baking => return None,
        },
        ReleaseChange::Pipeline {
            name,
            wave,
            to,
            cause,
            ..
        } => match cause {
            Some(cause) if *to != RunStatus::Succeeded => {
                format!("wave {wave} {name} {to}: {cause}")
            }
            _ => format!("wave {wave} {name} {to}"),
        },
        ReleaseChange::Status {
            release_id,
            to,
            cause,
            ..
        } => match (to, cause) {
            // The claim's line says it.
            (ReleaseStatus::Running, _) => return None,
            (_, Some(cause)) => format!("release {release_id} {to}: {cause}"),
            (_, None) => format!("release {release_id} {to}"),
        },
    })
}

/// A wait that begins, in a line: `wave 2 waits for the gate: alarm prod-api-5xx is in ALARM`.
pub fn waiting(waiting_for: &WaitingFor) -> String {
    match waiting_for {
        WaitingFor::Approval { wave, .. } => format!("wave {wave} waits for its approval"),
        WaitingFor::Gate { wave, reasons, .. } => {
            format!("wave {wave} waits for the gate: {}", reasons.join("; "))
        }
        WaitingFor::Bake { wave, until } => format!("wave {wave} bakes until {}", rfc3339(*until)),
        WaitingFor::Halt {
            wave, reason, by, ..
        } => {
            let what = wave.map_or("the release".to_owned(), |w| format!("wave {w}"));
            format!("{what} is held by the halt: halted by {by}: {reason}")
        }
    }
}

/// A wait that ended, in a line (how it ended shows in what follows: the wave starts, or the
/// release ends).
pub fn wait_ended(kind: WaitKind, wave: Option<u32>) -> String {
    let wave = wave.map_or("the release".to_owned(), |w| format!("wave {w}"));
    match kind {
        WaitKind::Approval => format!("{wave} no longer waits for its approval"),
        WaitKind::Gate => format!("{wave} no longer waits for the gate"),
        WaitKind::Bake => format!("{wave}: the bake ended"),
        WaitKind::Halt => format!("{wave} is no longer held by the halt"),
    }
}

/// One wave's pipelines: ended, running (or stopping), not started.
#[derive(Default, Clone, Copy)]
struct Counts {
    total: usize,
    done: usize,
    running: usize,
    waiting: usize,
}

const LISTED: usize = 8;

/// The live frame: the release, one bar per wave (done / running / waiting), the running and
/// the failed pipelines with their elapsed time, what the release waits for and how to act on
/// it. Every line at most `width` characters.
pub fn render_frame(view: &ReleaseView, now: OffsetDateTime, width: u16) -> String {
    let width = usize::from(width.max(20));
    let origin = attempt_start(view);
    let mut lines: Vec<String> = Vec::new();
    let until = view.ended_at.unwrap_or(now);
    let running_total = view
        .pipelines
        .iter()
        .filter(|p| matches!(p.status, RunStatus::InProgress | RunStatus::Stopping))
        .count();
    lines.push(format!(
        "release {} {} · attempt {} · {} · {running_total} of {} running",
        view.release_id,
        view.status,
        view.attempt,
        clock(until - origin),
        view.pipelines.len()
    ));
    if let Some(cause) = &view.cause {
        lines.push(format!("  cause: {cause}"));
    }

    let mut waves: BTreeMap<u32, Counts> = view
        .waves
        .iter()
        .map(|w| (w.wave, Counts::default()))
        .collect();
    for p in &view.pipelines {
        let c = waves.entry(p.wave).or_default();
        c.total += 1;
        match p.status {
            RunStatus::NotStarted => c.waiting += 1,
            RunStatus::InProgress | RunStatus::Stopping => c.running += 1,
            _ => c.done += 1,
        }
    }
    let bar_width = width.saturating_sub(62).clamp(10, 30);
    for (wave, c) in &waves {
        let status = view
            .waves
            .iter()
            .find(|w| w.wave == *wave)
            // Pending and Running show in the counts.
            .filter(|w| !matches!(w.status, WaveStatus::Pending | WaveStatus::Running))
            .map(|w| format!(" · {}", w.status))
            .unwrap_or_default();
        lines.push(format!(
            "wave {wave:<3} [{}] {}/{} done · {} running · {} waiting{status}",
            bar(c, bar_width),
            c.done,
            c.total,
            c.running,
            c.waiting
        ));
    }

    let mut running: Vec<&RunView> = view
        .pipelines
        .iter()
        .filter(|p| matches!(p.status, RunStatus::InProgress | RunStatus::Stopping))
        .collect();
    running.sort_by_key(|p| (p.started_at, p.wave));
    listed(&mut lines, "running", &running, |p| {
        let stopping = if p.status == RunStatus::Stopping {
            " (stopping)"
        } else {
            ""
        };
        format!(
            "{}{stopping}",
            p.started_at.map(|s| span(now - s)).unwrap_or_default()
        )
    });
    let failed: Vec<&RunView> = view
        .pipelines
        .iter()
        .filter(|p| p.status.is_terminal() && !p.status.is_success())
        .collect();
    listed(&mut lines, "failed", &failed, |p| {
        let took = match (p.started_at, p.ended_at) {
            (Some(s), Some(e)) => format!(" after {}", span(e - s)),
            _ => String::new(),
        };
        let cause = p
            .cause
            .as_deref()
            .map(|c| format!(": {c}"))
            .unwrap_or_default();
        format!("{}{took}{cause}", p.status)
    });

    if let Some(c) = &view.cancel_requested {
        lines.push(format!(
            "being cancelled: requested by {} at {}: {}",
            c.by,
            clock(c.at - origin),
            c.reason
        ));
    }
    if let Some(w) = &view.waiting_for {
        waiting_lines(&mut lines, &view.release_id, w, origin, now);
    }
    let mut out = String::new();
    for line in lines {
        out.push_str(&fit(&line, width));
        out.push('\n');
    }
    out.pop();
    out
}

/// `=========>          `: the ended part, then a head while some run.
fn bar(c: &Counts, width: usize) -> String {
    let filled = (c.done * width).checked_div(c.total).unwrap_or(0);
    let mut s = "=".repeat(filled);
    if c.running > 0 && filled < width {
        s.push('>');
    }
    format!("{s:<width$}")
}

/// `label` then up to [`LISTED`] pipelines, a line each, the rest counted.
fn listed(
    lines: &mut Vec<String>,
    label: &str,
    runs: &[&RunView],
    detail: impl Fn(&RunView) -> String,
) {
    if runs.is_empty() {
        return;
    }
    let name_width = runs
        .iter()
        .take(LISTED)
        .map(|p| p.name.len())
        .max()
        .unwrap_or(0);
    lines.push(format!("{label}:"));
    for p in runs.iter().take(LISTED) {
        lines.push(format!(
            "  wave {:<3} {:<name_width$}  {}",
            p.wave,
            p.name,
            detail(p)
        ));
    }
    if runs.len() > LISTED {
        lines.push(format!("  … and {} more {label}", runs.len() - LISTED));
    }
}

/// What the release waits for, and the command that acts on it.
fn waiting_lines(
    lines: &mut Vec<String>,
    id: &str,
    waiting_for: &WaitingFor,
    origin: OffsetDateTime,
    now: OffsetDateTime,
) {
    let since = |t: OffsetDateTime| format!("since {} ({} ago)", clock(t - origin), span(now - t));
    match waiting_for {
        WaitingFor::Approval { wave, since: t } => {
            lines.push(format!(
                "waiting for the approval of wave {wave} {}",
                since(*t)
            ));
            lines.push(format!(
                "  approve: release-machine approve {id} --wave {wave}"
            ));
            lines.push(format!(
                "  reject:  release-machine reject {id} --wave {wave} --reason \"...\""
            ));
        }
        WaitingFor::Gate {
            wave,
            reasons,
            since: t,
        } => {
            lines.push(format!(
                "waiting for the gate before wave {wave} {}:",
                since(*t)
            ));
            for r in reasons {
                lines.push(format!("  - {r}"));
            }
            lines.push(format!(
                "  it opens by itself once these clear; to give up: release-machine cancel {id} --reason \"...\""
            ));
        }
        WaitingFor::Bake { wave, until } => {
            lines.push(format!(
                "baking after wave {wave} until {} ({} left)",
                rfc3339(*until),
                span(*until - now)
            ));
        }
        WaitingFor::Halt {
            wave,
            reason,
            by,
            since: t,
        } => {
            let what = wave.map_or("the release".to_owned(), |w| format!("wave {w}"));
            lines.push(format!(
                "{what} is held by the halt: halted by {by} {}: {reason}",
                since(*t)
            ));
            lines.push("  lift it: release-machine unhalt".to_owned());
        }
    }
}

/// `2h05m`, `12m30s`, `40s`.
fn span(d: time::Duration) -> String {
    let s = d.whole_seconds().max(0);
    match s {
        s if s >= 3600 => format!("{}h{:02}m", s / 3600, s / 60 % 60),
        s if s >= 60 => format!("{}m{:02}s", s / 60, s % 60),
        s => format!("{s}s"),
    }
}

/// Cut to `width` characters.
fn fit(line: &str, width: usize) -> String {
    if line.chars().count() <= width {
        return line.to_owned();
    }
    let mut s: String = line.chars().take(width.saturating_sub(1)).collect();
    s.push('…');
    s
}

/// What a watch ends with: the release's outcome, its attempts, approvals and waits, and its
/// pipelines (as the local run's summary and `status` show them).
pub fn summary(view: &ReleaseView) -> String {
    let waves: std::collections::BTreeSet<u32> = view.pipelines.iter().map(|p| p.wave).collect();
    let took = view
        .ended_at
        .map(|e| {
            format!(
                " after {}",
                clock(e - attempt_start(view)).trim_start_matches('+')
            )
        })
        .unwrap_or_default();
    let mut out = format!(
        "release {} {}{took} ({} pipelines in {} waves)\n",
        view.release_id,
        view.status,
        view.pipelines.len(),
        waves.len()
    );
    if let Some(cause) = &view.cause {
        out.push_str(&format!("  cause: {cause}\n"));
    }
    out.push_str(&release_details(view));
    out
}

/// The attempts (when retried), the approvals and the waits of a release, a line each, then
/// its pipelines: what the local run's summary, `status` and `watch` print under the release.
pub fn release_details(view: &ReleaseView) -> String {
    let mut out = lifecycle_lines(view);
    out.push_str(&pipeline_table(view));
    out
}

pub(crate) fn hms(t: Option<OffsetDateTime>) -> String {
    t.map(|t| format!("{:02}:{:02}:{:02}", t.hour(), t.minute(), t.second()))
        .unwrap_or_else(|| "-".into())
}

fn lifecycle_lines(view: &ReleaseView) -> String {
    let mut out = String::new();
    if view.attempts.len() > 1 {
        for a in &view.attempts {
            out.push_str(&format!(
                "  attempt {} {} requested {} by {}{}\n",
                a.attempt,
                a.status,
                rfc3339(a.requested_at),
                a.requested_by.as_deref().unwrap_or("-"),
                a.cause
                    .as_deref()
                    .map(|c| format!(": {c}"))
                    .unwrap_or_default()
            ));
        }
    }
    for a in &view.approvals {
        out.push_str(&format!(
            "  approval of wave {} (attempt {}): {}{}{}\n",
            a.wave,
            a.attempt,
            a.status,
            a.by.as_deref()
                .map(|b| format!(" by {b}"))
                .unwrap_or_default(),
            a.reason
                .as_deref()
                .map(|r| format!(": {r}"))
                .unwrap_or_default()
        ));
    }
    // Approvals have their lines above; the gate, bake and halt waits one each.
    for w in view.waits.iter().filter(|w| w.kind != WaitKind::Approval) {
        let what = match (w.kind, w.wave) {
            (WaitKind::Gate, Some(wave)) => format!("waited for the gate before wave {wave}"),
            (WaitKind::Bake, Some(wave)) => format!("baked after wave {wave}"),
            (WaitKind::Halt, Some(wave)) => format!("held by the halt (wave {wave})"),
            (WaitKind::Halt, None) => "held by the halt".to_owned(),
            (kind, _) => format!("waited ({kind:?})"),
        };
        out.push_str(&format!(
            "  {what}: {} -> {}{}{}\n",
            hms(Some(w.since)),
            hms(w.until),
            w.by.as_deref()
                .map(|b| format!(" (by {b})"))
                .unwrap_or_default(),
            // A bake's reason repeats its times; a failed bake's is the release's cause.
            if w.reasons.is_empty() || w.kind == WaitKind::Bake {
                String::new()
            } else {
                format!(": {}", w.reasons.join("; "))
            }
        ));
    }
    out
}

/// One line per pipeline for small releases; counts per wave and the pipelines that did not
/// succeed for large ones.
fn pipeline_table(view: &ReleaseView) -> String {
    let mut out = String::new();
    if view.pipelines.len() <= 40 {
        let width = view
            .pipelines
            .iter()
            .map(|p| p.name.len())
            .max()
            .unwrap_or(0);
        for p in &view.pipelines {
            out.push_str(&format!(
                "  wave {:<3} {:<width$}  {:<11} {} -> {}\n",
                p.wave,
                p.name,
                p.status.as_str(),
                hms(p.started_at),
                hms(p.ended_at),
            ));
        }
        return out;
    }
    let mut per_wave: BTreeMap<u32, BTreeMap<&str, usize>> = BTreeMap::new();
    for p in &view.pipelines {
        *per_wave
            .entry(p.wave)
            .or_default()
            .entry(p.status.as_str())
            .or_default() += 1;
    }
    for (wave, counts) in per_wave {
        let counts: Vec<String> = counts.iter().map(|(s, n)| format!("{n} {s}")).collect();
        out.push_str(&format!("  wave {wave:<3} {}\n", counts.join(", ")));
    }
    for p in view
        .pipelines
        .iter()
        .filter(|p| p.status != RunStatus::Succeeded && p.status != RunStatus::NotStarted)
    {
        out.push_str(&format!("  wave {:<3} {}  {}\n", p.wave, p.name, p.status));
    }
    out
}

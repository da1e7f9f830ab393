//! Live progress on stderr: a progress bar on a terminal, plain lines otherwise.

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use rm_core::lifecycle::{WaitKind, WaitingFor};
use rm_core::manifest::Manifest;
use rm_core::release::RunStatus;
use rm_local::sim::Operation;
use rm_local::Progress;
use std::io::IsTerminal;
use std::sync::Mutex;
use std::time::Duration;

struct State {
    total: usize,
    done: usize,
    running: usize,
    waves: Vec<u32>,
    current_wave: Option<u32>,
}

/// A wait that begins, in a line: `wave 2 waits for the gate: alarm prod-api-5xx is in ALARM`.
fn waiting(waiting_for: &WaitingFor) -> String {
    match waiting_for {
        WaitingFor::Approval { wave, .. } => format!("wave {wave} waits for its approval"),
        WaitingFor::Gate { wave, reasons, .. } => {
            format!("wave {wave} waits for the gate: {}", reasons.join("; "))
        }
        WaitingFor::Bake { wave, until } => format!(
            "wave {wave} bakes until {}",
            until
                .format(&time::format_description::well_known::Rfc3339)
                .unwrap_or_default()
        ),
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
fn wait_ended(kind: WaitKind, wave: Option<u32>) -> String {
    let wave = wave.map_or("the release".to_owned(), |w| format!("wave {w}"));
    match kind {
        WaitKind::Approval => format!("{wave} no longer waits for its approval"),
        WaitKind::Gate => format!("{wave} no longer waits for the gate"),
        WaitKind::Bake => format!("{wave}: the bake ended"),
        WaitKind::Halt => format!("{wave} is no longer held by the halt"),
    }
}

pub struct Display {
    state: Mutex<State>,
    /// None: plain lines.
    bar: Option<ProgressBar>,
}

fn clock(d: Duration) -> String {
    let s = d.as_secs();
    format!("+{}:{:02}:{:02}", s / 3600, s / 60 % 60, s % 60)
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

    /// A display of `total` pipelines to run in `waves` (a retry runs those that did not
    /// succeed).
    pub fn with(release_id: &str, total: usize, waves: Vec<u32>) -> Self {
        let bar = std::io::stderr().is_terminal().then(|| {
            let bar =
                ProgressBar::with_draw_target(Some(total as u64), ProgressDrawTarget::stderr());
            bar.set_style(
                ProgressStyle::with_template(
                    "{spinner} {prefix} [{bar:30.cyan/blue}] {pos}/{len} pipelines ended  {msg}",
                )
                .unwrap_or_else(|_| ProgressStyle::default_bar())
                .progress_chars("=> "),
            );
            bar.set_prefix(format!("release {release_id}"));
            bar
        });
        Display {
            state: Mutex::new(State {
                total,
                done: 0,
                running: 0,
                waves,
                current_wave: None,
            }),
            bar,
        }
    }

    fn line(&self, text: String) {
        match &self.bar {
            Some(bar) => bar.println(text),
            None => eprintln!("{text}"),
        }
    }

    pub fn on(&self, p: &Progress) {
        let mut s = self.state.lock().unwrap_or_else(|e| e.into_inner());
        match p {
            Progress::Started {
                release_id,
                execution_name,
                waves,
                max_concurrency,
            } => {
                self.line(format!(
                    "[+0:00:00] release {release_id}: execution {execution_name} claimed it; {} pipelines in {} waves, at most {max_concurrency} at once",
                    s.total,
                    waves.len()
                ));
            }
            Progress::Run { change, elapsed } => {
                if s.current_wave != Some(change.wave) && change.status == RunStatus::InProgress {
                    s.current_wave = Some(change.wave);
                    let n = s
                        .waves
                        .iter()
                        .position(|w| *w == change.wave)
                        .map_or(0, |i| i + 1);
                    self.line(format!(
                        "[{}] wave {} ({n}/{}) started",
                        clock(*elapsed),
                        change.wave,
                        s.waves.len()
                    ));
                }
                match change.status {
                    RunStatus::InProgress => s.running += 1,
                    RunStatus::Stopping => {}
                    st if st.is_terminal() => {
                        s.done += 1;
                        s.running = s.running.saturating_sub(1);
                    }
                    _ => {}
                }
                let notable =
                    !matches!(change.status, RunStatus::InProgress | RunStatus::Succeeded);
                if self.bar.is_none() || notable {
                    self.line(format!(
                        "[{}] wave {} {} {}",
                        clock(*elapsed),
                        change.wave,
                        change.pipeline,
                        change.status
                    ));
                }
                if let Some(bar) = &self.bar {
                    bar.set_position(s.done as u64);
                    bar.set_message(format!(
                        "wave {} · {} running · {} simulated",
                        change.wave,
                        s.running,
                        clock(*elapsed)
                    ));
                }
            }
            Progress::Stopping { elapsed } => self.line(format!(
                "[{}] the release is failing or cancelled: stopping the running pipelines",
                clock(*elapsed)
            )),
            Progress::Sweep {
                elapsed,
                polled,
                completed,
            } => {
                if *completed > 0 || self.bar.is_none() && *polled > 0 {
                    self.line(format!(
                        "[{}] sweep: polled {polled} waiting pipelines, completed {completed}",
                        clock(*elapsed)
                    ));
                }
            }
            Progress::EventError { message } => self.line(format!("warning: {message}")),
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
                match refused {
                    None => self.line(format!("[{}] operator: {what}", clock(*elapsed))),
                    Some(why) => self.line(format!(
                        "[{}] operator: {what} — refused: {why}",
                        clock(*elapsed)
                    )),
                }
            }
            Progress::Waiting {
                elapsed,
                waiting_for,
            } => self.line(format!("[{}] {}", clock(*elapsed), waiting(waiting_for))),
            Progress::WaitEnded {
                elapsed,
                kind,
                wave,
            } => self.line(format!("[{}] {}", clock(*elapsed), wait_ended(*kind, *wave))),
            Progress::Halt {
                elapsed,
                on,
                reason,
                by,
            } => self.line(if *on {
                format!(
                    "[{}] halt on: halted by {by}: {reason}; no wave and no pipeline starts until it is lifted",
                    clock(*elapsed)
                )
            } else {
                format!(
                    "[{}] halt lifted by {by} (it was: {reason})",
                    clock(*elapsed)
                )
            }),
            Progress::GaveUp { elapsed, cause } => {
                self.line(format!("[{}] {cause}", clock(*elapsed)))
            }
        }
    }

    pub fn finish(&self) {
        if let Some(bar) = &self.bar {
            bar.finish_and_clear();
        }
    }
}

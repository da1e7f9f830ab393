//! The waits between waves (ARCHITECTURE.md §5a): the gate before each wave, the bake after
//! each, and the stack-wide halt.
//!
//! Each wait is one `.waitForTaskToken` task of the state machine (a bounded number of history
//! events however long it waits: the task's entered/scheduled/started/submitted/succeeded/
//! exited). The task's Lambda ([`await_gate`], [`await_bake`]) evaluates at once and either
//! completes its own token (an open gate) or records the wait with its token on the release.
//! Everything after happens outside the execution, in [`reevaluate_waits`]: the one-minute
//! schedule, CloudWatch "Alarm State Change" events and halt changes call it; it completes
//! the token of a gate that opened or a bake that ended well, and fails it
//! ([`GATE_TIMED_OUT`], [`BAKE_FAILED`]) with a cause recorded on the release first (a
//! SendTaskFailure's cause may not reach the execution intact).
//!
//! The halt also holds pipeline starts inside a wave (`runs::start_run` leaves a run
//! NotStarted while it is on, and the release `waitingFor` the halt); lifting it starts them
//! at once ([`lift_halt`] → [`reevaluate_waits`]).

use super::gate::observe_gate;
use super::lifecycle::{change_release, change_release_with_runs, settle_waves, Writer};
use super::runs::retry_busy_start;
use super::{release_id, RunPorts};
use crate::error::TaskError;
use crate::events::{EventDraft, ReleaseEvent};
use crate::gate::{evaluate, Evaluation, GateSettings, Halt};
use crate::lifecycle::{GateWait, WaitKind, WaitRecord, WaitingFor, WaveStatus};
use crate::ports::{AlarmValue, ApiPorts, TokenDelivery};
use crate::release::{ReleaseId, ReleaseRecord, ReleaseStatus, RunStatus};
use crate::tasks::ApprovalRequest;
use serde::Serialize;
use serde_json::{json, Value};
use time::{Duration, OffsetDateTime};

/// The error a gate wait fails with after `maxWaitMinutes` closed.
pub const GATE_TIMED_OUT: &str = "GateTimedOut";
/// The error a bake fails with when an alarm of the gate was in ALARM during it.
pub const BAKE_FAILED: &str = "BakeFailed";

/// How long past a bake's end its alarm history is asked for again before the check counts
/// as unknown.
const HISTORY_GRACE: Duration = Duration::minutes(10);

/// What one re-evaluation did.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct GatesResponse {
    /// Waits looked at.
    pub evaluated: u32,
    /// Gates that opened and bakes that passed.
    pub opened: u32,
    /// Waits that failed the release (maxWaitMinutes, an alarm during a bake).
    pub failed: u32,
    /// Pipeline starts the halt held, started now.
    pub resumed: u32,
    /// Waits that could not be evaluated this time (tried again on the next call).
    pub errors: u32,
    /// When something is due next (a bake's end, a window's opening, a maxWait deadline):
    /// the local run wakes up then; on AWS the one-minute schedule is near enough.
    #[serde(with = "time::serde::rfc3339::option")]
    pub next_at: Option<OffsetDateTime>,
}

impl GatesResponse {
    fn due(&mut self, at: Option<OffsetDateTime>) {
        if let Some(at) = at {
            self.next_at = Some(self.next_at.map_or(at, |n| n.min(at)));
        }
    }
}

/// The gate wait before a wave (`.waitForTaskToken`): evaluates the manifest's gates (and the
/// halt, which holds every release). Open: the task completes at once. Closed: the wait is
/// recorded on the release (`waitingFor` gate or halt, the wave WaitingGate) with the token,
/// for [`reevaluate_waits`]. A retried task replaces the token.
pub async fn await_gate(req: &ApprovalRequest, ports: &RunPorts<'_>) -> Result<(), TaskError> {
    let rid = release_id(&req.release_id)?;
    let release = owned_running(&rid, &req.execution_name, ports).await?;
    let settings = settings_of(&release);
    let now = ports.clock.now();
    let observed = observe_gate(&settings, ports.sensors, ports.store).await?;
    let evaluation = evaluate(&settings, observed, now);
    if evaluation.pass {
        ports
            .tokens
            .succeed(&req.task_token, &json!({"wave": req.wave, "gate": "open"}))
            .await?;
        return Ok(());
    }
    let wave = req.wave;
    change_release_with_runs(&ports.writer(), &rid, |r, runs| {
        check_owned_running(r, &req.execution_name)?;
        let mut drafts = settle_waves(r, runs, Some(wave), now);
        let attempt = r.lifecycle.attempt;
        let l = &mut r.lifecycle;
        if let Some(gw) = l
            .gate_wait
            .as_mut()
            .filter(|g| g.kind == WaitKind::Gate && g.wave == wave)
        {
            gw.token = req.task_token.clone();
            return Ok((drafts, ()));
        }
        l.gate_wait = Some(GateWait {
            kind: WaitKind::Gate,
            wave,
            token: req.task_token.clone(),
            since: now,
            until: None,
            reasons: evaluation.reasons.clone(),
            halted_seconds: 0,
            halted_since: evaluation.halt.as_ref().map(|_| now),
            failure: None,
        });
        if let Some(w) = l.wave_mut(wave) {
            if w.status != WaveStatus::WaitingGate {
                w.status = WaveStatus::WaitingGate;
                drafts.push(EventDraft::wave_status(
                    attempt,
                    wave,
                    WaveStatus::WaitingGate,
                    now,
                ));
            }
        }
        enter_wait(
            r,
            gate_waiting_for(wave, &evaluation, now),
            now,
            &mut drafts,
        );
        Ok((drafts, ()))
    })
    .await?;
    Ok(())
}

/// The bake after a wave (`.waitForTaskToken`, when the gates ask for `bakeMinutes`): the
/// wave is Baking, the release `waitingFor` the bake until its end; [`reevaluate_waits`] ends
/// it (early, failed, when an alarm of the gate is in ALARM; at its end, failed when the alarm
/// history shows one was, else passed).
pub async fn await_bake(req: &ApprovalRequest, ports: &RunPorts<'_>) -> Result<(), TaskError> {
    let rid = release_id(&req.release_id)?;
    let release = owned_running(&rid, &req.execution_name, ports).await?;
    let minutes = settings_of(&release).bake_minutes;
    if minutes == 0 {
        ports
            .tokens
            .succeed(&req.task_token, &json!({"wave": req.wave, "baked": true}))
            .await?;
        return Ok(());
    }
    let now = ports.clock.now();
    let until = now + Duration::minutes(i64::from(minutes));
    let wave = req.wave;
    change_release_with_runs(&ports.writer(), &rid, |r, runs| {
        check_owned_running(r, &req.execution_name)?;
        let mut drafts = settle_waves(r, runs, Some(wave), now);
        let attempt = r.lifecycle.attempt;
        let l = &mut r.lifecycle;
        if let Some(gw) = l
            .gate_wait
            .as_mut()
            .filter(|g| g.kind == WaitKind::Bake && g.wave == wave)
        {
            gw.token = req.task_token.clone();
            return Ok((drafts, ()));
        }
        l.gate_wait = Some(GateWait {
            kind: WaitKind::Bake,
            wave,
            token: req.task_token.clone(),
            since: now,
            until: Some(until),
            reasons: Vec::new(),
            halted_seconds: 0,
            halted_since: None,
            failure: None,
        });
        if let Some(w) = l.wave_mut(wave) {
            w.status = WaveStatus::Baking;
            drafts.push(EventDraft::wave_status(
                attempt,
                wave,
                WaveStatus::Baking,
                now,
            ));
        }
        enter_wait(r, WaitingFor::Bake { wave, until }, now, &mut drafts);
        Ok((drafts, ()))
    })
    .await?;
    Ok(())
}

/// Re-evaluates every RUNNING release's gate or bake wait (of one release, with `scope`), and
/// starts the pipeline starts a lifted halt held. Never fails as a whole: a wait that cannot
/// be evaluated counts in `errors` and is tried again on the next call.
pub async fn reevaluate_waits(
    ports: &RunPorts<'_>,
    scope: Option<&ReleaseId>,
) -> Result<GatesResponse, TaskError> {
    let releases: Vec<ReleaseRecord> = match scope {
        Some(id) => ports.store.release_record(id).await?.into_iter().collect(),
        None => ports.store.running_releases().await?,
    };
    let halt = ports.store.halt().await?;
    let mut out = GatesResponse::default();
    for release in releases
        .into_iter()
        .filter(|r| r.status == ReleaseStatus::Running)
    {
        let rid = release.release_id.clone();
        let result = match release.lifecycle.gate_wait.clone() {
            Some(gw) => {
                out.evaluated += 1;
                reevaluate_one(&release, gw, ports, &mut out).await
            }
            None => resume_held_starts(&release, halt.as_ref(), ports, &mut out).await,
        };
        if let Err(e) = result {
            tracing::warn!(release = %rid, error = %e, "a wait could not be re-evaluated; tried again on the next call");
            out.errors += 1;
        }
    }
    Ok(out)
}

async fn reevaluate_one(
    release: &ReleaseRecord,
    gw: GateWait,
    ports: &RunPorts<'_>,
    out: &mut GatesResponse,
) -> Result<(), TaskError> {
    let now = ports.clock.now();
    if let Some(cause) = &gw.failure {
        // Recorded, not yet delivered (the send failed last time).
        let error = if gw.kind == WaitKind::Bake {
            BAKE_FAILED
        } else {
            GATE_TIMED_OUT
        };
        return fail_wait(release, &gw, error, cause, ports, out).await;
    }
    let settings = settings_of(release);
    match gw.kind {
        WaitKind::Bake => reevaluate_bake(release, &gw, &settings, now, ports, out).await,
        _ => reevaluate_gate(release, &gw, &settings, now, ports, out).await,
    }
}

async fn reevaluate_gate(
    release: &ReleaseRecord,
    gw: &GateWait,
    settings: &GateSettings,
    now: OffsetDateTime,
    ports: &RunPorts<'_>,
    out: &mut GatesResponse,
) -> Result<(), TaskError> {
    let observed = observe_gate(settings, ports.sensors, ports.store).await?;
    let evaluation = evaluate(settings, observed, now);
    if evaluation.pass {
        return pass_wait(release, gw, ports, out).await;
    }
    let (halted_seconds, halted_since) = halted_time(gw, evaluation.halt.as_ref(), now);
    let halted_now = halted_since.map_or(0, |s| (now - s).whole_seconds());
    let max = Duration::minutes(i64::from(settings.max_wait_minutes()));
    let waited = now - gw.since - Duration::seconds(halted_seconds + halted_now);
    if waited >= max {
        let cause = format!(
            "the gate before wave {} stayed closed for {} minutes: {}",
            gw.wave,
            max.whole_minutes(),
            evaluation.reasons.join("; ")
        );
        return fail_wait(release, gw, GATE_TIMED_OUT, &cause, ports, out).await;
    }
    if halted_since.is_none() {
        out.due(Some(now + (max - waited)));
    }
    out.due(evaluation.windows_open_at);
    let wave = gw.wave;
    let token = gw.token.clone();
    change_release(&ports.writer(), &release.release_id, |r| {
        let mut drafts = Vec::new();
        let Some(current) = r.lifecycle.gate_wait.as_mut().filter(|g| g.token == token) else {
            return Ok((drafts, ()));
        };
        current.reasons = evaluation.reasons.clone();
        current.halted_seconds = halted_seconds;
        current.halted_since = halted_since;
        enter_wait(
            r,
            gate_waiting_for(wave, &evaluation, now),
            now,
            &mut drafts,
        );
        Ok((drafts, ()))
    })
    .await?;
    Ok(())
}

/// The halted time of a gate wait: what it had, plus the halt that just ended; and since when
/// the current halt holds it.
fn halted_time(
    gw: &GateWait,
    halt: Option<&Halt>,
    now: OffsetDateTime,
) -> (i64, Option<OffsetDateTime>) {
    match (gw.halted_since, halt) {
        (None, Some(h)) => (gw.halted_seconds, Some(h.since.max(gw.since).min(now))),
        (Some(s), None) => (gw.halted_seconds + (now - s).whole_seconds().max(0), None),
        (since, _) => (gw.halted_seconds, since),
    }
}

async fn reevaluate_bake(
    release: &ReleaseRecord,
    gw: &GateWait,
    settings: &GateSettings,
    now: OffsetDateTime,
    ports: &RunPorts<'_>,
    out: &mut GatesResponse,
) -> Result<(), TaskError> {
    let names = &settings.alarm_names;
    let prefixes = &settings.alarm_prefixes;
    let watched = !(names.is_empty() && prefixes.is_empty());
    let until = gw.until.unwrap_or(gw.since);
    let alarmed: Vec<String> = if !watched {
        Vec::new()
    } else if now < until {
        // Early: an alarm in ALARM now fails the bake at once.
        let alarms = ports.sensors.alarms.describe(names, prefixes).await?;
        alarms
            .iter()
            .filter(|a| a.actions_enabled && a.state == AlarmValue::Alarm)
            .map(|a| format!("alarm {} is in ALARM", a.name))
            .collect()
    } else {
        // At the end: the history since the bake began catches a flap a look once a minute
        // misses.
        match ports
            .sensors
            .alarms
            .history(names, prefixes, gw.since)
            .await
        {
            Ok(history) => history
                .iter()
                .filter(|t| t.state == AlarmValue::Alarm && t.at <= until)
                .map(|t| format!("alarm {} was in ALARM at {}", t.name, rfc3339(t.at)))
                .collect(),
            // Tried again each re-evaluation for a while; then the check is unknown: the bake
            // fails closed, or passes with `failOpen`.
            Err(e) if now < until + HISTORY_GRACE => return Err(e.into()),
            Err(e) if settings.fail_open => {
                tracing::warn!(release = %release.release_id, wave = gw.wave, error = %e,
                    "the alarm history could not be read: failing open");
                Vec::new()
            }
            Err(e) => vec![format!(
                "the alarm history could not be read for {} minutes ({e}); failing closed",
                HISTORY_GRACE.whole_minutes()
            )],
        }
    };
    if !alarmed.is_empty() {
        let cause = format!(
            "the bake of wave {} failed: {}",
            gw.wave,
            alarmed.join("; ")
        );
        return fail_wait(release, gw, BAKE_FAILED, &cause, ports, out).await;
    }
    if now < until {
        out.due(Some(until));
        return Ok(());
    }
    pass_wait(release, gw, ports, out).await
}

/// Completes the wait's token and records that the release no longer waits (a passed bake's
/// wave is Succeeded).
async fn pass_wait(
    release: &ReleaseRecord,
    gw: &GateWait,
    ports: &RunPorts<'_>,
    out: &mut GatesResponse,
) -> Result<(), TaskError> {
    let output = json!({"wave": gw.wave, "passed": gw.kind});
    let delivery = ports.tokens.succeed(&gw.token, &output).await?;
    tracing::info!(release = %release.release_id, wave = gw.wave, kind = ?gw.kind, ?delivery, "wait passed");
    let now = ports.clock.now();
    let token = gw.token.clone();
    let kind = gw.kind;
    change_release_with_runs(&ports.writer(), &release.release_id, |r, runs| {
        let mut drafts = Vec::new();
        if r.lifecycle.gate_wait.as_ref().map(|g| &g.token) != Some(&token) {
            return Ok((drafts, ()));
        }
        let attempt = r.lifecycle.attempt;
        let wave = r.lifecycle.gate_wait.as_ref().map_or(0, |g| g.wave);
        r.lifecycle.gate_wait = None;
        leave_wait(r, now, &mut drafts);
        if kind == WaitKind::Bake {
            let ended = runs
                .iter()
                .filter(|x| x.spec.wave == wave)
                .filter_map(|x| x.ended_at)
                .max()
                .unwrap_or(now);
            if let Some(w) = r.lifecycle.wave_mut(wave) {
                w.status = WaveStatus::Succeeded;
                w.ended_at = Some(ended);
                drafts.push(EventDraft::wave_status(
                    attempt,
                    wave,
                    WaveStatus::Succeeded,
                    ended,
                ));
            }
        }
        Ok((drafts, ()))
    })
    .await?;
    out.opened += u32::from(delivery == TokenDelivery::Delivered || kind == WaitKind::Bake);
    Ok(())
}

/// Records why the wait failed (the release's cause), then fails its token; a send that fails
/// is sent again by the next re-evaluation.
async fn fail_wait(
    release: &ReleaseRecord,
    gw: &GateWait,
    error: &str,
    cause: &str,
    ports: &RunPorts<'_>,
    out: &mut GatesResponse,
) -> Result<(), TaskError> {
    let now = ports.clock.now();
    let token = gw.token.clone();
    let kind = gw.kind;
    change_release(&ports.writer(), &release.release_id, |r| {
        let mut drafts = Vec::new();
        let Some(current) = r.lifecycle.gate_wait.as_mut().filter(|g| g.token == token) else {
            return Ok((drafts, ()));
        };
        if current.failure.is_some() {
            return Ok((drafts, ()));
        }
        current.failure = Some(cause.to_owned());
        let wave = current.wave;
        leave_wait(r, now, &mut drafts);
        if kind == WaitKind::Bake {
            drafts.extend(r.lifecycle.end_wave(wave, WaveStatus::Failed, now));
        }
        Ok((drafts, ()))
    })
    .await?;
    let delivery = ports.tokens.fail(&token, error, cause).await?;
    tracing::warn!(release = %release.release_id, wave = gw.wave, error, cause, ?delivery, "wait failed");
    out.failed += 1;
    Ok(())
}

/// A release the halt held inside a wave (pipeline starts left NotStarted): once the halt is
/// lifted, its held starts are started now and it no longer waits.
async fn resume_held_starts(
    release: &ReleaseRecord,
    halt: Option<&Halt>,
    ports: &RunPorts<'_>,
    out: &mut GatesResponse,
) -> Result<(), TaskError> {
    let Some(WaitingFor::Halt { .. }) = release.lifecycle.waiting_for else {
        return Ok(());
    };
    if halt.is_some() || release.stop_requested {
        return Ok(());
    }
    out.evaluated += 1;
    let Some(stored) = ports.store.get(&release.release_id).await? else {
        return Ok(());
    };
    for run in stored
        .runs
        .into_iter()
        .filter(|x| x.status == RunStatus::NotStarted && x.task_token.is_some())
    {
        let started = retry_busy_start(run, ports).await?;
        out.resumed += u32::from(started.status != RunStatus::NotStarted);
    }
    let now = ports.clock.now();
    change_release(&ports.writer(), &release.release_id, |r| {
        let mut drafts = Vec::new();
        if matches!(r.lifecycle.waiting_for, Some(WaitingFor::Halt { .. }))
            && r.lifecycle.gate_wait.is_none()
        {
            leave_wait(r, now, &mut drafts);
        }
        Ok((drafts, ()))
    })
    .await?;
    Ok(())
}

/// A pipeline start inside `wave` is held by the halt: the release waits for it (recorded
/// once, not once per held start).
pub(super) async fn hold_for_halt(
    w: &Writer<'_>,
    release_id: &ReleaseId,
    wave: u32,
    halt: &Halt,
) -> Result<(), TaskError> {
    let now = w.clock.now();
    change_release(w, release_id, |r| {
        let mut drafts = Vec::new();
        if r.status != ReleaseStatus::Running
            || matches!(r.lifecycle.waiting_for, Some(WaitingFor::Halt { .. }))
        {
            return Ok((drafts, ()));
        }
        let waiting = WaitingFor::Halt {
            wave: Some(wave),
            reason: halt.reason.clone(),
            by: halt.by.clone(),
            since: halt.since.max(now),
        };
        enter_wait(r, waiting, now, &mut drafts);
        Ok((drafts, ()))
    })
    .await?;
    Ok(())
}

/// What a closed gate makes the release wait for: the halt when one holds it, else the gate.
fn gate_waiting_for(wave: u32, evaluation: &Evaluation, now: OffsetDateTime) -> WaitingFor {
    match &evaluation.halt {
        Some(h) => WaitingFor::Halt {
            wave: Some(wave),
            reason: h.reason.clone(),
            by: h.by.clone(),
            since: h.since.max(now),
        },
        None => WaitingFor::Gate {
            wave,
            reasons: evaluation.reasons.clone(),
            since: now,
        },
    }
}

fn wait_kind(waiting: &WaitingFor) -> WaitKind {
    match waiting {
        WaitingFor::Approval { .. } => WaitKind::Approval,
        WaitingFor::Gate { .. } => WaitKind::Gate,
        WaitingFor::Bake { .. } => WaitKind::Bake,
        WaitingFor::Halt { .. } => WaitKind::Halt,
    }
}

/// The release waits for `waiting`: a new kind of wait closes the open one and opens its own
/// (with a `Release Waiting` event); the same kind updates the reasons in place (no event:
/// an alarm's reason changing every minute is not news). `since` is kept while the kind stays.
fn enter_wait(
    r: &mut ReleaseRecord,
    waiting: WaitingFor,
    now: OffsetDateTime,
    drafts: &mut Vec<EventDraft>,
) {
    let attempt = r.lifecycle.attempt;
    let kind = wait_kind(&waiting);
    let l = &mut r.lifecycle;
    let same_kind = l.waiting_for.as_ref().map(wait_kind) == Some(kind);
    let (reasons, by) = match &waiting {
        WaitingFor::Gate { reasons, .. } => (reasons.clone(), None),
        WaitingFor::Halt { reason, by, .. } => {
            (vec![format!("halted by {by}: {reason}")], Some(by.clone()))
        }
        WaitingFor::Bake { wave, until } => (
            vec![format!("wave {wave} bakes until {}", rfc3339(*until))],
            None,
        ),
        WaitingFor::Approval { wave, .. } => {
            (vec![format!("wave {wave} waits for an approval")], None)
        }
    };
    let wave = match &waiting {
        WaitingFor::Approval { wave, .. }
        | WaitingFor::Gate { wave, .. }
        | WaitingFor::Bake { wave, .. } => Some(*wave),
        WaitingFor::Halt { wave, .. } => *wave,
    };
    if same_kind {
        let waiting = match (l.waiting_for.take(), waiting) {
            (Some(WaitingFor::Gate { since, .. }), WaitingFor::Gate { wave, reasons, .. }) => {
                WaitingFor::Gate {
                    wave,
                    reasons,
                    since,
                }
            }
            (_, w) => w,
        };
        l.waiting_for = Some(waiting);
        if let Some(open) = l.waits.iter_mut().rev().find(|w| w.until.is_none()) {
            open.reasons = reasons;
        }
        return;
    }
    for open in l.waits.iter_mut().filter(|w| w.until.is_none()) {
        open.until = Some(now);
    }
    l.waits.push(WaitRecord {
        kind,
        wave,
        reasons,
        by,
        since: now,
        until: None,
    });
    drafts.push(EventDraft::waiting_for(attempt, &waiting, now));
    l.waiting_for = Some(waiting);
}

/// The release no longer waits: the open wait ends now (`Release Waiting`, waiting false).
fn leave_wait(r: &mut ReleaseRecord, now: OffsetDateTime, drafts: &mut Vec<EventDraft>) {
    let attempt = r.lifecycle.attempt;
    let l = &mut r.lifecycle;
    if l.waiting_for.take().is_none() {
        return;
    }
    for open in l.waits.iter_mut().filter(|w| w.until.is_none()) {
        open.until = Some(now);
        drafts.push(EventDraft::waiting(
            attempt, open.kind, open.wave, false, now,
        ));
    }
}

/// The manifest's gates; none: the gate checks only the halt.
fn settings_of(release: &ReleaseRecord) -> GateSettings {
    release.lifecycle.gates.clone().unwrap_or_default()
}

fn rfc3339(at: OffsetDateTime) -> String {
    at.format(&time::format_description::well_known::Rfc3339)
        .unwrap_or_default()
}

async fn owned_running(
    rid: &ReleaseId,
    owner: &str,
    ports: &RunPorts<'_>,
) -> Result<ReleaseRecord, TaskError> {
    let release = ports
        .store
        .release_record(rid)
        .await?
        .ok_or_else(|| TaskError::NotFound(format!("release {rid} is not recorded")))?;
    check_owned_running(&release, owner)?;
    Ok(release)
}

fn check_owned_running(r: &ReleaseRecord, owner: &str) -> Result<(), TaskError> {
    if r.owner != owner {
        return Err(TaskError::Duplicate(r.release_id.to_string()));
    }
    if r.status != ReleaseStatus::Running {
        return Err(TaskError::ReleaseEnded(format!(
            "release {} ended with status {}",
            r.release_id, r.status
        )));
    }
    Ok(())
}

/// Turns the stack-wide halt on (`PUT /halt`, `release-machine halt`): no wave, no pipeline
/// start and no gate action goes on while it is; running pipeline executions are never
/// stopped. A halt already on keeps its `since`. Publishes `Halt Status Change` and
/// re-evaluates the waiting releases (they now wait for the halt).
pub async fn set_halt(reason: &str, by: &str, ports: &ApiPorts<'_>) -> Result<Halt, TaskError> {
    let reason = reason.trim();
    if reason.is_empty() {
        return Err(TaskError::BadInput(
            "a halt needs a reason: {\"reason\": \"incident 4711\"}".into(),
        ));
    }
    let now = ports.clock.now();
    let since = ports.store.halt().await?.map_or(now, |h| h.since);
    let halt = Halt {
        reason: reason.to_owned(),
        by: by.to_owned(),
        since,
    };
    ports.store.set_halt(Some(&halt)).await?;
    publish_halt(ports, &ReleaseEvent::halt_status(true, reason, by, now)).await;
    reevaluate_after_halt_change(ports).await;
    Ok(halt)
}

/// Lifts the halt (`DELETE /halt`, `release-machine unhalt`): the waiting releases resume at
/// once, not at the next schedule. Returns the halt it lifted (`None`: none was on).
pub async fn lift_halt(by: &str, ports: &ApiPorts<'_>) -> Result<Option<Halt>, TaskError> {
    let lifted = ports.store.set_halt(None).await?;
    if let Some(h) = &lifted {
        let now = ports.clock.now();
        publish_halt(ports, &ReleaseEvent::halt_status(false, &h.reason, by, now)).await;
    }
    reevaluate_after_halt_change(ports).await;
    Ok(lifted)
}

/// `{"on": true, "reason", "by", "since"}` or `{"on": false}`.
pub fn halt_view(halt: Option<&Halt>) -> Value {
    match halt {
        Some(h) => json!({"on": true, "reason": h.reason, "by": h.by, "since": rfc3339(h.since)}),
        None => json!({"on": false}),
    }
}

/// A halt change re-evaluates the waits at once; what fails here the one-minute schedule
/// does again.
async fn reevaluate_after_halt_change(ports: &ApiPorts<'_>) {
    match reevaluate_waits(&ports.run(), None).await {
        Ok(out) => tracing::info!(?out, "waits re-evaluated after a halt change"),
        Err(e) => {
            tracing::warn!(error = %e, "waits not re-evaluated after a halt change; the schedule will")
        }
    }
}

/// `Halt Status Change` is the stack's, not a release's: it has no outbox; sent with the
/// publisher's retries, a failure is logged (the halt itself is recorded either way).
async fn publish_halt(ports: &ApiPorts<'_>, event: &ReleaseEvent) {
    let batch = std::slice::from_ref(event);
    for _ in 0..4 {
        match ports.bus.put(batch).await {
            Ok(rejected) if rejected.is_empty() => return,
            Ok(_) => tracing::info!("Halt Status Change rejected; sending it again"),
            Err(e) => tracing::warn!(error = %e, "Halt Status Change not published yet"),
        }
    }
    tracing::error!(event = %event.event_id_of(), "Halt Status Change could not be published");
}

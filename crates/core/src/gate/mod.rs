//! The gate (ARCHITECTURE.md §5a): one evaluation of alarms, AWS Health, deployment windows,
//! the stack-wide halt and (inside a pipeline) the release that started the execution, used
//! between waves (the manifest's `gates`) and by the health-gate action (its UserParameters).
//! Pure: the use cases observe the world ([`crate::usecases::observe_gate`]) and hand what they
//! saw to [`evaluate`].

mod validate;
pub mod windows;

pub use validate::{
    GateContext, DEFAULT_GATE_MAX_WAIT_MINUTES, MAX_BAKE_MINUTES, MAX_GATE_MAX_WAIT_MINUTES,
    MAX_WAIT_MINUTES, MAX_WINDOWS, USER_PARAMETERS_EXAMPLE,
};

use crate::ports::{AlarmState, AlarmTransition, AlarmValue, HealthIssue, PortResult};
use serde::{Deserialize, Serialize};
use time::OffsetDateTime;

/// The gate's settings: the manifest's `gates`, or the health-gate action's UserParameters
/// (JSON).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct GateSettings {
    /// Alarms by exact name.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub alarm_names: Vec<String>,
    /// Alarms whose names start with one of these.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub alarm_prefixes: Vec<String>,
    /// What INSUFFICIENT_DATA means: `fail` (default) or `pass`.
    #[serde(default, skip_serializing_if = "InsufficientData::is_default")]
    pub insufficient_data: InsufficientData,
    /// AWS Health checks (need a Business support plan): off unless enabled.
    #[serde(default, skip_serializing_if = "HealthSettings::is_default")]
    pub health: HealthSettings,
    /// When a configured check cannot be evaluated: fail closed (default) or open.
    #[serde(default, skip_serializing_if = "is_false")]
    pub fail_open: bool,
    /// Deployment windows: when the gate may open.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub windows: Option<Windows>,
    /// Between waves: wait this long after each wave, failing on an alarm. Inside a
    /// pipeline: each alarm has been OK at least this long.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub bake_minutes: u32,
    /// Between waves: how long a wave waits for a closed gate before the release fails
    /// (halted time not counted). `None`: [`DEFAULT_GATE_MAX_WAIT_MINUTES`]
    /// ([`GateSettings::max_wait_minutes`]).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_wait_minutes: Option<u32>,
    /// Inside a pipeline: hold the job (continuation tokens) this long before failing it.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub wait_minutes: u32,
    /// Inside a pipeline: `#{codepipeline.PipelineExecutionId}`, to find the release.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub execution_id: Option<String>,
}

/// Deployment windows in a time zone.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Windows {
    /// An IANA time zone (`Europe/Berlin`).
    pub timezone: String,
    /// When deployments are allowed; none: always (unless denied).
    #[serde(default)]
    pub allow: Vec<AllowWindow>,
    /// When they are not, whatever `allow` says.
    #[serde(default)]
    pub deny: Vec<DenyWindow>,
}

/// `{"days": ["Mon","Tue"], "from": "09:00", "to": "16:00"}`: local times; `to` exclusive; a
/// `to` before `from` spans midnight and belongs to the day it starts.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct AllowWindow {
    /// `Mon` … `Sun`; none: every day.
    #[serde(default)]
    pub days: Vec<String>,
    pub from: String,
    pub to: String,
}

/// `{"from": "2026-12-20T00:00", "to": "2027-01-04T00:00", "reason": "year-end freeze"}`:
/// local date-times; `to` exclusive.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct DenyWindow {
    pub from: String,
    pub to: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum InsufficientData {
    #[default]
    Fail,
    Pass,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct HealthSettings {
    #[serde(default)]
    pub enabled: bool,
    #[serde(default)]
    pub regions: Vec<String>,
    #[serde(default)]
    pub services: Vec<String>,
}

// Serde's skip_serializing_if takes a reference.
#[allow(clippy::trivially_copy_pass_by_ref)]
fn is_zero(n: &u32) -> bool {
    *n == 0
}

#[allow(clippy::trivially_copy_pass_by_ref)]
fn is_false(b: &bool) -> bool {
    !*b
}

impl InsufficientData {
    #[allow(clippy::trivially_copy_pass_by_ref)]
    fn is_default(&self) -> bool {
        *self == InsufficientData::default()
    }
}

impl HealthSettings {
    fn is_default(&self) -> bool {
        *self == HealthSettings::default()
    }
}

impl GateSettings {
    /// Parses and checks UserParameters; empty means "no checks configured". The error lists
    /// every problem with its path and shows an example.
    pub fn parse(user_parameters: Option<&str>) -> Result<GateSettings, String> {
        GateSettings::from_user_parameters(user_parameters).map_err(|errors| {
            let problems: Vec<String> = errors.iter().map(ToString::to_string).collect();
            format!(
                "UserParameters is not valid gate settings: {}. Expected JSON such as {}",
                problems.join("; "),
                USER_PARAMETERS_EXAMPLE
            )
        })
    }

    /// Between waves: how long a wave waits for a closed gate before the release fails.
    pub fn max_wait_minutes(&self) -> u32 {
        self.max_wait_minutes
            .unwrap_or(DEFAULT_GATE_MAX_WAIT_MINUTES)
    }

    /// Whether the gate looks at this alarm (by name or prefix).
    pub fn selects_alarm(&self, name: &str) -> bool {
        self.alarm_names.iter().any(|n| n == name)
            || self
                .alarm_prefixes
                .iter()
                .any(|p| name.starts_with(p.as_str()))
    }
}

/// What a held health-gate job carries to its next invocation (PutJobSuccessResult's
/// `continuationToken`, a string; CodePipeline hands it back in the next job's
/// `data.continuationToken`:
/// <https://docs.aws.amazon.com/codepipeline/latest/APIReference/API_PutJobSuccessResult.html>):
/// `{"firstEvaluatedAt": "2026-12-01T09:00:00Z"}`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct GateContinuation {
    /// When the action first evaluated the gate: `waitMinutes` count from here.
    #[serde(with = "time::serde::rfc3339")]
    pub first_evaluated_at: OffsetDateTime,
}

impl GateContinuation {
    pub fn token(&self) -> String {
        // A struct of one timestamp always serializes.
        serde_json::to_string(self).unwrap_or_default()
    }

    /// The token of the job before; `None` when there is none or it does not read (then this
    /// is a first evaluation, and the wait starts again).
    pub fn read(token: Option<&str>) -> Option<GateContinuation> {
        let token = token.map(str::trim).filter(|t| !t.is_empty())?;
        match serde_json::from_str(token) {
            Ok(c) => Some(c),
            Err(e) => {
                tracing::warn!(error = %e, "health gate: the continuation token does not read; evaluating as a first evaluation");
                None
            }
        }
    }
}

/// The stack-wide halt: while it is on, no wave, no pipeline start and no gate action goes on.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Halt {
    pub reason: String,
    pub by: String,
    #[serde(with = "time::serde::rfc3339")]
    pub since: OffsetDateTime,
}

impl Halt {
    /// `halted by alice: incident 4711`
    pub fn reason_text(&self) -> String {
        format!("halted by {}: {}", self.by, self.reason)
    }
}

/// What the gate's checks saw. `None`: the check is not configured; `Some(Err)`: it could not
/// be evaluated.
#[derive(Debug, Clone, Default)]
pub struct Observed {
    pub alarms: Option<PortResult<Vec<AlarmState>>>,
    pub health: Option<PortResult<Vec<HealthIssue>>>,
    /// The stack-wide halt, if on.
    pub halt: Option<Halt>,
    /// Inside a pipeline: why the release that started the execution holds it (it ended
    /// FAILED or CANCELLED), if it does.
    pub release: Option<String>,
}

/// Open, closed, or unknown (a check could not be evaluated).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Verdict {
    Open,
    Closed,
    Unknown,
}

/// The gate's answer: pass or hold, with every reason.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Evaluation {
    pub verdict: Verdict,
    /// Open, or unknown with `failOpen` and nothing closed.
    pub pass: bool,
    /// Why it is closed (or unknown): one line per reason.
    pub reasons: Vec<String>,
    /// What was checked, when it is open.
    pub notes: Vec<String>,
    /// The halt that holds it, if one does.
    pub halt: Option<Halt>,
    /// When the deployment windows next open, if they are what keeps it closed now.
    pub windows_open_at: Option<OffsetDateTime>,
}

impl Evaluation {
    /// One line: `healthy: 2 alarm(s) checked` or `deployment held: alarm x is in ALARM; ...`.
    pub fn summary(&self) -> String {
        if self.pass && self.reasons.is_empty() {
            let detail = if self.notes.is_empty() {
                "no checks configured".to_owned()
            } else {
                self.notes.join(", ")
            };
            format!("healthy: {detail}")
        } else if self.verdict == Verdict::Unknown {
            let verdict = if self.pass {
                "failing open"
            } else {
                "failing closed"
            };
            format!("{verdict}: {}", self.reasons.join("; "))
        } else {
            format!("deployment held: {}", self.reasons.join("; "))
        }
    }
}

/// The one gate evaluation: pure, from what the checks saw at `now`. Between waves; inside a
/// pipeline use [`evaluate_in_pipeline`].
pub fn evaluate(settings: &GateSettings, observed: Observed, now: OffsetDateTime) -> Evaluation {
    evaluate_with(settings, observed, now, false)
}

/// The health-gate action's evaluation: [`evaluate`], and with `bakeMinutes` each checked
/// alarm in OK must have been OK that long ([`alarms_not_baked`]).
pub fn evaluate_in_pipeline(
    settings: &GateSettings,
    observed: Observed,
    now: OffsetDateTime,
) -> Evaluation {
    evaluate_with(settings, observed, now, true)
}

fn evaluate_with(
    settings: &GateSettings,
    observed: Observed,
    now: OffsetDateTime,
    ok_for_bake: bool,
) -> Evaluation {
    let mut blockers = Vec::new();
    let mut notes = Vec::new();
    let mut unevaluated = Vec::new();
    let mut windows_open_at = None;
    if let Some(halt) = &observed.halt {
        blockers.push(halt.reason_text());
    }
    if let Some(release) = &observed.release {
        blockers.push(release.clone());
    }
    if let Some(w) = &settings.windows {
        match windows::check(w, now) {
            Err(e) => unevaluated.push(format!("the deployment windows could not be read ({e})")),
            Ok(state) if state.is_open() => notes.push("inside the deployment windows".into()),
            Ok(state) => {
                blockers.extend(state.reasons);
                windows_open_at = state.opens_at;
            }
        }
    }
    match observed.alarms {
        None => {}
        Some(Err(e)) => unevaluated.push(format!("CloudWatch alarms could not be read ({e})")),
        Some(Ok(alarms)) => {
            let mut checked = 0;
            for a in alarms.iter().filter(|a| a.actions_enabled) {
                checked += 1;
                match (a.state, settings.insufficient_data) {
                    (AlarmValue::Alarm, _) => blockers.push(format!(
                        "alarm {} is in ALARM{}",
                        a.name,
                        a.reason.as_deref().map(|r| format!(" ({r})")).unwrap_or_default()
                    )),
                    (AlarmValue::InsufficientData, InsufficientData::Fail) => blockers.push(format!(
                        "alarm {} has INSUFFICIENT_DATA (set \"insufficientData\": \"pass\" to allow)",
                        a.name
                    )),
                    _ => {}
                }
            }
            for name in &settings.alarm_names {
                if !alarms.iter().any(|a| &a.name == name) {
                    blockers.push(format!("alarm {name} does not exist"));
                }
            }
            if ok_for_bake {
                blockers.extend(alarms_not_baked(settings, &alarms, now));
            }
            notes.push(format!("{checked} alarm(s) checked"));
        }
    }
    match observed.health {
        None => {}
        Some(Err(e)) => unevaluated.push(format!("AWS Health could not be read ({e})")),
        Some(Ok(issues)) => {
            for i in &issues {
                blockers.push(format!(
                    "AWS Health reports an open issue: {} in {} ({})",
                    i.event_type_code, i.region, i.service
                ));
            }
            notes.push(format!("{} open AWS Health issue(s)", issues.len()));
        }
    }
    let halt = observed.halt;
    if !unevaluated.is_empty() {
        let pass = settings.fail_open && blockers.is_empty();
        blockers.extend(unevaluated);
        return Evaluation {
            verdict: Verdict::Unknown,
            pass,
            reasons: blockers,
            notes,
            halt,
            windows_open_at,
        };
    }
    Evaluation {
        verdict: if blockers.is_empty() {
            Verdict::Open
        } else {
            Verdict::Closed
        },
        pass: blockers.is_empty(),
        reasons: blockers,
        notes,
        halt,
        windows_open_at,
    }
}

/// An instant as RFC 3339 in UTC: `2026-12-01T09:20:00Z`.
pub fn utc_text(t: OffsetDateTime) -> String {
    t.to_offset(time::UtcOffset::UTC)
        .format(&time::format_description::well_known::Rfc3339)
        .unwrap_or_else(|_| t.to_string())
}

/// A bake's look back (between waves): each change of a gate alarm into ALARM during the bake
/// fails it, `alarm prod-api-5xx was in ALARM at 2026-12-01T09:20:00Z`, oldest first. The
/// history (DescribeAlarmHistory) catches a flap that a once-a-minute look would miss.
pub fn bake_failures(settings: &GateSettings, history: &[AlarmTransition]) -> Vec<String> {
    history
        .iter()
        .filter(|t| t.state == AlarmValue::Alarm && settings.selects_alarm(&t.name))
        .map(|t| format!("alarm {} was in ALARM at {}", t.name, utc_text(t.at)))
        .collect()
}

/// Inside a pipeline, `bakeMinutes`: each checked alarm in OK must have been OK that long, by
/// its `StateTransitionedTimestamp` (not `StateUpdatedTimestamp`, which also moves when only
/// the evaluation state changes): `alarm X has been OK for only 3 of 15 minutes`. An alarm
/// whose transition time is unknown counts as baked: CloudWatch always reports it, so only a
/// sensor that cannot say is left, and holding every deployment on it would hold them forever.
pub fn alarms_not_baked(
    settings: &GateSettings,
    alarms: &[AlarmState],
    now: OffsetDateTime,
) -> Vec<String> {
    if settings.bake_minutes == 0 {
        return Vec::new();
    }
    let bake = time::Duration::minutes(i64::from(settings.bake_minutes));
    alarms
        .iter()
        .filter(|a| a.actions_enabled && a.state == AlarmValue::Ok)
        .filter_map(|a| {
            let since = a.transitioned_at?;
            let ok_for = now - since;
            (ok_for < bake).then(|| {
                format!(
                    "alarm {} has been OK for only {} of {} minutes",
                    a.name,
                    ok_for.whole_minutes().max(0),
                    settings.bake_minutes
                )
            })
        })
        .collect()
}

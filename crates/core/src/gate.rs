//! The gate (ARCHITECTURE.md §5a): one evaluation of alarms, AWS Health, deployment windows,
//! the stack-wide halt and (inside a pipeline) the release that started the execution, used
//! between waves (the manifest's `gates`) and by the health-gate action (its UserParameters).
//! Pure: the use cases observe the world ([`crate::usecases::observe_gate`]) and hand what they
//! saw to [`evaluate`].

use crate::ports::{AlarmState, AlarmValue, HealthIssue, PortResult};
use serde::{Deserialize, Serialize};
use time::OffsetDateTime;

/// The gate's settings: the manifest's `gates`, or the health-gate action's UserParameters
/// (JSON).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct GateSettings {
    /// Alarms by exact name.
    #[serde(default)]
    pub alarm_names: Vec<String>,
    /// Alarms whose names start with one of these.
    #[serde(default)]
    pub alarm_prefixes: Vec<String>,
    /// What INSUFFICIENT_DATA means: `fail` (default) or `pass`.
    #[serde(default)]
    pub insufficient_data: InsufficientData,
    /// AWS Health checks (need a Business support plan): off unless enabled.
    #[serde(default)]
    pub health: HealthSettings,
    /// When a configured check cannot be evaluated: fail closed (default) or open.
    #[serde(default)]
    pub fail_open: bool,
    /// Deployment windows: when the gate may open.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub windows: Option<Windows>,
    /// Between waves: wait this long after each wave, failing on an alarm. Inside a
    /// pipeline: each alarm has been OK at least this long.
    #[serde(default)]
    pub bake_minutes: u32,
    /// Between waves: how long a wave waits for a closed gate before the release fails
    /// (halted time not counted).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_wait_minutes: Option<u32>,
    /// Inside a pipeline: hold the job (continuation tokens) this long before failing it.
    #[serde(default)]
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

impl GateSettings {
    /// Parses UserParameters; empty means "no checks configured".
    pub fn parse(user_parameters: Option<&str>) -> Result<GateSettings, String> {
        match user_parameters.map(str::trim) {
            None | Some("") => Ok(GateSettings::default()),
            Some(text) => serde_json::from_str(text).map_err(|e| {
                format!(
                    "UserParameters is not valid gate settings: {e}. Expected JSON such as \
                     {{\"alarmNames\": [\"api-5xx\"], \"alarmPrefixes\": [\"prod-\"], \
                     \"insufficientData\": \"fail\", \"health\": {{\"enabled\": true, \
                     \"regions\": [\"us-east-1\"], \"services\": [\"EC2\"]}}, \"failOpen\": false}}"
                )
            }),
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

/// The one gate evaluation: pure, from what the checks saw at `now`.
pub fn evaluate(settings: &GateSettings, observed: Observed, now: OffsetDateTime) -> Evaluation {
    let _ = now;
    let mut blockers = Vec::new();
    let mut notes = Vec::new();
    let mut unevaluated = Vec::new();
    if let Some(halt) = &observed.halt {
        blockers.push(halt.reason_text());
    }
    if let Some(release) = &observed.release {
        blockers.push(release.clone());
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
            windows_open_at: None,
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
        windows_open_at: None,
    }
}

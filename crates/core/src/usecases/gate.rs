//! The health gate: a CodePipeline "invoke Lambda" action that holds a deployment while
//! configured CloudWatch alarms fire or AWS Health reports an open issue.

use crate::error::TaskError;
use crate::ports::{AlarmState, AlarmValue, GatePorts, HealthIssue, PortResult};
use serde::Deserialize;

/// The action's UserParameters (JSON).
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
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
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum InsufficientData {
    #[default]
    Fail,
    Pass,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
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

/// Pass or hold, with a reason a person can act on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GateDecision {
    pub pass: bool,
    pub reason: String,
}

/// Pure decision from what the checks returned. `alarms`/`issues` are `Err` when the check
/// could not be evaluated.
pub fn evaluate_gate(
    settings: &GateSettings,
    alarms: Option<PortResult<Vec<AlarmState>>>,
    issues: Option<PortResult<Vec<HealthIssue>>>,
) -> GateDecision {
    let mut blockers = Vec::new();
    let mut notes = Vec::new();
    let mut unevaluated = Vec::new();
    match alarms {
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
    match issues {
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
    if !unevaluated.is_empty() {
        let fail_open = settings.fail_open && blockers.is_empty();
        let verdict = if fail_open {
            "failing open"
        } else {
            "failing closed"
        };
        blockers.extend(unevaluated.iter().cloned());
        return GateDecision {
            pass: fail_open,
            reason: format!("{verdict}: {}", blockers.join("; ")),
        };
    }
    if blockers.is_empty() {
        let detail = if notes.is_empty() {
            "no checks configured".to_owned()
        } else {
            notes.join(", ")
        };
        GateDecision {
            pass: true,
            reason: format!("healthy: {detail}"),
        }
    } else {
        GateDecision {
            pass: false,
            reason: format!("deployment held: {}", blockers.join("; ")),
        }
    }
}

/// The health-gate action: evaluate the configured checks and answer the job. Bad
/// UserParameters fail the job with a message saying what is wrong.
pub async fn run_health_gate(
    job_id: &str,
    user_parameters: Option<&str>,
    ports: &GatePorts<'_>,
) -> Result<GateDecision, TaskError> {
    let GatePorts {
        alarms,
        health,
        jobs,
    } = *ports;
    let settings = match GateSettings::parse(user_parameters) {
        Ok(s) => s,
        Err(reason) => {
            let decision = GateDecision {
                pass: false,
                reason,
            };
            // The parse error quotes the settings (an unknown field's name, ...): capped too.
            jobs.fail(job_id, &job_message(&decision.reason)).await?;
            return Ok(decision);
        }
    };
    let alarm_result = if settings.alarm_names.is_empty() && settings.alarm_prefixes.is_empty() {
        None
    } else {
        Some(
            alarms
                .describe(&settings.alarm_names, &settings.alarm_prefixes)
                .await,
        )
    };
    let issue_result = if settings.health.enabled {
        Some(
            health
                .open_issues(&settings.health.regions, &settings.health.services)
                .await,
        )
    } else {
        None
    };
    let decision = evaluate_gate(&settings, alarm_result, issue_result);
    let message = job_message(&decision.reason);
    if decision.pass {
        jobs.succeed(job_id, &message).await?;
    } else {
        jobs.fail(job_id, &message).await?;
    }
    Ok(decision)
}

/// A job result's message: CodePipeline caps it at 5000 characters.
pub fn job_message(reason: &str) -> String {
    reason.chars().take(4900).collect()
}

//! The gate's use cases: observing the world the gate looks at ([`observe_gate`]) and the
//! health-gate action, a CodePipeline "invoke Lambda" action that holds a deployment while the
//! gate is closed. The evaluation itself is pure: [`crate::gate::evaluate`].

use crate::error::TaskError;
use crate::gate::{evaluate, Evaluation, GateSettings, Observed};
use crate::ports::{GatePorts, ReleaseStore, Sensors};

/// Pass or hold, with a reason a person can act on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GateDecision {
    pub pass: bool,
    pub reason: String,
}

/// Reads what the gate's settings ask for: the alarms (if any are named), AWS Health (if
/// enabled) and always the halt. A sensor that cannot be read is an unevaluated check (the
/// evaluation fails closed unless `failOpen`); the store that cannot be read is an error.
pub async fn observe_gate(
    settings: &GateSettings,
    sensors: Sensors<'_>,
    store: &dyn ReleaseStore,
) -> Result<Observed, TaskError> {
    let alarms = if settings.alarm_names.is_empty() && settings.alarm_prefixes.is_empty() {
        None
    } else {
        Some(
            sensors
                .alarms
                .describe(&settings.alarm_names, &settings.alarm_prefixes)
                .await,
        )
    };
    let health = if settings.health.enabled {
        Some(
            sensors
                .health
                .open_issues(&settings.health.regions, &settings.health.services)
                .await,
        )
    } else {
        None
    };
    Ok(Observed {
        alarms,
        health,
        halt: store.halt().await?,
        release: None,
    })
}

/// The health-gate action: evaluate the configured checks and answer the job. Bad
/// UserParameters fail the job with a message saying what is wrong.
pub async fn run_health_gate(
    job_id: &str,
    user_parameters: Option<&str>,
    ports: &GatePorts<'_>,
) -> Result<GateDecision, TaskError> {
    let settings = match GateSettings::parse(user_parameters) {
        Ok(s) => s,
        Err(reason) => {
            let decision = GateDecision {
                pass: false,
                reason,
            };
            // The parse error quotes the settings (an unknown field's name, ...): capped too.
            ports
                .jobs
                .fail(job_id, &job_message(&decision.reason))
                .await?;
            return Ok(decision);
        }
    };
    let sensors = Sensors {
        alarms: ports.alarms,
        health: ports.health,
    };
    let observed = observe_gate(&settings, sensors, ports.store).await?;
    let evaluation: Evaluation = evaluate(&settings, observed, ports.clock.now());
    let decision = GateDecision {
        pass: evaluation.pass,
        reason: evaluation.summary(),
    };
    let message = job_message(&decision.reason);
    if decision.pass {
        ports.jobs.succeed(job_id, &message).await?;
    } else {
        ports.jobs.fail(job_id, &message).await?;
    }
    Ok(decision)
}

/// A job result's message: CodePipeline caps it at 5000 characters.
pub fn job_message(reason: &str) -> String {
    reason.chars().take(4900).collect()
}

//! The gate's use cases: observing the world the gate looks at ([`observe_gate`]) and the
//! health-gate action, a CodePipeline "invoke Lambda" action that holds a deployment while the
//! gate is closed. The evaluation itself is pure: [`crate::gate::evaluate`].

use crate::error::TaskError;
use crate::gate::{
    evaluate_in_pipeline, utc_text, Evaluation, GateContinuation, GateSettings, Observed, Verdict,
};
use crate::ports::{GatePorts, ReleaseStore, Sensors};
use crate::release::ReleaseStatus;
use time::OffsetDateTime;

/// Pass or hold, with a reason a person can act on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GateDecision {
    pub pass: bool,
    /// Held with a continuation token: not passed, not failed yet (`waitMinutes`).
    pub held: bool,
    pub reason: String,
}

impl GateDecision {
    fn failed(reason: String) -> Self {
        Self {
            pass: false,
            held: false,
            reason,
        }
    }
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

/// The health-gate action: evaluate the configured checks and answer the job `job_id`, at once
/// (no invocation sleeps). `continuation_token` is the job's `data.continuationToken`: set when
/// CodePipeline re-invokes the action after a hold.
///
/// - Bad UserParameters fail the job with every problem and an example.
/// - Open: PutJobSuccessResult.
/// - Closed (or unknown and failing closed), `waitMinutes` 0: PutJobFailureResult with the
///   reasons.
/// - Closed, `waitMinutes` > 0: PutJobSuccessResult with a continuation token that carries the
///   first evaluation's time ([`GateContinuation`]); CodePipeline invokes the function again
///   as a new job. A Lambda invoke action may stay in progress this way up to 24 hours, each
///   reply restarting its 20-minute timer
///   (<https://docs.aws.amazon.com/codepipeline/latest/userguide/limits.html>), hence
///   `waitMinutes` at most 1380. After `waitMinutes` closed the job fails (`still held after
///   N minutes: ...`); when the deployment windows cannot open before then (a deny window, or
///   allow windows that outlast the limit) it fails at once.
pub async fn run_health_gate(
    job_id: &str,
    user_parameters: Option<&str>,
    continuation_token: Option<&str>,
    ports: &GatePorts<'_>,
) -> Result<GateDecision, TaskError> {
    let settings = match GateSettings::parse(user_parameters) {
        Ok(s) => s,
        Err(reason) => {
            // The message quotes the settings (an unknown field's name, ...): capped too.
            let decision = GateDecision::failed(job_message(&reason));
            ports.jobs.fail(job_id, &decision.reason).await?;
            return Ok(decision);
        }
    };
    let now = ports.clock.now();
    let continued = GateContinuation::read(continuation_token);
    let first = continued.map_or(now, |c| c.first_evaluated_at.min(now));
    let evaluation = match observe_in_pipeline(&settings, ports).await {
        Ok(observed) => evaluate_in_pipeline(&settings, observed, now),
        // The store (halt, release) could not be read: an unevaluated check that fails closed
        // whatever failOpen says (the halt is the operators' brake), held like any other.
        Err(e) => Evaluation {
            verdict: Verdict::Unknown,
            pass: false,
            reasons: vec![format!("the release store could not be read ({e})")],
            notes: Vec::new(),
            halt: None,
            windows_open_at: None,
        },
    };
    let waited = (now - first).whole_minutes().max(0);
    if evaluation.pass {
        let mut reason = evaluation.summary();
        if continued.is_some() {
            reason.push_str(&format!(" (after waiting {waited} minutes)"));
        }
        let decision = GateDecision {
            pass: true,
            held: false,
            reason: job_message(&reason),
        };
        ports.jobs.succeed(job_id, &decision.reason).await?;
        return Ok(decision);
    }
    let reasons = evaluation.reasons.join("; ");
    if settings.wait_minutes == 0 {
        let decision = GateDecision::failed(job_message(&evaluation.summary()));
        ports.jobs.fail(job_id, &decision.reason).await?;
        return Ok(decision);
    }
    let deadline = first + time::Duration::minutes(i64::from(settings.wait_minutes));
    if now >= deadline {
        let decision = GateDecision::failed(job_message(&format!(
            "still held after {waited} minutes: {reasons}"
        )));
        ports.jobs.fail(job_id, &decision.reason).await?;
        return Ok(decision);
    }
    if let Some(why) = windows_outlast(&settings, &evaluation, now, deadline) {
        let decision =
            GateDecision::failed(job_message(&format!("deployment held: {reasons}; {why}")));
        ports.jobs.fail(job_id, &decision.reason).await?;
        return Ok(decision);
    }
    let opens = evaluation
        .windows_open_at
        .map(|t| format!("; the deployment windows open at {}", utc_text(t)))
        .unwrap_or_default();
    let reason = job_message(&format!(
        "deployment held, waiting ({waited} of {} minutes so far; CodePipeline asks again): \
         {reasons}{opens}",
        settings.wait_minutes
    ));
    let token = GateContinuation {
        first_evaluated_at: first,
    }
    .token();
    ports.jobs.hold(job_id, &token, &reason).await?;
    Ok(GateDecision {
        pass: false,
        held: true,
        reason,
    })
}

/// Why the windows cannot open before the action's wait runs out, if they cannot: they open
/// after `deadline`, or not within the search.
fn windows_outlast(
    settings: &GateSettings,
    evaluation: &Evaluation,
    now: OffsetDateTime,
    deadline: OffsetDateTime,
) -> Option<String> {
    let windows = settings.windows.as_ref()?;
    let state = crate::gate::windows::check(windows, now).ok()?;
    if state.is_open() {
        return None;
    }
    let limit = format!(
        "this action's waitMinutes ({}) run out at {}",
        settings.wait_minutes,
        utc_text(deadline)
    );
    match evaluation.windows_open_at.or(state.opens_at) {
        Some(at) if at <= deadline => None,
        Some(at) => Some(format!(
            "the deployment windows open at {}, after {limit}: failing now",
            utc_text(at)
        )),
        None => Some(format!(
            "the deployment windows do not open before {limit}: failing now"
        )),
    }
}

/// What the action's checks see: [`observe_gate`], and with `executionId` the release that
/// started this pipeline execution (closed when it ended FAILED or CANCELLED; an execution no
/// release started is not held by this check).
async fn observe_in_pipeline(
    settings: &GateSettings,
    ports: &GatePorts<'_>,
) -> Result<Observed, TaskError> {
    let sensors = Sensors {
        alarms: ports.alarms,
        health: ports.health,
    };
    let mut observed = observe_gate(settings, sensors, ports.store).await?;
    if let Some(execution_id) = settings.execution_id.as_deref() {
        if let Some(key) = ports.store.find_by_execution(execution_id).await? {
            if let Some(release) = ports.store.release_record(&key.release_id).await? {
                if matches!(
                    release.status,
                    ReleaseStatus::Failed | ReleaseStatus::Cancelled
                ) {
                    observed.release = Some(format!(
                        "release {} is {}{}",
                        release.release_id,
                        release.status.as_str(),
                        release
                            .cause
                            .as_deref()
                            .map(|c| format!(": {c}"))
                            .unwrap_or_default()
                    ));
                }
            }
        }
    }
    Ok(observed)
}

/// A job result's message: CodePipeline caps it at 5000 characters.
pub fn job_message(reason: &str) -> String {
    reason.chars().take(4900).collect()
}

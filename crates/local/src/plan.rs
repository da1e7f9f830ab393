//! `release-machine plan`: the release's own state machine run in simulated time against
//! pipelines that take their expected durations — not a second, hand-written estimator.
//!
//! The world of the plan is a sim file: the user's (`--sim`, locally) without its faults, or
//! one written from what CodePipeline says (against AWS: the median durations, and the
//! pipelines `skipUnchanged` would skip). An approval nobody scripted is assumed given the
//! moment it is asked for: the plan is run again with it, until every approval is given.

use crate::clock::VirtualClock;
use crate::runner::{run_release, RunError, RunOptions, RunReport};
use crate::sim::{SimFile, SimPipelines, DEFAULT_DURATION_SECONDS};
use rm_core::error::ValidationError;
use rm_core::lifecycle::ApprovalStatus;
use rm_core::plan::{Inspection, Unchanged};
use rm_core::view::ReleaseView;
use rm_core::Manifest;
use serde::Serialize;
use serde_json::{json, Map, Value};
use std::collections::{BTreeMap, BTreeSet};
use time::OffsetDateTime;

/// Sim keys that script faults or failures: a plan predicts the release going as it should.
const FAULT_KEYS: &[&str] = &[
    "outcome",
    "failedStage",
    "stopSeconds",
    "events",
    "throttleStarts",
    "startConflicts",
    "startTimeouts",
    "sendFailures",
    "vanishes",
    "stopRefused",
];

/// What a plan is computed from.
pub enum PlanWorld {
    /// A local plan: the sim file as written (JSON), `{}` without `--sim`.
    Sim(Value),
    /// A plan against AWS: what CodePipeline said, inspected at `now`.
    Observed {
        inspection: Inspection,
        now: OffsetDateTime,
    },
}

/// The plan of a release: what `plan --json` prints.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Plan {
    pub release_id: String,
    /// `local` (a sim file) or `aws` (CodePipeline, read with the caller's credentials).
    pub source: String,
    /// True when it would start: no problem.
    pub ok: bool,
    /// Every reason it would not start, at its manifest path.
    pub problems: Vec<ValidationError>,
    /// How the simulated release ends: SUCCEEDED, or FAILED/CANCELLED when a gate, a halt or
    /// a timeout would end it.
    pub predicted_status: Option<String>,
    pub predicted_cause: Option<String>,
    #[serde(with = "time::serde::rfc3339::option")]
    pub predicted_start: Option<OffsetDateTime>,
    #[serde(with = "time::serde::rfc3339::option")]
    pub predicted_end: Option<OffsetDateTime>,
    pub predicted_duration_seconds: Option<u64>,
    pub waves: Vec<WavePlan>,
    pub pipelines: Vec<PipelinePlan>,
    pub cost: Option<Cost>,
    /// What the prediction takes for granted.
    pub assumptions: Vec<String>,
    /// The simulated release (the release JSON, `"planned": true`): what `timeline --plan`
    /// draws.
    pub release: Option<Value>,
}

#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct WavePlan {
    pub wave: u32,
    pub status: String,
    #[serde(with = "time::serde::rfc3339::option")]
    pub predicted_start: Option<OffsetDateTime>,
    #[serde(with = "time::serde::rfc3339::option")]
    pub predicted_end: Option<OffsetDateTime>,
    pub duration_seconds: Option<u64>,
    /// Approval, gate, bake and halt waits before and after it, in seconds.
    pub waits: Vec<WaitPlan>,
    /// The pipelines that set the wave's end.
    pub critical_path: Vec<String>,
}

#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct WaitPlan {
    pub kind: String,
    pub seconds: u64,
    pub reasons: Vec<String>,
}

#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct PipelinePlan {
    pub name: String,
    pub wave: u32,
    pub exists: bool,
    /// `changes` or `unchanged`.
    pub change: String,
    /// Why it changes (or which execution it matches).
    pub reason: String,
    pub matched_execution_id: Option<String>,
    /// `skipUnchanged` would not start it.
    pub skipped: bool,
    /// Its expected duration: the sim's `durationSeconds`, or the median of its recent
    /// succeeded executions; null when unknown.
    pub expected_duration_seconds: Option<u64>,
    pub duration_source: String,
    pub predicted_status: Option<String>,
    #[serde(with = "time::serde::rfc3339::option")]
    pub predicted_start: Option<OffsetDateTime>,
    #[serde(with = "time::serde::rfc3339::option")]
    pub predicted_end: Option<OffsetDateTime>,
    /// It sets its wave's end.
    pub critical: bool,
}

#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Cost {
    /// States entered, as Step Functions bills them.
    pub state_transitions: u64,
    pub history_events: u64,
    pub history_event_limit: u64,
    /// The release's CodePipeline calls (the plan's own reads not counted).
    pub code_pipeline_calls: u64,
    pub code_pipeline_calls_by_operation: BTreeMap<String, u64>,
}

/// Why a plan could not be made.
#[derive(Debug, thiserror::Error)]
pub enum PlanError {
    /// The manifest failed validation.
    #[error("the manifest is not valid")]
    InvalidManifest(Vec<ValidationError>),
    /// The sim file failed validation.
    #[error("the sim file is not valid")]
    InvalidSim(Vec<ValidationError>),
    #[error("{0}")]
    Internal(String),
}

/// Inspects the manifest's pipelines in the sim file's world (GetPipeline, the executions it
/// scripts), as [`rm_core::plan::inspect`] does on AWS.
pub fn inspect_sim(manifest: &Manifest, sim: &SimFile) -> Result<Inspection, PlanError> {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .start_paused(true)
        .build()
        .map_err(|e| PlanError::Internal(format!("cannot start the async runtime: {e}")))?;
    rt.block_on(async {
        let start = sim.start_at().unwrap_or_else(now_to_the_second);
        let (bus, _events) = tokio::sync::mpsc::unbounded_channel();
        let pipelines = SimPipelines::new(sim.clone(), VirtualClock::new(start), bus);
        rm_core::plan::inspect(manifest, &pipelines)
            .await
            .map_err(|e| PlanError::Internal(format!("the simulated pipelines failed: {e}")))
    })
}

fn now_to_the_second() -> OffsetDateTime {
    let now = OffsetDateTime::now_utc();
    now.replace_nanosecond(0).unwrap_or(now)
}

/// Plans `manifest` (its file's bytes) in `world`. Problems (a pipeline that does not exist, a
/// variable it does not declare, ...) make a plan that is not `ok`, with no prediction.
pub fn plan(manifest_bytes: &[u8], world: PlanWorld) -> Result<Plan, PlanError> {
    let manifest = Manifest::parse(manifest_bytes).map_err(|r| PlanError::InvalidManifest(r.0))?;
    let (sim_json, inspection, source, mut assumptions) = match world {
        PlanWorld::Sim(sim_json) => {
            let sim = SimFile::from_value(&sim_json).map_err(|e| PlanError::InvalidSim(e.0))?;
            let inspection = inspect_sim(&manifest, &sim)?;
            let (clean, removed) = without_faults(&sim_json);
            let mut assumptions = Vec::new();
            if !removed.is_empty() {
                assumptions.push(format!(
                    "the sim file's faults and failures are left out ({}): a plan predicts the release going as it should",
                    removed.into_iter().collect::<Vec<_>>().join(", ")
                ));
            }
            (clean, inspection, "local", assumptions)
        }
        PlanWorld::Observed { inspection, now } => {
            let (sim_json, assumptions) = observed_world(&manifest, &inspection, now);
            (sim_json, inspection, "aws", assumptions)
        }
    };
    let mut plan = Plan {
        release_id: manifest.release_id.to_string(),
        source: source.to_owned(),
        ok: inspection.problems.is_empty(),
        problems: inspection.problems.clone(),
        predicted_status: None,
        predicted_cause: None,
        predicted_start: None,
        predicted_end: None,
        predicted_duration_seconds: None,
        waves: Vec::new(),
        pipelines: pipeline_plans(&manifest, &inspection, &sim_json, source == "local"),
        cost: None,
        assumptions: Vec::new(),
        release: None,
    };
    if !plan.ok {
        plan.assumptions = assumptions;
        return Ok(plan);
    }
    let (report, approved) = simulate(manifest_bytes, sim_json)?;
    if !approved.is_empty() {
        let waves: Vec<String> = approved.iter().map(u32::to_string).collect();
        assumptions.push(format!(
            "wave{} {} approved as soon as asked (within a second; the sim file scripts no approval)",
            if waves.len() == 1 { "" } else { "s" },
            waves.join(", "),
        ));
    }
    plan.assumptions = assumptions;
    predict(&mut plan, &report)?;
    Ok(plan)
}

/// The sim file without the keys that script faults; the names removed.
fn without_faults(sim: &Value) -> (Value, BTreeSet<String>) {
    let mut clean = sim.clone();
    let mut removed = BTreeSet::new();
    let mut strip = |behaviour: &mut Value| {
        if let Some(obj) = behaviour.as_object_mut() {
            for key in FAULT_KEYS {
                if obj.remove(*key).is_some() {
                    removed.insert((*key).to_owned());
                }
            }
        }
    };
    if let Some(defaults) = clean.get_mut("defaults") {
        strip(defaults);
    }
    if let Some(Value::Object(pipelines)) = clean.get_mut("pipelines") {
        for behaviour in pipelines.values_mut() {
            strip(behaviour);
        }
    }
    if let Some(obj) = clean.as_object_mut() {
        if obj.remove("faults").is_some() {
            removed.insert("faults".to_owned());
        }
        if let Some(Value::Array(actions)) = obj.get_mut("operator") {
            let before = actions.len();
            actions.retain(|a| {
                !matches!(
                    a.get("action").and_then(Value::as_str),
                    Some("cancel" | "reject")
                )
            });
            if actions.len() != before {
                removed.insert("operator cancel/reject".to_owned());
            }
        }
    }
    (clean, removed)
}

/// A sim file standing for what CodePipeline said: each pipeline takes its median duration
/// (180 s when it has no succeeded execution), and one that `skipUnchanged` would skip has
/// the matching execution as its last.
fn observed_world(
    manifest: &Manifest,
    inspection: &Inspection,
    now: OffsetDateTime,
) -> (Value, Vec<String>) {
    let mut pipelines = Map::new();
    let mut unknown = Vec::new();
    for (spec, facts) in manifest.pipelines.iter().zip(&inspection.pipelines) {
        let seconds = facts.median_seconds.unwrap_or_else(|| {
            unknown.push(spec.name.clone());
            DEFAULT_DURATION_SECONDS
        });
        let mut behaviour = json!({ "durationSeconds": seconds.max(1) });
        if matches!(facts.unchanged, Unchanged::Yes { .. }) {
            let revisions: Map<String, Value> = spec
                .source_revisions
                .iter()
                .map(|r| (r.action_name.clone(), json!(r.revision_value)))
                .collect();
            behaviour["lastRevisions"] = Value::Object(revisions);
            if !spec.variables.is_empty() {
                behaviour["lastVariables"] = json!(spec.variables);
            }
        }
        pipelines.insert(spec.name.clone(), behaviour);
    }
    let mut assumptions = vec![
        "every pipeline succeeds, taking the median duration of its last 10 succeeded executions"
            .to_owned(),
        "alarms and AWS Health stay quiet; no halt".to_owned(),
    ];
    if !unknown.is_empty() {
        assumptions.push(format!(
            "no succeeded execution to measure, so {DEFAULT_DURATION_SECONDS} s assumed: {}",
            unknown.join(", ")
        ));
    }
    let start = now.replace_nanosecond(0).unwrap_or(now);
    let start = start
        .format(&time::format_description::well_known::Rfc3339)
        .unwrap_or_default();
    (
        json!({ "startAt": start, "pipelines": Value::Object(pipelines) }),
        assumptions,
    )
}

fn pipeline_plans(
    manifest: &Manifest,
    inspection: &Inspection,
    sim: &Value,
    local: bool,
) -> Vec<PipelinePlan> {
    let file = SimFile::from_value(sim).ok();
    manifest
        .pipelines
        .iter()
        .zip(&inspection.pipelines)
        .map(|(spec, facts)| {
            let (change, reason, matched) = match &facts.unchanged {
                Unchanged::Yes { execution_id } => (
                    "unchanged",
                    format!("its last execution {execution_id} succeeded with these revisions"),
                    Some(execution_id.clone()),
                ),
                Unchanged::No(why) => ("changes", why.clone(), None),
                Unchanged::NeedsVariables => ("changes", "its variables are unknown".into(), None),
            };
            let (expected, source) = match (&file, facts.median_seconds) {
                (Some(f), _) if local => (
                    Some(f.behaviour(&spec.name).duration.as_secs()),
                    "the sim file".to_owned(),
                ),
                (_, Some(s)) => (
                    Some(s),
                    format!("median of its last {} succeeded executions", facts.sample),
                ),
                _ => (
                    None,
                    format!(
                        "unknown: no succeeded execution ({DEFAULT_DURATION_SECONDS} s assumed)"
                    ),
                ),
            };
            PipelinePlan {
                name: spec.name.clone(),
                wave: spec.wave,
                exists: facts.shape.is_some(),
                change: change.to_owned(),
                reason,
                skipped: manifest.skip_unchanged && matched.is_some(),
                matched_execution_id: matched,
                expected_duration_seconds: expected,
                duration_source: source,
                predicted_status: None,
                predicted_start: None,
                predicted_end: None,
                critical: false,
            }
        })
        .collect()
}

/// Runs the release in a scratch state directory; an approval that timed out unscripted is
/// given when it was asked for, and the run made again. The waves so approved.
///
/// An approval given in the very second it is asked for may reach the release just before
/// the request is recorded (both wake at that instant), and be refused as an approval of a
/// wave not waiting: it is then given a second later, up to [`APPROVAL_LATENESS`] seconds.
fn simulate(manifest: &[u8], mut sim: Value) -> Result<(RunReport, Vec<u32>), PlanError> {
    // Wave -> (seconds after the start it was asked for, the lateness tried).
    let mut given: BTreeMap<u32, (u64, u64)> = BTreeMap::new();
    let scripted = sim.get("operator").cloned().unwrap_or_else(|| json!([]));
    loop {
        let mut actions = scripted.as_array().cloned().unwrap_or_default();
        for (wave, (asked, late)) in &given {
            actions.push(
                json!({"atSeconds": asked + late, "action": "approve", "wave": wave, "by": "plan"}),
            );
        }
        actions.sort_by_key(|a| a.get("atSeconds").and_then(Value::as_u64).unwrap_or(0));
        if let Some(obj) = sim.as_object_mut() {
            obj.insert("operator".into(), Value::Array(actions));
        }
        let file = SimFile::from_value(&sim).map_err(|e| PlanError::InvalidSim(e.0))?;
        let scratch = tempfile::tempdir()
            .map_err(|e| PlanError::Internal(format!("cannot make a scratch directory: {e}")))?;
        let mut options = RunOptions::new(manifest.to_vec(), scratch.path());
        options.sim = file.clone();
        options.execution_name = Some("plan".to_owned());
        let start = file.start_at().unwrap_or_else(now_to_the_second);
        options.start_time = Some(start);
        let report = run_release(options).map_err(|e| match e {
            RunError::InvalidManifest(errors) => PlanError::InvalidManifest(errors),
            other => PlanError::Internal(other.to_string()),
        })?;
        let mut again = false;
        for a in report.release.iter().flat_map(|r| r.approvals.iter()) {
            if a.status != ApprovalStatus::TimedOut {
                continue;
            }
            let asked = (a.requested_at - start).whole_seconds().max(0) as u64;
            match given.get_mut(&a.wave) {
                None => {
                    given.insert(a.wave, (asked, 0));
                    again = true;
                }
                Some((_, late)) if *late < APPROVAL_LATENESS => {
                    *late += 1;
                    again = true;
                }
                Some(_) => {}
            }
        }
        if !again {
            return Ok((report, given.into_keys().collect()));
        }
    }
}

/// How late, in seconds, an assumed approval may come after it is asked for.
const APPROVAL_LATENESS: u64 = 3;

fn seconds_between(a: Option<OffsetDateTime>, b: Option<OffsetDateTime>) -> Option<u64> {
    Some((b? - a?).whole_seconds().max(0) as u64)
}

/// Fills the prediction from the simulated run.
fn predict(plan: &mut Plan, report: &RunReport) -> Result<(), PlanError> {
    let view: &ReleaseView = report
        .release
        .as_ref()
        .ok_or_else(|| PlanError::Internal("the simulated release was not recorded".into()))?;
    plan.predicted_status = Some(view.status.to_string());
    plan.predicted_cause = view.cause.clone();
    plan.predicted_start = Some(view.requested_at);
    plan.predicted_end = view.ended_at;
    plan.predicted_duration_seconds = seconds_between(Some(view.requested_at), view.ended_at);
    for p in plan.pipelines.iter_mut() {
        if let Some(run) = view.pipelines.iter().find(|r| r.name == p.name) {
            p.predicted_status = Some(run.status.to_string());
            p.predicted_start = run.started_at;
            p.predicted_end = run.ended_at;
            p.skipped = run.status == rm_core::RunStatus::Skipped;
        }
    }
    plan.waves = view
        .waves
        .iter()
        .map(|w| {
            let ends: Vec<(&str, OffsetDateTime)> = view
                .pipelines
                .iter()
                .filter(|r| r.wave == w.wave && r.started_at.is_some())
                .filter_map(|r| Some((r.name.as_str(), r.ended_at?)))
                .collect();
            let last = ends.iter().map(|(_, at)| *at).max();
            let critical: Vec<String> = ends
                .iter()
                .filter(|(_, at)| Some(*at) == last)
                .map(|(n, _)| (*n).to_owned())
                .collect();
            let waits = view
                .waits
                .iter()
                .filter(|x| x.wave == Some(w.wave))
                .map(|x| WaitPlan {
                    kind: serde_json::to_value(x.kind)
                        .ok()
                        .and_then(|k| k.as_str().map(str::to_owned))
                        .unwrap_or_default(),
                    seconds: seconds_between(Some(x.since), x.until.or(view.ended_at)).unwrap_or(0),
                    reasons: x.reasons.clone(),
                })
                .collect();
            WavePlan {
                wave: w.wave,
                status: w.status.as_str().to_owned(),
                predicted_start: w.started_at,
                predicted_end: w.ended_at,
                duration_seconds: seconds_between(w.started_at, w.ended_at),
                waits,
                critical_path: critical,
            }
        })
        .collect();
    for p in plan.pipelines.iter_mut() {
        p.critical = plan
            .waves
            .iter()
            .any(|w| w.wave == p.wave && w.critical_path.contains(&p.name));
    }
    let mut by_operation: BTreeMap<String, u64> = BTreeMap::new();
    for calls in report.sim.calls.values() {
        for (op, n) in [
            ("GetPipeline", calls.get_pipeline),
            ("StartPipelineExecution", calls.start),
            ("GetPipelineExecution", calls.get_execution),
            ("ListPipelineExecutions", calls.list_executions),
            ("StopPipelineExecution", calls.stop),
        ] {
            if n > 0 {
                *by_operation.entry(op.to_owned()).or_default() += u64::from(n);
            }
        }
    }
    plan.cost = Some(Cost {
        state_transitions: report.state_transitions,
        history_events: report.history.len() as u64,
        history_event_limit: rm_states::MAX_HISTORY_EVENTS as u64,
        code_pipeline_calls: by_operation.values().sum(),
        code_pipeline_calls_by_operation: by_operation,
    });
    let mut release = serde_json::to_value(view)
        .map_err(|e| PlanError::Internal(format!("cannot encode the simulated release: {e}")))?;
    release["planned"] = json!(true);
    plan.release = Some(release);
    Ok(())
}

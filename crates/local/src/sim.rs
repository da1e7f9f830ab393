//! Simulated CodePipeline, scripted by the `--sim` file.
//!
//! ```json
//! {"defaults": {"durationSeconds": 600},
//!  "pipelines": {"payments-api": {"outcome": "Failed", "failedStage": "Deploy"},
//!                "ledger-worker": {"events": "drop", "throttleStarts": 2}}}
//! ```
//!
//! Each object may set `exists` (default true), `outcome` (Succeeded, Failed, Stopped,
//! Superseded; default Succeeded), `durationSeconds` (default 180), `failedStage`, `stopSeconds`
//! (Stopping to Stopped; default 30), `events` (`deliver`; `drop`: no state-change events;
//! `duplicate`: each twice) and `throttleStarts` (how many first StartPipelineExecution calls are
//! throttled). Faults (issue 9): `startConflicts` (how many first StartPipelineExecution calls
//! answer ConflictException, "pipeline is busy"), `startTimeouts` (how many first StartPipeline
//! tasks start the execution, then die as a Lambda timeout before answering: the start is
//! made, idempotent per client request token like any start, but the caller gets a transient
//! "timed out" error, and [`SimPipelines::take_lambda_death`] tells the local runner to fail the
//! task as `Lambda.Unknown`; a retried task that finds the execution with ListPipelineExecutions
//! instead of starting it is one of the N too: it gets its answer, then dies the same way),
//! `sendFailures` (how many first
//! SendTaskSuccess/SendTaskFailure calls for the pipeline's waiting task fail transiently),
//! `vanishes` (true: once started, the execution is gone: GetPipelineExecution and
//! StopPipelineExecution answer not found, no further events) and `stopRefused` (true:
//! StopPipelineExecution answers success but never takes effect; the execution keeps its own
//! outcome). A pipeline's object overrides `defaults`, which override the built-in defaults.
//!
//! What `plan` inspects (issue 14; see [`shape`]), also per pipeline or in `defaults`:
//! `pipelineType` (`V1` or `V2`, default `V2`), `variables` (the declared pipeline-level
//! variables: names or `{"name", "defaultValue"?}`; unset: not known, any is accepted),
//! `sourceActions` (names, or `{"name", "provider"?, "configuration"?}`; unset: not known),
//! `lastRevisions` (`{"ActionName": "revision"}` or `[{"actionName", "revisionValue",
//! "revisionType"?}]`) and `lastVariables` (`{"name": "value"}`). With `lastRevisions` or
//! `lastVariables` the pipeline has one execution from before the simulation: Succeeded,
//! triggered by StartPipelineExecution, ended a minute before the simulation's start after
//! `durationSeconds`, with the id `sim-last-<pipeline>`, those revisions and variables. It is
//! listed by ListPipelineExecutions and read by GetPipelineExecution like any other, and is
//! none of the executions the simulation started ([`SimPipelines::executions`], the counts,
//! the events). Executions the simulation starts record their start's source revisions (the
//! `revisionValue` as the revision id) and variables (over the declared defaults), so a later
//! release in the same simulation sees what an earlier one ran.
//!
//! ```json
//! {"pipelines": {"api": {
//!    "variables": ["ENV", {"name": "VERSION", "defaultValue": "latest"}],
//!    "sourceActions": [{"name": "Source", "provider": "S3",
//!                       "configuration": {"AllowOverrideForS3ObjectKey": "true"}}],
//!    "lastRevisions": {"Source": "v41.zip"},
//!    "lastVariables": {"ENV": "prod", "VERSION": "41"}}}}
//! ```
//!
//! Run-level faults sit in a top-level `"faults"` object (all optional):
//! `abortExecutionAfterSeconds` (a number of seconds, 0 to 30 days: the release's execution is
//! aborted that long after it started, as StopExecution from the console would; the reconciler
//! must notice; see [`SimFile::abort_execution_after`]) and `recordFailures` (a whole number,
//! 0 to 1000: the first N calls that record the release's end fail; see
//! [`SimFile::record_failures`]).
//!
//! ```json
//! {"pipelines": {"api": {"startTimeouts": 1}},
//!  "faults": {"abortExecutionAfterSeconds": 900, "recordFailures": 2}}
//! ```
//!
//! The world the gates see (issue 12), also top-level: `startAt` (the virtual clock's start,
//! RFC 3339 with an offset; see [`SimFile::start_at`]), `alarms` and `health` (each over
//! simulated time; see [`crate::world`]); and the people, in `operator` (see
//! [`OperatorAction`]), with `halt` and `unhalt` next to approve, reject and cancel.
//!
//! Unknown keys anywhere are errors, each reported at its JSONPath (`$.faults.foo`).
//!
//! Executions run in tokio time (virtual in a paused runtime). Every change is published as the
//! EventBridge "CodePipeline Pipeline Execution State Change" event CodePipeline emits, on the
//! bus the local run feeds to record-state.

pub mod shape;

pub use shape::{DeclaredVariable, LastRevision, PipelineType, SimShape};

use crate::clock::VirtualClock;
use crate::world::{self, WorldScript};
use rm_core::error::{PortError, ValidationError};
use rm_core::manifest::{check_pipeline_name, PipelineSpec};
use rm_core::ports::{
    Clock, ExecutionStatus, PastExecution, PipelineShape, Pipelines, PortResult, StartError,
};
use rm_core::release::RunStatus;
use serde_json::{json, Map, Value};
use shape::ShapeOverrides;

use std::collections::HashSet;
use std::collections::{BTreeMap, HashMap};
use std::fmt;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;
use time::OffsetDateTime;
use tokio::sync::mpsc::UnboundedSender;

pub const DEFAULT_DURATION_SECONDS: u64 = 180;
pub const DEFAULT_STOP_SECONDS: u64 = 30;
/// Thirty days: longer is surely a typo.
const MAX_SECONDS: f64 = 30.0 * 24.0 * 3600.0;
const MAX_THROTTLES: u64 = 1000;
pub const ACCOUNT: &str = "123456789012";
pub const REGION: &str = "us-east-1";

/// How a simulated execution ends on its own.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SimOutcome {
    Succeeded,
    Failed,
    /// Someone stops it from the console: Stopping, then Stopped after `stopSeconds`.
    Stopped,
    Superseded,
}

impl SimOutcome {
    const NAMES: [(&'static str, SimOutcome); 4] = [
        ("Succeeded", SimOutcome::Succeeded),
        ("Failed", SimOutcome::Failed),
        ("Stopped", SimOutcome::Stopped),
        ("Superseded", SimOutcome::Superseded),
    ];
}

/// What happens to an execution's state-change events.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EventDelivery {
    Deliver,
    /// Lost: only the sweep notices the end.
    Drop,
    /// Each event delivered twice (EventBridge is at-least-once).
    Duplicate,
}

impl EventDelivery {
    const NAMES: [(&'static str, EventDelivery); 3] = [
        ("deliver", EventDelivery::Deliver),
        ("drop", EventDelivery::Drop),
        ("duplicate", EventDelivery::Duplicate),
    ];
}

/// The resolved behaviour of one pipeline.
#[derive(Debug, Clone, PartialEq)]
pub struct Behaviour {
    pub exists: bool,
    pub outcome: SimOutcome,
    pub duration: Duration,
    pub failed_stage: Option<String>,
    pub stop: Duration,
    pub events: EventDelivery,
    pub throttle_starts: u32,
    pub start_conflicts: u32,
    pub start_timeouts: u32,
    pub send_failures: u32,
    pub vanishes: bool,
    pub stop_refused: bool,
}

#[derive(Debug, Clone, Default, PartialEq)]
struct Overrides {
    exists: Option<bool>,
    outcome: Option<SimOutcome>,
    duration: Option<Duration>,
    failed_stage: Option<String>,
    stop: Option<Duration>,
    events: Option<EventDelivery>,
    throttle_starts: Option<u32>,
    start_conflicts: Option<u32>,
    start_timeouts: Option<u32>,
    send_failures: Option<u32>,
    vanishes: Option<bool>,
    stop_refused: Option<bool>,
    /// What `plan` inspects: the declaration and the last execution before the simulation.
    shape: ShapeOverrides,
}

impl Overrides {
    fn over(&self, base: Behaviour) -> Behaviour {
        Behaviour {
            exists: self.exists.unwrap_or(base.exists),
            outcome: self.outcome.unwrap_or(base.outcome),
            duration: self.duration.unwrap_or(base.duration),
            failed_stage: self.failed_stage.clone().or(base.failed_stage),
            stop: self.stop.unwrap_or(base.stop),
            events: self.events.unwrap_or(base.events),
            throttle_starts: self.throttle_starts.unwrap_or(base.throttle_starts),
            start_conflicts: self.start_conflicts.unwrap_or(base.start_conflicts),
            start_timeouts: self.start_timeouts.unwrap_or(base.start_timeouts),
            send_failures: self.send_failures.unwrap_or(base.send_failures),
            vanishes: self.vanishes.unwrap_or(base.vanishes),
            stop_refused: self.stop_refused.unwrap_or(base.stop_refused),
        }
    }
}

/// A validated `--sim` file. The default (no file): every pipeline exists and succeeds after
/// three minutes.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct SimFile {
    defaults: Overrides,
    pipelines: BTreeMap<String, Overrides>,
    faults: RunFaults,
    operator: Vec<OperatorAction>,
    /// `startAt`: the virtual clock's start.
    start_at: Option<OffsetDateTime>,
    /// `alarms` and `health`: the world the gates see.
    world: WorldScript,
}

/// What a person does to the release, scripted in the sim file's `"operator"` list (issue 11):
/// `{"atSeconds": 900, "action": "approve", "wave": 2, "by": "alice"}`,
/// `{"atSeconds": 1200, "action": "reject", "wave": 3, "by": "bob", "reason": "..."}`,
/// `{"atSeconds": 300, "action": "cancel", "by": "carol", "reason": "..."}`, and (issue 12) the
/// stack-wide halt: `{"atSeconds": 600, "action": "halt", "by": "alice", "reason": "incident
/// 4711"}`, `{"atSeconds": 1800, "action": "unhalt", "by": "alice"}`. `by` defaults to `local`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OperatorAction {
    /// Simulated time after the execution's start.
    pub at: Duration,
    pub by: String,
    pub action: Operation,
}

/// An [`OperatorAction`]'s action.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Operation {
    Approve {
        wave: u32,
    },
    Reject {
        wave: u32,
        reason: String,
    },
    Cancel {
        reason: String,
    },
    /// The stack-wide halt goes on (`release-machine halt`, `PUT /halt`).
    Halt {
        reason: String,
    },
    /// The halt is lifted (`release-machine unhalt`, `DELETE /halt`).
    Unhalt,
}

impl Operation {
    /// Lifts the halt.
    pub fn is_unhalt(&self) -> bool {
        matches!(self, Operation::Unhalt)
    }
}

/// The keys of an operator action.
const OPERATOR_FIELDS: &str = "atSeconds, action, wave, by, reason";

/// The top-level `"faults"` object: faults of the run, not of one pipeline.
#[derive(Debug, Clone, Default, PartialEq)]
struct RunFaults {
    abort_execution_after: Option<Duration>,
    record_failures: u32,
}

/// The keys of `"faults"`.
const FAULT_FIELDS: &str = "abortExecutionAfterSeconds, recordFailures";

/// Every problem of a `--sim` file, each at its JSONPath.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SimFileError(pub Vec<ValidationError>);

impl fmt::Display for SimFileError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let n = self.0.len();
        write!(
            f,
            "the sim file is invalid ({n} problem{}):",
            if n == 1 { "" } else { "s" }
        )?;
        for e in &self.0 {
            write!(f, "\n  {e}")?;
        }
        Ok(())
    }
}

impl std::error::Error for SimFileError {}

const FIELDS: &str = "exists, outcome, durationSeconds, failedStage, stopSeconds, events, \
     throttleStarts, startConflicts, startTimeouts, sendFailures, vanishes, stopRefused, \
     pipelineType, variables, sourceActions, lastRevisions, lastVariables";

pub(crate) fn json_type(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

pub(crate) fn quote_path(parent: &str, key: &str) -> String {
    let plain = !key.is_empty()
        && key.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
        && !key.starts_with(|c: char| c.is_ascii_digit());
    if plain {
        format!("{parent}.{key}")
    } else {
        format!("{parent}[{}]", Value::String(key.to_owned()))
    }
}

impl SimFile {
    /// Parses and validates a sim file; reports every problem at once.
    pub fn parse(bytes: &[u8]) -> Result<SimFile, SimFileError> {
        let one = |m: String| SimFileError(vec![ValidationError::new("$", m)]);
        let bytes = bytes.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(bytes);
        let value: Value = serde_json::from_slice(bytes)
            .map_err(|e| one(format!("the sim file is not valid JSON: {e}")))?;
        Self::from_value(&value)
    }

    pub fn from_value(value: &Value) -> Result<SimFile, SimFileError> {
        let mut errors = Vec::new();
        let Some(top) = value.as_object() else {
            return Err(SimFileError(vec![ValidationError::new(
                "$",
                format!(
                    "expected an object {{\"defaults\": {{...}}, \"pipelines\": {{\"NAME\": {{...}}}}}}, got {}",
                    json_type(value)
                ),
            )]));
        };
        let mut file = SimFile::default();
        for (key, v) in top {
            match key.as_str() {
                "defaults" => file.defaults = overrides(v, "$.defaults", &mut errors),
                "pipelines" => match v.as_object() {
                    Some(map) => {
                        for (name, o) in map {
                            let path = quote_path("$.pipelines", name);
                            if let Err(m) = check_pipeline_name(name) {
                                errors.push(ValidationError::new(&path, m));
                            }
                            file.pipelines
                                .insert(name.clone(), overrides(o, &path, &mut errors));
                        }
                    }
                    None => errors.push(ValidationError::new(
                        "$.pipelines",
                        format!(
                            "expected an object of pipeline names to behaviours, got {}",
                            json_type(v)
                        ),
                    )),
                },
                "faults" => file.faults = run_faults(v, "$.faults", &mut errors),
                "operator" => file.operator = operator(v, "$.operator", &mut errors),
                "startAt" => file.start_at = start_at(v, "$.startAt", &mut errors),
                "alarms" => file.world.alarms = world::parse_alarms(v, "$.alarms", &mut errors),
                "health" => file.world.health = world::parse_health(v, "$.health", &mut errors),
                other => errors.push(ValidationError::new(
                    quote_path("$", other),
                    format!(
                        "unknown field {other:?}; a sim file has \"defaults\", \"pipelines\", \
                         \"faults\", \"operator\", \"startAt\", \"alarms\" and \"health\""
                    ),
                )),
            }
        }
        if errors.is_empty() {
            Ok(file)
        } else {
            Err(SimFileError(errors))
        }
    }

    /// The behaviour of `pipeline`.
    pub fn behaviour(&self, pipeline: &str) -> Behaviour {
        let builtin = Behaviour {
            exists: true,
            outcome: SimOutcome::Succeeded,
            duration: Duration::from_secs(DEFAULT_DURATION_SECONDS),
            failed_stage: None,
            stop: Duration::from_secs(DEFAULT_STOP_SECONDS),
            events: EventDelivery::Deliver,
            throttle_starts: 0,
            start_conflicts: 0,
            start_timeouts: 0,
            send_failures: 0,
            vanishes: false,
            stop_refused: false,
        };
        let base = self.defaults.over(builtin);
        match self.pipelines.get(pipeline) {
            Some(o) => o.over(base),
            None => base,
        }
    }

    /// What `pipeline` declares and ran before the simulation (`pipelineType`, `variables`,
    /// `sourceActions`, `lastRevisions`, `lastVariables`).
    pub fn shape(&self, pipeline: &str) -> SimShape {
        match self.pipelines.get(pipeline) {
            Some(o) => o.shape.over(&self.defaults.shape),
            None => ShapeOverrides::default().over(&self.defaults.shape),
        }
    }

    /// `faults.abortExecutionAfterSeconds`: how long after its start the release's execution
    /// is aborted (as StopExecution from the console would); `None`: never.
    pub fn abort_execution_after(&self) -> Option<Duration> {
        self.faults.abort_execution_after
    }

    /// `faults.recordFailures`: how many first calls that record the release's end fail
    /// (0: none).
    pub fn record_failures(&self) -> u32 {
        self.faults.record_failures
    }

    /// The scripted operator actions, in time order.
    pub fn operator(&self) -> &[OperatorAction] {
        &self.operator
    }

    /// `startAt`: when the virtual clock starts (UTC); `None`: now.
    pub fn start_at(&self) -> Option<OffsetDateTime> {
        self.start_at
    }

    /// `alarms` and `health`: the world the gates see, over simulated time.
    pub fn world(&self) -> &WorldScript {
        &self.world
    }

    /// Pipelines the sim file scripts that are not in `names`: a warning, not an error, so one
    /// sim file can serve several manifests.
    pub fn unknown_pipelines<'a>(&self, names: impl IntoIterator<Item = &'a str>) -> Vec<String> {
        let known: std::collections::HashSet<&str> = names.into_iter().collect();
        self.pipelines
            .keys()
            .filter(|p| !known.contains(p.as_str()))
            .cloned()
            .collect()
    }
}

pub(crate) fn seconds(
    v: &Value,
    path: &str,
    errors: &mut Vec<ValidationError>,
) -> Option<Duration> {
    match v.as_f64() {
        Some(s) if (0.0..=MAX_SECONDS).contains(&s) => Some(Duration::from_secs_f64(s)),
        Some(s) => {
            errors.push(ValidationError::new(
                path,
                format!("{s} is out of range; expected 0 to {MAX_SECONDS} seconds"),
            ));
            None
        }
        None => {
            errors.push(ValidationError::new(
                path,
                format!("expected a number of seconds, got {}", json_type(v)),
            ));
            None
        }
    }
}

fn named<T: Copy>(
    v: &Value,
    path: &str,
    names: &[(&str, T)],
    errors: &mut Vec<ValidationError>,
) -> Option<T> {
    let allowed: Vec<&str> = names.iter().map(|(n, _)| *n).collect();
    let found = v
        .as_str()
        .and_then(|s| names.iter().find(|(n, _)| *n == s).map(|(_, t)| *t));
    if found.is_none() {
        errors.push(ValidationError::new(
            path,
            format!("expected one of {}, got {v}", allowed.join(", ")),
        ));
    }
    found
}

fn boolean(v: &Value, path: &str, errors: &mut Vec<ValidationError>) -> Option<bool> {
    let b = v.as_bool();
    if b.is_none() {
        errors.push(ValidationError::new(
            path,
            format!("expected true or false, got {}", json_type(v)),
        ));
    }
    b
}

/// A count of first calls that fail (throttled, busy, send failures).
fn count(v: &Value, path: &str, errors: &mut Vec<ValidationError>) -> Option<u32> {
    match v.as_u64() {
        Some(n) if n <= MAX_THROTTLES => Some(n as u32),
        _ => {
            errors.push(ValidationError::new(
                path,
                format!("expected a whole number from 0 to {MAX_THROTTLES}, got {v}"),
            ));
            None
        }
    }
}

fn overrides(v: &Value, path: &str, errors: &mut Vec<ValidationError>) -> Overrides {
    let mut o = Overrides::default();
    let Some(map) = v.as_object() else {
        errors.push(ValidationError::new(
            path,
            format!(
                "expected an object with any of {FIELDS}, got {}",
                json_type(v)
            ),
        ));
        return o;
    };
    let field_map: &Map<String, Value> = map;
    for (key, v) in field_map {
        let p = quote_path(path, key);
        match key.as_str() {
            "exists" => o.exists = boolean(v, &p, errors),
            "vanishes" => o.vanishes = boolean(v, &p, errors),
            "stopRefused" => o.stop_refused = boolean(v, &p, errors),
            "outcome" => o.outcome = named(v, &p, &SimOutcome::NAMES, errors),
            "durationSeconds" => o.duration = seconds(v, &p, errors),
            "stopSeconds" => o.stop = seconds(v, &p, errors),
            "failedStage" => match v.as_str() {
                Some(s) if !s.is_empty() => o.failed_stage = Some(s.to_owned()),
                _ => errors.push(ValidationError::new(
                    &p,
                    format!("expected a stage name, got {v}"),
                )),
            },
            "events" => o.events = named(v, &p, &EventDelivery::NAMES, errors),
            "throttleStarts" => o.throttle_starts = count(v, &p, errors),
            "startConflicts" => o.start_conflicts = count(v, &p, errors),
            "startTimeouts" => o.start_timeouts = count(v, &p, errors),
            "sendFailures" => o.send_failures = count(v, &p, errors),
            key if o.shape.parse(key, v, &p, errors) => {}
            other => errors.push(ValidationError::new(
                &p,
                format!("unknown field {other:?}; expected one of {FIELDS}"),
            )),
        }
    }
    o
}

/// The top-level `"operator"` list, sorted by time (stable: same time, file order).
fn operator(v: &Value, path: &str, errors: &mut Vec<ValidationError>) -> Vec<OperatorAction> {
    let Some(items) = v.as_array() else {
        errors.push(ValidationError::new(
            path,
            format!(
                "expected a list of actions like {{\"atSeconds\": 900, \"action\": \"approve\", \"wave\": 2, \"by\": \"alice\"}}, got {}",
                json_type(v)
            ),
        ));
        return Vec::new();
    };
    let mut actions: Vec<OperatorAction> = items
        .iter()
        .enumerate()
        .filter_map(|(i, item)| operator_action(item, &format!("{path}[{i}]"), errors))
        .collect();
    actions.sort_by_key(|a| a.at);
    actions
}

fn operator_action(
    v: &Value,
    path: &str,
    errors: &mut Vec<ValidationError>,
) -> Option<OperatorAction> {
    let Some(map) = v.as_object() else {
        errors.push(ValidationError::new(
            path,
            format!(
                "expected an object with {OPERATOR_FIELDS}, got {}",
                json_type(v)
            ),
        ));
        return None;
    };
    let before = errors.len();
    let name = map.get("action").and_then(Value::as_str);
    for key in map.keys() {
        if !["atSeconds", "action", "wave", "by", "reason"].contains(&key.as_str()) {
            errors.push(ValidationError::new(
                quote_path(path, key),
                format!("unknown field {key:?}; expected one of {OPERATOR_FIELDS}"),
            ));
        }
    }
    // The halt is the whole stack's, not a wave's; lifting it takes no reason (as DELETE /halt).
    let not_for = |key: &str, why: &str, errors: &mut Vec<ValidationError>| {
        if map.contains_key(key) {
            errors.push(ValidationError::new(quote_path(path, key), why.to_owned()));
        }
    };
    if matches!(name, Some("halt" | "unhalt")) {
        not_for(
            "wave",
            "a halt holds every release, not a wave: remove \"wave\"",
            errors,
        );
    }
    if name == Some("unhalt") {
        not_for(
            "reason",
            "unhalt takes no reason: remove \"reason\"",
            errors,
        );
    }
    let required = |key: &str, errors: &mut Vec<ValidationError>| {
        let v = map.get(key);
        if v.is_none() {
            errors.push(ValidationError::new(
                quote_path(path, key),
                "is required for this action".to_owned(),
            ));
        }
        v
    };
    let at = required("atSeconds", errors)
        .and_then(|v| seconds(v, &quote_path(path, "atSeconds"), errors));
    let by = match map.get("by") {
        None => Some("local".to_owned()),
        Some(Value::String(s)) if !s.trim().is_empty() => Some(s.clone()),
        Some(other) => {
            errors.push(ValidationError::new(
                quote_path(path, "by"),
                format!("expected who acts (a non-empty string), got {other}"),
            ));
            None
        }
    };
    let text = |key: &str, errors: &mut Vec<ValidationError>| match required(key, errors) {
        Some(Value::String(s)) if !s.trim().is_empty() => Some(s.clone()),
        Some(other) => {
            errors.push(ValidationError::new(
                quote_path(path, key),
                format!("expected a non-empty string, got {other}"),
            ));
            None
        }
        None => None,
    };
    let wave = |errors: &mut Vec<ValidationError>| match required("wave", errors) {
        Some(v) => match v.as_u64() {
            Some(n) if (1..=u64::from(rm_core::manifest::MAX_WAVE)).contains(&n) => Some(n as u32),
            _ => {
                errors.push(ValidationError::new(
                    quote_path(path, "wave"),
                    format!(
                        "expected a wave number from 1 to {}, got {v}",
                        rm_core::manifest::MAX_WAVE
                    ),
                ));
                None
            }
        },
        None => None,
    };
    let action = match map.get("action").and_then(Value::as_str) {
        Some("approve") => wave(errors).map(|wave| Operation::Approve { wave }),
        Some("reject") => {
            let w = wave(errors);
            let reason = text("reason", errors);
            w.zip(reason)
                .map(|(wave, reason)| Operation::Reject { wave, reason })
        }
        Some("cancel") => text("reason", errors).map(|reason| Operation::Cancel { reason }),
        Some("halt") => text("reason", errors).map(|reason| Operation::Halt { reason }),
        Some("unhalt") => Some(Operation::Unhalt),
        _ => {
            errors.push(ValidationError::new(
                quote_path(path, "action"),
                format!(
                    "expected \"approve\", \"reject\", \"cancel\", \"halt\" or \"unhalt\", got {}",
                    map.get("action")
                        .map_or("nothing".to_owned(), Value::to_string)
                ),
            ));
            None
        }
    };
    if errors.len() > before {
        return None;
    }
    Some(OperatorAction {
        at: at?,
        by: by?,
        action: action?,
    })
}

/// `"startAt": "2026-12-01T09:00:00+01:00"`: RFC 3339 with an offset; kept in UTC (the store
/// and the events speak UTC). Whole seconds, so that times in the release JSON stay exact.
fn start_at(v: &Value, path: &str, errors: &mut Vec<ValidationError>) -> Option<OffsetDateTime> {
    let parsed = v.as_str().map(|s| {
        OffsetDateTime::parse(s, &time::format_description::well_known::Rfc3339)
            .map_err(|e| e.to_string())
    });
    match parsed {
        Some(Ok(t)) if t.nanosecond() == 0 => Some(t.to_offset(time::UtcOffset::UTC)),
        Some(Ok(_)) => {
            errors.push(ValidationError::new(
                path,
                format!("{v} has a fraction of a second; give whole seconds"),
            ));
            None
        }
        Some(Err(e)) => {
            errors.push(ValidationError::new(
                path,
                format!(
                    "{v} is not an RFC 3339 time with an offset ({e}); expected e.g. \
                     \"2026-12-01T09:00:00+01:00\" or \"2026-12-01T08:00:00Z\""
                ),
            ));
            None
        }
        None => {
            errors.push(ValidationError::new(
                path,
                format!(
                    "expected an RFC 3339 time such as \"2026-12-01T09:00:00+01:00\", got {}",
                    json_type(v)
                ),
            ));
            None
        }
    }
}

/// The top-level `"faults"` object.
fn run_faults(v: &Value, path: &str, errors: &mut Vec<ValidationError>) -> RunFaults {
    let mut faults = RunFaults::default();
    let Some(map) = v.as_object() else {
        errors.push(ValidationError::new(
            path,
            format!(
                "expected an object with any of {FAULT_FIELDS}, got {}",
                json_type(v)
            ),
        ));
        return faults;
    };
    for (key, v) in map {
        let p = quote_path(path, key);
        match key.as_str() {
            "abortExecutionAfterSeconds" => {
                faults.abort_execution_after = seconds(v, &p, errors);
            }
            "recordFailures" => faults.record_failures = count(v, &p, errors).unwrap_or(0),
            other => errors.push(ValidationError::new(
                &p,
                format!("unknown field {other:?}; expected one of {FAULT_FIELDS}"),
            )),
        }
    }
    faults
}

/// CodePipeline API calls made to one pipeline.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ApiCalls {
    pub get_pipeline: u32,
    pub start: u32,
    /// Start calls answered with a throttling error.
    pub throttled: u32,
    /// Start calls answered ConflictException (`startConflicts`).
    pub conflicts: u32,
    /// StartPipeline tasks that started (or, retried, found) the execution, then died before
    /// answering (`startTimeouts`).
    pub timed_out: u32,
    /// SendTaskSuccess/SendTaskFailure calls for this pipeline failed by `sendFailures`.
    pub send_failed: u32,
    pub get_execution: u32,
    /// ListPipelineExecutions calls (`find_started`).
    pub list_executions: u32,
    pub stop: u32,
}

impl ApiCalls {
    pub fn total(&self) -> u32 {
        self.get_pipeline + self.start + self.get_execution + self.list_executions + self.stop
    }
}

/// One simulated execution.
#[derive(Debug, Clone, PartialEq)]
pub struct SimExecution {
    pub pipeline: String,
    pub execution_id: String,
    pub client_request_token: String,
    pub status: RunStatus,
    pub started_at: OffsetDateTime,
    /// When it became terminal.
    pub ended_at: Option<OffsetDateTime>,
    pub summary: Option<String>,
    pub stop_reason: Option<String>,
    /// The pipeline-level variables it resolved: its start's, over the declared defaults.
    pub variables: BTreeMap<String, String>,
    /// The revision id each source action ran, by action name: its start's source revision
    /// overrides (`revisionValue`).
    pub source_revisions: BTreeMap<String, String>,
}

/// The id of `pipeline`'s execution from before the simulation (`lastRevisions`,
/// `lastVariables`).
pub fn last_execution_id(pipeline: &str) -> String {
    format!("sim-last-{pipeline}")
}

/// How long before the simulation's start the execution from before it ended.
const LAST_EXECUTION_ENDED_BEFORE: time::Duration = time::Duration::minutes(1);

#[derive(Default)]
struct State {
    by_request_token: HashMap<String, String>,
    executions: HashMap<String, SimExecution>,
    order: Vec<String>,
    calls: BTreeMap<String, ApiCalls>,
    running: usize,
    peak_running: usize,
    events_emitted: u64,
    /// Executions gone (`vanishes`): not found by Get/Stop.
    vanished: HashSet<String>,
    /// Start tasks that died as a Lambda timeout (`startTimeouts`) and that the runner has not
    /// taken yet (see [`SimPipelines::take_lambda_death`]).
    lambda_deaths: u32,
}

struct Inner {
    file: SimFile,
    clock: VirtualClock,
    bus: UnboundedSender<Value>,
    state: Mutex<State>,
}

/// The simulated CodePipeline service. Cheap to clone.
#[derive(Clone)]
pub struct SimPipelines {
    inner: Arc<Inner>,
}

fn rfc3339_millis(t: OffsetDateTime) -> String {
    let t = t.to_offset(time::UtcOffset::UTC);
    format!(
        "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}.{:03}Z",
        t.year(),
        u8::from(t.month()),
        t.day(),
        t.hour(),
        t.minute(),
        t.second(),
        t.millisecond()
    )
}

fn event_state(status: RunStatus) -> &'static str {
    match status {
        RunStatus::InProgress => "STARTED",
        RunStatus::Stopping => "STOPPING",
        RunStatus::Stopped => "STOPPED",
        RunStatus::Succeeded => "SUCCEEDED",
        RunStatus::Superseded => "SUPERSEDED",
        RunStatus::Failed => "FAILED",
        RunStatus::Cancelled => "CANCELED",
        RunStatus::NotStarted | RunStatus::NotFound | RunStatus::Skipped => "UNKNOWN",
    }
}

impl SimPipelines {
    /// State-change events are sent to `bus`. Make it inside the runtime the clock follows.
    pub fn new(file: SimFile, clock: VirtualClock, bus: UnboundedSender<Value>) -> Self {
        let inner = Arc::new(Inner {
            file,
            clock,
            bus,
            state: Mutex::new(State::default()),
        });
        SimPipelines { inner }
    }

    /// `sendFailures`: true if this SendTaskSuccess/SendTaskFailure for `pipeline`'s waiting
    /// task is one of the first N, which fail transiently; counts it.
    pub(crate) fn send_fails(&self, pipeline: &str) -> bool {
        let n = self.inner.file.behaviour(pipeline).send_failures;
        let mut s = self.inner.lock();
        let calls = s.calls.entry(pipeline.to_owned()).or_default();
        if calls.send_failed < n {
            calls.send_failed += 1;
            true
        } else {
            false
        }
    }

    /// `startTimeouts`: true once for each StartPipeline task that started its execution (a
    /// StartPipelineExecution call) or found it (a ListPipelineExecutions call that found one)
    /// and then died as a Lambda timeout before answering; false otherwise. The local runner
    /// asks after each task and fails the task as `Lambda.Unknown`.
    pub fn take_lambda_death(&self) -> bool {
        let mut s = self.inner.lock();
        if s.lambda_deaths > 0 {
            s.lambda_deaths -= 1;
            true
        } else {
            false
        }
    }

    /// API calls per pipeline.
    pub fn calls(&self) -> BTreeMap<String, ApiCalls> {
        self.inner.lock().calls.clone()
    }

    /// Every execution started, in start order.
    pub fn executions(&self) -> Vec<SimExecution> {
        let s = self.inner.lock();
        s.order.iter().map(|id| s.executions[id].clone()).collect()
    }

    /// What ListPipelineExecutions lists for `pipeline`: its executions, newest first (by start
    /// time; the later started first among equal times), without the vanished ones, and last
    /// the one from before the simulation (`lastRevisions`, `lastVariables`), if any.
    pub fn history(&self, pipeline: &str) -> Vec<SimExecution> {
        let s = self.inner.lock();
        let mut listed: Vec<SimExecution> = history(&s, pipeline).cloned().collect();
        listed.reverse();
        listed.sort_by_key(|e| std::cmp::Reverse(e.started_at));
        listed.extend(self.inner.last_execution(pipeline));
        listed
    }

    /// The execution `execution_id` of `pipeline`, as GetPipelineExecution finds it: one the
    /// simulation started (not vanished) or the one from before it.
    pub fn execution(&self, pipeline: &str, execution_id: &str) -> Option<SimExecution> {
        self.inner.find(&self.inner.lock(), pipeline, execution_id)
    }

    /// The most executions in progress (or stopping) at once.
    pub fn peak_running(&self) -> usize {
        self.inner.lock().peak_running
    }

    /// State-change events published (before drop/duplicate).
    pub fn events_emitted(&self) -> u64 {
        self.inner.lock().events_emitted
    }
}

impl Inner {
    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// `pipeline`'s execution from before the simulation, when the sim file gives it
    /// `lastRevisions` or `lastVariables`: Succeeded a minute before the simulation's start,
    /// after `durationSeconds`. Made on demand from the file, so it is never in `State`: not
    /// counted, not running, no events.
    fn last_execution(&self, pipeline: &str) -> Option<SimExecution> {
        let shape = self.file.shape(pipeline);
        if !shape.ran_before() {
            return None;
        }
        let ended = self.clock.start() - LAST_EXECUTION_ENDED_BEFORE;
        Some(SimExecution {
            pipeline: pipeline.to_owned(),
            execution_id: last_execution_id(pipeline),
            client_request_token: String::new(),
            status: RunStatus::Succeeded,
            started_at: ended - self.file.behaviour(pipeline).duration,
            ended_at: Some(ended),
            summary: None,
            stop_reason: None,
            variables: shape.last_variables.unwrap_or_default(),
            source_revisions: shape
                .last_revisions
                .into_iter()
                .flatten()
                .map(|r| (r.action_name, r.revision_value))
                .collect(),
        })
    }

    /// An execution of `pipeline` GetPipelineExecution finds (see [`SimPipelines::execution`]).
    fn find(&self, s: &State, pipeline: &str, execution_id: &str) -> Option<SimExecution> {
        match s.executions.get(execution_id) {
            Some(e) if e.pipeline == pipeline && !s.vanished.contains(execution_id) => {
                Some(e.clone())
            }
            Some(_) => None,
            None => self
                .last_execution(pipeline)
                .filter(|e| e.execution_id == execution_id),
        }
    }

    fn publish(&self, state: &mut State, execution_id: &str) {
        let e = &state.executions[execution_id];
        let now = self.clock.now();
        let event = json!({
            "version": "0",
            "id": format!("{:08x}-{:04x}-4{:03x}-8{:03x}-{:012x}",
                rand::random::<u32>(), rand::random::<u16>(), rand::random::<u16>() & 0xfff,
                rand::random::<u16>() & 0xfff, rand::random::<u64>() & 0xffff_ffff_ffff),
            "detail-type": "CodePipeline Pipeline Execution State Change",
            "source": "aws.codepipeline",
            "account": ACCOUNT,
            "time": rfc3339_millis(now),
            "region": REGION,
            "resources": [format!("arn:aws:codepipeline:{REGION}:{ACCOUNT}:{}", e.pipeline)],
            "detail": {
                "pipeline": e.pipeline,
                "execution-id": e.execution_id,
                "start-time": rfc3339_millis(e.started_at),
                "execution-trigger": {
                    "trigger-type": "StartPipelineExecution",
                    "trigger-detail": format!("arn:aws:sts::{ACCOUNT}:assumed-role/release-machine-StartPipelinesRole/release-machine-start-pipelines"),
                },
                "state": event_state(e.status),
                "version": 1,
                "pipeline-execution-attempt": 1,
            }
        });
        state.events_emitted += 1;
        let copies = match self.file.behaviour(&e.pipeline).events {
            EventDelivery::Deliver => 1,
            EventDelivery::Drop => 0,
            EventDelivery::Duplicate => 2,
        };
        for _ in 0..copies {
            // The bus is gone only when the run is over: nobody left to tell.
            let _ = self.bus.send(event.clone());
        }
    }

    /// Moves an execution from `from` to `status`; publishes the change. False (and nothing
    /// happens) if the execution is no longer in `from`: a stopped execution never succeeds.
    fn transition(
        &self,
        execution_id: &str,
        from: RunStatus,
        status: RunStatus,
        summary: Option<String>,
    ) -> bool {
        let mut s = self.lock();
        let Some(e) = s.executions.get_mut(execution_id) else {
            return false;
        };
        if e.status != from {
            return false;
        }
        e.status = status;
        if summary.is_some() {
            e.summary = summary;
        }
        if status.is_terminal() {
            e.ended_at = Some(self.clock.now());
            s.running -= 1;
        }
        self.publish(&mut s, execution_id);
        true
    }

    async fn live(self: Arc<Self>, execution_id: String, b: Behaviour) {
        tokio::time::sleep(b.duration).await;
        let summary = match (&b.outcome, &b.failed_stage) {
            (SimOutcome::Failed, Some(stage)) => Some(format!("stage {stage} failed")),
            (SimOutcome::Failed, None) => Some("an action failed".to_owned()),
            (SimOutcome::Superseded, _) => Some("superseded by a newer execution".to_owned()),
            _ => None,
        };
        match b.outcome {
            SimOutcome::Succeeded => self.transition(
                &execution_id,
                RunStatus::InProgress,
                RunStatus::Succeeded,
                None,
            ),
            SimOutcome::Failed => self.transition(
                &execution_id,
                RunStatus::InProgress,
                RunStatus::Failed,
                summary,
            ),
            SimOutcome::Superseded => self.transition(
                &execution_id,
                RunStatus::InProgress,
                RunStatus::Superseded,
                summary,
            ),
            SimOutcome::Stopped => {
                let reason = Some("stopped from the console".to_owned());
                if self.transition(
                    &execution_id,
                    RunStatus::InProgress,
                    RunStatus::Stopping,
                    reason.clone(),
                ) {
                    tokio::time::sleep(b.stop).await;
                    self.transition(
                        &execution_id,
                        RunStatus::Stopping,
                        RunStatus::Stopped,
                        reason,
                    );
                }
                true
            }
        };
    }

    async fn stopping(self: Arc<Self>, execution_id: String, after: Duration) {
        tokio::time::sleep(after).await;
        self.transition(&execution_id, RunStatus::Stopping, RunStatus::Stopped, None);
    }
}

/// `startTimeouts`: true (and a Lambda death recorded for the runner) if this StartPipeline
/// task of `pipeline` is one of the first N, which die before they answer; counts it.
fn start_times_out(s: &mut State, pipeline: &str, b: &Behaviour) -> bool {
    let calls = s.calls.entry(pipeline.to_owned()).or_default();
    if calls.timed_out < b.start_timeouts {
        calls.timed_out += 1;
        s.lambda_deaths += 1;
        true
    } else {
        false
    }
}

/// `pipeline`'s executions in start order, without the vanished ones (gone from CodePipeline's
/// history as from GetPipelineExecution).
fn history<'a>(s: &'a State, pipeline: &'a str) -> impl Iterator<Item = &'a SimExecution> + 'a {
    s.order
        .iter()
        .map(|id| &s.executions[id])
        .filter(move |e| e.pipeline == pipeline && !s.vanished.contains(&e.execution_id))
}

fn execution_not_found(pipeline: &str, execution_id: &str) -> PortError {
    PortError::NotFound(format!(
        "PipelineExecutionNotFoundException: pipeline {pipeline} has no execution {execution_id}"
    ))
}

fn pipeline_not_found(pipeline: &str) -> PortError {
    PortError::NotFound(format!(
        "PipelineNotFoundException: Account '{ACCOUNT}' does not have a pipeline with name \
         '{pipeline}'"
    ))
}

/// ListPipelineExecutions' largest page: what the AWS adapter asks for.
const LIST_PAGE_SIZE: usize = 100;

/// A ListPipelineExecutions summary of a simulated execution; every one is triggered by
/// StartPipelineExecution.
fn past_execution(e: SimExecution) -> PastExecution {
    PastExecution {
        execution_id: e.execution_id,
        status: e.status,
        trigger_type: Some("StartPipelineExecution".to_owned()),
        started_at: Some(e.started_at),
        last_update: Some(e.ended_at.unwrap_or(e.started_at)),
        source_revisions: e.source_revisions,
    }
}

fn execution_id() -> String {
    format!(
        "{:08x}-{:04x}-4{:03x}-{:04x}-{:012x}",
        rand::random::<u32>(),
        rand::random::<u16>(),
        rand::random::<u16>() & 0xfff,
        (rand::random::<u16>() & 0x3fff) | 0x8000,
        rand::random::<u64>() & 0xffff_ffff_ffff
    )
}

#[async_trait::async_trait]
impl Pipelines for SimPipelines {
    /// One GetPipeline call.
    async fn describe(&self, name: &str) -> PortResult<Option<PipelineShape>> {
        let inner = &self.inner;
        inner
            .lock()
            .calls
            .entry(name.to_owned())
            .or_default()
            .get_pipeline += 1;
        Ok(inner
            .file
            .behaviour(name)
            .exists
            .then(|| inner.file.shape(name).port(name)))
    }

    /// Counted as the ListPipelineExecutions pages the AWS adapter reads: pages of 100 until
    /// `limit` executions or the last page (at least one call; none for a `limit` of 0).
    async fn recent_executions(&self, name: &str, limit: usize) -> PortResult<Vec<PastExecution>> {
        if limit == 0 {
            return Ok(Vec::new());
        }
        let exists = self.inner.file.behaviour(name).exists;
        let listed = if exists {
            self.history(name)
        } else {
            Vec::new()
        };
        let pages = listed.len().min(limit).div_ceil(LIST_PAGE_SIZE).max(1);
        self.inner
            .lock()
            .calls
            .entry(name.to_owned())
            .or_default()
            .list_executions += u32::try_from(pages).unwrap_or(u32::MAX);
        if !exists {
            return Err(pipeline_not_found(name));
        }
        Ok(listed.into_iter().take(limit).map(past_execution).collect())
    }

    /// One GetPipelineExecution call.
    async fn execution_variables(
        &self,
        name: &str,
        execution_id: &str,
    ) -> PortResult<BTreeMap<String, String>> {
        let inner = &self.inner;
        let exists = inner.file.behaviour(name).exists;
        let mut s = inner.lock();
        s.calls.entry(name.to_owned()).or_default().get_execution += 1;
        if !exists {
            return Err(pipeline_not_found(name));
        }
        inner
            .find(&s, name, execution_id)
            .map(|e| e.variables)
            .ok_or_else(|| execution_not_found(name, execution_id))
    }

    async fn exists(&self, name: &str) -> PortResult<bool> {
        let inner = &self.inner;
        inner
            .lock()
            .calls
            .entry(name.to_owned())
            .or_default()
            .get_pipeline += 1;
        Ok(inner.file.behaviour(name).exists)
    }

    async fn start(
        &self,
        spec: &PipelineSpec,
        client_request_token: &str,
    ) -> Result<String, StartError> {
        let inner = &self.inner;
        let b = inner.file.behaviour(&spec.name);
        let mut s = inner.lock();
        let calls = s.calls.entry(spec.name.clone()).or_default();
        calls.start += 1;
        if !b.exists {
            return Err(StartError::NotFound(spec.name.clone()));
        }
        if calls.throttled < b.throttle_starts {
            calls.throttled += 1;
            return Err(StartError::Port(PortError::Throttled(format!(
                "ThrottlingException: Rate exceeded (StartPipelineExecution on {})",
                spec.name
            ))));
        }
        if calls.conflicts < b.start_conflicts {
            calls.conflicts += 1;
            return Err(StartError::Busy(format!(
                "ConflictException: Your request cannot be handled because the pipeline {} is \
                 busy and cannot process your request. Try again later.",
                spec.name
            )));
        }
        // CodePipeline's idempotency: the same clientRequestToken answers the same execution.
        let id = match s.by_request_token.get(client_request_token) {
            Some(id) => id.clone(),
            None => {
                let id = execution_id();
                s.by_request_token
                    .insert(client_request_token.to_owned(), id.clone());
                s.executions.insert(
                    id.clone(),
                    SimExecution {
                        pipeline: spec.name.clone(),
                        execution_id: id.clone(),
                        client_request_token: client_request_token.to_owned(),
                        status: RunStatus::InProgress,
                        started_at: inner.clock.now(),
                        ended_at: None,
                        summary: None,
                        stop_reason: None,
                        variables: {
                            let mut resolved = inner.file.shape(&spec.name).variable_defaults();
                            resolved.extend(spec.variables.clone());
                            resolved
                        },
                        source_revisions: spec
                            .source_revisions
                            .iter()
                            .map(|r| (r.action_name.clone(), r.revision_value.clone()))
                            .collect(),
                    },
                );
                s.order.push(id.clone());
                s.running += 1;
                s.peak_running = s.peak_running.max(s.running);
                inner.publish(&mut s, &id);
                if b.vanishes {
                    // Gone once started: no further events, Get and Stop answer not found.
                    s.vanished.insert(id.clone());
                    s.running -= 1;
                } else {
                    tokio::spawn(Arc::clone(inner).live(id.clone(), b.clone()));
                }
                id
            }
        };
        // `startTimeouts`: started, then the task died before it could answer.
        if start_times_out(&mut s, &spec.name, &b) {
            return Err(StartError::Port(PortError::Transient(format!(
                "StartPipelineExecution on {} timed out: the task died before it answered \
                 (the sim file's startTimeouts; execution {id} was started)",
                spec.name
            ))));
        }
        Ok(id)
    }

    async fn find_started(
        &self,
        pipeline: &str,
        since: OffsetDateTime,
    ) -> PortResult<Option<String>> {
        let inner = &self.inner;
        let b = inner.file.behaviour(pipeline);
        let mut s = inner.lock();
        s.calls
            .entry(pipeline.to_owned())
            .or_default()
            .list_executions += 1;
        if !b.exists {
            return Err(pipeline_not_found(pipeline));
        }
        // Every simulated execution is triggered by StartPipelineExecution. The one from
        // before the simulation is not looked at: it started before any `since` of a release
        // in it.
        let found = history(&s, pipeline)
            .filter(|e| e.started_at >= since)
            .min_by_key(|e| e.started_at)
            .map(|e| e.execution_id.clone());
        // `startTimeouts` counts StartPipeline tasks: a retried task that finds (adopts) the
        // execution instead of starting it dies too, before it records the adoption — as the
        // first one died before it recorded the start — so every one of the N tasks dies and
        // the next adopts the one execution.
        if found.is_some() && start_times_out(&mut s, pipeline, &b) {
            tracing::debug!(
                pipeline,
                "startTimeouts: the task that found the execution dies"
            );
            return Err(PortError::Transient(format!(
                "ListPipelineExecutions {pipeline}: timed out (startTimeouts)"
            )));
        }
        Ok(found)
    }

    async fn status(&self, pipeline: &str, execution_id: &str) -> PortResult<ExecutionStatus> {
        let mut s = self.inner.lock();
        s.calls
            .entry(pipeline.to_owned())
            .or_default()
            .get_execution += 1;
        match self.inner.find(&s, pipeline, execution_id) {
            Some(e) => Ok(ExecutionStatus {
                status: e.status,
                summary: e.summary,
            }),
            None => Err(execution_not_found(pipeline, execution_id)),
        }
    }

    async fn stop(
        &self,
        pipeline: &str,
        execution_id: &str,
        reason: &str,
        abandon: bool,
    ) -> PortResult<()> {
        let inner = &self.inner;
        let b = inner.file.behaviour(pipeline);
        let status = {
            let mut s = inner.lock();
            s.calls.entry(pipeline.to_owned()).or_default().stop += 1;
            let vanished = s.vanished.contains(execution_id);
            match s.executions.get_mut(execution_id) {
                Some(e) if e.pipeline == pipeline && !vanished => {
                    if e.stop_reason.is_none() && !e.status.is_terminal() {
                        e.stop_reason = Some(reason.to_owned());
                    }
                    e.status
                }
                // The execution from before the simulation: finished, so not an error.
                _ if inner
                    .last_execution(pipeline)
                    .is_some_and(|e| e.execution_id == execution_id) =>
                {
                    return Ok(())
                }
                _ => return Err(execution_not_found(pipeline, execution_id)),
            }
        };
        match status {
            // `stopRefused`: answered, never done; the execution keeps its own outcome.
            _ if b.stop_refused => {}
            RunStatus::InProgress => {
                inner.transition(
                    execution_id,
                    RunStatus::InProgress,
                    RunStatus::Stopping,
                    Some(reason.to_owned()),
                );
                let after = if abandon { Duration::ZERO } else { b.stop };
                tokio::spawn(Arc::clone(inner).stopping(execution_id.to_owned(), after));
            }
            RunStatus::Stopping if abandon => {
                inner.transition(execution_id, RunStatus::Stopping, RunStatus::Stopped, None);
            }
            // Already stopping or finished: not an error.
            _ => {}
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use time::macros::datetime;

    const T0: OffsetDateTime = datetime!(2026-01-01 00:00:00 UTC);

    fn sim(v: Value) -> SimFile {
        SimFile::from_value(&v).expect("valid sim file")
    }

    /// The problems of an invalid sim file, as (path, message).
    fn problems(v: Value) -> Vec<(String, String)> {
        SimFile::from_value(&v)
            .expect_err("invalid sim file")
            .0
            .into_iter()
            .map(|e| (e.path.clone(), e.message.clone()))
            .collect()
    }

    fn pipelines(file: SimFile) -> (SimPipelines, tokio::sync::mpsc::UnboundedReceiver<Value>) {
        let (bus, events) = tokio::sync::mpsc::unbounded_channel();
        (SimPipelines::new(file, VirtualClock::new(T0), bus), events)
    }

    #[test]
    fn faults_parse_and_default_to_none() {
        let none = SimFile::default();
        assert_eq!(none.abort_execution_after(), None);
        assert_eq!(none.record_failures(), 0);
        let file = sim(json!({
            "faults": {"abortExecutionAfterSeconds": 90.5, "recordFailures": 3}
        }));
        assert_eq!(
            file.abort_execution_after(),
            Some(Duration::from_millis(90_500))
        );
        assert_eq!(file.record_failures(), 3);
        let empty = sim(json!({"faults": {}}));
        assert_eq!(empty, SimFile::default());
        let zero = sim(json!({"faults": {"abortExecutionAfterSeconds": 0}}));
        assert_eq!(zero.abort_execution_after(), Some(Duration::ZERO));
    }

    #[test]
    fn faults_are_validated_at_their_paths() {
        let found = problems(json!({
            "faults": {
                "abortExecutionAfterSeconds": -1,
                "recordFailures": 1001,
                "abortAfter": 5
            }
        }));
        let paths: Vec<&str> = found.iter().map(|(p, _)| p.as_str()).collect();
        assert_eq!(
            paths,
            [
                "$.faults.abortExecutionAfterSeconds",
                "$.faults.recordFailures",
                "$.faults.abortAfter"
            ],
            "{found:?}"
        );
        assert!(found[0].1.contains("out of range"), "{found:?}");
        assert!(found[1].1.contains("0 to 1000"), "{found:?}");
        assert!(
            found[2]
                .1
                .contains("abortExecutionAfterSeconds, recordFailures"),
            "{found:?}"
        );

        let found = problems(json!({
            "faults": {"abortExecutionAfterSeconds": 30.0 * 24.0 * 3600.0 + 1.0,
                       "recordFailures": 1.5}
        }));
        assert_eq!(found.len(), 2, "{found:?}");
        let found = problems(json!({
            "faults": {"abortExecutionAfterSeconds": "600", "recordFailures": -2}
        }));
        assert_eq!(found.len(), 2, "{found:?}");
        assert!(found[0].1.contains("a number of seconds"), "{found:?}");

        let found = problems(json!({"faults": [1]}));
        assert_eq!(found.len(), 1);
        assert_eq!(found[0].0, "$.faults");
        assert!(found[0].1.contains("got an array"), "{found:?}");
    }

    #[test]
    fn start_at_is_rfc3339_with_an_offset_kept_in_utc() {
        let file = sim(json!({"startAt": "2026-12-01T09:00:00+01:00"}));
        assert_eq!(file.start_at(), Some(datetime!(2026-12-01 08:00:00 UTC)));
        assert_eq!(file.start_at().unwrap().offset(), time::UtcOffset::UTC);
        assert_eq!(SimFile::default().start_at(), None);
        let found = problems(json!({"startAt": "2026-12-01T09:00:00"}));
        assert_eq!(found[0].0, "$.startAt");
        assert!(found[0].1.contains("RFC 3339"), "{found:?}");
        for bad in [
            json!(1700000000),
            json!("2026-12-01T09:00:00.5Z"),
            json!("tomorrow"),
        ] {
            let found = problems(json!({"startAt": bad}));
            assert_eq!(found.len(), 1, "{found:?}");
            assert_eq!(found[0].0, "$.startAt");
        }
    }

    #[test]
    fn halt_and_unhalt_are_operator_actions() {
        let file = sim(json!({"operator": [
            {"atSeconds": 1800, "action": "unhalt", "by": "bob"},
            {"atSeconds": 600, "action": "halt", "by": "alice", "reason": "incident 4711"},
            {"atSeconds": 900, "action": "unhalt"}
        ]}));
        let got: Vec<(u64, &str, &Operation)> = file
            .operator()
            .iter()
            .map(|a| (a.at.as_secs(), a.by.as_str(), &a.action))
            .collect();
        assert_eq!(
            got,
            [
                (
                    600,
                    "alice",
                    &Operation::Halt {
                        reason: "incident 4711".into()
                    }
                ),
                (900, "local", &Operation::Unhalt),
                (1800, "bob", &Operation::Unhalt),
            ]
        );
        assert!(file.operator()[1].action.is_unhalt());
        let found = problems(json!({"operator": [
            {"atSeconds": 600, "action": "halt", "by": "alice"},
            {"atSeconds": 600, "action": "halt", "reason": "x", "wave": 2},
            {"atSeconds": 900, "action": "unhalt", "reason": "over"},
            {"atSeconds": 900, "action": "pause"}
        ]}));
        let paths: Vec<&str> = found.iter().map(|(p, _)| p.as_str()).collect();
        assert_eq!(
            paths,
            [
                "$.operator[0].reason",
                "$.operator[1].wave",
                "$.operator[2].reason",
                "$.operator[3].action"
            ],
            "{found:?}"
        );
        assert!(found[1].1.contains("every release"), "{found:?}");
        assert!(found[3].1.contains("\"halt\" or \"unhalt\""), "{found:?}");
    }

    #[test]
    fn unknown_top_level_keys_are_still_errors() {
        let found = problems(json!({"fault": {}, "faults": {"recordFailures": 1}}));
        assert_eq!(found.len(), 1, "{found:?}");
        assert_eq!(found[0].0, "$.fault");
        assert!(found[0].1.contains("\"faults\""), "{found:?}");
    }

    #[test]
    fn start_timeouts_parse_per_pipeline_and_in_defaults() {
        let file = sim(json!({
            "defaults": {"startTimeouts": 1},
            "pipelines": {"api": {"startTimeouts": 3}, "web": {}}
        }));
        assert_eq!(file.behaviour("api").start_timeouts, 3);
        assert_eq!(file.behaviour("web").start_timeouts, 1);
        assert_eq!(SimFile::default().behaviour("web").start_timeouts, 0);
        let found = problems(json!({
            "defaults": {"startTimeouts": -1},
            "pipelines": {"api": {"startTimeouts": "2", "startTimeout": 1}}
        }));
        let paths: Vec<&str> = found.iter().map(|(p, _)| p.as_str()).collect();
        assert_eq!(
            paths,
            [
                "$.defaults.startTimeouts",
                "$.pipelines.api.startTimeouts",
                "$.pipelines.api.startTimeout"
            ],
            "{found:?}"
        );
        assert!(found[2].1.contains("startTimeouts"), "{found:?}");
    }

    #[tokio::test(start_paused = true)]
    async fn start_timeouts_start_the_execution_then_die_once_each() {
        let (sim, _events) = pipelines(sim(json!({
            "pipelines": {"api": {"startTimeouts": 2}}
        })));
        let spec = PipelineSpec::new("api", 1);
        assert!(!sim.take_lambda_death());
        for _ in 0..2 {
            match sim.start(&spec, "token-1").await {
                Err(StartError::Port(PortError::Transient(m))) => {
                    assert!(m.contains("timed out"), "{m}")
                }
                other => panic!("expected a transient timeout, got {other:?}"),
            }
            assert!(sim.take_lambda_death(), "one death per timed-out start");
            assert!(!sim.take_lambda_death(), "taken once");
        }
        let executions = sim.executions();
        assert_eq!(executions.len(), 1, "the retries found the same execution");
        let id = sim.start(&spec, "token-1").await.unwrap();
        assert_eq!(id, executions[0].execution_id);
        assert!(!sim.take_lambda_death());
        assert_eq!(sim.calls()["api"].timed_out, 2);
        assert_eq!(sim.calls()["api"].start, 3);
        // Another pipeline is not affected.
        sim.start(&PipelineSpec::new("web", 1), "token-2")
            .await
            .unwrap();
        assert!(!sim.take_lambda_death());
    }

    #[tokio::test(start_paused = true)]
    async fn a_retried_task_that_finds_the_execution_dies_too_while_timeouts_remain() {
        let (sim, _events) = pipelines(sim(json!({
            "pipelines": {"api": {"startTimeouts": 2}}
        })));
        let spec = PipelineSpec::new("api", 1);
        assert!(sim.find_started("api", T0).await.unwrap().is_none());
        assert!(!sim.take_lambda_death(), "nothing found: no task died");
        assert!(sim.start(&spec, "token-1").await.is_err());
        assert!(sim.take_lambda_death());
        let id = sim.executions()[0].execution_id.clone();
        // The retry finds the execution: the second of the two tasks, it dies before it can
        // record the adoption (the lookup's answer is lost).
        assert!(sim.find_started("api", T0).await.is_err());
        assert!(sim.take_lambda_death());
        // The third task lives.
        assert_eq!(sim.find_started("api", T0).await.unwrap(), Some(id.clone()));
        assert!(!sim.take_lambda_death());
        assert_eq!(sim.start(&spec, "token-1").await.unwrap(), id);
        assert!(!sim.take_lambda_death());
        assert_eq!(sim.calls()["api"].timed_out, 2);
    }

    #[tokio::test(start_paused = true)]
    async fn find_started_takes_the_earliest_start_at_or_after_since() {
        let (sim, _events) = pipelines(sim(json!({
            "defaults": {"durationSeconds": 3600},
            "pipelines": {"ghost": {"exists": false}, "gone": {"vanishes": true}}
        })));
        let app = PipelineSpec::new("app", 1);
        let first = sim.start(&app, "t1").await.unwrap();
        tokio::time::sleep(Duration::from_secs(60)).await;
        let second = sim.start(&app, "t2").await.unwrap();
        sim.start(&PipelineSpec::new("web", 1), "t3").await.unwrap();
        tokio::time::sleep(Duration::from_secs(60)).await;
        let third = sim.start(&app, "t4").await.unwrap();

        assert_eq!(
            sim.find_started("app", T0).await.unwrap(),
            Some(first.clone())
        );
        let at_second = T0 + time::Duration::seconds(60);
        assert_eq!(
            sim.find_started("app", at_second).await.unwrap(),
            Some(second.clone()),
            "a start at since counts"
        );
        assert_eq!(
            sim.find_started("app", at_second + time::Duration::seconds(1))
                .await
                .unwrap(),
            Some(third.clone())
        );
        assert_eq!(
            sim.find_started("app", T0 + time::Duration::seconds(121))
                .await
                .unwrap(),
            None
        );
        let history: Vec<String> = sim
            .history("app")
            .into_iter()
            .map(|e| e.execution_id)
            .collect();
        assert_eq!(history, [third, second, first], "newest first");

        let err = sim.find_started("ghost", T0).await.unwrap_err();
        assert!(matches!(err, PortError::NotFound(_)), "{err:?}");
        sim.start(&PipelineSpec::new("gone", 1), "t5")
            .await
            .unwrap();
        assert_eq!(
            sim.find_started("gone", T0).await.unwrap(),
            None,
            "a vanished execution is gone from the history too"
        );
        assert_eq!(sim.calls()["app"].list_executions, 4);
    }
}

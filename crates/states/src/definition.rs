//! Loading a definition: parse, check every field, refuse what is not implemented.

use std::collections::{HashMap, HashSet};

use serde_json::{Map, Value};
use time::OffsetDateTime;

use crate::choice::{self, Rule};
use crate::error::{names, LoadError, StatesError};
use crate::intrinsics::{self, Call};
use crate::paths::{ContextSource, Path, Seg};

/// A state machine or a Map/Parallel branch.
#[derive(Debug)]
pub(crate) struct Machine {
    pub start_at: String,
    pub states: HashMap<String, State>,
    pub timeout_seconds: Option<u64>,
}

/// InputPath / OutputPath.
#[derive(Debug)]
pub(crate) enum PathSel {
    Whole,
    /// `null`: the state sees (or passes on) `{}`.
    Null,
    Path(Path),
}

/// ResultPath.
#[derive(Debug, Clone)]
pub(crate) enum ResultPath {
    /// `$` (the default): the result replaces the input.
    Whole,
    /// `null`: the result is discarded, the input passes on.
    Discard,
    At(Vec<Seg>, String),
}

/// A payload template (Parameters, ResultSelector, ItemSelector) compiled at load time.
#[derive(Debug)]
pub(crate) enum Template {
    Value(Value),
    Object(Vec<(String, Template)>),
    Array(Vec<Template>),
    Path(Path),
    Intrinsic(Call),
}

/// A string given literally, by a path or by an intrinsic function (Fail's Error/Cause).
#[derive(Debug)]
pub(crate) enum Source {
    Literal(String),
    Path(Path),
    Intrinsic(Call),
}

/// A number given literally or by a reference path (TimeoutSeconds/TimeoutSecondsPath...).
#[derive(Debug)]
pub(crate) enum Num {
    Fixed(u64),
    Path(Path),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Integration {
    /// `arn:aws:states:::lambda:invoke`: Parameters are the Invoke API's; the result is wrapped.
    LambdaInvoke,
    /// A Lambda function ARN as Resource: the effective input is the payload, no wrapper.
    LambdaArn,
    /// Another `arn:aws:states:::service:action` integration, delegated to the handler.
    Service,
}

#[derive(Debug)]
pub(crate) struct TaskSpec {
    pub resource: String,
    pub integration: Integration,
    pub wait_for_token: bool,
    pub timeout: Option<Num>,
    pub heartbeat: Option<Num>,
}

#[derive(Debug)]
pub(crate) enum WaitFor {
    Seconds(u64),
    SecondsPath(Path),
    Timestamp(OffsetDateTime),
    TimestampPath(Path),
}

#[derive(Debug)]
pub(crate) struct MapSpec {
    pub items_path: Option<Path>,
    pub item_selector: Option<Template>,
    pub processor: Machine,
    pub max_concurrency: Num,
}

#[derive(Debug)]
pub(crate) struct Retrier {
    pub errors: Vec<String>,
    pub interval_seconds: f64,
    pub max_attempts: u32,
    pub backoff_rate: f64,
    pub max_delay_seconds: Option<f64>,
    pub jitter_full: bool,
}

#[derive(Debug)]
pub(crate) struct Catcher {
    pub errors: Vec<String>,
    pub result_path: ResultPath,
    pub next: String,
}

#[derive(Debug)]
pub(crate) enum Kind {
    Pass {
        result: Option<Value>,
    },
    Task(TaskSpec),
    Choice {
        choices: Vec<(Rule, String)>,
        default: Option<String>,
    },
    Wait(WaitFor),
    Succeed,
    Fail {
        error: Option<Source>,
        cause: Option<Source>,
    },
    Parallel {
        branches: Vec<Machine>,
    },
    Map(Box<MapSpec>),
}

#[derive(Debug)]
pub(crate) struct State {
    pub name: String,
    pub kind: Kind,
    pub input_path: PathSel,
    pub output_path: PathSel,
    pub parameters: Option<Template>,
    pub result_selector: Option<Template>,
    pub result_path: ResultPath,
    /// `None` for a terminal state (End, Succeed, Fail) and for Choice.
    pub next: Option<String>,
    pub retry: Vec<Retrier>,
    pub catch: Vec<Catcher>,
}

impl State {
    /// The history event types for entering and leaving this state.
    pub(crate) fn event_types(&self) -> (&'static str, &'static str) {
        match self.kind {
            Kind::Pass { .. } => ("PassStateEntered", "PassStateExited"),
            Kind::Task(_) => ("TaskStateEntered", "TaskStateExited"),
            Kind::Choice { .. } => ("ChoiceStateEntered", "ChoiceStateExited"),
            Kind::Wait(_) => ("WaitStateEntered", "WaitStateExited"),
            Kind::Succeed => ("SucceedStateEntered", "SucceedStateExited"),
            Kind::Fail { .. } => ("FailStateEntered", "FailStateExited"),
            Kind::Parallel { .. } => ("ParallelStateEntered", "ParallelStateExited"),
            Kind::Map(_) => ("MapStateEntered", "MapStateExited"),
        }
    }
}

impl Template {
    pub(crate) fn eval(&self, data: &Value, ctx: &dyn ContextSource) -> Result<Value, StatesError> {
        Ok(match self {
            Template::Value(v) => v.clone(),
            Template::Object(fields) => {
                let mut m = Map::with_capacity(fields.len());
                for (k, t) in fields {
                    m.insert(k.clone(), t.eval(data, ctx)?);
                }
                Value::Object(m)
            }
            Template::Array(items) => Value::Array(
                items
                    .iter()
                    .map(|t| t.eval(data, ctx))
                    .collect::<Result<_, _>>()?,
            ),
            Template::Path(p) => p.resolve(data, ctx)?.into_owned(),
            Template::Intrinsic(c) => c.eval(data, ctx)?,
        })
    }
}

impl Source {
    pub(crate) fn eval(
        &self,
        data: &Value,
        ctx: &dyn ContextSource,
    ) -> Result<String, StatesError> {
        let v = match self {
            Source::Literal(s) => return Ok(s.clone()),
            Source::Path(p) => p.resolve(data, ctx)?.into_owned(),
            Source::Intrinsic(c) => c.eval(data, ctx)?,
        };
        match v {
            Value::String(s) => Ok(s),
            other => Err(StatesError::runtime(format!(
                "The ErrorPath/CausePath must resolve to a string, got {other}"
            ))),
        }
    }
}

// ---------------------------------------------------------------------------------------
// Loading

/// Fields that exist in the States Language but that this engine does not implement.
fn unsupported(field: &str) -> Option<&'static str> {
    Some(match field {
        "Assign" | "Output" | "Arguments" => "variables and JSONata fields are not supported by this engine",
        "Credentials" => "cross-account Task credentials are not supported by this engine",
        "ItemReader" | "ResultWriter" | "ItemBatcher" => "distributed Map (ItemReader, ResultWriter, ItemBatcher) is not supported by this engine",
        "ToleratedFailurePercentage" | "ToleratedFailurePercentagePath" | "ToleratedFailureCount"
        | "ToleratedFailureCountPath" => "tolerated failures in Map are not supported by this engine",
        "Label" => "distributed Map labels are not supported by this engine",
        "Items" => "the JSONata 'Items' field is not supported by this engine",
        _ => return None,
    })
}

const COMMON: &[&str] = &["Type", "Comment", "QueryLanguage"];

fn allowed_fields(kind: &str) -> Option<&'static [&'static str]> {
    Some(match kind {
        "Pass" => &[
            "InputPath",
            "OutputPath",
            "Parameters",
            "Result",
            "ResultPath",
            "Next",
            "End",
        ],
        "Task" => &[
            "Resource",
            "InputPath",
            "OutputPath",
            "Parameters",
            "ResultSelector",
            "ResultPath",
            "Retry",
            "Catch",
            "TimeoutSeconds",
            "TimeoutSecondsPath",
            "HeartbeatSeconds",
            "HeartbeatSecondsPath",
            "Next",
            "End",
        ],
        "Choice" => &["Choices", "Default", "InputPath", "OutputPath"],
        "Wait" => &[
            "Seconds",
            "SecondsPath",
            "Timestamp",
            "TimestampPath",
            "InputPath",
            "OutputPath",
            "Next",
            "End",
        ],
        "Succeed" => &["InputPath", "OutputPath"],
        "Fail" => &["Error", "ErrorPath", "Cause", "CausePath"],
        "Parallel" => &[
            "Branches",
            "InputPath",
            "OutputPath",
            "Parameters",
            "ResultSelector",
            "ResultPath",
            "Retry",
            "Catch",
            "Next",
            "End",
        ],
        "Map" => &[
            "ItemProcessor",
            "Iterator",
            "ItemsPath",
            "ItemSelector",
            "Parameters",
            "MaxConcurrency",
            "MaxConcurrencyPath",
            "InputPath",
            "OutputPath",
            "ResultSelector",
            "ResultPath",
            "Retry",
            "Catch",
            "Next",
            "End",
        ],
        _ => return None,
    })
}

struct Ctx<'a> {
    /// The state's name, prefixed by its enclosing states for nested machines.
    label: &'a str,
    obj: &'a Map<String, Value>,
}

impl Ctx<'_> {
    fn err(&self, field: &str, msg: impl Into<String>) -> LoadError {
        LoadError::new(self.label, field, msg)
    }

    fn str(&self, field: &str) -> Result<Option<&str>, LoadError> {
        match self.obj.get(field) {
            None => Ok(None),
            Some(Value::String(s)) => Ok(Some(s)),
            Some(_) => Err(self.err(field, "must be a string")),
        }
    }

    fn reference_path(&self, field: &str) -> Result<Option<Path>, LoadError> {
        let Some(s) = self.str(field)? else {
            return Ok(None);
        };
        let p = Path::parse(s).map_err(|e| self.err(field, e))?;
        if !p.is_context() {
            Path::parse_reference(s).map_err(|e| self.err(field, e))?;
        }
        Ok(Some(p))
    }

    fn uint(&self, field: &str, min: u64) -> Result<Option<u64>, LoadError> {
        match self.obj.get(field) {
            None => Ok(None),
            Some(v) => v
                .as_u64()
                .filter(|n| *n >= min)
                .map(Some)
                .ok_or_else(|| self.err(field, format!("must be an integer >= {min}"))),
        }
    }

    fn path_sel(&self, field: &str) -> Result<PathSel, LoadError> {
        match self.obj.get(field) {
            None => Ok(PathSel::Whole),
            Some(Value::Null) => Ok(PathSel::Null),
            Some(Value::String(s)) if s == "$" => Ok(PathSel::Whole),
            Some(Value::String(s)) => Ok(PathSel::Path(
                Path::parse(s).map_err(|e| self.err(field, e))?,
            )),
            Some(_) => Err(self.err(field, "must be a path string or null")),
        }
    }

    fn result_path(&self, field: &str, v: Option<&Value>) -> Result<ResultPath, LoadError> {
        match v {
            None => Ok(ResultPath::Whole),
            Some(Value::Null) => Ok(ResultPath::Discard),
            Some(Value::String(s)) => {
                let segs = Path::parse_reference(s).map_err(|e| self.err(field, e))?;
                Ok(if segs.is_empty() {
                    ResultPath::Whole
                } else {
                    ResultPath::At(segs, s.clone())
                })
            }
            Some(_) => Err(self.err(field, "must be a reference path string or null")),
        }
    }

    fn template(&self, field: &str) -> Result<Option<Template>, LoadError> {
        self.obj
            .get(field)
            .map(|v| compile_template(v).map_err(|e| self.err(field, e)))
            .transpose()
    }

    fn num_or_path(&self, field: &str, min: u64) -> Result<Option<Num>, LoadError> {
        let path_field = format!("{field}Path");
        match (self.uint(field, min)?, self.reference_path(&path_field)?) {
            (Some(_), Some(_)) => Err(self.err(
                &path_field,
                format!("'{field}' and '{path_field}' are mutually exclusive"),
            )),
            (Some(n), None) => Ok(Some(Num::Fixed(n))),
            (None, Some(p)) => Ok(Some(Num::Path(p))),
            (None, None) => Ok(None),
        }
    }

    fn source(&self, field: &str) -> Result<Option<Source>, LoadError> {
        let path_field = format!("{field}Path");
        match (self.str(field)?, self.str(&path_field)?) {
            (Some(_), Some(_)) => Err(self.err(
                &path_field,
                format!("'{field}' and '{path_field}' are mutually exclusive"),
            )),
            (Some(s), None) => Ok(Some(Source::Literal(s.to_owned()))),
            (None, Some(s)) if s.starts_with("States.") => Ok(Some(Source::Intrinsic(
                intrinsics::parse(s).map_err(|e| self.err(&path_field, e))?,
            ))),
            (None, Some(s)) => Ok(Some(Source::Path(
                Path::parse(s).map_err(|e| self.err(&path_field, e))?,
            ))),
            (None, None) => Ok(None),
        }
    }
}

fn compile_template(v: &Value) -> Result<Template, String> {
    fn has_dynamic(v: &Value) -> bool {
        match v {
            Value::Object(m) => m.iter().any(|(k, v)| k.ends_with(".$") || has_dynamic(v)),
            Value::Array(a) => a.iter().any(has_dynamic),
            _ => false,
        }
    }
    if !has_dynamic(v) {
        return Ok(Template::Value(v.clone()));
    }
    match v {
        Value::Object(m) => {
            let mut fields = Vec::with_capacity(m.len());
            for (k, v) in m {
                if let Some(name) = k.strip_suffix(".$") {
                    let s = v.as_str().ok_or_else(|| {
                        format!("the value of '{k}' must be a path or an intrinsic function string")
                    })?;
                    let t = if s.starts_with("States.") {
                        Template::Intrinsic(intrinsics::parse(s)?)
                    } else {
                        Template::Path(Path::parse(s).map_err(|e| format!("'{k}': {e}"))?)
                    };
                    fields.push((name.to_owned(), t));
                } else {
                    fields.push((k.clone(), compile_template(v)?));
                }
            }
            Ok(Template::Object(fields))
        }
        Value::Array(a) => Ok(Template::Array(
            a.iter().map(compile_template).collect::<Result<_, _>>()?,
        )),
        other => Ok(Template::Value(other.clone())),
    }
}

fn error_list(
    c: &Ctx,
    field: &str,
    v: &Map<String, Value>,
    last: bool,
) -> Result<Vec<String>, LoadError> {
    let list = v
        .get("ErrorEquals")
        .and_then(Value::as_array)
        .filter(|a| !a.is_empty())
        .ok_or_else(|| {
            c.err(
                field,
                "'ErrorEquals' must be a non-empty array of error names",
            )
        })?;
    let errors = list
        .iter()
        .map(|e| {
            e.as_str()
                .map(str::to_owned)
                .ok_or_else(|| c.err(field, "'ErrorEquals' entries must be strings"))
        })
        .collect::<Result<Vec<_>, _>>()?;
    if errors.iter().any(|e| e == names::ALL) && (errors.len() > 1 || !last) {
        return Err(c.err(
            field,
            "'States.ALL' must appear alone and in the last entry",
        ));
    }
    Ok(errors)
}

fn retriers(c: &Ctx) -> Result<Vec<Retrier>, LoadError> {
    let Some(v) = c.obj.get("Retry") else {
        return Ok(vec![]);
    };
    let list = v
        .as_array()
        .ok_or_else(|| c.err("Retry", "must be an array"))?;
    let mut out = Vec::new();
    for (i, r) in list.iter().enumerate() {
        let m = r
            .as_object()
            .ok_or_else(|| c.err("Retry", "entries must be objects"))?;
        let rc = Ctx {
            label: c.label,
            obj: m,
        };
        for k in m.keys() {
            if ![
                "ErrorEquals",
                "IntervalSeconds",
                "MaxAttempts",
                "BackoffRate",
                "MaxDelaySeconds",
                "JitterStrategy",
                "Comment",
            ]
            .contains(&k.as_str())
            {
                return Err(c.err("Retry", format!("unknown retrier field '{k}'")));
            }
        }
        let errors = error_list(c, "Retry", m, i + 1 == list.len())?;
        let interval = rc
            .uint("IntervalSeconds", 1)
            .map_err(|e| c.err("Retry", e.message))?
            .unwrap_or(1);
        let max_attempts = rc
            .uint("MaxAttempts", 0)
            .map_err(|e| c.err("Retry", e.message))?
            .unwrap_or(3);
        let backoff = match m.get("BackoffRate") {
            None => 2.0,
            Some(v) => v
                .as_f64()
                .filter(|f| *f >= 1.0)
                .ok_or_else(|| c.err("Retry", "'BackoffRate' must be a number >= 1.0"))?,
        };
        let max_delay = rc
            .uint("MaxDelaySeconds", 1)
            .map_err(|e| c.err("Retry", e.message))?;
        let jitter_full = match rc
            .str("JitterStrategy")
            .map_err(|e| c.err("Retry", e.message))?
        {
            None | Some("NONE") => false,
            Some("FULL") => true,
            Some(other) => {
                return Err(c.err(
                    "Retry",
                    format!("'JitterStrategy' must be FULL or NONE, not '{other}'"),
                ))
            }
        };
        out.push(Retrier {
            errors,
            interval_seconds: interval as f64,
            max_attempts: u32::try_from(max_attempts).unwrap_or(u32::MAX),
            backoff_rate: backoff,
            max_delay_seconds: max_delay.map(|d| d as f64),
            jitter_full,
        });
    }
    Ok(out)
}

fn catchers(c: &Ctx) -> Result<Vec<Catcher>, LoadError> {
    let Some(v) = c.obj.get("Catch") else {
        return Ok(vec![]);
    };
    let list = v
        .as_array()
        .ok_or_else(|| c.err("Catch", "must be an array"))?;
    let mut out = Vec::new();
    for (i, r) in list.iter().enumerate() {
        let m = r
            .as_object()
            .ok_or_else(|| c.err("Catch", "entries must be objects"))?;
        for k in m.keys() {
            if !["ErrorEquals", "Next", "ResultPath", "Comment"].contains(&k.as_str()) {
                let why = unsupported(k).unwrap_or("unknown catcher field");
                return Err(c.err("Catch", format!("'{k}': {why}")));
            }
        }
        let errors = error_list(c, "Catch", m, i + 1 == list.len())?;
        let next = m
            .get("Next")
            .and_then(Value::as_str)
            .ok_or_else(|| c.err("Catch", "each catcher needs 'Next'"))?
            .to_owned();
        let result_path = c.result_path("Catch", m.get("ResultPath"))?;
        out.push(Catcher {
            errors,
            result_path,
            next,
        });
    }
    Ok(out)
}

fn classify_resource(c: &Ctx, resource: &str) -> Result<(Integration, bool), LoadError> {
    if let Some(rest) = resource.strip_prefix("arn:aws:states:::") {
        let (action, wait) = match rest.strip_suffix(".waitForTaskToken") {
            Some(a) => (a, true),
            None => (rest, false),
        };
        if action.contains(".sync") {
            return Err(c.err(
                "Resource",
                format!(
                    "'{resource}': the .sync integration pattern is not supported by this engine"
                ),
            ));
        }
        if action == "lambda:invoke" {
            return Ok((Integration::LambdaInvoke, wait));
        }
        let valid = action.split_once(':').is_some_and(|(svc, act)| {
            !svc.is_empty() && !act.is_empty() && !act.contains([':', '.'])
        });
        if !valid {
            return Err(c.err("Resource", format!("'{resource}' is not a known resource")));
        }
        return Ok((Integration::Service, wait));
    }
    let parts: Vec<&str> = resource.split(':').collect();
    if parts.len() >= 7
        && parts[0] == "arn"
        && parts[2] == "lambda"
        && parts[5] == "function"
        && !parts[6].is_empty()
    {
        return Ok((Integration::LambdaArn, false));
    }
    if parts.len() >= 7 && parts[0] == "arn" && parts[2] == "states" && parts[5] == "activity" {
        return Err(c.err(
            "Resource",
            format!("'{resource}': activities are not supported by this engine"),
        ));
    }
    Err(c.err(
        "Resource",
        format!("'{resource}' is not a supported resource (a Lambda function ARN or arn:aws:states:::service:action)"),
    ))
}

fn check_query_language(label: &str, obj: &Map<String, Value>) -> Result<(), LoadError> {
    match obj.get("QueryLanguage") {
        None => Ok(()),
        Some(Value::String(s)) if s == "JSONPath" => Ok(()),
        Some(Value::String(s)) if s == "JSONata" => Err(LoadError::new(
            label,
            "QueryLanguage",
            "JSONata is not supported by this engine (use JSONPath)",
        )),
        Some(other) => Err(LoadError::new(
            label,
            "QueryLanguage",
            format!("must be JSONPath or JSONata, not {other}"),
        )),
    }
}

fn load_state(label: &str, name: &str, v: &Value) -> Result<State, LoadError> {
    let obj = v
        .as_object()
        .ok_or_else(|| LoadError::new(label, "", "a state must be an object"))?;
    let c = Ctx { label, obj };
    let ty = c.str("Type")?.ok_or_else(|| c.err("Type", "missing"))?;
    let allowed =
        allowed_fields(ty).ok_or_else(|| c.err("Type", format!("unknown state type '{ty}'")))?;
    for k in obj.keys() {
        if COMMON.contains(&k.as_str()) || allowed.contains(&k.as_str()) {
            continue;
        }
        return Err(match unsupported(k) {
            Some(why) => c.err(k, why),
            None => c.err(k, format!("is not a field of a {ty} state")),
        });
    }
    check_query_language(label, obj)?;

    // Transitions.
    let end = match obj.get("End") {
        None => false,
        Some(Value::Bool(b)) => *b,
        Some(_) => return Err(c.err("End", "must be a boolean")),
    };
    let next = c.str("Next")?.map(str::to_owned);
    let has_transition = !matches!(ty, "Choice" | "Succeed" | "Fail");
    if has_transition {
        match (&next, end) {
            (Some(_), true) => {
                return Err(c.err("End", "a state cannot have both 'Next' and 'End'"))
            }
            (None, false) => {
                return Err(c.err("Next", "a non-terminal state needs 'Next' (or 'End': true)"))
            }
            _ => {}
        }
    }

    let kind = match ty {
        "Pass" => Kind::Pass {
            result: obj.get("Result").cloned(),
        },
        "Task" => {
            let resource = c
                .str("Resource")?
                .ok_or_else(|| c.err("Resource", "missing"))?;
            let (integration, wait_for_token) = classify_resource(&c, resource)?;
            if integration == Integration::LambdaInvoke {
                let has_fn = obj
                    .get("Parameters")
                    .and_then(Value::as_object)
                    .is_some_and(|p| {
                        p.contains_key("FunctionName") || p.contains_key("FunctionName.$")
                    });
                if !has_fn {
                    return Err(c.err(
                        "Parameters",
                        "lambda:invoke needs a 'FunctionName' parameter",
                    ));
                }
            }
            let timeout = c.num_or_path("TimeoutSeconds", 1)?;
            let heartbeat = c.num_or_path("HeartbeatSeconds", 1)?;
            if let (Some(Num::Fixed(t)), Some(Num::Fixed(h))) = (&timeout, &heartbeat) {
                if h >= t {
                    return Err(c.err("HeartbeatSeconds", "must be smaller than TimeoutSeconds"));
                }
            }
            Kind::Task(TaskSpec {
                resource: resource.to_owned(),
                integration,
                wait_for_token,
                timeout,
                heartbeat,
            })
        }
        "Choice" => {
            let list = obj
                .get("Choices")
                .and_then(Value::as_array)
                .filter(|a| !a.is_empty())
                .ok_or_else(|| c.err("Choices", "must be a non-empty array"))?;
            let mut choices = Vec::new();
            for r in list {
                let rule = choice::parse_rule(label, r, true)?;
                let next = r
                    .get("Next")
                    .and_then(Value::as_str)
                    .ok_or_else(|| c.err("Choices", "'Next' must be a string"))?;
                choices.push((rule, next.to_owned()));
            }
            Kind::Choice {
                choices,
                default: c.str("Default")?.map(str::to_owned),
            }
        }
        "Wait" => {
            let mut found = Vec::new();
            if let Some(n) = c.uint("Seconds", 0)? {
                found.push(WaitFor::Seconds(n));
            }
            if let Some(p) = c.reference_path("SecondsPath")? {
                found.push(WaitFor::SecondsPath(p));
            }
            if let Some(s) = c.str("Timestamp")? {
                let t = choice::parse_timestamp(s)
                    .ok_or_else(|| c.err("Timestamp", "must be an RFC 3339 timestamp"))?;
                found.push(WaitFor::Timestamp(t));
            }
            if let Some(p) = c.reference_path("TimestampPath")? {
                found.push(WaitFor::TimestampPath(p));
            }
            if found.len() != 1 {
                return Err(c.err("Seconds", "a Wait state needs exactly one of Seconds, SecondsPath, Timestamp, TimestampPath"));
            }
            Kind::Wait(found.remove(0))
        }
        "Succeed" => Kind::Succeed,
        "Fail" => Kind::Fail {
            error: c.source("Error")?,
            cause: c.source("Cause")?,
        },
        "Parallel" => {
            let list = obj
                .get("Branches")
                .and_then(Value::as_array)
                .filter(|a| !a.is_empty())
                .ok_or_else(|| c.err("Branches", "must be a non-empty array"))?;
            let branches = list
                .iter()
                .enumerate()
                .map(|(i, b)| load_machine(&format!("{label}/Branches[{i}]"), b, false))
                .collect::<Result<Vec<_>, _>>()?;
            Kind::Parallel { branches }
        }
        "Map" => {
            let (field, proc_v) = match (obj.get("ItemProcessor"), obj.get("Iterator")) {
                (Some(_), Some(_)) => {
                    return Err(c.err(
                        "Iterator",
                        "'ItemProcessor' and 'Iterator' are mutually exclusive",
                    ))
                }
                (Some(p), None) => ("ItemProcessor", p),
                (None, Some(p)) => ("Iterator", p),
                (None, None) => return Err(c.err("ItemProcessor", "missing")),
            };
            if let Some(cfg) = proc_v.get("ProcessorConfig") {
                let cfg = cfg
                    .as_object()
                    .ok_or_else(|| c.err("ItemProcessor", "'ProcessorConfig' must be an object"))?;
                for (k, v) in cfg {
                    match (k.as_str(), v.as_str()) {
                        ("Mode", Some("INLINE")) => {}
                        ("Mode", _) => return Err(c.err("ItemProcessor", format!("ProcessorConfig.Mode {v}: only INLINE is supported by this engine"))),
                        ("ExecutionType", _) => return Err(c.err("ItemProcessor", "ProcessorConfig.ExecutionType is only valid in DISTRIBUTED mode, which this engine does not support")),
                        _ => return Err(c.err("ItemProcessor", format!("unknown ProcessorConfig field '{k}'"))),
                    }
                }
            }
            let processor = load_machine(&format!("{label}/{field}"), proc_v, true)?;
            let item_selector = match (obj.get("ItemSelector"), obj.get("Parameters")) {
                (Some(_), Some(_)) => {
                    return Err(c.err(
                        "Parameters",
                        "'ItemSelector' and 'Parameters' are mutually exclusive",
                    ))
                }
                (Some(_), None) => c.template("ItemSelector")?,
                (None, Some(_)) => c.template("Parameters")?,
                (None, None) => None,
            };
            let max_concurrency = c.num_or_path("MaxConcurrency", 0)?.unwrap_or(Num::Fixed(0));
            Kind::Map(Box::new(MapSpec {
                items_path: c.reference_path("ItemsPath")?,
                item_selector,
                processor,
                max_concurrency,
            }))
        }
        _ => return Err(c.err("Type", format!("unknown state type '{ty}'"))),
    };

    let parameters = if matches!(kind, Kind::Map(_)) {
        None
    } else {
        c.template("Parameters")?
    };
    Ok(State {
        name: name.to_owned(),
        input_path: c.path_sel("InputPath")?,
        output_path: c.path_sel("OutputPath")?,
        parameters,
        result_selector: c.template("ResultSelector")?,
        result_path: c.result_path("ResultPath", obj.get("ResultPath"))?,
        next,
        retry: retriers(&c)?,
        catch: catchers(&c)?,
        kind,
    })
}

/// Loads a machine (top level, or a Map processor / Parallel branch when `prefix` is set).
pub(crate) fn load_machine(
    prefix: &str,
    v: &Value,
    is_processor: bool,
) -> Result<Machine, LoadError> {
    let obj = v
        .as_object()
        .ok_or_else(|| LoadError::new(prefix, "", "a state machine must be a JSON object"))?;
    for k in obj.keys() {
        let ok = match k.as_str() {
            "StartAt" | "States" | "Comment" | "QueryLanguage" => true,
            "ProcessorConfig" => is_processor,
            "TimeoutSeconds" | "Version" => prefix.is_empty(),
            _ => false,
        };
        if !ok {
            return Err(LoadError::new(
                prefix,
                k,
                "is not a field of a state machine definition here",
            ));
        }
    }
    check_query_language(prefix, obj)?;
    let start_at = obj
        .get("StartAt")
        .and_then(Value::as_str)
        .ok_or_else(|| LoadError::new(prefix, "StartAt", "missing or not a string"))?;
    let states_v = obj
        .get("States")
        .and_then(Value::as_object)
        .filter(|m| !m.is_empty())
        .ok_or_else(|| LoadError::new(prefix, "States", "missing, empty or not an object"))?;
    let timeout_seconds = match obj.get("TimeoutSeconds") {
        None => None,
        Some(v) => Some(v.as_u64().filter(|n| *n > 0).ok_or_else(|| {
            LoadError::new(prefix, "TimeoutSeconds", "must be a positive integer")
        })?),
    };
    let mut states = HashMap::with_capacity(states_v.len());
    for (name, sv) in states_v {
        if name.is_empty() || name.chars().count() > 80 {
            return Err(LoadError::new(
                prefix,
                "States",
                format!("state name '{name}' must be 1 to 80 characters"),
            ));
        }
        let label = if prefix.is_empty() {
            name.clone()
        } else {
            format!("{prefix}/{name}")
        };
        states.insert(name.clone(), load_state(&label, name, sv)?);
    }
    let m = Machine {
        start_at: start_at.to_owned(),
        states,
        timeout_seconds,
    };
    validate(prefix, &m)?;
    Ok(m)
}

fn targets(s: &State) -> Vec<(&'static str, &str)> {
    let mut t = Vec::new();
    if let Some(n) = &s.next {
        t.push(("Next", n.as_str()));
    }
    if let Kind::Choice { choices, default } = &s.kind {
        t.extend(choices.iter().map(|(_, n)| ("Choices", n.as_str())));
        if let Some(d) = default {
            t.push(("Default", d.as_str()));
        }
    }
    t.extend(s.catch.iter().map(|c| ("Catch", c.next.as_str())));
    t
}

fn validate(prefix: &str, m: &Machine) -> Result<(), LoadError> {
    let label = |name: &str| {
        if prefix.is_empty() {
            name.to_owned()
        } else {
            format!("{prefix}/{name}")
        }
    };
    if !m.states.contains_key(&m.start_at) {
        return Err(LoadError::new(
            prefix,
            "StartAt",
            format!("'{}' is not a state here", m.start_at),
        ));
    }
    for s in m.states.values() {
        for (field, target) in targets(s) {
            if !m.states.contains_key(target) {
                return Err(LoadError::new(
                    &label(&s.name),
                    field,
                    format!("'{target}' is not a state here"),
                ));
            }
        }
    }
    // Every state must be reachable from StartAt.
    let mut seen: HashSet<&str> = HashSet::new();
    let mut todo = vec![m.start_at.as_str()];
    while let Some(n) = todo.pop() {
        if seen.insert(n) {
            if let Some(s) = m.states.get(n) {
                todo.extend(targets(s).into_iter().map(|(_, t)| t));
            }
        }
    }
    let mut unreachable: Vec<&String> = m
        .states
        .keys()
        .filter(|k| !seen.contains(k.as_str()))
        .collect();
    unreachable.sort();
    if let Some(name) = unreachable.first() {
        return Err(LoadError::new(
            &label(name),
            "",
            "the state is not reachable from StartAt",
        ));
    }
    Ok(())
}

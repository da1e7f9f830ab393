//! Loading a definition: parse, check every field, refuse what is not implemented.
//!
//! This file holds the loaded model and the checks every state shares (its fields, its
//! transition); each state type's own fields are read in its own file.

mod choice;
mod fail;
mod fields;
mod machine;
mod map;
mod parallel;
mod pass;
mod retry;
mod succeed;
mod task;
mod template;
mod wait;

use std::collections::HashMap;

use serde_json::Value;
use time::OffsetDateTime;

use crate::choice::Rule;
use crate::error::LoadError;
use crate::intrinsics::Call;
use crate::paths::{Path, Seg};

use fields::{check_query_language, unsupported, Ctx};

pub(crate) use machine::load_machine;

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

/// Fields every state may have.
const COMMON: &[&str] = &["Type", "Comment", "QueryLanguage"];

/// The fields a state type allows besides [`COMMON`].
fn allowed_fields(kind: &str) -> Option<&'static [&'static str]> {
    Some(match kind {
        "Pass" => pass::FIELDS,
        "Task" => task::FIELDS,
        "Choice" => choice::FIELDS,
        "Wait" => wait::FIELDS,
        "Succeed" => succeed::FIELDS,
        "Fail" => fail::FIELDS,
        "Parallel" => parallel::FIELDS,
        "Map" => map::FIELDS,
        _ => return None,
    })
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
        "Pass" => pass::load(&c)?,
        "Task" => task::load(&c)?,
        "Choice" => choice::load(&c)?,
        "Wait" => wait::load(&c)?,
        "Succeed" => succeed::load(&c)?,
        "Fail" => fail::load(&c)?,
        "Parallel" => parallel::load(&c)?,
        "Map" => map::load(&c)?,
        _ => return Err(c.err("Type", format!("unknown state type '{ty}'"))),
    };

    // Map reads its Parameters as the ItemSelector.
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
        retry: retry::retriers(&c)?,
        catch: retry::catchers(&c)?,
        kind,
    })
}

//! `rm-states`: a local Amazon States Language engine (JSONPath query language) that runs a
//! Step Functions definition unchanged, in virtual time.
//!
//! # Why our own engine
//!
//! The `asl` crate (0.2.0, last released June 2024) parses and runs ASL, but synchronously
//! (an `Iterator` of steps): no async tasks, no task tokens (`.waitForTaskToken`), no
//! virtual clock for Wait/Retry/timeouts, no concurrent Map/Parallel with sibling abort and
//! no execution history. Those are the point of this crate, so it is written here, on
//! `serde_json_path` (RFC 9535) for general JSONPath with Step Functions' rules on top.
//!
//! # Virtual time
//!
//! Every wait (Wait states, retry intervals, task timeouts, heartbeats) is a `tokio::time`
//! timer, and every timestamp is `start_time + (tokio::time::Instant::now() - t0)`. Run an
//! execution in a current-thread runtime built with `.start_paused(true)` and a two-hour
//! execution finishes as soon as the CPU work is done:
//!
//! ```no_run
//! # use rm_states::*;
//! # use std::collections::HashMap;
//! # struct Lambdas;
//! # #[async_trait::async_trait(?Send)]
//! # impl TaskHandler for Lambdas {
//! #     async fn invoke(&self, _f: &str, p: serde_json::Value) -> Result<serde_json::Value, TaskFailure> { Ok(p) }
//! # }
//! let rt = tokio::runtime::Builder::new_current_thread().enable_time().start_paused(true).build().unwrap();
//! let machine = StateMachine::from_json(r#"{"StartAt":"W","States":{"W":{"Type":"Wait","Seconds":7200,"End":true}}}"#, &HashMap::new()).unwrap();
//! let config = ExecutionConfig::new("run-1", "release", time::OffsetDateTime::now_utc(), serde_json::json!({}));
//! let (execution, _tokens) = machine.start(config);
//! let outcome = rt.block_on(execution.run(&Lambdas));
//! assert_eq!(outcome.status, ExecutionStatus::Succeeded);
//! ```
//!
//! # Public API
//!
//! * [`StateMachine::from_json`]`(definition, substitutions) -> Result<StateMachine, LoadError>`:
//!   replaces `${Name}` DefinitionSubstitutions, parses and validates. Anything the engine does
//!   not implement is refused here with the state and the field.
//! * [`StateMachine::start`]`(&self, ExecutionConfig) -> (Execution, TaskTokens)`.
//! * [`Execution::run`]`(self, &dyn TaskHandler) -> ExecutionOutcome` (async).
//! * [`TaskHandler::invoke`]`(&self, function_name, payload) -> Result<Value, TaskFailure>`:
//!   called for `arn:aws:states:::lambda:invoke` (function name = `FunctionName` as given; the
//!   engine wraps the result in Lambda's `{"ExecutedVersion", "Payload", ...}` wrapper), for
//!   its `.waitForTaskToken` form (the result is ignored; the task waits for
//!   [`TaskTokens::send_success`] / [`TaskTokens::send_failure`]), for a Lambda function ARN
//!   as Resource (no wrapper), and for any other `arn:aws:states:::service:action`
//!   integration (function name = the Resource ARN, payload = the resolved Parameters).
//! * [`TaskTokens`]: `send_success`, `send_failure`, `send_heartbeat` with AWS semantics
//!   (unknown token: [`TokenError::InvalidToken`]; task no longer waiting:
//!   [`TokenError::TaskTimedOut`]).
//! * [`ExecutionConfig::progress`]: an optional channel that receives every
//!   [`HistoryEvent`] as it is recorded, for live progress.
//! * Stopping an execution from outside, as StopExecution does:
//!   [`ExecutionConfig::with_abort_after`]`(Duration)` aborts it once that much (tokio, so
//!   simulated) time has passed since it started; [`Execution::stop_handle`] gives a
//!   [`StopHandle`] whose [`StopHandle::stop`]`(error, cause)` aborts it at once, from any
//!   task or thread. Either way the execution ends [`ExecutionStatus::Aborted`] with an
//!   `ExecutionAborted` event (see "Semantics worth knowing").
//!
//! * [`ExecutionConfig::history_data`] (`without_history_data()`): keep inputs, outputs and
//!   parameters out of the history for large runs.
//!
//! # Semantics worth knowing
//!
//! * A definite path (`$.a.b[0].c`, `$['x']`) yields the value; an indefinite one (`[*]`,
//!   filters, slices, `..`) yields the list of matches (`[]` when nothing matches). A
//!   definite path that matches nothing, an intrinsic function with bad arguments, a
//!   ResultPath that cannot be applied, and a Choice `Variable` that does not resolve
//!   (except for `IsPresent`) are `States.Runtime`, which no Retry or Catch handles.
//! * A failing Map iteration or Parallel branch aborts its siblings (their futures are
//!   dropped, their task tokens closed) and the state fails with the iteration's own error
//!   name and cause (`States.BranchFailed` is not used).
//! * `States.TaskFailed` in ErrorEquals matches every error but `States.Timeout`;
//!   `States.Timeout` also matches `States.HeartbeatTimeout`. A task failure with an empty
//!   error name is reported as `States.TaskFailed`.
//! * `States.MathRandom(start, end)` includes both bounds (moto's parity-tested executor
//!   agrees). Retry with `JitterStrategy: FULL` waits a uniform random fraction of the
//!   backoff delay.
//! * A task's TimeoutSecondsPath / HeartbeatSecondsPath / Map's MaxConcurrencyPath are read
//!   from the state's input after InputPath.
//! * A `.waitForTaskToken` task records `TaskSubmitted` (the invocation's answer) after
//!   `TaskScheduled` and `TaskStarted`, then `TaskSucceeded`, `TaskFailed` or `TaskTimedOut`.
//! * A history that reaches 25,000 events (Step Functions' hard quota) fails the execution
//!   with `States.Runtime`, which no Retry or Catch handles; `ExecutionFailed` is the
//!   25,000th event.
//! * An aborted execution (StopExecution) records one `ExecutionAborted` event, whose details
//!   carry `error` and `cause` only when the stop gave them (`null` details when it gave
//!   neither, as a StopExecution without them), and ends with status `ABORTED`, no output, and
//!   the outcome's `error`/`cause` as the stop gave them. Its running states record nothing
//!   more: their in-flight handler futures are dropped, no further task starts, and their
//!   task tokens are closed, so a later SendTask* answers [`TokenError::TaskTimedOut`] as for
//!   any ended execution. Tasks a handler spawned on its own are not the engine's to stop.
//! * An execution runs at most one year (Step Functions' maximum execution time for Standard
//!   workflows), whatever its TimeoutSeconds: then it times out with `States.Timeout`. A Wait
//!   state's literal `Seconds` is at most 99999999.
//!
//! # Refused at load
//!
//! QueryLanguage JSONata, variables (`Assign`), `Arguments`/`Output`, Task `Credentials`,
//! activities and `.sync` integrations, distributed Map (`ItemReader`, `ResultWriter`,
//! `ItemBatcher`, `Label`, `ProcessorConfig.Mode` DISTRIBUTED), `ToleratedFailure*`, unknown
//! fields, unknown Resources, and invalid definitions (missing StartAt/Next targets,
//! unreachable states, Next and End together, `States.ALL` not alone and last, ...).

/// Builds a JSON object by moving values in (`json!` would serialize them, a deep copy).
macro_rules! obj {
    ($($k:literal : $v:expr),* $(,)?) => {{
        let mut m = serde_json::Map::new();
        $( m.insert(($k).to_owned(), serde_json::Value::from($v)); )*
        serde_json::Value::Object(m)
    }};
}

mod choice;
mod definition;
mod error;
mod executor;
mod history;
mod intrinsics;
mod paths;
mod tokens;

use std::cell::{Cell, RefCell};
use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use serde::Serialize;
use serde_json::{json, Value};
use time::OffsetDateTime;
use tokio::sync::mpsc::UnboundedSender;
use tokio::sync::watch;

pub use error::{names as error_names, LoadError, StatesError};
pub use executor::MAX_HISTORY_EVENTS;
pub use history::HistoryEvent;
pub use tokens::{TaskTokens, TokenError};

use definition::Machine;
use executor::Run;

/// One year: the longest a Standard execution may run.
const MAX_EXECUTION_SECONDS: u64 = 365 * 86_400;

/// A loaded, validated state machine definition.
#[derive(Debug, Clone)]
pub struct StateMachine {
    machine: Arc<Machine>,
}

/// Replaces `${Name}` with its substitution, as CloudFormation's DefinitionSubstitutions do.
/// A `${...}` with no substitution is left as it is.
fn substitute(definition: &str, substitutions: &HashMap<String, String>) -> String {
    let mut out = String::with_capacity(definition.len());
    let mut rest = definition;
    while let Some(start) = rest.find("${") {
        out.push_str(&rest[..start]);
        let after = &rest[start + 2..];
        match after.find('}') {
            Some(end) if substitutions.contains_key(&after[..end]) => {
                out.push_str(&substitutions[&after[..end]]);
                rest = &after[end + 1..];
            }
            _ => {
                out.push_str("${");
                rest = after;
            }
        }
    }
    out.push_str(rest);
    out
}

impl StateMachine {
    /// Loads a definition after replacing `${Name}` DefinitionSubstitutions.
    pub fn from_json(
        definition: &str,
        substitutions: &HashMap<String, String>,
    ) -> Result<StateMachine, LoadError> {
        let text = substitute(definition, substitutions);
        let value: Value = serde_json::from_str(&text).map_err(|e| {
            LoadError::new("", "", format!("the definition is not valid JSON: {e}"))
        })?;
        let machine = definition::load_machine("", &value, false)?;
        Ok(StateMachine {
            machine: Arc::new(machine),
        })
    }

    /// Prepares an execution. The [`TaskTokens`] handle completes its `.waitForTaskToken` tasks.
    pub fn start(&self, config: ExecutionConfig) -> (Execution, TaskTokens) {
        let tokens = TaskTokens::new(&config.name);
        let (stop_tx, stop_rx) = watch::channel(None);
        (
            Execution {
                machine: Arc::clone(&self.machine),
                config,
                tokens: tokens.clone(),
                stop: StopHandle {
                    tx: Arc::new(stop_tx),
                },
                stop_rx,
            },
            tokens,
        )
    }
}

/// A task's failure: `error` is the Lambda `errorType` (an empty error becomes
/// `States.TaskFailed`), `cause` its message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TaskFailure {
    pub error: String,
    pub cause: String,
}

impl TaskFailure {
    pub fn new(error: impl Into<String>, cause: impl Into<String>) -> Self {
        TaskFailure {
            error: error.into(),
            cause: cause.into(),
        }
    }
}

/// What runs Task states.
#[async_trait::async_trait(?Send)]
pub trait TaskHandler {
    /// Called for `lambda:invoke` (`function_name` = the `FunctionName` parameter as given),
    /// for `.waitForTaskToken` (the payload carries the token wherever the definition put
    /// it), for a Lambda function ARN Resource, and for other service integrations
    /// (`function_name` = the Resource ARN). `Ok(value)` is the function's result.
    async fn invoke(&self, function_name: &str, payload: Value) -> Result<Value, TaskFailure>;
}

/// How to start an execution.
#[derive(Debug, Clone)]
pub struct ExecutionConfig {
    /// The execution's name (`$$.Execution.Name`).
    pub name: String,
    /// The state machine's name (`$$.StateMachine.Name`, part of the ARNs).
    pub state_machine_name: String,
    /// The simulated wall-clock time at which the execution starts.
    pub start_time: OffsetDateTime,
    pub input: Value,
    /// Receives every history event as it is recorded.
    pub progress: Option<UnboundedSender<HistoryEvent>>,
    /// Whether history events carry the states' inputs, outputs and task parameters
    /// (default `true`). `false` keeps the event sequence and names but sets those details to
    /// `null`, which saves copying JSON on every state for large runs.
    pub history_data: bool,
    /// Aborts the execution (as StopExecution without error or cause) once this much tokio
    /// time has passed since [`Execution::run`] started it. `None`: never.
    pub abort_after: Option<Duration>,
}

impl ExecutionConfig {
    pub fn new(
        name: impl Into<String>,
        state_machine_name: impl Into<String>,
        start_time: OffsetDateTime,
        input: Value,
    ) -> Self {
        ExecutionConfig {
            name: name.into(),
            state_machine_name: state_machine_name.into(),
            start_time,
            input,
            progress: None,
            history_data: true,
            abort_after: None,
        }
    }

    /// Aborts the execution once `after` (tokio, so simulated) time has passed since it
    /// started, as a StopExecution without error or cause would at that moment.
    pub fn with_abort_after(mut self, after: Duration) -> Self {
        self.abort_after = Some(after);
        self
    }

    /// Keeps inputs, outputs and parameters out of the history (see [`ExecutionConfig::history_data`]).
    pub fn without_history_data(mut self) -> Self {
        self.history_data = false;
        self
    }

    /// Streams history events to `tx` while the execution runs.
    pub fn with_progress(mut self, tx: UnboundedSender<HistoryEvent>) -> Self {
        self.progress = Some(tx);
        self
    }
}

/// An execution ready to run.
#[derive(Debug)]
pub struct Execution {
    machine: Arc<Machine>,
    config: ExecutionConfig,
    tokens: TaskTokens,
    stop: StopHandle,
    stop_rx: watch::Receiver<Option<StopRequest>>,
}

/// What a StopExecution asked for: both optional, as in the API.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
struct StopRequest {
    error: Option<String>,
    cause: Option<String>,
}

/// Stops one execution from outside, as StopExecution does. `Send + Sync + Clone`.
#[derive(Debug, Clone)]
pub struct StopHandle {
    tx: Arc<watch::Sender<Option<StopRequest>>>,
}

impl StopHandle {
    /// Aborts the execution at once (or as soon as it starts running) with the given error
    /// and cause, both optional as in StopExecution. The first stop wins; a stop after the
    /// execution ended changes nothing.
    pub fn stop(&self, error: Option<&str>, cause: Option<&str>) {
        self.tx.send_if_modified(|current| {
            if current.is_some() {
                return false;
            }
            *current = Some(StopRequest {
                error: error.map(str::to_owned),
                cause: cause.map(str::to_owned),
            });
            true
        });
    }

    /// Whether a stop was requested.
    pub fn is_stopped(&self) -> bool {
        self.tx.borrow().is_some()
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum ExecutionStatus {
    Succeeded,
    Failed,
    TimedOut,
    /// Stopped from outside (StopExecution): [`ExecutionConfig::with_abort_after`] or
    /// [`StopHandle::stop`].
    Aborted,
}

/// How [`Execution::run`]'s race between the machine and a stop ended.
enum End {
    /// The machine ended (`None`: it timed out).
    Ran(Option<Result<Value, StatesError>>),
    Aborted(StopRequest),
}

/// How an execution ended, with its history.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ExecutionOutcome {
    pub status: ExecutionStatus,
    pub output: Option<Value>,
    pub error: Option<String>,
    pub cause: Option<String>,
    pub history: Vec<HistoryEvent>,
    /// States entered, as AWS bills state transitions.
    pub state_transitions: u64,
    #[serde(with = "time::serde::rfc3339")]
    pub started_at: OffsetDateTime,
    #[serde(with = "time::serde::rfc3339")]
    pub ended_at: OffsetDateTime,
}

impl Execution {
    /// The execution's ARN (`$$.Execution.Id`).
    pub fn id(&self) -> String {
        executor::execution_arn(&self.config.state_machine_name, &self.config.name)
    }

    /// A handle that stops this execution from outside (StopExecution).
    pub fn stop_handle(&self) -> StopHandle {
        self.stop.clone()
    }

    /// Runs the execution to its end, or until it is aborted
    /// ([`ExecutionConfig::with_abort_after`], [`StopHandle::stop`]). All waits are
    /// `tokio::time` timers.
    pub async fn run(self, handler: &dyn TaskHandler) -> ExecutionOutcome {
        let cfg = self.config;
        let mut stop_rx = self.stop_rx;
        let started = history::rfc3339_millis(cfg.start_time);
        let run = Run {
            handler,
            tokens: self.tokens,
            t0: tokio::time::Instant::now(),
            start_time: cfg.start_time,
            execution: obj! {
                "Id": executor::execution_arn(&cfg.state_machine_name, &cfg.name),
                "Input": cfg.input.clone(),
                "Name": cfg.name.as_str(),
                "RoleArn": format!("arn:aws:iam::123456789012:role/{}-role", cfg.state_machine_name),
                "StartTime": started,
                "RedriveCount": 0,
            },
            state_machine: json!({
                "Id": executor::state_machine_arn(&cfg.state_machine_name),
                "Name": cfg.state_machine_name,
            }),
            history: RefCell::new(Vec::new()),
            progress: cfg.progress,
            transitions: Cell::new(0),
            history_full: Cell::new(false),
            record_data: cfg.history_data,
        };
        let mut cursor = 0u64;
        run.record(
            &mut cursor,
            "ExecutionStarted",
            obj! { "input": run.data_of(&cfg.input), "roleArn": run.execution["RoleArn"].clone() },
        );
        let machine = &self.machine;
        let abort_at = cfg.abort_after.map(|d| run.t0 + d);
        let stopped_already = stop_rx.borrow().clone();
        let result = {
            let mut c = cursor;
            let fut = run.run_machine(machine, cfg.input, &mut c);
            // Step Functions ends a Standard execution after one year whatever its
            // TimeoutSeconds says (docs.aws.amazon.com/step-functions/latest/dg/service-quotas.html,
            // "Maximum execution time": it fails with States.Timeout).
            let limit = machine
                .timeout_seconds
                .map_or(MAX_EXECUTION_SECONDS, |t| t.min(MAX_EXECUTION_SECONDS));
            let timed = tokio::time::timeout(Duration::from_secs(limit), fut);
            let aborted = async {
                let by_time = async {
                    match abort_at {
                        Some(at) => tokio::time::sleep_until(at).await,
                        None => std::future::pending().await,
                    }
                };
                let by_call = async {
                    match stop_rx.wait_for(Option::is_some).await {
                        Ok(req) => req.clone().unwrap_or_default(),
                        // The handle lives in the execution: never closed while it runs.
                        Err(_) => std::future::pending().await,
                    }
                };
                tokio::select! {
                    biased;
                    req = by_call => req,
                    () = by_time => StopRequest::default(),
                }
            };
            // The execution's own end wins a tie with an abort at the same instant. Whichever
            // loses is dropped here: an aborted run's in-flight handler futures and task token
            // waits go with it (closing the tokens) before ExecutionAborted is recorded.
            let r = match stopped_already {
                // Stopped before it ran: no state is entered.
                Some(req) => End::Aborted(req),
                None => tokio::select! {
                    biased;
                    r = timed => End::Ran(r.ok()),
                    req = aborted => End::Aborted(req),
                },
            };
            cursor = run.history.borrow().len() as u64;
            r
        };
        let (status, output, error, cause) = match result {
            End::Aborted(req) => {
                let mut details = serde_json::Map::new();
                if let Some(e) = &req.error {
                    details.insert("error".into(), Value::from(e.as_str()));
                }
                if let Some(c) = &req.cause {
                    details.insert("cause".into(), Value::from(c.as_str()));
                }
                let details = if details.is_empty() {
                    Value::Null
                } else {
                    Value::Object(details)
                };
                run.record_closing(&mut cursor, "ExecutionAborted", details);
                (ExecutionStatus::Aborted, None, req.error, req.cause)
            }
            End::Ran(Some(Ok(output))) => {
                run.record_closing(
                    &mut cursor,
                    "ExecutionSucceeded",
                    obj! { "output": run.data_of(&output) },
                );
                (ExecutionStatus::Succeeded, Some(output), None, None)
            }
            End::Ran(Some(Err(e))) => {
                run.record_closing(
                    &mut cursor,
                    "ExecutionFailed",
                    obj! { "error": e.error.as_str(), "cause": e.cause.as_str() },
                );
                (ExecutionStatus::Failed, None, Some(e.error), Some(e.cause))
            }
            End::Ran(None) => {
                let cause = if machine
                    .timeout_seconds
                    .is_some_and(|t| t <= MAX_EXECUTION_SECONDS)
                {
                    "The execution ran longer than the state machine's TimeoutSeconds"
                } else {
                    "The execution ran longer than the one-year maximum execution time"
                };
                run.record_closing(
                    &mut cursor,
                    "ExecutionTimedOut",
                    json!({ "error": error::names::TIMEOUT, "cause": cause }),
                );
                (
                    ExecutionStatus::TimedOut,
                    None,
                    Some(error::names::TIMEOUT.to_owned()),
                    Some(cause.to_owned()),
                )
            }
        };
        let ended_at = run.now();
        ExecutionOutcome {
            status,
            output,
            error,
            cause,
            state_transitions: run.transitions.get(),
            history: run.history.into_inner(),
            started_at: cfg.start_time,
            ended_at,
        }
    }
}

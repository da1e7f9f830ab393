//! The local run: `statemachine/release.asl.json` in the `rm-states` engine, its Task states
//! dispatched to the same core use cases the Lambdas call, against the SQLite store, the
//! simulated pipelines and the virtual clock, in a paused tokio runtime (virtual time).
//!
//! Alongside the execution, as on AWS: the simulated pipelines' state-change events are fed to
//! record-state (EventBridge's rule), the sweep runs every five simulated minutes
//! (EventBridge's schedule), the gates are re-evaluated every simulated minute (the gates'
//! one-minute schedule) and at each scripted alarm state change (the CloudWatch "Alarm State
//! Change" rule), and the sim file's operator acts at its times.

use crate::clock::VirtualClock;
use crate::events::JsonlBus;
use crate::executions::LocalExecutions;
use crate::sim::{ApiCalls, Operation, OperatorAction, SimExecution, SimFile, SimPipelines};
use crate::store::{RunChange, SqliteStore};
use crate::tokens::EngineTokens;
use crate::world::SimWorld;
use rm_core::error::{Rejection, TaskError, ValidationError};
use rm_core::events::{EventBus, ReleaseEvent};
use rm_core::gate::Halt;
use rm_core::handlers::{self, Function, TaskPorts};
use rm_core::lifecycle::{WaitKind, WaitingFor};
use rm_core::manifest::Manifest;
use rm_core::ports::{
    ApiPorts, Clock, ExecutionRunState, ExecutionState, ManifestSource, PortResult, ReleaseStore,
    Sensors, SourceError,
};
use rm_core::release::{ReleaseId, ReleaseStatus};
use rm_core::tasks::{CheckManifestResponse, Outcome};
use rm_core::usecases;
use rm_core::view::ReleaseView;
use rm_states::{
    ExecutionConfig, ExecutionStatus, HistoryEvent, StateMachine, TaskFailure, TaskHandler,
};
use serde_json::{json, Value};
use std::cell::{Cell, RefCell};
use std::collections::{BTreeMap, HashMap};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;
use time::OffsetDateTime;

/// The one definition, deployed by SAM and run here unchanged.
pub const DEFINITION: &str = include_str!("../../../statemachine/release.asl.json");
/// The state machine's name (part of execution ARNs), as the SAM template names it.
pub const STATE_MACHINE_NAME: &str = "release-machine";
/// The sweep's schedule.
pub const SWEEP_INTERVAL: Duration = Duration::from_secs(5 * 60);
/// The gates' schedule (AWS: a one-minute EventBridge rule).
pub const GATES_INTERVAL: Duration = Duration::from_secs(60);
/// Who ends a local release that nothing in the sim file would ever let go on.
pub const RUNNER: &str = "release-machine";

/// The local functions, named as the definition's substitutions resolve them.
pub const CHECK_MANIFEST: &str = Function::CheckManifest.name();
pub const START_PIPELINES: &str = Function::StartPipelines.name();
pub const POLL_EXECUTION: &str = Function::PollExecution.name();
pub const RECORD_STATE: &str = Function::RecordState.name();

/// DefinitionSubstitutions: each `${...FunctionArn}` becomes a local function name; the Lambda
/// invoke integrations get the `aws` partition's ARNs (the template passes its own partition's).
pub fn substitutions() -> HashMap<String, String> {
    Function::ALL
        .into_iter()
        .map(|f| (f.substitution().to_owned(), f.name().to_owned()))
        .chain(
            [
                ("LambdaInvoke", "arn:aws:states:::lambda:invoke"),
                (
                    "LambdaInvokeWaitForTaskToken",
                    "arn:aws:states:::lambda:invoke.waitForTaskToken",
                ),
            ]
            .map(|(k, v)| (k.to_owned(), v.to_owned())),
        )
        .collect()
}

/// What the run reports while it runs.
#[derive(Debug, Clone, PartialEq)]
pub enum Progress {
    /// CheckManifest claimed the release: its waves, in order.
    Started {
        release_id: String,
        execution_name: String,
        waves: Vec<(u32, Vec<String>)>,
        max_concurrency: u32,
    },
    /// A run's status changed in the store.
    Run {
        change: RunChange,
        elapsed: Duration,
    },
    /// StopRunning began stopping the release's running pipelines.
    Stopping { elapsed: Duration },
    /// The scheduled sweep ran.
    Sweep {
        elapsed: Duration,
        polled: u32,
        completed: u32,
    },
    /// record-state could not handle an event (the sweep will catch up).
    EventError { message: String },
    /// A scripted operator action (the sim file's `operator`) was taken, or refused.
    Operator {
        elapsed: Duration,
        action: OperatorAction,
        /// Why the release's state refused it (as the API's 409 says).
        refused: Option<String>,
    },
    /// The release began to wait (an approval, a gate, a bake, the halt), or what it waits
    /// for changed (a gate's reasons): `Release Waiting` with its `waitingFor`.
    Waiting {
        elapsed: Duration,
        waiting_for: WaitingFor,
    },
    /// A wait ended (`Release Waiting`, waiting false).
    WaitEnded {
        elapsed: Duration,
        kind: WaitKind,
        wave: Option<u32>,
    },
    /// The stack-wide halt went on or off (`Halt Status Change`).
    Halt {
        elapsed: Duration,
        on: bool,
        reason: String,
        by: String,
    },
    /// The runner cancelled the release: nothing in the sim file would ever let it go on (a
    /// halt that nothing lifts). `cause` is the release's.
    GaveUp { elapsed: Duration, cause: String },
}

pub type ProgressFn = Arc<dyn Fn(&Progress) + Send + Sync>;

/// What to run.
#[derive(Clone)]
pub struct RunOptions {
    /// The manifest file's bytes.
    pub manifest: Vec<u8>,
    pub sim: SimFile,
    pub state_dir: PathBuf,
    /// Forget an earlier local run of this release id before running.
    pub fresh: bool,
    /// The simulated start time; default: the sim file's `startAt`, else now, to the second.
    pub start_time: Option<OffsetDateTime>,
    /// The Step Functions execution name; default: `local-<time>-<random>`.
    pub execution_name: Option<String>,
    pub progress: Option<ProgressFn>,
    /// Who asks for a retry ([`retry_release`]): recorded as the attempt's `requestedBy`.
    pub requested_by: String,
}

impl RunOptions {
    pub fn new(manifest: Vec<u8>, state_dir: impl Into<PathBuf>) -> Self {
        RunOptions {
            manifest,
            sim: SimFile::default(),
            state_dir: state_dir.into(),
            fresh: false,
            start_time: None,
            execution_name: None,
            progress: None,
            requested_by: rm_core::usecases::LOCAL_REQUESTER.to_owned(),
        }
    }
}

/// Why a run could not start.
#[derive(Debug, thiserror::Error)]
pub enum RunError {
    /// The manifest failed validation: every problem, nothing recorded.
    #[error("{}", Rejection(.0.clone()))]
    InvalidManifest(Vec<ValidationError>),
    /// No release with this id in the state directory (a retry of an unknown id).
    #[error("{0}")]
    UnknownRelease(String),
    /// The release is not in a state that allows it (a retry of a RUNNING or SUCCEEDED one).
    #[error("{0}")]
    Conflict(String),
    #[error("{0}")]
    Internal(String),
}

/// How the release ended.
#[derive(Debug, Clone, PartialEq)]
pub enum RunOutcome {
    Succeeded,
    Failed,
    /// Cancelled (the sim file's `operator` cancel, or the runner: a halt nothing lifts).
    Cancelled,
    /// The release id was already claimed by another execution; nothing touched.
    Duplicate {
        owner: String,
    },
    /// CheckManifest rejected the manifest (e.g. a pipeline that does not exist); nothing
    /// recorded.
    Rejected(Vec<ValidationError>),
    /// The execution failed for another reason.
    Error {
        error: String,
        cause: String,
    },
}

impl RunOutcome {
    /// The CLI's exit code.
    pub fn exit_code(&self) -> i32 {
        match self {
            RunOutcome::Succeeded => 0,
            RunOutcome::Failed => 1,
            RunOutcome::Rejected(_) => 2,
            RunOutcome::Duplicate { .. } => 3,
            RunOutcome::Error { .. } => 4,
            RunOutcome::Cancelled => 5,
        }
    }
}

/// What the simulated CodePipeline saw.
#[derive(Debug, Clone, Default)]
pub struct SimReport {
    pub calls: BTreeMap<String, ApiCalls>,
    pub executions: Vec<SimExecution>,
    pub peak_running: usize,
    pub events_emitted: u64,
}

/// Everything about a finished local run.
#[derive(Debug, Clone)]
pub struct RunReport {
    pub outcome: RunOutcome,
    pub release_id: String,
    pub execution_name: String,
    /// The release as stored (the winner's for a duplicate; none when rejected).
    pub release: Option<ReleaseView>,
    pub execution_status: ExecutionStatus,
    pub state_transitions: u64,
    pub history: Vec<HistoryEvent>,
    pub sim: SimReport,
    /// Simulated time from start to end.
    pub simulated: Duration,
    /// `fresh` removed an earlier record of this release id.
    pub forgot_earlier_run: bool,
}

impl RunReport {
    /// The release JSON with the execution's `stateTransitions` and `historyEvents`.
    pub fn to_json(&self) -> Value {
        let mut v = match &self.release {
            Some(view) => serde_json::to_value(view).unwrap_or(Value::Null),
            None => json!({ "releaseId": self.release_id }),
        };
        if let Value::Object(map) = &mut v {
            match &self.outcome {
                RunOutcome::Duplicate { owner } => {
                    map.insert("outcome".into(), json!("Duplicate"));
                    map.insert("claimedBy".into(), json!(owner));
                }
                RunOutcome::Rejected(errors) => {
                    map.insert("outcome".into(), json!("Rejected"));
                    map.insert("errors".into(), json!(errors));
                }
                RunOutcome::Error { error, cause } => {
                    map.insert("outcome".into(), json!("Error"));
                    map.insert("error".into(), json!({ "Error": error, "Cause": cause }));
                }
                RunOutcome::Succeeded | RunOutcome::Failed | RunOutcome::Cancelled => {}
            }
            map.insert("executionName".into(), json!(self.execution_name));
            map.insert("stateTransitions".into(), json!(self.state_transitions));
            map.insert("historyEvents".into(), json!(self.history.len()));
        }
        v
    }
}

/// The manifest's bytes without a UTF-8 byte-order mark.
fn strip_bom(bytes: &[u8]) -> &[u8] {
    bytes.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(bytes)
}

fn default_execution_name(start: OffsetDateTime) -> String {
    format!(
        "local-{:04}{:02}{:02}T{:02}{:02}{:02}-{:04x}",
        start.year(),
        u8::from(start.month()),
        start.day(),
        start.hour(),
        start.minute(),
        start.second(),
        rand::random::<u16>()
    )
}

/// What the execution starts with.
enum Start {
    /// A new release: the manifest, as the execution's input.
    Manifest(Value),
    /// A retry of a FAILED or CANCELLED release: attempt n+1 is claimed first, then the
    /// execution runs the stored release (`{"claimedRelease": id}`), as the API's retry does.
    Retry,
}

/// Runs a release locally, to its end, in virtual time.
pub fn run_release(opts: RunOptions) -> Result<RunReport, RunError> {
    let manifest = Manifest::parse(&opts.manifest)
        .map_err(|rejection| RunError::InvalidManifest(rejection.0))?;
    let mut input: Value = serde_json::from_slice(strip_bom(&opts.manifest))
        .map_err(|e| RunError::Internal(format!("the manifest stopped parsing: {e}")))?;
    // The id exactly as validated (a number keeps its digits: 5.10 stays "5.10").
    input["releaseId"] = Value::String(manifest.release_id.to_string());
    run(opts, manifest.release_id, Start::Manifest(input))
}

/// Retries a FAILED or CANCELLED release of the state directory, to its end, in virtual time:
/// attempt n+1 runs only the pipelines whose last run did not succeed (`opts.manifest` is not
/// used: a retry re-runs the stored manifest unchanged).
pub fn retry_release(release_id: ReleaseId, opts: RunOptions) -> Result<RunReport, RunError> {
    run(opts, release_id, Start::Retry)
}

fn run(opts: RunOptions, release_id: ReleaseId, start: Start) -> Result<RunReport, RunError> {
    let machine = StateMachine::from_json(DEFINITION, &substitutions()).map_err(|e| {
        RunError::Internal(format!("the state machine definition does not load: {e}"))
    })?;
    let mut start_time = opts.start_time.or(opts.sim.start_at()).unwrap_or_else(|| {
        let now = OffsetDateTime::now_utc();
        now.replace_nanosecond(0).unwrap_or(now)
    });
    if let Start::Retry = start {
        // A release's time never goes backwards: a retry starts after the attempt it retries
        // ended, even when that one ran at a sim file's later startAt (a task token stored
        // "before" the earlier one would lose to it: the store keeps the newest).
        if let Ok(Some(previous)) = load_release(&opts.state_dir, &release_id) {
            let ended = previous.ended_at.unwrap_or(previous.requested_at);
            start_time = start_time.max(ended + time::Duration::seconds(1));
        }
    }
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .start_paused(true)
        .build()
        .map_err(|e| RunError::Internal(format!("cannot start the runtime: {e}")))?;
    runtime.block_on(run_in_virtual_time(
        opts, release_id, start, machine, start_time,
    ))
}

async fn run_in_virtual_time(
    opts: RunOptions,
    release_id: ReleaseId,
    start: Start,
    machine: StateMachine,
    start_time: OffsetDateTime,
) -> Result<RunReport, RunError> {
    let clock = VirtualClock::new(start_time);
    let progress = opts.progress.clone();
    let mut store =
        SqliteStore::open_dir(&opts.state_dir).map_err(|e| RunError::Internal(e.to_string()))?;
    if let Some(p) = progress.clone() {
        store = store.with_observer(move |change| {
            let elapsed = (change.at - start_time).try_into().unwrap_or_default();
            p(&Progress::Run {
                change: change.clone(),
                elapsed,
            })
        });
    }
    let forgot_earlier_run = opts.fresh
        && store
            .forget(&release_id)
            .map_err(|e| RunError::Internal(e.to_string()))?;
    let bus = ObservedBus {
        inner: JsonlBus::for_state_dir(&opts.state_dir),
        release_id: release_id.clone(),
        start: start_time,
        progress: progress.clone(),
    };
    let (event_rule, mut events) = tokio::sync::mpsc::unbounded_channel();
    let faults = Faults {
        abort_after: opts.sim.abort_execution_after(),
        record_failures: Cell::new(opts.sim.record_failures()),
    };
    let operator = opts.sim.operator().to_vec();
    let world = SimWorld::new(opts.sim.world().clone(), clock);
    let sim = SimPipelines::new(opts.sim, clock, event_rule);
    let execution_name = opts
        .execution_name
        .unwrap_or_else(|| default_execution_name(start_time));
    let executions = LocalExecutions::new(execution_name.clone());
    let input = match &start {
        Start::Manifest(input) => input.clone(),
        Start::Retry => json!({ "claimedRelease": release_id.as_str() }),
    };
    let mut config = ExecutionConfig::new(
        execution_name.clone(),
        STATE_MACHINE_NAME,
        start_time,
        input,
    );
    if let Some(after) = faults.abort_after {
        config = config.with_abort_after(after);
    }
    let (execution, engine_tokens) = machine.start(config);
    executions.set_stop(execution.stop_handle());
    let tokens = EngineTokens::new(engine_tokens).with_faults_of(sim.clone());
    let sensors = Sensors {
        alarms: &world,
        health: &world,
    };
    let functions = LocalFunctions::new(
        TaskPorts {
            sensors,
            store: &store,
            pipelines: &sim,
            tokens: &tokens,
            executions: &executions,
            source: &LocalFiles,
            bus: &bus,
            clock: &clock,
        },
        start_time,
    )
    .with_progress(progress)
    .with_faults(&sim, &faults, release_id.clone());
    let api = ApiPorts {
        sensors,
        store: &store,
        pipelines: &sim,
        executions: &executions,
        tokens: &tokens,
        bus: &bus,
        clock: &clock,
    };
    if let Start::Retry = start {
        let retried =
            usecases::retry_release(&release_id, &opts.requested_by, &execution_name, &api);
        match retried.await {
            Ok(_) => {}
            Err(TaskError::NotFound(m)) => return Err(RunError::UnknownRelease(m)),
            Err(TaskError::Conflict(m)) => return Err(RunError::Conflict(m)),
            Err(e) => return Err(RunError::Internal(e.to_string())),
        }
    }

    let outcome = {
        let execution = execution.run(&functions);
        let event_rule = async {
            while let Some(event) = events.recv().await {
                functions.deliver(event).await;
            }
            std::future::pending::<()>().await
        };
        let sweep_schedule = async {
            loop {
                tokio::time::sleep(SWEEP_INTERVAL).await;
                functions.sweep().await;
            }
        };
        let gates_schedule = gates_schedule(&functions, &api, &release_id, &operator);
        let alarm_rule = alarm_rule(&world, &functions);
        let people = operate(&operator, &release_id, &api, &functions);
        tokio::select! {
            outcome = execution => outcome,
            () = event_rule => unreachable!("the event rule never ends"),
            () = sweep_schedule => unreachable!("the schedule never ends"),
            () = gates_schedule => unreachable!("the gates' schedule never ends"),
            () = alarm_rule => unreachable!("the alarm rule never ends"),
            () = people => unreachable!("the operator's script never ends"),
        }
    };
    // Events published before the end are still delivered, as EventBridge would.
    while let Ok(event) = events.try_recv() {
        functions.deliver(event).await;
    }
    executions.ended(ExecutionState {
        status: match outcome.status {
            ExecutionStatus::Succeeded => ExecutionRunState::Succeeded,
            ExecutionStatus::Failed => ExecutionRunState::Failed,
            ExecutionStatus::TimedOut => ExecutionRunState::TimedOut,
            ExecutionStatus::Aborted => ExecutionRunState::Aborted,
        },
        error: outcome.error.clone(),
        cause: outcome.cause.clone(),
    });
    // As on AWS: EventBridge's rule sends a FAILED, TIMED_OUT or ABORTED execution's status
    // change to record-state, whose reconciler ends a release the execution left RUNNING and
    // stops its pipelines; the event rule and the sweep then go on until its runs settle.
    if outcome.status != ExecutionStatus::Succeeded {
        functions
            .deliver(execution_status_change(
                &execution_name,
                &outcome,
                clock.now(),
            ))
            .await;
    }
    settle(&functions, &store, &release_id, &mut events).await;

    let stored = store
        .get(&release_id)
        .await
        .map_err(|e| RunError::Internal(e.to_string()))?;
    let release_id = release_id.to_string();
    let release = stored.as_ref().map(ReleaseView::from);
    let error = outcome.error.clone().unwrap_or_default();
    let cause = outcome.cause.clone().unwrap_or_default();
    let run_outcome = match outcome.status {
        ExecutionStatus::Succeeded
            if outcome.output.as_ref().and_then(|o| o.get("outcome"))
                == Some(&json!("Duplicate")) =>
        {
            RunOutcome::Duplicate {
                owner: stored
                    .as_ref()
                    .map(|s| s.release.owner.clone())
                    .unwrap_or_default(),
            }
        }
        ExecutionStatus::Succeeded => match &release {
            Some(v) if v.status == ReleaseStatus::Succeeded => RunOutcome::Succeeded,
            _ => RunOutcome::Error {
                error: "States.Runtime".into(),
                cause: "the execution succeeded but the release is not recorded as SUCCEEDED"
                    .into(),
            },
        },
        ExecutionStatus::Failed if error == "ManifestInvalid" => RunOutcome::Rejected(
            functions
                .rejection
                .borrow_mut()
                .take()
                .map(|r| r.0)
                .unwrap_or_else(|| vec![ValidationError::new("$", cause.clone())]),
        ),
        ExecutionStatus::Failed
            if error == "ReleaseFailed"
                && release.as_ref().map(|v| v.status) == Some(ReleaseStatus::Failed) =>
        {
            RunOutcome::Failed
        }
        // Ended by the reconciler: the release says how it ended.
        ExecutionStatus::Failed | ExecutionStatus::TimedOut | ExecutionStatus::Aborted
            if stored
                .as_ref()
                .is_some_and(|s| s.release.owner == execution_name) =>
        {
            match release.as_ref().map(|v| v.status) {
                Some(ReleaseStatus::Succeeded) => RunOutcome::Succeeded,
                Some(ReleaseStatus::Failed) => RunOutcome::Failed,
                Some(ReleaseStatus::Cancelled) => RunOutcome::Cancelled,
                _ => RunOutcome::Error { error, cause },
            }
        }
        _ => RunOutcome::Error { error, cause },
    };
    Ok(RunReport {
        outcome: run_outcome,
        release_id,
        execution_name,
        release,
        execution_status: outcome.status,
        state_transitions: outcome.state_transitions,
        history: outcome.history,
        sim: SimReport {
            calls: sim.calls(),
            executions: sim.executions(),
            peak_running: sim.peak_running(),
            events_emitted: sim.events_emitted(),
        },
        simulated: clock.elapsed(),
        forgot_earlier_run,
    })
}

/// The sim file's `operator` actions, each at its time (simulated, since the start): approve
/// and reject decide a waiting approval, cancel cancels the release, halt and unhalt set and
/// lift the stack-wide halt, through the same use cases as the API. An action the release's state does not allow (an approval of a wave
/// that is not waiting) is reported, as the API's 409 would be, and the script goes on. Never
/// ends.
async fn operate(
    actions: &[OperatorAction],
    release_id: &ReleaseId,
    api: &ApiPorts<'_>,
    functions: &LocalFunctions<'_>,
) {
    let began = tokio::time::Instant::now();
    for action in actions {
        tokio::time::sleep_until(began + action.at).await;
        let done = match &action.action {
            Operation::Approve { wave } => usecases::decide_approval(
                release_id,
                *wave,
                &action.by,
                &usecases::Decision::Approve,
                api,
            )
            .await
            .map(|_| ()),
            Operation::Reject { wave, reason } => usecases::decide_approval(
                release_id,
                *wave,
                &action.by,
                &usecases::Decision::Reject {
                    reason: reason.clone(),
                },
                api,
            )
            .await
            .map(|_| ()),
            Operation::Cancel { reason } => {
                usecases::cancel_release(release_id, &action.by, reason, api)
                    .await
                    .map(|_| ())
            }
            Operation::Halt { reason } => usecases::set_halt(reason, &action.by, api)
                .await
                .map(|_| ()),
            Operation::Unhalt => usecases::lift_halt(&action.by, api).await.map(|_| ()),
        };
        functions.report(Progress::Operator {
            elapsed: functions.elapsed(),
            action: action.clone(),
            refused: done.err().map(|e| e.to_string()),
        });
    }
    std::future::pending::<()>().await
}

/// The gates' one-minute schedule (AWS: an EventBridge rule), scoped to this run's release as
/// the local sweep is, and a wake-up at the `nextAt` each re-evaluation answers (a bake's end,
/// a window's opening, a maxWait deadline), so that those happen on their exact second. A gate
/// or bake wait that begins is re-evaluated at once, for its `nextAt`.
///
/// A local release is never left RUNNING: one the halt holds while nothing left in the sim
/// file's operator script lifts it is cancelled, through the cancel use case, with a cause
/// that says so. Never ends.
async fn gates_schedule(
    functions: &LocalFunctions<'_>,
    api: &ApiPorts<'_>,
    release_id: &ReleaseId,
    operator: &[OperatorAction],
) {
    let began = tokio::time::Instant::now() - functions.elapsed();
    let mut tick = began + GATES_INTERVAL;
    let mut gave_up = false;
    loop {
        let wake = functions
            .next_at
            .get()
            .and_then(|at| (at - functions.start).try_into().ok())
            .map(|after: Duration| began + after)
            .filter(|at| *at > tokio::time::Instant::now());
        let due = wake.map_or(tick, |w| w.min(tick));
        tokio::select! {
            () = tokio::time::sleep_until(due) => {}
            () = functions.nudged.notified() => {}
        }
        let now = tokio::time::Instant::now();
        while tick <= now {
            tick += GATES_INTERVAL;
        }
        functions.gates().await;
        if gave_up {
            continue;
        }
        if let Some(reason) = held_for_good(api, release_id, operator, functions.elapsed()).await {
            gave_up = true;
            match usecases::cancel_release(release_id, RUNNER, &reason, api).await {
                Ok(_) => functions.report(Progress::GaveUp {
                    elapsed: functions.elapsed(),
                    cause: format!("cancelled by {RUNNER}: {reason}"),
                }),
                Err(e) => functions.report(Progress::EventError {
                    message: format!("could not cancel the held release: {e}"),
                }),
            }
        }
    }
}

/// Why the release can never go on: the halt holds it and no unhalt is left in the operator
/// script (at or after `elapsed`). `None`: it can (or the store could not say; the next
/// evaluation looks again).
async fn held_for_good(
    api: &ApiPorts<'_>,
    release_id: &ReleaseId,
    operator: &[OperatorAction],
    elapsed: Duration,
) -> Option<String> {
    let halt: Halt = api.store.halt().await.ok()??;
    if operator
        .iter()
        .any(|a| a.at >= elapsed && a.action.is_unhalt())
    {
        return None;
    }
    let release = api.store.release_record(release_id).await.ok()??;
    let held = release.status == ReleaseStatus::Running
        && matches!(release.lifecycle.waiting_for, Some(WaitingFor::Halt { .. }));
    held.then(|| {
        format!(
            "{} — nothing in the sim file lifts the halt; unhalt and retry",
            halt.reason_text()
        )
    })
}

/// EventBridge's rule for CloudWatch alarms: each scripted alarm state change, at its time,
/// as a "CloudWatch Alarm State Change" event to poll-execution. Never ends.
async fn alarm_rule(world: &SimWorld, functions: &LocalFunctions<'_>) {
    let began = tokio::time::Instant::now() - functions.elapsed();
    for change in world.script().alarm_changes() {
        tokio::time::sleep_until(began + change.at).await;
        if let Err(e) = functions
            .call(POLL_EXECUTION, world.alarm_event(&change))
            .await
        {
            functions.report(Progress::EventError {
                message: format!(
                    "poll-execution failed on the state change of alarm {}: {e}",
                    change.name
                ),
            });
        }
    }
    std::future::pending::<()>().await
}

/// The local run's bus: `events.jsonl`, and the progress of this run's waits and of the halt,
/// read from the events as a subscriber to the bus would.
struct ObservedBus {
    inner: JsonlBus,
    release_id: ReleaseId,
    start: OffsetDateTime,
    progress: Option<ProgressFn>,
}

impl ObservedBus {
    fn progress_of(&self, event: &ReleaseEvent) -> Option<Progress> {
        let elapsed = (event.time - self.start).try_into().unwrap_or_default();
        let d = &event.detail;
        match event.detail_type.as_str() {
            rm_core::events::HALT_STATUS_CHANGE => Some(Progress::Halt {
                elapsed,
                on: d.get("on").and_then(Value::as_bool)?,
                reason: d.get("reason").and_then(Value::as_str)?.to_owned(),
                by: d.get("by").and_then(Value::as_str)?.to_owned(),
            }),
            rm_core::events::RELEASE_WAITING if event.release_id == self.release_id => {
                let wave = d.get("wave").and_then(Value::as_u64).map(|w| w as u32);
                if d.get("waiting").and_then(Value::as_bool)? {
                    // An approval's wait is published without its waitingFor.
                    let waiting_for = match (d.get("waitingFor"), d.get("kind")) {
                        (Some(w), _) => serde_json::from_value(w.clone()).ok()?,
                        (None, Some(kind)) if kind == "approval" => WaitingFor::Approval {
                            wave: wave?,
                            since: event.time,
                        },
                        _ => return None,
                    };
                    Some(Progress::Waiting {
                        elapsed,
                        waiting_for,
                    })
                } else {
                    Some(Progress::WaitEnded {
                        elapsed,
                        kind: serde_json::from_value(d.get("kind")?.clone()).ok()?,
                        wave,
                    })
                }
            }
            _ => None,
        }
    }
}

#[async_trait::async_trait]
impl EventBus for ObservedBus {
    async fn put(&self, events: &[ReleaseEvent]) -> PortResult<Vec<usize>> {
        let rejected = self.inner.put(events).await?;
        if let Some(progress) = &self.progress {
            for p in events.iter().filter_map(|e| self.progress_of(e)) {
                progress(&p);
            }
        }
        Ok(rejected)
    }
}

/// The sim file's run-level faults (`"faults": {...}`).
struct Faults {
    abort_after: Option<Duration>,
    /// The calls that record the release's end still to fail.
    record_failures: Cell<u32>,
}

/// The "Step Functions Execution Status Change" event EventBridge publishes when an execution
/// of the release state machine ends FAILED, TIMED_OUT or ABORTED (the rule's pattern).
fn execution_status_change(
    execution_name: &str,
    outcome: &rm_states::ExecutionOutcome,
    at: OffsetDateTime,
) -> Value {
    let status = serde_json::to_value(outcome.status).unwrap_or(Value::Null);
    let (region, account) = (crate::sim::REGION, crate::sim::ACCOUNT);
    let arn = format!(
        "arn:aws:states:{region}:{account}:execution:{STATE_MACHINE_NAME}:{execution_name}"
    );
    json!({
        "version": "0",
        "id": format!("local-{execution_name}-end"),
        "detail-type": "Step Functions Execution Status Change",
        "source": "aws.states",
        "account": account,
        "time": at.format(&time::format_description::well_known::Rfc3339).unwrap_or_default(),
        "region": region,
        "resources": [arn.clone()],
        "detail": {
            "executionArn": arn,
            "stateMachineArn": format!("arn:aws:states:{region}:{account}:stateMachine:{STATE_MACHINE_NAME}"),
            "name": execution_name,
            "status": status,
            "error": outcome.error,
            "cause": outcome.cause,
        }
    })
}

/// After the execution: the event rule and the sweep go on, as on AWS, until the release has
/// ended and none of its runs is still running — bounded, as the sweep's stop wait is (a
/// refused stop is abandoned by the sweep after the bounded wait).
async fn settle(
    functions: &LocalFunctions<'_>,
    store: &SqliteStore,
    release_id: &ReleaseId,
    events: &mut tokio::sync::mpsc::UnboundedReceiver<Value>,
) {
    let unsettled = || async {
        match store.get(release_id).await {
            Ok(Some(stored)) => {
                stored.release.status == ReleaseStatus::Running
                    || stored
                        .runs
                        .iter()
                        .any(|r| r.status.is_running() && !r.stop_abandoned)
            }
            _ => false,
        }
    };
    let deadline = tokio::time::Instant::now() + SETTLE_LIMIT;
    while unsettled().await && tokio::time::Instant::now() < deadline {
        let next_sweep = tokio::time::sleep(SWEEP_INTERVAL);
        tokio::pin!(next_sweep);
        loop {
            tokio::select! {
                Some(event) = events.recv() => functions.deliver(event).await,
                () = &mut next_sweep => {
                    functions.sweep().await;
                    break;
                }
            }
            if !unsettled().await {
                return;
            }
        }
    }
}

/// How long the local run follows a release after its execution ended: the sweep's bounded
/// stop wait and then some.
const SETTLE_LIMIT: Duration = Duration::from_secs(2 * 3600);

/// Reads a manifest from the local disk when the execution input is an S3-shaped event (the
/// bucket is ignored; the key is a path).
struct LocalFiles;

#[async_trait::async_trait]
impl ManifestSource for LocalFiles {
    async fn read(
        &self,
        bucket: &str,
        key: &str,
        _version_id: Option<&str>,
        max_bytes: usize,
    ) -> Result<Vec<u8>, SourceError> {
        let not_found = || SourceError::NotFound {
            bucket: bucket.to_owned(),
            key: key.to_owned(),
        };
        let meta = std::fs::metadata(key).map_err(|_| not_found())?;
        if meta.len() > max_bytes as u64 {
            return Err(SourceError::TooLarge {
                bucket: bucket.to_owned(),
                key: key.to_owned(),
                size: meta.len(),
                max: max_bytes,
            });
        }
        std::fs::read(key).map_err(|_| not_found())
    }
}

/// The four functions of the release state machine, in-process: a lookup into core's one
/// dispatch ([`handlers::dispatch`]), the code each Lambda `main` serves. The runner only
/// watches the answers (for progress and for a rejection's structured errors); it never
/// answers for a function.
pub struct LocalFunctions<'a> {
    ports: TaskPorts<'a>,
    /// When the run started: progress reports time elapsed since.
    start: OffsetDateTime,
    /// The last rejection of CheckManifest, with its structured errors.
    rejection: RefCell<Option<Rejection>>,
    progress: Option<ProgressFn>,
    /// The simulated pipelines, whose `startTimeouts` kill a task as a Lambda timeout.
    sim: Option<&'a SimPipelines>,
    faults: Option<&'a Faults>,
    /// The last call died as a Lambda timeout (`startTimeouts`).
    died: Cell<bool>,
    /// The release this run sweeps (a scoped sweep: two local runs on one state directory
    /// never poll each other's runs).
    release_id: Option<ReleaseId>,
    /// When the last re-evaluation of the gates said something is due next.
    next_at: Cell<Option<OffsetDateTime>>,
    /// A gate or bake wait began: the gates' schedule re-evaluates at once.
    nudged: tokio::sync::Notify,
}

impl<'a> LocalFunctions<'a> {
    /// The functions over these ports (the local run's: the SQLite store, the simulated
    /// pipelines, the engine's task tokens, the local files, the virtual clock).
    pub fn new(ports: TaskPorts<'a>, start: OffsetDateTime) -> Self {
        LocalFunctions {
            ports,
            start,
            rejection: RefCell::new(None),
            progress: None,
            sim: None,
            faults: None,
            died: Cell::new(false),
            release_id: None,
            next_at: Cell::new(None),
            nudged: tokio::sync::Notify::new(),
        }
    }

    fn with_faults(mut self, sim: &'a SimPipelines, faults: &'a Faults, id: ReleaseId) -> Self {
        self.sim = Some(sim);
        self.faults = Some(faults);
        self.release_id = Some(id);
        self
    }

    /// `faults.recordFailures`: the next call that records the release's end fails.
    fn record_fails(&self, function: Function, payload: &Value) -> bool {
        let records_end = function == Function::RecordState
            && (payload.get("action") == Some(&json!("recordRelease"))
                || payload.get("detail-type")
                    == Some(&json!("Step Functions Execution Status Change")));
        let Some(faults) = self.faults.filter(|_| records_end) else {
            return false;
        };
        let left = faults.record_failures.get();
        if left == 0 {
            return false;
        }
        faults.record_failures.set(left - 1);
        true
    }

    fn with_progress(mut self, progress: Option<ProgressFn>) -> Self {
        self.progress = progress;
        self
    }

    fn report(&self, p: Progress) {
        if let Some(progress) = &self.progress {
            progress(&p);
        }
    }

    fn elapsed(&self) -> Duration {
        (self.ports.clock.now() - self.start)
            .try_into()
            .unwrap_or_default()
    }

    /// Invokes the function named `function_name` (its binary's name) with `payload`: the
    /// answer the Lambda would give.
    pub async fn call(&self, function_name: &str, payload: Value) -> Result<Value, TaskError> {
        let function = Function::from_name(function_name)
            .ok_or_else(|| TaskError::Internal(format!("no local function {function_name:?}")))?;
        let mut execution_name = None;
        if self.progress.is_some() {
            execution_name = self.observe_request(function, &payload);
        }
        if self.record_fails(function, &payload) {
            return Err(TaskError::Internal(
                "recording the release's end failed (injected: the sim file's \
                 faults.recordFailures)"
                    .into(),
            ));
        }
        // A gate or bake wait begins: the gates' schedule evaluates it at once, for its `nextAt`.
        let begins_wait = function == Function::PollExecution
            && matches!(
                payload.get("action").and_then(Value::as_str),
                Some("awaitGate" | "awaitBake")
            );
        let answer = handlers::dispatch(function, payload, &self.ports).await;
        // `startTimeouts`: the function started (or found) the execution, then died as a Lambda
        // timeout before it answered — a task, a sweep or an event delivery alike.
        if self.sim.is_some_and(|sim| sim.take_lambda_death()) {
            self.died.set(true);
            return Err(TaskError::Transient(
                "the function timed out before it answered (injected: the sim file's \
                 startTimeouts)"
                    .into(),
            ));
        }
        if begins_wait && answer.is_ok() {
            self.nudged.notify_one();
        }
        match (&answer, execution_name) {
            (Ok(value), Some(execution_name)) => self.observe_check(value, execution_name),
            (Err(TaskError::ManifestInvalid(rejection)), _) => {
                *self.rejection.borrow_mut() = Some(rejection.clone());
            }
            _ => {}
        }
        answer
    }

    /// StopRunning's first attempt: the release begins stopping. For CheckManifest, the
    /// execution's name.
    fn observe_request(&self, function: Function, payload: &Value) -> Option<String> {
        if function == Function::CheckManifest {
            return Some(
                payload
                    .get("executionName")
                    .and_then(Value::as_str)
                    .unwrap_or_default()
                    .to_owned(),
            );
        }
        if function == Function::StartPipelines
            && payload.get("action") == Some(&json!("stopRunning"))
            && payload.get("attempt").and_then(Value::as_u64) == Some(0)
        {
            self.report(Progress::Stopping {
                elapsed: self.elapsed(),
            });
        }
        None
    }

    /// CheckManifest claimed the release: its waves.
    fn observe_check(&self, answer: &Value, execution_name: String) {
        let Ok(response) = serde_json::from_value::<CheckManifestResponse>(answer.clone()) else {
            return;
        };
        if response.outcome == Outcome::Started {
            self.report(Progress::Started {
                release_id: response.release_id.clone(),
                execution_name,
                waves: response
                    .waves
                    .iter()
                    .map(|w| (w.wave, w.pipelines.iter().map(|p| p.name.clone()).collect()))
                    .collect(),
                max_concurrency: response.max_concurrency.unwrap_or_default(),
            });
        }
    }

    /// EventBridge's rule: a CodePipeline state-change event goes to record-state.
    async fn deliver(&self, event: Value) {
        if let Err(e) = self.call(RECORD_STATE, event).await {
            self.report(Progress::EventError {
                message: format!("record-state failed on a state-change event: {e}"),
            });
        }
    }

    /// The gates' schedule: re-evaluates this run's waits; remembers when something is due.
    async fn gates(&self) {
        let mut request = json!({ "action": "gates" });
        if let Some(id) = &self.release_id {
            request["releaseId"] = json!(id.as_str());
        }
        match self.call(POLL_EXECUTION, request).await {
            Ok(v) => self
                .next_at
                .set(v.get("nextAt").and_then(Value::as_str).and_then(|t| {
                    OffsetDateTime::parse(t, &time::format_description::well_known::Rfc3339).ok()
                })),
            Err(e) => self.report(Progress::EventError {
                message: format!("the gates' re-evaluation failed: {e}"),
            }),
        }
    }

    /// EventBridge's schedule: the sweep.
    async fn sweep(&self) {
        let mut request = json!({ "action": "sweep" });
        if let Some(id) = &self.release_id {
            request["releaseId"] = json!(id.as_str());
        }
        match self.call(POLL_EXECUTION, request).await {
            Ok(v) => {
                let n = |k: &str| v.get(k).and_then(Value::as_u64).unwrap_or(0) as u32;
                self.report(Progress::Sweep {
                    elapsed: self.elapsed(),
                    polled: n("polled"),
                    completed: n("completed"),
                });
            }
            Err(e) => self.report(Progress::EventError {
                message: format!("the sweep failed: {e}"),
            }),
        }
    }
}

#[async_trait::async_trait(?Send)]
impl TaskHandler for LocalFunctions<'_> {
    async fn invoke(&self, function_name: &str, payload: Value) -> Result<Value, TaskFailure> {
        if Function::from_name(function_name).is_none() {
            return Err(TaskFailure::new(
                "Lambda.ResourceNotFoundException",
                format!("Function not found: {function_name}"),
            ));
        }
        let answer = self.call(function_name, payload).await;
        if self.died.replace(false) {
            // What Step Functions reports for a Lambda that timed out.
            return Err(TaskFailure::new(
                "Lambda.Unknown",
                "The function timed out before it answered (injected: the sim file's startTimeouts)",
            ));
        }
        answer.map_err(|e| TaskFailure::new(e.error_type(), e.to_string()))
    }
}

/// The stored release, for `status`.
pub fn load_release(
    state_dir: &std::path::Path,
    release_id: &ReleaseId,
) -> Result<Option<ReleaseView>, String> {
    let path = state_dir.join(crate::store::STORE_FILE);
    if !path.exists() {
        return Ok(None);
    }
    let store = SqliteStore::open(&path).map_err(|e| e.to_string())?;
    futures::executor::block_on(store.get(release_id))
        .map(|s| s.as_ref().map(ReleaseView::from))
        .map_err(|e| e.to_string())
}

/// The state directory's releases, for `list`: newest first (none if nothing ran there).
pub fn list_releases(
    state_dir: &std::path::Path,
    query: &rm_core::ports::ListQuery,
) -> Result<rm_core::ports::ReleasePage, String> {
    let path = state_dir.join(crate::store::STORE_FILE);
    if !path.exists() {
        return Ok(rm_core::ports::ReleasePage {
            releases: Vec::new(),
            next: None,
        });
    }
    let store = SqliteStore::open(&path).map_err(|e| e.to_string())?;
    futures::executor::block_on(store.list_releases(query)).map_err(|e| e.to_string())
}

/// The state directory's stored halt, which local runs start with (none if nothing was
/// recorded there).
pub fn stored_halt(state_dir: &std::path::Path) -> Result<Option<Halt>, String> {
    let path = state_dir.join(crate::store::STORE_FILE);
    if !path.exists() {
        return Ok(None);
    }
    let store = SqliteStore::open(&path).map_err(|e| e.to_string())?;
    futures::executor::block_on(store.halt()).map_err(|e| e.to_string())
}

/// A clock stopped at one instant: a halt change is one moment.
struct AtInstant(OffsetDateTime);

impl Clock for AtInstant {
    fn now(&self) -> OffsetDateTime {
        self.0
    }
}

/// What `release-machine halt` and `unhalt` do to a state directory.
pub enum HaltChange<'a> {
    /// Turn the halt on (a halt already on keeps its `since`).
    Set {
        reason: &'a str,
    },
    Lift,
}

/// Sets or lifts the state directory's halt through the same use cases as `PUT /halt` and
/// `DELETE /halt`, at the real now (the `Halt Status Change` event goes to its
/// `events.jsonl`). Answers the halt now on (set) or the one lifted (lift; `None`: none was
/// on). A bad reason is a [`TaskError::BadInput`].
pub fn change_halt(
    state_dir: &std::path::Path,
    change: HaltChange<'_>,
    by: &str,
) -> Result<Option<Halt>, TaskError> {
    let internal = |e: String| TaskError::Internal(e);
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .build()
        .map_err(|e| internal(format!("cannot start the runtime: {e}")))?;
    runtime.block_on(async {
        let store = SqliteStore::open_dir(state_dir).map_err(|e| internal(e.to_string()))?;
        // Whole seconds, as a local run's start: a run started in the same second as the halt
        // does not begin before it.
        let now = OffsetDateTime::now_utc();
        let clock = AtInstant(now.replace_nanosecond(0).unwrap_or(now));
        let virtual_clock = VirtualClock::new(clock.0);
        let world = SimWorld::new(Default::default(), virtual_clock);
        let (events, _ignored) = tokio::sync::mpsc::unbounded_channel();
        let pipelines = SimPipelines::new(SimFile::default(), virtual_clock, events);
        // No execution runs here: a local release is never left RUNNING, so the waits a halt
        // change re-evaluates are none (a token of an interrupted run is already done).
        let executions = LocalExecutions::new("");
        let tokens = EngineTokens::new(rm_states::TaskTokens::default());
        let bus = JsonlBus::for_state_dir(state_dir);
        let api = ApiPorts {
            sensors: Sensors {
                alarms: &world,
                health: &world,
            },
            store: &store,
            pipelines: &pipelines,
            executions: &executions,
            tokens: &tokens,
            bus: &bus,
            clock: &clock,
        };
        match change {
            HaltChange::Set { reason } => usecases::set_halt(reason, by, &api).await.map(Some),
            HaltChange::Lift => usecases::lift_halt(by, &api).await,
        }
    })
}

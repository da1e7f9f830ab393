//! `release-machine`: run, validate and inspect releases on this machine, and drive a deployed
//! stack (`--api URL`, `RELEASE_MACHINE_API`, `--stack NAME`) with the same commands.

mod commands;
mod operate;
mod plan;
mod progress;
mod remote;
mod timeline;
mod watch;

use clap::{Parser, Subcommand};
use std::path::PathBuf;
use std::process::ExitCode;

/// Exit codes: 0 the release SUCCEEDED (or the command succeeded), 1 it FAILED, 2 invalid input
/// (manifest, sim file, unknown release id, a missing pipeline), 3 not allowed in the release's
/// state (already claimed, another local run is running it, a retry of a RUNNING or SUCCEEDED
/// release), 4 an internal error, 5 the release was CANCELLED, 6 the stack could not be
/// reached or the caller is not authorized (against a deployed stack).
#[derive(Parser)]
#[command(name = "release-machine", version, about, long_about = ABOUT)]
struct Cli {
    /// Drive a deployed stack through its API: the stage URL (the stack's ReleaseApiUrl
    /// output). Default: $RELEASE_MACHINE_API; neither: the local state directory.
    #[arg(long, global = true, value_name = "URL")]
    api: Option<String>,
    /// Drive the deployed CloudFormation stack NAME (its ReleaseApiUrl output is the API).
    #[arg(long, global = true, value_name = "NAME")]
    stack: Option<String>,
    #[command(subcommand)]
    command: Command,
}

const ABOUT: &str = "\
Runs, validates and inspects releases: locally (the state directory, simulated pipelines, \
virtual time) or against a deployed stack with the same commands.

Target: --api URL (or RELEASE_MACHINE_API) or --stack NAME drive a deployed stack through its \
IAM-authorized API, with credentials and region from the standard AWS chain (environment, \
AWS_PROFILE, SSO, credential process, instance or container role), each request signed with \
SigV4. Neither: the local state directory (--state-dir, default .release-machine).

Exit codes: 0 SUCCEEDED (or the command succeeded), 1 FAILED, 2 invalid input (manifest, sim \
file, unknown release id), 3 not allowed in the release's state, 4 internal error, 5 CANCELLED, \
6 the stack could not be reached or the caller is not authorized (the message says which).";

#[derive(Subcommand)]
enum Command {
    /// Runs a release locally: the real state machine and handlers, simulated pipelines,
    /// virtual time.
    #[command(long_about = RUN_ABOUT)]
    Run(RunArgs),
    /// Sends a release to the deployed stack (validated here first, as `validate` does), and
    /// prints its id and how to watch it.
    #[command(long_about = SUBMIT_ABOUT)]
    Submit(SubmitArgs),
    /// Watches a release until it ends: a live view on a terminal, a line per change
    /// otherwise; exits with the release's code (0, 1, 5). Ctrl-C stops watching, not the
    /// release.
    Watch(WatchArgs),
    /// Cancels a RUNNING release on the deployed stack (locally: exit 3, see --help).
    Cancel(CancelArgs),
    /// Approves the wave a release waits to start (the manifest's `approvals`).
    Approve(ApproveArgs),
    /// Rejects the wave a release waits to start: the release ends FAILED.
    Reject(RejectArgs),
    /// Validates manifests; every problem is reported with its file and JSONPath.
    Validate {
        /// Manifest files.
        #[arg(required = true, value_name = "MANIFEST")]
        manifests: Vec<PathBuf>,
    },
    /// Shows a release (exit 0 when it printed one). Locally, a release left RUNNING by a
    /// local run that was interrupted (no run holds its lock) is recorded FAILED first.
    Status {
        /// The release id.
        release_id: String,
        /// Where local runs keep their store.
        #[arg(long, value_name = "DIR", default_value = commands::DEFAULT_STATE_DIR)]
        state_dir: PathBuf,
        /// Print the release JSON.
        #[arg(long)]
        json: bool,
        /// Also print the release's published events (EventBridge-shaped, one per line; with
        /// --json, as the release JSON's "events").
        #[arg(long)]
        events: bool,
    },
    /// Retries a FAILED or CANCELLED release recorded by a local run: attempt n+1 runs only
    /// the pipelines whose last run did not succeed, to its end, in virtual time.
    Retry(RetryArgs),
    /// Lists the releases recorded by local runs, newest first.
    List(ListArgs),
    /// Halts every release: sets the stack-wide halt that local runs in this state directory
    /// start with (no wave and no pipeline start goes on while it is on; running pipelines are
    /// never stopped). Without --reason, prints the current halt.
    #[command(long_about = HALT_ABOUT)]
    Halt(HaltArgs),
    /// Lifts the stack-wide halt of this state directory.
    Unhalt(UnhaltArgs),
    /// Plans a release without starting anything: will it start, what changes, how long it
    /// takes (the release's own state machine run in simulated time), what it costs.
    #[command(long_about = plan::PLAN_ABOUT)]
    Plan(PlanArgs),
    /// Draws a release (or, with --plan, a plan) as an SVG Gantt chart.
    #[command(long_about = timeline::TIMELINE_ABOUT)]
    Timeline(TimelineArgs),
}

#[derive(clap::Args)]
pub struct PlanArgs {
    /// The manifest file.
    #[arg(value_name = "MANIFEST")]
    pub manifest: PathBuf,
    /// The simulation file the plan reads the pipelines from (locally; default: every
    /// pipeline exists, accepts anything and takes 180 s).
    #[arg(long, value_name = "FILE")]
    pub sim: Option<PathBuf>,
    /// Print the plan as JSON.
    #[arg(long)]
    pub json: bool,
}

#[derive(clap::Args)]
pub struct TimelineArgs {
    /// The release id (not with --plan).
    #[arg(
        value_name = "ID",
        required_unless_present = "plan",
        conflicts_with = "plan"
    )]
    pub release_id: Option<String>,
    /// Draw the plan of this manifest instead of a release.
    #[arg(long, value_name = "MANIFEST")]
    pub plan: Option<PathBuf>,
    /// With --plan: the simulation file the plan reads the pipelines from (locally).
    #[arg(long, value_name = "FILE", requires = "plan")]
    pub sim: Option<PathBuf>,
    /// Write the SVG to FILE (default: stdout).
    #[arg(short = 'o', long = "output", value_name = "FILE")]
    pub output: Option<PathBuf>,
    /// Where local runs keep their store.
    #[arg(long, value_name = "DIR", default_value = commands::DEFAULT_STATE_DIR)]
    pub state_dir: PathBuf,
}

const HALT_ABOUT: &str = "\
Halts every release: sets the stack-wide halt of the state directory, which every later local \
run there starts with. While it is on, no wave and no pipeline start goes on and gates stay \
closed; pipelines already running are never stopped. A local release is never left RUNNING: a \
run the halt holds, with nothing in its sim file's operator script that lifts it (an \
\"unhalt\" action), is cancelled (exit 5) with a cause that says so. Lift it with \
release-machine unhalt. Without --reason, prints the current halt (with --json: {\"on\": \
true, \"reason\", \"by\", \"since\"} or {\"on\": false}).

Exit codes: 0 done (or printed), 2 invalid input (an empty reason), 4 internal error.";

const SUBMIT_ABOUT: &str = "\
Sends a release to the deployed stack (--api URL, RELEASE_MACHINE_API or --stack NAME): the \
manifest is validated here first, with the same messages and exit code 2 as `validate`, then \
POSTed to the stack's API, which checks its pipelines and starts the release. Prints the release \
id (stdout) and how to watch it; --watch watches it to its end and exits with its code.

Without a stack, submit validates the manifest and exits 2: on this machine a release is run, \
start to end in simulated time, with `release-machine run MANIFEST`.

Exit codes: 0 submitted (with --watch: SUCCEEDED), 1 FAILED (--watch), 2 invalid manifest or \
refused by the stack's checks, 3 the release id was already requested, 4 internal error, \
5 CANCELLED (--watch), 6 the stack could not be reached or the caller is not authorized.";

#[derive(clap::Args)]
pub struct SubmitArgs {
    /// The release manifest (JSON).
    #[arg(value_name = "MANIFEST")]
    pub manifest: PathBuf,
    /// Watch the release to its end (exit code 0, 1 or 5).
    #[arg(long)]
    pub watch: bool,
    /// Print the API's answer (with --watch: the final release JSON) on stdout.
    #[arg(long)]
    pub json: bool,
}

#[derive(clap::Args)]
pub struct WatchArgs {
    /// The release id.
    pub release_id: String,
    /// Where local runs keep their store.
    #[arg(long, value_name = "DIR", default_value = commands::DEFAULT_STATE_DIR)]
    pub state_dir: PathBuf,
    /// Print nothing while watching, then the final release JSON on stdout.
    #[arg(long)]
    pub json: bool,
}

#[derive(clap::Args)]
pub struct CancelArgs {
    /// The release id.
    pub release_id: String,
    /// Why (recorded with the release and in its cause).
    #[arg(long, value_name = "REASON")]
    pub reason: String,
    /// Then watch it to its end (exit 5 once CANCELLED).
    #[arg(long)]
    pub watch: bool,
    /// Print the release JSON on stdout.
    #[arg(long)]
    pub json: bool,
    /// Where local runs keep their store.
    #[arg(long, value_name = "DIR", default_value = commands::DEFAULT_STATE_DIR)]
    pub state_dir: PathBuf,
}

#[derive(clap::Args)]
pub struct ApproveArgs {
    /// The release id.
    pub release_id: String,
    /// The wave waiting for its approval.
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u32).range(1..))]
    pub wave: u32,
    /// Then watch it to its end.
    #[arg(long)]
    pub watch: bool,
    /// Print the release JSON on stdout.
    #[arg(long)]
    pub json: bool,
    /// Where local runs keep their store.
    #[arg(long, value_name = "DIR", default_value = commands::DEFAULT_STATE_DIR)]
    pub state_dir: PathBuf,
}

#[derive(clap::Args)]
pub struct RejectArgs {
    /// The release id.
    pub release_id: String,
    /// The wave waiting for its approval.
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u32).range(1..))]
    pub wave: u32,
    /// Why (the release's cause).
    #[arg(long, value_name = "REASON")]
    pub reason: String,
    /// Print the release JSON on stdout.
    #[arg(long)]
    pub json: bool,
    /// Where local runs keep their store.
    #[arg(long, value_name = "DIR", default_value = commands::DEFAULT_STATE_DIR)]
    pub state_dir: PathBuf,
}

#[derive(clap::Args)]
pub struct HaltArgs {
    /// Why: shown in every held release's waitingFor and cause (e.g. "incident 4711").
    #[arg(long, value_name = "REASON")]
    pub reason: Option<String>,
    /// Who halts (default: local, as a local retry's requester).
    #[arg(long, value_name = "NAME")]
    pub by: Option<String>,
    /// Where local runs keep their store.
    #[arg(long, value_name = "DIR", default_value = commands::DEFAULT_STATE_DIR)]
    pub state_dir: PathBuf,
    /// Print the halt as JSON on stdout.
    #[arg(long)]
    pub json: bool,
}

#[derive(clap::Args)]
pub struct UnhaltArgs {
    /// Who lifts the halt (default: local).
    #[arg(long, value_name = "NAME")]
    pub by: Option<String>,
    /// Where local runs keep their store.
    #[arg(long, value_name = "DIR", default_value = commands::DEFAULT_STATE_DIR)]
    pub state_dir: PathBuf,
    /// Print the halt as JSON on stdout afterwards ({"on": false}).
    #[arg(long)]
    pub json: bool,
}

#[derive(clap::Args)]
pub struct RetryArgs {
    /// The release id.
    pub release_id: String,
    /// A simulation file scripting the pipelines (and the operator) for this attempt.
    #[arg(long, value_name = "FILE")]
    pub sim: Option<PathBuf>,
    /// Where local runs keep their store.
    #[arg(long, value_name = "DIR", default_value = commands::DEFAULT_STATE_DIR)]
    pub state_dir: PathBuf,
    /// Print the release JSON on stdout.
    #[arg(long)]
    pub json: bool,
    /// Also print the release's published events.
    #[arg(long)]
    pub events: bool,
    /// Against a stack: watch the new attempt to its end (a local retry always runs to it).
    #[arg(long)]
    pub watch: bool,
}

#[derive(clap::Args)]
pub struct ListArgs {
    /// Only releases with this status (RUNNING, SUCCEEDED, FAILED, CANCELLED).
    #[arg(long, value_name = "STATUS")]
    pub status: Option<String>,
    /// At most this many.
    #[arg(long, value_name = "N", default_value_t = 100, value_parser = clap::value_parser!(u16).range(1..=10000))]
    pub limit: u16,
    /// Where local runs keep their store.
    #[arg(long, value_name = "DIR", default_value = commands::DEFAULT_STATE_DIR)]
    pub state_dir: PathBuf,
    /// Print {"releases": [...], "next": null} on stdout.
    #[arg(long)]
    pub json: bool,
}

const RUN_ABOUT: &str = "\
Runs a release on this machine, with no AWS account: statemachine/release.asl.json runs in the \
local States Language engine, its tasks call the same code as the Lambda functions, against \
simulated CodePipeline pipelines and a SQLite store in the state directory, in virtual time (a \
two-hour release takes milliseconds).

Without --sim every pipeline exists and succeeds after 3 simulated minutes. A sim file scripts \
them: {\"defaults\": {...}, \"pipelines\": {\"NAME\": {...}}}, each object with any of exists, \
outcome (Succeeded|Failed|Stopped|Superseded), durationSeconds, failedStage, stopSeconds, events \
(deliver|drop|duplicate), throttleStarts, and the faults startConflicts, startTimeouts, \
sendFailures, vanishes, stopRefused; for plan and skipUnchanged, what CodePipeline would say: \
pipelineType, variables, sourceActions, lastRevisions, lastVariables; a top-level \"faults\" \
object takes abortExecutionAfterSeconds and recordFailures (README, \"Local mode\").

Running again: a release id is claimed once per state directory, as in DynamoDB. Running the \
same manifest again in the same state directory runs nothing and exits 3 (already claimed), \
naming the earlier run. To run it again, add --fresh (forgets the earlier local run of this \
release id) or use another state directory (--state-dir \"$(mktemp -d)\").

While a run runs, it holds a lock on its release id in the state directory \
(locks/<id in hex>.lock): a second run of that release id there, with or without --fresh, is \
refused (exit 3) and touches nothing. A run that was killed leaves its release RUNNING with no \
lock holder; the next command that opens it (run, status) records it FAILED with the cause \
\"local run interrupted\".

Operator actions (issue 11) are scripted in the sim file too: \"operator\": [{\"atSeconds\": 900, \
\"action\": \"approve\", \"wave\": 2, \"by\": \"alice\"}, {\"atSeconds\": 300, \"action\": \"cancel\", \
\"by\": \"carol\", \"reason\": \"...\"}] (approve|reject|cancel|halt|unhalt; reject, cancel and halt need \
a reason). The world the gates see: \"startAt\" (the virtual clock's start, RFC 3339 with an \
offset), \"alarms\" ({\"NAME\": [{\"atSeconds\": 0, \"state\": \"OK\"}, {\"atSeconds\": 900, \
\"state\": \"ALARM\"}]}: an alarm exists from its first entry on) and \"health\" \
([{\"service\", \"region\", \"fromSeconds\", \"toSeconds\"}]). A release the halt holds with \
no unhalt left in the script is cancelled (exit 5). \
Every event the release publishes is appended to <state-dir>/events.jsonl; --events prints them.

Exit codes: 0 SUCCEEDED, 1 FAILED, 2 invalid input (manifest, sim file, a pipeline that does \
not exist: nothing recorded), 3 release id already claimed or being run by another local run, \
4 internal error, 5 CANCELLED.";

#[derive(clap::Args)]
pub struct RunArgs {
    /// The release manifest (JSON).
    #[arg(value_name = "MANIFEST")]
    pub manifest: PathBuf,
    /// A simulation file scripting the pipelines.
    #[arg(long, value_name = "FILE")]
    pub sim: Option<PathBuf>,
    /// Where the store is kept (created if missing).
    #[arg(long, value_name = "DIR", default_value = commands::DEFAULT_STATE_DIR)]
    pub state_dir: PathBuf,
    /// Forget an earlier local run of this release id in the state directory, then run.
    #[arg(long)]
    pub fresh: bool,
    /// Print the release JSON (with stateTransitions and historyEvents) on stdout.
    #[arg(long)]
    pub json: bool,
    /// Also print the release's published events (EventBridge-shaped, one per line; with
    /// --json, as the release JSON's "events").
    #[arg(long)]
    pub events: bool,
}

fn main() -> ExitCode {
    // An internal error is a message and exit code 4, never a panic trace.
    std::panic::set_hook(Box::new(|info| {
        let message = info
            .payload()
            .downcast_ref::<&str>()
            .map(|s| (*s).to_owned())
            .or_else(|| info.payload().downcast_ref::<String>().cloned())
            .unwrap_or_else(|| "unknown".to_owned());
        eprintln!("release-machine: internal error: {message}");
        std::process::exit(4);
    }));
    let cli = Cli::parse();
    let env_api = std::env::var(remote::API_ENV).ok();
    let target = match remote::TargetSpec::resolve(
        cli.api.as_deref(),
        cli.stack.as_deref(),
        env_api.as_deref(),
    ) {
        Ok(t) => t,
        Err(m) => {
            eprintln!("error: {m}");
            return ExitCode::from(commands::INVALID);
        }
    };
    let code = match target {
        None => local(cli.command),
        Some(spec) => against_stack(&spec, cli.command),
    };
    ExitCode::from(code)
}

/// A command against a deployed stack.
fn against_stack(spec: &remote::TargetSpec, command: Command) -> u8 {
    // What only exists locally is refused before anything is loaded.
    let local_only = match &command {
        Command::Run(_) => Some("run executes a release on this machine; to send one to the stack: release-machine submit MANIFEST"),
        Command::Status { events: true, .. } => Some("--events reads the local events file; a stack publishes its events to EventBridge (source release-machine)"),
        Command::Retry(a) if a.sim.is_some() => Some("--sim scripts simulated pipelines; a stack runs the real ones"),
        Command::Plan(PlanArgs { sim: Some(_), .. }) | Command::Timeline(TimelineArgs { sim: Some(_), .. }) => {
            Some("--sim scripts simulated pipelines; against a stack, plan reads the real ones (GetPipeline, ListPipelineExecutions)")
        }
        Command::Halt(HaltArgs { by: Some(_), .. }) | Command::Unhalt(UnhaltArgs { by: Some(_), .. }) => {
            Some("--by names who acts locally; the stack records the caller's IAM ARN")
        }
        Command::Validate { manifests } => {
            return commands::validate(manifests);
        }
        _ => None,
    };
    if let Some(why) = local_only {
        eprintln!("error: {why}");
        return commands::INVALID;
    }
    let remote = match remote::Remote::connect(spec) {
        Ok(r) => r,
        Err(e) => return e.report(),
    };
    use operate::Action;
    match command {
        Command::Submit(a) => operate::submit_remote(&remote, &a.manifest, a.watch, a.json),
        Command::Watch(a) => operate::watch_remote(&remote, &a.release_id, a.json),
        Command::Status {
            release_id, json, ..
        } => operate::status_remote(&remote, &release_id, json),
        Command::List(a) => {
            operate::list_remote(&remote, a.status.as_deref(), usize::from(a.limit), a.json)
        }
        Command::Cancel(a) => operate::operate_remote(
            &remote,
            Action::Cancel,
            &a.release_id,
            None,
            Some(&a.reason),
            a.watch,
            a.json,
        ),
        Command::Approve(a) => operate::operate_remote(
            &remote,
            Action::Approve,
            &a.release_id,
            Some(a.wave),
            None,
            a.watch,
            a.json,
        ),
        Command::Reject(a) => operate::operate_remote(
            &remote,
            Action::Reject,
            &a.release_id,
            Some(a.wave),
            Some(&a.reason),
            false,
            a.json,
        ),
        Command::Retry(a) => operate::retry_remote(&remote, &a.release_id, a.watch, a.json),
        Command::Halt(a) => operate::halt_remote(&remote, a.reason.as_deref(), a.json),
        Command::Unhalt(a) => operate::unhalt_remote(&remote, a.json),
        Command::Plan(a) => plan::plan_command(&a, Some(&remote)),
        Command::Timeline(a) => timeline::timeline_remote(&remote, &a),
        Command::Run(_) | Command::Validate { .. } => commands::INVALID,
    }
}

/// A command against the local state directory.
fn local(command: Command) -> u8 {
    use operate::Action;
    match command {
        Command::Submit(a) => operate::submit_local(&a.manifest),
        Command::Watch(a) => operate::watch_local(&a.release_id, &a.state_dir, a.json),
        Command::Cancel(a) => {
            operate::operate_local(Action::Cancel, &a.release_id, None, &a.state_dir)
        }
        Command::Approve(a) => {
            operate::operate_local(Action::Approve, &a.release_id, Some(a.wave), &a.state_dir)
        }
        Command::Reject(a) => {
            operate::operate_local(Action::Reject, &a.release_id, Some(a.wave), &a.state_dir)
        }
        Command::Run(args) => commands::run(&args),
        Command::Validate { manifests } => commands::validate(&manifests),
        Command::Status {
            release_id,
            state_dir,
            json,
            events,
        } => commands::status(&release_id, &state_dir, json, events),
        Command::Retry(args) => commands::retry(&args),
        Command::List(args) => commands::list(&args),
        Command::Halt(args) => commands::halt(&args),
        Command::Unhalt(args) => commands::unhalt(&args),
        Command::Plan(args) => plan::plan_command(&args, None),
        Command::Timeline(args) => timeline::timeline_local(&args),
    }
}

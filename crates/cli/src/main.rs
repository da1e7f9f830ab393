//! `release-machine`: run, validate and inspect releases on this machine.

mod commands;
mod progress;

use clap::{Parser, Subcommand};
use std::path::PathBuf;
use std::process::ExitCode;

/// Exit codes: 0 the release SUCCEEDED (or the command succeeded), 1 it FAILED, 2 invalid input
/// (manifest, sim file, unknown release id, a missing pipeline), 3 not allowed in the release's
/// state (already claimed, another local run is running it, a retry of a RUNNING or SUCCEEDED
/// release), 4 an internal error, 5 the release was CANCELLED.
#[derive(Parser)]
#[command(name = "release-machine", version, about, long_about = None)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Runs a release locally: the real state machine and handlers, simulated pipelines,
    /// virtual time.
    #[command(long_about = RUN_ABOUT)]
    Run(RunArgs),
    /// Validates manifests; every problem is reported with its file and JSONPath.
    Validate {
        /// Manifest files.
        #[arg(required = true, value_name = "MANIFEST")]
        manifests: Vec<PathBuf>,
    },
    /// Shows a release recorded by a local run. A release left RUNNING by a local run that
    /// was interrupted (no run holds its lock) is recorded FAILED first.
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
sendFailures, vanishes, stopRefused; a top-level \"faults\" object takes \
abortExecutionAfterSeconds and recordFailures (README, \"Local mode\").

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
    let code = match cli.command {
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
    };
    ExitCode::from(code)
}

//! The commands. Each returns its exit code.

use crate::progress::Display;
use crate::{HaltArgs, ListArgs, RetryArgs, RunArgs, UnhaltArgs};
use rm_core::manifest::Manifest;
use rm_core::ports::ListQuery;
use rm_core::release::{ReleaseId, ReleaseStatus};
use rm_core::view::ReleaseList;
use rm_core::view::ReleaseView;
use rm_local::lock::{self, Interrupted, LockError, ReleaseLock};
use rm_local::runner::{load_release, RunOptions, RunOutcome, RunReport};
use rm_local::sim::SimFile;
use rm_local::store::STORE_FILE;
use rm_local::{RunError, SqliteStore};
use std::io::Write;
use std::path::Path;
use std::sync::Arc;
use std::time::Instant;

pub const DEFAULT_STATE_DIR: &str = ".release-machine";

pub const OK: u8 = 0;
pub const INVALID: u8 = 2;
/// Not allowed in the release's state: already claimed, or being run by another local run.
pub const CONFLICT: u8 = 3;
pub const INTERNAL: u8 = 4;

pub(crate) fn read(path: &Path, what: &str) -> Result<Vec<u8>, u8> {
    std::fs::read(path).map_err(|e| {
        eprintln!("error: cannot read the {what} {}: {e}", path.display());
        INVALID
    })
}

/// Prints JSON on stdout; a closed pipe is not an error worth a trace.
pub(crate) fn print_json(v: &serde_json::Value) {
    let text = serde_json::to_string_pretty(v).unwrap_or_else(|_| "null".into());
    let _ = writeln!(std::io::stdout().lock(), "{text}");
}

pub fn run(args: &RunArgs) -> u8 {
    let manifest_name = args.manifest.display().to_string();
    let bytes = match read(&args.manifest, "manifest") {
        Ok(b) => b,
        Err(code) => return code,
    };
    // Validate first: every problem at once, nothing recorded.
    let manifest = match Manifest::parse(&bytes) {
        Ok(m) => m,
        Err(rejection) => {
            eprintln!("error: {manifest_name} is not a valid release manifest:");
            for e in &rejection.0 {
                eprintln!("  {manifest_name}: {e}");
            }
            return INVALID;
        }
    };
    let sim = match read_sim(args.sim.as_deref(), Some((&manifest, &manifest_name))) {
        Ok(sim) => sim,
        Err(code) => return code,
    };
    let display = Display::new(&manifest);
    let mut options = RunOptions::new(bytes, &args.state_dir);
    options.sim = sim;
    options.fresh = args.fresh;
    let common = Common {
        state_dir: &args.state_dir,
        json: args.json,
        events: args.events,
        fresh: args.fresh,
        manifest_name: &manifest_name,
    };
    execute(
        &manifest.release_id,
        "run",
        display,
        options,
        &common,
        rm_local::run_release,
    )
}

/// What `run` and `retry` share.
struct Common<'a> {
    state_dir: &'a Path,
    json: bool,
    events: bool,
    fresh: bool,
    /// How the summary names the manifest (its file, or the stored release's).
    manifest_name: &'a str,
}

/// Takes the release's lock, ends a run of it that was interrupted, runs `start` with the
/// progress display, and prints the outcome: the exit code.
fn execute(
    release_id: &ReleaseId,
    command: &str,
    display: Display,
    mut options: RunOptions,
    common: &Common<'_>,
    start: impl FnOnce(RunOptions) -> Result<RunReport, RunError>,
) -> u8 {
    // Held until this run ends (the OS releases it if the process dies): a second run of this
    // release id in this state directory, or a --fresh, is refused meanwhile.
    let release_lock = match ReleaseLock::try_acquire(common.state_dir, release_id, command) {
        Ok(lock) => lock,
        Err(e @ LockError::Held { .. }) => {
            eprintln!("error: {e}");
            if common.fresh {
                eprintln!(
                    "note: --fresh forgot nothing: a release cannot be forgotten while it runs"
                );
            }
            return CONFLICT;
        }
        Err(e) => {
            eprintln!("error: {e}");
            return INTERNAL;
        }
    };
    // We hold the lock: a RUNNING release of this id is a run that was interrupted. End it
    // before going on, so it is an ended release like any other (a duplicate, --fresh, or a
    // retry).
    if common.state_dir.join(STORE_FILE).exists() {
        let ended = SqliteStore::open_dir(common.state_dir).and_then(|store| {
            release_lock.end_interrupted(&store, time::OffsetDateTime::now_utc())
        });
        match ended {
            Ok(Some(ended)) => eprintln!("{}", lock::interrupted_note(&ended, common.state_dir)),
            Ok(None) => {}
            Err(e) => {
                eprintln!("error: {e}");
                return INTERNAL;
            }
        }
    }
    let display = Arc::new(display);
    let observer = Arc::clone(&display);
    options.progress = Some(Arc::new(move |p| observer.on(p)));
    let manifest_name = common.manifest_name;
    let wall = Instant::now();
    let result = start(options);
    display.finish();
    let report = match result {
        Ok(r) => r,
        Err(RunError::InvalidManifest(errors)) => {
            eprintln!("error: {manifest_name} is not a valid release manifest:");
            for e in &errors {
                eprintln!("  {manifest_name}: {e}");
            }
            return INVALID;
        }
        Err(RunError::UnknownRelease(message)) => {
            eprintln!(
                "error: {message} in {} (--state-dir to look elsewhere)",
                common.state_dir.display()
            );
            return INVALID;
        }
        Err(RunError::Conflict(message)) => {
            eprintln!("error: {message}");
            return CONFLICT;
        }
        Err(RunError::Internal(message)) => {
            eprintln!("error: {message}");
            return INTERNAL;
        }
    };
    let wall = wall.elapsed();
    if report.forgot_earlier_run {
        eprintln!(
            "note: --fresh: forgot the earlier local run of release {} in {}",
            report.release_id,
            common.state_dir.display()
        );
    }
    let code = report.outcome.exit_code() as u8;
    let summary = summary(&report, common.state_dir, manifest_name, wall);
    let events = match common
        .events
        .then(|| read_events(common.state_dir, &report.release_id))
    {
        Some(Err(code)) => return code,
        Some(Ok(events)) => Some(events),
        None => None,
    };
    if common.json {
        eprint!("{summary}");
        let mut json = report.to_json();
        if let (Some(events), Some(map)) = (events, json.as_object_mut()) {
            map.insert("events".into(), serde_json::Value::Array(events));
        }
        print_json(&json);
    } else {
        print!("{summary}");
        print_event_lines(events.as_deref());
    }
    code
}

/// The release's published events (`<state-dir>/events.jsonl`); exit code 4 if unreadable.
fn read_events(state_dir: &Path, release_id: &str) -> Result<Vec<serde_json::Value>, u8> {
    rm_local::events::read_events(state_dir, release_id).map_err(|e| {
        eprintln!("error: {e}");
        INTERNAL
    })
}

/// `--events` without `--json`: one EventBridge-shaped event per line.
fn print_event_lines(events: Option<&[serde_json::Value]>) {
    let mut out = std::io::stdout().lock();
    for e in events.unwrap_or_default() {
        let _ = writeln!(out, "{e}");
    }
}

/// `release-machine retry ID`: attempt n+1 of a FAILED or CANCELLED release of the state
/// directory runs, to its end, only the pipelines whose last run did not succeed.
pub fn retry(args: &RetryArgs) -> u8 {
    let release_id = match ReleaseId::parse(&args.release_id) {
        Ok(id) => id,
        Err(m) => {
            eprintln!("error: release id {:?} {m}", args.release_id);
            return INVALID;
        }
    };
    let sim = match read_sim(args.sim.as_deref(), None) {
        Ok(sim) => sim,
        Err(code) => return code,
    };
    let view = match load_release(&args.state_dir, &release_id) {
        Ok(Some(v)) => v,
        Ok(None) => {
            eprintln!(
                "error: no release {release_id} in {}; a local run records its releases there (--state-dir to look elsewhere)",
                args.state_dir.display()
            );
            return INVALID;
        }
        Err(e) => {
            eprintln!("error: {e}");
            return INTERNAL;
        }
    };
    let rerun: Vec<_> = view
        .pipelines
        .iter()
        .filter(|p| !p.status.is_success())
        .collect();
    let mut waves: Vec<u32> = rerun.iter().map(|p| p.wave).collect();
    waves.dedup();
    let display = Display::with(release_id.as_str(), rerun.len(), waves);
    let mut options = RunOptions::new(Vec::new(), &args.state_dir);
    options.sim = sim;
    let name = format!("release {release_id}");
    let common = Common {
        state_dir: &args.state_dir,
        json: args.json,
        events: args.events,
        fresh: false,
        manifest_name: &name,
    };
    let id = release_id.clone();
    execute(
        &release_id,
        "retry",
        display,
        options,
        &common,
        move |options| rm_local::runner::retry_release(id, options),
    )
}

/// Reads and validates a `--sim` file; warns about pipelines not in `manifest`.
fn read_sim(path: Option<&Path>, manifest: Option<(&Manifest, &str)>) -> Result<SimFile, u8> {
    let Some(path) = path else {
        return Ok(SimFile::default());
    };
    let name = path.display().to_string();
    let sim_bytes = read(path, "sim file")?;
    match SimFile::parse(&sim_bytes) {
        Ok(sim) => {
            if let Some((manifest, manifest_name)) = manifest {
                for unknown in
                    sim.unknown_pipelines(manifest.pipelines.iter().map(|p| p.name.as_str()))
                {
                    eprintln!(
                        "warning: {name}: pipeline {unknown:?} is not in {manifest_name}; its behaviour is ignored"
                    );
                }
            }
            Ok(sim)
        }
        Err(e) => {
            eprintln!("error: {name} is not a valid sim file:");
            for problem in &e.0 {
                eprintln!("  {name}: {problem}");
            }
            Err(INVALID)
        }
    }
}

/// `release-machine list`: the state directory's releases, newest first.
pub fn list(args: &ListArgs) -> u8 {
    let status = match args
        .status
        .as_deref()
        .map(|s| (s, ReleaseStatus::parse(&s.to_uppercase())))
    {
        None => None,
        Some((_, Some(st))) => Some(st),
        Some((raw, None)) => {
            eprintln!(
                "error: --status {raw:?} is not a release status; expected RUNNING, SUCCEEDED, FAILED or CANCELLED"
            );
            return INVALID;
        }
    };
    let query = ListQuery {
        status,
        limit: usize::from(args.limit),
        next: None,
    };
    let page = match rm_local::runner::list_releases(&args.state_dir, &query) {
        Ok(page) => page,
        Err(e) => {
            eprintln!("error: {e}");
            return INTERNAL;
        }
    };
    let list = ReleaseList::from(&page);
    if args.json {
        print_json(&serde_json::to_value(&list).unwrap_or_default());
        return OK;
    }
    if list.releases.is_empty() {
        eprintln!("no releases in {}", args.state_dir.display());
        return OK;
    }
    print!("{}", list_text(&list, usize::from(args.limit)));
    OK
}

/// A list of releases as `list` prints it: a table, newest first.
pub(crate) fn list_text(list: &ReleaseList, limit: usize) -> String {
    let width = list
        .releases
        .iter()
        .map(|r| r.release_id.len())
        .max()
        .unwrap_or(0)
        .max(7);
    let mut out = format!(
        "{:<width$}  {:<9}  {:>7}  {:<20}  CAUSE\n",
        "RELEASE", "STATUS", "ATTEMPT", "REQUESTED"
    );
    for r in &list.releases {
        out.push_str(&format!(
            "{:<width$}  {:<9}  {:>7}  {:<20}  {}\n",
            r.release_id,
            r.status.as_str(),
            r.attempt,
            rfc3339(r.requested_at),
            r.cause.as_deref().unwrap_or("-"),
        ));
    }
    if list.next.is_some() {
        out.push_str(&format!("(more: --limit {})\n", limit * 2));
    }
    out
}

/// Who acts when `--by` is not given: the local requester, as a local retry names it.
fn by_or_local(by: Option<&str>) -> Result<String, u8> {
    match by.map(str::trim) {
        None => Ok(rm_core::usecases::LOCAL_REQUESTER.to_owned()),
        Some("") => {
            eprintln!("error: --by needs a name (or leave it out: local)");
            Err(INVALID)
        }
        Some(name) => Ok(name.to_owned()),
    }
}

/// The halt in words: `halted by alice since 2026-12-01T09:00:00Z: incident 4711`.
fn halt_line(halt: &rm_core::gate::Halt) -> String {
    format!(
        "halted by {} since {}: {}",
        halt.by,
        rfc3339(halt.since),
        halt.reason
    )
}

/// `release-machine halt --reason R`: sets the state directory's halt, which later local runs
/// start with; without `--reason`, prints it.
pub fn halt(args: &HaltArgs) -> u8 {
    let Some(reason) = args.reason.as_deref() else {
        let halt = match rm_local::runner::stored_halt(&args.state_dir) {
            Ok(h) => h,
            Err(e) => {
                eprintln!("error: {e}");
                return INTERNAL;
            }
        };
        if args.json {
            print_json(&rm_core::usecases::halt_view(halt.as_ref()));
        } else {
            match &halt {
                Some(h) => println!("{}", halt_line(h)),
                None => println!("not halted ({})", args.state_dir.display()),
            }
        }
        return OK;
    };
    let by = match by_or_local(args.by.as_deref()) {
        Ok(by) => by,
        Err(code) => return code,
    };
    if reason.trim().is_empty() {
        eprintln!("error: --reason needs a reason, e.g. --reason \"incident 4711\"");
        return INVALID;
    }
    let change = rm_local::runner::HaltChange::Set { reason };
    match rm_local::runner::change_halt(&args.state_dir, change, &by) {
        Ok(halt) => {
            if args.json {
                print_json(&rm_core::usecases::halt_view(halt.as_ref()));
            } else if let Some(h) = &halt {
                println!(
                    "{}\nlocal runs in {} wait for it: release-machine unhalt --state-dir {} lifts it",
                    halt_line(h),
                    args.state_dir.display(),
                    args.state_dir.display()
                );
            }
            OK
        }
        Err(rm_core::TaskError::BadInput(m)) => {
            eprintln!("error: {m}");
            INVALID
        }
        Err(e) => {
            eprintln!("error: {e}");
            INTERNAL
        }
    }
}

/// `release-machine unhalt`: lifts the state directory's halt (nothing on is not an error).
pub fn unhalt(args: &UnhaltArgs) -> u8 {
    let by = match by_or_local(args.by.as_deref()) {
        Ok(by) => by,
        Err(code) => return code,
    };
    if rm_local::runner::stored_halt(&args.state_dir).is_ok_and(|h| h.is_none()) {
        // Nothing to lift: the state directory is left as it is (not even created).
        if args.json {
            print_json(&rm_core::usecases::halt_view(None));
        } else {
            println!("not halted ({}): nothing to lift", args.state_dir.display());
        }
        return OK;
    }
    match rm_local::runner::change_halt(&args.state_dir, rm_local::runner::HaltChange::Lift, &by) {
        Ok(lifted) => {
            if args.json {
                print_json(&rm_core::usecases::halt_view(None));
            } else {
                match lifted {
                    Some(h) => println!("halt lifted by {by} (it was {})", halt_line(&h)),
                    None => println!("not halted ({}): nothing to lift", args.state_dir.display()),
                }
            }
            OK
        }
        Err(e) => {
            eprintln!("error: {e}");
            INTERNAL
        }
    }
}

pub(crate) fn clock(d: std::time::Duration) -> String {
    let s = d.as_secs();
    format!("{}:{:02}:{:02}", s / 3600, s / 60 % 60, s % 60)
}

fn summary(
    report: &RunReport,
    state_dir: &Path,
    manifest_name: &str,
    wall: std::time::Duration,
) -> String {
    let mut out = String::new();
    let id = &report.release_id;
    let state_dir = state_dir.display();
    match &report.outcome {
        RunOutcome::Duplicate { owner } => {
            let earlier = report
                .release
                .as_ref()
                .map(|v| format!(" ({}, requested {})", v.status, rfc3339(v.requested_at)))
                .unwrap_or_default();
            out.push_str(&format!(
                "release {id} was already claimed by execution {owner}{earlier} in {state_dir}; nothing was run.\n\
                 To run it again: release-machine run {manifest_name} --fresh   (forgets the earlier local run)\n\
                 \x20           or: release-machine run {manifest_name} --state-dir \"$(mktemp -d)\"\n\
                 To see it:       release-machine status {id} --state-dir {state_dir}\n"
            ));
            return out;
        }
        RunOutcome::Rejected(errors) => {
            out.push_str(&format!(
                "release {id} was rejected; nothing was recorded and the release id is not used up:\n"
            ));
            for e in errors {
                out.push_str(&format!("  {manifest_name}: {e}\n"));
            }
            return out;
        }
        RunOutcome::Error { error, cause } => {
            out.push_str(&format!(
                "release {id}: the execution failed with {error}: {cause}\n"
            ));
        }
        RunOutcome::Succeeded | RunOutcome::Failed | RunOutcome::Cancelled => {}
    }
    if let Some(view) = &report.release {
        let waves: std::collections::BTreeSet<u32> =
            view.pipelines.iter().map(|p| p.wave).collect();
        out.push_str(&format!(
            "release {id} {} after {} simulated ({} pipelines in {} waves; {} ms)\n",
            view.status,
            clock(report.simulated),
            view.pipelines.len(),
            waves.len(),
            wall.as_millis()
        ));
        if let Some(cause) = &view.cause {
            out.push_str(&format!("  cause: {cause}\n"));
        }
        out.push_str(&crate::watch::release_details(view));
    }
    out.push_str(&format!(
        "execution {}: {} state transitions, {} history events\n",
        report.execution_name,
        report.state_transitions,
        report.history.len()
    ));
    out.push_str(&format!(
        "recorded in {state_dir}: release-machine status {id} --state-dir {state_dir}\n"
    ));
    out
}

fn rfc3339(t: time::OffsetDateTime) -> String {
    t.format(&time::format_description::well_known::Rfc3339)
        .unwrap_or_else(|_| t.to_string())
}

pub fn validate(paths: &[std::path::PathBuf]) -> u8 {
    let mut code = OK;
    for path in paths {
        let name = path.display();
        let bytes = match std::fs::read(path) {
            Ok(b) => b,
            Err(e) => {
                eprintln!("{name}: cannot read: {e}");
                code = INVALID;
                continue;
            }
        };
        match Manifest::parse(&bytes) {
            Ok(m) => {
                let waves = m.waves().len();
                println!(
                    "{name}: valid (release {}, {} pipeline{} in {waves} wave{})",
                    m.release_id,
                    m.pipelines.len(),
                    if m.pipelines.len() == 1 { "" } else { "s" },
                    if waves == 1 { "" } else { "s" }
                );
            }
            Err(rejection) => {
                code = INVALID;
                for e in &rejection.0 {
                    eprintln!("{name}: {e}");
                }
            }
        }
    }
    code
}

/// A command opening `release_id` in `state_dir` first ends it FAILED (`local run
/// interrupted`) if it is RUNNING and no local run holds its lock. `Some(exit code)` if that
/// could not be checked.
pub(crate) fn end_if_interrupted(
    state_dir: &Path,
    release_id: &ReleaseId,
    command: &str,
) -> Option<u8> {
    if !state_dir.join(STORE_FILE).exists() {
        return None;
    }
    let found = SqliteStore::open(&state_dir.join(STORE_FILE))
        .map_err(|e| e.to_string())
        .and_then(|store| {
            lock::end_if_interrupted(
                &store,
                state_dir,
                release_id,
                command,
                time::OffsetDateTime::now_utc(),
            )
        });
    match found {
        Ok(Interrupted::Ended(ended)) => {
            eprintln!("{}", lock::interrupted_note(&ended, state_dir));
            None
        }
        Ok(Interrupted::No | Interrupted::Running(_)) => None,
        Err(e) => {
            eprintln!("error: {e}");
            Some(INTERNAL)
        }
    }
}

pub fn status(raw_id: &str, state_dir: &Path, json: bool, with_events: bool) -> u8 {
    let release_id = match ReleaseId::parse(raw_id) {
        Ok(id) => id,
        Err(m) => {
            eprintln!("error: release id {raw_id:?} {m}");
            return INVALID;
        }
    };
    if let Some(code) = end_if_interrupted(state_dir, &release_id, "status") {
        return code;
    }
    let view = match load_release(state_dir, &release_id) {
        Ok(Some(v)) => v,
        Ok(None) => {
            eprintln!(
                "error: no release {release_id} in {}; a local run records its releases there (--state-dir to look elsewhere)",
                state_dir.display()
            );
            return INVALID;
        }
        Err(e) => {
            eprintln!("error: {e}");
            return INTERNAL;
        }
    };
    let events = match with_events.then(|| read_events(state_dir, release_id.as_str())) {
        Some(Err(code)) => return code,
        Some(Ok(events)) => Some(events),
        None => None,
    };
    if json {
        let mut json = serde_json::to_value(&view).unwrap_or_default();
        if let (Some(events), Some(map)) = (events, json.as_object_mut()) {
            map.insert("events".into(), serde_json::Value::Array(events));
        }
        print_json(&json);
        return OK;
    }
    print!("{}", release_text(&view));
    print_event_lines(events.as_deref());
    OK
}

/// A release as `status` prints it (locally and against a stack).
pub(crate) fn release_text(view: &ReleaseView) -> String {
    let mut out = format!(
        "release {} {}\n  requested {}\n  ended     {}\n  source    {}\n  onFailure {}, maxConcurrency {}\n",
        view.release_id,
        view.status,
        rfc3339(view.requested_at),
        view.ended_at.map(rfc3339).unwrap_or_else(|| "-".into()),
        view.source,
        view.on_failure.as_str(),
        view.max_concurrency,
    );
    if let Some(cause) = &view.cause {
        out.push_str(&format!("  cause     {cause}\n"));
    }
    if let Some(waiting) = &view.waiting_for {
        out.push_str(&format!("  waiting   for {}\n", waiting.describe()));
    }
    out.push_str(&crate::watch::release_details(view));
    out
}

#[cfg(test)]
mod tests {
    use super::clock;
    use std::time::Duration;

    #[test]
    fn clock_formats_hours() {
        assert_eq!(clock(Duration::from_secs(2 * 3600 + 61)), "2:01:01");
    }
}

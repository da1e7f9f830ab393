//! The commands that have a local and a remote form: `submit`, `watch`, `status`, `list`,
//! `cancel`, `retry`, `approve`, `reject`, `halt`, `unhalt`. Against a deployed stack each is a
//! signed API call ([`crate::remote`]); against the local state directory each does what a
//! local release allows (a local release is never left RUNNING: see ARCHITECTURE.md §6a).

use crate::commands::{self, print_json, CONFLICT, INVALID, OK};
use crate::remote::{Remote, RemoteError};
use crate::watch::{Fetched, WatchOptions};
use rm_core::manifest::Manifest;
use rm_core::release::ReleaseId;
use rm_core::view::ReleaseView;
use serde_json::{json, Value};
use std::path::Path;

/// Reads and validates a manifest as `validate` does (the same messages on stderr, exit 2).
fn valid_manifest(path: &Path) -> Result<(Vec<u8>, Manifest), u8> {
    let name = path.display();
    let bytes = std::fs::read(path).map_err(|e| {
        eprintln!("{name}: cannot read: {e}");
        INVALID
    })?;
    match Manifest::parse(&bytes) {
        Ok(m) => Ok((bytes, m)),
        Err(rejection) => {
            for e in &rejection.0 {
                eprintln!("{name}: {e}");
            }
            Err(INVALID)
        }
    }
}

/// `submit MANIFEST` locally: validated, then pointed to `run` (exit 2: a local release runs
/// to its end in one command, there is nothing to submit it to).
pub fn submit_local(manifest: &Path) -> u8 {
    if let Err(code) = valid_manifest(manifest) {
        return code;
    }
    eprintln!(
        "error: submit sends a release to a deployed stack, and none is given (--api URL, --stack NAME or {}).\n\
         On this machine a release is run, in simulated time, from start to end: release-machine run {}",
        crate::remote::API_ENV,
        manifest.display()
    );
    INVALID
}

/// `submit MANIFEST` to the stack: validated here first (the same messages and exit 2 as
/// `validate`), then `POST /releases`; prints the release id and how to watch it.
pub fn submit_remote(remote: &Remote, manifest: &Path, watch: bool, json: bool) -> u8 {
    let (bytes, parsed) = match valid_manifest(manifest) {
        Ok(m) => m,
        Err(code) => return code,
    };
    let answer = match remote.submit(&bytes) {
        Ok(a) => a,
        Err(RemoteError::Invalid { message, errors }) => {
            // The stack checks what this machine cannot (the pipelines exist): same form.
            let name = manifest.display();
            eprintln!("error: {name} was refused by the stack: {message}");
            for (path, m) in errors {
                eprintln!("  {name}: {path}: {m}");
            }
            return INVALID;
        }
        Err(e) => return e.report(),
    };
    let id = answer["releaseId"]
        .as_str()
        .unwrap_or(parsed.release_id.as_str())
        .to_owned();
    if json && !watch {
        print_json(&answer);
        return OK;
    }
    eprintln!(
        "release {id} submitted{}",
        answer["executionArn"]
            .as_str()
            .map(|a| format!(" (execution {a})"))
            .unwrap_or_default()
    );
    if !watch {
        println!("{id}");
        eprintln!("watch it: release-machine watch {id} {}", remote.flag);
        return OK;
    }
    watch_remote(remote, &id, json)
}

/// `watch ID` against the stack: the view, fed `GET /releases/{id}` with backoff, until the
/// release ends; its exit code (0, 1, 5), 130 after Ctrl-C (the release goes on).
pub fn watch_remote(remote: &Remote, id: &str, json: bool) -> u8 {
    // The first answer decides whether there is anything to watch: its errors are printed as
    // every other command prints them.
    let first = match remote.release(id) {
        Ok(v) => v,
        Err(e) if e.retryable() => {
            eprintln!("warning: {e}; trying again in 2 s");
            std::thread::sleep(std::time::Duration::from_secs(2));
            match remote.release(id) {
                Ok(v) => v,
                Err(e) => return e.report(),
            }
        }
        Err(e) => return e.report(),
    };
    let mut fetch = fetcher(Some(first), || remote.release(id));
    view(id, &mut fetch, json)
}

/// Feeds the view: `first`, then `get` each time; an error the view rides out is a retry
/// with its message, others end the watch with their exit code.
fn fetcher<'a>(
    first: Option<ReleaseView>,
    get: impl Fn() -> Result<ReleaseView, RemoteError> + 'a,
) -> impl FnMut() -> Fetched + 'a {
    let mut first = first;
    move || {
        if let Some(v) = first.take() {
            return Fetched::Release(v);
        }
        match get() {
            Ok(v) => Fetched::Release(v),
            Err(e) if e.retryable() => Fetched::Retry(e.to_string()),
            Err(e) => Fetched::Fatal {
                message: e.to_string(),
                code: i32::from(e.exit_code()),
            },
        }
    }
}

/// Runs the one view on stdout (or, with `--json`, silently, then prints the last release
/// JSON); its exit code.
fn view(id: &str, fetch: &mut dyn FnMut() -> Fetched, json: bool) -> u8 {
    let code = if json {
        let mut last: Option<ReleaseView> = None;
        let mut keep = || {
            let got = fetch();
            if let Fetched::Release(v) = &got {
                last = Some(v.clone());
            }
            got
        };
        let mut options = WatchOptions::for_stdout();
        options.live = false;
        let code = crate::watch::watch(id, &mut keep, &options, &mut std::io::sink());
        if let Some(v) = &last {
            print_json(&serde_json::to_value(v).unwrap_or_default());
        }
        code
    } else {
        let options = WatchOptions::for_stdout();
        crate::watch::watch(id, fetch, &options, &mut std::io::stdout())
    };
    u8::try_from(code).unwrap_or(commands::INTERNAL)
}

/// `watch ID` locally: the state directory's release, read again until it ends (a local
/// release only runs while its `run` runs); a release that has ended prints its final state.
pub fn watch_local(raw_id: &str, state_dir: &Path, json: bool) -> u8 {
    let id = match parse_id(raw_id) {
        Ok(id) => id,
        Err(code) => return code,
    };
    // A release left RUNNING by a local run that was killed (no run holds its lock) is ended
    // FAILED first, as `status` does; one a live run holds is watched until that run ends it.
    let load = |id: &ReleaseId| -> Result<ReleaseView, RemoteError> {
        if let Some(code) = commands::end_if_interrupted(state_dir, id, "watch") {
            return Err(RemoteError::Protocol(format!(
                "cannot check whether release {id} is still being run (exit {code})"
            )));
        }
        match rm_local::runner::load_release(state_dir, id) {
            Ok(Some(v)) => Ok(v),
            Ok(None) => Err(RemoteError::NotFound(format!(
                "no release {id} in {}; a local run records its releases there (--state-dir to look elsewhere)",
                state_dir.display()
            ))),
            Err(e) => Err(RemoteError::Protocol(e)),
        }
    };
    let first = match load(&id) {
        Ok(v) => v,
        Err(e) => return e.report(),
    };
    let mut fetch = fetcher(Some(first), || load(&id));
    view(id.as_str(), &mut fetch, json)
}

/// `status ID` against the stack: the release as `status` prints it locally (exit 0).
pub fn status_remote(remote: &Remote, id: &str, json: bool) -> u8 {
    match remote.release(id) {
        Ok(view) => {
            if json {
                print_json(&serde_json::to_value(&view).unwrap_or_default());
            } else {
                print!("{}", commands::release_text(&view));
            }
            OK
        }
        Err(e) => e.report(),
    }
}

/// `list` against the stack: newest first, following the API's pages up to `limit`.
pub fn list_remote(remote: &Remote, status: Option<&str>, limit: usize, json: bool) -> u8 {
    let status = match status.map(str::to_uppercase) {
        Some(s) if rm_core::release::ReleaseStatus::parse(&s).is_none() => {
            eprintln!(
                "error: --status {s:?} is not a release status; expected RUNNING, SUCCEEDED, FAILED or CANCELLED"
            );
            return INVALID;
        }
        other => other,
    };
    let mut releases = Vec::new();
    let mut next: Option<String> = None;
    loop {
        let page_size = (limit - releases.len()).min(100);
        let page = match remote.list(status.as_deref(), page_size, next.as_deref()) {
            Ok(p) => p,
            Err(e) => return e.report(),
        };
        releases.extend(page.releases);
        next = page.next;
        if next.is_none() || releases.len() >= limit {
            break;
        }
    }
    releases.truncate(limit);
    let list = rm_core::view::ReleaseList { releases, next };
    if json {
        print_json(&serde_json::to_value(&list).unwrap_or_default());
        return OK;
    }
    if list.releases.is_empty() {
        eprintln!("no releases at {}", remote.url());
        return OK;
    }
    print!("{}", commands::list_text(&list, limit));
    OK
}

fn parse_id(raw: &str) -> Result<ReleaseId, u8> {
    ReleaseId::parse(raw).map_err(|m| {
        eprintln!("error: release id {raw:?} {m}");
        INVALID
    })
}

/// What an operator asks of a release.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    Cancel,
    Approve,
    Reject,
}

impl Action {
    fn as_str(self) -> &'static str {
        match self {
            Self::Cancel => "cancel",
            Self::Approve => "approve",
            Self::Reject => "reject",
        }
    }

    fn past(self) -> &'static str {
        match self {
            Self::Cancel => "cancelled",
            Self::Approve => "approved",
            Self::Reject => "rejected",
        }
    }

    /// The sim file's operator action that does it locally.
    fn sim_example(self, wave: Option<u32>) -> String {
        let wave = wave.unwrap_or(2);
        match self {
            Self::Cancel => {
                r#"{"atSeconds": 300, "action": "cancel", "by": "you", "reason": "why"}"#.into()
            }
            Self::Approve => {
                format!(r#"{{"atSeconds": 600, "action": "approve", "wave": {wave}, "by": "you"}}"#)
            }
            Self::Reject => format!(
                r#"{{"atSeconds": 600, "action": "reject", "wave": {wave}, "by": "you", "reason": "why"}}"#
            ),
        }
    }
}

/// `cancel`, `approve`, `reject` locally: a local release is never left RUNNING, so there is
/// nothing to act on (exit 3); the sim file's `operator` actions do it within a run. An
/// unknown release is exit 2, as for `status`.
pub fn operate_local(action: Action, raw_id: &str, wave: Option<u32>, state_dir: &Path) -> u8 {
    let id = match parse_id(raw_id) {
        Ok(id) => id,
        Err(code) => return code,
    };
    let status = match rm_local::runner::load_release(state_dir, &id) {
        Ok(Some(v)) => v.status,
        Ok(None) => {
            eprintln!(
                "error: no release {id} in {}; a local run records its releases there (--state-dir to look elsewhere)",
                state_dir.display()
            );
            return INVALID;
        }
        Err(e) => {
            eprintln!("error: {e}");
            return commands::INTERNAL;
        }
    };
    eprintln!(
        "error: release {id} is {status} in {}: a local release runs from start to end within `release-machine run`, so it cannot be {} from outside.\n\
         Script it in the run's sim file instead, in simulated time: \"operator\": [{}], then: release-machine run MANIFEST --sim SIM --fresh\n\
         (against a deployed stack: release-machine {} {id} ... --api URL)",
        state_dir.display(),
        action.past(),
        action.sim_example(wave),
        action.as_str(),
    );
    CONFLICT
}

/// `cancel`, `approve`, `reject` against the stack.
pub fn operate_remote(
    remote: &Remote,
    action: Action,
    id: &str,
    wave: Option<u32>,
    reason: Option<&str>,
    watch: bool,
    json: bool,
) -> u8 {
    let mut body = json!({});
    if let Some(w) = wave {
        body["wave"] = json!(w);
    }
    if let Some(r) = reason {
        body["reason"] = json!(r);
    }
    let answer = match remote.operate(id, action.as_str(), &body) {
        Ok(a) => a,
        Err(e) => return e.report(),
    };
    if watch {
        eprintln!("{}", operated_line(action, id, wave, &answer));
        return watch_remote(remote, id, json);
    }
    if json {
        print_json(&answer);
        return OK;
    }
    println!("{}", operated_line(action, id, wave, &answer));
    println!("watch it: release-machine watch {id} {}", remote.flag);
    OK
}

fn operated_line(action: Action, id: &str, wave: Option<u32>, answer: &Value) -> String {
    let status = answer["status"].as_str().unwrap_or("?");
    match action {
        Action::Cancel => format!(
            "release {id}: cancel requested; the running pipelines are being stopped (release {status})"
        ),
        Action::Approve => format!(
            "release {id}: wave {} approved; it starts now (release {status})",
            wave.unwrap_or_default()
        ),
        Action::Reject => format!(
            "release {id}: wave {} rejected; the release ends FAILED (release {status})",
            wave.unwrap_or_default()
        ),
    }
}

/// `retry ID` against the stack: attempt n+1 starts; with `--watch`, watched to its end.
pub fn retry_remote(remote: &Remote, id: &str, watch: bool, json: bool) -> u8 {
    let answer = match remote.operate(id, "retry", &json!({})) {
        Ok(a) => a,
        Err(e) => return e.report(),
    };
    let line = format!(
        "release {id}: attempt {} started{}",
        answer["attempt"],
        answer["executionArn"]
            .as_str()
            .map(|a| format!(" (execution {a})"))
            .unwrap_or_default()
    );
    if watch {
        eprintln!("{line}");
        return watch_remote(remote, id, json);
    }
    if json {
        print_json(&answer);
        return OK;
    }
    println!("{line}");
    println!("watch it: release-machine watch {id} {}", remote.flag);
    OK
}

/// `halt` against the stack: `PUT /halt {"reason"}`; without a reason, `GET /halt`.
pub fn halt_remote(remote: &Remote, reason: Option<&str>, json: bool) -> u8 {
    let answer = match reason {
        None => remote.halt("GET", None),
        Some(r) if r.trim().is_empty() => {
            eprintln!("error: --reason needs a reason, e.g. --reason \"incident 4711\"");
            return INVALID;
        }
        Some(r) => remote.halt("PUT", Some(&json!({"reason": r}))),
    };
    let answer = match answer {
        Ok(a) => a,
        Err(e) => return e.report(),
    };
    if json {
        print_json(&answer);
    } else if answer["on"] == json!(true) {
        println!(
            "halted by {} since {}: {}",
            answer["by"].as_str().unwrap_or("?"),
            answer["since"].as_str().unwrap_or("?"),
            answer["reason"].as_str().unwrap_or("?")
        );
        if reason.is_some() {
            println!(
                "no wave and no pipeline starts at {} until: release-machine unhalt {}",
                remote.url(),
                remote.flag
            );
        }
    } else {
        println!("not halted ({})", remote.url());
    }
    OK
}

/// `unhalt` against the stack: `DELETE /halt` (nothing on is not an error).
pub fn unhalt_remote(remote: &Remote, json: bool) -> u8 {
    let answer = match remote.halt("DELETE", None) {
        Ok(a) => a,
        Err(e) => return e.report(),
    };
    if json {
        print_json(&answer);
        return OK;
    }
    match answer.get("lifted").filter(|l| l.is_object()) {
        Some(l) => println!(
            "halt lifted (it was halted by {} since {}: {})",
            l["by"].as_str().unwrap_or("?"),
            l["since"].as_str().unwrap_or("?"),
            l["reason"].as_str().unwrap_or("?")
        ),
        None => println!("not halted ({}): nothing to lift", remote.url()),
    }
    OK
}

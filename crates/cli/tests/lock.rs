//! Issue 9, fault 11: two local runs of one release on one state directory. A running local
//! release holds a lock in the state directory: a second run, or `--fresh`, against it is
//! refused (exit 3) and touches nothing; a RUNNING release whose run was killed (its lock has
//! no holder) is ended FAILED (`local run interrupted`) by the next command that opens it.
//!
//! The runs are the built binary, killed with SIGKILL mid-run: a release of 160 pipelines in
//! 4 waves, each pipeline almost a week long in simulated time (within a release's 30 days),
//! which takes seconds of wall time per wave (a sweep every 5 simulated minutes polls 40
//! waiting pipelines), far longer than these tests need it to run.

mod common;

use common::*;
use serde_json::{json, Value};
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

const RELEASE: &str = "2026.11.22";
const PIPELINES: usize = 160;

/// The long release, and a sim that makes it long; a second sim that makes it short.
fn files(dir: &Path) -> (PathBuf, PathBuf, PathBuf) {
    let pipelines: Vec<Value> = (0..PIPELINES)
        .map(|i| json!({"name": format!("svc-{i}"), "wave": i / 40 + 1, "timeoutMinutes": 10080}))
        .collect();
    let manifest = write(
        dir,
        "release-manifest.json",
        &json!({"releaseId": RELEASE, "maxConcurrency": 40, "pipelines": pipelines}),
    );
    let long = write(
        dir,
        "long.json",
        &json!({"defaults": {"durationSeconds": 600_000}}),
    );
    let short = write(
        dir,
        "short.json",
        &json!({"defaults": {"durationSeconds": 1}}),
    );
    (manifest, long, short)
}

/// A `release-machine run` in the background, killed (SIGKILL) when dropped.
struct Background {
    child: Child,
}

impl Background {
    /// Starts `run MANIFEST --sim SIM --state-dir STATE` and waits until its execution has
    /// claimed the release (its first progress line).
    fn start(cwd: &Path, manifest: &Path, sim: &Path, state_dir: &str) -> Background {
        let mut child = Command::new(BIN)
            .args(["run", manifest.to_str().unwrap(), "--sim"])
            .arg(sim)
            .args(["--state-dir", state_dir])
            .current_dir(cwd)
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("the release-machine binary runs");
        let stderr = child.stderr.take().unwrap();
        let (tx, rx) = mpsc::channel();
        // Keeps reading, so the run never blocks on a full pipe.
        std::thread::spawn(move || {
            let mut before = Vec::new();
            for line in BufReader::new(stderr).lines() {
                let Ok(line) = line else { break };
                if line.contains("claimed it") {
                    let _ = tx.send(Ok(()));
                } else if before.len() < 20 {
                    before.push(line);
                }
            }
            let _ = tx.send(Err(before.join("\n")));
        });
        let mut run = Background { child };
        match rx.recv_timeout(Duration::from_secs(120)) {
            Ok(Ok(())) => run,
            Ok(Err(stderr)) => {
                let status = run.child.wait();
                panic!("the background run ended ({status:?}) before it claimed its release:\n{stderr}")
            }
            Err(e) => panic!("the background run never claimed its release: {e}"),
        }
    }

    fn pid(&self) -> u32 {
        self.child.id()
    }

    fn is_running(&mut self) -> bool {
        self.child.try_wait().unwrap().is_none()
    }

    fn kill(mut self) {
        self.child.kill().unwrap();
        self.child.wait().unwrap();
    }
}

impl Drop for Background {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn status_json(cwd: &Path, state_dir: &str) -> Value {
    let out = cli(
        cwd,
        &["status", RELEASE, "--state-dir", state_dir, "--json"],
    );
    assert_eq!(out.code, 0, "{}", out.stderr);
    out.json()
}

#[test]
fn a_second_run_or_fresh_of_a_running_release_is_refused_with_exit_3_and_touches_nothing() {
    let cwd = tempfile::tempdir().unwrap();
    let (manifest, long, short) = files(cwd.path());
    let manifest = manifest.to_str().unwrap();
    let mut first = Background::start(cwd.path(), Path::new(manifest), &long, "state");
    let before = status_json(cwd.path(), "state");
    assert_eq!(before["status"], "RUNNING", "{before}");

    let refused = format!(
        "error: release {RELEASE} is being run by another local run (pid {}, since ",
        first.pid()
    );
    let advice = ") in state; wait for it, or use another --state-dir";
    for args in [
        vec!["run", manifest, "--state-dir", "state"],
        vec!["run", manifest, "--state-dir", "state", "--fresh"],
        vec![
            "run",
            manifest,
            "--state-dir",
            "state",
            "--fresh",
            "--sim",
            short.to_str().unwrap(),
        ],
    ] {
        let out = cli(cwd.path(), &args);
        assert_eq!(out.code, 3, "{args:?}: {}{}", out.stdout, out.stderr);
        assert!(out.stderr.contains(&refused), "{args:?}: {}", out.stderr);
        assert!(out.stderr.contains(advice), "{args:?}: {}", out.stderr);
        assert!(out.stdout.is_empty(), "{args:?}: {}", out.stdout);
        if args.contains(&"--fresh") {
            assert!(
                out.stderr.contains(
                    "note: --fresh forgot nothing: a release cannot be forgotten while it runs"
                ),
                "{}",
                out.stderr
            );
        }
    }

    // The first run's release is untouched and still running; status did not end it either.
    assert!(first.is_running(), "the first run was not disturbed");
    let after = status_json(cwd.path(), "state");
    assert_eq!(after["status"], "RUNNING", "{after}");
    assert_eq!(after["requestedAt"], before["requestedAt"]);
    assert_eq!(after["pipelines"].as_array().unwrap().len(), PIPELINES);
    first.kill();
}

#[test]
fn a_killed_run_is_ended_failed_by_the_next_status() {
    let cwd = tempfile::tempdir().unwrap();
    let (manifest, long, _) = files(cwd.path());
    let run = Background::start(cwd.path(), &manifest, &long, "state");
    run.kill();

    let out = cli(cwd.path(), &["status", RELEASE, "--state-dir", "state"]);
    assert_eq!(out.code, 0, "{}", out.stderr);
    assert!(
        out.stdout
            .starts_with(&format!("release {RELEASE} FAILED\n")),
        "{}",
        out.stdout
    );
    assert!(
        out.stdout.contains("  cause     local run interrupted\n"),
        "{}",
        out.stdout
    );
    assert!(
        out.stderr.contains(&format!(
            "note: release {RELEASE} was RUNNING in state but no local run holds it any more (execution local-"
        )) && out
            .stderr
            .contains("was interrupted); recorded it FAILED: local run interrupted"),
        "{}",
        out.stderr
    );

    // Ended once: the next command finds a FAILED release and says nothing more.
    let again = cli(
        cwd.path(),
        &["status", RELEASE, "--state-dir", "state", "--json"],
    );
    assert_eq!(again.code, 0);
    assert!(again.stderr.is_empty(), "{}", again.stderr);
    let v = again.json();
    assert_eq!(v["status"], "FAILED");
    assert_eq!(v["cause"], "local run interrupted");
    assert!(v["endedAt"].is_string(), "{v}");
}

#[test]
fn a_killed_run_is_ended_failed_by_the_next_run_which_is_then_a_duplicate_unless_fresh() {
    let cwd = tempfile::tempdir().unwrap();
    let (manifest, long, short) = files(cwd.path());
    let manifest = manifest.to_str().unwrap();
    let run = Background::start(cwd.path(), Path::new(manifest), &long, "state");
    let owner = status_json(cwd.path(), "state");
    run.kill();

    let again = cli(cwd.path(), &["run", manifest, "--state-dir", "state"]);
    assert_eq!(again.code, 3, "{}{}", again.stdout, again.stderr);
    assert!(
        again
            .stderr
            .contains("recorded it FAILED: local run interrupted"),
        "{}",
        again.stderr
    );
    assert!(
        again.stdout.contains(&format!(
            "release {RELEASE} was already claimed by execution local-"
        )) && again.stdout.contains("(FAILED, requested"),
        "{}",
        again.stdout
    );
    let v = status_json(cwd.path(), "state");
    assert_eq!(v["status"], "FAILED");
    assert_eq!(v["cause"], "local run interrupted");
    assert_eq!(v["requestedAt"], owner["requestedAt"]);
    // The end is not before anything the run recorded (its clock is virtual, and ran ahead),
    // and nothing was recorded after it: the pipelines in progress died with the run (NotFound),
    // and the duplicate run did not touch the release.
    let ended = v["endedAt"].as_str().unwrap();
    for p in v["pipelines"].as_array().unwrap() {
        assert!(
            ["NotStarted", "NotFound", "Succeeded"].contains(&p["status"].as_str().unwrap()),
            "{p}"
        );
        for h in p["history"].as_array().unwrap() {
            assert!(h["at"].as_str().unwrap() <= ended, "{h} after {ended}");
        }
    }

    let fresh = cli(
        cwd.path(),
        &[
            "run",
            manifest,
            "--state-dir",
            "state",
            "--fresh",
            "--sim",
            short.to_str().unwrap(),
        ],
    );
    assert_eq!(fresh.code, 0, "{}{}", fresh.stdout, fresh.stderr);
    assert!(
        fresh.stderr.contains(&format!(
            "note: --fresh: forgot the earlier local run of release {RELEASE} in state"
        )),
        "{}",
        fresh.stderr
    );
    assert_eq!(status_json(cwd.path(), "state")["status"], "SUCCEEDED");
}

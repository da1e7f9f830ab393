//! The `release-machine` binary against the stack on loopback (issue 13), as against a
//! deployed one: `--api` is an API-Gateway-shaped front ([`rm_e2e::apigw`]) that checks each
//! request's SigV4 signature and the caller's `execute-api:Invoke`, and invokes release-api
//! with the REST proxy event; behind it the real stack (moto's Step Functions running the state
//! machine, the functions under `cargo lambda watch`, the CodePipeline emulator).
//!
//! One stack for the whole file (starting one takes seconds): the scenarios that do not touch
//! what others share run at once, each with its own release ids and pipelines; the halt and
//! the retry (it changes the emulator's sim) run alone after them.

use rm_core::lifecycle::WaitingFor;
use rm_core::release::{ReleaseStatus, RunStatus};
use rm_e2e::apigw::{ApiGateway, Principal};
use rm_e2e::{repo_root, Stack, StackOptions, ACCOUNT, DEFAULT_WAIT};
use rm_local::SimFile;
use serde_json::{json, Value};
use std::path::{Path, PathBuf};
use std::sync::OnceLock;
use std::time::Instant;

const MANAGER: &str = "arn:aws:iam::123456789012:user/release-manager";
const INTERN: &str = "arn:aws:iam::123456789012:user/intern";

/// The CLI binary, built once (dev profile) for this test process.
fn cli_binary() -> PathBuf {
    static BUILT: OnceLock<Result<PathBuf, String>> = OnceLock::new();
    BUILT
        .get_or_init(|| {
            let t0 = Instant::now();
            let out = std::process::Command::new(
                std::env::var("CARGO").unwrap_or_else(|_| "cargo".into()),
            )
            .current_dir(repo_root())
            .args([
                "build",
                "--quiet",
                "-p",
                "release-machine",
                "--bin",
                "release-machine",
            ])
            .output()
            .map_err(|e| format!("cannot run cargo build: {e}"))?;
            if !out.status.success() {
                return Err(format!(
                    "cargo build -p release-machine failed:\n{}",
                    String::from_utf8_lossy(&out.stderr)
                ));
            }
            // target/debug/deps/cli_remote-<hash> → target/debug/release-machine
            let exe = std::env::current_exe().map_err(|e| e.to_string())?;
            let debug = exe
                .parent()
                .and_then(Path::parent)
                .ok_or("no target directory")?;
            let binary = debug.join(format!("release-machine{}", std::env::consts::EXE_SUFFIX));
            eprintln!("[e2e] release-machine built in {:.1?}", t0.elapsed());
            binary
                .exists()
                .then_some(binary.clone())
                .ok_or_else(|| format!("{} is missing after the build", binary.display()))
        })
        .clone()
        .unwrap_or_else(|e| panic!("{e}"))
}

/// What a run of the binary did.
#[derive(Debug)]
struct Ran {
    code: i32,
    stdout: String,
    stderr: String,
}

impl Ran {
    fn json(&self) -> Value {
        serde_json::from_str(&self.stdout)
            .unwrap_or_else(|e| panic!("stdout is not JSON ({e}):\n{self}"))
    }
}

impl std::fmt::Display for Ran {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "exit {}\n--- stdout:\n{}--- stderr:\n{}",
            self.code, self.stdout, self.stderr
        )
    }
}

/// How a scenario runs the binary: the API, the caller's keys, a scratch directory.
#[derive(Clone)]
struct Cli {
    api: String,
    dir: PathBuf,
    env: Vec<(String, String)>,
}

impl Cli {
    fn new(api: &str, dir: &Path) -> Cli {
        Cli {
            api: api.to_owned(),
            dir: dir.to_owned(),
            env: vec![
                ("AWS_ACCESS_KEY_ID".into(), "test".into()),
                ("AWS_SECRET_ACCESS_KEY".into(), "test".into()),
            ],
        }
    }

    /// The same, with other keys.
    fn as_keys(&self, access_key: &str, secret_key: &str) -> Cli {
        let mut other = self.clone();
        other.env = vec![
            ("AWS_ACCESS_KEY_ID".into(), access_key.into()),
            ("AWS_SECRET_ACCESS_KEY".into(), secret_key.into()),
        ];
        other
    }

    fn with_env(&self, name: &str, value: &str) -> Cli {
        let mut other = self.clone();
        other.env.push((name.into(), value.into()));
        other
    }

    /// `release-machine ARGS --api URL`.
    async fn run(&self, args: &[&str]) -> Ran {
        let mut all: Vec<&str> = args.to_vec();
        all.extend(["--api", self.api.as_str()]);
        self.run_bare(&all).await
    }

    /// `release-machine ARGS` (no target added).
    async fn run_bare(&self, args: &[&str]) -> Ran {
        let mut cmd = tokio::process::Command::new(cli_binary());
        cmd.args(args)
            .current_dir(&self.dir)
            .env_clear()
            .env("PATH", std::env::var("PATH").unwrap_or_default())
            .env("HOME", &self.dir)
            .env("AWS_REGION", "us-east-1")
            .env("AWS_EC2_METADATA_DISABLED", "true")
            .env("AWS_CONFIG_FILE", self.dir.join("no-aws-config"))
            .env(
                "AWS_SHARED_CREDENTIALS_FILE",
                self.dir.join("no-aws-credentials"),
            )
            .env("NO_PROXY", "127.0.0.1,localhost")
            .kill_on_drop(true);
        for (k, v) in &self.env {
            cmd.env(k, v);
        }
        let out = tokio::time::timeout(DEFAULT_WAIT, cmd.output())
            .await
            .unwrap_or_else(|_| panic!("release-machine {args:?} did not end in {DEFAULT_WAIT:?}"))
            .unwrap_or_else(|e| panic!("run release-machine: {e}"));
        Ran {
            code: out.status.code().unwrap_or(-1),
            stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
        }
    }

    /// Writes a manifest into the scratch directory; its path.
    fn manifest(&self, manifest: &Value) -> String {
        let id = manifest["releaseId"].as_str().unwrap_or("manifest");
        let path = self.dir.join(format!("{id}.json"));
        std::fs::write(&path, serde_json::to_vec_pretty(manifest).unwrap()).unwrap();
        path.display().to_string()
    }
}

fn assert_exit(ran: &Ran, code: i32, what: &str) {
    assert_eq!(ran.code, code, "{what}:\n{ran}");
}

/// The sim: each scenario's pipelines behave as it needs (real seconds).
fn sim() -> Value {
    json!({
        "defaults": {"durationSeconds": 2, "stopSeconds": 1},
        "pipelines": {
            "fail-flaky": {"outcome": "Failed", "durationSeconds": 2, "failedStage": "Deploy"},
            "cancel-slow": {"durationSeconds": 600},
        }
    })
}

/// The "Step Functions Execution Status Change" EventBridge delivers to record-state when an
/// execution is stopped: moto publishes none (and its StopExecution does not end an execution
/// it runs), so the test sends it, as scenarios.rs does.
fn aborted_event(arn: &str, cause: &str) -> Value {
    let (machine, name) = arn
        .replace(":execution:", ":stateMachine:")
        .rsplit_once(':')
        .map(|(m, n)| (m.to_owned(), n.to_owned()))
        .unwrap_or_else(|| panic!("not an execution ARN: {arn}"));
    json!({
        "version": "0",
        "id": rm_testkit::unique_name("sfn-event"),
        "detail-type": "Step Functions Execution Status Change",
        "source": "aws.states",
        "account": ACCOUNT,
        "time": time::OffsetDateTime::now_utc()
            .format(&time::format_description::well_known::Rfc3339)
            .unwrap(),
        "region": "us-east-1",
        "resources": [arn],
        "detail": {
            "executionArn": arn, "stateMachineArn": machine, "name": name,
            "status": "ABORTED", "error": "ReleaseCancelled", "cause": cause,
        }
    })
}

/// submit --watch to SUCCEEDED (exit 0), the lines it prints off a terminal; status, list.
async fn succeeds(cli: &Cli) {
    let path = cli.manifest(&json!({"releaseId": "cli-ok", "pipelines": [
        {"name": "ok-first", "wave": 1}, {"name": "ok-second", "wave": 2}
    ]}));
    let ran = cli.run(&["submit", &path, "--watch"]).await;
    assert_exit(&ran, 0, "submit --watch of a release that succeeds");
    assert!(ran.stderr.contains("release cli-ok submitted"), "{ran}");
    golden_lines(&ran.stdout);

    let ran = cli.run(&["status", "cli-ok"]).await;
    assert_exit(&ran, 0, "status of a release");
    assert!(
        ran.stdout.starts_with("release cli-ok SUCCEEDED\n"),
        "{ran}"
    );
    let ran = cli.run(&["status", "cli-ok", "--json"]).await;
    assert_exit(&ran, 0, "status --json");
    let view = ran.json();
    assert_eq!(view["status"], "SUCCEEDED");
    assert_eq!(
        view["requestedBy"], MANAGER,
        "the caller's ARN from the signature"
    );

    // The same manifest again: the release id is taken (409 → exit 3).
    let ran = cli.run(&["submit", &path]).await;
    assert_exit(&ran, 3, "submit of a release id already requested");
    assert!(ran.stderr.contains("already requested"), "{ran}");
}

/// The non-terminal output of `watch` (golden lines, times masked): a line per change, in
/// order (the claim, each wave as it starts, each pipeline's changes), then the summary.
fn golden_lines(stdout: &str) {
    let masked: Vec<String> = stdout.lines().map(mask_times).collect();
    eprintln!("[e2e] watch output, times masked:\n{}", masked.join("\n"));
    assert!(
        masked.iter().all(|l| !l.contains('\u{1b}')),
        "no terminal control sequences off a terminal:\n{stdout}"
    );
    // The first snapshot is the claim (wave 1 may already run in it); every later change is a
    // line of its own.
    let expected = [
        "[<T>] release cli-ok: execution ",
        "claimed it; 2 pipelines in 2 waves, at most 10 at once",
        "[<T>] wave 1 ok-first Succeeded",
        "[<T>] wave 1 Succeeded",
        "[<T>] wave 2 (2/2) started",
        "[<T>] wave 2 ok-second Succeeded",
        "[<T>] wave 2 Succeeded",
        "[<T>] release cli-ok SUCCEEDED",
        "release cli-ok SUCCEEDED after <T> (2 pipelines in 2 waves)",
    ];
    let mut at = 0;
    for want in expected {
        let from = if want.starts_with("claimed") {
            at - 1
        } else {
            at
        };
        match masked[from..].iter().position(|l| l.contains(want)) {
            Some(i) => at = from + i + 1,
            None => panic!("{want:?} after line {at} of:\n{}", masked.join("\n")),
        }
    }
    let timed = masked.iter().filter(|l| l.starts_with("[<T>] ")).count();
    assert!(
        timed >= 4,
        "a timed line per change:\n{}",
        masked.join("\n")
    );
}

/// `[+0:00:02] x` → `[<T>] x`; `after 0:00:05` → `after <T>`.
fn mask_times(line: &str) -> String {
    let mut out = line.to_owned();
    if out.starts_with('[') {
        if let Some(end) = out.find("] ") {
            out = format!("[<T>]{}", &out[end + 1..]);
        }
    }
    if let Some(i) = out.find(" after ") {
        let rest = &out[i + 7..];
        let len = rest
            .find(|c: char| !(c.is_ascii_digit() || c == ':' || c == '+'))
            .unwrap_or(rest.len());
        out = format!("{} after <T>{}", &out[..i], &rest[len..]);
    }
    out
}

/// A failing release: submitted (its id on stdout), then watched: exit 1.
async fn fails(cli: &Cli) {
    let path = cli.manifest(&json!({"releaseId": "cli-fail", "pipelines": [
        {"name": "fail-flaky", "wave": 1}, {"name": "fail-later", "wave": 2}
    ]}));
    let ran = cli.run(&["submit", &path]).await;
    assert_exit(&ran, 0, "submit");
    assert_eq!(ran.stdout.trim(), "cli-fail", "{ran}");
    assert!(
        ran.stderr
            .contains(&format!("release-machine watch cli-fail --api {}", cli.api)),
        "where to watch it: {ran}"
    );
    let ran = cli.run(&["watch", "cli-fail"]).await;
    assert_exit(&ran, 1, "watch of a release that fails");
    // A retry of it while nothing runs is allowed; of a SUCCEEDED one not (below).
}

/// A release cancelled while its pipeline runs: `cancel --watch` ends with exit 5.
async fn cancelled(cli: &Cli, stack: &Stack) {
    let path = cli.manifest(&json!({"releaseId": "cli-cancel", "pipelines": ["cancel-slow"]}));
    let ran = cli.run(&["submit", &path, "--json"]).await;
    assert_exit(&ran, 0, "submit --json");
    let arn = ran.json()["executionArn"]
        .as_str()
        .unwrap_or_else(|| panic!("no executionArn: {ran}"))
        .to_owned();
    stack
        .wait_release("cli-cancel", DEFAULT_WAIT, "running its pipeline", |r| {
            r.runs.iter().all(|run| run.status == RunStatus::InProgress)
        })
        .await;
    let canceller = {
        let cli = cli.clone();
        tokio::spawn(async move {
            cli.run(&["cancel", "cli-cancel", "--reason", "bad canary", "--watch"])
                .await
        })
    };
    let record = stack
        .wait_release("cli-cancel", DEFAULT_WAIT, "cancel requested", |r| {
            r.release.lifecycle.cancel.is_some()
        })
        .await;
    let cause = record
        .release
        .lifecycle
        .cancel
        .as_ref()
        .map(|c| c.cause())
        .unwrap_or_default();
    assert_eq!(cause, format!("cancelled by {MANAGER}: bad canary"));
    let out = stack
        .invoke("record-state", aborted_event(&arn, &cause))
        .await
        .ok();
    assert_eq!(out["outcome"], "Reconciled", "{out}");
    let ran = canceller.await.expect("the cancel ran");
    assert_exit(&ran, 5, "cancel --watch");

    // It has ended: a second cancel is refused with the state that forbids it.
    let ran = cli
        .run(&["cancel", "cli-cancel", "--reason", "again"])
        .await;
    assert_exit(&ran, 3, "cancel of a CANCELLED release");
    assert!(ran.stderr.contains("CANCELLED"), "{ran}");
}

/// A release whose wave 2 waits for an approval: the wrong wave is refused (exit 3), the
/// right one approved, and the release SUCCEEDS.
async fn approved(cli: &Cli, stack: &Stack) {
    let path = cli.manifest(&json!({
        "releaseId": "cli-appr",
        "approvals": [2],
        "pipelines": [{"name": "appr-first", "wave": 1}, {"name": "appr-second", "wave": 2}]
    }));
    let ran = cli.run(&["submit", &path]).await;
    assert_exit(&ran, 0, "submit");
    stack
        .wait_release(
            "cli-appr",
            DEFAULT_WAIT,
            "waiting for wave 2's approval",
            |r| {
                matches!(
                    r.release.lifecycle.waiting_for,
                    Some(WaitingFor::Approval { wave: 2, .. })
                )
            },
        )
        .await;
    let ran = cli.run(&["status", "cli-appr"]).await;
    assert_exit(&ran, 0, "status of a waiting release");
    assert!(
        ran.stdout.contains("waiting   for the approval of wave 2"),
        "{ran}"
    );
    let ran = cli.run(&["approve", "cli-appr", "--wave", "1"]).await;
    assert_exit(&ran, 3, "approval of a wave that does not wait");
    let ran = cli.run(&["approve", "cli-appr", "--wave", "7"]).await;
    assert_exit(&ran, 2, "approval of a wave the release does not have");
    let ran = cli.run(&["approve", "cli-appr", "--wave", "2"]).await;
    assert_exit(&ran, 0, "approval");
    assert!(ran.stdout.contains("wave 2 approved"), "{ran}");
    let ran = cli.run(&["watch", "cli-appr", "--json"]).await;
    assert_exit(&ran, 0, "watch --json to SUCCEEDED");
    let view = ran.json();
    assert_eq!(view["status"], "SUCCEEDED");
    assert_eq!(view["approvals"][0]["by"], MANAGER, "{view}");
}

/// What a user cannot do, and is told: a wrong secret key, a caller without
/// execute-api:Invoke, an unknown release, nothing listening.
async fn refused(cli: &Cli) {
    let ran = cli
        .as_keys("test", "not-the-secret")
        .run(&["status", "cli-x"])
        .await;
    assert_exit(&ran, 6, "a bad signature");
    assert!(ran.stderr.contains("signature"), "{ran}");
    assert!(
        ran.stderr.contains("access key test"),
        "the access key is named: {ran}"
    );
    assert!(ran.stderr.contains(&cli.api), "the API is named: {ran}");

    let ran = cli
        .as_keys("AKIAINTERN", "intern-secret")
        .run(&["list"])
        .await;
    assert_exit(&ran, 6, "a caller without execute-api:Invoke");
    assert!(ran.stderr.contains(INTERN), "the principal is named: {ran}");
    assert!(
        ran.stderr
            .contains("execute-api:Invoke on resource: arn:aws:execute-api:us-east-1:"),
        "the resource is named: {ran}"
    );
    assert!(ran.stderr.contains(&cli.api), "the API is named: {ran}");

    let ran = cli.as_keys("AKIAUNKNOWN", "x").run(&["list"]).await;
    assert_exit(&ran, 6, "an access key the API does not know");

    let ran = cli.run(&["status", "no-such-release"]).await;
    assert_exit(&ran, 2, "status of an unknown release");
    assert!(ran.stderr.contains("not found"), "{ran}");
    let ran = cli.run(&["watch", "no-such-release"]).await;
    assert_exit(&ran, 2, "watch of an unknown release");
    let ran = cli
        .run(&["approve", "no-such-release", "--wave", "2"])
        .await;
    assert_exit(&ran, 2, "approve of an unknown release");

    // The manifest is checked here first, with validate's messages.
    let path = cli.dir.join("bad.json");
    std::fs::write(&path, r#"{"releaseId": "", "pipelines": []}"#).unwrap();
    let bad = path.display().to_string();
    let ran = cli.run(&["submit", &bad]).await;
    assert_exit(&ran, 2, "submit of an invalid manifest");
    let validate = cli.run_bare(&["validate", &bad]).await;
    assert_eq!(ran.stderr, validate.stderr, "the same messages as validate");

    // Nothing listening there: the URL tried.
    let nothing = Cli {
        api: "http://127.0.0.1:9/Prod".into(),
        ..cli.clone()
    };
    let ran = nothing.run(&["status", "cli-ok"]).await;
    assert_exit(&ran, 6, "an API that cannot be reached");
    assert!(
        ran.stderr
            .contains("http://127.0.0.1:9/Prod/releases/cli-ok"),
        "{ran}"
    );
    // A stage URL without the stage: API Gateway's "Missing Authentication Token".
    let stageless = Cli {
        api: cli.api.trim_end_matches("/Prod").into(),
        ..cli.clone()
    };
    let ran = stageless.run(&["list"]).await;
    assert_exit(&ran, 6, "a URL without the stage");
    assert!(ran.stderr.contains("/Prod"), "{ran}");
}

/// `halt`, its state, `unhalt`: through PUT, GET and DELETE /halt, the caller as `by`.
async fn halts(cli: &Cli) {
    let ran = cli
        .run(&["halt", "--reason", "incident 4711", "--json"])
        .await;
    assert_exit(&ran, 0, "halt");
    let halt = ran.json();
    assert_eq!(halt["on"], true, "{halt}");
    assert_eq!(halt["by"], MANAGER, "{halt}");
    let ran = cli.run(&["halt"]).await;
    assert_exit(&ran, 0, "halt without a reason prints it");
    assert!(ran.stdout.contains("incident 4711"), "{ran}");
    let ran = cli.run(&["unhalt"]).await;
    assert_exit(&ran, 0, "unhalt");
    assert!(ran.stdout.contains("halt lifted"), "{ran}");
    let ran = cli.run(&["halt", "--json"]).await;
    assert_eq!(ran.json()["on"], false, "{ran}");
}

/// `retry` of the FAILED release, the pipelines now succeeding: attempt 2 SUCCEEDS (exit 0);
/// a retry of a SUCCEEDED release is refused (exit 3).
async fn retried(cli: &Cli, stack: &Stack) {
    stack.emulator.load_sim(
        SimFile::from_value(&json!({"defaults": {"durationSeconds": 1, "stopSeconds": 1}}))
            .expect("a valid sim"),
    );
    let ran = cli.run(&["retry", "cli-fail", "--watch"]).await;
    assert_exit(&ran, 0, "retry --watch");
    assert!(ran.stderr.contains("attempt 2 started"), "{ran}");
    let view = stack.release_view("cli-fail").await.expect("the release");
    assert_eq!(view.status, ReleaseStatus::Succeeded);
    assert_eq!(view.attempt, 2);
    assert_eq!(view.attempts[1].requested_by.as_deref(), Some(MANAGER));
    let ran = cli.run(&["retry", "cli-fail"]).await;
    assert_exit(&ran, 3, "retry of a SUCCEEDED release");
}

/// `list`, newest first, filtered by status.
async fn lists(cli: &Cli) {
    let ran = cli.run(&["list", "--json"]).await;
    assert_exit(&ran, 0, "list --json");
    let ids: Vec<String> = ran.json()["releases"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["releaseId"].as_str().unwrap_or_default().to_owned())
        .collect();
    for id in ["cli-ok", "cli-fail", "cli-cancel", "cli-appr"] {
        assert!(ids.iter().any(|i| i == id), "{id} in {ids:?}");
    }
    let ran = cli.run(&["list", "--status", "cancelled"]).await;
    assert_exit(&ran, 0, "list --status");
    assert!(ran.stdout.contains("cli-cancel"), "{ran}");
    assert!(!ran.stdout.contains("cli-ok "), "{ran}");
    let ran = cli.run(&["list", "--limit", "1", "--json"]).await;
    assert_eq!(
        ran.json()["releases"].as_array().map(Vec::len),
        Some(1),
        "{ran}"
    );
}

/// `timeline ID -o FILE`: the stack draws the release (`GET /releases/{id}/timeline.svg`,
/// through the signed front), the picture of the release JSON `status --json` prints; an
/// unknown release is exit 2, and nothing is written.
async fn drawn(cli: &Cli) {
    let file = cli.dir.join("cli-ok.svg");
    let path = file.display().to_string();
    let ran = cli.run(&["timeline", "cli-ok", "-o", &path]).await;
    assert_exit(&ran, 0, "timeline of a release");
    assert!(ran.stderr.contains(&format!("wrote {path}")), "{ran}");
    let svg = std::fs::read_to_string(&file).unwrap_or_else(|e| panic!("{path}: {e}\n{ran}"));
    let document = svg.trim();
    assert!(
        (document.starts_with("<svg") || document.starts_with("<?xml"))
            && document.ends_with("</svg>"),
        "an SVG document:\n{svg}"
    );
    let title = svg
        .split_once("<title>")
        .and_then(|(_, rest)| rest.split_once("</title>"))
        .map(|(title, _)| title)
        .unwrap_or_else(|| panic!("no <title>:\n{svg}"));
    assert!(title.contains("cli-ok"), "{title}");
    // The same picture as the renderer draws of the release JSON GET /releases/{id} answers.
    let ran = cli.run(&["status", "cli-ok", "--json"]).await;
    assert_exit(&ran, 0, "status --json");
    let expected = rm_core::view::timeline::render(&ran.json()).expect("the release draws");
    assert_eq!(svg, expected, "the stack's picture of the release");

    // To stdout without -o.
    let ran = cli.run(&["timeline", "cli-ok"]).await;
    assert_exit(&ran, 0, "timeline to stdout");
    assert_eq!(ran.stdout, svg);

    let missing = cli.dir.join("missing.svg");
    let ran = cli
        .run(&[
            "timeline",
            "no-such-release",
            "-o",
            &missing.display().to_string(),
        ])
        .await;
    assert_exit(&ran, 2, "timeline of an unknown release");
    assert!(ran.stderr.contains("not found"), "{ran}");
    assert!(!missing.exists(), "nothing written for an unknown release");
}

/// `plan --api`: the pipelines are read from CodePipeline (here the emulator) with the
/// caller's credentials, not through the API: durations are the medians of the executions the
/// releases above ran; a variable the pipeline does not declare is a problem at its path
/// (exit 2); nothing is recorded. Then `skipUnchanged` on the real stack: a second release
/// pinned to what a pipeline last ran skips it — in its plan and in its run, by the Lambdas.
async fn planned(cli: &Cli, stack: &Stack) {
    let cp = cli.with_env("AWS_ENDPOINT_URL_CODEPIPELINE", &stack.emulator.url());
    let path = cp.manifest(&json!({"releaseId": "cli-plan", "pipelines": [
        {"name": "ok-first", "wave": 1}, {"name": "ok-second", "wave": 2}]}));
    let ran = cp.run(&["plan", &path, "--json"]).await;
    assert_exit(&ran, 0, "plan against the stack");
    let plan = ran.json();
    assert_eq!(plan["source"], "aws", "{plan}");
    assert_eq!(plan["ok"], true);
    assert_eq!(plan["predictedStatus"], "SUCCEEDED", "{plan}");
    let first = &plan["pipelines"][0];
    assert!(
        first["durationSource"]
            .as_str()
            .is_some_and(|s| s.starts_with("median of its last")),
        "ok-first ran in cli-ok: {plan}"
    );
    let seconds = first["expectedDurationSeconds"].as_u64().unwrap_or(0);
    assert!((1..=10).contains(&seconds), "the sim's 2 s: {plan}");
    assert!(
        plan["cost"]["historyEvents"].as_u64().unwrap_or(0) > 0,
        "{plan}"
    );
    let ran = cli.run(&["status", "cli-plan"]).await;
    assert_exit(&ran, 2, "a planned release is not recorded");
    let ran = cp.run(&["plan", &path]).await;
    assert_exit(&ran, 0, "the text plan");
    assert!(ran.stdout.contains("Will it start?  yes"), "{ran}");

    let bad = cp.manifest(&json!({"releaseId": "cli-plan-bad", "pipelines": [
        {"name": "ok-first", "variables": {"UNDECLARED": "1"}}]}));
    let ran = cp.run(&["plan", &bad]).await;
    assert_exit(
        &ran,
        2,
        "a plan with a variable the pipeline does not declare",
    );
    assert!(
        ran.stdout.contains("$.pipelines[0].variables.UNDECLARED"),
        "{ran}"
    );

    let pinned = |id: &str| {
        cp.manifest(
            &json!({"releaseId": id, "skipUnchanged": true, "pipelines": [
            {"name": "skip-me", "sourceRevisions": [{"actionName": "Source",
             "revisionType": "S3_OBJECT_VERSION_ID", "revisionValue": "v7"}]}]}),
        )
    };
    let first = pinned("cli-skip-1");
    let ran = cp.run(&["submit", &first, "--watch"]).await;
    assert_exit(&ran, 0, "the first pinned release runs the pipeline");
    let ran = cli.run(&["status", "cli-skip-1", "--json"]).await;
    let ran_first = ran.json();
    assert_eq!(
        ran_first["pipelines"][0]["status"], "Succeeded",
        "{ran_first}"
    );
    let execution = ran_first["pipelines"][0]["executionId"].clone();

    let second = pinned("cli-skip-2");
    let ran = cp.run(&["plan", &second, "--json"]).await;
    assert_exit(&ran, 0, "the plan of the second pinned release");
    let plan = ran.json();
    assert_eq!(plan["pipelines"][0]["change"], "unchanged", "{plan}");
    assert_eq!(plan["pipelines"][0]["skipped"], true);
    assert_eq!(plan["pipelines"][0]["matchedExecutionId"], execution);
    let ran = cp.run(&["submit", &second, "--watch"]).await;
    assert_exit(&ran, 0, "the second pinned release skips the pipeline");
    let view = cli.run(&["status", "cli-skip-2", "--json"]).await.json();
    assert_eq!(view["status"], "SUCCEEDED", "{view}");
    assert_eq!(view["pipelines"][0]["status"], "Skipped", "{view}");
    assert_eq!(view["pipelines"][0]["executionId"], execution);
}

/// `--stack NAME`: the API URL from a CloudFormation stack's ReleaseApiUrl output (moto's
/// CloudFormation); a stack without that output, and one that does not exist: exit 6.
async fn by_stack(cli: &Cli, stack: &Stack, api_url: &str) {
    let with_output = rm_testkit::unique_name("rm-cli");
    let without_output = rm_testkit::unique_name("rm-other");
    create_cfn_stack(stack, &with_output, Some(api_url)).await;
    create_cfn_stack(stack, &without_output, None).await;
    let cfn = cli.with_env("AWS_ENDPOINT_URL_CLOUDFORMATION", &stack.moto_url);
    let ran = cfn
        .run_bare(&["status", "cli-ok", "--stack", &with_output])
        .await;
    assert_exit(&ran, 0, "status --stack");
    assert!(ran.stdout.starts_with("release cli-ok SUCCEEDED"), "{ran}");
    let ran = cfn.run_bare(&["list", "--stack", &without_output]).await;
    assert_exit(&ran, 6, "a stack without ReleaseApiUrl");
    assert!(ran.stderr.contains("has no ReleaseApiUrl output"), "{ran}");
    let ran = cfn.run_bare(&["list", "--stack", "no-such-stack"]).await;
    assert_exit(&ran, 6, "a stack that does not exist");
    assert!(ran.stderr.contains("no-such-stack"), "{ran}");
}

/// CreateStack in moto (the Query API; moto does not check signatures), one queue, and the
/// `ReleaseApiUrl` output when given.
async fn create_cfn_stack(stack: &Stack, name: &str, api_url: Option<&str>) {
    let mut template = json!({
        "Resources": {"Queue": {"Type": "AWS::SQS::Queue", "Properties": {"QueueName": name}}},
    });
    if let Some(url) = api_url {
        template["Outputs"] = json!({"ReleaseApiUrl": {"Value": url}});
    } else {
        template["Outputs"] = json!({"QueueUrl": {"Value": {"Ref": "Queue"}}});
    }
    let body = format!(
        "Action=CreateStack&Version=2010-05-15&StackName={}&TemplateBody={}",
        rm_e2e::urlencode(name),
        rm_e2e::urlencode(&template.to_string())
    );
    let response = reqwest::Client::new()
        .post(format!("{}/", stack.moto_url))
        .header("content-type", "application/x-www-form-urlencoded")
        .header(
            "authorization",
            "AWS4-HMAC-SHA256 Credential=test/20260101/us-east-1/cloudformation/aws4_request, SignedHeaders=host, Signature=0",
        )
        .body(body)
        .send()
        .await
        .unwrap_or_else(|e| panic!("CreateStack {name}: {e}"));
    let status = response.status();
    let text = response.text().await.unwrap_or_default();
    assert!(status.is_success(), "CreateStack {name}: {status}: {text}");
}

#[test]
fn the_cli_drives_the_stack_through_its_api() {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(4)
        .enable_all()
        .build()
        .expect("a runtime");
    runtime.block_on(async {
        let t0 = Instant::now();
        let binary = tokio::task::spawn_blocking(cli_binary);
        let stack = Stack::start(StackOptions {
            sim: sim(),
            concurrency: 4,
            ..StackOptions::default()
        })
        .await;
        stack.warm_up().await;
        binary.await.expect("the CLI builds");
        let gateway = ApiGateway::start(
            &stack.router_url,
            vec![
                Principal::new("test", "test", MANAGER, true),
                Principal::new("AKIAINTERN", "intern-secret", INTERN, false),
            ],
        )
        .await;
        let scratch = std::env::temp_dir().join(rm_testkit::unique_name("cli-remote"));
        std::fs::create_dir_all(&scratch).unwrap();
        let cli = Cli::new(&gateway.url, &scratch);
        let started = t0.elapsed();

        let t1 = Instant::now();
        // The halt holds every release: alone, first.
        halts(&cli).await;
        tokio::join!(
            succeeds(&cli),
            fails(&cli),
            cancelled(&cli, &stack),
            approved(&cli, &stack),
            refused(&cli),
        );
        let concurrent = t1.elapsed();
        // Reads the executions the releases above ran: before the retry replaces the sim.
        planned(&cli, &stack).await;
        // The retry changes the emulator's sim: alone, after the others.
        retried(&cli, &stack).await;
        lists(&cli).await;
        drawn(&cli).await;
        by_stack(&cli, &stack, &gateway.url).await;
        rm_e2e::report(&json!({
            "cli_remote": {
                "stack_start_ms": started.as_millis(),
                "scenarios_ms": t1.elapsed().as_millis(),
                "concurrent_ms": concurrent.as_millis(),
                "requests": gateway.log().len(),
            }
        }));
        eprintln!(
            "[e2e] cli_remote: stack up in {started:.1?}, scenarios in {:.1?} ({} API requests)",
            t1.elapsed(),
            gateway.log().len()
        );
        let _ = std::fs::remove_dir_all(&scratch);
    });
}

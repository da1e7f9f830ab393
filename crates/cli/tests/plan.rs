//! Issue 14 through the binary: `release-machine plan` answers will it start, what changes,
//! how long and what it costs, without starting anything; `skipUnchanged` in the real run.

mod common;

use common::{cli, pipeline_json as pipeline, wave_json as wave, write};
use serde_json::{json, Value};
use std::path::Path;

const START: &str = "2026-03-02T09:00:00Z";

fn plan(dir: &Path, manifest: &Value, sim: &Value) -> common::Output {
    let m = write(dir, "manifest.json", manifest);
    let s = write(dir, "sim.json", sim);
    cli(
        dir,
        &[
            "plan",
            m.to_str().unwrap(),
            "--sim",
            s.to_str().unwrap(),
            "--json",
        ],
    )
}

fn run(dir: &Path, manifest: &Value, sim: &Value) -> common::Output {
    let m = write(dir, "manifest.json", manifest);
    let s = write(dir, "sim.json", sim);
    let state = dir.join("state");
    cli(
        dir,
        &[
            "run",
            m.to_str().unwrap(),
            "--sim",
            s.to_str().unwrap(),
            "--state-dir",
            state.to_str().unwrap(),
            "--json",
        ],
    )
}

/// Three waves, maxConcurrency 2 over five pipelines of different lengths, a bake after every
/// wave, a scripted approval of wave 2 (at 1200 s, after wave 1's bake) and an alarm that
/// holds wave 2's gate from then until 1234 s.
fn busy_release() -> (Value, Value) {
    let manifest = json!({"releaseId": "r-plan", "maxConcurrency": 2, "approvals": [2],
        "gates": {"alarmNames": ["prod-5xx"], "bakeMinutes": 5},
        "pipelines": [
            {"name": "a", "wave": 1}, {"name": "b", "wave": 1}, {"name": "c", "wave": 1},
            {"name": "d", "wave": 1}, {"name": "e", "wave": 1},
            {"name": "f", "wave": 2}, {"name": "g", "wave": 3}]});
    let sim = json!({"startAt": START,
        "pipelines": {"a": {"durationSeconds": 400}, "b": {"durationSeconds": 100},
            "c": {"durationSeconds": 250}, "d": {"durationSeconds": 90},
            "e": {"durationSeconds": 333}, "f": {"durationSeconds": 61}, "g": {"durationSeconds": 7}},
        "alarms": {"prod-5xx": [{"atSeconds": 0, "state": "OK"},
            {"atSeconds": 1100, "state": "ALARM"}, {"atSeconds": 1234, "state": "OK"}]},
        "operator": [{"atSeconds": 1200, "action": "approve", "wave": 2, "by": "alice"}]});
    (manifest, sim)
}

#[test]
fn the_plan_predicts_the_simulated_end_of_run_to_the_second() {
    let dir = tempfile::tempdir().unwrap();
    let (manifest, sim) = busy_release();
    let planned = plan(dir.path(), &manifest, &sim);
    assert_eq!(planned.code, 0, "{}", planned.stderr);
    let p = planned.json();
    let ran = run(dir.path(), &manifest, &sim);
    assert_eq!(ran.code, 0, "{}", ran.stderr);
    let r = ran.json();
    assert_eq!(r["status"], "SUCCEEDED");
    assert_eq!(p["predictedStatus"], "SUCCEEDED");
    assert_eq!(p["predictedStart"], r["requestedAt"]);
    assert_eq!(p["predictedEnd"], r["endedAt"], "plan {p}\nrun {r}");
    for n in 1..=3 {
        assert_eq!(
            wave(&p, n)["predictedStart"],
            wave(&r, n)["startedAt"],
            "wave {n}"
        );
        assert_eq!(
            wave(&p, n)["predictedEnd"],
            wave(&r, n)["endedAt"],
            "wave {n}"
        );
    }
    for name in ["a", "b", "c", "d", "e", "f", "g"] {
        assert_eq!(
            pipeline(&p, name)["predictedStart"],
            pipeline(&r, name)["startedAt"]
        );
        assert_eq!(
            pipeline(&p, name)["predictedEnd"],
            pipeline(&r, name)["endedAt"]
        );
    }
    // Wave 1 with two at a time: a (400 s) then ... the last to end sets the wave's end.
    let critical = wave(&p, 1)["criticalPath"].as_array().unwrap().clone();
    assert_eq!(critical.len(), 1, "{p}");
    assert_eq!(
        pipeline(&p, critical[0].as_str().unwrap())["critical"],
        true
    );
    assert_eq!(pipeline(&p, "a")["expectedDurationSeconds"], 400);
    // The waits are in the plan: the approval, the gate on the alarm, the bakes.
    let kinds: Vec<String> = (1..=3)
        .flat_map(|n| wave(&p, n)["waits"].as_array().unwrap().clone())
        .map(|w| w["kind"].as_str().unwrap().to_owned())
        .collect();
    for kind in ["approval", "gate", "bake"] {
        assert!(kinds.iter().any(|k| k == kind), "{kind} in {kinds:?}");
    }
    // What it costs is the run's own.
    assert_eq!(p["cost"]["stateTransitions"], r["stateTransitions"]);
    assert_eq!(p["cost"]["historyEvents"], r["historyEvents"]);
    assert_eq!(p["cost"]["historyEventLimit"], 25000);
    assert!(p["cost"]["codePipelineCalls"].as_u64().unwrap() >= 7, "{p}");
    assert_eq!(
        p["cost"]["codePipelineCallsByOperation"]["StartPipelineExecution"],
        7
    );
    // The simulated release is in the plan, marked planned: what timeline --plan draws.
    assert_eq!(p["release"]["planned"], true);
    assert_eq!(p["release"]["releaseId"], "r-plan");
}

#[test]
fn the_plan_starts_nothing_and_leaves_no_state() {
    let dir = tempfile::tempdir().unwrap();
    let (manifest, sim) = busy_release();
    let out = plan(dir.path(), &manifest, &sim);
    assert_eq!(out.code, 0, "{}", out.stderr);
    assert!(
        !dir.path().join(".release-machine").exists(),
        "plan wrote a state directory"
    );
    let list = cli(dir.path(), &["list", "--json"]);
    assert!(!list.stdout.contains("r-plan"), "{}", list.stdout);
}

#[test]
fn an_approval_nobody_scripted_is_assumed_given_when_asked() {
    let dir = tempfile::tempdir().unwrap();
    let manifest = json!({"releaseId": "r-approve", "approvals": [2, 3],
        "pipelines": ["a", {"name": "b", "wave": 2}, {"name": "c", "wave": 3}]});
    let sim = json!({"startAt": START});
    let out = plan(dir.path(), &manifest, &sim);
    assert_eq!(out.code, 0, "{}", out.stderr);
    let p = out.json();
    assert_eq!(p["predictedStatus"], "SUCCEEDED", "{p}");
    // Three waves of 180 s, each approval given within a second of being asked for.
    let seconds = p["predictedDurationSeconds"].as_u64().unwrap();
    assert!((540..=542).contains(&seconds), "{p}");
    assert_eq!(wave(&p, 2)["waits"][0]["kind"], "approval");
    assert!(
        wave(&p, 2)["waits"][0]["seconds"].as_u64().unwrap() <= 1,
        "{p}"
    );
    let assumed = p["assumptions"].to_string();
    assert!(
        assumed.contains("waves 2, 3 approved as soon as asked"),
        "{assumed}"
    );
}

#[test]
fn every_reason_it_would_not_start_is_reported_at_its_path() {
    let dir = tempfile::tempdir().unwrap();
    let manifest = json!({"releaseId": "r-bad", "pipelines": [
        "ok",
        {"name": "gone"},
        {"name": "old", "variables": {"ENV": "prod"}},
        {"name": "v2", "variables": {"ENV": "prod", "TYPO": "x"},
         "sourceRevisions": [
            {"actionName": "Image", "revisionType": "COMMIT_ID", "revisionValue": "abc"},
            {"actionName": "Bundle", "revisionType": "S3_OBJECT_KEY", "revisionValue": "b.zip"},
            {"actionName": "Nope", "revisionType": "COMMIT_ID", "revisionValue": "abc"}]}]});
    let sim = json!({"pipelines": {
        "gone": {"exists": false},
        "old": {"pipelineType": "V1"},
        "v2": {"variables": ["ENV"], "sourceActions": [
            {"name": "Image", "provider": "ECR"},
            {"name": "Bundle", "provider": "S3", "configuration": {"S3Bucket": "b"}}]}}});
    let m = write(dir.path(), "manifest.json", &manifest);
    let s = write(dir.path(), "sim.json", &sim);
    let out = cli(
        dir.path(),
        &["plan", m.to_str().unwrap(), "--sim", s.to_str().unwrap()],
    );
    assert_eq!(out.code, 2, "{}\n{}", out.stdout, out.stderr);
    for path in [
        "$.pipelines[1].name",
        "$.pipelines[2].variables",
        "$.pipelines[3].variables.TYPO",
        "$.pipelines[3].sourceRevisions[0].revisionType",
        "$.pipelines[3].sourceRevisions[1].revisionType",
        "$.pipelines[3].sourceRevisions[2].actionName",
    ] {
        assert!(out.stdout.contains(path), "{path} in\n{}", out.stdout);
    }
    assert!(
        out.stdout.contains("Will it start?  no: 6 problems"),
        "{}",
        out.stdout
    );
    let json_out = plan(dir.path(), &manifest, &sim);
    assert_eq!(json_out.code, 2);
    let p = json_out.json();
    assert_eq!(p["ok"], false);
    assert_eq!(p["problems"].as_array().unwrap().len(), 6);
    assert_eq!(p["release"], Value::Null);
}

#[test]
fn an_invalid_manifest_or_sim_file_is_exit_2() {
    let dir = tempfile::tempdir().unwrap();
    let bad = json!({"releaseId": "r", "pipelines": [], "skipUnchanged": "yes"});
    let out = plan(dir.path(), &bad, &json!({}));
    assert_eq!(out.code, 2);
    assert!(out.stderr.contains("$.skipUnchanged"), "{}", out.stderr);
    let out = plan(
        dir.path(),
        &json!({"releaseId": "r", "pipelines": ["a"]}),
        &json!({"pipelines": {"a": {"lastRevisions": 3}}}),
    );
    assert_eq!(out.code, 2);
    assert!(out.stderr.contains("lastRevisions"), "{}", out.stderr);
}

fn pinned(skip: bool) -> Value {
    json!({"releaseId": "r-skip", "skipUnchanged": skip, "pipelines": [
        {"name": "api", "sourceRevisions": [
            {"actionName": "Source", "revisionType": "COMMIT_ID", "revisionValue": "abc123"}],
         "variables": {"ENV": "prod"}},
        {"name": "web", "sourceRevisions": [
            {"actionName": "Source", "revisionType": "COMMIT_ID", "revisionValue": "new456"}]},
        {"name": "db", "wave": 2}]})
}

fn last_ran() -> Value {
    json!({"startAt": START, "pipelines": {
        "api": {"lastRevisions": {"Source": "abc123"}, "lastVariables": {"ENV": "prod"}},
        "web": {"lastRevisions": {"Source": "old000"}}}})
}

#[test]
fn skip_unchanged_skips_in_the_plan_and_in_the_run_alike() {
    let dir = tempfile::tempdir().unwrap();
    let p = plan(dir.path(), &pinned(true), &last_ran());
    assert_eq!(p.code, 0, "{}", p.stderr);
    let p = p.json();
    assert_eq!(pipeline(&p, "api")["change"], "unchanged");
    assert_eq!(pipeline(&p, "api")["skipped"], true);
    assert_eq!(pipeline(&p, "api")["matchedExecutionId"], "sim-last-api");
    assert_eq!(pipeline(&p, "web")["change"], "changes");
    assert!(
        pipeline(&p, "web")["reason"]
            .as_str()
            .unwrap()
            .contains("old000"),
        "{p}"
    );
    assert_eq!(pipeline(&p, "db")["change"], "changes");

    let ran = run(dir.path(), &pinned(true), &last_ran());
    assert_eq!(ran.code, 0, "{}", ran.stderr);
    let r = ran.json();
    assert_eq!(r["status"], "SUCCEEDED");
    let api = pipeline(&r, "api");
    assert_eq!(api["status"], "Skipped", "{r}");
    assert_eq!(api["executionId"], "sim-last-api");
    assert_eq!(api["startedAt"], Value::Null);
    assert_eq!(api["history"][0]["status"], "Skipped");
    assert_eq!(pipeline(&r, "web")["status"], "Succeeded");
    assert_eq!(p["predictedEnd"], r["endedAt"]);
    assert_eq!(
        p["cost"]["codePipelineCallsByOperation"]["StartPipelineExecution"],
        2
    );
}

#[test]
fn without_skip_unchanged_an_unchanged_pipeline_still_runs() {
    let dir = tempfile::tempdir().unwrap();
    let p = plan(dir.path(), &pinned(false), &last_ran()).json();
    assert_eq!(pipeline(&p, "api")["change"], "unchanged");
    assert_eq!(pipeline(&p, "api")["skipped"], false);
    let r = run(dir.path(), &pinned(false), &last_ran()).json();
    assert_eq!(pipeline(&r, "api")["status"], "Succeeded");
    // Other variables: it changes, and runs.
    let mut other = last_ran();
    other["pipelines"]["api"]["lastVariables"] = json!({"ENV": "test"});
    let p = plan(dir.path(), &pinned(true), &other).json();
    assert_eq!(pipeline(&p, "api")["change"], "changes");
    let r = run(dir.path(), &pinned(true), &other).json();
    assert_eq!(pipeline(&r, "api")["status"], "Succeeded");
}

#[test]
fn the_text_plan_answers_the_four_questions() {
    let dir = tempfile::tempdir().unwrap();
    let (manifest, sim) = busy_release();
    let m = write(dir.path(), "manifest.json", &manifest);
    let s = write(dir.path(), "sim.json", &sim);
    let out = cli(
        dir.path(),
        &["plan", m.to_str().unwrap(), "--sim", s.to_str().unwrap()],
    );
    assert_eq!(out.code, 0, "{}", out.stderr);
    for q in [
        "Will it start?  yes",
        "What changes?",
        "How long?",
        "What will it cost?",
        "critical path:",
    ] {
        assert!(out.stdout.contains(q), "{q} in\n{}", out.stdout);
    }
}

/// The README's plan is the binary's, word for word.
#[test]
fn the_readme_shows_the_plan_the_command_prints() {
    let root = common::repo_root();
    let readme = std::fs::read_to_string(root.join("README.md")).unwrap();
    let command =
        "$ release-machine plan events/release-manifest.json --sim docs/sample-plan.sim.json\n";
    let shown = readme
        .split_once(command)
        .and_then(|(_, rest)| rest.split_once("```"))
        .map(|(block, _)| block)
        .expect("the README shows a plan");
    let out = cli(
        &root,
        &[
            "plan",
            "events/release-manifest.json",
            "--sim",
            "docs/sample-plan.sim.json",
        ],
    );
    assert_eq!(out.code, 0, "{}", out.stderr);
    assert_eq!(
        out.stdout, shown,
        "README.md's plan is not what plan prints"
    );
}

/// Execution ids are new at every run: masked, the pictures compare.
fn without_execution_ids(svg: &str) -> String {
    let mut out = String::with_capacity(svg.len());
    let mut rest = svg;
    // A UUID: 8-4-4-4-12 hex digits.
    let is_uuid = |s: &str| {
        s.len() >= 36
            && s.is_char_boundary(36)
            && s[..36].char_indices().all(|(i, c)| {
                if [8, 13, 18, 23].contains(&i) {
                    c == '-'
                } else {
                    c.is_ascii_hexdigit()
                }
            })
    };
    while let Some(c) = rest.chars().next() {
        if is_uuid(rest) {
            out.push_str("<execution>");
            rest = &rest[36..];
        } else {
            out.push(c);
            rest = &rest[c.len_utf8()..];
        }
    }
    out
}

/// The README's pictures are what its commands draw.
#[test]
fn the_readme_pictures_are_what_the_commands_draw() {
    let root = common::repo_root();
    let dir = tempfile::tempdir().unwrap();
    let state = dir.path().join("state");
    let state = state.to_str().unwrap();
    let at = |p: &str| root.join(p).display().to_string();
    let run = cli(
        &root,
        &[
            "run",
            &at("events/release-manifest.json"),
            "--sim",
            &at("docs/sample.sim.json"),
            "--state-dir",
            state,
        ],
    );
    assert_eq!(
        run.code, 1,
        "the sample's first attempt fails: {}",
        run.stderr
    );
    let retry = cli(
        &root,
        &[
            "retry",
            "2026.03.1",
            "--sim",
            &at("docs/sample-retry.sim.json"),
            "--state-dir",
            state,
        ],
    );
    assert_eq!(retry.code, 0, "{}", retry.stderr);
    let drawn = cli(&root, &["timeline", "2026.03.1", "--state-dir", state]);
    assert_eq!(drawn.code, 0, "{}", drawn.stderr);
    let committed = std::fs::read_to_string(root.join("docs/timeline-sample.svg")).unwrap();
    assert_eq!(
        without_execution_ids(&drawn.stdout),
        without_execution_ids(&committed),
        "docs/timeline-sample.svg is not what the README's commands draw"
    );
    let planned = cli(
        &root,
        &[
            "timeline",
            "--plan",
            &at("events/release-manifest.json"),
            "--sim",
            &at("docs/sample-plan.sim.json"),
        ],
    );
    assert_eq!(planned.code, 0, "{}", planned.stderr);
    let committed = std::fs::read_to_string(root.join("docs/plan-sample.svg")).unwrap();
    assert_eq!(
        without_execution_ids(&planned.stdout),
        without_execution_ids(&committed),
        "docs/plan-sample.svg is not what the README's command draws"
    );
}

/// Against a stack, plan calls CodePipeline itself: unreachable, or without credentials, is
/// exit 6 with a message that says which.
#[test]
fn a_plan_against_a_stack_that_cannot_read_codepipeline_is_exit_6() {
    let dir = tempfile::tempdir().unwrap();
    let m = write(
        dir.path(),
        "manifest.json",
        &json!({"releaseId": "r", "pipelines": ["a"]}),
    );
    let plan = |creds: bool| {
        let mut cmd = std::process::Command::new(common::BIN);
        cmd.args([
            "plan",
            m.to_str().unwrap(),
            "--api",
            "https://abc123.execute-api.eu-west-1.amazonaws.com/Prod",
        ])
        .current_dir(dir.path())
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .env("HOME", dir.path())
        .env("AWS_EC2_METADATA_DISABLED", "true")
        .env("AWS_CONFIG_FILE", dir.path().join("none"))
        .env("AWS_SHARED_CREDENTIALS_FILE", dir.path().join("none"))
        // Nothing listens there: never the internet.
        .env("AWS_ENDPOINT_URL_CODEPIPELINE", "http://127.0.0.1:1");
        if creds {
            cmd.env("AWS_ACCESS_KEY_ID", "AKIDEXAMPLE")
                .env("AWS_SECRET_ACCESS_KEY", "secret");
        }
        let out = cmd.output().expect("the binary runs");
        (
            out.status.code(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    };
    let (code, stderr) = plan(true);
    assert_eq!(code, Some(6), "{stderr}");
    assert!(
        stderr.contains("CodePipeline could not be reached (region eu-west-1)"),
        "the stack's region, from the API's host: {stderr}"
    );
    let (code, stderr) = plan(false);
    assert_eq!(code, Some(6), "{stderr}");
    assert!(stderr.contains("no AWS credentials"), "{stderr}");
}

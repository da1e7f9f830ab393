//! End to end: the real `statemachine/release.asl.json` in the local engine, the core use cases,
//! the SQLite store and the simulated pipelines — through the binary and through the runner.

mod common;

use common::*;
use rm_core::release::RunStatus;
use rm_local::RunOutcome;
use serde_json::{json, Value};
use std::collections::{HashMap, HashSet};

#[test]
fn the_default_manifest_runs_green_then_is_a_duplicate_then_runs_again_with_fresh() {
    let cwd = tempfile::tempdir().unwrap();
    let manifest = repo_root().join("events/release-manifest.json");
    let manifest = manifest.to_str().unwrap();

    let first = cli(cwd.path(), &["run", manifest, "--json"]);
    assert_eq!(first.code, 0, "{}", first.stderr);
    let v = first.json();
    assert_eq!(v["status"], "SUCCEEDED");
    assert!(v["stateTransitions"].as_u64().unwrap() > 0);
    assert!(v["historyEvents"].as_u64().unwrap() > 0);
    for p in v["pipelines"].as_array().unwrap() {
        assert_eq!(p["status"], "Succeeded", "{p}");
        let history: Vec<&str> = p["history"]
            .as_array()
            .unwrap()
            .iter()
            .map(|h| h["status"].as_str().unwrap())
            .collect();
        assert_eq!(history, ["InProgress", "Succeeded"], "{p}");
    }
    // The default state directory is .release-machine/ in the working directory.
    assert!(cwd
        .path()
        .join(".release-machine/releases.sqlite3")
        .exists());

    let again = cli(cwd.path(), &["run", manifest]);
    assert_eq!(again.code, 3, "{}{}", again.stdout, again.stderr);
    assert!(again.stdout.contains("--fresh"), "{}", again.stdout);

    let fresh = cli(cwd.path(), &["run", manifest, "--fresh"]);
    assert_eq!(fresh.code, 0, "{}", fresh.stderr);
    assert!(fresh.stdout.contains("SUCCEEDED"), "{}", fresh.stdout);

    let status = cli(cwd.path(), &["status", "2026.03.1", "--json"]);
    assert_eq!(status.code, 0, "{}", status.stderr);
    let s = status.json();
    assert_eq!(s["status"], "SUCCEEDED");
    assert_eq!(s["pipelines"].as_array().unwrap().len(), 4);

    let human = cli(cwd.path(), &["status", "2026.03.1"]);
    assert_eq!(human.code, 0);
    assert!(human.stdout.contains("payments-api"), "{}", human.stdout);

    let unknown = cli(cwd.path(), &["status", "no-such-release"]);
    assert_eq!(unknown.code, 2);
    assert!(
        unknown.stderr.contains("no release no-such-release"),
        "{}",
        unknown.stderr
    );
}

#[test]
fn progress_is_plain_lines_when_not_a_terminal() {
    let cwd = tempfile::tempdir().unwrap();
    let m = cwd.path().join("m.json");
    std::fs::write(&m, r#"{"releaseId": 5.10, "pipelines": ["a", "b"]}"#).unwrap();
    let out = cli(cwd.path(), &["run", m.to_str().unwrap()]);
    assert_eq!(out.code, 0, "{}", out.stderr);
    // A numeric release id keeps its digits.
    assert!(
        out.stdout.contains("release 5.10 SUCCEEDED"),
        "{}",
        out.stdout
    );
    assert!(out.stderr.contains("wave 1 a Succeeded"), "{}", out.stderr);
    assert!(out.stderr.contains("wave 1 b InProgress"), "{}", out.stderr);
}

#[test]
fn one_failure_stops_the_running_siblings_and_later_waves_never_start() {
    let manifest = json!({"releaseId": "r-stop", "pipelines": [
        {"name": "fails", "wave": 1}, {"name": "slow-a", "wave": 1}, {"name": "slow-b", "wave": 1},
        {"name": "later", "wave": 2}
    ]});
    let sim = json!({"defaults": {"durationSeconds": 1800, "stopSeconds": 45},
                     "pipelines": {"fails": {"outcome": "Failed", "durationSeconds": 120, "failedStage": "Deploy"}}});
    let r = run(&manifest, &sim);
    assert_eq!(r.outcome, RunOutcome::Failed);
    assert_eq!(r.outcome.exit_code(), 1);
    let view = r.release.as_ref().unwrap();
    assert_eq!(view.status.to_string(), "FAILED");
    assert!(
        view.cause.as_deref().unwrap().contains("fails (Failed)"),
        "{:?}",
        view.cause
    );
    assert_eq!(status_of(&r, "fails"), "Failed");
    for sibling in ["slow-a", "slow-b"] {
        let p = pipeline(&r, sibling);
        assert_eq!(p.status, RunStatus::Stopped, "{sibling}");
        let history: Vec<RunStatus> = p.history.iter().map(|h| h.status).collect();
        assert_eq!(
            history,
            [
                RunStatus::InProgress,
                RunStatus::Stopping,
                RunStatus::Stopped
            ]
        );
        assert_eq!(r.sim.calls[sibling].stop, 1, "{sibling} stopped once");
    }
    assert_eq!(status_of(&r, "later"), "NotStarted");
    assert!(r.sim.calls.get("later").is_none_or(|c| c.start == 0));
    // The end is recorded only after every started run is terminal.
    let ended = view.ended_at.unwrap();
    assert!(view
        .pipelines
        .iter()
        .filter_map(|p| p.ended_at)
        .all(|e| e <= ended));
    // Stopped well before the siblings' 30 minutes.
    assert!(r.simulated.as_secs() < 600, "{:?}", r.simulated);
}

#[test]
fn on_failure_continue_lets_siblings_finish_and_starts_no_later_wave() {
    let manifest = json!({"releaseId": "r-continue", "onFailure": "continue", "pipelines": [
        {"name": "fails", "wave": 1}, {"name": "slow", "wave": 1}, {"name": "later", "wave": 2}
    ]});
    let sim = json!({"pipelines": {"fails": {"outcome": "Failed", "durationSeconds": 60},
                                   "slow": {"durationSeconds": 1200}}});
    let r = run(&manifest, &sim);
    assert_eq!(r.outcome, RunOutcome::Failed);
    assert_eq!(status_of(&r, "fails"), "Failed");
    assert_eq!(status_of(&r, "slow"), "Succeeded");
    assert_eq!(r.sim.calls["slow"].stop, 0);
    assert_eq!(status_of(&r, "later"), "NotStarted");
    assert!(r.simulated.as_secs() >= 1200);
}

#[test]
fn a_missing_pipeline_is_rejected_before_anything_starts_and_nothing_is_recorded() {
    let cwd = tempfile::tempdir().unwrap();
    let m = write(
        cwd.path(),
        "m.json",
        &json!({"releaseId": "r-missing", "pipelines": ["here", "gone", "also-gone"]}),
    );
    let sim = write(
        cwd.path(),
        "sim.json",
        &json!({"pipelines": {"gone": {"exists": false}, "also-gone": {"exists": false}}}),
    );
    let out = cli(
        cwd.path(),
        &["run", m.to_str().unwrap(), "--sim", sim.to_str().unwrap()],
    );
    assert_eq!(out.code, 2, "{}{}", out.stdout, out.stderr);
    assert!(out.stdout.contains("$.pipelines[1].name"), "{}", out.stdout);
    assert!(out.stdout.contains("$.pipelines[2].name"), "{}", out.stdout);
    assert!(out.stdout.contains("m.json"), "{}", out.stdout);
    let status = cli(cwd.path(), &["status", "r-missing"]);
    assert_eq!(status.code, 2, "nothing recorded: {}", status.stdout);

    let r = run(
        &json!({"releaseId": "r-missing", "pipelines": ["here", "gone"]}),
        &json!({"pipelines": {"gone": {"exists": false}}}),
    );
    assert!(
        matches!(&r.outcome, RunOutcome::Rejected(e) if e.len() == 1 && e[0].path == "$.pipelines[1].name"),
        "{:?}",
        r.outcome
    );
    assert!(r.release.is_none());
    assert!(r.sim.executions.is_empty());
    // The id is not used up: fixed, it runs.
    let fixed = cli(cwd.path(), &["run", m.to_str().unwrap()]);
    assert_eq!(fixed.code, 0, "{}", fixed.stderr);
}

#[test]
fn waves_run_in_order() {
    let manifest = json!({"releaseId": "r-waves", "maxConcurrency": 10, "pipelines": [
        {"name": "w1-a", "wave": 1}, {"name": "w1-b", "wave": 1}, {"name": "w1-c", "wave": 1},
        {"name": "w2-a", "wave": 2}, {"name": "w2-b", "wave": 2},
        {"name": "w5-a", "wave": 5}, {"name": "w5-b", "wave": 5}
    ]});
    let sim = json!({"pipelines": {
        "w1-a": {"durationSeconds": 100}, "w1-b": {"durationSeconds": 900}, "w1-c": {"durationSeconds": 333.5},
        "w2-a": {"durationSeconds": 1000}, "w2-b": {"durationSeconds": 10},
        "w5-a": {"durationSeconds": 50, "events": "drop"}, "w5-b": {"durationSeconds": 70}
    }});
    let r = run(&manifest, &sim);
    assert_eq!(r.outcome, RunOutcome::Succeeded);
    let view = r.release.as_ref().unwrap();
    let waves = [1, 2, 5];
    for pair in waves.windows(2) {
        let ended = view
            .pipelines
            .iter()
            .filter(|p| p.wave == pair[0])
            .map(|p| p.ended_at.unwrap())
            .max()
            .unwrap();
        let started = view
            .pipelines
            .iter()
            .filter(|p| p.wave == pair[1])
            .map(|p| p.started_at.unwrap())
            .min()
            .unwrap();
        assert!(
            started >= ended,
            "wave {} started at {started} before wave {} ended at {ended}",
            pair[1],
            pair[0]
        );
    }
    // The simulator agrees: no execution of a later wave began before every earlier one ended.
    let wave_of: HashMap<&str, u32> = view
        .pipelines
        .iter()
        .map(|p| (p.name.as_str(), p.wave))
        .collect();
    for e in &r.sim.executions {
        for earlier in r
            .sim
            .executions
            .iter()
            .filter(|x| wave_of[x.pipeline.as_str()] < wave_of[e.pipeline.as_str()])
        {
            assert!(
                e.started_at >= earlier.ended_at.unwrap(),
                "{} started before {} ended",
                e.pipeline,
                earlier.pipeline
            );
        }
    }
}

#[test]
fn max_concurrency_is_respected() {
    let pipelines: Vec<String> = (0..12).map(|i| format!("svc-{i:02}")).collect();
    let manifest = json!({"releaseId": "r-conc", "maxConcurrency": 3, "pipelines": pipelines});
    let sim = json!({"defaults": {"durationSeconds": 300}, "pipelines": {"svc-04": {"durationSeconds": 30}}});
    let r = run(&manifest, &sim);
    assert_eq!(r.outcome, RunOutcome::Succeeded);
    assert_eq!(r.sim.peak_running, 3, "at most 3 and the limit used");
    // Counted independently from the execution intervals.
    let mut edges: Vec<(time::OffsetDateTime, i32)> = Vec::new();
    for e in &r.sim.executions {
        edges.push((e.started_at, 1));
        edges.push((e.ended_at.unwrap(), -1));
    }
    edges.sort();
    let (mut now, mut peak) = (0, 0);
    for (_, d) in edges {
        now += d;
        peak = peak.max(now);
    }
    assert!(peak <= 3, "{peak} in progress at once");
}

#[test]
fn a_duplicate_release_exits_3_and_touches_nothing() {
    let cwd = tempfile::tempdir().unwrap();
    let m = write(
        cwd.path(),
        "m.json",
        &json!({"releaseId": "r-dup", "pipelines": ["a"]}),
    );
    let first = cli(cwd.path(), &["run", m.to_str().unwrap(), "--json"]);
    assert_eq!(first.code, 0, "{}", first.stderr);
    let before = cli(cwd.path(), &["status", "r-dup", "--json"]).json();
    let second = cli(cwd.path(), &["run", m.to_str().unwrap(), "--json"]);
    assert_eq!(second.code, 3, "{}", second.stderr);
    let v = second.json();
    assert_eq!(v["outcome"], "Duplicate");
    assert_eq!(v["claimedBy"], first.json()["executionName"]);
    assert!(
        second.stderr.contains("already claimed"),
        "{}",
        second.stderr
    );
    let after = cli(cwd.path(), &["status", "r-dup", "--json"]).json();
    assert_eq!(before, after);
}

#[test]
fn dropped_events_are_caught_by_the_sweep() {
    let manifest = json!({"releaseId": "r-drop", "pipelines": [
        {"name": "quiet", "wave": 1}, {"name": "loud", "wave": 1}, {"name": "next", "wave": 2}
    ]});
    let sim =
        json!({"defaults": {"durationSeconds": 400}, "pipelines": {"quiet": {"events": "drop"}}});
    let r = run(&manifest, &sim);
    assert_eq!(r.outcome, RunOutcome::Succeeded);
    let quiet = pipeline(&r, "quiet");
    assert_eq!(quiet.status, RunStatus::Succeeded);
    // Recorded by the sweep at its next 5-minute tick after the end (400 s): 600 s.
    let ended = quiet.ended_at.unwrap() - quiet.started_at.unwrap();
    assert!(
        ended >= time::Duration::seconds(400) && ended <= time::Duration::seconds(700),
        "{ended}"
    );
    assert!(
        r.sim.calls["quiet"].get_execution >= 1,
        "the sweep polled it"
    );
    assert!(pipeline(&r, "next").started_at.unwrap() >= quiet.ended_at.unwrap());
}

#[test]
fn duplicated_events_record_nothing_twice() {
    let manifest =
        json!({"releaseId": "r-dupev", "pipelines": ["a", "b", {"name": "c", "wave": 2}]});
    let sim = json!({"defaults": {"events": "duplicate"}, "pipelines": {"b": {"outcome": "Stopped", "durationSeconds": 90}}});
    let r = run(&manifest, &sim);
    assert_eq!(
        r.outcome,
        RunOutcome::Failed,
        "a Stopped pipeline is not a success"
    );
    for p in &r.release.as_ref().unwrap().pipelines {
        let statuses: Vec<RunStatus> = p.history.iter().map(|h| h.status).collect();
        let unique: HashSet<RunStatus> = statuses.iter().copied().collect();
        assert_eq!(statuses.len(), unique.len(), "{}: {statuses:?}", p.name);
    }
    assert_eq!(
        pipeline(&r, "b")
            .history
            .iter()
            .map(|h| h.status)
            .collect::<Vec<_>>(),
        [
            RunStatus::InProgress,
            RunStatus::Stopping,
            RunStatus::Stopped
        ]
    );
}

#[test]
fn a_pipeline_past_its_timeout_is_stopped_and_the_release_fails() {
    let manifest = json!({"releaseId": "r-timeout", "pipelines": [{"name": "slow", "timeoutMinutes": 10}, "quick"]});
    let sim = json!({"pipelines": {"slow": {"durationSeconds": 7200}}});
    let r = run(&manifest, &sim);
    assert_eq!(r.outcome, RunOutcome::Failed);
    assert_eq!(status_of(&r, "slow"), "Stopped");
    assert!(r.sim.calls["slow"].stop >= 1);
    let slow = &r
        .sim
        .executions
        .iter()
        .find(|e| e.pipeline == "slow")
        .unwrap();
    assert!(
        slow.stop_reason
            .as_deref()
            .unwrap()
            .contains("timeout of 10 minutes"),
        "{:?}",
        slow.stop_reason
    );
    // Stopped after 10 minutes, not after two hours.
    assert!(r.simulated.as_secs() < 15 * 60, "{:?}", r.simulated);
}

#[test]
fn throttled_starts_are_retried_and_nothing_starts_twice() {
    let manifest = json!({"releaseId": "r-throttle", "pipelines": ["a", "b", "c"]});
    let sim = json!({"defaults": {"throttleStarts": 3}, "pipelines": {"c": {"throttleStarts": 0}}});
    let r = run(&manifest, &sim);
    assert_eq!(r.outcome, RunOutcome::Succeeded);
    for name in ["a", "b"] {
        let calls = r.sim.calls[name];
        assert_eq!(calls.throttled, 3);
        assert_eq!(calls.start, 4, "{name}: three throttled, then one start");
    }
    let mut started: Vec<&str> = r
        .sim
        .executions
        .iter()
        .map(|e| e.pipeline.as_str())
        .collect();
    started.sort();
    assert_eq!(started, ["a", "b", "c"], "one execution per pipeline");
}

#[test]
fn superseded_and_failed_outcomes_fail_the_release() {
    let r = run(
        &json!({"releaseId": "r-superseded", "pipelines": ["a"]}),
        &json!({"pipelines": {"a": {"outcome": "Superseded"}}}),
    );
    assert_eq!(r.outcome, RunOutcome::Failed);
    assert_eq!(status_of(&r, "a"), "Superseded");
}

#[test]
fn history_events_per_pipeline_do_not_grow_with_duration() {
    let manifest = json!({"releaseId": "r-hist", "pipelines": [
        {"name": "a", "timeoutMinutes": 300}, {"name": "b", "timeoutMinutes": 300},
        {"name": "c", "timeoutMinutes": 300, "wave": 2}, {"name": "d", "timeoutMinutes": 300, "wave": 2}
    ]});
    let short = run(&manifest, &json!({"defaults": {"durationSeconds": 600}}));
    let long = run(
        &manifest,
        &json!({"defaults": {"durationSeconds": 4 * 3600}}),
    );
    assert_eq!(short.outcome, RunOutcome::Succeeded);
    assert_eq!(long.outcome, RunOutcome::Succeeded);
    assert_eq!(short.history.len(), long.history.len());
    assert_eq!(short.state_transitions, long.state_transitions);
}

/// History events per cleanly run pipeline, measured as the cost of each pipeline added to a
/// release (the fixed cost of CheckManifest, the waves and the end is not a pipeline's), two
/// waves as above, TaskSubmitted included as AWS records it. ARCHITECTURE.md §8 and issue 9 ask
/// for at most 10: one `.waitForTaskToken` task per pipeline costs 8 (2 Map-iteration events,
/// 6 task events).
const HISTORY_EVENTS_PER_PIPELINE_BUDGET: usize = 10;

#[test]
fn history_events_per_cleanly_run_pipeline_are_within_budget() {
    let history = |n: usize| {
        let pipelines: Vec<Value> = (0..n)
            .map(|i| json!({"name": format!("p{i}"), "wave": 1 + i % 2}))
            .collect();
        let r = run(
            &json!({"releaseId": "r-budget", "pipelines": pipelines}),
            &json!({"defaults": {"durationSeconds": 600}}),
        );
        assert_eq!(r.outcome, RunOutcome::Succeeded);
        r.history.len()
    };
    let (small, large) = (history(4), history(20));
    let per_pipeline = (large - small) as f64 / 16.0;
    assert!(
        per_pipeline <= HISTORY_EVENTS_PER_PIPELINE_BUDGET as f64,
        "{per_pipeline} history events per pipeline ({small} for 4, {large} for 20), \
         budget {HISTORY_EVENTS_PER_PIPELINE_BUDGET}"
    );
}

#[test]
fn invalid_sim_files_and_manifests_exit_2_with_paths() {
    let cwd = tempfile::tempdir().unwrap();
    let m = write(
        cwd.path(),
        "m.json",
        &json!({"releaseId": "r-sim", "pipelines": ["a"]}),
    );
    let sim = write(
        cwd.path(),
        "bad-sim.json",
        &json!({
            "defaults": {"outcome": "Exploded", "duratonSeconds": 5},
            "pipelines": {"a": {"events": "sometimes", "throttleStarts": -1}, "not in manifest": {}},
            "extra": 1
        }),
    );
    let out = cli(
        cwd.path(),
        &["run", m.to_str().unwrap(), "--sim", sim.to_str().unwrap()],
    );
    assert_eq!(out.code, 2, "{}", out.stderr);
    for needle in [
        "bad-sim.json: $.defaults.outcome",
        "$.defaults.duratonSeconds: unknown field",
        "$.pipelines.a.events",
        "$.pipelines.a.throttleStarts",
        "$.extra",
        "$.pipelines[\"not in manifest\"]",
    ] {
        assert!(
            out.stderr.contains(needle),
            "missing {needle:?} in:\n{}",
            out.stderr
        );
    }
    assert_eq!(
        cli(cwd.path(), &["status", "r-sim"]).code,
        2,
        "nothing recorded"
    );

    let warn = write(
        cwd.path(),
        "warn-sim.json",
        &json!({"pipelines": {"elsewhere": {"outcome": "Failed"}}}),
    );
    let out = cli(
        cwd.path(),
        &["run", m.to_str().unwrap(), "--sim", warn.to_str().unwrap()],
    );
    assert_eq!(out.code, 0, "{}", out.stderr);
    assert!(
        out.stderr.contains("warning: ") && out.stderr.contains("\"elsewhere\""),
        "{}",
        out.stderr
    );

    let bad = write(
        cwd.path(),
        "bad.json",
        &json!({"releaseId": "x y", "pipelines": [], "colour": 1}),
    );
    let out = cli(cwd.path(), &["run", bad.to_str().unwrap()]);
    assert_eq!(out.code, 2);
    assert!(
        out.stderr.contains("bad.json: $.releaseId"),
        "{}",
        out.stderr
    );
    assert!(
        out.stderr.contains("bad.json: $.pipelines"),
        "{}",
        out.stderr
    );

    let missing = cli(cwd.path(), &["run", "no-such-file.json"]);
    assert_eq!(missing.code, 2);
    assert!(
        missing.stderr.contains("no-such-file.json"),
        "{}",
        missing.stderr
    );
}

#[test]
fn validate_reports_every_file_and_error() {
    let root = repo_root();
    let good = root.join("events/release-manifest.json");
    let ok = cli(&root, &["validate", good.to_str().unwrap()]);
    assert_eq!(ok.code, 0, "{}", ok.stderr);
    assert!(ok.stdout.contains("valid"), "{}", ok.stdout);

    let cwd = tempfile::tempdir().unwrap();
    let bad = write(
        cwd.path(),
        "bad.json",
        &json!({"releaseId": "ok", "pipelines": ["a", "a", {"name": ""}], "onFailure": "panic"}),
    );
    let out = cli(
        cwd.path(),
        &["validate", good.to_str().unwrap(), bad.to_str().unwrap()],
    );
    assert_eq!(out.code, 2);
    assert!(
        out.stdout.contains("release-manifest.json: valid"),
        "{}",
        out.stdout
    );
    let lines: Vec<&str> = out
        .stderr
        .lines()
        .filter(|l| l.contains("bad.json: $."))
        .collect();
    assert!(lines.len() >= 3, "{}", out.stderr);
    assert!(
        out.stderr.contains("bad.json: $.onFailure"),
        "{}",
        out.stderr
    );
}

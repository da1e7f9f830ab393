//! Issue 9: faults injected through the sim file's keys, run through the local runner (the real
//! definition, the core handlers, the SQLite store, the simulated CodePipeline) and the binary.

mod common;

use common::*;
use rm_core::release::RunStatus;
use rm_local::runner::SWEEP_INTERVAL;
use rm_local::RunOutcome;
use serde_json::json;

fn three() -> serde_json::Value {
    json!({"releaseId": "r-faults", "pipelines": ["a", "b", "c"]})
}

/// Fault 1: a completion whose SendTaskSuccess fails transiently keeps its token, so the
/// sweep (or record-state's retry) sends it again: the release succeeds, at most one sweep
/// period later than without the failures.
#[test]
fn send_failures_cost_at_most_one_sweep_period() {
    let clean = run(&three(), &json!({}));
    assert_eq!(clean.outcome, RunOutcome::Succeeded);

    let sim = json!({"defaults": {"sendFailures": 1},
                     "pipelines": {"c": {"sendFailures": 2, "durationSeconds": 400}}});
    let clean_c = run(
        &three(),
        &json!({"pipelines": {"c": {"durationSeconds": 400}}}),
    );
    let r = run(&three(), &sim);
    assert_eq!(r.outcome, RunOutcome::Succeeded, "{:?}", r.release);
    for p in ["a", "b", "c"] {
        assert_eq!(status_of(&r, p), "Succeeded", "{p}");
        assert_eq!(r.sim.calls[p].start, 1, "{p}");
    }
    assert_eq!(r.sim.calls["a"].send_failed, 1);
    assert_eq!(r.sim.calls["c"].send_failed, 2);
    // a and b: the event's send fails, the next sweep delivers. c's event send and one sweep
    // fail; it lands in the sweep after — still within one period of the first sweep's reach.
    assert!(
        r.simulated <= clean_c.simulated + 2 * SWEEP_INTERVAL,
        "{:?} vs {:?}",
        r.simulated,
        clean_c.simulated
    );

    let one = run(&three(), &json!({"defaults": {"sendFailures": 1}}));
    assert_eq!(one.outcome, RunOutcome::Succeeded);
    assert!(
        one.simulated <= clean.simulated + SWEEP_INTERVAL,
        "{:?} vs {:?}",
        one.simulated,
        clean.simulated
    );
}

/// The fault keys are validated like the others: wrong types and unknown keys are exit 2.
#[test]
fn fault_keys_are_validated_and_unknown_keys_stay_errors() {
    let dir = tempfile::tempdir().unwrap();
    let m = write(dir.path(), "m.json", &three());
    let bad = write(
        dir.path(),
        "bad.json",
        &json!({"defaults": {"sendFailures": -1, "vanishes": "yes", "stopRefused": 1,
                             "startConflicts": "2", "sendFailure": 1}}),
    );
    let out = cli(
        dir.path(),
        &["run", m.to_str().unwrap(), "--sim", bad.to_str().unwrap()],
    );
    assert_eq!(out.code, 2, "{}{}", out.stdout, out.stderr);
    for path in [
        "$.defaults.sendFailures",
        "$.defaults.vanishes",
        "$.defaults.stopRefused",
        "$.defaults.startConflicts",
        "$.defaults.sendFailure",
    ] {
        assert!(out.stderr.contains(path), "{path}: {}", out.stderr);
    }

    let ok = write(
        dir.path(),
        "ok.json",
        &json!({"defaults": {"sendFailures": 1}}),
    );
    let out = cli(
        dir.path(),
        &[
            "run",
            m.to_str().unwrap(),
            "--sim",
            ok.to_str().unwrap(),
            "--json",
        ],
    );
    assert_eq!(out.code, 0, "{}{}", out.stdout, out.stderr);
    assert_eq!(out.json()["status"], "SUCCEEDED");
}

/// Fault 3 and 7: a vanished execution (NotFound from Get and Stop) is recorded NotFound, a
/// terminal status; the release ends FAILED, not stuck; its siblings are still stopped.
#[test]
fn a_vanished_execution_is_not_found_and_the_release_fails_without_sticking() {
    let manifest = json!({"releaseId": "r-vanish", "pipelines": ["gone", "slow"]});
    // gone's first start is throttled, so slow is running when gone turns out to be gone.
    let sim = json!({"pipelines": {"gone": {"vanishes": true, "throttleStarts": 1},
                                   "slow": {"durationSeconds": 3600}}});
    let r = run(&manifest, &sim);
    assert_eq!(r.outcome, RunOutcome::Failed, "{:?}", r.outcome);
    let view = r.release.as_ref().unwrap();
    assert_eq!(view.status.to_string(), "FAILED");
    assert_eq!(pipeline(&r, "gone").status, RunStatus::NotFound);
    assert!(
        view.cause.as_deref().unwrap().contains("gone (NotFound)"),
        "{:?}",
        view.cause
    );
    assert_eq!(pipeline(&r, "slow").status, RunStatus::Stopped);
    assert!(r.simulated.as_secs() < 600, "{:?}", r.simulated);
}

/// Fault 3: StopRunning handles each run on its own: a sibling that vanishes while running
/// (NotFound during the stop) does not keep the others from being stopped.
#[test]
fn stop_running_is_not_aborted_by_a_sibling_that_cannot_be_found() {
    let manifest = json!({"releaseId": "r-vanish-stop", "pipelines": [
        "fails", "gone", "slow-a", "slow-b"]});
    // gone's events are dropped: the store still has it InProgress when StopRunning begins.
    let sim = json!({"defaults": {"durationSeconds": 3600},
                     "pipelines": {"fails": {"outcome": "Failed", "durationSeconds": 60},
                                   "gone": {"vanishes": true, "events": "drop",
                                            "throttleStarts": 1}}});
    let r = run(&manifest, &sim);
    assert_eq!(r.outcome, RunOutcome::Failed, "{:?}", r.outcome);
    assert_eq!(pipeline(&r, "gone").status, RunStatus::NotFound);
    for p in ["slow-a", "slow-b"] {
        assert_eq!(pipeline(&r, p).status, RunStatus::Stopped, "{p}");
    }
}

/// Fault 7: a stop that never takes effect ends within the bounded wait; the run says its
/// stop was abandoned (release JSON `stopAbandoned: true`), the release is FAILED.
#[test]
fn a_refused_stop_is_abandoned_within_the_bounded_wait() {
    let dir = tempfile::tempdir().unwrap();
    let m = write(
        dir.path(),
        "m.json",
        &json!({"releaseId": "r-refused", "pipelines": ["fails", "stubborn", "polite"]}),
    );
    let sim = write(
        dir.path(),
        "sim.json",
        &json!({"defaults": {"durationSeconds": 7200},
                "pipelines": {"fails": {"outcome": "Failed", "durationSeconds": 60},
                              "stubborn": {"stopRefused": true}}}),
    );
    let out = cli(
        dir.path(),
        &[
            "run",
            m.to_str().unwrap(),
            "--sim",
            sim.to_str().unwrap(),
            "--json",
        ],
    );
    assert_eq!(out.code, 1, "{}{}", out.stdout, out.stderr);
    let v = out.json();
    assert_eq!(v["status"], "FAILED");
    let p = |name: &str| {
        v["pipelines"]
            .as_array()
            .unwrap()
            .iter()
            .find(|p| p["name"] == name)
            .unwrap()
            .clone()
    };
    assert_eq!(p("stubborn")["stopAbandoned"], true, "{}", p("stubborn"));
    assert_eq!(p("polite")["status"], "Stopped");
    assert_eq!(p("polite")["stopAbandoned"], false);
    // The bounded wait: 20 StopRunning attempts 30 s apart, after the failure at 60 s.
    let ended = time::OffsetDateTime::parse(
        v["endedAt"].as_str().unwrap(),
        &time::format_description::well_known::Rfc3339,
    )
    .unwrap();
    let requested = time::OffsetDateTime::parse(
        v["requestedAt"].as_str().unwrap(),
        &time::format_description::well_known::Rfc3339,
    )
    .unwrap();
    assert!((ended - requested).whole_seconds() <= 60 + 21 * 30, "{v}");
}

/// Fault 7: StopTimedOut refreshes the run first: a pipeline that in fact succeeded (its
/// events lost, the sweep not yet there) is recorded Succeeded and is not stopped.
#[test]
fn stop_timed_out_counts_a_pipeline_that_succeeded_as_succeeded() {
    let manifest = json!({"releaseId": "r-late", "pipelines": [
        {"name": "quiet", "timeoutMinutes": 12}]});
    // Ends at 650 s; the sweeps at 300 and 600 s see it running; the wait times out at 720 s.
    let sim = json!({"pipelines": {"quiet": {"durationSeconds": 650, "events": "drop"}}});
    let r = run(&manifest, &sim);
    assert_eq!(pipeline(&r, "quiet").status, RunStatus::Succeeded);
    assert_eq!(r.sim.calls["quiet"].stop, 0, "not stopped");
}

/// Fault 5: busy starts (ConflictException) are retried until the pipeline starts: the
/// release succeeds, each pipeline started exactly once.
#[test]
fn busy_starts_are_retried_and_each_pipeline_starts_once() {
    let sim = json!({"defaults": {"startConflicts": 2}, "pipelines": {"c": {"startConflicts": 5}}});
    let r = run(&three(), &sim);
    assert_eq!(r.outcome, RunOutcome::Succeeded, "{:?}", r.release);
    for p in ["a", "b", "c"] {
        assert_eq!(status_of(&r, p), "Succeeded", "{p}");
        let executions = r.sim.executions.iter().filter(|e| e.pipeline == p).count();
        assert_eq!(executions, 1, "{p} started exactly once");
    }
    assert_eq!(r.sim.calls["a"].conflicts, 2);
    assert_eq!(r.sim.calls["c"].conflicts, 5);
}

/// Fault 5: a pipeline busy past its timeoutMinutes is Failed, never started, and the release
/// fails naming it.
#[test]
fn a_pipeline_busy_past_its_timeout_fails_the_release() {
    let manifest = json!({"releaseId": "r-busy", "pipelines": [
        {"name": "busy", "timeoutMinutes": 15}, "fine"]});
    let sim = json!({"pipelines": {"busy": {"startConflicts": 1000}}});
    let r = run(&manifest, &sim);
    assert_eq!(r.outcome, RunOutcome::Failed, "{:?}", r.outcome);
    assert_eq!(pipeline(&r, "busy").status, RunStatus::Failed);
    assert!(r.sim.executions.iter().all(|e| e.pipeline != "busy"));
    assert_eq!(pipeline(&r, "busy").cause.as_deref(), Some("pipeline busy"));
    let cause = r.release.as_ref().unwrap().cause.clone().unwrap();
    assert!(cause.contains("busy (Failed: pipeline busy)"), "{cause}");
    // Retried until the timeout, not given up at the first conflict.
    assert!(r.simulated.as_secs() >= 15 * 60, "{:?}", r.simulated);
    assert!(r.sim.calls["busy"].conflicts >= 3);
}

/// Fault 6: a start whose task dies as a Lambda timeout after CodePipeline started the
/// execution (`startTimeouts`) is retried (Retry on Lambda.Unknown); the retry adopts the
/// execution the lost answer started: the release succeeds, each pipeline started once.
#[test]
fn start_timeouts_start_each_pipeline_exactly_once() {
    let sim = json!({"defaults": {"startTimeouts": 1}, "pipelines": {"c": {"startTimeouts": 3}}});
    let r = run(&three(), &sim);
    assert_eq!(r.outcome, RunOutcome::Succeeded, "{:?}", r.release);
    for p in ["a", "b", "c"] {
        assert_eq!(status_of(&r, p), "Succeeded", "{p}");
        let executions = r.sim.executions.iter().filter(|e| e.pipeline == p).count();
        assert_eq!(executions, 1, "{p} started exactly once");
    }
    let retried = r
        .history
        .iter()
        .filter(|e| e.r#type == "TaskFailed")
        .count();
    assert_eq!(
        retried,
        1 + 1 + 3,
        "one failed task per injected Lambda timeout"
    );
}

/// Fault 2: an execution stopped from outside (`faults.abortExecutionAfterSeconds`) leaves
/// no release RUNNING: the reconciler ends it FAILED with a cause naming the abort and stops
/// its running pipelines; exit 1, and `status` agrees.
#[test]
fn an_aborted_execution_fails_the_release_and_stops_its_pipelines() {
    let dir = tempfile::tempdir().unwrap();
    let manifest = json!({"releaseId": "r-abort", "pipelines": [
        "a", "b", {"name": "later", "wave": 2}]});
    let sim = json!({"defaults": {"durationSeconds": 600},
                     "faults": {"abortExecutionAfterSeconds": 120}});
    let m = write(dir.path(), "m.json", &manifest);
    let s = write(dir.path(), "sim.json", &sim);
    let out = cli(
        dir.path(),
        &[
            "run",
            m.to_str().unwrap(),
            "--sim",
            s.to_str().unwrap(),
            "--json",
        ],
    );
    assert_eq!(out.code, 1, "{}{}", out.stdout, out.stderr);
    let v = out.json();
    assert_eq!(v["status"], "FAILED", "{v}");
    let cause = v["cause"].as_str().unwrap();
    assert!(cause.starts_with("execution aborted"), "{cause}");
    let statuses: Vec<(&str, &str)> = v["pipelines"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| (p["name"].as_str().unwrap(), p["status"].as_str().unwrap()))
        .collect();
    assert!(statuses.contains(&("a", "Stopped")), "{statuses:?}");
    assert!(statuses.contains(&("b", "Stopped")), "{statuses:?}");
    assert!(statuses.contains(&("later", "NotStarted")), "{statuses:?}");

    let status = cli(dir.path(), &["status", "r-abort", "--json"]);
    assert_eq!(status.code, 0, "{}{}", status.stdout, status.stderr);
    let stored = status.json();
    assert_eq!(stored["status"], "FAILED");
    assert_eq!(stored["cause"], v["cause"]);
}

/// Fault 2 with a refused stop: the reconciler issues the stop, the sweep finishes the
/// bounded wait and marks the run stopAbandoned; nothing stays RUNNING.
#[test]
fn an_aborted_execution_with_a_refused_stop_is_abandoned_within_the_bounded_wait() {
    let manifest = json!({"releaseId": "r-abort-refused", "pipelines": ["stubborn"]});
    let sim = json!({"pipelines": {"stubborn": {"durationSeconds": 36000, "stopRefused": true}},
                     "faults": {"abortExecutionAfterSeconds": 60}});
    let r = run(&manifest, &sim);
    assert_eq!(r.outcome, RunOutcome::Failed, "{:?}", r.outcome);
    let release = r.release.as_ref().unwrap();
    assert_eq!(release.status.as_str(), "FAILED");
    let run = pipeline(&r, "stubborn");
    assert!(run.stop_abandoned, "{run:?}");
    let ended = release.ended_at.unwrap();
    assert!(
        (ended - release.requested_at).whole_seconds() <= 120,
        "the release ends at once; only the runs' stop wait is bounded"
    );
    // Settled within the bounded wait plus a sweep period, not the pipeline's 10 hours.
    assert!(
        r.simulated.as_secs() <= 60 + 600 + 2 * 300,
        "{:?}",
        r.simulated
    );
}

/// Record failures: RecordSuccess/RecordFailure fail non-retryably (`faults.recordFailures`);
/// the execution fails, and the reconciler still records the right status.
#[test]
fn record_failures_still_end_the_release_with_the_right_status() {
    let r = run(&three(), &json!({"faults": {"recordFailures": 1}}));
    assert_eq!(r.outcome, RunOutcome::Succeeded, "{:?}", r.outcome);
    assert_eq!(r.release.as_ref().unwrap().status.as_str(), "SUCCEEDED");
    assert_eq!(r.release.as_ref().unwrap().cause, None);

    let failing = json!({"faults": {"recordFailures": 1},
                         "pipelines": {"b": {"outcome": "Failed"}}});
    let r = run(&three(), &failing);
    assert_eq!(r.outcome, RunOutcome::Failed, "{:?}", r.outcome);
    let release = r.release.as_ref().unwrap();
    assert_eq!(release.status.as_str(), "FAILED");
    assert!(
        release.cause.as_deref().unwrap().contains("b (Failed)"),
        "{:?}",
        release.cause
    );

    // The reconciler's own first attempt fails too: the sweep's DescribeExecution ends it.
    let r = run(&three(), &json!({"faults": {"recordFailures": 2}}));
    assert_eq!(r.release.as_ref().unwrap().status.as_str(), "SUCCEEDED");
    assert_eq!(r.outcome, RunOutcome::Succeeded, "{:?}", r.outcome);
}

/// The run-level fault keys are validated: wrong types and unknown keys are exit 2, with
/// their paths.
#[test]
fn run_level_fault_keys_are_validated() {
    let dir = tempfile::tempdir().unwrap();
    let m = write(dir.path(), "m.json", &three());
    let bad = write(
        dir.path(),
        "bad.json",
        &json!({"faults": {"abortExecutionAfterSeconds": -5, "recordFailures": "1",
                           "recordFailure": 1},
                "defaults": {"startTimeouts": -1}}),
    );
    let out = cli(
        dir.path(),
        &["run", m.to_str().unwrap(), "--sim", bad.to_str().unwrap()],
    );
    assert_eq!(out.code, 2, "{}{}", out.stdout, out.stderr);
    for path in [
        "$.faults.abortExecutionAfterSeconds",
        "$.faults.recordFailures",
        "$.faults.recordFailure",
        "$.defaults.startTimeouts",
    ] {
        assert!(out.stderr.contains(path), "{path}: {}", out.stderr);
    }
}

/// Fault 10: history has room. A clean pipeline costs at most 10 events (TaskSubmitted
/// included, as AWS records it), and the largest manifest with every start throttled 7 times
/// fits in the 25,000-event limit with room to spare: throttles are retried inside the task
/// and by the sweep, not by state-level Retry.
#[test]
fn the_largest_release_with_every_start_throttled_fits_the_history_limit() {
    let pipelines: Vec<serde_json::Value> = (0..500)
        .map(|i| json!({"name": format!("p{i:03}"), "wave": 1 + i / 100}))
        .collect();
    let manifest = json!({"releaseId": "r-history", "pipelines": pipelines, "maxConcurrency": 40});
    let clean = run(&manifest, &json!({}));
    assert_eq!(clean.outcome, RunOutcome::Succeeded);
    let throttled = run(&manifest, &json!({"defaults": {"throttleStarts": 7}}));
    assert_eq!(throttled.outcome, RunOutcome::Succeeded);
    assert!(throttled.sim.calls.values().all(|c| c.throttled == 7));
    assert!(throttled.sim.executions.iter().all(|e| throttled
        .sim
        .executions
        .iter()
        .filter(|o| o.pipeline == e.pipeline)
        .count()
        == 1));
    assert!(
        clean.history.len() <= 500 * 10 + 100,
        "{}",
        clean.history.len()
    );
    assert!(
        throttled.history.len() <= 12_500,
        "{} of 25,000 history events",
        throttled.history.len()
    );
    eprintln!(
        "500 pipelines: {} history events clean, {} with 7 throttled starts each",
        clean.history.len(),
        throttled.history.len()
    );
}

//! Issue 9: faults injected through the sim file's keys, run through the local runner (the real
//! definition, the core handlers, the SQLite store, the simulated CodePipeline) and the binary.

mod common;

use common::*;
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
    let clean_c = run(&three(), &json!({"pipelines": {"c": {"durationSeconds": 400}}}));
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
        &["run", m.to_str().unwrap(), "--sim", ok.to_str().unwrap(), "--json"],
    );
    assert_eq!(out.code, 0, "{}{}", out.stdout, out.stderr);
    assert_eq!(out.json()["status"], "SUCCEEDED");
}

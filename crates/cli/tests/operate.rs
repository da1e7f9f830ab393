//! Issue 11 through the binary: approvals, cancel, retry, list and the published events, with
//! the humans scripted in the sim file's `operator` list, in simulated time.

mod common;

use common::*;
use serde_json::{json, Value};
use std::path::Path;

fn approvals() -> Value {
    json!({"releaseId": "r-ops", "approvals": [2], "approvalTimeoutMinutes": 60,
           "pipelines": ["a", {"name": "b", "wave": 2}, {"name": "c", "wave": 2}]})
}

/// Runs `run MANIFEST --sim SIM --state-dir state --json` in `dir`.
fn run_json(dir: &Path, manifest: &Value, sim: &Value, extra: &[&str]) -> Output {
    let m = write(dir, "manifest.json", manifest);
    let s = write(dir, "sim.json", sim);
    let mut args = vec![
        "run",
        m.to_str().unwrap(),
        "--sim",
        s.to_str().unwrap(),
        "--state-dir",
        "state",
        "--json",
    ];
    args.extend_from_slice(extra);
    cli(dir, &args)
}

fn statuses(release: &Value) -> Vec<(String, String)> {
    release["pipelines"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| {
            (
                p["name"].as_str().unwrap().to_owned(),
                p["status"].as_str().unwrap().to_owned(),
            )
        })
        .collect()
}

/// Seconds from the release's request to the RFC 3339 time `t` (a run's start is now).
fn offset(release: &Value, t: &Value) -> i64 {
    let parse = |v: &Value| {
        time::OffsetDateTime::parse(
            v.as_str().unwrap_or_else(|| panic!("not a time: {v}")),
            &time::format_description::well_known::Rfc3339,
        )
        .unwrap()
    };
    (parse(t) - parse(&release["requestedAt"])).whole_seconds()
}

fn pairs(v: &[(&str, &str)]) -> Vec<(String, String)> {
    v.iter()
        .map(|(a, b)| (a.to_string(), b.to_string()))
        .collect()
}

#[test]
fn an_approved_wave_starts_when_approved_and_the_release_succeeds() {
    let dir = tempfile::tempdir().unwrap();
    let sim =
        json!({"operator": [{"atSeconds": 900, "action": "approve", "wave": 2, "by": "alice"}]});
    let out = run_json(dir.path(), &approvals(), &sim, &[]);
    assert_eq!(out.code, 0, "{}", out.stderr);
    let r = out.json();
    assert_eq!(r["status"], "SUCCEEDED");
    assert_eq!(r["attempt"], 1);
    assert_eq!(r["waitingFor"], Value::Null);
    let a = &r["approvals"][0];
    assert_eq!(
        (&a["wave"], &a["status"], &a["by"]),
        (&json!(2), &json!("Approved"), &json!("alice"))
    );
    // Wave 1 took 3 minutes; the approval came at 15: wave 2 started then.
    assert_eq!(offset(&r, &a["at"]), 900, "{r}");
    assert_eq!(offset(&r, &r["waves"][1]["startedAt"]), 900);
    let b = r["pipelines"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["name"] == "b")
        .unwrap();
    assert_eq!(offset(&r, &b["startedAt"]), 900);
    let waits = r["waits"].as_array().unwrap();
    assert_eq!(waits.len(), 1);
    assert_eq!(waits[0]["kind"], "approval");
    assert_eq!(offset(&r, &waits[0]["since"]), 180);
    assert_eq!(offset(&r, &waits[0]["until"]), 900);
    assert_eq!(waits[0]["by"], "alice");
    let waves: Vec<&Value> = r["waves"]
        .as_array()
        .unwrap()
        .iter()
        .map(|w| &w["status"])
        .collect();
    assert_eq!(waves, vec!["Succeeded", "Succeeded"]);
    assert!(
        out.stderr.contains("operator: alice approves wave 2"),
        "{}",
        out.stderr
    );
}

#[test]
fn a_rejected_wave_fails_the_release_with_who_and_why() {
    let dir = tempfile::tempdir().unwrap();
    let sim = json!({"operator": [{"atSeconds": 1200, "action": "reject", "wave": 2, "by": "bob", "reason": "error budget spent"}]});
    let out = run_json(dir.path(), &approvals(), &sim, &[]);
    assert_eq!(out.code, 1, "{}", out.stderr);
    let r = out.json();
    assert_eq!(r["status"], "FAILED");
    assert_eq!(r["cause"], "wave 2 rejected by bob: error budget spent");
    assert_eq!(r["approvals"][0]["status"], "Rejected");
    assert_eq!(
        statuses(&r),
        pairs(&[("a", "Succeeded"), ("b", "NotStarted"), ("c", "NotStarted")])
    );
}

#[test]
fn an_approval_nobody_gives_times_out_in_simulated_time() {
    let dir = tempfile::tempdir().unwrap();
    let out = run_json(dir.path(), &approvals(), &json!({}), &[]);
    assert_eq!(out.code, 1, "{}", out.stderr);
    let r = out.json();
    assert_eq!(
        r["cause"],
        "the approval of wave 2 timed out after 60 minutes"
    );
    assert_eq!(r["approvals"][0]["status"], "TimedOut");
    // Asked for at 3 minutes (wave 1's end), timed out an hour later.
    assert_eq!(offset(&r, &r["endedAt"]), 180 + 3600, "{r}");
}

#[test]
fn cancel_mid_wave_stops_the_siblings_and_exits_5() {
    let dir = tempfile::tempdir().unwrap();
    let manifest = json!({"releaseId": "r-cancel",
        "pipelines": ["a", "b", {"name": "c", "wave": 2}]});
    let sim = json!({"pipelines": {"b": {"durationSeconds": 3600}},
        "operator": [{"atSeconds": 600, "action": "cancel", "by": "carol", "reason": "wrong build"}]});
    let out = run_json(dir.path(), &manifest, &sim, &[]);
    assert_eq!(out.code, 5, "{}", out.stderr);
    let r = out.json();
    assert_eq!(r["status"], "CANCELLED");
    assert_eq!(r["cause"], "cancelled by carol: wrong build");
    assert_eq!(
        statuses(&r),
        pairs(&[("a", "Succeeded"), ("b", "Stopped"), ("c", "NotStarted")])
    );
    assert_eq!(r["attempts"][0]["status"], "CANCELLED");
    assert_eq!(r["waves"][0]["status"], "Cancelled");
    // An ended release is not cancelled again: the scripted cancel after the end is refused.
}

#[test]
fn cancel_while_an_approval_waits_cancels_the_approval() {
    let dir = tempfile::tempdir().unwrap();
    let sim = json!({"operator": [{"atSeconds": 600, "action": "cancel", "by": "carol", "reason": "freeze"}]});
    let out = run_json(dir.path(), &approvals(), &sim, &[]);
    assert_eq!(out.code, 5, "{}", out.stderr);
    let r = out.json();
    assert_eq!(r["approvals"][0]["status"], "Cancelled");
    assert_eq!(r["approvals"][0]["by"], "carol");
    assert_eq!(r["waitingFor"], Value::Null);
    assert_eq!(r["cause"], "cancelled by carol: freeze");
}

#[test]
fn retry_reruns_only_what_did_not_succeed_as_attempt_two() {
    let dir = tempfile::tempdir().unwrap();
    let manifest = json!({"releaseId": "r-retry",
        "pipelines": ["a", "b", "c", {"name": "d", "wave": 2}]});
    let sim = json!({"pipelines": {"a": {"durationSeconds": 30},
                                   "b": {"outcome": "Failed", "durationSeconds": 60},
                                   "c": {"durationSeconds": 3600}}});
    let first = run_json(dir.path(), &manifest, &sim, &[]);
    assert_eq!(first.code, 1, "{}", first.stderr);
    assert_eq!(
        statuses(&first.json()),
        pairs(&[
            ("a", "Succeeded"),
            ("b", "Failed"),
            ("c", "Stopped"),
            ("d", "NotStarted")
        ])
    );
    let a_execution = first.json()["pipelines"][0]["executionId"].clone();

    let retry = cli(
        dir.path(),
        &[
            "retry",
            "r-retry",
            "--state-dir",
            "state",
            "--json",
            "--events",
        ],
    );
    assert_eq!(retry.code, 0, "{}", retry.stderr);
    let r = retry.json();
    assert_eq!(r["status"], "SUCCEEDED");
    assert_eq!(r["attempt"], 2);
    let attempts: Vec<(Value, Value)> = r["attempts"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| (a["attempt"].clone(), a["status"].clone()))
        .collect();
    assert_eq!(
        attempts,
        vec![(json!(1), json!("FAILED")), (json!(2), json!("SUCCEEDED"))]
    );
    let by_name = |n: &str| {
        r["pipelines"]
            .as_array()
            .unwrap()
            .iter()
            .find(|p| p["name"] == n)
            .unwrap()
            .clone()
    };
    assert_eq!(by_name("a")["attempt"], 1);
    assert_eq!(
        by_name("a")["executionId"],
        a_execution,
        "a is not started again"
    );
    for p in ["b", "c", "d"] {
        assert_eq!(by_name(p)["attempt"], 2, "{p}");
        assert_eq!(by_name(p)["status"], "Succeeded", "{p}");
    }
    let b_history: Vec<(Value, Value)> = by_name("b")["history"]
        .as_array()
        .unwrap()
        .iter()
        .map(|h| (h["attempt"].clone(), h["status"].clone()))
        .collect();
    assert_eq!(
        b_history,
        vec![
            (json!(1), json!("InProgress")),
            (json!(1), json!("Failed")),
            (json!(2), json!("InProgress")),
            (json!(2), json!("Succeeded")),
        ]
    );
    // The events of both attempts, each sequence once, increasing in the file.
    let events = r["events"].as_array().unwrap();
    let seqs: Vec<u64> = events
        .iter()
        .map(|e| e["detail"]["sequence"].as_u64().unwrap())
        .collect();
    assert!(seqs.windows(2).all(|w| w[0] < w[1]), "{seqs:?}");
    assert!(events.iter().all(|e| e["source"] == "release-machine"));
    let attempts_seen: std::collections::BTreeSet<u64> = events
        .iter()
        .filter_map(|e| e["detail"]["attempt"].as_u64())
        .collect();
    assert_eq!(attempts_seen.into_iter().collect::<Vec<_>>(), vec![1, 2]);

    // A SUCCEEDED release is not retried; an unknown one is an input error.
    let again = cli(dir.path(), &["retry", "r-retry", "--state-dir", "state"]);
    assert_eq!(again.code, 3, "{}", again.stderr);
    assert!(again.stderr.contains("SUCCEEDED"), "{}", again.stderr);
    let unknown = cli(dir.path(), &["retry", "nope", "--state-dir", "state"]);
    assert_eq!(unknown.code, 2, "{}", unknown.stderr);
    assert!(
        unknown.stderr.contains("no release nope"),
        "{}",
        unknown.stderr
    );
}

#[test]
fn every_event_of_a_release_is_in_events_jsonl_with_increasing_sequence() {
    let dir = tempfile::tempdir().unwrap();
    let sim =
        json!({"operator": [{"atSeconds": 900, "action": "approve", "wave": 2, "by": "alice"}]});
    let out = run_json(dir.path(), &approvals(), &sim, &[]);
    assert_eq!(out.code, 0, "{}", out.stderr);
    let status = cli(
        dir.path(),
        &["status", "r-ops", "--state-dir", "state", "--events"],
    );
    assert_eq!(status.code, 0, "{}", status.stderr);
    let events: Vec<Value> = status
        .stdout
        .lines()
        .filter(|l| l.starts_with('{'))
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let seqs: Vec<u64> = events
        .iter()
        .map(|e| e["detail"]["sequence"].as_u64().unwrap())
        .collect();
    assert!(seqs.windows(2).all(|w| w[0] < w[1]), "{seqs:?}");
    let count = |t: &str| events.iter().filter(|e| e["detail-type"] == t).count();
    assert_eq!(count("Release Status Change"), 2, "RUNNING, SUCCEEDED");
    assert_eq!(count("Pipeline Run Status Change"), 6, "3 pipelines x 2");
    assert_eq!(count("Approval Requested"), 1);
    assert_eq!(count("Release Waiting"), 2, "the wait begins and ends");
    assert!(count("Wave Status Change") >= 4);
    for e in &events {
        for key in ["source", "detail-type", "time", "detail"] {
            assert!(e.get(key).is_some(), "{key} missing: {e}");
        }
        assert_eq!(
            e["detail"]["eventId"],
            format!("r-ops:{}", e["detail"]["sequence"])
        );
    }
    let file = std::fs::read_to_string(dir.path().join("state/events.jsonl")).unwrap();
    assert_eq!(file.lines().count(), events.len());
}

#[test]
fn list_shows_releases_newest_first_with_their_status_and_attempt() {
    let dir = tempfile::tempdir().unwrap();
    let ok = json!({"releaseId": "r-list-1", "pipelines": ["a"]});
    assert_eq!(run_json(dir.path(), &ok, &json!({}), &[]).code, 0);
    let bad = json!({"releaseId": "r-list-2", "pipelines": ["a"]});
    let failing = json!({"pipelines": {"a": {"outcome": "Failed"}}});
    assert_eq!(run_json(dir.path(), &bad, &failing, &[]).code, 1);
    let out = cli(dir.path(), &["list", "--state-dir", "state", "--json"]);
    assert_eq!(out.code, 0, "{}", out.stderr);
    let ids: Vec<&str> = out.json()["releases"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["releaseId"].as_str().unwrap().to_owned())
        .collect::<Vec<_>>()
        .leak()
        .iter()
        .map(String::as_str)
        .collect();
    assert_eq!(ids.len(), 2);
    let failed = cli(
        dir.path(),
        &[
            "list",
            "--state-dir",
            "state",
            "--status",
            "failed",
            "--json",
        ],
    );
    let f = failed.json();
    assert_eq!(f["releases"].as_array().unwrap().len(), 1);
    assert_eq!(f["releases"][0]["releaseId"], "r-list-2");
    assert_eq!(f["releases"][0]["attempt"], 1);
    let text = cli(dir.path(), &["list", "--state-dir", "state"]);
    assert!(text.stdout.contains("r-list-2  FAILED"), "{}", text.stdout);
    let wrong = cli(
        dir.path(),
        &["list", "--state-dir", "state", "--status", "DONE"],
    );
    assert_eq!(wrong.code, 2);
    assert!(
        wrong.stderr.contains("--status \"DONE\""),
        "{}",
        wrong.stderr
    );
}

#[test]
fn operator_actions_and_approvals_are_validated_with_their_paths() {
    let dir = tempfile::tempdir().unwrap();
    let sim = json!({"operator": [
        {"atSeconds": 10, "action": "approve"},
        {"atSeconds": 10, "action": "reject", "wave": 2},
        {"action": "cancel", "reason": "x", "extra": 1},
        {"atSeconds": 10, "action": "deploy"}
    ]});
    let out = run_json(dir.path(), &approvals(), &sim, &[]);
    assert_eq!(out.code, 2, "{}", out.stderr);
    for expected in [
        "$.operator[0].wave: is required",
        "$.operator[1].reason: is required",
        "$.operator[2].extra: unknown field",
        "$.operator[2].atSeconds: is required",
        "$.operator[3].action: expected \"approve\", \"reject\", \"cancel\", \"halt\" or \"unhalt\"",
    ] {
        assert!(out.stderr.contains(expected), "{expected}\n{}", out.stderr);
    }
    let bad = json!({"releaseId": "x", "approvals": [3, 1, 1], "approvalTimeoutMinutes": 0,
                     "pipelines": ["a"]});
    let m = write(dir.path(), "bad.json", &bad);
    let out = cli(dir.path(), &["validate", m.to_str().unwrap()]);
    assert_eq!(out.code, 2);
    for expected in [
        "$.approvals[0]: wave 3 has no pipelines; the manifest's waves are 1",
        "$.approvals[2]: wave 1 is listed twice",
        "$.approvalTimeoutMinutes: expected an integer from 1 to 10080",
    ] {
        assert!(out.stderr.contains(expected), "{expected}\n{}", out.stderr);
    }
}

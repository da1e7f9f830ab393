//! Issue 12 through the binary: gates that wait (alarms, AWS Health, deployment windows), bake
//! time and the stack-wide halt, with the world the gates see scripted in the sim file
//! (`startAt`, `alarms`, `health`, operator `halt`/`unhalt`), in simulated time. Times are
//! checked to the second against the sim file's `startAt`.

mod common;

use common::*;
use common::{pipeline_json as pipeline, wave_json as wave};
use serde_json::{json, Value};
use std::path::Path;
use time::format_description::well_known::Rfc3339;
use time::OffsetDateTime;

/// Tuesday, 09:00 in Berlin.
const START: &str = "2026-12-01T09:00:00+01:00";

/// Runs `run MANIFEST --sim SIM --state-dir state --json` in `dir`.
fn run_json(dir: &Path, manifest: &Value, sim: &Value) -> Output {
    let m = write(dir, "manifest.json", manifest);
    let s = write(dir, "sim.json", sim);
    cli(
        dir,
        &[
            "run",
            m.to_str().unwrap(),
            "--sim",
            s.to_str().unwrap(),
            "--state-dir",
            "state",
            "--json",
        ],
    )
}

fn parse(t: &str) -> OffsetDateTime {
    OffsetDateTime::parse(t, &Rfc3339).unwrap_or_else(|e| panic!("not a time: {t}: {e}"))
}

/// Seconds from `start` to the RFC 3339 time `t`.
fn after(start: &str, t: &Value) -> i64 {
    let t = t.as_str().unwrap_or_else(|| panic!("not a time: {t}"));
    (parse(t) - parse(start)).whole_seconds()
}

/// The release's waits of `kind` (gate, bake, halt).
fn waits<'a>(release: &'a Value, kind: &str) -> Vec<&'a Value> {
    release["waits"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|w| w["kind"] == kind)
        .collect()
}

fn events(dir: &Path, release_id: &str) -> Vec<Value> {
    rm_local::events::read_events(&dir.join("state"), release_id).unwrap()
}

/// Every event in the state directory's `events.jsonl` (the halt's have no release).
fn all_events(dir: &Path) -> Vec<Value> {
    std::fs::read_to_string(dir.join("state/events.jsonl"))
        .unwrap_or_default()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

fn two_waves(id: &str, gates: Value) -> Value {
    json!({"releaseId": id, "gates": gates,
           "pipelines": ["a", {"name": "b", "wave": 2}]})
}

#[test]
fn a_wave_waits_for_an_alarm_to_clear_then_starts_by_itself() {
    let dir = tempfile::tempdir().unwrap();
    let manifest = two_waves("r-alarm", json!({"alarmNames": ["prod-api-5xx"]}));
    // In ALARM from 100 s to 905 s: wave 1 (0-180 s) runs, wave 2 waits from 180 s and starts
    // when the alarm clears (its Alarm State Change event, between two minutes).
    let sim = json!({"startAt": START, "alarms": {"prod-api-5xx": [
        {"atSeconds": 0, "state": "OK"}, {"atSeconds": 100, "state": "ALARM"},
        {"atSeconds": 905, "state": "OK"}]}});
    let out = run_json(dir.path(), &manifest, &sim);
    assert_eq!(out.code, 0, "{}", out.stderr);
    let r = out.json();
    assert_eq!(r["status"], "SUCCEEDED");
    assert_eq!(after(START, &r["requestedAt"]), 0);
    assert_eq!(after(START, &wave(&r, 1)["startedAt"]), 0);
    assert_eq!(after(START, &wave(&r, 2)["startedAt"]), 905, "{r}");
    assert_eq!(after(START, &pipeline(&r, "b")["startedAt"]), 905);
    let gate = waits(&r, "gate");
    assert_eq!(gate.len(), 1, "{r}");
    assert_eq!(gate[0]["wave"], 2);
    assert_eq!(after(START, &gate[0]["since"]), 180);
    assert_eq!(after(START, &gate[0]["until"]), 905);
    let reasons = gate[0]["reasons"].to_string();
    assert!(
        reasons.contains("alarm prod-api-5xx is in ALARM"),
        "{reasons}"
    );
    assert_eq!(r["waitingFor"], Value::Null);
    assert!(
        out.stderr
            .contains("[+0:03:00] wave 2 waits for the gate: alarm prod-api-5xx is in ALARM"),
        "{}",
        out.stderr
    );
    assert!(
        out.stderr
            .contains("[+0:15:05] wave 2 no longer waits for the gate"),
        "{}",
        out.stderr
    );
    // The wait was published: Release Waiting with waitingFor.gate, then its end.
    let evs = events(dir.path(), "r-alarm");
    let waiting: Vec<&Value> = evs
        .iter()
        .filter(|e| e["detail-type"] == "Release Waiting")
        .map(|e| &e["detail"])
        .collect();
    assert!(
        waiting.iter().any(|d| d["waitingFor"]["gate"]["wave"] == 2),
        "{waiting:?}"
    );
    assert!(waiting
        .iter()
        .any(|d| d["kind"] == "gate" && d["waiting"] == false));

    // status shows the wait too.
    let status = cli(dir.path(), &["status", "r-alarm", "--state-dir", "state"]);
    assert_eq!(status.code, 0, "{}", status.stderr);
    assert!(
        status
            .stdout
            .contains("waited for the gate before wave 2: 08:03:00 -> 08:15:05"),
        "{}",
        status.stdout
    );
}

#[test]
fn an_aws_health_issue_holds_a_wave_until_the_minute_after_it_closes() {
    let dir = tempfile::tempdir().unwrap();
    let manifest = two_waves(
        "r-health",
        json!({"health": {"enabled": true, "regions": ["us-east-1"], "services": ["EC2"]}}),
    );
    // Open from 100 s to 1000 s; another service's issue never matters. No event announces
    // the end: the one-minute schedule finds it at 1020 s.
    let sim = json!({"startAt": START, "health": [
        {"service": "EC2", "region": "us-east-1", "fromSeconds": 100, "toSeconds": 1000},
        {"service": "S3", "region": "us-east-1"}]});
    let out = run_json(dir.path(), &manifest, &sim);
    assert_eq!(out.code, 0, "{}", out.stderr);
    let r = out.json();
    assert_eq!(after(START, &wave(&r, 2)["startedAt"]), 1020, "{r}");
    let gate = waits(&r, "gate");
    assert_eq!(gate.len(), 1, "{r}");
    assert!(
        gate[0]["reasons"]
            .to_string()
            .contains("AWS_EC2_OPERATIONAL_ISSUE"),
        "{r}"
    );
}

#[test]
fn a_release_started_before_its_window_starts_at_the_opening_to_the_second() {
    let dir = tempfile::tempdir().unwrap();
    let manifest = two_waves(
        "r-window",
        json!({"windows": {"timezone": "Europe/Berlin",
                           "allow": [{"days": ["Mon", "Tue", "Wed", "Thu"],
                                      "from": "09:00", "to": "16:00"}]}}),
    );
    let start = "2026-12-01T08:59:30+01:00";
    let out = run_json(dir.path(), &manifest, &json!({"startAt": start}));
    assert_eq!(out.code, 0, "{}", out.stderr);
    let r = out.json();
    assert_eq!(r["status"], "SUCCEEDED");
    assert_eq!(
        wave(&r, 1)["startedAt"],
        "2026-12-01T08:00:00Z",
        "09:00 in Berlin: {r}"
    );
    assert_eq!(pipeline(&r, "a")["startedAt"], "2026-12-01T08:00:00Z");
    let gate = waits(&r, "gate");
    assert_eq!(gate.len(), 1, "{r}");
    assert_eq!(
        (after(start, &gate[0]["since"]), &gate[0]["wave"]),
        (0, &json!(1))
    );
    assert_eq!(after(start, &gate[0]["until"]), 30);
    assert!(
        gate[0]["reasons"]
            .to_string()
            .contains("outside the deployment window"),
        "{r}"
    );
    assert!(
        out.stderr
            .contains("wave 1 waits for the gate: outside the deployment window"),
        "{}",
        out.stderr
    );
}

/// Daylight saving in Berlin, through `run`: a window opening at a local time that does not
/// exist (02:30 on 29 March 2026, spring forward) opens at the first valid instant after it
/// (03:00 CEST); one opening at a local time that happens twice (02:30 on 25 October 2026, fall
/// back) opens at its first occurrence (02:30 CEST).
#[test]
fn windows_open_correctly_across_daylight_saving_changes() {
    let manifest = |id: &str| {
        two_waves(
            id,
            json!({"windows": {"timezone": "Europe/Berlin",
                               "allow": [{"from": "02:30", "to": "04:00"}]}}),
        )
    };
    for (id, start, opens) in [
        // 00:00 CET; 02:00 CET jumps to 03:00 CEST (01:00 UTC).
        (
            "r-spring",
            "2026-03-29T00:00:00+01:00",
            "2026-03-29T01:00:00Z",
        ),
        // 00:00 CEST; 03:00 CEST falls back to 02:00 CET: 02:30 CEST is 00:30 UTC.
        (
            "r-fall",
            "2026-10-25T00:00:00+02:00",
            "2026-10-25T00:30:00Z",
        ),
    ] {
        let dir = tempfile::tempdir().unwrap();
        let out = run_json(dir.path(), &manifest(id), &json!({"startAt": start}));
        assert_eq!(out.code, 0, "{id}: {}", out.stderr);
        let r = out.json();
        assert_eq!(wave(&r, 1)["startedAt"], opens, "{id}: {r}");
        assert_eq!(pipeline(&r, "a")["startedAt"], opens, "{id}");
        // Wave 2 follows at once: 3 minutes later, still inside the window.
        assert_eq!(after(opens, &wave(&r, 2)["startedAt"]), 180, "{id}: {r}");
    }
    // And the window's end: a release started after 04:00 local (04:00 CEST on the spring
    // day is 02:00 UTC) waits until 02:30 the next morning.
    let dir = tempfile::tempdir().unwrap();
    let out = run_json(
        dir.path(),
        &manifest("r-after"),
        &json!({"startAt": "2026-03-29T04:00:00+02:00"}),
    );
    assert_eq!(out.code, 0, "{}", out.stderr);
    assert_eq!(
        wave(&out.json(), 1)["startedAt"],
        "2026-03-30T00:30:00Z",
        "02:30 CEST on the 30th"
    );
}

#[test]
fn a_gate_that_stays_closed_fails_the_release_after_max_wait_minutes() {
    let dir = tempfile::tempdir().unwrap();
    let manifest = two_waves(
        "r-maxwait",
        json!({"alarmNames": ["prod-api-5xx"], "maxWaitMinutes": 30}),
    );
    let sim = json!({"startAt": START, "alarms": {"prod-api-5xx": [
        {"atSeconds": 0, "state": "OK"}, {"atSeconds": 100, "state": "ALARM"}]}});
    let out = run_json(dir.path(), &manifest, &sim);
    assert_eq!(out.code, 1, "{}", out.stderr);
    let r = out.json();
    assert_eq!(r["status"], "FAILED");
    let cause = r["cause"].as_str().unwrap();
    assert!(cause.contains("alarm prod-api-5xx is in ALARM"), "{cause}");
    assert!(cause.contains("wave 2"), "{cause}");
    // Waited from 180 s for 30 minutes, to the second.
    assert_eq!(after(START, &r["endedAt"]), 180 + 1800, "{r}");
    assert_eq!(pipeline(&r, "b")["status"], "NotStarted");
    assert_eq!(pipeline(&r, "a")["status"], "Succeeded");
    let gate = waits(&r, "gate");
    assert_eq!(gate.len(), 1, "{r}");
    assert_eq!(after(START, &gate[0]["until"]), 1980);
}

#[test]
fn a_bake_that_passes_starts_the_next_wave_bake_minutes_after_the_last_ended() {
    let dir = tempfile::tempdir().unwrap();
    let manifest = two_waves(
        "r-bake",
        json!({"alarmNames": ["prod-api-5xx"], "bakeMinutes": 15}),
    );
    let sim = json!({"startAt": START, "alarms": {"prod-api-5xx": [
        {"atSeconds": 0, "state": "OK"}]}});
    let out = run_json(dir.path(), &manifest, &sim);
    assert_eq!(out.code, 0, "{}", out.stderr);
    let r = out.json();
    assert_eq!(r["status"], "SUCCEEDED");
    assert_eq!(after(START, &wave(&r, 1)["endedAt"]), 180, "{r}");
    assert_eq!(after(START, &wave(&r, 2)["startedAt"]), 180 + 900, "{r}");
    let bake = waits(&r, "bake");
    assert!(!bake.is_empty(), "{r}");
    assert_eq!(bake[0]["wave"], 1);
    assert_eq!(after(START, &bake[0]["since"]), 180);
    assert_eq!(after(START, &bake[0]["until"]), 1080);
    assert!(
        out.stderr
            .contains("[+0:03:00] wave 1 bakes until 2026-12-01T08:18:00Z"),
        "{}",
        out.stderr
    );
}

#[test]
fn an_alarm_flapping_during_a_bake_fails_the_release_naming_the_alarm_and_the_wave() {
    let dir = tempfile::tempdir().unwrap();
    let manifest = two_waves(
        "r-flap",
        json!({"alarmNames": ["prod-api-5xx"], "bakeMinutes": 15}),
    );
    // ALARM for 30 s between two of the schedule's minutes (420 s and 480 s): a
    // once-a-minute look never sees it; its event (or the history at the bake's end) does.
    let sim = json!({"startAt": START, "alarms": {"prod-api-5xx": [
        {"atSeconds": 0, "state": "OK"}, {"atSeconds": 425, "state": "ALARM"},
        {"atSeconds": 455, "state": "OK"}]}});
    let out = run_json(dir.path(), &manifest, &sim);
    assert_eq!(out.code, 1, "{}", out.stderr);
    let r = out.json();
    assert_eq!(r["status"], "FAILED");
    let cause = r["cause"].as_str().unwrap();
    assert!(cause.contains("prod-api-5xx"), "{cause}");
    assert!(cause.contains("wave 1"), "{cause}");
    assert_eq!(pipeline(&r, "b")["status"], "NotStarted");
    let ended = after(START, &r["endedAt"]);
    assert!((425..=1080).contains(&ended), "ended at {ended} s: {r}");
}

#[test]
fn an_operator_halt_holds_new_waves_and_starts_until_it_is_lifted() {
    let dir = tempfile::tempdir().unwrap();
    // One at a time: c's start inside wave 1 comes after the halt, and wave 2 after that.
    let manifest = json!({"releaseId": "r-halt", "maxConcurrency": 1,
        "pipelines": ["a", "c", {"name": "b", "wave": 2}]});
    let sim = json!({"startAt": START, "operator": [
        {"atSeconds": 60, "action": "halt", "by": "alice", "reason": "incident 4711"},
        {"atSeconds": 1000, "action": "unhalt", "by": "bob"}]});
    let out = run_json(dir.path(), &manifest, &sim);
    assert_eq!(out.code, 0, "{}", out.stderr);
    let r = out.json();
    assert_eq!(r["status"], "SUCCEEDED");
    // A running pipeline is never stopped by a halt.
    assert_eq!(pipeline(&r, "a")["status"], "Succeeded");
    assert_eq!(after(START, &pipeline(&r, "a")["endedAt"]), 180);
    // Nothing starts while halted; everything resumes the second it is lifted.
    let c = after(START, &pipeline(&r, "c")["startedAt"]);
    let b = after(START, &pipeline(&r, "b")["startedAt"]);
    assert_eq!((c, b), (1000, 1180), "{r}");
    let halt = waits(&r, "halt");
    assert!(!halt.is_empty(), "{r}");
    assert_eq!(after(START, &halt[0]["since"]), 180);
    assert_eq!(after(START, &halt.last().unwrap()["until"]), 1000);
    // Observed as it happened: Release Waiting with waitingFor.halt, and the halt's events.
    let evs = events(dir.path(), "r-halt");
    let held = evs
        .iter()
        .find(|e| e["detail"]["waitingFor"]["halt"].is_object())
        .unwrap_or_else(|| panic!("no waitingFor.halt in {evs:#?}"));
    let h = &held["detail"]["waitingFor"]["halt"];
    assert_eq!(
        (&h["by"], &h["reason"]),
        (&json!("alice"), &json!("incident 4711"))
    );
    let halts: Vec<(bool, String)> = all_events(dir.path())
        .iter()
        .filter(|e| e["detail-type"] == "Halt Status Change")
        .map(|e| {
            (
                e["detail"]["on"].as_bool().unwrap(),
                e["detail"]["by"].as_str().unwrap().to_owned(),
            )
        })
        .collect();
    assert_eq!(halts, [(true, "alice".into()), (false, "bob".into())]);
    for line in [
        "[+0:01:00] operator: alice halts every release: incident 4711",
        "is held by the halt: halted by alice: incident 4711",
        "[+0:16:40] operator: bob lifts the halt",
    ] {
        assert!(out.stderr.contains(line), "{line:?} in\n{}", out.stderr);
    }
    // The halt was lifted: later runs are not held.
    let shown = cli(dir.path(), &["halt", "--state-dir", "state", "--json"]);
    assert_eq!(shown.json(), json!({"on": false}));
}

#[test]
fn a_stored_halt_holds_a_run_which_ends_cancelled_saying_why_and_unhalt_lets_it_retry() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let set = cli(
        d,
        &[
            "halt",
            "--reason",
            "incident 4711",
            "--by",
            "alice",
            "--state-dir",
            "state",
        ],
    );
    assert_eq!(set.code, 0, "{}", set.stderr);
    assert!(
        set.stdout.contains("halted by alice since"),
        "{}",
        set.stdout
    );
    let shown = cli(d, &["halt", "--state-dir", "state", "--json"]);
    assert_eq!(shown.code, 0);
    let v = shown.json();
    assert_eq!(
        (&v["on"], &v["by"], &v["reason"]),
        (&json!(true), &json!("alice"), &json!("incident 4711"))
    );
    let plain = cli(d, &["halt", "--state-dir", "state"]);
    assert!(plain.stdout.contains("incident 4711"), "{}", plain.stdout);

    let manifest = json!({"releaseId": "r-held", "pipelines": ["a", {"name": "b", "wave": 2}]});
    let out = run_json(d, &manifest, &json!({"startAt": START}));
    assert_eq!(out.code, 5, "{}", out.stderr);
    let r = out.json();
    assert_eq!(r["status"], "CANCELLED");
    assert_eq!(
        r["cause"],
        "cancelled by release-machine: halted by alice: incident 4711 — nothing in the sim \
         file lifts the halt; unhalt and retry"
    );
    assert_eq!(pipeline(&r, "a")["status"], "NotStarted");
    assert!(
        out.stderr
            .contains("wave 1 is held by the halt: halted by alice: incident 4711"),
        "{}",
        out.stderr
    );

    let lifted = cli(d, &["unhalt", "--by", "bob", "--state-dir", "state"]);
    assert_eq!(lifted.code, 0, "{}", lifted.stderr);
    assert!(
        lifted.stdout.contains("halt lifted by bob"),
        "{}",
        lifted.stdout
    );
    let again = cli(d, &["unhalt", "--state-dir", "state"]);
    assert_eq!(again.code, 0);
    assert!(again.stdout.contains("nothing to lift"), "{}", again.stdout);

    let retried = cli(d, &["retry", "r-held", "--state-dir", "state", "--json"]);
    assert_eq!(retried.code, 0, "{}", retried.stderr);
    assert_eq!(retried.json()["status"], "SUCCEEDED");
    // Both changes of the halt were published, by who made them.
    let halts: Vec<(bool, String)> = all_events(d)
        .iter()
        .filter(|e| e["detail-type"] == "Halt Status Change")
        .map(|e| {
            (
                e["detail"]["on"].as_bool().unwrap(),
                e["detail"]["by"].as_str().unwrap().to_owned(),
            )
        })
        .collect();
    assert_eq!(halts, [(true, "alice".into()), (false, "bob".into())]);
}

#[test]
fn a_halt_lifted_later_in_the_sim_file_is_waited_for_not_cancelled() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let set = cli(
        d,
        &["halt", "--reason", "incident 4711", "--state-dir", "state"],
    );
    assert_eq!(set.code, 0, "{}", set.stderr);
    let manifest = json!({"releaseId": "r-waits", "pipelines": ["a"]});
    let sim = json!({"startAt": START, "operator": [
        {"atSeconds": 7200, "action": "unhalt", "by": "bob"}]});
    let out = run_json(d, &manifest, &sim);
    assert_eq!(out.code, 0, "{}", out.stderr);
    let r = out.json();
    assert_eq!(after(START, &pipeline(&r, "a")["startedAt"]), 7200, "{r}");
    let halt = waits(&r, "halt");
    assert_eq!(halt[0]["by"], "local", "--by defaults to local: {r}");
}

#[test]
fn halt_and_unhalt_refuse_bad_input_with_exit_2() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let blank = cli(d, &["halt", "--reason", "  ", "--state-dir", "state"]);
    assert_eq!(blank.code, 2, "{}", blank.stderr);
    assert!(blank.stderr.contains("--reason"), "{}", blank.stderr);
    let nobody = cli(
        d,
        &["halt", "--reason", "x", "--by", "", "--state-dir", "state"],
    );
    assert_eq!(nobody.code, 2, "{}", nobody.stderr);
    let unknown = cli(d, &["halt", "--rason", "x"]);
    assert_eq!(unknown.code, 2, "{}", unknown.stderr);
    // Nothing was set: not halted, and nothing created by looking.
    let shown = cli(d, &["halt", "--state-dir", "state"]);
    assert_eq!(shown.code, 0);
    assert!(shown.stdout.contains("not halted"), "{}", shown.stdout);
    assert!(!d.join("state").exists());
}

#[test]
fn sim_file_gate_keys_are_validated_with_paths() {
    let dir = tempfile::tempdir().unwrap();
    let manifest = two_waves("r-bad-sim", json!({"alarmNames": ["x"]}));
    let sim = json!({
        "startAt": "2026-12-01 09:00",
        "alarms": {"x": [{"atSeconds": 900, "state": "ALARM"}, {"atSeconds": 60, "state": "OK"}],
                   "y": [{"atSeconds": 0, "state": "RED"}]},
        "health": [{"service": "EC2", "region": "us-east-1", "fromSeconds": 100,
                    "toSeconds": 50, "severity": "high"}],
        "operator": [{"atSeconds": 10, "action": "halt", "by": "alice"},
                     {"atSeconds": 20, "action": "unhalt", "wave": 2}]
    });
    let out = run_json(dir.path(), &manifest, &sim);
    assert_eq!(out.code, 2, "{}", out.stderr);
    for path in [
        "$.startAt",
        "$.alarms.x[1].atSeconds",
        "$.alarms.y[0].state",
        "$.health[0].severity",
        "$.health[0].toSeconds",
        "$.operator[0].reason",
        "$.operator[1].wave",
    ] {
        assert!(
            out.stderr.contains(&format!("sim.json: {path}")),
            "{path} in\n{}",
            out.stderr
        );
    }
    assert!(
        !dir.path().join("state/releases.sqlite3").exists() || {
            let list = cli(dir.path(), &["list", "--state-dir", "state", "--json"]);
            list.json()["releases"].as_array().unwrap().is_empty()
        }
    );
}

//! The gate (ARCHITECTURE.md §5a): deployment windows across daylight-saving edges, the
//! settings' validation with paths (manifest `gates` and the action's UserParameters), the bake
//! helpers, and the health-gate action holding its job with continuation tokens.

use rm_core::gate::{
    alarms_not_baked, bake_failures, evaluate, evaluate_in_pipeline, AllowWindow, DenyWindow,
    GateContext, GateContinuation, GateSettings, Halt, Observed, Verdict, Windows,
    DEFAULT_GATE_MAX_WAIT_MINUTES,
};
use rm_core::manifest::Manifest;
use rm_core::memory::*;
use rm_core::ports::{
    AlarmState, AlarmTransition, AlarmValue, GatePorts, ManifestPorts, ReleaseStore,
};
use rm_core::release::{ReleaseId, ReleaseStatus};
use rm_core::tasks::CheckManifestRequest;
use rm_core::usecases::{check_manifest, run_health_gate};
use serde_json::json;
use time::macros::datetime;
use time::{Duration, OffsetDateTime};

// ---------------------------------------------------------------------------------------------
// Windows

fn allow(days: &[&str], from: &str, to: &str) -> AllowWindow {
    AllowWindow {
        days: days.iter().map(|d| (*d).to_owned()).collect(),
        from: from.into(),
        to: to.into(),
    }
}

fn deny(from: &str, to: &str, reason: Option<&str>) -> DenyWindow {
    DenyWindow {
        from: from.into(),
        to: to.into(),
        reason: reason.map(str::to_owned),
    }
}

fn windows(timezone: &str, allow: Vec<AllowWindow>, deny: Vec<DenyWindow>) -> GateSettings {
    GateSettings {
        windows: Some(Windows {
            timezone: timezone.into(),
            allow,
            deny,
        }),
        ..GateSettings::default()
    }
}

fn at(settings: &GateSettings, now: OffsetDateTime) -> rm_core::gate::Evaluation {
    evaluate(settings, Observed::default(), now)
}

fn is_open(settings: &GateSettings, now: OffsetDateTime) -> bool {
    at(settings, now).pass
}

#[test]
fn outside_the_window_the_gate_is_closed_and_says_when_it_opens() {
    let s = windows(
        "Europe/Berlin",
        vec![allow(&["Mon", "Tue", "Wed", "Thu"], "09:00", "16:00")],
        vec![],
    );
    // 2026-12-03 is a Thursday.
    let inside = at(&s, datetime!(2026-12-03 10:00 +01:00));
    assert_eq!(inside.verdict, Verdict::Open);
    assert_eq!(inside.windows_open_at, None);
    let friday = at(&s, datetime!(2026-12-04 10:00 +01:00));
    assert_eq!(friday.verdict, Verdict::Closed);
    assert_eq!(
        friday.reasons,
        vec!["outside the deployment window (Mon–Thu 09:00–16:00 Europe/Berlin)".to_owned()]
    );
    assert_eq!(
        friday.windows_open_at,
        Some(datetime!(2026-12-07 09:00 +01:00)),
        "Monday morning"
    );
    assert!(friday.summary().starts_with("deployment held: outside"));
}

#[test]
fn several_allow_windows_are_listed_together() {
    let s = windows(
        "Europe/Berlin",
        vec![
            allow(&["Mon", "Tue", "Wed", "Thu"], "09:00", "16:00"),
            allow(&["Fri"], "09:00", "12:00"),
            allow(&[], "03:00", "04:00"),
            allow(&["Mon", "Wed", "Sat"], "20:00", "21:00"),
        ],
        vec![],
    );
    let sunday = at(&s, datetime!(2026-12-06 10:00 +01:00));
    assert_eq!(
        sunday.reasons,
        vec![
            "outside the deployment windows (Mon–Thu 09:00–16:00, Fri 09:00–12:00, daily \
             03:00–04:00, Mon, Wed, Sat 20:00–21:00 Europe/Berlin)"
                .to_owned()
        ]
    );
    assert_eq!(
        sunday.windows_open_at,
        Some(datetime!(2026-12-07 03:00 +01:00))
    );
}

#[test]
fn to_is_exclusive() {
    let s = windows(
        "Europe/Berlin",
        vec![allow(&["Thu"], "09:00", "16:00")],
        vec![],
    );
    assert!(is_open(&s, datetime!(2026-12-03 09:00 +01:00)));
    assert!(is_open(&s, datetime!(2026-12-03 15:59:59 +01:00)));
    assert!(!is_open(&s, datetime!(2026-12-03 16:00 +01:00)));
    assert!(!is_open(&s, datetime!(2026-12-03 08:59:59 +01:00)));
}

#[test]
fn a_window_across_midnight_belongs_to_the_day_it_starts() {
    let s = windows(
        "Europe/Berlin",
        vec![allow(&["Mon"], "22:00", "06:00")],
        vec![],
    );
    // Monday 2026-12-07 22:00 to Tuesday 06:00.
    assert!(is_open(&s, datetime!(2026-12-07 22:00 +01:00)));
    assert!(is_open(&s, datetime!(2026-12-08 03:00 +01:00)), "Tue 03:00");
    assert!(!is_open(&s, datetime!(2026-12-08 06:00 +01:00)));
    assert!(
        !is_open(&s, datetime!(2026-12-07 03:00 +01:00)),
        "Monday early morning belongs to Sunday's window, and there is none"
    );
    assert!(
        !is_open(&s, datetime!(2026-12-08 22:30 +01:00)),
        "Tuesday night"
    );
}

#[test]
fn berlin_spring_forward_moves_a_missing_start_to_the_transition() {
    // 2026-03-29 (Sunday): 02:00 CET jumps to 03:00 CEST; 02:30 does not exist.
    let s = windows(
        "Europe/Berlin",
        vec![allow(&["Sun"], "02:30", "04:00")],
        vec![],
    );
    let before = at(&s, datetime!(2026-03-29 01:59 +01:00));
    assert!(!before.pass);
    assert_eq!(
        before.windows_open_at,
        Some(datetime!(2026-03-29 03:00 +02:00)),
        "the first valid instant after 02:30"
    );
    assert!(is_open(&s, datetime!(2026-03-29 03:00 +02:00)));
    assert!(is_open(&s, datetime!(2026-03-29 03:59 +02:00)));
    assert!(!is_open(&s, datetime!(2026-03-29 04:00 +02:00)));
    // A window entirely in the gap is empty that day.
    let gap = windows(
        "Europe/Berlin",
        vec![allow(&["Sun"], "02:00", "02:45")],
        vec![],
    );
    let e = at(&gap, datetime!(2026-03-29 01:00 +01:00));
    assert!(!is_open(&gap, datetime!(2026-03-29 03:00 +02:00)));
    assert_eq!(
        e.windows_open_at,
        Some(datetime!(2026-04-05 02:00 +02:00)),
        "the next Sunday"
    );
}

#[test]
fn berlin_fall_back_takes_the_first_occurrence() {
    // 2026-10-25 (Sunday): 03:00 CEST falls back to 02:00 CET; 02:00–03:00 happens twice.
    let s = windows(
        "Europe/Berlin",
        vec![allow(&["Sun"], "02:30", "04:00")],
        vec![],
    );
    let before = at(&s, datetime!(2026-10-25 02:29 +02:00));
    assert_eq!(
        before.windows_open_at,
        Some(datetime!(2026-10-25 02:30 +02:00)),
        "the first 02:30 (CEST)"
    );
    assert!(is_open(&s, datetime!(2026-10-25 02:30 +02:00)));
    assert!(
        is_open(&s, datetime!(2026-10-25 02:15 +01:00)),
        "second 02:15, CET"
    );
    assert!(is_open(&s, datetime!(2026-10-25 03:59 +01:00)));
    assert!(!is_open(&s, datetime!(2026-10-25 04:00 +01:00)));
    // A window ending at an ambiguous time ends at its first occurrence.
    let early = windows(
        "Europe/Berlin",
        vec![allow(&["Sun"], "01:00", "02:30")],
        vec![],
    );
    assert!(is_open(&early, datetime!(2026-10-25 02:29 +02:00)));
    assert!(!is_open(&early, datetime!(2026-10-25 02:30 +02:00)));
    assert!(
        !is_open(&early, datetime!(2026-10-25 02:10 +01:00)),
        "the second 02:10 is after the window's end"
    );
}

#[test]
fn new_york_daylight_saving_edges() {
    // 2026-03-08 (Sunday) 02:00 EST -> 03:00 EDT; 2026-11-01 (Sunday) 02:00 EDT -> 01:00 EST.
    let s = windows(
        "America/New_York",
        vec![allow(&["Sun"], "02:30", "05:00")],
        vec![],
    );
    let spring = at(&s, datetime!(2026-03-08 01:00 -05:00));
    assert_eq!(
        spring.windows_open_at,
        Some(datetime!(2026-03-08 03:00 -04:00))
    );
    assert!(!is_open(&s, datetime!(2026-03-08 01:59 -05:00)));
    assert!(is_open(&s, datetime!(2026-03-08 03:00 -04:00)));
    let fall = windows(
        "America/New_York",
        vec![allow(&["Sun"], "01:30", "03:00")],
        vec![],
    );
    let before = at(&fall, datetime!(2026-11-01 00:00 -04:00));
    assert_eq!(
        before.windows_open_at,
        Some(datetime!(2026-11-01 01:30 -04:00)),
        "the first 01:30 (EDT)"
    );
    assert!(
        is_open(&fall, datetime!(2026-11-01 01:10 -05:00)),
        "second 01:10, EST"
    );
    assert!(!is_open(&fall, datetime!(2026-11-01 03:00 -05:00)));
}

#[test]
fn deny_windows_close_the_gate_whatever_allow_says() {
    let s = windows(
        "Europe/Berlin",
        vec![allow(&["Mon", "Tue", "Wed", "Thu"], "09:00", "16:00")],
        vec![deny(
            "2026-12-20T00:00",
            "2027-01-04T00:00",
            Some("year-end freeze"),
        )],
    );
    let tuesday = at(&s, datetime!(2026-12-22 10:00 +01:00));
    assert_eq!(
        tuesday.reasons,
        vec![
            "inside the deny window 2026-12-20T00:00–2027-01-04T00:00 Europe/Berlin: year-end \
             freeze"
                .to_owned()
        ]
    );
    assert_eq!(
        tuesday.windows_open_at,
        Some(datetime!(2027-01-04 09:00 +01:00))
    );
    // Outside the allow windows and denied: both reasons.
    let sunday = at(&s, datetime!(2026-12-27 10:00 +01:00));
    assert_eq!(sunday.reasons.len(), 2, "{:?}", sunday.reasons);
    // Deny alone (no allow windows): opens when the deny window ends, `to` exclusive.
    let only = windows(
        "Europe/Berlin",
        vec![],
        vec![deny("2026-12-20T00:00", "2027-01-04T00:00", None)],
    );
    let e = at(&only, datetime!(2026-12-31 23:00 +01:00));
    assert_eq!(
        e.reasons,
        vec!["inside the deny window 2026-12-20T00:00–2027-01-04T00:00 Europe/Berlin".to_owned()]
    );
    assert_eq!(e.windows_open_at, Some(datetime!(2027-01-04 00:00 +01:00)));
    assert!(is_open(&only, datetime!(2027-01-04 00:00 +01:00)));
    assert!(!is_open(&only, datetime!(2026-12-20 00:00 +01:00)));
}

#[test]
fn windows_that_never_open_say_so() {
    let s = windows(
        "UTC",
        vec![allow(&["Mon"], "09:00", "10:00")],
        vec![deny(
            "2026-01-01T00:00",
            "2029-01-01T00:00",
            Some("moratorium"),
        )],
    );
    let e = at(&s, datetime!(2026-12-07 09:30 UTC));
    assert_eq!(e.windows_open_at, None);
    assert!(
        e.reasons
            .iter()
            .any(|r| r.contains("do not open in the next 400 days")),
        "{:?}",
        e.reasons
    );
}

#[test]
fn windows_are_reasons_alongside_the_other_checks() {
    let mut s = windows(
        "Europe/Berlin",
        vec![allow(&["Mon"], "09:00", "10:00")],
        vec![],
    );
    s.alarm_names = vec!["prod-api-5xx".into()];
    let observed = Observed {
        alarms: Some(Ok(vec![alarm("prod-api-5xx", AlarmValue::Alarm, None)])),
        halt: Some(Halt {
            reason: "incident 4711".into(),
            by: "alice".into(),
            since: datetime!(2026-12-01 08:00 UTC),
        }),
        ..Observed::default()
    };
    let e = evaluate(&s, observed, datetime!(2026-12-01 12:00 UTC));
    assert_eq!(
        e.reasons,
        vec![
            "halted by alice: incident 4711".to_owned(),
            "outside the deployment window (Mon 09:00–10:00 Europe/Berlin)".to_owned(),
            "alarm prod-api-5xx is in ALARM".to_owned(),
        ]
    );
}

// ---------------------------------------------------------------------------------------------
// Bake helpers

fn alarm(name: &str, state: AlarmValue, transitioned_at: Option<OffsetDateTime>) -> AlarmState {
    AlarmState {
        name: name.into(),
        state,
        actions_enabled: true,
        reason: None,
        transitioned_at,
    }
}

#[test]
fn a_bake_fails_on_every_transition_of_a_gate_alarm_into_alarm() {
    let s = GateSettings {
        alarm_names: vec!["db-cpu".into()],
        alarm_prefixes: vec!["prod-".into()],
        ..GateSettings::default()
    };
    let t = |name: &str, at: OffsetDateTime, state: AlarmValue| AlarmTransition {
        name: name.into(),
        at,
        state,
    };
    let history = vec![
        t(
            "prod-api-5xx",
            datetime!(2026-12-01 09:20 UTC),
            AlarmValue::Alarm,
        ),
        t(
            "prod-api-5xx",
            datetime!(2026-12-01 09:21 UTC),
            AlarmValue::Ok,
        ),
        t(
            "staging-api",
            datetime!(2026-12-01 09:22 UTC),
            AlarmValue::Alarm,
        ),
        t(
            "db-cpu",
            datetime!(2026-12-01 10:20 +01:00),
            AlarmValue::Alarm,
        ),
        t(
            "db-cpu-2",
            datetime!(2026-12-01 09:24 UTC),
            AlarmValue::Alarm,
        ),
    ];
    assert_eq!(
        bake_failures(&s, &history),
        vec![
            "alarm prod-api-5xx was in ALARM at 2026-12-01T09:20:00Z".to_owned(),
            "alarm db-cpu was in ALARM at 2026-12-01T09:20:00Z".to_owned(),
        ]
    );
}

#[test]
fn bake_minutes_in_a_pipeline_ask_each_alarm_to_have_been_ok_that_long() {
    let now = datetime!(2026-12-01 09:30 UTC);
    let s = GateSettings {
        alarm_prefixes: vec!["prod-".into()],
        bake_minutes: 15,
        ..GateSettings::default()
    };
    let alarms = vec![
        alarm("prod-a", AlarmValue::Ok, Some(now - Duration::minutes(3))),
        alarm("prod-b", AlarmValue::Ok, Some(now - Duration::minutes(15))),
        alarm("prod-c", AlarmValue::Ok, None),
    ];
    assert_eq!(
        alarms_not_baked(&s, &alarms, now),
        vec!["alarm prod-a has been OK for only 3 of 15 minutes".to_owned()]
    );
    let observed = || Observed {
        alarms: Some(Ok(alarms.clone())),
        ..Observed::default()
    };
    assert!(!evaluate_in_pipeline(&s, observed(), now).pass);
    assert!(
        evaluate(&s, observed(), now).pass,
        "between waves bakeMinutes is a wait after the wave, not an age of the alarms"
    );
}

// ---------------------------------------------------------------------------------------------
// Validation

fn manifest_errors(gates: serde_json::Value) -> Vec<(String, String)> {
    let text = json!({"releaseId": "r1", "pipelines": ["a"], "gates": gates}).to_string();
    match Manifest::parse(text.as_bytes()) {
        Ok(m) => panic!("accepted: {m:?}"),
        Err(rejection) => rejection
            .0
            .into_iter()
            .map(|e| (e.path, e.message))
            .collect(),
    }
}

fn has(errors: &[(String, String)], path: &str, words: &str) {
    assert!(
        errors.iter().any(|(p, m)| p == path && m.contains(words)),
        "no error at {path} saying {words:?} in {errors:#?}"
    );
}

#[test]
fn manifest_gates_report_every_problem_with_its_path() {
    let errors = manifest_errors(json!({
        "alarmNames": ["", "ok-name"],
        "alarmPrefixes": [3],
        "insufficientData": "ignore",
        "bakeMinutes": 2000,
        "maxWaitMinutes": 0,
        "waitMinutes": 30,
        "executionId": "#{codepipeline.PipelineExecutionId}",
        "extra": true,
        "health": {"enabled": "yes"},
        "windows": {
            "timezone": "Europe/Berln",
            "allow": [
                {"days": ["Mon", "Monday", "Mon"], "from": "9:00", "to": "24:00"},
                {"from": "10:00", "to": "10:00"},
                {"from": "10:00"},
                {"from": "23:00", "to": "24:30", "note": "x"}
            ],
            "deny": [
                {"from": "2026-12-20T00:00", "to": "2026-12-19T00:00"},
                {"from": "2026-02-30T00:00", "to": "2026-12-20"}
            ]
        }
    }));
    has(&errors, "$.gates.alarmNames[0]", "must not be empty");
    has(&errors, "$.gates.alarmPrefixes[0]", "expected a string");
    has(&errors, "$.gates.insufficientData", "\"fail\" or \"pass\"");
    has(&errors, "$.gates.bakeMinutes", "from 0 to 1440");
    has(&errors, "$.gates.maxWaitMinutes", "from 1 to 10080");
    has(
        &errors,
        "$.gates.waitMinutes",
        "belongs to the health-gate action's UserParameters",
    );
    has(
        &errors,
        "$.gates.executionId",
        "belongs to the health-gate action's UserParameters",
    );
    has(&errors, "$.gates.extra", "unknown field");
    has(&errors, "$.gates.health.enabled", "true or false");
    has(
        &errors,
        "$.gates.windows.timezone",
        "unknown time zone \"Europe/Berln\"",
    );
    has(
        &errors,
        "$.gates.windows.allow[0].days[1]",
        "\"Monday\" is not a day",
    );
    has(
        &errors,
        "$.gates.windows.allow[0].days[2]",
        "Mon is listed twice",
    );
    has(
        &errors,
        "$.gates.windows.allow[0].from",
        "HH:MM from 00:00 to 23:59",
    );
    has(&errors, "$.gates.windows.allow[1].to", "the same as from");
    has(&errors, "$.gates.windows.allow[2].to", "is required");
    has(&errors, "$.gates.windows.allow[3].note", "unknown field");
    has(&errors, "$.gates.windows.deny[0].to", "must be after from");
    has(
        &errors,
        "$.gates.windows.deny[1].from",
        "2026-02-30 is not a date",
    );
    has(&errors, "$.gates.windows.deny[1].to", "YYYY-MM-DDTHH:MM");
    // Each problem once.
    let mut paths: Vec<&String> = errors.iter().map(|(p, _)| p).collect();
    let n = paths.len();
    paths.sort();
    paths.dedup();
    assert_eq!(paths.len(), n, "{errors:#?}");
}

#[test]
fn manifest_gates_must_be_an_object_and_windows_need_a_timezone() {
    has(&manifest_errors(json!([])), "$.gates", "expected an object");
    has(
        &manifest_errors(json!({"windows": {"allow": []}})),
        "$.gates.windows.timezone",
        "is required",
    );
}

#[test]
fn valid_gates_are_kept_serialized_and_counted_in_the_worst_case() {
    let text = json!({
        "releaseId": "r1",
        "pipelines": ["a", {"name": "b", "wave": 2}],
        "gates": {
            "alarmPrefixes": ["prod-"],
            "windows": {
                "timezone": "Europe/Berlin",
                "allow": [{"days": ["Mon", "Tue"], "from": "22:00", "to": "06:00"}],
                "deny": [{"from": "2026-12-20T00:00", "to": "2027-01-04T00:00", "reason": "freeze"}]
            },
            "bakeMinutes": 15,
            "maxWaitMinutes": 240
        }
    })
    .to_string();
    let m = Manifest::parse(text.as_bytes()).unwrap();
    let gates = m.gates.clone().unwrap();
    assert_eq!(gates.max_wait_minutes(), 240);
    assert_eq!(m.gate_minutes(), 2 * (240 + 15));
    assert_eq!(m.worst_case_minutes(), 2 * 120 + 2 * (240 + 15) + 10);
    let back = serde_json::to_value(&m).unwrap();
    assert_eq!(
        back["gates"],
        json!({
            "alarmPrefixes": ["prod-"],
            "windows": {
                "timezone": "Europe/Berlin",
                "allow": [{"days": ["Mon", "Tue"], "from": "22:00", "to": "06:00"}],
                "deny": [{"from": "2026-12-20T00:00", "to": "2027-01-04T00:00", "reason": "freeze"}]
            },
            "bakeMinutes": 15,
            "maxWaitMinutes": 240
        })
    );
    let again: Manifest = serde_json::from_value(back).unwrap();
    assert_eq!(again, m);

    let plain = Manifest::parse(br#"{"releaseId": "r1", "pipelines": ["a"]}"#).unwrap();
    assert_eq!(plain.gates, None);
    assert!(serde_json::to_value(&plain).unwrap().get("gates").is_none());
    let default_wait = Manifest::parse(
        br#"{"releaseId": "r1", "pipelines": ["a"], "gates": {"alarmNames": ["x"]}}"#,
    )
    .unwrap();
    assert_eq!(
        default_wait.gates.unwrap().max_wait_minutes(),
        DEFAULT_GATE_MAX_WAIT_MINUTES
    );
}

#[test]
fn gates_that_push_the_worst_case_past_30_days_are_rejected() {
    let pipelines: Vec<_> = (1..=8)
        .map(|w| json!({"name": format!("p{w}"), "wave": w}))
        .collect();
    let text = json!({
        "releaseId": "r1",
        "pipelines": pipelines,
        "gates": {"alarmNames": ["x"], "maxWaitMinutes": 7 * 24 * 60}
    })
    .to_string();
    let errors = Manifest::parse(text.as_bytes()).unwrap_err().0;
    assert_eq!(errors[0].path, "$.pipelines");
    assert!(
        errors[0].message.contains("gates.maxWaitMinutes"),
        "{}",
        errors[0].message
    );
}

#[test]
fn user_parameters_report_problems_with_paths_and_an_example() {
    let e = GateSettings::parse(Some(
        r#"{"maxWaitMinutes": 10, "waitMinutes": 2000, "windows": {"timezone": "Mars/Olympus"}, "alarmNames": [""]}"#,
    ))
    .unwrap_err();
    for words in [
        "UserParameters is not valid gate settings",
        "$.maxWaitMinutes: belongs to the manifest's gates",
        "$.waitMinutes: expected an integer from 0 to 1380",
        "$.windows.timezone: unknown time zone \"Mars/Olympus\"",
        "$.alarmNames[0]: must not be empty",
        "Expected JSON such as {\"alarmNames\"",
    ] {
        assert!(e.contains(words), "{words:?} not in {e}");
    }
    let not_json = GateSettings::parse(Some("alarmNames=x")).unwrap_err();
    assert!(not_json.contains("$: is not JSON"), "{not_json}");
    assert_eq!(GateSettings::parse(Some("  ")), Ok(GateSettings::default()));
    let ok = GateSettings::parse(Some(
        r#"{"alarmNames": ["a"], "waitMinutes": 1380, "bakeMinutes": 15, "executionId": "e-1"}"#,
    ))
    .unwrap();
    assert_eq!((ok.wait_minutes, ok.bake_minutes), (1380, 15));
    // Settings built in code are checked by the same rules.
    let built = GateSettings {
        wait_minutes: 5,
        ..GateSettings::default()
    };
    assert_eq!(built.validate("$.gates", GateContext::Manifest).len(), 1);
    assert!(built.validate("$", GateContext::Action).is_empty());
}

// ---------------------------------------------------------------------------------------------
// The health-gate action

struct Action {
    alarms: FakeAlarms,
    health: FakeHealth,
    jobs: RecordingJobs,
    store: MemoryStore,
    clock: ManualClock,
}

impl Action {
    /// Starts at 2026-12-01T09:00:00Z, a Tuesday.
    fn new() -> Self {
        Self {
            alarms: FakeAlarms::default(),
            health: FakeHealth::default(),
            jobs: RecordingJobs::default(),
            store: MemoryStore::new(),
            clock: ManualClock::new(datetime!(2026-12-01 09:00 UTC)),
        }
    }

    fn ports(&self) -> GatePorts<'_> {
        GatePorts {
            alarms: &self.alarms,
            health: &self.health,
            jobs: &self.jobs,
            store: &self.store,
            clock: &self.clock,
        }
    }

    async fn run(
        &self,
        job: &str,
        params: &serde_json::Value,
        token: Option<&str>,
    ) -> rm_core::usecases::GateDecision {
        run_health_gate(job, Some(&params.to_string()), token, &self.ports())
            .await
            .unwrap()
    }

    fn last_token(&self) -> String {
        self.jobs.holds().last().unwrap().1.clone()
    }

    fn advance(&self, minutes: i64) {
        self.clock.advance(Duration::minutes(minutes));
    }
}

#[tokio::test]
async fn a_held_job_continues_until_the_alarm_clears() {
    let a = Action::new();
    a.alarms.set(
        "prod-api-5xx",
        AlarmValue::Alarm,
        datetime!(2026-12-01 08:50 UTC),
    );
    let params = json!({"alarmNames": ["prod-api-5xx"], "waitMinutes": 60});
    let first = a.run("job-1", &params, None).await;
    assert!(!first.pass && first.held, "{first:?}");
    assert!(a.jobs.results().is_empty(), "held, not answered as failed");
    let (job, token, message) = a.jobs.holds()[0].clone();
    assert_eq!(job, "job-1");
    assert_eq!(
        GateContinuation::read(Some(&token)),
        Some(GateContinuation {
            first_evaluated_at: datetime!(2026-12-01 09:00 UTC)
        })
    );
    assert_eq!(token, r#"{"firstEvaluatedAt":"2026-12-01T09:00:00Z"}"#);
    assert!(
        message.contains("0 of 60 minutes") && message.contains("alarm prod-api-5xx is in ALARM"),
        "{message}"
    );

    a.advance(10);
    let second = a.run("job-2", &params, Some(&token)).await;
    assert!(
        second.held && second.reason.contains("10 of 60 minutes"),
        "{second:?}"
    );
    assert_eq!(
        a.last_token(),
        token,
        "the first evaluation's time is carried on"
    );

    a.alarms.set(
        "prod-api-5xx",
        AlarmValue::Ok,
        datetime!(2026-12-01 09:12 UTC),
    );
    a.advance(5);
    let third = a.run("job-3", &params, Some(&a.last_token())).await;
    assert!(third.pass && !third.held, "{third:?}");
    assert_eq!(
        a.jobs.results(),
        vec![("job-3".into(), true, third.reason.clone())]
    );
    assert!(
        third.reason.contains("after waiting 15 minutes"),
        "{}",
        third.reason
    );
}

#[tokio::test]
async fn a_job_still_held_after_wait_minutes_fails_with_the_reasons() {
    let a = Action::new();
    a.alarms.set(
        "prod-api-5xx",
        AlarmValue::Alarm,
        datetime!(2026-12-01 08:50 UTC),
    );
    let params = json!({"alarmNames": ["prod-api-5xx"], "waitMinutes": 30});
    a.run("job-1", &params, None).await;
    let token = a.last_token();
    a.advance(31);
    let last = a.run("job-2", &params, Some(&token)).await;
    assert!(!last.pass && !last.held);
    assert_eq!(
        a.jobs.results(),
        vec![(
            "job-2".into(),
            false,
            "still held after 31 minutes: alarm prod-api-5xx is in ALARM".into()
        )]
    );
}

#[tokio::test]
async fn without_wait_minutes_a_closed_gate_fails_at_once() {
    let a = Action::new();
    a.alarms.set(
        "prod-api-5xx",
        AlarmValue::Alarm,
        datetime!(2026-12-01 08:50 UTC),
    );
    let d = a
        .run("job-1", &json!({"alarmPrefixes": ["prod-"]}), None)
        .await;
    assert!(!d.pass && !d.held);
    assert!(a.jobs.holds().is_empty());
    assert_eq!(
        a.jobs.results()[0].2,
        "deployment held: alarm prod-api-5xx is in ALARM"
    );
}

#[tokio::test]
async fn a_deny_window_outlasting_the_wait_fails_at_once() {
    let a = Action::new();
    let params = json!({
        "waitMinutes": 120,
        "windows": {"timezone": "Europe/Berlin",
                    "deny": [{"from": "2026-11-30T00:00", "to": "2026-12-02T00:00", "reason": "audit"}]}
    });
    let d = a.run("job-1", &params, None).await;
    assert!(!d.pass && !d.held, "{d:?}");
    let message = &a.jobs.results()[0].2;
    assert!(
        message.contains(
            "inside the deny window 2026-11-30T00:00–2026-12-02T00:00 Europe/Berlin: audit"
        ) && message.contains("open at 2026-12-01T23:00:00Z")
            && message.contains("failing now"),
        "{message}"
    );
    // Allow windows that open within the wait hold the job, saying when.
    let b = Action::new();
    let params = json!({
        "waitMinutes": 120,
        "windows": {"timezone": "Europe/Berlin", "allow": [{"from": "11:00", "to": "12:00"}]}
    });
    let held = b.run("job-1", &params, None).await;
    assert!(held.held, "{held:?}");
    assert!(
        held.reason
            .contains("the deployment windows open at 2026-12-01T10:00:00Z"),
        "{}",
        held.reason
    );
    b.advance(60);
    let open = b.run("job-2", &params, Some(&b.last_token())).await;
    assert!(open.pass, "{open:?}");
}

#[tokio::test]
async fn the_halt_holds_the_action_until_it_is_lifted() {
    let a = Action::new();
    let halt = Halt {
        reason: "incident 4711".into(),
        by: "alice".into(),
        since: datetime!(2026-12-01 08:00 UTC),
    };
    a.store.set_halt(Some(&halt)).await.unwrap();
    let params = json!({"waitMinutes": 60});
    let d = a.run("job-1", &params, None).await;
    assert!(
        d.held && d.reason.contains("halted by alice: incident 4711"),
        "{d:?}"
    );
    a.store.set_halt(None).await.unwrap();
    a.advance(1);
    let open = a.run("job-2", &params, Some(&a.last_token())).await;
    assert!(open.pass, "{open:?}");
}

#[tokio::test]
async fn a_cancelled_release_holds_the_action_through_its_execution_id() {
    let a = Action::new();
    let pipelines = FakePipelines::with(&["app"]);
    let source = FakeSource::default();
    let manifest_ports = ManifestPorts {
        store: &a.store,
        pipelines: &pipelines,
        source: &source,
        clock: &a.clock,
        bus: &NO_BUS,
    };
    let request = CheckManifestRequest {
        input: json!({"releaseId": "r1", "pipelines": ["app"]}),
        execution_name: "exec-1".into(),
    };
    check_manifest(&request, &manifest_ports).await.unwrap();
    let id = ReleaseId::parse("r1").unwrap();
    a.store
        .record_start(&id, "exec-1", "app", "pexec-1", a.clock.now_utc(), &[])
        .await
        .unwrap();
    let params = json!({"executionId": "pexec-1", "waitMinutes": 60});
    assert!(
        a.run("job-1", &params, None).await.pass,
        "RUNNING: not held"
    );

    let mut record = a.store.release_record(&id).await.unwrap().unwrap();
    record.status = ReleaseStatus::Cancelled;
    record.cause = Some("cancelled by bob: bad build".into());
    record.version += 1;
    a.store.update_release(&record, &[]).await.unwrap();
    let d = a.run("job-2", &params, None).await;
    assert!(d.held, "{d:?}");
    assert!(
        d.reason
            .contains("release r1 is CANCELLED: cancelled by bob: bad build"),
        "{}",
        d.reason
    );
    // An execution no release started is not held by this check.
    let other = json!({"executionId": "someone-elses", "waitMinutes": 60});
    assert!(a.run("job-3", &other, None).await.pass);
}

#[tokio::test]
async fn bake_minutes_hold_until_each_alarm_has_been_ok_that_long() {
    let a = Action::new();
    a.alarms.set(
        "prod-api-5xx",
        AlarmValue::Ok,
        datetime!(2026-12-01 08:57 UTC),
    );
    let params = json!({"alarmPrefixes": ["prod-"], "bakeMinutes": 15, "waitMinutes": 60});
    let d = a.run("job-1", &params, None).await;
    assert!(d.held, "{d:?}");
    assert!(
        d.reason
            .contains("alarm prod-api-5xx has been OK for only 3 of 15 minutes"),
        "{}",
        d.reason
    );
    a.advance(12);
    let open = a.run("job-2", &params, Some(&a.last_token())).await;
    assert!(open.pass, "{open:?}");
}

#[tokio::test]
async fn a_bad_continuation_token_starts_the_wait_again() {
    let a = Action::new();
    a.alarms.set(
        "prod-api-5xx",
        AlarmValue::Alarm,
        datetime!(2026-12-01 08:50 UTC),
    );
    let params = json!({"alarmNames": ["prod-api-5xx"], "waitMinutes": 60});
    let d = a.run("job-1", &params, Some("not json")).await;
    assert!(d.held && d.reason.contains("0 of 60"), "{d:?}");
    assert_eq!(
        a.last_token(),
        r#"{"firstEvaluatedAt":"2026-12-01T09:00:00Z"}"#
    );
}

#[tokio::test]
async fn bad_user_parameters_fail_the_job_with_every_problem() {
    let a = Action::new();
    let d = a
        .run(
            "job-1",
            &json!({"waitMinutes": 5000, "windows": {"timezone": "Nowhere"}}),
            None,
        )
        .await;
    assert!(!d.pass && !d.held);
    let message = &a.jobs.results()[0].2;
    assert!(
        message.contains("$.waitMinutes") && message.contains("\"Nowhere\""),
        "{message}"
    );
}

trait NowUtc {
    fn now_utc(&self) -> OffsetDateTime;
}

impl NowUtc for ManualClock {
    fn now_utc(&self) -> OffsetDateTime {
        use rm_core::ports::Clock;
        self.now()
    }
}

#[test]
fn the_sample_of_invalid_gates_reports_each_problem() {
    let path = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../events/bad-manifests/invalid-gates.json"
    );
    let text = std::fs::read(path).unwrap();
    let errors: Vec<(String, String)> = Manifest::parse(&text)
        .unwrap_err()
        .0
        .into_iter()
        .map(|e| (e.path, e.message))
        .collect();
    has(
        &errors,
        "$.gates.waitMinutes",
        "belongs to the health-gate action",
    );
    has(&errors, "$.gates.windows.timezone", "\"Europe/Berln\"");
    has(
        &errors,
        "$.gates.windows.allow[0].days[1]",
        "\"Tuesday\" is not a day",
    );
    has(&errors, "$.gates.windows.allow[0].from", "HH:MM");
    has(
        &errors,
        "$.gates.windows.deny[0].to",
        "must be after from (2027-01-04T00:00)",
    );
    assert_eq!(errors.len(), 5, "{errors:#?}");
}

/// The handler reads the job's `data.continuationToken` (set when CodePipeline invokes the
/// action again after a hold) and answers `{"jobId", "pass", "held", "reason"}`.
#[tokio::test]
async fn the_handler_carries_the_continuation_token_of_the_job() {
    let a = Action::new();
    a.alarms.set(
        "prod-api-5xx",
        AlarmValue::Alarm,
        datetime!(2026-12-01 08:50 UTC),
    );
    let path = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../events/codepipeline-job.json"
    );
    let mut job: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
    job["CodePipeline.job"]["data"]["actionConfiguration"]["configuration"]["UserParameters"] =
        json!(r#"{"alarmNames": ["prod-api-5xx"], "waitMinutes": 60}"#);
    let job_id = job["CodePipeline.job"]["id"].as_str().unwrap().to_owned();
    let answer = rm_core::handlers::health_gate::handle(job.clone(), &a.ports())
        .await
        .unwrap();
    assert_eq!(answer["held"], true, "{answer}");
    assert_eq!(answer["jobId"], job_id.as_str());
    let token = a.last_token();

    a.advance(61);
    job["CodePipeline.job"]["data"]["continuationToken"] = json!(token);
    let answer = rm_core::handlers::health_gate::handle(job, &a.ports())
        .await
        .unwrap();
    assert_eq!(answer["pass"], false);
    assert_eq!(answer["held"], false);
    assert!(
        answer["reason"]
            .as_str()
            .unwrap()
            .starts_with("still held after 61 minutes: alarm prod-api-5xx is in ALARM"),
        "{answer}"
    );
}

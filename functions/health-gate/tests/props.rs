//! Property tests of health-gate's handler: every job it can identify is answered exactly once
//! (a message CodePipeline accepts, never the artifact credentials), anything else is a typed
//! error that answers nothing, and nothing panics.

use health_gate::handle;
use proptest::collection::vec;
use proptest::prelude::*;
use proptest::sample::select;
use rm_core::gate::GateSettings;
use rm_core::ports::AlarmState;
use rm_core::TaskError;
use rm_testkit::props::{
    any_bytes, any_json, any_text, block_on, check_keys, check_result, config, event, mutated,
    text_field, World,
};
use serde_json::{json, Value};

/// A payload without a job id cannot be answered: `BadInput` (the in-memory job results do
/// not fail, so nothing else).
const ERRORS: &[&str] = &["BadInput"];

/// CodePipeline's cap on a job result's message.
const MAX_MESSAGE_CHARS: usize = 5000;

/// The sample job's artifact credentials: no answer may carry them.
const SECRETS: [&str; 3] = [
    "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY",
    "FQoGZXIvYXdzEXAMPLESESSIONTOKENDONOTLOG",
    "AKIAIOSFODNN7EXAMPLE",
];

/// The in-memory ports with the sample job's two alarms; `firing` puts one in ALARM.
fn world(firing: bool) -> World {
    let world = World::new();
    let alarm = |name: &str, state: &str| AlarmState {
        name: name.into(),
        state: state.parse().unwrap(),
        actions_enabled: true,
        reason: Some(format!("Threshold Crossed: {name}")),
        transitioned_at: None,
    };
    *world.alarms.alarms.lock().unwrap() = vec![
        alarm("payments-api-5xx", if firing { "ALARM" } else { "OK" }),
        alarm("prod-payments-latency", "OK"),
    ];
    world
}

fn run(world: &World, payload: Value) -> Result<Value, TaskError> {
    let ports = world.gate_ports();
    block_on(handle(payload, &ports))
}

fn check(world: &World, payload: Value) -> Result<(), TestCaseError> {
    let job_id = payload
        .pointer("/CodePipeline.job/id")
        .and_then(Value::as_str)
        .map(str::to_owned);
    let result = run(world, payload);
    let answers = world.jobs.results();
    let Some(job_id) = job_id else {
        prop_assert!(result.is_err(), "a payload without a job id: {:?}", result);
        prop_assert!(
            answers.is_empty(),
            "answered a job it cannot name: {:?}",
            answers
        );
        return check_result(result, ERRORS, |_| Ok(()));
    };
    let out = match result {
        Ok(out) => out,
        Err(e) => {
            return Err(TestCaseError::fail(format!(
                "job {job_id:?} not answered: {} {e}",
                e.error_type()
            )))
        }
    };
    check_keys(&out, &["held", "jobId", "pass", "reason"])?;
    prop_assert_eq!(&out["jobId"], &json!(job_id));
    let pass = out["pass"].as_bool();
    prop_assert!(pass.is_some(), "{}", out);
    let reason = text_field(&out, "reason")?;
    prop_assert_eq!(answers.len(), 1, "exactly one answer: {:?}", answers);
    let (answered, passed, message) = &answers[0];
    prop_assert_eq!(answered, &job_id);
    prop_assert_eq!(Some(*passed), pass);
    prop_assert!(!message.trim().is_empty(), "an empty job message");
    prop_assert!(
        message.chars().count() <= MAX_MESSAGE_CHARS,
        "a job message of {} characters; CodePipeline takes {}",
        message.chars().count(),
        MAX_MESSAGE_CHARS
    );
    prop_assert!(
        reason.starts_with(message.as_str()),
        "{:?} / {:?}",
        reason,
        message
    );
    for secret in SECRETS {
        prop_assert!(!message.contains(secret), "a credential in {:?}", message);
        prop_assert!(!reason.contains(secret), "a credential in {:?}", reason);
    }
    Ok(())
}

/// What the gate must decide for these UserParameters in [`world`]: bad settings fail; a
/// named alarm that does not exist holds; `payments-api-5xx`, when firing and selected by
/// name or prefix, holds; everything else (both alarms otherwise OK, no AWS Health issue)
/// passes.
fn expected_pass(user_parameters: &str, firing: bool) -> bool {
    let Ok(settings) = GateSettings::parse(Some(user_parameters)) else {
        return false;
    };
    let known = ["payments-api-5xx", "prod-payments-latency"];
    let selects = |alarm: &str| {
        settings.alarm_names.iter().any(|n| n == alarm)
            || settings
                .alarm_prefixes
                .iter()
                .any(|p| alarm.starts_with(p.as_str()))
    };
    let missing = settings
        .alarm_names
        .iter()
        .any(|n| !known.contains(&n.as_str()));
    !(missing || firing && selects("payments-api-5xx"))
}

/// The sample job with these UserParameters.
fn with_user_parameters(text: String) -> Value {
    let mut job = event("codepipeline-job.json");
    job["CodePipeline.job"]["data"]["actionConfiguration"]["configuration"]["UserParameters"] =
        json!(text);
    job
}

/// UserParameters text shaped like gate settings: the right keys (and some wrong ones),
/// mostly with values of the right type, sometimes of any kind.
fn settings_like() -> impl Strategy<Value = String> {
    let texts = || {
        vec(
            prop_oneof![
                select(vec![
                    "payments-api-5xx",
                    "prod-payments-",
                    "prod-",
                    "missing",
                    ""
                ])
                .prop_map(str::to_owned),
                any_text(),
            ],
            0..4,
        )
        .prop_map(|v| json!(v))
    };
    let health = (
        any::<bool>(),
        texts(),
        texts(),
        proptest::option::weighted(0.2, (any_text(), any_json())),
    )
        .prop_map(|(enabled, regions, services, other)| {
            let mut h = json!({"enabled": enabled, "regions": regions, "services": services});
            if let Some((k, v)) = other {
                h[k] = v;
            }
            h
        });
    let field = prop_oneof![
        texts().prop_map(|v| ("alarmNames".to_owned(), v)),
        texts().prop_map(|v| ("alarmPrefixes".to_owned(), v)),
        select(vec!["fail", "pass", "FAIL"])
            .prop_map(|s| ("insufficientData".to_owned(), json!(s))),
        health.prop_map(|v| ("health".to_owned(), v)),
        any::<bool>().prop_map(|b| ("failOpen".to_owned(), json!(b))),
    ];
    let wrong = prop_oneof![
        (
            select(vec![
                "alarmNames",
                "alarmPrefixes",
                "insufficientData",
                "health",
                "failOpen"
            ])
            .prop_map(str::to_owned),
            any_json(),
        ),
        (any_text(), any_json()),
    ];
    (vec(field, 0..5), proptest::option::weighted(0.3, wrong)).prop_map(|(fields, wrong)| {
        let mut settings = serde_json::Map::new();
        for (k, v) in fields.into_iter().chain(wrong) {
            settings.insert(k, v);
        }
        Value::Object(settings).to_string()
    })
}

proptest! {
    #![proptest_config(config())]

    #[test]
    fn any_json_payload_is_answered_or_a_typed_error(payload in any_json(), firing in any::<bool>()) {
        check(&world(firing), payload)?;
    }

    #[test]
    fn a_mutated_job_is_answered_once(
        payload in mutated(event("codepipeline-job.json")),
        firing in any::<bool>(),
    ) {
        check(&world(firing), payload)?;
    }

    #[test]
    fn any_user_parameters_text_is_answered_once(text in any_text(), firing in any::<bool>()) {
        check(&world(firing), with_user_parameters(text))?;
    }

    #[test]
    fn any_user_parameters_bytes_are_answered_once(bytes in any_bytes(), firing in any::<bool>()) {
        let text = String::from_utf8_lossy(&bytes).into_owned();
        check(&world(firing), with_user_parameters(text))?;
    }

    #[test]
    fn settings_shaped_user_parameters_are_answered_once(
        text in settings_like(),
        firing in any::<bool>(),
    ) {
        let world = world(firing);
        check(&world, with_user_parameters(text.clone()))?;
        // The decision, not only its shape.
        let (_, passed, message) = &world.jobs.results()[0];
        prop_assert_eq!(*passed, expected_pass(&text, firing), "{} -> {}", text, message);
    }
}

/// Found by `settings_shaped_user_parameters_are_answered_once`: the parse error of bad
/// UserParameters quotes an unknown field's name, and went to the job uncapped.
#[test]
fn a_long_unknown_setting_is_answered_within_the_message_cap() {
    let world = world(false);
    let text = json!({ "x".repeat(6000): [] }).to_string();
    check(&world, with_user_parameters(text)).unwrap();
    let (_, passed, message) = &world.jobs.results()[0];
    assert!(!passed);
    assert!(message.contains("UserParameters"), "{message}");
}

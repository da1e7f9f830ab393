//! Property tests of start-pipelines' handler: on any payload it answers a run (or the
//! StopRunning count) or a typed error, and never panics.

use proptest::prelude::*;
use rm_core::TaskError;
use rm_testkit::props::{
    any_json, block_on, check_keys, check_result, config, event, mutated_event, text_field, World,
};
use serde_json::Value;

/// What the three tasks fail with on input the state machine would not send: a payload of
/// the wrong shape or an invalid release id (`BadInput`), a release or run that is not
/// recorded (`NotFound`), a task of an execution that does not own the release (the owner
/// condition of the store's write: `Transient`, as a conditional race is). The in-memory
/// pipelines start everything, so no `PipelineNotStartable`.
/// A task named by an execution that does not hold the release is `Duplicate`: it starts and
/// stops nothing (issue 9, "ended means ended").
const ERRORS: &[&str] = &["BadInput", "NotFound", "Transient", "Duplicate"];

/// The sample release claimed; with `started`, its first pipeline started too, so the stops
/// have something to stop.
fn world(started: bool) -> World {
    let world = World::new();
    block_on(async {
        world.claim_sample().await;
        if started {
            world.start_sample("payments-db-migrate").await;
        }
    });
    world
}

fn run(world: &World, payload: Value) -> Result<Value, TaskError> {
    block_on(start_pipelines::handle(payload, &world.run_ports()))
}

/// `{"pipeline", "status", "executionId"}` for start and stopTimedOut, `{"remaining",
/// "attempt"}` for stopRunning.
fn check_answer(out: Value) -> Result<(), TestCaseError> {
    if out.get("remaining").is_some() {
        check_keys(&out, &["remaining", "attempt"])?;
        prop_assert!(
            out["remaining"].is_u64() && out["attempt"].is_u64(),
            "{}",
            out
        );
        prop_assert!(out["attempt"].as_u64() >= Some(1), "{}", out);
    } else {
        check_keys(&out, &["pipeline", "status", "executionId"])?;
        text_field(&out, "pipeline")?;
        text_field(&out, "status")?;
        prop_assert!(
            out["executionId"].is_null() || out["executionId"].is_string(),
            "{}",
            out
        );
    }
    Ok(())
}

fn sample() -> impl Strategy<Value = Value> {
    mutated_event(&[
        "task-start-pipeline.json",
        "task-stop-timed-out.json",
        "task-stop-running.json",
    ])
}

proptest! {
    #![proptest_config(config())]

    #[test]
    fn any_json_payload_is_answered_or_a_typed_error(payload in any_json(), started in any::<bool>()) {
        let world = world(started);
        check_result(run(&world, payload), ERRORS, check_answer)?;
    }

    #[test]
    fn a_mutated_task_is_answered_or_a_typed_error(payload in sample(), started in any::<bool>()) {
        let world = world(started);
        check_result(run(&world, payload), ERRORS, check_answer)?;
    }

    #[test]
    fn stop_running_takes_any_attempt_count(
        attempt in prop_oneof![3 => any::<u32>(), 1 => (u32::MAX - 32)..=u32::MAX],
        started in any::<bool>(),
    ) {
        let world = world(started);
        let mut payload = event("task-stop-running.json");
        payload["attempt"] = attempt.into();
        check_result(run(&world, payload), &[], check_answer)?;
    }
}

/// Found by `stop_running_takes_any_attempt_count`: `attempt + 1` overflowed (a panic in the
/// dev profile, a wrap to 0 in release).
#[test]
fn stop_running_at_the_largest_attempt_count_answers() {
    for started in [false, true] {
        let world = world(started);
        let mut payload = event("task-stop-running.json");
        payload["attempt"] = u32::MAX.into();
        let out = run(&world, payload).expect("stop running");
        assert_eq!(out["attempt"], u32::MAX, "{out}");
        assert_eq!(out["remaining"], 0, "{out}");
    }
}

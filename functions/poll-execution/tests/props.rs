//! Property tests of poll-execution's handler: on any payload it answers what the await or
//! the sweep did, or a typed error, and never panics.

use proptest::prelude::*;
use rm_core::TaskError;
use rm_testkit::props::{
    any_json, any_text, block_on, check_keys, check_result, config, event, mutated_event,
    text_field, World,
};
use serde_json::Value;

/// What the await and the sweep fail with on input the state machine or the schedule would
/// not send: a payload of the wrong shape, another EventBridge event or an invalid release id
/// (`BadInput`), a run that is not recorded (`NotFound`).
/// A RunPipeline task names its execution: one that does not hold the release is `Duplicate`
/// (it may start nothing: issue 9, "ended means ended").
const ERRORS: &[&str] = &["BadInput", "NotFound", "Duplicate"];

/// The sample release claimed and its first pipeline started; with `waiting`, a task waits on
/// it, so the sweep has a run to poll.
fn world(waiting: bool) -> World {
    let world = World::new();
    block_on(async {
        world.claim_sample().await;
        world.start_sample("payments-db-migrate").await;
        if waiting {
            poll_execution::handle(event("task-await-pipeline.json"), &world.run_ports())
                .await
                .expect("the sample await task");
        }
    });
    world
}

fn run(world: &World, payload: Value) -> Result<Value, TaskError> {
    block_on(poll_execution::handle(payload, &world.run_ports()))
}

/// `{"status", "completed"}` for an await, `{"polled", "completed", "errors"}` for a sweep.
fn check_answer(out: Value) -> Result<(), TestCaseError> {
    if out.get("polled").is_some() {
        check_keys(&out, &["polled", "completed", "errors"])?;
        for k in ["polled", "completed", "errors"] {
            prop_assert!(out[k].is_u64(), "{}", out);
        }
        prop_assert!(
            out["completed"].as_u64() <= out["polled"].as_u64(),
            "{}",
            out
        );
    } else {
        check_keys(&out, &["status", "completed"])?;
        text_field(&out, "status")?;
        prop_assert!(out["completed"].is_boolean(), "{}", out);
    }
    Ok(())
}

fn sample() -> impl Strategy<Value = Value> {
    mutated_event(&[
        "task-await-pipeline.json",
        "scheduled-sweep.json",
        "task-sweep.json",
    ])
}

proptest! {
    #![proptest_config(config())]

    #[test]
    fn any_json_payload_is_answered_or_a_typed_error(payload in any_json(), waiting in any::<bool>()) {
        let world = world(waiting);
        check_result(run(&world, payload), ERRORS, check_answer)?;
    }

    #[test]
    fn a_mutated_task_or_schedule_is_answered_or_a_typed_error(
        payload in sample(),
        waiting in any::<bool>(),
    ) {
        let world = world(waiting);
        check_result(run(&world, payload), ERRORS, check_answer)?;
    }

    #[test]
    fn an_await_takes_any_task_token(token in any_text(), waiting in any::<bool>()) {
        let world = world(waiting);
        let mut payload = event("task-await-pipeline.json");
        payload["taskToken"] = token.into();
        check_result(run(&world, payload), &[], check_answer)?;
    }
}

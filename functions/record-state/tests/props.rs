//! Property tests of record-state's handler, and of the decoder of CodePipeline state-change
//! events it uses (`rm_core::usecases::decode_state_change`): on any payload the handler
//! answers what it did or a typed error, the decoder a change or a reason, and neither panics.

use proptest::prelude::*;
use rm_core::usecases::decode_state_change;
use rm_core::view::ReleaseView;
use rm_core::{ReleaseStatus, RunStatus, TaskError};
use rm_testkit::props::{
    any_json, block_on, check_keys, check_result, config, mutated_event, text_field, World,
};
use serde_json::{json, Value};

/// The execution the sample CodePipeline events name, and the token of the task waiting on it.
const EXECUTION_ID: &str = "12345678-1234-5678-abcd-12345678abcd";
const TOKEN: &str = "AQCEAAAAKgAAAAMAAAAAAAAAAeMc2fVw9ZQ8EXAMPLETASKTOKEN";

/// What RecordRelease fails with on input the state machine would not send: a payload of the
/// wrong shape or an invalid release id (`BadInput`), a release that is not recorded
/// (`NotFound`), a release another execution owns (`Duplicate`). A state-change event never
/// fails on its content: it is acknowledged as `Rejected` (the module documentation).
const ERRORS: &[&str] = &["BadInput", "NotFound", "Duplicate"];

/// The sample release claimed, payments-db-migrate started as the events' execution, and its
/// AwaitPipeline task waiting.
fn world() -> World {
    let world = World::new();
    block_on(async {
        world.claim_sample().await;
        world
            .wait_on_sample("payments-db-migrate", EXECUTION_ID, TOKEN)
            .await;
    });
    world
}

fn run(world: &World, payload: Value) -> Result<Value, TaskError> {
    block_on(record_state::handle(payload, &world.run_ports()))
}

/// What the handler answered for `payload`: the release JSON for RecordRelease; for a
/// state-change event, the outcome the decoder's verdict leads to.
fn check_answer(payload: &Value, out: Value) -> Result<(), TestCaseError> {
    if payload.get("detail-type").is_none() {
        let view: ReleaseView = serde_json::from_value(out.clone())
            .map_err(|e| TestCaseError::fail(format!("not the release JSON ({e}): {out}")))?;
        prop_assert_ne!(
            view.status,
            ReleaseStatus::Running,
            "an end recorded: {}",
            out
        );
        prop_assert!(view.ended_at.is_some(), "{}", out);
        return Ok(());
    }
    let outcome = text_field(&out, "outcome")?;
    match (decode_state_change(payload), outcome) {
        (Err(reason), "Rejected") => {
            check_keys(&out, &["outcome", "reason"])?;
            prop_assert_eq!(&out["reason"], &json!(reason));
            text_field(&out, "reason")?;
        }
        (Ok(None), "Ignored") => {
            check_keys(&out, &["outcome", "state"])?;
            let state = payload.pointer("/detail/state").unwrap_or(&Value::Null);
            prop_assert_eq!(&out["state"], state);
        }
        (Ok(Some(change)), "NotOurs") => {
            check_keys(&out, &["outcome", "pipeline", "executionId"])?;
            prop_assert_eq!(&out["pipeline"], &json!(change.pipeline));
            prop_assert_eq!(&out["executionId"], &json!(change.execution_id));
            prop_assert_ne!(change.execution_id.as_str(), EXECUTION_ID);
        }
        (Ok(Some(change)), "Recorded") => {
            check_keys(&out, &["outcome", "pipeline", "executionId", "status"])?;
            prop_assert_eq!(change.execution_id.as_str(), EXECUTION_ID);
            let status = text_field(&out, "status")?;
            prop_assert!(RunStatus::parse(status).is_some(), "{}", out);
        }
        (decoded, _) => {
            return Err(TestCaseError::fail(format!(
                "the decoder said {decoded:?}, the handler {out}"
            )))
        }
    }
    Ok(())
}

fn check(world: &World, payload: Value) -> Result<(), TestCaseError> {
    let result = run(world, payload.clone());
    if payload.get("detail-type").is_some() {
        // An EventBridge event: acknowledged, whatever it holds.
        prop_assert!(result.is_ok(), "an event failed: {:?}", result);
    }
    check_result(result, ERRORS, |out| check_answer(&payload, out))
}

/// The decoder's verdict on `event`: a change read from its detail, an untracked state, or a
/// reason saying what is wrong.
fn check_decoded(event: &Value) -> Result<(), TestCaseError> {
    match decode_state_change(event) {
        Ok(Some(change)) => {
            prop_assert_eq!(
                &event["detail-type"],
                "CodePipeline Pipeline Execution State Change"
            );
            prop_assert_eq!(&event["detail"]["pipeline"], &json!(change.pipeline));
            prop_assert_eq!(
                &event["detail"]["execution-id"],
                &json!(change.execution_id)
            );
            let state = event["detail"]["state"].as_str().unwrap_or_default();
            prop_assert_eq!(RunStatus::from_event_state(state), Some(change.status));
        }
        Ok(None) => {
            let state = event["detail"]["state"].as_str().unwrap_or_default();
            prop_assert_eq!(RunStatus::from_event_state(state), None);
        }
        Err(reason) => prop_assert!(!reason.trim().is_empty(), "an empty reason"),
    }
    Ok(())
}

fn state_change() -> impl Strategy<Value = Value> {
    mutated_event(&[
        "codepipeline-execution-started.json",
        "codepipeline-execution-succeeded.json",
        "codepipeline-execution-failed.json",
        "codepipeline-execution-stopped.json",
    ])
}

fn record_release() -> impl Strategy<Value = Value> {
    mutated_event(&[
        "task-record-release-succeeded.json",
        "task-record-release-failed.json",
    ])
}

proptest! {
    #![proptest_config(config())]

    #[test]
    fn any_json_payload_is_answered_or_a_typed_error(payload in any_json()) {
        check(&world(), payload)?;
    }

    #[test]
    fn a_mutated_state_change_is_acknowledged_as_the_decoder_says(payload in state_change()) {
        check(&world(), payload)?;
    }

    #[test]
    fn a_mutated_record_release_task_is_answered_or_a_typed_error(payload in record_release()) {
        check(&world(), payload)?;
    }

    #[test]
    fn the_decoder_reads_any_json_or_says_why_not(v in any_json()) {
        check_decoded(&v)?;
    }

    #[test]
    fn the_decoder_reads_a_mutated_event_or_says_why_not(v in state_change()) {
        check_decoded(&v)?;
    }
}

//! Runs every conformance case (tests/conformance/*.json) in the engine and checks AWS's
//! documented answer (`expected`).

mod common;

use std::collections::HashMap;

use rm_states::{ExecutionConfig, ExecutionStatus, StateMachine};

#[test]
fn conformance_corpus_in_engine() {
    let cases = common::cases();
    assert!(
        cases.len() >= 60,
        "the corpus has only {} cases",
        cases.len()
    );
    let rt = common::virtual_runtime();
    let mut failures = Vec::new();
    for case in &cases {
        let machine = match StateMachine::from_json(&case.definition.to_string(), &HashMap::new()) {
            Ok(m) => m,
            Err(e) => {
                failures.push(format!("{}: load error: {e}", case.name));
                continue;
            }
        };
        let config = ExecutionConfig::new(
            "run",
            "conformance",
            time::macros::datetime!(2026-01-01 00:00 UTC),
            case.input.clone(),
        );
        let (execution, tokens) = machine.start(config);
        let handler = common::ScriptedHandler::new(tokens);
        let outcome = rt.block_on(execution.run(&handler));
        let status = match outcome.status {
            ExecutionStatus::Succeeded => "SUCCEEDED",
            ExecutionStatus::Failed => "FAILED",
            ExecutionStatus::TimedOut => "TIMED_OUT",
            ExecutionStatus::Aborted => "ABORTED",
        };
        if let Err(why) = common::check(
            &case.expected,
            status,
            outcome.output.as_ref(),
            outcome.error.as_deref(),
        ) {
            failures.push(format!("{} ({}): {why}", case.name, case.file.display()));
        }
    }
    assert!(
        failures.is_empty(),
        "{} of {} cases disagree:\n{}",
        failures.len(),
        cases.len(),
        failures.join("\n")
    );
}

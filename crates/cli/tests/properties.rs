//! Properties of the local run over random manifests and random pipeline behaviours, with the
//! real definition: the release SUCCEEDED exactly when every pipeline Succeeded, no pipeline
//! starts twice, and every started execution is recorded with its final status.

mod common;

use common::run;
use proptest::prelude::*;
use rm_core::release::{ReleaseStatus, RunStatus};
use rm_local::RunOutcome;
use serde_json::{json, Value};
use std::collections::HashSet;

#[derive(Debug, Clone)]
struct Pipeline {
    wave: u32,
    outcome: &'static str,
    duration: u32,
    events: &'static str,
    throttles: u32,
}

fn pipeline() -> impl Strategy<Value = Pipeline> {
    (
        1u32..=3,
        prop_oneof![
            6 => Just("Succeeded"),
            1 => Just("Failed"),
            1 => Just("Stopped"),
            1 => Just("Superseded"),
        ],
        1u32..=7200,
        prop_oneof![3 => Just("deliver"), 1 => Just("drop"), 1 => Just("duplicate")],
        0u32..=2,
    )
        .prop_map(|(wave, outcome, duration, events, throttles)| Pipeline {
            wave,
            outcome,
            duration,
            events,
            throttles,
        })
}

fn release() -> impl Strategy<Value = (Vec<Pipeline>, u32, bool)> {
    (
        prop::collection::vec(pipeline(), 1..=10),
        1u32..=5,
        any::<bool>(),
    )
}

fn inputs(pipelines: &[Pipeline], max_concurrency: u32, stop: bool) -> (Value, Value) {
    let specs: Vec<Value> = pipelines
        .iter()
        .enumerate()
        .map(|(i, p)| json!({"name": format!("p{i}"), "wave": p.wave, "timeoutMinutes": 180}))
        .collect();
    let manifest = json!({
        "releaseId": "prop",
        "maxConcurrency": max_concurrency,
        "onFailure": if stop { "stop" } else { "continue" },
        "pipelines": specs,
    });
    let behaviours: serde_json::Map<String, Value> = pipelines
        .iter()
        .enumerate()
        .map(|(i, p)| {
            (
                format!("p{i}"),
                json!({"outcome": p.outcome, "durationSeconds": p.duration,
                       "events": p.events, "throttleStarts": p.throttles}),
            )
        })
        .collect();
    (manifest, json!({ "pipelines": behaviours }))
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 24, ..ProptestConfig::default() })]

    #[test]
    fn releases_succeed_exactly_when_every_pipeline_does((pipelines, max_concurrency, stop) in release()) {
        let (manifest, sim) = inputs(&pipelines, max_concurrency, stop);
        let r = run(&manifest, &sim);
        let view = r.release.as_ref().expect("recorded");
        let all_succeed = pipelines.iter().all(|p| p.outcome == "Succeeded");

        prop_assert_eq!(r.outcome == RunOutcome::Succeeded, all_succeed, "{:?}", r.outcome);
        prop_assert!(matches!(r.outcome, RunOutcome::Succeeded | RunOutcome::Failed), "{:?}", r.outcome);
        prop_assert_eq!(view.status == ReleaseStatus::Succeeded, all_succeed);
        if all_succeed {
            prop_assert!(view.pipelines.iter().all(|p| p.status == RunStatus::Succeeded));
        }

        // No pipeline starts twice.
        let started: Vec<&str> = r.sim.executions.iter().map(|e| e.pipeline.as_str()).collect();
        let unique: HashSet<&str> = started.iter().copied().collect();
        prop_assert_eq!(started.len(), unique.len(), "{:?}", started);

        // Every started execution is recorded, with the status it ended in.
        for e in &r.sim.executions {
            let p = view.pipelines.iter().find(|p| p.name == e.pipeline).expect("a run per pipeline");
            prop_assert_eq!(p.execution_id.as_deref(), Some(e.execution_id.as_str()));
            prop_assert!(p.status.is_terminal(), "{} is {}", p.name, p.status);
            prop_assert_eq!(p.status, e.status, "{}", p.name);
            let statuses: Vec<RunStatus> = p.history.iter().map(|h| h.status).collect();
            let distinct: HashSet<RunStatus> = statuses.iter().copied().collect();
            prop_assert_eq!(statuses.len(), distinct.len(), "{}: {:?}", p.name, statuses);
        }
        // And only started pipelines carry an execution.
        for p in &view.pipelines {
            if p.execution_id.is_none() {
                prop_assert_eq!(p.status, RunStatus::NotStarted, "{}", p.name);
            }
        }
        prop_assert!(r.sim.peak_running <= max_concurrency as usize);
    }
}

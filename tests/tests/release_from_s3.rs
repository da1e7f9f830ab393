//! Scenario 1: a manifest uploaded to S3, its EventBridge "Object Created" event given to the
//! state machine (as the rule would), every pipeline succeeds: the release is SUCCEEDED and
//! every run is recorded with its history. Prints the CodePipeline API calls per pipeline
//! (emulator) and the state transitions per pipeline (moto's execution history) as a JSON line.

use rm_core::release::{ReleaseStatus, RunStatus};
use rm_e2e::{assert_runs, report, run_statuses, Stack, StackOptions, DEFAULT_WAIT};
use serde_json::json;
use std::time::Instant;

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn manifest_uploaded_to_s3_releases_every_pipeline() {
    let stack = Stack::start(StackOptions {
        sim: json!({"defaults": {"durationSeconds": 2},
                    "pipelines": {"ledger-worker": {"durationSeconds": 3}}}),
        ..StackOptions::default()
    })
    .await;
    stack.warm_up().await;

    let pipelines = ["payments-api", "ledger-worker", "web-frontend"];
    let manifest = json!({
        "releaseId": "2026.03.1",
        "description": "scenario 1",
        "pipelines": [
            {"name": "payments-api", "variables": {"VERSION": "1.4.2"}},
            "ledger-worker",
            {"name": "web-frontend", "wave": 2}
        ]
    });
    let event = stack
        .upload_manifest("releases/2026.03.1/release-manifest.json", &manifest)
        .await;
    let t0 = Instant::now();
    let arn = stack.start_execution("s3-2026-03-1", &event).await;
    let done = stack.wait_execution(&arn, DEFAULT_WAIT).await;
    let wall = t0.elapsed();
    assert_eq!(
        done.status().as_str(),
        "SUCCEEDED",
        "output {:?}\n{}",
        done.output(),
        stack.diagnostics_async(Some(&arn)).await
    );

    let release = stack
        .release("2026.03.1")
        .await
        .expect("the release is recorded");
    assert_eq!(release.release.status, ReleaseStatus::Succeeded);
    assert!(release.release.ended_at.is_some());
    let executions = stack.emulator.executions();
    assert_eq!(executions.len(), pipelines.len(), "{executions:#?}");
    let expected: Vec<(&str, RunStatus)> = pipelines
        .iter()
        .map(|p| (*p, RunStatus::Succeeded))
        .collect();
    assert_runs(&release, &executions, &expected);
    for run in &release.runs {
        assert_eq!(
            run_statuses(run),
            [RunStatus::InProgress, RunStatus::Succeeded],
            "{}: {:?}",
            run.pipeline(),
            run.history
        );
    }
    let view = stack.release_view("2026.03.1").await.unwrap();
    let wave2 = view
        .pipelines
        .iter()
        .find(|p| p.name == "web-frontend")
        .unwrap();
    let wave1_end = view
        .pipelines
        .iter()
        .filter(|p| p.wave == 1)
        .filter_map(|p| p.ended_at)
        .max()
        .unwrap();
    assert!(
        wave2.started_at.unwrap() >= wave1_end,
        "wave 2 starts after wave 1 ends"
    );

    // Each pipeline started exactly once (assert_runs), with its variables.
    let payments = executions
        .iter()
        .find(|e| e.pipeline == "payments-api")
        .unwrap();
    assert_eq!(
        payments.variables.get("VERSION").map(String::as_str),
        Some("1.4.2")
    );

    // Figures: API calls per pipeline (emulator), state transitions per pipeline (history).
    let calls = stack.emulator.calls();
    let per_pipeline: serde_json::Map<String, serde_json::Value> = pipelines
        .iter()
        .map(|p| {
            let ops = calls.get(*p).cloned().unwrap_or_default();
            let total: u32 = ops
                .iter()
                .filter(|(op, _)| !op.ends_with(".throttled"))
                .map(|(_, n)| n)
                .sum();
            (p.to_string(), json!({"total": total, "byOperation": ops}))
        })
        .collect();
    let transitions = stack.state_transitions(&arn).await;
    let history = stack.history(&arn).await.len();
    report(&json!({
        "scenario": "release_from_s3",
        "pipelines": pipelines.len(),
        "wallSeconds": wall.as_secs_f64(),
        "codepipelineCallsPerPipeline": per_pipeline,
        "stateTransitions": transitions,
        "stateTransitionsPerPipeline": transitions as f64 / pipelines.len() as f64,
        "historyEvents": history,
    }));
}

//! Under load: 200 concurrent duplicate check-manifest invocations against dynalite (faithful
//! conditional writes) claim exactly one release; a release of 100 pipelines completes through
//! the whole stack (its wall time is printed as an `E2E_FIGURES` JSON line).

use futures::StreamExt;
use rm_core::release::{ReleaseStatus, RunStatus};
use rm_e2e::{assert_runs, report, DynamoTarget, Stack, StackOptions};
use serde_json::{json, Value};
use std::time::{Duration, Instant};

/// `cargo lambda watch --concurrency` for the claim race: instances of check-manifest.
const INSTANCES: u32 = 8;
/// Invocations waiting on watch at once.
const IN_FLIGHT: usize = 2 * INSTANCES as usize;

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn two_hundred_duplicate_check_manifests_claim_one_release() {
    let stack = Stack::start(StackOptions {
        sim: json!({}),
        concurrency: INSTANCES,
        dynamo: DynamoTarget::Dynalite,
        state_machine: false,
        ..StackOptions::default()
    })
    .await;
    stack.warm_up().await;
    let manifest = json!({"releaseId": "load-1", "pipelines": ["p1", "p2", "p3"]});
    let event = stack
        .upload_manifest("releases/load-1.json", &manifest)
        .await;
    let t0 = Instant::now();
    let calls = (0..200).map(|i| {
        let payload = json!({"input": event, "executionName": format!("exec-{i:03}")});
        let stack = &stack;
        async move { (i, stack.invoke("check-manifest", payload).await) }
    });
    // All 200 race for the claim; at most IN_FLIGHT at once reach watch, which queues them
    // for its instances (watch stalls when hundreds of requests wait on it at once).
    let results: Vec<_> = tokio::time::timeout(
        Duration::from_secs(300),
        futures::stream::iter(calls)
            .buffer_unordered(IN_FLIGHT)
            .collect(),
    )
    .await
    .unwrap_or_else(|_| {
        panic!(
            "200 check-manifest invocations did not end in 300 s\n{}",
            stack.diagnostics(None)
        )
    });
    let took = t0.elapsed();
    let mut claimed = Vec::new();
    let mut duplicates = 0;
    let mut errors = Vec::new();
    for (i, r) in &results {
        if r.function_error.is_some() || r.status != 200 {
            errors.push(format!(
                "exec-{i:03}: {} {:?} {}",
                r.status, r.function_error, r.payload
            ));
        } else if r.payload["outcome"] == "Duplicate" {
            duplicates += 1;
        } else {
            claimed.push(format!("exec-{i:03}"));
        }
    }
    assert!(
        errors.is_empty(),
        "{} invocations failed: {errors:#?}",
        errors.len()
    );
    assert_eq!(claimed.len(), 1, "claimed by {claimed:?}");
    assert_eq!(duplicates, 199);
    let release = stack
        .release("load-1")
        .await
        .expect("the release is in dynalite");
    assert_eq!(release.release.owner, claimed[0]);
    // No state machine here: the claim wrote one run per pipeline, none started.
    assert_runs(
        &release,
        &stack.emulator.executions(),
        &[
            ("p1", RunStatus::NotStarted),
            ("p2", RunStatus::NotStarted),
            ("p3", RunStatus::NotStarted),
        ],
    );
    eprintln!("[e2e] 200 concurrent check-manifest invocations in {took:.1?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_release_of_100_pipelines_completes() {
    let stack = Stack::start(StackOptions {
        sim: json!({"defaults": {"durationSeconds": 3}}),
        concurrency: 4,
        ..StackOptions::default()
    })
    .await;
    stack.warm_up().await;
    let names: Vec<String> = (0..100).map(|i| format!("svc-{i:03}")).collect();
    let manifest = json!({
        "releaseId": "big-100",
        "maxConcurrency": 40,
        "pipelines": names.iter().enumerate().map(|(i, n)| json!({"name": n, "wave": 1 + i / 50})).collect::<Vec<Value>>(),
    });
    let input = stack
        .upload_manifest("releases/big-100.json", &manifest)
        .await;
    let t0 = Instant::now();
    let arn = stack.start_execution("big-100", &input).await;
    let done = stack.wait_execution(&arn, Duration::from_secs(900)).await;
    let wall = t0.elapsed();
    assert_eq!(
        done.status().as_str(),
        "SUCCEEDED",
        "{}",
        stack.diagnostics_async(Some(&arn)).await
    );
    let release = stack.release("big-100").await.unwrap();
    assert_eq!(release.release.status, ReleaseStatus::Succeeded);
    let executions = stack.emulator.executions();
    assert_eq!(executions.len(), 100);
    let expected: Vec<(&str, RunStatus)> = names
        .iter()
        .map(|n| (n.as_str(), RunStatus::Succeeded))
        .collect();
    assert_runs(&release, &executions, &expected);
    let calls: u32 = stack
        .emulator
        .calls()
        .iter()
        .filter(|(p, _)| !p.is_empty())
        .flat_map(|(_, ops)| ops.iter().filter(|(op, _)| !op.ends_with(".throttled")))
        .map(|(_, n)| n)
        .sum();
    let transitions = stack.state_transitions(&arn).await;
    report(&json!({
        "scenario": "release_of_100_pipelines",
        "pipelines": 100,
        "waves": 2,
        "maxConcurrency": 40,
        "pipelineSeconds": 3,
        "wallSeconds": wall.as_secs_f64(),
        "codepipelineCallsPerPipeline": calls as f64 / 100.0,
        "stateTransitions": transitions,
        "stateTransitionsPerPipeline": transitions as f64 / 100.0,
    }));
}

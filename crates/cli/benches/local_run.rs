//! Budgets of the local run (ARCHITECTURE.md §8), as a bench binary: `cargo bench -p
//! release-machine --bench local_run`.
//!
//! 1. 500 pipelines in 10 waves, all succeeding, about two simulated hours: wall time and peak
//!    RSS (budget < 1 s, < 200 MB).
//! 2. History events per pipeline with 10-minute and with 4-hour pipelines: equal, and within
//!    §8's budget of 10 per cleanly run pipeline.
//! 3. The seed's polling design (`events/seed/original-release_machine.asl.json`, a copy of
//!    the seed repository's definition) in the same engine with stub tasks, for
//!    the same releases: history events, state transitions and CodePipeline calls.
//! 4. `plan` of the 500-pipeline release (the same run in a scratch state directory, plus the
//!    inspection) and the timeline of its simulated release: wall time and SVG size.

use rm_local::runner::{RunOptions, RunReport};
use rm_local::sim::SimFile;
use rm_local::RunOutcome;
use rm_states::{ExecutionConfig, ExecutionStatus, StateMachine, TaskFailure, TaskHandler};
use serde_json::{json, Value};
use std::cell::Cell;
use std::collections::HashMap;
use std::time::{Duration, Instant};
use time::macros::datetime;

const SEED: &str = include_str!("../../../events/seed/original-release_machine.asl.json");

fn manifest(pipelines: usize, waves: usize, max_concurrency: u32, timeout_minutes: u32) -> Value {
    let per_wave = pipelines.div_ceil(waves);
    let specs: Vec<Value> = (0..pipelines)
        .map(|i| {
            json!({"name": format!("service-{i:03}"), "wave": i / per_wave + 1,
                   "timeoutMinutes": timeout_minutes})
        })
        .collect();
    json!({"releaseId": "bench", "maxConcurrency": max_concurrency, "pipelines": specs})
}

fn run(manifest: &Value, duration_seconds: u64) -> (RunReport, Duration) {
    let dir = tempfile::tempdir().expect("a temporary state directory");
    let mut opts = RunOptions::new(serde_json::to_vec(manifest).unwrap(), dir.path());
    opts.sim = SimFile::from_value(&json!({"defaults": {"durationSeconds": duration_seconds}}))
        .expect("a valid sim file");
    opts.start_time = Some(datetime!(2026-03-02 09:00:00 UTC));
    opts.execution_name = Some("local-bench".into());
    let wall = Instant::now();
    let report = rm_local::run_release(opts).expect("the run starts");
    let wall = wall.elapsed();
    assert_eq!(
        report.outcome,
        RunOutcome::Succeeded,
        "{:?}",
        report.outcome
    );
    (report, wall)
}

/// Peak resident set size of this process (VmHWM), in MiB.
fn peak_rss_mib() -> Option<f64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    let kib: f64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib / 1024.0)
}

fn hms(d: Duration) -> String {
    let s = d.as_secs();
    format!("{}:{:02}:{:02}", s / 3600, s / 60 % 60, s % 60)
}

fn api_calls(report: &RunReport) -> (f64, u32) {
    let totals: Vec<u32> = report.sim.calls.values().map(|c| c.total()).collect();
    let mean = totals.iter().sum::<u32>() as f64 / totals.len().max(1) as f64;
    (mean, totals.into_iter().max().unwrap_or(0))
}

/// The seed's Lambdas, stubbed: every pipeline starts at once and the release's pipelines all
/// finish after `release_seconds`; Check Pipelines would call GetPipelineExecution for each
/// pipeline on every poll.
struct SeedStubs {
    pipelines: Vec<String>,
    release_seconds: u64,
    t0: tokio::time::Instant,
    codepipeline_calls: Cell<u64>,
}

#[async_trait::async_trait(?Send)]
impl TaskHandler for SeedStubs {
    async fn invoke(&self, function: &str, payload: Value) -> Result<Value, TaskFailure> {
        let name = function.rsplit(':').next().unwrap_or(function);
        match name {
            "check-manifest" => Ok(json!({
                "steps": self.pipelines.len(),
                "releaseId": "bench",
                "manifest": {"releaseId": "bench", "pipelines": self.pipelines},
            })),
            "run-pipeline" => {
                self.codepipeline_calls
                    .set(self.codepipeline_calls.get() + 1);
                Ok(json!({"error": "", "pipeline": payload["pipeline"]}))
            }
            "check-pipelines" => {
                self.codepipeline_calls
                    .set(self.codepipeline_calls.get() + self.pipelines.len() as u64);
                let done = self.t0.elapsed().as_secs() >= self.release_seconds;
                Ok(json!({
                    "releaseId": "bench",
                    "releaseStatus": if done { "COMPLETED" } else { "IN_PROGRESS" },
                    "releaseTimestamp": "2026-03-02T11:00:00Z",
                }))
            }
            _ => Ok(json!({})), // DynamoDB UpdateItem
        }
    }
}

struct SeedResult {
    history_events: usize,
    state_transitions: u64,
    codepipeline_calls: u64,
    wall: Duration,
}

fn run_seed(pipelines: usize, release_seconds: u64) -> SeedResult {
    let subs: HashMap<String, String> = [
        (
            "CheckManifestFunctionArn",
            "arn:aws:lambda:us-east-1:123456789012:function:check-manifest",
        ),
        (
            "RunPipelineFunctionArn",
            "arn:aws:lambda:us-east-1:123456789012:function:run-pipeline",
        ),
        (
            "CheckPipelinesFunctionArn",
            "arn:aws:lambda:us-east-1:123456789012:function:check-pipelines",
        ),
        ("DDBUpdatetem", "arn:aws:states:::dynamodb:updateItem"),
        ("DDBTable", "releases"),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_owned(), v.to_owned()))
    .collect();
    let machine = StateMachine::from_json(SEED, &subs).expect("the seed definition loads");
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .start_paused(true)
        .build()
        .unwrap();
    let wall = Instant::now();
    let (outcome, calls) = rt.block_on(async {
        let stubs = SeedStubs {
            pipelines: (0..pipelines).map(|i| format!("service-{i:03}")).collect(),
            release_seconds,
            t0: tokio::time::Instant::now(),
            codepipeline_calls: Cell::new(0),
        };
        let (execution, _tokens) = machine.start(ExecutionConfig::new(
            "seed-bench",
            "release-machine-seed",
            time::OffsetDateTime::UNIX_EPOCH,
            json!({}),
        ));
        let outcome = execution.run(&stubs).await;
        (outcome, stubs.codepipeline_calls.get())
    });
    assert_eq!(
        outcome.status,
        ExecutionStatus::Succeeded,
        "{:?} {:?}",
        outcome.error,
        outcome.cause
    );
    SeedResult {
        history_events: outcome.history.len(),
        state_transitions: outcome.state_transitions,
        codepipeline_calls: calls,
        wall: wall.elapsed(),
    }
}

fn flag(ok: bool) -> &'static str {
    if ok {
        "ok"
    } else {
        "OVER BUDGET"
    }
}

fn main() {
    // `cargo bench` passes `--bench`; a filter or `--list` asks for nothing we can skip.
    if std::env::args().any(|a| a == "--list") {
        return;
    }

    println!("== 1. 500 pipelines in 10 waves, all succeeding (maxConcurrency 40, 6 min each)");
    let big = manifest(500, 10, 40, 120);
    let mut walls = Vec::new();
    let mut last = None;
    for _ in 0..3 {
        let (report, wall) = run(&big, 360);
        walls.push(wall);
        last = Some(report);
    }
    let report = last.unwrap();
    walls.sort();
    let rss = peak_rss_mib();
    let (mean_calls, max_calls) = api_calls(&report);
    println!(
        "   simulated {}   wall median {:.0} ms (min {:.0} ms, max {:.0} ms) [{}]   peak RSS {} [{}]",
        hms(report.simulated),
        walls[1].as_secs_f64() * 1e3,
        walls[0].as_secs_f64() * 1e3,
        walls[2].as_secs_f64() * 1e3,
        flag(walls[1] < Duration::from_secs(1)),
        rss.map_or("n/a".into(), |r| format!("{r:.1} MiB")),
        flag(rss.is_none_or(|r| r < 200.0)),
    );
    println!(
        "   history events {} ({:.1} per pipeline), state transitions {} ({:.1} per pipeline)",
        report.history.len(),
        report.history.len() as f64 / 500.0,
        report.state_transitions,
        report.state_transitions as f64 / 500.0,
    );
    println!("   CodePipeline calls per pipeline: mean {mean_calls:.2}, max {max_calls}");

    println!(
        "== 2. history events per pipeline: 10-minute vs 4-hour pipelines (40 pipelines, 4 waves)"
    );
    let m = manifest(40, 4, 10, 300);
    let (short, _) = run(&m, 600);
    let (long, _) = run(&m, 4 * 3600);
    let per = |r: &RunReport| r.history.len() as f64 / 40.0;
    println!(
        "   10 min: {} events ({:.2}/pipeline), {} transitions, simulated {}",
        short.history.len(),
        per(&short),
        short.state_transitions,
        hms(short.simulated)
    );
    println!(
        "   4 h:    {} events ({:.2}/pipeline), {} transitions, simulated {}",
        long.history.len(),
        per(&long),
        long.state_transitions,
        hms(long.simulated)
    );
    println!(
        "   equal: {} [{}]   <= 10 per pipeline (§8): [{}]",
        short.history.len() == long.history.len(),
        flag(short.history.len() == long.history.len()),
        flag(per(&long) <= 10.0)
    );

    println!("== 3. the seed's polling design (30 s global poll), same engine, stub tasks");
    let seed_big = run_seed(500, report.simulated.as_secs());
    println!(
        "   500 pipelines, {}: {} history events ({:.1}/pipeline), {} transitions, ~{} CodePipeline calls ({:.0}/pipeline), wall {:.0} ms",
        hms(report.simulated),
        seed_big.history_events,
        seed_big.history_events as f64 / 500.0,
        seed_big.state_transitions,
        seed_big.codepipeline_calls,
        seed_big.codepipeline_calls as f64 / 500.0,
        seed_big.wall.as_secs_f64() * 1e3
    );
    for (label, secs, ours) in [("10 min", 600u64, &short), ("4 h", 4 * 3600, &long)] {
        let s = run_seed(40, ours.simulated.as_secs().max(secs));
        println!(
            "   40 pipelines, {label} release ({}): seed {} events, {} transitions, ~{} CodePipeline calls | ours {} events, {} transitions, {} calls",
            hms(ours.simulated),
            s.history_events,
            s.state_transitions,
            s.codepipeline_calls,
            ours.history.len(),
            ours.state_transitions,
            ours.sim.calls.values().map(|c| c.total()).sum::<u32>(),
        );
    }

    println!("== 4. plan and timeline of the 500-pipeline release");
    let bytes = serde_json::to_vec(&big).unwrap();
    let sim = json!({"startAt": "2026-03-02T09:00:00Z", "defaults": {"durationSeconds": 360}});
    let mut plan_walls = Vec::new();
    let mut planned = None;
    for _ in 0..3 {
        let wall = Instant::now();
        let plan = rm_local::plan::plan(&bytes, rm_local::plan::PlanWorld::Sim(sim.clone()))
            .expect("the plan");
        plan_walls.push(wall.elapsed());
        planned = Some(plan);
    }
    plan_walls.sort();
    let plan = planned.unwrap();
    let release = plan.release.clone().expect("a simulated release");
    let mut draw_walls = Vec::new();
    let mut svg = String::new();
    for _ in 0..5 {
        let wall = Instant::now();
        svg = rm_core::view::timeline::render(&release).expect("drawn");
        draw_walls.push(wall.elapsed());
    }
    draw_walls.sort();
    println!(
        "   plan: wall median {:.0} ms (min {:.0}, max {:.0}); predicted {} s = run's {} s [{}]",
        plan_walls[1].as_secs_f64() * 1e3,
        plan_walls[0].as_secs_f64() * 1e3,
        plan_walls[2].as_secs_f64() * 1e3,
        plan.predicted_duration_seconds.unwrap_or(0),
        report.simulated.as_secs(),
        flag(plan.predicted_duration_seconds == Some(report.simulated.as_secs())),
    );
    println!(
        "   timeline: wall median {:.1} ms (min {:.1}, max {:.1}), {} bytes of SVG",
        draw_walls[2].as_secs_f64() * 1e3,
        draw_walls[0].as_secs_f64() * 1e3,
        draw_walls[4].as_secs_f64() * 1e3,
        svg.len()
    );
}

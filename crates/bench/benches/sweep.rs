//! The sweep over 2,000 waiting runs, through the real adapters (issue 9, fault 8: "all
//! polled within one sweep period").
//!
//! ```text
//! cargo bench -p rm-bench --bench sweep                  # 2,000 runs, default sweep
//! cargo bench -p rm-bench --bench sweep -- --runs 500 --sequential
//! RM_DYNALITE_ENDPOINT=http://127.0.0.1:PORT cargo bench -p rm-bench --bench sweep
//! ```
//!
//! What it does:
//!
//! 1. DynamoDB: dynalite (the one `scripts/test` started when `RM_DYNALITE_ENDPOINT` is set;
//!    else it starts `node node_modules/dynalite/cli.js` itself on a free port of 127.0.0.1,
//!    in memory, and stops it at the end), a fresh table made by `rm_aws::create_table`.
//! 2. CodePipeline: the emulator (`rm_local::emulator`, real tokio time) on 127.0.0.1.
//!    Pipelines `svc-0000`... run for an hour, except every tenth, which succeeds after 1 s, so
//!    the sweep finds ~10 % terminal (their state-change events are "lost": not delivered).
//! 3. Fill: releases of 500 pipelines (the manifest's maximum) are checked and claimed by the
//!    CheckManifest use case, each pipeline started by the StartPipeline use case
//!    (StartPipelineExecution on the emulator, the run recorded in DynamoDB), and a task token
//!    stored on each run (`set_token`): N waiting runs of started executions.
//! 4. One sweep, the poll-execution Lambda's (`usecases::sweep`, default options: 16 polls at
//!    once, 90 s budget), with `rm_aws::DynamoStore` and `rm_aws::CodePipelineClient` against
//!    those servers, the system clock, task tokens answered in process (counted: SendTask*
//!    would be a Step Functions call) and every execution described as RUNNING. Prints wall
//!    time, polls/s, the sweep's answer, and whether every run was polled in that one sweep
//!    within the 90 s budget (the schedule's period is 5 minutes). `--sequential` also times
//!    a sweep with one poll at a time (today's sweep before this change), for comparison.
//!
//! The last line is the figures as JSON (`SWEEP_FIGURES {...}`).

use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

use async_trait::async_trait;
use futures::stream::{self, StreamExt};
use rm_aws::{CodePipelineClient, DynamoStore};
use rm_core::ports::{
    ExecutionRunState, ExecutionState, Executions, ManifestPorts, ManifestSource, PortResult,
    ReleaseStore, RunKey, RunPorts, SourceError, SystemClock, TaskTokens, TokenDelivery,
};
use rm_core::release::ReleaseId;
use rm_core::tasks::{CheckManifestRequest, PipelineRef, SweepResponse};
use rm_core::usecases::{
    check_manifest, start_pipeline, sweep, sweep_with, SweepOptions, SWEEP_BUDGET,
    SWEEP_PARALLELISM,
};
use rm_local::emulator::{Emulator, EmulatorOptions};
use rm_local::sim::SimFile;
use serde_json::{json, Value};

/// The schedule's period: the sweep must poll every waiting run within it.
const SWEEP_PERIOD: Duration = Duration::from_secs(300);
/// Pipelines per release: the manifest's maximum.
const PER_RELEASE: usize = 500;
/// Concurrent calls while filling the table.
const FILL_CONCURRENCY: usize = 32;

struct Args {
    runs: usize,
    sequential: bool,
}

fn args() -> Args {
    let mut a = Args {
        runs: 2000,
        sequential: false,
    };
    let mut it = std::env::args().skip(1);
    while let Some(arg) = it.next() {
        match arg.as_str() {
            "--runs" => {
                a.runs = it
                    .next()
                    .and_then(|n| n.parse().ok())
                    .expect("--runs takes a number");
            }
            "--sequential" => a.sequential = true,
            // `cargo bench` passes --bench; filters do not apply to this single measurement.
            _ => {}
        }
    }
    a
}

/// A dynalite this process started; killed (its own process, by pid) when dropped.
struct Dynalite(Child);

impl Drop for Dynalite {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free port on 127.0.0.1")
}

/// `RM_DYNALITE_ENDPOINT`, or a dynalite started here from the repository's node_modules.
async fn dynalite() -> (String, Option<Dynalite>) {
    if let Ok(url) = std::env::var(rm_testkit::DYNALITE_ENDPOINT_VAR) {
        if !url.trim().is_empty() {
            return (url.trim().trim_end_matches('/').to_owned(), None);
        }
    }
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    let cli = root.join("node_modules/dynalite/cli.js");
    assert!(
        cli.exists(),
        "{} is missing: run scripts/test once (it installs dynalite), or set {}",
        cli.display(),
        rm_testkit::DYNALITE_ENDPOINT_VAR
    );
    let port = free_port();
    let child = Command::new("node")
        .arg(&cli)
        .args(["--host", "127.0.0.1", "--port", &port.to_string()])
        .args([
            "--createTableMs",
            "0",
            "--deleteTableMs",
            "0",
            "--updateTableMs",
            "0",
        ])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("node runs dynalite");
    let guard = Dynalite(child);
    let t0 = Instant::now();
    while tokio::net::TcpStream::connect(("127.0.0.1", port))
        .await
        .is_err()
    {
        assert!(
            t0.elapsed() < Duration::from_secs(30),
            "dynalite did not listen on 127.0.0.1:{port} within 30 s"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    (format!("http://127.0.0.1:{port}"), Some(guard))
}

/// SendTaskSuccess / SendTaskFailure answered in process, counted.
#[derive(Default)]
struct CountedTokens {
    succeeded: AtomicU32,
    failed: AtomicU32,
}

#[async_trait]
impl TaskTokens for CountedTokens {
    async fn succeed(&self, _token: &str, _output: &Value) -> PortResult<TokenDelivery> {
        self.succeeded.fetch_add(1, Ordering::Relaxed);
        Ok(TokenDelivery::Delivered)
    }

    async fn fail(&self, _token: &str, _error: &str, _cause: &str) -> PortResult<TokenDelivery> {
        self.failed.fetch_add(1, Ordering::Relaxed);
        Ok(TokenDelivery::Delivered)
    }
}

/// Every release's execution is RUNNING (DescribeExecution, for the sweep's reconciler).
struct AllRunning;

#[async_trait]
impl Executions for AllRunning {
    async fn start(&self, name: &str, _input: &Value) -> PortResult<String> {
        Ok(format!(
            "arn:aws:states:us-east-1:123456789012:execution:bench:{name}"
        ))
    }

    async fn describe(&self, _name: &str) -> PortResult<Option<ExecutionState>> {
        Ok(Some(ExecutionState {
            status: ExecutionRunState::Running,
            error: None,
            cause: None,
        }))
    }

    async fn stop(&self, _name: &str, _error: &str, _cause: &str) -> PortResult<()> {
        Ok(())
    }
}

/// Manifests come inline here; no S3.
struct NoSource;

#[async_trait]
impl ManifestSource for NoSource {
    async fn read(
        &self,
        bucket: &str,
        key: &str,
        _version_id: Option<&str>,
        _max_bytes: usize,
    ) -> Result<Vec<u8>, SourceError> {
        Err(SourceError::NotFound {
            bucket: bucket.to_owned(),
            key: key.to_owned(),
        })
    }
}

fn pipeline(i: usize) -> String {
    format!("svc-{i:04}")
}

fn sim(runs: usize) -> SimFile {
    let quick: serde_json::Map<String, Value> = (0..runs)
        .filter(|i| i % 10 == 9)
        .map(|i| (pipeline(i), json!({"durationSeconds": 1})))
        .collect();
    SimFile::from_value(&json!({
        "defaults": {"durationSeconds": 3600, "events": "drop"},
        "pipelines": quick,
    }))
    .unwrap_or_else(|e| panic!("{e}"))
}

fn owner(release: usize) -> String {
    format!("bench-exec-{release}")
}

/// Claims the releases, starts every pipeline, stores a token on each run.
async fn fill(ports: &RunPorts<'_>, runs: usize) {
    let releases = runs.div_ceil(PER_RELEASE);
    for r in 0..releases {
        let names: Vec<String> = (r * PER_RELEASE..((r + 1) * PER_RELEASE).min(runs))
            .map(pipeline)
            .collect();
        let req = CheckManifestRequest {
            input: json!({"releaseId": format!("bench-{r}"), "pipelines": names}),
            execution_name: owner(r),
        };
        let mp = ManifestPorts {
            store: ports.store,
            pipelines: ports.pipelines,
            source: &NoSource,
            bus: ports.bus,
            clock: ports.clock,
        };
        check_manifest(&req, &mp)
            .await
            .unwrap_or_else(|e| panic!("claim bench-{r}: {e}"));
    }
    let started = stream::iter(0..runs)
        .map(|i| async move {
            let r = i / PER_RELEASE;
            let p = pipeline(i);
            let req = PipelineRef {
                release_id: format!("bench-{r}"),
                execution_name: owner(r),
                pipeline: p.clone(),
            };
            let out = start_pipeline(&req, ports)
                .await
                .unwrap_or_else(|e| panic!("start {p}: {e}"));
            assert!(out.execution_id.is_some(), "{p} not started: {out:?}");
            let k = RunKey {
                release_id: ReleaseId::parse(&req.release_id).expect("id"),
                pipeline: p.clone(),
            };
            ports
                .store
                .set_token(&k, &format!("token-{p}"), ports.clock.now())
                .await
                .unwrap_or_else(|e| panic!("token {p}: {e}"));
        })
        .buffer_unordered(FILL_CONCURRENCY)
        .count()
        .await;
    assert_eq!(started, runs);
}

struct Measured {
    out: SweepResponse,
    wall: Duration,
}

async fn timed(ports: &RunPorts<'_>, options: Option<&SweepOptions>) -> Measured {
    let t0 = Instant::now();
    let out = match options {
        None => sweep(ports).await,
        Some(o) => sweep_with(ports, o).await,
    }
    .unwrap_or_else(|e| panic!("the sweep failed: {e}"));
    Measured {
        out,
        wall: t0.elapsed(),
    }
}

fn line(label: &str, m: &Measured) {
    let s = m.wall.as_secs_f64();
    println!(
        "{label:<28} {:>8.2} s  {:>7.0} polls/s  polled {} completed {} errors {} remaining {}",
        s,
        f64::from(m.out.polled) / s.max(1e-9),
        m.out.polled,
        m.out.completed,
        m.out.errors,
        m.out.remaining
    );
}

#[tokio::main(flavor = "multi_thread", worker_threads = 4)]
async fn main() {
    let a = args();
    let (dynamo_url, _dynalite) = dynalite().await;
    let emulator = Emulator::start(EmulatorOptions {
        sim: sim(a.runs),
        event_target: None,
    })
    .await
    .expect("the CodePipeline emulator starts");

    let dynamo = aws_sdk_dynamodb::Client::new(&rm_testkit::sdk_config(&dynamo_url).await);
    let table = rm_testkit::unique_name("sweep-bench");
    rm_aws::create_table(&dynamo, &table)
        .await
        .unwrap_or_else(|e| panic!("create table {table}: {e}"));
    let store = DynamoStore::new(dynamo, table.clone());
    let pipelines = CodePipelineClient::new(aws_sdk_codepipeline::Client::new(
        &rm_testkit::sdk_config(&emulator.url()).await,
    ));
    let tokens = CountedTokens::default();
    let ports = RunPorts {
        sensors: rm_core::memory::no_sensors(),
        store: &store,
        pipelines: &pipelines,
        tokens: &tokens,
        executions: &AllRunning,
        // The events go to memory: the bench measures the store and CodePipeline.
        bus: &rm_core::memory::NO_BUS,
        clock: &SystemClock,
    };

    println!(
        "sweep bench: {} waiting runs; DynamoDB {dynamo_url} (dynalite{}), table {table}; CodePipeline emulator {}",
        a.runs,
        if _dynalite.is_some() { ", started here" } else { "" },
        emulator.url()
    );
    let t0 = Instant::now();
    fill(&ports, a.runs).await;
    println!(
        "filled in {:.1} s: {} releases, {} runs started and waiting",
        t0.elapsed().as_secs_f64(),
        a.runs.div_ceil(PER_RELEASE),
        a.runs
    );
    // Let the quick pipelines (1 s) end.
    tokio::time::sleep(Duration::from_secs(2)).await;
    let waiting = store.waiting_runs().await.expect("waiting runs").len();
    assert_eq!(waiting, a.runs, "every run waits before the sweep");

    let before = emulator.calls();
    let first = timed(&ports, None).await;
    let after = emulator.calls();
    let gets = |c: &std::collections::BTreeMap<String, std::collections::BTreeMap<String, u32>>| {
        c.values()
            .filter_map(|ops| ops.get("GetPipelineExecution"))
            .sum::<u32>()
    };
    let get_calls = gets(&after) - gets(&before);
    println!();
    line(&format!("sweep ({SWEEP_PARALLELISM} at once)"), &first);
    let all_polled = first.out.polled as usize == a.runs && first.out.remaining == 0;
    let within = first.wall < SWEEP_BUDGET;
    println!(
        "GetPipelineExecution calls {get_calls}; tokens completed {} (succeeded {}, failed {}); still waiting {}",
        first.out.completed,
        tokens.succeeded.load(Ordering::Relaxed),
        tokens.failed.load(Ordering::Relaxed),
        store.waiting_runs().await.map(|w| w.len()).unwrap_or(0)
    );
    println!(
        "all {} polled in one sweep: {}; within the {} s budget: {} ({:.1} % of it; the period is {} s)",
        a.runs,
        if all_polled { "yes" } else { "NO" },
        SWEEP_BUDGET.as_secs(),
        if within { "yes" } else { "NO" },
        100.0 * first.wall.as_secs_f64() / SWEEP_BUDGET.as_secs_f64(),
        SWEEP_PERIOD.as_secs()
    );

    // Steady state: the next sweep over the runs still waiting (touched to the back).
    let second = timed(&ports, None).await;
    line("next sweep", &second);

    let sequential = if a.sequential {
        let m = timed(
            &ports,
            Some(&SweepOptions {
                parallelism: 1,
                budget: SWEEP_PERIOD,
                release_id: None,
            }),
        )
        .await;
        line("sweep (1 at a time)", &m);
        Some(m)
    } else {
        None
    };

    let figures = json!({
        "runs": a.runs,
        "parallelism": SWEEP_PARALLELISM,
        "budgetSeconds": SWEEP_BUDGET.as_secs(),
        "wallSeconds": first.wall.as_secs_f64(),
        "pollsPerSecond": f64::from(first.out.polled) / first.wall.as_secs_f64().max(1e-9),
        "sweep": first.out,
        "allPolledInOneSweep": all_polled,
        "withinBudget": within,
        "getPipelineExecutionCalls": get_calls,
        "nextSweepWallSeconds": second.wall.as_secs_f64(),
        "sequentialWallSeconds": sequential.as_ref().map(|m| m.wall.as_secs_f64()),
    });
    println!("SWEEP_FIGURES {figures}");
    if !(all_polled && within) {
        std::process::exit(1);
    }
}

//! Parity: the local run answers exactly as the Lambdas do.
//!
//! Every payload is fed through two paths, each over a fresh world in the same state:
//! - the **Lambda path**: the function crate's `handle` (what its `main` serves) over the
//!   in-memory ports;
//! - the **local path**: the runner's dispatch ([`LocalFunctions::call`], what the engine's Task
//!   states invoke) over the SQLite store.
//!
//! The payloads are every task payload the state machine sends in real local runs (clean,
//! failing, timing out: read off the executions' `TaskScheduled` events), every sample in
//! `events/` that these four functions receive, and malformed ones. The answers must be
//! equal JSON, and errors equal in errorType and message.

use rm_core::handlers::{Function, TaskPorts};
use rm_core::memory::{
    FakeExecutions, FakePipelines, FakeSource, ManualClock, MemoryBus, MemoryStore, RecordingTokens,
};
use rm_core::ports::{Clock, ManifestPorts, ReleaseStore, RunKey, RunPorts};
use rm_core::{ReleaseId, TaskError};
use rm_local::runner::LocalFunctions;
use rm_local::{run_release, RunOptions, SimFile, SqliteStore};
use rm_testkit::event;
use rm_testkit::props::{SAMPLE_BUCKET, SAMPLE_KEY, SAMPLE_PIPELINES, SAMPLE_RELEASE};
use serde_json::{json, Value};

/// An answer, comparable across paths: the JSON, or the error's type and message.
type Answer = Result<Value, (String, String)>;

fn answer(result: Result<Value, TaskError>) -> Answer {
    result.map_err(|e| (e.error_type().to_owned(), e.to_string()))
}

/// The ports of one path but the store: the same fakes on both sides.
struct Fakes {
    pipelines: FakePipelines,
    tokens: RecordingTokens,
    source: FakeSource,
    executions: FakeExecutions,
    bus: MemoryBus,
    clock: ManualClock,
}

impl Fakes {
    fn new() -> Self {
        let source = FakeSource::default();
        source.put(
            SAMPLE_BUCKET,
            SAMPLE_KEY,
            rm_testkit::event_bytes("release-manifest.json"),
        );
        Fakes {
            pipelines: FakePipelines::with(&SAMPLE_PIPELINES),
            tokens: RecordingTokens::default(),
            source,
            executions: FakeExecutions::default(),
            bus: MemoryBus::default(),
            clock: ManualClock::fixed(),
        }
    }

    fn ports<'a>(&'a self, store: &'a dyn ReleaseStore) -> TaskPorts<'a> {
        TaskPorts {
            sensors: rm_core::memory::no_sensors(),
            store,
            pipelines: &self.pipelines,
            tokens: &self.tokens,
            executions: &self.executions,
            source: &self.source,
            bus: &self.bus,
            clock: &self.clock,
        }
    }
}

/// The Lambda path: the function crates' handlers over the in-memory store.
struct LambdaPath {
    store: MemoryStore,
    fakes: Fakes,
}

impl LambdaPath {
    fn new() -> Self {
        LambdaPath {
            store: MemoryStore::new(),
            fakes: Fakes::new(),
        }
    }

    async fn call(&self, function: Function, payload: Value) -> Answer {
        let ports = self.fakes.ports(&self.store);
        let run: RunPorts<'_> = ports.run();
        let manifest: ManifestPorts<'_> = ports.manifest();
        answer(match function {
            Function::CheckManifest => check_manifest::handle(payload, &manifest).await,
            Function::StartPipelines => start_pipelines::handle(payload, &run).await,
            Function::PollExecution => poll_execution::handle(payload, &run).await,
            Function::RecordState => record_state::handle(payload, &run).await,
        })
    }
}

/// The local path: the runner's dispatch over the SQLite store.
struct LocalPath {
    _dir: tempfile::TempDir,
    store: SqliteStore,
    fakes: Fakes,
}

impl LocalPath {
    fn new() -> Self {
        let dir = tempfile::tempdir().unwrap();
        let store = SqliteStore::open_dir(dir.path()).unwrap();
        LocalPath {
            _dir: dir,
            store,
            fakes: Fakes::new(),
        }
    }

    async fn call(&self, function: Function, payload: Value) -> Answer {
        let ports = self.fakes.ports(&self.store);
        let functions = LocalFunctions::new(ports, self.fakes.clock.now());
        answer(functions.call(function.name(), payload).await)
    }
}

/// Feeds `steps` through both paths in order; every answer must be equal.
async fn assert_parity(label: &str, steps: &[(Function, Value)]) -> Vec<Answer> {
    assert!(!steps.is_empty(), "{label}: no steps");
    let lambda = LambdaPath::new();
    let local = LocalPath::new();
    let mut answers = Vec::new();
    for (i, (function, payload)) in steps.iter().enumerate() {
        let a = lambda.call(*function, payload.clone()).await;
        let b = local.call(*function, payload.clone()).await;
        assert_eq!(
            a, b,
            "{label}: step {i} ({function}) answered differently\npayload: {payload}\nLambda: {a:?}\nlocal:  {b:?}"
        );
        answers.push(a);
    }
    answers
}

/// The task payloads the state machine sent in a local run with this sim file, in order,
/// read off the execution's `TaskScheduled` events.
fn task_payloads(sim: Value) -> Vec<(Function, Value)> {
    let dir = tempfile::tempdir().unwrap();
    let mut opts = RunOptions::new(rm_testkit::event_bytes("release-manifest.json"), dir.path());
    opts.sim = SimFile::from_value(&sim).expect("a valid sim file");
    let report = run_release(opts).expect("the local run runs");
    report
        .history
        .iter()
        .filter(|e| e.r#type == "TaskScheduled")
        .map(|e| {
            let params = &e.details["parameters"];
            let name = params["FunctionName"]
                .as_str()
                .unwrap_or_else(|| panic!("a TaskScheduled without FunctionName: {e:?}"));
            let function = Function::from_name(name)
                .unwrap_or_else(|| panic!("the definition calls an unknown function {name}"));
            (function, params["Payload"].clone())
        })
        .collect()
}

fn block_on<F: std::future::Future>(future: F) -> F::Output {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
        .block_on(future)
}

fn count(steps: &[(Function, Value)], function: Function, action: &str) -> usize {
    steps
        .iter()
        .filter(|(f, p)| *f == function && p.get("action") == Some(&json!(action)))
        .count()
}

#[test]
fn a_clean_release_answers_alike() {
    let steps = task_payloads(json!({}));
    // One RunPipeline task per pipeline: the await starts it (issue 9, fault 10).
    assert_eq!(count(&steps, Function::StartPipelines, "start"), 0);
    assert_eq!(count(&steps, Function::PollExecution, "await"), 4);
    assert_eq!(count(&steps, Function::RecordState, "recordRelease"), 1);
    let answers = block_on(assert_parity("clean", &steps));
    assert_eq!(answers[0].as_ref().unwrap()["outcome"], "Started");
}

#[test]
fn a_failing_release_answers_alike() {
    let steps = task_payloads(json!({"pipelines": {"payments-api": {"outcome": "Failed"}}}));
    assert!(count(&steps, Function::StartPipelines, "stopRunning") >= 1);
    block_on(assert_parity("failing", &steps));
}

#[test]
fn a_timed_out_pipeline_answers_alike() {
    let steps =
        task_payloads(json!({"pipelines": {"payments-db-migrate": {"durationSeconds": 7200}}}));
    assert_eq!(count(&steps, Function::StartPipelines, "stopTimedOut"), 1);
    block_on(assert_parity("timed out", &steps));
}

/// Records the sample's CodePipeline execution id on a run and a waiting token, through the
/// store port, so the sample state-change events find their run.
async fn wait_on_sample(store: &dyn ReleaseStore, clock: &dyn Clock) {
    let rid = ReleaseId::parse(SAMPLE_RELEASE).unwrap();
    let execution_id = event("codepipeline-execution-succeeded.json")["detail"]["execution-id"]
        .as_str()
        .unwrap()
        .to_owned();
    let owner = event("task-check-manifest.json")["executionName"]
        .as_str()
        .unwrap()
        .to_owned();
    store
        .record_start(
            &rid,
            &owner,
            "payments-db-migrate",
            &execution_id,
            clock.now(),
            &[],
        )
        .await
        .unwrap();
    let key = RunKey {
        release_id: rid,
        pipeline: "payments-db-migrate".into(),
    };
    store
        .set_token(
            &key,
            "sample-token",
            rm_core::ports::Clock::now(&rm_core::memory::ManualClock::fixed()),
        )
        .await
        .unwrap();
}

#[tokio::test]
async fn every_sample_event_answers_alike() {
    use Function::*;
    let claim = (CheckManifest, event("task-check-manifest.json"));
    // Each state-change sample on a fresh world whose run waits on the sample's execution.
    for sample in [
        "codepipeline-execution-started.json",
        "codepipeline-execution-succeeded.json",
        "codepipeline-execution-failed.json",
        "codepipeline-execution-stopped.json",
    ] {
        let lambda = LambdaPath::new();
        let local = LocalPath::new();
        for (f, p) in [claim.clone()] {
            assert_eq!(lambda.call(f, p.clone()).await, local.call(f, p).await);
        }
        wait_on_sample(&lambda.store, &lambda.fakes.clock).await;
        wait_on_sample(&local.store, &local.fakes.clock).await;
        let a = lambda.call(RecordState, event(sample)).await;
        let b = local.call(RecordState, event(sample)).await;
        assert_eq!(a, b, "{sample}");
        assert_eq!(
            a.as_ref().unwrap()["outcome"],
            "Recorded",
            "{sample}: {a:?}"
        );
    }

    // The task samples, in the order a release sends them.
    let steps = vec![
        claim.clone(),
        claim.clone(),
        (StartPipelines, event("task-start-pipeline.json")),
        (StartPipelines, event("task-start-pipeline.json")),
        (PollExecution, event("task-await-pipeline.json")),
        (PollExecution, event("task-sweep.json")),
        (PollExecution, event("scheduled-sweep.json")),
        (StartPipelines, event("task-stop-timed-out.json")),
        (StartPipelines, event("task-stop-running.json")),
        (RecordState, event("task-record-release-failed.json")),
        (RecordState, event("task-record-release-succeeded.json")),
        (RecordState, event("codepipeline-execution-succeeded.json")),
    ];
    assert_parity("samples", &steps).await;
}

#[tokio::test]
async fn errors_answer_alike() {
    use Function::*;
    let mut undecodable = event("codepipeline-execution-succeeded.json");
    undecodable["detail"] = json!({"pipeline": 7});
    let mut wrong_type = event("codepipeline-execution-succeeded.json");
    wrong_type["detail-type"] = json!("Something Else");
    let mut not_a_schedule = event("scheduled-sweep.json");
    not_a_schedule["detail-type"] = json!("Object Created");
    let mut unknown_release = event("task-start-pipeline.json");
    unknown_release["releaseId"] = json!("never-claimed");
    let mut bad_id = event("task-start-pipeline.json");
    bad_id["releaseId"] = json!("not a valid id!");
    let mut missing_object = event("task-check-manifest.json");
    missing_object["input"]["detail"]["object"]["key"] = json!("nowhere.json");

    let mut steps = vec![
        (RecordState, undecodable),
        (RecordState, wrong_type),
        (PollExecution, not_a_schedule),
        (StartPipelines, unknown_release),
        (StartPipelines, bad_id),
        (CheckManifest, missing_object),
        (
            CheckManifest,
            json!({"input": {"releaseId": "", "pipelines": ["ghost"]}, "executionName": "x"}),
        ),
        (
            CheckManifest,
            json!({"input": {"releaseId": "r", "pipelines": ["ghost"]}, "executionName": "x"}),
        ),
    ];
    for function in Function::ALL {
        for malformed in [
            json!({}),
            json!([]),
            json!("text"),
            json!(null),
            json!({"action": "nope"}),
        ] {
            steps.push((function, malformed));
        }
    }
    let answers = assert_parity("errors", &steps).await;
    // The contract: an undecodable EventBridge event is acknowledged, not failed.
    assert_eq!(
        answers[0].as_ref().unwrap()["outcome"],
        "Rejected",
        "{:?}",
        answers[0]
    );
    assert!(answers[3..].iter().any(Result::is_err));
    let types: Vec<&str> = answers
        .iter()
        .filter_map(|a| a.as_ref().err().map(|(t, _)| t.as_str()))
        .collect();
    assert!(types.contains(&"BadInput"), "{types:?}");
    assert!(types.contains(&"ManifestInvalid"), "{types:?}");
    assert!(types.contains(&"ManifestUnreadable"), "{types:?}");
}

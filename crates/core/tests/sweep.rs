//! The sweep (issue 9, fault 8) against in-memory ports: bounded parallel polls, a time box
//! on the clock port, continuing where the last sweep stopped, scoped to one release, and one
//! failing run never stopping the others.

use std::collections::{BTreeSet, HashSet};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Mutex;
use std::time::Duration;

use async_trait::async_trait;
use rm_core::error::PortError;
use rm_core::handlers::poll_execution;
use rm_core::manifest::PipelineSpec;
use rm_core::memory::*;
use rm_core::ports::{
    Clock, ExecutionStatus, ManifestPorts, Pipelines, PortResult, ReleaseStore, RunKey, RunPorts,
    StartError,
};
use rm_core::release::{ReleaseId, RunStatus};
use rm_core::tasks::CheckManifestRequest;
use rm_core::usecases::{check_manifest, sweep, sweep_with, SweepOptions, SWEEP_PARALLELISM};
use serde_json::json;
use time::OffsetDateTime;

/// CodePipeline that counts GetPipelineExecution calls in flight (each yields to the runtime
/// a few times, so polls overlap as real calls do), advances the clock per call, and fails
/// the pipelines it is told to.
struct Counting<'c> {
    inner: FakePipelines,
    clock: &'c ManualClock,
    per_status: time::Duration,
    in_flight: AtomicUsize,
    max_in_flight: AtomicUsize,
    failing: Mutex<HashSet<String>>,
    polled: Mutex<Vec<String>>,
}

#[async_trait]
impl Pipelines for Counting<'_> {
    async fn exists(&self, name: &str) -> PortResult<bool> {
        self.inner.exists(name).await
    }

    async fn start(&self, spec: &PipelineSpec, token: &str) -> Result<String, StartError> {
        self.inner.start(spec, token).await
    }

    async fn find_started(
        &self,
        pipeline: &str,
        since: OffsetDateTime,
    ) -> PortResult<Option<String>> {
        self.inner.find_started(pipeline, since).await
    }

    async fn describe(&self, name: &str) -> PortResult<Option<rm_core::ports::PipelineShape>> {
        self.inner.describe(name).await
    }

    async fn recent_executions(
        &self,
        name: &str,
        limit: usize,
    ) -> PortResult<Vec<rm_core::ports::PastExecution>> {
        self.inner.recent_executions(name, limit).await
    }

    async fn execution_variables(
        &self,
        name: &str,
        execution_id: &str,
    ) -> PortResult<std::collections::BTreeMap<String, String>> {
        self.inner.execution_variables(name, execution_id).await
    }

    async fn status(&self, pipeline: &str, execution_id: &str) -> PortResult<ExecutionStatus> {
        let now = self.in_flight.fetch_add(1, Ordering::SeqCst) + 1;
        self.max_in_flight.fetch_max(now, Ordering::SeqCst);
        for _ in 0..3 {
            tokio::task::yield_now().await;
        }
        self.clock.advance(self.per_status);
        self.polled
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .push(pipeline.to_owned());
        self.in_flight.fetch_sub(1, Ordering::SeqCst);
        if self
            .failing
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .contains(pipeline)
        {
            return Err(PortError::Transient(format!(
                "GetPipelineExecution {pipeline}: 503"
            )));
        }
        self.inner.status(pipeline, execution_id).await
    }

    async fn stop(
        &self,
        pipeline: &str,
        execution_id: &str,
        reason: &str,
        abandon: bool,
    ) -> PortResult<()> {
        self.inner
            .stop(pipeline, execution_id, reason, abandon)
            .await
    }
}

struct World<'c> {
    store: MemoryStore,
    pipelines: Counting<'c>,
    tokens: RecordingTokens,
    clock: &'c ManualClock,
}

impl<'c> World<'c> {
    fn new(clock: &'c ManualClock, per_status_secs: i64) -> Self {
        World {
            store: MemoryStore::new(),
            pipelines: Counting {
                inner: FakePipelines::default(),
                clock,
                per_status: time::Duration::seconds(per_status_secs),
                in_flight: AtomicUsize::new(0),
                max_in_flight: AtomicUsize::new(0),
                failing: Mutex::default(),
                polled: Mutex::default(),
            },
            tokens: RecordingTokens::default(),
            clock,
        }
    }

    fn ports(&self) -> RunPorts<'_> {
        RunPorts {
            sensors: rm_core::memory::no_sensors(),
            store: &self.store,
            pipelines: &self.pipelines,
            tokens: &self.tokens,
            executions: &NO_EXECUTIONS,
            clock: self.clock,
            bus: &rm_core::memory::NO_BUS,
        }
    }

    /// Claims release `id` with `pipelines`, records each started (its execution
    /// `exec-<pipeline>`, InProgress in CodePipeline) and waiting on token `tok-<pipeline>`.
    async fn waiting_release(&self, id: &str, pipelines: &[String]) {
        let fake = FakePipelines::with(&pipelines.iter().map(String::as_str).collect::<Vec<_>>());
        let ports = ManifestPorts {
            store: &self.store,
            pipelines: &fake,
            source: &FakeSource::default(),
            clock: self.clock,
            bus: &rm_core::memory::NO_BUS,
        };
        let req = CheckManifestRequest {
            input: json!({"releaseId": id, "pipelines": pipelines}),
            execution_name: format!("exec-{id}"),
        };
        check_manifest(&req, &ports).await.expect("claimed");
        let rid = ReleaseId::parse(id).expect("id");
        for p in pipelines {
            let exec = format!("exec-{p}");
            self.store
                .record_start(&rid, &format!("exec-{id}"), p, &exec, self.clock.now(), &[])
                .await
                .expect("started");
            self.pipelines
                .inner
                .set_status(&exec, RunStatus::InProgress);
            let k = RunKey {
                release_id: rid.clone(),
                pipeline: p.clone(),
            };
            self.store
                .set_token(&k, &format!("tok-{p}"), self.clock.now())
                .await
                .expect("token");
        }
    }

    fn polled(&self) -> Vec<String> {
        self.pipelines
            .polled
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    fn completed_tokens(&self) -> BTreeSet<String> {
        self.tokens.sent().into_iter().map(|(t, _)| t).collect()
    }
}

fn names(prefix: &str, n: usize) -> Vec<String> {
    (0..n).map(|i| format!("{prefix}{i:04}")).collect()
}

#[tokio::test]
async fn many_runs_are_all_polled_with_bounded_parallelism() {
    let clock = ManualClock::fixed();
    let w = World::new(&clock, 0);
    let pipelines = names("p", 200);
    w.waiting_release("r1", &pipelines).await;
    // Every tenth pipeline has finished; its event was lost.
    for p in pipelines.iter().step_by(10) {
        w.pipelines
            .inner
            .set_status(&format!("exec-{p}"), RunStatus::Succeeded);
    }

    let out = sweep(&w.ports()).await.expect("sweep");
    assert_eq!(
        (out.polled, out.completed, out.errors, out.remaining),
        (200, 20, 0, 0)
    );
    assert_eq!(
        w.pipelines.max_in_flight.load(Ordering::SeqCst),
        SWEEP_PARALLELISM,
        "polls overlap up to the bound, never more"
    );
    let polled: BTreeSet<String> = w.polled().into_iter().collect();
    assert_eq!(polled.len(), 200, "each run polled once");
    assert_eq!(w.completed_tokens().len(), 20);

    // A smaller bound is honoured too.
    let out = sweep_with(
        &w.ports(),
        &SweepOptions {
            parallelism: 3,
            ..SweepOptions::default()
        },
    )
    .await
    .expect("sweep");
    assert_eq!((out.polled, out.completed), (180, 0));
    assert_eq!(
        w.pipelines.max_in_flight.load(Ordering::SeqCst),
        SWEEP_PARALLELISM
    );
}

#[tokio::test]
async fn parallelism_of_one_polls_in_turn() {
    let clock = ManualClock::fixed();
    let w = World::new(&clock, 0);
    w.waiting_release("r1", &names("p", 20)).await;
    let out = sweep_with(
        &w.ports(),
        &SweepOptions {
            parallelism: 1,
            ..SweepOptions::default()
        },
    )
    .await
    .expect("sweep");
    assert_eq!(out.polled, 20);
    assert_eq!(w.pipelines.max_in_flight.load(Ordering::SeqCst), 1);
}

#[tokio::test]
async fn the_time_box_stops_new_polls_and_reports_the_rest() {
    let clock = ManualClock::fixed();
    // Each GetPipelineExecution takes 10 s on the clock port.
    let w = World::new(&clock, 10);
    w.waiting_release("r1", &names("p", 30)).await;
    let began = clock.now();
    let options = SweepOptions {
        parallelism: 1,
        budget: Duration::from_secs(90),
        release_id: None,
    };
    let out = sweep_with(&w.ports(), &options).await.expect("sweep");
    // Polls start at 0, 10, ..., 80 s; at 90 s the budget is spent.
    assert_eq!((out.polled, out.errors, out.remaining), (9, 0, 21));
    assert_eq!(clock.now() - began, time::Duration::seconds(90));

    // With 4 in flight, the polls started before the deadline all finish after it.
    let clock = ManualClock::fixed();
    let w = World::new(&clock, 10);
    w.waiting_release("r1", &names("p", 100)).await;
    let out = sweep_with(
        &w.ports(),
        &SweepOptions {
            parallelism: 4,
            ..options.clone()
        },
    )
    .await
    .expect("sweep");
    assert!(out.remaining > 0, "{out:?}");
    assert_eq!(out.polled + out.remaining, 100, "{out:?}");
    assert_eq!(w.polled().len() as u32, out.polled);

    // The answer says what was left.
    let v = serde_json::to_value(&out).expect("encodes");
    assert_eq!(v["remaining"], json!(out.remaining));
}

#[tokio::test]
async fn the_next_sweep_continues_where_the_time_box_stopped() {
    let clock = ManualClock::fixed();
    let w = World::new(&clock, 10);
    let pipelines = names("p", 30);
    w.waiting_release("r1", &pipelines).await;
    let options = SweepOptions {
        parallelism: 1,
        budget: Duration::from_secs(100),
        release_id: None,
    };
    let mut seen = Vec::new();
    for _ in 0..3 {
        let before = w.polled().len();
        let out = sweep_with(&w.ports(), &options).await.expect("sweep");
        assert_eq!(out.polled, 10, "{out:?}");
        seen.extend(w.polled()[before..].iter().cloned());
    }
    let distinct: BTreeSet<&String> = seen.iter().collect();
    assert_eq!(
        distinct.len(),
        30,
        "three time-boxed sweeps of 10 polls reach all 30 runs: {seen:?}"
    );
}

#[tokio::test]
async fn a_failing_run_is_counted_and_the_others_are_polled() {
    let clock = ManualClock::fixed();
    let w = World::new(&clock, 0);
    let pipelines = names("p", 40);
    w.waiting_release("r1", &pipelines).await;
    for p in &pipelines {
        w.pipelines
            .inner
            .set_status(&format!("exec-{p}"), RunStatus::Succeeded);
    }
    w.pipelines
        .failing
        .lock()
        .unwrap()
        .extend(["p0000".to_owned(), "p0017".to_owned()]);

    let out = sweep(&w.ports())
        .await
        .expect("a failing run never fails the sweep");
    assert_eq!(
        (out.polled, out.completed, out.errors, out.remaining),
        (40, 38, 2, 0)
    );
    let done = w.completed_tokens();
    assert!(!done.contains("tok-p0000") && !done.contains("tok-p0017"));
    assert!(done.contains("tok-p0001") && done.contains("tok-p0039"));

    // The failed ones still wait, and the next sweep tries them again.
    w.pipelines.failing.lock().unwrap().clear();
    let out = sweep(&w.ports()).await.expect("sweep");
    assert_eq!((out.polled, out.completed, out.errors), (2, 2, 0));
}

#[tokio::test]
async fn a_scoped_sweep_polls_only_its_release() {
    let clock = ManualClock::fixed();
    let w = World::new(&clock, 0);
    w.waiting_release("r1", &names("a", 5)).await;
    w.waiting_release("r2", &names("b", 7)).await;
    w.pipelines
        .inner
        .set_status("exec-b0003", RunStatus::Failed);

    let out = sweep_with(
        &w.ports(),
        &SweepOptions::for_release(ReleaseId::parse("r1").unwrap()),
    )
    .await
    .expect("sweep");
    assert_eq!((out.polled, out.completed), (5, 0));
    assert!(
        w.polled().iter().all(|p| p.starts_with('a')),
        "{:?}",
        w.polled()
    );
    assert!(
        w.tokens.sent().is_empty(),
        "r2's finished run is not r1's to complete"
    );

    // The handler's scoped payload.
    let out = poll_execution::handle(json!({"action": "sweep", "releaseId": "r2"}), &w.ports())
        .await
        .expect("scoped sweep");
    assert_eq!(out, json!({"polled": 7, "completed": 1, "errors": 0}));
    assert!(w.polled()[5..].iter().all(|p| p.starts_with('b')));
    assert_eq!(
        w.completed_tokens(),
        BTreeSet::from(["tok-b0003".to_owned()])
    );

    // An unknown release has nothing waiting; a malformed id is bad input.
    let out = poll_execution::handle(json!({"action": "sweep", "releaseId": "r9"}), &w.ports())
        .await
        .expect("unknown release");
    assert_eq!(out, json!({"polled": 0, "completed": 0, "errors": 0}));
    let err = poll_execution::handle(
        json!({"action": "sweep", "releaseId": "no spaces"}),
        &w.ports(),
    )
    .await
    .expect_err("malformed id");
    assert_eq!(err.error_type(), "BadInput");

    // The schedule's event and the plain payload sweep everything.
    let before = w.polled().len();
    poll_execution::handle(json!({"action": "sweep"}), &w.ports())
        .await
        .expect("unscoped");
    let scheduled = json!({
        "version": "0", "id": "53dc4d37-cffa-4f76-80c9-8b7d4a4d2eaa", "detail-type": "Scheduled Event",
        "source": "aws.events", "account": "111122223333", "time": "2026-03-02T09:35:00Z",
        "region": "eu-west-1", "resources": ["arn:aws:events:eu-west-1:111122223333:rule/release-machine-Sweep"],
        "detail": {}});
    poll_execution::handle(scheduled, &w.ports())
        .await
        .expect("scheduled");
    let polled = &w.polled()[before..];
    assert_eq!(polled.len(), 2 * (5 + 6), "{polled:?}");
    assert!(polled.iter().any(|p| p.starts_with('a')) && polled.iter().any(|p| p.starts_with('b')));
}

#[test]
fn the_sweep_request_shapes() {
    use rm_core::tasks::PollRequest;
    let scoped: PollRequest =
        serde_json::from_value(json!({"action": "sweep", "releaseId": "5.10"})).unwrap();
    assert_eq!(
        scoped,
        PollRequest::Sweep {
            release_id: Some("5.10".into())
        }
    );
    let all: PollRequest = serde_json::from_value(json!({"action": "sweep"})).unwrap();
    assert_eq!(all, PollRequest::Sweep { release_id: None });
    assert_eq!(
        serde_json::to_value(&all).unwrap(),
        json!({"action": "sweep"})
    );
    assert_eq!(
        serde_json::to_value(&scoped).unwrap(),
        json!({"action": "sweep", "releaseId": "5.10"})
    );
}

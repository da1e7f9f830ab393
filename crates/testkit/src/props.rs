//! Shared pieces of the handlers' property tests (`functions/*/tests/props.rs`): strategies
//! for arbitrary JSON, text and bytes, mutations of the sample events in `events/`, the
//! in-memory world the handlers run against, and the checks every answer must pass.
//!
//! A property fails on a panic: proptest runs each case under `catch_unwind` and turns a
//! panic into a failed case (see [`tests::a_panicking_property_fails`]), so "never panics"
//! needs no assertion of its own.

use std::future::Future;

use proptest::collection::{btree_map, vec};
use proptest::prelude::*;
use proptest::sample::{select, Index};
use proptest::test_runner::{Config, TestCaseError};
use rm_core::error::{Rejection, TaskError};
use rm_core::handlers::TaskPorts;
use rm_core::memory::{
    FakeAlarms, FakeExecutions, FakeHealth, FakePipelines, FakeSource, ManualClock, MemoryBus,
    MemoryStore, RecordingJobs, RecordingTokens,
};
use rm_core::ports::{ApiPorts, Clock, GatePorts, ManifestPorts, ReleaseStore, RunKey, Sensors};
use rm_core::tasks::{CheckManifestRequest, PipelineRef};
use rm_core::usecases::{self, RunPorts};
use rm_core::ReleaseId;
use serde_json::{json, Value};

/// Cases per property: a few seconds per test file in the dev profile.
pub const CASES: u32 = 256;

/// The configuration of every handler property.
pub fn config() -> Config {
    Config {
        cases: CASES,
        ..Config::default()
    }
}

/// The sample release of `events/`: its id, the execution that owns it, its pipelines.
pub const SAMPLE_RELEASE: &str = "2026.03.1";
pub const SAMPLE_EXECUTION: &str = "rm-2026-03-02T09-15-00-17793124";
pub const SAMPLE_PIPELINES: [&str; 4] = [
    "payments-db-migrate",
    "payments-api",
    "checkout-web",
    "ledger-worker",
];
/// Where `events/s3-object-created.json` says the manifest is.
pub const SAMPLE_BUCKET: &str = "release-machine-manifests-111122223333";
pub const SAMPLE_KEY: &str = "releases/2026.03.1/release-manifest.json";

/// Words the handlers look for: mutations put them where the samples had something else, so
/// a decoder gets past its first check more often than random text would.
pub const VOCABULARY: &[&str] = &[
    // Actions and tags.
    "start",
    "stopTimedOut",
    "stopRunning",
    "await",
    "sweep",
    "recordRelease",
    // Statuses: the release's, CodePipeline's event states, the runs'.
    "RUNNING",
    "SUCCEEDED",
    "FAILED",
    "STARTED",
    "RESUMED",
    "STOPPING",
    "STOPPED",
    "SUPERSEDED",
    "CANCELED",
    "InProgress",
    "Succeeded",
    // Event kinds and fields.
    "Object Created",
    "Scheduled Event",
    "CodePipeline Pipeline Execution State Change",
    "detail-type",
    "detail",
    "claimedRelease",
    "PipelineFailed",
    "stop",
    "continue",
    "fail",
    "pass",
    // Sample ids.
    SAMPLE_RELEASE,
    SAMPLE_EXECUTION,
    "payments-db-migrate",
    "payments-api",
    "12345678-1234-5678-abcd-12345678abcd",
    SAMPLE_BUCKET,
    SAMPLE_KEY,
    // HTTP.
    "GET",
    "POST",
    "DELETE",
    "/releases",
    "/releases/2026.03.1",
    "/releases/",
    // Times, good and out of range.
    "2026-03-02T09:31:47Z",
    "2026-03-02T09:31:47.123456789+14:00",
    "+262143-12-31T23:59:59Z",
    "0000-01-01T00:00:00Z",
    "not a time",
];

/// A regex strategy compiled once (a `&str` strategy compiles its regex for every value).
pub fn re(pattern: &str) -> BoxedStrategy<String> {
    proptest::string::string_regex(pattern)
        .expect("a valid regex")
        .boxed()
}

/// Strings: short arbitrary text, the vocabulary, and the edges (empty, control characters,
/// non-ASCII, over-long).
pub fn any_text() -> BoxedStrategy<String> {
    prop_oneof![
        4 => re("\\PC{0,24}"),
        1 => re(".{0,8}"),
        3 => select(VOCABULARY).prop_map(str::to_owned),
        1 => select(vec![
            String::new(),
            " ".into(),
            "\0".into(),
            "null".into(),
            "0".into(),
            "-1".into(),
            "é🚀\u{202e}".into(),
            "a".repeat(81),
            "x".repeat(6000),
        ]),
    ]
    .boxed()
}

/// Numbers at the edges of the types decoders read them into.
pub fn edge_number() -> BoxedStrategy<Value> {
    select(vec![
        json!(0),
        json!(1),
        json!(-1),
        json!(i64::from(u32::MAX) - 1),
        json!(u32::MAX),
        json!(u64::from(u32::MAX) + 1),
        json!(i64::MAX),
        json!(i64::MIN),
        json!(u64::MAX),
        json!(0.5),
        json!(-0.0),
        json!(3.0),
        json!(1e308),
        json!(-1e308),
        json!(f64::MIN_POSITIVE),
    ])
    .boxed()
}

/// Any JSON value, nested a few levels, its scalars biased toward the edges.
pub fn any_json() -> BoxedStrategy<Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(|n| json!(n)),
        any::<u64>().prop_map(|n| json!(n)),
        any::<f64>()
            .prop_filter("finite", |f| f.is_finite())
            .prop_map(|f| json!(f)),
        edge_number(),
        any_text().prop_map(Value::String),
    ];
    leaf.prop_recursive(4, 48, 6, |inner| {
        prop_oneof![
            vec(inner.clone(), 0..6).prop_map(Value::Array),
            btree_map(any_text(), inner, 0..6).prop_map(|m| Value::Object(m.into_iter().collect())),
        ]
    })
    .boxed()
}

/// Arbitrary bytes.
pub fn any_bytes() -> BoxedStrategy<Vec<u8>> {
    vec(any::<u8>(), 0..512).boxed()
}

pub use crate::{event, event_bytes};

/// One step of a path into a JSON value.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Step {
    Key(String),
    Index(usize),
}

/// Every path to a value inside `v`, the root excluded, parents before children.
fn paths(v: &Value) -> Vec<Vec<Step>> {
    fn walk(v: &Value, prefix: &mut Vec<Step>, out: &mut Vec<Vec<Step>>) {
        let children: Vec<(Step, &Value)> = match v {
            Value::Object(m) => m.iter().map(|(k, c)| (Step::Key(k.clone()), c)).collect(),
            Value::Array(a) => a
                .iter()
                .enumerate()
                .map(|(i, c)| (Step::Index(i), c))
                .collect(),
            _ => return,
        };
        for (step, child) in children {
            prefix.push(step);
            out.push(prefix.clone());
            walk(child, prefix, out);
            prefix.pop();
        }
    }
    let mut out = Vec::new();
    walk(v, &mut Vec::new(), &mut out);
    out
}

fn get<'a>(v: &'a Value, path: &[Step]) -> Option<&'a Value> {
    path.iter().try_fold(v, |v, step| match step {
        Step::Key(k) => v.get(k.as_str()),
        Step::Index(i) => v.get(*i),
    })
}

fn get_mut<'a>(v: &'a mut Value, path: &[Step]) -> Option<&'a mut Value> {
    path.iter().try_fold(v, |v, step| match step {
        Step::Key(k) => v.get_mut(k.as_str()),
        Step::Index(i) => v.get_mut(*i),
    })
}

/// What a mutation does to the value at the path it picks.
#[derive(Debug, Clone)]
pub enum Mutation {
    /// Drops the field (or array item).
    Remove,
    /// Puts another value in its place.
    Replace(Value),
    /// Changes its type, keeping what it said where it can (`"3"` for `3`, `[x]` for `x`).
    Retype(u8),
    /// Renames the field, keeping its value.
    Rename(String),
    /// Adds a field next to it (to its object, or to it if it is an object).
    Insert(String, Value),
}

/// One mutation.
pub fn mutation() -> BoxedStrategy<Mutation> {
    let name = prop_oneof![2 => any_text(), 1 => select(VOCABULARY).prop_map(str::to_owned)];
    prop_oneof![
        2 => Just(Mutation::Remove),
        2 => any_json().prop_map(Mutation::Replace),
        1 => edge_number().prop_map(Mutation::Replace),
        // Most leaves of the samples are strings: other text keeps the type, so the decoder
        // accepts the shape and the value goes on to the use case.
        5 => any_text().prop_map(|s| Mutation::Replace(json!(s))),
        2 => any::<u8>().prop_map(Mutation::Retype),
        1 => name.clone().prop_map(Mutation::Rename),
        1 => (name, any_json()).prop_map(|(k, v)| Mutation::Insert(k, v)),
    ]
    .boxed()
}

fn retype(v: &Value, pick: u8) -> Value {
    let alternatives: Vec<Value> = match v {
        Value::Null => vec![json!(""), json!(0), json!(false), json!({}), json!([])],
        Value::Bool(b) => vec![json!(b.to_string()), json!(u8::from(*b)), Value::Null],
        Value::Number(n) => vec![
            json!(n.to_string()),
            json!(n.as_f64().map_or(0.5, |f| f + 0.5)),
            json!(n.as_f64().map_or(-1.0, |f| -f)),
            json!([n]),
            json!(true),
        ],
        Value::String(s) => vec![
            s.parse::<f64>()
                .ok()
                .filter(|f| f.is_finite())
                .map_or(json!(s.len()), |f| json!(f)),
            json!([s]),
            json!({ "value": s }),
            json!(!s.is_empty()),
            json!(s.to_uppercase()),
            json!(s.repeat(8)),
        ],
        Value::Array(a) => vec![
            Value::Object(
                a.iter()
                    .enumerate()
                    .map(|(i, x)| (i.to_string(), x.clone()))
                    .collect(),
            ),
            a.first().cloned().unwrap_or(Value::Null),
            json!(a.len()),
            Value::Array(a.iter().chain(a).cloned().collect()),
        ],
        Value::Object(m) => vec![
            Value::Array(m.values().cloned().collect()),
            Value::Array(vec![v.clone()]),
            json!(v.to_string()),
            json!({}),
        ],
    };
    alternatives[usize::from(pick) % alternatives.len()].clone()
}

/// Applies `mutation` at the path `at` picks in `v`; a value without paths is left alone.
pub fn apply(v: &mut Value, at: &Index, mutation: Mutation) {
    let all = paths(v);
    if all.is_empty() {
        return;
    }
    let path = at.get(&all).clone();
    let (last, parent_path) = path.split_last().expect("paths exclude the root");
    match mutation {
        Mutation::Remove => match (get_mut(v, parent_path), last) {
            (Some(Value::Object(m)), Step::Key(k)) => {
                m.shift_remove(k);
            }
            (Some(Value::Array(a)), Step::Index(i)) if *i < a.len() => {
                a.remove(*i);
            }
            _ => {}
        },
        Mutation::Replace(new) => {
            if let Some(target) = get_mut(v, &path) {
                *target = new;
            }
        }
        Mutation::Retype(pick) => {
            if let Some(target) = get_mut(v, &path) {
                *target = retype(target, pick);
            }
        }
        Mutation::Rename(to) => {
            if let (Some(Value::Object(m)), Step::Key(k)) = (get_mut(v, parent_path), last) {
                if let Some(value) = m.shift_remove(k) {
                    m.insert(to, value);
                }
            }
        }
        Mutation::Insert(key, value) => {
            let target = match get_mut(v, &path) {
                Some(Value::Object(_)) => path.as_slice(),
                _ => parent_path,
            };
            if let Some(Value::Object(m)) = get_mut(v, target) {
                m.insert(key, value);
            }
        }
    }
}

/// `sample` with one to three mutations applied at arbitrary depths. Half the cases break
/// its shape (fields dropped, replaced by any JSON, retyped, renamed or added: the decoder's
/// errors), half keep the shape and change values only (other text in a string, an edge number
/// in a number, the other boolean: the use case's checks behind the decoder). Most of the event
/// stays as real senders write it, so the handler gets deep before it meets the fault.
pub fn mutated(sample: Value) -> BoxedStrategy<Value> {
    let reshaped = {
        let sample = sample.clone();
        vec((any::<Index>(), mutation()), 1..=3).prop_map(move |steps| {
            let mut v = sample.clone();
            for (at, m) in steps {
                apply(&mut v, &at, m);
            }
            v
        })
    };
    let revalued = vec((any::<Index>(), any_text(), edge_number()), 1..=3).prop_map(move |steps| {
        let mut v = sample.clone();
        for (at, text, number) in steps {
            let leaves: Vec<Vec<Step>> = paths(&v)
                .into_iter()
                .filter(|p| {
                    matches!(
                        get(&v, p),
                        Some(Value::String(_) | Value::Number(_) | Value::Bool(_))
                    )
                })
                .collect();
            if leaves.is_empty() {
                break;
            }
            let leaf: &Vec<Step> = at.get(&leaves);
            if let Some(leaf) = get_mut(&mut v, leaf) {
                *leaf = match leaf {
                    Value::String(_) => Value::String(text),
                    Value::Bool(b) => Value::Bool(!*b),
                    _ => number,
                };
            }
        }
        v
    });
    prop_oneof![reshaped, revalued].boxed()
}

/// A mutation ([`mutated`]) of one of the `events/` samples `names`.
pub fn mutated_event(names: &[&'static str]) -> BoxedStrategy<Value> {
    select(names.to_vec())
        .prop_flat_map(|name| mutated(event(name)))
        .boxed()
}

/// `sample` cut short, with bytes flipped, or with bytes spliced in: broken text of a real
/// document.
pub fn corrupted(sample: Vec<u8>) -> BoxedStrategy<Vec<u8>> {
    let n = sample.len();
    (
        0..=n,
        vec((any::<Index>(), any::<u8>()), 0..4),
        any::<Index>(),
        vec(any::<u8>(), 0..8),
    )
        .prop_map(move |(cut, flips, at, splice)| {
            let mut b = sample[..cut].to_vec();
            if !b.is_empty() {
                for (i, byte) in flips {
                    let i = i.index(b.len());
                    b[i] = byte;
                }
            }
            let at = at.index(b.len() + 1);
            b.splice(at..at, splice);
            b
        })
        .boxed()
}

/// Runs a handler's future to completion on a fresh single-threaded runtime, on this thread,
/// so a panic in the handler unwinds into the property and fails it.
pub fn block_on<F: Future>(future: F) -> F::Output {
    tokio::runtime::Builder::new_current_thread()
        .build()
        .expect("a current-thread runtime")
        .block_on(future)
}

/// The text of an error without its prefix (`bad task input: ` etc.).
fn inner_message(e: &TaskError) -> Option<&str> {
    match e {
        TaskError::ManifestInvalid(_) => None,
        TaskError::ManifestUnreadable(m)
        | TaskError::Duplicate(m)
        | TaskError::BadInput(m)
        | TaskError::NotFound(m)
        | TaskError::Throttled(m)
        | TaskError::Transient(m)
        | TaskError::PipelineNotStartable(m)
        | TaskError::ReleaseEnded(m)
        | TaskError::Conflict(m)
        | TaskError::Internal(m) => Some(m),
    }
}

/// A rejection names at least one problem, each at a JSONPath, each with a message.
pub fn check_rejection(r: &Rejection) -> Result<(), TestCaseError> {
    prop_assert!(!r.0.is_empty(), "a rejection without errors");
    for e in &r.0 {
        prop_assert!(e.path.starts_with('$'), "a path without $: {:?}", e);
        prop_assert!(!e.message.trim().is_empty(), "an empty message: {:?}", e);
    }
    Ok(())
}

/// A typed error: its `errorType` is documented and one of `allowed` (what this input may
/// end with), and it says something.
pub fn check_task_error(e: &TaskError, allowed: &[&str]) -> Result<(), TestCaseError> {
    let kind = e.error_type();
    prop_assert!(
        TaskError::ERROR_TYPES.contains(&kind),
        "undocumented errorType {}",
        kind
    );
    prop_assert!(
        allowed.contains(&kind),
        "errorType {} not among {:?}: {}",
        kind,
        allowed,
        e
    );
    prop_assert!(
        !e.to_string().trim().is_empty(),
        "an empty message: {:?}",
        e
    );
    match (e, inner_message(e)) {
        (TaskError::ManifestInvalid(r), _) => check_rejection(r)?,
        (_, Some(m)) => prop_assert!(!m.trim().is_empty(), "an empty message: {:?}", e),
        (_, None) => {}
    }
    Ok(())
}

/// Checks a handler's result: `ok` checks an answer, [`check_task_error`] an error.
pub fn check_result<T>(
    result: Result<T, TaskError>,
    allowed: &[&str],
    ok: impl FnOnce(T) -> Result<(), TestCaseError>,
) -> Result<(), TestCaseError> {
    match result {
        Ok(answer) => ok(answer),
        Err(e) => check_task_error(&e, allowed),
    }
}

/// `v` is an object with exactly these keys.
pub fn check_keys(v: &Value, keys: &[&str]) -> Result<(), TestCaseError> {
    let Some(m) = v.as_object() else {
        return Err(TestCaseError::fail(format!("not an object: {v}")));
    };
    let mut got: Vec<&str> = m.keys().map(String::as_str).collect();
    let mut want = keys.to_vec();
    got.sort_unstable();
    want.sort_unstable();
    prop_assert_eq!(got, want, "keys of {}", v);
    Ok(())
}

/// A non-empty string field of `v`.
pub fn text_field<'a>(v: &'a Value, key: &str) -> Result<&'a str, TestCaseError> {
    match v.get(key).and_then(Value::as_str) {
        Some(s) if !s.trim().is_empty() => Ok(s),
        _ => Err(TestCaseError::fail(format!(
            "{key} is not a non-empty string: {v}"
        ))),
    }
}

/// Every in-memory port, as `tests/events.rs` of each function builds them: the sample's four
/// pipelines exist, the clock is fixed, nothing is stored.
pub struct World {
    pub store: MemoryStore,
    pub pipelines: FakePipelines,
    pub tokens: RecordingTokens,
    pub clock: ManualClock,
    pub source: FakeSource,
    pub executions: FakeExecutions,
    pub alarms: FakeAlarms,
    pub health: FakeHealth,
    pub jobs: RecordingJobs,
    /// Every event published, in order.
    pub bus: MemoryBus,
}

impl Default for World {
    fn default() -> Self {
        Self::new()
    }
}

impl World {
    pub fn new() -> Self {
        World {
            store: MemoryStore::new(),
            pipelines: FakePipelines::with(&SAMPLE_PIPELINES),
            tokens: RecordingTokens::default(),
            clock: ManualClock::fixed(),
            source: FakeSource::default(),
            executions: FakeExecutions::default(),
            alarms: FakeAlarms::default(),
            health: FakeHealth::default(),
            jobs: RecordingJobs::default(),
            bus: MemoryBus::new(),
        }
    }

    /// The ports of the run tasks (start-pipelines, poll-execution, record-state).
    pub fn run_ports(&self) -> RunPorts<'_> {
        RunPorts {
            sensors: self.sensors(),
            store: &self.store,
            pipelines: &self.pipelines,
            tokens: &self.tokens,
            executions: &self.executions,
            bus: &self.bus,
            clock: &self.clock,
        }
    }

    /// The ports of the manifest check (check-manifest).
    pub fn manifest_ports(&self) -> ManifestPorts<'_> {
        self.task_ports().manifest()
    }

    /// Every port of the release state machine's functions, for [`rm_core::handlers::dispatch`].
    pub fn task_ports(&self) -> TaskPorts<'_> {
        TaskPorts {
            sensors: self.sensors(),
            store: &self.store,
            pipelines: &self.pipelines,
            tokens: &self.tokens,
            executions: &self.executions,
            source: &self.source,
            bus: &self.bus,
            clock: &self.clock,
        }
    }

    /// The ports of the API (release-api).
    pub fn api_ports(&self) -> ApiPorts<'_> {
        ApiPorts {
            sensors: self.sensors(),
            store: &self.store,
            pipelines: &self.pipelines,
            executions: &self.executions,
            tokens: &self.tokens,
            bus: &self.bus,
            clock: &self.clock,
        }
    }

    /// The ports of the gate (health-gate).
    pub fn gate_ports(&self) -> GatePorts<'_> {
        GatePorts {
            alarms: &self.alarms,
            health: &self.health,
            jobs: &self.jobs,
            store: &self.store,
            clock: &self.clock,
        }
    }

    /// What the gates look at.
    pub fn sensors(&self) -> Sensors<'_> {
        Sensors {
            alarms: &self.alarms,
            health: &self.health,
        }
    }

    /// The sample release (`events/release-manifest.json`), claimed by [`SAMPLE_EXECUTION`].
    pub async fn claim_sample(&self) {
        let request = CheckManifestRequest {
            input: event("release-manifest.json"),
            execution_name: SAMPLE_EXECUTION.to_owned(),
        };
        usecases::check_manifest(&request, &self.manifest_ports())
            .await
            .expect("the sample manifest is valid");
    }

    /// Starts a pipeline of the claimed sample release, as StartPipeline does; returns the
    /// execution id.
    pub async fn start_sample(&self, pipeline: &str) -> String {
        let task = PipelineRef {
            release_id: SAMPLE_RELEASE.to_owned(),
            execution_name: SAMPLE_EXECUTION.to_owned(),
            pipeline: pipeline.to_owned(),
        };
        usecases::start_pipeline(&task, &self.run_ports())
            .await
            .expect("a pipeline of the sample release starts")
            .execution_id
            .expect("a started run has an execution id")
    }

    /// Records a start of a pipeline of the claimed sample release under `execution_id` (the
    /// one the sample CodePipeline events name), and a waiting task's `token` on the run.
    pub async fn wait_on_sample(&self, pipeline: &str, execution_id: &str, token: &str) {
        let rid = ReleaseId::parse(SAMPLE_RELEASE).expect("the sample id is valid");
        self.store
            .record_start(
                &rid,
                SAMPLE_EXECUTION,
                pipeline,
                execution_id,
                Clock::now(&self.clock),
                &[],
            )
            .await
            .expect("record the start");
        let key = RunKey {
            release_id: rid,
            pipeline: pipeline.to_owned(),
        };
        self.store
            .set_token(&key, token, Clock::now(&self.clock))
            .await
            .expect("store the token");
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::strategy::ValueTree;
    use proptest::test_runner::TestRunner;

    #[test]
    fn a_panicking_property_fails() {
        let mut runner = TestRunner::new(Config {
            cases: 16,
            failure_persistence: None,
            ..Config::default()
        });
        let result = runner.run(&any_json(), |_| panic!("boom"));
        let Err(proptest::test_runner::TestError::Fail(reason, _)) = result else {
            panic!("a panic must fail the property: {result:?}");
        };
        assert!(reason.to_string().contains("boom"), "{reason}");
    }

    #[test]
    fn mutations_change_the_sample_and_reach_deep_fields() {
        let sample = event("codepipeline-job.json");
        let mut runner = TestRunner::deterministic();
        let strategy = mutated(sample.clone());
        let mut changed = 0;
        let mut deep = 0;
        for _ in 0..200 {
            let v = strategy.new_tree(&mut runner).unwrap().current();
            if v != sample {
                changed += 1;
            }
            if v.pointer("/CodePipeline.job/data/actionConfiguration")
                != sample.pointer("/CodePipeline.job/data/actionConfiguration")
            {
                deep += 1;
            }
        }
        assert!(changed > 150, "{changed} of 200 changed");
        assert!(deep > 10, "{deep} of 200 changed the action configuration");
    }

    #[test]
    fn every_path_of_a_sample_is_reachable() {
        let sample = event("task-check-manifest.json");
        let all = paths(&sample);
        assert!(all.contains(&vec![
            Step::Key("input".into()),
            Step::Key("detail".into()),
            Step::Key("object".into()),
            Step::Key("key".into()),
        ]));
        assert!(all.contains(&vec![
            Step::Key("input".into()),
            Step::Key("resources".into()),
            Step::Index(0),
        ]));
    }

    #[test]
    fn a_typed_error_outside_the_allowed_set_fails_the_check() {
        let e = TaskError::BadInput("x".into());
        assert!(check_task_error(&e, &["BadInput"]).is_ok());
        assert!(check_task_error(&e, &["NotFound"]).is_err());
        assert!(check_task_error(&TaskError::NotFound(" ".into()), &["NotFound"]).is_err());
        assert!(check_task_error(
            &TaskError::ManifestInvalid(Rejection(vec![])),
            &["ManifestInvalid"]
        )
        .is_err());
    }
}

//! The job event carries artifact credentials: whatever the handler logs, they are not in it.

use health_gate::{handle, Ports};
use rm_core::memory::{FakeAlarms, FakeHealth, ManualClock, MemoryStore, RecordingJobs};
use serde_json::{json, Value};
use std::fmt::Write as _;
use std::sync::{Arc, Mutex};
use tracing::field::{Field, Visit};
use tracing::span::{Attributes, Id, Record};
use tracing::{Event, Metadata, Subscriber};

/// Writes every event's and span's fields into one string.
#[derive(Clone, Default)]
struct Capture(Arc<Mutex<String>>);

impl Visit for Capture {
    fn record_debug(&mut self, field: &Field, value: &dyn std::fmt::Debug) {
        let _ = writeln!(self.0.lock().unwrap(), "{}={value:?}", field.name());
    }
}

impl Subscriber for Capture {
    fn enabled(&self, _: &Metadata<'_>) -> bool {
        true
    }
    fn new_span(&self, span: &Attributes<'_>) -> Id {
        span.record(&mut self.clone());
        Id::from_u64(1)
    }
    fn record(&self, _: &Id, values: &Record<'_>) {
        values.record(&mut self.clone());
    }
    fn record_follows_from(&self, _: &Id, _: &Id) {}
    fn event(&self, event: &Event<'_>) {
        event.record(&mut self.clone());
    }
    fn enter(&self, _: &Id) {}
    fn exit(&self, _: &Id) {}
}

fn job() -> Value {
    let path = format!(
        "{}/../../events/codepipeline-job.json",
        env!("CARGO_MANIFEST_DIR")
    );
    serde_json::from_slice(&std::fs::read(path).unwrap()).unwrap()
}

async fn logs_of(payload: Value) -> String {
    let capture = Capture::default();
    let _guard = tracing::subscriber::set_default(capture.clone());
    let alarms = FakeAlarms::default();
    let health = FakeHealth::default();
    let jobs = RecordingJobs::default();
    let store = MemoryStore::new();
    let ports = Ports {
        alarms: &alarms,
        health: &health,
        jobs: &jobs,
        store: &store,
        clock: &ManualClock::fixed(),
    };
    let _ = handle(payload, &ports).await;
    let logs = capture.0.lock().unwrap().clone();
    logs
}

fn assert_no_credentials(logs: &str) {
    for secret in [
        "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY",
        "FQoGZXIvYXdzEXAMPLESESSIONTOKENDONOTLOG",
        "AKIAIOSFODNN7EXAMPLE",
    ] {
        assert!(!logs.contains(secret), "{secret} was logged:\n{logs}");
    }
}

#[tokio::test]
async fn a_gate_run_logs_the_job_id_and_never_the_credentials() {
    let logs = logs_of(job()).await;
    assert!(
        logs.contains("c0d3f00d-1111-4e2a-9c1b-0123456789ab"),
        "{logs}"
    );
    assert_no_credentials(&logs);
}

#[tokio::test]
async fn an_undecodable_job_does_not_echo_the_event_either() {
    let mut job = job();
    job["CodePipeline.job"]["data"]["inputArtifacts"] = json!("not a list");
    let logs = logs_of(job).await;
    assert!(logs.contains("could not be read"), "{logs}");
    assert_no_credentials(&logs);
}

#[tokio::test]
async fn a_credential_of_the_wrong_type_is_not_quoted_in_logs() {
    let mut job = job();
    job["CodePipeline.job"]["data"]["artifactCredentials"]["secretAccessKey"] =
        json!(["wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY"]);
    let logs = logs_of(job).await;
    assert!(logs.contains("could not be read"), "{logs}");
    assert_no_credentials(&logs);
}

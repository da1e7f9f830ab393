//! health-gate fed events/codepipeline-job.json, over the in-memory ports.

use health_gate::{handle, Ports};
use rm_core::error::PortError;
use rm_core::memory::{FakeAlarms, FakeHealth, ManualClock, MemoryStore, RecordingJobs};
use rm_core::ports::{AlarmState, HealthIssue};
use serde_json::{json, Value};

const JOB_ID: &str = "c0d3f00d-1111-4e2a-9c1b-0123456789ab";

fn job() -> Value {
    rm_testkit::event("codepipeline-job.json")
}

fn with_user_parameters(params: Value) -> Value {
    let mut job = job();
    job["CodePipeline.job"]["data"]["actionConfiguration"]["configuration"]["UserParameters"] =
        json!(params.to_string());
    job
}

fn alarm(name: &str, state: &str) -> AlarmState {
    AlarmState {
        name: name.into(),
        state: state.parse().unwrap(),
        actions_enabled: true,
        reason: Some(format!("Threshold Crossed: {name}")),
        transitioned_at: None,
    }
}

struct World {
    alarms: FakeAlarms,
    health: FakeHealth,
    jobs: RecordingJobs,
    store: MemoryStore,
    clock: ManualClock,
}

impl World {
    fn new(alarms: Vec<AlarmState>) -> Self {
        World {
            alarms: FakeAlarms::with(alarms),
            health: FakeHealth::default(),
            jobs: RecordingJobs::default(),
            store: MemoryStore::new(),
            clock: ManualClock::fixed(),
        }
    }

    fn ports(&self) -> Ports<'_> {
        Ports {
            alarms: &self.alarms,
            health: &self.health,
            jobs: &self.jobs,
            store: &self.store,
            clock: &self.clock,
        }
    }

    /// The one answer the job got: (passed, message).
    fn answer(&self) -> (bool, String) {
        let results = self.jobs.results();
        assert_eq!(results.len(), 1, "exactly one answer: {results:?}");
        assert_eq!(results[0].0, JOB_ID);
        (results[0].1, results[0].2.clone())
    }
}

#[tokio::test]
async fn an_alarm_in_alarm_fails_the_job_naming_it() {
    let world = World::new(vec![
        alarm("payments-api-5xx", "ALARM"),
        alarm("prod-payments-latency", "OK"),
    ]);
    let out = handle(job(), &world.ports()).await.unwrap();
    assert_eq!(out["pass"], false);
    let (passed, message) = world.answer();
    assert!(!passed);
    assert!(message.contains("payments-api-5xx"), "{message}");
    assert!(message.contains("ALARM"), "{message}");
    assert!(!message.contains("prod-payments-latency is"), "{message}");
}

#[tokio::test]
async fn quiet_alarms_pass_the_job() {
    let world = World::new(vec![
        alarm("payments-api-5xx", "OK"),
        alarm("prod-payments-latency", "OK"),
    ]);
    let out = handle(job(), &world.ports()).await.unwrap();
    assert_eq!(out["pass"], true, "{out}");
    assert_eq!(out["jobId"], JOB_ID);
    let (passed, message) = world.answer();
    assert!(passed, "{message}");
    assert!(message.contains("2 alarm(s) checked"), "{message}");
}

#[tokio::test]
async fn insufficient_data_fails_unless_configured_to_pass() {
    let world = World::new(vec![alarm("payments-api-5xx", "INSUFFICIENT_DATA")]);
    handle(job(), &world.ports()).await.unwrap();
    assert!(!world.answer().0);

    let world = World::new(vec![alarm("payments-api-5xx", "INSUFFICIENT_DATA")]);
    let job = with_user_parameters(
        json!({"alarmNames": ["payments-api-5xx"], "insufficientData": "pass"}),
    );
    handle(job, &world.ports()).await.unwrap();
    assert!(world.answer().0);
}

#[tokio::test]
async fn an_open_health_issue_fails_the_job_when_enabled() {
    let world = World::new(vec![]);
    world.health.issues.lock().unwrap().push(HealthIssue {
        service: "EC2".into(),
        region: "eu-west-1".into(),
        event_type_code: "AWS_EC2_OPERATIONAL_ISSUE".into(),
        arn: "arn:aws:health:eu-west-1::event/EC2/AWS_EC2_OPERATIONAL_ISSUE/example".into(),
    });
    let job = with_user_parameters(
        json!({"health": {"enabled": true, "regions": ["eu-west-1"], "services": ["EC2"]}}),
    );
    handle(job, &world.ports()).await.unwrap();
    let (passed, message) = world.answer();
    assert!(!passed);
    assert!(message.contains("AWS_EC2_OPERATIONAL_ISSUE"), "{message}");
}

#[tokio::test]
async fn unreadable_alarms_fail_closed_by_default_and_open_when_asked() {
    let world = World::new(vec![]);
    *world.alarms.error.lock().unwrap() = Some(PortError::Throttled("Rate exceeded".into()));
    handle(job(), &world.ports()).await.unwrap();
    let (passed, message) = world.answer();
    assert!(!passed);
    assert!(message.contains("failing closed"), "{message}");

    let world = World::new(vec![]);
    *world.alarms.error.lock().unwrap() = Some(PortError::Throttled("Rate exceeded".into()));
    let job = with_user_parameters(json!({"alarmPrefixes": ["prod-"], "failOpen": true}));
    handle(job, &world.ports()).await.unwrap();
    let (passed, message) = world.answer();
    assert!(passed, "{message}");
    assert!(message.contains("failing open"), "{message}");
}

#[tokio::test]
async fn bad_user_parameters_fail_the_job_with_an_example() {
    let world = World::new(vec![]);
    let mut job = job();
    job["CodePipeline.job"]["data"]["actionConfiguration"]["configuration"]["UserParameters"] =
        json!("alarms=payments-api-5xx");
    handle(job, &world.ports()).await.unwrap();
    let (passed, message) = world.answer();
    assert!(!passed);
    assert!(message.contains("UserParameters"), "{message}");
    assert!(message.contains("alarmNames"), "{message}");
}

#[tokio::test]
async fn a_job_whose_data_does_not_decode_is_still_answered() {
    let world = World::new(vec![]);
    let mut job = job();
    job["CodePipeline.job"]["data"] = json!({"unexpected": true});
    let out = handle(job, &world.ports()).await.unwrap();
    assert_eq!(out["pass"], false);
    let (passed, message) = world.answer();
    assert!(!passed);
    assert!(message.contains("could not be read"), "{message}");
    assert!(!message.contains("secretAccessKey"), "{message}");
}

#[tokio::test]
async fn a_payload_without_a_job_id_is_bad_input_and_answers_nothing() {
    let world = World::new(vec![]);
    for payload in [
        json!({}),
        json!({"CodePipeline.job": {"data": {}}}),
        json!("job"),
    ] {
        let err = handle(payload.clone(), &world.ports())
            .await
            .expect_err("no job id");
        assert_eq!(err.error_type(), "BadInput", "{payload}");
    }
    assert!(world.jobs.results().is_empty());
}

#[test]
fn the_sample_job_carries_credentials_the_handler_must_not_log() {
    // The sample is real-shaped: artifact credentials are in it, which is why the handler
    // logs the job id only (see src/lib.rs).
    let job = job();
    assert!(job
        .pointer("/CodePipeline.job/data/artifactCredentials/secretAccessKey")
        .is_some());
}

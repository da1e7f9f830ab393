//! The CodePipeline emulator against the real `aws-sdk-codepipeline` client: operations,
//! AWS errors (`__type`), throttling, idempotent starts, stops, job results, admin endpoints,
//! and state-change events delivered through the Lambda Invoke API.

use aws_sdk_codepipeline::error::ProvideErrorMetadata;
use aws_sdk_codepipeline::types::{
    ExecutionDetails, FailureDetails, FailureType, PipelineExecutionStatus, PipelineVariable,
};
use aws_sdk_codepipeline::Client;
use axum::routing::post;
use axum::Router;
use rm_local::emulator::{Emulator, EmulatorOptions};
use rm_local::SimFile;
use serde_json::{json, Value};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

async fn client(emulator: &Emulator) -> Client {
    let config = rm_testkit::sdk_config(&emulator.url()).await;
    Client::new(&config)
}

fn sim(v: Value) -> SimFile {
    SimFile::from_value(&v).expect("valid sim file")
}

async fn start(sim_file: SimFile) -> Emulator {
    Emulator::start(EmulatorOptions {
        sim: sim_file,
        event_target: None,
    })
    .await
    .expect("emulator starts")
}

/// Polls (bounded: 20 s of real time, a guard against a hang, not a budget) until the execution
/// reaches `want`.
async fn wait_status(cp: &Client, pipeline: &str, id: &str, want: PipelineExecutionStatus) {
    let t0 = Instant::now();
    loop {
        let out = cp
            .get_pipeline_execution()
            .pipeline_name(pipeline)
            .pipeline_execution_id(id)
            .send()
            .await
            .expect("GetPipelineExecution");
        let status = out.pipeline_execution().unwrap().status().unwrap().clone();
        if status == want {
            return;
        }
        assert!(
            t0.elapsed() < Duration::from_secs(20),
            "{pipeline} {id} still {status:?}, expected {want:?}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn get_pipeline_and_not_found_error() {
    let emulator = start(sim(json!({"pipelines": {"ghost": {"exists": false}}}))).await;
    let cp = client(&emulator).await;
    let out = cp.get_pipeline().name("payments-api").send().await.unwrap();
    assert_eq!(out.pipeline().unwrap().name(), "payments-api");
    assert!(out
        .metadata()
        .unwrap()
        .pipeline_arn()
        .unwrap()
        .ends_with(":payments-api"));

    let err = cp.get_pipeline().name("ghost").send().await.unwrap_err();
    let service = err.into_service_error();
    assert!(service.is_pipeline_not_found_exception(), "{service:?}");
    assert!(service.message().unwrap().contains("ghost"));

    let calls = emulator.calls();
    assert_eq!(calls["payments-api"]["GetPipeline"], 1);
    assert_eq!(calls["ghost"]["GetPipeline"], 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn execution_runs_in_real_seconds_and_starts_are_idempotent() {
    let emulator = start(sim(json!({"defaults": {"durationSeconds": 1}}))).await;
    let cp = client(&emulator).await;
    let first = cp
        .start_pipeline_execution()
        .name("ledger")
        .client_request_token("rel-1-ledger")
        .variables(
            PipelineVariable::builder()
                .name("VERSION")
                .value("1.2.3")
                .build()
                .unwrap(),
        )
        .send()
        .await
        .unwrap();
    let id = first.pipeline_execution_id().unwrap().to_owned();
    let again = cp
        .start_pipeline_execution()
        .name("ledger")
        .client_request_token("rel-1-ledger")
        .send()
        .await
        .unwrap();
    assert_eq!(again.pipeline_execution_id(), Some(id.as_str()));

    let out = cp
        .get_pipeline_execution()
        .pipeline_name("ledger")
        .pipeline_execution_id(&id)
        .send()
        .await
        .unwrap();
    let execution = out.pipeline_execution().unwrap();
    assert_eq!(
        execution.status(),
        Some(&PipelineExecutionStatus::InProgress)
    );
    assert_eq!(execution.variables()[0].resolved_value(), Some("1.2.3"));

    wait_status(&cp, "ledger", &id, PipelineExecutionStatus::Succeeded).await;
    // The simulated timestamps follow the runtime's clock: in a real-time runtime the execution
    // lasts its durationSeconds (1 s), not a virtual jump.
    let executions = emulator.executions();
    assert_eq!(executions.len(), 1);
    let ran = executions[0].ended_at.expect("ended") - executions[0].started_at;
    assert!(
        ran >= time::Duration::seconds(1),
        "lasts its durationSeconds: {ran}"
    );
    assert_eq!(emulator.calls()["ledger"]["StartPipelineExecution"], 2);

    let err = cp
        .get_pipeline_execution()
        .pipeline_name("ledger")
        .pipeline_execution_id("no-such-id")
        .send()
        .await
        .unwrap_err();
    assert_eq!(
        err.into_service_error().code(),
        Some("PipelineExecutionNotFoundException")
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn throttled_starts_answer_throttling_exception() {
    let emulator = start(sim(json!({"pipelines": {"busy": {"throttleStarts": 5}}}))).await;
    let config = rm_testkit::sdk_config(&emulator.url()).await;
    // No SDK retries: see each throttled answer.
    let conf = aws_sdk_codepipeline::config::Builder::from(&config)
        .retry_config(aws_sdk_codepipeline::config::retry::RetryConfig::disabled())
        .build();
    let cp = Client::from_conf(conf);
    let err = cp
        .start_pipeline_execution()
        .name("busy")
        .client_request_token("t")
        .send()
        .await
        .unwrap_err();
    assert_eq!(err.into_service_error().code(), Some("ThrottlingException"));
    assert_eq!(
        emulator.calls()["busy"]["StartPipelineExecution.throttled"],
        1
    );
    assert!(emulator.executions().is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stop_then_stop_again_and_job_results() {
    let emulator = start(sim(
        json!({"defaults": {"durationSeconds": 60, "stopSeconds": 0.5}}),
    ))
    .await;
    let cp = client(&emulator).await;
    let id = cp
        .start_pipeline_execution()
        .name("api")
        .client_request_token("tok")
        .send()
        .await
        .unwrap()
        .pipeline_execution_id()
        .unwrap()
        .to_owned();
    cp.stop_pipeline_execution()
        .pipeline_name("api")
        .pipeline_execution_id(&id)
        .reason("sibling failed")
        .send()
        .await
        .unwrap();
    let err = cp
        .stop_pipeline_execution()
        .pipeline_name("api")
        .pipeline_execution_id(&id)
        .send()
        .await
        .unwrap_err();
    assert!(err
        .into_service_error()
        .is_duplicated_stop_request_exception());
    wait_status(&cp, "api", &id, PipelineExecutionStatus::Stopped).await;
    let err = cp
        .stop_pipeline_execution()
        .pipeline_name("api")
        .pipeline_execution_id(&id)
        .send()
        .await
        .unwrap_err();
    assert!(err
        .into_service_error()
        .is_pipeline_execution_not_stoppable_exception());
    assert_eq!(
        emulator.executions()[0].stop_reason.as_deref(),
        Some("sibling failed")
    );

    cp.put_job_failure_result()
        .job_id("job-1")
        .failure_details(
            FailureDetails::builder()
                .r#type(FailureType::JobFailed)
                .message("alarm payments-5xx is in ALARM")
                .build()
                .unwrap(),
        )
        .send()
        .await
        .unwrap();
    cp.put_job_success_result()
        .job_id("job-2")
        .execution_details(ExecutionDetails::builder().summary("all clear").build())
        .send()
        .await
        .unwrap();
    let jobs = emulator.job_results();
    assert_eq!(jobs.len(), 2);
    assert!(!jobs[0].success);
    assert_eq!(
        jobs[0].message.as_deref(),
        Some("alarm payments-5xx is in ALARM")
    );
    assert_eq!(jobs[0].failure_type.as_deref(), Some("JobFailed"));
    assert!(jobs[1].success);
    assert_eq!(jobs[1].message.as_deref(), Some("all clear"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn events_are_invoked_on_the_target_and_admin_endpoints_answer() {
    // A stand-in for the Lambda Invoke API of record-state.
    let received: Arc<Mutex<Vec<Value>>> = Arc::default();
    let sink = Arc::clone(&received);
    let app = Router::new().route(
        "/2015-03-31/functions/record-state/invocations",
        post(move |axum::Json(v): axum::Json<Value>| {
            let sink = Arc::clone(&sink);
            async move {
                sink.lock().unwrap().push(v);
                "null"
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let lambda = format!(
        "http://{}/2015-03-31/functions/record-state/invocations",
        listener.local_addr().unwrap()
    );
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });

    let emulator = Emulator::start(EmulatorOptions {
        sim: SimFile::default(),
        event_target: Some(lambda),
    })
    .await
    .unwrap();
    let http = reqwest::Client::builder().no_proxy().build().unwrap();
    let put = http
        .put(format!("{}/emulator/sim", emulator.url()))
        .body(
            r#"{"defaults": {"durationSeconds": 0.3}, "pipelines": {"quiet": {"events": "drop"}}}"#,
        )
        .send()
        .await
        .unwrap();
    assert_eq!(put.status(), 204);
    let bad = http
        .put(format!("{}/emulator/sim", emulator.url()))
        .body(r#"{"pipelines": {"x": {"outcome": "Maybe"}}}"#)
        .send()
        .await
        .unwrap();
    assert_eq!(bad.status(), 400);
    assert!(bad.text().await.unwrap().contains("$.pipelines.x.outcome"));

    let cp = client(&emulator).await;
    for name in ["loud", "quiet"] {
        cp.start_pipeline_execution()
            .name(name)
            .client_request_token(format!("t-{name}"))
            .send()
            .await
            .unwrap();
    }
    // Settled: both executions have ended (the simulator hands each event to the publisher in
    // the same step as the change, so every event there will be is queued), and the publisher
    // has recorded everything the target received (it records after each delivery, in order).
    let t0 = Instant::now();
    loop {
        let ended = emulator.executions().iter().all(|e| e.ended_at.is_some());
        let received_n = received.lock().unwrap().len();
        if ended && received_n >= 2 && emulator.events().len() == received_n {
            break;
        }
        assert!(
            t0.elapsed() < Duration::from_secs(10),
            "events not delivered: {received_n} received"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let events = received.lock().unwrap().clone();
    assert_eq!(events.len(), 2, "{events:#?}");
    let states: Vec<&str> = events
        .iter()
        .map(|e| e["detail"]["state"].as_str().unwrap())
        .collect();
    assert_eq!(states, ["STARTED", "SUCCEEDED"]);
    assert!(events.iter().all(|e| e["detail"]["pipeline"] == "loud"
        && e["detail-type"] == "CodePipeline Pipeline Execution State Change"));

    let calls: Value = http
        .get(format!("{}/emulator/calls", emulator.url()))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(calls["quiet"]["StartPipelineExecution"], 1);
    let published: Value = http
        .get(format!("{}/emulator/events", emulator.url()))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(published.as_array().unwrap().len(), 2);
    assert!(published[0]["delivery"]
        .as_str()
        .unwrap()
        .starts_with("200"));
    let executions: Value = http
        .get(format!("{}/emulator/executions", emulator.url()))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(executions.as_array().unwrap().len(), 2);

    // Not a CodePipeline target: an AWS error, not a crash.
    let raw = http
        .post(emulator.url())
        .header("x-amz-target", "CodePipeline_20150709.DeletePipeline")
        .header("content-type", "application/x-amz-json-1.1")
        .body("{}")
        .send()
        .await
        .unwrap();
    assert_eq!(raw.status(), 400);
    let body: Value = raw.json().await.unwrap();
    assert_eq!(body["__type"], "UnknownOperationException");
}

/// A stand-in for an invoke-Lambda action's function: it records each job event and answers
/// job n (from 1) on the emulator: PutJobFailureResult at `fail_at`, else PutJobSuccessResult,
/// with the continuation token `wait-n` while n < `hold_until`.
async fn gate_function(
    emulator_url: String,
    hold_until: usize,
    fail_at: Option<usize>,
) -> (String, Arc<Mutex<Vec<Value>>>) {
    let received: Arc<Mutex<Vec<Value>>> = Arc::default();
    let sink = Arc::clone(&received);
    let cp = Client::new(&rm_testkit::sdk_config(&emulator_url).await);
    let app = Router::new().route(
        "/2015-03-31/functions/health-gate/invocations",
        post(move |axum::Json(v): axum::Json<Value>| {
            let sink = Arc::clone(&sink);
            let cp = cp.clone();
            async move {
                let n = {
                    let mut all = sink.lock().unwrap();
                    all.push(v.clone());
                    all.len()
                };
                let job_id = v["CodePipeline.job"]["id"].as_str().unwrap().to_owned();
                if fail_at == Some(n) {
                    cp.put_job_failure_result()
                        .job_id(job_id)
                        .failure_details(
                            FailureDetails::builder()
                                .r#type(FailureType::JobFailed)
                                .message(format!("closed at job {n}"))
                                .build()
                                .unwrap(),
                        )
                        .send()
                        .await
                        .unwrap();
                } else {
                    let mut put = cp
                        .put_job_success_result()
                        .job_id(job_id)
                        .execution_details(
                            ExecutionDetails::builder()
                                .summary(format!("job {n}"))
                                .build(),
                        );
                    if n < hold_until {
                        put = put.continuation_token(format!("wait-{n}"));
                    }
                    put.send().await.unwrap();
                }
                "null"
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!(
        "http://{}/2015-03-31/functions/health-gate/invocations",
        listener.local_addr().unwrap()
    );
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    (url, received)
}

/// Polls the admin endpoint until the chain leaves InProgress (bounded: 10 s).
async fn settled_chain(http: &reqwest::Client, emulator: &Emulator, id: &str) -> Value {
    let t0 = Instant::now();
    loop {
        let chain: Value = http
            .get(format!("{}/emulator/gate-jobs/{id}", emulator.url()))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        if chain["status"] != "InProgress" {
            return chain;
        }
        assert!(t0.elapsed() < Duration::from_secs(10), "{chain:#}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test]
async fn a_held_gate_job_is_invoked_again_with_its_continuation_token_until_it_succeeds() {
    let emulator = start(SimFile::default()).await;
    let (target, received) = gate_function(emulator.url(), 3, None).await;
    let http = reqwest::Client::builder().no_proxy().build().unwrap();
    let started = http
        .post(format!("{}/emulator/gate-jobs", emulator.url()))
        .json(&json!({
            "target": target,
            "userParameters": r##"{"alarmNames": ["a"], "executionId": "#{codepipeline.PipelineExecutionId}"}"##,
            "pipelineExecutionId": "exec-1",
            "intervalSeconds": 0.1,
        }))
        .send()
        .await
        .unwrap();
    assert_eq!(started.status(), 201);
    let id = started.json::<Value>().await.unwrap()["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let chain = settled_chain(&http, &emulator, &id).await;
    assert_eq!(chain["status"], "Succeeded", "{chain:#}");
    let jobs = chain["jobs"].as_array().unwrap();
    assert_eq!(jobs.len(), 3, "{chain:#}");
    let tokens: Vec<&Value> = jobs.iter().map(|j| &j["continuationToken"]).collect();
    assert_eq!(tokens, [&Value::Null, &json!("wait-1"), &json!("wait-2")]);
    let answers: Vec<(&Value, &Value)> = jobs
        .iter()
        .map(|j| (&j["result"]["message"], &j["result"]["continuationToken"]))
        .collect();
    assert_eq!(
        answers,
        [
            (&json!("job 1"), &json!("wait-1")),
            (&json!("job 2"), &json!("wait-2")),
            (&json!("job 3"), &Value::Null),
        ]
    );

    // Each job is a new job id carrying the previous answer's token, the execution id resolved.
    let events = received.lock().unwrap().clone();
    let ids: std::collections::BTreeSet<&str> = events
        .iter()
        .map(|e| e["CodePipeline.job"]["id"].as_str().unwrap())
        .collect();
    assert_eq!(ids.len(), 3);
    assert_eq!(
        events[1]["CodePipeline.job"]["data"]["continuationToken"],
        "wait-1"
    );
    assert!(events[0]["CodePipeline.job"]["data"]
        .get("continuationToken")
        .is_none());
    let params = events[0]["CodePipeline.job"]["data"]["actionConfiguration"]["configuration"]
        ["UserParameters"]
        .as_str()
        .unwrap();
    assert!(params.contains(r#""executionId": "exec-1""#), "{params}");
    assert_eq!(emulator.gate_job(&id).unwrap().jobs.len(), 3);
}

#[tokio::test]
async fn a_gate_job_chain_ends_at_a_failure_or_an_unanswered_job() {
    let emulator = start(SimFile::default()).await;
    let (target, _) = gate_function(emulator.url(), 10, Some(2)).await;
    let http = reqwest::Client::builder().no_proxy().build().unwrap();
    let id = emulator.start_gate_job(rm_local::emulator::GateJobRequest {
        target,
        user_parameters: "{}".into(),
        pipeline_execution_id: "exec-2".into(),
        interval_seconds: Some(0.05),
    });
    let chain = settled_chain(&http, &emulator, &id).await;
    assert_eq!(chain["status"], "Failed", "{chain:#}");
    assert_eq!(chain["jobs"][1]["result"]["message"], "closed at job 2");

    // A function that answers nothing (here: no function at all) ends the chain as NoResult.
    let id = emulator.start_gate_job(rm_local::emulator::GateJobRequest {
        target: format!("{}/nowhere", emulator.url()),
        user_parameters: "{}".into(),
        pipeline_execution_id: "exec-3".into(),
        interval_seconds: None,
    });
    let chain = settled_chain(&http, &emulator, &id).await;
    assert_eq!(chain["status"], "NoResult", "{chain:#}");

    let bad = http
        .post(format!("{}/emulator/gate-jobs", emulator.url()))
        .json(&json!({"userParameters": "{}"}))
        .send()
        .await
        .unwrap();
    assert_eq!(bad.status(), 400);
    assert!(bad.text().await.unwrap().contains("target"));
    let missing = http
        .get(format!("{}/emulator/gate-jobs/gate-99", emulator.url()))
        .send()
        .await
        .unwrap();
    assert_eq!(missing.status(), 404);
}

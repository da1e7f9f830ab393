//! A CodePipeline emulator: an HTTP server on 127.0.0.1 speaking the AWS JSON 1.1 protocol
//! (`X-Amz-Target: CodePipeline_20150709.<Operation>`), backed by [`SimPipelines`] running in
//! real tokio time, so the real `aws-sdk-codepipeline` client (and so the Lambda functions) can
//! be tested against scripted pipelines.
//!
//! Operations: GetPipeline (the sim file's `pipelineType`, `variables` and `sourceActions` as
//! the Source stage, then a Deploy stage; without `sourceActions` one S3 source action named
//! `Source`), StartPipelineExecution (its `variables` and `sourceRevisions` are recorded),
//! GetPipelineExecution (`status`, `variables` as resolved, `artifactRevisions`),
//! ListPipelineExecutions (newest first, with `status`, `trigger`, `startTime`,
//! `lastUpdateTime` and `sourceRevisions`; paged by `maxResults`, 1 to 100, default 100, and
//! `nextToken`), StopPipelineExecution, PutJobSuccessResult and PutJobFailureResult (recorded
//! for assertions). A pipeline the sim file gives `lastRevisions` or `lastVariables` has an
//! execution from before the emulator started (`sim-last-<pipeline>`, see [`crate::sim`]),
//! listed and read like the others. Times are epoch seconds (JSON numbers), as the SDK reads
//! them. Errors are AWS's: HTTP 400 with `{"__type": "PipelineNotFoundException",
//! "message": ...}`.
//!
//! Each "CodePipeline Pipeline Execution State Change" event the simulator emits is published
//! the way EventBridge would deliver it to record-state: POSTed as the payload of a Lambda
//! Invoke call to [`EmulatorOptions::event_target`] (e.g. `cargo lambda watch`'s
//! `/2015-03-31/functions/record-state/invocations`). Delivery is sequential, in emission order.
//!
//! Admin endpoints (plain HTTP, for tests and scripts):
//!
//! | request | effect |
//! |---|---|
//! | `PUT /emulator/sim` (a sim file) | replaces the simulation: new behaviours, no executions, counts reset |
//! | `GET /emulator/calls` | API calls per pipeline and operation |
//! | `GET /emulator/jobs` | PutJobSuccessResult / PutJobFailureResult calls, in order |
//! | `GET /emulator/executions` | every execution started |
//! | `GET /emulator/events` | every state-change event published, with its delivery result |
//! | `POST /emulator/gate-jobs` `{"target", "userParameters", "pipelineExecutionId", "intervalSeconds"?}` | runs a Lambda invoke action (the health gate): 201 `{"id"}` |
//! | `GET /emulator/gate-jobs/{id}` | that action's chain of jobs, each with its result |
//!
//! Gate jobs: CodePipeline's invoke-Lambda action. The function at `target` (a Lambda Invoke
//! URL) is invoked with a job event shaped like `events/codepipeline-job.json`, its
//! `UserParameters` with `#{codepipeline.PipelineExecutionId}` resolved to
//! `pipelineExecutionId`. A job answered PutJobSuccessResult with a `continuationToken` keeps
//! the action in progress: after `intervalSeconds` (default 60, real seconds: the emulator's
//! clock is real time) the function is invoked again with a new job id and
//! `data.continuationToken` set to the token, as CodePipeline does
//! (<https://docs.aws.amazon.com/codepipeline/latest/APIReference/API_PutJobSuccessResult.html>,
//! `continuationToken`). The chain ends with PutJobSuccessResult without a token (Succeeded),
//! PutJobFailureResult (Failed), or a job the function left unanswered (NoResult).

use crate::clock::VirtualClock;
use crate::sim::{SimExecution, SimFile, SimPipelines, SimShape};
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post, put};
use axum::Router;
use rm_core::error::PortError;
use rm_core::manifest::{PipelineSpec, SourceRevision};
use rm_core::ports::{Pipelines, StartError};
use rm_core::release::RunStatus;
use serde::Serialize;
use serde_json::{json, Value};
use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, MutexGuard};
use time::OffsetDateTime;
use tokio::sync::mpsc;

const TARGET_PREFIX: &str = "CodePipeline_20150709.";
const CONTENT_TYPE: &str = "application/x-amz-json-1.1";

/// How to start an [`Emulator`].
#[derive(Debug, Clone, Default)]
pub struct EmulatorOptions {
    /// The simulation to run (default: every pipeline exists and succeeds after 180 s).
    pub sim: SimFile,
    /// Lambda Invoke URL that receives each state-change event as its payload; `None`: events
    /// are only recorded (see [`Emulator::events`]).
    pub event_target: Option<String>,
}

/// One PutJobSuccessResult or PutJobFailureResult call.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct JobResult {
    pub job_id: String,
    /// `true` for PutJobSuccessResult.
    pub success: bool,
    /// The success summary (`executionDetails.summary`) or the failure message
    /// (`failureDetails.message`).
    pub message: Option<String>,
    /// The failure type (`failureDetails.type`), for a failure.
    pub failure_type: Option<String>,
    /// The continuation token of a PutJobSuccessResult that keeps the action in progress.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub continuation_token: Option<String>,
    /// The request as sent.
    pub request: Value,
}

/// A published state-change event and what became of its delivery.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct PublishedEvent {
    pub event: Value,
    /// `None` without an event target; else the HTTP status, function error header and body of
    /// the invocation, or the transport error.
    pub delivery: Option<String>,
}

type Calls = BTreeMap<String, BTreeMap<String, u32>>;

#[derive(Default)]
struct Record {
    calls: Calls,
    jobs: Vec<JobResult>,
    events: Vec<PublishedEvent>,
    gate_jobs: BTreeMap<String, GateChain>,
}

/// How to run a gate action (`POST /emulator/gate-jobs`).
#[derive(Debug, Clone, PartialEq, serde::Deserialize, Serialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct GateJobRequest {
    /// The Lambda Invoke URL of the action's function.
    pub target: String,
    /// The action's `UserParameters`, as configured (`#{codepipeline.PipelineExecutionId}`
    /// is resolved).
    pub user_parameters: String,
    /// The pipeline execution the action runs in.
    pub pipeline_execution_id: String,
    /// Seconds between a held job and the next (default 60).
    #[serde(default)]
    pub interval_seconds: Option<f64>,
}

/// A gate action's jobs, in order, and where the chain stands.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct GateChain {
    pub id: String,
    /// InProgress, Succeeded, Failed or NoResult.
    pub status: String,
    pub jobs: Vec<GateJob>,
}

/// One job of a gate action.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct GateJob {
    pub job_id: String,
    /// The continuation token the job carried (`data.continuationToken`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub continuation_token: Option<String>,
    /// The invocation's outcome: HTTP status, function error and body.
    pub invocation: String,
    /// The function's answer (PutJobSuccessResult / PutJobFailureResult), if any.
    pub result: Option<JobResult>,
}

struct Shared {
    /// The file the simulator runs, kept to answer "does it exist" without counting a call.
    sim: Mutex<(SimFile, SimPipelines)>,
    bus: mpsc::UnboundedSender<Value>,
    record: Mutex<Record>,
}

fn locked<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

impl Shared {
    fn sim(&self) -> SimPipelines {
        locked(&self.sim).1.clone()
    }

    fn exists(&self, pipeline: &str) -> bool {
        locked(&self.sim).0.behaviour(pipeline).exists
    }

    /// What the sim file declares of `pipeline`, without counting a call.
    fn shape(&self, pipeline: &str) -> SimShape {
        locked(&self.sim).0.shape(pipeline)
    }

    fn count(&self, pipeline: &str, operation: &str) {
        *locked(&self.record)
            .calls
            .entry(pipeline.to_owned())
            .or_default()
            .entry(operation.to_owned())
            .or_default() += 1;
    }

    fn replace(&self, file: SimFile) {
        let sim = SimPipelines::new(
            file.clone(),
            VirtualClock::new(OffsetDateTime::now_utc()),
            self.bus.clone(),
        );
        *locked(&self.sim) = (file, sim);
        let mut record = locked(&self.record);
        record.calls.clear();
        record.jobs.clear();
        record.events.clear();
        record.gate_jobs.clear();
    }
}

/// A running emulator; stops when dropped.
pub struct Emulator {
    addr: SocketAddr,
    shared: Arc<Shared>,
    server: tokio::task::JoinHandle<()>,
    publisher: tokio::task::JoinHandle<()>,
}

/// The emulator could not start.
#[derive(Debug, thiserror::Error)]
#[error("cannot start the CodePipeline emulator on 127.0.0.1: {0}")]
pub struct EmulatorError(#[from] std::io::Error);

impl Emulator {
    /// Binds a free port on 127.0.0.1 and serves on the current tokio runtime, in real time
    /// (a paused runtime would make the simulated durations virtual).
    pub async fn start(options: EmulatorOptions) -> Result<Emulator, EmulatorError> {
        let listener = tokio::net::TcpListener::bind(("127.0.0.1", 0)).await?;
        let addr = listener.local_addr()?;
        let (bus, events) = mpsc::unbounded_channel();
        let sim = SimPipelines::new(
            options.sim.clone(),
            VirtualClock::new(OffsetDateTime::now_utc()),
            bus.clone(),
        );
        let shared = Arc::new(Shared {
            sim: Mutex::new((options.sim, sim)),
            bus,
            record: Mutex::new(Record::default()),
        });
        let publisher = tokio::spawn(publish(Arc::clone(&shared), events, options.event_target));
        let app = Router::new()
            .route("/", post(aws_json))
            .route("/emulator/sim", put(admin_sim))
            .route("/emulator/calls", get(admin_calls))
            .route("/emulator/jobs", get(admin_jobs))
            .route("/emulator/executions", get(admin_executions))
            .route("/emulator/events", get(admin_events))
            .route("/emulator/gate-jobs", post(admin_start_gate_job))
            .route("/emulator/gate-jobs/{id}", get(admin_gate_job))
            .with_state(Arc::clone(&shared));
        let server = tokio::spawn(async move {
            if let Err(e) = axum::serve(listener, app).await {
                tracing::error!("CodePipeline emulator stopped: {e}");
            }
        });
        Ok(Emulator {
            addr,
            shared,
            server,
            publisher,
        })
    }

    /// `http://127.0.0.1:PORT`: the endpoint for `AWS_ENDPOINT_URL_CODEPIPELINE`.
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Replaces the simulation (behaviours, executions, counts, jobs, events).
    pub fn load_sim(&self, file: SimFile) {
        self.shared.replace(file);
    }

    /// API calls per pipeline and operation (`GetPipeline`, `StartPipelineExecution`, ...);
    /// a throttled start also counts as `StartPipelineExecution.throttled`.
    pub fn calls(&self) -> BTreeMap<String, BTreeMap<String, u32>> {
        locked(&self.shared.record).calls.clone()
    }

    /// PutJobSuccessResult / PutJobFailureResult calls, in order.
    pub fn job_results(&self) -> Vec<JobResult> {
        locked(&self.shared.record).jobs.clone()
    }

    /// Every execution started, in start order.
    pub fn executions(&self) -> Vec<SimExecution> {
        self.shared.sim().executions()
    }

    /// Every state-change event published so far, with its delivery result.
    pub fn events(&self) -> Vec<PublishedEvent> {
        locked(&self.shared.record).events.clone()
    }

    /// Starts a gate action (see the module docs); returns its id.
    pub fn start_gate_job(&self, request: GateJobRequest) -> String {
        start_gate_chain(&self.shared, request)
    }

    /// A gate action's chain of jobs so far.
    pub fn gate_job(&self, id: &str) -> Option<GateChain> {
        locked(&self.shared.record).gate_jobs.get(id).cloned()
    }
}

/// The job event CodePipeline sends an invoke-Lambda action (the shape of
/// `events/codepipeline-job.json`, with no artifacts).
fn gate_job_event(job_id: &str, user_parameters: &str, token: Option<&str>) -> Value {
    let mut data = json!({
        "actionConfiguration": {
            "configuration": {
                "FunctionName": "health-gate",
                "UserParameters": user_parameters,
            }
        },
        "inputArtifacts": [],
        "outputArtifacts": [],
        "artifactCredentials": {
            "secretAccessKey": "emulator-secret",
            "sessionToken": "emulator-session",
            "accessKeyId": "emulator-key",
        },
    });
    if let Some(t) = token {
        data["continuationToken"] = json!(t);
    }
    json!({"CodePipeline.job": {"id": job_id, "accountId": "123456789012", "data": data}})
}

/// Records a new chain and runs it in the background.
fn start_gate_chain(shared: &Arc<Shared>, request: GateJobRequest) -> String {
    let id = {
        let mut record = locked(&shared.record);
        let id = format!("gate-{}", record.gate_jobs.len() + 1);
        record.gate_jobs.insert(
            id.clone(),
            GateChain {
                id: id.clone(),
                status: "InProgress".into(),
                jobs: Vec::new(),
            },
        );
        id
    };
    tokio::spawn(run_gate_chain(Arc::clone(shared), id.clone(), request));
    id
}

/// Invokes the action's function job after job until a job ends the action.
async fn run_gate_chain(shared: Arc<Shared>, id: String, request: GateJobRequest) {
    let client = reqwest::Client::builder()
        .no_proxy()
        .build()
        .expect("an HTTP client without TLS builds");
    let interval =
        std::time::Duration::from_secs_f64(request.interval_seconds.unwrap_or(60.0).max(0.0));
    let user_parameters = request.user_parameters.replace(
        "#{codepipeline.PipelineExecutionId}",
        &request.pipeline_execution_id,
    );
    let mut token: Option<String> = None;
    for n in 1.. {
        let job_id = format!(
            "{id}-job-{n}-{}",
            OffsetDateTime::now_utc().unix_timestamp_nanos()
        );
        let event = gate_job_event(&job_id, &user_parameters, token.as_deref());
        let invocation = deliver(&client, &request.target, &event).await;
        // The function answers before it returns; a short grace covers a slow answer.
        let mut result = None;
        for _ in 0..20 {
            result = locked(&shared.record)
                .jobs
                .iter()
                .rev()
                .find(|j| j.job_id == job_id)
                .cloned();
            if result.is_some() {
                break;
            }
            tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        }
        let next = result.as_ref().and_then(|r| r.continuation_token.clone());
        let status = match &result {
            None => "NoResult",
            Some(r) if !r.success => "Failed",
            Some(_) if next.is_some() => "InProgress",
            Some(_) => "Succeeded",
        };
        {
            let mut record = locked(&shared.record);
            let Some(chain) = record.gate_jobs.get_mut(&id) else {
                return; // the simulation was replaced
            };
            chain.jobs.push(GateJob {
                job_id,
                continuation_token: token.take(),
                invocation,
                result,
            });
            chain.status = status.to_owned();
        }
        match next {
            Some(t) => {
                token = Some(t);
                tokio::time::sleep(interval).await;
            }
            None => return,
        }
    }
}

impl Drop for Emulator {
    fn drop(&mut self) {
        self.server.abort();
        self.publisher.abort();
    }
}

async fn publish(
    shared: Arc<Shared>,
    mut events: mpsc::UnboundedReceiver<Value>,
    target: Option<String>,
) {
    let client = reqwest::Client::builder()
        .no_proxy()
        .build()
        .expect("an HTTP client without TLS builds");
    while let Some(event) = events.recv().await {
        let delivery = match &target {
            None => None,
            Some(url) => Some(deliver(&client, url, &event).await),
        };
        locked(&shared.record)
            .events
            .push(PublishedEvent { event, delivery });
    }
}

/// One Lambda Invoke call with the event as payload; EventBridge retries a failed delivery, so
/// do we (a few times, for transport errors and 5xx).
async fn deliver(client: &reqwest::Client, url: &str, event: &Value) -> String {
    let mut last = String::new();
    for attempt in 0..3u64 {
        if attempt > 0 {
            tokio::time::sleep(std::time::Duration::from_millis(200 * attempt)).await;
        }
        match client.post(url).json(event).send().await {
            Ok(response) => {
                let status = response.status();
                let function_error = response
                    .headers()
                    .get("x-amz-function-error")
                    .and_then(|v| v.to_str().ok())
                    .map(str::to_owned);
                let body = response.text().await.unwrap_or_default();
                last = match &function_error {
                    Some(fe) => format!("{status} {fe}: {body}"),
                    None => format!("{status}: {body}"),
                };
                if status.is_success() && function_error.is_none() {
                    return last;
                }
                if !status.is_server_error() && function_error.is_none() {
                    return last;
                }
            }
            Err(e) => last = format!("invoke {url} failed: {e}"),
        }
    }
    last
}

/// An AWS JSON 1.1 error.
struct AwsError {
    status: StatusCode,
    code: &'static str,
    message: String,
}

impl AwsError {
    fn new(code: &'static str, message: impl Into<String>) -> Self {
        AwsError {
            status: StatusCode::BAD_REQUEST,
            code,
            message: message.into(),
        }
    }
}

impl IntoResponse for AwsError {
    fn into_response(self) -> Response {
        (
            self.status,
            [
                ("content-type", CONTENT_TYPE),
                ("x-amzn-errortype", self.code),
            ],
            json!({"__type": self.code, "message": self.message}).to_string(),
        )
            .into_response()
    }
}

fn ok(body: Value) -> Response {
    (
        StatusCode::OK,
        [("content-type", CONTENT_TYPE)],
        body.to_string(),
    )
        .into_response()
}

fn field<'a>(request: &'a Value, name: &str) -> Result<&'a str, AwsError> {
    request
        .get(name)
        .and_then(Value::as_str)
        .filter(|s| !s.is_empty())
        .ok_or_else(|| {
            AwsError::new(
                "ValidationException",
                format!("1 validation error detected: Value null at '{name}' failed to satisfy constraint: Member must not be null"),
            )
        })
}

async fn aws_json(State(shared): State<Arc<Shared>>, headers: HeaderMap, body: Bytes) -> Response {
    let target = headers
        .get("x-amz-target")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default();
    let Some(operation) = target.strip_prefix(TARGET_PREFIX) else {
        return AwsError::new(
            "UnknownOperationException",
            format!("X-Amz-Target {target:?} is not a CodePipeline_20150709 operation"),
        )
        .into_response();
    };
    let request: Value = if body.is_empty() {
        json!({})
    } else {
        match serde_json::from_slice(&body) {
            Ok(v) => v,
            Err(e) => {
                return AwsError::new("SerializationException", format!("invalid JSON: {e}"))
                    .into_response()
            }
        }
    };
    let result = match operation {
        "GetPipeline" => get_pipeline(&shared, &request).await,
        "StartPipelineExecution" => start_execution(&shared, &request).await,
        "GetPipelineExecution" => get_execution(&shared, &request).await,
        "ListPipelineExecutions" => list_executions(&shared, &request),
        "StopPipelineExecution" => stop_execution(&shared, &request).await,
        "PutJobSuccessResult" => put_job_result(&shared, &request, true),
        "PutJobFailureResult" => put_job_result(&shared, &request, false),
        other => Err(AwsError::new(
            "UnknownOperationException",
            format!("the CodePipeline emulator does not implement {other}"),
        )),
    };
    match result {
        Ok(body) => ok(body),
        Err(e) => e.into_response(),
    }
}

fn epoch_seconds(t: OffsetDateTime) -> f64 {
    t.unix_timestamp_nanos() as f64 / 1e9
}

fn port_error(e: PortError) -> AwsError {
    match e {
        PortError::Throttled(m) => AwsError::new("ThrottlingException", m),
        PortError::NotFound(m) => AwsError::new("PipelineExecutionNotFoundException", m),
        other => AwsError {
            status: StatusCode::INTERNAL_SERVER_ERROR,
            code: "InternalFailure",
            message: other.to_string(),
        },
    }
}

fn pipeline_not_found(name: &str) -> AwsError {
    AwsError::new(
        "PipelineNotFoundException",
        format!(
            "Account '{}' does not have a pipeline with name '{name}'",
            crate::sim::ACCOUNT
        ),
    )
}

async fn get_pipeline(shared: &Shared, request: &Value) -> Result<Value, AwsError> {
    let name = field(request, "name")?;
    shared.count(name, "GetPipeline");
    let exists = shared.sim().exists(name).await.map_err(port_error)?;
    if !exists {
        return Err(pipeline_not_found(name));
    }
    let arn = format!(
        "arn:aws:codepipeline:{}:{}:{name}",
        crate::sim::REGION,
        crate::sim::ACCOUNT
    );
    let now = epoch_seconds(OffsetDateTime::now_utc());
    let shape = shared.shape(name);
    let sources: Vec<Value> = match &shape.source_actions {
        Some(actions) => actions
            .iter()
            .map(|a| source_action(&a.name, &a.provider, &a.configuration))
            .collect(),
        None => vec![source_action(
            "Source",
            "S3",
            &BTreeMap::from([
                ("S3Bucket".to_owned(), format!("{name}-source")),
                ("S3ObjectKey".to_owned(), "source.zip".to_owned()),
            ]),
        )],
    };
    let deploy_input = sources[0]["outputArtifacts"][0].clone();
    let mut pipeline = json!({
        "name": name,
        "roleArn": format!("arn:aws:iam::{}:role/{name}-pipeline", crate::sim::ACCOUNT),
        "artifactStore": {"type": "S3", "location": format!("{name}-artifacts")},
        "stages": [
            {"name": "Source", "actions": sources},
            {"name": "Deploy", "actions": [{
                "name": "Deploy",
                "actionTypeId": {"category": "Deploy", "owner": "AWS", "provider": "CodeDeploy", "version": "1"},
                "configuration": {"ApplicationName": name, "DeploymentGroupName": name},
                "inputArtifacts": [deploy_input],
                "runOrder": 1
            }]}
        ],
        "version": 1,
        "executionMode": "SUPERSEDED",
        "pipelineType": shape.pipeline_type.as_str()
    });
    // Without `variables` in the sim file the declaration has none, as a pipeline that
    // declares none (the port's `None`, "not known", has no AWS shape).
    if let Some(variables) = &shape.variables {
        pipeline["variables"] = variables
            .iter()
            .map(|v| {
                let mut declared = json!({"name": v.name});
                if let Some(default) = &v.default_value {
                    declared["defaultValue"] = json!(default);
                }
                declared
            })
            .collect();
    }
    Ok(json!({
        "pipeline": pipeline,
        "metadata": {"pipelineArn": arn, "created": now, "updated": now}
    }))
}

/// The output artifact of a source action: `<action>Output`, in the characters an artifact
/// name allows (`[a-zA-Z0-9_-]`).
fn output_artifact(action: &str) -> String {
    let name: String = action
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '-' {
                c
            } else {
                '_'
            }
        })
        .collect();
    format!("{name}Output")
}

/// A Source action's declaration. A provider the sim file does not give goes out empty (the
/// port reads an empty provider as "not known"); GitHub (version 1) is a ThirdParty action,
/// the others AWS's.
fn source_action(name: &str, provider: &str, configuration: &BTreeMap<String, String>) -> Value {
    let owner = if provider == "GitHub" {
        "ThirdParty"
    } else {
        "AWS"
    };
    json!({
        "name": name,
        "actionTypeId": {"category": "Source", "owner": owner, "provider": provider, "version": "1"},
        "configuration": configuration,
        "outputArtifacts": [{"name": output_artifact(name)}],
        "runOrder": 1
    })
}

fn spec_from_request(name: &str, request: &Value) -> PipelineSpec {
    let mut spec = PipelineSpec::new(name, 1);
    if let Some(revisions) = request.get("sourceRevisions").and_then(Value::as_array) {
        spec.source_revisions = revisions
            .iter()
            .filter_map(|r| {
                let text = |key: &str| Some(r.get(key)?.as_str()?.to_owned());
                Some(SourceRevision {
                    action_name: text("actionName")?,
                    revision_type: text("revisionType")?,
                    revision_value: text("revisionValue")?,
                })
            })
            .collect();
    }
    if let Some(vars) = request.get("variables").and_then(Value::as_array) {
        spec.variables = vars
            .iter()
            .filter_map(|v| {
                Some((
                    v.get("name")?.as_str()?.to_owned(),
                    v.get("value")?.as_str()?.to_owned(),
                ))
            })
            .collect();
    }
    spec
}

async fn start_execution(shared: &Shared, request: &Value) -> Result<Value, AwsError> {
    let name = field(request, "name")?;
    shared.count(name, "StartPipelineExecution");
    let spec = spec_from_request(name, request);
    // Without a token CodePipeline starts a new execution each time.
    let token = match request.get("clientRequestToken").and_then(Value::as_str) {
        Some(t) if !t.is_empty() => t.to_owned(),
        _ => format!("emulator-{}", rand::random::<u64>()),
    };
    match shared.sim().start(&spec, &token).await {
        Ok(id) => Ok(json!({"pipelineExecutionId": id})),
        Err(StartError::NotFound(_)) => Err(pipeline_not_found(name)),
        Err(StartError::NotStartable(m) | StartError::Busy(m)) => {
            Err(AwsError::new("ConflictException", m))
        }
        Err(StartError::Port(e)) => {
            if matches!(e, PortError::Throttled(_)) {
                shared.count(name, "StartPipelineExecution.throttled");
            }
            Err(port_error(e))
        }
    }
}

fn execution_of(shared: &Shared, pipeline: &str, id: &str) -> Option<SimExecution> {
    shared.sim().execution(pipeline, id)
}

async fn get_execution(shared: &Shared, request: &Value) -> Result<Value, AwsError> {
    let pipeline = field(request, "pipelineName")?;
    let id = field(request, "pipelineExecutionId")?;
    shared.count(pipeline, "GetPipelineExecution");
    let sim = shared.sim();
    if !shared.exists(pipeline) {
        return Err(pipeline_not_found(pipeline));
    }
    let status = sim.status(pipeline, id).await.map_err(port_error)?;
    let execution = execution_of(shared, pipeline, id);
    let mut body = json!({
        "pipelineName": pipeline,
        "pipelineVersion": 1,
        "pipelineExecutionId": id,
        "status": status.status.as_str(),
        "artifactRevisions": execution.as_ref().map_or_else(Vec::new, |e| {
            e.source_revisions
                .iter()
                .map(|(action, revision)| {
                    json!({
                        "name": output_artifact(action),
                        "revisionId": revision,
                        "created": epoch_seconds(e.started_at)
                    })
                })
                .collect()
        }),
        "trigger": trigger(),
        "executionMode": "SUPERSEDED",
        "executionType": "STANDARD"
    });
    if let Some(summary) = status.summary {
        body["statusSummary"] = Value::String(summary);
    }
    if let Some(e) = execution {
        body["variables"] = Value::Array(
            e.variables
                .iter()
                .map(|(k, v)| json!({"name": k, "resolvedValue": v}))
                .collect(),
        );
    }
    Ok(json!({"pipelineExecution": body}))
}

/// The trigger of every execution the emulator starts: StartPipelineExecution by the
/// start-pipelines function's role.
fn trigger() -> Value {
    json!({
        "triggerType": "StartPipelineExecution",
        "triggerDetail": format!(
            "arn:aws:sts::{}:assumed-role/release-machine-StartPipelinesRole/release-machine-start-pipelines",
            crate::sim::ACCOUNT
        )
    })
}

/// ListPipelineExecutions: the pipeline's executions, newest first; `nextToken` is the index of
/// the next summary.
fn list_executions(shared: &Shared, request: &Value) -> Result<Value, AwsError> {
    let pipeline = field(request, "pipelineName")?;
    shared.count(pipeline, "ListPipelineExecutions");
    if !shared.exists(pipeline) {
        return Err(pipeline_not_found(pipeline));
    }
    let max_results = match request.get("maxResults") {
        None | Some(Value::Null) => 100,
        Some(v) => match v.as_u64() {
            Some(n @ 1..=100) => n as usize,
            _ => {
                return Err(AwsError::new(
                    "ValidationException",
                    format!("1 validation error detected: Value '{v}' at 'maxResults' failed to satisfy constraint: Member must have value between 1 and 100"),
                ))
            }
        },
    };
    let history = shared.sim().history(pipeline);
    let from = match request.get("nextToken").and_then(Value::as_str) {
        None => 0,
        Some(token) => token
            .parse::<usize>()
            .ok()
            .filter(|&i| i <= history.len())
            .ok_or_else(|| {
                AwsError::new(
                    "InvalidNextTokenException",
                    format!("the next token {token:?} is not valid"),
                )
            })?,
    };
    let to = (from + max_results).min(history.len());
    let summaries: Vec<Value> = history[from..to]
        .iter()
        .map(|e| {
            let mut summary = json!({
                "pipelineExecutionId": e.execution_id,
                "status": e.status.as_str(),
                "startTime": epoch_seconds(e.started_at),
                "lastUpdateTime": epoch_seconds(e.ended_at.unwrap_or(e.started_at)),
                "sourceRevisions": e.source_revisions.iter().map(|(action, revision)| {
                    json!({"actionName": action, "revisionId": revision})
                }).collect::<Vec<Value>>(),
                "trigger": trigger(),
                "executionMode": "SUPERSEDED",
                "executionType": "STANDARD"
            });
            if let Some(text) = &e.summary {
                summary["statusSummary"] = Value::String(text.clone());
            }
            summary
        })
        .collect();
    let mut body = json!({"pipelineExecutionSummaries": summaries});
    if to < history.len() {
        body["nextToken"] = Value::String(to.to_string());
    }
    Ok(body)
}

async fn stop_execution(shared: &Shared, request: &Value) -> Result<Value, AwsError> {
    let pipeline = field(request, "pipelineName")?;
    let id = field(request, "pipelineExecutionId")?;
    shared.count(pipeline, "StopPipelineExecution");
    let abandon = request
        .get("abandon")
        .and_then(Value::as_bool)
        .unwrap_or(false);
    let reason = request
        .get("reason")
        .and_then(Value::as_str)
        .unwrap_or_default();
    let sim = shared.sim();
    if !shared.exists(pipeline) {
        return Err(pipeline_not_found(pipeline));
    }
    // CodePipeline's answers for an execution that cannot be stopped (again).
    match execution_of(shared, pipeline, id).map(|e| e.status) {
        None => {
            return Err(AwsError::new(
                "PipelineExecutionNotFoundException",
                format!("Pipeline execution {id} of pipeline {pipeline} not found"),
            ))
        }
        Some(s) if s.is_terminal() => {
            return Err(AwsError::new(
                "PipelineExecutionNotStoppableException",
                format!("Pipeline execution {id} is {s:?} and cannot be stopped"),
            ))
        }
        Some(RunStatus::Stopping) if !abandon => {
            return Err(AwsError::new(
                "DuplicatedStopRequestException",
                format!("Pipeline execution {id} is already stopping"),
            ))
        }
        Some(_) => {}
    }
    sim.stop(pipeline, id, reason, abandon)
        .await
        .map_err(port_error)?;
    Ok(json!({"pipelineExecutionId": id}))
}

fn put_job_result(shared: &Shared, request: &Value, success: bool) -> Result<Value, AwsError> {
    let job_id = field(request, "jobId")?.to_owned();
    let (message, failure_type) = if success {
        (
            request
                .pointer("/executionDetails/summary")
                .and_then(Value::as_str)
                .map(str::to_owned),
            None,
        )
    } else {
        let details = request.get("failureDetails").ok_or_else(|| {
            AwsError::new(
                "ValidationException",
                "1 validation error detected: Value null at 'failureDetails' failed to satisfy constraint: Member must not be null",
            )
        })?;
        (
            details
                .get("message")
                .and_then(Value::as_str)
                .map(str::to_owned),
            details
                .get("type")
                .and_then(Value::as_str)
                .map(str::to_owned),
        )
    };
    let operation = if success {
        "PutJobSuccessResult"
    } else {
        "PutJobFailureResult"
    };
    let mut record = locked(&shared.record);
    *record
        .calls
        .entry(String::new())
        .or_default()
        .entry(operation.to_owned())
        .or_default() += 1;
    let continuation_token = success
        .then(|| request.get("continuationToken").and_then(Value::as_str))
        .flatten()
        .map(str::to_owned);
    record.jobs.push(JobResult {
        job_id,
        success,
        message,
        failure_type,
        continuation_token,
        request: request.clone(),
    });
    Ok(json!({}))
}

async fn admin_sim(State(shared): State<Arc<Shared>>, body: Bytes) -> Response {
    match SimFile::parse(&body) {
        Ok(file) => {
            shared.replace(file);
            (StatusCode::NO_CONTENT, "").into_response()
        }
        Err(e) => (StatusCode::BAD_REQUEST, e.to_string()).into_response(),
    }
}

fn admin_json(value: impl Serialize) -> Response {
    match serde_json::to_value(value) {
        Ok(v) => (
            StatusCode::OK,
            [("content-type", "application/json")],
            v.to_string(),
        )
            .into_response(),
        Err(e) => (StatusCode::INTERNAL_SERVER_ERROR, e.to_string()).into_response(),
    }
}

async fn admin_calls(State(shared): State<Arc<Shared>>) -> Response {
    admin_json(locked(&shared.record).calls.clone())
}

async fn admin_jobs(State(shared): State<Arc<Shared>>) -> Response {
    admin_json(locked(&shared.record).jobs.clone())
}

async fn admin_events(State(shared): State<Arc<Shared>>) -> Response {
    admin_json(locked(&shared.record).events.clone())
}

async fn admin_start_gate_job(State(shared): State<Arc<Shared>>, body: Bytes) -> Response {
    match serde_json::from_slice::<GateJobRequest>(&body) {
        Ok(request) => {
            let id = start_gate_chain(&shared, request);
            (
                StatusCode::CREATED,
                [("content-type", "application/json")],
                json!({ "id": id }).to_string(),
            )
                .into_response()
        }
        Err(e) => (
            StatusCode::BAD_REQUEST,
            format!("a gate job is {{\"target\", \"userParameters\", \"pipelineExecutionId\", \"intervalSeconds\"?}}: {e}"),
        )
            .into_response(),
    }
}

async fn admin_gate_job(
    State(shared): State<Arc<Shared>>,
    axum::extract::Path(id): axum::extract::Path<String>,
) -> Response {
    match locked(&shared.record).gate_jobs.get(&id).cloned() {
        Some(chain) => admin_json(chain),
        None => (StatusCode::NOT_FOUND, format!("no gate job {id:?}")).into_response(),
    }
}

async fn admin_executions(State(shared): State<Arc<Shared>>) -> Response {
    let executions: Vec<Value> = shared
        .sim()
        .executions()
        .into_iter()
        .map(|e| {
            json!({
                "pipeline": e.pipeline,
                "executionId": e.execution_id,
                "clientRequestToken": e.client_request_token,
                "status": e.status.as_str(),
                "summary": e.summary,
                "stopReason": e.stop_reason,
                "variables": e.variables,
                "sourceRevisions": e.source_revisions,
            })
        })
        .collect();
    admin_json(executions)
}

//! The [`Stack`] a test starts: provisioned from template.yaml, served by moto, the router, the
//! CodePipeline emulator and `cargo lambda watch`; and what a test does with it (invoke a
//! function, upload a manifest, start and wait for an execution, read the release and the
//! execution's history, gather diagnostics).

use crate::processes::{
    self, build_functions_once, free_port, function_binaries, Server, WatchOptions,
};
use crate::router::{urlencode, Invocation, Router, RouterRules};
use crate::template::Template;
use crate::{event, function_arn, now_rfc3339, repo_root, ACCOUNT, REGION};
use aws_config::SdkConfig;
use aws_sdk_sfn::types::HistoryEvent;
use rm_core::ports::ReleaseStore;
use rm_core::release::{ReleaseId, StoredRelease};
use rm_core::view::ReleaseView;
use rm_local::emulator::{Emulator, EmulatorOptions};
use rm_local::SimFile;
use serde_json::{json, Value};
use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

/// Where the functions' DynamoDB calls go.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DynamoTarget {
    /// The stack's moto (the default).
    Moto,
    /// The dynalite started by `scripts/test` (`RM_DYNALITE_ENDPOINT`): faithful conditional
    /// writes under concurrency. The table is created there under a unique name.
    Dynalite,
}

/// How to start a [`Stack`].
#[derive(Debug, Clone)]
pub struct StackOptions {
    /// The simulation the emulator runs (durations in real seconds).
    pub sim: Value,
    /// `cargo lambda watch --concurrency`: instances per function.
    pub concurrency: u32,
    pub dynamo: DynamoTarget,
    /// Create the state machine (not needed by tests that only invoke functions).
    pub state_machine: bool,
    /// The functions' S3 calls go through the router (`AWS_ENDPOINT_URL_S3`), which answers a
    /// GET that moto answers 404 `NoSuchKey` with 403 `AccessDenied`: real S3's answer for a
    /// missing key when the caller lacks `s3:ListBucket`. Off by default (the functions' S3
    /// calls then go to moto directly). The test's own S3 client ([`Stack::s3`]) always talks to
    /// moto.
    pub s3_denies_missing_keys: bool,
    /// The functions' Step Functions calls go through the router (`AWS_ENDPOINT_URL_SFN`),
    /// which answers the first N SendTaskSuccess/SendTaskFailure with ThrottlingException.
    /// 0 (the default): the functions talk to moto directly.
    pub send_task_failures: u32,
    /// The functions' EventBridge calls go through the router (`AWS_ENDPOINT_URL_EVENTBRIDGE`),
    /// which rejects some entries of the first N PutEvents calls (see the router's
    /// `put_events_failures`) and forwards the rest to moto. 0 (the default): the functions
    /// put their events to moto directly.
    pub put_events_failures: u32,
    /// The first N PutEvents calls reach moto, then their answer is lost (the router's
    /// `put_events_lost_answers`): the SDK puts those events again. Routes the functions'
    /// EventBridge calls through the router too.
    pub put_events_lost_answers: u32,
}

impl Default for StackOptions {
    fn default() -> Self {
        StackOptions {
            sim: json!({"defaults": {"durationSeconds": 2, "stopSeconds": 1}}),
            concurrency: 2,
            dynamo: DynamoTarget::Moto,
            state_machine: true,
            s3_denies_missing_keys: false,
            send_task_failures: 0,
            put_events_failures: 0,
            put_events_lost_answers: 0,
        }
    }
}

/// Names the stack's resources got.
#[derive(Debug, Clone)]
pub struct Resources {
    pub table: String,
    pub bucket: String,
    pub state_machine_name: String,
    pub state_machine_arn: String,
    /// The functions' environment (all functions merged), as passed to watch.
    pub function_env: BTreeMap<String, String>,
}

/// The running stack. Dropping it stops everything.
pub struct Stack {
    pub name: String,
    pub moto_url: String,
    pub router_url: String,
    pub watch_url: String,
    pub emulator: Emulator,
    pub resources: Resources,
    /// SDK configuration for moto (direct).
    pub sdk: SdkConfig,
    /// SDK configuration for the functions' DynamoDB (moto or dynalite).
    pub dynamo_sdk: SdkConfig,
    router: Router,
    log_dir: PathBuf,
    // Field order is drop order: watch (and its functions) before moto.
    watch: Server,
    moto: Server,
}

impl Stack {
    /// Starts and provisions a stack (see the crate documentation).
    ///
    /// # Panics
    /// With the reason, if anything cannot start: a missing `.venv` ("run scripts/test"), a
    /// server that dies or does not answer (with its log), or anything the harness cannot read
    /// from template.yaml (every problem, each naming what and where; checked before any server
    /// starts).
    pub async fn start(options: StackOptions) -> Stack {
        let root = repo_root();
        let sim = SimFile::from_value(&options.sim).unwrap_or_else(|e| panic!("{e}"));
        let name = rm_testkit::unique_name("e2e");
        let plan = Template::load(&root)
            .and_then(|t| t.plan(&name))
            .unwrap_or_else(|e| panic!("{e}"));
        build_functions_once();

        let log_dir = root.join("target/test-logs/e2e").join(&name);
        std::fs::create_dir_all(&log_dir).expect("create the log directory");

        // The router first: moto must know its port (MOTO_PORT) when it starts.
        let moto_port = free_port();
        let moto_url = format!("http://127.0.0.1:{moto_port}");
        let watch_port = free_port();
        let watch_url = format!("http://127.0.0.1:{watch_port}");
        let router = Router::start(
            &moto_url,
            &watch_url,
            RouterRules {
                s3_denies_missing_keys: options.s3_denies_missing_keys,
                send_task_failures: options.send_task_failures,
                put_events_failures: options.put_events_failures,
                put_events_lost_answers: options.put_events_lost_answers,
            },
        )
        .await;
        let moto = processes::start_moto(moto_port, router.port, &log_dir).await;
        rm_testkit::enable_moto_stepfunctions_execution(&moto_url).await;

        let emulator = Emulator::start(EmulatorOptions {
            sim,
            event_target: Some(format!(
                "{}/2015-03-31/functions/{}/invocations",
                router.url,
                urlencode(&function_arn("record-state"))
            )),
        })
        .await
        .unwrap_or_else(|e| panic!("{e}"));

        let sdk = rm_testkit::sdk_config(&moto_url).await;
        let (dynamo_url, dynamo_sdk) = match options.dynamo {
            DynamoTarget::Moto => (moto_url.clone(), sdk.clone()),
            DynamoTarget::Dynalite => {
                let url = rm_testkit::dynalite_endpoint();
                let cfg = rm_testkit::sdk_config(&url).await;
                (url, cfg)
            }
        };
        let resources = plan
            .provision(&sdk, &dynamo_sdk, options.state_machine)
            .await;

        let watch = processes::start_watch(
            WatchOptions {
                port: watch_port,
                concurrency: options.concurrency,
                moto_url: &moto_url,
                codepipeline_url: &emulator.url(),
                dynamo_url: &dynamo_url,
                s3_url: options
                    .s3_denies_missing_keys
                    .then_some(router.url.as_str()),
                sfn_url: (options.send_task_failures > 0).then_some(router.url.as_str()),
                events_url: (options.put_events_failures + options.put_events_lost_answers > 0)
                    .then_some(router.url.as_str()),
                env: &resources.function_env,
            },
            &log_dir,
        )
        .await;

        Stack {
            name,
            moto_url,
            router_url: router.url.clone(),
            watch_url,
            emulator,
            resources,
            sdk,
            dynamo_sdk,
            router,
            log_dir,
            watch,
            moto,
        }
    }

    /// Invokes every function once with an empty object (they answer with an error), so
    /// `cargo lambda watch` has started them all before the test's clock starts.
    pub async fn warm_up(&self) {
        let t0 = Instant::now();
        let all = function_binaries();
        futures::future::join_all(
            all.iter()
                .map(|name| self.invoke(name, json!({"warmUp": true}))),
        )
        .await;
        eprintln!("[e2e] functions warm in {:.1?}", t0.elapsed());
    }

    /// Invokes a function through the router (the Lambda Invoke API as AWS answers it).
    pub async fn invoke(&self, function: &str, payload: Value) -> Invocation {
        let url = format!(
            "{}/2015-03-31/functions/{function}/invocations",
            self.router_url
        );
        let response = self
            .router
            .state
            .client
            .post(&url)
            .json(&payload)
            .send()
            .await
            .unwrap_or_else(|e| panic!("invoke {function}: {e}\n{}", self.diagnostics(None)));
        let status = response.status().as_u16();
        let function_error = response
            .headers()
            .get("x-amz-function-error")
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned);
        let bytes = response.bytes().await.unwrap_or_default();
        let payload = serde_json::from_slice(&bytes)
            .unwrap_or_else(|_| Value::String(String::from_utf8_lossy(&bytes).into_owned()));
        Invocation {
            status,
            function_error,
            payload,
        }
    }

    /// The Lambda Invoke URL of `function` on the router (what the emulator's gate jobs and
    /// state-change events are sent to).
    pub fn invoke_url(&self, function: &str) -> String {
        format!(
            "{}/2015-03-31/functions/{}/invocations",
            self.router_url,
            urlencode(&function_arn(function))
        )
    }

    /// Starts the invoke-Lambda action of the health gate on the emulator (CodePipeline's
    /// continuation-token re-invocations every `interval`); returns its id for
    /// `emulator.gate_job`.
    pub fn start_gate_job(
        &self,
        user_parameters: &Value,
        pipeline_execution_id: &str,
        interval: Duration,
    ) -> String {
        self.emulator
            .start_gate_job(rm_local::emulator::GateJobRequest {
                target: self.invoke_url("health-gate"),
                user_parameters: user_parameters.to_string(),
                pipeline_execution_id: pipeline_execution_id.to_owned(),
                interval_seconds: Some(interval.as_secs_f64()),
            })
    }

    pub fn dynamo(&self) -> aws_sdk_dynamodb::Client {
        aws_sdk_dynamodb::Client::new(&self.dynamo_sdk)
    }

    pub fn sfn(&self) -> aws_sdk_sfn::Client {
        aws_sdk_sfn::Client::new(&self.sdk)
    }

    pub fn s3(&self) -> aws_sdk_s3::Client {
        aws_sdk_s3::Client::from_conf(
            aws_sdk_s3::config::Builder::from(&self.sdk)
                .force_path_style(true)
                .build(),
        )
    }

    pub fn cloudwatch(&self) -> aws_sdk_cloudwatch::Client {
        aws_sdk_cloudwatch::Client::new(&self.sdk)
    }

    pub fn eventbridge(&self) -> aws_sdk_eventbridge::Client {
        aws_sdk_eventbridge::Client::new(&self.sdk)
    }

    pub fn sqs(&self) -> aws_sdk_sqs::Client {
        aws_sdk_sqs::Client::new(&self.sdk)
    }

    /// A queue in moto that a rule on moto's default event bus fills with every
    /// `source: release-machine` event the functions put (what a subscriber of the
    /// notifications sees); its URL, for [`Stack::queued_events`].
    pub async fn event_queue(&self) -> String {
        let name = rm_testkit::unique_name("events");
        let sqs = self.sqs();
        let url = sqs
            .create_queue()
            .queue_name(&name)
            .send()
            .await
            .unwrap_or_else(|e| panic!("CreateQueue {name}: {e:?}"))
            .queue_url
            .unwrap_or_else(|| panic!("CreateQueue {name}: no URL"));
        let arn = format!("arn:aws:sqs:{REGION}:{ACCOUNT}:{name}");
        let events = self.eventbridge();
        events
            .put_rule()
            .name(&name)
            .event_bus_name("default")
            .event_pattern(json!({"source": [rm_core::events::SOURCE]}).to_string())
            .send()
            .await
            .unwrap_or_else(|e| panic!("PutRule {name}: {e:?}"));
        events
            .put_targets()
            .rule(&name)
            .event_bus_name("default")
            .targets(
                aws_sdk_eventbridge::types::Target::builder()
                    .id("queue")
                    .arn(&arn)
                    .build()
                    .expect("a target"),
            )
            .send()
            .await
            .unwrap_or_else(|e| panic!("PutTargets {name}: {e:?}"));
        url
    }

    /// Every event in the queue (each message's body, an EventBridge event), taken out of it.
    pub async fn queued_events(&self, queue_url: &str) -> Vec<Value> {
        let sqs = self.sqs();
        let mut events = Vec::new();
        loop {
            let out = sqs
                .receive_message()
                .queue_url(queue_url)
                .max_number_of_messages(10)
                .send()
                .await
                .unwrap_or_else(|e| panic!("ReceiveMessage: {e:?}"));
            let messages = out.messages();
            if messages.is_empty() {
                return events;
            }
            for m in messages {
                let body = m.body().unwrap_or("null");
                events.push(
                    serde_json::from_str(body)
                        .unwrap_or_else(|e| panic!("a queued event is not JSON ({e}): {body}")),
                );
                if let Some(handle) = m.receipt_handle() {
                    sqs.delete_message()
                        .queue_url(queue_url)
                        .receipt_handle(handle)
                        .send()
                        .await
                        .unwrap_or_else(|e| panic!("DeleteMessage: {e:?}"));
                }
            }
        }
    }

    /// The store the functions write (moto's or dynalite's table).
    pub fn store(&self) -> rm_aws::DynamoStore {
        rm_aws::DynamoStore::new(self.dynamo(), &self.resources.table)
    }

    /// The release and its runs, read from the table.
    pub async fn release(&self, id: &str) -> Option<StoredRelease> {
        let id = ReleaseId::parse(id).unwrap_or_else(|e| panic!("release id {id:?} {e}"));
        self.store()
            .get(&id)
            .await
            .unwrap_or_else(|e| panic!("read release {id}: {e}"))
    }

    /// The release JSON of a release.
    pub async fn release_view(&self, id: &str) -> Option<ReleaseView> {
        self.release(id).await.as_ref().map(ReleaseView::from)
    }

    /// Uploads a manifest to the bucket; returns the EventBridge "Object Created" event for it,
    /// in the shape of events/s3-object-created.json.
    pub async fn upload_manifest(&self, key: &str, manifest: &Value) -> Value {
        let body = serde_json::to_vec_pretty(manifest).expect("manifest serializes");
        let size = body.len();
        let out = self
            .s3()
            .put_object()
            .bucket(&self.resources.bucket)
            .key(key)
            .body(body.into())
            .send()
            .await
            .unwrap_or_else(|e| panic!("PutObject {key}: {e:?}"));
        let mut event = self.object_created_event(key);
        event["detail"]["object"]["size"] = json!(size);
        event["detail"]["object"]["etag"] =
            json!(out.e_tag().unwrap_or_default().trim_matches('"'));
        if let Some(v) = out.version_id() {
            event["detail"]["object"]["version-id"] = json!(v);
        }
        event
    }

    /// An EventBridge "Object Created" event (events/s3-object-created.json) for `key` in the
    /// stack's bucket, without a version id; nothing is uploaded.
    pub fn object_created_event(&self, key: &str) -> Value {
        let mut event = event("s3-object-created.json");
        event["account"] = json!(ACCOUNT);
        event["region"] = json!(REGION);
        event["time"] = json!(now_rfc3339());
        event["id"] = json!(rm_testkit::unique_name("evt"));
        event["resources"] = json!([format!("arn:aws:s3:::{}", self.resources.bucket)]);
        event["detail"]["bucket"]["name"] = json!(self.resources.bucket);
        event["detail"]["object"]["key"] = json!(key);
        if let Some(o) = event["detail"]["object"].as_object_mut() {
            o.remove("version-id");
        }
        event
    }

    /// StartExecution of the release state machine; returns the execution ARN.
    pub async fn start_execution(&self, name: &str, input: &Value) -> String {
        self.sfn()
            .start_execution()
            .state_machine_arn(&self.resources.state_machine_arn)
            .name(name)
            .input(input.to_string())
            .send()
            .await
            .unwrap_or_else(|e| panic!("StartExecution: {e:?}"))
            .execution_arn()
            .to_owned()
    }

    /// Waits (at most `timeout`) until the execution is no longer RUNNING; returns its
    /// description. Fails with the history tail and the logs.
    pub async fn wait_execution(
        &self,
        arn: &str,
        timeout: Duration,
    ) -> aws_sdk_sfn::operation::describe_execution::DescribeExecutionOutput {
        let t0 = Instant::now();
        loop {
            let out = self
                .sfn()
                .describe_execution()
                .execution_arn(arn)
                .send()
                .await
                .unwrap_or_else(|e| panic!("DescribeExecution {arn}: {e:?}"));
            if out.status().as_str() != "RUNNING" {
                return out;
            }
            if t0.elapsed() > timeout {
                panic!(
                    "execution {arn} still RUNNING after {timeout:?}\n{}",
                    self.diagnostics_async(Some(arn)).await
                );
            }
            tokio::time::sleep(Duration::from_millis(250)).await;
        }
    }

    /// Waits (at most `timeout`) until `check` holds for the release (read from the table).
    pub async fn wait_release(
        &self,
        id: &str,
        timeout: Duration,
        what: &str,
        check: impl Fn(&StoredRelease) -> bool,
    ) -> StoredRelease {
        let t0 = Instant::now();
        loop {
            if let Some(r) = self.release(id).await {
                if check(&r) {
                    return r;
                }
            }
            if t0.elapsed() > timeout {
                let view = self.release_view(id).await;
                panic!(
                    "release {id}: not {what} after {timeout:?}; it is {}\n{}",
                    serde_json::to_string_pretty(&view).unwrap_or_default(),
                    self.diagnostics_async(None).await
                );
            }
            tokio::time::sleep(Duration::from_millis(250)).await;
        }
    }

    /// The execution's full history.
    pub async fn history(&self, arn: &str) -> Vec<HistoryEvent> {
        let mut events = Vec::new();
        let mut token = None;
        loop {
            let out = self
                .sfn()
                .get_execution_history()
                .execution_arn(arn)
                .set_next_token(token)
                .max_results(1000)
                .send()
                .await
                .unwrap_or_else(|e| panic!("GetExecutionHistory {arn}: {e:?}"));
            events.extend(out.events().iter().cloned());
            token = out.next_token().map(str::to_owned);
            if token.is_none() {
                return events;
            }
        }
    }

    /// State transitions as AWS bills them: one per state entered.
    pub async fn state_transitions(&self, arn: &str) -> usize {
        self.history(arn)
            .await
            .iter()
            .filter(|e| e.r#type().as_str().ends_with("StateEntered"))
            .count()
    }

    /// The router's invocation log, the watch and moto log tails and the emulator's failed
    /// event deliveries (no execution history: see [`Stack::diagnostics_async`]).
    pub fn diagnostics(&self, _arn: Option<&str>) -> String {
        let mut s = String::new();
        let router = self.router.state.router_log();
        let start = router.lines.len().saturating_sub(40);
        let _ = writeln!(
            s,
            "--- router (last {} of {} invocations):",
            router.lines.len() - start,
            router.lines.len()
        );
        for line in &router.lines[start..] {
            let _ = writeln!(s, "  {line}");
        }
        drop(router);
        let failed: Vec<String> = self
            .emulator
            .events()
            .into_iter()
            .filter(|e| !e.delivery.as_deref().unwrap_or("200").starts_with("200: "))
            .map(|e| {
                format!(
                    "  {} {}: {}",
                    e.event["detail"]["pipeline"],
                    e.event["detail"]["state"],
                    e.delivery.unwrap_or_default()
                )
            })
            .collect();
        let _ = writeln!(
            s,
            "--- emulator: {} events published, failed deliveries:\n{}",
            self.emulator.events().len(),
            failed.join("\n")
        );
        let _ = writeln!(
            s,
            "--- cargo lambda watch ({}), last lines:\n{}",
            self.watch.log.display(),
            self.watch.log_tail(40)
        );
        let _ = writeln!(
            s,
            "--- moto ({}), last lines:\n{}",
            self.moto.log.display(),
            self.moto.log_tail(15)
        );
        s
    }

    /// [`Stack::diagnostics`] plus the execution's history tail.
    pub async fn diagnostics_async(&self, arn: Option<&str>) -> String {
        let mut s = String::new();
        if let Some(arn) = arn {
            let history = self.history(arn).await;
            let start = history.len().saturating_sub(25);
            let _ = writeln!(
                s,
                "--- execution history (last {} of {} events) of {arn}:",
                history.len() - start,
                history.len()
            );
            for e in &history[start..] {
                let _ = writeln!(s, "  {}", describe_event(e));
            }
        }
        s.push_str(&self.diagnostics(arn));
        s
    }

    /// Where this stack's logs are.
    pub fn log_dir(&self) -> &Path {
        &self.log_dir
    }

    /// The router's invocation log.
    pub fn router_log(&self) -> Vec<String> {
        self.router.state.router_log().lines.clone()
    }
}

/// One history event on one line: id, type, and the interesting details.
pub fn describe_event(e: &HistoryEvent) -> String {
    let mut s = format!("#{} {}", e.id(), e.r#type().as_str());
    if let Some(d) = e.state_entered_event_details() {
        let _ = write!(s, " {}", d.name());
    }
    if let Some(d) = e.state_exited_event_details() {
        let _ = write!(s, " {}", d.name());
    }
    let failure = [
        e.task_failed_event_details()
            .map(|d| (d.error(), d.cause())),
        e.lambda_function_failed_event_details()
            .map(|d| (d.error(), d.cause())),
        e.execution_failed_event_details()
            .map(|d| (d.error(), d.cause())),
        e.map_iteration_failed_event_details().map(|_| (None, None)),
        e.task_timed_out_event_details()
            .map(|d| (d.error(), d.cause())),
    ];
    for (error, cause) in failure.into_iter().flatten() {
        let cause: String = cause.unwrap_or_default().chars().take(400).collect();
        let _ = write!(s, " error={} cause={cause}", error.unwrap_or_default());
    }
    if let Some(d) = e.execution_succeeded_event_details() {
        let _ = write!(
            s,
            " output={}",
            d.output()
                .unwrap_or_default()
                .chars()
                .take(300)
                .collect::<String>()
        );
    }
    s
}

//! The end-to-end harness: the deployed shape of release-machine on loopback.
//!
//! [`Stack::start`] starts, each on a free 127.0.0.1 port, and stops on drop (even when the test
//! panics):
//!
//! - its own **moto server** (`.venv/bin/moto_server`) with Step Functions execution switched
//!   on, and `MOTO_PORT` set to the router's port: moto's executor sends *all* its boto calls
//!   (the Lambda invocations of Task states included) to `localhost:$MOTO_PORT`;
//! - the **router** (in process): `/2015-03-31/functions/<name or ARN>/invocations` goes to
//!   `cargo lambda watch` with the ARN reduced to the function name, and a handler error (watch
//!   answers HTTP 500) becomes AWS's answer, 200 with `X-Amz-Function-Error: Unhandled`, so the
//!   state machine's Retry and Catch see the `errorType`; everything else goes to moto;
//! - the **CodePipeline emulator** (in process, [`rm_local::emulator`]), which delivers each
//!   pipeline execution state-change event to record-state through the router, as EventBridge
//!   would;
//! - **`cargo lambda watch`** (`.venv/bin/cargo-lambda`) serving every function of the
//!   workspace, with `AWS_ENDPOINT_URL` = moto, `AWS_ENDPOINT_URL_CODEPIPELINE` = the emulator
//!   and the functions' environment read from template.yaml.
//!
//! It provisions what template.yaml declares: the DynamoDB table (key schema, attributes and
//! indexes read from the template), the S3 bucket, and the state machine from
//! statemachine/release.asl.json with its DefinitionSubstitutions resolved to function ARNs
//! `arn:aws:lambda:us-east-1:123456789012:function:<binary>`.
//!
//! Logs: `target/test-logs/e2e/<stack>/{moto,watch}.log`; the router keeps a log of every
//! invocation. Every wait is bounded and fails with the execution's history tail and the logs.

pub mod template;

use aws_config::SdkConfig;
use aws_sdk_sfn::types::HistoryEvent;
use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::{HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use rm_core::ports::ReleaseStore;
use rm_core::release::{ReleaseId, StoredRelease};
use rm_core::view::ReleaseView;
use rm_local::emulator::{Emulator, EmulatorOptions};
use rm_local::SimFile;
use serde_json::{json, Value};
use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

pub use template::Template;

/// Account id moto uses.
pub const ACCOUNT: &str = "123456789012";
/// Region of the stack.
pub const REGION: &str = "us-east-1";
/// How long a test waits for a release by default.
pub const DEFAULT_WAIT: Duration = Duration::from_secs(180);
/// How long servers get to answer after starting.
const SERVER_START: Duration = Duration::from_secs(60);

/// The workspace root.
pub fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("tests/ is inside the workspace")
        .to_path_buf()
}

/// A file of `events/`, parsed.
pub use rm_testkit::event;

/// The ARN moto's Step Functions call for a function: what DefinitionSubstitutions resolve to.
pub fn function_arn(name: &str) -> String {
    format!("arn:aws:lambda:{REGION}:{ACCOUNT}:function:{name}")
}

fn tool(name: &str) -> PathBuf {
    let path = repo_root().join(".venv/bin").join(name);
    assert!(
        path.exists(),
        "{} is missing: run scripts/test (it installs .venv with moto[server], cargo-lambda and ziglang)",
        path.display()
    );
    path
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free port on 127.0.0.1")
}

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
}

impl Default for StackOptions {
    fn default() -> Self {
        StackOptions {
            sim: json!({"defaults": {"durationSeconds": 2, "stopSeconds": 1}}),
            concurrency: 2,
            dynamo: DynamoTarget::Moto,
            state_machine: true,
        }
    }
}

/// A child process in its own process group, killed (the whole group) on drop.
struct Server {
    name: &'static str,
    child: Child,
    log: PathBuf,
}

impl Server {
    fn spawn(name: &'static str, mut cmd: Command, log: PathBuf) -> Server {
        let out = std::fs::File::create(&log)
            .unwrap_or_else(|e| panic!("cannot create {}: {e}", log.display()));
        let err = out.try_clone().expect("clone a file handle");
        cmd.stdin(Stdio::null())
            .stdout(out)
            .stderr(err)
            .process_group(0);
        let child = cmd
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {name} ({cmd:?}): {e}"));
        Server { name, child, log }
    }

    fn alive(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(None))
    }

    fn log_tail(&self, lines: usize) -> String {
        tail(&self.log, lines)
    }
}

/// Every descendant of `pid` (children first found through /proc/*/stat's parent pid).
fn descendants(pid: u32) -> Vec<u32> {
    let mut parent_of = Vec::new();
    for entry in std::fs::read_dir("/proc").into_iter().flatten().flatten() {
        let Ok(child) = entry.file_name().to_string_lossy().parse::<u32>() else {
            continue;
        };
        let Ok(stat) = std::fs::read_to_string(entry.path().join("stat")) else {
            continue;
        };
        // "pid (comm) state ppid ...": comm may hold spaces; split after the last ')'.
        let ppid = stat
            .rsplit_once(')')
            .and_then(|(_, rest)| rest.split_whitespace().nth(1))
            .and_then(|p| p.parse::<u32>().ok());
        if let Some(ppid) = ppid {
            parent_of.push((child, ppid));
        }
    }
    let mut found = vec![pid];
    let mut i = 0;
    while i < found.len() {
        let p = found[i];
        found.extend(parent_of.iter().filter(|(_, pp)| *pp == p).map(|(c, _)| *c));
        i += 1;
    }
    found.remove(0);
    found
}

fn signal_groups(pids: &[u32], signal: libc::c_int) {
    for &pid in pids {
        // SAFETY: getpgid/kill on processes we started (and their descendants).
        unsafe {
            let pgid = libc::getpgid(pid as libc::pid_t);
            if pgid > 1 {
                libc::kill(-pgid, signal);
            }
            libc::kill(pid as libc::pid_t, signal);
        }
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        // cargo lambda watch starts each function (`cargo run`) in a process group of its own:
        // signal every descendant's group, not only ours.
        let leader = self.child.id();
        let mut all = descendants(leader);
        all.insert(0, leader);
        signal_groups(&all, libc::SIGTERM);
        let deadline = Instant::now() + Duration::from_secs(3);
        while Instant::now() < deadline {
            if !self.alive() {
                break;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        let mut all_now = descendants(leader);
        all_now.extend(all);
        signal_groups(&all_now, libc::SIGKILL);
        let _ = self.child.wait();
    }
}

fn tail(path: &Path, lines: usize) -> String {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let all: Vec<&str> = text.lines().collect();
    let start = all.len().saturating_sub(lines);
    all[start..].join("\n")
}

/// One invocation through the Lambda Invoke API, as AWS answers it.
#[derive(Debug, Clone)]
pub struct Invocation {
    pub status: u16,
    /// `X-Amz-Function-Error` (`Unhandled`) when the handler failed.
    pub function_error: Option<String>,
    /// The payload the function returned, or `{"errorType", "errorMessage"}`.
    pub payload: Value,
}

impl Invocation {
    /// The payload of a successful invocation.
    ///
    /// # Panics
    /// If the function failed.
    pub fn ok(self) -> Value {
        assert!(
            self.function_error.is_none() && self.status == 200,
            "the function failed: {} {:?}: {}",
            self.status,
            self.function_error,
            self.payload
        );
        self.payload
    }
}

#[derive(Default)]
struct RouterLog {
    lines: Vec<String>,
}

struct RouterState {
    moto: String,
    watch: String,
    client: reqwest::Client,
    log: Mutex<RouterLog>,
}

impl RouterState {
    fn log(&self, line: String) {
        self.router_log().lines.push(line);
    }

    fn router_log(&self) -> std::sync::MutexGuard<'_, RouterLog> {
        self.log.lock().unwrap_or_else(|p| p.into_inner())
    }
}

fn percent_decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' && i + 3 <= bytes.len() {
            if let Ok(b) = u8::from_str_radix(s.get(i + 1..i + 3).unwrap_or("zz"), 16) {
                out.push(b);
                i += 3;
                continue;
            }
        }
        out.push(bytes[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// `arn:aws:lambda:REGION:ACCOUNT:function:NAME[:QUALIFIER]` (or a plain name) → `NAME`.
pub fn function_name(raw: &str) -> String {
    let decoded = percent_decode(raw);
    if decoded.starts_with("arn:") {
        decoded
            .split(':')
            .nth(6)
            .map(str::to_owned)
            .unwrap_or(decoded)
    } else {
        decoded
    }
}

const HOP_HEADERS: &[&str] = &[
    "host",
    "content-length",
    "connection",
    "transfer-encoding",
    "keep-alive",
];

async fn route(State(router): State<Arc<RouterState>>, request: Request) -> Response {
    let (parts, body) = request.into_parts();
    let body = match axum::body::to_bytes(body, usize::MAX).await {
        Ok(b) => b,
        Err(e) => return (StatusCode::BAD_REQUEST, e.to_string()).into_response(),
    };
    let path = parts.uri.path();
    let invoke = path
        .strip_prefix("/2015-03-31/functions/")
        .and_then(|rest| rest.strip_suffix("/invocations"));
    if let Some(raw) = invoke {
        let name = function_name(raw);
        return invoke_watch(&router, &name, body).await;
    }
    let url = format!(
        "{}{}",
        router.moto,
        parts
            .uri
            .path_and_query()
            .map(|p| p.as_str())
            .unwrap_or("/")
    );
    let mut forward = router.client.request(parts.method.clone(), &url);
    for (k, v) in &parts.headers {
        if !HOP_HEADERS.contains(&k.as_str()) {
            forward = forward.header(k, v);
        }
    }
    match forward.body(body).send().await {
        Ok(response) => {
            let status = response.status();
            let headers = response.headers().clone();
            let bytes = response.bytes().await.unwrap_or_default();
            let mut out = Response::new(Body::from(bytes));
            *out.status_mut() = status;
            for (k, v) in &headers {
                if !HOP_HEADERS.contains(&k.as_str()) {
                    out.headers_mut().append(k, v.clone());
                }
            }
            out
        }
        Err(e) => {
            router.log(format!("moto {} {url}: {e}", parts.method));
            (StatusCode::BAD_GATEWAY, format!("router → moto: {e}")).into_response()
        }
    }
}

async fn invoke_watch(router: &RouterState, name: &str, body: axum::body::Bytes) -> Response {
    let url = format!("{}/2015-03-31/functions/{name}/invocations", router.watch);
    let t0 = Instant::now();
    let result = router.client.post(&url).body(body).send().await;
    let ms = t0.elapsed().as_millis();
    match result {
        Ok(response) => {
            let status = response.status();
            let bytes = response.bytes().await.unwrap_or_default();
            let text = String::from_utf8_lossy(&bytes);
            let short: String = text.chars().take(300).collect();
            let mut out = Response::new(Body::from(bytes.clone()));
            out.headers_mut()
                .insert("content-type", HeaderValue::from_static("application/json"));
            out.headers_mut().insert(
                "x-amz-executed-version",
                HeaderValue::from_static("$LATEST"),
            );
            if status.is_success() {
                router.log(format!("invoke {name}: 200 in {ms} ms"));
            } else if status == StatusCode::INTERNAL_SERVER_ERROR
                && serde_json::from_slice::<Value>(&bytes)
                    .map(|v| v.get("errorType").is_some())
                    .unwrap_or(false)
            {
                // AWS: the invocation succeeded, the function did not.
                router.log(format!("invoke {name}: function error in {ms} ms: {short}"));
                out.headers_mut().insert(
                    "x-amz-function-error",
                    HeaderValue::from_static("Unhandled"),
                );
            } else {
                router.log(format!(
                    "invoke {name}: watch answered {status} in {ms} ms: {short}"
                ));
                *out.status_mut() = status;
            }
            out
        }
        Err(e) => {
            router.log(format!(
                "invoke {name}: watch unreachable after {ms} ms: {e}"
            ));
            (
                StatusCode::BAD_GATEWAY,
                [("x-amzn-errortype", "ServiceException")],
                json!({"__type": "ServiceException", "message": format!("router → watch: {e}")})
                    .to_string(),
            )
                .into_response()
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
    /// What the template reading could not resolve or had to assume.
    pub notes: Vec<String>,
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
    router: Arc<RouterState>,
    router_task: tokio::task::JoinHandle<()>,
    log_dir: PathBuf,
    // Field order is drop order: watch (and its functions) before moto.
    watch: Server,
    moto: Server,
}

impl Drop for Stack {
    fn drop(&mut self) {
        self.router_task.abort();
    }
}

async fn wait_http(server: &mut Server, url: &str) {
    let client = reqwest::Client::builder()
        .no_proxy()
        .timeout(Duration::from_secs(2))
        .build()
        .expect("HTTP client");
    let t0 = Instant::now();
    loop {
        if client.get(url).send().await.is_ok() {
            return;
        }
        assert!(
            server.alive(),
            "{} exited before answering at {url}; its log ({}):\n{}",
            server.name,
            server.log.display(),
            server.log_tail(40)
        );
        assert!(
            t0.elapsed() < SERVER_START,
            "{} did not answer at {url} within {SERVER_START:?}; its log ({}):\n{}",
            server.name,
            server.log.display(),
            server.log_tail(40)
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// The function packages of the workspace (binaries under `functions/`).
pub fn function_binaries() -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(repo_root().join("functions"))
        .expect("functions/ exists")
        .filter_map(|e| e.ok())
        .filter(|e| e.path().join("Cargo.toml").exists())
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    names
}

/// Builds the functions once per test process (dev profile), so `cargo lambda watch` finds
/// them fresh and its first invocation does not compile.
fn build_functions_once() {
    static BUILT: OnceLock<Result<(), String>> = OnceLock::new();
    let result = BUILT.get_or_init(|| {
        let t0 = Instant::now();
        // One binary per cargo call, as watch's `cargo run --bin NAME` builds it: building
        // them together would unify features differently and watch would rebuild the deps.
        for name in function_binaries() {
            let mut cmd = Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".into()));
            cmd.current_dir(repo_root())
                .args(["build", "--quiet", "--manifest-path", "Cargo.toml", "--bin"])
                .arg(&name);
            match cmd.output() {
                Ok(out) if out.status.success() => {}
                Ok(out) => {
                    return Err(format!(
                        "cargo build --bin {name} failed:\n{}",
                        String::from_utf8_lossy(&out.stderr)
                    ))
                }
                Err(e) => return Err(format!("cannot run cargo build: {e}")),
            }
        }
        eprintln!("[e2e] functions built in {:.1?}", t0.elapsed());
        Ok(())
    });
    if let Err(e) = result {
        panic!("{e}");
    }
}

impl Stack {
    /// Starts and provisions a stack (see the module documentation).
    ///
    /// # Panics
    /// With the reason, if anything cannot start: a missing `.venv` ("run scripts/test"), a
    /// server that dies or does not answer (with its log), a template that cannot be read.
    pub async fn start(options: StackOptions) -> Stack {
        let root = repo_root();
        let moto_server = tool("moto_server");
        let cargo_lambda = tool("cargo-lambda");
        let sim = SimFile::from_value(&options.sim).unwrap_or_else(|e| panic!("{e}"));
        let template = Template::load(&root);
        build_functions_once();

        let name = rm_testkit::unique_name("e2e");
        let log_dir = root.join("target/test-logs/e2e").join(&name);
        std::fs::create_dir_all(&log_dir).expect("create the log directory");

        // The router's port first: moto must know it (MOTO_PORT) when it starts.
        let router_listener = tokio::net::TcpListener::bind(("127.0.0.1", 0))
            .await
            .expect("bind the router");
        let router_port = router_listener.local_addr().unwrap().port();
        let router_url = format!("http://127.0.0.1:{router_port}");

        let moto_port = free_port();
        let moto_url = format!("http://127.0.0.1:{moto_port}");
        let mut cmd = Command::new(&moto_server);
        cmd.args(["-H", "127.0.0.1", "-p", &moto_port.to_string()])
            .env("MOTO_PORT", router_port.to_string())
            .env("AWS_ACCESS_KEY_ID", "test")
            .env("AWS_SECRET_ACCESS_KEY", "test")
            .env("AWS_DEFAULT_REGION", REGION)
            .env("NO_PROXY", "127.0.0.1,localhost")
            .env_remove("AWS_ENDPOINT_URL");
        let mut moto = Server::spawn("moto", cmd, log_dir.join("moto.log"));
        wait_http(&mut moto, &format!("{moto_url}/moto-api/")).await;
        rm_testkit::enable_moto_stepfunctions_execution(&moto_url).await;

        let watch_port = free_port();
        let watch_url = format!("http://127.0.0.1:{watch_port}");
        let router = Arc::new(RouterState {
            moto: moto_url.clone(),
            watch: watch_url.clone(),
            client: reqwest::Client::builder()
                .no_proxy()
                .timeout(Duration::from_secs(600))
                .build()
                .expect("HTTP client"),
            log: Mutex::default(),
        });
        let app = axum::Router::new()
            .fallback(route)
            .with_state(Arc::clone(&router));
        let router_task = tokio::spawn(async move {
            let _ = axum::serve(router_listener, app).await;
        });

        let emulator = Emulator::start(EmulatorOptions {
            sim,
            event_target: Some(format!(
                "{router_url}/2015-03-31/functions/{}/invocations",
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
        let resources = template
            .provision(&sdk, &dynamo_sdk, options.state_machine, &name)
            .await;

        let mut cmd = Command::new(&cargo_lambda);
        let path = format!(
            "{}:{}",
            root.join(".venv/bin").display(),
            std::env::var("PATH").unwrap_or_default()
        );
        cmd.current_dir(&root)
            .args([
                "lambda",
                "watch",
                "--invoke-address",
                "127.0.0.1",
                "--invoke-port",
                &watch_port.to_string(),
                "--ignore-changes",
                "--concurrency",
                &options.concurrency.to_string(),
                "--timeout",
                "600",
            ])
            .env("PATH", path)
            .env("AWS_ENDPOINT_URL", &moto_url)
            .env("AWS_ENDPOINT_URL_CODEPIPELINE", emulator.url())
            .env("AWS_ENDPOINT_URL_DYNAMODB", &dynamo_url)
            .env("AWS_ACCESS_KEY_ID", "test")
            .env("AWS_SECRET_ACCESS_KEY", "test")
            .env("AWS_REGION", REGION)
            .env("AWS_DEFAULT_REGION", REGION)
            .env("AWS_EC2_METADATA_DISABLED", "true")
            .env("NO_PROXY", "127.0.0.1,localhost")
            .env("no_proxy", "127.0.0.1,localhost")
            .env("RUST_LOG", "info")
            .env_remove("AWS_PROFILE")
            .env_remove("AWS_SESSION_TOKEN")
            .env_remove("CARGO_TARGET_DIR_OVERRIDE");
        for (k, v) in &resources.function_env {
            cmd.env(k, v);
        }
        let mut watch = Server::spawn("cargo lambda watch", cmd, log_dir.join("watch.log"));
        wait_http(&mut watch, &format!("{watch_url}/")).await;

        let stack = Stack {
            name,
            moto_url,
            router_url,
            watch_url,
            emulator,
            resources,
            sdk,
            dynamo_sdk,
            router,
            router_task,
            log_dir,
            watch,
            moto,
        };
        for note in &stack.resources.notes {
            eprintln!("[e2e] note: {note}");
        }
        stack
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
        let mut event = event("s3-object-created.json");
        event["account"] = json!(ACCOUNT);
        event["region"] = json!(REGION);
        event["time"] = json!(now_rfc3339());
        event["id"] = json!(rm_testkit::unique_name("evt"));
        event["resources"] = json!([format!("arn:aws:s3:::{}", self.resources.bucket)]);
        event["detail"]["bucket"]["name"] = json!(self.resources.bucket);
        event["detail"]["object"]["key"] = json!(key);
        event["detail"]["object"]["size"] = json!(size);
        event["detail"]["object"]["etag"] =
            json!(out.e_tag().unwrap_or_default().trim_matches('"'));
        match out.version_id() {
            Some(v) => event["detail"]["object"]["version-id"] = json!(v),
            None => {
                if let Some(o) = event["detail"]["object"].as_object_mut() {
                    o.remove("version-id");
                }
            }
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
        let router = self.router.router_log();
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
        self.router.router_log().lines.clone()
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

/// `%`-encodes what a URL path segment cannot hold (an ARN's `:` stays legal but moto encodes
/// it; so do we).
pub fn urlencode(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

fn now_rfc3339() -> String {
    time::OffsetDateTime::now_utc()
        .format(&time::format_description::well_known::Rfc3339)
        .unwrap_or_default()
}

/// A manifest of `pipelines` (all wave 1) with the release id `id`.
pub fn manifest(id: &str, pipelines: &[&str]) -> Value {
    json!({"releaseId": id, "pipelines": pipelines})
}

/// Prints a JSON line (prefixed `E2E_FIGURES `) for the bench report to pick up.
pub fn report(figures: &Value) {
    println!("E2E_FIGURES {figures}");
    eprintln!("E2E_FIGURES {figures}");
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn function_names_from_arns_and_encoded_arns() {
        assert_eq!(function_name("record-state"), "record-state");
        assert_eq!(
            function_name("arn:aws:lambda:us-east-1:123456789012:function:check-manifest"),
            "check-manifest"
        );
        assert_eq!(
            function_name(&urlencode(
                "arn:aws:lambda:us-east-1:123456789012:function:poll-execution:$LATEST"
            )),
            "poll-execution"
        );
        assert_eq!(percent_decode("a%3Ab%"), "a:b%");
    }
}

//! The stack's child processes: moto and `cargo lambda watch`, each in its own process group
//! with its output in a log file, killed (with every descendant) on drop; the readiness wait;
//! and the one-time build of the functions.

use crate::{repo_root, REGION};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

/// How long servers get to answer after starting.
const SERVER_START: Duration = Duration::from_secs(60);

/// A tool of the pinned `.venv` (moto_server, cargo-lambda).
///
/// # Panics
/// If it is missing ("run scripts/test").
pub(crate) fn tool(name: &str) -> PathBuf {
    let path = repo_root().join(".venv/bin").join(name);
    assert!(
        path.exists(),
        "{} is missing: run scripts/test (it installs .venv with moto[server], cargo-lambda and ziglang)",
        path.display()
    );
    path
}

pub(crate) fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free port on 127.0.0.1")
}

/// A child process in its own process group, killed (the whole group, and every descendant's
/// group) on drop.
pub(crate) struct Server {
    pub(crate) name: &'static str,
    child: Child,
    pub(crate) log: PathBuf,
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

    pub(crate) fn log_tail(&self, lines: usize) -> String {
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

pub(crate) async fn wait_http(server: &mut Server, url: &str) {
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
pub(crate) fn build_functions_once() {
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

/// Starts moto on `port` with Step Functions' boto calls sent to the router (`MOTO_PORT`), and
/// waits until it answers.
pub(crate) async fn start_moto(port: u16, router_port: u16, log_dir: &Path) -> Server {
    let mut cmd = Command::new(tool("moto_server"));
    cmd.args(["-H", "127.0.0.1", "-p", &port.to_string()])
        .env("MOTO_PORT", router_port.to_string())
        .env("AWS_ACCESS_KEY_ID", "test")
        .env("AWS_SECRET_ACCESS_KEY", "test")
        .env("AWS_DEFAULT_REGION", REGION)
        .env("NO_PROXY", "127.0.0.1,localhost")
        .env_remove("AWS_ENDPOINT_URL");
    let mut moto = Server::spawn("moto", cmd, log_dir.join("moto.log"));
    wait_http(&mut moto, &format!("http://127.0.0.1:{port}/moto-api/")).await;
    moto
}

/// Where the functions served by watch send their calls, and with what.
pub(crate) struct WatchOptions<'a> {
    pub port: u16,
    /// `--concurrency`: instances per function.
    pub concurrency: u32,
    pub moto_url: &'a str,
    pub codepipeline_url: &'a str,
    pub dynamo_url: &'a str,
    /// `AWS_ENDPOINT_URL_S3`, when the functions' S3 calls go elsewhere than moto (the
    /// router); not set otherwise.
    pub s3_url: Option<&'a str>,
    /// `AWS_ENDPOINT_URL_SFN`, when the functions' Step Functions calls go through the router;
    /// not set otherwise.
    pub sfn_url: Option<&'a str>,
    /// `AWS_ENDPOINT_URL_EVENTBRIDGE`, when the functions' EventBridge calls go through the
    /// router; not set otherwise (they go to moto, `AWS_ENDPOINT_URL`).
    pub events_url: Option<&'a str>,
    /// The functions' environment (from template.yaml).
    pub env: &'a std::collections::BTreeMap<String, String>,
}

/// Starts `cargo lambda watch` from the workspace root, serving every function on
/// `127.0.0.1:port`, and waits until it answers.
pub(crate) async fn start_watch(options: WatchOptions<'_>, log_dir: &Path) -> Server {
    let root = repo_root();
    let mut cmd = Command::new(tool("cargo-lambda"));
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
            &options.port.to_string(),
            "--ignore-changes",
            "--concurrency",
            &options.concurrency.to_string(),
            "--timeout",
            "600",
        ])
        .env("PATH", path)
        .env("AWS_ENDPOINT_URL", options.moto_url)
        .env("AWS_ENDPOINT_URL_CODEPIPELINE", options.codepipeline_url)
        .env("AWS_ENDPOINT_URL_DYNAMODB", options.dynamo_url)
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
    for (k, v) in options.env {
        cmd.env(k, v);
    }
    if let Some(url) = options.s3_url {
        cmd.env("AWS_ENDPOINT_URL_S3", url);
    }
    if let Some(url) = options.sfn_url {
        cmd.env("AWS_ENDPOINT_URL_SFN", url);
    }
    if let Some(url) = options.events_url {
        cmd.env("AWS_ENDPOINT_URL_EVENTBRIDGE", url);
    }
    let mut watch = Server::spawn("cargo lambda watch", cmd, log_dir.join("watch.log"));
    wait_http(&mut watch, &format!("http://127.0.0.1:{}/", options.port)).await;
    watch
}

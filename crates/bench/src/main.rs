//! `rm-bench`: Lambda init time and memory against a stub Runtime API (ARCHITECTURE.md §8).
//!
//! `scripts/bench` builds the functions, zips them and runs this with one `--subject` per
//! function (and one for the Node.js + aws-sdk v2 reference). For each subject it starts the
//! process `--runs` times (after one discarded warm-up) with a Lambda-like environment whose
//! `AWS_LAMBDA_RUNTIME_API` is the stub, and measures
//!
//! * init: the instant before `spawn` to the arrival of its first
//!   `GET /2018-06-01/runtime/invocation/next` at the stub;
//! * RSS and peak RSS (`VmRSS`, `VmHWM` of `/proc/<pid>/status`) read when that request arrives;
//!
//! then kills the process. It prints a table and writes the same figures as JSON.

mod stub;

use clap::{CommandFactory, Parser};
use serde::Serialize;
use std::collections::BTreeMap;
use std::fs::{self, File};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitCode, Stdio};
use std::time::{Duration, Instant};
use stub::Stub;

/// Budgets of ARCHITECTURE.md §8 (MB = 2^20 bytes, as scripts/test counts the zip budget).
const INIT_BUDGET_MS: f64 = 10.0;
const RSS_BUDGET_MIB: f64 = 16.0;
const ZIP_BUDGET_BYTES: u64 = 6 * 1024 * 1024;

#[derive(Debug, Default, Clone)]
struct Subject {
    name: String,
    kind: String,
    exe: PathBuf,
    args: Vec<String>,
    src: Option<PathBuf>,
    lambda_target: Option<String>,
    init_target: Option<String>,
    zip_bytes: Option<u64>,
    bootstrap_bytes: Option<u64>,
    error: Option<String>,
    env: Vec<(String, String)>,
}

#[derive(Debug)]
struct Options {
    runs: usize,
    json: PathBuf,
    log_dir: PathBuf,
    timeout: Duration,
    env: Vec<(String, String)>,
    notes: Vec<String>,
    invoke: Option<String>,
    subjects: Vec<Subject>,
}

/// The options before the first `--subject`.
#[derive(Debug, Parser)]
#[command(
    name = "rm-bench",
    about = "Lambda init time and memory against a stub Runtime API (ARCHITECTURE.md §8).",
    override_usage = "rm-bench [OPTIONS] SUBJECT...\n       \
        SUBJECT: --subject NAME [SUBJECT OPTIONS]",
    after_help = SUBJECT_HELP
)]
struct GlobalArgs {
    /// Process starts per subject, after one discarded warm-up (0 counts as 1).
    #[arg(long, default_value_t = 20, value_name = "N")]
    runs: u64,
    /// Where to write the figures as JSON.
    #[arg(long, default_value = "target/bench/lambda.json", value_name = "PATH")]
    json: PathBuf,
    /// Where each subject's output goes.
    #[arg(long, default_value = "target/bench/logs", value_name = "DIR")]
    log_dir: PathBuf,
    /// How long to wait for a process's first /next (and for --invoke's answer).
    #[arg(long, default_value_t = 10_000, value_name = "MS")]
    timeout_ms: u64,
    /// Environment of every measured process.
    #[arg(long = "env", value_name = "K=V", value_parser = key_value)]
    env: Vec<(String, String)>,
    /// After the measurement, answer the held /next with one invocation carrying JSON and time
    /// until the runtime posts its response or error (first_invoke_ms in the JSON).
    #[arg(long, value_name = "JSON", allow_hyphen_values = true)]
    invoke: Option<String>,
    /// A line printed after the table and kept in the JSON.
    #[arg(long = "note", value_name = "TEXT", allow_hyphen_values = true)]
    notes: Vec<String>,
}

const SUBJECT_HELP: &str = "\
Subject options (after --subject NAME, up to the next --subject):
  --exe PATH             the executable to measure
  --arg A                an argument for it (repeatable)
  --src DIR              scan DIR's .rs files for UPPER_CASE string literals (TABLE_NAME,
                         STATE_MACHINE_ARN, ...) and give each a plausible value, so the
                         function's main finds what it reads
  --kind rust|node       (default rust)
  --lambda-target T, --init-target T, --zip-bytes N, --bootstrap-bytes N
  --set K=V              environment of this subject only (repeatable)
  --error TEXT           not measured: reported with TEXT, e.g. a failed build";

/// One subject: `--subject NAME` and the options up to the next `--subject`.
#[derive(Debug, Parser)]
#[command(no_binary_name = true, disable_help_flag = true)]
struct SubjectArgs {
    #[arg(long)]
    subject: String,
    #[arg(long, default_value = "rust")]
    kind: String,
    #[arg(long)]
    exe: Option<PathBuf>,
    #[arg(long = "arg", allow_hyphen_values = true)]
    args: Vec<String>,
    #[arg(long)]
    src: Option<PathBuf>,
    #[arg(long)]
    lambda_target: Option<String>,
    #[arg(long)]
    init_target: Option<String>,
    #[arg(long)]
    zip_bytes: Option<u64>,
    #[arg(long)]
    bootstrap_bytes: Option<u64>,
    #[arg(long, allow_hyphen_values = true)]
    error: Option<String>,
    #[arg(long = "set", value_parser = key_value)]
    set: Vec<(String, String)>,
}

fn key_value(v: &str) -> Result<(String, String), String> {
    let (k, val) = v.split_once('=').ok_or("wants K=V")?;
    Ok((k.to_owned(), val.to_owned()))
}

/// The global options, then one group per `--subject` (each group is parsed on its own, so a
/// subject's options apply to it alone). Errors (and `--help`) come back as the text to print.
fn parse_args(args: impl IntoIterator<Item = String>) -> Result<Options, String> {
    let args: Vec<String> = args.into_iter().collect();
    // Split at each `--subject` that is a flag, not the value of a flag taking text.
    let mut cuts = Vec::new();
    let mut i = 0;
    while i < args.len() {
        match args[i].as_str() {
            "--subject" => cuts.push(i),
            // Options whose value may itself look like a flag.
            "--arg" | "--note" | "--invoke" | "--error" => i += 1,
            _ => {}
        }
        i += 1;
    }
    let first = cuts.first().copied().unwrap_or(args.len());
    let global = GlobalArgs::try_parse_from(
        std::iter::once("rm-bench".to_owned()).chain(args[..first].iter().cloned()),
    )
    .map_err(|e| e.render().to_string())?;
    let mut subjects = Vec::new();
    for (n, &at) in cuts.iter().enumerate() {
        let end = cuts.get(n + 1).copied().unwrap_or(args.len());
        let a = SubjectArgs::try_parse_from(&args[at..end]).map_err(|e| e.render().to_string())?;
        subjects.push(Subject {
            name: a.subject,
            kind: a.kind,
            exe: a.exe.unwrap_or_default(),
            args: a.args,
            src: a.src,
            lambda_target: a.lambda_target,
            init_target: a.init_target,
            zip_bytes: a.zip_bytes,
            bootstrap_bytes: a.bootstrap_bytes,
            error: a.error,
            env: a.set,
        });
    }
    let o = Options {
        runs: global.runs.max(1) as usize,
        json: global.json,
        log_dir: global.log_dir,
        timeout: Duration::from_millis(global.timeout_ms),
        env: global.env,
        notes: global.notes,
        invoke: global.invoke,
        subjects,
    };
    if o.subjects.is_empty() {
        return Err(format!(
            "nothing to measure\n{}",
            GlobalArgs::command().render_usage()
        ));
    }
    let no_exe = |s: &&Subject| s.exe.as_os_str().is_empty() && s.error.is_none();
    if let Some(s) = o.subjects.iter().find(no_exe) {
        return Err(format!("subject {} has no --exe", s.name));
    }
    Ok(o)
}

/// UPPER_CASE string literals in a function's sources: the names of the environment variables
/// its main may read. Names the Lambda service itself sets (AWS_*, LAMBDA_*, _*) are left out.
fn env_names_in(dir: &Path) -> Vec<String> {
    let mut names = std::collections::BTreeSet::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        let Ok(entries) = fs::read_dir(&d) else {
            continue;
        };
        for e in entries.flatten() {
            let p = e.path();
            if p.is_dir() {
                stack.push(p);
            } else if p.extension().is_some_and(|x| x == "rs") {
                if let Ok(text) = fs::read_to_string(&p) {
                    names.extend(upper_case_literals(&text));
                }
            }
        }
    }
    names.into_iter().collect()
}

fn upper_case_literals(text: &str) -> Vec<String> {
    text.split('"')
        .skip(1)
        .step_by(2)
        .filter(|s| {
            s.len() >= 4
                && s.contains('_')
                && s.starts_with(|c: char| c.is_ascii_uppercase())
                && s.chars()
                    .all(|c| c.is_ascii_uppercase() || c.is_ascii_digit() || c == '_')
                && !s.starts_with("AWS_")
                && !s.starts_with("LAMBDA_")
        })
        .map(str::to_owned)
        .collect()
}

/// A value a function would accept at init for the variable `name`.
fn plausible_value(name: &str) -> String {
    let has = |w: &str| name.contains(w);
    let value = if name.ends_with("_ARN") {
        if has("STATE") || has("SFN") || has("MACHINE") {
            "arn:aws:states:us-east-1:123456789012:stateMachine:rm-bench"
        } else if has("TOPIC") {
            "arn:aws:sns:us-east-1:123456789012:rm-bench"
        } else if has("ROLE") {
            "arn:aws:iam::123456789012:role/rm-bench"
        } else {
            "arn:aws:lambda:us-east-1:123456789012:function:rm-bench"
        }
    } else if has("TABLE") {
        "rm-bench-table"
    } else if has("BUCKET") {
        "rm-bench-bucket"
    } else if has("URL") || has("ENDPOINT") {
        "http://127.0.0.1:1"
    } else if [
        "SECONDS", "SECS", "_MS", "MINUTES", "COUNT", "LIMIT", "MAX", "SIZE", "TIMEOUT",
        "INTERVAL", "DAYS", "TTL",
    ]
    .iter()
    .any(|w| has(w))
    {
        "30"
    } else {
        "rm-bench"
    };
    value.to_owned()
}

/// The environment the Lambda service gives a function (minus real credentials and endpoints).
fn lambda_env(runtime_api: &str, function: &str, home: &Path) -> BTreeMap<String, String> {
    let kv = [
        ("AWS_LAMBDA_RUNTIME_API", runtime_api),
        ("AWS_LAMBDA_FUNCTION_NAME", function),
        ("AWS_LAMBDA_FUNCTION_MEMORY_SIZE", "128"),
        ("AWS_LAMBDA_FUNCTION_VERSION", "$LATEST"),
        ("AWS_LAMBDA_INITIALIZATION_TYPE", "on-demand"),
        ("AWS_LAMBDA_LOG_GROUP_NAME", "/aws/lambda/rm-bench"),
        (
            "AWS_LAMBDA_LOG_STREAM_NAME",
            "2026/01/01/[$LATEST]0123456789abcdef",
        ),
        ("AWS_REGION", "us-east-1"),
        ("AWS_DEFAULT_REGION", "us-east-1"),
        ("AWS_ACCESS_KEY_ID", "test"),
        ("AWS_SECRET_ACCESS_KEY", "test"),
        ("AWS_SESSION_TOKEN", "test"),
        // Any call an init makes fails fast instead of reaching AWS.
        ("AWS_ENDPOINT_URL", "http://127.0.0.1:1"),
        ("_HANDLER", "bootstrap"),
        ("LAMBDA_TASK_ROOT", "/var/task"),
        ("LAMBDA_RUNTIME_DIR", "/var/runtime"),
        ("TZ", ":UTC"),
        ("LANG", "en_US.UTF-8"),
        ("PATH", "/usr/local/bin:/usr/bin:/bin"),
    ];
    let mut env: BTreeMap<String, String> = kv
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    // An empty home: no ~/.aws of whoever runs the bench.
    env.insert("HOME".into(), home.display().to_string());
    env
}

#[derive(Debug, Serialize, Clone)]
struct Stats {
    median: f64,
    p95: f64,
    min: f64,
    max: f64,
}

fn stats(samples: &[f64]) -> Option<Stats> {
    if samples.is_empty() {
        return None;
    }
    let mut s = samples.to_vec();
    s.sort_by(f64::total_cmp);
    let n = s.len();
    let median = if n % 2 == 1 {
        s[n / 2]
    } else {
        (s[n / 2 - 1] + s[n / 2]) / 2.0
    };
    // Nearest rank.
    let p95 = s[((0.95 * n as f64).ceil() as usize).clamp(1, n) - 1];
    let r = |x: f64| (x * 1000.0).round() / 1000.0;
    Some(Stats {
        median: r(median),
        p95: r(p95),
        min: r(s[0]),
        max: r(s[n - 1]),
    })
}

#[derive(Debug, Serialize)]
struct Budget {
    zip: Option<bool>,
    init: Option<bool>,
    rss: Option<bool>,
    pass: bool,
}

#[derive(Debug, Serialize)]
struct Row {
    function: String,
    kind: String,
    lambda_target: Option<String>,
    init_target: Option<String>,
    zip_bytes: Option<u64>,
    bootstrap_bytes: Option<u64>,
    runs: usize,
    init_ms: Option<Stats>,
    rss_mib: Option<Stats>,
    hwm_mib: Option<Stats>,
    /// CPU time of all its threads by the first /next, and time spent waiting for a CPU.
    cpu_ms: Option<Stats>,
    runq_wait_ms: Option<Stats>,
    threads: Option<u32>,
    init_samples_ms: Vec<f64>,
    /// With --invoke: answer to the posted response or error, and what was posted.
    first_invoke_ms: Option<Stats>,
    first_invoke_post: Option<String>,
    budget: Budget,
    env: BTreeMap<String, String>,
    error: Option<String>,
}

struct Bench<'a> {
    stub: &'a Stub,
    opts: &'a Options,
    home: PathBuf,
}

struct Sample {
    init_ms: f64,
    rss_kib: u64,
    hwm_kib: u64,
    cpu: Option<stub::ProcCpu>,
    /// With --invoke: ms from answering /next to the post, and the post (path and body).
    invoke: Option<(f64, String)>,
}

impl Bench<'_> {
    fn env_for(&self, s: &Subject) -> BTreeMap<String, String> {
        let mut env = BTreeMap::new();
        if let Some(src) = &s.src {
            for name in env_names_in(src) {
                let v = plausible_value(&name);
                env.insert(name, v);
            }
        }
        env.extend(lambda_env(&self.stub.runtime_api(), &s.name, &self.home));
        env.extend(self.opts.env.iter().cloned());
        env.extend(s.env.iter().cloned());
        env
    }

    fn run_once(
        &self,
        s: &Subject,
        env: &BTreeMap<String, String>,
        log: &Path,
    ) -> Result<Sample, String> {
        let out = File::create(log).map_err(|e| format!("{}: {e}", log.display()))?;
        let err = out.try_clone().map_err(|e| e.to_string())?;
        let mut cmd = Command::new(&s.exe);
        cmd.args(&s.args)
            .env_clear()
            .envs(env)
            .stdin(Stdio::null())
            .stdout(out)
            .stderr(err);
        self.stub.drain();
        let start = Instant::now();
        let child = cmd
            .spawn()
            .map_err(|e| format!("cannot start {}: {e}", s.exe.display()))?;
        let pid = child.id();
        self.stub.set_pid(pid);
        let mut child = Reaper(child);
        let result = loop {
            match self.stub.next_arrival(Duration::from_millis(20)) {
                Ok(a) if a.pid == pid => {
                    let init = a.at.duration_since(start);
                    let memory = a.memory.clone();
                    let cpu = a.cpu.clone().ok();
                    let invoke = self.opts.invoke.as_ref().map(|p| self.invoke(a, p));
                    break memory
                        .map(|m| Sample {
                            init_ms: init.as_secs_f64() * 1000.0,
                            rss_kib: m.rss_kib,
                            hwm_kib: m.hwm_kib,
                            cpu,
                            invoke,
                        })
                        .map_err(|e| format!("reading memory of pid {pid}: {e}"));
                }
                Ok(_) => continue,
                Err(_) => {}
            }
            if let Ok(Some(status)) = child.0.try_wait() {
                break Err(format!(
                    "exited ({status}) before polling /next; its output ({}):\n{}",
                    log.display(),
                    tail(log, 15)
                ));
            }
            if start.elapsed() > self.opts.timeout {
                break Err(format!(
                    "no /next within {:?}; its output ({}):\n{}",
                    self.opts.timeout,
                    log.display(),
                    tail(log, 15)
                ));
            }
        };
        drop(child);
        self.stub.set_pid(0);
        result
    }

    /// Answers the held /next with one invocation; ms until the runtime posts a result.
    fn invoke(&self, arrival: stub::Arrival, payload: &str) -> (f64, String) {
        let sent = Instant::now();
        if let Err(e) = arrival.answer_invocation("rm-bench-1", payload) {
            return (f64::NAN, format!("answering /next: {e}"));
        }
        match self.stub.next_post(self.opts.timeout) {
            Ok(post) => (
                post.at.duration_since(sent).as_secs_f64() * 1000.0,
                format!("{} {}", post.path, post.body),
            ),
            Err(_) => (f64::NAN, "no response or error posted".into()),
        }
    }

    fn measure(&self, s: &Subject) -> Row {
        let env = self.env_for(s);
        let log = self.opts.log_dir.join(format!("{}.log", s.name));
        let mut samples = Vec::new();
        let mut error = s.error.clone();
        let runs = if error.is_some() {
            0
        } else {
            self.opts.runs + 1
        };
        // One discarded warm-up run: page cache, dynamic loader caches.
        for i in 0..runs {
            match self.run_once(s, &env, &log) {
                Ok(sample) if i > 0 => samples.push(sample),
                Ok(_) => {}
                Err(e) => {
                    error = Some(e);
                    break;
                }
            }
        }
        let init: Vec<f64> = samples.iter().map(|x| x.init_ms).collect();
        let rss: Vec<f64> = samples.iter().map(|x| x.rss_kib as f64 / 1024.0).collect();
        let hwm: Vec<f64> = samples.iter().map(|x| x.hwm_kib as f64 / 1024.0).collect();
        let invoke: Vec<f64> = samples
            .iter()
            .filter_map(|x| x.invoke.as_ref().map(|i| i.0))
            .filter(|x| x.is_finite())
            .collect();
        let first_invoke_post = samples
            .iter()
            .rev()
            .find_map(|x| x.invoke.clone())
            .map(|i| i.1);
        let (init_ms, rss_mib, hwm_mib) = (stats(&init), stats(&rss), stats(&hwm));
        let cpus: Vec<stub::ProcCpu> = samples.iter().filter_map(|x| x.cpu).collect();
        let ms = |ns: u64| ns as f64 / 1e6;
        let cpu_ms = stats(&cpus.iter().map(|c| ms(c.cpu_ns)).collect::<Vec<_>>());
        let runq_wait_ms = stats(&cpus.iter().map(|c| ms(c.runq_wait_ns)).collect::<Vec<_>>());
        let threads = cpus.iter().map(|c| c.threads).max();
        let zip = s.zip_bytes.map(|z| z <= ZIP_BUDGET_BYTES);
        let init_ok = init_ms.as_ref().map(|x| x.median <= INIT_BUDGET_MS);
        let rss_ok = rss_mib.as_ref().map(|x| x.median <= RSS_BUDGET_MIB);
        let pass = error.is_none()
            && [zip, init_ok, rss_ok]
                .iter()
                .all(|b| b.unwrap_or(s.kind != "rust"));
        Row {
            function: s.name.clone(),
            kind: s.kind.clone(),
            lambda_target: s.lambda_target.clone(),
            init_target: s.init_target.clone(),
            zip_bytes: s.zip_bytes,
            bootstrap_bytes: s.bootstrap_bytes,
            runs: samples.len(),
            init_samples_ms: init.iter().map(|x| (x * 1000.0).round() / 1000.0).collect(),
            init_ms,
            rss_mib,
            hwm_mib,
            cpu_ms,
            runq_wait_ms,
            threads,
            first_invoke_ms: stats(&invoke),
            first_invoke_post,
            budget: Budget {
                zip,
                init: init_ok,
                rss: rss_ok,
                pass,
            },
            env,
            error,
        }
    }
}

/// Kills and reaps the process under test however the run ends.
struct Reaper(Child);

impl Drop for Reaper {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn tail(path: &Path, lines: usize) -> String {
    let text = fs::read_to_string(path).unwrap_or_default();
    let all: Vec<&str> = text.lines().collect();
    let from = all.len().saturating_sub(lines);
    all[from..]
        .iter()
        .map(|l| format!("    {l}"))
        .collect::<Vec<_>>()
        .join("\n")
}

fn load_average() -> String {
    fs::read_to_string("/proc/loadavg")
        .map(|s| s.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
        .unwrap_or_default()
}

fn table(rows: &[Row]) -> String {
    let mut out = format!(
        "{:<17} {:<22} {:>10} {:>9} {:>9} {:>8} {:>8} {:>8}  {}\n",
        "function",
        "target",
        "zip bytes",
        "init med",
        "init p95",
        "CPU ms",
        "RSS MB",
        "HWM MB",
        "budget (zip<=6MB init<=10ms RSS<=16MB)"
    );
    for r in rows {
        let target = match (&r.lambda_target, &r.init_target) {
            (Some(l), Some(i)) if l != i => format!("{l} zip/{i} init"),
            (Some(l), _) => l.clone(),
            (None, Some(i)) => i.clone(),
            (None, None) => "-".into(),
        };
        let ms = |s: &Option<Stats>, f: fn(&Stats) -> f64| {
            s.as_ref().map_or("-".into(), |s| format!("{:.1}", f(s)))
        };
        let verdict = if let Some(e) = &r.error {
            format!("ERROR: {}", e.lines().next().unwrap_or(""))
        } else {
            let failed: Vec<&str> = [
                ("zip", r.budget.zip),
                ("init", r.budget.init),
                ("rss", r.budget.rss),
            ]
            .iter()
            .filter(|(_, ok)| *ok == Some(false))
            .map(|(n, _)| *n)
            .collect();
            match (r.kind.as_str(), failed.is_empty()) {
                ("rust", true) => "pass".into(),
                ("rust", false) => format!("FAIL ({})", failed.join(", ")),
                (_, true) => "reference (within budget)".into(),
                (_, false) => format!("reference (over: {})", failed.join(", ")),
            }
        };
        out.push_str(&format!(
            "{:<17} {:<22} {:>10} {:>9} {:>9} {:>8} {:>8} {:>8}  {}\n",
            r.function,
            target,
            r.zip_bytes.map_or("-".into(), |z| z.to_string()),
            ms(&r.init_ms, |s| s.median),
            ms(&r.init_ms, |s| s.p95),
            ms(&r.cpu_ms, |s| s.median),
            ms(&r.rss_mib, |s| s.median),
            ms(&r.hwm_mib, |s| s.median),
            verdict
        ));
    }
    out
}

fn main() -> ExitCode {
    let opts = match parse_args(std::env::args().skip(1)) {
        Ok(o) => o,
        Err(e) => {
            eprintln!("{e}");
            return ExitCode::from(2);
        }
    };
    match run(&opts) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("rm-bench: {e}");
            ExitCode::FAILURE
        }
    }
}

fn run(opts: &Options) -> Result<(), String> {
    let io = |what: &Path| {
        let what = what.display().to_string();
        move |e: std::io::Error| format!("{what}: {e}")
    };
    fs::create_dir_all(&opts.log_dir).map_err(io(&opts.log_dir))?;
    let home = opts.log_dir.join("home");
    fs::create_dir_all(&home).map_err(io(&home))?;
    let home = fs::canonicalize(&home).map_err(io(&home))?;
    let stub = Stub::start().map_err(|e| format!("starting the stub Runtime API: {e}"))?;
    let bench = Bench {
        stub: &stub,
        opts,
        home,
    };
    let load_before = load_average();
    println!(
        "stub Runtime API on {}; {} runs per function after 1 warm-up; load average {}",
        stub.runtime_api(),
        opts.runs,
        load_before
    );
    let mut rows = Vec::new();
    for s in &opts.subjects {
        let row = bench.measure(s);
        if let Some(e) = &row.error {
            eprintln!("rm-bench: {}: {e}", s.name);
        }
        rows.push(row);
    }
    let load_after = load_average();
    print!("{}", table(&rows));
    println!(
        "init = process start to its first GET {} at the stub (wall); CPU ms = CPU time of all \
         its threads by then; RSS/HWM = VmRSS/VmHWM then (CPU/RSS/HWM: medians); \
         MB = 2^20 bytes; load average after: {load_after}",
        stub::NEXT_PATH
    );
    for n in &opts.notes {
        println!("{n}");
    }
    let doc = serde_json::json!({
        "budgets": {
            "init_ms": INIT_BUDGET_MS,
            "rss_mib": RSS_BUDGET_MIB,
            "zip_bytes": ZIP_BUDGET_BYTES,
            "judged_on": "medians",
        },
        "runs": opts.runs,
        "host": {
            "cpus": std::thread::available_parallelism().map(|n| n.get()).unwrap_or(0),
            "load_average_before": load_before,
            "load_average_after": load_after,
        },
        "notes": opts.notes,
        "functions": rows,
    });
    if let Some(dir) = opts.json.parent() {
        fs::create_dir_all(dir).map_err(io(dir))?;
    }
    let text = serde_json::to_string_pretty(&doc).map_err(|e| e.to_string())?;
    fs::write(&opts.json, text + "\n").map_err(io(&opts.json))?;
    println!("JSON: {}", opts.json.display());
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_env_names_in_sources() {
        let src = r#"let t = required_env("TABLE_NAME")?; let a = env::var("STATE_MACHINE_ARN");
            const X: &str = "AWS_REGION"; let s = "Succeeded"; let m = "MAX_WAVES";"#;
        assert_eq!(
            upper_case_literals(src),
            vec!["TABLE_NAME", "STATE_MACHINE_ARN", "MAX_WAVES"]
        );
        assert_eq!(plausible_value("TABLE_NAME"), "rm-bench-table");
        assert!(plausible_value("STATE_MACHINE_ARN").contains(":stateMachine:"));
        assert_eq!(plausible_value("MAX_WAVES"), "30");
    }

    #[test]
    fn median_and_p95() {
        let s = stats(&(1..=20).map(f64::from).collect::<Vec<_>>()).unwrap();
        assert_eq!((s.median, s.p95, s.min, s.max), (10.5, 19.0, 1.0, 20.0));
        let s = stats(&[3.0, 1.0, 2.0]).unwrap();
        assert_eq!((s.median, s.p95), (2.0, 3.0));
    }

    #[test]
    fn parses_subjects() {
        let args = "--runs 5 --subject a --exe /bin/a --zip-bytes 10 --subject node --kind node --exe node --arg x.js";
        let o = parse_args(args.split(' ').map(String::from)).unwrap();
        assert_eq!(o.runs, 5);
        assert_eq!(o.subjects.len(), 2);
        assert_eq!(o.subjects[0].zip_bytes, Some(10));
        assert_eq!(o.subjects[1].args, vec!["x.js"]);
        assert!(parse_args(["--exe".to_string(), "x".into()]).is_err());
        assert!(parse_args(["--runs".to_string(), "3".into()]).is_err());
        let args = "--env A=1 --note -x --subject a --error -built --set K=V --subject b --exe /b --arg --subject";
        let o = parse_args(args.split(' ').map(String::from)).unwrap();
        assert_eq!(
            (o.runs, o.env.len(), o.notes.clone()),
            (20, 1, vec!["-x".to_owned()])
        );
        assert_eq!(o.subjects[0].error.as_deref(), Some("-built"));
        assert_eq!(o.subjects[0].env, vec![("K".to_owned(), "V".to_owned())]);
        assert_eq!(o.subjects[1].args, vec!["--subject"]);
    }
}

//! Helpers of the end-to-end tests: run the binary, or the runner, with the real definition.

#![allow(dead_code)]

use rm_local::runner::{RunOptions, RunReport};
use rm_local::sim::SimFile;
use serde_json::Value;
use std::path::{Path, PathBuf};
use std::process::Command;
use time::macros::datetime;

pub const BIN: &str = env!("CARGO_BIN_EXE_release-machine");

pub fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

pub struct Output {
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
}

impl Output {
    pub fn json(&self) -> Value {
        serde_json::from_str(&self.stdout).unwrap_or_else(|e| {
            panic!(
                "stdout is not JSON ({e}):\n{}\nstderr:\n{}",
                self.stdout, self.stderr
            )
        })
    }
}

/// Runs the binary in `cwd`, against the local state directory: a `RELEASE_MACHINE_API` in
/// the test's environment would send it to a stack.
pub fn cli(cwd: &Path, args: &[&str]) -> Output {
    let out = Command::new(BIN)
        .args(args)
        .current_dir(cwd)
        .env_remove("RELEASE_MACHINE_API")
        .output()
        .expect("the release-machine binary runs");
    Output {
        code: out.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

pub fn write(dir: &Path, name: &str, v: &Value) -> PathBuf {
    let path = dir.join(name);
    std::fs::write(&path, serde_json::to_vec_pretty(v).unwrap()).unwrap();
    path
}

/// Runs a release in-process (the same runner as the binary) in a fresh state directory.
pub fn run(manifest: &Value, sim: &Value) -> RunReport {
    let dir = tempfile::tempdir().unwrap();
    run_in(dir.path(), manifest, sim)
}

pub fn run_in(state_dir: &Path, manifest: &Value, sim: &Value) -> RunReport {
    let mut opts = RunOptions::new(serde_json::to_vec(manifest).unwrap(), state_dir);
    opts.sim = SimFile::from_value(sim).expect("a valid sim file");
    opts.start_time = Some(datetime!(2026-03-02 09:00:00 UTC));
    opts.execution_name = Some("local-test".into());
    rm_local::run_release(opts).expect("the run starts")
}

/// The release view's pipeline `name`.
pub fn pipeline<'a>(report: &'a RunReport, name: &str) -> &'a rm_core::view::RunView {
    report
        .release
        .as_ref()
        .expect("a recorded release")
        .pipelines
        .iter()
        .find(|p| p.name == name)
        .unwrap_or_else(|| panic!("no pipeline {name}"))
}

pub fn status_of(report: &RunReport, name: &str) -> String {
    pipeline(report, name).status.to_string()
}

/// The pipeline `name` of a release JSON.
pub fn pipeline_json<'a>(release: &'a Value, name: &str) -> &'a Value {
    release["pipelines"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["name"] == name)
        .unwrap_or_else(|| panic!("no pipeline {name} in {release}"))
}

/// Wave `n` of a release JSON (or of a plan).
pub fn wave_json(release: &Value, n: u64) -> &Value {
    release["waves"]
        .as_array()
        .unwrap()
        .iter()
        .find(|w| w["wave"] == n)
        .unwrap_or_else(|| panic!("no wave {n} in {release}"))
}

//! `release-machine plan MANIFEST`: will it start, what changes, how long, what it costs —
//! without starting anything.

use crate::remote::Remote;
use crate::PlanArgs;
use serde_json::Value;
use std::path::Path;

pub const PLAN_ABOUT: &str = "\
Plans a release without starting anything.";

/// The plan of `manifest` as JSON (`release` is the simulated release, `"planned": true`):
/// what `plan --json` prints and `timeline --plan` draws. Err: the exit code, its message
/// printed.
pub fn plan_json(
    manifest: &Path,
    sim: Option<&Path>,
    remote: Option<&Remote>,
) -> Result<Value, u8> {
    let _ = (manifest, sim, remote);
    eprintln!("error: plan is not built yet");
    Err(crate::commands::INTERNAL)
}

pub fn plan_command(args: &PlanArgs, remote: Option<&Remote>) -> u8 {
    match plan_json(&args.manifest, args.sim.as_deref(), remote) {
        Ok(plan) => {
            println!("{plan}");
            0
        }
        Err(code) => code,
    }
}

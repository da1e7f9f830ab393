//! `release-machine timeline ID [-o FILE]`, `timeline --plan MANIFEST`: the release as an SVG
//! Gantt chart.
//!
//! The picture is drawn from the release JSON alone ([`rm_core::view::timeline::render`]):
//! locally from the state directory's release, against a stack by the stack itself (`GET
//! /releases/{id}/timeline.svg`, the same renderer over the same JSON), and for `--plan` from
//! the plan's simulated release.

use crate::commands::{self, INTERNAL, INVALID, OK};
use crate::remote::Remote;
use crate::TimelineArgs;
use rm_core::release::ReleaseId;
use serde_json::Value;
use std::io::Write;
use std::path::Path;

pub const TIMELINE_ABOUT: &str = "\
Draws a release as an SVG Gantt chart on one time axis: its waves, each pipeline's runs (of \
every attempt), and what the release waited for (approvals, gates, bake times, the halt). The \
picture is drawn from the release JSON alone, the one `status --json` prints, so a local run \
and a stack draw a release the same way.

Target: the local state directory (--state-dir, default .release-machine), where `run` \
records its releases; or a deployed stack (--api URL, RELEASE_MACHINE_API or --stack NAME), \
which draws it itself: GET /releases/{id}/timeline.svg, IAM-signed with the caller's AWS \
credentials.

-o FILE writes the SVG to FILE (and says so on stderr); without -o (or with -o -) it goes to \
stdout: release-machine timeline 2026.03.1 > release.svg.

--plan MANIFEST draws the plan of a manifest instead: the release it would run, simulated \
(locally with --sim FILE's pipelines, as `plan` does; against a stack from the real \
pipelines), titled as a plan. Nothing is started.

Exit codes: 0 drawn, 2 unknown release or invalid input (a bad release id, the plan's \
manifest), 4 internal error (including a FILE that cannot be written), 6 the stack could not \
be reached or the caller is not authorized.";

/// `timeline` against the local state directory.
pub fn timeline_local(args: &TimelineArgs) -> u8 {
    let svg = match (&args.plan, &args.release_id) {
        (Some(manifest), _) => planned(manifest, args.sim.as_deref(), None),
        (None, Some(raw_id)) => local_release(raw_id, &args.state_dir).and_then(|r| draw(&r)),
        (None, None) => Err(missing_id()),
    };
    match svg {
        Ok(svg) => write_svg(&svg, args.output.as_deref()),
        Err(code) => code,
    }
}

/// `timeline` against a deployed stack: the stack draws the release; a plan is drawn here.
pub fn timeline_remote(remote: &Remote, args: &TimelineArgs) -> u8 {
    let svg = match (&args.plan, &args.release_id) {
        (Some(manifest), _) => planned(manifest, args.sim.as_deref(), Some(remote)),
        (None, Some(id)) => remote.timeline_svg(id).map_err(|e| e.report()),
        (None, None) => Err(missing_id()),
    };
    match svg {
        Ok(svg) => write_svg(&svg, args.output.as_deref()),
        Err(code) => code,
    }
}

fn missing_id() -> u8 {
    eprintln!("error: timeline needs a release id, or --plan MANIFEST");
    INVALID
}

/// The release JSON of `raw_id` in `state_dir`, as `status --json` prints it. A release left
/// RUNNING by a local run that was killed is ended FAILED first, as `status` does.
fn local_release(raw_id: &str, state_dir: &Path) -> Result<Value, u8> {
    let id = ReleaseId::parse(raw_id).map_err(|m| {
        eprintln!("error: release id {raw_id:?} {m}");
        INVALID
    })?;
    if let Some(code) = commands::end_if_interrupted(state_dir, &id, "timeline") {
        return Err(code);
    }
    let view = match rm_local::runner::load_release(state_dir, &id) {
        Ok(Some(view)) => view,
        Ok(None) => {
            eprintln!(
                "error: no release {id} in {}; a local run records its releases there (--state-dir to look elsewhere)",
                state_dir.display()
            );
            return Err(INVALID);
        }
        Err(e) => {
            eprintln!("error: {e}");
            return Err(INTERNAL);
        }
    };
    serde_json::to_value(&view).map_err(|e| {
        eprintln!("error: cannot encode release {id}: {e}");
        INTERNAL
    })
}

/// The plan of `manifest`, drawn: its simulated release (`"planned": true`).
fn planned(manifest: &Path, sim: Option<&Path>, remote: Option<&Remote>) -> Result<String, u8> {
    let plan = crate::plan::plan_json(manifest, sim, remote)?;
    let Some(release) = plan.get("release").filter(|r| r.is_object()) else {
        eprintln!(
            "error: the plan of {} has no simulated release to draw",
            manifest.display()
        );
        return Err(INTERNAL);
    };
    draw(release)
}

fn draw(release: &Value) -> Result<String, u8> {
    rm_core::view::timeline::render(release).map_err(|e| {
        eprintln!("error: {e}");
        INTERNAL
    })
}

/// Writes the SVG to `output` (`-` or none: stdout). A file that cannot be written is exit 4,
/// named; a closed stdout (`| head`) is not an error worth a message.
fn write_svg(svg: &str, output: Option<&Path>) -> u8 {
    match output.filter(|p| *p != Path::new("-")) {
        Some(path) => match std::fs::write(path, svg) {
            Ok(()) => {
                eprintln!("wrote {}", path.display());
                OK
            }
            Err(e) => {
                eprintln!(
                    "error: cannot write the timeline to {}: {e}",
                    path.display()
                );
                INTERNAL
            }
        },
        None => {
            let mut out = std::io::stdout().lock();
            match out.write_all(svg.as_bytes()).and_then(|()| out.flush()) {
                Ok(()) => OK,
                Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => OK,
                Err(e) => {
                    eprintln!("error: cannot write the timeline to stdout: {e}");
                    INTERNAL
                }
            }
        }
    }
}

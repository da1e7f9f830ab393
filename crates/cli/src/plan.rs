//! `release-machine plan MANIFEST`: will it start, what changes, how long, what it costs —
//! without starting anything. Locally the pipelines are the sim file's; against a stack they
//! are read from CodePipeline with the caller's credentials, in the stack's region (no API
//! route: the caller's own IAM permissions apply). Either way the prediction is the release's
//! own state machine run in simulated time (`rm_local::plan`).

use crate::commands::{clock, read, INTERNAL, INVALID, OK};
use crate::remote::Remote;
use crate::PlanArgs;
use rm_core::error::PortError;
use rm_core::Manifest;
use rm_local::plan::{Plan, PlanError, PlanWorld};
use serde_json::Value;
use std::path::Path;

pub const PLAN_ABOUT: &str = "\
Plans a release without starting anything, and answers:

  Will it start?  The manifest is validated, then each pipeline is checked: it exists; it is a \
V2 pipeline when the manifest passes variables; it declares every variable; every \
sourceRevisions[].actionName is one of its source actions, whose provider takes that revision \
type (COMMIT_ID: CodeCommit or a connection; IMAGE_DIGEST: ECR; S3_OBJECT_VERSION_ID and \
S3_OBJECT_KEY: S3, the key only with AllowOverrideForS3ObjectKey). Every problem is reported \
at its manifest path.
  What changes?  A pipeline with sourceRevisions is unchanged when its most recent finished \
execution succeeded with the manifest's revision for every source action and with its \
variables. With \"skipUnchanged\": true the release does not start it (its run is Skipped).
  How long?  Each pipeline's expected duration (the sim file's durationSeconds; against AWS the \
median of its last 10 succeeded executions), then the predicted start and end of every wave and \
of the release, with maxConcurrency, approvals (assumed given at once when the sim file does \
not script them), gates and bake, and each wave's critical path: the release's own state \
machine run in simulated time.
  What will it cost?  State transitions, history events (against Step Functions' 25,000) and \
the release's CodePipeline calls.

Locally (the default) the pipelines are the --sim file's (its pipelines may give \
`pipelineType`, `variables`, `sourceActions`, `lastRevisions`, `lastVariables`; what is not \
given is accepted); its faults are left out. Against a stack (--api URL, RELEASE_MACHINE_API, \
--stack NAME) the pipelines are read with CodePipeline's GetPipeline, ListPipelineExecutions \
and GetPipelineExecution, with your credentials, in the stack's region.

Exit codes: 0 it would start, 2 it would not (or invalid manifest / sim file), 4 internal \
error, 6 CodePipeline or the stack could not be reached, or the caller is not authorized.";

/// The plan of `manifest` as JSON (`release` is the simulated release, `"planned": true`):
/// what `plan --json` prints and `timeline --plan` draws. Err: the exit code, its message
/// printed.
pub fn plan_json(
    manifest: &Path,
    sim: Option<&Path>,
    remote: Option<&Remote>,
) -> Result<Value, u8> {
    let plan = make_plan(manifest, sim, remote)?;
    serde_json::to_value(&plan).map_err(|e| {
        eprintln!("error: cannot encode the plan: {e}");
        INTERNAL
    })
}

pub fn plan_command(args: &PlanArgs, remote: Option<&Remote>) -> u8 {
    let plan = match make_plan(&args.manifest, args.sim.as_deref(), remote) {
        Ok(p) => p,
        Err(code) => return code,
    };
    let name = args.manifest.display().to_string();
    if args.json {
        match serde_json::to_string_pretty(&plan) {
            Ok(text) => println!("{text}"),
            Err(e) => {
                eprintln!("error: cannot encode the plan: {e}");
                return INTERNAL;
            }
        }
    } else {
        print!("{}", render(&plan, &name));
    }
    if plan.ok {
        OK
    } else {
        if args.json {
            for p in &plan.problems {
                eprintln!("{name}: {p}");
            }
        }
        INVALID
    }
}

fn make_plan(
    manifest_path: &Path,
    sim: Option<&Path>,
    remote: Option<&Remote>,
) -> Result<Plan, u8> {
    let name = manifest_path.display().to_string();
    let bytes = read(manifest_path, "manifest")?;
    let manifest = match Manifest::parse(&bytes) {
        Ok(m) => m,
        Err(rejection) => {
            eprintln!("error: {name} is not a valid release manifest:");
            for e in &rejection.0 {
                eprintln!("  {name}: {e}");
            }
            return Err(INVALID);
        }
    };
    let world = match remote {
        None => {
            let sim_json = match sim {
                None => Value::Object(Default::default()),
                Some(path) => {
                    let sim_name = path.display().to_string();
                    let sim_bytes = read(path, "sim file")?;
                    serde_json::from_slice(&sim_bytes).map_err(|e| {
                        eprintln!("error: {sim_name} is not a valid sim file:");
                        eprintln!("  {sim_name}: $: not JSON: {e}");
                        INVALID
                    })?
                }
            };
            PlanWorld::Sim(sim_json)
        }
        Some(remote) => PlanWorld::Observed {
            inspection: inspect_aws(&manifest, remote)?,
            now: time::OffsetDateTime::now_utc(),
        },
    };
    rm_local::plan::plan(&bytes, world).map_err(|e| match e {
        PlanError::InvalidManifest(errors) => {
            eprintln!("error: {name} is not a valid release manifest:");
            for e in &errors {
                eprintln!("  {name}: {e}");
            }
            INVALID
        }
        PlanError::InvalidSim(errors) => {
            let sim_name = sim.map_or_else(|| "the sim file".into(), |p| p.display().to_string());
            eprintln!("error: {sim_name} is not a valid sim file:");
            for e in &errors {
                eprintln!("  {sim_name}: {e}");
            }
            INVALID
        }
        PlanError::Internal(m) => {
            eprintln!("error: {m}");
            INTERNAL
        }
    })
}

/// GetPipeline, ListPipelineExecutions and GetPipelineExecution with the caller's credentials,
/// in the stack's region (the API's host names it).
fn inspect_aws(manifest: &Manifest, remote: &Remote) -> Result<rm_core::plan::Inspection, u8> {
    let config = remote.aws_config();
    let region = config
        .region()
        .map(|r| r.as_ref().to_owned())
        .unwrap_or_default();
    let client = rm_aws::CodePipelineClient::new(aws_sdk_codepipeline::Client::new(&config));
    remote
        .block_on(rm_core::plan::inspect(manifest, &client))
        .map_err(|e| {
            let text = e.to_string();
            // The SDK's Debug rendering of a dispatch failure says nothing the text did not.
            let text = text.split(" (DispatchFailure(").next().unwrap_or(&text);
            if text.contains("no credentials found") || text.contains("CredentialsNotLoaded") {
                eprintln!("error: no AWS credentials to read the pipelines with (region {region}): {text}");
                eprintln!("  set AWS_PROFILE (after aws sso login), or AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY");
                return 6;
            }
            let (code, why) = match &e {
                PortError::Transient(_) => (6, "CodePipeline could not be reached"),
                PortError::Other(m) if denied(m) => (6, "CodePipeline refused the caller"),
                _ => (INTERNAL, "CodePipeline failed"),
            };
            eprintln!("error: {why} (region {region}): {text}");
            if why == "CodePipeline refused the caller" {
                eprintln!("  plan reads pipelines with your credentials: it needs codepipeline:GetPipeline, ListPipelineExecutions and GetPipelineExecution");
            }
            code
        })
}

fn denied(message: &str) -> bool {
    [
        "AccessDenied",
        "UnrecognizedClient",
        "InvalidSignature",
        "SignatureDoesNotMatch",
        "ExpiredToken",
        "security token",
        "credentials",
    ]
    .iter()
    .any(|m| message.contains(m))
}

fn rfc3339(t: Option<time::OffsetDateTime>) -> String {
    t.and_then(|t| {
        t.format(&time::format_description::well_known::Rfc3339)
            .ok()
    })
    .unwrap_or_else(|| "-".into())
}

fn secs(s: u64) -> String {
    clock(std::time::Duration::from_secs(s))
}

/// The plan in words: the four questions, each answered.
pub fn render(plan: &Plan, manifest_name: &str) -> String {
    let mut out = String::new();
    let waves: std::collections::BTreeSet<u32> = plan.pipelines.iter().map(|p| p.wave).collect();
    out.push_str(&format!(
        "Plan of release {}: {} pipeline{} in {} wave{} ({}) — nothing was started\n\n",
        plan.release_id,
        plan.pipelines.len(),
        if plan.pipelines.len() == 1 { "" } else { "s" },
        waves.len(),
        if waves.len() == 1 { "" } else { "s" },
        if plan.source == "aws" {
            "pipelines read from CodePipeline"
        } else {
            "simulated pipelines"
        }
    ));
    if !plan.ok {
        out.push_str(&format!(
            "Will it start?  no: {} problem{}\n",
            plan.problems.len(),
            if plan.problems.len() == 1 { "" } else { "s" }
        ));
        for p in &plan.problems {
            out.push_str(&format!("  {manifest_name}: {p}\n"));
        }
        return out;
    }
    out.push_str("Will it start?  yes: every pipeline exists and takes what the manifest passes\n");
    let unchanged = plan
        .pipelines
        .iter()
        .filter(|p| p.change == "unchanged")
        .count();
    let skipped = plan.pipelines.iter().filter(|p| p.skipped).count();
    out.push_str(&format!(
        "What changes?   {} of {} pipeline{} change{}",
        plan.pipelines.len() - unchanged,
        plan.pipelines.len(),
        if plan.pipelines.len() == 1 { "" } else { "s" },
        if plan.pipelines.len() - unchanged == 1 {
            "s"
        } else {
            ""
        },
    ));
    match (unchanged, skipped) {
        (0, _) => out.push('\n'),
        (u, 0) => out.push_str(&format!(
            "; {u} unchanged (started anyway: the manifest does not say skipUnchanged)\n"
        )),
        (u, s) => out.push_str(&format!("; {u} unchanged, {s} skipped (skipUnchanged)\n")),
    }
    let width = plan
        .pipelines
        .iter()
        .map(|p| p.name.len())
        .max()
        .unwrap_or(0);
    let mut by_wave: Vec<_> = plan.pipelines.iter().collect();
    by_wave.sort_by_key(|p| p.wave);
    for p in by_wave {
        out.push_str(&format!(
            "  wave {:<3} {:<width$}  {:<9}  {}{}\n",
            p.wave,
            p.name,
            p.change,
            p.reason,
            if p.skipped { " (skipped)" } else { "" }
        ));
    }
    out.push_str(&format!(
        "How long?       {} predicted: {} → {} ({})\n",
        plan.predicted_duration_seconds
            .map_or_else(|| "-".into(), secs),
        rfc3339(plan.predicted_start),
        rfc3339(plan.predicted_end),
        plan.predicted_status.as_deref().unwrap_or("-"),
    ));
    if let Some(cause) = &plan.predicted_cause {
        out.push_str(&format!("  it would end so: {cause}\n"));
    }
    for w in &plan.waves {
        let waits: Vec<String> = w
            .waits
            .iter()
            .map(|x| format!("{} {}", x.kind, secs(x.seconds)))
            .collect();
        let critical: Vec<String> = w
            .critical_path
            .iter()
            .map(|name| {
                let expected = plan
                    .pipelines
                    .iter()
                    .find(|p| &p.name == name)
                    .and_then(|p| p.expected_duration_seconds);
                match expected {
                    Some(s) => format!("{name} ({})", secs(s)),
                    None => name.clone(),
                }
            })
            .collect();
        out.push_str(&format!(
            "  wave {:<3} {} → {}  {:>8}  {}{}\n",
            w.wave,
            crate::watch::hms(w.predicted_start),
            crate::watch::hms(w.predicted_end),
            w.duration_seconds.map_or_else(|| "-".into(), secs),
            if critical.is_empty() {
                w.status.to_lowercase()
            } else {
                format!("critical path: {}", critical.join(", "))
            },
            if waits.is_empty() {
                String::new()
            } else {
                format!("; waits: {}", waits.join(", "))
            }
        ));
    }
    if let Some(cost) = &plan.cost {
        let ops: Vec<String> = cost
            .code_pipeline_calls_by_operation
            .iter()
            .map(|(op, n)| format!("{op} {n}"))
            .collect();
        out.push_str("What will it cost?\n");
        out.push_str(&format!(
            "  state transitions   {}\n",
            cost.state_transitions
        ));
        out.push_str(&format!(
            "  history events      {} of {} ({:.1}%)\n",
            cost.history_events,
            cost.history_event_limit,
            cost.history_events as f64 * 100.0 / cost.history_event_limit as f64
        ));
        out.push_str(&format!(
            "  CodePipeline calls  {} ({})\n",
            cost.code_pipeline_calls,
            ops.join(", ")
        ));
    }
    for a in &plan.assumptions {
        out.push_str(&format!("Assumes: {a}\n"));
    }
    out
}

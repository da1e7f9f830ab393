//! `plan`: what a release would do, decided before anything starts. Pure rules over what
//! CodePipeline says of each pipeline ([`PipelineShape`], [`PastExecution`]), and the use
//! case that asks it through the [`Pipelines`] port — the same on AWS and in a simulation.
//!
//! The rules (the user guide's "Start a pipeline with a source revision override",
//! docs.aws.amazon.com/codepipeline/latest/userguide/pipelines-trigger-source-overrides.html):
//! a revision type belongs to a source provider (COMMIT_ID: CodeCommit and the connections;
//! IMAGE_DIGEST: ECR; S3_OBJECT_VERSION_ID, S3_OBJECT_KEY: S3), and an S3_OBJECT_KEY override
//! needs the S3 action's `AllowOverrideForS3ObjectKey` set to true. Pipeline-level variables
//! exist only on V2 pipelines (API_PipelineDeclaration.html: `variables`, "V2 type pipelines
//! only").

mod unchanged;

pub use unchanged::{
    last_finished, median_seconds, unchanged, Unchanged, DURATION_SAMPLE, PLAN_READS, START_READS,
};

use crate::error::ValidationError;
use crate::manifest::{Manifest, PipelineSpec};
use crate::ports::{PastExecution, PipelineShape, Pipelines, PortResult};
use futures::stream::{self, StreamExt, TryStreamExt};

/// How many pipelines are inspected at once.
const INSPECT_CONCURRENCY: usize = 8;

/// The source providers a revision type can override (`actionTypeId.provider`).
pub fn providers_of(revision_type: &str) -> &'static [&'static str] {
    match revision_type {
        "COMMIT_ID" => &[
            "CodeCommit",
            "CodeStarSourceConnection",
            "GitHub",
            "GitHubEnterpriseServer",
            "Bitbucket",
            "GitLab",
            "GitLabSelfManaged",
        ],
        "IMAGE_DIGEST" => &["ECR"],
        "S3_OBJECT_VERSION_ID" | "S3_OBJECT_KEY" => &["S3"],
        _ => &[],
    }
}

/// Every reason `spec` (the manifest's `index`th pipeline) would not start on the pipeline
/// CodePipeline describes as `shape` (None: it does not exist), each at its manifest path.
pub fn check_pipeline(
    index: usize,
    spec: &PipelineSpec,
    shape: Option<&PipelineShape>,
) -> Vec<ValidationError> {
    let at = |rest: &str| format!("$.pipelines[{index}]{rest}");
    let Some(shape) = shape else {
        return vec![ValidationError::new(
            at(".name"),
            format!(
                "pipeline {:?} does not exist in this account and region",
                spec.name
            ),
        )];
    };
    let mut problems = Vec::new();
    if !spec.variables.is_empty() && shape.pipeline_type != "V2" {
        problems.push(ValidationError::new(
            at(".variables"),
            format!(
                "pipeline {:?} is a {} pipeline; only V2 pipelines take variables (change its pipelineType to V2, or drop the variables)",
                spec.name,
                if shape.pipeline_type.is_empty() { "V1" } else { &shape.pipeline_type }
            ),
        ));
    } else if let Some(declared) = &shape.variables {
        for name in spec.variables.keys() {
            if !declared.contains(name) {
                problems.push(ValidationError::new(
                    crate::manifest::member_path(&at(".variables"), name),
                    format!(
                        "pipeline {:?} declares no variable {name:?}; it declares {}",
                        spec.name,
                        listing(declared)
                    ),
                ));
            }
        }
    }
    for (i, revision) in spec.source_revisions.iter().enumerate() {
        let path = |field: &str| at(&format!(".sourceRevisions[{i}].{field}"));
        let Some(actions) = &shape.source_actions else {
            continue;
        };
        let Some(action) = actions.iter().find(|a| a.name == revision.action_name) else {
            let names: Vec<String> = actions.iter().map(|a| a.name.clone()).collect();
            problems.push(ValidationError::new(
                path("actionName"),
                format!(
                    "pipeline {:?} has no source action {:?}; its source actions are {}",
                    spec.name,
                    revision.action_name,
                    listing(&names)
                ),
            ));
            continue;
        };
        if action.provider.is_empty() {
            continue;
        }
        let fits = providers_of(&revision.revision_type);
        if !fits.contains(&action.provider.as_str()) {
            problems.push(ValidationError::new(
                path("revisionType"),
                format!(
                    "{} does not fit source action {:?}, whose provider is {}; {} overrides {} actions",
                    revision.revision_type,
                    action.name,
                    action.provider,
                    revision.revision_type,
                    fits.join(" or ")
                ),
            ));
        } else if revision.revision_type == "S3_OBJECT_KEY"
            && !action
                .configuration
                .get("AllowOverrideForS3ObjectKey")
                .is_some_and(|v| v.eq_ignore_ascii_case("true"))
        {
            problems.push(ValidationError::new(
                path("revisionType"),
                format!(
                    "source action {:?} does not allow an S3_OBJECT_KEY override: set its configuration AllowOverrideForS3ObjectKey to true, or override S3_OBJECT_VERSION_ID",
                    action.name
                ),
            ));
        }
    }
    problems
}

fn listing(names: &[String]) -> String {
    if names.is_empty() {
        "none".to_owned()
    } else {
        names.join(", ")
    }
}

/// What the plan knows of one pipeline.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PipelineFacts {
    pub name: String,
    pub wave: u32,
    /// GetPipeline's answer; None: the pipeline does not exist.
    pub shape: Option<PipelineShape>,
    /// Whether it would change (see [`unchanged`]).
    pub unchanged: Unchanged,
    /// The median duration of its last [`DURATION_SAMPLE`] succeeded executions, in seconds.
    pub median_seconds: Option<u64>,
    /// How many succeeded executions the median is of.
    pub sample: usize,
}

/// What the plan learned from CodePipeline: the problems (exit 2) and each pipeline's facts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Inspection {
    pub problems: Vec<ValidationError>,
    pub pipelines: Vec<PipelineFacts>,
}

/// Asks CodePipeline about every pipeline of the manifest: GetPipeline, ListPipelineExecutions
/// (the last ten), and GetPipelineExecution of the last finished one when it has to compare
/// variables. Nothing is started.
pub async fn inspect(manifest: &Manifest, pipelines: &dyn Pipelines) -> PortResult<Inspection> {
    let facts: Vec<(Vec<ValidationError>, PipelineFacts)> =
        stream::iter(manifest.pipelines.iter().enumerate())
            .map(|(i, spec)| inspect_one(i, spec, pipelines))
            .buffered(INSPECT_CONCURRENCY)
            .try_collect()
            .await?;
    let mut problems = Vec::new();
    let mut out = Vec::with_capacity(facts.len());
    for (p, f) in facts {
        problems.extend(p);
        out.push(f);
    }
    Ok(Inspection {
        problems,
        pipelines: out,
    })
}

async fn inspect_one(
    index: usize,
    spec: &PipelineSpec,
    pipelines: &dyn Pipelines,
) -> PortResult<(Vec<ValidationError>, PipelineFacts)> {
    let shape = pipelines.describe(&spec.name).await?;
    let problems = check_pipeline(index, spec, shape.as_ref());
    let (executions, unchanged) = match &shape {
        None => (
            Vec::new(),
            Unchanged::No("the pipeline does not exist".into()),
        ),
        Some(_) => {
            let executions = pipelines.recent_executions(&spec.name, PLAN_READS).await?;
            let unchanged = decide(spec, &executions, pipelines).await?;
            (executions, unchanged)
        }
    };
    let (median_seconds, sample) = median_seconds(&executions);
    Ok((
        problems,
        PipelineFacts {
            name: spec.name.clone(),
            wave: spec.wave,
            shape,
            unchanged,
            median_seconds,
            sample,
        },
    ))
}

/// [`unchanged`] with the variables of the last finished execution read only when needed.
async fn decide(
    spec: &PipelineSpec,
    executions: &[PastExecution],
    pipelines: &dyn Pipelines,
) -> PortResult<Unchanged> {
    let verdict = unchanged(spec, executions, None);
    match (&verdict, last_finished(executions)) {
        (Unchanged::NeedsVariables, Some(last)) => {
            let vars = pipelines
                .execution_variables(&spec.name, &last.execution_id)
                .await?;
            Ok(unchanged(spec, executions, Some(&vars)))
        }
        _ => Ok(verdict),
    }
}

/// Whether `spec` would be skipped by `skipUnchanged` at start time: the execution it matches.
/// What start-pipelines asks when the release says `skipUnchanged` (ListPipelineExecutions,
/// and GetPipelineExecution only when the manifest passes variables).
pub async fn matching_execution(
    spec: &PipelineSpec,
    pipelines: &dyn Pipelines,
) -> PortResult<Option<String>> {
    if spec.source_revisions.is_empty() {
        return Ok(None);
    }
    let executions = pipelines.recent_executions(&spec.name, START_READS).await?;
    Ok(match decide(spec, &executions, pipelines).await? {
        Unchanged::Yes { execution_id } => Some(execution_id),
        _ => None,
    })
}

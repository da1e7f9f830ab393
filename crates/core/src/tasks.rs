//! The payloads the state machine (`statemachine/release.asl.json`) sends to each function,
//! and what each returns. The state carries ids and small numbers, never the manifest's bulk.

use crate::manifest::OnFailure;
use crate::release::{ReleaseStatus, RunStatus};
use serde::{Deserialize, Serialize};
use serde_json::Value;

/// check-manifest's payload: `{"input": <execution input>, "executionName": "..."}`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct CheckManifestRequest {
    pub input: Value,
    pub execution_name: String,
}

/// What an execution was started with.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ManifestInput {
    /// An EventBridge "Object Created" event from the manifest bucket.
    S3Object {
        bucket: String,
        key: String,
        version_id: Option<String>,
    },
    /// A release already claimed by the API for this execution: `{"claimedRelease": "id"}`.
    Claimed { release_id: String },
    /// The manifest itself as the execution input (console, CLI, SDK).
    Inline(Value),
}

impl ManifestInput {
    /// Tells the three inputs apart. An EventBridge event has `detail-type`; the API's input
    /// has `claimedRelease`; anything else is taken as a manifest and validated as one.
    pub fn classify(input: &Value) -> Result<ManifestInput, String> {
        if let Some(detail_type) = input.get("detail-type") {
            if detail_type != "Object Created" {
                return Err(format!(
                    "expected an S3 \"Object Created\" event, got detail-type {detail_type}"
                ));
            }
            let detail = input.get("detail").ok_or("the event has no detail")?;
            let field = |ptr: &str| {
                detail
                    .pointer(ptr)
                    .and_then(Value::as_str)
                    .map(str::to_owned)
            };
            let bucket = field("/bucket/name").ok_or("the event has no detail.bucket.name")?;
            let key = field("/object/key").ok_or("the event has no detail.object.key")?;
            return Ok(ManifestInput::S3Object {
                bucket,
                key,
                version_id: field("/object/version-id"),
            });
        }
        if let Some(id) = input.get("claimedRelease") {
            let release_id = id
                .as_str()
                .ok_or("claimedRelease must be a string")?
                .to_owned();
            return Ok(ManifestInput::Claimed { release_id });
        }
        Ok(ManifestInput::Inline(input.clone()))
    }
}

/// check-manifest's result.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct CheckManifestResponse {
    pub outcome: Outcome,
    pub release_id: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub on_failure: Option<OnFailure>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_concurrency: Option<u32>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub waves: Vec<WaveItem>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Outcome {
    /// The release is claimed by this execution: go.
    Started,
    /// Another execution holds this release id: end successfully, touch nothing.
    Duplicate,
}

/// One item of the outer Map.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct WaveItem {
    pub wave: u32,
    /// The wave waits for a human's approval before it starts (the manifest's `approvals`).
    #[serde(default)]
    pub approval: bool,
    /// How long the approval waits (the manifest's `approvalTimeoutMinutes`, in seconds).
    #[serde(default)]
    pub approval_timeout_seconds: u64,
    /// How long the wave bakes after it succeeded (the gates' `bakeMinutes`, in seconds; 0:
    /// no bake).
    #[serde(default)]
    pub bake_seconds: u64,
    /// The release has gates: they are evaluated before the wave (`WaitForGate`). Without,
    /// the wave goes straight on (the halt still holds its pipeline starts one by one).
    #[serde(default)]
    pub gated: bool,
    pub pipelines: Vec<PipelineItem>,
}

/// One item of the inner Map.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PipelineItem {
    pub name: String,
    pub timeout_seconds: u64,
}

/// A pipeline of a release, as a task names it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PipelineRef {
    pub release_id: String,
    pub execution_name: String,
    pub pipeline: String,
}

/// start-pipelines' payloads.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "action", rename_all = "camelCase")]
pub enum StartPipelinesRequest {
    /// Start one pipeline (idempotent).
    Start(PipelineRef),
    /// Stop one pipeline whose wait timed out.
    StopTimedOut(PipelineRef),
    /// Stop every run of the release still in progress and report how many are not yet
    /// terminal.
    #[serde(rename_all = "camelCase")]
    StopRunning {
        release_id: String,
        execution_name: String,
        /// How many times this was called before (the state machine counts).
        attempt: u32,
    },
}

/// The result of `Start` and `StopTimedOut`: the run's status after the call.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RunResponse {
    pub pipeline: String,
    pub status: RunStatus,
    pub execution_id: Option<String>,
}

/// The result of `StopRunning`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct StopRunningResponse {
    /// Runs that are not yet terminal.
    pub remaining: u32,
    /// The attempt just made (input attempt + 1).
    pub attempt: u32,
}

/// poll-execution's payloads.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "action", rename_all = "camelCase")]
pub enum PollRequest {
    /// The RunPipeline task (`.waitForTaskToken`): store the token on the run, start the
    /// pipeline if it is not started, and check the status at once.
    #[serde(rename_all = "camelCase")]
    Await {
        release_id: String,
        execution_name: String,
        pipeline: String,
        task_token: String,
        /// `$$.State.RetryCount`: above 0, an earlier attempt may have started the pipeline
        /// and lost the answer.
        #[serde(default)]
        retry_count: u32,
    },
    /// The approval wait before a wave (`.waitForTaskToken`): store the token on the release
    /// and publish `Approval Requested`.
    AwaitApproval(ApprovalRequest),
    /// The approval wait timed out: record it; answers the error and cause to fail with.
    ApprovalTimedOut(ApprovalRequest),
    /// The gate wait before a wave (`.waitForTaskToken`): open, it completes at once; closed,
    /// the token is stored on the release for the re-evaluations.
    AwaitGate(ApprovalRequest),
    /// The bake after a wave (`.waitForTaskToken`).
    AwaitBake(ApprovalRequest),
    /// Re-evaluates the gate, bake and halt waits (the one-minute schedule's `{"action":
    /// "gates"}`, a CloudWatch "Alarm State Change" event, a halt change); scoped to one
    /// release with `releaseId` (the local run).
    #[serde(rename_all = "camelCase")]
    Gates {
        #[serde(default, skip_serializing_if = "Option::is_none")]
        release_id: Option<String>,
    },
    /// The sweep: `{"action": "sweep"}` polls every waiting run (also accepted as
    /// EventBridge's "Scheduled Event", the 5-minute rule); `{"action": "sweep", "releaseId":
    /// "r1"}` only that release's (the local runner's scoped sweep).
    #[serde(rename_all = "camelCase")]
    Sweep {
        #[serde(default, skip_serializing_if = "Option::is_none")]
        release_id: Option<String>,
    },
}

/// The payload of a wait before or after a wave (approval, gate, bake).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ApprovalRequest {
    pub release_id: String,
    pub execution_name: String,
    pub wave: u32,
    /// `$$.Task.Token` (the wait; empty for the timeout).
    #[serde(default)]
    pub task_token: String,
}

/// What `ApprovalTimedOut` answers: the Fail state's error and cause.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ApprovalTimedOutResponse {
    pub error: String,
    pub cause: String,
}

/// What `Await` did.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct AwaitResponse {
    pub status: RunStatus,
    /// True when the run was already terminal and the token was completed at once.
    pub completed: bool,
    /// True when a newer attempt of the task had already stored its token: this invocation
    /// left the run to it (issue 9, fault 9).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub superseded: bool,
}

/// What the sweep did.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SweepResponse {
    /// Waiting runs polled (each counted once, whatever its poll's outcome).
    pub polled: u32,
    /// Polled runs that were terminal and whose waiting task this sweep completed.
    pub completed: u32,
    /// Polled runs whose poll failed (logged; the sweep went on).
    pub errors: u32,
    /// Waiting runs not polled because the sweep's time box ran out: the next sweep starts
    /// with them (polled runs move to the back of the waiting order). Absent when 0.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub remaining: u32,
    /// RUNNING releases whose execution had ended, ended by the reconciler (or API claims
    /// whose execution never started, given up). Absent when 0.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub reconciled: u32,
}

fn is_zero(n: &u32) -> bool {
    *n == 0
}

/// record-state's `recordRelease` payload.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RecordReleaseRequest {
    pub release_id: String,
    pub execution_name: String,
    pub status: ReleaseStatus,
    /// The caught error (`{"Error": .., "Cause": ..}`) on the failure path.
    #[serde(default)]
    pub error: Option<CaughtError>,
}

/// A Step Functions Catch's error output.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CaughtError {
    #[serde(rename = "Error")]
    pub error: String,
    #[serde(rename = "Cause", default)]
    pub cause: Option<String>,
}

/// record-state's payloads: the state machine's `recordRelease`, or a CodePipeline
/// "Pipeline Execution State Change" event from EventBridge (decoded into
/// [`PipelineStateChange`] by [`crate::usecases::decode_state_change`]).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "action", rename_all = "camelCase")]
pub enum RecordRequest {
    RecordRelease(RecordReleaseRequest),
}

/// A decoded CodePipeline execution state change.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PipelineStateChange {
    pub pipeline: String,
    pub execution_id: String,
    pub status: RunStatus,
    pub at: time::OffsetDateTime,
}

/// The output a waiting RunPipeline task receives through SendTaskSuccess.
pub type RunOutcome = RunResponse;

//! The use cases: what each Lambda (and each Task of the local run) does, over the ports.

mod api;
mod check;
mod gate;
mod lifecycle;
mod operate;
mod reconcile;
mod record;
mod runs;
mod sweep;
mod waits;

pub use api::{get_release, submit_release, SubmitOutcome};
pub use check::{check_manifest, claim_manifest, find_missing_pipelines, LOCAL_REQUESTER};
pub use gate::{job_message, observe_gate, run_health_gate, GateDecision};
pub use lifecycle::{
    change_release, change_release_with_runs, finish_release, publish, record_run_start,
    record_run_status, request_stop, Writer,
};
pub use operate::{
    approval_timed_out, await_approval, cancel_release, decide_approval, deliver_decisions,
    retry_release, Decision, Operated, APPROVAL_REJECTED, APPROVAL_TIMED_OUT, CANCELLED,
};
pub use reconcile::{
    decode_execution_event, reconcile_execution, reconcile_running, ExecutionEnd, Reconciled,
    SweepReconciled, ABANDONED_CLAIM_AFTER, RELEASE_NOT_RECORDED,
};
pub use record::{
    decode_state_change, record_release, record_state_change, ChangeOutcome, APPROVAL_ERRORS,
};
pub use runs::{
    await_pipeline, client_request_token, start_pipeline, stop_running, stop_timed_out,
    MAX_STOP_ATTEMPTS, START_THROTTLE_BUDGET, STOP_ABANDON_AFTER,
};
pub use sweep::{sweep, sweep_with, SweepOptions, SWEEP_BUDGET, SWEEP_PARALLELISM};
pub use waits::{
    await_bake, await_gate, halt_view, lift_halt, reevaluate_waits, set_halt, GatesResponse,
    BAKE_FAILED, GATE_TIMED_OUT,
};

use crate::error::TaskError;
use crate::ports::{ReleaseStore, RunKey};
use crate::release::{ReleaseId, RunRecord};

/// Parses a release id that the state machine passed along.
fn release_id(raw: &str) -> Result<ReleaseId, TaskError> {
    ReleaseId::parse(raw).map_err(|m| TaskError::BadInput(format!("releaseId {raw:?} {m}")))
}

/// Loads a run the state machine named; a run it names must exist.
async fn load_run(
    store: &dyn ReleaseStore,
    release_id: &ReleaseId,
    pipeline: &str,
) -> Result<RunRecord, TaskError> {
    store.get_run(release_id, pipeline).await?.ok_or_else(|| {
        TaskError::NotFound(format!("release {release_id} has no pipeline {pipeline:?}"))
    })
}

fn key(release_id: &ReleaseId, pipeline: &str) -> RunKey {
    RunKey {
        release_id: release_id.clone(),
        pipeline: pipeline.to_owned(),
    }
}

pub use crate::ports::RunPorts;

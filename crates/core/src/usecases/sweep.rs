//! The scheduled sweep: the safety net under the state-change events (issue 9, fault 8).
//!
//! Every 5 minutes (an EventBridge schedule) poll-execution lists the waiting runs and polls
//! each: a busy start is retried, the status is asked of CodePipeline and recorded, and a
//! terminal run's token is completed. It scales:
//!
//! - **Bounded parallel polls**: up to [`SweepOptions::parallelism`] (default
//!   [`SWEEP_PARALLELISM`]) polls at once, so 2,000 waiting runs take seconds, not one
//!   CodePipeline round trip each in a row.
//! - **Time-boxed**: no new poll starts once [`SweepOptions::budget`] (default
//!   [`SWEEP_BUDGET`], 90 s of poll-execution's 120 s timeout) has passed since the sweep began,
//!   measured on the [`Clock`](crate::ports::Clock) port (the local run's clock is virtual).
//!   The polls already started finish. [`SweepResponse::remaining`] says how many were left.
//! - **Continuing where it stopped**: each polled run is moved to the back of
//!   [`ReleaseStore::waiting_runs`](crate::ports::ReleaseStore::waiting_runs)' order
//!   (`touch_waiting`), so the next sweep starts with the runs this one did not reach.
//! - **One bad run never stops it**: a poll that fails is logged and counted in
//!   [`SweepResponse::errors`]; the store skips undecodable items itself.
//! - **Scoped**: `{"action": "sweep", "releaseId": "r1"}` polls only that release's waiting
//!   runs (one read of the release), as the local runner asks, so two local runs sharing a
//!   state directory never poll each other's runs. EventBridge's Scheduled Event is unscoped.

use std::collections::HashSet;
use std::time::Duration;

use futures::stream::{self, StreamExt};

use super::reconcile::reconcile_running;
use super::runs::{complete_if_terminal, refresh, retry_busy_start, settle_ended};
use super::{key, RunPorts};
use crate::error::TaskError;
use crate::release::{ReleaseId, RunRecord};
use crate::tasks::SweepResponse;

/// How many runs one sweep polls at once by default. Each poll is a few DynamoDB and
/// CodePipeline calls; 16 keeps well under CodePipeline's GetPipelineExecution rate
/// (docs: 20 per second per account, bursts allowed) at typical latencies while making a
/// 2,000-run sweep a matter of seconds.
pub const SWEEP_PARALLELISM: usize = 16;

/// How long a sweep starts new polls by default: poll-execution's timeout is 120 s; the
/// polls in flight at the deadline and the answer fit in the remaining 30 s.
pub const SWEEP_BUDGET: Duration = Duration::from_secs(90);

/// How one sweep runs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SweepOptions {
    /// Polls in flight at once (at least 1).
    pub parallelism: usize,
    /// No poll starts after this much time (on the clock port) since the sweep began.
    pub budget: Duration,
    /// Only this release's waiting runs (the local runner's scoped sweep); `None`: all.
    pub release_id: Option<ReleaseId>,
}

impl Default for SweepOptions {
    fn default() -> Self {
        SweepOptions {
            parallelism: SWEEP_PARALLELISM,
            budget: SWEEP_BUDGET,
            release_id: None,
        }
    }
}

impl SweepOptions {
    /// The default sweep, scoped to one release.
    pub fn for_release(release_id: ReleaseId) -> Self {
        SweepOptions {
            release_id: Some(release_id),
            ..SweepOptions::default()
        }
    }
}

/// The scheduled sweep over every waiting run, with the default options: polls the waiting
/// runs and completes the tokens of finished ones, so a lost state-change event costs
/// minutes, not the release.
pub async fn sweep(ports: &RunPorts<'_>) -> Result<SweepResponse, TaskError> {
    sweep_with(ports, &SweepOptions::default()).await
}

/// How one poll ended.
enum Polled {
    Completed,
    Waiting,
    Failed,
}

/// The sweep with explicit options (see the module documentation). Fails only when the
/// waiting runs cannot be listed at all.
pub async fn sweep_with(
    ports: &RunPorts<'_>,
    options: &SweepOptions,
) -> Result<SweepResponse, TaskError> {
    let began = ports.clock.now();
    // `None`: a budget too large to add to the clock's time never runs out.
    let deadline = time::Duration::try_from(options.budget)
        .ok()
        .and_then(|b| began.checked_add(b));
    // The reconciler's net (issue 9, fault 2): a RUNNING release whose execution ended is
    // ended, its pipelines stopped; the polls below then settle those runs.
    let reconciled = reconcile_running(options.release_id.as_ref(), ports)
        .await
        .unwrap_or_else(|e| {
            tracing::warn!(error = %e, "sweep could not list the RUNNING releases to reconcile");
            Default::default()
        });
    let runs = waiting(ports, options.release_id.as_ref()).await?;
    let total = runs.len();

    let mut started = 0usize;
    let mut touch_failures = 0u32;
    let mut first_touch_error = None;
    let mut out = SweepResponse {
        reconciled: reconciled.ended + reconciled.given_up,
        ..SweepResponse::default()
    };
    let mut polls = stream::iter(runs)
        // Checked as each run is taken, i.e. when a slot frees: the time box bounds starts.
        .take_while(|_| std::future::ready(deadline.is_none_or(|d| ports.clock.now() < d)))
        .inspect(|_| started += 1)
        .map(|run| poll_one(run, &reconciled.still_running, ports))
        .buffer_unordered(options.parallelism.max(1));
    while let Some((polled, touched)) = polls.next().await {
        out.polled += 1;
        match polled {
            Polled::Completed => out.completed += 1,
            Polled::Waiting => {}
            Polled::Failed => out.errors += 1,
        }
        if let Err(e) = touched {
            touch_failures += 1;
            first_touch_error.get_or_insert(e);
        }
    }
    drop(polls);
    out.remaining = u32::try_from(total - started).unwrap_or(u32::MAX);
    if let Some(e) = first_touch_error {
        // The run stays where it was in the order: the next sweep may poll it early again.
        tracing::warn!(failures = touch_failures, error = %e,
            "sweep could not move polled runs to the back of the waiting order");
    }
    // Events the changes' own publishes could not deliver (issue 11: at least once).
    super::lifecycle::publish(ports.store, ports.bus, options.release_id.as_ref()).await;
    if out.remaining > 0 {
        tracing::warn!(
            polled = out.polled,
            remaining = out.remaining,
            budget_seconds = options.budget.as_secs(),
            "sweep time box reached: the next sweep continues with the runs left"
        );
    }
    Ok(out)
}

/// The waiting runs to poll: one release's (one read of the release), or all, least
/// recently polled first; each run once.
async fn waiting(
    ports: &RunPorts<'_>,
    release_id: Option<&ReleaseId>,
) -> Result<Vec<RunRecord>, TaskError> {
    let runs = match release_id {
        Some(id) => ports
            .store
            .get(id)
            .await?
            .map(|s| s.runs)
            .unwrap_or_default()
            .into_iter()
            .filter(|r| r.task_token.is_some())
            .collect(),
        None => ports.store.waiting_runs().await?,
    };
    let mut seen = HashSet::new();
    Ok(runs
        .into_iter()
        .filter(|r| seen.insert((r.release_id.clone(), r.spec.name.clone())))
        .collect())
}

/// Polls one waiting run (a busy start retried, the status refreshed, a terminal run's token
/// completed), then moves it to the back of the waiting order. A failure is logged here and
/// answered as [`Polled::Failed`]; the touch's own result is returned for the summary.
async fn poll_one(
    run: RunRecord,
    running: &HashSet<ReleaseId>,
    ports: &RunPorts<'_>,
) -> (Polled, Result<(), TaskError>) {
    let k = key(&run.release_id, &run.spec.name);
    let token = run.task_token.clone();
    let result = async {
        let run = retry_busy_start(run, ports).await?;
        let run = settle_ended(run, running, ports).await?;
        let run = refresh(run, ports).await?;
        complete_if_terminal(&run, ports).await
    }
    .await;
    let polled = match result {
        Ok(true) => Polled::Completed,
        Ok(false) => Polled::Waiting,
        Err(e) => {
            tracing::warn!(release = %k.release_id, pipeline = %k.pipeline, error = %e,
                "sweep could not poll a waiting run");
            Polled::Failed
        }
    };
    // Conditional on the token: a run whose token was completed (or replaced) meanwhile is
    // left alone. A failed poll goes to the back too, so it cannot hold the front.
    let touched = match token {
        Some(t) => ports
            .store
            .touch_waiting(&k, &t, ports.clock.now())
            .await
            .map_err(TaskError::from),
        None => Ok(()),
    };
    (polled, touched)
}

//! Assertions on the run records a release stored: how many there are first, then each one.

use rm_core::release::{RunRecord, RunStatus, StoredRelease};
use rm_core::view::ReleaseView;
use rm_local::sim::SimExecution;

/// A run's history as its statuses, in order.
///
/// A status repeated back to back counts once. moto serves DynamoDB requests on threads with
/// no lock around conditional writes (ARCHITECTURE.md §7), so the pipeline's STARTED event can
/// race the start's own write and both pass `rank < :rank` there, recording InProgress twice.
/// DynamoDB evaluates a condition and its write atomically, so on AWS one of them fails the
/// condition (the stores' contract tests this against dynalite, which serializes writes).
pub fn run_statuses(run: &RunRecord) -> Vec<RunStatus> {
    let mut statuses: Vec<RunStatus> = run.history.iter().map(|h| h.status).collect();
    statuses.dedup();
    statuses
}

/// The statuses of the run's history in its current attempt (a retried run's history spans
/// attempts: `[InProgress, Failed]` of attempt 1, then attempt 2's), as [`run_statuses`].
pub fn attempt_statuses(run: &RunRecord) -> Vec<RunStatus> {
    let mut statuses: Vec<RunStatus> = run
        .history
        .iter()
        .filter(|h| h.attempt == run.attempt)
        .map(|h| h.status)
        .collect();
    statuses.dedup();
    statuses
}

fn pretty(release: &StoredRelease) -> String {
    serde_json::to_string_pretty(&ReleaseView::from(release)).unwrap_or_default()
}

/// Asserts the release's run records against `expected` (pipeline, final status) and the
/// emulator's `executions`:
///
/// - there is exactly one run per expected pipeline, and no other (the count first, so an
///   empty list fails);
/// - each run has the expected status;
/// - a run that never started (`NotStarted`) has no execution id, no start, and no history in
///   its attempt, and the emulator has no execution of its pipeline;
/// - a started run has the execution id of the one execution of its pipeline the emulator
///   started, a start time, an end time when its status is terminal, and a history whose
///   entries of its attempt begin with `InProgress`, end with its status and only move forward
///   (no status twice); each earlier attempt's entries only move forward too.
///
/// # Panics
/// With the release as JSON when a check fails.
pub fn assert_runs(
    release: &StoredRelease,
    executions: &[SimExecution],
    expected: &[(&str, RunStatus)],
) {
    let id = &release.release.release_id;
    let mut want: Vec<&str> = expected.iter().map(|(p, _)| *p).collect();
    want.sort_unstable();
    let mut got: Vec<&str> = release.runs.iter().map(RunRecord::pipeline).collect();
    got.sort_unstable();
    assert_eq!(
        release.runs.len(),
        expected.len(),
        "release {id}: {} run records for {} pipelines {want:?}: {got:?}\n{}",
        release.runs.len(),
        expected.len(),
        pretty(release)
    );
    assert_eq!(got, want, "release {id}: the runs' pipelines");
    for (pipeline, status) in expected {
        let run = release
            .runs
            .iter()
            .find(|r| r.pipeline() == *pipeline)
            .unwrap_or_else(|| panic!("release {id}: no run of {pipeline}"));
        let history = attempt_statuses(run);
        let what = format!(
            "release {id}, run {pipeline}: status {}, execution {:?}, history {history:?} in attempt {} ({:?} in all)",
            run.status,
            run.execution_id,
            run.attempt,
            run_statuses(run)
        );
        assert_eq!(run.status, *status, "{what}\n{}", pretty(release));
        let started: Vec<&SimExecution> = executions
            .iter()
            .filter(|e| e.pipeline == *pipeline)
            .collect();
        if *status == RunStatus::NotStarted {
            assert!(
                run.execution_id.is_none() && run.started_at.is_none() && history.is_empty(),
                "{what}: a run that never started"
            );
            assert!(
                started.is_empty(),
                "{what}: the emulator started {started:?}"
            );
            continue;
        }
        assert_eq!(
            started.len(),
            1,
            "{what}: the emulator's executions of {pipeline}: {started:?}"
        );
        assert_eq!(
            run.execution_id.as_deref(),
            Some(started[0].execution_id.as_str()),
            "{what}: not the execution the emulator started"
        );
        assert!(run.started_at.is_some(), "{what}: no startedAt");
        assert_eq!(
            run.ended_at.is_some(),
            status.is_terminal(),
            "{what}: endedAt {:?}",
            run.ended_at
        );
        assert_eq!(
            history.first(),
            Some(&RunStatus::InProgress),
            "{what}: the history starts with the start"
        );
        assert_eq!(
            history.last(),
            Some(status),
            "{what}: the history ends with the status"
        );
        assert!(
            history.windows(2).all(|w| w[0].rank() < w[1].rank()),
            "{what}: the history moves forward, each status once"
        );
        for earlier in 1..run.attempt {
            let mut statuses: Vec<RunStatus> = run
                .history
                .iter()
                .filter(|h| h.attempt == earlier)
                .map(|h| h.status)
                .collect();
            statuses.dedup();
            assert!(
                statuses.windows(2).all(|w| w[0].rank() < w[1].rank()),
                "{what}: attempt {earlier}'s history moves forward, each status once"
            );
        }
    }
}

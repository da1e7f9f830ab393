//! The runs to draw: one per pipeline and attempt, from the pipeline's `history[]`.

use super::model::{At, Ms, Pipeline, Release};
use std::collections::BTreeMap;

/// One pipeline in one attempt of the release.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Run<'a> {
    /// Its pipeline's index in `pipelines[]`.
    pub pipeline: usize,
    pub name: &'a str,
    pub attempt: u32,
    /// The status it ended in (or is in).
    pub status: &'a str,
    pub start: Ms,
    pub end: Ms,
    /// Still under way when the JSON was written: drawn to the release's end.
    pub open: bool,
    pub execution_id: Option<&'a str>,
}

/// The statuses a run is still in while it goes on; any other status ends it.
fn is_open(status: &str) -> bool {
    matches!(status, "InProgress" | "Stopping")
}

/// Every run of the release, pipeline by pipeline in JSON order, attempts in order. A run whose
/// history has only NotStarted entries has no run; one still under way ends at `now`.
pub(super) fn runs(release: &Release, now: Ms) -> Vec<Run<'_>> {
    release
        .pipelines
        .iter()
        .enumerate()
        .flat_map(|(i, p)| runs_of(i, p, now))
        .collect()
}

/// A history entry the run is drawn from.
struct Step<'a> {
    status: &'a str,
    at: Ms,
    execution_id: Option<&'a str>,
}

fn runs_of(index: usize, p: &Pipeline, now: Ms) -> Vec<Run<'_>> {
    let name = p.name.as_deref().unwrap_or("?");
    if p.history.is_empty() {
        return fallback(index, name, p, now).into_iter().collect();
    }
    let mut by_attempt: BTreeMap<u32, Vec<Step>> = BTreeMap::new();
    for h in &p.history {
        let (Some(status), Some(At(at))) = (h.status.as_deref(), h.at) else {
            continue;
        };
        if status != "NotStarted" {
            let step = Step {
                status,
                at,
                execution_id: h.execution_id.as_deref(),
            };
            by_attempt
                .entry(h.attempt.unwrap_or(1))
                .or_default()
                .push(step);
        }
    }
    let attempts: Vec<(u32, Vec<Step>)> = by_attempt.into_iter().collect();
    attempts
        .iter()
        .enumerate()
        .filter_map(|(i, (attempt, steps))| {
            let (first, last) = (steps.first()?, steps.last()?);
            let open = is_open(last.status);
            let end = if open {
                // Under way until the next attempt's run began, or until now.
                attempts
                    .get(i + 1)
                    .and_then(|(_, next)| next.first())
                    .map_or(now, |next| next.at)
            } else {
                last.at
            };
            let execution_id = steps.iter().rev().find_map(|s| s.execution_id).or_else(|| {
                (p.attempt.unwrap_or(1) == *attempt)
                    .then_some(p.execution_id.as_deref())
                    .flatten()
            });
            Some(Run {
                pipeline: index,
                name,
                attempt: *attempt,
                status: last.status,
                start: first.at,
                end: end.max(first.at),
                open,
                execution_id,
            })
        })
        .collect()
}

/// A pipeline recorded without history: its run from `startedAt` / `endedAt`.
fn fallback<'a>(index: usize, name: &'a str, p: &'a Pipeline, now: Ms) -> Option<Run<'a>> {
    let status = p.status.as_deref().filter(|s| *s != "NotStarted")?;
    let At(start) = p.started_at.or(p.ended_at)?;
    let open = is_open(status);
    let end = if open {
        now
    } else {
        p.ended_at.map_or(start, |At(t)| t)
    };
    Some(Run {
        pipeline: index,
        name,
        attempt: p.attempt.unwrap_or(1),
        status,
        start,
        end: end.max(start),
        open,
        execution_id: p.execution_id.as_deref(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn release(pipelines: serde_json::Value) -> Release {
        Release::parse(&json!({"releaseId": "r", "pipelines": pipelines})).unwrap()
    }

    #[test]
    fn a_retried_pipeline_has_a_run_per_attempt() {
        let r = release(json!([{"name": "b", "history": [
            {"status": "InProgress", "at": "2026-12-01T08:00:00Z", "attempt": 1, "executionId": "e1"},
            {"status": "Stopping", "at": "2026-12-01T08:01:00Z", "attempt": 1, "executionId": "e1"},
            {"status": "Stopped", "at": "2026-12-01T08:01:30Z", "attempt": 1, "executionId": "e1"},
            {"status": "InProgress", "at": "2026-12-01T08:05:00Z", "attempt": 2, "executionId": "e2"},
            {"status": "Succeeded", "at": "2026-12-01T08:08:00Z", "attempt": 2, "executionId": "e2"}]}]));
        let runs = runs(&r, 0);
        let got: Vec<_> = runs
            .iter()
            .map(|r| (r.attempt, r.status, r.end - r.start, r.execution_id))
            .collect();
        assert_eq!(
            got,
            vec![
                (1, "Stopped", 90_000, Some("e1")),
                (2, "Succeeded", 180_000, Some("e2"))
            ]
        );
    }

    #[test]
    fn not_started_has_no_run_and_an_open_run_ends_now() {
        let r = release(json!([
            {"name": "a", "history": [{"status": "NotStarted", "at": "2026-12-01T08:00:00Z"}]},
            {"name": "b", "history": [{"status": "InProgress", "at": "2026-12-01T08:00:00Z"}]}]));
        let now = 1_796_112_000_000 + 60_000;
        let runs = runs(&r, now);
        assert_eq!(runs.len(), 1);
        assert_eq!((runs[0].name, runs[0].end, runs[0].open), ("b", now, true));
    }

    #[test]
    fn a_pipeline_without_history_is_drawn_from_its_times() {
        let r = release(json!([{"name": "a", "status": "Failed", "attempt": 2,
            "startedAt": "2026-12-01T08:00:00Z", "endedAt": "2026-12-01T08:00:10Z"}]));
        let runs = runs(&r, 0);
        assert_eq!(
            (runs[0].attempt, runs[0].status, runs[0].end - runs[0].start),
            (2, "Failed", 10_000)
        );
    }
}

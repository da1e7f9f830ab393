//! Is a pipeline unchanged by a manifest, and how long does it take: decided from its past
//! executions alone.

use crate::manifest::PipelineSpec;
use crate::ports::PastExecution;
use crate::release::RunStatus;
use std::collections::BTreeMap;

/// The median duration is of this many most recent succeeded executions.
pub const DURATION_SAMPLE: usize = 10;

/// How many recent executions `plan` reads (one ListPipelineExecutions page) to find the
/// last [`DURATION_SAMPLE`] succeeded ones among failures, stops and supersessions.
pub const PLAN_READS: usize = 100;

/// How many recent executions the start-time check reads: the last finished one is among them
/// unless that many are still running.
pub const START_READS: usize = 10;

/// Whether a pipeline would run anything new.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Unchanged {
    /// Its most recent finished execution succeeded with every revision and variable the
    /// manifest gives it.
    Yes { execution_id: String },
    /// It changes, and why.
    No(String),
    /// The revisions match; the variables of that execution decide (GetPipelineExecution).
    NeedsVariables,
}

/// The most recent finished execution (any trigger, rollbacks included): executions come
/// newest first.
pub fn last_finished(executions: &[PastExecution]) -> Option<&PastExecution> {
    executions.iter().find(|e| e.status.is_terminal())
}

/// Whether `spec` changes its pipeline, given the pipeline's recent executions (newest first)
/// and, once asked for ([`Unchanged::NeedsVariables`]), the variables of the last finished one.
///
/// Unchanged needs sourceRevisions that pin every source action the execution ran (a partial
/// pin runs something not pinned), none of them an `S3_OBJECT_KEY` (an execution's revision
/// ids are object versions, never keys, so a key cannot be compared), equal revision ids, a
/// Succeeded execution, and every manifest variable resolved to the same value.
pub fn unchanged(
    spec: &PipelineSpec,
    executions: &[PastExecution],
    variables: Option<&BTreeMap<String, String>>,
) -> Unchanged {
    if spec.source_revisions.is_empty() {
        return Unchanged::No("the manifest pins no source revision".into());
    }
    let Some(last) = last_finished(executions) else {
        return Unchanged::No("it has no finished execution".into());
    };
    if last.status != RunStatus::Succeeded {
        return Unchanged::No(format!(
            "its last finished execution {} ended {}",
            last.execution_id, last.status
        ));
    }
    if let Some(key) = spec
        .source_revisions
        .iter()
        .find(|r| r.revision_type == "S3_OBJECT_KEY")
    {
        return Unchanged::No(format!(
            "an S3_OBJECT_KEY revision ({}) cannot be compared with an execution's revisions",
            key.action_name
        ));
    }
    for (action, ran) in &last.source_revisions {
        match spec
            .source_revisions
            .iter()
            .find(|r| &r.action_name == action)
        {
            None => {
                return Unchanged::No(format!(
                    "the manifest does not pin source action {action} (it last ran {ran})"
                ))
            }
            Some(r) if &r.revision_value != ran => {
                return Unchanged::No(format!(
                    "source action {action} last ran {ran}, the manifest asks for {}",
                    r.revision_value
                ))
            }
            Some(_) => {}
        }
    }
    if let Some(r) = spec
        .source_revisions
        .iter()
        .find(|r| !last.source_revisions.contains_key(&r.action_name))
    {
        return Unchanged::No(format!(
            "execution {} ran no revision of source action {}",
            last.execution_id, r.action_name
        ));
    }
    if spec.variables.is_empty() {
        return Unchanged::Yes {
            execution_id: last.execution_id.clone(),
        };
    }
    let Some(ran) = variables else {
        return Unchanged::NeedsVariables;
    };
    for (name, value) in &spec.variables {
        match ran.get(name) {
            Some(v) if v == value => {}
            Some(v) => {
                return Unchanged::No(format!(
                    "variable {name} was {v:?}, the manifest asks for {value:?}"
                ))
            }
            None => {
                return Unchanged::No(format!(
                    "execution {} ran without variable {name}",
                    last.execution_id
                ))
            }
        }
    }
    Unchanged::Yes {
        execution_id: last.execution_id.clone(),
    }
}

/// The median duration, in whole seconds, of the most recent [`DURATION_SAMPLE`] succeeded
/// executions among `executions` (newest first; start to last update), and how many there
/// were.
pub fn median_seconds(executions: &[PastExecution]) -> (Option<u64>, usize) {
    let mut durations: Vec<i64> = executions
        .iter()
        .filter(|e| e.status == RunStatus::Succeeded)
        .filter_map(|e| Some((e.last_update? - e.started_at?).whole_seconds()))
        .filter(|s| *s >= 0)
        .take(DURATION_SAMPLE)
        .collect();
    durations.sort_unstable();
    let n = durations.len();
    let median = match n {
        0 => None,
        _ if n % 2 == 1 => Some(durations[n / 2]),
        _ => Some((durations[n / 2 - 1] + durations[n / 2]) / 2),
    };
    (median.map(|s| s as u64), n)
}

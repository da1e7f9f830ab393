//! What a manifest is, once read and validated.

use super::DEFAULT_TIMEOUT_MINUTES;
use crate::release::ReleaseId;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// What to do with the other pipelines when one fails.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum OnFailure {
    /// Stop the running siblings (the default).
    #[default]
    Stop,
    /// Let them finish; start no later wave.
    Continue,
}

impl OnFailure {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Stop => "stop",
            Self::Continue => "continue",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "stop" => Some(Self::Stop),
            "continue" => Some(Self::Continue),
            _ => None,
        }
    }
}

/// A source revision override for StartPipelineExecution.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SourceRevision {
    pub action_name: String,
    pub revision_type: String,
    pub revision_value: String,
}

/// One pipeline of a release, normalized.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PipelineSpec {
    pub name: String,
    pub wave: u32,
    /// Pipeline-level variables for StartPipelineExecution, by name.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub variables: BTreeMap<String, String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub source_revisions: Vec<SourceRevision>,
    pub timeout_minutes: u32,
}

impl PipelineSpec {
    pub fn new(name: impl Into<String>, wave: u32) -> Self {
        Self {
            name: name.into(),
            wave,
            variables: BTreeMap::new(),
            source_revisions: Vec::new(),
            timeout_minutes: DEFAULT_TIMEOUT_MINUTES,
        }
    }

    pub fn timeout_seconds(&self) -> u64 {
        u64::from(self.timeout_minutes) * 60
    }
}

/// A validated, normalized manifest.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Manifest {
    pub release_id: ReleaseId,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    pub pipelines: Vec<PipelineSpec>,
    pub max_concurrency: u32,
    pub on_failure: OnFailure,
    /// Waves that wait for a human's approval before they start (ascending).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub approvals: Vec<u32>,
    /// How long an approval waits before the release fails.
    #[serde(
        default = "default_approval_timeout",
        skip_serializing_if = "is_default_approval_timeout"
    )]
    pub approval_timeout_minutes: u32,
    /// The gate between waves (ARCHITECTURE.md §5a): evaluated before each wave starts, and
    /// `bakeMinutes` after each wave.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gates: Option<crate::gate::GateSettings>,
    /// Do not start a pipeline whose last finished execution succeeded with the manifest's
    /// source revisions and variables (decided when its wave starts); its run is `Skipped`.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub skip_unchanged: bool,
}

fn default_approval_timeout() -> u32 {
    super::DEFAULT_APPROVAL_TIMEOUT_MINUTES
}

// Serde's skip_serializing_if takes a reference.
#[allow(clippy::trivially_copy_pass_by_ref)]
fn is_default_approval_timeout(m: &u32) -> bool {
    *m == super::DEFAULT_APPROVAL_TIMEOUT_MINUTES
}

/// The bounded wait for a failed release's running pipelines to stop (StopRunning: 20 attempts
/// 30 s apart), in minutes.
pub const STOP_WAIT_MINUTES: u64 = 10;

/// The release state machine's TimeoutSeconds (30 days), in minutes: a manifest whose worst
/// case exceeds it is rejected.
pub const MAX_RELEASE_MINUTES: u64 = 30 * 24 * 60;

/// A wave: the pipelines started together, in manifest order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Wave<'a> {
    pub number: u32,
    pub pipelines: Vec<&'a PipelineSpec>,
}

impl Manifest {
    /// How long the release can take at worst, in minutes: wave after wave, each pipeline
    /// running to its `timeoutMinutes` (busy time included: a start is retried only within
    /// it), `maxConcurrency` at a time in manifest order as the Map state takes them, then the
    /// bounded wait for the stops after a failure; with `gates`, each wave may also wait
    /// `maxWaitMinutes` for its gate and bake `bakeMinutes` (halted time is not bounded: a halt
    /// outlasting the execution's limit ends it). What the execution's fixed TimeoutSeconds must
    /// cover (issue 9).
    pub fn worst_case_minutes(&self) -> u64 {
        let slots = self.max_concurrency.max(1) as usize;
        let waves: u64 = self
            .waves()
            .iter()
            .map(|wave| {
                // List scheduling: each pipeline takes the slot that frees first.
                let mut free = std::collections::BinaryHeap::new();
                for _ in 0..slots.min(wave.pipelines.len()) {
                    free.push(std::cmp::Reverse(0u64));
                }
                let mut end = 0;
                for p in &wave.pipelines {
                    let std::cmp::Reverse(at) = free.pop().unwrap_or(std::cmp::Reverse(end));
                    let done = at + u64::from(p.timeout_minutes);
                    end = end.max(done);
                    free.push(std::cmp::Reverse(done));
                }
                end
            })
            .sum();
        let approvals = self.approvals.len() as u64 * u64::from(self.approval_timeout_minutes);
        waves + approvals + self.gate_minutes() + STOP_WAIT_MINUTES
    }

    /// The gates' share of [`Manifest::worst_case_minutes`]: per wave, `maxWaitMinutes` closed
    /// before it and `bakeMinutes` after it.
    pub fn gate_minutes(&self) -> u64 {
        self.gates.as_ref().map_or(0, |g| {
            let per_wave = u64::from(g.max_wait_minutes()) + u64::from(g.bake_minutes);
            self.waves().len() as u64 * per_wave
        })
    }

    /// The waves in ascending order, each with its pipelines in manifest order.
    pub fn waves(&self) -> Vec<Wave<'_>> {
        let mut numbers: Vec<u32> = self.pipelines.iter().map(|p| p.wave).collect();
        numbers.sort_unstable();
        numbers.dedup();
        numbers
            .into_iter()
            .map(|number| Wave {
                number,
                pipelines: self.pipelines.iter().filter(|p| p.wave == number).collect(),
            })
            .collect()
    }

    pub fn pipeline(&self, name: &str) -> Option<&PipelineSpec> {
        self.pipelines.iter().find(|p| p.name == name)
    }
}

//! Step Functions task tokens of the local run: the engine's own token table.

use crate::sim::SimPipelines;
use rm_core::error::PortError;
use rm_core::ports::{PortResult, TaskTokens, TokenDelivery};
use rm_states::TokenError;
use serde_json::Value;

/// [`TaskTokens`] backed by the engine's [`rm_states::TaskTokens`]. InvalidToken and
/// TaskTimedOut mean the task already ended, as with SendTaskSuccess on AWS. With the
/// simulated service, its `sendFailures` fail the first sends of a pipeline's waiting task.
#[derive(Clone)]
pub struct EngineTokens {
    tokens: rm_states::TaskTokens,
    faults: Option<SimPipelines>,
}

impl EngineTokens {
    pub fn new(tokens: rm_states::TaskTokens) -> Self {
        EngineTokens {
            tokens,
            faults: None,
        }
    }

    /// Sends fail as the sim file's `sendFailures` say.
    pub fn with_faults_of(mut self, sim: SimPipelines) -> Self {
        self.faults = Some(sim);
        self
    }

    /// The sim file's `sendFailures`: the first N sends for a pipeline's waiting task fail
    /// transiently (a throttled or 5xx SendTask* on AWS), before reaching the engine. The
    /// pipeline is the one the completion names (`output.pipeline`, a
    /// [`rm_core::tasks::RunOutcome`]); `fail` names none (core completes waits with `succeed`
    /// only), so it is never failed.
    fn injected(&self, pipeline: Option<&str>, call: &str) -> PortResult<()> {
        match (pipeline, &self.faults) {
            (Some(p), Some(sim)) if sim.send_fails(p) => Err(PortError::Transient(format!(
                "{call} for pipeline {p}: ServiceUnavailable (sim sendFailures)"
            ))),
            _ => Ok(()),
        }
    }
}

fn delivery(r: Result<(), TokenError>) -> TokenDelivery {
    match r {
        Ok(()) => TokenDelivery::Delivered,
        Err(TokenError::InvalidToken | TokenError::TaskTimedOut) => TokenDelivery::AlreadyDone,
    }
}

#[async_trait::async_trait]
impl TaskTokens for EngineTokens {
    async fn succeed(&self, token: &str, output: &Value) -> PortResult<TokenDelivery> {
        self.injected(
            output.get("pipeline").and_then(Value::as_str),
            "SendTaskSuccess",
        )?;
        Ok(delivery(self.tokens.send_success(token, output.clone())))
    }

    async fn fail(&self, token: &str, error: &str, cause: &str) -> PortResult<TokenDelivery> {
        self.injected(None, "SendTaskFailure")?;
        Ok(delivery(self.tokens.send_failure(token, error, cause)))
    }
}

//! Step Functions task tokens of the local run: the engine's own token table.

use rm_core::error::PortError;
use rm_core::ports::{PortResult, TaskTokens, TokenDelivery};
use rm_states::TokenError;
use serde_json::Value;

/// [`TaskTokens`] backed by the engine's [`rm_states::TaskTokens`]. InvalidToken and
/// TaskTimedOut mean the task already ended, as with SendTaskSuccess on AWS.
#[derive(Debug, Clone)]
pub struct EngineTokens(pub rm_states::TaskTokens);

fn delivery(r: Result<(), TokenError>) -> TokenDelivery {
    match r {
        Ok(()) => TokenDelivery::Delivered,
        Err(TokenError::InvalidToken | TokenError::TaskTimedOut) => TokenDelivery::AlreadyDone,
    }
}

/// The sim file's `sendFailures`: the first N sends for a pipeline's waiting task fail
/// transiently (a throttled or 5xx SendTask* on AWS), before reaching the engine. The pipeline
/// is the one the completion names (`output.pipeline`, a [`rm_core::tasks::RunOutcome`]);
/// `fail` names none (core completes waits with `succeed` only), so it is never failed.
fn injected(pipeline: Option<&str>, call: &str) -> PortResult<()> {
    match pipeline {
        Some(p) if crate::sim::send_fails(p) => Err(PortError::Transient(format!(
            "{call} for pipeline {p}: ServiceUnavailable (sim sendFailures)"
        ))),
        _ => Ok(()),
    }
}

#[async_trait::async_trait]
impl TaskTokens for EngineTokens {
    async fn succeed(&self, token: &str, output: &Value) -> PortResult<TokenDelivery> {
        injected(
            output.get("pipeline").and_then(Value::as_str),
            "SendTaskSuccess",
        )?;
        Ok(delivery(self.0.send_success(token, output.clone())))
    }

    async fn fail(&self, token: &str, error: &str, cause: &str) -> PortResult<TokenDelivery> {
        injected(None, "SendTaskFailure")?;
        Ok(delivery(self.0.send_failure(token, error, cause)))
    }
}

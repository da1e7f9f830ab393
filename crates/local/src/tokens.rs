//! Step Functions task tokens of the local run: the engine's own token table.

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

#[async_trait::async_trait]
impl TaskTokens for EngineTokens {
    async fn succeed(&self, token: &str, output: &Value) -> PortResult<TokenDelivery> {
        Ok(delivery(self.0.send_success(token, output.clone())))
    }

    async fn fail(&self, token: &str, error: &str, cause: &str) -> PortResult<TokenDelivery> {
        Ok(delivery(self.0.send_failure(token, error, cause)))
    }
}

//! Task tokens for `.waitForTaskToken` tasks: SendTaskSuccess / Failure / Heartbeat.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use serde_json::Value;
use thiserror::Error;
use tokio::sync::mpsc;

/// Why a SendTask* call was refused (the AWS API's exceptions).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Error)]
pub enum TokenError {
    /// No task was ever given this token.
    #[error("InvalidToken: the task token is not valid")]
    InvalidToken,
    /// The task already completed, timed out, failed or was aborted.
    #[error("TaskTimedOut: the task of this token is no longer waiting")]
    TaskTimedOut,
}

#[derive(Debug)]
pub(crate) enum TokenMsg {
    Success(Value),
    Failure { error: String, cause: String },
    Heartbeat,
}

#[derive(Debug)]
enum Slot {
    Waiting(mpsc::UnboundedSender<TokenMsg>),
    Closed,
}

#[derive(Debug, Default)]
struct Table {
    slots: HashMap<String, Slot>,
    issued: u64,
}

/// A handle on the task tokens of one execution. `Send + Sync + Clone`: give it to the
/// task handler, simulated services or other tasks.
#[derive(Debug, Clone, Default)]
pub struct TaskTokens {
    inner: Arc<Mutex<Table>>,
    prefix: Arc<str>,
}

/// The waiting side of a token. Dropping it (task done, timed out or aborted) closes the
/// token, so a late SendTask* gets `TaskTimedOut`.
pub(crate) struct TokenWait {
    pub token: String,
    pub rx: mpsc::UnboundedReceiver<TokenMsg>,
    tokens: TaskTokens,
}

impl Drop for TokenWait {
    fn drop(&mut self) {
        self.tokens.close(&self.token);
    }
}

impl TaskTokens {
    pub(crate) fn new(execution_name: &str) -> Self {
        let salt: u32 = rand::random();
        TaskTokens {
            inner: Arc::default(),
            prefix: format!(
                "{}-{salt:08x}",
                execution_name.replace(|c: char| !c.is_ascii_alphanumeric(), "")
            )
            .into(),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Table> {
        // A poisoned lock only means another thread panicked mid-update of a map whose
        // entries are always valid; keep going.
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Issues a new token whose task is waiting for it.
    pub(crate) fn issue(&self) -> TokenWait {
        let (tx, rx) = mpsc::unbounded_channel();
        let mut t = self.lock();
        t.issued += 1;
        let token = format!(
            "AQB{}-{:06}-{:08x}",
            self.prefix,
            t.issued,
            rand::random::<u32>()
        );
        t.slots.insert(token.clone(), Slot::Waiting(tx));
        TokenWait {
            token,
            rx,
            tokens: self.clone(),
        }
    }

    fn close(&self, token: &str) {
        if let Some(slot) = self.lock().slots.get_mut(token) {
            *slot = Slot::Closed;
        }
    }

    fn send(&self, token: &str, msg: TokenMsg, completes: bool) -> Result<(), TokenError> {
        let mut t = self.lock();
        let slot = t.slots.get_mut(token).ok_or(TokenError::InvalidToken)?;
        let Slot::Waiting(tx) = slot else {
            return Err(TokenError::TaskTimedOut);
        };
        if tx.send(msg).is_err() {
            *slot = Slot::Closed;
            return Err(TokenError::TaskTimedOut);
        }
        if completes {
            *slot = Slot::Closed;
        }
        Ok(())
    }

    /// SendTaskSuccess: `output` becomes the task's result.
    pub fn send_success(&self, token: &str, output: Value) -> Result<(), TokenError> {
        self.send(token, TokenMsg::Success(output), true)
    }

    /// SendTaskFailure: the task fails with `error` and `cause`.
    pub fn send_failure(&self, token: &str, error: &str, cause: &str) -> Result<(), TokenError> {
        self.send(
            token,
            TokenMsg::Failure {
                error: error.to_owned(),
                cause: cause.to_owned(),
            },
            true,
        )
    }

    /// SendTaskHeartbeat: restarts the task's HeartbeatSeconds timer.
    pub fn send_heartbeat(&self, token: &str) -> Result<(), TokenError> {
        self.send(token, TokenMsg::Heartbeat, false)
    }

    /// How many tokens are waiting now (for hosts and tests).
    pub fn waiting(&self) -> usize {
        self.lock()
            .slots
            .values()
            .filter(|s| matches!(s, Slot::Waiting(_)))
            .count()
    }
}

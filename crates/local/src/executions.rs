//! The local run's Step Functions: the one execution the runner drives. DescribeExecution
//! answers RUNNING for it while it runs and how it ended after; any other name does not
//! exist here (a local run starts no other execution).

use rm_core::error::PortError;
use rm_core::ports::{ExecutionRunState, ExecutionState, Executions, PortResult};
use serde_json::Value;
use std::sync::Mutex;

pub struct LocalExecutions {
    name: String,
    state: Mutex<ExecutionState>,
}

impl LocalExecutions {
    pub fn new(name: impl Into<String>) -> Self {
        LocalExecutions {
            name: name.into(),
            state: Mutex::new(ExecutionState {
                status: ExecutionRunState::Running,
                error: None,
                cause: None,
            }),
        }
    }

    /// The execution ended: DescribeExecution says so from now on.
    pub fn ended(&self, state: ExecutionState) {
        *self.state.lock().unwrap_or_else(|p| p.into_inner()) = state;
    }
}

#[async_trait::async_trait]
impl Executions for LocalExecutions {
    async fn start(&self, name: &str, _input: &Value) -> PortResult<String> {
        Err(PortError::Other(format!(
            "a local run starts no other execution (asked to start {name})"
        )))
    }

    async fn describe(&self, name: &str) -> PortResult<Option<ExecutionState>> {
        if name != self.name {
            return Ok(None);
        }
        Ok(Some(
            self.state.lock().unwrap_or_else(|p| p.into_inner()).clone(),
        ))
    }
}

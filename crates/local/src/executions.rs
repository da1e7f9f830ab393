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
    /// Stops the engine's execution (StopExecution): set once the execution exists.
    stop: Mutex<Option<rm_states::StopHandle>>,
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
            stop: Mutex::new(None),
        }
    }

    /// StopExecution of this execution stops the engine's through `handle`.
    pub fn set_stop(&self, handle: rm_states::StopHandle) {
        *self.stop.lock().unwrap_or_else(|p| p.into_inner()) = Some(handle);
    }

    /// The execution ended: DescribeExecution says so from now on.
    pub fn ended(&self, state: ExecutionState) {
        *self.state.lock().unwrap_or_else(|p| p.into_inner()) = state;
    }
}

#[async_trait::async_trait]
impl Executions for LocalExecutions {
    /// The runner starts its own execution itself: starting it by its name (a retry's claim
    /// does) answers its ARN; any other execution cannot be started here.
    async fn start(&self, name: &str, _input: &Value) -> PortResult<String> {
        if name == self.name {
            return Ok(format!(
                "arn:aws:states:{}:{}:execution:{}:{name}",
                crate::sim::REGION,
                crate::sim::ACCOUNT,
                crate::runner::STATE_MACHINE_NAME
            ));
        }
        Err(PortError::Other(format!(
            "a local run starts no other execution (asked to start {name})"
        )))
    }

    async fn stop(&self, name: &str, error: &str, cause: &str) -> PortResult<()> {
        if name == self.name {
            if let Some(handle) = self.stop.lock().unwrap_or_else(|p| p.into_inner()).as_ref() {
                handle.stop(Some(error), Some(cause));
            }
        }
        Ok(())
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

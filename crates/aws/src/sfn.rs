//! Step Functions: [`SfnTaskTokens`] (SendTaskSuccess / SendTaskFailure) and [`SfnExecutions`]
//! (StartExecution, for the API; DescribeExecution, for the reconciler's sweep; StopExecution,
//! for a cancel).

use crate::error::{is_service_error, port_error, truncate};
use async_trait::async_trait;
use aws_sdk_sfn::types::ExecutionStatus;
use aws_sdk_sfn::Client;
use rm_core::error::PortError;
use rm_core::ports::{
    ExecutionRunState, ExecutionState, Executions, PortResult, TaskTokens, TokenDelivery,
};
use serde_json::Value;

/// Codes meaning the waiting task already ended (completed, timed out, or its execution
/// stopped): delivering the token again is pointless, not an error.
const ALREADY_DONE_CODES: &[&str] = &["TaskTimedOut", "InvalidToken", "TaskDoesNotExist"];
/// SendTaskFailure's limits.
const MAX_ERROR: usize = 256;
const MAX_CAUSE: usize = 32_768;

fn to_json(value: &Value) -> PortResult<String> {
    serde_json::to_string(value).map_err(|e| PortError::Other(format!("cannot encode JSON: {e}")))
}

/// The [`TaskTokens`] port on Step Functions.
#[derive(Debug, Clone)]
pub struct SfnTaskTokens {
    client: Client,
}

impl SfnTaskTokens {
    pub fn new(client: Client) -> Self {
        Self { client }
    }
}

#[async_trait]
impl TaskTokens for SfnTaskTokens {
    async fn succeed(&self, token: &str, output: &Value) -> PortResult<TokenDelivery> {
        let result = self
            .client
            .send_task_success()
            .task_token(token)
            .output(to_json(output)?)
            .send()
            .await;
        match result {
            Ok(_) => Ok(TokenDelivery::Delivered),
            Err(e)
                if is_service_error(
                    &e,
                    |se| {
                        se.is_task_timed_out()
                            || se.is_invalid_token()
                            || se.is_task_does_not_exist()
                    },
                    ALREADY_DONE_CODES,
                ) =>
            {
                Ok(TokenDelivery::AlreadyDone)
            }
            Err(e) => Err(port_error("Step Functions SendTaskSuccess", &e)),
        }
    }

    async fn fail(&self, token: &str, error: &str, cause: &str) -> PortResult<TokenDelivery> {
        let result = self
            .client
            .send_task_failure()
            .task_token(token)
            .error(truncate(error, MAX_ERROR))
            .cause(truncate(cause, MAX_CAUSE))
            .send()
            .await;
        match result {
            Ok(_) => Ok(TokenDelivery::Delivered),
            Err(e)
                if is_service_error(
                    &e,
                    |se| {
                        se.is_task_timed_out()
                            || se.is_invalid_token()
                            || se.is_task_does_not_exist()
                    },
                    ALREADY_DONE_CODES,
                ) =>
            {
                Ok(TokenDelivery::AlreadyDone)
            }
            Err(e) => Err(port_error("Step Functions SendTaskFailure", &e)),
        }
    }
}

/// DescribeExecution's status as the port names it; `None` for a status this SDK does not know.
fn run_state(status: &ExecutionStatus) -> Option<ExecutionRunState> {
    Some(match status {
        ExecutionStatus::Running => ExecutionRunState::Running,
        ExecutionStatus::Succeeded => ExecutionRunState::Succeeded,
        ExecutionStatus::Failed => ExecutionRunState::Failed,
        ExecutionStatus::TimedOut => ExecutionRunState::TimedOut,
        ExecutionStatus::Aborted => ExecutionRunState::Aborted,
        ExecutionStatus::PendingRedrive => ExecutionRunState::PendingRedrive,
        _ => return None,
    })
}

/// The [`Executions`] port: StartExecution, DescribeExecution and StopExecution on the
/// release state machine.
#[derive(Debug, Clone)]
pub struct SfnExecutions {
    client: Client,
    state_machine_arn: String,
}

impl SfnExecutions {
    /// Starts executions of `state_machine_arn` (the template's `STATE_MACHINE_ARN`).
    pub fn new(client: Client, state_machine_arn: impl Into<String>) -> Self {
        Self {
            client,
            state_machine_arn: state_machine_arn.into(),
        }
    }

    /// The ARN of this state machine's execution `name`:
    /// `arn:aws:states:<region>:<account>:execution:<stateMachine>:<name>`.
    pub fn execution_arn(&self, name: &str) -> String {
        format!(
            "{}:{name}",
            self.state_machine_arn
                .replacen(":stateMachine:", ":execution:", 1)
        )
    }

    /// After ExecutionAlreadyExists: the existing execution is ours when its input is the
    /// same (a retried API call); otherwise the name is taken.
    async fn existing_with_same_input(&self, name: &str, input: &Value) -> PortResult<String> {
        let arn = self.execution_arn(name);
        let out = self
            .client
            .describe_execution()
            .execution_arn(&arn)
            .send()
            .await
            .map_err(|e| port_error(&format!("Step Functions DescribeExecution {arn}"), &e))?;
        let existing: Option<Value> = out
            .input
            .as_deref()
            .and_then(|text| serde_json::from_str(text).ok());
        if existing.as_ref() == Some(input) {
            Ok(out.execution_arn)
        } else {
            Err(PortError::ConditionFailed(format!(
                "an execution named {name} already exists with a different input"
            )))
        }
    }
}

#[async_trait]
impl Executions for SfnExecutions {
    async fn describe(&self, name: &str) -> PortResult<Option<ExecutionState>> {
        let arn = self.execution_arn(name);
        let result = self
            .client
            .describe_execution()
            .execution_arn(&arn)
            .send()
            .await;
        let out = match result {
            Ok(out) => out,
            Err(e)
                if is_service_error(
                    &e,
                    |se| se.is_execution_does_not_exist(),
                    &["ExecutionDoesNotExist"],
                ) =>
            {
                return Ok(None)
            }
            Err(e) => {
                return Err(port_error(
                    &format!("Step Functions DescribeExecution {arn}"),
                    &e,
                ))
            }
        };
        let status = run_state(out.status()).ok_or_else(|| {
            PortError::Other(format!(
                "Step Functions reported an unknown status {:?} for execution {arn}",
                out.status().as_str()
            ))
        })?;
        Ok(Some(ExecutionState {
            status,
            error: out.error,
            cause: out.cause,
        }))
    }

    /// StopExecution of `name` (a cancel). ExecutionDoesNotExist is not an error (nothing to
    /// stop); neither is an execution that has already ended: Step Functions answers a stop of
    /// an ended execution without stopping anything, and should it refuse it instead (a
    /// ValidationException), DescribeExecution decides: ended is done, still running is the
    /// error.
    async fn stop(&self, name: &str, error: &str, cause: &str) -> PortResult<()> {
        let arn = self.execution_arn(name);
        let result = self
            .client
            .stop_execution()
            .execution_arn(&arn)
            .error(truncate(error, MAX_ERROR))
            .cause(truncate(cause, MAX_CAUSE))
            .send()
            .await;
        let e = match result {
            Ok(_) => return Ok(()),
            Err(e)
                if is_service_error(
                    &e,
                    |se| se.is_execution_does_not_exist(),
                    &["ExecutionDoesNotExist"],
                ) =>
            {
                tracing::info!(execution = %arn, "StopExecution: no such execution; nothing to stop");
                return Ok(());
            }
            Err(e) => port_error(&format!("Step Functions StopExecution {arn}"), &e),
        };
        if matches!(e, PortError::Throttled(_) | PortError::Transient(_)) {
            return Err(e);
        }
        match self.describe(name).await? {
            Some(state) if state.status == ExecutionRunState::Running => Err(e),
            state => {
                tracing::info!(execution = %arn, status = ?state.map(|s| s.status), refused = %e,
                    "StopExecution refused for an execution that is not running; nothing to stop");
                Ok(())
            }
        }
    }

    async fn start(&self, name: &str, input: &Value) -> PortResult<String> {
        let result = self
            .client
            .start_execution()
            .state_machine_arn(&self.state_machine_arn)
            .name(name)
            .input(to_json(input)?)
            .send()
            .await;
        match result {
            Ok(out) => Ok(out.execution_arn),
            Err(e)
                if is_service_error(
                    &e,
                    |se| se.is_execution_already_exists(),
                    &["ExecutionAlreadyExists"],
                ) =>
            {
                self.existing_with_same_input(name, input).await
            }
            Err(e) => Err(port_error(
                &format!("Step Functions StartExecution {name}"),
                &e,
            )),
        }
    }
}

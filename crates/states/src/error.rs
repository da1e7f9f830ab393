//! Error types: load-time refusals and runtime (Step Functions) errors.

use thiserror::Error;

/// A definition that cannot be loaded: invalid JSON, an invalid or unsupported field.
///
/// `state` is the path of the state (`"Outer/Map/Inner"` for states inside a Map or
/// Parallel branch; empty for top-level fields), `field` the offending field.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[error("{}", display_load_error(.state, .field, .message))]
pub struct LoadError {
    pub state: String,
    pub field: String,
    pub message: String,
}

fn display_load_error(state: &str, field: &str, message: &str) -> String {
    match (state.is_empty(), field.is_empty()) {
        (true, true) => format!("invalid state machine definition: {message}"),
        (true, false) => format!("invalid state machine definition: field '{field}': {message}"),
        (false, true) => format!("invalid state machine definition: state '{state}': {message}"),
        (false, false) => {
            format!("invalid state machine definition: state '{state}', field '{field}': {message}")
        }
    }
}

impl LoadError {
    pub(crate) fn new(state: &str, field: &str, message: impl Into<String>) -> Self {
        LoadError {
            state: state.to_owned(),
            field: field.to_owned(),
            message: message.into(),
        }
    }
}

/// Step Functions' predefined error names.
pub mod names {
    pub const ALL: &str = "States.ALL";
    pub const RUNTIME: &str = "States.Runtime";
    pub const TASK_FAILED: &str = "States.TaskFailed";
    pub const TIMEOUT: &str = "States.Timeout";
    pub const HEARTBEAT_TIMEOUT: &str = "States.HeartbeatTimeout";
    pub const NO_CHOICE_MATCHED: &str = "States.NoChoiceMatched";
    pub const INTRINSIC_FAILURE: &str = "States.IntrinsicFailure";
    pub const DATA_LIMIT_EXCEEDED: &str = "States.DataLimitExceeded";
    pub const BRANCH_FAILED: &str = "States.BranchFailed";
}

/// A runtime error as Step Functions reports it: an error name and a cause.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[error("{error}: {cause}")]
pub struct StatesError {
    pub error: String,
    pub cause: String,
}

impl StatesError {
    pub fn new(error: impl Into<String>, cause: impl Into<String>) -> Self {
        StatesError {
            error: error.into(),
            cause: cause.into(),
        }
    }

    pub(crate) fn runtime(cause: impl Into<String>) -> Self {
        StatesError::new(names::RUNTIME, cause)
    }

    /// States.Runtime and States.DataLimitExceeded end the execution: no Retry or Catch
    /// applies to them (AWS: "A retry or catch on States.ALL won't catch States.Runtime").
    pub(crate) fn is_fatal(&self) -> bool {
        self.error == names::RUNTIME || self.error == names::DATA_LIMIT_EXCEEDED
    }
}

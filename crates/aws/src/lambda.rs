//! [`LambdaError`]: a task's error as the Lambda runtime reports it, so the state machine's
//! Retry and Catch match on `errorType` (`Throttled`, `Transient`, `ManifestInvalid`, ...).

use lambda_runtime::Diagnostic;
use rm_core::error::{PortError, TaskError};
use std::fmt;

/// A handler's error: wraps core's [`TaskError`]; its `errorType` is
/// [`TaskError::error_type`] and its `errorMessage` the error's text.
#[derive(Debug)]
pub struct LambdaError(pub TaskError);

impl LambdaError {
    pub fn error_type(&self) -> &'static str {
        self.0.error_type()
    }
}

impl fmt::Display for LambdaError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

impl std::error::Error for LambdaError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        Some(&self.0)
    }
}

impl From<TaskError> for LambdaError {
    fn from(e: TaskError) -> Self {
        Self(e)
    }
}

impl From<PortError> for LambdaError {
    fn from(e: PortError) -> Self {
        Self(e.into())
    }
}

impl From<LambdaError> for Diagnostic {
    fn from(e: LambdaError) -> Diagnostic {
        Diagnostic {
            error_type: e.error_type().to_owned(),
            error_message: e.0.to_string(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn error_type_is_the_task_error_kind() {
        let d: Diagnostic = LambdaError(TaskError::Throttled("slow down".into())).into();
        assert_eq!(d.error_type, "Throttled");
        assert_eq!(d.error_message, "throttled: slow down");
        let d: Diagnostic = LambdaError::from(PortError::ConditionFailed("race".into())).into();
        assert_eq!(d.error_type, "Transient");
        let d: Diagnostic = LambdaError(TaskError::PipelineNotStartable("x".into())).into();
        assert_eq!(d.error_type, "PipelineNotStartable");
    }
}

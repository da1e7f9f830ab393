//! Errors a user or the state machine can meet.

use serde::Serialize;
use std::fmt;

/// One problem found in a manifest, with the JSONPath of the offending value.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ValidationError {
    /// Where: `$`, `$.releaseId`, `$.pipelines[2].name`, ...
    pub path: String,
    /// What is wrong, and what would be right.
    pub message: String,
}

impl ValidationError {
    pub fn new(path: impl Into<String>, message: impl Into<String>) -> Self {
        Self {
            path: path.into(),
            message: message.into(),
        }
    }
}

impl fmt::Display for ValidationError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.path, self.message)
    }
}

/// Every problem of a rejected manifest, reported at once.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rejection(pub Vec<ValidationError>);

impl fmt::Display for Rejection {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let n = self.0.len();
        write!(
            f,
            "the manifest is invalid ({n} problem{}): ",
            if n == 1 { "" } else { "s" }
        )?;
        for (i, e) in self.0.iter().enumerate() {
            if i > 0 {
                f.write_str("; ")?;
            }
            write!(f, "{e}")?;
        }
        Ok(())
    }
}

/// The error a task (Lambda handler or local task) ends with. Its [`TaskError::error_type`]
/// (the variant's name) becomes the Lambda `errorType`, which the state machine's Retry and
/// Catch match on: retryable kinds (`Throttled`, `Transient`) are retried with backoff, the
/// others are fatal.
#[derive(Debug, thiserror::Error, strum::IntoStaticStr, strum::EnumDiscriminants)]
#[strum_discriminants(name(TaskErrorKind), derive(strum::VariantNames))]
pub enum TaskError {
    /// The manifest failed validation or names pipelines that do not exist. Nothing recorded.
    #[error("{0}")]
    ManifestInvalid(Rejection),
    /// The manifest object could not be read (missing, too large, unreadable).
    #[error("{0}")]
    ManifestUnreadable(String),
    /// The release id is claimed by another execution.
    #[error("release {0} was already requested by another execution")]
    Duplicate(String),
    /// The input of a task is not what the state machine sends.
    #[error("bad task input: {0}")]
    BadInput(String),
    /// A release or run the task needs is not in the store.
    #[error("{0}")]
    NotFound(String),
    /// An AWS API throttled us: retry with backoff and jitter.
    #[error("throttled: {0}")]
    Throttled(String),
    /// A transient failure (network, 5xx, conditional race): safe to retry.
    #[error("transient failure: {0}")]
    Transient(String),
    /// The pipeline cannot be started (disabled transition, version not found, ...).
    #[error("{0}")]
    PipelineNotStartable(String),
    /// The release already ended (SUCCEEDED, FAILED, CANCELLED): nothing of it is started or
    /// rewritten, e.g. by an execution restarted with RedriveExecution. Not retryable.
    #[error("{0}")]
    ReleaseEnded(String),
    /// The release is not in a state that allows the request (cancel an ended release, retry
    /// a RUNNING one, approve a wave that is not waiting): API 409, CLI exit 3.
    #[error("{0}")]
    Conflict(String),
    /// Anything else: not retryable.
    #[error("{0}")]
    Internal(String),
}

impl TaskError {
    /// Every name [`TaskError::error_type`] answers: what the state machine's Retry and Catch
    /// match on. Derived from the enum, so a new variant is listed by itself.
    pub const ERROR_TYPES: &'static [&'static str] =
        <TaskErrorKind as strum::VariantNames>::VARIANTS;

    /// The Lambda `errorType` / Step Functions error name: the variant's name.
    pub fn error_type(&self) -> &'static str {
        self.into()
    }

    pub fn is_retryable(&self) -> bool {
        matches!(self, Self::Throttled(_) | Self::Transient(_))
    }
}

/// The error every port returns: adapters map their service's errors onto these kinds.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PortError {
    #[error("throttled: {0}")]
    Throttled(String),
    #[error("transient: {0}")]
    Transient(String),
    #[error("not found: {0}")]
    NotFound(String),
    /// A conditional write's condition did not hold.
    #[error("condition failed: {0}")]
    ConditionFailed(String),
    #[error("{0}")]
    Other(String),
}

impl From<PortError> for TaskError {
    fn from(e: PortError) -> Self {
        match e {
            PortError::Throttled(m) => TaskError::Throttled(m),
            PortError::Transient(m) | PortError::ConditionFailed(m) => TaskError::Transient(m),
            PortError::NotFound(m) => TaskError::NotFound(m),
            PortError::Other(m) => TaskError::Internal(m),
        }
    }
}

#[cfg(test)]
mod error_type_tests {
    use super::*;

    #[test]
    fn error_types_are_the_variant_names_the_state_machine_matches() {
        assert_eq!(
            TaskError::ERROR_TYPES,
            [
                "ManifestInvalid",
                "ManifestUnreadable",
                "Duplicate",
                "BadInput",
                "NotFound",
                "Throttled",
                "Transient",
                "PipelineNotStartable",
                "ReleaseEnded",
                "Conflict",
                "Internal",
            ]
        );
        assert_eq!(TaskError::Throttled("x".into()).error_type(), "Throttled");
        assert_eq!(
            TaskError::ManifestInvalid(Rejection(vec![])).error_type(),
            "ManifestInvalid"
        );
    }

    /// Every custom error name in the definition's Retry and Catch is a TaskError kind (or a
    /// Step Functions / Lambda one), so a renamed variant cannot silently stop matching.
    #[test]
    fn the_definition_matches_only_known_error_types() {
        let definition: serde_json::Value =
            serde_json::from_str(include_str!("../../../statemachine/release.asl.json")).unwrap();
        let mut names = Vec::new();
        collect_error_equals(&definition, &mut names);
        assert!(!names.is_empty());
        for name in names {
            assert!(
                name.starts_with("States.")
                    || name.starts_with("Lambda.")
                    || TaskError::ERROR_TYPES.contains(&name.as_str())
                    || ["PipelineFailed", "ReleaseFailed"].contains(&name.as_str()),
                "the definition matches an unknown error {name:?}"
            );
        }
    }

    fn collect_error_equals(v: &serde_json::Value, out: &mut Vec<String>) {
        match v {
            serde_json::Value::Object(map) => {
                for (k, v) in map {
                    if k == "ErrorEquals" {
                        out.extend(
                            v.as_array()
                                .into_iter()
                                .flatten()
                                .filter_map(|n| n.as_str().map(str::to_owned)),
                        );
                    } else {
                        collect_error_equals(v, out);
                    }
                }
            }
            serde_json::Value::Array(items) => {
                items.iter().for_each(|i| collect_error_equals(i, out))
            }
            _ => {}
        }
    }
}

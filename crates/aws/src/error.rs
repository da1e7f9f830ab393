//! Maps AWS SDK errors onto core's [`PortError`] kinds, so every adapter reports throttling,
//! transient failures and failed conditions the same way.

// The SDKs share these smithy types; codepipeline's re-exports are the ones every feature set
// has.
use aws_sdk_codepipeline::config::http::HttpResponse;
use aws_sdk_codepipeline::error::{DisplayErrorContext, ProvideErrorMetadata, SdkError};
use rm_core::error::PortError;

/// Error codes AWS services use for throttling.
const THROTTLING_CODES: &[&str] = &[
    "ProvisionedThroughputExceededException",
    "ThrottlingException",
    "Throttling",
    "ThrottledException",
    "RequestLimitExceeded",
    "TooManyRequestsException",
    "LimitExceededException",
    "RequestThrottled",
    "RequestThrottledException",
    "SlowDown",
];

/// Error codes that mean "try again shortly".
const TRANSIENT_CODES: &[&str] = &[
    "InternalServerError",
    "InternalFailure",
    "InternalError",
    // EventBridge's 5xx.
    "InternalException",
    "ServiceUnavailable",
    "ServiceUnavailableException",
    "TransactionConflictException",
    "RequestTimeout",
    "RequestTimeoutException",
];

/// The error code of a service error (`ConditionalCheckFailedException`, ...), if any.
#[cfg_attr(not(feature = "full"), allow(dead_code))]
pub(crate) fn error_code<E, R>(err: &SdkError<E, R>) -> Option<&str>
where
    E: ProvideErrorMetadata,
{
    match err {
        SdkError::ServiceError(se) => se.err().code(),
        _ => None,
    }
}

/// The service's message for an error, or the SDK's description of a client-side failure.
pub(crate) fn error_message<E>(err: &SdkError<E, HttpResponse>) -> String
where
    E: ProvideErrorMetadata + std::error::Error + 'static,
{
    match err {
        SdkError::ServiceError(se) => match (se.err().code(), se.err().message()) {
            (Some(code), Some(msg)) => format!("{code}: {msg}"),
            (Some(code), None) => code.to_owned(),
            // A modeled error's Display names it: "ConflictException: message".
            _ => se.err().to_string(),
        },
        _ => DisplayErrorContext(err).to_string(),
    }
}

/// Maps an SDK error of the call `what` (e.g. `"DynamoDB PutItem"`) onto a [`PortError`]:
/// throttling codes → `Throttled`; 5xx, timeouts, connection failures and unreadable responses →
/// `Transient`; `ConditionalCheckFailedException` → `ConditionFailed`; anything else → `Other`.
pub(crate) fn port_error<E>(what: &str, err: &SdkError<E, HttpResponse>) -> PortError
where
    E: ProvideErrorMetadata + std::error::Error + 'static,
{
    let message = format!("{what}: {}", error_message(err));
    match err {
        SdkError::TimeoutError(_) | SdkError::DispatchFailure(_) | SdkError::ResponseError(_) => {
            PortError::Transient(message)
        }
        SdkError::ServiceError(se) => {
            let code = se.err().code().unwrap_or_default();
            let status = se.raw().status().as_u16();
            if THROTTLING_CODES.contains(&code) || status == 429 {
                PortError::Throttled(message)
            } else if code == "ConditionalCheckFailedException" {
                PortError::ConditionFailed(message)
            } else if TRANSIENT_CODES.contains(&code) || status >= 500 {
                PortError::Transient(message)
            } else {
                PortError::Other(message)
            }
        }
        _ => PortError::Other(message),
    }
}

/// True for a service error that is one of the operation's modeled errors (`modeled`), or
/// that carries one of `codes` (errors the service model does not list for the operation,
/// such as CodePipeline's `PipelineVersionNotFoundException`).
pub(crate) fn is_service_error<E, R>(
    err: &SdkError<E, R>,
    modeled: impl Fn(&E) -> bool,
    codes: &[&str],
) -> bool
where
    E: ProvideErrorMetadata,
{
    match err {
        SdkError::ServiceError(se) => {
            modeled(se.err()) || se.err().code().is_some_and(|c| codes.contains(&c))
        }
        _ => false,
    }
}

/// True for an error the service reports with this code.
#[cfg_attr(not(feature = "full"), allow(dead_code))]
pub(crate) fn has_code<E, R>(err: &SdkError<E, R>, code: &str) -> bool
where
    E: ProvideErrorMetadata,
{
    error_code(err) == Some(code)
}

/// Cuts `text` to at most `max` bytes on a character boundary (API fields have length limits).
pub(crate) fn truncate(text: &str, max: usize) -> &str {
    if text.len() <= max {
        return text;
    }
    let mut end = max;
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    &text[..end]
}

#[cfg(test)]
mod tests {
    use super::truncate;

    #[test]
    fn truncate_respects_char_boundaries() {
        assert_eq!(truncate("abc", 5), "abc");
        assert_eq!(truncate("abcdef", 3), "abc");
        assert_eq!(truncate("aé", 2), "a");
    }
}

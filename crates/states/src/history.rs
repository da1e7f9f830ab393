//! The execution history, in Step Functions' event vocabulary.

use serde::Serialize;
use serde_json::Value;
use time::OffsetDateTime;

/// One history event, as GetExecutionHistory returns it.
///
/// `type` is the AWS `HistoryEventType` (`TaskStateEntered`, `TaskScheduled`,
/// `MapIterationStarted`, `ExecutionSucceeded`, ...). `details` holds the content of the
/// event's `*EventDetails` structure with AWS's field names (`name`, `input`, `output`,
/// `error`, `cause`, `resourceType`, `resource`, `parameters`, `length`, `index`, ...);
/// inputs and outputs are JSON values rather than JSON strings. Events with no details
/// have `null`.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct HistoryEvent {
    pub id: u64,
    /// The event this one follows in its own thread (the execution, a Map iteration or a
    /// Parallel branch); 0 for the first event.
    pub previous_event_id: u64,
    #[serde(with = "time::serde::rfc3339")]
    pub timestamp: OffsetDateTime,
    #[serde(rename = "type")]
    pub r#type: String,
    pub details: Value,
}

/// RFC 3339 in UTC with milliseconds, as Step Functions writes times in the context object.
pub(crate) fn rfc3339_millis(t: OffsetDateTime) -> String {
    let t = t.to_offset(time::UtcOffset::UTC);
    format!(
        "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}.{:03}Z",
        t.year(),
        u8::from(t.month()),
        t.day(),
        t.hour(),
        t.minute(),
        t.second(),
        t.millisecond()
    )
}

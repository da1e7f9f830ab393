//! EventBridge: [`EventBridgeBus`], the [`EventBus`] port on PutEvents (the outbox publisher's
//! notifications, ARCHITECTURE.md §3a "Events").
//!
//! What PutEvents allows, and how it fails (checked against the AWS documentation):
//!
//! - At most 10 entries a call (API reference, PutEvents: `Entries`, "Array Members: Minimum
//!   number of 1 item. Maximum number of 10 items"), and the entries of one call must add up to
//!   less than 256 KB, an entry's size being 14 bytes for `Time` plus the UTF-8 bytes of
//!   `Source`, `DetailType`, `Detail` and each of `Resources`
//!   (<https://docs.aws.amazon.com/eventbridge/latest/userguide/eb-putevent-size.html>,
//!   "Calculating Amazon EventBridge PutEvents event entry size"). A batch that is larger is
//!   sent in several calls here; an entry that alone is too large is never sent (see
//!   [`MAX_REQUEST_BYTES`]).
//! - Partial failure: "if an individual entry within a request fails, EventBridge continues
//!   processing the rest of the entries in the request. A response Entries array can include
//!   both successful and unsuccessful entries. You must detect unsuccessful entries and include
//!   them in a subsequent call"; the response's `Entries` has one entry per request entry, in
//!   the same order; an unsuccessful one has `ErrorCode` and `ErrorMessage` instead of an
//!   `EventId`, and `FailedEntryCount` counts them
//!   (<https://docs.aws.amazon.com/eventbridge/latest/userguide/eb-putevents.html>, "Handling
//!   failures with PutEvents"). `InternalFailure` and `ThrottlingException` are the retryable
//!   entry errors; `AccessDeniedException`, `InvalidArgument`, `MalformedDetail`,
//!   `NotAuthorizedForSourceException`, ... are not (API reference, `PutEventsResultEntry`).
//!   Every rejected entry is answered as rejected, retryable or not: it stays in the outbox
//!   (delivery is at least once), and a non-retryable code is logged as an error, since only a
//!   fix of the stack (a policy, the bus name) lets it through.
//! - A whole call that fails (throttled, 5xx `InternalException`, a timeout) is a
//!   [`PortError`] like every adapter's (`crate::error::port_error`): nothing of it is taken as
//!   delivered.

use crate::error::port_error;
use async_trait::async_trait;
use aws_sdk_eventbridge::primitives::DateTime;
use aws_sdk_eventbridge::types::PutEventsRequestEntry;
use aws_sdk_eventbridge::Client;
use rm_core::error::PortError;
use rm_core::events::{EventBus, ReleaseEvent, PUT_EVENTS_BATCH, SOURCE};
use rm_core::ports::PortResult;

/// The bus events go to when the function's environment names none.
pub const DEFAULT_BUS: &str = "default";
/// The environment variable naming the bus (optional; [`DEFAULT_BUS`] without it).
pub const BUS_ENV: &str = "EVENT_BUS_NAME";
/// The entries of one PutEvents call add up to less than this many bytes (256 KB).
pub const MAX_REQUEST_BYTES: usize = 256 * 1024;
/// What `Time` counts toward an entry's size.
const TIME_BYTES: usize = 14;
/// Entry error codes that a later call may get through (the others need the stack fixed).
const RETRYABLE_ENTRY_CODES: &[&str] = &["InternalFailure", "ThrottlingException"];

/// The [`EventBus`] port on EventBridge's PutEvents.
#[derive(Debug, Clone)]
pub struct EventBridgeBus {
    client: Client,
    bus_name: String,
}

impl EventBridgeBus {
    /// Puts events on the bus `bus_name` (a name or an ARN).
    pub fn new(client: Client, bus_name: impl Into<String>) -> Self {
        Self {
            client,
            bus_name: bus_name.into(),
        }
    }

    /// Puts events on the bus the environment's `EVENT_BUS_NAME` names, else on the account's
    /// default bus.
    pub fn from_env(client: Client) -> Self {
        let bus = std::env::var(BUS_ENV)
            .ok()
            .filter(|b| !b.trim().is_empty())
            .unwrap_or_else(|| DEFAULT_BUS.to_owned());
        Self::new(client, bus)
    }

    pub fn bus_name(&self) -> &str {
        &self.bus_name
    }

    fn entry(&self, event: &ReleaseEvent, detail: String) -> PutEventsRequestEntry {
        PutEventsRequestEntry::builder()
            .source(SOURCE)
            .detail_type(&event.detail_type)
            .time(
                DateTime::from_nanos(event.time.unix_timestamp_nanos())
                    .unwrap_or_else(|_| DateTime::from_secs(event.time.unix_timestamp())),
            )
            .detail(detail)
            .event_bus_name(&self.bus_name)
            .build()
    }

    /// One PutEvents call of `batch` (indexes into the caller's slice, entries built); returns
    /// the indexes that were rejected.
    async fn put_batch(
        &self,
        batch: Vec<(usize, PutEventsRequestEntry)>,
    ) -> PortResult<Vec<usize>> {
        let (indexes, entries): (Vec<usize>, Vec<PutEventsRequestEntry>) =
            batch.into_iter().unzip();
        let out = self
            .client
            .put_events()
            .set_entries(Some(entries))
            .send()
            .await
            .map_err(|e| port_error("EventBridge PutEvents", &e))?;
        let results = out.entries();
        if out.failed_entry_count() == 0 && results.iter().all(|r| r.error_code().is_none()) {
            return Ok(Vec::new());
        }
        if results.len() != indexes.len() {
            // Which entries failed cannot be told: all are sent again (at least once).
            tracing::warn!(
                failed = out.failed_entry_count(),
                sent = indexes.len(),
                answered = results.len(),
                "PutEvents answered a different number of entries than it was sent; sending all again"
            );
            return Ok(indexes);
        }
        let mut rejected = Vec::new();
        for (index, result) in indexes.into_iter().zip(results) {
            let Some(code) = result.error_code() else {
                continue;
            };
            let message = result.error_message().unwrap_or_default();
            if RETRYABLE_ENTRY_CODES.contains(&code) {
                tracing::info!(
                    code,
                    message,
                    "PutEvents rejected an entry; it stays in the outbox"
                );
            } else {
                tracing::error!(code, message, bus = %self.bus_name,
                    "PutEvents rejected an entry for a reason a retry does not fix; it stays in the outbox");
            }
            rejected.push(index);
        }
        Ok(rejected)
    }
}

/// An entry's size as EventBridge counts it (without `Resources`, which we never send).
fn entry_size(event: &ReleaseEvent, detail: &str) -> usize {
    TIME_BYTES + SOURCE.len() + event.detail_type.len() + detail.len()
}

#[async_trait]
impl EventBus for EventBridgeBus {
    async fn put(&self, events: &[ReleaseEvent]) -> PortResult<Vec<usize>> {
        let mut rejected = Vec::new();
        let mut calls: Vec<Vec<(usize, PutEventsRequestEntry)>> = Vec::new();
        let mut current: Vec<(usize, PutEventsRequestEntry)> = Vec::new();
        let mut current_bytes = 0;
        for (i, event) in events.iter().enumerate() {
            let detail = serde_json::to_string(&event.detail)
                .map_err(|e| PortError::Other(format!("cannot encode an event's detail: {e}")))?;
            let size = entry_size(event, &detail);
            if size >= MAX_REQUEST_BYTES {
                tracing::error!(release = %event.release_id, sequence = event.sequence, size,
                    "an event is larger than PutEvents takes (256 KB); it stays in the outbox");
                rejected.push(i);
                continue;
            }
            if current.len() == PUT_EVENTS_BATCH || current_bytes + size >= MAX_REQUEST_BYTES {
                calls.push(std::mem::take(&mut current));
                current_bytes = 0;
            }
            current_bytes += size;
            current.push((i, self.entry(event, detail)));
        }
        if !current.is_empty() {
            calls.push(current);
        }
        for call in calls {
            rejected.extend(self.put_batch(call).await?);
        }
        rejected.sort_unstable();
        Ok(rejected)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rm_core::events::EventDraft;
    use rm_core::release::ReleaseStatus;
    use rm_core::ReleaseId;
    use time::macros::datetime;

    fn events(n: u64) -> Vec<ReleaseEvent> {
        let id = ReleaseId::parse("2026.03.1").unwrap();
        let drafts = (0..n)
            .map(|_| {
                EventDraft::release_status(
                    1,
                    ReleaseStatus::Running,
                    None,
                    datetime!(2026-03-02 09:15 UTC),
                )
            })
            .collect();
        EventDraft::stamp(drafts, &id, 1)
    }

    #[test]
    fn an_entry_counts_time_source_detail_type_and_detail() {
        let e = &events(1)[0];
        let detail = serde_json::to_string(&e.detail).unwrap();
        assert_eq!(
            entry_size(e, &detail),
            14 + "release-machine".len() + "Release Status Change".len() + detail.len()
        );
    }

    #[test]
    fn from_env_defaults_to_the_default_bus() {
        let config = aws_sdk_eventbridge::Config::builder()
            .behavior_version(aws_sdk_eventbridge::config::BehaviorVersion::latest())
            .build();
        // The variable is not set by the test environment (nothing in the workspace sets it).
        if std::env::var(BUS_ENV).is_err() {
            assert_eq!(
                EventBridgeBus::from_env(Client::from_conf(config)).bus_name(),
                "default"
            );
        }
    }
}

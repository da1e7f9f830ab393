//! The EventBridge adapter with the real SDK client: PutEvents against moto server (scripts/test
//! starts it), and against aws-smithy-mocks for the answers moto cannot give on demand (a
//! partial failure, throttling, a 5xx).

use aws_sdk_eventbridge::error::ErrorMetadata;
use aws_sdk_eventbridge::operation::put_events::{PutEventsError, PutEventsOutput};
use aws_sdk_eventbridge::types::error::InternalException;
use aws_sdk_eventbridge::types::PutEventsResultEntry;
use aws_smithy_mocks::{mock, mock_client, RuleMode};
use rm_aws::events::MAX_REQUEST_BYTES;
use rm_aws::EventBridgeBus;
use rm_core::error::PortError;
use rm_core::events::{EventBus, EventDraft, ReleaseEvent};
use rm_core::release::ReleaseStatus;
use rm_core::ReleaseId;
use rm_testkit::{moto_endpoint, sdk_config};
use serde_json::json;
use time::macros::datetime;

/// `n` events of one release, sequences 1..=n.
fn events(n: u64) -> Vec<ReleaseEvent> {
    let id = ReleaseId::parse("2026.03.1").unwrap();
    let drafts = (0..n)
        .map(|i| {
            EventDraft::release_status(
                1,
                ReleaseStatus::Failed,
                Some(&format!("cause {i}")),
                datetime!(2026-03-02 09:15:00.250 UTC),
            )
        })
        .collect();
    EventDraft::stamp(drafts, &id, 1)
}

fn accepted(n: usize) -> PutEventsOutput {
    PutEventsOutput::builder()
        .failed_entry_count(0)
        .set_entries(Some(
            (0..n)
                .map(|i| {
                    PutEventsResultEntry::builder()
                        .event_id(format!("id-{i}"))
                        .build()
                })
                .collect(),
        ))
        .build()
}

fn client(rules: &[&aws_smithy_mocks::Rule]) -> aws_sdk_eventbridge::Client {
    mock_client!(aws_sdk_eventbridge, RuleMode::Sequential, rules, |c| c
        .retry_config(
            aws_sdk_eventbridge::config::retry::RetryConfig::disabled()
        ))
}

#[tokio::test]
async fn put_events_on_moto_are_accepted() {
    let client = aws_sdk_eventbridge::Client::new(&sdk_config(&moto_endpoint()).await);
    let bus = EventBridgeBus::new(client, "default");
    assert_eq!(bus.put(&events(10)).await.unwrap(), Vec::<usize>::new());
}

#[tokio::test]
async fn entries_carry_source_detail_type_time_detail_and_bus() {
    let put = mock!(aws_sdk_eventbridge::Client::put_events)
        .match_requests(|r| {
            let e = &r.entries()[0];
            let detail: serde_json::Value =
                serde_json::from_str(e.detail().unwrap_or_default()).unwrap();
            r.entries().len() == 1
                && e.source() == Some("release-machine")
                && e.detail_type() == Some("Release Status Change")
                && e.event_bus_name() == Some("releases")
                && e.time().map(|t| t.secs()) == Some(1_772_442_900)
                && detail["releaseId"] == "2026.03.1"
                && detail["eventId"] == "2026.03.1:1"
                && detail["sequence"] == 1
                && detail["status"] == "FAILED"
                && detail["cause"] == "cause 0"
        })
        .then_output(|| accepted(1));
    let bus = EventBridgeBus::new(client(&[&put]), "releases");
    assert_eq!(bus.put(&events(1)).await.unwrap(), Vec::<usize>::new());
    assert_eq!(put.num_calls(), 1, "the entry is as documented");
}

#[tokio::test]
async fn rejected_entries_are_answered_by_index() {
    // EventBridge answers one result per entry, in order; a failed one has ErrorCode and
    // ErrorMessage instead of an EventId.
    let put = mock!(aws_sdk_eventbridge::Client::put_events).then_output(|| {
        let ok = |i: usize| {
            PutEventsResultEntry::builder()
                .event_id(format!("id-{i}"))
                .build()
        };
        let failed = |code: &str| {
            PutEventsResultEntry::builder()
                .error_code(code)
                .error_message("rejected")
                .build()
        };
        PutEventsOutput::builder()
            .failed_entry_count(3)
            .entries(failed("InternalFailure"))
            .entries(ok(1))
            .entries(ok(2))
            .entries(failed("ThrottlingException"))
            .entries(ok(4))
            .entries(failed("AccessDeniedException"))
            .build()
    });
    let bus = EventBridgeBus::new(client(&[&put]), "default");
    assert_eq!(bus.put(&events(6)).await.unwrap(), vec![0, 3, 5]);
}

#[tokio::test]
async fn an_answer_that_does_not_say_which_failed_rejects_them_all() {
    let put = mock!(aws_sdk_eventbridge::Client::put_events).then_output(|| {
        PutEventsOutput::builder()
            .failed_entry_count(1)
            .entries(PutEventsResultEntry::builder().event_id("id-0").build())
            .build()
    });
    let bus = EventBridgeBus::new(client(&[&put]), "default");
    assert_eq!(bus.put(&events(3)).await.unwrap(), vec![0, 1, 2]);
}

#[tokio::test]
async fn more_than_ten_entries_go_in_several_calls() {
    let ten = mock!(aws_sdk_eventbridge::Client::put_events)
        .match_requests(|r| r.entries().len() == 10)
        .then_output(|| accepted(10));
    let rest = mock!(aws_sdk_eventbridge::Client::put_events)
        .match_requests(|r| r.entries().len() == 2)
        .then_output(|| {
            PutEventsOutput::builder()
                .failed_entry_count(1)
                .entries(PutEventsResultEntry::builder().event_id("a").build())
                .entries(
                    PutEventsResultEntry::builder()
                        .error_code("InternalFailure")
                        .build(),
                )
                .build()
        });
    let bus = EventBridgeBus::new(client(&[&ten, &rest]), "default");
    assert_eq!(
        bus.put(&events(12)).await.unwrap(),
        vec![11],
        "the index is into the caller's slice"
    );
    assert_eq!((ten.num_calls(), rest.num_calls()), (1, 1));
}

#[tokio::test]
async fn entries_over_256_kb_together_go_in_several_calls_and_one_too_large_is_never_sent() {
    let mut evs = events(4);
    // Two entries of ~100 KB fit one call; a third would pass 256 KB.
    for e in evs.iter_mut().take(3) {
        e.detail["note"] = json!("n".repeat(100 * 1024));
    }
    // One entry alone over the limit.
    evs[3].detail["note"] = json!("n".repeat(MAX_REQUEST_BYTES));
    let two = mock!(aws_sdk_eventbridge::Client::put_events)
        .match_requests(|r| r.entries().len() == 2)
        .then_output(|| accepted(2));
    let one = mock!(aws_sdk_eventbridge::Client::put_events)
        .match_requests(|r| r.entries().len() == 1)
        .then_output(|| accepted(1));
    let bus = EventBridgeBus::new(client(&[&two, &one]), "default");
    assert_eq!(bus.put(&evs).await.unwrap(), vec![3]);
    assert_eq!((two.num_calls(), one.num_calls()), (1, 1));
}

#[tokio::test]
async fn a_failed_call_is_a_port_error() {
    let throttled = mock!(aws_sdk_eventbridge::Client::put_events).then_error(|| {
        PutEventsError::generic(
            ErrorMetadata::builder()
                .code("ThrottlingException")
                .message("Rate exceeded")
                .build(),
        )
    });
    let modeled = mock!(aws_sdk_eventbridge::Client::put_events).then_error(|| {
        PutEventsError::InternalException(
            InternalException::builder()
                .message("boom")
                .meta(ErrorMetadata::builder().code("InternalException").build())
                .build(),
        )
    });
    let bus = EventBridgeBus::new(client(&[&throttled, &modeled]), "default");
    let err = bus.put(&events(1)).await.unwrap_err();
    assert!(matches!(err, PortError::Throttled(_)), "{err:?}");
    assert!(err.to_string().contains("PutEvents"), "{err}");
    // EventBridge's 5xx is InternalException.
    let err = bus.put(&events(1)).await.unwrap_err();
    assert!(matches!(err, PortError::Transient(_)), "{err:?}");
}

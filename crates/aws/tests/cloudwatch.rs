//! CloudWatchAlarms with the real SDK client on aws-smithy-mocks: paging, the 100-name limit,
//! composite alarms and throttling, which moto does not model. The same adapter against moto's
//! CloudWatch is in cloudwatch_moto.rs (the workspace pins aws-sdk-cloudwatch 1.99, the last
//! release that speaks awsQuery; moto 5.2.5 cannot serve the Smithy RPC v2 CBOR of 1.100+).

use aws_sdk_cloudwatch::operation::describe_alarm_history::DescribeAlarmHistoryOutput;
use aws_sdk_cloudwatch::operation::describe_alarms::DescribeAlarmsOutput;
use aws_sdk_cloudwatch::primitives::DateTime;
use aws_sdk_cloudwatch::types::{
    AlarmHistoryItem, AlarmType, CompositeAlarm, HistoryItemType, MetricAlarm, StateValue,
};
use aws_sdk_cloudwatch::Client;
use aws_smithy_mocks::{mock, mock_client, Rule, RuleMode};
use rm_aws::CloudWatchAlarms;
use rm_core::ports::{AlarmState, AlarmTransition, AlarmValue, Alarms};
use time::OffsetDateTime;

fn client(rules: &[&Rule]) -> Client {
    mock_client!(aws_sdk_cloudwatch, RuleMode::Sequential, rules, |c| c
        .retry_config(
            aws_sdk_cloudwatch::config::retry::RetryConfig::disabled()
        ))
}

fn metric(name: &str, state: StateValue, actions_enabled: bool) -> MetricAlarm {
    MetricAlarm::builder()
        .alarm_name(name)
        .state_value(state)
        .state_reason(format!("{name} reason"))
        .actions_enabled(actions_enabled)
        .build()
}

fn state(name: &str, state: &str, actions_enabled: bool) -> AlarmState {
    AlarmState {
        name: name.into(),
        state: state.parse().unwrap(),
        actions_enabled,
        reason: Some(format!("{name} reason")),
        transitioned_at: None,
    }
}

/// Both alarm types are asked for: without AlarmTypes, DescribeAlarms lists metric alarms only.
fn asks_for_both_types(types: &[AlarmType]) -> bool {
    types.contains(&AlarmType::MetricAlarm) && types.contains(&AlarmType::CompositeAlarm)
}

#[tokio::test]
async fn describes_by_name_and_by_prefix_following_pages() {
    let by_name = mock!(Client::describe_alarms)
        .match_requests(|r| {
            r.alarm_names() == ["api-5xx", "no-such-alarm"]
                && r.alarm_name_prefix().is_none()
                && asks_for_both_types(r.alarm_types())
        })
        .then_output(|| {
            DescribeAlarmsOutput::builder()
                .metric_alarms(metric("api-5xx", StateValue::Alarm, true))
                .build()
        });
    let prefix_page_1 = mock!(Client::describe_alarms)
        .match_requests(|r| {
            r.alarm_name_prefix() == Some("prod-")
                && r.alarm_names().is_empty()
                && r.next_token().is_none()
                && asks_for_both_types(r.alarm_types())
        })
        .then_output(|| {
            DescribeAlarmsOutput::builder()
                .metric_alarms(metric("prod-latency", StateValue::Ok, true))
                .metric_alarms(metric("prod-batch", StateValue::Alarm, false))
                .next_token("page-2")
                .build()
        });
    let prefix_page_2 = mock!(Client::describe_alarms)
        .match_requests(|r| {
            r.alarm_name_prefix() == Some("prod-") && r.next_token() == Some("page-2")
        })
        .then_output(|| {
            DescribeAlarmsOutput::builder()
                .composite_alarms(
                    CompositeAlarm::builder()
                        .alarm_name("prod-overall")
                        .state_value(StateValue::InsufficientData)
                        .state_reason("prod-overall reason")
                        .actions_enabled(true)
                        .build(),
                )
                // Also matched by name: listed once.
                .metric_alarms(metric("api-5xx", StateValue::Alarm, true))
                .build()
        });
    let alarms = CloudWatchAlarms::new(client(&[&by_name, &prefix_page_1, &prefix_page_2]));
    let found = alarms
        .describe(
            &["api-5xx".into(), "no-such-alarm".into()],
            &["prod-".into()],
        )
        .await
        .unwrap();
    assert_eq!(
        found,
        [
            state("api-5xx", "ALARM", true),
            state("prod-batch", "ALARM", false),
            state("prod-latency", "OK", true),
            state("prod-overall", "INSUFFICIENT_DATA", true),
        ]
    );
    assert_eq!(prefix_page_2.num_calls(), 1);
}

#[tokio::test]
async fn many_names_are_asked_100_at_a_time() {
    let names: Vec<String> = (0..150).map(|i| format!("alarm-{i:03}")).collect();
    let first = mock!(Client::describe_alarms)
        .match_requests(|r| r.alarm_names().len() == 100 && r.alarm_names()[0] == "alarm-000")
        .then_output(|| {
            DescribeAlarmsOutput::builder()
                .metric_alarms(metric("alarm-000", StateValue::Ok, true))
                .build()
        });
    let second = mock!(Client::describe_alarms)
        .match_requests(|r| r.alarm_names().len() == 50 && r.alarm_names()[0] == "alarm-100")
        .then_output(|| {
            DescribeAlarmsOutput::builder()
                .metric_alarms(metric("alarm-149", StateValue::Alarm, true))
                .build()
        });
    let alarms = CloudWatchAlarms::new(client(&[&first, &second]));
    let found = alarms.describe(&names, &[]).await.unwrap();
    assert_eq!(
        found,
        [
            state("alarm-000", "OK", true),
            state("alarm-149", "ALARM", true)
        ]
    );
}

#[tokio::test]
async fn nothing_configured_asks_nothing() {
    let alarms = CloudWatchAlarms::new(client(&[]));
    assert!(alarms.describe(&[], &[]).await.unwrap().is_empty());
}

#[tokio::test]
async fn throttling_is_reported_as_throttled() {
    let throttled = mock!(Client::describe_alarms).then_error(|| {
        aws_sdk_cloudwatch::operation::describe_alarms::DescribeAlarmsError::generic(
            aws_sdk_cloudwatch::error::ErrorMetadata::builder()
                .code("Throttling")
                .message("Rate exceeded")
                .build(),
        )
    });
    let alarms = CloudWatchAlarms::new(client(&[&throttled]));
    let err = alarms.describe(&["a".into()], &[]).await.unwrap_err();
    assert!(
        matches!(err, rm_core::error::PortError::Throttled(_)),
        "{err:?}"
    );
}

// --- history (DescribeAlarmHistory: moto 5.2.5 answers it 500, so only here) ---------------

/// A StateUpdate history item as CloudWatch writes it (the AWS CLI reference's
/// `describe-alarm-history` example): `HistoryData` JSON with `oldState` and `newState`.
fn state_update(name: &str, seconds: i64, from: &str, to: &str) -> AlarmHistoryItem {
    AlarmHistoryItem::builder()
        .alarm_name(name)
        .alarm_type(AlarmType::MetricAlarm)
        .timestamp(DateTime::from_secs(seconds))
        .history_item_type(HistoryItemType::StateUpdate)
        .history_summary(format!("Alarm updated from {from} to {to}"))
        .history_data(
            serde_json::json!({
                "version": "1.0",
                "oldState": {"stateValue": from, "stateReason": "before"},
                "newState": {"stateValue": to, "stateReason": "Threshold Crossed: 1 datapoint"},
            })
            .to_string(),
        )
        .build()
}

fn at(seconds: i64) -> OffsetDateTime {
    OffsetDateTime::from_unix_timestamp(seconds).unwrap()
}

fn transition(name: &str, seconds: i64, state: AlarmValue) -> AlarmTransition {
    AlarmTransition {
        name: name.into(),
        at: at(seconds),
        state,
    }
}

const SINCE: i64 = 1_767_225_600; // 2026-01-01T00:00:00Z

#[tokio::test]
async fn history_reads_state_updates_by_name_and_by_prefix_oldest_first() {
    let by_name = mock!(Client::describe_alarm_history)
        .match_requests(|r| {
            r.alarm_name() == Some("api-5xx")
                && r.history_item_type() == Some(&HistoryItemType::StateUpdate)
                && r.start_date() == Some(&DateTime::from_secs(SINCE))
                && r.next_token().is_none()
        })
        .then_output(|| {
            DescribeAlarmHistoryOutput::builder()
                .alarm_history_items(state_update("api-5xx", SINCE + 90, "ALARM", "OK"))
                .alarm_history_items(state_update("api-5xx", SINCE + 30, "OK", "ALARM"))
                .next_token("page-2")
                .build()
        });
    let by_name_2 = mock!(Client::describe_alarm_history)
        .match_requests(|r| r.alarm_name() == Some("api-5xx") && r.next_token() == Some("page-2"))
        .then_output(|| {
            DescribeAlarmHistoryOutput::builder()
                // Before `since`: CloudWatch filters by StartDate; a stray one is dropped.
                .alarm_history_items(state_update("api-5xx", SINCE - 10, "OK", "ALARM"))
                .build()
        });
    let all = mock!(Client::describe_alarm_history)
        .match_requests(|r| {
            r.alarm_name().is_none() && r.history_item_type() == Some(&HistoryItemType::StateUpdate)
        })
        .then_output(|| {
            DescribeAlarmHistoryOutput::builder()
                .alarm_history_items(state_update(
                    "prod-db-cpu",
                    SINCE + 60,
                    "OK",
                    "INSUFFICIENT_DATA",
                ))
                .alarm_history_items(state_update("staging-db-cpu", SINCE + 61, "OK", "ALARM"))
                .alarm_history_items(
                    AlarmHistoryItem::builder()
                        .alarm_name("prod-config")
                        .timestamp(DateTime::from_secs(SINCE + 62))
                        .history_item_type(HistoryItemType::ConfigurationUpdate)
                        .history_data("{}")
                        .build(),
                )
                .alarm_history_items(state_update("prod-api", SINCE + 5, "OK", "ALARM"))
                .build()
        });
    let alarms = CloudWatchAlarms::new(client(&[&by_name, &by_name_2, &all]));
    let history = alarms
        .history(&["api-5xx".into()], &["prod-".into()], at(SINCE))
        .await
        .unwrap();
    assert_eq!(
        history,
        [
            transition("prod-api", SINCE + 5, AlarmValue::Alarm),
            transition("api-5xx", SINCE + 30, AlarmValue::Alarm),
            transition("prod-db-cpu", SINCE + 60, AlarmValue::InsufficientData),
            transition("api-5xx", SINCE + 90, AlarmValue::Ok),
        ],
        "oldest first; other prefixes, other item types and items before since left out"
    );
    assert_eq!(by_name.num_calls(), 1);
    assert_eq!(by_name_2.num_calls(), 1);
    assert_eq!(all.num_calls(), 1);
}

#[tokio::test]
async fn history_of_nothing_asks_nothing_and_a_throttle_is_throttled() {
    let alarms = CloudWatchAlarms::new(client(&[]));
    assert!(alarms
        .history(&[], &[], at(SINCE))
        .await
        .unwrap()
        .is_empty());

    let throttled = mock!(Client::describe_alarm_history).then_error(|| {
        aws_sdk_cloudwatch::operation::describe_alarm_history::DescribeAlarmHistoryError::generic(
            aws_sdk_cloudwatch::error::ErrorMetadata::builder()
                .code("Throttling")
                .message("Rate exceeded")
                .build(),
        )
    });
    let alarms = CloudWatchAlarms::new(client(&[&throttled]));
    let err = alarms
        .history(&["api-5xx".into()], &[], at(SINCE))
        .await
        .unwrap_err();
    assert!(
        matches!(err, rm_core::error::PortError::Throttled(_)),
        "{err:?}"
    );
}

#[tokio::test]
async fn describe_reads_when_the_alarm_last_changed_state() {
    let read = mock!(Client::describe_alarms).then_output(|| {
        DescribeAlarmsOutput::builder()
            .metric_alarms(
                MetricAlarm::builder()
                    .alarm_name("api-5xx")
                    .state_value(StateValue::Ok)
                    .state_transitioned_timestamp(DateTime::from_secs(SINCE))
                    .state_updated_timestamp(DateTime::from_secs(SINCE + 300))
                    .build(),
            )
            .build()
    });
    let alarms = CloudWatchAlarms::new(client(&[&read]));
    let found = alarms.describe(&["api-5xx".into()], &[]).await.unwrap();
    assert_eq!(
        found[0].transitioned_at,
        Some(at(SINCE)),
        "StateTransitionedTimestamp, not StateUpdatedTimestamp"
    );
}

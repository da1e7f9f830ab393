//! [`CloudWatchAlarms`]: alarm states and alarm history for the gates.
//!
//! History is DescribeAlarmHistory with `HistoryItemType=StateUpdate` from a start date; each
//! item's `HistoryData` is a JSON document whose `newState.stateValue` is the state the alarm
//! changed to ("AlarmHistoryItem",
//! <https://docs.aws.amazon.com/AmazonCloudWatch/latest/APIReference/API_AlarmHistoryItem.html>,
//! and the `describe-alarm-history` example of the AWS CLI reference). DescribeAlarmHistory
//! takes one `AlarmName` or none (and no prefix), so names are asked one by one and prefixes
//! with no name, filtered here.
//!
//! moto (`moto/cloudwatch/models.py`) models DescribeAlarms with `StateTransitionedTimestamp`,
//! SetAlarmState, and DescribeAlarmHistory items written by SetAlarmState (`newState` /
//! `oldState` JSON as AWS writes it). It does not model what the API reference
//! (<https://docs.aws.amazon.com/AmazonCloudWatch/latest/APIReference/API_DescribeAlarmHistory.html>)
//! states: history kept for 30 days only, `ScanBy` ordering, `StartDate`/`EndDate`
//! filtering server-side (applied here again, client-side), and
//! `StateTransitionedTimestamp` not moving when only the evaluation state changes
//! (<https://docs.aws.amazon.com/AmazonCloudWatch/latest/APIReference/API_MetricAlarm.html>).

use crate::error::port_error;
use async_trait::async_trait;
use aws_sdk_cloudwatch::operation::describe_alarms::builders::DescribeAlarmsFluentBuilder;
use aws_sdk_cloudwatch::primitives::DateTime;
use aws_sdk_cloudwatch::types::{AlarmType, HistoryItemType};
use aws_sdk_cloudwatch::Client;
use rm_core::ports::{AlarmState, AlarmTransition, AlarmValue, Alarms, PortResult};
use std::collections::BTreeMap;
use time::OffsetDateTime;

/// DescribeAlarms accepts at most 100 alarm names per call.
const MAX_NAMES_PER_CALL: usize = 100;

/// The [`Alarms`] port on CloudWatch DescribeAlarms (metric and composite alarms).
#[derive(Debug, Clone)]
pub struct CloudWatchAlarms {
    client: Client,
}

impl CloudWatchAlarms {
    pub fn new(client: Client) -> Self {
        Self { client }
    }

    /// Runs one DescribeAlarms query through all its pages, adding what it finds by name.
    async fn collect(
        &self,
        request: DescribeAlarmsFluentBuilder,
        found: &mut BTreeMap<String, AlarmState>,
    ) -> PortResult<()> {
        let mut next_token: Option<String> = None;
        loop {
            let out = request
                .clone()
                .alarm_types(AlarmType::MetricAlarm)
                .alarm_types(AlarmType::CompositeAlarm)
                .set_next_token(next_token.take())
                .send()
                .await
                .map_err(|e| port_error("CloudWatch DescribeAlarms", &e))?;
            for a in out.metric_alarms.unwrap_or_default() {
                if let Some(name) = a.alarm_name {
                    found.insert(
                        name.clone(),
                        AlarmState {
                            name,
                            state: alarm_value(a.state_value),
                            actions_enabled: a.actions_enabled.unwrap_or(true),
                            reason: a.state_reason,
                            transitioned_at: a
                                .state_transitioned_timestamp
                                .as_ref()
                                .and_then(offset_date_time),
                        },
                    );
                }
            }
            for a in out.composite_alarms.unwrap_or_default() {
                if let Some(name) = a.alarm_name {
                    found.insert(
                        name.clone(),
                        AlarmState {
                            name,
                            state: alarm_value(a.state_value),
                            actions_enabled: a.actions_enabled.unwrap_or(true),
                            reason: a.state_reason,
                            transitioned_at: a
                                .state_transitioned_timestamp
                                .as_ref()
                                .and_then(offset_date_time),
                        },
                    );
                }
            }
            match out.next_token {
                Some(t) if !t.is_empty() => next_token = Some(t),
                _ => return Ok(()),
            }
        }
    }
}

#[async_trait]
impl Alarms for CloudWatchAlarms {
    /// Alarms named exactly, then alarms under each prefix; each alarm once, sorted by name.
    /// A configured name that does not exist is simply absent from the result.
    async fn describe(&self, names: &[String], prefixes: &[String]) -> PortResult<Vec<AlarmState>> {
        let mut found = BTreeMap::new();
        for chunk in names.chunks(MAX_NAMES_PER_CALL) {
            let request = self
                .client
                .describe_alarms()
                .set_alarm_names(Some(chunk.to_vec()));
            self.collect(request, &mut found).await?;
        }
        for prefix in prefixes {
            let request = self.client.describe_alarms().alarm_name_prefix(prefix);
            self.collect(request, &mut found).await?;
        }
        Ok(found.into_values().collect())
    }

    /// StateUpdate items since `since` of the named alarms (one call each: the API takes one
    /// name) and of all alarms, filtered by prefix (the API takes no prefix); each transition
    /// once, oldest first.
    async fn history(
        &self,
        names: &[String],
        prefixes: &[String],
        since: OffsetDateTime,
    ) -> PortResult<Vec<AlarmTransition>> {
        let mut found = Vec::new();
        for name in names {
            self.history_of(Some(name), since, &mut found).await?;
        }
        if !prefixes.is_empty() {
            let mut all = Vec::new();
            self.history_of(None, since, &mut all).await?;
            found.extend(
                all.into_iter()
                    .filter(|t| prefixes.iter().any(|p| t.name.starts_with(p.as_str()))),
            );
        }
        found.retain(|t| t.at >= since);
        found.sort_by(|a, b| (a.at, &a.name).cmp(&(b.at, &b.name)));
        found.dedup();
        Ok(found)
    }
}

impl CloudWatchAlarms {
    /// One DescribeAlarmHistory query (StateUpdate items from `since`), through all its pages.
    async fn history_of(
        &self,
        name: Option<&String>,
        since: OffsetDateTime,
        found: &mut Vec<AlarmTransition>,
    ) -> PortResult<()> {
        let start = DateTime::from_nanos(since.unix_timestamp_nanos())
            .unwrap_or_else(|_| DateTime::from_secs(since.unix_timestamp()));
        let mut next_token: Option<String> = None;
        loop {
            let out = self
                .client
                .describe_alarm_history()
                .set_alarm_name(name.cloned())
                .history_item_type(HistoryItemType::StateUpdate)
                .start_date(start)
                .end_date(DateTime::from_secs(
                    OffsetDateTime::now_utc().unix_timestamp() + 60,
                ))
                .set_next_token(next_token.take())
                .send()
                .await
                .map_err(|e| port_error("CloudWatch DescribeAlarmHistory", &e))?;
            for item in out.alarm_history_items.unwrap_or_default() {
                if let Some(t) = transition(&item) {
                    found.push(t);
                }
            }
            match out.next_token {
                Some(t) if !t.is_empty() => next_token = Some(t),
                _ => return Ok(()),
            }
        }
    }
}

/// A StateUpdate history item as a transition: its alarm, time and `newState.stateValue`.
/// An item without them (another item type, a shape CloudWatch may change) is skipped.
fn transition(item: &aws_sdk_cloudwatch::types::AlarmHistoryItem) -> Option<AlarmTransition> {
    if item.history_item_type.as_ref() != Some(&HistoryItemType::StateUpdate) {
        return None;
    }
    let name = item.alarm_name.clone()?;
    let at = offset_date_time(item.timestamp.as_ref()?)?;
    let data: serde_json::Value = serde_json::from_str(item.history_data.as_deref()?).ok()?;
    let state = data
        .pointer("/newState/stateValue")?
        .as_str()?
        .parse::<AlarmValue>()
        .unwrap_or(AlarmValue::InsufficientData);
    Some(AlarmTransition { name, at, state })
}

/// An SDK timestamp as `time`'s.
fn offset_date_time(t: &DateTime) -> Option<OffsetDateTime> {
    OffsetDateTime::from_unix_timestamp_nanos(t.as_nanos()).ok()
}

/// CloudWatch's state value in core's terms. A missing or unknown value (a state CloudWatch
/// may add later) counts as INSUFFICIENT_DATA: the gate holds on it unless told to pass.
fn alarm_value(value: Option<aws_sdk_cloudwatch::types::StateValue>) -> AlarmValue {
    use aws_sdk_cloudwatch::types::StateValue;
    match value {
        Some(StateValue::Ok) => AlarmValue::Ok,
        Some(StateValue::Alarm) => AlarmValue::Alarm,
        _ => AlarmValue::InsufficientData,
    }
}

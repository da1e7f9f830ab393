//! [`CloudWatchAlarms`]: alarm states for the health gate.

use crate::error::port_error;
use async_trait::async_trait;
use aws_sdk_cloudwatch::operation::describe_alarms::builders::DescribeAlarmsFluentBuilder;
use aws_sdk_cloudwatch::types::AlarmType;
use aws_sdk_cloudwatch::Client;
use rm_core::ports::{AlarmState, AlarmValue, Alarms, PortResult};
use std::collections::BTreeMap;

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

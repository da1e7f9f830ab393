//! CloudWatchAlarms with the real SDK client against moto server's CloudWatch: alarms made
//! with PutMetricAlarm, states set with SetAlarmState, read back by name and by prefix. moto
//! (5.2.5, and its main branch) has no DescribeAlarmHistory (it answers 500) and no
//! StateTransitionedTimestamp: the history and the transition time are tested on
//! aws-smithy-mocks in cloudwatch.rs.

use aws_sdk_cloudwatch::types::{ComparisonOperator, StateValue, Statistic};
use aws_sdk_cloudwatch::Client;
use rm_aws::CloudWatchAlarms;
use rm_core::ports::{AlarmValue, Alarms};

async fn put_alarm(client: &Client, name: &str, actions_enabled: bool, state: StateValue) {
    client
        .put_metric_alarm()
        .alarm_name(name)
        .namespace("release-machine/test")
        .metric_name("Errors")
        .statistic(Statistic::Sum)
        .period(60)
        .evaluation_periods(1)
        .threshold(1.0)
        .comparison_operator(ComparisonOperator::GreaterThanOrEqualToThreshold)
        .actions_enabled(actions_enabled)
        .send()
        .await
        .expect("PutMetricAlarm");
    client
        .set_alarm_state()
        .alarm_name(name)
        .state_value(state)
        .state_reason("set by the test")
        .send()
        .await
        .expect("SetAlarmState");
}

#[tokio::test]
async fn reads_alarm_states_by_name_and_prefix_from_moto() {
    let config = rm_testkit::sdk_config(&rm_testkit::moto_endpoint()).await;
    let client = Client::new(&config);
    let prefix = rm_testkit::unique_name("cw");
    let firing = format!("{prefix}-api-5xx");
    let calm = format!("{prefix}-db-cpu");
    let muted = format!("{prefix}-old");
    put_alarm(&client, &firing, true, StateValue::Alarm).await;
    put_alarm(&client, &calm, true, StateValue::Ok).await;
    put_alarm(&client, &muted, false, StateValue::Alarm).await;

    let alarms = CloudWatchAlarms::new(client.clone());
    let by_prefix = alarms.describe(&[], &[format!("{prefix}-")]).await.unwrap();
    let mut seen: Vec<(String, String, bool)> = by_prefix
        .iter()
        .map(|a| (a.name.clone(), a.state.to_string(), a.actions_enabled))
        .collect();
    seen.sort();
    assert_eq!(
        seen,
        [
            (firing.clone(), "ALARM".to_owned(), true),
            (calm.clone(), "OK".to_owned(), true),
            (muted.clone(), "ALARM".to_owned(), false),
        ]
    );

    let by_name = alarms
        .describe(&[calm.clone(), format!("{prefix}-missing")], &[])
        .await
        .unwrap();
    assert_eq!(by_name.len(), 1, "a missing alarm is simply absent");
    assert_eq!(by_name[0].state, AlarmValue::Ok);

    client
        .set_alarm_state()
        .alarm_name(&firing)
        .state_value(StateValue::Ok)
        .state_reason("recovered")
        .send()
        .await
        .unwrap();
    let recovered = alarms
        .describe(std::slice::from_ref(&firing), &[])
        .await
        .unwrap();
    assert_eq!(recovered[0].state, AlarmValue::Ok);
}

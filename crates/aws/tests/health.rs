//! AwsHealth with the real SDK client on aws-smithy-mocks (moto has no AWS Health).

use aws_sdk_health::error::ErrorMetadata;
use aws_sdk_health::operation::describe_events::{DescribeEventsError, DescribeEventsOutput};
use aws_sdk_health::types::{Event, EventStatusCode, EventTypeCategory};
use aws_sdk_health::Client;
use aws_smithy_mocks::{mock, mock_client, Rule, RuleMode};
use rm_aws::AwsHealth;
use rm_core::error::PortError;
use rm_core::ports::{HealthEvents, HealthIssue};

fn client(rules: &[&Rule]) -> Client {
    mock_client!(aws_sdk_health, RuleMode::Sequential, rules, |c| c
        .retry_config(aws_sdk_health::config::retry::RetryConfig::disabled()))
}

fn event(service: &str, region: &str, code: &str) -> Event {
    Event::builder()
        .arn(format!("arn:aws:health:{region}::event/{service}/{code}/1"))
        .service(service)
        .region(region)
        .event_type_code(code)
        .event_type_category(EventTypeCategory::Issue)
        .status_code(EventStatusCode::Open)
        .build()
}

#[tokio::test]
async fn open_issues_filters_and_follows_pages() {
    let first = mock!(Client::describe_events)
        .match_requests(|r| {
            r.next_token().is_none()
                && r.filter().is_some_and(|f| {
                    f.event_status_codes() == [EventStatusCode::Open]
                        && f.event_type_categories() == [EventTypeCategory::Issue]
                        && f.regions() == ["eu-west-1", "us-east-1"]
                        && f.services() == ["EC2", "LAMBDA"]
                })
        })
        .then_output(|| {
            DescribeEventsOutput::builder()
                .events(event("EC2", "eu-west-1", "AWS_EC2_OPERATIONAL_ISSUE"))
                .next_token("page-2")
                .build()
        });
    let second = mock!(Client::describe_events)
        .match_requests(|r| r.next_token() == Some("page-2"))
        .then_output(|| {
            DescribeEventsOutput::builder()
                .events(event("LAMBDA", "us-east-1", "AWS_LAMBDA_API_ISSUE"))
                .build()
        });
    let health = AwsHealth::new(client(&[&first, &second]));
    let issues = health
        .open_issues(
            &["eu-west-1".into(), "us-east-1".into()],
            &["EC2".into(), "LAMBDA".into()],
        )
        .await
        .unwrap();
    assert_eq!(
        issues,
        [
            HealthIssue {
                service: "EC2".into(),
                region: "eu-west-1".into(),
                event_type_code: "AWS_EC2_OPERATIONAL_ISSUE".into(),
                arn: "arn:aws:health:eu-west-1::event/EC2/AWS_EC2_OPERATIONAL_ISSUE/1".into(),
            },
            HealthIssue {
                service: "LAMBDA".into(),
                region: "us-east-1".into(),
                event_type_code: "AWS_LAMBDA_API_ISSUE".into(),
                arn: "arn:aws:health:us-east-1::event/LAMBDA/AWS_LAMBDA_API_ISSUE/1".into(),
            },
        ]
    );
    assert_eq!(first.num_calls(), 1);
    assert_eq!(second.num_calls(), 1);
}

#[tokio::test]
async fn empty_filters_mean_everywhere() {
    let all = mock!(Client::describe_events)
        .match_requests(|r| {
            r.filter()
                .is_some_and(|f| f.regions().is_empty() && f.services().is_empty())
        })
        .then_output(|| DescribeEventsOutput::builder().build());
    let health = AwsHealth::new(client(&[&all]));
    assert!(health.open_issues(&[], &[]).await.unwrap().is_empty());
    assert_eq!(all.num_calls(), 1);
}

#[tokio::test]
async fn without_a_support_plan_the_check_fails_with_the_reason() {
    let denied = mock!(Client::describe_events).then_error(|| {
        DescribeEventsError::generic(
            ErrorMetadata::builder()
                .code("SubscriptionRequiredException")
                .message("The AWS Premium Support Subscription is required to use this service.")
                .build(),
        )
    });
    let health = AwsHealth::new(client(&[&denied]));
    let err = health.open_issues(&[], &[]).await.unwrap_err();
    assert!(matches!(err, PortError::Other(_)), "{err:?}");
    let message = err.to_string();
    for part in [
        "SubscriptionRequiredException",
        "the account lacks a Business/Enterprise support plan",
        "disable the health check",
        "\"failOpen\": true",
    ] {
        assert!(message.contains(part), "{part:?} not in {message}");
    }
}

fn unavailable() -> Rule {
    mock!(Client::describe_events).then_error(|| {
        DescribeEventsError::generic(
            ErrorMetadata::builder()
                .code("ServiceUnavailable")
                .message("the active endpoint is failing over")
                .build(),
        )
    })
}

#[tokio::test]
async fn an_unreachable_active_endpoint_fails_over_to_the_passive_one() {
    let active = unavailable();
    let passive = mock!(Client::describe_events).then_output(|| {
        DescribeEventsOutput::builder()
            .events(event("EC2", "eu-west-1", "AWS_EC2_OPERATIONAL_ISSUE"))
            .build()
    });
    let health = AwsHealth::with_failover(client(&[&active]), client(&[&passive]));
    let issues = health.open_issues(&[], &[]).await.unwrap();
    assert_eq!(issues.len(), 1);
    assert_eq!((active.num_calls(), passive.num_calls()), (1, 1));

    // Answers that are not about reachability are not retried elsewhere.
    let denied = mock!(Client::describe_events).then_error(|| {
        DescribeEventsError::generic(
            ErrorMetadata::builder()
                .code("SubscriptionRequiredException")
                .build(),
        )
    });
    let unused =
        mock!(Client::describe_events).then_output(|| DescribeEventsOutput::builder().build());
    let health = AwsHealth::with_failover(client(&[&denied]), client(&[&unused]));
    assert!(health.open_issues(&[], &[]).await.is_err());
    assert_eq!(unused.num_calls(), 0);
}

fn config_in(region: &'static str) -> aws_config::SdkConfig {
    aws_config::SdkConfig::builder()
        .region(aws_config::Region::new(region))
        .behavior_version(aws_config::BehaviorVersion::latest())
        .build()
}

fn region_of(client: &Client) -> Option<String> {
    client.config().region().map(|r| r.to_string())
}

#[tokio::test]
async fn from_config_uses_the_global_endpoints_of_the_partition() {
    // aws: us-east-1 active, us-east-2 passive, whatever the function's region.
    let health = AwsHealth::from_config(&config_in("eu-central-1"));
    assert_eq!(region_of(health.client()).as_deref(), Some("us-east-1"));
    assert_eq!(
        health.failover_client().and_then(region_of).as_deref(),
        Some("us-east-2")
    );
    // aws-cn and aws-us-gov have their own Health endpoints.
    let health = AwsHealth::from_config(&config_in("cn-north-1"));
    assert_eq!(
        region_of(health.client()).as_deref(),
        Some("cn-northwest-1")
    );
    assert!(health.failover_client().is_none());
    let health = AwsHealth::from_config(&config_in("us-gov-east-1"));
    assert_eq!(region_of(health.client()).as_deref(), Some("us-gov-west-1"));
}

//! [`AwsHealth`]: open AWS Health issues for the health gate.
//!
//! The AWS Health API is global and active-passive: in the `aws` partition its endpoint is
//! us-east-1 (active), with us-east-2 as the passive one that takes over during a failover
//! ("Choosing endpoints for AWS Health API requests",
//! <https://docs.aws.amazon.com/health/latest/ug/health-api.html>; endpoints per partition:
//! <https://docs.aws.amazon.com/general/latest/gr/awshealth.html>). The client therefore does
//! not use the function's own region: it asks the active endpoint of the function's partition
//! and, when that cannot be reached (connection failure, 5xx, timeout), the passive one once.
//! The API needs a Business, Enterprise On-Ramp or Enterprise support plan; without one it
//! answers `SubscriptionRequiredException`, reported here as a reason the deployer can act on.

use crate::error::{has_code, port_error};
use async_trait::async_trait;
use aws_sdk_health::types::{EventFilter, EventStatusCode, EventTypeCategory};
use aws_sdk_health::Client;
use rm_core::error::PortError;
use rm_core::ports::{HealthEvents, HealthIssue, PortResult};

/// The AWS Health API's active endpoint region in the `aws` partition.
pub const HEALTH_REGION: &str = "us-east-1";

/// The AWS Health API's passive endpoint region in the `aws` partition.
pub const HEALTH_FAILOVER_REGION: &str = "us-east-2";

/// The Health endpoint regions (active, passive if any) of the partition `region` is in:
/// `aws` (the default, also when the region is unknown), `aws-cn` or `aws-us-gov`.
pub fn health_regions(region: Option<&str>) -> (&'static str, Option<&'static str>) {
    match region.unwrap_or_default() {
        r if r.starts_with("cn-") => ("cn-northwest-1", None),
        r if r.starts_with("us-gov-") => ("us-gov-west-1", None),
        _ => (HEALTH_REGION, Some(HEALTH_FAILOVER_REGION)),
    }
}

/// The [`HealthEvents`] port on AWS Health DescribeEvents (needs a Business, Enterprise
/// On-Ramp or Enterprise support plan).
#[derive(Debug, Clone)]
pub struct AwsHealth {
    client: Client,
    failover: Option<Client>,
}

impl AwsHealth {
    /// Uses `client` as it is configured, without a failover endpoint.
    pub fn new(client: Client) -> Self {
        Self {
            client,
            failover: None,
        }
    }

    /// Asks `active`, and `passive` once when `active` cannot be reached.
    pub fn with_failover(active: Client, passive: Client) -> Self {
        Self {
            client: active,
            failover: Some(passive),
        }
    }

    pub fn client(&self) -> &Client {
        &self.client
    }

    pub fn failover_client(&self) -> Option<&Client> {
        self.failover.as_ref()
    }

    /// Clients for the Health endpoints of `config`'s partition (see [`health_regions`]); an
    /// endpoint override such as `AWS_ENDPOINT_URL` still applies.
    pub fn from_config(config: &aws_config::SdkConfig) -> Self {
        let client_in = |region: &'static str| {
            Client::from_conf(
                aws_sdk_health::config::Builder::from(config)
                    .region(aws_sdk_health::config::Region::new(region))
                    .build(),
            )
        };
        let (active, passive) = health_regions(config.region().map(|r| r.as_ref()));
        match passive {
            Some(passive) => Self::with_failover(client_in(active), client_in(passive)),
            None => Self::new(client_in(active)),
        }
    }
}

async fn open_issues_at(client: &Client, filter: &EventFilter) -> PortResult<Vec<HealthIssue>> {
    let mut issues = Vec::new();
    let mut next_token: Option<String> = None;
    loop {
        let out = client
            .describe_events()
            .filter(filter.clone())
            .set_next_token(next_token.take())
            .send()
            .await
            .map_err(|e| {
                if has_code(&e, "SubscriptionRequiredException") {
                    PortError::Other(
                        "AWS Health DescribeEvents: SubscriptionRequiredException: the account \
                         lacks a Business/Enterprise support plan (Business, Enterprise On-Ramp \
                         or Enterprise), which the AWS Health API needs; disable the health \
                         check (\"health\": {\"enabled\": false}), or let the gate pass when it \
                         cannot be evaluated (\"failOpen\": true), or subscribe to such a plan"
                            .to_owned(),
                    )
                } else {
                    port_error("AWS Health DescribeEvents", &e)
                }
            })?;
        for e in out.events.unwrap_or_default() {
            issues.push(HealthIssue {
                service: e.service.unwrap_or_default(),
                region: e.region.unwrap_or_default(),
                event_type_code: e.event_type_code.unwrap_or_default(),
                arn: e.arn.unwrap_or_default(),
            });
        }
        match out.next_token {
            Some(t) if !t.is_empty() => next_token = Some(t),
            _ => return Ok(issues),
        }
    }
}

#[async_trait]
impl HealthEvents for AwsHealth {
    async fn open_issues(
        &self,
        regions: &[String],
        services: &[String],
    ) -> PortResult<Vec<HealthIssue>> {
        let filter = EventFilter::builder()
            .event_status_codes(EventStatusCode::Open)
            .event_type_categories(EventTypeCategory::Issue)
            .set_regions((!regions.is_empty()).then(|| regions.to_vec()))
            .set_services((!services.is_empty()).then(|| services.to_vec()))
            .build();
        match (open_issues_at(&self.client, &filter).await, &self.failover) {
            (Err(PortError::Transient(active)), Some(passive)) => {
                tracing::warn!(error = %active, "AWS Health: the active endpoint failed; asking the passive one");
                open_issues_at(passive, &filter).await
            }
            (result, _) => result,
        }
    }
}

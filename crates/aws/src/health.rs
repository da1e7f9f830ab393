//! [`AwsHealth`]: open AWS Health issues for the health gate.

use crate::error::port_error;
use async_trait::async_trait;
use aws_sdk_health::types::{EventFilter, EventStatusCode, EventTypeCategory};
use aws_sdk_health::Client;
use rm_core::ports::{HealthEvents, HealthIssue, PortResult};

/// The AWS Health API's global endpoint lives in us-east-1.
pub const HEALTH_REGION: &str = "us-east-1";

/// The [`HealthEvents`] port on AWS Health DescribeEvents (needs a Business, Enterprise
/// On-Ramp or Enterprise support plan).
#[derive(Debug, Clone)]
pub struct AwsHealth {
    client: Client,
}

impl AwsHealth {
    /// Uses `client` as it is configured.
    pub fn new(client: Client) -> Self {
        Self { client }
    }

    pub fn client(&self) -> &Client {
        &self.client
    }

    /// A client for Health's global endpoint: `config` with the region set to us-east-1
    /// (an endpoint override such as `AWS_ENDPOINT_URL` still applies).
    pub fn from_config(config: &aws_config::SdkConfig) -> Self {
        let conf = aws_sdk_health::config::Builder::from(config)
            .region(aws_sdk_health::config::Region::new(HEALTH_REGION))
            .build();
        Self::new(Client::from_conf(conf))
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
        let mut issues = Vec::new();
        let mut next_token: Option<String> = None;
        loop {
            let out = self
                .client
                .describe_events()
                .filter(filter.clone())
                .set_next_token(next_token.take())
                .send()
                .await
                .map_err(|e| port_error("AWS Health DescribeEvents", &e))?;
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
}

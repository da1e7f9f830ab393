//! The table's layout, in one place. `template.yaml` declares the same table; `TABLE.md` in
//! this crate documents it for the template's author. Tests and local stacks create it with
//! [`create_table`].
//!
//! | item            | `pk`                 | `sk`               |
//! |-----------------|----------------------|--------------------|
//! | release         | `REL#<releaseId>`    | `RELEASE`          |
//! | pipeline run    | `REL#<releaseId>`    | `RUN#<pipeline>`   |
//! | execution index | `EXEC#<executionId>` | `EXEC`             |
//!
//! Global secondary index [`WAITING_INDEX`] (`waiting`): partition key [`WAITING_PK`]
//! (`waitingPk`), sort key [`WAITING_SK`] (`waitingSince`), projection ALL. The index is
//! sparse and holds two kinds of item:
//!
//! - a run item that carries a task token: `waitingPk` = `WAITING#NN` ([`waiting_shard`]: a
//!   stable hash of the release id and pipeline, mod [`WAITING_SHARDS`], so no one partition
//!   takes every waiting run), `waitingSince` = when the token was stored or the sweep last
//!   polled the run (RFC 3339 in the fixed-width UTC form of [`sortable_time`], so text order
//!   is time order). The sweep queries every shard (and [`LEGACY_WAITING_VALUE`], what runs
//!   waiting since before the shards carry) and merges them, least recently polled first.
//! - a release item: `waitingPk` = its status ([`RUNNING_VALUE`] while RUNNING, then
//!   `SUCCEEDED`, `FAILED` or `CANCELLED`: [`release_partition`]), `waitingSince` =
//!   [`rm_core::release::list_order`] (requestedAt, then the id). Set by the claim and by every
//!   `update_release`, so a release moves between the partitions with its status. The sweep's
//!   reconciler lists the RUNNING releases from the `RUNNING` partition; `list_releases` reads
//!   one partition per status, newest first, and merges them. (One index for both, rather than
//!   a list index of its own: CloudFormation adds at most one global secondary index to an
//!   existing table per stack update, and the outbox needs one.)
//!
//! Global secondary index [`OUTBOX_INDEX`] (`outbox`): partition key [`OUTBOX_PK`]
//! (`outboxPk`: [`outbox_shard`], `OUTBOX#N`, a stable hash of the release id mod
//! [`OUTBOX_SHARDS`]), sort key [`PK`] (so a release's items are next to each other),
//! projection INCLUDE [`OUTBOX`]. Sparse: an item (release or run) carries `outboxPk` while
//! its `outbox` map holds events not yet published.

use crate::error::port_error;
use aws_sdk_dynamodb::types::{
    AttributeDefinition, BillingMode, GlobalSecondaryIndex, IndexStatus, KeySchemaElement, KeyType,
    Projection, ProjectionType, ScalarAttributeType, TableStatus,
};
use aws_sdk_dynamodb::Client;
use rm_core::error::PortError;
use std::time::Duration;
use time::{OffsetDateTime, UtcOffset};

/// Partition key attribute (string).
pub const PK: &str = "pk";
/// Sort key attribute (string).
pub const SK: &str = "sk";
/// Name of the sparse index of waiting runs.
pub const WAITING_INDEX: &str = "waiting";
/// Partition key of [`WAITING_INDEX`] (string: [`waiting_shard`] on a waiting run,
/// [`release_partition`], the status, on a release).
pub const WAITING_PK: &str = "waitingPk";
/// Sort key of [`WAITING_INDEX`] (string: on a run, [`sortable_time`] of when the token was
/// stored or last polled; on a release, [`rm_core::release::list_order`]).
pub const WAITING_SK: &str = "waitingSince";
/// How many partitions the waiting runs are spread over.
pub const WAITING_SHARDS: u64 = 16;
/// The one [`WAITING_PK`] value of every waiting run before the shards: still read by the
/// sweep, so runs that waited across the upgrade are polled.
pub const LEGACY_WAITING_VALUE: &str = "WAITING";
/// The [`WAITING_PK`] value of a RUNNING release's item.
pub const RUNNING_VALUE: &str = "RUNNING";

/// Name of the sparse index of items with events not yet published.
pub const OUTBOX_INDEX: &str = "outbox";
/// Partition key of [`OUTBOX_INDEX`] (string: [`outbox_shard`]), present while the item's
/// [`OUTBOX`] map holds events (it may outlive them: harmless).
pub const OUTBOX_PK: &str = "outboxPk";
/// The map of an item's events not yet published: key the sequence number ([`outbox_key`]),
/// value the [`rm_core::events::ReleaseEvent`] as JSON text. Projected into [`OUTBOX_INDEX`].
pub const OUTBOX: &str = "outbox";
/// How many partitions of [`OUTBOX_INDEX`] the releases are spread over.
pub const OUTBOX_SHARDS: u64 = 8;

/// The release item's sort key.
pub const RELEASE_SK: &str = "RELEASE";
/// The execution-id item's sort key.
pub const EXEC_SK: &str = "EXEC";

/// Partition and sort key of the one halt item (the stack-wide halt, while it is on).
pub const HALT_KEY: &str = "HALT";

/// Partition key of a release and its runs.
pub fn release_pk(release_id: &str) -> String {
    format!("REL#{release_id}")
}

/// Sort key of a run item.
pub fn run_sk(pipeline: &str) -> String {
    format!("RUN#{pipeline}")
}

/// Partition key of the item that maps a CodePipeline execution id to its run.
pub fn exec_pk(execution_id: &str) -> String {
    format!("EXEC#{execution_id}")
}

/// The [`WAITING_PK`] value of a waiting run: `WAITING#NN`, NN (two digits) the 64-bit
/// FNV-1a hash of `<releaseId>\n<pipeline>` mod [`WAITING_SHARDS`]. Stable across processes
/// and releases of this code (a run's shard must not move while it waits): never std's
/// randomly seeded hasher, and never to be changed without a migration.
pub fn waiting_shard(release_id: &str, pipeline: &str) -> String {
    let hash = fnv1a(
        release_id
            .bytes()
            .chain(std::iter::once(b'\n'))
            .chain(pipeline.bytes()),
    );
    format!("WAITING#{:02}", hash % WAITING_SHARDS)
}

/// The [`OUTBOX_PK`] value of every item of a release: `OUTBOX#N`, N the same FNV-1a 64 hash
/// as [`waiting_shard`]'s, of the release id alone, mod [`OUTBOX_SHARDS`]. Stable: never to be
/// changed while events wait (an item's shard must not move).
pub fn outbox_shard(release_id: &str) -> String {
    format!("OUTBOX#{}", fnv1a(release_id.bytes()) % OUTBOX_SHARDS)
}

/// Every [`OUTBOX_PK`] value.
pub fn outbox_partitions() -> Vec<String> {
    (0..OUTBOX_SHARDS).map(|n| format!("OUTBOX#{n}")).collect()
}

/// The key of an event in an item's [`OUTBOX`] map: its sequence number, zero-padded to 20
/// digits (every u64), so text order is sequence order.
pub fn outbox_key(sequence: u64) -> String {
    format!("{sequence:020}")
}

/// The [`WAITING_PK`] value of a release item: its status (`RUNNING`, `SUCCEEDED`, `FAILED`,
/// `CANCELLED`).
pub fn release_partition(status: rm_core::release::ReleaseStatus) -> &'static str {
    status.as_str()
}

/// 64-bit FNV-1a.
fn fnv1a(bytes: impl Iterator<Item = u8>) -> u64 {
    const OFFSET: u64 = 0xcbf2_9ce4_8422_2325;
    const PRIME: u64 = 0x0000_0100_0000_01b3;
    bytes.fold(OFFSET, |h, b| (h ^ u64::from(b)).wrapping_mul(PRIME))
}

/// Every [`WAITING_PK`] value a waiting run may carry: the shards, then the legacy value.
pub fn waiting_partitions() -> Vec<String> {
    (0..WAITING_SHARDS)
        .map(|n| format!("WAITING#{n:02}"))
        .chain(std::iter::once(LEGACY_WAITING_VALUE.to_owned()))
        .collect()
}

/// A time as a fixed-width RFC 3339 string in UTC, nanoseconds always written
/// (`2026-01-01T00:00:00.000000000Z`): text order is time order, so DynamoDB compares these
/// (`tokenAt <= :at`, the index's sort key) correctly. Years 0 to 9999.
pub fn sortable_time(t: OffsetDateTime) -> String {
    let t = t.to_offset(UtcOffset::UTC);
    format!(
        "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}.{:09}Z",
        t.year(),
        u8::from(t.month()),
        t.day(),
        t.hour(),
        t.minute(),
        t.second(),
        t.nanosecond()
    )
}

fn key(name: &str, key_type: KeyType) -> Result<KeySchemaElement, PortError> {
    KeySchemaElement::builder()
        .attribute_name(name)
        .key_type(key_type)
        .build()
        .map_err(|e| PortError::Other(e.to_string()))
}

fn string_attribute(name: &str) -> Result<AttributeDefinition, PortError> {
    AttributeDefinition::builder()
        .attribute_name(name)
        .attribute_type(ScalarAttributeType::S)
        .build()
        .map_err(|e| PortError::Other(e.to_string()))
}

/// Creates the release table as `template.yaml` declares it (on-demand billing) and waits until
/// it and its indexes are ACTIVE. For tests and local stacks; production tables come from the
/// template.
pub async fn create_table(client: &Client, name: &str) -> Result<(), PortError> {
    let waiting = GlobalSecondaryIndex::builder()
        .index_name(WAITING_INDEX)
        .key_schema(key(WAITING_PK, KeyType::Hash)?)
        .key_schema(key(WAITING_SK, KeyType::Range)?)
        .projection(
            Projection::builder()
                .projection_type(ProjectionType::All)
                .build(),
        )
        .build()
        .map_err(|e| PortError::Other(e.to_string()))?;
    let outbox = GlobalSecondaryIndex::builder()
        .index_name(OUTBOX_INDEX)
        .key_schema(key(OUTBOX_PK, KeyType::Hash)?)
        .key_schema(key(PK, KeyType::Range)?)
        .projection(
            Projection::builder()
                .projection_type(ProjectionType::Include)
                .non_key_attributes(OUTBOX)
                .build(),
        )
        .build()
        .map_err(|e| PortError::Other(e.to_string()))?;
    client
        .create_table()
        .table_name(name)
        .billing_mode(BillingMode::PayPerRequest)
        .attribute_definitions(string_attribute(PK)?)
        .attribute_definitions(string_attribute(SK)?)
        .attribute_definitions(string_attribute(WAITING_PK)?)
        .attribute_definitions(string_attribute(WAITING_SK)?)
        .attribute_definitions(string_attribute(OUTBOX_PK)?)
        .key_schema(key(PK, KeyType::Hash)?)
        .key_schema(key(SK, KeyType::Range)?)
        .global_secondary_indexes(waiting)
        .global_secondary_indexes(outbox)
        .send()
        .await
        .map_err(|e| port_error("DynamoDB CreateTable", &e))?;
    for _ in 0..300 {
        let table = client
            .describe_table()
            .table_name(name)
            .send()
            .await
            .map_err(|e| port_error("DynamoDB DescribeTable", &e))?
            .table;
        let ready = table.as_ref().is_some_and(|t| {
            t.table_status() == Some(&TableStatus::Active)
                && t.global_secondary_indexes()
                    .iter()
                    .all(|i| i.index_status() == Some(&IndexStatus::Active))
        });
        if ready {
            return Ok(());
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    Err(PortError::Transient(format!(
        "table {name} did not become ACTIVE within 30 s"
    )))
}

#[cfg(test)]
mod tests {
    use super::*;
    use time::format_description::well_known::Rfc3339;
    use time::macros::datetime;

    #[test]
    fn sortable_times_are_fixed_width_rfc3339_in_time_order() {
        let times = [
            datetime!(2026-01-01 00:00:00 UTC),
            datetime!(2026-01-01 00:00:00.000000001 UTC),
            datetime!(2026-01-01 00:00:00.5 UTC),
            datetime!(2026-01-01 00:00:01 UTC),
            datetime!(2026-01-01 01:00:00.25 +02:00),
            datetime!(2026-01-01 00:00:01.5 UTC),
        ];
        let text: Vec<String> = times.iter().map(|t| sortable_time(*t)).collect();
        assert_eq!(text[0], "2026-01-01T00:00:00.000000000Z");
        assert_eq!(text[4], "2025-12-31T23:00:00.250000000Z");
        assert!(text.iter().all(|t| t.len() == text[0].len()));
        for (t, s) in times.iter().zip(&text) {
            assert_eq!(OffsetDateTime::parse(s, &Rfc3339).unwrap(), *t);
        }
        let mut by_text = text.clone();
        by_text.sort();
        let mut by_time = times.to_vec();
        by_time.sort();
        let by_time: Vec<String> = by_time.into_iter().map(sortable_time).collect();
        assert_eq!(by_text, by_time);
    }

    /// The shard of a run is part of the stored layout: these values must never change.
    #[test]
    fn waiting_shards_are_stable_and_spread() {
        assert_eq!(waiting_shard("r1", "app"), waiting_shard("r1", "app"));
        let pinned = [
            waiting_shard("2026.05.1", "payments-api"),
            waiting_shard("2026.05.1", "payments-web"),
            waiting_shard("r1", "app"),
        ];
        assert_eq!(pinned, PINNED_SHARDS);
        let partitions = waiting_partitions();
        assert_eq!(partitions.len(), 17);
        assert_eq!(partitions[0], "WAITING#00");
        assert_eq!(partitions[15], "WAITING#15");
        assert_eq!(partitions[16], LEGACY_WAITING_VALUE);
        let mut used = std::collections::BTreeSet::new();
        for i in 0..500 {
            let shard = waiting_shard("release-1", &format!("svc-{i:03}"));
            assert!(partitions.contains(&shard), "{shard}");
            used.insert(shard);
        }
        assert_eq!(used.len(), 16, "500 pipelines use every shard");
    }

    /// Computed independently (FNV-1a 64 in Python) when the layout was introduced.
    const PINNED_SHARDS: [&str; 3] = ["WAITING#15", "WAITING#09", "WAITING#01"];

    /// The outbox shard of a release is part of the stored layout too.
    #[test]
    fn outbox_shards_are_stable_and_spread() {
        assert_eq!(
            [outbox_shard("2026.05.1"), outbox_shard("r1")],
            PINNED_OUTBOX_SHARDS
        );
        let partitions = outbox_partitions();
        assert_eq!(partitions.len(), 8);
        let used: std::collections::BTreeSet<String> = (0..200)
            .map(|i| outbox_shard(&format!("release-{i}")))
            .collect();
        assert!(used.iter().all(|s| partitions.contains(s)));
        assert_eq!(used.len(), 8, "200 releases use every shard");
        assert_eq!(outbox_key(5), "00000000000000000005");
        assert_eq!(outbox_key(u64::MAX).len(), 20);
        assert!(outbox_key(9) < outbox_key(10));
    }

    /// FNV-1a 64 of the release id mod 8, computed independently (Python).
    const PINNED_OUTBOX_SHARDS: [&str; 2] = ["OUTBOX#1", "OUTBOX#4"];
}

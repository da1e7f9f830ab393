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
//! (`waitingPk`, always `WAITING`), sort key [`WAITING_SK`] (`waitingSince`, RFC 3339),
//! projection ALL. Both attributes exist only on a run item that carries a task token, so the
//! index is sparse: it lists exactly the runs the sweep must poll.

use crate::error::port_error;
use aws_sdk_dynamodb::types::{
    AttributeDefinition, BillingMode, GlobalSecondaryIndex, IndexStatus, KeySchemaElement, KeyType,
    Projection, ProjectionType, ScalarAttributeType, TableStatus,
};
use aws_sdk_dynamodb::Client;
use rm_core::error::PortError;
use std::time::Duration;

/// Partition key attribute (string).
pub const PK: &str = "pk";
/// Sort key attribute (string).
pub const SK: &str = "sk";
/// Name of the sparse index of waiting runs.
pub const WAITING_INDEX: &str = "waiting";
/// Partition key of [`WAITING_INDEX`] (string, always [`WAITING_VALUE`]).
pub const WAITING_PK: &str = "waitingPk";
/// Sort key of [`WAITING_INDEX`] (string: when the token was stored, RFC 3339).
pub const WAITING_SK: &str = "waitingSince";
/// The value of [`WAITING_PK`] on every waiting run.
pub const WAITING_VALUE: &str = "WAITING";

/// The release item's sort key.
pub const RELEASE_SK: &str = "RELEASE";
/// The execution-id item's sort key.
pub const EXEC_SK: &str = "EXEC";

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
/// it and its index are ACTIVE. For tests and local stacks; production tables come from the
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
    client
        .create_table()
        .table_name(name)
        .billing_mode(BillingMode::PayPerRequest)
        .attribute_definitions(string_attribute(PK)?)
        .attribute_definitions(string_attribute(SK)?)
        .attribute_definitions(string_attribute(WAITING_PK)?)
        .attribute_definitions(string_attribute(WAITING_SK)?)
        .key_schema(key(PK, KeyType::Hash)?)
        .key_schema(key(SK, KeyType::Range)?)
        .global_secondary_indexes(waiting)
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

//! Proves the harness: real aws-sdk-dynamodb clients against the moto and dynalite servers
//! that scripts/test started on loopback.

use std::time::{Duration, Instant};

use aws_sdk_dynamodb::types::{
    AttributeDefinition, AttributeValue, BillingMode, KeySchemaElement, KeyType,
    ScalarAttributeType, TableStatus,
};
use aws_sdk_dynamodb::Client;
use rm_testkit::{dynalite_endpoint, moto_endpoint, sdk_config, unique_name};

async fn create_put_get(endpoint: &str) {
    let client = Client::new(&sdk_config(endpoint).await);
    let table = unique_name("smoke");

    client
        .create_table()
        .table_name(&table)
        .billing_mode(BillingMode::PayPerRequest)
        .attribute_definitions(
            AttributeDefinition::builder()
                .attribute_name("pk")
                .attribute_type(ScalarAttributeType::S)
                .build()
                .unwrap(),
        )
        .key_schema(
            KeySchemaElement::builder()
                .attribute_name("pk")
                .key_type(KeyType::Hash)
                .build()
                .unwrap(),
        )
        .send()
        .await
        .unwrap_or_else(|e| panic!("CreateTable at {endpoint}: {e:?}"));

    // dynalite keeps a new table CREATING for a moment; moto makes it ACTIVE at once.
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let status = client
            .describe_table()
            .table_name(&table)
            .send()
            .await
            .unwrap()
            .table
            .and_then(|t| t.table_status);
        if status == Some(TableStatus::Active) {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "table {table} not ACTIVE: {status:?}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }

    client
        .put_item()
        .table_name(&table)
        .item("pk", AttributeValue::S("k1".into()))
        .item("n", AttributeValue::N("42".into()))
        .condition_expression("attribute_not_exists(pk)")
        .send()
        .await
        .unwrap();

    // A second conditional put of the same key must be refused.
    let again = client
        .put_item()
        .table_name(&table)
        .item("pk", AttributeValue::S("k1".into()))
        .condition_expression("attribute_not_exists(pk)")
        .send()
        .await;
    let err = again.expect_err("conditional put of an existing key succeeded");
    assert!(
        err.as_service_error()
            .is_some_and(|e| e.is_conditional_check_failed_exception()),
        "{err:?}"
    );

    let item = client
        .get_item()
        .table_name(&table)
        .key("pk", AttributeValue::S("k1".into()))
        .consistent_read(true)
        .send()
        .await
        .unwrap()
        .item
        .expect("item not found");
    assert_eq!(item.get("n"), Some(&AttributeValue::N("42".into())));

    client
        .delete_table()
        .table_name(&table)
        .send()
        .await
        .unwrap();
}

#[tokio::test]
async fn dynamodb_in_moto() {
    create_put_get(&moto_endpoint()).await;
}

#[tokio::test]
async fn dynamodb_in_dynalite() {
    create_put_get(&dynalite_endpoint()).await;
}

#[tokio::test]
async fn moto_stepfunctions_execution_can_be_enabled() {
    let endpoint = moto_endpoint();
    rm_testkit::enable_moto_stepfunctions_execution(&endpoint).await;
    // Enabling twice is harmless (tests run in parallel and each may enable it).
    rm_testkit::enable_moto_stepfunctions_execution(&endpoint).await;
}

#[test]
fn endpoints_are_loopback() {
    for endpoint in [moto_endpoint(), dynalite_endpoint()] {
        assert!(
            endpoint.starts_with("http://127.0.0.1:"),
            "tests must only reach loopback, got {endpoint}"
        );
    }
}

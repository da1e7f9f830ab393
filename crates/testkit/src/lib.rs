//! Test harness shared by the workspace's tests.
//!
//! `scripts/test` installs and starts, on 127.0.0.1 and on free ports, moto server 5.2.5 and
//! dynalite, and exports their addresses as `RM_MOTO_ENDPOINT` and `RM_DYNALITE_ENDPOINT`.
//! The functions here read those addresses and build real AWS SDK configuration for them.
//! A test that needs a server and runs without `scripts/test` panics with a message saying
//! so: tests never silently skip.
//!
//! Tests share one server per run, so every table, bucket or state machine a test creates
//! should be named with [`unique_name`].
//!
//! S3 note: build the S3 client with path-style addressing
//! (`aws_sdk_s3::config::Builder::from(&cfg).force_path_style(true)`), since virtual-hosted
//! bucket names cannot resolve to a loopback server.
//!
//! [`props`] holds what the handlers' property tests share: strategies, mutations of the
//! sample events, the in-memory world and the checks of an answer.
//!
//! [`store_contract`] is the behaviour every `ReleaseStore` must have; the memory, SQLite and
//! DynamoDB stores' tests each run it. It lives here, not in rm-core, so the Lambdas do not
//! carry test fixtures.

pub mod props;
pub mod store_contract;

/// A sample file of `events/` (the repository's), as bytes.
pub fn event_bytes(name: &str) -> Vec<u8> {
    let path = format!("{}/../../events/{name}", env!("CARGO_MANIFEST_DIR"));
    std::fs::read(&path).unwrap_or_else(|e| panic!("{path}: {e}"))
}

/// A sample file of `events/`, as JSON.
pub fn event(name: &str) -> serde_json::Value {
    serde_json::from_slice(&event_bytes(name)).expect("events/ files are JSON")
}

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use aws_config::{BehaviorVersion, Region, SdkConfig};
use aws_credential_types::Credentials;

/// Name of the variable holding moto server's base URL.
pub const MOTO_ENDPOINT_VAR: &str = "RM_MOTO_ENDPOINT";
/// Name of the variable holding dynalite's base URL.
pub const DYNALITE_ENDPOINT_VAR: &str = "RM_DYNALITE_ENDPOINT";
/// Region every test client uses.
pub const TEST_REGION: &str = "us-east-1";
/// Account id moto uses by default (appears in ARNs it returns).
pub const MOTO_ACCOUNT_ID: &str = "123456789012";

fn endpoint_from_env(var: &str, server: &str) -> String {
    match std::env::var(var) {
        Ok(v) if !v.trim().is_empty() => v.trim().trim_end_matches('/').to_string(),
        _ => panic!(
            "{var} is not set: run the tests with scripts/test, which starts {server} on 127.0.0.1"
        ),
    }
}

/// Base URL of the moto server started by `scripts/test`, e.g. `http://127.0.0.1:41234`.
///
/// # Panics
/// If `RM_MOTO_ENDPOINT` is unset or empty.
pub fn moto_endpoint() -> String {
    endpoint_from_env(MOTO_ENDPOINT_VAR, "moto server 5.2.5")
}

/// Base URL of the dynalite server started by `scripts/test`, e.g. `http://127.0.0.1:41235`.
///
/// # Panics
/// If `RM_DYNALITE_ENDPOINT` is unset or empty.
pub fn dynalite_endpoint() -> String {
    endpoint_from_env(DYNALITE_ENDPOINT_VAR, "dynalite")
}

/// SDK configuration for a loopback emulator: region us-east-1, static test credentials,
/// every service sent to `endpoint`, and the host's AWS environment variables and instance
/// metadata (IMDS) ignored, so nothing leaves the machine.
///
/// Build clients with `aws_sdk_xxx::Client::new(&sdk_config(&moto_endpoint()).await)`.
pub async fn sdk_config(endpoint: &str) -> SdkConfig {
    aws_config::defaults(BehaviorVersion::latest())
        // Ignore AWS_* variables of the host (profiles, endpoint overrides, ...).
        .empty_test_environment()
        .region(Region::new(TEST_REGION))
        .credentials_provider(Credentials::new("test", "test", None, None, "rm-testkit"))
        .endpoint_url(endpoint)
        .load()
        .await
}

/// A name unique within this test run and across concurrent runs, for tables, buckets, state
/// machines, etc.: `{prefix}-{pid}-{millis}-{counter}`, lowercase ASCII letters, digits and
/// dashes only (valid for S3 buckets if `prefix` is), at most 63 characters.
pub fn unique_name(prefix: &str) -> String {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let n = COUNTER.fetch_add(1, Ordering::Relaxed);
    let millis = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis())
        .unwrap_or(0);
    let prefix: String = prefix
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() {
                c.to_ascii_lowercase()
            } else {
                '-'
            }
        })
        .collect();
    let suffix = format!("-{}-{:x}-{}", std::process::id(), millis, n);
    let keep = 63usize.saturating_sub(suffix.len());
    let prefix: String = prefix.chars().take(keep).collect();
    format!("{prefix}{suffix}")
}

fn http_client() -> reqwest::Client {
    reqwest::Client::builder()
        .no_proxy()
        .timeout(Duration::from_secs(30))
        .build()
        .expect("build HTTP client")
}

/// Makes moto actually run Step Functions executions (Task states call Lambda, Choice and
/// Pass states evaluate), by POSTing `{"stepfunctions": {"execute_state_machine": true}}`
/// to `{endpoint}/moto-api/config`. The setting is server-wide and stays on.
///
/// # Panics
/// If the server cannot be reached or does not answer with a success status.
pub async fn enable_moto_stepfunctions_execution(endpoint: &str) {
    let url = format!("{}/moto-api/config", endpoint.trim_end_matches('/'));
    let response = http_client()
        .post(&url)
        .header("content-type", "application/json")
        .body(r#"{"stepfunctions": {"execute_state_machine": true}}"#)
        .send()
        .await
        .unwrap_or_else(|e| panic!("POST {url} failed: {e}"));
    let status = response.status();
    let body = response.text().await.unwrap_or_default();
    assert!(status.is_success(), "POST {url} answered {status}: {body}");
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unique_names_differ_and_fit_bucket_rules() {
        let a = unique_name("My_Table");
        let b = unique_name("My_Table");
        assert_ne!(a, b);
        assert!(a.starts_with("my-table-"), "{a}");
        let long = unique_name(&"x".repeat(100));
        assert!(long.len() <= 63, "{long}");
        assert!(a
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-'));
    }

    #[test]
    #[should_panic(expected = "run the tests with scripts/test")]
    fn missing_variable_panics_with_instructions() {
        endpoint_from_env("RM_TESTKIT_SURELY_UNSET_VARIABLE", "moto server 5.2.5");
    }
}

//! Shared helpers of rm-aws's tests: SDK clients for the loopback servers `scripts/test`
//! starts (moto and dynalite; see rm-testkit), fresh tables, and sample releases.
#![allow(dead_code)]

use rm_aws::DynamoStore;
use rm_core::manifest::{Manifest, OnFailure, PipelineSpec};
use rm_core::ports::{NewRelease, RunKey};
use rm_core::release::{ReleaseId, ReleaseRecord, ReleaseSource, ReleaseStatus, SourceKind};
use rm_testkit::{dynalite_endpoint, moto_endpoint, sdk_config, unique_name};
use time::macros::datetime;
use time::OffsetDateTime;

pub const T0: OffsetDateTime = datetime!(2026-01-01 00:00:00 UTC);

/// Which DynamoDB stand-in a test runs against.
#[derive(Debug, Clone, Copy)]
pub enum Dynamo {
    Moto,
    Dynalite,
}

pub async fn dynamo_client(backend: Dynamo) -> aws_sdk_dynamodb::Client {
    let endpoint = match backend {
        Dynamo::Moto => moto_endpoint(),
        Dynamo::Dynalite => dynalite_endpoint(),
    };
    aws_sdk_dynamodb::Client::new(&sdk_config(&endpoint).await)
}

/// A store on a fresh table of its own, created with `rm_aws::create_table`.
pub async fn fresh_store(backend: Dynamo) -> DynamoStore {
    let client = dynamo_client(backend).await;
    let table = unique_name("releases");
    rm_aws::create_table(&client, &table)
        .await
        .unwrap_or_else(|e| panic!("create table {table} on {backend:?}: {e}"));
    DynamoStore::new(client, table)
}

pub fn rid(id: &str) -> ReleaseId {
    ReleaseId::parse(id).expect("test release id")
}

pub fn run_key(id: &str, pipeline: &str) -> RunKey {
    RunKey {
        release_id: rid(id),
        pipeline: pipeline.to_owned(),
    }
}

/// A release of `specs`, claimed by `owner`.
pub fn release_of(id: &str, owner: &str, specs: Vec<PipelineSpec>) -> NewRelease {
    let release_id = rid(id);
    NewRelease {
        record: ReleaseRecord {
            release_id: release_id.clone(),
            owner: owner.to_owned(),
            status: ReleaseStatus::Running,
            requested_at: T0,
            ended_at: None,
            source: ReleaseSource {
                kind: SourceKind::S3,
                location: Some("s3://bucket/release-manifest.json".into()),
            },
            requested_by: Some("account:123456789012 via s3://bucket/release-manifest.json".into()),
            manifest_hash: Some("sha256:0123".into()),
            on_failure: OnFailure::Stop,
            max_concurrency: 10,
            description: None,
            cause: None,
            stop_requested: false,
            version: 0,
            lifecycle: Default::default(),
        },
        manifest: Manifest {
            release_id,
            description: None,
            pipelines: specs,
            max_concurrency: 10,
            on_failure: OnFailure::Stop,
            approvals: Vec::new(),
            approval_timeout_minutes: rm_core::manifest::DEFAULT_APPROVAL_TIMEOUT_MINUTES,
            gates: None,
            skip_unchanged: false,
        },
        events: vec![],
    }
}

/// A release of wave-1 pipelines with these names.
pub fn release(id: &str, owner: &str, pipelines: &[&str]) -> NewRelease {
    release_of(
        id,
        owner,
        pipelines.iter().map(|p| PipelineSpec::new(*p, 1)).collect(),
    )
}

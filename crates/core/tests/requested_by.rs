//! Who asked (`requestedBy`, ARCHITECTURE.md §3a "Who"), how a release came (`source.kind`),
//! and what makes two manifests the same (`Manifest::content_hash`), through the CheckManifest
//! use case and the release JSON (issue 10 items 3 and 8; issue 8 "Types, not strings").

use rm_core::memory::*;
use rm_core::ports::{ManifestPorts, ReleaseStore};
use rm_core::release::{ReleaseId, SourceKind};
use rm_core::tasks::{CheckManifestRequest, Outcome};
use rm_core::usecases::check_manifest;
use rm_core::view::ReleaseView;
use rm_core::Manifest;
use serde_json::{json, Value};

struct World {
    store: MemoryStore,
    pipelines: FakePipelines,
    clock: ManualClock,
    source: FakeSource,
}

impl World {
    fn new() -> Self {
        Self {
            store: MemoryStore::new(),
            pipelines: FakePipelines::with(&["app", "web"]),
            clock: ManualClock::fixed(),
            source: FakeSource::default(),
        }
    }

    /// Runs CheckManifest on `input` and returns the release JSON it recorded.
    async fn check(&self, input: Value, release_id: &str) -> Value {
        let ports = ManifestPorts {
            store: &self.store,
            pipelines: &self.pipelines,
            source: &self.source,
            clock: &self.clock,
            bus: &rm_core::memory::NO_BUS,
        };
        let request = CheckManifestRequest {
            input,
            execution_name: "exec-1".into(),
        };
        let out = check_manifest(&request, &ports).await.unwrap();
        assert_eq!(out.outcome, Outcome::Started);
        let stored = self
            .store
            .get(&ReleaseId::parse(release_id).unwrap())
            .await
            .unwrap()
            .unwrap();
        serde_json::to_value(ReleaseView::from(&stored)).unwrap()
    }
}

fn s3_event(version_id: Option<&str>, requester: Option<&str>) -> Value {
    let mut object = json!({"key": "releases/r1.json", "size": 60, "etag": "x", "sequencer": "1"});
    if let Some(v) = version_id {
        object["version-id"] = json!(v);
    }
    let mut detail = json!({"version": "0", "bucket": {"name": "manifests"}, "object": object,
                            "request-id": "r", "reason": "PutObject"});
    if let Some(r) = requester {
        detail["requester"] = json!(r);
    }
    json!({
        "version": "0", "id": "e1", "detail-type": "Object Created", "source": "aws.s3",
        "account": "111122223333", "time": "2026-01-01T00:00:00Z", "region": "us-east-1",
        "resources": ["arn:aws:s3:::manifests"], "detail": detail
    })
}

#[tokio::test]
async fn an_upload_is_requested_by_the_uploaders_account_via_the_object() {
    let cases = [
        (
            Some("v1"),
            Some("123456789012"),
            "account:123456789012 via s3://manifests/releases/r1.json?versionId=v1",
        ),
        // No version: no versionId part.
        (
            None,
            Some("123456789012"),
            "account:123456789012 via s3://manifests/releases/r1.json",
        ),
        // No requester in the event: the event's account.
        (
            Some("v1"),
            None,
            "account:111122223333 via s3://manifests/releases/r1.json?versionId=v1",
        ),
        // An AWS service wrote it.
        (
            None,
            Some("s3.amazonaws.com"),
            "service:s3.amazonaws.com via s3://manifests/releases/r1.json",
        ),
    ];
    for (version, requester, expected) in cases {
        let w = World::new();
        w.source.put(
            "manifests",
            "releases/r1.json",
            r#"{"releaseId": "r1", "pipelines": ["app"]}"#,
        );
        let view = w.check(s3_event(version, requester), "r1").await;
        assert_eq!(view["requestedBy"], expected);
    }
}

#[tokio::test]
async fn an_inline_manifest_is_a_local_request() {
    // The local runner feeds CheckManifest the manifest itself (ManifestInput::Inline).
    let w = World::new();
    let view = w
        .check(json!({"releaseId": "r2", "pipelines": ["app"]}), "r2")
        .await;
    assert_eq!(view["requestedBy"], "local");
    assert_eq!(view["source"], "inline");
    let stored = w
        .store
        .get(&ReleaseId::parse("r2").unwrap())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(stored.release.source.kind, SourceKind::Inline);
    assert!(stored.release.manifest_hash.is_some());
}

#[test]
fn source_kinds_keep_their_json_and_stored_names() {
    for (kind, name) in [
        (SourceKind::S3, "s3"),
        (SourceKind::Inline, "inline"),
        (SourceKind::Api, "api"),
    ] {
        assert_eq!(serde_json::to_value(kind).unwrap(), json!(name));
        assert_eq!(
            serde_json::from_value::<SourceKind>(json!(name)).unwrap(),
            kind
        );
        assert_eq!(kind.as_str(), name);
        assert_eq!(SourceKind::parse(name), Some(kind));
    }
    assert_eq!(SourceKind::parse("local"), None);
    assert!(serde_json::from_value::<SourceKind>(json!("S3")).is_err());
}

#[test]
fn the_content_hash_is_the_normalized_manifest() {
    let hash = |text: &str| Manifest::parse(text.as_bytes()).unwrap().content_hash();
    let base = hash(r#"{"releaseId": "r1", "pipelines": ["app", {"name": "web", "wave": 2}]}"#);
    assert!(
        base.starts_with("sha256:") && base.len() == 7 + 64,
        "{base}"
    );
    // Written differently, same release.
    for same in [
        r#"{ "pipelines": [{"name": "app"}, {"wave": 2, "name": "web"}], "releaseId": "r1" }"#,
        r#"{"releaseId": "r1", "onFailure": "stop", "maxConcurrency": 10,
            "pipelines": [{"name": "app", "wave": 1, "timeoutMinutes": 120}, {"name": "web", "wave": 2}]}"#,
    ] {
        assert_eq!(hash(same), base, "{same}");
    }
    // Any value that changes what runs, or the description, is another manifest.
    for other in [
        r#"{"releaseId": "r1", "pipelines": ["web", {"name": "app", "wave": 2}]}"#,
        r#"{"releaseId": "r1", "pipelines": ["app", {"name": "web", "wave": 3}]}"#,
        r#"{"releaseId": "r1", "pipelines": ["app", {"name": "web", "wave": 2, "variables": {"A": "1"}}]}"#,
        r#"{"releaseId": "r1", "onFailure": "continue", "pipelines": ["app", {"name": "web", "wave": 2}]}"#,
        r#"{"releaseId": "r1", "description": "d", "pipelines": ["app", {"name": "web", "wave": 2}]}"#,
        r#"{"releaseId": "r9", "pipelines": ["app", {"name": "web", "wave": 2}]}"#,
    ] {
        assert_ne!(hash(other), base, "{other}");
    }
}

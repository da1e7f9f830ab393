//! The behaviour every [`ReleaseStore`] must have. Each adapter's tests call [`check_all`]
//! on a fresh store, so DynamoDB, SQLite and memory agree.

use rm_core::manifest::{Manifest, OnFailure, PipelineSpec};
use rm_core::ports::{Claim, NewRelease, ReleaseStore, RunKey};
use rm_core::release::*;
use time::macros::datetime;
use time::OffsetDateTime;

const T0: OffsetDateTime = datetime!(2026-01-01 00:00:00 UTC);

/// A release of `pipelines` (all wave 1 unless the name ends in `-2`), claimed by `owner`.
pub fn new_release(id: &str, owner: &str, pipelines: &[&str]) -> NewRelease {
    let release_id = ReleaseId::parse(id).expect("test release id");
    let specs: Vec<PipelineSpec> = pipelines
        .iter()
        .map(|p| {
            let mut spec = PipelineSpec::new(*p, if p.ends_with("-2") { 2 } else { 1 });
            spec.variables.insert("VERSION".into(), "1.2.3".into());
            spec
        })
        .collect();
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
            description: Some("contract".into()),
            cause: None,
            stop_requested: false,
        },
        manifest: Manifest {
            release_id,
            description: Some("contract".into()),
            pipelines: specs,
            max_concurrency: 10,
            on_failure: OnFailure::Stop,
        },
    }
}

fn key(id: &str, pipeline: &str) -> RunKey {
    RunKey {
        release_id: ReleaseId::parse(id).expect("test release id"),
        pipeline: pipeline.to_owned(),
    }
}

/// Runs every check; `prefix` keeps release ids apart when the store is shared.
pub async fn check_all(store: &dyn ReleaseStore, prefix: &str) {
    claim_is_exclusive_and_retryable(store, &format!("{prefix}claim")).await;
    runs_are_recorded_and_found_by_execution(store, &format!("{prefix}runs")).await;
    statuses_never_move_backwards(store, &format!("{prefix}status")).await;
    tokens_keep_only_the_latest(store, &format!("{prefix}tokens")).await;
    finish_is_conditional_on_owner(store, &format!("{prefix}finish")).await;
    release_claim_frees_the_id(store, &format!("{prefix}free")).await;
}

pub async fn claim_is_exclusive_and_retryable(store: &dyn ReleaseStore, id: &str) {
    let first = new_release(id, "exec-a", &["app", "web"]);
    assert_eq!(store.claim(&first).await.unwrap(), Claim::Claimed);
    assert_eq!(
        store.claim(&first).await.unwrap(),
        Claim::Claimed,
        "a retry by the owner passes"
    );
    let second = new_release(id, "exec-b", &["other"]);
    assert_eq!(
        store.claim(&second).await.unwrap(),
        Claim::Duplicate {
            owner: "exec-a".into()
        }
    );
    let stored = store
        .get(&first.record.release_id)
        .await
        .unwrap()
        .expect("claimed release is stored");
    assert_eq!(stored.release.owner, "exec-a");
    assert_eq!(stored.release.source, first.record.source);
    assert_eq!(stored.release.description.as_deref(), Some("contract"));
    let mut names: Vec<&str> = stored.runs.iter().map(|r| r.pipeline()).collect();
    names.sort_unstable();
    assert_eq!(
        names,
        ["app", "web"],
        "the duplicate did not touch the runs"
    );
    assert!(stored
        .runs
        .iter()
        .all(|r| r.status == RunStatus::NotStarted));
    let app = stored.runs.iter().find(|r| r.pipeline() == "app").unwrap();
    assert_eq!(
        app.spec.variables.get("VERSION").map(String::as_str),
        Some("1.2.3")
    );
}

pub async fn runs_are_recorded_and_found_by_execution(store: &dyn ReleaseStore, id: &str) {
    let rel = new_release(id, "exec-a", &["app", "web"]);
    store.claim(&rel).await.unwrap();
    let rid = &rel.record.release_id;
    let exec = format!("{id}-e1");
    let run = store
        .record_start(rid, "exec-a", "app", &exec, T0)
        .await
        .unwrap();
    assert_eq!(run.status, RunStatus::InProgress);
    assert_eq!(run.execution_id.as_deref(), Some(exec.as_str()));
    assert_eq!(run.started_at, Some(T0));
    let again = store
        .record_start(rid, "exec-a", "app", &exec, T0)
        .await
        .unwrap();
    assert_eq!(again.history.len(), 1, "a repeated start is recorded once");
    assert!(
        store
            .record_start(rid, "exec-b", "web", "other", T0)
            .await
            .is_err(),
        "only the owner records starts"
    );
    assert_eq!(
        store.find_by_execution(&exec).await.unwrap(),
        Some(key(id, "app"))
    );
    assert_eq!(store.find_by_execution("unknown-exec").await.unwrap(), None);
}

pub async fn statuses_never_move_backwards(store: &dyn ReleaseStore, id: &str) {
    let rel = new_release(id, "exec-a", &["app"]);
    store.claim(&rel).await.unwrap();
    let rid = &rel.record.release_id;
    store
        .record_start(rid, "exec-a", "app", &format!("{id}-e"), T0)
        .await
        .unwrap();
    let k = key(id, "app");
    let t1 = T0 + time::Duration::minutes(3);
    let run = store
        .record_status(&k, RunStatus::Succeeded, t1)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(run.status, RunStatus::Succeeded);
    assert_eq!(run.ended_at, Some(t1));
    let dup = store
        .record_status(&k, RunStatus::Succeeded, t1)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(dup.history.len(), 2, "a duplicate event is recorded once");
    let stale = store
        .record_status(&k, RunStatus::InProgress, T0)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        stale.status,
        RunStatus::Succeeded,
        "a stale event is ignored"
    );
    let statuses: Vec<RunStatus> = stale.history.iter().map(|h| h.status).collect();
    assert_eq!(statuses, [RunStatus::InProgress, RunStatus::Succeeded]);
    assert_eq!(stale.history[1].at, t1);
    assert_eq!(
        store
            .record_status(&key(id, "nope"), RunStatus::Failed, t1)
            .await
            .unwrap(),
        None
    );
}

pub async fn tokens_keep_only_the_latest(store: &dyn ReleaseStore, id: &str) {
    let rel = new_release(id, "exec-a", &["app"]);
    store.claim(&rel).await.unwrap();
    let k = key(id, "app");
    store.set_token(&k, "token-1", T0).await.unwrap();
    let run = store.set_token(&k, "token-2", T0).await.unwrap();
    assert_eq!(run.task_token.as_deref(), Some("token-2"));
    let waiting = store.waiting_runs().await.unwrap();
    assert!(waiting
        .iter()
        .any(|r| r.release_id == k.release_id && r.task_token.as_deref() == Some("token-2")));
    assert!(
        !store.clear_token(&k, "token-1").await.unwrap(),
        "an old token does not clear a newer one"
    );
    assert!(store.clear_token(&k, "token-2").await.unwrap());
    assert!(
        !store.clear_token(&k, "token-2").await.unwrap(),
        "only one side clears it"
    );
    let waiting = store.waiting_runs().await.unwrap();
    assert!(!waiting.iter().any(|r| r.release_id == k.release_id));
}

pub async fn finish_is_conditional_on_owner(store: &dyn ReleaseStore, id: &str) {
    let rel = new_release(id, "exec-a", &["app"]);
    store.claim(&rel).await.unwrap();
    let rid = &rel.record.release_id;
    assert!(store
        .finish(rid, "exec-b", ReleaseStatus::Failed, Some("no"), T0)
        .await
        .is_err());
    assert!(store.request_stop(rid, "exec-b").await.is_err());
    store.request_stop(rid, "exec-a").await.unwrap();
    let t = T0 + time::Duration::hours(1);
    let done = store
        .finish(
            rid,
            "exec-a",
            ReleaseStatus::Failed,
            Some("app (Failed)"),
            t,
        )
        .await
        .unwrap();
    assert_eq!(done.status, ReleaseStatus::Failed);
    let stored = store.get(rid).await.unwrap().unwrap();
    assert_eq!(stored.release.status, ReleaseStatus::Failed);
    assert_eq!(stored.release.cause.as_deref(), Some("app (Failed)"));
    assert_eq!(stored.release.ended_at, Some(t));
    assert!(stored.release.stop_requested);
}

pub async fn release_claim_frees_the_id(store: &dyn ReleaseStore, id: &str) {
    let rel = new_release(id, "exec-a", &["app"]);
    store.claim(&rel).await.unwrap();
    let rid = &rel.record.release_id;
    assert!(store.release_claim(rid, "exec-b").await.is_err());
    store.release_claim(rid, "exec-a").await.unwrap();
    assert!(store.get(rid).await.unwrap().is_none());
    let again = new_release(id, "exec-c", &["app"]);
    assert_eq!(store.claim(&again).await.unwrap(), Claim::Claimed);
}

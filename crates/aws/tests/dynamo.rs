//! DynamoStore with the real SDK client against moto server and dynalite (both started by
//! scripts/test). Every scenario runs on both; the concurrent claim runs on dynalite only,
//! because moto does not serialise concurrent conditional writes.

mod common;

use aws_sdk_dynamodb::types::AttributeValue;
use common::*;
use futures::future::join_all;
use rm_aws::dynamo::schema::waiting_shard;
use rm_aws::DynamoStore;
use rm_core::error::PortError;
use rm_core::manifest::PipelineSpec;
use rm_core::ports::{Claim, ReleaseStore};
use rm_core::release::{ReleaseStatus, RunStatus};
use rm_testkit::store_contract::BrokenItems;
use std::collections::HashMap;
use std::sync::Arc;

/// Generates one test per backend for an `async fn(Dynamo)` scenario.
macro_rules! on_both {
    ($($scenario:ident),* $(,)?) => {
        mod moto {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $scenario() {
                    super::$scenario(super::Dynamo::Moto).await;
                }
            )*
        }
        mod dynalite {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $scenario() {
                    super::$scenario(super::Dynamo::Dynalite).await;
                }
            )*
        }
    };
}

on_both!(
    store_contract,
    claim_first_wins_and_duplicate_leaves_the_winner_untouched,
    retried_claim_keeps_runs_that_moved_on,
    query_reads_the_release_and_all_runs_in_manifest_order,
    execution_id_item_leads_to_its_run,
    event_before_record_start_keeps_both,
    waiting_index_lists_runs_that_carry_a_token,
    statuses_never_move_backwards,
    token_races_keep_the_newest,
    release_writes_are_conditional_on_owner,
    release_claim_gives_up_only_unstarted_releases,
    waiting_runs_are_spread_over_shards_and_read_from_all,
    running_releases_come_from_the_running_partition,
    sweep_lists_skip_items_that_do_not_decode,
);

/// The behaviour every store must have (the testkit's contract, shared with SQLite and memory).
async fn store_contract(backend: Dynamo) {
    let store = fresh_store(backend).await;
    rm_testkit::store_contract::check_all(&store, "contract-").await;
}

async fn claim_first_wins_and_duplicate_leaves_the_winner_untouched(backend: Dynamo) {
    let store = fresh_store(backend).await;
    let winner = release("r1", "exec-a", &["app", "web"]);
    assert_eq!(store.claim(&winner).await.unwrap(), Claim::Claimed);
    let before = store.get(&rid("r1")).await.unwrap().unwrap();

    let mut loser = release("r1", "exec-b", &["db"]);
    loser.record.description = Some("the loser".into());
    assert_eq!(
        store.claim(&loser).await.unwrap(),
        Claim::Duplicate {
            owner: "exec-a".into()
        }
    );
    let after = store.get(&rid("r1")).await.unwrap().unwrap();
    assert_eq!(
        after, before,
        "the duplicate did not touch the winner's items"
    );
    assert_eq!(
        store.get_run(&rid("r1"), "db").await.unwrap(),
        None,
        "the loser's runs were not written"
    );

    assert_eq!(
        store.claim(&winner).await.unwrap(),
        Claim::Claimed,
        "a retry by the owner is accepted"
    );
}

async fn retried_claim_keeps_runs_that_moved_on(backend: Dynamo) {
    let store = fresh_store(backend).await;
    let rel = release("r2", "exec-a", &["app", "web"]);
    store.claim(&rel).await.unwrap();
    store
        .record_start(&rid("r2"), "exec-a", "app", "e-app", T0)
        .await
        .unwrap();
    assert_eq!(store.claim(&rel).await.unwrap(), Claim::Claimed);
    let app = store.get_run(&rid("r2"), "app").await.unwrap().unwrap();
    assert_eq!(
        app.status,
        RunStatus::InProgress,
        "the retry did not reset a started run"
    );
    assert_eq!(app.execution_id.as_deref(), Some("e-app"));

    // A very late retry, after the release ended, passes without reopening it.
    store
        .finish(&rid("r2"), "exec-a", ReleaseStatus::Succeeded, None, T0)
        .await
        .unwrap();
    assert_eq!(store.claim(&rel).await.unwrap(), Claim::Claimed);
    let stored = store.get(&rid("r2")).await.unwrap().unwrap();
    assert_eq!(stored.release.status, ReleaseStatus::Succeeded);
    assert_eq!(stored.runs.len(), 2);
}

async fn query_reads_the_release_and_all_runs_in_manifest_order(backend: Dynamo) {
    let store = fresh_store(backend).await;
    // 500 runs of about 3 KB each: about 1.5 MB, more than one 1 MB Query page.
    let specs: Vec<PipelineSpec> = (0..500)
        .map(|i| {
            let mut spec = PipelineSpec::new(format!("svc-{:03}", 499 - i), 1 + (i % 10) as u32);
            for v in 0..3 {
                spec.variables.insert(format!("V{v}"), "x".repeat(1000));
            }
            spec
        })
        .collect();
    let rel = release_of("big", "exec-a", specs.clone());
    assert_eq!(store.claim(&rel).await.unwrap(), Claim::Claimed);
    let stored = store.get(&rid("big")).await.unwrap().unwrap();
    assert_eq!(stored.release.owner, "exec-a");
    assert_eq!(stored.release.source, rel.record.source);
    assert_eq!(stored.runs.len(), 500);
    let read: Vec<&PipelineSpec> = stored.runs.iter().map(|r| &r.spec).collect();
    let written: Vec<&PipelineSpec> = specs.iter().collect();
    assert_eq!(read, written, "every run, with its spec, in manifest order");

    assert!(store.get(&rid("unknown")).await.unwrap().is_none());

    let first_page = dynamo_client(backend)
        .await
        .query()
        .table_name(store.table())
        .key_condition_expression("pk = :pk")
        .expression_attribute_values(":pk", AttributeValue::S("REL#big".into()))
        .send()
        .await
        .unwrap();
    println!(
        "{backend:?}: first Query page of the 500-run release has {} items, more pages: {}",
        first_page.count,
        first_page.last_evaluated_key.is_some()
    );
    assert!(
        first_page.last_evaluated_key.is_some(),
        "the release spans more than one Query page, so get() followed the pages"
    );
}

async fn execution_id_item_leads_to_its_run(backend: Dynamo) {
    let store = fresh_store(backend).await;
    store
        .claim(&release("r3", "exec-a", &["app", "web"]))
        .await
        .unwrap();
    let run = store
        .record_start(&rid("r3"), "exec-a", "web", "0f1e2d3c-exec", T0)
        .await
        .unwrap();
    assert_eq!(run.status, RunStatus::InProgress);
    assert_eq!(
        store.find_by_execution("0f1e2d3c-exec").await.unwrap(),
        Some(run_key("r3", "web"))
    );
    assert_eq!(
        store.find_by_execution("never-started").await.unwrap(),
        None
    );
    let other = store
        .record_start(&rid("r3"), "exec-a", "web", "another-exec", T0)
        .await;
    assert!(
        matches!(other, Err(PortError::ConditionFailed(_))),
        "a run is started once: {other:?}"
    );
    let stolen = store
        .record_start(&rid("r3"), "exec-a", "app", "0f1e2d3c-exec", T0)
        .await;
    assert!(
        matches!(stolen, Err(PortError::ConditionFailed(_))),
        "an execution id belongs to one run: {stolen:?}"
    );
}

/// The pipeline's STARTED event can be recorded before start-pipelines records the start.
async fn event_before_record_start_keeps_both(backend: Dynamo) {
    let store = fresh_store(backend).await;
    store
        .claim(&release("r4", "exec-a", &["app"]))
        .await
        .unwrap();
    let k = run_key("r4", "app");
    let t1 = T0 + time::Duration::seconds(5);
    store
        .record_status(&k, RunStatus::InProgress, T0)
        .await
        .unwrap();
    let run = store
        .record_start(&rid("r4"), "exec-a", "app", "e-4", t1)
        .await
        .unwrap();
    assert_eq!(run.execution_id.as_deref(), Some("e-4"));
    assert_eq!(run.status, RunStatus::InProgress);
    assert_eq!(run.started_at, Some(T0), "the earlier start time is kept");
    assert_eq!(run.history.len(), 1);
}

async fn waiting_index_lists_runs_that_carry_a_token(backend: Dynamo) {
    let store = fresh_store(backend).await;
    store
        .claim(&release("r5", "exec-a", &["app", "web", "db"]))
        .await
        .unwrap();
    assert!(store.waiting_runs().await.unwrap().is_empty());
    store
        .set_token(&run_key("r5", "app"), "tok-app", T0)
        .await
        .unwrap();
    store
        .set_token(&run_key("r5", "db"), "tok-db", T0)
        .await
        .unwrap();
    let mut waiting: Vec<(String, Option<String>)> = store
        .waiting_runs()
        .await
        .unwrap()
        .into_iter()
        .map(|r| (r.spec.name, r.task_token))
        .collect();
    waiting.sort();
    assert_eq!(
        waiting,
        [
            ("app".to_owned(), Some("tok-app".to_owned())),
            ("db".to_owned(), Some("tok-db".to_owned()))
        ]
    );
    assert!(store
        .clear_token(&run_key("r5", "app"), "tok-app")
        .await
        .unwrap());
    let waiting: Vec<String> = store
        .waiting_runs()
        .await
        .unwrap()
        .into_iter()
        .map(|r| r.spec.name)
        .collect();
    assert_eq!(waiting, ["db"]);
    let missing = store.set_token(&run_key("r5", "nope"), "t", T0).await;
    assert!(
        matches!(missing, Err(PortError::NotFound(_))),
        "{missing:?}"
    );
}

async fn statuses_never_move_backwards(backend: Dynamo) {
    let store = fresh_store(backend).await;
    store
        .claim(&release("r6", "exec-a", &["app"]))
        .await
        .unwrap();
    let k = run_key("r6", "app");
    store
        .record_start(&rid("r6"), "exec-a", "app", "e-6", T0)
        .await
        .unwrap();
    let at = |m: i64| T0 + time::Duration::minutes(m);
    let stopping = store
        .record_status(&k, RunStatus::Stopping, at(1))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(stopping.status, RunStatus::Stopping);
    assert_eq!(stopping.ended_at, None);
    // Out of order: InProgress after Stopping is stale.
    let stale = store
        .record_status(&k, RunStatus::InProgress, at(2))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(stale, stopping, "a stale change returns the run unchanged");
    let stopped = store
        .record_status(&k, RunStatus::Stopped, at(3))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(stopped.ended_at, Some(at(3)));
    // A terminal status is final, even for another terminal status.
    for (status, m) in [
        (RunStatus::Stopped, 4),
        (RunStatus::Failed, 5),
        (RunStatus::NotStarted, 6),
    ] {
        let same = store
            .record_status(&k, status, at(m))
            .await
            .unwrap()
            .unwrap();
        assert_eq!(same, stopped, "{status} after Stopped is ignored");
    }
    let statuses: Vec<RunStatus> = stopped.history.iter().map(|h| h.status).collect();
    assert_eq!(
        statuses,
        [
            RunStatus::InProgress,
            RunStatus::Stopping,
            RunStatus::Stopped
        ]
    );
}

async fn token_races_keep_the_newest(backend: Dynamo) {
    let store = fresh_store(backend).await;
    store
        .claim(&release("r7", "exec-a", &["app"]))
        .await
        .unwrap();
    let k = run_key("r7", "app");
    store.set_token(&k, "old", T0).await.unwrap();
    // A retried Await task stores a new token; a late completion of the old one must not
    // remove it.
    store.set_token(&k, "new", T0).await.unwrap();
    assert!(!store.clear_token(&k, "old").await.unwrap());
    let run = store.get_run(&rid("r7"), "app").await.unwrap().unwrap();
    assert_eq!(run.task_token.as_deref(), Some("new"));
    // Terminal status first, then the token: set_token returns the terminal run, so the
    // waiting task sees it and completes at once.
    store
        .record_status(&k, RunStatus::Succeeded, T0)
        .await
        .unwrap();
    let run = store.set_token(&k, "newest", T0).await.unwrap();
    assert_eq!(run.status, RunStatus::Succeeded);
    assert_eq!(run.task_token.as_deref(), Some("newest"));
    // Two sides race to clear the same token: exactly one wins. (Concurrent conditional
    // writes are only faithful on dynalite; on moto the two run one after the other.)
    let (a, b) = match backend {
        Dynamo::Dynalite => tokio::join!(
            store.clear_token(&k, "newest"),
            store.clear_token(&k, "newest")
        ),
        Dynamo::Moto => (
            store.clear_token(&k, "newest").await,
            store.clear_token(&k, "newest").await,
        ),
    };
    assert!(a.unwrap() ^ b.unwrap(), "exactly one side clears a token");
}

async fn release_writes_are_conditional_on_owner(backend: Dynamo) {
    let store = fresh_store(backend).await;
    store
        .claim(&release("r8", "exec-a", &["app"]))
        .await
        .unwrap();
    let r8 = rid("r8");
    let stop = store.request_stop(&r8, "exec-b").await;
    assert!(
        matches!(stop, Err(PortError::ConditionFailed(_))),
        "{stop:?}"
    );
    let finish = store
        .finish(&r8, "exec-b", ReleaseStatus::Succeeded, None, T0)
        .await;
    assert!(
        matches!(finish, Err(PortError::ConditionFailed(_))),
        "{finish:?}"
    );
    let start = store.record_start(&r8, "exec-b", "app", "e-8", T0).await;
    assert!(
        matches!(start, Err(PortError::ConditionFailed(_))),
        "{start:?}"
    );
    let unknown = store
        .finish(&rid("nope"), "exec-a", ReleaseStatus::Failed, None, T0)
        .await;
    assert!(
        matches!(unknown, Err(PortError::ConditionFailed(_))),
        "{unknown:?}"
    );

    let stored = store.get(&r8).await.unwrap().unwrap();
    assert_eq!(stored.release.status, ReleaseStatus::Running);
    assert!(!stored.release.stop_requested);

    let t = T0 + time::Duration::hours(2);
    let failed = store
        .finish(
            &r8,
            "exec-a",
            ReleaseStatus::Failed,
            Some("app (Failed)"),
            t,
        )
        .await
        .unwrap();
    assert_eq!(failed.cause.as_deref(), Some("app (Failed)"));
    // An ended release stays as it ended: a second finish fails and says how it ended.
    let again = store
        .finish(&r8, "exec-a", ReleaseStatus::Succeeded, None, t)
        .await;
    match again {
        Err(PortError::ConditionFailed(m)) => assert!(m.contains("FAILED"), "{m}"),
        other => panic!("a second finish: {other:?}"),
    }
    let stored = store.get(&r8).await.unwrap().unwrap();
    assert_eq!(stored.release, failed);

    // A finish without a cause writes none.
    store
        .claim(&release("r8b", "exec-a", &["app"]))
        .await
        .unwrap();
    let done = store
        .finish(&rid("r8b"), "exec-a", ReleaseStatus::Succeeded, None, t)
        .await
        .unwrap();
    assert_eq!(done.status, ReleaseStatus::Succeeded);
    assert_eq!(done.cause, None);
    assert_eq!(done.ended_at, Some(t));
}

/// The raw item of `key` (a consistent GetItem).
async fn raw_item(
    store: &DynamoStore,
    backend: Dynamo,
    pk: &str,
    sk: &str,
) -> Option<HashMap<String, AttributeValue>> {
    dynamo_client(backend)
        .await
        .get_item()
        .table_name(store.table())
        .key("pk", AttributeValue::S(pk.into()))
        .key("sk", AttributeValue::S(sk.into()))
        .consistent_read(true)
        .send()
        .await
        .unwrap()
        .item
}

fn attr<'a>(item: &'a HashMap<String, AttributeValue>, name: &str) -> Option<&'a str> {
    item.get(name)
        .and_then(|v| v.as_s().ok())
        .map(String::as_str)
}

/// Waiting runs carry `waitingPk = WAITING#NN` (their stable shard) and fixed-width
/// `tokenAt`/`waitingSince`; the sweep's list reads all 16 shards, following pages, and the
/// single `WAITING` partition of runs that waited across the upgrade.
async fn waiting_runs_are_spread_over_shards_and_read_from_all(backend: Dynamo) {
    let store = fresh_store(backend).await;
    let pipelines: Vec<String> = (0..40).map(|i| format!("svc-{i:02}")).collect();
    let names: Vec<&str> = pipelines.iter().map(String::as_str).collect();
    store
        .claim(&release("r11", "exec-a", &names))
        .await
        .unwrap();
    // Tokens stored newest pipeline first: listed by time, across shards.
    for (i, p) in pipelines.iter().enumerate().rev() {
        let at = T0 + time::Duration::seconds(i as i64) + time::Duration::milliseconds(250);
        store
            .set_token(&run_key("r11", p), &format!("tok-{p}"), at)
            .await
            .unwrap();
    }
    let mut shards = std::collections::BTreeSet::new();
    for p in &pipelines {
        let item = raw_item(&store, backend, "REL#r11", &format!("RUN#{p}"))
            .await
            .unwrap();
        let shard = attr(&item, "waitingPk").unwrap().to_owned();
        assert_eq!(shard, waiting_shard("r11", p));
        assert!(shard.starts_with("WAITING#"), "{shard}");
        shards.insert(shard);
        let token_at = attr(&item, "tokenAt").unwrap();
        assert_eq!(attr(&item, "waitingSince"), Some(token_at));
        assert_eq!(
            token_at.len(),
            "2026-01-01T00:00:00.000000000Z".len(),
            "{token_at}"
        );
    }
    assert!(shards.len() > 8, "40 runs spread over shards: {shards:?}");

    // A run waiting since before the shards, in the legacy partition with a short time.
    let client = dynamo_client(backend).await;
    client
        .update_item()
        .table_name(store.table())
        .key("pk", AttributeValue::S("REL#r11".into()))
        .key("sk", AttributeValue::S("RUN#svc-39".into()))
        .update_expression("SET waitingPk = :legacy, waitingSince = :t REMOVE tokenAt")
        .expression_attribute_values(":legacy", AttributeValue::S("WAITING".into()))
        .expression_attribute_values(":t", AttributeValue::S("2025-12-31T23:00:00Z".into()))
        .send()
        .await
        .unwrap();

    let waiting: Vec<String> = store
        .waiting_runs()
        .await
        .unwrap()
        .into_iter()
        .map(|r| r.spec.name)
        .collect();
    let mut expected = vec!["svc-39".to_owned()];
    expected.extend(pipelines[..39].iter().cloned());
    assert_eq!(waiting, expected, "every shard, merged oldest first");

    // The legacy run's token is replaced like any other (no tokenAt yet) and moves to its
    // shard; a touch keeps a run in its shard.
    store
        .set_token(
            &run_key("r11", "svc-39"),
            "tok-again",
            T0 + time::Duration::hours(1),
        )
        .await
        .unwrap();
    store
        .touch_waiting(
            &run_key("r11", "svc-00"),
            "tok-svc-00",
            T0 + time::Duration::hours(2),
        )
        .await
        .unwrap();
    for p in ["svc-39", "svc-00"] {
        let item = raw_item(&store, backend, "REL#r11", &format!("RUN#{p}"))
            .await
            .unwrap();
        assert_eq!(
            attr(&item, "waitingPk"),
            Some(waiting_shard("r11", p).as_str())
        );
    }
    let waiting: Vec<String> = store
        .waiting_runs()
        .await
        .unwrap()
        .into_iter()
        .map(|r| r.spec.name)
        .collect();
    assert_eq!(waiting.len(), 40);
    assert_eq!(waiting[38..], ["svc-39", "svc-00"]);
}

/// A RUNNING release's item is in the waiting index's `RUNNING` partition (sorted by
/// requestedAt) until finish removes it; no other index is needed.
async fn running_releases_come_from_the_running_partition(backend: Dynamo) {
    let store = fresh_store(backend).await;
    for (id, minutes) in [("r12-late", 10), ("r12-early", 1), ("r12-ended", 5)] {
        let mut rel = release(id, "exec-a", &["app"]);
        rel.record.requested_at = T0 + time::Duration::minutes(minutes);
        store.claim(&rel).await.unwrap();
    }
    let item = raw_item(&store, backend, "REL#r12-early", "RELEASE")
        .await
        .unwrap();
    assert_eq!(attr(&item, "waitingPk"), Some("RUNNING"));
    assert_eq!(
        attr(&item, "waitingSince"),
        Some("2026-01-01T00:01:00.000000000Z")
    );
    store
        .finish(
            &rid("r12-ended"),
            "exec-a",
            ReleaseStatus::Failed,
            Some("x"),
            T0,
        )
        .await
        .unwrap();
    let item = raw_item(&store, backend, "REL#r12-ended", "RELEASE")
        .await
        .unwrap();
    assert_eq!(
        attr(&item, "waitingPk"),
        None,
        "finish removes the index key"
    );
    assert_eq!(attr(&item, "waitingSince"), None);
    let running: Vec<String> = store
        .running_releases()
        .await
        .unwrap()
        .into_iter()
        .map(|r| r.release_id.to_string())
        .collect();
    assert_eq!(running, ["r12-early", "r12-late"], "in order of request");
}

/// A garbage attribute on a run or release item, or a raw item that is no run or release
/// at all, is logged and skipped by waiting_runs and running_releases (issue 9, fault 8).
async fn sweep_lists_skip_items_that_do_not_decode(backend: Dynamo) {
    let store = fresh_store(backend).await;
    let broken = BrokenItems::prepare(&store, "r13").await;
    broken.check_listed(&store).await;
    let client = dynamo_client(backend).await;
    let garbage = AttributeValue::M(HashMap::from([(
        "not".to_owned(),
        AttributeValue::S("a number".into()),
    )]));
    client
        .update_item()
        .table_name(store.table())
        .key(
            "pk",
            AttributeValue::S(format!("REL#{}", broken.broken_run.release_id)),
        )
        .key(
            "sk",
            AttributeValue::S(format!("RUN#{}", broken.broken_run.pipeline)),
        )
        .update_expression("SET wave = :garbage")
        .expression_attribute_values(":garbage", garbage.clone())
        .send()
        .await
        .unwrap();
    client
        .update_item()
        .table_name(store.table())
        .key(
            "pk",
            AttributeValue::S(format!("REL#{}", broken.broken_release)),
        )
        .key("sk", AttributeValue::S("RELEASE".into()))
        .update_expression("SET requestedAt = :garbage")
        .expression_attribute_values(":garbage", garbage)
        .send()
        .await
        .unwrap();
    // Raw items in the index's partitions that are nothing this store wrote.
    for (pk, wpk) in [
        ("JUNK#1", waiting_shard("r13-good", "app")),
        ("JUNK#2", "WAITING".to_owned()),
        ("JUNK#3", "RUNNING".to_owned()),
    ] {
        client
            .put_item()
            .table_name(store.table())
            .item("pk", AttributeValue::S(pk.into()))
            .item("sk", AttributeValue::S("RUN#x".into()))
            .item("waitingPk", AttributeValue::S(wpk))
            .item("waitingSince", AttributeValue::S("garbage".into()))
            .item("releaseId", AttributeValue::N("7".into()))
            .send()
            .await
            .unwrap();
    }
    broken.check_skipped(&store).await;
}

async fn release_claim_gives_up_only_unstarted_releases(backend: Dynamo) {
    let store = fresh_store(backend).await;
    store
        .claim(&release("r9", "exec-a", &["app", "web"]))
        .await
        .unwrap();
    let other = store.release_claim(&rid("r9"), "exec-b").await;
    assert!(
        matches!(other, Err(PortError::ConditionFailed(_))),
        "{other:?}"
    );
    assert!(store.get(&rid("r9")).await.unwrap().is_some());
    store.release_claim(&rid("r9"), "exec-a").await.unwrap();
    assert!(store.get(&rid("r9")).await.unwrap().is_none());
    assert!(store.get_run(&rid("r9"), "app").await.unwrap().is_none());
    store.release_claim(&rid("r9"), "exec-a").await.unwrap();

    store
        .claim(&release("r10", "exec-a", &["app"]))
        .await
        .unwrap();
    store
        .record_start(&rid("r10"), "exec-a", "app", "e-10", T0)
        .await
        .unwrap();
    let started = store.release_claim(&rid("r10"), "exec-a").await;
    assert!(
        matches!(started, Err(PortError::ConditionFailed(_))),
        "{started:?}"
    );
    assert!(store.get(&rid("r10")).await.unwrap().is_some());
}

/// dynalite serves one request at a time with faithful conditional writes (moto does not
/// lock concurrent writes): 32 executions claim the same id at once, exactly one wins and
/// every other one is told who.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_claims_have_exactly_one_winner() {
    let store = Arc::new(fresh_store(Dynamo::Dynalite).await);
    let attempts = (0..32).map(|i| {
        let store: Arc<DynamoStore> = Arc::clone(&store);
        tokio::spawn(async move {
            let owner = format!("exec-{i}");
            let claim = store
                .claim(&release("contested", &owner, &["app", "web"]))
                .await
                .expect("claim");
            (owner, claim)
        })
    });
    let results: Vec<(String, Claim)> = join_all(attempts)
        .await
        .into_iter()
        .map(|r| r.expect("task"))
        .collect();
    let winners: Vec<&String> = results
        .iter()
        .filter(|(_, c)| *c == Claim::Claimed)
        .map(|(o, _)| o)
        .collect();
    assert_eq!(winners.len(), 1, "exactly one claim wins: {results:?}");
    let winner = winners[0].clone();
    for (owner, claim) in &results {
        if *owner != winner {
            assert_eq!(
                *claim,
                Claim::Duplicate {
                    owner: winner.clone()
                }
            );
        }
    }
    let stored = store.get(&rid("contested")).await.unwrap().unwrap();
    assert_eq!(stored.release.owner, winner);
    assert_eq!(stored.runs.len(), 2);
}

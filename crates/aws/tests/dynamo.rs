//! DynamoStore with the real SDK client against moto server and dynalite (both started by
//! scripts/test). Every scenario runs on both; the concurrent claim runs on dynalite only,
//! because moto does not serialise concurrent conditional writes.

mod common;

use aws_sdk_dynamodb::types::AttributeValue;
use common::*;
use futures::future::join_all;
use rm_aws::dynamo::schema::{outbox_shard, waiting_shard};
use rm_aws::DynamoStore;
use rm_core::error::PortError;
use rm_core::events::{EventDraft, ReleaseEvent};
use rm_core::manifest::PipelineSpec;
use rm_core::ports::{Claim, ListQuery, ReleaseStore, RunKey};
use rm_core::release::{ReleaseId, ReleaseStatus, RunStatus};
use rm_testkit::store_contract::{finish, request_stop, BrokenItems};
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
    outbox_items_are_indexed_while_events_wait,
    outbox_of_every_release_is_read_in_release_order,
    items_written_before_the_outbox_get_one_with_their_first_event,
    releases_are_listed_from_every_status_partition,
    a_release_item_written_before_the_list_is_not_listed,
    the_halt_is_one_item_put_replaced_and_deleted,
);

/// The halt: absent, put (answering no previous halt), replaced (answering the first),
/// deleted (answering the second), deleted again (answering none); one item, `pk` = `sk` =
/// `HALT`.
async fn the_halt_is_one_item_put_replaced_and_deleted(backend: Dynamo) {
    use rm_core::gate::Halt;
    let store = fresh_store(backend).await;
    assert_eq!(store.halt().await.unwrap(), None);
    let since = time::macros::datetime!(2026-01-01 10:00:00.123456789 UTC);
    let first = Halt {
        reason: "incident 4711".into(),
        by: "arn:aws:iam::111122223333:user/alice".into(),
        since,
    };
    assert_eq!(store.set_halt(Some(&first)).await.unwrap(), None);
    assert_eq!(store.halt().await.unwrap(), Some(first.clone()));
    let second = Halt {
        reason: "freeze".into(),
        by: "bob".into(),
        since,
    };
    assert_eq!(
        store.set_halt(Some(&second)).await.unwrap(),
        Some(first),
        "a put answers the halt it replaced"
    );
    let item = dynamo_client(backend)
        .await
        .get_item()
        .table_name(store.table())
        .key("pk", AttributeValue::S("HALT".into()))
        .key("sk", AttributeValue::S("HALT".into()))
        .send()
        .await
        .unwrap()
        .item
        .expect("the halt item");
    assert_eq!(item["kind"], AttributeValue::S("halt".into()));
    assert_eq!(item["reason"], AttributeValue::S("freeze".into()));
    assert_eq!(store.set_halt(None).await.unwrap(), Some(second));
    assert_eq!(store.halt().await.unwrap(), None);
    assert_eq!(store.set_halt(None).await.unwrap(), None);
}

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
        .record_start(&rid("r2"), "exec-a", "app", "e-app", T0, &[])
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
    finish(
        &store,
        &rid("r2"),
        "exec-a",
        ReleaseStatus::Succeeded,
        None,
        T0,
    )
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
        .record_start(&rid("r3"), "exec-a", "web", "0f1e2d3c-exec", T0, &[])
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
        .record_start(&rid("r3"), "exec-a", "web", "another-exec", T0, &[])
        .await;
    assert!(
        matches!(other, Err(PortError::ConditionFailed(_))),
        "a run is started once: {other:?}"
    );
    let stolen = store
        .record_start(&rid("r3"), "exec-a", "app", "0f1e2d3c-exec", T0, &[])
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
        .record_status(&k, RunStatus::InProgress, T0, &[])
        .await
        .unwrap();
    let run = store
        .record_start(&rid("r4"), "exec-a", "app", "e-4", t1, &[])
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
        .record_start(&rid("r6"), "exec-a", "app", "e-6", T0, &[])
        .await
        .unwrap();
    let at = |m: i64| T0 + time::Duration::minutes(m);
    let stopping = store
        .record_status(&k, RunStatus::Stopping, at(1), &[])
        .await
        .unwrap()
        .unwrap();
    assert_eq!(stopping.status, RunStatus::Stopping);
    assert_eq!(stopping.ended_at, None);
    // Out of order: InProgress after Stopping is stale.
    let stale = store
        .record_status(&k, RunStatus::InProgress, at(2), &[])
        .await
        .unwrap()
        .unwrap();
    assert_eq!(stale, stopping, "a stale change returns the run unchanged");
    let stopped = store
        .record_status(&k, RunStatus::Stopped, at(3), &[])
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
            .record_status(&k, status, at(m), &[])
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
        .record_status(&k, RunStatus::Succeeded, T0, &[])
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
    let stop = request_stop(&store, &r8, "exec-b").await;
    assert!(
        matches!(stop, Err(PortError::ConditionFailed(_))),
        "{stop:?}"
    );
    let finished = finish(&store, &r8, "exec-b", ReleaseStatus::Succeeded, None, T0).await;
    assert!(
        matches!(finished, Err(PortError::ConditionFailed(_))),
        "{finished:?}"
    );
    let start = store
        .record_start(&r8, "exec-b", "app", "e-8", T0, &[])
        .await;
    assert!(
        matches!(start, Err(PortError::ConditionFailed(_))),
        "{start:?}"
    );
    let unknown = finish(
        &store,
        &rid("nope"),
        "exec-a",
        ReleaseStatus::Failed,
        None,
        T0,
    )
    .await;
    assert!(
        matches!(unknown, Err(PortError::NotFound(_))),
        "{unknown:?}"
    );

    let stored = store.get(&r8).await.unwrap().unwrap();
    assert_eq!(stored.release.status, ReleaseStatus::Running);
    assert!(!stored.release.stop_requested);

    let t = T0 + time::Duration::hours(2);
    let failed = finish(
        &store,
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
    let again = finish(&store, &r8, "exec-a", ReleaseStatus::Succeeded, None, t).await;
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
    let done = finish(
        &store,
        &rid("r8b"),
        "exec-a",
        ReleaseStatus::Succeeded,
        None,
        t,
    )
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

/// A release item is in the waiting index under its status (`RUNNING` while running, sorted
/// by the list order), moved by every update_release: running_releases reads the `RUNNING`
/// partition, list_releases every status's.
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
        Some("01767225660000000000#r12-early")
    );
    finish(
        &store,
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
        Some("FAILED"),
        "the end moves the release to its status's partition"
    );
    assert_eq!(
        attr(&item, "waitingSince"),
        Some("01767225900000000000#r12-ended")
    );
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
        .record_start(&rid("r10"), "exec-a", "app", "e-10", T0, &[])
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

/// `n` events of release `id` from sequence `first` (Release Status Change, RUNNING).
fn events_of(id: &str, first: u64, n: usize) -> Vec<ReleaseEvent> {
    EventDraft::stamp(
        (0..n)
            .map(|_| EventDraft::release_status(1, ReleaseStatus::Running, None, T0))
            .collect(),
        &rid(id),
        first,
    )
}

fn run_status_event(key: &RunKey, seq: u64, status: RunStatus) -> ReleaseEvent {
    let run = rm_core::release::RunRecord::new(
        key.release_id.clone(),
        PipelineSpec::new(key.pipeline.as_str(), 1),
    );
    EventDraft::stamp(
        vec![EventDraft::run_status(&run, status, T0)],
        &key.release_id,
        seq,
    )
    .remove(0)
}

fn sequences(events: &[ReleaseEvent]) -> Vec<(String, u64)> {
    events
        .iter()
        .map(|e| (e.release_id.to_string(), e.sequence))
        .collect()
}

/// The keys of an item's `outbox` map.
fn outbox_keys(item: &HashMap<String, AttributeValue>) -> Vec<String> {
    let mut keys: Vec<String> = item
        .get("outbox")
        .and_then(|v| v.as_m().ok())
        .map(|m| m.keys().cloned().collect())
        .unwrap_or_default();
    keys.sort();
    keys
}

/// An item carries `outboxPk` (its release's shard) exactly while its `outbox` map holds
/// events; removal works from the events alone (a store that did not write or read them finds
/// their items), and unindexes an item whose map became empty.
async fn outbox_items_are_indexed_while_events_wait(backend: Dynamo) {
    let store = fresh_store(backend).await;
    let mut rel = release("r20", "exec-a", &["app", "web"]);
    rel.events = events_of("r20", 1, 1);
    store.claim(&rel).await.unwrap();
    let item = raw_item(&store, backend, "REL#r20", "RELEASE")
        .await
        .unwrap();
    assert_eq!(attr(&item, "outboxPk"), Some(outbox_shard("r20").as_str()));
    assert_eq!(outbox_keys(&item), ["00000000000000000001"]);
    assert_eq!(item.get("seq"), Some(&AttributeValue::N("1".into())));
    let web = raw_item(&store, backend, "REL#r20", "RUN#web")
        .await
        .unwrap();
    assert_eq!(attr(&web, "outboxPk"), None, "a run without events");
    assert!(outbox_keys(&web).is_empty(), "but with its (empty) map");

    assert_eq!(store.next_sequence(&rid("r20"), 1).await.unwrap(), 2);
    let app = run_key("r20", "app");
    let e2 = run_status_event(&app, 2, RunStatus::InProgress);
    store
        .record_start(
            &rid("r20"),
            "exec-a",
            "app",
            "e-20",
            T0,
            std::slice::from_ref(&e2),
        )
        .await
        .unwrap();
    let run = raw_item(&store, backend, "REL#r20", "RUN#app")
        .await
        .unwrap();
    assert_eq!(attr(&run, "outboxPk"), Some(outbox_shard("r20").as_str()));
    assert_eq!(outbox_keys(&run), ["00000000000000000002"]);
    let pending = store.outbox(Some(&rid("r20")), 10).await.unwrap();
    assert_eq!(pending, vec![rel.events[0].clone(), e2.clone()]);
    let everyone = store.outbox(None, 10).await.unwrap();
    assert_eq!(sequences(&everyone), sequences(&pending));

    // Another store on the table (another Lambda) removes what it never saw.
    let other = DynamoStore::new(dynamo_client(backend).await, store.table());
    other
        .remove_from_outbox(std::slice::from_ref(&rel.events[0]))
        .await
        .unwrap();
    let item = raw_item(&store, backend, "REL#r20", "RELEASE")
        .await
        .unwrap();
    assert!(outbox_keys(&item).is_empty());
    assert_eq!(
        attr(&item, "outboxPk"),
        None,
        "an empty outbox is unindexed"
    );
    let run = raw_item(&store, backend, "REL#r20", "RUN#app")
        .await
        .unwrap();
    assert_eq!(attr(&run, "outboxPk"), Some(outbox_shard("r20").as_str()));
    assert_eq!(
        sequences(&store.outbox(None, 10).await.unwrap()),
        [("r20".to_owned(), 2)]
    );

    // The writer removes what it wrote.
    store.remove_from_outbox(&[e2]).await.unwrap();
    let run = raw_item(&store, backend, "REL#r20", "RUN#app")
        .await
        .unwrap();
    assert_eq!(attr(&run, "outboxPk"), None);
    assert!(store.outbox(None, 10).await.unwrap().is_empty());
    assert!(store
        .outbox(Some(&rid("r20")), 10)
        .await
        .unwrap()
        .is_empty());

    // A change after the removal indexes the item again.
    let e3 = run_status_event(&app, 3, RunStatus::Succeeded);
    store
        .record_status(&app, RunStatus::Succeeded, T0, std::slice::from_ref(&e3))
        .await
        .unwrap();
    assert_eq!(store.outbox(None, 10).await.unwrap(), vec![e3]);
}

/// Every release's outbox comes from the index's shards, merged in release order, each
/// release's events in sequence order; a limit cuts after the first events in that order.
async fn outbox_of_every_release_is_read_in_release_order(backend: Dynamo) {
    let store = fresh_store(backend).await;
    let ids: Vec<String> = (0..12).map(|i| format!("ob-{i:02}")).collect();
    for id in ids.iter().rev() {
        let mut rel = release(id, "exec-a", &["app", "web"]);
        rel.events = events_of(id, 1, 2);
        store.claim(&rel).await.unwrap();
        store.next_sequence(&rid(id), 2).await.unwrap();
        // Events in two items of the release, the run's written first.
        for (p, seq) in [("web", 4), ("app", 3)] {
            let k = run_key(id, p);
            store
                .record_status(
                    &k,
                    RunStatus::Failed,
                    T0,
                    &[run_status_event(&k, seq, RunStatus::Failed)],
                )
                .await
                .unwrap();
        }
    }
    let shards: std::collections::BTreeSet<String> =
        ids.iter().map(|id| outbox_shard(id)).collect();
    assert!(
        shards.len() > 2,
        "the releases use several shards: {shards:?}"
    );
    let expected: Vec<(String, u64)> = ids
        .iter()
        .flat_map(|id| (1..=4).map(move |seq| (id.clone(), seq)))
        .collect();
    let all = store.outbox(None, 1000).await.unwrap();
    assert_eq!(sequences(&all), expected);
    for limit in [1, 3, 4, 5, 17] {
        let some = store.outbox(None, limit).await.unwrap();
        assert_eq!(sequences(&some), expected[..limit], "limit {limit}");
    }
    let one = store.outbox(Some(&rid("ob-05")), 3).await.unwrap();
    assert_eq!(sequences(&one), expected[20..23]);
}

/// Items written before the outbox (no `outbox` map, no `version`, `lifecycle`, `seq`,
/// `attempt`): read as version 0, attempt 1; the first write with events creates the map.
async fn items_written_before_the_outbox_get_one_with_their_first_event(backend: Dynamo) {
    let store = fresh_store(backend).await;
    store
        .claim(&release("r21", "exec-a", &["app"]))
        .await
        .unwrap();
    let client = dynamo_client(backend).await;
    for (sk, remove) in [
        ("RELEASE", "REMOVE outbox, version, lifecycle, seq"),
        ("RUN#app", "REMOVE outbox, attempt"),
    ] {
        client
            .update_item()
            .table_name(store.table())
            .key("pk", AttributeValue::S("REL#r21".into()))
            .key("sk", AttributeValue::S(sk.into()))
            .update_expression(remove)
            .send()
            .await
            .unwrap();
    }
    let stored = store.get(&rid("r21")).await.unwrap().unwrap();
    assert_eq!(stored.release.version, 0);
    assert_eq!(stored.release.lifecycle, Default::default());
    assert_eq!(stored.runs[0].attempt, 1);
    assert_eq!(store.next_sequence(&rid("r21"), 2).await.unwrap(), 1);

    let mut next = stored.release.clone();
    next.version = 1;
    next.stop_requested = true;
    let e1 = events_of("r21", 1, 1);
    store.update_release(&next, &e1).await.unwrap();
    let app = run_key("r21", "app");
    let e2 = run_status_event(&app, 2, RunStatus::InProgress);
    store
        .record_status(&app, RunStatus::InProgress, T0, std::slice::from_ref(&e2))
        .await
        .unwrap();
    let pending = store.outbox(Some(&rid("r21")), 10).await.unwrap();
    assert_eq!(pending, vec![e1[0].clone(), e2]);
    let stored = store.get(&rid("r21")).await.unwrap().unwrap();
    assert_eq!(stored.release, next);
    assert_eq!(stored.runs[0].history[0].attempt, 1);
    store.remove_from_outbox(&pending).await.unwrap();
    assert!(store.outbox(None, 10).await.unwrap().is_empty());

    // The next version, with events, goes the usual way.
    let mut third = next.clone();
    third.version = 2;
    let e3 = events_of("r21", 3, 1);
    store.update_release(&third, &e3).await.unwrap();
    assert_eq!(store.outbox(None, 10).await.unwrap(), e3);
    // A stale version is refused and says which one is stored.
    match store.update_release(&third, &[]).await {
        Err(PortError::ConditionFailed(m)) => assert!(m.contains("version 2"), "{m}"),
        other => panic!("a stale update: {other:?}"),
    }
}

/// Newest first across the four status partitions, in pages that continue where the last
/// stopped, each release exactly once; a status filter reads its own partition.
async fn releases_are_listed_from_every_status_partition(backend: Dynamo) {
    let store = fresh_store(backend).await;
    let statuses = [
        ReleaseStatus::Running,
        ReleaseStatus::Succeeded,
        ReleaseStatus::Failed,
        ReleaseStatus::Cancelled,
    ];
    let mut expected = Vec::new();
    for i in 0..23 {
        let id = format!("l-{i:02}");
        let mut rel = release(&id, "exec-a", &["app"]);
        // Two releases share each requestedAt: the id breaks the tie.
        rel.record.requested_at = T0 + time::Duration::seconds(i / 2);
        store.claim(&rel).await.unwrap();
        let status = statuses[(i % 4) as usize];
        if status != ReleaseStatus::Running {
            finish(&store, &rid(&id), "exec-a", status, None, T0)
                .await
                .unwrap();
        }
        expected.push((rel.record.requested_at, id, status));
    }
    expected.sort_by(|a, b| (b.0, &b.1).cmp(&(a.0, &a.1)));
    let names = |page: &rm_core::ports::ReleasePage| -> Vec<String> {
        page.releases
            .iter()
            .map(|r| r.release_id.to_string())
            .collect()
    };
    for filter in [
        None,
        Some(ReleaseStatus::Failed),
        Some(ReleaseStatus::Running),
    ] {
        let want: Vec<String> = expected
            .iter()
            .filter(|(_, _, st)| filter.is_none_or(|f| f == *st))
            .map(|(_, id, _)| id.clone())
            .collect();
        let mut listed = Vec::new();
        let mut next = None;
        loop {
            let page = store
                .list_releases(&ListQuery {
                    status: filter,
                    limit: 4,
                    next,
                })
                .await
                .unwrap();
            assert!(page.releases.len() <= 4);
            listed.extend(names(&page));
            match page.next {
                Some(token) => next = Some(token),
                None => break,
            }
        }
        assert_eq!(listed, want, "{filter:?}");
    }
    let one = store
        .list_releases(&ListQuery {
            status: None,
            limit: 0,
            next: None,
        })
        .await
        .unwrap();
    assert_eq!(
        names(&one),
        [expected[0].1.clone()],
        "a limit of 0 lists one"
    );
}

/// A release item written before the list (an ended one without `waitingPk`, a RUNNING one
/// with its requestedAt as sort key) is not listed, and does not take a listed one's place;
/// its next write lists it.
async fn a_release_item_written_before_the_list_is_not_listed(backend: Dynamo) {
    let store = fresh_store(backend).await;
    for (id, minutes) in [("old-ended", 1), ("old-running", 2), ("new", 0)] {
        let mut rel = release(id, "exec-a", &["app"]);
        rel.record.requested_at = T0 + time::Duration::minutes(minutes);
        store.claim(&rel).await.unwrap();
    }
    finish(
        &store,
        &rid("old-ended"),
        "exec-a",
        ReleaseStatus::Failed,
        None,
        T0,
    )
    .await
    .unwrap();
    let client = dynamo_client(backend).await;
    for (id, update) in [
        ("old-ended", "REMOVE waitingPk, waitingSince"),
        ("old-running", "SET waitingSince = :legacy"),
    ] {
        let mut request = client
            .update_item()
            .table_name(store.table())
            .key("pk", AttributeValue::S(format!("REL#{id}")))
            .key("sk", AttributeValue::S("RELEASE".into()))
            .update_expression(update);
        if update.contains(":legacy") {
            request = request.expression_attribute_values(
                ":legacy",
                AttributeValue::S("2026-01-01T00:02:00.000000000Z".into()),
            );
        }
        request.send().await.unwrap();
    }
    let list = |limit| {
        let store = store.clone();
        async move {
            store
                .list_releases(&ListQuery {
                    status: None,
                    limit,
                    next: None,
                })
                .await
                .unwrap()
                .releases
                .into_iter()
                .map(|r| r.release_id.to_string())
                .collect::<Vec<_>>()
        }
    };
    assert_eq!(list(1).await, ["new"]);
    assert_eq!(list(10).await, ["new"]);
    let running: Vec<ReleaseId> = store
        .running_releases()
        .await
        .unwrap()
        .into_iter()
        .map(|r| r.release_id)
        .collect();
    assert!(running.contains(&rid("old-running")), "still reconciled");
    finish(
        &store,
        &rid("old-running"),
        "exec-a",
        ReleaseStatus::Succeeded,
        None,
        T0,
    )
    .await
    .unwrap();
    assert_eq!(list(10).await, ["old-running", "new"]);
}

/// dynalite serves requests one at a time, so concurrent status changes of one run interleave
/// their reads and writes: every change is decided on the run as it is (the history only moves
/// forward) and only a recorded change keeps its event.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_status_changes_keep_one_story() {
    let store = Arc::new(fresh_store(Dynamo::Dynalite).await);
    store
        .claim(&release("race", "exec-a", &["app"]))
        .await
        .unwrap();
    store
        .record_start(&rid("race"), "exec-a", "app", "e-race", T0, &[])
        .await
        .unwrap();
    let k = run_key("race", "app");
    let statuses = [
        RunStatus::Stopping,
        RunStatus::Failed,
        RunStatus::InProgress,
        RunStatus::Stopped,
        RunStatus::Stopping,
        RunStatus::Succeeded,
    ];
    let changes = statuses.iter().enumerate().map(|(i, status)| {
        let store = Arc::clone(&store);
        let k = k.clone();
        let status = *status;
        tokio::spawn(async move {
            let e = run_status_event(&k, 10 + i as u64, status);
            store
                .record_status(&k, status, T0 + time::Duration::seconds(i as i64), &[e])
                .await
                .expect("record_status")
        })
    });
    for r in join_all(changes).await {
        r.expect("task");
    }
    let run = store.get_run(&rid("race"), "app").await.unwrap().unwrap();
    let ranks: Vec<u8> = run.history.iter().map(|h| h.status.rank()).collect();
    assert!(
        ranks.windows(2).all(|w| w[0] < w[1]),
        "the history moves forward: {:?}",
        run.history
    );
    assert!(run.status.is_terminal());
    assert!(run
        .history
        .iter()
        .all(|h| h.execution_id.as_deref() == Some("e-race") && h.attempt == 1));
    // One event per recorded change (after the start), each the change's.
    let events = store.outbox(Some(&rid("race")), 100).await.unwrap();
    let recorded: Vec<String> = run.history[1..]
        .iter()
        .map(|h| h.status.to_string())
        .collect();
    let published: Vec<String> = events
        .iter()
        .map(|e| e.detail["status"].as_str().unwrap_or_default().to_owned())
        .collect();
    assert_eq!(published, recorded);
}

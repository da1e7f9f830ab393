//! The behaviour every [`ReleaseStore`] must have. Each adapter's tests call [`check_all`]
//! on a fresh store, so DynamoDB, SQLite and memory agree.

use rm_core::error::PortError;
use rm_core::events::{EventDraft, ReleaseEvent};
use rm_core::lifecycle::*;
use rm_core::manifest::{Manifest, OnFailure, PipelineSpec};
use rm_core::memory::MemoryBus;
use rm_core::ports::ListQuery;
use rm_core::ports::{Claim, NewRelease, ReleaseStore, RunKey};
use rm_core::release::*;
use rm_core::usecases::{finish_release, Writer};
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
            version: 0,
            lifecycle: Lifecycle {
                attempts: vec![AttemptRecord {
                    attempt: 1,
                    execution: owner.to_owned(),
                    requested_at: T0,
                    requested_by: Some("account:123456789012".into()),
                    ended_at: None,
                    status: ReleaseStatus::Running,
                    cause: None,
                }],
                approval_waves: vec![2],
                ..Lifecycle::default()
            },
        },
        manifest: Manifest {
            release_id: release_id.clone(),
            description: Some("contract".into()),
            pipelines: specs,
            max_concurrency: 10,
            on_failure: OnFailure::Stop,
            approvals: vec![2],
            approval_timeout_minutes: 60,
            gates: None,
            skip_unchanged: false,
        },
        events: EventDraft::stamp(
            vec![EventDraft::release_status(
                1,
                ReleaseStatus::Running,
                None,
                T0,
            )],
            &release_id,
            1,
        ),
    }
}

/// Records a release's end as the use cases do ([`rm_core::usecases::finish_release`]: one
/// conditional `update_release`), its events dropped after they are written.
pub async fn finish(
    store: &dyn ReleaseStore,
    release_id: &ReleaseId,
    owner: &str,
    status: ReleaseStatus,
    cause: Option<&str>,
    at: OffsetDateTime,
) -> Result<ReleaseRecord, PortError> {
    finish_release(&writer(store), release_id, owner, status, cause, at).await
}

/// Marks a release stopping as the use cases do.
pub async fn request_stop(
    store: &dyn ReleaseStore,
    release_id: &ReleaseId,
    owner: &str,
) -> Result<(), PortError> {
    rm_core::usecases::request_stop(&writer(store), release_id, owner).await
}

static BUS: MemoryBus = MemoryBus::new();

fn writer(store: &dyn ReleaseStore) -> Writer<'_> {
    Writer {
        store,
        bus: &BUS,
        clock: &rm_core::ports::SystemClock,
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
    an_older_token_never_replaces_a_newer_one(store, &format!("{prefix}newer")).await;
    touch_moves_a_waiting_run_to_the_back(store, &format!("{prefix}touch")).await;
    running_releases_lists_only_running_ones(store, &format!("{prefix}running")).await;
    an_ended_release_stays_as_it_ended(store, &format!("{prefix}ended")).await;
    a_run_keeps_its_cause(store, &format!("{prefix}cause")).await;
    events_wait_in_the_outbox_until_published(store, &format!("{prefix}outbox")).await;
    update_release_is_conditional_on_its_version(store, &format!("{prefix}version")).await;
    a_retried_run_starts_a_new_attempt(store, &format!("{prefix}attempt")).await;
    releases_are_listed_newest_first(store, &format!("{prefix}list")).await;
    a_gate_wait_is_kept_with_the_release(store, &format!("{prefix}gate")).await;
    a_skipped_run_keeps_the_execution_it_matches(store, &format!("{prefix}skip")).await;
    the_halt_is_one_switch(store).await;
}

/// `skipUnchanged`: a NotStarted run is recorded Skipped with the execution it matches, which
/// does not become this run's execution item (another release's run may own it); a run that
/// started is never skipped.
pub async fn a_skipped_run_keeps_the_execution_it_matches(store: &dyn ReleaseStore, id: &str) {
    let rel = new_release(id, "exec-a", &["app", "web"]);
    store.claim(&rel).await.unwrap();
    let rid = &rel.record.release_id;
    let matched = format!("{id}-earlier");
    let t1 = T0 + time::Duration::seconds(5);
    let run = store
        .record_skipped(&key(id, "app"), &matched, t1, &[])
        .await
        .unwrap()
        .expect("the run");
    assert_eq!(run.status, RunStatus::Skipped);
    assert_eq!(run.execution_id.as_deref(), Some(matched.as_str()));
    assert_eq!((run.started_at, run.ended_at), (None, Some(t1)));
    let read = store.get_run(rid, "app").await.unwrap().expect("the run");
    assert_eq!(read.status, RunStatus::Skipped);
    assert_eq!(read.execution_id.as_deref(), Some(matched.as_str()));
    let last = read.history.last().expect("a history entry");
    assert_eq!((last.status, last.at), (RunStatus::Skipped, t1));
    assert_eq!(last.execution_id.as_deref(), Some(matched.as_str()));
    assert_eq!(store.find_by_execution(&matched).await.unwrap(), None);

    store
        .record_start(rid, "exec-a", "web", &format!("{id}-web"), T0, &[])
        .await
        .unwrap();
    let started = store
        .record_skipped(&key(id, "web"), &matched, t1, &[])
        .await
        .unwrap()
        .expect("the run");
    assert_eq!(
        started.status,
        RunStatus::InProgress,
        "a started run is never skipped"
    );
    assert_eq!(
        store
            .record_skipped(&key(id, "nope"), &matched, t1, &[])
            .await
            .unwrap(),
        None
    );
}

/// The manifest's gates and a gate wait (with its token) are stored with the release and read
/// back as they were.
pub async fn a_gate_wait_is_kept_with_the_release(store: &dyn ReleaseStore, id: &str) {
    let rel = new_release(id, "exec-a", &["app", "web-2"]);
    store.claim(&rel).await.unwrap();
    let rid = &rel.record.release_id;
    let mut next = store.release_record(rid).await.unwrap().unwrap();
    next.version += 1;
    next.lifecycle.gates = Some(
        serde_json::from_value(serde_json::json!({
            "alarmNames": ["prod-api-5xx"],
            "windows": {"timezone": "Europe/Berlin",
                "allow": [{"days": ["Mon"], "from": "09:00", "to": "16:00"}]},
            "bakeMinutes": 15,
            "maxWaitMinutes": 240
        }))
        .unwrap(),
    );
    next.lifecycle.gate_wait = Some(GateWait {
        kind: WaitKind::Gate,
        wave: 2,
        token: "token-2".into(),
        since: minutes(4),
        until: None,
        reasons: vec!["alarm prod-api-5xx is in ALARM".into()],
        halted_seconds: 60,
        halted_since: Some(minutes(5)),
        failure: None,
    });
    next.lifecycle.waiting_for = Some(WaitingFor::Halt {
        wave: Some(2),
        reason: "incident 4711".into(),
        by: "alice".into(),
        since: minutes(5),
    });
    store.update_release(&next, &[]).await.unwrap();
    let read = store.release_record(rid).await.unwrap().unwrap();
    assert_eq!(read.lifecycle, next.lifecycle);
    assert_eq!(
        store.get(rid).await.unwrap().unwrap().release.lifecycle,
        next.lifecycle
    );
}

/// The stack-wide halt: off until set; set and lifted with the one it replaced returned.
pub async fn the_halt_is_one_switch(store: &dyn ReleaseStore) {
    use rm_core::gate::Halt;
    store.set_halt(None).await.unwrap();
    assert_eq!(store.halt().await.unwrap(), None);
    let first = Halt {
        reason: "incident 4711".into(),
        by: "arn:aws:iam::123456789012:user/alice".into(),
        since: minutes(1),
    };
    assert_eq!(store.set_halt(Some(&first)).await.unwrap(), None);
    assert_eq!(store.halt().await.unwrap(), Some(first.clone()));
    let second = Halt {
        reason: "incident 4712".into(),
        ..first.clone()
    };
    assert_eq!(store.set_halt(Some(&second)).await.unwrap(), Some(first));
    assert_eq!(store.set_halt(None).await.unwrap(), Some(second));
    assert_eq!(store.halt().await.unwrap(), None);
    assert_eq!(store.set_halt(None).await.unwrap(), None);
}

fn run_event(id: &ReleaseId, seq: u64, pipeline: &str, status: RunStatus) -> ReleaseEvent {
    let mut run = RunRecord::new(id.clone(), PipelineSpec::new(pipeline, 1));
    run.execution_id = Some(format!("{pipeline}-exec"));
    EventDraft::stamp(vec![EventDraft::run_status(&run, status, T0)], id, seq)
        .pop()
        .expect("one event")
}

/// The claim's events and a recorded change's events wait in the outbox, in sequence order,
/// until removed; a change that is not recorded (stale) leaves no event; sequence numbers are
/// allocated after the claim's, never twice.
pub async fn events_wait_in_the_outbox_until_published(store: &dyn ReleaseStore, id: &str) {
    let rel = new_release(id, "exec-a", &["app", "web"]);
    store.claim(&rel).await.unwrap();
    let rid = &rel.record.release_id;
    let seqs = |evs: &[ReleaseEvent]| evs.iter().map(|e| e.sequence).collect::<Vec<_>>();
    let outbox = store.outbox(Some(rid), 100).await.unwrap();
    assert_eq!(seqs(&outbox), vec![1]);
    assert_eq!(outbox[0], rel.events[0], "the event is kept as written");
    assert_eq!(store.next_sequence(rid, 2).await.unwrap(), 2);
    assert_eq!(store.next_sequence(rid, 1).await.unwrap(), 4);
    let e5 = run_event(rid, 5, "app", RunStatus::InProgress);
    store
        .record_start(
            rid,
            "exec-a",
            "app",
            "app-exec",
            T0,
            std::slice::from_ref(&e5),
        )
        .await
        .unwrap();
    // A repeat of the start records nothing, so its event is not kept.
    let e6 = run_event(rid, 6, "app", RunStatus::InProgress);
    store
        .record_start(
            rid,
            "exec-a",
            "app",
            "app-exec",
            T0,
            std::slice::from_ref(&e6),
        )
        .await
        .unwrap();
    let e7 = run_event(rid, 7, "app", RunStatus::Succeeded);
    store
        .record_status(
            &key(id, "app"),
            RunStatus::Succeeded,
            minutes(1),
            std::slice::from_ref(&e7),
        )
        .await
        .unwrap();
    // Stale: InProgress after Succeeded changes nothing, keeps no event.
    let e8 = run_event(rid, 8, "app", RunStatus::InProgress);
    store
        .record_status(
            &key(id, "app"),
            RunStatus::InProgress,
            minutes(2),
            std::slice::from_ref(&e8),
        )
        .await
        .unwrap();
    let outbox = store.outbox(Some(rid), 100).await.unwrap();
    assert_eq!(seqs(&outbox), vec![1, 5, 7]);
    assert_eq!(outbox[2], e7);
    assert_eq!(seqs(&store.outbox(Some(rid), 2).await.unwrap()), vec![1, 5]);
    let everyone = store.outbox(None, 10_000).await.unwrap();
    assert!(everyone.iter().any(|e| e == &e7), "{everyone:?}");
    store
        .remove_from_outbox(&[outbox[0].clone(), outbox[2].clone()])
        .await
        .unwrap();
    assert_eq!(seqs(&store.outbox(Some(rid), 100).await.unwrap()), vec![5]);
    // Removing twice, or an unknown event, is harmless.
    store
        .remove_from_outbox(&[
            outbox[0].clone(),
            run_event(rid, 99, "web", RunStatus::Failed),
        ])
        .await
        .unwrap();
    store
        .remove_from_outbox(&[outbox[1].clone()])
        .await
        .unwrap();
    assert!(store.outbox(Some(rid), 100).await.unwrap().is_empty());
    // Events carry the numbers they were allocated; writing them allocates nothing.
    assert_eq!(store.next_sequence(rid, 1).await.unwrap(), 5);
}

/// `update_release` writes the release's mutable fields and lifecycle on condition of its
/// version, with its events; ending a release takes it off the RUNNING list, and a retry
/// (RUNNING again, under a new owner) puts it back.
pub async fn update_release_is_conditional_on_its_version(store: &dyn ReleaseStore, id: &str) {
    let rel = new_release(id, "exec-a", &["app"]);
    store.claim(&rel).await.unwrap();
    let rid = &rel.record.release_id;
    let read = store.get(rid).await.unwrap().unwrap().release;
    assert_eq!(read.version, 0);
    assert_eq!(read.lifecycle, rel.record.lifecycle);
    assert_eq!(
        store.release_record(rid).await.unwrap().unwrap().lifecycle,
        rel.record.lifecycle
    );
    let mut next = read.clone();
    next.version = 1;
    next.status = ReleaseStatus::Cancelled;
    next.ended_at = Some(minutes(3));
    next.cause = Some("cancelled by alice: test".into());
    next.stop_requested = true;
    next.lifecycle.cancel = Some(CancelRequest {
        by: "alice".into(),
        reason: "test".into(),
        at: minutes(2),
        attempt: 1,
    });
    next.lifecycle.waves = vec![WaveRecord {
        wave: 1,
        status: WaveStatus::Cancelled,
        started_at: Some(minutes(1)),
        ended_at: Some(minutes(3)),
    }];
    let ev = EventDraft::stamp(
        vec![EventDraft::release_status(
            1,
            ReleaseStatus::Cancelled,
            Some("x"),
            minutes(3),
        )],
        rid,
        store.next_sequence(rid, 1).await.unwrap(),
    );
    store.update_release(&next, &ev).await.unwrap();
    assert_eq!(store.get(rid).await.unwrap().unwrap().release, next);
    assert!(store.outbox(Some(rid), 10).await.unwrap().contains(&ev[0]));
    // The same version again: someone wrote it since.
    let mut stale = next.clone();
    stale.cause = Some("other".into());
    match store.update_release(&stale, &[]).await {
        Err(PortError::ConditionFailed(_)) => {}
        other => panic!("a stale update_release: {other:?}"),
    }
    let running = |store: &'static str| store;
    let _ = running;
    let listed = |rs: Vec<ReleaseRecord>| rs.iter().any(|r| &r.release_id == rid);
    assert!(!listed(store.running_releases().await.unwrap()));
    // A retry: RUNNING again under a new owner.
    let mut retry = next.clone();
    retry.version = 2;
    retry.status = ReleaseStatus::Running;
    retry.owner = "exec-b".into();
    retry.ended_at = None;
    retry.cause = None;
    retry.stop_requested = false;
    retry.lifecycle.attempt = 2;
    store.update_release(&retry, &[]).await.unwrap();
    assert_eq!(store.get(rid).await.unwrap().unwrap().release, retry);
    assert!(listed(store.running_releases().await.unwrap()));
    // Writes conditional on the owner follow the new owner.
    store.set_token(&key(id, "app"), "tok", T0).await.unwrap();
    assert!(store
        .record_start(rid, "exec-a", "app", "x", T0, &[])
        .await
        .is_err());
    match store
        .update_release(
            &ReleaseRecord {
                version: 9,
                ..retry.clone()
            },
            &[],
        )
        .await
    {
        Err(PortError::ConditionFailed(_)) => {}
        other => panic!("a version from the future: {other:?}"),
    }
    let missing = ReleaseRecord {
        release_id: ReleaseId::parse(&format!("{id}-nope")).unwrap(),
        version: 1,
        ..retry
    };
    assert!(store.update_release(&missing, &[]).await.is_err());
}

/// A retry moves a run that did not succeed to the new attempt (history kept, each entry with
/// its attempt and execution); a succeeded run is never reset; a repeat changes nothing.
pub async fn a_retried_run_starts_a_new_attempt(store: &dyn ReleaseStore, id: &str) {
    let rel = new_release(id, "exec-a", &["app", "web"]);
    store.claim(&rel).await.unwrap();
    let rid = &rel.record.release_id;
    for (p, status) in [("app", RunStatus::Failed), ("web", RunStatus::Succeeded)] {
        store
            .record_start(rid, "exec-a", p, &format!("{id}-{p}-1"), T0, &[])
            .await
            .unwrap();
        store.set_token(&key(id, p), "tok", T0).await.unwrap();
        store
            .set_run_cause(&key(id, p), "pipeline busy")
            .await
            .unwrap();
        store
            .record_status(&key(id, p), status, minutes(5), &[])
            .await
            .unwrap();
    }
    let app = store.reset_run(&key(id, "app"), 2).await.unwrap().unwrap();
    assert_eq!(app.status, RunStatus::NotStarted);
    assert_eq!(app.attempt, 2);
    assert_eq!(app.execution_id, None);
    assert_eq!((app.started_at, app.ended_at), (None, None));
    assert_eq!(app.task_token, None);
    assert_eq!(app.cause, None);
    assert!(!app.stop_abandoned);
    assert_eq!(
        app.history,
        vec![
            HistoryEntry {
                status: RunStatus::InProgress,
                at: T0,
                attempt: 1,
                execution_id: Some(format!("{id}-app-1")),
            },
            HistoryEntry {
                status: RunStatus::Failed,
                at: minutes(5),
                attempt: 1,
                execution_id: Some(format!("{id}-app-1")),
            },
        ]
    );
    assert_eq!(store.get_run(rid, "app").await.unwrap().unwrap(), app);
    let web = store.reset_run(&key(id, "web"), 2).await.unwrap().unwrap();
    assert_eq!((web.status, web.attempt), (RunStatus::Succeeded, 1));
    // The new attempt's start: a new execution, recorded and found.
    let started = store
        .record_start(
            rid,
            "exec-a",
            "app",
            &format!("{id}-app-2"),
            minutes(10),
            &[],
        )
        .await
        .unwrap();
    assert_eq!(
        (started.status, started.attempt),
        (RunStatus::InProgress, 2)
    );
    assert_eq!(started.history.len(), 3);
    assert_eq!(started.history[2].attempt, 2);
    assert_eq!(
        started.history[2].execution_id.as_deref(),
        Some(format!("{id}-app-2").as_str())
    );
    assert_eq!(
        store
            .find_by_execution(&format!("{id}-app-2"))
            .await
            .unwrap(),
        Some(key(id, "app"))
    );
    // A repeat of the reset for the same attempt changes nothing.
    let again = store.reset_run(&key(id, "app"), 2).await.unwrap().unwrap();
    assert_eq!(again.status, RunStatus::InProgress);
    assert!(store
        .reset_run(&key(id, "nope"), 2)
        .await
        .unwrap()
        .is_none());
    let all = store.get(rid).await.unwrap().unwrap();
    let app = all.runs.iter().find(|r| r.spec.name == "app").unwrap();
    assert_eq!(app.history.len(), 3);
    assert_eq!(app.attempt, 2);
}

/// Newest first (requestedAt, then id), filtered by status, in pages.
pub async fn releases_are_listed_newest_first(store: &dyn ReleaseStore, prefix: &str) {
    let far = datetime!(2099-01-01 00:00:00 UTC);
    let ids: Vec<String> = (0..5).map(|i| format!("{prefix}-{i}")).collect();
    for (i, id) in ids.iter().enumerate() {
        let mut rel = new_release(id, "exec-a", &["app"]);
        rel.record.requested_at = far + time::Duration::minutes(i as i64);
        store.claim(&rel).await.unwrap();
    }
    let rid = |i: usize| ReleaseId::parse(&ids[i]).unwrap();
    finish(
        store,
        &rid(1),
        "exec-a",
        ReleaseStatus::Failed,
        Some("x"),
        far,
    )
    .await
    .unwrap();
    finish(
        store,
        &rid(3),
        "exec-a",
        ReleaseStatus::Failed,
        Some("x"),
        far,
    )
    .await
    .unwrap();
    let page = store
        .list_releases(&ListQuery {
            status: None,
            limit: 2,
            next: None,
        })
        .await
        .unwrap();
    let names = |p: &rm_core::ports::ReleasePage| {
        p.releases
            .iter()
            .map(|r| r.release_id.to_string())
            .collect::<Vec<_>>()
    };
    assert_eq!(names(&page), vec![ids[4].clone(), ids[3].clone()]);
    let next = page.next.clone().expect("more pages");
    let page2 = store
        .list_releases(&ListQuery {
            status: None,
            limit: 2,
            next: Some(next),
        })
        .await
        .unwrap();
    assert_eq!(names(&page2), vec![ids[2].clone(), ids[1].clone()]);
    let failed = store
        .list_releases(&ListQuery {
            status: Some(ReleaseStatus::Failed),
            limit: 10,
            next: None,
        })
        .await
        .unwrap();
    let failed_names = names(&failed);
    assert_eq!(
        &failed_names[..2],
        &[ids[3].clone(), ids[1].clone()],
        "{failed_names:?}"
    );
    assert!(failed
        .releases
        .iter()
        .all(|r| r.status == ReleaseStatus::Failed));
    let all = store
        .list_releases(&ListQuery {
            status: None,
            limit: 100,
            next: None,
        })
        .await
        .unwrap();
    let all_names = names(&all);
    assert_eq!(
        &all_names[..5],
        &[
            ids[4].clone(),
            ids[3].clone(),
            ids[2].clone(),
            ids[1].clone(),
            ids[0].clone()
        ]
    );
}

/// A run's cause (`pipeline busy`) is stored and read back with the run and the release;
/// setting it on an unknown run changes nothing.
pub async fn a_run_keeps_its_cause(store: &dyn ReleaseStore, id: &str) {
    let rel = new_release(id, "exec-a", &["app", "web"]);
    store.claim(&rel).await.unwrap();
    let rid = &rel.record.release_id;
    let key = |p: &str| RunKey {
        release_id: rid.clone(),
        pipeline: p.to_owned(),
    };
    assert_eq!(
        store.get_run(rid, "app").await.unwrap().unwrap().cause,
        None
    );
    store
        .set_run_cause(&key("app"), "pipeline busy")
        .await
        .unwrap();
    let app = store.get_run(rid, "app").await.unwrap().unwrap();
    assert_eq!(app.cause.as_deref(), Some("pipeline busy"));
    let stored = store.get(rid).await.unwrap().unwrap();
    let causes: Vec<_> = stored
        .runs
        .iter()
        .map(|r| (r.spec.name.as_str(), r.cause.as_deref()))
        .collect();
    assert!(
        causes.contains(&("app", Some("pipeline busy"))),
        "{causes:?}"
    );
    assert!(causes.contains(&("web", None)), "{causes:?}");
    store.set_run_cause(&key("nope"), "x").await.unwrap();
    assert!(store.get_run(rid, "nope").await.unwrap().is_none());
}

fn minutes(m: i64) -> OffsetDateTime {
    T0 + time::Duration::minutes(m)
}

/// The pipelines of release `id` among the waiting runs, in the order listed.
async fn waiting_of(store: &dyn ReleaseStore, id: &str) -> Vec<(String, Option<String>)> {
    store
        .waiting_runs()
        .await
        .unwrap()
        .into_iter()
        .filter(|r| r.release_id.as_str() == id)
        .map(|r| (r.spec.name, r.task_token))
        .collect()
}

fn waiting(pairs: &[(&str, &str)]) -> Vec<(String, Option<String>)> {
    pairs
        .iter()
        .map(|(p, t)| (p.to_string(), Some(t.to_string())))
        .collect()
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
        .record_start(rid, "exec-a", "app", &exec, T0, &[])
        .await
        .unwrap();
    assert_eq!(run.status, RunStatus::InProgress);
    assert_eq!(run.execution_id.as_deref(), Some(exec.as_str()));
    assert_eq!(run.started_at, Some(T0));
    let again = store
        .record_start(rid, "exec-a", "app", &exec, T0, &[])
        .await
        .unwrap();
    assert_eq!(again.history.len(), 1, "a repeated start is recorded once");
    assert!(
        store
            .record_start(rid, "exec-b", "web", "other", T0, &[])
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
        .record_start(rid, "exec-a", "app", &format!("{id}-e"), T0, &[])
        .await
        .unwrap();
    let k = key(id, "app");
    let t1 = T0 + time::Duration::minutes(3);
    let run = store
        .record_status(&k, RunStatus::Succeeded, t1, &[])
        .await
        .unwrap()
        .unwrap();
    assert_eq!(run.status, RunStatus::Succeeded);
    assert_eq!(run.ended_at, Some(t1));
    let dup = store
        .record_status(&k, RunStatus::Succeeded, t1, &[])
        .await
        .unwrap()
        .unwrap();
    assert_eq!(dup.history.len(), 2, "a duplicate event is recorded once");
    let stale = store
        .record_status(&k, RunStatus::InProgress, T0, &[])
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
            .record_status(&key(id, "nope"), RunStatus::Failed, t1, &[])
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
    assert!(
        finish(store, rid, "exec-b", ReleaseStatus::Failed, Some("no"), T0)
            .await
            .is_err()
    );
    assert!(request_stop(store, rid, "exec-b").await.is_err());
    request_stop(store, rid, "exec-a").await.unwrap();
    let t = T0 + time::Duration::hours(1);
    let done = finish(
        store,
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

/// set_token is conditional on the time the stored token was stored (`tokenAt`): a token of
/// a newer attempt of the task is never replaced by an older one (issue 9, fault 9).
pub async fn an_older_token_never_replaces_a_newer_one(store: &dyn ReleaseStore, id: &str) {
    let rel = new_release(id, "exec-a", &["app"]);
    store.claim(&rel).await.unwrap();
    let rid = &rel.record.release_id;
    let k = key(id, "app");

    let run = store.set_token(&k, "newer", minutes(2)).await.unwrap();
    assert_eq!(run.task_token.as_deref(), Some("newer"));
    let run = store.set_token(&k, "older", minutes(1)).await.unwrap();
    assert_eq!(
        run.task_token.as_deref(),
        Some("newer"),
        "an older token is refused and the run returned with the newer one"
    );
    let stored = store.get_run(rid, "app").await.unwrap().unwrap();
    assert_eq!(stored.task_token.as_deref(), Some("newer"));
    assert_eq!(waiting_of(store, id).await, waiting(&[("app", "newer")]));

    let run = store.set_token(&k, "same-time", minutes(2)).await.unwrap();
    assert_eq!(
        run.task_token.as_deref(),
        Some("same-time"),
        "a token stored at the same time is replaced"
    );
    // Sub-second times compare as times, whatever their text: 2:01 then 2:01.5.
    let t = minutes(2) + time::Duration::seconds(1);
    store.set_token(&k, "at-1s", t).await.unwrap();
    let half = t + time::Duration::milliseconds(500);
    let run = store.set_token(&k, "at-1.5s", half).await.unwrap();
    assert_eq!(run.task_token.as_deref(), Some("at-1.5s"));
    let run = store
        .set_token(&k, "at-1.25s", t + time::Duration::milliseconds(250))
        .await
        .unwrap();
    assert_eq!(run.task_token.as_deref(), Some("at-1.5s"));

    // The newest token's time outlives its clearing: a late store of an older attempt's
    // token does not bring back a wait that already ended.
    assert!(store.clear_token(&k, "at-1.5s").await.unwrap());
    let run = store.set_token(&k, "stale", minutes(1)).await.unwrap();
    assert_eq!(
        run.task_token, None,
        "a stale token is not stored after a clear"
    );
    assert!(waiting_of(store, id).await.is_empty());
    let run = store.set_token(&k, "next-wait", minutes(5)).await.unwrap();
    assert_eq!(run.task_token.as_deref(), Some("next-wait"));

    // The returned run shows a terminal status that arrived first.
    store
        .record_status(&k, RunStatus::Failed, minutes(6), &[])
        .await
        .unwrap();
    let run = store.set_token(&k, "after-end", minutes(7)).await.unwrap();
    assert_eq!(run.status, RunStatus::Failed);
    assert_eq!(run.task_token.as_deref(), Some("after-end"));

    let missing = store.set_token(&key(id, "nope"), "t", minutes(8)).await;
    assert!(
        matches!(missing, Err(PortError::NotFound(_))),
        "{missing:?}"
    );
}

/// waiting_runs lists the least recently polled first; touch_waiting moves a run that still
/// carries the token to the back, and does nothing otherwise.
pub async fn touch_moves_a_waiting_run_to_the_back(store: &dyn ReleaseStore, id: &str) {
    let rel = new_release(id, "exec-a", &["app", "web", "db", "idle"]);
    store.claim(&rel).await.unwrap();
    // Stored out of order: listed by time, not by writing order or name.
    store
        .set_token(&key(id, "db"), "tok-db", minutes(3))
        .await
        .unwrap();
    store
        .set_token(&key(id, "app"), "tok-app", minutes(1))
        .await
        .unwrap();
    store
        .set_token(&key(id, "web"), "tok-web", minutes(2))
        .await
        .unwrap();
    assert_eq!(
        waiting_of(store, id).await,
        waiting(&[("app", "tok-app"), ("web", "tok-web"), ("db", "tok-db")])
    );

    store
        .touch_waiting(&key(id, "app"), "tok-app", minutes(10))
        .await
        .unwrap();
    assert_eq!(
        waiting_of(store, id).await,
        waiting(&[("web", "tok-web"), ("db", "tok-db"), ("app", "tok-app")]),
        "the polled run moved to the back"
    );

    // Another token (an older attempt's), a run without a token, an unknown run: nothing.
    store
        .touch_waiting(&key(id, "web"), "tok-other", minutes(11))
        .await
        .unwrap();
    store
        .touch_waiting(&key(id, "idle"), "tok-idle", minutes(11))
        .await
        .unwrap();
    store
        .touch_waiting(&key(id, "nope"), "tok-web", minutes(11))
        .await
        .unwrap();
    assert_eq!(
        waiting_of(store, id).await,
        waiting(&[("web", "tok-web"), ("db", "tok-db"), ("app", "tok-app")])
    );
    let idle = store.get_run(&rel.record.release_id, "idle").await.unwrap();
    assert_eq!(idle.unwrap().task_token, None, "a touch stores no token");

    // Sub-second order: 12:00.5 after 12:00, whatever the text of the times.
    let t = minutes(12);
    store
        .touch_waiting(
            &key(id, "web"),
            "tok-web",
            t + time::Duration::milliseconds(500),
        )
        .await
        .unwrap();
    store
        .touch_waiting(&key(id, "db"), "tok-db", t)
        .await
        .unwrap();
    assert_eq!(
        waiting_of(store, id).await,
        waiting(&[("app", "tok-app"), ("db", "tok-db"), ("web", "tok-web")])
    );

    // A cleared run is no longer listed, and a touch does not bring it back.
    assert!(store.clear_token(&key(id, "db"), "tok-db").await.unwrap());
    store
        .touch_waiting(&key(id, "db"), "tok-db", minutes(13))
        .await
        .unwrap();
    assert_eq!(
        waiting_of(store, id).await,
        waiting(&[("app", "tok-app"), ("web", "tok-web")])
    );
}

/// running_releases lists every RUNNING release (a stop requested or not), and no other.
pub async fn running_releases_lists_only_running_ones(store: &dyn ReleaseStore, prefix: &str) {
    let ids = ["a", "b", "c", "d", "e"].map(|s| format!("{prefix}-{s}"));
    for id in &ids {
        store
            .claim(&new_release(id, "exec-a", &["app"]))
            .await
            .unwrap();
    }
    let rid = |i: usize| ReleaseId::parse(&ids[i]).unwrap();
    finish(
        store,
        &rid(1),
        "exec-a",
        ReleaseStatus::Succeeded,
        None,
        minutes(5),
    )
    .await
    .unwrap();
    finish(
        store,
        &rid(3),
        "exec-a",
        ReleaseStatus::Failed,
        Some("x"),
        minutes(5),
    )
    .await
    .unwrap();
    store.release_claim(&rid(4), "exec-a").await.unwrap();
    request_stop(store, &rid(2), "exec-a").await.unwrap();

    let mut running: Vec<ReleaseRecord> = store
        .running_releases()
        .await
        .unwrap()
        .into_iter()
        .filter(|r| r.release_id.as_str().starts_with(&format!("{prefix}-")))
        .collect();
    running.sort_by(|a, b| a.release_id.cmp(&b.release_id));
    let expected = [
        store.release_record(&rid(0)).await.unwrap().unwrap(),
        store.release_record(&rid(2)).await.unwrap().unwrap(),
    ];
    assert_eq!(running, expected, "only the RUNNING releases, as stored");
    assert!(running[1].stop_requested);
    assert!(running.iter().all(|r| r.status == ReleaseStatus::Running));

    // A release that ends leaves the list.
    finish(
        store,
        &rid(0),
        "exec-a",
        ReleaseStatus::Succeeded,
        None,
        minutes(6),
    )
    .await
    .unwrap();
    let running: Vec<String> = store
        .running_releases()
        .await
        .unwrap()
        .into_iter()
        .map(|r| r.release_id.to_string())
        .filter(|r| r.starts_with(&format!("{prefix}-")))
        .collect();
    assert_eq!(running, [ids[2].clone()]);
}

/// finish and request_stop hold only while the release is RUNNING: an ended release stays as
/// it ended, and the error says how it ended.
pub async fn an_ended_release_stays_as_it_ended(store: &dyn ReleaseStore, id: &str) {
    let rel = new_release(id, "exec-a", &["app"]);
    store.claim(&rel).await.unwrap();
    let rid = &rel.record.release_id;
    let t = minutes(30);
    let done = finish(store, rid, "exec-a", ReleaseStatus::Succeeded, None, t)
        .await
        .unwrap();
    assert_eq!(done.status, ReleaseStatus::Succeeded);
    assert_eq!(done.ended_at, Some(t));
    let before = store.get(rid).await.unwrap().unwrap();

    let again = finish(
        store,
        rid,
        "exec-a",
        ReleaseStatus::Failed,
        Some("late"),
        minutes(40),
    )
    .await;
    match &again {
        Err(PortError::ConditionFailed(m)) => {
            assert!(m.contains("SUCCEEDED"), "the error says how it ended: {m}")
        }
        other => panic!("finishing an ended release: {other:?}"),
    }
    let stop = request_stop(store, rid, "exec-a").await;
    match &stop {
        Err(PortError::ConditionFailed(m)) => {
            assert!(m.contains("SUCCEEDED"), "the error says how it ended: {m}")
        }
        other => panic!("stopping an ended release: {other:?}"),
    }
    let after = store.get(rid).await.unwrap().unwrap();
    assert_eq!(after, before, "nothing changed");
    assert_eq!(after.release.cause, None);
    assert!(!after.release.stop_requested);

    // Another owner is still told it does not hold the release.
    let other = finish(
        store,
        rid,
        "exec-b",
        ReleaseStatus::Failed,
        None,
        minutes(40),
    )
    .await;
    assert!(
        matches!(other, Err(PortError::ConditionFailed(_))),
        "{other:?}"
    );
}

/// A waiting run and a RUNNING release that an adapter's test breaks on purpose (a garbage
/// attribute, a column that does not decode), next to sound ones: see
/// [`BrokenItems::check_skipped`].
pub struct BrokenItems {
    pub good_run: RunKey,
    pub broken_run: RunKey,
    pub good_release: ReleaseId,
    pub broken_release: ReleaseId,
}

impl BrokenItems {
    /// Claims two releases of one pipeline each, both waiting on a token. The adapter's test
    /// then breaks `broken_run` and the release item of `broken_release`.
    pub async fn prepare(store: &dyn ReleaseStore, prefix: &str) -> BrokenItems {
        let good = format!("{prefix}-good");
        let broken = format!("{prefix}-broken");
        for id in [&good, &broken] {
            store
                .claim(&new_release(id, "exec-a", &["app"]))
                .await
                .unwrap();
            store
                .set_token(&key(id, "app"), &format!("tok-{id}"), T0)
                .await
                .unwrap();
        }
        BrokenItems {
            good_run: key(&good, "app"),
            broken_run: key(&broken, "app"),
            good_release: ReleaseId::parse(&good).unwrap(),
            broken_release: ReleaseId::parse(&broken).unwrap(),
        }
    }

    /// Before the adapter's test breaks them, both are listed.
    pub async fn check_listed(&self, store: &dyn ReleaseStore) {
        let (waiting, running) = self.lists(store).await;
        assert!(waiting.contains(&self.good_run), "{waiting:?}");
        assert!(waiting.contains(&self.broken_run), "{waiting:?}");
        assert!(running.contains(&self.good_release), "{running:?}");
        assert!(running.contains(&self.broken_release), "{running:?}");
    }

    /// The broken items are skipped (the adapter logs them), never an error for the whole list.
    pub async fn check_skipped(&self, store: &dyn ReleaseStore) {
        let (waiting, running) = self.lists(store).await;
        assert!(waiting.contains(&self.good_run), "{waiting:?}");
        assert!(!waiting.contains(&self.broken_run), "{waiting:?}");
        assert!(running.contains(&self.good_release), "{running:?}");
        assert!(!running.contains(&self.broken_release), "{running:?}");
    }

    async fn lists(&self, store: &dyn ReleaseStore) -> (Vec<RunKey>, Vec<ReleaseId>) {
        let waiting: Vec<RunKey> = store
            .waiting_runs()
            .await
            .expect("a broken item does not fail the whole list")
            .into_iter()
            .map(|r| RunKey {
                release_id: r.release_id,
                pipeline: r.spec.name,
            })
            .collect();
        let running: Vec<ReleaseId> = store
            .running_releases()
            .await
            .expect("a broken item does not fail the whole list")
            .into_iter()
            .map(|r| r.release_id)
            .collect();
        (waiting, running)
    }
}

//! Operating a release (issue 11) against in-memory ports: approvals, cancel, retry, and the
//! events every change publishes.

use rm_core::lifecycle::{ApprovalStatus, WaveStatus};
use rm_core::memory::*;
use rm_core::ports::{
    ApiPorts, Clock, ExecutionRunState, ExecutionState, ManifestPorts, ReleaseStore, RunPorts,
};
use rm_core::release::{ReleaseId, ReleaseStatus, RunStatus};
use rm_core::tasks::*;
use rm_core::usecases::*;
use rm_core::TaskError;
use serde_json::json;

struct World {
    store: MemoryStore,
    pipelines: FakePipelines,
    tokens: RecordingTokens,
    executions: FakeExecutions,
    bus: MemoryBus,
    clock: ManualClock,
}

const OWNER: &str = "exec-1";

impl World {
    fn new() -> Self {
        World {
            store: MemoryStore::new(),
            pipelines: FakePipelines::with(&["app", "web", "db"]),
            tokens: RecordingTokens::default(),
            executions: FakeExecutions::default(),
            bus: MemoryBus::new(),
            clock: ManualClock::fixed(),
        }
    }

    fn run(&self) -> RunPorts<'_> {
        RunPorts {
            sensors: rm_core::memory::no_sensors(),
            store: &self.store,
            pipelines: &self.pipelines,
            tokens: &self.tokens,
            executions: &self.executions,
            bus: &self.bus,
            clock: &self.clock,
        }
    }

    fn api(&self) -> ApiPorts<'_> {
        ApiPorts {
            sensors: rm_core::memory::no_sensors(),
            store: &self.store,
            pipelines: &self.pipelines,
            executions: &self.executions,
            tokens: &self.tokens,
            bus: &self.bus,
            clock: &self.clock,
        }
    }

    /// Claims `manifest` for OWNER, as CheckManifest does.
    async fn claim(&self, manifest: serde_json::Value) -> CheckManifestResponse {
        let ports = ManifestPorts {
            store: &self.store,
            pipelines: &self.pipelines,
            source: &FakeSource::default(),
            bus: &self.bus,
            clock: &self.clock,
        };
        let req = CheckManifestRequest {
            input: manifest,
            execution_name: OWNER.into(),
        };
        check_manifest(&req, &ports).await.unwrap()
    }

    async fn release(&self) -> rm_core::release::StoredRelease {
        self.store.get(&rid()).await.unwrap().unwrap()
    }

    fn approval(&self, wave: u32, token: &str) -> ApprovalRequest {
        ApprovalRequest {
            release_id: "r1".into(),
            execution_name: OWNER.into(),
            wave,
            task_token: token.into(),
        }
    }

    /// Runs `pipeline` of the release to `status` (started, then the event recorded).
    async fn run_to(&self, owner: &str, pipeline: &str, status: RunStatus) {
        await_pipeline(
            "r1",
            owner,
            pipeline,
            &format!("tok-{pipeline}"),
            0,
            &self.run(),
        )
        .await
        .unwrap();
        let run = self.store.get_run(&rid(), pipeline).await.unwrap().unwrap();
        let change = PipelineStateChange {
            pipeline: pipeline.into(),
            execution_id: run.execution_id.unwrap(),
            status,
            at: self.clock.now(),
        };
        record_state_change(&change, &self.run()).await.unwrap();
    }
}

fn rid() -> ReleaseId {
    ReleaseId::parse("r1").unwrap()
}

fn manifest() -> serde_json::Value {
    json!({"releaseId": "r1", "approvals": [2], "approvalTimeoutMinutes": 30,
           "pipelines": ["app", {"name": "web", "wave": 2}, {"name": "db", "wave": 2}]})
}

#[tokio::test]
async fn a_wave_of_the_manifests_approvals_waits_for_a_human_and_starts_when_approved() {
    let w = World::new();
    let check = w.claim(manifest()).await;
    let flags: Vec<(u32, bool, u64)> = check
        .waves
        .iter()
        .map(|x| (x.wave, x.approval, x.approval_timeout_seconds))
        .collect();
    assert_eq!(flags, vec![(1, false, 1800), (2, true, 1800)]);

    await_approval(&w.approval(2, "approval-token"), &w.run())
        .await
        .unwrap();
    let view = rm_core::view::ReleaseView::from(&w.release().await);
    assert_eq!(
        serde_json::to_value(&view.waiting_for).unwrap(),
        json!({"approval": {"wave": 2, "since": "2026-01-01T00:00:00Z"}})
    );
    assert_eq!(view.approvals[0].status, ApprovalStatus::Waiting);
    assert_eq!(view.waves[1].status, WaveStatus::WaitingApproval);
    assert_eq!(view.waits.len(), 1);
    assert!(w
        .bus
        .events()
        .iter()
        .any(|e| e.detail_type == "Approval Requested"
            && e.detail["wave"] == 2
            && e.detail["approve"]
                .as_str()
                .unwrap()
                .contains("release-machine approve r1 --wave 2")));

    // Approving a wave that is not waiting is refused.
    let wrong = decide_approval(&rid(), 1, "alice", &Decision::Approve, &w.api()).await;
    assert!(matches!(wrong, Err(TaskError::Conflict(m)) if m.contains("wave 1 is not waiting")));

    w.clock.advance(time::Duration::minutes(5));
    decide_approval(&rid(), 2, "alice", &Decision::Approve, &w.api())
        .await
        .unwrap();
    let sent = w.tokens.sent();
    assert_eq!(sent.len(), 1, "{sent:?}");
    assert_eq!(sent[0].0, "approval-token");
    assert!(sent[0].1.is_ok());
    let release = w.release().await.release;
    assert_eq!(release.lifecycle.waiting_for, None);
    assert_eq!(release.lifecycle.approval_token, None, "delivered, dropped");
    let a = &release.lifecycle.approvals[0];
    assert_eq!(
        (a.status, a.by.as_deref(), a.at),
        (ApprovalStatus::Approved, Some("alice"), Some(w.clock.now()))
    );
    assert_eq!(release.lifecycle.waits[0].until, Some(w.clock.now()));
    // A second approval is refused: the wave no longer waits.
    let again = decide_approval(&rid(), 2, "bob", &Decision::Approve, &w.api()).await;
    assert!(matches!(again, Err(TaskError::Conflict(_))));
}

#[tokio::test]
async fn a_rejected_approval_fails_the_wait_and_the_release_says_who_rejected_it() {
    let w = World::new();
    w.claim(manifest()).await;
    w.run_to(OWNER, "app", RunStatus::Succeeded).await;
    await_approval(&w.approval(2, "tok"), &w.run())
        .await
        .unwrap();
    let reason = Decision::Reject {
        reason: "error budget spent".into(),
    };
    decide_approval(&rid(), 2, "bob", &reason, &w.api())
        .await
        .unwrap();
    let sent = w.tokens.sent();
    let approval = sent
        .iter()
        .find(|(t, _)| t == "tok")
        .expect("the approval's token");
    let (error, cause) = approval.1.clone().unwrap_err();
    assert_eq!(error, APPROVAL_REJECTED);
    assert_eq!(cause, "wave 2 rejected by bob: error budget spent");
    // The definition's catch then records the failure with that error.
    let req = RecordReleaseRequest {
        release_id: "r1".into(),
        execution_name: OWNER.into(),
        status: ReleaseStatus::Failed,
        error: Some(CaughtError {
            error,
            cause: Some(cause.clone()),
        }),
    };
    let view = record_release(&req, &w.run()).await.unwrap();
    assert_eq!(view.status, ReleaseStatus::Failed);
    assert_eq!(view.cause.as_deref(), Some(cause.as_str()));
    assert_eq!(view.approvals[0].status, ApprovalStatus::Rejected);
    assert_eq!(
        view.approvals[0].reason.as_deref(),
        Some("error budget spent")
    );
    assert_eq!(view.waves[0].status, WaveStatus::Succeeded);
    assert_eq!(view.waves[1].status, WaveStatus::Failed);
    assert_eq!(view.attempts[0].status, ReleaseStatus::Failed);
    // A reject needs a reason.
    let empty = Decision::Reject { reason: " ".into() };
    let bad = decide_approval(&rid(), 2, "bob", &empty, &w.api()).await;
    assert!(matches!(bad, Err(TaskError::BadInput(_))));
}

#[tokio::test]
async fn an_approval_that_times_out_fails_the_release_with_a_cause_that_says_so() {
    let w = World::new();
    w.claim(manifest()).await;
    await_approval(&w.approval(2, "tok"), &w.run())
        .await
        .unwrap();
    w.clock.advance(time::Duration::minutes(30));
    let out = approval_timed_out(&w.approval(2, ""), &w.run())
        .await
        .unwrap();
    assert_eq!(out.error, APPROVAL_TIMED_OUT);
    assert_eq!(
        out.cause,
        "the approval of wave 2 timed out after 30 minutes"
    );
    let req = RecordReleaseRequest {
        release_id: "r1".into(),
        execution_name: OWNER.into(),
        status: ReleaseStatus::Failed,
        error: Some(CaughtError {
            error: out.error,
            cause: Some(out.cause.clone()),
        }),
    };
    let view = record_release(&req, &w.run()).await.unwrap();
    assert_eq!(view.cause.as_deref(), Some(out.cause.as_str()));
    assert_eq!(view.approvals[0].status, ApprovalStatus::TimedOut);
    assert_eq!(view.waiting_for, None);
    let approve = decide_approval(&rid(), 2, "late", &Decision::Approve, &w.api()).await;
    assert!(matches!(approve, Err(TaskError::Conflict(_))));
}

#[tokio::test]
async fn a_cancel_is_recorded_then_the_execution_stopped_and_the_reconciler_ends_it_cancelled() {
    let w = World::new();
    w.claim(manifest()).await;
    w.run_to(OWNER, "app", RunStatus::Succeeded).await;
    await_approval(&w.approval(2, "tok"), &w.run())
        .await
        .unwrap();
    let no_reason = cancel_release(&rid(), "carol", "", &w.api()).await;
    assert!(matches!(no_reason, Err(TaskError::BadInput(_))));

    cancel_release(&rid(), "carol", "wrong build", &w.api())
        .await
        .unwrap();
    let release = w.release().await.release;
    assert!(release.stop_requested);
    assert_eq!(release.lifecycle.cancel.as_ref().unwrap().by, "carol");
    // The release JSON shows the cancel while the release still runs.
    let json = serde_json::to_value(rm_core::view::ReleaseView::from(&w.release().await)).unwrap();
    assert_eq!(json["status"], "RUNNING");
    assert_eq!(json["cancelRequested"]["by"], "carol");
    assert_eq!(json["cancelRequested"]["reason"], "wrong build");
    assert_eq!(
        release.status,
        ReleaseStatus::Running,
        "the reconciler ends it"
    );
    assert_eq!(
        w.executions.stopped(),
        vec![(
            OWNER.to_owned(),
            "cancelled by carol: wrong build".to_owned()
        )]
    );
    // The execution's ABORTED status change reaches the reconciler.
    let end = ExecutionEnd {
        execution_name: OWNER.into(),
        state: ExecutionState {
            status: ExecutionRunState::Aborted,
            error: Some(CANCELLED.into()),
            cause: None,
        },
    };
    reconcile_execution(&end, &w.run()).await.unwrap();
    let view = rm_core::view::ReleaseView::from(&w.release().await);
    assert_eq!(view.status, ReleaseStatus::Cancelled);
    assert_eq!(
        view.cause.as_deref(),
        Some("cancelled by carol: wrong build")
    );
    assert_eq!(view.approvals[0].status, ApprovalStatus::Cancelled);
    assert_eq!(view.waves[1].status, WaveStatus::Cancelled);
    assert_eq!(view.waiting_for, None);
    let statuses: Vec<_> = view
        .pipelines
        .iter()
        .map(|p| (p.name.as_str(), p.status))
        .collect();
    assert_eq!(
        statuses,
        vec![
            ("app", RunStatus::Succeeded),
            ("db", RunStatus::NotStarted),
            ("web", RunStatus::NotStarted)
        ]
    );
    // An ended release cannot be cancelled.
    let again = cancel_release(&rid(), "carol", "again", &w.api()).await;
    assert!(matches!(again, Err(TaskError::Conflict(m)) if m.contains("CANCELLED")));
}

#[tokio::test]
async fn a_retry_claims_attempt_two_once_and_reruns_only_what_did_not_succeed() {
    let w = World::new();
    w.claim(json!({"releaseId": "r1", "onFailure": "continue",
                   "pipelines": ["app", "web", {"name": "db", "wave": 2}]}))
        .await;
    let retry_running = retry_release(&rid(), "dave", "exec-2", &w.api()).await;
    assert!(matches!(retry_running, Err(TaskError::Conflict(m)) if m.contains("RUNNING")));
    w.run_to(OWNER, "app", RunStatus::Succeeded).await;
    w.run_to(OWNER, "web", RunStatus::Failed).await;
    let req = RecordReleaseRequest {
        release_id: "r1".into(),
        execution_name: OWNER.into(),
        status: ReleaseStatus::Failed,
        error: None,
    };
    record_release(&req, &w.run()).await.unwrap();
    let app_execution = w
        .store
        .get_run(&rid(), "app")
        .await
        .unwrap()
        .unwrap()
        .execution_id;

    w.clock.advance(time::Duration::hours(1));
    let out = retry_release(&rid(), "dave", "exec-2", &w.api())
        .await
        .unwrap();
    assert_eq!(out.release.lifecycle.attempt, 2);
    assert_eq!(out.release.owner, "exec-2");
    assert_eq!(w.executions.started()[0].0, "exec-2");
    assert_eq!(w.executions.started()[0].1, json!({"claimedRelease": "r1"}));
    // A second retry of the same attempt is refused: it is RUNNING now.
    let twice = retry_release(&rid(), "erin", "exec-3", &w.api()).await;
    assert!(matches!(twice, Err(TaskError::Conflict(_))));

    // The new execution's CheckManifest runs web (failed) and db (never started), not app.
    let ports = ManifestPorts {
        store: &w.store,
        pipelines: &w.pipelines,
        source: &FakeSource::default(),
        bus: &w.bus,
        clock: &w.clock,
    };
    let check = check_manifest(
        &CheckManifestRequest {
            input: json!({"claimedRelease": "r1"}),
            execution_name: "exec-2".into(),
        },
        &ports,
    )
    .await
    .unwrap();
    let waves: Vec<(u32, Vec<String>)> = check
        .waves
        .iter()
        .map(|x| (x.wave, x.pipelines.iter().map(|p| p.name.clone()).collect()))
        .collect();
    assert_eq!(
        waves,
        vec![(1, vec!["web".to_owned()]), (2, vec!["db".to_owned()])]
    );
    for p in ["web", "db"] {
        w.run_to("exec-2", p, RunStatus::Succeeded).await;
    }
    let req = RecordReleaseRequest {
        release_id: "r1".into(),
        execution_name: "exec-2".into(),
        status: ReleaseStatus::Succeeded,
        error: None,
    };
    let view = record_release(&req, &w.run()).await.unwrap();
    assert_eq!(view.status, ReleaseStatus::Succeeded);
    assert_eq!(view.attempt, 2);
    let attempts: Vec<_> = view
        .attempts
        .iter()
        .map(|a| (a.attempt, a.status))
        .collect();
    assert_eq!(
        attempts,
        vec![(1, ReleaseStatus::Failed), (2, ReleaseStatus::Succeeded)]
    );
    let app = view.pipelines.iter().find(|p| p.name == "app").unwrap();
    assert_eq!((app.attempt, &app.execution_id), (1, &app_execution));
    assert_eq!(app.history.len(), 2, "app kept its one run");
    let web = view.pipelines.iter().find(|p| p.name == "web").unwrap();
    assert_eq!(web.attempt, 2);
    let web_history: Vec<_> = web.history.iter().map(|h| (h.attempt, h.status)).collect();
    assert_eq!(
        web_history,
        vec![
            (1, RunStatus::InProgress),
            (1, RunStatus::Failed),
            (2, RunStatus::InProgress),
            (2, RunStatus::Succeeded)
        ]
    );
    assert_ne!(web.history[0].execution_id, web.history[2].execution_id);
    // A SUCCEEDED release is not retried.
    let done = retry_release(&rid(), "dave", "exec-4", &w.api()).await;
    assert!(matches!(done, Err(TaskError::Conflict(m)) if m.contains("SUCCEEDED")));
}

#[tokio::test]
async fn every_change_is_published_once_with_a_strictly_increasing_sequence() {
    let w = World::new();
    w.claim(manifest()).await;
    w.run_to(OWNER, "app", RunStatus::Succeeded).await;
    await_approval(&w.approval(2, "tok"), &w.run())
        .await
        .unwrap();
    // PutEvents rejects some entries: they are sent again.
    w.bus.reject_next(2);
    decide_approval(&rid(), 2, "alice", &Decision::Approve, &w.api())
        .await
        .unwrap();
    for p in ["web", "db"] {
        w.run_to(OWNER, p, RunStatus::Succeeded).await;
    }
    let req = RecordReleaseRequest {
        release_id: "r1".into(),
        execution_name: OWNER.into(),
        status: ReleaseStatus::Succeeded,
        error: None,
    };
    record_release(&req, &w.run()).await.unwrap();
    let events = w.bus.events();
    let mut sequences: Vec<u64> = events.iter().map(|e| e.sequence).collect();
    sequences.sort_unstable();
    let n = sequences.len();
    sequences.dedup();
    assert_eq!(sequences.len(), n, "each event once: {events:#?}");
    let left = w.store.outbox(None, 100).await.unwrap();
    assert!(left.is_empty(), "{left:#?}");
    let kinds: Vec<&str> = events.iter().map(|e| e.detail_type.as_str()).collect();
    for kind in [
        "Release Status Change",
        "Wave Status Change",
        "Pipeline Run Status Change",
        "Approval Requested",
        "Release Waiting",
    ] {
        assert!(kinds.contains(&kind), "{kind} missing: {kinds:?}");
    }
    assert_eq!(events[0].detail["status"], "RUNNING");
    let last = events.iter().max_by_key(|e| e.sequence).unwrap();
    assert_eq!(last.detail_type, "Release Status Change");
    assert_eq!(last.detail["status"], "SUCCEEDED");
    for e in &events {
        assert_eq!(e.detail["eventId"], format!("r1:{}", e.sequence));
        assert_eq!(e.detail["releaseId"], "r1");
        assert!(
            e.detail.get("pipelines").is_none(),
            "never the whole release"
        );
    }
}

/// Issue 11: 50 concurrent retries of one FAILED release claim exactly one attempt (one
/// conditional write wins; the others read again, find it RUNNING and are refused).
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn fifty_concurrent_retries_give_one_attempt() {
    let w = std::sync::Arc::new(World::new());
    w.claim(json!({"releaseId": "r1", "pipelines": ["app"]}))
        .await;
    w.run_to(OWNER, "app", RunStatus::Failed).await;
    let req = RecordReleaseRequest {
        release_id: "r1".into(),
        execution_name: OWNER.into(),
        status: ReleaseStatus::Failed,
        error: None,
    };
    record_release(&req, &w.run()).await.unwrap();
    let tries: Vec<_> = (0..50)
        .map(|i| {
            let w = std::sync::Arc::clone(&w);
            tokio::spawn(async move {
                retry_release(&rid(), "dave", &format!("exec-retry-{i}"), &w.api()).await
            })
        })
        .collect();
    let mut won = 0;
    let mut refused = 0;
    for t in tries {
        match t.await.unwrap() {
            Ok(_) => won += 1,
            Err(TaskError::Conflict(_)) => refused += 1,
            Err(other) => panic!("a retry neither won nor was refused: {other}"),
        }
    }
    assert_eq!((won, refused), (1, 49));
    let release = w.release().await.release;
    assert_eq!(release.lifecycle.attempt, 2);
    assert_eq!(release.lifecycle.attempts.len(), 2);
    assert_eq!(w.executions.started().len(), 1, "one execution started");
}

/// The rejection's words come from the recorded approval: a failure whose cause did not reach
/// the execution (moto drops SendTaskFailure's cause) still ends the release with who and why.
#[tokio::test]
async fn a_rejection_keeps_its_cause_when_the_task_failure_lost_it() {
    let w = World::new();
    w.claim(manifest()).await;
    await_approval(&w.approval(2, "tok"), &w.run())
        .await
        .unwrap();
    let reject = Decision::Reject {
        reason: "freeze".into(),
    };
    decide_approval(&rid(), 2, "bob", &reject, &w.api())
        .await
        .unwrap();
    let req = RecordReleaseRequest {
        release_id: "r1".into(),
        execution_name: OWNER.into(),
        status: ReleaseStatus::Failed,
        error: Some(CaughtError {
            error: APPROVAL_REJECTED.into(),
            cause: Some(String::new()),
        }),
    };
    let view = record_release(&req, &w.run()).await.unwrap();
    assert_eq!(
        view.cause.as_deref(),
        Some("wave 2 rejected by bob: freeze")
    );
}

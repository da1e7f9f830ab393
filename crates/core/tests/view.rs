//! `rm_core::view::changes`: what a watcher sees between two snapshots of a release.

use proptest::prelude::*;
use rm_core::lifecycle::{
    ApprovalRecord, ApprovalStatus, AttemptRecord, CancelRequest, WaitKind, WaitRecord, WaitingFor,
    WaveRecord, WaveStatus,
};
use rm_core::release::{HistoryEntry, ReleaseStatus, RunStatus};
use rm_core::view::{changes, ReleaseChange, ReleaseView, RunView};
use rm_core::OnFailure;
use serde_json::json;
use std::collections::HashMap;
use time::macros::datetime;
use time::{Duration, OffsetDateTime};

const T0: OffsetDateTime = datetime!(2026-11-22 09:00:00 UTC);

fn at(seconds: i64) -> OffsetDateTime {
    T0 + Duration::seconds(seconds)
}

fn run(name: &str, wave: u32) -> RunView {
    RunView {
        name: name.into(),
        wave,
        status: RunStatus::NotStarted,
        attempt: 1,
        execution_id: None,
        started_at: None,
        ended_at: None,
        history: Vec::new(),
        stop_abandoned: false,
        cause: None,
    }
}

/// A release of `names` per wave, just claimed.
fn release(waves: &[&[&str]]) -> ReleaseView {
    ReleaseView {
        release_id: "2026.11.22".into(),
        status: ReleaseStatus::Running,
        requested_at: T0,
        ended_at: None,
        source: "inline".into(),
        requested_by: Some("alice".into()),
        on_failure: OnFailure::Stop,
        max_concurrency: 10,
        description: None,
        cause: None,
        attempt: 1,
        attempts: vec![AttemptRecord {
            attempt: 1,
            execution: "exec-1".into(),
            requested_at: T0,
            requested_by: Some("alice".into()),
            ended_at: None,
            status: ReleaseStatus::Running,
            cause: None,
        }],
        waiting_for: None,
        cancel_requested: None,
        approvals: Vec::new(),
        waves: (1..=waves.len() as u32)
            .map(|wave| WaveRecord {
                wave,
                status: WaveStatus::Pending,
                started_at: None,
                ended_at: None,
            })
            .collect(),
        waits: Vec::new(),
        gates: None,
        pipelines: waves
            .iter()
            .enumerate()
            .flat_map(|(i, names)| names.iter().map(move |n| run(n, i as u32 + 1)))
            .collect(),
    }
}

/// `name` goes to `status` at `seconds`, with its history.
fn set(view: &mut ReleaseView, name: &str, status: RunStatus, seconds: i64) {
    let p = view.pipelines.iter_mut().find(|p| p.name == name).unwrap();
    p.status = status;
    p.history.push(HistoryEntry {
        status,
        at: at(seconds),
        attempt: p.attempt,
        execution_id: None,
    });
    if status == RunStatus::InProgress {
        p.started_at = Some(at(seconds));
    }
    if status.is_terminal() {
        p.ended_at = Some(at(seconds));
    }
}

fn wave(view: &mut ReleaseView, n: u32, status: WaveStatus, seconds: i64) {
    let w = view.waves.iter_mut().find(|w| w.wave == n).unwrap();
    w.status = status;
    if status == WaveStatus::Running {
        w.started_at = Some(at(seconds));
    } else if !status.is_open() {
        w.ended_at = Some(at(seconds));
    }
}

fn pipeline_change(c: &ReleaseChange) -> Option<(&str, RunStatus, Option<OffsetDateTime>)> {
    match c {
        ReleaseChange::Pipeline { name, to, at, .. } => Some((name.as_str(), *to, *at)),
        _ => None,
    }
}

#[test]
fn a_snapshot_diffed_with_itself_yields_nothing() {
    let mut r = release(&[&["a", "b"], &["c"]]);
    wave(&mut r, 1, WaveStatus::Running, 0);
    set(&mut r, "a", RunStatus::InProgress, 0);
    assert_eq!(changes(Some(&r), &r), []);
}

#[test]
fn a_release_seen_first_is_described_from_its_claim_in_time_order() {
    let mut r = release(&[&["a", "b"], &["c"]]);
    wave(&mut r, 1, WaveStatus::Running, 0);
    set(&mut r, "a", RunStatus::InProgress, 0);
    set(&mut r, "b", RunStatus::InProgress, 5);
    set(&mut r, "a", RunStatus::Succeeded, 180);
    r.waiting_for = None;
    let found = changes(None, &r);
    assert!(
        matches!(
            &found[0],
            ReleaseChange::Claimed { release_id, attempt: 1, execution: Some(e), pipelines: 3, waves: 2, max_concurrency: 10, at, .. }
                if release_id == "2026.11.22" && e == "exec-1" && *at == T0
        ),
        "{found:#?}"
    );
    assert!(
        matches!(
            &found[1],
            ReleaseChange::Wave {
                wave: 1,
                position: 1,
                of: 2,
                from: WaveStatus::Pending,
                to: WaveStatus::Running,
                ..
            }
        ),
        "{found:#?}"
    );
    let pipelines: Vec<_> = found.iter().filter_map(pipeline_change).collect();
    // In the order they happened: b started at +5 s, a succeeded at +180 s.
    assert_eq!(
        pipelines,
        [
            ("b", RunStatus::InProgress, Some(at(5))),
            ("a", RunStatus::Succeeded, Some(at(180)))
        ]
    );
    assert_eq!(found.len(), 4, "{found:#?}");
}

#[test]
fn a_pipeline_that_started_and_ended_between_two_polls_is_one_change_at_its_end() {
    let before = release(&[&["a"]]);
    let mut after = before.clone();
    set(&mut after, "a", RunStatus::InProgress, 10);
    set(&mut after, "a", RunStatus::Failed, 200);
    after.pipelines[0].cause = Some("failed in stage Deploy".into());
    let found = changes(Some(&before), &after);
    assert_eq!(
        found,
        [ReleaseChange::Pipeline {
            name: "a".into(),
            wave: 1,
            from: RunStatus::NotStarted,
            to: RunStatus::Failed,
            attempt: 1,
            cause: Some("failed in stage Deploy".into()),
            at: Some(at(200)),
        }]
    );
}

#[test]
fn waits_begin_change_and_end() {
    let mut a = release(&[&["a"], &["b"]]);
    wave(&mut a, 1, WaveStatus::Succeeded, 180);
    let mut b = a.clone();
    let gate = |reasons: &[&str]| WaitingFor::Gate {
        wave: 2,
        reasons: reasons.iter().map(|r| r.to_string()).collect(),
        since: at(180),
    };
    b.waiting_for = Some(gate(&["alarm x is in ALARM"]));
    wave(&mut b, 2, WaveStatus::WaitingGate, 180);
    let begins = changes(Some(&a), &b);
    assert_eq!(begins.len(), 2, "{begins:#?}");
    assert!(matches!(
        begins[0],
        ReleaseChange::Wave {
            wave: 2,
            to: WaveStatus::WaitingGate,
            at: None,
            ..
        }
    ));
    assert_eq!(
        begins[1],
        ReleaseChange::Waiting {
            waiting_for: gate(&["alarm x is in ALARM"]),
            at: Some(at(180))
        }
    );

    // The reasons change: the same wait, said again, at no recorded time.
    let mut c = b.clone();
    c.waiting_for = Some(gate(&["alarm x is in ALARM", "outside the window"]));
    assert_eq!(
        changes(Some(&b), &c),
        [ReleaseChange::Waiting {
            waiting_for: gate(&["alarm x is in ALARM", "outside the window"]),
            at: None
        }]
    );

    // It ends (the record says when), and the wave starts.
    let mut d = c.clone();
    d.waiting_for = None;
    d.waits.push(WaitRecord {
        kind: WaitKind::Gate,
        wave: Some(2),
        reasons: Vec::new(),
        by: None,
        since: at(180),
        until: Some(at(905)),
    });
    wave(&mut d, 2, WaveStatus::Running, 905);
    set(&mut d, "b", RunStatus::InProgress, 905);
    let ends = changes(Some(&c), &d);
    assert_eq!(
        ends[0],
        ReleaseChange::WaitEnded {
            kind: WaitKind::Gate,
            wave: Some(2),
            at: Some(at(905))
        }
    );
    assert!(matches!(
        ends[1],
        ReleaseChange::Wave {
            wave: 2,
            position: 2,
            of: 2,
            to: WaveStatus::Running,
            ..
        }
    ));
    assert_eq!(
        pipeline_change(&ends[2]),
        Some(("b", RunStatus::InProgress, Some(at(905))))
    );

    // One wait gives way to another: the first ends, then the next begins.
    let mut e = c.clone();
    e.waiting_for = Some(WaitingFor::Approval {
        wave: 2,
        since: at(950),
    });
    let next = changes(Some(&c), &e);
    assert!(matches!(
        next[0],
        ReleaseChange::WaitEnded {
            kind: WaitKind::Gate,
            ..
        }
    ));
    assert!(matches!(
        next[1],
        ReleaseChange::Waiting {
            waiting_for: WaitingFor::Approval { wave: 2, .. },
            ..
        }
    ));
}

#[test]
fn approvals_cancels_and_the_end_of_the_release() {
    let mut a = release(&[&["a"], &["b"]]);
    a.approvals.push(ApprovalRecord {
        wave: 2,
        attempt: 1,
        status: ApprovalStatus::Waiting,
        requested_at: at(180),
        by: None,
        at: None,
        reason: None,
    });
    let mut b = a.clone();
    b.approvals[0].status = ApprovalStatus::Rejected;
    b.approvals[0].by = Some("bob".into());
    b.approvals[0].reason = Some("not today".into());
    b.approvals[0].at = Some(at(300));
    b.status = ReleaseStatus::Failed;
    b.cause = Some("wave 2 rejected by bob: not today".into());
    b.ended_at = Some(at(301));
    let found = changes(Some(&a), &b);
    assert_eq!(found.len(), 2, "{found:#?}");
    assert!(matches!(
        &found[0],
        ReleaseChange::Approval { wave: 2, status: ApprovalStatus::Rejected, by: Some(by), at: Some(t), .. }
            if by == "bob" && *t == at(300)
    ));
    assert_eq!(
        found[1],
        ReleaseChange::Status {
            release_id: "2026.11.22".into(),
            from: ReleaseStatus::Running,
            to: ReleaseStatus::Failed,
            cause: Some("wave 2 rejected by bob: not today".into()),
            at: Some(at(301)),
        }
    );

    let mut c = a.clone();
    c.cancel_requested = Some(CancelRequest {
        by: "carol".into(),
        reason: "bad day".into(),
        at: at(400),
        attempt: 1,
    });
    assert_eq!(
        changes(Some(&a), &c),
        [ReleaseChange::CancelRequested {
            by: "carol".into(),
            reason: "bad day".into(),
            at: at(400)
        }]
    );
}

#[test]
fn a_retry_is_a_new_claim_and_its_pipelines_run_again() {
    let mut failed = release(&[&["a", "b"]]);
    set(&mut failed, "a", RunStatus::InProgress, 0);
    set(&mut failed, "a", RunStatus::Succeeded, 100);
    set(&mut failed, "b", RunStatus::InProgress, 0);
    set(&mut failed, "b", RunStatus::Failed, 50);
    failed.status = ReleaseStatus::Failed;
    failed.ended_at = Some(at(100));
    failed.cause = Some("b failed".into());

    let mut retried = failed.clone();
    retried.status = ReleaseStatus::Running;
    retried.ended_at = None;
    retried.cause = None;
    retried.attempt = 2;
    retried.attempts.push(AttemptRecord {
        attempt: 2,
        execution: "exec-2".into(),
        requested_at: at(3600),
        requested_by: Some("bob".into()),
        ended_at: None,
        status: ReleaseStatus::Running,
        cause: None,
    });
    // b runs again, in attempt 2, and fails the same way before the next poll.
    let b = retried
        .pipelines
        .iter_mut()
        .find(|p| p.name == "b")
        .unwrap();
    b.attempt = 2;
    set(&mut retried, "b", RunStatus::InProgress, 3600);
    set(&mut retried, "b", RunStatus::Failed, 3650);

    let found = changes(Some(&failed), &retried);
    assert!(
        matches!(&found[0], ReleaseChange::Claimed { attempt: 2, execution: Some(e), requested_by: Some(by), .. } if e == "exec-2" && by == "bob"),
        "{found:#?}"
    );
    assert!(found.iter().any(|c| matches!(
        c,
        ReleaseChange::Status {
            from: ReleaseStatus::Failed,
            to: ReleaseStatus::Running,
            ..
        }
    )));
    assert_eq!(
        found.iter().filter_map(pipeline_change).collect::<Vec<_>>(),
        [("b", RunStatus::Failed, Some(at(3650)))]
    );
}

#[test]
fn a_change_is_json_with_its_kind() {
    let c = ReleaseChange::Pipeline {
        name: "payments-db-migrate".into(),
        wave: 1,
        from: RunStatus::InProgress,
        to: RunStatus::Succeeded,
        attempt: 1,
        cause: None,
        at: Some(at(180)),
    };
    let v = serde_json::to_value(&c).unwrap();
    assert_eq!(
        v,
        json!({"change": "pipeline", "name": "payments-db-migrate", "wave": 1,
               "from": "InProgress", "to": "Succeeded", "attempt": 1, "cause": null,
               "at": "2026-11-22T09:03:00Z"})
    );
    assert_eq!(serde_json::from_value::<ReleaseChange>(v).unwrap(), c);
}

// Arbitrary snapshots of one release: statuses, waves, waits, approvals and a cancel drawn at
// random (not every combination is one the lifecycle allows: the diff must not care).

fn run_status() -> impl Strategy<Value = RunStatus> {
    prop::sample::select(RunStatus::ALL.to_vec())
}

fn wave_status() -> impl Strategy<Value = WaveStatus> {
    prop::sample::select(vec![
        WaveStatus::Pending,
        WaveStatus::WaitingApproval,
        WaveStatus::WaitingGate,
        WaveStatus::Running,
        WaveStatus::Baking,
        WaveStatus::Succeeded,
        WaveStatus::Failed,
        WaveStatus::Cancelled,
        WaveStatus::Skipped,
    ])
}

fn waiting_for() -> impl Strategy<Value = Option<WaitingFor>> {
    prop_oneof![
        Just(None),
        (1u32..4, 0i64..5000)
            .prop_map(|(wave, s)| Some(WaitingFor::Approval { wave, since: at(s) })),
        (
            1u32..4,
            prop::collection::vec("[a-z ]{1,12}", 0..3),
            0i64..5000
        )
            .prop_map(|(wave, reasons, s)| Some(WaitingFor::Gate {
                wave,
                reasons,
                since: at(s)
            })),
        (1u32..4, 0i64..5000).prop_map(|(wave, s)| Some(WaitingFor::Bake { wave, until: at(s) })),
        (prop::option::of(1u32..4), 0i64..5000).prop_map(|(wave, s)| Some(WaitingFor::Halt {
            wave,
            reason: "incident".into(),
            by: "alice".into(),
            since: at(s)
        })),
    ]
}

const NAMES: [&str; 12] = ["a", "b", "c", "d", "e", "f", "g", "h", "i", "j", "k", "l"];

prop_compose! {
    fn snapshot()(
        statuses in prop::collection::vec((run_status(), 1u32..3, prop::option::of(0i64..5000)), 12),
        waves in prop::collection::vec(wave_status(), 3),
        waiting in waiting_for(),
        release_status in prop::sample::select(ReleaseStatus::ALL.to_vec()),
        cause in prop::option::of("[a-z]{1,8}"),
        attempt in 1u32..3,
        approval in prop::option::of(prop::sample::select(vec![
            ApprovalStatus::Waiting, ApprovalStatus::Approved, ApprovalStatus::Rejected,
            ApprovalStatus::TimedOut, ApprovalStatus::Cancelled])),
        cancel in any::<bool>(),
        reorder in any::<bool>(),
    ) -> ReleaseView {
        let mut r = release(&[&NAMES[..4], &NAMES[4..8], &NAMES[8..]]);
        for (p, (status, attempt, when)) in r.pipelines.iter_mut().zip(statuses) {
            p.status = status;
            p.attempt = attempt;
            if let Some(s) = when {
                p.history.push(HistoryEntry { status, at: at(s), attempt, execution_id: None });
            }
        }
        for (w, status) in r.waves.iter_mut().zip(waves) {
            w.status = status;
        }
        r.waiting_for = waiting;
        r.status = release_status;
        r.cause = cause;
        r.attempt = attempt;
        if let Some(status) = approval {
            r.approvals.push(ApprovalRecord { wave: 2, attempt, status, requested_at: at(1),
                by: None, at: None, reason: None });
        }
        if cancel {
            r.cancel_requested = Some(CancelRequest { by: "carol".into(), reason: "r".into(),
                at: at(7), attempt });
        }
        if reorder {
            // Another source may list the pipelines in another order.
            r.pipelines.reverse();
        }
        r
    }
}

proptest! {
    #[test]
    fn nothing_changes_between_a_snapshot_and_itself(r in snapshot()) {
        prop_assert_eq!(changes(Some(&r), &r), vec![]);
    }

    #[test]
    fn a_release_seen_first_is_described(r in snapshot()) {
        let found = changes(None, &r);
        let claimed = matches!(&found[0], ReleaseChange::Claimed { attempt, pipelines: 12, .. } if *attempt == r.attempt);
        prop_assert!(claimed, "{:#?}", found);
        let mut described: Vec<&str> = found.iter().filter_map(pipeline_change).map(|(n, ..)| n).collect();
        described.sort_unstable();
        let mut started: Vec<&str> = r.pipelines.iter()
            .filter(|p| p.status != RunStatus::NotStarted).map(|p| p.name.as_str()).collect();
        started.sort_unstable();
        prop_assert_eq!(described, started);
        let waves = found.iter().filter(|c| matches!(c, ReleaseChange::Wave { .. })).count();
        prop_assert_eq!(waves, r.waves.iter().filter(|w| w.status != WaveStatus::Pending).count());
        let waiting = found.iter().any(|c| matches!(c, ReleaseChange::Waiting { waiting_for, .. } if Some(waiting_for) == r.waiting_for.as_ref()));
        prop_assert_eq!(waiting, r.waiting_for.is_some());
        let ended = found.iter().any(|c| matches!(c, ReleaseChange::Status { to, .. } if *to == r.status));
        prop_assert_eq!(ended, r.status != ReleaseStatus::Running || r.cause.is_some());
        prop_assert_eq!(found.iter().any(|c| matches!(c, ReleaseChange::CancelRequested { .. })), r.cancel_requested.is_some());
    }

    #[test]
    fn every_pipeline_whose_status_differs_appears_once(a in snapshot(), b in snapshot()) {
        let found = changes(Some(&a), &b);
        let mut seen: HashMap<&str, (RunStatus, usize)> = HashMap::new();
        for (name, to, _) in found.iter().filter_map(pipeline_change) {
            seen.entry(name).or_insert((to, 0)).1 += 1;
        }
        for p in &b.pipelines {
            let before = a.pipelines.iter().find(|q| q.name == p.name).unwrap();
            let differs = before.status != p.status || before.attempt != p.attempt;
            match seen.get(p.name.as_str()) {
                Some((to, n)) => {
                    prop_assert!(differs, "{} did not change: {:#?}", p.name, found);
                    prop_assert_eq!(*n, 1);
                    prop_assert_eq!(*to, p.status);
                }
                None => prop_assert!(!differs, "{} changed but is not in {:#?}", p.name, found),
            }
        }
        // In time order, where times are known.
        let times: Vec<OffsetDateTime> = found.iter().filter_map(ReleaseChange::at).collect();
        prop_assert!(times.windows(2).all(|w| w[0] <= w[1]), "{:#?}", found);
    }
}

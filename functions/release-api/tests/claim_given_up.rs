//! Issue 9, fault 4: a POST whose claim fails after the release item was written (the run
//! items' batch write throttled, a timeout after the conditional write landed) gives the claim
//! up, so the same manifest can be POSTed again: 202, not 409 for ever.

use async_trait::async_trait;
use lambda_http::http::StatusCode;
use lambda_http::Request;
use release_api::{handle, Ports};
use rm_core::error::PortError;
use rm_core::events::ReleaseEvent;
use rm_core::memory::{
    FakeExecutions, FakePipelines, ManualClock, MemoryStore, RecordingTokens, NO_BUS,
};
use rm_core::ports::{Claim, ListQuery, NewRelease, PortResult, ReleasePage, ReleaseStore, RunKey};
use rm_core::release::{ReleaseRecord, RunRecord, StoredRelease};
use rm_core::{ReleaseId, ReleaseStatus};
use rm_testkit::event;
use serde_json::{json, Value};
use std::sync::atomic::{AtomicU32, Ordering};
use time::OffsetDateTime;

/// A [`MemoryStore`] whose next claims write the release (and its runs), then fail: what a
/// DynamoDB claim looks like when its run items' batch write is throttled after the release
/// item's conditional write succeeded.
#[derive(Default)]
struct FailingClaims {
    inner: MemoryStore,
    fail_claims: AtomicU32,
    /// The next `release_claim` calls fail too (giving up is itself throttled).
    fail_releases: AtomicU32,
}

fn take(counter: &AtomicU32) -> bool {
    counter
        .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1))
        .is_ok()
}

#[async_trait]
impl ReleaseStore for FailingClaims {
    async fn claim(&self, release: &NewRelease) -> PortResult<Claim> {
        let claim = self.inner.claim(release).await?;
        if take(&self.fail_claims) {
            return Err(PortError::Throttled(
                "BatchWriteItem (runs): ProvisionedThroughputExceededException".into(),
            ));
        }
        Ok(claim)
    }
    async fn release_claim(&self, release_id: &ReleaseId, owner: &str) -> PortResult<()> {
        if take(&self.fail_releases) {
            return Err(PortError::Throttled("DeleteItem (release)".into()));
        }
        self.inner.release_claim(release_id, owner).await
    }
    async fn get(&self, release_id: &ReleaseId) -> PortResult<Option<StoredRelease>> {
        self.inner.get(release_id).await
    }
    async fn release_record(&self, release_id: &ReleaseId) -> PortResult<Option<ReleaseRecord>> {
        self.inner.release_record(release_id).await
    }
    async fn get_run(
        &self,
        release_id: &ReleaseId,
        pipeline: &str,
    ) -> PortResult<Option<RunRecord>> {
        self.inner.get_run(release_id, pipeline).await
    }
    async fn record_start(
        &self,
        release_id: &ReleaseId,
        owner: &str,
        pipeline: &str,
        execution_id: &str,
        at: OffsetDateTime,
        events: &[ReleaseEvent],
    ) -> PortResult<RunRecord> {
        self.inner
            .record_start(release_id, owner, pipeline, execution_id, at, events)
            .await
    }
    async fn record_status(
        &self,
        key: &RunKey,
        status: rm_core::RunStatus,
        at: OffsetDateTime,
        events: &[ReleaseEvent],
    ) -> PortResult<Option<RunRecord>> {
        self.inner.record_status(key, status, at, events).await
    }
    async fn record_skipped(
        &self,
        key: &RunKey,
        execution_id: &str,
        at: OffsetDateTime,
        events: &[ReleaseEvent],
    ) -> PortResult<Option<RunRecord>> {
        self.inner
            .record_skipped(key, execution_id, at, events)
            .await
    }
    async fn find_by_execution(&self, execution_id: &str) -> PortResult<Option<RunKey>> {
        self.inner.find_by_execution(execution_id).await
    }
    async fn set_token(
        &self,
        key: &RunKey,
        token: &str,
        at: OffsetDateTime,
    ) -> PortResult<RunRecord> {
        self.inner.set_token(key, token, at).await
    }
    async fn clear_token(&self, key: &RunKey, token: &str) -> PortResult<bool> {
        self.inner.clear_token(key, token).await
    }
    async fn mark_stop_abandoned(&self, key: &RunKey) -> PortResult<Option<RunRecord>> {
        self.inner.mark_stop_abandoned(key).await
    }
    async fn set_run_cause(&self, key: &RunKey, cause: &str) -> PortResult<()> {
        self.inner.set_run_cause(key, cause).await
    }
    async fn waiting_runs(&self) -> PortResult<Vec<RunRecord>> {
        self.inner.waiting_runs().await
    }
    async fn touch_waiting(&self, key: &RunKey, token: &str, at: OffsetDateTime) -> PortResult<()> {
        self.inner.touch_waiting(key, token, at).await
    }
    async fn running_releases(&self) -> PortResult<Vec<ReleaseRecord>> {
        self.inner.running_releases().await
    }
    async fn halt(&self) -> PortResult<Option<rm_core::gate::Halt>> {
        self.inner.halt().await
    }
    async fn set_halt(
        &self,
        halt: Option<&rm_core::gate::Halt>,
    ) -> PortResult<Option<rm_core::gate::Halt>> {
        self.inner.set_halt(halt).await
    }
    async fn next_sequence(&self, release_id: &ReleaseId, count: u64) -> PortResult<u64> {
        self.inner.next_sequence(release_id, count).await
    }
    async fn update_release(
        &self,
        record: &ReleaseRecord,
        events: &[ReleaseEvent],
    ) -> PortResult<()> {
        self.inner.update_release(record, events).await
    }
    async fn reset_run(&self, key: &RunKey, attempt: u32) -> PortResult<Option<RunRecord>> {
        self.inner.reset_run(key, attempt).await
    }
    async fn outbox(
        &self,
        release_id: Option<&ReleaseId>,
        limit: usize,
    ) -> PortResult<Vec<ReleaseEvent>> {
        self.inner.outbox(release_id, limit).await
    }
    async fn remove_from_outbox(&self, events: &[ReleaseEvent]) -> PortResult<()> {
        self.inner.remove_from_outbox(events).await
    }
    async fn list_releases(&self, query: &ListQuery) -> PortResult<ReleasePage> {
        self.inner.list_releases(query).await
    }
}

struct World {
    store: FailingClaims,
    pipelines: FakePipelines,
    executions: FakeExecutions,
    tokens: RecordingTokens,
    clock: ManualClock,
}

impl World {
    fn new() -> Self {
        World {
            store: FailingClaims::default(),
            pipelines: FakePipelines::with(&[
                "payments-db-migrate",
                "payments-api",
                "checkout-web",
                "ledger-worker",
            ]),
            executions: FakeExecutions::default(),
            tokens: RecordingTokens::default(),
            clock: ManualClock::fixed(),
        }
    }

    async fn call(&self, request: Request) -> (StatusCode, Value) {
        let ports = Ports {
            sensors: rm_core::ports::Sensors {
                alarms: &rm_core::memory::FakeAlarms::default(),
                health: &rm_core::memory::FakeHealth::default(),
            },
            store: &self.store,
            pipelines: &self.pipelines,
            executions: &self.executions,
            tokens: &self.tokens,
            bus: &NO_BUS,
            clock: &self.clock,
        };
        let response = handle(request, &ports).await;
        let body: Value = serde_json::from_slice(response.body().as_ref()).expect("JSON body");
        (response.status(), body)
    }

    async fn stored(&self) -> Option<StoredRelease> {
        self.store
            .get(&ReleaseId::parse("2026.03.1").unwrap())
            .await
            .unwrap()
    }
}

/// The sample POST (release 2026.03.1, four pipelines) as a new API call, by `caller`.
fn post(request_id: &str, caller: &str) -> Request {
    let mut e = event("apigw-post-release.json");
    e["requestContext"]["requestId"] = json!(request_id);
    e["requestContext"]["identity"]["userArn"] = json!(caller);
    lambda_http::request::from_str(&e.to_string()).expect("an API Gateway proxy event")
}

const MANAGER: &str = "arn:aws:iam::111122223333:user/release-manager";
const OTHER: &str = "arn:aws:iam::111122223333:role/ci-deployer";

#[tokio::test]
async fn a_claim_that_fails_after_writing_the_release_is_given_up_and_the_post_can_be_sent_again() {
    let world = World::new();
    world.store.fail_claims.store(1, Ordering::SeqCst);
    let (status, body) = world.call(post("first-call", MANAGER)).await;
    assert_eq!(status, StatusCode::INTERNAL_SERVER_ERROR, "{body}");
    assert!(
        body["message"]
            .as_str()
            .unwrap()
            .contains("ProvisionedThroughputExceededException"),
        "{body}"
    );
    assert!(world.executions.started().is_empty(), "nothing started");

    // The same manifest again, by another caller (a CI job retrying with its own role): a new
    // claim and a new execution, not a 409.
    let (status, body) = world.call(post("second-call", OTHER)).await;
    assert_eq!(status, StatusCode::ACCEPTED, "{body}");
    let started = world.executions.started();
    assert_eq!(started.len(), 1);
    assert_eq!(started[0].0, "api-second-call");
    let stored = world.stored().await.expect("claimed by the second call");
    assert_eq!(stored.release.owner, "api-second-call");
    assert_eq!(stored.release.status, ReleaseStatus::Running);
    assert_eq!(stored.runs.len(), 4, "every run item written");
}

#[tokio::test]
async fn a_repost_by_the_same_caller_after_a_failed_claim_starts_its_own_execution() {
    // Before the fix the failed request's claim stayed: the same caller's re-POST was taken
    // for a repeat and started the failed request's execution, over a claim whose run items
    // may be half written.
    let world = World::new();
    world.store.fail_claims.store(1, Ordering::SeqCst);
    let (status, body) = world.call(post("first-call", MANAGER)).await;
    assert_eq!(status, StatusCode::INTERNAL_SERVER_ERROR, "{body}");
    assert!(
        world.stored().await.is_none(),
        "the claim was given up: no release RUNNING without an execution"
    );

    let (status, body) = world.call(post("second-call", MANAGER)).await;
    assert_eq!(status, StatusCode::ACCEPTED, "{body}");
    assert!(
        body["executionArn"]
            .as_str()
            .unwrap()
            .ends_with("api-second-call"),
        "{body}"
    );
    assert_eq!(
        world.stored().await.unwrap().release.owner,
        "api-second-call"
    );
}

#[tokio::test]
async fn when_giving_up_fails_too_the_request_still_answers_the_claims_error() {
    // The release stays RUNNING without an execution; the reconciler's sweep ends it.
    let world = World::new();
    world.store.fail_claims.store(1, Ordering::SeqCst);
    world.store.fail_releases.store(1, Ordering::SeqCst);
    let (status, body) = world.call(post("first-call", MANAGER)).await;
    assert_eq!(status, StatusCode::INTERNAL_SERVER_ERROR, "{body}");
    assert!(
        body["message"]
            .as_str()
            .unwrap()
            .contains("ProvisionedThroughputExceededException"),
        "the claim's error, not the give-up's: {body}"
    );
    assert_eq!(
        world.stored().await.unwrap().release.owner,
        "api-first-call"
    );
}

#[tokio::test]
async fn a_failed_claim_of_an_id_another_request_holds_leaves_that_claim_alone() {
    // The failing request never held the id (its conditional write lost to the first
    // request's): giving up its claim touches nothing of the first request's.
    let world = World::new();
    let (status, _) = world.call(post("first-call", MANAGER)).await;
    assert_eq!(status, StatusCode::ACCEPTED);
    world.store.fail_claims.store(1, Ordering::SeqCst);
    let (status, body) = world.call(post("other-call", OTHER)).await;
    assert_eq!(status, StatusCode::INTERNAL_SERVER_ERROR, "{body}");
    let stored = world.stored().await.expect("the first claim stays");
    assert_eq!(stored.release.owner, "api-first-call");
    assert_eq!(stored.runs.len(), 4);
}

//! [`DynamoStore`]: the [`ReleaseStore`] on one DynamoDB table (layout in [`schema`] and
//! `TABLE.md`).

mod items;
pub mod schema;

use crate::error::{has_code, port_error};
use async_trait::async_trait;
use aws_sdk_dynamodb::types::{AttributeValue, PutRequest, ReturnValue, WriteRequest};
use aws_sdk_dynamodb::Client;
use futures::future::try_join_all;
use futures::stream::{self, StreamExt, TryStreamExt};
use items::*;
use rm_core::error::PortError;
use rm_core::ports::{Claim, NewRelease, PortResult, ReleaseStore, RunKey};
use rm_core::release::{
    ReleaseId, ReleaseRecord, ReleaseStatus, RunRecord, RunStatus, StoredRelease,
};
use schema::*;
use std::collections::HashMap;
use std::time::Duration;
use time::format_description::well_known::Rfc3339;
use time::OffsetDateTime;

const CONDITIONAL_CHECK_FAILED: &str = "ConditionalCheckFailedException";
/// BatchWriteItem's limit.
const BATCH_SIZE: usize = 25;
/// How many single-item writes run at once.
const WRITE_CONCURRENCY: usize = 16;
/// How often unprocessed batch items are retried before giving up as throttled.
const MAX_BATCH_ATTEMPTS: u32 = 8;
/// The backoff before the first retry of unprocessed batch items, and its ceiling.
const BATCH_BACKOFF_BASE: Duration = Duration::from_millis(25);
const BATCH_BACKOFF_CAP: Duration = Duration::from_millis(1600);

/// The wait before retry `attempt` (1, 2, ...) of a batch's unprocessed items: exponential
/// backoff with full jitter, uniform in `[0, min(cap, base * 2^attempt)]`, so the writers that
/// were throttled together do not come back together.
///
/// DynamoDB's BatchWriteItem reference: "If DynamoDB returns any unprocessed items, you should
/// retry the batch operation on those items. However, we strongly recommend that you use an
/// exponential backoff algorithm." <https://docs.aws.amazon.com/amazondynamodb/latest/APIReference/API_BatchWriteItem.html>
/// Full jitter as in AWS's "Exponential Backoff And Jitter" (Architecture Blog); the attempts
/// are bounded by [`MAX_BATCH_ATTEMPTS`].
fn batch_backoff(attempt: u32) -> Duration {
    let ceiling = BATCH_BACKOFF_BASE
        .saturating_mul(1 << attempt.min(16))
        .min(BATCH_BACKOFF_CAP);
    let ceiling_ms = u64::try_from(ceiling.as_millis()).unwrap_or(u64::MAX);
    Duration::from_millis(rand::random_range(0..=ceiling_ms))
}

/// Releases and pipeline runs in one DynamoDB table.
#[derive(Debug, Clone)]
pub struct DynamoStore {
    client: Client,
    table: String,
}

fn is_condition_failed<E, R>(err: &aws_sdk_dynamodb::error::SdkError<E, R>) -> bool
where
    E: aws_sdk_dynamodb::error::ProvideErrorMetadata,
{
    has_code(err, CONDITIONAL_CHECK_FAILED)
}

fn run_key_item(key: &RunKey) -> HashMap<String, AttributeValue> {
    HashMap::from([
        (PK.to_owned(), s(release_pk(key.release_id.as_str()))),
        (SK.to_owned(), s(run_sk(&key.pipeline))),
    ])
}

fn release_key_item(release_id: &ReleaseId) -> HashMap<String, AttributeValue> {
    HashMap::from([
        (PK.to_owned(), s(release_pk(release_id.as_str()))),
        (SK.to_owned(), s(RELEASE_SK)),
    ])
}

impl DynamoStore {
    /// A store on `table` (the template's `TABLE_NAME`).
    pub fn new(client: Client, table: impl Into<String>) -> Self {
        Self {
            client,
            table: table.into(),
        }
    }

    pub fn table(&self) -> &str {
        &self.table
    }

    /// A strongly consistent GetItem.
    async fn get_item(&self, key: HashMap<String, AttributeValue>) -> PortResult<Option<Item>> {
        let out = self
            .client
            .get_item()
            .table_name(&self.table)
            .set_key(Some(key))
            .consistent_read(true)
            .send()
            .await
            .map_err(|e| port_error("DynamoDB GetItem", &e))?;
        Ok(out.item)
    }

    async fn get_run_item(&self, key: &RunKey) -> PortResult<Option<Item>> {
        self.get_item(run_key_item(key)).await
    }

    /// Writes new run items with BatchWriteItem, 25 at a time, retrying unprocessed items with
    /// exponential backoff and full jitter ([`batch_backoff`]), at most [`MAX_BATCH_ATTEMPTS`]
    /// calls per batch.
    async fn write_runs_batched(&self, runs: Vec<Item>) -> PortResult<()> {
        let mut runs = runs;
        while !runs.is_empty() {
            let rest = runs.split_off(runs.len().min(BATCH_SIZE));
            let mut requests: Vec<WriteRequest> = runs
                .into_iter()
                .map(|item| {
                    PutRequest::builder()
                        .set_item(Some(item))
                        .build()
                        .map(|put| WriteRequest::builder().put_request(put).build())
                        .map_err(|e| PortError::Other(e.to_string()))
                })
                .collect::<Result<_, _>>()?;
            let mut attempt = 0;
            while !requests.is_empty() {
                if attempt > 0 {
                    if attempt >= MAX_BATCH_ATTEMPTS {
                        return Err(PortError::Throttled(format!(
                            "DynamoDB BatchWriteItem left {} run items unprocessed after {attempt} attempts",
                            requests.len()
                        )));
                    }
                    tokio::time::sleep(batch_backoff(attempt)).await;
                }
                attempt += 1;
                let out = self
                    .client
                    .batch_write_item()
                    .request_items(&self.table, requests)
                    .send()
                    .await
                    .map_err(|e| port_error("DynamoDB BatchWriteItem", &e))?;
                requests = out
                    .unprocessed_items
                    .and_then(|mut u| u.remove(&self.table))
                    .unwrap_or_default();
            }
            runs = rest;
        }
        Ok(())
    }

    /// Writes the run items that do not exist yet (a retried claim), leaving existing ones as
    /// they are.
    async fn write_missing_runs(&self, runs: Vec<Item>) -> PortResult<()> {
        stream::iter(runs)
            .map(|item| async move {
                match self
                    .client
                    .put_item()
                    .table_name(&self.table)
                    .set_item(Some(item))
                    .condition_expression("attribute_not_exists(#pk)")
                    .expression_attribute_names("#pk", PK)
                    .send()
                    .await
                {
                    Ok(_) => Ok(()),
                    Err(e) if is_condition_failed(&e) => Ok(()),
                    Err(e) => Err(port_error("DynamoDB PutItem (run)", &e)),
                }
            })
            .buffer_unordered(WRITE_CONCURRENCY)
            .try_collect()
            .await
    }

    /// Every item under a release's partition key: one Query, following its pages.
    /// SETs one attribute of a run that exists; the run after the write, `None` if unknown.
    async fn set_run_attribute(
        &self,
        key: &RunKey,
        name: &str,
        value: AttributeValue,
        what: &str,
    ) -> PortResult<Option<RunRecord>> {
        let result = self
            .client
            .update_item()
            .table_name(&self.table)
            .set_key(Some(run_key_item(key)))
            .update_expression("SET #attr = :value")
            .condition_expression("attribute_exists(#pk)")
            .expression_attribute_names("#attr", name)
            .expression_attribute_names("#pk", PK)
            .expression_attribute_values(":value", value)
            .return_values(ReturnValue::AllNew)
            .send()
            .await;
        match result {
            Ok(out) => out.attributes.map(|i| decode_run(&i)).transpose(),
            Err(e) if is_condition_failed(&e) => Ok(None),
            Err(e) => Err(port_error(&format!("DynamoDB UpdateItem ({what})"), &e)),
        }
    }

    async fn query_release(&self, release_id: &ReleaseId) -> PortResult<Vec<Item>> {
        let mut items = Vec::new();
        let mut start: Option<HashMap<String, AttributeValue>> = None;
        loop {
            let out = self
                .client
                .query()
                .table_name(&self.table)
                .key_condition_expression("#pk = :pk")
                .expression_attribute_names("#pk", PK)
                .expression_attribute_values(":pk", s(release_pk(release_id.as_str())))
                .consistent_read(true)
                .set_exclusive_start_key(start)
                .send()
                .await
                .map_err(|e| port_error("DynamoDB Query", &e))?;
            items.extend(out.items.unwrap_or_default());
            match out.last_evaluated_key {
                Some(k) if !k.is_empty() => start = Some(k),
                _ => return Ok(items),
            }
        }
    }

    /// Sets the execution id of a run whose InProgress status an event recorded before
    /// `record_start` did.
    async fn attach_execution(
        &self,
        key: &RunKey,
        owner: &str,
        execution_id: &str,
        at: OffsetDateTime,
    ) -> PortResult<Option<RunRecord>> {
        let result = self
            .client
            .update_item()
            .table_name(&self.table)
            .set_key(Some(run_key_item(key)))
            .update_expression("SET #eid = :eid, #started = if_not_exists(#started, :at)")
            .condition_expression("#owner = :owner AND attribute_not_exists(#eid)")
            .expression_attribute_names("#eid", EXECUTION_ID)
            .expression_attribute_names("#started", STARTED_AT)
            .expression_attribute_names("#owner", OWNER)
            .expression_attribute_values(":eid", s(execution_id))
            .expression_attribute_values(":at", ts(at))
            .expression_attribute_values(":owner", s(owner))
            .return_values(ReturnValue::AllNew)
            .send()
            .await;
        match result {
            Ok(out) => Ok(Some(decode_run(&out.attributes.unwrap_or_default())?)),
            Err(e) if is_condition_failed(&e) => Ok(None),
            Err(e) => Err(port_error("DynamoDB UpdateItem (run execution id)", &e)),
        }
    }
}

#[async_trait]
impl ReleaseStore for DynamoStore {
    /// The release item is put on condition `attribute_not_exists(pk)`: exactly one execution
    /// creates it. When the condition fails, a consistent read tells a retry by the same
    /// owner (which then writes any run items an earlier attempt did not, and never
    /// overwrites the release or a run that has moved on) from a duplicate.
    async fn claim(&self, release: &NewRelease) -> PortResult<Claim> {
        let record = &release.record;
        let owner = record.owner.as_str();
        let runs: Vec<Item> = release
            .manifest
            .pipelines
            .iter()
            .enumerate()
            .map(|(i, spec)| run_item(&record.release_id, owner, spec, i))
            .collect();
        let put = self
            .client
            .put_item()
            .table_name(&self.table)
            .set_item(Some(release_item(record, runs.len())))
            // A retry by the owner rewrites the release item only while nothing has moved
            // on (still RUNNING, no stop requested); otherwise the condition fails, the read
            // below finds the owner and the claim passes without touching the release.
            .condition_expression(
                "attribute_not_exists(#pk) OR \
                 (#owner = :owner AND #status = :running AND #stop = :false)",
            )
            .expression_attribute_names("#pk", PK)
            .expression_attribute_names("#owner", OWNER)
            .expression_attribute_names("#status", STATUS)
            .expression_attribute_names("#stop", STOP_REQUESTED)
            .expression_attribute_values(":owner", s(owner))
            .expression_attribute_values(":running", s(ReleaseStatus::Running.as_str()))
            .expression_attribute_values(":false", AttributeValue::Bool(false))
            .return_values(ReturnValue::AllOld)
            .send()
            .await;
        match put {
            Ok(out) => {
                if out.attributes.is_some_and(|old| !old.is_empty()) {
                    // A retry by the owner: keep the runs an earlier attempt wrote.
                    self.write_missing_runs(runs).await?;
                } else {
                    self.write_runs_batched(runs).await?;
                }
                Ok(Claim::Claimed)
            }
            Err(e) if is_condition_failed(&e) => {
                let current = self.get_item(release_key_item(&record.release_id)).await?;
                let holder = current
                    .as_ref()
                    .and_then(|item| get_s(item, OWNER))
                    .map(str::to_owned);
                match holder {
                    Some(holder) if holder == owner => {
                        self.write_missing_runs(runs).await?;
                        Ok(Claim::Claimed)
                    }
                    Some(holder) => Ok(Claim::Duplicate { owner: holder }),
                    // Given up between the write and the read: the caller may claim again.
                    None => Err(PortError::Transient(format!(
                        "release {} was released while being claimed; try again",
                        record.release_id
                    ))),
                }
            }
            Err(e) => Err(port_error("DynamoDB PutItem (claim)", &e)),
        }
    }

    async fn release_claim(&self, release_id: &ReleaseId, owner: &str) -> PortResult<()> {
        let Some(stored) = self.get(release_id).await? else {
            return Ok(());
        };
        if stored.release.owner != owner {
            return Err(PortError::ConditionFailed(format!(
                "release {release_id} is held by {}, not {owner}",
                stored.release.owner
            )));
        }
        if let Some(started) = stored
            .runs
            .iter()
            .find(|r| r.status != RunStatus::NotStarted || r.execution_id.is_some())
        {
            return Err(PortError::ConditionFailed(format!(
                "release {release_id} keeps its claim: pipeline {} was already started",
                started.spec.name
            )));
        }
        let keys: Vec<RunKey> = stored
            .runs
            .into_iter()
            .map(|run| RunKey {
                release_id: release_id.clone(),
                pipeline: run.spec.name,
            })
            .collect();
        stream::iter(keys)
            .map(|key| async move {
                self.client
                    .delete_item()
                    .table_name(&self.table)
                    .set_key(Some(run_key_item(&key)))
                    .condition_expression(
                        "attribute_not_exists(#pk) OR (#owner = :owner AND #rank = :zero)",
                    )
                    .expression_attribute_names("#pk", PK)
                    .expression_attribute_names("#owner", OWNER)
                    .expression_attribute_names("#rank", RANK)
                    .expression_attribute_values(":owner", s(owner))
                    .expression_attribute_values(":zero", n(0))
                    .send()
                    .await
                    .map(|_| ())
                    .map_err(|e| port_error("DynamoDB DeleteItem (run)", &e))
            })
            .buffer_unordered(WRITE_CONCURRENCY)
            .try_collect::<()>()
            .await?;
        self.client
            .delete_item()
            .table_name(&self.table)
            .set_key(Some(release_key_item(release_id)))
            .condition_expression("attribute_not_exists(#pk) OR #owner = :owner")
            .expression_attribute_names("#pk", PK)
            .expression_attribute_names("#owner", OWNER)
            .expression_attribute_values(":owner", s(owner))
            .send()
            .await
            .map_err(|e| port_error("DynamoDB DeleteItem (release)", &e))?;
        Ok(())
    }

    async fn release_record(&self, release_id: &ReleaseId) -> PortResult<Option<ReleaseRecord>> {
        self.get_item(release_key_item(release_id))
            .await?
            .as_ref()
            .map(decode_release)
            .transpose()
    }

    async fn get(&self, release_id: &ReleaseId) -> PortResult<Option<StoredRelease>> {
        let items = self.query_release(release_id).await?;
        let Some(release_item) = items.iter().find(|i| is_release_item(i)) else {
            return Ok(None);
        };
        let release = decode_release(release_item)?;
        let mut runs: Vec<(u64, RunRecord)> = items
            .iter()
            .filter(|i| get_s(i, SK).is_some_and(|sk| sk.starts_with("RUN#")))
            .map(|i| Ok((run_position(i), decode_run(i)?)))
            .collect::<PortResult<_>>()?;
        runs.sort_by_key(|(position, _)| *position);
        Ok(Some(StoredRelease {
            release,
            runs: runs.into_iter().map(|(_, r)| r).collect(),
        }))
    }

    async fn get_run(
        &self,
        release_id: &ReleaseId,
        pipeline: &str,
    ) -> PortResult<Option<RunRecord>> {
        let key = RunKey {
            release_id: release_id.clone(),
            pipeline: pipeline.to_owned(),
        };
        self.get_run_item(&key)
            .await?
            .map(|i| decode_run(&i))
            .transpose()
    }

    async fn record_start(
        &self,
        release_id: &ReleaseId,
        owner: &str,
        pipeline: &str,
        execution_id: &str,
        at: OffsetDateTime,
    ) -> PortResult<RunRecord> {
        // The execution-id item first: the pipeline's first state-change event may arrive
        // before this call returns, and it finds its run through this item.
        let index = self
            .client
            .put_item()
            .table_name(&self.table)
            .item(PK, s(exec_pk(execution_id)))
            .item(SK, s(EXEC_SK))
            .item(KIND, s("execution"))
            .item(RELEASE_ID, s(release_id.as_str()))
            .item(PIPELINE, s(pipeline))
            .condition_expression("attribute_not_exists(#pk) OR (#rid = :rid AND #p = :p)")
            .expression_attribute_names("#pk", PK)
            .expression_attribute_names("#rid", RELEASE_ID)
            .expression_attribute_names("#p", PIPELINE)
            .expression_attribute_values(":rid", s(release_id.as_str()))
            .expression_attribute_values(":p", s(pipeline))
            .send()
            .await;
        match index {
            Ok(_) => {}
            Err(e) if is_condition_failed(&e) => {
                return Err(PortError::ConditionFailed(format!(
                    "CodePipeline execution {execution_id} is already recorded for another run"
                )))
            }
            Err(e) => return Err(port_error("DynamoDB PutItem (execution id)", &e)),
        }
        let key = RunKey {
            release_id: release_id.clone(),
            pipeline: pipeline.to_owned(),
        };
        let started = RunStatus::InProgress;
        let update = self
            .client
            .update_item()
            .table_name(&self.table)
            .set_key(Some(run_key_item(&key)))
            .update_expression(
                "SET #status = :status, #rank = :rank, #eid = :eid, #started = :at, \
                 #history = list_append(#history, :entry)",
            )
            .condition_expression(
                "attribute_exists(#pk) AND #owner = :owner AND #rank < :rank \
                 AND attribute_not_exists(#eid)",
            )
            .expression_attribute_names("#pk", PK)
            .expression_attribute_names("#status", STATUS)
            .expression_attribute_names("#rank", RANK)
            .expression_attribute_names("#eid", EXECUTION_ID)
            .expression_attribute_names("#started", STARTED_AT)
            .expression_attribute_names("#history", HISTORY)
            .expression_attribute_names("#owner", OWNER)
            .expression_attribute_values(":status", s(started.as_str()))
            .expression_attribute_values(":rank", n(started.rank()))
            .expression_attribute_values(":eid", s(execution_id))
            .expression_attribute_values(":at", ts(at))
            .expression_attribute_values(":entry", history_entry(started, at))
            .expression_attribute_values(":owner", s(owner))
            .return_values(ReturnValue::AllNew)
            .send()
            .await;
        match update {
            Ok(out) => return decode_run(&out.attributes.unwrap_or_default()),
            Err(e) if is_condition_failed(&e) => {}
            Err(e) => return Err(port_error("DynamoDB UpdateItem (run start)", &e)),
        }
        // The condition failed: a retry of this call, an event that got here first, or not
        // ours.
        let Some(item) = self.get_run_item(&key).await? else {
            return Err(PortError::NotFound(format!(
                "release {release_id} has no pipeline {pipeline:?}"
            )));
        };
        if get_s(&item, OWNER) != Some(owner) {
            return Err(PortError::ConditionFailed(format!(
                "release {release_id} is held by {}, not {owner}",
                get_s(&item, OWNER).unwrap_or("nobody")
            )));
        }
        match get_s(&item, EXECUTION_ID) {
            Some(eid) if eid == execution_id => decode_run(&item),
            Some(other) => Err(PortError::ConditionFailed(format!(
                "pipeline {pipeline} of release {release_id} was already started as execution {other}"
            ))),
            None => match self.attach_execution(&key, owner, execution_id, at).await? {
                Some(run) => Ok(run),
                None => Err(PortError::ConditionFailed(format!(
                    "pipeline {pipeline} of release {release_id} changed while its start was recorded"
                ))),
            },
        }
    }

    /// One conditional UpdateItem: applied only when the new status ranks above the stored
    /// one, so stale and duplicate events change nothing and return the run as it is.
    async fn record_status(
        &self,
        key: &RunKey,
        status: RunStatus,
        at: OffsetDateTime,
    ) -> PortResult<Option<RunRecord>> {
        if status.rank() == 0 {
            // Nothing ranks below NotStarted: never applied.
            return self
                .get_run_item(key)
                .await?
                .map(|i| decode_run(&i))
                .transpose();
        }
        let mut set = vec![
            "#status = :status",
            "#rank = :rank",
            "#history = list_append(#history, :entry)",
        ];
        let mut request = self
            .client
            .update_item()
            .table_name(&self.table)
            .set_key(Some(run_key_item(key)))
            .condition_expression("attribute_exists(#pk) AND #rank < :rank")
            .expression_attribute_names("#pk", PK)
            .expression_attribute_names("#status", STATUS)
            .expression_attribute_names("#rank", RANK)
            .expression_attribute_names("#history", HISTORY)
            .expression_attribute_values(":status", s(status.as_str()))
            .expression_attribute_values(":rank", n(status.rank()))
            .expression_attribute_values(":entry", history_entry(status, at))
            .expression_attribute_values(":at", ts(at))
            .return_values(ReturnValue::AllNew);
        if status.is_terminal() {
            set.push("#ended = :at");
            request = request.expression_attribute_names("#ended", ENDED_AT);
        }
        if status.is_running() {
            set.push("#started = if_not_exists(#started, :at)");
            request = request.expression_attribute_names("#started", STARTED_AT);
        }
        let result = request
            .update_expression(format!("SET {}", set.join(", ")))
            .send()
            .await;
        match result {
            Ok(out) => Ok(Some(decode_run(&out.attributes.unwrap_or_default())?)),
            Err(e) if is_condition_failed(&e) => self
                .get_run_item(key)
                .await?
                .map(|i| decode_run(&i))
                .transpose(),
            Err(e) => Err(port_error("DynamoDB UpdateItem (run status)", &e)),
        }
    }

    async fn find_by_execution(&self, execution_id: &str) -> PortResult<Option<RunKey>> {
        let key = HashMap::from([
            (PK.to_owned(), s(exec_pk(execution_id))),
            (SK.to_owned(), s(EXEC_SK)),
        ]);
        let Some(item) = self.get_item(key).await? else {
            return Ok(None);
        };
        let (Some(rid), Some(pipeline)) = (get_s(&item, RELEASE_ID), get_s(&item, PIPELINE)) else {
            return Err(PortError::Other(format!(
                "the item of execution {execution_id} lacks releaseId or pipeline"
            )));
        };
        let release_id = ReleaseId::parse(rid).map_err(|e| {
            PortError::Other(format!(
                "the item of execution {execution_id} has a bad releaseId {rid:?}: {e}"
            ))
        })?;
        Ok(Some(RunKey {
            release_id,
            pipeline: pipeline.to_owned(),
        }))
    }

    /// One UpdateItem on `attribute_not_exists(tokenAt) OR tokenAt <= :at` (fixed-width
    /// times compare as text): a token stored later is kept, and a read returns the run as it
    /// is.
    async fn set_token(
        &self,
        key: &RunKey,
        token: &str,
        at: OffsetDateTime,
    ) -> PortResult<RunRecord> {
        let result = self
            .client
            .update_item()
            .table_name(&self.table)
            .set_key(Some(run_key_item(key)))
            .update_expression("SET #token = :token, #tokenAt = :at, #wpk = :wpk, #wsk = :at")
            .condition_expression(
                "attribute_exists(#pk) AND (attribute_not_exists(#tokenAt) OR #tokenAt <= :at)",
            )
            .expression_attribute_names("#pk", PK)
            .expression_attribute_names("#token", TASK_TOKEN)
            .expression_attribute_names("#tokenAt", TOKEN_AT)
            .expression_attribute_names("#wpk", WAITING_PK)
            .expression_attribute_names("#wsk", WAITING_SK)
            .expression_attribute_values(":token", s(token))
            .expression_attribute_values(
                ":wpk",
                s(waiting_shard(key.release_id.as_str(), &key.pipeline)),
            )
            .expression_attribute_values(":at", s(sortable_time(at)))
            .return_values(ReturnValue::AllNew)
            .send()
            .await;
        match result {
            Ok(out) => decode_run(&out.attributes.unwrap_or_default()),
            Err(e) if is_condition_failed(&e) => match self.get_run_item(key).await? {
                // A newer attempt's token is stored: the run as it is, with that token.
                Some(item) => decode_run(&item),
                None => Err(PortError::NotFound(format!(
                    "release {} has no pipeline {:?}",
                    key.release_id, key.pipeline
                ))),
            },
            Err(e) => Err(port_error("DynamoDB UpdateItem (set token)", &e)),
        }
    }

    /// REMOVEs the token and the index attributes; `tokenAt` stays.
    async fn clear_token(&self, key: &RunKey, token: &str) -> PortResult<bool> {
        let result = self
            .client
            .update_item()
            .table_name(&self.table)
            .set_key(Some(run_key_item(key)))
            .update_expression("REMOVE #token, #wpk, #wsk")
            .condition_expression("#token = :token")
            .expression_attribute_names("#token", TASK_TOKEN)
            .expression_attribute_names("#wpk", WAITING_PK)
            .expression_attribute_names("#wsk", WAITING_SK)
            .expression_attribute_values(":token", s(token))
            .return_values(ReturnValue::AllNew)
            .send()
            .await;
        match result {
            Ok(_) => Ok(true),
            Err(e) if is_condition_failed(&e) => Ok(false),
            Err(e) => Err(port_error("DynamoDB UpdateItem (clear token)", &e)),
        }
    }

    async fn set_run_cause(&self, key: &RunKey, cause: &str) -> PortResult<()> {
        self.set_run_attribute(key, RUN_CAUSE, s(cause), "run cause")
            .await
            .map(|_| ())
    }

    async fn mark_stop_abandoned(&self, key: &RunKey) -> PortResult<Option<RunRecord>> {
        self.set_run_attribute(
            key,
            STOP_ABANDONED,
            AttributeValue::Bool(true),
            "stop abandoned",
        )
        .await
    }

    /// Queries every shard of the waiting index (and the legacy partition) at once, each
    /// following its pages, and merges them least recently polled first. An item that does not
    /// decode is logged and skipped.
    async fn waiting_runs(&self) -> PortResult<Vec<RunRecord>> {
        let partitions = waiting_partitions();
        let shards = try_join_all(partitions.iter().map(|p| self.query_waiting_index(p))).await?;
        let mut runs: Vec<(Option<OffsetDateTime>, RunRecord)> = shards
            .into_iter()
            .flatten()
            .filter_map(|item| match decode_run(&item) {
                Ok(run) => Some((waiting_since(&item), run)),
                Err(error) => {
                    log_skipped(&item, "waiting run", &error);
                    None
                }
            })
            .collect();
        runs.sort_by(|(a_since, a), (b_since, b)| {
            (a_since, &a.release_id, &a.spec.name).cmp(&(b_since, &b.release_id, &b.spec.name))
        });
        Ok(runs.into_iter().map(|(_, run)| run).collect())
    }

    /// Sets `waitingSince` on condition `taskToken = :token`; a failed condition (another
    /// token, none, no run) changes nothing and is not an error. The run keeps its shard.
    async fn touch_waiting(&self, key: &RunKey, token: &str, at: OffsetDateTime) -> PortResult<()> {
        let result = self
            .client
            .update_item()
            .table_name(&self.table)
            .set_key(Some(run_key_item(key)))
            .update_expression("SET #wsk = :at")
            .condition_expression("#token = :token")
            .expression_attribute_names("#token", TASK_TOKEN)
            .expression_attribute_names("#wsk", WAITING_SK)
            .expression_attribute_values(":token", s(token))
            .expression_attribute_values(":at", s(sortable_time(at)))
            .send()
            .await;
        match result {
            Ok(_) => Ok(()),
            Err(e) if is_condition_failed(&e) => Ok(()),
            Err(e) => Err(port_error("DynamoDB UpdateItem (touch waiting)", &e)),
        }
    }

    /// The `RUNNING` partition of the waiting index: every release item between its claim and
    /// its finish. An item that does not decode is logged and skipped.
    async fn running_releases(&self) -> PortResult<Vec<ReleaseRecord>> {
        let items = self.query_waiting_index(RUNNING_VALUE).await?;
        let mut releases: Vec<ReleaseRecord> = items
            .iter()
            .filter_map(|item| match decode_release(item) {
                Ok(release) if release.status == ReleaseStatus::Running => Some(release),
                Ok(release) => {
                    tracing::warn!(
                        release_id = %release.release_id,
                        status = %release.status,
                        "a release item indexed as RUNNING has ended; not listed"
                    );
                    None
                }
                Err(error) => {
                    log_skipped(item, "RUNNING release", &error);
                    None
                }
            })
            .collect();
        releases
            .sort_by(|a, b| (a.requested_at, &a.release_id).cmp(&(b.requested_at, &b.release_id)));
        Ok(releases)
    }

    async fn request_stop(&self, release_id: &ReleaseId, owner: &str) -> PortResult<()> {
        let result = self
            .client
            .update_item()
            .table_name(&self.table)
            .set_key(Some(release_key_item(release_id)))
            .update_expression("SET #stop = :true")
            .condition_expression("#owner = :owner AND #status = :running")
            .expression_attribute_names("#stop", STOP_REQUESTED)
            .expression_attribute_names("#owner", OWNER)
            .expression_attribute_names("#status", STATUS)
            .expression_attribute_values(":true", AttributeValue::Bool(true))
            .expression_attribute_values(":owner", s(owner))
            .expression_attribute_values(":running", s(ReleaseStatus::Running.as_str()))
            .send()
            .await;
        match result {
            Ok(_) => Ok(()),
            Err(e) if is_condition_failed(&e) => {
                Err(self.release_condition_error(release_id, owner).await)
            }
            Err(e) => Err(port_error("DynamoDB UpdateItem (request stop)", &e)),
        }
    }

    async fn finish(
        &self,
        release_id: &ReleaseId,
        owner: &str,
        status: ReleaseStatus,
        cause: Option<&str>,
        at: OffsetDateTime,
    ) -> PortResult<ReleaseRecord> {
        // The release leaves the RUNNING partition of the waiting index as it ends.
        let mut request = self
            .client
            .update_item()
            .table_name(&self.table)
            .set_key(Some(release_key_item(release_id)))
            .condition_expression("#owner = :owner AND #status = :running")
            .expression_attribute_names("#owner", OWNER)
            .expression_attribute_names("#status", STATUS)
            .expression_attribute_names("#ended", ENDED_AT)
            .expression_attribute_names("#wpk", WAITING_PK)
            .expression_attribute_names("#wsk", WAITING_SK)
            .expression_attribute_values(":owner", s(owner))
            .expression_attribute_values(":running", s(ReleaseStatus::Running.as_str()))
            .expression_attribute_values(":status", s(status.as_str()))
            .expression_attribute_values(":at", ts(at))
            .return_values(ReturnValue::AllNew);
        request = match cause {
            Some(cause) => request
                .update_expression(
                    "SET #status = :status, #ended = :at, #cause = :cause REMOVE #wpk, #wsk",
                )
                .expression_attribute_names("#cause", CAUSE)
                .expression_attribute_values(":cause", s(cause)),
            None => request
                .update_expression("SET #status = :status, #ended = :at REMOVE #cause, #wpk, #wsk")
                .expression_attribute_names("#cause", CAUSE),
        };
        match request.send().await {
            Ok(out) => decode_release(&out.attributes.unwrap_or_default()),
            Err(e) if is_condition_failed(&e) => {
                Err(self.release_condition_error(release_id, owner).await)
            }
            Err(e) => Err(port_error("DynamoDB UpdateItem (finish)", &e)),
        }
    }
}

impl DynamoStore {
    /// One partition of the waiting index, following its pages.
    async fn query_waiting_index(&self, partition: &str) -> PortResult<Vec<Item>> {
        let mut items = Vec::new();
        let mut start: Option<HashMap<String, AttributeValue>> = None;
        loop {
            let out = self
                .client
                .query()
                .table_name(&self.table)
                .index_name(WAITING_INDEX)
                .key_condition_expression("#wpk = :wpk")
                .expression_attribute_names("#wpk", WAITING_PK)
                .expression_attribute_values(":wpk", s(partition))
                .set_exclusive_start_key(start)
                .send()
                .await
                .map_err(|e| port_error("DynamoDB Query (waiting index)", &e))?;
            items.extend(out.items.unwrap_or_default());
            match out.last_evaluated_key {
                Some(k) if !k.is_empty() => start = Some(k),
                _ => return Ok(items),
            }
        }
    }

    /// Why a write conditional on `owner = :me AND status = RUNNING` failed, read from the
    /// release item: unknown, another owner's, or already ended (with which status).
    async fn release_condition_error(&self, release_id: &ReleaseId, owner: &str) -> PortError {
        let item = match self.get_item(release_key_item(release_id)).await {
            Ok(item) => item,
            Err(e) => {
                return PortError::ConditionFailed(format!(
                    "release {release_id} is not RUNNING under {owner} (and could not be read: {e})"
                ))
            }
        };
        let Some(item) = item else {
            return PortError::ConditionFailed(format!("release {release_id} does not exist"));
        };
        match (get_s(&item, OWNER), get_s(&item, STATUS)) {
            (Some(held), _) if held != owner => PortError::ConditionFailed(format!(
                "release {release_id} is held by {held}, not {owner}"
            )),
            (_, Some(status)) if status != ReleaseStatus::Running.as_str() => {
                PortError::ConditionFailed(format!(
                    "release {release_id} already ended with status {status}"
                ))
            }
            _ => PortError::ConditionFailed(format!(
                "release {release_id} changed while it was written; try again"
            )),
        }
    }
}

/// The index sort key of a waiting run, as a time (`None`, listed first, if unreadable).
fn waiting_since(item: &Item) -> Option<OffsetDateTime> {
    get_s(item, WAITING_SK).and_then(|raw| OffsetDateTime::parse(raw, &Rfc3339).ok())
}

/// An item the sweep's lists cannot decode: logged with its key, then left out (issue 9,
/// fault 8: one bad item never stops the sweep).
fn log_skipped(item: &Item, what: &str, error: &PortError) {
    tracing::error!(
        pk = get_s(item, PK).unwrap_or("?"),
        sk = get_s(item, SK).unwrap_or("?"),
        %error,
        "skipping a {what} item that cannot be decoded"
    );
}

#[cfg(test)]
mod backoff_tests {
    use super::*;

    #[test]
    fn batch_backoff_is_full_jitter_under_an_exponential_ceiling() {
        for attempt in 1..MAX_BATCH_ATTEMPTS {
            let ceiling = (BATCH_BACKOFF_BASE * (1 << attempt)).min(BATCH_BACKOFF_CAP);
            let waits: Vec<Duration> = (0..200).map(|_| batch_backoff(attempt)).collect();
            assert!(waits.iter().all(|w| *w <= ceiling), "attempt {attempt}");
            // Jittered: not one fixed wait.
            assert!(waits.iter().any(|w| *w != waits[0]), "attempt {attempt}");
        }
        assert!(batch_backoff(u32::MAX) <= BATCH_BACKOFF_CAP);
    }
}

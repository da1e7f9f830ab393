//! [`DynamoStore`]: the [`ReleaseStore`] on one DynamoDB table (layout in [`schema`] and
//! `TABLE.md`).

mod items;
pub mod schema;

use crate::error::{error_code, has_code, port_error};
use async_trait::async_trait;
use aws_sdk_dynamodb::error::ProvideErrorMetadata;
use aws_sdk_dynamodb::operation::update_item::builders::UpdateItemFluentBuilder;
use aws_sdk_dynamodb::types::{AttributeValue, PutRequest, ReturnValue, WriteRequest};
use aws_sdk_dynamodb::Client;
use futures::future::try_join_all;
use futures::stream::{self, StreamExt, TryStreamExt};
use items::*;
use rm_core::error::PortError;
use rm_core::events::ReleaseEvent;
use rm_core::ports::{Claim, ListQuery, NewRelease, PortResult, ReleasePage, ReleaseStore, RunKey};
use rm_core::release::{
    apply_status, list_order, page_of, HistoryEntry, ReleaseId, ReleaseRecord, ReleaseStatus,
    RunRecord, RunStatus, StoredRelease,
};
use schema::*;
use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::{Arc, Mutex};
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
/// How often a run write that lost a race with another write of the run (its condition: the
/// item is still as read) reads the run again and decides again.
const RUN_WRITE_ATTEMPTS: usize = 8;
/// At most this many event locations are remembered ([`DynamoStore::located`]); beyond, the
/// memory is cleared and starts again.
const LOCATED_CAP: usize = 10_000;

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
#[derive(Clone)]
pub struct DynamoStore {
    client: Client,
    table: String,
    /// Which item (its sort key) holds an event (release id, sequence), as this store wrote it
    /// or `outbox` read it: `remove_from_outbox` then writes to that item without reading the
    /// release's partition (an event never moves). A miss is looked up in the table.
    located: Arc<Mutex<HashMap<(String, u64), String>>>,
}

impl std::fmt::Debug for DynamoStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DynamoStore")
            .field("client", &self.client)
            .field("table", &self.table)
            .field("located", &lock(&self.located).len())
            .finish()
    }
}

fn is_condition_failed<E, R>(err: &aws_sdk_dynamodb::error::SdkError<E, R>) -> bool
where
    E: ProvideErrorMetadata,
{
    has_code(err, CONDITIONAL_CHECK_FAILED)
}

/// The ValidationException of a SET of `outbox.#key` on an item without an `outbox` map (an
/// item written before the outbox): "The document path provided in the update expression is
/// invalid for update" (the parent of a nested path must exist; DynamoDB Developer Guide,
/// "Using update expressions in DynamoDB",
/// <https://docs.aws.amazon.com/amazondynamodb/latest/developerguide/Expressions.UpdateExpressions.html>).
fn is_missing_document_path<E, R>(err: &aws_sdk_dynamodb::error::SdkError<E, R>) -> bool
where
    E: ProvideErrorMetadata,
{
    let message = match err {
        aws_sdk_dynamodb::error::SdkError::ServiceError(se) => se.err().message(),
        _ => None,
    };
    error_code(err) == Some("ValidationException")
        && message.is_some_and(|m| m.contains("document path provided in the update expression"))
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

/// The names and values of one expression, each added where it is used (DynamoDB refuses
/// unused ones).
#[derive(Default)]
struct Expr {
    names: HashMap<String, String>,
    values: HashMap<String, AttributeValue>,
}

impl Expr {
    /// `placeholder` (`#name`) for the attribute `attr`.
    fn name(&mut self, placeholder: &str, attr: &str) -> String {
        self.names.insert(placeholder.to_owned(), attr.to_owned());
        placeholder.to_owned()
    }

    /// `placeholder` (`:value`) for `v`.
    fn value(&mut self, placeholder: &str, v: AttributeValue) -> String {
        self.values.insert(placeholder.to_owned(), v);
        placeholder.to_owned()
    }

    fn apply(self, request: UpdateItemFluentBuilder) -> UpdateItemFluentBuilder {
        request
            .set_expression_attribute_names((!self.names.is_empty()).then_some(self.names))
            .set_expression_attribute_values((!self.values.is_empty()).then_some(self.values))
    }

    /// The SET actions that put `events` in the written item's `outbox` map and index the
    /// item (`outboxPk`), with the condition that keeps them apart from a concurrent first
    /// write of the map: `map_exists` (the item has its map: SET each key) or not (SET the
    /// whole map, on condition it is still absent). Nothing for no events.
    fn outbox(
        &mut self,
        release_id: &ReleaseId,
        events: &[ReleaseEvent],
        map_exists: bool,
    ) -> PortResult<(Vec<String>, Option<String>)> {
        // One entry per sequence number: two SETs of one path are refused.
        let events: BTreeMap<u64, &ReleaseEvent> = events.iter().map(|e| (e.sequence, e)).collect();
        if events.is_empty() {
            return Ok((Vec::new(), None));
        }
        let ob = self.name("#ob", OUTBOX);
        let mut set = vec![format!(
            "{} = {}",
            self.name("#obpk", OUTBOX_PK),
            self.value(":obpk", s(outbox_shard(release_id.as_str())))
        )];
        if map_exists {
            for (i, (seq, e)) in events.iter().enumerate() {
                set.push(format!(
                    "{ob}.{} = {}",
                    self.name(&format!("#obk{i}"), &outbox_key(*seq)),
                    self.value(&format!(":obv{i}"), outbox_value(e)?)
                ));
            }
            Ok((set, Some(format!("attribute_exists({ob})"))))
        } else {
            let all: Vec<ReleaseEvent> = events.into_values().cloned().collect();
            set.push(format!(
                "{ob} = {}",
                self.value(":obmap", outbox_map(&all)?)
            ));
            Ok((set, Some(format!("attribute_not_exists({ob})"))))
        }
    }
}

/// What a run write changes, decided from the run as read.
#[derive(Default)]
struct RunChange {
    /// The new status and its history entry.
    status: Option<HistoryEntry>,
    execution_id: Option<String>,
    /// The execution that started the run (informational: starts are checked against the
    /// release item's owner).
    owner: Option<String>,
    /// Set if the run has no start time yet.
    started_at: Option<OffsetDateTime>,
    ended_at: Option<OffsetDateTime>,
}

/// What `update_release`'s write found.
enum ReleaseWrite {
    Done,
    /// The condition failed: another version, or no release.
    Stale,
    /// The release item has no `outbox` map yet (written before the outbox).
    NoOutboxMap,
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
            located: Arc::default(),
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

    /// Every item under a release's partition key: one Query, following its pages.
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

    /// Writes the CodePipeline execution id's item, which leads an event of the execution to
    /// its run; refused if the id already leads to another run.
    async fn index_execution(
        &self,
        release_id: &ReleaseId,
        pipeline: &str,
        execution_id: &str,
    ) -> PortResult<()> {
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
            Ok(_) => Ok(()),
            Err(e) if is_condition_failed(&e) => Err(PortError::ConditionFailed(format!(
                "CodePipeline execution {execution_id} is already recorded for another run"
            ))),
            Err(e) => Err(port_error("DynamoDB PutItem (execution id)", &e)),
        }
    }

    /// Reads the run, lets `decide` answer the change to make (None: nothing to record, the run
    /// is returned as read) and writes it on condition that the run is still as read; a race
    /// reads it again and decides again. `what` names the change in the error after
    /// [`RUN_WRITE_ATTEMPTS`] races.
    async fn record_run_change(
        &self,
        key: &RunKey,
        what: &str,
        events: &[ReleaseEvent],
        decide: impl Fn(&RunRecord) -> Option<RunChange>,
    ) -> PortResult<Option<RunRecord>> {
        for _ in 0..RUN_WRITE_ATTEMPTS {
            let Some(before) = self.get_run_item(key).await? else {
                return Ok(None);
            };
            let run = decode_run(&before)?;
            let Some(change) = decide(&run) else {
                return Ok(Some(run));
            };
            if let Some(run) = self.write_run(key, &before, change, events).await? {
                return Ok(Some(run));
            }
        }
        Err(PortError::Transient(format!(
            "pipeline {} of release {} kept changing while its {what} was recorded",
            key.pipeline, key.release_id
        )))
    }

    /// Writes `change` (decided from `before`, the run item as read) and puts `events` in the
    /// run's outbox, in one UpdateItem on condition that the item is still as read: the same
    /// status, attempt and execution id (what the change and its history entry were decided
    /// from), and its outbox map as found. The run after the write; `None` if the condition
    /// failed (read again and decide again).
    async fn write_run(
        &self,
        key: &RunKey,
        before: &Item,
        change: RunChange,
        events: &[ReleaseEvent],
    ) -> PortResult<Option<RunRecord>> {
        let mut x = Expr::default();
        let mut set = Vec::new();
        let status = x.name("#status", STATUS);
        let eid = x.name("#eid", EXECUTION_ID);
        let attempt = x.name("#attempt", ATTEMPT);
        if let Some(entry) = &change.status {
            set.push(format!(
                "{status} = {}",
                x.value(":status", s(entry.status.as_str()))
            ));
            set.push(format!(
                "{} = {}",
                x.name("#rank", RANK),
                x.value(":rank", n(entry.status.rank()))
            ));
            let history = x.name("#history", HISTORY);
            set.push(format!(
                "{history} = list_append({history}, {})",
                x.value(":entry", history_entry(entry))
            ));
        }
        if let Some(id) = &change.execution_id {
            set.push(format!("{eid} = {}", x.value(":eid", s(id))));
        }
        if let Some(owner) = &change.owner {
            set.push(format!(
                "{} = {}",
                x.name("#owner", OWNER),
                x.value(":owner", s(owner))
            ));
        }
        if let Some(at) = change.started_at {
            let started = x.name("#started", STARTED_AT);
            set.push(format!(
                "{started} = if_not_exists({started}, {})",
                x.value(":started", ts(at))
            ));
        }
        if let Some(at) = change.ended_at {
            set.push(format!(
                "{} = {}",
                x.name("#ended", ENDED_AT),
                x.value(":ended", ts(at))
            ));
        }
        let (outbox_set, outbox_condition) =
            x.outbox(&key.release_id, events, has_outbox(before))?;
        set.extend(outbox_set);

        let mut condition = vec![format!("attribute_exists({})", x.name("#pk", PK))];
        let before_status = before
            .get(STATUS)
            .cloned()
            .unwrap_or_else(|| s(RunStatus::NotStarted.as_str()));
        condition.push(format!(
            "{status} = {}",
            x.value(":beforeStatus", before_status)
        ));
        condition.push(match before.get(ATTEMPT) {
            Some(v) => format!("{attempt} = {}", x.value(":beforeAttempt", v.clone())),
            None => format!("attribute_not_exists({attempt})"),
        });
        condition.push(match before.get(EXECUTION_ID) {
            Some(v) => format!("{eid} = {}", x.value(":beforeEid", v.clone())),
            None => format!("attribute_not_exists({eid})"),
        });
        condition.extend(outbox_condition);

        let request = self
            .client
            .update_item()
            .table_name(&self.table)
            .set_key(Some(run_key_item(key)))
            .update_expression(format!("SET {}", set.join(", ")))
            .condition_expression(condition.join(" AND "))
            .return_values(ReturnValue::AllNew);
        match x.apply(request).send().await {
            Ok(out) => {
                let sk = run_sk(&key.pipeline);
                self.remember(events.iter().map(|e| (e, sk.as_str())));
                Ok(Some(decode_run(&out.attributes.unwrap_or_default())?))
            }
            Err(e) if is_condition_failed(&e) => Ok(None),
            Err(e) => Err(port_error("DynamoDB UpdateItem (run)", &e)),
        }
    }

    /// `update_release`'s one UpdateItem: the mutable fields, the version, the index keys
    /// (the status partition), and the events, on condition of the previous version.
    async fn write_release(
        &self,
        record: &ReleaseRecord,
        events: &[ReleaseEvent],
        map_exists: bool,
    ) -> PortResult<ReleaseWrite> {
        let Some(prev) = record.version.checked_sub(1) else {
            return Ok(ReleaseWrite::Stale);
        };
        let mut x = Expr::default();
        let mut set = vec![
            format!(
                "{} = {}",
                x.name("#owner", OWNER),
                x.value(":owner", s(&record.owner))
            ),
            format!(
                "{} = {}",
                x.name("#status", STATUS),
                x.value(":status", s(record.status.as_str()))
            ),
            format!(
                "{} = {}",
                x.name("#stop", STOP_REQUESTED),
                x.value(":stop", AttributeValue::Bool(record.stop_requested))
            ),
            format!(
                "{} = {}",
                x.name("#lifecycle", LIFECYCLE),
                x.value(":lifecycle", lifecycle_value(&record.lifecycle)?)
            ),
            format!(
                "{} = {}",
                x.name("#version", VERSION),
                x.value(":version", n(record.version))
            ),
            // The release moves to its status's partition of the waiting index: listed by
            // running_releases while RUNNING, and by list_releases under its status.
            format!(
                "{} = {}",
                x.name("#wpk", WAITING_PK),
                x.value(":wpk", s(release_partition(record.status)))
            ),
            format!(
                "{} = {}",
                x.name("#wsk", WAITING_SK),
                x.value(":wsk", s(list_order(record)))
            ),
        ];
        let mut remove = Vec::new();
        let ended = x.name("#ended", ENDED_AT);
        match record.ended_at {
            Some(at) => set.push(format!("{ended} = {}", x.value(":ended", ts(at)))),
            None => remove.push(ended),
        }
        let cause = x.name("#cause", CAUSE);
        match &record.cause {
            Some(c) => set.push(format!("{cause} = {}", x.value(":cause", s(c)))),
            None => remove.push(cause),
        }
        let (outbox_set, outbox_condition) = x.outbox(&record.release_id, events, map_exists)?;
        set.extend(outbox_set);
        let mut update = format!("SET {}", set.join(", "));
        if !remove.is_empty() {
            update.push_str(&format!(" REMOVE {}", remove.join(", ")));
        }
        let version = x.name("#version", VERSION);
        let prev_value = x.value(":prev", n(prev));
        // A release item written before versions counts as version 0.
        let version_condition = if prev == 0 {
            format!("(attribute_not_exists({version}) OR {version} = {prev_value})")
        } else {
            format!("{version} = {prev_value}")
        };
        let mut condition = vec![
            format!("attribute_exists({})", x.name("#pk", PK)),
            version_condition,
        ];
        if !map_exists {
            // Only the whole-map SET needs the map still absent; a nested SET on an item
            // without the map fails as such (NoOutboxMap).
            condition.extend(outbox_condition);
        }
        let request = self
            .client
            .update_item()
            .table_name(&self.table)
            .set_key(Some(release_key_item(&record.release_id)))
            .update_expression(update)
            .condition_expression(condition.join(" AND "));
        match x.apply(request).send().await {
            Ok(_) => {
                self.remember(events.iter().map(|e| (e, RELEASE_SK)));
                Ok(ReleaseWrite::Done)
            }
            Err(e) if is_condition_failed(&e) => Ok(ReleaseWrite::Stale),
            Err(e) if map_exists && is_missing_document_path(&e) => Ok(ReleaseWrite::NoOutboxMap),
            Err(e) => Err(port_error("DynamoDB UpdateItem (release)", &e)),
        }
    }

    /// Why `update_release`'s condition failed: no release, or another version.
    async fn version_error(&self, record: &ReleaseRecord) -> PortError {
        let id = &record.release_id;
        let expected = record.version.saturating_sub(1);
        match self.get_item(release_key_item(id)).await {
            Ok(None) => PortError::NotFound(format!("release {id}")),
            Ok(Some(item)) => {
                let stored = decode_release(&item)
                    .map(|r| r.version.to_string())
                    .unwrap_or_else(|_| "?".into());
                PortError::ConditionFailed(format!(
                    "release {id} is at version {stored}, not {expected}"
                ))
            }
            Err(e) => PortError::ConditionFailed(format!(
                "release {id} is not at version {expected} (and could not be read: {e})"
            )),
        }
    }

    /// The items of a release whose outbox holds events: one consistent Query of the
    /// release's partition (following its pages), keys and outbox maps only.
    async fn query_release_outboxes(&self, release_id: &ReleaseId) -> PortResult<Vec<Item>> {
        let mut items = Vec::new();
        let mut start: Option<HashMap<String, AttributeValue>> = None;
        loop {
            let out = self
                .client
                .query()
                .table_name(&self.table)
                .key_condition_expression("#pk = :pk")
                .filter_expression("size(#ob) > :zero")
                .projection_expression("#pk, #sk, #ob")
                .expression_attribute_names("#pk", PK)
                .expression_attribute_names("#sk", SK)
                .expression_attribute_names("#ob", OUTBOX)
                .expression_attribute_values(":pk", s(release_pk(release_id.as_str())))
                .expression_attribute_values(":zero", n(0))
                .consistent_read(true)
                .set_exclusive_start_key(start)
                .send()
                .await
                .map_err(|e| port_error("DynamoDB Query (outbox)", &e))?;
            items.extend(out.items.unwrap_or_default());
            match out.last_evaluated_key {
                Some(k) if !k.is_empty() => start = Some(k),
                _ => return Ok(items),
            }
        }
    }

    /// One partition of the outbox index, in release order: the events of the first releases
    /// found there, every event of each (in sequence order), at least `limit` events if there
    /// are as many, with the sort key of the item that holds each.
    async fn outbox_partition(
        &self,
        partition: &str,
        limit: usize,
    ) -> PortResult<Vec<(String, Vec<(ReleaseEvent, String)>)>> {
        let mut releases: Vec<(String, Vec<(ReleaseEvent, String)>)> = Vec::new();
        let mut start: Option<HashMap<String, AttributeValue>> = None;
        let page = i32::try_from(limit.saturating_add(1).min(1000)).unwrap_or(1000);
        loop {
            let out = self
                .client
                .query()
                .table_name(&self.table)
                .index_name(OUTBOX_INDEX)
                .key_condition_expression("#obpk = :obpk")
                .expression_attribute_names("#obpk", OUTBOX_PK)
                .expression_attribute_values(":obpk", s(partition))
                .limit(page)
                .set_exclusive_start_key(start)
                .send()
                .await
                .map_err(|e| port_error("DynamoDB Query (outbox index)", &e))?;
            for item in out.items.unwrap_or_default() {
                let pk = get_s(&item, PK).unwrap_or_default().to_owned();
                let sk = get_s(&item, SK).unwrap_or_default().to_owned();
                if releases.last().is_none_or(|(last, _)| *last != pk) {
                    releases.push((pk, Vec::new()));
                }
                if let Some((_, events)) = releases.last_mut() {
                    events.extend(decoded_events(&item).into_iter().map(|e| (e, sk.clone())));
                }
            }
            match out.last_evaluated_key {
                Some(k) if !k.is_empty() => start = Some(k),
                _ => break,
            }
            // The last release may go on in the next page; those before it are whole.
            let whole: usize = releases
                .iter()
                .rev()
                .skip(1)
                .map(|(_, events)| events.len())
                .sum();
            if whole >= limit {
                releases.pop();
                break;
            }
        }
        for (_, events) in releases.iter_mut() {
            events.sort_by_key(|(e, _)| e.sequence);
        }
        Ok(releases)
    }

    /// REMOVEs the events `sequences` from the outbox of one item, then its outbox index key
    /// if its outbox is empty, on condition that it still is (a write that adds events sets
    /// the key again; it never lacks it while events wait).
    async fn remove_outbox_keys(
        &self,
        release_id: &ReleaseId,
        sk: &str,
        sequences: &[u64],
    ) -> PortResult<()> {
        let key = HashMap::from([
            (PK.to_owned(), s(release_pk(release_id.as_str()))),
            (SK.to_owned(), s(sk)),
        ]);
        let mut x = Expr::default();
        let ob = x.name("#ob", OUTBOX);
        let paths: Vec<String> = sequences
            .iter()
            .enumerate()
            .map(|(i, seq)| format!("{ob}.{}", x.name(&format!("#k{i}"), &outbox_key(*seq))))
            .collect();
        let request = self
            .client
            .update_item()
            .table_name(&self.table)
            .set_key(Some(key.clone()))
            .update_expression(format!("REMOVE {}", paths.join(", ")))
            // An item without the map (deleted meanwhile, or written before the outbox)
            // holds none of them.
            .condition_expression(format!("attribute_exists({ob})"))
            .return_values(ReturnValue::AllNew);
        let after = match x.apply(request).send().await {
            Ok(out) => out.attributes.unwrap_or_default(),
            Err(e) if is_condition_failed(&e) => return Ok(()),
            Err(e) => return Err(port_error("DynamoDB UpdateItem (outbox remove)", &e)),
        };
        let empty = matches!(after.get(OUTBOX), Some(AttributeValue::M(m)) if m.is_empty());
        if !(empty && after.contains_key(OUTBOX_PK)) {
            return Ok(());
        }
        let result = self
            .client
            .update_item()
            .table_name(&self.table)
            .set_key(Some(key))
            .update_expression("REMOVE #obpk")
            .condition_expression("size(#ob) = :zero")
            .expression_attribute_names("#obpk", OUTBOX_PK)
            .expression_attribute_names("#ob", OUTBOX)
            .expression_attribute_values(":zero", n(0))
            .send()
            .await;
        match result {
            Ok(_) => Ok(()),
            Err(e) if is_condition_failed(&e) => Ok(()),
            Err(e) => Err(port_error("DynamoDB UpdateItem (outbox unindex)", &e)),
        }
    }

    /// Remembers which item (its sort key) holds each event: read from the outbox, or just
    /// written (a writer publishes what it wrote, then removes it).
    fn remember<'a>(&self, events: impl IntoIterator<Item = (&'a ReleaseEvent, &'a str)>) {
        let mut located = lock(&self.located);
        for (e, sk) in events {
            if located.len() >= LOCATED_CAP {
                located.clear();
            }
            located.insert((e.release_id.to_string(), e.sequence), sk.to_owned());
        }
    }

    /// One status's partition of the waiting index, newest first (before `before`, a page
    /// token), until `want` releases are read or the partition ends. An item that does not
    /// decode, is not in its status's partition or does not carry its list order is logged
    /// and skipped.
    async fn list_partition(
        &self,
        status: ReleaseStatus,
        before: Option<&str>,
        want: usize,
    ) -> PortResult<Vec<ReleaseRecord>> {
        let mut releases = Vec::new();
        let mut start: Option<HashMap<String, AttributeValue>> = None;
        while releases.len() < want {
            let page = i32::try_from((want - releases.len()).min(1000)).unwrap_or(1000);
            let mut request = self
                .client
                .query()
                .table_name(&self.table)
                .index_name(WAITING_INDEX)
                .expression_attribute_names("#wpk", WAITING_PK)
                .expression_attribute_values(":wpk", s(release_partition(status)))
                .scan_index_forward(false)
                .limit(page)
                .set_exclusive_start_key(start);
            request = match before {
                Some(token) => request
                    .key_condition_expression("#wpk = :wpk AND #wsk < :before")
                    .expression_attribute_names("#wsk", WAITING_SK)
                    .expression_attribute_values(":before", s(token)),
                None => request.key_condition_expression("#wpk = :wpk"),
            };
            let out = request
                .send()
                .await
                .map_err(|e| port_error("DynamoDB Query (release list)", &e))?;
            for item in out.items.unwrap_or_default() {
                match decode_release(&item) {
                    // A RUNNING item written before the list keeps its old sort key (its
                    // requestedAt) until its next write: not listed meanwhile, so it cannot
                    // take the place of a release of the page.
                    Ok(r) if get_s(&item, WAITING_SK) != Some(list_order(&r).as_str()) => {
                        tracing::debug!(release_id = %r.release_id, "not listed until its next write");
                    }
                    Ok(r) if r.status == status => releases.push(r),
                    Ok(r) => tracing::warn!(
                        release_id = %r.release_id,
                        status = %r.status,
                        partition = %status,
                        "a release item is indexed under another status; not listed"
                    ),
                    Err(error) => log_skipped(&item, "listed release", &error),
                }
            }
            match out.last_evaluated_key {
                Some(k) if !k.is_empty() => start = Some(k),
                _ => break,
            }
        }
        Ok(releases)
    }
}

/// The events in an item's outbox that decode; the others are logged and left in place.
fn decoded_events(item: &Item) -> Vec<ReleaseEvent> {
    outbox_events(item)
        .into_iter()
        .filter_map(|(key, event)| match event {
            Ok(e) => Some(e),
            Err(error) => {
                tracing::error!(
                    pk = get_s(item, PK).unwrap_or("?"),
                    sk = get_s(item, SK).unwrap_or("?"),
                    key,
                    %error,
                    "skipping an outbox entry that cannot be decoded"
                );
                None
            }
        })
        .collect()
}

#[async_trait]
impl ReleaseStore for DynamoStore {
    /// The release item is put on condition `attribute_not_exists(pk)`, with the claim's
    /// events in its outbox: exactly one execution creates it, once. When the condition fails,
    /// a consistent read tells a retry by the same owner (which then writes any run items an
    /// earlier attempt did not, and never rewrites the release, its events and sequence
    /// counter, or a run that has moved on) from a duplicate.
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
            .set_item(Some(release_item(record, runs.len(), &release.events)?))
            .condition_expression("attribute_not_exists(#pk)")
            .expression_attribute_names("#pk", PK)
            .send()
            .await;
        match put {
            Ok(_) => {
                self.remember(release.events.iter().map(|e| (e, RELEASE_SK)));
                self.write_runs_batched(runs).await?;
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

    /// The owner is checked on the release item (a retry hands the release to a new
    /// execution; the run items keep the claim's). Then the execution-id item (the pipeline's
    /// first state-change event may arrive before this call returns, and it finds its run
    /// through that item), then one UpdateItem of the run on condition that it is as read
    /// (`write_run`; a race reads it again). The history entry carries the run's attempt, so
    /// the run is read before it is written.
    async fn record_start(
        &self,
        release_id: &ReleaseId,
        owner: &str,
        pipeline: &str,
        execution_id: &str,
        at: OffsetDateTime,
        events: &[ReleaseEvent],
    ) -> PortResult<RunRecord> {
        let key = RunKey {
            release_id: release_id.clone(),
            pipeline: pipeline.to_owned(),
        };
        let (release, mut item) = futures::future::try_join(
            self.get_item(release_key_item(release_id)),
            self.get_run_item(&key),
        )
        .await?;
        let Some(release) = release else {
            return Err(PortError::NotFound(format!("release {release_id}")));
        };
        let holder = get_s(&release, OWNER).unwrap_or("nobody");
        if holder != owner {
            return Err(PortError::ConditionFailed(format!(
                "release {release_id} is held by {holder}, not {owner}"
            )));
        }
        let mut indexed = false;
        for _ in 0..RUN_WRITE_ATTEMPTS {
            let Some(before) = item.take() else {
                return Err(PortError::NotFound(format!(
                    "release {release_id} has no pipeline {pipeline:?}"
                )));
            };
            let run = decode_run(&before)?;
            match run.execution_id.as_deref() {
                // A retry of this call: recorded once.
                Some(eid) if eid == execution_id => return Ok(run),
                Some(other) => {
                    return Err(PortError::ConditionFailed(format!(
                        "pipeline {pipeline} of release {release_id} was already started as execution {other}"
                    )))
                }
                None => {}
            }
            if !indexed {
                self.index_execution(release_id, pipeline, execution_id)
                    .await?;
                indexed = true;
            }
            // An event may have recorded InProgress (or more) first: then only the execution.
            let mut next = run.clone();
            next.execution_id = Some(execution_id.to_owned());
            let changed = apply_status(&mut next, RunStatus::InProgress, at);
            let change = RunChange {
                status: if changed { next.history.pop() } else { None },
                execution_id: Some(execution_id.to_owned()),
                owner: Some(owner.to_owned()),
                // An earlier start time (an event's) is kept.
                started_at: Some(at),
                ended_at: None,
            };
            if let Some(run) = self.write_run(&key, &before, change, events).await? {
                return Ok(run);
            }
            item = self.get_run_item(&key).await?;
        }
        Err(PortError::Transient(format!(
            "pipeline {pipeline} of release {release_id} kept changing while its start was recorded"
        )))
    }

    /// Reads the run and applies [`apply_status`]: a status that does not move forward is
    /// ignored (the run returned as read, nothing written); otherwise one UpdateItem on
    /// condition that the run is still as read (a race reads it again and decides again).
    async fn record_status(
        &self,
        key: &RunKey,
        status: RunStatus,
        at: OffsetDateTime,
        events: &[ReleaseEvent],
    ) -> PortResult<Option<RunRecord>> {
        self.record_run_change(key, "status", events, |run| {
            let mut next = run.clone();
            apply_status(&mut next, status, at).then(|| RunChange {
                status: next.history.pop(),
                started_at: (status == RunStatus::InProgress).then_some(at),
                ended_at: status.is_terminal().then_some(at),
                ..RunChange::default()
            })
        })
        .await
    }

    async fn record_skipped(
        &self,
        key: &RunKey,
        execution_id: &str,
        at: OffsetDateTime,
        events: &[ReleaseEvent],
    ) -> PortResult<Option<RunRecord>> {
        self.record_run_change(key, "skip", events, |run| {
            if run.status != RunStatus::NotStarted {
                return None;
            }
            let mut next = run.clone();
            next.execution_id = Some(execution_id.to_owned());
            apply_status(&mut next, RunStatus::Skipped, at);
            Some(RunChange {
                status: next.history.pop(),
                execution_id: Some(execution_id.to_owned()),
                ended_at: Some(at),
                ..RunChange::default()
            })
        })
        .await
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

    /// `ADD seq :count` on the release item (UpdateItem, ReturnValues UPDATED_NEW): the counter
    /// after the write is the last number allocated.
    async fn next_sequence(&self, release_id: &ReleaseId, count: u64) -> PortResult<u64> {
        let result = self
            .client
            .update_item()
            .table_name(&self.table)
            .set_key(Some(release_key_item(release_id)))
            .update_expression("ADD #seq :count")
            .condition_expression("attribute_exists(#pk)")
            .expression_attribute_names("#seq", SEQ)
            .expression_attribute_names("#pk", PK)
            .expression_attribute_values(":count", n(count))
            .return_values(ReturnValue::UpdatedNew)
            .send()
            .await;
        match result {
            Ok(out) => {
                let last = match out.attributes.as_ref().and_then(|a| a.get(SEQ)) {
                    Some(AttributeValue::N(v)) => v.parse::<u64>().ok(),
                    _ => None,
                };
                // The counter after the ADD is at least `count` unless the item is broken.
                last.and_then(|last| last.checked_add(1)?.checked_sub(count))
                    .ok_or_else(|| {
                        PortError::Other(format!(
                            "the sequence counter of release {release_id} is not a count"
                        ))
                    })
            }
            Err(e) if is_condition_failed(&e) => {
                Err(PortError::NotFound(format!("release {release_id}")))
            }
            Err(e) => Err(port_error("DynamoDB UpdateItem (sequence)", &e)),
        }
    }

    /// One UpdateItem of the release item on condition `version = :prev` (`write_release`). A
    /// release item written before the outbox gets its whole map in a second attempt.
    async fn update_release(
        &self,
        record: &ReleaseRecord,
        events: &[ReleaseEvent],
    ) -> PortResult<()> {
        let mut written = self.write_release(record, events, true).await?;
        if matches!(written, ReleaseWrite::NoOutboxMap) {
            written = self.write_release(record, events, false).await?;
        }
        match written {
            ReleaseWrite::Done => Ok(()),
            ReleaseWrite::Stale | ReleaseWrite::NoOutboxMap => {
                Err(self.version_error(record).await)
            }
        }
    }

    /// One conditional UpdateItem: `status <> Succeeded AND attempt < :attempt` (an absent
    /// attempt is 1).
    async fn reset_run(&self, key: &RunKey, attempt: u32) -> PortResult<Option<RunRecord>> {
        let older = if attempt > 1 {
            "(attribute_not_exists(#attempt) OR #attempt < :attempt)"
        } else {
            "#attempt < :attempt"
        };
        let result = self
            .client
            .update_item()
            .table_name(&self.table)
            .set_key(Some(run_key_item(key)))
            .update_expression(
                "SET #status = :notStarted, #rank = :zero, #attempt = :attempt \
                 REMOVE #eid, #started, #ended, #token, #wpk, #wsk, #cause, #abandoned",
            )
            .condition_expression(format!(
                "attribute_exists(#pk) AND NOT (#status IN (:succeeded, :skipped)) AND {older}"
            ))
            .expression_attribute_names("#pk", PK)
            .expression_attribute_names("#status", STATUS)
            .expression_attribute_names("#rank", RANK)
            .expression_attribute_names("#attempt", ATTEMPT)
            .expression_attribute_names("#eid", EXECUTION_ID)
            .expression_attribute_names("#started", STARTED_AT)
            .expression_attribute_names("#ended", ENDED_AT)
            .expression_attribute_names("#token", TASK_TOKEN)
            .expression_attribute_names("#wpk", WAITING_PK)
            .expression_attribute_names("#wsk", WAITING_SK)
            .expression_attribute_names("#cause", RUN_CAUSE)
            .expression_attribute_names("#abandoned", STOP_ABANDONED)
            .expression_attribute_values(":notStarted", s(RunStatus::NotStarted.as_str()))
            .expression_attribute_values(":succeeded", s(RunStatus::Succeeded.as_str()))
            .expression_attribute_values(":skipped", s(RunStatus::Skipped.as_str()))
            .expression_attribute_values(":zero", n(RunStatus::NotStarted.rank()))
            .expression_attribute_values(":attempt", n(attempt))
            .return_values(ReturnValue::AllNew)
            .send()
            .await;
        match result {
            Ok(out) => Ok(Some(decode_run(&out.attributes.unwrap_or_default())?)),
            Err(e) if is_condition_failed(&e) => self
                .get_run_item(key)
                .await?
                .map(|i| decode_run(&i))
                .transpose(),
            Err(e) => Err(port_error("DynamoDB UpdateItem (reset run)", &e)),
        }
    }

    /// Of one release: a consistent Query of its partition (what was just written is seen).
    /// Of every release: the outbox index's partitions (eventually consistent: what a
    /// publisher left behind), merged in release order. Entries that do not decode are logged
    /// and skipped.
    async fn outbox(
        &self,
        release_id: Option<&ReleaseId>,
        limit: usize,
    ) -> PortResult<Vec<ReleaseEvent>> {
        let mut found: Vec<(ReleaseEvent, String)> = match release_id {
            Some(id) => {
                let mut events: Vec<(ReleaseEvent, String)> = self
                    .query_release_outboxes(id)
                    .await?
                    .iter()
                    .flat_map(|item| {
                        let sk = get_s(item, SK).unwrap_or_default().to_owned();
                        decoded_events(item)
                            .into_iter()
                            .map(move |e| (e, sk.clone()))
                    })
                    .collect();
                events.sort_by_key(|(e, _)| e.sequence);
                events
            }
            None => {
                let partitions = outbox_partitions();
                let mut releases: Vec<(String, Vec<(ReleaseEvent, String)>)> =
                    try_join_all(partitions.iter().map(|p| self.outbox_partition(p, limit)))
                        .await?
                        .into_iter()
                        .flatten()
                        .collect();
                releases.sort_by(|a, b| a.0.cmp(&b.0));
                releases
                    .into_iter()
                    .flat_map(|(_, events)| events)
                    .collect()
            }
        };
        found.truncate(limit);
        self.remember(found.iter().map(|(e, sk)| (e, sk.as_str())));
        Ok(found.into_iter().map(|(e, _)| e).collect())
    }

    /// Finds the item of each event (remembered from the write or `outbox`, else one
    /// consistent Query of its release's partition), then one UpdateItem per item (`REMOVE
    /// outbox.#seq, ...`; a second one unindexes an item whose outbox became empty).
    async fn remove_from_outbox(&self, events: &[ReleaseEvent]) -> PortResult<()> {
        let mut by_release: BTreeMap<&ReleaseId, BTreeSet<u64>> = BTreeMap::new();
        for e in events {
            by_release
                .entry(&e.release_id)
                .or_default()
                .insert(e.sequence);
        }
        let mut writes: Vec<(ReleaseId, String, Vec<u64>)> = Vec::new();
        for (release_id, sequences) in by_release {
            let mut by_item: BTreeMap<String, Vec<u64>> = BTreeMap::new();
            let mut unknown = Vec::new();
            {
                let located = lock(&self.located);
                for seq in sequences {
                    match located.get(&(release_id.to_string(), seq)) {
                        Some(sk) => by_item.entry(sk.clone()).or_default().push(seq),
                        None => unknown.push(seq),
                    }
                }
            }
            if !unknown.is_empty() {
                for item in self.query_release_outboxes(release_id).await? {
                    let Some(AttributeValue::M(map)) = item.get(OUTBOX) else {
                        continue;
                    };
                    let sk = get_s(&item, SK).unwrap_or_default();
                    for seq in unknown
                        .iter()
                        .filter(|seq| map.contains_key(&outbox_key(**seq)))
                    {
                        by_item.entry(sk.to_owned()).or_default().push(*seq);
                    }
                }
            }
            writes.extend(
                by_item
                    .into_iter()
                    .map(|(sk, seqs)| (release_id.clone(), sk, seqs)),
            );
        }
        stream::iter(writes)
            .map(|(release_id, sk, seqs)| async move {
                self.remove_outbox_keys(&release_id, &sk, &seqs).await
            })
            .buffer_unordered(WRITE_CONCURRENCY)
            .try_collect::<()>()
            .await?;
        let mut located = lock(&self.located);
        for e in events {
            located.remove(&(e.release_id.to_string(), e.sequence));
        }
        Ok(())
    }

    /// The status partitions of the waiting index (one, or all four at once), newest first
    /// (`ScanIndexForward = false`) from the page token (`waitingSince < :next`), merged.
    /// Eventually consistent. Release items written before the list (without `waitingPk`
    /// once ended) are not listed.
    /// The halt item (`pk` = `sk` = `HALT`), read consistently.
    async fn halt(&self) -> PortResult<Option<rm_core::gate::Halt>> {
        self.read_halt().await
    }

    /// PutItem / DeleteItem of the halt item with ReturnValues ALL_OLD: the halt replaced.
    async fn set_halt(
        &self,
        halt: Option<&rm_core::gate::Halt>,
    ) -> PortResult<Option<rm_core::gate::Halt>> {
        self.write_halt(halt).await
    }

    async fn list_releases(&self, query: &ListQuery) -> PortResult<ReleasePage> {
        let limit = query.limit.max(1);
        let want = limit + 1;
        let statuses: Vec<ReleaseStatus> = match query.status {
            Some(status) => vec![status],
            None => ReleaseStatus::ALL.to_vec(),
        };
        let next = query.next.as_deref();
        let mut releases: Vec<ReleaseRecord> = try_join_all(
            statuses
                .iter()
                .map(|status| self.list_partition(*status, next, want)),
        )
        .await?
        .into_iter()
        .flatten()
        .filter(|r| next.is_none_or(|n| list_order(r).as_str() < n))
        .collect();
        releases.sort_by_cached_key(|r| std::cmp::Reverse(list_order(r)));
        releases.truncate(want);
        Ok(page_of(releases, limit))
    }
}

/// The key of the halt item.
fn halt_key() -> HashMap<String, AttributeValue> {
    HashMap::from([(PK.to_owned(), s(HALT_KEY)), (SK.to_owned(), s(HALT_KEY))])
}

/// The halt an item holds (`None`: no item).
fn decode_halt(item: Option<Item>) -> PortResult<Option<rm_core::gate::Halt>> {
    let Some(item) = item else { return Ok(None) };
    Ok(Some(rm_core::gate::Halt {
        reason: req_s(&item, "reason")?.to_owned(),
        by: req_s(&item, "by")?.to_owned(),
        since: req_time(&item, "since")?,
    }))
}

impl DynamoStore {
    /// The halt: one consistent GetItem of the halt item.
    async fn read_halt(&self) -> PortResult<Option<rm_core::gate::Halt>> {
        decode_halt(self.get_item(halt_key()).await?)
    }

    /// Puts (`Some`) or deletes (`None`) the halt item, returning what it replaced
    /// (ReturnValues ALL_OLD).
    async fn write_halt(
        &self,
        halt: Option<&rm_core::gate::Halt>,
    ) -> PortResult<Option<rm_core::gate::Halt>> {
        let old = match halt {
            Some(h) => {
                let mut item = halt_key();
                item.insert(KIND.to_owned(), s("halt"));
                item.insert("reason".to_owned(), s(&h.reason));
                item.insert("by".to_owned(), s(&h.by));
                item.insert("since".to_owned(), ts(h.since));
                self.client
                    .put_item()
                    .table_name(&self.table)
                    .set_item(Some(item))
                    .return_values(ReturnValue::AllOld)
                    .send()
                    .await
                    .map_err(|e| port_error("DynamoDB PutItem (halt)", &e))?
                    .attributes
            }
            None => {
                self.client
                    .delete_item()
                    .table_name(&self.table)
                    .set_key(Some(halt_key()))
                    .return_values(ReturnValue::AllOld)
                    .send()
                    .await
                    .map_err(|e| port_error("DynamoDB DeleteItem (halt)", &e))?
                    .attributes
            }
        };
        // An item without attributes is no item (DynamoDB answers an empty map or none).
        decode_halt(old.filter(|a| !a.is_empty()))
    }

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

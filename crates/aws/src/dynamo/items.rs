//! Release and run items: encoding to and decoding from DynamoDB attribute maps.

use super::schema::{
    outbox_key, outbox_shard, release_partition, release_pk, run_sk, OUTBOX, OUTBOX_PK, PK,
    RELEASE_SK, SK, WAITING_PK, WAITING_SK,
};
use aws_sdk_dynamodb::types::AttributeValue;
use rm_core::error::PortError;
use rm_core::events::ReleaseEvent;
use rm_core::lifecycle::Lifecycle;
use rm_core::manifest::{OnFailure, PipelineSpec, SourceRevision};
use rm_core::release::{
    list_order, HistoryEntry, ReleaseId, ReleaseRecord, ReleaseSource, ReleaseStatus, RunRecord,
    RunStatus, SourceKind,
};
use std::collections::{BTreeMap, HashMap};
use time::format_description::well_known::Rfc3339;
use time::OffsetDateTime;

pub(crate) type Item = HashMap<String, AttributeValue>;

// Attribute names (besides the keys in `schema`).
pub(crate) const KIND: &str = "kind";
pub(crate) const RELEASE_ID: &str = "releaseId";
pub(crate) const OWNER: &str = "owner";
pub(crate) const STATUS: &str = "status";
pub(crate) const RANK: &str = "rank";
pub(crate) const REQUESTED_AT: &str = "requestedAt";
pub(crate) const STARTED_AT: &str = "startedAt";
pub(crate) const ENDED_AT: &str = "endedAt";
pub(crate) const SOURCE_KIND: &str = "sourceKind";
pub(crate) const SOURCE_LOCATION: &str = "sourceLocation";
pub(crate) const REQUESTED_BY: &str = "requestedBy";
pub(crate) const MANIFEST_HASH: &str = "manifestHash";
pub(crate) const ON_FAILURE: &str = "onFailure";
pub(crate) const MAX_CONCURRENCY: &str = "maxConcurrency";
pub(crate) const DESCRIPTION: &str = "description";
pub(crate) const CAUSE: &str = "cause";
pub(crate) const STOP_REQUESTED: &str = "stopRequested";
pub(crate) const PIPELINE_COUNT: &str = "pipelineCount";
pub(crate) const PIPELINE: &str = "pipeline";
pub(crate) const WAVE: &str = "wave";
pub(crate) const POSITION: &str = "position";
pub(crate) const TIMEOUT_MINUTES: &str = "timeoutMinutes";
pub(crate) const VARIABLES: &str = "variables";
pub(crate) const SOURCE_REVISIONS: &str = "sourceRevisions";
pub(crate) const EXECUTION_ID: &str = "executionId";
pub(crate) const TASK_TOKEN: &str = "taskToken";
/// When the run's newest token was stored ([`sortable_time`]); kept when the token is cleared,
/// so a late token of an older attempt is refused.
pub(crate) const TOKEN_AT: &str = "tokenAt";
pub(crate) const HISTORY: &str = "history";
pub(crate) const STOP_ABANDONED: &str = "stopAbandoned";
/// A run's cause (`pipeline busy`), when the release machine decided it.
pub(crate) const RUN_CAUSE: &str = "runCause";
/// The release item's version (N): 0 at the claim, bumped by every `update_release`; absent on
/// items written before it existed (read as 0).
pub(crate) const VERSION: &str = "version";
/// The release's lifecycle ([`Lifecycle`] as JSON text); absent on items written before it
/// existed (read as the default: attempt 1, nothing else).
pub(crate) const LIFECYCLE: &str = "lifecycle";
/// The release's event sequence counter (N): the last number allocated.
pub(crate) const SEQ: &str = "seq";
/// The release attempt of a run (N; absent = 1), and of a history entry.
pub(crate) const ATTEMPT: &str = "attempt";

pub(crate) fn s(v: impl Into<String>) -> AttributeValue {
    AttributeValue::S(v.into())
}

pub(crate) fn n(v: impl ToString) -> AttributeValue {
    AttributeValue::N(v.to_string())
}

pub(crate) fn format_time(t: OffsetDateTime) -> String {
    // Rfc3339 formatting fails only for years outside 0..=9999.
    t.format(&Rfc3339)
        .unwrap_or_else(|_| t.unix_timestamp().to_string())
}

pub(crate) fn ts(t: OffsetDateTime) -> AttributeValue {
    s(format_time(t))
}

/// One history entry, as a one-element list to append to a run's `history` list.
pub(crate) fn history_entry(entry: &HistoryEntry) -> AttributeValue {
    let mut m = HashMap::from([
        (STATUS.to_owned(), s(entry.status.as_str())),
        ("at".to_owned(), ts(entry.at)),
        (ATTEMPT.to_owned(), n(entry.attempt)),
    ]);
    if let Some(eid) = &entry.execution_id {
        m.insert(EXECUTION_ID.to_owned(), s(eid));
    }
    AttributeValue::L(vec![AttributeValue::M(m)])
}

/// An event as an [`OUTBOX`] map value: its JSON text.
pub(crate) fn outbox_value(event: &ReleaseEvent) -> Result<AttributeValue, PortError> {
    serde_json::to_string(event)
        .map(s)
        .map_err(|e| PortError::Other(format!("event {} is not JSON: {e}", event.event_id_of())))
}

/// The [`OUTBOX`] map of `events`.
pub(crate) fn outbox_map(events: &[ReleaseEvent]) -> Result<AttributeValue, PortError> {
    events
        .iter()
        .map(|e| Ok((outbox_key(e.sequence), outbox_value(e)?)))
        .collect::<Result<HashMap<_, _>, PortError>>()
        .map(AttributeValue::M)
}

/// The events in an item's [`OUTBOX`] map, by key; an entry that does not decode is an error of
/// its own (the caller logs and skips it).
pub(crate) fn outbox_events(item: &Item) -> Vec<(String, Result<ReleaseEvent, PortError>)> {
    let Some(AttributeValue::M(map)) = item.get(OUTBOX) else {
        return Vec::new();
    };
    let mut events: Vec<(String, Result<ReleaseEvent, PortError>)> = map
        .iter()
        .map(|(k, v)| {
            let event = match v {
                AttributeValue::S(json) => serde_json::from_str::<ReleaseEvent>(json)
                    .map_err(|e| bad(item, format!("outbox entry {k} is not an event: {e}"))),
                _ => Err(bad(item, format!("outbox entry {k} is not a string"))),
            };
            (k.clone(), event)
        })
        .collect();
    events.sort_by(|a, b| a.0.cmp(&b.0));
    events
}

/// True when the item's [`OUTBOX`] map exists (items written before the outbox have none).
pub(crate) fn has_outbox(item: &Item) -> bool {
    matches!(item.get(OUTBOX), Some(AttributeValue::M(_)))
}

fn bad(item: &Item, what: String) -> PortError {
    let pk = get_s(item, PK).unwrap_or("?");
    let sk = get_s(item, SK).unwrap_or("?");
    PortError::Other(format!("stored item {pk}/{sk} is malformed: {what}"))
}

pub(crate) fn get_s<'a>(item: &'a Item, name: &str) -> Option<&'a str> {
    match item.get(name) {
        Some(AttributeValue::S(v)) => Some(v),
        _ => None,
    }
}

pub(crate) fn req_s<'a>(item: &'a Item, name: &str) -> Result<&'a str, PortError> {
    get_s(item, name).ok_or_else(|| bad(item, format!("no string attribute {name}")))
}

fn req_n<T: std::str::FromStr>(item: &Item, name: &str) -> Result<T, PortError> {
    match item.get(name) {
        Some(AttributeValue::N(v)) => v
            .parse()
            .map_err(|_| bad(item, format!("{name} is not a valid number: {v}"))),
        _ => Err(bad(item, format!("no number attribute {name}"))),
    }
}

fn parse_time(item: &Item, name: &str, raw: &str) -> Result<OffsetDateTime, PortError> {
    OffsetDateTime::parse(raw, &Rfc3339)
        .map_err(|e| bad(item, format!("{name} is not an RFC 3339 time ({raw}): {e}")))
}

fn opt_time(item: &Item, name: &str) -> Result<Option<OffsetDateTime>, PortError> {
    get_s(item, name)
        .map(|raw| parse_time(item, name, raw))
        .transpose()
}

pub(crate) fn req_time(item: &Item, name: &str) -> Result<OffsetDateTime, PortError> {
    parse_time(item, name, req_s(item, name)?)
}

fn run_status(item: &Item, raw: &str) -> Result<RunStatus, PortError> {
    RunStatus::parse(raw).ok_or_else(|| bad(item, format!("unknown run status {raw}")))
}

fn release_id(item: &Item) -> Result<ReleaseId, PortError> {
    let raw = req_s(item, RELEASE_ID)?;
    ReleaseId::parse(raw).map_err(|e| bad(item, format!("releaseId {raw:?} {e}")))
}

/// True for the release item of a partition.
pub(crate) fn is_release_item(item: &Item) -> bool {
    get_s(item, SK) == Some(RELEASE_SK)
}

/// The release item of a claim, with the claim's events in its outbox and the sequence counter
/// at the last of them.
pub(crate) fn release_item(
    r: &ReleaseRecord,
    pipeline_count: usize,
    events: &[ReleaseEvent],
) -> Result<Item, PortError> {
    let mut item = Item::from([
        (PK.to_owned(), s(release_pk(r.release_id.as_str()))),
        (SK.to_owned(), s(RELEASE_SK)),
        (KIND.to_owned(), s("release")),
        (RELEASE_ID.to_owned(), s(r.release_id.as_str())),
        (OWNER.to_owned(), s(&r.owner)),
        (STATUS.to_owned(), s(r.status.as_str())),
        (REQUESTED_AT.to_owned(), ts(r.requested_at)),
        (SOURCE_KIND.to_owned(), s(r.source.kind.as_str())),
        (ON_FAILURE.to_owned(), s(r.on_failure.as_str())),
        (MAX_CONCURRENCY.to_owned(), n(r.max_concurrency)),
        (
            STOP_REQUESTED.to_owned(),
            AttributeValue::Bool(r.stop_requested),
        ),
        (PIPELINE_COUNT.to_owned(), n(pipeline_count)),
        (VERSION.to_owned(), n(r.version)),
        (LIFECYCLE.to_owned(), lifecycle_value(&r.lifecycle)?),
        (
            SEQ.to_owned(),
            n(events.iter().map(|e| e.sequence).max().unwrap_or(0)),
        ),
        (OUTBOX.to_owned(), outbox_map(events)?),
        // Listed by status (running_releases, list_releases) through the waiting index.
        (WAITING_PK.to_owned(), s(release_partition(r.status))),
        (WAITING_SK.to_owned(), s(list_order(r))),
    ]);
    if !events.is_empty() {
        item.insert(OUTBOX_PK.to_owned(), s(outbox_shard(r.release_id.as_str())));
    }
    let optional = [
        (ENDED_AT, r.ended_at.map(format_time)),
        (SOURCE_LOCATION, r.source.location.clone()),
        (REQUESTED_BY, r.requested_by.clone()),
        (MANIFEST_HASH, r.manifest_hash.clone()),
        (DESCRIPTION, r.description.clone()),
        (CAUSE, r.cause.clone()),
    ];
    for (name, value) in optional {
        if let Some(v) = value {
            item.insert(name.to_owned(), s(v));
        }
    }
    Ok(item)
}

/// The release's lifecycle as stored: JSON text.
pub(crate) fn lifecycle_value(l: &Lifecycle) -> Result<AttributeValue, PortError> {
    serde_json::to_string(l)
        .map(s)
        .map_err(|e| PortError::Other(format!("a lifecycle is not JSON: {e}")))
}

fn decode_lifecycle(item: &Item) -> Result<Lifecycle, PortError> {
    match item.get(LIFECYCLE) {
        None => Ok(Lifecycle::default()),
        Some(AttributeValue::S(json)) => serde_json::from_str(json)
            .map_err(|e| bad(item, format!("lifecycle is not a lifecycle: {e}"))),
        Some(_) => Err(bad(item, "lifecycle is not a string".into())),
    }
}

fn opt_n<T: std::str::FromStr>(item: &Item, name: &str) -> Result<Option<T>, PortError> {
    match item.get(name) {
        None => Ok(None),
        Some(_) => req_n(item, name).map(Some),
    }
}

pub(crate) fn decode_release(item: &Item) -> Result<ReleaseRecord, PortError> {
    let status_raw = req_s(item, STATUS)?;
    let on_failure_raw = req_s(item, ON_FAILURE)?;
    let kind_raw = req_s(item, SOURCE_KIND)?;
    Ok(ReleaseRecord {
        release_id: release_id(item)?,
        owner: req_s(item, OWNER)?.to_owned(),
        status: ReleaseStatus::parse(status_raw)
            .ok_or_else(|| bad(item, format!("unknown release status {status_raw}")))?,
        requested_at: req_time(item, REQUESTED_AT)?,
        ended_at: opt_time(item, ENDED_AT)?,
        source: ReleaseSource {
            kind: SourceKind::parse(kind_raw)
                .ok_or_else(|| bad(item, format!("unknown sourceKind {kind_raw}")))?,
            location: get_s(item, SOURCE_LOCATION).map(str::to_owned),
        },
        requested_by: get_s(item, REQUESTED_BY).map(str::to_owned),
        manifest_hash: get_s(item, MANIFEST_HASH).map(str::to_owned),
        on_failure: OnFailure::parse(on_failure_raw)
            .ok_or_else(|| bad(item, format!("unknown onFailure {on_failure_raw}")))?,
        max_concurrency: req_n(item, MAX_CONCURRENCY)?,
        description: get_s(item, DESCRIPTION).map(str::to_owned),
        cause: get_s(item, CAUSE).map(str::to_owned),
        stop_requested: matches!(item.get(STOP_REQUESTED), Some(AttributeValue::Bool(true))),
        version: opt_n(item, VERSION)?.unwrap_or(0),
        lifecycle: decode_lifecycle(item)?,
    })
}

/// A new run item: NotStarted, attempt 1, no history, an empty outbox.
pub(crate) fn run_item(
    release_id: &ReleaseId,
    owner: &str,
    spec: &PipelineSpec,
    position: usize,
) -> Item {
    let mut item = Item::from([
        (PK.to_owned(), s(release_pk(release_id.as_str()))),
        (SK.to_owned(), s(run_sk(&spec.name))),
        (KIND.to_owned(), s("run")),
        (RELEASE_ID.to_owned(), s(release_id.as_str())),
        (OWNER.to_owned(), s(owner)),
        (PIPELINE.to_owned(), s(&spec.name)),
        (WAVE.to_owned(), n(spec.wave)),
        (POSITION.to_owned(), n(position)),
        (TIMEOUT_MINUTES.to_owned(), n(spec.timeout_minutes)),
        (STATUS.to_owned(), s(RunStatus::NotStarted.as_str())),
        (RANK.to_owned(), n(RunStatus::NotStarted.rank())),
        (HISTORY.to_owned(), AttributeValue::L(Vec::new())),
        (ATTEMPT.to_owned(), n(1)),
        (OUTBOX.to_owned(), AttributeValue::M(HashMap::new())),
    ]);
    if !spec.variables.is_empty() {
        let vars = spec
            .variables
            .iter()
            .map(|(k, v)| (k.clone(), s(v)))
            .collect();
        item.insert(VARIABLES.to_owned(), AttributeValue::M(vars));
    }
    if !spec.source_revisions.is_empty() {
        let revisions = spec
            .source_revisions
            .iter()
            .map(|r| {
                AttributeValue::M(HashMap::from([
                    ("actionName".to_owned(), s(&r.action_name)),
                    ("revisionType".to_owned(), s(&r.revision_type)),
                    ("revisionValue".to_owned(), s(&r.revision_value)),
                ]))
            })
            .collect();
        item.insert(SOURCE_REVISIONS.to_owned(), AttributeValue::L(revisions));
    }
    item
}

/// The run's position in its manifest (runs are listed in manifest order).
pub(crate) fn run_position(item: &Item) -> u64 {
    req_n(item, POSITION).unwrap_or(u64::MAX)
}

pub(crate) fn decode_run(item: &Item) -> Result<RunRecord, PortError> {
    let variables = match item.get(VARIABLES) {
        None => BTreeMap::new(),
        Some(AttributeValue::M(m)) => m
            .iter()
            .map(|(k, v)| match v {
                AttributeValue::S(v) => Ok((k.clone(), v.clone())),
                _ => Err(bad(item, format!("variable {k} is not a string"))),
            })
            .collect::<Result<_, _>>()?,
        Some(_) => return Err(bad(item, "variables is not a map".into())),
    };
    let source_revisions = match item.get(SOURCE_REVISIONS) {
        None => Vec::new(),
        Some(AttributeValue::L(list)) => list
            .iter()
            .map(|v| match v {
                AttributeValue::M(m) => Ok(SourceRevision {
                    action_name: req_s(m, "actionName")?.to_owned(),
                    revision_type: req_s(m, "revisionType")?.to_owned(),
                    revision_value: req_s(m, "revisionValue")?.to_owned(),
                }),
                _ => Err(bad(item, "a source revision is not a map".into())),
            })
            .collect::<Result<_, _>>()?,
        Some(_) => return Err(bad(item, "sourceRevisions is not a list".into())),
    };
    let history = match item.get(HISTORY) {
        None => Vec::new(),
        Some(AttributeValue::L(list)) => list
            .iter()
            .map(|v| match v {
                AttributeValue::M(m) => Ok(HistoryEntry {
                    status: run_status(item, req_s(m, STATUS)?)?,
                    at: req_time(m, "at")?,
                    // Entries recorded before attempts were: attempt 1, no execution id.
                    attempt: opt_n(m, ATTEMPT)?.unwrap_or(1),
                    execution_id: get_s(m, EXECUTION_ID).map(str::to_owned),
                }),
                _ => Err(bad(item, "a history entry is not a map".into())),
            })
            .collect::<Result<_, _>>()?,
        Some(_) => return Err(bad(item, "history is not a list".into())),
    };
    Ok(RunRecord {
        release_id: release_id(item)?,
        spec: PipelineSpec {
            name: req_s(item, PIPELINE)?.to_owned(),
            wave: req_n(item, WAVE)?,
            variables,
            source_revisions,
            timeout_minutes: req_n(item, TIMEOUT_MINUTES)?,
        },
        status: run_status(item, req_s(item, STATUS)?)?,
        execution_id: get_s(item, EXECUTION_ID).map(str::to_owned),
        started_at: opt_time(item, STARTED_AT)?,
        ended_at: opt_time(item, ENDED_AT)?,
        task_token: get_s(item, TASK_TOKEN).map(str::to_owned),
        history,
        stop_abandoned: matches!(item.get(STOP_ABANDONED), Some(AttributeValue::Bool(true))),
        cause: get_s(item, RUN_CAUSE).map(str::to_owned),
        attempt: opt_n(item, ATTEMPT)?.unwrap_or(1),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use rm_core::events::EventDraft;
    use rm_core::lifecycle::{AttemptRecord, WaveRecord, WaveStatus};
    use time::macros::datetime;

    #[test]
    fn run_items_round_trip() {
        let id = ReleaseId::parse("5.10").unwrap();
        let mut spec = PipelineSpec::new("svc-a", 2);
        spec.variables.insert("env".into(), "prod".into());
        spec.source_revisions.push(SourceRevision {
            action_name: "Source".into(),
            revision_type: "COMMIT_ID".into(),
            revision_value: "abc".into(),
        });
        let mut item = run_item(&id, "exec-1", &spec, 3);
        let at = datetime!(2024-05-01 10:00:00 UTC);
        let entry = HistoryEntry {
            status: RunStatus::InProgress,
            at,
            attempt: 2,
            execution_id: Some("e-1".into()),
        };
        item.insert(HISTORY.into(), history_entry(&entry));
        item.insert(ATTEMPT.into(), n(2));
        let run = decode_run(&item).unwrap();
        assert_eq!(run.spec, spec);
        assert_eq!(run.status, RunStatus::NotStarted);
        assert_eq!(run.history, vec![entry]);
        assert_eq!(run.attempt, 2);
        assert_eq!(run_position(&item), 3);
        assert!(has_outbox(&item), "a new run has an empty outbox");
        assert!(outbox_events(&item).is_empty());

        // Written before attempts were: attempt 1, entries of attempt 1 without an execution.
        let mut old = run_item(&id, "exec-1", &spec, 0);
        old.remove(ATTEMPT);
        old.remove(OUTBOX);
        old.insert(
            HISTORY.into(),
            AttributeValue::L(vec![AttributeValue::M(HashMap::from([
                (STATUS.to_owned(), s("Failed")),
                ("at".to_owned(), ts(at)),
            ]))]),
        );
        let run = decode_run(&old).unwrap();
        assert_eq!(run.attempt, 1);
        assert_eq!(
            run.history,
            vec![HistoryEntry {
                status: RunStatus::Failed,
                at,
                attempt: 1,
                execution_id: None,
            }]
        );
        assert!(!has_outbox(&old));
    }

    fn record() -> ReleaseRecord {
        ReleaseRecord {
            release_id: ReleaseId::parse("r-1").unwrap(),
            owner: "exec".into(),
            status: ReleaseStatus::Failed,
            requested_at: datetime!(2024-05-01 10:00:00 UTC),
            ended_at: Some(datetime!(2024-05-01 11:00:00.5 UTC)),
            source: ReleaseSource {
                kind: SourceKind::S3,
                location: Some("s3://b/k".into()),
            },
            requested_by: Some("account:123456789012 via s3://b/k".into()),
            manifest_hash: Some("sha256:00ff".into()),
            on_failure: OnFailure::Continue,
            max_concurrency: 7,
            description: Some("d".into()),
            cause: Some("c".into()),
            stop_requested: true,
            version: 3,
            lifecycle: Lifecycle {
                attempt: 2,
                attempts: vec![AttemptRecord {
                    attempt: 2,
                    execution: "exec".into(),
                    requested_at: datetime!(2024-05-01 10:30:00.25 UTC),
                    requested_by: Some("alice".into()),
                    ended_at: None,
                    status: ReleaseStatus::Failed,
                    cause: None,
                }],
                waves: vec![WaveRecord {
                    wave: 1,
                    status: WaveStatus::Failed,
                    started_at: Some(datetime!(2024-05-01 10:31:00 UTC)),
                    ended_at: None,
                }],
                approval_waves: vec![2],
                ..Lifecycle::default()
            },
        }
    }

    #[test]
    fn release_items_round_trip() {
        let record = record();
        let item = release_item(&record, 2, &[]).unwrap();
        assert!(is_release_item(&item));
        assert_eq!(
            get_s(&item, WAITING_PK),
            Some("FAILED"),
            "a release is indexed under its status"
        );
        assert_eq!(get_s(&item, WAITING_SK), Some(list_order(&record).as_str()));
        assert_eq!(
            get_s(&item, OUTBOX_PK),
            None,
            "no events: not in the outbox"
        );
        let running = ReleaseRecord {
            status: ReleaseStatus::Running,
            ended_at: None,
            ..record.clone()
        };
        let running_item = release_item(&running, 2, &[]).unwrap();
        assert_eq!(get_s(&running_item, WAITING_PK), Some("RUNNING"));
        assert_eq!(
            get_s(&running_item, WAITING_SK),
            Some("01714557600000000000#r-1")
        );
        assert_eq!(decode_release(&running_item).unwrap(), running);
        assert_eq!(get_s(&item, "requestedBy"), record.requested_by.as_deref());
        assert_eq!(get_s(&item, "manifestHash"), Some("sha256:00ff"));
        assert_eq!(get_s(&item, "sourceKind"), Some("s3"));
        assert_eq!(decode_release(&item).unwrap(), record);

        // Every source kind round-trips; an unknown one is a malformed item.
        for kind in SourceKind::ALL {
            let r = ReleaseRecord {
                source: ReleaseSource {
                    kind,
                    location: None,
                },
                ..record.clone()
            };
            assert_eq!(
                decode_release(&release_item(&r, 0, &[]).unwrap()).unwrap(),
                r
            );
        }
        let mut odd = item.clone();
        odd.insert("sourceKind".into(), s("ftp"));
        assert!(decode_release(&odd).is_err());
        let mut odd = item.clone();
        odd.insert(LIFECYCLE.into(), s("{\"not\": \"a lifecycle\"}"));
        assert!(decode_release(&odd).is_err());

        // An item written before requestedBy, manifestHash, version and lifecycle reads with
        // none of them: version 0, the default lifecycle.
        let mut old = item;
        for name in [
            "requestedBy",
            "manifestHash",
            VERSION,
            LIFECYCLE,
            SEQ,
            OUTBOX,
        ] {
            old.remove(name);
        }
        let decoded = decode_release(&old).unwrap();
        assert_eq!(decoded.requested_by, None);
        assert_eq!(decoded.manifest_hash, None);
        assert_eq!(decoded.version, 0);
        assert_eq!(decoded.lifecycle, Lifecycle::default());
    }

    #[test]
    fn the_claims_events_wait_in_the_release_items_outbox() {
        let r = ReleaseRecord {
            status: ReleaseStatus::Running,
            ended_at: None,
            ..record()
        };
        let events = EventDraft::stamp(
            vec![
                EventDraft::release_status(1, ReleaseStatus::Running, None, r.requested_at),
                EventDraft::release_status(1, ReleaseStatus::Running, None, r.requested_at),
            ],
            &r.release_id,
            9,
        );
        let item = release_item(&r, 1, &events).unwrap();
        assert_eq!(item.get(SEQ), Some(&n(10)));
        assert_eq!(get_s(&item, OUTBOX_PK), Some(outbox_shard("r-1").as_str()));
        let stored: Vec<(String, ReleaseEvent)> = outbox_events(&item)
            .into_iter()
            .map(|(k, e)| (k, e.unwrap()))
            .collect();
        assert_eq!(
            stored,
            vec![
                (outbox_key(9), events[0].clone()),
                (outbox_key(10), events[1].clone())
            ],
            "in sequence order, as written"
        );
        let mut odd = item;
        if let Some(AttributeValue::M(m)) = odd.get_mut(OUTBOX) {
            m.insert(outbox_key(11), s("not json"));
        }
        let read = outbox_events(&odd);
        assert_eq!(read.len(), 3);
        assert!(read[2].1.is_err(), "a bad entry is an error of its own");
    }
}

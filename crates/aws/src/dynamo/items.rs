//! Release and run items: encoding to and decoding from DynamoDB attribute maps.

use super::schema::{
    release_pk, run_sk, sortable_time, PK, RELEASE_SK, RUNNING_VALUE, SK, WAITING_PK, WAITING_SK,
};
use aws_sdk_dynamodb::types::AttributeValue;
use rm_core::error::PortError;
use rm_core::manifest::{OnFailure, PipelineSpec, SourceRevision};
use rm_core::release::{
    HistoryEntry, ReleaseId, ReleaseRecord, ReleaseSource, ReleaseStatus, RunRecord, RunStatus,
    SourceKind,
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

/// One history entry, as appended to a run's `history` list.
pub(crate) fn history_entry(status: RunStatus, at: OffsetDateTime) -> AttributeValue {
    AttributeValue::L(vec![AttributeValue::M(HashMap::from([
        (STATUS.to_owned(), s(status.as_str())),
        ("at".to_owned(), ts(at)),
    ]))])
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

fn req_s<'a>(item: &'a Item, name: &str) -> Result<&'a str, PortError> {
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

fn req_time(item: &Item, name: &str) -> Result<OffsetDateTime, PortError> {
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

pub(crate) fn release_item(r: &ReleaseRecord, pipeline_count: usize) -> Item {
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
    ]);
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
    if r.status == ReleaseStatus::Running {
        // Listed by running_releases through the waiting index until finish removes them.
        item.insert(WAITING_PK.to_owned(), s(RUNNING_VALUE));
        item.insert(WAITING_SK.to_owned(), s(sortable_time(r.requested_at)));
    }
    item
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
    })
}

/// A new run item: NotStarted, no history.
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
    })
}

#[cfg(test)]
mod tests {
    use super::*;
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
        item.insert(HISTORY.into(), history_entry(RunStatus::InProgress, at));
        let run = decode_run(&item).unwrap();
        assert_eq!(run.spec, spec);
        assert_eq!(run.status, RunStatus::NotStarted);
        assert_eq!(run.history.len(), 1);
        assert_eq!(run.history[0].at, at);
        assert_eq!(run_position(&item), 3);
    }

    #[test]
    fn release_items_round_trip() {
        let record = ReleaseRecord {
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
        };
        let item = release_item(&record, 2);
        assert!(is_release_item(&item));
        assert_eq!(
            get_s(&item, WAITING_PK),
            None,
            "an ended release is not indexed"
        );
        let running = ReleaseRecord {
            status: ReleaseStatus::Running,
            ended_at: None,
            ..record.clone()
        };
        let running_item = release_item(&running, 2);
        assert_eq!(get_s(&running_item, WAITING_PK), Some("RUNNING"));
        assert_eq!(
            get_s(&running_item, WAITING_SK),
            Some("2024-05-01T10:00:00.000000000Z")
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
            assert_eq!(decode_release(&release_item(&r, 0)).unwrap(), r);
        }
        let mut odd = item.clone();
        odd.insert("sourceKind".into(), s("ftp"));
        assert!(decode_release(&odd).is_err());

        // An item written before requestedBy and manifestHash reads with neither.
        let mut old = item;
        old.remove("requestedBy");
        old.remove("manifestHash");
        let decoded = decode_release(&old).unwrap();
        assert_eq!(decoded.requested_by, None);
        assert_eq!(decoded.manifest_hash, None);
    }
}

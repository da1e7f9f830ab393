//! The embedded [`ReleaseStore`]: one SQLite file under the state directory.
//!
//! It keeps DynamoDB's semantics, not just its data: the release id is claimed by one
//! conditional write (`attribute_not_exists(pk) OR owner = :me`), every later write to a release
//! is conditional on its owner, a run's status never moves backwards, a run is found by its
//! CodePipeline execution id through a row keyed by that id, and the runs that carry a task token
//! form the sweep's index. Each port call is one SQLite transaction (`BEGIN IMMEDIATE`), so two
//! local processes sharing a state directory see the same conditions hold.
//!
//! Issue 11: the release row carries its lifecycle (a JSON document, as DynamoDB keeps it on
//! the release item), a version every later write is conditional on, and the counter of its
//! event sequence numbers; a change's events go to the `outbox` table in the same transaction
//! as the change. A run has an attempt, and each history entry the attempt and execution it
//! was recorded in.

use rm_core::error::PortError;
use rm_core::events::ReleaseEvent;
use rm_core::gate::Halt;
use rm_core::lifecycle::{AttemptRecord, Lifecycle};
use rm_core::manifest::{PipelineSpec, SourceRevision};
use rm_core::ports::{Claim, ListQuery, NewRelease, PortResult, ReleasePage, ReleaseStore, RunKey};
use rm_core::release::{
    apply_status, list_order, page_of, reset_for_attempt, HistoryEntry, ReleaseId, ReleaseRecord,
    ReleaseSource, ReleaseStatus, RunRecord, RunStatus, SourceKind, StoredRelease,
};
use rm_core::OnFailure;
use rusqlite::{params, Connection, OptionalExtension, Row, Transaction, TransactionBehavior};
use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;
use time::OffsetDateTime;

/// The file name of the store inside a state directory.
pub const STORE_FILE: &str = "releases.sqlite3";

const SCHEMA: &str = r#"
CREATE TABLE IF NOT EXISTS releases (
    release_id      TEXT PRIMARY KEY,
    owner           TEXT NOT NULL,
    status          TEXT NOT NULL,
    requested_at    INTEGER NOT NULL,
    ended_at        INTEGER,
    source_kind     TEXT NOT NULL,
    source_location TEXT,
    on_failure      TEXT NOT NULL,
    max_concurrency INTEGER NOT NULL,
    description     TEXT,
    cause           TEXT,
    stop_requested  INTEGER NOT NULL DEFAULT 0,
    requested_by    TEXT,
    manifest_hash   TEXT,
    lifecycle       TEXT,
    version         INTEGER NOT NULL DEFAULT 0,
    last_sequence   INTEGER NOT NULL DEFAULT 0
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS runs (
    release_id       TEXT NOT NULL,
    pipeline         TEXT NOT NULL,
    position         INTEGER NOT NULL,
    wave             INTEGER NOT NULL,
    timeout_minutes  INTEGER NOT NULL,
    variables        TEXT,
    source_revisions TEXT,
    status           TEXT NOT NULL,
    execution_id     TEXT,
    started_at       INTEGER,
    ended_at         INTEGER,
    task_token       TEXT,
    token_at         INTEGER,
    waiting_since    INTEGER,
    attempt          INTEGER NOT NULL DEFAULT 1,
    PRIMARY KEY (release_id, pipeline)
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS runs_waiting ON runs (task_token) WHERE task_token IS NOT NULL;
CREATE INDEX IF NOT EXISTS releases_running ON releases (requested_at)
    WHERE status = 'RUNNING';
CREATE TABLE IF NOT EXISTS executions (
    execution_id TEXT PRIMARY KEY,
    release_id   TEXT NOT NULL,
    pipeline     TEXT NOT NULL
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS runs_stop_abandoned (
    release_id TEXT NOT NULL,
    pipeline   TEXT NOT NULL,
    PRIMARY KEY (release_id, pipeline)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS runs_cause (
    release_id TEXT NOT NULL,
    pipeline   TEXT NOT NULL,
    cause      TEXT NOT NULL,
    PRIMARY KEY (release_id, pipeline)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS outbox (
    release_id  TEXT NOT NULL,
    sequence    INTEGER NOT NULL,
    detail_type TEXT NOT NULL,
    time        INTEGER NOT NULL,
    detail      TEXT NOT NULL,
    PRIMARY KEY (release_id, sequence)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS halt (
    id   INTEGER PRIMARY KEY CHECK (id = 1),
    json TEXT NOT NULL
);
"#;

/// The columns of `run_history` (issue 11: each entry's attempt and execution). A status is
/// recorded once per attempt: a retried run goes through the same statuses again.
const HISTORY_TABLE: &str = "(
    seq          INTEGER PRIMARY KEY AUTOINCREMENT,
    release_id   TEXT NOT NULL,
    pipeline     TEXT NOT NULL,
    status       TEXT NOT NULL,
    at           INTEGER NOT NULL,
    attempt      INTEGER NOT NULL DEFAULT 1,
    execution_id TEXT,
    UNIQUE (release_id, pipeline, attempt, status)
)";

/// Rebuilds a `run_history` made before attempts (its `UNIQUE (release_id, pipeline,
/// status)` would refuse a retried run's statuses, and SQLite cannot alter a constraint): its
/// rows are copied as attempt 1, with the run's execution id. That is exact: before attempts a
/// run had at most one execution, and every entry of a started run was recorded at or after
/// its start (a run that moved before a start can no longer be started).
const REBUILD_HISTORY: &str = "
    INSERT INTO run_history_v2 (seq, release_id, pipeline, status, at, attempt, execution_id)
        SELECT h.seq, h.release_id, h.pipeline, h.status, h.at, 1,
               (SELECT r.execution_id FROM runs r
                WHERE r.release_id = h.release_id AND r.pipeline = h.pipeline)
        FROM run_history h;
    DROP TABLE run_history;
    ALTER TABLE run_history_v2 RENAME TO run_history;";

/// Columns added to `releases` after its first version, with their types: a state directory
/// made by an older release-machine gets them (`ALTER TABLE .. ADD COLUMN`, NULL or the
/// default in its old rows) when the store opens, so `status` still reads its releases. An old
/// row's NULL lifecycle reads as its one attempt ([`legacy_lifecycle`]); its version and event
/// counter start at 0.
const ADDED_RELEASE_COLUMNS: &[(&str, &str)] = &[
    ("requested_by", "TEXT"),
    ("manifest_hash", "TEXT"),
    ("lifecycle", "TEXT"),
    ("version", "INTEGER NOT NULL DEFAULT 0"),
    ("last_sequence", "INTEGER NOT NULL DEFAULT 0"),
];

/// Columns added to `runs` after its first version (issue 9): `token_at`, when the run's
/// newest task token was stored (kept when the token is cleared, so a late older token is
/// refused), and `waiting_since`, the sweep's order of a waiting run. An older store's runs
/// get them as NULL: no token time (any token may replace theirs) and listed first. Issue 11
/// adds the run's `attempt`: 1 for the runs of an older store.
const ADDED_RUN_COLUMNS: &[(&str, &str)] = &[
    ("token_at", "INTEGER"),
    ("waiting_since", "INTEGER"),
    ("attempt", "INTEGER NOT NULL DEFAULT 1"),
];

/// The sweep's index, created once the columns above exist.
const WAITING_INDEX: &str = "CREATE INDEX IF NOT EXISTS runs_waiting_since \
                             ON runs (waiting_since) WHERE task_token IS NOT NULL";

/// `stopAbandoned` lives in its own table (a row per abandoned stop), so a state directory
/// made before it needs no migration of `runs`.
const RUN_COLUMNS: &str = "pipeline, wave, timeout_minutes, variables, source_revisions, status, \
                           execution_id, started_at, ended_at, task_token, release_id, \
                           EXISTS (SELECT 1 FROM runs_stop_abandoned a \
                                   WHERE a.release_id = runs.release_id \
                                   AND a.pipeline = runs.pipeline), \
                           (SELECT c.cause FROM runs_cause c \
                            WHERE c.release_id = runs.release_id \
                            AND c.pipeline = runs.pipeline), \
                           runs.attempt";

/// A run's status change that was actually applied (for live progress).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RunChange {
    pub release_id: String,
    pub pipeline: String,
    pub wave: u32,
    pub status: RunStatus,
    pub at: OffsetDateTime,
    /// The run's execution after the change (a Skipped run's: the one it matched).
    pub execution_id: Option<String>,
}

type ChangeObserver = Arc<dyn Fn(&RunChange) + Send + Sync>;

/// A summary of a stored release, for listings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReleaseSummary {
    pub release_id: String,
    pub status: ReleaseStatus,
    pub requested_at: OffsetDateTime,
}

/// The SQLite release store.
pub struct SqliteStore {
    conn: Mutex<Connection>,
    path: PathBuf,
    observer: Option<ChangeObserver>,
}

fn sql_err(e: rusqlite::Error) -> PortError {
    match e.sqlite_error_code() {
        Some(rusqlite::ErrorCode::DatabaseBusy | rusqlite::ErrorCode::DatabaseLocked) => {
            PortError::Transient(format!("the local store is busy: {e}"))
        }
        _ => PortError::Other(format!("local store: {e}")),
    }
}

fn nanos(t: OffsetDateTime) -> i64 {
    // SQLite integers are i64: nanoseconds since 1970 fit until the year 2262.
    t.unix_timestamp_nanos() as i64
}

/// A version or sequence number as an SQLite integer (i64; they never come near its end).
fn int(n: u64) -> i64 {
    i64::try_from(n).unwrap_or(i64::MAX)
}

fn uint(n: i64) -> rusqlite::Result<u64> {
    u64::try_from(n).map_err(|e| {
        rusqlite::Error::FromSqlConversionFailure(0, rusqlite::types::Type::Integer, Box::new(e))
    })
}

fn from_nanos(n: i64) -> rusqlite::Result<OffsetDateTime> {
    OffsetDateTime::from_unix_timestamp_nanos(i128::from(n)).map_err(|e| {
        rusqlite::Error::FromSqlConversionFailure(0, rusqlite::types::Type::Integer, Box::new(e))
    })
}

fn conversion(msg: String) -> rusqlite::Error {
    rusqlite::Error::FromSqlConversionFailure(
        0,
        rusqlite::types::Type::Text,
        Box::<dyn std::error::Error + Send + Sync>::from(msg),
    )
}

fn run_status(s: &str) -> rusqlite::Result<RunStatus> {
    RunStatus::parse(s).ok_or_else(|| conversion(format!("unknown run status {s:?}")))
}

/// A run row without its history.
fn run_from_row(row: &Row<'_>) -> rusqlite::Result<RunRecord> {
    let variables: Option<String> = row.get(3)?;
    let revisions: Option<String> = row.get(4)?;
    let variables: BTreeMap<String, String> = match variables {
        Some(v) => serde_json::from_str(&v).map_err(|e| conversion(e.to_string()))?,
        None => BTreeMap::new(),
    };
    let source_revisions: Vec<SourceRevision> = match revisions {
        Some(v) => serde_json::from_str(&v).map_err(|e| conversion(e.to_string()))?,
        None => Vec::new(),
    };
    let release_id: String = row.get(10)?;
    Ok(RunRecord {
        release_id: ReleaseId::parse(&release_id).map_err(conversion)?,
        spec: PipelineSpec {
            name: row.get(0)?,
            wave: row.get(1)?,
            variables,
            source_revisions,
            timeout_minutes: row.get(2)?,
        },
        status: run_status(&row.get::<_, String>(5)?)?,
        execution_id: row.get(6)?,
        started_at: row.get::<_, Option<i64>>(7)?.map(from_nanos).transpose()?,
        ended_at: row.get::<_, Option<i64>>(8)?.map(from_nanos).transpose()?,
        task_token: row.get(9)?,
        history: Vec::new(),
        stop_abandoned: row.get(11)?,
        cause: row.get(12)?,
        attempt: row.get(13)?,
    })
}

fn release_from_row(row: &Row<'_>) -> rusqlite::Result<ReleaseRecord> {
    let id: String = row.get(0)?;
    let status: String = row.get(2)?;
    let on_failure: String = row.get(7)?;
    let kind: String = row.get(5)?;
    let lifecycle: Option<String> = row.get(14)?;
    let mut record = ReleaseRecord {
        release_id: ReleaseId::parse(&id).map_err(conversion)?,
        owner: row.get(1)?,
        status: ReleaseStatus::parse(&status)
            .ok_or_else(|| conversion(format!("unknown release status {status:?}")))?,
        requested_at: from_nanos(row.get(3)?)?,
        ended_at: row.get::<_, Option<i64>>(4)?.map(from_nanos).transpose()?,
        source: ReleaseSource {
            kind: SourceKind::parse(&kind)
                .ok_or_else(|| conversion(format!("unknown source kind {kind:?}")))?,
            location: row.get(6)?,
        },
        requested_by: row.get(12)?,
        manifest_hash: row.get(13)?,
        on_failure: OnFailure::parse(&on_failure)
            .ok_or_else(|| conversion(format!("unknown onFailure {on_failure:?}")))?,
        max_concurrency: row.get(8)?,
        description: row.get(9)?,
        cause: row.get(10)?,
        stop_requested: row.get::<_, i64>(11)? != 0,
        version: uint(row.get(15)?)?,
        lifecycle: Lifecycle::default(),
    };
    record.lifecycle = match lifecycle {
        Some(text) => serde_json::from_str(&text).map_err(|e| conversion(e.to_string()))?,
        None => legacy_lifecycle(&record),
    };
    Ok(record)
}

/// The lifecycle of a release stored before lifecycles were: its one attempt, as the release
/// row has it (no waves or approvals were recorded then).
fn legacy_lifecycle(r: &ReleaseRecord) -> Lifecycle {
    Lifecycle {
        attempts: vec![AttemptRecord {
            attempt: 1,
            execution: r.owner.clone(),
            requested_at: r.requested_at,
            requested_by: r.requested_by.clone(),
            ended_at: r.ended_at,
            status: r.status,
            cause: r.cause.clone(),
        }],
        ..Lifecycle::default()
    }
}

const RELEASE_COLUMNS: &str = "release_id, owner, status, requested_at, ended_at, source_kind, \
                               source_location, on_failure, max_concurrency, description, cause, \
                               stop_requested, requested_by, manifest_hash, lifecycle, version";

const HISTORY_COLUMNS: &str = "status, at, attempt, execution_id";

/// A history entry from [`HISTORY_COLUMNS`] starting at column `from`.
fn history_from_row(r: &Row<'_>, from: usize) -> rusqlite::Result<HistoryEntry> {
    Ok(HistoryEntry {
        status: run_status(&r.get::<_, String>(from)?)?,
        at: from_nanos(r.get(from + 1)?)?,
        attempt: r.get(from + 2)?,
        execution_id: r.get(from + 3)?,
    })
}

fn load_release(tx: &Connection, id: &str) -> rusqlite::Result<Option<ReleaseRecord>> {
    tx.prepare_cached(&format!(
        "SELECT {RELEASE_COLUMNS} FROM releases WHERE release_id = ?1"
    ))?
    .query_row([id], release_from_row)
    .optional()
}

fn history_of(tx: &Connection, id: &str, pipeline: &str) -> rusqlite::Result<Vec<HistoryEntry>> {
    let mut stmt = tx.prepare_cached(&format!(
        "SELECT {HISTORY_COLUMNS} FROM run_history \
         WHERE release_id = ?1 AND pipeline = ?2 ORDER BY seq"
    ))?;
    let rows = stmt.query_map([id, pipeline], |r| history_from_row(r, 0))?;
    rows.collect()
}

fn load_run(tx: &Connection, id: &str, pipeline: &str) -> rusqlite::Result<Option<RunRecord>> {
    let run = tx
        .prepare_cached(&format!(
            "SELECT {RUN_COLUMNS} FROM runs WHERE release_id = ?1 AND pipeline = ?2"
        ))?
        .query_row([id, pipeline], run_from_row)
        .optional()?;
    let Some(mut run) = run else { return Ok(None) };
    run.history = history_of(tx, id, pipeline)?;
    Ok(Some(run))
}

fn load_runs(tx: &Connection, id: &str) -> rusqlite::Result<Vec<RunRecord>> {
    let mut runs: Vec<RunRecord> = tx
        .prepare_cached(&format!(
            "SELECT {RUN_COLUMNS} FROM runs WHERE release_id = ?1 ORDER BY position"
        ))?
        .query_map([id], run_from_row)?
        .collect::<rusqlite::Result<_>>()?;
    let index: HashMap<String, usize> = runs
        .iter()
        .enumerate()
        .map(|(i, r)| (r.spec.name.clone(), i))
        .collect();
    let mut stmt = tx.prepare_cached(&format!(
        "SELECT pipeline, {HISTORY_COLUMNS} FROM run_history WHERE release_id = ?1 ORDER BY seq"
    ))?;
    let mut rows = stmt.query([id])?;
    while let Some(r) = rows.next()? {
        let pipeline: String = r.get(0)?;
        if let Some(&i) = index.get(&pipeline) {
            runs[i].history.push(history_from_row(r, 1)?);
        }
    }
    Ok(runs)
}

/// Checks that `owner` holds the release: NotFound or ConditionFailed otherwise.
fn require_owner(tx: &Connection, id: &str, owner: &str) -> PortResult<()> {
    let held: Option<String> = tx
        .prepare_cached("SELECT owner FROM releases WHERE release_id = ?1")
        .and_then(|mut s| s.query_row([id], |r| r.get(0)).optional())
        .map_err(sql_err)?;
    match held {
        None => Err(PortError::NotFound(format!("release {id} is not recorded"))),
        Some(o) if o == owner => Ok(()),
        Some(o) => Err(PortError::ConditionFailed(format!(
            "release {id} is owned by execution {o}, not {owner}"
        ))),
    }
}

/// A run row's key as stored, for the log of a row that does not decode.
fn row_key(row: &Row<'_>) -> (String, String) {
    let text = |i: usize| {
        row.get::<_, String>(i)
            .unwrap_or_else(|e| format!("? ({e})"))
    };
    (text(10), text(0))
}

impl SqliteStore {
    /// Opens (creating it if needed) the store in `state_dir`.
    pub fn open_dir(state_dir: &Path) -> PortResult<SqliteStore> {
        std::fs::create_dir_all(state_dir).map_err(|e| {
            PortError::Other(format!(
                "cannot create the state directory {}: {e}",
                state_dir.display()
            ))
        })?;
        Self::open(&state_dir.join(STORE_FILE))
    }

    /// Opens (creating it if needed) the store file at `path`.
    pub fn open(path: &Path) -> PortResult<SqliteStore> {
        let mut conn = Connection::open(path).map_err(|e| {
            PortError::Other(format!(
                "cannot open the local store {}: {e}",
                path.display()
            ))
        })?;
        conn.busy_timeout(Duration::from_secs(10))
            .map_err(sql_err)?;
        // WAL and synchronous=NORMAL: a commit is an append without fsync, so the thousands of
        // small transactions of a 500-pipeline release stay fast; still durable across crashes
        // of this process.
        conn.pragma_update(None, "journal_mode", "WAL")
            .map_err(sql_err)?;
        conn.pragma_update(None, "synchronous", "NORMAL")
            .map_err(sql_err)?;
        let damaged = |e: rusqlite::Error| {
            PortError::Other(format!(
                "the local store {} is not a release-machine store or is damaged: {e}",
                path.display()
            ))
        };
        migrate(&mut conn).map_err(damaged)?;
        Ok(SqliteStore {
            conn: Mutex::new(conn),
            path: path.to_owned(),
            observer: None,
        })
    }

    /// Calls `observer` for every run status change applied (starts included).
    pub fn with_observer(mut self, observer: impl Fn(&RunChange) + Send + Sync + 'static) -> Self {
        self.observer = Some(Arc::new(observer));
        self
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    fn lock(&self) -> MutexGuard<'_, Connection> {
        // The connection stays valid if a holder panicked; transactions roll back on drop.
        self.conn.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn write<T>(&self, f: impl FnOnce(&Transaction<'_>) -> PortResult<T>) -> PortResult<T> {
        let mut conn = self.lock();
        let tx = conn
            .transaction_with_behavior(TransactionBehavior::Immediate)
            .map_err(sql_err)?;
        let out = f(&tx)?;
        tx.commit().map_err(sql_err)?;
        Ok(out)
    }

    /// Records a change of a run decided by `change` on the run as stored, inside one write (its
    /// history entry, its progress, `events` in the outbox), and tells the observer. `change`
    /// answers whether it changed the run; the run as it is after, `None` if unknown.
    fn record_change(
        &self,
        key: &RunKey,
        status: RunStatus,
        at: OffsetDateTime,
        events: &[ReleaseEvent],
        change: impl FnOnce(&mut RunRecord) -> bool,
    ) -> PortResult<Option<RunRecord>> {
        let id = key.release_id.as_str();
        let pipeline = key.pipeline.as_str();
        let result = self.write(|tx| {
            let Some(mut run) = load_run(tx, id, pipeline).map_err(sql_err)? else {
                return Ok(None);
            };
            if !change(&mut run) {
                return Ok(Some((run, false)));
            }
            write_progress(tx, &run)?;
            append_history(tx, &run)?;
            enqueue(tx, events)?;
            Ok(Some((run, true)))
        })?;
        Ok(result.map(|(run, changed)| {
            if changed {
                self.notify(&run, status, at);
            }
            run
        }))
    }

    fn notify(&self, run: &RunRecord, status: RunStatus, at: OffsetDateTime) {
        if let Some(observer) = &self.observer {
            observer(&RunChange {
                release_id: run.release_id.to_string(),
                pipeline: run.spec.name.clone(),
                wave: run.spec.wave,
                status,
                at,
                execution_id: run.execution_id.clone(),
            });
        }
    }

    /// Deletes everything recorded about a release (the CLI's `run --fresh`). True if it existed.
    pub fn forget(&self, release_id: &ReleaseId) -> PortResult<bool> {
        self.write(|tx| delete_release(tx, release_id.as_str()))
    }

    /// Every stored release, newest first.
    pub fn list(&self) -> PortResult<Vec<ReleaseSummary>> {
        let conn = self.lock();
        let mut stmt = conn
            .prepare(
                "SELECT release_id, status, requested_at FROM releases ORDER BY requested_at DESC",
            )
            .map_err(sql_err)?;
        let rows = stmt
            .query_map([], |r| {
                let status: String = r.get(1)?;
                Ok(ReleaseSummary {
                    release_id: r.get(0)?,
                    status: ReleaseStatus::parse(&status)
                        .ok_or_else(|| conversion(format!("unknown release status {status:?}")))?,
                    requested_at: from_nanos(r.get(2)?)?,
                })
            })
            .map_err(sql_err)?;
        rows.collect::<rusqlite::Result<_>>().map_err(sql_err)
    }
}

/// Creates the tables of a new store, or brings an older one up to date, in one transaction:
/// two processes opening one old state directory at once migrate it once.
fn migrate(conn: &mut Connection) -> rusqlite::Result<()> {
    let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
    tx.execute_batch(SCHEMA)?;
    add_missing_columns(&tx)?;
    migrate_history(&tx)?;
    tx.commit()
}

fn columns_of(conn: &Connection, table: &str) -> rusqlite::Result<Vec<String>> {
    conn.prepare(&format!("SELECT name FROM pragma_table_info('{table}')"))?
        .query_map([], |r| r.get(0))?
        .collect()
}

/// Adds the [`ADDED_RELEASE_COLUMNS`] and [`ADDED_RUN_COLUMNS`] an older store lacks, then
/// the index on them.
fn add_missing_columns(conn: &Connection) -> rusqlite::Result<()> {
    for (table, added) in [
        ("releases", ADDED_RELEASE_COLUMNS),
        ("runs", ADDED_RUN_COLUMNS),
    ] {
        let present = columns_of(conn, table)?;
        for &(name, ty) in added {
            if !present.iter().any(|p| p == name) {
                conn.execute_batch(&format!("ALTER TABLE {table} ADD COLUMN {name} {ty}"))?;
            }
        }
    }
    conn.execute_batch(WAITING_INDEX)
}

/// Creates `run_history`, or rebuilds one made before attempts ([`REBUILD_HISTORY`]).
fn migrate_history(conn: &Connection) -> rusqlite::Result<()> {
    let present = columns_of(conn, "run_history")?;
    if present.is_empty() {
        return conn.execute_batch(&format!("CREATE TABLE run_history {HISTORY_TABLE}"));
    }
    if present.iter().any(|c| c == "attempt") {
        return Ok(());
    }
    conn.execute_batch(&format!(
        "CREATE TABLE run_history_v2 {HISTORY_TABLE}; {REBUILD_HISTORY}"
    ))
}

/// Deletes a release, its runs, their history and indexes, and its unpublished events (its
/// event counter is a column of the release row).
fn delete_release(tx: &Connection, id: &str) -> PortResult<bool> {
    let run = |sql: &str| tx.execute(sql, [id]).map_err(sql_err);
    run("DELETE FROM run_history WHERE release_id = ?1")?;
    run("DELETE FROM runs_stop_abandoned WHERE release_id = ?1")?;
    run("DELETE FROM runs_cause WHERE release_id = ?1")?;
    run("DELETE FROM executions WHERE release_id = ?1")?;
    run("DELETE FROM outbox WHERE release_id = ?1")?;
    run("DELETE FROM runs WHERE release_id = ?1")?;
    Ok(run("DELETE FROM releases WHERE release_id = ?1")? > 0)
}

fn to_json<T: serde::Serialize>(v: &T) -> PortResult<String> {
    serde_json::to_string(v).map_err(|e| PortError::Other(format!("cannot encode: {e}")))
}

/// Puts a change's events in the outbox, inside the change's transaction: they are recorded
/// exactly when the change is. The same event written again replaces itself.
fn enqueue(tx: &Connection, events: &[ReleaseEvent]) -> PortResult<()> {
    let mut insert = tx
        .prepare_cached(
            "INSERT OR REPLACE INTO outbox (release_id, sequence, detail_type, time, detail) \
             VALUES (?1, ?2, ?3, ?4, ?5)",
        )
        .map_err(sql_err)?;
    for e in events {
        insert
            .execute(params![
                e.release_id.as_str(),
                int(e.sequence),
                e.detail_type,
                nanos(e.time),
                to_json(&e.detail)?,
            ])
            .map_err(sql_err)?;
    }
    Ok(())
}

fn event_from_row(row: &Row<'_>) -> rusqlite::Result<ReleaseEvent> {
    let release_id: String = row.get(0)?;
    let detail: String = row.get(4)?;
    Ok(ReleaseEvent {
        release_id: ReleaseId::parse(&release_id).map_err(conversion)?,
        sequence: uint(row.get(1)?)?,
        detail_type: row.get(2)?,
        time: from_nanos(row.get(3)?)?,
        detail: serde_json::from_str(&detail).map_err(|e| conversion(e.to_string()))?,
    })
}

/// Writes what [`apply_status`], a start and [`reset_for_attempt`] change on a run's row:
/// its status, attempt, execution and times.
fn write_progress(tx: &Connection, run: &RunRecord) -> PortResult<()> {
    tx.prepare_cached(
        "UPDATE runs SET status = ?3, attempt = ?4, execution_id = ?5, started_at = ?6, \
         ended_at = ?7 WHERE release_id = ?1 AND pipeline = ?2",
    )
    .and_then(|mut s| {
        s.execute(params![
            run.release_id.as_str(),
            run.spec.name,
            run.status.as_str(),
            run.attempt,
            run.execution_id,
            run.started_at.map(nanos),
            run.ended_at.map(nanos),
        ])
    })
    .map_err(sql_err)?;
    Ok(())
}

/// Appends the run's newest history entry (the one [`apply_status`] just added). A status is
/// recorded once per attempt.
fn append_history(tx: &Connection, run: &RunRecord) -> PortResult<()> {
    let Some(h) = run.history.last() else {
        return Ok(());
    };
    tx.prepare_cached(
        "INSERT OR IGNORE INTO run_history \
         (release_id, pipeline, status, at, attempt, execution_id) \
         VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
    )
    .and_then(|mut s| {
        s.execute(params![
            run.release_id.as_str(),
            run.spec.name,
            h.status.as_str(),
            nanos(h.at),
            h.attempt,
            h.execution_id,
        ])
    })
    .map_err(sql_err)?;
    Ok(())
}

/// Decodes release rows, skipping (and logging) those that do not decode: one bad row never
/// fails a whole list (issue 9, fault 8).
fn decodable_releases(
    conn: &Connection,
    what: &str,
    sql: &str,
    args: &[&dyn rusqlite::ToSql],
) -> PortResult<Vec<ReleaseRecord>> {
    let rows = conn
        .prepare_cached(sql)
        .and_then(|mut s| {
            s.query_map(args, |row| {
                Ok((row.get::<_, String>(0), release_from_row(row)))
            })?
            .collect::<rusqlite::Result<Vec<_>>>()
        })
        .map_err(sql_err)?;
    let mut releases = Vec::with_capacity(rows.len());
    for (id, release) in rows {
        match release {
            Ok(release) => releases.push(release),
            Err(error) => tracing::error!(
                release_id = %id.unwrap_or_else(|e| format!("? ({e})")),
                %error,
                "skipping {what} that cannot be decoded"
            ),
        }
    }
    Ok(releases)
}

#[async_trait::async_trait]
impl ReleaseStore for SqliteStore {
    async fn claim(&self, release: &NewRelease) -> PortResult<Claim> {
        let r = &release.record;
        let id = r.release_id.as_str();
        let lifecycle = to_json(&r.lifecycle)?;
        // The release's counter starts after the claim's events.
        let last_sequence = release.events.iter().map(|e| e.sequence).max().unwrap_or(0);
        self.write(|tx| {
            let inserted = tx
                .prepare_cached(&format!(
                    "INSERT INTO releases ({RELEASE_COLUMNS}, last_sequence) \
                     VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, \
                     ?16, ?17) \
                     ON CONFLICT (release_id) DO NOTHING"
                ))
                .and_then(|mut s| {
                    s.execute(params![
                        id,
                        r.owner,
                        r.status.as_str(),
                        nanos(r.requested_at),
                        r.ended_at.map(nanos),
                        r.source.kind.as_str(),
                        r.source.location,
                        r.on_failure.as_str(),
                        r.max_concurrency,
                        r.description,
                        r.cause,
                        i64::from(r.stop_requested),
                        r.requested_by,
                        r.manifest_hash,
                        lifecycle,
                        int(r.version),
                        int(last_sequence),
                    ])
                })
                .map_err(sql_err)?;
            if inserted == 1 {
                enqueue(tx, &release.events)?;
            } else {
                let owner: String = tx
                    .query_row(
                        "SELECT owner FROM releases WHERE release_id = ?1",
                        [id],
                        |row| row.get(0),
                    )
                    .map_err(sql_err)?;
                if owner != r.owner {
                    return Ok(Claim::Duplicate { owner });
                }
            }
            // A retry by the owner passes; its run items are written once.
            let mut insert_run = tx
                .prepare_cached(
                    "INSERT INTO runs (release_id, pipeline, position, wave, timeout_minutes, \
                     variables, source_revisions, status) \
                     VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, 'NotStarted') \
                     ON CONFLICT (release_id, pipeline) DO NOTHING",
                )
                .map_err(sql_err)?;
            for (position, spec) in release.manifest.pipelines.iter().enumerate() {
                let variables = if spec.variables.is_empty() {
                    None
                } else {
                    Some(to_json(&spec.variables)?)
                };
                let revisions = if spec.source_revisions.is_empty() {
                    None
                } else {
                    Some(to_json(&spec.source_revisions)?)
                };
                insert_run
                    .execute(params![
                        id,
                        spec.name,
                        position as i64,
                        spec.wave,
                        spec.timeout_minutes,
                        variables,
                        revisions,
                    ])
                    .map_err(sql_err)?;
            }
            Ok(Claim::Claimed)
        })
    }

    async fn release_claim(&self, release_id: &ReleaseId, owner: &str) -> PortResult<()> {
        let id = release_id.as_str();
        self.write(|tx| {
            require_owner(tx, id, owner)?;
            let started: i64 = tx
                .query_row(
                    "SELECT COUNT(*) FROM runs WHERE release_id = ?1 AND status <> 'NotStarted'",
                    [id],
                    |r| r.get(0),
                )
                .map_err(sql_err)?;
            if started > 0 {
                return Err(PortError::ConditionFailed(format!(
                    "release {id} has started pipelines; its claim cannot be given up"
                )));
            }
            delete_release(tx, id)?;
            Ok(())
        })
    }

    async fn get(&self, release_id: &ReleaseId) -> PortResult<Option<StoredRelease>> {
        let conn = self.lock();
        let id = release_id.as_str();
        let Some(release) = load_release(&conn, id).map_err(sql_err)? else {
            return Ok(None);
        };
        let runs = load_runs(&conn, id).map_err(sql_err)?;
        Ok(Some(StoredRelease { release, runs }))
    }

    async fn release_record(&self, release_id: &ReleaseId) -> PortResult<Option<ReleaseRecord>> {
        let conn = self.lock();
        load_release(&conn, release_id.as_str()).map_err(sql_err)
    }

    async fn get_run(
        &self,
        release_id: &ReleaseId,
        pipeline: &str,
    ) -> PortResult<Option<RunRecord>> {
        load_run(&self.lock(), release_id.as_str(), pipeline).map_err(sql_err)
    }

    /// Conditional on the owner, and on the run not having started (or moved) in its attempt:
    /// as DynamoDB's condition (`#rank < :rank AND attribute_not_exists(#eid)`).
    async fn record_start(
        &self,
        release_id: &ReleaseId,
        owner: &str,
        pipeline: &str,
        execution_id: &str,
        at: OffsetDateTime,
        events: &[ReleaseEvent],
    ) -> PortResult<RunRecord> {
        let id = release_id.as_str();
        let (run, changed) = self.write(|tx| {
            require_owner(tx, id, owner)?;
            let mut run = load_run(tx, id, pipeline)
                .map_err(sql_err)?
                .ok_or_else(|| {
                    PortError::NotFound(format!("release {id} has no pipeline {pipeline:?}"))
                })?;
            match run.execution_id.as_deref() {
                Some(e) if e == execution_id => return Ok((run, false)),
                Some(other) => {
                    return Err(PortError::ConditionFailed(format!(
                    "pipeline {pipeline} of release {id} was already started as execution {other}"
                )))
                }
                None if run.status != RunStatus::NotStarted => {
                    return Err(PortError::ConditionFailed(format!(
                        "pipeline {pipeline} of release {id} is {}; it cannot be started",
                        run.status
                    )))
                }
                None => {}
            }
            // The execution first: the start's history entry is about it.
            run.execution_id = Some(execution_id.to_owned());
            apply_status(&mut run, RunStatus::InProgress, at);
            run.started_at = Some(at);
            write_progress(tx, &run)?;
            append_history(tx, &run)?;
            tx.prepare_cached(
                "INSERT OR REPLACE INTO executions (execution_id, release_id, pipeline) \
                 VALUES (?1, ?2, ?3)",
            )
            .and_then(|mut s| s.execute(params![execution_id, id, pipeline]))
            .map_err(sql_err)?;
            enqueue(tx, events)?;
            Ok((run, true))
        })?;
        if changed {
            self.notify(&run, RunStatus::InProgress, at);
        }
        Ok(run)
    }

    /// The shared rule ([`apply_status`]) decides on the run as stored, inside the write.
    async fn record_status(
        &self,
        key: &RunKey,
        status: RunStatus,
        at: OffsetDateTime,
        events: &[ReleaseEvent],
    ) -> PortResult<Option<RunRecord>> {
        self.record_change(key, status, at, events, |run| apply_status(run, status, at))
    }

    async fn record_skipped(
        &self,
        key: &RunKey,
        execution_id: &str,
        at: OffsetDateTime,
        events: &[ReleaseEvent],
    ) -> PortResult<Option<RunRecord>> {
        self.record_change(key, RunStatus::Skipped, at, events, |run| {
            if run.status != RunStatus::NotStarted {
                return false;
            }
            run.execution_id = Some(execution_id.to_owned());
            apply_status(run, RunStatus::Skipped, at)
        })
    }

    async fn find_by_execution(&self, execution_id: &str) -> PortResult<Option<RunKey>> {
        let conn = self.lock();
        let found: Option<(String, String)> = conn
            .prepare_cached("SELECT release_id, pipeline FROM executions WHERE execution_id = ?1")
            .and_then(|mut s| {
                s.query_row([execution_id], |r| Ok((r.get(0)?, r.get(1)?)))
                    .optional()
            })
            .map_err(sql_err)?;
        found
            .map(|(id, pipeline)| {
                Ok(RunKey {
                    release_id: ReleaseId::parse(&id).map_err(PortError::Other)?,
                    pipeline,
                })
            })
            .transpose()
    }

    /// Conditional on `token_at`: a token stored later is kept, and the run returned as it is.
    async fn set_token(
        &self,
        key: &RunKey,
        token: &str,
        at: OffsetDateTime,
    ) -> PortResult<RunRecord> {
        let id = key.release_id.as_str();
        self.write(|tx| {
            tx.prepare_cached(
                "UPDATE runs SET task_token = ?3, token_at = ?4, waiting_since = ?4 \
                 WHERE release_id = ?1 AND pipeline = ?2 \
                 AND (token_at IS NULL OR token_at <= ?4)",
            )
            .and_then(|mut s| s.execute(params![id, key.pipeline, token, nanos(at)]))
            .map_err(sql_err)?;
            load_run(tx, id, &key.pipeline)
                .map_err(sql_err)?
                .ok_or_else(|| {
                    PortError::NotFound(format!("release {id} has no pipeline {:?}", key.pipeline))
                })
        })
    }

    async fn clear_token(&self, key: &RunKey, token: &str) -> PortResult<bool> {
        let id = key.release_id.as_str();
        self.write(|tx| {
            let n = tx
                .prepare_cached(
                    "UPDATE runs SET task_token = NULL, waiting_since = NULL \
                     WHERE release_id = ?1 AND pipeline = ?2 AND task_token = ?3",
                )
                .and_then(|mut s| s.execute(params![id, key.pipeline, token]))
                .map_err(sql_err)?;
            Ok(n == 1)
        })
    }

    async fn set_run_cause(&self, key: &RunKey, cause: &str) -> PortResult<()> {
        let id = key.release_id.as_str();
        let pipeline = key.pipeline.as_str();
        self.write(|tx| {
            if load_run(tx, id, pipeline).map_err(sql_err)?.is_none() {
                return Ok(());
            }
            tx.execute(
                "INSERT OR REPLACE INTO runs_cause (release_id, pipeline, cause) \
                 VALUES (?1, ?2, ?3)",
                params![id, pipeline, cause],
            )
            .map_err(sql_err)?;
            Ok(())
        })
    }

    async fn mark_stop_abandoned(&self, key: &RunKey) -> PortResult<Option<RunRecord>> {
        let id = key.release_id.as_str();
        let pipeline = key.pipeline.as_str();
        self.write(|tx| {
            if load_run(tx, id, pipeline).map_err(sql_err)?.is_none() {
                return Ok(None);
            }
            tx.execute(
                "INSERT OR IGNORE INTO runs_stop_abandoned (release_id, pipeline) VALUES (?1, ?2)",
                params![id, pipeline],
            )
            .map_err(sql_err)?;
            load_run(tx, id, pipeline).map_err(sql_err)
        })
    }

    /// Least recently polled first (`waiting_since`; NULL, a token stored before the column
    /// existed, first). A row that does not decode is logged and skipped.
    async fn waiting_runs(&self) -> PortResult<Vec<RunRecord>> {
        let conn = self.lock();
        let rows = conn
            .prepare_cached(&format!(
                "SELECT {RUN_COLUMNS} FROM runs WHERE task_token IS NOT NULL \
                 ORDER BY waiting_since, release_id, position"
            ))
            .and_then(|mut s| {
                s.query_map([], |row| Ok((row_key(row), run_from_row(row))))?
                    .collect::<rusqlite::Result<Vec<_>>>()
            })
            .map_err(sql_err)?;
        let mut runs = Vec::with_capacity(rows.len());
        for ((id, pipeline), run) in rows {
            let run = run.and_then(|mut run| {
                run.history = history_of(&conn, run.release_id.as_str(), &run.spec.name)?;
                Ok(run)
            });
            match run {
                Ok(run) => runs.push(run),
                Err(error) => tracing::error!(
                    release_id = %id,
                    pipeline = %pipeline,
                    %error,
                    "skipping a waiting run that cannot be decoded"
                ),
            }
        }
        Ok(runs)
    }

    async fn touch_waiting(&self, key: &RunKey, token: &str, at: OffsetDateTime) -> PortResult<()> {
        let id = key.release_id.as_str();
        self.write(|tx| {
            tx.prepare_cached(
                "UPDATE runs SET waiting_since = ?4 \
                 WHERE release_id = ?1 AND pipeline = ?2 AND task_token = ?3",
            )
            .and_then(|mut s| s.execute(params![id, key.pipeline, token, nanos(at)]))
            .map_err(sql_err)?;
            Ok(())
        })
    }

    /// In order of request. A row that does not decode is logged and skipped.
    async fn running_releases(&self) -> PortResult<Vec<ReleaseRecord>> {
        decodable_releases(
            &self.lock(),
            "a RUNNING release",
            &format!(
                "SELECT {RELEASE_COLUMNS} FROM releases WHERE status = 'RUNNING' \
                 ORDER BY requested_at, release_id"
            ),
            &[],
        )
    }

    /// A column of the release row, apart from its version: allocating numbers is not a
    /// change of the release.
    async fn next_sequence(&self, release_id: &ReleaseId, count: u64) -> PortResult<u64> {
        let id = release_id.as_str();
        self.write(|tx| {
            let last: Option<u64> = tx
                .prepare_cached(
                    "UPDATE releases SET last_sequence = last_sequence + ?2 \
                     WHERE release_id = ?1 RETURNING last_sequence",
                )
                .and_then(|mut s| {
                    s.query_row(params![id, int(count)], |r| uint(r.get(0)?))
                        .optional()
                })
                .map_err(sql_err)?;
            let last =
                last.ok_or_else(|| PortError::NotFound(format!("release {id} is not recorded")))?;
            Ok(last + 1 - count)
        })
    }

    async fn update_release(
        &self,
        record: &ReleaseRecord,
        events: &[ReleaseEvent],
    ) -> PortResult<()> {
        let id = record.release_id.as_str();
        let lifecycle = to_json(&record.lifecycle)?;
        // Version 0 is the claim's: no update writes it, so no stored version matches.
        let expected = record.version.checked_sub(1).map_or(-1, int);
        self.write(|tx| {
            let updated = tx
                .prepare_cached(
                    "UPDATE releases SET owner = ?2, status = ?3, ended_at = ?4, cause = ?5, \
                     stop_requested = ?6, lifecycle = ?7, version = ?8 \
                     WHERE release_id = ?1 AND version = ?9",
                )
                .and_then(|mut s| {
                    s.execute(params![
                        id,
                        record.owner,
                        record.status.as_str(),
                        record.ended_at.map(nanos),
                        record.cause,
                        i64::from(record.stop_requested),
                        lifecycle,
                        int(record.version),
                        expected,
                    ])
                })
                .map_err(sql_err)?;
            if updated == 0 {
                return Err(version_conflict(tx, id, expected));
            }
            enqueue(tx, events)
        })
    }

    /// [`reset_for_attempt`] on the run as stored; its token, stop-abandoned mark and cause go
    /// too (`tokenAt` stays: a late token of the old attempt is still refused).
    async fn reset_run(&self, key: &RunKey, attempt: u32) -> PortResult<Option<RunRecord>> {
        let id = key.release_id.as_str();
        let pipeline = key.pipeline.as_str();
        self.write(|tx| {
            let Some(mut run) = load_run(tx, id, pipeline).map_err(sql_err)? else {
                return Ok(None);
            };
            if run.status.is_success() || run.attempt >= attempt {
                return Ok(Some(run));
            }
            reset_for_attempt(&mut run, attempt);
            write_progress(tx, &run)?;
            let clear = |sql: &str| tx.execute(sql, [id, pipeline]).map_err(sql_err);
            clear(
                "UPDATE runs SET task_token = NULL, waiting_since = NULL \
                 WHERE release_id = ?1 AND pipeline = ?2",
            )?;
            clear("DELETE FROM runs_stop_abandoned WHERE release_id = ?1 AND pipeline = ?2")?;
            clear("DELETE FROM runs_cause WHERE release_id = ?1 AND pipeline = ?2")?;
            Ok(Some(run))
        })
    }

    /// In sequence order per release, releases in id order.
    async fn outbox(
        &self,
        release_id: Option<&ReleaseId>,
        limit: usize,
    ) -> PortResult<Vec<ReleaseEvent>> {
        const COLUMNS: &str = "release_id, sequence, detail_type, time, detail";
        let limit = i64::try_from(limit).unwrap_or(i64::MAX);
        let conn = self.lock();
        let mut stmt = match release_id {
            Some(_) => conn.prepare_cached(&format!(
                "SELECT {COLUMNS} FROM outbox WHERE release_id = ?2 ORDER BY sequence LIMIT ?1"
            )),
            None => conn.prepare_cached(&format!(
                "SELECT {COLUMNS} FROM outbox ORDER BY release_id, sequence LIMIT ?1"
            )),
        }
        .map_err(sql_err)?;
        let rows = match release_id {
            Some(id) => stmt.query_map(params![limit, id.as_str()], event_from_row),
            None => stmt.query_map(params![limit], event_from_row),
        };
        rows.and_then(|rows| rows.collect()).map_err(sql_err)
    }

    async fn remove_from_outbox(&self, events: &[ReleaseEvent]) -> PortResult<()> {
        self.write(|tx| {
            let mut delete = tx
                .prepare_cached("DELETE FROM outbox WHERE release_id = ?1 AND sequence = ?2")
                .map_err(sql_err)?;
            for e in events {
                delete
                    .execute(params![e.release_id.as_str(), int(e.sequence)])
                    .map_err(sql_err)?;
            }
            Ok(())
        })
    }

    /// Ordered by [`list_order`]'s text, as every store orders the list (and the page token
    /// is): the releases of the status are read and sorted here. A local state directory holds
    /// few releases. A row that does not decode is logged and skipped.
    async fn list_releases(&self, query: &ListQuery) -> PortResult<ReleasePage> {
        let status = query.status.map(ReleaseStatus::as_str);
        let releases = decodable_releases(
            &self.lock(),
            "a release",
            &format!("SELECT {RELEASE_COLUMNS} FROM releases WHERE ?1 IS NULL OR status = ?1"),
            &[&status],
        )?;
        let after = query.next.as_deref();
        let mut keyed: Vec<(String, ReleaseRecord)> = releases
            .into_iter()
            .map(|r| (list_order(&r), r))
            .filter(|(k, _)| after.is_none_or(|n| k.as_str() < n))
            .collect();
        // Newest first; keys are unique (they end in the id).
        keyed.sort_unstable_by(|a, b| b.0.cmp(&a.0));
        let limit = query.limit.max(1);
        keyed.truncate(limit + 1);
        Ok(page_of(keyed.into_iter().map(|(_, r)| r).collect(), limit))
    }

    async fn halt(&self) -> PortResult<Option<Halt>> {
        read_halt(&self.lock())
    }

    /// One transaction: read the halt it replaces, write the new one.
    async fn set_halt(&self, halt: Option<&Halt>) -> PortResult<Option<Halt>> {
        self.write(|tx| {
            let before = read_halt(tx)?;
            match halt {
                Some(h) => tx.execute(
                    "INSERT INTO halt (id, json) VALUES (1, ?1) \
                     ON CONFLICT (id) DO UPDATE SET json = excluded.json",
                    params![to_json(h)?],
                ),
                None => tx.execute("DELETE FROM halt WHERE id = 1", []),
            }
            .map_err(sql_err)?;
            Ok(before)
        })
    }
}

/// The stored halt; one that does not decode is an error (never silently "not halted").
fn read_halt(conn: &Connection) -> PortResult<Option<Halt>> {
    let json: Option<String> = conn
        .query_row("SELECT json FROM halt WHERE id = 1", [], |row| row.get(0))
        .optional()
        .map_err(sql_err)?;
    json.map(|j| {
        serde_json::from_str(&j)
            .map_err(|e| PortError::Other(format!("the stored halt does not decode: {e}")))
    })
    .transpose()
}

/// Why a conditional `update_release` wrote nothing: the release is unknown, or at another
/// version than `expected` (someone wrote it since it was read).
fn version_conflict(tx: &Connection, id: &str, expected: i64) -> PortError {
    let stored: Result<Option<i64>, _> = tx
        .prepare_cached("SELECT version FROM releases WHERE release_id = ?1")
        .and_then(|mut s| s.query_row([id], |r| r.get(0)).optional());
    match stored {
        Err(e) => sql_err(e),
        Ok(None) => PortError::NotFound(format!("release {id} is not recorded")),
        Ok(Some(v)) => PortError::ConditionFailed(format!(
            "release {id} is at version {v}, not {expected}: it changed since it was read"
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use futures::executor::block_on;

    /// The `releases` table as release-machine created it before requestedBy.
    const OLD_RELEASES: &str = "CREATE TABLE releases (
        release_id TEXT PRIMARY KEY, owner TEXT NOT NULL, status TEXT NOT NULL,
        requested_at INTEGER NOT NULL, ended_at INTEGER, source_kind TEXT NOT NULL,
        source_location TEXT, on_failure TEXT NOT NULL, max_concurrency INTEGER NOT NULL,
        description TEXT, cause TEXT, stop_requested INTEGER NOT NULL DEFAULT 0
    ) WITHOUT ROWID;
    INSERT INTO releases VALUES ('old-1', 'exec-old', 'SUCCEEDED', 0, 1000, 'inline', NULL,
        'stop', 10, NULL, NULL, 0);";

    #[test]
    fn an_older_state_dir_opens_and_reads_its_releases_without_requested_by() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(STORE_FILE);
        Connection::open(&path)
            .unwrap()
            .execute_batch(OLD_RELEASES)
            .unwrap();

        let store = SqliteStore::open(&path).unwrap();
        let id = ReleaseId::parse("old-1").unwrap();
        let old = block_on(store.get(&id)).unwrap().expect("the old release");
        assert_eq!(old.release.source.kind, SourceKind::Inline);
        assert_eq!(old.release.requested_by, None);
        assert_eq!(old.release.manifest_hash, None);

        // New releases in the same file keep who asked; reopening adds nothing twice.
        let mut release = new_release("new-1");
        release.record.requested_by = Some("local".into());
        release.record.manifest_hash = Some(release.manifest.content_hash());
        assert_eq!(block_on(store.claim(&release)).unwrap(), Claim::Claimed);
        drop(store);
        let store = SqliteStore::open(&path).unwrap();
        let got = block_on(store.get(&release.record.release_id))
            .unwrap()
            .unwrap();
        assert_eq!(got.release, release.record);
    }

    /// The `runs` table as release-machine created it before tokenAt and waitingSince, with a
    /// run waiting on a token.
    const OLD_RUNS: &str = "CREATE TABLE runs (
        release_id TEXT NOT NULL, pipeline TEXT NOT NULL, position INTEGER NOT NULL,
        wave INTEGER NOT NULL, timeout_minutes INTEGER NOT NULL, variables TEXT,
        source_revisions TEXT, status TEXT NOT NULL, execution_id TEXT, started_at INTEGER,
        ended_at INTEGER, task_token TEXT, PRIMARY KEY (release_id, pipeline)
    ) WITHOUT ROWID;
    CREATE INDEX runs_waiting ON runs (task_token) WHERE task_token IS NOT NULL;
    INSERT INTO releases VALUES ('old-2', 'exec-old', 'RUNNING', 0, NULL, 'inline', NULL,
        'stop', 10, NULL, NULL, 0);
    INSERT INTO runs VALUES ('old-2', 'app', 0, 1, 60, NULL, NULL, 'InProgress', 'e-old',
        0, NULL, 'tok-old');";

    #[test]
    fn an_older_state_dir_gains_token_times_and_keeps_its_waiting_runs() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(STORE_FILE);
        Connection::open(&path)
            .unwrap()
            .execute_batch(&format!("{OLD_RELEASES}{OLD_RUNS}"))
            .unwrap();

        let store = SqliteStore::open(&path).unwrap();
        let waiting = block_on(store.waiting_runs()).unwrap();
        assert_eq!(waiting.len(), 1);
        assert_eq!(waiting[0].task_token.as_deref(), Some("tok-old"));
        let running = block_on(store.running_releases()).unwrap();
        let running: Vec<&str> = running.iter().map(|r| r.release_id.as_str()).collect();
        assert_eq!(running, ["old-2"]);

        // A token stored before tokenAt existed can be replaced; then the condition holds.
        let key = RunKey {
            release_id: ReleaseId::parse("old-2").unwrap(),
            pipeline: "app".into(),
        };
        let t = OffsetDateTime::UNIX_EPOCH + time::Duration::minutes(5);
        let run = block_on(store.set_token(&key, "tok-new", t)).unwrap();
        assert_eq!(run.task_token.as_deref(), Some("tok-new"));
        let older = t - time::Duration::minutes(1);
        let run = block_on(store.set_token(&key, "tok-older", older)).unwrap();
        assert_eq!(run.task_token.as_deref(), Some("tok-new"));
        drop(store);
        // Reopening adds nothing twice.
        let store = SqliteStore::open(&path).unwrap();
        assert_eq!(block_on(store.waiting_runs()).unwrap().len(), 1);
    }

    /// `run_history` as release-machine created it before attempts, with the start of the
    /// waiting run of [`OLD_RUNS`].
    const OLD_HISTORY: &str = "CREATE TABLE run_history (
        seq INTEGER PRIMARY KEY AUTOINCREMENT, release_id TEXT NOT NULL,
        pipeline TEXT NOT NULL, status TEXT NOT NULL, at INTEGER NOT NULL,
        UNIQUE (release_id, pipeline, status)
    );
    INSERT INTO run_history (release_id, pipeline, status, at)
        VALUES ('old-2', 'app', 'InProgress', 0);";

    /// A state directory made before attempts (issue 11) opens: its history reads as attempt
    /// 1 of the run's execution, its releases as their one attempt at version 0; then a
    /// retried run records the statuses of its first attempt again in the second.
    #[test]
    fn an_older_state_dir_gains_attempts_and_keeps_its_history() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(STORE_FILE);
        Connection::open(&path)
            .unwrap()
            .execute_batch(&format!("{OLD_RELEASES}{OLD_RUNS}{OLD_HISTORY}"))
            .unwrap();

        let store = SqliteStore::open(&path).unwrap();
        let rid = ReleaseId::parse("old-2").unwrap();
        let old = block_on(store.get(&rid)).unwrap().unwrap();
        assert_eq!(old.release.version, 0);
        let attempts = &old.release.lifecycle.attempts;
        assert_eq!(attempts.len(), 1);
        assert_eq!(attempts[0].execution, "exec-old");
        assert_eq!(attempts[0].status, ReleaseStatus::Running);
        let ended = block_on(store.release_record(&ReleaseId::parse("old-1").unwrap()))
            .unwrap()
            .unwrap();
        assert_eq!(ended.lifecycle.attempts[0].status, ReleaseStatus::Succeeded);
        let app = &old.runs[0];
        assert_eq!(app.attempt, 1);
        let start = HistoryEntry {
            status: RunStatus::InProgress,
            at: OffsetDateTime::UNIX_EPOCH,
            attempt: 1,
            execution_id: Some("e-old".into()),
        };
        assert_eq!(app.history, [start]);
        assert_eq!(block_on(store.next_sequence(&rid, 1)).unwrap(), 1);

        // The same statuses again in attempt 2.
        let key = RunKey {
            release_id: rid.clone(),
            pipeline: "app".into(),
        };
        let t = |m| OffsetDateTime::UNIX_EPOCH + time::Duration::minutes(m);
        block_on(store.record_status(&key, RunStatus::Failed, t(1), &[])).unwrap();
        block_on(store.reset_run(&key, 2)).unwrap();
        block_on(store.record_start(&rid, "exec-old", "app", "e-new", t(2), &[])).unwrap();
        let run = block_on(store.record_status(&key, RunStatus::Failed, t(3), &[]))
            .unwrap()
            .unwrap();
        let seen: Vec<_> = run
            .history
            .iter()
            .map(|h| (h.status, h.attempt, h.execution_id.as_deref()))
            .collect();
        assert_eq!(
            seen,
            [
                (RunStatus::InProgress, 1, Some("e-old")),
                (RunStatus::Failed, 1, Some("e-old")),
                (RunStatus::InProgress, 2, Some("e-new")),
                (RunStatus::Failed, 2, Some("e-new")),
            ]
        );
        // The release item's conditional write works on the old row.
        let mut next = old.release.clone();
        next.version = 1;
        next.stop_requested = true;
        block_on(store.update_release(&next, &[])).unwrap();
        drop(store);

        // Reopening migrates nothing twice, and keeps the history's order.
        let store = SqliteStore::open(&path).unwrap();
        let again = block_on(store.get(&rid)).unwrap().unwrap();
        assert_eq!(again.runs[0], run);
        assert_eq!(again.release, next);
    }

    /// A row that does not decode is skipped (and logged) by the sweep's lists, never an
    /// error for all of them (issue 9, fault 8).
    #[test]
    fn rows_that_do_not_decode_are_skipped_by_the_sweeps_lists() {
        let dir = tempfile::tempdir().unwrap();
        let store = SqliteStore::open_dir(dir.path()).unwrap();
        let broken = block_on(rm_testkit::store_contract::BrokenItems::prepare(
            &store, "sqlite",
        ));
        block_on(broken.check_listed(&store));
        store
            .lock()
            .execute(
                "UPDATE runs SET variables = '{not json' WHERE release_id = ?1",
                [broken.broken_run.release_id.as_str()],
            )
            .unwrap();
        store
            .lock()
            .execute(
                "UPDATE releases SET on_failure = 'shrug' WHERE release_id = ?1",
                [broken.broken_release.as_str()],
            )
            .unwrap();
        block_on(broken.check_skipped(&store));
    }

    #[test]
    fn an_unknown_source_kind_is_reported_not_guessed() {
        let dir = tempfile::tempdir().unwrap();
        let store = SqliteStore::open_dir(dir.path()).unwrap();
        let release = new_release("odd-1");
        block_on(store.claim(&release)).unwrap();
        store
            .lock()
            .execute("UPDATE releases SET source_kind = 'ftp'", [])
            .unwrap();
        let err = block_on(store.get(&release.record.release_id)).unwrap_err();
        assert!(err.to_string().contains("ftp"), "{err}");
    }

    fn new_release(id: &str) -> rm_core::ports::NewRelease {
        let manifest = rm_core::Manifest::parse(
            format!(r#"{{"releaseId": "{id}", "pipelines": ["app"]}}"#).as_bytes(),
        )
        .unwrap();
        let record = ReleaseRecord {
            release_id: manifest.release_id.clone(),
            owner: "exec-new".into(),
            status: ReleaseStatus::Running,
            requested_at: OffsetDateTime::UNIX_EPOCH,
            ended_at: None,
            source: ReleaseSource {
                kind: SourceKind::Api,
                location: Some("api:arn:aws:iam::111122223333:user/me".into()),
            },
            requested_by: None,
            manifest_hash: None,
            on_failure: manifest.on_failure,
            max_concurrency: manifest.max_concurrency,
            description: None,
            cause: None,
            stop_requested: false,
            version: 0,
            lifecycle: Lifecycle::default(),
        };
        rm_core::ports::NewRelease {
            record,
            manifest,
            events: Vec::new(),
        }
    }
}

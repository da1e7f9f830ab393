//! The embedded [`ReleaseStore`]: one SQLite file under the state directory.
//!
//! It keeps DynamoDB's semantics, not just its data: the release id is claimed by one
//! conditional write (`attribute_not_exists(pk) OR owner = :me`), every later write to a release
//! is conditional on its owner, a run's status never moves backwards, a run is found by its
//! CodePipeline execution id through a row keyed by that id, and the runs that carry a task token
//! form the sweep's index. Each port call is one SQLite transaction (`BEGIN IMMEDIATE`), so two
//! local processes sharing a state directory see the same conditions hold.

use rm_core::error::PortError;
use rm_core::manifest::{PipelineSpec, SourceRevision};
use rm_core::ports::{Claim, NewRelease, PortResult, ReleaseStore, RunKey};
use rm_core::release::{
    HistoryEntry, ReleaseId, ReleaseRecord, ReleaseSource, ReleaseStatus, RunRecord, RunStatus,
    SourceKind, StoredRelease,
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
    manifest_hash   TEXT
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
    PRIMARY KEY (release_id, pipeline)
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS runs_waiting ON runs (task_token) WHERE task_token IS NOT NULL;
CREATE INDEX IF NOT EXISTS releases_running ON releases (requested_at)
    WHERE status = 'RUNNING';
CREATE TABLE IF NOT EXISTS run_history (
    seq        INTEGER PRIMARY KEY AUTOINCREMENT,
    release_id TEXT NOT NULL,
    pipeline   TEXT NOT NULL,
    status     TEXT NOT NULL,
    at         INTEGER NOT NULL,
    UNIQUE (release_id, pipeline, status)
);
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
"#;

/// Columns added to `releases` after its first version, with their types: a state directory
/// made by an older release-machine gets them (`ALTER TABLE .. ADD COLUMN`, NULL in its old
/// rows) when the store opens, so `status` still reads its releases.
const ADDED_RELEASE_COLUMNS: [(&str, &str); 2] =
    [("requested_by", "TEXT"), ("manifest_hash", "TEXT")];

/// Columns added to `runs` after its first version (issue 9): `token_at`, when the run's
/// newest task token was stored (kept when the token is cleared, so a late older token is
/// refused), and `waiting_since`, the sweep's order of a waiting run. An older store's runs
/// get them as NULL: no token time (any token may replace theirs) and listed first.
const ADDED_RUN_COLUMNS: [(&str, &str); 2] =
    [("token_at", "INTEGER"), ("waiting_since", "INTEGER")];

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
                            AND c.pipeline = runs.pipeline)";

/// A run's status change that was actually applied (for live progress).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RunChange {
    pub release_id: String,
    pub pipeline: String,
    pub wave: u32,
    pub status: RunStatus,
    pub at: OffsetDateTime,
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
    })
}

fn release_from_row(row: &Row<'_>) -> rusqlite::Result<ReleaseRecord> {
    let id: String = row.get(0)?;
    let status: String = row.get(2)?;
    let on_failure: String = row.get(7)?;
    let kind: String = row.get(5)?;
    Ok(ReleaseRecord {
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
    })
}

const RELEASE_COLUMNS: &str = "release_id, owner, status, requested_at, ended_at, source_kind, \
                               source_location, on_failure, max_concurrency, description, cause, \
                               stop_requested, requested_by, manifest_hash";

fn load_release(tx: &Connection, id: &str) -> rusqlite::Result<Option<ReleaseRecord>> {
    tx.prepare_cached(&format!(
        "SELECT {RELEASE_COLUMNS} FROM releases WHERE release_id = ?1"
    ))?
    .query_row([id], release_from_row)
    .optional()
}

fn history_of(tx: &Connection, id: &str, pipeline: &str) -> rusqlite::Result<Vec<HistoryEntry>> {
    let mut stmt = tx.prepare_cached(
        "SELECT status, at FROM run_history WHERE release_id = ?1 AND pipeline = ?2 ORDER BY seq",
    )?;
    let rows = stmt.query_map([id, pipeline], |r| {
        Ok(HistoryEntry {
            status: run_status(&r.get::<_, String>(0)?)?,
            at: from_nanos(r.get(1)?)?,
        })
    })?;
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
    let mut stmt = tx.prepare_cached(
        "SELECT pipeline, status, at FROM run_history WHERE release_id = ?1 ORDER BY seq",
    )?;
    let mut rows = stmt.query([id])?;
    while let Some(r) = rows.next()? {
        let pipeline: String = r.get(0)?;
        if let Some(&i) = index.get(&pipeline) {
            runs[i].history.push(HistoryEntry {
                status: run_status(&r.get::<_, String>(1)?)?,
                at: from_nanos(r.get(2)?)?,
            });
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

/// Checks that `owner` holds the release and that it is RUNNING: what `finish` and
/// `request_stop` require (an ended release stays as it ended).
fn require_running_owner(tx: &Connection, id: &str, owner: &str) -> PortResult<()> {
    require_owner(tx, id, owner)?;
    let status: String = tx
        .prepare_cached("SELECT status FROM releases WHERE release_id = ?1")
        .and_then(|mut s| s.query_row([id], |r| r.get(0)))
        .map_err(sql_err)?;
    if status == ReleaseStatus::Running.as_str() {
        Ok(())
    } else {
        Err(PortError::ConditionFailed(format!(
            "release {id} already ended with status {status}"
        )))
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
        let conn = Connection::open(path).map_err(|e| {
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
        conn.execute_batch(SCHEMA).map_err(damaged)?;
        add_missing_columns(&conn).map_err(damaged)?;
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

    fn notify(&self, run: &RunRecord, status: RunStatus, at: OffsetDateTime) {
        if let Some(observer) = &self.observer {
            observer(&RunChange {
                release_id: run.release_id.to_string(),
                pipeline: run.spec.name.clone(),
                wave: run.spec.wave,
                status,
                at,
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

/// Adds the [`ADDED_RELEASE_COLUMNS`] and [`ADDED_RUN_COLUMNS`] an older store lacks, then
/// the index on them.
fn add_missing_columns(conn: &Connection) -> rusqlite::Result<()> {
    for (table, added) in [
        ("releases", ADDED_RELEASE_COLUMNS),
        ("runs", ADDED_RUN_COLUMNS),
    ] {
        let present: Vec<String> = conn
            .prepare(&format!("SELECT name FROM pragma_table_info('{table}')"))?
            .query_map([], |r| r.get(0))?
            .collect::<rusqlite::Result<_>>()?;
        for (name, ty) in added {
            if !present.iter().any(|p| p == name) {
                conn.execute_batch(&format!("ALTER TABLE {table} ADD COLUMN {name} {ty}"))?;
            }
        }
    }
    conn.execute_batch(WAITING_INDEX)
}

fn delete_release(tx: &Connection, id: &str) -> PortResult<bool> {
    let run = |sql: &str| tx.execute(sql, [id]).map_err(sql_err);
    run("DELETE FROM run_history WHERE release_id = ?1")?;
    run("DELETE FROM runs_stop_abandoned WHERE release_id = ?1")?;
    run("DELETE FROM runs_cause WHERE release_id = ?1")?;
    run("DELETE FROM executions WHERE release_id = ?1")?;
    run("DELETE FROM runs WHERE release_id = ?1")?;
    Ok(run("DELETE FROM releases WHERE release_id = ?1")? > 0)
}

fn to_json<T: serde::Serialize>(v: &T) -> PortResult<String> {
    serde_json::to_string(v).map_err(|e| PortError::Other(format!("cannot encode: {e}")))
}

#[async_trait::async_trait]
impl ReleaseStore for SqliteStore {
    async fn claim(&self, release: &NewRelease) -> PortResult<Claim> {
        let r = &release.record;
        let id = r.release_id.as_str();
        self.write(|tx| {
            let inserted = tx
                .prepare_cached(&format!(
                    "INSERT INTO releases ({RELEASE_COLUMNS}) \
                     VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14) \
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
                    ])
                })
                .map_err(sql_err)?;
            if inserted == 0 {
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

    async fn record_start(
        &self,
        release_id: &ReleaseId,
        owner: &str,
        pipeline: &str,
        execution_id: &str,
        at: OffsetDateTime,
    ) -> PortResult<RunRecord> {
        let id = release_id.as_str();
        let (run, changed) = self.write(|tx| {
            require_owner(tx, id, owner)?;
            let run = load_run(tx, id, pipeline)
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
            tx.prepare_cached(
                "UPDATE runs SET status = 'InProgress', execution_id = ?3, started_at = ?4 \
                 WHERE release_id = ?1 AND pipeline = ?2 AND execution_id IS NULL",
            )
            .and_then(|mut s| s.execute(params![id, pipeline, execution_id, nanos(at)]))
            .map_err(sql_err)?;
            tx.prepare_cached(
                "INSERT OR IGNORE INTO run_history (release_id, pipeline, status, at) \
                 VALUES (?1, ?2, 'InProgress', ?3)",
            )
            .and_then(|mut s| s.execute(params![id, pipeline, nanos(at)]))
            .map_err(sql_err)?;
            tx.prepare_cached(
                "INSERT OR REPLACE INTO executions (execution_id, release_id, pipeline) \
                 VALUES (?1, ?2, ?3)",
            )
            .and_then(|mut s| s.execute(params![execution_id, id, pipeline]))
            .map_err(sql_err)?;
            let run = load_run(tx, id, pipeline)
                .map_err(sql_err)?
                .ok_or_else(|| PortError::Other(format!("run {pipeline} vanished")))?;
            Ok((run, true))
        })?;
        if changed {
            self.notify(&run, RunStatus::InProgress, at);
        }
        Ok(run)
    }

    async fn record_status(
        &self,
        key: &RunKey,
        status: RunStatus,
        at: OffsetDateTime,
    ) -> PortResult<Option<RunRecord>> {
        let id = key.release_id.as_str();
        let pipeline = key.pipeline.as_str();
        let result = self.write(|tx| {
            let Some(run) = load_run(tx, id, pipeline).map_err(sql_err)? else {
                return Ok(None);
            };
            if status.rank() <= run.status.rank() {
                return Ok(Some((run, false)));
            }
            let ended = status.is_terminal().then_some(nanos(at));
            tx.prepare_cached(
                "UPDATE runs SET status = ?3, ended_at = COALESCE(?4, ended_at) \
                 WHERE release_id = ?1 AND pipeline = ?2 AND status = ?5",
            )
            .and_then(|mut s| {
                s.execute(params![
                    id,
                    pipeline,
                    status.as_str(),
                    ended,
                    run.status.as_str()
                ])
            })
            .map_err(sql_err)?;
            tx.prepare_cached(
                "INSERT OR IGNORE INTO run_history (release_id, pipeline, status, at) \
                 VALUES (?1, ?2, ?3, ?4)",
            )
            .and_then(|mut s| s.execute(params![id, pipeline, status.as_str(), nanos(at)]))
            .map_err(sql_err)?;
            let run = load_run(tx, id, pipeline)
                .map_err(sql_err)?
                .ok_or_else(|| PortError::Other(format!("run {pipeline} vanished")))?;
            Ok(Some((run, true)))
        })?;
        Ok(result.map(|(run, changed)| {
            if changed {
                self.notify(&run, status, at);
            }
            run
        }))
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
        let conn = self.lock();
        let rows = conn
            .prepare_cached(&format!(
                "SELECT {RELEASE_COLUMNS} FROM releases WHERE status = 'RUNNING' \
                 ORDER BY requested_at, release_id"
            ))
            .and_then(|mut s| {
                s.query_map([], |row| {
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
                    "skipping a RUNNING release that cannot be decoded"
                ),
            }
        }
        Ok(releases)
    }

    async fn request_stop(&self, release_id: &ReleaseId, owner: &str) -> PortResult<()> {
        let id = release_id.as_str();
        self.write(|tx| {
            require_running_owner(tx, id, owner)?;
            tx.execute(
                "UPDATE releases SET stop_requested = 1 \
                 WHERE release_id = ?1 AND owner = ?2 AND status = 'RUNNING'",
                params![id, owner],
            )
            .map_err(sql_err)?;
            Ok(())
        })
    }

    async fn finish(
        &self,
        release_id: &ReleaseId,
        owner: &str,
        status: ReleaseStatus,
        cause: Option<&str>,
        at: OffsetDateTime,
    ) -> PortResult<ReleaseRecord> {
        let id = release_id.as_str();
        self.write(|tx| {
            require_running_owner(tx, id, owner)?;
            // A release's end is written once: RUNNING -> SUCCEEDED | FAILED, never back.
            tx.execute(
                "UPDATE releases SET status = ?3, cause = ?4, ended_at = ?5 \
                 WHERE release_id = ?1 AND owner = ?2 AND status = 'RUNNING'",
                params![id, owner, status.as_str(), cause, nanos(at)],
            )
            .map_err(sql_err)?;
            load_release(tx, id)
                .map_err(sql_err)?
                .ok_or_else(|| PortError::Other(format!("release {id} vanished")))
        })
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
        };
        rm_core::ports::NewRelease { record, manifest }
    }
}

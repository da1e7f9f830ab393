//! The lock a local run holds on its release (issue 9, fault 11): two local runs of one
//! release id on one state directory must not interfere, and a release whose run died
//! (killed, crashed, the laptop slept for good) must not stay RUNNING forever.
//!
//! Each release id has a lock file in the state directory, `locks/<hex of the id>.lock`,
//! locked with an OS advisory lock ([`File::try_lock`]) for as long as the run lasts. The OS
//! drops the lock when the process ends, however it ends, so a RUNNING release whose lock
//! nobody holds was interrupted: [`end_if_interrupted`] (any command that opens a release)
//! and [`ReleaseLock::end_interrupted`] (a run, which holds the lock already) end it FAILED
//! with the cause [`INTERRUPTED_CAUSE`].
//!
//! The file holds who locked it ([`Holder`]: pid, since when, which command) for the error
//! message of the run that is refused. Lock files are never deleted: deleting a locked file
//! would let a second process lock a new file of the same name while the first still holds
//! the old one.

use crate::events::JsonlBus;
use futures::executor::block_on;
use rm_core::error::PortError;
use rm_core::ports::{Clock, PortResult, ReleaseStore, RunKey};
use rm_core::release::{ReleaseId, ReleaseRecord, ReleaseStatus, RunStatus, StoredRelease};
use rm_core::usecases::{finish_release, publish, record_run_status, Writer};
use serde::{Deserialize, Serialize};
use std::fs::{File, OpenOptions, TryLockError};
use std::io::{Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use time::OffsetDateTime;

/// The directory of lock files, under the state directory.
pub const LOCK_DIR: &str = "locks";

/// The cause recorded on a release whose local run ended without ending it.
pub const INTERRUPTED_CAUSE: &str = "local run interrupted";

/// Who holds a release's lock, as written in its lock file.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Holder {
    pub release_id: String,
    pub pid: u32,
    /// When the holder took the lock (RFC 3339, wall clock).
    pub since: String,
    /// The release-machine command holding it: `run`, or a command ending an interrupted run
    /// (`status`).
    pub command: String,
}

/// Why a release's lock could not be taken.
#[derive(Debug, thiserror::Error)]
pub enum LockError {
    /// Another process holds it: a local run of this release is going on.
    #[error("{}", held_message(.release_id, .state_dir, .holder.as_deref()))]
    Held {
        release_id: String,
        state_dir: PathBuf,
        /// What the lock file says; `None` if it could not be read (the holder may be between
        /// taking the lock and writing its name).
        holder: Option<Box<Holder>>,
    },
    #[error("cannot lock release {release_id} in {}: {message}", .state_dir.display())]
    Io {
        release_id: String,
        state_dir: PathBuf,
        message: String,
    },
}

fn held_message(release_id: &str, state_dir: &Path, holder: Option<&Holder>) -> String {
    let state_dir = state_dir.display();
    match holder {
        Some(h) if h.command == "run" => format!(
            "release {release_id} is being run by another local run (pid {}, since {}) in {state_dir}; wait for it, or use another --state-dir",
            h.pid, h.since
        ),
        Some(h) => format!(
            "release {release_id} is held by another release-machine {} (pid {}, since {}) in {state_dir}; try again in a moment",
            h.command, h.pid, h.since
        ),
        None => format!(
            "release {release_id} is being run by another local run in {state_dir}; wait for it, or use another --state-dir"
        ),
    }
}

/// The lock file of `release_id` in `state_dir`. The name is the id's bytes in hex: release
/// ids are `[A-Za-z0-9._-]`, but file systems that ignore case would give `A` and `a` one file.
pub fn lock_path(state_dir: &Path, release_id: &ReleaseId) -> PathBuf {
    let hex: String = release_id
        .as_str()
        .bytes()
        .map(|b| format!("{b:02x}"))
        .collect();
    state_dir.join(LOCK_DIR).join(format!("{hex}.lock"))
}

/// A held lock on one release id in one state directory. Dropping it (or the process ending,
/// however it ends) releases it.
#[derive(Debug)]
pub struct ReleaseLock {
    // Holds the OS lock for as long as it is open.
    _file: File,
    path: PathBuf,
    release_id: ReleaseId,
    /// Where the events of an interrupted release's end are published (`events.jsonl`).
    state_dir: PathBuf,
}

impl ReleaseLock {
    /// Takes the lock of `release_id` in `state_dir` (creating the directories and the file
    /// as needed) without waiting, and writes this process into it as the holder, `command`
    /// (`run`, `status`, ...). [`LockError::Held`] if another process holds it.
    pub fn try_acquire(
        state_dir: &Path,
        release_id: &ReleaseId,
        command: &str,
    ) -> Result<ReleaseLock, LockError> {
        let io = |what: &str, e: std::io::Error| LockError::Io {
            release_id: release_id.to_string(),
            state_dir: state_dir.to_owned(),
            message: format!("{what}: {e}"),
        };
        let path = lock_path(state_dir, release_id);
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir)
                .map_err(|e| io(&format!("cannot create {}", dir.display()), e))?;
        }
        let mut file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(&path)
            .map_err(|e| io(&format!("cannot open {}", path.display()), e))?;
        match file.try_lock() {
            Ok(()) => {}
            Err(TryLockError::WouldBlock) => {
                return Err(LockError::Held {
                    release_id: release_id.to_string(),
                    state_dir: state_dir.to_owned(),
                    holder: read_holder(&mut file).map(Box::new),
                })
            }
            Err(TryLockError::Error(e)) => {
                return Err(io(&format!("cannot lock {}", path.display()), e))
            }
        }
        let now = OffsetDateTime::now_utc();
        let holder = Holder {
            release_id: release_id.to_string(),
            pid: std::process::id(),
            since: rfc3339(now.replace_nanosecond(0).unwrap_or(now)),
            command: command.to_owned(),
        };
        let text = serde_json::to_string(&holder).unwrap_or_default();
        file.set_len(0)
            .and_then(|()| file.seek(SeekFrom::Start(0)))
            .and_then(|_| file.write_all(format!("{text}\n").as_bytes()))
            .map_err(|e| io(&format!("cannot write {}", path.display()), e))?;
        Ok(ReleaseLock {
            _file: file,
            path,
            release_id: release_id.clone(),
            state_dir: state_dir.to_owned(),
        })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    pub fn release_id(&self) -> &ReleaseId {
        &self.release_id
    }

    /// With this lock held, a RUNNING release of its id is one no process runs: ends it
    /// FAILED with [`INTERRUPTED_CAUSE`], conditional on its stored owner, at `now` or the
    /// latest time recorded on it if later (a local run's clock is virtual and runs ahead of
    /// the wall clock). Its runs are settled too, so nothing polls them again: the simulated
    /// executions of the runs in progress died with the run, so they are recorded `NotFound`
    /// (gone while running), and every task token (of the dead run's engine) is cleared.
    /// The changes go through the use cases, so their events are written with them and
    /// published to the state directory's `events.jsonl` as a run's are; then what the dead
    /// run left in the release's outbox is published too (its sweep, which would have, is
    /// gone). Returns what was ended, `None` if the release was not RUNNING (or was ended by
    /// someone else meanwhile).
    pub fn end_interrupted(
        &self,
        store: &dyn ReleaseStore,
        now: OffsetDateTime,
    ) -> PortResult<Option<EndedRelease>> {
        let Some(stored) = block_on(store.get(&self.release_id))? else {
            return Ok(None);
        };
        if stored.release.status != ReleaseStatus::Running {
            return Ok(None);
        }
        // To the second, as a local run's clock starts.
        let now = now.replace_nanosecond(0).unwrap_or(now);
        let at = now.max(latest_recorded(&stored));
        let bus = JsonlBus::for_state_dir(&self.state_dir);
        let clock = StandingClock(at);
        let writer = Writer {
            store,
            bus: &bus,
            clock: &clock,
        };
        let release = match block_on(finish_release(
            &writer,
            &self.release_id,
            &stored.release.owner,
            ReleaseStatus::Failed,
            Some(INTERRUPTED_CAUSE),
            at,
        )) {
            Ok(record) if record.status == ReleaseStatus::Failed => record,
            Ok(_) | Err(PortError::ConditionFailed(_)) => return Ok(None),
            Err(e) => return Err(e),
        };
        let mut gone = Vec::new();
        for run in &stored.runs {
            let key = RunKey {
                release_id: self.release_id.clone(),
                pipeline: run.spec.name.clone(),
            };
            if let Some(token) = &run.task_token {
                block_on(store.clear_token(&key, token))?;
            }
            if run.execution_id.is_some() && !run.status.is_terminal() {
                block_on(record_run_status(
                    &writer,
                    &key,
                    RunStatus::NotFound,
                    at,
                    None,
                ))?;
                gone.push(run.spec.name.clone());
            }
        }
        block_on(publish(store, &bus, Some(&self.release_id)));
        Ok(Some(EndedRelease { release, gone }))
    }
}

/// The clock of [`ReleaseLock::end_interrupted`]: it stands at the time the end is recorded,
/// so what the use cases stamp with "now" (a wave's end) is not before the runs' times (a
/// local run's clock is virtual and runs ahead of the wall clock).
struct StandingClock(OffsetDateTime);

impl Clock for StandingClock {
    fn now(&self) -> OffsetDateTime {
        self.0
    }
}

/// A release [`ReleaseLock::end_interrupted`] ended.
#[derive(Debug, Clone, PartialEq)]
pub struct EndedRelease {
    /// The release as ended: FAILED, [`INTERRUPTED_CAUSE`].
    pub release: ReleaseRecord,
    /// The pipelines that were in progress, now recorded `NotFound`.
    pub gone: Vec<String>,
}

/// What an opening command found.
#[derive(Debug, Clone, PartialEq)]
pub enum Interrupted {
    /// The release is unknown, or not RUNNING: nothing to do.
    No,
    /// It is RUNNING and a live local run holds its lock.
    Running(Option<Holder>),
    /// It was RUNNING with no run holding its lock: now ended FAILED. Boxed: a release record
    /// (its lifecycle) is large next to the other variants.
    Ended(Box<EndedRelease>),
}

/// For a command that opens `release_id` in `state_dir` (`status`, ...): if the store has it
/// RUNNING and no process holds its lock, ends it FAILED with [`INTERRUPTED_CAUSE`] (see
/// [`ReleaseLock::end_interrupted`]). `command` names the caller in the lock file while it
/// holds the lock. A run takes the lock itself and calls [`ReleaseLock::end_interrupted`].
pub fn end_if_interrupted(
    store: &dyn ReleaseStore,
    state_dir: &Path,
    release_id: &ReleaseId,
    command: &str,
    now: OffsetDateTime,
) -> Result<Interrupted, String> {
    let release = block_on(store.release_record(release_id)).map_err(|e| e.to_string())?;
    if release.map(|r| r.status) != Some(ReleaseStatus::Running) {
        return Ok(Interrupted::No);
    }
    let lock = match ReleaseLock::try_acquire(state_dir, release_id, command) {
        Ok(lock) => lock,
        Err(LockError::Held { holder, .. }) => return Ok(Interrupted::Running(holder.map(|h| *h))),
        Err(e) => return Err(e.to_string()),
    };
    Ok(
        match lock
            .end_interrupted(store, now)
            .map_err(|e| e.to_string())?
        {
            Some(record) => Interrupted::Ended(Box::new(record)),
            None => Interrupted::No,
        },
    )
}

/// The note a command prints when it ended an interrupted release.
pub fn interrupted_note(ended: &EndedRelease, state_dir: &Path) -> String {
    let release = &ended.release;
    let mut note = format!(
        "note: release {} was RUNNING in {} but no local run holds it any more (execution {} was interrupted); recorded it FAILED: {INTERRUPTED_CAUSE}",
        release.release_id,
        state_dir.display(),
        release.owner
    );
    match ended.gone.len() {
        0 => {}
        1 => note.push_str(&format!(
            "; its pipeline in progress, {}, ended with it: recorded NotFound",
            ended.gone[0]
        )),
        n => note.push_str(&format!(
            "; its {n} pipelines in progress ended with it: recorded NotFound"
        )),
    }
    note
}

fn read_holder(file: &mut File) -> Option<Holder> {
    let mut text = String::new();
    file.seek(SeekFrom::Start(0)).ok()?;
    file.read_to_string(&mut text).ok()?;
    serde_json::from_str(text.trim()).ok()
}

/// The latest time recorded on a release or its runs.
fn latest_recorded(stored: &StoredRelease) -> OffsetDateTime {
    let r = &stored.release;
    std::iter::once(r.requested_at)
        .chain(r.ended_at)
        .chain(stored.runs.iter().flat_map(|run| {
            run.started_at
                .into_iter()
                .chain(run.ended_at)
                .chain(run.history.iter().map(|h| h.at))
        }))
        .max()
        .unwrap_or(r.requested_at)
}

fn rfc3339(t: OffsetDateTime) -> String {
    t.format(&time::format_description::well_known::Rfc3339)
        .unwrap_or_else(|_| t.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::SqliteStore;
    use rm_core::ports::Claim;
    use rm_testkit::store_contract::new_release;
    use time::macros::datetime;

    fn id(s: &str) -> ReleaseId {
        ReleaseId::parse(s).unwrap()
    }

    #[test]
    fn a_held_lock_refuses_a_second_holder_and_names_the_first_until_dropped() {
        let dir = tempfile::tempdir().unwrap();
        let first = ReleaseLock::try_acquire(dir.path(), &id("2026.11.22"), "run").unwrap();
        assert!(first.path().starts_with(dir.path().join(LOCK_DIR)));
        // flock locks conflict between two opens of the file, even in one process.
        let err = ReleaseLock::try_acquire(dir.path(), &id("2026.11.22"), "run").unwrap_err();
        let LockError::Held { holder, .. } = &err else {
            panic!("{err:?}")
        };
        let holder = holder.as_ref().expect("the holder is written in the file");
        assert_eq!(holder.pid, std::process::id());
        assert_eq!(holder.release_id, "2026.11.22");
        let message = err.to_string();
        assert!(
            message.starts_with(&format!(
                "release 2026.11.22 is being run by another local run (pid {}, since ",
                std::process::id()
            )),
            "{message}"
        );
        assert!(
            message.ends_with(&format!(
                ") in {}; wait for it, or use another --state-dir",
                dir.path().display()
            )),
            "{message}"
        );
        // Another release id has its own lock.
        let other = ReleaseLock::try_acquire(dir.path(), &id("2026.11.23"), "run").unwrap();
        drop(first);
        let again = ReleaseLock::try_acquire(dir.path(), &id("2026.11.22"), "status").unwrap();
        drop((again, other));
    }

    #[test]
    fn ids_differing_in_case_have_their_own_lock_files() {
        let dir = Path::new("/state");
        assert_ne!(lock_path(dir, &id("Abc")), lock_path(dir, &id("abc")));
        assert_eq!(
            lock_path(dir, &id("a.1")),
            Path::new("/state/locks/612e31.lock")
        );
    }

    #[test]
    fn a_running_release_nobody_holds_is_ended_failed_and_one_held_is_left_running() {
        let dir = tempfile::tempdir().unwrap();
        let store = SqliteStore::open_dir(dir.path()).unwrap();
        let release = new_release("r-1", "local-exec-1", &["app", "web"]);
        let rid = release.record.release_id.clone();
        assert_eq!(block_on(store.claim(&release)).unwrap(), Claim::Claimed);
        // The run's virtual clock ran ahead of the wall clock: the end is not before it.
        let late = datetime!(2030-01-01 00:00:00 UTC);
        block_on(store.record_start(&rid, "local-exec-1", "app", "exec-app", late, &[])).unwrap();
        let key = RunKey {
            release_id: rid.clone(),
            pipeline: "app".into(),
        };
        block_on(store.record_status(&key, RunStatus::InProgress, late, &[])).unwrap();
        block_on(store.set_token(&key, "token-app", late)).unwrap();
        let web = RunKey {
            release_id: rid.clone(),
            pipeline: "web".into(),
        };
        // A busy start waits NotStarted with a token.
        block_on(store.set_token(&web, "token-web", late)).unwrap();
        let now = datetime!(2026-06-01 00:00:00 UTC);

        let run = ReleaseLock::try_acquire(dir.path(), &rid, "run").unwrap();
        let found = end_if_interrupted(&store, dir.path(), &rid, "status", now).unwrap();
        assert!(
            matches!(&found, Interrupted::Running(Some(h)) if h.command == "run"),
            "{found:?}"
        );
        let stored = block_on(store.get(&rid)).unwrap().unwrap();
        assert_eq!(stored.release.status, ReleaseStatus::Running);
        drop(run);

        let found = end_if_interrupted(&store, dir.path(), &rid, "status", now).unwrap();
        let Interrupted::Ended(ended) = found else {
            panic!("{found:?}")
        };
        let record = &ended.release;
        assert_eq!(record.status, ReleaseStatus::Failed);
        assert_eq!(record.cause.as_deref(), Some(INTERRUPTED_CAUSE));
        assert_eq!(record.owner, "local-exec-1");
        assert_eq!(record.ended_at, Some(late));
        assert_eq!(ended.gone, ["app"]);
        let note = interrupted_note(&ended, dir.path());
        assert!(
            note.ends_with("recorded it FAILED: local run interrupted; its pipeline in progress, app, ended with it: recorded NotFound"),
            "{note}"
        );
        // The started run is settled, its token gone; the run never reached stays NotStarted.
        let stored = block_on(store.get(&rid)).unwrap().unwrap();
        let app = stored.runs.iter().find(|r| r.spec.name == "app").unwrap();
        assert_eq!(app.status, RunStatus::NotFound);
        assert_eq!(app.ended_at, Some(late));
        assert_eq!(app.task_token, None);
        let web = stored.runs.iter().find(|r| r.spec.name == "web").unwrap();
        assert_eq!(web.status, RunStatus::NotStarted);
        assert_eq!(web.task_token, None);
        assert!(block_on(store.waiting_runs()).unwrap().is_empty());
        // The end and the run's are published to events.jsonl, then what the dead run left in
        // the outbox (here the claim's event): nothing is left in it.
        let events = crate::events::read_events(dir.path(), "r-1").unwrap();
        let changes: Vec<(&str, &str)> = events
            .iter()
            .map(|e| {
                (
                    e["detail-type"].as_str().unwrap_or_default(),
                    e["detail"]["status"].as_str().unwrap_or_default(),
                )
            })
            .collect();
        assert_eq!(
            changes,
            [
                ("Release Status Change", "FAILED"),
                ("Pipeline Run Status Change", "NotFound"),
                ("Release Status Change", "RUNNING"),
            ]
        );
        assert!(block_on(store.outbox(Some(&rid), 10)).unwrap().is_empty());
        // Ended once: the next opening finds nothing to do.
        assert_eq!(
            end_if_interrupted(&store, dir.path(), &rid, "status", now).unwrap(),
            Interrupted::No
        );
        let unknown = end_if_interrupted(&store, dir.path(), &id("nope"), "status", now);
        assert_eq!(unknown.unwrap(), Interrupted::No);
        assert!(
            !lock_path(dir.path(), &id("nope")).exists(),
            "no lock file for a release that is not running"
        );
    }
}

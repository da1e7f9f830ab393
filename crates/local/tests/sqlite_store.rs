//! The SQLite store against the store contract every adapter shares, plus what only a file
//! store has: it survives reopening, and two connections see the same conditions.

use futures::executor::block_on;
use rm_core::ports::{Claim, ReleaseStore};
use rm_local::SqliteStore;
use rm_testkit::store_contract;

#[test]
fn the_sqlite_store_meets_the_store_contract() {
    let dir = tempfile::tempdir().unwrap();
    let store = SqliteStore::open_dir(dir.path()).unwrap();
    block_on(store_contract::check_all(&store, "sqlite-"));
}

#[test]
fn releases_survive_reopening_and_claims_hold_across_connections() {
    let dir = tempfile::tempdir().unwrap();
    let first = SqliteStore::open_dir(dir.path()).unwrap();
    let second = SqliteStore::open_dir(dir.path()).unwrap();
    let release = store_contract::new_release("persisted", "exec-a", &["app", "web-2"]);
    assert_eq!(block_on(first.claim(&release)).unwrap(), Claim::Claimed);
    let rival = store_contract::new_release("persisted", "exec-b", &["app"]);
    assert_eq!(
        block_on(second.claim(&rival)).unwrap(),
        Claim::Duplicate {
            owner: "exec-a".into()
        }
    );
    drop((first, second));
    let reopened = SqliteStore::open_dir(dir.path()).unwrap();
    let stored = block_on(reopened.get(&release.record.release_id))
        .unwrap()
        .unwrap();
    assert_eq!(stored.release, release.record);
    assert_eq!(stored.runs.len(), 2);
    assert_eq!(stored.runs[1].spec, release.manifest.pipelines[1]);
    let rid = &release.record.release_id;
    let outbox = block_on(reopened.outbox(Some(rid), 10)).unwrap();
    assert_eq!(
        outbox, release.events,
        "the claim's events wait in the outbox"
    );
    assert!(reopened.forget(rid).unwrap());
    assert!(block_on(reopened.get(rid)).unwrap().is_none());
    // Its events and sequence numbers went with it: a new claim of the id starts afresh.
    assert!(block_on(reopened.outbox(Some(rid), 10)).unwrap().is_empty());
    let mut fresh = store_contract::new_release("persisted", "exec-c", &["app"]);
    fresh.events.clear();
    assert_eq!(block_on(reopened.claim(&fresh)).unwrap(), Claim::Claimed);
    assert_eq!(block_on(reopened.next_sequence(rid, 1)).unwrap(), 1);
}

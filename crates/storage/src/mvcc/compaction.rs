//! Compaction in the background (etcd's `scheduleCompaction`).
//!
//! Applying a compaction only records it: `scheduledCompactRev` in the
//! batch's transaction and, once committed, the store's compaction
//! revision, below which reads answer `compacted`. The superseded rows
//! are removed afterwards by [`KvStore::compact_batch`], called by one
//! worker ([`KvStore::run_compactor`]) in bounded batches, each its own
//! short backend transaction, so neither the apply stage nor the raft
//! loop waits for a whole compaction. The batch that finds no more rows
//! records `finishedCompactRev`. A compaction scheduled while another
//! runs replaces it (what the older one removes, the newer one removes
//! too); one interrupted by a restart resumes at start-up.
//!
//! Rows at or above the compaction revision, and the latest live row of
//! each key below it, are never removed, so reads at any revision still
//! allowed never notice the worker.

use std::collections::HashSet;
use std::ops::Bound;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Condvar, Mutex};
use std::time::{Duration, Instant};

use super::revision::Revision;
use super::store::{KvStore, MvccError};
use crate::schema::FINISHED_COMPACT_REV;
use crate::schema::{KEY_TABLE, META_TABLE};

/// The compaction waiting for (or in the middle of) removing its rows.
struct Job {
    /// The compaction revision.
    rev: i64,
    /// The rows at or below `rev` to keep; taken from the key index (and
    /// the index compacted) when the first batch runs.
    keep: Option<HashSet<Revision>>,
    /// The last row looked at; the next batch starts after it.
    after: Option<Vec<u8>>,
    /// When it was scheduled, for the log.
    scheduled: Instant,
    /// Rows removed so far.
    removed: u64,
}

/// The store's pending compaction and the worker's stop flag.
#[derive(Default)]
pub(crate) struct Compactions {
    job: Mutex<Option<Job>>,
    ready: Condvar,
    stop: AtomicBool,
}

impl Compactions {
    /// Schedules the removal of the rows compaction at `rev` frees (at
    /// start-up or restore: `None` for nothing pending).
    pub(crate) fn schedule(&self, rev: Option<i64>) {
        *self.job.lock().expect("compaction lock") = rev.map(|rev| Job {
            rev,
            keep: None,
            after: None,
            scheduled: Instant::now(),
            removed: 0,
        });
        self.ready.notify_all();
    }
}

impl KvStore {
    /// Removes the next batch of rows of the pending compaction: looks at
    /// up to `limit` rows (etcd's `--experimental-compaction-batch-limit`)
    /// on a read snapshot and deletes those compaction freed, in one backend
    /// transaction.
    /// Returns whether rows are left to look at. Errors: the backend's;
    /// the batch is then not recorded and is retried.
    pub fn compact_batch(&self, limit: usize) -> Result<bool, MvccError> {
        let _rewrites = self.backend().rewrite_guard();
        let mut pending = self.compactions.job.lock().expect("compaction lock");
        let Some(job) = pending.as_mut() else {
            return Ok(false);
        };
        let keep = job
            .keep
            .get_or_insert_with(|| self.index.write().expect("index lock").compact(job.rev));
        // Rows at or below the compaction revision change only here (defrag
        // and restore wait on the rewrite guard), so they are looked at on a
        // snapshot, and the write transaction, which holds the apply stage
        // off, only removes them.
        let mut looked = 0;
        let mut after = None;
        let mut doomed = Vec::new();
        {
            let snap = self.backend().read()?;
            let table = snap.open_table(KEY_TABLE)?;
            let upper = Revision::new(job.rev, i64::MAX).to_key(true);
            let lower = match job.after.as_deref() {
                Some(k) => Bound::Excluded(k),
                None => Bound::Unbounded,
            };
            for item in table.range::<&[u8]>((lower, Bound::Included(upper.as_slice())))? {
                let (k, _) = item?;
                let k = k.value();
                if Revision::from_key(k).is_some_and(|(r, _)| !keep.contains(&r)) {
                    doomed.push(k.to_vec());
                }
                looked += 1;
                if looked == limit.max(1) {
                    after = Some(k.to_vec());
                    break;
                }
            }
        }
        let done = looked < limit.max(1);
        let tx = self.backend().write(false)?;
        {
            let mut table = tx.open_table(KEY_TABLE)?;
            for k in &doomed {
                table.remove(k.as_slice())?;
            }
        }
        if done {
            let mut meta = tx.open_table(META_TABLE)?;
            meta.insert(
                FINISHED_COMPACT_REV,
                (job.rev as u64).to_be_bytes().as_slice(),
            )?;
        }
        self.backend().commit(tx)?;
        job.removed += doomed.len() as u64;
        if done {
            tracing::info!(
                compact_revision = job.rev,
                took = ?job.scheduled.elapsed(),
                removed_rows = job.removed,
                "finished scheduled compaction"
            );
            *pending = None;
        } else {
            job.after = after;
        }
        Ok(!done)
    }

    /// Runs [`KvStore::compact_batch`] until no compaction is pending
    /// (tests and offline tools, which have no worker).
    pub fn finish_compaction(&self) -> Result<(), MvccError> {
        while self.compact_batch(usize::MAX)? {}
        Ok(())
    }

    /// The compaction worker: waits for compactions and removes their rows
    /// in batches of `limit`, sleeping `interval` between batches (etcd's
    /// `--experimental-compaction-sleep-interval`), until
    /// [`KvStore::stop_compactor`]. A failed batch is logged and retried
    /// a second later.
    pub fn run_compactor(&self, limit: usize, interval: Duration) {
        let c = &self.compactions;
        while !c.stop.load(Ordering::Acquire) {
            {
                let job = c.job.lock().expect("compaction lock");
                if job.is_none() {
                    let _ = c.ready.wait_timeout(job, Duration::from_millis(100));
                    continue;
                }
            }
            match self.compact_batch(limit) {
                Ok(true) => std::thread::sleep(interval),
                Ok(false) => {}
                Err(e) => {
                    tracing::warn!(error = %e, "a compaction batch failed; retrying");
                    std::thread::sleep(Duration::from_secs(1));
                }
            }
        }
    }

    /// Ends [`KvStore::run_compactor`] after its current batch. What is
    /// left of a compaction resumes at the next start.
    pub fn stop_compactor(&self) {
        self.compactions.stop.store(true, Ordering::Release);
        self.compactions.ready.notify_all();
    }

    /// Whether a compaction still has rows to remove.
    pub fn compaction_pending(&self) -> bool {
        self.compactions
            .job
            .lock()
            .expect("compaction lock")
            .is_some()
    }
}

#[cfg(test)]
mod tests {
    use super::super::key_index::RangeEnd;
    use super::super::store::tests::{get, open, put};
    use super::*;
    use redb::ReadableTableMetadata;

    fn rows(s: &KvStore) -> u64 {
        let rtx = s.backend().read().unwrap();
        rtx.open_table(KEY_TABLE).unwrap().len().unwrap()
    }

    #[test]
    fn compaction_removes_old_versions_and_survives_restart() {
        let dir = tempfile::tempdir().unwrap();
        {
            let s = open(dir.path());
            put(&s, "a", "1"); // 2
            put(&s, "a", "2"); // 3
            put(&s, "b", "1"); // 4
            let mut t = s.begin().unwrap();
            t.delete_range(b"b", RangeEnd::Single).unwrap(); // 5
            t.end_request();
            t.compact(5).unwrap();
            assert!(matches!(t.compact(5), Err(MvccError::Compacted)));
            t.commit().unwrap();
            assert!(matches!(get(&s, "a", 4), Err(MvccError::Compacted)));
            assert_eq!(get(&s, "a", 5).unwrap().unwrap().value, b"2");
            // Applied, not yet carried out: the rows are all there.
            assert!(s.compaction_pending());
            assert_eq!(rows(&s), 4);
            s.finish_compaction().unwrap();
            assert!(!s.compaction_pending());
        }
        let s = open(dir.path());
        assert!(!s.compaction_pending());
        assert_eq!(s.current_revision(), 5);
        assert_eq!(s.compact_revision(), 5);
        let kv = get(&s, "a", 0).unwrap().unwrap();
        assert_eq!((kv.create_revision, kv.mod_revision, kv.version), (2, 3, 2));
        assert_eq!(get(&s, "b", 0).unwrap(), None);
        assert_eq!(put(&s, "a", "3"), 6);
        assert_eq!(get(&s, "a", 0).unwrap().unwrap().version, 3);
        // Only a's latest revision below the compaction and its new one remain.
        assert_eq!(rows(&s), 2);
    }

    #[test]
    fn batches_are_bounded_and_an_interrupted_compaction_resumes_at_start() {
        let dir = tempfile::tempdir().unwrap();
        {
            let s = open(dir.path());
            for i in 0..10 {
                put(&s, "k", &i.to_string()); // 2..=11
            }
            let mut t = s.begin().unwrap();
            t.compact(11).unwrap();
            t.commit().unwrap();
            // Three rows looked at, three removed: seven rows left.
            assert!(s.compact_batch(3).unwrap());
            assert_eq!(rows(&s), 7);
            // The backend is made durable (as the apply stage's next
            // durable commit would) and the member stops mid-way.
            s.begin_durable().unwrap().commit().unwrap();
        }
        let s = open(dir.path());
        assert_eq!(s.compact_revision(), 11);
        assert!(matches!(get(&s, "k", 10), Err(MvccError::Compacted)));
        assert!(s.compaction_pending());
        s.finish_compaction().unwrap();
        assert_eq!(rows(&s), 1);
        assert_eq!(get(&s, "k", 0).unwrap().unwrap().value, b"9");
    }

    #[test]
    fn a_newer_compaction_replaces_a_pending_one() {
        let dir = tempfile::tempdir().unwrap();
        let s = open(dir.path());
        for i in 0..6 {
            put(&s, "k", &i.to_string()); // 2..=7
        }
        for rev in [3, 6] {
            let mut t = s.begin().unwrap();
            t.compact(rev).unwrap();
            t.commit().unwrap();
        }
        s.finish_compaction().unwrap();
        // Revisions 6 and 7 remain.
        assert_eq!(rows(&s), 2);
        assert_eq!(get(&s, "k", 6).unwrap().unwrap().value, b"4");
    }

    #[test]
    fn the_worker_removes_rows_and_stops() {
        let dir = tempfile::tempdir().unwrap();
        let s = std::sync::Arc::new(open(dir.path()));
        for i in 0..5 {
            put(&s, "k", &i.to_string());
        }
        let worker = {
            let s = s.clone();
            std::thread::spawn(move || s.run_compactor(2, Duration::from_millis(1)))
        };
        let mut t = s.begin().unwrap();
        t.compact(6).unwrap();
        t.commit().unwrap();
        let deadline = Instant::now() + Duration::from_secs(10);
        while s.compaction_pending() && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(5));
        }
        assert!(!s.compaction_pending());
        assert_eq!(rows(&s), 1);
        s.stop_compactor();
        worker.join().unwrap();
    }
}

//! The file under redb, with its fsync on a thread of its own, so that a
//! durable commit does not hold redb's write lock through the disk flush.
//!
//! redb holds its single write transaction through a durable commit: it
//! writes the commit's pages and header, then calls
//! [`StorageBackend::sync_data`], and only then lets the next transaction
//! begin. [`SyncedFile`] answers `sync_data` at once and hands the fsync to
//! its syncer thread, so the apply stage's next batch begins while the disk
//! flushes. What keeps this safe on power loss is order: every later
//! mutation of the file (a `write`, a `set_len` that shrinks it) waits
//! until the fsyncs asked for before it have finished, so the file on disk
//! is always some prefix of what redb wrote, cut at a sync, exactly as if
//! the machine had failed just before `sync_data` returned. (Growing the
//! file only adds zeros past every page a commit refers to, and redb asks
//! for a sync after it, before it writes there; it does not wait.) redb's recovery handles that case (it
//! falls back to the previous commit slot, whose pages it has not reused:
//! reusing them is a later write). Reads never wait.
//!
//! redb does not write between commits with `Durability::None` (their
//! pages stay in its write buffer) unless its cache is under pressure, so
//! in practice only the next durable commit, 100 ms later, would wait, and
//! only for a disk slower than that.
//!
//! Whoever needs a commit on disk before a step outside the file (the WAL
//! segments raft releases, a rename) waits for it with [`Syncs::wait`] or
//! is called back by [`Syncs::then`]. An fsync that fails fails every
//! later mutation and sync of the file, as redb fails after an I/O error;
//! what waited on it is never called.

use std::collections::VecDeque;
use std::fs::File;
use std::io;
use std::ops::Bound;
use std::path::Path;
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::thread::JoinHandle;

use redb::backends::FileBackend;
use redb::StorageBackend;

/// What runs once the fsyncs asked for before it have finished.
type Then = Box<dyn FnOnce() + Send>;

/// The fsyncs of one file: how many were asked for and how many are done.
#[derive(Default)]
pub struct Syncs {
    state: Mutex<State>,
    changed: Condvar,
}

#[derive(Default)]
struct State {
    /// fsyncs asked for (`sync_data` calls).
    requested: u64,
    /// fsyncs known finished: everything written before the
    /// `done`-th request is on disk.
    done: u64,
    /// The error of a failed fsync, as (kind, text); sticks.
    failed: Option<(io::ErrorKind, String)>,
    /// Callbacks waiting for a request number to be done, oldest first.
    waiting: VecDeque<(u64, Then)>,
    /// Set when the file closes: the syncer stops once nothing is asked.
    closing: bool,
}

impl State {
    fn error(&self) -> io::Result<()> {
        match &self.failed {
            Some((kind, text)) => Err(io::Error::new(*kind, text.clone())),
            None => Ok(()),
        }
    }
}

impl Syncs {
    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().expect("sync state lock")
    }

    /// Blocks until every fsync asked for so far has finished. Errors: the
    /// failed fsync's error.
    pub fn wait(&self) -> io::Result<()> {
        let mut st = self.lock();
        let target = st.requested;
        while st.done < target && st.failed.is_none() {
            st = self.changed.wait(st).expect("sync state lock");
        }
        st.error()
    }

    /// Runs `then` (on the syncer thread, or here if nothing is pending)
    /// once every fsync asked for so far has finished; never if one fails.
    pub fn then(&self, then: impl FnOnce() + Send + 'static) {
        let mut st = self.lock();
        if st.failed.is_some() {
            return;
        }
        if st.done >= st.requested {
            drop(st);
            then();
            return;
        }
        let target = st.requested;
        st.waiting.push_back((target, Box::new(then)));
    }

    /// Whether an fsync asked for has not finished yet.
    pub fn pending(&self) -> bool {
        let st = self.lock();
        st.done < st.requested
    }

    /// Asks for an fsync of what was written so far.
    fn request(&self) -> io::Result<()> {
        let mut st = self.lock();
        st.error()?;
        st.requested += 1;
        self.changed.notify_all();
        Ok(())
    }

    /// The syncer thread: calls `sync` (the file's fsync) whenever asked
    /// and runs what waited for it, until closing.
    fn run(&self, mut sync: impl FnMut() -> io::Result<()>) {
        let mut st = self.lock();
        loop {
            let done = st.done;
            let mut ready = Vec::new();
            while st.waiting.front().is_some_and(|(t, _)| *t <= done) {
                ready.extend(st.waiting.pop_front().map(|(_, f)| f));
            }
            if !ready.is_empty() {
                drop(st);
                ready.into_iter().for_each(|f| f());
                st = self.lock();
                continue;
            }
            if st.done == st.requested {
                if st.closing {
                    return;
                }
                st = self.changed.wait(st).expect("sync state lock");
                continue;
            }
            let target = st.requested;
            drop(st);
            let synced = sync();
            st = self.lock();
            st.done = target;
            if let Err(e) = synced {
                tracing::error!(error = %e, "backend fsync failed");
                st.failed = Some((e.kind(), e.to_string()));
                st.waiting.clear();
            }
            self.changed.notify_all();
        }
    }
}

/// redb's file backend with [`Syncs`] in front of its fsync.
pub struct SyncedFile {
    file: FileBackend,
    syncs: Arc<Syncs>,
    syncer: Mutex<Option<JoinHandle<()>>>,
}

impl std::fmt::Debug for SyncedFile {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SyncedFile").finish_non_exhaustive()
    }
}

impl SyncedFile {
    /// The backend on `file`, with its syncer thread started; the
    /// [`Syncs`] are for whoever must wait for its commits to be on disk.
    /// `path` is the file's, for the slow-disk failpoint.
    pub fn new(file: File, path: &Path) -> io::Result<(SyncedFile, Arc<Syncs>)> {
        let syncs = Arc::new(Syncs::default());
        let for_syncer = file.try_clone()?;
        #[cfg(feature = "failpoints")]
        let member_dir = path.parent().and_then(Path::parent).map(Path::to_path_buf);
        #[cfg(not(feature = "failpoints"))]
        let _ = path;
        let sync = move || {
            #[cfg(feature = "failpoints")]
            crate::failpoint::slow_fsync(member_dir.as_deref());
            for_syncer.sync_data()
        };
        let s = syncs.clone();
        let syncer = std::thread::Builder::new()
            .name("backend-fsync".into())
            .spawn(move || s.run(sync))?;
        let backend = SyncedFile {
            file: FileBackend::new(file).map_err(io::Error::other)?,
            syncs: syncs.clone(),
            syncer: Mutex::new(Some(syncer)),
        };
        Ok((backend, syncs))
    }

    /// Stops the syncer once every fsync asked for has finished.
    fn stop(&self) -> io::Result<()> {
        let waited = self.syncs.wait();
        self.syncs.lock().closing = true;
        self.syncs.changed.notify_all();
        if let Some(t) = self.syncer.lock().expect("syncer lock").take() {
            let _ = t.join();
        }
        waited
    }
}

impl Drop for SyncedFile {
    fn drop(&mut self) {
        let _ = self.stop();
    }
}

impl StorageBackend for SyncedFile {
    fn len(&self) -> Result<u64, io::Error> {
        self.file.len()
    }

    fn read(&self, offset: u64, out: &mut [u8]) -> Result<(), io::Error> {
        self.file.read(offset, out)
    }

    fn set_len(&self, len: u64) -> Result<(), io::Error> {
        // Growing adds zeros past everything any commit refers to, so it
        // need not wait; shrinking may cut pages the last synced commit
        // still uses.
        if len < self.file.len()? {
            self.syncs.wait()?;
        }
        self.file.set_len(len)
    }

    fn sync_data(&self) -> Result<(), io::Error> {
        self.syncs.request()
    }

    fn write(&self, offset: u64, data: &[u8]) -> Result<(), io::Error> {
        self.syncs.wait()?;
        self.file.write(offset, data)
    }

    fn close(&self) -> Result<(), io::Error> {
        let stopped = self.stop();
        self.file.close()?;
        stopped
    }

    fn try_lock_range(
        &self,
        start: Bound<u64>,
        end: Bound<u64>,
    ) -> Result<bool, redb::BackendError> {
        self.file.try_lock_range(start, end)
    }

    fn try_lock_shared_range(
        &self,
        start: Bound<u64>,
        end: Bound<u64>,
    ) -> Result<bool, redb::BackendError> {
        self.file.try_lock_shared_range(start, end)
    }

    fn lock_range(&self, start: Bound<u64>, end: Bound<u64>) -> Result<(), redb::BackendError> {
        self.file.lock_range(start, end)
    }

    fn lock_shared_range(
        &self,
        start: Bound<u64>,
        end: Bound<u64>,
    ) -> Result<(), redb::BackendError> {
        self.file.lock_shared_range(start, end)
    }

    fn unlock_range(&self, start: Bound<u64>, end: Bound<u64>) -> Result<(), redb::BackendError> {
        self.file.unlock_range(start, end)
    }

    fn query_lock_range(
        &self,
        start: Bound<u64>,
        end: Bound<u64>,
    ) -> Result<bool, redb::BackendError> {
        self.file.query_lock_range(start, end)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::mpsc;
    use std::time::Duration;

    /// A syncer whose fsyncs each wait for a message on the returned
    /// sender and then answer `result`.
    fn gated(result: fn() -> io::Result<()>) -> (Arc<Syncs>, mpsc::Sender<()>) {
        let syncs = Arc::new(Syncs::default());
        let (open, gate) = mpsc::channel::<()>();
        let s = syncs.clone();
        std::thread::spawn(move || {
            s.run(|| {
                gate.recv().map_err(io::Error::other)?;
                result()
            })
        });
        (syncs, open)
    }

    const LONG: Duration = Duration::from_secs(10);

    #[test]
    fn a_mutation_waits_for_the_fsync_asked_before_it() {
        let (syncs, open) = gated(|| Ok(()));
        syncs.request().unwrap();
        let (done_tx, done) = mpsc::channel();
        let s = syncs.clone();
        std::thread::spawn(move || done_tx.send(s.wait()).unwrap());
        // Nothing can end the wait but the fsync, which is held.
        assert!(done.recv_timeout(Duration::from_millis(200)).is_err());
        open.send(()).unwrap();
        assert!(done.recv_timeout(LONG).unwrap().is_ok());
    }

    #[test]
    fn then_runs_once_the_fsyncs_before_it_are_done() {
        let (syncs, open) = gated(|| Ok(()));
        let (ran_tx, ran) = mpsc::channel();
        let tx = ran_tx.clone();
        syncs.then(move || tx.send("before any request").unwrap());
        assert_eq!(ran.recv_timeout(LONG), Ok("before any request"));
        syncs.request().unwrap();
        syncs.request().unwrap();
        syncs.then(move || ran_tx.send("after two").unwrap());
        assert!(ran.try_recv().is_err());
        open.send(()).unwrap();
        // One fsync covers both requests when both came before it; if it
        // began after the first, a second one is asked for.
        let _ = open.send(());
        assert_eq!(ran.recv_timeout(LONG), Ok("after two"));
        assert!(syncs.wait().is_ok());
    }

    #[test]
    fn a_failed_fsync_fails_what_follows_and_drops_what_waited() {
        let (syncs, open) = gated(|| Err(io::Error::other("disk gone")));
        syncs.request().unwrap();
        let (ran_tx, ran) = mpsc::channel::<()>();
        syncs.then(move || ran_tx.send(()).unwrap());
        open.send(()).unwrap();
        let waited = syncs.wait().unwrap_err();
        assert_eq!(waited.to_string(), "disk gone");
        // Dropped, never called: the sender went with it.
        assert_eq!(
            ran.recv_timeout(LONG),
            Err(mpsc::RecvTimeoutError::Disconnected)
        );
        assert!(syncs.request().is_err());
    }

    #[test]
    fn durable_commits_reach_a_reopened_file() {
        use crate::backend::Backend;
        use crate::schema::KEY_TABLE;
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("db");
        {
            let b = Backend::open(&path).unwrap();
            for i in 0u64..50 {
                let tx = b.write(i % 10 == 9).unwrap();
                tx.open_table(KEY_TABLE)
                    .unwrap()
                    .insert(i.to_be_bytes().as_slice(), b"v".as_slice())
                    .unwrap();
                b.commit(tx).unwrap();
            }
            b.wait_synced().unwrap();
        }
        let b = Backend::open(&path).unwrap();
        let rtx = b.read().unwrap();
        let t = rtx.open_table(KEY_TABLE).unwrap();
        use redb::ReadableTableMetadata;
        assert_eq!(t.len().unwrap(), 50);
    }
}

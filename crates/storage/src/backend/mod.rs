//! The backend: one redb file holding the state machine (etcd's bbolt
//! `member/snap/db`).
//!
//! Its tables and their records are the schema's (`crate::schema`). The
//! apply stage writes in batch transactions committed without fsync (the
//! WAL is what makes a write durable) and forces a durable commit every
//! [`Backend::DURABLE_COMMIT_INTERVAL`] or on close; the fsync of a durable
//! commit runs on a thread of its own (`synced.rs`), after the write lock
//! is free, with [`Backend::then_synced`] and [`Backend::wait_synced`] for
//! what must follow it. Readers use redb read transactions, which are
//! snapshots, so they run beside the apply stage.
//!
//! The open redb database can be replaced while the member runs: online
//! defragmentation (`defrag.rs`) builds a compact copy and swaps it in.
//! Readers and writers ask for the current database on every
//! transaction; one begun on the old file finishes there.

mod defrag;
mod synced;

pub use defrag::Defragmented;
pub use synced::Syncs;

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard, RwLock};
use std::time::{Duration, Instant};

use redb::{
    Database, Durability, ReadTransaction, ReadableDatabase, ReadableTableMetadata,
    WriteTransaction,
};

use crate::schema::{table_named, TABLES};

/// Errors of the backend: any redb failure, or an I/O error on the file.
#[derive(Debug, thiserror::Error)]
pub enum BackendError {
    /// redb failed (corruption, I/O, or a storage limit).
    #[error("backend: {0}")]
    Redb(#[from] redb::Error),
    /// The file system failed outside redb.
    #[error("backend: {0}")]
    Io(#[from] std::io::Error),
    /// A record that does not decode; the text says which.
    #[error("backend: corrupt {0}")]
    Corrupt(String),
    /// Another process (a running member) has the file open.
    #[error("backend: the database is open in another process")]
    InUse,
}

/// The backend file of the data dir `data_dir`: `member/snap/db`, where
/// etcd keeps its bbolt file (etcd's `datadir.ToBackendFileName`).
pub fn path_in(data_dir: &Path) -> PathBuf {
    data_dir.join("member").join("snap").join("db")
}

/// `From` each listed redb error for `$target`, through
/// `BackendError::Redb` (the target must convert from `BackendError`).
macro_rules! from_redb {
    ($target:ty: $($t:ty),* $(,)?) => {$(
        impl From<$t> for $target {
            fn from(e: $t) -> Self {
                <$target>::from(crate::backend::BackendError::Redb(e.into()))
            }
        }
    )*};
}
pub(crate) use from_redb;

from_redb!(BackendError:
    redb::DatabaseError,
    redb::TransactionError,
    redb::TableError,
    redb::StorageError,
    redb::CommitError,
    redb::CompactionError
);

/// The redb file with etcd's tables.
pub struct Backend {
    /// The open file; replaced whole by a defragmentation.
    db: RwLock<Arc<Database>>,
    /// The fsyncs of the open file, replaced with it.
    syncs: RwLock<Arc<Syncs>>,
    path: PathBuf,
    /// Held by whatever removes or replaces rows rather than adding them
    /// (compaction, restore from a snapshot) and by a defragmentation for
    /// its whole copy, which relies on rows only being added meanwhile.
    rewrites: Mutex<()>,
    /// The file's size in bytes after the last commit.
    size: std::sync::atomic::AtomicU64,
    /// Bytes in use as last measured, and when.
    in_use: Mutex<(u64, Instant)>,
}

impl Backend {
    /// How long batched commits may stay unsynced (etcd's
    /// `--backend-batch-interval` default is 100 ms).
    pub const DURABLE_COMMIT_INTERVAL: Duration = Duration::from_millis(100);

    /// redb's page cache, in bytes (a quarter of redb's 1 GiB default). It
    /// fills only with pages the member touches. 256 MiB kept the write
    /// throughput of `etcdctl check perf --load=xl` (7,605-7,975 writes/s
    /// against 7,713 with 1 GiB; 64 MiB cost 43%), lowered its peak RSS
    /// from 1,286 MB to 758-777 MB, and bounds what a range over more than
    /// it adds to the member while it answers (docs/benchmarks.md,
    /// docs/robustness.md).
    pub const CACHE_BYTES: usize = 256 * 1024 * 1024;

    /// Opens or creates the file at `path` (the parent must exist) and
    /// makes sure every table exists.
    pub fn open(path: &Path) -> Result<Backend, BackendError> {
        Backend::with_tables(create(path)?, path)
    }

    /// Blocks until every commit made so far is on disk (the fsyncs of
    /// durable commits run on a thread of their own: `synced.rs`). Errors:
    /// a failed fsync.
    pub fn wait_synced(&self) -> Result<(), BackendError> {
        Ok(self.syncs.read().expect("backend lock").clone().wait()?)
    }

    /// Whether the fsync of a durable commit is still running: a durable
    /// commit begun now would wait for it before writing.
    pub fn syncing(&self) -> bool {
        self.syncs.read().expect("backend lock").pending()
    }

    /// Runs `then` once every durable commit made so far is on disk, on
    /// the thread that fsynced it (or here, if it already is); never if
    /// the fsync fails. Keep it short: the next fsync waits for it.
    pub fn then_synced(&self, then: impl FnOnce() + Send + 'static) {
        self.syncs.read().expect("backend lock").clone().then(then)
    }

    /// Opens the existing file at `path` for an offline tool (etcdutl).
    /// Errors: `Io` (not found) when there is no file, `InUse` while a
    /// member has it open, redb's when it is not a backend.
    pub fn open_existing(path: &Path) -> Result<Backend, BackendError> {
        std::fs::metadata(path)?;
        match create(path) {
            Err(BackendError::Redb(redb::Error::DatabaseAlreadyOpen)) => Err(BackendError::InUse),
            db => Backend::with_tables(db?, path),
        }
    }

    /// The backend on `db` with its `syncs`, the file at `path`, with every
    /// table made.
    fn with_tables((db, syncs): Opened, path: &Path) -> Result<Backend, BackendError> {
        let tx = db.begin_write()?;
        for def in TABLES {
            tx.open_table(def)?;
        }
        tx.commit()?;
        Ok(Backend {
            db: RwLock::new(Arc::new(db)),
            syncs: RwLock::new(syncs),
            rewrites: Mutex::new(()),
            size: std::sync::atomic::AtomicU64::new(file_size(path)),
            path: path.to_path_buf(),
            // Measured when first asked, not at start-up.
            in_use: Mutex::new((0, Instant::now())),
        })
    }

    /// A snapshot to read from; it sees every commit made before it began.
    /// Keep the tables opened from it in its scope: the file it reads
    /// stays open while it lives, even once a defragmentation replaced it.
    pub fn read(&self) -> Result<ReadSnapshot, BackendError> {
        // Begun under the lock, so a read never starts on a database a
        // defragmentation has already replaced.
        let db = self.db.read().expect("backend lock");
        Ok(ReadSnapshot {
            tx: db.begin_read()?,
            _db: db.clone(),
        })
    }

    /// The database open now.
    fn current(&self) -> Arc<Database> {
        self.db.read().expect("backend lock").clone()
    }

    /// Waits for rows to be only added, not removed, until the guard is
    /// dropped: compaction and restore take it around their deletions.
    pub fn rewrite_guard(&self) -> MutexGuard<'_, ()> {
        self.rewrites.lock().expect("rewrite lock")
    }

    /// A batch transaction; `durable` makes its commit fsync the file.
    /// Waits while another is open, or while a defragmentation swaps the
    /// file.
    pub fn write(&self, durable: bool) -> Result<WriteTransaction, BackendError> {
        let mut tx = loop {
            let db = self.current();
            let tx = db.begin_write()?;
            if Arc::ptr_eq(&db, &self.current()) {
                break tx;
            }
            // The file was swapped while this waited: begin on the new one.
            tx.abort()?;
        };
        let durability = if durable {
            Durability::Immediate
        } else {
            Durability::None
        };
        tx.set_durability(durability)
            .expect("durability is set before any write");
        Ok(tx)
    }

    /// Writes `(table, key, value)` entries in one transaction; used to
    /// fill a backend received from the leader. Unknown tables are skipped.
    pub fn write_entries(
        &self,
        entries: &[(String, Vec<u8>, Vec<u8>)],
        durable: bool,
    ) -> Result<(), BackendError> {
        let tx = self.write(durable)?;
        for (name, k, v) in entries {
            if let Some(def) = table_named(name) {
                tx.open_table(def)?.insert(k.as_slice(), v.as_slice())?;
            }
        }
        self.commit(tx)
    }

    /// Disk space of the file, in bytes (etcd's `dbSize`: see
    /// `file_size`), as of the last commit: no system call, so the API
    /// layer can check the space quota on every write.
    pub fn size_bytes(&self) -> u64 {
        self.size.load(std::sync::atomic::Ordering::Relaxed)
    }

    /// How long a measured in-use size is served before it is measured
    /// again.
    const IN_USE_REFRESH: Duration = Duration::from_secs(5);

    /// Bytes of the file holding live data (etcd's `dbSizeInUse`): the
    /// pages of every table, measured on a read snapshot at most every
    /// [`Self::IN_USE_REFRESH`]. Measuring visits every page (redb keeps
    /// no count a reader can get), so call it off async workers; it never
    /// holds up a writer. Until a measure succeeds, the last one stands;
    /// while none has found anything in use (a backend just opened), each
    /// call measures.
    pub fn size_in_use_bytes(&self) -> u64 {
        let mut in_use = self.in_use.lock().expect("in-use lock");
        if in_use.0 == 0 || in_use.1.elapsed() >= Self::IN_USE_REFRESH {
            if let Ok(bytes) = in_use_of(&self.current()) {
                *in_use = (bytes, Instant::now());
            }
        }
        in_use.0
    }

    /// Commits `tx`.
    pub fn commit(&self, tx: WriteTransaction) -> Result<(), BackendError> {
        #[cfg(feature = "failpoints")]
        crate::failpoint::disk_full(self.path.parent().and_then(Path::parent))?;
        let started = Instant::now();
        tx.commit()?;
        metrics::BACKEND_COMMIT.observe(started.elapsed().as_secs_f64());
        self.size
            .store(file_size(&self.path), std::sync::atomic::Ordering::Relaxed);
        Ok(())
    }
}

/// A read transaction with the database it reads, kept open for it (redb
/// fails the reads of a transaction whose database was dropped).
pub struct ReadSnapshot {
    // Dropped before the database.
    tx: ReadTransaction,
    _db: Arc<Database>,
}

impl std::ops::Deref for ReadSnapshot {
    type Target = ReadTransaction;

    fn deref(&self) -> &ReadTransaction {
        &self.tx
    }
}

/// An open redb file with the fsyncs of its commits.
type Opened = (Database, Arc<Syncs>);

/// Opens or creates the redb file at `path` with the member's cache size,
/// on a [`synced::SyncedFile`].
fn create(path: &Path) -> Result<Opened, BackendError> {
    let file = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .open(path)?;
    let (file, syncs) = synced::SyncedFile::new(file, path)?;
    let db = Database::builder()
        .set_cache_size(Backend::CACHE_BYTES)
        .create_with_backend(file)?;
    Ok((db, syncs))
}

/// The disk space the file at `path` takes, in bytes; 0 when it cannot be
/// read. Below 4 GiB redb doubles the file's length whenever it needs
/// room, so the length runs up to twice what was ever written; the
/// extension is sparse, so the blocks the file holds are what bbolt's
/// high-water mark (etcd's `dbSize`) measures: every page written, free
/// or not. Never more than the length (a file system may reserve blocks
/// past the end).
fn file_size(path: &Path) -> u64 {
    use std::os::unix::fs::MetadataExt;
    std::fs::metadata(path)
        .map(|m| (m.blocks() * 512).min(m.len()))
        .unwrap_or(0)
}

/// redb's page size, in bytes.
const PAGE_BYTES: u64 = 4096;

/// The bytes of every table's pages in a read snapshot of `db`. Not
/// `WriteTransaction::stats`: taken on each commit it read the whole file
/// every time, and a put's latency grew with the database (past 5 s at
/// 600 MiB of 1 MiB values).
fn in_use_of(db: &Database) -> Result<u64, BackendError> {
    let rtx = db.begin_read()?;
    let mut bytes = 0;
    for table in rtx.list_tables()? {
        let stats = rtx.open_untyped_table(table)?.stats()?;
        // A page holding less than a page still takes one.
        let pages = (stats.leaf_pages() + stats.branch_pages()) * PAGE_BYTES;
        bytes +=
            pages.max(stats.stored_bytes() + stats.metadata_bytes() + stats.fragmented_bytes());
    }
    Ok(bytes)
}

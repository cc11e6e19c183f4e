//! The store itself: ranges at a revision, writes through batch
//! transactions, compaction, and restore from the backend.
//!
//! Readers read at the last committed revision: they load it, then open a
//! redb snapshot that contains it, then consult the index, which may already
//! hold newer revisions of the batch in progress but answers for the asked
//! revision only. The apply stage updates the index as it writes, so later
//! requests of the same batch see earlier ones.

use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::sync::RwLock;

use api::mvccpb::KeyValue;
use prost::Message;
use redb::{ReadableTable, WriteTransaction};

use super::compaction::Compactions;
use super::key_index::{KeyAt, RangeEnd, TreeIndex};
use super::revision::Revision;
use super::watch::{delete_event, put_event, History, HistoryRead, WatchHub};
use crate::backend::{Backend, BackendError};
use crate::schema::{meta_u64, KEY_TABLE, META_TABLE, TABLES};
use api::mvccpb::Event;

use crate::schema::{CONSISTENT_INDEX, FINISHED_COMPACT_REV, SCHEDULED_COMPACT_REV, TERM};

/// Errors of the mvcc store. The first two are client errors with etcd's
/// texts; the others mean the member cannot go on safely.
#[derive(Debug, thiserror::Error)]
pub enum MvccError {
    /// The revision asked for was compacted away.
    #[error("mvcc: required revision has been compacted")]
    Compacted,
    /// The revision asked for is newer than the store.
    #[error("mvcc: required revision is a future revision")]
    FutureRev,
    /// The backend failed.
    #[error(transparent)]
    Backend(#[from] BackendError),
    /// A stored record does not decode.
    #[error("mvcc: corrupt record at revision {0:?}")]
    Corrupt(Revision),
}

crate::backend::from_redb!(MvccError: redb::StorageError, redb::CommitError, redb::TableError);

/// How to read a range (etcd's `mvcc.RangeOptions`).
#[derive(Clone, Copy, Debug, Default)]
pub struct RangeOptions {
    /// At most this many keys (0: all).
    pub limit: usize,
    /// The revision to read at (0 or less: the current one).
    pub rev: i64,
    /// Count the keys, return none.
    pub count_only: bool,
}

/// The answer to a range: the keys in key order, how many keys the range
/// holds (ignoring the limit) and the revision it was read at.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct RangeResult {
    /// The key-values, at most `limit`.
    pub kvs: Vec<KeyValue>,
    /// All keys in the range at `rev`.
    pub count: usize,
    /// The store revision the read reflects.
    pub rev: i64,
}

/// The consistent index and term recorded in a backend's `meta` table.
pub fn consistent_index_of(backend: &Backend) -> Result<(u64, u64), MvccError> {
    let rtx = backend.read()?;
    let meta = rtx.open_table(META_TABLE)?;
    Ok((meta_u64(&meta, CONSISTENT_INDEX)?, meta_u64(&meta, TERM)?))
}

impl History for KvStore {
    /// Reads the `key` table from revision `from` to `to`: it is ordered by
    /// revision, so this is one scan.
    fn events(&self, from: i64, to: i64, max_bytes: usize) -> Result<HistoryRead, MvccError> {
        let rtx = self.backend.read()?;
        // The compaction as of this very read, not as last published: once
        // scheduled, its rows may go at any time.
        let (compact_revision, _) = compaction_of(&rtx.open_table(META_TABLE)?)?;
        let table = rtx.open_table(KEY_TABLE)?;
        let lo = Revision::new(from, 0).to_key(false);
        let hi = Revision::new(to, i64::MAX).to_key(true);
        let mut events = Vec::new();
        let mut bytes = 0;
        let mut upto = to;
        for item in table.range(lo.as_slice()..=hi.as_slice())? {
            let (k, v) = item?;
            let Some((rev, tombstone)) = Revision::from_key(k.value()) else {
                continue;
            };
            if bytes >= max_bytes && rev.sub == 0 {
                // A new revision begins past the budget: stop before it.
                upto = rev.main - 1;
                break;
            }
            let kv = KeyValue::decode(v.value()).map_err(|_| MvccError::Corrupt(rev))?;
            bytes += kv.key.len() + kv.value.len();
            events.push(if tombstone {
                delete_event(kv.key, rev.main)
            } else {
                put_event(kv)
            });
        }
        Ok(HistoryRead {
            events,
            upto,
            compact_revision,
        })
    }

    fn current_revision(&self) -> i64 {
        KvStore::current_revision(self)
    }
}

/// The compaction revision recorded in `meta` (-1: none) and whether
/// its rows may not all be removed yet (scheduled past finished).
fn compaction_of(
    meta: &impl ReadableTable<&'static [u8], &'static [u8]>,
) -> Result<(i64, bool), MvccError> {
    let scheduled = meta_u64(meta, SCHEDULED_COMPACT_REV)? as i64;
    let finished = meta_u64(meta, FINISHED_COMPACT_REV)? as i64;
    let rev = scheduled.max(finished);
    Ok((if rev > 0 { rev } else { -1 }, scheduled > finished))
}

/// What a backend holds, read at start-up or after a restore.
struct Loaded {
    index: TreeIndex,
    current: i64,
    compact_rev: i64,
    /// A compaction whose rows are still to be removed.
    pending: Option<i64>,
    consistent_index: u64,
}

impl Loaded {
    /// Rebuilds the key index from the `key` table and reads `meta`. A new
    /// store is at revision 1, as etcd's is.
    fn read(backend: &Backend) -> Result<Loaded, MvccError> {
        let rtx = backend.read()?;
        let meta = rtx.open_table(META_TABLE)?;
        let consistent_index = meta_u64(&meta, CONSISTENT_INDEX)?;
        let (compact_rev, pending) = compaction_of(&meta)?;
        let mut index = TreeIndex::default();
        let mut current = compact_rev.max(1);
        let keys = rtx.open_table(KEY_TABLE)?;
        for item in keys.iter()? {
            let (k, v) = item?;
            let Some((rev, tombstone)) = Revision::from_key(k.value()) else {
                continue;
            };
            let kv = KeyValue::decode(v.value()).map_err(|_| MvccError::Corrupt(rev))?;
            index.restore(&kv.key, rev, tombstone, kv.create_revision, kv.version);
            current = current.max(rev.main);
        }
        Ok(Loaded {
            index,
            current,
            compact_rev,
            pending: pending.then_some(compact_rev),
            consistent_index,
        })
    }
}

/// Anything ranges can be read from: the committed store, or the apply
/// stage's batch with its own writes.
pub trait ReadView {
    /// Reads `[key, end)` per `opts`; see [`KvStore::range`].
    fn range(
        &self,
        key: &[u8],
        end: RangeEnd<'_>,
        opts: RangeOptions,
    ) -> Result<RangeResult, MvccError>;
}

impl ReadView for KvStore {
    fn range(
        &self,
        key: &[u8],
        end: RangeEnd<'_>,
        opts: RangeOptions,
    ) -> Result<RangeResult, MvccError> {
        KvStore::range(self, key, end, opts)
    }
}

impl ReadView for StoreTxn<'_> {
    fn range(
        &self,
        key: &[u8],
        end: RangeEnd<'_>,
        opts: RangeOptions,
    ) -> Result<RangeResult, MvccError> {
        StoreTxn::range(self, key, end, opts)
    }
}

/// The key-value store on the backend.
pub struct KvStore {
    backend: Backend,
    pub(super) index: RwLock<TreeIndex>,
    /// The last revision whose batch is committed to the backend.
    current_rev: AtomicI64,
    /// etcd's `compactMainRev`; -1 before any compaction.
    compact_rev: AtomicI64,
    consistent_index: AtomicU64,
    watch: WatchHub,
    /// The compaction whose rows are being removed.
    pub(super) compactions: Compactions,
}

/// The keys live at the newest revision of `index`, for
/// `etcd_debugging_mvcc_keys_total` (kept by put and delete after).
fn live_keys(index: &TreeIndex) -> i64 {
    index.range(b"", RangeEnd::Unbounded, i64::MAX, 1).1 as i64
}

impl KvStore {
    /// Opens the store on `backend`, rebuilding the key index from the
    /// `key` table. A new store is at revision 1, as etcd's is.
    pub fn open(backend: Backend) -> Result<KvStore, MvccError> {
        let loaded = Loaded::read(&backend)?;
        metrics::KEYS_TOTAL.set(live_keys(&loaded.index));
        let compactions = Compactions::default();
        compactions.schedule(loaded.pending);
        Ok(KvStore {
            backend,
            index: RwLock::new(loaded.index),
            current_rev: AtomicI64::new(loaded.current),
            compact_rev: AtomicI64::new(loaded.compact_rev),
            consistent_index: AtomicU64::new(loaded.consistent_index),
            watch: WatchHub::default(),
            compactions,
        })
    }

    /// Replaces the whole content of the backend with the backend file at
    /// `path` (a snapshot received from the leader), durably, and rebuilds
    /// the key index from it. The file is removed afterwards.
    pub fn restore_from(
        &self,
        path: &std::path::Path,
        expected_index: u64,
    ) -> Result<(), MvccError> {
        let loaded = {
            if !path.exists() {
                let e =
                    std::io::Error::new(std::io::ErrorKind::NotFound, path.display().to_string());
                return Err(MvccError::Backend(e.into()));
            }
            let staged = Backend::open(path)?;
            let (index, _) = consistent_index_of(&staged)?;
            if index != expected_index {
                return Err(MvccError::Backend(BackendError::Io(std::io::Error::other(
                    format!(
                        "{} holds index {index}, not {expected_index}",
                        path.display()
                    ),
                ))));
            }
            let rtx = staged.read()?;
            // Every row is replaced: no compaction batch or defragmentation
            // may work on them meanwhile.
            let _rewrites = self.backend.rewrite_guard();
            let tx = self.backend.write(true)?;
            for def in TABLES {
                let src = rtx.open_table(def)?;
                let mut dst = tx.open_table(def)?;
                dst.retain(|_, _| false)?;
                for item in src.iter()? {
                    let (k, v) = item?;
                    dst.insert(k.value(), v.value())?;
                }
            }
            self.backend.commit(tx)?;
            self.backend.wait_synced()?;
            let loaded = Loaded::read(&self.backend)?;
            self.compactions.schedule(loaded.pending);
            loaded
        };
        let mut index = self.index.write().expect("index lock");
        *index = loaded.index;
        metrics::KEYS_TOTAL.set(live_keys(&index));
        let before = self.current_rev.swap(loaded.current, Ordering::AcqRel);
        self.compact_rev
            .store(loaded.compact_rev, Ordering::Release);
        self.consistent_index
            .store(loaded.consistent_index, Ordering::Release);
        drop(index);
        // The history jumped: every watcher catches up from the new content
        // (or learns that what it needs was compacted).
        self.watch.unsync_all(before + 1);
        std::fs::remove_file(path).map_err(BackendError::from)?;
        Ok(())
    }

    /// Reads the backend once, consistently: calls `start` with the
    /// consistent index and term that read reflects, then `sink` with every
    /// `(table, key, value)`, in table and key order. Returns the index and
    /// term. Stops at the first error of either.
    pub fn export<E: From<MvccError>>(
        &self,
        start: impl FnOnce(u64, u64) -> Result<(), E>,
        mut sink: impl FnMut(&str, &[u8], &[u8]) -> Result<(), E>,
    ) -> Result<(u64, u64), E> {
        use redb::TableHandle;
        let rtx = self.backend.read().map_err(MvccError::from)?;
        let meta = rtx.open_table(META_TABLE).map_err(MvccError::from)?;
        let ci = meta_u64(&meta, CONSISTENT_INDEX).map_err(MvccError::from)?;
        let term = meta_u64(&meta, TERM).map_err(MvccError::from)?;
        drop(meta);
        start(ci, term)?;
        for def in TABLES {
            let t = rtx.open_table(def).map_err(MvccError::from)?;
            for item in t.iter().map_err(MvccError::from)? {
                let (k, v) = item.map_err(MvccError::from)?;
                sink(def.name(), k.value(), v.value())?;
            }
        }
        Ok((ci, term))
    }

    /// The store's watchers.
    pub fn watchers(&self) -> &WatchHub {
        &self.watch
    }

    /// Replays history to watchers that are behind; true if some still are.
    pub fn sync_watchers(&self) -> bool {
        self.watch.sync(self)
    }

    /// The backend, for sizes and for the tables the store does not own.
    pub fn backend(&self) -> &Backend {
        &self.backend
    }

    /// The last committed store revision.
    pub fn current_revision(&self) -> i64 {
        self.current_rev.load(Ordering::Acquire)
    }

    /// The last compacted revision, or -1 when never compacted.
    pub fn compact_revision(&self) -> i64 {
        self.compact_rev.load(Ordering::Acquire)
    }

    /// Index of the last raft entry applied to this store (etcd's
    /// consistent index); entries at or below it are never applied again.
    pub fn consistent_index(&self) -> u64 {
        self.consistent_index.load(Ordering::Acquire)
    }

    /// Reads `[key, end)` as of `opts.rev` from the committed state.
    /// Errors: [`MvccError::FutureRev`], [`MvccError::Compacted`].
    pub fn range(
        &self,
        key: &[u8],
        end: RangeEnd<'_>,
        opts: RangeOptions,
    ) -> Result<RangeResult, MvccError> {
        let current = self.current_revision();
        let rtx = self.backend.read()?;
        let table = rtx.open_table(KEY_TABLE)?;
        self.range_at(&table, current, key, end, opts)
    }

    /// Reads `[key, end)` as of `opts.rev` like [`KvStore::range`], but
    /// hands each key's record to `visit` as it is stored: an encoded
    /// etcd `mvccpb.KeyValue` (proto `kv.proto`), in key order, at most
    /// `opts.limit` of them. Nothing is decoded or kept, so a reader can
    /// copy records straight into a response. Returns the keys in the
    /// range (ignoring the limit) and the revision read. Errors: as
    /// [`KvStore::range`].
    pub fn range_encoded(
        &self,
        key: &[u8],
        end: RangeEnd<'_>,
        opts: RangeOptions,
        mut visit: impl FnMut(&[u8]),
    ) -> Result<(usize, i64), MvccError> {
        let current = self.current_revision();
        let rtx = self.backend.read()?;
        let table = rtx.open_table(KEY_TABLE)?;
        let count = self.range_visit(&table, current, key, end, opts, |_, record| {
            visit(record);
            Ok(())
        })?;
        Ok((count, current))
    }

    fn range_at(
        &self,
        table: &impl ReadableTable<&'static [u8], &'static [u8]>,
        current: i64,
        key: &[u8],
        end: RangeEnd<'_>,
        opts: RangeOptions,
    ) -> Result<RangeResult, MvccError> {
        let mut kvs = Vec::new();
        let count = self.range_visit(table, current, key, end, opts, |at, record| {
            kvs.push(KeyValue::decode(record).map_err(|_| MvccError::Corrupt(at.modified))?);
            Ok(())
        })?;
        Ok(RangeResult {
            kvs,
            count,
            rev: current,
        })
    }

    /// The range at `opts.rev` (checked against `current` and the
    /// compaction): `visit` gets each key found and its stored record;
    /// returns the keys in the range.
    fn range_visit(
        &self,
        table: &impl ReadableTable<&'static [u8], &'static [u8]>,
        current: i64,
        key: &[u8],
        end: RangeEnd<'_>,
        opts: RangeOptions,
        mut visit: impl FnMut(&KeyAt, &[u8]) -> Result<(), MvccError>,
    ) -> Result<usize, MvccError> {
        let rev = if opts.rev <= 0 { current } else { opts.rev };
        if rev > current {
            return Err(MvccError::FutureRev);
        }
        if rev < self.compact_revision() {
            return Err(MvccError::Compacted);
        }
        let limit = if opts.count_only { 1 } else { opts.limit };
        let (found, count) = self
            .index
            .read()
            .expect("index lock")
            .range(key, end, rev, limit);
        if opts.count_only {
            return Ok(count);
        }
        for (_, at) in &found {
            let k = at.modified.to_key(false);
            // A missing record was removed by a compaction that raced this read.
            let v = table.get(k.as_slice())?.ok_or(MvccError::Compacted)?;
            visit(at, v.value())?;
        }
        Ok(count)
    }

    /// Starts the batch transaction of the apply stage. Only one may be
    /// open at a time (redb serialises write transactions).
    pub fn begin(&self) -> Result<StoreTxn<'_>, MvccError> {
        self.begin_with(false)
    }

    /// Like [`KvStore::begin`], with a commit that fsyncs the backend.
    pub fn begin_durable(&self) -> Result<StoreTxn<'_>, MvccError> {
        self.begin_with(true)
    }

    fn begin_with(&self, durable: bool) -> Result<StoreTxn<'_>, MvccError> {
        Ok(StoreTxn {
            store: self,
            tx: self.backend.write(durable)?,
            rev: self.current_revision(),
            sub: 0,
            consistent_index: None,
            compacted: None,
            collect_events: self.watch.has_watchers(),
            begin_rev: self.current_revision(),
            events: Vec::new(),
            record: Vec::new(),
        })
    }
}

/// A batch of writes by the apply stage. Each write request calls
/// [`StoreTxn::end_request`] after its changes, which closes its revision.
/// Nothing is visible to [`KvStore::range`] until [`StoreTxn::commit`].
pub struct StoreTxn<'s> {
    store: &'s KvStore,
    tx: WriteTransaction,
    /// The last revision closed in this batch.
    rev: i64,
    /// Changes made by the open request (its sub revisions so far).
    sub: i64,
    consistent_index: Option<(u64, u64)>,
    /// A compaction done in the backend by this batch, applied to the index
    /// and published once the batch commits.
    compacted: Option<i64>,
    /// Whether to keep events for watchers (only when some exist).
    collect_events: bool,
    /// The store revision when the batch began.
    begin_rev: i64,
    /// This batch's changes, in revision order, for the watchers.
    events: Vec<Event>,
    /// A record being encoded (kept to reuse its allocation).
    record: Vec<u8>,
}

impl StoreTxn<'_> {
    /// The last compacted revision, counting one done by this batch.
    pub fn compact_revision(&self) -> i64 {
        self.compacted
            .unwrap_or_else(|| self.store.compact_revision())
    }

    /// The revision the open request reads at: its own changes included
    /// (etcd's write-transaction `Rev`, as put and delete responses carry).
    pub fn read_rev(&self) -> i64 {
        if self.sub > 0 {
            self.rev + 1
        } else {
            self.rev
        }
    }

    /// The revision that the last closed request left the store at.
    pub fn revision(&self) -> i64 {
        self.rev
    }

    /// Reads like [`KvStore::range`], seeing this batch's writes so far.
    pub fn range(
        &self,
        key: &[u8],
        end: RangeEnd<'_>,
        opts: RangeOptions,
    ) -> Result<RangeResult, MvccError> {
        let table = self.tx.open_table(KEY_TABLE)?;
        self.store.range_at(&table, self.read_rev(), key, end, opts)
    }

    /// Puts `key` = `value` with `lease` (0: none) at the open request's
    /// revision.
    pub fn put(&mut self, key: &[u8], value: &[u8], lease: i64) -> Result<(), MvccError> {
        let main = self.rev + 1;
        let rev = Revision::new(main, self.sub);
        let mut index = self.store.index.write().expect("index lock");
        let (create_revision, version) = match index.get(key, main) {
            Some(at) => (at.created.main, at.version + 1),
            None => {
                metrics::KEYS_TOTAL.inc();
                (main, 1)
            }
        };
        self.record.clear();
        crate::schema::encode_key_value(
            &mut self.record,
            key,
            create_revision,
            main,
            version,
            value,
            lease,
        );
        let mut table = self.tx.open_table(KEY_TABLE)?;
        table.insert(rev.to_key(false).as_slice(), self.record.as_slice())?;
        index.put(key, rev);
        self.sub += 1;
        if self.collect_events {
            self.events.push(put_event(KeyValue {
                key: key.to_vec(),
                create_revision,
                mod_revision: main,
                version,
                value: value.to_vec(),
                lease,
            }));
        }
        Ok(())
    }

    /// Deletes the keys of `[key, end)` live at the open request's revision;
    /// returns the keys deleted.
    pub fn delete_range(
        &mut self,
        key: &[u8],
        end: RangeEnd<'_>,
    ) -> Result<Vec<Vec<u8>>, MvccError> {
        let main = self.rev + 1;
        let mut index = self.store.index.write().expect("index lock");
        let (live, _) = index.range(key, end, self.read_rev(), 0);
        metrics::KEYS_TOTAL.sub(live.len() as i64);
        let mut table = self.tx.open_table(KEY_TABLE)?;
        for (k, _) in &live {
            let rev = Revision::new(main, self.sub);
            let tomb = KeyValue {
                key: k.clone(),
                ..Default::default()
            };
            table.insert(rev.to_key(true).as_slice(), tomb.encode_to_vec().as_slice())?;
            index.tombstone(k, rev);
            self.sub += 1;
            if self.collect_events {
                self.events.push(delete_event(k.clone(), main));
            }
        }
        Ok(live.into_iter().map(|(k, _)| k).collect())
    }

    /// Closes the open request: if it changed anything the store revision
    /// grows by one. Returns the revision for the response header.
    pub fn end_request(&mut self) -> i64 {
        if self.sub > 0 {
            self.rev += 1;
            self.sub = 0;
        }
        self.rev
    }

    /// Compacts history at `rev`: once the batch commits, reads below it
    /// answer [`MvccError::Compacted`], and the versions at or below it,
    /// except the latest of each live key, are left to the compaction
    /// worker to remove (`compaction.rs`).
    /// Errors: [`MvccError::Compacted`] if `rev` is not above the last
    /// compaction, [`MvccError::FutureRev`] if it is above the store.
    pub fn compact(&mut self, rev: i64) -> Result<(), MvccError> {
        if rev <= self.compact_revision() {
            return Err(MvccError::Compacted);
        }
        if rev > self.rev {
            return Err(MvccError::FutureRev);
        }
        let mut meta = self.tx.open_table(META_TABLE)?;
        meta.insert(SCHEDULED_COMPACT_REV, (rev as u64).to_be_bytes().as_slice())?;
        self.compacted = Some(rev);
        Ok(())
    }

    /// Records that raft entries up to `index` (of `term`) are applied;
    /// stored in the same backend commit as their effects.
    pub fn set_consistent_index(&mut self, index: u64, term: u64) {
        self.consistent_index = Some((index, term));
    }

    /// The auth tables, written in the same commit.
    pub fn auth_tables(&self) -> crate::schema::auth::AuthTables<'_> {
        crate::schema::auth::AuthTables(&self.tx)
    }

    /// The membership tables, written in the same commit.
    pub fn member_tables(&self) -> crate::schema::members::MemberTables<'_> {
        crate::schema::members::MemberTables(&self.tx)
    }

    /// The `lease` table, written in the same commit.
    pub fn lease_table(&self) -> crate::schema::lease::LeaseTable<'_> {
        crate::schema::lease::LeaseTable(&self.tx)
    }

    /// The `alarm` table, written in the same commit.
    pub fn alarm_table(&self) -> crate::schema::alarm::AlarmTable<'_> {
        crate::schema::alarm::AlarmTable(&self.tx)
    }

    /// The `cluster` table, written in the same commit.
    pub fn cluster_table(&self) -> crate::schema::cluster::ClusterTable<'_> {
        crate::schema::cluster::ClusterTable(&self.tx)
    }

    /// Commits the batch and makes it visible to readers.
    pub fn commit(self) -> Result<(), MvccError> {
        if let Some((index, term)) = self.consistent_index {
            let mut meta = self.tx.open_table(META_TABLE)?;
            meta.insert(CONSISTENT_INDEX, index.to_be_bytes().as_slice())?;
            meta.insert(TERM, term.to_be_bytes().as_slice())?;
        }
        self.store.backend.commit(self.tx)?;
        let store = self.store;
        let (begin, end) = (self.begin_rev, self.rev);
        let (compacted, consistent_index) = (self.compacted, self.consistent_index);
        let (collected, events) = (self.collect_events, self.events);
        let publish = || {
            store.current_rev.store(end, Ordering::Release);
            if let Some(rev) = compacted {
                store.compact_rev.store(rev, Ordering::Release);
                store.compactions.schedule(Some(rev));
            }
            if let Some((index, _)) = consistent_index {
                store.consistent_index.store(index, Ordering::Release);
            }
        };
        // Watchers that appeared after the batch began did not have its
        // events collected: read them back from what was just committed.
        let batch_events = || {
            if collected || end == begin {
                return Some(events);
            }
            if compacted.is_some() {
                // Part of the batch may be compacted away: let everyone
                // catch up (or be told) from the store.
                return None;
            }
            match store.events(begin + 1, end, usize::MAX) {
                Ok(read) => Some(read.events),
                Err(e) => {
                    tracing::warn!(error = %e, "failed to read a batch's events for new watchers");
                    None
                }
            }
        };
        store.watch.publish(begin + 1, publish, batch_events);
        Ok(())
    }
}

#[cfg(test)]
pub(super) mod tests {
    use super::*;

    pub(in crate::mvcc) fn open(dir: &std::path::Path) -> KvStore {
        std::fs::create_dir_all(dir).unwrap();
        KvStore::open(Backend::open(&dir.join("db")).unwrap()).unwrap()
    }

    pub(in crate::mvcc) fn put(s: &KvStore, key: &str, value: &str) -> i64 {
        let mut t = s.begin().unwrap();
        t.put(key.as_bytes(), value.as_bytes(), 0).unwrap();
        let rev = t.end_request();
        t.commit().unwrap();
        rev
    }

    pub(in crate::mvcc) fn get(
        s: &KvStore,
        key: &str,
        rev: i64,
    ) -> Result<Option<KeyValue>, MvccError> {
        let opts = RangeOptions {
            rev,
            ..Default::default()
        };
        Ok(s.range(key.as_bytes(), RangeEnd::Single, opts)?.kvs.pop())
    }

    #[test]
    fn revisions_versions_and_history() {
        let dir = tempfile::tempdir().unwrap();
        let s = open(dir.path());
        assert_eq!(
            s.current_revision(),
            1,
            "a new store is at revision 1, as etcd's"
        );
        assert_eq!(put(&s, "a", "1"), 2);
        assert_eq!(put(&s, "a", "2"), 3);
        let kv = get(&s, "a", 0).unwrap().unwrap();
        assert_eq!((kv.create_revision, kv.mod_revision, kv.version), (2, 3, 2));
        assert_eq!(get(&s, "a", 2).unwrap().unwrap().value, b"1");
        assert!(matches!(get(&s, "a", 4), Err(MvccError::FutureRev)));
        let mut t = s.begin().unwrap();
        assert_eq!(t.delete_range(b"a", RangeEnd::Single).unwrap().len(), 1);
        assert_eq!(t.end_request(), 4);
        // Deleting nothing changes no revision.
        assert_eq!(t.delete_range(b"a", RangeEnd::Single).unwrap().len(), 0);
        assert_eq!(t.end_request(), 4);
        t.commit().unwrap();
        assert_eq!(get(&s, "a", 0).unwrap(), None);
        assert_eq!(put(&s, "a", "3"), 5);
        let kv = get(&s, "a", 0).unwrap().unwrap();
        assert_eq!((kv.create_revision, kv.version), (5, 1), "a new generation");
    }

    #[test]
    fn a_watcher_added_while_a_batch_is_open_gets_its_events() {
        use std::sync::{Arc, Mutex};

        use crate::mvcc::{Delivery, WatchSpec};
        let dir = tempfile::tempdir().unwrap();
        let s = open(dir.path());
        // No watcher when the batch begins: it collects no events.
        let mut t = s.begin().unwrap();
        t.put(b"a", b"1", 0).unwrap();
        t.end_request();
        let got: Arc<Mutex<Vec<Delivery>>> = Default::default();
        let g = got.clone();
        let spec = WatchSpec {
            key: b"a".to_vec(),
            range_end: Vec::new(),
            no_put: false,
            no_delete: false,
            progress_notify: false,
        };
        s.watchers().watch(
            spec,
            s.current_revision() + 1,
            || s.current_revision(),
            Box::new(move |d| {
                g.lock().unwrap().push(d);
                true
            }),
        );
        t.commit().unwrap();
        let got = got.lock().unwrap();
        match got.as_slice() {
            [Delivery::Events {
                events,
                revision: 2,
            }] => assert_eq!(events[0].kv.as_ref().unwrap().value, b"1"),
            other => panic!("expected the batch's event, got {other:?}"),
        }
    }

    #[test]
    fn batch_is_invisible_until_commit_but_reads_its_own_writes() {
        let dir = tempfile::tempdir().unwrap();
        let s = open(dir.path());
        put(&s, "a", "1");
        let mut t = s.begin().unwrap();
        t.put(b"a", b"2", 0).unwrap();
        let own = t
            .range(b"a", RangeEnd::Single, RangeOptions::default())
            .unwrap();
        assert_eq!(own.kvs[0].value, b"2");
        assert_eq!(get(&s, "a", 0).unwrap().unwrap().value, b"1");
        t.end_request();
        t.commit().unwrap();
        assert_eq!(get(&s, "a", 0).unwrap().unwrap().value, b"2");
    }

    #[test]
    fn export_then_restore_reproduces_the_store() {
        let dir = tempfile::tempdir().unwrap();
        let a = open(&dir.path().join("a"));
        put(&a, "x", "1");
        put(&a, "x", "2");
        put(&a, "y", "1");
        let mut t = a.begin().unwrap();
        t.set_consistent_index(42, 3);
        t.commit().unwrap();
        let staged = Backend::open(&dir.path().join("staged.db")).unwrap();
        let mut entries = Vec::new();
        let (ci, term) = a
            .export(
                |_, _| Ok(()),
                |t, k, v| {
                    entries.push((t.to_string(), k.to_vec(), v.to_vec()));
                    Ok::<_, MvccError>(())
                },
            )
            .unwrap();
        assert_eq!((ci, term), (42, 3));
        staged.write_entries(&entries, true).unwrap();
        drop(staged);
        let b = open(&dir.path().join("b"));
        put(&b, "stale", "gone after restore");
        assert!(
            b.restore_from(&dir.path().join("staged.db"), 41).is_err(),
            "the index must match"
        );
        assert!(
            b.restore_from(&dir.path().join("missing.db"), 42).is_err(),
            "no empty restore"
        );
        b.restore_from(&dir.path().join("staged.db"), 42).unwrap();
        assert_eq!(b.current_revision(), 4);
        assert_eq!(b.consistent_index(), 42);
        assert_eq!(get(&b, "x", 2).unwrap().unwrap().value, b"1");
        assert_eq!(get(&b, "stale", 0).unwrap(), None);
        assert!(!dir.path().join("staged.db").exists());
    }
}

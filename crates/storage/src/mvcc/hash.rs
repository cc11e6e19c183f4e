//! `HashKV` (etcd `Maintenance.HashKV`): a checksum of the store's history
//! up to a revision, which members that applied the same log agree on.
//! It lets operators (`etcdctl endpoint hashkv --cluster`) check that no
//! member's data drifted. And `Hash` (etcd `Maintenance.Hash`): a checksum
//! of the whole backend as it is now.

use redb::{ReadableTable, TableHandle};

use super::revision::Revision;
use super::store::{KvStore, MvccError};
use crate::schema::{KEY_TABLE, META_TABLE, TABLES};

/// `meta` keys the backend hash leaves out, as etcd's `DefaultIgnores`:
/// members write them at their own pace.
const HASH_IGNORES: [&[u8]; 2] = [b"consistent_index", b"term"];

/// What `HashKV` reports.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct KvHash {
    /// CRC-32 (Castagnoli, as etcd's) of the table's name, then every `key` table entry (revision bytes, then the
    /// encoded key-value) at or below `revision` that compaction keeps, in
    /// revision order.
    pub hash: u32,
    /// The revision hashed up to.
    pub revision: i64,
    /// The store's compaction revision when it was read.
    pub compact_revision: i64,
}

impl KvStore {
    /// Hashes the whole backend (etcd's `backend.Hash`): CRC-32 (Castagnoli) of
    /// each table's name followed by its keys and values, tables in name
    /// order, leaving out `meta`'s consistent index and term. Returns the
    /// hash and the store revision it covers at least. Errors: the
    /// backend's.
    pub fn hash(&self) -> Result<(u32, i64), MvccError> {
        let revision = self.current_revision();
        let rtx = self.backend().read()?;
        let mut tables = TABLES;
        tables.sort_by_key(|t| t.name().to_string());
        let mut h = 0u32;
        for def in tables {
            h = crc32c::crc32c_append(h, def.name().as_bytes());
            let meta = def.name() == META_TABLE.name();
            for item in rtx.open_table(def)?.iter()? {
                let (k, v) = item?;
                if meta && HASH_IGNORES.contains(&k.value()) {
                    continue;
                }
                h = crc32c::crc32c_append(h, k.value());
                h = crc32c::crc32c_append(h, v.value());
            }
        }
        Ok((h, revision))
    }

    /// Hashes the history up to `rev` (0: the current revision). Errors:
    /// [`MvccError::FutureRev`] past the current revision,
    /// [`MvccError::Compacted`] below the compaction revision.
    pub fn hash_kv(&self, rev: i64) -> Result<KvHash, MvccError> {
        // The revisions are published after their commit, so a read begun
        // after reading them holds everything up to `current`; a compaction
        // that lands in between is caught by the second look.
        let current = self.current_revision();
        let compact_revision = self.compact_revision();
        let revision = if rev <= 0 { current } else { rev };
        if revision > current {
            return Err(MvccError::FutureRev);
        }
        if revision < compact_revision {
            return Err(MvccError::Compacted);
        }
        let rtx = self.backend().read()?;
        if self.compact_revision() != compact_revision {
            return self.hash_kv(rev);
        }
        // As etcd's `hashByRev` and `kvHasher`: the hash starts with the
        // table's name; a row at or below the compaction counts only if it
        // is its key's latest at `revision` (so rows a compaction removes
        // never count, and members agree however far each one's worker
        // got); an empty keep set leaves nothing out; and a tombstone at
        // the compaction revision is left out (etcd before 3.5.16 removed
        // it when compacting).
        let keep =
            (compact_revision > 0).then(|| self.index.read().expect("index lock").keep(revision));
        let table = rtx.open_table(KEY_TABLE)?;
        let upper = Revision::new(revision + 1, 0).to_key(false);
        let mut h = crc32c::crc32c(KEY_TABLE.name().as_bytes());
        for item in table.range(..upper.as_slice())? {
            let (k, v) = item?;
            if let Some((r, tombstone)) = Revision::from_key(k.value()) {
                let kept = keep.as_ref().filter(|keep| !keep.is_empty());
                if kept.is_some_and(|keep| r.main <= compact_revision && !keep.contains(&r)) {
                    continue;
                }
                if tombstone && r.main == compact_revision {
                    continue;
                }
            }
            h = crc32c::crc32c_append(h, k.value());
            h = crc32c::crc32c_append(h, v.value());
        }
        Ok(KvHash {
            hash: h,
            revision,
            compact_revision,
        })
    }
}

#[cfg(test)]
mod tests {
    use crate::mvcc::{KvStore, MvccError};
    use crate::Backend;

    fn store() -> (tempfile::TempDir, KvStore) {
        let dir = tempfile::tempdir().unwrap();
        let b = Backend::open(&dir.path().join("db")).unwrap();
        (dir, KvStore::open(b).unwrap())
    }

    fn put(s: &KvStore, k: &[u8], v: &[u8]) {
        let mut t = s.begin().unwrap();
        t.put(k, v, 0).unwrap();
        t.end_request();
        t.commit().unwrap();
    }

    #[test]
    fn same_history_same_hash_and_later_writes_do_not_change_an_old_one() {
        let (_d1, a) = store();
        let (_d2, b) = store();
        for s in [&a, &b] {
            put(s, b"k", b"1");
            put(s, b"k", b"2");
        }
        assert_eq!(a.hash_kv(0).unwrap(), b.hash_kv(0).unwrap());
        let at2 = a.hash_kv(2).unwrap();
        put(&a, b"k", b"3");
        assert_eq!(a.hash_kv(2).unwrap(), at2);
        assert_ne!(a.hash_kv(0).unwrap().hash, at2.hash);
        assert!(matches!(a.hash_kv(9), Err(MvccError::FutureRev)));
    }

    #[test]
    fn the_backend_hash_follows_the_data_not_the_consistent_index() {
        let (_d1, a) = store();
        let (_d2, b) = store();
        put(&a, b"k", b"1");
        put(&b, b"k", b"1");
        let mut t = a.begin().unwrap();
        t.set_consistent_index(7, 2);
        t.commit().unwrap();
        assert_eq!(a.hash().unwrap(), b.hash().unwrap());
        put(&b, b"k", b"2");
        assert_ne!(a.hash().unwrap().0, b.hash().unwrap().0);
        assert_eq!(b.hash().unwrap().1, 3);
    }

    #[test]
    fn a_compaction_not_yet_carried_out_hashes_as_one_carried_out() {
        let (_d1, a) = store();
        let (_d2, b) = store();
        for s in [&a, &b] {
            for v in [b"1", b"2", b"3"] {
                put(s, b"k", v);
            }
            let mut t = s.begin().unwrap();
            t.compact(3).unwrap();
            t.commit().unwrap();
        }
        b.finish_compaction().unwrap();
        assert!(a.compaction_pending());
        assert_eq!(a.hash_kv(0).unwrap(), b.hash_kv(0).unwrap());
    }
}

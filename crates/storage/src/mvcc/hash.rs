//! `HashKV` (etcd `Maintenance.HashKV`): a checksum of the store's history
//! up to a revision, which members that applied the same log agree on.
//! It lets operators (`etcdctl endpoint hashkv --cluster`) check that no
//! member's data drifted.

use super::revision::Revision;
use super::store::{KvStore, MvccError};
use crate::backend::KEY_TABLE;

/// What `HashKV` reports.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct KvHash {
    /// CRC-32 (IEEE) of every `key` table entry (revision bytes, then the
    /// encoded key-value) at or below `revision`, in revision order.
    pub hash: u32,
    /// The revision hashed up to.
    pub revision: i64,
    /// The store's compaction revision when it was read.
    pub compact_revision: i64,
}

impl KvStore {
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
        let table = rtx.open_table(KEY_TABLE)?;
        let upper = Revision::new(revision + 1, 0).to_key(false);
        let mut h = crc32fast::Hasher::new();
        for item in table.range(..upper.as_slice())? {
            let (k, v) = item?;
            h.update(k.value());
            h.update(v.value());
        }
        Ok(KvHash {
            hash: h.finalize(),
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
}

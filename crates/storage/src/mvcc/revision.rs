//! Revisions and their on-disk key encoding.
//!
//! A revision is `(main, sub)`: `main` grows by one per write transaction,
//! `sub` numbers the changes inside it. In the backend's `key` table a
//! revision is 17 bytes, `main` big-endian, `_`, `sub` big-endian (etcd's
//! `revToBytes`), and a tombstone appends `t` (18 bytes), so the table sorts
//! by revision.

/// A point in the store's history: `main` is the store revision, `sub` the
/// position of a change within that revision's transaction.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Revision {
    /// The store revision (etcd `revision.main`), starting at 1.
    pub main: i64,
    /// The change's index inside its transaction, from 0.
    pub sub: i64,
}

/// Length of an encoded revision without the tombstone mark.
pub const REV_BYTES_LEN: usize = 17;
const TOMBSTONE_MARK: u8 = b't';

impl Revision {
    /// A revision `(main, sub)`.
    pub fn new(main: i64, sub: i64) -> Self {
        Revision { main, sub }
    }

    /// The 17-byte key (18 with the tombstone mark) for the `key` table.
    pub fn to_key(self, tombstone: bool) -> Vec<u8> {
        let mut b = Vec::with_capacity(REV_BYTES_LEN + 1);
        b.extend_from_slice(&self.main.to_be_bytes());
        b.push(b'_');
        b.extend_from_slice(&self.sub.to_be_bytes());
        if tombstone {
            b.push(TOMBSTONE_MARK);
        }
        b
    }

    /// Decodes a `key` table key; returns the revision and whether it marks
    /// a tombstone, or `None` when the bytes are not a revision key.
    pub fn from_key(b: &[u8]) -> Option<(Revision, bool)> {
        if b.len() < REV_BYTES_LEN || b.len() > REV_BYTES_LEN + 1 || b[8] != b'_' {
            return None;
        }
        let main = i64::from_be_bytes(b[0..8].try_into().ok()?);
        let sub = i64::from_be_bytes(b[9..17].try_into().ok()?);
        let tombstone = b.len() == REV_BYTES_LEN + 1;
        if tombstone && b[17] != TOMBSTONE_MARK {
            return None;
        }
        Some((Revision { main, sub }, tombstone))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn key_encoding_round_trips_and_sorts_by_revision() {
        let a = Revision::new(2, 0).to_key(false);
        let b = Revision::new(2, 1).to_key(true);
        let c = Revision::new(256, 0).to_key(false);
        assert!(a < b && b < c);
        assert_eq!(Revision::from_key(&a), Some((Revision::new(2, 0), false)));
        assert_eq!(Revision::from_key(&b), Some((Revision::new(2, 1), true)));
        assert_eq!(Revision::from_key(b"short"), None);
    }
}

//! The `lease` table (`FORMAT.md`): lease id (8 bytes big-endian)
//! to its granted TTL, then, once a checkpoint was persisted, its
//! remaining TTL; seconds, 8 bytes big-endian each. The lessor decides;
//! this module is the only one that knows how it is written.

use redb::{ReadableTable, WriteTransaction};

use crate::schema::LEASE_TABLE;
use crate::{Backend, BackendError};

/// A lease as the table keeps it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct LeaseRecord {
    /// The lease id.
    pub id: i64,
    /// The granted TTL, seconds.
    pub ttl: i64,
    /// The remaining TTL of a persisted checkpoint, seconds; 0 for none.
    pub remaining_ttl: i64,
}

/// The stored value of a lease granted `ttl` seconds with `remaining_ttl`
/// left at its last persisted checkpoint (0: none).
pub(crate) fn encode(ttl: i64, remaining_ttl: i64) -> Vec<u8> {
    let mut v = ttl.to_be_bytes().to_vec();
    if remaining_ttl > 0 {
        v.extend_from_slice(&remaining_ttl.to_be_bytes());
    }
    v
}

/// The (granted TTL, remaining TTL) of a stored value; `None` if it is
/// neither 8 nor 16 bytes.
pub(crate) fn decode(v: &[u8]) -> Option<(i64, i64)> {
    let word = |b: &[u8]| Some(i64::from_be_bytes(b.try_into().ok()?));
    match v.len() {
        8 => Some((word(v)?, 0)),
        16 => Some((word(&v[..8])?, word(&v[8..])?)),
        _ => None,
    }
}

/// Every lease stored in `backend`, in id order. Errors: the backend's, a
/// record that is not 8 or 16 bytes.
pub fn load(backend: &Backend) -> Result<Vec<LeaseRecord>, BackendError> {
    let rtx = backend.read()?;
    let t = rtx.open_table(LEASE_TABLE)?;
    let mut out = Vec::new();
    for item in t.iter()? {
        let (k, v) = item?;
        let id = k
            .value()
            .try_into()
            .map(i64::from_be_bytes)
            .map_err(|_| BackendError::Corrupt("lease id".into()))?;
        let (ttl, remaining_ttl) = decode(v.value())
            .ok_or_else(|| BackendError::Corrupt(format!("lease record for lease {id:x}")))?;
        out.push(LeaseRecord {
            id,
            ttl,
            remaining_ttl,
        });
    }
    Ok(out)
}

/// Writes to the `lease` table inside an apply batch's transaction
/// ([`crate::mvcc::StoreTxn::lease_table`]).
pub struct LeaseTable<'a>(pub(crate) &'a WriteTransaction);

impl LeaseTable<'_> {
    /// Writes lease `id` with `ttl` and, if positive, the checkpointed
    /// `remaining_ttl`.
    pub fn put(&self, id: i64, ttl: i64, remaining_ttl: i64) -> Result<(), BackendError> {
        let mut t = self.0.open_table(LEASE_TABLE)?;
        t.insert(
            id.to_be_bytes().as_slice(),
            encode(ttl, remaining_ttl).as_slice(),
        )?;
        Ok(())
    }

    /// Removes lease `id`.
    pub fn remove(&self, id: i64) -> Result<(), BackendError> {
        let mut t = self.0.open_table(LEASE_TABLE)?;
        t.remove(id.to_be_bytes().as_slice())?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn records_round_trip() {
        assert_eq!(decode(&encode(60, 0)), Some((60, 0)));
        assert_eq!(decode(&encode(60, 17)), Some((60, 17)));
        assert_eq!(decode(&[1, 2, 3]), None);
    }
}

//! The `cluster` table (`FORMAT.md`): cluster-wide values, today the
//! cluster version (`clusterVersion`, UTF-8 such as `3.5.0`).

use redb::WriteTransaction;

use crate::schema::CLUSTER_TABLE;
use crate::{Backend, BackendError};

/// Key of the cluster version.
const CLUSTER_VERSION_KEY: &[u8] = b"clusterVersion";

/// The cluster version stored in `backend`, if set.
pub fn version(backend: &Backend) -> Result<Option<String>, BackendError> {
    let rtx = backend.read()?;
    let t = rtx.open_table(CLUSTER_TABLE)?;
    let v = t.get(CLUSTER_VERSION_KEY)?;
    Ok(v.map(|v| String::from_utf8_lossy(v.value()).into_owned()))
}

/// Writes to the `cluster` table inside an apply batch's transaction
/// ([`crate::mvcc::StoreTxn::cluster_table`]).
pub struct ClusterTable<'a>(pub(crate) &'a WriteTransaction);

impl ClusterTable<'_> {
    /// Writes the cluster version.
    pub fn set_version(&self, version: &str) -> Result<(), BackendError> {
        let mut t = self.0.open_table(CLUSTER_TABLE)?;
        t.insert(CLUSTER_VERSION_KEY, version.as_bytes())?;
        Ok(())
    }
}

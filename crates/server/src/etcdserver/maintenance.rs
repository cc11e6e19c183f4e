//! The member-local maintenance calls of the API layer: defragmentation
//! and the backend hash. Neither goes through raft: each member does its
//! own, as in etcd. Both run on a blocking thread, off the async workers.

use super::EtcdServer;
use crate::rpctypes::EtcdError;

impl EtcdServer {
    /// Defragments this member's backend online (`Backend::defragment`):
    /// reads go on, writes wait only for the final round. A second call
    /// waits for the first, as does one made while a compaction batch
    /// runs. Errors: the backend's, as `Internal` (the backend is then
    /// unchanged).
    pub async fn defragment(&self) -> Result<(), EtcdError> {
        let store = self.store.clone();
        let path = storage::backend::path_in(self.data_dir());
        tracing::info!(path = %path.display(), "defragmenting");
        let done = tokio::task::spawn_blocking(move || store.backend().defragment())
            .await
            .map_err(|e| EtcdError::Internal(e.to_string()))?;
        match done {
            Ok(d) => {
                tracing::info!(
                    path = %path.display(),
                    current_db_size_bytes_diff = d.size_after as i64 - d.size_before as i64,
                    current_db_size_bytes = d.size_after,
                    took = ?d.took,
                    writes_held = ?d.writes_held,
                    "finished defragmenting directory"
                );
                Ok(())
            }
            Err(e) => {
                tracing::warn!(error = %e, "failed to defragment");
                Err(EtcdError::Internal(e.to_string()))
            }
        }
    }

    /// The hash of this member's whole backend and the store revision it
    /// covers (`KvStore::hash`). Errors: the backend's.
    pub async fn backend_hash(&self) -> Result<(u32, i64), EtcdError> {
        let store = self.store.clone();
        tokio::task::spawn_blocking(move || store.hash())
            .await
            .map_err(|e| EtcdError::Internal(e.to_string()))?
            .map_err(EtcdError::from)
    }
}

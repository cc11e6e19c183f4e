//! Incoming raft messages: the `etcdrspb.Peer` service.

use std::sync::Arc;

use api::etcdrspb::peer_server::Peer;
use api::etcdrspb::{RaftAck, RaftBatch, SnapshotChunk};
use protobuf::Message as _;
use raft::prelude::Message;
use tonic::{Request, Response, Status, Streaming};

use crate::etcdserver::EtcdServer;

/// The Peer service of a member.
pub struct PeerService {
    server: Arc<EtcdServer>,
}

impl PeerService {
    /// The service for `server`.
    pub fn new(server: Arc<EtcdServer>) -> Self {
        PeerService { server }
    }
}

#[tonic::async_trait]
impl Peer for PeerService {
    /// Steps every message of the stream into the local raft node. A
    /// stream from another cluster is refused with etcd's text.
    async fn raft(&self, req: Request<Streaming<RaftBatch>>) -> Result<Response<RaftAck>, Status> {
        let mut stream = req.into_inner();
        while let Some(batch) = stream.message().await? {
            if batch.cluster_id != self.server.cluster_id {
                tracing::warn!(
                    remote_peer_id = %format!("{:x}", batch.from),
                    remote_peer_cluster_id = %format!("{:x}", batch.cluster_id),
                    local_member_cluster_id = %format!("{:x}", self.server.cluster_id),
                    "request cluster ID mismatch"
                );
                return Err(Status::failed_precondition("request cluster ID mismatch"));
            }
            for bytes in &batch.messages {
                match Message::parse_from_bytes(bytes) {
                    Ok(m) => self.server.step(m),
                    Err(e) => tracing::warn!(error = %e, "dropped an undecodable raft message"),
                }
            }
        }
        Ok(Response::new(RaftAck {}))
    }

    /// Stores the backend that comes with a snapshot beside the snapshot
    /// records, then steps the snapshot message into raft, whose `Ready`
    /// then has the apply stage load it.
    async fn snapshot(
        &self,
        req: Request<Streaming<SnapshotChunk>>,
    ) -> Result<Response<RaftAck>, Status> {
        let mut stream = req.into_inner();
        let first = stream
            .message()
            .await?
            .ok_or_else(|| Status::invalid_argument("empty snapshot stream"))?;
        let msg = Message::parse_from_bytes(&first.message)
            .map_err(|e| Status::invalid_argument(format!("bad snapshot message: {e}")))?;
        let meta = msg.get_snapshot().get_metadata();
        let path = self.server.snapshotter().db_path(meta.term, meta.index);
        tracing::info!(
            remote_peer_id = %format!("{:x}", msg.from),
            snapshot_index = meta.index,
            path = %path.display(),
            "receiving database snapshot"
        );
        let internal = |e: storage::BackendError| Status::internal(e.to_string());
        let _ = std::fs::remove_file(&path);
        let backend = storage::Backend::open(&path).map_err(internal)?;
        let to_rows = |c: SnapshotChunk| -> Vec<(String, Vec<u8>, Vec<u8>)> {
            c.entries
                .into_iter()
                .map(|e| (e.table, e.key, e.value))
                .collect()
        };
        backend
            .write_entries(&to_rows(first), false)
            .map_err(internal)?;
        while let Some(chunk) = stream.message().await? {
            backend
                .write_entries(&to_rows(chunk), false)
                .map_err(internal)?;
        }
        backend.write_entries(&[], true).map_err(internal)?;
        drop(backend);
        tracing::info!(
            snapshot_index = meta.index,
            "received and saved database snapshot"
        );
        self.server.step(msg);
        Ok(Response::new(RaftAck {}))
    }
}

//! Incoming raft messages: the `etcdrspb.Peer` service.

use std::sync::Arc;

use api::etcdrspb::peer_server::Peer;
use api::etcdrspb::{RaftAck, RaftBatch};
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
}

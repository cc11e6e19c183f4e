//! The `etcdrspb.Peer` service on the peer URLs: incoming raft messages
//! and snapshots (stepped into the local raft loop), and the calls one
//! member makes of another (the cluster for a joining member, a learner's
//! promotion forwarded to the leader, the corruption check's hash). Like
//! `v3rpc`, it only translates into calls on the [`EtcdServer`]; sending
//! is `rafthttp`'s.

use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use api::etcdrspb::peer_server::Peer;
use api::etcdrspb::{
    PeerHashKvRequest, PeerHashKvResponse, PeerMembersRequest, PeerMembersResponse,
    PeerPromoteRequest, RaftAck, RaftBatch, SnapshotChunk,
};
use protobuf::Message as _;
use raft::prelude::Message;
use tonic::{Request, Response, Status, Streaming};

use crate::etcdserver::join::to_peer_member;
use crate::etcdserver::{membership, EtcdServer};
use crate::rafthttp::REMOVED_MEMBER;
use crate::rpctypes::EtcdError;

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
    /// Hashes this member's history up to the asked revision. Errors:
    /// another cluster's request (FailedPrecondition), a revision that is
    /// compacted or not reached yet (etcd's errors).
    async fn hash_kv(
        &self,
        req: Request<PeerHashKvRequest>,
    ) -> Result<Response<PeerHashKvResponse>, Status> {
        let req = req.into_inner();
        if req.cluster_id != self.server.cluster_id {
            return Err(Status::failed_precondition("request cluster ID mismatch"));
        }
        let s = self.server.clone();
        let hashed = tokio::task::spawn_blocking(move || s.store.hash_kv(req.revision))
            .await
            .map_err(|e| Status::internal(e.to_string()))?
            .map_err(EtcdError::from)?;
        Ok(Response::new(PeerHashKvResponse {
            hash: hashed.hash,
            compact_revision: hashed.compact_revision,
            revision: hashed.revision,
        }))
    }

    /// The cluster as this member knows it.
    async fn members(
        &self,
        _req: Request<PeerMembersRequest>,
    ) -> Result<Response<PeerMembersResponse>, Status> {
        let s = &self.server;
        let view = s.membership.view();
        Ok(Response::new(PeerMembersResponse {
            cluster_id: s.cluster_id,
            members: view.members.into_iter().map(to_peer_member).collect(),
            removed: view.removed,
            applied_through: view.through,
        }))
    }

    /// Promotes a learner if this member leads (a follower's forwarded
    /// MemberPromote); errors are etcd's client errors.
    async fn promote(
        &self,
        req: Request<PeerPromoteRequest>,
    ) -> Result<Response<PeerMembersResponse>, Status> {
        let req = req.into_inner();
        let s = &self.server;
        if req.cluster_id != s.cluster_id {
            return Err(Status::failed_precondition("request cluster ID mismatch"));
        }
        let members = s.promote_member_here(req.member_id).await?;
        Ok(Response::new(PeerMembersResponse {
            cluster_id: s.cluster_id,
            members: members.into_iter().map(to_peer_member).collect(),
            removed: Vec::new(),
            applied_through: 0,
        }))
    }

    /// Steps every message of the stream into the local raft node. A
    /// stream from another cluster is refused with etcd's text, one from
    /// a removed member with [`REMOVED_MEMBER`].
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
            if self.server.membership.is_removed(batch.from) {
                tracing::warn!(
                    remote_peer_id = %format!("{:x}", batch.from),
                    "rejected a stream from a removed member"
                );
                return Err(Status::permission_denied(REMOVED_MEMBER));
            }
            let from =
                metrics::PEER_RECEIVED_BYTES.with_label_values(&[&format!("{:x}", batch.from)]);
            for bytes in &batch.messages {
                from.inc_by(bytes.len() as u64);
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
        let mut msg = Message::parse_from_bytes(&first.message)
            .map_err(|e| Status::invalid_argument(format!("bad snapshot message: {e}")))?;
        let meta = msg.get_snapshot().get_metadata();
        let (index, term) = (meta.index, meta.term);
        let snapshotter = self.server.snapshotter();
        let path = snapshotter.db_path(term, index);
        tracing::info!(
            remote_peer_id = %format!("{:x}", msg.from),
            snapshot_index = index,
            path = %path.display(),
            "receiving database snapshot"
        );
        // Received under a name of its own, renamed only once complete and
        // checked, so a cut stream or a second sender never leaves a
        // partial backend where the apply stage looks.
        static SEQ: AtomicU64 = AtomicU64::new(0);
        let tmp = path.with_extension(format!("db.{}.tmp", SEQ.fetch_add(1, Ordering::Relaxed)));
        let received = receive(&tmp, first, &mut stream).await;
        // The backend's members are the membership at its index: raft's
        // configuration in the snapshot is made to say the same.
        let checked = received.and_then(|()| {
            let b = storage::Backend::open(&tmp).map_err(|e| e.to_string())?;
            let (members, _) = membership::load(&b).map_err(|e| e.to_string())?;
            let m = membership::Membership::new(members, &[], 0);
            let (voters, learners) = m.conf_state();
            let conf = msg.mut_snapshot().mut_metadata().mut_conf_state();
            conf.voters = voters;
            conf.learners = learners;
            match storage::mvcc::consistent_index_of(&b) {
                Ok(got) if got == (index, term) => Ok(()),
                Ok(got) => Err(format!(
                    "the backend holds {got:?}, the message says {:?}",
                    (index, term)
                )),
                Err(e) => Err(e.to_string()),
            }
        });
        if let Err(e) =
            checked.and_then(|()| std::fs::rename(&tmp, &path).map_err(|e| e.to_string()))
        {
            let _ = std::fs::remove_file(&tmp);
            tracing::warn!(snapshot_index = index, error = %e, "discarded an incomplete database snapshot");
            return Err(Status::aborted(format!("snapshot not received: {e}")));
        }
        tracing::info!(
            snapshot_index = index,
            "received and saved database snapshot"
        );
        self.server.step(msg);
        Ok(Response::new(RaftAck {}))
    }
}

/// Writes a snapshot stream (after its first chunk, already read) into a new
/// backend at `path`, off the async threads. Succeeds only if the stream
/// ended with the done marker and carried the entries it announced.
async fn receive(
    path: &Path,
    first: SnapshotChunk,
    stream: &mut Streaming<SnapshotChunk>,
) -> Result<(), String> {
    let _ = std::fs::remove_file(path);
    let backend = Arc::new(storage::Backend::open(path).map_err(|e| e.to_string())?);
    let mut count = 0u64;
    let mut chunk = Some(first);
    while let Some(c) = chunk {
        count += c.entries.len() as u64;
        let rows: Vec<(String, Vec<u8>, Vec<u8>)> = c
            .entries
            .into_iter()
            .map(|e| (e.table, e.key, e.value))
            .collect();
        let b = backend.clone();
        tokio::task::spawn_blocking(move || b.write_entries(&rows, c.done))
            .await
            .map_err(|e| e.to_string())?
            .map_err(|e| e.to_string())?;
        if c.done {
            if count != c.total_entries {
                return Err(format!("received {count} entries of {}", c.total_entries));
            }
            return Ok(());
        }
        chunk = stream
            .message()
            .await
            .map_err(|s| s.message().to_string())?;
    }
    Err("the stream ended before the snapshot was complete".to_string())
}

//! The Maintenance service (etcd `etcdserverpb.Maintenance`): Status,
//! Alarm, Defragment, Hash, HashKV, Snapshot and MoveLeader. Downgrade
//! answers `Unimplemented`.
//!
//! A snapshot is a copy of the member's backend made from one consistent
//! read into a fresh redb file under `member/snap/`, streamed in 32 KiB
//! chunks with the bytes still to come and the file's SHA-256 appended
//! (32 bytes, which etcdctl checks for), then removed, as etcd streams its
//! bolt file.

use std::pin::Pin;
use std::sync::Arc;

use api::etcdserverpb::maintenance_server::Maintenance;
use api::etcdserverpb::{
    AlarmRequest, AlarmResponse, AlarmType, DefragmentRequest, DefragmentResponse,
    DowngradeRequest, DowngradeResponse, HashKvRequest, HashKvResponse, HashRequest, HashResponse,
    MoveLeaderRequest, MoveLeaderResponse, SnapshotRequest, SnapshotResponse, StatusRequest,
    StatusResponse,
};
use futures::Stream;
use tokio::sync::mpsc;
use tonic::{Request, Response, Status};

use crate::config::SERVER_VERSION;
use crate::etcdserver::EtcdServer;
use crate::rpctypes::EtcdError;

/// Bytes per snapshot message (etcd's chunk size).
const SNAPSHOT_CHUNK_BYTES: usize = 32 * 1024;
/// The Maintenance service on a member.
pub struct MaintenanceService {
    server: Arc<EtcdServer>,
}

impl MaintenanceService {
    /// The service for `server`.
    pub fn new(server: Arc<EtcdServer>) -> Self {
        MaintenanceService { server }
    }

    fn not_yet(&self, what: &str) -> Status {
        Status::unimplemented(format!(
            "etcd-rs: Maintenance.{what} is not implemented yet"
        ))
    }
}

#[tonic::async_trait]
impl Maintenance for MaintenanceService {
    /// Lists, raises or disarms alarms (`EtcdServer::alarm`). The answer
    /// has no header: etcd's Alarm sets none (`etcdctl alarm list -w
    /// json` prints `{}`).
    async fn alarm(&self, req: Request<AlarmRequest>) -> Result<Response<AlarmResponse>, Status> {
        Ok(Response::new(self.server.alarm(req.into_inner()).await?))
    }

    async fn status(
        &self,
        req: Request<StatusRequest>,
    ) -> Result<Response<StatusResponse>, Status> {
        self.server.check_token(&super::credentials(&req)).await?;
        let s = &self.server;
        let backend = s.store.backend();
        let in_use = s.db_size_in_use().await;
        let mut errors = Vec::new();
        if s.leader() == 0 {
            errors.push("etcdserver: no leader".to_string());
        }
        // gogo's compact text of each AlarmMember, trailing space included
        // and fields at their zero value left out.
        errors.extend(s.alarms.get(AlarmType::None as i32).iter().map(|a| {
            let mut text = String::new();
            if a.member_id != 0 {
                text += &format!("memberID:{} ", a.member_id);
            }
            if a.alarm != 0 {
                text += &format!("alarm:{} ", crate::etcdserver::alarms::alarm_name(a.alarm));
            }
            text
        }));
        Ok(Response::new(StatusResponse {
            header: Some(s.header(s.store.current_revision())),
            version: SERVER_VERSION.to_string(),
            db_size: backend.size_bytes() as i64,
            leader: s.leader(),
            raft_index: s.committed_index(),
            raft_term: s.term(),
            raft_applied_index: s.applied_index(),
            errors,
            db_size_in_use: in_use as i64,
            is_learner: s.is_learner(),
        }))
    }

    /// Defragments this member's backend (`EtcdServer::defragment`).
    async fn defragment(
        &self,
        req: Request<DefragmentRequest>,
    ) -> Result<Response<DefragmentResponse>, Status> {
        self.server.check_admin(&super::credentials(&req)).await?;
        self.server.defragment().await?;
        // etcd answers without a header.
        Ok(Response::new(DefragmentResponse::default()))
    }

    /// The hash of the whole backend (`EtcdServer::backend_hash`).
    async fn hash(&self, req: Request<HashRequest>) -> Result<Response<HashResponse>, Status> {
        self.server.check_admin(&super::credentials(&req)).await?;
        let (hash, revision) = self.server.backend_hash().await?;
        Ok(Response::new(HashResponse {
            header: Some(self.server.header(revision)),
            hash,
        }))
    }

    /// Hashes the history up to the requested revision (0: current).
    /// Errors: etcd's future-revision and compacted errors.
    async fn hash_kv(
        &self,
        req: Request<HashKvRequest>,
    ) -> Result<Response<HashKvResponse>, Status> {
        self.server.check_admin(&super::credentials(&req)).await?;
        let s = self.server.clone();
        let rev = req.get_ref().revision;
        let hashed = tokio::task::spawn_blocking(move || s.store.hash_kv(rev))
            .await
            .map_err(|e| Status::internal(e.to_string()))?
            .map_err(EtcdError::from)?;
        let s = &self.server;
        Ok(Response::new(HashKvResponse {
            header: Some(s.header(hashed.revision)),
            hash: hashed.hash,
            compact_revision: hashed.compact_revision,
        }))
    }

    type SnapshotStream = Pin<Box<dyn Stream<Item = Result<SnapshotResponse, Status>> + Send>>;

    /// Streams a consistent copy of the backend.
    async fn snapshot(
        &self,
        req: Request<SnapshotRequest>,
    ) -> Result<Response<Self::SnapshotStream>, Status> {
        self.server.check_admin(&super::credentials(&req)).await?;
        let s = self.server.clone();
        let (tx, rx) = mpsc::channel(8);
        tokio::task::spawn_blocking(move || {
            if let Err(e) = stream_backend(&s, &tx) {
                let _ = tx.blocking_send(Err(Status::internal(format!(
                    "etcdserver: snapshot failed: {e}"
                ))));
            }
        });
        Ok(Response::new(Box::pin(
            tokio_stream::wrappers::ReceiverStream::new(rx),
        )))
    }

    /// Transfers leadership to `targetID`; only the leader takes this
    /// request, as in etcd (`etcdctl move-leader` finds it).
    async fn move_leader(
        &self,
        req: Request<MoveLeaderRequest>,
    ) -> Result<Response<MoveLeaderResponse>, Status> {
        self.server.check_admin(&super::credentials(&req)).await?;
        let s = &self.server;
        s.move_leader(req.get_ref().target_id).await?;
        Ok(Response::new(MoveLeaderResponse {
            header: Some(s.header(s.store.current_revision())),
        }))
    }

    async fn downgrade(
        &self,
        req: Request<DowngradeRequest>,
    ) -> Result<Response<DowngradeResponse>, Status> {
        self.server.check_admin(&super::credentials(&req)).await?;
        Err(self.not_yet("Downgrade"))
    }
}

/// Streams the backend, from one read snapshot, as a bbolt file in etcd's
/// layout (`storage::snapshot::etcd`) in messages of
/// [`SNAPSHOT_CHUNK_BYTES`], then its SHA-256 as the last one; as etcd's,
/// they carry no header. Errors: the backend's; a client gone ends it.
fn stream_backend(
    s: &EtcdServer,
    tx: &mpsc::Sender<Result<SnapshotResponse, Status>>,
) -> Result<(), String> {
    let send = |blob, left| {
        let msg = SnapshotResponse {
            header: None,
            remaining_bytes: left,
            blob,
        };
        tx.blocking_send(Ok(msg)).is_ok()
    };
    let stream = storage::snapshot::etcd::stream_backend(s.store.backend(), |size| {
        storage::snapshot::ChunkStream::new(size, SNAPSHOT_CHUNK_BYTES, send)
    })
    .map_err(|e| e.to_string())?;
    stream.finish().map_err(|e| e.to_string())
}

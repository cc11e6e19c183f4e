//! The Maintenance service (etcd `etcdserverpb.Maintenance`): Status, the
//! alarm list and MoveLeader. The other calls answer `Unimplemented` until their
//! features exist.

use std::pin::Pin;
use std::sync::Arc;

use api::etcdserverpb::alarm_request::AlarmAction;
use api::etcdserverpb::maintenance_server::Maintenance;
use api::etcdserverpb::{
    AlarmRequest, AlarmResponse, DefragmentRequest, DefragmentResponse, DowngradeRequest,
    DowngradeResponse, HashKvRequest, HashKvResponse, HashRequest, HashResponse, MoveLeaderRequest,
    MoveLeaderResponse, SnapshotRequest, SnapshotResponse, StatusRequest, StatusResponse,
};
use futures::Stream;
use tonic::{Request, Response, Status};

use crate::config::SERVER_VERSION;
use crate::etcdserver::EtcdServer;

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
    /// GET lists the active alarms; etcd-rs raises none yet, so the list is
    /// empty. Activating or deactivating alarms is not implemented yet.
    async fn alarm(&self, req: Request<AlarmRequest>) -> Result<Response<AlarmResponse>, Status> {
        if req.get_ref().action != AlarmAction::Get as i32 {
            return Err(self.not_yet("Alarm(ACTIVATE/DEACTIVATE)"));
        }
        let s = &self.server;
        Ok(Response::new(AlarmResponse {
            header: Some(s.header(s.store.current_revision())),
            alarms: Vec::new(),
        }))
    }

    async fn status(
        &self,
        _req: Request<StatusRequest>,
    ) -> Result<Response<StatusResponse>, Status> {
        let s = &self.server;
        let backend = s.store.backend();
        let mut errors = Vec::new();
        if s.leader() == 0 {
            errors.push("etcdserver: no leader".to_string());
        }
        Ok(Response::new(StatusResponse {
            header: Some(s.header(s.store.current_revision())),
            version: SERVER_VERSION.to_string(),
            db_size: backend.size_bytes() as i64,
            leader: s.leader(),
            raft_index: s.committed_index(),
            raft_term: s.term(),
            raft_applied_index: s.applied_index(),
            errors,
            db_size_in_use: backend.size_in_use_bytes() as i64,
            is_learner: false,
        }))
    }

    async fn defragment(
        &self,
        _req: Request<DefragmentRequest>,
    ) -> Result<Response<DefragmentResponse>, Status> {
        Err(self.not_yet("Defragment"))
    }

    async fn hash(&self, _req: Request<HashRequest>) -> Result<Response<HashResponse>, Status> {
        Err(self.not_yet("Hash"))
    }

    async fn hash_kv(
        &self,
        _req: Request<HashKvRequest>,
    ) -> Result<Response<HashKvResponse>, Status> {
        Err(self.not_yet("HashKV"))
    }

    type SnapshotStream = Pin<Box<dyn Stream<Item = Result<SnapshotResponse, Status>> + Send>>;

    async fn snapshot(
        &self,
        _req: Request<SnapshotRequest>,
    ) -> Result<Response<Self::SnapshotStream>, Status> {
        Err(self.not_yet("Snapshot"))
    }

    /// Transfers leadership to `targetID`; only the leader takes this
    /// request, as in etcd (`etcdctl move-leader` finds it).
    async fn move_leader(
        &self,
        req: Request<MoveLeaderRequest>,
    ) -> Result<Response<MoveLeaderResponse>, Status> {
        let s = &self.server;
        s.move_leader(req.get_ref().target_id).await?;
        Ok(Response::new(MoveLeaderResponse {
            header: Some(s.header(s.store.current_revision())),
        }))
    }

    async fn downgrade(
        &self,
        _req: Request<DowngradeRequest>,
    ) -> Result<Response<DowngradeResponse>, Status> {
        Err(self.not_yet("Downgrade"))
    }
}

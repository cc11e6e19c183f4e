//! The Cluster service (etcd `etcdserverpb.Cluster`): the member list.
//! Membership changes answer `Unimplemented` until they exist.

use std::sync::Arc;

use api::etcdserverpb::cluster_server::Cluster;
use api::etcdserverpb::{
    Member, MemberAddRequest, MemberAddResponse, MemberListRequest, MemberListResponse,
    MemberPromoteRequest, MemberPromoteResponse, MemberRemoveRequest, MemberRemoveResponse,
    MemberUpdateRequest, MemberUpdateResponse,
};
use tonic::{Request, Response, Status};

use crate::etcdserver::EtcdServer;

/// The Cluster service on a member.
pub struct ClusterService {
    server: Arc<EtcdServer>,
}

impl ClusterService {
    /// The service for `server`.
    pub fn new(server: Arc<EtcdServer>) -> Self {
        ClusterService { server }
    }

    fn not_yet(&self, what: &str) -> Status {
        Status::unimplemented(format!("etcd-rs: Cluster.{what} is not implemented yet"))
    }
}

#[tonic::async_trait]
impl Cluster for ClusterService {
    async fn member_add(
        &self,
        _req: Request<MemberAddRequest>,
    ) -> Result<Response<MemberAddResponse>, Status> {
        Err(self.not_yet("MemberAdd"))
    }

    async fn member_remove(
        &self,
        _req: Request<MemberRemoveRequest>,
    ) -> Result<Response<MemberRemoveResponse>, Status> {
        Err(self.not_yet("MemberRemove"))
    }

    async fn member_update(
        &self,
        _req: Request<MemberUpdateRequest>,
    ) -> Result<Response<MemberUpdateResponse>, Status> {
        Err(self.not_yet("MemberUpdate"))
    }

    /// Lists the members; a `linearizable` request first waits for a
    /// ReadIndex round, as etcd 3.5 does.
    async fn member_list(
        &self,
        req: Request<MemberListRequest>,
    ) -> Result<Response<MemberListResponse>, Status> {
        let s = &self.server;
        if req.get_ref().linearizable {
            s.linearizable_read().await?;
        }
        let members = s
            .membership
            .members()
            .into_iter()
            .map(|m| Member {
                id: m.id,
                name: m.name,
                peer_ur_ls: m.peer_urls,
                client_ur_ls: m.client_urls,
                is_learner: m.is_learner,
            })
            .collect();
        // etcd leaves the revision out of the Cluster service's headers.
        Ok(Response::new(MemberListResponse {
            header: Some(s.header(0)),
            members,
        }))
    }

    async fn member_promote(
        &self,
        _req: Request<MemberPromoteRequest>,
    ) -> Result<Response<MemberPromoteResponse>, Status> {
        Err(self.not_yet("MemberPromote"))
    }
}

//! The Cluster service (etcd `etcdserverpb.Cluster`): the member list and
//! membership changes. Responses carry a header without a revision, as
//! etcd's do.

use std::sync::Arc;

use api::etcdserverpb::cluster_server::Cluster;
use api::etcdserverpb::{
    Member as PbMember, MemberAddRequest, MemberAddResponse, MemberListRequest, MemberListResponse,
    MemberPromoteRequest, MemberPromoteResponse, MemberRemoveRequest, MemberRemoveResponse,
    MemberUpdateRequest, MemberUpdateResponse,
};
use tonic::{Request, Response, Status};

use crate::etcdserver::membership::Member;
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
}

fn to_pb(m: Member) -> PbMember {
    PbMember {
        id: m.id,
        name: m.name,
        peer_ur_ls: m.peer_urls,
        client_ur_ls: m.client_urls,
        is_learner: m.is_learner,
    }
}

fn to_pb_all(members: Vec<Member>) -> Vec<PbMember> {
    members.into_iter().map(to_pb).collect()
}

#[tonic::async_trait]
impl Cluster for ClusterService {
    async fn member_add(
        &self,
        req: Request<MemberAddRequest>,
    ) -> Result<Response<MemberAddResponse>, Status> {
        self.server.check_admin(&super::credentials(&req)).await?;
        let req = req.into_inner();
        let s = &self.server;
        let (added, members) = s.add_member(req.peer_ur_ls, req.is_learner).await?;
        // etcd answers with the new member's id, peer URLs and role only.
        let member = PbMember {
            id: added.id,
            peer_ur_ls: added.peer_urls,
            is_learner: added.is_learner,
            ..Default::default()
        };
        Ok(Response::new(MemberAddResponse {
            header: Some(s.header(0)),
            member: Some(member),
            members: to_pb_all(members),
        }))
    }

    async fn member_remove(
        &self,
        req: Request<MemberRemoveRequest>,
    ) -> Result<Response<MemberRemoveResponse>, Status> {
        self.server.check_admin(&super::credentials(&req)).await?;
        let s = &self.server;
        let members = s.remove_member(req.get_ref().id).await?;
        Ok(Response::new(MemberRemoveResponse {
            header: Some(s.header(0)),
            members: to_pb_all(members),
        }))
    }

    async fn member_update(
        &self,
        req: Request<MemberUpdateRequest>,
    ) -> Result<Response<MemberUpdateResponse>, Status> {
        self.server.check_admin(&super::credentials(&req)).await?;
        let req = req.into_inner();
        let s = &self.server;
        let members = s.update_member(req.id, req.peer_ur_ls).await?;
        Ok(Response::new(MemberUpdateResponse {
            header: Some(s.header(0)),
            members: to_pb_all(members),
        }))
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
        Ok(Response::new(MemberListResponse {
            header: Some(s.header(0)),
            members: to_pb_all(s.membership.members()),
        }))
    }

    async fn member_promote(
        &self,
        req: Request<MemberPromoteRequest>,
    ) -> Result<Response<MemberPromoteResponse>, Status> {
        self.server.check_admin(&super::credentials(&req)).await?;
        let s = &self.server;
        let members = s.promote_member(req.get_ref().id).await?;
        Ok(Response::new(MemberPromoteResponse {
            header: Some(s.header(0)),
            members: to_pb_all(members),
        }))
    }
}

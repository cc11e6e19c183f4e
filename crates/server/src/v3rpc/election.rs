//! The Election service (etcd's `v3electionpb.Election`): translates to
//! the election recipe of `etcdserver/concurrency/election.rs`. Every
//! failure is code Unknown with the error's text, as etcd's in-process
//! client hands errors on (see `lock.rs`).

use std::pin::Pin;
use std::sync::Arc;

use api::v3electionpb::election_server::Election;
use api::v3electionpb::{
    CampaignRequest, CampaignResponse, LeaderKey, LeaderRequest, LeaderResponse, ProclaimRequest,
    ProclaimResponse, ResignRequest, ResignResponse,
};
use futures::{Stream, StreamExt};
use tokio_stream::wrappers::ReceiverStream;
use tonic::{Request, Response, Status};

use super::lock::unknown;
use crate::etcdserver::concurrency::election;
use crate::etcdserver::EtcdServer;
use crate::rpctypes::EtcdError;

/// The Election service on a member.
pub struct ElectionService {
    server: Arc<EtcdServer>,
}

impl ElectionService {
    /// The service for `server`.
    pub fn new(server: Arc<EtcdServer>) -> Self {
        ElectionService { server }
    }
}

/// The leader key a Proclaim or Resign must carry.
fn leader_key(leader: Option<LeaderKey>) -> Result<LeaderKey, Status> {
    leader.ok_or_else(|| unknown(EtcdError::MissingLeaderKey))
}

#[tonic::async_trait]
impl Election for ElectionService {
    async fn campaign(
        &self,
        req: Request<CampaignRequest>,
    ) -> Result<Response<CampaignResponse>, Status> {
        let creds = super::credentials(&req);
        let r = req.into_inner();
        let (header, leader) = election::campaign(&self.server, &creds, &r.name, r.lease, &r.value)
            .await
            .map_err(unknown)?;
        Ok(Response::new(CampaignResponse {
            header: Some(header),
            leader: Some(leader),
        }))
    }

    async fn proclaim(
        &self,
        req: Request<ProclaimRequest>,
    ) -> Result<Response<ProclaimResponse>, Status> {
        let creds = super::credentials(&req);
        let r = req.into_inner();
        let l = leader_key(r.leader)?;
        let header = election::proclaim(&self.server, &creds, &l.key, l.rev, l.lease, &r.value)
            .await
            .map_err(unknown)?;
        Ok(Response::new(ProclaimResponse {
            header: Some(header),
        }))
    }

    async fn leader(
        &self,
        req: Request<LeaderRequest>,
    ) -> Result<Response<LeaderResponse>, Status> {
        let creds = super::credentials(&req);
        let name = req.into_inner().name;
        let resp = election::leader(&self.server, &creds, &name)
            .await
            .map_err(unknown)?;
        Ok(Response::new(resp))
    }

    type ObserveStream = Pin<Box<dyn Stream<Item = Result<LeaderResponse, Status>> + Send>>;

    async fn observe(
        &self,
        req: Request<LeaderRequest>,
    ) -> Result<Response<Self::ObserveStream>, Status> {
        let creds = super::credentials(&req);
        let name = req.into_inner().name;
        let leaders = election::observe(&self.server, &creds, &name);
        let out = ReceiverStream::new(leaders).map(Ok);
        Ok(Response::new(Box::pin(out)))
    }

    async fn resign(
        &self,
        req: Request<ResignRequest>,
    ) -> Result<Response<ResignResponse>, Status> {
        let creds = super::credentials(&req);
        let l = leader_key(req.into_inner().leader)?;
        let header = election::resign(&self.server, &creds, &l.key, l.rev, l.lease)
            .await
            .map_err(unknown)?;
        Ok(Response::new(ResignResponse {
            header: Some(header),
        }))
    }
}

//! The Lease service (etcd `etcdserverpb.Lease`): grants and revocations go
//! through raft; keep-alives and time-to-live are answered by the leader's
//! lessor (a follower asks the leader on its client URL, as etcd forwards
//! them); the leader's expiry loop revokes expired leases through raft.

use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use api::etcdserverpb::lease_client::LeaseClient;
use api::etcdserverpb::lease_server::Lease;
use api::etcdserverpb::{
    InternalRaftRequest, LeaseGrantRequest, LeaseGrantResponse, LeaseKeepAliveRequest,
    LeaseKeepAliveResponse, LeaseLeasesRequest, LeaseLeasesResponse, LeaseRevokeRequest,
    LeaseRevokeResponse, LeaseStatus, LeaseTimeToLiveRequest, LeaseTimeToLiveResponse,
};
use futures::Stream;
use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;
use tonic::{Request, Response, Status, Streaming};

use crate::etcdserver::apply::Applied;
use crate::etcdserver::EtcdServer;
use crate::lease::MAX_LEASE_TTL;
use crate::rpctypes::EtcdError;

/// How often the leader looks for expired leases.
const EXPIRY_INTERVAL: Duration = Duration::from_millis(500);
/// Most revocations proposed per round (etcd revokes 1,000 per second).
const REVOKES_PER_ROUND: usize = 500;

/// The Lease service on a member.
pub struct LeaseService {
    server: Arc<EtcdServer>,
}

impl LeaseService {
    /// The service for `server`.
    pub fn new(server: Arc<EtcdServer>) -> Self {
        LeaseService { server }
    }
}

fn is_leader(s: &EtcdServer) -> bool {
    s.leader() == s.member_id
}

async fn leader_client(s: &EtcdServer) -> Result<LeaseClient<tonic::transport::Channel>, Status> {
    let url = s.leader_client_url().ok_or(EtcdError::NoLeader)?;
    LeaseClient::connect(url)
        .await
        .map_err(|e| Status::unavailable(format!("etcdserver: cannot reach the leader: {e}")))
}

/// Renews `id` on the leader; the TTL, or 0 if the lease does not exist.
async fn keep_alive_once(s: &EtcdServer, id: i64) -> Result<i64, Status> {
    if is_leader(s) {
        return Ok(s.lessor.renew(id).unwrap_or(0));
    }
    let mut client = leader_client(s).await?;
    let req = LeaseKeepAliveRequest { id };
    let mut replies = client
        .lease_keep_alive(tokio_stream::iter([req]))
        .await?
        .into_inner();
    Ok(replies.message().await?.map_or(0, |r| r.ttl))
}

/// Revokes expired leases through raft, on the leader; promotes and
/// demotes the lessor as leadership comes and goes.
pub async fn expiry_loop(server: Arc<EtcdServer>) {
    let mut tick = tokio::time::interval(EXPIRY_INTERVAL);
    let mut leading = false;
    loop {
        tick.tick().await;
        let now_leading = is_leader(&server);
        if now_leading != leading {
            if now_leading {
                server.lessor.promote();
            } else {
                server.lessor.demote();
            }
            leading = now_leading;
        }
        if !leading {
            continue;
        }
        for id in server.lessor.expired(REVOKES_PER_ROUND) {
            let req = InternalRaftRequest {
                lease_revoke: Some(LeaseRevokeRequest { id }),
                ..Default::default()
            };
            if let Err(e) = server.propose(req).await {
                tracing::warn!(lease_id = %format!("{id:x}"), error = %e, "failed to revoke an expired lease");
            }
        }
    }
}

#[tonic::async_trait]
impl Lease for LeaseService {
    async fn lease_grant(
        &self,
        req: Request<LeaseGrantRequest>,
    ) -> Result<Response<LeaseGrantResponse>, Status> {
        let mut r = req.into_inner();
        if r.ttl > MAX_LEASE_TTL {
            return Err(EtcdError::LeaseTtlTooLarge.into());
        }
        if r.id == 0 {
            r.id = self.server.new_id();
        }
        let req = InternalRaftRequest {
            lease_grant: Some(r),
            ..Default::default()
        };
        super::write(&self.server, req, |a| match a {
            Applied::LeaseGrant(resp) => Ok(resp),
            other => Err(other),
        })
        .await
    }

    async fn lease_revoke(
        &self,
        req: Request<LeaseRevokeRequest>,
    ) -> Result<Response<LeaseRevokeResponse>, Status> {
        let req = InternalRaftRequest {
            lease_revoke: Some(req.into_inner()),
            ..Default::default()
        };
        super::write(&self.server, req, |a| match a {
            Applied::LeaseRevoke(resp) => Ok(resp),
            other => Err(other),
        })
        .await
    }

    type LeaseKeepAliveStream =
        Pin<Box<dyn Stream<Item = Result<LeaseKeepAliveResponse, Status>> + Send>>;

    /// Answers each keep-alive with the lease's full TTL (0 when it does not
    /// exist), in order.
    async fn lease_keep_alive(
        &self,
        req: Request<Streaming<LeaseKeepAliveRequest>>,
    ) -> Result<Response<Self::LeaseKeepAliveStream>, Status> {
        let mut input = req.into_inner();
        let (tx, rx) = mpsc::channel(64);
        let server = self.server.clone();
        tokio::spawn(async move {
            while let Ok(Some(r)) = input.message().await {
                let reply =
                    keep_alive_once(&server, r.id)
                        .await
                        .map(|ttl| LeaseKeepAliveResponse {
                            header: Some(server.header(server.store.current_revision())),
                            id: r.id,
                            ttl,
                        });
                let failed = reply.is_err();
                if tx.send(reply).await.is_err() || failed {
                    return;
                }
            }
        });
        Ok(Response::new(Box::pin(ReceiverStream::new(rx))))
    }

    /// A lease that does not exist answers TTL -1, as etcd does.
    async fn lease_time_to_live(
        &self,
        req: Request<LeaseTimeToLiveRequest>,
    ) -> Result<Response<LeaseTimeToLiveResponse>, Status> {
        let s = &self.server;
        let r = req.into_inner();
        if !is_leader(s) && s.leader() != 0 {
            let mut client = leader_client(s).await?;
            let mut resp = client.lease_time_to_live(r).await?.into_inner();
            resp.header = Some(s.header(s.store.current_revision()));
            return Ok(Response::new(resp));
        }
        let header = Some(s.header(s.store.current_revision()));
        let resp = match s.lessor.info(r.id) {
            Some(info) => LeaseTimeToLiveResponse {
                header,
                id: r.id,
                ttl: info.remaining_ttl,
                granted_ttl: info.granted_ttl,
                keys: if r.keys { info.keys } else { Vec::new() },
            },
            None => LeaseTimeToLiveResponse {
                header,
                id: r.id,
                ttl: -1,
                ..Default::default()
            },
        };
        Ok(Response::new(resp))
    }

    async fn lease_leases(
        &self,
        _req: Request<LeaseLeasesRequest>,
    ) -> Result<Response<LeaseLeasesResponse>, Status> {
        let s = &self.server;
        Ok(Response::new(LeaseLeasesResponse {
            header: Some(s.header(s.store.current_revision())),
            leases: s
                .lessor
                .ids()
                .into_iter()
                .map(|id| LeaseStatus { id })
                .collect(),
        }))
    }
}

//! The Lease service (etcd `etcdserverpb.Lease`): grants and revocations go
//! through raft; keep-alives and time-to-live are answered by the leader's
//! lessor (a follower asks the leader on its peer URL, where members
//! serve this service too, over one cached channel, as etcd forwards
//! them). The leader's expiry loop is `etcdserver/lease_expiry.rs`.

use std::pin::Pin;
use std::sync::{Arc, Mutex};

use api::etcdserverpb::lease_client::LeaseClient;
use api::etcdserverpb::lease_server::Lease;
use api::etcdserverpb::{
    LeaseGrantRequest, LeaseGrantResponse, LeaseKeepAliveRequest, LeaseKeepAliveResponse,
    LeaseLeasesRequest, LeaseLeasesResponse, LeaseRevokeRequest, LeaseRevokeResponse, LeaseStatus,
    LeaseTimeToLiveRequest, LeaseTimeToLiveResponse,
};
use futures::Stream;
use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;
use tonic::transport::Channel;
use tonic::{Request, Response, Status, Streaming};

use crate::auth::perms::Need;
use crate::etcdserver::v3server::Credentials;
use crate::etcdserver::EtcdServer;
use crate::lease::MAX_LEASE_TTL;
use crate::rpctypes::EtcdError;

/// The Lease service on a member.
pub struct LeaseService {
    server: Arc<EtcdServer>,
    leader: Arc<LeaderChannel>,
    /// Whether requests are checked against auth: on the client port, not
    /// for what a follower forwards over the peer port.
    checked: bool,
}

impl LeaseService {
    /// The service for `server`.
    pub fn new(server: Arc<EtcdServer>) -> Self {
        LeaseService {
            server,
            leader: Arc::default(),
            checked: true,
        }
    }

    /// While auth is on, leases' keys are for root or a user with `need`
    /// on each (etcd's `checkLeaseRenew`, `checkLeaseTimeToLive`).
    async fn check_keys(&self, creds: &Credentials, ids: &[i64], need: Need) -> Result<(), Status> {
        if self.checked {
            self.server.check_lease_keys(creds, ids, need).await?;
        }
        Ok(())
    }
}

/// The channel a follower forwards keep-alives and time-to-live requests
/// on: one per leader peer URL, made again only when the leader changes.
#[derive(Default)]
struct LeaderChannel(Mutex<Option<(String, Channel)>>);

impl LeaderChannel {
    /// A client of the current leader's Lease service. Errors: `NoLeader`,
    /// or Unavailable for a URL that does not parse.
    fn client(&self, s: &EtcdServer) -> Result<LeaseClient<Channel>, Status> {
        let url = s.leader_peer_url().ok_or(EtcdError::NoLeader)?;
        let mut cached = self.0.lock().expect("leader channel lock");
        if let Some((u, ch)) = cached.as_ref() {
            if *u == url {
                return Ok(LeaseClient::new(ch.clone()));
            }
        }
        let timeout = s.cfg.request_timeout;
        let ep = s
            .dialer
            .endpoint(&url)
            .map_err(|e| Status::unavailable(format!("etcdserver: bad leader URL {url}: {e}")))?
            .configure(|e| {
                e.tcp_nodelay(true)
                    .connect_timeout(timeout)
                    .timeout(timeout)
            });
        let ch = s.dialer.connect_lazy(&ep);
        *cached = Some((url, ch.clone()));
        Ok(LeaseClient::new(ch))
    }
}

fn is_leader(s: &EtcdServer) -> bool {
    s.leader() == s.member_id
}

/// Renews `id` on the leader; the TTL, or 0 if the lease does not exist.
async fn keep_alive_once(s: &EtcdServer, leader: &LeaderChannel, id: i64) -> Result<i64, Status> {
    if is_leader(s) {
        return Ok(s.lease_renew_as_leader(id).await?.unwrap_or(0));
    }
    let mut client = leader.client(s)?;
    let req = LeaseKeepAliveRequest { id };
    let mut replies = client
        .lease_keep_alive(tokio_stream::iter([req]))
        .await?
        .into_inner();
    Ok(replies.message().await?.map_or(0, |r| r.ttl))
}

#[tonic::async_trait]
impl Lease for LeaseService {
    async fn lease_grant(
        &self,
        req: Request<LeaseGrantRequest>,
    ) -> Result<Response<LeaseGrantResponse>, Status> {
        let creds = super::credentials(&req);
        let r = req.into_inner();
        if r.ttl > MAX_LEASE_TTL {
            return Err(EtcdError::LeaseTtlTooLarge.into());
        }
        Ok(Response::new(self.server.lease_grant(&creds, r).await?))
    }

    async fn lease_revoke(
        &self,
        req: Request<LeaseRevokeRequest>,
    ) -> Result<Response<LeaseRevokeResponse>, Status> {
        let creds = super::credentials(&req);
        Ok(Response::new(
            self.server.lease_revoke(&creds, req.into_inner()).await?,
        ))
    }

    type LeaseKeepAliveStream =
        Pin<Box<dyn Stream<Item = Result<LeaseKeepAliveResponse, Status>> + Send>>;

    /// Answers each keep-alive with the lease's full TTL (0 when it does not
    /// exist), in order.
    async fn lease_keep_alive(
        &self,
        req: Request<Streaming<LeaseKeepAliveRequest>>,
    ) -> Result<Response<Self::LeaseKeepAliveStream>, Status> {
        let creds = super::credentials(&req);
        let mut input = req.into_inner();
        let (tx, rx) = mpsc::channel(64);
        let server = self.server.clone();
        let leader = self.leader.clone();
        let checked = self.checked;
        tokio::spawn(async move {
            while let Ok(Some(r)) = input.message().await {
                if checked {
                    if let Err(e) = server.check_lease_keys(&creds, &[r.id], Need::Write).await {
                        let _ = tx.send(Err(e.into())).await;
                        return;
                    }
                }
                let reply = keep_alive_once(&server, &leader, r.id).await.map(|ttl| {
                    LeaseKeepAliveResponse {
                        header: Some(server.header(server.store.current_revision())),
                        id: r.id,
                        ttl,
                    }
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
        let creds = super::credentials(&req);
        let r = req.into_inner();
        if r.keys {
            self.check_keys(&creds, &[r.id], Need::Read).await?;
        } else if self.checked {
            s.require_user(&creds).await?;
        }
        if !is_leader(s) && s.leader() != 0 {
            let mut client = self.leader.client(s)?;
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
        req: Request<LeaseLeasesRequest>,
    ) -> Result<Response<LeaseLeasesResponse>, Status> {
        let s = &self.server;
        let creds = super::credentials(&req);
        let ids = s.lessor.ids();
        // With no lease there is nothing to check, as etcd 3.4 answers.
        if !ids.is_empty() {
            self.check_keys(&creds, &ids, Need::Read).await?;
        }
        Ok(Response::new(LeaseLeasesResponse {
            header: Some(s.header(s.store.current_revision())),
            leases: ids.into_iter().map(|id| LeaseStatus { id }).collect(),
        }))
    }
}

/// The Lease service as the peer port serves it: only what a follower
/// forwards to the leader (keep-alive, time-to-live), as etcd's peer
/// `leasehttp` handler; grants, revocations and listings answer
/// Unimplemented there.
pub struct PeerLeaseService(LeaseService);

impl PeerLeaseService {
    /// The peer-port service for `server`.
    pub fn new(server: Arc<EtcdServer>) -> Self {
        PeerLeaseService(LeaseService {
            checked: false,
            ..LeaseService::new(server)
        })
    }
}

fn not_on_peer_port() -> Status {
    Status::unimplemented("not served on the peer URL")
}

#[tonic::async_trait]
impl Lease for PeerLeaseService {
    async fn lease_grant(
        &self,
        _req: Request<LeaseGrantRequest>,
    ) -> Result<Response<LeaseGrantResponse>, Status> {
        Err(not_on_peer_port())
    }

    async fn lease_revoke(
        &self,
        _req: Request<LeaseRevokeRequest>,
    ) -> Result<Response<LeaseRevokeResponse>, Status> {
        Err(not_on_peer_port())
    }

    type LeaseKeepAliveStream = <LeaseService as Lease>::LeaseKeepAliveStream;

    async fn lease_keep_alive(
        &self,
        req: Request<Streaming<LeaseKeepAliveRequest>>,
    ) -> Result<Response<Self::LeaseKeepAliveStream>, Status> {
        self.0.lease_keep_alive(req).await
    }

    async fn lease_time_to_live(
        &self,
        req: Request<LeaseTimeToLiveRequest>,
    ) -> Result<Response<LeaseTimeToLiveResponse>, Status> {
        self.0.lease_time_to_live(req).await
    }

    async fn lease_leases(
        &self,
        _req: Request<LeaseLeasesRequest>,
    ) -> Result<Response<LeaseLeasesResponse>, Status> {
        Err(not_on_peer_port())
    }
}

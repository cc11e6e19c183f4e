//! The v3 gRPC API (etcd's `v3rpc`): one module per service, each a thin
//! layer that validates requests, takes who sends them ([`credentials`])
//! and calls the server's API layer (`etcdserver/v3server.rs`), which
//! checks auth, builds raft requests and proposes. Lock and Election
//! translate to the recipes of `etcdserver/concurrency/`.

pub mod auth;
pub mod cluster;
pub mod election;
pub mod interceptor;
pub mod kv;
pub mod kv_range;
pub mod kv_stream;
pub mod lease;
pub mod lock;
pub mod maintenance;
pub mod validate;
pub mod watch;
pub mod watch_grpc;

use std::sync::Arc;

use api::etcdserverpb::auth_server::AuthServer;
use api::etcdserverpb::cluster_server::ClusterServer;
use api::etcdserverpb::kv_server::KvServer;
use api::etcdserverpb::lease_server::LeaseServer;
use api::etcdserverpb::maintenance_server::MaintenanceServer;
use api::etcdserverpb::watch_server::WatchServer;
use api::v3electionpb::election_server::ElectionServer;
use api::v3lockpb::lock_server::LockServer;
use tonic::service::Routes;

use tonic::Request;

use crate::etcdserver::v3server::Credentials;
use crate::etcdserver::EtcdServer;
use crate::listener::ConnInfo;

/// Who sends `req`: its `token` (or, from the gateway, `authorization`)
/// metadata and its connection's verified client certificate CN.
pub(crate) fn credentials<T>(req: &Request<T>) -> Credentials {
    let md = req.metadata();
    let token = md
        .get("token")
        .or_else(|| md.get("authorization"))
        .and_then(|v| v.to_str().ok())
        .map(str::to_string);
    let common_name = req
        .extensions()
        .get::<ConnInfo>()
        .and_then(|c| c.common_name.clone());
    Credentials { token, common_name }
}

/// Room for gRPC framing above `--max-request-bytes`, so a request a little
/// over the limit gets etcd's "request is too large" (etcd: 512 KiB).
pub(crate) const GRPC_OVERHEAD_BYTES: usize = 512 * 1024;

/// What a learner serves (etcd's `isRPCSupportedForLearner` and its
/// stream interceptor): Status, Snapshot and Range, which itself refuses
/// all but serializable reads.
const LEARNER_SERVES: &[&str] = &[
    "/etcdserverpb.Maintenance/Status",
    "/etcdserverpb.Maintenance/Snapshot",
    "/etcdserverpb.KV/Range",
];

/// Whether `server`, a learner, refuses gRPC method `path` (etcd's
/// `isRPCSupportedForLearner` and its stream interceptor): every etcd
/// RPC but [`LEARNER_SERVES`]. The gateway asks the same of its calls.
pub(crate) fn learner_refuses(server: &EtcdServer, path: &str) -> bool {
    // etcd's interceptors cover every service of its gRPC server, the
    // health service included.
    let etcd_rpc = [
        "/etcdserverpb.",
        "/v3lockpb.",
        "/v3electionpb.",
        "/grpc.health.v1.",
    ]
    .iter()
    .any(|p| path.starts_with(p));
    etcd_rpc && !LEARNER_SERVES.contains(&path) && server.is_learner()
}

/// The gRPC routes of a member, health service included.
pub async fn routes(server: Arc<EtcdServer>) -> Routes {
    let max_recv = server.cfg.max_request_bytes + GRPC_OVERHEAD_BYTES;
    let (health_reporter, health) = tonic_health::server::health_reporter();
    health_reporter
        .set_service_status("", tonic_health::ServingStatus::Serving)
        .await;
    Routes::new(
        KvServer::new(kv::KvService::new(server.clone())).max_decoding_message_size(max_recv),
    )
    .add_service(MaintenanceServer::new(
        maintenance::MaintenanceService::new(server.clone()),
    ))
    .add_service(ClusterServer::new(cluster::ClusterService::new(
        server.clone(),
    )))
    .add_service(WatchServer::new(watch::WatchService::new(server.clone())))
    .add_service(AuthServer::new(auth::AuthService::new(server.clone())))
    .add_service(LeaseServer::new(lease::LeaseService::new(server.clone())))
    .add_service(LockServer::new(lock::LockService::new(server.clone())))
    .add_service(ElectionServer::new(election::ElectionService::new(server)))
    .add_service(health)
}

//! The v3 gRPC API (etcd's `v3rpc`): one module per service, each a thin
//! layer that checks requests and calls the [`EtcdServer`]. Services not
//! registered here (Auth, Lock, Election for now) answer
//! `Unimplemented`, which tonic does for unknown services.

pub mod cluster;
pub mod kv;
pub mod lease;
pub mod maintenance;
pub mod validate;
pub mod watch;

use std::sync::Arc;

use api::etcdserverpb::cluster_server::ClusterServer;
use api::etcdserverpb::kv_server::KvServer;
use api::etcdserverpb::lease_server::LeaseServer;
use api::etcdserverpb::maintenance_server::MaintenanceServer;
use api::etcdserverpb::watch_server::WatchServer;
use tonic::service::Routes;

use crate::etcdserver::EtcdServer;

/// Room for gRPC framing above `--max-request-bytes`, so a request a little
/// over the limit gets etcd's "request is too large" (etcd: 512 KiB).
pub(crate) const GRPC_OVERHEAD_BYTES: usize = 512 * 1024;

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
    .add_service(LeaseServer::new(lease::LeaseService::new(server)))
    .add_service(health)
}

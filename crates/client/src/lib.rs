//! etcd-rs's client library: a connection to one live member picked from a
//! list of endpoints, and the generated v3 service clients on it.
//!
//! It owns what every tool needs before its first request: endpoint URLs
//! as etcdctl accepts them (`host:port` or `http://host:port`), the dial
//! timeout, HTTP/2 keepalive, and failover (endpoints are tried in order;
//! the first that accepts a connection within the dial timeout is used).
//! Requests and responses are etcd's own protobuf messages
//! (`api::etcdserverpb`), so tools print exactly what the server answered.
//! `load` is the paced request driver the measuring tools share.

pub mod load;

use std::time::Duration;

use api::etcdserverpb::cluster_client::ClusterClient;
use api::etcdserverpb::kv_client::KvClient;
use api::etcdserverpb::lease_client::LeaseClient;
use api::etcdserverpb::maintenance_client::MaintenanceClient;
use api::etcdserverpb::watch_client::WatchClient;
use tonic::transport::{Channel, Endpoint};

/// Largest response accepted, in bytes (etcdctl's default: no practical
/// limit).
const MAX_RECV_BYTES: usize = i32::MAX as usize;

/// How to reach the cluster (etcdctl's connection flags).
#[derive(Clone, Debug)]
pub struct ConnectOptions {
    /// Time to establish a connection to one endpoint (`--dial-timeout`,
    /// default 2 s).
    pub dial_timeout: Duration,
    /// HTTP/2 ping interval (`--keepalive-time`, default 2 s).
    pub keepalive_time: Duration,
    /// How long a ping may go unanswered (`--keepalive-timeout`, default
    /// 6 s).
    pub keepalive_timeout: Duration,
}

impl Default for ConnectOptions {
    fn default() -> Self {
        ConnectOptions {
            dial_timeout: Duration::from_secs(2),
            keepalive_time: Duration::from_secs(2),
            keepalive_timeout: Duration::from_secs(6),
        }
    }
}

/// Why no connection was made.
#[derive(Debug, thiserror::Error)]
pub enum ConnectError {
    /// No endpoint was given.
    #[error("no endpoints")]
    NoEndpoints,
    /// An endpoint is not a URL etcd accepts.
    #[error("invalid endpoint {0:?}")]
    BadEndpoint(String),
    /// No endpoint accepted a connection within the dial timeout
    /// (etcdctl's text for it).
    #[error("context deadline exceeded")]
    Unreachable,
}

/// `host:port` -> `http://host:port`; URLs with a scheme stay as they are.
pub fn endpoint_url(endpoint: &str) -> String {
    if endpoint.contains("://") {
        endpoint.to_string()
    } else {
        format!("http://{endpoint}")
    }
}

/// `http://host:port` -> `host:port`, as etcdctl prints endpoints in
/// `endpoint` command output.
pub fn endpoint_host(endpoint: &str) -> &str {
    endpoint
        .split_once("://")
        .map_or(endpoint, |(_, rest)| rest)
        .trim_end_matches('/')
}

/// A connection to one member.
#[derive(Clone, Debug)]
pub struct Client {
    channel: Channel,
    endpoint: String,
}

impl Client {
    /// Connects to the first of `endpoints` that accepts a connection
    /// within `opts.dial_timeout`. Errors: `NoEndpoints`, `BadEndpoint`,
    /// `Unreachable`.
    pub async fn connect(
        endpoints: &[String],
        opts: &ConnectOptions,
    ) -> Result<Client, ConnectError> {
        if endpoints.is_empty() {
            return Err(ConnectError::NoEndpoints);
        }
        for e in endpoints {
            let ep = Self::endpoint(e, opts)?;
            if let Ok(Ok(channel)) = tokio::time::timeout(opts.dial_timeout, ep.connect()).await {
                return Ok(Client {
                    channel,
                    endpoint: e.clone(),
                });
            }
        }
        Err(ConnectError::Unreachable)
    }

    fn endpoint(e: &str, opts: &ConnectOptions) -> Result<Endpoint, ConnectError> {
        Ok(Endpoint::from_shared(endpoint_url(e))
            .map_err(|_| ConnectError::BadEndpoint(e.to_string()))?
            .connect_timeout(opts.dial_timeout)
            .tcp_nodelay(true)
            .http2_keep_alive_interval(opts.keepalive_time)
            .keep_alive_timeout(opts.keepalive_timeout)
            .keep_alive_while_idle(true))
    }

    /// The endpoint this client talks to, as given.
    pub fn endpoint_name(&self) -> &str {
        &self.endpoint
    }

    /// The KV service.
    pub fn kv(&self) -> KvClient<Channel> {
        KvClient::new(self.channel.clone()).max_decoding_message_size(MAX_RECV_BYTES)
    }

    /// The Watch service.
    pub fn watch(&self) -> WatchClient<Channel> {
        WatchClient::new(self.channel.clone()).max_decoding_message_size(MAX_RECV_BYTES)
    }

    /// The Lease service.
    pub fn lease(&self) -> LeaseClient<Channel> {
        LeaseClient::new(self.channel.clone()).max_decoding_message_size(MAX_RECV_BYTES)
    }

    /// The Cluster service.
    pub fn cluster(&self) -> ClusterClient<Channel> {
        ClusterClient::new(self.channel.clone()).max_decoding_message_size(MAX_RECV_BYTES)
    }

    /// The Maintenance service.
    pub fn maintenance(&self) -> MaintenanceClient<Channel> {
        MaintenanceClient::new(self.channel.clone()).max_decoding_message_size(MAX_RECV_BYTES)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn endpoints_take_etcdctls_forms() {
        assert_eq!(endpoint_url("127.0.0.1:2379"), "http://127.0.0.1:2379");
        assert_eq!(endpoint_url("http://a:1"), "http://a:1");
        assert_eq!(endpoint_host("http://127.0.0.1:2379"), "127.0.0.1:2379");
        assert_eq!(endpoint_host("127.0.0.1:2379"), "127.0.0.1:2379");
    }

    #[tokio::test]
    async fn no_live_endpoint_is_unreachable() {
        let dead = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let dead_addr = dead.local_addr().unwrap().to_string();
        drop(dead);
        let opts = ConnectOptions {
            dial_timeout: Duration::from_millis(500),
            ..Default::default()
        };
        let err = Client::connect(&[dead_addr], &opts).await.unwrap_err();
        assert!(matches!(err, ConnectError::Unreachable), "{err}");
    }
}

//! etcd-rs's client library: a connection to one live member picked from a
//! list of endpoints, and the generated v3 service clients on it.
//!
//! It owns what every tool needs before its first request: endpoint URLs
//! as etcdctl accepts them (`host:port`, `http://` or `https://`), TLS
//! (a CA bundle, a client certificate), the dial timeout, HTTP/2
//! keepalive, failover (endpoints are tried in order; the first that
//! accepts a connection within the dial timeout is used), and
//! authentication (a user's token from `Auth.Authenticate`, sent as the
//! `token` metadata of every request, as clientv3 does).
//! Requests and responses are etcd's own protobuf messages
//! (`api::etcdserverpb`), so tools print exactly what the server answered.
//! `load` is the paced request driver the measuring tools share;
//! `concurrency` holds clientv3's session, lock and election recipes on
//! plain KV.

pub mod concurrency;
mod insecure;
pub mod load;

use std::sync::{Arc, RwLock};
use std::time::Duration;

use api::etcdserverpb::auth_client::AuthClient;
use api::etcdserverpb::cluster_client::ClusterClient;
use api::etcdserverpb::kv_client::KvClient;
use api::etcdserverpb::lease_client::LeaseClient;
use api::etcdserverpb::maintenance_client::MaintenanceClient;
use api::etcdserverpb::watch_client::WatchClient;
use api::etcdserverpb::AuthenticateRequest;
use api::v3electionpb::election_client::ElectionClient;
use api::v3lockpb::lock_client::LockClient;
use tonic::metadata::{Ascii, MetadataValue};
use tonic::service::interceptor::InterceptedService;
use tonic::service::Interceptor;
use tonic::transport::{Certificate, Channel, ClientTlsConfig, Endpoint, Identity};

/// Largest response accepted, in bytes (etcdctl's default: no practical
/// limit).
const MAX_RECV_BYTES: usize = i32::MAX as usize;

/// The shortest ping interval, as grpc-go's `KeepaliveMinPingTime`: etcd
/// (`--grpc-keepalive-min-time`, default 5 s) answers pings more frequent
/// than its minimum with GOAWAY `too_many_pings`, which would end a call
/// that runs longer than a few pings, a long defragmentation or a quiet
/// watch.
pub const MIN_KEEPALIVE_TIME: Duration = Duration::from_secs(10);

/// How to reach the cluster (etcdctl's connection flags).
#[derive(Clone, Debug)]
pub struct ConnectOptions {
    /// Time to establish a connection to one endpoint (`--dial-timeout`,
    /// default 2 s).
    pub dial_timeout: Duration,
    /// HTTP/2 ping interval (`--keepalive-time`, default 2 s), raised to
    /// [`MIN_KEEPALIVE_TIME`] as grpc-go raises it; pings go out only
    /// while a call is open (clientv3's `PermitWithoutStream` is false).
    pub keepalive_time: Duration,
    /// How long a ping may go unanswered (`--keepalive-timeout`, default
    /// 6 s).
    pub keepalive_timeout: Duration,
    /// TLS for endpoints without a scheme (and always for `https://`);
    /// `None`: plain HTTP/2 unless an endpoint says `https://`.
    pub tls: Option<TlsOptions>,
    /// User name and password to authenticate as (`--user`).
    pub auth: Option<(String, String)>,
}

impl Default for ConnectOptions {
    fn default() -> Self {
        ConnectOptions {
            dial_timeout: Duration::from_secs(2),
            keepalive_time: Duration::from_secs(2),
            keepalive_timeout: Duration::from_secs(6),
            tls: None,
            auth: None,
        }
    }
}

/// Transport security (etcdctl's `--cacert`, `--cert`, `--key`), PEM.
#[derive(Clone, Debug, Default)]
pub struct TlsOptions {
    /// CA bundle the servers' certificates must chain to; `None`: the
    /// system's roots.
    pub ca: Option<Vec<u8>>,
    /// Client certificate and its private key, for servers that check
    /// clients (`--client-cert-auth`).
    pub identity: Option<(Vec<u8>, Vec<u8>)>,
    /// Accept any server certificate (`--insecure-skip-tls-verify`):
    /// the connection is encrypted but the server not authenticated.
    pub insecure_skip_verify: bool,
}

impl TlsOptions {
    fn config(&self) -> ClientTlsConfig {
        let mut c = ClientTlsConfig::new();
        c = match &self.ca {
            Some(ca) => c.ca_certificate(Certificate::from_pem(ca)),
            None => c.with_native_roots(),
        };
        if let Some((cert, key)) = &self.identity {
            c = c.identity(Identity::from_pem(cert, key));
        }
        c
    }
}

/// Adds the auth token, if any, to every request's metadata. Clones share
/// one token, so a refreshed token reaches every service client.
#[derive(Clone, Debug, Default)]
pub struct Token(Arc<RwLock<Option<MetadataValue<Ascii>>>>);

impl Interceptor for Token {
    fn call(&mut self, mut req: tonic::Request<()>) -> Result<tonic::Request<()>, tonic::Status> {
        if let Some(t) = self.0.read().expect("token lock").as_ref() {
            req.metadata_mut().insert("token", t.clone());
        }
        Ok(req)
    }
}

/// Whether a request refused with `s` may pass with a new token (clientv3's
/// `shouldRefreshToken`): the token expired or was dropped, or the auth
/// store changed since it was checked.
pub fn needs_new_token(s: &tonic::Status) -> bool {
    matches!(
        s.message(),
        "etcdserver: invalid auth token"
            | "etcdserver: revision of auth store is old"
            | "etcdserver: user name is empty"
    )
}

/// The transport every service client runs on: the channel, with the
/// auth token added to each request.
pub type Transport = InterceptedService<Channel, Token>;

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
    /// The TLS settings were refused (e.g. a malformed certificate).
    #[error("{0}")]
    Tls(String),
    /// `Auth.Authenticate` failed: the server's error, as etcdctl prints
    /// it (e.g. `etcdserver: authentication failed, invalid user ID or
    /// password`).
    #[error("{}", status_text(.0))]
    Auth(tonic::Status),
}

/// An error and its sources, `: `-separated (tonic's transport errors
/// keep the useful part in their source).
fn error_chain(e: &dyn std::error::Error) -> String {
    let mut text = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        text = format!("{text}: {s}");
        source = s.source();
    }
    text
}

/// The text etcdctl and clientv3 show for a gRPC status (clientv3's `toErr`): etcd's
/// own errors by their message (`etcdserver: ...`), others as
/// `rpc error: code = <Code> desc = <message>`, and `context deadline
/// exceeded` when the command timed out. A connection that broke under
/// the request (e.g. the server refused our certificate after the TLS
/// handshake: hyper's `transport error` or `operation was canceled`) is
/// also `context deadline exceeded`: grpc-go keeps
/// reconnecting until the command's deadline and reports that.
pub fn status_text(s: &tonic::Status) -> String {
    let msg = s.message();
    match s.code() {
        tonic::Code::DeadlineExceeded if msg.is_empty() => "context deadline exceeded".to_string(),
        tonic::Code::Unknown if msg == "transport error" => "context deadline exceeded".to_string(),
        tonic::Code::Cancelled
            if msg.contains("Timeout expired") || msg == "operation was canceled" =>
        {
            "context deadline exceeded".to_string()
        }
        _ if msg.starts_with("etcdserver: ") => msg.to_string(),
        tonic::Code::Cancelled => format!("rpc error: code = Canceled desc = {msg}"),
        code => format!("rpc error: code = {code:?} desc = {msg}"),
    }
}

/// `host:port` -> `http://host:port` (`https://` with `tls`); URLs with a
/// scheme stay as they are.
pub fn endpoint_url(endpoint: &str, tls: bool) -> String {
    if endpoint.contains("://") {
        endpoint.to_string()
    } else if tls {
        format!("https://{endpoint}")
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

/// How one endpoint is dialed: by tonic (plain, or TLS with
/// verification), or over TLS that accepts any server certificate.
enum Dial {
    Tonic(Endpoint),
    Unverified(Endpoint, std::sync::Arc<rustls::ClientConfig>),
}

impl Dial {
    async fn connect(self) -> Result<Channel, tonic::transport::Error> {
        match self {
            Dial::Tonic(ep) => ep.connect().await,
            Dial::Unverified(ep, cfg) => ep.connect_with_connector(tlsdial::connector(cfg)).await,
        }
    }
}

/// A connection to one member.
#[derive(Clone, Debug)]
pub struct Client {
    channel: Channel,
    token: Token,
    endpoint: String,
    /// The user and password to get a new token with.
    auth: Option<(String, String)>,
}

impl Client {
    /// Connects to the first of `endpoints` that accepts a connection
    /// within `opts.dial_timeout` and, if `opts.auth` says so,
    /// authenticates; an endpoint that refuses Authenticate is passed for
    /// the next, as clientv3 does. Errors: `NoEndpoints`, `BadEndpoint`,
    /// `Tls`, `Unreachable`, `Auth` (the last endpoint's refusal).
    pub async fn connect(
        endpoints: &[String],
        opts: &ConnectOptions,
    ) -> Result<Client, ConnectError> {
        if endpoints.is_empty() {
            return Err(ConnectError::NoEndpoints);
        }
        let mut refused = None;
        for e in endpoints {
            let ep = Self::endpoint(e, opts)?;
            if let Ok(Ok(channel)) = tokio::time::timeout(opts.dial_timeout, ep.connect()).await {
                let client = Client {
                    channel,
                    token: Token::default(),
                    endpoint: e.clone(),
                    auth: opts.auth.clone(),
                };
                match client.refresh_token().await {
                    Ok(()) => return Ok(client),
                    Err(err) => refused = Some(err),
                }
            }
        }
        Err(refused.unwrap_or(ConnectError::Unreachable))
    }

    fn endpoint(e: &str, opts: &ConnectOptions) -> Result<Dial, ConnectError> {
        let mut url = endpoint_url(e, opts.tls.is_some());
        let tls = opts.tls.clone().unwrap_or_default();
        let skip_verify = url.starts_with("https://") && tls.insecure_skip_verify;
        if skip_verify {
            // TLS is done by our own connector; tonic dials plain.
            url = url.replacen("https://", "http://", 1);
        }
        let mut ep = Endpoint::from_shared(url.clone())
            .map_err(|_| ConnectError::BadEndpoint(e.to_string()))?
            .connect_timeout(opts.dial_timeout)
            .tcp_nodelay(true)
            .http2_keep_alive_interval(opts.keepalive_time.max(MIN_KEEPALIVE_TIME))
            .keep_alive_timeout(opts.keepalive_timeout)
            .keep_alive_while_idle(false);
        if skip_verify {
            let cfg = insecure::config(&tls).map_err(ConnectError::Tls)?;
            return Ok(Dial::Unverified(ep, cfg));
        }
        if url.starts_with("https://") {
            ep = ep
                .tls_config(tls.config())
                .map_err(|e| ConnectError::Tls(error_chain(&e)))?;
        }
        Ok(Dial::Tonic(ep))
    }

    /// Gets a new token for the client's user, if it has one, and sends it
    /// with every later request. A server without auth enabled needs none
    /// (clientv3 goes on too). Error: `Auth`.
    pub async fn refresh_token(&self) -> Result<(), ConnectError> {
        let Some((name, password)) = &self.auth else {
            return Ok(());
        };
        let reply = self
            .auth()
            .authenticate(AuthenticateRequest {
                name: name.to_string(),
                password: password.to_string(),
            })
            .await;
        let token = match reply {
            Ok(r) => r.into_inner().token,
            Err(s) if s.message() == "etcdserver: authentication is not enabled" => return Ok(()),
            Err(s) => return Err(ConnectError::Auth(s)),
        };
        let token = token.parse().map_err(|_| {
            ConnectError::Auth(tonic::Status::internal("the server sent a malformed token"))
        })?;
        *self.token.0.write().expect("token lock") = Some(token);
        Ok(())
    }

    /// Runs `call` on this client; when it is refused for its token
    /// ([`needs_new_token`]) and the client has a user, gets a new token
    /// and runs it once more, as clientv3's retry interceptor.
    pub async fn with_token_refresh<T, F, Fut>(&self, call: F) -> Result<T, tonic::Status>
    where
        F: Fn(Client) -> Fut,
        Fut: std::future::Future<Output = Result<T, tonic::Status>>,
    {
        match call(self.clone()).await {
            Err(s) if self.auth.is_some() && needs_new_token(&s) => {
                self.refresh_token().await.map_err(|e| match e {
                    ConnectError::Auth(s) => s,
                    other => tonic::Status::unavailable(other.to_string()),
                })?;
                call(self.clone()).await
            }
            other => other,
        }
    }

    /// The endpoint this client talks to, as given.
    pub fn endpoint_name(&self) -> &str {
        &self.endpoint
    }

    /// The KV service.
    pub fn kv(&self) -> KvClient<Transport> {
        KvClient::with_interceptor(self.channel.clone(), self.token.clone())
            .max_decoding_message_size(MAX_RECV_BYTES)
    }

    /// The Watch service.
    pub fn watch(&self) -> WatchClient<Transport> {
        WatchClient::with_interceptor(self.channel.clone(), self.token.clone())
            .max_decoding_message_size(MAX_RECV_BYTES)
    }

    /// The Lease service.
    pub fn lease(&self) -> LeaseClient<Transport> {
        LeaseClient::with_interceptor(self.channel.clone(), self.token.clone())
            .max_decoding_message_size(MAX_RECV_BYTES)
    }

    /// The Cluster service.
    pub fn cluster(&self) -> ClusterClient<Transport> {
        ClusterClient::with_interceptor(self.channel.clone(), self.token.clone())
            .max_decoding_message_size(MAX_RECV_BYTES)
    }

    /// The Auth service.
    pub fn auth(&self) -> AuthClient<Transport> {
        AuthClient::with_interceptor(self.channel.clone(), self.token.clone())
            .max_decoding_message_size(MAX_RECV_BYTES)
    }

    /// The Maintenance service.
    pub fn maintenance(&self) -> MaintenanceClient<Transport> {
        MaintenanceClient::with_interceptor(self.channel.clone(), self.token.clone())
            .max_decoding_message_size(MAX_RECV_BYTES)
    }

    /// The Lock service (v3lock).
    pub fn lock(&self) -> LockClient<Transport> {
        LockClient::with_interceptor(self.channel.clone(), self.token.clone())
    }

    /// The Election service (v3election).
    pub fn election(&self) -> ElectionClient<Transport> {
        ElectionClient::with_interceptor(self.channel.clone(), self.token.clone())
    }
}

/// The end of the range of keys with prefix `key` (clientv3's
/// `GetPrefixRangeEnd`): the prefix with its last byte below 0xff
/// incremented, or `\0` (every key) when there is none.
pub fn prefix_end(key: &[u8]) -> Vec<u8> {
    let mut end = key.to_vec();
    while let Some(last) = end.pop() {
        if last < 0xff {
            end.push(last + 1);
            return end;
        }
    }
    vec![0]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prefix_ends_match_clientv3() {
        assert_eq!(prefix_end(b"abc"), b"abd");
        assert_eq!(prefix_end(b"a\xff"), b"b");
        assert_eq!(prefix_end(b"\xff\xff"), b"\0");
    }

    #[test]
    fn endpoints_take_etcdctls_forms() {
        assert_eq!(
            endpoint_url("127.0.0.1:2379", false),
            "http://127.0.0.1:2379"
        );
        assert_eq!(
            endpoint_url("127.0.0.1:2379", true),
            "https://127.0.0.1:2379"
        );
        assert_eq!(endpoint_url("http://a:1", true), "http://a:1");
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

//! Dialing other members' peer URLs: plain HTTP/2 for `http://`, and for
//! `https://` TLS with the peer certificate (`--peer-cert-file`) as client
//! certificate and the other member's verified as `--peer-trusted-ca-file`,
//! `--peer-cert-allowed-cn` and auto TLS say (`tls::TlsInfo::client_config`).
//! The raft transport, snapshot sends and lease forwarding all dial here.

use std::sync::Arc;

use tonic::transport::{Channel, Endpoint};

/// How this member dials its peers.
#[derive(Clone, Debug, Default)]
pub struct Dialer {
    tls: Option<Arc<rustls::ClientConfig>>,
}

/// A peer endpoint and whether it is dialed with TLS.
#[derive(Clone, Debug)]
pub struct PeerEndpoint {
    endpoint: Endpoint,
    tls: bool,
}

impl Dialer {
    /// A dialer that speaks TLS to `https://` peers with `tls`.
    pub fn new(tls: Option<Arc<rustls::ClientConfig>>) -> Dialer {
        Dialer { tls }
    }

    /// The endpoint for a peer URL. Errors: a URL that does not parse,
    /// or an `https://` URL while this member has no peer TLS.
    pub fn endpoint(&self, url: &str) -> Result<PeerEndpoint, String> {
        let (plain, tls) = match url.strip_prefix("https://") {
            Some(rest) if self.tls.is_some() => (format!("http://{rest}"), true),
            Some(_) => {
                return Err(format!(
                    "peer URL {url} needs TLS, but no peer certificate is configured (--peer-cert-file or --peer-auto-tls)"
                ))
            }
            None => (url.to_string(), false),
        };
        let endpoint =
            Endpoint::from_shared(plain).map_err(|e| format!("invalid peer URL {url}: {e}"))?;
        Ok(PeerEndpoint { endpoint, tls })
    }

    /// Connects now.
    pub async fn connect(&self, ep: &PeerEndpoint) -> Result<Channel, tonic::transport::Error> {
        match (&self.tls, ep.tls) {
            (Some(cfg), true) => {
                ep.endpoint
                    .connect_with_connector(tlsdial::connector(cfg.clone()))
                    .await
            }
            _ => ep.endpoint.connect().await,
        }
    }

    /// A channel that connects on first use.
    pub fn connect_lazy(&self, ep: &PeerEndpoint) -> Channel {
        match (&self.tls, ep.tls) {
            (Some(cfg), true) => ep
                .endpoint
                .connect_with_connector_lazy(tlsdial::connector(cfg.clone())),
            _ => ep.endpoint.connect_lazy(),
        }
    }
}

impl PeerEndpoint {
    /// Applies tonic's endpoint settings (timeouts, keepalive).
    pub fn configure(mut self, f: impl FnOnce(Endpoint) -> Endpoint) -> PeerEndpoint {
        self.endpoint = f(self.endpoint);
        self
    }
}

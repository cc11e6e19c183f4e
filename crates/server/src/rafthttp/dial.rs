//! Dialing other members' peer URLs: plain HTTP/2 for `http://`, and for
//! `https://` TLS with the peer certificate (`--peer-cert-file`) as client
//! certificate and the other member's verified as `--peer-trusted-ca-file`,
//! `--peer-cert-allowed-cn` and auto TLS say (`tls::TlsInfo::client_config`).
//! The raft transport, snapshot sends and lease forwarding all dial here.

use std::sync::Arc;

use rustls::pki_types::ServerName;
use tokio::net::TcpStream;
use tokio_rustls::TlsConnector;
use tonic::transport::{Channel, Endpoint, Uri};

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
                    .connect_with_connector(connector(cfg.clone()))
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
                .connect_with_connector_lazy(connector(cfg.clone())),
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

/// A tonic connector that opens TCP, then TLS with `cfg`, naming the
/// URL's host as the server.
fn connector(
    cfg: Arc<rustls::ClientConfig>,
) -> impl tower::Service<
    Uri,
    Response = hyper_util::rt::TokioIo<tokio_rustls::client::TlsStream<TcpStream>>,
    Error = std::io::Error,
    Future = impl Send,
> + Send
       + Clone
       + 'static {
    tower::service_fn(move |uri: Uri| {
        let tls = TlsConnector::from(cfg.clone());
        async move {
            let host = uri.host().unwrap_or_default();
            let host = host
                .trim_start_matches('[')
                .trim_end_matches(']')
                .to_string();
            let port = uri.port_u16().unwrap_or(443);
            let name = ServerName::try_from(host.clone())
                .map_err(|e| std::io::Error::new(std::io::ErrorKind::InvalidInput, e))?;
            let tcp = TcpStream::connect((host.as_str(), port)).await?;
            tcp.set_nodelay(true)?;
            let stream = tls.connect(name, tcp).await?;
            Ok(hyper_util::rt::TokioIo::new(stream))
        }
    })
}

//! Listening on a URL (etcd's `transport.NewListener`): `http://` and
//! `https://` on TCP, `unix://` and `unixs://` on a socket file, the `s`
//! schemes with TLS. One code path for all four, used by the client and
//! the peer listeners alike.
//!
//! A listener's accept loop only accepts: each connection's TLS
//! handshake runs in a task of its own, bounded by [`HANDSHAKE_TIMEOUT`],
//! so a slow or silent client cannot hold up the others. Finished
//! connections come out of [`Incoming`] as [`Conn`]s carrying a
//! [`ConnInfo`]: the remote address and the Common Name of a verified
//! client certificate, for the auth layer to take as the user name (as
//! etcd does with `--client-cert-auth`).

use std::io;
use std::net::{SocketAddr, ToSocketAddrs};
use std::path::PathBuf;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, UnixListener};
use tokio::sync::{mpsc, Semaphore};
use tokio_rustls::TlsAcceptor;

/// Longest a connection may take to complete its TLS handshake.
pub const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);
/// Connections handshaken but not yet taken by the server; past it the
/// handshake tasks wait.
const READY_QUEUE: usize = 128;
/// Most TLS handshakes in progress on one listener.
pub const MAX_HANDSHAKES: usize = 1024;

/// Where a listen URL listens.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ListenAddr {
    /// A TCP address (`http://`, `https://`).
    Tcp(SocketAddr),
    /// A socket file (`unix://`, `unixs://`): the URL's host and path, as
    /// etcd names it (`unix://localhost:2379` is the file `localhost:2379`).
    Unix(PathBuf),
}

/// One address of a listen URL, and whether it speaks TLS.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ListenUrl {
    /// The URL as given.
    pub url: String,
    /// Where it listens.
    pub addr: ListenAddr,
    /// `https://` or `unixs://`.
    pub secure: bool,
}

impl ListenUrl {
    /// Parses a listen URL: its host must be an IP address or
    /// `localhost`, as etcd binds only those. Errors in etcd's words: an
    /// unknown scheme, a host name, a missing or bad port.
    pub fn parse(url: &str) -> Result<Vec<ListenUrl>, String> {
        let (scheme, rest) = url
            .split_once("://")
            .ok_or_else(|| format!("URL scheme must be http, https, unix, or unixs: {url}"))?;
        let secure = matches!(scheme, "https" | "unixs");
        let one = |addr| ListenUrl {
            url: url.to_string(),
            addr,
            secure,
        };
        match scheme {
            "unix" | "unixs" => {
                let path = rest.trim_end_matches('/');
                if path.is_empty() {
                    return Err(format!("missing socket path in address: {url}"));
                }
                Ok(vec![one(ListenAddr::Unix(PathBuf::from(path)))])
            }
            "http" | "https" => {
                let hostport = rest.split('/').next().unwrap_or_default();
                let (host, port) = hostport
                    .rsplit_once(':')
                    .ok_or_else(|| format!("missing port in address: {url}"))?;
                let host = host.trim_start_matches('[').trim_end_matches(']');
                let host = match host {
                    "localhost" => "127.0.0.1",
                    h if h.parse::<std::net::IpAddr>().is_ok() => h,
                    _ => return Err(format!("expected IP in URL for binding ({url})")),
                };
                let port: u16 = port
                    .parse()
                    .map_err(|_| format!("invalid port in address: {url}"))?;
                let addrs = (host, port)
                    .to_socket_addrs()
                    .map_err(|e| format!("cannot resolve {url}: {e}"))?;
                Ok(addrs.map(|a| one(ListenAddr::Tcp(a))).collect())
            }
            _ => Err(format!(
                "URL scheme must be http, https, unix, or unixs: {url}"
            )),
        }
    }

    /// The address as etcd prints it: `ip:port`, or the socket path.
    pub fn address(&self) -> String {
        match &self.addr {
            ListenAddr::Tcp(a) => a.to_string(),
            ListenAddr::Unix(p) => p.display().to_string(),
        }
    }

    /// The host part of the URL as written (for auto TLS certificates):
    /// `localhost`, an IP address, or a unix socket's name before `:`.
    pub fn host(&self) -> String {
        let rest = self
            .url
            .split_once("://")
            .map_or(self.url.as_str(), |(_, r)| r);
        let hostport = rest.split('/').next().unwrap_or_default();
        let host = hostport.rsplit_once(':').map_or(hostport, |(h, _)| h);
        host.trim_start_matches('[')
            .trim_end_matches(']')
            .to_string()
    }
}

/// What the server knows of a connection.
#[derive(Clone, Debug, Default)]
pub struct ConnInfo {
    /// The remote address (`ip:port`, or the socket path).
    pub remote: String,
    /// The Common Name of the client certificate the handshake verified.
    pub common_name: Option<String>,
}

trait Io: AsyncRead + AsyncWrite + Send {}
impl<T: AsyncRead + AsyncWrite + Send> Io for T {}

/// An accepted connection, plain or TLS, TCP or unix.
pub struct Conn {
    io: Pin<Box<dyn Io>>,
    /// What is known of the other side.
    pub info: ConnInfo,
}

impl AsyncRead for Conn {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        self.io.as_mut().poll_read(cx, buf)
    }
}

impl AsyncWrite for Conn {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        self.io.as_mut().poll_write(cx, buf)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        self.io.as_mut().poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.io.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        self.io.as_mut().poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        self.io.as_mut().poll_shutdown(cx)
    }
}

impl tonic::transport::server::Connected for Conn {
    type ConnectInfo = ConnInfo;

    fn connect_info(&self) -> ConnInfo {
        self.info.clone()
    }
}

enum Socket {
    Tcp(TcpListener),
    Unix(UnixListener, PathBuf),
}

/// A bound listener, not yet accepting.
pub struct Listener {
    socket: Socket,
    url: ListenUrl,
    check_san: bool,
}

impl Listener {
    /// Binds `url`'s address (a socket file left by an earlier run is
    /// replaced, as etcd does). Error: etcd's `listen tcp <addr>: bind:
    /// <reason>`.
    pub async fn bind(url: &ListenUrl) -> Result<Listener, String> {
        let socket = match &url.addr {
            ListenAddr::Tcp(a) => Socket::Tcp(
                TcpListener::bind(a)
                    .await
                    .map_err(|e| format!("listen tcp {a}: bind: {e}"))?,
            ),
            ListenAddr::Unix(p) => {
                let _ = std::fs::remove_file(p);
                let l = UnixListener::bind(p)
                    .map_err(|e| format!("listen unix {}: bind: {e}", p.display()))?;
                Socket::Unix(l, p.clone())
            }
        };
        Ok(Listener {
            socket,
            url: url.clone(),
            check_san: false,
        })
    }

    /// Whether it serves TLS (`https://`, `unixs://`).
    pub fn secure(&self) -> bool {
        self.url.secure
    }

    /// The address it listens on (`ip:port` or the socket path).
    pub fn local_addr(&self) -> String {
        match &self.socket {
            Socket::Tcp(l) => l
                .local_addr()
                .map_or_else(|_| self.url.url.clone(), |a| a.to_string()),
            Socket::Unix(_, p) => p.display().to_string(),
        }
    }

    /// Starts accepting: for a `https://` or `unixs://` URL, TLS
    /// connections with `tls`, else plain ones (`tls` is then not used).
    /// The loop ends when the [`Incoming`] is dropped. Error: a secure URL
    /// without `tls`, which must never serve plain text.
    pub fn incoming(self, tls: Option<Arc<rustls::ServerConfig>>) -> Result<Incoming, String> {
        let acceptor = match (self.url.secure, tls) {
            (true, Some(cfg)) => Some(TlsAcceptor::from(cfg)),
            (true, None) => {
                return Err(format!(
                    "{} needs TLS, but none is configured",
                    self.url.url
                ))
            }
            (false, _) => None,
        };
        let (tx, rx) = mpsc::channel(READY_QUEUE);
        tokio::spawn(accept_loop(self.socket, acceptor, self.check_san, tx));
        Ok(Incoming(rx))
    }

    /// Also checks, after each handshake, that the remote IP address is
    /// one the client certificate names (etcd's peer listeners, unless
    /// `--experimental-peer-skip-client-san-verification`): one of its IP
    /// subject alternative names, or one its DNS names resolve to. A
    /// certificate with neither passes, as in etcd.
    pub fn checking_client_san(mut self) -> Self {
        self.check_san = true;
        self
    }
}

/// etcd's `checkSAN`: the remote IP against the certificate's SANs.
async fn verify_san(conn: &rustls::ServerConnection, remote: SocketAddr) -> Result<(), String> {
    use x509_parser::extensions::GeneralName;
    let Some(cert) = conn.peer_certificates().and_then(|c| c.first()) else {
        return Ok(());
    };
    let (_, parsed) =
        x509_parser::parse_x509_certificate(cert.as_ref()).map_err(|e| e.to_string())?;
    let mut ips = Vec::new();
    let mut dns = Vec::new();
    if let Ok(Some(san)) = parsed.subject_alternative_name() {
        for name in &san.value.general_names {
            match name {
                GeneralName::IPAddress(b) => ips.push(b.to_vec()),
                GeneralName::DNSName(d) => dns.push(d.to_string()),
                _ => {}
            }
        }
    }
    if ips.is_empty() && dns.is_empty() {
        return Ok(());
    }
    let ip = remote.ip().to_canonical();
    let bytes = match ip {
        std::net::IpAddr::V4(v4) => v4.octets().to_vec(),
        std::net::IpAddr::V6(v6) => v6.octets().to_vec(),
    };
    if ips.contains(&bytes) {
        return Ok(());
    }
    for name in &dns {
        if let Ok(addrs) = tokio::net::lookup_host((name.as_str(), 0)).await {
            if addrs.into_iter().any(|a| a.ip().to_canonical() == ip) {
                return Ok(());
            }
        }
    }
    Err(format!(
        "tls: {:?} does not match any of DNSNames {dns:?}",
        ip.to_string()
    ))
}

/// The connections of one listener, handshakes done.
pub struct Incoming(mpsc::Receiver<Conn>);

impl Incoming {
    /// The next connection; `None` once the listener has stopped.
    pub async fn next(&mut self) -> Option<Conn> {
        self.0.recv().await
    }
}

impl futures::Stream for Incoming {
    type Item = io::Result<Conn>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        self.0.poll_recv(cx).map(|c| c.map(Ok))
    }
}

/// Accepts until the [`Incoming`] is dropped. Plain connections go out
/// at once; TLS ones after their handshake, run in a task of its own
/// with [`HANDSHAKE_TIMEOUT`], at most [`MAX_HANDSHAKES`] at a time.
async fn accept_loop(
    socket: Socket,
    tls: Option<TlsAcceptor>,
    check_san: bool,
    tx: mpsc::Sender<Conn>,
) {
    let handshakes = Arc::new(Semaphore::new(MAX_HANDSHAKES));
    loop {
        let accept = async {
            match &socket {
                Socket::Tcp(l) => l.accept().await.map(|(s, a)| {
                    // Small gRPC messages must not wait for Nagle's algorithm.
                    let _ = s.set_nodelay(true);
                    (Box::pin(s) as Pin<Box<dyn Io>>, a.to_string())
                }),
                Socket::Unix(l, p) => l
                    .accept()
                    .await
                    .map(|(s, _)| (Box::pin(s) as Pin<Box<dyn Io>>, p.display().to_string())),
            }
        };
        let accepted = tokio::select! {
            a = accept => a,
            _ = tx.closed() => return,
        };
        let (io, remote) = match accepted {
            Ok(a) => a,
            Err(e) => {
                // Out of file descriptors and the like: back off a little.
                tracing::warn!(error = %e, "failed to accept a connection");
                tokio::time::sleep(Duration::from_millis(100)).await;
                continue;
            }
        };
        let Some(acceptor) = tls.clone() else {
            let conn = Conn {
                io,
                info: ConnInfo {
                    remote,
                    common_name: None,
                },
            };
            if tx.send(conn).await.is_err() {
                return;
            }
            continue;
        };
        // Past the bound, accepting waits for a handshake to finish.
        let permit = tokio::select! {
            p = handshakes.clone().acquire_owned() => match p {
                Ok(p) => p,
                Err(_) => return,
            },
            _ = tx.closed() => return,
        };
        // The SAN check needs the IP; a unix socket has none to check.
        let remote_ip = remote.parse::<SocketAddr>().ok();
        let tx = tx.clone();
        tokio::spawn(async move {
            // The permit and the time bound cover the handshake and the SAN
            // check's DNS lookups alike.
            let accepted = tokio::time::timeout(HANDSHAKE_TIMEOUT, async {
                let stream = acceptor.accept(io).await.map_err(|e| e.to_string())?;
                if check_san {
                    if let Some(ip) = remote_ip {
                        verify_san(stream.get_ref().1, ip).await?;
                    }
                }
                Ok::<_, String>(stream)
            })
            .await;
            drop(permit);
            let stream = match accepted {
                Ok(Ok(s)) => s,
                Ok(Err(e)) => {
                    tracing::warn!(remote_addr = %remote, error = %e, "rejected connection");
                    return;
                }
                Err(_) => {
                    tracing::warn!(remote_addr = %remote, error = "TLS handshake timed out", "rejected connection");
                    return;
                }
            };
            let common_name = verified_common_name(stream.get_ref().1);
            let conn = Conn {
                io: Box::pin(stream),
                info: ConnInfo {
                    remote,
                    common_name,
                },
            };
            let _ = tx.send(conn).await;
        });
    }
}

/// The CN of the client certificate, when the server asked for one: a
/// server that asks always verifies the chain (auto TLS asks for none).
fn verified_common_name(conn: &rustls::ServerConnection) -> Option<String> {
    conn.peer_certificates()
        .and_then(|c| c.first())
        .and_then(crate::tls::common_name)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tls::{Settings, TlsInfo};

    #[tokio::test]
    async fn a_verified_client_certificate_gives_the_connection_its_common_name() {
        let dir = tempfile::tempdir().unwrap();
        let ca_key = rcgen::KeyPair::generate().unwrap();
        let mut ca = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
        ca.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
        let ca = rcgen::CertifiedIssuer::self_signed(ca, ca_key).unwrap();
        let issue = |name: &str, cn: &str| {
            let mut p = rcgen::CertificateParams::new(vec!["127.0.0.1".to_string()]).unwrap();
            p.distinguished_name.push(rcgen::DnType::CommonName, cn);
            let key = rcgen::KeyPair::generate().unwrap();
            let cert = p.signed_by(&key, &ca).unwrap();
            let (c, k) = (
                dir.path().join(format!("{name}.pem")),
                dir.path().join(format!("{name}.key")),
            );
            std::fs::write(&c, cert.pem()).unwrap();
            std::fs::write(&k, key.serialize_pem()).unwrap();
            (c, k)
        };
        let (server_cert, server_key) = issue("server", "server");
        let (client_cert, client_key) = issue("client", "alice");
        std::fs::write(dir.path().join("ca.pem"), ca.pem()).unwrap();
        let info = TlsInfo {
            cert_file: server_cert,
            key_file: server_key,
            trusted_ca_file: Some(dir.path().join("ca.pem")),
            client_cert_auth: true,
            ..Default::default()
        };
        let url = ListenUrl::parse("https://127.0.0.1:0").unwrap().remove(0);
        let listener = Listener::bind(&url).await.unwrap();
        let addr: SocketAddr = listener.local_addr().parse().unwrap();
        let mut incoming = listener
            .incoming(Some(info.server_config(&Settings::default()).unwrap()))
            .unwrap();

        let client = TlsInfo {
            cert_file: client_cert,
            key_file: client_key,
            trusted_ca_file: Some(dir.path().join("ca.pem")),
            ..Default::default()
        };
        let connector =
            tokio_rustls::TlsConnector::from(client.client_config(&Settings::default()).unwrap());
        let tcp = tokio::net::TcpStream::connect(addr).await.unwrap();
        let name = rustls::pki_types::ServerName::try_from("127.0.0.1").unwrap();
        let _tls = connector.connect(name, tcp).await.unwrap();
        let conn = incoming.next().await.unwrap();
        assert_eq!(conn.info.common_name.as_deref(), Some("alice"));
        assert!(conn.info.remote.starts_with("127.0.0.1:"));
    }
}

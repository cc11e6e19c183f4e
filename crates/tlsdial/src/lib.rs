//! Dialing gRPC over TLS with a rustls config of one's own, for what
//! tonic's built-in TLS cannot do: present a certificate that is reloaded
//! when it changes and check the other side's against allowed names (the
//! member's peer transport), or skip verification
//! (`--insecure-skip-tls-verify` in the tools, auto TLS between members).
//!
//! [`connector`] is a tonic connector: TCP to the URI's host and port,
//! then TLS naming that host; the endpoint it serves is given with an
//! `http://` URL, since the TLS is done here. [`KeyOnly`] accepts any
//! server certificate whose key signed the handshake.

use std::sync::Arc;

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::{verify_tls12_signature, verify_tls13_signature, CryptoProvider};
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{DigitallySignedStruct, Error, SignatureScheme};
use tokio::net::TcpStream;

/// What [`connector`] yields: a TLS stream over TCP, as hyper wants it.
pub type Stream = hyper_util::rt::TokioIo<tokio_rustls::client::TlsStream<TcpStream>>;

/// A tonic connector (`Endpoint::connect_with_connector`) that opens TCP
/// to the URI's host and port (443 without one), with TCP_NODELAY, then
/// TLS with `cfg`, naming the host (a DNS name or an IP address) as the
/// server. Errors: the host is not a valid server name, the connection
/// or the handshake fails.
pub fn connector(
    cfg: Arc<rustls::ClientConfig>,
) -> impl tower::Service<http::Uri, Response = Stream, Error = std::io::Error, Future = impl Send>
       + Send
       + Clone
       + 'static {
    tower::service_fn(move |uri: http::Uri| {
        let tls = tokio_rustls::TlsConnector::from(cfg.clone());
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
            Ok(hyper_util::rt::TokioIo::new(tls.connect(name, tcp).await?))
        }
    })
}

/// Accepts whatever certificate the server shows, as long as the server
/// proves it holds its key (the handshake signature is still checked
/// with the provider's algorithms). The connection is encrypted, the
/// server not authenticated.
#[derive(Debug)]
pub struct KeyOnly(pub Arc<CryptoProvider>);

impl ServerCertVerifier for KeyOnly {
    fn verify_server_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, Error> {
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, Error> {
        verify_tls12_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, Error> {
        verify_tls13_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}

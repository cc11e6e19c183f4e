//! Verifying the other side's certificate: clients (and peers dialing in)
//! against the trusted CA, the CRL (read again when it changes) and the
//! allowed CN or hostname; servers a peer dials against the same. A
//! member dialing with auto TLS verifies nothing but the possession of
//! the key, as etcd skips chain verification for self-signed peers.

use std::path::PathBuf;
use std::sync::Arc;

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::client::WebPkiServerVerifier;
use rustls::crypto::CryptoProvider;
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::server::danger::{ClientCertVerified, ClientCertVerifier};
use rustls::server::WebPkiClientVerifier;
use rustls::{CertificateError, DigitallySignedStruct, DistinguishedName, RootCertStore};
use rustls::{Error, SignatureScheme};

use super::reload::Reloading;
use super::{common_name, read_crls, read_roots, TlsError, TlsInfo};

/// The verifier a listener checks clients with, as `info` asks.
pub(super) fn client_verifier(
    info: &TlsInfo,
    provider: Arc<CryptoProvider>,
) -> Result<Arc<dyn ClientCertVerifier>, TlsError> {
    if !info.requires_client_cert() {
        return Ok(WebPkiClientVerifier::no_client_auth());
    }
    let roots = Arc::new(roots(info)?);
    let crl = info.crl_file.clone();
    let verifier = Reloading::new(
        "certificate revocation list",
        crl.iter().cloned().collect(),
        move || build_client_verifier(&roots, &provider, crl.as_ref()),
    )?;
    let first = verifier.current();
    Ok(Arc::new(ClientVerifier {
        first,
        verifier,
        allowed: Allowed::of(info),
    }))
}

/// The verifier the peer transport checks the members it dials with.
pub(super) fn server_verifier(
    info: &TlsInfo,
    provider: Arc<CryptoProvider>,
) -> Result<Arc<dyn ServerCertVerifier>, TlsError> {
    if info.self_signed {
        return Ok(Arc::new(tlsdial::KeyOnly(provider)));
    }
    let inner = WebPkiServerVerifier::builder_with_provider(Arc::new(roots(info)?), provider)
        .build()
        .map_err(|e| TlsError(e.to_string()))?;
    Ok(Arc::new(ServerVerifier {
        inner,
        allowed: Allowed::of(info),
    }))
}

/// The trusted CA bundle, or the system's roots without one.
fn roots(info: &TlsInfo) -> Result<RootCertStore, TlsError> {
    if let Some(ca) = &info.trusted_ca_file {
        return read_roots(ca);
    }
    let mut roots = RootCertStore::empty();
    roots.add_parsable_certificates(rustls_native_certs::load_native_certs().certs);
    Ok(roots)
}

fn build_client_verifier(
    roots: &Arc<RootCertStore>,
    provider: &Arc<CryptoProvider>,
    crl: Option<&PathBuf>,
) -> Result<Arc<dyn ClientCertVerifier>, TlsError> {
    let mut b = WebPkiClientVerifier::builder_with_provider(roots.clone(), provider.clone());
    if let Some(path) = crl {
        b = b
            .with_crls(read_crls(path)?)
            .allow_unknown_revocation_status();
    }
    b.build().map_err(|e| TlsError(e.to_string()))
}

/// `--*-allowed-cn` and `--*-allowed-hostname`: a verified certificate is
/// accepted if it matches one of those given (etcd's
/// `VerifyPeerCertificate`), or always when none is.
#[derive(Debug, Clone)]
struct Allowed {
    cn: Vec<String>,
    hostname: Vec<String>,
}

impl Allowed {
    fn of(info: &TlsInfo) -> Allowed {
        Allowed {
            cn: info.allowed_cn.clone(),
            hostname: info.allowed_hostname.clone(),
        }
    }

    fn check(&self, cert: &CertificateDer<'_>) -> Result<(), Error> {
        if self.cn.is_empty() && self.hostname.is_empty() {
            return Ok(());
        }
        if common_name(cert).is_some_and(|cn| self.cn.contains(&cn)) {
            return Ok(());
        }
        let ee = webpki::EndEntityCert::try_from(cert).ok();
        let valid_for = |host: &String| {
            ServerName::try_from(host.as_str()).is_ok_and(|name| {
                ee.as_ref()
                    .is_some_and(|ee| ee.verify_is_valid_for_subject_name(&name).is_ok())
            })
        };
        if self.hostname.iter().any(valid_for) {
            return Ok(());
        }
        Err(Error::InvalidCertificate(
            CertificateError::ApplicationVerificationFailure,
        ))
    }
}

/// Clients verified against the CA and the CRL, then the allowed CN or
/// hostname. The verifier is built again when the CRL file changes.
#[derive(Debug)]
struct ClientVerifier {
    /// The first verifier built, for what does not depend on the CRL.
    first: Arc<dyn ClientCertVerifier>,
    verifier: Reloading<Arc<dyn ClientCertVerifier>>,
    allowed: Allowed,
}

impl ClientCertVerifier for ClientVerifier {
    fn root_hint_subjects(&self) -> &[DistinguishedName] {
        self.first.root_hint_subjects()
    }

    fn verify_client_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        now: UnixTime,
    ) -> Result<ClientCertVerified, Error> {
        let verified =
            self.verifier
                .current()
                .verify_client_cert(end_entity, intermediates, now)?;
        self.allowed.check(end_entity)?;
        Ok(verified)
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, Error> {
        self.first.verify_tls12_signature(message, cert, dss)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, Error> {
        self.first.verify_tls13_signature(message, cert, dss)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.first.supported_verify_schemes()
    }
}

/// A dialed member's certificate verified by webpki, then the allowed CN
/// or hostname.
#[derive(Debug)]
struct ServerVerifier {
    inner: Arc<WebPkiServerVerifier>,
    allowed: Allowed,
}

impl ServerCertVerifier for ServerVerifier {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        ocsp_response: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, Error> {
        let verified = self.inner.verify_server_cert(
            end_entity,
            intermediates,
            server_name,
            ocsp_response,
            now,
        )?;
        self.allowed.check(end_entity)?;
        Ok(verified)
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, Error> {
        self.inner.verify_tls12_signature(message, cert, dss)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, Error> {
        self.inner.verify_tls13_signature(message, cert, dss)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.inner.supported_verify_schemes()
    }
}

//! `--insecure-skip-tls-verify`: TLS that accepts any server certificate
//! (only the handshake signature is checked, so the server must hold the
//! key of the certificate it shows), with the client certificate if one
//! is given. tonic's own TLS cannot skip verification, so these
//! connections are dialed by `tlsdial`'s connector.

use std::sync::Arc;

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};

use crate::TlsOptions;

/// The rustls config for `tls` without server verification. Errors: a
/// client certificate or key that does not parse.
pub(crate) fn config(tls: &TlsOptions) -> Result<Arc<rustls::ClientConfig>, String> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let builder = rustls::ClientConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()
        .map_err(|e| e.to_string())?
        .dangerous()
        .with_custom_certificate_verifier(Arc::new(tlsdial::KeyOnly(provider)));
    let mut cfg = match &tls.identity {
        Some((cert, key)) => {
            let chain = CertificateDer::pem_slice_iter(cert)
                .collect::<Result<Vec<_>, _>>()
                .map_err(|e| format!("tls: failed to parse certificate: {e}"))?;
            let key = PrivateKeyDer::from_pem_slice(key)
                .map_err(|e| format!("tls: failed to parse private key: {e}"))?;
            builder
                .with_client_auth_cert(chain, key)
                .map_err(|e| e.to_string())?
        }
        None => builder.with_no_client_auth(),
    };
    cfg.alpn_protocols = vec![b"h2".to_vec()];
    Ok(Arc::new(cfg))
}

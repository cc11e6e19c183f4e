//! Certificate and key files read again when they change: each handshake
//! looks at the files' modification time, length and inode (two `stat`
//! calls) and loads the pair again if either differs from what was last
//! loaded. A pair that fails to load (half written, mismatched, expired)
//! is logged and the previous one stays in service.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::SystemTime;

use rustls::crypto::CryptoProvider;
use rustls::sign::CertifiedKey;
use rustls::SignatureScheme;

use super::{read_certs, read_key, TlsError, TlsInfo};

/// What identifies one version of a file: modification time, length,
/// inode. `None` when it cannot be read.
pub(super) type FileStamp = Option<(SystemTime, u64, u64)>;

/// The stamp of `path` now.
pub(super) fn stamp(path: &Path) -> FileStamp {
    use std::os::unix::fs::MetadataExt;
    let m = std::fs::metadata(path).ok()?;
    Some((m.modified().ok()?, m.len(), m.ino()))
}

/// A certificate chain and its key, served by listeners and presented
/// by the peer transport, reloaded when the files change.
#[derive(Debug)]
pub struct CertFiles {
    cert: PathBuf,
    key: PathBuf,
    provider: Arc<CryptoProvider>,
    loaded: Mutex<([FileStamp; 2], Arc<CertifiedKey>)>,
}

impl CertFiles {
    /// Loads `info`'s certificate and key. Errors: either file unreadable
    /// or without PEM data, a key that is not the certificate's, an
    /// expired certificate.
    pub fn open(info: &TlsInfo, provider: Arc<CryptoProvider>) -> Result<CertFiles, TlsError> {
        let stamps = [stamp(&info.cert_file), stamp(&info.key_file)];
        let pair = load(&info.cert_file, &info.key_file, &provider)?;
        Ok(CertFiles {
            cert: info.cert_file.clone(),
            key: info.key_file.clone(),
            provider,
            loaded: Mutex::new((stamps, pair)),
        })
    }

    /// The pair to use for a new connection: the files' current content
    /// if it changed and loads, else what was loaded before.
    pub fn current(&self) -> Arc<CertifiedKey> {
        let now = [stamp(&self.cert), stamp(&self.key)];
        {
            let loaded = self.loaded.lock().expect("certificate lock");
            if loaded.0 == now {
                return loaded.1.clone();
            }
        }
        let fresh = load(&self.cert, &self.key, &self.provider);
        let mut loaded = self.loaded.lock().expect("certificate lock");
        loaded.0 = now;
        match fresh {
            Ok(pair) => {
                tracing::info!(cert_file = %self.cert.display(), key_file = %self.key.display(), "reloaded TLS certificate");
                loaded.1 = pair;
            }
            Err(e) => {
                tracing::warn!(cert_file = %self.cert.display(), error = %e, "failed to reload TLS certificate; serving the previous one");
            }
        }
        loaded.1.clone()
    }
}

/// Reads and checks one certificate/key pair.
fn load(cert: &Path, key: &Path, provider: &CryptoProvider) -> Result<Arc<CertifiedKey>, TlsError> {
    let chain = read_certs(cert)?;
    let leaf = chain[0].clone();
    let key = read_key(key)?;
    let pair = CertifiedKey::from_der(chain, key, provider).map_err(|e| match e {
        rustls::Error::InconsistentKeys(_) => {
            TlsError("tls: private key does not match public key".into())
        }
        other => TlsError(format!("tls: failed to parse private key: {other}")),
    })?;
    let (_, parsed) = x509_parser::parse_x509_certificate(leaf.as_ref()).map_err(|e| {
        TlsError(format!(
            "tls: failed to parse certificate {}: {e}",
            cert.display()
        ))
    })?;
    let validity = parsed.validity();
    let now = x509_parser::time::ASN1Time::now();
    if validity.not_after < now {
        return Err(TlsError(format!(
            "x509: certificate {} has expired: current time {} is after {}",
            cert.display(),
            now,
            validity.not_after
        )));
    }
    Ok(Arc::new(pair))
}

impl rustls::server::ResolvesServerCert for CertFiles {
    fn resolve(&self, _hello: rustls::server::ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        Some(self.current())
    }
}

impl rustls::client::ResolvesClientCert for CertFiles {
    fn resolve(
        &self,
        _root_hint_subjects: &[&[u8]],
        _sigschemes: &[SignatureScheme],
    ) -> Option<Arc<CertifiedKey>> {
        Some(self.current())
    }

    fn has_certs(&self) -> bool {
        true
    }
}

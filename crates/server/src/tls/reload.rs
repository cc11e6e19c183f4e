//! Files read again when they change ([`Reloading`]): each handshake
//! looks at the files' modification time, length and inode (a `stat`
//! each) and loads again if any differs from what was last loaded.
//! What fails to load (a half-written, mismatched or expired pair, a bad
//! CRL) is logged and the previous version stays in service. Used for
//! certificate pairs ([`CertFiles`]) and for the CRL's verifier.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::SystemTime;

use rustls::crypto::CryptoProvider;
use rustls::sign::CertifiedKey;
use rustls::SignatureScheme;

use super::{read_certs, read_key, TlsError, TlsInfo};

/// What identifies one version of a file: modification time, length,
/// inode. `None` when it cannot be read.
type FileStamp = Option<(SystemTime, u64, u64)>;

/// The stamp of `path` now.
fn stamp(path: &Path) -> FileStamp {
    use std::os::unix::fs::MetadataExt;
    let m = std::fs::metadata(path).ok()?;
    Some((m.modified().ok()?, m.len(), m.ino()))
}

/// Something loaded from files and loaded again when they change: a
/// certificate pair, or a verifier built from a CRL.
pub(super) struct Reloading<T> {
    /// What it is, for the logs (`TLS certificate`).
    what: &'static str,
    paths: Vec<PathBuf>,
    load: Box<dyn Fn() -> Result<T, TlsError> + Send + Sync>,
    loaded: Mutex<(Vec<FileStamp>, T)>,
}

impl<T: Clone> Reloading<T> {
    /// Loads it once. Error: what `load` returns.
    pub(super) fn new(
        what: &'static str,
        paths: Vec<PathBuf>,
        load: impl Fn() -> Result<T, TlsError> + Send + Sync + 'static,
    ) -> Result<Reloading<T>, TlsError> {
        let stamps = paths.iter().map(|p| stamp(p)).collect();
        let value = load()?;
        Ok(Reloading {
            what,
            paths,
            load: Box::new(load),
            loaded: Mutex::new((stamps, value)),
        })
    }

    /// The value for a new connection: loaded again if a file changed and
    /// it loads, else the one loaded before.
    pub(super) fn current(&self) -> T {
        let now: Vec<FileStamp> = self.paths.iter().map(|p| stamp(p)).collect();
        {
            let loaded = self.loaded.lock().expect("reload lock");
            if loaded.0 == now {
                return loaded.1.clone();
            }
        }
        let fresh = (self.load)();
        let mut loaded = self.loaded.lock().expect("reload lock");
        loaded.0 = now;
        let files = self
            .paths
            .iter()
            .map(|p| p.display().to_string())
            .collect::<Vec<_>>()
            .join(",");
        match fresh {
            Ok(v) => {
                tracing::info!(files = %files, "reloaded {}", self.what);
                loaded.1 = v;
            }
            Err(e) => {
                tracing::warn!(files = %files, error = %e, "failed to reload {}; using the previous one", self.what);
            }
        }
        loaded.1.clone()
    }
}

impl<T> std::fmt::Debug for Reloading<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Reloading")
            .field("what", &self.what)
            .field("paths", &self.paths)
            .finish()
    }
}

/// A certificate chain and its key, served by listeners and presented
/// by the peer transport, reloaded when the files change.
#[derive(Debug)]
pub struct CertFiles(Reloading<Arc<CertifiedKey>>);

impl CertFiles {
    /// Loads `info`'s certificate and key. Errors: either file unreadable
    /// or without PEM data, a key that is not the certificate's, an
    /// expired certificate.
    pub fn open(info: &TlsInfo, provider: Arc<CryptoProvider>) -> Result<CertFiles, TlsError> {
        let (cert, key) = (info.cert_file.clone(), info.key_file.clone());
        let paths = vec![cert.clone(), key.clone()];
        let pair = Reloading::new("TLS certificate", paths, move || {
            load(&cert, &key, &provider)
        })?;
        Ok(CertFiles(pair))
    }

    /// The pair to use for a new connection.
    pub fn current(&self) -> Arc<CertifiedKey> {
        self.0.current()
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

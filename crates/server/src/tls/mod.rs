//! Transport security for the member (etcd's `client/pkg/transport`
//! `TLSInfo`): certificates, auto TLS, reloading, and the rustls configs
//! that the client and peer listeners serve and the peer transport dials
//! with.
//!
//! A [`TlsInfo`] is one side's settings (client or peer): certificate and
//! key files, the CA that clients must chain to, the CRL, the allowed
//! CN or hostname. [`TlsInfo::server_config`] and
//! [`TlsInfo::client_config`] turn it into rustls configs. The
//! certificate, key and CRL files are read again when they change on disk
//! (checked at each handshake, as etcd reads them per handshake), so a
//! rotated certificate is served to the next connection without a
//! restart. [`auto::self_cert`] makes the self-signed certificates of
//! `--auto-tls` and `--peer-auto-tls`.
//!
//! Cryptography is rustls with the ring provider: AEAD cipher suites with
//! forward secrecy only, TLS 1.2 and 1.3 (docs/security.md).

pub mod auto;
mod reload;
mod verify;

use std::path::{Path, PathBuf};
use std::sync::Arc;

use rustls::crypto::CryptoProvider;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, CertificateRevocationListDer, PrivateKeyDer};
use rustls::{RootCertStore, SupportedCipherSuite, SupportedProtocolVersion};

pub use reload::CertFiles;

/// Why a TLS configuration could not be made, in etcd's words where etcd
/// has them.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct TlsError(pub String);

/// One side's TLS settings (etcd's `transport.TLSInfo`): the client side
/// from `--cert-file`, `--key-file`, `--trusted-ca-file`,
/// `--client-cert-auth`, `--client-crl-file`,
/// `--client-cert-allowed-hostname`; the peer side from the `--peer-*`
/// twins.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct TlsInfo {
    /// PEM certificate chain served (and, for peers, presented when
    /// dialing), leaf first.
    pub cert_file: PathBuf,
    /// PEM private key of `cert_file` (PKCS#8, PKCS#1 or SEC1).
    pub key_file: PathBuf,
    /// PEM CA bundle that the other side's certificate must chain to.
    /// Setting it also turns on client certificate authentication, as in
    /// etcd.
    pub trusted_ca_file: Option<PathBuf>,
    /// Require and verify a client certificate.
    pub client_cert_auth: bool,
    /// PEM certificate revocation list; revoked certificates are refused.
    pub crl_file: Option<PathBuf>,
    /// Only a certificate with one of these Common Names is accepted.
    pub allowed_cn: Vec<String>,
    /// Only a certificate valid for one of these hostnames (a DNS or IP
    /// subject alternative name) is accepted.
    pub allowed_hostname: Vec<String>,
    /// Made by auto TLS: when dialing, the other side's chain is not
    /// verified (etcd's `selfCert`), only that it holds the key of the
    /// certificate it shows; no client certificate is asked for.
    pub self_signed: bool,
}

/// Protocol settings shared by both sides: `--cipher-suites`,
/// `--tls-min-version`, `--tls-max-version`.
#[derive(Clone, Debug)]
pub struct Settings {
    /// The cipher suites offered (all of TLS 1.3's, and the TLS 1.2 ones
    /// named by `--cipher-suites`, or all of them).
    pub cipher_suites: Vec<SupportedCipherSuite>,
    /// The protocol versions allowed.
    pub versions: Vec<&'static SupportedProtocolVersion>,
}

impl Default for Settings {
    fn default() -> Self {
        Settings {
            cipher_suites: rustls::crypto::ring::ALL_CIPHER_SUITES.to_vec(),
            versions: rustls::ALL_VERSIONS.to_vec(),
        }
    }
}

/// Go's names of the TLS 1.2 suites rustls implements, as etcd's
/// `--cipher-suites` takes them (Go's `tls.CipherSuites`).
const GO_SUITES: &[(&str, rustls::CipherSuite)] = {
    use rustls::CipherSuite::*;
    &[
        (
            "TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256",
            TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256,
        ),
        (
            "TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256",
            TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256,
        ),
        (
            "TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384",
            TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384,
        ),
        (
            "TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384",
            TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384,
        ),
        (
            "TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256",
            TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256,
        ),
        (
            "TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305",
            TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256,
        ),
        (
            "TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305_SHA256",
            TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305_SHA256,
        ),
        (
            "TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305",
            TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305_SHA256,
        ),
    ]
};

/// Suites Go knows and etcd accepts but rustls does not implement (CBC
/// modes, RSA key exchange, RC4, 3DES): refused with a clear error rather
/// than silently dropped.
const GO_SUITES_NOT_IN_RUSTLS: &[&str] = &[
    "TLS_RSA_WITH_RC4_128_SHA",
    "TLS_RSA_WITH_3DES_EDE_CBC_SHA",
    "TLS_RSA_WITH_AES_128_CBC_SHA",
    "TLS_RSA_WITH_AES_256_CBC_SHA",
    "TLS_RSA_WITH_AES_128_CBC_SHA256",
    "TLS_RSA_WITH_AES_128_GCM_SHA256",
    "TLS_RSA_WITH_AES_256_GCM_SHA384",
    "TLS_ECDHE_ECDSA_WITH_RC4_128_SHA",
    "TLS_ECDHE_ECDSA_WITH_AES_128_CBC_SHA",
    "TLS_ECDHE_ECDSA_WITH_AES_256_CBC_SHA",
    "TLS_ECDHE_RSA_WITH_RC4_128_SHA",
    "TLS_ECDHE_RSA_WITH_3DES_EDE_CBC_SHA",
    "TLS_ECDHE_RSA_WITH_AES_128_CBC_SHA",
    "TLS_ECDHE_RSA_WITH_AES_256_CBC_SHA",
    "TLS_ECDHE_ECDSA_WITH_AES_128_CBC_SHA256",
    "TLS_ECDHE_RSA_WITH_AES_128_CBC_SHA256",
];

impl Settings {
    /// Parses `--cipher-suites` (comma-separated Go names, empty for the
    /// defaults), `--tls-min-version` and `--tls-max-version` (`TLS1.2`,
    /// `TLS1.3`, empty for no bound). Errors: an unknown suite or
    /// version, a suite rustls lacks, min above max, suites with only
    /// TLS 1.3 allowed (TLS 1.3 suites are not configurable, as in Go).
    pub fn parse(cipher_suites: &str, min: &str, max: &str) -> Result<Settings, TlsError> {
        let version = |v: &str| -> Result<Option<u8>, TlsError> {
            match v {
                "" => Ok(None),
                "TLS1.2" => Ok(Some(2)),
                "TLS1.3" => Ok(Some(3)),
                _ => Err(TlsError(format!(
                    "unexpected TLS version {v:?} (must be one of: TLS1.2, TLS1.3)"
                ))),
            }
        };
        let lo = version(min)?.unwrap_or(2);
        let hi = version(max)?.unwrap_or(3);
        if lo > hi {
            return Err(TlsError(format!(
                "min version ({min}) is greater than max version ({max})"
            )));
        }
        let versions: Vec<_> = [(2, &rustls::version::TLS12), (3, &rustls::version::TLS13)]
            .into_iter()
            .filter(|(v, _)| (lo..=hi).contains(v))
            .map(|(_, p)| p)
            .collect();
        let names: Vec<&str> = cipher_suites
            .split(',')
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .collect();
        let all = rustls::crypto::ring::ALL_CIPHER_SUITES;
        let tls13 = all.iter().filter(|s| s.tls13().is_some()).copied();
        let cipher_suites = if names.is_empty() {
            all.to_vec()
        } else {
            if lo == 3 {
                return Err(TlsError(
                    "cipher suites cannot be configured when only TLS1.3 is enabled".into(),
                ));
            }
            let mut chosen: Vec<SupportedCipherSuite> = tls13.collect();
            for name in names {
                let Some((_, id)) = GO_SUITES.iter().find(|(n, _)| *n == name) else {
                    return Err(TlsError(if GO_SUITES_NOT_IN_RUSTLS.contains(&name) {
                        format!("cipher suite {name} is not supported by etcd-rs (only AEAD suites with forward secrecy are)")
                    } else {
                        format!("unexpected TLS cipher suite {name:?}")
                    }));
                };
                let suite = all
                    .iter()
                    .find(|s| s.suite() == *id)
                    .expect("rustls has it");
                if !chosen.contains(suite) {
                    chosen.push(*suite);
                }
            }
            chosen
        };
        Ok(Settings {
            cipher_suites,
            versions,
        })
    }

    fn provider(&self) -> Arc<CryptoProvider> {
        let mut p = rustls::crypto::ring::default_provider();
        p.cipher_suites = self.cipher_suites.clone();
        Arc::new(p)
    }
}

impl TlsInfo {
    /// True when no certificate is configured (etcd's `TLSInfo.Empty`).
    pub fn is_empty(&self) -> bool {
        self.cert_file.as_os_str().is_empty() && self.key_file.as_os_str().is_empty()
    }

    /// Checks what needs no file: both of certificate and key or neither,
    /// allowed CNs and hostnames not both. Errors in etcd's words.
    pub fn check(&self) -> Result<(), TlsError> {
        if self.cert_file.as_os_str().is_empty() != self.key_file.as_os_str().is_empty() {
            return Err(TlsError(format!(
                "KeyFile and CertFile must both be present[key: {}, cert: {}]",
                self.key_file.display(),
                self.cert_file.display()
            )));
        }
        if !self.allowed_cn.is_empty() && !self.allowed_hostname.is_empty() {
            return Err(TlsError(format!(
                "AllowedCNs and AllowedHostnames are mutually exclusive (cns={}, hostnames={})",
                go_quoted(&self.allowed_cn),
                go_quoted(&self.allowed_hostname)
            )));
        }
        Ok(())
    }

    /// Whether the other side must present a certificate: `client_cert_auth`
    /// or a trusted CA file (etcd turns it on for either).
    pub fn requires_client_cert(&self) -> bool {
        self.client_cert_auth || self.trusted_ca_file.is_some()
    }

    /// The config a listener serves: the (reloading) certificate, the
    /// client verification these settings ask for, ALPN `h2` and
    /// `http/1.1`. Errors: unreadable or mismatched certificate and key,
    /// an expired certificate, a CA or CRL file that parses to nothing.
    pub fn server_config(
        &self,
        settings: &Settings,
    ) -> Result<Arc<rustls::ServerConfig>, TlsError> {
        let provider = settings.provider();
        let certs = Arc::new(CertFiles::open(self, provider.clone())?);
        let verifier = verify::client_verifier(self, provider.clone())?;
        let mut cfg = rustls::ServerConfig::builder_with_provider(provider)
            .with_protocol_versions(&settings.versions)
            .map_err(|e| TlsError(e.to_string()))?
            .with_client_cert_verifier(verifier)
            .with_cert_resolver(certs);
        cfg.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
        Ok(Arc::new(cfg))
    }

    /// The config the peer transport dials with: this side's certificate
    /// as client certificate, the other side's verified against the
    /// trusted CA (the system's roots without one; not at all when
    /// self-signed), ALPN `h2`.
    pub fn client_config(
        &self,
        settings: &Settings,
    ) -> Result<Arc<rustls::ClientConfig>, TlsError> {
        let provider = settings.provider();
        let certs = Arc::new(CertFiles::open(self, provider.clone())?);
        let verifier = verify::server_verifier(self, provider.clone())?;
        let mut cfg = rustls::ClientConfig::builder_with_provider(provider)
            .with_protocol_versions(&settings.versions)
            .map_err(|e| TlsError(e.to_string()))?
            .dangerous()
            .with_custom_certificate_verifier(verifier)
            .with_client_cert_resolver(certs);
        cfg.alpn_protocols = vec![b"h2".to_vec()];
        Ok(Arc::new(cfg))
    }
}

/// A string list as Go's `%q` prints it: `["a" "b"]`.
fn go_quoted(items: &[String]) -> String {
    let quoted: Vec<String> = items.iter().map(|i| format!("{i:?}")).collect();
    format!("[{}]", quoted.join(" "))
}

/// Reads every certificate of a PEM file. Errors name the file.
fn read_certs(path: &Path) -> Result<Vec<CertificateDer<'static>>, TlsError> {
    let bytes = read(path)?;
    let certs = CertificateDer::pem_slice_iter(&bytes)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| TlsError(format!("{}: {e}", path.display())))?;
    if certs.is_empty() {
        return Err(TlsError(format!(
            "tls: failed to find any PEM data in certificate input ({})",
            path.display()
        )));
    }
    Ok(certs)
}

/// Reads a PEM private key.
fn read_key(path: &Path) -> Result<PrivateKeyDer<'static>, TlsError> {
    let bytes = read(path)?;
    PrivateKeyDer::from_pem_slice(&bytes).map_err(|_| {
        TlsError(format!(
            "tls: failed to find any PEM data in key input ({})",
            path.display()
        ))
    })
}

/// Reads a CRL file: every PEM list in it, or the whole file as one DER
/// list (etcd takes both).
fn read_crls(path: &Path) -> Result<Vec<CertificateRevocationListDer<'static>>, TlsError> {
    let bytes = read(path)?;
    let crls = CertificateRevocationListDer::pem_slice_iter(&bytes)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| TlsError(format!("{}: {e}", path.display())))?;
    if !crls.is_empty() {
        return Ok(crls);
    }
    if bytes.first() == Some(&0x30) {
        return Ok(vec![CertificateRevocationListDer::from(bytes)]);
    }
    Err(TlsError(format!(
        "no certificate revocation list found in {}",
        path.display()
    )))
}

/// The trust anchors of a PEM CA bundle. Error: a file with no usable
/// certificate.
fn read_roots(path: &Path) -> Result<RootCertStore, TlsError> {
    let mut roots = RootCertStore::empty();
    let certs = read_certs(path).map_err(|_| {
        TlsError(format!(
            "failed to append certificates from {}: no valid PEM certificate",
            path.display()
        ))
    })?;
    let (added, _) = roots.add_parsable_certificates(certs);
    if added == 0 {
        return Err(TlsError(format!(
            "failed to append certificates from {}: no valid PEM certificate",
            path.display()
        )));
    }
    Ok(roots)
}

fn read(path: &Path) -> Result<Vec<u8>, TlsError> {
    std::fs::read(path).map_err(|e| TlsError(format!("open {}: {}", path.display(), io_text(&e))))
}

/// Go's wording for the common I/O errors (`no such file or directory`).
pub(crate) fn io_text(e: &std::io::Error) -> String {
    let text = e.to_string();
    match text.find(" (os error") {
        Some(i) => text[..i].to_lowercase(),
        None => text,
    }
}

/// The Common Name of a DER certificate's subject, if it has one.
pub fn common_name(cert: &CertificateDer<'_>) -> Option<String> {
    let (_, c) = x509_parser::parse_x509_certificate(cert.as_ref()).ok()?;
    let cn = c.subject().iter_common_name().next()?;
    cn.as_str().ok().map(String::from)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cipher_suites_take_gos_names() {
        let s = Settings::parse(
            "TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256,TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305",
            "",
            "",
        )
        .unwrap();
        let tls12: Vec<_> = s
            .cipher_suites
            .iter()
            .filter(|c| c.tls13().is_none())
            .map(|c| c.suite())
            .collect();
        assert_eq!(
            tls12,
            [
                rustls::CipherSuite::TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256,
                rustls::CipherSuite::TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256
            ]
        );
        assert_eq!(s.versions.len(), 2);
    }

    #[test]
    fn bad_protocol_settings_are_refused() {
        let e = Settings::parse("TLS_NOPE", "", "").unwrap_err();
        assert_eq!(e.0, "unexpected TLS cipher suite \"TLS_NOPE\"");
        let e = Settings::parse("TLS_RSA_WITH_AES_128_CBC_SHA", "", "").unwrap_err();
        assert!(e.0.contains("not supported by etcd-rs"), "{e}");
        let e = Settings::parse("", "TLS1.3", "TLS1.2").unwrap_err();
        assert!(e.0.contains("greater than max"), "{e}");
        let e = Settings::parse("TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256", "TLS1.3", "").unwrap_err();
        assert!(e.0.contains("only TLS1.3"), "{e}");
        let s = Settings::parse("", "TLS1.3", "").unwrap();
        assert_eq!(s.versions, [&rustls::version::TLS13]);
    }
}

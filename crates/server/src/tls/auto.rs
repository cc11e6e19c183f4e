//! Auto TLS (`--auto-tls`, `--peer-auto-tls`; etcd's `transport.SelfCert`):
//! a self-signed certificate for the hosts of the listen URLs, kept in
//! `<data-dir>/fixtures/client` or `<data-dir>/fixtures/peer` as
//! `cert.pem` and `key.pem`, and reused on restart while both files are
//! there and the certificate has not expired (then a new pair is made,
//! where etcd would fail to serve). The key is ECDSA P-256 (etcd uses P-521, which ring does not
//! implement); the certificate serves and authenticates as client alike.

use std::io::Write;
use std::path::Path;

use super::{TlsError, TlsInfo};

/// The auto-TLS settings for `dir`: the existing pair if both files are
/// there, else a new one for `hosts` (host names or IP addresses), valid
/// for `validity_years` years from now. Errors: the directory or files
/// cannot be written.
pub fn self_cert(dir: &Path, hosts: &[String], validity_years: u32) -> Result<TlsInfo, TlsError> {
    let cert_file = dir.join("cert.pem");
    let key_file = dir.join("key.pem");
    let info = TlsInfo {
        cert_file: cert_file.clone(),
        key_file: key_file.clone(),
        self_signed: true,
        ..Default::default()
    };
    if key_file.exists() {
        match still_valid(&cert_file) {
            Some(true) => return Ok(info),
            Some(false) => {
                tracing::warn!(path = %cert_file.display(), "auto TLS certificate expired; generating a new one")
            }
            None => {}
        }
    }
    let fail = |e: &dyn std::fmt::Display| TlsError(format!("cannot generate cert: {e}"));
    let mut sans: Vec<String> = Vec::new();
    for h in hosts {
        let h = h.trim_start_matches('[').trim_end_matches(']').to_string();
        if !sans.contains(&h) {
            sans.push(h);
        }
    }
    let mut params = rcgen::CertificateParams::new(sans).map_err(|e| fail(&e))?;
    let mut name = rcgen::DistinguishedName::new();
    name.push(rcgen::DnType::OrganizationName, "etcd");
    params.distinguished_name = name;
    let now = time::OffsetDateTime::now_utc();
    params.not_before = now;
    params.not_after = now + time::Duration::days(365 * i64::from(validity_years.max(1)));
    params.key_usages = vec![
        rcgen::KeyUsagePurpose::DigitalSignature,
        rcgen::KeyUsagePurpose::KeyEncipherment,
    ];
    params.extended_key_usages = vec![
        rcgen::ExtendedKeyUsagePurpose::ServerAuth,
        rcgen::ExtendedKeyUsagePurpose::ClientAuth,
    ];
    let key = rcgen::KeyPair::generate().map_err(|e| fail(&e))?;
    let cert = params.self_signed(&key).map_err(|e| fail(&e))?;
    create_private_dir(dir).map_err(|e| fail(&e))?;
    write_private(&key_file, key.serialize_pem().as_bytes()).map_err(|e| fail(&e))?;
    write_private(&cert_file, cert.pem().as_bytes()).map_err(|e| fail(&e))?;
    tracing::info!(path = %cert_file.display(), "created cert file");
    tracing::info!(path = %key_file.display(), "created key file");
    Ok(info)
}

/// Whether the certificate at `path` is within its validity; `None` if
/// there is none that parses.
fn still_valid(path: &Path) -> Option<bool> {
    use rustls::pki_types::pem::PemObject;
    let der = rustls::pki_types::CertificateDer::from_pem_file(path).ok()?;
    let (_, cert) = x509_parser::parse_x509_certificate(der.as_ref()).ok()?;
    Some(cert.validity().is_valid())
}

fn create_private_dir(dir: &Path) -> std::io::Result<()> {
    use std::os::unix::fs::DirBuilderExt;
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)
}

fn write_private(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    use std::os::unix::fs::OpenOptionsExt;
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(path)?;
    f.write_all(bytes)?;
    f.sync_all()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_self_signed_pair_is_made_once_and_reused() {
        let dir = tempfile::tempdir().unwrap();
        let fixtures = dir.path().join("fixtures").join("peer");
        let hosts = ["127.0.0.1".to_string(), "localhost".to_string()];
        let info = self_cert(&fixtures, &hosts, 1).unwrap();
        assert!(info.self_signed);
        let first = std::fs::read(&info.cert_file).unwrap();
        let again = self_cert(&fixtures, &hosts, 1).unwrap();
        assert_eq!(std::fs::read(&again.cert_file).unwrap(), first, "reused");
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&info.key_file)
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600);
        let settings = super::super::Settings::default();
        info.server_config(&settings).expect("the pair loads");
    }

    #[test]
    fn an_expired_pair_is_made_again() {
        let dir = tempfile::tempdir().unwrap();
        let mut params = rcgen::CertificateParams::new(vec!["127.0.0.1".to_string()]).unwrap();
        let now = time::OffsetDateTime::now_utc();
        params.not_before = now - time::Duration::days(10);
        params.not_after = now - time::Duration::days(1);
        let key = rcgen::KeyPair::generate().unwrap();
        let old = params.self_signed(&key).unwrap().pem();
        std::fs::write(dir.path().join("cert.pem"), &old).unwrap();
        std::fs::write(dir.path().join("key.pem"), key.serialize_pem()).unwrap();
        let info = self_cert(dir.path(), &["127.0.0.1".to_string()], 1).unwrap();
        let new = std::fs::read_to_string(&info.cert_file).unwrap();
        assert_ne!(new, old);
        assert_eq!(still_valid(&info.cert_file), Some(true));
    }
}

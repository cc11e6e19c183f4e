//! Certificates for TLS tests, made with rcgen in a temporary directory:
//! a CA, certificates it signs for 127.0.0.1 and localhost (with a chosen
//! Common Name, serial and validity), and certificate revocation lists.

use std::net::{IpAddr, Ipv4Addr};

use rcgen::{
    BasicConstraints, CertificateParams, CertificateRevocationListParams, CertifiedIssuer, DnType,
    ExtendedKeyUsagePurpose, IsCa, KeyIdMethod, KeyPair, KeyUsagePurpose, RevokedCertParams,
    SanType, SerialNumber,
};
use tempfile::TempDir;

/// A CA and the files of what it issued.
pub struct Pki {
    dir: TempDir,
    ca: CertifiedIssuer<'static, KeyPair>,
}

impl Pki {
    /// A new CA named `name`; its certificate is `ca.pem`.
    pub fn new(name: &str) -> Pki {
        let dir = tempfile::tempdir().expect("temporary directory");
        let mut p = CertificateParams::new(Vec::<String>::new()).unwrap();
        p.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        p.key_usages = vec![
            KeyUsagePurpose::KeyCertSign,
            KeyUsagePurpose::CrlSign,
            KeyUsagePurpose::DigitalSignature,
        ];
        p.distinguished_name.push(DnType::CommonName, name);
        let ca = CertifiedIssuer::self_signed(p, KeyPair::generate().unwrap()).unwrap();
        std::fs::write(dir.path().join("ca.pem"), ca.pem()).unwrap();
        Pki { dir, ca }
    }

    /// The path of a file of this PKI.
    pub fn file(&self, name: &str) -> String {
        self.dir.path().join(name).display().to_string()
    }

    /// Issues `<name>.pem` and `<name>-key.pem`: Common Name `cn`, serial
    /// `serial`, valid for 127.0.0.1 and localhost, as server and client.
    pub fn issue(&self, name: &str, cn: &str, serial: u64) -> (String, String) {
        self.issue_valid(name, cn, serial, true)
    }

    /// Like [`Pki::issue`], but expired a day ago when `valid` is false.
    pub fn issue_valid(&self, name: &str, cn: &str, serial: u64, valid: bool) -> (String, String) {
        let loopback = [SanType::IpAddress(IpAddr::V4(Ipv4Addr::LOCALHOST))];
        self.issue_full(name, cn, serial, valid, &["localhost"], &loopback)
    }

    /// Like [`Pki::issue`], valid only for the IP addresses `ips` (no
    /// DNS name).
    pub fn issue_for_ips(
        &self,
        name: &str,
        cn: &str,
        serial: u64,
        ips: &[IpAddr],
    ) -> (String, String) {
        let sans: Vec<SanType> = ips.iter().map(|ip| SanType::IpAddress(*ip)).collect();
        self.issue_full(name, cn, serial, true, &[], &sans)
    }

    fn issue_full(
        &self,
        name: &str,
        cn: &str,
        serial: u64,
        valid: bool,
        dns: &[&str],
        ips: &[SanType],
    ) -> (String, String) {
        let dns: Vec<String> = dns.iter().map(|d| d.to_string()).collect();
        let mut p = CertificateParams::new(dns).unwrap();
        p.subject_alt_names.extend(ips.iter().cloned());
        p.distinguished_name.push(DnType::CommonName, cn);
        p.serial_number = Some(SerialNumber::from(serial));
        p.extended_key_usages = vec![
            ExtendedKeyUsagePurpose::ServerAuth,
            ExtendedKeyUsagePurpose::ClientAuth,
        ];
        if !valid {
            let now = time::OffsetDateTime::now_utc();
            p.not_before = now - time::Duration::days(30);
            p.not_after = now - time::Duration::days(1);
        }
        let key = KeyPair::generate().unwrap();
        let cert = p.signed_by(&key, &self.ca).unwrap();
        let (cert_file, key_file) = (
            self.file(&format!("{name}.pem")),
            self.file(&format!("{name}-key.pem")),
        );
        std::fs::write(&cert_file, cert.pem()).unwrap();
        std::fs::write(&key_file, key.serialize_pem()).unwrap();
        (cert_file, key_file)
    }

    /// Writes `name`, a CRL of this CA revoking `serials`.
    pub fn revoke(&self, name: &str, serials: &[u64]) -> String {
        let now = time::OffsetDateTime::now_utc();
        let params = CertificateRevocationListParams {
            this_update: now - time::Duration::minutes(1),
            next_update: now + time::Duration::days(1),
            crl_number: SerialNumber::from(serials.len() as u64 + 1),
            issuing_distribution_point: None,
            revoked_certs: serials
                .iter()
                .map(|s| RevokedCertParams {
                    serial_number: SerialNumber::from(*s),
                    revocation_time: now - time::Duration::minutes(1),
                    reason_code: None,
                    invalidity_date: None,
                })
                .collect(),
            key_identifier_method: KeyIdMethod::Sha256,
        };
        let crl = params.signed_by(&self.ca).unwrap();
        let path = self.file(name);
        std::fs::write(&path, crl.pem().unwrap()).unwrap();
        path
    }
}

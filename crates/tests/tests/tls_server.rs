//! TLS in the server: client and peer TLS with client certificates, the
//! refusals (no certificate, another CA, revoked, disallowed CN), auto
//! TLS with the tutorial's workflow, certificate rotation without a
//! restart, unix sockets, and start-up errors that create nothing. The
//! Go etcdctl and curl are the clients.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::Path;
use std::process::Command;
use std::sync::Arc;
use std::time::{Duration, Instant};

use etcd_rs_tests::bins::etcd_bin;
use etcd_rs_tests::member::curl_get;
use etcd_rs_tests::pki::Pki;
use etcd_rs_tests::{etcdctl, within, Bootstrap, Output, TestCluster, TlsUrls};

const LIMIT: Duration = Duration::from_secs(120);

fn strings(args: &[&str]) -> Vec<String> {
    args.iter().map(|s| s.to_string()).collect()
}

/// Server flags for client and peer TLS with client certificates
/// required on both, peers limited to CN `peer`.
fn mutual_tls_flags(pki: &Pki) -> Vec<String> {
    let (server, server_key) = pki.issue("server", "etcd-server", 10);
    let (peer, peer_key) = pki.issue("peer", "peer", 11);
    let ca = pki.file("ca.pem");
    strings(&[
        "--cert-file",
        &server,
        "--key-file",
        &server_key,
        "--trusted-ca-file",
        &ca,
        "--client-cert-auth",
        "--peer-cert-file",
        &peer,
        "--peer-key-file",
        &peer_key,
        "--peer-trusted-ca-file",
        &ca,
        "--peer-client-cert-auth",
        "--peer-cert-allowed-cn",
        "peer",
    ])
}

fn client_flags(pki: &Pki, name: &str) -> Vec<String> {
    vec![
        format!("--cacert={}", pki.file("ca.pem")),
        format!("--cert={}", pki.file(&format!("{name}.pem"))),
        format!("--key={}", pki.file(&format!("{name}-key.pem"))),
    ]
}

fn curl_flags(pki: &Pki, name: &str) -> Vec<String> {
    strings(&[
        "--cacert",
        &pki.file("ca.pem"),
        "--cert",
        &pki.file(&format!("{name}.pem")),
        "--key",
        &pki.file(&format!("{name}-key.pem")),
    ])
}

/// The Go etcdctl against `endpoint` with `flags` before `args`.
fn ctl(endpoint: &str, flags: &[String], args: &[&str]) -> Output {
    let mut all: Vec<&str> = flags.iter().map(String::as_str).collect();
    all.extend(args);
    etcdctl(&[endpoint.to_string()], &all, None)
}

/// Asserts that the Go etcdctl with `flags` cannot run `args` against
/// `endpoint` (short timeouts: the refusal is the point).
fn refused(endpoint: &str, flags: &[String], args: &[&str], why: &str) {
    let mut all = vec!["--dial-timeout=1s", "--command-timeout=2s"];
    all.extend(args);
    let out = ctl(endpoint, flags, &all);
    assert_ne!(out.code, 0, "{why}: {out}");
}

/// How many keys member `i` has, read with a serializable count.
fn key_count(c: &TestCluster, i: usize) -> u64 {
    let out = c.etcdctl_on(
        i,
        &[
            "get",
            "0",
            "--from-key",
            "--keys-only",
            "-w",
            "json",
            "--consistency=s",
        ],
    );
    out.json()["count"].as_u64().unwrap_or(0)
}

/// One member serving clients over TLS with `flags`; the harness trusts
/// the PKI's CA and presents the certificate `client` when given.
async fn one_tls_member(pki: &Pki, flags: &[&str], client: Option<&str>) -> TestCluster {
    let ca = pki.file("ca.pem");
    let (etcdctl_flags, curl_flags) = match client {
        Some(name) => (client_flags(pki, name), curl_flags(pki, name)),
        None => (vec![format!("--cacert={ca}")], strings(&["--cacert", &ca])),
    };
    TestCluster::builder(1)
        .flags(flags)
        .tls(TlsUrls {
            client: true,
            peer: false,
            etcdctl_flags,
            curl_flags,
        })
        .start()
        .await
}

async fn mutual_tls_cluster(pki: &Pki, how: Bootstrap) -> TestCluster {
    let flags = mutual_tls_flags(pki);
    let flags: Vec<&str> = flags.iter().map(String::as_str).collect();
    pki.issue("client", "root", 12);
    TestCluster::builder(3)
        .bootstrap(how)
        .flags(&flags)
        .tls(TlsUrls {
            client: true,
            peer: true,
            etcdctl_flags: client_flags(pki, "client"),
            curl_flags: curl_flags(pki, "client"),
        })
        .start()
        .await
}

#[tokio::test]
async fn three_members_with_client_and_peer_tls_serve_go_etcdctl_and_curl() {
    within(LIMIT, async {
        let pki = Pki::new("etcd-rs test CA");
        let c = mutual_tls_cluster(&pki, Bootstrap::Flags).await;
        c.wait_for_leader(&[0, 1, 2]);
        c.etcdctl_on(0, &["put", "greeting", "hello over TLS"])
            .expect_stdout("OK\n");
        for i in 0..3 {
            c.etcdctl_on(i, &["get", "greeting"])
                .expect_stdout("greeting\nhello over TLS\n");
            c.etcdctl_on(i, &["put", &format!("k{i}"), "v"])
                .expect_stdout("OK\n");
        }
        let curl = curl_flags(&pki, "client");
        let health = curl_get(&format!("{}/health", c.endpoint()), &curl).unwrap();
        assert_eq!(
            (health.status, health.body.as_str()),
            (200, r#"{"health":"true","reason":""}"#)
        );
        let version = curl_get(&format!("{}/version", c.member(2).endpoint()), &curl).unwrap();
        assert!(
            version.body.contains(r#""etcdserver":"3.5.17""#),
            "{}",
            version.body
        );
        // A lease granted on a follower is kept alive through the leader's
        // peer URL, over peer TLS.
        let (leader, _) = c.wait_for_leader(&[0, 1, 2]);
        let follower = (leader + 1) % 3;
        let grant = c.etcdctl_on(follower, &["lease", "grant", "60"]);
        let id = grant
            .stdout
            .split_whitespace()
            .nth(1)
            .expect("lease id")
            .to_string();
        c.etcdctl_on(follower, &["lease", "keep-alive", "--once", &id])
            .expect_stdout(&format!("lease {id} keepalived with TTL(60)\n"));
        let before = key_count(&c, 1);
        assert_eq!(before, 4);

        // Refused at the handshake, before any handler: no certificate,
        // a certificate of another CA, plain text on the TLS port.
        let ep = c.member(1).endpoint();
        let ca_only = vec![format!("--cacert={}", pki.file("ca.pem"))];
        let other = Pki::new("another CA");
        other.issue("stranger", "root", 12);
        let stranger = vec![
            format!("--cacert={}", pki.file("ca.pem")),
            format!("--cert={}", other.file("stranger.pem")),
            format!("--key={}", other.file("stranger-key.pem")),
        ];
        for flags in [&ca_only, &stranger] {
            refused(
                &ep,
                flags,
                &["put", "intruder", "x"],
                "a client without a good certificate",
            );
        }
        let plain = ep.replace("https://", "http://");
        refused(
            &plain,
            &[],
            &["put", "intruder", "x"],
            "plain text on the TLS port",
        );
        let without = curl_get(
            &format!("{ep}/health"),
            &strings(&["--cacert", &pki.file("ca.pem")]),
        );
        assert!(
            without.is_err(),
            "curl without a client certificate got {without:?}"
        );
        // A peer certificate with a CN other than `peer` is refused on the
        // peer port; `peer` itself is taken.
        pki.issue("wrong-cn", "not-a-peer", 13);
        let peer_ep = c.member(0).peer_url();
        assert!(curl_get(&peer_ep, &curl_flags(&pki, "wrong-cn")).is_err());
        assert!(curl_get(&peer_ep, &curl_flags(&pki, "peer")).is_ok());
        // The right CN from an address its certificate does not name is
        // refused too (etcd's peer SAN check).
        let elsewhere = std::net::IpAddr::from([10, 9, 9, 9]);
        pki.issue_for_ips("far-peer", "peer", 14, &[elsewhere]);
        assert!(curl_get(&peer_ep, &curl_flags(&pki, "far-peer")).is_err());
        // The handshake runs off the accept loop, so its log line may come
        // a little after curl gave up; the whole log, as lines keep coming.
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let log = std::fs::read_to_string(c.member(0).log_path()).unwrap();
            if log.contains("does not match any of DNSNames") {
                break;
            }
            assert!(
                Instant::now() < deadline,
                "no SAN refusal logged:\n{}",
                c.member(0).log_tail()
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        // Nothing changed, and everyone else is still served.
        for i in 0..3 {
            assert_eq!(key_count(&c, i), before, "member {i}");
            c.etcdctl_on(i, &["get", "intruder"]).expect_stdout("");
        }
    })
    .await;
}

#[tokio::test]
async fn tls_settings_work_from_the_config_files_blocks_and_from_etcd_variables() {
    within(LIMIT, async {
        for how in [Bootstrap::ConfigFile, Bootstrap::Env] {
            let pki = Pki::new("etcd-rs test CA");
            let c = mutual_tls_cluster(&pki, how).await;
            c.etcdctl_on(2, &["put", "how", &format!("{how:?}")])
                .expect_stdout("OK\n");
            for i in 0..3 {
                c.etcdctl_on(i, &["get", "how", "--print-value-only"])
                    .expect_stdout(&format!("{how:?}\n"));
            }
            let ca_only = vec![format!("--cacert={}", pki.file("ca.pem"))];
            refused(
                &c.endpoint(),
                &ca_only,
                &["get", "how"],
                &format!("{how:?}: no client certificate was let in"),
            );
        }
    })
    .await;
}

#[tokio::test]
async fn a_revoked_client_certificate_is_refused_and_a_new_crl_is_read_without_restart() {
    within(LIMIT, async {
        let pki = Pki::new("etcd-rs test CA");
        let (server, server_key) = pki.issue("server", "etcd-server", 20);
        pki.issue("good", "good", 21);
        pki.issue("revoked", "revoked", 22);
        let crl = pki.revoke("crl.pem", &[22]);
        let ca = pki.file("ca.pem");
        let c = one_tls_member(
            &pki,
            &[
                "--cert-file",
                &server,
                "--key-file",
                &server_key,
                "--trusted-ca-file",
                &ca,
                "--client-cert-auth",
                "--client-crl-file",
                &crl,
            ],
            Some("good"),
        )
        .await;
        let ep = c.endpoint();
        let health = format!("{ep}/health");
        assert!(curl_get(&health, &curl_flags(&pki, "good")).is_ok());
        assert!(curl_get(&health, &curl_flags(&pki, "revoked")).is_err());
        refused(
            &ep,
            &client_flags(&pki, "revoked"),
            &["put", "k", "v"],
            "a revoked certificate",
        );
        c.etcdctl(&["get", "k"]).expect_stdout("");
        // The CRL now revokes `good` too: the next connection reads it.
        pki.revoke("crl.pem", &[21, 22]);
        let deadline = Instant::now() + Duration::from_secs(10);
        while curl_get(&health, &curl_flags(&pki, "good")).is_ok() {
            assert!(Instant::now() < deadline, "the new CRL was not applied");
            std::thread::sleep(Duration::from_millis(100));
        }
    })
    .await;
}

#[tokio::test]
async fn auto_tls_cluster_runs_the_tutorial_workflow() {
    within(LIMIT, async {
        let skip = strings(&["--insecure-transport=false", "--insecure-skip-tls-verify"]);
        let mut c = TestCluster::builder(3)
            .flags(&["--auto-tls", "--peer-auto-tls"])
            .tls(TlsUrls {
                client: true,
                peer: true,
                etcdctl_flags: skip.clone(),
                curl_flags: strings(&["-k"]),
            })
            .start()
            .await;
        for i in 0..3 {
            let fixtures = c.member(i).data_dir().join("fixtures");
            for side in ["client", "peer"] {
                assert!(
                    fixtures.join(side).join("cert.pem").exists(),
                    "{side} cert of m{i}"
                );
            }
            // The whole log: the warning comes at start, and a member
            // that waited for its peers has logged more than a tail since.
            let log = std::fs::read_to_string(c.member(i).log_path()).unwrap();
            assert!(log.contains("auto TLS is not for production"), "m{i}");
        }
        c.etcdctl_on(0, &["put", "foo", "bar"])
            .expect_stdout("OK\n");
        for i in 1..3 {
            c.etcdctl_on(i, &["get", "foo"]).expect_stdout("foo\nbar\n");
        }
        let eps = c.endpoints().join(",");
        let table = ctl(&eps, &skip, &["endpoint", "status", "-w", "table"]);
        table.expect_success();
        assert_eq!(
            table.stdout.matches("true |").count(),
            1,
            "one leader:\n{}",
            table.stdout
        );
        let (leader, term) = c.wait_for_leader(&[0, 1, 2]);
        let cert_before =
            std::fs::read(c.member(leader).data_dir().join("fixtures/client/cert.pem")).unwrap();
        c.member_mut(leader).kill9();
        let alive: Vec<usize> = (0..3).filter(|&i| i != leader).collect();
        let (_, new_term) = c.wait_for_leader(&alive);
        assert!(new_term > term);
        c.etcdctl_on(alive[0], &["put", "foo", "after"])
            .expect_stdout("OK\n");
        // The restarted member reuses its certificate and catches up.
        c.member_mut(leader).restart().await;
        let cert_after =
            std::fs::read(c.member(leader).data_dir().join("fixtures/client/cert.pem")).unwrap();
        assert_eq!(cert_before, cert_after);
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            let out = c.etcdctl_on(
                leader,
                &["get", "foo", "--consistency=s", "--print-value-only"],
            );
            if out.stdout == "after\n" {
                break;
            }
            assert!(
                Instant::now() < deadline,
                "the restarted member did not catch up: {out}"
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    })
    .await;
}

/// The Common Name of the certificate `addr` serves, verified with `ca`.
fn served_cn(port: u16, ca: &str) -> String {
    use rustls::pki_types::pem::PemObject;
    let mut roots = rustls::RootCertStore::empty();
    for c in rustls::pki_types::CertificateDer::pem_file_iter(ca).unwrap() {
        roots.add(c.unwrap()).unwrap();
    }
    let cfg = rustls::ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .unwrap()
    .with_root_certificates(roots)
    .with_no_client_auth();
    let name = rustls::pki_types::ServerName::try_from("127.0.0.1").unwrap();
    let mut conn = rustls::ClientConnection::new(Arc::new(cfg), name).unwrap();
    let mut tcp = TcpStream::connect(("127.0.0.1", port)).unwrap();
    tcp.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    while conn.is_handshaking() {
        conn.complete_io(&mut tcp).unwrap();
    }
    let cert = conn.peer_certificates().unwrap()[0].clone();
    let text = String::from_utf8_lossy(cert.as_ref()).to_string();
    for cn in ["server-a", "server-b"] {
        if text.contains(cn) {
            return cn.to_string();
        }
    }
    panic!("unexpected certificate served")
}

#[tokio::test]
async fn a_certificate_replaced_on_disk_is_served_to_the_next_connection() {
    within(LIMIT, async {
        let pki = Pki::new("etcd-rs test CA");
        let (cert, key) = pki.issue("server", "server-a", 30);
        let c = one_tls_member(&pki, &["--cert-file", &cert, "--key-file", &key], None).await;
        let port = c.member(0).client_port();
        let ca = pki.file("ca.pem");
        assert_eq!(served_cn(port, &ca), "server-a");
        // A connection made before the rotation keeps working after it.
        pki.issue("server", "server-b", 31);
        let deadline = Instant::now() + Duration::from_secs(10);
        while served_cn(port, &ca) != "server-b" {
            assert!(
                Instant::now() < deadline,
                "the new certificate was not served"
            );
            std::thread::sleep(Duration::from_millis(100));
        }
        c.etcdctl(&["put", "rotated", "yes"]).expect_stdout("OK\n");
    })
    .await;
}

#[tokio::test]
async fn a_silent_connection_does_not_stall_the_others_and_plain_and_unix_urls_serve_beside_tls() {
    within(LIMIT, async {
        let pki = Pki::new("etcd-rs test CA");
        let (cert, key) = pki.issue("server", "etcd-server", 40);
        let dir = tempfile::tempdir().unwrap();
        let sock = dir.path().join("etcd.sock");
        let https_port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let c = one_tls_member(&pki, &["--cert-file", &cert, "--key-file", &key], None).await;
        // Connections that never finish a handshake.
        let silent: Vec<TcpStream> = (0..20)
            .map(|_| TcpStream::connect(("127.0.0.1", c.member(0).client_port())).unwrap())
            .collect();
        let started = Instant::now();
        c.etcdctl(&["put", "served", "yes"]).expect_stdout("OK\n");
        assert!(started.elapsed() < Duration::from_secs(5));
        drop(silent);
        drop(c);

        // One member on https, http and unix at once.
        let data = dir.path().join("data");
        let https = format!("https://127.0.0.1:{https_port}");
        let http_port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let http = format!("http://127.0.0.1:{http_port}");
        let unix = format!("unix://{}", sock.display());
        let peer_port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let peer = format!("http://127.0.0.1:{peer_port}");
        let log = std::fs::File::create(dir.path().join("log")).unwrap();
        let mut child = Command::new(etcd_bin())
            .args(["--name", "u0", "--data-dir"])
            .arg(&data)
            .args(["--listen-client-urls", &format!("{https},{http},{unix}")])
            .args([
                "--advertise-client-urls",
                &https,
                "--listen-peer-urls",
                &peer,
            ])
            .args([
                "--initial-advertise-peer-urls",
                &peer,
                "--initial-cluster",
                &format!("u0={peer}"),
            ])
            .args(["--cert-file", &cert, "--key-file", &key])
            .stderr(log)
            .spawn()
            .unwrap();
        let deadline = Instant::now() + Duration::from_secs(20);
        let health = loop {
            let out = Command::new("curl")
                .args(["-s", "--max-time", "2", "--unix-socket"])
                .arg(&sock)
                .arg("http://localhost/health")
                .output()
                .unwrap();
            let body = String::from_utf8_lossy(&out.stdout).to_string();
            if body.contains("true") || Instant::now() > deadline {
                break body;
            }
            std::thread::sleep(Duration::from_millis(100));
        };
        assert_eq!(health, r#"{"health":"true","reason":""}"#);
        // A TLS client on the plain port fails; plain clients go on.
        let tls_on_plain = http.replace("http://", "https://");
        let ca = vec![format!("--cacert={}", pki.file("ca.pem"))];
        refused(
            &tls_on_plain,
            &ca,
            &["put", "via", "tls"],
            "TLS on the plain port",
        );
        etcdctl(&[http], &["put", "via", "http"], None).expect_stdout("OK\n");
        etcdctl(
            &[https],
            &[
                &format!("--cacert={}", pki.file("ca.pem")),
                "get",
                "via",
                "--print-value-only",
            ],
            None,
        )
        .expect_stdout("http\n");
        let _ = child.kill();
        let _ = child.wait();
    })
    .await;
}

/// Runs the server with `args` (and a data dir under `dir`) and expects
/// it to refuse to start: exit status, the error, and no data dir.
fn refuses(dir: &Path, args: &[&str], error: &str) {
    let data = dir.join("data");
    let mut cmd = Command::new(etcd_bin());
    cmd.args(["--data-dir"]).arg(&data).args(args).env_clear();
    let mut child = cmd
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(10);
    while child.try_wait().unwrap().is_none() {
        if Instant::now() > deadline {
            let _ = child.kill();
            panic!("etcd {args:?} did not stop");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let mut stderr = String::new();
    child
        .stderr
        .take()
        .unwrap()
        .read_to_string(&mut stderr)
        .unwrap();
    assert!(!child.wait().unwrap().success(), "{args:?} started");
    assert!(
        stderr.contains(error),
        "{args:?}: expected {error:?} in\n{stderr}"
    );
    assert!(!data.exists(), "{args:?} created {}", data.display());
}

#[test]
fn bad_tls_settings_fail_start_up_in_etcds_words_and_create_nothing() {
    let pki = Pki::new("etcd-rs test CA");
    let (cert, key) = pki.issue("server", "etcd-server", 50);
    let (other_cert, _) = pki.issue("other", "other", 51);
    let (expired, expired_key) = pki.issue_valid("expired", "expired", 52, false);
    let dir = tempfile::tempdir().unwrap();
    let empty_ca = dir.path().join("empty-ca.pem");
    std::fs::File::create(&empty_ca)
        .unwrap()
        .write_all(b"no PEM here\n")
        .unwrap();
    let empty_ca = empty_ca.display().to_string();
    let https = [
        "--listen-client-urls",
        "https://127.0.0.1:0",
        "--advertise-client-urls",
        "https://127.0.0.1:0",
    ];
    let with = |extra: &[&str]| -> Vec<String> {
        https.iter().chain(extra).map(|s| s.to_string()).collect()
    };
    let cases: Vec<(Vec<String>, String)> = vec![
        (with(&[]), "TLS key/cert (--cert-file, --key-file) must be provided for client url https://127.0.0.1:0 with HTTPS scheme".into()),
        (with(&["--cert-file", &cert, "--key-file", "/nonexistent/key.pem"]), "open /nonexistent/key.pem: no such file or directory".into()),
        (with(&["--cert-file", &other_cert, "--key-file", &key]), "tls: private key does not match public key".into()),
        (with(&["--cert-file", &expired, "--key-file", &expired_key]), "has expired".into()),
        (with(&["--cert-file", &cert, "--key-file", &key, "--trusted-ca-file", &empty_ca]), "failed to append certificates".into()),
        (with(&["--cert-file", &cert]), "KeyFile and CertFile must both be present".into()),
        (with(&["--auto-tls", "--cipher-suites", "TLS_NOT_A_SUITE"]), "unexpected TLS cipher suite".into()),
        (with(&["--auto-tls", "--tls-min-version", "TLS1.1"]), "unexpected TLS version".into()),
        (strings(&["--listen-peer-urls", "https://127.0.0.1:0"]), "cannot listen on TLS for 127.0.0.1:0: KeyFile and CertFile are not presented".into()),
        (strings(&["--enable-v2"]), "--enable-v2=true is not supported yet".into()),
        (
            strings(&["--auto-compaction-retention", "abc"]),
            "error parsing CompactionRetention: time: invalid duration \\\"abc\\\"".into(),
        ),
        (
            strings(&["--auto-compaction-mode", "bogus", "--auto-compaction-retention", "1"]),
            "unknown auto-compaction-mode \\\"bogus\\\"".into(),
        ),
        (strings(&["--logger", "capnslog"]), "--logger=capnslog is removed in v3.5".into()),
        (
            strings(&["--listen-client-urls", "http://example.com:2379"]),
            "expected IP in URL for binding (http://example.com:2379)".into(),
        ),
        (
            strings(&["--log-outputs", "/nonexistent/etcd.log"]),
            "open /nonexistent/etcd.log: no such file or directory".into(),
        ),
    ];
    for (args, error) in &cases {
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        refuses(dir.path(), &args, error);
    }
}

#[tokio::test]
async fn go_style_single_dash_flags_start_a_member() {
    within(LIMIT, async {
        let c = TestCluster::builder(1)
            .flags(&["-max-txn-ops", "3", "-experimental-enable-lease-checkpoint"])
            .start()
            .await;
        let out = c.etcdctl_stdin(&["txn"], "\nput a 1\nput b 2\nput c 3\nput d 4\n\n\n");
        out.expect_err_contains("too many operations in txn request");
    })
    .await;
}

/// Whether a Range on the same connection as an open Watch stream is
/// answered within 2 s.
async fn range_beside_a_watch(endpoint: String) -> bool {
    use api::etcdserverpb::kv_client::KvClient;
    use api::etcdserverpb::watch_client::WatchClient;
    use api::etcdserverpb::{watch_request, RangeRequest, WatchCreateRequest, WatchRequest};
    let channel = tonic::transport::Endpoint::from_shared(endpoint)
        .unwrap()
        .connect()
        .await
        .unwrap();
    let create = WatchRequest {
        request_union: Some(watch_request::RequestUnion::CreateRequest(
            WatchCreateRequest {
                key: b"w".to_vec(),
                ..Default::default()
            },
        )),
    };
    let (tx, rx) = tokio::sync::mpsc::channel(1);
    tx.send(create).await.unwrap();
    let mut watch = WatchClient::new(channel.clone())
        .watch(tokio_stream::wrappers::ReceiverStream::new(rx))
        .await
        .unwrap()
        .into_inner();
    assert!(watch.message().await.unwrap().unwrap().created);
    let mut kv = KvClient::new(channel);
    let range = kv.range(RangeRequest {
        key: b"w".to_vec(),
        ..Default::default()
    });
    let answered = tokio::time::timeout(Duration::from_secs(2), range)
        .await
        .is_ok();
    drop(tx);
    answered
}

#[tokio::test]
async fn max_concurrent_streams_bounds_the_streams_of_one_connection() {
    within(LIMIT, async {
        let one = TestCluster::builder(1)
            .flags(&["--max-concurrent-streams", "1"])
            .start()
            .await;
        assert!(
            !range_beside_a_watch(one.endpoint()).await,
            "a second stream was served"
        );
        drop(one);
        let default = TestCluster::start(1).await;
        assert!(range_beside_a_watch(default.endpoint()).await);
    })
    .await;
}

#[tokio::test]
async fn tls_versions_and_cipher_suites_are_enforced() {
    within(LIMIT, async {
        let pki = Pki::new("etcd-rs test CA");
        let (cert, key) = pki.issue("server", "etcd-server", 60);
        let ca = pki.file("ca.pem");
        let curl_ok = |c: &TestCluster, extra: &[&str]| {
            let mut flags = strings(&["--cacert", &ca]);
            flags.extend(strings(extra));
            curl_get(&format!("{}/health", c.endpoint()), &flags).is_ok()
        };
        let tls13 = one_tls_member(
            &pki,
            &[
                "--cert-file",
                &cert,
                "--key-file",
                &key,
                "--tls-min-version",
                "TLS1.3",
            ],
            None,
        )
        .await;
        assert!(curl_ok(&tls13, &[]));
        assert!(!curl_ok(&tls13, &["--tlsv1.2", "--tls-max", "1.2"]));
        drop(tls13);
        let one_suite = one_tls_member(
            &pki,
            &[
                "--cert-file",
                &cert,
                "--key-file",
                &key,
                "--tls-max-version",
                "TLS1.2",
                "--cipher-suites",
                "TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256",
            ],
            None,
        )
        .await;
        assert!(curl_ok(
            &one_suite,
            &["--ciphers", "ECDHE-ECDSA-AES128-GCM-SHA256"]
        ));
        assert!(!curl_ok(
            &one_suite,
            &["--ciphers", "ECDHE-ECDSA-AES256-GCM-SHA384"]
        ));
        assert!(
            !curl_ok(&one_suite, &["--tlsv1.3"]),
            "TLS 1.3 is above the maximum"
        );
    })
    .await;
}

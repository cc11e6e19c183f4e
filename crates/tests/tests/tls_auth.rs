//! The client side of TLS and authentication: our etcdctl must print what
//! the Go etcdctl prints, with the same exit code, for connections over
//! TLS with a client certificate and for a cluster with auth enabled
//! (the reference etcd and etcd-rs), including the errors; our benchmark
//! must run over both. With `--client-cert-auth`, a client certificate's
//! CN is the user, on etcd-rs as on etcd.

use std::net::TcpListener;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use etcd_rs_tests::benchmark::{benchmark, histogram_total};
use etcd_rs_tests::bins::{etcd_bin, etcdctl_bin, our_etcdctl_bin, reference_etcd_bin};
use etcd_rs_tests::etcdctl::etcdctl_with;
use etcd_rs_tests::pki::Pki;
use etcd_rs_tests::{within, Output, TestCluster, TlsUrls};
use tempfile::TempDir;

const LIMIT: Duration = Duration::from_secs(120);

/// What a command printed, with the Go client's JSON log lines dropped.
fn shown(out: &Output) -> (String, String, i32) {
    let stderr = out.stderr_without_logs();
    (out.stdout.clone(), stderr, out.code)
}

/// Runs each command with the Go etcdctl, then with ours, and asserts that
/// both print the same and exit alike.
fn same_as_go(endpoint: &str, commands: &[Vec<String>]) {
    let eps = [endpoint.to_string()];
    for args in commands {
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        let go = etcdctl_with(&etcdctl_bin(), &eps, &args, None);
        let ours = etcdctl_with(&our_etcdctl_bin(), &eps, &args, None);
        assert_eq!(shown(&ours), shown(&go), "\nGo: {go}\nours: {ours}");
    }
}

fn cmd(args: &[&str]) -> Vec<String> {
    args.iter().map(|s| s.to_string()).collect()
}

/// A CA, a server certificate for 127.0.0.1 and a client certificate
/// (CN root), as PEM files in a temporary directory.
fn pki() -> Pki {
    let pki = Pki::new("etcd-rs test CA");
    pki.issue("server", "etcd", 1);
    pki.issue("client", "root", 2);
    pki
}

/// etcdctl's and benchmark's flags for the client certificate.
fn client_flags(pki: &Pki) -> Vec<String> {
    vec![
        format!("--cacert={}", pki.file("ca.pem")),
        format!("--cert={}", pki.file("client.pem")),
        format!("--key={}", pki.file("client-key.pem")),
    ]
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// The reference etcd serving clients over TLS only, with client
/// certificates required; killed and reaped on drop.
struct TlsEtcd {
    child: Child,
    port: u16,
    _data: TempDir,
}

impl TlsEtcd {
    /// Starts it on free ports, again on others if a port was taken
    /// between picking and binding (etcd then exits).
    fn start(pki: &Pki) -> TlsEtcd {
        for _ in 0..3 {
            if let Some(etcd) = Self::start_once(pki) {
                return etcd;
            }
        }
        panic!("the TLS etcd exited at start three times");
    }

    fn start_once(pki: &Pki) -> Option<TlsEtcd> {
        let data = tempfile::tempdir().unwrap();
        let (port, peer) = (free_port(), free_port());
        let peer_url = format!("http://127.0.0.1:{peer}");
        let client_url = format!("https://127.0.0.1:{port}");
        let log = std::fs::File::create(data.path().join("log")).unwrap();
        let child = Command::new(reference_etcd_bin())
            .args(["--name", "tls0", "--data-dir"])
            .arg(data.path().join("data"))
            .args(["--listen-client-urls", &client_url])
            .args(["--advertise-client-urls", &client_url])
            .args(["--listen-peer-urls", &peer_url])
            .args(["--initial-advertise-peer-urls", &peer_url])
            .args(["--initial-cluster", &format!("tls0={peer_url}")])
            .args(["--cert-file", &pki.file("server.pem")])
            .args(["--key-file", &pki.file("server-key.pem")])
            .args(["--trusted-ca-file", &pki.file("ca.pem")])
            .arg("--client-cert-auth")
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .unwrap();
        let mut etcd = TlsEtcd {
            child,
            port,
            _data: data,
        };
        // Ready when the Go etcdctl, over TLS, finds it healthy.
        let deadline = Instant::now() + Duration::from_secs(20);
        let mut args = client_flags(pki);
        args.extend(cmd(&["--dial-timeout=1s", "endpoint", "health"]));
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        loop {
            let out = etcdctl_with(&etcdctl_bin(), &[etcd.endpoint()], &args, None);
            if out.code == 0 {
                return Some(etcd);
            }
            if etcd.child.try_wait().unwrap().is_some() {
                return None;
            }
            assert!(Instant::now() < deadline, "TLS etcd not healthy: {out}");
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    fn endpoint(&self) -> String {
        format!("https://127.0.0.1:{}", self.port)
    }
}

impl Drop for TlsEtcd {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn with_flags(flags: &[String], args: &[&str]) -> Vec<String> {
    flags.iter().cloned().chain(cmd(args)).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tls_with_client_certificates_as_the_go_etcdctl() {
    within(LIMIT, async {
        let pki = pki();
        let etcd = TlsEtcd::start(&pki);
        let tls = client_flags(&pki);
        let host_port = format!("127.0.0.1:{}", etcd.port);
        same_as_go(
            &etcd.endpoint(),
            &[
                with_flags(&tls, &["put", "k1", "v1"]),
                with_flags(&tls, &["get", "k1"]),
                with_flags(&tls, &["get", "k1", "--print-value-only"]),
                // A certificate without its key; a missing CA file.
                cmd(&["--cert", &pki.file("client.pem"), "get", "k1"]),
                cmd(&["--cacert=/nonexistent/ca.pem", "get", "k1"]),
                cmd(&["--key=", "get", "k1"]),
                // The server wants a client certificate.
                cmd(&[
                    "--cacert",
                    &pki.file("ca.pem"),
                    "--command-timeout=2s",
                    "get",
                    "k1",
                ]),
            ],
        );
        // An endpoint without a scheme is dialled over TLS when a TLS flag
        // is given.
        same_as_go(&host_port, &[with_flags(&tls, &["get", "k1"])]);

        let mut args = tls.clone();
        args.extend(cmd(&["put", "--total=20", "--key-space-size=5"]));
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        let out = benchmark(&host_port, &args);
        assert_eq!((out.code, histogram_total(&out.stdout)), (0, 20), "{out}");
        assert!(!out.stdout.contains("Error distribution"), "{out}");
    })
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn authentication_as_the_go_etcdctl() {
    within(LIMIT, async {
        let reference = TestCluster::builder(1)
            .bin(reference_etcd_bin())
            .start()
            .await;
        authentication_on(&reference);
        drop(reference);
        authentication_on(&TestCluster::start(1).await);
    })
    .await
}

/// Our etcdctl and benchmark authenticate as the Go etcdctl on `c`.
fn authentication_on(c: &TestCluster) {
    {
        let ep = c.endpoint();
        let eps = [ep.clone()];
        let go = |args: &[&str]| etcdctl_with(&etcdctl_bin(), &eps, args, None);
        go(&["user", "add", "root:pw"]).expect_success();
        go(&["auth", "enable"]).expect_success();
        same_as_go(
            &ep,
            &[
                cmd(&["--user=root:pw", "put", "a", "1"]),
                cmd(&["--user=root:pw", "get", "a"]),
                cmd(&["--user=root", "--password=pw", "get", "a"]),
                cmd(&["get", "a"]),
                cmd(&["--user=root:wrong", "get", "a"]),
                cmd(&["--user=nobody:x", "get", "a"]),
                cmd(&["--user=root:pw", "--password=pw", "get", "a"]),
            ],
        );

        let out = benchmark(&ep, &["--user=root:pw", "put", "--total=20"]);
        assert_eq!((out.code, histogram_total(&out.stdout)), (0, 20), "{out}");
        assert!(!out.stdout.contains("Error distribution"), "{out}");
        let out = benchmark(&ep, &["put", "--total=5"]);
        assert!(
            out.stdout
                .contains("Error distribution:\n  [5]\tetcdserver: user name is empty\n"),
            "{out}"
        );
        let out = benchmark(&ep, &["--user=root:wrong", "put", "--total=5"]);
        assert_ne!(out.code, 0, "{out}");
        assert!(
            out.stderr
                .contains("etcdserver: authentication failed, invalid user ID or password"),
            "{out}"
        );
    }
}

/// What the Go etcdctl prints for requests made with the certificates of
/// CN root, alice (who may use `/p/`) and mallory (no such user), on a
/// member of `bin` serving TLS with `--client-cert-auth`.
async fn as_certificate_users(pki: &Pki, bin: std::path::PathBuf) -> Vec<(String, String, i32)> {
    let cert = |name: &str| {
        vec![
            format!("--cacert={}", pki.file("ca.pem")),
            format!("--cert={}", pki.file(&format!("{name}.pem"))),
            format!("--key={}", pki.file(&format!("{name}-key.pem"))),
        ]
    };
    let flags = [
        "--cert-file".to_string(),
        pki.file("server.pem"),
        "--key-file".into(),
        pki.file("server-key.pem"),
        "--trusted-ca-file".into(),
        pki.file("ca.pem"),
        "--client-cert-auth".into(),
        "--bcrypt-cost=4".into(),
    ];
    let flags: Vec<&str> = flags.iter().map(String::as_str).collect();
    let c = TestCluster::builder(1)
        .bin(bin)
        .flags(&flags)
        .tls(TlsUrls {
            client: true,
            peer: false,
            etcdctl_flags: cert("client"),
            curl_flags: vec![
                "--cacert".into(),
                pki.file("ca.pem"),
                "--cert".into(),
                pki.file("client.pem"),
                "--key".into(),
                pki.file("client-key.pem"),
            ],
        })
        .start()
        .await;
    for args in [
        &["user", "add", "root:pw"][..],
        &["user", "grant-role", "root", "root"],
        &["role", "add", "p"],
        &[
            "role",
            "grant-permission",
            "p",
            "--prefix=true",
            "readwrite",
            "/p/",
        ],
        &["user", "add", "alice:pw"],
        &["user", "grant-role", "alice", "p"],
        &["auth", "enable"],
    ] {
        c.etcdctl(args).expect_success();
    }
    let mut out = Vec::new();
    for (who, args) in [
        ("alice", &["put", "/p/a", "1"][..]),
        ("alice", &["get", "/p/a"]),
        ("alice", &["put", "/x", "1"]),
        ("alice", &["user", "list"]),
        ("mallory", &["get", "/p/a"]),
        ("client", &["put", "/x", "2"]),
        ("client", &["get", "/x"]),
        // A token wins over the certificate.
        ("mallory", &["--user=alice:pw", "get", "/p/a"]),
        ("alice", &["--user=root:pw", "get", "/x"]),
    ] {
        let full = with_flags(&cert(who), args);
        let full: Vec<&str> = full.iter().map(String::as_str).collect();
        out.push(shown(&etcdctl_with(
            &etcdctl_bin(),
            &[c.endpoint()],
            &full,
            None,
        )));
    }
    // The gateway refuses a certificate with a CN while auth is on: the CN
    // would not be the user, as it is over gRPC. Other paths serve it.
    for path in ["/v3/kv/range", "/health"] {
        let curl = std::process::Command::new("curl")
            .args(["-s", "--max-time", "10", "-w", "\n%{http_code}"])
            .args(["--cacert", &pki.file("ca.pem")])
            .args(["--cert", &pki.file("alice.pem")])
            .args(["--key", &pki.file("alice-key.pem")])
            // /health is a GET; the gateway call a POST.
            .args(if path == "/health" {
                &[][..]
            } else {
                &["-d", r#"{"key":"L3AvYQ=="}"#][..]
            })
            .arg(format!("{}{path}", c.endpoint()))
            .output()
            .expect("curl runs");
        let text = String::from_utf8_lossy(&curl.stdout).to_string();
        let status = text.rsplit('\n').next().unwrap_or("").to_string();
        let body = if path == "/health" {
            String::new()
        } else {
            text
        };
        out.push((path.to_string(), body, status.parse().unwrap_or(0)));
    }
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_certificate_cn_is_the_user_as_in_etcd() {
    within(LIMIT, async {
        let pki = pki();
        pki.issue("alice", "alice", 3);
        pki.issue("mallory", "mallory", 4);
        let theirs = as_certificate_users(&pki, reference_etcd_bin()).await;
        let ours = as_certificate_users(&pki, etcd_bin()).await;
        assert_eq!(ours, theirs);
        assert!(theirs[2].1.contains("permission denied"), "{theirs:?}");
        assert_eq!(theirs[theirs.len() - 2].2, 400, "{theirs:?}");
    })
    .await
}

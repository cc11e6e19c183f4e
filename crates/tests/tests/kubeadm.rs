//! A member started with kubeadm's command line for its static etcd pod
//! (client and peer TLS with certificate auth, `--snapshot-count=10000`,
//! metrics and probes on `http://127.0.0.1:<port>`): the form of kubeadm
//! 1.34+ for etcd 3.6 (`--feature-gates=InitialCorruptCheck=true`,
//! `--watch-progress-notify-interval=5s`) and the form of kubeadm 1.33 and
//! older (the `--experimental-*` spellings, logged as deprecated as etcd
//! 3.6 does). kubeadm's probes (`/livez` for liveness, `/readyz` for
//! readiness and start-up, on the metrics URL) answer as etcd's do, and
//! the gate takes effect: a restarted member runs the initial corruption
//! check.

use std::time::Duration;

use etcd_rs_tests::cluster::free_ports;
use etcd_rs_tests::health::http_get;
use etcd_rs_tests::pki::Pki;
use etcd_rs_tests::{within, TestCluster, TlsUrls};

const LIMIT: Duration = Duration::from_secs(120);

/// kubeadm's flags beside the ones the harness sets (name, data dir, URLs,
/// initial cluster), with `gated` choosing the 3.6 form.
fn kubeadm_flags(pki: &Pki, metrics_port: u16, gated: bool) -> Vec<String> {
    let mut flags = vec![
        format!("--cert-file={}", pki.file("server.pem")),
        "--client-cert-auth=true".to_string(),
        format!("--key-file={}", pki.file("server-key.pem")),
        format!("--listen-metrics-urls=http://127.0.0.1:{metrics_port}"),
        "--peer-client-cert-auth=true".to_string(),
        format!("--peer-cert-file={}", pki.file("server.pem")),
        format!("--peer-key-file={}", pki.file("server-key.pem")),
        format!("--peer-trusted-ca-file={}", pki.file("ca.pem")),
        "--snapshot-count=10000".to_string(),
        format!("--trusted-ca-file={}", pki.file("ca.pem")),
    ];
    if gated {
        flags.push("--feature-gates=InitialCorruptCheck=true".into());
        flags.push("--watch-progress-notify-interval=5s".into());
    } else {
        flags.push("--experimental-initial-corrupt-check=true".into());
        flags.push("--experimental-watch-progress-notify-interval=5s".into());
    }
    flags
}

/// Starts a member as kubeadm would and checks its probes, its client
/// TLS, the deprecation warnings of its log and the corruption check on
/// restart.
async fn kubeadm_member(gated: bool) {
    let pki = Pki::new("etcd-rs kubeadm CA");
    pki.issue("server", "etcd", 1);
    pki.issue("client", "kube-apiserver-etcd-client", 2);
    let port = free_ports(1)[0];
    let flags = kubeadm_flags(&pki, port, gated);
    let flags: Vec<&str> = flags.iter().map(String::as_str).collect();
    let cert = vec![
        format!("--cacert={}", pki.file("ca.pem")),
        format!("--cert={}", pki.file("client.pem")),
        format!("--key={}", pki.file("client-key.pem")),
    ];
    let mut c = TestCluster::builder(1)
        .flags(&flags)
        .tls(TlsUrls {
            client: true,
            peer: true,
            etcdctl_flags: cert,
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
    let addr = format!("127.0.0.1:{port}").parse().unwrap();
    for path in ["/livez", "/readyz"] {
        let r = http_get(addr, path, Duration::from_secs(10)).expect("the metrics URL answers");
        assert_eq!((r.status, r.body.as_str()), (200, "ok\n"), "{path}");
    }
    c.etcdctl(&["put", "k", "v"]).expect_success();

    let log = std::fs::read_to_string(c.member(0).log_path()).unwrap();
    let warned = log.contains(
        "--experimental-watch-progress-notify-interval is deprecated in v3.6 and will be decommissioned in v3.7. Use '--watch-progress-notify-interval' instead.",
    );
    assert_eq!(warned, !gated, "the deprecation warning: {log}");

    c.member_mut(0).terminate();
    c.member_mut(0).restart().await;
    let log = std::fs::read_to_string(c.member(0).log_path()).unwrap();
    assert!(
        log.contains("starting initial corruption check"),
        "the gate enables the initial corruption check: {log}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kubeadm_1_34_command_line_for_etcd_3_6() {
    within(LIMIT, kubeadm_member(true)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kubeadm_1_33_command_line_with_experimental_flags() {
    within(LIMIT, kubeadm_member(false)).await;
}

//! `/metrics` as Prometheus and etcd's dashboards read it: a scrape of a
//! member of a 3-member cluster parses as Prometheus text; etcd's metric
//! names are there with etcd's types (and the same types as the reference
//! etcd's own scrape); counters move under load; the gRPC series carry
//! go-grpc-prometheus's labels, and count the gateway's calls as the
//! reference etcd's do.

use std::collections::HashMap;
use std::time::Duration;

use etcd_rs_tests::bins::reference_etcd_bin;
use etcd_rs_tests::{within, TestCluster};
use prometheus_parse::{Sample, Scrape, Value};

const LIMIT: Duration = Duration::from_secs(120);

/// etcd's metrics the issue names, with etcd's types.
const EXPECTED: &[(&str, &str)] = &[
    ("etcd_server_has_leader", "gauge"),
    ("etcd_server_is_leader", "gauge"),
    ("etcd_server_leader_changes_seen_total", "counter"),
    ("etcd_server_proposals_committed_total", "gauge"),
    ("etcd_server_proposals_applied_total", "gauge"),
    ("etcd_server_proposals_pending", "gauge"),
    ("etcd_server_proposals_failed_total", "counter"),
    ("etcd_server_heartbeat_send_failures_total", "counter"),
    ("etcd_server_slow_apply_total", "counter"),
    ("etcd_server_id", "gauge"),
    ("etcd_server_version", "gauge"),
    ("etcd_cluster_version", "gauge"),
    ("etcd_server_quota_backend_bytes", "gauge"),
    ("etcd_mvcc_db_total_size_in_bytes", "gauge"),
    ("etcd_mvcc_db_total_size_in_use_in_bytes", "gauge"),
    ("etcd_debugging_mvcc_keys_total", "gauge"),
    ("etcd_debugging_mvcc_watcher_total", "gauge"),
    ("etcd_mvcc_put_total", "counter"),
    ("etcd_mvcc_delete_total", "counter"),
    ("etcd_mvcc_range_total", "counter"),
    ("etcd_mvcc_txn_total", "counter"),
    ("etcd_disk_wal_fsync_duration_seconds", "histogram"),
    ("etcd_disk_backend_commit_duration_seconds", "histogram"),
    ("etcd_network_peer_sent_bytes_total", "counter"),
    ("etcd_network_peer_received_bytes_total", "counter"),
    ("etcd_network_peer_round_trip_time_seconds", "histogram"),
    ("etcd_network_client_grpc_sent_bytes_total", "counter"),
    ("etcd_network_client_grpc_received_bytes_total", "counter"),
    ("etcd_debugging_lease_granted_total", "counter"),
    ("grpc_server_started_total", "counter"),
    ("grpc_server_handled_total", "counter"),
    ("grpc_server_msg_received_total", "counter"),
    ("grpc_server_msg_sent_total", "counter"),
    ("process_resident_memory_bytes", "gauge"),
    ("process_cpu_seconds_total", "counter"),
    ("process_open_fds", "gauge"),
];

/// The series etcd's Grafana dashboard and alerts (contrib/mixin in
/// etcd's repository: dashboards/targets.libsonnet, alerts) select, with
/// the label values their selectors fix.
const DASHBOARD: &[(&str, &[(&str, &str)])] = &[
    ("etcd_server_has_leader", &[]),
    ("grpc_server_started_total", &[("grpc_type", "unary")]),
    (
        "grpc_server_handled_total",
        &[("grpc_type", "unary"), ("grpc_code", "Unavailable")],
    ),
    (
        "grpc_server_handled_total",
        &[("grpc_type", "unary"), ("grpc_code", "DeadlineExceeded")],
    ),
    (
        "grpc_server_started_total",
        &[
            ("grpc_service", "etcdserverpb.Watch"),
            ("grpc_type", "bidi_stream"),
        ],
    ),
    (
        "grpc_server_handled_total",
        &[
            ("grpc_service", "etcdserverpb.Watch"),
            ("grpc_type", "bidi_stream"),
        ],
    ),
    (
        "grpc_server_started_total",
        &[
            ("grpc_service", "etcdserverpb.Lease"),
            ("grpc_type", "bidi_stream"),
        ],
    ),
    (
        "grpc_server_handled_total",
        &[
            ("grpc_service", "etcdserverpb.Lease"),
            ("grpc_type", "bidi_stream"),
        ],
    ),
    ("etcd_mvcc_db_total_size_in_bytes", &[]),
    ("etcd_mvcc_db_total_size_in_use_in_bytes", &[]),
    ("etcd_server_quota_backend_bytes", &[]),
    (
        "etcd_disk_wal_fsync_duration_seconds_bucket",
        &[("le", "+Inf")],
    ),
    (
        "etcd_disk_backend_commit_duration_seconds_bucket",
        &[("le", "+Inf")],
    ),
    ("process_resident_memory_bytes", &[]),
    ("etcd_network_client_grpc_received_bytes_total", &[]),
    ("etcd_network_client_grpc_sent_bytes_total", &[]),
    ("etcd_network_peer_received_bytes_total", &[]),
    ("etcd_network_peer_sent_bytes_total", &[]),
    ("etcd_server_leader_changes_seen_total", &[]),
    (
        "etcd_network_peer_round_trip_time_seconds_bucket",
        &[("le", "+Inf")],
    ),
    ("etcd_server_proposals_failed_total", &[]),
    ("etcd_server_proposals_pending", &[]),
    ("etcd_server_proposals_committed_total", &[]),
    ("etcd_server_proposals_applied_total", &[]),
];

fn scrape(endpoint: &str) -> (String, Scrape) {
    let out = std::process::Command::new("curl")
        .args(["-s", "--max-time", "10"])
        .arg(format!("{endpoint}/metrics"))
        .output()
        .expect("curl runs");
    let text = String::from_utf8(out.stdout).expect("UTF-8 text");
    let lines = text.lines().map(|l| Ok(l.to_string()));
    let parsed = Scrape::parse(lines).expect("the scrape parses as Prometheus text");
    (text, parsed)
}

/// The `# TYPE` of each metric family in `text`.
fn types(text: &str) -> HashMap<String, String> {
    text.lines()
        .filter_map(|l| l.strip_prefix("# TYPE "))
        .filter_map(|l| l.split_once(' '))
        .map(|(n, t)| (n.to_string(), t.to_string()))
        .collect()
}

fn value(samples: &[Sample], name: &str, labels: &[(&str, &str)]) -> Option<f64> {
    samples
        .iter()
        .find(|s| s.metric == name && labels.iter().all(|(k, v)| s.labels.get(k) == Some(v)))
        .and_then(|s| match s.value {
            Value::Counter(v) | Value::Gauge(v) | Value::Untyped(v) => Some(v),
            _ => None,
        })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_are_etcds_and_move_under_load() {
    within(LIMIT, async {
        let c = TestCluster::start(3).await;
        let ep = c.endpoint();
        c.etcdctl(&["put", "k", "v"]);
        let (text, before) = scrape(&ep);
        let kinds = types(&text);
        for (name, kind) in EXPECTED {
            assert_eq!(
                kinds.get(*name).map(String::as_str),
                Some(*kind),
                "{name} should be a {kind}"
            );
        }
        // The same types as the reference etcd gives its metrics.
        let reference = TestCluster::builder(1)
            .bin(reference_etcd_bin())
            .start()
            .await;
        let (ref_text, _) = scrape(&reference.endpoint());
        let ref_kinds = types(&ref_text);
        for (name, _) in EXPECTED {
            if let Some(k) = ref_kinds.get(*name) {
                assert_eq!(kinds.get(*name), Some(k), "{name}: the reference's type");
            }
        }
        let s = &before.samples;
        assert_eq!(value(s, "etcd_server_has_leader", &[]), Some(1.0));
        assert_eq!(
            value(s, "etcd_server_version", &[("server_version", "3.5.17")]),
            Some(1.0)
        );
        assert_eq!(
            value(s, "etcd_cluster_version", &[("cluster_version", "3.5")]),
            Some(1.0)
        );
        assert_eq!(value(s, "etcd_debugging_mvcc_keys_total", &[]), Some(1.0));

        for i in 0..20 {
            c.etcdctl(&["put", &format!("key{i}"), "value"]);
        }
        c.etcdctl(&["get", "key", "--prefix"]);
        c.etcdctl(&["del", "key0"]);
        c.etcdctl(&["get", "k", "--rev=1000"])
            .expect_err_contains("future revision");
        let (_, after) = scrape(&ep);
        let a = &after.samples;
        let moved = |name: &str, labels: &[(&str, &str)]| {
            let b = value(s, name, labels).unwrap_or(0.0);
            let n = value(a, name, labels).unwrap_or(0.0);
            assert!(n > b, "{name} {labels:?} moved: {b} -> {n}");
        };
        moved("etcd_mvcc_put_total", &[]);
        moved("etcd_mvcc_range_total", &[]);
        moved("etcd_mvcc_delete_total", &[]);
        moved("etcd_server_proposals_committed_total", &[]);
        moved("etcd_network_client_grpc_received_bytes_total", &[]);
        moved("etcd_network_client_grpc_sent_bytes_total", &[]);
        let put = [
            ("grpc_type", "unary"),
            ("grpc_service", "etcdserverpb.KV"),
            ("grpc_method", "Put"),
        ];
        moved("grpc_server_started_total", &put);
        moved(
            "grpc_server_handled_total",
            &[put[0], put[1], put[2], ("grpc_code", "OK")],
        );
        assert_eq!(value(a, "etcd_debugging_mvcc_keys_total", &[]), Some(20.0));
        // Raft traffic to the other members, labelled by their ids.
        assert!(
            a.iter()
                .any(|x| x.metric == "etcd_network_peer_sent_bytes_total"
                    && x.labels.get("To").is_some()),
            "peer bytes by To"
        );
        // Every series the dashboard and alerts select exists.
        let (raw, _) = scrape(&ep);
        for (name, labels) in DASHBOARD {
            let found = raw.lines().filter(|l| !l.starts_with('#')).any(|l| {
                let series = l.rsplit_once(' ').map_or(l, |(s, _)| s);
                let (metric, rest) = series.split_once('{').unwrap_or((series, ""));
                metric == *name
                    && labels
                        .iter()
                        .all(|(k, v)| rest.contains(&format!("{k}=\"{v}\"")))
            });
            assert!(found, "the dashboard's {name} {labels:?} has no series");
        }
        // Every series etcd declares up front, for calls not made yet.
        assert_eq!(
            value(
                a,
                "grpc_server_handled_total",
                &[
                    ("grpc_method", "MemberPromote"),
                    ("grpc_code", "Unavailable")
                ]
            ),
            Some(0.0)
        );
    })
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn listen_metrics_urls_serve_metrics_and_health_only() {
    within(LIMIT, async {
        let port = etcd_rs_tests::cluster::free_ports(1)[0];
        let url = format!("http://127.0.0.1:{port}");
        let flag = format!("--listen-metrics-urls={url}");
        let c = TestCluster::start_with_flags(1, &[&flag, "--metrics=extensive"]).await;
        c.etcdctl(&["put", "k", "v"]);
        let (text, _) = scrape(&url);
        assert!(
            text.contains("# TYPE etcd_server_has_leader gauge\n"),
            "{text}"
        );
        assert!(
            text.contains("# TYPE grpc_server_handling_seconds histogram\n"),
            "--metrics extensive adds the gRPC latency histogram"
        );
        let health = etcd_rs_tests::member::curl_get(&format!("{url}/health"), &[]).unwrap();
        assert_eq!(
            (health.status, health.body.as_str()),
            (200, r#"{"health":"true","reason":""}"#)
        );
        let out = std::process::Command::new("curl")
            .args([
                "-s",
                "-o",
                "/dev/null",
                "-w",
                "%{http_code}",
                "--max-time",
                "10",
                "-X",
                "POST",
            ])
            .args(["-d", r#"{"key":"aw=="}"#, &format!("{url}/v3/kv/range")])
            .output()
            .unwrap();
        assert_eq!(
            String::from_utf8_lossy(&out.stdout),
            "404",
            "no gateway on a metrics URL"
        );
        let (basic, _) = scrape(&c.endpoint());
        assert!(basic.contains("etcd_server_has_leader 1\n"));
    })
    .await
}

/// POSTs `body` to `url` with curl for at most `seconds`.
fn post(url: &str, body: &str, seconds: &str) {
    std::process::Command::new("curl")
        .args(["-s", "-N", "-o", "/dev/null", "--max-time", seconds])
        .args(["-d", body, url])
        .output()
        .expect("curl runs");
}

/// The gRPC counts a member shows for gateway calls: Put started, handled
/// OK and InvalidArgument, messages received; Watch started, and handled
/// Canceled once the client hung up (polled, bounded). A body that does
/// not decode is no call.
fn gateway_counts(endpoint: &str) -> Vec<f64> {
    let put = [("grpc_method", "Put"), ("grpc_type", "unary")];
    let watch = [("grpc_method", "Watch"), ("grpc_type", "bidi_stream")];
    let read = |s: &[Sample]| {
        let v = |name, labels: &[(&str, &str)]| value(s, name, labels).unwrap_or(0.0);
        vec![
            v("grpc_server_started_total", &put),
            v("grpc_server_handled_total", &[put[0], ("grpc_code", "OK")]),
            v(
                "grpc_server_handled_total",
                &[put[0], ("grpc_code", "InvalidArgument")],
            ),
            v("grpc_server_msg_received_total", &put),
            v("grpc_server_started_total", &watch),
            v(
                "grpc_server_handled_total",
                &[watch[0], ("grpc_code", "Canceled")],
            ),
        ]
    };
    let before = read(&scrape(endpoint).1.samples);
    for key in ["azA=", "azE=", "azI="] {
        post(
            &format!("{endpoint}/v3/kv/put"),
            &format!(r#"{{"key":"{key}","value":"dg=="}}"#),
            "10",
        );
    }
    post(
        &format!("{endpoint}/v3/kv/put"),
        r#"{"value":"dg=="}"#,
        "10",
    );
    // Not base64: the gateway makes no call.
    post(&format!("{endpoint}/v3/kv/put"), r#"{"key":"a3"}"#, "10");
    post(
        &format!("{endpoint}/v3/watch"),
        r#"{"create_request":{"key":"aw=="}}"#,
        "1",
    );
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    loop {
        let now = read(&scrape(endpoint).1.samples);
        let delta: Vec<f64> = now.iter().zip(&before).map(|(n, b)| n - b).collect();
        if delta[5] >= 1.0 || std::time::Instant::now() > deadline {
            return delta;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn gateway_calls_count_as_grpc_calls() {
    within(LIMIT, async {
        let (reference, ours) = tokio::join!(
            TestCluster::builder(1).bin(reference_etcd_bin()).start(),
            TestCluster::start(1),
        );
        let (r, o) = (reference.endpoint(), ours.endpoint());
        let (want, got) = tokio::join!(
            tokio::task::spawn_blocking(move || gateway_counts(&r)),
            tokio::task::spawn_blocking(move || gateway_counts(&o)),
        );
        let want = want.unwrap();
        assert_eq!(want, [4.0, 3.0, 1.0, 4.0, 1.0, 1.0], "the reference etcd");
        assert_eq!(got.unwrap(), want);
    })
    .await
}

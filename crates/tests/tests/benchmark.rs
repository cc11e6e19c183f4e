//! Our `benchmark` binary (etcd's tools/benchmark) run against a member of
//! etcd-rs and of the reference etcd: every subcommand prints etcd's report
//! with one histogram entry per request, and its requests really reach the
//! server (the keys, leases, events and lock rounds it claims are there).

use std::time::Duration;

use etcd_client::{Client, GetOptions};
use etcd_rs_tests::benchmark::{benchmark, histogram_total};
use etcd_rs_tests::bins::reference_etcd_bin;
use etcd_rs_tests::{within, Output, TestCluster};

const LIMIT: Duration = Duration::from_secs(120);

/// A successful run's report: etcd's summary, histogram and percentiles,
/// no errors, and `requests` requests in the histogram.
fn assert_report(out: &Output, report: &str, requests: u64) {
    assert_eq!(out.code, 0, "{out}");
    for part in [
        "\nSummary:\n  Total:\t",
        " secs.\n  Slowest:\t",
        "\n  Fastest:\t",
        "\n  Average:\t",
        "\n  Stddev:\t",
        "\n  Requests/sec:\t",
        "\nLatency distribution:\n  10% in ",
        "\n  50% in ",
        "\n  90% in ",
    ] {
        assert!(report.contains(part), "{part:?} missing in:\n{out}");
    }
    assert!(!report.contains("Error distribution"), "{out}");
    assert_eq!(histogram_total(report), requests, "{out}");
}

/// Every subcommand, small, against the member at `ep`.
async fn every_subcommand(ep: &str) {
    let mut cl = Client::connect([ep], None).await.unwrap();
    let all_keys = || Some(GetOptions::new().with_from_key().with_count_only());

    // put: 200 distinct sequential keys of 8 bytes, 16-byte values.
    let out = benchmark(
        ep,
        &[
            "--clients=4",
            "--conns=2",
            "put",
            "--total=200",
            "--val-size=16",
            "--sequential-keys",
            "--key-space-size=200",
        ],
    );
    assert_report(&out, &out.stdout, 200);
    let r = cl.get(vec![0u8], all_keys()).await.unwrap();
    assert_eq!(r.count(), 200, "{out}");
    let r = cl
        .get(
            vec![0u8],
            Some(GetOptions::new().with_from_key().with_limit(1)),
        )
        .await
        .unwrap();
    let kv = &r.kvs()[0];
    assert_eq!((kv.key().len(), kv.value().len()), (8, 16));

    // range, both consistencies; a bad one is refused.
    for consistency in ["l", "s"] {
        let c = format!("--consistency={consistency}");
        let out = benchmark(ep, &["--clients=3", "range", "k", "--total=60", &c]);
        assert_report(&out, &out.stdout, 60);
    }
    let out = benchmark(ep, &["range", "k", "--total=1", "--consistency=x"]);
    assert_ne!(out.code, 0, "{out}");

    // txn-put: 25 txns of 4 puts on sequential keys, in a fresh prefix of
    // the key space (10-byte keys), so 100 new keys.
    let out = benchmark(
        ep,
        &[
            "txn-put",
            "--total=25",
            "--txn-ops=4",
            "--key-size=10",
            "--key-space-size=1000",
        ],
    );
    assert_report(&out, &out.stdout, 25);
    let r = cl.get(vec![0u8], all_keys()).await.unwrap();
    assert_eq!(r.count(), 300, "{out}");

    // lease-keepalive: one lease per connection, kept alive 50 times.
    let before = cl.leases().await.unwrap().leases().len();
    let out = benchmark(
        ep,
        &["--conns=2", "--clients=2", "lease-keepalive", "--total=50"],
    );
    assert_report(&out, &out.stdout, 50);
    assert_eq!(cl.leases().await.unwrap().leases().len(), before + 2);

    // watch: 3 streams x 4 watchers on one key, 10 puts: 120 events.
    let out = benchmark(
        ep,
        &[
            "--conns=2",
            "--clients=2",
            "watch",
            "--streams=3",
            "--watch-per-stream=4",
            "--put-total=10",
        ],
    );
    let (created, events) = out
        .stdout
        .split_once("Watch events received summary:\n")
        .unwrap_or_else(|| panic!("{out}"));
    assert!(created.starts_with("Watch creation summary:\n"), "{out}");
    assert_report(&out, created, 12);
    assert_report(&out, events, 120);

    // watch-latency: 2 streams x 3 watchers, 10 puts at 200/s: 60 events.
    let out = benchmark(
        ep,
        &[
            "watch-latency",
            "--streams=2",
            "--watchers-per-stream=3",
            "--put-total=10",
            "--put-rate=200",
        ],
    );
    assert_report(&out, &out.stdout, 60);

    // lock: 4 clients take and release one lock 40 times, by the RPCs and
    // by the KV recipe: two revisions a round (the key's put and delete),
    // no key left, the clients' leases revoked.
    let leases = cl.leases().await.unwrap().leases().len();
    for kind in ["rpc", "client"] {
        let rev = |r: etcd_client::GetResponse| r.header().unwrap().revision();
        let before = rev(cl.get("x", None).await.unwrap());
        let kind_flag = format!("--lock-kind={kind}");
        let out = benchmark(
            ep,
            &["--conns=2", "--clients=4", "lock", "--total=40", &kind_flag],
        );
        assert_report(&out, &out.stdout, 40);
        let after = rev(cl.get("x", None).await.unwrap());
        assert_eq!(after - before, 80, "{kind}: {out}");
    }
    let left = Some(GetOptions::new().with_prefix().with_count_only());
    let r = cl.get("benchmark-lock-", left).await.unwrap();
    assert_eq!(r.count(), 0);
    assert_eq!(cl.leases().await.unwrap().leases().len(), leases);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_subcommand_against_etcd_rs() {
    within(LIMIT, async {
        let c = TestCluster::start(1).await;
        every_subcommand(&c.endpoint()).await;
    })
    .await
}

/// The same runs against the reference etcd: the tool works with etcd
/// itself, as etcd's own benchmark does.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_subcommand_against_the_reference_etcd() {
    within(LIMIT, async {
        let c = TestCluster::builder(1)
            .bin(reference_etcd_bin())
            .start()
            .await;
        every_subcommand(&c.endpoint()).await;
    })
    .await
}

/// `--target-leader` finds the leader of three members and sends it all
/// requests; unreachable endpoints fail with a message and a non-zero
/// exit.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn target_leader_and_failures() {
    within(LIMIT, async {
        let c = TestCluster::start(3).await;
        let eps = c.endpoints().join(",");
        let out = benchmark(&eps, &["--target-leader", "put", "--total=30"]);
        assert_report(&out, &out.stdout, 30);

        // A port nobody listens on: bound and released.
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let dead = format!("127.0.0.1:{port}");
        let out = benchmark(&dead, &["--dial-timeout=1s", "put", "--total=1"]);
        assert_ne!(out.code, 0, "{out}");
        assert!(out.stderr.starts_with("benchmark: "), "{out}");
    })
    .await
}

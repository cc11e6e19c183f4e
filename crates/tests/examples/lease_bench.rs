//! Lease benchmark against any etcd endpoint (etcd-rs or etcd), with the
//! etcd-client crate:
//!
//! - keep-alive throughput: C clients each keep one lease alive as fast as
//!   the server answers, for a fixed time;
//! - expiry at scale: grant N leases with the minimum TTL and one key each
//!   (C clients), then time until every key is gone (the server revokes
//!   them; etcd rate-limits that to 1,000 per second).
//!
//! `cargo run --release -p etcd-rs-tests --example lease_bench -- ENDPOINT [N]`
//! (scripts/lease-bench-compare.sh runs it against both servers).

use std::time::{Duration, Instant};

use etcd_client::{Client, GetOptions, PutOptions};

const CLIENTS: usize = 16;
const KEEPALIVE_FOR: Duration = Duration::from_secs(5);

async fn keepalive_throughput(endpoint: &str) {
    let mut tasks = Vec::new();
    for _ in 0..CLIENTS {
        let endpoint = endpoint.to_string();
        tasks.push(tokio::spawn(async move {
            let mut client = Client::connect([endpoint], None).await.expect("connect");
            let id = client.lease_grant(60, None).await.expect("grant").id();
            let (mut keeper, mut replies) = client.lease_keep_alive(id).await.expect("keep-alive");
            let end = Instant::now() + KEEPALIVE_FOR;
            let mut n = 0u64;
            while Instant::now() < end {
                keeper.keep_alive().await.expect("send");
                replies.message().await.expect("reply").expect("open");
                n += 1;
            }
            n
        }));
    }
    let mut total = 0;
    for t in tasks {
        total += t.await.unwrap();
    }
    println!(
        "keep-alives/s: {:.0} ({CLIENTS} clients, {KEEPALIVE_FOR:?})",
        total as f64 / KEEPALIVE_FOR.as_secs_f64()
    );
}

async fn expiry(endpoint: &str, n: usize) {
    let start = Instant::now();
    let mut tasks = Vec::new();
    for c in 0..CLIENTS {
        let endpoint = endpoint.to_string();
        tasks.push(tokio::spawn(async move {
            let mut client = Client::connect([endpoint], None).await.expect("connect");
            for i in (c..n).step_by(CLIENTS) {
                // The minimum TTL: the server raises 1 s to it.
                let id = client.lease_grant(1, None).await.expect("grant").id();
                let opts = PutOptions::new().with_lease(id);
                client
                    .put(format!("lease-bench/{i:07}"), "v", Some(opts))
                    .await
                    .expect("put");
            }
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }
    let granted = start.elapsed();
    println!(
        "granted {n} leases with one key each in {granted:.2?} ({:.0}/s)",
        n as f64 / granted.as_secs_f64()
    );
    let mut client = Client::connect([endpoint], None).await.expect("connect");
    let count = GetOptions::new().with_prefix().with_count_only();
    loop {
        let left = client
            .get("lease-bench/", Some(count.clone()))
            .await
            .expect("count")
            .count();
        if left == 0 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    println!(
        "all {n} keys expired {:.2?} after the last grant",
        start.elapsed() - granted
    );
}

#[tokio::main]
async fn main() {
    let mut args = std::env::args().skip(1);
    let endpoint = args.next().expect("usage: lease_bench ENDPOINT [N]");
    let n: usize = args.next().map_or(100_000, |s| s.parse().expect("N"));
    keepalive_throughput(&endpoint).await;
    expiry(&endpoint, n).await;
}

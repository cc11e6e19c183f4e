//! One huge Range does not make the member hold its answer twice: while a
//! member answers a range over `RANGE_MIB` MiB of values (default 128,
//! which the backend's 256 MiB page cache still holds after the writes;
//! `RANGE_MIB=1024` is the 1 GiB measurement of docs/robustness.md), its
//! resident memory grows by less than [`BOUND`] times the response. A
//! range over more than the cache holds also fills the cache, up to its
//! 256 MiB (docs/robustness.md). The
//! same range on the reference etcd is measured alongside and printed
//! (etcd keeps the kvs, their encoding and grpc-go's copy at once). The
//! client receives every key and value.

use std::time::Duration;

use api::etcdserverpb::kv_client::KvClient;
use api::etcdserverpb::{PutRequest, RangeRequest};
use etcd_rs_tests::bins::reference_etcd_bin;
use etcd_rs_tests::{within, TestCluster};

const LIMIT: Duration = Duration::from_secs(600);
/// Each value: 1 MiB (under the default `--max-request-bytes`, 1.5 MiB).
const VALUE_BYTES: usize = 1024 * 1024;
/// The most the member's resident memory may grow while it serves the
/// range, as a multiple of the response's size: the encoded answer once,
/// redb pages read for it, allocator slack. The decoded kvs plus tonic's
/// encoding of them were 2x on their own.
const BOUND: f64 = 1.5;

fn range_mib() -> usize {
    std::env::var("RANGE_MIB")
        .ok()
        .map(|v| v.parse().expect("RANGE_MIB: a number of MiB"))
        .unwrap_or(128)
}

/// A field of `/proc/pid/status` (`VmRSS`, `VmHWM`), in KiB.
fn status_kib(pid: u32, field: &str) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    let line = status
        .lines()
        .find(|l| l.starts_with(field))
        .unwrap_or_else(|| panic!("{field} in /proc/{pid}/status"));
    line.split_whitespace().nth(1).unwrap().parse().unwrap()
}

/// The value of key `i`: its number, then filler.
fn value(i: usize) -> Vec<u8> {
    let mut v = format!("{i:08}").into_bytes();
    v.resize(VALUE_BYTES, b'x');
    v
}

/// Writes `n` values of 1 MiB under `/huge/`, then ranges over all of
/// them: see [`range_all`]. A range over more than the backend's page
/// cache holds after the writes (redb's, at most `Backend::CACHE_BYTES`,
/// 256 MiB; etcd's bbolt pages are its mmap, resident too) also fills it.
async fn measure(c: &TestCluster, n: usize) -> (u64, usize) {
    let pid = c.member(0).pid().unwrap();
    let mut kv = KvClient::connect(c.endpoint())
        .await
        .unwrap()
        .max_decoding_message_size(usize::MAX);
    for i in 0..n {
        kv.put(PutRequest {
            key: format!("/huge/{i:06}").into_bytes(),
            value: value(i),
            ..Default::default()
        })
        .await
        .unwrap();
    }
    range_all(&mut kv, pid, n).await
}

/// Ranges over the `n` values; returns how much the member's RSS grew
/// meanwhile, in KiB (its peak, `VmHWM`, reset just before through
/// `clear_refs`), and the response's size in bytes.
async fn range_all(
    kv: &mut KvClient<tonic::transport::Channel>,
    pid: u32,
    n: usize,
) -> (u64, usize) {
    std::fs::write(format!("/proc/{pid}/clear_refs"), "5").expect("reset VmHWM");
    let before = status_kib(pid, "VmRSS:");
    let resp = kv
        .range(RangeRequest {
            key: b"/huge/".to_vec(),
            range_end: b"/huge0".to_vec(),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    let peak = status_kib(pid, "VmHWM:");
    assert_eq!(resp.count, n as i64);
    assert_eq!(resp.kvs.len(), n);
    for (i, kv) in resp.kvs.iter().enumerate() {
        assert_eq!(kv.key, format!("/huge/{i:06}").into_bytes());
        assert!(kv.value == value(i), "value {i} differs");
    }
    (
        peak.saturating_sub(before),
        prost::Message::encoded_len(&resp),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_huge_range_is_not_held_twice() {
    within(LIMIT, async {
        let n = range_mib();
        let reference = TestCluster::builder(1)
            .bin(reference_etcd_bin())
            .start()
            .await;
        let (etcd_growth, _) = measure(&reference, n).await;
        drop(reference);

        let c = TestCluster::start(1).await;
        let (growth, size) = measure(&c, n).await;
        let x = |kib: u64| (kib * 1024) as f64 / size as f64;
        let ratio = x(growth);
        eprintln!(
            "a {} MiB range: RSS grew {} MiB on etcd-rs ({ratio:.2}x the response), {} MiB on etcd ({:.2}x)",
            size >> 20,
            growth >> 10,
            etcd_growth >> 10,
            x(etcd_growth),
        );
        assert!(
            ratio < BOUND,
            "RSS grew {} MiB serving a {} MiB range ({ratio:.2}x; the bound is {BOUND}x)",
            growth >> 10,
            size >> 20
        );
    })
    .await
}

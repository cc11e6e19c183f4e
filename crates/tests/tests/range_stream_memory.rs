//! A list of a million keys through `KV.RangeStream` (issue 18) is
//! never held by the member at once: while it streams `STREAM_KEYS`
//! keys (default 1,000,000, of 64-byte values), the member's resident
//! memory peaks less than [`BOUND_MIB`] above where it started, where
//! a plain Range of the same keys makes it grow by about the answer's
//! size or more. The plain Range is measured beside it, on etcd-rs and
//! on the reference etcd (which has no RangeStream), and printed. The
//! chunks, read by the `etcd-client` crate's `get_stream`, reassemble to
//! exactly the plain Range's answer.

use std::time::Duration;

use api::etcdserverpb::kv_client::KvClient;
use api::etcdserverpb::request_op::Request;
use api::etcdserverpb::{PutRequest, RangeRequest, RequestOp, TxnRequest};
use etcd_client::{Client, GetOptions};
use etcd_rs_tests::bins::reference_etcd_bin;
use etcd_rs_tests::{within, TestCluster};
use tonic::transport::Channel;

const LIMIT: Duration = Duration::from_secs(900);
/// How far the member's RSS may peak above its start while it streams
/// the list, MiB: chunks of about `--max-request-bytes` (1.5 MiB), the
/// redb pages read for them, the allocator's slack.
const BOUND_MIB: u64 = 48;
/// Puts per Txn while loading (etcd's `--max-txn-ops`, 128).
const BATCH: usize = 128;
/// Txns in flight while loading.
const IN_FLIGHT: usize = 8;
const PREFIX: &str = "/list/";
const PREFIX_END: &str = "/list0";

fn keys() -> usize {
    std::env::var("STREAM_KEYS")
        .ok()
        .map(|v| v.parse().expect("STREAM_KEYS: a number of keys"))
        .unwrap_or(1_000_000)
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

fn key(i: usize) -> Vec<u8> {
    format!("{PREFIX}{i:07}").into_bytes()
}

fn value(i: usize) -> Vec<u8> {
    let mut v = format!("{i:07}").into_bytes();
    v.resize(64, b'v');
    v
}

/// Writes `n` keys under [`PREFIX`], [`BATCH`] a Txn, [`IN_FLIGHT`] Txns
/// at once.
async fn load(kv: &KvClient<Channel>, n: usize) {
    let batches: Vec<_> = (0..n).step_by(BATCH).collect();
    for wave in batches.chunks(IN_FLIGHT) {
        let calls = wave.iter().map(|&start| {
            let mut kv = kv.clone();
            let success = (start..(start + BATCH).min(n))
                .map(|i| RequestOp {
                    request: Some(Request::RequestPut(PutRequest {
                        key: key(i),
                        value: value(i),
                        ..Default::default()
                    })),
                })
                .collect();
            async move {
                kv.txn(TxnRequest {
                    success,
                    ..Default::default()
                })
                .await
                .expect("a loading txn")
            }
        });
        run_all(calls).await;
    }
}

/// Awaits every future (in order; they run concurrently on the runtime).
async fn run_all<F: std::future::Future + Send + 'static>(futs: impl Iterator<Item = F>)
where
    F::Output: Send,
{
    let handles: Vec<_> = futs.map(tokio::spawn).collect();
    for h in handles {
        h.await.expect("a loading task");
    }
}

/// Resets the peak (`clear_refs`) and returns the RSS now, KiB.
fn reset_peak(pid: u32) -> u64 {
    std::fs::write(format!("/proc/{pid}/clear_refs"), "5").expect("reset VmHWM");
    status_kib(pid, "VmRSS:")
}

/// The plain Range of the whole prefix and how much the member's RSS
/// peaked above its start meanwhile, KiB.
async fn plain(kv: &mut KvClient<Channel>, pid: u32) -> (api::etcdserverpb::RangeResponse, u64) {
    let before = reset_peak(pid);
    let resp = kv
        .range(RangeRequest {
            key: PREFIX.into(),
            range_end: PREFIX_END.into(),
            ..Default::default()
        })
        .await
        .expect("the plain range")
        .into_inner();
    (resp, status_kib(pid, "VmHWM:").saturating_sub(before))
}

fn mib(kib: u64) -> u64 {
    kib >> 10
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_streamed_list_of_a_million_keys_is_not_held_at_once() {
    within(LIMIT, async {
        let n = keys();
        let reference = TestCluster::builder(1)
            .bin(reference_etcd_bin())
            .start()
            .await;
        let connect = |ep: String| async move {
            KvClient::connect(ep)
                .await
                .unwrap()
                .max_decoding_message_size(usize::MAX)
        };
        let mut kv = connect(reference.endpoint()).await;
        load(&kv, n).await;
        let (etcd_resp, etcd_growth) = plain(&mut kv, reference.member(0).pid().unwrap()).await;
        assert_eq!(etcd_resp.kvs.len(), n, "etcd's plain range");
        drop(reference);

        let c = TestCluster::start(1).await;
        let pid = c.member(0).pid().unwrap();
        let mut kv = connect(c.endpoint()).await;
        load(&kv, n).await;

        let client = Client::connect([c.endpoint()], None).await.unwrap();
        let before = reset_peak(pid);
        let opts = GetOptions::new().with_range(PREFIX_END);
        let mut stream = client
            .kv_client()
            .get_stream(PREFIX, Some(opts))
            .await
            .unwrap();
        let (mut kvs, mut chunks, mut last) = (Vec::with_capacity(n), 0, None);
        while let Some(chunk) = stream.message().await.expect("a chunk") {
            chunks += 1;
            kvs.extend(
                chunk
                    .kvs()
                    .iter()
                    .map(|kv| (kv.key().to_vec(), kv.value().to_vec(), kv.mod_revision())),
            );
            last = Some((
                chunk.count(),
                chunk.more(),
                chunk.header().map(|h| h.revision()),
            ));
        }
        let streamed = status_kib(pid, "VmHWM:").saturating_sub(before);

        let (resp, growth) = plain(&mut kv, pid).await;
        let size = prost::Message::encoded_len(&resp);
        eprintln!(
            "{n} keys, a {} MiB answer: RangeStream ({chunks} chunks) peaked {} MiB above the \
             start on etcd-rs; a plain Range {} MiB on etcd-rs, {} MiB on etcd",
            size >> 20,
            mib(streamed),
            mib(growth),
            mib(etcd_growth),
        );
        let header_rev = resp.header.as_ref().map(|h| h.revision);
        assert_eq!(last, Some((n as i64, false, header_rev)), "the last chunk");
        let plain: Vec<_> = resp
            .kvs
            .iter()
            .map(|kv| (kv.key.clone(), kv.value.clone(), kv.mod_revision))
            .collect();
        assert!(plain == kvs, "the chunks differ from the plain range");
        assert!(
            mib(streamed) < BOUND_MIB,
            "RangeStream of {n} keys: RSS peaked {} MiB above the start (bound {BOUND_MIB} MiB)",
            mib(streamed)
        );
    })
    .await
}

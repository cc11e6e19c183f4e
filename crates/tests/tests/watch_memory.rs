//! A watch stream whose client stops reading cannot grow the member's
//! memory: while 100 MiB of events are written, the member's peak RSS
//! stays within [`BOUND_MIB`] of a member that took the same writes with
//! no watcher, and once the client reads again it receives every event, in
//! order (its watcher caught up from the store).

use std::time::Duration;

use api::etcdserverpb::kv_client::KvClient;
use api::etcdserverpb::watch_client::WatchClient;
use api::etcdserverpb::watch_request::RequestUnion;
use api::etcdserverpb::{PutRequest, WatchCreateRequest, WatchRequest};
use etcd_rs_tests::{within, TestCluster};
use tokio_stream::StreamExt;

const LIMIT: Duration = Duration::from_secs(300);
/// Values written: 400 of 256 KiB, 100 MiB in all.
const PUTS: usize = 400;
const VALUE_BYTES: usize = 256 * 1024;
/// How much more than the member without a watcher the member with the
/// stuck stream may peak at. The stream's queue holds at most 4 MiB of
/// events (`v3rpc::watch::STREAM_BYTES`); the rest is one catch-up read
/// (4 MiB) and its batches, allocator slack and HTTP/2 buffers. Without
/// the byte budget the queue alone held the whole 100 MiB.
const BOUND_MIB: u64 = 40;

/// The member's peak resident memory (`VmHWM`), in KiB.
fn peak_rss_kib(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    let line = status
        .lines()
        .find(|l| l.starts_with("VmHWM:"))
        .expect("VmHWM in /proc/pid/status");
    line.split_whitespace().nth(1).unwrap().parse().unwrap()
}

/// The value of put `i`: its number, then filler.
fn value(i: usize) -> Vec<u8> {
    let mut v = format!("{i:08}").into_bytes();
    v.resize(VALUE_BYTES, b'x');
    v
}

async fn write_all(endpoint: &str) {
    let mut kv = KvClient::connect(endpoint.to_string()).await.unwrap();
    for i in 0..PUTS {
        kv.put(PutRequest {
            key: format!("/big/{}", i % 16).into_bytes(),
            value: value(i),
            ..Default::default()
        })
        .await
        .unwrap();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_watch_stream_that_stops_reading_keeps_memory_bounded_and_misses_nothing() {
    within(LIMIT, async {
        // The same writes on a member without a watcher: the baseline.
        let control = TestCluster::start(1).await;
        write_all(&control.endpoint()).await;
        let baseline = peak_rss_kib(control.member(0).pid().unwrap());
        drop(control);

        let c = TestCluster::start(1).await;
        let endpoint = c.endpoint();
        let mut watch = WatchClient::connect(endpoint.clone()).await.unwrap();
        let (tx, rx) = tokio::sync::mpsc::channel(1);
        tx.send(WatchRequest {
            request_union: Some(RequestUnion::CreateRequest(WatchCreateRequest {
                key: b"/big/".to_vec(),
                range_end: b"/big0".to_vec(),
                ..Default::default()
            })),
        })
        .await
        .unwrap();
        let mut stream = watch
            .watch(tokio_stream::wrappers::ReceiverStream::new(rx))
            .await
            .unwrap()
            .into_inner();
        let created = stream.next().await.unwrap().unwrap();
        assert!(created.created);
        let start = created.header.unwrap().revision;

        // The client reads nothing while 100 MiB of events are written.
        write_all(&endpoint).await;
        let peak = peak_rss_kib(c.member(0).pid().unwrap());
        eprintln!(
            "peak RSS: {} KiB with a stuck watch stream, {} KiB without",
            peak, baseline
        );
        assert!(
            peak <= baseline + BOUND_MIB * 1024,
            "peak RSS {} MiB with a stuck watch stream, {} MiB without one",
            peak / 1024,
            baseline / 1024
        );

        // It reads again: every event, in order, none twice.
        let mut got = Vec::with_capacity(PUTS);
        while got.len() < PUTS {
            let resp = stream.next().await.expect("stream open").unwrap();
            assert!(!resp.canceled, "{}", resp.cancel_reason);
            for ev in resp.events {
                let kv = ev.kv.unwrap();
                got.push((kv.mod_revision, kv.value));
            }
        }
        for (i, (rev, v)) in got.iter().enumerate() {
            assert_eq!(*rev, start + 1 + i as i64, "event {i} out of order");
            assert!(*v == value(i), "event {i} carries another value");
        }
        drop(tx);
    })
    .await
}

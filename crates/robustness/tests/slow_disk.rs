//! A slow disk under the backend: while every backend fsync takes
//! `storage::failpoint::SLOW_FSYNC_DELAY` (3 s, the slow-disk marker of a
//! `failpoints` build), no put waits for one, because the fsync of a
//! durable commit runs after redb's write lock is free and the next one
//! is not begun until it ends; and a member killed while one runs comes
//! back with every acknowledged put.

mod common;

use std::time::{Duration, Instant};

use api::etcdserverpb::kv_client::KvClient;
use api::etcdserverpb::{PutRequest, RangeRequest};
use etcd_rs_tests::{within, TestCluster};
use storage::failpoint::{SLOW_BACKEND_FSYNC, SLOW_FSYNC_DELAY};

/// How long puts run with the disk slow: past one slow fsync.
const LOAD: Duration = Duration::from_secs(5);
/// Large enough that the backend file grows during the load (redb grows
/// it while a fsync may be running).
const VALUE_BYTES: usize = 8192;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_slow_backend_fsync_holds_no_put_up() {
    let etcd = common::build_etcd("failpoints", "slow-disk");
    within(Duration::from_secs(120), async {
        let mut c = TestCluster::builder(1).bin(&etcd).start().await;
        let marker = c
            .member(0)
            .data_dir()
            .join("member")
            .join(SLOW_BACKEND_FSYNC);
        std::fs::write(&marker, b"").unwrap();
        let mut kv = KvClient::connect(c.endpoint()).await.unwrap();
        let (started, mut puts, mut slowest) = (Instant::now(), 0u32, Duration::ZERO);
        while started.elapsed() < LOAD {
            let put = PutRequest {
                key: format!("slow/{puts:05}").into_bytes(),
                value: vec![b'v'; VALUE_BYTES],
                ..Default::default()
            };
            let t = Instant::now();
            kv.put(put).await.unwrap();
            slowest = slowest.max(t.elapsed());
            puts += 1;
        }
        // The fault bit: the member slept in its fsyncs.
        let log = std::fs::read_to_string(c.member(0).log_path()).unwrap();
        assert!(
            log.contains("failpoint: backend fsync slowed"),
            "no fsync was slowed:\n{}",
            c.member(0).log_tail()
        );
        assert!(
            slowest < SLOW_FSYNC_DELAY / 2,
            "a put waited {slowest:?} (of {puts}) behind a {SLOW_FSYNC_DELAY:?} backend fsync"
        );
        // Killed while an fsync sleeps; the disk is fast again for the
        // restart, which replays the WAL past what the backend holds.
        c.member_mut(0).kill9();
        std::fs::remove_file(&marker).unwrap();
        c.member_mut(0).restart().await;
        let mut kv = KvClient::connect(c.endpoint()).await.unwrap();
        let count = kv
            .range(RangeRequest {
                key: b"slow/".to_vec(),
                range_end: b"slow0".to_vec(),
                count_only: true,
                ..Default::default()
            })
            .await
            .unwrap()
            .into_inner()
            .count;
        assert_eq!(count, i64::from(puts), "puts lost across the kill");
    })
    .await;
}

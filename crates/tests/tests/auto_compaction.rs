//! Auto-compaction (`--auto-compaction-mode`, `--auto-compaction-retention`)
//! as a user sees it: with periodic mode, old revisions become
//! `compacted` for `etcdctl get --rev` while recent ones stay readable,
//! and under a steady load of overwrites the backend stays bounded. The
//! schedules themselves (periodic and revision mode, followers idle) are
//! unit-tested on a paused clock in `etcdserver/compactor.rs`; revision
//! mode runs every 5 minutes, as etcd's, too slow for a test here.

use std::time::{Duration, Instant};

use etcd_client::{Client, GetOptions, PutOptions};
use etcd_rs_tests::{within, TestCluster};

const LIMIT: Duration = Duration::from_secs(120);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn periodic_retention_compacts_old_revisions_on_every_member() {
    within(LIMIT, async {
        let cluster = TestCluster::start_with_flags(
            3,
            &[
                "--auto-compaction-mode=periodic",
                "--auto-compaction-retention=2s",
            ],
        )
        .await;
        let mut c = Client::connect(cluster.endpoints(), None).await.unwrap();
        let first = c.put("k", "v0", None).await.unwrap();
        let first_rev = first.header().unwrap().revision();
        // Writes go on while the leader's compactor waits out its period.
        let deadline = Instant::now() + Duration::from_secs(30);
        let mut n = 0;
        loop {
            n += 1;
            c.put("k", format!("v{n}"), None).await.unwrap();
            let out = cluster.etcdctl(&["get", "k", "--rev", &first_rev.to_string()]);
            if out.code != 0 {
                out.expect_err_contains("etcdserver: mvcc: required revision has been compacted");
                break;
            }
            assert!(
                Instant::now() < deadline,
                "revision {first_rev} never compacted"
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        // Every member applied the compaction; the latest value stays.
        for i in 0..3 {
            cluster
                .etcdctl_on(
                    i,
                    &[
                        "get",
                        "k",
                        "--rev",
                        &first_rev.to_string(),
                        "--consistency=s",
                    ],
                )
                .expect_err_contains("required revision has been compacted");
            let latest = cluster.etcdctl_on(i, &["get", "k", "--print-value-only"]);
            latest.expect_stdout(&format!("v{n}\n"));
        }
    })
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_backend_stays_bounded_under_steady_overwrites() {
    within(LIMIT, async {
        let cluster = TestCluster::start_with_flags(
            1,
            &[
                "--auto-compaction-mode=periodic",
                "--auto-compaction-retention=1s",
            ],
        )
        .await;
        let mut c = Client::connect([cluster.endpoint()], None).await.unwrap();
        let value = vec![b'x'; 32 * 1024];
        let put_round = |c: &Client| {
            let (mut c, value) = (c.clone(), value.clone());
            async move {
                for k in 0..16 {
                    c.put(format!("key-{k}"), value.clone(), None::<PutOptions>)
                        .await
                        .unwrap();
                }
                16 * value.len() as u64
            }
        };
        // Three seconds of overwrites of 16 keys with 32 KiB values: the
        // backend grows to hold the history the retention keeps (about a
        // second of it) and what compaction has not freed yet.
        let start = Instant::now();
        while start.elapsed() < Duration::from_secs(3) {
            put_round(&c).await;
        }
        let settled = c.status().await.unwrap().db_size() as u64;
        // Then twice that size again in overwrites: without compaction
        // the backend would have to hold all of it.
        let mut written = 0;
        while written < 2 * settled {
            written += put_round(&c).await;
        }
        let last = c.status().await.unwrap().db_size() as u64;
        assert!(
            last <= 2 * settled,
            "the backend grew from {settled} to {last} bytes while {written} bytes were overwritten"
        );
        let keys = c
            .get(
                "key-",
                Some(GetOptions::new().with_prefix().with_count_only()),
            )
            .await
            .unwrap();
        assert_eq!(keys.count(), 16);
    })
    .await
}

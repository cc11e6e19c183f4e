//! Defragmentation (Maintenance.Defragment, `etcdctl defrag`): the space
//! that compaction freed goes back to the file system (Status's `dbSize`
//! falls to about `dbSizeInUse`), the data is the same before and after
//! and after a restart, and, unlike etcd's, reads and writes go on while
//! a member defragments; one asked for mid-compaction lets it finish.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use etcd_client::Client;
use etcd_rs_tests::{within, TestCluster};

const LIMIT: Duration = Duration::from_secs(240);
const KEYS: usize = 60;
const VALUE_BYTES: usize = 1024 * 1024;

/// Waits until the member's log says a compaction's rows are all removed.
fn compaction_finished(c: &TestCluster) {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let log = std::fs::read_to_string(c.member(0).log_path()).unwrap();
        if log.contains("finished scheduled compaction") {
            return;
        }
        assert!(Instant::now() < deadline, "the compaction did not finish");
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn value(round: u8, i: usize) -> Vec<u8> {
    let mut v = vec![round; VALUE_BYTES];
    v[..8].copy_from_slice(&(i as u64).to_be_bytes());
    v
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn defrag_gives_space_back_while_reads_and_writes_go_on() {
    within(LIMIT, async {
        let mut cluster = TestCluster::start(1).await;
        let mut c = Client::connect([cluster.endpoint()], None).await.unwrap();
        // Every key written twice: the first versions are garbage once
        // compacted.
        for round in [1u8, 2] {
            for i in 0..KEYS {
                c.put(format!("big-{i:02}"), value(round, i), None)
                    .await
                    .unwrap();
            }
        }
        let rev = c
            .get("big-00", None)
            .await
            .unwrap()
            .header()
            .unwrap()
            .revision();
        c.compact(rev, None).await.unwrap();
        compaction_finished(&cluster);
        let before = c.status().await.unwrap();
        let hash_before = c.hash_kv(rev).await.unwrap().hash();

        let done = Arc::new(AtomicBool::new(false));
        let (reads, writes) = (Arc::new(AtomicU64::new(0)), Arc::new(AtomicU64::new(0)));
        let mut load = Vec::new();
        for writer in [false, true] {
            let (done, count) = (done.clone(), if writer { &writes } else { &reads }.clone());
            let mut c = Client::connect([cluster.endpoint()], None).await.unwrap();
            load.push(tokio::spawn(async move {
                let mut n = 0u64;
                while !done.load(Ordering::Acquire) {
                    if writer {
                        c.put("small", n.to_string(), None).await.unwrap();
                    } else {
                        assert_eq!(c.get("big-07", None).await.unwrap().kvs().len(), 1);
                    }
                    n += 1;
                    // Only what finished while the defragmentation ran.
                    if !done.load(Ordering::Acquire) {
                        count.fetch_add(1, Ordering::Relaxed);
                    }
                }
            }));
        }
        c.defragment().await.unwrap();
        done.store(true, Ordering::Release);
        for l in load {
            l.await.unwrap();
        }
        assert!(reads.load(Ordering::Relaxed) > 0, "no read was served");
        assert!(writes.load(Ordering::Relaxed) > 0, "no write was served");

        let status = cluster.etcdctl(&["endpoint", "status", "-w", "json"]);
        let status: serde_json::Value = serde_json::from_str(&status.stdout).unwrap();
        let status = &status[0]["Status"];
        let (size, in_use) = (
            status["dbSize"].as_i64().unwrap(),
            status["dbSizeInUse"].as_i64().unwrap(),
        );
        assert!(
            size * 3 < before.db_size() * 2,
            "{size} bytes after, {} before",
            before.db_size()
        );
        assert!(
            size <= in_use + in_use / 4 + 1024 * 1024,
            "dbSize {size} is far above dbSizeInUse {in_use}"
        );
        assert_eq!(c.hash_kv(rev).await.unwrap().hash(), hash_before);

        cluster.restart_all().await;
        let mut c = Client::connect([cluster.endpoint()], None).await.unwrap();
        assert_eq!(c.hash_kv(rev).await.unwrap().hash(), hash_before);
        let got = c.get("big-42", None).await.unwrap();
        assert_eq!(got.kvs()[0].value(), value(2, 42).as_slice());
    })
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn etcdctl_defrag_cluster_defragments_every_member() {
    within(LIMIT, async {
        let cluster = TestCluster::start(3).await;
        for i in 0..20 {
            cluster
                .etcdctl(&["put", "k", &i.to_string()])
                .expect_stdout("OK\n");
        }
        let out = cluster.etcdctl(&["defrag", "--cluster"]);
        out.expect_success();
        let mut lines: Vec<&str> = out.stdout.lines().collect();
        lines.sort();
        let mut want: Vec<String> = cluster
            .endpoints()
            .iter()
            .map(|ep| format!("Finished defragmenting etcd member[{ep}]"))
            .collect();
        want.sort();
        assert_eq!(lines, want, "{out}");
        // The same data on every member afterwards.
        let hashes = cluster.etcdctl(&["endpoint", "hashkv", "--cluster", "-w", "json"]);
        let v: serde_json::Value = serde_json::from_str(&hashes.stdout).unwrap();
        let all: Vec<u64> = v
            .as_array()
            .unwrap()
            .iter()
            .map(|e| e["HashKV"]["hash"].as_u64().unwrap())
            .collect();
        assert_eq!(all.len(), 3, "{hashes}");
        assert!(all.iter().all(|h| *h == all[0]), "{hashes}");
        cluster
            .etcdctl(&["get", "k", "--print-value-only"])
            .expect_stdout("19\n");
    })
    .await
}

/// A defragmentation asked for while a compaction is still removing rows
/// waits for the batch in progress (as etcd's waits for the batch
/// transaction's lock), runs, and the compaction goes on afterwards: both
/// succeed and HashKV at the compaction's revision stays what it was when
/// the compaction began.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_defrag_while_compacting_lets_both_finish() {
    within(LIMIT, async {
        // 10 rows a batch, 50 ms apart: 2,000 rows take 10 s to remove.
        let cluster = TestCluster::start_with_flags(
            1,
            &[
                "--experimental-compaction-batch-limit=10",
                "--experimental-compaction-sleep-interval=50ms",
            ],
        )
        .await;
        let mut c = Client::connect([cluster.endpoint()], None).await.unwrap();
        let mut rev = 0;
        for i in 0..2000 {
            let put = c.put(format!("k{}", i % 10), format!("v{i}"), None);
            rev = put.await.unwrap().header().unwrap().revision();
        }
        c.compact(rev, None).await.unwrap();
        // While rows are still being removed, HashKV already leaves them out.
        let hash = c.hash_kv(rev).await.unwrap().hash();
        let log = std::fs::read_to_string(cluster.member(0).log_path()).unwrap();
        assert!(
            !log.contains("finished scheduled compaction"),
            "the compaction ended before the defragmentation began"
        );
        let out = cluster.etcdctl(&["defrag"]);
        out.expect_stdout(&format!(
            "Finished defragmenting etcd member[{}]\n",
            cluster.endpoint()
        ));
        compaction_finished(&cluster);
        assert_eq!(c.hash_kv(rev).await.unwrap().hash(), hash);
        for k in 0..10 {
            let got = c.get(format!("k{k}"), None).await.unwrap();
            assert_eq!(got.kvs()[0].value(), format!("v{}", 1990 + k).as_bytes());
        }
        let old = c
            .get(
                "k0",
                Some(etcd_client::GetOptions::new().with_revision(rev - 1)),
            )
            .await;
        assert!(
            format!("{old:?}").contains("required revision has been compacted"),
            "{old:?}"
        );
    })
    .await
}

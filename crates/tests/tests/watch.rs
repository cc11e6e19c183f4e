//! Watch, as etcdctl users and client libraries see it: history replay,
//! live events, prev_kv, prefixes, filters, cancel, compaction, and
//! ordered, gap-free, duplicate-free delivery under concurrent writes with a
//! slow watcher.

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use etcd_client::{Client, EventType, GetOptions, WatchFilterType, WatchOptions};
use etcd_rs_tests::bins::etcdctl_bin;
use etcd_rs_tests::{within, TestCluster};

const LIMIT: Duration = Duration::from_secs(120);

/// Runs `etcdctl watch ...` until it printed `lines` lines (or `limit`
/// passed), calling `after_start` once it printed the first line; returns
/// what it printed. The process is killed at the end.
fn etcdctl_watch(
    endpoint: &str,
    args: &[&str],
    lines: usize,
    after_first_line: impl FnOnce(),
) -> Vec<String> {
    let mut child = Command::new(etcdctl_bin())
        .env("ETCDCTL_API", "3")
        .arg(format!("--endpoints={endpoint}"))
        .arg("watch")
        .args(args)
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let stdout = child.stdout.take().unwrap();
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            if tx.send(line).is_err() {
                return;
            }
        }
    });
    let deadline = Instant::now() + Duration::from_secs(20);
    let mut out = Vec::new();
    let mut after = Some(after_first_line);
    while out.len() < lines {
        let left = deadline.saturating_duration_since(Instant::now());
        match rx.recv_timeout(left) {
            Ok(line) => out.push(line),
            Err(_) => break,
        }
        if let Some(f) = after.take() {
            f();
        }
    }
    let _ = child.kill();
    let _ = child.wait();
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn etcdctl_watch_replays_history_then_follows_live_changes() {
    within(LIMIT, async {
        let c = TestCluster::start(1).await;
        for args in [
            &["put", "foo", "1"][..],
            &["put", "foo", "2"],
            &["del", "foo"],
        ] {
            c.etcdctl(args).expect_success();
        }
        let put = || {
            c.etcdctl(&["put", "foo", "3"]).expect_success();
        };
        // History from revision 1 with previous values, then the live put.
        let got = etcdctl_watch(&c.endpoint(), &["foo", "--rev=1", "--prev-kv"], 16, || {
            put();
        });
        let expected = [
            "PUT", "foo", "1", //
            "PUT", "foo", "1", "foo", "2", //
            "DELETE", "foo", "2", "foo", "", //
            "PUT", "foo", "3",
        ];
        assert_eq!(got, expected, "{got:#?}");
    })
    .await
}

#[tokio::test]
async fn etcdctl_watch_of_a_compacted_revision_is_canceled() {
    within(LIMIT, async {
        let c = TestCluster::start(1).await;
        for v in ["1", "2", "3"] {
            c.etcdctl(&["put", "foo", v]).expect_success();
        }
        c.etcdctl(&["compaction", "3"])
            .expect_stdout("compacted revision 3\n");
        let out = c.etcdctl(&["watch", "foo", "--rev=2"]);
        assert_ne!(out.code, 0, "{out}");
        assert!(
            out.stderr.contains(
                "watch was canceled (etcdserver: mvcc: required revision has been compacted)"
            ),
            "{out}"
        );
    })
    .await
}

#[tokio::test]
async fn client_watch_prefix_filters_prev_kv_and_cancel() {
    within(LIMIT, async {
        let c = TestCluster::start(1).await;
        let mut client = Client::connect([c.endpoint()], None).await.unwrap();
        let opts = WatchOptions::new()
            .with_prefix()
            .with_prev_key()
            .with_filters([WatchFilterType::NoPut]);
        let mut stream = client.watch("app/", Some(opts)).await.unwrap();
        let created = stream.message().await.unwrap().unwrap();
        assert!(created.created());
        let id = created.watch_id();
        client.put("app/a", "1", None).await.unwrap();
        client.put("other", "x", None).await.unwrap();
        let del = client.delete("app/a", None).await.unwrap();
        let resp = stream.message().await.unwrap().unwrap();
        assert_eq!(resp.watch_id(), id);
        assert_eq!(
            resp.header().unwrap().revision(),
            del.header().unwrap().revision()
        );
        assert_eq!(resp.events().len(), 1, "puts are filtered out");
        let ev = &resp.events()[0];
        assert_eq!(ev.event_type(), EventType::Delete);
        assert_eq!(ev.kv().unwrap().key(), b"app/a");
        assert_eq!(ev.prev_kv().unwrap().value(), b"1");
        stream.cancel(id).await.unwrap();
        let canceled = stream.message().await.unwrap().unwrap();
        assert!(canceled.canceled());
        assert_eq!(canceled.watch_id(), id);
        // A watch from a compacted revision is canceled with it.
        client
            .compact(del.header().unwrap().revision(), None)
            .await
            .unwrap();
        let mut old = client
            .watch(
                "app/",
                Some(WatchOptions::new().with_prefix().with_start_revision(2)),
            )
            .await
            .unwrap();
        assert!(old.message().await.unwrap().unwrap().created());
        let r = old.message().await.unwrap().unwrap();
        assert!(r.canceled());
        assert_eq!(r.compact_revision(), del.header().unwrap().revision());
    })
    .await
}

/// Writers put to 10 keys concurrently while watchers (one of them slow,
/// so it falls behind and is caught up from the store) each collect every
/// event: all of them see exactly the store's history, in order, each
/// revision's events once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_writes_reach_every_watcher_in_order_without_gaps() {
    within(LIMIT, async {
        let c = TestCluster::start_with_flags(1, &["--log-level", "debug"]).await;
        let mut client = Client::connect([c.endpoint()], None).await.unwrap();
        let start = client
            .get("c/", None)
            .await
            .unwrap()
            .header()
            .unwrap()
            .revision()
            + 1;
        const WRITERS: usize = 4;
        // More events than a stream queues (1024), so the slow one falls behind.
        const PUTS: usize = 400;
        let total = WRITERS * PUTS;
        let (writes_done, done_rx) = tokio::sync::watch::channel(false);
        let mut watchers = Vec::new();
        for w in 0..4 {
            let mut client = client.clone();
            let mut done = done_rx.clone();
            let mut stream = client
                .watch(
                    "c/",
                    Some(WatchOptions::new().with_prefix().with_start_revision(start)),
                )
                .await
                .unwrap();
            watchers.push(tokio::spawn(async move {
                if w == 0 {
                    // A stalled consumer: it reads nothing until all is
                    // written, so its server-side queue fills.
                    done.wait_for(|d| *d).await.unwrap();
                }
                let mut seen = Vec::new();
                while seen.len() < total {
                    let r = stream.message().await.unwrap().expect("stream open");
                    for ev in r.events() {
                        let kv = ev.kv().unwrap();
                        seen.push((kv.mod_revision(), kv.key().to_vec(), kv.value().to_vec()));
                    }
                }
                seen
            }));
        }
        let writers: Vec<_> = (0..WRITERS)
            .map(|w| {
                let mut client = client.clone();
                tokio::spawn(async move {
                    for i in 0..PUTS {
                        client
                            .put(
                                format!("c/{}", (w + i) % 10),
                                format!("{w}-{i}-{:16384}", ""),
                                None,
                            )
                            .await
                            .unwrap();
                    }
                })
            })
            .collect();
        for w in writers {
            w.await.unwrap();
        }
        writes_done.send_replace(true);
        // The store's own history of those keys, from a fresh watch.
        let mut history_stream = client
            .watch(
                "c/",
                Some(WatchOptions::new().with_prefix().with_start_revision(start)),
            )
            .await
            .unwrap();
        let mut history = Vec::new();
        while history.len() < total {
            let r = history_stream.message().await.unwrap().unwrap();
            for ev in r.events() {
                let kv = ev.kv().unwrap();
                history.push((kv.mod_revision(), kv.key().to_vec(), kv.value().to_vec()));
            }
        }
        assert!(
            history.windows(2).all(|p| p[0].0 < p[1].0),
            "one put per revision, increasing"
        );
        let latest = client
            .get("c/", Some(GetOptions::new().with_prefix()))
            .await
            .unwrap();
        let last_rev = latest
            .kvs()
            .iter()
            .map(|kv| kv.mod_revision())
            .max()
            .unwrap();
        assert_eq!(history.last().unwrap().0, last_rev);
        for w in watchers {
            let seen = w.await.unwrap();
            // Compare positions and keys (values are 16 KiB each).
            let brief = |v: &[(i64, Vec<u8>, Vec<u8>)]| -> Vec<(i64, Vec<u8>, usize)> {
                v.iter()
                    .map(|(r, k, val)| (*r, k.clone(), val.len()))
                    .collect()
            };
            assert_eq!(brief(&seen), brief(&history));
            assert!(seen == history, "same positions, different values");
        }
        let log = std::fs::read_to_string(c.member(0).log_path()).unwrap();
        assert!(
            log.contains("a slow watcher fell behind"),
            "the slow watcher never fell behind: the test did not test catching up"
        );
    })
    .await
}

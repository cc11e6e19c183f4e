//! Watch, as etcdctl users and client libraries see it: history replay,
//! live events, prev_kv, prefixes, filters, cancel, compaction, and
//! ordered, gap-free, duplicate-free delivery under concurrent writes with a
//! slow watcher.

use std::time::Duration;

use etcd_client::{Client, EventType, GetOptions, WatchFilterType, WatchOptions};
use etcd_rs_tests::bins::etcdctl_bin;
use etcd_rs_tests::etcdctl::watch_lines;
use etcd_rs_tests::{within, TestCluster};

const LIMIT: Duration = Duration::from_secs(120);

fn etcdctl_watch(
    endpoint: &str,
    args: &[&str],
    lines: usize,
    after_first_line: impl FnOnce(),
) -> Vec<String> {
    watch_lines(&etcdctl_bin(), endpoint, args, lines, after_first_line)
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

/// (etcd-rs's own: it checks our log line, and real etcd replays history in
/// responses larger than this client's 4 MiB receive limit.)
///
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

/// The tutorial's watch: watch a key on one member, put and delete it on
/// another; then the watched member dies and the client resumes on a third
/// with start_revision = last seen + 1 and gets exactly the rest.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn watches_work_on_every_member_and_resume_on_another() {
    within(LIMIT, async {
        let mut c = TestCluster::start(3).await;
        let mut on1 = Client::connect([c.member(1).endpoint()], None)
            .await
            .unwrap();
        let mut on2 = Client::connect([c.member(2).endpoint()], None)
            .await
            .unwrap();
        let mut watch = on1
            .watch("stock", Some(WatchOptions::new().with_prefix()))
            .await
            .unwrap();
        assert!(watch.message().await.unwrap().unwrap().created());
        on2.put("stock1", "1000", None).await.unwrap();
        on2.delete("stock1", None).await.unwrap();
        let mut seen = Vec::new();
        while seen.len() < 2 {
            for ev in watch.message().await.unwrap().unwrap().events() {
                seen.push((ev.event_type(), ev.kv().unwrap().mod_revision()));
            }
        }
        assert_eq!(seen[0].0, EventType::Put);
        assert_eq!(seen[1].0, EventType::Delete);
        let last = seen[1].1;
        // The watched member goes; once the others agree on a leader (a
        // put sent to a dead leader has an unknown outcome), writes go on.
        c.member_mut(1).kill9();
        c.wait_for_leader(&[0, 2]);
        for i in 0..5 {
            on2.put(format!("stock{i}"), format!("{i}"), None)
                .await
                .unwrap();
        }
        let mut on0 = Client::connect([c.member(0).endpoint()], None)
            .await
            .unwrap();
        let opts = WatchOptions::new()
            .with_prefix()
            .with_start_revision(last + 1);
        let mut resumed = on0.watch("stock", Some(opts)).await.unwrap();
        assert!(resumed.message().await.unwrap().unwrap().created());
        let mut rest = Vec::new();
        while rest.len() < 5 {
            for ev in resumed.message().await.unwrap().unwrap().events() {
                rest.push(ev.kv().unwrap().mod_revision());
            }
        }
        assert_eq!(rest, ((last + 1)..=(last + 5)).collect::<Vec<_>>());
    })
    .await
}

/// Progress notifications (`progress_notify`, every
/// `--experimental-watch-progress-notify-interval`) tell an idle watcher the
/// revision it is complete up to; a progress request answers for the whole
/// stream with watch id -1.
#[tokio::test]
async fn progress_notifications_and_requests_carry_the_revision() {
    within(LIMIT, async {
        let flags = ["--experimental-watch-progress-notify-interval", "300ms"];
        let c = TestCluster::start_with_flags(1, &flags).await;
        let mut client = Client::connect([c.endpoint()], None).await.unwrap();
        let mut stream = client
            .watch("p", Some(WatchOptions::new().with_progress_notify()))
            .await
            .unwrap();
        let id = stream.message().await.unwrap().unwrap().watch_id();
        let rev = client
            .put("p", "1", None)
            .await
            .unwrap()
            .header()
            .unwrap()
            .revision();
        let r = stream.message().await.unwrap().unwrap();
        assert_eq!(r.events().len(), 1);
        // Idle now: the next response is a progress notification.
        let p = stream.message().await.unwrap().unwrap();
        assert!(p.events().is_empty(), "{p:?}");
        assert_eq!((p.watch_id(), p.header().unwrap().revision()), (id, rev));
        // A write elsewhere moves the store, not this watch's events.
        let other = client
            .put("q", "1", None)
            .await
            .unwrap()
            .header()
            .unwrap()
            .revision();
        stream.request_progress().await.unwrap();
        loop {
            let r = stream.message().await.unwrap().unwrap();
            if r.watch_id() == -1 {
                assert_eq!(r.header().unwrap().revision(), other);
                break;
            }
            assert!(r.events().is_empty(), "only progress may come: {r:?}");
        }
    })
    .await
}

/// Under a stream of writes, a watcher's progress notifications (asked
/// for every few milliseconds, and sent every 50 ms) never claim a
/// revision below an event it already got, nor come before an event at or
/// below their revision: the answer is queued in order with the events.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn progress_notifications_stay_in_order_with_events_under_writes() {
    within(LIMIT, async {
        let flags = ["--experimental-watch-progress-notify-interval", "50ms"];
        let c = TestCluster::start_with_flags(1, &flags).await;
        let mut client = Client::connect([c.endpoint()], None).await.unwrap();
        let mut stream = client
            .watch("p", Some(WatchOptions::new().with_progress_notify()))
            .await
            .unwrap();
        stream.message().await.unwrap().unwrap();
        let writer = {
            let mut client = client.clone();
            tokio::spawn(async move {
                for i in 0..3000 {
                    client.put("p", i.to_string(), None).await.unwrap();
                }
            })
        };
        let (mut last_event, mut last_progress, mut events) = (0, 0, 0);
        let mut ask = tokio::time::interval(Duration::from_millis(3));
        while events < 3000 {
            tokio::select! {
                _ = ask.tick() => stream.request_progress().await.unwrap(),
                r = stream.message() => {
                    let r = r.unwrap().unwrap();
                    let rev = r.header().unwrap().revision();
                    if r.events().is_empty() {
                        assert!(
                            rev >= last_event && rev >= last_progress,
                            "progress at {rev} after an event at {last_event}, progress at {last_progress}"
                        );
                        last_progress = rev;
                    }
                    for e in r.events() {
                        let at = e.kv().unwrap().mod_revision();
                        assert!(at > last_progress, "an event at {at} after progress at {last_progress}");
                        last_event = at;
                        events += 1;
                    }
                }
            }
        }
        writer.await.unwrap();
    })
    .await
}

/// A watcher that asked for fragments gets a response larger than
/// `--max-request-bytes` + 512 KiB (here, replayed history) in several
/// responses, all but the last marked `fragment`, together all the events.
#[tokio::test]
async fn large_responses_are_fragmented_for_watchers_that_ask() {
    within(LIMIT, async {
        let c = TestCluster::start_with_flags(1, &["--max-request-bytes", "4096"]).await;
        let mut client = Client::connect([c.endpoint()], None).await.unwrap();
        // etcd fragments past --max-request-bytes + 512 KiB: 200 puts of
        // 3,000 bytes, replayed to one watch, make a ~600 KiB batch.
        let mut rev = 0;
        for i in 0..200 {
            let r = client
                .put(format!("f/{i:03}"), vec![b'x'; 3000], None)
                .await
                .unwrap();
            rev = r.header().unwrap().revision();
        }
        // etcd-client does not expose `fragment`: use the generated client.
        use api::etcdserverpb::watch_client::WatchClient;
        use api::etcdserverpb::watch_request::RequestUnion;
        use api::etcdserverpb::{WatchCreateRequest, WatchRequest};
        let mut raw = WatchClient::connect(c.endpoint()).await.unwrap();
        let (tx, rx) = tokio::sync::mpsc::channel(4);
        tx.send(WatchRequest {
            request_union: Some(RequestUnion::CreateRequest(WatchCreateRequest {
                key: b"f/".to_vec(),
                range_end: b"f0".to_vec(),
                start_revision: rev - 199,
                fragment: true,
                ..Default::default()
            })),
        })
        .await
        .unwrap();
        let mut stream = raw
            .watch(tokio_stream::wrappers::ReceiverStream::new(rx))
            .await
            .unwrap()
            .into_inner();
        assert!(stream.message().await.unwrap().unwrap().created);
        let mut keys = Vec::new();
        let mut parts = 0;
        loop {
            let r = stream.message().await.unwrap().unwrap();
            parts += 1;
            assert_eq!(r.header.unwrap().revision, rev);
            keys.extend(
                r.events
                    .iter()
                    .map(|e| String::from_utf8(e.kv.as_ref().unwrap().key.clone()).unwrap()),
            );
            if !r.fragment {
                break;
            }
        }
        drop(tx);
        assert!(
            parts > 1,
            "600 KiB of events over a 516 KiB limit come in fragments; got {parts} response(s)"
        );
        assert_eq!(
            keys,
            (0..200).map(|i| format!("f/{i:03}")).collect::<Vec<_>>()
        );
    })
    .await
}

/// The tutorial with the Go etcdctl: `watch --prefix` on one member sees
/// a put and a delete made on another (from the revision before them, so
/// the order of watch and writes does not matter; live delivery across
/// members is checked with the client crate above).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn etcdctl_watch_on_one_member_sees_writes_on_another() {
    within(LIMIT, async {
        let c = TestCluster::start(3).await;
        let on1 = |args: &[&str]| {
            etcd_rs_tests::etcdctl::etcdctl(&[c.member(1).endpoint()], args, None).expect_success();
        };
        let json = c
            .etcdctl(&["get", "stock", "--prefix", "-w", "json"])
            .json();
        let from = format!("--rev={}", json["header"]["revision"].as_i64().unwrap() + 1);
        on1(&["put", "stock1", "1000"]);
        on1(&["del", "stock1"]);
        let got = etcdctl_watch(
            &c.member(0).endpoint(),
            &["stock", "--prefix", &from],
            6,
            || {},
        );
        assert_eq!(
            got,
            ["PUT", "stock1", "1000", "DELETE", "stock1", ""],
            "{got:#?}"
        );
    })
    .await
}

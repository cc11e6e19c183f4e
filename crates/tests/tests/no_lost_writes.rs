//! No acknowledged write is lost: under a steady put load from several
//! clients, the leader is killed with SIGKILL and restarted, three times.
//! Afterwards every acknowledged put is on every member with the revision
//! it was acknowledged at, and no client ever saw revisions go backwards.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use etcd_client::{Client, GetOptions};
use etcd_rs_tests::{within, TestCluster};

const LIMIT: Duration = Duration::from_secs(240);
const WRITERS: usize = 4;

/// Puts `w/<id>/<n>` for n = 0, 1, ... until `stop`; returns what was
/// acknowledged, with its revision. Panics if revisions go backwards.
async fn writer(
    id: usize,
    endpoints: Vec<String>,
    stop: Arc<AtomicBool>,
    acks: Arc<AtomicUsize>,
) -> BTreeMap<String, i64> {
    let mut acked = BTreeMap::new();
    let mut last_rev = 0;
    let mut n = 0u64;
    // Each writer talks to one member at a time and moves on when it fails.
    let mut target = id % endpoints.len();
    let mut client = None;
    while !stop.load(Ordering::Relaxed) {
        if client.is_none() {
            let connect = Client::connect([endpoints[target].clone()], None);
            client = tokio::time::timeout(Duration::from_secs(2), connect)
                .await
                .ok()
                .and_then(Result::ok);
            if client.is_none() {
                target = (target + 1) % endpoints.len();
                continue;
            }
        }
        let key = format!("w/{id}/{n:06}");
        n += 1;
        let put = client
            .as_mut()
            .unwrap()
            .put(key.as_str(), key.as_str(), None);
        match tokio::time::timeout(Duration::from_secs(3), put).await {
            Ok(Ok(resp)) => {
                let rev = resp.header().unwrap().revision();
                assert!(
                    rev > last_rev,
                    "writer {id}: revision went from {last_rev} to {rev}"
                );
                last_rev = rev;
                acked.insert(key, rev);
                acks.fetch_add(1, Ordering::Relaxed);
            }
            // Not acknowledged: it may or may not have happened.
            _ => {
                client = None;
                target = (target + 1) % endpoints.len();
            }
        }
    }
    acked
}

// Multi-threaded: the writers keep writing while the test blocks on etcdctl.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn acknowledged_puts_survive_leader_kills() {
    within(LIMIT, async {
        let mut c = TestCluster::start(3).await;
        let stop = Arc::new(AtomicBool::new(false));
        let acks = Arc::new(AtomicUsize::new(0));
        let writers: Vec<_> = (0..WRITERS)
            .map(|id| tokio::spawn(writer(id, c.endpoints(), stop.clone(), acks.clone())))
            .collect();
        // Each phase lets the writers get 50 more puts acknowledged first.
        let more_acks = |from: usize| {
            let deadline = Instant::now() + Duration::from_secs(60);
            while acks.load(Ordering::Relaxed) < from + 50 {
                assert!(Instant::now() < deadline, "writers made no progress");
                std::thread::sleep(Duration::from_millis(20));
            }
        };
        for _ in 0..3 {
            let seen = acks.load(Ordering::Relaxed);
            tokio::task::block_in_place(|| more_acks(seen));
            let l = tokio::task::block_in_place(|| c.wait_for_leader(&[0, 1, 2]).0);
            c.member_mut(l).kill9();
            let alive: Vec<usize> = (0..3).filter(|i| *i != l).collect();
            tokio::task::block_in_place(|| c.wait_for_leader(&alive));
            c.member_mut(l).restart().await;
        }
        let seen = acks.load(Ordering::Relaxed);
        tokio::task::block_in_place(|| more_acks(seen));
        stop.store(true, Ordering::Relaxed);
        let mut acked = BTreeMap::new();
        for w in writers {
            acked.extend(w.await.unwrap());
        }
        assert!(
            acked.len() > 100,
            "the load was too light to mean anything: {}",
            acked.len()
        );
        for m in c.members() {
            let mut client = Client::connect([m.endpoint()], None).await.unwrap();
            let resp = client
                .get("w/", Some(GetOptions::new().with_prefix()))
                .await
                .unwrap();
            let stored: BTreeMap<String, i64> = resp
                .kvs()
                .iter()
                .map(|kv| (kv.key_str().unwrap().to_string(), kv.mod_revision()))
                .collect();
            for (key, rev) in &acked {
                assert_eq!(
                    stored.get(key),
                    Some(rev),
                    "member {}: acknowledged {key} at {rev}",
                    m.name()
                );
            }
        }
    })
    .await
}

//! Locks (v3lock and clientv3's Mutex recipe) on a 3-member etcd-rs
//! cluster: mutual exclusion among every kind of client there is, a dead
//! holder losing the lock within its TTL, and nothing granted twice across
//! leader changes.
//!
//! Each hold is recorded as the revision the lock was taken at (the Lock
//! answer's header, etcdctl's `ETCD_LOCK_REV`) and the revision of the
//! holder's write; holds are checked disjoint in that order.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use api::etcdserverpb::range_request::{SortOrder, SortTarget};
use api::etcdserverpb::{DeleteRangeRequest, PutRequest, RangeRequest};
use api::v3lockpb::{LockRequest, UnlockRequest};
use client::concurrency::{Mutex, Session};
use etcd_rs_tests::bins::{etcdctl_bin, example_bin, our_etcdctl_bin};
use etcd_rs_tests::etcdctl::{etcdctl_within, Running};
use etcd_rs_tests::{within, TestCluster};

const LIMIT: Duration = Duration::from_secs(300);
const COUNTER: &[u8] = b"counter";

/// One hold: the revision the lock was taken at, that of the holder's
/// write, and who held it.
#[derive(Debug, Clone)]
struct Hold {
    from: i64,
    to: i64,
    who: String,
}

/// Asserts no two holds overlap: ordered by the revision each was taken
/// at, each ends before the next begins.
fn assert_disjoint(mut holds: Vec<Hold>) {
    holds.sort_by_key(|h| h.from);
    for h in &holds {
        assert!(h.from <= h.to, "a hold ends before it begins: {h:?}");
    }
    for w in holds.windows(2) {
        assert!(
            w[0].to < w[1].from,
            "{} and {} held the lock at once: revisions {}..{} and {}..{}",
            w[0].who,
            w[1].who,
            w[0].from,
            w[0].to,
            w[1].from,
            w[1].to
        );
    }
}

async fn connect(endpoint: &str) -> client::Client {
    client::Client::connect(&[endpoint.to_string()], &Default::default())
        .await
        .expect("connecting our client")
}

/// Reads the counter and writes it plus one; answers the write's revision.
async fn increment(c: &client::Client) -> i64 {
    let got = c
        .kv()
        .range(RangeRequest {
            key: COUNTER.to_vec(),
            ..Default::default()
        })
        .await
        .expect("reading the counter")
        .into_inner();
    let v: i64 = std::str::from_utf8(&got.kvs[0].value)
        .unwrap()
        .parse()
        .unwrap();
    let put = c
        .kv()
        .put(PutRequest {
            key: COUNTER.to_vec(),
            value: (v + 1).to_string().into_bytes(),
            ..Default::default()
        })
        .await
        .expect("writing the counter")
        .into_inner();
    put.header.unwrap().revision
}

/// The shell command an etcdctl lock runs: increments the counter with
/// our etcdctl ($1, on endpoint $2) and appends "lock-rev write-rev" to $3.
const SCRIPT: &str = r#"set -e
v=$("$1" --endpoints="$2" get counter --print-value-only)
r=$("$1" --endpoints="$2" put counter $((v+1)) -w json | sed -n 's/.*"revision":\([0-9]*\).*/\1/p')
echo "$ETCD_LOCK_REV $r" >> "$3""#;

/// `n` increments, each by `etcdctl lock L -- sh -c SCRIPT` run with `bin`.
fn etcdctl_worker(bin: PathBuf, endpoint: String, n: usize, who: &str) -> Vec<Hold> {
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("holds");
    let ctl = our_etcdctl_bin();
    for _ in 0..n {
        let out = etcdctl_within(
            &bin,
            std::slice::from_ref(&endpoint),
            &[
                "lock",
                "--ttl",
                "10",
                "L",
                "--",
                "sh",
                "-c",
                SCRIPT,
                "sh",
                ctl.to_str().unwrap(),
                &endpoint,
                log.to_str().unwrap(),
            ],
            None,
            Duration::from_secs(120),
        );
        assert_eq!(out.code, 0, "{out}");
    }
    let text = std::fs::read_to_string(&log).unwrap();
    text.lines()
        .map(|l| {
            let (from, to) = l.split_once(' ').expect("two revisions");
            Hold {
                from: from.parse().unwrap(),
                to: to.parse().unwrap(),
                who: who.to_string(),
            }
        })
        .collect()
}

/// `n` increments under the Lock RPC, through our client.
async fn rpc_worker(endpoint: String, n: usize, who: String) -> Vec<Hold> {
    let c = connect(&endpoint).await;
    let session = Session::new(&c, 10).await.unwrap();
    let mut holds = Vec::new();
    for _ in 0..n {
        let locked = c
            .lock()
            .lock(LockRequest {
                name: b"L".to_vec(),
                lease: session.lease(),
            })
            .await
            .expect("Lock")
            .into_inner();
        let to = increment(&c).await;
        holds.push(Hold {
            from: locked.header.unwrap().revision,
            to,
            who: who.clone(),
        });
        c.lock()
            .unlock(UnlockRequest { key: locked.key })
            .await
            .expect("Unlock");
    }
    holds
}

/// `n` increments under the `etcd-client` crate's lock (the Lock RPC),
/// its lease kept alive by the crate.
async fn etcd_client_worker(endpoint: String, n: usize, who: String) -> Vec<Hold> {
    let mut c = etcd_client::Client::connect([endpoint], None)
        .await
        .unwrap();
    let lease = c.lease_grant(10, None).await.unwrap().id();
    let (mut keeper, mut replies) = c.lease_keep_alive(lease).await.unwrap();
    let renewals = tokio::spawn(async move {
        loop {
            if keeper.keep_alive().await.is_err() || replies.message().await.is_err() {
                return;
            }
            tokio::time::sleep(Duration::from_secs(2)).await;
        }
    });
    let mut holds = Vec::new();
    for _ in 0..n {
        let opts = etcd_client::LockOptions::new().with_lease(lease);
        let locked = c.lock("L", Some(opts)).await.expect("etcd-client lock");
        let got = c.get(COUNTER, None).await.unwrap();
        let v: i64 = got.kvs()[0].value_str().unwrap().parse().unwrap();
        let put = c.put(COUNTER, (v + 1).to_string(), None).await.unwrap();
        holds.push(Hold {
            from: locked.header().unwrap().revision(),
            to: put.header().unwrap().revision(),
            who: who.clone(),
        });
        c.unlock(locked.key()).await.expect("etcd-client unlock");
    }
    renewals.abort();
    holds
}

/// `n` increments under our client's Mutex (the KV recipe).
async fn mutex_worker(endpoint: String, n: usize, who: String) -> Vec<Hold> {
    let c = connect(&endpoint).await;
    let session = Session::new(&c, 10).await.unwrap();
    let m = Mutex::new(&c, b"L", session.lease());
    let mut holds = Vec::new();
    for _ in 0..n {
        let header = m.lock().await.expect("Mutex::lock");
        let to = increment(&c).await;
        holds.push(Hold {
            from: header.revision,
            to,
            who: who.clone(),
        });
        m.unlock().await.expect("Mutex::unlock");
    }
    holds
}

/// The keys under `prefix`, oldest first (by create revision).
async fn keys_under(c: &client::Client, prefix: &[u8]) -> Vec<Vec<u8>> {
    c.kv()
        .range(RangeRequest {
            key: prefix.to_vec(),
            range_end: client::prefix_end(prefix),
            sort_target: SortTarget::Create as i32,
            sort_order: SortOrder::Ascend as i32,
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner()
        .kvs
        .into_iter()
        .map(|kv| kv.key)
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn eight_clients_of_every_kind_exclude_each_other() {
    within(LIMIT, async {
        let cluster = TestCluster::start(3).await;
        let eps = cluster.endpoints();
        let c = connect(&eps[0]).await;
        c.kv()
            .put(PutRequest {
                key: COUNTER.to_vec(),
                value: b"0".to_vec(),
                ..Default::default()
            })
            .await
            .unwrap();
        const N: usize = 50;
        let ep = |i: usize| eps[i % eps.len()].clone();
        let mut tasks = Vec::new();
        for (i, bin) in [our_etcdctl_bin(), our_etcdctl_bin(), etcdctl_bin()]
            .into_iter()
            .enumerate()
        {
            let e = ep(i);
            let who = format!("etcdctl {}", bin.display());
            tasks.push(tokio::task::spawn_blocking(move || {
                etcdctl_worker(bin, e, N, &who)
            }));
        }
        tasks.push(tokio::spawn(rpc_worker(ep(3), N, "Lock RPC 1".into())));
        tasks.push(tokio::spawn(rpc_worker(ep(4), N, "Lock RPC 2".into())));
        tasks.push(tokio::spawn(etcd_client_worker(
            ep(5),
            N,
            "etcd-client 1".into(),
        )));
        tasks.push(tokio::spawn(etcd_client_worker(
            ep(6),
            N,
            "etcd-client 2".into(),
        )));
        tasks.push(tokio::spawn(mutex_worker(ep(7), N, "Mutex".into())));
        let mut holds = Vec::new();
        for t in tasks {
            holds.extend(t.await.expect("a worker failed"));
        }
        assert_eq!(holds.len(), 8 * N);
        let got = c
            .kv()
            .range(RangeRequest {
                key: COUNTER.to_vec(),
                ..Default::default()
            })
            .await
            .unwrap()
            .into_inner();
        assert_eq!(
            got.kvs[0].value,
            (8 * N).to_string().into_bytes(),
            "every increment counted once"
        );
        assert_disjoint(holds);
        assert!(
            keys_under(&c, b"L/").await.is_empty(),
            "every holder removed its key"
        );
    })
    .await
}

/// Waits (bounded) until `n` keys are under `prefix`.
async fn wait_for_keys(c: &client::Client, prefix: &[u8], n: usize) -> Vec<Vec<u8>> {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let keys = keys_under(c, prefix).await;
        if keys.len() == n {
            return keys;
        }
        assert!(
            Instant::now() < deadline,
            "expected {n} keys under {prefix:?}, have {keys:?}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Moves the leadership of `cluster` to member `to`.
fn move_leader(cluster: &TestCluster, to: usize) {
    let (leader, _) = cluster.wait_for_leader(&[0, 1, 2]);
    if leader == to {
        return;
    }
    let id = cluster.status(to).expect("member status").0;
    cluster
        .etcdctl_on(leader, &["move-leader", &format!("{id:x}")])
        .expect_success();
    assert_eq!(cluster.wait_for_leader(&[0, 1, 2]).0, to);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_dead_holder_loses_the_lock_and_leader_changes_grant_nothing_twice() {
    within(LIMIT, async {
        let mut cluster = TestCluster::start(3).await;
        let eps = cluster.endpoints();
        let c1 = connect(&eps[1]).await;

        // A holder killed with SIGKILL: its session's lease (TTL 3 s)
        // expires and the waiter gets the lock within TTL plus one
        // election timeout (1 s, the default).
        let holder = Running::start(
            &our_etcdctl_bin(),
            std::slice::from_ref(&eps[0]),
            &["lock", "--ttl", "3", "D"],
        );
        let held = holder
            .next_line(Duration::from_secs(20))
            .expect("the holder prints its key");
        assert!(held.starts_with("D/"), "{held}");
        let session = Session::new(&c1, 10).await.unwrap();
        let lease = session.lease();
        let waiter = {
            let c = c1.clone();
            tokio::spawn(async move {
                let r = c
                    .lock()
                    .lock(LockRequest {
                        name: b"D".to_vec(),
                        lease,
                    })
                    .await;
                (r, Instant::now())
            })
        };
        wait_for_keys(&c1, b"D/", 2).await;
        assert!(!waiter.is_finished(), "granted while the holder lives");
        holder.signal("KILL");
        let killed = Instant::now();
        let (locked, at) = waiter.await.unwrap();
        let locked = locked.expect("the waiter's Lock").into_inner();
        let waited = at.duration_since(killed);
        assert!(
            waited < Duration::from_secs(3 + 1),
            "the lock passed {waited:?} after its holder died"
        );
        let rev = locked.header.unwrap().revision;
        let then = c1
            .kv()
            .range(RangeRequest {
                key: b"D/".to_vec(),
                range_end: client::prefix_end(b"D/"),
                revision: rev,
                ..Default::default()
            })
            .await
            .unwrap()
            .into_inner();
        let keys: Vec<_> = then.kvs.iter().map(|kv| kv.key.clone()).collect();
        assert_eq!(keys, vec![locked.key.clone()], "only the waiter at {rev}");
        drop(holder);

        // Leader changes while a lock is held and two clients wait:
        // nothing is granted until it is released, then in order.
        move_leader(&cluster, 0);
        let a = c1
            .lock()
            .lock(LockRequest {
                name: b"M".to_vec(),
                lease,
            })
            .await
            .unwrap()
            .into_inner();
        let c2 = connect(&eps[2]).await;
        let session_b = Session::new(&c2, 10).await.unwrap();
        let b = {
            let c = c2.clone();
            let lease = session_b.lease();
            tokio::spawn(async move {
                let m = Mutex::new(&c, b"M", lease);
                let header = m.lock().await.expect("b's lock");
                (m.key().to_vec(), header.revision)
            })
        };
        wait_for_keys(&c1, b"M/", 2).await;
        let mut etcd_client = etcd_client::Client::connect([eps[1].clone()], None)
            .await
            .unwrap();
        let lease_c = etcd_client.lease_grant(60, None).await.unwrap().id();
        let c = tokio::spawn(async move {
            let opts = etcd_client::LockOptions::new().with_lease(lease_c);
            let r = etcd_client.lock("M", Some(opts)).await.expect("c's lock");
            (
                r.key().to_vec(),
                r.header().unwrap().revision(),
                etcd_client,
            )
        });
        wait_for_keys(&c1, b"M/", 3).await;

        cluster.member_mut(0).kill9();
        cluster.wait_for_leader(&[1, 2]);
        let keys = wait_for_keys(&c1, b"M/", 3).await;
        assert_eq!(keys[0], a.key, "a still holds");
        assert!(
            !b.is_finished() && !c.is_finished(),
            "granted across a leader change"
        );
        cluster.member_mut(0).restart().await;
        move_leader(&cluster, 0);
        assert!(!b.is_finished() && !c.is_finished());

        let released = c1
            .lock()
            .unlock(UnlockRequest { key: a.key.clone() })
            .await
            .unwrap()
            .into_inner()
            .header
            .unwrap()
            .revision;
        let (b_key, b_rev) = b.await.unwrap();
        assert!(b_rev >= released, "b at {b_rev}, a released at {released}");
        wait_for_keys(&c1, b"M/", 2).await;
        assert!(!c.is_finished(), "c granted while b holds");
        let released = c2
            .kv()
            .delete_range(DeleteRangeRequest {
                key: b_key,
                ..Default::default()
            })
            .await
            .unwrap()
            .into_inner()
            .header
            .unwrap()
            .revision;
        let (c_key, c_rev, mut etcd_client) = c.await.unwrap();
        assert!(c_rev >= released, "c at {c_rev}, b released at {released}");
        etcd_client.unlock(c_key).await.unwrap();
        assert!(keys_under(&c1, b"M/").await.is_empty());
    })
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_fencing_example_refuses_the_paused_holder() {
    within(LIMIT, async {
        let cluster = TestCluster::start(1).await;
        let mut cmd = std::process::Command::new(example_bin("fencing"));
        cmd.arg(format!("--endpoints={}", cluster.endpoint()));
        let out = tokio::task::spawn_blocking(move || {
            etcd_rs_tests::process::run(cmd, None, Duration::from_secs(60))
        })
        .await
        .unwrap();
        assert_eq!(out.code, 0, "{out}");
        let lines: Vec<&str> = out.stdout.lines().collect();
        let revision = |line: &str| -> i64 {
            let tail = line.split(" at revision ").nth(1).expect("a revision");
            tail.split(' ').next().unwrap().parse().unwrap()
        };
        let (a, b) = (revision(lines[0]), revision(lines[4]));
        assert!(a < b, "B's lock is later than A's: {out}");
        assert_eq!(lines[1], "A writes to etcd: true", "{out}");
        assert_eq!(lines[5], "B writes to etcd: true", "{out}");
        assert_eq!(lines[7], "A, resumed, writes to etcd: false", "{out}");
        assert_eq!(
            lines[8],
            format!(
                "A, resumed, writes to the external store: refused, token {a} is older than {b}"
            )
        );
        let c = connect(&cluster.endpoint()).await;
        let got = c
            .kv()
            .range(RangeRequest {
                key: b"fence-demo-resource".to_vec(),
                ..Default::default()
            })
            .await
            .unwrap()
            .into_inner();
        assert_eq!(got.kvs[0].value, b"B", "etcd kept B's write");
    })
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_caller_that_gives_up_waiting_leaves_no_key() {
    within(LIMIT, async {
        let cluster = TestCluster::start(1).await;
        let c = connect(&cluster.endpoint()).await;
        let session = Session::new(&c, 30).await.unwrap();
        let held = c
            .lock()
            .lock(LockRequest {
                name: b"G".to_vec(),
                lease: session.lease(),
            })
            .await
            .unwrap()
            .into_inner();
        // A Lock and a Campaign that wait, then are given up (their gRPC
        // calls cancelled when the client drops them).
        let waiting = Session::new(&c, 30).await.unwrap();
        let lease = waiting.lease();
        let lock = {
            let c = c.clone();
            tokio::spawn(async move {
                let r = LockRequest {
                    name: b"G".to_vec(),
                    lease,
                };
                c.lock().lock(r).await
            })
        };
        wait_for_keys(&c, b"G/", 2).await;
        lock.abort();
        let left = wait_for_keys(&c, b"G/", 1).await;
        assert_eq!(left, vec![held.key.clone()], "the waiter's key is gone");

        let leader = api::v3electionpb::CampaignRequest {
            name: b"V".to_vec(),
            lease: session.lease(),
            value: b"first".to_vec(),
        };
        c.election().campaign(leader).await.unwrap();
        let campaign = {
            let c = c.clone();
            tokio::spawn(async move {
                let r = api::v3electionpb::CampaignRequest {
                    name: b"V".to_vec(),
                    lease,
                    value: b"second".to_vec(),
                };
                c.election().campaign(r).await
            })
        };
        wait_for_keys(&c, b"V/", 2).await;
        campaign.abort();
        let left = wait_for_keys(&c, b"V/", 1).await;
        assert_eq!(left.len(), 1, "the candidate's key is gone");
        assert!(left[0].ends_with(format!("{:x}", session.lease()).as_bytes()));
    })
    .await
}

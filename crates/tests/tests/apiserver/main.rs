//! kube-apiserver's use of etcd, emulated against 3 members while one
//! member at a time is killed and restarted and the leader is moved
//! (issue 18). The call patterns are those of the apiserver's etcd3
//! storage layer and watch cache:
//!
//! - writers (`writers.rs`) create with a Txn comparing
//!   `ModRevision(key) = 0`, update and delete comparing the
//!   `ModRevision` they last saw (some on purpose with a stale one, the
//!   conflict path answering the current object from the Txn's else
//!   branch), and write events attached to leases reused for a while;
//! - the compactor runs the Txn on `compact_rev_key` (a `Version`
//!   compare) and then compacts at the revision of its previous round;
//! - the watch cache (`cache.rs`) lists the prefix page by page at one
//!   revision, watches from the revision after it with `prev_kv` and
//!   `progress_notify` on members that require a leader, resumes where
//!   it stopped when a stream breaks (or after it stalled until the
//!   compactor passed its revision), and relists when compacted;
//! - the consistent reader asks the current revision (a `count_only`
//!   range over the prefix), waits until the cache reaches it while
//!   sending `RequestProgress` every 100 ms, and compares the cache with
//!   a paginated list of the members at the cache's revision.
//!
//! Checked against a model: every write a client was told succeeded is
//! an event of the watch at the revision it was acknowledged with, every
//! event is a write some client attempted or a lease expiry, the events
//! come in revision order without duplicates, each `prev_kv` is the
//! cache's previous object, progress revisions never go backwards and
//! never overtake unsent events, and every list equals the cache.

mod cache;
mod writers;

use std::collections::{BTreeMap, HashSet};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use etcd_client::{Client, ConnectOptions, GetOptions, KeyValue};
use etcd_rs_tests::{within, TestCluster};
use tokio::sync::{mpsc, watch, Notify};

const LIMIT: Duration = Duration::from_secs(240);
/// The prefix the cache follows (the apiserver's `--etcd-prefix`).
pub const PREFIX: &str = "/registry/";
/// One past every key under [`PREFIX`].
pub const PREFIX_END: &str = "/registry0";
/// The bound on one call; a call without an answer by then has an
/// unknown outcome.
pub const OP_TIMEOUT: Duration = Duration::from_secs(3);
/// How long a consistent read may wait for the cache (the apiserver
/// gives up after 3 s and reads etcd; here the wait spans failovers).
const WAIT_LIMIT: Duration = Duration::from_secs(20);
/// How long, once writes stop, event keys may take to expire.
const EXPIRY_LIMIT: Duration = Duration::from_secs(40);

/// A key.
pub type Key = Vec<u8>;
/// A write: the key and the value put, or `None` for a delete.
pub type Write = (Key, Option<Vec<u8>>);

/// An object as the cache and the lists hold it.
#[derive(Clone, Debug, PartialEq)]
pub struct Kv {
    pub value: Vec<u8>,
    pub create_revision: i64,
    pub mod_revision: i64,
    pub version: i64,
    pub lease: i64,
}

impl From<&KeyValue> for Kv {
    fn from(kv: &KeyValue) -> Kv {
        Kv {
            value: kv.value().to_vec(),
            create_revision: kv.create_revision(),
            mod_revision: kv.mod_revision(),
            version: kv.version(),
            lease: kv.lease(),
        }
    }
}

/// The objects under the prefix at one revision.
#[derive(Clone, Debug, Default)]
pub struct Snapshot {
    pub revision: i64,
    pub kvs: BTreeMap<Key, Kv>,
}

/// What the clients know, shared by the tasks (never held across an
/// `.await`).
#[derive(Default)]
pub struct Ledger {
    /// Acknowledged writes by the revision they were acknowledged with.
    pub acked: BTreeMap<i64, Write>,
    /// Writes whose outcome is unknown (a timeout, a broken connection).
    pub maybe: HashSet<Write>,
    /// Keys written with a lease: their deletes may be expiries.
    pub leased: HashSet<Key>,
    /// Conflicts provoked on purpose and answered as expected.
    pub conflicts: usize,
    /// Compactions done by the compactor.
    pub compactions: usize,
    /// The highest revision the compactor has compacted.
    pub compacted: i64,
    /// Consistent reads compared with a list.
    pub reads: usize,
    /// What broke a guarantee.
    pub broken: Vec<String>,
}

impl Ledger {
    /// Records an acknowledged write; two writes acknowledged with one
    /// revision break the model.
    pub fn ack(&mut self, revision: i64, write: Write) {
        if let Some(other) = self.acked.insert(revision, write.clone()) {
            self.broken.push(format!(
                "two writes acknowledged at revision {revision}: {} and {}",
                shown(&other),
                shown(&write)
            ));
        }
    }
}

/// A write as text, for reports.
pub fn shown(w: &Write) -> String {
    let key = String::from_utf8_lossy(&w.0);
    match &w.1 {
        Some(v) => format!("put {key}={}", String::from_utf8_lossy(v)),
        None => format!("delete {key}"),
    }
}

pub type Shared = Arc<Mutex<Ledger>>;

/// One client per member, handed out in turn so that successive calls
/// go to different members (the apiserver's clients balance too).
pub struct Pool {
    clients: Vec<Client>,
    next: AtomicUsize,
}

impl Pool {
    /// Connects to every endpoint; `require_leader` sets clientv3's
    /// `WithRequireLeader`, as the apiserver does for its watches.
    async fn connect(endpoints: &[String], require_leader: bool) -> Pool {
        let mut clients = Vec::new();
        for ep in endpoints {
            let opts = ConnectOptions::new()
                .with_connect_timeout(Duration::from_secs(1))
                .with_timeout(OP_TIMEOUT)
                .with_require_leader(require_leader);
            let client = Client::connect([ep.as_str()], Some(opts))
                .await
                .expect("connects");
            clients.push(client);
        }
        Pool {
            clients,
            next: AtomicUsize::new(0),
        }
    }

    /// The next member's client.
    pub fn pick(&self) -> Client {
        self.pick_indexed().1
    }

    /// The next member's index and client.
    pub fn pick_indexed(&self) -> (usize, Client) {
        let i = self.next.fetch_add(1, Ordering::Relaxed) % self.clients.len();
        (i, self.clients[i].clone())
    }

    /// Member `i`'s client.
    fn member(&self, i: usize) -> Client {
        self.clients[i].clone()
    }
}

/// A call bounded by [`OP_TIMEOUT`]; an error as text.
pub async fn call<T>(
    fut: impl std::future::Future<Output = Result<T, etcd_client::Error>>,
) -> Result<T, String> {
    match tokio::time::timeout(OP_TIMEOUT, fut).await {
        Ok(Ok(v)) => Ok(v),
        Ok(Err(e)) => Err(e.to_string()),
        Err(_) => Err("timed out".to_string()),
    }
}

/// A small deterministic generator (xorshift64), so a failure replays
/// the same choices.
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Rng {
        Rng(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1)
    }

    /// A number in `0..n`.
    pub fn below(&mut self, n: u64) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0 % n
    }
}

/// The prefix listed page by page (`limit` [`cache::PAGE`]): the first
/// page at `at` (or the current revision when `None`), the others at the
/// first page's revision, each from the key after the last one seen, as
/// the apiserver's paginated list; the first page's `count` must be the
/// number of keys listed. Error: a call's error.
pub async fn list(pool: &Pool, at: Option<i64>) -> Result<Snapshot, String> {
    let mut snap = Snapshot::default();
    let mut start = PREFIX.as_bytes().to_vec();
    let mut count = None;
    loop {
        let mut opts = GetOptions::new()
            .with_range(PREFIX_END)
            .with_limit(cache::PAGE);
        let revision = if snap.revision != 0 {
            Some(snap.revision)
        } else {
            at
        };
        if let Some(r) = revision {
            opts = opts.with_revision(r);
        }
        let resp = call(pool.pick().get(start.clone(), Some(opts))).await?;
        if snap.revision == 0 {
            snap.revision = at.unwrap_or_else(|| resp.header().map_or(0, |h| h.revision()));
            count = Some(resp.count());
        }
        for kv in resp.kvs() {
            snap.kvs.insert(kv.key().to_vec(), Kv::from(kv));
        }
        match resp.kvs().last() {
            Some(last) if resp.more() => {
                start = last.key().to_vec();
                start.push(0);
            }
            _ => break,
        }
    }
    if count != Some(snap.kvs.len() as i64) {
        return Err(format!(
            "the first page counted {count:?} keys at revision {}, the pages held {}",
            snap.revision,
            snap.kvs.len()
        ));
    }
    Ok(snap)
}

/// A consistent read from the cache, as the apiserver's
/// `ConsistentListFromCache`: the current revision from a `count_only`
/// range over the prefix, then the cache once it has reached it. The
/// cache is then compared with a list at its revision. `Ok(false)` when
/// no comparison was possible (a call failed, the revision was
/// compacted); a difference or a wait that never ends is an error.
async fn consistent_read(pool: &Pool, waits: &mpsc::Sender<cache::Wait>) -> Result<bool, String> {
    let opts = GetOptions::new().with_range(PREFIX_END).with_count_only();
    let Ok(resp) = call(pool.pick().get(PREFIX, Some(opts))).await else {
        return Ok(false);
    };
    let current = resp.header().map_or(0, |h| h.revision());
    let (reply, answer) = tokio::sync::oneshot::channel();
    let wait = cache::Wait {
        at_least: current,
        reply,
    };
    waits.send(wait).await.expect("the cache runs");
    let snap = match tokio::time::timeout(WAIT_LIMIT, answer).await {
        Ok(Ok(snap)) => snap,
        _ => {
            return Err(format!(
                "the watch cache did not reach revision {current} within {WAIT_LIMIT:?}"
            ))
        }
    };
    if snap.revision == current && snap.kvs.len() as i64 != resp.count() {
        return Err(format!(
            "count_only answered {} keys at revision {current}, the cache holds {}",
            resp.count(),
            snap.kvs.len()
        ));
    }
    let Ok(listed) = list(pool, Some(snap.revision)).await else {
        return Ok(false);
    };
    if listed.kvs != snap.kvs {
        let differ: Vec<_> = listed
            .kvs
            .keys()
            .chain(snap.kvs.keys())
            .filter(|k| listed.kvs.get(*k) != snap.kvs.get(*k))
            .map(|k| String::from_utf8_lossy(k).into_owned())
            .collect();
        return Err(format!(
            "the list at revision {} differs from the cache at {differ:?}",
            snap.revision
        ));
    }
    Ok(true)
}

/// Consistent reads every 200 ms until `stop`.
async fn reader(
    pool: Arc<Pool>,
    waits: mpsc::Sender<cache::Wait>,
    ledger: Shared,
    stop: watch::Receiver<bool>,
) {
    while !*stop.borrow() {
        match consistent_read(&pool, &waits).await {
            Ok(true) => ledger.lock().unwrap().reads += 1,
            Ok(false) => {}
            Err(why) => ledger.lock().unwrap().broken.push(why),
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// Member `i`'s id and the leader it knows (0: none), if it answers.
async fn status(pool: &Pool, i: usize) -> Option<(u64, u64)> {
    let s = call(pool.member(i).status()).await.ok()?;
    Some((s.header()?.member_id(), s.leader()))
}

/// The index of the leader the members agree on (bounded, 30 s), among
/// the running ones.
async fn leader(pool: &Pool) -> (usize, Vec<u64>) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    loop {
        let mut ids = Vec::new();
        let mut leaders = HashSet::new();
        for i in 0..3 {
            if let Some((id, leader)) = status(pool, i).await {
                ids.push(id);
                leaders.insert(leader);
            } else {
                ids.push(0);
            }
        }
        if leaders.len() == 1 {
            let leader = *leaders.iter().next().unwrap();
            if let Some(i) = ids.iter().position(|&id| id == leader && id != 0) {
                return (i, ids);
            }
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "no leader agreed on: {ids:?} {leaders:?}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// The faults, in two rounds: the leader moved to another member, then
/// a member killed (the leader in the first round, the one the cache
/// watches on in the second) and restarted two seconds later; then the
/// cache stalls until its revision is compacted (`resumed` tells when
/// it comes back). Returns what was done.
async fn faults(
    c: &mut TestCluster,
    pool: &Pool,
    watching: &AtomicUsize,
    stall: &Notify,
    resumed: &Notify,
) -> Vec<String> {
    let mut done = Vec::new();
    for round in 0..2 {
        tokio::time::sleep(Duration::from_secs(3)).await;
        let (from, ids) = leader(pool).await;
        let to = (from + 1) % 3;
        let moved = call(pool.member(from).move_leader(ids[to])).await;
        assert!(moved.is_ok(), "moving the leader failed: {moved:?}");
        done.push(format!("leader moved from member {from} to {to}"));
        tokio::time::sleep(Duration::from_secs(3)).await;
        let (leader, _) = leader(pool).await;
        let victim = if round == 0 {
            leader
        } else {
            watching.load(Ordering::Relaxed)
        };
        c.member_mut(victim).kill9();
        done.push(format!(
            "member {victim} killed (leader: {})",
            victim == leader
        ));
        tokio::time::sleep(Duration::from_secs(2)).await;
        c.member_mut(victim).restart().await;
        done.push(format!("member {victim} restarted"));
    }
    stall.notify_one();
    done.push("the cache stalled".to_string());
    let back = tokio::time::timeout(cache::STALL_LIMIT, resumed.notified()).await;
    assert!(back.is_ok(), "the stalled cache never resumed: {done:?}");
    done
}

/// Waits (bounded) until every leased event key has expired from the
/// cache.
async fn expired(pool: &Pool, waits: &mpsc::Sender<cache::Wait>) -> Result<(), String> {
    let deadline = tokio::time::Instant::now() + EXPIRY_LIMIT;
    loop {
        let opts = GetOptions::new().with_range(PREFIX_END).with_count_only();
        if let Ok(resp) = call(pool.pick().get(PREFIX, Some(opts))).await {
            let current = resp.header().map_or(0, |h| h.revision());
            let (reply, answer) = tokio::sync::oneshot::channel();
            waits
                .send(cache::Wait {
                    at_least: current,
                    reply,
                })
                .await
                .expect("the cache runs");
            if let Ok(Ok(snap)) = tokio::time::timeout(WAIT_LIMIT, answer).await {
                let left = snap
                    .kvs
                    .keys()
                    .filter(|k| k.starts_with(writers::EVENTS.as_bytes()))
                    .count();
                if left == 0 {
                    return Ok(());
                }
                if tokio::time::Instant::now() >= deadline {
                    return Err(format!(
                        "{left} event keys still in the cache {EXPIRY_LIMIT:?} after the last write"
                    ));
                }
            }
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}

/// kube-apiserver's gate on its consistent reads from the cache
/// (`RequestWatchProgress` in its etcd feature support checker): every
/// member's `Status.version` must be at least 3.4.31 on the 3.4 line or
/// 3.5.13 after it. Returns the versions seen, or why not.
async fn consistent_reads_allowed(pool: &Pool) -> Result<Vec<String>, String> {
    let mut versions = Vec::new();
    for i in 0..3 {
        let status = call(pool.member(i).status()).await?;
        let v = status.version().to_string();
        let parts: Vec<u64> = v.split('.').filter_map(|p| p.parse().ok()).collect();
        let allowed = match parts[..] {
            [3, 4, patch] => patch >= 31,
            [3, 5, patch] => patch >= 13,
            [3, minor, _] => minor > 5,
            _ => false,
        };
        if !allowed {
            return Err(format!("member {i} reports version {v:?}"));
        }
        versions.push(v);
    }
    Ok(versions)
}

/// The emulation on a 3-member etcd-rs cluster, with kubeadm's progress
/// notify flag (etcd 3.6's name, 5 s there, 1 s here); returns its
/// summary. Panics with what broke.
///
/// It is not run on the reference etcd: 3.4.23, Debian's, answers
/// `RequestProgress` at once with the current revision, ahead of
/// events still to be sent (etcd issue #15220, fixed in 3.4.24 and
/// 3.5.8), which this emulation finds within seconds; kube-apiserver
/// does not read from its cache with such a version, which is what
/// [`consistent_reads_allowed`] checks first.
async fn emulate() -> String {
    let mut c = TestCluster::builder(3)
        .flags(&["--watch-progress-notify-interval", "1s"])
        .start()
        .await;
    let pool = Arc::new(Pool::connect(&c.endpoints(), false).await);
    let strict = Arc::new(Pool::connect(&c.endpoints(), true).await);
    let versions = consistent_reads_allowed(&pool).await;
    assert!(
        versions.is_ok(),
        "kube-apiserver would not read from its cache: {versions:?}"
    );
    let ledger: Shared = Arc::default();
    let (stop_writes, writes_stopped) = watch::channel(false);
    let (stop_cache, cache_stopped) = watch::channel(false);
    let (waits, waiting) = mpsc::channel(16);
    let watching = Arc::new(AtomicUsize::new(0));
    let stall = Arc::new(Notify::new());
    let resumed = Arc::new(Notify::new());
    let cache = cache::run(
        strict.clone(),
        waiting,
        watching.clone(),
        cache::Stall {
            ledger: ledger.clone(),
            start: stall.clone(),
            resumed: resumed.clone(),
        },
        cache_stopped,
    );
    let cache = tokio::spawn(cache);
    let mut tasks = Vec::new();
    for id in 0..3 {
        let w = writers::pods(id, pool.clone(), ledger.clone(), writes_stopped.clone());
        tasks.push(tokio::spawn(w));
    }
    let e = writers::events(pool.clone(), ledger.clone(), writes_stopped.clone());
    tasks.push(tokio::spawn(e));
    let k = writers::compactor(pool.clone(), ledger.clone(), writes_stopped.clone());
    tasks.push(tokio::spawn(k));
    let r = reader(pool.clone(), waits.clone(), ledger.clone(), writes_stopped);
    tasks.push(tokio::spawn(r));

    let done = faults(&mut c, &pool, &watching, &stall, &resumed).await;
    stop_writes.send(true).unwrap();
    for t in tasks {
        t.await.expect("a workload task panicked");
    }
    // With every member back: one more consistent read, then the
    // event leases run out and the cache sees their keys deleted.
    let last = consistent_read(&pool, &waits).await;
    let expiry = expired(&pool, &waits).await;
    stop_cache.send(true).unwrap();
    let seen = cache.await.expect("the cache panicked");

    let ledger = ledger.lock().unwrap();
    let mut broken = ledger.broken.clone();
    broken.extend(seen.broken.iter().cloned());
    if let Err(why) = last {
        broken.push(format!("the last consistent read: {why}"));
    }
    if let Err(why) = expiry {
        broken.push(why);
    }
    broken.extend(cache::against_model(&seen, &ledger));
    let summary = format!(
        "faults {done:?}; {} acknowledged writes, {} unknown, {} conflicts, {} compactions, \
         {} consistent reads; cache: {} streams, {} relists, {} progress answers, {} expiries",
        ledger.acked.len(),
        ledger.maybe.len(),
        ledger.conflicts,
        ledger.compactions,
        ledger.reads,
        seen.streams,
        seen.relists,
        seen.progress,
        seen.expiries(&ledger),
    );
    assert!(broken.is_empty(), "{summary}\nbroken: {broken:#?}");
    assert!(ledger.acked.len() >= 200, "too few writes: {summary}");
    assert!(ledger.conflicts >= 5, "too few conflicts: {summary}");
    assert!(ledger.compactions >= 3, "too few compactions: {summary}");
    assert!(ledger.reads >= 10, "too few consistent reads: {summary}");
    assert!(seen.streams >= 3, "the watch did not resume: {summary}");
    assert!(
        seen.relists >= 1,
        "the stalled cache did not relist: {summary}"
    );
    assert!(seen.expiries(&ledger) >= 1, "no lease expired: {summary}");
    summary
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn apiserver_patterns_hold_under_faults() {
    within(LIMIT, async {
        println!("{}", emulate().await);
    })
    .await;
}

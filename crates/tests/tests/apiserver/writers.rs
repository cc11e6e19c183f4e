//! The apiserver's writes: objects created, updated and deleted by
//! guarded Txns (its `GuaranteedUpdate` and `Delete` with
//! preconditions), events under leases it reuses for a while (its
//! lease manager), and the compactor's Txn on `compact_rev_key`.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::time::{Duration, Instant};

use etcd_client::{
    CompactionOptions, Compare, CompareOp, GetOptions, PutOptions, Txn, TxnOp, TxnOpResponse,
    TxnResponse,
};
use tokio::sync::watch;

use crate::{call, Key, Pool, Rng, Shared, Write};

/// Where the objects are (`/registry/pods/<namespace>/<name>`).
const PODS: &str = "/registry/pods/default/";
/// Where the events are.
pub const EVENTS: &str = "/registry/events/default/";
/// Objects per writer.
const KEYS: u64 = 8;
/// The events' lease TTL, seconds (the apiserver's `--event-ttl`, 1 h).
const EVENT_TTL: i64 = 3;
/// How long one lease serves new events (the lease manager's reuse).
const LEASE_REUSE: Duration = Duration::from_secs(1);
/// The compactor's period (the apiserver's `--etcd-compaction-interval`,
/// 5 min).
const COMPACT_EVERY: Duration = Duration::from_secs(2);
/// The compactor's key, outside the prefix.
const COMPACT_REV_KEY: &str = "compact_rev_key";

/// What a writer's Txn meant to do.
#[derive(PartialEq)]
enum Intent {
    Create,
    Update,
    /// An update comparing a revision the object no longer has.
    Stale,
    Delete,
}

/// The key the Txn's else branch read, if it exists.
fn else_read(resp: &TxnResponse) -> Option<i64> {
    resp.op_responses().into_iter().find_map(|r| match r {
        TxnOpResponse::Get(g) => g.kvs().first().map(|kv| kv.mod_revision()),
        _ => None,
    })
}

/// The object's mod revision, read (linearizably) until a member answers
/// or `stop`; `None` when it does not exist.
async fn read_back(pool: &Pool, key: &Key, stop: &watch::Receiver<bool>) -> Option<i64> {
    while !*stop.borrow() {
        if let Ok(resp) = call(pool.pick().get(key.clone(), None)).await {
            return resp.kvs().first().map(|kv| kv.mod_revision());
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    None
}

/// Writer `id`: its own [`KEYS`] objects, until `stop`. It keeps the
/// mod revision of each; a Txn whose compare fails must find the object
/// as the writer left it, unless one of its writes to it had an unknown
/// outcome.
pub async fn pods(id: usize, pool: Arc<Pool>, ledger: Shared, stop: watch::Receiver<bool>) {
    let mut rng = Rng::new(id as u64 + 1);
    let mut known: HashMap<Key, i64> = HashMap::new();
    let mut uncertain: HashSet<Key> = HashSet::new();
    let mut seq = 0;
    while !*stop.borrow() {
        let key = format!("{PODS}w{id}-{}", rng.below(KEYS)).into_bytes();
        seq += 1;
        let value = format!("w{id}-{seq}").into_bytes();
        let current = known.get(&key).copied();
        let (intent, compare) = match current {
            None => (Intent::Create, 0),
            Some(rev) => match rng.below(8) {
                0 | 1 => (Intent::Delete, rev),
                2 => (Intent::Stale, rev - 1),
                _ => (Intent::Update, rev),
            },
        };
        let write: Write = match intent {
            Intent::Delete => (key.clone(), None),
            _ => (key.clone(), Some(value.clone())),
        };
        let op = match intent {
            Intent::Delete => TxnOp::delete(key.clone(), None),
            _ => TxnOp::put(key.clone(), value, None),
        };
        let txn = Txn::new()
            .when([Compare::mod_revision(
                key.clone(),
                CompareOp::Equal,
                compare,
            )])
            .and_then([op])
            .or_else([TxnOp::get(key.clone(), None)]);
        match call(pool.pick().txn(txn)).await {
            Ok(resp) if resp.succeeded() => {
                let rev = resp.header().map_or(0, |h| h.revision());
                let mut l = ledger.lock().unwrap();
                if intent == Intent::Stale && !uncertain.contains(&key) {
                    l.broken.push(format!(
                        "a Txn comparing ModRevision {compare} succeeded on {} at {current:?}",
                        String::from_utf8_lossy(&key)
                    ));
                }
                l.ack(rev, write);
                match intent {
                    Intent::Delete => known.remove(&key),
                    _ => known.insert(key, rev),
                };
            }
            Ok(resp) => {
                let now = else_read(&resp);
                if intent == Intent::Stale && now == current {
                    ledger.lock().unwrap().conflicts += 1;
                } else if !uncertain.contains(&key) {
                    ledger.lock().unwrap().broken.push(format!(
                        "{}: the compare on ModRevision {compare} failed, and the else branch read {now:?}",
                        String::from_utf8_lossy(&key)
                    ));
                }
                match now {
                    Some(rev) => known.insert(key, rev),
                    None => known.remove(&key),
                };
            }
            Err(_) => {
                ledger.lock().unwrap().maybe.insert(write);
                uncertain.insert(key.clone());
                match read_back(&pool, &key, &stop).await {
                    Some(rev) => known.insert(key, rev),
                    None => known.remove(&key),
                };
            }
        }
    }
}

/// Events, one every 50 ms until `stop`, each created (`ModRevision =
/// 0`) with the current lease, a new one of [`EVENT_TTL`] granted every
/// [`LEASE_REUSE`].
pub async fn events(pool: Arc<Pool>, ledger: Shared, stop: watch::Receiver<bool>) {
    let mut lease: Option<(i64, Instant)> = None;
    let mut n = 0;
    while !*stop.borrow() {
        let id = match lease {
            Some((id, at)) if at.elapsed() < LEASE_REUSE => id,
            _ => match call(pool.pick().lease_grant(EVENT_TTL, None)).await {
                Ok(granted) => {
                    lease = Some((granted.id(), Instant::now()));
                    granted.id()
                }
                Err(_) => {
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                }
            },
        };
        n += 1;
        let key = format!("{EVENTS}e{n}").into_bytes();
        let value = format!("event {n}").into_bytes();
        let put = PutOptions::new().with_lease(id);
        let txn = Txn::new()
            .when([Compare::mod_revision(key.clone(), CompareOp::Equal, 0)])
            .and_then([TxnOp::put(key.clone(), value.clone(), Some(put))]);
        let result = call(pool.pick().txn(txn)).await;
        {
            let mut l = ledger.lock().unwrap();
            l.leased.insert(key.clone());
            match result {
                Ok(resp) if resp.succeeded() => {
                    let rev = resp.header().map_or(0, |h| h.revision());
                    l.ack(rev, (key, Some(value)));
                }
                Ok(_) => l
                    .broken
                    .push(format!("event e{n} existed before its create")),
                Err(_) => {
                    l.maybe.insert((key, Some(value)));
                }
            }
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// The apiserver's compactor until `stop`: every [`COMPACT_EVERY`], a
/// Txn that puts the revision of the previous round under
/// [`COMPACT_REV_KEY`] if its `Version` is still the one this compactor
/// last saw (so one apiserver of many compacts), then `Compact` at that
/// revision; when another wrote first, it adopts the key's version.
pub async fn compactor(pool: Arc<Pool>, ledger: Shared, mut stop: watch::Receiver<bool>) {
    let (mut version, mut revision) = (0i64, 0i64);
    loop {
        tokio::select! {
            _ = tokio::time::sleep(COMPACT_EVERY) => {}
            _ = stop.changed() => return,
        }
        let txn = Txn::new()
            .when([Compare::version(COMPACT_REV_KEY, CompareOp::Equal, version)])
            .and_then([TxnOp::put(COMPACT_REV_KEY, revision.to_string(), None)])
            .or_else([TxnOp::get(COMPACT_REV_KEY, Some(GetOptions::new()))]);
        let Ok(resp) = call(pool.pick().txn(txn)).await else {
            continue;
        };
        let current = resp.header().map_or(0, |h| h.revision());
        if !resp.succeeded() {
            version = resp
                .op_responses()
                .into_iter()
                .find_map(|r| match r {
                    TxnOpResponse::Get(g) => g.kvs().first().map(|kv| kv.version()),
                    _ => None,
                })
                .unwrap_or(0);
            revision = current;
            continue;
        }
        version += 1;
        if revision != 0 {
            let compacted = call(
                pool.pick()
                    .compact(revision, Some(CompactionOptions::new())),
            )
            .await;
            if compacted.is_ok() {
                let mut ledger = ledger.lock().unwrap();
                ledger.compactions += 1;
                ledger.compacted = ledger.compacted.max(revision);
            }
        }
        revision = current;
    }
}

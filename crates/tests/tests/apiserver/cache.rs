//! The apiserver's watch cache: a paginated list of the prefix, then a
//! watch from the revision after it (`prev_kv`, `progress_notify`, on
//! clients requiring a leader), resumed from the revision after the last
//! one it reached when a stream breaks, and a new list when that
//! revision is compacted. Readers wait for a revision through [`Wait`];
//! while any waits, the cache sends `RequestProgress` every 100 ms.
//! Every response is checked as it comes: events in revision order, one
//! revision's events in one response, each event's `prev_kv`, version
//! and create revision agreeing with the cached object, and progress
//! revisions never below what the stream already sent.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use etcd_client::{EventType, WatchOptions, WatchResponse};
use tokio::sync::{mpsc, oneshot, watch, Notify};

use crate::{list, Kv, Ledger, Pool, Shared, Snapshot, Write, OP_TIMEOUT, PREFIX};

/// The list's page size (the apiserver's is 10000; small here so lists
/// take several pages).
pub const PAGE: i64 = 7;
/// How often a waiting cache asks for progress (the apiserver's
/// `progressRequestsInterval`).
const PROGRESS_EVERY: Duration = Duration::from_millis(100);

/// A reader waiting for the cache to reach `at_least`; answered with
/// the cache as of that revision or a later one.
pub struct Wait {
    pub at_least: i64,
    pub reply: oneshot::Sender<Snapshot>,
}

/// What the cache saw.
#[derive(Default)]
pub struct Seen {
    /// Every event by revision, as (key, value or `None` for a delete).
    pub history: BTreeMap<i64, Vec<Write>>,
    /// The revisions the watch covered without a gap: `(from, to]`.
    pub covered: Vec<(i64, i64)>,
    /// Watch streams opened.
    pub streams: usize,
    /// Lists after a compaction.
    pub relists: usize,
    /// Progress answers (asked for or periodic).
    pub progress: usize,
    /// What broke a guarantee.
    pub broken: Vec<String>,
}

impl Seen {
    /// Deletes the clients never asked for: lease expiries.
    pub fn expiries(&self, ledger: &Ledger) -> usize {
        self.history
            .iter()
            .flat_map(|(rev, events)| events.iter().map(move |e| (rev, e)))
            .filter(|(rev, e)| e.1.is_none() && ledger.acked.get(rev) != Some(e))
            .count()
    }
}

/// The cache's state between streams.
struct Cache {
    snap: Snapshot,
    from: i64,
    seen: Seen,
    pending: Vec<Wait>,
}

impl Cache {
    /// Answers the waits the cache has reached.
    fn answer(&mut self) {
        let rev = self.snap.revision;
        for w in std::mem::take(&mut self.pending) {
            if rev >= w.at_least {
                let _ = w.reply.send(self.snap.clone());
            } else {
                self.pending.push(w);
            }
        }
    }

    /// Applies one response of a stream that had reached `stream_rev`;
    /// returns the revision the stream has now reached.
    fn apply(&mut self, resp: &WatchResponse, stream_rev: i64) -> i64 {
        let events = resp.events();
        if events.is_empty() {
            let p = resp.header().map_or(0, |h| h.revision());
            self.seen.progress += 1;
            if p < stream_rev {
                self.seen.broken.push(format!(
                    "a progress answer at revision {p} after the stream sent revision {stream_rev}"
                ));
            }
            self.snap.revision = self.snap.revision.max(p);
            return stream_rev.max(p);
        }
        let mut last = stream_rev.max(self.snap.revision);
        for (i, ev) in events.iter().enumerate() {
            let Some(kv) = ev.kv() else {
                self.seen.broken.push("an event without a kv".to_string());
                continue;
            };
            let rev = kv.mod_revision();
            if rev < last || (i == 0 && rev == last) {
                self.seen.broken.push(format!(
                    "an event at revision {rev} after the stream or cache had reached {last}"
                ));
            }
            last = rev;
            let key = kv.key().to_vec();
            let before = self.snap.kvs.get(&key).cloned();
            let prev = ev.prev_kv().map(Kv::from);
            if prev != before {
                self.seen.broken.push(format!(
                    "{} at {rev}: prev_kv {prev:?}, the cache had {before:?}",
                    String::from_utf8_lossy(&key)
                ));
            }
            let write = match ev.event_type() {
                EventType::Put => {
                    let now = Kv::from(kv);
                    let (create, version) = before
                        .as_ref()
                        .map_or((rev, 1), |b| (b.create_revision, b.version + 1));
                    if (now.create_revision, now.version) != (create, version) {
                        self.seen.broken.push(format!(
                            "{} at {rev}: create revision {} version {}, expected {create} and {version}",
                            String::from_utf8_lossy(&key),
                            now.create_revision,
                            now.version
                        ));
                    }
                    let value = now.value.clone();
                    self.snap.kvs.insert(key.clone(), now);
                    (key, Some(value))
                }
                EventType::Delete => {
                    if before.is_none() {
                        self.seen.broken.push(format!(
                            "a delete of {} at {rev}, which the cache did not hold",
                            String::from_utf8_lossy(&key)
                        ));
                    }
                    self.snap.kvs.remove(&key);
                    (key, None)
                }
            };
            self.seen.history.entry(rev).or_default().push(write);
        }
        self.snap.revision = last;
        last
    }

    /// Lists again (after a compaction), until a list succeeds or
    /// `stop`; the revisions between the last one reached and the new
    /// list's are not covered.
    async fn relist(&mut self, pool: &Pool, stop: &watch::Receiver<bool>) {
        self.seen.covered.push((self.from, self.snap.revision));
        while !*stop.borrow() {
            if let Ok(snap) = list(pool, None).await {
                self.snap = snap;
                self.from = self.snap.revision;
                return;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
}

/// The longest a stalled cache waits for the compactor to pass its
/// revision (a few compaction periods; under the consistent reads'
/// 20 s wait, which the stall holds up).
pub const STALL_LIMIT: Duration = Duration::from_secs(15);

/// The stall of an apiserver too busy to read: on `start` the cache drops
/// its stream and stays away until the ledger shows a compaction past the
/// revision it stopped at (at most [`STALL_LIMIT`]), so that it comes back
/// to a compacted revision; then it notifies `resumed` and watches again.
pub struct Stall {
    pub ledger: Shared,
    pub start: Arc<Notify>,
    pub resumed: Arc<Notify>,
}

impl Stall {
    /// Waits until a watch from `revision + 1` would be compacted.
    async fn until_compacted_past(&self, revision: i64) {
        let passed = async {
            while self.ledger.lock().unwrap().compacted <= revision + 1 {
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        };
        let _ = tokio::time::timeout(STALL_LIMIT, passed).await;
        self.resumed.notify_one();
    }
}

/// Runs the cache on `pool` until `stop`; `watching` tells the faults
/// which member the current stream is on; see [`Stall`] for `stall`.
pub async fn run(
    pool: Arc<Pool>,
    mut waits: mpsc::Receiver<Wait>,
    watching: Arc<AtomicUsize>,
    stall: Stall,
    mut stop: watch::Receiver<bool>,
) -> Seen {
    let mut cache = Cache {
        snap: Snapshot::default(),
        from: 0,
        seen: Seen::default(),
        pending: Vec::new(),
    };
    let first = loop {
        if let Ok(snap) = list(&pool, None).await {
            break snap;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    cache.from = first.revision;
    cache.snap = first;
    let mut tick = tokio::time::interval(PROGRESS_EVERY);
    'streams: while !*stop.borrow() {
        let (member, mut client) = pool.pick_indexed();
        watching.store(member, Ordering::Relaxed);
        let opts = WatchOptions::new()
            .with_prefix()
            .with_start_revision(cache.snap.revision + 1)
            .with_prev_key()
            .with_progress_notify();
        let Ok(Ok(stream)) =
            tokio::time::timeout(OP_TIMEOUT, client.watch(PREFIX, Some(opts))).await
        else {
            tokio::time::sleep(Duration::from_millis(100)).await;
            continue;
        };
        cache.seen.streams += 1;
        let (mut requests, mut responses) = stream.split();
        let mut stream_rev = 0;
        loop {
            tokio::select! {
                msg = responses.message() => {
                    let Ok(Some(resp)) = msg else {
                        tokio::time::sleep(Duration::from_millis(100)).await;
                        continue 'streams;
                    };
                    if resp.canceled() {
                        if resp.compact_revision() > 0 {
                            cache.seen.relists += 1;
                            cache.relist(&pool, &stop).await;
                        }
                        continue 'streams;
                    }
                    if !resp.created() {
                        stream_rev = cache.apply(&resp, stream_rev);
                        cache.answer();
                    }
                }
                _ = tick.tick(), if !cache.pending.is_empty() => {
                    let _ = requests.request_progress().await;
                }
                Some(w) = waits.recv() => {
                    cache.pending.push(w);
                    cache.answer();
                }
                _ = stall.start.notified() => {
                    stall.until_compacted_past(cache.snap.revision).await;
                    continue 'streams;
                }
                _ = stop.changed() => break 'streams,
            }
        }
    }
    cache.seen.covered.push((cache.from, cache.snap.revision));
    cache.seen
}

/// Checks what the cache saw against what the clients know: every
/// acknowledged write inside a covered span is the event at its
/// revision, and every event is an acknowledged write, one with an
/// unknown outcome, or the expiry (a delete) of a leased key.
pub fn against_model(seen: &Seen, ledger: &Ledger) -> Vec<String> {
    let mut broken = Vec::new();
    let covered = |rev: i64| {
        seen.covered
            .iter()
            .any(|&(from, to)| from < rev && rev <= to)
    };
    for (rev, write) in &ledger.acked {
        if !covered(*rev) {
            continue;
        }
        let events = seen.history.get(rev);
        if events.is_none_or(|e| e.len() != 1 || &e[0] != write) {
            broken.push(format!(
                "acknowledged {} at revision {rev}; the watch saw {events:?}",
                crate::shown(write)
            ));
        }
    }
    for (rev, events) in &seen.history {
        for e in events {
            let known = ledger.acked.get(rev) == Some(e)
                || ledger.maybe.contains(e)
                || (e.1.is_none() && ledger.leased.contains(&e.0));
            if !known {
                broken.push(format!(
                    "the watch saw {} at revision {rev}, which no client wrote",
                    crate::shown(e)
                ));
            }
        }
    }
    broken
}

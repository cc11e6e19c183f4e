//! The watchable side of the store (etcd's `watchableStore`): watchers on
//! key ranges, fed with the store's changes.
//!
//! A watcher is *synced* when it has every event up to the store revision:
//! the apply stage's commit notifies synced watchers of each revision's
//! events (one batch per revision). A watcher that starts in the past, or
//! whose sink refused a batch (its client is slow), is *unsynced*: it
//! remembers the first revision it still needs, and [`WatchHub::sync`]
//! replays history from the store until it has caught up, then it is synced
//! again. So slow watchers never block writes, memory stays bounded by the
//! sinks' capacity, and no watcher skips or repeats an event.
//!
//! A commit finds the watchers of each event's key through a
//! [`WatchIndex`], so watchers of unrelated keys cost it nothing; the
//! unsynced ones are kept in a set of their own for the sync rounds.
//!
//! Invariant: for every watcher, events are delivered in revision order,
//! each exactly once, the events of one revision together.

use std::collections::{BTreeSet, HashMap};
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use api::mvccpb::event::EventType;
use api::mvccpb::{Event, KeyValue};

use super::key_index::RangeEnd;
pub use events::Events;
use index::WatchIndex;

mod events;
mod index;

/// Most events replayed to one watcher per [`WatchHub::sync`] round (a
/// revision's events are never split).
const SYNC_BATCH_EVENTS: usize = 1000;
/// Most bytes of keys and values replayed to one watcher per round, so a
/// response stays well under clients' usual 4 MiB receive limit.
const SYNC_BATCH_BYTES: usize = 1024 * 1024;
/// Most unsynced watchers caught up per [`WatchHub::sync`] round (etcd's
/// `maxWatchersPerSync`); the next round goes on after the last one served.
const SYNC_WATCHERS: usize = 512;

/// What a watcher is told.
#[derive(Clone, Debug, PartialEq)]
pub enum Delivery {
    /// Events in revision order; `revision` is the store revision they
    /// bring the watcher to.
    Events {
        /// The events, shared with the other watchers that wanted all of
        /// the revision's.
        events: Events,
        /// The store revision at the last event's batch.
        revision: i64,
    },
    /// No events, but the watcher has every event up to `revision`
    /// (progress notification).
    Progress {
        /// The revision the watcher is complete up to.
        revision: i64,
    },
    /// The watcher needed history that was compacted away; it is removed.
    Compacted {
        /// The store's compaction revision.
        compact_revision: i64,
    },
}

/// Where a watcher's deliveries go. Returns false when it cannot take one
/// now (the watcher then catches up from the store later).
pub type Sink = Box<dyn Fn(Delivery) -> bool + Send>;

/// What a watcher watches.
#[derive(Clone, Debug)]
pub struct WatchSpec {
    /// First key.
    pub key: Vec<u8>,
    /// etcd's `range_end`: empty for one key, `\0` for every key from `key`.
    pub range_end: Vec<u8>,
    /// Drop PUT events.
    pub no_put: bool,
    /// Drop DELETE events.
    pub no_delete: bool,
    /// Wants periodic progress notifications when idle.
    pub progress_notify: bool,
}

impl WatchSpec {
    fn wants(&self, ev: &Event) -> bool {
        let kv = ev.kv.as_ref().expect("events carry a kv");
        let put = ev.r#type == EventType::Put as i32;
        if (put && self.no_put) || (!put && self.no_delete) {
            return false;
        }
        RangeEnd::from_request(&self.range_end).contains(&self.key, &kv.key)
    }
}

struct Watcher {
    spec: Arc<WatchSpec>,
    /// The first revision this watcher may still need: exact while it is
    /// unsynced; while synced it has every event up to the store revision
    /// and this only says where it starts (a watch may start in the future).
    next_rev: i64,
    synced: bool,
    /// Whether events went out since the last progress notification.
    active: bool,
    /// Whether its sink refused the last delivery (its client is not
    /// reading); such watchers do not hold back the others' catching up.
    stalled: bool,
    sink: Sink,
}

/// Bytes of history read per [`WatchHub::sync`] round, at most (a
/// revision's events are never split).
const SYNC_READ_BYTES: usize = 4 * 1024 * 1024;

/// History the hub reads from: the store's events in a revision range.
pub trait History {
    /// Events of revisions `from..=to`, in order, stopping at a revision
    /// boundary once `max_bytes` of keys and values are read; with the last
    /// revision read (`to` if it did not stop) and the compaction revision
    /// (events at or below it may be gone).
    fn events(&self, from: i64, to: i64, max_bytes: usize)
        -> Result<HistoryRead, super::MvccError>;
    /// The last committed revision.
    fn current_revision(&self) -> i64;
}

/// What [`History::events`] read.
pub struct HistoryRead {
    /// The events, in revision order.
    pub events: Vec<Event>,
    /// The last revision the events cover.
    pub upto: i64,
    /// The store's compaction revision.
    pub compact_revision: i64,
}

/// The watchers of a hub, under its lock.
#[derive(Default)]
struct Watchers {
    by_id: HashMap<u64, Watcher>,
    index: WatchIndex,
    /// The ids of the unsynced watchers, in id order (the sync rounds
    /// take them in turn from a cursor).
    unsynced: BTreeSet<u64>,
    /// (watcher id, event position) pairs of one revision, kept to reuse
    /// the allocation.
    hits: Vec<(u64, usize)>,
}

/// Marks synced watcher `w` (id `id`) unsynced: it has every event
/// before `from`, so it resumes there (or where it starts, if later).
fn unsync(unsynced: &mut BTreeSet<u64>, id: u64, w: &mut Watcher, from: i64) {
    if w.synced {
        w.synced = false;
        w.next_rev = w.next_rev.max(from);
        unsynced.insert(id);
    }
}

impl Watchers {
    fn unsync_all(&mut self, from: i64) {
        for (id, w) in self.by_id.iter_mut() {
            unsync(&mut self.unsynced, *id, w, from);
        }
    }

    fn remove(&mut self, id: u64) -> bool {
        let Some(w) = self.by_id.remove(&id) else {
            return false;
        };
        self.index.remove(id, &w.spec);
        self.unsynced.remove(&id);
        true
    }
}

/// All watchers of a store, by id.
#[derive(Default)]
pub struct WatchHub {
    watchers: Mutex<Watchers>,
    next_id: Mutex<u64>,
    /// How many watchers exist: writes collect events only when some do.
    count: AtomicUsize,
    /// Sync rounds so far: every other round reads for the watchers that
    /// are not stalled only.
    rounds: AtomicUsize,
    /// The id of the last watcher the previous sync round served.
    cursor: AtomicU64,
}

/// What a sync round does for one watcher, worked out without the hub lock.
enum Plan {
    /// Its history is compacted away: tell it and remove it.
    Compacted(i64),
    /// The round's read stopped before its place.
    Behind,
    /// Hand it these events (maybe none), bringing it to revision `upto`.
    Batch(Vec<Event>, i64),
}

impl WatchHub {
    /// Adds a watcher that needs every event from `next_rev` on; returns
    /// its id. `current` is read under the hub's lock, so no commit can
    /// publish a revision between that read and the registration: the
    /// watcher is synced only if it needs nothing the store already has.
    pub fn watch(
        &self,
        spec: WatchSpec,
        next_rev: i64,
        current: impl FnOnce() -> i64,
        sink: Sink,
    ) -> u64 {
        let id = {
            let mut n = self.next_id.lock().expect("watch id lock");
            *n += 1;
            *n
        };
        let mut watchers = self.watchers.lock().expect("watchers lock");
        let synced = next_rev > current();
        let w = Watcher {
            spec: Arc::new(spec),
            next_rev,
            synced,
            active: false,
            stalled: false,
            sink,
        };
        watchers.index.insert(id, &w.spec);
        if !synced {
            watchers.unsynced.insert(id);
        }
        watchers.by_id.insert(id, w);
        self.count.store(watchers.by_id.len(), Ordering::Release);
        id
    }

    /// Makes every watcher catch up from the store (after the store's
    /// content was replaced by a snapshot); the synced ones had every
    /// event before revision `from`.
    pub fn unsync_all(&self, from: i64) {
        self.watchers
            .lock()
            .expect("watchers lock")
            .unsync_all(from);
    }

    /// Publishes a committed batch and hands its events to the watchers,
    /// under the hub's lock so that a watcher is registered either before
    /// (and gets the events) or after (and finds them in history).
    /// `publish` makes the batch visible; `events` gives the batch's
    /// events in revision order, or `None` when they cannot be had (then
    /// every watcher catches up from the store, from `first`, the batch's
    /// first revision).
    pub fn publish(
        &self,
        first: i64,
        publish: impl FnOnce(),
        events: impl FnOnce() -> Option<Vec<Event>>,
    ) {
        let mut watchers = self.watchers.lock().expect("watchers lock");
        publish();
        if watchers.by_id.is_empty() {
            return;
        }
        let Some(events) = events() else {
            watchers.unsync_all(first);
            return;
        };
        let mut rest = events.as_slice();
        while let Some(head) = rest.first() {
            let rev = head.kv.as_ref().map_or(0, |kv| kv.mod_revision);
            let n = rest
                .iter()
                .take_while(|e| e.kv.as_ref().map_or(0, |kv| kv.mod_revision) == rev)
                .count();
            notify_locked(&mut watchers, &rest[..n], rev);
            rest = &rest[n..];
        }
    }

    /// Removes a watcher; false if there was none with `id`.
    pub fn cancel(&self, id: u64) -> bool {
        let mut watchers = self.watchers.lock().expect("watchers lock");
        let found = watchers.remove(id);
        self.count.store(watchers.by_id.len(), Ordering::Release);
        found
    }

    /// How many watchers exist (`etcd_debugging_mvcc_watcher_total`).
    pub fn watcher_count(&self) -> usize {
        self.count.load(Ordering::Acquire)
    }

    /// Whether any watcher exists.
    pub fn has_watchers(&self) -> bool {
        self.count.load(Ordering::Acquire) > 0
    }

    /// Whether every watcher has every event up to the store revision.
    pub fn all_synced(&self) -> bool {
        self.watchers
            .lock()
            .expect("watchers lock")
            .unsynced
            .is_empty()
    }

    /// Tells each synced, idle watcher that asked for progress
    /// notifications how far it is complete. `current` gives the store
    /// revision (a watcher that starts in the future is complete up to
    /// it); it is read under the hub's lock, as the deliveries are made,
    /// so a notification never claims less than an event already sent.
    pub fn progress_notify(&self, current: impl FnOnce() -> i64) {
        let mut watchers = self.watchers.lock().expect("watchers lock");
        let current = current();
        for w in watchers.by_id.values_mut() {
            // A synced watcher has every event up to the store revision.
            if w.spec.progress_notify && w.synced && !w.active {
                (w.sink)(Delivery::Progress { revision: current });
            }
            w.active = false;
        }
    }

    /// Answers a progress request for the watchers `ids` of one stream:
    /// if all are synced, calls `answer` with the revision all are
    /// complete up to, under the hub's lock, so that the answer is queued
    /// after every event up to that revision and before any later one.
    /// `current` gives the store revision, read under the lock too.
    /// Returns whether it answered.
    pub fn request_progress(
        &self,
        ids: &[u64],
        current: impl FnOnce() -> i64,
        answer: impl FnOnce(i64),
    ) -> bool {
        let watchers = self.watchers.lock().expect("watchers lock");
        let current = current();
        if ids
            .iter()
            .any(|id| !watchers.by_id.get(id).is_some_and(|w| w.synced))
        {
            return false;
        }
        answer(current);
        true
    }

    /// Hands the events of one committed revision to the synced watchers.
    /// A watcher whose sink refuses them becomes unsynced from `revision`.
    pub fn notify(&self, events: &[Event], revision: i64) {
        notify_locked(
            &mut self.watchers.lock().expect("watchers lock"),
            events,
            revision,
        );
    }

    /// Replays history to unsynced watchers, at most [`SYNC_WATCHERS`] of
    /// them per round, taken in turn, and at most [`SYNC_BATCH_EVENTS`]
    /// events each, marking those that caught up synced. History is read
    /// and batches are built without the hub lock, so applies go on;
    /// the lock is held only to hand the batches over. Watchers whose
    /// history was compacted are told so and removed. Returns whether any
    /// watcher is still unsynced.
    pub fn sync(&self, history: &impl History) -> bool {
        let (pending, more) = self.pick_unsynced();
        if pending.is_empty() {
            return false;
        }
        let to = history.current_revision();
        // Every other round reads from where the watchers that still take
        // deliveries are, so one stalled client cannot starve the rest.
        let skip_stalled = self.rounds.fetch_add(1, Ordering::Relaxed) % 2 == 1;
        let from = pending
            .iter()
            .filter(|p| !(skip_stalled && p.stalled))
            .map(|p| p.next_rev)
            .min()
            .or_else(|| pending.iter().map(|p| p.next_rev).min())
            .expect("not empty");
        let read = if from <= to {
            match history.events(from, to, SYNC_READ_BYTES) {
                Ok(read) => read,
                Err(e) => {
                    // Nobody advances: the next round reads again.
                    tracing::warn!(error = %e, "failed to read history for watchers");
                    return true;
                }
            }
        } else {
            HistoryRead {
                events: Vec::new(),
                upto: to,
                compact_revision: -1,
            }
        };
        let (events, compact_rev, to) = (read.events, read.compact_revision, read.upto);
        let plans: Vec<(Pending, Plan)> = pending
            .into_iter()
            .map(|p| {
                // As etcd: a watch may start at the compaction revision itself.
                let plan = if p.next_rev < compact_rev {
                    Plan::Compacted(compact_rev)
                } else if p.next_rev > to || p.next_rev < from {
                    // The read did not cover it: past where it stopped, or
                    // a stalled watcher that a round skipping the stalled
                    // ones read after (it waits for a round from it).
                    Plan::Behind
                } else {
                    let (batch, upto) = batch_for(&p.spec, &events, p.next_rev, to);
                    Plan::Batch(batch, upto)
                };
                (p, plan)
            })
            .collect();
        drop(events);
        self.hand_over(plans, history, to) || more
    }

    /// Up to [`SYNC_WATCHERS`] unsynced watchers, the ones after the
    /// cursor first; and whether others wait for a later round.
    fn pick_unsynced(&self) -> (Vec<Pending>, bool) {
        use std::ops::Bound;
        let cursor = self.cursor.load(Ordering::Relaxed);
        let watchers = self.watchers.lock().expect("watchers lock");
        let after = watchers
            .unsynced
            .range((Bound::Excluded(cursor), Bound::Unbounded));
        let pending: Vec<Pending> = after
            .chain(watchers.unsynced.range(..=cursor))
            .take(SYNC_WATCHERS)
            .map(|id| {
                let w = &watchers.by_id[id];
                Pending {
                    id: *id,
                    next_rev: w.next_rev,
                    stalled: w.stalled,
                    spec: w.spec.clone(),
                }
            })
            .collect();
        let more = watchers.unsynced.len() > SYNC_WATCHERS;
        drop(watchers);
        if more {
            let last = pending.last().expect("not empty").id;
            self.cursor.store(last, Ordering::Relaxed);
        }
        (pending, more)
    }

    /// Carries out a round's plans under the hub lock, skipping watchers
    /// that went or moved meanwhile; `to` is where the round's read
    /// stopped. Returns whether any of them is still behind.
    fn hand_over(&self, plans: Vec<(Pending, Plan)>, history: &impl History, to: i64) -> bool {
        let mut guard = self.watchers.lock().expect("watchers lock");
        let watchers = &mut *guard;
        // Under the lock no commit publishes: this is the store revision.
        let current = history.current_revision();
        let mut behind = false;
        for (p, plan) in plans {
            let Some(w) = watchers.by_id.get_mut(&p.id) else {
                continue;
            };
            if w.synced || w.next_rev != p.next_rev {
                continue;
            }
            if p.next_rev > current {
                // It starts in the future: it has everything there is.
                w.synced = true;
                w.stalled = false;
                watchers.unsynced.remove(&p.id);
                continue;
            }
            match plan {
                Plan::Compacted(compact_revision) => {
                    if (w.sink)(Delivery::Compacted { compact_revision }) {
                        watchers.remove(p.id);
                        self.count.store(watchers.by_id.len(), Ordering::Release);
                    } else {
                        // Its client must hear it: try again next round.
                        w.stalled = true;
                        behind = true;
                    }
                }
                Plan::Behind => behind = true,
                Plan::Batch(batch, upto) => {
                    if !batch.is_empty()
                        && !(w.sink)(Delivery::Events {
                            events: Events::from(batch),
                            revision: upto,
                        })
                    {
                        w.stalled = true;
                        behind = true;
                        continue;
                    }
                    w.stalled = false;
                    w.next_rev = upto + 1;
                    // Revisions after `to` were notified while this watcher
                    // was unsynced; it is caught up only if there were none.
                    if upto == to && current == to {
                        w.synced = true;
                        watchers.unsynced.remove(&p.id);
                    } else {
                        behind = true;
                    }
                }
            }
        }
        behind
    }
}

/// An unsynced watcher as a sync round found it.
struct Pending {
    id: u64,
    next_rev: i64,
    stalled: bool,
    spec: Arc<WatchSpec>,
}

/// [`WatchHub::notify`] on the locked watchers: the index gives the
/// watchers each event may concern, grouped by watcher in event order.
fn notify_locked(watchers: &mut Watchers, events: &[Event], revision: i64) {
    if events.is_empty() {
        return;
    }
    let mut hits = std::mem::take(&mut watchers.hits);
    hits.clear();
    for (i, ev) in events.iter().enumerate() {
        let key = &ev.kv.as_ref().expect("events carry a kv").key;
        watchers.index.candidates(key, |id| hits.push((id, i)));
    }
    if events.len() > 1 {
        // A watcher is found at most once per event: group by watcher,
        // keeping event order.
        hits.sort_unstable();
    }
    // The revision's events, copied once for every watcher that wants
    // them all (most do: a watcher of the key, or of a prefix that every
    // changed key of the revision is under).
    let mut all: Option<Events> = None;
    for group in hits.chunk_by(|a, b| a.0 == b.0) {
        let id = group[0].0;
        let Some(w) = watchers.by_id.get_mut(&id) else {
            continue;
        };
        if !w.synced || revision < w.next_rev {
            continue;
        }
        let wanted = group.iter().filter(|(_, i)| w.spec.wants(&events[*i]));
        let n = wanted.clone().count();
        let mine = if n == 0 {
            continue;
        } else if n == events.len() {
            all.get_or_insert_with(|| Events::from(events.to_vec()))
                .clone()
        } else {
            Events::from(wanted.map(|(_, i)| events[*i].clone()).collect::<Vec<_>>())
        };
        if !(w.sink)(Delivery::Events {
            events: mine,
            revision,
        }) {
            tracing::debug!(
                revision,
                "a slow watcher fell behind; it catches up from the store"
            );
            w.stalled = true;
            unsync(&mut watchers.unsynced, id, w, revision);
            continue;
        }
        w.active = true;
        w.next_rev = revision + 1;
    }
    watchers.hits = hits;
}

/// The events of `events` a watcher wants from `from` on, cut at a revision
/// boundary after [`SYNC_BATCH_EVENTS`] events or [`SYNC_BATCH_BYTES`]; and
/// the last revision the batch covers (`to` when nothing was cut).
fn batch_for(spec: &WatchSpec, events: &[Event], from: i64, to: i64) -> (Vec<Event>, i64) {
    let mut out: Vec<Event> = Vec::new();
    let mut bytes = 0;
    for ev in events {
        let kv = ev.kv.as_ref().expect("events carry a kv");
        let rev = kv.mod_revision;
        if rev < from || !spec.wants(ev) {
            continue;
        }
        if out.len() >= SYNC_BATCH_EVENTS || bytes >= SYNC_BATCH_BYTES {
            let last = out
                .last()
                .and_then(|e| e.kv.as_ref())
                .map_or(0, |kv| kv.mod_revision);
            if rev != last {
                return (out, last);
            }
        }
        bytes += kv.key.len() + kv.value.len();
        out.push(ev.clone());
    }
    (out, to)
}

/// A PUT event for `kv`.
pub fn put_event(kv: KeyValue) -> Event {
    Event {
        r#type: EventType::Put as i32,
        kv: Some(kv),
        prev_kv: None,
    }
}

/// A DELETE event for `key` at `revision`.
pub fn delete_event(key: Vec<u8>, revision: i64) -> Event {
    Event {
        r#type: EventType::Delete as i32,
        kv: Some(KeyValue {
            key,
            mod_revision: revision,
            ..Default::default()
        }),
        prev_kv: None,
    }
}

#[cfg(test)]
mod tests;

//! The lessor (etcd's `lease` package): leases, their TTLs, the keys
//! attached to them, and when they expire.
//!
//! Grants and revocations are raft entries applied by the apply stage (so
//! every member has the same leases, stored in the backend's `lease`
//! table); which key belongs to which lease is rebuilt from the keys'
//! `lease` field at start. Expiry is the leader's alone: only the leader
//! keeps deadlines (promoted to a full TTL when it becomes leader, so no
//! lease expires because of an election), renews them on keep-alives in
//! memory, and proposes the revocation of expired leases through raft.
//!
//! Lease checkpoints (etcd 3.5 `--experimental-enable-lease-checkpoint`):
//! the leader periodically proposes each lease's remaining TTL through
//! raft, so a new leader promotes a lease to what was left of it instead of
//! its full TTL; a keep-alive clears the checkpoint. With
//! `--experimental-enable-lease-checkpoint-persist` the remaining TTL is
//! also written to the backend and survives a restart of the cluster.

use std::cmp::Reverse;
use std::collections::{BTreeMap, BTreeSet, BinaryHeap, HashMap};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use api::etcdserverpb::LeaseCheckpoint;

/// Largest TTL a lease may have, in seconds (etcd's `MaxLeaseTTL`).
pub const MAX_LEASE_TTL: i64 = 9_000_000_000;

struct Lease {
    /// Granted TTL, in seconds.
    ttl: i64,
    /// Remaining TTL of the last checkpoint, in seconds (0: none).
    remaining_ttl: i64,
    /// When it expires; only on the leader.
    expiry: Option<Instant>,
    /// When its remaining TTL is next checkpointed; only on the leader.
    next_checkpoint: Option<Instant>,
    keys: BTreeSet<Vec<u8>>,
}

impl Lease {
    /// Seconds it has when no leader counts them down: what its last
    /// checkpoint left, else its granted TTL.
    fn left(&self) -> i64 {
        if self.remaining_ttl > 0 {
            self.remaining_ttl
        } else {
            self.ttl
        }
    }
}

/// Takes the soonest `(time, lease id)` off `heap` if its time is at or
/// before `now` (deadlines and checkpoints alike; an entry may be stale,
/// the caller checks it against the lease).
fn pop_due(heap: &mut BinaryHeap<Reverse<(Instant, i64)>>, now: Instant) -> Option<(Instant, i64)> {
    let Reverse((at, _)) = heap.peek()?;
    if *at > now {
        return None;
    }
    heap.pop().map(|Reverse(due)| due)
}

#[derive(Default)]
struct Inner {
    leases: BTreeMap<i64, Lease>,
    /// Which lease each attached key belongs to.
    key_lease: HashMap<Vec<u8>, i64>,
    primary: bool,
    /// Deadlines, soonest first. An entry whose time is not its lease's
    /// current deadline (renewed, or revoked) is stale and skipped.
    deadlines: BinaryHeap<Reverse<(Instant, i64)>>,
    /// Checkpoint times (leader only, with checkpoints enabled), soonest
    /// first; stale like `deadlines` unless it is the lease's
    /// `next_checkpoint`.
    checkpoints: BinaryHeap<Reverse<(Instant, i64)>>,
}

impl Inner {
    fn set_deadline(&mut self, id: i64, at: Instant) {
        if let Some(l) = self.leases.get_mut(&id) {
            l.expiry = Some(at);
            self.deadlines.push(Reverse((at, id)));
        }
    }
}

/// What a keep-alive did to a lease.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Renewed {
    /// The lease's full TTL, in seconds.
    pub ttl: i64,
    /// The lease had a checkpointed remaining TTL, now void: the leader
    /// must propose a checkpoint of 0 so every member forgets it.
    pub clear_checkpoint: bool,
}

/// What `TimeToLive` reports of a lease.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LeaseInfo {
    /// Granted TTL, in seconds.
    pub granted_ttl: i64,
    /// Seconds left (where this member does not lead: the last
    /// checkpoint's remaining TTL, else the granted TTL).
    pub remaining_ttl: i64,
    /// Keys attached.
    pub keys: Vec<Vec<u8>>,
}

/// All leases of a member.
#[derive(Default)]
pub struct Lessor {
    inner: Mutex<Inner>,
    /// Smallest TTL granted, in seconds.
    min_ttl: i64,
    /// How often remaining TTLs are checkpointed; `None`: never.
    checkpoint_interval: Option<Duration>,
    /// Whether checkpointed remaining TTLs go to the backend too.
    persist_checkpoints: bool,
}

impl Lessor {
    /// A lessor granting at least `min_ttl` seconds (etcd: 1.5 election
    /// timeouts, rounded up), without checkpoints.
    pub fn new(min_ttl: i64) -> Lessor {
        Lessor {
            min_ttl,
            ..Lessor::default()
        }
    }

    /// The same lessor, checkpointing remaining TTLs every `interval`
    /// (etcd's `--experimental-lease-checkpoint-interval`), and keeping
    /// them in the backend when `persist`. An interval under 1 ms counts
    /// as 1 ms.
    pub fn with_checkpoints(self, interval: Duration, persist: bool) -> Lessor {
        Lessor {
            checkpoint_interval: Some(interval.max(Duration::from_millis(1))),
            persist_checkpoints: persist,
            ..self
        }
    }

    /// Whether applied checkpoints are written to the backend.
    pub fn persists_checkpoints(&self) -> bool {
        self.persist_checkpoints
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner.lock().expect("lessor lock")
    }

    /// The TTL a grant of `ttl` seconds gets.
    pub fn effective_ttl(&self, ttl: i64) -> i64 {
        ttl.max(self.min_ttl)
    }

    /// Whether lease `id` exists.
    pub fn exists(&self, id: i64) -> bool {
        self.lock().leases.contains_key(&id)
    }

    /// Adds a lease (applied grant, or restored from the backend with the
    /// remaining TTL of its last persisted checkpoint, 0 if none).
    pub fn grant(&self, id: i64, ttl: i64, remaining_ttl: i64) {
        let mut inner = self.lock();
        inner.leases.insert(
            id,
            Lease {
                ttl,
                remaining_ttl,
                expiry: None,
                next_checkpoint: None,
                keys: BTreeSet::new(),
            },
        );
        if inner.primary {
            let now = Instant::now();
            inner.set_deadline(id, now + secs(ttl));
            self.schedule_checkpoint(&mut inner, id, ttl, now);
        }
    }

    /// Sets the next checkpoint of a lease with `remaining` seconds left:
    /// one interval from now if checkpoints are on and it outlives the
    /// interval, else none.
    fn schedule_checkpoint(&self, inner: &mut Inner, id: i64, remaining: i64, now: Instant) {
        let at = self
            .checkpoint_interval
            .filter(|every| secs(remaining) > *every)
            .map(|every| now + every);
        if let Some(l) = inner.leases.get_mut(&id) {
            l.next_checkpoint = at;
            if let Some(at) = at {
                inner.checkpoints.push(Reverse((at, id)));
            }
        }
    }

    /// Removes a lease; returns its keys (to delete), or `None` if unknown.
    pub fn revoke(&self, id: i64) -> Option<Vec<Vec<u8>>> {
        let mut inner = self.lock();
        let lease = inner.leases.remove(&id)?;
        for k in &lease.keys {
            inner.key_lease.remove(k);
        }
        Some(lease.keys.into_iter().collect())
    }

    /// Records that `key` now has lease `id` (0: none).
    pub fn attach(&self, key: &[u8], id: i64) {
        let mut inner = self.lock();
        let old = if id == 0 {
            inner.key_lease.remove(key)
        } else {
            inner.key_lease.insert(key.to_vec(), id)
        };
        if let Some(old) = old.filter(|o| *o != id) {
            if let Some(l) = inner.leases.get_mut(&old) {
                l.keys.remove(key);
            }
        }
        if id != 0 {
            if let Some(l) = inner.leases.get_mut(&id) {
                l.keys.insert(key.to_vec());
            }
        }
    }

    /// Records that `keys` were deleted.
    pub fn detach(&self, keys: &[Vec<u8>]) {
        let mut inner = self.lock();
        for k in keys {
            if let Some(id) = inner.key_lease.remove(k) {
                if let Some(l) = inner.leases.get_mut(&id) {
                    l.keys.remove(k);
                }
            }
        }
    }

    /// Renews lease `id` for its full TTL (leader only), or `None` if it
    /// does not exist.
    pub fn renew(&self, id: i64) -> Option<Renewed> {
        let mut inner = self.lock();
        let primary = inner.primary;
        let l = inner.leases.get_mut(&id)?;
        let ttl = l.ttl;
        let clear_checkpoint = self.checkpoint_interval.is_some() && l.remaining_ttl > 0;
        let unscheduled = l.next_checkpoint.is_none();
        l.remaining_ttl = 0;
        if primary {
            let now = Instant::now();
            inner.set_deadline(id, now + secs(ttl));
            if unscheduled {
                self.schedule_checkpoint(&mut inner, id, ttl, now);
            }
        }
        Some(Renewed {
            ttl,
            clear_checkpoint,
        })
    }

    /// Applies a checkpoint: lease `id` has `remaining_ttl` seconds left
    /// (0: forget the checkpoint). Returns the lease's granted TTL, or
    /// `None` if it does not exist.
    pub fn checkpoint(&self, id: i64, remaining_ttl: i64) -> Option<i64> {
        let mut inner = self.lock();
        let l = inner.leases.get_mut(&id)?;
        l.remaining_ttl = remaining_ttl;
        Some(l.ttl)
    }

    /// Up to `limit` checkpoints that are due (leader only): leases whose
    /// remaining TTL is below their granted TTL, with what is left, rounded
    /// up to whole seconds. Each lease's next checkpoint is then one
    /// interval later, while it outlives the interval (a renewal schedules
    /// it again).
    pub fn due_checkpoints(&self, limit: usize) -> Vec<LeaseCheckpoint> {
        self.due_checkpoints_at(Instant::now(), limit)
    }

    fn due_checkpoints_at(&self, now: Instant, limit: usize) -> Vec<LeaseCheckpoint> {
        let mut inner = self.lock();
        let mut out = Vec::new();
        while out.len() < limit {
            let Some((at, id)) = pop_due(&mut inner.checkpoints, now) else {
                break;
            };
            let Some(l) = inner.leases.get_mut(&id) else {
                continue;
            };
            if l.next_checkpoint != Some(at) {
                continue;
            }
            l.next_checkpoint = None;
            let Some(expiry) = l.expiry.filter(|e| *e > now) else {
                // Expiring: a renewal schedules it again.
                continue;
            };
            let remaining_ttl = (expiry - now).as_secs_f64().ceil() as i64;
            if remaining_ttl < l.ttl {
                out.push(LeaseCheckpoint { id, remaining_ttl });
            }
            self.schedule_checkpoint(&mut inner, id, remaining_ttl, now);
        }
        out
    }

    /// What `TimeToLive` reports, or `None` if the lease does not exist.
    pub fn info(&self, id: i64) -> Option<LeaseInfo> {
        let inner = self.lock();
        let l = inner.leases.get(&id)?;
        let remaining = match l.expiry {
            Some(e) => e.saturating_duration_since(Instant::now()).as_secs() as i64,
            None => l.left(),
        };
        Some(LeaseInfo {
            granted_ttl: l.ttl,
            remaining_ttl: remaining,
            keys: l.keys.iter().cloned().collect(),
        })
    }

    /// The keys attached to lease `id`, none if it does not exist.
    pub fn keys(&self, id: i64) -> Vec<Vec<u8>> {
        let inner = self.lock();
        inner
            .leases
            .get(&id)
            .map(|l| l.keys.iter().cloned().collect())
            .unwrap_or_default()
    }

    /// Every lease id, in order.
    pub fn ids(&self) -> Vec<i64> {
        self.lock().leases.keys().copied().collect()
    }

    /// Becomes the leader's lessor: every lease gets its full TTL from
    /// now, or what its last checkpoint left of it, plus `extend` (etcd
    /// passes one election timeout, so clients have time to find the new
    /// leader before their leases expire; lessor.go `Promote`).
    pub fn promote(&self, extend: Duration) {
        let mut inner = self.lock();
        inner.primary = true;
        let now = Instant::now();
        let left: Vec<(i64, i64)> = inner.leases.iter().map(|(id, l)| (*id, l.left())).collect();
        inner.deadlines.clear();
        inner.checkpoints.clear();
        for (id, left) in left {
            inner.set_deadline(id, now + extend + secs(left));
            self.schedule_checkpoint(&mut inner, id, left, now);
        }
    }

    /// Whether this lessor expires leases (it was promoted, not demoted
    /// since).
    pub fn is_primary(&self) -> bool {
        self.lock().primary
    }

    /// No longer the leader: deadlines are the new leader's business.
    pub fn demote(&self) {
        let mut inner = self.lock();
        inner.primary = false;
        inner.deadlines.clear();
        inner.checkpoints.clear();
        for l in inner.leases.values_mut() {
            l.expiry = None;
            l.next_checkpoint = None;
        }
    }

    /// Up to `limit` leases past their deadline (leader only), soonest
    /// first. Each gets a new deadline `RETRY` later, so a revocation that
    /// does not go through is proposed again.
    pub fn expired(&self, limit: usize) -> Vec<i64> {
        const RETRY: Duration = Duration::from_secs(3);
        let now = Instant::now();
        let mut inner = self.lock();
        let mut out = Vec::new();
        while out.len() < limit {
            let Some((at, id)) = pop_due(&mut inner.deadlines, now) else {
                break;
            };
            let current = inner.leases.get(&id).and_then(|l| l.expiry);
            if current == Some(at) {
                out.push(id);
                inner.set_deadline(id, now + RETRY);
            }
        }
        out
    }

    /// Forgets everything (before a reload from a replaced backend).
    pub fn clear(&self) {
        let mut inner = self.lock();
        inner.leases.clear();
        inner.key_lease.clear();
        inner.deadlines.clear();
        inner.checkpoints.clear();
    }
}

fn secs(s: i64) -> Duration {
    Duration::from_secs(s.max(0) as u64)
}

/// Loads `lessor` afresh from `store`: the leases of the `lease` table,
/// with the keys that name them attached. Error: the backend's, or a
/// corrupt record.
pub fn load(store: &storage::KvStore, lessor: &Lessor) -> Result<(), String> {
    fn text(e: impl std::fmt::Display) -> String {
        e.to_string()
    }
    lessor.clear();
    for l in storage::schema::lease::load(store.backend()).map_err(text)? {
        lessor.grant(l.id, l.ttl, l.remaining_ttl);
    }
    let all = storage::mvcc::RangeOptions::default();
    let kvs = store
        .range(b"\0", storage::mvcc::RangeEnd::Unbounded, all)
        .map_err(text)?
        .kvs;
    for kv in kvs.iter().filter(|kv| kv.lease != 0) {
        lessor.attach(&kv.key, kv.lease);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_follow_their_lease_and_revoke_returns_them() {
        let l = Lessor::new(2);
        assert_eq!(l.effective_ttl(1), 2);
        l.grant(1, 10, 0);
        l.grant(2, 10, 0);
        l.attach(b"a", 1);
        l.attach(b"b", 1);
        l.attach(b"a", 2); // moved
        l.detach(&[b"b".to_vec()]);
        assert_eq!(l.info(1).unwrap().keys, Vec::<Vec<u8>>::new());
        assert_eq!(l.revoke(2), Some(vec![b"a".to_vec()]));
        assert_eq!(l.revoke(2), None);
    }

    #[test]
    fn a_renewed_lease_is_not_expired_by_its_old_deadline() {
        let l = Lessor::new(0);
        l.promote(Duration::ZERO);
        l.grant(1, 0, 0);
        l.grant(2, 100, 0);
        assert_eq!(l.renew(1).map(|r| r.ttl), Some(0));
        // Lease 1 has two deadlines queued (grant, renew); it is reported
        // once, and lease 2 not at all.
        assert_eq!(l.expired(10), vec![1]);
        assert!(l.expired(10).is_empty());
        l.revoke(1);
        assert!(l.expired(10).is_empty());
    }

    #[test]
    fn only_the_leader_expires_leases_and_promotion_gives_full_ttls() {
        let l = Lessor::new(0);
        l.grant(1, 0, 0);
        assert!(l.expired(10).is_empty(), "a follower keeps no deadlines");
        l.promote(Duration::ZERO);
        assert_eq!(l.expired(10), vec![1]);
        l.grant(2, 100, 0);
        assert_eq!(l.renew(2).map(|r| r.ttl), Some(100));
        assert!((99..=100).contains(&l.info(2).unwrap().remaining_ttl));
        l.demote();
        assert!(l.expired(10).is_empty());
    }

    #[test]
    fn checkpoints_carry_the_remaining_ttl_to_the_next_leader() {
        let every = Duration::from_secs(1);
        let leader = Lessor::new(0).with_checkpoints(every, false);
        leader.promote(Duration::ZERO);
        leader.grant(1, 100, 0);
        assert!(leader.due_checkpoints(10).is_empty(), "not due yet");
        let later = Instant::now() + every;
        assert_eq!(
            leader.due_checkpoints_at(later, 10),
            vec![LeaseCheckpoint {
                id: 1,
                remaining_ttl: 99
            }]
        );
        assert!(
            leader.due_checkpoints_at(later, 10).is_empty(),
            "next one a second later"
        );

        // A follower applies the checkpoints the leader proposed.
        let follower = Lessor::new(0).with_checkpoints(every, false);
        follower.grant(1, 100, 0);
        follower.grant(2, 100, 0);
        assert_eq!(follower.checkpoint(1, 40), Some(100));
        assert_eq!(follower.checkpoint(2, 40), Some(100));
        assert_eq!(follower.checkpoint(3, 40), None);
        // A keep-alive voids lease 2's checkpoint, and says so once.
        assert_eq!(
            follower.renew(2),
            Some(Renewed {
                ttl: 100,
                clear_checkpoint: true
            })
        );
        assert!(!follower.renew(2).unwrap().clear_checkpoint);

        follower.promote(Duration::ZERO);
        assert!((39..=40).contains(&follower.info(1).unwrap().remaining_ttl));
        assert!((99..=100).contains(&follower.info(2).unwrap().remaining_ttl));
        // The new leader checkpoints both in turn, from what it gave them.
        assert_eq!(
            follower.due_checkpoints_at(Instant::now() + every, 10),
            vec![
                LeaseCheckpoint {
                    id: 1,
                    remaining_ttl: 39
                },
                LeaseCheckpoint {
                    id: 2,
                    remaining_ttl: 99
                }
            ]
        );
    }

    #[test]
    fn promotion_extends_every_lease_by_the_given_time() {
        let l = Lessor::new(0);
        l.grant(1, 10, 0);
        l.promote(Duration::from_secs(5));
        assert!((14..=15).contains(&l.info(1).unwrap().remaining_ttl));
        // A lease granted once leading gets its TTL only.
        l.grant(2, 10, 0);
        assert!((9..=10).contains(&l.info(2).unwrap().remaining_ttl));
    }

    #[test]
    fn without_checkpoints_nothing_is_scheduled() {
        let l = Lessor::new(0);
        l.promote(Duration::ZERO);
        l.grant(1, 100, 0);
        assert!(l.due_checkpoints(10).is_empty());
        assert_eq!(l.checkpoint(1, 30), Some(100));
        assert!(!l.renew(1).unwrap().clear_checkpoint);
    }
}

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

use std::cmp::Reverse;
use std::collections::{BTreeMap, BTreeSet, BinaryHeap, HashMap};
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// Largest TTL a lease may have, in seconds (etcd's `MaxLeaseTTL`).
pub const MAX_LEASE_TTL: i64 = 9_000_000_000;

struct Lease {
    /// Granted TTL, in seconds.
    ttl: i64,
    /// When it expires; only on the leader.
    expiry: Option<Instant>,
    keys: BTreeSet<Vec<u8>>,
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
}

impl Inner {
    fn set_deadline(&mut self, id: i64, at: Instant) {
        if let Some(l) = self.leases.get_mut(&id) {
            l.expiry = Some(at);
            self.deadlines.push(Reverse((at, id)));
        }
    }
}

/// What `TimeToLive` reports of a lease.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LeaseInfo {
    /// Granted TTL, in seconds.
    pub granted_ttl: i64,
    /// Seconds left (the granted TTL where this member does not lead).
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
}

impl Lessor {
    /// A lessor granting at least `min_ttl` seconds (etcd: 1.5 election
    /// timeouts, rounded up).
    pub fn new(min_ttl: i64) -> Lessor {
        Lessor {
            inner: Mutex::new(Inner::default()),
            min_ttl,
        }
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

    /// Adds a lease (applied grant or restored from the backend).
    pub fn grant(&self, id: i64, ttl: i64) {
        let mut inner = self.lock();
        inner.leases.insert(
            id,
            Lease {
                ttl,
                expiry: None,
                keys: BTreeSet::new(),
            },
        );
        if inner.primary {
            inner.set_deadline(id, Instant::now() + secs(ttl));
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

    /// Renews lease `id` for its full TTL (leader only); returns the TTL,
    /// or `None` if it does not exist.
    pub fn renew(&self, id: i64) -> Option<i64> {
        let mut inner = self.lock();
        let ttl = inner.leases.get(&id)?.ttl;
        if inner.primary {
            inner.set_deadline(id, Instant::now() + secs(ttl));
        }
        Some(ttl)
    }

    /// What `TimeToLive` reports, or `None` if the lease does not exist.
    pub fn info(&self, id: i64) -> Option<LeaseInfo> {
        let inner = self.lock();
        let l = inner.leases.get(&id)?;
        let remaining = match l.expiry {
            Some(e) => e.saturating_duration_since(Instant::now()).as_secs() as i64,
            None => l.ttl,
        };
        Some(LeaseInfo {
            granted_ttl: l.ttl,
            remaining_ttl: remaining,
            keys: l.keys.iter().cloned().collect(),
        })
    }

    /// Every lease id, in order.
    pub fn ids(&self) -> Vec<i64> {
        self.lock().leases.keys().copied().collect()
    }

    /// Becomes the leader's lessor: every lease gets its full TTL from now.
    pub fn promote(&self) {
        let mut inner = self.lock();
        inner.primary = true;
        let now = Instant::now();
        let ttls: Vec<(i64, i64)> = inner.leases.iter().map(|(id, l)| (*id, l.ttl)).collect();
        inner.deadlines.clear();
        for (id, ttl) in ttls {
            inner.set_deadline(id, now + secs(ttl));
        }
    }

    /// No longer the leader: deadlines are the new leader's business.
    pub fn demote(&self) {
        let mut inner = self.lock();
        inner.primary = false;
        inner.deadlines.clear();
        for l in inner.leases.values_mut() {
            l.expiry = None;
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
            let Some(Reverse((at, id))) = inner.deadlines.peek().copied() else {
                break;
            };
            if at > now {
                break;
            }
            inner.deadlines.pop();
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
    }
}

fn secs(s: i64) -> Duration {
    Duration::from_secs(s.max(0) as u64)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_follow_their_lease_and_revoke_returns_them() {
        let l = Lessor::new(2);
        assert_eq!(l.effective_ttl(1), 2);
        l.grant(1, 10);
        l.grant(2, 10);
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
        l.promote();
        l.grant(1, 0);
        l.grant(2, 100);
        assert_eq!(l.renew(1), Some(0));
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
        l.grant(1, 0);
        assert!(l.expired(10).is_empty(), "a follower keeps no deadlines");
        l.promote();
        assert_eq!(l.expired(10), vec![1]);
        l.grant(2, 100);
        assert_eq!(l.renew(2), Some(100));
        assert!((99..=100).contains(&l.info(2).unwrap().remaining_ttl));
        l.demote();
        assert!(l.expired(10).is_empty());
    }
}

//! The apply stage: one thread that applies committed raft entries, in
//! order, to the mvcc store and membership, and answers their waiters.
//!
//! Each batch of entries is one backend transaction that also records the
//! consistent index, so an entry at or below the stored consistent index is
//! never applied twice (after a restart the WAL is replayed from there).
//! Commits skip fsync except every [`Backend::DURABLE_COMMIT_INTERVAL`]:
//! the WAL already made the entries durable. Waiters are answered only
//! after the commit, so a client never reads less than it was told.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

use api::etcdserverpb::{
    CompactionResponse, DeleteRangeResponse, InternalRaftRequest, LeaseGrantResponse,
    LeaseRevokeResponse, PutResponse, ResponseHeader, TxnResponse,
};
use crossbeam_channel::{Receiver, RecvTimeoutError};
use prost::Message;
use raft::prelude::{Entry, EntryType};
use storage::backend::{CLUSTER_TABLE, LEASE_TABLE, MEMBERS_TABLE};
use storage::mvcc::RangeEnd;
use storage::snap::Snapshotter;
use storage::{Backend, KvStore};
use tokio::sync::watch;

use super::kvops;
use super::membership::Membership;
use super::raft::{ApplyItem, RaftStatus};
use super::wait::Wait;
use crate::lease::Lessor;
use crate::rpctypes::EtcdError;

/// What applying a request produced, for its waiter.
#[derive(Debug)]
pub enum Applied {
    /// A Put's response (header revision set).
    Put(PutResponse),
    /// A DeleteRange's response.
    DeleteRange(DeleteRangeResponse),
    /// A Txn's response.
    Txn(TxnResponse),
    /// A Compaction's response.
    Compaction(CompactionResponse),
    /// A LeaseGrant's response (header to fill).
    LeaseGrant(LeaseGrantResponse),
    /// A LeaseRevoke's response (header to fill).
    LeaseRevoke(LeaseRevokeResponse),
    /// A request with nothing to answer (membership, cluster version).
    Done,
}

/// The outcome a waiter receives.
pub type ApplyOutcome = Result<Applied, EtcdError>;

/// Key of the cluster version in the `cluster` table.
const CLUSTER_VERSION_KEY: &[u8] = b"clusterVersion";

/// The cluster version, once set through raft (etcd's `clusterVersion`).
#[derive(Default)]
pub struct ClusterVersion(RwLock<Option<String>>);

impl ClusterVersion {
    /// Loads the stored version, if any.
    pub fn load(store: &KvStore) -> Result<ClusterVersion, EtcdError> {
        let read = || -> Result<Option<String>, storage::BackendError> {
            let rtx = store.backend().read()?;
            let t = rtx.open_table(CLUSTER_TABLE).map_err(redb_err)?;
            let v = t.get(CLUSTER_VERSION_KEY).map_err(redb_err)?;
            Ok(v.map(|v| String::from_utf8_lossy(v.value()).into_owned()))
        };
        let v = read().map_err(|e| EtcdError::Internal(e.to_string()))?;
        Ok(ClusterVersion(RwLock::new(v)))
    }

    /// Reads the stored version again (after a snapshot replaced the
    /// backend).
    pub fn reload(&self, store: &KvStore) -> Result<(), EtcdError> {
        let fresh = ClusterVersion::load(store)?;
        *self.0.write().expect("version lock") = fresh.get();
        Ok(())
    }

    /// The version, e.g. `3.5.0`, if set.
    pub fn get(&self) -> Option<String> {
        self.0.read().expect("version lock").clone()
    }
}

fn redb_err(e: impl Into<redb::Error>) -> storage::BackendError {
    storage::BackendError::Redb(e.into())
}

/// `3.5.0` -> `3.5`, as etcd logs capabilities.
fn major_minor(v: &str) -> String {
    v.split('.').take(2).collect::<Vec<_>>().join(".")
}

/// The apply stage's state.
pub struct Applier {
    /// The key-value store.
    pub store: Arc<KvStore>,
    /// Cluster members.
    pub membership: Arc<Membership>,
    /// The cluster version.
    pub cluster_version: Arc<ClusterVersion>,
    /// Waiters of proposals.
    pub wait: Arc<Wait<ApplyOutcome>>,
    /// Publishes the applied index.
    pub applied: watch::Sender<u64>,
    /// The consistent index as of the last durable backend commit.
    pub durable_index: Arc<AtomicU64>,
    /// Where backends received with snapshots wait.
    pub snapshotter: Arc<Snapshotter>,
    /// The leases.
    pub lessor: Arc<Lessor>,
    /// The leader and term the raft loop last saw.
    pub raft_status: Arc<RaftStatus>,
    /// This member's id.
    pub member_id: u64,
    /// What a new leader adds to every lease: one election timeout.
    pub lease_extend: Duration,
}

impl Applier {
    /// Applies batches from `rx` until it closes, then makes the backend
    /// durable.
    pub fn run(self, rx: Receiver<ApplyItem>) {
        let mut last_durable = Instant::now();
        let mut dirty = false;
        loop {
            match rx.recv_timeout(Backend::DURABLE_COMMIT_INTERVAL) {
                Ok(ApplyItem::Snapshot { index, term }) => {
                    self.restore(index, term);
                    last_durable = Instant::now();
                    dirty = false;
                }
                Ok(ApplyItem::Entries(entries)) => {
                    let durable = last_durable.elapsed() >= Backend::DURABLE_COMMIT_INTERVAL;
                    self.apply_batch(&entries, durable);
                    if durable {
                        last_durable = Instant::now();
                    }
                    dirty = !durable;
                }
                Err(RecvTimeoutError::Timeout) => {
                    if dirty {
                        self.apply_batch(&[], true);
                        last_durable = Instant::now();
                        dirty = false;
                    }
                }
                Err(RecvTimeoutError::Disconnected) => break,
            }
        }
        self.apply_batch(&[], true);
    }

    fn apply_batch(&self, entries: &[Entry], durable: bool) {
        let consistent = self.store.consistent_index();
        let mut txn = if durable {
            self.store.begin_durable()
        } else {
            self.store.begin()
        }
        .expect("backend must accept a write transaction");
        let mut answers = Vec::new();
        let mut last = None;
        for e in entries {
            last = Some(e.index);
            if e.index <= consistent {
                continue;
            }
            if e.get_entry_type() == EntryType::EntryNormal && e.data.is_empty() {
                self.on_leader_entry(e.term);
            } else if e.get_entry_type() == EntryType::EntryNormal {
                match InternalRaftRequest::decode(e.data.as_ref()) {
                    Ok(req) => {
                        let outcome = self.apply_request(&mut txn, &req);
                        if let Err(e) = &outcome {
                            if txn.read_rev() != txn.revision() {
                                // Checks run before changes; an error after
                                // one would commit half a request.
                                super::fatal("a request failed after changing the store", e);
                            }
                        }
                        txn.end_request();
                        if let Some(h) = req.header {
                            answers.push((h.id, outcome));
                        }
                    }
                    Err(err) => {
                        tracing::error!(index = e.index, error = %err, "failed to unmarshal raft request")
                    }
                }
            }
            txn.set_consistent_index(e.index, e.term);
        }
        txn.commit().expect("backend must commit");
        if durable {
            self.durable_index
                .store(self.store.consistent_index(), Ordering::Release);
        }
        if let Some(index) = last {
            self.applied.send_if_modified(|applied| {
                let newer = index > *applied;
                *applied = (*applied).max(index);
                newer
            });
        }
        for (id, outcome) in answers {
            self.wait.trigger(id, outcome);
        }
    }

    /// A new leader appends an empty entry to its term; when the leader
    /// itself applies it, every earlier entry (grants, checkpoints) is
    /// applied and the lessor starts expiring leases (etcd's
    /// `applyEntryNormal` promoting the lessor).
    fn on_leader_entry(&self, term: u64) {
        let leader = self.raft_status.leader.load(Ordering::Acquire);
        let current = self.raft_status.term.load(Ordering::Acquire);
        if leader == self.member_id && term == current {
            self.lessor.promote(self.lease_extend);
        }
    }

    /// Replaces the store with the backend received with the leader's
    /// snapshot at `index`, then reloads membership and cluster version.
    fn restore(&self, index: u64, term: u64) {
        let path = self.snapshotter.db_path(term, index);
        if let Err(e) = self.store.restore_from(&path, index) {
            super::fatal("failed to load the database snapshot", &e);
        }
        if let Err(e) = self.snapshotter.purge_staged(index) {
            tracing::warn!(error = %e, "failed to remove received snapshots already loaded");
        }
        match super::load_members(self.store.backend()) {
            Ok(members) => self.membership.replace(members),
            Err(e) => super::fatal("failed to load members from the snapshot", &e),
        }
        if let Err(e) = super::load_leases(&self.store, &self.lessor) {
            super::fatal("failed to load leases from the snapshot", &e);
        }
        if let Err(e) = self.cluster_version.reload(&self.store) {
            super::fatal("failed to load the cluster version from the snapshot", &e);
        }
        self.durable_index
            .store(self.store.consistent_index(), Ordering::Release);
        self.applied.send_replace(index);
        tracing::info!(
            snapshot_index = index,
            revision = self.store.current_revision(),
            "restored the backend from the leader's snapshot"
        );
    }

    fn apply_request(
        &self,
        txn: &mut storage::mvcc::StoreTxn<'_>,
        req: &InternalRaftRequest,
    ) -> ApplyOutcome {
        if let Some(r) = &req.put {
            return kvops::put(txn, r, &self.lessor).map(Applied::Put);
        }
        if let Some(r) = &req.delete_range {
            return kvops::delete_range(txn, r, &self.lessor).map(Applied::DeleteRange);
        }
        if let Some(r) = &req.txn {
            return kvops::txn(txn, r, &self.lessor).map(Applied::Txn);
        }
        if let Some(r) = &req.compaction {
            return kvops::compact(txn, r).map(Applied::Compaction);
        }
        if let Some(r) = &req.lease_grant {
            if self.lessor.exists(r.id) {
                return Err(EtcdError::LeaseExist);
            }
            let ttl = self.lessor.effective_ttl(r.ttl);
            put_lease_record(txn, r.id, ttl, 0)?;
            self.lessor.grant(r.id, ttl, 0);
            return Ok(Applied::LeaseGrant(LeaseGrantResponse {
                header: Some(ResponseHeader {
                    revision: txn.read_rev(),
                    ..Default::default()
                }),
                id: r.id,
                ttl,
                error: String::new(),
            }));
        }
        if let Some(r) = &req.lease_revoke {
            // Every attached key goes, in this one revision.
            let keys = self.lessor.revoke(r.id).ok_or(EtcdError::LeaseNotFound)?;
            for k in &keys {
                txn.delete_range(k, RangeEnd::Single)?;
            }
            let mut t = txn.backend_tx().open_table(LEASE_TABLE).map_err(internal)?;
            t.remove(r.id.to_be_bytes().as_slice()).map_err(internal)?;
            return Ok(Applied::LeaseRevoke(LeaseRevokeResponse {
                header: Some(ResponseHeader {
                    revision: txn.read_rev(),
                    ..Default::default()
                }),
            }));
        }
        if let Some(r) = &req.lease_checkpoint {
            for cp in &r.checkpoints {
                let Some(ttl) = self.lessor.checkpoint(cp.id, cp.remaining_ttl) else {
                    continue;
                };
                if self.lessor.persists_checkpoints() {
                    put_lease_record(txn, cp.id, ttl, cp.remaining_ttl)?;
                }
            }
            return Ok(Applied::Done);
        }
        if let Some(r) = &req.cluster_member_attr_set {
            let attrs = r.member_attributes.clone().unwrap_or_default();
            if let Some(m) =
                self.membership
                    .set_attributes(r.member_id, &attrs.name, &attrs.client_urls)
            {
                let json = serde_json::to_vec(&m).expect("member serialises");
                let mut t = txn
                    .backend_tx()
                    .open_table(MEMBERS_TABLE)
                    .map_err(internal)?;
                t.insert(m.id.to_be_bytes().as_slice(), json.as_slice())
                    .map_err(internal)?;
            }
            return Ok(Applied::Done);
        }
        if let Some(r) = &req.cluster_version_set {
            let mut t = txn
                .backend_tx()
                .open_table(CLUSTER_TABLE)
                .map_err(internal)?;
            t.insert(CLUSTER_VERSION_KEY, r.ver.as_bytes())
                .map_err(internal)?;
            let mut v = self.cluster_version.0.write().expect("version lock");
            if v.is_none() {
                tracing::info!(cluster_version = %major_minor(&r.ver), "set initial cluster version");
            }
            *v = Some(r.ver.clone());
            tracing::info!(cluster_version = %major_minor(&r.ver), "enabled capabilities for version");
            return Ok(Applied::Done);
        }
        tracing::warn!("ignored a raft request of a kind etcd-rs does not apply yet");
        Ok(Applied::Done)
    }
}

/// Writes lease `id`'s record (`lease::encode_record`) to the `lease`
/// table.
fn put_lease_record(
    txn: &storage::mvcc::StoreTxn<'_>,
    id: i64,
    ttl: i64,
    remaining_ttl: i64,
) -> Result<(), EtcdError> {
    let mut t = txn.backend_tx().open_table(LEASE_TABLE).map_err(internal)?;
    let record = crate::lease::encode_record(ttl, remaining_ttl);
    t.insert(id.to_be_bytes().as_slice(), record.as_slice())
        .map_err(internal)?;
    Ok(())
}

fn internal(e: impl std::fmt::Display) -> EtcdError {
    EtcdError::Internal(e.to_string())
}

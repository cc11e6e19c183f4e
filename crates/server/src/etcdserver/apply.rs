//! The apply stage: one thread that applies committed raft entries, in
//! order, to the mvcc store and membership, and answers their waiters.
//!
//! Each batch of entries is one backend transaction that also records the
//! consistent index, so an entry at or below the stored consistent index is
//! never applied twice (after a restart the WAL is replayed from there).
//! Batch commits skip fsync: the WAL already made the entries durable.
//! Waiters are answered right after their batch's commit, so a client
//! never reads less than it was told, and never waits for an fsync of the
//! backend: that comes after the answers, as an empty durable commit at
//! most every [`Backend::DURABLE_COMMIT_INTERVAL`], and makes durable
//! every batch before it. The consistent index it persists is always one
//! the WAL holds.
//!
//! A membership change (`ConfChangeV2`) is checked against the members
//! ([`Membership::validate`]); a valid one is written in the batch's
//! transaction and sent back to the raft loop for raft's configuration
//! and the transport; a refused one changes nothing and answers its
//! waiter with etcd's error.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

use api::etcdserverpb::alarm_request::AlarmAction;
use api::etcdserverpb::{
    AlarmMember, AlarmRequest, AlarmResponse, AlarmType, InternalRaftRequest, LeaseGrantRequest,
    LeaseGrantResponse, LeaseRevokeRequest, LeaseRevokeResponse, ResponseHeader,
};
use crossbeam_channel::{Receiver, RecvTimeoutError};
use prost::Message;
use protobuf::Message as _;
use raft::prelude::{ConfChangeV2, Entry, EntryType};
use storage::mvcc::RangeEnd;
use storage::snap::Snapshotter;
use storage::{Backend, KvStore};
use tokio::sync::watch;

use super::alarms::{alarm_name, AlarmStore};
use super::membership::{ConfChangeContext, MemberChange, Membership};
use super::request::Request;
use super::stage::{Applied, ApplyItem, ApplyOutcome, MembershipUpdate, RaftStatus};
use super::wait::Wait;
use super::{apply_auth, kvops};
use crate::auth::AuthStore;
use crate::lease::Lessor;
use crate::rpctypes::EtcdError;

/// The cluster version, once set through raft (etcd's `clusterVersion`).
#[derive(Default)]
pub struct ClusterVersion(RwLock<Option<String>>);

impl ClusterVersion {
    /// Loads the stored version, if any.
    pub fn load(store: &KvStore) -> Result<ClusterVersion, EtcdError> {
        let v = storage::schema::cluster::version(store.backend())
            .map_err(|e| EtcdError::Internal(e.to_string()))?;
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
    /// The consistent index as of the last backend commit known to be on
    /// disk.
    pub durable_index: Arc<AtomicU64>,
    /// Where backends received with snapshots wait.
    pub snapshotter: Arc<Snapshotter>,
    /// The leases.
    pub lessor: Arc<Lessor>,
    /// Users and roles.
    pub auth: Arc<AuthStore>,
    /// The active alarms.
    pub alarms: Arc<AlarmStore>,
    /// The leader and term the raft loop last saw.
    pub raft_status: Arc<RaftStatus>,
    /// This member's id.
    pub member_id: u64,
    /// What a new leader adds to every lease: one election timeout.
    pub lease_extend: Duration,
    /// Applied membership changes, to the raft loop.
    pub membership_tx: crossbeam_channel::Sender<MembershipUpdate>,
    /// Set once this member applied its own removal.
    pub removed: Arc<watch::Sender<bool>>,
    /// `--quota-backend-bytes`, resolved (bytes).
    pub quota_backend_bytes: u64,
    /// For a member that joined a running cluster: the index its
    /// membership was fetched at. Changes at or below it are in that
    /// membership already; checked again against it, an old refused one
    /// could pass.
    pub join_index: u64,
}

/// An apply at least this slow counts in `etcd_server_slow_apply_total`
/// (etcd: 100 ms).
const SLOW_APPLY: std::time::Duration = std::time::Duration::from_millis(100);

impl Applier {
    /// Applies batches from `rx` until it closes, then makes the backend
    /// durable. Batches commit without fsync; an empty durable commit
    /// follows every [`Backend::DURABLE_COMMIT_INTERVAL`] once the last
    /// one's fsync (on the backend's own thread) has finished, so no batch
    /// waits for the disk to flush, however slow it is.
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
                    self.apply_batch(&entries, false);
                    dirty = true;
                    if last_durable.elapsed() >= Backend::DURABLE_COMMIT_INTERVAL
                        && !self.store.backend().syncing()
                    {
                        self.apply_batch(&[], true);
                        last_durable = Instant::now();
                        dirty = false;
                    }
                }
                Err(RecvTimeoutError::Timeout) => {
                    if dirty && !self.store.backend().syncing() {
                        self.apply_batch(&[], true);
                        last_durable = Instant::now();
                        dirty = false;
                    }
                }
                Err(RecvTimeoutError::Disconnected) => break,
            }
        }
        self.apply_batch(&[], true);
        if let Err(e) = self.store.backend().wait_synced() {
            tracing::error!(error = %e, "the last backend commit did not reach the disk");
        }
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
            } else if e.get_entry_type() == EntryType::EntryConfChangeV2 {
                if let Some(answer) = self.apply_conf_change(&txn, e) {
                    answers.push(answer);
                }
            } else if e.get_entry_type() == EntryType::EntryNormal {
                match InternalRaftRequest::decode(e.data.as_ref()) {
                    Ok(req) => {
                        let started = Instant::now();
                        let outcome = self.apply_request(&mut txn, &req, e.index);
                        // etcd's warnApplyDuration.
                        if started.elapsed() >= SLOW_APPLY {
                            metrics::SLOW_APPLY.inc();
                        }
                        if let Err(e) = &outcome {
                            if txn.read_rev() != txn.revision() {
                                // Checks run before changes; an error after
                                // one would commit half a request.
                                crate::logging::fatal(
                                    "a request failed after changing the store",
                                    e,
                                );
                            }
                        }
                        txn.end_request();
                        let outcome = self.past_quota(&req, outcome);
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
            // Durable once its fsync, on the backend's own thread, is done.
            let (index, durable_index) =
                (self.store.consistent_index(), self.durable_index.clone());
            self.store.backend().then_synced(move || {
                durable_index.fetch_max(index, Ordering::AcqRel);
            });
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

    /// Applies the membership change in entry `e` if it passes etcd's
    /// checks; returns its waiter's id and answer.
    fn apply_conf_change(
        &self,
        txn: &storage::mvcc::StoreTxn<'_>,
        e: &Entry,
    ) -> Option<(u64, ApplyOutcome)> {
        if e.index <= self.join_index {
            return None;
        }
        let cc = match ConfChangeV2::parse_from_bytes(&e.data) {
            Ok(cc) => cc,
            Err(err) => {
                tracing::error!(index = e.index, error = %err, "failed to unmarshal a configuration change");
                return None;
            }
        };
        let Some(ctx) = ConfChangeContext::from_conf_change(&cc) else {
            tracing::error!(
                index = e.index,
                "ignored a configuration change without a membership context"
            );
            return None;
        };
        if let Err(err) = self.membership.validate(&ctx.change) {
            tracing::warn!(index = e.index, change = ?ctx.change, error = %err, "refused a membership change");
            self.membership.passed(e.index);
            return Some((ctx.request_id, Err(err)));
        }
        if let Err(err) = self.membership.apply(&txn.member_tables(), &ctx.change) {
            crate::logging::fatal("failed to save a membership change", &err);
        }
        self.membership.passed(e.index);
        log_change(&ctx.change, &self.membership);
        let removed_self = ctx.change == MemberChange::Remove(self.member_id);
        let _ = self.membership_tx.send(MembershipUpdate::Changed {
            index: e.index,
            cc: Box::new(cc),
            change: ctx.change,
        });
        if removed_self {
            self.removed.send_replace(true);
        }
        Some((
            ctx.request_id,
            Ok(Applied::Members(self.membership.members())),
        ))
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
            crate::logging::fatal("failed to load the database snapshot", &e);
        }
        if let Err(e) = self.snapshotter.purge_staged(index) {
            tracing::warn!(error = %e, "failed to remove received snapshots already loaded");
        }
        match super::membership::load(self.store.backend()) {
            Ok((members, removed)) => {
                let peers = members
                    .iter()
                    .filter_map(|m| Some((m.id, m.peer_urls.first()?.clone())))
                    .collect();
                self.membership.replace(members, &removed, index);
                let _ = self.membership_tx.send(MembershipUpdate::Reset(peers));
                if removed.contains(&self.member_id) {
                    self.removed.send_replace(true);
                }
            }
            Err(e) => crate::logging::fatal("failed to load members from the snapshot", &e),
        }
        if let Err(e) = crate::lease::load(&self.store, &self.lessor) {
            crate::logging::fatal("failed to load leases from the snapshot", &e);
        }
        if let Err(e) = self.auth.reload(self.store.backend()) {
            crate::logging::fatal("failed to load the auth store from the snapshot", &e);
        }
        if let Err(e) = self.alarms.reload(&self.store) {
            crate::logging::fatal("failed to load the alarms from the snapshot", &e);
        }
        if let Err(e) = self.cluster_version.reload(&self.store) {
            crate::logging::fatal("failed to load the cluster version from the snapshot", &e);
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

    /// `outcome`, or NoSpace for a write applied while this member's
    /// backend is past the quota (etcd's `quotaApplierV3`: the write stays,
    /// the client is told the space is exceeded).
    fn past_quota(&self, req: &InternalRaftRequest, outcome: ApplyOutcome) -> ApplyOutcome {
        let cost = super::quota::request_cost(&Request::of(req));
        let size = self.store.backend().size_bytes();
        if outcome.is_ok() && !super::quota::available(cost, size, self.quota_backend_bytes) {
            return Err(EtcdError::NoSpace);
        }
        outcome
    }

    fn apply_request(
        &self,
        txn: &mut storage::mvcc::StoreTxn<'_>,
        req: &InternalRaftRequest,
        index: u64,
    ) -> ApplyOutcome {
        let kind = Request::of(req);
        if let Some(refused) = self.alarms.refusal(&kind) {
            return Err(refused);
        }
        apply_auth::check(&self.auth, &self.lessor, req.header.as_ref(), &kind)?;
        match kind {
            Request::Put(r) => kvops::put(txn, r, &self.lessor).map(Applied::Put),
            Request::DeleteRange(r) => {
                kvops::delete_range(txn, r, &self.lessor).map(Applied::DeleteRange)
            }
            Request::Txn(r) => kvops::txn(txn, r, &self.lessor).map(Applied::Txn),
            Request::Compaction(r) => kvops::compact(txn, r).map(Applied::Compaction),
            Request::LeaseGrant(r) => self.lease_grant(txn, r),
            Request::LeaseRevoke(r) => self.lease_revoke(txn, r),
            Request::LeaseCheckpoint(r) => {
                for cp in &r.checkpoints {
                    let Some(ttl) = self.lessor.checkpoint(cp.id, cp.remaining_ttl) else {
                        continue;
                    };
                    if self.lessor.persists_checkpoints() {
                        put_lease_record(txn, cp.id, ttl, cp.remaining_ttl)?;
                    }
                }
                Ok(Applied::Done)
            }
            Request::MemberAttrSet(r) => {
                let attrs = r.member_attributes.clone().unwrap_or_default();
                if let Some(m) =
                    self.membership
                        .set_attributes(r.member_id, &attrs.name, &attrs.client_urls)
                {
                    super::membership::save_member(&txn.member_tables(), &m)?;
                }
                Ok(Applied::Done)
            }
            Request::ClusterVersionSet(r) => self.set_cluster_version(txn, &r.ver),
            Request::Alarm(r) => self.alarm(txn, r).map(Applied::Alarm),
            Request::Authenticate(r) => self
                .auth
                .authenticate(&r.name, &r.simple_token, index)
                .map(Applied::Authenticated),
            Request::Other => {
                tracing::warn!("ignored a raft request of a kind etcd-rs does not apply yet");
                Ok(Applied::Done)
            }
            auth_change => {
                let done = self.apply_auth(txn, &auth_change);
                if let Err(EtcdError::Internal(e)) = &done {
                    // Part of the change may be in the batch's transaction.
                    crate::logging::fatal("failed to write the auth store", e);
                }
                done.map(|()| Applied::Done)
            }
        }
    }

    fn lease_grant(
        &self,
        txn: &storage::mvcc::StoreTxn<'_>,
        r: &LeaseGrantRequest,
    ) -> ApplyOutcome {
        if self.lessor.exists(r.id) {
            return Err(EtcdError::LeaseExist);
        }
        let ttl = self.lessor.effective_ttl(r.ttl);
        put_lease_record(txn, r.id, ttl, 0)?;
        self.lessor.grant(r.id, ttl, 0);
        metrics::LEASE_GRANTED.inc();
        Ok(Applied::LeaseGrant(LeaseGrantResponse {
            header: Some(ResponseHeader {
                revision: txn.read_rev(),
                ..Default::default()
            }),
            id: r.id,
            ttl,
            error: String::new(),
        }))
    }

    fn lease_revoke(
        &self,
        txn: &mut storage::mvcc::StoreTxn<'_>,
        r: &LeaseRevokeRequest,
    ) -> ApplyOutcome {
        // Every attached key goes, in this one revision.
        let keys = self.lessor.revoke(r.id).ok_or(EtcdError::LeaseNotFound)?;
        metrics::LEASE_REVOKED.inc();
        for k in &keys {
            txn.delete_range(k, RangeEnd::Single)?;
        }
        txn.lease_table().remove(r.id).map_err(internal)?;
        Ok(Applied::LeaseRevoke(LeaseRevokeResponse {
            header: Some(ResponseHeader {
                revision: txn.read_rev(),
                ..Default::default()
            }),
        }))
    }

    fn set_cluster_version(&self, txn: &storage::mvcc::StoreTxn<'_>, ver: &str) -> ApplyOutcome {
        txn.cluster_table().set_version(ver).map_err(internal)?;
        let mut v = self.cluster_version.0.write().expect("version lock");
        if v.is_none() {
            tracing::info!(cluster_version = %major_minor(ver), "set initial cluster version");
        }
        *v = Some(ver.to_string());
        tracing::info!(cluster_version = %major_minor(ver), "enabled capabilities for version");
        Ok(Applied::Done)
    }

    /// Maintenance `Alarm` (etcd's `applierV3backend.Alarm`): GET lists
    /// the alarms of `r.alarm` (all for NONE); ACTIVATE raises it for
    /// `r.member_id` (nothing for NONE) and answers with it, new or not;
    /// DEACTIVATE disarms it and answers with it if it was active.
    fn alarm(
        &self,
        txn: &storage::mvcc::StoreTxn<'_>,
        r: &AlarmRequest,
    ) -> Result<AlarmResponse, EtcdError> {
        let m = AlarmMember {
            member_id: r.member_id,
            alarm: r.alarm,
        };
        let from = format!("{:x}", m.member_id);
        let alarms = match AlarmAction::try_from(r.action) {
            Ok(AlarmAction::Get) => self.alarms.get(r.alarm),
            Ok(AlarmAction::Activate) if r.alarm == AlarmType::None as i32 => Vec::new(),
            Ok(AlarmAction::Activate) => {
                if self.alarms.activate(txn, &m)? {
                    tracing::warn!(alarm = alarm_name(m.alarm), from = %from, "alarm raised");
                }
                vec![m]
            }
            Ok(AlarmAction::Deactivate) => {
                if !self.alarms.deactivate(txn, &m)? {
                    return Ok(AlarmResponse::default());
                }
                tracing::warn!(alarm = alarm_name(m.alarm), from = %from, "alarm disarmed");
                vec![m]
            }
            Err(_) => Vec::new(),
        };
        Ok(AlarmResponse {
            header: None,
            alarms,
        })
    }

    /// Applies an auth store change.
    fn apply_auth(
        &self,
        txn: &storage::mvcc::StoreTxn<'_>,
        req: &Request<'_>,
    ) -> Result<(), EtcdError> {
        let (a, tx) = (&self.auth, &txn.auth_tables());
        match req {
            Request::AuthEnable => a.auth_enable(tx),
            Request::AuthDisable => a.auth_disable(tx),
            Request::UserAdd(r) => a.user_add(tx, r),
            Request::UserDelete(r) => a.user_delete(tx, r),
            Request::UserChangePassword(r) => a.user_change_password(tx, r),
            Request::UserGrantRole(r) => a.user_grant_role(tx, r),
            Request::UserRevokeRole(r) => a.user_revoke_role(tx, r),
            Request::RoleAdd(r) => a.role_add(tx, r),
            Request::RoleDelete(r) => a.role_delete(tx, r),
            Request::RoleGrantPermission(r) => a.role_grant_permission(tx, r),
            Request::RoleRevokePermission(r) => a.role_revoke_permission(tx, r),
            _ => Err(EtcdError::Internal("not an auth change".into())),
        }
    }
}

/// Logs an applied change as etcd does.
fn log_change(change: &MemberChange, membership: &Membership) {
    match change {
        MemberChange::Add(m) => tracing::info!(
            added_peer_id = %format!("{:x}", m.id),
            added_peer_peer_urls = ?m.peer_urls,
            added_peer_is_learner = m.is_learner,
            "added member"
        ),
        MemberChange::Remove(id) => tracing::info!(
            removed_remote_peer_id = %format!("{id:x}"),
            "removed member"
        ),
        MemberChange::Update { id, peer_urls } => tracing::info!(
            updated_remote_peer_id = %format!("{id:x}"),
            updated_remote_peer_peer_urls = ?peer_urls,
            "updated member"
        ),
        MemberChange::Promote(id) => tracing::info!(
            promoted_member_id = %format!("{id:x}"),
            voters = membership.voter_ids().len(),
            "promote member"
        ),
    }
}

/// Writes lease `id`'s record to the `lease` table.
fn put_lease_record(
    txn: &storage::mvcc::StoreTxn<'_>,
    id: i64,
    ttl: i64,
    remaining_ttl: i64,
) -> Result<(), EtcdError> {
    txn.lease_table()
        .put(id, ttl, remaining_ttl)
        .map_err(internal)
}

fn internal(e: impl std::fmt::Display) -> EtcdError {
    EtcdError::Internal(e.to_string())
}

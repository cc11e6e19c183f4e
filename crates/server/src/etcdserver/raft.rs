//! The raft loop: one thread that owns the `raft::RawNode` (raft-rs) and
//! the WAL.
//!
//! It ticks every heartbeat interval, takes proposals and read-index
//! requests from a bounded channel (draining everything queued before the
//! next `Ready`, so many proposals share one fsync: group commit), and on
//! each `Ready` appends entries and hard state to the WAL with one fsync,
//! then hands committed entries to the apply stage. Linearizable reads'
//! ReadIndex rounds are `read_index.rs`'s.
//!
//! Membership changes come back from the apply stage once applied
//! ([`MembershipUpdate`]): the loop then changes raft's configuration and
//! the transport's peers, before it tells raft the change's entry is
//! applied.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use crossbeam_channel::{Receiver, RecvTimeoutError, Sender};
use raft::prelude::{ConfChangeV2, Entry, HardState as RaftHardState, Message};
use raft::storage::MemStorage;
use raft::{ProgressState, RawNode, SnapshotStatus, StateRole, Storage as _};
use storage::snap::Snapshotter;
use storage::wal::{EntryRef, HardState, SnapshotRecord, Wal};
use tokio::sync::{oneshot, watch};

use super::membership::MemberChange;
use super::read_index::Reads;
use super::stage::{ApplyItem, ApplyOutcome, MembershipUpdate, RaftStatus};
use super::wait::Wait;
use crate::rafthttp::Transport;
use crate::rpctypes::EtcdError;

/// Most messages taken from the channel before a `Ready` is processed.
const MAX_BATCH: usize = 4096;

/// A request to the raft loop.
pub enum RaftMsg {
    /// Propose an encoded `InternalRaftRequest` whose waiter is `id`.
    Propose {
        /// The request id its waiter is registered under.
        id: u64,
        /// The encoded request.
        data: Vec<u8>,
    },
    /// A raft message from a peer (boxed: messages are large).
    Step(Box<Message>),
    /// Ask for a read index; answered once this member's leader confirmed
    /// its leadership, with the commit index to wait for.
    ReadIndex(oneshot::Sender<u64>),
    /// Propose a membership change whose waiter is `id`.
    ProposeConfChange {
        /// The request id its waiter is registered under.
        id: u64,
        /// The change.
        cc: Box<ConfChangeV2>,
    },
    /// Hand leadership to this member (etcd's `TransferLeadership`); a
    /// follower forwards it to its leader.
    TransferLeader(u64),
    /// Ask how far each member's log matches the leader's; `None` unless
    /// this member leads.
    Progress(oneshot::Sender<Option<LeaderProgress>>),
    /// Stop the loop.
    Stop,
}

/// The leader's view of its followers' logs.
#[derive(Debug, Default)]
pub struct LeaderProgress {
    /// The leader's own match index.
    pub leader_match: u64,
    /// Each member's match index, by id.
    pub matched: HashMap<u64, u64>,
}

/// The raft loop's state.
pub struct RaftLoop {
    /// The raft node with its in-memory log.
    pub raw: RawNode<MemStorage>,
    /// The WAL the log is made durable in.
    pub wal: Wal,
    /// This member's id.
    pub member_id: u64,
    /// One tick.
    pub tick: Duration,
    /// Committed entries and snapshots go here, in order.
    pub apply_tx: Sender<ApplyItem>,
    /// The apply stage's applied index.
    pub applied_rx: watch::Receiver<u64>,
    /// Status shared with the server.
    pub status: Arc<RaftStatus>,
    /// Waiters, told when a proposal is dropped.
    pub wait: Arc<Wait<ApplyOutcome>>,
    /// How snapshot sends ended (unbounded: a lost report would leave the
    /// follower paused).
    pub snapshot_reports: Receiver<(u64, SnapshotStatus)>,
    /// Sends raft messages to the other members.
    pub transport: Transport,
    /// Membership changes applied, in order (unbounded: the apply stage
    /// must never wait on the raft loop, which may wait on it).
    pub membership_rx: Receiver<MembershipUpdate>,
    /// Where snapshot records are saved.
    pub snapshotter: Arc<Snapshotter>,
    /// Applied entries between snapshots (`--snapshot-count`).
    pub snapshot_count: u64,
    /// Entries kept in memory behind a snapshot for slow followers
    /// (`--experimental-snapshot-catchup-entries`).
    pub catch_up_entries: u64,
    /// Index of the newest snapshot record.
    pub last_snapshot: u64,
    /// Index of the last snapshot from the leader that replaced raft's
    /// configuration (when it was stepped in): changes at or below it,
    /// applied late by the apply stage from entries before the snapshot,
    /// are in it already.
    pub restored_conf: u64,
    /// The consistent index as of the apply stage's last durable backend
    /// commit: a snapshot may cover the log up to there.
    pub durable_index: Arc<AtomicU64>,
}

fn to_wal_hs(hs: &RaftHardState) -> HardState {
    HardState {
        term: hs.term,
        vote: hs.vote,
        commit: hs.commit,
    }
}

fn to_entry_ref(e: &Entry) -> EntryRef<'_> {
    EntryRef {
        index: e.index,
        term: e.term,
        entry_type: e.get_entry_type() as i32,
        data: &e.data,
        context: &e.context,
    }
}

impl RaftLoop {
    /// Runs until [`RaftMsg::Stop`] or until every sender is gone. A WAL
    /// failure stops the process: it cannot promise durability any more.
    pub fn run(mut self, rx: Receiver<RaftMsg>) {
        let mut reads = Reads::new(self.member_id);
        let mut next_tick = Instant::now() + self.tick;
        let mut last_leader = 0;
        loop {
            let timeout = next_tick.saturating_duration_since(Instant::now());
            match rx.recv_timeout(timeout) {
                Ok(msg) => {
                    if !self.handle(msg, &mut reads) {
                        return;
                    }
                    for msg in rx.try_iter().take(MAX_BATCH) {
                        if !self.handle(msg, &mut reads) {
                            return;
                        }
                    }
                }
                Err(RecvTimeoutError::Timeout) => {}
                Err(RecvTimeoutError::Disconnected) => return,
            }
            let now = Instant::now();
            if now >= next_tick {
                self.raw.tick();
                next_tick = (next_tick + self.tick).max(now);
            }
            for (to, status) in self.snapshot_reports.try_iter() {
                self.raw.report_snapshot(to, status);
            }
            reads.send(&mut self.raw, now);
            if let Err(e) = self.advance_applied() {
                crate::logging::fatal("failed to save a snapshot", &e);
            }
            // Leader and term are published before this round's committed
            // entries go to the apply stage, which promotes the lessor at
            // the leader's first entry of its term.
            let leader = self.raw.raft.leader_id;
            let term = self.raw.raft.term;
            self.status.leader.store(leader, Ordering::Release);
            self.status.term.store(term, Ordering::Release);
            if let Err(e) = self.on_ready(&mut reads) {
                crate::logging::fatal("failed to write to the WAL", &e);
            }
            if leader != last_leader {
                if leader != 0 {
                    metrics::LEADER_CHANGES.inc();
                }
                if leader == 0 {
                    tracing::info!(
                        "raft.node: {:x} lost leader {:x} at term {}",
                        self.member_id,
                        last_leader,
                        term
                    );
                } else {
                    tracing::info!(
                        "raft.node: {:x} elected leader {:x} at term {}",
                        self.member_id,
                        leader,
                        term
                    );
                }
                // Reads waiting on the old leader's confirmation fail now.
                reads.fail_inflight();
                last_leader = leader;
            }
            self.status
                .committed
                .store(self.raw.raft.raft_log.committed, Ordering::Release);
        }
    }

    /// Handles one message; false on Stop.
    fn handle(&mut self, msg: RaftMsg, reads: &mut Reads) -> bool {
        match msg {
            RaftMsg::Propose { id, data } => {
                if self.raw.propose(Vec::new(), data).is_err() {
                    self.wait.trigger(id, Err(EtcdError::NoLeader));
                }
            }
            RaftMsg::Step(m) => {
                if m.get_msg_type() == raft::prelude::MessageType::MsgPropose {
                    // A follower's forwarded proposal may be a membership
                    // change: see ProposeConfChange.
                    self.sync_applied();
                }
                // Messages from members that are not (or no longer) in the
                // configuration are refused by raft; nothing to do.
                let _ = self.raw.step(*m);
                // A snapshot raft took replaced its configuration at once.
                if let Some(snap) = &self.raw.raft.raft_log.unstable.snapshot {
                    self.restored_conf = self.restored_conf.max(snap.get_metadata().index);
                }
            }
            RaftMsg::ReadIndex(reply) => reads.push(reply),
            RaftMsg::ProposeConfChange { id, cc } => {
                // Raft ignores a change while the last one is not applied:
                // take in how far the apply stage got first (the change
                // before this one was answered once applied).
                self.sync_applied();
                if self.raw.propose_conf_change(Vec::new(), *cc).is_err() {
                    self.wait.trigger(id, Err(EtcdError::NoLeader));
                }
            }
            RaftMsg::TransferLeader(to) => self.raw.transfer_leader(to),
            RaftMsg::Progress(reply) => {
                let raft = &self.raw.raft;
                let progress = (raft.state == StateRole::Leader).then(|| LeaderProgress {
                    leader_match: raft.prs().get(self.member_id).map_or(0, |p| p.matched),
                    matched: raft.prs().iter().map(|(id, p)| (*id, p.matched)).collect(),
                });
                let _ = reply.send(progress);
            }
            RaftMsg::Stop => return false,
        }
        true
    }

    /// Tells raft how far the apply stage got; every `--snapshot-count`
    /// durably applied entries, saves a snapshot record and releases the
    /// WAL segments it covers.
    ///
    /// The in-memory log keeps `--experimental-snapshot-catchup-entries`
    /// durably applied entries ([`Self::trim_log`]), not everything since
    /// the last snapshot as etcd 3.4/3.5 do, so a member's memory does not
    /// grow with `--snapshot-count` (100,000 entries of 256-byte puts held
    /// about 43 MB); a follower further behind gets a snapshot.
    fn advance_applied(&mut self) -> Result<(), std::io::Error> {
        let applied = self.sync_applied();
        let durable = self.durable_index.load(Ordering::Acquire).min(applied);
        self.trim_log(durable);
        if durable < self.last_snapshot + self.snapshot_count {
            return Ok(());
        }
        let term = match self.raw.raft.raft_log.term(durable) {
            Ok(t) if t > 0 => t,
            // Not in the log (a leader's snapshot is being restored): later.
            _ => return Ok(()),
        };
        // The WAL's commit index must not be below the snapshot on restart.
        // Entries stepped in but not yet written may already count as
        // committed in memory; the WAL must not claim more than it holds.
        let mut hs = self.raw.raft.hard_state();
        hs.commit = hs.commit.min(self.raw.raft.raft_log.persisted);
        self.wal
            .save(Some(to_wal_hs(&hs)), std::iter::empty())
            .map_err(std::io::Error::other)?;
        let conf = self.raw.raft.prs().conf().to_conf_state();
        let record = SnapshotRecord {
            index: durable,
            term,
            voters: conf.voters.clone(),
            learners: conf.learners.clone(),
        };
        self.snapshotter.save(&record)?;
        self.snapshotter.purge_staged(durable)?;
        let released = self
            .wal
            .release_to(durable)
            .map_err(std::io::Error::other)?;
        self.last_snapshot = durable;
        tracing::info!(
            snapshot_index = durable,
            released_wal_segments = released,
            "saved snapshot"
        );
        Ok(())
    }

    /// Tells raft how far the apply stage got, after the membership
    /// changes up to there; returns that index.
    fn sync_applied(&mut self) -> u64 {
        // A membership change is sent before its entry counts as applied:
        // read the index first, then take the changes, so raft's
        // configuration has every change up to the index.
        let applied = *self.applied_rx.borrow();
        self.apply_membership_updates();
        let log = &self.raw.raft.raft_log;
        let applied = applied.min(log.committed).min(log.persisted);
        if applied > log.applied {
            self.raw.advance_apply_to(applied);
        }
        applied
    }

    /// Gives raft and the transport the membership changes applied since
    /// the last call.
    fn apply_membership_updates(&mut self) {
        for update in self.membership_rx.try_iter() {
            match update {
                MembershipUpdate::Changed { index, .. } if index <= self.restored_conf => {}
                MembershipUpdate::Changed { cc, change, .. } => {
                    match self.raw.apply_conf_change(cc.as_ref()) {
                        Ok(cs) => self.raw.mut_store().wl().set_conf_state(cs),
                        Err(e) => crate::logging::fatal(
                            "raft refused an applied configuration change",
                            &e,
                        ),
                    }
                    match change {
                        MemberChange::Add(m) => {
                            if let Some(url) = m.peer_urls.first() {
                                self.transport.add_peer(m.id, url.clone());
                            }
                        }
                        MemberChange::Update { id, peer_urls } => {
                            if let Some(url) = peer_urls.first() {
                                self.transport.add_peer(id, url.clone());
                            }
                        }
                        MemberChange::Remove(id) => self.transport.remove_peer(id),
                        MemberChange::Promote(_) => {}
                    }
                }
                MembershipUpdate::Reset(peers) => self.transport.set_peers(peers),
            }
        }
    }

    /// Drops in-memory entries more than `catch_up_entries` behind
    /// `durable` (applied and committed to the backend), in steps of at
    /// least that many. While the leader has a snapshot on its way,
    /// nothing more is dropped (its follower resumes from the entries after
    /// it; etcd does not compact with snapshots in flight either) beyond
    /// etcd's own bound of `--snapshot-count` + catch-up entries.
    fn trim_log(&mut self, durable: u64) {
        let mut keep_from = durable.saturating_sub(self.catch_up_entries);
        let raft = &self.raw.raft;
        let sending_snapshot = raft.state == StateRole::Leader
            && raft
                .prs()
                .iter()
                .any(|(_, pr)| pr.state == ProgressState::Snapshot);
        if sending_snapshot {
            keep_from = durable.saturating_sub(self.snapshot_count + self.catch_up_entries);
        }
        let store = self.raw.mut_store();
        let first = store.first_index().unwrap_or(1);
        if keep_from < first + self.catch_up_entries.max(1) {
            return;
        }
        store
            .wl()
            .compact(keep_from)
            .expect("compacting applied entries");
        tracing::debug!(compact_index = keep_from, "trimmed the in-memory raft log");
    }

    fn on_ready(&mut self, reads: &mut Reads) -> Result<(), ReadyError> {
        if !self.raw.has_ready() {
            return Ok(());
        }
        let mut rd = self.raw.ready();
        // A leader sends its appends before its own fsync, as etcd does.
        self.transport.send(rd.take_messages());
        if !rd.snapshot().is_empty() {
            let snap = rd.snapshot().clone();
            let meta = snap.get_metadata();
            let (index, term) = (meta.index, meta.term);
            let conf = meta.get_conf_state();
            let record = SnapshotRecord {
                index,
                term,
                voters: conf.voters.clone(),
                learners: conf.learners.clone(),
            };
            self.snapshotter.save(&record)?;
            self.wal.save_snapshot(&record)?;
            self.raw
                .mut_store()
                .wl()
                .apply_snapshot(snap)
                .expect("a newer snapshot applies");
            self.last_snapshot = index;
            tracing::info!(snapshot_index = index, "applying snapshot from the leader");
            let _ = self.apply_tx.send(ApplyItem::Snapshot { index, term });
        }
        self.send_to_apply(rd.take_committed_entries());
        if !rd.entries().is_empty() || rd.hs().is_some() {
            self.wal.save(
                rd.hs().map(to_wal_hs),
                rd.entries().iter().map(to_entry_ref),
            )?;
            let store = self.raw.mut_store();
            if !rd.entries().is_empty() {
                store
                    .wl()
                    .append(rd.entries())
                    .expect("entries follow the log");
            }
            if let Some(hs) = rd.hs() {
                store.wl().set_hardstate(hs.clone());
            }
        }
        reads.answer(rd.read_states());
        // Votes and acknowledgements go out only once persisted.
        self.transport.send(rd.take_persisted_messages());
        let mut light = self.raw.advance_append(rd);
        if let Some(commit) = light.commit_index() {
            self.raw.mut_store().wl().mut_hard_state().commit = commit;
        }
        self.transport.send(light.take_messages());
        self.send_to_apply(light.take_committed_entries());
        Ok(())
    }

    fn send_to_apply(&self, entries: Vec<Entry>) {
        if !entries.is_empty() {
            // Blocks when the apply stage is behind: back-pressure on raft.
            let _ = self.apply_tx.send(ApplyItem::Entries(entries));
        }
    }
}

/// Why persisting a `Ready` failed.
#[derive(Debug, thiserror::Error)]
pub enum ReadyError {
    /// Writing the WAL failed.
    #[error(transparent)]
    Wal(#[from] storage::wal::WalError),
    /// Saving a snapshot record failed.
    #[error(transparent)]
    Snapshot(#[from] std::io::Error),
}

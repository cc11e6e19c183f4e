//! The member (etcd's `etcdserver`): starts storage, the raft loop and the
//! apply stage, and offers the gRPC layer two doors into them: propose a
//! write and wait for its result, or wait until a linearizable read may
//! proceed.
//!
//! Start-up: open the backend and rebuild the key index; open the WAL (or
//! create it, with the initial cluster's members for a new cluster, or the
//! members a running cluster reported for a joining member); load the raft
//! log into raft-rs's in-memory storage, with the raft configuration of
//! the backend's `members` table; start the apply thread and the raft
//! thread. Raft then replays committed entries newer than the backend's
//! consistent index. Membership changes are in `reconfig.rs`.

pub mod alarms;
pub mod apply;
mod apply_auth;
pub mod compactor;
pub mod concurrency;
pub mod corrupt;
pub mod encoded_range;
pub mod join;
pub mod kvops;
pub mod lease_expiry;
mod maintenance;
pub mod membership;
mod quota;
pub mod raft;
mod read_index;
mod reconfig;
pub mod request;
pub mod stage;
mod standalone;
pub mod v3server;
pub mod wait;

use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{SystemTime, UNIX_EPOCH};

use ::raft::prelude::{ConfState, Entry, EntryType, HardState as RaftHardState};
use ::raft::storage::MemStorage;
use api::etcdserverpb::{InternalRaftRequest, RequestHeader, ResponseHeader};
use api::membershippb::{Attributes, ClusterMemberAttrSetRequest, ClusterVersionSetRequest};
use crossbeam_channel::Sender;
use prost::Message;
use storage::snap::Snapshotter;
use storage::wal::{Metadata, SnapshotRecord, Wal};
use storage::{Backend, KvStore};
use tokio::sync::watch;

use self::alarms::AlarmStore;
use self::apply::{Applier, ClusterVersion};
use self::join::RemoteCluster;
use self::membership::{compute_cluster_id, compute_member_id, Member, Membership};
use self::raft::{RaftLoop, RaftMsg};
use self::stage::{Applied, ApplyOutcome, RaftStatus};
use self::wait::Wait;
use crate::auth::AuthStore;
use crate::config::{ServerConfig, CLUSTER_VERSION};
use crate::lease::Lessor;
use crate::rafthttp::{Dialer, PeerHealth, Transport, TransportConfig};
use crate::rpctypes::EtcdError;

/// Bound of the channel into the raft loop; senders wait when it is full.
const RAFT_CHANNEL_BOUND: usize = 16 * 1024;
/// Bound of the channel of committed batches into the apply stage.
const APPLY_CHANNEL_BOUND: usize = 1024;

/// A running member.
pub struct EtcdServer {
    /// The configuration it runs with.
    pub cfg: ServerConfig,
    /// This member's id.
    pub member_id: u64,
    /// The cluster's id.
    pub cluster_id: u64,
    /// The key-value store.
    pub store: Arc<KvStore>,
    /// Cluster members.
    pub membership: Arc<Membership>,
    /// The cluster version, once set.
    pub cluster_version: Arc<ClusterVersion>,
    /// The leases.
    pub lessor: Arc<Lessor>,
    /// Users and roles.
    pub auth: Arc<AuthStore>,
    /// The active alarms.
    pub alarms: Arc<AlarmStore>,
    raft_tx: Sender<RaftMsg>,
    raft_status: Arc<RaftStatus>,
    wait: Arc<Wait<ApplyOutcome>>,
    applied_rx: watch::Receiver<u64>,
    next_id: AtomicU64,
    threads: Mutex<Vec<JoinHandle<()>>>,
    snapshotter: Arc<Snapshotter>,
    /// How this member dials its peers (TLS for `https://` peer URLs).
    pub dialer: Dialer,
    /// Whether the member started on existing data (a WAL was there).
    pub restarted: bool,
    /// Since when each peer has been reachable.
    peer_health: Arc<PeerHealth>,
    /// Becomes true once this member is removed from the cluster (it
    /// applied its removal, or a peer refused it as removed).
    removed_rx: watch::Receiver<bool>,
}

/// What etcd says when a member learns it was removed.
pub const REMOVED_MESSAGE: &str = "the member has been permanently removed from the cluster";

/// Makes a panic in a member thread stop the whole process: a raft loop
/// or apply stage that is gone leaves nothing to answer clients.
struct ExitOnPanic(&'static str);

impl Drop for ExitOnPanic {
    fn drop(&mut self) {
        if std::thread::panicking() {
            crate::logging::fatal("member thread panicked", &self.0);
        }
    }
}

/// A start-up failure, with the text etcd would log.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct StartError(pub String);

fn start_err(e: impl std::fmt::Display) -> StartError {
    StartError(e.to_string())
}

fn to_raft_entry(e: storage::wal::EntryRecord) -> Entry {
    let mut out = Entry {
        index: e.index,
        term: e.term,
        data: e.data.into(),
        context: e.context.into(),
        ..Default::default()
    };
    out.set_entry_type(match e.entry_type {
        1 => EntryType::EntryConfChange,
        2 => EntryType::EntryConfChangeV2,
        _ => EntryType::EntryNormal,
    });
    out
}

impl EtcdServer {
    /// Starts the member described by `cfg`, dialing its peers with
    /// `dialer`; `joined` is the cluster a new member joins
    /// ([`join::cluster_from_peers`]), `None` otherwise.
    pub fn start(
        cfg: ServerConfig,
        dialer: Dialer,
        joined: Option<RemoteCluster>,
    ) -> Result<Arc<EtcdServer>, StartError> {
        let snap_dir = cfg.data_dir.join("member").join("snap");
        std::fs::create_dir_all(&snap_dir).map_err(start_err)?;
        let backend =
            Backend::open(&storage::backend::path_in(&cfg.data_dir)).map_err(start_err)?;
        let store = Arc::new(KvStore::open(backend).map_err(start_err)?);

        let snapshotter = Arc::new(Snapshotter::new(&snap_dir).map_err(start_err)?);
        let restarted = Wal::exists(&cfg.wal_dir);
        let (mut wal, mut contents) = if restarted {
            let snapshot = snapshotter
                .load_newest()
                .map_err(start_err)?
                .unwrap_or_default();
            if snapshot.index > store.consistent_index() {
                // A snapshot from the leader was recorded but its backend
                // not yet loaded when the member stopped: load it now.
                let path = snapshotter.db_path(snapshot.term, snapshot.index);
                store.restore_from(&path, snapshot.index).map_err(|e| {
                    StartError(format!(
                        "the backend is behind snapshot {} and {} cannot be loaded: {e}",
                        snapshot.index,
                        path.display()
                    ))
                })?;
            }
            let (wal, contents) = Wal::open_from(&cfg.wal_dir, snapshot).map_err(start_err)?;
            (wal, contents)
        } else {
            if store.consistent_index() > 0 {
                return Err(StartError(format!(
                    "the backend has applied entries up to index {} but the WAL in {} is missing",
                    store.consistent_index(),
                    cfg.wal_dir.display()
                )));
            }
            match joined {
                Some(remote) => Self::join(&cfg, &store, remote)?,
                None => Self::bootstrap(&cfg, &store)?,
            }
        };
        let member_id = contents.metadata.member_id;
        let cluster_id = contents.metadata.cluster_id;
        let (members, removed) = membership::load(store.backend()).map_err(start_err)?;
        if removed.contains(&member_id) {
            return Err(StartError(REMOVED_MESSAGE.into()));
        }
        // A joined member's membership is as of the index it was fetched
        // at; the changes up to there are not applied again.
        let join_index = membership::join_index(store.backend()).map_err(start_err)?;
        let membership = Arc::new(Membership::new(
            members,
            &removed,
            store.consistent_index().max(join_index),
        ));
        if restarted && cfg.force_new_cluster {
            standalone::force_new_cluster(
                &mut wal,
                &mut contents,
                &membership,
                member_id,
                store.consistent_index(),
            )?;
        }
        tracing::info!(
            local_member_id = %format!("{member_id:x}"),
            cluster_id = %format!("{cluster_id:x}"),
            commit_index = contents.hard_state.commit,
            consistent_index = store.consistent_index(),
            "starting local member"
        );

        let mem = MemStorage::new();
        // The members table is the membership as of the consistent index,
        // which is where raft's applied index starts.
        let conf = ConfState::from(membership.conf_state());
        let snap_index = contents.snapshot.index;
        if snap_index == 0 {
            mem.initialize_with_conf_state(conf);
        } else {
            let mut snap = ::raft::prelude::Snapshot::default();
            let meta = snap.mut_metadata();
            meta.index = snap_index;
            meta.term = contents.snapshot.term;
            meta.set_conf_state(conf);
            mem.wl().apply_snapshot(snap).map_err(start_err)?;
        }
        let entries: Vec<Entry> = contents.entries.into_iter().map(to_raft_entry).collect();
        if !entries.is_empty() {
            mem.wl().append(&entries).map_err(start_err)?;
        }
        // The log after a snapshot starts at it: the commit index is at least
        // there even if the hard state was written before the snapshot.
        let hs = contents.hard_state;
        let commit = hs.commit.max(snap_index);
        mem.wl().set_hardstate(RaftHardState {
            term: hs.term.max(contents.snapshot.term),
            vote: hs.vote,
            commit,
            ..Default::default()
        });

        let raft_cfg = ::raft::Config {
            id: member_id,
            election_tick: cfg.election_ticks,
            heartbeat_tick: 1,
            applied: store.consistent_index().min(commit).max(snap_index),
            pre_vote: true,
            check_quorum: true,
            max_size_per_msg: 1024 * 1024,
            max_inflight_msgs: 512,
            ..Default::default()
        };
        let logger = slog::Logger::root(slog::Discard, slog::o!());
        let mut raw = ::raft::RawNode::new(&raft_cfg, mem, &logger).map_err(start_err)?;
        if membership.voter_ids() == [member_id] {
            // A single voter needs no election timeout to lead.
            raw.campaign().map_err(start_err)?;
        }

        // etcd's minimum lease TTL: 1.5 election timeouts, in whole seconds.
        let min_ttl = (cfg.tick * cfg.election_ticks as u32 * 3 / 2)
            .as_secs_f64()
            .ceil() as i64;
        let lessor = match cfg.lease_checkpoint {
            Some((every, persist)) => Lessor::new(min_ttl).with_checkpoints(every, persist),
            None => Lessor::new(min_ttl),
        };
        let lessor = Arc::new(lessor);
        crate::lease::load(&store, &lessor).map_err(StartError)?;
        let cluster_version = Arc::new(ClusterVersion::load(&store).map_err(start_err)?);
        let alarms = Arc::new(AlarmStore::load(&store).map_err(start_err)?);
        let tokens = crate::auth::token::TokenConfig::parse(&cfg.auth_token, cfg.auth_token_ttl)
            .map_err(StartError)?;
        let auth = Arc::new(AuthStore::load(store.backend(), tokens).map_err(start_err)?);
        let wait = Arc::new(Wait::default());
        let (applied_tx, applied_rx) = watch::channel(store.consistent_index());
        let (apply_tx, apply_rx) = crossbeam_channel::bounded(APPLY_CHANNEL_BOUND);
        let (raft_tx, raft_rx) = crossbeam_channel::bounded(RAFT_CHANNEL_BOUND);
        let raft_status = Arc::new(RaftStatus::default());
        raft_status
            .leader
            .store(raw.raft.leader_id, Ordering::Release);
        raft_status.term.store(raw.raft.term, Ordering::Release);
        let peers = membership
            .members()
            .into_iter()
            .filter(|m| m.id != member_id)
            .filter_map(|m| Some((m.id, m.peer_urls.first()?.clone())))
            .collect();
        let (report_tx, snapshot_reports) = crossbeam_channel::unbounded();
        let (removed_tx, removed_rx) = watch::channel(false);
        let removed_tx = Arc::new(removed_tx);
        let peer_health = Arc::new(PeerHealth::default());
        let refused = removed_tx.clone();
        let transport = Transport::start(
            TransportConfig {
                cluster_id,
                from: member_id,
                store: store.clone(),
                report: Box::new(move |to, status| {
                    let _ = report_tx.send((to, status));
                }),
                removed: Box::new(move || {
                    refused.send_replace(true);
                }),
                dialer: dialer.clone(),
                health: peer_health.clone(),
            },
            peers,
        );
        let (membership_tx, membership_rx) = crossbeam_channel::unbounded();
        let durable_index = Arc::new(AtomicU64::new(store.consistent_index()));

        let applier = Applier {
            store: store.clone(),
            membership: membership.clone(),
            cluster_version: cluster_version.clone(),
            wait: wait.clone(),
            applied: applied_tx,
            durable_index: durable_index.clone(),
            snapshotter: snapshotter.clone(),
            lessor: lessor.clone(),
            auth: auth.clone(),
            alarms: alarms.clone(),
            raft_status: raft_status.clone(),
            member_id,
            lease_extend: cfg.tick * cfg.election_ticks as u32,
            membership_tx,
            removed: removed_tx,
            join_index,
            quota_backend_bytes: cfg.quota_backend_bytes,
        };
        let raft_loop = RaftLoop {
            raw,
            wal,
            member_id,
            tick: cfg.tick,
            apply_tx,
            applied_rx: applied_rx.clone(),
            status: raft_status.clone(),
            wait: wait.clone(),
            transport,
            membership_rx,
            snapshot_reports,
            snapshotter: snapshotter.clone(),
            snapshot_count: cfg.snapshot_count,
            catch_up_entries: cfg.snapshot_catchup_entries,
            last_snapshot: contents.snapshot.index,
            restored_conf: 0,
            durable_index,
        };
        let apply_thread = std::thread::Builder::new()
            .name("apply".into())
            .spawn(move || {
                let _guard = ExitOnPanic("apply");
                applier.run(apply_rx)
            })
            .map_err(start_err)?;
        let compactor_thread = {
            let (store, limit, interval) = (
                store.clone(),
                cfg.compaction_batch_limit,
                cfg.compaction_sleep_interval,
            );
            std::thread::Builder::new()
                .name("compactor".into())
                .spawn(move || {
                    let _guard = ExitOnPanic("compactor");
                    store.run_compactor(limit, interval)
                })
                .map_err(start_err)?
        };
        let raft_thread = std::thread::Builder::new()
            .name("raft".into())
            .spawn(move || {
                let _guard = ExitOnPanic("raft");
                raft_loop.run(raft_rx)
            })
            .map_err(start_err)?;

        let now_ms = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_millis() as u64)
            .unwrap_or(0);
        Ok(Arc::new(EtcdServer {
            cfg,
            member_id,
            cluster_id,
            store,
            membership,
            cluster_version,
            lessor,
            auth,
            alarms,
            raft_tx,
            raft_status,
            wait,
            applied_rx,
            // etcd's idutil: the member id's low 16 bits, then time, then a count.
            next_id: AtomicU64::new(
                ((member_id & 0xffff) << 48) | ((now_ms & 0xff_ffff_ffff) << 8),
            ),
            // The compactor first: its last batch is made durable by the
            // apply stage's final commit.
            threads: Mutex::new(vec![compactor_thread, raft_thread, apply_thread]),
            snapshotter,
            dialer,
            restarted,
            peer_health,
            removed_rx,
        }))
    }

    /// Creates the WAL and membership of a member of a new cluster.
    fn bootstrap(
        cfg: &ServerConfig,
        store: &KvStore,
    ) -> Result<(Wal, storage::wal::WalContents), StartError> {
        let members: Vec<Member> = cfg
            .initial_cluster
            .iter()
            .map(|m| Member {
                id: compute_member_id(&m.peer_urls, &cfg.initial_cluster_token),
                name: String::new(),
                peer_urls: m.peer_urls.clone(),
                client_urls: Vec::new(),
                is_learner: false,
            })
            .collect();
        let ids: Vec<u64> = members.iter().map(|m| m.id).collect();
        let member_id = compute_member_id(&cfg.peer_urls, &cfg.initial_cluster_token);
        let cluster_id = compute_cluster_id(&ids);
        membership::save_all(store.backend(), &members, &[], 0).map_err(start_err)?;
        let (wal, mut contents) = Self::create_wal(cfg, member_id, cluster_id, ids, Vec::new())?;
        // etcd's members start a new cluster in term 1 (raft's bootstrap
        // entries), so its first leader leads term 2, as Status shows.
        contents.hard_state.term = 1;
        Ok((wal, contents))
    }

    /// Creates the WAL and membership of a member joining `remote`.
    fn join(
        cfg: &ServerConfig,
        store: &KvStore,
        remote: RemoteCluster,
    ) -> Result<(Wal, storage::wal::WalContents), StartError> {
        membership::save_all(
            store.backend(),
            &remote.members,
            &remote.removed,
            remote.through,
        )
        .map_err(start_err)?;
        let (learners, voters): (Vec<&Member>, Vec<&Member>) =
            remote.members.iter().partition(|m| m.is_learner);
        Self::create_wal(
            cfg,
            remote.member_id,
            remote.cluster_id,
            voters.iter().map(|m| m.id).collect(),
            learners.iter().map(|m| m.id).collect(),
        )
    }

    fn create_wal(
        cfg: &ServerConfig,
        member_id: u64,
        cluster_id: u64,
        voters: Vec<u64>,
        learners: Vec<u64>,
    ) -> Result<(Wal, storage::wal::WalContents), StartError> {
        let metadata = Metadata {
            member_id,
            cluster_id,
        };
        let snapshot = SnapshotRecord {
            index: 0,
            term: 0,
            voters,
            learners,
        };
        let wal = Wal::create(&cfg.wal_dir, metadata, &snapshot).map_err(start_err)?;
        let contents = storage::wal::WalContents {
            metadata,
            snapshot,
            ..Default::default()
        };
        Ok((wal, contents))
    }

    /// The header every response carries; `revision` is the store revision
    /// the response reflects.
    pub fn header(&self, revision: i64) -> ResponseHeader {
        ResponseHeader {
            cluster_id: self.cluster_id,
            member_id: self.member_id,
            revision,
            raft_term: self.term(),
        }
    }

    /// The current leader's id, 0 when there is none.
    pub fn leader(&self) -> u64 {
        self.raft_status.leader.load(Ordering::Acquire)
    }

    /// The current raft term.
    pub fn term(&self) -> u64 {
        self.raft_status.term.load(Ordering::Acquire)
    }

    /// The backend's bytes in use (`dbSizeInUse`), measured on a blocking
    /// thread: it reads table pages. One measurement runs at a time, so
    /// many scrapes or Status calls at once queue instead of taking a
    /// blocking thread each.
    pub async fn db_size_in_use(&self) -> u64 {
        static MEASURING: tokio::sync::Semaphore = tokio::sync::Semaphore::const_new(1);
        let _turn = MEASURING.acquire().await.expect("never closed");
        let store = self.store.clone();
        tokio::task::spawn_blocking(move || store.backend().size_in_use_bytes())
            .await
            .expect("measuring the backend does not panic")
    }

    /// Proposals registered and not yet answered
    /// (`etcd_server_proposals_pending`).
    pub fn pending_proposals(&self) -> usize {
        self.wait.waiting()
    }

    /// The raft commit index.
    pub fn committed_index(&self) -> u64 {
        self.raft_status.committed.load(Ordering::Acquire)
    }

    /// The index of the last applied entry.
    pub fn applied_index(&self) -> u64 {
        *self.applied_rx.borrow()
    }

    /// A new unique, positive id (for leases the client lets us choose).
    pub fn new_id(&self) -> i64 {
        (self.next_id.fetch_add(1, Ordering::Relaxed) & (i64::MAX as u64)) as i64
    }

    /// The first peer URL of the current leader, if known.
    pub fn leader_peer_url(&self) -> Option<String> {
        let leader = self.leader();
        self.membership
            .members()
            .into_iter()
            .find(|m| m.id == leader)
            .and_then(|m| m.peer_urls.into_iter().next())
    }

    /// Proposes `req`, the member's own (publishing, lease expiry,
    /// Authenticate), through raft and waits until it is applied, within
    /// the request timeout; while auth is enabled it is made as root, as
    /// etcd's `WithRoot`. Errors: `RequestTooLarge` over
    /// `--max-request-bytes`, `Timeout`, `NoLeader`, `Stopped`, or the
    /// request's own apply error.
    pub async fn propose(&self, req: InternalRaftRequest) -> Result<Applied, EtcdError> {
        let header = if self.auth.is_enabled() {
            RequestHeader {
                username: crate::auth::ROOT.to_string(),
                auth_revision: self.auth.revision(),
                ..Default::default()
            }
        } else {
            RequestHeader::default()
        };
        self.propose_headed(header, req).await
    }

    /// Proposes `req` with `header` (its user and auth revision; the id is
    /// set here) and waits for it. Errors: as [`EtcdServer::propose`].
    async fn propose_headed(
        &self,
        mut header: RequestHeader,
        mut req: InternalRaftRequest,
    ) -> Result<Applied, EtcdError> {
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        header.id = id;
        req.header = Some(header);
        let data = req.encode_to_vec();
        if data.len() > self.cfg.max_request_bytes {
            return Err(EtcdError::RequestTooLarge);
        }
        self.propose_and_wait(id, RaftMsg::Propose { id, data })
            .await
    }

    /// Registers waiter `id`, sends `msg` (a proposal answering it) to
    /// raft and waits for the outcome within the request timeout.
    async fn propose_and_wait(&self, id: u64, msg: RaftMsg) -> Result<Applied, EtcdError> {
        let rx = self.wait.register(id);
        if let Err(e) = self.send_to_raft(msg) {
            self.wait.cancel(id);
            metrics::PROPOSALS_FAILED.inc();
            return Err(e);
        }
        match tokio::time::timeout(self.cfg.request_timeout, rx).await {
            Ok(Ok(outcome)) => outcome,
            Ok(Err(_)) => {
                metrics::PROPOSALS_FAILED.inc();
                Err(EtcdError::Stopped)
            }
            Err(_) => {
                self.wait.cancel(id);
                metrics::PROPOSALS_FAILED.inc();
                Err(EtcdError::Timeout)
            }
        }
    }

    /// Waits until a linearizable read may run: this member's leader
    /// confirmed it is still leader (ReadIndex) and this member applied up
    /// to that index. Errors: `Timeout`, `LeaderChanged`, `Stopped`.
    pub async fn linearizable_read(&self) -> Result<(), EtcdError> {
        if cfg!(feature = "planted-stale-reads") {
            return Ok(());
        }
        let wait = async {
            let (tx, rx) = tokio::sync::oneshot::channel();
            self.send_to_raft(RaftMsg::ReadIndex(tx))?;
            let index = rx.await.map_err(|_| EtcdError::LeaderChanged)?;
            self.wait_applied(index).await
        };
        tokio::time::timeout(self.cfg.request_timeout, wait)
            .await
            .map_err(|_| EtcdError::Timeout)?
    }

    /// Steps a raft message from a peer into the raft loop; dropped if the
    /// loop's queue is full (raft retransmits).
    pub fn step(&self, msg: ::raft::prelude::Message) {
        let _ = self.raft_tx.try_send(RaftMsg::Step(Box::new(msg)));
    }

    /// Queues `msg` for the raft loop; when its channel is full the caller
    /// waits (back-pressure) on this worker thread.
    fn send_to_raft(&self, msg: RaftMsg) -> Result<(), EtcdError> {
        match self.raft_tx.try_send(msg) {
            Ok(()) => Ok(()),
            Err(crossbeam_channel::TrySendError::Full(msg)) => {
                tokio::task::block_in_place(|| self.raft_tx.send(msg))
                    .map_err(|_| EtcdError::Stopped)
            }
            Err(crossbeam_channel::TrySendError::Disconnected(_)) => Err(EtcdError::Stopped),
        }
    }

    async fn wait_applied(&self, index: u64) -> Result<(), EtcdError> {
        let mut rx = self.applied_rx.clone();
        rx.wait_for(|applied| *applied >= index)
            .await
            .map(|_| ())
            .map_err(|_| EtcdError::Stopped)
    }

    /// Moves leadership from this member, which must lead, to `target`,
    /// and waits until `target` leads (etcd's `MoveLeader`). Errors:
    /// `NotLeader`, `BadLeaderTransferee` (not a voting member),
    /// `TimeoutLeaderTransfer`.
    pub async fn move_leader(&self, target: u64) -> Result<(), EtcdError> {
        if self.leader() != self.member_id {
            return Err(EtcdError::NotLeader);
        }
        let is_voter = self
            .membership
            .members()
            .iter()
            .any(|m| m.id == target && !m.is_learner);
        if !is_voter {
            return Err(EtcdError::BadLeaderTransferee);
        }
        tracing::info!(
            current_leader_member_id = %format!("{:x}", self.member_id),
            transferee_member_id = %format!("{target:x}"),
            "leadership transfer starting"
        );
        self.send_to_raft(RaftMsg::TransferLeader(target))?;
        let deadline = tokio::time::Instant::now() + self.cfg.request_timeout;
        while self.leader() != target {
            if tokio::time::Instant::now() >= deadline {
                return Err(EtcdError::TimeoutLeaderTransfer);
            }
            tokio::time::sleep(self.cfg.tick).await;
        }
        tracing::info!(
            old_leader_member_id = %format!("{:x}", self.member_id),
            new_leader_member_id = %format!("{target:x}"),
            "leadership transfer finished"
        );
        Ok(())
    }

    /// Publishes this member's name and client URLs through raft (etcd's
    /// `publishV3`), retrying until it succeeds.
    pub async fn publish(&self) {
        let attrs = Attributes {
            name: self.cfg.name.clone(),
            client_urls: self.cfg.advertise_client_urls.clone(),
        };
        let req = InternalRaftRequest {
            cluster_member_attr_set: Some(ClusterMemberAttrSetRequest {
                member_id: self.member_id,
                member_attributes: Some(attrs.clone()),
            }),
            ..Default::default()
        };
        loop {
            match self.propose(req.clone()).await {
                Ok(_) => break,
                // Until the first election there is no leader to take it.
                Err(EtcdError::NoLeader) => tokio::time::sleep(self.cfg.tick).await,
                Err(e) => {
                    tracing::warn!(error = %e, "failed to publish local member to cluster through raft");
                    tokio::time::sleep(self.cfg.tick).await;
                }
            }
        }
        tracing::info!(
            local_member_id = %format!("{:x}", self.member_id),
            local_member_attributes = %format!("{{Name:{} ClientURLs:[{}]}}", attrs.name, attrs.client_urls.join(" ")),
            cluster_id = %format!("{:x}", self.cluster_id),
            "published local member to cluster through raft"
        );
    }

    /// Sets the cluster version through raft once this member leads and
    /// none is set yet (etcd's `monitorVersions`), checking every election
    /// timeout until a version is set; logs the version read from the
    /// store when there already is one.
    pub async fn monitor_cluster_version(&self) {
        if let Some(v) = self.cluster_version.get() {
            tracing::info!(cluster_version = %v, "set cluster version from store");
            return;
        }
        let every = self.cfg.tick * self.cfg.election_ticks as u32;
        while self.cluster_version.get().is_none() {
            if self.leader() == self.member_id {
                let req = InternalRaftRequest {
                    cluster_version_set: Some(ClusterVersionSetRequest {
                        ver: CLUSTER_VERSION.to_string(),
                    }),
                    ..Default::default()
                };
                if let Err(e) = self.propose(req).await {
                    tracing::warn!(error = %e, "failed to set the initial cluster version");
                }
            } else {
                tokio::time::sleep(every).await;
            }
        }
    }

    /// Stops raft and the apply stage; the backend is made durable.
    pub fn stop(&self) {
        self.store.stop_compactor();
        let _ = self.raft_tx.send(RaftMsg::Stop);
        let threads = std::mem::take(&mut *self.threads.lock().expect("threads lock"));
        for t in threads {
            let _ = t.join();
        }
    }

    /// The member's snapshot records (and backends received with them).
    pub fn snapshotter(&self) -> &Snapshotter {
        &self.snapshotter
    }

    /// Where the data lives, for logs.
    pub fn data_dir(&self) -> &Path {
        &self.cfg.data_dir
    }
}

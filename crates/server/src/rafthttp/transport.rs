//! Outgoing raft messages: one queue and one streaming task per peer.
//! Peers come and go with membership changes ([`Transport::add_peer`],
//! [`Transport::remove_peer`], [`Transport::set_peers`]); how long each
//! has been reachable is kept in [`PeerHealth`] for the strict
//! reconfiguration checks.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use api::etcdrspb::peer_client::PeerClient;
use api::etcdrspb::{RaftBatch, SnapshotChunk, TableEntry};
use protobuf::Message as _;
use raft::prelude::{Message, MessageType};
use raft::SnapshotStatus;
use storage::{KvStore, MvccError};
use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;

use super::dial::{Dialer, PeerEndpoint};

/// Messages queued per peer before new ones are dropped.
const QUEUE: usize = 4096;
/// Most bytes of messages in one batch.
const BATCH_BYTES: usize = 4 * 1024 * 1024;
/// Longest wait between reconnection attempts.
const MAX_BACKOFF: Duration = Duration::from_secs(1);
/// How often the round trip to a connected peer is measured.
const PROBE_INTERVAL: Duration = Duration::from_secs(5);
/// Bytes of backend entries per snapshot chunk.
const CHUNK_BYTES: usize = 1024 * 1024;
/// What a member answers (PermissionDenied) to a stream from a member
/// removed from the cluster (etcd answers HTTP 410 "removed member").
pub const REMOVED_MEMBER: &str = "removed member";

/// What a sender task tells the raft loop: how sending a snapshot ended.
pub type SnapshotReport = Box<dyn Fn(u64, SnapshotStatus) + Send + Sync>;

/// What a sender task calls when a peer refuses this member as removed
/// from the cluster.
pub type RemovedReport = Box<dyn Fn() + Send + Sync>;

/// Since when each peer has been reachable (etcd's `ActiveSince`): set
/// when a stream to it is established, cleared when it ends. Entries
/// carry the sender task's number, so a task that is going away (its peer
/// moved to another URL) never clears its successor's.
#[derive(Default)]
pub struct PeerHealth(Mutex<HashMap<u64, (u64, Instant)>>);

impl PeerHealth {
    /// Since when `id` has been connected, if it is.
    pub fn active_since(&self, id: u64) -> Option<Instant> {
        let m = self.0.lock().expect("peer health lock");
        m.get(&id).map(|(_, since)| *since)
    }

    fn up(&self, id: u64, task: u64) {
        let mut m = self.0.lock().expect("peer health lock");
        if m.get(&id).is_none_or(|(t, _)| *t != task) {
            m.insert(id, (task, Instant::now()));
        }
    }

    fn down(&self, id: u64, task: u64) {
        let mut m = self.0.lock().expect("peer health lock");
        if m.get(&id).is_some_and(|(t, _)| *t == task) {
            m.remove(&id);
        }
    }

    fn forget(&self, id: u64) {
        self.0.lock().expect("peer health lock").remove(&id);
    }
}

/// Numbers sender tasks for [`PeerHealth`].
static TASKS: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(1);

/// What every sender task shares.
struct Shared {
    cluster_id: u64,
    from: u64,
    store: Arc<KvStore>,
    report: SnapshotReport,
    removed: RemovedReport,
    dialer: Dialer,
    health: Arc<PeerHealth>,
    runtime: tokio::runtime::Handle,
}

/// One peer's queue and the URL its task sends to.
struct PeerQueue {
    url: String,
    tx: mpsc::Sender<Message>,
}

/// The raft loop's senders to its peers.
pub struct Transport {
    peers: HashMap<u64, PeerQueue>,
    shared: Arc<Shared>,
}

/// How a [`Transport`] reaches its peers and whom it tells what.
pub struct TransportConfig {
    /// The cluster id sent with every batch.
    pub cluster_id: u64,
    /// This member's id.
    pub from: u64,
    /// The backend snapshots carry.
    pub store: Arc<KvStore>,
    /// Learns how each snapshot send ended.
    pub report: SnapshotReport,
    /// Called when a peer says this member was removed.
    pub removed: RemovedReport,
    /// Connects (with TLS for `https://` peers).
    pub dialer: Dialer,
    /// Where reachability is recorded.
    pub health: Arc<PeerHealth>,
}

impl Transport {
    /// A transport with a sender task for each of `peers` (`id`, first
    /// peer URL), on the current tokio runtime (tasks of peers added
    /// later go there too).
    pub fn start(cfg: TransportConfig, peers: Vec<(u64, String)>) -> Transport {
        let shared = Arc::new(Shared {
            cluster_id: cfg.cluster_id,
            from: cfg.from,
            store: cfg.store,
            report: cfg.report,
            removed: cfg.removed,
            dialer: cfg.dialer,
            health: cfg.health,
            runtime: tokio::runtime::Handle::current(),
        });
        let mut t = Transport {
            peers: HashMap::new(),
            shared,
        };
        for (id, url) in peers {
            t.add_peer(id, url);
        }
        t
    }

    /// Starts sending to member `id` at `url` (etcd's `AddPeer`); a peer
    /// already known at another URL is moved there (`UpdatePeer`).
    pub fn add_peer(&mut self, id: u64, url: String) {
        if id == self.shared.from || self.peers.get(&id).is_some_and(|p| p.url == url) {
            return;
        }
        self.remove_peer(id);
        let (tx, rx) = mpsc::channel(QUEUE);
        tracing::info!(remote_peer_id = %format!("{id:x}"), remote_peer_urls = %url, "added remote peer");
        self.shared
            .runtime
            .spawn(send_loop(self.shared.clone(), id, url.clone(), rx));
        self.peers.insert(id, PeerQueue { url, tx });
    }

    /// Stops sending to member `id` (etcd's `RemovePeer`); its task ends
    /// when its queue is dropped.
    pub fn remove_peer(&mut self, id: u64) {
        if self.peers.remove(&id).is_some() {
            self.shared.health.forget(id);
            tracing::info!(remote_peer_id = %format!("{id:x}"), "removed remote peer");
        }
    }

    /// Makes the peers exactly `peers` (after a snapshot replaced the
    /// membership).
    pub fn set_peers(&mut self, peers: Vec<(u64, String)>) {
        let gone: Vec<u64> = self
            .peers
            .keys()
            .filter(|id| !peers.iter().any(|(p, _)| p == *id))
            .copied()
            .collect();
        for id in gone {
            self.remove_peer(id);
        }
        for (id, url) in peers {
            self.add_peer(id, url);
        }
    }

    /// Queues `msgs` for their peers; never blocks. Messages to unknown
    /// members, or beyond a full queue, are dropped.
    pub fn send(&self, msgs: Vec<Message>) {
        for m in msgs {
            if let Some(p) = self.peers.get(&m.to) {
                if let Err(e) = p.tx.try_send(m) {
                    let m = e.into_inner();
                    if m.get_msg_type() == MessageType::MsgHeartbeat {
                        metrics::HEARTBEAT_SEND_FAILURES.inc();
                    }
                    report_if_snapshot(&self.shared, &m);
                }
            }
        }
    }
}

/// etcd's prober: while connected to peer `to`, the round trip of a
/// small call (the peer's gRPC health check) every [`PROBE_INTERVAL`],
/// in `etcd_network_peer_round_trip_time_seconds`.
async fn probe_loop(channel: tonic::transport::Channel, to: u64) {
    let mut client = tonic_health::pb::health_client::HealthClient::new(channel);
    let rtt = metrics::PEER_ROUND_TRIP.with_label_values(&[&format!("{to:x}")]);
    let mut tick = tokio::time::interval(PROBE_INTERVAL);
    loop {
        tick.tick().await;
        let started = Instant::now();
        let check = tonic_health::pb::HealthCheckRequest::default();
        if client.check(check).await.is_ok() {
            rtt.observe(started.elapsed().as_secs_f64());
        }
    }
}

/// A dropped snapshot must be reported, or raft keeps the follower paused
/// waiting for it.
fn report_if_snapshot(shared: &Shared, m: &Message) {
    if m.get_msg_type() == MessageType::MsgSnapshot {
        (shared.report)(m.to, SnapshotStatus::Failure);
    }
}

/// Streams `rx` to the peer at `url`, reconnecting until `rx` closes.
async fn send_loop(shared: Arc<Shared>, to: u64, url: String, mut rx: mpsc::Receiver<Message>) {
    let (cluster_id, from) = (shared.cluster_id, shared.from);
    let task = TASKS.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let mut backoff = Duration::from_millis(50);
    let endpoint = match shared.dialer.endpoint(&url) {
        Ok(e) => e.configure(|e| {
            e.connect_timeout(Duration::from_secs(1))
                .http2_keep_alive_interval(Duration::from_secs(1))
                .keep_alive_timeout(Duration::from_secs(3))
                .tcp_nodelay(true)
        }),
        Err(e) => {
            tracing::error!(peer = %format!("{to:x}"), url = %url, error = %e, "invalid peer URL");
            return;
        }
    };
    loop {
        let channel = match shared.dialer.connect(&endpoint).await {
            Ok(c) => c,
            Err(e) => {
                shared.health.down(to, task);
                tracing::debug!(peer = %format!("{to:x}"), error = %e, "peer unreachable");
                // Messages queued meanwhile are stale; raft sends new ones.
                while let Ok(m) = rx.try_recv() {
                    report_if_snapshot(&shared, &m);
                }
                tokio::time::sleep(backoff).await;
                backoff = (backoff * 2).min(MAX_BACKOFF);
                if rx.is_closed() {
                    return;
                }
                continue;
            }
        };
        backoff = Duration::from_millis(50);
        shared.health.up(to, task);
        tracing::info!(remote_peer_id = %format!("{to:x}"), "established a stream to the remote peer");
        let (conn_tx, conn_rx) = mpsc::channel::<RaftBatch>(16);
        let probe = tokio::spawn(probe_loop(channel.clone(), to));
        let mut client = PeerClient::new(channel)
            .max_encoding_message_size(usize::MAX)
            .max_decoding_message_size(usize::MAX);
        let mut call = tokio::spawn(async move { client.raft(ReceiverStream::new(conn_rx)).await });
        // The call ends when the peer or the link goes away (HTTP/2
        // keepalive), even while there is nothing to send: a follower
        // rarely sends to another follower, yet must see it go down.
        let mut ended = None;
        loop {
            let first = tokio::select! {
                m = rx.recv() => match m {
                    Some(m) => m,
                    None => return,
                },
                r = &mut call => {
                    ended = Some(r);
                    break;
                }
            };
            let mut size = 0;
            let mut messages = Vec::new();
            let mut next = Some(first);
            while let Some(m) = next {
                if m.get_msg_type() == MessageType::MsgSnapshot {
                    // On a stream of its own, in a task of its own: the
                    // heartbeats and appends behind it keep flowing while a
                    // large backend is sent (raft sends a follower one
                    // snapshot at a time and waits for its report).
                    tokio::spawn(snapshot_task(shared.clone(), endpoint.clone(), m));
                    next = rx.try_recv().ok();
                    continue;
                }
                let bytes = m.write_to_bytes().expect("raft messages encode");
                size += bytes.len();
                messages.push(bytes);
                next = if size < BATCH_BYTES {
                    rx.try_recv().ok()
                } else {
                    None
                };
            }
            if messages.is_empty() {
                continue;
            }
            metrics::PEER_SENT_BYTES
                .with_label_values(&[&format!("{to:x}")])
                .inc_by(size as u64);
            let batch = RaftBatch {
                cluster_id,
                from,
                messages,
            };
            if conn_tx.send(batch).await.is_err() {
                break;
            }
        }
        probe.abort();
        shared.health.down(to, task);
        let result = match ended {
            Some(r) => r,
            None => call.await,
        };
        if let Ok(Err(status)) = result {
            if status.code() == tonic::Code::PermissionDenied && status.message() == REMOVED_MEMBER
            {
                tracing::error!(
                    remote_peer_id = %format!("{to:x}"),
                    "the remote peer refuses this member: it was removed from the cluster"
                );
                (shared.removed)();
                return;
            }
            if status.code() == tonic::Code::FailedPrecondition {
                tracing::error!(
                    remote_peer_id = %format!("{to:x}"),
                    local_member_cluster_id = %format!("{cluster_id:x}"),
                    "request sent was ignored by remote peer due to cluster ID mismatch"
                );
            }
            tracing::warn!(
                remote_peer_id = %format!("{to:x}"),
                error = %status.message(),
                "lost the stream to the remote peer"
            );
        }
        tokio::time::sleep(backoff).await;
    }
}

/// Sends a snapshot and reports to raft how that ended.
async fn snapshot_task(shared: Arc<Shared>, endpoint: PeerEndpoint, m: Message) {
    let to = m.to;
    let status = match send_snapshot(&shared, &endpoint, m).await {
        Ok(()) => SnapshotStatus::Finish,
        Err(e) => {
            tracing::warn!(
                remote_peer_id = %format!("{to:x}"),
                error = %e,
                "failed to send database snapshot"
            );
            SnapshotStatus::Failure
        }
    };
    (shared.report)(to, status);
}

/// Streams a snapshot to a peer: the raft message, its metadata set to the
/// index and term of one consistent read of the backend, then that read.
async fn send_snapshot(
    shared: &Arc<Shared>,
    endpoint: &PeerEndpoint,
    mut m: Message,
) -> Result<(), String> {
    let channel = shared
        .dialer
        .connect(endpoint)
        .await
        .map_err(|e| e.to_string())?;
    let mut client = PeerClient::new(channel).max_encoding_message_size(usize::MAX);
    let (tx, rx) = mpsc::channel::<SnapshotChunk>(4);
    let store = shared.store.clone();
    let to = m.to;
    let export = tokio::task::spawn_blocking(move || {
        let mut chunk = SnapshotChunk::default();
        let mut size = 0;
        let mut total = 0u64;
        let result = store.export(
            |index, term| {
                let meta = m.mut_snapshot().mut_metadata();
                meta.index = index;
                meta.term = term;
                tracing::info!(
                    remote_peer_id = %format!("{to:x}"),
                    snapshot_index = index,
                    "sending database snapshot"
                );
                let first = SnapshotChunk {
                    message: m.write_to_bytes().expect("raft messages encode"),
                    ..Default::default()
                };
                tx.blocking_send(first)
                    .map_err(|_| ExportError::StreamClosed)
            },
            |table, key, value| {
                size += key.len() + value.len();
                total += 1;
                chunk.entries.push(TableEntry {
                    table: table.to_string(),
                    key: key.to_vec(),
                    value: value.to_vec(),
                });
                if size >= CHUNK_BYTES {
                    size = 0;
                    tx.blocking_send(std::mem::take(&mut chunk))
                        .map_err(|_| ExportError::StreamClosed)?;
                }
                Ok::<_, ExportError>(())
            },
        );
        // Only a complete export ends with the marker; anything else ends
        // the stream without it and the receiver discards what it got.
        if result.is_ok() {
            chunk.done = true;
            chunk.total_entries = total;
            let _ = tx.blocking_send(chunk);
        }
        result.map(|_| ())
    });
    let sent = client
        .snapshot(tokio_stream::wrappers::ReceiverStream::new(rx))
        .await;
    export
        .await
        .map_err(|e| e.to_string())?
        .map_err(|e| e.to_string())?;
    sent.map(|_| ()).map_err(|s| s.message().to_string())
}

/// Why reading the backend into a snapshot stream stopped.
#[derive(Debug, thiserror::Error)]
enum ExportError {
    #[error(transparent)]
    Store(#[from] MvccError),
    #[error("the snapshot stream closed")]
    StreamClosed,
}

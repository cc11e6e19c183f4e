//! Outgoing raft messages: one queue and one streaming task per peer.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

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
/// Bytes of backend entries per snapshot chunk.
const CHUNK_BYTES: usize = 1024 * 1024;

/// What a sender task tells the raft loop: how sending a snapshot ended.
pub type SnapshotReport = Box<dyn Fn(u64, SnapshotStatus) + Send + Sync>;

/// What every sender task shares.
struct Shared {
    cluster_id: u64,
    from: u64,
    store: Arc<KvStore>,
    report: SnapshotReport,
    dialer: Dialer,
}

/// The raft loop's senders to its peers.
pub struct Transport {
    peers: HashMap<u64, mpsc::Sender<Message>>,
    shared: Arc<Shared>,
}

impl Transport {
    /// Starts a sender task for each peer (`id`, first peer URL) on the
    /// current tokio runtime. `cluster_id` and `from` go with every batch;
    /// snapshots carry `store`'s backend, and `report` learns how each
    /// snapshot send ended; `dialer` connects (with TLS for `https://`
    /// peers).
    pub fn start(
        cluster_id: u64,
        from: u64,
        peers: Vec<(u64, String)>,
        store: Arc<KvStore>,
        report: SnapshotReport,
        dialer: Dialer,
    ) -> Transport {
        let shared = Arc::new(Shared {
            cluster_id,
            from,
            store,
            report,
            dialer,
        });
        let peers = peers
            .into_iter()
            .map(|(id, url)| {
                let (tx, rx) = mpsc::channel(QUEUE);
                tokio::spawn(send_loop(shared.clone(), id, url, rx));
                (id, tx)
            })
            .collect();
        Transport { peers, shared }
    }

    /// Queues `msgs` for their peers; never blocks. Messages to unknown
    /// members, or beyond a full queue, are dropped.
    pub fn send(&self, msgs: Vec<Message>) {
        for m in msgs {
            if let Some(tx) = self.peers.get(&m.to) {
                if let Err(e) = tx.try_send(m) {
                    report_if_snapshot(&self.shared, &e.into_inner());
                }
            }
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
        tracing::info!(remote_peer_id = %format!("{to:x}"), "established a stream to the remote peer");
        let (conn_tx, conn_rx) = mpsc::channel::<RaftBatch>(16);
        let mut client = PeerClient::new(channel)
            .max_encoding_message_size(usize::MAX)
            .max_decoding_message_size(usize::MAX);
        let call = tokio::spawn(async move { client.raft(ReceiverStream::new(conn_rx)).await });
        loop {
            let Some(first) = rx.recv().await else {
                return;
            };
            let mut size = 0;
            let mut messages = Vec::new();
            let mut next = Some(first);
            while let Some(m) = next {
                if m.get_msg_type() == MessageType::MsgSnapshot {
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
                    break;
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
            let batch = RaftBatch {
                cluster_id,
                from,
                messages,
            };
            if conn_tx.send(batch).await.is_err() {
                break;
            }
        }
        if let Ok(Err(status)) = call.await {
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

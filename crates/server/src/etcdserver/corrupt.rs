//! The initial corruption check (etcd's `corrupt.go`,
//! `--experimental-initial-corrupt-check`): before a restarted member
//! serves clients, it hashes its key history at its current revision and
//! asks every other member for the hash at that revision over the peer
//! link (`etcdrspb.Peer/HashKV`, etcd's `GET /members/hashkv`). A peer
//! with the same compaction revision and another hash means the data
//! diverged: the member refuses to start. Peers that cannot answer (down,
//! behind, compacted past the revision) are logged and skipped, as in
//! etcd.
//!
//! The periodic check (`--experimental-corrupt-check-time`): every
//! interval the leader hashes its history, asks each peer for the hash at
//! that revision, confirms its leadership, hashes again, and raises the
//! CORRUPT alarm (for member 0, as etcd 3.5: it cannot tell which member
//! is wrong) through raft on any of etcd's mismatches. From then on the
//! cluster refuses writes with `etcdserver: corrupt cluster`.

use std::sync::Arc;
use std::time::Duration;

use api::etcdrspb::peer_client::PeerClient;
use api::etcdrspb::PeerHashKvRequest;
use api::etcdserverpb::alarm_request::AlarmAction;
use api::etcdserverpb::{AlarmRequest, AlarmType};
use storage::mvcc::KvHash;
use tonic::Code;

use super::EtcdServer;

/// Compares this member's hash with its peers'. Error: etcd's `<id>
/// found data inconsistency with peers`, or a local hash that fails.
pub async fn initial_check(server: &EtcdServer) -> Result<(), String> {
    let me = format!("{:x}", server.member_id);
    let timeout = server.cfg.request_timeout;
    tracing::info!(local_member_id = %me, timeout = ?timeout, "starting initial corruption check");
    let store = server.store.clone();
    let local = tokio::task::spawn_blocking(move || store.hash_kv(0))
        .await
        .map_err(|e| e.to_string())?
        .map_err(|e| format!("{me} failed to fetch hash ({e})"))?;
    let mut mismatches = 0;
    for m in server.membership.members() {
        if m.id == server.member_id {
            continue;
        }
        let peer = format!("{:x}", m.id);
        let Some(remote) = peer_hash(server, &m.peer_urls, local.revision).await else {
            continue;
        };
        if remote.hash == local.hash {
            continue;
        }
        let same_compaction = remote.compact_revision == local.compact_revision;
        let msg = if same_compaction {
            mismatches += 1;
            "found different hash values from remote peer"
        } else {
            "found different compact revision values from remote peer"
        };
        tracing::warn!(
            local_member_id = %me,
            local_member_revision = local.revision,
            local_member_compact_revision = local.compact_revision,
            local_member_hash = local.hash,
            remote_peer_id = %peer,
            remote_peer_endpoints = %m.peer_urls.join(","),
            remote_peer_revision = remote.revision,
            remote_peer_compact_revision = remote.compact_revision,
            remote_peer_hash = remote.hash,
            "{msg}"
        );
    }
    if mismatches > 0 {
        let e = format!("{me} found data inconsistency with peers");
        tracing::error!(error = %e, "checkInitialHashKV failed");
        return Err(e);
    }
    tracing::info!(local_member_id = %me, "initial corruption checking passed; no corruption");
    Ok(())
}

/// Runs the periodic check every `every` while this member leads, until
/// the member stops (the task is dropped). A check that cannot finish is
/// logged, as etcd's `failed to check hash KV`.
pub async fn periodic_checks(server: Arc<EtcdServer>, every: Duration) {
    tracing::info!(
        local_member_id = %format!("{:x}", server.member_id),
        interval = ?every,
        "enabled corruption checking"
    );
    loop {
        tokio::time::sleep(every).await;
        if server.leader() != server.member_id {
            continue;
        }
        if let Err(e) = periodic_check(&server).await {
            tracing::warn!(error = %e, "failed to check hash KV");
        }
    }
}

/// Hashes this member's history at its current revision (0).
async fn local_hash(server: &EtcdServer) -> Result<KvHash, String> {
    let store = server.store.clone();
    tokio::task::spawn_blocking(move || store.hash_kv(0))
        .await
        .map_err(|e| e.to_string())?
        .map_err(|e| e.to_string())
}

/// One round of etcd 3.5's `PeriodicCheck`.
async fn periodic_check(server: &EtcdServer) -> Result<(), String> {
    let first = local_hash(server).await?;
    let mut peers = Vec::new();
    for m in server.membership.members() {
        if m.id != server.member_id {
            if let Some(r) = peer_hash(server, &m.peer_urls, first.revision).await {
                peers.push((m.id, r));
            }
        }
    }
    server
        .linearizable_read()
        .await
        .map_err(|e| e.to_string())?;
    let second = local_hash(server).await?;
    let mut mismatch = false;
    if second.hash != first.hash
        && second.revision == first.revision
        && second.compact_revision == first.compact_revision
    {
        tracing::warn!(
            revision_1 = first.revision,
            compact_revision_1 = first.compact_revision,
            hash_1 = first.hash,
            revision_2 = second.revision,
            compact_revision_2 = second.compact_revision,
            hash_2 = second.hash,
            "found hash mismatch"
        );
        mismatch = true;
    }
    for (id, r) in &peers {
        let peer = format!("{id:x}");
        if r.revision > second.revision {
            tracing::warn!(leader_revision = second.revision, follower_revision = r.revision, follower_peer_id = %peer, "revision from follower must be less than or equal to leader's");
            mismatch = true;
        }
        if r.compact_revision > second.compact_revision {
            tracing::warn!(leader_compact_revision = second.compact_revision, follower_compact_revision = r.compact_revision, follower_peer_id = %peer, "compact revision from follower must be less than or equal to leader's");
            mismatch = true;
        }
        if r.compact_revision == first.compact_revision && r.hash != first.hash {
            tracing::warn!(leader_compact_revision = second.compact_revision, leader_hash = first.hash, follower_compact_revision = r.compact_revision, follower_hash = r.hash, follower_peer_id = %peer, "same compact revision then hashes must match");
            mismatch = true;
        }
    }
    if mismatch {
        server
            .alarm(AlarmRequest {
                action: AlarmAction::Activate as i32,
                member_id: 0,
                alarm: AlarmType::Corrupt as i32,
            })
            .await
            .map_err(|e| e.to_string())?;
    }
    tracing::info!(
        number_of_peers_checked = peers.len(),
        "finished peer corruption check"
    );
    Ok(())
}

/// The first answer of a peer's URLs, or `None` (logged) if none gives one.
async fn peer_hash(
    server: &EtcdServer,
    urls: &[String],
    revision: i64,
) -> Option<api::etcdrspb::PeerHashKvResponse> {
    let timeout = server.cfg.request_timeout;
    for url in urls {
        let reply = async {
            let ep = server
                .dialer
                .endpoint(url)
                .map_err(tonic::Status::unavailable)?
                .configure(|e| e.connect_timeout(timeout).timeout(timeout));
            let channel = server
                .dialer
                .connect(&ep)
                .await
                .map_err(|e| tonic::Status::unavailable(e.to_string()))?;
            let req = PeerHashKvRequest {
                cluster_id: server.cluster_id,
                revision,
            };
            PeerClient::new(channel).hash_kv(req).await
        };
        match tokio::time::timeout(timeout, reply).await {
            Ok(Ok(r)) => return Some(r.into_inner()),
            Ok(Err(status)) => {
                let msg = match status.code() {
                    Code::OutOfRange if status.message().contains("future revision") => {
                        "cannot fetch hash from slow remote peer"
                    }
                    Code::OutOfRange => {
                        "cannot fetch hash from remote peer; local member is behind"
                    }
                    Code::FailedPrecondition => "cluster ID mismatch",
                    _ => "failed hash kv request",
                };
                tracing::warn!(requested_revision = revision, remote_peer_endpoint = %url, error = %status.message(), "{msg}");
            }
            Err(_) => {
                tracing::warn!(requested_revision = revision, remote_peer_endpoint = %url, error = "timed out", "failed hash kv request");
            }
        }
    }
    None
}

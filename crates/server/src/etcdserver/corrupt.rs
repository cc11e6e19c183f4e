//! The initial corruption check (etcd's `corrupt.go`,
//! `--experimental-initial-corrupt-check`): before a restarted member
//! serves clients, it hashes its key history at its current revision and
//! asks every other member for the hash at that revision over the peer
//! link (`etcdrspb.Peer/HashKV`, etcd's `GET /members/hashkv`). A peer
//! with the same compaction revision and another hash means the data
//! diverged: the member refuses to start. Peers that cannot answer (down,
//! behind, compacted past the revision) are logged and skipped, as in
//! etcd.

use api::etcdrspb::peer_client::PeerClient;
use api::etcdrspb::PeerHashKvRequest;
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

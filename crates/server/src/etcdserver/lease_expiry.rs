//! The leader's lease expiry (etcd's `revokeExpiredLeases` and the
//! lessor's checkpoint scheduling): revokes expired leases and
//! checkpoints remaining TTLs through raft.

use std::sync::Arc;
use std::time::Duration;

use api::etcdserverpb::{
    InternalRaftRequest, LeaseCheckpoint, LeaseCheckpointRequest, LeaseRevokeRequest,
};

use super::EtcdServer;
use crate::rpctypes::EtcdError;

/// How often the leader looks for expired leases.
const EXPIRY_INTERVAL: Duration = Duration::from_millis(500);
/// Most revocations proposed per round (etcd revokes 1,000 per second).
const REVOKES_PER_ROUND: usize = 500;
/// Most checkpoints in one raft entry (etcd's batch size).
const CHECKPOINTS_PER_ENTRY: usize = 1000;
/// Most checkpoint entries proposed per round.
const CHECKPOINT_ENTRIES_PER_ROUND: usize = 4;

/// Revokes expired leases and checkpoints remaining TTLs through raft, on
/// the leader, once the apply stage promoted the lessor (at the leader's
/// first entry of its term); demotes the lessor when leadership is gone.
/// The revocations of one round are proposed together, so raft writes
/// them in few batches.
pub async fn expiry_loop(server: Arc<EtcdServer>) {
    let mut tick = tokio::time::interval(EXPIRY_INTERVAL);
    // A round that stalled (no quorum) must not be followed by a burst.
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        if !server.lessor.is_primary() {
            continue;
        }
        if server.leader() != server.member_id {
            server.lessor.demote();
            continue;
        }
        let revocations = server.lessor.expired(REVOKES_PER_ROUND).into_iter().map(|id| {
            let server = &server;
            async move {
                let req = InternalRaftRequest {
                    lease_revoke: Some(LeaseRevokeRequest { id }),
                    ..Default::default()
                };
                // The member's own request: made as root while auth is on.
                if let Err(e) = server.propose(req).await {
                    tracing::warn!(lease_id = %format!("{id:x}"), error = %e, "failed to revoke an expired lease");
                }
            }
        });
        futures::future::join_all(revocations).await;
        for _ in 0..CHECKPOINT_ENTRIES_PER_ROUND {
            let due = server.lessor.due_checkpoints(CHECKPOINTS_PER_ENTRY);
            if due.is_empty() {
                break;
            }
            let full = due.len() == CHECKPOINTS_PER_ENTRY;
            if let Err(e) = server.checkpoint_leases(due).await {
                tracing::warn!(error = %e, "failed to checkpoint leases");
            }
            if !full {
                break;
            }
        }
    }
}

impl EtcdServer {
    /// Proposes `checkpoints` (remaining TTLs; 0 voids a lease's) in one
    /// entry. Errors: those of [`EtcdServer::propose`].
    pub async fn checkpoint_leases(
        &self,
        checkpoints: Vec<LeaseCheckpoint>,
    ) -> Result<(), EtcdError> {
        let req = InternalRaftRequest {
            lease_checkpoint: Some(LeaseCheckpointRequest { checkpoints }),
            ..Default::default()
        };
        self.propose(req).await.map(|_| ())
    }
}

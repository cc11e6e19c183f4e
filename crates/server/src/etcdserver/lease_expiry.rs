//! The leader's lease duties: expiry (etcd's `revokeExpiredLeases` and
//! the lessor's checkpoint scheduling: revokes expired leases and
//! checkpoints remaining TTLs through raft) and renewal on the leader
//! (etcd's `LeaseRenew`). Both first confirm the leadership with a
//! quorum (etcd's `ensureLeadership`): a leader that was paused or cut off
//! believes it leads, with deadlines its successor no longer keeps, until
//! it hears otherwise, and must neither revoke what its successor renewed
//! nor renew what its successor expired.

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
        let expired = server.lessor.expired(REVOKES_PER_ROUND);
        if !expired.is_empty() && !server.ensure_leadership().await {
            // They are due again later (`Lessor::expired`).
            tracing::warn!(
                local_member_id = %format!("{:x}", server.member_id),
                "Ignore the lease revoking request because current member isn't a leader"
            );
            continue;
        }
        let revocations = expired.into_iter().map(|id| {
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
    /// Whether this member still leads, confirmed by a quorum (a ReadIndex
    /// round) within the request timeout, with everything committed before
    /// applied (etcd's `ensureLeadership` and `waitAppliedIndex`).
    pub async fn ensure_leadership(&self) -> bool {
        self.linearizable_read().await.is_ok() && self.leader() == self.member_id
    }

    /// Renews lease `id` on this member, the leader (etcd's `LeaseRenew`
    /// there), once [`EtcdServer::ensure_leadership`] confirms it leads:
    /// the lease's TTL in seconds, or `None` if it does not exist. A
    /// renewal that clears a checkpoint proposes the clearing. Errors:
    /// `NotPrimary` when leadership is not confirmed.
    pub async fn lease_renew_as_leader(&self, id: i64) -> Result<Option<i64>, EtcdError> {
        if !self.ensure_leadership().await {
            return Err(EtcdError::NotPrimary);
        }
        let Some(renewed) = self.lessor.renew(id) else {
            return Ok(None);
        };
        if renewed.clear_checkpoint {
            // Every member forgets the checkpoint, or a later leader would
            // give the lease only what was left at that checkpoint.
            // A failure is logged, as etcd does: the keep-alive still
            // renewed the lease on this leader.
            let clear = vec![LeaseCheckpoint {
                id,
                remaining_ttl: 0,
            }];
            if let Err(e) = self.checkpoint_leases(clear).await {
                tracing::warn!(lease_id = %format!("{id:x}"), error = %e, "failed to clear a lease checkpoint");
            }
        }
        Ok(Some(renewed.ttl))
    }

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

//! Membership changes at run time (etcd's `AddMember`, `RemoveMember`,
//! `UpdateMember`, `PromoteMember`): the checks made before a change is
//! proposed (`--strict-reconfig-check`: a quorum of started and connected
//! voting members must survive it; a learner is promoted only in sync
//! with the leader), the proposal as a raft configuration change, and the
//! wait until it is applied. The checks made when it is applied are
//! [`Membership::validate`](super::membership::Membership::validate).

use std::sync::atomic::Ordering;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use api::etcdrspb::peer_client::PeerClient;
use api::etcdrspb::PeerPromoteRequest;

use super::membership::{new_member_id, ConfChangeContext, Member, MemberChange};
use super::raft::{LeaderProgress, RaftMsg};
use super::stage::Applied;
use super::EtcdServer;
use crate::rpctypes::EtcdError;

/// How long every voting member must have been connected before a change
/// (etcd's `HealthInterval`).
const HEALTH_INTERVAL: Duration = Duration::from_secs(5);
/// A learner's log must match at least this share of the leader's to be
/// promoted (etcd's `readyPercent`).
const READY_PERCENT: f64 = 0.9;

/// Checks peer URLs as etcd's `types.NewURLs` does: a known scheme, a
/// `host:port` (TCP) and no path. Error: `MemberBadUrls`.
fn check_peer_urls(urls: &[String]) -> Result<(), EtcdError> {
    let ok = |u: &str| {
        let Some((scheme, rest)) = u.split_once("://") else {
            return false;
        };
        match scheme {
            "unix" | "unixs" => !rest.is_empty(),
            "http" | "https" => rest
                .rsplit_once(':')
                .is_some_and(|(host, port)| !host.is_empty() && port.parse::<u16>().is_ok()),
            _ => false,
        }
    };
    if urls.is_empty() || !urls.iter().all(|u| ok(u)) {
        return Err(EtcdError::MemberBadUrls);
    }
    Ok(())
}

impl EtcdServer {
    /// Adds a member with `peer_urls` (a learner if `is_learner`); returns
    /// it and the members after the change. Errors: `MemberBadUrls`, the
    /// strict checks' `MemberNotEnoughStarted` and `Unhealthy`, and the
    /// apply-time `MemberExist`, `PeerUrlExist`, `TooManyLearners`.
    pub async fn add_member(
        &self,
        peer_urls: Vec<String>,
        is_learner: bool,
    ) -> Result<(Member, Vec<Member>), EtcdError> {
        check_peer_urls(&peer_urls)?;
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_secs());
        let member = Member {
            id: new_member_id(&peer_urls, now),
            name: String::new(),
            peer_urls,
            client_urls: Vec::new(),
            is_learner,
        };
        if self.cfg.strict_reconfig_check {
            if !is_learner && !self.membership.is_ready_to_add_voting_member() {
                return Err(EtcdError::MemberNotEnoughStarted);
            }
            let voters = self.membership.voter_ids();
            if voters.iter().any(|id| !self.connected_since(*id)) {
                return Err(EtcdError::Unhealthy);
            }
        }
        let members = self.configure(MemberChange::Add(member.clone())).await?;
        Ok((member, members))
    }

    /// Removes member `id` for good; a leader being removed first hands
    /// its leadership to another voter. Errors: the strict checks'
    /// `MemberNotEnoughStarted` and `Unhealthy`, and `MemberNotFound`.
    pub async fn remove_member(&self, id: u64) -> Result<Vec<Member>, EtcdError> {
        if self.cfg.strict_reconfig_check && !self.membership.is_learner(id) {
            if !self.membership.is_ready_to_remove_voting_member(id) {
                return Err(EtcdError::MemberNotEnoughStarted);
            }
            // A member that is down is not part of the active quorum.
            let down = id != self.member_id && self.peer_health.active_since(id).is_none();
            if !down {
                let voters = self.membership.voter_ids();
                let active = voters.iter().filter(|v| self.connected_since(**v)).count();
                if active < 2 + (voters.len().saturating_sub(1)) / 2 {
                    return Err(EtcdError::Unhealthy);
                }
            }
        }
        if self.leader() == id {
            self.hand_over_leadership(id).await;
        }
        self.configure(MemberChange::Remove(id)).await
    }

    /// Gives member `id` new peer URLs. Errors: `MemberBadUrls`,
    /// `MemberNotFound`, `PeerUrlExist`.
    pub async fn update_member(
        &self,
        id: u64,
        peer_urls: Vec<String>,
    ) -> Result<Vec<Member>, EtcdError> {
        check_peer_urls(&peer_urls)?;
        self.configure(MemberChange::Update { id, peer_urls }).await
    }

    /// Makes learner `id` a voter. Only the leader knows how far the
    /// learner's log is; a follower asks its leader over the peer URL.
    /// Errors: `LearnerNotReady`, `MemberNotEnoughStarted`,
    /// `MemberNotFound`, `MemberNotLearner`, or the leader's answer.
    pub async fn promote_member(&self, id: u64) -> Result<Vec<Member>, EtcdError> {
        match self.promote_member_here(id).await {
            Err(EtcdError::NotLeader) => self.forward_promote(id).await,
            other => other,
        }
    }

    /// [`Self::promote_member`] on this member, which must lead. Error
    /// `NotLeader` otherwise.
    pub async fn promote_member_here(&self, id: u64) -> Result<Vec<Member>, EtcdError> {
        let progress = self.leader_progress().await?.ok_or(EtcdError::NotLeader)?;
        if let Some(learner) = progress.matched.get(&id) {
            if (*learner as f64) < progress.leader_match as f64 * READY_PERCENT {
                return Err(EtcdError::LearnerNotReady);
            }
        }
        if self.cfg.strict_reconfig_check && !self.membership.is_ready_to_promote_member(id) {
            return Err(EtcdError::MemberNotEnoughStarted);
        }
        self.configure(MemberChange::Promote(id)).await
    }

    async fn forward_promote(&self, id: u64) -> Result<Vec<Member>, EtcdError> {
        let url = self.leader_peer_url().ok_or(EtcdError::NoLeader)?;
        let ep = self
            .dialer
            .endpoint(&url)
            .map_err(|e| EtcdError::Internal(e.to_string()))?
            .configure(|e| e.timeout(self.cfg.request_timeout));
        let channel = self
            .dialer
            .connect(&ep)
            .await
            .map_err(|_| EtcdError::NoLeader)?;
        let resp = PeerClient::new(channel)
            .promote(PeerPromoteRequest {
                cluster_id: self.cluster_id,
                member_id: id,
            })
            .await
            .map_err(|s| EtcdError::Forwarded(s.code(), s.message().to_string()))?;
        Ok(resp
            .into_inner()
            .members
            .into_iter()
            .map(super::join::from_peer_member)
            .collect())
    }

    /// How far each member's log matches the leader's, asked of the raft
    /// loop; `None` unless this member leads. Error: `Stopped`.
    async fn leader_progress(&self) -> Result<Option<LeaderProgress>, EtcdError> {
        let (tx, rx) = tokio::sync::oneshot::channel();
        self.send_to_raft(RaftMsg::Progress(tx))?;
        rx.await.map_err(|_| EtcdError::Stopped)
    }

    /// Whether voting member `id` (this member counts) has been connected
    /// for [`HEALTH_INTERVAL`].
    fn connected_since(&self, id: u64) -> bool {
        if id == self.member_id {
            return true;
        }
        let Some(since) = Instant::now().checked_sub(HEALTH_INTERVAL) else {
            return false;
        };
        self.peer_health
            .active_since(id)
            .is_some_and(|t| t <= since)
    }

    /// Moves leadership away from `leader` before its removal: to this
    /// member when it is a voter that does not lead (a follower's request
    /// goes to the leader), else to the most caught-up other voter. Waits
    /// up to the request timeout; the removal goes on either way.
    async fn hand_over_leadership(&self, leader: u64) {
        let me = self.member_id;
        let transferee = if me != leader && !self.membership.is_learner(me) {
            Some(me)
        } else {
            self.leader_progress().await.ok().flatten().and_then(|p| {
                self.membership
                    .voter_ids()
                    .into_iter()
                    .filter(|id| *id != leader)
                    .max_by_key(|id| p.matched.get(id).copied().unwrap_or(0))
            })
        };
        let Some(to) = transferee else {
            return;
        };
        tracing::info!(
            leader = %format!("{leader:x}"),
            transferee = %format!("{to:x}"),
            "moving leadership before removing the leader"
        );
        if self.send_to_raft(RaftMsg::TransferLeader(to)).is_err() {
            return;
        }
        let deadline = tokio::time::Instant::now() + self.cfg.request_timeout;
        // Until a new leader is known: a proposal in between finds none.
        let moved = |now: u64| now != leader && now != 0;
        while !moved(self.leader()) && tokio::time::Instant::now() < deadline {
            tokio::time::sleep(self.cfg.tick).await;
        }
        if !moved(self.leader()) {
            tracing::warn!(
                leader = %format!("{leader:x}"),
                "leadership did not move; removing the leader anyway"
            );
        }
    }

    /// Proposes `change` as a raft configuration change and waits until
    /// it is applied; returns the members after it.
    async fn configure(&self, change: MemberChange) -> Result<Vec<Member>, EtcdError> {
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        let cc = ConfChangeContext {
            request_id: id,
            change,
        }
        .to_conf_change();
        let msg = RaftMsg::ProposeConfChange {
            id,
            cc: Box::new(cc),
        };
        match self.propose_and_wait(id, msg).await? {
            Applied::Members(members) => Ok(members),
            other => Err(EtcdError::Internal(format!(
                "unexpected apply result {other:?}"
            ))),
        }
    }

    /// Whether this member is a learner (and so refuses most requests).
    pub fn is_learner(&self) -> bool {
        self.membership.is_learner(self.member_id)
    }

    /// Resolves once this member is removed from the cluster.
    pub async fn removed(&self) {
        let mut rx = self.removed_rx.clone();
        let _ = rx.wait_for(|removed| *removed).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn peer_urls_are_checked_as_etcd_checks_them() {
        let urls = |u: &[&str]| u.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        assert_eq!(check_peer_urls(&urls(&["http://10.0.0.1:2380"])), Ok(()));
        assert_eq!(
            check_peer_urls(&urls(&["https://host:2380", "unix://sock"])),
            Ok(())
        );
        for bad in [
            "10.0.0.1:2380",
            "http://10.0.0.1",
            "ftp://h:1",
            "http://h:port",
        ] {
            assert_eq!(
                check_peer_urls(&urls(&[bad])),
                Err(EtcdError::MemberBadUrls),
                "{bad}"
            );
        }
        assert_eq!(check_peer_urls(&[]), Err(EtcdError::MemberBadUrls));
    }
}

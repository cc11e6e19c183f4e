//! Cluster membership (etcd's `membership.RaftCluster`): the members, the
//! ids removed for good, their persistence in the backend, and the checks
//! a configuration change must pass.
//!
//! Member and cluster ids are computed as etcd computes them
//! (`storage::bootstrap`), so they are etcd's and stable across restarts.
//!
//! Members are kept in the backend's `members` table as JSON, removed ids
//! in `members_removed`, both written by the apply stage in the
//! transaction that records the change's index, so the tables always
//! describe the membership as of the backend's consistent index. A change
//! travels through raft as a `ConfChangeV2` whose context is a
//! [`ConfChangeContext`] (JSON).

use std::collections::{BTreeMap, BTreeSet};
use std::sync::RwLock;

use raft::prelude::{ConfChangeSingle, ConfChangeType, ConfChangeV2};
use serde::{Deserialize, Serialize};
use storage::schema::members::MemberTables;
use storage::Backend;

use crate::rpctypes::EtcdError;

/// etcd allows at most one learner (`maxLearners`).
pub const MAX_LEARNERS: usize = 1;

pub use storage::schema::members::Member;

/// One membership change, as proposed through raft.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum MemberChange {
    /// A new member (voter or learner) with its peer URLs.
    Add(Member),
    /// The member with this id leaves for good.
    Remove(u64),
    /// The member with this id gets these peer URLs.
    Update {
        /// The member's id.
        id: u64,
        /// Its new peer URLs.
        peer_urls: Vec<String>,
    },
    /// The learner with this id becomes a voter.
    Promote(u64),
}

impl MemberChange {
    /// The id of the member the change is about.
    pub fn member_id(&self) -> u64 {
        match self {
            MemberChange::Add(m) => m.id,
            MemberChange::Remove(id) | MemberChange::Promote(id) => *id,
            MemberChange::Update { id, .. } => *id,
        }
    }
}

/// The context of a membership `ConfChangeV2`: the waiter to answer and
/// the change itself.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ConfChangeContext {
    /// The proposer's waiter id.
    pub request_id: u64,
    /// The change.
    pub change: MemberChange,
}

impl ConfChangeContext {
    /// The raft configuration change that carries this context: one
    /// simple change (no joint consensus, as etcd makes them). An update
    /// changes no raft configuration; it carries node id 0, which raft
    /// skips (etcd proposes raft's no-op `UpdateNode`).
    pub fn to_conf_change(&self) -> ConfChangeV2 {
        let (change_type, node_id) = match &self.change {
            MemberChange::Add(m) if m.is_learner => (ConfChangeType::AddLearnerNode, m.id),
            MemberChange::Add(m) => (ConfChangeType::AddNode, m.id),
            MemberChange::Remove(id) => (ConfChangeType::RemoveNode, *id),
            MemberChange::Promote(id) => (ConfChangeType::AddNode, *id),
            MemberChange::Update { .. } => (ConfChangeType::AddNode, 0),
        };
        let mut single = ConfChangeSingle::default();
        single.set_change_type(change_type);
        single.node_id = node_id;
        let mut cc = ConfChangeV2::default();
        cc.set_changes(vec![single].into());
        cc.context = serde_json::to_vec(self)
            .expect("a change serialises")
            .into();
        cc
    }

    /// Reads the context of a committed `ConfChangeV2`; `None` if it is
    /// not one of ours.
    pub fn from_conf_change(cc: &ConfChangeV2) -> Option<ConfChangeContext> {
        serde_json::from_slice(&cc.context).ok()
    }
}

pub use storage::bootstrap::{compute_cluster_id, compute_member_id, new_member_id};

#[derive(Default)]
struct State {
    members: BTreeMap<u64, Member>,
    removed: BTreeSet<u64>,
    /// Every membership change at or below this raft index is reflected.
    through: u64,
}

/// The membership at one point of the log, read at once.
#[derive(Clone, Debug, Default)]
pub struct MembershipView {
    /// Every member.
    pub members: Vec<Member>,
    /// The removed ids.
    pub removed: Vec<u64>,
    /// Every membership change at or below this raft index is reflected,
    /// and none above it.
    pub through: u64,
}

/// The members of the cluster, by id, and the removed ids. Changed only by
/// the apply stage.
#[derive(Default)]
pub struct Membership {
    state: RwLock<State>,
}

impl Membership {
    /// Membership holding `members`, with `removed` ids gone for good, as
    /// of raft index `through`.
    pub fn new(
        members: impl IntoIterator<Item = Member>,
        removed: &[u64],
        through: u64,
    ) -> Membership {
        let m = Membership::default();
        m.replace(members.into_iter().collect(), removed, through);
        m
    }

    /// Members, removed ids and the index they are as of, consistently.
    pub fn view(&self) -> MembershipView {
        let s = self.read();
        MembershipView {
            members: s.members.values().cloned().collect(),
            removed: s.removed.iter().copied().collect(),
            through: s.through,
        }
    }

    /// Records that the membership change at `index` was applied or
    /// refused (after [`Membership::apply`], so a reader never sees the
    /// index before the change).
    pub fn passed(&self, index: u64) {
        let mut s = self.state.write().expect("membership lock");
        s.through = s.through.max(index);
    }

    fn read(&self) -> std::sync::RwLockReadGuard<'_, State> {
        self.state.read().expect("membership lock")
    }

    /// All members, by id.
    pub fn members(&self) -> Vec<Member> {
        self.read().members.values().cloned().collect()
    }

    /// Ids of the voting members.
    pub fn voter_ids(&self) -> Vec<u64> {
        self.read()
            .members
            .values()
            .filter(|m| !m.is_learner)
            .map(|m| m.id)
            .collect()
    }

    /// The voting members.
    pub fn voters(&self) -> Vec<Member> {
        self.read()
            .members
            .values()
            .filter(|m| !m.is_learner)
            .cloned()
            .collect()
    }

    /// The raft configuration this membership stands for: (voters,
    /// learners).
    pub fn conf_state(&self) -> (Vec<u64>, Vec<u64>) {
        let s = self.read();
        let (learners, voters): (Vec<&Member>, Vec<&Member>) =
            s.members.values().partition(|m| m.is_learner);
        (
            voters.iter().map(|m| m.id).collect(),
            learners.iter().map(|m| m.id).collect(),
        )
    }

    /// Whether `id` was removed from the cluster.
    pub fn is_removed(&self, id: u64) -> bool {
        self.read().removed.contains(&id)
    }

    /// Whether `id` is a learner.
    pub fn is_learner(&self, id: u64) -> bool {
        self.read().members.get(&id).is_some_and(|m| m.is_learner)
    }

    /// Replaces everything (after a snapshot replaced the backend), as of
    /// raft index `through`.
    pub fn replace(&self, members: Vec<Member>, removed: &[u64], through: u64) {
        let mut s = self.state.write().expect("membership lock");
        s.members = members.into_iter().map(|m| (m.id, m)).collect();
        s.removed = removed.iter().copied().collect();
        s.through = through;
    }

    /// Sets a member's published name and client URLs; returns the member
    /// as changed, or `None` if `id` is not a member.
    pub fn set_attributes(&self, id: u64, name: &str, client_urls: &[String]) -> Option<Member> {
        let mut s = self.state.write().expect("membership lock");
        let m = s.members.get_mut(&id)?;
        m.name = name.to_string();
        m.client_urls = client_urls.to_vec();
        Some(m.clone())
    }

    /// Checks `change` against the current members (etcd's
    /// `ValidateConfigurationChange`). Errors: `MemberNotFound` (unknown
    /// or removed id), `MemberExist`, `PeerUrlExist`, `TooManyLearners`,
    /// `MemberNotLearner`.
    pub fn validate(&self, change: &MemberChange) -> Result<(), EtcdError> {
        let s = self.read();
        if s.removed.contains(&change.member_id()) {
            return Err(EtcdError::MemberNotFound);
        }
        let url_taken = |urls: &[String], except: u64| {
            s.members
                .values()
                .filter(|m| m.id != except)
                .any(|m| m.peer_urls.iter().any(|u| urls.contains(u)))
        };
        match change {
            MemberChange::Add(m) => {
                if s.members.contains_key(&m.id) {
                    return Err(EtcdError::MemberExist);
                }
                if url_taken(&m.peer_urls, m.id) {
                    return Err(EtcdError::PeerUrlExist);
                }
                let learners = s.members.values().filter(|m| m.is_learner).count();
                if m.is_learner && learners + 1 > MAX_LEARNERS {
                    return Err(EtcdError::TooManyLearners);
                }
            }
            MemberChange::Remove(id) => {
                if !s.members.contains_key(id) {
                    return Err(EtcdError::MemberNotFound);
                }
            }
            MemberChange::Update { id, peer_urls } => {
                if !s.members.contains_key(id) {
                    return Err(EtcdError::MemberNotFound);
                }
                if url_taken(peer_urls, *id) {
                    return Err(EtcdError::PeerUrlExist);
                }
            }
            MemberChange::Promote(id) => match s.members.get(id) {
                None => return Err(EtcdError::MemberNotFound),
                Some(m) if !m.is_learner => return Err(EtcdError::MemberNotLearner),
                Some(_) => {}
            },
        }
        Ok(())
    }

    /// Applies a validated `change` in memory and in `tx` (the apply
    /// stage's transaction). Errors: the backend's.
    pub fn apply(&self, tx: &MemberTables<'_>, change: &MemberChange) -> Result<(), EtcdError> {
        let mut s = self.state.write().expect("membership lock");
        let changed = match change {
            MemberChange::Add(m) => {
                s.members.insert(m.id, m.clone());
                Some(m.clone())
            }
            MemberChange::Remove(id) => {
                s.members.remove(id);
                s.removed.insert(*id);
                tx.remove(*id).map_err(internal)?;
                None
            }
            MemberChange::Update { id, peer_urls } => s.members.get_mut(id).map(|m| {
                m.peer_urls = peer_urls.clone();
                m.clone()
            }),
            MemberChange::Promote(id) => s.members.get_mut(id).map(|m| {
                m.is_learner = false;
                m.clone()
            }),
        };
        match changed {
            Some(m) => save_member(tx, &m),
            None => Ok(()),
        }
    }

    /// Whether a voting member may be added without losing the quorum of
    /// started members (etcd's `IsReadyToAddVotingMember`): counting the
    /// new one as not started, the started voters must still make a
    /// quorum; growing one started member to two is allowed.
    pub fn is_ready_to_add_voting_member(&self) -> bool {
        let voters = self.voters();
        let started = voters.iter().filter(|m| m.is_started()).count();
        let members = voters.len() + 1;
        (started == 1 && members == 2) || started >= quorum(members)
    }

    /// Whether voting member `id` may be removed without losing the
    /// quorum of started members (etcd's `IsReadyToRemoveVotingMember`).
    pub fn is_ready_to_remove_voting_member(&self, id: u64) -> bool {
        let rest: Vec<Member> = self.voters().into_iter().filter(|m| m.id != id).collect();
        let started = rest.iter().filter(|m| m.is_started()).count();
        started >= quorum(rest.len())
    }

    /// Whether learner `id` may become a voter without losing the quorum
    /// of started members (etcd's `IsReadyToPromoteMember`); the learner
    /// counts as started.
    pub fn is_ready_to_promote_member(&self, id: u64) -> bool {
        let voters: Vec<Member> = self.voters().into_iter().filter(|m| m.id != id).collect();
        let started = 1 + voters.iter().filter(|m| m.is_started()).count();
        started >= quorum(voters.len() + 1)
    }
}

/// A majority of `n` voters.
fn quorum(n: usize) -> usize {
    n / 2 + 1
}

fn internal(e: impl std::fmt::Display) -> EtcdError {
    EtcdError::Internal(e.to_string())
}

/// Writes `m` to the `members` table of `tx`.
pub fn save_member(tx: &MemberTables<'_>, m: &Member) -> Result<(), EtcdError> {
    tx.put(m).map_err(internal)
}

/// Reads the members and removed ids stored in `backend`.
pub fn load(backend: &Backend) -> Result<(Vec<Member>, Vec<u64>), EtcdError> {
    storage::schema::members::load(backend).map_err(internal)
}

/// The index a joining member's membership was fetched at, 0 if none:
/// the changes at or below it are in the fetched membership and are not
/// applied again.
pub fn join_index(backend: &Backend) -> Result<u64, EtcdError> {
    storage::schema::members::join_index(backend).map_err(internal)
}

/// Writes `members` and `removed` into `backend`, durably, with the index
/// they are as of if it is a joined cluster's (`join_index`, else 0).
pub fn save_all(
    backend: &Backend,
    members: &[Member],
    removed: &[u64],
    join_index: u64,
) -> Result<(), EtcdError> {
    storage::schema::members::save_all(backend, members, removed, join_index).map_err(internal)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_match_etcd_defaults() {
        // `etcd` with no flags: member 8e9e05c52164694d in cluster cdf818194e3a8c32.
        let id = compute_member_id(&["http://localhost:2380".to_string()], "etcd-cluster");
        assert_eq!(format!("{id:x}"), "8e9e05c52164694d");
        assert_eq!(
            format!("{:x}", compute_cluster_id(&[id])),
            "cdf818194e3a8c32"
        );
    }

    fn member(id: u64, url: &str, learner: bool, started: bool) -> Member {
        Member {
            id,
            name: if started {
                format!("m{id}")
            } else {
                String::new()
            },
            peer_urls: vec![url.to_string()],
            client_urls: Vec::new(),
            is_learner: learner,
        }
    }

    #[test]
    fn changes_are_checked_as_etcd_checks_them() {
        let m = Membership::new(
            [
                member(1, "http://a", false, true),
                member(2, "http://b", true, false),
            ],
            &[9],
            0,
        );
        let add = |id, url: &str, learner| MemberChange::Add(member(id, url, learner, false));
        assert_eq!(
            m.validate(&add(1, "http://c", false)),
            Err(EtcdError::MemberExist)
        );
        assert_eq!(
            m.validate(&add(3, "http://b", false)),
            Err(EtcdError::PeerUrlExist)
        );
        assert_eq!(
            m.validate(&add(3, "http://c", true)),
            Err(EtcdError::TooManyLearners)
        );
        assert_eq!(
            m.validate(&add(9, "http://c", false)),
            Err(EtcdError::MemberNotFound)
        );
        assert_eq!(m.validate(&add(3, "http://c", false)), Ok(()));
        assert_eq!(
            m.validate(&MemberChange::Remove(4)),
            Err(EtcdError::MemberNotFound)
        );
        assert_eq!(
            m.validate(&MemberChange::Promote(1)),
            Err(EtcdError::MemberNotLearner)
        );
        assert_eq!(m.validate(&MemberChange::Promote(2)), Ok(()));
        let update = |urls: &[&str]| MemberChange::Update {
            id: 1,
            peer_urls: urls.iter().map(|u| u.to_string()).collect(),
        };
        assert_eq!(
            m.validate(&update(&["http://b"])),
            Err(EtcdError::PeerUrlExist)
        );
        assert_eq!(m.validate(&update(&["http://a", "http://z"])), Ok(()));
    }

    #[test]
    fn quorum_of_started_members() {
        let one = Membership::new([member(1, "http://a", false, true)], &[], 0);
        assert!(one.is_ready_to_add_voting_member());
        let two_one_started = Membership::new(
            [
                member(1, "http://a", false, true),
                member(2, "http://b", false, false),
            ],
            &[],
            0,
        );
        // 3 voters would need 2 started.
        assert!(!two_one_started.is_ready_to_add_voting_member());
        assert!(two_one_started.is_ready_to_remove_voting_member(2));
        assert!(!two_one_started.is_ready_to_remove_voting_member(1));
        let with_learner = Membership::new(
            [
                member(1, "http://a", false, true),
                member(2, "http://b", true, false),
            ],
            &[],
            0,
        );
        assert!(with_learner.is_ready_to_promote_member(2));
    }
}

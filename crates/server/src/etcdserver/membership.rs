//! Cluster membership: the members, their ids as etcd computes them, and
//! the cluster id.
//!
//! A member id is the first 8 bytes (big-endian) of the SHA-1 of the
//! member's sorted peer URLs joined with nothing, followed by the cluster
//! token; the cluster id is the same over the sorted member ids as 8-byte
//! big-endian numbers. So the ids of a cluster bootstrapped with the same
//! flags are the same as etcd's, and stable across restarts. Members are
//! kept in the backend's `members` table as JSON.

use std::collections::BTreeMap;
use std::sync::RwLock;

use serde::{Deserialize, Serialize};
use sha1::{Digest, Sha1};

/// A member as the Cluster service reports it.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Member {
    /// The member id.
    pub id: u64,
    /// Its `--name`; empty until the member has published itself.
    pub name: String,
    /// URLs its peers reach it on.
    #[serde(rename = "peerURLs")]
    pub peer_urls: Vec<String>,
    /// URLs clients reach it on; empty until published.
    #[serde(rename = "clientURLs")]
    pub client_urls: Vec<String>,
    /// Whether it is a non-voting learner.
    #[serde(rename = "isLearner")]
    pub is_learner: bool,
}

fn sha1_u64(bytes: &[u8]) -> u64 {
    let digest = Sha1::digest(bytes);
    u64::from_be_bytes(digest[..8].try_into().expect("sha1 has 20 bytes"))
}

/// The id etcd gives a member with these peer URLs in a cluster bootstrapped
/// with `token` (etcd's `computeMemberId` without a timestamp).
pub fn compute_member_id(peer_urls: &[String], token: &str) -> u64 {
    let mut urls = peer_urls.to_vec();
    urls.sort();
    let mut b = urls.concat().into_bytes();
    b.extend_from_slice(token.as_bytes());
    sha1_u64(&b)
}

/// The cluster id of a cluster bootstrapped with these members (etcd's
/// `RaftCluster.genID`).
pub fn compute_cluster_id(member_ids: &[u64]) -> u64 {
    let mut ids = member_ids.to_vec();
    ids.sort_unstable();
    let b: Vec<u8> = ids.iter().flat_map(|id| id.to_be_bytes()).collect();
    sha1_u64(&b)
}

/// The members of the cluster, by id. Changed only by the apply stage.
#[derive(Default)]
pub struct Membership {
    members: RwLock<BTreeMap<u64, Member>>,
}

impl Membership {
    /// Membership holding `members`.
    pub fn new(members: impl IntoIterator<Item = Member>) -> Membership {
        Membership {
            members: RwLock::new(members.into_iter().map(|m| (m.id, m)).collect()),
        }
    }

    /// All members, by id.
    pub fn members(&self) -> Vec<Member> {
        self.members
            .read()
            .expect("members lock")
            .values()
            .cloned()
            .collect()
    }

    /// Ids of the voting members.
    pub fn voter_ids(&self) -> Vec<u64> {
        self.members
            .read()
            .expect("members lock")
            .values()
            .filter(|m| !m.is_learner)
            .map(|m| m.id)
            .collect()
    }

    /// Replaces every member (after a snapshot replaced the backend).
    pub fn replace(&self, members: Vec<Member>) {
        *self.members.write().expect("members lock") =
            members.into_iter().map(|m| (m.id, m)).collect();
    }

    /// Sets a member's published name and client URLs; returns the member
    /// as changed, or `None` if `id` is not a member.
    pub fn set_attributes(&self, id: u64, name: &str, client_urls: &[String]) -> Option<Member> {
        let mut members = self.members.write().expect("members lock");
        let m = members.get_mut(&id)?;
        m.name = name.to_string();
        m.client_urls = client_urls.to_vec();
        Some(m.clone())
    }
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
}

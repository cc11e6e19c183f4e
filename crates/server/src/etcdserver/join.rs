//! Joining a running cluster (`--initial-cluster-state existing` on an
//! empty data dir): ask the other members named in `--initial-cluster`
//! for the cluster (etcd's `GetClusterFromRemotePeers`, here the
//! `etcdrspb.Peer/Members` call), check that it is the cluster the flags
//! describe (etcd's `ValidateClusterAndAssignIDs`: as many members, the
//! same peer URLs), and take its cluster and member ids.
//!
//! The joining member starts with this membership and an empty log: the
//! leader sends it the log from its first entry, or a snapshot.

use std::time::Duration;

use api::etcdrspb::peer_client::PeerClient;
use api::etcdrspb::{PeerMember, PeerMembersRequest, PeerMembersResponse};

use super::membership::Member;
use super::StartError;
use crate::config::ServerConfig;
use crate::rafthttp::Dialer;

/// How long one peer URL may take to answer (etcd: 10 s for all).
const ASK_TIMEOUT: Duration = Duration::from_secs(2);

/// The cluster a joining member found.
#[derive(Debug)]
pub struct RemoteCluster {
    /// The cluster's id.
    pub cluster_id: u64,
    /// The id the cluster gave this member (by its peer URLs).
    pub member_id: u64,
    /// Every member, this one included.
    pub members: Vec<Member>,
    /// Ids removed from the cluster.
    pub removed: Vec<u64>,
    /// The raft index the membership is as of: changes at or below it
    /// are not applied again.
    pub through: u64,
}

/// Member records of the wire form.
pub fn from_peer_member(m: PeerMember) -> Member {
    Member {
        id: m.id,
        name: m.name,
        peer_urls: m.peer_urls,
        client_urls: m.client_urls,
        is_learner: m.is_learner,
    }
}

/// The wire form of a member.
pub fn to_peer_member(m: Member) -> PeerMember {
    PeerMember {
        id: m.id,
        name: m.name,
        peer_urls: m.peer_urls,
        client_urls: m.client_urls,
        is_learner: m.is_learner,
    }
}

/// Asks the other members of `--initial-cluster`, in order, until one
/// answers, and checks the answer against the flags. Errors: etcd's
/// start-up texts (`cannot fetch cluster info from peer urls: ...`,
/// `error validating peerURLs ...`).
pub async fn cluster_from_peers(
    cfg: &ServerConfig,
    dialer: &Dialer,
) -> Result<RemoteCluster, StartError> {
    let urls = cfg
        .initial_cluster
        .iter()
        .filter(|m| m.name != cfg.name)
        .flat_map(|m| m.peer_urls.iter());
    for url in urls {
        match ask(dialer, url).await {
            Ok(resp) => return validate(cfg, resp),
            Err(e) => {
                tracing::warn!(remote_peer_url = %url, error = %e, "failed to get cluster response")
            }
        }
    }
    Err(StartError(
        "cannot fetch cluster info from peer urls: could not retrieve cluster information from the given URLs"
            .into(),
    ))
}

async fn ask(dialer: &Dialer, url: &str) -> Result<PeerMembersResponse, String> {
    let ep = dialer
        .endpoint(url)
        .map_err(|e| e.to_string())?
        .configure(|e| e.connect_timeout(ASK_TIMEOUT).timeout(ASK_TIMEOUT));
    let channel = dialer.connect(&ep).await.map_err(|e| e.to_string())?;
    PeerClient::new(channel)
        .members(PeerMembersRequest {})
        .await
        .map(|r| r.into_inner())
        .map_err(|s| s.message().to_string())
}

fn sorted(urls: &[String]) -> Vec<String> {
    let mut u = urls.to_vec();
    u.sort();
    u
}

/// Pairs the flags' members with the cluster's by sorted peer URLs and
/// takes the cluster's ids.
fn validate(cfg: &ServerConfig, resp: PeerMembersResponse) -> Result<RemoteCluster, StartError> {
    let members: Vec<Member> = resp.members.into_iter().map(from_peer_member).collect();
    let shown = || {
        let ids: Vec<String> = members.iter().map(|m| format!("{:x}", m.id)).collect();
        format!(
            "{{ClusterID:{:x} Members:[{}] RemovedMemberIDs:[{}]}}",
            resp.cluster_id,
            ids.join(" "),
            resp.removed
                .iter()
                .map(|id| format!("{id:x}"))
                .collect::<Vec<_>>()
                .join(" ")
        )
    };
    if members.len() != cfg.initial_cluster.len() {
        return Err(StartError(format!(
            "error validating peerURLs {}: member count is unequal",
            shown()
        )));
    }
    let mut remote: Vec<(Vec<String>, u64)> = members
        .iter()
        .map(|m| (sorted(&m.peer_urls), m.id))
        .collect();
    remote.sort();
    let mut local: Vec<(Vec<String>, &str)> = cfg
        .initial_cluster
        .iter()
        .map(|m| (sorted(&m.peer_urls), m.name.as_str()))
        .collect();
    local.sort();
    let mut member_id = None;
    for ((r_urls, id), (l_urls, name)) in remote.iter().zip(&local) {
        if r_urls != l_urls {
            return Err(StartError(format!(
                "error validating peerURLs {}: unmatched member while checking PeerURLs (\"{}\" != \"{}\")",
                shown(),
                l_urls.join(","),
                r_urls.join(",")
            )));
        }
        if *name == cfg.name {
            member_id = Some(*id);
        }
    }
    let member_id = member_id.ok_or_else(|| {
        StartError(format!(
            "couldn't find local name {:?} in the initial cluster configuration",
            cfg.name
        ))
    })?;
    Ok(RemoteCluster {
        cluster_id: resp.cluster_id,
        member_id,
        members,
        removed: resp.removed,
        through: resp.applied_through,
    })
}

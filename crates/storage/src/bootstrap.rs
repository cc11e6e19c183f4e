//! The membership a cluster starts with, as etcd derives it from the
//! flags (`--initial-cluster`, `--initial-cluster-token`,
//! `--initial-advertise-peer-urls`): the members parsed from the flag,
//! the check that the local member is among them with its URLs, and the
//! ids etcd computes. A member id is the first 8 bytes (big-endian) of
//! the SHA-1 of the member's sorted peer URLs joined with nothing,
//! followed by the cluster token (bootstrap and `snapshot restore`) or
//! the Unix time in seconds (`member add`); the cluster id is the same
//! over the sorted member ids as 8-byte big-endian numbers. So a cluster
//! started or restored with the same flags has etcd's ids. Here and not
//! in the server because `etcdutl snapshot restore` builds a membership
//! too.

use sha1::{Digest, Sha1};

/// One member of the initial cluster: its name and peer URLs.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct InitialMember {
    /// The member's `--name`.
    pub name: String,
    /// Its peer URLs, as given.
    pub peer_urls: Vec<String>,
}

/// Parses `name=url,name=url` into members, URLs of one name grouped.
/// Errors: an entry without `=`.
pub fn parse_initial_cluster(s: &str) -> Result<Vec<InitialMember>, String> {
    let mut out: Vec<InitialMember> = Vec::new();
    for part in s.split(',').map(str::trim).filter(|p| !p.is_empty()) {
        let (name, url) = part
            .split_once('=')
            .ok_or_else(|| format!("invalid initial cluster entry {part:?}: must be name=URL"))?;
        match out.iter_mut().find(|m| m.name == name) {
            Some(m) => m.peer_urls.push(url.to_string()),
            None => out.push(InitialMember {
                name: name.to_string(),
                peer_urls: vec![url.to_string()],
            }),
        }
    }
    Ok(out)
}

/// Checks that the member `name` is in `initial` with exactly the peer
/// URLs it advertises (etcd's `verifyLocalMember`). Errors: etcd's words.
pub fn verify_local_member(
    name: &str,
    advertise_peer_urls: &[String],
    initial: &[InitialMember],
) -> Result<(), String> {
    let Some(m) = initial.iter().find(|m| m.name == name) else {
        return Err(format!(
            "couldn't find local name {name:?} in the initial cluster configuration"
        ));
    };
    let mut a = m.peer_urls.clone();
    let mut b = advertise_peer_urls.to_vec();
    a.sort();
    b.sort();
    if a != b {
        return Err(format!(
            "--initial-cluster has {}={} but missing from --initial-advertise-peer-urls={} ",
            m.name,
            m.peer_urls.join(","),
            advertise_peer_urls.join(",")
        ));
    }
    Ok(())
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

/// The id etcd gives a member added at run time at `unix_secs` (etcd's
/// `NewMember` with no cluster name and the current time).
pub fn new_member_id(peer_urls: &[String], unix_secs: u64) -> u64 {
    compute_member_id(peer_urls, &unix_secs.to_string())
}

/// The cluster id of a cluster bootstrapped with these members (etcd's
/// `RaftCluster.genID`).
pub fn compute_cluster_id(member_ids: &[u64]) -> u64 {
    let mut ids = member_ids.to_vec();
    ids.sort_unstable();
    let b: Vec<u8> = ids.iter().flat_map(|id| id.to_be_bytes()).collect();
    sha1_u64(&b)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_default_member_has_etcds_well_known_ids() {
        let id = compute_member_id(&["http://localhost:2380".into()], "etcd-cluster");
        assert_eq!(format!("{id:x}"), "8e9e05c52164694d");
        assert_eq!(
            format!("{:x}", compute_cluster_id(&[id])),
            "cdf818194e3a8c32"
        );
    }
}

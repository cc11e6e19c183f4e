//! The membership tables (`FORMAT.md`): `members` (member id, 8
//! bytes big-endian, to the member as JSON with etcd's field names),
//! `members_removed` (ids removed for good) and the `join_index` of a
//! member that joined a running cluster. The server's membership decides
//! what changes; this module is the only one that knows how it is
//! written.

use redb::{ReadableTable, WriteTransaction};
use serde::{Deserialize, Serialize};

use crate::schema::{meta_u64, MEMBERS_REMOVED_TABLE, MEMBERS_TABLE, META_TABLE};
use crate::{Backend, BackendError};

/// Key in the `meta` table of the raft index a joining member's
/// membership was fetched at.
const JOIN_INDEX: &[u8] = b"join_index";
/// The value of a `members_removed` row.
const REMOVED: &[u8] = b"removed";

/// A member as the Cluster service reports it and the `members` table
/// keeps it.
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

impl Member {
    /// Whether the member has published its name, i.e. has started
    /// (etcd's `IsStarted`).
    pub fn is_started(&self) -> bool {
        !self.name.is_empty()
    }
}

fn corrupt(e: impl std::fmt::Display) -> BackendError {
    BackendError::Corrupt(format!("member record: {e}"))
}

/// The members and removed ids stored in `backend`. Errors: the
/// backend's, a record that does not decode.
pub fn load(backend: &Backend) -> Result<(Vec<Member>, Vec<u64>), BackendError> {
    let rtx = backend.read()?;
    let t = rtx.open_table(MEMBERS_TABLE)?;
    let mut members = Vec::new();
    for item in t.iter()? {
        let (_, v) = item?;
        members.push(serde_json::from_slice(v.value()).map_err(corrupt)?);
    }
    let r = rtx.open_table(MEMBERS_REMOVED_TABLE)?;
    let mut removed = Vec::new();
    for item in r.iter()? {
        let (k, _) = item?;
        removed.push(u64::from_be_bytes(k.value().try_into().map_err(corrupt)?));
    }
    Ok((members, removed))
}

/// The index a joining member's membership was fetched at, 0 if none.
pub fn join_index(backend: &Backend) -> Result<u64, BackendError> {
    let rtx = backend.read()?;
    let meta = rtx.open_table(META_TABLE)?;
    meta_u64(&meta, JOIN_INDEX)
}

/// Writes `members` and `removed` into `backend`, durably, with the index
/// they are as of if it is a joined cluster's (`join_index`, else 0).
pub fn save_all(
    backend: &Backend,
    members: &[Member],
    removed: &[u64],
    join_index: u64,
) -> Result<(), BackendError> {
    let tx = backend.write(true)?;
    if join_index > 0 {
        let mut meta = tx.open_table(META_TABLE)?;
        meta.insert(JOIN_INDEX, join_index.to_be_bytes().as_slice())?;
    }
    let tables = MemberTables(&tx);
    for m in members {
        tables.put(m)?;
    }
    for id in removed {
        tables.mark_removed(*id)?;
    }
    backend.commit(tx)?;
    backend.wait_synced()
}

/// Writes to the membership tables inside an apply batch's transaction
/// ([`crate::mvcc::StoreTxn::member_tables`]).
pub struct MemberTables<'a>(pub(crate) &'a WriteTransaction);

impl MemberTables<'_> {
    /// Writes `m` under its id.
    pub fn put(&self, m: &Member) -> Result<(), BackendError> {
        let json = serde_json::to_vec(m).map_err(corrupt)?;
        let mut t = self.0.open_table(MEMBERS_TABLE)?;
        t.insert(m.id.to_be_bytes().as_slice(), json.as_slice())?;
        Ok(())
    }

    /// Removes member `id` for good: out of `members`, into
    /// `members_removed`.
    pub fn remove(&self, id: u64) -> Result<(), BackendError> {
        let mut t = self.0.open_table(MEMBERS_TABLE)?;
        t.remove(id.to_be_bytes().as_slice())?;
        drop(t);
        self.mark_removed(id)
    }

    fn mark_removed(&self, id: u64) -> Result<(), BackendError> {
        let mut r = self.0.open_table(MEMBERS_REMOVED_TABLE)?;
        r.insert(id.to_be_bytes().as_slice(), REMOVED)?;
        Ok(())
    }
}

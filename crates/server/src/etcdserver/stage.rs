//! What passes between the raft loop and the apply stage, and what the
//! apply stage hands back to the server: one module both depend on, so
//! neither depends on the other.

use std::sync::atomic::AtomicU64;

use api::etcdserverpb::{
    AlarmResponse, CompactionResponse, DeleteRangeResponse, LeaseGrantResponse,
    LeaseRevokeResponse, PutResponse, TxnResponse,
};
use raft::prelude::{ConfChangeV2, Entry};

use super::membership::{Member, MemberChange};
use crate::rpctypes::EtcdError;

/// What applying a request produced, for its waiter.
#[derive(Debug)]
pub enum Applied {
    /// A Put's response (header revision set).
    Put(PutResponse),
    /// A DeleteRange's response.
    DeleteRange(DeleteRangeResponse),
    /// A Txn's response.
    Txn(TxnResponse),
    /// A Compaction's response.
    Compaction(CompactionResponse),
    /// A LeaseGrant's response (header to fill).
    LeaseGrant(LeaseGrantResponse),
    /// A LeaseRevoke's response (header to fill).
    LeaseRevoke(LeaseRevokeResponse),
    /// An Alarm's response (no header, as etcd's).
    Alarm(AlarmResponse),
    /// Authenticate: the simple token, or the revision to sign a JWT at.
    Authenticated(crate::auth::Issued),
    /// A membership change: the members after it.
    Members(Vec<Member>),
    /// A request with nothing to answer (member attributes, cluster
    /// version).
    Done,
}

/// The outcome a waiter receives.
pub type ApplyOutcome = Result<Applied, EtcdError>;

/// What the apply stage receives, in log order.
pub enum ApplyItem {
    /// Committed entries.
    Entries(Vec<Entry>),
    /// A snapshot from the leader: load the backend received with it.
    Snapshot {
        /// The snapshot's index.
        index: u64,
        /// The snapshot's term.
        term: u64,
    },
}

/// A membership change the apply stage applied, for raft's configuration
/// and the transport.
pub enum MembershipUpdate {
    /// One change: `cc` goes to raft, `change` to the transport.
    Changed {
        /// Its entry's index.
        index: u64,
        /// The committed configuration change.
        cc: Box<ConfChangeV2>,
        /// What it did.
        change: MemberChange,
    },
    /// A snapshot replaced the membership: the peers (id, peer URL) now.
    Reset(Vec<(u64, String)>),
}

/// What the raft loop last saw, for Status and response headers.
#[derive(Default)]
pub struct RaftStatus {
    /// The leader's id, 0 when there is none.
    pub leader: AtomicU64,
    /// The current term.
    pub term: AtomicU64,
    /// The commit index.
    pub committed: AtomicU64,
}

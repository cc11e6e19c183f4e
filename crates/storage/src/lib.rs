//! etcd-rs storage: everything a member keeps on disk, with no network and
//! no raft.
//!
//! - [`backend`]: the redb file (`member/snap/db`) with etcd's bucket names
//!   as tables; batched write transactions, snapshot reads.
//! - [`mvcc`]: the multi-version key-value store on the backend: revisions,
//!   the in-memory key index, ranges at any retained revision, compaction.
//! - [`wal`]: the write-ahead log of raft entries and hard state, in
//!   segmented, checksummed, preallocated files with group-commit fsync.
//! - [`bootstrap`]: the initial membership from the flags, and the member
//!   and cluster ids etcd computes.
//! - [`snap`]: raft snapshot records, after which the log may start.
//! - [`snapshot`]: snapshot files in etcd's format (a bbolt image and its
//!   SHA-256), read and written without bbolt itself.
//! - [`schema`]: every table and record encoding (`schema/FORMAT.md`):
//!   the tables, the `meta` keys, and the records of the other tables
//!   (members, leases, users and roles, the cluster version, active
//!   alarms), read at start and written in the apply stage's transaction
//!   through [`mvcc::StoreTxn`]; no other crate opens a table.
//!
//! The server crate drives these; nothing here knows about gRPC or raft-rs.

pub mod backend;
pub mod bootstrap;
pub mod failpoint;
pub mod mvcc;
pub mod schema;
pub mod snap;
pub mod snapshot;
pub mod wal;

pub use backend::{Backend, BackendError};
pub use mvcc::{KvStore, MvccError};

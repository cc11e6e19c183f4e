//! The multi-version key-value store (etcd's `mvcc` package).
//!
//! [`KvStore`] owns the key index and the backend's `key` table. Readers call
//! [`KvStore::range`] from any thread; the single apply stage writes through
//! a [`StoreTxn`], one per batch of raft entries. Every write request is one
//! main revision; the store revision never goes backwards.

mod compaction;
mod hash;
mod key_index;
mod revision;
mod store;
mod watch;

pub use hash::KvHash;
pub use key_index::{KeyAt, RangeEnd, TreeIndex};
pub use revision::Revision;
pub use store::{
    consistent_index_of, KvStore, MvccError, RangeOptions, RangeResult, ReadView, StoreTxn,
};
pub use watch::{Delivery, Events, History, HistoryRead, Sink, WatchHub, WatchSpec};

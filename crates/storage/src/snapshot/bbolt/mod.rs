//! bbolt files, as etcd keeps its backend and writes its snapshots: a
//! reader of the bucket tree ([`Bolt`]) and a writer of a new file from
//! sorted buckets ([`Writer`]). No crate reads etcd's files: on Linux etcd
//! syncs no freelist, which the Rust ports of bbolt refuse. The layout is
//! described in `../FORMAT.md`; both sides are tested against files real
//! etcd wrote and read (tests/snapshot.rs).

mod read;
mod write;

pub use read::{Bolt, Bucket, Meta};
pub use write::{BucketWriter, Writer};

/// Page header bytes: id u64, flags u16, count u16, overflow u32.
const PAGE_HEADER: usize = 16;
/// Bytes of a leaf or branch element before the keys.
const ELEMENT: usize = 16;
/// A bucket value's header: root page u64, sequence u64.
const BUCKET_HEADER: usize = 16;
/// Page flags.
const BRANCH_PAGE: u16 = 0x01;
const LEAF_PAGE: u16 = 0x02;
const META_PAGE: u16 = 0x04;
const FREELIST_PAGE: u16 = 0x10;
/// A leaf element whose value is a bucket.
const BUCKET_ELEMENT: u32 = 0x01;
/// The meta's magic and format version.
const MAGIC: u32 = 0xED0C_DAED;
const VERSION: u32 = 2;

/// Why a bbolt file cannot be read, in bbolt's words where it has them.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum BoltError {
    /// Shorter than two pages.
    #[error("file size too small")]
    TooSmall,
    /// Not a bbolt file.
    #[error("invalid database")]
    Invalid,
    /// A bbolt format other than version 2.
    #[error("version mismatch")]
    VersionMismatch,
    /// Neither meta page has its checksum.
    #[error("checksum error")]
    Checksum,
    /// The meta counts more pages than the file holds.
    #[error("file is truncated: {needed} bytes expected, {have} found")]
    Truncated { needed: u64, have: u64 },
    /// A page that is not what it should be.
    #[error("page {0} {1}")]
    Page(u64, &'static str),
    /// A bucket value that does not decode.
    #[error("bucket: {0}")]
    Bucket(&'static str),
    /// A bucket inside a bucket (etcd makes none).
    #[error("nested buckets are not supported")]
    Nested,
    /// The caller's callback stopped the walk (its error is returned).
    #[error("stopped")]
    Stopped,
}

impl From<BoltError> for std::io::Error {
    fn from(e: BoltError) -> std::io::Error {
        std::io::Error::new(std::io::ErrorKind::InvalidData, e)
    }
}

/// bbolt's meta checksum: FNV-1a 64 over the meta's first 56 bytes.
fn checksum(meta: &[u8]) -> u64 {
    use std::hash::Hasher;
    let mut h = fnv::FnvHasher::default();
    h.write(meta);
    h.finish()
}

#[cfg(test)]
mod tests;

//! Snapshot files: what `etcdctl snapshot save` writes and `etcdutl
//! snapshot restore` and `status` read. A snapshot is etcd's: a bbolt
//! image of the backend's buckets ([`bbolt`]) followed by the SHA-256 of
//! that image (32 bytes), which a reader finds by the size (the image is
//! whole pages, so a multiple of 512 bytes; with the hash, 32 more). The
//! layout is in `FORMAT.md`.

pub mod bbolt;
pub mod etcd;
pub mod restore;

use std::path::Path;

use bbolt::{Bolt, BoltError};

/// etcd's `leasepb.Lease`, as its `lease` bucket holds leases.
#[derive(Clone, PartialEq, prost::Message)]
pub(crate) struct LeasePb {
    #[prost(int64, tag = "1")]
    pub id: i64,
    #[prost(int64, tag = "2")]
    pub ttl: i64,
    #[prost(int64, tag = "3")]
    pub remaining_ttl: i64,
}

/// Bytes of the SHA-256 trailer.
pub const HASH_BYTES: usize = 32;

/// Why a snapshot cannot be read.
#[derive(Debug, thiserror::Error)]
pub enum SnapshotError {
    /// The file could not be opened or mapped.
    #[error("{0}")]
    Io(#[from] std::io::Error),
    /// The image is not a readable bbolt file.
    #[error("{0}")]
    Bolt(#[from] BoltError),
}

/// A snapshot file mapped into memory (read-only; the file must not
/// change while it is mapped).
pub struct Mapped {
    map: Option<memmap2::Mmap>,
}

impl Mapped {
    /// Maps the file at `path`. Errors: the file's.
    pub fn open(path: &Path) -> Result<Mapped, SnapshotError> {
        let file = std::fs::File::open(path)?;
        if file.metadata()?.len() == 0 {
            // An empty file cannot be mapped.
            return Ok(Mapped { map: None });
        }
        // SAFETY: the map is read-only and the tools that read snapshots
        // (etcdutl) own the file while they do.
        let map = unsafe { memmap2::Mmap::map(&file)? };
        Ok(Mapped { map: Some(map) })
    }

    /// The file's bytes.
    pub fn bytes(&self) -> &[u8] {
        self.map.as_deref().unwrap_or(&[])
    }
}

/// The snapshot stream of `Maintenance.Snapshot` as a writer: the image
/// in blobs of `chunk` bytes, each sent with the image bytes still to
/// come after it, then ([`ChunkStream::finish`]) the image's SHA-256 as
/// the last blob, with 0 to come. `send` answers whether to go on; when
/// it says no (the receiver is gone), writing fails with `BrokenPipe`.
pub struct ChunkStream<F: FnMut(Vec<u8>, u64) -> bool> {
    send: F,
    chunk: usize,
    buf: Vec<u8>,
    sha: sha2::Sha256,
    left: u64,
}

impl<F: FnMut(Vec<u8>, u64) -> bool> ChunkStream<F> {
    /// A stream of an image of `size` bytes.
    pub fn new(size: u64, chunk: usize, send: F) -> ChunkStream<F> {
        use sha2::Digest;
        ChunkStream {
            send,
            chunk,
            buf: Vec::with_capacity(chunk),
            sha: sha2::Sha256::new(),
            left: size,
        }
    }

    fn emit(&mut self, blob: Vec<u8>) -> std::io::Result<()> {
        use sha2::Digest;
        self.sha.update(&blob);
        self.left = self.left.saturating_sub(blob.len() as u64);
        if (self.send)(blob, self.left) {
            Ok(())
        } else {
            Err(std::io::ErrorKind::BrokenPipe.into())
        }
    }

    /// Sends what is buffered, then the SHA-256 of everything sent.
    pub fn finish(mut self) -> std::io::Result<()> {
        use sha2::Digest;
        if !self.buf.is_empty() {
            let blob = std::mem::take(&mut self.buf);
            self.emit(blob)?;
        }
        let hash = std::mem::take(&mut self.sha).finalize().to_vec();
        if (self.send)(hash, 0) {
            Ok(())
        } else {
            Err(std::io::ErrorKind::BrokenPipe.into())
        }
    }
}

impl<F: FnMut(Vec<u8>, u64) -> bool> std::io::Write for ChunkStream<F> {
    fn write(&mut self, data: &[u8]) -> std::io::Result<usize> {
        let mut rest = data;
        while !rest.is_empty() {
            let take = (self.chunk - self.buf.len()).min(rest.len());
            self.buf.extend_from_slice(&rest[..take]);
            rest = &rest[take..];
            if self.buf.len() == self.chunk {
                let blob = std::mem::replace(&mut self.buf, Vec::with_capacity(self.chunk));
                self.emit(blob)?;
            }
        }
        Ok(data.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// Splits a snapshot into its image and its SHA-256 trailer, if its size
/// says it has one (etcd's `hasChecksum`: size % 512 == 32).
pub fn split_trailer(data: &[u8]) -> (&[u8], Option<&[u8]>) {
    if data.len() % 512 == HASH_BYTES {
        let (image, hash) = data.split_at(data.len() - HASH_BYTES);
        (image, Some(hash))
    } else {
        (data, None)
    }
}

/// What `etcdutl snapshot status` reports (etcd's `snapshot.Status`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Status {
    /// CRC-32 (Castagnoli) over each bucket's name, then each of its keys
    /// and values, buckets and keys in order.
    pub hash: u32,
    /// The main revision of the last row of the `key` bucket (0 if none).
    pub revision: i64,
    /// Rows in all buckets.
    pub total_key: u64,
    /// Bytes of the image: pages in use times the page size.
    pub total_size: u64,
}

/// The status of the snapshot or backend file `data` (a trailer is
/// ignored: only pages the meta counts are read). Errors: a file that is
/// not bbolt or is damaged.
pub fn status(data: &[u8]) -> Result<Status, SnapshotError> {
    let bolt = Bolt::open(data)?;
    let mut hash = 0u32;
    let mut total_key = 0u64;
    let mut revision = 0i64;
    for bucket in bolt.buckets()? {
        hash = crc32c::crc32c_append(hash, bucket.name);
        let is_key = bucket.name == b"key";
        bolt.for_each(&bucket, |k, v| {
            hash = crc32c::crc32c_append(hash, k);
            hash = crc32c::crc32c_append(hash, v);
            total_key += 1;
            if is_key && k.len() >= 8 {
                revision = i64::from_be_bytes(k[..8].try_into().expect("8 bytes"));
            }
            Ok::<_, SnapshotError>(())
        })?;
    }
    Ok(Status {
        hash,
        revision,
        total_key,
        total_size: bolt.size(),
    })
}

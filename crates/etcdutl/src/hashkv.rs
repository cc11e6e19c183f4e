//! `hashkv FILE [--rev N]`: the KV history hash of a backend file (a data
//! dir's `member/snap/db`) or of a snapshot file, as a member's `HashKV`
//! computes it (CRC-32 Castagnoli, as etcd's, so the same history gives
//! etcd's hash), printed as etcdutl prints it: `-w simple` (`hash, hash
//! revision, compact revision`), `json`, `table`, `fields`. etcdutl has
//! this command since 3.6; 3.5 has none. A snapshot is first copied into
//! a temporary backend (its buckets as our tables), removed afterwards.

use std::path::{Path, PathBuf};

use storage::mvcc::KvStore;
use storage::snapshot::bbolt::Bolt;
use storage::snapshot::{restore, Mapped};
use storage::Backend;

use crate::snapshot::Format;
use crate::{exit, print, Failure};

/// What `hashkv` reports (etcdutl's `HashKV`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct HashKv {
    pub hash: u32,
    pub hash_revision: i64,
    pub compact_revision: i64,
}

/// `hashkv FILE --rev REV` printed in `format`. Errors: not one file, an
/// unknown format, a file that is neither a backend nor a snapshot, a
/// revision compacted or in the future.
pub fn hashkv_command(files: &[PathBuf], rev: i64, format: &str) -> Result<String, Failure> {
    let [file] = files else {
        return Err(Failure::new(
            exit::ERROR,
            format!("accepts 1 arg(s), received {}", files.len()),
        ));
    };
    let format = Format::parse(format)?;
    render(&hashkv(file, rev)?, format)
}

/// The hash of the history in `file` up to `rev` (0: all of it).
pub fn hashkv(file: &Path, rev: i64) -> Result<HashKv, Failure> {
    let failed = |e: String| Failure::new(exit::ERROR, e);
    if let Err(e) = std::fs::metadata(file) {
        return Err(failed(crate::snapshot::go_io_error("stat", file, &e)));
    }
    let mapped = Mapped::open(file).map_err(|e| failed(e.to_string()))?;
    let (store, tmp) = match Bolt::open(mapped.bytes()) {
        Ok(bolt) => {
            let tmp = std::env::temp_dir().join(format!("etcdutl-hashkv-{}", std::process::id()));
            let _ = std::fs::remove_dir_all(&tmp);
            std::fs::create_dir_all(&tmp).map_err(|e| failed(e.to_string()))?;
            let backend = Backend::open(&tmp.join("db")).map_err(|e| failed(e.to_string()));
            let imported = backend.and_then(|b| {
                restore::import(&bolt, &b, 0, None).map_err(|e| failed(e.to_string()))?;
                Ok(b)
            });
            (imported, Some(tmp))
        }
        Err(_) => {
            drop(mapped);
            (
                Backend::open_existing(file).map_err(|e| failed(e.to_string())),
                None,
            )
        }
    };
    let hashed = store.and_then(|b| {
        let kv = KvStore::open(b).map_err(|e| failed(e.to_string()))?;
        kv.hash_kv(rev).map_err(|e| failed(e.to_string()))
    });
    if let Some(tmp) = tmp {
        let _ = std::fs::remove_dir_all(tmp);
    }
    let h = hashed?;
    Ok(HashKv {
        hash: h.hash,
        hash_revision: h.revision,
        compact_revision: h.compact_revision,
    })
}

/// `h` as `format` prints it, ending with a newline. Errors: `protobuf`.
pub fn render(h: &HashKv, format: Format) -> Result<String, Failure> {
    let row = [
        h.hash.to_string(),
        h.hash_revision.to_string(),
        h.compact_revision.to_string(),
    ];
    Ok(match format {
        Format::Simple => format!("{}\n", row.join(", ")),
        Format::Json => format!(
            "{{\"hash\":{},\"hashRevision\":{},\"compactRevision\":{}}}\n",
            h.hash, h.hash_revision, h.compact_revision
        ),
        Format::Table => print::table::render(
            &["HASH", "HASH REVISION", "COMPACT REVISION"],
            &[row.to_vec()],
        ),
        Format::Fields => format!(
            "\"Hash\" : {}\n\"Hash revision\" : {}\n\"Compact revision\" : {}\n",
            h.hash, h.hash_revision, h.compact_revision
        ),
        Format::Protobuf => {
            return Err(Failure::new(
                exit::BAD_FEATURE,
                "protobuf not supported as output format",
            ))
        }
    })
}

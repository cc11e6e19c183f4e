//! Restoring a snapshot into a new data dir, as etcdutl 3.5's `snapshot
//! restore` does (`etcdutl/snapshot/v3_snapshot.go`), with our files:
//!
//! 1. the snapshot's SHA-256 trailer is checked (unless skipped);
//! 2. its buckets become our backend's tables (`member/snap/db`), with
//!    etcd's encodings converted to ours (the reverse of `etcd.rs`); the
//!    members are replaced by those of `--initial-cluster`, with the ids
//!    etcd computes; `--bump-revision` raises the revision and, with
//!    `--mark-compacted`, compacts everything below it;
//! 3. the raft state is that of a member that has applied a snapshot at
//!    index N (N the number of members, term 1, as etcd's restore commits
//!    one configuration entry per member): the backend's consistent index
//!    is N, a snapshot record at N lists the voters, and a new WAL starts
//!    there.
//!
//! Nothing is left behind on failure: a data dir this made is removed.

use std::path::{Path, PathBuf};

use prost::Message;
use sha2::{Digest, Sha256};

use super::bbolt::{Bolt, Bucket};
use super::{split_trailer, LeasePb, Mapped, SnapshotError};
use crate::backend::{Backend, BackendError};
use crate::bootstrap::{compute_cluster_id, compute_member_id, InitialMember};
use crate::schema::members::Member;
use crate::schema::{
    table_named, CONSISTENT_INDEX, FINISHED_COMPACT_REV, META_TABLE, SCHEDULED_COMPACT_REV, TERM,
};
use crate::snap::Snapshotter;
use crate::wal::{HardState, Metadata, SnapshotRecord, Wal};

/// What to restore, and where (etcdutl's flags).
#[derive(Clone, Debug)]
pub struct RestoreConfig {
    /// The snapshot file.
    pub snapshot: PathBuf,
    /// `--name`: the local member.
    pub name: String,
    /// `--data-dir`: made here; must be absent or empty.
    pub data_dir: PathBuf,
    /// `--wal-dir`: must not exist; `<data-dir>/member/wal` by default.
    pub wal_dir: PathBuf,
    /// `--initial-cluster`.
    pub initial_cluster: Vec<InitialMember>,
    /// `--initial-cluster-token`.
    pub token: String,
    /// `--skip-hash-check`.
    pub skip_hash_check: bool,
    /// `--bump-revision` (with `--mark-compacted`): added to the revision.
    pub bump_revision: u64,
}

/// What a restore made.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Restored {
    /// The local member's id.
    pub member_id: u64,
    /// The cluster's id.
    pub cluster_id: u64,
    /// The store's revision after the restore.
    pub revision: i64,
}

fn failed(e: impl std::fmt::Display) -> SnapshotError {
    SnapshotError::Io(std::io::Error::other(e.to_string()))
}

/// Bytes of rows per backend transaction while copying.
const BATCH_BYTES: usize = 16 * 1024 * 1024;

/// Restores `cfg.snapshot`. Errors, in etcd's words where it has them: a
/// data dir that is not empty, an existing WAL dir, a missing or wrong
/// hash, a file that is not a snapshot, one of an etcd whose storage we
/// do not read (3.6 and later), or a failure writing.
pub fn restore(cfg: &RestoreConfig) -> Result<Restored, SnapshotError> {
    let dir_used = std::fs::read_dir(&cfg.data_dir).map(|mut d| d.next().is_some());
    match dir_used {
        Ok(true) => {
            return Err(failed(format!(
                "data-dir {:?} not empty or could not be read",
                cfg.data_dir.display().to_string()
            )))
        }
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
            return Err(failed(format!(
                "data-dir {:?} not empty or could not be read",
                cfg.data_dir.display().to_string()
            )))
        }
        _ => {}
    }
    if cfg.wal_dir.exists() {
        return Err(failed(format!(
            "wal-dir {:?} exists",
            cfg.wal_dir.display().to_string()
        )));
    }
    let mapped = Mapped::open(&cfg.snapshot)?;
    let image = verified_image(mapped.bytes(), cfg.skip_hash_check)?;
    let bolt = Bolt::open(image)?;
    refuse_newer_storage(&bolt)?;
    let made_data_dir = !cfg.data_dir.exists();
    let result = write_data_dir(cfg, &bolt);
    if result.is_err() {
        if made_data_dir {
            let _ = std::fs::remove_dir_all(&cfg.data_dir);
        }
        let _ = std::fs::remove_dir_all(&cfg.wal_dir);
    }
    result
}

/// The image of a snapshot file, its hash checked: etcd's
/// `copyAndVerifyDB`.
fn verified_image(data: &[u8], skip_hash_check: bool) -> Result<&[u8], SnapshotError> {
    let (image, hash) = split_trailer(data);
    match hash {
        None if !skip_hash_check => {
            Err(failed("snapshot missing hash but --skip-hash-check=false"))
        }
        Some(want) if !skip_hash_check => {
            let got = Sha256::digest(image);
            if got.as_slice() != want {
                return Err(failed(format!(
                    "expected sha256 {}, got {}",
                    go_bytes(want),
                    go_bytes(&got)
                )));
            }
            Ok(image)
        }
        _ => Ok(image),
    }
}

/// Bytes as Go's `%v` prints a `[]byte`: `[1 2 3]`.
fn go_bytes(b: &[u8]) -> String {
    let parts: Vec<String> = b.iter().map(u8::to_string).collect();
    format!("[{}]", parts.join(" "))
}

/// Refuses a snapshot whose `meta` bucket names a storage version (etcd
/// 3.6 writes one; 3.4 and 3.5 do not) or whose cluster version is newer
/// than 3.5.
fn refuse_newer_storage(bolt: &Bolt<'_>) -> Result<(), SnapshotError> {
    for b in bolt.buckets()? {
        let key: &[u8] = match b.name {
            b"meta" => b"storageVersion",
            b"cluster" => b"clusterVersion",
            _ => continue,
        };
        let mut found = None;
        bolt.for_each(&b, |k, v| {
            if k == key {
                found = Some(String::from_utf8_lossy(v).into_owned());
            }
            Ok::<_, SnapshotError>(())
        })?;
        if let Some(version) = found {
            let minor: Vec<u32> = version.split('.').filter_map(|p| p.parse().ok()).collect();
            if minor.len() >= 2 && (minor[0], minor[1]) > (3, 5) {
                return Err(failed(format!(
                    "snapshot of etcd {version} is not supported: etcd-rs restores snapshots of etcd 3.4 and 3.5"
                )));
            }
        }
    }
    Ok(())
}

/// The members of the restored cluster, sorted by id.
fn members_of(cfg: &RestoreConfig) -> Vec<Member> {
    let mut members: Vec<Member> = cfg
        .initial_cluster
        .iter()
        .map(|m| Member {
            id: compute_member_id(&m.peer_urls, &cfg.token),
            name: m.name.clone(),
            peer_urls: m.peer_urls.clone(),
            client_urls: Vec::new(),
            is_learner: false,
        })
        .collect();
    members.sort_by_key(|m| m.id);
    members
}

fn write_data_dir(cfg: &RestoreConfig, bolt: &Bolt<'_>) -> Result<Restored, SnapshotError> {
    let snap_dir = cfg.data_dir.join("member").join("snap");
    std::fs::create_dir_all(&snap_dir)?;
    let backend = Backend::open(&crate::backend::path_in(&cfg.data_dir)).map_err(failed)?;
    let members = members_of(cfg);
    let local = cfg
        .initial_cluster
        .iter()
        .find(|m| m.name == cfg.name)
        .map(|m| compute_member_id(&m.peer_urls, &cfg.token))
        .ok_or_else(|| {
            failed(format!(
                "couldn't find local name {:?} in the initial cluster configuration",
                cfg.name
            ))
        })?;
    let ids: Vec<u64> = members.iter().map(|m| m.id).collect();
    let cluster_id = compute_cluster_id(&ids);
    let index = members.len() as u64;
    let revision = import(bolt, &backend, cfg.bump_revision, Some(index))?;
    crate::schema::members::save_all(&backend, &members, &[], 0).map_err(failed)?;
    backend.wait_synced().map_err(failed)?;
    drop(backend);
    let record = SnapshotRecord {
        index,
        term: 1,
        voters: ids,
        learners: Vec::new(),
    };
    Snapshotter::new(&snap_dir)?.save(&record)?;
    let metadata = Metadata {
        member_id: local,
        cluster_id,
    };
    let mut wal = Wal::create(&cfg.wal_dir, metadata, &record).map_err(failed)?;
    let hs = HardState {
        term: 1,
        vote: 0,
        commit: index,
    };
    wal.save(Some(hs), std::iter::empty()).map_err(failed)?;
    Ok(Restored {
        member_id: local,
        cluster_id,
        revision,
    })
}

/// Copies the buckets of `bolt` into `backend` as our tables (the
/// members left out) and writes `meta`: the compaction revisions, raised
/// by `bump` as `--bump-revision` asks, and, if given, the consistent
/// index with term 1. Returns the store's revision. Errors: a record that
/// does not decode, the backend's.
pub fn import(
    bolt: &Bolt<'_>,
    backend: &Backend,
    bump: u64,
    consistent_index: Option<u64>,
) -> Result<i64, SnapshotError> {
    let mut last_revision = 0i64;
    let mut compact = (0i64, 0i64);
    for bucket in bolt.buckets()? {
        copy_bucket(backend, bolt, &bucket, &mut last_revision, &mut compact)?;
    }
    let mut scheduled = compact.0;
    let mut revision = last_revision.max(compact.0);
    if bump > 0 {
        revision += bump as i64;
        scheduled = revision;
    }
    let tx = backend.write(true).map_err(failed)?;
    {
        let mut meta = tx
            .open_table(META_TABLE)
            .map_err(|e| failed(BackendError::from(e)))?;
        let mut rows = vec![
            (SCHEDULED_COMPACT_REV, scheduled as u64),
            (FINISHED_COMPACT_REV, compact.1 as u64),
        ];
        if let Some(index) = consistent_index {
            rows.extend([(CONSISTENT_INDEX, index), (TERM, 1)]);
        }
        for (k, v) in rows {
            meta.insert(k, v.to_be_bytes().as_slice())
                .map_err(|e| failed(BackendError::from(e)))?;
        }
    }
    backend.commit(tx).map_err(failed)?;
    Ok(revision)
}

/// A 17-byte etcd revision's main part.
fn revision_main(v: &[u8]) -> Option<i64> {
    Some(i64::from_be_bytes(v.get(..8)?.try_into().ok()?))
}

/// Copies one of etcd's buckets into its table, converting what differs;
/// the members, `meta` (rewritten by the caller but for the compaction
/// revisions, returned in `compact`) and unknown buckets are left out.
fn copy_bucket(
    backend: &Backend,
    bolt: &Bolt<'_>,
    bucket: &Bucket<'_>,
    last_revision: &mut i64,
    compact: &mut (i64, i64),
) -> Result<(), SnapshotError> {
    let name = String::from_utf8_lossy(bucket.name).into_owned();
    if name == "meta" {
        return bolt.for_each(bucket, |k, v| {
            match k {
                k if k == SCHEDULED_COMPACT_REV => compact.0 = revision_main(v).unwrap_or(0),
                k if k == FINISHED_COMPACT_REV => compact.1 = revision_main(v).unwrap_or(0),
                _ => {}
            }
            Ok::<_, SnapshotError>(())
        });
    }
    let skip = matches!(name.as_str(), "members" | "members_removed");
    let Some(def) = table_named(&name).filter(|_| !skip) else {
        return Ok(());
    };
    let mut rows: Vec<(Vec<u8>, Vec<u8>)> = Vec::new();
    let mut bytes = 0;
    let flush = |rows: &mut Vec<(Vec<u8>, Vec<u8>)>| -> Result<(), SnapshotError> {
        let tx = backend.write(false).map_err(failed)?;
        {
            let mut t = tx
                .open_table(def)
                .map_err(|e| failed(BackendError::from(e)))?;
            for (k, v) in rows.drain(..) {
                t.insert(k.as_slice(), v.as_slice())
                    .map_err(|e| failed(BackendError::from(e)))?;
            }
        }
        backend.commit(tx).map_err(failed)
    };
    bolt.for_each(bucket, |k, v| {
        let v = match name.as_str() {
            // An empty row is etcdutl's --bump-revision marker: the
            // revision it carries is kept as the compaction revision.
            "key" if v.is_empty() => return Ok(()),
            "key" => {
                *last_revision = (*last_revision).max(revision_main(k).unwrap_or(0));
                v.to_vec()
            }
            "lease" => {
                let pb = LeasePb::decode(v).map_err(|_| failed("snapshot: corrupt lease"))?;
                crate::schema::lease::encode(pb.ttl, pb.remaining_ttl)
            }
            _ => v.to_vec(),
        };
        bytes += k.len() + v.len();
        rows.push((k.to_vec(), v));
        if bytes >= BATCH_BYTES {
            flush(&mut rows)?;
            bytes = 0;
        }
        Ok::<_, SnapshotError>(())
    })?;
    flush(&mut rows)
}

/// The data dir `etcdutl` restores into when `--data-dir` is not given:
/// `<name>.etcd`.
pub fn default_data_dir(name: &str) -> PathBuf {
    PathBuf::from(format!("{name}.etcd"))
}

/// The WAL dir inside `data_dir`.
pub fn default_wal_dir(data_dir: &Path) -> PathBuf {
    data_dir.join("member").join("wal")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::snapshot::bbolt::Writer;

    /// A bbolt image with one bucket `name` holding `key` = `value`.
    fn image(name: &[u8], key: &[u8], value: &[u8]) -> Vec<u8> {
        let mut w = Writer::new(std::io::Cursor::new(Vec::new())).unwrap();
        let mut b = w.bucket(name);
        b.put(key, value).unwrap();
        b.finish().unwrap();
        w.finish().unwrap().0.into_inner()
    }

    #[test]
    fn storage_newer_than_3_5_is_refused_by_name() {
        let newer = image(b"meta", b"storageVersion", b"3.6.0");
        let err = refuse_newer_storage(&Bolt::open(&newer).unwrap()).unwrap_err();
        assert!(
            err.to_string()
                .contains("snapshot of etcd 3.6.0 is not supported"),
            "{err}"
        );
        let cluster = image(b"cluster", b"clusterVersion", b"3.7.0");
        assert!(refuse_newer_storage(&Bolt::open(&cluster).unwrap()).is_err());
        let ok = image(b"cluster", b"clusterVersion", b"3.5.0");
        assert!(refuse_newer_storage(&Bolt::open(&ok).unwrap()).is_ok());
    }

    #[test]
    fn a_hash_mismatch_reads_as_etcds() {
        let mut data = image(b"key", b"k", b"v");
        let hash = Sha256::digest(&data);
        data.extend_from_slice(&hash);
        assert!(verified_image(&data, false).is_ok());
        let n = data.len();
        data[n - 1] ^= 1;
        let err = verified_image(&data, false).unwrap_err().to_string();
        assert!(
            err.starts_with("expected sha256 [") && err.contains("], got ["),
            "{err}"
        );
        assert!(verified_image(&data, true).is_ok());
    }
}

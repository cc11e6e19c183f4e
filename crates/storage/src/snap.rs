//! Raft snapshot records on disk (etcd's `snap` package), in `member/snap`.
//!
//! A snapshot record says the log starts after `index` (of `term`) with the
//! given voters and learners; the state machine's content at that index is
//! the backend itself. Each record is a file `{term:016x}-{index:016x}.snap`
//! holding one WAL-format Snapshot record (length, CRC-32, body; see
//! `wal/FORMAT.md`), written to a temporary name, fsynced and renamed. The
//! newest few are kept. A backend received from the leader waits beside
//! them as `{term:016x}-{index:016x}.snap.db` until the apply stage loads it.

use std::fs::{self, File};
use std::io::Write;
use std::path::{Path, PathBuf};

use crate::wal::record::{self, Record, FRAME_BYTES};
use crate::wal::SnapshotRecord;

/// Snapshot files kept after a new one is saved.
const KEEP: usize = 5;

/// The snapshot records of one member.
pub struct Snapshotter {
    dir: PathBuf,
}

fn name(term: u64, index: u64) -> String {
    format!("{term:016x}-{index:016x}.snap")
}

impl Snapshotter {
    /// Snapshots in `dir` (created if missing).
    pub fn new(dir: &Path) -> std::io::Result<Snapshotter> {
        fs::create_dir_all(dir)?;
        Ok(Snapshotter {
            dir: dir.to_path_buf(),
        })
    }

    /// Saves `snap` durably, then removes all but the newest few records.
    pub fn save(&self, snap: &SnapshotRecord) -> std::io::Result<()> {
        let mut buf = Vec::new();
        record::encode(&mut buf, &Record::Snapshot(snap.clone()));
        let final_path = self.dir.join(name(snap.term, snap.index));
        let tmp = final_path.with_extension("snap.tmp");
        let mut f = File::create(&tmp)?;
        f.write_all(&buf)?;
        f.sync_all()?;
        fs::rename(&tmp, &final_path)?;
        File::open(&self.dir)?.sync_all()?;
        let mut names = self.records()?;
        names.sort();
        let excess = names.len().saturating_sub(KEEP);
        for old in &names[..excess] {
            fs::remove_file(self.dir.join(old))?;
        }
        Ok(())
    }

    fn records(&self) -> std::io::Result<Vec<String>> {
        let mut out = Vec::new();
        for ent in fs::read_dir(&self.dir)? {
            let n = ent?.file_name().to_string_lossy().into_owned();
            if n.len() == 38 && n.ends_with(".snap") {
                out.push(n);
            }
        }
        Ok(out)
    }

    /// The newest snapshot record that reads back whole, if any.
    pub fn load_newest(&self) -> std::io::Result<Option<SnapshotRecord>> {
        let mut best: Option<SnapshotRecord> = None;
        for n in self.records()? {
            let data = fs::read(self.dir.join(&n))?;
            let Some(s) = decode_file(&data) else {
                tracing::warn!(file = %n, "skipping a snapshot record that does not read back");
                continue;
            };
            if best.as_ref().is_none_or(|b| s.index > b.index) {
                best = Some(s);
            }
        }
        Ok(best)
    }

    /// Removes received backends (and unfinished ones) for snapshots at or
    /// below `index`: the store is past them.
    pub fn purge_staged(&self, index: u64) -> std::io::Result<()> {
        for ent in fs::read_dir(&self.dir)? {
            let ent = ent?;
            let n = ent.file_name().to_string_lossy().into_owned();
            if !n.contains(".snap.db") {
                continue;
            }
            let staged_index = n.get(17..33).and_then(|h| u64::from_str_radix(h, 16).ok());
            if staged_index.is_some_and(|i| i <= index) {
                fs::remove_file(ent.path())?;
            }
        }
        Ok(())
    }

    /// Where a backend received for the snapshot at (`term`, `index`) is
    /// kept until it is loaded.
    pub fn db_path(&self, term: u64, index: u64) -> PathBuf {
        self.dir.join(format!("{}.db", name(term, index)))
    }
}

/// The snapshot record in a `.snap` file's bytes (one framed record:
/// length, CRC-32 of the body, body), or `None` when it fails its checksum
/// or holds something else. Never panics, whatever the bytes (fuzzed by
/// `crates/fuzz`).
pub fn decode_file(data: &[u8]) -> Option<SnapshotRecord> {
    let body = data.get(FRAME_BYTES..)?;
    let crc = u32::from_le_bytes(data[4..8].try_into().expect("4 bytes"));
    if crc32fast::hash(body) != crc {
        return None;
    }
    match record::decode(body)? {
        Record::Snapshot(s) => Some(s),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn newest_snapshot_survives_and_old_ones_are_purged() {
        let dir = tempfile::tempdir().unwrap();
        let s = Snapshotter::new(dir.path()).unwrap();
        assert_eq!(s.load_newest().unwrap(), None);
        for i in 1..=7u64 {
            s.save(&SnapshotRecord {
                index: i * 100,
                term: 2,
                voters: vec![1, 2, 3],
                learners: vec![],
            })
            .unwrap();
        }
        assert_eq!(s.records().unwrap().len(), KEEP);
        let newest = s.load_newest().unwrap().unwrap();
        assert_eq!((newest.index, newest.voters), (700, vec![1, 2, 3]));
    }
}

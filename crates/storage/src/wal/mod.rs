//! The write-ahead log: raft entries and hard state, appended in order and
//! fsynced once per batch before anything is acknowledged.
//!
//! Files live in the WAL directory (`member/wal`) as segments named
//! `{seq:016x}-{index:016x}.wal`, preallocated to [`SEGMENT_BYTES`]. The
//! record format is written down in `FORMAT.md` beside this file. On open,
//! a torn record at the tail of the last segment (a write cut by a crash)
//! is cut off; a bad record anywhere else is an error.

pub mod record;
mod segment;

use std::fs::{self, File};
use std::io;
use std::path::{Path, PathBuf};

use record::Record;
pub use record::{EntryRecord, EntryRef, HardState, Metadata, SnapshotRecord};
pub use segment::parse as parse_segment;

/// Size a segment is preallocated to, in bytes (64 MiB, as etcd's).
pub const SEGMENT_BYTES: u64 = 64 * 1024 * 1024;

/// Errors of the WAL.
#[derive(Debug, thiserror::Error)]
pub enum WalError {
    /// The file system failed.
    #[error("wal: {0}")]
    Io(#[from] io::Error),
    /// A record before the tail fails its checksum or does not decode, or
    /// the entries it holds skip an index.
    #[error("wal: corrupt record in {file} at offset {offset}")]
    Corrupt {
        /// The segment's path.
        file: PathBuf,
        /// Byte offset of the bad record.
        offset: u64,
    },
    /// The directory holds no WAL.
    #[error("wal: no WAL files in {0}")]
    NotFound(PathBuf),
}

/// Everything a WAL holds, as read at open.
#[derive(Debug, Default)]
pub struct WalContents {
    /// Who wrote the log.
    pub metadata: Metadata,
    /// The newest snapshot record (the point the log starts after).
    pub snapshot: SnapshotRecord,
    /// The newest hard state.
    pub hard_state: HardState,
    /// Entries after the snapshot, in index order, conflicts resolved
    /// (a later record for an index replaces it and everything after it).
    pub entries: Vec<EntryRecord>,
}

/// An open WAL, positioned to append.
pub struct Wal {
    dir: PathBuf,
    file: File,
    seq: u64,
    offset: u64,
    metadata: Metadata,
    last_index: u64,
    hard_state: HardState,
    buf: Vec<u8>,
}

impl Wal {
    /// Whether `dir` holds a WAL.
    pub fn exists(dir: &Path) -> bool {
        segment::list(dir).map(|s| !s.is_empty()).unwrap_or(false)
    }

    /// Creates a new WAL in `dir` (created if missing) starting from
    /// `snapshot`, and fsyncs it.
    pub fn create(
        dir: &Path,
        metadata: Metadata,
        snapshot: &SnapshotRecord,
    ) -> Result<Wal, WalError> {
        fs::create_dir_all(dir)?;
        let (file, offset) =
            segment::create(dir, 0, snapshot.index, &metadata, &HardState::default())?;
        let mut wal = Wal {
            dir: dir.to_path_buf(),
            file,
            seq: 0,
            offset,
            metadata,
            last_index: snapshot.index,
            hard_state: HardState::default(),
            buf: Vec::new(),
        };
        wal.write_records(&[Record::Snapshot(snapshot.clone())])?;
        wal.file.sync_data()?;
        Ok(wal)
    }

    /// Opens the WAL in `dir`, reads it whole, cuts a torn tail, and
    /// returns it ready to append with what it holds.
    pub fn open(dir: &Path) -> Result<(Wal, WalContents), WalError> {
        Wal::open_from(dir, SnapshotRecord::default())
    }

    /// Like [`Wal::open`], for a log that starts after `snapshot` (saved
    /// by a [`crate::snap::Snapshotter`]): entries it covers are skipped.
    pub fn open_from(dir: &Path, snapshot: SnapshotRecord) -> Result<(Wal, WalContents), WalError> {
        let segments = segment::list(dir)?;
        let Some(last) = segments.last().cloned() else {
            return Err(WalError::NotFound(dir.to_path_buf()));
        };
        let mut contents = WalContents {
            snapshot,
            ..Default::default()
        };
        let mut end_offset = 0;
        for (i, seg) in segments.iter().enumerate() {
            let is_last = i + 1 == segments.len();
            end_offset = segment::read(&seg.path, is_last, &mut contents)?;
        }
        let file = segment::open_for_append(&last.path, end_offset)?;
        let last_index = contents
            .entries
            .last()
            .map(|e| e.index)
            .unwrap_or(contents.snapshot.index);
        let wal = Wal {
            dir: dir.to_path_buf(),
            file,
            seq: last.seq,
            offset: end_offset,
            metadata: contents.metadata,
            last_index,
            hard_state: contents.hard_state,
            buf: Vec::new(),
        };
        Ok((wal, contents))
    }

    /// Appends `entries` and, if given, the new hard state, then fsyncs
    /// once: when this returns they survive a crash.
    pub fn save<'a>(
        &mut self,
        hard_state: Option<HardState>,
        entries: impl IntoIterator<Item = EntryRef<'a>>,
    ) -> Result<(), WalError> {
        self.buf.clear();
        let mut last_index = None;
        for e in entries {
            record::encode_entry(&mut self.buf, &e);
            last_index = Some(e.index);
        }
        if let Some(hs) = hard_state {
            record::encode(&mut self.buf, &Record::HardState(hs));
        }
        if self.buf.is_empty() {
            return Ok(());
        }
        // A full segment is closed before the batch, whose first entry then
        // names the next segment; the new segment's header repeats the state
        // before the batch.
        if self.offset + self.buf.len() as u64 > SEGMENT_BYTES
            && self.offset > segment::HEADER_BYTES
        {
            self.cut()?;
        }
        #[cfg(feature = "failpoints")]
        if let Err(e) = crate::failpoint::disk_full(self.dir.parent()) {
            // Half the batch reaches the file, as when the disk fills.
            let half = &self.buf[..self.buf.len() / 2];
            segment::write_at(&self.file, half, self.offset)?;
            return Err(e.into());
        }
        segment::write_at(&self.file, &self.buf, self.offset)?;
        self.offset += self.buf.len() as u64;
        let fsync = std::time::Instant::now();
        self.file.sync_data()?;
        metrics::WAL_FSYNC.observe(fsync.elapsed().as_secs_f64());
        if let Some(index) = last_index {
            self.last_index = index;
        }
        if let Some(hs) = hard_state {
            self.hard_state = hs;
        }
        Ok(())
    }

    /// Appends a snapshot record (the log now starts after `snapshot`) and
    /// fsyncs.
    pub fn save_snapshot(&mut self, snapshot: &SnapshotRecord) -> Result<(), WalError> {
        self.write_records(&[Record::Snapshot(snapshot.clone())])?;
        self.file.sync_data()?;
        Ok(())
    }

    fn write_records(&mut self, records: &[Record]) -> Result<(), WalError> {
        self.buf.clear();
        for r in records {
            record::encode(&mut self.buf, r);
        }
        segment::write_at(&self.file, &self.buf, self.offset)?;
        self.offset += self.buf.len() as u64;
        Ok(())
    }

    /// Closes the current segment at its end and starts the next one.
    fn cut(&mut self) -> Result<(), WalError> {
        self.file.set_len(self.offset)?;
        self.file.sync_all()?;
        let (file, offset) = segment::create(
            &self.dir,
            self.seq + 1,
            self.last_index + 1,
            &self.metadata,
            &self.hard_state,
        )?;
        self.file = file;
        self.seq += 1;
        self.offset = offset;
        Ok(())
    }

    /// Deletes the segments whose entries all precede `index` + 1 (they
    /// are covered by a snapshot at `index`); the last segment stays.
    /// Returns how many were deleted.
    pub fn release_to(&mut self, index: u64) -> Result<usize, WalError> {
        let segments = segment::list(&self.dir)?;
        let mut released = 0;
        for pair in segments.windows(2) {
            // The next segment starts at or before the first entry after
            // the snapshot, so this one holds nothing still needed.
            if pair[1].first_index <= index + 1 {
                fs::remove_file(&pair[0].path)?;
                released += 1;
            } else {
                break;
            }
        }
        if released > 0 {
            File::open(&self.dir)?.sync_all()?;
        }
        Ok(released)
    }

    /// The directory this WAL lives in.
    pub fn dir(&self) -> &Path {
        &self.dir
    }
}

#[cfg(test)]
mod tests;

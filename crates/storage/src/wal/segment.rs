//! WAL segment files: naming, creation with preallocation, reading with
//! torn-tail detection.

use std::fs::{self, File, OpenOptions};
use std::io;
use std::os::unix::fs::FileExt;
use std::os::unix::io::AsRawFd;
use std::path::{Path, PathBuf};

use super::record::{self, Record, FRAME_BYTES};
use super::{HardState, Metadata, WalContents, WalError, SEGMENT_BYTES};

/// Bytes of the records every segment starts with (metadata, hard state).
pub const HEADER_BYTES: u64 = (FRAME_BYTES + 17 + FRAME_BYTES + 25) as u64;

/// A segment's place in the log, from its file name.
#[derive(Clone, Debug)]
pub struct Segment {
    pub seq: u64,
    /// The raft index its first entry was to have, from its name.
    pub first_index: u64,
    pub path: PathBuf,
}

fn parse_name(name: &str) -> Option<(u64, u64)> {
    let stem = name.strip_suffix(".wal")?;
    let (seq, index) = stem.split_once('-')?;
    Some((
        u64::from_str_radix(seq, 16).ok()?,
        u64::from_str_radix(index, 16).ok()?,
    ))
}

/// The segments in `dir`, in sequence order (empty if `dir` is missing).
pub fn list(dir: &Path) -> io::Result<Vec<Segment>> {
    let mut out = Vec::new();
    let rd = match fs::read_dir(dir) {
        Ok(rd) => rd,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(out),
        Err(e) => return Err(e),
    };
    for ent in rd {
        let ent = ent?;
        if let Some((seq, first_index)) = ent.file_name().to_str().and_then(parse_name) {
            out.push(Segment {
                seq,
                first_index,
                path: ent.path(),
            });
        }
    }
    out.sort_by_key(|s| s.seq);
    Ok(out)
}

fn preallocate(file: &File, len: u64) -> io::Result<()> {
    // SAFETY: fallocate only reads its integer arguments and the open fd.
    let rc = unsafe { libc::fallocate(file.as_raw_fd(), 0, 0, len as libc::off_t) };
    if rc != 0 {
        // File systems without fallocate get a sparse file instead.
        file.set_len(len)?;
    }
    Ok(())
}

fn sync_dir(dir: &Path) -> io::Result<()> {
    File::open(dir)?.sync_all()
}

/// Creates segment `seq` whose first entry will be `index`, writes its
/// header records and fsyncs it and the directory. Returns the file and
/// the offset to append at.
pub fn create(
    dir: &Path,
    seq: u64,
    index: u64,
    metadata: &Metadata,
    hard_state: &HardState,
) -> io::Result<(File, u64)> {
    let path = dir.join(format!("{seq:016x}-{index:016x}.wal"));
    let file = OpenOptions::new()
        .read(true)
        .write(true)
        .create_new(true)
        .open(&path)?;
    preallocate(&file, SEGMENT_BYTES)?;
    let mut buf = Vec::new();
    record::encode(&mut buf, &Record::Metadata(*metadata));
    record::encode(&mut buf, &Record::HardState(*hard_state));
    file.write_all_at(&buf, 0)?;
    file.sync_all()?;
    sync_dir(dir)?;
    Ok((file, buf.len() as u64))
}

/// Opens a segment to append at `offset`; everything after it is zeroed
/// (this is where a torn tail is cut off).
pub fn open_for_append(path: &Path, offset: u64) -> io::Result<File> {
    let file = OpenOptions::new().read(true).write(true).open(path)?;
    file.set_len(offset)?;
    preallocate(&file, SEGMENT_BYTES.max(offset))?;
    file.sync_all()?;
    Ok(file)
}

/// Writes all of `buf` at `offset`.
pub fn write_at(file: &File, buf: &[u8], offset: u64) -> io::Result<()> {
    file.write_all_at(buf, offset)
}

/// Largest record body accepted, in bytes; a longer length field is corrupt.
pub const MAX_RECORD_BYTES: usize = 256 * 1024 * 1024;

/// The record at `off` with a good checksum, if there is one.
fn frame_at(data: &[u8], off: usize) -> Option<(Record, usize)> {
    let header = data.get(off..off + FRAME_BYTES)?;
    let len = u32::from_le_bytes(header[0..4].try_into().ok()?) as usize;
    let crc = u32::from_le_bytes(header[4..8].try_into().ok()?);
    if len == 0 || len > MAX_RECORD_BYTES {
        return None;
    }
    let body = data.get(off + FRAME_BYTES..off + FRAME_BYTES + len)?;
    if crc32fast::hash(body) != crc {
        return None;
    }
    Some((record::decode(body)?, off + FRAME_BYTES + len))
}

/// A bad record is a torn tail (a write cut by a crash before its fsync
/// returned, so never acknowledged) when no good record follows it.
fn is_torn(data: &[u8], off: usize) -> bool {
    let last_written = data.iter().rposition(|b| *b != 0).unwrap_or(0);
    !(off + 1..=last_written).any(|p| frame_at(data, p).is_some())
}

/// Reads one segment into `contents`; returns the offset after its last
/// good record. A bad record ends the last segment if it is torn, and is
/// [`WalError::Corrupt`] otherwise.
pub fn read(path: &Path, is_last: bool, contents: &mut WalContents) -> Result<u64, WalError> {
    let data = fs::read(path)?;
    parse(&data, is_last, contents).map_err(|offset| WalError::Corrupt {
        file: path.to_path_buf(),
        offset,
    })
}

/// [`read`] on a segment's bytes: the offset after the last good record,
/// or the offset of the record that is corrupt. Never panics, whatever
/// the bytes (fuzzed by `crates/fuzz`).
pub fn parse(data: &[u8], is_last: bool, contents: &mut WalContents) -> Result<u64, u64> {
    let mut off = 0usize;
    while off < data.len() {
        if let Some((rec, end)) = frame_at(data, off) {
            apply(contents, rec).map_err(|()| off as u64)?;
            off = end;
            continue;
        }
        let rest_is_zero = data[off..].iter().all(|b| *b == 0);
        if rest_is_zero && is_last {
            // The preallocated space after the last record.
            break;
        }
        if !rest_is_zero && is_last && is_torn(data, off) {
            tracing::warn!(offset = off, "wal: cutting off a torn record at the tail");
            break;
        }
        return Err(off as u64);
    }
    Ok(off as u64)
}

/// Adds a record to what was read; `Err` when an entry skips an index.
fn apply(c: &mut WalContents, rec: Record) -> Result<(), ()> {
    match rec {
        Record::Metadata(m) => c.metadata = m,
        Record::HardState(hs) => c.hard_state = hs,
        // A newer snapshot replaces the whole log before it (raft discards
        // its log when it restores one); an older one changes nothing.
        Record::Snapshot(s) => {
            if s.index >= c.snapshot.index {
                c.entries.clear();
                c.snapshot = s;
            }
        }
        Record::Entry(e) => {
            if e.index <= c.snapshot.index {
                return Ok(());
            }
            let first = c.entries.first().map_or(e.index, |f| f.index);
            let next = c
                .entries
                .last()
                .map_or(c.snapshot.index + 1, |l| l.index + 1);
            if e.index > next {
                return Err(());
            }
            if e.index < next {
                // A newer leader's entry replaces this index and all after it.
                c.entries.truncate((e.index - first) as usize);
            }
            c.entries.push(e);
        }
    }
    Ok(())
}

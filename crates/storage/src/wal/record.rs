//! WAL records and their byte encoding (see `FORMAT.md`).

/// Record type bytes.
const METADATA: u8 = 1;
const ENTRY: u8 = 2;
const HARD_STATE: u8 = 3;
const SNAPSHOT: u8 = 4;

/// Bytes before each record body: length (u32 LE) and CRC-32 (u32 LE).
pub const FRAME_BYTES: usize = 8;

/// Who wrote the log: this member's id and its cluster's id.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Metadata {
    /// This member's id.
    pub member_id: u64,
    /// The cluster's id.
    pub cluster_id: u64,
}

/// raft's HardState: the current term, the vote in it, the commit index.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct HardState {
    /// Current raft term.
    pub term: u64,
    /// Member voted for in `term` (0: none).
    pub vote: u64,
    /// Highest index known committed.
    pub commit: u64,
}

/// A point the log starts after: the index and term of the last entry it
/// covers and the raft configuration there (member ids).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct SnapshotRecord {
    /// Index of the last entry covered.
    pub index: u64,
    /// Term of that entry.
    pub term: u64,
    /// Voting members.
    pub voters: Vec<u64>,
    /// Learners.
    pub learners: Vec<u64>,
}

/// A raft log entry as read back.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct EntryRecord {
    /// Raft index.
    pub index: u64,
    /// Raft term.
    pub term: u64,
    /// raft-rs `EntryType` as its number.
    pub entry_type: i32,
    /// The payload.
    pub data: Vec<u8>,
    /// raft-rs's context bytes.
    pub context: Vec<u8>,
}

/// A raft log entry to write, borrowed from the caller.
#[derive(Clone, Copy, Debug)]
pub struct EntryRef<'a> {
    /// Raft index.
    pub index: u64,
    /// Raft term.
    pub term: u64,
    /// raft-rs `EntryType` as its number.
    pub entry_type: i32,
    /// The payload.
    pub data: &'a [u8],
    /// raft-rs's context bytes.
    pub context: &'a [u8],
}

/// A decoded record.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Record {
    /// Who wrote the log (first in every segment).
    Metadata(Metadata),
    /// A raft entry.
    Entry(EntryRecord),
    /// Raft's hard state (term, vote, commit).
    HardState(HardState),
    /// The point the log starts after.
    Snapshot(SnapshotRecord),
}

fn frame(buf: &mut Vec<u8>, body: impl FnOnce(&mut Vec<u8>)) {
    let start = buf.len();
    buf.extend_from_slice(&[0; FRAME_BYTES]);
    body(buf);
    let len = (buf.len() - start - FRAME_BYTES) as u32;
    let crc = crc32fast::hash(&buf[start + FRAME_BYTES..]);
    buf[start..start + 4].copy_from_slice(&len.to_le_bytes());
    buf[start + 4..start + 8].copy_from_slice(&crc.to_le_bytes());
}

fn put_u64(buf: &mut Vec<u8>, v: u64) {
    buf.extend_from_slice(&v.to_le_bytes());
}

fn put_bytes(buf: &mut Vec<u8>, b: &[u8]) {
    buf.extend_from_slice(&(b.len() as u32).to_le_bytes());
    buf.extend_from_slice(b);
}

/// Appends an entry record to `buf`.
pub fn encode_entry(buf: &mut Vec<u8>, e: &EntryRef<'_>) {
    frame(buf, |b| {
        b.push(ENTRY);
        put_u64(b, e.index);
        put_u64(b, e.term);
        b.extend_from_slice(&e.entry_type.to_le_bytes());
        put_bytes(b, e.data);
        put_bytes(b, e.context);
    });
}

/// Appends any record to `buf`.
pub fn encode(buf: &mut Vec<u8>, r: &Record) {
    match r {
        Record::Metadata(m) => frame(buf, |b| {
            b.push(METADATA);
            put_u64(b, m.member_id);
            put_u64(b, m.cluster_id);
        }),
        Record::Entry(e) => encode_entry(
            buf,
            &EntryRef {
                index: e.index,
                term: e.term,
                entry_type: e.entry_type,
                data: &e.data,
                context: &e.context,
            },
        ),
        Record::HardState(hs) => frame(buf, |b| {
            b.push(HARD_STATE);
            put_u64(b, hs.term);
            put_u64(b, hs.vote);
            put_u64(b, hs.commit);
        }),
        Record::Snapshot(s) => frame(buf, |b| {
            b.push(SNAPSHOT);
            put_u64(b, s.index);
            put_u64(b, s.term);
            b.extend_from_slice(&(s.voters.len() as u32).to_le_bytes());
            s.voters.iter().for_each(|v| put_u64(b, *v));
            b.extend_from_slice(&(s.learners.len() as u32).to_le_bytes());
            s.learners.iter().for_each(|v| put_u64(b, *v));
        }),
    }
}

struct Reader<'a>(&'a [u8]);

impl Reader<'_> {
    fn take(&mut self, n: usize) -> Option<&[u8]> {
        if self.0.len() < n {
            return None;
        }
        let (h, t) = self.0.split_at(n);
        self.0 = t;
        Some(h)
    }
    fn u32(&mut self) -> Option<u32> {
        Some(u32::from_le_bytes(self.take(4)?.try_into().ok()?))
    }
    fn u64(&mut self) -> Option<u64> {
        Some(u64::from_le_bytes(self.take(8)?.try_into().ok()?))
    }
    fn bytes(&mut self) -> Option<Vec<u8>> {
        let n = self.u32()? as usize;
        Some(self.take(n)?.to_vec())
    }
    fn ids(&mut self) -> Option<Vec<u64>> {
        let n = self.u32()? as usize;
        (0..n).map(|_| self.u64()).collect()
    }
}

/// Decodes a record body (type byte and payload, without the frame).
pub fn decode(body: &[u8]) -> Option<Record> {
    let (&ty, rest) = body.split_first()?;
    let mut r = Reader(rest);
    let rec = match ty {
        METADATA => Record::Metadata(Metadata {
            member_id: r.u64()?,
            cluster_id: r.u64()?,
        }),
        ENTRY => Record::Entry(EntryRecord {
            index: r.u64()?,
            term: r.u64()?,
            entry_type: r.u32()? as i32,
            data: r.bytes()?,
            context: r.bytes()?,
        }),
        HARD_STATE => Record::HardState(HardState {
            term: r.u64()?,
            vote: r.u64()?,
            commit: r.u64()?,
        }),
        SNAPSHOT => Record::Snapshot(SnapshotRecord {
            index: r.u64()?,
            term: r.u64()?,
            voters: r.ids()?,
            learners: r.ids()?,
        }),
        _ => return None,
    };
    r.0.is_empty().then_some(rec)
}

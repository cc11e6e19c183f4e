//! Fuzz targets for what etcd-rs reads from outside or from disk: the WAL
//! segment reader, the snapshot record reader, peer messages, client
//! request checks and txn evaluation. Each target takes any bytes and
//! panics only when etcd-rs does something wrong with them (a decoder that
//! panics, a check that lets through what evaluation then chokes on, an
//! answer of the wrong shape).
//!
//! The targets run two ways: `tests/bounded.rs`, on the stable toolchain in
//! the test command, feeds each the seeds of [`seeds`], the files of
//! `corpus/<target>/` and a bounded number of mutations of them
//! ([`mutate`]); `libfuzzer/` wraps the same functions for `cargo fuzz`
//! (nightly) for long, coverage-guided runs (`scripts/fuzz.sh`), whose
//! findings are kept in `corpus/` and whose crashes become regression
//! inputs there.

pub mod mutate;
mod seeds;
mod txn;

use api::etcdrspb::{RaftBatch, SnapshotChunk};
use api::etcdserverpb::{
    DeleteRangeRequest, InternalRaftRequest, PutRequest, RangeRequest, TxnRequest,
};
use prost::Message as _;
use protobuf::Message as _;
use server::v3rpc::validate;
use storage::wal::record::{self, Record};
use storage::wal::{parse_segment, WalContents};

pub use seeds::seeds;

/// A fuzz target: takes any bytes, panics on a bug.
pub type Target = fn(&[u8]);

/// Every target, by the name its corpus directory and libFuzzer harness
/// carry.
pub const TARGETS: &[(&str, Target)] = &[
    ("wal_segment", wal_segment),
    ("snapshot_record", snapshot_record),
    ("peer_message", peer_message),
    ("request_validation", request_validation),
    ("txn_eval", txn_eval),
];

/// The WAL segment reader on `data` as the last segment and as an earlier
/// one: never panics; what it keeps is a log without gaps, and a segment
/// read whole as an earlier one reads the same as the last one.
pub fn wal_segment(data: &[u8]) {
    let mut last = WalContents::default();
    let last_read = parse_segment(data, true, &mut last);
    let mut earlier = WalContents::default();
    let earlier_read = parse_segment(data, false, &mut earlier);
    for pair in last.entries.windows(2) {
        assert_eq!(
            pair[1].index,
            pair[0].index + 1,
            "a gap in the entries read"
        );
    }
    if let Some(first) = last.entries.first() {
        assert!(
            first.index > last.snapshot.index,
            "an entry the snapshot covers"
        );
    }
    if let (Ok(a), Ok(b)) = (&last_read, &earlier_read) {
        assert!(a >= b, "the last segment reads less than an earlier one");
    }
    if let Ok(end) = last_read {
        assert!(end as usize <= data.len(), "read past the end");
    }
}

/// The `.snap` file reader: never panics; a record it accepts encodes
/// back to a file that reads the same.
pub fn snapshot_record(data: &[u8]) {
    if let Some(s) = storage::snap::decode_file(data) {
        let mut again = Vec::new();
        record::encode(&mut again, &Record::Snapshot(s.clone()));
        assert_eq!(storage::snap::decode_file(&again), Some(s));
    }
}

/// What a member decodes from a peer: a batch of raft messages (each one
/// rust-protobuf's `eraftpb.Message`, whose entries carry raft requests),
/// or the first chunk of a snapshot stream. Never panics.
pub fn peer_message(data: &[u8]) {
    if let Ok(batch) = RaftBatch::decode(data) {
        for bytes in &batch.messages {
            let Ok(msg) = raft::prelude::Message::parse_from_bytes(bytes) else {
                continue;
            };
            for e in msg.get_entries() {
                let _ = InternalRaftRequest::decode(e.get_data());
            }
        }
    }
    if let Ok(chunk) = SnapshotChunk::decode(data) {
        let _ = raft::prelude::Message::parse_from_bytes(&chunk.message);
    }
}

/// The request checks of the KV service on a request of the kind the
/// first byte picks: never panic.
pub fn request_validation(data: &[u8]) {
    let Some((kind, body)) = data.split_first() else {
        return;
    };
    match kind % 4 {
        0 => {
            if let Ok(r) = RangeRequest::decode(body) {
                let _ = validate::range(&r);
            }
        }
        1 => {
            if let Ok(r) = PutRequest::decode(body) {
                let _ = validate::put(&r);
            }
        }
        2 => {
            if let Ok(r) = DeleteRangeRequest::decode(body) {
                let _ = validate::delete_range(&r);
            }
        }
        _ => {
            if let Ok(r) = TxnRequest::decode(body) {
                let _ = validate::txn(&r, 128);
            }
        }
    }
}

/// A txn that passes the KV service's checks, evaluated by the apply
/// stage's code on a store holding a few keys: it never panics, and its
/// answer has one response per operation of the branch it took.
pub fn txn_eval(data: &[u8]) {
    let Ok(t) = TxnRequest::decode(data) else {
        return;
    };
    if validate::txn(&t, 128).is_err() {
        return;
    }
    txn::evaluate(&t);
}

//! Seed inputs for every target, made by the real encoders so that they
//! follow the formats as they are now: the mutations of the bounded run
//! and libFuzzer both start from inputs that reach deep into the readers.

use api::etcdrspb::{RaftBatch, SnapshotChunk};
use api::etcdserverpb::compare::{CompareResult, CompareTarget, TargetUnion};
use api::etcdserverpb::request_op::Request;
use api::etcdserverpb::{
    Compare, DeleteRangeRequest, InternalRaftRequest, PutRequest, RangeRequest, RequestOp,
    TxnRequest,
};
use prost::Message as _;
use protobuf::Message as _;
use raft::prelude::{Entry, Message, MessageType};
use storage::wal::record::{encode, Record};
use storage::wal::{EntryRecord, HardState, Metadata, SnapshotRecord};

/// The seeds of target `name` (one of [`crate::TARGETS`]); none for an
/// unknown name.
pub fn seeds(name: &str) -> Vec<Vec<u8>> {
    match name {
        "wal_segment" => wal_segments(),
        "snapshot_record" => vec![snapshot_file()],
        "peer_message" => peer_messages(),
        "request_validation" => requests(),
        "txn_eval" => txns().iter().map(|t| t.encode_to_vec()).collect(),
        _ => Vec::new(),
    }
}

fn entry(index: u64, term: u64, data: &[u8]) -> Record {
    Record::Entry(EntryRecord {
        index,
        term,
        entry_type: 0,
        data: data.to_vec(),
        context: Vec::new(),
    })
}

fn snapshot() -> SnapshotRecord {
    SnapshotRecord {
        index: 4,
        term: 2,
        voters: vec![1, 2, 3],
        learners: vec![4],
    }
}

fn wal_segments() -> Vec<Vec<u8>> {
    let records = [
        Record::Metadata(Metadata {
            member_id: 1,
            cluster_id: 9,
        }),
        Record::HardState(HardState {
            term: 3,
            vote: 1,
            commit: 5,
        }),
        Record::Snapshot(snapshot()),
        entry(5, 2, b"put a"),
        entry(6, 3, &put_request().encode_to_vec()),
        entry(6, 4, b"a newer leader's entry"),
        entry(7, 4, b""),
    ];
    let mut whole = Vec::new();
    records.iter().for_each(|r| encode(&mut whole, r));
    let mut padded = whole.clone();
    padded.resize(whole.len() + 64, 0);
    let mut torn = whole.clone();
    torn.truncate(whole.len() - 3);
    torn.resize(whole.len() + 16, 0);
    vec![whole, padded, torn]
}

fn snapshot_file() -> Vec<u8> {
    let mut buf = Vec::new();
    encode(&mut buf, &Record::Snapshot(snapshot()));
    buf
}

fn put_request() -> InternalRaftRequest {
    InternalRaftRequest {
        put: Some(PutRequest {
            key: b"a".to_vec(),
            value: b"1".to_vec(),
            ..Default::default()
        }),
        ..Default::default()
    }
}

fn peer_messages() -> Vec<Vec<u8>> {
    let mut append = Message::default();
    append.set_msg_type(MessageType::MsgAppend);
    append.from = 1;
    append.to = 2;
    append.term = 3;
    append.index = 5;
    append.log_term = 2;
    append.mut_entries().push(Entry {
        index: 6,
        term: 3,
        data: put_request().encode_to_vec().into(),
        ..Default::default()
    });
    let mut heartbeat = Message::default();
    heartbeat.set_msg_type(MessageType::MsgHeartbeat);
    heartbeat.commit = 5;
    let batch = RaftBatch {
        cluster_id: 9,
        from: 1,
        messages: vec![
            append.write_to_bytes().expect("encodes"),
            heartbeat.write_to_bytes().expect("encodes"),
        ],
    };
    let mut snap = Message::default();
    snap.set_msg_type(MessageType::MsgSnapshot);
    snap.mut_snapshot().mut_metadata().index = 4;
    snap.mut_snapshot().mut_metadata().term = 2;
    let chunk = SnapshotChunk {
        message: snap.write_to_bytes().expect("encodes"),
        ..Default::default()
    };
    vec![batch.encode_to_vec(), chunk.encode_to_vec()]
}

fn requests() -> Vec<Vec<u8>> {
    let tagged = |kind: u8, body: Vec<u8>| [vec![kind], body].concat();
    let range = RangeRequest {
        key: b"a".to_vec(),
        range_end: b"z".to_vec(),
        limit: 2,
        sort_order: 1,
        sort_target: 2,
        ..Default::default()
    };
    let delete = DeleteRangeRequest {
        key: b"a".to_vec(),
        range_end: vec![0],
        prev_kv: true,
    };
    let mut out = vec![
        tagged(0, range.encode_to_vec()),
        tagged(1, put_request().put.expect("a put").encode_to_vec()),
        tagged(2, delete.encode_to_vec()),
    ];
    out.extend(txns().iter().map(|t| tagged(3, t.encode_to_vec())));
    out
}

fn op(request: Request) -> RequestOp {
    RequestOp {
        request: Some(request),
    }
}

fn txns() -> Vec<TxnRequest> {
    let value_is = |key: &str, value: &str| Compare {
        result: CompareResult::Equal as i32,
        target: CompareTarget::Value as i32,
        key: key.into(),
        target_union: Some(TargetUnion::Value(value.into())),
        ..Default::default()
    };
    let put = |key: &str, lease: i64| {
        op(Request::RequestPut(PutRequest {
            key: key.into(),
            value: b"v".to_vec(),
            lease,
            prev_kv: true,
            ..Default::default()
        }))
    };
    let range_at = |revision: i64| {
        op(Request::RequestRange(RangeRequest {
            key: b"a".to_vec(),
            range_end: vec![0],
            revision,
            ..Default::default()
        }))
    };
    let nested = TxnRequest {
        compare: vec![Compare {
            result: CompareResult::Greater as i32,
            target: CompareTarget::Mod as i32,
            key: b"b".to_vec(),
            range_end: b"d".to_vec(),
            target_union: Some(TargetUnion::ModRevision(1)),
        }],
        success: vec![put("x", 0), range_at(0)],
        failure: vec![op(Request::RequestDeleteRange(DeleteRangeRequest {
            key: b"c".to_vec(),
            ..Default::default()
        }))],
    };
    vec![
        TxnRequest {
            compare: vec![value_is("a", "3")],
            success: vec![put("a", 7), range_at(4)],
            failure: vec![range_at(1)],
        },
        TxnRequest {
            compare: vec![value_is("foo", "no")],
            success: vec![put("foo", 0)],
            failure: vec![op(Request::RequestTxn(nested)), put("y", 0)],
        },
    ]
}

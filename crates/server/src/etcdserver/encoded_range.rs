//! A Range answer encoded while it is read: the `kvs`, `more` and `count`
//! fields of etcd's `RangeResponse` (`rpc.proto`), in protobuf wire form,
//! in chunks the gRPC route sends as they are. Each stored record already
//! is an encoded `mvccpb.KeyValue`, so a plain range copies it once, from
//! the backend into a chunk, and never holds the answer twice: a 1 GiB
//! range costs about 1 GiB, not the kvs plus their encoding.

use api::mvccpb::KeyValue;
use bytes::{Bytes, BytesMut};
use prost::encoding::{encode_key, encode_varint, WireType};

/// Bytes a chunk gathers before it is closed; a larger record is a chunk
/// of its own.
const CHUNK_BYTES: usize = 1 << 20;

/// `RangeResponse.kvs` (field 2, `repeated mvccpb.KeyValue`).
const KVS_FIELD: u32 = 2;
/// `RangeResponse.more` (field 3, `bool`).
const MORE_FIELD: u32 = 3;
/// `RangeResponse.count` (field 4, `int64`).
const COUNT_FIELD: u32 = 4;

/// An encoded `RangeResponse` without its header (field 1), which the
/// service adds in front: protobuf lets fields come in any order, and the
/// service encodes the header first, as prost would.
#[derive(Debug, Default)]
pub struct EncodedRange {
    /// The encoded fields, in order.
    pub chunks: Vec<Bytes>,
    /// Their total length in bytes.
    pub len: usize,
    /// The store revision the range read, for the header.
    pub revision: i64,
}

/// Builds an [`EncodedRange`] one key-value at a time.
#[derive(Default)]
pub(crate) struct Builder {
    done: EncodedRange,
    open: BytesMut,
}

impl Builder {
    /// Adds one `kvs` entry from a stored record (an encoded
    /// `mvccpb.KeyValue`), copying it once.
    pub(crate) fn push_record(&mut self, record: &[u8]) {
        encode_key(KVS_FIELD, WireType::LengthDelimited, &mut self.open);
        encode_varint(record.len() as u64, &mut self.open);
        if record.len() >= CHUNK_BYTES {
            self.close();
            self.add(Bytes::copy_from_slice(record));
        } else {
            self.open.extend_from_slice(record);
            if self.open.len() >= CHUNK_BYTES {
                self.close();
            }
        }
    }

    /// Adds one `kvs` entry from a decoded key-value.
    pub(crate) fn push_kv(&mut self, kv: &KeyValue) {
        prost::encoding::message::encode(KVS_FIELD, kv, &mut self.open);
        if self.open.len() >= CHUNK_BYTES {
            self.close();
        }
    }

    /// The answer: the kvs so far, then `more` and `count` (each left out
    /// when false or zero, as prost does), read at `revision`.
    pub(crate) fn finish(mut self, more: bool, count: i64, revision: i64) -> EncodedRange {
        if more {
            prost::encoding::bool::encode(MORE_FIELD, &more, &mut self.open);
        }
        if count != 0 {
            prost::encoding::int64::encode(COUNT_FIELD, &count, &mut self.open);
        }
        self.close();
        self.done.revision = revision;
        self.done
    }

    fn close(&mut self) {
        if !self.open.is_empty() {
            let chunk = std::mem::take(&mut self.open).freeze();
            self.add(chunk);
        }
    }

    fn add(&mut self, chunk: Bytes) {
        self.done.len += chunk.len();
        self.done.chunks.push(chunk);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use api::etcdserverpb::RangeResponse;
    use prost::Message;

    fn kv(key: &str, value_len: usize) -> KeyValue {
        KeyValue {
            key: key.into(),
            value: vec![7; value_len],
            create_revision: 2,
            mod_revision: 3,
            version: 1,
            lease: 0,
        }
    }

    fn concat(e: &EncodedRange) -> Vec<u8> {
        let bytes: Vec<u8> = e.chunks.iter().flat_map(|c| c.iter().copied()).collect();
        assert_eq!(bytes.len(), e.len);
        bytes
    }

    #[test]
    fn decodes_as_the_response_prost_would_encode() {
        let kvs = vec![
            kv("a", 10),
            kv("b", CHUNK_BYTES + 3),
            kv("c", CHUNK_BYTES / 2),
        ];
        let mut b = Builder::default();
        b.push_record(&kvs[0].encode_to_vec());
        b.push_record(&kvs[1].encode_to_vec());
        b.push_kv(&kvs[2]);
        let e = b.finish(true, 9, 12);
        assert_eq!(e.revision, 12);
        assert!(e.chunks.len() >= 2, "a large record is a chunk of its own");
        let want = RangeResponse {
            header: None,
            kvs,
            more: true,
            count: 9,
        };
        assert_eq!(concat(&e), want.encode_to_vec());
    }

    #[test]
    fn an_empty_range_encodes_to_nothing() {
        let e = Builder::default().finish(false, 0, 5);
        assert!(e.chunks.is_empty());
        assert_eq!(e.len, 0);
    }
}

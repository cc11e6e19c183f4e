//! etcd's messages as Go's `encoding/json` writes the gogo-generated
//! structs etcdctl prints: fields in proto order under their proto names,
//! zero values left out (`omitempty`), bytes in standard base64, 64-bit
//! integers as plain numbers.

use api::etcdserverpb::{response_op, ResponseHeader, ResponseOp};
use api::mvccpb::{Event, KeyValue};
use base64::Engine;
use serde_json::{Map, Value};

/// A JSON object under construction, in insertion order.
#[derive(Default)]
pub struct Obj(Map<String, Value>);

impl Obj {
    /// An empty object.
    pub fn new() -> Obj {
        Obj::default()
    }

    /// Adds `key` always.
    pub fn put(mut self, key: &str, v: impl Into<Value>) -> Obj {
        self.0.insert(key.to_string(), v.into());
        self
    }

    /// Adds a number unless it is 0.
    pub fn num<N: Into<Value> + PartialEq + Default>(self, key: &str, v: N) -> Obj {
        if v == N::default() {
            self
        } else {
            self.put(key, v)
        }
    }

    /// Adds a bool unless it is false.
    pub fn flag(self, key: &str, v: bool) -> Obj {
        if v {
            self.put(key, v)
        } else {
            self
        }
    }

    /// Adds a string unless it is empty.
    pub fn text(self, key: &str, v: &str) -> Obj {
        if v.is_empty() {
            self
        } else {
            self.put(key, v)
        }
    }

    /// Adds bytes (base64) unless they are empty.
    pub fn bytes(self, key: &str, v: &[u8]) -> Obj {
        if v.is_empty() {
            self
        } else {
            self.put(key, base64::engine::general_purpose::STANDARD.encode(v))
        }
    }

    /// Adds a nested object if there is one.
    pub fn obj(self, key: &str, v: Option<Obj>) -> Obj {
        match v {
            Some(o) => self.put(key, o.0),
            None => self,
        }
    }

    /// Adds a list unless it is empty.
    pub fn list(self, key: &str, items: Vec<Value>) -> Obj {
        if items.is_empty() {
            self
        } else {
            self.put(key, items)
        }
    }

    /// The object as a value.
    pub fn value(self) -> Value {
        Value::Object(self.0)
    }
}

/// A `ResponseHeader`.
pub fn header(h: &ResponseHeader) -> Obj {
    Obj::new()
        .num("cluster_id", h.cluster_id)
        .num("member_id", h.member_id)
        .num("revision", h.revision)
        .num("raft_term", h.raft_term)
}

/// An optional header, as a nested object.
pub fn header_of(h: &Option<ResponseHeader>) -> Option<Obj> {
    h.as_ref().map(header)
}

/// A `mvccpb.KeyValue`.
pub fn kv(kv: &KeyValue) -> Obj {
    Obj::new()
        .bytes("key", &kv.key)
        .num("create_revision", kv.create_revision)
        .num("mod_revision", kv.mod_revision)
        .num("version", kv.version)
        .bytes("value", &kv.value)
        .num("lease", kv.lease)
}

/// A list of key-values.
pub fn kvs(list: &[KeyValue]) -> Vec<Value> {
    list.iter().map(|k| kv(k).value()).collect()
}

/// A `mvccpb.Event` (PUT is type 0, so left out).
pub fn event(e: &Event) -> Obj {
    Obj::new()
        .num("type", e.r#type)
        .obj("kv", e.kv.as_ref().map(kv))
        .obj("prev_kv", e.prev_kv.as_ref().map(kv))
}

/// A txn's `ResponseOp`: Go names the oneof wrapper `Response` and its
/// variants by their Go type names.
pub fn response_op(op: &ResponseOp) -> Value {
    let inner = match &op.response {
        Some(response_op::Response::ResponseRange(r)) => {
            Obj::new().obj("ResponseRange", Some(range(r)))
        }
        Some(response_op::Response::ResponsePut(r)) => Obj::new().obj("ResponsePut", Some(put(r))),
        Some(response_op::Response::ResponseDeleteRange(r)) => {
            Obj::new().obj("ResponseDeleteRange", Some(delete_range(r)))
        }
        Some(response_op::Response::ResponseTxn(r)) => Obj::new().obj("ResponseTxn", Some(txn(r))),
        None => return Obj::new().value(),
    };
    Obj::new().obj("Response", Some(inner)).value()
}

/// A `RangeResponse`.
pub fn range(r: &api::etcdserverpb::RangeResponse) -> Obj {
    Obj::new()
        .obj("header", header_of(&r.header))
        .list("kvs", kvs(&r.kvs))
        .flag("more", r.more)
        .num("count", r.count)
}

/// A `PutResponse`.
pub fn put(r: &api::etcdserverpb::PutResponse) -> Obj {
    Obj::new()
        .obj("header", header_of(&r.header))
        .obj("prev_kv", r.prev_kv.as_ref().map(kv))
}

/// A `DeleteRangeResponse`.
pub fn delete_range(r: &api::etcdserverpb::DeleteRangeResponse) -> Obj {
    Obj::new()
        .obj("header", header_of(&r.header))
        .num("deleted", r.deleted)
        .list("prev_kvs", kvs(&r.prev_kvs))
}

/// A `TxnResponse`.
pub fn txn(r: &api::etcdserverpb::TxnResponse) -> Obj {
    Obj::new()
        .obj("header", header_of(&r.header))
        .flag("succeeded", r.succeeded)
        .list("responses", r.responses.iter().map(response_op).collect())
}

/// Standard base64, as Go encodes `[]byte`.
pub fn base64(b: &[u8]) -> String {
    base64::engine::general_purpose::STANDARD.encode(b)
}

/// A `Member` (gogo json names: `ID`, `name`, `peerURLs`, `clientURLs`,
/// `isLearner`).
pub fn member(m: &api::etcdserverpb::Member) -> Obj {
    let urls = |u: &[String]| u.iter().map(|s| Value::from(s.as_str())).collect();
    Obj::new()
        .num("ID", m.id)
        .text("name", &m.name)
        .list("peerURLs", urls(&m.peer_ur_ls))
        .list("clientURLs", urls(&m.client_ur_ls))
        .flag("isLearner", m.is_learner)
}

/// A `StatusResponse` (camelCase json names).
pub fn status(s: &api::etcdserverpb::StatusResponse) -> Obj {
    Obj::new()
        .obj("header", header_of(&s.header))
        .text("version", &s.version)
        .num("dbSize", s.db_size)
        .num("leader", s.leader)
        .num("raftIndex", s.raft_index)
        .num("raftTerm", s.raft_term)
        .num("raftAppliedIndex", s.raft_applied_index)
        .list(
            "errors",
            s.errors.iter().map(|e| Value::from(e.as_str())).collect(),
        )
        .num("dbSizeInUse", s.db_size_in_use)
        .flag("isLearner", s.is_learner)
}

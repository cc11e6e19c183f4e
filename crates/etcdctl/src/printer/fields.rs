//! The `-w fields` format: one `"Name" : value` line per field, strings
//! quoted as Go's `%q` quotes them.

use api::etcdserverpb::{
    response_op, DeleteRangeResponse, MemberListResponse, PutResponse, RangeResponse,
    ResponseHeader, TxnResponse, WatchResponse,
};
use api::mvccpb::KeyValue;

use super::EndpointStatus;

/// Bytes quoted as Go's `%q` quotes a string: `"`, `\` and control
/// characters escaped, invalid UTF-8 as `\xNN`.
pub fn go_quote(b: &[u8]) -> String {
    let mut s = String::from("\"");
    for chunk in b.utf8_chunks() {
        for c in chunk.valid().chars() {
            match c {
                '"' => s += "\\\"",
                '\\' => s += "\\\\",
                '\n' => s += "\\n",
                '\t' => s += "\\t",
                '\r' => s += "\\r",
                '\u{7}' => s += "\\a",
                '\u{8}' => s += "\\b",
                '\u{c}' => s += "\\f",
                '\u{b}' => s += "\\v",
                c if (c as u32) < 0x20 || c as u32 == 0x7f => s += &format!("\\x{:02x}", c as u32),
                c if c.is_control() => s += &format!("\\u{:04x}", c as u32),
                c => s.push(c),
            }
        }
        for x in chunk.invalid() {
            s += &format!("\\x{x:02x}");
        }
    }
    s.push('"');
    s
}

/// The four header lines (zeros for a missing header).
pub fn header(h: &Option<ResponseHeader>) -> String {
    let h = h.unwrap_or_default();
    format!(
        "\"ClusterID\" : {}\n\"MemberID\" : {}\n\"Revision\" : {}\n\"RaftTerm\" : {}\n",
        h.cluster_id, h.member_id, h.revision, h.raft_term
    )
}

/// A key-value, each name prefixed with `pfx` (`Prev` for previous ones).
fn kv(pfx: &str, kv: &KeyValue) -> String {
    format!(
        "\"{pfx}Key\" : {}\n\"{pfx}CreateRevision\" : {}\n\"{pfx}ModRevision\" : {}\n\"{pfx}Version\" : {}\n\"{pfx}Value\" : {}\n\"{pfx}Lease\" : {}\n",
        go_quote(&kv.key),
        kv.create_revision,
        kv.mod_revision,
        kv.version,
        go_quote(&kv.value),
        kv.lease
    )
}

/// A `get`.
pub fn range(r: &RangeResponse) -> String {
    let mut s = header(&r.header);
    for k in &r.kvs {
        s += &kv("", k);
    }
    s + &format!("\"More\" : {}\n\"Count\" : {}\n", r.more, r.count)
}

/// A `put`.
pub fn put(r: &PutResponse) -> String {
    let mut s = header(&r.header);
    if let Some(p) = &r.prev_kv {
        s += &kv("Prev", p);
    }
    s
}

/// A `del`.
pub fn delete_range(r: &DeleteRangeResponse) -> String {
    let mut s = header(&r.header) + &format!("\"Deleted\" : {}\n", r.deleted);
    for p in &r.prev_kvs {
        s += &kv("Prev", p);
    }
    s
}

/// A `txn`: its header and outcome, then each response in turn.
pub fn txn(r: &TxnResponse) -> String {
    let mut s = header(&r.header) + &format!("\"Succeeded\" : {}\n", r.succeeded);
    for op in &r.responses {
        s += &match &op.response {
            Some(response_op::Response::ResponseRange(g)) => range(g),
            Some(response_op::Response::ResponsePut(p)) => put(p),
            Some(response_op::Response::ResponseDeleteRange(d)) => delete_range(d),
            Some(response_op::Response::ResponseTxn(t)) => txn(t),
            None => "\"Unknown\" : \"\"\n".to_string(),
        };
    }
    s
}

/// A watch response's events.
pub fn watch(r: &WatchResponse) -> String {
    let mut s = header(&r.header);
    for e in &r.events {
        s += &format!(
            "\"Type\" : {}\n",
            if e.r#type == 1 { "DELETE" } else { "PUT" }
        );
        if let Some(p) = &e.prev_kv {
            s += &kv("Prev", p);
        }
        s += &kv("", &e.kv.clone().unwrap_or_default());
    }
    s
}

/// `member list`: each member followed by a blank line.
pub fn member_list(r: &MemberListResponse) -> String {
    let mut s = header(&r.header);
    for m in &r.members {
        s += &format!(
            "\"ID\" : {}\n\"Name\" : {}\n",
            m.id,
            go_quote(m.name.as_bytes())
        );
        for u in &m.peer_ur_ls {
            s += &format!("\"PeerURL\" : {}\n", go_quote(u.as_bytes()));
        }
        for u in &m.client_ur_ls {
            s += &format!("\"ClientURL\" : {}\n", go_quote(u.as_bytes()));
        }
        s += &format!("\"IsLearner\" : {}\n\n", m.is_learner);
    }
    s
}

/// One endpoint of `endpoint status`, followed by a blank line.
pub fn endpoint_status(e: &EndpointStatus) -> String {
    let st = &e.status;
    header(&st.header)
        + &format!(
            "\"Version\" : {}\n\"DBSize\" : {}\n\"Leader\" : {}\n\"IsLearner\" : {}\n\"RaftIndex\" : {}\n\"RaftTerm\" : {}\n\"RaftAppliedIndex\" : {}\n\"Errors\" : [{}]\n\"Endpoint\" : {}\n\n",
            go_quote(st.version.as_bytes()),
            st.db_size,
            st.leader,
            st.is_learner,
            st.raft_index,
            st.raft_term,
            st.raft_applied_index,
            st.errors.join(" "),
            go_quote(e.endpoint.as_bytes())
        )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quotes_like_go() {
        assert_eq!(go_quote(b"foo"), "\"foo\"");
        assert_eq!(go_quote(b"a\"b\\c\n"), "\"a\\\"b\\\\c\\n\"");
        assert_eq!(go_quote(&[0x00, 0xff]), "\"\\x00\\xff\"");
    }
}

//! Every output format of etcdctl (`-w simple|json|fields|table|protobuf`)
//! for every response it prints. Commands hand a response to the method
//! for it; the method writes it to standard output (and, where etcdctl
//! does, standard error) in the chosen format, or refuses a format the
//! command does not have with etcdctl's error (exit 4).
//!
//! `simple` is in this file, the others in `json.rs`, `fields.rs` and
//! `table.rs`.

mod auth;
pub mod fields;
pub mod json;
pub use etcdutl::print::{human_bytes, table};

pub use auth::print_text;

use std::io::Write;

use api::etcdserverpb::{
    response_op, AlarmResponse, DeleteRangeResponse, LeaseGrantResponse, LeaseKeepAliveResponse,
    LeaseLeasesResponse, LeaseRevokeResponse, LeaseTimeToLiveResponse, Member, MemberAddResponse,
    MemberListResponse, MoveLeaderResponse, PutResponse, RangeResponse, ResponseHeader,
    StatusResponse, TxnResponse, WatchResponse,
};
use api::mvccpb::KeyValue;
use prost::Message;

use crate::error::{CtlError, EXIT_BAD_FEATURE};
use json::Obj;

/// An output format (`--write-out`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Format {
    /// Human-readable lines.
    Simple,
    /// Go `encoding/json` of the response.
    Json,
    /// `"Name" : value` lines.
    Fields,
    /// Bordered table (member list and endpoint commands only).
    Table,
    /// The response's protobuf encoding.
    Protobuf,
}

impl Format {
    fn name(self) -> &'static str {
        match self {
            Format::Simple => "simple",
            Format::Json => "json",
            Format::Fields => "fields",
            Format::Table => "table",
            Format::Protobuf => "protobuf",
        }
    }
}

/// The result of `endpoint health` for one endpoint.
pub struct Health {
    /// The endpoint, as given.
    pub endpoint: String,
    /// Whether it committed a proposal (or answered a read) in time.
    pub health: bool,
    /// How long it took (Go duration text).
    pub took: String,
    /// Why it is unhealthy; empty when healthy.
    pub error: String,
}

/// The result of `endpoint status` for one endpoint.
pub struct EndpointStatus {
    /// The endpoint, as given.
    pub endpoint: String,
    /// Its answer.
    pub status: StatusResponse,
}

/// The result of `endpoint hashkv` for one endpoint.
pub struct EndpointHash {
    /// The endpoint, as given.
    pub endpoint: String,
    /// Its answer.
    pub hash: api::etcdserverpb::HashKvResponse,
}

/// Writes responses in one format.
pub struct Printer {
    /// The format.
    pub format: Format,
    /// `--hex`: keys and values as `\xNN` escapes in simple output.
    hex: bool,
    /// `--print-value-only` (simple output of get, watch and txn).
    pub value_only: bool,
}

/// Writes `text` (keys and values as raw bytes, like etcdctl) to
/// standard output.
fn out(text: impl AsRef<[u8]>) {
    let mut o = std::io::stdout().lock();
    let _ = o.write_all(text.as_ref());
    let _ = o.flush();
}

fn json_line(v: serde_json::Value) {
    out(format!("{v}\n"));
}

/// `ab` -> `\x61\x62`, as `--hex` prints bytes.
fn hex_escaped(b: &[u8]) -> String {
    b.iter().map(|x| format!("\\x{x:02x}")).collect()
}

/// A member's id as etcd prints it (`types.ID`): lowercase hex.
pub fn id_hex(id: u64) -> String {
    format!("{id:x}")
}

/// Members as etcdctl's JSON shows them.
fn members_json(members: &[Member]) -> Vec<serde_json::Value> {
    members.iter().map(|m| json::member(m).value()).collect()
}

/// The JSON of a member change's response: header and members.
pub fn members_response(
    header: &Option<api::etcdserverpb::ResponseHeader>,
    members: &[Member],
) -> serde_json::Value {
    Obj::new()
        .obj("header", json::header_of(header))
        .list("members", members_json(members))
        .value()
}

impl Printer {
    /// A printer for `format`; `hex` is `--hex`.
    pub fn new(format: Format, hex: bool) -> Printer {
        Printer {
            format,
            hex,
            value_only: false,
        }
    }

    fn unsupported(&self) -> CtlError {
        CtlError::new(
            EXIT_BAD_FEATURE,
            format!("{} not supported as output format", self.format.name()),
        )
    }

    /// Formats that print the protobuf message itself.
    fn proto(&self, m: &impl Message) {
        let mut o = std::io::stdout().lock();
        let _ = o.write_all(&m.encode_to_vec());
        let _ = o.flush();
    }

    /// Prints `r` in a format of a command without a table: simple, json
    /// and fields made on demand, protobuf as the message itself.
    fn no_table<M: Message>(
        &self,
        r: &M,
        simple: impl FnOnce() -> Vec<u8>,
        json: impl FnOnce() -> serde_json::Value,
        fields: impl FnOnce() -> String,
    ) -> Result<(), CtlError> {
        match self.format {
            Format::Simple => out(simple()),
            Format::Json => json_line(json()),
            Format::Fields => out(fields()),
            Format::Protobuf => self.proto(r),
            Format::Table => return Err(self.unsupported()),
        }
        Ok(())
    }

    /// A key-value's lines: the key (unless `--print-value-only`), then
    /// the value; raw bytes, or `\xNN` escapes with `--hex`.
    fn kv_text(&self, kv: &KeyValue) -> Vec<u8> {
        let (k, v) = if self.hex {
            (
                hex_escaped(&kv.key).into_bytes(),
                hex_escaped(&kv.value).into_bytes(),
            )
        } else {
            (kv.key.clone(), kv.value.clone())
        };
        let mut s = Vec::with_capacity(k.len() + v.len() + 2);
        if !self.value_only {
            s.extend_from_slice(&k);
            s.push(b'\n');
        }
        s.extend_from_slice(&v);
        s.push(b'\n');
        s
    }

    /// The response of `put`.
    pub fn put(&self, r: &PutResponse) -> Result<(), CtlError> {
        self.no_table(
            r,
            || self.put_simple(r),
            || json::put(r).value(),
            || fields::put(r),
        )
    }

    fn put_simple(&self, r: &PutResponse) -> Vec<u8> {
        let mut s = b"OK\n".to_vec();
        if let Some(kv) = &r.prev_kv {
            s.extend(self.kv_text(kv));
        }
        s
    }

    /// The response of `get`.
    pub fn get(&self, r: &RangeResponse) -> Result<(), CtlError> {
        self.no_table(
            r,
            || self.get_simple(r),
            || json::range(r).value(),
            || fields::range(r),
        )
    }

    /// One chunk of a streamed `get` in the simple format: its kvs, as
    /// [`Printer::get`] prints them.
    pub fn get_chunk(&self, kvs: &[KeyValue]) {
        out(kvs
            .iter()
            .flat_map(|kv| self.kv_text(kv))
            .collect::<Vec<u8>>());
    }

    fn get_simple(&self, r: &RangeResponse) -> Vec<u8> {
        r.kvs.iter().flat_map(|kv| self.kv_text(kv)).collect()
    }

    /// The response of `del`.
    pub fn del(&self, r: &DeleteRangeResponse) -> Result<(), CtlError> {
        self.no_table(
            r,
            || self.del_simple(r),
            || json::delete_range(r).value(),
            || fields::delete_range(r),
        )
    }

    fn del_simple(&self, r: &DeleteRangeResponse) -> Vec<u8> {
        let mut s = format!("{}\n", r.deleted).into_bytes();
        for kv in &r.prev_kvs {
            s.extend(self.kv_text(kv));
        }
        s
    }

    /// The response of `txn`.
    pub fn txn(&self, r: &TxnResponse) -> Result<(), CtlError> {
        self.no_table(
            r,
            || self.txn_simple(r),
            || json::txn(r).value(),
            || fields::txn(r),
        )
    }

    fn txn_simple(&self, r: &TxnResponse) -> Vec<u8> {
        let mut s = if r.succeeded {
            b"SUCCESS\n".to_vec()
        } else {
            b"FAILURE\n".to_vec()
        };
        for op in &r.responses {
            s.push(b'\n');
            s.extend(match &op.response {
                Some(response_op::Response::ResponseRange(g)) => self.get_simple(g),
                Some(response_op::Response::ResponsePut(p)) => self.put_simple(p),
                Some(response_op::Response::ResponseDeleteRange(d)) => self.del_simple(d),
                Some(response_op::Response::ResponseTxn(t)) => self.txn_simple(t),
                None => b"unexpected response\n".to_vec(),
            });
        }
        s
    }

    /// `compacted revision N`, whatever the format (as etcdctl prints it).
    pub fn compact(&self, rev: i64) {
        out(format!("compacted revision {rev}\n"));
    }

    /// `Leadership transferred from <leader> to <target>`.
    pub fn move_leader(
        &self,
        leader: u64,
        target: u64,
        r: &MoveLeaderResponse,
    ) -> Result<(), CtlError> {
        match self.format {
            Format::Simple => out(format!(
                "Leadership transferred from {} to {}\n",
                id_hex(leader),
                id_hex(target)
            )),
            Format::Json => json_line(Obj::new().obj("header", json::header_of(&r.header)).value()),
            Format::Protobuf => self.proto(r),
            Format::Fields | Format::Table => return Err(self.unsupported()),
        }
        Ok(())
    }

    /// One watch response: its events (and, in json, the whole response,
    /// as clientv3 hands it over).
    pub fn watch(&self, r: &WatchResponse) -> Result<(), CtlError> {
        match self.format {
            Format::Simple => {
                let mut s = Vec::new();
                for e in &r.events {
                    s.extend_from_slice(if e.r#type == 1 { b"DELETE\n" } else { b"PUT\n" });
                    if let Some(p) = &e.prev_kv {
                        s.extend(self.kv_text(p));
                    }
                    s.extend(self.kv_text(&e.kv.clone().unwrap_or_default()));
                }
                out(s);
            }
            Format::Json => json_line(
                Obj::new()
                    .put(
                        "Header",
                        json::header(&r.header.unwrap_or_default()).value(),
                    )
                    .put(
                        "Events",
                        if r.events.is_empty() {
                            serde_json::Value::Null
                        } else {
                            r.events.iter().map(|e| json::event(e).value()).collect()
                        },
                    )
                    .put("CompactRevision", r.compact_revision)
                    .put("Canceled", r.canceled)
                    .put("Created", r.created)
                    .value(),
            ),
            Format::Fields => out(fields::watch(r)),
            Format::Protobuf => self.proto(r),
            Format::Table => return Err(self.unsupported()),
        }
        Ok(())
    }

    /// `lease <id> granted with TTL(Ns)`.
    pub fn grant(&self, r: &LeaseGrantResponse) -> Result<(), CtlError> {
        match self.format {
            Format::Simple => out(format!(
                "lease {:016x} granted with TTL({}s)\n",
                r.id, r.ttl
            )),
            Format::Json => json_line(
                flat_header(&r.header)
                    .put("ID", r.id)
                    .put("TTL", r.ttl)
                    .put("Error", r.error.as_str())
                    .value(),
            ),
            Format::Fields => out(format!(
                "{}\"ID\" : {}\n\"TTL\" : {}\n",
                fields::header(&r.header),
                r.id,
                r.ttl
            )),
            Format::Protobuf => self.proto(&r.header.unwrap_or_default()),
            Format::Table => return Err(self.unsupported()),
        }
        Ok(())
    }

    /// `lease <id> revoked`.
    pub fn revoke(&self, id: i64, r: &LeaseRevokeResponse) -> Result<(), CtlError> {
        match self.format {
            Format::Simple => out(format!("lease {id:016x} revoked\n")),
            Format::Json => json_line(Obj::new().obj("header", json::header_of(&r.header)).value()),
            Format::Fields => out(fields::header(&r.header)),
            Format::Protobuf | Format::Table => return Err(self.unsupported()),
        }
        Ok(())
    }

    /// `lease <id> keepalived with TTL(N)`.
    pub fn keep_alive(&self, r: &LeaseKeepAliveResponse) -> Result<(), CtlError> {
        match self.format {
            Format::Simple => out(format!(
                "lease {:016x} keepalived with TTL({})\n",
                r.id, r.ttl
            )),
            Format::Json => json_line(
                flat_header(&r.header)
                    .put("ID", r.id)
                    .put("TTL", r.ttl)
                    .value(),
            ),
            Format::Fields => out(format!(
                "{}\"ID\" : {}\n\"TTL\" : {}\n",
                fields::header(&r.header),
                r.id,
                r.ttl
            )),
            Format::Protobuf => self.proto(&r.header.unwrap_or_default()),
            Format::Table => return Err(self.unsupported()),
        }
        Ok(())
    }

    /// `lease timetolive`.
    pub fn time_to_live(&self, r: &LeaseTimeToLiveResponse, keys: bool) -> Result<(), CtlError> {
        match self.format {
            Format::Simple => {
                if r.granted_ttl == 0 && r.ttl == -1 {
                    out(format!("lease {:016x} already expired\n", r.id));
                    return Ok(());
                }
                let mut s = format!(
                    "lease {:016x} granted with TTL({}s), remaining({}s)",
                    r.id, r.granted_ttl, r.ttl
                );
                if keys {
                    let names: Vec<String> = r
                        .keys
                        .iter()
                        .map(|k| String::from_utf8_lossy(k).into_owned())
                        .collect();
                    s += &format!(", attached keys([{}])", names.join(" "));
                }
                out(format!("{s}\n"));
            }
            Format::Json => {
                let keys: serde_json::Value = if r.keys.is_empty() {
                    serde_json::Value::Null
                } else {
                    r.keys
                        .iter()
                        .map(|k| serde_json::Value::from(json::base64(k)))
                        .collect()
                };
                json_line(
                    flat_header(&r.header)
                        .put("id", r.id)
                        .put("ttl", r.ttl)
                        .put("granted-ttl", r.granted_ttl)
                        .put("keys", keys)
                        .value(),
                )
            }
            Format::Fields => {
                let mut s = format!(
                    "{}\"ID\" : {}\n\"TTL\" : {}\n\"GrantedTTL\" : {}\n",
                    fields::header(&r.header),
                    r.id,
                    r.ttl,
                    r.granted_ttl
                );
                for k in &r.keys {
                    s += &format!("\"Key\" : {}\n", fields::go_quote(k));
                }
                out(s);
            }
            Format::Protobuf => self.proto(&r.header.unwrap_or_default()),
            Format::Table => return Err(self.unsupported()),
        }
        Ok(())
    }

    /// `lease list`.
    pub fn leases(&self, r: &LeaseLeasesResponse) -> Result<(), CtlError> {
        match self.format {
            Format::Simple => {
                let mut s = format!("found {} leases\n", r.leases.len());
                for l in &r.leases {
                    s += &format!("{:016x}\n", l.id);
                }
                out(s);
            }
            Format::Json => json_line(
                flat_header(&r.header)
                    .put(
                        "leases",
                        r.leases
                            .iter()
                            .map(|l| Obj::new().put("id", l.id).value())
                            .collect::<Vec<_>>(),
                    )
                    .value(),
            ),
            Format::Fields => {
                let mut s = fields::header(&r.header);
                for l in &r.leases {
                    s += &format!("\"ID\" : {}\n", l.id);
                }
                out(s);
            }
            Format::Protobuf => self.proto(&r.header.unwrap_or_default()),
            Format::Table => return Err(self.unsupported()),
        }
        Ok(())
    }

    /// `member list`.
    pub fn member_list(&self, r: &MemberListResponse) -> Result<(), CtlError> {
        let rows: Vec<Vec<String>> = r.members.iter().map(member_row).collect();
        match self.format {
            Format::Simple => out(rows.iter().map(|r| r.join(", ") + "\n").collect::<String>()),
            Format::Table => out(table::render(
                &[
                    "ID",
                    "STATUS",
                    "NAME",
                    "PEER ADDRS",
                    "CLIENT ADDRS",
                    "IS LEARNER",
                ],
                &rows,
            )),
            Format::Json => json_line(
                Obj::new()
                    .obj("header", json::header_of(&r.header))
                    .list("members", members_json(&r.members))
                    .value(),
            ),
            Format::Fields => out(fields::member_list(r)),
            Format::Protobuf => self.proto(r),
        }
        Ok(())
    }

    /// `member add`: etcdctl's lines in simple format (`simple` makes
    /// them), the response as JSON or protobuf; fields and table are not
    /// supported (exit 4), as in etcdctl, which has made the change by then.
    pub fn member_add(
        &self,
        r: &MemberAddResponse,
        simple: impl FnOnce() -> String,
    ) -> Result<(), CtlError> {
        self.member_changed(r, simple, || {
            let mut o = Obj::new().obj("header", json::header_of(&r.header));
            if let Some(m) = &r.member {
                o = o.obj("member", Some(json::member(m)));
            }
            o.list("members", members_json(&r.members)).value()
        })
    }

    /// `member remove`, `update` and `promote`: simple's one line, the
    /// response (header and members) as JSON or protobuf; fields and table
    /// are not supported (exit 4).
    pub fn member_changed<M: Message>(
        &self,
        r: &M,
        simple: impl FnOnce() -> String,
        json: impl FnOnce() -> serde_json::Value,
    ) -> Result<(), CtlError> {
        match self.format {
            Format::Simple => out(simple().into_bytes()),
            Format::Json => json_line(json()),
            Format::Protobuf => self.proto(r),
            Format::Fields | Format::Table => return Err(self.unsupported()),
        }
        Ok(())
    }

    /// `endpoint health`: simple lines go to standard error, as etcdctl
    /// prints them.
    pub fn endpoint_health(&self, hs: &[Health]) -> Result<(), CtlError> {
        match self.format {
            Format::Simple => {
                for h in hs {
                    if h.error.is_empty() {
                        eprintln!(
                            "{} is healthy: successfully committed proposal: took = {}",
                            h.endpoint, h.took
                        );
                    } else {
                        eprintln!(
                            "{} is unhealthy: failed to commit proposal: {}",
                            h.endpoint, h.error
                        );
                    }
                }
            }
            Format::Table => {
                let rows: Vec<Vec<String>> = hs
                    .iter()
                    .map(|h| {
                        vec![
                            h.endpoint.clone(),
                            h.health.to_string(),
                            h.took.clone(),
                            h.error.clone(),
                        ]
                    })
                    .collect();
                out(table::render(
                    &["ENDPOINT", "HEALTH", "TOOK", "ERROR"],
                    &rows,
                ));
            }
            Format::Json => json_line(
                hs.iter()
                    .map(|h| {
                        Obj::new()
                            .put("endpoint", h.endpoint.as_str())
                            .put("health", h.health)
                            .put("took", h.took.as_str())
                            .text("error", &h.error)
                            .value()
                    })
                    .collect(),
            ),
            Format::Fields => {
                let mut s = String::new();
                for h in hs {
                    s += &format!(
                        "\"Endpoint\" : {}\n\"Health\" : {}\n\"Took\" : {}\n\"Error\" : {}\n\n",
                        fields::go_quote(h.endpoint.as_bytes()),
                        h.health,
                        h.took,
                        h.error
                    );
                }
                out(s);
            }
            Format::Protobuf => return Err(self.unsupported()),
        }
        Ok(())
    }

    /// `endpoint status`.
    pub fn endpoint_status(&self, list: &[EndpointStatus]) -> Result<(), CtlError> {
        let rows: Vec<Vec<String>> = list.iter().map(status_row).collect();
        match self.format {
            Format::Simple => out(rows.iter().map(|r| r.join(", ") + "\n").collect::<String>()),
            Format::Table => out(table::render(
                &[
                    "ENDPOINT",
                    "ID",
                    "VERSION",
                    "DB SIZE",
                    "IS LEADER",
                    "IS LEARNER",
                    "RAFT TERM",
                    "RAFT INDEX",
                    "RAFT APPLIED INDEX",
                    "ERRORS",
                ],
                &rows,
            )),
            Format::Json => json_line(
                list.iter()
                    .map(|e| {
                        Obj::new()
                            .put("Endpoint", e.endpoint.as_str())
                            .put("Status", json::status(&e.status).value())
                            .value()
                    })
                    .collect(),
            ),
            Format::Fields => out(list.iter().map(fields::endpoint_status).collect::<String>()),
            Format::Protobuf => return Err(self.unsupported()),
        }
        Ok(())
    }

    /// `endpoint hashkv`.
    pub fn endpoint_hashkv(&self, list: &[EndpointHash]) -> Result<(), CtlError> {
        let rows: Vec<Vec<String>> = list
            .iter()
            .map(|h| vec![h.endpoint.clone(), h.hash.hash.to_string()])
            .collect();
        match self.format {
            Format::Simple => out(rows.iter().map(|r| r.join(", ") + "\n").collect::<String>()),
            Format::Table => out(table::render(&["ENDPOINT", "HASH"], &rows)),
            Format::Json => json_line(
                list.iter()
                    .map(|h| {
                        Obj::new()
                            .put("Endpoint", h.endpoint.as_str())
                            .put(
                                "HashKV",
                                Obj::new()
                                    .obj("header", json::header_of(&h.hash.header))
                                    .num("hash", h.hash.hash)
                                    .num("compact_revision", h.hash.compact_revision)
                                    .value(),
                            )
                            .value()
                    })
                    .collect(),
            ),
            Format::Fields => {
                let mut s = String::new();
                for h in list {
                    s += &format!(
                        "{}\"Endpoint\" : {}\n\"Hash\" : {}\n\n",
                        fields::header(&h.hash.header),
                        fields::go_quote(h.endpoint.as_bytes()),
                        h.hash.hash
                    );
                }
                out(s);
            }
            Format::Protobuf => return Err(self.unsupported()),
        }
        Ok(())
    }

    /// `alarm list` / `alarm disarm`.
    pub fn alarm(&self, r: &AlarmResponse) -> Result<(), CtlError> {
        match self.format {
            Format::Simple => {
                let mut s = String::new();
                // gogo's compact text: fields at their zero value left out.
                for a in &r.alarms {
                    if a.member_id != 0 {
                        s += &format!("memberID:{} ", a.member_id);
                    }
                    if a.alarm != 0 {
                        s += &format!("alarm:{} ", alarm_name(a.alarm));
                    }
                    s += "\n";
                }
                out(s);
            }
            Format::Json => json_line(
                Obj::new()
                    .obj("header", json::header_of(&r.header))
                    .list(
                        "alarms",
                        r.alarms
                            .iter()
                            .map(|a| {
                                Obj::new()
                                    .num("memberID", a.member_id)
                                    .num("alarm", a.alarm)
                                    .value()
                            })
                            .collect(),
                    )
                    .value(),
            ),
            Format::Fields => {
                let mut s = fields::header(&r.header);
                for a in &r.alarms {
                    s += &format!(
                        "\"MemberID\" : {}\n\"AlarmType\" : {}\n\n",
                        a.member_id,
                        alarm_name(a.alarm)
                    );
                }
                out(s);
            }
            Format::Protobuf => self.proto(r),
            Format::Table => return Err(self.unsupported()),
        }
        Ok(())
    }
}

/// Go's embedded `*pb.ResponseHeader`: its fields at the top level.
fn flat_header(h: &Option<ResponseHeader>) -> Obj {
    json::header_of(h).unwrap_or_default()
}

fn alarm_name(a: i32) -> &'static str {
    match a {
        1 => "NOSPACE",
        2 => "CORRUPT",
        _ => "NONE",
    }
}

/// A member as `member list` shows it: id, status, name, peer URLs,
/// client URLs, learner.
fn member_row(m: &Member) -> Vec<String> {
    vec![
        id_hex(m.id),
        if m.name.is_empty() {
            "unstarted"
        } else {
            "started"
        }
        .to_string(),
        m.name.clone(),
        m.peer_ur_ls.join(","),
        m.client_ur_ls.join(","),
        m.is_learner.to_string(),
    ]
}

/// An endpoint as `endpoint status` shows it.
fn status_row(e: &EndpointStatus) -> Vec<String> {
    let s = &e.status;
    let member = s.header.as_ref().map_or(0, |h| h.member_id);
    vec![
        e.endpoint.clone(),
        id_hex(member),
        s.version.clone(),
        human_bytes(s.db_size),
        (member == s.leader).to_string(),
        s.is_learner.to_string(),
        s.raft_term.to_string(),
        s.raft_index.to_string(),
        s.raft_applied_index.to_string(),
        s.errors.join(", "),
    ]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hex_escapes_every_byte() {
        assert_eq!(hex_escaped(b"k1"), "\\x6b\\x31");
    }
}

//! Differential test: one scripted sequence of KV requests (puts,
//! overwrites, deletes, every range variant, txns taking either branch,
//! nested txns, compaction, reads at old revisions, and invalid requests)
//! runs against the reference etcd (`ETCD_REFERENCE_BIN`, default
//! `/usr/bin/etcd`) and against the server under test (`ETCD_BIN`, default
//! ours). Every response, or error code and message, becomes a JSON value
//! with the ids that legitimately differ (cluster_id, member_id, raft_term,
//! lease ids) replaced by whether they were set; the two transcripts must be
//! equal step by step.
//!
//! With `ETCD_BIN=/usr/bin/etcd` this compares etcd with itself, which checks
//! the script and the normalisation.

use std::time::Duration;

use etcd_client::{
    Client, CompactionOptions, Compare, CompareOp, DeleteOptions, DeleteResponse, GetOptions,
    GetResponse, KeyValue, PutOptions, PutResponse, ResponseHeader, SortOrder, SortTarget, Txn,
    TxnOp, TxnOpResponse, TxnResponse,
};
use etcd_rs_tests::bins::reference_etcd_bin;
use etcd_rs_tests::{within, TestCluster};
use serde_json::{json, Value};

const LIMIT: Duration = Duration::from_secs(120);
const FLAGS: &[&str] = &["--max-txn-ops", "8", "--max-request-bytes", "8192"];

/// An id that differs between servers: only whether it is set is compared.
fn id(v: u64) -> Value {
    if v == 0 {
        json!(0)
    } else {
        json!("<set>")
    }
}

fn header(h: Option<&ResponseHeader>) -> Value {
    match h {
        None => Value::Null,
        Some(h) => json!({
            "cluster_id": id(h.cluster_id()),
            "member_id": id(h.member_id()),
            "revision": h.revision(),
            "raft_term": id(h.raft_term()),
        }),
    }
}

/// Bytes as a string if they are UTF-8, else as `hex:...`, so nothing is lost.
fn bytes(b: &[u8]) -> Value {
    match std::str::from_utf8(b) {
        Ok(s) => json!(s),
        Err(_) => json!(format!(
            "hex:{}",
            b.iter().map(|x| format!("{x:02x}")).collect::<String>()
        )),
    }
}

fn kv(kv: &KeyValue) -> Value {
    json!({
        "key": bytes(kv.key()),
        "value": bytes(kv.value()),
        "create_revision": kv.create_revision(),
        "mod_revision": kv.mod_revision(),
        "version": kv.version(),
        "lease": id(kv.lease() as u64),
    })
}

fn get(r: &GetResponse) -> Value {
    json!({
        "header": header(r.header()),
        "kvs": r.kvs().iter().map(kv).collect::<Vec<_>>(),
        "more": r.more(),
        "count": r.count(),
    })
}

fn put(r: &PutResponse) -> Value {
    json!({"header": header(r.header()), "prev_kv": r.prev_key().map(kv)})
}

fn delete(r: &DeleteResponse) -> Value {
    json!({
        "header": header(r.header()),
        "deleted": r.deleted(),
        "prev_kvs": r.prev_kvs().iter().map(kv).collect::<Vec<_>>(),
    })
}

fn txn(r: &TxnResponse) -> Value {
    let responses: Vec<Value> = r
        .op_responses()
        .iter()
        .map(|op| match op {
            TxnOpResponse::Put(p) => json!({"put": put(p)}),
            TxnOpResponse::Get(g) => json!({"range": get(g)}),
            TxnOpResponse::Delete(d) => json!({"delete_range": delete(d)}),
            TxnOpResponse::Txn(t) => json!({"txn": txn(t)}),
        })
        .collect();
    json!({"header": header(r.header()), "succeeded": r.succeeded(), "responses": responses})
}

/// A client and the transcript of everything it was answered.
struct Session {
    client: Client,
    steps: Vec<(String, Value)>,
}

impl Session {
    fn record<T>(
        &mut self,
        label: &str,
        result: Result<T, etcd_client::Error>,
        f: fn(&T) -> Value,
    ) {
        let v = match result {
            Ok(resp) => f(&resp),
            Err(etcd_client::Error::GRpcStatus(s)) => {
                json!({"error": {"code": format!("{:?}", s.code()), "message": s.message()}})
            }
            Err(other) => panic!("step {label:?}: not a gRPC answer: {other}"),
        };
        self.steps.push((label.to_string(), v));
    }

    async fn put(
        &mut self,
        label: &str,
        k: impl Into<Vec<u8>>,
        v: impl Into<Vec<u8>>,
        o: Option<PutOptions>,
    ) {
        let r = self.client.put(k, v, o).await;
        self.record(label, r, put);
    }

    async fn get(&mut self, label: &str, k: &str, o: Option<GetOptions>) {
        let r = self.client.get(k, o).await;
        self.record(label, r, get);
    }

    async fn delete(&mut self, label: &str, k: &str, o: Option<DeleteOptions>) {
        let r = self.client.delete(k, o).await;
        self.record(label, r, delete);
    }

    async fn txn(&mut self, label: &str, t: Txn) {
        let r = self.client.txn(t).await;
        self.record(label, r, txn);
    }

    async fn compact(&mut self, label: &str, rev: i64, o: Option<CompactionOptions>) {
        let r = self.client.compact(rev, o).await;
        self.record(label, r, |r| json!({"header": header(r.header())}));
    }

    async fn lease_grant(&mut self, label: &str, ttl: i64) -> i64 {
        let r = self.client.lease_grant(ttl, None).await;
        let lease = r.as_ref().map_or(0, |r| r.id());
        self.record(
            label,
            r,
            |r| json!({"header": header(r.header()), "id": id(r.id() as u64), "ttl": r.ttl()}),
        );
        lease
    }
}

/// The scripted session. Comments give the revision each write creates.
async fn script(s: &mut Session) {
    let all = || GetOptions::new().with_all_keys();
    let sorted = |t, o| GetOptions::new().with_all_keys().with_sort(t, o);

    s.get("get on an empty store", "a", None).await;
    s.put("put a", "a", "1", None).await; // 2
    s.put("put b", "b", "2", None).await; // 3
    s.put("put c", "c", "3", None).await; // 4
    s.put(
        "overwrite a with prev_kv",
        "a",
        "11",
        Some(PutOptions::new().with_prev_key()),
    )
    .await; // 5
    s.put("put d/1", "d/1", "x", None).await; // 6
    s.put("put d/2", "d/2", "y", None).await; // 7
    s.put("put d/3", "d/3", "z", None).await; // 8
    s.put("put an empty value", "e", "", None).await; // 9
    s.put("overwrite c", "c", "33", None).await; // 10
    s.put(
        "binary key and value",
        b"bin\x01\xff".to_vec(),
        b"\x00\xfe\xff".to_vec(),
        None,
    )
    .await; // 11

    s.get("get a", "a", None).await;
    s.get("get missing", "zzz", None).await;
    s.get("range [a, c)", "a", Some(GetOptions::new().with_range("c")))
        .await;
    s.get(
        "range end before start",
        "c",
        Some(GetOptions::new().with_range("a")),
    )
    .await;
    s.get("prefix d/", "d/", Some(GetOptions::new().with_prefix()))
        .await;
    s.get("from key c", "c", Some(GetOptions::new().with_from_key()))
        .await;
    s.get("all keys", "", Some(all())).await;
    s.get("limit 2", "", Some(all().with_limit(2))).await;
    s.get("limit equal to count", "", Some(all().with_limit(8)))
        .await;
    s.get(
        "sort key descend",
        "",
        Some(sorted(SortTarget::Key, SortOrder::Descend)),
    )
    .await;
    s.get(
        "sort create descend",
        "",
        Some(sorted(SortTarget::Create, SortOrder::Descend)),
    )
    .await;
    s.get(
        "sort mod ascend",
        "",
        Some(sorted(SortTarget::Mod, SortOrder::Ascend)),
    )
    .await;
    s.get(
        "sort mod descend limit 3",
        "",
        Some(sorted(SortTarget::Mod, SortOrder::Descend).with_limit(3)),
    )
    .await;
    s.get(
        "sort value ascend",
        "",
        Some(sorted(SortTarget::Value, SortOrder::Ascend)),
    )
    .await;
    s.get(
        "sort version descend",
        "",
        Some(sorted(SortTarget::Version, SortOrder::Descend)),
    )
    .await;
    s.get(
        "sort none descend",
        "",
        Some(sorted(SortTarget::Key, SortOrder::None)),
    )
    .await;
    s.get(
        "keys only",
        "d/",
        Some(GetOptions::new().with_prefix().with_keys_only()),
    )
    .await;
    s.get("count only", "", Some(all().with_count_only())).await;
    s.get(
        "count only with limit",
        "",
        Some(all().with_count_only().with_limit(1)),
    )
    .await;
    s.get(
        "serializable",
        "a",
        Some(GetOptions::new().with_serializable()),
    )
    .await;
    s.get(
        "min mod revision 7",
        "",
        Some(all().with_min_mod_revision(7)),
    )
    .await;
    s.get(
        "max mod revision 5",
        "",
        Some(all().with_max_mod_revision(5)),
    )
    .await;
    s.get(
        "min create revision 6",
        "",
        Some(all().with_min_create_revision(6)),
    )
    .await;
    s.get(
        "max create revision 4",
        "",
        Some(all().with_max_create_revision(4)),
    )
    .await;
    s.get(
        "filters with limit",
        "",
        Some(all().with_min_mod_revision(6).with_limit(2)),
    )
    .await;
    s.get("at revision 3", "", Some(all().with_revision(3)))
        .await;
    s.get(
        "a at revision 4",
        "a",
        Some(GetOptions::new().with_revision(4)),
    )
    .await;
    s.get("at revision 1", "", Some(all().with_revision(1)))
        .await;

    s.put(
        "ignore_value",
        "a",
        "",
        Some(PutOptions::new().with_ignore_value()),
    )
    .await; // 12
    s.put(
        "ignore_value on a missing key",
        "nope",
        "",
        Some(PutOptions::new().with_ignore_value()),
    )
    .await;
    s.put(
        "ignore_value with a value",
        "a",
        "x",
        Some(PutOptions::new().with_ignore_value()),
    )
    .await;
    let lease = s.lease_grant("lease grant", 600).await;
    s.put(
        "put with lease",
        "l",
        "1",
        Some(PutOptions::new().with_lease(lease)),
    )
    .await; // 13
    s.put(
        "ignore_lease",
        "l",
        "2",
        Some(PutOptions::new().with_ignore_lease().with_prev_key()),
    )
    .await; // 14
    s.put(
        "ignore_lease with a lease",
        "l",
        "3",
        Some(PutOptions::new().with_ignore_lease().with_lease(lease)),
    )
    .await;
    s.get("leased key", "l", None).await;
    s.put("detach lease", "l", "4", None).await; // 15

    s.delete(
        "delete b with prev_kv",
        "b",
        Some(DeleteOptions::new().with_prev_key()),
    )
    .await; // 16
    s.delete("delete missing", "b", None).await;
    s.delete(
        "delete prefix d/",
        "d/",
        Some(DeleteOptions::new().with_prefix().with_prev_key()),
    )
    .await; // 17
    s.get("after deletes", "", Some(all())).await;
    s.put("recreate b", "b", "again", None).await; // 18
    s.get(
        "b at revision 15",
        "b",
        Some(GetOptions::new().with_revision(15)),
    )
    .await;

    s.txn(
        "txn success",
        Txn::new()
            .when([
                Compare::value("a", CompareOp::Equal, "11"),
                Compare::version("b", CompareOp::Equal, 1),
                Compare::create_revision("c", CompareOp::Equal, 4),
                Compare::mod_revision("c", CompareOp::Greater, 4),
                Compare::version("missing", CompareOp::Less, 1),
            ])
            .and_then([
                TxnOp::put("t1", "1", None),
                TxnOp::put("t2", "2", Some(PutOptions::new().with_prev_key())),
                TxnOp::put("c", "333", Some(PutOptions::new().with_prev_key())),
                TxnOp::get("t", Some(GetOptions::new().with_prefix())),
                TxnOp::delete("e", Some(DeleteOptions::new().with_prev_key())),
            ])
            .or_else([TxnOp::put("f", "failed", None)]),
    )
    .await; // 19
    s.txn(
        "txn failure",
        Txn::new()
            .when([Compare::value("a", CompareOp::NotEqual, "11")])
            .and_then([TxnOp::put("f", "never", None)])
            .or_else([
                TxnOp::get("c", None),
                TxnOp::delete("t1", None),
                TxnOp::get("t1", None),
            ]),
    )
    .await; // 20
    s.txn(
        "txn read only",
        Txn::new().and_then([
            TxnOp::get("a", None),
            TxnOp::get("", Some(all().with_count_only())),
        ]),
    )
    .await;
    s.txn(
        "txn failure with no ops",
        Txn::new().when([Compare::value("a", CompareOp::Equal, "no")]),
    )
    .await;
    s.txn(
        "txn compare over a range",
        Txn::new()
            .when([Compare::version("a", CompareOp::Greater, 0).with_range("c")])
            .and_then([TxnOp::put("range", "ok", None)]),
    )
    .await; // 21
    s.txn(
        "txn compare over a prefix fails",
        Txn::new()
            .when([Compare::value("t", CompareOp::Equal, "1").with_prefix()])
            .and_then([TxnOp::put("never", "1", None)]),
    )
    .await;
    let inner = Txn::new()
        .when([Compare::value("n1", CompareOp::Equal, "outer")])
        .and_then([TxnOp::put("n2", "saw-outer-write", None)])
        .or_else([
            TxnOp::put("n2", "pre-txn-view", None),
            TxnOp::get("n1", None),
        ]);
    s.txn(
        "nested txn",
        Txn::new()
            .when([Compare::version("n1", CompareOp::Equal, 0)])
            .and_then([TxnOp::put("n1", "outer", None), TxnOp::txn(inner)]),
    )
    .await; // 22
    s.get("after txns", "", Some(all())).await;

    // Invalid requests.
    s.put("empty key put", "", "v", None).await;
    s.get("empty key range", "", None).await;
    s.delete("empty key delete", "", None).await;
    s.txn(
        "compare on an empty key",
        Txn::new().when([Compare::version("", CompareOp::Equal, 0)]),
    )
    .await;
    s.txn(
        "duplicate key in txn",
        Txn::new().and_then([TxnOp::put("x", "1", None), TxnOp::put("x", "2", None)]),
    )
    .await;
    s.txn(
        "put inside a deleted range in txn",
        Txn::new().and_then([
            TxnOp::delete("p", Some(DeleteOptions::new().with_prefix())),
            TxnOp::put("p1", "1", None),
        ]),
    )
    .await;
    let nine: Vec<TxnOp> = (0..9)
        .map(|i| TxnOp::put(format!("many/{i}"), "v", None))
        .collect();
    s.txn("too many ops", Txn::new().and_then(nine)).await;
    s.put("request too large", "big", "x".repeat(9000), None)
        .await;
    s.put(
        "unknown lease",
        "k",
        "v",
        Some(PutOptions::new().with_lease(0x77)),
    )
    .await;
    s.get(
        "future revision",
        "a",
        Some(GetOptions::new().with_revision(1000)),
    )
    .await;

    // Compaction.
    s.compact("compact 10", 10, None).await;
    s.get(
        "read below compaction",
        "a",
        Some(GetOptions::new().with_revision(9)),
    )
    .await;
    s.get("read at compaction", "", Some(all().with_revision(10)))
        .await;
    s.compact("compact again at 10", 10, None).await;
    s.compact("compact below", 5, None).await;
    s.compact("compact future", 1000, None).await;
    s.txn(
        "txn read below compaction",
        Txn::new().and_then([TxnOp::get("a", Some(GetOptions::new().with_revision(3)))]),
    )
    .await;
    s.compact(
        "physical compact 20",
        20,
        Some(CompactionOptions::new().with_physical()),
    )
    .await;
    s.get("all at 20", "", Some(all().with_revision(20))).await;
    s.get("read at 19", "a", Some(GetOptions::new().with_revision(19)))
        .await;
    s.put(
        "put after compaction",
        "a",
        "final",
        Some(PutOptions::new().with_prev_key()),
    )
    .await; // 23
    s.get("final state", "", Some(all())).await;
}

async fn transcript(c: &TestCluster) -> Vec<(String, Value)> {
    let client = Client::connect([c.endpoint()], None)
        .await
        .expect("cannot connect");
    let mut s = Session {
        client,
        steps: Vec::new(),
    };
    script(&mut s).await;
    s.steps
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kv_transcripts_match_reference_etcd() {
    within(LIMIT, async {
        let (reference, ours) = tokio::join!(
            TestCluster::builder(1)
                .bin(reference_etcd_bin())
                .flags(FLAGS)
                .start(),
            TestCluster::builder(1).flags(FLAGS).start(),
        );
        let (want, got) = tokio::join!(transcript(&reference), transcript(&ours));
        assert_eq!(want.len(), got.len(), "transcripts differ in length");
        let mut diffs = Vec::new();
        for (i, ((label, w), (_, g))) in want.iter().zip(&got).enumerate() {
            if w != g {
                diffs.push(format!(
                    "step {i} ({label}):\n  reference: {w}\n  ours:      {g}"
                ));
            }
        }
        assert!(
            diffs.is_empty(),
            "{} of {} steps differ from the reference etcd:\n{}",
            diffs.len(),
            want.len(),
            diffs.join("\n")
        );
        if std::env::var_os("ETCD_DIFF_DUMP").is_some() {
            for (label, v) in &want {
                println!("{label}: {v}");
            }
        }
    })
    .await
}

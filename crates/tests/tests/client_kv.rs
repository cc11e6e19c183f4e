//! The `etcd-client` crate (an independent async Rust client) against a
//! single member: every KV request option, transactions, compaction, and the
//! exact gRPC code and message of each invalid request, which must leave the
//! store untouched.
//!
//! Expected values were taken from real etcd; where 3.4 and 3.5 differ the
//! test follows 3.5 and says so.

use std::time::Duration;

use etcd_client::{
    Client, CompactionOptions, Compare, CompareOp, DeleteOptions, GetOptions, GetResponse,
    KeyValue, PutOptions, SortOrder, SortTarget, Txn, TxnOp, TxnOpResponse,
};
use etcd_rs_tests::{within, TestCluster};
use tonic::Code;

const LIMIT: Duration = Duration::from_secs(90);

async fn connect(c: &TestCluster) -> Client {
    Client::connect([c.endpoint()], None)
        .await
        .expect("cannot connect to the member")
}

/// The store's current revision, read from a response header.
async fn revision(client: &mut Client) -> i64 {
    let resp = client.get("any", None).await.expect("get");
    resp.header().expect("header").revision()
}

fn keys(resp: &GetResponse) -> Vec<&str> {
    resp.kvs()
        .iter()
        .map(|kv| kv.key_str().expect("utf-8 key"))
        .collect()
}

fn text(b: &[u8]) -> &str {
    std::str::from_utf8(b).expect("utf-8")
}

/// (key, value, create_revision, mod_revision, version, lease) of a kv.
fn fields(kv: &KeyValue) -> (&str, &str, i64, i64, i64, i64) {
    (
        text(kv.key()),
        text(kv.value()),
        kv.create_revision(),
        kv.mod_revision(),
        kv.version(),
        kv.lease(),
    )
}

/// Asserts that `result` is a gRPC error with exactly `code` and `message`.
#[track_caller]
fn expect_status<T: std::fmt::Debug>(
    result: Result<T, etcd_client::Error>,
    code: Code,
    message: &str,
) {
    match result {
        Err(etcd_client::Error::GRpcStatus(s)) => {
            assert_eq!(
                (s.code(), s.message()),
                (code, message),
                "wrong gRPC status: {s:?}"
            );
        }
        other => panic!("expected gRPC {code:?} {message:?}, got {other:?}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn range_options() {
    within(LIMIT, async {
        let c = TestCluster::start(1).await;
        let mut kv = connect(&c).await;
        for (k, v) in [
            ("a", "1"),     // rev 2
            ("b", "2"),     // rev 3
            ("c", "3"),     // rev 4
            ("d", "4"),     // rev 5
            ("b", "22"),    // rev 6
            ("foo/1", "x"), // rev 7
            ("foo/2", "y"), // rev 8
            ("fop", "z"),   // rev 9
        ] {
            kv.put(k, v, None).await.expect("put");
        }
        let all = || GetOptions::new().with_all_keys();

        let r = kv.get("b", None).await.unwrap();
        assert_eq!(r.header().unwrap().revision(), 9);
        assert!(r.header().unwrap().cluster_id() != 0 && r.header().unwrap().member_id() != 0);
        assert!(r.header().unwrap().raft_term() >= 1);
        assert_eq!((r.count(), r.more()), (1, false));
        assert_eq!(fields(&r.kvs()[0]), ("b", "22", 3, 6, 2, 0));

        let r = kv.get("nope", None).await.unwrap();
        assert_eq!((r.kvs().len(), r.count(), r.more()), (0, 0, false));

        // range_end is exclusive.
        let r = kv
            .get("a", Some(GetOptions::new().with_range("c")))
            .await
            .unwrap();
        assert_eq!((keys(&r), r.count()), (vec!["a", "b"], 2));
        let r = kv
            .get("foo/", Some(GetOptions::new().with_prefix()))
            .await
            .unwrap();
        assert_eq!(keys(&r), ["foo/1", "foo/2"]);
        // from-key: range_end "\0".
        let r = kv
            .get("d", Some(GetOptions::new().with_from_key()))
            .await
            .unwrap();
        assert_eq!(keys(&r), ["d", "foo/1", "foo/2", "fop"]);
        let r = kv
            .get("fo", Some(GetOptions::new().with_range(vec![0u8])))
            .await
            .unwrap();
        assert_eq!(keys(&r), ["foo/1", "foo/2", "fop"]);
        let r = kv.get("", Some(all())).await.unwrap();
        assert_eq!(r.count(), 7, "7 distinct keys");
        // An end before the start is an empty range, not an error.
        let r = kv
            .get("c", Some(GetOptions::new().with_range("a")))
            .await
            .unwrap();
        assert_eq!((r.kvs().len(), r.count()), (0, 0));

        // limit: `more` says whether keys were left out, `count` is the whole range.
        let r = kv.get("", Some(all().with_limit(3))).await.unwrap();
        assert_eq!(
            (keys(&r), r.count(), r.more()),
            (vec!["a", "b", "c"], 7, true)
        );
        let r = kv.get("", Some(all().with_limit(7))).await.unwrap();
        assert_eq!((r.kvs().len(), r.count(), r.more()), (7, 7, false));
        let r = kv.get("", Some(all().with_limit(100))).await.unwrap();
        assert_eq!((r.kvs().len(), r.more()), (7, false));

        // revision: the store as it was.
        let r = kv
            .get("b", Some(GetOptions::new().with_revision(5)))
            .await
            .unwrap();
        assert_eq!(
            r.header().unwrap().revision(),
            9,
            "the header has the current revision"
        );
        assert_eq!(fields(&r.kvs()[0]), ("b", "2", 3, 3, 1, 0));
        let r = kv.get("", Some(all().with_revision(4))).await.unwrap();
        assert_eq!((keys(&r), r.count()), (vec!["a", "b", "c"], 3));
        let r = kv
            .get("a", Some(GetOptions::new().with_revision(1)))
            .await
            .unwrap();
        assert_eq!(r.count(), 0);

        // sort: every target in both orders; ties keep key order.
        let sorted = |t: SortTarget, o: SortOrder| all().with_sort(t, o);
        let r = kv
            .get("", Some(sorted(SortTarget::Key, SortOrder::Descend)))
            .await
            .unwrap();
        assert_eq!(keys(&r), ["fop", "foo/2", "foo/1", "d", "c", "b", "a"]);
        let r = kv
            .get("", Some(sorted(SortTarget::Create, SortOrder::Descend)))
            .await
            .unwrap();
        assert_eq!(keys(&r), ["fop", "foo/2", "foo/1", "d", "c", "b", "a"]);
        let r = kv
            .get("", Some(sorted(SortTarget::Mod, SortOrder::Ascend)))
            .await
            .unwrap();
        assert_eq!(keys(&r), ["a", "c", "d", "b", "foo/1", "foo/2", "fop"]);
        let r = kv
            .get("", Some(sorted(SortTarget::Mod, SortOrder::Descend)))
            .await
            .unwrap();
        assert_eq!(keys(&r), ["fop", "foo/2", "foo/1", "b", "d", "c", "a"]);
        let r = kv
            .get("", Some(sorted(SortTarget::Value, SortOrder::Ascend)))
            .await
            .unwrap();
        assert_eq!(keys(&r), ["a", "b", "c", "d", "foo/1", "foo/2", "fop"]);
        let r = kv
            .get("", Some(sorted(SortTarget::Value, SortOrder::Descend)))
            .await
            .unwrap();
        assert_eq!(keys(&r), ["fop", "foo/2", "foo/1", "d", "c", "b", "a"]);
        let r = kv
            .get("", Some(sorted(SortTarget::Version, SortOrder::Descend)))
            .await
            .unwrap();
        assert_eq!(keys(&r)[0], "b", "b is the only key with version 2");
        // Sort first, then limit.
        let r = kv
            .get(
                "",
                Some(sorted(SortTarget::Mod, SortOrder::Descend).with_limit(2)),
            )
            .await
            .unwrap();
        assert_eq!(
            (keys(&r), r.count(), r.more()),
            (vec!["fop", "foo/2"], 7, true)
        );

        // serializable reads the local store.
        let r = kv
            .get("b", Some(GetOptions::new().with_serializable()))
            .await
            .unwrap();
        assert_eq!(fields(&r.kvs()[0]), ("b", "22", 3, 6, 2, 0));

        // keys_only: keys and metadata, no values.
        let r = kv
            .get(
                "foo/",
                Some(GetOptions::new().with_prefix().with_keys_only()),
            )
            .await
            .unwrap();
        assert_eq!(fields(&r.kvs()[0]), ("foo/1", "", 7, 7, 1, 0));
        assert_eq!(r.count(), 2);

        // count_only: no kvs, just the count.
        let r = kv.get("", Some(all().with_count_only())).await.unwrap();
        assert_eq!((r.kvs().len(), r.count(), r.more()), (0, 7, false));
        let r = kv
            .get("f", Some(GetOptions::new().with_prefix().with_count_only()))
            .await
            .unwrap();
        assert_eq!(r.count(), 3);

        // min/max mod/create revision filters. `count` is the size of the
        // range before filtering (as in etcd).
        let r = kv
            .get("", Some(all().with_min_mod_revision(6)))
            .await
            .unwrap();
        assert_eq!(keys(&r), ["b", "foo/1", "foo/2", "fop"]);
        assert_eq!(r.count(), 7);
        let r = kv
            .get("", Some(all().with_max_mod_revision(4)))
            .await
            .unwrap();
        assert_eq!(keys(&r), ["a", "c"]);
        let r = kv
            .get("", Some(all().with_min_create_revision(5)))
            .await
            .unwrap();
        assert_eq!(keys(&r), ["d", "foo/1", "foo/2", "fop"]);
        let r = kv
            .get("", Some(all().with_max_create_revision(3)))
            .await
            .unwrap();
        assert_eq!(keys(&r), ["a", "b"]);
        let r = kv
            .get(
                "",
                Some(all().with_min_mod_revision(3).with_max_mod_revision(7)),
            )
            .await
            .unwrap();
        assert_eq!(keys(&r), ["b", "c", "d", "foo/1"]);

        // None of the reads moved the revision.
        assert_eq!(revision(&mut kv).await, 9);
    })
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn put_options() {
    within(LIMIT, async {
        let c = TestCluster::start(1).await;
        let mut kv = connect(&c).await;

        let r = kv.put("k", "v1", None).await.unwrap();
        assert_eq!(r.header().unwrap().revision(), 2);
        assert!(r.prev_key().is_none());
        // prev_kv only when asked.
        let r = kv.put("k", "v2", None).await.unwrap();
        assert_eq!(r.header().unwrap().revision(), 3);
        assert!(r.prev_key().is_none());
        let r = kv
            .put("k", "v3", Some(PutOptions::new().with_prev_key()))
            .await
            .unwrap();
        assert_eq!(r.header().unwrap().revision(), 4);
        assert_eq!(fields(r.prev_key().unwrap()), ("k", "v2", 2, 3, 2, 0));
        let r = kv
            .put("new", "n", Some(PutOptions::new().with_prev_key()))
            .await
            .unwrap();
        assert!(r.prev_key().is_none(), "no previous kv for a new key");

        // ignore_value keeps the value but is still a write.
        kv.put("k", "", Some(PutOptions::new().with_ignore_value()))
            .await
            .unwrap();
        let r = kv.get("k", None).await.unwrap();
        assert_eq!(fields(&r.kvs()[0]), ("k", "v3", 2, 6, 4, 0));

        // ignore_lease keeps the key's lease (none here: attaching leases
        // needs the Lease service and is tested with it).
        kv.put("leased", "a", None).await.unwrap(); // rev 7
        kv.put("leased", "b", Some(PutOptions::new().with_ignore_lease()))
            .await
            .unwrap(); // rev 8
        let r = kv.get("leased", None).await.unwrap();
        assert_eq!(fields(&r.kvs()[0]), ("leased", "b", 7, 8, 2, 0));
        kv.put("leased", "c", None).await.unwrap(); // rev 9
        kv.put("leased", "", None).await.unwrap(); // rev 10
                                                   // ignore_value and ignore_lease together: touch the key only.
        kv.put("leased", "d", None).await.unwrap(); // rev 11
        kv.put(
            "leased",
            "",
            Some(PutOptions::new().with_ignore_value().with_ignore_lease()),
        )
        .await
        .unwrap(); // rev 12
        let r = kv.get("leased", None).await.unwrap();
        assert_eq!(fields(&r.kvs()[0]), ("leased", "d", 7, 12, 6, 0));

        // Invalid combinations.
        let before = revision(&mut kv).await;
        assert_eq!(before, 12);
        expect_status(
            kv.put("absent", "", Some(PutOptions::new().with_ignore_value()))
                .await,
            Code::InvalidArgument,
            "etcdserver: key not found",
        );
        expect_status(
            kv.put("absent", "x", Some(PutOptions::new().with_ignore_lease()))
                .await,
            Code::InvalidArgument,
            "etcdserver: key not found",
        );
        expect_status(
            kv.put("k", "x", Some(PutOptions::new().with_ignore_value()))
                .await,
            Code::InvalidArgument,
            "etcdserver: value is provided",
        );
        expect_status(
            kv.put(
                "k",
                "x",
                Some(PutOptions::new().with_ignore_lease().with_lease(0x1234)),
            )
            .await,
            Code::InvalidArgument,
            "etcdserver: lease is provided",
        );
        assert_eq!(
            revision(&mut kv).await,
            before,
            "rejected puts wrote nothing"
        );
    })
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn delete_range() {
    within(LIMIT, async {
        let c = TestCluster::start(1).await;
        let mut kv = connect(&c).await;
        for k in ["a", "b", "c", "d", "e", "p/1", "p/2"] {
            kv.put(k, k.to_uppercase(), None).await.unwrap(); // revs 2..=8
        }

        let r = kv.delete("a", None).await.unwrap();
        assert_eq!((r.deleted(), r.prev_kvs().len()), (1, 0));
        assert_eq!(r.header().unwrap().revision(), 9);
        // Deleting nothing is not a write: the revision stays.
        let r = kv.delete("a", None).await.unwrap();
        assert_eq!((r.deleted(), r.header().unwrap().revision()), (0, 9));

        let r = kv
            .delete(
                "b",
                Some(DeleteOptions::new().with_range("d").with_prev_key()),
            )
            .await
            .unwrap();
        assert_eq!(r.deleted(), 2);
        assert_eq!(
            r.header().unwrap().revision(),
            10,
            "one revision for the whole range"
        );
        let prev: Vec<_> = r.prev_kvs().iter().map(fields).collect();
        assert_eq!(prev, [("b", "B", 3, 3, 1, 0), ("c", "C", 4, 4, 1, 0)]);

        let r = kv
            .delete(
                "p/",
                Some(DeleteOptions::new().with_prefix().with_prev_key()),
            )
            .await
            .unwrap();
        assert_eq!(r.deleted(), 2);
        let prev: Vec<_> = r.prev_kvs().iter().map(|kv| text(kv.key())).collect();
        assert_eq!(prev, ["p/1", "p/2"]);

        let r = kv
            .delete("d", Some(DeleteOptions::new().with_from_key()))
            .await
            .unwrap();
        assert_eq!(r.deleted(), 2);
        assert_eq!(r.header().unwrap().revision(), 12);
        let r = kv
            .get("", Some(GetOptions::new().with_all_keys()))
            .await
            .unwrap();
        assert_eq!(r.count(), 0);

        // Deleted keys come back with a fresh create revision and version 1.
        kv.put("b", "again", None).await.unwrap(); // rev 13
        let r = kv.get("b", None).await.unwrap();
        assert_eq!(fields(&r.kvs()[0]), ("b", "again", 13, 13, 1, 0));
        // History is still readable before compaction.
        let r = kv
            .get("b", Some(GetOptions::new().with_revision(9)))
            .await
            .unwrap();
        assert_eq!(fields(&r.kvs()[0]), ("b", "B", 3, 3, 1, 0));
    })
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn txn_compares_and_branches() {
    within(LIMIT, async {
        let c = TestCluster::start(1).await;
        let mut kv = connect(&c).await;
        kv.put("a", "1", None).await.unwrap(); // rev 2
        kv.put("b", "2", None).await.unwrap(); // rev 3
        kv.put("b", "2", None).await.unwrap(); // rev 4: b version 2

        // Every compare target and operator, all true.
        let txn = Txn::new()
            .when([
                Compare::value("a", CompareOp::Equal, "1"),
                Compare::value("b", CompareOp::Greater, "1"),
                Compare::value("a", CompareOp::NotEqual, "x"),
                Compare::version("b", CompareOp::Equal, 2),
                Compare::version("a", CompareOp::Less, 2),
                Compare::create_revision("b", CompareOp::Equal, 3),
                Compare::mod_revision("b", CompareOp::Greater, 3),
                Compare::mod_revision("a", CompareOp::NotEqual, 3),
                Compare::lease("a", CompareOp::Equal, 0),
                // A missing key: version, create and mod revision are 0.
                Compare::version("zz", CompareOp::Equal, 0),
                Compare::mod_revision("zz", CompareOp::Less, 1),
            ])
            .and_then([
                TxnOp::put("x", "1", None),
                TxnOp::put("y", "2", Some(PutOptions::new().with_prev_key())),
                TxnOp::put("a", "11", Some(PutOptions::new().with_prev_key())),
                // Reads inside a txn see the txn's own writes.
                TxnOp::get("x", None),
            ])
            .or_else([TxnOp::put("failed", "1", None)]);
        let r = kv.txn(txn).await.unwrap();
        assert!(r.succeeded());
        assert_eq!(
            r.header().unwrap().revision(),
            5,
            "one revision for the txn"
        );
        let ops = r.op_responses();
        assert_eq!(ops.len(), 4);
        match &ops[2] {
            TxnOpResponse::Put(p) => {
                assert_eq!(fields(p.prev_key().unwrap()), ("a", "1", 2, 2, 1, 0))
            }
            other => panic!("expected a put response, got {other:?}"),
        }
        match &ops[3] {
            TxnOpResponse::Get(g) => assert_eq!(fields(&g.kvs()[0]), ("x", "1", 5, 5, 1, 0)),
            other => panic!("expected a range response, got {other:?}"),
        }
        // The three puts share one revision.
        let r = kv
            .get("", Some(GetOptions::new().with_all_keys()))
            .await
            .unwrap();
        let mods: Vec<(&str, i64)> = r
            .kvs()
            .iter()
            .map(|kv| (text(kv.key()), kv.mod_revision()))
            .collect();
        assert_eq!(mods, [("a", 5), ("b", 4), ("x", 5), ("y", 5)]);

        // One false compare: the failure branch runs.
        let txn = Txn::new()
            .when([
                Compare::value("a", CompareOp::Equal, "11"),
                Compare::version("b", CompareOp::Greater, 5),
            ])
            .and_then([TxnOp::put("never", "1", None)])
            .or_else([
                TxnOp::delete("x", Some(DeleteOptions::new().with_prev_key())),
                TxnOp::get("x", None),
            ]);
        let r = kv.txn(txn).await.unwrap();
        assert!(!r.succeeded());
        assert_eq!(r.header().unwrap().revision(), 6);
        let ops = r.op_responses();
        match (&ops[0], &ops[1]) {
            (TxnOpResponse::Delete(d), TxnOpResponse::Get(g)) => {
                assert_eq!(d.deleted(), 1);
                assert_eq!(fields(&d.prev_kvs()[0]), ("x", "1", 5, 5, 1, 0));
                assert_eq!(g.count(), 0, "the txn sees its own delete");
            }
            other => panic!("unexpected responses {other:?}"),
        }
        assert_eq!(kv.get("never", None).await.unwrap().count(), 0);

        // Compares over a range: every key in [a, c) must match.
        let txn = Txn::new()
            .when([Compare::version("a", CompareOp::Greater, 1).with_range("c")])
            .and_then([TxnOp::put("range-ok", "1", None)]);
        let r = kv.txn(txn).await.unwrap();
        assert!(r.succeeded(), "a and b both have version 2");
        let txn = Txn::new()
            .when([Compare::mod_revision("\0", CompareOp::Less, 6).with_range("\0")]) // all keys
            .and_then([TxnOp::put("never", "1", None)]);
        assert!(
            !kv.txn(txn).await.unwrap().succeeded(),
            "range-ok has mod revision 7"
        );
        let txn = Txn::new()
            .when([Compare::value("a", CompareOp::Equal, "11").with_prefix()])
            .and_then([TxnOp::put("prefix-ok", "1", None)]);
        assert!(
            kv.txn(txn).await.unwrap().succeeded(),
            "only key a has prefix a"
        );

        // A txn that only reads, or fails with no ops, does not bump the revision.
        let before = revision(&mut kv).await;
        let r = kv
            .txn(Txn::new().and_then([TxnOp::get("a", None), TxnOp::get("b", None)]))
            .await
            .unwrap();
        assert!(r.succeeded(), "no compares means success");
        assert_eq!(r.header().unwrap().revision(), before);
        let r = kv
            .txn(Txn::new().when([Compare::value("a", CompareOp::Equal, "no")]))
            .await
            .unwrap();
        assert!(!r.succeeded());
        assert_eq!(r.op_responses().len(), 0);
        assert_eq!(revision(&mut kv).await, before);

        // Nested txn. All compares, the inner ones too, are evaluated against
        // the store as it was before the txn (etcd picks the whole branch path
        // first), while the ops run in order and see earlier writes. All one revision.
        let inner = Txn::new()
            .when([Compare::value("n1", CompareOp::Equal, "outer")])
            .and_then([TxnOp::put("n2", "saw-outer-write", None)])
            .or_else([
                TxnOp::put("n2", "pre-txn-view", None),
                TxnOp::get("n1", None),
            ]);
        let txn = Txn::new()
            .when([Compare::version("n1", CompareOp::Equal, 0)])
            .and_then([TxnOp::put("n1", "outer", None), TxnOp::txn(inner)]);
        let r = kv.txn(txn).await.unwrap();
        assert!(r.succeeded());
        let rev = before + 1;
        assert_eq!(r.header().unwrap().revision(), rev);
        match &r.op_responses()[1] {
            TxnOpResponse::Txn(t) => {
                assert!(!t.succeeded(), "the inner compare saw the pre-txn store");
                match &t.op_responses()[1] {
                    TxnOpResponse::Get(g) => {
                        assert_eq!(fields(&g.kvs()[0]), ("n1", "outer", rev, rev, 1, 0))
                    }
                    other => panic!("expected a range response, got {other:?}"),
                }
            }
            other => panic!("expected a txn response, got {other:?}"),
        }
        let r = kv.get("n2", None).await.unwrap();
        assert_eq!(fields(&r.kvs()[0]), ("n2", "pre-txn-view", rev, rev, 1, 0));

        // The same key may be written in both branches (only one runs).
        let r = kv
            .txn(
                Txn::new()
                    .when([Compare::version("a", CompareOp::Equal, 2)])
                    .and_then([TxnOp::put("same", "then", None)])
                    .or_else([TxnOp::put("same", "else", None)]),
            )
            .await
            .unwrap();
        assert!(r.succeeded());
        assert_eq!(
            text(kv.get("same", None).await.unwrap().kvs()[0].value()),
            "then"
        );
    })
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn compaction() {
    within(LIMIT, async {
        let c = TestCluster::start(1).await;
        let mut kv = connect(&c).await;
        for v in ["v1", "v2", "v3", "v4", "v5"] {
            kv.put("k", v, None).await.unwrap(); // revs 2..=6
        }
        kv.put("gone", "x", None).await.unwrap(); // rev 7
        kv.delete("gone", None).await.unwrap(); // rev 8

        let r = kv.compact(3, None).await.unwrap();
        assert_eq!(
            r.header().unwrap().revision(),
            8,
            "compaction is not a write"
        );
        expect_status(
            kv.get("k", Some(GetOptions::new().with_revision(2))).await,
            Code::OutOfRange,
            "etcdserver: mvcc: required revision has been compacted",
        );
        let r = kv
            .get("k", Some(GetOptions::new().with_revision(3)))
            .await
            .unwrap();
        assert_eq!(fields(&r.kvs()[0]), ("k", "v2", 2, 3, 2, 0));
        // Compacting at or below the compacted revision, or in the future.
        expect_status(
            kv.compact(3, None).await,
            Code::OutOfRange,
            "etcdserver: mvcc: required revision has been compacted",
        );
        expect_status(
            kv.compact(9, None).await,
            Code::OutOfRange,
            "etcdserver: mvcc: required revision is a future revision",
        );

        // Physical compaction answers after the compaction is done.
        let r = kv
            .compact(8, Some(CompactionOptions::new().with_physical()))
            .await
            .unwrap();
        assert_eq!(r.header().unwrap().revision(), 8);
        expect_status(
            kv.get("k", Some(GetOptions::new().with_revision(7))).await,
            Code::OutOfRange,
            "etcdserver: mvcc: required revision has been compacted",
        );
        // The latest version of each live key survives; deleted keys are gone.
        let r = kv
            .get("", Some(GetOptions::new().with_all_keys().with_revision(8)))
            .await
            .unwrap();
        assert_eq!(
            r.kvs().iter().map(fields).collect::<Vec<_>>(),
            [("k", "v5", 2, 6, 5, 0)]
        );
        let r = kv.put("k", "v6", None).await.unwrap();
        assert_eq!(r.header().unwrap().revision(), 9);
        let r = kv.get("k", None).await.unwrap();
        assert_eq!(fields(&r.kvs()[0]), ("k", "v6", 2, 9, 6, 0));
    })
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn invalid_requests_change_nothing() {
    within(LIMIT, async {
        let c = TestCluster::start_with_flags(
            1,
            &["--max-txn-ops", "4", "--max-request-bytes", "4096"],
        )
        .await;
        let mut kv = connect(&c).await;
        kv.put("k", "v", None).await.unwrap(); // rev 2
        kv.put("k", "v2", None).await.unwrap(); // rev 3
        kv.put("k", "v3", None).await.unwrap(); // rev 4
        kv.compact(3, None).await.unwrap();
        let before = revision(&mut kv).await;
        assert_eq!(before, 4);

        const NO_KEY: &str = "etcdserver: key is not provided";
        expect_status(kv.put("", "v", None).await, Code::InvalidArgument, NO_KEY);
        expect_status(kv.get("", None).await, Code::InvalidArgument, NO_KEY);
        expect_status(kv.delete("", None).await, Code::InvalidArgument, NO_KEY);
        expect_status(
            kv.txn(Txn::new().and_then([TxnOp::put("", "v", None)]))
                .await,
            Code::InvalidArgument,
            NO_KEY,
        );
        // Every compare and both branches are checked, even ones that would not run.
        expect_status(
            kv.txn(Txn::new().when([Compare::version("", CompareOp::Equal, 0)]))
                .await,
            Code::InvalidArgument,
            NO_KEY,
        );
        expect_status(
            kv.txn(
                Txn::new()
                    .and_then([TxnOp::put("fine", "v", None)])
                    .or_else([TxnOp::get("", None)]),
            )
            .await,
            Code::InvalidArgument,
            NO_KEY,
        );

        // Over --max-request-bytes (but within gRPC's own message limit).
        expect_status(
            kv.put("big", "x".repeat(5000), None).await,
            Code::InvalidArgument,
            "etcdserver: request is too large",
        );
        // Just under the limit is fine (and is a write).
        kv.put("big", "x".repeat(3000), None).await.unwrap();
        let before = before + 1;

        let five: Vec<TxnOp> = ["a", "b", "c", "d", "e"]
            .iter()
            .map(|k| TxnOp::put(*k, "1", None))
            .collect();
        expect_status(
            kv.txn(Txn::new().and_then(five)).await,
            Code::InvalidArgument,
            "etcdserver: too many operations in txn request",
        );
        let five_compares: Vec<Compare> = ["a", "b", "c", "d", "e"]
            .iter()
            .map(|k| Compare::version(*k, CompareOp::Equal, 0))
            .collect();
        expect_status(
            kv.txn(Txn::new().when(five_compares)).await,
            Code::InvalidArgument,
            "etcdserver: too many operations in txn request",
        );
        // The limit applies to compares, success and failure ops separately.
        let four = |v: &str| -> Vec<TxnOp> {
            ["w", "x", "y", "z"]
                .iter()
                .map(|k| TxnOp::put(*k, v, None))
                .collect()
        };
        let four_compares: Vec<Compare> = ["w", "x", "y", "z"]
            .iter()
            .map(|k| Compare::version(*k, CompareOp::Equal, 0))
            .collect();
        let r = kv
            .txn(
                Txn::new()
                    .when(four_compares)
                    .and_then(four("then"))
                    .or_else(four("else")),
            )
            .await
            .unwrap();
        assert!(r.succeeded());
        kv.delete("w", Some(DeleteOptions::new().with_range("{")))
            .await
            .unwrap();
        let before = before + 2;
        const DUP: &str = "etcdserver: duplicate key given in txn request";
        expect_status(
            kv.txn(Txn::new().and_then([TxnOp::put("a", "1", None), TxnOp::put("a", "2", None)]))
                .await,
            Code::InvalidArgument,
            DUP,
        );
        // A delete range covering a put key in the same branch is a duplicate too.
        expect_status(
            kv.txn(Txn::new().or_else([
                TxnOp::put("p/1", "1", None),
                TxnOp::delete("p/", Some(DeleteOptions::new().with_prefix())),
            ]))
            .await,
            Code::InvalidArgument,
            DUP,
        );

        const FUTURE: &str = "etcdserver: mvcc: required revision is a future revision";
        const COMPACTED: &str = "etcdserver: mvcc: required revision has been compacted";
        expect_status(
            kv.get("k", Some(GetOptions::new().with_revision(before + 1)))
                .await,
            Code::OutOfRange,
            FUTURE,
        );
        expect_status(
            kv.get("k", Some(GetOptions::new().with_revision(2))).await,
            Code::OutOfRange,
            COMPACTED,
        );
        expect_status(
            kv.txn(Txn::new().and_then([TxnOp::get(
                "k",
                Some(GetOptions::new().with_revision(before + 5)),
            )]))
            .await,
            Code::OutOfRange,
            FUTURE,
        );

        expect_status(
            kv.put("k", "v", Some(PutOptions::new().with_lease(0x1234)))
                .await,
            Code::NotFound,
            "etcdserver: requested lease not found",
        );
        expect_status(
            kv.txn(Txn::new().and_then([
                TxnOp::put("ok", "1", None),
                TxnOp::put("k", "v", Some(PutOptions::new().with_lease(0x1234))),
            ]))
            .await,
            Code::NotFound,
            "etcdserver: requested lease not found",
        );

        assert_eq!(
            revision(&mut kv).await,
            before,
            "no rejected request wrote anything"
        );
        let r = kv
            .get("", Some(GetOptions::new().with_all_keys().with_keys_only()))
            .await
            .unwrap();
        assert_eq!(keys(&r), ["big", "k"]);
        let r = kv.get("k", None).await.unwrap();
        assert_eq!(fields(&r.kvs()[0]), ("k", "v3", 2, 4, 3, 0));
    })
    .await
}

/// Many concurrent linearizable reads through every member of a healthy
/// 3-member cluster all succeed: a ReadIndex round lost between a follower
/// and the leader is sent again instead of failing its readers with
/// "request timed out".
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_linearizable_reads_on_followers_all_succeed() {
    within(Duration::from_secs(120), async {
        let c = TestCluster::start(3).await;
        let mut client = Client::connect([c.endpoint()], None).await.unwrap();
        client.put("r", "1", None).await.unwrap();
        let mut tasks = Vec::new();
        for i in 0..60 {
            let ep = c.member(i % 3).endpoint();
            tasks.push(tokio::spawn(async move {
                let mut cl = Client::connect([ep], None).await.unwrap();
                for _ in 0..40 {
                    let got = cl.get("r", None).await.map_err(|e| e.to_string())?;
                    assert_eq!(got.kvs()[0].value(), b"1");
                }
                Ok::<_, String>(())
            }));
        }
        let mut failures = Vec::new();
        for t in tasks {
            if let Err(e) = t.await.unwrap() {
                failures.push(e);
            }
        }
        assert!(
            failures.is_empty(),
            "{} readers failed: {failures:?}",
            failures.len()
        );
    })
    .await
}

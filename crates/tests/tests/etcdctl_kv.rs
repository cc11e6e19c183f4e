//! The Go `etcdctl` (v3 API) against a single member: the KV commands a user
//! types from the etcd tutorial, and the maintenance/cluster commands that
//! show the member's identity, compared with what real etcd prints.
//!
//! Real etcd here is 3.4 while our server reports 3.5.x: version strings are
//! only checked for their "3." prefix. The client is always the Go etcdctl
//! 3.4, so output formatting is its own; what these tests pin down is the
//! server's answers behind that output.

use std::time::Duration;

use etcd_rs_tests::etcdctl::etcdctl;
use etcd_rs_tests::{within, Output, TestCluster};

const LIMIT: Duration = Duration::from_secs(90);

/// Splits an etcdctl `-w table` output into rows of trimmed cells, skipping
/// the `+---+` border lines (asserting they are there).
fn table_rows(out: &Output) -> Vec<Vec<String>> {
    out.expect_success();
    let lines: Vec<&str> = out.stdout.lines().collect();
    assert!(
        lines.len() >= 5 && lines[0].starts_with("+-") && lines[2].starts_with("+-"),
        "not a table:\n{out}"
    );
    assert!(
        lines.last().unwrap().starts_with("+-"),
        "table not closed:\n{out}"
    );
    lines
        .iter()
        .filter(|l| !l.starts_with('+'))
        .map(|l| {
            assert!(
                l.starts_with('|') && l.ends_with('|'),
                "bad table row {l:?}:\n{out}"
            );
            l[1..l.len() - 1]
                .split('|')
                .map(|c| c.trim().to_string())
                .collect()
        })
        .collect()
}

fn is_hex_id(s: &str) -> bool {
    // Go prints member ids with %x: no leading zeros, so 1..=16 digits.
    (1..=16).contains(&s.len()) && s.chars().all(|c| c.is_ascii_hexdigit())
}

fn positive(s: &str) -> u64 {
    let n: u64 = s
        .parse()
        .unwrap_or_else(|_| panic!("{s:?} is not a number"));
    assert!(n > 0, "expected a positive number, got {n}");
    n
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn put_get_delete() {
    within(LIMIT, async {
        let c = TestCluster::start(1).await;
        c.etcdctl(&["put", "foo", "bar"]).expect_stdout("OK\n");
        c.etcdctl(&["get", "foo"]).expect_stdout("foo\nbar\n");
        // A missing key prints nothing and succeeds.
        c.etcdctl(&["get", "nope"]).expect_stdout("");
        // Values with spaces and an overwrite.
        c.etcdctl(&["put", "foo", "hello world"])
            .expect_stdout("OK\n");
        c.etcdctl(&["get", "foo"])
            .expect_stdout("foo\nhello world\n");
        c.etcdctl(&["get", "foo", "--print-value-only"])
            .expect_stdout("hello world\n");
        // del prints how many keys it deleted.
        c.etcdctl(&["del", "foo"]).expect_stdout("1\n");
        c.etcdctl(&["get", "foo"]).expect_stdout("");
        c.etcdctl(&["del", "foo"]).expect_stdout("0\n");
    })
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn get_ranges_prefixes_and_limits() {
    within(LIMIT, async {
        let c = TestCluster::start(1).await;
        for (k, v) in [("a", "1"), ("ab", "2"), ("b", "3"), ("c", "4"), ("d", "5")] {
            c.etcdctl(&["put", k, v]).expect_stdout("OK\n");
        }
        c.etcdctl(&["get", "--prefix", "a"])
            .expect_stdout("a\n1\nab\n2\n");
        // [a, c): the end is exclusive.
        c.etcdctl(&["get", "a", "c"])
            .expect_stdout("a\n1\nab\n2\nb\n3\n");
        c.etcdctl(&["get", "--from-key", "b"])
            .expect_stdout("b\n3\nc\n4\nd\n5\n");
        c.etcdctl(&["get", "--prefix", "", "--limit", "2"])
            .expect_stdout("a\n1\nab\n2\n");
        c.etcdctl(&["get", "--from-key", "", "--limit", "1"])
            .expect_stdout("a\n1\n");
        // --keys-only prints each key followed by an empty value line.
        c.etcdctl(&["get", "--prefix", "a", "--keys-only"])
            .expect_stdout("a\n\nab\n\n");
        c.etcdctl(&["get", "--prefix", "a", "--print-value-only"])
            .expect_stdout("1\n2\n");
        c.etcdctl(&["get", "--consistency=s", "b"])
            .expect_stdout("b\n3\n");
        c.etcdctl(&["get", "--consistency=s", "--prefix", ""])
            .expect_stdout("a\n1\nab\n2\nb\n3\nc\n4\nd\n5\n");
        // An empty range (end before start) is not an error.
        c.etcdctl(&["get", "c", "a"]).expect_stdout("");

        // del --prefix prints the number of deleted keys.
        c.etcdctl(&["del", "--prefix", "a"]).expect_stdout("2\n");
        c.etcdctl(&["del", "b", "d"]).expect_stdout("2\n");
        c.etcdctl(&["get", "--prefix", ""]).expect_stdout("d\n5\n");
    })
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn get_sorted_by_every_target() {
    within(LIMIT, async {
        let c = TestCluster::start(1).await;
        // Chosen so that every sort target gives a different order:
        //   a: create 2, mod 5, version 3, value "z"
        //   b: create 6, mod 7, version 2, value "x"
        //   c: create 4, mod 4, version 1, value "y"
        for (k, v) in [
            ("a", "a1"),
            ("a", "a2"),
            ("c", "y"),
            ("a", "z"),
            ("b", "b1"),
            ("b", "x"),
        ] {
            c.etcdctl(&["put", k, v]).expect_stdout("OK\n");
        }
        let keys = |args: &[&str]| {
            let mut full = vec!["get", "--prefix", "", "--keys-only"];
            full.extend_from_slice(args);
            let out = c.etcdctl(&full);
            out.expect_success();
            out.stdout
                .lines()
                .filter(|l| !l.is_empty())
                .collect::<Vec<_>>()
                .join(",")
        };
        assert_eq!(keys(&[]), "a,b,c");
        assert_eq!(keys(&["--order=DESCEND", "--sort-by=KEY"]), "c,b,a");
        assert_eq!(keys(&["--order=DESCEND", "--sort-by=CREATE"]), "b,c,a");
        assert_eq!(keys(&["--order=DESCEND", "--sort-by=MODIFY"]), "b,a,c");
        assert_eq!(keys(&["--order=DESCEND", "--sort-by=VALUE"]), "a,c,b");
        assert_eq!(keys(&["--order=DESCEND", "--sort-by=VERSION"]), "a,b,c");
        assert_eq!(keys(&["--order=ASCEND", "--sort-by=CREATE"]), "a,c,b");
        // --sort-by without --order ascends.
        assert_eq!(keys(&["--sort-by=MODIFY"]), "c,a,b");
        assert_eq!(keys(&["--sort-by=VALUE"]), "b,c,a");
        assert_eq!(keys(&["--sort-by=VERSION"]), "c,b,a");
        // --order=DESCEND alone sorts by key.
        assert_eq!(keys(&["--order=DESCEND"]), "c,b,a");
        // Sorting happens before the limit.
        assert_eq!(
            keys(&["--order=DESCEND", "--sort-by=MODIFY", "--limit=2"]),
            "b,a"
        );
        // Values come along in the full output.
        c.etcdctl(&["get", "--prefix", "", "--sort-by=VALUE", "--order=DESCEND"])
            .expect_stdout("a\nz\nc\ny\nb\nx\n");
    })
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn get_json_output() {
    within(LIMIT, async {
        let c = TestCluster::start(1).await;
        c.etcdctl(&["put", "k1", "v1"]).expect_stdout("OK\n"); // rev 2
        c.etcdctl(&["put", "k2", "v2"]).expect_stdout("OK\n"); // rev 3
        c.etcdctl(&["put", "k1", "v1b"]).expect_stdout("OK\n"); // rev 4

        let j = c.etcdctl(&["get", "k1", "-w", "json"]).json();
        let h = &j["header"];
        for id in ["cluster_id", "member_id", "raft_term"] {
            assert!(h[id].as_u64().is_some_and(|v| v > 0), "header.{id}: {j}");
        }
        assert_eq!(h["revision"], 4, "{j}");
        assert_eq!(j["count"], 1, "{j}");
        assert_eq!(j.get("more"), None, "more is omitted when false: {j}");
        let kv = &j["kvs"][0];
        assert_eq!(kv["key"], "azE=", "keys are base64: {j}"); // "k1"
        assert_eq!(kv["value"], "djFi", "{j}"); // "v1b"
        assert_eq!(kv["create_revision"], 2, "{j}");
        assert_eq!(kv["mod_revision"], 4, "{j}");
        assert_eq!(kv["version"], 2, "{j}");
        assert_eq!(kv.get("lease"), None, "no lease: {j}");

        // A limited range reports the full count and more=true.
        let j = c
            .etcdctl(&["get", "--prefix", "k", "--limit", "1", "-w", "json"])
            .json();
        assert_eq!(j["count"], 2, "{j}");
        assert_eq!(j["more"], true, "{j}");
        assert_eq!(j["kvs"].as_array().unwrap().len(), 1, "{j}");

        // A miss has no kvs and no count.
        let j = c.etcdctl(&["get", "missing", "-w", "json"]).json();
        assert_eq!(j["header"]["revision"], 4, "{j}");
        assert_eq!(j.get("kvs"), None, "{j}");
        assert_eq!(j.get("count"), None, "{j}");
    })
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn prev_kv_and_old_revisions() {
    within(LIMIT, async {
        let c = TestCluster::start(1).await;
        // No previous value: just OK.
        c.etcdctl(&["put", "k", "v1", "--prev-kv"])
            .expect_stdout("OK\n"); // rev 2
        c.etcdctl(&["put", "k", "v2", "--prev-kv"])
            .expect_stdout("OK\nk\nv1\n"); // rev 3
        c.etcdctl(&["put", "k", "v3"]).expect_stdout("OK\n"); // rev 4
        c.etcdctl(&["get", "k", "--rev=2"]).expect_stdout("k\nv1\n");
        c.etcdctl(&["get", "k", "--rev=3"]).expect_stdout("k\nv2\n");
        c.etcdctl(&["get", "k", "--rev=4"]).expect_stdout("k\nv3\n");
        // Before the key existed.
        c.etcdctl(&["get", "k", "--rev=1"]).expect_stdout("");
        c.etcdctl(&["del", "k", "--prev-kv"])
            .expect_stdout("1\nk\nv3\n"); // rev 5
        c.etcdctl(&["get", "k"]).expect_stdout("");
        // History survives the delete.
        c.etcdctl(&["get", "k", "--rev=4"]).expect_stdout("k\nv3\n");

        for k in ["p/1", "p/2", "p/3"] {
            c.etcdctl(&["put", k, k]).expect_stdout("OK\n");
        }
        c.etcdctl(&["del", "--prefix", "p/", "--prev-kv"])
            .expect_stdout("3\np/1\np/1\np/2\np/2\np/3\np/3\n");
        c.etcdctl(&["del", "--prefix", "p/"]).expect_stdout("0\n");
    })
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn compaction() {
    within(LIMIT, async {
        let c = TestCluster::start(1).await;
        for v in ["v1", "v2", "v3", "v4"] {
            c.etcdctl(&["put", "k", v]).expect_stdout("OK\n"); // revs 2..=5
        }
        c.etcdctl(&["compaction", "3"])
            .expect_stdout("compacted revision 3\n");
        c.etcdctl(&["get", "k", "--rev=2"])
            .expect_error("etcdserver: mvcc: required revision has been compacted");
        // The compaction revision itself stays readable.
        c.etcdctl(&["get", "k", "--rev=3"]).expect_stdout("k\nv2\n");
        c.etcdctl(&["get", "k", "--rev=99"])
            .expect_error("etcdserver: mvcc: required revision is a future revision");
        // Compacting again at or below the compacted revision, or in the future.
        c.etcdctl(&["compaction", "3"])
            .expect_error("etcdserver: mvcc: required revision has been compacted");
        c.etcdctl(&["compaction", "99"])
            .expect_error("etcdserver: mvcc: required revision is a future revision");
        c.etcdctl(&["compaction", "--physical", "4"])
            .expect_stdout("compacted revision 4\n");
        c.etcdctl(&["get", "k", "--rev=3"])
            .expect_error("etcdserver: mvcc: required revision has been compacted");
        c.etcdctl(&["get", "k", "--rev=4"]).expect_stdout("k\nv3\n");
        c.etcdctl(&["get", "k"]).expect_stdout("k\nv4\n");
        // Compaction does not create a revision: the next put is revision 6.
        c.etcdctl(&["put", "k", "v5"]).expect_stdout("OK\n");
        let j = c.etcdctl(&["get", "k", "-w", "json"]).json();
        assert_eq!(j["kvs"][0]["mod_revision"], 6, "{j}");
    })
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn txn_from_stdin() {
    within(LIMIT, async {
        let c = TestCluster::start(1).await;
        c.etcdctl(&["put", "k1", "v1"]).expect_stdout("OK\n"); // rev 2

        // Compares, blank line, success ops, blank line, failure ops, blank line.
        c.etcdctl_stdin(
            &["txn"],
            "value(\"k1\") = \"v1\"\n\nput k2 v2\nget k1\n\nput k3 v3\n\n",
        )
        .expect_stdout("SUCCESS\n\nOK\n\nk1\nv1\n"); // rev 3
        c.etcdctl(&["get", "k3"]).expect_stdout("");

        c.etcdctl_stdin(
            &["txn"],
            "value(\"k1\") = \"nope\"\n\nput k2 never\n\nput k3 v3\nget k1\ndel k2\n\n",
        )
        .expect_stdout("FAILURE\n\nOK\n\nk1\nv1\n\n1\n"); // rev 4
        c.etcdctl(&["get", "--prefix", "k"])
            .expect_stdout("k1\nv1\nk3\nv3\n");

        // version, create and mod compares; all must hold.
        c.etcdctl_stdin(
            &["txn"],
            "version(\"k1\") = \"1\"\ncreate(\"k1\") = \"2\"\nmod(\"k3\") > \"3\"\nvalue(\"k3\") != \"x\"\n\nput ok yes\n\n\n",
        )
        .expect_stdout("SUCCESS\n\nOK\n"); // rev 5
        c.etcdctl_stdin(
            &["txn"],
            "version(\"k1\") = \"1\"\nmod(\"k3\") < \"4\"\n\nput ok no\n\nget ok\n\n",
        )
        .expect_stdout("FAILURE\n\nok\nyes\n");
        // A missing key has version 0 and create revision 0.
        c.etcdctl_stdin(
            &["txn"],
            "version(\"ghost\") = \"0\"\ncreate(\"ghost\") = \"0\"\n\nput ghost boo\n\n\n",
        )
        .expect_stdout("SUCCESS\n\nOK\n"); // rev 6

        // The JSON form carries the revision of the whole transaction.
        let j = c
            .etcdctl_stdin(
                &["txn", "-w", "json"],
                "value(\"ghost\") = \"boo\"\n\nput a 1\nput b 2\nget a\n\n\n",
            )
            .json(); // rev 7 for both puts
        assert_eq!(j["succeeded"], true, "{j}");
        assert_eq!(j["header"]["revision"], 7, "{j}");
        assert_eq!(j["responses"].as_array().unwrap().len(), 3, "{j}");
        let got = &j["responses"][2]["Response"]["ResponseRange"];
        assert_eq!(got["kvs"][0]["mod_revision"], 7, "{j}");
        assert_eq!(got["kvs"][0]["value"], "MQ==", "{j}");
        let j = c.etcdctl(&["get", "b", "-w", "json"]).json();
        assert_eq!(j["kvs"][0]["mod_revision"], 7, "one revision per txn: {j}");
    })
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn request_errors() {
    within(LIMIT, async {
        let c = TestCluster::start_with_flags(
            1,
            &["--max-txn-ops", "4", "--max-request-bytes", "4096"],
        )
        .await;
        c.etcdctl(&["put", "k", "v"]).expect_stdout("OK\n"); // rev 2
                                                             // An empty key is rejected by the server (etcdctl sends it as is).
        c.etcdctl(&["put", "", "v"])
            .expect_error("etcdserver: key is not provided");
        c.etcdctl(&["get", ""])
            .expect_error("etcdserver: key is not provided");
        c.etcdctl(&["del", ""])
            .expect_error("etcdserver: key is not provided");
        let big = "x".repeat(5000);
        c.etcdctl(&["put", "big", &big])
            .expect_error("etcdserver: request is too large");
        c.etcdctl_stdin(
            &["txn"],
            "\nput a 1\nput b 1\nput c 1\nput d 1\nput e 1\n\n\n",
        )
        .expect_error("etcdserver: too many operations in txn request");
        c.etcdctl_stdin(&["txn"], "\nput a 1\nput a 2\n\n\n")
            .expect_error("etcdserver: duplicate key given in txn request");
        // Four ops are allowed.
        c.etcdctl_stdin(&["txn"], "\nput a 1\nput b 1\nput c 1\nput d 1\n\n\n")
            .expect_stdout("SUCCESS\n\nOK\n\nOK\n\nOK\n\nOK\n"); // rev 3
        c.etcdctl(&["put", "k", "v", "--lease=1234"])
            .expect_error("etcdserver: requested lease not found");
        // None of the failures wrote anything.
        let j = c.etcdctl(&["get", "k", "-w", "json"]).json();
        assert_eq!(j["header"]["revision"], 3, "{j}");
    })
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn endpoint_status_health_and_member_list() {
    within(LIMIT, async {
        let c = TestCluster::start(1).await;
        let m = c.member(0);
        let ep = c.endpoint();

        let members = c.etcdctl(&["member", "list"]);
        members.expect_success();
        let line = members.stdout.strip_suffix('\n').expect("one line");
        let (id, rest) = line.split_once(", ").expect("id first");
        assert!(is_hex_id(id), "member id {id:?}:\n{members}");
        assert_eq!(
            rest,
            format!("started, m0, {}, {}, false", m.peer_url(), ep),
            "{members}"
        );

        let rows = table_rows(&c.etcdctl(&["member", "list", "-w", "table"]));
        assert_eq!(
            rows,
            vec![
                vec![
                    "ID",
                    "STATUS",
                    "NAME",
                    "PEER ADDRS",
                    "CLIENT ADDRS",
                    "IS LEARNER"
                ],
                vec![id, "started", "m0", &m.peer_url(), &ep, "false"],
            ]
        );

        // `endpoint status` dials the endpoint exactly as written; etcdctl
        // 3.4 then sends `http://host:port` itself as the HTTP/2 authority.
        let status = c.etcdctl(&["endpoint", "status", "-w", "table"]);
        let rows = table_rows(&status);
        assert_eq!(
            rows[0],
            [
                "ENDPOINT",
                "ID",
                "VERSION",
                "DB SIZE",
                "IS LEADER",
                "IS LEARNER",
                "RAFT TERM",
                "RAFT INDEX",
                "RAFT APPLIED INDEX",
                "ERRORS"
            ],
            "{status}"
        );
        assert_eq!(rows.len(), 2, "{status}");
        let r = &rows[1];
        assert_eq!(r[0], ep, "{status}");
        assert_eq!(
            r[1], id,
            "status and member list agree on the id:\n{status}"
        );
        assert!(r[2].starts_with("3."), "version {:?}:\n{status}", r[2]);
        assert!(
            r[3].ends_with(" kB") || r[3].ends_with(" MB"),
            "db size:\n{status}"
        );
        assert_eq!(r[4], "true", "single member is the leader:\n{status}");
        assert_eq!(r[5], "false", "{status}");
        positive(&r[6]);
        let index = positive(&r[7]);
        let applied = positive(&r[8]);
        assert!(applied <= index, "{status}");
        assert_eq!(r[9], "", "{status}");

        // Simple format: the same fields, comma separated.
        let simple = c.etcdctl(&["endpoint", "status"]);
        simple.expect_success();
        let fields: Vec<&str> = simple.stdout.trim_end_matches('\n').split(", ").collect();
        assert_eq!(fields.len(), 10, "{simple}");
        assert_eq!((fields[0], fields[1]), (ep.as_str(), id), "{simple}");
        assert!(fields[2].starts_with("3."), "{simple}");
        assert_eq!((fields[4], fields[5]), ("true", "false"), "{simple}");

        // JSON: the leader is this member.
        let j = c.etcdctl(&["endpoint", "status", "-w", "json"]).json();
        let s = &j[0]["Status"];
        assert_eq!(j[0]["Endpoint"], ep.as_str(), "{j}");
        assert_eq!(s["leader"], s["header"]["member_id"], "{j}");
        assert_eq!(format!("{:x}", s["leader"].as_u64().unwrap()), id, "{j}");
        assert!(s["version"].as_str().unwrap().starts_with("3."), "{j}");
        assert!(s["dbSize"].as_u64().unwrap() > 0, "{j}");

        // etcdctl 3.4 prints the health line on stderr; check what the user sees.
        // Written as host:port, the endpoint is its own row name.
        let hostport = ep.trim_start_matches("http://").to_string();
        let rows = table_rows(&etcdctl(
            std::slice::from_ref(&hostport),
            &["endpoint", "status", "-w", "table"],
            None,
        ));
        assert_eq!(
            (rows[1][0].as_str(), rows[1][1].as_str()),
            (hostport.as_str(), id)
        );

        let health = c.etcdctl(&["endpoint", "health"]);
        health.expect_success();
        let prefix = format!("{ep} is healthy: successfully committed proposal: took = ");
        assert!(
            health.combined().lines().any(|l| l.starts_with(&prefix)),
            "no {prefix:?} line:\n{health}"
        );
        let j = c.etcdctl(&["endpoint", "health", "-w", "json"]).json();
        assert_eq!(j[0]["endpoint"], ep.as_str(), "{j}");
        assert_eq!(j[0]["health"], true, "{j}");
    })
    .await
}

//! What enabled auth lets through, compared with the reference etcd: the
//! same users and roles on both, then every request kind as every kind
//! of user (nobody, no role, read-only, write-only, a prefix role, root)
//! through the Go etcdctl, and the cases etcdctl cannot express (nested
//! transactions, watches, lease revocation) through an independent
//! client. Outcome and error must be etcd's.

use std::time::Duration;

use etcd_client::{
    Client, Compare, CompareOp, ConnectOptions, PutOptions, Txn, TxnOp, WatchOptions,
};
use std::path::Path;

use etcd_rs_tests::bins::{etcdctl_bin, our_etcdctl_bin, reference_etcd_bin};
use etcd_rs_tests::etcdctl::etcdctl_with;
use etcd_rs_tests::{within, TestCluster};

const LIMIT: Duration = Duration::from_secs(300);

/// Users and roles, then auth on: `reader` may read `/p/`, `writer` may
/// write it, `prefixer` may do both, `none` has no role.
const SETUP: &[&[&str]] = &[
    &["user", "add", "root:rootpw"],
    &["user", "grant-role", "root", "root"],
    &["role", "add", "reader"],
    &[
        "role",
        "grant-permission",
        "reader",
        "--prefix=true",
        "read",
        "/p/",
    ],
    &["role", "add", "writer"],
    &[
        "role",
        "grant-permission",
        "writer",
        "--prefix=true",
        "write",
        "/p/",
    ],
    &["role", "add", "prefix"],
    &[
        "role",
        "grant-permission",
        "prefix",
        "--prefix=true",
        "readwrite",
        "/p/",
    ],
    &["user", "add", "none:pw"],
    &["user", "add", "reader:pw"],
    &["user", "grant-role", "reader", "reader"],
    &["user", "add", "writer:pw"],
    &["user", "grant-role", "writer", "writer"],
    &["user", "add", "prefixer:pw"],
    &["user", "grant-role", "prefixer", "prefix"],
    &["put", "/p/a", "1"],
    &["put", "/x", "1"],
    &["auth", "enable"],
];

/// Who asks: `None` sends no credentials.
const USERS: &[Option<&str>] = &[
    None,
    Some("none:pw"),
    Some("reader:pw"),
    Some("writer:pw"),
    Some("prefixer:pw"),
    Some("root:rootpw"),
];

/// A request: etcdctl arguments, stdin, and whether stdout is compared
/// (not where it holds ids that differ between clusters).
type Op = (&'static [&'static str], Option<&'static str>, bool);

const OPS: &[Op] = &[
    (&["get", "/p/a"], None, true),
    (&["get", "/p/", "--prefix"], None, true),
    (&["get", "", "--from-key"], None, true),
    (&["get", "/x"], None, true),
    (&["get", "/p/a", "--consistency=s"], None, true),
    (&["put", "/p/a", "2"], None, true),
    (&["put", "/p/a", "3", "--prev-kv"], None, true),
    (&["put", "/x", "2"], None, true),
    (&["del", "/p/gone"], None, true),
    (&["del", "/p/gone", "--prev-kv"], None, true),
    (&["del", "/p/", "--prefix", "--prev-kv"], None, true),
    // A write outside /p/ hidden in the failure branch.
    (
        &["txn"],
        Some("value(\"/p/a\") = \"nope\"\n\nput /p/t 1\n\nput /x 3\n\n"),
        true,
    ),
    // A compare outside /p/.
    (
        &["txn"],
        Some("value(\"/x\") = \"1\"\n\nput /p/t 2\n\n\n"),
        true,
    ),
    // Reads only.
    (&["txn"], Some("\nget /p/a\n\nget /p/t\n\n"), true),
    (&["lease", "grant", "100"], None, false),
    (&["lease", "list"], None, false),
    (&["compaction", "1"], None, true),
    (&["member", "list"], None, false),
    (
        &[
            "member",
            "add",
            "extra",
            "--learner",
            "--peer-urls=http://127.0.0.1:1",
        ],
        None,
        false,
    ),
    (&["endpoint", "status"], None, false),
    (&["endpoint", "hashkv"], None, false),
    (&["alarm", "list"], None, true),
    (&["user", "list"], None, true),
    (&["user", "get", "reader"], None, true),
    (&["user", "get", "root"], None, true),
    (&["role", "get", "reader"], None, true),
    (&["role", "get", "prefix"], None, true),
    (&["role", "list"], None, true),
    (&["role", "add", "extra"], None, true),
    (&["user", "add", "extra:pw"], None, true),
    (
        &["user", "passwd", "extra", "--interactive=false"],
        Some("pw2\n"),
        true,
    ),
    (
        &["role", "grant-permission", "extra", "read", "/e"],
        None,
        true,
    ),
    (&["user", "grant-role", "extra", "extra"], None, true),
    (&["user", "revoke-role", "extra", "extra"], None, true),
    (&["role", "delete", "extra"], None, true),
    (&["user", "delete", "extra"], None, true),
];

type Outcome = (i32, String, String);

/// Where etcd 3.5 answers otherwise than the 3.4 reference, and what it
/// (and so etcd-rs) answers: (user, request, stderr). 3.5 asks for a user
/// to grant a lease (`requireAuthInfo`), and gives maintenance calls the
/// gRPC errors of `togRPCError`, where 3.4 passes the auth store's error
/// on as code Unknown.
const ETCD_3_5: &[(Option<&str>, &[&str], &str)] = &[
    (
        None,
        &["lease", "grant", "100"],
        "Error: failed to grant lease (etcdserver: user name is empty)\n",
    ),
    (
        None,
        &["endpoint", "hashkv"],
        "Error: etcdserver: user name is empty\n",
    ),
    (
        Some("none:pw"),
        &["endpoint", "hashkv"],
        "Error: etcdserver: permission denied\n",
    ),
    (
        Some("reader:pw"),
        &["endpoint", "hashkv"],
        "Error: etcdserver: permission denied\n",
    ),
    (
        Some("writer:pw"),
        &["endpoint", "hashkv"],
        "Error: etcdserver: permission denied\n",
    ),
    (
        Some("prefixer:pw"),
        &["endpoint", "hashkv"],
        "Error: etcdserver: permission denied\n",
    ),
];

/// Runs the setup, then every request as every user, on `c` with the
/// etcdctl the tests use (`ETCDCTL_BIN`, else the Go one).
fn matrix(c: &TestCluster) -> Vec<Outcome> {
    matrix_with(c, &etcdctl_bin())
}

/// The same with etcdctl `bin`.
fn matrix_with(c: &TestCluster, bin: &Path) -> Vec<Outcome> {
    for args in SETUP {
        etcdctl_with(bin, &[c.endpoint()], args, None).expect_success();
    }
    let mut out = Vec::new();
    for user in USERS {
        for (args, stdin, compare_stdout) in OPS {
            let mut full: Vec<String> = user.iter().map(|u| format!("--user={u}")).collect();
            full.extend(args.iter().map(|a| a.to_string()));
            let full: Vec<&str> = full.iter().map(String::as_str).collect();
            let o = etcdctl_with(bin, &[c.endpoint()], &full, *stdin);
            let stdout = if *compare_stdout {
                o.stdout.clone()
            } else {
                String::new()
            };
            // Clusters differ in their endpoint only.
            let mask = |t: String| t.replace(&c.endpoint(), "<endpoint>");
            out.push((o.code, mask(stdout), mask(o.stderr_without_logs())));
        }
    }
    out
}

#[tokio::test]
async fn every_request_as_every_kind_of_user_gets_what_etcd_answers() {
    within(LIMIT, async {
        let etcd = reference().await;
        let theirs = matrix(&etcd);
        drop(etcd);
        let ours = ours().await;
        let mine = matrix(&ours);
        let mut i = 0;
        let mut differ = Vec::new();
        for user in USERS {
            for (args, _, _) in OPS {
                let known = ETCD_3_5.iter().find(|(u, a, _)| u == user && a == args);
                if let Some((_, _, stderr)) = known {
                    assert_eq!(mine[i].0, 1, "{user:?} {args:?}: {:?}", mine[i]);
                    assert!(
                        mine[i].2.ends_with(stderr),
                        "{user:?} {args:?}: {:?}",
                        mine[i]
                    );
                } else if mine[i] != theirs[i] {
                    differ.push(format!(
                        "{user:?} {args:?}\n ours: {:?}\n etcd: {:?}",
                        mine[i], theirs[i]
                    ));
                }
                i += 1;
            }
        }
        assert!(differ.is_empty(), "{}", differ.join("\n"));
        let denied = mine
            .iter()
            .filter(|o| o.2.contains("etcdserver: permission denied"))
            .count();
        assert!(denied > 50, "only {denied} requests were refused");
    })
    .await;
}

/// Our etcdctl prints, under auth, what the Go etcdctl prints: the same
/// requests on two clusters of ours, one driven by each.
#[tokio::test]
async fn our_etcdctl_prints_what_the_go_etcdctl_prints_under_auth() {
    within(LIMIT, async {
        let a = ours().await;
        let go = matrix_with(&a, &etcdctl_bin());
        drop(a);
        let b = ours().await;
        let ours = matrix_with(&b, &our_etcdctl_bin());
        let mut i = 0;
        for user in USERS {
            for (args, _, _) in OPS {
                assert_eq!(ours[i], go[i], "{user:?} {args:?}");
                i += 1;
            }
        }
    })
    .await;
}

/// A member of the reference etcd, hashing passwords fast.
async fn reference() -> TestCluster {
    TestCluster::builder(1)
        .bin(reference_etcd_bin())
        .flags(&["--bcrypt-cost=4"])
        .start()
        .await
}

/// A member of etcd-rs, hashing passwords fast.
async fn ours() -> TestCluster {
    TestCluster::start_with_flags(1, &["--bcrypt-cost=4"]).await
}

async fn connect(c: &TestCluster, user: &str) -> Client {
    let opts = ConnectOptions::new().with_user(user, if user == "root" { "rootpw" } else { "pw" });
    Client::connect(c.endpoints(), Some(opts)).await.unwrap()
}

/// What a watch of `key` as `user` is first answered: (created,
/// canceled, cancel reason, watch id).
async fn first_watch_answer(c: &TestCluster, user: &str, key: &str) -> (bool, bool, String, i64) {
    let mut client = connect(c, user).await;
    let mut stream = client
        .watch(key, Some(WatchOptions::new().with_prefix()))
        .await
        .unwrap();
    let r = stream.message().await.unwrap().unwrap();
    (
        r.created(),
        r.canceled(),
        r.cancel_reason().to_string(),
        r.watch_id(),
    )
}

/// The outcome of a request, as what a user sees: Ok, or the error text.
fn seen<T>(r: Result<T, etcd_client::Error>) -> String {
    match r {
        Ok(_) => "ok".into(),
        Err(etcd_client::Error::GRpcStatus(s)) => format!("{:?}: {}", s.code(), s.message()),
        Err(e) => e.to_string(),
    }
}

/// Nested transactions, watches and lease revocations as etcd 3.4 (the
/// reference) and etcd-rs answer them.
async fn grpc_cases(c: &TestCluster) -> Vec<String> {
    for args in SETUP {
        c.etcdctl(args).expect_success();
    }
    let mut out = Vec::new();
    for user in ["reader", "writer", "prefixer", "root"] {
        let (created, canceled, reason, id) = first_watch_answer(c, user, "/p/").await;
        out.push(format!(
            "{user} watch /p/: {created} {canceled} {reason:?} {id}"
        ));
        let (created, canceled, reason, id) = first_watch_answer(c, user, "/x").await;
        out.push(format!(
            "{user} watch /x: {created} {canceled} {reason:?} {id}"
        ));
    }
    // A lease the prefix user attached to /p/l, revoked by the others.
    let mut prefixer = connect(c, "prefixer").await;
    for user in ["reader", "writer", "prefixer"] {
        let lease = prefixer.lease_grant(100, None).await.unwrap().id();
        prefixer
            .put("/p/l", "v", Some(PutOptions::new().with_lease(lease)))
            .await
            .unwrap();
        let mut client = connect(c, user).await;
        out.push(format!(
            "{user} revoke: {}",
            seen(client.lease_revoke(lease).await)
        ));
        // The writer may not put on a lease holding a key it cannot write.
        let mut reader = connect(c, "reader").await;
        let put = reader
            .put("/p/m", "v", Some(PutOptions::new().with_lease(lease)))
            .await;
        out.push(format!(
            "{user} then reader put on the lease: {}",
            seen(put)
        ));
    }
    out
}

#[tokio::test]
async fn watches_and_lease_revocations_are_checked_as_in_etcd() {
    within(LIMIT, async {
        let etcd = reference().await;
        let theirs = grpc_cases(&etcd).await;
        drop(etcd);
        let ours = ours().await;
        let mine = grpc_cases(&ours).await;
        assert_eq!(mine, theirs);
    })
    .await;
}

/// A write hidden in a nested transaction is checked, in either branch
/// and at any depth (etcd 3.5 checks only the first level).
#[tokio::test]
async fn writes_nested_in_transactions_are_checked() {
    within(LIMIT, async {
        let c = ours().await;
        for args in SETUP {
            c.etcdctl(args).expect_success();
        }
        let mut client = connect(&c, "prefixer").await;
        let inner = Txn::new()
            .when([Compare::value("/p/a", CompareOp::Equal, "nope")])
            .and_then([TxnOp::put("/p/in", "1", None)])
            .or_else([TxnOp::put("/x", "hidden", None)]);
        let outer = Txn::new().and_then([TxnOp::txn(inner)]);
        assert_eq!(
            seen(client.txn(outer).await),
            "PermissionDenied: etcdserver: permission denied"
        );
        let deeper = Txn::new().and_then([TxnOp::txn(
            Txn::new().and_then([TxnOp::txn(Txn::new().and_then([TxnOp::delete("/x", None)]))]),
        )]);
        assert_eq!(
            seen(client.txn(deeper).await),
            "PermissionDenied: etcdserver: permission denied"
        );
        let allowed = Txn::new().and_then([TxnOp::txn(
            Txn::new().and_then([TxnOp::put("/p/in", "1", None)]),
        )]);
        assert_eq!(seen(client.txn(allowed).await), "ok");
        // Nothing of the refused transactions was applied.
        c.etcdctl(&["--user=root:rootpw", "get", "/x", "--print-value-only"])
            .expect_stdout("1\n");
    })
    .await;
}

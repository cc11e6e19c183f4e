//! Auth tokens and the auth state over time: a permission revoked while a
//! client streams writes stops every later write; auth survives restart,
//! snapshot catch-up and a leader change; simple tokens work on every
//! member, expire when idle and die with their user; JWTs are etcd's (a
//! token of etcd-rs passes on the reference etcd with the same key, and
//! back), and expired or tampered ones are refused.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use api::etcdserverpb::auth_client::AuthClient;
use api::etcdserverpb::kv_client::KvClient;
use api::etcdserverpb::{AuthenticateRequest, PutRequest, RangeRequest};
use etcd_client::{Client, ConnectOptions};
use etcd_rs_tests::bins::reference_etcd_bin;
use etcd_rs_tests::{within, TestCluster};
use tonic::Code;

const LIMIT: Duration = Duration::from_secs(240);

/// `root` and `alice`, who may read and write `/p/`; auth on.
const SETUP: &[&[&str]] = &[
    &["user", "add", "root:rootpw"],
    &["user", "grant-role", "root", "root"],
    &["role", "add", "prefix"],
    &[
        "role",
        "grant-permission",
        "prefix",
        "--prefix=true",
        "readwrite",
        "/p/",
    ],
    &["user", "add", "alice:pw"],
    &["user", "grant-role", "alice", "prefix"],
    &["auth", "enable"],
];

fn setup(c: &TestCluster) {
    for args in SETUP {
        c.etcdctl(args).expect_success();
    }
}

const ROOT: &str = "--user=root:rootpw";

async fn token(endpoint: &str, name: &str, password: &str) -> String {
    let mut auth = AuthClient::connect(endpoint.to_string()).await.unwrap();
    auth.authenticate(AuthenticateRequest {
        name: name.into(),
        password: password.into(),
    })
    .await
    .unwrap()
    .into_inner()
    .token
}

/// A serializable read of `key` on `endpoint` with `token`: the member's
/// own auth state decides.
async fn get(endpoint: &str, token: &str, key: &str) -> Result<usize, tonic::Status> {
    let mut kv = KvClient::connect(endpoint.to_string()).await.unwrap();
    let mut req = tonic::Request::new(RangeRequest {
        key: key.into(),
        serializable: true,
        ..Default::default()
    });
    req.metadata_mut().insert("token", token.parse().unwrap());
    kv.range(req).await.map(|r| r.into_inner().kvs.len())
}

async fn put(endpoint: &str, token: &str, key: &str) -> Result<i64, tonic::Status> {
    let mut kv = KvClient::connect(endpoint.to_string()).await.unwrap();
    let mut req = tonic::Request::new(PutRequest {
        key: key.into(),
        value: b"v".to_vec(),
        ..Default::default()
    });
    req.metadata_mut().insert("token", token.parse().unwrap());
    kv.put(req)
        .await
        .map(|r| r.into_inner().header.unwrap().revision)
}

#[track_caller]
fn assert_refused<T: std::fmt::Debug>(r: Result<T, tonic::Status>, code: Code, message: &str) {
    let s = r.expect_err("the request passed");
    assert_eq!((s.code(), s.message()), (code, message));
}

/// A client streams writes on a follower with a token it got before; the
/// permission is revoked: no write acknowledged or stored after the
/// revoke's revision, and every later one is refused.
#[tokio::test]
async fn a_revoked_permission_stops_every_later_write() {
    within(LIMIT, async {
        let c = TestCluster::start_with_flags(3, &["--bcrypt-cost=4"]).await;
        setup(&c);
        let (leader, _) = c.wait_for_leader(&[0, 1, 2]);
        let follower = (leader + 1) % 3;
        let opts = ConnectOptions::new().with_user("alice", "pw");
        let mut writer = Client::connect([c.member(follower).endpoint()], Some(opts))
            .await
            .unwrap();
        let revoked = Arc::new(AtomicBool::new(false));
        let seen = revoked.clone();
        let writes = tokio::spawn(async move {
            let (mut ok_after, mut refused_after, mut acked) = (0, 0, Vec::new());
            for n in 0.. {
                let after = seen.load(Ordering::SeqCst);
                match writer.put(format!("/p/k{n}"), "v", None).await {
                    Ok(r) => {
                        acked.push(r.header().unwrap().revision());
                        ok_after += after as usize;
                    }
                    Err(etcd_client::Error::GRpcStatus(s)) => {
                        assert!(
                            s.message() == "etcdserver: permission denied"
                                || s.message() == "etcdserver: revision of auth store is old",
                            "{s:?}"
                        );
                        if after {
                            refused_after += 1;
                        }
                    }
                    Err(e) => panic!("{e}"),
                }
                if refused_after >= 20 {
                    break;
                }
            }
            (ok_after, acked)
        });
        // Let writes flow, then revoke.
        while c.etcdctl(&[ROOT, "get", "/p/k30"]).stdout.is_empty() {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        c.etcdctl(&[
            ROOT,
            "role",
            "revoke-permission",
            "prefix",
            "--prefix=true",
            "/p/",
        ])
        .expect_success();
        revoked.store(true, Ordering::SeqCst);
        let out = c.etcdctl(&[ROOT, "get", "/x", "-w", "json"]);
        let at_revoke = out.json()["header"]["revision"].as_i64().unwrap();
        let (ok_after, acked) = writes.await.unwrap();
        assert_eq!(ok_after, 0, "writes passed after the revoke");
        assert!(
            acked.iter().all(|&r| r <= at_revoke),
            "{acked:?} vs {at_revoke}"
        );
        assert!(acked.len() >= 30);
        // Nothing was stored after it either.
        let out = c.etcdctl(&[ROOT, "get", "/p/", "--prefix", "-w", "json"]);
        let kvs = out.json()["kvs"].as_array().cloned().unwrap_or_default();
        assert_eq!(kvs.len(), acked.len());
        assert!(kvs
            .iter()
            .all(|kv| kv["mod_revision"].as_i64().unwrap() <= at_revoke));
    })
    .await;
}

/// Auth state and tokens across members, snapshot catch-up, a leader
/// change and a restart of every member.
#[tokio::test]
async fn auth_survives_restart_snapshots_and_leader_changes_and_tokens_work_everywhere() {
    within(LIMIT, async {
        let mut c = TestCluster::start_with_flags(
            3,
            &[
                "--bcrypt-cost=4",
                "--experimental-snapshot-catchup-entries=5",
            ],
        )
        .await;
        setup(&c);
        // A simple token made on one member works on the others.
        let eps = c.endpoints();
        let t = token(&eps[0], "alice", "pw").await;
        for ep in &eps {
            put(ep, &t, "/p/a").await.unwrap();
            assert_eq!(get(ep, &t, "/p/a").await.unwrap(), 1);
            assert_refused(
                put(ep, &t, "/x").await,
                Code::PermissionDenied,
                "etcdserver: permission denied",
            );
        }
        // Member 2 misses a grant and enough writes to need a snapshot.
        c.member_mut(2).terminate();
        c.wait_for_leader(&[0, 1]);
        c.etcdctl(&[ROOT, "role", "grant-permission", "prefix", "read", "/x"])
            .expect_success();
        for i in 0..30 {
            c.etcdctl(&[ROOT, "put", &format!("/p/k{i}"), "v"])
                .expect_success();
        }
        c.member_mut(2).restart().await;
        let log = std::fs::read_to_string(c.member(2).log_path()).unwrap();
        assert!(log.contains("restored the backend from the leader's snapshot"));
        let t2 = token(&eps[2], "alice", "pw").await;
        assert_eq!(
            get(&eps[2], &t2, "/x").await.unwrap(),
            0,
            "the grant is there"
        );
        assert_refused(
            get(&eps[2], "", "/p/a").await,
            Code::Unauthenticated,
            "etcdserver: invalid auth token",
        );
        // A new leader enforces the same.
        let (leader, _) = c.wait_for_leader(&[0, 1, 2]);
        let next = (leader + 1) % 3;
        let id = c.status(next).unwrap().0;
        c.etcdctl_on(leader, &[ROOT, "move-leader", &format!("{id:x}")])
            .expect_success();
        assert_eq!(c.wait_for_leader(&[0, 1, 2]).0, next);
        let t = token(&eps[next], "alice", "pw").await;
        put(&eps[next], &t, "/p/b").await.unwrap();
        assert_refused(
            put(&eps[next], &t, "/x").await,
            Code::PermissionDenied,
            "etcdserver: permission denied",
        );
        // Every member restarted: auth is still on, nobody reads unasked.
        c.restart_all().await;
        c.etcdctl_on(1, &["get", "/p/a"])
            .expect_error("etcdserver: user name is empty");
        c.etcdctl_on(1, &["--user=alice:pw", "get", "/p/a", "--print-value-only"])
            .expect_stdout("v\n");
    })
    .await;
}

/// Simple tokens: dropped after `--auth-token-ttl` seconds unused, kept
/// alive by use, and dropped with their user's deletion or new password.
#[tokio::test]
async fn simple_tokens_expire_when_idle_and_die_with_their_user() {
    within(LIMIT, async {
        let c = TestCluster::start_with_flags(1, &["--bcrypt-cost=4", "--auth-token-ttl=2"]).await;
        setup(&c);
        let ep = c.endpoint();
        let t = token(&ep, "alice", "pw").await;
        assert!(
            t.split_once('.')
                .is_some_and(|(p, i)| p.len() == 16 && i.parse::<u64>().is_ok()),
            "{t}"
        );
        // In use every half second for three seconds: still valid.
        for _ in 0..6 {
            get(&ep, &t, "/p/a").await.unwrap();
            tokio::time::sleep(Duration::from_millis(500)).await;
        }
        // Unused for longer than its TTL: gone.
        tokio::time::sleep(Duration::from_millis(2500)).await;
        assert_refused(
            get(&ep, &t, "/p/a").await,
            Code::Unauthenticated,
            "etcdserver: invalid auth token",
        );
        // A new password or a deletion ends the user's tokens.
        let t = token(&ep, "alice", "pw").await;
        c.etcdctl_stdin(
            &[ROOT, "user", "passwd", "alice", "--interactive=false"],
            "pw2\n",
        )
        .expect_success();
        assert_refused(
            get(&ep, &t, "/p/a").await,
            Code::Unauthenticated,
            "etcdserver: invalid auth token",
        );
        let t = token(&ep, "alice", "pw2").await;
        c.etcdctl(&[ROOT, "user", "delete", "alice"])
            .expect_success();
        assert_refused(
            get(&ep, &t, "/p/a").await,
            Code::Unauthenticated,
            "etcdserver: invalid auth token",
        );
        // Disabling auth ends every token.
        let t = token(&ep, "root", "rootpw").await;
        c.etcdctl(&[ROOT, "auth", "disable"]).expect_success();
        assert_refused(
            get(&ep, &t, "/p/a").await,
            Code::Unauthenticated,
            "etcdserver: invalid auth token",
        );
    })
    .await;
}

/// An ES256 key pair in `dir`; the `--auth-token` value using it.
fn jwt_flag(dir: &std::path::Path, ttl: &str) -> String {
    let key = rcgen::KeyPair::generate().unwrap();
    let (private, public) = (dir.join("jwt.key"), dir.join("jwt.pub"));
    std::fs::write(&private, key.serialize_pem()).unwrap();
    std::fs::write(&public, key.public_key_pem()).unwrap();
    format!(
        "--auth-token=jwt,pub-key={},priv-key={},sign-method=ES256,ttl={ttl}",
        public.display(),
        private.display()
    )
}

/// JWTs: etcd's claims with the same key pass on the reference etcd and
/// back; another member checks them without having seen them; expired
/// and tampered tokens are refused.
#[tokio::test]
async fn jwts_are_etcds_and_expired_or_tampered_ones_are_refused() {
    within(LIMIT, async {
        let dir = tempfile::tempdir().unwrap();
        let flag = jwt_flag(dir.path(), "3s");
        let flags = ["--bcrypt-cost=4", flag.as_str()];
        let etcd = TestCluster::builder(1)
            .bin(reference_etcd_bin())
            .flags(&flags)
            .start()
            .await;
        setup(&etcd);
        let ours = TestCluster::start_with_flags(3, &flags).await;
        setup(&ours);
        let theirs_ep = etcd.endpoint();
        let eps = ours.endpoints();
        let mine = token(&eps[0], "alice", "pw").await;
        let claims = mine.split('.').nth(1).unwrap();
        assert_eq!(mine.split('.').count(), 3, "{mine}");
        // The same token on every one of our members and on etcd.
        for ep in eps.iter().chain([&theirs_ep]) {
            put(ep, &mine, "/p/a").await.unwrap();
            assert_refused(
                put(ep, &mine, "/x").await,
                Code::PermissionDenied,
                "etcdserver: permission denied",
            );
        }
        let theirs = token(&theirs_ep, "alice", "pw").await;
        assert_eq!(get(&eps[1], &theirs, "/p/a").await.unwrap(), 1);
        // A changed claim breaks the signature.
        let forged_claims = claims.replacen(
            &claims[2..4],
            if &claims[2..4] == "AA" { "BB" } else { "AA" },
            1,
        );
        let forged = mine.replacen(claims, &forged_claims, 1);
        assert_refused(
            get(&eps[0], &forged, "/p/a").await,
            Code::Unauthenticated,
            "etcdserver: invalid auth token",
        );
        // Expired (ttl 3 s, no leeway).
        tokio::time::sleep(Duration::from_secs(4)).await;
        assert_refused(
            get(&eps[2], &mine, "/p/a").await,
            Code::Unauthenticated,
            "etcdserver: invalid auth token",
        );
        // Our client library gets a new token by itself; an endpoint that
        // is down is passed over for the next.
        let opts = client::ConnectOptions {
            auth: Some(("alice".into(), "pw".into())),
            ..Default::default()
        };
        let down = "http://127.0.0.1:1".to_string();
        let ours_client = client::Client::connect(&[down, eps[0].clone()], &opts)
            .await
            .unwrap();
        let read = |c: client::Client| async move {
            c.kv()
                .range(RangeRequest {
                    key: b"/p/a".to_vec(),
                    ..Default::default()
                })
                .await
        };
        assert_eq!(
            ours_client
                .with_token_refresh(read)
                .await
                .unwrap()
                .into_inner()
                .kvs
                .len(),
            1
        );
        tokio::time::sleep(Duration::from_secs(4)).await;
        assert_refused(
            read(ours_client.clone()).await,
            Code::Unauthenticated,
            "etcdserver: invalid auth token",
        );
        let got = ours_client.with_token_refresh(read).await.unwrap();
        assert_eq!(got.into_inner().kvs.len(), 1);
    })
    .await;
}

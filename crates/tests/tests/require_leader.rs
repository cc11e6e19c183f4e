//! clientv3's `WithRequireLeader` (`hasleader: true` metadata), which
//! kube-apiserver sets on its watches, compared with the reference etcd:
//! with a leader, calls and watches work as usual; once the member has
//! lost its leader, a call that requires one fails at once with
//! `etcdserver: no leader` (one that does not still reads serializably),
//! and an open watch that requires one is ended with that error within a
//! few election timeouts, so its client can move to a member with a
//! leader.

use std::time::Duration;

use etcd_client::{Client, ConnectOptions, GetOptions};
use etcd_rs_tests::bins::reference_etcd_bin;
use etcd_rs_tests::{within, TestCluster};

const LIMIT: Duration = Duration::from_secs(120);
/// How long the watch may take to end after quorum is lost: etcd waits
/// three election timeouts (1 s each here) once the leader is gone.
const END_LIMIT: Duration = Duration::from_secs(20);

/// gRPC code and message of an error, or `ok`.
fn shown<T>(r: &Result<T, etcd_client::Error>) -> String {
    match r {
        Ok(_) => "ok".to_string(),
        Err(etcd_client::Error::GRpcStatus(s)) => format!("{:?} {}", s.code(), s.message()),
        Err(e) => format!("other: {e}"),
    }
}

/// The scenario on a 3-member cluster of `bin`: what each step answered.
async fn observe(c: &mut TestCluster) -> Vec<String> {
    let opts = ConnectOptions::new().with_require_leader(true);
    let mut strict = Client::connect([c.member(0).endpoint()], Some(opts))
        .await
        .expect("connects");
    let mut plain = Client::connect([c.member(0).endpoint()], None)
        .await
        .expect("connects");
    let mut out = Vec::new();
    out.push(shown(&strict.put("k", "1", None).await));
    let mut events = strict.watch("k", None).await.expect("watch starts");
    strict.put("k", "2", None).await.expect("put");
    let mut seen = 0;
    while seen == 0 {
        let resp = events.message().await.expect("a response");
        seen = resp.map_or(0, |r| r.events().len());
    }
    out.push(format!("events {seen}"));

    c.member_mut(1).kill9();
    c.member_mut(2).kill9();
    let ended = tokio::time::timeout(END_LIMIT, async {
        loop {
            match events.message().await {
                Ok(Some(_)) => continue,
                other => return other.map(|_| ()),
            }
        }
    })
    .await;
    out.push(match ended {
        Ok(r) => format!("watch ended: {}", shown(&r)),
        Err(_) => "watch still open".to_string(),
    });
    let serializable = || GetOptions::new().with_serializable();
    out.push(shown(&strict.get("k", Some(serializable())).await));
    out.push(shown(&plain.get("k", Some(serializable())).await));
    // A new watch that requires a leader is refused (at once, or on its
    // first answer, as the client reads it).
    let refused = match strict.watch("k", None).await {
        Ok(mut w) => w.message().await.map(drop),
        Err(e) => Err(e),
    };
    out.push(shown(&refused));
    out
}

async fn scenario(reference: bool) -> Vec<String> {
    let mut c = if reference {
        TestCluster::builder(3)
            .bin(reference_etcd_bin())
            .start()
            .await
    } else {
        TestCluster::start(3).await
    };
    observe(&mut c).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn require_leader_as_etcd() {
    within(LIMIT, async {
        let (want, got) = tokio::join!(scenario(true), scenario(false));
        assert_eq!(
            want[2], "watch ended: Unavailable etcdserver: no leader",
            "{want:?}"
        );
        assert_eq!(got, want);
    })
    .await;
}

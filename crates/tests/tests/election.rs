//! Leader election (v3election and clientv3's Election recipe) on
//! etcd-rs: four campaigners of four kinds (the `etcd-client` crate's
//! Campaign, `etcdctl elect`, our client's KV recipe, Campaign through our
//! client), two observers (the `etcd-client` crate's Observe and `etcdctl
//! elect -l`) that see every leader and proclamation in order, leaders
//! that resign, are interrupted or die, and a stale leader's Proclaim
//! refused.

use std::time::{Duration, Instant};

use api::etcdserverpb::range_request::{SortOrder, SortTarget};
use api::etcdserverpb::{LeaseGrantRequest, RangeRequest};
use api::v3electionpb::{CampaignRequest, LeaderKey, ProclaimRequest, ResignRequest};
use client::concurrency::{Election, Session};
use etcd_rs_tests::bins::our_etcdctl_bin;
use etcd_rs_tests::etcdctl::Running;
use etcd_rs_tests::{within, TestCluster};
use tokio::sync::mpsc;

const LIMIT: Duration = Duration::from_secs(180);
const STEP: Duration = Duration::from_secs(20);

async fn connect(endpoint: &str) -> client::Client {
    client::Client::connect(&[endpoint.to_string()], &Default::default())
        .await
        .expect("connecting our client")
}

/// The candidates' keys under `E/`, oldest first.
async fn candidates(c: &client::Client) -> Vec<Vec<u8>> {
    let r = RangeRequest {
        key: b"E/".to_vec(),
        range_end: client::prefix_end(b"E/"),
        sort_target: SortTarget::Create as i32,
        sort_order: SortOrder::Ascend as i32,
        ..Default::default()
    };
    let got = c.kv().range(r).await.unwrap().into_inner();
    got.kvs.into_iter().map(|kv| kv.key).collect()
}

/// Waits (bounded) until there are `n` candidates.
async fn wait_for_candidates(c: &client::Client, n: usize) -> Vec<Vec<u8>> {
    let deadline = Instant::now() + STEP;
    loop {
        let keys = candidates(c).await;
        if keys.len() == n {
            return keys;
        }
        assert!(Instant::now() < deadline, "want {n} candidates: {keys:?}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// The current leader's value, by the Leader RPC.
async fn leader_value(c: &client::Client) -> Result<Vec<u8>, tonic::Status> {
    let r = api::v3electionpb::LeaderRequest {
        name: b"E".to_vec(),
    };
    let got = c.election().leader(r).await?.into_inner();
    Ok(got.kv.unwrap_or_default().value)
}

/// What both observers saw next: (key, value) from each.
struct Observers {
    crate_side: mpsc::Receiver<(Vec<u8>, Vec<u8>)>,
    etcdctl: Running,
}

impl Observers {
    /// Asserts both observers' next leader is `value` (under `key`, when
    /// given); answers the key.
    async fn expect(&mut self, value: &str, key: Option<&[u8]>) -> Vec<u8> {
        let (k, v) = tokio::time::timeout(STEP, self.crate_side.recv())
            .await
            .unwrap_or_else(|_| panic!("Observe did not show {value}"))
            .expect("the Observe stream ended");
        assert_eq!(String::from_utf8_lossy(&v), value, "Observe's next leader");
        if let Some(key) = key {
            assert_eq!(k, key, "Observe's leader key");
        }
        let line_key = self
            .etcdctl
            .next_line(STEP)
            .expect("elect -l printed a key");
        let line_value = self
            .etcdctl
            .next_line(STEP)
            .expect("elect -l printed a value");
        assert_eq!(
            (line_key.as_bytes(), line_value.as_str()),
            (k.as_slice(), value),
            "elect -l's next leader"
        );
        k
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn campaigners_lead_in_turn_and_observers_see_each_leader() {
    within(LIMIT, async {
        let cluster = TestCluster::start(1).await;
        let ep = cluster.endpoint();
        let c = connect(&ep).await;

        let no_leader = leader_value(&c).await.expect_err("no candidate yet");
        assert_eq!(no_leader.code(), tonic::Code::Unknown);
        assert_eq!(no_leader.message(), "election: no leader");

        let mut ec = etcd_client::Client::connect([ep.clone()], None)
            .await
            .unwrap();
        let mut stream = ec.observe("E").await.unwrap();
        let (tx, crate_side) = mpsc::channel(16);
        let observer = tokio::spawn(async move {
            while let Ok(Some(r)) = stream.message().await {
                let kv = r.kv().expect("an observed leader has a kv");
                if tx
                    .send((kv.key().to_vec(), kv.value().to_vec()))
                    .await
                    .is_err()
                {
                    return;
                }
            }
        });
        let etcdctl = Running::start(
            &our_etcdctl_bin(),
            std::slice::from_ref(&ep),
            &["elect", "-l", "E"],
        );
        let mut seen = Observers {
            crate_side,
            etcdctl,
        };

        // A: the etcd-client crate's Campaign.
        let lease_a = ec.lease_grant(60, None).await.unwrap().id();
        let won = ec.campaign("E", "a", lease_a).await.unwrap();
        let a = won.leader().expect("Campaign answers a leader key").clone();
        assert_eq!(a.name(), b"E");
        assert_eq!(a.lease(), lease_a);
        assert_eq!(a.key(), format!("E/{lease_a:x}").as_bytes());
        let a_key = seen.expect("a", Some(a.key())).await;
        let a_leader = LeaderKey {
            name: a.name().to_vec(),
            key: a.key().to_vec(),
            rev: a.rev(),
            lease: a.lease(),
        };
        c.election()
            .proclaim(ProclaimRequest {
                leader: Some(a_leader.clone()),
                value: b"a2".to_vec(),
            })
            .await
            .expect("the leader proclaims");
        seen.expect("a2", Some(&a_key)).await;
        assert_eq!(leader_value(&c).await.unwrap(), b"a2");

        // B: etcdctl elect; C: our client's recipe on a short session;
        // D: Campaign through our client.
        let b = Running::start(
            &our_etcdctl_bin(),
            std::slice::from_ref(&ep),
            &["elect", "E", "b"],
        );
        wait_for_candidates(&c, 2).await;
        let c_side = connect(&ep).await;
        let (c_won_tx, c_won) = tokio::sync::oneshot::channel();
        let campaigner_c = tokio::spawn(async move {
            let session = Session::new(&c_side, 5).await.unwrap();
            let mut e = Election::new(&c_side, b"E", session.lease());
            e.campaign(b"c").await.expect("c's campaign");
            let _ = c_won_tx.send(());
            // Led until told to die: the session is dropped with the task.
            std::future::pending::<()>().await;
        });
        wait_for_candidates(&c, 3).await;
        let lease_d = c
            .lease()
            .lease_grant(LeaseGrantRequest { ttl: 60, id: 0 })
            .await
            .unwrap()
            .into_inner()
            .id;
        let d = {
            let c = c.clone();
            tokio::spawn(async move {
                c.election()
                    .campaign(CampaignRequest {
                        name: b"E".to_vec(),
                        lease: lease_d,
                        value: b"d".to_vec(),
                    })
                    .await
                    .map(|r| r.into_inner())
            })
        };
        let keys = wait_for_candidates(&c, 4).await;
        assert_eq!(keys[0], a_key, "a leads while the others wait");

        // A resigns: B leads, and A's stale Proclaim is refused.
        c.election()
            .resign(ResignRequest {
                leader: Some(a_leader.clone()),
            })
            .await
            .expect("Resign");
        let b_key = b.next_line(STEP).expect("elect printed b's key");
        assert_eq!(b.next_line(STEP).as_deref(), Some("b"));
        assert_eq!(b_key.as_bytes(), keys[1].as_slice());
        seen.expect("b", Some(b_key.as_bytes())).await;
        let stale = c
            .election()
            .proclaim(ProclaimRequest {
                leader: Some(a_leader),
                value: b"stale".to_vec(),
            })
            .await
            .expect_err("a no longer leads");
        assert_eq!(stale.code(), tonic::Code::Unknown);
        assert_eq!(stale.message(), "election: not leader");
        assert_eq!(leader_value(&c).await.unwrap(), b"b");

        // B is interrupted: it resigns and C leads.
        b.signal("INT");
        let (code, _, stderr) = b.wait(STEP);
        assert_eq!((code, stderr.as_str()), (0, ""), "elect ends cleanly");
        tokio::time::timeout(STEP, c_won)
            .await
            .expect("c won in time")
            .expect("c's campaign");
        seen.expect("c", Some(&keys[2])).await;
        assert!(!d.is_finished(), "d leads while c does");

        // C dies (its session's lease is no longer renewed): D leads.
        campaigner_c.abort();
        let d_won = tokio::time::timeout(STEP, d)
            .await
            .expect("d won within the TTL of c's session")
            .unwrap()
            .expect("d's Campaign");
        let d_leader = d_won.leader.expect("Campaign answers a leader key");
        assert_eq!(d_leader.key, keys[3]);
        assert_eq!(d_leader.lease, lease_d);
        seen.expect("d", Some(&keys[3])).await;
        assert_eq!(leader_value(&c).await.unwrap(), b"d");

        c.election()
            .resign(ResignRequest {
                leader: Some(d_leader),
            })
            .await
            .unwrap();
        assert!(candidates(&c).await.is_empty());
        observer.abort();
    })
    .await
}

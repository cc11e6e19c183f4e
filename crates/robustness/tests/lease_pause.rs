//! A leader that was paused and wakes up cut off from its peers still
//! believes it leads (until its check-quorum round notices), and its
//! lessor still holds every lease, though the new leader may have expired
//! them meanwhile. A renewal it answered then would be a lie: the client
//! would count on a TTL the cluster never granted. So, as etcd's
//! `LeaseRenew` does (`ensureLeadership`), the leader confirms its
//! leadership with its peers before renewing, and a renewal on a leader
//! that cannot is refused.

use std::time::Duration;

use api::etcdserverpb::lease_client::LeaseClient;
use api::etcdserverpb::{LeaseGrantRequest, LeaseKeepAliveRequest};
use etcd_rs_tests::within;
use robustness::faults::signal;

const TTL: i64 = 2;

/// One renewal of `id` through `endpoint`: the TTL answered, or why none.
async fn renew(endpoint: &str, id: i64) -> Result<i64, String> {
    let mut lease = LeaseClient::connect(endpoint.to_string())
        .await
        .map_err(|e| e.to_string())?;
    let req = tokio_stream::iter([LeaseKeepAliveRequest { id }]);
    let mut replies = lease
        .lease_keep_alive(req)
        .await
        .map_err(|e| e.to_string())?
        .into_inner();
    match replies.message().await {
        Ok(Some(r)) => Ok(r.ttl),
        Ok(None) => Err("the stream ended".into()),
        Err(e) => Err(e.to_string()),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cut_off_leader_waking_up_renews_no_lease() {
    within(Duration::from_secs(120), async {
        let (c, links) = robustness::proxy::cluster(3).await;
        let (leader, _) = c.wait_for_leader(&[0, 1, 2]);
        let endpoint = c.member(leader).endpoint();
        let mut lease = LeaseClient::connect(endpoint.clone()).await.unwrap();
        let id = lease
            .lease_grant(LeaseGrantRequest { ttl: TTL, id: 0 })
            .await
            .unwrap()
            .into_inner()
            .id;
        assert!(renew(&endpoint, id).await.unwrap() > 0);
        let pid = c.member(leader).pid().unwrap();
        assert!(signal(pid, "-STOP"));
        for other in (0..3).filter(|&o| o != leader) {
            links.cut(leader, other);
            links.cut(other, leader);
        }
        // The others elect a leader, which expires the lease: nobody
        // renews it there.
        let rest: Vec<usize> = (0..3).filter(|&i| i != leader).collect();
        let (new, _) = c.wait_for_leader(&rest);
        tokio::time::sleep(Duration::from_secs(2 * TTL as u64 + 2)).await;
        assert_eq!(renew(&c.member(new).endpoint(), id).await, Ok(0), "expired");
        assert!(signal(pid, "-CONT"));
        let answer = tokio::time::timeout(Duration::from_secs(10), renew(&endpoint, id)).await;
        assert!(
            !matches!(answer, Ok(Ok(ttl)) if ttl > 0),
            "the cut-off old leader renewed a lease the cluster expired: {answer:?}"
        );
        links.heal();
    })
    .await
}

//! A snapshot goes to a follower on a stream and a task of its own: while
//! a backend of several MiB crawls over a slow link, the leader's
//! heartbeats keep reaching the follower, which so never loses its leader
//! (with the snapshot sent inline, they waited behind it, and the follower
//! went looking for a new leader after an election timeout).

use std::time::{Duration, Instant};

use api::etcdserverpb::kv_client::KvClient;
use api::etcdserverpb::PutRequest;
use etcd_rs_tests::within;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn heartbeats_reach_a_follower_while_it_receives_a_snapshot() {
    within(Duration::from_secs(180), async {
        let (mut c, links) = robustness::proxy::cluster(3).await;
        let (leader, _) = c.wait_for_leader(&[0, 1, 2]);
        let follower = (leader + 1) % 3;
        c.member_mut(follower).kill9();
        // 300 entries of 16 KiB: past the 100 the leader keeps for
        // catching up, so the follower needs a snapshot of ~5 MiB.
        let mut kv = KvClient::connect(c.member(leader).endpoint())
            .await
            .unwrap();
        for i in 0..300 {
            kv.put(PutRequest {
                key: format!("/big/{i}").into_bytes(),
                value: vec![b'x'; 16 * 1024],
                ..Default::default()
            })
            .await
            .unwrap();
        }
        // About 0.6 s per MiB from the leader to the follower.
        links.slow(leader, follower, Duration::from_millis(40));
        c.member_mut(follower).start_again();
        links.set_pid(follower, c.member(follower).pid());
        let log_path = c.member(follower).log_path();
        let deadline = Instant::now() + Duration::from_secs(120);
        let log = loop {
            let log = std::fs::read_to_string(&log_path).unwrap_or_default();
            if log.contains("restored the backend from the leader's snapshot") {
                break log;
            }
            assert!(Instant::now() < deadline, "no snapshot restored:\n{log}");
            tokio::time::sleep(Duration::from_millis(200)).await;
        };
        let from = log.find("receiving database snapshot").expect("received");
        let during = &log[from..log.find("restored the backend").unwrap()];
        assert!(
            !during.contains("lost leader"),
            "the follower lost its leader while the snapshot came:\n{during}"
        );
        links.heal();
    })
    .await
}

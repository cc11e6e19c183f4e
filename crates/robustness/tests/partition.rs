//! The proxies really cut links: a leader cut off from its peers loses
//! leadership to one of them, and the cluster serves writes through the
//! others; healed, it follows the new leader.

use std::time::{Duration, Instant};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_isolated_leader_is_replaced() {
    let (c, links) = robustness::proxy::cluster(3).await;
    let (old, _) = c.wait_for_leader(&[0, 1, 2]);
    let rest: Vec<usize> = (0..3).filter(|&i| i != old).collect();
    for &o in &rest {
        links.cut(old, o);
        links.cut(o, old);
    }
    let (new, _) = c.wait_for_leader(&rest);
    assert_ne!(new, old);
    c.etcdctl_on(new, &["put", "k", "after"]).expect_success();
    // The cut-off member cannot make a linearizable read.
    let out = c.etcdctl_on(old, &["--command-timeout=3s", "get", "k"]);
    assert_ne!(out.code, 0, "{out}");
    links.heal();
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let out = c.etcdctl_on(old, &["get", "k", "--print-value-only"]);
        if out.stdout == "after\n" {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the healed member never caught up: {out}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

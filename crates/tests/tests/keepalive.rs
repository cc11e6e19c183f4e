//! Our client's HTTP/2 pings keep to etcd's ping policy: real etcd
//! (`--grpc-keepalive-min-time` 5 s, no pings without a call) answers
//! pings that come more often with GOAWAY `too_many_pings`, which ended
//! our etcdctl's quiet watches and long calls (a defragmentation) after a
//! few seconds. Like grpc-go, ours pings at most every 10 s and only
//! while a call is open.

use std::time::Duration;

use etcd_rs_tests::bins::{our_etcdctl_bin, reference_etcd_bin};
use etcd_rs_tests::etcdctl::Running;
use etcd_rs_tests::{within, TestCluster};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_quiet_watch_on_real_etcd_outlives_its_ping_policy() {
    within(Duration::from_secs(60), async {
        let cluster = TestCluster::builder(1)
            .bin(reference_etcd_bin())
            .start()
            .await;
        // etcdctl's default --keepalive-time is 2 s: 15 s of quiet is seven
        // of its pings, past the two strikes etcd allows.
        let watch = Running::start(&our_etcdctl_bin(), &cluster.endpoints(), &["watch", "k"]);
        assert_eq!(watch.next_line(Duration::from_secs(15)), None);
        cluster.etcdctl(&["put", "k", "v"]).expect_stdout("OK\n");
        for want in ["PUT", "k", "v"] {
            assert_eq!(
                watch.next_line(Duration::from_secs(10)).as_deref(),
                Some(want)
            );
        }
    })
    .await
}

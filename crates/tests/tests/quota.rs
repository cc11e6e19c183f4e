//! The space quota (`--quota-backend-bytes`): a 3-member cluster with a
//! small quota fills up; the member that takes the write that does not
//! fit raises NOSPACE through raft, and then every member refuses puts,
//! transactions that write and lease grants with etcd's error, while
//! reads, deletes, compaction and defragmentation go on; the alarm
//! survives a restart of every member, and once compaction gave the space
//! back and the alarm is disarmed, writes are accepted again.

use std::time::Duration;

use etcd_client::{Client, Compare, CompareOp, Txn, TxnOp};
use etcd_rs_tests::{within, TestCluster};

const LIMIT: Duration = Duration::from_secs(180);
/// Small enough to fill in seconds, above what a fresh backend takes.
const QUOTA: u64 = 16 * 1024 * 1024;
const NOSPACE: &str = "etcdserver: mvcc: database space exceeded";

fn refused<T: std::fmt::Debug>(r: Result<T, etcd_client::Error>) -> String {
    match r {
        Err(etcd_client::Error::GRpcStatus(s)) => {
            assert_eq!(s.code(), tonic::Code::ResourceExhausted, "{s:?}");
            s.message().to_string()
        }
        other => panic!("expected a refusal, got {other:?}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_backend_raises_nospace_on_every_member() {
    within(LIMIT, async {
        let quota = format!("--quota-backend-bytes={QUOTA}");
        let mut cluster = TestCluster::start_with_flags(3, &[&quota]).await;
        let eps = cluster.endpoints();
        let mut c = Client::connect([eps[0].clone()], None).await.unwrap();
        // Under 256 KiB with the key and its record: redb gives a value larger
        // than a page a power-of-two run of pages.
        let value = vec![b'v'; 250_000];
        let mut n = 0u64;
        let first = loop {
            match c.put(format!("fill-{n}"), value.clone(), None).await {
                Ok(_) => n += 1,
                Err(e) => break refused::<()>(Err(e)),
            }
            assert!(
                n < 1000,
                "{n} puts of 250,000 bytes fit in a {QUOTA}-byte quota"
            );
        };
        assert_eq!(first, NOSPACE);
        // That refusal came from the API layer, which raised NOSPACE, or
        // from the apply stage (a put that passed the API layer on a size
        // the commit before it had not yet grown), which raises nothing
        // and keeps the put, as etcd's quotaApplierV3. Either way the next
        // put is refused by the API layer or the alarm.
        if c.get(format!("fill-{n}"), None).await.unwrap().kvs().len() == 1 {
            n += 1;
        }
        assert_eq!(
            refused(c.put(format!("fill-{n}"), value.clone(), None).await),
            NOSPACE
        );
        // The quota counts the space written, as etcd's bbolt high-water
        // mark does, not the length redb reserves ahead (up to twice it).
        assert!(
            n * value.len() as u64 >= QUOTA * 3 / 4,
            "only {n} puts of 250,000 bytes fit in a {QUOTA}-byte quota"
        );

        let alarm = |c: &TestCluster, i: usize| c.etcdctl_on(i, &["alarm", "list"]);
        let listed = alarm(&cluster, 0);
        listed.expect_success();
        assert!(listed.stdout.ends_with(" alarm:NOSPACE \n"), "{listed}");
        for (i, ep) in eps.iter().enumerate() {
            let mut m = Client::connect([ep.clone()], None).await.unwrap();
            assert_eq!(
                refused(m.put("small", "x", None).await),
                NOSPACE,
                "member {i}"
            );
            assert_eq!(
                refused(m.lease_grant(60, None).await),
                NOSPACE,
                "member {i}"
            );
            let write = Txn::new()
                .when([Compare::version("small", CompareOp::Equal, 0)])
                .and_then([TxnOp::put("small", "x", None)]);
            assert_eq!(refused(m.txn(write).await), NOSPACE, "member {i}");
            // Reads and read-only transactions go on.
            assert_eq!(m.get("fill-0", None).await.unwrap().kvs().len(), 1);
            let read = Txn::new().and_then([TxnOp::get("fill-0", None)]);
            assert!(m.txn(read).await.unwrap().succeeded());
        }
        // Each member whose own backend was past the quota when it refused
        // raised its own NOSPACE, as etcd's do (backends' sizes differ, so
        // one or more); every member lists them all.
        let listed = alarm(&cluster, 0);
        assert!(listed.stdout.lines().count() >= 1, "{listed}");
        assert!(listed
            .stdout
            .lines()
            .all(|l| l.ends_with(" alarm:NOSPACE ")));
        for i in 1..3 {
            assert_eq!(alarm(&cluster, i).stdout, listed.stdout, "member {i}");
        }
        // Deletes and compaction are accepted.
        let all = etcd_client::DeleteOptions::new().with_prefix();
        let del = c.delete("fill-", Some(all)).await.unwrap();
        assert_eq!(del.deleted(), n as i64);
        let rev = del.header().unwrap().revision();
        c.compact(rev, None).await.unwrap();

        cluster.restart_all().await;
        assert_eq!(
            alarm(&cluster, 1).stdout,
            listed.stdout,
            "the alarm survives a restart"
        );
        let mut c = Client::connect([cluster.endpoint()], None).await.unwrap();
        assert_eq!(refused(c.put("small", "x", None).await), NOSPACE);
        // Defragmentation is accepted under the alarm, on every member.
        let defrag = cluster.etcdctl(&["defrag", "--cluster"]);
        defrag.expect_success();
        assert_eq!(defrag.stdout.lines().count(), 3, "{defrag}");
        let size = c.status().await.unwrap().db_size() as u64;
        assert!(
            size < QUOTA,
            "the compacted, defragmented backend still takes {size} bytes"
        );

        let disarmed = cluster.etcdctl(&["alarm", "disarm"]);
        disarmed.expect_success();
        assert_eq!(
            disarmed.stdout, listed.stdout,
            "disarm prints what it disarmed"
        );
        for i in 0..3 {
            alarm(&cluster, i).expect_stdout("");
        }
        // The compaction gave the space back: writes are accepted again.
        c.put("small", "x", None).await.unwrap();
        c.lease_grant(60, None).await.unwrap();
    })
    .await
}

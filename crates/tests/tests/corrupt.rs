//! `--experimental-initial-corrupt-check`: a restarted member whose key
//! history differs from its peers' at the same revision refuses to start;
//! members whose histories agree pass the check and serve. And
//! `--experimental-corrupt-check-time`: with the same divergence at run
//! time, the leader's periodic check raises the CORRUPT alarm and the
//! cluster refuses writes.

use std::process::Command;
use std::time::{Duration, Instant};

use etcd_rs_tests::{within, TestCluster};

const LIMIT: Duration = Duration::from_secs(120);

/// Waits until every member reads `value` for `k` from its own store.
fn replicated(c: &TestCluster, value: &str) {
    let deadline = Instant::now() + Duration::from_secs(20);
    for i in 0..c.members().len() {
        loop {
            let out = c.etcdctl_on(i, &["get", "k", "--consistency=s", "--print-value-only"]);
            if out.stdout == format!("{value}\n") {
                break;
            }
            assert!(
                Instant::now() < deadline,
                "m{i} did not get k={value}: {out}"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

fn stop_all(c: &mut TestCluster) {
    for i in 0..c.members().len() {
        c.member_mut(i).terminate();
    }
}

/// A stopped 3-member cluster whose m2 holds "a" at revision 2 where its
/// peers hold "b": the same cluster (same ids) was bootstrapped twice and
/// m2 got its data of the first back.
async fn diverged(flags: &[&str]) -> TestCluster {
    let mut c = TestCluster::builder(3).flags(flags).start().await;
    c.etcdctl(&["put", "k", "a"]).expect_stdout("OK\n");
    replicated(&c, "a");
    stop_all(&mut c);
    let saved = tempfile::tempdir().unwrap();
    let m2_data = c.member(2).data_dir();
    let copy = |from: &std::path::Path, to: &std::path::Path| {
        let ok = Command::new("cp")
            .arg("-a")
            .arg(from)
            .arg(to)
            .status()
            .unwrap();
        assert!(ok.success());
    };
    copy(&m2_data, &saved.path().join("data"));
    for i in 0..3 {
        c.member_mut(i).wipe();
        c.member_mut(i).start_again();
    }
    for i in 0..3 {
        c.member_mut(i).wait_healthy().await.unwrap();
    }
    c.etcdctl(&["put", "k", "b"]).expect_stdout("OK\n");
    replicated(&c, "b");
    stop_all(&mut c);
    std::fs::remove_dir_all(&m2_data).unwrap();
    copy(&saved.path().join("data"), &m2_data);
    c
}

#[tokio::test]
async fn a_member_whose_data_diverged_refuses_to_start() {
    within(LIMIT, async {
        let mut c = diverged(&["--experimental-initial-corrupt-check"]).await;
        for i in 0..2 {
            c.member_mut(i).start_again();
        }
        for i in 0..2 {
            c.member_mut(i).wait_healthy().await.unwrap();
            let log = std::fs::read_to_string(c.member(i).log_path()).unwrap();
            assert!(
                log.contains("initial corruption checking passed; no corruption"),
                "m{i}"
            );
        }
        c.member_mut(2).start_again();
        let why = c.member_mut(2).wait_healthy().await.unwrap_err();
        assert!(why.contains("exited early"), "{why}");
        let log = std::fs::read_to_string(c.member(2).log_path()).unwrap();
        assert!(
            log.contains("found different hash values from remote peer"),
            "{log}"
        );
        assert!(log.contains("found data inconsistency with peers"), "{log}");
        // The others still serve.
        c.etcdctl_on(0, &["get", "k", "--print-value-only"])
            .expect_stdout("b\n");
    })
    .await;
}

#[tokio::test]
async fn the_periodic_check_raises_corrupt_and_writes_are_refused() {
    within(LIMIT, async {
        let mut c = diverged(&["--experimental-corrupt-check-time=500ms"]).await;
        for i in 0..3 {
            c.member_mut(i).start_again();
        }
        for i in 0..3 {
            c.member_mut(i).wait_healthy().await.unwrap();
        }
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let out = c.etcdctl(&["alarm", "list"]);
            // Member 0, which gogo's text leaves out.
            if out.stdout == "alarm:CORRUPT \n" {
                break;
            }
            assert!(Instant::now() < deadline, "no CORRUPT alarm: {out}");
            std::thread::sleep(Duration::from_millis(100));
        }
        let put = c.etcdctl(&["put", "k", "c"]);
        assert_eq!(put.code, 1, "{put}");
        assert!(
            put.stderr.contains("Error: etcdserver: corrupt cluster"),
            "{put}"
        );
        // Reads still work, and the alarm is in every member's status.
        for i in 0..3 {
            let status = c.etcdctl_on(i, &["endpoint", "status", "-w", "json"]);
            assert!(status.stdout.contains("alarm:CORRUPT"), "m{i}: {status}");
        }
        c.etcdctl_on(0, &["get", "k", "--print-value-only"])
            .expect_stdout("b\n");
        let log: String = (0..3)
            .map(|i| std::fs::read_to_string(c.member(i).log_path()).unwrap())
            .collect();
        assert!(
            log.contains("same compact revision then hashes must match"),
            "{log}"
        );
    })
    .await;
}

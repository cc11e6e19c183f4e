//! `--experimental-initial-corrupt-check`: a restarted member whose key
//! history differs from its peers' at the same revision refuses to start;
//! members whose histories agree pass the check and serve.

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

#[tokio::test]
async fn a_member_whose_data_diverged_refuses_to_start() {
    within(LIMIT, async {
        let mut c = TestCluster::builder(3)
            .flags(&["--experimental-initial-corrupt-check"])
            .start()
            .await;
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

        // The same cluster (same ids) bootstrapped again, with another
        // value at the same revision.
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

        // m2 gets its old data back: revision 2 holds "a" there, "b" on
        // its peers.
        std::fs::remove_dir_all(&m2_data).unwrap();
        copy(&saved.path().join("data"), &m2_data);
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

//! The `etcd` process as an operator sees it: `--version`, defaults with no
//! flags, structured start-up logs with etcd's milestones, `/version`, and a
//! clean stop on SIGTERM that keeps every acknowledged write.
//!
//! These check etcd-rs's own binary (its version strings and log lines are
//! etcd 3.5's, which the reference etcd 3.4 does not print).

use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use etcd_rs_tests::bins::etcd_bin;
use etcd_rs_tests::etcdctl::etcdctl;
use etcd_rs_tests::health::{http_get, is_healthy};
use etcd_rs_tests::process::{run, terminate};
use etcd_rs_tests::{within, TestCluster};

const LIMIT: Duration = Duration::from_secs(60);

#[test]
fn version_flag_names_the_etcd_api_and_etcd_rs() {
    let mut cmd = Command::new(etcd_bin());
    cmd.arg("--version");
    let out = run(cmd, None, Duration::from_secs(10));
    out.expect_success();
    let first = out.stdout.lines().next().unwrap_or_default();
    assert!(first.starts_with("etcd Version: 3.5."), "{out}");
    assert!(out.stdout.contains("\netcd-rs Version: "), "{out}");
    assert!(out.stdout.contains("\nAPI Version: 3.5\n"), "{out}");
}

#[tokio::test]
async fn startup_logs_are_json_lines_with_etcds_milestones() {
    within(LIMIT, async {
        let c = TestCluster::start(1).await;
        let log = std::fs::read_to_string(c.member(0).log_path()).unwrap();
        let mut msgs = Vec::new();
        for line in log.lines().filter(|l| l.starts_with('{')) {
            let v: serde_json::Value =
                serde_json::from_str(line).unwrap_or_else(|e| panic!("not JSON ({e}): {line}"));
            for key in ["level", "ts", "caller", "msg"] {
                assert!(v[key].is_string(), "no {key:?} in {line}");
            }
            msgs.push(v["msg"].as_str().unwrap().to_string());
        }
        for milestone in [
            "enabled capabilities for version",
            "published local member to cluster through raft",
            "ready to serve client requests",
        ] {
            assert!(
                msgs.iter().any(|m| m == milestone),
                "no {milestone:?} in:\n{log}"
            );
        }
    })
    .await
}

/// `--log-outputs` with a file and stderr writes every line to both.
#[tokio::test]
async fn log_outputs_write_to_files_and_stderr() {
    within(LIMIT, async {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("etcd.log");
        let flag = format!("--log-outputs={},stderr", file.display());
        let c = TestCluster::start_with_flags(1, &[&flag]).await;
        let stderr = std::fs::read_to_string(c.member(0).log_path()).unwrap();
        let logged = std::fs::read_to_string(&file).unwrap();
        let ready = |text: &str| {
            text.lines()
                .any(|l| l.contains(r#""msg":"ready to serve client requests""#))
        };
        assert!(ready(&logged), "the file has the lines: {logged}");
        assert!(ready(&stderr), "stderr has them too: {stderr}");
    })
    .await
}

#[tokio::test]
async fn http_version_reports_server_and_cluster_versions() {
    within(LIMIT, async {
        let c = TestCluster::start(1).await;
        let addr = format!("127.0.0.1:{}", c.member(0).client_port())
            .parse()
            .unwrap();
        let resp = http_get(addr, "/version", Duration::from_secs(5)).unwrap();
        assert_eq!(resp.status, 200);
        let v: serde_json::Value = serde_json::from_str(&resp.body).unwrap();
        assert!(v["etcdserver"].as_str().unwrap().starts_with("3.5."), "{v}");
        assert_eq!(v["etcdcluster"], "3.5.0", "{v}");
    })
    .await
}

#[tokio::test]
async fn sigterm_stops_cleanly_and_keeps_acknowledged_writes() {
    within(LIMIT, async {
        let mut c = TestCluster::start(1).await;
        c.etcdctl(&["put", "before-stop", "kept"])
            .expect_stdout("OK\n");
        let status = c.member_mut(0).terminate();
        assert!(status.success(), "exit status after SIGTERM: {status}");
        let log = std::fs::read_to_string(c.member(0).log_path()).unwrap();
        assert!(log.contains("received signal; shutting down"), "{log}");
        c.member_mut(0).restart().await;
        c.etcdctl(&["get", "before-stop"])
            .expect_stdout("before-stop\nkept\n");
    })
    .await
}

/// Kills the default member if the test ends early.
struct Guard(Option<Child>);

impl Drop for Guard {
    fn drop(&mut self) {
        if let Some(mut c) = self.0.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

fn wait_healthy(addr: std::net::SocketAddr, child: &mut Child, limit: Duration) {
    let deadline = Instant::now() + limit;
    loop {
        if let Ok(r) = http_get(addr, "/health", Duration::from_secs(1)) {
            if is_healthy(&r) {
                return;
            }
        }
        if let Some(status) = child.try_wait().unwrap() {
            panic!("etcd exited before it was healthy: {status}");
        }
        assert!(
            Instant::now() < deadline,
            "etcd not healthy within {limit:?}"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// `etcd` with no flags: member `default` with etcd's ids, data in
/// `default.etcd`, clients on localhost:2379, peers on localhost:2380.
/// (Needs 127.0.0.1:2379 free, as etcd itself does.)
#[test]
fn no_flags_start_the_default_member() {
    let cwd = tempfile::tempdir().unwrap();
    let log = std::fs::File::create(cwd.path().join("etcd.log")).unwrap();
    let child = Command::new(etcd_bin())
        .current_dir(cwd.path())
        .env_clear()
        .stdout(Stdio::null())
        .stderr(log)
        .spawn()
        .unwrap();
    let mut guard = Guard(Some(child));
    let child = guard.0.as_mut().unwrap();
    wait_healthy(
        "127.0.0.1:2379".parse().unwrap(),
        child,
        Duration::from_secs(20),
    );

    let ep = ["127.0.0.1:2379".to_string()];
    etcdctl(&ep, &["member", "list"], None).expect_stdout(
        "8e9e05c52164694d, started, default, http://localhost:2380, http://localhost:2379, false\n",
    );
    let data: &Path = &cwd.path().join("default.etcd").join("member");
    assert!(data.join("wal").is_dir(), "no default.etcd/member/wal");
    assert!(
        data.join("snap").join("db").is_file(),
        "no default.etcd/member/snap/db"
    );
    let status = terminate(child, Duration::from_secs(20));
    guard.0 = None;
    assert!(status.success(), "{status}");
}

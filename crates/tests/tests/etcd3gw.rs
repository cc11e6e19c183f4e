//! python-etcd3gw (PyPI `etcd3gw`, the gateway client of OpenStack's
//! tooling) runs its own operations (`python/etcd3gw_ops.py`: keys,
//! transactions, leases, watches, locks, status, members) against
//! etcd-rs's gateway, and against the reference etcd to show the script
//! asks only what etcd answers. The Python with etcd3gw installed is
//! `ETCD3GW_PYTHON`, by default the virtualenv `scripts/test.sh` makes in
//! `target/pyenv`; without it the test fails and says how to make it.

use std::path::PathBuf;
use std::process::Command;
use std::time::Duration;

use etcd_rs_tests::bins::reference_etcd_bin;
use etcd_rs_tests::{within, TestCluster};

const LIMIT: Duration = Duration::from_secs(120);

fn python() -> PathBuf {
    if let Some(p) = std::env::var_os("ETCD3GW_PYTHON") {
        return PathBuf::from(p);
    }
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..");
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| root.join("target"));
    target.join("pyenv/bin/python3")
}

fn run_ops(endpoint: &str) {
    let py = python();
    assert!(
        py.exists(),
        "{} is missing: run scripts/test.sh (it makes the virtualenv with etcd3gw), or set ETCD3GW_PYTHON",
        py.display()
    );
    let script = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("python/etcd3gw_ops.py");
    let out = Command::new("timeout")
        .arg("60")
        .arg(&py)
        .arg(&script)
        .env("ETCD_ENDPOINT", endpoint)
        .output()
        .expect("python runs");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success() && stdout.trim() == "OK",
        "etcd3gw against {endpoint}: {}\n{stdout}\n{}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn etcd3gw_runs_its_operations() {
    within(LIMIT, async {
        let reference = TestCluster::builder(1)
            .bin(reference_etcd_bin())
            .start()
            .await;
        let e = reference.endpoint();
        tokio::task::spawn_blocking(move || run_ops(&e))
            .await
            .unwrap();
        let ours = TestCluster::start(3).await;
        let e = ours.endpoint();
        tokio::task::spawn_blocking(move || run_ops(&e))
            .await
            .unwrap();
    })
    .await
}

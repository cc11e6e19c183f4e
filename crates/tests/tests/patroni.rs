//! PostgreSQL high availability on etcd-rs: `scripts/patroni-demo.sh`
//! (3 etcd-rs members, 2 PostgreSQL nodes under Patroni's `etcd3` DCS,
//! which reaches etcd through its JSON gateway) must show the leader, the
//! replica promoted after the primary is killed, and Patroni keeping its
//! leader key after the etcd-rs leader is killed. Needs what
//! `scripts/test.sh` installs (PostgreSQL, Patroni in `target/pyenv`); the
//! script fails, and so does this test, when something is missing.

use std::process::Command;

use etcd_rs_tests::bins::etcd_bin;

#[test]
fn patroni_fails_over_on_etcd_rs() {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    let out = Command::new("timeout")
        .args(["300", "bash"])
        .arg(root.join("scripts/patroni-demo.sh"))
        .env("ETCD_BIN", etcd_bin())
        .output()
        .expect("bash runs");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success(),
        "the demo failed ({}):\n{stdout}\n{stderr}",
        out.status
    );
    for step in [
        "== Patroni with its leader on etcd-rs",
        "== pg1 promoted",
        "== Patroni kept its leader key on etcd-rs: /service/demo/leader = pg1",
        "patroni-demo: OK",
    ] {
        assert!(stdout.contains(step), "no {step:?} in:\n{stdout}");
    }
    // The table patronictl printed after the failover names pg1 the leader.
    let after = stdout.split("== pg1 promoted").nth(1).unwrap_or("");
    assert!(
        after
            .lines()
            .any(|l| l.contains("| pg1") && l.contains("| Leader")),
        "{after}"
    );
}

//! The short form of the fault runs, part of the test command: two seeds
//! must pass every check, and a member built with the planted bug
//! (feature `planted-stale-reads`: linearizable reads skip ReadIndex) must
//! be caught within three seeds.

use std::path::{Path, PathBuf};
use std::process::Command;

/// Builds `etcd` with the planted bug into a target directory of its own
/// (so the real binary the other tests use is never replaced); its path.
fn planted_etcd() -> PathBuf {
    let workspace = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    let target = workspace.join("target/planted");
    let status = Command::new(env!("CARGO"))
        .current_dir(&workspace)
        .args(["build", "-p", "etcd-rs-server", "--bin", "etcd"])
        .args(["--features", "planted-stale-reads", "--target-dir"])
        .arg(&target)
        .status()
        .expect("cargo runs");
    assert!(
        status.success(),
        "building etcd with the planted bug failed"
    );
    target.join("debug/etcd")
}

fn run(seed: u64, etcd: Option<&Path>) -> (bool, String) {
    let reports = tempfile::tempdir().expect("a temporary directory");
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_robustness"));
    cmd.args(["--seed", &seed.to_string(), "--seconds", "12"])
        .arg("--report-dir")
        .arg(reports.path());
    if let Some(etcd) = etcd {
        cmd.env("ETCD_BIN", etcd);
    }
    let out = cmd.output().expect("the robustness binary runs");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.success(), text)
}

#[test]
fn fault_runs_pass_every_check() {
    for seed in [11, 12] {
        let (ok, text) = run(seed, None);
        assert!(ok, "seed {seed} failed:\n{text}");
        assert!(text.contains("members agree"), "{text}");
    }
}

#[test]
fn a_planted_stale_read_is_caught() {
    let etcd = planted_etcd();
    let mut seen = Vec::new();
    for seed in [21, 22, 23] {
        let (ok, text) = run(seed, Some(&etcd));
        if !ok && text.contains("NOT LINEARIZABLE") {
            return;
        }
        seen.push(text);
    }
    panic!("stale reads passed three seeds:\n{}", seen.join("\n"));
}

//! The short form of the fault runs, part of the test command: two seeds
//! must pass every check on a member built with the `failpoints` feature
//! (so that the disk-full fault bites), and a member built with the
//! planted bug (feature `planted-stale-reads`: linearizable reads skip
//! ReadIndex) must be caught within three seeds.

mod common;

use std::path::Path;
use std::process::Command;

use common::build_etcd;

fn run(seed: u64, etcd: &Path) -> (bool, String) {
    let reports = tempfile::tempdir().expect("a temporary directory");
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_robustness"));
    cmd.args(["--seed", &seed.to_string(), "--seconds", "12"])
        .arg("--report-dir")
        .arg(reports.path())
        .env("ETCD_BIN", etcd);
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
    let etcd = build_etcd("failpoints", "failpoints");
    for seed in [11, 12] {
        let (ok, text) = run(seed, &etcd);
        assert!(ok, "seed {seed} failed:\n{text}");
        assert!(text.contains("members agree"), "{text}");
    }
}

#[test]
fn a_planted_stale_read_is_caught() {
    let etcd = build_etcd("planted-stale-reads", "planted");
    let mut seen = Vec::new();
    for seed in [21, 22, 23] {
        let (ok, text) = run(seed, &etcd);
        if !ok && text.contains("NOT LINEARIZABLE") {
            return;
        }
        seen.push(text);
    }
    panic!("stale reads passed three seeds:\n{}", seen.join("\n"));
}

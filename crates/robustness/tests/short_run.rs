//! The short form of the fault runs, part of the test command: two seeds
//! must pass every check, and with the planted bug (stale reads) the
//! checker must fail within three seeds.

use std::process::Command;

fn run(seed: u64, planted: bool) -> (bool, String) {
    let reports = tempfile::tempdir().expect("a temporary directory");
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_robustness"));
    cmd.args(["--seed", &seed.to_string(), "--seconds", "12"])
        .arg("--report-dir")
        .arg(reports.path());
    if planted {
        cmd.arg("--stale-reads");
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
        let (ok, text) = run(seed, false);
        assert!(ok, "seed {seed} failed:\n{text}");
        assert!(text.contains("members agree"), "{text}");
    }
}

#[test]
fn a_planted_stale_read_is_caught() {
    let mut seen = Vec::new();
    for seed in [21, 22, 23] {
        let (ok, text) = run(seed, true);
        if !ok && text.contains("NOT LINEARIZABLE") {
            return;
        }
        seen.push(text);
    }
    panic!("stale reads passed three seeds:\n{}", seen.join("\n"));
}

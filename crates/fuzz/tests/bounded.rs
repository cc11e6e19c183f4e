//! The bounded fuzz run of the test command: every target on its seeds,
//! on every input kept in `corpus/<target>/` (libFuzzer's findings and the
//! regression inputs of crashes it found), then on `FUZZ_ITERATIONS`
//! (default 20,000) seeded mutations of them. A panicking input is written
//! to the cargo target tmpdir and the test fails naming it; add it to the
//! corpus once fixed.

use std::panic::{catch_unwind, AssertUnwindSafe};
use std::path::{Path, PathBuf};

use fuzz::mutate::{mutate, Rng};
use fuzz::Target;

fn inputs(name: &str) -> Vec<Vec<u8>> {
    let mut out = fuzz::seeds(name);
    let dir = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("corpus")
        .join(name);
    if let Ok(entries) = std::fs::read_dir(&dir) {
        let mut paths: Vec<PathBuf> = entries.map(|e| e.unwrap().path()).collect();
        paths.sort();
        out.extend(paths.iter().map(|p| std::fs::read(p).unwrap()));
    }
    assert!(!out.is_empty(), "{name} has no seeds");
    out
}

fn run(name: &str, target: Target) {
    let iterations: usize = std::env::var("FUZZ_ITERATIONS")
        .map(|v| v.parse().expect("FUZZ_ITERATIONS is a number"))
        .unwrap_or(20_000);
    let corpus = inputs(name);
    let mut rng = Rng::new(0x5eed ^ name.len() as u64);
    let check = |i: usize, input: &[u8]| {
        if catch_unwind(AssertUnwindSafe(|| target(input))).is_err() {
            let path = Path::new(env!("CARGO_TARGET_TMPDIR")).join(format!("fuzz-{name}-{i}"));
            std::fs::write(&path, input).unwrap();
            panic!(
                "{name} panicked on input {i} ({} bytes), saved to {}",
                input.len(),
                path.display()
            );
        }
    };
    for (i, input) in corpus.iter().enumerate() {
        check(i, input);
    }
    for i in 0..iterations {
        let base = &corpus[rng.below(corpus.len())];
        let other = &corpus[rng.below(corpus.len())];
        let input = mutate(&mut rng, base, other);
        check(corpus.len() + i, &input);
    }
}

fn target(name: &str) -> Target {
    fuzz::TARGETS
        .iter()
        .find(|(n, _)| *n == name)
        .map(|(_, t)| *t)
        .expect("a target of that name")
}

#[test]
fn wal_segment() {
    run("wal_segment", target("wal_segment"));
}

#[test]
fn snapshot_record() {
    run("snapshot_record", target("snapshot_record"));
}

#[test]
fn peer_message() {
    run("peer_message", target("peer_message"));
}

#[test]
fn request_validation() {
    run("request_validation", target("request_validation"));
}

#[test]
fn txn_eval() {
    run("txn_eval", target("txn_eval"));
}

#[test]
fn every_target_has_a_test_here() {
    let names: Vec<&str> = fuzz::TARGETS.iter().map(|(n, _)| *n).collect();
    assert_eq!(
        names,
        [
            "wal_segment",
            "snapshot_record",
            "peer_message",
            "request_validation",
            "txn_eval"
        ]
    );
}

//! What the tests of failpoint builds share.

use std::path::{Path, PathBuf};
use std::process::Command;

/// Builds `etcd` with `features` into a target directory of its own (so
/// the real binary the other tests use is never replaced), copied to
/// `etcd-<name>` there; its path.
pub fn build_etcd(features: &str, name: &str) -> PathBuf {
    // Tests of one binary build in parallel into one directory: one at a
    // time, each copying its binary before the other overwrites it.
    static BUILD: std::sync::Mutex<()> = std::sync::Mutex::new(());
    let _one = BUILD.lock().unwrap_or_else(|e| e.into_inner());
    let workspace = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    let target = workspace.join("target/faults");
    let status = Command::new(env!("CARGO"))
        .current_dir(&workspace)
        .args(["build", "-p", "etcd-rs-server", "--bin", "etcd"])
        .args(["--features", features, "--target-dir"])
        .arg(&target)
        .status()
        .expect("cargo runs");
    assert!(status.success(), "building etcd with {features} failed");
    let copy = target.join(format!("etcd-{name}"));
    std::fs::copy(target.join("debug/etcd"), &copy).expect("copy the built etcd");
    copy
}

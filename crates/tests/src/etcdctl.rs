//! Running the Go `etcdctl` (v3 API) against a set of endpoints.
//!
//! Every invocation gets `ETCDCTL_API=3`, explicit `--endpoints`, bounded
//! `--dial-timeout` and `--command-timeout`, a hard process deadline, and no
//! inherited `ETCDCTL_*` variables, so the caller's environment cannot change
//! what a test sees.

use std::process::Command;
use std::time::Duration;

use crate::bins::etcdctl_bin;
use crate::process::{run, Output};

/// Hard limit for one etcdctl process (its own command timeout is shorter).
const PROCESS_LIMIT: Duration = Duration::from_secs(30);

/// Runs `etcdctl --endpoints=<endpoints> <args>` with `stdin` (if any).
pub fn etcdctl(endpoints: &[String], args: &[&str], stdin: Option<&str>) -> Output {
    let mut cmd = Command::new(etcdctl_bin());
    for (k, _) in std::env::vars_os() {
        if k.to_string_lossy().starts_with("ETCDCTL_") {
            cmd.env_remove(k);
        }
    }
    cmd.env("ETCDCTL_API", "3")
        .arg(format!("--endpoints={}", endpoints.join(",")))
        .arg("--dial-timeout=5s")
        .arg("--command-timeout=15s")
        .args(args);
    run(cmd, stdin.map(str::as_bytes), PROCESS_LIMIT)
}

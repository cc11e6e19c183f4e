//! Running the Go `etcdctl` (v3 API) against a set of endpoints.
//!
//! Every invocation gets `ETCDCTL_API=3`, explicit `--endpoints`, bounded
//! `--dial-timeout` and `--command-timeout`, a hard process deadline, and no
//! inherited `ETCDCTL_*` variables, so the caller's environment cannot change
//! what a test sees.

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use crate::bins::etcdctl_bin;
use crate::process::{run, Output};

/// Hard limit for one etcdctl process (its own command timeout is shorter).
const PROCESS_LIMIT: Duration = Duration::from_secs(30);

/// Runs `etcdctl --endpoints=<endpoints> <args>` with `stdin` (if any).
pub fn etcdctl(endpoints: &[String], args: &[&str], stdin: Option<&str>) -> Output {
    etcdctl_with(&etcdctl_bin(), endpoints, args, stdin)
}

/// Runs the etcdctl binary `bin` (the Go one or ours) the same way.
pub fn etcdctl_with(
    bin: &std::path::Path,
    endpoints: &[String],
    args: &[&str],
    stdin: Option<&str>,
) -> Output {
    etcdctl_within(bin, endpoints, args, stdin, PROCESS_LIMIT)
}

/// The same, for a command that runs long (`check perf`: 60 s), killed
/// after `limit`.
pub fn etcdctl_within(
    bin: &std::path::Path,
    endpoints: &[String],
    args: &[&str],
    stdin: Option<&str>,
    limit: Duration,
) -> Output {
    let mut cmd = Command::new(bin);
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
    run(cmd, stdin.map(str::as_bytes), limit)
}

/// Runs `<bin> --endpoints=<endpoint> watch <args>` until it printed
/// `lines` lines (or 20 s passed), calling `after_first_line` once the
/// first line is out; returns what it printed. The process is killed and
/// reaped at the end.
pub fn watch_lines(
    bin: &Path,
    endpoint: &str,
    args: &[&str],
    lines: usize,
    after_first_line: impl FnOnce(),
) -> Vec<String> {
    let mut child = Command::new(bin)
        .env("ETCDCTL_API", "3")
        .arg(format!("--endpoints={endpoint}"))
        .arg("watch")
        .args(args)
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("starting etcdctl watch");
    let stdout = child.stdout.take().expect("stdout is piped");
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            if tx.send(line).is_err() {
                return;
            }
        }
    });
    let deadline = Instant::now() + Duration::from_secs(20);
    let mut out = Vec::new();
    let mut after = Some(after_first_line);
    while out.len() < lines {
        let left = deadline.saturating_duration_since(Instant::now());
        match rx.recv_timeout(left) {
            Ok(line) => out.push(line),
            Err(_) => break,
        }
        if let Some(f) = after.take() {
            f();
        }
    }
    let _ = child.kill();
    let _ = child.wait();
    out
}

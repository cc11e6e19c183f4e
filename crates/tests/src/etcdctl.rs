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

/// An etcdctl that runs until told to stop (`lock`, `elect`, `watch`):
/// its standard output line by line as it comes, its standard error
/// gathered. Dropping it kills and reaps the process.
pub struct Running {
    child: std::process::Child,
    lines: mpsc::Receiver<String>,
    stderr: Option<std::thread::JoinHandle<String>>,
}

impl Running {
    /// Starts `<bin> --endpoints=<endpoints> <args>` (with `ETCDCTL_API=3`
    /// and no inherited `ETCDCTL_*` variables).
    pub fn start(bin: &Path, endpoints: &[String], args: &[&str]) -> Running {
        let mut cmd = Command::new(bin);
        for (k, _) in std::env::vars_os() {
            if k.to_string_lossy().starts_with("ETCDCTL_") {
                cmd.env_remove(k);
            }
        }
        let mut child = cmd
            .env("ETCDCTL_API", "3")
            .arg(format!("--endpoints={}", endpoints.join(",")))
            .arg("--dial-timeout=5s")
            .args(args)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {}: {e}", bin.display()));
        let stdout = child.stdout.take().expect("stdout is piped");
        let mut stderr = child.stderr.take().expect("stderr is piped");
        let (tx, lines) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                if tx.send(line).is_err() {
                    return;
                }
            }
        });
        let stderr = std::thread::spawn(move || {
            let mut s = String::new();
            let _ = std::io::Read::read_to_string(&mut stderr, &mut s);
            s
        });
        Running {
            child,
            lines,
            stderr: Some(stderr),
        }
    }

    /// The process id.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// The next line of standard output, or `None` if none came within
    /// `limit` (or the output ended).
    pub fn next_line(&self, limit: Duration) -> Option<String> {
        self.lines.recv_timeout(limit).ok()
    }

    /// Sends signal `name` (`INT`, `TERM`, `KILL`) to the process.
    pub fn signal(&self, name: &str) {
        let sent = Command::new("kill")
            .args(["-s", name, &self.child.id().to_string()])
            .status()
            .expect("running kill");
        assert!(sent.success(), "kill -s {name} {} failed", self.child.id());
    }

    /// Waits (at most `limit`, else panics after killing it) for the
    /// process to exit; answers its exit code (-1 after a signal), the
    /// rest of its standard output and its standard error.
    pub fn wait(mut self, limit: Duration) -> (i32, String, String) {
        let deadline = Instant::now() + limit;
        let code = loop {
            if let Some(status) = self.child.try_wait().expect("waiting for etcdctl") {
                break status.code().unwrap_or(-1);
            }
            if Instant::now() >= deadline {
                let _ = self.child.kill();
                let _ = self.child.wait();
                panic!("etcdctl (pid {}) did not exit within {limit:?}", self.pid());
            }
            std::thread::sleep(Duration::from_millis(10));
        };
        let stderr = self.stderr.take().map(|h| h.join().unwrap_or_default());
        // The reader ends at end of output, which follows the exit.
        let mut rest = Vec::new();
        while let Ok(line) = self.lines.recv_timeout(Duration::from_secs(5)) {
            rest.push(line);
        }
        let mut stdout = rest.join("\n");
        if !rest.is_empty() {
            stdout.push('\n');
        }
        (code, stdout, stderr.unwrap_or_default())
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

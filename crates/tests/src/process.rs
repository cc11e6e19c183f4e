//! Running a short-lived command with a deadline, and checking what it printed.
//!
//! [`run`] owns the child for its whole life: it feeds stdin, collects stdout
//! and stderr, and kills the child if the deadline passes (then panics, as a
//! hung client means a hung server). [`Output`] carries the result and the
//! assertion helpers tests use; every failed assertion prints the command and
//! everything it printed.

use std::fmt;
use std::io::{Read, Write};
use std::process::{Child, Command, Stdio};
use std::thread;
use std::time::{Duration, Instant};

/// What a finished command printed, and its exit code (-1 if killed by a signal).
#[derive(Debug, Clone)]
pub struct Output {
    /// The command line, for messages.
    pub command: String,
    pub stdout: String,
    pub stderr: String,
    pub code: i32,
}

/// Runs `cmd` to completion, writing `stdin` (if any) to it, for at most `limit`.
///
/// Panics if the command cannot be started or does not finish in time (the
/// child is killed and reaped first).
pub fn run(mut cmd: Command, stdin: Option<&[u8]>, limit: Duration) -> Output {
    let command = describe(&cmd);
    cmd.stdin(if stdin.is_some() {
        Stdio::piped()
    } else {
        Stdio::null()
    })
    .stdout(Stdio::piped())
    .stderr(Stdio::piped());
    let mut child = cmd
        .spawn()
        .unwrap_or_else(|e| panic!("cannot start `{command}`: {e}"));

    let writer = child.stdin.take().map(|mut pipe| {
        let data = stdin.unwrap_or_default().to_vec();
        // Dropping the pipe at the end of the thread closes the child's stdin.
        thread::spawn(move || {
            let _ = pipe.write_all(&data);
        })
    });
    let out = drain(child.stdout.take().expect("stdout is piped"));
    let err = drain(child.stderr.take().expect("stderr is piped"));

    let status = wait_until(&mut child, Instant::now() + limit);
    if let Some(w) = writer {
        let _ = w.join();
    }
    let stdout = out.join().expect("stdout reader panicked");
    let stderr = err.join().expect("stderr reader panicked");
    match status {
        Some(code) => Output {
            command,
            stdout,
            stderr,
            code,
        },
        None => panic!(
            "`{command}` did not finish within {limit:?}; killed it.\n--- stdout ---\n{stdout}\n--- stderr ---\n{stderr}"
        ),
    }
}

/// Waits for `child` until `deadline`; on timeout kills and reaps it and returns None.
fn wait_until(child: &mut Child, deadline: Instant) -> Option<i32> {
    loop {
        match child.try_wait() {
            Ok(Some(status)) => return Some(status.code().unwrap_or(-1)),
            Ok(None) if Instant::now() >= deadline => {
                let _ = child.kill();
                let _ = child.wait();
                return None;
            }
            Ok(None) => thread::sleep(Duration::from_millis(5)),
            Err(e) => panic!("waiting for child failed: {e}"),
        }
    }
}

fn drain<R: Read + Send + 'static>(mut pipe: R) -> thread::JoinHandle<String> {
    thread::spawn(move || {
        let mut buf = Vec::new();
        let _ = pipe.read_to_end(&mut buf);
        String::from_utf8_lossy(&buf).into_owned()
    })
}

fn describe(cmd: &Command) -> String {
    let mut s = cmd.get_program().to_string_lossy().into_owned();
    for a in cmd.get_args() {
        let a = a.to_string_lossy();
        if a.is_empty() || a.contains(char::is_whitespace) {
            s.push_str(&format!(" {a:?}"));
        } else {
            s.push(' ');
            s.push_str(&a);
        }
    }
    s
}

impl fmt::Display for Output {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "`{}` exited with {}\n--- stdout ---\n{}--- stderr ---\n{}--------------",
            self.command, self.code, self.stdout, self.stderr
        )
    }
}

impl Output {
    /// Asserts exit code 0.
    #[track_caller]
    pub fn expect_success(&self) -> &Self {
        assert_eq!(self.code, 0, "expected success:\n{self}");
        self
    }

    /// Asserts exit code 0 and that stdout is exactly `expected`.
    #[track_caller]
    pub fn expect_stdout(&self, expected: &str) -> &Self {
        self.expect_success();
        assert_eq!(
            self.stdout, expected,
            "stdout differs (left: actual, right: expected):\n{self}"
        );
        self
    }

    /// Asserts a non-zero exit code and that stderr contains `needle`.
    #[track_caller]
    pub fn expect_err_contains(&self, needle: &str) -> &Self {
        assert_ne!(self.code, 0, "expected failure:\n{self}");
        assert!(
            self.stderr.contains(needle),
            "stderr does not contain {needle:?}:\n{self}"
        );
        self
    }

    /// Asserts a non-zero exit code, nothing on stdout, and a line
    /// `Error: <message>` on stderr, which is how etcdctl reports a failed
    /// request (etcdctl 3.4 also logs a JSON "retrying of unary invoker
    /// failed" warning line before it; that line is not checked).
    #[track_caller]
    pub fn expect_error(&self, message: &str) -> &Self {
        assert_ne!(self.code, 0, "expected failure:\n{self}");
        assert_eq!(self.stdout, "", "expected empty stdout:\n{self}");
        let line = format!("Error: {message}");
        assert!(
            self.stderr.lines().any(|l| l == line),
            "stderr has no line {line:?}:\n{self}"
        );
        self
    }

    /// Stderr without the JSON log lines the Go client writes there
    /// (`{"level":...}`), each remaining line ending in a newline.
    pub fn stderr_without_logs(&self) -> String {
        self.stderr
            .lines()
            .filter(|l| !l.starts_with("{\"level\""))
            .map(|l| format!("{l}\n"))
            .collect()
    }

    /// Stdout parsed as JSON (after asserting success).
    #[track_caller]
    pub fn json(&self) -> serde_json::Value {
        self.expect_success();
        serde_json::from_str(&self.stdout)
            .unwrap_or_else(|e| panic!("stdout is not JSON ({e}):\n{self}"))
    }

    /// Stdout and stderr together, as a user at a terminal sees them
    /// (order between the two streams is not preserved).
    pub fn combined(&self) -> String {
        format!("{}{}", self.stdout, self.stderr)
    }
}

/// Sends SIGTERM to `child` and waits up to `limit` for it to exit; returns
/// its exit status. If it is still running then, it is SIGKILLed and reaped,
/// and this panics: a server must stop on SIGTERM.
pub fn terminate(child: &mut Child, limit: Duration) -> std::process::ExitStatus {
    let pid = child.id().to_string();
    let sent = Command::new("kill")
        .args(["-TERM", &pid])
        .status()
        .expect("cannot run kill");
    assert!(sent.success(), "kill -TERM {pid} failed");
    let deadline = Instant::now() + limit;
    loop {
        if let Some(status) = child.try_wait().expect("waiting for the child failed") {
            return status;
        }
        if Instant::now() >= deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!("process {pid} did not exit within {limit:?} of SIGTERM");
        }
        thread::sleep(Duration::from_millis(20));
    }
}

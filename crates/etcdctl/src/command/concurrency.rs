//! `lock` and `elect`: etcdctl's recipes on plain KV (Go's etcdctl runs
//! clientv3's `concurrency` package, not the Lock and Election services;
//! ours runs `client::concurrency`, which keeps the same keys and order).
//! Both hold until SIGINT or SIGTERM, then let go (unlock or resign) and
//! exit 0; interrupted while still waiting, they remove their key and
//! fail with `context canceled`.

use std::process::{ExitStatus, Stdio};

use api::etcdserverpb::RangeRequest;
use clap::Args;
use client::concurrency::{Election, Mutex, Session};
use tokio::signal::unix::{signal, Signal, SignalKind};

use crate::error::{CtlError, EXIT_ERROR};
use crate::global::GlobalFlags;

/// `lock <lockname> [exec-command arg1 arg2 ...]`.
#[derive(Args, Debug)]
pub struct LockArgs {
    /// timeout for session
    #[arg(long, default_value_t = 10)]
    ttl: i64,
    /// the lock name, then the command to run while holding it
    args: Vec<String>,
}

/// `elect <election-name> [proposal]`.
#[derive(Args, Debug)]
pub struct ElectArgs {
    /// observation mode
    #[arg(short = 'l', long, num_args = 0..=1, require_equals = true, default_missing_value = "true",
          default_value_t = false, value_parser = goflags::parse_bool, action = clap::ArgAction::Set)]
    listen: bool,
    /// the election name and the proposal
    args: Vec<String>,
}

/// Resolves at the first SIGINT or SIGTERM. Made before any waiting, so
/// from then on those signals no longer end the process (Go's
/// `signal.Notify`): a command run under the lock gets them itself.
struct Interrupt(Signal, Signal);

impl Interrupt {
    fn new() -> Result<Interrupt, CtlError> {
        let install = |k| signal(k).map_err(|e| CtlError::new(EXIT_ERROR, e.to_string()));
        Ok(Interrupt(
            install(SignalKind::interrupt())?,
            install(SignalKind::terminate())?,
        ))
    }

    async fn recv(&mut self) {
        tokio::select! {
            _ = self.0.recv() => {}
            _ = self.1.recv() => {}
        }
    }
}

fn failed(e: impl ToString) -> CtlError {
    CtlError::new(EXIT_ERROR, e.to_string())
}

fn canceled() -> CtlError {
    failed("context canceled")
}

/// Runs `lock`.
pub async fn lock(g: &GlobalFlags, a: &LockArgs) -> Result<(), CtlError> {
    let Some((name, command)) = a.args.split_first() else {
        return Err(CtlError::bad_args(
            "lock takes a lock name argument and an optional command to execute",
        ));
    };
    let p = g.printer()?;
    let c = g.client().await?;
    let session = Session::new(&c, a.ttl).await.map_err(failed)?;
    let mut interrupt = Interrupt::new()?;
    let mutex = Mutex::new(&c, name.as_bytes(), session.lease());
    let header = tokio::select! {
        locked = mutex.lock() => locked.map_err(failed)?,
        _ = interrupt.recv() => {
            let _ = mutex.unlock().await;
            return Err(canceled());
        }
    };
    if !command.is_empty() {
        let ran = run_locked(command, mutex.key(), header.revision).await;
        let unlocked = mutex.unlock().await.map_err(failed);
        ran?;
        return unlocked;
    }
    let held = c
        .kv()
        .range(RangeRequest {
            key: mutex.key().to_vec(),
            ..Default::default()
        })
        .await?
        .into_inner();
    if held.kvs.is_empty() {
        return Err(failed("lock lost on init"));
    }
    p.get(&held)?;
    tokio::select! {
        _ = interrupt.recv() => mutex.unlock().await.map_err(failed),
        _ = session.done() => Err(failed("session expired")),
    }
}

/// Runs `command` with `ETCD_LOCK_KEY` and `ETCD_LOCK_REV` set, its output
/// passed through. A command that fails gives Go's `exec` error text and,
/// as etcdctl 3.5, its own exit code (etcdctl 3.4 exits 1).
async fn run_locked(command: &[String], key: &[u8], rev: i64) -> Result<(), CtlError> {
    let program = resolve(&command[0])?;
    let mut child = tokio::process::Command::new(&program)
        .args(&command[1..])
        .env("ETCD_LOCK_KEY", String::from_utf8_lossy(key).as_ref())
        .env("ETCD_LOCK_REV", rev.to_string())
        .stdin(Stdio::null())
        .spawn()
        .map_err(|e| failed(format!("fork/exec {program}: {}", errno_text(&e))))?;
    let status = child.wait().await.map_err(failed)?;
    exit_error(status).map_or(Ok(()), Err)
}

/// Go's `exec.Command` lookup: a name without `/` is searched in `$PATH`.
fn resolve(name: &str) -> Result<String, CtlError> {
    use std::os::unix::fs::PermissionsExt;
    if name.contains('/') {
        return Ok(name.to_string());
    }
    let path = std::env::var_os("PATH").unwrap_or_default();
    for dir in std::env::split_paths(&path) {
        let candidate = dir.join(name);
        let executable = std::fs::metadata(&candidate)
            .is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0);
        if executable {
            return Ok(candidate.to_string_lossy().into_owned());
        }
    }
    Err(failed(format!(
        "exec: \"{name}\": executable file not found in $PATH"
    )))
}

/// An OS error as Go prints it (its `strerror` text, lower case).
fn errno_text(e: &std::io::Error) -> String {
    let text = e.to_string();
    let bare = text.split(" (os error").next().unwrap_or(&text);
    let mut chars = bare.chars();
    match chars.next() {
        Some(first) => first.to_lowercase().chain(chars).collect(),
        None => text,
    }
}

/// How Go's `exec.ExitError` reads and the code etcdctl exits with: `exit
/// status N` and N, or `signal: <name>` and 255 (Go's -1).
fn exit_error(status: ExitStatus) -> Option<CtlError> {
    use std::os::unix::process::ExitStatusExt;
    if let Some(code) = status.code() {
        return (code != 0).then(|| CtlError::new(code, format!("exit status {code}")));
    }
    let name = match status.signal() {
        Some(1) => "hangup".to_string(),
        Some(2) => "interrupt".to_string(),
        Some(3) => "quit".to_string(),
        Some(6) => "aborted".to_string(),
        Some(9) => "killed".to_string(),
        Some(11) => "segmentation fault".to_string(),
        Some(13) => "broken pipe".to_string(),
        Some(15) => "terminated".to_string(),
        Some(n) => format!("signal {n}"),
        None => "unknown".to_string(),
    };
    Some(CtlError::new(255, format!("signal: {name}")))
}

/// Runs `elect`.
pub async fn elect(g: &GlobalFlags, a: &ElectArgs) -> Result<(), CtlError> {
    if a.args.is_empty() || a.args.len() > 2 {
        return Err(CtlError::bad_args(
            "elect takes one election name argument and an optional proposal argument",
        ));
    }
    let p = g.printer()?;
    let c = g.client().await?;
    let name = a.args[0].as_bytes();
    let proposal = a.args.get(1);
    match (proposal, a.listen) {
        (None, false) => {
            return Err(CtlError::bad_args("no proposal argument but -l not set"));
        }
        (Some(_), true) => return Err(CtlError::bad_args("proposal given but -l is set")),
        _ => {}
    }
    let session = Session::new(&c, 60).await.map_err(failed)?;
    let mut interrupt = Interrupt::new()?;
    let mut election = Election::new(&c, name, session.lease());
    let Some(proposal) = proposal else {
        let mut leaders = election.observe();
        loop {
            tokio::select! {
                leader = leaders.recv() => match leader {
                    Some(r) => p.get(&r)?,
                    None => return Err(failed("elect: observer lost")),
                },
                _ = interrupt.recv() => return Ok(()),
            }
        }
    };
    tokio::select! {
        won = election.campaign(proposal.as_bytes()) => { won.map_err(failed)?; }
        _ = interrupt.recv() => {
            let _ = election.resign().await;
            return Err(canceled());
        }
    }
    let key = election.key().unwrap_or_default().to_vec();
    let held = c
        .kv()
        .range(RangeRequest {
            key,
            ..Default::default()
        })
        .await?
        .into_inner();
    p.get(&held)?;
    tokio::select! {
        _ = interrupt.recv() => election.resign().await.map_err(failed),
        _ = session.done() => Err(failed("elect: session expired")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn os_errors_read_as_gos() {
        let e = std::io::Error::from_raw_os_error(2);
        assert_eq!(errno_text(&e), "no such file or directory");
        let e = std::io::Error::from_raw_os_error(13);
        assert_eq!(errno_text(&e), "permission denied");
    }
}

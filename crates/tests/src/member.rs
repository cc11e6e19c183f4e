//! [`Member`]: one `etcd` process of a test cluster, with its ports, data
//! dir, flags and log file, and how it is started (flags, config file or
//! `ETCD_*` variables), probed for readiness, stopped and restarted.

use std::fs::{File, OpenOptions};
use std::io::Write;
use std::net::{Ipv4Addr, SocketAddr};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use tempfile::TempDir;

use crate::cluster::{scheme, Bootstrap, TlsUrls};
use crate::health::{http_get, is_healthy};

/// How long a member may take from spawn to a healthy `/health`.
pub(crate) const READY_LIMIT: Duration = Duration::from_secs(20);
/// Interval between health probes.
const PROBE_EVERY: Duration = Duration::from_millis(50);
/// What readiness probes ask: `/health`, active alarms excluded.
const PROBE_PATH: &str = "/health?exclude=NOSPACE&exclude=CORRUPT";
/// Lines of a member's log shown when something goes wrong.
const LOG_TAIL_LINES: usize = 60;

/// One `etcd` member: its process, ports, data dir and log.
#[derive(Debug)]
pub struct Member {
    name: String,
    bin: PathBuf,
    tls: TlsUrls,
    client_port: u16,
    peer_port: u16,
    args: Vec<String>,
    dir: PathBuf,
    tmp: Option<TempDir>,
    child: Option<Child>,
    pub(crate) bootstrap: Bootstrap,
    starts: u32,
    /// Set once a panic message already carries this member's log tail.
    pub(crate) log_reported: bool,
}

impl Member {
    pub(crate) fn new(
        bin: &Path,
        name: &str,
        (client_port, peer_port): (u16, u16),
        initial_cluster: &str,
        token: &str,
        extra: &[String],
        tls: &TlsUrls,
    ) -> Member {
        let tmp = tempfile::Builder::new()
            .prefix(&format!("etcd-rs-test-{name}-"))
            .tempdir()
            .expect("cannot create a temporary directory");
        let dir = tmp.path().to_path_buf();
        let client = format!("{}://127.0.0.1:{client_port}", scheme(tls.client));
        let peer = format!("{}://127.0.0.1:{peer_port}", scheme(tls.peer));
        let mut args: Vec<String> = [
            "--name",
            name,
            "--data-dir",
            &dir.join("data").to_string_lossy(),
            "--listen-client-urls",
            &client,
            "--advertise-client-urls",
            &client,
            "--listen-peer-urls",
            &peer,
            "--initial-advertise-peer-urls",
            &peer,
            "--initial-cluster",
            initial_cluster,
            "--initial-cluster-token",
            token,
            // Ignored by etcd on a restart, when the data dir already exists.
            "--initial-cluster-state",
            "new",
        ]
        .iter()
        .map(|s| s.to_string())
        .collect();
        args.extend(extra.iter().cloned());
        Member {
            name: name.to_string(),
            bin: bin.to_path_buf(),
            tls: tls.clone(),
            client_port,
            peer_port,
            args,
            dir,
            tmp: Some(tmp),
            child: None,
            bootstrap: Bootstrap::Flags,
            starts: 0,
            log_reported: false,
        }
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    /// Client URL, `http://127.0.0.1:PORT` (`https://` with client TLS).
    pub fn endpoint(&self) -> String {
        format!(
            "{}://127.0.0.1:{}",
            scheme(self.tls.client),
            self.client_port
        )
    }

    /// Peer URL, `http://127.0.0.1:PORT` (`https://` with peer TLS).
    pub fn peer_url(&self) -> String {
        format!("{}://127.0.0.1:{}", scheme(self.tls.peer), self.peer_port)
    }

    pub fn client_port(&self) -> u16 {
        self.client_port
    }

    pub fn peer_port(&self) -> u16 {
        self.peer_port
    }

    /// The member's `--data-dir`.
    pub fn data_dir(&self) -> PathBuf {
        self.dir.join("data")
    }

    /// The file receiving the process's stdout and stderr (across restarts).
    pub fn log_path(&self) -> PathBuf {
        self.dir.join(format!("{}.log", self.name))
    }

    /// The OS process id, if running.
    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }

    /// The last lines of the member's log.
    pub fn log_tail(&self) -> String {
        let text = std::fs::read_to_string(self.log_path()).unwrap_or_default();
        let lines: Vec<&str> = text.lines().collect();
        lines[lines.len().saturating_sub(LOG_TAIL_LINES)..].join("\n")
    }

    /// SIGKILLs the process (no chance to flush anything) and reaps it.
    pub fn kill9(&mut self) {
        let mut child = self
            .child
            .take()
            .unwrap_or_else(|| panic!("kill9: member {} is not running", self.name));
        // std's Child::kill sends SIGKILL on Unix.
        child.kill().expect("SIGKILL failed");
        child.wait().expect("reaping the killed member failed");
    }

    /// Sends SIGTERM and waits (bounded) for the process to exit; returns
    /// its exit status. Panics if it does not exit in time.
    pub fn terminate(&mut self) -> std::process::ExitStatus {
        let mut child = self
            .child
            .take()
            .unwrap_or_else(|| panic!("terminate: member {} is not running", self.name));
        crate::process::terminate(&mut child, READY_LIMIT)
    }

    /// Removes the data directory of a stopped member, so that `restart`
    /// bootstraps it afresh: same name, ports and flags, hence the same
    /// member and cluster ids, and an empty store.
    pub fn wipe(&mut self) {
        assert!(
            self.child.is_none(),
            "wipe: member {} is still running",
            self.name
        );
        let dir = self.data_dir();
        if dir.exists() {
            std::fs::remove_dir_all(&dir).expect("removing the data dir failed");
        }
    }

    /// Sets flag `name` (given as `--name value`) to `value` for the
    /// next start.
    pub fn set_flag(&mut self, name: &str, value: &str) {
        match self.args.iter().position(|a| a == name) {
            Some(i) => self.args[i + 1] = value.to_string(),
            None => self.args.extend([name.to_string(), value.to_string()]),
        }
    }

    /// Adds a bare argument (e.g. a boolean flag) for the next start.
    pub fn push_arg(&mut self, arg: &str) {
        self.args.push(arg.to_string());
    }

    /// Moves a stopped member to another peer port (after `member
    /// update`): its listen and advertised peer URLs change for the next
    /// start.
    pub fn move_peer_port(&mut self, port: u16) {
        assert!(
            self.child.is_none(),
            "move_peer_port: {} is running",
            self.name
        );
        self.peer_port = port;
        let url = self.peer_url();
        self.set_flag("--listen-peer-urls", &url);
        self.set_flag("--initial-advertise-peer-urls", &url);
    }

    /// Waits (bounded by `limit`) for the process to exit by itself;
    /// returns its status, or `None` if it is still running.
    pub fn wait_exit(&mut self, limit: Duration) -> Option<std::process::ExitStatus> {
        let deadline = Instant::now() + limit;
        loop {
            let child = self.child.as_mut()?;
            if let Some(status) = child.try_wait().expect("polling the member failed") {
                self.child = None;
                return Some(status);
            }
            if Instant::now() >= deadline {
                return None;
            }
            std::thread::sleep(PROBE_EVERY);
        }
    }

    /// Starts the process again on the same data dir, ports and flags,
    /// without waiting (for members that can only become healthy
    /// together); [`Member::wait_healthy`] waits.
    pub fn start_again(&mut self) {
        assert!(
            self.child.is_none(),
            "start_again: member {} is still running",
            self.name
        );
        self.spawn();
    }

    /// Waits (bounded) until a started member is healthy. Error: why not,
    /// e.g. `the process exited early (...)`; its log then tells more.
    pub async fn wait_healthy(&mut self) -> Result<(), String> {
        self.wait_ready(Instant::now() + READY_LIMIT).await
    }

    /// Starts the process again on the same data dir, ports and flags, and
    /// waits until it is healthy.
    pub async fn restart(&mut self) {
        assert!(
            self.child.is_none(),
            "restart: member {} is still running; kill9 it first",
            self.name
        );
        self.spawn();
        if let Err(why) = self.wait_ready(Instant::now() + READY_LIMIT).await {
            self.log_reported = true;
            panic!(
                "member {} did not come back after a restart: {why}\n--- last lines of its log ---\n{}",
                self.name,
                self.log_tail()
            );
        }
    }

    pub(crate) fn spawn(&mut self) {
        self.starts += 1;
        let mut log = OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.log_path())
            .expect("cannot open the member log");
        let _ = writeln!(
            log,
            "=== etcd-rs-tests: start #{} of {}: {} {}",
            self.starts,
            self.name,
            self.bin.display(),
            self.args.join(" ")
        );
        let err: File = log.try_clone().expect("cannot clone the log handle");
        let mut cmd = Command::new(&self.bin);
        // etcd reads ETCD_* variables as flags: start from a clean environment
        // so the caller's (ETCD_BIN, ...) cannot change the server's config.
        cmd.env_clear();
        for var in ["PATH", "RUST_LOG", "RUST_BACKTRACE"] {
            if let Some(v) = std::env::var_os(var) {
                cmd.env(var, v);
            }
        }
        match self.bootstrap {
            Bootstrap::Flags => {
                cmd.args(&self.args);
            }
            Bootstrap::ConfigFile => {
                let yaml = config_yaml(&flag_pairs(&self.args));
                let path = self.dir.join("etcd.yml");
                std::fs::write(&path, yaml).expect("cannot write the config file");
                cmd.arg("--config-file").arg(path);
            }
            Bootstrap::Env => {
                for (k, v) in flag_pairs(&self.args) {
                    cmd.env(format!("ETCD_{}", k.to_uppercase().replace('-', "_")), v);
                }
            }
        }
        let child = cmd
            .current_dir(&self.dir)
            .stdin(Stdio::null())
            .stdout(log)
            .stderr(err)
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {}: {e}", self.bin.display()));
        self.child = Some(child);
    }

    /// Polls `/health` until healthy, the process exits, or `deadline`
    /// passes. Alarms are excluded: a member with an active alarm serves
    /// (its alarm is what a test restarted it to check).
    pub(crate) async fn wait_ready(&mut self, deadline: Instant) -> Result<(), String> {
        let addr = SocketAddr::from((Ipv4Addr::LOCALHOST, self.client_port));
        loop {
            let child = self.child.as_mut().ok_or("the process is not running")?;
            if let Some(status) = child.try_wait().map_err(|e| e.to_string())? {
                self.child = None;
                return Err(format!("the process exited early ({status})"));
            }
            let probe = if self.tls.client {
                let (url, flags) = (
                    format!("{}{PROBE_PATH}", self.endpoint()),
                    self.tls.curl_flags.clone(),
                );
                tokio::task::spawn_blocking(move || curl_get(&url, &flags))
                    .await
                    .expect("health probe task panicked")
            } else {
                tokio::task::spawn_blocking(move || {
                    http_get(addr, PROBE_PATH, Duration::from_secs(1))
                })
                .await
                .expect("health probe task panicked")
            };
            let last = match probe {
                Ok(resp) if is_healthy(&resp) => return Ok(()),
                Ok(resp) => format!("HTTP {}: {}", resp.status, resp.body.trim()),
                Err(e) => e.to_string(),
            };
            if Instant::now() >= deadline {
                return Err(format!(
                    "/health was not healthy within {READY_LIMIT:?}; last probe: {last}"
                ));
            }
            tokio::time::sleep(PROBE_EVERY).await;
        }
    }

    /// True if the log says a listener could not bind (a port picked as free
    /// was taken by someone else in between).
    pub(crate) fn port_collision(&self) -> bool {
        self.child.is_none()
            && std::fs::read_to_string(self.log_path())
                .unwrap_or_default()
                .to_ascii_lowercase()
                .contains("address already in use")
    }
}

impl Drop for Member {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
        if std::thread::panicking() {
            if !self.log_reported {
                eprintln!(
                    "--- member {} ({}): last lines of {} ---\n{}\n---",
                    self.name,
                    self.endpoint(),
                    self.log_path().display(),
                    self.log_tail()
                );
            }
            if std::env::var_os("ETCD_TEST_KEEP_DIRS").is_some() {
                if let Some(tmp) = self.tmp.take() {
                    eprintln!("kept {}", tmp.keep().display());
                }
            }
        }
    }
}

/// `GET url` with curl (TLS probes), bounded to 2 s.
pub fn curl_get(url: &str, flags: &[String]) -> std::io::Result<crate::health::HttpResponse> {
    let out = Command::new("curl")
        .args(["-s", "--max-time", "2", "-w", "\n%{http_code}"])
        .args(flags)
        .arg(url)
        .output()?;
    let text = String::from_utf8_lossy(&out.stdout).to_string();
    let (body, code) = text.rsplit_once('\n').unwrap_or(("", "0"));
    match code.trim().parse::<u16>() {
        Ok(status) if status != 0 => Ok(crate::health::HttpResponse {
            status,
            body: body.to_string(),
        }),
        _ => Err(std::io::Error::other(format!(
            "curl {url} failed (exit {:?})",
            out.status.code()
        ))),
    }
}

/// `--flag value`, `--flag=value` and bare boolean `--flag` (true) as
/// pairs.
fn flag_pairs(args: &[String]) -> Vec<(String, String)> {
    let mut out = Vec::new();
    let mut it = args.iter().peekable();
    while let Some(a) = it.next() {
        let Some(flag) = a.strip_prefix("--") else {
            continue;
        };
        match flag.split_once('=') {
            Some((k, v)) => out.push((k.to_string(), v.to_string())),
            None => {
                let value = match it.peek() {
                    Some(next) if !next.starts_with("--") => it.next().cloned().unwrap_or_default(),
                    _ => "true".to_string(),
                };
                out.push((flag.to_string(), value));
            }
        }
    }
    out
}

/// The TLS flags' keys in etcd's YAML `client-transport-security:` and
/// `peer-transport-security:` blocks.
const SECURITY_KEYS: &[(&str, &str, &str)] = &[
    ("cert-file", "client-transport-security", "cert-file"),
    ("key-file", "client-transport-security", "key-file"),
    (
        "trusted-ca-file",
        "client-transport-security",
        "trusted-ca-file",
    ),
    (
        "client-cert-auth",
        "client-transport-security",
        "client-cert-auth",
    ),
    ("auto-tls", "client-transport-security", "auto-tls"),
    (
        "client-cert-allowed-hostname",
        "client-transport-security",
        "allowed-hostname",
    ),
    ("peer-cert-file", "peer-transport-security", "cert-file"),
    ("peer-key-file", "peer-transport-security", "key-file"),
    (
        "peer-trusted-ca-file",
        "peer-transport-security",
        "trusted-ca-file",
    ),
    (
        "peer-client-cert-auth",
        "peer-transport-security",
        "client-cert-auth",
    ),
    ("peer-auto-tls", "peer-transport-security", "auto-tls"),
    (
        "peer-cert-allowed-cn",
        "peer-transport-security",
        "allowed-cn",
    ),
    (
        "peer-cert-allowed-hostname",
        "peer-transport-security",
        "allowed-hostname",
    ),
];

/// A YAML config file as etcd reads it: flags as top-level keys, TLS
/// settings in their transport-security blocks.
fn config_yaml(pairs: &[(String, String)]) -> String {
    let mut top = String::new();
    let mut blocks: Vec<(&str, String)> = Vec::new();
    for (k, v) in pairs {
        match SECURITY_KEYS.iter().find(|(flag, _, _)| flag == k) {
            Some((_, block, key)) => {
                let value = if key.starts_with("allowed-") {
                    format!("[{v}]")
                } else {
                    v.clone()
                };
                let line = format!("  {key}: {value}\n");
                match blocks.iter_mut().find(|(b, _)| b == block) {
                    Some((_, body)) => body.push_str(&line),
                    None => blocks.push((block, line)),
                }
            }
            None => top.push_str(&format!("{k}: {v}\n")),
        }
    }
    for (block, body) in blocks {
        top.push_str(&format!("{block}:\n{body}"));
    }
    top
}

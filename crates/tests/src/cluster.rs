//! `TestCluster` and `Member`: real `etcd` processes on loopback ports.
//!
//! A [`TestCluster`] owns its [`Member`]s; a member owns one child process (at
//! most one at a time), a temporary directory holding its data dir and its log
//! file, and its two ports. Members are started with etcd's own flags (static
//! bootstrap through `--initial-cluster`), and are ready when `GET /health`
//! answers 200 with `"health": "true"`, polled every 50 ms with a hard
//! deadline, failing fast if the process exits.
//!
//! Guarantees: dropping a member SIGKILLs and reaps its process, also while a
//! test panics (then the tail of its log is printed to stderr); a restarted
//! member reuses its data dir, ports and flags; nothing listens outside
//! 127.0.0.1. Set `ETCD_TEST_KEEP_DIRS=1` to keep the data dirs of a failed
//! test for inspection.

use std::fs::{File, OpenOptions};
use std::io::Write;
use std::net::{Ipv4Addr, SocketAddr, TcpListener};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

use tempfile::TempDir;

use crate::bins::etcd_bin;
use crate::etcdctl::etcdctl;
use crate::health::{http_get, is_healthy};
use crate::process::Output;

/// How long a member may take from spawn to a healthy `/health`.
const READY_LIMIT: Duration = Duration::from_secs(20);
/// Interval between health probes.
const PROBE_EVERY: Duration = Duration::from_millis(50);
/// Attempts at starting a fresh cluster when a picked port was taken meanwhile.
const START_ATTEMPTS: u32 = 3;
/// Lines of a member's log shown when something goes wrong.
const LOG_TAIL_LINES: usize = 60;

static CLUSTER_SEQ: AtomicU32 = AtomicU32::new(0);

/// How to start a cluster: which binary, how many members, extra flags.
#[derive(Debug, Clone)]
pub struct ClusterBuilder {
    bin: Option<PathBuf>,
    size: usize,
    flags: Vec<String>,
    bootstrap: Bootstrap,
    tls: TlsUrls,
}

/// TLS on a test cluster's URLs: `https://` client and/or peer URLs (the
/// certificate flags go in [`ClusterBuilder::flags`]), the etcdctl flags
/// the harness itself needs to reach the members (`--cacert ...` or
/// `--insecure-skip-tls-verify`), and the curl flags of its readiness
/// probe.
#[derive(Clone, Debug, Default)]
pub struct TlsUrls {
    /// `https://` client URLs.
    pub client: bool,
    /// `https://` peer URLs.
    pub peer: bool,
    /// Global etcdctl flags for the harness's own calls.
    pub etcdctl_flags: Vec<String>,
    /// curl flags for the `/health` probe (e.g. `--cacert`, `--cert`).
    pub curl_flags: Vec<String>,
}

/// How a member is given its configuration.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Bootstrap {
    /// Command-line flags (`--name m0 ...`).
    #[default]
    Flags,
    /// A YAML file with etcd's keys, passed as `--config-file`.
    ConfigFile,
    /// `ETCD_*` environment variables, no flags.
    Env,
}

impl ClusterBuilder {
    /// Configures members through `bootstrap` instead of flags.
    pub fn bootstrap(mut self, bootstrap: Bootstrap) -> Self {
        self.bootstrap = bootstrap;
        self
    }

    /// Uses `bin` instead of [`etcd_bin`] (e.g. the reference etcd).
    pub fn bin(mut self, bin: impl Into<PathBuf>) -> Self {
        self.bin = Some(bin.into());
        self
    }

    /// Appends extra server flags to every member, e.g. `&["--max-txn-ops", "4"]`.
    pub fn flags(mut self, flags: &[&str]) -> Self {
        self.flags.extend(flags.iter().map(|s| s.to_string()));
        self
    }

    /// Serves the URLs over TLS as `tls` says.
    pub fn tls(mut self, tls: TlsUrls) -> Self {
        self.tls = tls;
        self
    }

    /// Starts all members and waits until each answers `/health`.
    ///
    /// Retries with new ports if a member could not bind a port picked for it;
    /// panics (with the member's log tail) on any other failure.
    pub async fn start(self) -> TestCluster {
        assert!(self.size >= 1, "a cluster needs at least one member");
        let bin = self.bin.clone().unwrap_or_else(etcd_bin);
        let token = format!(
            "etcd-rs-test-{}-{}",
            std::process::id(),
            CLUSTER_SEQ.fetch_add(1, Ordering::Relaxed)
        );
        for attempt in 1..=START_ATTEMPTS {
            let ports = free_ports(2 * self.size);
            let peers: Vec<(String, u16)> = (0..self.size)
                .map(|i| (format!("m{i}"), ports[2 * i + 1]))
                .collect();
            let initial_cluster = peers
                .iter()
                .map(|(name, port)| format!("{name}={}://127.0.0.1:{port}", scheme(self.tls.peer)))
                .collect::<Vec<_>>()
                .join(",");
            let mut members: Vec<Member> = peers
                .iter()
                .enumerate()
                .map(|(i, (name, peer_port))| {
                    Member::new(
                        &bin,
                        name,
                        (ports[2 * i], *peer_port),
                        &initial_cluster,
                        &token,
                        &self.flags,
                        &self.tls,
                    )
                })
                .collect();
            for m in &mut members {
                m.bootstrap = self.bootstrap;
                m.spawn();
            }
            let deadline = Instant::now() + READY_LIMIT;
            let mut failure = None;
            for m in &mut members {
                if let Err(why) = m.wait_ready(deadline).await {
                    m.log_reported = true;
                    failure = Some((m.name.clone(), why, m.port_collision(), m.log_tail()));
                    break;
                }
            }
            match failure {
                None => {
                    return TestCluster {
                        members,
                        etcdctl_flags: self.tls.etcdctl_flags.clone(),
                        bin,
                        flags: self.flags.clone(),
                        tls: self.tls.clone(),
                        token,
                    }
                }
                Some((_, _, true, _)) if attempt < START_ATTEMPTS => continue,
                Some((name, why, _, tail)) => panic!(
                    "member {name} of {} did not start: {why}\n--- last lines of its log ---\n{tail}",
                    bin.display()
                ),
            }
        }
        unreachable!("the last attempt either returns or panics")
    }
}

/// A running cluster of `etcd` processes on 127.0.0.1.
#[derive(Debug)]
pub struct TestCluster {
    members: Vec<Member>,
    /// Global flags of the harness's own etcdctl calls (TLS).
    etcdctl_flags: Vec<String>,
    /// What members added later run: the binary, extra flags, TLS URLs
    /// and the cluster token.
    bin: PathBuf,
    flags: Vec<String>,
    tls: TlsUrls,
    token: String,
}

impl TestCluster {
    /// Starts `n` members of the server under test ([`etcd_bin`]) with default flags.
    pub async fn start(n: usize) -> TestCluster {
        Self::builder(n).start().await
    }

    /// Starts `n` members of the server under test with extra `flags`.
    pub async fn start_with_flags(n: usize, flags: &[&str]) -> TestCluster {
        Self::builder(n).flags(flags).start().await
    }

    /// A builder for anything beyond the defaults (another binary, flags).
    pub fn builder(n: usize) -> ClusterBuilder {
        ClusterBuilder {
            bootstrap: Bootstrap::Flags,
            bin: None,
            size: n,
            flags: Vec::new(),
            tls: TlsUrls::default(),
        }
    }

    pub fn members(&self) -> &[Member] {
        &self.members
    }

    pub fn member(&self, i: usize) -> &Member {
        &self.members[i]
    }

    pub fn member_mut(&mut self, i: usize) -> &mut Member {
        &mut self.members[i]
    }

    /// Two ports (client, peer) that were free a moment ago, for a member
    /// to be added with `member add` and started with [`TestCluster::join`].
    pub fn reserve_ports() -> (u16, u16) {
        let p = free_ports(2);
        (p[0], p[1])
    }

    /// The peer URL a member on `peer_port` has.
    pub fn peer_url_on(&self, peer_port: u16) -> String {
        format!("{}://127.0.0.1:{peer_port}", scheme(self.tls.peer))
    }

    /// Starts member `name` on `ports` (client, peer) with a fresh data dir,
    /// joining this cluster as `member add` told (`--initial-cluster` as in
    /// its `ETCD_INITIAL_CLUSTER`, `--initial-cluster-state existing`), with
    /// the cluster's binary and flags; waits until it is healthy and
    /// returns its index. Panics with its log if it does not start.
    pub async fn join(&mut self, name: &str, ports: (u16, u16), initial_cluster: &str) -> usize {
        let mut m = self.spawn_joining(name, ports, initial_cluster);
        if let Err(why) = m.wait_ready(Instant::now() + READY_LIMIT).await {
            m.log_reported = true;
            panic!(
                "joining member {name} did not start: {why}\n--- last lines of its log ---\n{}",
                m.log_tail()
            );
        }
        self.members.push(m);
        self.members.len() - 1
    }

    /// Starts member `name` as [`TestCluster::join`] does, without waiting
    /// and without making it one of the cluster's members (for a join
    /// that must fail).
    pub fn spawn_joining(&self, name: &str, ports: (u16, u16), initial_cluster: &str) -> Member {
        let mut m = Member::new(
            &self.bin,
            name,
            ports,
            initial_cluster,
            &self.token,
            &self.flags,
            &self.tls,
        );
        m.set_flag("--initial-cluster-state", "existing");
        m.spawn();
        m
    }

    /// Member 0's client URL, `http://127.0.0.1:PORT`.
    pub fn endpoint(&self) -> String {
        self.members[0].endpoint()
    }

    /// Every member's client URL.
    pub fn endpoints(&self) -> Vec<String> {
        self.members.iter().map(Member::endpoint).collect()
    }

    /// `endpoint status -w json` of member `i`: (member id, leader id,
    /// raft term); `None` if it does not answer. etcdctl omits zero fields,
    /// so no leader reads as 0.
    pub fn status(&self, i: usize) -> Option<(u64, u64, u64)> {
        let out = self.etcdctl_on(i, &["endpoint", "status", "-w", "json"]);
        if out.code != 0 {
            return None;
        }
        let s = out.json()[0]["Status"].clone();
        Some((
            s["header"]["member_id"].as_u64()?,
            s["leader"].as_u64().unwrap_or(0),
            s["raftTerm"].as_u64()?,
        ))
    }

    /// Waits (bounded, 30 s) until the members in `alive` all answer and
    /// agree on one leader among them and one term; returns the leader's
    /// index and the term. Panics if they do not.
    pub fn wait_for_leader(&self, alive: &[usize]) -> (usize, u64) {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let seen: Vec<_> = alive.iter().filter_map(|&i| self.status(i)).collect();
            if seen.len() == alive.len() {
                let (_, leader, term) = seen[0];
                let agreed = seen.iter().all(|&(_, l, t)| l == leader && t == term);
                if let Some(pos) = seen.iter().position(|&(id, _, _)| id == leader) {
                    if agreed && leader != 0 {
                        return (alive[pos], term);
                    }
                }
            }
            assert!(
                Instant::now() < deadline,
                "no leader agreed among members {alive:?}: {seen:?}"
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// Runs the Go etcdctl against member 0.
    pub fn etcdctl(&self, args: &[&str]) -> Output {
        self.etcdctl_on(0, args)
    }

    /// Runs the Go etcdctl against member `i` (with the cluster's TLS
    /// flags).
    pub fn etcdctl_on(&self, i: usize, args: &[&str]) -> Output {
        etcdctl(&[self.members[i].endpoint()], &self.with_flags(args), None)
    }

    /// Runs the Go etcdctl against member 0 with `stdin` (e.g. for `txn`).
    pub fn etcdctl_stdin(&self, args: &[&str], stdin: &str) -> Output {
        etcdctl(&[self.endpoint()], &self.with_flags(args), Some(stdin))
    }

    fn with_flags<'a>(&'a self, args: &[&'a str]) -> Vec<&'a str> {
        self.etcdctl_flags
            .iter()
            .map(String::as_str)
            .chain(args.iter().copied())
            .collect()
    }
}

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
    bootstrap: Bootstrap,
    starts: u32,
    /// Set once a panic message already carries this member's log tail.
    log_reported: bool,
}

impl Member {
    fn new(
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

    fn spawn(&mut self) {
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

    /// Polls `/health` until healthy, the process exits, or `deadline` passes.
    async fn wait_ready(&mut self, deadline: Instant) -> Result<(), String> {
        let addr = SocketAddr::from((Ipv4Addr::LOCALHOST, self.client_port));
        loop {
            let child = self.child.as_mut().ok_or("the process is not running")?;
            if let Some(status) = child.try_wait().map_err(|e| e.to_string())? {
                self.child = None;
                return Err(format!("the process exited early ({status})"));
            }
            let probe = if self.tls.client {
                let (url, flags) = (
                    format!("{}/health", self.endpoint()),
                    self.tls.curl_flags.clone(),
                );
                tokio::task::spawn_blocking(move || curl_get(&url, &flags))
                    .await
                    .expect("health probe task panicked")
            } else {
                tokio::task::spawn_blocking(move || {
                    http_get(addr, "/health", Duration::from_secs(1))
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
    fn port_collision(&self) -> bool {
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

/// `n` distinct ports that were free on 127.0.0.1 a moment ago (all bound at
/// once, then released).
/// `--key value` and `--key=value` arguments as (key, value) pairs.
fn scheme(tls: bool) -> &'static str {
    if tls {
        "https"
    } else {
        "http"
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

fn free_ports(n: usize) -> Vec<u16> {
    let listeners: Vec<TcpListener> = (0..n)
        .map(|_| TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).expect("cannot bind a free port"))
        .collect();
    listeners
        .iter()
        .map(|l| {
            l.local_addr()
                .expect("bound listener has an address")
                .port()
        })
        .collect()
}

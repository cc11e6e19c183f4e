//! `TestCluster`: real `etcd` processes on loopback ports ([`Member`] is in
//! `member.rs`).
//!
//! A [`TestCluster`] owns its [`Member`]s; a member owns one child process (at
//! most one at a time), a temporary directory holding its data dir and its log
//! file, and its two ports. Members are started with etcd's own flags (static
//! bootstrap through `--initial-cluster`, or joining a running cluster after
//! `member add` with [`TestCluster::join`]), and are ready when `GET /health`
//! answers 200 with `"health": "true"`, polled every 50 ms with a hard
//! deadline, failing fast if the process exits.
//!
//! Guarantees: dropping a member SIGKILLs and reaps its process, also while a
//! test panics (then the tail of its log is printed to stderr); a restarted
//! member reuses its data dir, ports and flags; nothing listens outside
//! 127.0.0.1. Set `ETCD_TEST_KEEP_DIRS=1` to keep the data dirs of a failed
//! test for inspection.

use std::net::{Ipv4Addr, TcpListener};
use std::path::PathBuf;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::bins::etcd_bin;
use crate::etcdctl::etcdctl;
use crate::member::{Member, READY_LIMIT};
use crate::process::Output;

/// Attempts at starting a fresh cluster when a picked port was taken meanwhile.
const START_ATTEMPTS: u32 = 3;

static CLUSTER_SEQ: AtomicU32 = AtomicU32::new(0);

/// How to start a cluster: which binary, how many members, extra flags.
#[derive(Debug, Clone)]
pub struct ClusterBuilder {
    bin: Option<PathBuf>,
    size: usize,
    flags: Vec<String>,
    bootstrap: Bootstrap,
    tls: TlsUrls,
    /// Peer ports to advertise, one per member, and who is told where the
    /// members listen.
    advertised_peers: Option<(Vec<u16>, PeerListen)>,
    /// Run on each member before it first starts.
    prepare: Option<Prepare>,
}

/// What [`ClusterBuilder::prepare`] runs on each member before it first
/// starts: with the member, the `--initial-cluster` and the cluster token.
#[derive(Clone)]
pub struct Prepare(Arc<PrepareFn>);

/// What [`Prepare`] calls.
type PrepareFn = dyn Fn(&Member, &str, &str) + Send + Sync;

impl std::fmt::Debug for Prepare {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Prepare")
    }
}

/// Told, before the members of each start attempt run, the peer port each
/// of them will listen on (fresh ports per attempt).
#[derive(Clone)]
pub struct PeerListen(Arc<ListenFn>);

/// What [`PeerListen`] calls with the members' peer ports.
type ListenFn = dyn Fn(&[u16]) + Send + Sync;

impl std::fmt::Debug for PeerListen {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("PeerListen")
    }
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

    /// Runs `f` on each member before it first starts, with the member,
    /// the `--initial-cluster` flag and the cluster token: to fill its
    /// data dir (`Member::data_dir`), e.g. with `etcdutl snapshot restore`.
    pub fn prepare(mut self, f: impl Fn(&Member, &str, &str) + Send + Sync + 'static) -> Self {
        self.prepare = Some(Prepare(Arc::new(f)));
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

    /// Member `i` advertises peer port `advertise[i]` (where a proxy
    /// forwards to it) instead of the free port it listens on; `listen`
    /// is told those ports before the members of each attempt start.
    pub fn advertise_peer_ports(
        mut self,
        advertise: Vec<u16>,
        listen: impl Fn(&[u16]) + Send + Sync + 'static,
    ) -> Self {
        assert!(advertise.len() == self.size);
        self.advertised_peers = Some((advertise, PeerListen(Arc::new(listen))));
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
            let listen: Vec<u16> = (0..self.size).map(|i| ports[2 * i + 1]).collect();
            let advertise = match &self.advertised_peers {
                Some((a, told)) => {
                    (told.0)(&listen);
                    a.clone()
                }
                None => listen.clone(),
            };
            let peers: Vec<(String, u16)> = (0..self.size)
                .map(|i| (format!("m{i}"), listen[i]))
                .collect();
            let peer_url = |port: u16| format!("{}://127.0.0.1:{port}", scheme(self.tls.peer));
            let initial_cluster = (0..self.size)
                .map(|i| format!("m{i}={}", peer_url(advertise[i])))
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
            for (m, adv) in members.iter_mut().zip(&advertise) {
                if self.advertised_peers.is_some() {
                    m.set_flag("--initial-advertise-peer-urls", &peer_url(*adv));
                }
                m.bootstrap = self.bootstrap;
                if let Some(Prepare(f)) = &self.prepare {
                    f(m, &initial_cluster, &token);
                }
                m.spawn();
            }
            let deadline = Instant::now() + READY_LIMIT;
            let mut failure = None;
            for m in &mut members {
                if let Err(why) = m.wait_ready(deadline).await {
                    m.log_reported = true;
                    failure = Some((m.name().to_string(), why, m.port_collision(), m.log_tail()));
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
            advertised_peers: None,
            prepare: None,
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

    /// Stops every member, starts them all again on their data (none
    /// can become healthy alone) and waits until each is healthy.
    pub async fn restart_all(&mut self) {
        for m in &mut self.members {
            m.terminate();
        }
        for m in &mut self.members {
            m.start_again();
        }
        for m in &mut self.members {
            if let Err(why) = m.wait_healthy().await {
                panic!("member {} did not come back: {why}", m.name());
            }
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

/// `http` or `https`.
pub(crate) fn scheme(tls: bool) -> &'static str {
    if tls {
        "https"
    } else {
        "http"
    }
}

/// `n` distinct ports that were free on 127.0.0.1 a moment ago (all bound at
/// once, then released).
/// `n` ports free on 127.0.0.1 right now.
pub fn free_ports(n: usize) -> Vec<u16> {
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

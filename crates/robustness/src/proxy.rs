//! Peer-link faults: a TCP proxy in front of each member's peer port, and
//! rules per directed link. Members advertise the proxy's port, so every
//! raft message from member `i` to member `j` travels on a connection
//! `i` opened to `j`'s proxy. The proxy tells which member opened a
//! connection by its source port: the socket with that local port in
//! `/proc/net/tcp` has an inode, and exactly one member process holds a
//! descriptor `socket:[inode]`. A cut link closes its connections and
//! refuses new ones until it is healed; a slow link holds every chunk of
//! bytes from its sender for a delay before passing it on; a lossy link
//! resets its connections at random (on TCP, loss shows as stalls and
//! broken connections). The server needs no change.

use std::collections::{HashMap, HashSet};
use std::net::Ipv4Addr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use rand::Rng;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

/// How often a pump looks at its link's rules.
const CHECK: Duration = Duration::from_millis(50);
/// The chance that a lossy link's connection is reset at one check.
const RESET_CHANCE: f64 = 0.05;

/// The rules per directed link (from member, to member).
#[derive(Default)]
pub struct Links {
    cut: Mutex<HashSet<(usize, usize)>>,
    slow: Mutex<HashMap<(usize, usize), Duration>>,
    lossy: Mutex<HashSet<(usize, usize)>>,
    /// The process id of each member, updated when it restarts.
    pids: Mutex<Vec<Option<u32>>>,
    /// The peer port each member listens on (0 until known), where its
    /// proxy forwards.
    targets: Mutex<Vec<u16>>,
}

impl Links {
    /// No link cut; `pids` of the members.
    pub fn new(pids: Vec<Option<u32>>) -> Arc<Links> {
        Arc::new(Links {
            targets: Mutex::new(vec![0; pids.len()]),
            pids: Mutex::new(pids),
            ..Links::default()
        })
    }

    /// Delays what `from` sends to `to` by `delay` per chunk.
    pub fn slow(&self, from: usize, to: usize, delay: Duration) {
        self.slow
            .lock()
            .expect("links lock")
            .insert((from, to), delay);
    }

    /// Resets the connections from `from` to `to` at random.
    pub fn lossy(&self, from: usize, to: usize) {
        self.lossy.lock().expect("links lock").insert((from, to));
    }

    fn delay(&self, from: Option<usize>, to: usize) -> Option<Duration> {
        let f = from?;
        self.slow.lock().expect("links lock").get(&(f, to)).copied()
    }

    fn is_lossy(&self, from: Option<usize>, to: usize) -> bool {
        from.is_some_and(|f| self.lossy.lock().expect("links lock").contains(&(f, to)))
    }

    /// The members listen for peers on `ports` (one per member).
    pub fn set_targets(&self, ports: &[u16]) {
        *self.targets.lock().expect("targets lock") = ports.to_vec();
    }

    fn target(&self, to: usize) -> u16 {
        self.targets.lock().expect("targets lock")[to]
    }

    /// Member `i` runs as `pid` now.
    pub fn set_pid(&self, i: usize, pid: Option<u32>) {
        self.pids.lock().expect("pids lock")[i] = pid;
    }

    /// Cuts the link from `from` to `to`.
    pub fn cut(&self, from: usize, to: usize) {
        self.cut.lock().expect("links lock").insert((from, to));
    }

    /// Heals every link: none cut, slow or lossy.
    pub fn heal(&self) {
        self.cut.lock().expect("links lock").clear();
        self.slow.lock().expect("links lock").clear();
        self.lossy.lock().expect("links lock").clear();
    }

    fn is_cut(&self, from: Option<usize>, to: usize) -> bool {
        from.is_some_and(|f| self.cut.lock().expect("links lock").contains(&(f, to)))
    }

    /// The member whose process holds the socket from 127.0.0.1:`port`
    /// to 127.0.0.1:`proxy`.
    fn member_of(&self, port: u16, proxy: u16) -> Option<usize> {
        let inode = socket_inode(port, proxy)?;
        let wanted = format!("socket:[{inode}]");
        let pids = self.pids.lock().expect("pids lock").clone();
        pids.iter().position(|pid| {
            pid.is_some_and(|pid| {
                std::fs::read_dir(format!("/proc/{pid}/fd"))
                    .into_iter()
                    .flatten()
                    .flatten()
                    .any(|fd| {
                        std::fs::read_link(fd.path()).is_ok_and(|l| l.to_string_lossy() == wanted)
                    })
            })
        })
    }
}

/// The inode of the TCP socket from 127.0.0.1:`port` to
/// 127.0.0.1:`remote` (`/proc/net/tcp`: addresses in hex, the inode in
/// the tenth column).
fn socket_inode(port: u16, remote: u16) -> Option<u64> {
    let table = std::fs::read_to_string("/proc/net/tcp").ok()?;
    let local = format!("0100007F:{port:04X}");
    let remote = format!("0100007F:{remote:04X}");
    table.lines().skip(1).find_map(|line| {
        let fields: Vec<&str> = line.split_whitespace().collect();
        (fields.get(1) == Some(&local.as_str()) && fields.get(2) == Some(&remote.as_str()))
            .then(|| fields.get(9)?.parse().ok())
            .flatten()
    })
}

/// Forwards connections to `listener` (the port member `to` advertises)
/// on to where it listens (as `links` knows at each connection), obeying
/// `links`, until the task is dropped.
pub async fn serve(listener: TcpListener, to: usize, links: Arc<Links>) {
    let Ok(proxy) = listener.local_addr().map(|a| a.port()) else {
        return;
    };
    loop {
        let Ok((inbound, from)) = listener.accept().await else {
            continue;
        };
        let links = links.clone();
        tokio::spawn(async move {
            let source = links.member_of(from.port(), proxy);
            if links.is_cut(source, to) {
                return;
            }
            let target = links.target(to);
            let Ok(outbound) = TcpStream::connect((Ipv4Addr::LOCALHOST, target)).await else {
                return;
            };
            let whence = (from.port(), proxy);
            pump(inbound, outbound, source, whence, to, links).await;
        });
    }
}

/// Copies bytes both ways until either side closes or the link is cut
/// (checked every [`CHECK`]; both connections are then dropped, closed)
/// or, while lossy, reset at random. What the sender writes is held for
/// the link's delay, if slow; the answers coming back are not. A
/// connection made before its member's pid was known (`source` `None`)
/// is told apart again at each check, from `whence` (its source port and
/// the proxy's).
async fn pump(
    inbound: TcpStream,
    outbound: TcpStream,
    mut source: Option<usize>,
    whence: (u16, u16),
    to: usize,
    links: Arc<Links>,
) {
    let (mut in_read, mut in_write) = inbound.into_split();
    let (mut out_read, mut out_write) = outbound.into_split();
    let known = Arc::new(Mutex::new(source));
    let sender = {
        let (links, known) = (links.clone(), known.clone());
        async move {
            let mut buf = vec![0u8; 64 * 1024];
            loop {
                let n = in_read.read(&mut buf).await?;
                if n == 0 {
                    return Ok::<(), std::io::Error>(());
                }
                let from = *known.lock().expect("source lock");
                if let Some(delay) = links.delay(from, to) {
                    tokio::time::sleep(delay).await;
                }
                out_write.write_all(&buf[..n]).await?;
            }
        }
    };
    let answers = tokio::io::copy(&mut out_read, &mut in_write);
    tokio::pin!(sender, answers);
    loop {
        tokio::select! {
            _ = &mut sender => return,
            _ = &mut answers => return,
            _ = tokio::time::sleep(CHECK) => {
                if source.is_none() {
                    source = links.member_of(whence.0, whence.1);
                    *known.lock().expect("source lock") = source;
                }
                if links.is_cut(source, to) {
                    return;
                }
                if links.is_lossy(source, to) && rand::thread_rng().gen_bool(RESET_CHANCE) {
                    return;
                }
            }
        }
    }
}

/// Starts an `n`-member cluster of the built `etcd` whose peer links all
/// go through proxies (each member advertises its proxy's port; the
/// proxy forwards to where it listens, fresh ports if a start attempt
/// found one taken); the links' controls.
pub async fn cluster(n: usize) -> (etcd_rs_tests::TestCluster, Arc<Links>) {
    let mut proxies = Vec::new();
    for _ in 0..n {
        let l = TcpListener::bind((Ipv4Addr::LOCALHOST, 0))
            .await
            .expect("a proxy port");
        proxies.push(l);
    }
    let advertise: Vec<u16> = proxies
        .iter()
        .map(|l| l.local_addr().expect("a bound port").port())
        .collect();
    let links = Links::new(vec![None; n]);
    for (to, listener) in proxies.into_iter().enumerate() {
        tokio::spawn(serve(listener, to, links.clone()));
    }
    // Frequent snapshots and a short in-memory log: a member that was
    // down for a second gets a snapshot, not the log, so faults hit
    // snapshot sending and receiving too.
    let c = etcd_rs_tests::TestCluster::builder(n)
        .flags(&[
            "--snapshot-count=300",
            "--experimental-snapshot-catchup-entries=100",
            "--experimental-watch-progress-notify-interval=500ms",
        ])
        .advertise_peer_ports(advertise, {
            let links = links.clone();
            move |listen| links.set_targets(listen)
        })
        .start()
        .await;
    for i in 0..n {
        links.set_pid(i, c.member(i).pid());
    }
    (c, links)
}

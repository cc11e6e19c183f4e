//! Peer-link faults: a TCP proxy in front of each member's peer port, and
//! rules per directed link. Members advertise the proxy's port, so every
//! raft message from member `i` to member `j` travels on a connection
//! `i` opened to `j`'s proxy. The proxy tells which member opened a
//! connection by its source port: the socket with that local port in
//! `/proc/net/tcp` has an inode, and exactly one member process holds a
//! descriptor `socket:[inode]`. A cut link closes its connections and
//! refuses new ones until it is healed; the server needs no change.

use std::collections::HashSet;
use std::net::Ipv4Addr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::net::{TcpListener, TcpStream};

/// The links that are cut, as (from member, to member).
#[derive(Default)]
pub struct Links {
    cut: Mutex<HashSet<(usize, usize)>>,
    /// The process id of each member, updated when it restarts.
    pids: Mutex<Vec<Option<u32>>>,
}

impl Links {
    /// No link cut; `pids` of the members.
    pub fn new(pids: Vec<Option<u32>>) -> Arc<Links> {
        Arc::new(Links {
            cut: Mutex::default(),
            pids: Mutex::new(pids),
        })
    }

    /// Member `i` runs as `pid` now.
    pub fn set_pid(&self, i: usize, pid: Option<u32>) {
        self.pids.lock().expect("pids lock")[i] = pid;
    }

    /// Cuts the link from `from` to `to`.
    pub fn cut(&self, from: usize, to: usize) {
        self.cut.lock().expect("links lock").insert((from, to));
    }

    /// Heals every link.
    pub fn heal(&self) {
        self.cut.lock().expect("links lock").clear();
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

/// Forwards connections to `listen` (the port member `to` advertises)
/// on to `target` (where it listens), obeying `links`, until the task is
/// dropped.
pub async fn serve(listener: TcpListener, target: u16, to: usize, links: Arc<Links>) {
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
            let Ok(outbound) = TcpStream::connect((Ipv4Addr::LOCALHOST, target)).await else {
                return;
            };
            let whence = (from.port(), proxy);
            pump(inbound, outbound, source, whence, to, links).await;
        });
    }
}

/// Copies bytes both ways until either side closes or the link is cut
/// (checked every 50 ms; both connections are then dropped, closed). A
/// connection made before its member's pid was known (`source` `None`)
/// is told apart again at each check, from `whence` (its source port and
/// the proxy's).
async fn pump(
    mut inbound: TcpStream,
    mut outbound: TcpStream,
    mut source: Option<usize>,
    whence: (u16, u16),
    to: usize,
    links: Arc<Links>,
) {
    let copy = tokio::io::copy_bidirectional(&mut inbound, &mut outbound);
    tokio::pin!(copy);
    loop {
        tokio::select! {
            _ = &mut copy => return,
            _ = tokio::time::sleep(Duration::from_millis(50)) => {
                if source.is_none() {
                    source = links.member_of(whence.0, whence.1);
                }
                if links.is_cut(source, to) {
                    return;
                }
            }
        }
    }
}

/// Starts an `n`-member cluster of the built `etcd` whose peer links all
/// go through proxies (each member advertises its proxy's port; the
/// proxy forwards to where it listens); the links' controls.
pub async fn cluster(n: usize) -> (etcd_rs_tests::TestCluster, Arc<Links>) {
    let listen = etcd_rs_tests::cluster::free_ports(n);
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
    for (to, (listener, target)) in proxies.into_iter().zip(listen.clone()).enumerate() {
        tokio::spawn(serve(listener, target, to, links.clone()));
    }
    let c = etcd_rs_tests::TestCluster::builder(n)
        .peer_ports(listen, advertise)
        .start()
        .await;
    for i in 0..n {
        links.set_pid(i, c.member(i).pid());
    }
    (c, links)
}

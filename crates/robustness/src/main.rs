//! `robustness --seed S`: one fault run. Starts a 3-member cluster of the
//! built `etcd` on loopback, runs concurrent clients on a few shared keys
//! while faults chosen from the seed hit the members (SIGKILL and
//! restart, the leader more often; SIGSTOP past the election timeout,
//! then SIGCONT; a member cut off from the others, or unheard by them,
//! at the proxies every peer link goes through) and watchers follow the keys, then heals the cluster and
//! checks: the history is linearizable, every member answers every key as
//! the history allows, every watcher saw a gapless start of the full
//! event history and every acknowledged write is in it, the keys of
//! revoked and expired leases are gone on every member, and all members
//! hash their history alike at one revision. Prints the
//! fault timeline; on a violation, the key's operations, and exits 1.

use std::sync::Arc;
use std::time::{Duration, Instant};

use api::etcdserverpb::kv_client::KvClient;
use api::etcdserverpb::maintenance_client::MaintenanceClient;
use api::etcdserverpb::{HashKvRequest, RangeRequest};
use clap::Parser;
use etcd_rs_tests::TestCluster;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use robustness::linearizability::{self, Input};
use robustness::proxy::Links;
use robustness::workload::{keys, Client};

/// One fault run.
#[derive(Parser, Debug)]
#[command(name = "robustness")]
struct Args {
    /// Chooses the faults, their times and the clients' operations.
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// Seconds of traffic.
    #[arg(long, default_value_t = 20)]
    seconds: u64,
    /// Concurrent clients.
    #[arg(long, default_value_t = 8)]
    clients: usize,
    /// Keys they share.
    #[arg(long, default_value_t = 4)]
    keys: usize,
    /// Where a failing run leaves its members' logs (in `seed-<S>/`).
    #[arg(long, default_value = "target/robustness")]
    report_dir: std::path::PathBuf,
    /// Concurrent watchers of the keys.
    #[arg(long, default_value_t = 3)]
    watchers: usize,
    /// Plants a bug: the clients' reads are serializable, as if the server
    /// skipped ReadIndex. A run should then fail; it shows the checker
    /// can.
    #[arg(long)]
    stale_reads: bool,
}

/// A fault, as the timeline reports it.
enum Fault {
    /// SIGKILL of member `0`, restarted after `1`.
    Kill(usize, Duration),
    /// SIGSTOP of member `0` for `1`, then SIGCONT.
    Pause(usize, Duration),
    /// Every link to and from member `0` cut for `1`.
    Isolate(usize, Duration),
    /// Every link from member `0` cut for `1` (it hears, nobody hears it).
    Mute(usize, Duration),
}

impl std::fmt::Display for Fault {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Fault::Kill(m, hold) => write!(f, "SIGKILL m{m}, restarted after {hold:?}"),
            Fault::Pause(m, hold) => write!(f, "SIGSTOP m{m} for {hold:?}"),
            Fault::Isolate(m, hold) => write!(f, "m{m} cut off for {hold:?}"),
            Fault::Mute(m, hold) => write!(f, "links from m{m} cut for {hold:?}"),
        }
    }
}

fn signal(pid: u32, sig: &str) {
    let _ = std::process::Command::new("kill")
        .args([sig, &pid.to_string()])
        .status();
}

/// The index of the member that leads, if the others agree on one.
async fn leader(c: &TestCluster) -> Option<usize> {
    let statuses: Vec<_> = (0..3).map(|i| c.status(i)).collect();
    let lead = statuses.iter().flatten().map(|s| s.1).find(|&l| l != 0)?;
    statuses
        .iter()
        .position(|s| s.is_some_and(|(id, _, _)| id == lead))
}

/// Injects faults one at a time until `until`; the timeline.
async fn faults(
    c: &mut TestCluster,
    links: &Links,
    rng: &mut StdRng,
    start: Instant,
    until: Instant,
) -> Vec<(Duration, Fault)> {
    let mut timeline = Vec::new();
    tokio::time::sleep(Duration::from_millis(rng.gen_range(500..1500))).await;
    while Instant::now() < until {
        let target = match leader(c).await {
            Some(l) if rng.gen_bool(0.5) => l,
            _ => rng.gen_range(0..3),
        };
        let hold = Duration::from_millis(rng.gen_range(500..3000));
        let at = start.elapsed();
        let fault = match rng.gen_range(0..10) {
            0..=3 => {
                c.member_mut(target).kill9();
                tokio::time::sleep(hold).await;
                c.member_mut(target).start_again();
                links.set_pid(target, c.member(target).pid());
                Fault::Kill(target, hold)
            }
            4..=5 => {
                let pid = c.member(target).pid().expect("a running member");
                signal(pid, "-STOP");
                tokio::time::sleep(hold).await;
                signal(pid, "-CONT");
                Fault::Pause(target, hold)
            }
            6..=8 => {
                for other in (0..3).filter(|&o| o != target) {
                    links.cut(target, other);
                    links.cut(other, target);
                }
                tokio::time::sleep(hold).await;
                links.heal();
                Fault::Isolate(target, hold)
            }
            _ => {
                for other in (0..3).filter(|&o| o != target) {
                    links.cut(target, other);
                }
                tokio::time::sleep(hold).await;
                links.heal();
                Fault::Mute(target, hold)
            }
        };
        timeline.push((at, fault));
        let _ = c.member_mut(target).wait_healthy().await;
        tokio::time::sleep(Duration::from_millis(rng.gen_range(500..2000))).await;
    }
    timeline
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let args = Args::parse();
    let mut rng = StdRng::seed_from_u64(args.seed);
    let (mut c, links) = robustness::proxy::cluster(3).await;
    let start = Instant::now();
    let until = start + Duration::from_secs(args.seconds);
    let keys = Arc::new(keys(args.keys));
    let clients: Vec<_> = (0..args.clients)
        .map(|i| {
            let client =
                Client::with_stale_reads(i, c.endpoints(), args.seed, start, args.stale_reads);
            tokio::spawn(client.run(keys.clone(), until))
        })
        .collect();
    let watchers: Vec<_> = (0..args.watchers)
        .map(|w| {
            let seed = args.seed ^ (1000 + w as u64);
            tokio::spawn(robustness::watch::watcher(c.endpoints(), seed, until))
        })
        .collect();
    let leaser = tokio::spawn(robustness::lease::client(
        c.endpoints(),
        args.seed ^ 77,
        until,
    ));
    let timeline = faults(&mut c, &links, &mut rng, start, until).await;
    let mut history = Vec::new();
    for h in clients {
        history.extend(h.await.expect("a client panicked"));
    }
    // Healed: every member must answer every key as the history allows.
    for i in 0..3 {
        c.member_mut(i)
            .wait_healthy()
            .await
            .expect("a member did not recover");
    }
    for (i, ep) in c.endpoints().into_iter().enumerate() {
        let mut reader = Client::new(100 + i, vec![ep], args.seed, start);
        for key in keys.iter() {
            history.push(reader.once(key.clone(), Input::Get).await);
        }
    }
    println!("seed {}: {} operations, faults:", args.seed, history.len());
    for (at, f) in &timeline {
        println!("  {:>6.2}s {f}", at.as_secs_f64());
    }
    let mut seen = Vec::new();
    for w in watchers {
        seen.push(w.await.expect("a watcher panicked"));
    }
    let last = last_revision(&c.endpoint()).await;
    let reference = robustness::watch::reference(&c.endpoint(), last).await;
    println!(
        "watchers saw {:?} of {} events up to revision {last}",
        seen.iter().map(Vec::len).collect::<Vec<_>>(),
        reference.len()
    );
    let mut failed = false;
    if let Err(e) = robustness::watch::check(&reference, &seen, &history) {
        failed = true;
        println!("WATCH OR DURABILITY GUARANTEE BROKEN: {e}");
    }
    if let Err(v) = linearizability::check(&history) {
        failed = true;
        println!("NOT LINEARIZABLE: key {}", String::from_utf8_lossy(&v.key));
        for op in &v.operations {
            println!("  {op:?}");
        }
    }
    let leases = leaser.await.expect("the lease client panicked");
    let revoked = leases.iter().filter(|l| l.revoked).count();
    println!("{} leases, {revoked} revoked", leases.len());
    if let Err(e) = robustness::lease::check(&c.endpoints(), &leases).await {
        failed = true;
        println!("LEASE GUARANTEE BROKEN: {e}");
    }
    match hashes(&c).await {
        Ok(h) if h.windows(2).all(|w| w[0] == w[1]) => println!("members agree: {h:?}"),
        Ok(h) => {
            failed = true;
            println!("MEMBERS DIVERGE: {h:?}");
        }
        Err(e) => {
            failed = true;
            println!("HashKV failed: {e}");
        }
    }
    if failed {
        let dir = args.report_dir.join(format!("seed-{}", args.seed));
        let _ = std::fs::create_dir_all(&dir);
        for m in c.members() {
            let _ = std::fs::copy(m.log_path(), dir.join(format!("{}.log", m.name())));
        }
        println!("member logs: {}", dir.display());
        std::process::exit(1);
    }
    println!("ok");
}

/// The store revision, read linearizably on `endpoint` (every change of
/// the run is under the run's prefix, so it is the last change's).
async fn last_revision(endpoint: &str) -> i64 {
    let Ok(mut kv) = KvClient::connect(endpoint.to_string()).await else {
        return 0;
    };
    let r = kv
        .range(RangeRequest {
            key: robustness::watch::PREFIX.to_vec(),
            count_only: true,
            ..Default::default()
        })
        .await;
    r.ok()
        .and_then(|r| r.into_inner().header)
        .map_or(0, |h| h.revision)
}

/// Each member's (revision, hash) of its history at the smallest current
/// revision among them.
async fn hashes(c: &TestCluster) -> Result<Vec<(i64, u32)>, tonic::Status> {
    let mut clients = Vec::new();
    let mut revision = i64::MAX;
    for ep in c.endpoints() {
        let mut m = MaintenanceClient::connect(ep)
            .await
            .map_err(|e| tonic::Status::unavailable(e.to_string()))?;
        let r = m.hash_kv(HashKvRequest { revision: 0 }).await?.into_inner();
        revision = revision.min(r.header.map_or(0, |h| h.revision));
        clients.push(m);
    }
    let mut out = Vec::new();
    for m in &mut clients {
        let r = m.hash_kv(HashKvRequest { revision }).await?.into_inner();
        out.push((revision, r.hash));
    }
    Ok(out)
}

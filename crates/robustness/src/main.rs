//! `robustness --seed S`: one fault run. Starts a 3-member cluster of the
//! built `etcd` on loopback, runs concurrent clients on a few shared keys
//! while faults chosen from the seed hit the members (`faults.rs`: kills,
//! pauses, cut, slow and lossy peer links at the proxies every peer link
//! goes through, leader transfers) and watchers follow the keys, then
//! heals the cluster and
//! checks: the history is linearizable, every member answers every key as
//! the history allows, every watcher saw a gapless start of the full
//! event history and every acknowledged write is in it, the keys of
//! revoked and expired leases are gone on every member, and all members
//! hash their history alike at one revision; the watchers' streams keep
//! each revision in one response and their progress notifications go
//! forward; serializable reads answered the history at their revision.
//! Prints the fault timeline; on a violation, the smallest part of the
//! key's history found that still admits no order, writes it all with
//! the members' logs to `--report-dir`/seed-S/, and exits 1.

use std::sync::Arc;
use std::time::{Duration, Instant};

use api::etcdserverpb::kv_client::KvClient;
use api::etcdserverpb::maintenance_client::MaintenanceClient;
use api::etcdserverpb::{HashKvRequest, RangeRequest};
use clap::Parser;
use etcd_rs_tests::TestCluster;
use rand::rngs::StdRng;
use rand::SeedableRng;
use robustness::linearizability::{self, Input};
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
}

/// The run's output: printed as it goes, and kept for a failing run's
/// report.
#[derive(Default)]
struct Report {
    lines: Vec<String>,
    failed: bool,
}

impl Report {
    fn say(&mut self, line: String) {
        println!("{line}");
        self.lines.push(line);
    }

    fn fail(&mut self, line: String) {
        self.failed = true;
        self.say(line);
    }

    /// Writes `report.txt` (everything said, which starts with the seed and
    /// the fault timeline) and the members' logs into `dir`.
    fn write(&self, dir: &std::path::Path, c: &TestCluster) {
        let _ = std::fs::create_dir_all(dir);
        let _ = std::fs::write(dir.join("report.txt"), self.lines.join("\n") + "\n");
        for m in c.members() {
            let _ = std::fs::copy(m.log_path(), dir.join(format!("{}.log", m.name())));
        }
    }
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
            let client = Client::new(i, c.endpoints(), args.seed, start);
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
    let timeline = robustness::faults::inject(&mut c, &links, &mut rng, start, until).await;
    let (mut history, mut serializable) = (Vec::new(), Vec::new());
    for h in clients {
        let recorded = h.await.expect("a client panicked");
        history.extend(recorded.history);
        serializable.extend(recorded.serializable);
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
    let mut report = Report::default();
    report.say(format!(
        "seed {}: {} operations, {} serializable reads, faults:",
        args.seed,
        history.len(),
        serializable.len()
    ));
    let mut kinds: std::collections::BTreeMap<&str, usize> = Default::default();
    for (at, f) in &timeline {
        report.say(format!("  {:>6.2}s {f}", at.as_secs_f64()));
        *kinds.entry(f.kind()).or_default() += 1;
    }
    report.say(format!("fault kinds: {kinds:?}"));
    let mut seen = Vec::new();
    for w in watchers {
        seen.push(w.await.expect("a watcher panicked"));
    }
    let last = last_revision(&c.endpoint()).await;
    let reference = robustness::watch::reference(&c.endpoint(), last).await.seen;
    report.say(format!(
        "watchers saw {:?} of {} events up to revision {last}",
        seen.iter().map(|w| w.seen.len()).collect::<Vec<_>>(),
        reference.len()
    ));
    if let Err(e) = robustness::watch::check(&reference, &seen, &history) {
        report.fail(format!("WATCH OR DURABILITY GUARANTEE BROKEN: {e}"));
    }
    if let Err(e) = robustness::watch::check_serializable(&reference, &serializable) {
        report.fail(format!("SERIALIZABLE READ BROKEN: {e}"));
    }
    if let Err(v) = linearizability::check(&history) {
        let key = String::from_utf8_lossy(&v.key).into_owned();
        let small = linearizability::minimize(&v.operations, Duration::from_secs(30));
        report.fail(format!(
            "NOT LINEARIZABLE: key {key}; {} of its {} operations still admit no order:",
            small.len(),
            v.operations.len()
        ));
        for op in &small {
            report.say(format!("  {op:?}"));
        }
    }
    let leases = leaser.await.expect("the lease client panicked");
    let revoked = leases.iter().filter(|l| l.revoked).count();
    report.say(format!("{} leases, {revoked} revoked", leases.len()));
    if let Err(e) = robustness::lease::check(&c.endpoints(), &leases).await {
        report.fail(format!("LEASE GUARANTEE BROKEN: {e}"));
    }
    match hashes(&c).await {
        Ok(h) if h.windows(2).all(|w| w[0] == w[1]) => report.say(format!("members agree: {h:?}")),
        Ok(h) => report.fail(format!("MEMBERS DIVERGE: {h:?}")),
        Err(e) => report.fail(format!("HashKV failed: {e}")),
    }
    if report.failed {
        let dir = args.report_dir.join(format!("seed-{}", args.seed));
        report.write(&dir, &c);
        println!("report and member logs: {}", dir.display());
        // process::exit runs no destructors: stop the members first.
        drop(c);
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

//! Watch benchmark against any etcd endpoint (etcd-rs or etcd), with the
//! etcd-client crate:
//!
//! - latency: W watchers on one key (spread over streams and connections),
//!   then P puts one after another; for each put, the time from sending it
//!   to the moment the last watcher got its event;
//! - fan-out: then B puts from C concurrent clients at once, and the
//!   events all W watchers got per second until the last has them all,
//!   and how many responses carried them;
//! - throughput: N puts from C concurrent clients, with I idle watchers on
//!   other keys (one each), and with none.
//!
//! `cargo run --release -p etcd-rs-tests --example watch_bench -- ENDPOINT`
//! (scripts/watch-bench-compare.sh runs it against both servers).

use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use etcd_client::Client;
use tokio::sync::Notify;

const WATCHERS: usize = 10_000;
const PER_STREAM: usize = 100;
const CONNECTIONS: usize = 10;
const PUTS: usize = 100;
const IDLE_WATCHERS: usize = 100_000;
const BURST_PUTS: usize = 200;
const THROUGHPUT_PUTS: usize = 20_000;
const CLIENTS: usize = 16;

/// Events received per revision, how many revisions every watcher has,
/// and a signal when one more has.
struct Tally {
    seen: Mutex<HashMap<i64, usize>>,
    complete: AtomicUsize,
    responses: AtomicUsize,
    done: Notify,
}

impl Tally {
    /// Waits until `n` revisions reached every watcher.
    async fn until_complete(&self, n: usize) {
        while self.complete.load(Ordering::Acquire) < n {
            self.done.notified().await;
        }
    }
}

async fn connect(endpoint: &str) -> Vec<Client> {
    let mut out = Vec::new();
    for _ in 0..CONNECTIONS {
        out.push(Client::connect([endpoint], None).await.expect("connect"));
    }
    out
}

/// Reads the stream until the server confirms the watch it just created.
async fn await_created(stream: &mut etcd_client::WatchStream) {
    while !stream
        .message()
        .await
        .expect("created")
        .expect("open")
        .created()
    {}
}

/// Opens `n` watchers, the i-th on `key(i)`, `PER_STREAM` per stream;
/// each event counts in `tally` (if given). Returns once every watcher is
/// created.
async fn watchers(
    clients: &mut [Client],
    key: impl Fn(usize) -> String,
    n: usize,
    tally: Option<Arc<Tally>>,
) {
    let streams = n.div_ceil(PER_STREAM);
    for s in 0..streams {
        let client = &mut clients[s % CONNECTIONS];
        let first = s * PER_STREAM;
        let mut stream = client.watch(key(first), None).await.expect("watch");
        await_created(&mut stream).await;
        for i in first + 1..(first + PER_STREAM).min(n) {
            stream.watch(key(i), None).await.expect("watch");
            await_created(&mut stream).await;
        }
        let tally = tally.clone();
        tokio::spawn(async move {
            loop {
                let r = match stream.message().await {
                    Ok(Some(r)) => r,
                    Ok(None) => break,
                    Err(e) => {
                        // Its watchers' events stop counting: say why.
                        eprintln!("watch stream {s} failed: {e}");
                        break;
                    }
                };
                let Some(t) = &tally else { continue };
                t.responses.fetch_add(1, Ordering::Relaxed);
                for ev in r.events() {
                    let rev = ev.kv().map_or(0, |kv| kv.mod_revision());
                    let mut seen = t.seen.lock().unwrap();
                    let c = seen.entry(rev).or_default();
                    *c += 1;
                    if *c == WATCHERS {
                        t.complete.fetch_add(1, Ordering::AcqRel);
                        t.done.notify_one();
                    }
                }
            }
        });
    }
}

async fn latency(endpoint: &str) {
    let mut clients = connect(endpoint).await;
    let tally = Arc::new(Tally {
        seen: Mutex::new(HashMap::new()),
        complete: AtomicUsize::new(0),
        responses: AtomicUsize::new(0),
        done: Notify::new(),
    });
    let t0 = Instant::now();
    let key = |_| "bench-watched".to_string();
    watchers(&mut clients, key, WATCHERS, Some(tally.clone())).await;
    println!("created {WATCHERS} watchers in {:.2?}", t0.elapsed());
    let mut lat = Vec::with_capacity(PUTS);
    let mut put = clients[0].clone();
    for i in 0..PUTS {
        let start = Instant::now();
        put.put("bench-watched", format!("{i}"), None)
            .await
            .expect("put");
        tokio::time::timeout(Duration::from_secs(30), tally.until_complete(i + 1))
            .await
            .expect("every watcher got the event");
        lat.push(start.elapsed());
    }
    lat.sort();
    let avg = lat.iter().sum::<Duration>() / lat.len() as u32;
    println!(
        "put -> last of {WATCHERS} watchers: avg {:.2?}, p50 {:.2?}, p99 {:.2?}, max {:.2?}",
        avg,
        lat[lat.len() / 2],
        lat[lat.len() * 99 / 100],
        lat[lat.len() - 1]
    );
    let before = tally.responses.load(Ordering::Relaxed);
    let start = Instant::now();
    let puts = BURST_PUTS / CLIENTS * CLIENTS;
    concurrent_puts(&clients, puts, |c, i| {
        ("bench-watched".to_string(), format!("{c}/{i}"))
    })
    .await;
    let waited =
        tokio::time::timeout(Duration::from_secs(120), tally.until_complete(PUTS + puts)).await;
    if waited.is_err() {
        let seen = tally.seen.lock().unwrap();
        let mut off: Vec<(i64, usize)> = seen
            .iter()
            .filter(|(_, c)| **c != WATCHERS)
            .map(|(r, c)| (*r, *c))
            .collect();
        off.sort();
        panic!("not every watcher got every event: (revision, events) not {WATCHERS}: {off:?}");
    }
    let secs = start.elapsed().as_secs_f64();
    println!(
        "fan-out responses: {}",
        tally.responses.load(Ordering::Relaxed) - before
    );
    println!(
        "fan-out: {puts} puts from {CLIENTS} clients to {WATCHERS} watchers: {:.0} events/s ({secs:.2} s)",
        (puts * WATCHERS) as f64 / secs
    );
}

/// `n` puts from `CLIENTS` concurrent clients over the connections, the
/// i-th of client c putting `kv(c, i)` (key, value); returns when all are
/// answered.
async fn concurrent_puts(
    clients: &[Client],
    n: usize,
    kv: impl Fn(usize, usize) -> (String, String) + Clone + Send + 'static,
) {
    let tasks: Vec<_> = (0..CLIENTS)
        .map(|c| {
            let mut client = clients[c % CONNECTIONS].clone();
            let kv = kv.clone();
            tokio::spawn(async move {
                for i in 0..n / CLIENTS {
                    let (k, v) = kv(c, i);
                    client.put(k, v, None).await.expect("put");
                }
            })
        })
        .collect();
    for t in tasks {
        t.await.unwrap();
    }
}

async fn throughput(endpoint: &str, label: &str) -> f64 {
    let clients = connect(endpoint).await;
    let start = Instant::now();
    concurrent_puts(&clients, THROUGHPUT_PUTS, |c, i| {
        (format!("bench-put/{c}/{i}"), "v".to_string())
    })
    .await;
    let qps = THROUGHPUT_PUTS as f64 / start.elapsed().as_secs_f64();
    println!("puts/s with {label}: {qps:.0} ({THROUGHPUT_PUTS} puts, {CLIENTS} clients)");
    qps
}

#[tokio::main]
async fn main() {
    let endpoint = std::env::args()
        .nth(1)
        .expect("usage: watch_bench ENDPOINT");
    throughput(&endpoint, "no watchers").await;
    let mut idle_clients = connect(&endpoint).await;
    let t0 = Instant::now();
    let key = |i| format!("bench-idle/{i}");
    watchers(&mut idle_clients, key, IDLE_WATCHERS, None).await;
    println!(
        "created {IDLE_WATCHERS} idle watchers in {:.2?}",
        t0.elapsed()
    );
    throughput(&endpoint, &format!("{IDLE_WATCHERS} idle watchers")).await;
    latency(&endpoint).await;
}

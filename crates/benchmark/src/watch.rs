//! The watch subcommands. `watch` (etcd's): how long creating each of
//! `--streams` x `--watch-per-stream` watchers takes, then how fast their
//! events arrive while `--put-total` puts change the watched keys.
//! `watch-latency`: the time from a put's start to each watcher's event.

use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use api::etcdserverpb::watch_request::RequestUnion;
use api::etcdserverpb::{PutRequest, WatchCreateRequest, WatchRequest};
use clap::Args;
use client::load::{self, varint_key, Results};
use client::Client;
use tokio::sync::{mpsc, oneshot};
use tokio_stream::wrappers::ReceiverStream;

use crate::report::render;
use crate::run::{connections, key_number, random_bytes};
use crate::Global;

/// How long the event phases wait for the next event before counting the
/// rest as missing.
const EVENT_WAIT: Duration = Duration::from_secs(30);

/// `watch` flags (etcd 3.5's).
#[derive(Args, Debug)]
pub struct WatchArgs {
    /// Total watch streams
    #[arg(long, default_value_t = 10)]
    streams: usize,
    /// Total watchers per stream
    #[arg(long, default_value_t = 100)]
    watch_per_stream: usize,
    /// Total number of keys to be watched
    #[arg(long, default_value_t = 1)]
    watched_key_total: usize,
    /// Number of keys to put per second (0 is no limit)
    #[arg(long, default_value_t = 0)]
    put_rate: u64,
    /// Number of put requests
    #[arg(long, default_value_t = 1000)]
    put_total: u64,
    /// Key size of watch request
    #[arg(long, default_value_t = 32)]
    key_size: usize,
    /// Maximum possible keys
    #[arg(long, default_value_t = 1, allow_negative_numbers = true)]
    key_space_size: i64,
    /// Use sequential keys
    #[arg(long, default_value_t = false)]
    sequential_keys: bool,
}

/// `watch-latency` flags.
#[derive(Args, Debug)]
pub struct WatchLatencyArgs {
    /// Total number of put requests
    #[arg(long, default_value_t = 1000)]
    put_total: u64,
    /// Number of keys to put per second
    #[arg(long, default_value_t = 100)]
    put_rate: u64,
    /// Total watch streams
    #[arg(long, default_value_t = 10)]
    streams: usize,
    /// Total watchers per stream
    #[arg(long, default_value_t = 10)]
    watchers_per_stream: usize,
    /// Value size of put request
    #[arg(long, default_value_t = 32)]
    val_size: usize,
}

fn create_request(key: Vec<u8>) -> WatchRequest {
    WatchRequest {
        request_union: Some(RequestUnion::CreateRequest(WatchCreateRequest {
            key,
            ..Default::default()
        })),
    }
}

/// `watch`: prints "Watch creation summary:" (each watcher from its create
/// request to the server's `created` reply, one after another on each
/// stream, the streams at once) and "Watch events received summary:"
/// (every event every watcher receives; as in etcd, an event's time is
/// from its response's arrival to its handling, so Requests/sec, events
/// per second, is the figure that matters).
pub async fn watch(g: &Global, a: &WatchArgs) -> Result<String, String> {
    if a.key_space_size <= 0 {
        return Err(format!(
            "expected positive --key-space-size, got ({})",
            a.key_space_size
        ));
    }
    let (have, wanted) = (g.clients.min(g.conns), 1 + a.streams / 100);
    if have < wanted {
        eprintln!(
            "warning: grpc limits 100 streams per client connection, have {have} but need {wanted}"
        );
    }
    let space = a.key_space_size as u64;
    let keys: Arc<Vec<Vec<u8>>> = Arc::new(
        (0..a.watched_key_total.max(1) as u64)
            .map(|i| varint_key(key_number(i, space, a.sequential_keys), a.key_size))
            .collect(),
    );
    let events_total = events_expected(&keys, a.streams * a.watch_per_stream, a.put_total);

    let conns = connections(g).await?;
    let next = Arc::new(AtomicUsize::new(0));
    let (event_tx, mut event_rx) = mpsc::unbounded_channel::<Duration>();
    let start = Instant::now();
    let mut created = Vec::new();
    for s in 0..a.streams {
        let (created_tx, created_rx) = oneshot::channel();
        tokio::spawn(watch_stream(
            conns[s % conns.len()].clone(),
            Arc::clone(&keys),
            Arc::clone(&next),
            a.watch_per_stream,
            created_tx,
            event_tx.clone(),
        ));
        created.push(created_rx);
    }
    drop(event_tx);
    let mut creations = Results::default();
    for c in created {
        creations.merge(c.await.map_err(|_| "a watch stream task ended early")?);
    }
    let mut out = format!(
        "Watch creation summary:\n{}",
        render(creations, start.elapsed(), g.precise)
    );

    let start = Instant::now();
    let put_keys = Arc::clone(&keys);
    let put = move |c: Client, n: u64| {
        let req = PutRequest {
            key: put_keys[n as usize % put_keys.len()].clone(),
            value: b"data".to_vec(),
            ..Default::default()
        };
        async move {
            c.kv()
                .put(req)
                .await
                .map(|_| ())
                .map_err(|s| s.message().to_string())
        }
    };
    let (clients, total, rate) = (g.clients, a.put_total, a.put_rate);
    let puts = tokio::spawn(async move { load::run(&conns, clients, total, rate, put).await });
    let mut events = Results::default();
    while (events.latencies.len() as u64) < events_total {
        match tokio::time::timeout(EVENT_WAIT, event_rx.recv()).await {
            Ok(Some(d)) => events.record(d, None),
            _ => break,
        }
    }
    let took = start.elapsed();
    let (put_results, _) = puts.await.map_err(|e| e.to_string())?;
    for (e, n) in put_results.errors {
        *events.errors.entry(format!("put: {e}")).or_default() += n;
    }
    let missing = events_total.saturating_sub(events.latencies.len() as u64);
    if missing > 0 {
        events.errors.insert(
            format!("events not received within {}s", EVENT_WAIT.as_secs()),
            missing as usize,
        );
    }
    out += "Watch events received summary:\n";
    out += &render(events, took, g.precise);
    Ok(out)
}

/// Events `puts` puts bring when watcher i of `watchers` watches
/// `keys[i % len]` and put n changes `keys[n % len]` (equal keys share
/// their watchers).
fn events_expected(keys: &[Vec<u8>], watchers: usize, puts: u64) -> u64 {
    let mut on_key: HashMap<&[u8], u64> = HashMap::new();
    for i in 0..watchers {
        *on_key.entry(&keys[i % keys.len()]).or_default() += 1;
    }
    (0..puts)
        .map(|n| {
            on_key
                .get(keys[n as usize % keys.len()].as_slice())
                .copied()
                .unwrap_or(0)
        })
        .sum()
}

/// One watch stream of `watchers` watchers: creates them one after
/// another (each on the next of `keys` by the shared counter `next`),
/// sends their creation times to `created`, then forwards the arrival of
/// every event to `events` until the stream ends.
async fn watch_stream(
    c: Client,
    keys: Arc<Vec<Vec<u8>>>,
    next: Arc<AtomicUsize>,
    watchers: usize,
    created: oneshot::Sender<Results>,
    events: mpsc::UnboundedSender<Duration>,
) {
    let mut results = Results::default();
    let next_key = || keys[next.fetch_add(1, Ordering::Relaxed) % keys.len()].clone();
    let (req_tx, req_rx) = mpsc::channel(1);
    if watchers == 0 {
        let _ = created.send(results);
        return;
    }
    // grpc-go answers a stream's headers with its first message, so the
    // first create request goes out before the call is awaited.
    let t = Instant::now();
    let _ = req_tx.send(create_request(next_key())).await;
    let mut stream = match c.watch().watch(ReceiverStream::new(req_rx)).await {
        Ok(r) => r.into_inner(),
        Err(e) => {
            results.record(t.elapsed(), Some(e.message().to_string()));
            let _ = created.send(results);
            return;
        }
    };
    for i in 0..watchers {
        let t = if i == 0 {
            t
        } else {
            let t = Instant::now();
            let _ = req_tx.send(create_request(next_key())).await;
            t
        };
        let err = loop {
            match stream.message().await {
                Ok(Some(r)) if r.created => break None,
                Ok(Some(_)) => continue,
                Ok(None) => break Some("watch stream closed".to_string()),
                Err(e) => break Some(e.message().to_string()),
            }
        };
        let failed = err.is_some();
        results.record(t.elapsed(), err);
        if failed {
            let _ = created.send(results);
            return;
        }
    }
    let _ = created.send(results);
    while let Ok(Some(r)) = stream.message().await {
        let arrived = Instant::now();
        for _ in &r.events {
            if events.send(arrived.elapsed()).is_err() {
                return;
            }
        }
    }
}

/// `watch-latency`: `--streams` streams of `--watchers-per-stream`
/// watchers on one key, then `--put-total` puts at `--put-rate`; each
/// watcher's latency is from a put's start to its event.
pub async fn watch_latency(g: &Global, a: &WatchLatencyArgs) -> Result<String, String> {
    let conns = connections(g).await?;
    let key = b"watch-latency-key".to_vec();
    let sent: Arc<Mutex<HashMap<u64, Instant>>> = Arc::default();
    let expected = a.put_total * (a.streams * a.watchers_per_stream) as u64;
    let (done_tx, mut done_rx) = tokio::sync::mpsc::unbounded_channel::<Duration>();
    let mut ready = Vec::new();
    for s in 0..a.streams {
        let c = conns[s % conns.len()].clone();
        let reqs: Vec<WatchRequest> = (0..a.watchers_per_stream)
            .map(|_| create_request(key.clone()))
            .collect();
        let (tx, rx) = tokio::sync::mpsc::channel(reqs.len().max(1));
        for r in reqs {
            let _ = tx.send(r).await;
        }
        let mut stream = c
            .watch()
            .watch(tokio_stream::wrappers::ReceiverStream::new(rx))
            .await
            .map_err(|e| e.message().to_string())?
            .into_inner();
        let (created_tx, created_rx) = tokio::sync::oneshot::channel();
        let sent = sent.clone();
        let done = done_tx.clone();
        let watchers = a.watchers_per_stream;
        tokio::spawn(async move {
            let _keep_open = tx;
            let mut created = 0;
            let mut created_tx = Some(created_tx);
            while let Ok(Some(resp)) = stream.message().await {
                if resp.created {
                    created += 1;
                    if created == watchers {
                        if let Some(t) = created_tx.take() {
                            let _ = t.send(());
                        }
                    }
                }
                for ev in resp.events {
                    // The put number leads the value; other writers' events
                    // (deletes, short values) are not ours to time.
                    let value = ev.kv.map(|kv| kv.value).unwrap_or_default();
                    let Some(n) = value.get(..8).and_then(|b| b.try_into().ok()) else {
                        continue;
                    };
                    let n = u64::from_be_bytes(n);
                    if let Some(at) = sent.lock().expect("sent lock").get(&n) {
                        let _ = done.send(at.elapsed());
                    }
                }
            }
        });
        ready.push(created_rx);
    }
    for r in ready {
        r.await
            .map_err(|_| "a watch stream closed before its watchers were created")?;
    }
    let start = Instant::now();
    let filler = random_bytes(a.val_size.saturating_sub(8));
    for n in 0..a.put_total {
        let due = start + Duration::from_secs_f64(n as f64 / a.put_rate.max(1) as f64);
        tokio::time::sleep_until(due.into()).await;
        let mut value = n.to_be_bytes().to_vec();
        value.extend_from_slice(&filler);
        sent.lock().expect("sent lock").insert(n, Instant::now());
        conns[0]
            .kv()
            .put(PutRequest {
                key: key.clone(),
                value,
                ..Default::default()
            })
            .await
            .map_err(|e| e.message().to_string())?;
    }
    let mut results = Results::default();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    while (results.latencies.len() as u64) < expected {
        match tokio::time::timeout_at(deadline, done_rx.recv()).await {
            Ok(Some(d)) => results.record(d, None),
            _ => break,
        }
    }
    let missing = expected - results.latencies.len() as u64;
    if missing > 0 {
        results
            .errors
            .insert("events not received within 30s".into(), missing as usize);
    }
    Ok(render(results, start.elapsed(), g.precise))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_put_brings_one_event_per_watcher_of_its_key() {
        let keys = vec![b"a".to_vec(), b"b".to_vec(), b"a".to_vec()];
        // Watchers 0..5 watch a, b, a, a, b: a has 3, b has 2.
        // Puts 0..4 change a, b, a, a: 3 + 2 + 3 + 3.
        assert_eq!(events_expected(&keys, 5, 4), 11);
        assert_eq!(events_expected(&[b"k".to_vec()], 1000, 10), 10_000);
    }
}

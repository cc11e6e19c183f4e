//! Paced load for the tools that measure a cluster (`benchmark`, `etcdctl
//! check perf`): request loops sharing connections, a request counter,
//! pacing to a rate, the latencies and errors they saw, and the statistics
//! etcd's `pkg/report` derives from them.

use std::collections::BTreeMap;
use std::future::Future;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::Client;

/// What a run saw: each successful request's latency and each error.
#[derive(Default)]
pub struct Results {
    /// Latency of every successful request, in seconds.
    pub latencies: Vec<f64>,
    /// Count of each error text.
    pub errors: BTreeMap<String, usize>,
}

impl Results {
    /// Records one request.
    pub fn record(&mut self, took: Duration, err: Option<String>) {
        match err {
            None => self.latencies.push(took.as_secs_f64()),
            Some(e) => *self.errors.entry(e).or_default() += 1,
        }
    }

    /// Adds another loop's results.
    pub fn merge(&mut self, other: Results) {
        self.latencies.extend(other.latencies);
        for (e, n) in other.errors {
            *self.errors.entry(e).or_default() += n;
        }
    }
}

/// The statistics of a run (etcd's `report.Stats`), in seconds.
#[derive(Debug, PartialEq)]
pub struct Stats {
    /// Wall time of the run.
    pub total: f64,
    /// Slowest request.
    pub slowest: f64,
    /// Fastest request.
    pub fastest: f64,
    /// Mean latency.
    pub average: f64,
    /// Population standard deviation of the latencies.
    pub stddev: f64,
    /// Successful requests per second of wall time.
    pub rps: f64,
    /// Latencies, sorted.
    pub sorted: Vec<f64>,
}

impl Stats {
    /// Statistics of `latencies` over `total` seconds.
    pub fn of(mut latencies: Vec<f64>, total: f64) -> Stats {
        latencies.sort_by(f64::total_cmp);
        let n = latencies.len().max(1) as f64;
        let average = latencies.iter().sum::<f64>() / n;
        let var = latencies.iter().map(|l| (l - average).powi(2)).sum::<f64>() / n;
        Stats {
            total,
            slowest: latencies.last().copied().unwrap_or(0.0),
            fastest: latencies.first().copied().unwrap_or(0.0),
            average,
            stddev: var.sqrt(),
            rps: latencies.len() as f64 / total.max(f64::MIN_POSITIVE),
            sorted: latencies,
        }
    }
}

/// Runs request numbers `0..total` on `clients` loops (loop i on
/// `conns[i % conns.len()]`), starting request n no earlier than n / `rate`
/// seconds after the start when `rate` is non-zero. `op` errors are
/// recorded by their text. Returns the results and the wall time.
/// `conns` must not be empty.
pub async fn run<F, Fut>(
    conns: &[Client],
    clients: usize,
    total: u64,
    rate: u64,
    op: F,
) -> (Results, Duration)
where
    F: Fn(Client, u64) -> Fut + Clone + Send + Sync + 'static,
    Fut: Future<Output = Result<(), String>> + Send,
{
    let next = Arc::new(AtomicU64::new(0));
    let start = Instant::now();
    let mut tasks = Vec::new();
    for i in 0..clients.max(1) {
        let conn = conns[i % conns.len()].clone();
        let next = next.clone();
        let op = op.clone();
        tasks.push(tokio::spawn(async move {
            let mut results = Results::default();
            loop {
                let n = next.fetch_add(1, Ordering::Relaxed);
                if n >= total {
                    return results;
                }
                if rate > 0 {
                    let due = start + Duration::from_secs_f64(n as f64 / rate as f64);
                    tokio::time::sleep_until(due.into()).await;
                }
                let t = Instant::now();
                let r = op(conn.clone(), n).await;
                results.record(t.elapsed(), r.err());
            }
        }));
    }
    let mut all = Results::default();
    for t in tasks {
        match t.await {
            Ok(r) => all.merge(r),
            Err(e) => all.record(Duration::ZERO, Some(e.to_string())),
        }
    }
    (all, start.elapsed())
}

/// `size` bytes holding `n` as Go's `binary.PutVarint` writes it (zig-zag,
/// 7 bits a byte), zero-padded: the keys etcd's load tools generate.
pub fn varint_key(n: u64, size: usize) -> Vec<u8> {
    let mut k = vec![0u8; size.max(1)];
    let mut v = ((n as i64) << 1 ^ ((n as i64) >> 63)) as u64;
    for b in k.iter_mut() {
        let low = (v & 0x7f) as u8;
        v >>= 7;
        *b = if v == 0 { low } else { low | 0x80 };
        if v == 0 {
            break;
        }
    }
    k
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_are_zigzag_varints_padded_to_size() {
        assert_eq!(varint_key(0, 4), vec![0, 0, 0, 0]);
        assert_eq!(varint_key(1, 4), vec![2, 0, 0, 0]);
        assert_eq!(varint_key(64, 4), vec![0x80, 0x01, 0, 0]);
        assert_eq!(varint_key(5, 1), vec![10]);
    }

    #[test]
    fn stats_are_etcds() {
        let s = Stats::of(vec![0.3, 0.1, 0.2], 2.0);
        assert_eq!((s.fastest, s.slowest, s.rps), (0.1, 0.3, 1.5));
        assert!((s.average - 0.2).abs() < 1e-12);
        assert!((s.stddev - (0.02f64 / 3.0).sqrt()).abs() < 1e-12);
    }
}

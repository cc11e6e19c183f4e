//! The report etcd's benchmark prints (its `pkg/report`): a summary
//! (total, slowest, fastest, average, stddev, requests/sec), a response time
//! histogram of 10 buckets with bars of `∎`, the latency percentiles, and
//! the errors seen.

use std::fmt::Write;
use std::time::Duration;

use client::load::{Results, Stats};

/// Percentiles printed, as etcd's report does (plus 99.99 on request).
const PERCENTILES: [f64; 9] = [10.0, 25.0, 50.0, 75.0, 90.0, 95.0, 99.0, 99.9, 99.99];

/// The latency at each of `PERCENTILES` (the first sample at or past it,
/// as etcd's report picks them).
fn percentiles(st: &Stats) -> Vec<(f64, f64)> {
    let n = st.sorted.len();
    let mut out = Vec::new();
    let mut j = 0;
    for (i, l) in st.sorted.iter().enumerate() {
        if j == PERCENTILES.len() {
            break;
        }
        if i as f64 * 100.0 / n as f64 >= PERCENTILES[j] {
            out.push((PERCENTILES[j], *l));
            j += 1;
        }
    }
    out
}

/// `%4.4f` or, with `--precise`, Go's `%g`.
fn num(v: f64, precise: bool) -> String {
    if precise {
        format!("{v}")
    } else {
        format!("{v:.4}")
    }
}

/// etcd's report text for `results` of a run that took `total`.
pub fn render(results: Results, total: Duration, precise: bool) -> String {
    let mut s = String::new();
    if !results.latencies.is_empty() {
        let st = Stats::of(results.latencies, total.as_secs_f64());
        let secs = |v: f64| format!("{} secs", num(v, precise));
        let _ = write!(
            s,
            "\nSummary:\n  Total:\t{}.\n  Slowest:\t{}.\n  Fastest:\t{}.\n  Average:\t{}.\n  Stddev:\t{}.\n  Requests/sec:\t{}\n",
            secs(st.total),
            secs(st.slowest),
            secs(st.fastest),
            secs(st.average),
            secs(st.stddev),
            num(st.rps, precise)
        );
        s += &histogram(&st, precise);
        s += "\nLatency distribution:\n";
        for (p, v) in percentiles(&st) {
            if v > 0.0 {
                let _ = writeln!(s, "  {p}% in {}.", secs(v));
            }
        }
    }
    if !results.errors.is_empty() {
        s += "\nError distribution:\n";
        for (e, n) in &results.errors {
            let _ = writeln!(s, "  [{n}]\t{e}");
        }
    }
    s
}

/// Ten equal buckets from the fastest to the slowest latency (plus the
/// slowest itself), bars scaled to 40 `∎` for the fullest.
fn histogram(st: &Stats, precise: bool) -> String {
    const BUCKETS: usize = 10;
    let width = (st.slowest - st.fastest) / BUCKETS as f64;
    let mut bounds: Vec<f64> = (0..BUCKETS)
        .map(|i| st.fastest + width * i as f64)
        .collect();
    bounds.push(st.slowest);
    let mut counts = vec![0usize; bounds.len()];
    let mut b = 0;
    for &l in &st.sorted {
        while l > bounds[b] && b < bounds.len() - 1 {
            b += 1;
        }
        counts[b] += 1;
    }
    let max = counts.iter().copied().max().unwrap_or(0).max(1);
    let mut s = String::from("\nResponse time histogram:\n");
    for (bound, count) in bounds.iter().zip(&counts) {
        let bar = "∎".repeat(count * 40 / max);
        let _ = writeln!(s, "  {} [{count}]\t|{bar}", num(*bound, precise));
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn summary_histogram_and_percentiles() {
        let mut r = Results::default();
        for ms in 1..=100 {
            r.record(Duration::from_millis(ms), None);
        }
        r.record(Duration::ZERO, Some("etcdserver: request timed out".into()));
        let text = render(r, Duration::from_secs(2), false);
        assert!(text.contains("\nSummary:\n  Total:\t2.0000 secs.\n  Slowest:\t0.1000 secs.\n  Fastest:\t0.0010 secs.\n  Average:\t0.0505 secs.\n"), "{text}");
        assert!(text.contains("  Requests/sec:\t50.0000\n"), "{text}");
        assert!(text.contains("  0.0010 [1]\t|∎∎∎∎\n"), "{text}");
        assert!(
            text.contains("  50% in 0.0510 secs.\n  75% in 0.0760 secs.\n"),
            "{text}"
        );
        assert!(
            text.contains("\nError distribution:\n  [1]\tetcdserver: request timed out\n"),
            "{text}"
        );
    }
}

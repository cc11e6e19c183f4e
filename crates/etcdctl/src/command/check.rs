//! `check perf`: 60 s of 1 KiB puts under `--prefix` at the rate of the
//! chosen load, from that load's number of clients, then etcd's verdict on
//! throughput (at least 90% of the rate), slowest request (at most 0.5 s)
//! and standard deviation (at most 0.1 s). The keys are deleted afterwards.

use std::sync::Arc;
use std::time::Duration;

use api::etcdserverpb::{
    CompactionRequest, DefragmentRequest, DeleteRangeRequest, PutRequest, RangeRequest,
};
use clap::{ArgAction, Args, Subcommand};
use client::load::{self, varint_key, Results, Stats};
use client::Client;

use super::prefix_end;
use crate::error::{CtlError, EXIT_BAD_FEATURE, EXIT_ERROR, EXIT_INVALID_INPUT};
use crate::global::GlobalFlags;

/// How long the load runs.
const DURATION: Duration = Duration::from_secs(60);

/// The check subcommands.
#[derive(Subcommand, Debug)]
pub enum CheckCommand {
    /// Check the performance of the etcd cluster
    Perf(PerfArgs),
}

/// `check perf` flags.
#[derive(Args, Debug)]
pub struct PerfArgs {
    /// The performance check's workload model. Accepted workloads: s(small), m(medium), l(large), xl(xLarge)
    #[arg(long, default_value = "s")]
    load: String,
    /// The prefix for writing the performance check's keys.
    #[arg(long, default_value = "/etcdctl-check-perf/")]
    prefix: String,
    /// Compact storage with last revision after test is finished.
    #[arg(long, num_args = 0..=1, require_equals = true, default_missing_value = "true",
          default_value_t = false, value_parser = goflags::parse_bool, action = ArgAction::Set)]
    auto_compact: bool,
    /// Defragment storage after test is finished.
    #[arg(long, num_args = 0..=1, require_equals = true, default_missing_value = "true",
          default_value_t = false, value_parser = goflags::parse_bool, action = ArgAction::Set)]
    auto_defrag: bool,
}

/// A load: puts per second and concurrent clients (etcd's table).
fn load_of(name: &str) -> Option<(u64, usize)> {
    match name {
        "s" | "small" => Some((150, 50)),
        "m" | "medium" => Some((1000, 200)),
        "l" | "large" => Some((8000, 500)),
        "xl" | "xLarge" => Some((15000, 1000)),
        _ => None,
    }
}

/// A 256-byte key under `prefix`: `n` as a zig-zag varint, zero-padded,
/// as etcd's check builds them.
fn perf_key(prefix: &[u8], n: u64) -> Vec<u8> {
    let mut k = prefix.to_vec();
    k.extend(varint_key(n, 256));
    k
}

/// `check perf`.
pub async fn run(g: &GlobalFlags, cmd: &CheckCommand) -> Result<(), CtlError> {
    let CheckCommand::Perf(a) = cmd;
    let Some((limit, clients)) = load_of(&a.load) else {
        return Err(CtlError::new(
            EXIT_BAD_FEATURE,
            format!("unknown load option {}", a.load),
        ));
    };
    let c = g.client().await?;
    let prefix = a.prefix.as_bytes().to_vec();
    let probe = RangeRequest {
        key: prefix.clone(),
        range_end: prefix_end(&prefix),
        limit: 1,
        ..Default::default()
    };
    if !g
        .timed(c.kv().range(probe))
        .await?
        .into_inner()
        .kvs
        .is_empty()
    {
        return Err(CtlError::new(
            EXIT_INVALID_INPUT,
            format!(
                "prefix {:?} has keys. Delete with etcdctl del --prefix {} first.",
                a.prefix, a.prefix
            ),
        ));
    }
    let value = Arc::new(vec![0u8; 1024]);
    let key_prefix = Arc::new(prefix.clone());
    let put = move |c: Client, _| {
        let req = PutRequest {
            key: perf_key(&key_prefix, rand::random::<u64>() >> 1),
            value: value.to_vec(),
            ..Default::default()
        };
        async move {
            c.kv()
                .put(req)
                .await
                .map(|_| ())
                .map_err(|e| crate::error::status_text(&e))
        }
    };
    // At `limit` a second, the requests that fit in the duration.
    let total = limit * DURATION.as_secs();
    let conns = std::slice::from_ref(&c);
    let (results, took) = load::run(conns, clients, total, limit, put).await;
    let del = DeleteRangeRequest {
        key: prefix.clone(),
        range_end: prefix_end(&prefix),
        prev_kv: false,
    };
    let deleted = g.timed(c.kv().delete_range(del)).await?.into_inner();
    if a.auto_compact {
        let revision = deleted.header.map_or(0, |h| h.revision);
        g.timed(c.kv().compact(CompactionRequest {
            revision,
            physical: true,
        }))
        .await?;
    }
    if a.auto_defrag {
        g.timed(c.maintenance().defragment(DefragmentRequest {}))
            .await?;
    }
    let lines = verdict(results, took, limit);
    println!("{}", lines.join("\n"));
    if lines.last().map(String::as_str) != Some("PASS") {
        std::process::exit(EXIT_ERROR);
    }
    Ok(())
}

/// etcd's verdict lines, the last `PASS` or `FAIL`.
fn verdict(results: Results, took: Duration, limit: u64) -> Vec<String> {
    let errors = &results.errors;
    let Stats {
        rps,
        slowest,
        stddev,
        ..
    } = Stats::of(results.latencies, took.as_secs_f64());
    let mut out = Vec::new();
    let mut ok = true;
    if !errors.is_empty() {
        out.push("FAIL: too many errors".to_string());
        for (e, count) in errors {
            out.push(format!("FAIL: ERROR({e}) -> {count}"));
        }
        ok = false;
    }
    if rps / limit as f64 <= 0.9 {
        out.push(format!(
            "FAIL: Throughput too low: {} writes/s",
            rps as i64 + 1
        ));
        ok = false;
    } else {
        out.push(format!("PASS: Throughput is {} writes/s", rps as i64 + 1));
    }
    if slowest > 0.5 {
        out.push(format!("Slowest request took too long: {slowest:.6}s"));
        ok = false;
    } else {
        out.push(format!("PASS: Slowest request took {slowest:.6}s"));
    }
    if stddev > 0.1 {
        out.push(format!("Stddev too high: {stddev:.6}s"));
        ok = false;
    } else {
        out.push(format!("PASS: Stddev is {stddev:.6}s"));
    }
    out.push(if ok { "PASS" } else { "FAIL" }.to_string());
    out
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use super::*;

    #[test]
    fn verdicts_follow_etcds_thresholds() {
        let run = |latency: f64, n: usize, errors: BTreeMap<String, usize>| Results {
            latencies: vec![latency; n],
            errors,
        };
        let minute = Duration::from_secs(60);
        let ok = verdict(run(0.01, 9000, BTreeMap::new()), minute, 150);
        assert_eq!(
            ok,
            [
                "PASS: Throughput is 151 writes/s",
                "PASS: Slowest request took 0.010000s",
                "PASS: Stddev is 0.000000s",
                "PASS"
            ]
        );
        let mut errs = BTreeMap::new();
        errs.insert("etcdserver: request timed out".to_string(), 3);
        let bad = verdict(run(0.6, 10, errs), minute, 150);
        assert_eq!(bad[0], "FAIL: too many errors");
        assert_eq!(bad[2], "FAIL: Throughput too low: 1 writes/s");
        assert_eq!(bad[3], "Slowest request took too long: 0.600000s");
        assert_eq!(bad.last().unwrap(), "FAIL");
        assert_eq!(perf_key(b"/p/", 1)[3], 2);
        assert_eq!(perf_key(b"/p/", 1).len(), 3 + 256);
    }
}

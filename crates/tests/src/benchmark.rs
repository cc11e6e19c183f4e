//! Running our `benchmark` binary and reading its report.

use std::process::Command;
use std::time::Duration;

use crate::bins::benchmark_bin;
use crate::process::{run, Output};

/// Hard limit for one benchmark run; tests keep their runs small.
const RUN_LIMIT: Duration = Duration::from_secs(60);

/// Runs `benchmark --endpoints=<endpoint> <args>`.
pub fn benchmark(endpoint: &str, args: &[&str]) -> Output {
    let mut cmd = Command::new(benchmark_bin());
    cmd.arg(format!("--endpoints={endpoint}")).args(args);
    run(cmd, None, RUN_LIMIT)
}

/// The request counts of a report's "Response time histogram" buckets
/// (lines `  <bound> [<count>]\t|<bar>`), summed: every request the report
/// counted. Panics if `report` has no histogram.
pub fn histogram_total(report: &str) -> u64 {
    let hist = report
        .split("Response time histogram:\n")
        .nth(1)
        .unwrap_or_else(|| panic!("no histogram in:\n{report}"));
    hist.lines()
        .take_while(|l| l.contains('|'))
        .map(|l| {
            let n = l.split('[').nth(1).and_then(|r| r.split(']').next());
            n.and_then(|n| n.parse::<u64>().ok())
                .unwrap_or_else(|| panic!("bad histogram line {l:?}"))
        })
        .sum()
}

//! etcd 3.5 flags that etcd-rs does not implement yet. Each is accepted
//! (on the command line, as `ETCD_*` and in the config file) so that a
//! command line written for etcd parses; set to anything but etcd's
//! default, it fails start-up with an error naming it, never silently.
//! A flag leaves this list in the commit that implements it.

use std::sync::OnceLock;
use std::time::Duration;

use clap::parser::ValueSource;
use clap::{Arg, ArgMatches};

use super::ConfigError;

/// (flag, etcd 3.5's default).
const UNSUPPORTED: &[(&str, &str)] = &[
    ("max-snapshots", "5"),
    ("max-wals", "5"),
    ("listen-client-http-urls", ""),
    ("initial-election-tick-advance", "true"),
    ("backend-bbolt-freelist-type", ""),
    ("backend-batch-interval", "0s"),
    ("backend-batch-limit", "0"),
    ("grpc-keepalive-min-time", "5s"),
    ("grpc-keepalive-interval", "2h"),
    ("grpc-keepalive-timeout", "20s"),
    ("socket-reuse-port", "false"),
    ("socket-reuse-address", "false"),
    ("raft-read-timeout", "5s"),
    ("raft-write-timeout", "5s"),
    ("discovery", ""),
    ("discovery-fallback", "proxy"),
    ("discovery-proxy", ""),
    ("discovery-srv", ""),
    ("discovery-srv-name", ""),
    ("pre-vote", "true"),
    ("enable-v2", "false"),
    ("experimental-enable-v2v3", ""),
    ("v2-deprecation", ""),
    ("proxy", "off"),
    ("proxy-failure-wait", "5000"),
    ("proxy-refresh-interval", "30000"),
    ("proxy-dial-timeout", "1000"),
    ("proxy-write-timeout", "5000"),
    ("proxy-read-timeout", "0"),
    ("client-cert-file", ""),
    ("client-key-file", ""),
    ("peer-client-cert-file", ""),
    ("peer-client-key-file", ""),
    ("enable-log-rotation", "false"),
    (
        "log-rotation-config-json",
        r#"{"maxsize": 100, "maxage": 0, "maxbackups": 0, "localtime": false, "compress": false}"#,
    ),
    ("enable-pprof", "false"),
    ("experimental-enable-distributed-tracing", "false"),
    ("experimental-distributed-tracing-address", "localhost:4317"),
    ("experimental-distributed-tracing-service-name", "etcd"),
    ("experimental-distributed-tracing-instance-id", ""),
    ("experimental-distributed-tracing-sampling-rate", "0"),
    ("enable-grpc-gateway", "true"),
    ("experimental-compact-hash-check-enabled", "false"),
    ("experimental-compact-hash-check-time", "1m"),
    ("experimental-downgrade-check-time", "5s"),
    ("experimental-warning-apply-duration", "100ms"),
    ("experimental-memory-mlock", "false"),
    ("experimental-txn-mode-write-with-shared-buffer", "true"),
    ("experimental-stop-grpc-service-on-defrag", "false"),
    ("experimental-bootstrap-defrag-threshold-megabytes", "0"),
    ("unsafe-no-fsync", "false"),
];

/// The unsupported flags as hidden arguments; a boolean one also takes
/// Go's bare `--flag` form.
pub(super) fn args() -> Vec<Arg> {
    static ENV: OnceLock<Vec<String>> = OnceLock::new();
    let env = ENV.get_or_init(|| {
        UNSUPPORTED
            .iter()
            .map(|(name, _)| format!("ETCD_{}", name.to_uppercase().replace('-', "_")))
            .collect()
    });
    UNSUPPORTED
        .iter()
        .zip(env)
        .map(|((name, default), env)| hidden(name, env, matches!(*default, "true" | "false")))
        .collect()
}

/// A hidden flag `name` read also from `env`; a boolean one also takes
/// Go's bare `--flag`.
pub(super) fn hidden(name: &'static str, env: &'static str, boolean: bool) -> Arg {
    let arg = Arg::new(name).long(name).hide(true).env(env);
    if boolean {
        arg.num_args(0..=1)
            .require_equals(true)
            .default_missing_value("true")
    } else {
        arg
    }
}

/// The first unsupported flag given a value that differs from etcd's
/// default, as an error.
pub(super) fn check(m: &ArgMatches) -> Result<(), ConfigError> {
    for (name, default) in UNSUPPORTED {
        if !matches!(
            m.value_source(name),
            Some(ValueSource::CommandLine | ValueSource::EnvVariable)
        ) {
            continue;
        }
        let given = m.get_one::<String>(name).map_or("", String::as_str);
        if !same(given, default) {
            let flag = super::migrate::spelled(m, name, given);
            return Err(ConfigError(format!(
                "{flag} is not supported yet by etcd-rs (etcd's default, {default:?}, is the only value it takes)"
            )));
        }
    }
    Ok(())
}

/// Whether two flag values mean the same: equal text, or equal as Go
/// durations (`2h` and `2h0m0s`) or booleans (`1` and `true`).
fn same(a: &str, b: &str) -> bool {
    let duration = |s: &str| -> Option<Duration> {
        if s == "0" {
            return Some(Duration::ZERO);
        }
        humantime::parse_duration(s).ok()
    };
    // Booleans only where the default is one: `f` is no integer 0.
    let boolean = |s: &str| goflags::parse_bool(s).ok();
    let is_bool = matches!(b, "true" | "false");
    a == b
        || matches!((duration(a), duration(b)), (Some(x), Some(y)) if x == y)
        || (is_bool && matches!((boolean(a), boolean(b)), (Some(x), Some(y)) if x == y))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(args: &[&str]) -> Result<(), ConfigError> {
        let m = clap::Command::new("etcd")
            .args(args_for_test())
            .try_get_matches_from(std::iter::once("etcd").chain(args.iter().copied()))
            .unwrap();
        check(&m)
    }

    fn args_for_test() -> Vec<Arg> {
        args().into_iter().map(|a| a.env(None::<&str>)).collect()
    }

    #[test]
    fn etcds_defaults_are_accepted_anything_else_is_refused_by_name() {
        parse(&[]).unwrap();
        parse(&[
            "--enable-v2=false",
            "--grpc-keepalive-interval=2h0m0s",
            "--pre-vote",
        ])
        .unwrap();
        let e = parse(&["--enable-v2"]).unwrap_err();
        assert!(
            e.0.starts_with("--enable-v2=true is not supported yet"),
            "{e}"
        );
        let e = parse(&["--max-wals", "7"]).unwrap_err();
        assert!(e.0.contains("--max-wals=7"), "{e}");
    }
}

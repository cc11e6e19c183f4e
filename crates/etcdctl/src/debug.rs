//! `--debug`, as etcdctl prints it on standard error: every global flag
//! as its `ETCDCTL_*` variable with its value (sorted by name, values in
//! Go's forms), then the client's connection events in grpc-go's log
//! format (`INFO: 2006/01/02 15:04:05 [core]...`).

use std::time::{Duration, SystemTime};

use crate::global::GlobalFlags;

/// Go's `time.Duration.String()` for the whole milliseconds etcdctl's
/// timeouts take: `2s`, `500ms`, `1m30s`, `2h0m0s`.
fn go_duration(d: Duration) -> String {
    let ms = d.as_millis();
    if ms == 0 {
        return "0s".to_string();
    }
    if ms < 1000 {
        return format!("{ms}ms");
    }
    let (h, m) = (ms / 3_600_000, (ms / 60_000) % 60);
    let s = (ms % 60_000) as f64 / 1000.0;
    let secs = format!("{s}s");
    match (h, m) {
        (0, 0) => secs,
        (0, m) => format!("{m}m{secs}"),
        (h, m) => format!("{h}h{m}m{secs}"),
    }
}

/// The `ETCDCTL_*` lines etcdctl's `--debug` prints, in name order.
/// etcd-rs's etcdctl has no DNS discovery, so its three flags keep
/// etcdctl's defaults.
pub fn flag_lines(g: &GlobalFlags) -> Vec<String> {
    let opt = |v: &Option<String>| v.clone().unwrap_or_default();
    let mut lines = vec![
        ("CACERT", opt(&g.cacert)),
        ("CERT", opt(&g.cert)),
        ("COMMAND_TIMEOUT", go_duration(g.command_timeout)),
        ("DEBUG", g.debug.to_string()),
        ("DIAL_TIMEOUT", go_duration(g.dial_timeout)),
        ("DISCOVERY_SRV", String::new()),
        ("DISCOVERY_SRV_NAME", String::new()),
        ("ENDPOINTS", format!("[{}]", g.endpoints.join(","))),
        ("HEX", g.hex.to_string()),
        ("INSECURE_DISCOVERY", "true".to_string()),
        (
            "INSECURE_SKIP_TLS_VERIFY",
            g.insecure_skip_tls_verify.to_string(),
        ),
        ("INSECURE_TRANSPORT", g.insecure_transport.to_string()),
        ("KEEPALIVE_TIME", go_duration(g.keepalive_time)),
        ("KEEPALIVE_TIMEOUT", go_duration(g.keepalive_timeout)),
        ("KEY", opt(&g.key)),
        ("PASSWORD", opt(&g.password)),
        ("USER", opt(&g.user)),
        ("WRITE_OUT", g.write_out.clone()),
    ];
    lines.sort();
    lines
        .into_iter()
        .map(|(k, v)| format!("ETCDCTL_{k}={v}"))
        .collect()
}

/// Prints the flag lines when `--debug` is on.
pub fn print_flags(g: &GlobalFlags) {
    if g.debug {
        for l in flag_lines(g) {
            eprintln!("{l}");
        }
    }
}

/// A grpc-go INFO line for `msg`, when `--debug` is on.
pub fn grpc_info(g: &GlobalFlags, msg: &str) {
    if g.debug {
        eprintln!("INFO: {} [core]{msg}", log_time(SystemTime::now()));
    }
}

/// Go's log time, `2006/01/02 15:04:05` (UTC).
fn log_time(t: SystemTime) -> String {
    let rfc = humantime::format_rfc3339_seconds(t).to_string();
    rfc.trim_end_matches('Z')
        .replace('-', "/")
        .replace('T', " ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_read_as_go_prints_them() {
        assert_eq!(go_duration(Duration::from_secs(2)), "2s");
        assert_eq!(go_duration(Duration::from_millis(500)), "500ms");
        assert_eq!(go_duration(Duration::from_secs(90)), "1m30s");
        assert_eq!(go_duration(Duration::from_millis(1500)), "1.5s");
        assert_eq!(go_duration(Duration::from_secs(7200)), "2h0m0s");
    }

    #[test]
    fn log_time_is_gos() {
        let t = SystemTime::UNIX_EPOCH + Duration::from_secs(1_796_225_103);
        assert_eq!(log_time(t), "2026/12/02 15:25:03");
    }
}

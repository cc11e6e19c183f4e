//! etcd's rules for HTTP requests on the client URL, compared with the
//! reference etcd: CORS headers on every answer (`--cors`, any origin by
//! default), a browser's `OPTIONS` preflight answered at once, `Host`
//! names outside `--host-whitelist` refused with 421, a gateway path
//! asked with GET answered 405, and the headers grpc-gateway puts on an
//! answer from the gRPC call (`Grpc-Metadata-Content-Type`). gRPC is
//! untouched by these rules (every other test uses it through them).

use std::process::Command;
use std::time::Duration;

use etcd_rs_tests::bins::reference_etcd_bin;
use etcd_rs_tests::{within, TestCluster};

const LIMIT: Duration = Duration::from_secs(120);

/// Headers compared; the rest (dates, lengths, chunking) are the HTTP
/// stacks' own.
const HEADERS: &[&str] = &[
    "access-control-allow-headers",
    "access-control-allow-methods",
    "access-control-allow-origin",
    "content-type",
    "grpc-metadata-content-type",
    "x-content-type-options",
];

/// (method, path, extra header, body).
const REQUESTS: &[(&str, &str, Option<&str>, Option<&str>)] = &[
    (
        "POST",
        "/v3/kv/put",
        None,
        Some(r#"{"key":"YQ==","value":"Yg=="}"#),
    ),
    (
        "POST",
        "/v3/kv/range",
        Some("Origin: http://good.example:80"),
        Some(r#"{"key":"YQ=="}"#),
    ),
    (
        "POST",
        "/v3/kv/range",
        Some("Origin: http://evil.example"),
        Some(r#"{"key":"YQ=="}"#),
    ),
    ("POST", "/v3/kv/put", None, Some(r#"{"key":1}"#)),
    ("GET", "/v3/kv/put", None, None),
    ("PUT", "/v3/kv/range", None, Some("{}")),
    (
        "OPTIONS",
        "/v3/kv/range",
        Some("Origin: http://good.example:80"),
        None,
    ),
    ("OPTIONS", "/no/such/path", None, None),
    (
        "GET",
        "/health",
        Some("Origin: http://good.example:80"),
        None,
    ),
    ("GET", "/no/such/path", None, None),
    (
        "POST",
        "/v3/kv/range",
        Some("Host: localhost:2379"),
        Some("{}"),
    ),
    (
        "POST",
        "/v3/kv/range",
        Some("Host: evil.example:2379"),
        Some("{}"),
    ),
    ("GET", "/health", Some("Host: evil.example"), None),
];

/// One request with curl: the status, the compared headers (lowercase
/// name: value), and the body unless it is JSON.
fn request(
    endpoint: &str,
    (method, path, header, body): (&str, &str, Option<&str>, Option<&str>),
) -> String {
    let mut cmd = Command::new("curl");
    cmd.args(["-s", "-i", "--max-time", "10", "-X", method]);
    if let Some(h) = header {
        cmd.args(["-H", h]);
    }
    if let Some(b) = body {
        cmd.args(["-d", b]);
    }
    let out = cmd
        .arg(format!("{endpoint}{path}"))
        .output()
        .expect("curl runs");
    let text = String::from_utf8_lossy(&out.stdout).replace("\r\n", "\n");
    let (head, body) = text.split_once("\n\n").unwrap_or((&text, ""));
    let mut lines = head.lines();
    let status = lines
        .next()
        .unwrap_or("")
        .split(' ')
        .nth(1)
        .unwrap_or("")
        .to_string();
    let mut headers: Vec<String> = lines
        .filter_map(|l| l.split_once(": "))
        .map(|(k, v)| (k.to_ascii_lowercase(), v))
        .filter(|(k, _)| HEADERS.contains(&k.as_str()))
        .map(|(k, v)| format!("{k}: {v}"))
        .collect();
    headers.sort();
    // JSON bodies are the gateway tests' (ids, revisions and 3.5's error
    // bodies differ from the reference 3.4's).
    let body = if body.starts_with('{') {
        "<json>"
    } else {
        body
    };
    format!("{method} {path} {header:?} -> {status} {headers:?} {body:?}")
}

fn transcript(endpoint: &str) -> Vec<String> {
    REQUESTS.iter().map(|r| request(endpoint, *r)).collect()
}

/// Runs the requests against the reference and etcd-rs started with
/// `flags`; panics on any difference.
async fn compare(flags: &[&str]) {
    let (reference, ours) = tokio::join!(
        TestCluster::builder(1)
            .bin(reference_etcd_bin())
            .flags(flags)
            .start(),
        TestCluster::builder(1).flags(flags).start(),
    );
    let (r, o) = (reference.endpoint(), ours.endpoint());
    let (want, got) = tokio::join!(
        tokio::task::spawn_blocking(move || transcript(&r)),
        tokio::task::spawn_blocking(move || transcript(&o)),
    );
    let (want, got) = (want.unwrap(), got.unwrap());
    let diffs: Vec<String> = want
        .iter()
        .zip(&got)
        .filter(|(w, g)| w != g)
        .map(|(w, g)| format!("  reference: {w}\n  ours:      {g}"))
        .collect();
    assert!(
        diffs.is_empty(),
        "{flags:?}: {} of {} requests differ:\n{}",
        diffs.len(),
        want.len(),
        diffs.join("\n")
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn http_rules_by_default_are_etcds() {
    within(LIMIT, compare(&[])).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cors_and_host_whitelist_are_etcds() {
    within(
        LIMIT,
        compare(&[
            "--cors=http://good.example:80",
            "--host-whitelist=localhost,127.0.0.1",
        ]),
    )
    .await;
}

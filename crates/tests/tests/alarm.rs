//! Alarms as etcd raises, reports and enforces them.
//!
//! A differential test runs one script (alarms raised and disarmed through
//! the gateway, `etcdctl alarm list|disarm` in every output format, the
//! writes each alarm refuses and the reads it lets through, Status's
//! `errors`) against the reference etcd and against etcd-rs, and compares
//! every answer. A second test checks what etcd 3.5 adds over the
//! reference 3.4 and what a cluster must keep: the alarm holds on every
//! member and across restarts, `/health` names it (and `?exclude=` skips
//! it), `/readyz` fails on CORRUPT, `etcdctl endpoint health` (ours,
//! with 3.5's rule) calls the endpoint unhealthy, and an alarm of type
//! NONE is not raised (3.4 records one).

use std::process::Command;
use std::time::Duration;

use etcd_rs_tests::bins::{our_etcdctl_bin, reference_etcd_bin};
use etcd_rs_tests::etcdctl::{etcdctl, etcdctl_with};
use etcd_rs_tests::health::http_get;
use etcd_rs_tests::{within, TestCluster};
use serde_json::Value;

const LIMIT: Duration = Duration::from_secs(180);

/// One step of the script.
enum Step {
    /// POST this JSON to this gateway path.
    Curl(&'static str, &'static str),
    /// Run the Go etcdctl with these arguments (and this stdin).
    Ctl(&'static [&'static str], Option<&'static str>),
    /// The `errors` of `etcdctl endpoint status -w json`.
    StatusErrors,
}

use Step::{Ctl, Curl};

const ALARM: &str = "/v3/maintenance/alarm";

const SCRIPT: &[Step] = &[
    Ctl(&["put", "a", "1"], None),
    Ctl(&["alarm", "list"], None),
    Ctl(&["alarm", "list", "-w", "json"], None),
    Ctl(&["alarm", "disarm"], None),
    Curl(
        ALARM,
        r#"{"action":"ACTIVATE","memberID":"5","alarm":"NOSPACE"}"#,
    ),
    Curl(
        ALARM,
        r#"{"action":"ACTIVATE","memberID":"5","alarm":"NOSPACE"}"#,
    ),
    Curl(ALARM, r#"{"action":"GET","alarm":"CORRUPT"}"#),
    Curl(ALARM, r#"{"action":"GET"}"#),
    Ctl(&["alarm", "list"], None),
    Ctl(&["alarm", "list", "-w", "json"], None),
    Ctl(&["alarm", "list", "-w", "fields"], None),
    Ctl(&["alarm", "list", "-w", "protobuf"], None),
    Step::StatusErrors,
    // NOSPACE refuses what adds data.
    Ctl(&["put", "a", "2"], None),
    Ctl(&["txn"], Some("\n\nput b 1\n\n")),
    Ctl(&["txn"], Some("\nget a\n\ndel a\n\n")),
    Ctl(&["lease", "grant", "10"], None),
    Curl("/v3/kv/put", r#"{"key":"YQ==","value":"Mg=="}"#),
    // ... and lets reads, deletes and compaction through.
    Ctl(&["get", "a", "--print-value-only"], None),
    Ctl(&["put", "c", "1"], None),
    Ctl(&["del", "a"], None),
    Ctl(&["compact", "2"], None),
    Ctl(&["alarm", "disarm"], None),
    Ctl(&["alarm", "list"], None),
    Ctl(&["put", "a", "3"], None),
    // CORRUPT refuses every write, not reads.
    Curl(
        ALARM,
        r#"{"action":"ACTIVATE","memberID":"9","alarm":"CORRUPT"}"#,
    ),
    Ctl(&["get", "a", "--print-value-only"], None),
    Ctl(&["get", "a", "--print-value-only", "--consistency=s"], None),
    Ctl(&["put", "a", "4"], None),
    Ctl(&["del", "a"], None),
    Ctl(&["compact", "3"], None),
    Ctl(&["txn"], Some("value(\"a\") = \"3\"\n\n\n")),
    Ctl(&["txn"], Some("\n\ndel a\n\n")),
    Ctl(&["lease", "revoke", "1234"], None),
    Ctl(&["lease", "grant", "10"], None),
    Curl("/v3/kv/deleterange", r#"{"key":"YQ=="}"#),
    Step::StatusErrors,
    Curl(
        ALARM,
        r#"{"action":"DEACTIVATE","memberID":"9","alarm":"CORRUPT"}"#,
    ),
    Curl(
        ALARM,
        r#"{"action":"DEACTIVATE","memberID":"9","alarm":"CORRUPT"}"#,
    ),
    Ctl(&["put", "a", "5"], None),
    Ctl(&["alarm", "list", "-w", "json"], None),
];

/// POSTs `body` to `url`; the HTTP status and the parsed JSON.
fn curl(url: &str, body: &str) -> (u16, Value) {
    let out = Command::new("curl")
        .args([
            "-s",
            "--max-time",
            "10",
            "-w",
            "\n%{http_code}",
            "-d",
            body,
            url,
        ])
        .output()
        .expect("curl runs");
    let text = String::from_utf8_lossy(&out.stdout).to_string();
    let (body, code) = text.rsplit_once('\n').unwrap_or(("", "0"));
    let json = serde_json::from_str(body).unwrap_or(Value::String(body.to_string()));
    (code.trim().parse().unwrap_or(0), sorted(json))
}

/// `v` with every object's keys in order, so its text compares equal
/// whatever order the server wrote (grpc-gateway's error fields come in
/// another order in etcd 3.5 than in the reference 3.4).
fn sorted(v: Value) -> Value {
    match v {
        Value::Object(m) => {
            let mut entries: Vec<(String, Value)> = m.into_iter().collect();
            entries.sort_by(|a, b| a.0.cmp(&b.0));
            Value::Object(entries.into_iter().map(|(k, v)| (k, sorted(v))).collect())
        }
        Value::Array(a) => Value::Array(a.into_iter().map(sorted).collect()),
        other => other,
    }
}

/// The script's answers from the member at `endpoint`, one line each:
/// etcdctl's stdout, the `Error:` line of its stderr (the Go client also
/// logs its retries there, with times) and exit code; curl's status and
/// JSON.
fn transcript(endpoint: &str) -> Vec<String> {
    let eps = [endpoint.to_string()];
    SCRIPT
        .iter()
        .map(|step| match step {
            Curl(path, body) => {
                let (status, json) = curl(&format!("{endpoint}{path}"), body);
                format!("{path} {body} -> {status} {json}")
            }
            Ctl(args, stdin) => {
                let out = etcdctl(&eps, args, *stdin);
                let error: Vec<&str> = out
                    .stderr
                    .lines()
                    .filter(|l| l.starts_with("Error:"))
                    .collect();
                format!(
                    "etcdctl {args:?} -> {} {:?} {error:?}",
                    out.code, out.stdout
                )
            }
            Step::StatusErrors => {
                let out = etcdctl(&eps, &["endpoint", "status", "-w", "json"], None);
                let v: Value = serde_json::from_str(&out.stdout).expect("status JSON");
                format!("status errors -> {}", v[0]["Status"]["errors"])
            }
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn alarms_answer_as_etcd_does() {
    within(LIMIT, async {
        let (reference, ours) = tokio::join!(
            TestCluster::builder(1).bin(reference_etcd_bin()).start(),
            TestCluster::start(1),
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
            .enumerate()
            .filter(|(_, (w, g))| w != g)
            .map(|(i, (w, g))| format!("step {i}:\n  reference: {w}\n  ours:      {g}"))
            .collect();
        assert!(
            diffs.is_empty(),
            "{} of {} steps differ from the reference etcd:\n{}",
            diffs.len(),
            want.len(),
            diffs.join("\n")
        );
    })
    .await;
}

/// GET `path` on member `i`: (status, body).
fn get(c: &TestCluster, i: usize, path: &str) -> (u16, String) {
    let addr = format!("127.0.0.1:{}", c.member(i).client_port());
    let r = http_get(addr.parse().unwrap(), path, Duration::from_secs(10))
        .expect("the member answers HTTP");
    (r.status, r.body)
}

/// Polls `path` on member `i` until it answers `status`; the answer.
/// Followers apply an alarm a moment after the member that answered.
async fn wait_status(c: &TestCluster, i: usize, path: &str, status: u16) -> (u16, String) {
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    loop {
        let r = get(c, i, path);
        if r.0 == status || std::time::Instant::now() > deadline {
            return r;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Our etcdctl against member `i`.
fn ctl(c: &TestCluster, i: usize, args: &[&str]) -> etcd_rs_tests::process::Output {
    etcdctl_with(&our_etcdctl_bin(), &[c.member(i).endpoint()], args, None)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn alarms_hold_on_every_member_and_across_restarts() {
    within(LIMIT, async {
        let mut c = TestCluster::start(3).await;
        let nospace = r#"{"action":"ACTIVATE","memberID":"5","alarm":"NOSPACE"}"#;
        let (status, _) = curl(&format!("{}{ALARM}", c.member(0).endpoint()), nospace);
        assert_eq!(status, 200);
        for i in 0..3 {
            // Raised through raft: every member refuses, once it applied it.
            let h = wait_status(&c, i, "/health", 503).await;
            assert_eq!(
                h,
                (
                    503,
                    "{\"health\":\"false\",\"reason\":\"ALARM NOSPACE\"}\n".into()
                ),
                "member {i}"
            );
            let h = get(&c, i, "/health?exclude=NOSPACE");
            assert_eq!(h, (200, r#"{"health":"true","reason":""}"#.into()));
            assert_eq!(get(&c, i, "/readyz").0, 200, "NOSPACE leaves readyz");
            let put = ctl(&c, i, &["put", "k", "v"]);
            assert_eq!(put.code, 1);
            assert_eq!(
                put.stderr.trim(),
                "Error: etcdserver: mvcc: database space exceeded"
            );
            let health = ctl(&c, i, &["endpoint", "health", "-w", "json"]);
            assert_eq!(health.code, 1, "{}", health.stderr);
            let v: Value = serde_json::from_str(&health.stdout).expect("health JSON");
            assert_eq!(v[0]["health"], false);
            assert_eq!(v[0]["error"], "Active Alarm(s): NOSPACE ");
        }

        // etcd 3.5 raises no alarm of type NONE (3.4 recorded one).
        let (status, none) = curl(
            &format!("{}{ALARM}", c.member(0).endpoint()),
            r#"{"action":"ACTIVATE","memberID":"7","alarm":"NONE"}"#,
        );
        assert_eq!((status, none.to_string()), (200, "{}".to_string()));

        c.restart_all().await;
        let list = ctl(&c, 2, &["alarm", "list"]);
        assert_eq!(list.stdout, "memberID:5 alarm:NOSPACE \n");
        assert_eq!(get(&c, 1, "/health").0, 503);

        let corrupt = r#"{"action":"ACTIVATE","memberID":"6","alarm":"CORRUPT"}"#;
        curl(&format!("{}{ALARM}", c.member(1).endpoint()), corrupt);
        let r = wait_status(&c, 2, "/readyz", 503).await;
        assert_eq!(r.0, 503);
        assert!(
            r.1.starts_with("[-]data_corruption failed: alarm activated: CORRUPT\n"),
            "{}",
            r.1
        );
        assert_eq!(get(&c, 2, "/readyz?exclude=data_corruption").0, 200);
        assert_eq!(get(&c, 2, "/livez").0, 200);
        let health = ctl(&c, 0, &["endpoint", "health", "-w", "json"]);
        let v: Value = serde_json::from_str(&health.stdout).expect("health JSON");
        assert_eq!(v[0]["error"], "Active Alarm(s): NOSPACE CORRUPT ");
        let del = ctl(&c, 0, &["del", "k"]);
        assert_eq!(del.stderr.trim(), "Error: etcdserver: corrupt cluster");

        let disarm = ctl(&c, 0, &["alarm", "disarm"]);
        assert_eq!(
            disarm.stdout,
            "memberID:5 alarm:NOSPACE \nmemberID:6 alarm:CORRUPT \n"
        );
        for i in 0..3 {
            assert_eq!(
                wait_status(&c, i, "/health", 200).await.0,
                200,
                "member {i}"
            );
            assert_eq!(get(&c, i, "/readyz").0, 200, "member {i}");
            let put = ctl(&c, i, &["put", "k", "v"]);
            assert_eq!((put.code, put.stdout.as_str()), (0, "OK\n"));
        }
    })
    .await;
}

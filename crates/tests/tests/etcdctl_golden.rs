//! Golden tests of our `etcdctl` against the real Go one (Debian's
//! `etcd-client`, 3.4): the same list of commands, in every output format,
//! run by each against a freshly bootstrapped etcd-rs member (same ports
//! and flags, so the same member and cluster ids), must give the same
//! stdout, stderr and exit code after normalising what differs from run to
//! run: lease ids, durations, sizes and raft indexes, and the Go client's
//! JSON log lines on stderr.

use std::path::Path;
use std::time::Duration;

use etcd_rs_tests::bins::{etcdctl_bin, our_etcdctl_bin};
use etcd_rs_tests::etcdctl::{etcdctl_with, etcdctl_within, watch_lines};
use etcd_rs_tests::{within, Output, TestCluster};
use regex::Regex;

const LIMIT: Duration = Duration::from_secs(300);

/// What to blank out of a step's output before comparing.
#[derive(Clone, Copy, PartialEq)]
enum Mask {
    /// Compare as printed (lease ids aside).
    None,
    /// Every number (sizes, raft indexes, durations), and the padding
    /// around them.
    Numbers,
    /// Standard output: cobra's usage text, not reproduced.
    Usage,
}

struct Step {
    args: &'static [&'static str],
    stdin: Option<&'static str>,
    mask: Mask,
}

const fn s(args: &'static [&'static str]) -> Step {
    Step {
        args,
        stdin: None,
        mask: Mask::None,
    }
}

const fn input(args: &'static [&'static str], stdin: &'static str) -> Step {
    Step {
        args,
        stdin: Some(stdin),
        mask: Mask::None,
    }
}

const fn masked(args: &'static [&'static str]) -> Step {
    Step {
        args,
        stdin: None,
        mask: Mask::Numbers,
    }
}

const TXN: &str =
    "value(\"k1\") = \"v1\"\nmod(\"k2\") > \"0\"\n\nput k4 v4\nget k1\ndel k9\n\nput k5 v5\n\n";
const TXN_FAIL: &str = "version(\"k1\") = \"7\"\n\nput k4 never\n\nget k --prefix --keys-only\nput k6 v6 --prev-kv\n\n";

/// The script: every command and format, errors included. `$LEASE` is
/// replaced by the id of the last lease granted (hex), `$SNAP` by a file
/// path for snapshots.
const SCRIPT: &[Step] = &[
    s(&["put", "foo", "bar"]),
    s(&["put", "foo", "bar2", "--prev-kv"]),
    s(&["put", "foo", "baz", "-w", "json"]),
    s(&["put", "foo", "qux", "--prev-kv", "-w", "json"]),
    s(&["put", "foo", "q", "-w", "fields"]),
    s(&["put", "foo", "q2", "--prev-kv", "-w", "fields"]),
    s(&["put", "foo", "p", "-w", "protobuf"]),
    s(&["put", "k1", "v1"]),
    s(&["put", "k2", "v2"]),
    s(&["put", "k3", "v3"]),
    s(&["put", "quote\"d", "tab\tbed\\"]),
    input(&["put", "fromstdin"], "line one\nline two\n"),
    s(&["put"]),
    s(&["put", "k", "v", "--lease=zz"]),
    s(&["put", "k", "v", "--lease=123"]),
    s(&["put", "nokey", "--ignore-value"]),
    s(&["get", "foo"]),
    s(&["get", "foo", "-w", "json"]),
    s(&["get", "foo", "-w", "fields"]),
    s(&["get", "foo", "-w", "protobuf"]),
    s(&["get", "foo", "-w", "table"]),
    s(&["get", "foo", "-w", "yaml"]),
    s(&["get", "quote\"d", "-w", "fields"]),
    s(&["get", "k", "--prefix"]),
    s(&["get", "k", "--prefix", "--keys-only"]),
    s(&["get", "k", "--prefix", "--print-value-only"]),
    s(&["get", "k", "--prefix", "--print-value-only", "-w", "json"]),
    s(&["get", "k", "--prefix", "--limit=2", "-w", "json"]),
    s(&["get", "k", "--prefix", "--limit=1", "-w", "fields"]),
    s(&[
        "get",
        "k",
        "--prefix",
        "--order=DESCEND",
        "--sort-by=MODIFY",
    ]),
    s(&["get", "k", "--prefix", "--sort-by=VALUE", "--order=descend"]),
    s(&["get", "k1", "k3"]),
    s(&["get", "k2", "--from-key", "--keys-only"]),
    s(&["get", "", "--prefix", "--keys-only"]),
    s(&["get", "foo", "--rev=3", "-w", "json"]),
    s(&["get", "foo", "--rev=99"]),
    s(&["get", "foo", "--hex"]),
    s(&["get", "k", "--prefix", "--hex", "-w", "fields"]),
    s(&["get", "foo", "--consistency=s"]),
    s(&["get", "foo", "--consistency=x"]),
    s(&["get", "foo", "--order=sideways"]),
    s(&["get", "foo", "--sort-by=colour"]),
    s(&["get"]),
    s(&["get", "k", "--prefix", "--from-key"]),
    s(&["get", "a", "b", "--prefix"]),
    Step {
        args: &["get", "foo", "--no-such-flag"],
        stdin: None,
        mask: Mask::Usage,
    },
    input(&["txn"], TXN),
    input(&["txn", "-w", "json"], TXN_FAIL),
    input(&["txn", "-w", "fields"], TXN),
    input(&["txn", "-w", "protobuf"], TXN),
    input(&["txn", "-i"], TXN_FAIL),
    input(&["txn"], "nonsense\n\n\n\n"),
    input(&["txn"], "\nfrobnicate k\n\n\n"),
    input(&["txn"], "\nput k v\n"),
    input(&["txn", "extra"], "\n\n\n"),
    s(&["del", "k1"]),
    s(&["del", "k", "--prefix", "--prev-kv"]),
    s(&["del", "nothing", "-w", "json"]),
    s(&["del", "foo", "-w", "fields", "--prev-kv"]),
    s(&["del", "a", "--from-key", "--prefix"]),
    s(&["del"]),
    s(&["compaction", "3"]),
    s(&["compaction", "2"]),
    s(&["compaction", "x"]),
    s(&["compaction"]),
    s(&["lease", "grant", "100"]),
    // Remaining TTLs are whole seconds since the grant: masked, as the
    // two runs need not take equally long.
    masked(&["lease", "timetolive", "$LEASE"]),
    s(&["put", "lk", "lv", "--lease=$LEASE"]),
    s(&["get", "lk", "-w", "json"]),
    masked(&["lease", "timetolive", "$LEASE", "--keys"]),
    masked(&["lease", "timetolive", "$LEASE", "--keys", "-w", "json"]),
    masked(&["lease", "timetolive", "$LEASE", "--keys", "-w", "fields"]),
    s(&["lease", "list"]),
    s(&["lease", "list", "-w", "json"]),
    s(&["lease", "list", "-w", "fields"]),
    s(&["lease", "keep-alive", "--once", "$LEASE"]),
    s(&["lease", "keep-alive", "--once", "$LEASE", "-w", "json"]),
    s(&["lease", "keep-alive", "--once", "$LEASE", "-w", "fields"]),
    s(&["lease", "revoke", "$LEASE"]),
    s(&["get", "lk"]),
    s(&["lease", "revoke", "$LEASE"]),
    s(&["lease", "timetolive", "$LEASE"]),
    s(&["lease", "timetolive", "$LEASE", "-w", "json"]),
    s(&["lease", "keep-alive", "--once", "$LEASE"]),
    s(&["lease", "keep-alive", "$LEASE"]),
    s(&["lease", "grant", "100", "-w", "json"]),
    s(&["lease", "grant", "100", "-w", "fields"]),
    s(&["lease", "grant", "x"]),
    s(&["lease", "grant"]),
    s(&["lease", "revoke"]),
    s(&["lease", "revoke", "zz"]),
    s(&["lease", "timetolive"]),
    s(&["member", "list"]),
    s(&["member", "list", "-w", "json"]),
    s(&["member", "list", "-w", "fields"]),
    s(&["member", "list", "-w", "table"]),
    s(&["member", "remove"]),
    s(&["member", "remove", "xyz"]),
    s(&["member", "add"]),
    s(&["member", "add", "n2"]),
    masked(&["endpoint", "status"]),
    masked(&["endpoint", "status", "-w", "json"]),
    masked(&["endpoint", "status", "-w", "fields"]),
    masked(&["endpoint", "status", "-w", "table"]),
    masked(&["endpoint", "status", "--cluster", "-w", "table"]),
    masked(&["endpoint", "health"]),
    masked(&["endpoint", "health", "-w", "json"]),
    masked(&["endpoint", "health", "-w", "fields"]),
    masked(&["endpoint", "health", "-w", "table"]),
    masked(&["endpoint", "health", "--cluster"]),
    s(&["endpoint", "status", "-w", "protobuf"]),
    masked(&["endpoint", "hashkv"]),
    masked(&["endpoint", "hashkv", "-w", "json"]),
    masked(&["endpoint", "hashkv", "-w", "fields"]),
    masked(&["endpoint", "hashkv", "-w", "table"]),
    s(&["endpoint", "hashkv", "--rev=999"]),
    s(&["snapshot", "save", "$SNAP"]),
    s(&["snapshot", "save"]),
    s(&["defrag"]),
    s(&["alarm", "list"]),
    s(&["alarm", "list", "-w", "json"]),
    s(&["move-leader"]),
    s(&["move-leader", "zz"]),
    s(&["move-leader", "1"]),
];

/// Runs the script with `bin`, returning each step's normalised output.
fn run_script(bin: &Path, endpoint: &str, snap: &Path) -> Vec<String> {
    let mut lease = String::from("0");
    let mut outputs = Vec::new();
    for step in SCRIPT {
        let args: Vec<String> = step
            .args
            .iter()
            .map(|a| {
                a.replace("$LEASE", &lease)
                    .replace("$SNAP", &snap.display().to_string())
            })
            .collect();
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        let out = etcdctl_with(bin, &[endpoint.to_string()], &args, step.stdin);
        if args.starts_with(&["lease", "grant"]) && out.code == 0 && !args.contains(&"-w") {
            lease = out
                .stdout
                .split_whitespace()
                .nth(1)
                .unwrap_or("0")
                .to_string();
        }
        outputs.push(normalise(&out, &lease, step.mask));
    }
    outputs
}

/// The step's output with run-to-run differences blanked.
fn normalise(out: &Output, lease: &str, mask: Mask) -> String {
    let stderr = out.stderr_without_logs();
    let stdout = if mask == Mask::Usage { "" } else { &out.stdout };
    let mut text = format!(
        "exit {}\n--- stdout\n{stdout}--- stderr\n{stderr}",
        out.code
    );
    if let Ok(id) = i64::from_str_radix(lease, 16) {
        if id != 0 {
            text = text
                .replace(lease, "<LEASE>")
                .replace(&id.to_string(), "<LEASE>");
        }
    }
    // Ids of leases granted with -w json/fields (never reused later).
    let granted = Regex::new(r#"("ID"\s?:\s?)\d+"#).unwrap();
    if out.command.contains("grant") {
        text = granted.replace_all(&text, "${1}<ID>").into_owned();
    }
    if mask == Mask::Numbers {
        let numbers = Regex::new(r"\d+(\.\d+)?(µs|ms|ns|s| kB| MB| B)?").unwrap();
        let padding = Regex::new(r"[ -]+").unwrap();
        text = numbers.replace_all(&text, "#").into_owned();
        text = padding.replace_all(&text, " ").into_owned();
    }
    text
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn our_etcdctl_prints_what_the_go_etcdctl_prints() {
    within(LIMIT, async {
        let mut c = TestCluster::start(1).await;
        let endpoint = c.member(0).endpoint();
        let dir = tempfile::tempdir().unwrap();
        let snap = dir.path().join("snapshot.db");
        let go = run_script(&etcdctl_bin(), &endpoint, &snap);
        let go_snap = std::fs::metadata(&snap)
            .expect("Go etcdctl saved a snapshot")
            .len();
        std::fs::remove_file(&snap).unwrap();
        c.member_mut(0).kill9();
        c.member_mut(0).wipe();
        c.member_mut(0).restart().await;
        let ours = run_script(&our_etcdctl_bin(), &endpoint, &snap);
        let our_snap = std::fs::metadata(&snap)
            .expect("our etcdctl saved a snapshot")
            .len();
        assert!(go_snap > 0 && our_snap > 0, "{go_snap} {our_snap}");
        let mut diffs = Vec::new();
        for ((step, g), o) in SCRIPT.iter().zip(&go).zip(&ours) {
            if g != o {
                diffs.push(format!(
                    "=== etcdctl {}\n--- Go etcdctl:\n{g}--- ours:\n{o}",
                    step.args.join(" ")
                ));
            }
        }
        assert!(
            diffs.is_empty(),
            "{} of {} commands differ:\n{}",
            diffs.len(),
            SCRIPT.len(),
            diffs.join("\n")
        );
    })
    .await
}

/// `--debug` prints every global flag as its `ETCDCTL_*` variable, as the
/// Go etcdctl does (the lines after them are gRPC's log, which differs).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn debug_prints_the_flags_as_the_go_etcdctl_does() {
    within(LIMIT, async {
        let c = TestCluster::start(1).await;
        let endpoints = [c.member(0).endpoint()];
        let args = [
            "--debug",
            "--dial-timeout=3s",
            "--command-timeout=1m30s",
            "--keepalive-time=500ms",
            "-w",
            "json",
            "--hex",
            "get",
            "k",
        ];
        let flags = |bin: &std::path::Path| {
            let out = etcdctl_with(bin, &endpoints, &args, None);
            out.expect_success();
            out.stderr
                .lines()
                .filter(|l| l.starts_with("ETCDCTL_"))
                .map(str::to_string)
                .collect::<Vec<_>>()
        };
        let go = flags(&etcdctl_bin());
        assert!(go.len() > 10, "{go:?}");
        assert_eq!(flags(&our_etcdctl_bin()), go);
    })
    .await
}

#[test]
fn version_names_etcd_3_5() {
    let out = etcdctl_with(
        &our_etcdctl_bin(),
        &["127.0.0.1:1".to_string()],
        &["version"],
        None,
    );
    out.expect_stdout("etcdctl version: 3.5.17\nAPI version: 3.5\n");
}

/// `watch` replaying history in every format, and the exec form, print the
/// same lines from both etcdctls (watching changes nothing, so both watch
/// one member).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn our_etcdctl_watch_prints_what_the_go_etcdctl_prints() {
    within(LIMIT, async {
        let c = TestCluster::start(1).await;
        let ep = c.member(0).endpoint();
        for args in [
            &["put", "k1", "a"][..],
            &["put", "k2", "b"],
            &["put", "k1", "c"],
            &["del", "k2"],
            &["put", "other", "x"],
        ] {
            c.etcdctl(args).expect_success();
        }
        let exec =
            "echo $ETCD_WATCH_REVISION $ETCD_WATCH_EVENT_TYPE $ETCD_WATCH_KEY $ETCD_WATCH_VALUE";
        let cases: [(&[&str], usize); 6] = [
            (&["k", "--prefix", "--rev=1"], 12),
            (&["k", "--prefix", "--rev=1", "--prev-kv"], 16),
            (&["k1", "--rev=1", "-w", "json"], 1),
            (
                &["k", "--prefix", "--rev=1", "--prev-kv", "-w", "fields"],
                30,
            ),
            (&["k1", "--rev=2", "--hex"], 3),
            (&["k", "--prefix", "--rev=1", "--", "sh", "-c", exec], 16),
        ];
        for (args, lines) in cases {
            let go = watch_lines(&etcdctl_bin(), &ep, args, lines, || ());
            let ours = watch_lines(&our_etcdctl_bin(), &ep, args, lines, || ());
            assert_eq!(go.len(), lines, "Go etcdctl watch {args:?}: {go:#?}");
            assert_eq!(ours, go, "etcdctl watch {args:?}");
        }
    })
    .await
}

/// With a dead endpoint listed first, both etcdctls fail over to the live
/// one and print the same; with only dead endpoints both fail.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn both_etcdctls_fail_over_to_a_live_endpoint() {
    within(LIMIT, async {
        let c = TestCluster::start(1).await;
        let dead = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let dead_ep = dead.local_addr().unwrap().to_string();
        drop(dead);
        let both = [dead_ep.clone(), c.member(0).endpoint()];
        for bin in [etcdctl_bin(), our_etcdctl_bin()] {
            etcdctl_with(&bin, &both, &["put", "fo", "1"], None).expect_stdout("OK\n");
            etcdctl_with(&bin, &both, &["get", "fo"], None).expect_stdout("fo\n1\n");
            let out = etcdctl_with(&bin, std::slice::from_ref(&dead_ep), &["get", "fo"], None);
            assert_eq!(out.code, 1, "{out}");
            assert!(
                out.stderr.contains("Error: context deadline exceeded"),
                "{out}"
            );
        }
    })
    .await
}

/// `check perf` (60 s of load each): both etcdctls give the same verdict
/// lines (numbers masked; Go's progress bar left out) and leave no keys.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn check_perf_gives_the_same_verdict() {
    within(LIMIT, async {
        let c = TestCluster::start(1).await;
        let ep = [c.member(0).endpoint()];
        let numbers = Regex::new(r"\d+(\.\d+)?").unwrap();
        let mut verdicts = Vec::new();
        for bin in [etcdctl_bin(), our_etcdctl_bin()] {
            let args = ["check", "perf", "--load=s"];
            let out = etcdctl_within(&bin, &ep, &args, None, Duration::from_secs(120));
            let lines: Vec<String> = out
                .stdout
                .split(['\n', '\r'])
                .filter(|l| l.starts_with("PASS") || l.starts_with("FAIL") || l.contains("too"))
                .map(|l| numbers.replace_all(l, "#").into_owned())
                .collect();
            verdicts.push((out.code, lines));
            let left = etcdctl_with(
                &bin,
                &ep,
                &["get", "/etcdctl-check-perf/", "--prefix", "--keys-only"],
                None,
            );
            left.expect_stdout("");
        }
        assert_eq!(verdicts[1], verdicts[0], "ours vs Go");
        assert_eq!(
            verdicts[0].1.last().map(String::as_str),
            Some("PASS"),
            "{verdicts:?}"
        );
    })
    .await
}

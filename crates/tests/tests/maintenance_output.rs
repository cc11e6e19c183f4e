//! `alarm list`, `alarm disarm`, `defrag` and `endpoint status` in every
//! output format, printed by the Go etcdctl against the reference etcd
//! and against etcd-rs in the same state (no alarm, then a NOSPACE alarm
//! raised through Maintenance.Alarm, then disarmed), must be the same:
//! what etcd leaves out (the header of an Alarm answer, so `{}`) included.
//! Ids, the version, sizes and raft indexes differ between the two
//! servers and are masked. (`-w fields` is left out for alarms: the Go
//! etcdctl 3.4 dereferences the missing header and panics, against etcd
//! as against etcd-rs.)

use std::time::Duration;

use etcd_client::{AlarmAction, AlarmOptions, AlarmType, Client};
use etcd_rs_tests::bins::{etcdctl_bin, reference_etcd_bin};
use etcd_rs_tests::etcdctl::etcdctl_with;
use etcd_rs_tests::{within, TestCluster};
use regex::Regex;

const LIMIT: Duration = Duration::from_secs(120);

/// The commands, in order; `RAISE` raises NOSPACE for the member.
const SCRIPT: &[&[&str]] = &[
    &["alarm", "list"],
    &["alarm", "list", "-w", "json"],
    &["alarm", "list", "-w", "table"],
    &["alarm", "disarm"],
    &["alarm", "disarm", "-w", "json"],
    &["defrag"],
    &["defrag", "-w", "json"],
    &["endpoint", "status"],
    &["endpoint", "status", "-w", "json"],
    &["endpoint", "status", "-w", "fields"],
    &["endpoint", "status", "-w", "table"],
    &["RAISE"],
    &["alarm", "list"],
    &["alarm", "list", "-w", "json"],
    &["alarm", "list", "-w", "table"],
    &["endpoint", "status"],
    &["endpoint", "status", "-w", "json"],
    &["endpoint", "status", "-w", "table"],
    &["defrag"],
    &["alarm", "disarm", "-w", "table"],
    &["alarm", "list"],
    &["RAISE"],
    &["alarm", "disarm"],
    &["RAISE"],
    &["alarm", "disarm", "-w", "json"],
    &["RAISE"],
    &["alarm", "disarm", "-w", "table"],
    &["alarm", "list", "-w", "json"],
    &["endpoint", "status", "-w", "fields"],
];

/// Every step's stdout, stderr (the Go client's log lines dropped) and
/// exit code against `c`, with what differs between servers masked.
async fn transcript(c: &TestCluster) -> Vec<String> {
    let ep = c.endpoint();
    let mut client = Client::connect([ep.clone()], None).await.unwrap();
    let status = client.status().await.unwrap();
    let member = status.header().unwrap().member_id();
    let cluster = status.header().unwrap().cluster_id();
    let version = status.version().to_string();
    let numbers = Regex::new(r"[ ]*\d+(\.\d+)?( [kMG]?B)?[ ]*").unwrap();
    let padding = Regex::new(r"(-|=| ){2,}").unwrap();
    let mut out = Vec::new();
    for step in SCRIPT {
        if step == &["RAISE"] {
            let mut o = AlarmOptions::new();
            o.with_member(member);
            client
                .alarm(AlarmAction::Activate, AlarmType::Nospace, Some(o))
                .await
                .unwrap();
            continue;
        }
        let o = etcdctl_with(&etcdctl_bin(), std::slice::from_ref(&ep), step, None);
        let mask = |s: &str| {
            let s = s
                .replace(&ep, "<EP>")
                .replace(&ep.replace("http://", ""), "<EP>")
                .replace(&format!("{member:x}"), "<MID>")
                .replace(&member.to_string(), "<MID>")
                .replace(&format!("{cluster:x}"), "<CID>")
                .replace(&cluster.to_string(), "<CID>")
                .replace(&version, "<VERSION>");
            // Sizes, indexes and terms; then the padding and rules of
            // table cells, whose widths follow the ids'.
            let s = numbers.replace_all(&s, "<N>");
            padding.replace_all(&s, "$1").into_owned()
        };
        out.push(format!(
            "$ etcdctl {}\n{}--- stderr\n{}--- exit {}",
            step.join(" "),
            mask(&o.stdout),
            mask(&o.stderr_without_logs()),
            o.code
        ));
    }
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn maintenance_outputs_match_the_go_etcdctl_against_etcd() {
    within(LIMIT, async {
        let (reference, ours) = tokio::join!(
            TestCluster::builder(1).bin(reference_etcd_bin()).start(),
            TestCluster::builder(1).start(),
        );
        let want = transcript(&reference).await;
        let got = transcript(&ours).await;
        let diffs: Vec<String> = want
            .iter()
            .zip(&got)
            .filter(|(w, g)| w != g)
            .map(|(w, g)| format!("reference etcd:\n{w}\netcd-rs:\n{g}\n"))
            .collect();
        assert!(
            diffs.is_empty(),
            "{} of {} steps differ:\n{}",
            diffs.len(),
            want.len(),
            diffs.join("\n")
        );
    })
    .await
}

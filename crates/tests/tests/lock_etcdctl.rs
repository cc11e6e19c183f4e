//! `etcdctl lock` and `etcdctl elect`, differential: the Go etcdctl and
//! ours, each against etcd-rs and against etcd 3.4, print the same and
//! exit the same, with lease ids and revisions masked. One difference is
//! expected: a command run under the lock that fails makes etcdctl 3.5
//! (and ours) exit with its code, the 3.4 etcdctl with 1.
//!
//! The Lock and Election services' errors are compared through the
//! `etcd-client` crate the same way: same gRPC code, same message.

use std::path::Path;
use std::time::Duration;

use etcd_rs_tests::bins::{etcdctl_bin, our_etcdctl_bin, reference_etcd_bin};
use etcd_rs_tests::etcdctl::{etcdctl_within, Running};
use etcd_rs_tests::{within, TestCluster};
use regex::Regex;

const LIMIT: Duration = Duration::from_secs(240);
const STEP: Duration = Duration::from_secs(20);

/// What one etcdctl did, masked: exit code, stdout, stderr.
type Seen = (i32, String, String);

fn mask(text: &str) -> String {
    let id = Regex::new(r"/[0-9a-f]{6,16}\b").unwrap();
    let rev = Regex::new(r"\b(rev|REV)=\d+").unwrap();
    let text = id.replace_all(text, "/<lease>");
    rev.replace_all(&text, "$1=<rev>").into_owned()
}

/// The one-shot cases: arguments, then the command's outcome.
const CASES: &[&[&str]] = &[
    &["lock"],
    &["elect"],
    &["elect", "x"],
    &["elect", "-l", "x", "y"],
    &["elect", "x", "y", "z"],
    &["foo"],
    &["lock", "L", "sh", "-c", "exit 0"],
    &[
        "lock",
        "L",
        "--",
        "sh",
        "-c",
        "echo $ETCD_LOCK_KEY rev=$ETCD_LOCK_REV",
    ],
    &[
        "lock",
        "--ttl",
        "5",
        "L",
        "--",
        "sh",
        "-c",
        "echo out; echo err >&2",
    ],
    &["lock", "L", "--", "sh", "-c", "exit 3"],
    &["lock", "L", "/nonexistent/command"],
    &["lock", "L", "no-such-command-anywhere"],
];

fn one_shot(bin: &Path, endpoint: &str, args: &[&str]) -> Seen {
    let out = etcdctl_within(
        bin,
        &[endpoint.to_string()],
        args,
        None,
        Duration::from_secs(30),
    );
    // cobra's usage text follows a bad flag in the Go etcdctl's output;
    // the error lines around it are what both print.
    let stderr: String = out
        .stderr_without_logs()
        .lines()
        .filter(|l| l.starts_with("Error:") || l.starts_with("Run '") || l.is_empty())
        .filter(|l| !l.is_empty())
        .map(|l| format!("{l}\n"))
        .collect();
    // Nor does our etcdctl print cobra's usage on stdout.
    let stdout = if out.stdout.starts_with("NAME:\n") {
        ""
    } else {
        &out.stdout
    };
    (out.code, mask(stdout), mask(&stderr))
}

/// The holding cases: `lock H` until SIGINT; a second `lock H`
/// interrupted while it waits; `elect E v` seen by `elect -l E`.
fn holding(bin: &Path, endpoint: &str) -> Vec<Seen> {
    let eps = [endpoint.to_string()];
    let mut seen = Vec::new();
    let holder = Running::start(bin, &eps, &["lock", "H"]);
    let key = holder.next_line(STEP).expect("lock prints its key");
    let blank = holder.next_line(STEP).expect("and a blank value line");
    let waiter = Running::start(bin, &eps, &["lock", "H"]);
    // The waiter's key is there once two keys are under H/.
    let deadline = std::time::Instant::now() + STEP;
    while count_keys(endpoint, "H/") < 2 {
        assert!(
            std::time::Instant::now() < deadline,
            "the waiter never queued"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    waiter.signal("INT");
    let (code, out, err) = waiter.wait(STEP);
    seen.push((code, mask(&out), mask(&err)));
    assert_eq!(count_keys(endpoint, "H/"), 1, "the waiter left no key");
    holder.signal("INT");
    let (code, out, err) = holder.wait(STEP);
    seen.push((code, mask(&format!("{key}\n{blank}\n{out}")), mask(&err)));
    assert_eq!(count_keys(endpoint, "H/"), 0, "unlocked at the interrupt");

    let campaign = Running::start(bin, &eps, &["elect", "E", "v"]);
    let lead = [
        campaign.next_line(STEP).unwrap_or_default(),
        campaign.next_line(STEP).unwrap_or_default(),
    ];
    let observer = Running::start(bin, &eps, &["elect", "-l", "E"]);
    let observed = [
        observer.next_line(STEP).unwrap_or_default(),
        observer.next_line(STEP).unwrap_or_default(),
    ];
    assert_eq!(lead, observed, "the observer sees the leader");
    campaign.signal("TERM");
    let (code, out, err) = campaign.wait(STEP);
    seen.push((
        code,
        mask(&format!("{}\n{}\n{out}", lead[0], lead[1])),
        mask(&err),
    ));
    observer.signal("INT");
    let (code, out, err) = observer.wait(STEP);
    seen.push((code, mask(&out), mask(&err)));
    assert_eq!(count_keys(endpoint, "E/"), 0, "resigned at the signal");
    seen
}

fn count_keys(endpoint: &str, prefix: &str) -> usize {
    let out = etcdctl_within(
        &etcdctl_bin(),
        &[endpoint.to_string()],
        &["get", "--prefix", prefix, "--keys-only"],
        None,
        Duration::from_secs(30),
    );
    out.expect_success();
    out.stdout.lines().filter(|l| !l.is_empty()).count()
}

/// Everything `bin` does against `endpoint`.
fn session(bin: &Path, endpoint: &str) -> Vec<Seen> {
    let mut seen: Vec<Seen> = CASES.iter().map(|a| one_shot(bin, endpoint, a)).collect();
    seen.extend(holding(bin, endpoint));
    seen
}

/// The services' errors as (code, message), through the `etcd-client`
/// crate.
async fn service_errors(endpoint: &str) -> Vec<(String, String)> {
    let mut c = etcd_client::Client::connect([endpoint], None)
        .await
        .unwrap();
    let seen = |r: Result<(), etcd_client::Error>| match r {
        Ok(()) => ("OK".to_string(), String::new()),
        Err(etcd_client::Error::GRpcStatus(s)) => (format!("{:?}", s.code()), s.message().into()),
        Err(e) => ("client".to_string(), e.to_string()),
    };
    let mut out = Vec::new();
    let opts = etcd_client::LockOptions::new().with_lease(0x7777);
    out.push(seen(c.lock("n", Some(opts)).await.map(drop)));
    out.push(seen(c.campaign("n", "v", 0x7777).await.map(drop)));
    out.push(seen(c.leader("nobody").await.map(drop)));
    let stale = etcd_client::LeaderKey::new()
        .with_name("n")
        .with_key("n/1")
        .with_rev(1)
        .with_lease(1);
    let proclaim = etcd_client::ProclaimOptions::new().with_leader(stale.clone());
    out.push(seen(c.proclaim("v", Some(proclaim)).await.map(drop)));
    out.push(seen(c.proclaim("v", None).await.map(drop)));
    let resign = etcd_client::ResignOptions::new().with_leader(stale);
    out.push(seen(c.resign(Some(resign)).await.map(drop)));
    out.push(seen(c.unlock("n/none").await.map(drop)));
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lock_and_elect_behave_as_the_go_etcdctl_on_both_servers() {
    within(LIMIT, async {
        let ours = TestCluster::start(1).await;
        let reference = TestCluster::builder(1)
            .bin(reference_etcd_bin())
            .start()
            .await;
        let (e_ours, e_ref) = (ours.endpoint(), reference.endpoint());
        let runs = tokio::task::spawn_blocking(move || {
            let go = etcdctl_bin();
            let rs = our_etcdctl_bin();
            [
                session(&go, &e_ours),
                session(&rs, &e_ours),
                session(&go, &e_ref),
                session(&rs, &e_ref),
            ]
        })
        .await
        .unwrap();
        let [go_on_ours, rs_on_ours, go_on_ref, rs_on_ref] = runs;
        let exit_3 = CASES
            .iter()
            .position(|a| a.last() == Some(&"exit 3"))
            .unwrap();
        for (i, (go, rs)) in go_on_ours.iter().zip(&rs_on_ours).enumerate() {
            let what = CASES
                .get(i)
                .map_or("a holding case".into(), |a| a.join(" "));
            if i == exit_3 {
                // etcdctl 3.5 exits with the command's code; 3.4 with 1.
                assert_eq!((go.0, &go.1, &go.2), (1, &rs.1, &rs.2), "{what}");
                assert_eq!(rs.0, 3, "{what}: the command's exit code");
                continue;
            }
            assert_eq!(go, rs, "Go etcdctl and ours on etcd-rs: {what}");
        }
        assert_eq!(
            go_on_ours, go_on_ref,
            "the Go etcdctl on etcd-rs and etcd 3.4"
        );
        assert_eq!(rs_on_ours, rs_on_ref, "our etcdctl on etcd-rs and etcd 3.4");
        let errors = service_errors(&ours.endpoint()).await;
        let unknown = |m: &str| ("Unknown".to_string(), m.to_string());
        assert_eq!(errors[0], unknown("etcdserver: requested lease not found"));
        assert_eq!(errors[2], unknown("election: no leader"));
        assert_eq!(errors[3], unknown("election: not leader"));
        assert_eq!(
            errors,
            service_errors(&reference.endpoint()).await,
            "Lock and Election errors"
        );
    })
    .await
}

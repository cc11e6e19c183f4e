//! Three members on 127.0.0.1, as the etcd tutorials run them: any member
//! serves clients, the leader fails over, and without quorum writes fail
//! while serializable reads still answer. Driven with the Go etcdctl.

use std::time::{Duration, Instant};

use etcd_rs_tests::etcdctl::etcdctl;
use etcd_rs_tests::{within, Bootstrap, Output, TestCluster};
use serde_json::Value;

const LIMIT: Duration = Duration::from_secs(120);

fn get_json(c: &TestCluster, i: usize, key: &str) -> Value {
    etcdctl(&[c.member(i).endpoint()], &["get", key, "-w", "json"], None).json()
}

/// What a linearizable read of `key` returns on member `i`: value and
/// mod_revision.
fn kv_on(c: &TestCluster, i: usize, key: &str) -> (String, i64) {
    let j = get_json(c, i, key);
    let kv = &j["kvs"][0];
    let value = base64_decode(kv["value"].as_str().expect("a value"));
    (value, kv["mod_revision"].as_i64().unwrap())
}

fn base64_decode(s: &str) -> String {
    const ALPHABET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut bits = 0u32;
    let mut n = 0;
    let mut out = Vec::new();
    for c in s.bytes().filter(|c| *c != b'=') {
        bits = (bits << 6) | ALPHABET.iter().position(|a| *a == c).expect("base64") as u32;
        n += 6;
        if n >= 8 {
            n -= 8;
            out.push((bits >> n) as u8);
        }
    }
    String::from_utf8(out).unwrap()
}

/// The IS LEADER and RAFT TERM cells of `endpoint status -w table` over
/// `members`, one pair per row.
fn status_table(c: &TestCluster, members: &[usize]) -> Vec<(String, String)> {
    let eps: Vec<String> = members.iter().map(|&i| c.member(i).endpoint()).collect();
    let out = etcdctl(&eps, &["endpoint", "status", "-w", "table"], None);
    out.expect_success();
    let rows: Vec<Vec<String>> = out
        .stdout
        .lines()
        .filter(|l| l.starts_with('|'))
        .map(|l| l.split('|').map(|c| c.trim().to_string()).collect())
        .collect();
    assert_eq!(rows[0][5], "IS LEADER", "{out}");
    assert_eq!(rows[0][7], "RAFT TERM", "{out}");
    rows[1..]
        .iter()
        .map(|r| (r[5].clone(), r[7].clone()))
        .collect()
}

/// The tutorial's table over `members`: one row says IS LEADER true, and
/// every row shows raft term `term`.
fn assert_one_leader_at(c: &TestCluster, members: &[usize], term: u64) {
    let rows = status_table(c, members);
    assert_eq!(rows.iter().filter(|r| r.0 == "true").count(), 1, "{rows:?}");
    assert!(rows.iter().all(|r| r.1 == term.to_string()), "{rows:?}");
}

fn on(c: &TestCluster, i: usize, args: &[&str]) -> Output {
    etcdctl(&[c.member(i).endpoint()], args, None)
}

#[tokio::test]
async fn three_members_replicate_and_agree_on_one_leader() {
    within(LIMIT, async {
        let c = TestCluster::start(3).await;
        on(&c, 0, &["put", "greeting", "hello"]).expect_stdout("OK\n");
        for i in [1, 2] {
            on(&c, i, &["get", "greeting"]).expect_stdout("greeting\nhello\n");
        }
        // The tutorial's table: one leader, one term, over all endpoints.
        let out = etcdctl(&c.endpoints(), &["endpoint", "status", "-w", "json"], None);
        let rows = out.json();
        let rows = rows.as_array().unwrap();
        assert_eq!(rows.len(), 3, "{out}");
        let leaders: Vec<_> = rows
            .iter()
            .map(|r| r["Status"]["leader"].as_u64().unwrap())
            .collect();
        assert!(leaders.iter().all(|l| *l == leaders[0] && *l != 0), "{out}");
        let is_leader = rows
            .iter()
            .filter(|r| r["Status"]["header"]["member_id"] == r["Status"]["leader"])
            .count();
        assert_eq!(is_leader, 1, "{out}");
        let terms: Vec<_> = rows
            .iter()
            .map(|r| r["Status"]["raftTerm"].as_u64().unwrap())
            .collect();
        assert!(terms.iter().all(|t| *t == terms[0]), "{out}");
        // Every member lists every member with its published URLs.
        let list = on(&c, 2, &["member", "list"]);
        list.expect_success();
        for m in c.members() {
            let line = format!(
                "started, {}, {}, {}, false",
                m.name(),
                m.peer_url(),
                m.endpoint()
            );
            assert!(list.stdout.contains(&line), "no {line:?} in:\n{list}");
        }
    })
    .await
}

#[tokio::test]
async fn a_new_leader_takes_over_when_the_leader_is_killed() {
    within(LIMIT, async {
        let mut c = TestCluster::start(3).await;
        on(&c, 0, &["put", "before", "1"]).expect_stdout("OK\n");
        let (old, term) = c.wait_for_leader(&[0, 1, 2]);
        assert_one_leader_at(&c, &[0, 1, 2], term);
        c.member_mut(old).kill9();
        let alive: Vec<usize> = (0..3).filter(|i| *i != old).collect();
        let (new, new_term) = c.wait_for_leader(&alive);
        assert_ne!(new, old);
        assert!(
            new_term > term,
            "the term grows with the election: {term} -> {new_term}"
        );
        assert_one_leader_at(&c, &alive, new_term);
        let follower = *alive.iter().find(|i| **i != new).unwrap();
        on(&c, follower, &["put", "after", "2"]).expect_stdout("OK\n");
        on(&c, new, &["get", "after"]).expect_stdout("after\n2\n");
        // The old leader comes back and catches up.
        c.member_mut(old).restart().await;
        on(&c, old, &["get", "after"]).expect_stdout("after\n2\n");
        assert_eq!(kv_on(&c, old, "before"), kv_on(&c, new, "before"));
    })
    .await
}

#[tokio::test]
async fn without_quorum_writes_fail_and_serializable_reads_answer() {
    within(LIMIT, async {
        let mut c = TestCluster::start(3).await;
        on(&c, 0, &["put", "k", "v"]).expect_stdout("OK\n");
        let before = kv_on(&c, 0, "k");
        c.member_mut(1).kill9();
        c.member_mut(2).kill9();
        let put = on(&c, 0, &["put", "k", "lost", "--command-timeout=20s"]);
        assert_ne!(put.code, 0, "a put without quorum must fail:\n{put}");
        assert!(
            put.stderr.contains("Error: etcdserver: request timed out")
                || put.stderr.contains("Error: etcdserver: no leader"),
            "{put}"
        );
        on(&c, 0, &["get", "k", "--consistency=s"]).expect_stdout("k\nv\n");
        // Quorum returns: the cluster recovers by itself.
        c.member_mut(1).restart().await;
        c.member_mut(2).restart().await;
        on(&c, 2, &["put", "k", "back"]).expect_stdout("OK\n");
        let after: Vec<_> = (0..3).map(|i| kv_on(&c, i, "k")).collect();
        assert!(after.iter().all(|a| *a == after[0]), "{after:?}");
        assert_eq!(after[0].0, "back");
        // A put that timed out has an unknown outcome, in raft as in etcd:
        // the old leader's log may still carry it, and it commits once
        // quorum returns. Either way it comes before "back".
        assert!(
            after[0].1 == before.1 + 1 || after[0].1 == before.1 + 2,
            "{before:?} -> {after:?}"
        );
    })
    .await
}

/// The same cluster, configured by a YAML file per member and then by
/// `ETCD_*` variables alone: both reach the same replicated state.
#[tokio::test]
async fn bootstrap_by_config_file_and_by_environment() {
    within(LIMIT, async {
        for how in [Bootstrap::ConfigFile, Bootstrap::Env] {
            let c = TestCluster::builder(3).bootstrap(how).start().await;
            on(&c, 1, &["put", "how", &format!("{how:?}")]).expect_success();
            for i in 0..3 {
                on(&c, i, &["get", "how", "--print-value-only"])
                    .expect_stdout(&format!("{how:?}\n"));
            }
            let list = on(&c, 0, &["member", "list"]);
            for m in c.members() {
                assert!(
                    list.stdout
                        .contains(&format!(", {}, {}, ", m.name(), m.peer_url())),
                    "{how:?}:\n{list}"
                );
            }
        }
    })
    .await
}

#[tokio::test]
async fn move_leader_hands_leadership_to_the_named_member() {
    within(LIMIT, async {
        let c = TestCluster::start(3).await;
        let (old, _) = c.wait_for_leader(&[0, 1, 2]);
        let target = (old + 1) % 3;
        let (old_id, target_id) = (c.status(old).unwrap().0, c.status(target).unwrap().0);
        let all = c.endpoints();
        let out = etcdctl(&all, &["move-leader", &format!("{target_id:x}")], None);
        out.expect_stdout(&format!(
            "Leadership transferred from {old_id:x} to {target_id:x}\n"
        ));
        assert_eq!(c.wait_for_leader(&[0, 1, 2]).0, target);
        // Not a member: etcd's error, nothing moves.
        etcdctl(&all, &["move-leader", "1234"], None)
            .expect_error("etcdserver: bad leader transferee");
        // Asked of a follower directly, the request is refused.
        let follower = (target + 1) % 3;
        let mut cmd = std::process::Command::new(etcd_rs_tests::bins::etcdctl_bin());
        cmd.env("ETCDCTL_API", "3")
            .arg(format!("--endpoints={}", c.member(follower).endpoint()))
            .args(["move-leader", &format!("{old_id:x}")]);
        let out = etcd_rs_tests::process::run(cmd, None, Duration::from_secs(30));
        assert_ne!(out.code, 0, "{out}");
        assert_eq!(c.wait_for_leader(&[0, 1, 2]).0, target);
    })
    .await
}

/// With a low `--snapshot-count`, the others snapshot and trim their logs
/// while a member is down; when it returns it gets the leader's snapshot
/// (the backend with it) and converges.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_member_behind_the_compacted_log_catches_up_by_snapshot() {
    let flags = [
        "--snapshot-count",
        "100",
        "--experimental-snapshot-catchup-entries",
        "10",
    ];
    catch_up_by_snapshot(&flags, true).await;
}

/// The in-memory log keeps only the catch-up entries, whatever
/// `--snapshot-count` says: with the default (100,000) no snapshot record
/// is written for 400 puts, yet a member that missed them is past the
/// leader's log and gets a snapshot.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_in_memory_log_is_trimmed_between_snapshots() {
    catch_up_by_snapshot(&["--experimental-snapshot-catchup-entries", "10"], false).await;
}

/// Kills member 2 of three started with `flags`, puts 400 keys, checks
/// whether member 0 saved snapshot records (`snapshots_expected`), brings
/// member 2 back and checks it restored the leader's snapshot and agrees.
async fn catch_up_by_snapshot(flags: &[&str], snapshots_expected: bool) {
    within(LIMIT, async {
        let mut c = TestCluster::start_with_flags(3, flags).await;
        c.member_mut(2).kill9();
        let mut client = etcd_client::Client::connect([c.member(0).endpoint()], None)
            .await
            .unwrap();
        for i in 0..400 {
            // Two members on a busy machine may hold an election meanwhile;
            // a put that fails then is simply tried again.
            let mut tries = 0;
            while let Err(e) = client.put(format!("k{i:03}"), format!("v{i}"), None).await {
                tries += 1;
                assert!(
                    tries < 20,
                    "put k{i:03} keeps failing: {e}\n{}",
                    c.member(0).log_tail()
                );
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }
        let snaps = std::fs::read_dir(c.member(0).data_dir().join("member").join("snap"))
            .unwrap()
            .filter(|e| {
                e.as_ref()
                    .unwrap()
                    .file_name()
                    .to_string_lossy()
                    .ends_with(".snap")
            })
            .count();
        assert_eq!(
            snaps > 0,
            snapshots_expected,
            "member 0 saved {snaps} snapshot records"
        );
        c.member_mut(2).restart().await;
        // A linearizable read on the returning member waits until it applied.
        let mut back = etcd_client::Client::connect([c.member(2).endpoint()], None)
            .await
            .unwrap();
        let all = Some(etcd_client::GetOptions::new().with_prefix());
        let theirs = back.get("k", all.clone()).await.unwrap();
        let ours = client.get("k", all).await.unwrap();
        assert_eq!(theirs.count(), 400);
        let pairs = |r: &etcd_client::GetResponse| -> Vec<(Vec<u8>, Vec<u8>, i64)> {
            r.kvs()
                .iter()
                .map(|kv| (kv.key().to_vec(), kv.value().to_vec(), kv.mod_revision()))
                .collect()
        };
        assert_eq!(pairs(&theirs), pairs(&ours));
        let log = std::fs::read_to_string(c.member(2).log_path()).unwrap();
        assert!(
            log.contains("restored the backend from the leader's snapshot"),
            "{}",
            c.member(2).log_tail()
        );
        // It keeps up afterwards, too.
        client.put("after", "1", None).await.unwrap();
        let r = back.get("after", None).await.unwrap();
        assert_eq!(r.kvs()[0].value(), b"1");
        // And it restarts from the snapshot it received.
        c.member_mut(2).kill9();
        c.member_mut(2).restart().await;
        let mut back = etcd_client::Client::connect([c.member(2).endpoint()], None)
            .await
            .unwrap();
        let all = Some(etcd_client::GetOptions::new().with_prefix());
        let theirs = back.get("k", all.clone()).await.unwrap();
        let ours = client.get("k", all).await.unwrap();
        assert_eq!(pairs(&theirs), pairs(&ours));
    })
    .await
}

/// Kills the process if the test ends early.
struct KillOnDrop(std::process::Child);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// A member bootstrapped with another cluster token has other member and
/// cluster ids: the cluster refuses its raft messages with etcd's words and
/// goes on untouched.
#[tokio::test]
async fn a_member_of_another_cluster_is_refused() {
    within(LIMIT, async {
        let c = TestCluster::start(3).await;
        let (client, peer) = (free_port(), free_port());
        let dir = tempfile::tempdir().unwrap();
        let mut initial: Vec<String> = c
            .members()
            .iter()
            .map(|m| format!("{}={}", m.name(), m.peer_url()))
            .collect();
        initial.push(format!("intruder=http://127.0.0.1:{peer}"));
        let log_path = dir.path().join("intruder.log");
        let child = std::process::Command::new(etcd_rs_tests::bins::etcd_bin())
            .env_clear()
            .args([
                "--name",
                "intruder",
                "--initial-cluster-token",
                "another-cluster",
            ])
            .arg(format!("--data-dir={}", dir.path().join("data").display()))
            .arg(format!("--listen-client-urls=http://127.0.0.1:{client}"))
            .arg(format!("--advertise-client-urls=http://127.0.0.1:{client}"))
            .arg(format!("--listen-peer-urls=http://127.0.0.1:{peer}"))
            .arg(format!(
                "--initial-advertise-peer-urls=http://127.0.0.1:{peer}"
            ))
            .arg(format!("--initial-cluster={}", initial.join(",")))
            .stdout(std::process::Stdio::null())
            .stderr(std::fs::File::create(&log_path).unwrap())
            .spawn()
            .unwrap();
        let _intruder = KillOnDrop(child);
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let theirs = std::fs::read_to_string(&log_path).unwrap_or_default();
            let ours: String = c
                .members()
                .iter()
                .map(|m| std::fs::read_to_string(m.log_path()).unwrap())
                .collect();
            if theirs.contains("request sent was ignored by remote peer due to cluster ID mismatch")
                && ours.contains("request cluster ID mismatch")
            {
                break;
            }
            assert!(Instant::now() < deadline, "no mismatch reported:\n{theirs}");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        on(&c, 0, &["put", "still", "fine"]).expect_stdout("OK\n");
        on(&c, 1, &["get", "still", "--print-value-only"]).expect_stdout("fine\n");
        let list = on(&c, 2, &["member", "list"]);
        assert_eq!(list.stdout.lines().count(), 3, "{list}");
    })
    .await
}

/// The keys of `member list -w json`'s header, as the Go etcdctl prints
/// them for `c`.
fn member_list_header_keys(c: &TestCluster) -> Vec<String> {
    let json = on(c, 0, &["member", "list", "-w", "json"]).json();
    let mut keys: Vec<String> = json["header"]
        .as_object()
        .expect("a header")
        .keys()
        .cloned()
        .collect();
    keys.sort();
    keys
}

#[tokio::test]
async fn member_list_carries_etcds_header_without_a_revision() {
    within(LIMIT, async {
        let etcd = TestCluster::builder(1)
            .bin(etcd_rs_tests::bins::reference_etcd_bin())
            .start()
            .await;
        let theirs = member_list_header_keys(&etcd);
        drop(etcd);
        let ours = TestCluster::start(1).await;
        on(&ours, 0, &["put", "k", "v"]).expect_success();
        assert_eq!(member_list_header_keys(&ours), theirs);
        assert_eq!(theirs, ["cluster_id", "member_id", "raft_term"]);
    })
    .await
}

//! Runtime reconfiguration as etcd's guide does it, through the Go
//! etcdctl: grow a cluster under load with learners, replace a failed
//! member, remove the leader, move a member to a new peer URL, and every
//! refusal with etcd's message, compared with the reference etcd.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use etcd_rs_tests::bins::reference_etcd_bin;
use etcd_rs_tests::{within, Output, TestCluster};

const LIMIT: Duration = Duration::from_secs(180);

/// The id of the member with peer URL `url`, from `member list -w json`.
fn id_of(c: &TestCluster, url: &str) -> Option<u64> {
    let list = c.etcdctl(&["member", "list", "-w", "json"]).json();
    list["members"].as_array()?.iter().find_map(|m| {
        let urls = m["peerURLs"].as_array()?;
        urls.iter()
            .any(|u| u.as_str() == Some(url))
            .then(|| m["ID"].as_u64())?
    })
}

/// How many members `member list` shows.
fn member_count(c: &TestCluster) -> usize {
    let list = c.etcdctl(&["member", "list", "-w", "json"]).json();
    list["members"].as_array().map_or(0, Vec::len)
}

/// Runs `args` on member `via` until it stops failing with `transient`
/// (bounded, 30 s).
fn retry_while(c: &TestCluster, via: usize, args: &[&str], transient: &str) -> Output {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let out = c.etcdctl_on(via, args);
        if out.code == 0 || !out.stderr.contains(transient) || Instant::now() > deadline {
            return out;
        }
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// `member add NAME --peer-urls=URL [--learner]`, retried while the
/// cluster's links are younger than etcd's 5 s health interval; returns
/// the `ETCD_INITIAL_CLUSTER` it printed.
fn add(c: &TestCluster, name: &str, url: &str, learner: bool) -> String {
    let peer = format!("--peer-urls={url}");
    let mut args = vec!["member", "add", name, peer.as_str()];
    if learner {
        args.push("--learner");
    }
    let out = retry_while(c, 0, &args, "etcdserver: unhealthy cluster");
    out.expect_success();
    out.stdout
        .lines()
        .find_map(|l| l.strip_prefix("ETCD_INITIAL_CLUSTER="))
        .unwrap_or_else(|| panic!("no ETCD_INITIAL_CLUSTER in {out}"))
        .trim_matches('"')
        .to_string()
}

/// Promotes learner `id` through member `via` once it is in sync, as the
/// guide says to retry.
fn promote(c: &TestCluster, via: usize, id: u64) {
    let hex = format!("{id:x}");
    retry_while(
        c,
        via,
        &["member", "promote", &hex],
        "which is in sync with leader",
    )
    .expect_stdout(&format!(
        "Member {id:>16x} promoted in cluster {}\n",
        cluster_id(c)
    ));
}

/// The cluster id, as etcdctl prints it in its lines (`%16x`: padded).
fn cluster_id(c: &TestCluster) -> String {
    format!("{:>16x}", cluster_id_of(c))
}

fn cluster_id_of(c: &TestCluster) -> u64 {
    let h = c.etcdctl(&["member", "list", "-w", "json"]).json();
    h["header"]["cluster_id"].as_u64().unwrap()
}

/// Waits (bounded) until members `alive` report the same HashKV at the
/// same revision; returns it.
fn same_hashkv(c: &TestCluster, alive: &[usize]) -> (u64, u64) {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let seen: Vec<Option<(u64, u64)>> = alive
            .iter()
            .map(|&i| {
                let out = c.etcdctl_on(i, &["endpoint", "hashkv", "-w", "json"]);
                let v = out.json();
                let h = &v[0]["HashKV"];
                Some((h["hash"].as_u64()?, h["header"]["revision"].as_u64()?))
            })
            .collect();
        if seen.iter().all(|s| s.is_some() && *s == seen[0]) {
            return seen[0].unwrap();
        }
        assert!(Instant::now() < deadline, "members disagree: {seen:?}");
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// Puts `load/<n>` keys one after another on `endpoint` until `stop`;
/// returns the keys whose put was acknowledged.
async fn put_load(endpoint: String, stop: Arc<AtomicBool>) -> Vec<String> {
    let mut client = etcd_client::Client::connect([endpoint], None)
        .await
        .expect("connect for the load");
    let mut acked = Vec::new();
    let mut n = 0u64;
    while !stop.load(Ordering::Relaxed) {
        let key = format!("load/{n:06}");
        n += 1;
        if client.put(key.clone(), "v", None).await.is_ok() {
            acked.push(key);
        }
    }
    acked
}

/// The `load/` keys member `i` holds (serializable read, so a member
/// answers from its own store).
fn load_keys(c: &TestCluster, i: usize) -> Vec<String> {
    let out = c.etcdctl_on(
        i,
        &["get", "load/", "--prefix", "--keys-only", "--consistency=s"],
    );
    out.expect_success();
    out.stdout
        .lines()
        .filter(|l| !l.is_empty())
        .map(str::to_string)
        .collect()
}

#[tokio::test]
async fn grow_from_one_to_three_with_learners_under_load() {
    within(LIMIT, async {
        let mut c = TestCluster::start(1).await;
        let stop = Arc::new(AtomicBool::new(false));
        let load = tokio::spawn(put_load(c.endpoint(), stop.clone()));
        for name in ["m1", "m2"] {
            let ports = TestCluster::reserve_ports();
            let url = c.peer_url_on(ports.1);
            let initial = add(&c, name, &url, true);
            let id = id_of(&c, &url).expect("the learner is listed");
            let i = c.join(name, ports, &initial).await;
            // A learner serves serializable reads and Status, nothing else.
            let status = c
                .etcdctl_on(i, &["endpoint", "status", "-w", "json"])
                .json();
            assert_eq!(status[0]["Status"]["isLearner"], true, "{status}");
            c.etcdctl_on(i, &["put", "x", "y"])
                .expect_error("etcdserver: rpc not supported for learner");
            c.etcdctl_on(i, &["get", "x"])
                .expect_error("etcdserver: rpc not supported for learner");
            c.etcdctl_on(i, &["get", "x", "--consistency=s"])
                .expect_success();
            // The second promotion goes through a follower, which asks
            // its leader (only the leader knows the learner's progress).
            let voters: Vec<usize> = (0..i).collect();
            let (leader, _) = c.wait_for_leader(&voters);
            let via = voters
                .iter()
                .copied()
                .find(|v| *v != leader)
                .unwrap_or(leader);
            promote(&c, via, id);
            let list = c.etcdctl(&["member", "list", "-w", "json"]).json();
            assert!(
                list["members"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .all(|m| m["isLearner"].is_null()),
                "everyone votes after the promotion: {list}"
            );
        }
        stop.store(true, Ordering::Relaxed);
        let acked = load.await.unwrap();
        assert!(acked.len() > 10, "the load ran: {} puts", acked.len());
        c.wait_for_leader(&[0, 1, 2]);
        same_hashkv(&c, &[0, 1, 2]);
        for i in 0..3 {
            let keys = load_keys(&c, i);
            let missing: Vec<&String> = acked.iter().filter(|k| !keys.contains(k)).collect();
            assert!(missing.is_empty(), "member {i} lost {missing:?}");
        }
    })
    .await;
}

#[tokio::test]
async fn replace_a_failed_member() {
    within(LIMIT, async {
        // A short in-memory log: the new member catches up by snapshot.
        let mut c =
            TestCluster::start_with_flags(3, &["--experimental-snapshot-catchup-entries=5"]).await;
        for i in 0..50 {
            c.etcdctl(&["put", &format!("load/{i:06}"), "v"])
                .expect_success();
        }
        let failed = c.member(2).peer_url();
        let id = id_of(&c, &failed).unwrap();
        // Requests go to a follower, whose view of its peers decides.
        let (leader, _) = c.wait_for_leader(&[0, 1, 2]);
        let f = if leader == 0 { 1 } else { 0 };
        // Once a learner can be added, every voter has been connected for
        // etcd's 5 s: what refuses the voter below is the member that is down.
        let (_, lp) = TestCluster::reserve_ports();
        let learner_url = c.peer_url_on(lp);
        retry_while(
            &c,
            f,
            &[
                "member",
                "add",
                "l",
                &format!("--peer-urls={learner_url}"),
                "--learner",
            ],
            "etcdserver: unhealthy cluster",
        )
        .expect_success();
        let learner = id_of(&c, &learner_url).unwrap();
        c.etcdctl_on(f, &["member", "remove", &format!("{learner:x}")])
            .expect_success();
        c.member_mut(2).kill9();
        // If it led, a proposal before the next election would be lost.
        c.wait_for_leader(&[0, 1]);
        let ports = TestCluster::reserve_ports();
        let url = c.peer_url_on(ports.1);
        c.etcdctl_on(f, &["member", "add", "m3", &format!("--peer-urls={url}")])
            .expect_error("etcdserver: unhealthy cluster");
        assert_eq!(member_count(&c), 3);
        // A member that is down may always be removed.
        c.etcdctl_on(f, &["member", "remove", &format!("{id:x}")])
            .expect_stdout(&format!(
                "Member {id:>16x} removed from cluster {}\n",
                cluster_id(&c)
            ));
        let initial = add(&c, "m3", &url, false);
        let i = c.join("m3", ports, &initial).await;
        c.etcdctl_on(i, &["put", "load/after", "v"])
            .expect_success();
        assert_eq!(member_count(&c), 3);
        assert_eq!(load_keys(&c, i).len(), 51);
        c.etcdctl_on(i, &["endpoint", "health"]).expect_success();
        same_hashkv(&c, &[0, 1, i]);
        let log = std::fs::read_to_string(c.member(i).log_path()).unwrap();
        assert!(
            log.contains("restored the backend from the leader's snapshot"),
            "the new member did not catch up by snapshot"
        );
        // The failed member, restarted on its data (its removal never
        // reached it), is refused by its peers and stops by itself.
        c.member_mut(2).start_again();
        let status = c.member_mut(2).wait_exit(Duration::from_secs(20));
        assert!(status.is_some(), "the removed member keeps running");
        let log = std::fs::read_to_string(c.member(2).log_path()).unwrap();
        assert!(log.contains("the member has been permanently removed from the cluster"));
        assert_eq!(member_count(&c), 3);
        c.etcdctl_on(i, &["put", "load/last", "v"]).expect_success();
    })
    .await;
}

#[tokio::test]
async fn removed_leader_hands_over_stops_and_never_rejoins() {
    remove_the_leader(false).await;
}

#[tokio::test]
async fn a_leader_removing_itself_hands_over_first() {
    remove_the_leader(true).await;
}

/// Removes the leader, asking it (`via_leader`: it picks the most caught-up
/// voter) or a follower (which asks for leadership itself).
async fn remove_the_leader(via_leader: bool) {
    within(LIMIT, async {
        let mut c = TestCluster::start(3).await;
        c.etcdctl(&["put", "k", "v"]).expect_success();
        let (leader, _) = c.wait_for_leader(&[0, 1, 2]);
        let others: Vec<usize> = (0..3).filter(|i| *i != leader).collect();
        let id = id_of(&c, &c.member(leader).peer_url()).unwrap();
        let hex = format!("{id:x}");
        let via = if via_leader { leader } else { others[0] };
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let out = c.etcdctl_on(via, &["member", "remove", &hex]);
            if out.code == 0 {
                break;
            }
            assert!(
                out.stderr.contains("etcdserver: unhealthy cluster") && Instant::now() < deadline,
                "{out}"
            );
            std::thread::sleep(Duration::from_millis(200));
        }
        // It stops by itself, with etcd's words.
        let status = c.member_mut(leader).wait_exit(Duration::from_secs(15));
        assert!(status.is_some(), "the removed member is still running");
        let log = std::fs::read_to_string(c.member(leader).log_path()).unwrap();
        assert!(
            log.contains("the member has been permanently removed from the cluster"),
            "{}",
            c.member(leader).log_tail()
        );
        let (new_leader, _) = c.wait_for_leader(&others);
        assert_ne!(new_leader, leader);
        // Leadership moved before the removal was applied: the survivors
        // elected the new leader while the old one was still a member.
        let survivor = std::fs::read_to_string(c.member(others[0]).log_path()).unwrap();
        let elected = survivor.rfind("elected leader").unwrap();
        let removed = survivor.find("\"removed member\"").unwrap();
        assert!(elected < removed, "no hand-over before the removal");
        c.etcdctl_on(others[0], &["put", "k2", "v2"])
            .expect_success();
        // Restarted on its old data, it does not come back.
        c.member_mut(leader).start_again();
        let status = c.member_mut(leader).wait_exit(Duration::from_secs(15));
        assert!(status.is_some(), "the removed member came back");
        let log = std::fs::read_to_string(c.member(leader).log_path()).unwrap();
        assert_eq!(
            log.matches("the member has been permanently removed from the cluster")
                .count(),
            2
        );
        let list =
            etcd_rs_tests::etcdctl(&[c.member(others[0]).endpoint()], &["member", "list"], None);
        assert_eq!(list.stdout.lines().count(), 2, "{list}");
    })
    .await;
}

#[tokio::test]
async fn a_joining_member_replays_no_refused_change() {
    within(LIMIT, async {
        let mut c = TestCluster::start(1).await;
        let ports = TestCluster::reserve_ports();
        let url = c.peer_url_on(ports.1);
        let initial = add(&c, "l1", &url, true);
        c.join("l1", ports, &initial).await;
        // Refused while l1 is a learner; it would pass after l1's promotion.
        let (_, p2) = TestCluster::reserve_ports();
        let refused = c.peer_url_on(p2);
        c.etcdctl(&[
            "member",
            "add",
            "l2",
            &format!("--peer-urls={refused}"),
            "--learner",
        ])
        .expect_error("etcdserver: too many learner members in cluster");
        promote(&c, 0, id_of(&c, &url).unwrap());
        // The new member replays the whole log (nothing was trimmed).
        let ports = TestCluster::reserve_ports();
        let j_url = c.peer_url_on(ports.1);
        let initial = add(&c, "j", &j_url, false);
        let j = c.join("j", ports, &initial).await;
        c.etcdctl_on(j, &["put", "after", "join"]).expect_success();
        let lists: Vec<serde_json::Value> = (0..3)
            .map(|i| c.etcdctl_on(i, &["member", "list", "-w", "json"]).json()["members"].clone())
            .collect();
        assert_eq!(lists[0].as_array().unwrap().len(), 3, "{lists:?}");
        assert!(lists.iter().all(|l| *l == lists[0]), "{lists:#?}");
        assert!(!lists[2].to_string().contains(&refused), "{lists:?}");
    })
    .await;
}

#[tokio::test]
async fn a_join_that_does_not_match_the_cluster_is_refused() {
    within(LIMIT, async {
        let c = TestCluster::start(1).await;
        let ports = TestCluster::reserve_ports();
        let url = c.peer_url_on(ports.1);
        // The cluster has one member; the flags say two, but it was never added.
        let initial = format!("m0={},j={url}", c.member(0).peer_url());
        let mut m = c.spawn_joining("j", ports, &initial);
        let status = m.wait_exit(Duration::from_secs(20));
        assert!(status.is_some_and(|s| !s.success()), "the join went on");
        let log = std::fs::read_to_string(m.log_path()).unwrap();
        assert!(log.contains("member count is unequal"), "{}", m.log_tail());
        assert_eq!(member_count(&c), 1);
    })
    .await;
}

#[tokio::test]
async fn a_member_moves_to_a_new_peer_url() {
    within(LIMIT, async {
        let mut c = TestCluster::start(3).await;
        let old = c.member(2).peer_url();
        let id = id_of(&c, &old).unwrap();
        let (_, port) = TestCluster::reserve_ports();
        let new = c.peer_url_on(port);
        c.etcdctl(&[
            "member",
            "update",
            &format!("{id:x}"),
            &format!("--peer-urls={new}"),
        ])
        .expect_stdout(&format!(
            "Member {id:>16x} updated in cluster {}\n",
            cluster_id(&c)
        ));
        assert_eq!(id_of(&c, &new), Some(id));
        let m = c.member_mut(2);
        m.terminate();
        m.move_peer_port(port);
        m.restart().await;
        // The others reach it at the new URL without a restart.
        c.etcdctl_on(2, &["put", "moved", "yes"]).expect_success();
        c.etcdctl(&["get", "moved", "--print-value-only"])
            .expect_stdout("yes\n");
        c.wait_for_leader(&[0, 1, 2]);
        same_hashkv(&c, &[0, 1, 2]);
    })
    .await;
}

#[tokio::test]
async fn force_new_cluster_recovers_a_survivor_that_grows_again() {
    within(LIMIT, async {
        let mut c = TestCluster::start(3).await;
        for i in 0..20 {
            c.etcdctl(&["put", &format!("load/{i:06}"), "v"])
                .expect_success();
        }
        let revision = |c: &TestCluster| {
            let v = c
                .etcdctl(&["get", "load/", "--prefix", "-w", "json"])
                .json();
            v["header"]["revision"].as_u64().unwrap()
        };
        let before = revision(&c);
        for i in 0..3 {
            c.member_mut(i).kill9();
        }
        let m = c.member_mut(0);
        m.push_arg("--force-new-cluster");
        m.restart().await;
        assert_eq!(member_count(&c), 1);
        assert_eq!(load_keys(&c, 0).len(), 20);
        assert_eq!(revision(&c), before);
        c.etcdctl(&["put", "load/after", "v"]).expect_success();
        for name in ["n1", "n2"] {
            let ports = TestCluster::reserve_ports();
            let url = c.peer_url_on(ports.1);
            let initial = add(&c, name, &url, false);
            c.join(name, ports, &initial).await;
        }
        assert_eq!(member_count(&c), 3);
        c.wait_for_leader(&[0, 3, 4]);
        same_hashkv(&c, &[0, 3, 4]);
        assert_eq!(load_keys(&c, 4).len(), 21);
    })
    .await;
}

/// Every refusal of etcd's reconfiguration, in order, on a one-member
/// cluster of `bin`, through the Go etcdctl: what each printed (ids
/// masked), and the member count after it.
async fn refusals(bin: std::path::PathBuf) -> Vec<(String, String, i32, usize)> {
    let c = TestCluster::builder(1).bin(bin).start().await;
    let self_id = id_of(&c, &c.member(0).peer_url()).unwrap();
    let cid = cluster_id_of(&c);
    let (_, p1) = TestCluster::reserve_ports();
    let (_, p2) = TestCluster::reserve_ports();
    let (_, p3) = TestCluster::reserve_ports();
    let urls: Vec<String> = [p1, p2, p3].iter().map(|p| c.peer_url_on(*p)).collect();
    let flag = |i: usize| format!("--peer-urls={}", urls[i]);
    let mut steps: Vec<Vec<String>> = Vec::new();
    let s = |v: &[&str]| v.iter().map(|x| x.to_string()).collect::<Vec<_>>();
    steps.push(s(&["member", "add", "l1", &flag(0), "--learner"]));
    steps.push(s(&["member", "add", "l2", &flag(1), "--learner"]));
    // Another URL set than l1's, so another id: the URL is what clashes.
    let dup = format!("--peer-urls={},{}", urls[0], urls[2]);
    steps.push(s(&["member", "add", "dup", &dup]));
    steps.push(s(&["member", "remove", "1234"]));
    steps.push(s(&["member", "update", "1234", &flag(2)]));
    steps.push(s(&["member", "promote", &format!("{self_id:x}")]));
    steps.push(s(&["member", "promote", "LEARNER"]));
    steps.push(s(&["member", "remove", "LEARNER"]));
    steps.push(s(&["member", "add", "v1", &flag(1)]));
    steps.push(s(&["member", "add", "v2", &flag(2)]));
    let mut learner = 0u64;
    let mut out = Vec::new();
    for step in steps {
        let hex = format!("{learner:x}");
        let args: Vec<&str> = step
            .iter()
            .map(|a| {
                if a == "LEARNER" {
                    hex.as_str()
                } else {
                    a.as_str()
                }
            })
            .collect();
        let o = c.etcdctl(&args);
        if learner == 0 {
            learner = id_of(&c, &urls[0]).unwrap_or(0);
        }
        let mask = |t: &str| {
            let mut t = t.to_string();
            for id in [learner, self_id, cid] {
                t = t.replace(&format!("{id:x}"), "<ID>");
            }
            for (i, u) in urls.iter().enumerate() {
                t = t.replace(u, &format!("<URL{i}>"));
            }
            t.replace(&c.member(0).peer_url(), "<SELF>")
        };
        let stderr = o.stderr_without_logs();
        let stdout: String = o
            .stdout
            .lines()
            .filter(|l| l.starts_with("Member") || l.starts_with("ETCD_NAME"))
            .map(|l| {
                // The new member's random id.
                // (etcdctl pads it to 16 places: split on runs of spaces.)
                let mut w: Vec<String> = l.split_whitespace().map(str::to_string).collect();
                if w.len() > 1 && w[0] == "Member" {
                    w[1] = "<NEW>".into();
                }
                w.join(" ")
            })
            .collect();
        let (stdout, stderr) = (mask(&stdout), mask(&stderr));
        // The last add leaves two voters, one never started: the cluster
        // has no quorum, so nothing more is asked of it.
        let count = if args.contains(&"v2") {
            0
        } else {
            member_count(&c)
        };
        out.push((stdout, stderr, o.code, count));
    }
    out
}

#[tokio::test]
async fn refusals_are_etcds() {
    within(LIMIT, async {
        let ours = refusals(etcd_rs_tests::bins::etcd_bin()).await;
        let theirs = refusals(reference_etcd_bin()).await;
        assert_eq!(ours, theirs);
        let errors: Vec<&str> = ours.iter().map(|s| s.1.trim_end()).collect();
        for expected in [
            "Error: etcdserver: too many learner members in cluster",
            "Error: etcdserver: Peer URLs already exists",
            "Error: etcdserver: member not found",
            "Error: etcdserver: can only promote a learner member",
            "Error: etcdserver: can only promote a learner member which is in sync with leader",
            "Error: etcdserver: re-configuration failed due to not enough started members",
        ] {
            assert!(errors.contains(&expected), "{expected} not in {errors:?}");
        }
    })
    .await;
}

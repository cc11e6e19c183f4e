//! Snapshot files in etcd's format, with real etcd 3.4 (Debian's
//! `etcd-server` and `etcd-client`) as the oracle and the maker of every
//! fixture: its `etcdctl snapshot save` writes a bbolt file of a member
//! with keys, several revisions, a compaction and a lease, then
//!
//! - our `etcdutl snapshot status` prints what the real `etcdctl snapshot
//!   status` prints for it (and for a snapshot of etcd-rs), in every
//!   format, errors and exit codes too; damaged or foreign files are
//!   refused with a clear error;
//! - the same buckets written anew by our bbolt writer are read by real
//!   etcd, whose `snapshot restore` makes a data dir it serves them from;
//!   and so is a snapshot `etcdctl snapshot save` takes of etcd-rs;
//! - `etcdutl snapshot restore` of a real snapshot on three members gives
//!   a cluster that elects a leader and serves every key, revision, lease
//!   and the compaction, with the member ids real etcd's restore gives and
//!   real etcd's HashKV; users, roles and an active alarm come over too;
//!   our own snapshot restores with a bumped revision; every refusal
//!   writes nothing.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use etcd_rs_tests::bins::{etcd_bin, etcdctl_bin, etcdutl_bin, reference_etcd_bin};
use etcd_rs_tests::cluster::free_ports;
use etcd_rs_tests::etcdctl::etcdctl;
use etcd_rs_tests::{within, Member, Output, TestCluster};
use sha2::{Digest, Sha256};
use storage::snapshot::bbolt::{Bolt, Writer};

const LIMIT: Duration = Duration::from_secs(120);

fn ok(o: &Output) -> String {
    assert_eq!(o.code, 0, "{} failed: {}{}", o.command, o.stdout, o.stderr);
    o.stdout.clone()
}

/// The standard output of a process that must have succeeded.
fn std_ok(o: std::process::Output) -> String {
    let s = |b: &[u8]| String::from_utf8_lossy(b).into_owned();
    assert!(
        o.status.success(),
        "failed: {}{}",
        s(&o.stdout),
        s(&o.stderr)
    );
    s(&o.stdout)
}

/// Real etcd with keys (one of them three times over), a compaction and
/// a leased key; its snapshot, saved by the real etcdctl, in `dir`.
async fn real_snapshot(dir: &Path) -> PathBuf {
    snapshot_of(reference_etcd_bin(), dir).await.0
}

/// [`real_snapshot`] of a member running `bin`; also the lease's id and
/// the member's HashKV at the snapshot's revision (6).
async fn snapshot_of(bin: PathBuf, dir: &Path) -> (PathBuf, String, u64) {
    let c = TestCluster::builder(1).bin(bin).start().await;
    let ep = vec![c.endpoint()];
    for v in ["bar1", "bar2", "bar3"] {
        ok(&etcdctl(&ep, &["put", "foo", v], None));
    }
    ok(&etcdctl(&ep, &["put", "baz", "qux"], None));
    let granted = ok(&etcdctl(&ep, &["lease", "grant", "600"], None));
    let lease = granted
        .split_whitespace()
        .nth(1)
        .expect("a lease id")
        .to_string();
    ok(&etcdctl(
        &ep,
        &["put", "--lease", &lease, "leased", "v"],
        None,
    ));
    ok(&etcdctl(&ep, &["compact", "3"], None));
    let path = dir.join("saved.db");
    ok(&etcdctl(
        &ep,
        &["snapshot", "save", path.to_str().unwrap()],
        None,
    ));
    (path, lease, hashkv_at_6(&ep))
}

/// The HashKV at revision 6 that the member at `ep` answers.
fn hashkv_at_6(ep: &[String]) -> u64 {
    let out = ok(&etcdctl(
        ep,
        &["endpoint", "hashkv", "--rev", "6", "-w", "json"],
        None,
    ));
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    v[0]["HashKV"]["hash"].as_u64().expect("a hash")
}

/// A tool's answer: exit code, standard output and error.
fn run(bin: &Path, args: &[&str]) -> (i32, String, String) {
    let o = Command::new(bin)
        .args(args)
        .env("ETCDCTL_API", "3")
        .output()
        .expect("the tool runs");
    (
        o.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&o.stdout).into_owned(),
        String::from_utf8_lossy(&o.stderr).into_owned(),
    )
}

/// Our `etcdutl snapshot status` of `snap` prints what the real etcdctl
/// prints, in every format.
fn assert_status_as_etcdctl(snap: &Path) {
    let file = snap.to_str().unwrap();
    for w in ["simple", "json", "table", "fields", "protobuf"] {
        let args = ["snapshot", "status", file, "-w", w];
        let theirs = run(&etcdctl_bin(), &args);
        let ours = run(&etcdutl_bin(), &args);
        assert_eq!(ours, theirs, "snapshot status -w {w}");
    }
}

#[tokio::test]
async fn status_reads_a_real_snapshot_as_etcdctl_does() {
    within(LIMIT, async {
        let dir = tempfile::tempdir().unwrap();
        let snap = real_snapshot(dir.path()).await;
        assert_status_as_etcdctl(&snap);
        let missing = dir.path().join("missing.db");
        let args = ["snapshot", "status", missing.to_str().unwrap()];
        assert_eq!(run(&etcdutl_bin(), &args), run(&etcdctl_bin(), &args));
    })
    .await;
}

#[tokio::test]
async fn damaged_and_foreign_files_are_refused() {
    within(LIMIT, async {
        let dir = tempfile::tempdir().unwrap();
        let snap = real_snapshot(dir.path()).await;
        let data = std::fs::read(&snap).unwrap();
        let cases: [(&str, Vec<u8>, &str); 4] = [
            ("empty", Vec::new(), "file size too small"),
            (
                "truncated",
                data[..data.len() / 2].to_vec(),
                "file is truncated",
            ),
            ("text", b"not a snapshot\n".repeat(1000), "invalid database"),
            ("zeros", vec![0; 16384], "invalid database"),
        ];
        for (name, bytes, says) in cases {
            let path = dir.path().join(name);
            std::fs::write(&path, &bytes).unwrap();
            let (code, out, err) = run(
                &etcdutl_bin(),
                &["snapshot", "status", path.to_str().unwrap()],
            );
            assert_eq!((code, out.as_str()), (1, ""), "{name}: {err}");
            assert!(
                err.starts_with("Error: ") && err.contains(says),
                "{name}: {err}"
            );
        }
    })
    .await;
}

/// Writes the buckets of the bbolt image `image` anew with our writer,
/// with the SHA-256 trailer etcd appends; the file's path.
fn rewrite(image: &[u8], path: &Path) -> PathBuf {
    let bolt = Bolt::open(image).unwrap();
    let file = std::fs::File::create(path).unwrap();
    let mut w = Writer::new(file).unwrap();
    for bucket in bolt.buckets().unwrap() {
        let mut b = w.bucket(bucket.name);
        bolt.for_each(&bucket, |k, v| b.put(k, v)).unwrap();
        b.finish().unwrap();
    }
    let (_, size) = w.finish().unwrap();
    let mut bytes = std::fs::read(path).unwrap();
    assert_eq!(bytes.len() as u64, size);
    let hash = Sha256::digest(&bytes);
    bytes.extend_from_slice(&hash);
    std::fs::write(path, &bytes).unwrap();
    path.to_path_buf()
}

/// A real etcd on a data dir made by `snapshot restore`, killed on drop.
struct Restored(Child);

impl Drop for Restored {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[tokio::test]
async fn real_etcd_reads_and_restores_what_our_writer_wrote() {
    within(LIMIT, async {
        let dir = tempfile::tempdir().unwrap();
        let snap = real_snapshot(dir.path()).await;
        let data = std::fs::read(&snap).unwrap();
        let ours = rewrite(&data[..data.len() - 32], &dir.path().join("ours.db"));
        let status = |p: &Path| {
            std_ok(
                Command::new(etcdctl_bin())
                    .args(["snapshot", "status", p.to_str().unwrap(), "-w", "json"])
                    .env("ETCDCTL_API", "3")
                    .output()
                    .unwrap(),
            )
        };
        let fields = |s: String| {
            let v: serde_json::Value = serde_json::from_str(&s).unwrap();
            (
                v["hash"].clone(),
                v["revision"].clone(),
                v["totalKey"].clone(),
            )
        };
        assert_eq!(fields(status(&ours)), fields(status(&snap)));

        let _etcd = restore_with_real_etcd(&ours, dir.path()).await;
    })
    .await;
}

/// Restores `snap` with the real etcdctl into a data dir under `dir`,
/// starts real etcd on it and checks it serves the keys of
/// [`snapshot_of`] with their revisions and versions, compacted at 3; the
/// running etcd and its client URL.
async fn restore_with_real_etcd(snap: &Path, dir: &Path) -> (Restored, Vec<String>) {
    let ports = free_ports(2);
    let peer = format!("http://127.0.0.1:{}", ports[1]);
    let client = format!("http://127.0.0.1:{}", ports[0]);
    let data_dir = dir.join("restored");
    let cluster = format!("r={peer}");
    std_ok(
        Command::new(etcdctl_bin())
            .args(["snapshot", "restore", snap.to_str().unwrap(), "--name", "r"])
            .args([
                "--initial-cluster",
                &cluster,
                "--initial-advertise-peer-urls",
                &peer,
            ])
            .arg("--data-dir")
            .arg(&data_dir)
            .env("ETCDCTL_API", "3")
            .output()
            .unwrap(),
    );
    let log = std::fs::File::create(dir.join("restored.log")).unwrap();
    let etcd = Restored(
        Command::new(reference_etcd_bin())
            .args(["--name", "r", "--listen-client-urls", &client])
            .args([
                "--advertise-client-urls",
                &client,
                "--listen-peer-urls",
                &peer,
            ])
            .args([
                "--initial-advertise-peer-urls",
                &peer,
                "--initial-cluster",
                &cluster,
            ])
            .arg("--data-dir")
            .arg(&data_dir)
            .stdout(Stdio::from(log.try_clone().unwrap()))
            .stderr(Stdio::from(log))
            .spawn()
            .unwrap(),
    );
    let ep = vec![client];
    let started = Instant::now();
    let got = loop {
        let o = etcdctl(&ep, &["get", "", "--prefix", "-w", "json"], None);
        if o.code == 0 {
            break o.stdout;
        }
        assert!(
            started.elapsed() < Duration::from_secs(30),
            "restored etcd never served"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    assert_serves_snapshot(&got, &ep);
    (etcd, ep)
}

/// Checks that the `get "" --prefix -w json` answer `got` of the member at
/// `ep` holds the keys of [`snapshot_of`] with their revisions and
/// versions, and that revision 2 is compacted there.
fn assert_serves_snapshot(got: &str, ep: &[String]) {
    let v: serde_json::Value = serde_json::from_str(got).unwrap();
    let kvs: Vec<(String, i64, i64, i64)> = v["kvs"]
        .as_array()
        .unwrap()
        .iter()
        .map(|kv| {
            let key = kv["key"].as_str().unwrap().to_string();
            let n = |f: &str| kv[f].as_i64().unwrap_or(0);
            (key, n("create_revision"), n("mod_revision"), n("version"))
        })
        .collect();
    // base64 keys: baz, foo, leased.
    assert_eq!(
        kvs,
        vec![
            ("YmF6".to_string(), 5, 5, 1),
            ("Zm9v".to_string(), 2, 4, 3),
            ("bGVhc2Vk".to_string(), 6, 6, 1),
        ]
    );
    // Compacted at 3, as the snapshot was.
    let old = etcdctl(ep, &["get", "foo", "--rev", "2"], None);
    assert!(old.code != 0 && old.stderr.contains("compacted"), "{old:?}");
}

#[tokio::test]
async fn real_etcd_restores_a_snapshot_of_etcd_rs() {
    within(LIMIT, async {
        let dir = tempfile::tempdir().unwrap();
        let (snap, lease, _) = snapshot_of(etcd_bin(), dir.path()).await;
        assert_status_as_etcdctl(&snap);
        let (_etcd, ep) = restore_with_real_etcd(&snap, dir.path()).await;
        let leases = ok(&etcdctl(&ep, &["lease", "list"], None));
        assert!(leases.contains(&lease), "{leases}");
        let kept = ok(&etcdctl(&ep, &["get", "leased", "-w", "json"], None));
        let v: serde_json::Value = serde_json::from_str(&kept).unwrap();
        let id = i64::from_str_radix(&lease, 16).unwrap();
        assert_eq!(v["kvs"][0]["lease"].as_i64(), Some(id), "{kept}");
    })
    .await;
}

/// A [`TestCluster`] preparation: `etcdutl snapshot restore` of `snap`
/// into the member's data dir with its name, URLs and the cluster's flags,
/// plus `extra`; records the `--initial-cluster` and token in `flags`.
fn restore_into(
    snap: &Path,
    extra: &[&str],
    flags: Arc<Mutex<(String, String)>>,
) -> impl Fn(&Member, &str, &str) + Send + Sync + 'static {
    let snap = snap.to_path_buf();
    let extra: Vec<String> = extra.iter().map(|s| s.to_string()).collect();
    move |m, cluster, token| {
        *flags.lock().unwrap() = (cluster.to_string(), token.to_string());
        std_ok(
            Command::new(etcdutl_bin())
                .args(["snapshot", "restore"])
                .arg(&snap)
                .args(["--name", m.name(), "--initial-cluster", cluster])
                .args(["--initial-cluster-token", token])
                .args(["--initial-advertise-peer-urls", &m.peer_url()])
                .arg("--data-dir")
                .arg(m.data_dir())
                .args(&extra)
                .output()
                .unwrap(),
        );
    }
}

/// The member ids real etcd's `snapshot restore` gives a cluster
/// restored with `cluster` and `token`: the members of the v2 store in
/// the `.snap` file it writes (3.4 keeps the new membership there, not in
/// the backend).
fn ids_real_etcd_gives(snap: &Path, cluster: &str, token: &str, dir: &Path) -> Vec<String> {
    let first = storage::bootstrap::parse_initial_cluster(cluster).unwrap()[0].clone();
    let data_dir = dir.join("real-restore");
    std_ok(
        Command::new(etcdctl_bin())
            .args([
                "snapshot",
                "restore",
                snap.to_str().unwrap(),
                "--name",
                &first.name,
            ])
            .args([
                "--initial-cluster",
                cluster,
                "--initial-cluster-token",
                token,
            ])
            .args(["--initial-advertise-peer-urls", &first.peer_urls.join(",")])
            .arg("--data-dir")
            .arg(&data_dir)
            .env("ETCDCTL_API", "3")
            .output()
            .unwrap(),
    );
    let member = regex::Regex::new(r"/0/members/([0-9a-f]{1,16})/").unwrap();
    let mut ids = std::collections::BTreeSet::new();
    for f in std::fs::read_dir(data_dir.join("member/snap")).unwrap() {
        let path = f.unwrap().path();
        if path.extension().is_some_and(|e| e == "snap") {
            let text = String::from_utf8_lossy(&std::fs::read(&path).unwrap()).into_owned();
            ids.extend(member.captures_iter(&text).map(|c| c[1].to_string()));
        }
    }
    ids.into_iter().collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_real_snapshot_restores_into_a_three_member_cluster() {
    within(LIMIT, async {
        let dir = tempfile::tempdir().unwrap();
        let (snap, lease, hash) = snapshot_of(reference_etcd_bin(), dir.path()).await;
        // etcdutl hashkv of the file gives the hash real etcd answered.
        let (code, out, err) = run(
            &etcdutl_bin(),
            &["hashkv", snap.to_str().unwrap(), "--rev", "6"],
        );
        assert_eq!((code, out), (0, format!("{hash}, 6, 3\n")), "{err}");
        let flags = Arc::new(Mutex::new(Default::default()));
        let c = TestCluster::builder(3)
            .prepare(restore_into(&snap, &[], flags.clone()))
            .start()
            .await;
        c.wait_for_leader(&[0, 1, 2]);
        for i in 0..3 {
            let ep = vec![c.member(i).endpoint()];
            let got = ok(&etcdctl(&ep, &["get", "", "--prefix", "-w", "json"], None));
            assert_serves_snapshot(&got, &ep);
            let leases = ok(&etcdctl(&ep, &["lease", "list"], None));
            assert!(leases.contains(&lease), "member {i}: {leases}");
            assert_eq!(hashkv_at_6(&ep), hash, "member {i}'s HashKV at 6");
        }
        let listed = ok(&c.etcdctl(&["member", "list", "-w", "json"]));
        let v: serde_json::Value = serde_json::from_str(&listed).unwrap();
        let mut ours: Vec<String> = v["members"]
            .as_array()
            .unwrap()
            .iter()
            .map(|m| format!("{:x}", m["ID"].as_u64().unwrap()))
            .collect();
        ours.sort();
        let (cluster, token) = flags.lock().unwrap().clone();
        let mut theirs = ids_real_etcd_gives(&snap, &cluster, &token, dir.path());
        theirs.sort();
        assert_eq!(ours, theirs, "member ids");
        // The restored cluster takes writes.
        ok(&c.etcdctl(&["put", "after", "restore"]));
    })
    .await;
}

#[tokio::test]
async fn etcd_rs_restores_its_own_snapshot_with_a_bumped_revision() {
    within(LIMIT, async {
        let dir = tempfile::tempdir().unwrap();
        let (snap, _, _) = snapshot_of(etcd_bin(), dir.path()).await;
        let flags = Arc::new(Mutex::new(Default::default()));
        let bump = ["--bump-revision", "1000", "--mark-compacted"];
        let c = TestCluster::builder(1)
            .prepare(restore_into(&snap, &bump, flags))
            .start()
            .await;
        let ep = vec![c.endpoint()];
        let got = ok(&etcdctl(&ep, &["get", "foo", "-w", "json"], None));
        let v: serde_json::Value = serde_json::from_str(&got).unwrap();
        assert_eq!(v["header"]["revision"].as_i64(), Some(1006), "{got}");
        assert_eq!(v["kvs"][0]["mod_revision"].as_i64(), Some(4), "{got}");
        let old = etcdctl(&ep, &["get", "foo", "--rev", "5"], None);
        assert!(old.code != 0 && old.stderr.contains("compacted"), "{old:?}");
        let put = ok(&etcdctl(&ep, &["put", "next", "v", "-w", "json"], None));
        let v: serde_json::Value = serde_json::from_str(&put).unwrap();
        assert_eq!(v["header"]["revision"].as_i64(), Some(1007), "{put}");
    })
    .await;
}

/// `etcdutl snapshot restore FILE ARGS`: exit code and standard error.
fn restore(file: &Path, args: &[&str]) -> (i32, String) {
    let (code, _, err) = run(
        &etcdutl_bin(),
        &[&["snapshot", "restore", file.to_str().unwrap()], args].concat(),
    );
    (code, err)
}

#[tokio::test]
async fn restore_refuses_bad_input_and_writes_nothing() {
    within(LIMIT, async {
        let dir = tempfile::tempdir().unwrap();
        let snap = real_snapshot(dir.path()).await;
        let data = std::fs::read(&snap).unwrap();
        let out = dir.path().join("out");
        let out_s = out.to_str().unwrap();
        let (code, err) = restore(&snap, &["--data-dir", out_s, "--bump-revision", "5"]);
        assert_eq!(code, 128, "{err}");
        assert!(
            err.contains("--mark-compacted required if --revision-bump > 0"),
            "{err}"
        );
        let (code, err) = restore(&snap, &["--data-dir", out_s, "--name", "nobody"]);
        assert_eq!(code, 1, "{err}");
        assert!(err.contains("couldn't find local name \"nobody\""), "{err}");

        let mut flipped = data.clone();
        flipped[3 * 4096] ^= 1;
        let bad = dir.path().join("flipped.db");
        std::fs::write(&bad, &flipped).unwrap();
        let (code, err) = restore(&bad, &["--data-dir", out_s]);
        assert_eq!(code, 1, "{err}");
        assert!(err.contains("Error: expected sha256 ["), "{err}");

        let bare = dir.path().join("bare.db");
        std::fs::write(&bare, &data[..data.len() - 32]).unwrap();
        let (code, err) = restore(&bare, &["--data-dir", out_s]);
        assert!(
            code == 1 && err.contains("snapshot missing hash but --skip-hash-check=false"),
            "{err}"
        );

        let text = dir.path().join("text.db");
        std::fs::write(&text, b"not a snapshot\n".repeat(1000)).unwrap();
        let (code, err) = restore(&text, &["--data-dir", out_s, "--skip-hash-check"]);
        assert!(code == 1 && err.contains("invalid database"), "{err}");
        assert!(!out.exists(), "a refused restore left {out_s}");

        // Into a data dir in use, or beside a WAL dir that exists: refused,
        // and what was there is untouched.
        std::fs::create_dir_all(&out).unwrap();
        std::fs::write(out.join("keep"), b"mine").unwrap();
        let (code, err) = restore(&snap, &["--data-dir", out_s]);
        assert_eq!(code, 1, "{err}");
        assert!(
            err.contains(&format!(
                "data-dir {out_s:?} not empty or could not be read"
            )),
            "{err}"
        );
        assert_eq!(std::fs::read(out.join("keep")).unwrap(), b"mine");
        let wal = dir.path().join("wal");
        std::fs::create_dir_all(&wal).unwrap();
        let fresh = dir.path().join("fresh");
        let args = [
            "--data-dir",
            fresh.to_str().unwrap(),
            "--wal-dir",
            wal.to_str().unwrap(),
        ];
        let (code, err) = restore(&snap, &args);
        assert!(
            code == 1 && err.contains(&format!("wal-dir {:?} exists", wal.to_str().unwrap())),
            "{err}"
        );
        assert!(!fresh.exists());

        // A file copied from a data dir has no hash: restored with the flag.
        let (code, err) = restore(
            &bare,
            &["--data-dir", fresh.to_str().unwrap(), "--skip-hash-check"],
        );
        assert_eq!(code, 0, "{err}");
        assert!(fresh.join("member/snap/db").exists() && fresh.join("member/wal").exists());
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn auth_and_alarms_come_over_from_real_etcd() {
    within(LIMIT, async {
        let dir = tempfile::tempdir().unwrap();
        let mut real = TestCluster::builder(1)
            .bin(reference_etcd_bin())
            .start()
            .await;
        let ep = vec![real.endpoint()];
        for args in [
            &["put", "a", "1"][..],
            &["user", "add", "root:rootpw"],
            &["user", "add", "alice:alicepw"],
            &["role", "add", "reader"],
            &["role", "grant-permission", "reader", "read", "a"],
            &["user", "grant-role", "alice", "reader"],
            &["auth", "enable"],
        ] {
            ok(&etcdctl(&ep, args, None));
        }
        // A backend over its quota raises NOSPACE on the first write.
        real.member_mut(0).kill9();
        real.member_mut(0).set_flag("--quota-backend-bytes", "1");
        real.member_mut(0).restart().await;
        let full = etcdctl(&ep, &["--user", "root:rootpw", "put", "b", "2"], None);
        assert!(full.stderr.contains("database space exceeded"), "{full:?}");
        let alarms = ok(&etcdctl(
            &ep,
            &["--user", "root:rootpw", "alarm", "list"],
            None,
        ));
        assert!(alarms.contains("alarm:NOSPACE"), "{alarms}");
        let snap = dir.path().join("auth.db");
        let save = [
            "--user",
            "root:rootpw",
            "snapshot",
            "save",
            snap.to_str().unwrap(),
        ];
        ok(&etcdctl(&ep, &save, None));
        drop(real);

        let flags = Arc::new(Mutex::new(Default::default()));
        let c = TestCluster::builder(1)
            .prepare(restore_into(&snap, &[], flags))
            .start()
            .await;
        let ep = vec![c.endpoint()];
        let root = |args: &[&str]| etcdctl(&ep, &[&["--user", "root:rootpw"], args].concat(), None);
        // The alarm, as real etcd listed it, still holds writes.
        assert_eq!(ok(&root(&["alarm", "list"])), alarms);
        let refused = root(&["put", "b", "2"]);
        assert!(
            refused.stderr.contains("database space exceeded"),
            "{refused:?}"
        );
        // The users, their passwords and roles.
        let read = ok(&etcdctl(
            &ep,
            &["--user", "alice:alicepw", "get", "a"],
            None,
        ));
        assert_eq!(read, "a\n1\n");
        let wrong = etcdctl(&ep, &["--user", "alice:nope", "get", "a"], None);
        assert!(wrong.stderr.contains("authentication failed"), "{wrong:?}");
        let denied = etcdctl(&ep, &["--user", "alice:alicepw", "get", "b"], None);
        assert!(denied.stderr.contains("permission denied"), "{denied:?}");
        let anonymous = etcdctl(&ep, &["get", "a"], None);
        assert!(anonymous.code != 0, "{anonymous:?}");
        // Disarmed, the member takes writes again.
        ok(&root(&["alarm", "disarm"]));
        ok(&root(&["put", "b", "2"]));
    })
    .await;
}

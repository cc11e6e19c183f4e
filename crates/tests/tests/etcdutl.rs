//! `etcdutl defrag --data-dir` (etcdutl 3.5): the backend of a stopped
//! member is defragmented in place, printing nothing; the member starts
//! on it with the same data; while a member has it open, etcdutl waits and
//! says so, then goes on once the member stops; a data dir without a
//! backend is refused with etcdutl's error and exit code 1; `version`
//! prints etcdutl's two lines; `hashkv` of a stopped member's backend is
//! the HashKV the member answered, with etcd's errors.

use std::os::unix::fs::MetadataExt;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use etcd_client::{Client, CompactionOptions};
use etcd_rs_tests::bins::etcdutl_bin;
use etcd_rs_tests::process::{run, terminate};
use etcd_rs_tests::{within, TestCluster};

const LIMIT: Duration = Duration::from_secs(120);

/// Disk space of the member's backend file, in bytes.
fn backend_bytes(c: &TestCluster) -> u64 {
    let path = c.member(0).data_dir().join("member/snap/db");
    std::fs::metadata(path).unwrap().blocks() * 512
}

fn etcdutl(args: &[&str]) -> etcd_rs_tests::process::Output {
    let mut cmd = Command::new(etcdutl_bin());
    cmd.args(args);
    run(cmd, None, Duration::from_secs(60))
}

/// Kills and reaps the child when dropped (a failed assertion included).
struct Reaped(Child);

impl Drop for Reaped {
    fn drop(&mut self) {
        if self.0.try_wait().ok().flatten().is_none() {
            terminate(&mut self.0, Duration::from_secs(10));
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn offline_defrag_gives_space_back_and_keeps_the_data() {
    within(LIMIT, async {
        let mut cluster = TestCluster::start(1).await;
        let mut c = Client::connect([cluster.endpoint()], None).await.unwrap();
        let value = vec![b'x'; 100 * 1024];
        for round in 0..2u8 {
            for i in 0..40 {
                let mut v = value.clone();
                v[0] = round;
                c.put(format!("k{i:02}"), v, None).await.unwrap();
            }
        }
        let rev = c
            .get("k00", None)
            .await
            .unwrap()
            .header()
            .unwrap()
            .revision();
        let physical = CompactionOptions::new().with_physical();
        c.compact(rev, Some(physical)).await.unwrap();
        let hash = c.hash_kv(rev).await.unwrap().hash();
        drop(c);
        cluster.member_mut(0).terminate();
        let before = backend_bytes(&cluster);

        let dir = cluster.member(0).data_dir();
        let out = etcdutl(&["defrag", "--data-dir", dir.to_str().unwrap()]);
        out.expect_stdout("");
        assert_eq!(out.stderr, "", "{out}");
        let after = backend_bytes(&cluster);
        assert!(
            after * 3 < before * 2,
            "the backend took {before} bytes before and {after} after"
        );

        cluster.member_mut(0).restart().await;
        let mut c = Client::connect([cluster.endpoint()], None).await.unwrap();
        assert_eq!(c.hash_kv(rev).await.unwrap().hash(), hash);
        let got = c.get("k17", None).await.unwrap();
        assert_eq!(got.kvs()[0].value()[0], 1);
        assert_eq!(got.kvs()[0].mod_revision(), rev - 40 + 18);
    })
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn offline_defrag_waits_for_the_member_to_let_go() {
    within(LIMIT, async {
        let mut cluster = TestCluster::start(1).await;
        cluster.etcdctl(&["put", "k", "v"]).expect_stdout("OK\n");
        let dir = cluster.member(0).data_dir();
        let scratch = tempfile::tempdir().unwrap();
        let err_path = scratch.path().join("stderr");
        let mut tool = Reaped(
            Command::new(etcdutl_bin())
                .args(["defrag", "--data-dir", dir.to_str().unwrap()])
                .stdout(Stdio::null())
                .stderr(std::fs::File::create(&err_path).unwrap())
                .spawn()
                .unwrap(),
        );
        let want = format!(
            "waiting for etcd to close and release its lock on \"{}\". \
             To defrag a running etcd instance, omit --data-dir.\n",
            dir.join("member/snap/db").display()
        );
        let deadline = Instant::now() + Duration::from_secs(30);
        while std::fs::read_to_string(&err_path).unwrap() != want {
            assert!(tool.0.try_wait().unwrap().is_none(), "etcdutl ended early");
            assert!(Instant::now() < deadline, "etcdutl never said it waits");
            std::thread::sleep(Duration::from_millis(50));
        }
        cluster.member_mut(0).terminate();
        let deadline = Instant::now() + Duration::from_secs(30);
        let status = loop {
            if let Some(s) = tool.0.try_wait().unwrap() {
                break s;
            }
            assert!(Instant::now() < deadline, "etcdutl went on waiting");
            std::thread::sleep(Duration::from_millis(50));
        };
        assert!(status.success(), "{status:?}");
        cluster.member_mut(0).restart().await;
        cluster
            .etcdctl(&["get", "k", "--print-value-only"])
            .expect_stdout("v\n");
    })
    .await
}

#[test]
fn a_data_dir_without_a_backend_is_refused() {
    let empty = tempfile::tempdir().unwrap();
    let dir = empty.path().to_str().unwrap();
    let out = etcdutl(&["defrag", "--data-dir", dir]);
    assert_eq!(out.code, 1, "{out}");
    assert_eq!(
        out.stderr,
        format!(
            "Error: Failed to defragment etcd data[{dir}] (open {dir}/member/snap/db: no such file or directory)\n"
        )
    );
    assert!(!empty.path().join("member").exists(), "it wrote into {dir}");
    let out = etcdutl(&["defrag"]);
    assert_eq!(out.code, 1, "{out}");
    assert_eq!(out.stderr, "Error: required flag(s) \"data-dir\" not set\n");
}

#[test]
fn version_prints_etcdutls_two_lines() {
    let out = etcdutl(&["version"]);
    out.expect_success();
    let lines: Vec<&str> = out.stdout.lines().collect();
    assert_eq!(lines.len(), 2, "{out}");
    let version = lines[0]
        .strip_prefix("etcdutl version: 3.5.")
        .unwrap_or_else(|| panic!("{out}"));
    assert!(version.parse::<u32>().is_ok(), "{out}");
    assert_eq!(lines[1], "API version: 3.5");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hashkv_of_a_stopped_members_backend_is_the_hash_it_answered() {
    within(LIMIT, async {
        let mut cluster = TestCluster::start(1).await;
        let mut c = Client::connect([cluster.endpoint()], None).await.unwrap();
        for i in 0..20 {
            c.put(format!("k{}", i % 5), format!("v{i}"), None)
                .await
                .unwrap();
        }
        c.delete("k0", None).await.unwrap();
        c.compact(10, Some(CompactionOptions::new().with_physical()))
            .await
            .unwrap();
        let answered = c.hash_kv(0).await.unwrap();
        let (hash, rev) = (answered.hash(), answered.header().unwrap().revision());
        drop(c);
        cluster.member_mut(0).terminate();
        let db = cluster.member(0).data_dir().join("member/snap/db");
        let db = db.to_str().unwrap();
        let out = etcdutl(&["hashkv", db]);
        assert_eq!(out.code, 0, "{}", out.stderr);
        assert_eq!(out.stdout, format!("{hash}, {rev}, 10\n"));
        let out = etcdutl(&["hashkv", db, "--rev", "5", "-w", "json"]);
        assert_eq!(
            out.stderr,
            "Error: mvcc: required revision has been compacted\n"
        );
        assert_eq!(out.code, 1);
        let out = etcdutl(&["hashkv", "/nonexistent/db"]);
        assert_eq!(
            out.stderr,
            "Error: stat /nonexistent/db: no such file or directory\n"
        );
    })
    .await;
}

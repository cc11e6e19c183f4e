//! Acknowledged writes survive SIGKILL: a member is killed with no warning
//! right after its last acknowledged write, restarted on the same data dir,
//! and must return every acknowledged key with the same value and revisions,
//! keep its history, and continue the revision sequence where it stopped.

use std::collections::BTreeMap;
use std::time::Duration;

use etcd_client::{Client, DeleteOptions, GetOptions, PutOptions, Txn, TxnOp};
use etcd_rs_tests::{within, TestCluster};

const LIMIT: Duration = Duration::from_secs(180);
const KEYS: usize = 200;

/// What a key must look like: value, create_revision, mod_revision, version.
type Expected = BTreeMap<String, (String, i64, i64, i64)>;

async fn connect(c: &TestCluster) -> Client {
    Client::connect([c.endpoint()], None)
        .await
        .expect("cannot connect to the member")
}

/// Asserts the whole keyspace equals `expected`, and the store is at `revision`.
async fn verify(kv: &mut Client, expected: &Expected, revision: i64) {
    let r = kv
        .get("", Some(GetOptions::new().with_all_keys()))
        .await
        .expect("range over all keys");
    assert_eq!(r.header().unwrap().revision(), revision, "store revision");
    let actual: Expected = r
        .kvs()
        .iter()
        .map(|kv| {
            (
                kv.key_str().unwrap().to_string(),
                (
                    kv.value_str().unwrap().to_string(),
                    kv.create_revision(),
                    kv.mod_revision(),
                    kv.version(),
                ),
            )
        })
        .collect();
    let missing: Vec<_> = expected
        .keys()
        .filter(|k| !actual.contains_key(*k))
        .collect();
    assert!(missing.is_empty(), "acknowledged keys lost: {missing:?}");
    for (k, want) in expected {
        assert_eq!(&actual[k], want, "key {k} (value, create, mod, version)");
    }
    assert_eq!(actual.len(), expected.len(), "unexpected extra keys");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn acknowledged_writes_survive_kill9() {
    within(LIMIT, async {
        let mut c = TestCluster::start(1).await;
        let mut kv = connect(&c).await;

        // Round 1: one put per key, each acknowledged before the next.
        let mut expected = Expected::new();
        let mut last = 1;
        for i in 0..KEYS {
            let key = format!("durable/{i:04}");
            let value = format!("v1-{i}-{}", "x".repeat(i % 64));
            let r = kv
                .put(key.as_str(), value.as_str(), None)
                .await
                .expect("put");
            let rev = r.header().expect("header").revision();
            assert_eq!(rev, last + 1, "each put is one revision");
            last = rev;
            expected.insert(key, (value, rev, rev, 1));
        }
        c.member_mut(0).kill9();
        drop(kv);
        c.member_mut(0).restart().await;
        let mut kv = connect(&c).await;
        verify(&mut kv, &expected, last).await;
        for (key, (value, _, rev, _)) in expected.iter().step_by(37) {
            let r = kv.get(key.as_str(), None).await.unwrap();
            assert_eq!(r.kvs()[0].value_str().unwrap(), value);
            assert_eq!(r.kvs()[0].mod_revision(), *rev);
        }
        let r = kv.put("after-restart", "1", None).await.unwrap();
        assert_eq!(
            r.header().unwrap().revision(),
            last + 1,
            "revisions continue"
        );
        last += 1;
        expected.insert("after-restart".into(), ("1".into(), last, last, 1));

        // Round 2: overwrites, deletes and a multi-put txn, then kill again.
        let history: Vec<(String, String, i64)> = expected
            .iter()
            .take(5)
            .map(|(k, (v, _, m, _))| (k.clone(), v.clone(), *m))
            .collect();
        for i in (0..KEYS).step_by(2) {
            let key = format!("durable/{i:04}");
            let value = format!("v2-{i}");
            let r = kv.put(key.as_str(), value.as_str(), None).await.unwrap();
            assert_eq!(r.header().unwrap().revision(), last + 1);
            last += 1;
            let e = expected.get_mut(&key).unwrap();
            *e = (value, e.1, last, e.3 + 1);
        }
        for i in (0..KEYS).step_by(7) {
            let key = format!("durable/{i:04}");
            let r = kv
                .delete(key.as_str(), Some(DeleteOptions::new().with_prev_key()))
                .await
                .unwrap();
            assert_eq!(r.deleted(), 1);
            assert_eq!(r.header().unwrap().revision(), last + 1);
            last += 1;
            expected.remove(&key);
        }
        let r = kv
            .txn(Txn::new().and_then([
                TxnOp::put("txn/a", "1", None),
                TxnOp::put("txn/b", "2", None),
                TxnOp::put(
                    "durable/0001",
                    "v3",
                    Some(PutOptions::new().with_prev_key()),
                ),
            ]))
            .await
            .unwrap();
        assert_eq!(
            r.header().unwrap().revision(),
            last + 1,
            "one revision per txn"
        );
        last += 1;
        expected.insert("txn/a".into(), ("1".into(), last, last, 1));
        expected.insert("txn/b".into(), ("2".into(), last, last, 1));
        let e = expected.get_mut("durable/0001").unwrap();
        *e = ("v3".into(), e.1, last, e.3 + 1);

        c.member_mut(0).kill9();
        drop(kv);
        c.member_mut(0).restart().await;
        let mut kv = connect(&c).await;
        verify(&mut kv, &expected, last).await;
        // History from before the first kill is still there.
        for (key, value, rev) in history {
            let r = kv
                .get(key.as_str(), Some(GetOptions::new().with_revision(rev)))
                .await
                .unwrap();
            assert_eq!(
                r.kvs()[0].value_str().unwrap(),
                value,
                "{key} at revision {rev}"
            );
        }
        let r = kv.put("the-end", "1", None).await.unwrap();
        assert_eq!(r.header().unwrap().revision(), last + 1);
    })
    .await
}

/// With snapshots every 10 entries (the log before them trimmed), a
/// SIGKILLed member restarts from its newest snapshot record and the WAL
/// after it, and keeps every acknowledged write.
#[tokio::test]
async fn restart_after_snapshots_keeps_every_write() {
    within(LIMIT, async {
        let flags = [
            "--snapshot-count",
            "10",
            "--experimental-snapshot-catchup-entries",
            "5",
        ];
        let mut c = TestCluster::start_with_flags(1, &flags).await;
        let mut client = Client::connect([c.endpoint()], None).await.unwrap();
        let mut revs = Vec::new();
        for i in 0..120 {
            let r = client
                .put(format!("s{i:03}"), format!("{i}"), None)
                .await
                .unwrap();
            revs.push(r.header().unwrap().revision());
        }
        c.member_mut(0).kill9();
        c.member_mut(0).restart().await;
        let mut client = Client::connect([c.endpoint()], None).await.unwrap();
        let r = client
            .get("s", Some(GetOptions::new().with_prefix()))
            .await
            .unwrap();
        assert_eq!(r.kvs().len(), 120);
        for (i, kv) in r.kvs().iter().enumerate() {
            assert_eq!(
                (kv.value_str().unwrap(), kv.mod_revision()),
                (i.to_string().as_str(), revs[i])
            );
        }
        let next = client.put("next", "x", None).await.unwrap();
        assert_eq!(next.header().unwrap().revision(), revs[119] + 1);
    })
    .await
}

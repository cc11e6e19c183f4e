//! The store the `txn_eval` target evaluates txns on: one per thread, in a
//! temporary directory, with a few keys, some history, a compaction and a
//! lease, so compares, ranges at revisions and lease puts all have
//! something to meet.

use std::cell::RefCell;

use api::etcdserverpb::TxnRequest;
use server::etcdserver::kvops;
use server::lease::Lessor;
use storage::backend::Backend;
use storage::mvcc::KvStore;

/// The lease the store's lessor holds.
const LEASE: i64 = 7;

struct Fixture {
    store: KvStore,
    lessor: Lessor,
    _dir: tempfile::TempDir,
}

thread_local! {
    static FIXTURE: RefCell<Option<Fixture>> = const { RefCell::new(None) };
}

fn fixture() -> Fixture {
    let dir = tempfile::tempdir().expect("temporary directory");
    let backend = Backend::open(&dir.path().join("db")).expect("backend");
    let store = KvStore::open(backend).expect("store");
    let lessor = Lessor::new(1);
    lessor.grant(LEASE, 60, 60);
    let mut txn = store.begin().expect("batch");
    for (key, value) in [("a", "1"), ("b", "2"), ("a", "3"), ("c", "4"), ("foo", "5")] {
        txn.put(key.as_bytes(), value.as_bytes(), 0).expect("put");
        txn.end_request();
    }
    txn.compact(2).expect("compact");
    txn.end_request();
    txn.commit().expect("commit");
    Fixture {
        store,
        lessor,
        _dir: dir,
    }
}

/// Evaluates `t` as the apply stage does and commits what it changed.
/// Panics if the evaluation fails after changing the store (the apply
/// stage stops the member then) or answers with another number of
/// responses than the branch it took has operations.
pub fn evaluate(t: &TxnRequest) {
    FIXTURE.with(|f| {
        let mut f = f.borrow_mut();
        let f = f.get_or_insert_with(fixture);
        let mut txn = f.store.begin().expect("batch");
        match kvops::txn(&mut txn, t, &f.lessor) {
            Ok(resp) => {
                let ops = if resp.succeeded {
                    &t.success
                } else {
                    &t.failure
                };
                assert_eq!(resp.responses.len(), ops.len(), "one response per op");
            }
            Err(e) => assert_eq!(
                txn.read_rev(),
                txn.revision(),
                "txn failed with {e} after changing the store"
            ),
        }
        txn.end_request();
        txn.commit().expect("commit");
    })
}

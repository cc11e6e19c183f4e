//! The KV operations on the store, as etcd's applier performs them: Range
//! (with sorting, revision filters and limits), Put, DeleteRange, Txn
//! (compares, branches, nested txns) and Compaction.
//!
//! Reads take any [`ReadView`]; writes take the apply stage's [`StoreTxn`].
//! Every check that can fail runs before the first change, so a failed
//! request changes nothing.

use api::etcdserverpb::compare::{CompareResult, CompareTarget, TargetUnion};
use api::etcdserverpb::range_request::{SortOrder, SortTarget};
use api::etcdserverpb::request_op::Request;
use api::etcdserverpb::response_op::Response;
use api::etcdserverpb::{
    CompactionRequest, CompactionResponse, Compare, DeleteRangeRequest, DeleteRangeResponse,
    PutRequest, PutResponse, RangeRequest, RangeResponse, ResponseHeader, ResponseOp, TxnRequest,
    TxnResponse,
};
use api::mvccpb::KeyValue;
use storage::mvcc::{KvStore, RangeEnd, RangeOptions, ReadView, StoreTxn};

use super::encoded_range::{Builder, EncodedRange};

use crate::lease::Lessor;
use crate::rpctypes::EtcdError;

fn header(revision: i64) -> Option<ResponseHeader> {
    Some(ResponseHeader {
        revision,
        ..Default::default()
    })
}

/// A range's sort order and target, and whether it filters by revision.
/// Error: `InvalidSortOption`.
fn shape(r: &RangeRequest) -> Result<(SortOrder, SortTarget, bool), EtcdError> {
    let sort_order = SortOrder::try_from(r.sort_order).map_err(|_| EtcdError::InvalidSortOption)?;
    let sort_target =
        SortTarget::try_from(r.sort_target).map_err(|_| EtcdError::InvalidSortOption)?;
    let filters = r.min_mod_revision != 0
        || r.max_mod_revision != 0
        || r.min_create_revision != 0
        || r.max_create_revision != 0;
    Ok((sort_order, sort_target, filters))
}

/// Range as etcd's applier does it; the header carries only the revision.
pub fn range(view: &impl ReadView, r: &RangeRequest) -> Result<RangeResponse, EtcdError> {
    metrics::RANGE_TOTAL.inc();
    let (sort_order, sort_target, filters) = shape(r)?;
    // Sorting and filtering need every key; otherwise fetch one extra key
    // to learn whether there are more.
    let limit = if sort_order != SortOrder::None || filters || r.limit <= 0 {
        0
    } else {
        r.limit as usize + 1
    };
    let opts = RangeOptions {
        limit,
        rev: r.revision,
        count_only: r.count_only,
    };
    let rr = view.range(&r.key, RangeEnd::from_request(&r.range_end), opts)?;
    let mut kvs = rr.kvs;
    if r.max_mod_revision != 0 {
        kvs.retain(|kv| kv.mod_revision <= r.max_mod_revision);
    }
    if r.min_mod_revision != 0 {
        kvs.retain(|kv| kv.mod_revision >= r.min_mod_revision);
    }
    if r.max_create_revision != 0 {
        kvs.retain(|kv| kv.create_revision <= r.max_create_revision);
    }
    if r.min_create_revision != 0 {
        kvs.retain(|kv| kv.create_revision >= r.min_create_revision);
    }
    // The store returns keys in ascending key order; any other target is
    // sorted ascending unless an order is given.
    let order = if sort_target != SortTarget::Key && sort_order == SortOrder::None {
        SortOrder::Ascend
    } else {
        sort_order
    };
    if order != SortOrder::None {
        let by = |a: &KeyValue, b: &KeyValue| match sort_target {
            SortTarget::Key => a.key.cmp(&b.key),
            SortTarget::Version => a.version.cmp(&b.version),
            SortTarget::Create => a.create_revision.cmp(&b.create_revision),
            SortTarget::Mod => a.mod_revision.cmp(&b.mod_revision),
            SortTarget::Value => a.value.cmp(&b.value),
        };
        // Stable either way: ties keep ascending key order, as etcd's do.
        if order == SortOrder::Descend {
            kvs.sort_by(|a, b| by(b, a));
        } else {
            kvs.sort_by(by);
        }
    }
    let mut more = false;
    if r.limit > 0 && kvs.len() > r.limit as usize {
        kvs.truncate(r.limit as usize);
        more = true;
    }
    if r.keys_only {
        kvs.iter_mut().for_each(|kv| kv.value.clear());
    }
    Ok(RangeResponse {
        header: header(rr.rev),
        kvs,
        more,
        count: rr.count as i64,
    })
}

/// Range as [`range`] answers it, encoded while it is read (see
/// [`encoded_range`](super::encoded_range)). A range in key order without
/// revision filters or `keys_only` copies the stored records; any other
/// is read, sorted and filtered by [`range`], then encoded.
pub fn range_encoded(store: &KvStore, r: &RangeRequest) -> Result<EncodedRange, EtcdError> {
    let (sort_order, sort_target, filters) = shape(r)?;
    let key_order = sort_target == SortTarget::Key && sort_order != SortOrder::Descend;
    let mut b = Builder::default();
    if !key_order || filters || r.keys_only {
        let resp = range(store, r)?;
        resp.kvs.iter().for_each(|kv| b.push_kv(kv));
        let rev = resp.header.map_or(0, |h| h.revision);
        return Ok(b.finish(resp.more, resp.count, rev));
    }
    metrics::RANGE_TOTAL.inc();
    // One extra key tells whether there are more.
    let want = usize::try_from(r.limit).unwrap_or(0);
    let opts = RangeOptions {
        limit: if want == 0 { 0 } else { want + 1 },
        rev: r.revision,
        count_only: r.count_only,
    };
    let mut found = 0;
    let (count, rev) = store.range_encoded(
        &r.key,
        RangeEnd::from_request(&r.range_end),
        opts,
        |record| {
            if want == 0 || found < want {
                b.push_record(record);
            }
            found += 1;
        },
    )?;
    Ok(b.finish(want != 0 && found > want, count as i64, rev))
}

fn get(view: &impl ReadView, key: &[u8]) -> Result<Option<KeyValue>, EtcdError> {
    Ok(view
        .range(key, RangeEnd::Single, RangeOptions::default())?
        .kvs
        .pop())
}

/// Checks a put against the state it would apply to: its lease must exist
/// and `ignore_value`/`ignore_lease` need the key to exist.
fn check_put(view: &impl ReadView, p: &PutRequest, leases: &Lessor) -> Result<(), EtcdError> {
    if !p.ignore_lease && p.lease != 0 && !leases.exists(p.lease) {
        return Err(EtcdError::LeaseNotFound);
    }
    if (p.ignore_value || p.ignore_lease) && get(view, &p.key)?.is_none() {
        return Err(EtcdError::KeyNotFound);
    }
    Ok(())
}

/// Put; the header carries the revision of the change.
/// The key joins its lease in `leases`.
pub fn put(
    txn: &mut StoreTxn<'_>,
    p: &PutRequest,
    leases: &Lessor,
) -> Result<PutResponse, EtcdError> {
    check_put(txn, p, leases)?;
    let prev = if p.prev_kv || p.ignore_value || p.ignore_lease {
        get(txn, &p.key)?
    } else {
        None
    };
    let (value, lease) = match &prev {
        Some(kv) if p.ignore_value || p.ignore_lease => (
            if p.ignore_value { &kv.value } else { &p.value },
            if p.ignore_lease { kv.lease } else { p.lease },
        ),
        _ => (&p.value, p.lease),
    };
    txn.put(&p.key, value, lease)?;
    metrics::PUT_TOTAL.inc();
    leases.attach(&p.key, lease);
    Ok(PutResponse {
        header: header(txn.read_rev()),
        prev_kv: if p.prev_kv { prev } else { None },
    })
}

/// DeleteRange; the header carries the revision of the change, or the
/// current one when nothing was deleted.
/// Deleted keys leave their leases in `leases`.
pub fn delete_range(
    txn: &mut StoreTxn<'_>,
    d: &DeleteRangeRequest,
    leases: &Lessor,
) -> Result<DeleteRangeResponse, EtcdError> {
    metrics::DELETE_TOTAL.inc();
    let end = RangeEnd::from_request(&d.range_end);
    let prev_kvs = if d.prev_kv {
        txn.range(&d.key, end, RangeOptions::default())?.kvs
    } else {
        Vec::new()
    };
    let deleted = txn.delete_range(&d.key, end)?;
    leases.detach(&deleted);
    Ok(DeleteRangeResponse {
        header: header(txn.read_rev()),
        deleted: deleted.len() as i64,
        prev_kvs,
    })
}

/// Compaction at the request's revision; the header carries the current
/// revision.
pub fn compact(
    txn: &mut StoreTxn<'_>,
    c: &CompactionRequest,
) -> Result<CompactionResponse, EtcdError> {
    txn.compact(c.revision)?;
    Ok(CompactionResponse {
        header: header(txn.read_rev()),
    })
}

fn compare_kv(c: &Compare, kv: &KeyValue) -> bool {
    use std::cmp::Ordering;
    // A union of another kind than the target reads as the zero value, as
    // in etcd.
    let int =
        |want: fn(&TargetUnion) -> Option<i64>| c.target_union.as_ref().and_then(want).unwrap_or(0);
    let ord = match CompareTarget::try_from(c.target) {
        Ok(CompareTarget::Value) => {
            let v = match &c.target_union {
                Some(TargetUnion::Value(v)) => v.as_slice(),
                _ => &[],
            };
            kv.value.as_slice().cmp(v)
        }
        Ok(CompareTarget::Version) => kv.version.cmp(&int(|u| match u {
            TargetUnion::Version(v) => Some(*v),
            _ => None,
        })),
        Ok(CompareTarget::Create) => kv.create_revision.cmp(&int(|u| match u {
            TargetUnion::CreateRevision(v) => Some(*v),
            _ => None,
        })),
        Ok(CompareTarget::Mod) => kv.mod_revision.cmp(&int(|u| match u {
            TargetUnion::ModRevision(v) => Some(*v),
            _ => None,
        })),
        Ok(CompareTarget::Lease) => kv.lease.cmp(&int(|u| match u {
            TargetUnion::Lease(v) => Some(*v),
            _ => None,
        })),
        Err(_) => Ordering::Equal,
    };
    match CompareResult::try_from(c.result) {
        Ok(CompareResult::Equal) => ord == Ordering::Equal,
        Ok(CompareResult::NotEqual) => ord != Ordering::Equal,
        Ok(CompareResult::Greater) => ord == Ordering::Greater,
        Ok(CompareResult::Less) => ord == Ordering::Less,
        Err(_) => true,
    }
}

/// Whether a compare holds: for every key in its range, or against an
/// absent key's zero values (a value compare on no key fails).
fn compare(view: &impl ReadView, c: &Compare) -> Result<bool, EtcdError> {
    let kvs = view
        .range(
            &c.key,
            RangeEnd::from_request(&c.range_end),
            RangeOptions::default(),
        )?
        .kvs;
    if kvs.is_empty() {
        return Ok(c.target != CompareTarget::Value as i32 && compare_kv(c, &KeyValue::default()));
    }
    Ok(kvs.iter().all(|kv| compare_kv(c, kv)))
}

fn compares_hold(view: &impl ReadView, t: &TxnRequest) -> Result<bool, EtcdError> {
    for c in &t.compare {
        if !compare(view, c)? {
            return Ok(false);
        }
    }
    Ok(true)
}

/// The branch taken by `t` and by each txn nested in the taken branches,
/// in depth-first order, all decided on the state before the txn runs
/// (etcd's `compareToPath`).
fn txn_path(view: &impl ReadView, t: &TxnRequest, path: &mut Vec<bool>) -> Result<(), EtcdError> {
    let ok = compares_hold(view, t)?;
    path.push(ok);
    for op in if ok { &t.success } else { &t.failure } {
        if let Some(Request::RequestTxn(nested)) = &op.request {
            txn_path(view, nested, path)?;
        }
    }
    Ok(())
}

/// Checks the ops on `path` before any runs, against the state before the
/// txn (etcd's `checkRequests`): puts' leases and keys, and the revisions
/// ranges ask for.
fn check_ops(
    txn: &StoreTxn<'_>,
    t: &TxnRequest,
    path: &mut std::slice::Iter<'_, bool>,
    leases: &Lessor,
) -> Result<(), EtcdError> {
    let ok = *path.next().expect("path covers every taken txn");
    for op in if ok { &t.success } else { &t.failure } {
        match &op.request {
            Some(Request::RequestPut(p)) => check_put(txn, p, leases)?,
            Some(Request::RequestRange(r)) if r.revision > 0 => {
                if r.revision > txn.revision() {
                    return Err(EtcdError::FutureRev);
                }
                if r.revision < txn.compact_revision() {
                    return Err(EtcdError::Compacted);
                }
            }
            Some(Request::RequestTxn(nested)) => check_ops(txn, nested, path, leases)?,
            _ => {}
        }
    }
    Ok(())
}

/// Txn: decides every branch first, checks the ops on them, then runs
/// them in order; later ops see earlier ops' writes. All its changes share
/// one revision, carried by the header.
pub fn txn(
    txn: &mut StoreTxn<'_>,
    t: &TxnRequest,
    leases: &Lessor,
) -> Result<TxnResponse, EtcdError> {
    let mut path = Vec::new();
    txn_path(txn, t, &mut path)?;
    check_ops(txn, t, &mut path.iter(), leases)?;
    let mut resp = run_ops(txn, t, &mut path.iter(), leases)?;
    metrics::TXN_TOTAL.inc();
    resp.header = header(txn.read_rev());
    Ok(resp)
}

/// Runs the taken branch of `t`. A nested txn's own header is empty, as
/// in etcd.
fn run_ops(
    txn: &mut StoreTxn<'_>,
    t: &TxnRequest,
    path: &mut std::slice::Iter<'_, bool>,
    leases: &Lessor,
) -> Result<TxnResponse, EtcdError> {
    let succeeded = *path.next().expect("path covers every taken txn");
    let ops = if succeeded { &t.success } else { &t.failure };
    let mut responses = Vec::with_capacity(ops.len());
    for op in ops {
        let response = match &op.request {
            Some(Request::RequestRange(r)) => Response::ResponseRange(range(txn, r)?),
            Some(Request::RequestPut(p)) => Response::ResponsePut(put(txn, p, leases)?),
            Some(Request::RequestDeleteRange(d)) => {
                Response::ResponseDeleteRange(delete_range(txn, d, leases)?)
            }
            Some(Request::RequestTxn(nested)) => {
                Response::ResponseTxn(run_ops(txn, nested, path, leases)?)
            }
            None => return Err(EtcdError::KeyNotFound),
        };
        responses.push(ResponseOp {
            response: Some(response),
        });
    }
    Ok(TxnResponse {
        header: Some(ResponseHeader::default()),
        succeeded,
        responses,
    })
}

#[cfg(test)]
mod tests {
    use api::etcdserverpb::RequestOp;
    use storage::{Backend, KvStore};

    use super::*;

    fn op(r: Request) -> RequestOp {
        RequestOp { request: Some(r) }
    }

    #[test]
    fn txn_reading_a_compacted_revision_fails_before_any_change() {
        let dir = tempfile::tempdir().unwrap();
        let store = KvStore::open(Backend::open(&dir.path().join("db")).unwrap()).unwrap();
        let mut t = store.begin().unwrap();
        for v in ["1", "2"] {
            t.put(b"a", v.as_bytes(), 0).unwrap();
            t.end_request();
        }
        t.compact(3).unwrap();
        t.commit().unwrap();

        let mut t = store.begin().unwrap();
        let req = TxnRequest {
            success: vec![
                op(Request::RequestPut(PutRequest {
                    key: b"b".to_vec(),
                    ..Default::default()
                })),
                op(Request::RequestRange(RangeRequest {
                    key: b"a".to_vec(),
                    revision: 2,
                    ..Default::default()
                })),
            ],
            ..Default::default()
        };
        let leases = Lessor::new(1);
        assert_eq!(
            txn(&mut t, &req, &leases).unwrap_err(),
            EtcdError::Compacted
        );
        assert_eq!(t.read_rev(), t.revision(), "the put did not run");
        let future = TxnRequest {
            success: vec![op(Request::RequestRange(RangeRequest {
                key: b"a".to_vec(),
                revision: 4,
                ..Default::default()
            }))],
            ..Default::default()
        };
        assert_eq!(
            txn(&mut t, &future, &leases).unwrap_err(),
            EtcdError::FutureRev
        );
    }
}

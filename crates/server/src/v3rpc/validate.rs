//! Request checks done before anything is proposed (etcd's `v3rpc/key.go`):
//! empty keys, option conflicts, txn size and overlapping writes. Each
//! returns etcd's error for the first problem found.

use api::etcdserverpb::range_request::{SortOrder, SortTarget};
use api::etcdserverpb::request_op::Request;
use api::etcdserverpb::{DeleteRangeRequest, PutRequest, RangeRequest, RequestOp, TxnRequest};

use crate::rpctypes::EtcdError;

/// Checks a Range.
pub fn range(r: &RangeRequest) -> Result<(), EtcdError> {
    if r.key.is_empty() {
        return Err(EtcdError::EmptyKey);
    }
    if SortOrder::try_from(r.sort_order).is_err() || SortTarget::try_from(r.sort_target).is_err() {
        return Err(EtcdError::InvalidSortOption);
    }
    Ok(())
}

/// Checks a Put.
pub fn put(r: &PutRequest) -> Result<(), EtcdError> {
    if r.key.is_empty() {
        return Err(EtcdError::EmptyKey);
    }
    if r.ignore_value && !r.value.is_empty() {
        return Err(EtcdError::ValueProvided);
    }
    if r.ignore_lease && r.lease != 0 {
        return Err(EtcdError::LeaseProvided);
    }
    Ok(())
}

/// Checks a DeleteRange.
pub fn delete_range(r: &DeleteRangeRequest) -> Result<(), EtcdError> {
    if r.key.is_empty() {
        return Err(EtcdError::EmptyKey);
    }
    Ok(())
}

/// Checks a Txn: at most `max_ops` compares, success ops and failure ops
/// (each counted on its own), non-empty keys everywhere, and no key put
/// twice or put and deleted on one path.
pub fn txn(r: &TxnRequest, max_ops: usize) -> Result<(), EtcdError> {
    check_txn(r, max_ops)?;
    intervals(&r.success)?;
    intervals(&r.failure)?;
    Ok(())
}

fn check_txn(r: &TxnRequest, max_ops: usize) -> Result<(), EtcdError> {
    let ops = r.compare.len().max(r.success.len()).max(r.failure.len());
    if ops > max_ops {
        return Err(EtcdError::TooManyOps);
    }
    if r.compare.iter().any(|c| c.key.is_empty()) {
        return Err(EtcdError::EmptyKey);
    }
    for op in r.success.iter().chain(&r.failure) {
        match &op.request {
            Some(Request::RequestRange(x)) => range(x)?,
            Some(Request::RequestPut(x)) => put(x)?,
            Some(Request::RequestDeleteRange(x)) => delete_range(x)?,
            Some(Request::RequestTxn(x)) => check_txn(x, max_ops.saturating_sub(ops))?,
            None => return Err(EtcdError::KeyNotFound),
        }
    }
    Ok(())
}

/// A deleted key range `[start, end)`, or the key `start` alone when `end`
/// is empty. As in etcd's check, an end of `\0` makes an empty interval.
struct Del {
    start: Vec<u8>,
    end: Vec<u8>,
}

impl Del {
    fn contains(&self, k: &[u8]) -> bool {
        if self.end.is_empty() {
            return k == self.start.as_slice();
        }
        k >= self.start.as_slice() && k < self.end.as_slice()
    }
}

/// The keys put and ranges deleted by `ops` and their nested txns;
/// `DuplicateKey` if a key is put twice, or put where a delete on the same
/// path covers it (the two branches of a nested txn may put the same key).
fn intervals(ops: &[RequestOp]) -> Result<(Vec<Vec<u8>>, Vec<Del>), EtcdError> {
    let mut dels: Vec<Del> = Vec::new();
    for op in ops {
        if let Some(Request::RequestDeleteRange(d)) = &op.request {
            dels.push(Del {
                start: d.key.clone(),
                end: d.range_end.clone(),
            });
        }
    }
    let mut puts: Vec<Vec<u8>> = Vec::new();
    let covered = |dels: &[Del], k: &[u8]| dels.iter().any(|d| d.contains(k));
    for op in ops {
        if let Some(Request::RequestTxn(t)) = &op.request {
            let (puts_then, dels_then) = intervals(&t.success)?;
            let (puts_else, dels_else) = intervals(&t.failure)?;
            for k in &puts_then {
                if puts.contains(k) || covered(&dels, k) {
                    return Err(EtcdError::DuplicateKey);
                }
                puts.push(k.clone());
            }
            for k in &puts_else {
                if (puts.contains(k) && !puts_then.contains(k)) || covered(&dels, k) {
                    return Err(EtcdError::DuplicateKey);
                }
                if !puts.contains(k) {
                    puts.push(k.clone());
                }
            }
            dels.extend(dels_then);
            dels.extend(dels_else);
        }
    }
    for op in ops {
        if let Some(Request::RequestPut(p)) = &op.request {
            if puts.contains(&p.key) || covered(&dels, &p.key) {
                return Err(EtcdError::DuplicateKey);
            }
            puts.push(p.key.clone());
        }
    }
    Ok((puts, dels))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn put_op(k: &str) -> RequestOp {
        RequestOp {
            request: Some(Request::RequestPut(PutRequest {
                key: k.into(),
                ..Default::default()
            })),
        }
    }

    fn del_op(k: &str, end: &str) -> RequestOp {
        RequestOp {
            request: Some(Request::RequestDeleteRange(DeleteRangeRequest {
                key: k.into(),
                range_end: end.into(),
                ..Default::default()
            })),
        }
    }

    #[test]
    fn duplicate_puts_and_put_in_deleted_range_are_refused() {
        let t = |ops: Vec<RequestOp>| TxnRequest {
            success: ops,
            ..Default::default()
        };
        assert_eq!(
            txn(&t(vec![put_op("a"), put_op("a")]), 128),
            Err(EtcdError::DuplicateKey)
        );
        assert_eq!(
            txn(&t(vec![del_op("a", "c"), put_op("b")]), 128),
            Err(EtcdError::DuplicateKey)
        );
        assert_eq!(txn(&t(vec![del_op("a", "c"), put_op("c")]), 128), Ok(()));
        let nested = TxnRequest {
            success: vec![put_op("x")],
            failure: vec![put_op("x")],
            ..Default::default()
        };
        let op = RequestOp {
            request: Some(Request::RequestTxn(nested)),
        };
        assert_eq!(txn(&t(vec![op.clone()]), 128), Ok(()));
        assert_eq!(
            txn(&t(vec![op, put_op("x")]), 128),
            Err(EtcdError::DuplicateKey)
        );
    }

    #[test]
    fn op_count_is_per_list() {
        let t = TxnRequest {
            success: vec![put_op("a"), put_op("b")],
            failure: vec![put_op("c"), put_op("d")],
            ..Default::default()
        };
        assert_eq!(txn(&t, 2), Ok(()));
        assert_eq!(txn(&t, 1), Err(EtcdError::TooManyOps));
    }
}

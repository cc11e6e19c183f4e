//! The space quota (etcd's `backendQuota` and the `quotaKVServer` /
//! `quotaLeaseServer` checks): a write that would take the backend past
//! `--quota-backend-bytes` raises the NOSPACE alarm through raft and is
//! refused with `etcdserver: mvcc: database space exceeded`; from then on
//! the alarm refuses such writes on every member until it is disarmed.
//! The cost of a write is etcd's estimate of what it adds to the backend.
//! The apply stage checks again, as etcd's `quotaApplierV3` does: a write
//! applied while this member's backend is past the quota is kept, but its
//! waiter is answered with the same error.

use api::etcdserverpb::alarm_request::AlarmAction;
use api::etcdserverpb::request_op::Request as Op;
use api::etcdserverpb::{AlarmRequest, AlarmType, PutRequest, TxnRequest};

use super::request::Request;
use super::EtcdServer;
use crate::rpctypes::EtcdError;

/// Estimated bytes of a key's metadata (etcd's `kvOverhead`).
const KV_OVERHEAD: usize = 256;
/// Estimated bytes of a lease (etcd's `leaseOverhead`).
pub const LEASE_COST: usize = 64;

/// What a Put adds: its key, its value and a key's metadata.
pub fn put_cost(r: &PutRequest) -> usize {
    KV_OVERHEAD + r.key.len() + r.value.len()
}

/// What a Txn adds: the puts of its costlier branch, nested txns
/// included; 0 for a Txn that writes nothing.
pub fn txn_cost(r: &TxnRequest) -> usize {
    let branch = |ops: &[api::etcdserverpb::RequestOp]| -> usize {
        ops.iter()
            .map(|op| match &op.request {
                Some(Op::RequestPut(p)) => put_cost(p),
                Some(Op::RequestTxn(t)) => txn_cost(t),
                _ => 0,
            })
            .sum()
    };
    branch(&r.success).max(branch(&r.failure))
}

/// What an applied request adds to the backend, in bytes (etcd's
/// `backendQuota.Cost`): a Put's or Txn's cost, [`LEASE_COST`] for a
/// LeaseGrant, 0 for the rest.
pub fn request_cost(req: &Request<'_>) -> usize {
    match req {
        Request::Put(r) => put_cost(r),
        Request::Txn(r) => txn_cost(r),
        Request::LeaseGrant(_) => LEASE_COST,
        _ => 0,
    }
}

/// Whether a write of `cost` bytes fits a backend of `size` bytes under a
/// quota of `quota` bytes (etcd's `backendQuota.Available`; a write that
/// adds nothing always fits).
pub fn available(cost: usize, size: u64, quota: u64) -> bool {
    cost == 0 || size + (cost as u64) < quota
}

impl EtcdServer {
    /// Refuses a write of `cost` bytes when the backend has no room for
    /// it, raising NOSPACE first (etcd answers the same way, after its
    /// Alarm call). Error: `NoSpace`.
    pub(super) async fn check_quota(&self, cost: usize) -> Result<(), EtcdError> {
        let size = self.store.backend().size_bytes();
        if available(cost, size, self.cfg.quota_backend_bytes) {
            return Ok(());
        }
        tracing::warn!(
            quota_size_bytes = self.cfg.quota_backend_bytes,
            current_db_size_bytes = size,
            "message exceeded space quota"
        );
        let raise = AlarmRequest {
            action: AlarmAction::Activate as i32,
            member_id: self.member_id,
            alarm: AlarmType::Nospace as i32,
        };
        if let Err(e) = self.alarm(raise).await {
            tracing::warn!(error = %e, "failed to raise the NOSPACE alarm");
        }
        Err(EtcdError::NoSpace)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use api::etcdserverpb::RequestOp;

    #[test]
    fn costs_are_etcds() {
        let put = PutRequest {
            key: b"k".to_vec(),
            value: vec![0; 10],
            ..Default::default()
        };
        assert_eq!(put_cost(&put), 267);
        let op = |p: &PutRequest| RequestOp {
            request: Some(Op::RequestPut(p.clone())),
        };
        let inner = TxnRequest {
            success: vec![op(&put), op(&put)],
            ..Default::default()
        };
        let txn = TxnRequest {
            success: vec![op(&put)],
            failure: vec![RequestOp {
                request: Some(Op::RequestTxn(inner)),
            }],
            ..Default::default()
        };
        assert_eq!(txn_cost(&txn), 2 * 267);
        assert_eq!(txn_cost(&TxnRequest::default()), 0);
    }

    #[test]
    fn a_write_fits_only_strictly_below_the_quota() {
        let put = PutRequest {
            key: b"k".to_vec(),
            ..Default::default()
        };
        let grant = api::etcdserverpb::LeaseGrantRequest::default();
        let cost = request_cost(&Request::Put(&put));
        assert_eq!(cost, 257);
        assert_eq!(request_cost(&Request::LeaseGrant(&grant)), LEASE_COST);
        assert!(available(cost, 1000 - 258, 1000));
        assert!(!available(cost, 1000 - 257, 1000));
        assert!(available(0, 5000, 1000));
    }
}

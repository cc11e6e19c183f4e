//! The space quota (etcd's `backendQuota` and the `quotaKVServer` /
//! `quotaLeaseServer` checks): a write that would take the backend past
//! `--quota-backend-bytes` raises the NOSPACE alarm through raft and is
//! refused with `etcdserver: mvcc: database space exceeded`; from then on
//! the alarm refuses such writes on every member until it is disarmed.
//! The cost of a write is etcd's estimate of what it adds to the backend.

use api::etcdserverpb::alarm_request::AlarmAction;
use api::etcdserverpb::request_op::Request as Op;
use api::etcdserverpb::{AlarmRequest, AlarmType, PutRequest, TxnRequest};

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

impl EtcdServer {
    /// Refuses a write of `cost` bytes when the backend has no room for
    /// it, raising NOSPACE first (etcd answers the same way, after its
    /// Alarm call). Error: `NoSpace`.
    pub(super) async fn check_quota(&self, cost: usize) -> Result<(), EtcdError> {
        let size = self.store.backend().size_bytes();
        if cost == 0 || size + (cost as u64) < self.cfg.quota_backend_bytes {
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
}

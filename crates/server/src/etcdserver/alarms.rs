//! The alarm store (etcd's `v3alarm.AlarmStore`) and what an active alarm
//! refuses (etcd's capped and corrupt appliers).
//!
//! An alarm is a member id and an alarm type, raised and disarmed only by
//! raft entries (`Maintenance.Alarm`), so every member holds the same set.
//! The set lives in memory for reads (`/health`, Status, the apply gate)
//! and in the backend's `alarm` table, written in the apply batch's
//! transaction, so it survives restarts and travels with snapshots.
//!
//! While NOSPACE is active, requests that add data (Put, a Txn with a
//! put, LeaseGrant) are refused with `etcdserver: mvcc: database space
//! exceeded`; while CORRUPT is active, every write (Put, DeleteRange, a
//! Txn that is not read-only, Compaction, LeaseGrant, LeaseRevoke) is
//! refused with `etcdserver: corrupt cluster`. CORRUPT is checked first,
//! as etcd's restart order leaves it outermost.

use std::collections::BTreeSet;
use std::sync::RwLock;

use api::etcdserverpb::request_op::Request as Op;
use api::etcdserverpb::{AlarmMember, AlarmType, RequestOp, TxnRequest};
use storage::KvStore;

use super::request::Request;
use crate::rpctypes::EtcdError;

/// The active alarms: (alarm type, member id), sorted.
#[derive(Default)]
pub struct AlarmStore(RwLock<BTreeSet<(i32, u64)>>);

impl AlarmStore {
    /// Loads the alarms stored in `store`'s backend. Errors: the backend's.
    pub fn load(store: &KvStore) -> Result<AlarmStore, EtcdError> {
        let a = AlarmStore::default();
        a.reload(store)?;
        Ok(a)
    }

    /// Reads the stored alarms again (after a snapshot replaced the
    /// backend).
    pub fn reload(&self, store: &KvStore) -> Result<(), EtcdError> {
        let stored = storage::schema::alarm::load(store.backend())
            .map_err(|e| EtcdError::Internal(e.to_string()))?;
        *self.0.write().expect("alarm lock") =
            stored.iter().map(|m| (m.alarm, m.member_id)).collect();
        Ok(())
    }

    /// The active alarms of type `alarm`, or all of them for NONE (etcd's
    /// `Get`), by type then member id.
    pub fn get(&self, alarm: i32) -> Vec<AlarmMember> {
        self.0
            .read()
            .expect("alarm lock")
            .iter()
            .filter(|(t, _)| alarm == AlarmType::None as i32 || *t == alarm)
            .map(|&(alarm, member_id)| AlarmMember { member_id, alarm })
            .collect()
    }

    /// Whether an alarm of type `alarm` is active on any member.
    pub fn active(&self, alarm: AlarmType) -> bool {
        let t = alarm as i32;
        self.0
            .read()
            .expect("alarm lock")
            .range((t, 0)..=(t, u64::MAX))
            .next()
            .is_some()
    }

    /// Raises alarm `m` (in memory, and in `txn`'s `alarm` table when it
    /// is new). Returns whether it is new.
    pub fn activate(
        &self,
        txn: &storage::mvcc::StoreTxn<'_>,
        m: &AlarmMember,
    ) -> Result<bool, EtcdError> {
        let mut set = self.0.write().expect("alarm lock");
        if set.contains(&(m.alarm, m.member_id)) {
            return Ok(false);
        }
        txn.alarm_table().put(m).map_err(internal)?;
        set.insert((m.alarm, m.member_id));
        Ok(true)
    }

    /// Disarms alarm `m`. Returns whether it was active.
    pub fn deactivate(
        &self,
        txn: &storage::mvcc::StoreTxn<'_>,
        m: &AlarmMember,
    ) -> Result<bool, EtcdError> {
        let mut set = self.0.write().expect("alarm lock");
        if !set.contains(&(m.alarm, m.member_id)) {
            return Ok(false);
        }
        txn.alarm_table().remove(m).map_err(internal)?;
        set.remove(&(m.alarm, m.member_id));
        Ok(true)
    }

    /// The error an active alarm answers `req` with, if any.
    pub fn refusal(&self, req: &Request<'_>) -> Option<EtcdError> {
        if self.active(AlarmType::Corrupt) && writes(req) {
            return Some(EtcdError::Corrupt);
        }
        if self.active(AlarmType::Nospace) && adds_data(req) {
            return Some(EtcdError::NoSpace);
        }
        None
    }
}

/// Whether `req` changes keys or leases (etcd's corrupt applier; a Txn of
/// ranges only is a read).
fn writes(req: &Request<'_>) -> bool {
    match req {
        Request::Put(_)
        | Request::DeleteRange(_)
        | Request::Compaction(_)
        | Request::LeaseGrant(_)
        | Request::LeaseRevoke(_) => true,
        Request::Txn(t) => !t
            .success
            .iter()
            .chain(&t.failure)
            .all(|op| matches!(op.request, Some(Op::RequestRange(_)))),
        _ => false,
    }
}

/// Whether `req` costs space (etcd's quota cost: a Put, a Txn with a put
/// in either branch at any depth, a LeaseGrant).
fn adds_data(req: &Request<'_>) -> bool {
    match req {
        Request::Put(_) | Request::LeaseGrant(_) => true,
        Request::Txn(t) => txn_puts(t),
        _ => false,
    }
}

fn txn_puts(t: &TxnRequest) -> bool {
    let op_puts = |op: &RequestOp| match &op.request {
        Some(Op::RequestPut(_)) => true,
        Some(Op::RequestTxn(t)) => txn_puts(t),
        _ => false,
    };
    t.success.iter().chain(&t.failure).any(op_puts)
}

/// The name etcd gives an alarm type in `/health` reasons and etcdctl
/// (`NOSPACE`, `CORRUPT`), `UNKNOWN` for any other.
pub fn alarm_name(alarm: i32) -> &'static str {
    match AlarmType::try_from(alarm) {
        Ok(AlarmType::Nospace) => "NOSPACE",
        Ok(AlarmType::Corrupt) => "CORRUPT",
        _ => "UNKNOWN",
    }
}

fn internal(e: impl std::fmt::Display) -> EtcdError {
    EtcdError::Internal(e.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;
    use api::etcdserverpb::{DeleteRangeRequest, PutRequest, RangeRequest};

    fn op(r: Op) -> RequestOp {
        RequestOp { request: Some(r) }
    }

    #[test]
    fn a_txn_costs_space_only_with_a_put_at_any_depth() {
        let nested = TxnRequest {
            failure: vec![op(Op::RequestPut(PutRequest::default()))],
            ..Default::default()
        };
        let outer = TxnRequest {
            success: vec![
                op(Op::RequestRange(RangeRequest::default())),
                op(Op::RequestTxn(nested)),
            ],
            ..Default::default()
        };
        assert!(adds_data(&Request::Txn(&outer)));
        assert!(writes(&Request::Txn(&outer)));
        let deletes = TxnRequest {
            success: vec![op(Op::RequestDeleteRange(DeleteRangeRequest::default()))],
            ..Default::default()
        };
        assert!(!adds_data(&Request::Txn(&deletes)));
        assert!(writes(&Request::Txn(&deletes)));
        let reads = TxnRequest {
            failure: vec![op(Op::RequestRange(RangeRequest::default()))],
            ..Default::default()
        };
        assert!(!writes(&Request::Txn(&reads)));
    }
}

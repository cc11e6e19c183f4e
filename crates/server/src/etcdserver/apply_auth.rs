//! The auth gate in front of the apply stage (etcd's `authApplierV3`):
//! each request is checked against the auth store as of its own entry,
//! with the user and auth revision its proposer put in the raft header.
//! A request checked at an older auth revision is refused with
//! `AuthOldRevision`, so a permission revoked before a write is applied
//! never lets it in, whatever the member checked when it proposed.
//!
//! What needs what, as etcd 3.5: Put needs WRITE on its key, READ too
//! for `prev_kv`, and WRITE on every key already attached to its lease;
//! DeleteRange needs WRITE on its range, READ too for `prev_kv`; Txn
//! needs READ on every compare and the rights of every operation of both
//! branches, nested transactions included (etcd 3.5 looks one level
//! deep; etcd-rs checks them all, and asks READ for a Put's `prev_kv` in
//! a Txn as outside one); LeaseRevoke needs WRITE on every attached
//! key; auth changes need the root role.

use api::etcdserverpb::request_op::Request as Op;
use api::etcdserverpb::{RequestHeader, RequestOp, TxnRequest};

use super::request::Request;
use crate::auth::perms::Need;
use crate::auth::token::AuthInfo;
use crate::auth::AuthStore;
use crate::lease::Lessor;
use crate::rpctypes::EtcdError;

/// Checks `req`, proposed with `header`, against `auth`. Errors:
/// `UserEmpty`, `UserNotFound`, `AuthOldRevision`, `PermissionDenied`.
pub fn check(
    auth: &AuthStore,
    lessor: &Lessor,
    header: Option<&RequestHeader>,
    req: &Request<'_>,
) -> Result<(), EtcdError> {
    if !auth.is_enabled() {
        return Ok(());
    }
    let ai = AuthInfo {
        username: header.map(|h| h.username.clone()).unwrap_or_default(),
        revision: header.map_or(0, |h| h.auth_revision),
    };
    if req.needs_admin() {
        return auth.check_admin(&ai);
    }
    match req {
        Request::Put(r) => {
            auth.check(&ai, Need::Write, &r.key, &[])?;
            lease_keys(auth, lessor, &ai, r.lease)?;
            if r.prev_kv {
                auth.check(&ai, Need::Read, &r.key, &[])?;
            }
            Ok(())
        }
        Request::DeleteRange(r) => {
            auth.check(&ai, Need::Write, &r.key, &r.range_end)?;
            if r.prev_kv {
                auth.check(&ai, Need::Read, &r.key, &r.range_end)?;
            }
            Ok(())
        }
        Request::Txn(r) => txn(auth, &ai, r),
        Request::LeaseRevoke(r) => lease_keys(auth, lessor, &ai, r.id),
        _ => Ok(()),
    }
}

/// WRITE on every key attached to lease `id` (none for no lease).
fn lease_keys(auth: &AuthStore, lessor: &Lessor, ai: &AuthInfo, id: i64) -> Result<(), EtcdError> {
    if id == 0 {
        return Ok(());
    }
    for key in lessor.keys(id) {
        auth.check(ai, Need::Write, &key, &[])?;
    }
    Ok(())
}

/// etcd's `checkTxnAuth`, nested transactions included.
pub fn txn(auth: &AuthStore, ai: &AuthInfo, r: &TxnRequest) -> Result<(), EtcdError> {
    for c in &r.compare {
        auth.check(ai, Need::Read, &c.key, &c.range_end)?;
    }
    ops(auth, ai, &r.success)?;
    ops(auth, ai, &r.failure)
}

fn ops(auth: &AuthStore, ai: &AuthInfo, ops: &[RequestOp]) -> Result<(), EtcdError> {
    for op in ops {
        match &op.request {
            Some(Op::RequestRange(r)) => auth.check(ai, Need::Read, &r.key, &r.range_end)?,
            Some(Op::RequestPut(r)) => {
                auth.check(ai, Need::Write, &r.key, &[])?;
                if r.prev_kv {
                    auth.check(ai, Need::Read, &r.key, &[])?;
                }
            }
            Some(Op::RequestDeleteRange(r)) => {
                if r.prev_kv {
                    auth.check(ai, Need::Read, &r.key, &r.range_end)?;
                }
                auth.check(ai, Need::Write, &r.key, &r.range_end)?;
            }
            Some(Op::RequestTxn(t)) => txn(auth, ai, t)?,
            None => {}
        }
    }
    Ok(())
}

//! v3lock's Lock and Unlock (etcd's `v3lock/lock.go` on clientv3's
//! `concurrency.Mutex`): the lock `name` is held by the owner of the
//! oldest key under `name/`; a caller adds `name/<lease hex>` and waits
//! for every older key to go.

use std::sync::Arc;

use api::etcdserverpb::response_op::Response as OpResponse;
use api::etcdserverpb::{DeleteRangeRequest, ResponseHeader, TxnRequest};

use super::{
    created_at, first_created, member_key, one_key, prefix_of, put_op, range, range_op,
    read_header, session_lease, wait_deletes, Cleanup,
};
use crate::etcdserver::v3server::Credentials;
use crate::etcdserver::EtcdServer;
use crate::rpctypes::EtcdError;

/// A lock held: its key and the header of the read that found it held
/// (the revision a fencing check can compare with).
pub struct Held {
    /// The header; `revision` is the store revision when it was taken.
    pub header: ResponseHeader,
    /// `name/<lease hex>`.
    pub key: Vec<u8>,
}

/// Takes lock `name` for `lease` (a new lease of 60 s when 0, not kept
/// alive), waiting while older keys hold it. A lease's second Lock of a
/// name it holds answers at once. Errors: those of the KV calls
/// (`LeaseNotFound` when the lease does not exist), `SessionExpired` when
/// the key was gone (its lease expired) by the time the lock was free.
pub async fn lock(
    server: &Arc<EtcdServer>,
    creds: &Credentials,
    name: &[u8],
    lease: i64,
) -> Result<Held, EtcdError> {
    let lease = session_lease(server, creds, lease).await?;
    let prefix = prefix_of(name);
    let key = member_key(&prefix, lease);
    let mut cleanup = Cleanup::before_write(server, creds, &key);
    let txn = TxnRequest {
        compare: vec![created_at(&key, 0)],
        success: vec![put_op(&key, b"", lease), range_op(first_created(&prefix))],
        failure: vec![range_op(one_key(&key)), range_op(first_created(&prefix))],
    };
    let resp = match server.txn(creds, txn).await {
        Ok(r) => r,
        Err(e) => {
            cleanup.disarm();
            return Err(e);
        }
    };
    let header = resp.header.unwrap_or_default();
    let ranges: Vec<_> = resp
        .responses
        .into_iter()
        .filter_map(|r| match r.response {
            Some(OpResponse::ResponseRange(r)) => Some(r),
            _ => None,
        })
        .collect();
    let my_rev = if resp.succeeded {
        header.revision
    } else {
        ranges
            .first()
            .and_then(|r| r.kvs.first())
            .map_or(header.revision, |kv| kv.create_revision)
    };
    let owner = ranges.last().and_then(|r| r.kvs.first());
    if owner.is_none_or(|kv| kv.create_revision == my_rev) {
        cleanup.disarm();
        return Ok(Held { header, key });
    }
    cleanup.set(&key, my_rev);
    let waited = match wait_deletes(server, creds, &prefix, my_rev - 1).await {
        Ok(_) => range(server, creds, one_key(&key)).await,
        Err(e) => Err(e),
    };
    let got = match waited {
        Ok(got) => got,
        Err(e) => {
            // As Go's Lock: the key goes before the error is answered.
            cleanup.run_now().await;
            return Err(e);
        }
    };
    cleanup.disarm();
    if got.kvs.is_empty() {
        return Err(EtcdError::SessionExpired);
    }
    Ok(Held {
        header: read_header(server, got.header),
        key,
    })
}

/// Releases a lock: deletes `key`. Answers the deletion's header.
/// Errors: those of DeleteRange.
pub async fn unlock(
    server: &EtcdServer,
    creds: &Credentials,
    key: Vec<u8>,
) -> Result<ResponseHeader, EtcdError> {
    let r = DeleteRangeRequest {
        key,
        ..Default::default()
    };
    Ok(server
        .delete_range(creds, r)
        .await?
        .header
        .unwrap_or_default())
}

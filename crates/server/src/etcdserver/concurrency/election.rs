//! v3election's calls (etcd's `v3election/election.go` on clientv3's
//! `concurrency.Election`): the leader of election `name` is the owner of
//! the oldest key under `name/`, and its value is the leader's
//! proclamation; a campaigner adds `name/<lease hex>` and waits for every
//! older key to go.

use std::sync::Arc;

use api::etcdserverpb::response_op::Response as OpResponse;
use api::etcdserverpb::{DeleteRangeRequest, RequestOp, ResponseHeader, TxnRequest};
use api::mvccpb::event::EventType;
use api::mvccpb::KeyValue;
use api::v3electionpb::{LeaderKey, LeaderResponse};
use storage::mvcc::Delivery;
use tokio::sync::mpsc;

use super::{
    created_at, first_created, member_key, one_key, prefix_end, prefix_of, put_op, range, range_op,
    read_header, session_lease, wait_deletes, Cleanup, HubWatch,
};
use crate::etcdserver::v3server::Credentials;
use crate::etcdserver::EtcdServer;
use crate::rpctypes::EtcdError;

/// Leader changes queued for one Observe before it waits for its client.
const OBSERVE_QUEUE: usize = 16;

/// Campaigns in election `name` with `value` for `lease` (a new lease of
/// 60 s when 0, not kept alive); answers once the caller leads, with the
/// header of its first write and its leader key. A lease campaigning
/// again keeps its key and proclaims the new value. Errors: those of the
/// KV calls, `ElectionNotLeader` when its key changed hands meanwhile.
pub async fn campaign(
    server: &Arc<EtcdServer>,
    creds: &Credentials,
    name: &[u8],
    lease: i64,
    value: &[u8],
) -> Result<(ResponseHeader, LeaderKey), EtcdError> {
    let lease = session_lease(server, creds, lease).await?;
    let prefix = prefix_of(name);
    let key = member_key(&prefix, lease);
    let mut cleanup = Cleanup::before_write(server, creds, &key);
    let txn = TxnRequest {
        compare: vec![created_at(&key, 0)],
        success: vec![put_op(&key, value, lease)],
        failure: vec![range_op(one_key(&key))],
    };
    let resp = match server.txn(creds, txn).await {
        Ok(r) => r,
        Err(e) => {
            cleanup.disarm();
            return Err(e);
        }
    };
    let header = resp.header.unwrap_or_default();
    let mut rev = header.revision;
    if !resp.succeeded {
        let kv = resp.responses.into_iter().find_map(|r| match r.response {
            Some(OpResponse::ResponseRange(r)) => r.kvs.into_iter().next(),
            _ => None,
        });
        if let Some(kv) = kv {
            rev = kv.create_revision;
            cleanup.set(&key, rev);
            if kv.value != value {
                if let Err(e) = proclaim(server, creds, &key, rev, lease, value).await {
                    // As Go's Campaign: resign before answering.
                    cleanup.run_now().await;
                    return Err(e);
                }
            }
        }
    }
    cleanup.set(&key, rev);
    if let Err(e) = wait_deletes(server, creds, &prefix, rev - 1).await {
        // As Go's Campaign: only a campaign given up resigns.
        cleanup.disarm();
        return Err(e);
    }
    cleanup.disarm();
    let leader = LeaderKey {
        name: name.to_vec(),
        key,
        rev,
        lease,
    };
    Ok((header, leader))
}

/// Replaces the value of leader key `key` (created at `rev`, on `lease`)
/// while it still stands; answers the write's header. Errors:
/// `ElectionNotLeader` when the key is gone or was made again, those of
/// Txn.
pub async fn proclaim(
    server: &EtcdServer,
    creds: &Credentials,
    key: &[u8],
    rev: i64,
    lease: i64,
    value: &[u8],
) -> Result<ResponseHeader, EtcdError> {
    let lease = session_lease(server, creds, lease).await?;
    let txn = TxnRequest {
        compare: vec![created_at(key, rev)],
        success: vec![put_op(key, value, lease)],
        failure: Vec::new(),
    };
    let resp = server.txn(creds, txn).await?;
    if !resp.succeeded {
        return Err(EtcdError::ElectionNotLeader);
    }
    Ok(resp.header.unwrap_or_default())
}

/// Deletes leader key `key` if it was created at `rev`; answers the
/// header whether or not it stood. Errors: those of Txn (and of a lease
/// grant when `lease` is 0, as Go's session).
pub async fn resign(
    server: &EtcdServer,
    creds: &Credentials,
    key: &[u8],
    rev: i64,
    lease: i64,
) -> Result<ResponseHeader, EtcdError> {
    session_lease(server, creds, lease).await?;
    let delete = RequestOp {
        request: Some(api::etcdserverpb::request_op::Request::RequestDeleteRange(
            DeleteRangeRequest {
                key: key.to_vec(),
                ..Default::default()
            },
        )),
    };
    let txn = TxnRequest {
        compare: vec![created_at(key, rev)],
        success: vec![delete],
        failure: Vec::new(),
    };
    Ok(server.txn(creds, txn).await?.header.unwrap_or_default())
}

/// The current leader of election `name`: the header and its key.
/// Errors: `ElectionNoLeader`, those of Range.
pub async fn leader(
    server: &EtcdServer,
    creds: &Credentials,
    name: &[u8],
) -> Result<LeaderResponse, EtcdError> {
    let resp = range(server, creds, first_created(&prefix_of(name))).await?;
    let kv = resp
        .kvs
        .into_iter()
        .next()
        .ok_or(EtcdError::ElectionNoLeader)?;
    Ok(LeaderResponse {
        header: Some(read_header(server, resp.header)),
        kv: Some(kv),
    })
}

/// Every leader of election `name` from now on, in order: the current
/// one (or the first to come), each proclamation of it, then the next
/// leader once its key is gone (Go's `Election.Observe`). As etcd's
/// service, the stream just ends when a read fails or the history a
/// watch needs was compacted, and when the receiver is dropped.
pub fn observe(
    server: &Arc<EtcdServer>,
    creds: &Credentials,
    name: &[u8],
) -> mpsc::Receiver<LeaderResponse> {
    let (tx, rx) = mpsc::channel(OBSERVE_QUEUE);
    let (server, creds, prefix) = (server.clone(), creds.clone(), prefix_of(name));
    tokio::spawn(async move {
        tokio::select! {
            _ = tx.closed() => {}
            _ = observe_loop(&server, &creds, &prefix, &tx) => {}
        }
    });
    rx
}

/// The loop behind [`observe`]; returns when the stream is to end.
async fn observe_loop(
    server: &Arc<EtcdServer>,
    creds: &Credentials,
    prefix: &[u8],
    tx: &mpsc::Sender<LeaderResponse>,
) {
    loop {
        let Ok(resp) = range(server, creds, first_created(prefix)).await else {
            return;
        };
        let mut header = read_header(server, resp.header);
        let kv = match resp.kvs.into_iter().next() {
            Some(kv) => kv,
            None => {
                let Some((h, kv)) = first_put(server, prefix, header.revision).await else {
                    return;
                };
                header = h;
                kv
            }
        };
        let key = kv.key.clone();
        let from = header.revision + 1;
        if send(tx, header, kv).await.is_err() {
            return;
        }
        let mut w = HubWatch::new(server, key, Vec::new(), from);
        'key: loop {
            let Some(Delivery::Events { events, revision }) = w.next().await else {
                // Compacted away: etcd's stream ends here too.
                return;
            };
            for ev in events.into_vec() {
                if ev.r#type == EventType::Delete as i32 {
                    break 'key;
                }
                let kv = ev.kv.unwrap_or_default();
                if send(tx, server.header(revision), kv).await.is_err() {
                    return;
                }
            }
        }
    }
}

/// The first key put under `prefix` from revision `from` on, with a
/// header at its revision; `None` when the watch's history was compacted.
async fn first_put(
    server: &Arc<EtcdServer>,
    prefix: &[u8],
    from: i64,
) -> Option<(ResponseHeader, KeyValue)> {
    let mut w = HubWatch::new(server, prefix.to_vec(), prefix_end(prefix), from);
    while let Some(Delivery::Events { events, .. }) = w.next().await {
        let put = events
            .into_vec()
            .into_iter()
            .find(|e| e.r#type == EventType::Put as i32);
        if let Some(kv) = put.and_then(|e| e.kv) {
            return Some((server.header(kv.mod_revision), kv));
        }
    }
    None
}

async fn send(
    tx: &mpsc::Sender<LeaderResponse>,
    header: ResponseHeader,
    kv: KeyValue,
) -> Result<(), ()> {
    let r = LeaderResponse {
        header: Some(header),
        kv: Some(kv),
    };
    tx.send(r).await.map_err(|_| ())
}

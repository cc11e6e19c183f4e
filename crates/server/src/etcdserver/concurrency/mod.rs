//! etcd's lock and election recipes (Go clientv3's `concurrency` package,
//! which etcd's v3lock and v3election services run on an in-process
//! client), on this server's API layer. Every step is the KV call such a
//! client makes, made as the caller (its [`Credentials`]), so auth applies
//! as to the caller's own calls; the keys are those of Go's
//! `concurrency.Mutex` and `concurrency.Election` (`<name>/<lease id in
//! hex>`, ordered by create revision), so a client running the recipe on
//! plain KV and one calling these services exclude each other. Waiting
//! is a watcher on the store's watch hub, never polling.
//!
//! A call given up by its client (its future dropped) removes the key it
//! made while waiting, as Go's recipes do when their context ends.

pub mod election;
pub mod lock;

use std::sync::Arc;

use api::etcdserverpb::compare::{CompareResult, CompareTarget, TargetUnion};
use api::etcdserverpb::range_request::{SortOrder, SortTarget};
use api::etcdserverpb::request_op::Request as Op;
use api::etcdserverpb::{
    Compare, DeleteRangeRequest, LeaseGrantRequest, PutRequest, RangeRequest, RangeResponse,
    RequestOp, ResponseHeader, TxnRequest,
};
use api::mvccpb::event::EventType;
use storage::mvcc::{Delivery, WatchSpec};
use tokio::sync::mpsc;

use super::v3server::Credentials;
use super::EtcdServer;
use crate::rpctypes::EtcdError;

/// TTL in seconds of the lease a lock or campaign gets when it names
/// none (clientv3's `defaultSessionTTL`); it is not kept alive.
const SESSION_TTL: i64 = 60;
/// Deliveries queued for one waiting call before its watcher falls back
/// to the store's history.
const WATCH_QUEUE: usize = 16;

/// The lease a recipe's key is attached to: `lease`, or a new one of
/// [`SESSION_TTL`] when it is 0 (clientv3's `NewSession`). Errors: those
/// of `LeaseGrant`.
async fn session_lease(
    server: &EtcdServer,
    creds: &Credentials,
    lease: i64,
) -> Result<i64, EtcdError> {
    if lease != 0 {
        return Ok(lease);
    }
    let r = LeaseGrantRequest {
        ttl: SESSION_TTL,
        id: 0,
    };
    Ok(server.lease_grant(creds, r).await?.id)
}

/// `prefix` followed by `lease` in lowercase hex as Go's `%x` writes an
/// int64 (a minus sign before a negative one).
fn member_key(prefix: &[u8], lease: i64) -> Vec<u8> {
    let hex = if lease < 0 {
        format!("-{:x}", lease.unsigned_abs())
    } else {
        format!("{lease:x}")
    };
    [prefix, hex.as_bytes()].concat()
}

/// `name` followed by `/`: the prefix of a lock's or election's keys.
fn prefix_of(name: &[u8]) -> Vec<u8> {
    [name, b"/"].concat()
}

/// The end of the range of keys under `prefix` (clientv3's
/// `GetPrefixRangeEnd`).
fn prefix_end(prefix: &[u8]) -> Vec<u8> {
    let mut end = prefix.to_vec();
    while let Some(last) = end.pop() {
        if last < 0xff {
            end.push(last + 1);
            return end;
        }
    }
    vec![0]
}

/// Attempts of a read refused for want of a leader (clientv3's
/// `defaultUnaryMaxRetries`), [`RETRY_WAIT`] apart.
const READ_ATTEMPTS: usize = 100;
/// Wait between attempts (clientv3's `defaultBackoffWaitBetween`).
const RETRY_WAIT: std::time::Duration = std::time::Duration::from_millis(25);

/// A Range as the in-process client of etcd's services makes it: a read
/// refused with an Unavailable error (no leader, leader changed, request
/// timed out) is made again, as clientv3's retry interceptor repeats a
/// repeatable call, so a wait outlives a leader election. Errors: the
/// last attempt's.
async fn range(
    server: &EtcdServer,
    creds: &Credentials,
    r: RangeRequest,
) -> Result<RangeResponse, EtcdError> {
    let mut attempt = 1;
    loop {
        match server.range(creds, r.clone()).await {
            Err(e) if e.code() == tonic::Code::Unavailable && attempt < READ_ATTEMPTS => {
                attempt += 1;
                tokio::time::sleep(RETRY_WAIT).await;
            }
            done => return done,
        }
    }
}

/// The whole header of a read that answered `h` (a read's answer
/// carries only its revision until a service completes it).
fn read_header(server: &EtcdServer, h: Option<ResponseHeader>) -> ResponseHeader {
    server.header(h.map_or(0, |h| h.revision))
}

/// The key under `prefix` created first (clientv3's `WithFirstCreate`).
fn first_created(prefix: &[u8]) -> RangeRequest {
    RangeRequest {
        key: prefix.to_vec(),
        range_end: prefix_end(prefix),
        limit: 1,
        sort_order: SortOrder::Ascend as i32,
        sort_target: SortTarget::Create as i32,
        ..Default::default()
    }
}

/// `Compare` of `key`'s create revision with `rev` for equality.
fn created_at(key: &[u8], rev: i64) -> Compare {
    Compare {
        result: CompareResult::Equal as i32,
        target: CompareTarget::Create as i32,
        key: key.to_vec(),
        target_union: Some(TargetUnion::CreateRevision(rev)),
        ..Default::default()
    }
}

fn put_op(key: &[u8], value: &[u8], lease: i64) -> RequestOp {
    RequestOp {
        request: Some(Op::RequestPut(PutRequest {
            key: key.to_vec(),
            value: value.to_vec(),
            lease,
            ..Default::default()
        })),
    }
}

fn range_op(r: RangeRequest) -> RequestOp {
    RequestOp {
        request: Some(Op::RequestRange(r)),
    }
}

fn one_key(key: &[u8]) -> RangeRequest {
    RangeRequest {
        key: key.to_vec(),
        ..Default::default()
    }
}

/// Waits until no key under `prefix` created at or before `max_create_rev`
/// is left (clientv3's `waitDeletes`): reads the newest such key, waits
/// for its deletion, again. Answers the header of the read that found
/// none. Errors: those of Range.
async fn wait_deletes(
    server: &Arc<EtcdServer>,
    creds: &Credentials,
    prefix: &[u8],
    max_create_rev: i64,
) -> Result<ResponseHeader, EtcdError> {
    loop {
        let r = RangeRequest {
            key: prefix.to_vec(),
            range_end: prefix_end(prefix),
            limit: 1,
            sort_order: SortOrder::Descend as i32,
            sort_target: SortTarget::Create as i32,
            max_create_revision: max_create_rev,
            ..Default::default()
        };
        let resp = range(server, creds, r).await?;
        let header = read_header(server, resp.header);
        let Some(kv) = resp.kvs.into_iter().next() else {
            return Ok(header);
        };
        let mut w = HubWatch::new(server, kv.key, Vec::new(), header.revision);
        w.deleted().await;
    }
}

/// A watcher on the store's watch hub for one waiting call, removed when
/// dropped.
struct HubWatch {
    server: Arc<EtcdServer>,
    id: u64,
    rx: mpsc::Receiver<Delivery>,
}

impl HubWatch {
    /// Watches `[key, range_end)` from revision `from` on (a watcher that
    /// starts in the past is caught up from history at once).
    fn new(server: &Arc<EtcdServer>, key: Vec<u8>, range_end: Vec<u8>, from: i64) -> HubWatch {
        let (tx, rx) = mpsc::channel(WATCH_QUEUE);
        let spec = WatchSpec {
            key,
            range_end,
            no_put: false,
            no_delete: false,
            progress_notify: false,
        };
        let sink = Box::new(move |d: Delivery| match d {
            Delivery::Progress { .. } => true,
            d => tx.try_send(d).is_ok(),
        });
        let store = &server.store;
        let id = store
            .watchers()
            .watch(spec, from, || store.current_revision(), sink);
        if !store.watchers().all_synced() {
            let s = server.clone();
            tokio::task::spawn_blocking(move || s.store.sync_watchers());
        }
        HubWatch {
            server: server.clone(),
            id,
            rx,
        }
    }

    /// The next delivery: events, or `None` once the watcher's history
    /// was compacted away (it is then gone).
    async fn next(&mut self) -> Option<Delivery> {
        match self.rx.recv().await {
            Some(Delivery::Compacted { .. }) | None => None,
            d => d,
        }
    }

    /// Returns once a DELETE event came, or the watcher's history was
    /// compacted (the caller reads again).
    async fn deleted(&mut self) {
        while let Some(Delivery::Events { events, .. }) = self.next().await {
            if events.iter().any(|e| e.r#type == EventType::Delete as i32) {
                return;
            }
        }
    }
}

impl Drop for HubWatch {
    fn drop(&mut self) {
        self.server.store.watchers().cancel(self.id);
    }
}

/// A write made if the call is given up before [`Cleanup::disarm`]: the
/// removal of the key the call made while it waits. On an error the call
/// makes it at once with [`Cleanup::run_now`], before answering, so a
/// retry cannot race it.
struct Cleanup {
    server: Arc<EtcdServer>,
    creds: Credentials,
    undo: Option<TxnRequest>,
}

impl Cleanup {
    /// Before the call's first write: on drop, deletes `key` only if it
    /// is created after now (by this call), never a key the same lease
    /// already held.
    fn before_write(server: &Arc<EtcdServer>, creds: &Credentials, key: &[u8]) -> Cleanup {
        let newer = Compare {
            result: CompareResult::Greater as i32,
            ..created_at(key, server.store.current_revision())
        };
        Cleanup {
            server: server.clone(),
            creds: creds.clone(),
            undo: Some(Self::delete_if(key, newer)),
        }
    }

    /// While the call waits: on drop, deletes `key` if its create
    /// revision is still `rev` (Go's Unlock and Resign when a wait is
    /// given up).
    fn set(&mut self, key: &[u8], rev: i64) {
        self.undo = Some(Self::delete_if(key, created_at(key, rev)));
    }

    fn delete_if(key: &[u8], compare: Compare) -> TxnRequest {
        let delete = RequestOp {
            request: Some(Op::RequestDeleteRange(DeleteRangeRequest {
                key: key.to_vec(),
                ..Default::default()
            })),
        };
        TxnRequest {
            compare: vec![compare],
            success: vec![delete],
            failure: Vec::new(),
        }
    }

    fn disarm(&mut self) {
        self.undo = None;
    }

    /// Makes the removal now (a call that failed), and waits for it.
    async fn run_now(&mut self) {
        if let Some(txn) = self.undo.take() {
            if let Err(e) = self.server.txn(&self.creds, txn).await {
                tracing::warn!(error = %e, "failed to remove the key of a failed call");
            }
        }
    }
}

impl Drop for Cleanup {
    fn drop(&mut self) {
        if let Some(txn) = self.undo.take() {
            let (server, creds) = (self.server.clone(), self.creds.clone());
            tokio::spawn(async move {
                if let Err(e) = server.txn(&creds, txn).await {
                    tracing::warn!(error = %e, "failed to remove the key of a call given up");
                }
            });
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn member_keys_are_go_hex() {
        assert_eq!(
            member_key(b"l/", 0x694d_77aa_9e38_260f),
            b"l/694d77aa9e38260f"
        );
        assert_eq!(member_key(b"l/", -26), b"l/-1a");
    }

    #[test]
    fn prefix_ends_match_clientv3() {
        assert_eq!(prefix_end(b"a/"), b"a0");
        assert_eq!(prefix_end(b"\xff\xff"), b"\0");
    }
}

//! Go clientv3's `concurrency` package on plain KV: a [`Session`] (a lease
//! kept alive), a [`Mutex`] and an [`Election`] with the same keys
//! (`<name>/<lease id in hex>`), the same transactions and the same order
//! (by create revision), so they exclude and follow Go clients, and
//! etcd's v3lock and v3election services, on the same names. Waiting is
//! a watch on the key ahead, never polling. `etcdctl lock` and `etcdctl
//! elect` run on these, as Go's etcdctl runs on Go's.

use std::sync::atomic::{AtomicI64, Ordering};
use std::time::Duration;

use api::etcdserverpb::compare::{CompareResult, CompareTarget, TargetUnion};
use api::etcdserverpb::range_request::{SortOrder, SortTarget};
use api::etcdserverpb::request_op::Request as Op;
use api::etcdserverpb::response_op::Response as OpResponse;
use api::etcdserverpb::watch_request::RequestUnion;
use api::etcdserverpb::{
    Compare, DeleteRangeRequest, LeaseGrantRequest, LeaseKeepAliveRequest, PutRequest,
    RangeRequest, RangeResponse, RequestOp, ResponseHeader, TxnRequest, TxnResponse,
    WatchCreateRequest, WatchRequest, WatchResponse,
};
use api::mvccpb::event::EventType;
use tokio::sync::{mpsc, watch};
use tokio::time::Instant;
use tokio_stream::wrappers::ReceiverStream;
use tonic::Streaming;

use crate::{prefix_end, status_text, Client};

/// What a recipe can fail with; the texts are Go's.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A call the server refused or that did not reach it (clientv3's
    /// text for it, as [`status_text`]).
    #[error("{}", status_text(.0))]
    Rpc(tonic::Status),
    /// The lock key was gone once the lock was reached: its lease expired
    /// (`concurrency.ErrSessionExpired`).
    #[error("mutex: session is expired")]
    SessionExpired,
    /// Proclaim by a campaigner that does not lead
    /// (`ErrElectionNotLeader`).
    #[error("election: not leader")]
    NotLeader,
    /// Leader with no candidate (`ErrElectionNoLeader`).
    #[error("election: no leader")]
    NoLeader,
    /// The history a wait needed was compacted (`rpctypes.ErrCompacted`).
    #[error("etcdserver: mvcc: required revision has been compacted")]
    Compacted,
    /// The watch a wait ran on ended.
    #[error("lost watcher waiting for delete")]
    LostWatcher,
}

impl From<tonic::Status> for Error {
    fn from(s: tonic::Status) -> Error {
        Error::Rpc(s)
    }
}

/// A lease granted for this client and kept alive (renewed every third of
/// its TTL) until the session is dropped, the lease is gone, or a TTL
/// passes without a renewal answered (clientv3's `concurrency.Session`).
/// Dropping it stops the renewals and leaves the lease to expire, as Go's
/// etcdctl leaves its sessions.
pub struct Session {
    lease: i64,
    done: watch::Receiver<bool>,
    renewals: tokio::task::JoinHandle<()>,
}

impl Session {
    /// Grants a lease of `ttl` seconds and starts renewing it. Error: the
    /// grant's.
    pub async fn new(client: &Client, ttl: i64) -> Result<Session, Error> {
        let grant = client
            .lease()
            .lease_grant(LeaseGrantRequest { ttl, id: 0 })
            .await?
            .into_inner();
        let (tx, done) = watch::channel(false);
        let renewals = tokio::spawn(keep_alive(client.clone(), grant.id, grant.ttl, tx));
        Ok(Session {
            lease: grant.id,
            done,
            renewals,
        })
    }

    /// The session's lease id.
    pub fn lease(&self) -> i64 {
        self.lease
    }

    /// Resolves once the lease is no longer kept alive: revoked, expired,
    /// or not renewed within its TTL.
    pub async fn done(&self) {
        let mut done = self.done.clone();
        let _ = done.wait_for(|d| *d).await;
    }
}

impl Drop for Session {
    fn drop(&mut self) {
        self.renewals.abort();
    }
}

/// Renews `lease` until it is gone or `ttl` seconds pass since the last
/// answered renewal, reopening the stream when it breaks (as clientv3's
/// lessor does), then says so on `done`.
async fn keep_alive(client: Client, lease: i64, ttl: i64, done: watch::Sender<bool>) {
    let ttl_of = |t: i64| Duration::from_secs(t.max(1) as u64);
    let mut deadline = Instant::now() + ttl_of(ttl);
    'streams: while Instant::now() < deadline {
        let (tx, rx) = mpsc::channel(1);
        let opened = tokio::time::timeout_at(
            deadline,
            client.lease().lease_keep_alive(ReceiverStream::new(rx)),
        )
        .await;
        let Ok(Ok(replies)) = opened else {
            tokio::time::sleep(Duration::from_millis(500)).await;
            continue;
        };
        let mut replies = replies.into_inner();
        loop {
            if tx.send(LeaseKeepAliveRequest { id: lease }).await.is_err() {
                continue 'streams;
            }
            match tokio::time::timeout_at(deadline, replies.message()).await {
                Ok(Ok(Some(r))) if r.ttl > 0 => {
                    deadline = Instant::now() + ttl_of(r.ttl);
                    let every = (ttl_of(r.ttl) / 3).max(Duration::from_millis(500));
                    tokio::time::sleep(every).await;
                }
                Ok(Ok(Some(_))) => break 'streams,
                Ok(_) => {
                    tokio::time::sleep(Duration::from_millis(500)).await;
                    continue 'streams;
                }
                Err(_) => break 'streams,
            }
        }
    }
    let _ = done.send(true);
}

/// The key of `lease` among `name`'s waiters: `<name>/<lease in hex>`, as
/// Go formats it with `%x`.
pub fn member_key(name: &[u8], lease: i64) -> Vec<u8> {
    let hex = if lease < 0 {
        format!("-{:x}", lease.unsigned_abs())
    } else {
        format!("{lease:x}")
    };
    [name, b"/", hex.as_bytes()].concat()
}

/// clientv3's `Mutex`: the lock `name` held by one session at a time, in
/// the order its waiters arrived (their keys' create revisions).
pub struct Mutex {
    client: Client,
    prefix: Vec<u8>,
    key: Vec<u8>,
    lease: i64,
    /// The create revision of our key once [`Mutex::lock`] made or found
    /// it (-1 before).
    my_rev: AtomicI64,
}

impl Mutex {
    /// The lock `name` for the session holding `lease`.
    pub fn new(client: &Client, name: &[u8], lease: i64) -> Mutex {
        let mut prefix = name.to_vec();
        prefix.push(b'/');
        Mutex {
            client: client.clone(),
            key: member_key(name, lease),
            prefix,
            lease,
            my_rev: AtomicI64::new(-1),
        }
    }

    /// The comparison that holds only while we hold the lock: our key
    /// still exists with the create revision it was taken with
    /// (clientv3's `IsOwner`). A Txn guarded by it writes nothing once
    /// the lock was lost, e.g. its lease expired while the holder paused.
    pub fn is_owner(&self) -> Compare {
        create_revision_is(&self.key, self.my_rev.load(Ordering::Relaxed))
    }

    /// The lock key, `<name>/<lease in hex>`.
    pub fn key(&self) -> &[u8] {
        &self.key
    }

    /// Takes the lock: puts the key if absent (one Txn, which also reads
    /// the holder), then waits until every key under the name created
    /// before it is gone. Answers the header of the call that found the
    /// lock held, whose revision is the lock's (etcdctl's
    /// `ETCD_LOCK_REV`). On an error the key is deleted; a caller that
    /// gives up on the future deletes it with [`Mutex::unlock`].
    /// Errors: the calls', [`Error::Compacted`], [`Error::SessionExpired`].
    pub async fn lock(&self) -> Result<ResponseHeader, Error> {
        let attempt = self.try_acquire().await?;
        self.my_rev.store(attempt.my_rev, Ordering::Relaxed);
        if attempt.owner_rev.is_none_or(|r| r == attempt.my_rev) {
            return Ok(attempt.header);
        }
        let waited = async {
            wait_deletes(&self.client, &self.prefix, attempt.my_rev - 1).await?;
            let got = get(&self.client, self.key.clone()).await?;
            Ok::<_, Error>(got)
        }
        .await;
        match waited {
            Ok(got) if got.kvs.is_empty() => Err(Error::SessionExpired),
            Ok(got) => Ok(got.header.unwrap_or_default()),
            Err(e) => {
                let _ = self.unlock().await;
                Err(e)
            }
        }
    }

    async fn try_acquire(&self) -> Result<Attempt, Error> {
        let put = Op::RequestPut(PutRequest {
            key: self.key.clone(),
            lease: self.lease,
            ..Default::default()
        });
        let txn = TxnRequest {
            compare: vec![create_revision_is(&self.key, 0)],
            success: vec![op(put), op(Op::RequestRange(first_created(&self.prefix)))],
            failure: vec![
                op(Op::RequestRange(RangeRequest {
                    key: self.key.clone(),
                    ..Default::default()
                })),
                op(Op::RequestRange(first_created(&self.prefix))),
            ],
        };
        let resp = self.client.kv().txn(txn).await?.into_inner();
        let header = resp.header.unwrap_or_default();
        let my_rev = if resp.succeeded {
            header.revision
        } else {
            range_of(&resp, 0)
                .and_then(|r| r.kvs.first())
                .map_or(0, |kv| kv.create_revision)
        };
        let owner_rev = range_of(&resp, 1)
            .and_then(|r| r.kvs.first())
            .map(|kv| kv.create_revision);
        Ok(Attempt {
            header,
            my_rev,
            owner_rev,
        })
    }

    /// Releases the lock (or gives up waiting): deletes the key. Error:
    /// the DeleteRange's.
    pub async fn unlock(&self) -> Result<(), Error> {
        let del = DeleteRangeRequest {
            key: self.key.clone(),
            ..Default::default()
        };
        self.client.kv().delete_range(del).await?;
        self.my_rev.store(-1, Ordering::Relaxed);
        Ok(())
    }
}

/// What `Mutex::try_acquire` learnt: the Txn's header, the create
/// revision of our key, and that of the oldest key under the name.
struct Attempt {
    header: ResponseHeader,
    my_rev: i64,
    owner_rev: Option<i64>,
}

/// clientv3's `Election`: candidates under `name/`, the leader the one
/// created first; its value is the leader's proclamation.
pub struct Election {
    client: Client,
    prefix: Vec<u8>,
    lease: i64,
    /// Our key and its create revision while we campaign or lead.
    leading: Option<(Vec<u8>, i64)>,
}

impl Election {
    /// The election `name` for the session holding `lease`.
    pub fn new(client: &Client, name: &[u8], lease: i64) -> Election {
        let mut prefix = name.to_vec();
        prefix.push(b'/');
        Election {
            client: client.clone(),
            prefix,
            lease,
            leading: None,
        }
    }

    /// Our candidate key while campaigning or leading.
    pub fn key(&self) -> Option<&[u8]> {
        self.leading.as_ref().map(|(k, _)| k.as_slice())
    }

    /// Becomes a candidate with `value` and waits until every candidate
    /// created before us is gone; answers the header of the candidacy's
    /// Txn. An existing candidacy of the session is reused (its value
    /// proclaimed anew when it differs). A caller that gives up on the
    /// future should [`Election::resign`]. Errors: the calls',
    /// [`Error::Compacted`].
    pub async fn campaign(&mut self, value: &[u8]) -> Result<ResponseHeader, Error> {
        let key = member_key(&self.prefix[..self.prefix.len() - 1], self.lease);
        let txn = TxnRequest {
            compare: vec![create_revision_is(&key, 0)],
            success: vec![op(Op::RequestPut(PutRequest {
                key: key.clone(),
                value: value.to_vec(),
                lease: self.lease,
                ..Default::default()
            }))],
            failure: vec![op(Op::RequestRange(RangeRequest {
                key: key.clone(),
                ..Default::default()
            }))],
        };
        let resp = self.client.kv().txn(txn).await?.into_inner();
        let header = resp.header.unwrap_or_default();
        let mut rev = header.revision;
        if !resp.succeeded {
            if let Some(kv) = range_of(&resp, 0).and_then(|r| r.kvs.first()) {
                rev = kv.create_revision;
                self.leading = Some((key.clone(), rev));
                if kv.value != value {
                    if let Err(e) = self.proclaim(value).await {
                        let _ = self.resign().await;
                        return Err(e);
                    }
                }
            }
        }
        self.leading = Some((key, rev));
        if let Err(e) = wait_deletes(&self.client, &self.prefix, rev - 1).await {
            self.leading = None;
            return Err(e);
        }
        Ok(header)
    }

    /// Replaces the leader's value, only while our key is still the one
    /// we campaigned with. Errors: [`Error::NotLeader`], the Txn's.
    pub async fn proclaim(&mut self, value: &[u8]) -> Result<ResponseHeader, Error> {
        let Some((key, rev)) = self.leading.clone() else {
            return Err(Error::NotLeader);
        };
        let txn = TxnRequest {
            compare: vec![create_revision_is(&key, rev)],
            success: vec![op(Op::RequestPut(PutRequest {
                key,
                value: value.to_vec(),
                lease: self.lease,
                ..Default::default()
            }))],
            failure: vec![],
        };
        let resp = self.client.kv().txn(txn).await?.into_inner();
        if !resp.succeeded {
            self.leading = None;
            return Err(Error::NotLeader);
        }
        Ok(resp.header.unwrap_or_default())
    }

    /// Gives up the candidacy or leadership: deletes our key if it is
    /// still the one we campaigned with. Nothing to do when not
    /// campaigning. Error: the Txn's.
    pub async fn resign(&mut self) -> Result<(), Error> {
        let Some((key, rev)) = self.leading.take() else {
            return Ok(());
        };
        let txn = TxnRequest {
            compare: vec![create_revision_is(&key, rev)],
            success: vec![op(Op::RequestDeleteRange(DeleteRangeRequest {
                key,
                ..Default::default()
            }))],
            failure: vec![],
        };
        self.client.kv().txn(txn).await?;
        Ok(())
    }

    /// The leader's key and value: the Range of the first created key
    /// under the name. Errors: [`Error::NoLeader`], the Range's.
    pub async fn leader(&self) -> Result<RangeResponse, Error> {
        let resp = range(&self.client, first_created(&self.prefix)).await?;
        if resp.kvs.is_empty() {
            return Err(Error::NoLeader);
        }
        Ok(resp)
    }

    /// Every leader in turn and each value it proclaims, as one-key Range
    /// answers (clientv3's `Observe`). The channel ends when a call
    /// fails or the watch is lost; dropping the receiver stops it.
    pub fn observe(&self) -> mpsc::Receiver<RangeResponse> {
        let (tx, rx) = mpsc::channel(16);
        tokio::spawn(observe(self.client.clone(), self.prefix.clone(), tx));
        rx
    }
}

/// The loop behind [`Election::observe`]: the current leader (or the
/// first put under the prefix when there is none), then its value changes
/// until its key is deleted, again.
async fn observe(client: Client, prefix: Vec<u8>, tx: mpsc::Sender<RangeResponse>) {
    loop {
        let Ok(mut resp) = range(&client, first_created(&prefix)).await else {
            return;
        };
        if resp.kvs.is_empty() {
            let from = resp.header.as_ref().map_or(0, |h| h.revision);
            let Ok((_keep, mut events)) =
                watch_from(&client, prefix.clone(), prefix_end(&prefix), from).await
            else {
                return;
            };
            'first: loop {
                let Ok(Some(w)) = events.message().await else {
                    return;
                };
                if w.canceled {
                    return;
                }
                for ev in w.events {
                    if ev.r#type() == EventType::Put {
                        let kv = ev.kv.unwrap_or_default();
                        let mut header = w.header.unwrap_or_default();
                        header.revision = kv.mod_revision;
                        resp.header = Some(header);
                        resp.kvs = vec![kv];
                        resp.count = 1;
                        break 'first;
                    }
                }
            }
        }
        resp.kvs.truncate(1);
        let key = resp.kvs[0].key.clone();
        let from = resp.header.as_ref().map_or(0, |h| h.revision) + 1;
        if tx.send(resp.clone()).await.is_err() {
            return;
        }
        let Ok((_keep, mut events)) = watch_from(&client, key, Vec::new(), from).await else {
            return;
        };
        'key: loop {
            let Ok(Some(w)) = events.message().await else {
                return;
            };
            if w.canceled {
                return;
            }
            for ev in w.events {
                if ev.r#type() == EventType::Delete {
                    break 'key;
                }
                resp.header = w.header;
                resp.kvs = vec![ev.kv.unwrap_or_default()];
                if tx.send(resp.clone()).await.is_err() {
                    return;
                }
            }
        }
    }
}

/// Waits until no key under `prefix` has a create revision at most
/// `max_create_rev` (clientv3's `waitDeletes`): reads the newest such key,
/// watches it until it is deleted, and reads again. Answers the last
/// read's header.
async fn wait_deletes(
    client: &Client,
    prefix: &[u8],
    max_create_rev: i64,
) -> Result<ResponseHeader, Error> {
    loop {
        let req = RangeRequest {
            key: prefix.to_vec(),
            range_end: prefix_end(prefix),
            limit: 1,
            sort_order: SortOrder::Descend as i32,
            sort_target: SortTarget::Create as i32,
            max_create_revision: max_create_rev,
            ..Default::default()
        };
        let resp = range(client, req).await?;
        let header = resp.header.unwrap_or_default();
        let Some(last) = resp.kvs.into_iter().next() else {
            return Ok(header);
        };
        wait_delete(client, last.key, header.revision).await?;
    }
}

/// Waits for the deletion of `key`, watching from revision `from`.
async fn wait_delete(client: &Client, key: Vec<u8>, from: i64) -> Result<(), Error> {
    let (_keep, mut events) = watch_from(client, key, Vec::new(), from).await?;
    loop {
        let Some(w) = events.message().await? else {
            return Err(Error::LostWatcher);
        };
        if w.canceled {
            return Err(if w.compact_revision > 0 {
                Error::Compacted
            } else {
                Error::LostWatcher
            });
        }
        if w.events.iter().any(|e| e.r#type() == EventType::Delete) {
            return Ok(());
        }
    }
}

/// A watch of `[key, range_end)` from revision `from`: the request side
/// (kept open while the answers are read) and the answers.
async fn watch_from(
    client: &Client,
    key: Vec<u8>,
    range_end: Vec<u8>,
    from: i64,
) -> Result<(mpsc::Sender<WatchRequest>, Streaming<WatchResponse>), Error> {
    let (tx, rx) = mpsc::channel(1);
    let create = WatchCreateRequest {
        key,
        range_end,
        start_revision: from,
        ..Default::default()
    };
    tx.send(WatchRequest {
        request_union: Some(RequestUnion::CreateRequest(create)),
    })
    .await
    .map_err(|_| Error::LostWatcher)?;
    let events = client.watch().watch(ReceiverStream::new(rx)).await?;
    Ok((tx, events.into_inner()))
}

/// A Range of the single key under `prefix` created first
/// (clientv3's `WithFirstCreate`).
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

/// The Range of `key` alone.
async fn get(client: &Client, key: Vec<u8>) -> Result<RangeResponse, Error> {
    let req = RangeRequest {
        key,
        ..Default::default()
    };
    range(client, req).await
}

/// A Range, made again when refused with Unavailable (no leader, leader
/// changed, request timed out), up to 100 times 25 ms apart, as
/// clientv3's retry interceptor repeats a repeatable call; so a wait
/// outlives a leader election. Error: the last attempt's.
async fn range(client: &Client, req: RangeRequest) -> Result<RangeResponse, Error> {
    let mut attempt = 1;
    loop {
        match client.kv().range(req.clone()).await {
            Err(s) if s.code() == tonic::Code::Unavailable && attempt < 100 => {
                attempt += 1;
                tokio::time::sleep(Duration::from_millis(25)).await;
            }
            done => return Ok(done?.into_inner()),
        }
    }
}

/// `CreateRevision(key) = rev`.
fn create_revision_is(key: &[u8], rev: i64) -> Compare {
    Compare {
        result: CompareResult::Equal as i32,
        target: CompareTarget::Create as i32,
        key: key.to_vec(),
        target_union: Some(TargetUnion::CreateRevision(rev)),
        ..Default::default()
    }
}

fn op(request: Op) -> RequestOp {
    RequestOp {
        request: Some(request),
    }
}

/// The Range answer at `i` of a Txn's responses.
fn range_of(resp: &TxnResponse, i: usize) -> Option<&RangeResponse> {
    match resp.responses.get(i)?.response.as_ref()? {
        OpResponse::ResponseRange(r) => Some(r),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn member_keys_are_gos() {
        assert_eq!(
            member_key(b"job", 0x694d77aa5b1d0c4f),
            b"job/694d77aa5b1d0c4f"
        );
        assert_eq!(member_key(b"job", 10), b"job/a");
        assert_eq!(member_key(b"job", -26), b"job/-1a");
    }
}

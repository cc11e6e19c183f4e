//! The Watch service (etcd `etcdserverpb.Watch`): one bidirectional stream
//! per client, carrying any number of watches.
//!
//! Each stream has a request loop (create, cancel, progress) and one ordered
//! queue of items to send: control responses and the deliveries of the
//! stream's watchers. Their sinks `try_send` into it within a budget of
//! [`STREAM_BYTES`] queued bytes, so a slow or stuck client makes its
//! watchers fall back to history (they catch up from the store when it
//! reads again) instead of blocking writes or growing memory. The
//! response stream turns items into `WatchResponse`s only as the client's
//! HTTP/2 flow control lets gRPC take them, adding `prev_kv` where asked
//! (read off the async workers). A created response is queued before its
//! watcher exists, so it always comes first.
//! gRPC clients reach the stream through [`super::watch_grpc`], which
//! encodes the same items itself; this generated service serves the JSON
//! gateway.
//! While auth is on, a watch needs READ on its range, checked at its
//! creation with the token the stream was opened with; a refused one is
//! answered created and canceled, as etcd does.

use std::collections::{HashMap, VecDeque};
use std::pin::Pin;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use api::etcdserverpb::watch_create_request::FilterType;
use api::etcdserverpb::watch_request::RequestUnion;
use api::etcdserverpb::watch_server::Watch;
use api::etcdserverpb::{WatchCreateRequest, WatchRequest, WatchResponse};
use api::mvccpb::event::EventType;
use api::mvccpb::Event;
use futures::Stream;
use prost::Message;
use storage::mvcc::{Delivery, Events, RangeEnd, RangeOptions, WatchSpec};
use tokio::sync::mpsc;
use tonic::{Request, Response, Status, Streaming};

use crate::etcdserver::v3server::Credentials;
use crate::etcdserver::EtcdServer;
use crate::rpctypes::EtcdError;

/// Items queued per stream before its watchers fall back to history.
const ITEM_QUEUE: usize = 1024;
/// Bytes of events (keys and values, see [`delivery_bytes`]) queued per
/// stream before its watchers fall back to history. A delivery is always
/// taken by an empty queue, so one revision larger than this still goes.
pub const STREAM_BYTES: usize = 4 * 1024 * 1024;
/// What an event costs in the budget beyond its key and value bytes.
const EVENT_OVERHEAD_BYTES: usize = 64;
/// How often watchers that are behind are caught up from the store.
const SYNC_INTERVAL: Duration = Duration::from_millis(100);
/// The watch id of responses not about one watch (etcd's `InvalidWatchID`).
const NO_WATCH: i64 = -1;

/// What a stream sends, in order.
pub(super) enum Item {
    Created {
        watch_id: i64,
        revision: i64,
    },
    Refused {
        watch_id: i64,
        reason: String,
    },
    Canceled {
        watch_id: i64,
    },
    Progress {
        revision: i64,
    },
    Delivery {
        watch_id: i64,
        prev_kv: bool,
        fragment: bool,
        delivery: Delivery,
    },
}

/// The Watch service on a member.
pub struct WatchService {
    server: Arc<EtcdServer>,
}

impl WatchService {
    /// The service for `server`.
    pub fn new(server: Arc<EtcdServer>) -> Self {
        WatchService { server }
    }
}

/// Catches up, every [`SYNC_INTERVAL`], the watchers that are behind the
/// store (they started in the past, or their client was slow).
/// Also sends progress notifications every
/// `--experimental-watch-progress-notify-interval`.
pub async fn sync_loop(server: Arc<EtcdServer>) {
    let mut tick = tokio::time::interval(SYNC_INTERVAL);
    let every = server.cfg.watch_progress_notify_interval;
    let mut next_progress = tokio::time::Instant::now() + every;
    loop {
        tick.tick().await;
        if tokio::time::Instant::now() >= next_progress {
            server
                .store
                .watchers()
                .progress_notify(|| server.store.current_revision());
            next_progress += every;
        }
        if !server.store.watchers().all_synced() {
            let s = server.clone();
            let _ = tokio::task::spawn_blocking(move || s.store.sync_watchers()).await;
        }
    }
}

#[tonic::async_trait]
impl Watch for WatchService {
    type WatchStream = Pin<Box<dyn Stream<Item = Result<WatchResponse, Status>> + Send>>;

    async fn watch(
        &self,
        req: Request<Streaming<WatchRequest>>,
    ) -> Result<Response<Self::WatchStream>, Status> {
        let creds = super::credentials(&req);
        let items = open(&self.server, creds, req.into_inner());
        Ok(Response::new(Box::pin(response_stream(
            self.server.clone(),
            items,
        ))))
    }
}

/// The receiving end of a stream's queue: its items in order, and the
/// bytes of the deliveries among them.
pub(super) struct Items {
    rx: mpsc::Receiver<(Item, usize)>,
    queued: Arc<AtomicUsize>,
}

impl Items {
    /// The next item, made ready to send (with its `prev_kv`s); `None`
    /// once the stream's watchers and request loop are gone.
    pub(super) async fn next(&mut self, server: &Arc<EtcdServer>) -> Option<Item> {
        let got = self.rx.recv().await?;
        Some(self.prepare(server, got).await)
    }

    /// [`Items::next`] if an item is queued, without waiting for one.
    pub(super) async fn try_next(&mut self, server: &Arc<EtcdServer>) -> Option<Item> {
        let got = self.rx.try_recv().ok()?;
        Some(self.prepare(server, got).await)
    }

    /// `item` made ready to send; its bytes leave the stream's budget.
    async fn prepare(&self, server: &Arc<EtcdServer>, (item, bytes): (Item, usize)) -> Item {
        let item = with_prev_kvs(server, item).await;
        self.queued.fetch_sub(bytes, Ordering::AcqRel);
        item
    }
}

/// Opens a watch stream whose requests are `input`, made with `creds`:
/// spawns its request loop and returns its queue of items to send.
pub(super) fn open(
    server: &Arc<EtcdServer>,
    creds: Credentials,
    input: Streaming<WatchRequest>,
) -> Items {
    let (tx, rx) = mpsc::channel(ITEM_QUEUE);
    let queue = Queue {
        tx,
        bytes: Arc::new(AtomicUsize::new(0)),
    };
    let queued = queue.bytes.clone();
    tokio::spawn(serve_requests(server.clone(), creds, input, queue));
    Items { rx, queued }
}

/// A stream's queue of items, with the bytes of the deliveries in it.
#[derive(Clone)]
struct Queue {
    tx: mpsc::Sender<(Item, usize)>,
    bytes: Arc<AtomicUsize>,
}

impl Queue {
    /// Queues a control response, waiting for room.
    async fn send(&self, item: Item) {
        let _ = self.tx.send((item, 0)).await;
    }

    /// Queues a delivery if the queue has room for it: fewer than
    /// [`ITEM_QUEUE`] items and, unless it is empty, [`STREAM_BYTES`] (an
    /// item of no bytes, a progress notification, needs no budget).
    /// Called under the watch hub's lock only.
    fn offer(&self, item: Item, bytes: usize) -> bool {
        let queued = self.bytes.load(Ordering::Acquire);
        if bytes > 0 && queued > 0 && queued + bytes > STREAM_BYTES {
            return false;
        }
        // Sinks run under the watch hub's lock, one at a time, so nothing
        // else adds between the check and the add.
        self.bytes.fetch_add(bytes, Ordering::AcqRel);
        if self.tx.try_send((item, bytes)).is_err() {
            self.bytes.fetch_sub(bytes, Ordering::AcqRel);
            return false;
        }
        true
    }
}

/// What a delivery costs in a stream's byte budget: its keys and values,
/// twice for a watcher that wants `prev_kv`, plus a fixed cost per event.
fn delivery_bytes(delivery: &Delivery, prev_kv: bool) -> usize {
    let Delivery::Events { events, .. } = delivery else {
        return 0;
    };
    events
        .iter()
        .map(|e| {
            let kv = e.kv.as_ref().map_or(0, |kv| kv.key.len() + kv.value.len());
            kv * (1 + usize::from(prev_kv)) + EVENT_OVERHEAD_BYTES
        })
        .sum()
}

/// The request loop of one stream; when the client goes (its answers
/// are dropped), its watchers go.
async fn serve_requests(
    server: Arc<EtcdServer>,
    creds: Credentials,
    mut input: Streaming<WatchRequest>,
    items: Queue,
) {
    // Client watch id -> hub id.
    let mut watches: HashMap<i64, u64> = HashMap::new();
    let mut next_auto = 0i64;
    while let Ok(Some(req)) = input.message().await {
        match req.request_union {
            Some(RequestUnion::CreateRequest(c)) => {
                if server
                    .check_read(&creds, &c.key, &c.range_end)
                    .await
                    .is_err()
                {
                    let reason = Status::from(EtcdError::PermissionDenied);
                    items
                        .send(Item::Refused {
                            watch_id: NO_WATCH,
                            reason: format!(
                                "rpc error: code = {:?} desc = {}",
                                reason.code(),
                                reason.message()
                            ),
                        })
                        .await;
                    continue;
                }
                let id = if c.watch_id != 0 {
                    c.watch_id
                } else {
                    while watches.contains_key(&next_auto) {
                        next_auto += 1;
                    }
                    next_auto
                };
                if watches.contains_key(&id) {
                    let reason = "mvcc: duplicate watch ID provided on the WatchStream".to_string();
                    items
                        .send(Item::Refused {
                            watch_id: id,
                            reason,
                        })
                        .await;
                    continue;
                }
                let hub_id = create(&server, c, id, &items).await;
                watches.insert(id, hub_id);
            }
            Some(RequestUnion::CancelRequest(c)) => {
                if let Some(hub_id) = watches.remove(&c.watch_id) {
                    server.store.watchers().cancel(hub_id);
                    items
                        .send(Item::Canceled {
                            watch_id: c.watch_id,
                        })
                        .await;
                }
            }
            Some(RequestUnion::ProgressRequest(_)) => {
                // Answered when every watch of the stream is complete up to
                // some revision; a stream still catching up gets none yet.
                // Queued under the hub's lock, in order with the events.
                let ids: Vec<u64> = watches.values().copied().collect();
                server.store.watchers().request_progress(
                    &ids,
                    || server.store.current_revision(),
                    |revision| {
                        items.offer(Item::Progress { revision }, 0);
                    },
                );
            }
            None => {}
        }
    }
    // A client that closed its side of the stream (as the gateway does
    // after the body's requests) still gets its watches' events, as in
    // etcd, whose receive loop ends without ending the stream: the
    // watches go when the client stops reading the answers.
    items.tx.closed().await;
    for hub_id in watches.into_values() {
        server.store.watchers().cancel(hub_id);
    }
}

/// Registers a watcher after queueing its created response; a watcher that
/// starts in the past is caught up at once.
async fn create(
    server: &Arc<EtcdServer>,
    c: WatchCreateRequest,
    watch_id: i64,
    items: &Queue,
) -> u64 {
    let store = &server.store;
    let current = store.current_revision();
    items
        .send(Item::Created {
            watch_id,
            revision: current,
        })
        .await;
    let spec = WatchSpec {
        key: c.key,
        range_end: c.range_end,
        no_put: c.filters.contains(&(FilterType::Noput as i32)),
        no_delete: c.filters.contains(&(FilterType::Nodelete as i32)),
        progress_notify: c.progress_notify,
    };
    let queue = items.clone();
    let (prev_kv, fragment) = (c.prev_kv, c.fragment);
    let sink = Box::new(move |delivery| {
        let bytes = delivery_bytes(&delivery, prev_kv);
        let item = Item::Delivery {
            watch_id,
            prev_kv,
            fragment,
            delivery,
        };
        queue.offer(item, bytes)
    });
    // From the revision the created response announced, or the one asked;
    // whatever the store got meanwhile comes from history.
    let next_rev = if c.start_revision <= 0 {
        current + 1
    } else {
        c.start_revision
    };
    let hub_id = store
        .watchers()
        .watch(spec, next_rev, || store.current_revision(), sink);
    if !store.watchers().all_synced() {
        let s = server.clone();
        tokio::task::spawn_blocking(move || s.store.sync_watchers());
    }
    hub_id
}

/// The responses for a stream's client, in order, made from its items as
/// gRPC takes them.
fn response_stream(
    server: Arc<EtcdServer>,
    items: Items,
) -> impl Stream<Item = Result<WatchResponse, Status>> + Send {
    let ready: VecDeque<WatchResponse> = VecDeque::new();
    futures::stream::unfold(
        (server, items, ready),
        |(server, mut items, mut ready)| async move {
            loop {
                if let Some(resp) = ready.pop_front() {
                    return Some((Ok(resp), (server, items, ready)));
                }
                let item = items.next(&server).await?;
                ready.extend(responses(&server, item));
            }
        },
    )
}

/// Adds `prev_kv` to a delivery's events when its watcher asked for them,
/// reading the store on a blocking thread.
async fn with_prev_kvs(server: &Arc<EtcdServer>, item: Item) -> Item {
    let Item::Delivery {
        watch_id,
        prev_kv: true,
        fragment,
        delivery: Delivery::Events { events, revision },
    } = item
    else {
        return item;
    };
    let s = server.clone();
    let events = tokio::task::spawn_blocking(move || {
        let mut events = events.into_vec();
        add_prev_kvs(&s, &mut events);
        Events::from(events)
    })
    .await
    .expect("reading prev_kv does not panic");
    Item::Delivery {
        watch_id,
        prev_kv: false,
        fragment,
        delivery: Delivery::Events { events, revision },
    }
}

/// The response(s) for one item: several only for a fragmented delivery.
pub(super) fn responses(server: &EtcdServer, item: Item) -> Vec<WatchResponse> {
    let current = server.store.current_revision();
    let resp = match item {
        Item::Created { watch_id, revision } => WatchResponse {
            header: Some(server.header(revision)),
            watch_id,
            created: true,
            ..Default::default()
        },
        Item::Refused { watch_id, reason } => WatchResponse {
            header: Some(server.header(current)),
            watch_id,
            created: true,
            canceled: true,
            cancel_reason: reason,
            ..Default::default()
        },
        Item::Canceled { watch_id } => WatchResponse {
            header: Some(server.header(current)),
            watch_id,
            canceled: true,
            ..Default::default()
        },
        Item::Progress { revision } => WatchResponse {
            header: Some(server.header(revision)),
            watch_id: NO_WATCH,
            ..Default::default()
        },
        Item::Delivery {
            watch_id,
            fragment,
            delivery,
            ..
        } => match delivery {
            Delivery::Events { events, revision } => {
                let resp = WatchResponse {
                    header: Some(server.header(revision)),
                    watch_id,
                    events: events.into_vec(),
                    ..Default::default()
                };
                if fragment {
                    // etcd's threshold: the request limit plus gRPC overhead.
                    let limit = server.cfg.max_request_bytes + super::GRPC_OVERHEAD_BYTES;
                    return fragments(resp, limit);
                }
                resp
            }
            Delivery::Progress { revision } => WatchResponse {
                header: Some(server.header(revision)),
                watch_id,
                ..Default::default()
            },
            // As etcd's sendLoop: a header of no revision, and no reason
            // (clients read the compaction from compact_revision).
            Delivery::Compacted { compact_revision } => WatchResponse {
                header: Some(server.header(0)),
                watch_id,
                compact_revision,
                canceled: true,
                ..Default::default()
            },
        },
    };
    vec![resp]
}

/// Splits a response larger than `limit` bytes (`--max-request-bytes` plus
/// 512 KiB, as in etcd) into responses of at most `limit` (or one event, if
/// a single event is larger), each but the last marked `fragment`, as etcd
/// does for watchers that asked for fragments.
fn fragments(resp: WatchResponse, limit: usize) -> Vec<WatchResponse> {
    if resp.encoded_len() < limit || resp.events.len() < 2 {
        return vec![resp];
    }
    let empty = WatchResponse {
        events: Vec::new(),
        fragment: true,
        ..resp.clone()
    };
    let mut out = Vec::new();
    let mut cur = empty.clone();
    for ev in resp.events {
        cur.events.push(ev);
        if cur.events.len() > 1 && cur.encoded_len() >= limit {
            let ev = cur.events.pop().expect("just pushed");
            out.push(std::mem::replace(&mut cur, empty.clone()));
            cur.events.push(ev);
        }
    }
    cur.fragment = false;
    out.push(cur);
    out
}

/// Sets each event's `prev_kv`: the key as it was just before the event's
/// revision, if it existed then and is not compacted away.
fn add_prev_kvs(server: &EtcdServer, events: &mut [Event]) {
    for ev in events.iter_mut() {
        let Some(kv) = ev.kv.as_ref() else { continue };
        if ev.r#type == EventType::Put as i32 && kv.version == 1 {
            continue;
        }
        let opts = RangeOptions {
            rev: kv.mod_revision - 1,
            ..Default::default()
        };
        if let Ok(mut r) = server.store.range(&kv.key, RangeEnd::Single, opts) {
            ev.prev_kv = r.kvs.pop();
        }
    }
}

//! What `/metrics` serves (on the client URLs and `--listen-metrics-urls`)
//! and the gRPC server metrics of go-grpc-prometheus. The metrics live in
//! the `metrics` crate; gauges of the member's state (leader, indexes,
//! sizes, versions) are read from the server when scraped, counters are
//! kept where things happen (apply, kvops, raft, storage, peers), and the
//! gRPC counters by a layer in front of the services ([`grpc_layer`]).

use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Instant;

use axum::body::Body;
use axum::extract::Request;
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;
use bytes::Bytes;
use http_body::Frame;

use crate::config::SERVER_VERSION;
use crate::etcdserver::EtcdServer;

/// The gRPC methods of etcd's services and their kinds, as
/// go-grpc-prometheus labels them (`grpc_type`).
const METHODS: &[(&str, &[&str], &str)] = &[
    (
        "etcdserverpb.KV",
        &["Range", "Put", "DeleteRange", "Txn", "Compact"],
        "unary",
    ),
    ("etcdserverpb.Watch", &["Watch"], "bidi_stream"),
    (
        "etcdserverpb.Lease",
        &[
            "LeaseGrant",
            "LeaseRevoke",
            "LeaseTimeToLive",
            "LeaseLeases",
        ],
        "unary",
    ),
    ("etcdserverpb.Lease", &["LeaseKeepAlive"], "bidi_stream"),
    (
        "etcdserverpb.Cluster",
        &[
            "MemberAdd",
            "MemberRemove",
            "MemberUpdate",
            "MemberList",
            "MemberPromote",
        ],
        "unary",
    ),
    (
        "etcdserverpb.Maintenance",
        &[
            "Alarm",
            "Status",
            "Defragment",
            "Hash",
            "HashKV",
            "MoveLeader",
            "Downgrade",
        ],
        "unary",
    ),
    ("etcdserverpb.Maintenance", &["Snapshot"], "server_stream"),
    (
        "etcdserverpb.Auth",
        &[
            "AuthEnable",
            "AuthDisable",
            "AuthStatus",
            "Authenticate",
            "UserAdd",
            "UserGet",
            "UserList",
            "UserDelete",
            "UserChangePassword",
            "UserGrantRole",
            "UserRevokeRole",
            "RoleAdd",
            "RoleGet",
            "RoleList",
            "RoleDelete",
            "RoleGrantPermission",
            "RoleRevokePermission",
        ],
        "unary",
    ),
];

/// The `grpc_type` of `service`/`method`, if it is one of etcd's.
fn kind_of(service: &str, method: &str) -> Option<&'static str> {
    METHODS
        .iter()
        .find(|(s, ms, _)| *s == service && ms.contains(&method))
        .map(|(_, _, kind)| *kind)
}

/// Declares every gRPC series, and the latency histogram with
/// `--metrics extensive`, as etcd does at start.
pub fn init(extensive: bool) {
    metrics::init();
    for (service, methods, kind) in METHODS {
        for m in *methods {
            metrics::grpc::declare(kind, service, m);
        }
    }
    if extensive {
        metrics::grpc::enable_handling_histogram();
    }
}

/// `GET /metrics` for `server`.
pub fn router(server: Arc<EtcdServer>) -> Router {
    Router::new().route("/metrics", get(move || scrape(server.clone())))
}

/// Reads the member's state into the gauges, then renders everything.
async fn scrape(s: Arc<EtcdServer>) -> Response {
    let leader = s.leader();
    metrics::HAS_LEADER.set(i64::from(leader != 0));
    metrics::IS_LEADER.set(i64::from(leader != 0 && leader == s.member_id));
    metrics::PROPOSALS_COMMITTED.set(s.committed_index() as i64);
    metrics::PROPOSALS_APPLIED.set(s.applied_index() as i64);
    metrics::PROPOSALS_PENDING.set(s.pending_proposals() as i64);
    metrics::DB_TOTAL_SIZE.set(s.store.backend().size_bytes() as i64);
    let store = s.store.clone();
    // Measuring the in-use size reads table pages: off the async workers.
    if let Ok(in_use) =
        tokio::task::spawn_blocking(move || store.backend().size_in_use_bytes()).await
    {
        metrics::DB_IN_USE_SIZE.set(in_use as i64);
    }
    metrics::CURRENT_REVISION.set(s.store.current_revision());
    metrics::COMPACT_REVISION.set(s.store.compact_revision());
    metrics::WATCHER_TOTAL.set(s.store.watchers().watcher_count() as i64);
    metrics::QUOTA_BACKEND_BYTES.set(s.cfg.quota_backend_bytes as i64);
    metrics::set_info(&metrics::SERVER_ID, &format!("{:x}", s.member_id));
    metrics::set_info(&metrics::SERVER_VERSION, SERVER_VERSION);
    if let Some(v) = s.cluster_version.get() {
        // etcd labels the cluster version by major.minor.
        let minor: Vec<&str> = v.split('.').take(2).collect();
        metrics::set_info(&metrics::CLUSTER_VERSION, &minor.join("."));
    }
    (
        StatusCode::OK,
        [(header::CONTENT_TYPE, metrics::CONTENT_TYPE)],
        metrics::render(),
    )
        .into_response()
}

/// Counts every call to etcd's gRPC services: started, handled by code
/// (from the `grpc-status` of the headers or the trailers; a stream the
/// client drops first is `Canceled`), messages and bytes each way.
pub fn grpc_layer(router: Router) -> Router {
    router.layer(axum::middleware::from_fn(
        |req: Request, next: axum::middleware::Next| async move {
            let path = req.uri().path();
            let Some((service, method)) = path.trim_start_matches('/').split_once('/') else {
                return next.run(req).await;
            };
            let Some(kind) = kind_of(service, method) else {
                return next.run(req).await;
            };
            let l = [kind, service, method];
            metrics::grpc::STARTED.with_label_values(&l).inc();
            let received = metrics::grpc::MSG_RECEIVED.with_label_values(&l);
            let sent = metrics::grpc::MSG_SENT.with_label_values(&l);
            let labels = l.map(str::to_string);
            let req = req.map(|b| Body::new(Counted::new(b, Direction::Received(received))));
            let started = Instant::now();
            let resp = next.run(req).await;
            let call = Call { labels, started };
            if let Some(code) = grpc_code(resp.headers()) {
                call.handled(code);
                return resp;
            }
            resp.map(|b| Body::new(Counted::new(b, Direction::Sent(sent, Some(call)))))
        },
    ))
}

/// The gRPC code of a `grpc-status` in `headers`, by name.
fn grpc_code(headers: &HeaderMap) -> Option<&'static str> {
    let code: usize = headers.get("grpc-status")?.to_str().ok()?.parse().ok()?;
    Some(metrics::grpc::CODES.get(code).copied().unwrap_or("Unknown"))
}

/// One call's labels (type, service, method) and start.
struct Call {
    labels: [String; 3],
    started: Instant,
}

impl Call {
    fn handled(self, code: &str) {
        let [k, s, m] = &self.labels;
        metrics::grpc::HANDLED
            .with_label_values(&[k, s, m, code])
            .inc();
        metrics::grpc::HANDLING_SECONDS
            .with_label_values(&[k, s, m])
            .observe(self.started.elapsed().as_secs_f64());
    }
}

/// Which way a counted body goes, with its message counter (and, for an
/// answer, the call to close with its code).
enum Direction {
    Received(prometheus::IntCounter),
    Sent(prometheus::IntCounter, Option<Call>),
}

/// A body whose bytes and gRPC messages (5-byte prefix, then the message)
/// are counted as they pass.
struct Counted {
    inner: Body,
    direction: Direction,
    /// Bytes left of the current message, or of its prefix when `prefix`
    /// is still being read.
    left: usize,
    prefix: Vec<u8>,
}

impl Counted {
    fn new(inner: Body, direction: Direction) -> Counted {
        Counted {
            inner,
            direction,
            left: 0,
            prefix: Vec::with_capacity(5),
        }
    }

    /// Counts `data`'s bytes and every message that starts in it.
    fn count(&mut self, mut data: &[u8]) {
        match &self.direction {
            Direction::Received(_) => metrics::CLIENT_GRPC_RECEIVED_BYTES.inc_by(data.len() as u64),
            Direction::Sent(..) => metrics::CLIENT_GRPC_SENT_BYTES.inc_by(data.len() as u64),
        }
        while !data.is_empty() {
            if self.left > 0 {
                let n = self.left.min(data.len());
                self.left -= n;
                data = &data[n..];
                continue;
            }
            let n = (5 - self.prefix.len()).min(data.len());
            self.prefix.extend_from_slice(&data[..n]);
            data = &data[n..];
            if self.prefix.len() == 5 {
                let len = u32::from_be_bytes([
                    self.prefix[1],
                    self.prefix[2],
                    self.prefix[3],
                    self.prefix[4],
                ]);
                self.left = len as usize;
                self.prefix.clear();
                match &self.direction {
                    Direction::Received(c) | Direction::Sent(c, _) => c.inc(),
                }
            }
        }
    }

    fn finish(&mut self, code: &str) {
        if let Direction::Sent(_, call) = &mut self.direction {
            if let Some(call) = call.take() {
                call.handled(code);
            }
        }
    }
}

impl http_body::Body for Counted {
    type Data = Bytes;
    type Error = axum::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Self::Error>>> {
        let polled = Pin::new(&mut self.inner).poll_frame(cx);
        match &polled {
            Poll::Ready(Some(Ok(frame))) => {
                if let Some(data) = frame.data_ref() {
                    let data = data.clone();
                    self.count(&data);
                } else if let Some(trailers) = frame.trailers_ref() {
                    let code = grpc_code(trailers).unwrap_or("Unknown");
                    self.finish(code);
                }
            }
            Poll::Ready(None) => self.finish("Unknown"),
            Poll::Ready(Some(Err(_))) => self.finish("Internal"),
            Poll::Pending => {}
        }
        polled
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> http_body::SizeHint {
        self.inner.size_hint()
    }
}

impl Drop for Counted {
    /// A stream the client dropped before its status was sent.
    fn drop(&mut self) {
        self.finish("Canceled");
    }
}

//! What `/metrics` serves (on the client URLs and `--listen-metrics-urls`)
//! and the gRPC server metrics of go-grpc-prometheus. The metrics live in
//! the `metrics` crate; gauges of the member's state (leader, indexes,
//! sizes, versions) are read from the server when scraped, counters are
//! kept where things happen (apply, kvops, raft, storage, peers), and the
//! gRPC counters by a layer in front of the services ([`grpc_layer`]) and,
//! for the gateway's calls, by the gateway ([`MethodCounts`]).

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
    ("etcdserverpb.KV", &["RangeStream"], "server_stream"),
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
    ("v3lockpb.Lock", &["Lock", "Unlock"], "unary"),
    (
        "v3electionpb.Election",
        &["Campaign", "Proclaim", "Leader", "Resign"],
        "unary",
    ),
    ("v3electionpb.Election", &["Observe"], "server_stream"),
];

/// One method's series, looked up once: a call counts without building
/// labels or taking the vectors' locks.
struct Series {
    started: prometheus::IntCounter,
    received: prometheus::IntCounter,
    sent: prometheus::IntCounter,
    /// By code, in [`metrics::grpc::CODES`]'s order.
    handled: Vec<prometheus::IntCounter>,
    handling: prometheus::Histogram,
}

/// The series of every etcd method, by gRPC path (`/etcdserverpb.KV/Put`).
static SERIES: std::sync::LazyLock<std::collections::HashMap<String, Series>> =
    std::sync::LazyLock::new(|| {
        let mut map = std::collections::HashMap::new();
        for (service, methods, kind) in METHODS {
            for m in *methods {
                metrics::grpc::declare(kind, service, m);
                let l = [*kind, *service, *m];
                let series = Series {
                    started: metrics::grpc::STARTED.with_label_values(&l),
                    received: metrics::grpc::MSG_RECEIVED.with_label_values(&l),
                    sent: metrics::grpc::MSG_SENT.with_label_values(&l),
                    handled: metrics::grpc::CODES
                        .iter()
                        .map(|c| metrics::grpc::HANDLED.with_label_values(&[kind, service, m, c]))
                        .collect(),
                    handling: metrics::grpc::HANDLING_SECONDS.with_label_values(&l),
                };
                map.insert(format!("/{service}/{m}"), series);
            }
        }
        map
    });

/// Declares every gRPC series, and the latency histogram with
/// `--metrics extensive`, as etcd does at start.
pub fn init(extensive: bool) {
    metrics::init();
    std::sync::LazyLock::force(&SERIES);
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
    metrics::DB_IN_USE_SIZE.set(s.db_size_in_use().await as i64);
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
            let Some(series) = SERIES.get(req.uri().path()) else {
                return next.run(req).await;
            };
            series.started.inc();
            let req = req.map(|b| Body::new(Counted::new(b, series, false)));
            // Canceled if the client goes before the answer's headers.
            let mut pending = Pending {
                series,
                started: Some(Instant::now()),
            };
            let resp = next.run(req).await;
            let started = pending.started.take().unwrap_or_else(Instant::now);
            if let Some(code) = grpc_code(resp.headers()) {
                handled(series, code, started);
                return resp;
            }
            resp.map(|b| {
                let mut body = Counted::new(b, series, true);
                body.open = Some(started);
                Body::new(body)
            })
        },
    ))
}

/// The counters of one gRPC method, for the calls the gateway makes: etcd's
/// gateway is a gRPC client of its own member, so each of its calls counts
/// as a gRPC call (started, handled by code, messages and bytes).
#[derive(Clone, Copy)]
pub struct MethodCounts(&'static Series);

impl MethodCounts {
    /// The counters of gRPC `path` (`/etcdserverpb.KV/Put`), if it is one
    /// of etcd's methods.
    pub fn of(path: &str) -> Option<MethodCounts> {
        SERIES.get(path).map(MethodCounts)
    }

    /// A call starts; it counts as handled when the guard finishes, or as
    /// `Canceled` if the guard is dropped first (the client went away).
    pub fn start(self) -> CallGuard {
        self.0.started.inc();
        CallGuard {
            series: self.0,
            started: Some(Instant::now()),
        }
    }

    /// One request message of `len` bytes (encoded) reached the service.
    pub fn received(self, len: usize) {
        self.0.received.inc();
        metrics::CLIENT_GRPC_RECEIVED_BYTES.inc_by((len + 5) as u64);
    }

    /// One answer message of `len` bytes (encoded) left the service.
    pub fn sent(self, len: usize) {
        self.0.sent.inc();
        metrics::CLIENT_GRPC_SENT_BYTES.inc_by((len + 5) as u64);
    }
}

/// A gateway call in progress ([`MethodCounts::start`]).
pub struct CallGuard {
    series: &'static Series,
    started: Option<Instant>,
}

impl CallGuard {
    /// The call ended with `code`.
    pub fn finish(mut self, code: tonic::Code) {
        if let Some(started) = self.started.take() {
            handled(self.series, code as usize, started);
        }
    }
}

impl Drop for CallGuard {
    fn drop(&mut self) {
        if let Some(started) = self.started.take() {
            handled(self.series, CANCELED, started);
        }
    }
}

/// The index in [`metrics::grpc::CODES`] of a `grpc-status` in `headers`.
fn grpc_code(headers: &HeaderMap) -> Option<usize> {
    let code: usize = headers.get("grpc-status")?.to_str().ok()?.parse().ok()?;
    Some(code)
}

/// A call whose answer has not begun: counted `Canceled` if dropped so.
struct Pending {
    series: &'static Series,
    started: Option<Instant>,
}

impl Drop for Pending {
    fn drop(&mut self) {
        if let Some(started) = self.started.take() {
            handled(self.series, CANCELED, started);
        }
    }
}

/// Code 2, Unknown; a code past the list counts as it.
const UNKNOWN: usize = 2;
/// Code 1, Canceled.
const CANCELED: usize = 1;
/// Code 13, Internal.
const INTERNAL: usize = 13;

fn handled(series: &Series, code: usize, started: Instant) {
    let code = if code < series.handled.len() {
        code
    } else {
        UNKNOWN
    };
    series.handled[code].inc();
    series.handling.observe(started.elapsed().as_secs_f64());
}

/// A body whose bytes and gRPC messages (5-byte prefix, then the message)
/// are counted as they pass; an answer's body also closes its call.
struct Counted {
    inner: Body,
    series: &'static Series,
    sent: bool,
    /// For an answer not closed yet: when its call started.
    open: Option<Instant>,
    /// Bytes left of the current message.
    left: usize,
    /// The current message's prefix, as far as it has come.
    prefix: [u8; 5],
    prefix_len: usize,
}

impl Counted {
    fn new(inner: Body, series: &'static Series, sent: bool) -> Counted {
        Counted {
            inner,
            series,
            sent,
            open: None,
            left: 0,
            prefix: [0; 5],
            prefix_len: 0,
        }
    }

    /// Counts `data`'s bytes and every message that starts in it.
    fn count(&mut self, mut data: &[u8]) {
        let (bytes, messages) = if self.sent {
            (&*metrics::CLIENT_GRPC_SENT_BYTES, &self.series.sent)
        } else {
            (&*metrics::CLIENT_GRPC_RECEIVED_BYTES, &self.series.received)
        };
        bytes.inc_by(data.len() as u64);
        while !data.is_empty() {
            if self.left > 0 {
                let n = self.left.min(data.len());
                self.left -= n;
                data = &data[n..];
                continue;
            }
            let n = (5 - self.prefix_len).min(data.len());
            self.prefix[self.prefix_len..self.prefix_len + n].copy_from_slice(&data[..n]);
            self.prefix_len += n;
            data = &data[n..];
            if self.prefix_len == 5 {
                let p = self.prefix;
                self.left = u32::from_be_bytes([p[1], p[2], p[3], p[4]]) as usize;
                self.prefix_len = 0;
                messages.inc();
            }
        }
    }

    fn finish(&mut self, code: usize) {
        if let Some(started) = self.open.take() {
            handled(self.series, code, started);
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
                    self.count(data);
                } else if let Some(trailers) = frame.trailers_ref() {
                    let code = grpc_code(trailers).unwrap_or(UNKNOWN);
                    self.finish(code);
                }
            }
            Poll::Ready(None) => self.finish(UNKNOWN),
            Poll::Ready(Some(Err(_))) => self.finish(INTERNAL),
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
        self.finish(CANCELED);
    }
}

//! etcd's gRPC interceptors (`v3rpc/interceptor.go`), as one layer in
//! front of every service: a learner refuses what it does not serve, and
//! a call whose metadata carries `hasleader: true` (clientv3's
//! `WithRequireLeader`, which kube-apiserver sets on its watches) is
//! refused with `etcdserver: no leader` while the member has none. A
//! stream that asked for a leader is also ended with that error once the
//! member has been without a leader for [`NO_LEADER_TIMEOUTS`] election
//! timeouts in a row, so its client moves to a member that has one.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use axum::body::Body;
use axum::http::{HeaderMap, HeaderValue};
use bytes::Bytes;
use http_body::Frame;
use tokio::sync::watch;
use tonic::Status;

use super::learner_refuses;
use crate::etcdserver::EtcdServer;
use crate::rpctypes::EtcdError;

/// Election timeouts without a leader before streams that require one are
/// ended (etcd's `maxNoLeaderCnt`).
pub const NO_LEADER_TIMEOUTS: u32 = 3;

/// The streaming calls whose streams the leader monitor ends.
const STREAMS: &[&str] = &[
    "/etcdserverpb.KV/RangeStream",
    "/etcdserverpb.Watch/Watch",
    "/etcdserverpb.Lease/LeaseKeepAlive",
    "/etcdserverpb.Maintenance/Snapshot",
    "/v3electionpb.Election/Observe",
];

/// Whether `headers` carry clientv3's `hasleader: true`.
fn requires_leader(headers: &HeaderMap) -> bool {
    headers.get("hasleader").is_some_and(|v| v == "true")
}

/// The interceptors around `router`'s gRPC services, and the task that
/// watches for a lost leader (it ends when the member stops).
pub fn layer(server: Arc<EtcdServer>, router: axum::Router) -> axum::Router {
    let (lost_tx, lost) = watch::channel(0u64);
    tokio::spawn(monitor_leader(server.clone(), lost_tx));
    router.layer(axum::middleware::from_fn(
        move |req: axum::extract::Request, next: axum::middleware::Next| {
            let server = server.clone();
            let mut lost = lost.clone();
            async move {
                let path = req.uri().path();
                if learner_refuses(&server, path) {
                    return Status::from(EtcdError::NotSupportedForLearner).into_http::<Body>();
                }
                if !requires_leader(req.headers()) {
                    return next.run(req).await;
                }
                if server.leader() == 0 {
                    return Status::from(EtcdError::NoLeader).into_http::<Body>();
                }
                let stream = STREAMS.contains(&path);
                lost.borrow_and_update();
                let resp = next.run(req).await;
                if !stream {
                    return resp;
                }
                resp.map(|inner| {
                    Body::new(LeaderBound {
                        inner,
                        lost: Box::pin(async move {
                            let _ = lost.changed().await;
                        }),
                        ended: false,
                    })
                })
            }
        },
    ))
}

/// Every election timeout, counts how long the member has been without a
/// leader; from [`NO_LEADER_TIMEOUTS`] on, tells every stream that
/// requires a leader to end (again each timeout, for streams opened
/// since). Ends with the router.
async fn monitor_leader(server: Arc<EtcdServer>, lost: watch::Sender<u64>) {
    let election = server.cfg.tick * server.cfg.election_ticks as u32;
    let mut without = 0u32;
    loop {
        tokio::time::sleep(election).await;
        if lost.is_closed() {
            return;
        }
        if server.leader() == 0 {
            without += 1;
        } else {
            without = 0;
        }
        if without >= NO_LEADER_TIMEOUTS {
            lost.send_modify(|n| *n += 1);
        }
    }
}

/// A streaming answer that ends with `etcdserver: no leader` (in its
/// trailers) when the leader monitor says so; its service's stream is
/// dropped then, as etcd cancels the stream's context.
struct LeaderBound {
    inner: Body,
    lost: Pin<Box<dyn Future<Output = ()> + Send>>,
    ended: bool,
}

impl http_body::Body for LeaderBound {
    type Data = Bytes;
    type Error = axum::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Self::Error>>> {
        if self.ended {
            return Poll::Ready(None);
        }
        if self.lost.as_mut().poll(cx).is_ready() {
            self.ended = true;
            self.inner = Body::empty();
            let mut trailers = HeaderMap::new();
            trailers.insert("grpc-status", HeaderValue::from_static("14"));
            trailers.insert(
                "grpc-message",
                HeaderValue::from_static("etcdserver: no leader"),
            );
            return Poll::Ready(Some(Ok(Frame::trailers(trailers))));
        }
        let polled = Pin::new(&mut self.inner).poll_frame(cx);
        if let Poll::Ready(None) = polled {
            self.ended = true;
        }
        polled
    }

    fn is_end_stream(&self) -> bool {
        self.ended
    }
}

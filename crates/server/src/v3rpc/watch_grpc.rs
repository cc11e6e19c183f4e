//! `Watch/Watch` over gRPC, served in front of the generated Watch service
//! so that a revision's events are encoded once for all the watchers that
//! get them: a delivery's response is its own small part (header, watch
//! id) followed by the shared encoding of its events
//! ([`Events::encoded`](storage::mvcc::Events::encoded)), where tonic's
//! encoder would encode a copy of the events for every watcher. The
//! requests are read by tonic's own decoder; the stream, its watches and
//! its answers are those of [`WatchService`](super::watch::WatchService)
//! (the JSON gateway keeps using that one).

use std::convert::Infallible;
use std::sync::Arc;

use api::etcdserverpb::{WatchRequest, WatchResponse};
use axum::body::Body;
use axum::extract::Request;
use axum::response::Response;
use bytes::{BufMut, Bytes, BytesMut};
use http_body::Frame;
use http_body_util::StreamBody;
use prost::Message;
use storage::mvcc::Delivery;
use tonic::codec::{Codec, Streaming};
use tonic::Status;

use super::kv_range::{credentials, grpc_response, identity_only, ok_trailers, PREFIX_BYTES};
use super::watch::{open, responses, Item, Items};
use crate::etcdserver::EtcdServer;

/// The method's gRPC path.
pub const PATH: &str = "/etcdserverpb.Watch/Watch";

/// Largest request message read (tonic's default, which the generated
/// Watch service has).
const MAX_REQUEST_BYTES: usize = 4 * 1024 * 1024;

/// Bytes of messages gathered into one DATA frame when several items are
/// queued at once.
const FRAME_BYTES: usize = 64 * 1024;

/// The route for [`PATH`], to merge with the gRPC services' router.
pub fn router(server: Arc<EtcdServer>) -> axum::Router {
    axum::Router::new().route(
        PATH,
        axum::routing::post(move |req: Request| {
            let server = server.clone();
            async move { answer(server, req).unwrap_or_else(|s| s.into_http()) }
        }),
    )
}

fn answer(server: Arc<EtcdServer>, req: Request) -> Result<Response, Status> {
    let (parts, body) = req.into_parts();
    identity_only(&parts.headers)?;
    let creds = credentials(parts);
    let decoder = tonic_prost::ProstCodec::<WatchResponse, WatchRequest>::default().decoder();
    let input = Streaming::new_request(decoder, body, None, Some(MAX_REQUEST_BYTES));
    let items = open(&server, creds, input);
    Ok(grpc_response(Body::new(StreamBody::new(frames(
        server, items,
    )))))
}

/// The stream's DATA frames, each the messages of the items queued when it
/// was made (up to [`FRAME_BYTES`]), then the `grpc-status: 0` trailer once
/// the stream's watchers and request loop are gone.
fn frames(
    server: Arc<EtcdServer>,
    items: Items,
) -> impl futures::Stream<Item = Result<Frame<Bytes>, Infallible>> + Send {
    futures::stream::unfold(Some((server, items)), |state| async move {
        let (server, mut items) = state?;
        let Some(first) = items.next(&server).await else {
            return Some((Ok(ok_trailers()), None));
        };
        let mut buf = BytesMut::new();
        encode(&server, first, &mut buf);
        while buf.len() < FRAME_BYTES {
            let Some(item) = items.try_next(&server).await else {
                break;
            };
            encode(&server, item, &mut buf);
        }
        Some((Ok(Frame::data(buf.freeze())), Some((server, items))))
    })
}

/// Appends the gRPC message(s) of `item` to `buf`: a delivery of events as
/// its own part and the events' shared encoding, anything else as
/// [`responses`] makes it.
fn encode(server: &EtcdServer, item: Item, buf: &mut BytesMut) {
    match item {
        Item::Delivery {
            watch_id,
            fragment: false,
            delivery: Delivery::Events { events, revision },
            ..
        } => {
            let head = WatchResponse {
                header: Some(server.header(revision)),
                watch_id,
                ..Default::default()
            };
            let events = events.encoded();
            message(buf, &head, &events);
        }
        item => {
            for resp in responses(server, item) {
                message(buf, &resp, &[]);
            }
        }
    }
}

/// Appends one gRPC message: the prefix, `resp` encoded, then `tail` (the
/// encoding of more of its fields).
fn message(buf: &mut BytesMut, resp: &WatchResponse, tail: &[u8]) {
    let len = resp.encoded_len() + tail.len();
    buf.reserve(PREFIX_BYTES + len);
    buf.put_u8(0);
    buf.put_u32(u32::try_from(len).expect("a watch response is under 4 GiB"));
    resp.encode(buf).expect("room was reserved");
    buf.put_slice(tail);
}

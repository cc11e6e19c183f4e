//! The gateway's streaming calls: Watch and LeaseKeepAlive (a stream of
//! JSON requests in the body, a stream of JSON lines out) and Snapshot
//! (one request, a stream out). The requests are handed to the gRPC
//! service as the gRPC stream it serves, so a watch through the gateway
//! is the same watch as over gRPC.

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};

use axum::body::Body;
use axum::http::{header, HeaderValue};
use axum::response::Response;
use bytes::Bytes;
use futures::{Stream, StreamExt};
use http_body_util::StreamBody;
use hyper::body::Frame;
use serde::de::DeserializeOwned;
use serde::Serialize;
use tonic::codec::Codec;
use tonic::{Request, Status, Streaming};
use tonic_prost::ProstCodec;

use super::json::{self, Messages};
use crate::monitoring::{CallGuard, MethodCounts};

/// How many decoded requests may wait for the service.
const REQUEST_QUEUE: usize = 16;

/// The requests of `body`, JSON messages one after another, as the gRPC
/// stream of `Req` a service reads. The first is read before the call
/// starts, so a body that is not JSON gets grpc-gateway's 400 answer; a
/// later bad message ends the stream. At most `limit` bytes of an
/// unfinished message are held.
async fn requests<Req>(
    body: Body,
    limit: usize,
    counts: Option<MethodCounts>,
) -> Result<Streaming<Req>, Status>
where
    Req: DeserializeOwned + prost::Message + Default + Send + 'static,
{
    let mut chunks = body.into_data_stream();
    let mut messages = Messages::new(limit);
    let first = loop {
        if let Some(m) = messages.next::<Req>() {
            break Some(m?);
        }
        match chunks.next().await {
            Some(Ok(bytes)) => messages.push(&bytes)?,
            Some(Err(e)) => return Err(Status::invalid_argument(e.to_string())),
            None => break None,
        }
    };
    let (tx, rx) = tokio::sync::mpsc::channel::<Result<Frame<Bytes>, Status>>(REQUEST_QUEUE);
    if let Some(first) = first {
        let _ = tx.send(Ok(Frame::data(grpc_frame(&first, counts)))).await;
        tokio::spawn(async move {
            loop {
                while let Some(m) = messages.next::<Req>() {
                    let Ok(m) = m else { return };
                    if tx
                        .send(Ok(Frame::data(grpc_frame(&m, counts))))
                        .await
                        .is_err()
                    {
                        return;
                    }
                }
                // Ends with the body, or when the service stops reading.
                let chunk = tokio::select! {
                    c = chunks.next() => c,
                    () = tx.closed() => return,
                };
                match chunk {
                    Some(Ok(bytes)) if messages.push(&bytes).is_ok() => {}
                    _ => return,
                }
            }
        });
    }
    let body = StreamBody::new(tokio_stream::wrappers::ReceiverStream::new(rx));
    let mut codec = ProstCodec::<Req, Req>::default();
    Ok(Streaming::new_request(codec.decoder(), body, None, None))
}

/// `m` in gRPC's length-prefixed framing, uncompressed, counted as a
/// message the service receives.
fn grpc_frame<M: prost::Message>(m: &M, counts: Option<MethodCounts>) -> Bytes {
    let len = m.encoded_len();
    if let Some(c) = counts {
        c.received(len);
    }
    let mut buf = Vec::with_capacity(5 + len);
    buf.push(0);
    buf.extend_from_slice(&(len as u32).to_be_bytes());
    m.encode(&mut buf).expect("a Vec grows to hold the message");
    Bytes::from(buf)
}

/// The answer to a streaming call: each item of `out` as a JSON line. A
/// stream whose first item is an error gets the unary error answer and
/// its status instead, as grpc-gateway answers a call that failed before
/// sending anything.
async fn lines<S, T>(out: S, counts: Option<MethodCounts>, guard: Option<CallGuard>) -> Response
where
    S: Stream<Item = Result<T, Status>> + Send + 'static,
    T: Serialize + prost::Message + Send + 'static,
{
    let mut out = Counted {
        inner: Box::pin(out),
        counts,
        guard,
    };
    let first = match out.next().await {
        Some(Err(e)) => return json::error(&e),
        first => first,
    };
    let body = futures::stream::iter(first)
        .chain(out)
        .map(|item| Ok::<_, std::convert::Infallible>(Bytes::from(json::stream_line(item))));
    let mut resp = Response::new(Body::from_stream(body));
    resp.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    json::from_call(resp)
}

/// An answer stream counted as the gRPC call it stands for: each message
/// sent, then the call handled with the code it ended with (OK at its
/// end, an error's code) or `Canceled` if the client goes first.
struct Counted<S> {
    inner: Pin<Box<S>>,
    counts: Option<MethodCounts>,
    guard: Option<CallGuard>,
}

impl<S, T> Stream for Counted<S>
where
    S: Stream<Item = Result<T, Status>>,
    T: prost::Message,
{
    type Item = Result<T, Status>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let polled = self.inner.as_mut().poll_next(cx);
        let code = match &polled {
            Poll::Ready(Some(Ok(m))) => {
                if let Some(c) = self.counts {
                    c.sent(m.encoded_len());
                }
                return polled;
            }
            Poll::Ready(Some(Err(e))) => e.code(),
            Poll::Ready(None) => tonic::Code::Ok,
            Poll::Pending => return polled,
        };
        if let Some(g) = self.guard.take() {
            g.finish(code);
        }
        polled
    }
}

/// A bidirectional call (`Watch`, `LeaseKeepAlive`): the body's requests
/// (each at most `limit` bytes of JSON) go to `call` as its gRPC stream,
/// its answers come back as JSON lines; the call is counted in `counts`.
pub(crate) async fn bidi<Req, Resp, S, F, Fut>(
    metadata: Request<()>,
    body: Body,
    limit: usize,
    counts: Option<MethodCounts>,
    call: F,
) -> Response
where
    Req: DeserializeOwned + prost::Message + Default + Send + 'static,
    Resp: Serialize + prost::Message + Send + 'static,
    S: Stream<Item = Result<Resp, Status>> + Send + 'static,
    F: FnOnce(Request<Streaming<Req>>) -> Fut,
    Fut: Future<Output = Result<tonic::Response<S>, Status>>,
{
    let guard = counts.map(MethodCounts::start);
    let input = match requests::<Req>(body, limit, counts).await {
        Ok(input) => input,
        Err(e) => return failed(guard, &e),
    };
    let (md, ext, ()) = metadata.into_parts();
    match call(Request::from_parts(md, ext, input)).await {
        Ok(out) => lines(out.into_inner(), counts, guard).await,
        Err(e) => failed(guard, &e),
    }
}

/// The answer to a call that failed with `e` before streaming, counted.
fn failed(guard: Option<CallGuard>, e: &Status) -> Response {
    if let Some(g) = guard {
        g.finish(e.code());
    }
    json::error(e)
}

/// A server-streaming call (`Snapshot`): one request, JSON lines out.
pub(crate) async fn server_streaming<Req, Resp, S, F, Fut>(
    metadata: Request<()>,
    body: &[u8],
    counts: Option<MethodCounts>,
    call: F,
) -> Response
where
    Req: DeserializeOwned + Default + prost::Message,
    Resp: Serialize + prost::Message + Send + 'static,
    S: Stream<Item = Result<Resp, Status>> + Send + 'static,
    F: FnOnce(Request<Req>) -> Fut,
    Fut: Future<Output = Result<tonic::Response<S>, Status>>,
{
    let guard = counts.map(MethodCounts::start);
    let req = match json::decode::<Req>(body) {
        Ok(r) => r,
        Err(e) => return failed(guard, &e),
    };
    if let Some(c) = counts {
        c.received(req.encoded_len());
    }
    let (md, ext, ()) = metadata.into_parts();
    match call(Request::from_parts(md, ext, req)).await {
        Ok(out) => lines(out.into_inner(), counts, guard).await,
        Err(e) => failed(guard, &e),
    }
}

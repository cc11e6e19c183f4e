//! `KV/Range` over gRPC, served in front of the generated KV service so
//! that its answer is sent as it was encoded: the chunks of an
//! [`EncodedRange`] go out as HTTP/2 DATA frames behind one gRPC message
//! prefix, with no copy of the whole response in between. tonic's encoder
//! needs the message whole, once more, in its own buffer; for a 1 GiB
//! range that is a second gigabyte. The checks, the API call and the
//! errors are those of [`KvService`](super::kv::KvService)'s Range.

use std::convert::Infallible;
use std::sync::Arc;

use api::etcdserverpb::RangeRequest;
use axum::body::Body;
use axum::extract::Request;
use axum::response::Response;
use bytes::{Bytes, BytesMut};
use http_body::Frame;
use http_body_util::StreamBody;
use prost::Message;
use tonic::metadata::MetadataMap;
use tonic::Status;

use super::GRPC_OVERHEAD_BYTES;
use crate::etcdserver::encoded_range::EncodedRange;
use crate::etcdserver::v3server::Credentials;
use crate::etcdserver::EtcdServer;

/// The method's gRPC path.
pub const PATH: &str = "/etcdserverpb.KV/Range";

/// The gRPC message prefix: a compression flag and a big-endian length.
pub(super) const PREFIX_BYTES: usize = 5;

/// The largest message a member sends (etcd's `maxSendBytes`,
/// `math.MaxInt32`); a larger answer gets grpc-go's ResourceExhausted.
const MAX_SEND_BYTES: usize = i32::MAX as usize;

/// The route for [`PATH`], to merge with the gRPC services' router.
pub fn router(server: Arc<EtcdServer>) -> axum::Router {
    axum::Router::new().route(
        PATH,
        axum::routing::post(move |req: Request| {
            let server = server.clone();
            async move { answer(&server, req).await.unwrap_or_else(|s| s.into_http()) }
        }),
    )
}

async fn answer(server: &EtcdServer, req: Request) -> Result<Response, Status> {
    let (parts, body) = req.into_parts();
    identity_only(&parts.headers)?;
    let max = server.cfg.max_request_bytes + GRPC_OVERHEAD_BYTES;
    let body = axum::body::to_bytes(body, max + PREFIX_BYTES)
        .await
        .map_err(|_| Status::resource_exhausted("grpc: received message larger than max"))?;
    let r = decode_request(&body, max)?;
    let creds = credentials(parts);
    super::kv::check_range(server, &r)?;
    let encoded = server.range_encoded(&creds, r).await?;
    respond(server, encoded)
}

/// The one RangeRequest of a gRPC request body (`max`: its largest size in
/// bytes). Errors: grpc-go's, for compressed, oversized, cut or undecodable
/// messages.
fn decode_request(body: &[u8], max: usize) -> Result<RangeRequest, Status> {
    let Some((prefix, msg)) = body.split_first_chunk::<PREFIX_BYTES>() else {
        return Err(Status::internal("grpc: received an incomplete message"));
    };
    if prefix[0] != 0 {
        return Err(Status::internal(
            "grpc: compressed flag set with identity or empty encoding",
        ));
    }
    let len = u32::from_be_bytes([prefix[1], prefix[2], prefix[3], prefix[4]]) as usize;
    if len > max {
        return Err(Status::resource_exhausted(format!(
            "grpc: received message larger than max ({len} vs. {max})"
        )));
    }
    if msg.len() != len {
        return Err(Status::internal("grpc: received an incomplete message"));
    }
    RangeRequest::decode(msg)
        .map_err(|e| Status::internal(format!("grpc: error unmarshalling request: {e}")))
}

/// The HTTP response: the prefix and the header field, then the encoded
/// chunks as they are, then the `grpc-status: 0` trailer.
fn respond(server: &EtcdServer, encoded: EncodedRange) -> Result<Response, Status> {
    let header = server.header(encoded.revision);
    let mut head = BytesMut::with_capacity(PREFIX_BYTES + header.encoded_len() + 2);
    head.extend_from_slice(&[0; PREFIX_BYTES]);
    prost::encoding::message::encode(1, &header, &mut head);
    let total = head.len() - PREFIX_BYTES + encoded.len;
    if total > MAX_SEND_BYTES {
        return Err(Status::resource_exhausted(format!(
            "grpc: trying to send message larger than max ({total} vs. {MAX_SEND_BYTES})"
        )));
    }
    head[1..PREFIX_BYTES].copy_from_slice(&(total as u32).to_be_bytes());
    let frames = std::iter::once(head.freeze())
        .chain(encoded.chunks)
        .map(Frame::data)
        .chain(std::iter::once(ok_trailers()))
        .map(Ok::<Frame<Bytes>, Infallible>);
    Ok(grpc_response(Body::new(StreamBody::new(
        futures::stream::iter(frames),
    ))))
}

/// Refuses a request whose messages are compressed (grpc-go's error for a
/// decompressor it has not installed); shared with the Watch route.
pub(super) fn identity_only(headers: &axum::http::HeaderMap) -> Result<(), Status> {
    match headers.get("grpc-encoding") {
        Some(enc) if enc != "identity" => Err(Status::unimplemented(format!(
            "grpc: Decompressor is not installed for grpc-encoding {enc:?}"
        ))),
        _ => Ok(()),
    }
}

/// The credentials of a request that bypasses the generated services (its
/// token metadata and its connection's certificate CN).
pub(super) fn credentials(parts: axum::http::request::Parts) -> Credentials {
    let treq = tonic::Request::from_parts(
        MetadataMap::from_headers(parts.headers),
        parts.extensions,
        (),
    );
    super::credentials(&treq)
}

/// The `grpc-status: 0` trailer that ends a successful answer.
pub(super) fn ok_trailers() -> Frame<Bytes> {
    let mut trailers = axum::http::HeaderMap::new();
    trailers.insert("grpc-status", axum::http::HeaderValue::from_static("0"));
    Frame::trailers(trailers)
}

/// A gRPC answer whose frames are `body`.
pub(super) fn grpc_response(body: Body) -> Response {
    axum::http::Response::builder()
        .header(axum::http::header::CONTENT_TYPE, "application/grpc")
        .body(body)
        .expect("a static response head is valid")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn framed(msg: &[u8]) -> Vec<u8> {
        let mut b = vec![0];
        b.extend_from_slice(&(msg.len() as u32).to_be_bytes());
        b.extend_from_slice(msg);
        b
    }

    #[test]
    fn decodes_one_framed_request() {
        let r = RangeRequest {
            key: b"foo".to_vec(),
            limit: 3,
            ..Default::default()
        };
        assert_eq!(decode_request(&framed(&r.encode_to_vec()), 100).unwrap(), r);
    }

    #[test]
    fn refuses_what_grpc_go_refuses() {
        let r = RangeRequest {
            key: vec![1; 50],
            ..Default::default()
        }
        .encode_to_vec();
        let big = decode_request(&framed(&r), 10).unwrap_err();
        assert_eq!(big.code(), tonic::Code::ResourceExhausted);
        assert_eq!(
            big.message(),
            format!(
                "grpc: received message larger than max ({} vs. 10)",
                r.len()
            )
        );
        let mut cut = framed(&r);
        cut.pop();
        assert_eq!(
            decode_request(&cut, 100).unwrap_err().code(),
            tonic::Code::Internal
        );
        assert_eq!(
            decode_request(&[0, 0], 100).unwrap_err().code(),
            tonic::Code::Internal
        );
        let mut compressed = framed(&r);
        compressed[0] = 1;
        assert_eq!(
            decode_request(&compressed, 100).unwrap_err().code(),
            tonic::Code::Internal
        );
        let junk = framed(&[0xff, 0xff]);
        assert_eq!(
            decode_request(&junk, 100).unwrap_err().code(),
            tonic::Code::Internal
        );
    }
}

//! The gateway's wire forms: JSON request bodies in (one message, or a
//! stream of them for the bidirectional RPCs), JSON answers out, and
//! grpc-gateway v1.16's error bodies and HTTP statuses (etcd 3.5's
//! gateway), so a client of etcd's gateway reads the same bytes.

use axum::body::Body;
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::Response;
use serde::de::DeserializeOwned;
use serde::Serialize;
use tonic::{Code, Status};

/// The HTTP status grpc-gateway v1.16 answers for a gRPC `code`
/// (`runtime.HTTPStatusFromCode`; etcd 3.4's older grpc-gateway answered
/// 412 for FailedPrecondition).
pub(crate) fn http_status(code: Code) -> StatusCode {
    match code {
        Code::Ok => StatusCode::OK,
        Code::Cancelled => StatusCode::REQUEST_TIMEOUT,
        Code::InvalidArgument | Code::FailedPrecondition | Code::OutOfRange => {
            StatusCode::BAD_REQUEST
        }
        Code::DeadlineExceeded => StatusCode::GATEWAY_TIMEOUT,
        Code::NotFound => StatusCode::NOT_FOUND,
        Code::AlreadyExists | Code::Aborted => StatusCode::CONFLICT,
        Code::PermissionDenied => StatusCode::FORBIDDEN,
        Code::Unauthenticated => StatusCode::UNAUTHORIZED,
        Code::ResourceExhausted => StatusCode::TOO_MANY_REQUESTS,
        Code::Unimplemented => StatusCode::NOT_IMPLEMENTED,
        Code::Unavailable => StatusCode::SERVICE_UNAVAILABLE,
        Code::Unknown | Code::Internal | Code::DataLoss => StatusCode::INTERNAL_SERVER_ERROR,
    }
}

/// grpc-gateway's error body for a unary call, in its field order:
/// `{"error":"...","code":N,"message":"..."}`.
#[derive(Serialize)]
struct ErrorBody<'a> {
    error: &'a str,
    code: i32,
    message: &'a str,
}

/// The answer to a failed unary call: grpc-gateway's body and status.
pub(crate) fn error(status: &Status) -> Response {
    let body = ErrorBody {
        error: status.message(),
        code: status.code() as i32,
        message: status.message(),
    };
    json_response(http_status(status.code()), &body)
}

/// A unary call's answer: `value` as JSON with `status`.
pub(crate) fn json_response<T: Serialize>(status: StatusCode, value: &T) -> Response {
    match serde_json::to_vec(value) {
        Ok(bytes) => {
            let mut resp = Response::new(Body::from(bytes));
            *resp.status_mut() = status;
            resp.headers_mut().insert(
                header::CONTENT_TYPE,
                HeaderValue::from_static("application/json"),
            );
            resp
        }
        Err(e) => error(&Status::internal(e.to_string())),
    }
}

/// Marks an answer that came from the gRPC call as grpc-gateway does,
/// with the call's `content-type` header metadata:
/// `Grpc-Metadata-Content-Type: application/grpc`.
pub(crate) fn from_call(mut resp: Response) -> Response {
    resp.headers_mut().insert(
        "grpc-metadata-content-type",
        HeaderValue::from_static("application/grpc"),
    );
    resp
}

/// Decodes a unary request body. An empty body is the empty message
/// (grpc-gateway reads it as EOF, which it accepts); bad JSON is
/// InvalidArgument with the decoder's message.
pub(crate) fn decode<T: DeserializeOwned + Default>(body: &[u8]) -> Result<T, Status> {
    if body.iter().all(u8::is_ascii_whitespace) {
        return Ok(T::default());
    }
    let mut de = serde_json::Deserializer::from_slice(body);
    T::deserialize(&mut de).map_err(|e| Status::invalid_argument(e.to_string()))
}

/// One line of a streamed answer, as grpc-gateway writes them:
/// `{"result":{...}}` or, for the error that ends the stream,
/// `{"error":{"grpc_code":N,"http_code":H,"message":"...","http_status":"..."}}`,
/// each followed by a newline.
pub(crate) fn stream_line<T: Serialize>(item: Result<T, Status>) -> Vec<u8> {
    #[derive(Serialize)]
    struct Ok<T> {
        result: T,
    }
    #[derive(Serialize)]
    struct StreamError<'a> {
        grpc_code: i32,
        http_code: u16,
        message: &'a str,
        http_status: &'a str,
    }
    #[derive(Serialize)]
    struct Err<'a> {
        error: StreamError<'a>,
    }
    let encoded = match &item {
        Result::Ok(v) => serde_json::to_vec(&Ok { result: v }),
        Result::Err(s) => {
            let http = http_status(s.code());
            serde_json::to_vec(&Err {
                error: StreamError {
                    grpc_code: s.code() as i32,
                    http_code: http.as_u16(),
                    message: s.message(),
                    http_status: http.canonical_reason().unwrap_or(""),
                },
            })
        }
    };
    let mut line = encoded.unwrap_or_else(|e| {
        format!("{{\"error\":{{\"message\":{:?}}}}}", e.to_string()).into_bytes()
    });
    line.push(b'\n');
    line
}

/// Splits a streamed request body into JSON messages as its bytes come:
/// [`Messages::push`] takes the next bytes, [`Messages::next`] gives each
/// complete message (whitespace or newlines between them, as
/// grpc-gateway's decoder reads them). Each byte is scanned once, for the
/// object that closes a message, and each message parsed once; the bytes
/// waiting are bounded.
pub(crate) struct Messages {
    buf: Vec<u8>,
    /// Where the first message not handed out begins.
    start: usize,
    /// How far the scan has read.
    scanned: usize,
    /// Brackets open at `scanned`, and whether it is inside a string
    /// (after a backslash).
    depth: usize,
    in_string: bool,
    escaped: bool,
    /// The most bytes of unfinished messages held.
    limit: usize,
}

impl Messages {
    /// Holds at most `limit` bytes of messages not yet complete.
    pub(crate) fn new(limit: usize) -> Messages {
        Messages {
            buf: Vec::new(),
            start: 0,
            scanned: 0,
            depth: 0,
            in_string: false,
            escaped: false,
            limit,
        }
    }

    /// Adds bytes that came on the body. Error: past the limit,
    /// ResourceExhausted as the gRPC server answers a request too large.
    pub(crate) fn push(&mut self, bytes: &[u8]) -> Result<(), Status> {
        if self.start > 0 && self.start * 2 >= self.buf.len() {
            self.buf.drain(..self.start);
            self.scanned -= self.start;
            self.start = 0;
        }
        if self.buf.len() - self.start + bytes.len() > self.limit {
            return Err(Status::resource_exhausted(
                "grpc: received message larger than max",
            ));
        }
        self.buf.extend_from_slice(bytes);
        Ok(())
    }

    /// The next complete message: `None` until one has come whole; an
    /// error if the bytes are not JSON of type `T`.
    pub(crate) fn next<T: DeserializeOwned>(&mut self) -> Option<Result<T, Status>> {
        while self.scanned < self.buf.len() {
            let b = self.buf[self.scanned];
            self.scanned += 1;
            if self.in_string {
                match (self.escaped, b) {
                    (true, _) => self.escaped = false,
                    (false, b'\\') => self.escaped = true,
                    (false, b'"') => self.in_string = false,
                    _ => {}
                }
                continue;
            }
            match b {
                b'"' => self.in_string = true,
                b'{' | b'[' => self.depth += 1,
                b'}' | b']' if self.depth > 0 => {
                    self.depth -= 1;
                    if self.depth == 0 {
                        let message = &self.buf[self.start..self.scanned];
                        self.start = self.scanned;
                        return Some(
                            serde_json::from_slice(message)
                                .map_err(|e| Status::invalid_argument(e.to_string())),
                        );
                    }
                }
                b if self.depth == 0 && !b.is_ascii_whitespace() => {
                    // Not an object: let the decoder say what is wrong.
                    let rest = &self.buf[self.start..];
                    let e = serde_json::from_slice::<T>(rest)
                        .err()
                        .map_or_else(|| "expected a JSON object".to_string(), |e| e.to_string());
                    return Some(Err(Status::invalid_argument(e)));
                }
                _ => {}
            }
        }
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use api::etcdserverpb::{PutRequest, WatchRequest};

    #[test]
    fn errors_are_grpc_gateways() {
        let s = Status::invalid_argument("etcdserver: key is not provided");
        let line = stream_line::<()>(Err(s));
        assert_eq!(
            String::from_utf8(line).unwrap(),
            "{\"error\":{\"grpc_code\":3,\"http_code\":400,\"message\":\"etcdserver: key is not provided\",\"http_status\":\"Bad Request\"}}\n"
        );
        assert_eq!(
            http_status(Code::FailedPrecondition),
            StatusCode::BAD_REQUEST
        );
        assert_eq!(
            http_status(Code::Unimplemented),
            StatusCode::NOT_IMPLEMENTED
        );
    }

    #[test]
    fn an_empty_body_is_the_empty_message_and_bad_json_is_invalid_argument() {
        assert_eq!(decode::<PutRequest>(b"").unwrap(), PutRequest::default());
        let e = decode::<PutRequest>(b"notjson").unwrap_err();
        assert_eq!(e.code(), Code::InvalidArgument);
        let e = decode::<PutRequest>(br#"{"key":"Zm9v!!"}"#).unwrap_err();
        assert_eq!(e.code(), Code::InvalidArgument);
        let r: PutRequest = decode(br#"{"key":"Zm9v","value":"YmFy","bogus":1}"#).unwrap();
        assert_eq!(
            (r.key.as_slice(), r.value.as_slice()),
            (&b"foo"[..], &b"bar"[..])
        );
    }

    #[test]
    fn messages_come_out_whole_however_the_bytes_are_split() {
        let body = br#"{"create_request":{"key":"YQ=="}} {"cancel_request":{"watch_id":"3"}}"#;
        let mut m = Messages::new(1024);
        let mut got: Vec<WatchRequest> = Vec::new();
        for chunk in body.chunks(7) {
            m.push(chunk).unwrap();
            while let Some(r) = m.next::<WatchRequest>() {
                got.push(r.unwrap());
            }
        }
        assert_eq!(got.len(), 2);
        assert_eq!(
            got[1].request_union,
            Some(
                api::etcdserverpb::watch_request::RequestUnion::CancelRequest(
                    api::etcdserverpb::WatchCancelRequest { watch_id: 3 },
                )
            )
        );
        let mut bad = Messages::new(1024);
        bad.push(b"{\"create_request\":1}").unwrap();
        assert!(bad.next::<WatchRequest>().unwrap().is_err());
        let mut not_object = Messages::new(1024);
        not_object.push(b"  7").unwrap();
        assert!(not_object.next::<WatchRequest>().unwrap().is_err());
        // A brace inside a string does not end the message.
        let mut quoted = Messages::new(1024);
        quoted
            .push(br#"{"bogus":"}{\"}","create_request":{"key":"YQ=="}}"#)
            .unwrap();
        let r = quoted.next::<WatchRequest>().unwrap().unwrap();
        assert!(r.request_union.is_some(), "{r:?}");
        // A message that never ends is bounded.
        let mut endless = Messages::new(24);
        endless.push(b"{\"create_request\":").unwrap();
        assert!(endless.next::<WatchRequest>().is_none());
        assert_eq!(
            endless.push(b"{\"key\":\"AAAA").unwrap_err().code(),
            Code::ResourceExhausted
        );
    }
}

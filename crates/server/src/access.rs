//! What etcd's `accessController` (`embed/serve.go`) does to every HTTP
//! request on a client URL before its handler: gRPC calls pass untouched;
//! on a plain-HTTP listener a `Host` not in `--host-whitelist` gets 421
//! with etcd's DNS-rebinding text; on a TLS listener with client
//! certificate auth and auth enabled, a gateway call from a certificate
//! with a Common Name gets 400 (the CN would not be the user, as over
//! gRPC); CORS headers go on every answer whose origin `--cors` allows;
//! `OPTIONS` (a browser's preflight) gets 200 with nothing else.

use std::sync::Arc;

use axum::body::Body;
use axum::http::{header, HeaderMap, HeaderValue, Method, Request, Response, StatusCode};

use crate::etcdserver::EtcdServer;
use crate::http::go_error;
use crate::listener::ConnInfo;

/// The access rules of one client listener.
#[derive(Clone)]
pub struct Access {
    server: Arc<EtcdServer>,
    /// A TLS listener: no `Host` check.
    secure: bool,
}

impl Access {
    /// The rules for a listener of `server`, TLS or not.
    pub fn new(server: Arc<EtcdServer>, secure: bool) -> Access {
        Access { server, secure }
    }

    /// Whether `req` is a gRPC call, which the rules leave alone.
    pub fn is_grpc<B>(req: &Request<B>) -> bool {
        req.headers()
            .get(header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|v| v.starts_with("application/grpc"))
    }

    /// The answer `req` gets instead of its handler's, if any.
    pub fn screen<B>(&self, req: &Request<B>, conn: &ConnInfo) -> Option<Response<Body>> {
        let cfg = &self.server.cfg;
        if !self.secure {
            let host = hostname(req);
            if !allowed(&cfg.host_whitelist, &host) {
                tracing::warn!(host = %host, "rejecting HTTP request to prevent DNS rebinding attacks");
                return Some(go_error(StatusCode::MISDIRECTED_REQUEST, &rebinding(&host)));
            }
        } else if cfg.client_tls.client_cert_auth
            && self.server.auth.is_enabled()
            && req.uri().path().starts_with("/v3/")
            && conn.common_name.as_deref().is_some_and(|cn| !cn.is_empty())
        {
            return Some(go_error(
                StatusCode::BAD_REQUEST,
                "CommonName of client sending a request against gateway will be ignored and not used as expected",
            ));
        }
        if req.method() == Method::OPTIONS {
            let mut resp = Response::new(Body::empty());
            self.add_cors(req.headers().get(header::ORIGIN), resp.headers_mut());
            return Some(resp);
        }
        None
    }

    /// Adds etcd's CORS headers to `out` when `--cors` allows any origin
    /// (`*`) or the request's `origin`.
    pub fn add_cors(&self, origin: Option<&HeaderValue>, out: &mut HeaderMap) {
        let cors = &self.server.cfg.cors;
        let origin = if cors.is_empty() {
            HeaderValue::from_static("*")
        } else {
            match origin {
                Some(o) if o.to_str().is_ok_and(|o| allowed(cors, o)) => o.clone(),
                _ => return,
            }
        };
        out.insert(
            header::ACCESS_CONTROL_ALLOW_METHODS,
            HeaderValue::from_static("POST, GET, OPTIONS, PUT, DELETE"),
        );
        out.insert(header::ACCESS_CONTROL_ALLOW_ORIGIN, origin);
        out.insert(
            header::ACCESS_CONTROL_ALLOW_HEADERS,
            HeaderValue::from_static("accept, content-type, authorization"),
        );
    }
}

/// Whether `list` (empty: anything) allows `name`.
fn allowed(list: &[String], name: &str) -> bool {
    list.is_empty() || list.iter().any(|e| e == name)
}

/// The request's host name without its port (Go's `req.Host`: the `Host`
/// header, or the HTTP/2 authority).
fn hostname<B>(req: &Request<B>) -> String {
    let host = req
        .headers()
        .get(header::HOST)
        .and_then(|v| v.to_str().ok())
        .map(str::to_string)
        .or_else(|| req.uri().authority().map(|a| a.as_str().to_string()))
        .unwrap_or_default();
    match host.rsplit_once(':') {
        Some((h, port)) if port.bytes().all(|b| b.is_ascii_digit()) => {
            h.trim_start_matches('[').trim_end_matches(']').to_string()
        }
        _ => host,
    }
}

/// etcd's answer to a `Host` it does not know.
fn rebinding(host: &str) -> String {
    format!(
        "\netcd received your request, but the Host header was unrecognized.\n\n\
         To fix this, choose one of the following options:\n\
         - Enable TLS, then any HTTPS request will be allowed.\n\
         - Add the hostname you want to use to the whitelist in settings.\n  \
         - e.g. etcd --host-whitelist {host:?}\n\n\
         This requirement has been added to help prevent \"DNS Rebinding\" attacks (CVE-2018-5702).\n"
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn host_names_lose_their_port() {
        let req = |host: &str| Request::builder().header("host", host).body(()).unwrap();
        assert_eq!(hostname(&req("example.com:2379")), "example.com");
        assert_eq!(hostname(&req("example.com")), "example.com");
        assert_eq!(hostname(&req("[::1]:2379")), "::1");
    }
}

//! The HTTP endpoints on the client port beside gRPC: `/health` and
//! `/version`, with etcd 3.5's JSON bodies, and what any other path gets
//! ([`not_found`]).

use std::sync::Arc;

use axum::extract::Request;
use axum::http::Method;
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{any, get};
use axum::{Json, Router};
use serde_json::{json, Value};

use api::etcdserverpb::AlarmType;

use crate::config::SERVER_VERSION;
use crate::etcdserver::alarms::alarm_name;
use crate::etcdserver::EtcdServer;

/// `/health`, `/livez`, `/readyz` (each check also at its own subpath,
/// e.g. `/readyz/linearizable_read`) and `/version` for `server`.
pub fn router(server: Arc<EtcdServer>) -> Router {
    let mut r = Router::new();
    let s = server.clone();
    r = r.route("/health", any(move |req: Request| health(s.clone(), req)));
    for kind in [Probe::Livez, Probe::Readyz] {
        let s = server.clone();
        r = r.route(
            kind.path(),
            any(move |req: Request| probe(s.clone(), kind, None, req)),
        );
        for check in kind.checks() {
            let s = server.clone();
            r = r.route(
                &format!("{}/{}", kind.path(), check.name()),
                any(move |req: Request| probe(s.clone(), kind, Some(*check), req)),
            );
        }
    }
    r.route("/version", get(move || version(server.clone())))
}

/// Go's `http.Error(w, "Method Not Allowed", 405)` with `Allow: GET`, as
/// etcd's health handlers answer anything but GET.
fn method_not_allowed() -> Response {
    let mut resp = go_error(StatusCode::METHOD_NOT_ALLOWED, "Method Not Allowed");
    resp.headers_mut()
        .insert(header::ALLOW, header::HeaderValue::from_static("GET"));
    resp
}

/// Go's `http.Error(w, text, status)`: `text` and a newline as plain text,
/// not to be sniffed.
pub fn go_error(status: StatusCode, text: &str) -> Response {
    (
        status,
        [
            (header::CONTENT_TYPE, "text/plain; charset=utf-8"),
            (header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
        ],
        format!("{text}\n"),
    )
        .into_response()
}

/// The values of query parameter `name` in `req` (`?exclude=a&exclude=b`).
fn query_values(req: &Request, name: &str) -> Vec<String> {
    req.uri()
        .query()
        .unwrap_or("")
        .split('&')
        .filter_map(|pair| pair.split_once('=').or(Some((pair, ""))))
        .filter(|(k, _)| *k == name)
        .map(|(_, v)| v.to_string())
        .collect()
}

/// A read of one key, as etcd's health checks make (as root, so auth never
/// fails it): serializable reads this member's store (on a blocking
/// thread), linearizable also goes through ReadIndex first.
async fn read_check(s: &EtcdServer, serializable: bool) -> Result<(), String> {
    if !serializable {
        s.linearizable_read().await.map_err(|e| e.to_string())?;
    }
    let store = s.store.clone();
    let opts = storage::mvcc::RangeOptions {
        limit: 1,
        rev: 0,
        count_only: false,
    };
    tokio::task::spawn_blocking(move || {
        store
            .range(&[0], storage::mvcc::RangeEnd::Unbounded, opts)
            .map(drop)
            .map_err(|e| e.to_string())
    })
    .await
    .map_err(|e| e.to_string())?
}

/// etcd 3.5's `/health`: 200 `{"health":"true","reason":""}`, else 503
/// with the first reason: an active alarm whose type is not in
/// `?exclude=` (`ALARM NOSPACE`, `ALARM CORRUPT`), `RAFT NO LEADER` when
/// there is no leader (not checked with `?serializable=true`), `RANGE
/// ERROR:<error>` when the read fails.
async fn health(s: Arc<EtcdServer>, req: Request) -> Response {
    if req.method() != Method::GET {
        return method_not_allowed();
    }
    let serializable = query_values(&req, "serializable")
        .first()
        .map(String::as_str)
        == Some("true");
    let excluded = query_values(&req, "exclude");
    let alarm = s
        .alarms
        .get(AlarmType::None as i32)
        .into_iter()
        .map(|a| alarm_name(a.alarm))
        .find(|name| !excluded.iter().any(|e| e == name));
    let reason = if let Some(name) = alarm {
        Some(format!("ALARM {name}"))
    } else if !serializable && s.leader() == 0 {
        Some("RAFT NO LEADER".to_string())
    } else {
        read_check(&s, serializable)
            .await
            .err()
            .map(|e| format!("RANGE ERROR:{e}"))
    };
    // Go writes both with text/plain (sniffed, or http.Error's, which also
    // sets nosniff), the failure with a newline.
    match reason {
        None => metrics::HEALTH_SUCCESS.inc(),
        Some(_) => metrics::HEALTH_FAILURES.inc(),
    }
    let (status, body) = match reason {
        None => (
            StatusCode::OK,
            json!({"health": "true", "reason": ""}).to_string(),
        ),
        Some(r) => (
            StatusCode::SERVICE_UNAVAILABLE,
            format!("{}\n", json!({"health": "false", "reason": r})),
        ),
    };
    let mut resp = (
        status,
        [(header::CONTENT_TYPE, "text/plain; charset=utf-8")],
        body,
    )
        .into_response();
    if status != StatusCode::OK {
        resp.headers_mut().insert(
            header::X_CONTENT_TYPE_OPTIONS,
            header::HeaderValue::from_static("nosniff"),
        );
    }
    resp
}

/// etcd 3.6's Kubernetes-style probes.
#[derive(Clone, Copy)]
enum Probe {
    /// `/livez`: the member's own store answers.
    Livez,
    /// `/readyz`: no data corruption, the store answers, and so does the
    /// cluster (a linearizable read).
    Readyz,
}

/// One check of a probe.
#[derive(Clone, Copy)]
enum Check {
    /// No CORRUPT alarm is active.
    DataCorruption,
    /// A serializable read succeeds.
    SerializableRead,
    /// A linearizable read succeeds.
    LinearizableRead,
}

impl Probe {
    fn path(self) -> &'static str {
        match self {
            Probe::Livez => "/livez",
            Probe::Readyz => "/readyz",
        }
    }

    fn checks(self) -> &'static [Check] {
        match self {
            Probe::Livez => &[Check::SerializableRead],
            Probe::Readyz => &[
                Check::DataCorruption,
                Check::SerializableRead,
                Check::LinearizableRead,
            ],
        }
    }
}

impl Check {
    fn name(self) -> &'static str {
        match self {
            Check::DataCorruption => "data_corruption",
            Check::SerializableRead => "serializable_read",
            Check::LinearizableRead => "linearizable_read",
        }
    }

    async fn run(self, s: &EtcdServer) -> Result<(), String> {
        match self {
            Check::DataCorruption if s.alarms.active(AlarmType::Corrupt) => {
                Err("alarm activated: CORRUPT".to_string())
            }
            Check::DataCorruption => Ok(()),
            Check::SerializableRead => read_check(s, true).await,
            Check::LinearizableRead => read_check(s, false).await,
        }
    }
}

/// Runs `only` or else every check of `kind` not in `?exclude=`: 200
/// `ok` (after a `[+]name ok` line per check with `?verbose`), or 503
/// with every check's line (`[-]name failed: <error>`) whatever was asked,
/// as etcd 3.6 answers.
async fn probe(s: Arc<EtcdServer>, kind: Probe, only: Option<Check>, req: Request) -> Response {
    if req.method() != Method::GET {
        return method_not_allowed();
    }
    let excluded = query_values(&req, "exclude");
    let checks: Vec<Check> = match only {
        Some(c) => vec![c],
        None => kind
            .checks()
            .iter()
            .copied()
            .filter(|c| !excluded.iter().any(|e| e == c.name()))
            .collect(),
    };
    let mut report = String::new();
    let mut failed = false;
    for c in checks {
        match c.run(&s).await {
            Ok(()) => report.push_str(&format!("[+]{} ok\n", c.name())),
            Err(e) => {
                failed = true;
                report.push_str(&format!("[-]{} failed: {e}\n", c.name()));
            }
        }
    }
    let text = [
        (header::CONTENT_TYPE, "text/plain; charset=utf-8"),
        (header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
    ];
    if failed {
        return (StatusCode::SERVICE_UNAVAILABLE, text, format!("{report}\n")).into_response();
    }
    let verbose = req
        .uri()
        .query()
        .unwrap_or("")
        .split('&')
        .any(|p| p == "verbose" || p.starts_with("verbose="));
    let body = if verbose {
        format!("{report}ok\n")
    } else {
        "ok\n".to_string()
    };
    (StatusCode::OK, text, body).into_response()
}

/// `{"etcdserver":"3.5.17","etcdcluster":"3.5.0"}`; the cluster version is
/// `not_decided` until raft has set it.
async fn version(s: Arc<EtcdServer>) -> Json<Value> {
    let cluster = s
        .cluster_version
        .get()
        .unwrap_or_else(|| "not_decided".to_string());
    Json(json!({"etcdserver": SERVER_VERSION, "etcdcluster": cluster}))
}

/// Any path nothing serves: a gRPC call to an unknown service gets gRPC's
/// Unimplemented (as tonic answers); an HTTP request gets Go's
/// `404 page not found` as etcd's HTTP mux writes it.
pub async fn not_found(req: Request) -> Response {
    let grpc = req
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("application/grpc"));
    if grpc {
        let (parts, ()) = tonic::Status::unimplemented("")
            .into_http::<()>()
            .into_parts();
        return Response::from_parts(parts, axum::body::Body::empty());
    }
    (
        StatusCode::NOT_FOUND,
        [
            (header::CONTENT_TYPE, "text/plain; charset=utf-8"),
            (header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
        ],
        "404 page not found\n",
    )
        .into_response()
}

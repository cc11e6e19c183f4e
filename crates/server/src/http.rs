//! The HTTP endpoints on the client port beside gRPC: `/health` and
//! `/version`, with etcd 3.5's JSON bodies, and what any other path gets
//! ([`not_found`]).

use std::sync::Arc;

use axum::extract::Request;
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use serde_json::{json, Value};

use crate::config::SERVER_VERSION;
use crate::etcdserver::EtcdServer;

/// `/health` and `/version` for `server`.
pub fn router(server: Arc<EtcdServer>) -> Router {
    let s = server.clone();
    Router::new()
        .route("/health", get(move || health(s.clone())))
        .route("/version", get(move || version(server.clone())))
}

/// Healthy when there is a leader and a linearizable read goes through
/// (etcd 3.5 `/health`): 200 `{"health":"true","reason":""}`, else 503
/// with the reason.
async fn health(s: Arc<EtcdServer>) -> (StatusCode, Json<Value>) {
    let reason = if s.leader() == 0 {
        Some("RAFT NO LEADER".to_string())
    } else {
        s.linearizable_read().await.err().map(|e| e.to_string())
    };
    match reason {
        None => (
            StatusCode::OK,
            Json(json!({"health": "true", "reason": ""})),
        ),
        Some(r) => (
            StatusCode::SERVICE_UNAVAILABLE,
            Json(json!({"health": "false", "reason": r})),
        ),
    }
}

/// `{"etcdserver":"3.5.0","etcdcluster":"3.5.0"}`; the cluster version is
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

//! Serving clients on one listener (etcd's `embed/serve.go`): gRPC and the
//! HTTP endpoints on the same port, HTTP/2 and HTTP/1.1 told apart per
//! connection (by ALPN and preface), `--max-concurrent-streams` per
//! HTTP/2 connection. Each request carries its connection's
//! [`ConnInfo`](crate::listener::ConnInfo) as an extension (`req.extensions().get::<ConnInfo>()` in a
//! tonic handler), for the auth layer to take the verified client
//! certificate's Common Name as the user.

use std::convert::Infallible;

use axum::body::Body;
use hyper::body::Incoming as HyperBody;
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto::Builder;
use tower::ServiceExt;

use crate::access::Access;
use crate::authority::FixAuthority;
use crate::listener::Incoming;

/// Serves `app` to every connection of `incoming` until the listener
/// stops. Connections are served in tasks of their own; one that fails
/// only ends itself. Dropping the future ends every connection it serves
/// (the member is stopping).
pub async fn serve_clients(
    mut incoming: Incoming,
    app: axum::Router,
    access: Option<Access>,
    max_concurrent_streams: u32,
) {
    let mut builder = Builder::new(TokioExecutor::new());
    builder
        .http2()
        .max_concurrent_streams(max_concurrent_streams);
    let mut connections = tokio::task::JoinSet::new();
    loop {
        let conn = tokio::select! {
            c = incoming.next() => match c {
                Some(c) => c,
                None => return,
            },
            // Reap finished connections so the set holds only live ones.
            Some(_) = connections.join_next(), if !connections.is_empty() => continue,
        };
        let info = conn.info.clone();
        let app = app.clone();
        let access = access.clone();
        let service = hyper::service::service_fn(move |mut req: hyper::Request<HyperBody>| {
            // etcd's access rules, for HTTP requests only.
            let access = access.clone().filter(|_| !Access::is_grpc(&req));
            let early = access.as_ref().and_then(|a| a.screen(&req, &info));
            let origin = req.headers().get(axum::http::header::ORIGIN).cloned();
            req.extensions_mut().insert(info.clone());
            let app = app.clone();
            async move {
                if let Some(resp) = early {
                    return Ok(resp);
                }
                let mut resp = app
                    .oneshot(req.map(Body::new))
                    .await
                    .unwrap_or_else(|e| match e {});
                if let Some(a) = &access {
                    a.add_cors(origin.as_ref(), resp.headers_mut());
                }
                Ok::<_, Infallible>(resp)
            }
        });
        let builder = builder.clone();
        connections.spawn(async move {
            let io = TokioIo::new(FixAuthority::new(conn));
            if let Err(e) = builder.serve_connection_with_upgrades(io, service).await {
                tracing::debug!(error = %e, "client connection ended with an error");
            }
        });
    }
}

//! The HTTP/JSON gateway on the client URLs: every v3 RPC at the path of
//! etcd's `google.api.http` annotations (`rpc.proto`, `v3lock.proto`,
//! `v3election.proto`), under `/v3/` and etcd 3.5's `/v3beta/` alias.
//! Each call is decoded from the proto3 JSON mapping (pbjson, in `api`),
//! handed to the same gRPC service a gRPC client reaches (with the
//! `Authorization` header as the `authorization` metadata etcd's auth
//! reads, and the connection's TLS identity), and its answer encoded as
//! etcd's grpc-gateway writes it (`json.rs`). The gateway only
//! translates: the services check, the server API layer proposes.

mod json;
mod stream;

use std::future::Future;
use std::sync::Arc;

use api::etcdserverpb::auth_server::Auth;
use api::etcdserverpb::cluster_server::Cluster;
use api::etcdserverpb::kv_server::Kv;
use api::etcdserverpb::lease_server::Lease;
use api::etcdserverpb::maintenance_server::Maintenance;
use api::etcdserverpb::watch_server::Watch;
use api::v3electionpb::election_server::Election;
use api::v3lockpb::lock_server::Lock;
use axum::extract::Request as HttpRequest;
use axum::http::header;
use axum::http::Method;
use axum::response::Response;
use axum::routing::{any, MethodRouter};
use axum::Router;
use serde::de::DeserializeOwned;
use serde::Serialize;
use tonic::metadata::MetadataValue;
use tonic::{Request, Status};

use crate::etcdserver::EtcdServer;
use crate::monitoring::MethodCounts;
use crate::v3rpc::{self, GRPC_OVERHEAD_BYTES};

/// What one call needs besides its body: the server (for its limits and
/// whether it is a learner) and the gRPC method it stands for.
#[derive(Clone)]
struct Call {
    server: Arc<EtcdServer>,
    method: &'static str,
    /// The method's gRPC counters: the gateway's calls count as etcd's
    /// loopback gRPC calls do.
    counts: Option<MethodCounts>,
}

impl Call {
    /// The most a request may encode to, as the gRPC server takes it.
    fn max_request(&self) -> usize {
        self.server.cfg.max_request_bytes + GRPC_OVERHEAD_BYTES
    }

    /// Refuses what a learner does not serve, as the gRPC server would.
    fn refuse_learner(&self) -> Result<(), Status> {
        if v3rpc::learner_refuses(&self.server, self.method) {
            return Err(crate::rpctypes::EtcdError::NotSupportedForLearner.into());
        }
        Ok(())
    }

    /// Splits `req` into its body and a gRPC request of no message that
    /// carries its metadata and extensions; refuses what a learner does
    /// not serve.
    fn prepare(&self, req: HttpRequest) -> Result<(Request<()>, axum::body::Body), Status> {
        self.refuse_learner()?;
        Ok(self.split(req))
    }

    /// [`Call::prepare`], then the whole body (for a server-streaming
    /// call, whose one request is read before the stream starts).
    async fn prepare_read(&self, req: HttpRequest) -> Result<(Request<()>, bytes::Bytes), Status> {
        let (md, body) = self.prepare(req)?;
        Ok((md, self.body(body).await?))
    }

    /// Splits `req` as [`Call::prepare`] does, without the learner check.
    fn split(&self, req: HttpRequest) -> (Request<()>, axum::body::Body) {
        let (parts, body) = req.into_parts();
        let mut r = Request::new(());
        if let Some(token) = parts
            .headers
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| MetadataValue::try_from(v).ok())
        {
            r.metadata_mut().insert("authorization", token);
        }
        *r.extensions_mut() = parts.extensions;
        (r, body)
    }

    /// The most JSON one request may take: 6 bytes for each of the
    /// request's (base64 takes 4 for 3, escapes up to 6 for 1).
    fn json_limit(&self) -> usize {
        6 * self.max_request()
    }

    /// The whole body, at most [`Call::json_limit`]. Errors: past the
    /// limit, ResourceExhausted as the gRPC server's; a body that fails
    /// to arrive, InvalidArgument with the reason, as grpc-gateway's.
    async fn body(&self, body: axum::body::Body) -> Result<bytes::Bytes, Status> {
        axum::body::to_bytes(body, self.json_limit())
            .await
            .map_err(|e| {
                let e = e.into_inner();
                if e.is::<http_body_util::LengthLimitError>() {
                    Status::resource_exhausted("grpc: received message larger than max")
                } else {
                    Status::invalid_argument(e.to_string())
                }
            })
    }

    /// A unary call: the body decoded as `Req`, `call` made, its answer
    /// or error as etcd's gateway writes them.
    async fn unary<Req, Resp, F, Fut>(self, req: HttpRequest, call: F) -> Response
    where
        Req: DeserializeOwned + Default + prost::Message,
        Resp: Serialize + prost::Message,
        F: FnOnce(Request<Req>) -> Fut,
        Fut: Future<Output = Result<tonic::Response<Resp>, Status>>,
    {
        // As etcd's gateway: a body that does not decode makes no gRPC
        // call; the call (counted) gets the learner and size checks.
        let mut guard = None;
        let answer = async {
            let (r, body) = self.split(req);
            let body = self.body(body).await?;
            let msg = json::decode::<Req>(&body)?;
            guard = self.counts.map(MethodCounts::start);
            self.refuse_learner()?;
            let (len, max) = (msg.encoded_len(), self.max_request());
            if len > max {
                return Err(Status::resource_exhausted(format!(
                    "grpc: received message larger than max ({len} vs. {max})"
                )));
            }
            if let Some(c) = self.counts {
                c.received(len);
            }
            let (md, ext, ()) = r.into_parts();
            call(Request::from_parts(md, ext, msg)).await
        };
        let answer = answer.await;
        if let Some(c) = self.counts.filter(|_| answer.is_ok()) {
            c.sent(answer.as_ref().map_or(0, |r| r.get_ref().encoded_len()));
        }
        if let Some(g) = guard {
            g.finish(
                answer
                    .as_ref()
                    .map_or_else(Status::code, |_| tonic::Code::Ok),
            );
        }
        match answer {
            Ok(resp) => json::from_call(json::json_response(
                axum::http::StatusCode::OK,
                resp.get_ref(),
            )),
            Err(e) => json::error(&e),
        }
    }
}

/// A POST route for gRPC `method` whose handler gets the [`Call`] and
/// the HTTP request.
fn route<H, Fut>(server: &Arc<EtcdServer>, method: &'static str, handler: H) -> MethodRouter
where
    H: Fn(Call, HttpRequest) -> Fut + Clone + Send + Sync + 'static,
    Fut: Future<Output = Response> + Send + 'static,
{
    let call = Call {
        server: server.clone(),
        method,
        counts: MethodCounts::of(method),
    };
    let handler = move |req: HttpRequest| {
        let answer = (req.method() == Method::POST).then(|| handler(call.clone(), req));
        async move {
            match answer {
                Some(a) => a.await,
                None => method_not_allowed(),
            }
        }
    };
    any(handler)
}

/// grpc-gateway's answer to a path it serves asked with another method
/// than POST: Go's `http.Error` with 405's text (and no `Allow`).
fn method_not_allowed() -> Response {
    crate::http::go_error(
        axum::http::StatusCode::METHOD_NOT_ALLOWED,
        "Method Not Allowed",
    )
}

/// Declares unary routes: `path => Trait::method on service, "gRPC method"`.
macro_rules! unary_routes {
    ($router:ident, $server:ident; $($path:literal => $tr:ident :: $m:ident on $svc:ident, $grpc:literal;)*) => {
        $(
            let svc = $svc.clone();
            $router = $router.route($path, route(&$server, $grpc, move |c, req| {
                let svc = svc.clone();
                async move { c.unary(req, |r| async move { $tr::$m(&*svc, r).await }).await }
            }));
        )*
    };
}

/// The gateway's routes for `server`, under `/v3` and `/v3beta`.
pub fn router(server: Arc<EtcdServer>) -> Router {
    let v3 = v3_routes(&server).fallback(|| async {
        // grpc-gateway's answer to a path it has no call for.
        (
            axum::http::StatusCode::NOT_FOUND,
            [(header::CONTENT_TYPE, "text/plain; charset=utf-8")],
            "Not Found\n",
        )
    });
    Router::new().nest("/v3", v3.clone()).nest("/v3beta", v3)
}

fn v3_routes(server: &Arc<EtcdServer>) -> Router {
    let kv = Arc::new(v3rpc::kv::KvService::new(server.clone()));
    let lease = Arc::new(v3rpc::lease::LeaseService::new(server.clone()));
    let cluster = Arc::new(v3rpc::cluster::ClusterService::new(server.clone()));
    let maintenance = Arc::new(v3rpc::maintenance::MaintenanceService::new(server.clone()));
    let auth = Arc::new(v3rpc::auth::AuthService::new(server.clone()));
    let watch = Arc::new(v3rpc::watch::WatchService::new(server.clone()));
    let lock = Arc::new(v3rpc::lock::LockService::new(server.clone()));
    let election = Arc::new(v3rpc::election::ElectionService::new(server.clone()));
    let mut r = Router::new();
    unary_routes!(r, server;
        "/kv/range" => Kv::range on kv, "/etcdserverpb.KV/Range";
        "/kv/put" => Kv::put on kv, "/etcdserverpb.KV/Put";
        "/kv/deleterange" => Kv::delete_range on kv, "/etcdserverpb.KV/DeleteRange";
        "/kv/txn" => Kv::txn on kv, "/etcdserverpb.KV/Txn";
        "/kv/compaction" => Kv::compact on kv, "/etcdserverpb.KV/Compact";
        "/lease/grant" => Lease::lease_grant on lease, "/etcdserverpb.Lease/LeaseGrant";
        "/lease/revoke" => Lease::lease_revoke on lease, "/etcdserverpb.Lease/LeaseRevoke";
        "/kv/lease/revoke" => Lease::lease_revoke on lease, "/etcdserverpb.Lease/LeaseRevoke";
        "/lease/timetolive" => Lease::lease_time_to_live on lease, "/etcdserverpb.Lease/LeaseTimeToLive";
        "/kv/lease/timetolive" => Lease::lease_time_to_live on lease, "/etcdserverpb.Lease/LeaseTimeToLive";
        "/lease/leases" => Lease::lease_leases on lease, "/etcdserverpb.Lease/LeaseLeases";
        "/kv/lease/leases" => Lease::lease_leases on lease, "/etcdserverpb.Lease/LeaseLeases";
        "/cluster/member/add" => Cluster::member_add on cluster, "/etcdserverpb.Cluster/MemberAdd";
        "/cluster/member/remove" => Cluster::member_remove on cluster, "/etcdserverpb.Cluster/MemberRemove";
        "/cluster/member/update" => Cluster::member_update on cluster, "/etcdserverpb.Cluster/MemberUpdate";
        "/cluster/member/list" => Cluster::member_list on cluster, "/etcdserverpb.Cluster/MemberList";
        "/cluster/member/promote" => Cluster::member_promote on cluster, "/etcdserverpb.Cluster/MemberPromote";
        "/maintenance/alarm" => Maintenance::alarm on maintenance, "/etcdserverpb.Maintenance/Alarm";
        "/maintenance/status" => Maintenance::status on maintenance, "/etcdserverpb.Maintenance/Status";
        "/maintenance/defragment" => Maintenance::defragment on maintenance, "/etcdserverpb.Maintenance/Defragment";
        "/maintenance/hash" => Maintenance::hash on maintenance, "/etcdserverpb.Maintenance/Hash";
        "/maintenance/hashkv" => Maintenance::hash_kv on maintenance, "/etcdserverpb.Maintenance/HashKV";
        "/maintenance/transfer-leadership" => Maintenance::move_leader on maintenance, "/etcdserverpb.Maintenance/MoveLeader";
        "/maintenance/downgrade" => Maintenance::downgrade on maintenance, "/etcdserverpb.Maintenance/Downgrade";
        "/auth/enable" => Auth::auth_enable on auth, "/etcdserverpb.Auth/AuthEnable";
        "/auth/disable" => Auth::auth_disable on auth, "/etcdserverpb.Auth/AuthDisable";
        "/auth/status" => Auth::auth_status on auth, "/etcdserverpb.Auth/AuthStatus";
        "/auth/authenticate" => Auth::authenticate on auth, "/etcdserverpb.Auth/Authenticate";
        "/auth/user/add" => Auth::user_add on auth, "/etcdserverpb.Auth/UserAdd";
        "/auth/user/get" => Auth::user_get on auth, "/etcdserverpb.Auth/UserGet";
        "/auth/user/list" => Auth::user_list on auth, "/etcdserverpb.Auth/UserList";
        "/auth/user/delete" => Auth::user_delete on auth, "/etcdserverpb.Auth/UserDelete";
        "/auth/user/changepw" => Auth::user_change_password on auth, "/etcdserverpb.Auth/UserChangePassword";
        "/auth/user/grant" => Auth::user_grant_role on auth, "/etcdserverpb.Auth/UserGrantRole";
        "/auth/user/revoke" => Auth::user_revoke_role on auth, "/etcdserverpb.Auth/UserRevokeRole";
        "/auth/role/add" => Auth::role_add on auth, "/etcdserverpb.Auth/RoleAdd";
        "/auth/role/get" => Auth::role_get on auth, "/etcdserverpb.Auth/RoleGet";
        "/auth/role/list" => Auth::role_list on auth, "/etcdserverpb.Auth/RoleList";
        "/auth/role/delete" => Auth::role_delete on auth, "/etcdserverpb.Auth/RoleDelete";
        "/auth/role/grant" => Auth::role_grant_permission on auth, "/etcdserverpb.Auth/RoleGrantPermission";
        "/auth/role/revoke" => Auth::role_revoke_permission on auth, "/etcdserverpb.Auth/RoleRevokePermission";
        "/lock/lock" => Lock::lock on lock, "/v3lockpb.Lock/Lock";
        "/lock/unlock" => Lock::unlock on lock, "/v3lockpb.Lock/Unlock";
        "/election/campaign" => Election::campaign on election, "/v3electionpb.Election/Campaign";
        "/election/proclaim" => Election::proclaim on election, "/v3electionpb.Election/Proclaim";
        "/election/leader" => Election::leader on election, "/v3electionpb.Election/Leader";
        "/election/resign" => Election::resign on election, "/v3electionpb.Election/Resign";
    );
    let w = watch.clone();
    r = r.route(
        "/watch",
        route(server, "/etcdserverpb.Watch/Watch", move |c, req| {
            let w = w.clone();
            async move {
                match c.prepare(req) {
                    Ok((md, body)) => {
                        stream::bidi(md, body, c.json_limit(), c.counts, |r| async move {
                            w.watch(r).await
                        })
                        .await
                    }
                    Err(e) => json::error(&e),
                }
            }
        }),
    );
    let l = lease.clone();
    r = r.route(
        "/lease/keepalive",
        route(
            server,
            "/etcdserverpb.Lease/LeaseKeepAlive",
            move |c, req| {
                let l = l.clone();
                async move {
                    match c.prepare(req) {
                        Ok((md, body)) => {
                            stream::bidi(md, body, c.json_limit(), c.counts, |r| async move {
                                l.lease_keep_alive(r).await
                            })
                            .await
                        }
                        Err(e) => json::error(&e),
                    }
                }
            },
        ),
    );
    let m = maintenance.clone();
    r = r.route(
        "/maintenance/snapshot",
        route(
            server,
            "/etcdserverpb.Maintenance/Snapshot",
            move |c, req| {
                let m = m.clone();
                async move {
                    match c.prepare_read(req).await {
                        Ok((md, body)) => {
                            stream::server_streaming(md, &body, c.counts, |r| async move {
                                m.snapshot(r).await
                            })
                            .await
                        }
                        Err(e) => json::error(&e),
                    }
                }
            },
        ),
    );
    let e = election.clone();
    r = r.route(
        "/election/observe",
        route(server, "/v3electionpb.Election/Observe", move |c, req| {
            let e = e.clone();
            async move {
                match c.prepare_read(req).await {
                    Ok((md, body)) => {
                        stream::server_streaming(md, &body, c.counts, |r| async move {
                            e.observe(r).await
                        })
                        .await
                    }
                    Err(e) => json::error(&e),
                }
            }
        }),
    );
    r
}

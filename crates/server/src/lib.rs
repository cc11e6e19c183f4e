//! etcd-rs's member: the `etcd` binary's library.
//!
//! - [`config`]: flags and `ETCD_*` variables into one configuration.
//! - [`etcdserver`]: the member itself: raft loop, apply stage, membership,
//!   the KV operations.
//! - [`v3rpc`]: the gRPC services on the client port; [`gateway`]: the
//!   same calls as HTTP/JSON under `/v3/`; [`http`]: `/health`, `/version`
//!   and the answer to any other path, beside them.
//! - [`rafthttp`]: sending raft messages to the other members;
//!   [`peerrpc`]: the Peer service receiving them on the peer URLs.
//!
//! Dependencies point one way: `etcdmain` → `gateway` → the services
//! (`v3rpc`, `peerrpc`, `http`) → `etcdserver` → its raft loop and apply stage
//! (which share `etcdserver::stage`) → `rafthttp`, `lease` → `storage`.
//! - [`lease`]: the lessor: leases, attached keys, expiry; [`auth`]: the
//!   auth store: users, roles, permissions, the auth revision.
//! - [`rpctypes`]: every client-visible error, with etcd's code and text.
//! - [`logging`]: etcd's JSON log lines; [`etcdmain`]: the entry point.
//! - [`monitoring`]: `/metrics` and the gRPC server metrics (the metrics
//!   themselves are the `metrics` crate's).
//! - [`authority`]: the repair of URL-shaped HTTP/2 authorities that
//!   etcdctl 3.4 sends.
//! - [`tls`]: certificates, auto TLS, reloading, the rustls configs;
//!   [`listener`]: http/https/unix/unixs listeners with TLS handshakes off
//!   the accept loop; [`serve`]: gRPC and HTTP for clients on them;
//!   [`access`]: etcd's CORS and `Host` rules for their HTTP requests.

pub mod access;
pub mod auth;
pub mod authority;
pub mod config;
pub mod etcdmain;
pub mod etcdserver;
pub mod gateway;
pub mod http;
pub mod lease;
pub mod listener;
pub mod logging;
pub mod monitoring;
pub mod peerrpc;
pub mod rafthttp;
pub mod rpctypes;
pub mod serve;
pub mod tls;
pub mod v3rpc;

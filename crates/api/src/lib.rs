//! etcd's v3.5 API, generated from the .proto files in `proto/`.
//!
//! Package names, messages and field numbers are etcd's own (the gogoproto
//! and HTTP annotations are dropped), so any etcd client speaks to servers
//! built on these types; `etcdrspb` is etcd-rs's own peer API. etcd's
//! public messages also implement serde's traits in the proto3 JSON
//! mapping of etcd's gateway (pbjson). This crate holds no logic: only the
//! generated code, its re-exports and the etcd version they stand for
//! ([`ETCD_VERSION`]).

#![allow(clippy::all, missing_docs)]

/// The etcd release whose behaviour etcd-rs follows, as servers report it
/// (`Status.version`, `/version`, `etcd_server_version`) and `etcdctl
/// version` prints it. Clients read it as semver: kube-apiserver uses its
/// consistent reads from the watch cache only from 3.5.13 on.
pub const ETCD_VERSION: &str = "3.5.17";

/// `mvccpb`: KeyValue and Event (etcd `api/mvccpb/kv.proto`).
pub mod mvccpb {
    tonic::include_proto!("mvccpb");
    include!(concat!(env!("OUT_DIR"), "/mvccpb.serde.rs"));
}

/// `authpb`: users, roles and permissions (etcd `api/authpb/auth.proto`).
pub mod authpb {
    tonic::include_proto!("authpb");
    include!(concat!(env!("OUT_DIR"), "/authpb.serde.rs"));
}

/// `membershippb`: member attributes replicated through raft.
pub mod membershippb {
    tonic::include_proto!("membershippb");
    include!(concat!(env!("OUT_DIR"), "/membershippb.serde.rs"));
}

/// `etcdserverpb`: the v3 services (KV, Watch, Lease, Cluster, Maintenance,
/// Auth) and the raft log payload `InternalRaftRequest`.
pub mod etcdserverpb {
    tonic::include_proto!("etcdserverpb");
    include!(concat!(env!("OUT_DIR"), "/etcdserverpb.serde.rs"));
}

/// `v3lockpb`: the Lock service.
pub mod v3lockpb {
    tonic::include_proto!("v3lockpb");
    include!(concat!(env!("OUT_DIR"), "/v3lockpb.serde.rs"));
}

/// `v3electionpb`: the Election service.
pub mod v3electionpb {
    tonic::include_proto!("v3electionpb");
    include!(concat!(env!("OUT_DIR"), "/v3electionpb.serde.rs"));
}

/// `etcdrspb`: etcd-rs's own member-to-member service (raft messages).
pub mod etcdrspb {
    tonic::include_proto!("etcdrspb");
}

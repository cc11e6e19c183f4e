//! etcd-rs's Prometheus metrics, with etcd 3.5's names, types, help
//! texts, labels and units (seconds, bytes), so etcd's dashboards and
//! alerts find their series. Every metric lives in one registry,
//! [`registry`], which `/metrics` renders ([`render`]); the process
//! collector adds `process_*` as Go's client does. A leaf crate: storage
//! (fsync and commit latencies) and the server (everything else) both
//! record into it, and it depends on neither.

use std::sync::LazyLock;

use prometheus::{
    exponential_buckets, Encoder, GaugeVec, Histogram, HistogramOpts, HistogramVec, IntCounter,
    IntCounterVec, IntGauge, Opts, Registry, TextEncoder,
};

/// The registry `/metrics` renders.
pub fn registry() -> &'static Registry {
    static REGISTRY: LazyLock<Registry> = LazyLock::new(|| {
        let r = Registry::new();
        // process_cpu_seconds_total, process_resident_memory_bytes, ...
        let _ = r.register(Box::new(
            prometheus::process_collector::ProcessCollector::for_self(),
        ));
        r
    });
    &REGISTRY
}

fn register<M: prometheus::core::Collector + Clone + 'static>(m: M) -> M {
    registry()
        .register(Box::new(m.clone()))
        .expect("every metric name is registered once");
    m
}

fn counter(name: &str, help: &str) -> IntCounter {
    register(IntCounter::new(name, help).expect("a valid counter"))
}

fn gauge(name: &str, help: &str) -> IntGauge {
    register(IntGauge::new(name, help).expect("a valid gauge"))
}

/// A gauge set to 1 for one label value: the running version, the id.
fn info(name: &str, help: &str, label: &str) -> GaugeVec {
    register(GaugeVec::new(Opts::new(name, help), &[label]).expect("a valid gauge"))
}

/// etcd's latency buckets for disk operations: 1 ms to 8.192 s.
fn disk_histogram(name: &str, help: &str) -> Histogram {
    let buckets = exponential_buckets(0.001, 2.0, 14).expect("valid buckets");
    register(
        Histogram::with_opts(HistogramOpts::new(name, help).buckets(buckets))
            .expect("a valid histogram"),
    )
}

macro_rules! metric {
    ($(#[$doc:meta])* $name:ident: $ty:ty = $init:expr) => {
        $(#[$doc])*
        pub static $name: LazyLock<$ty> = LazyLock::new(|| $init);
    };
}

metric!(
    /// `etcd_server_has_leader`: 1 while this member knows a leader.
    HAS_LEADER: IntGauge = gauge("etcd_server_has_leader", "Whether or not a leader exists. 1 is existence, 0 is not.")
);
metric!(
    /// `etcd_server_is_leader`: 1 while this member is the leader.
    IS_LEADER: IntGauge = gauge("etcd_server_is_leader", "Whether or not this member is a leader. 1 if is, 0 otherwise.")
);
metric!(
    /// `etcd_server_leader_changes_seen_total`.
    LEADER_CHANGES: IntCounter = counter("etcd_server_leader_changes_seen_total", "The number of leader changes seen.")
);
metric!(
    /// `etcd_server_proposals_committed_total` (a gauge in etcd): the
    /// raft commit index.
    PROPOSALS_COMMITTED: IntGauge = gauge("etcd_server_proposals_committed_total", "The total number of consensus proposals committed.")
);
metric!(
    /// `etcd_server_proposals_applied_total` (a gauge): the applied index.
    PROPOSALS_APPLIED: IntGauge = gauge("etcd_server_proposals_applied_total", "The total number of consensus proposals applied.")
);
metric!(
    /// `etcd_server_proposals_pending`: proposals waiting to be applied.
    PROPOSALS_PENDING: IntGauge = gauge("etcd_server_proposals_pending", "The current number of pending proposals to commit.")
);
metric!(
    /// `etcd_server_proposals_failed_total`.
    PROPOSALS_FAILED: IntCounter = counter("etcd_server_proposals_failed_total", "The total number of failed proposals seen.")
);
metric!(
    /// `etcd_server_heartbeat_send_failures_total`.
    HEARTBEAT_SEND_FAILURES: IntCounter = counter("etcd_server_heartbeat_send_failures_total", "The total number of leader heartbeat send failures (likely overloaded from slow disk).")
);
metric!(
    /// `etcd_server_slow_apply_total`: applies slower than 100 ms.
    SLOW_APPLY: IntCounter = counter("etcd_server_slow_apply_total", "The total number of slow apply requests (likely overloaded from slow disk).")
);
metric!(
    /// `etcd_server_id{server_id="<hex>"}` 1.
    SERVER_ID: GaugeVec = info("etcd_server_id", "Server or member ID in hexadecimal format. 1 for 'server_id' label with current ID.", "server_id")
);
metric!(
    /// `etcd_server_version{server_version="3.5.17"}` 1.
    SERVER_VERSION: GaugeVec = info("etcd_server_version", "Which version is running. 1 for 'server_version' label with current version.", "server_version")
);
metric!(
    /// `etcd_cluster_version{cluster_version="3.5"}` 1.
    CLUSTER_VERSION: GaugeVec = info("etcd_cluster_version", "Which version is running. 1 for 'cluster_version' label with current cluster version", "cluster_version")
);
metric!(
    /// `etcd_server_quota_backend_bytes`, in bytes.
    QUOTA_BACKEND_BYTES: IntGauge = gauge("etcd_server_quota_backend_bytes", "Current backend storage quota size in bytes.")
);
metric!(
    /// `etcd_server_health_success`.
    HEALTH_SUCCESS: IntCounter = counter("etcd_server_health_success", "The total number of successful health checks")
);
metric!(
    /// `etcd_server_health_failures`.
    HEALTH_FAILURES: IntCounter = counter("etcd_server_health_failures", "The total number of failed health checks")
);
metric!(
    /// `etcd_mvcc_db_total_size_in_bytes`: the backend file, in bytes.
    DB_TOTAL_SIZE: IntGauge = gauge("etcd_mvcc_db_total_size_in_bytes", "Total size of the underlying database physically allocated in bytes.")
);
metric!(
    /// `etcd_mvcc_db_total_size_in_use_in_bytes`, in bytes.
    DB_IN_USE_SIZE: IntGauge = gauge("etcd_mvcc_db_total_size_in_use_in_bytes", "Total size of the underlying database logically in use in bytes.")
);
metric!(
    /// `etcd_debugging_mvcc_keys_total`: live keys.
    KEYS_TOTAL: IntGauge = gauge("etcd_debugging_mvcc_keys_total", "Total number of keys.")
);
metric!(
    /// `etcd_debugging_mvcc_current_revision`.
    CURRENT_REVISION: IntGauge = gauge("etcd_debugging_mvcc_current_revision", "The current revision of store.")
);
metric!(
    /// `etcd_debugging_mvcc_compact_revision`.
    COMPACT_REVISION: IntGauge = gauge("etcd_debugging_mvcc_compact_revision", "The revision of the last compaction in store.")
);
metric!(
    /// `etcd_mvcc_put_total`: puts applied, in txns too.
    PUT_TOTAL: IntCounter = counter("etcd_mvcc_put_total", "Total number of puts seen by this member.")
);
metric!(
    /// `etcd_mvcc_delete_total`: delete-ranges applied, in txns too.
    DELETE_TOTAL: IntCounter = counter("etcd_mvcc_delete_total", "Total number of deletes seen by this member.")
);
metric!(
    /// `etcd_mvcc_range_total`: ranges served, in txns too.
    RANGE_TOTAL: IntCounter = counter("etcd_mvcc_range_total", "Total number of ranges seen by this member.")
);
metric!(
    /// `etcd_mvcc_txn_total`: txns applied.
    TXN_TOTAL: IntCounter = counter("etcd_mvcc_txn_total", "Total number of txns seen by this member.")
);
metric!(
    /// `etcd_debugging_mvcc_watcher_total`: watchers on this member.
    WATCHER_TOTAL: IntGauge = gauge("etcd_debugging_mvcc_watcher_total", "Total number of watchers.")
);
metric!(
    /// `etcd_debugging_lease_granted_total`.
    LEASE_GRANTED: IntCounter = counter("etcd_debugging_lease_granted_total", "The total number of granted leases.")
);
metric!(
    /// `etcd_debugging_lease_revoked_total`.
    LEASE_REVOKED: IntCounter = counter("etcd_debugging_lease_revoked_total", "The total number of revoked leases.")
);
metric!(
    /// `etcd_disk_wal_fsync_duration_seconds`, in seconds.
    WAL_FSYNC: Histogram = disk_histogram("etcd_disk_wal_fsync_duration_seconds", "The latency distributions of fsync called by WAL.")
);
metric!(
    /// `etcd_disk_backend_commit_duration_seconds`, in seconds.
    BACKEND_COMMIT: Histogram = disk_histogram("etcd_disk_backend_commit_duration_seconds", "The latency distributions of commit called by backend.")
);
metric!(
    /// `etcd_network_peer_sent_bytes_total{To="<member id hex>"}`.
    PEER_SENT_BYTES: IntCounterVec = register(IntCounterVec::new(Opts::new("etcd_network_peer_sent_bytes_total", "The total number of bytes sent to peers."), &["To"]).expect("a valid counter"))
);
metric!(
    /// `etcd_network_peer_received_bytes_total{From="<member id hex>"}`.
    PEER_RECEIVED_BYTES: IntCounterVec = register(IntCounterVec::new(Opts::new("etcd_network_peer_received_bytes_total", "The total number of bytes received from peers."), &["From"]).expect("a valid counter"))
);
metric!(
    /// `etcd_network_peer_round_trip_time_seconds{To=...}`, in seconds
    /// (etcd's buckets: 0.1 ms to 0.8192 s).
    PEER_ROUND_TRIP: HistogramVec = register(HistogramVec::new(
        HistogramOpts::new("etcd_network_peer_round_trip_time_seconds", "Round-Trip-Time histogram between peers")
            .buckets(exponential_buckets(0.0001, 2.0, 14).expect("valid buckets")),
        &["To"],
    ).expect("a valid histogram"))
);
metric!(
    /// `etcd_network_client_grpc_sent_bytes_total`, in bytes.
    CLIENT_GRPC_SENT_BYTES: IntCounter = counter("etcd_network_client_grpc_sent_bytes_total", "The total number of bytes sent to grpc clients.")
);
metric!(
    /// `etcd_network_client_grpc_received_bytes_total`, in bytes.
    CLIENT_GRPC_RECEIVED_BYTES: IntCounter = counter("etcd_network_client_grpc_received_bytes_total", "The total number of bytes received from grpc clients.")
);

/// The gRPC server metrics of go-grpc-prometheus, as etcd registers them.
pub mod grpc {
    use super::*;

    /// The codes go-grpc-prometheus pre-declares for each method, by name.
    pub const CODES: [&str; 17] = [
        "OK",
        "Canceled",
        "Unknown",
        "InvalidArgument",
        "DeadlineExceeded",
        "NotFound",
        "AlreadyExists",
        "PermissionDenied",
        "ResourceExhausted",
        "FailedPrecondition",
        "Aborted",
        "OutOfRange",
        "Unimplemented",
        "Internal",
        "Unavailable",
        "DataLoss",
        "Unauthenticated",
    ];

    metric!(
        /// `grpc_server_started_total{grpc_type,grpc_service,grpc_method}`.
        STARTED: IntCounterVec = register(IntCounterVec::new(Opts::new("grpc_server_started_total", "Total number of RPCs started on the server."), &["grpc_type", "grpc_service", "grpc_method"]).expect("a valid counter"))
    );
    metric!(
        /// `grpc_server_handled_total{grpc_type,grpc_service,grpc_method,grpc_code}`.
        HANDLED: IntCounterVec = register(IntCounterVec::new(Opts::new("grpc_server_handled_total", "Total number of RPCs completed on the server, regardless of success or failure."), &["grpc_type", "grpc_service", "grpc_method", "grpc_code"]).expect("a valid counter"))
    );
    metric!(
        /// `grpc_server_msg_received_total{grpc_type,grpc_service,grpc_method}`.
        MSG_RECEIVED: IntCounterVec = register(IntCounterVec::new(Opts::new("grpc_server_msg_received_total", "Total number of RPC stream messages received on the server."), &["grpc_type", "grpc_service", "grpc_method"]).expect("a valid counter"))
    );
    metric!(
        /// `grpc_server_msg_sent_total{grpc_type,grpc_service,grpc_method}`.
        MSG_SENT: IntCounterVec = register(IntCounterVec::new(Opts::new("grpc_server_msg_sent_total", "Total number of gRPC stream messages sent by the server."), &["grpc_type", "grpc_service", "grpc_method"]).expect("a valid counter"))
    );
    metric!(
        /// `grpc_server_handling_seconds{grpc_type,grpc_service,grpc_method}`,
        /// in seconds: with `--metrics extensive` only, as etcd.
        HANDLING_SECONDS: HistogramVec = HistogramVec::new(
            HistogramOpts::new("grpc_server_handling_seconds", "Histogram of response latency (seconds) of gRPC that had been application-level handled by the server.")
                .buckets(vec![0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0]),
            &["grpc_type", "grpc_service", "grpc_method"],
        ).expect("a valid histogram")
    );

    /// Declares every series of `service`/`method` at 0, as
    /// go-grpc-prometheus does when a server registers, so dashboards see
    /// them before the first call. `kind`: `unary`, `client_stream`,
    /// `server_stream` or `bidi_stream`.
    pub fn declare(kind: &str, service: &str, method: &str) {
        STARTED.with_label_values(&[kind, service, method]);
        MSG_RECEIVED.with_label_values(&[kind, service, method]);
        MSG_SENT.with_label_values(&[kind, service, method]);
        for code in CODES {
            HANDLED.with_label_values(&[kind, service, method, code]);
        }
    }

    /// Registers the latency histogram (`--metrics extensive`).
    pub fn enable_handling_histogram() {
        let _ = registry().register(Box::new(HANDLING_SECONDS.clone()));
    }
}

/// Sets an info gauge to 1 for `value` alone.
pub fn set_info(g: &GaugeVec, value: &str) {
    g.reset();
    g.with_label_values(&[value]).set(1.0);
}

/// Everything in [`registry`], in Prometheus's text format (version
/// 0.0.4).
pub fn render() -> String {
    let mut out = Vec::new();
    let _ = TextEncoder::new().encode(&registry().gather(), &mut out);
    String::from_utf8(out).unwrap_or_default()
}

/// The content type of [`render`]'s text.
pub const CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";

/// Registers every metric (each is created when first touched), so a
/// scrape shows all of them from the start, as etcd's do.
pub fn init() {
    let _ = (&*HAS_LEADER, &*IS_LEADER, &*LEADER_CHANGES);
    let _ = (
        &*PROPOSALS_COMMITTED,
        &*PROPOSALS_APPLIED,
        &*PROPOSALS_PENDING,
    );
    let _ = (&*PROPOSALS_FAILED, &*HEARTBEAT_SEND_FAILURES, &*SLOW_APPLY);
    let _ = (&*SERVER_ID, &*SERVER_VERSION, &*CLUSTER_VERSION);
    let _ = (&*QUOTA_BACKEND_BYTES, &*HEALTH_SUCCESS, &*HEALTH_FAILURES);
    let _ = (&*DB_TOTAL_SIZE, &*DB_IN_USE_SIZE, &*KEYS_TOTAL);
    let _ = (&*CURRENT_REVISION, &*COMPACT_REVISION);
    let _ = (&*PUT_TOTAL, &*DELETE_TOTAL, &*RANGE_TOTAL, &*TXN_TOTAL);
    let _ = (&*WATCHER_TOTAL, &*LEASE_GRANTED, &*LEASE_REVOKED);
    let _ = (&*WAL_FSYNC, &*BACKEND_COMMIT);
    let _ = (&*PEER_SENT_BYTES, &*PEER_RECEIVED_BYTES, &*PEER_ROUND_TRIP);
    let _ = (&*CLIENT_GRPC_SENT_BYTES, &*CLIENT_GRPC_RECEIVED_BYTES);
    let _ = (
        &*grpc::STARTED,
        &*grpc::HANDLED,
        &*grpc::MSG_RECEIVED,
        &*grpc::MSG_SENT,
    );
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_and_types_are_etcds() {
        init();
        HAS_LEADER.set(1);
        PUT_TOTAL.inc();
        WAL_FSYNC.observe(0.002);
        grpc::declare("unary", "etcdserverpb.KV", "Range");
        set_info(&SERVER_VERSION, "3.5.0");
        let text = render();
        for (name, kind) in [
            ("etcd_server_has_leader", "gauge"),
            ("etcd_mvcc_put_total", "counter"),
            ("etcd_disk_wal_fsync_duration_seconds", "histogram"),
            ("grpc_server_handled_total", "counter"),
            ("etcd_server_version", "gauge"),
            ("etcd_server_slow_apply_total", "counter"),
        ] {
            assert!(
                text.contains(&format!("# TYPE {name} {kind}\n")),
                "{name}: {text}"
            );
        }
        assert!(text.contains("etcd_server_version{server_version=\"3.5.0\"} 1\n"));
        assert!(text.contains(
            "grpc_server_handled_total{grpc_code=\"Unauthenticated\",grpc_method=\"Range\",grpc_service=\"etcdserverpb.KV\",grpc_type=\"unary\"} 0\n"
        ));
        assert!(text.contains("etcd_disk_wal_fsync_duration_seconds_bucket{le=\"0.002\"} 1\n"));
        assert!(text.contains("process_resident_memory_bytes "));
    }
}

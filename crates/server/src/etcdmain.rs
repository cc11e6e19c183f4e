//! `etcd`'s entry point (etcd's `etcdmain`): parse the configuration,
//! start the member, serve clients once it has published itself, and stop
//! cleanly on SIGINT or SIGTERM.

use std::process::ExitCode;
use std::sync::Arc;

use crate::config::{Config, ServerConfig, ETCD_RS_VERSION, SERVER_VERSION};
use crate::etcdserver::{corrupt, join, EtcdServer, REMOVED_MESSAGE};
use crate::listener::{ListenUrl, Listener};
use crate::peerrpc::PeerService;
use crate::rafthttp::Dialer;
use crate::tls::{auto, TlsError, TlsInfo};
use crate::{http, logging, serve, v3rpc};
use api::etcdrspb::peer_server::PeerServer;
use api::etcdserverpb::lease_server::LeaseServer;

/// Runs `etcd` with the process's arguments and environment.
pub fn main() -> ExitCode {
    let cfg = match Config::load() {
        Ok(c) => c,
        Err(e) => {
            eprintln!("etcd: {e}");
            return ExitCode::FAILURE;
        }
    };
    if cfg.version {
        println!("etcd Version: {SERVER_VERSION}");
        println!("etcd-rs Version: {ETCD_RS_VERSION}");
        println!(
            "API Version: {}",
            SERVER_VERSION
                .rsplit_once('.')
                .map_or(SERVER_VERSION, |(mm, _)| mm)
        );
        println!(
            "OS/Arch: {}/{}",
            std::env::consts::OS,
            std::env::consts::ARCH
        );
        return ExitCode::SUCCESS;
    }
    let outputs: Vec<String> = cfg
        .log_outputs
        .split(',')
        .map(str::trim)
        .filter(|o| !o.is_empty())
        .map(str::to_string)
        .collect();
    if let Err(e) = logging::init(&cfg.log_level, &outputs) {
        eprintln!("etcd: {e}");
        return ExitCode::FAILURE;
    }
    tracing::info!(
        etcd_version = SERVER_VERSION,
        etcd_rs_version = ETCD_RS_VERSION,
        "Running: etcd-rs"
    );
    for warning in &cfg.deprecated {
        tracing::warn!("{warning}");
    }
    if let Some(path) = &cfg.config_file {
        tracing::info!(
            path = %path.display(),
            "loaded server configuration, other configuration command line flags and environment variables will be ignored if provided"
        );
    }
    let scfg = match cfg.validate() {
        Ok(c) => c,
        Err(e) => {
            tracing::error!(error = %e, "failed to verify flags");
            return ExitCode::FAILURE;
        }
    };
    // etcd's `MaxQuotaBytes`: a larger quota works, with a warning.
    const MAX_QUOTA_BYTES: u64 = 8 * 1024 * 1024 * 1024;
    if scfg.quota_backend_bytes > MAX_QUOTA_BYTES {
        tracing::warn!(
            quota_name = "v3-applier",
            quota_size_bytes = scfg.quota_backend_bytes,
            quota_maximum_size_bytes = MAX_QUOTA_BYTES,
            "quota exceeds the maximum value"
        );
    } else {
        tracing::info!(
            quota_name = "v3-applier",
            quota_size_bytes = scfg.quota_backend_bytes,
            "enabled backend quota"
        );
    }
    let rt = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            tracing::error!(error = %e, "failed to start the runtime");
            return ExitCode::FAILURE;
        }
    };
    let result = rt.block_on(run(scfg));
    // Connections still open are cut; nothing waits on them past this.
    rt.shutdown_timeout(std::time::Duration::from_secs(1));
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            tracing::error!(error = %e, "etcd-rs stopped with an error");
            ExitCode::FAILURE
        }
    }
}

/// Installs the SIGTERM and SIGINT handlers now; the future resolves on
/// either. Error: the handlers cannot be set up.
fn shutdown_signal() -> Result<impl std::future::Future<Output = Result<(), String>>, String> {
    use tokio::signal::unix::{signal, SignalKind};
    let failed = |e: std::io::Error| format!("cannot handle signals: {e}");
    let mut term = signal(SignalKind::terminate()).map_err(failed)?;
    let mut int = signal(SignalKind::interrupt()).map_err(failed)?;
    Ok(async move {
        let sig = tokio::select! {
            _ = term.recv() => "terminated",
            _ = int.recv() => "interrupt",
        };
        tracing::info!(signal = sig, "received signal; shutting down");
        Ok(())
    })
}

async fn run(cfg: ServerConfig) -> Result<(), String> {
    tracing::info!(
        name = %cfg.name,
        data_dir = %cfg.data_dir.display(),
        wal_dir = %cfg.wal_dir.display(),
        advertise_client_urls = %cfg.advertise_client_urls.join(","),
        initial_advertise_peer_urls = %cfg.peer_urls.join(","),
        "starting an etcd server"
    );
    // Signals are handled from here on: a stop during the start-up steps
    // below still stops the member cleanly.
    let shutdown = shutdown_signal()?;
    // Certificates are checked (and auto TLS's written) before anything
    // is bound or the member's data touched.
    let tls = MemberTls::load(&cfg).map_err(|e| e.to_string())?;
    // Bind first, so a port in use fails the start at once, as in etcd.
    let listeners = bind_all(&cfg.client_listen).await?;
    let metrics_listeners = bind_all(&cfg.metrics_listen).await?;
    let peer_listeners = bind_all(&cfg.peer_listen).await?;
    let max_streams = cfg.max_concurrent_streams;
    let dialer = Dialer::new(tls.peer_client.clone());
    // A new member of a running cluster learns it from its peers first.
    let joined = if !cfg.new_cluster && !storage::wal::Wal::exists(&cfg.wal_dir) {
        Some(
            join::cluster_from_peers(&cfg, &dialer)
                .await
                .map_err(|e| e.to_string())?,
        )
    } else {
        None
    };
    let server = EtcdServer::start(cfg, dialer, joined).map_err(|e| e.to_string())?;
    // Peers are served at once: the election needs them. Followers
    // forward lease keep-alives to the leader's peer URL.
    let mut peer_tasks = tokio::task::JoinSet::new();
    for l in peer_listeners {
        let addr = l.local_addr();
        let peer = PeerServer::new(PeerService::new(server.clone()))
            .max_decoding_message_size(usize::MAX)
            .max_encoding_message_size(usize::MAX);
        let lease = LeaseServer::new(v3rpc::lease::PeerLeaseService::new(server.clone()));
        let l = if server.cfg.peer_san_check {
            l.checking_client_san()
        } else {
            l
        };
        let incoming = l.incoming(tls.peer_server.clone())?;
        tracing::info!(address = %addr, "serving peer traffic");
        // What the peers' probers call to measure the round trip.
        let (_, health) = tonic_health::server::health_reporter();
        peer_tasks.spawn(async move {
            if let Err(e) = tonic::transport::Server::builder()
                .add_service(peer)
                .add_service(lease)
                .add_service(health)
                .serve_with_incoming(incoming)
                .await
            {
                tracing::error!(address = %addr, error = %e, "serving peers failed");
            }
        });
    }
    let check_then_serve = async {
        if server.cfg.initial_corrupt_check && server.restarted {
            corrupt::initial_check(&server).await?;
        }
        serve(
            server.clone(),
            listeners,
            metrics_listeners,
            tls.client,
            max_streams,
        )
        .await
    };
    // Client connections end when this select drops them, before the
    // member stops; peers are served until it has.
    let result = tokio::select! {
        r = check_then_serve => r,
        r = shutdown => r,
        () = stop_when_removed(&server) => Ok(()),
    };
    let s = server.clone();
    tokio::task::spawn_blocking(move || s.stop())
        .await
        .map_err(|e| e.to_string())?;
    tracing::info!(name = %server.cfg.name, data_dir = %server.data_dir().display(), "stopped etcd-rs");
    result
}

/// Resolves a second after this member learns it was removed from the
/// cluster (time for the answer to the removal to get out), as etcd's
/// `stopWithDelay`; etcd then exits with status 0.
async fn stop_when_removed(server: &EtcdServer) {
    server.removed().await;
    tokio::time::sleep(std::time::Duration::from_secs(1)).await;
    tracing::warn!(error = REMOVED_MESSAGE, "server error");
    tracing::warn!("data-dir used by this member must be removed");
}

/// The member's TLS configs: what its client and peer listeners serve,
/// and what it dials peers with. Auto TLS makes its certificates here.
struct MemberTls {
    client: Option<Arc<rustls::ServerConfig>>,
    peer_server: Option<Arc<rustls::ServerConfig>>,
    peer_client: Option<Arc<rustls::ClientConfig>>,
}

impl MemberTls {
    /// Errors: certificates that do not load, auto TLS that cannot write
    /// its files.
    fn load(cfg: &ServerConfig) -> Result<MemberTls, TlsError> {
        let client = side(
            cfg,
            &cfg.client_tls,
            cfg.client_auto_tls,
            &cfg.client_listen,
            "client",
        )?;
        let peer = side(
            cfg,
            &cfg.peer_tls,
            cfg.peer_auto_tls,
            &cfg.peer_listen,
            "peer",
        )?;
        let serves_tls = |urls: &[ListenUrl]| urls.iter().any(|u| u.secure);
        let client_server = match &client {
            Some(info) if serves_tls(&cfg.client_listen) || serves_tls(&cfg.metrics_listen) => {
                tracing::info!(tls_info = ?info, "starting with client TLS");
                Some(info.server_config(&cfg.tls_settings)?)
            }
            _ => None,
        };
        let (peer_server, peer_client) = match &peer {
            Some(info) => {
                tracing::info!(tls_info = ?info, "starting with peer TLS");
                let server = if serves_tls(&cfg.peer_listen) {
                    Some(info.server_config(&cfg.tls_settings)?)
                } else {
                    None
                };
                (server, Some(info.client_config(&cfg.tls_settings)?))
            }
            None => (None, None),
        };
        Ok(MemberTls {
            client: client_server,
            peer_server,
            peer_client,
        })
    }
}

/// One side's TLS settings: the configured files, or auto TLS's
/// certificate under `<data-dir>/fixtures/<side>` when none are given.
fn side(
    cfg: &ServerConfig,
    info: &TlsInfo,
    auto: bool,
    listen: &[ListenUrl],
    name: &str,
) -> Result<Option<TlsInfo>, TlsError> {
    for u in listen.iter().filter(|u| !u.secure) {
        if !info.is_empty() {
            tracing::warn!(url = %u.url, "scheme is http or unix while key and cert files are present; ignoring key and cert files");
        }
    }
    if !info.is_empty() {
        if auto {
            tracing::warn!("ignoring {name} auto TLS since certs given");
        }
        return Ok(Some(info.clone()));
    }
    if !auto {
        return Ok(None);
    }
    let hosts: Vec<String> = listen.iter().map(ListenUrl::host).collect();
    let dir = cfg.data_dir.join("fixtures").join(name);
    tracing::warn!(
        certificate_validity_years = cfg.self_signed_cert_validity,
        "automatically generate certificates"
    );
    tracing::warn!("auto TLS is not for production: its self-signed certificates are not verified by peers or clients; use certificates from a CA");
    // As etcd's SelfCert, the generated settings replace the given ones:
    // no CA to check the other side with, so no client certificate auth.
    Ok(Some(auto::self_cert(
        &dir,
        &hosts,
        cfg.self_signed_cert_validity,
    )?))
}

/// Binds every listen URL, with etcd's error text for the first that
/// fails.
async fn bind_all(urls: &[ListenUrl]) -> Result<Vec<Listener>, String> {
    let mut out = Vec::with_capacity(urls.len());
    for u in urls {
        out.push(Listener::bind(u).await?);
    }
    Ok(out)
}

async fn serve(
    server: Arc<EtcdServer>,
    listeners: Vec<Listener>,
    metrics_listeners: Vec<Listener>,
    tls: Option<Arc<rustls::ServerConfig>>,
    max_concurrent_streams: u32,
) -> Result<(), String> {
    server.publish().await;
    // The leader sets the cluster version; for a new single member, before
    // clients are served.
    let monitor = server.clone();
    let version_set = tokio::spawn(async move { monitor.monitor_cluster_version().await });
    if server.membership.voter_ids() == [server.member_id] {
        let _ = version_set.await;
    }
    tokio::spawn(v3rpc::watch::sync_loop(server.clone()));
    tokio::spawn(crate::etcdserver::lease_expiry::expiry_loop(server.clone()));
    if let Some(every) = server.cfg.corrupt_check_time {
        tokio::spawn(corrupt::periodic_checks(server.clone(), every));
    }
    if let Some(mode) = server.cfg.auto_compaction {
        tokio::spawn(crate::etcdserver::compactor::run(server.clone(), mode));
    }
    crate::monitoring::init(server.cfg.metrics_extensive);
    let grpc = v3rpc::routes(server.clone())
        .await
        .into_axum_router()
        .merge(v3rpc::kv_range::router(server.clone()))
        .merge(v3rpc::watch_grpc::router(server.clone()));
    let grpc = crate::monitoring::grpc_layer(v3rpc::interceptor::layer(server.clone(), grpc));
    let app = grpc
        .merge(http::router(server.clone()))
        .merge(crate::monitoring::router(server.clone()))
        .merge(crate::gateway::router(server.clone()))
        .fallback(http::not_found);
    let mut tasks = tokio::task::JoinSet::new();
    for l in listeners {
        let addr = l.local_addr();
        let secure = l.secure();
        let incoming = l.incoming(tls.clone())?;
        tasks.spawn(serve::serve_clients(
            incoming,
            app.clone(),
            Some(crate::access::Access::new(server.clone(), secure)),
            max_concurrent_streams,
        ));
        tracing::info!("ready to serve client requests");
        if secure {
            tracing::info!(traffic = "grpc+http", address = %addr, "serving client traffic securely");
        } else {
            tracing::warn!(traffic = "grpc+http", address = %addr, "serving client traffic insecurely; this is strongly discouraged!");
        }
    }
    // As etcd's metrics listeners: metrics and health, nothing else.
    let metrics_app = crate::monitoring::router(server.clone())
        .merge(http::router(server.clone()))
        .fallback(http::not_found);
    for l in metrics_listeners {
        let addr = l.local_addr();
        let incoming = l.incoming(tls.clone())?;
        tasks.spawn(serve::serve_clients(
            incoming,
            metrics_app.clone(),
            None,
            max_concurrent_streams,
        ));
        tracing::info!(address = %addr, "serving metrics");
    }
    match tasks.join_next().await {
        Some(Ok(())) | None => Ok(()),
        Some(Err(e)) => Err(e.to_string()),
    }
}

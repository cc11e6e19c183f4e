//! `etcd`'s entry point (etcd's `etcdmain`): parse the configuration,
//! start the member, serve clients once it has published itself, and stop
//! cleanly on SIGINT or SIGTERM.

use std::process::ExitCode;
use std::sync::Arc;

use tokio::net::TcpListener;

use crate::authority::ClientListener;
use crate::config::{Config, ServerConfig, ETCD_RS_VERSION, SERVER_VERSION};
use crate::etcdserver::EtcdServer;
use crate::rafthttp::PeerService;
use crate::{http, logging, v3rpc};
use api::etcdrspb::peer_server::PeerServer;

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
    if let Err(e) = logging::init(&cfg.log_level) {
        eprintln!("etcd: {e}");
        return ExitCode::FAILURE;
    }
    tracing::info!(
        etcd_version = SERVER_VERSION,
        etcd_rs_version = ETCD_RS_VERSION,
        "Running: etcd-rs"
    );
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

async fn shutdown_signal() {
    use tokio::signal::unix::{signal, SignalKind};
    let mut term = signal(SignalKind::terminate()).expect("SIGTERM handler");
    let mut int = signal(SignalKind::interrupt()).expect("SIGINT handler");
    let sig = tokio::select! {
        _ = term.recv() => "terminated",
        _ = int.recv() => "interrupt",
    };
    tracing::info!(signal = sig, "received signal; shutting down");
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
    // Bind first, so a port in use fails the start at once, as in etcd.
    let listeners = bind_all(&cfg.client_listen).await?;
    let peer_listeners = bind_all(&cfg.peer_listen).await?;
    let server = EtcdServer::start(cfg).map_err(|e| e.to_string())?;
    // Peers are served at once: the election needs them.
    let mut peer_tasks = tokio::task::JoinSet::new();
    for l in peer_listeners {
        let addr = l.local_addr().map_err(|e| e.to_string())?;
        let svc = PeerServer::new(PeerService::new(server.clone()))
            .max_decoding_message_size(usize::MAX)
            .max_encoding_message_size(usize::MAX);
        let incoming = tokio_stream::wrappers::TcpListenerStream::new(l);
        peer_tasks.spawn(async move {
            if let Err(e) = tonic::transport::Server::builder()
                .tcp_nodelay(true)
                .add_service(svc)
                .serve_with_incoming(incoming)
                .await
            {
                tracing::error!(address = %addr, error = %e, "serving peers failed");
            }
        });
        tracing::info!(address = %addr, "serving peer traffic");
    }
    let serve = serve(server.clone(), listeners);
    let result = tokio::select! {
        r = serve => r,
        _ = shutdown_signal() => Ok(()),
    };
    let s = server.clone();
    tokio::task::spawn_blocking(move || s.stop())
        .await
        .map_err(|e| e.to_string())?;
    tracing::info!(name = %server.cfg.name, data_dir = %server.data_dir().display(), "stopped etcd-rs");
    result
}

/// Binds every address, with etcd's error text for the first that fails.
async fn bind_all(addrs: &[std::net::SocketAddr]) -> Result<Vec<TcpListener>, String> {
    let mut out = Vec::with_capacity(addrs.len());
    for addr in addrs {
        let l = TcpListener::bind(addr)
            .await
            .map_err(|e| format!("listen tcp {addr}: bind: {e}"))?;
        out.push(l);
    }
    Ok(out)
}

async fn serve(server: Arc<EtcdServer>, listeners: Vec<TcpListener>) -> Result<(), String> {
    server.publish().await;
    // The leader sets the cluster version; for a new single member, before
    // clients are served.
    let monitor = server.clone();
    let version_set = tokio::spawn(async move { monitor.monitor_cluster_version().await });
    if server.membership.voter_ids() == [server.member_id] {
        let _ = version_set.await;
    }
    tokio::spawn(v3rpc::watch::sync_loop(server.clone()));
    tokio::spawn(v3rpc::lease::expiry_loop(server.clone()));
    let app = v3rpc::routes(server.clone())
        .await
        .into_axum_router()
        .merge(http::router(server.clone()));
    let mut tasks = tokio::task::JoinSet::new();
    for l in listeners {
        let addr = l.local_addr().map_err(|e| e.to_string())?;
        let app = app.clone();
        tasks.spawn(async move {
            axum::serve(ClientListener(l), app)
                .await
                .map_err(|e| format!("serving {addr}: {e}"))
        });
        tracing::info!("ready to serve client requests");
        tracing::warn!(address = %addr, "serving client traffic insecurely; this is strongly discouraged!");
    }
    match tasks.join_next().await {
        Some(Ok(r)) => r,
        Some(Err(e)) => Err(e.to_string()),
        None => Ok(()),
    }
}

//! `benchmark`: etcd's load generator (tools/benchmark) on `crates/client`:
//! the same global flags and subcommands (put, range, txn-put,
//! lease-keepalive, watch, watch-latency) and the same report (`report.rs`).
//!
//! `--clients` request loops share `--conns` connections (client i uses
//! connection i mod conns) and take request numbers from one counter until
//! `--total`; `--rate` paces the request numbers over time.

mod report;
mod run;
mod watch;

use std::time::Duration;

use clap::{Args, Parser, Subcommand};

/// The command line.
#[derive(Parser, Debug)]
#[command(name = "benchmark", about = "A low-level benchmark tool for etcd3")]
struct Cli {
    #[command(flatten)]
    global: Global,
    #[command(subcommand)]
    command: Command,
}

/// etcd benchmark's global flags.
#[derive(Args, Debug, Clone)]
pub struct Global {
    /// gRPC endpoints
    #[arg(
        long,
        global = true,
        value_delimiter = ',',
        default_value = "127.0.0.1:2379"
    )]
    pub endpoints: Vec<String>,
    /// Total number of gRPC connections
    #[arg(long, global = true, default_value_t = 1)]
    pub conns: usize,
    /// Total number of gRPC clients
    #[arg(long, global = true, default_value_t = 1)]
    pub clients: usize,
    /// Report in more detail (Go's %g instead of %4.4f)
    #[arg(long, global = true, default_value_t = false)]
    pub precise: bool,
    /// Send requests only to the leader
    #[arg(long, global = true, default_value_t = false)]
    pub target_leader: bool,
    /// Dial timeout for client connections
    #[arg(long, global = true, default_value = "0s", value_parser = humantime::parse_duration)]
    pub dial_timeout: Duration,
    /// username[:password] for authentication (not supported yet)
    #[arg(long, global = true, default_value = "")]
    pub user: String,
    /// CA bundle for TLS (not supported yet)
    #[arg(long, global = true, default_value = "")]
    pub cacert: String,
    /// Client certificate for TLS (not supported yet)
    #[arg(long, global = true, default_value = "")]
    pub cert: String,
    /// Client key for TLS (not supported yet)
    #[arg(long, global = true, default_value = "")]
    pub key: String,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Benchmark put
    Put(run::PutArgs),
    /// Benchmark range
    Range(run::RangeArgs),
    /// Benchmark txn-put
    TxnPut(run::TxnPutArgs),
    /// Benchmark lease keepalive
    LeaseKeepalive(run::LeaseArgs),
    /// Benchmark watch
    Watch(watch::WatchArgs),
    /// Benchmark watch latency
    WatchLatency(watch::WatchLatencyArgs),
}

fn main() {
    let cli = Cli::parse();
    if !cli.global.user.is_empty()
        || !cli.global.cacert.is_empty()
        || !cli.global.cert.is_empty()
        || !cli.global.key.is_empty()
    {
        eprintln!("benchmark: TLS and authentication are not supported yet");
        std::process::exit(1);
    }
    let runtime = tokio::runtime::Runtime::new().expect("tokio runtime");
    let result = runtime.block_on(async {
        match &cli.command {
            Command::Put(a) => run::put(&cli.global, a).await,
            Command::Range(a) => run::range(&cli.global, a).await,
            Command::TxnPut(a) => run::txn_put(&cli.global, a).await,
            Command::LeaseKeepalive(a) => run::lease_keepalive(&cli.global, a).await,
            Command::Watch(a) => watch::watch(&cli.global, a).await,
            Command::WatchLatency(a) => watch::watch_latency(&cli.global, a).await,
        }
    });
    match result {
        Ok(text) => print!("{text}"),
        Err(e) => {
            eprintln!("benchmark: {e}");
            std::process::exit(1);
        }
    }
}

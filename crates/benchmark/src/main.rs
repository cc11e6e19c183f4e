//! `benchmark`: etcd's load generator (tools/benchmark) on `crates/client`:
//! the same global flags and subcommands (put, range, txn-put,
//! lease-keepalive, watch, watch-latency) and the same report (`report.rs`),
//! and `lock` (`lock.rs`), which etcd's lacks.
//!
//! `--clients` request loops share `--conns` connections (client i uses
//! connection i mod conns) and take request numbers from one counter until
//! `--total`; `--rate` paces the request numbers over time.

mod lock;
mod report;
mod run;
mod watch;

use std::time::Duration;

use clap::{Args, CommandFactory, Parser, Subcommand};
use client::{ConnectOptions, TlsOptions};

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
    /// provide username[:password] and prompt if password is not supplied.
    #[arg(long, global = true, default_value = "")]
    pub user: String,
    /// verify certificates of HTTPS-enabled servers using this CA bundle
    #[arg(long, global = true, default_value = "")]
    pub cacert: String,
    /// identify HTTPS client using this SSL certificate file
    #[arg(long, global = true, default_value = "")]
    pub cert: String,
    /// identify HTTPS client using this SSL key file
    #[arg(long, global = true, default_value = "")]
    pub key: String,
    /// skip server certificate verification
    #[arg(long, global = true, env = "ETCDCTL_INSECURE_SKIP_TLS_VERIFY", num_args = 0..=1,
          require_equals = true, default_missing_value = "true", default_value_t = false,
          value_parser = goflags::parse_bool, action = clap::ArgAction::Set)]
    pub insecure_skip_tls_verify: bool,
    /// disable transport security for endpoints without a scheme
    #[arg(long, global = true, env = "ETCDCTL_INSECURE_TRANSPORT", num_args = 0..=1,
          require_equals = true, default_missing_value = "true", default_value_t = true,
          value_parser = goflags::parse_bool, action = clap::ArgAction::Set)]
    pub insecure_transport: bool,
}

impl Global {
    /// How to connect: the dial timeout (5 s for 0), TLS when any of
    /// --cacert, --cert, --key is given (both of the last two, or
    /// neither) or --insecure-transport=false, --insecure-skip-tls-verify,
    /// and the --user credentials. Errors: an unreadable file, a
    /// certificate without its key, no password and no terminal.
    pub fn connect_options(&self) -> Result<ConnectOptions, String> {
        let read = |p: &str| std::fs::read(p).map_err(|e| format!("open {p}: {e}"));
        let no_files = self.cacert.is_empty() && self.cert.is_empty() && self.key.is_empty();
        let tls = if no_files && self.insecure_transport && !self.insecure_skip_tls_verify {
            None
        } else {
            let identity = match (self.cert.as_str(), self.key.as_str()) {
                ("", "") => None,
                ("", _) | (_, "") => {
                    return Err(format!(
                        "KeyFile and CertFile must both be present[key: {}, cert: {}]",
                        self.key, self.cert
                    ))
                }
                (cert, key) => Some((read(cert)?, read(key)?)),
            };
            let ca = (!self.cacert.is_empty())
                .then(|| read(&self.cacert))
                .transpose()?;
            Some(TlsOptions {
                ca,
                identity,
                insecure_skip_verify: self.insecure_skip_tls_verify,
            })
        };
        let auth = match self.user.split_once(':') {
            _ if self.user.is_empty() => None,
            Some((name, password)) => Some((name.to_string(), password.to_string())),
            None => {
                let password =
                    rpassword::prompt_password("Password: ").map_err(|e| e.to_string())?;
                Some((self.user.clone(), password))
            }
        };
        Ok(ConnectOptions {
            dial_timeout: if self.dial_timeout.is_zero() {
                Duration::from_secs(5)
            } else {
                self.dial_timeout
            },
            tls,
            auth,
            ..ConnectOptions::default()
        })
    }
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
    /// Benchmark lock acquire and release
    Lock(lock::LockArgs),
}

fn main() {
    let args = goflags::normalize(&Cli::command(), std::env::args_os());
    let cli = Cli::parse_from(args);
    let runtime = tokio::runtime::Runtime::new().expect("tokio runtime");
    let result = runtime.block_on(async {
        match &cli.command {
            Command::Put(a) => run::put(&cli.global, a).await,
            Command::Range(a) => run::range(&cli.global, a).await,
            Command::TxnPut(a) => run::txn_put(&cli.global, a).await,
            Command::LeaseKeepalive(a) => run::lease_keepalive(&cli.global, a).await,
            Command::Watch(a) => watch::watch(&cli.global, a).await,
            Command::WatchLatency(a) => watch::watch_latency(&cli.global, a).await,
            Command::Lock(a) => lock::lock(&cli.global, a).await,
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

//! etcdctl's global flags (each also read from `ETCDCTL_<NAME>`, the flag
//! winning), and what they turn into: connection options, the command
//! timeout and the printer.

use std::time::Duration;

use clap::Args;
use client::{Client, ConnectOptions};

use crate::error::{CtlError, EXIT_BAD_FEATURE};
use crate::printer::{Format, Printer};

/// The flags every command takes (etcd v3 etcdctl's global options).
#[derive(Args, Debug, Clone)]
pub struct GlobalFlags {
    /// gRPC endpoints, comma-separated.
    #[arg(
        long,
        global = true,
        env = "ETCDCTL_ENDPOINTS",
        value_delimiter = ',',
        default_value = "127.0.0.1:2379"
    )]
    pub endpoints: Vec<String>,
    /// Dial timeout for client connections.
    #[arg(long, global = true, env = "ETCDCTL_DIAL_TIMEOUT", default_value = "2s",
          value_parser = parse_duration)]
    pub dial_timeout: Duration,
    /// Timeout for short running command (excluding dial timeout).
    #[arg(long, global = true, env = "ETCDCTL_COMMAND_TIMEOUT", default_value = "5s",
          value_parser = parse_duration)]
    pub command_timeout: Duration,
    /// Keepalive time for client connections.
    #[arg(long, global = true, env = "ETCDCTL_KEEPALIVE_TIME", default_value = "2s",
          value_parser = parse_duration)]
    pub keepalive_time: Duration,
    /// Keepalive timeout for client connections.
    #[arg(long, global = true, env = "ETCDCTL_KEEPALIVE_TIMEOUT", default_value = "6s",
          value_parser = parse_duration)]
    pub keepalive_timeout: Duration,
    /// Set the output format (fields, json, protobuf, simple, table).
    #[arg(
        short = 'w',
        long = "write-out",
        global = true,
        env = "ETCDCTL_WRITE_OUT",
        default_value = "simple"
    )]
    pub write_out: String,
    /// Print byte strings as hex encoded strings.
    #[arg(long, global = true, env = "ETCDCTL_HEX", num_args = 0..=1, require_equals = true,
          default_missing_value = "true", default_value_t = false, action = clap::ArgAction::Set)]
    pub hex: bool,
    /// Enable client-side debug logging.
    #[arg(long, global = true, env = "ETCDCTL_DEBUG", num_args = 0..=1, require_equals = true,
          default_missing_value = "true", default_value_t = false, action = clap::ArgAction::Set)]
    pub debug: bool,
    /// Disable transport security for client connections.
    #[arg(long, global = true, env = "ETCDCTL_INSECURE_TRANSPORT", num_args = 0..=1,
          require_equals = true, default_missing_value = "true", default_value_t = true,
          action = clap::ArgAction::Set)]
    pub insecure_transport: bool,
    /// Skip server certificate verification.
    #[arg(long, global = true, env = "ETCDCTL_INSECURE_SKIP_TLS_VERIFY", num_args = 0..=1,
          require_equals = true, default_missing_value = "true", default_value_t = false,
          action = clap::ArgAction::Set)]
    pub insecure_skip_tls_verify: bool,
    /// Verify certificates of TLS-enabled secure servers using this CA bundle.
    #[arg(long, global = true, env = "ETCDCTL_CACERT")]
    pub cacert: Option<String>,
    /// Identify secure client using this TLS certificate file.
    #[arg(long, global = true, env = "ETCDCTL_CERT")]
    pub cert: Option<String>,
    /// Identify secure client using this TLS key file.
    #[arg(long, global = true, env = "ETCDCTL_KEY")]
    pub key: Option<String>,
    /// username[:password] for authentication.
    #[arg(long, global = true, env = "ETCDCTL_USER")]
    pub user: Option<String>,
    /// Password for authentication.
    #[arg(long, global = true, env = "ETCDCTL_PASSWORD")]
    pub password: Option<String>,
}

/// A Go duration (`2s`, `500ms`, `1m30s`).
fn parse_duration(s: &str) -> Result<Duration, String> {
    humantime::parse_duration(s).map_err(|_| format!("time: invalid duration \"{s}\""))
}

impl GlobalFlags {
    /// The printer for `--write-out` and `--hex`. Errors (exit 4) for a
    /// format etcdctl does not know.
    pub fn printer(&self) -> Result<Printer, CtlError> {
        let format = match self.write_out.as_str() {
            "simple" => Format::Simple,
            "json" => Format::Json,
            "fields" => Format::Fields,
            "table" => Format::Table,
            "protobuf" => Format::Protobuf,
            _ => return Err(CtlError::new(EXIT_BAD_FEATURE, "unsupported output format")),
        };
        Ok(Printer::new(format, self.hex))
    }

    /// Refuses what this etcdctl cannot do yet: TLS and authentication.
    fn check_supported(&self) -> Result<(), CtlError> {
        let tls = self.cacert.is_some() || self.cert.is_some() || self.key.is_some();
        if tls || self.endpoints.iter().any(|e| e.starts_with("https://")) {
            return Err(CtlError::new(
                EXIT_BAD_FEATURE,
                "TLS is not supported yet by etcd-rs etcdctl",
            ));
        }
        if self.user.is_some() || self.password.is_some() {
            return Err(CtlError::new(
                EXIT_BAD_FEATURE,
                "authentication is not supported yet by etcd-rs etcdctl",
            ));
        }
        Ok(())
    }

    /// Connection options from the flags.
    pub fn connect_options(&self) -> ConnectOptions {
        ConnectOptions {
            dial_timeout: self.dial_timeout,
            keepalive_time: self.keepalive_time,
            keepalive_timeout: self.keepalive_timeout,
        }
    }

    /// A client of the first live endpoint. Errors: exit 1 when none
    /// answers within the dial timeout (`context deadline exceeded`, as
    /// etcdctl reports it).
    pub async fn client(&self) -> Result<Client, CtlError> {
        self.client_of(&self.endpoints).await
    }

    /// A client of the first live one of `endpoints`.
    pub async fn client_of(&self, endpoints: &[String]) -> Result<Client, CtlError> {
        self.check_supported()?;
        Client::connect(endpoints, &self.connect_options())
            .await
            .map_err(|e| CtlError::new(crate::error::EXIT_ERROR, e.to_string()))
    }

    /// Runs `fut` within `--command-timeout`; past it, etcdctl's
    /// `context deadline exceeded`.
    pub async fn timed<T>(
        &self,
        fut: impl std::future::Future<Output = Result<T, tonic::Status>>,
    ) -> Result<T, CtlError> {
        match tokio::time::timeout(self.command_timeout, fut).await {
            Ok(r) => r.map_err(CtlError::from),
            Err(_) => Err(CtlError::new(
                crate::error::EXIT_ERROR,
                "context deadline exceeded",
            )),
        }
    }
}

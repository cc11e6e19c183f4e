//! etcdctl's global flags (each also read from `ETCDCTL_<NAME>`, the flag
//! winning), and what they turn into: connection options, the command
//! timeout and the printer.

use std::time::Duration;

use clap::Args;
use client::{Client, ConnectError, ConnectOptions, TlsOptions};

use crate::error::{CtlError, EXIT_BAD_ARGS, EXIT_BAD_CONNECTION, EXIT_BAD_FEATURE};
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
          default_missing_value = "true", default_value_t = false, value_parser = goflags::parse_bool, action = clap::ArgAction::Set)]
    pub hex: bool,
    /// Enable client-side debug logging.
    #[arg(long, global = true, env = "ETCDCTL_DEBUG", num_args = 0..=1, require_equals = true,
          default_missing_value = "true", default_value_t = false, value_parser = goflags::parse_bool, action = clap::ArgAction::Set)]
    pub debug: bool,
    /// Disable transport security for client connections.
    #[arg(long, global = true, env = "ETCDCTL_INSECURE_TRANSPORT", num_args = 0..=1,
          require_equals = true, default_missing_value = "true", default_value_t = true,
          value_parser = goflags::parse_bool, action = clap::ArgAction::Set)]
    pub insecure_transport: bool,
    /// Skip server certificate verification.
    #[arg(long, global = true, env = "ETCDCTL_INSECURE_SKIP_TLS_VERIFY", num_args = 0..=1,
          require_equals = true, default_missing_value = "true", default_value_t = false,
          value_parser = goflags::parse_bool, action = clap::ArgAction::Set)]
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
    /// The connection options once worked out: commands that reach every
    /// member read the files and ask for a password once.
    #[arg(skip)]
    resolved: std::sync::OnceLock<ConnectOptions>,
}

/// The bytes of `path`; errors read as Go's `open <path>: <reason>`
/// (exit 128).
fn read_file(path: &str) -> Result<Vec<u8>, CtlError> {
    std::fs::read(path).map_err(|e| {
        let reason = match e.kind() {
            std::io::ErrorKind::NotFound => "no such file or directory".to_string(),
            std::io::ErrorKind::PermissionDenied => "permission denied".to_string(),
            _ => e.to_string(),
        };
        CtlError::new(EXIT_BAD_ARGS, format!("open {path}: {reason}"))
    })
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

    /// The connection options: timeouts, TLS (when any of `--cacert`,
    /// `--cert`, `--key` is given, or `--insecure-transport=false`) and
    /// `--user`/`--password`. Errors as etcdctl's: an empty or unreadable
    /// file, or a certificate without its key (exit 128); a password
    /// prompt without a terminal (exit 1). `--insecure-skip-tls-verify`
    /// applies where TLS does, as in clientv3.
    pub fn connect_options(&self) -> Result<ConnectOptions, CtlError> {
        Ok(ConnectOptions {
            dial_timeout: self.dial_timeout,
            keepalive_time: self.keepalive_time,
            keepalive_timeout: self.keepalive_timeout,
            tls: self.tls()?,
            auth: self.auth()?,
        })
    }

    fn tls(&self) -> Result<Option<TlsOptions>, CtlError> {
        for (flag, v) in [
            ("cert", &self.cert),
            ("key", &self.key),
            ("cacert", &self.cacert),
        ] {
            if v.as_deref() == Some("") {
                return Err(CtlError::new(
                    EXIT_BAD_ARGS,
                    format!("empty string is passed to --{flag} option"),
                ));
            }
        }
        let wanted = self.cert.is_some() || self.key.is_some() || self.cacert.is_some();
        if !wanted && self.insecure_transport {
            return Ok(None);
        }
        let identity = match (&self.cert, &self.key) {
            (None, None) => None,
            (Some(cert), Some(key)) => Some((read_file(cert)?, read_file(key)?)),
            (cert, key) => {
                return Err(CtlError::new(
                    EXIT_BAD_ARGS,
                    format!(
                        "KeyFile and CertFile must both be present[key: {}, cert: {}]",
                        key.as_deref().unwrap_or_default(),
                        cert.as_deref().unwrap_or_default()
                    ),
                ))
            }
        };
        let ca = self.cacert.as_deref().map(read_file).transpose()?;
        Ok(Some(TlsOptions {
            ca,
            identity,
            insecure_skip_verify: self.insecure_skip_tls_verify,
        }))
    }

    /// `--user name:password`, or `--user name --password p` (then the
    /// whole `--user` is the name), or `--user name` and a prompt.
    fn auth(&self) -> Result<Option<(String, String)>, CtlError> {
        let Some(user) = self.user.as_deref().filter(|u| !u.is_empty()) else {
            return Ok(None);
        };
        if let Some(p) = self.password.as_deref().filter(|p| !p.is_empty()) {
            return Ok(Some((user.to_string(), p.to_string())));
        }
        if let Some((name, password)) = user.split_once(':') {
            return Ok(Some((name.to_string(), password.to_string())));
        }
        let password = rpassword::prompt_password("Password: ")
            .map_err(|e| CtlError::new(crate::error::EXIT_ERROR, e.to_string()))?;
        Ok(Some((user.to_string(), password)))
    }

    /// A client of the first live endpoint. Errors: exit 1 when none
    /// answers within the dial timeout (`context deadline exceeded`, as
    /// etcdctl reports it).
    pub async fn client(&self) -> Result<Client, CtlError> {
        self.client_of(&self.endpoints).await
    }

    /// A client of the first live one of `endpoints`.
    pub async fn client_of(&self, endpoints: &[String]) -> Result<Client, CtlError> {
        let opts = match self.resolved.get() {
            Some(opts) => opts,
            None => {
                let opts = self.connect_options()?;
                self.resolved.get_or_init(|| opts)
            }
        };
        crate::debug::grpc_info(self, "Channel Connectivity change to CONNECTING");
        let connected = Client::connect(endpoints, opts).await;
        crate::debug::grpc_info(
            self,
            if connected.is_ok() {
                "Channel Connectivity change to READY"
            } else {
                "Channel Connectivity change to TRANSIENT_FAILURE"
            },
        );
        connected.map_err(|e| {
            let code = match e {
                // clientv3.New fails on a refused login: a bad connection.
                ConnectError::Auth(_) => EXIT_BAD_CONNECTION,
                // Go's TLS configuration errors are bad arguments.
                ConnectError::Tls(_) => EXIT_BAD_ARGS,
                _ => crate::error::EXIT_ERROR,
            };
            CtlError::new(code, e.to_string())
        })
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

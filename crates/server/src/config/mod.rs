//! The member's configuration: one struct, with etcd's flag names, and the
//! same names as `ETCD_*` environment variables (flags win over variables,
//! as in etcd). Defaults are written once, here.
//!
//! [`Config::validate`] (`server.rs`) turns it into what the member runs
//! with, returning etcd's error texts for bad combinations. `file.rs` reads etcd's YAML
//! configuration file into the same struct; `unsupported.rs` lists the
//! etcd 3.5 flags etcd-rs does not implement yet, which fail start-up
//! when set to anything but etcd's default; `compaction.rs` reads the
//! auto-compaction flags.

mod compaction;
mod file;
mod migrate;
mod server;
mod unsupported;

use std::path::PathBuf;

use clap::{CommandFactory, FromArgMatches, Parser};

pub use compaction::{auto_compaction, AutoCompaction, CompactionFlags};
pub use server::{parse_initial_cluster, InitialMember, ServerConfig};

/// The etcd version this server reports (`/version`, `Status`):
/// [`api::ETCD_VERSION`].
pub const SERVER_VERSION: &str = api::ETCD_VERSION;
/// The cluster version a new cluster starts at (etcd's cluster versions
/// are `major.minor.0`).
pub const CLUSTER_VERSION: &str = "3.5.0";
/// etcd-rs's own version.
pub const ETCD_RS_VERSION: &str = env!("CARGO_PKG_VERSION");

/// The flags of `etcd` (etcd v3.5 `etcd --help`), each also read from
/// `ETCD_<NAME>` with dashes as underscores.
#[derive(Parser, Debug, Clone)]
// A flag given twice keeps the last value, as with Go's flag package.
#[command(
    name = "etcd",
    disable_version_flag = true,
    args_override_self = true,
    about = "etcd-rs: a distributed, reliable key-value store"
)]
pub struct Config {
    /// Human-readable name for this member.
    #[arg(long, env = "ETCD_NAME", default_value = "default")]
    pub name: String,
    /// Path to the data directory (default: `${name}.etcd`).
    #[arg(long, env = "ETCD_DATA_DIR")]
    pub data_dir: Option<PathBuf>,
    /// Path to the dedicated WAL directory (default: `${data-dir}/member/wal`).
    #[arg(long, env = "ETCD_WAL_DIR")]
    pub wal_dir: Option<PathBuf>,
    /// Comma-separated URLs to listen on for client traffic.
    #[arg(
        long,
        env = "ETCD_LISTEN_CLIENT_URLS",
        default_value = "http://localhost:2379"
    )]
    pub listen_client_urls: String,
    /// Comma-separated client URLs of this member, as told to the cluster.
    #[arg(
        long,
        env = "ETCD_ADVERTISE_CLIENT_URLS",
        default_value = "http://localhost:2379"
    )]
    pub advertise_client_urls: String,
    /// Comma-separated URLs to listen on for peer traffic.
    #[arg(
        long,
        env = "ETCD_LISTEN_PEER_URLS",
        default_value = "http://localhost:2380"
    )]
    pub listen_peer_urls: String,
    /// Comma-separated peer URLs of this member, as told to the cluster.
    #[arg(
        long,
        env = "ETCD_INITIAL_ADVERTISE_PEER_URLS",
        default_value = "http://localhost:2380"
    )]
    pub initial_advertise_peer_urls: String,
    /// Initial cluster configuration for bootstrapping: `name=peerURL,...`
    /// (default: this member's name with its advertised peer URLs).
    #[arg(long, env = "ETCD_INITIAL_CLUSTER")]
    pub initial_cluster: Option<String>,
    /// Initial cluster token for the cluster during bootstrap.
    #[arg(
        long,
        env = "ETCD_INITIAL_CLUSTER_TOKEN",
        default_value = "etcd-cluster"
    )]
    pub initial_cluster_token: String,
    /// Initial cluster state (`new` or `existing`).
    #[arg(long, env = "ETCD_INITIAL_CLUSTER_STATE", default_value = "new")]
    pub initial_cluster_state: String,
    /// Time (in milliseconds) of a heartbeat interval.
    #[arg(long, env = "ETCD_HEARTBEAT_INTERVAL", default_value_t = 100)]
    pub heartbeat_interval: u64,
    /// Time (in milliseconds) for an election to timeout.
    #[arg(long, env = "ETCD_ELECTION_TIMEOUT", default_value_t = 1000)]
    pub election_timeout: u64,
    /// Number of committed transactions to trigger a snapshot to disk.
    #[arg(long, env = "ETCD_SNAPSHOT_COUNT", default_value_t = 100_000)]
    pub snapshot_count: u64,
    /// Number of entries kept for a slow follower to catch up after a
    /// snapshot compacts the in-memory raft log.
    #[arg(
        long,
        env = "ETCD_EXPERIMENTAL_SNAPSHOT_CATCHUP_ENTRIES",
        default_value_t = 5000
    )]
    pub experimental_snapshot_catchup_entries: u64,
    /// Duration of periodic watch progress notifications (e.g. `10m`,
    /// `500ms`).
    #[arg(
        long,
        env = "ETCD_EXPERIMENTAL_WATCH_PROGRESS_NOTIFY_INTERVAL",
        default_value = "10m"
    )]
    pub experimental_watch_progress_notify_interval: String,
    /// Checkpoint leases' remaining TTLs through raft, so a leader change
    /// does not reset them to their full TTL.
    #[arg(long, env = "ETCD_EXPERIMENTAL_ENABLE_LEASE_CHECKPOINT", num_args = 0..=1,
          require_equals = true, default_missing_value = "true", default_value_t = false,
          value_parser = goflags::parse_bool, action = clap::ArgAction::Set)]
    pub experimental_enable_lease_checkpoint: bool,
    /// Also keep checkpointed remaining TTLs in the backend, so they
    /// survive a restart (needs `--experimental-enable-lease-checkpoint`).
    #[arg(long, env = "ETCD_EXPERIMENTAL_ENABLE_LEASE_CHECKPOINT_PERSIST", num_args = 0..=1,
          require_equals = true, default_missing_value = "true", default_value_t = false,
          value_parser = goflags::parse_bool, action = clap::ArgAction::Set)]
    pub experimental_enable_lease_checkpoint_persist: bool,
    /// How often the leader checkpoints leases' remaining TTLs (e.g. `5m`).
    #[arg(
        long,
        env = "ETCD_EXPERIMENTAL_LEASE_CHECKPOINT_INTERVAL",
        default_value = "5m"
    )]
    pub experimental_lease_checkpoint_interval: String,
    /// Auto-compaction and how compactions remove history.
    #[command(flatten)]
    pub compaction: CompactionFlags,
    /// Raise alarms when backend size exceeds the given quota (0 defaults
    /// to the low space quota, 2 GiB).
    #[arg(long, env = "ETCD_QUOTA_BACKEND_BYTES", default_value_t = 0)]
    pub quota_backend_bytes: u64,
    /// Maximum client request size in bytes the server will accept.
    #[arg(long, env = "ETCD_MAX_REQUEST_BYTES", default_value_t = 1572864)]
    pub max_request_bytes: u32,
    /// Maximum number of operations permitted in a transaction.
    #[arg(long, env = "ETCD_MAX_TXN_OPS", default_value_t = 128)]
    pub max_txn_ops: u32,
    /// Path to the client server TLS cert file.
    #[arg(long, env = "ETCD_CERT_FILE", default_value = "")]
    pub cert_file: String,
    /// Path to the client server TLS key file.
    #[arg(long, env = "ETCD_KEY_FILE", default_value = "")]
    pub key_file: String,
    /// Enable client cert authentication.
    #[arg(long, env = "ETCD_CLIENT_CERT_AUTH", num_args = 0..=1, require_equals = true,
          default_missing_value = "true", default_value_t = false, value_parser = goflags::parse_bool, action = clap::ArgAction::Set)]
    pub client_cert_auth: bool,
    /// Path to the client certificate revocation list file.
    #[arg(long, env = "ETCD_CLIENT_CRL_FILE", default_value = "")]
    pub client_crl_file: String,
    /// Comma-separated hostnames a client certificate must be valid for.
    #[arg(long, env = "ETCD_CLIENT_CERT_ALLOWED_HOSTNAME", default_value = "")]
    pub client_cert_allowed_hostname: String,
    /// Common Names allowed for client certificates: etcd has no flag for
    /// it, only the config file's `client-transport-security.allowed-cn`.
    #[arg(long, hide = true, default_value = "")]
    pub client_cert_allowed_cn: String,
    /// Path to the client server TLS trusted CA cert file (turns on
    /// client cert authentication).
    #[arg(long, env = "ETCD_TRUSTED_CA_FILE", default_value = "")]
    pub trusted_ca_file: String,
    /// Client TLS using generated certificates.
    #[arg(long, env = "ETCD_AUTO_TLS", num_args = 0..=1, require_equals = true,
          default_missing_value = "true", default_value_t = false, value_parser = goflags::parse_bool, action = clap::ArgAction::Set)]
    pub auto_tls: bool,
    /// Path to the peer server TLS cert file.
    #[arg(long, env = "ETCD_PEER_CERT_FILE", default_value = "")]
    pub peer_cert_file: String,
    /// Path to the peer server TLS key file.
    #[arg(long, env = "ETCD_PEER_KEY_FILE", default_value = "")]
    pub peer_key_file: String,
    /// Enable peer client cert authentication.
    #[arg(long, env = "ETCD_PEER_CLIENT_CERT_AUTH", num_args = 0..=1, require_equals = true,
          default_missing_value = "true", default_value_t = false, value_parser = goflags::parse_bool, action = clap::ArgAction::Set)]
    pub peer_client_cert_auth: bool,
    /// Path to the peer server TLS trusted CA file.
    #[arg(long, env = "ETCD_PEER_TRUSTED_CA_FILE", default_value = "")]
    pub peer_trusted_ca_file: String,
    /// Peer TLS using generated certificates.
    #[arg(long, env = "ETCD_PEER_AUTO_TLS", num_args = 0..=1, require_equals = true,
          default_missing_value = "true", default_value_t = false, value_parser = goflags::parse_bool, action = clap::ArgAction::Set)]
    pub peer_auto_tls: bool,
    /// Path to the peer certificate revocation list file.
    #[arg(long, env = "ETCD_PEER_CRL_FILE", default_value = "")]
    pub peer_crl_file: String,
    /// Comma-separated Common Names allowed for peer certificates.
    #[arg(long, env = "ETCD_PEER_CERT_ALLOWED_CN", default_value = "")]
    pub peer_cert_allowed_cn: String,
    /// Comma-separated hostnames a peer certificate must be valid for.
    #[arg(long, env = "ETCD_PEER_CERT_ALLOWED_HOSTNAME", default_value = "")]
    pub peer_cert_allowed_hostname: String,
    /// Do not check that a peer's IP address is in its client
    /// certificate's subject alternative names.
    #[arg(long, env = "ETCD_EXPERIMENTAL_PEER_SKIP_CLIENT_SAN_VERIFICATION", num_args = 0..=1,
          require_equals = true, default_missing_value = "true", default_value_t = false,
          value_parser = goflags::parse_bool, action = clap::ArgAction::Set)]
    pub experimental_peer_skip_client_san_verification: bool,
    /// Validity of the auto TLS certificates, in years.
    #[arg(long, env = "ETCD_SELF_SIGNED_CERT_VALIDITY", default_value_t = 1)]
    pub self_signed_cert_validity: u32,
    /// Comma-separated TLS 1.2 cipher suites (Go's names) for client and
    /// peer traffic; empty for the defaults.
    #[arg(long, env = "ETCD_CIPHER_SUITES", default_value = "")]
    pub cipher_suites: String,
    /// Minimum TLS version: TLS1.2 or TLS1.3.
    #[arg(long, env = "ETCD_TLS_MIN_VERSION", default_value = "TLS1.2")]
    pub tls_min_version: String,
    /// Maximum TLS version: TLS1.2 or TLS1.3 (empty: the newest).
    #[arg(long, env = "ETCD_TLS_MAX_VERSION", default_value = "")]
    pub tls_max_version: String,
    /// Before a restarted member serves clients, compare its HashKV with
    /// its peers' and refuse to start on a mismatch.
    #[arg(long, env = "ETCD_EXPERIMENTAL_INITIAL_CORRUPT_CHECK", num_args = 0..=1,
          require_equals = true, default_missing_value = "true", default_value_t = false,
          value_parser = goflags::parse_bool, action = clap::ArgAction::Set)]
    pub experimental_initial_corrupt_check: bool,
    /// Duration of time between cluster corruption check passes (0: off).
    #[arg(
        long,
        env = "ETCD_EXPERIMENTAL_CORRUPT_CHECK_TIME",
        default_value = "0s"
    )]
    pub experimental_corrupt_check_time: String,
    /// Refuse membership changes that would leave the cluster without a
    /// quorum of started, connected voting members.
    #[arg(long, env = "ETCD_STRICT_RECONFIG_CHECK", num_args = 0..=1,
          require_equals = true, default_missing_value = "true", default_value_t = true,
          value_parser = goflags::parse_bool, action = clap::ArgAction::Set)]
    pub strict_reconfig_check: bool,
    /// bcrypt cost for hashing user passwords (4 to 31; another value
    /// falls back to 10 with a warning, as in etcd).
    #[arg(long, env = "ETCD_BCRYPT_COST", default_value_t = 10)]
    pub bcrypt_cost: u32,
    /// How auth tokens are made: `simple`, or
    /// `jwt,pub-key=<file>,priv-key=<file>,sign-method=<alg>[,ttl=<duration>]`.
    #[arg(long, env = "ETCD_AUTH_TOKEN", default_value = "simple")]
    pub auth_token: String,
    /// Seconds a simple token lives without being used.
    #[arg(long, env = "ETCD_AUTH_TOKEN_TTL", default_value_t = 300)]
    pub auth_token_ttl: u64,
    /// Restart from the data dir as a one-member cluster, removing every
    /// other member (disaster recovery).
    #[arg(long, env = "ETCD_FORCE_NEW_CLUSTER", num_args = 0..=1,
          require_equals = true, default_missing_value = "true", default_value_t = false,
          value_parser = goflags::parse_bool, action = clap::ArgAction::Set)]
    pub force_new_cluster: bool,
    /// Most concurrent streams on one client HTTP/2 connection.
    #[arg(long, env = "ETCD_MAX_CONCURRENT_STREAMS", default_value_t = u32::MAX)]
    pub max_concurrent_streams: u32,
    /// More URLs that serve only `/metrics` and the health endpoints
    /// (`https://` ones with the client TLS settings).
    #[arg(long, env = "ETCD_LISTEN_METRICS_URLS", default_value = "")]
    pub listen_metrics_urls: String,
    /// Comma-separated origins a browser may call from (CORS); empty or
    /// `*` allows any.
    #[arg(long, env = "ETCD_CORS", default_value = "*")]
    pub cors: String,
    /// Comma-separated host names plain-HTTP requests may name in their
    /// `Host` (against DNS rebinding, CVE-2018-5702); empty or `*` allows
    /// any.
    #[arg(long, env = "ETCD_HOST_WHITELIST", default_value = "*")]
    pub host_whitelist: String,
    /// `extensive` adds the gRPC latency histogram
    /// (`grpc_server_handling_seconds`); anything else is `basic`, as in
    /// etcd.
    #[arg(long, env = "ETCD_METRICS", default_value = "basic")]
    pub metrics: String,
    /// Configures log level: debug, info, warn, error, panic, or fatal.
    #[arg(long, env = "ETCD_LOG_LEVEL", default_value = "info")]
    pub log_level: String,
    /// Logger to use; only `zap` (structured JSON) exists, as in etcd 3.5.
    #[arg(long, env = "ETCD_LOGGER", default_value = "zap")]
    pub logger: String,
    /// Where logs go, comma-separated: `default` and `stderr` (standard
    /// error), `stdout`, or file paths (appended to).
    #[arg(long, env = "ETCD_LOG_OUTPUTS", default_value = "default")]
    pub log_outputs: String,
    /// Path to the server configuration file (YAML, etcd's keys). When
    /// given, other flags and environment variables are ignored.
    #[arg(long, env = "ETCD_CONFIG_FILE")]
    pub config_file: Option<PathBuf>,
    /// etcd 3.6's feature gates, `Name=true|false,...`:
    /// InitialCorruptCheck, LeaseCheckpoint, LeaseCheckpointPersist (the
    /// experimental flags of the same meaning), TxnModeWriteWithSharedBuffer;
    /// StopGRPCServiceOnDefrag, CompactHashCheck and SetMemberLocalAddr only
    /// false for now; AllAlpha, AllBeta.
    #[arg(long, env = "ETCD_FEATURE_GATES", default_value = "")]
    pub feature_gates: String,
    /// Print the version and exit.
    #[arg(long)]
    pub version: bool,
    /// etcd 3.6's warnings for the deprecated flags that were given, to
    /// log once logging is up.
    #[arg(skip)]
    pub deprecated: Vec<String>,
}

/// The parser: [`Config`]'s flags, the unsupported ones and etcd 3.6's
/// names for renamed ones.
fn command() -> clap::Command {
    Config::command()
        .args(unsupported::args())
        .args(migrate::args())
}

/// A configuration that etcd would refuse, with etcd's message.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct ConfigError(pub String);

impl Config {
    /// The configuration from the process's flags and `ETCD_*` variables,
    /// or, when `--config-file` (or `ETCD_CONFIG_FILE`) names a file, from
    /// that file alone, as etcd does.
    pub fn load() -> Result<Config, ConfigError> {
        let args = goflags::normalize(&command(), std::env::args_os());
        // A bad command line prints clap's usage error and exits 2, as
        // Go's flag package does for etcd.
        let (matches, deprecated) = migrate::parse(command, args, |e| e.exit())?;
        let mut cfg = Config::from_arg_matches(&matches).map_err(|e| ConfigError(e.to_string()))?;
        cfg.deprecated = deprecated;
        match &cfg.config_file {
            Some(path) if !cfg.version => Config::from_file(path),
            _ => {
                unsupported::check(&matches)?;
                Ok(cfg)
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::server::cors_list;
    use super::*;
    use crate::listener::ListenAddr;
    use std::time::Duration;

    fn parse(args: &[&str]) -> Config {
        Config::try_parse_from(std::iter::once("etcd").chain(args.iter().copied())).unwrap()
    }

    #[test]
    fn defaults_match_etcd() {
        let c = parse(&[]).validate().unwrap();
        assert_eq!(c.name, "default");
        assert_eq!(c.data_dir, PathBuf::from("default.etcd"));
        assert_eq!(c.wal_dir, PathBuf::from("default.etcd/member/wal"));
        assert_eq!(
            c.client_listen[0].addr,
            ListenAddr::Tcp("127.0.0.1:2379".parse().unwrap())
        );
        assert_eq!(
            c.initial_cluster[0].peer_urls,
            vec!["http://localhost:2380"]
        );
        assert_eq!(c.election_ticks, 10);
        assert_eq!(c.max_request_bytes, 1572864);
        assert_eq!(c.max_txn_ops, 128);
    }

    #[test]
    fn config_file_sets_etcds_keys_and_defaults_the_rest() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("etcd.yml");
        std::fs::write(
            &path,
            "name: infra1\n\
             data-dir: /tmp/infra1.etcd\n\
             listen-client-urls: http://127.0.0.1:12379\n\
             initial-advertise-peer-urls: http://127.0.0.1:12380\n\
             initial-cluster: infra1=http://127.0.0.1:12380,infra2=http://127.0.0.1:22380\n\
             heartbeat-interval: 50\n\
             election-timeout: 500\n\
             enable-v2: false\n",
        )
        .unwrap();
        let c = Config::from_file(&path).unwrap().validate().unwrap();
        assert_eq!(c.name, "infra1");
        assert_eq!(c.data_dir, PathBuf::from("/tmp/infra1.etcd"));
        assert_eq!(
            c.client_listen[0].addr,
            ListenAddr::Tcp("127.0.0.1:12379".parse().unwrap())
        );
        assert_eq!(c.initial_cluster.len(), 2);
        assert_eq!((c.tick, c.election_ticks), (Duration::from_millis(50), 10));
        assert_eq!(c.max_txn_ops, 128, "absent keys take the defaults");
    }

    #[test]
    fn lease_checkpoint_flags_take_go_bool_forms() {
        let c = parse(&["--experimental-enable-lease-checkpoint"])
            .validate()
            .unwrap();
        assert_eq!(c.lease_checkpoint, Some((Duration::from_secs(300), false)));
        let c = parse(&[
            "--experimental-enable-lease-checkpoint=true",
            "--experimental-enable-lease-checkpoint-persist",
            "--experimental-lease-checkpoint-interval=2s",
        ])
        .validate()
        .unwrap();
        assert_eq!(c.lease_checkpoint, Some((Duration::from_secs(2), true)));
        let c = parse(&["--experimental-enable-lease-checkpoint=false"])
            .validate()
            .unwrap();
        assert_eq!(c.lease_checkpoint, None);
        let e = parse(&["--experimental-enable-lease-checkpoint-persist"])
            .validate()
            .unwrap_err();
        assert!(
            e.0.contains("requires experimental-enable-lease-checkpoint"),
            "{e}"
        );
    }

    #[test]
    fn a_repeated_flag_keeps_the_last_value() {
        let c = parse(&[
            "--name",
            "a",
            "--name",
            "b",
            "--initial-cluster",
            "b=http://localhost:2380",
        ]);
        assert_eq!(c.name, "b");
    }

    #[test]
    fn cors_takes_star_or_host_port_urls() {
        assert_eq!(cors_list("*").unwrap(), Vec::<String>::new());
        assert_eq!(
            cors_list("http://a.example:80,http://b.example:8080").unwrap(),
            vec![
                "http://a.example:80".to_string(),
                "http://b.example:8080".to_string()
            ]
        );
        assert_eq!(
            cors_list("http://a.example").unwrap_err().0,
            "invalid value \"http://a.example\" for flag -cors: URL address does not have the form \"host:port\": http://a.example"
        );
        assert!(cors_list("http://a.example:80/x").is_err());
        assert!(cors_list("ftp://a.example:21").is_err());
    }

    #[test]
    fn member_must_be_in_initial_cluster() {
        let err = parse(&[
            "--name",
            "x",
            "--initial-cluster",
            "y=http://localhost:2380",
        ])
        .validate()
        .unwrap_err();
        assert_eq!(
            err.0,
            "couldn't find local name \"x\" in the initial cluster configuration"
        );
    }
}

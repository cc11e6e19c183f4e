//! What the member runs with: [`ServerConfig`], derived from the flags by
//! [`Config::validate`] with etcd's error texts for bad combinations, and
//! the parsers of the flags' values (URL lists, the initial cluster,
//! `--cors`, `--bcrypt-cost`).

use std::path::PathBuf;
use std::time::Duration;

use super::{auto_compaction, AutoCompaction, Config, ConfigError};
use crate::listener::ListenUrl;
use crate::tls::{Settings as TlsSettings, TlsInfo};

pub use storage::bootstrap::InitialMember;

/// The configuration after validation: what the member runs with.
#[derive(Clone, Debug)]
pub struct ServerConfig {
    /// This member's name.
    pub name: String,
    /// The data directory.
    pub data_dir: PathBuf,
    /// The WAL directory.
    pub wal_dir: PathBuf,
    /// Where to serve clients (`--listen-client-urls`, one entry per
    /// address).
    pub client_listen: Vec<ListenUrl>,
    /// Where to serve only metrics and health (`--listen-metrics-urls`).
    pub metrics_listen: Vec<ListenUrl>,
    /// `--metrics extensive`.
    pub metrics_extensive: bool,
    /// Client URLs told to the cluster.
    pub advertise_client_urls: Vec<String>,
    /// Where to serve peers (`--listen-peer-urls`).
    pub peer_listen: Vec<ListenUrl>,
    /// Peer URLs of this member.
    pub peer_urls: Vec<String>,
    /// The initial cluster, members in the order given.
    pub initial_cluster: Vec<InitialMember>,
    /// Token mixed into member and cluster ids.
    pub initial_cluster_token: String,
    /// `--initial-cluster-state new`.
    pub new_cluster: bool,
    /// One raft tick.
    pub tick: Duration,
    /// Ticks without a leader before an election.
    pub election_ticks: usize,
    /// `--snapshot-count`.
    pub snapshot_count: u64,
    /// `--experimental-snapshot-catchup-entries`.
    pub snapshot_catchup_entries: u64,
    /// `--experimental-watch-progress-notify-interval`.
    pub watch_progress_notify_interval: Duration,
    /// Lease checkpoints: `--experimental-lease-checkpoint-interval` and
    /// `--experimental-enable-lease-checkpoint-persist`, when
    /// `--experimental-enable-lease-checkpoint` is set.
    pub lease_checkpoint: Option<(Duration, bool)>,
    /// `--auto-compaction-mode` and `--auto-compaction-retention`; `None`
    /// when the retention is 0 (off).
    pub auto_compaction: Option<AutoCompaction>,
    /// `--experimental-compaction-batch-limit`: rows a compaction batch
    /// looks at (0 replaced by etcd's 1,000).
    pub compaction_batch_limit: usize,
    /// `--experimental-compaction-sleep-interval` (0 replaced by etcd's
    /// 10 ms).
    pub compaction_sleep_interval: Duration,
    /// `--quota-backend-bytes`, with 0 replaced by the default (2 GiB).
    pub quota_backend_bytes: u64,
    /// `--max-request-bytes`.
    pub max_request_bytes: usize,
    /// `--max-txn-ops`.
    pub max_txn_ops: usize,
    /// How long a request may wait for raft (etcd: 5 s + 2 election
    /// timeouts).
    pub request_timeout: Duration,
    /// Client TLS files and checks (empty without `--cert-file`).
    pub client_tls: TlsInfo,
    /// `--auto-tls`: generate the client certificate if none is given.
    pub client_auto_tls: bool,
    /// Peer TLS files and checks (empty without `--peer-cert-file`).
    pub peer_tls: TlsInfo,
    /// `--peer-auto-tls`.
    pub peer_auto_tls: bool,
    /// Check peers' IP addresses against their certificates' SANs (not
    /// `--experimental-peer-skip-client-san-verification`).
    pub peer_san_check: bool,
    /// `--self-signed-cert-validity`, in years.
    pub self_signed_cert_validity: u32,
    /// `--cipher-suites`, `--tls-min-version`, `--tls-max-version`.
    pub tls_settings: TlsSettings,
    /// `--max-concurrent-streams`.
    pub max_concurrent_streams: u32,
    /// `--cors`: the allowed origins; empty allows any.
    pub cors: Vec<String>,
    /// `--host-whitelist`: the allowed `Host` names of plain-HTTP
    /// requests; empty allows any.
    pub host_whitelist: Vec<String>,
    /// `--experimental-initial-corrupt-check`.
    pub initial_corrupt_check: bool,
    /// `--experimental-corrupt-check-time`; `None` when 0 (off).
    pub corrupt_check_time: Option<Duration>,
    /// `--strict-reconfig-check`.
    pub strict_reconfig_check: bool,
    /// `--bcrypt-cost`, within bcrypt's range.
    pub bcrypt_cost: u32,
    /// `--auth-token`, as given (parsed, with its key files read, at start).
    pub auth_token: String,
    /// `--auth-token-ttl`.
    pub auth_token_ttl: Duration,
    /// `--force-new-cluster`.
    pub force_new_cluster: bool,
}

/// `--bcrypt-cost` within bcrypt's 4 to 31, else etcd's default 10 with
/// etcd's warning.
fn bcrypt_cost(given: u32) -> u32 {
    const DEFAULT: u32 = 10;
    if (4..=31).contains(&given) {
        return given;
    }
    tracing::warn!(
        min_cost = 4,
        max_cost = 31,
        default_cost = DEFAULT,
        given_cost = given,
        "use default bcrypt cost instead of the invalid given cost"
    );
    DEFAULT
}

fn split_urls(s: &str) -> Vec<String> {
    s.split(',')
        .map(str::trim)
        .filter(|u| !u.is_empty())
        .map(String::from)
        .collect()
}

fn non_empty(s: &str) -> Option<&str> {
    Some(s).filter(|s| !s.is_empty())
}

/// Every address of comma-separated listen URLs.
fn listen_urls(urls: &str) -> Result<Vec<ListenUrl>, ConfigError> {
    let mut out = Vec::new();
    for u in split_urls(urls) {
        out.extend(ListenUrl::parse(&u).map_err(ConfigError)?);
    }
    Ok(out)
}

/// A Go-style duration above zero (`500ms`, `5m`).
fn positive_duration(s: &str) -> Option<Duration> {
    humantime::parse_duration(s).ok().filter(|d| !d.is_zero())
}

/// Parses `name=url,name=url` into members (`storage::bootstrap`).
pub fn parse_initial_cluster(s: &str) -> Result<Vec<InitialMember>, ConfigError> {
    storage::bootstrap::parse_initial_cluster(s).map_err(ConfigError)
}

impl Config {
    /// Checks the flags and derives the member's configuration.
    pub fn validate(&self) -> Result<ServerConfig, ConfigError> {
        let data_dir = self
            .data_dir
            .clone()
            .unwrap_or_else(|| PathBuf::from(format!("{}.etcd", self.name)));
        let wal_dir = self
            .wal_dir
            .clone()
            .unwrap_or_else(|| data_dir.join("member").join("wal"));
        let client_listen = listen_urls(&self.listen_client_urls)?;
        let peer_listen = listen_urls(&self.listen_peer_urls)?;
        let client_tls = TlsInfo {
            cert_file: self.cert_file.clone().into(),
            key_file: self.key_file.clone().into(),
            trusted_ca_file: non_empty(&self.trusted_ca_file).map(PathBuf::from),
            client_cert_auth: self.client_cert_auth,
            crl_file: non_empty(&self.client_crl_file).map(PathBuf::from),
            allowed_cn: split_urls(&self.client_cert_allowed_cn),
            allowed_hostname: split_urls(&self.client_cert_allowed_hostname),
            self_signed: false,
        };
        let peer_tls = TlsInfo {
            cert_file: self.peer_cert_file.clone().into(),
            key_file: self.peer_key_file.clone().into(),
            trusted_ca_file: non_empty(&self.peer_trusted_ca_file).map(PathBuf::from),
            client_cert_auth: self.peer_client_cert_auth,
            crl_file: non_empty(&self.peer_crl_file).map(PathBuf::from),
            allowed_cn: split_urls(&self.peer_cert_allowed_cn),
            allowed_hostname: split_urls(&self.peer_cert_allowed_hostname),
            self_signed: false,
        };
        for info in [&client_tls, &peer_tls] {
            info.check().map_err(|e| ConfigError(e.0))?;
        }
        if let Some(u) = client_listen.iter().find(|u| u.secure) {
            if client_tls.is_empty() && !self.auto_tls {
                return Err(ConfigError(format!(
                    "TLS key/cert (--cert-file, --key-file) must be provided for client url {} with HTTPS scheme",
                    u.url
                )));
            }
        }
        if let Some(u) = peer_listen.iter().find(|u| u.secure) {
            if peer_tls.is_empty() && !self.peer_auto_tls {
                return Err(ConfigError(format!(
                    "cannot listen on TLS for {}: KeyFile and CertFile are not presented",
                    u.address()
                )));
            }
        }
        match self.logger.as_str() {
            "zap" => {}
            "capnslog" => return Err(ConfigError("--logger=capnslog is removed in v3.5".into())),
            other => return Err(ConfigError(format!("unknown logger option {other:?}"))),
        }
        let tls_settings = TlsSettings::parse(
            &self.cipher_suites,
            &self.tls_min_version,
            &self.tls_max_version,
        )
        .map_err(|e| ConfigError(e.0))?;
        if self.self_signed_cert_validity == 0 && (self.auto_tls || self.peer_auto_tls) {
            return Err(ConfigError(
                "selfSignedCertValidity is invalid,it should be greater than 0".into(),
            ));
        }
        let peer_urls = split_urls(&self.initial_advertise_peer_urls);
        let initial = match &self.initial_cluster {
            Some(s) => s.clone(),
            None => peer_urls
                .iter()
                .map(|u| format!("{}={}", self.name, u))
                .collect::<Vec<_>>()
                .join(","),
        };
        let initial_cluster = parse_initial_cluster(&initial)?;
        let new_cluster = match self.initial_cluster_state.as_str() {
            "new" => true,
            "existing" => false,
            other => {
                return Err(ConfigError(format!(
                    "invalid value {other:?} for flag -initial-cluster-state: valid values are \"new\", \"existing\""
                )))
            }
        };
        // As etcd's verifyLocalMember, only when bootstrapping or joining:
        // a restarted member has its membership in its data (and may have
        // moved to new peer URLs with `member update`).
        let bootstrapping = !storage::wal::Wal::exists(&wal_dir);
        if bootstrapping {
            storage::bootstrap::verify_local_member(&self.name, &peer_urls, &initial_cluster)
                .map_err(ConfigError)?;
        }
        if self.heartbeat_interval == 0 || self.election_timeout < 5 * self.heartbeat_interval {
            return Err(ConfigError(format!(
                "--election-timeout[{}ms] should be at least as 5 times as --heartbeat-interval[{}ms]",
                self.election_timeout, self.heartbeat_interval
            )));
        }
        if self.experimental_enable_lease_checkpoint_persist
            && !self.experimental_enable_lease_checkpoint
        {
            return Err(ConfigError(
                "setting experimental-enable-lease-checkpoint-persist requires experimental-enable-lease-checkpoint".into(),
            ));
        }
        let lease_checkpoint_interval =
            positive_duration(&self.experimental_lease_checkpoint_interval).ok_or_else(|| {
                ConfigError(format!(
                    "invalid value {:?} for flag -experimental-lease-checkpoint-interval",
                    self.experimental_lease_checkpoint_interval
                ))
            })?;
        let tick = Duration::from_millis(self.heartbeat_interval);
        let election_ticks = (self.election_timeout / self.heartbeat_interval) as usize;
        Ok(ServerConfig {
            name: self.name.clone(),
            data_dir,
            wal_dir,
            client_listen,
            metrics_listen: listen_urls(&self.listen_metrics_urls)?,
            metrics_extensive: self.metrics == "extensive",
            advertise_client_urls: split_urls(&self.advertise_client_urls),
            peer_listen,
            peer_urls,
            initial_cluster,
            initial_cluster_token: self.initial_cluster_token.clone(),
            new_cluster,
            tick,
            election_ticks,
            snapshot_count: self.snapshot_count.max(1),
            snapshot_catchup_entries: self.experimental_snapshot_catchup_entries,
            lease_checkpoint: self.experimental_enable_lease_checkpoint.then_some((
                lease_checkpoint_interval,
                self.experimental_enable_lease_checkpoint_persist,
            )),
            watch_progress_notify_interval: positive_duration(
                &self.experimental_watch_progress_notify_interval,
            )
            .ok_or_else(|| {
                ConfigError(format!(
                    "invalid value {:?} for flag -experimental-watch-progress-notify-interval",
                    self.experimental_watch_progress_notify_interval
                ))
            })?,
            auto_compaction: auto_compaction(
                &self.compaction.auto_compaction_mode,
                &self.compaction.auto_compaction_retention,
            )?,
            compaction_batch_limit: self.compaction.batch_limit(),
            compaction_sleep_interval: self.compaction.sleep_interval()?,
            quota_backend_bytes: if self.quota_backend_bytes == 0 {
                2 * 1024 * 1024 * 1024
            } else {
                self.quota_backend_bytes
            },
            max_request_bytes: self.max_request_bytes as usize,
            max_txn_ops: self.max_txn_ops as usize,
            request_timeout: Duration::from_secs(5)
                + 2 * Duration::from_millis(self.election_timeout),
            client_tls,
            client_auto_tls: self.auto_tls,
            peer_tls,
            peer_auto_tls: self.peer_auto_tls,
            peer_san_check: !self.experimental_peer_skip_client_san_verification,
            self_signed_cert_validity: self.self_signed_cert_validity,
            tls_settings,
            max_concurrent_streams: self.max_concurrent_streams,
            cors: cors_list(&self.cors)?,
            host_whitelist: allow_list(&self.host_whitelist),
            initial_corrupt_check: self.experimental_initial_corrupt_check,
            corrupt_check_time: goflags::parse_duration(&self.experimental_corrupt_check_time)
                .map(|d| Some(d).filter(|d| !d.is_zero()))
                .map_err(|_| {
                    ConfigError(format!(
                        "invalid value {:?} for flag -experimental-corrupt-check-time: parse error",
                        self.experimental_corrupt_check_time
                    ))
                })?,
            strict_reconfig_check: self.strict_reconfig_check,
            bcrypt_cost: bcrypt_cost(self.bcrypt_cost),
            auth_token: self.auth_token.clone(),
            auth_token_ttl: Duration::from_secs(self.auth_token_ttl),
            force_new_cluster: self.force_new_cluster,
        })
    }
}

/// `--cors`: `*`, or URLs as etcd's `UniqueURLs` takes them (http and
/// https with a `host:port` and no path, unix and unixs). Error: etcd's
/// `invalid value ... for flag -cors: ...`.
pub(super) fn cors_list(s: &str) -> Result<Vec<String>, ConfigError> {
    if s.trim() == "*" || s.trim().is_empty() {
        return Ok(Vec::new());
    }
    for u in s.split(',').map(str::trim) {
        let problem = match u.split_once("://") {
            Some(("http" | "https", rest)) => match rest.split_once('/') {
                _ if !rest.split('/').next().unwrap_or("").contains(':') => Some(format!(
                    "URL address does not have the form \"host:port\": {u}"
                )),
                Some(_) => Some(format!("URL must not contain a path: {u}")),
                None => None,
            },
            Some(("unix" | "unixs", _)) => None,
            _ => Some(format!(
                "URL scheme must be http, https, unix, or unixs: {u}"
            )),
        };
        if let Some(p) = problem {
            return Err(ConfigError(format!(
                "invalid value {s:?} for flag -cors: {p}"
            )));
        }
    }
    Ok(allow_list(s))
}

/// A comma-separated allow list, duplicates and empty entries dropped;
/// empty when it allows anything (`*` among its entries).
fn allow_list(s: &str) -> Vec<String> {
    let mut v: Vec<String> = s
        .split(',')
        .map(str::trim)
        .filter(|e| !e.is_empty())
        .map(String::from)
        .collect();
    v.sort();
    v.dedup();
    if v.iter().any(|e| e == "*") {
        v.clear();
    }
    v
}

//! etcd's YAML configuration file (`--config-file`): top-level keys are
//! the flag names, TLS settings sit in the `client-transport-security:`
//! and `peer-transport-security:` blocks, lists (`cipher-suites`,
//! `log-outputs`) are YAML sequences. Each entry becomes the flag it
//! stands for and goes through the same parser, so a value means the
//! same in the file as on the command line. When a file is given,
//! flags and `ETCD_*` variables are ignored, as in etcd.

use std::collections::BTreeMap;
use std::path::Path;

use clap::FromArgMatches;
use serde_yaml_ng::Value;

use super::{command, unsupported, Config, ConfigError};

/// The flag each key of a transport-security block stands for:
/// (key, client-side flag, peer-side flag).
const SECURITY_KEYS: &[(&str, &str, &str)] = &[
    ("cert-file", "cert-file", "peer-cert-file"),
    ("key-file", "key-file", "peer-key-file"),
    (
        "client-cert-file",
        "client-cert-file",
        "peer-client-cert-file",
    ),
    ("client-key-file", "client-key-file", "peer-client-key-file"),
    (
        "client-cert-auth",
        "client-cert-auth",
        "peer-client-cert-auth",
    ),
    ("trusted-ca-file", "trusted-ca-file", "peer-trusted-ca-file"),
    ("auto-tls", "auto-tls", "peer-auto-tls"),
    (
        "allowed-cn",
        "client-cert-allowed-cn",
        "peer-cert-allowed-cn",
    ),
    (
        "allowed-hostname",
        "client-cert-allowed-hostname",
        "peer-cert-allowed-hostname",
    ),
    ("crl-file", "client-crl-file", "peer-crl-file"),
];

/// Keys whose spelling differs from their flag's.
const RENAMED: &[(&str, &str)] = &[(
    "experimental-snapshot-catch-up-entries",
    "experimental-snapshot-catchup-entries",
)];

impl Config {
    /// Reads a YAML configuration file with etcd's keys (`name`,
    /// `data-dir`, `initial-cluster`, the transport-security blocks, ...);
    /// keys etcd does not know are ignored, as etcd ignores them; absent
    /// keys take the defaults; variables are not read. Errors: an
    /// unreadable or malformed file, a value its flag refuses, an etcd
    /// flag etcd-rs does not support set to a non-default value.
    pub fn from_file(path: &Path) -> Result<Config, ConfigError> {
        let text = std::fs::read_to_string(path)
            .map_err(|e| ConfigError(format!("cannot read config file {}: {e}", path.display())))?;
        let map: BTreeMap<String, Value> = serde_yaml_ng::from_str(&text).map_err(|e| {
            ConfigError(format!(
                "error unmarshaling config file {}: {e}",
                path.display()
            ))
        })?;
        // No environment lookups: the file is the whole configuration.
        let cmd = command().mut_args(|a| a.env(None::<&str>));
        let known: Vec<String> = cmd
            .get_arguments()
            .filter_map(|a| a.get_long().map(String::from))
            .filter(|l| l != "config-file" && l != "version")
            .collect();
        let mut args = vec!["etcd".to_string()];
        for (key, value) in map {
            let block = match key.as_str() {
                "client-transport-security" => Some(false),
                "peer-transport-security" => Some(true),
                _ => None,
            };
            if let Some(peer) = block {
                let Value::Mapping(entries) = value else {
                    return Err(ConfigError(format!(
                        "config file key {key:?}: expected a mapping"
                    )));
                };
                for (k, v) in entries {
                    let Some(k) = k.as_str() else { continue };
                    let Some(&(_, client_flag, peer_flag)) =
                        SECURITY_KEYS.iter().find(|(name, _, _)| *name == k)
                    else {
                        continue;
                    };
                    let flag = if peer { peer_flag } else { client_flag };
                    push(&mut args, flag, v)?;
                }
                continue;
            }
            let flag = RENAMED
                .iter()
                .find(|(k, _)| *k == key)
                .map_or(key.as_str(), |(_, f)| f);
            if known.iter().any(|k| k == flag) {
                push(&mut args, flag, value)?;
            }
        }
        let (matches, deprecated) = super::migrate::parse(
            || command().mut_args(|a| a.env(None::<&str>)),
            args.into_iter().map(Into::into).collect(),
            |e| ConfigError(format!("config file {}: {e}", path.display())),
        )?;
        unsupported::check(&matches)?;
        let mut cfg = Config::from_arg_matches(&matches).map_err(|e| ConfigError(e.to_string()))?;
        cfg.deprecated = deprecated;
        cfg.config_file = Some(path.to_path_buf());
        Ok(cfg)
    }
}

/// Adds `--flag=value` for a YAML value (a sequence joins with commas).
fn push(args: &mut Vec<String>, flag: &str, value: Value) -> Result<(), ConfigError> {
    let v = match value {
        Value::Null => return Ok(()),
        Value::Sequence(items) => items
            .into_iter()
            .map(|i| scalar(flag, i))
            .collect::<Result<Vec<_>, _>>()?
            .join(","),
        other => scalar(flag, other)?,
    };
    args.push(format!("--{flag}={v}"));
    Ok(())
}

fn scalar(flag: &str, value: Value) -> Result<String, ConfigError> {
    match value {
        Value::String(s) => Ok(s),
        Value::Number(n) => Ok(n.to_string()),
        Value::Bool(b) => Ok(b.to_string()),
        other => Err(ConfigError(format!(
            "config file key {flag:?}: unsupported value {other:?}"
        ))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn transport_security_blocks_and_lists_set_the_tls_flags() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("etcd.yml");
        std::fs::write(
            &path,
            "name: s1\n\
             listen-client-urls: https://127.0.0.1:2379\n\
             client-transport-security:\n  cert-file: /c.pem\n  key-file: /k.pem\n  client-cert-auth: true\n  trusted-ca-file: /ca.pem\n  allowed-cn: [alice, bob]\n\
             peer-transport-security:\n  auto-tls: true\n  allowed-hostname: [peer.example]\n  crl-file: /crl.pem\n\
             cipher-suites:\n  - TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256\n  - TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256\n\
             experimental-snapshot-catch-up-entries: 77\n",
        )
        .unwrap();
        let c = Config::from_file(&path).unwrap();
        assert_eq!(
            (c.cert_file.as_str(), c.key_file.as_str()),
            ("/c.pem", "/k.pem")
        );
        assert!(c.client_cert_auth && c.peer_auto_tls && !c.auto_tls);
        assert_eq!(c.trusted_ca_file, "/ca.pem");
        assert_eq!(c.client_cert_allowed_cn, "alice,bob");
        assert_eq!(c.peer_cert_allowed_hostname, "peer.example");
        assert_eq!(c.peer_crl_file, "/crl.pem");
        assert_eq!(
            c.cipher_suites,
            "TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256,TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256"
        );
        assert_eq!(c.experimental_snapshot_catchup_entries, 77);
        let v = c.validate().unwrap();
        assert_eq!(v.client_tls.allowed_cn, ["alice", "bob"]);
        assert!(v.client_tls.requires_client_cert());
    }

    #[test]
    fn an_unsupported_flag_in_the_file_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("etcd.yml");
        std::fs::write(&path, "name: s1\nenable-pprof: true\n").unwrap();
        let e = Config::from_file(&path).unwrap_err();
        assert!(
            e.0.contains("--enable-pprof=true is not supported yet"),
            "{e}"
        );
    }
}

//! etcd 3.6's flag migration, which kubeadm and operators already write:
//! the `experimental-*` flags that 3.6 renamed (`--watch-progress-notify-
//! interval` for `--experimental-watch-progress-notify-interval`, ...)
//! are accepted under both names, the old one logged as deprecated in
//! 3.6's words, both at once refused; and `--feature-gates` (3.6's
//! `Name=bool,...`) sets the experimental booleans that became gates
//! (`InitialCorruptCheck`, `LeaseCheckpoint`, ...).
//!
//! The parser knows each renamed flag under its 3.5 name (the one the rest
//! of the configuration reads) and the 3.6 name as a hidden argument; a
//! value given under the 3.6 name, or through a gate, is passed on under
//! the 3.5 name in a second parse.

use std::ffi::OsString;
use std::sync::OnceLock;

use clap::parser::ValueSource;
use clap::{Arg, ArgMatches};

use super::ConfigError;

/// (etcd 3.5 name, etcd 3.6 name) of every renamed flag.
const RENAMED: &[(&str, &str)] = &[
    (
        "experimental-compact-hash-check-time",
        "compact-hash-check-time",
    ),
    ("experimental-corrupt-check-time", "corrupt-check-time"),
    (
        "experimental-compaction-batch-limit",
        "compaction-batch-limit",
    ),
    (
        "experimental-watch-progress-notify-interval",
        "watch-progress-notify-interval",
    ),
    (
        "experimental-warning-apply-duration",
        "warning-apply-duration",
    ),
    (
        "experimental-bootstrap-defrag-threshold-megabytes",
        "bootstrap-defrag-threshold-megabytes",
    ),
    ("experimental-memory-mlock", "memory-mlock"),
    (
        "experimental-snapshot-catchup-entries",
        "snapshot-catchup-entries",
    ),
    (
        "experimental-compaction-sleep-interval",
        "compaction-sleep-interval",
    ),
    ("experimental-downgrade-check-time", "downgrade-check-time"),
    (
        "experimental-peer-skip-client-san-verification",
        "peer-skip-client-san-verification",
    ),
    (
        "experimental-enable-distributed-tracing",
        "enable-distributed-tracing",
    ),
    (
        "experimental-distributed-tracing-address",
        "distributed-tracing-address",
    ),
    (
        "experimental-distributed-tracing-service-name",
        "distributed-tracing-service-name",
    ),
    (
        "experimental-distributed-tracing-instance-id",
        "distributed-tracing-instance-id",
    ),
    (
        "experimental-distributed-tracing-sampling-rate",
        "distributed-tracing-sampling-rate",
    ),
];

/// etcd 3.6's feature gates: (gate, the 3.5 flag it stands for, default,
/// alpha). `SetMemberLocalAddr` has no 3.5 flag.
const GATES: &[(&str, Option<&str>, bool, bool)] = &[
    (
        "StopGRPCServiceOnDefrag",
        Some("experimental-stop-grpc-service-on-defrag"),
        false,
        true,
    ),
    (
        "InitialCorruptCheck",
        Some("experimental-initial-corrupt-check"),
        false,
        true,
    ),
    (
        "CompactHashCheck",
        Some("experimental-compact-hash-check-enabled"),
        false,
        true,
    ),
    (
        "TxnModeWriteWithSharedBuffer",
        Some("experimental-txn-mode-write-with-shared-buffer"),
        true,
        false,
    ),
    (
        "LeaseCheckpoint",
        Some("experimental-enable-lease-checkpoint"),
        false,
        true,
    ),
    (
        "LeaseCheckpointPersist",
        Some("experimental-enable-lease-checkpoint-persist"),
        false,
        true,
    ),
    ("SetMemberLocalAddr", None, false, true),
];

/// The hidden arguments for the 3.6 names (with their `ETCD_*`
/// variables); a boolean one also takes Go's bare `--flag`.
pub(super) fn args() -> Vec<Arg> {
    static ENV: OnceLock<Vec<String>> = OnceLock::new();
    let env = ENV.get_or_init(|| {
        RENAMED
            .iter()
            .map(|(_, new)| format!("ETCD_{}", new.to_uppercase().replace('-', "_")))
            .collect()
    });
    RENAMED
        .iter()
        .zip(env)
        .map(|((_, new), env)| {
            let boolean = matches!(
                *new,
                "memory-mlock" | "peer-skip-client-san-verification" | "enable-distributed-tracing"
            );
            super::unsupported::hidden(new, env.as_str(), boolean)
        })
        .collect()
}

/// The argument id of flag `name`: the flag itself for the hidden
/// arguments, its field name (underscores) for [`super::Config`]'s.
fn id(m: &ArgMatches, name: &str) -> String {
    if m.try_get_raw(name).is_ok() {
        name.to_string()
    } else {
        name.replace('-', "_")
    }
}

/// Whether flag `name` was given (on the command line, in the file, or as
/// its variable).
fn given(m: &ArgMatches, name: &str) -> bool {
    matches!(
        m.value_source(&id(m, name)),
        Some(ValueSource::CommandLine | ValueSource::EnvVariable)
    )
}

/// The raw text of flag `name`.
fn raw(m: &ArgMatches, name: &str) -> String {
    m.get_raw(&id(m, name))
        .and_then(|mut v| v.next())
        .map(|v| v.to_string_lossy().into_owned())
        .unwrap_or_default()
}

/// What the migration makes of a parse: the arguments to parse again
/// (the 3.5 names for what was given under 3.6's) and the deprecation
/// warnings to log once logging is up.
pub(super) struct Migrated {
    /// `--flag=value` arguments to append, if any.
    pub extra: Vec<OsString>,
    /// etcd 3.6's warnings for deprecated flags that were given.
    pub warnings: Vec<String>,
}

/// Resolves the renamed flags and the feature gates of `m`. Errors (etcd
/// 3.6's): both spellings of one flag; a gate that is not known or not a
/// boolean; a gate and its experimental flag both given.
pub(super) fn resolve(m: &ArgMatches) -> Result<Migrated, ConfigError> {
    let mut out = Migrated {
        extra: Vec::new(),
        warnings: Vec::new(),
    };
    for (old, new) in RENAMED {
        match (given(m, old), given(m, new)) {
            (true, true) => {
                return Err(ConfigError(format!(
                    "cannot set --{old} and --{new} at the same time, please use --{new} only"
                )))
            }
            (true, false) => out.warnings.push(deprecation(old, new)),
            (false, true) => out.extra.push(format!("--{old}={}", raw(m, new)).into()),
            (false, false) => {}
        }
    }
    let gates = parse_gates(&raw(m, "feature-gates"))?;
    for (gate, value) in gates {
        let Some(&(_, flag, _, _)) = GATES.iter().find(|(g, ..)| *g == gate) else {
            continue;
        };
        let Some(flag) = flag else {
            if value {
                return Err(ConfigError(format!(
                    "--feature-gates={gate}=true is not supported yet by etcd-rs"
                )));
            }
            continue;
        };
        if given(m, flag) {
            return Err(ConfigError(format!(
                "cannot specify both flags: --{flag}={} and --feature-gates={gate}={value} at the same time, please just use --feature-gates={gate}={value}",
                raw(m, flag)
            )));
        }
        out.extra.push(format!("--{flag}={value}").into());
    }
    // 3.6 warns of these two of the flags that became gates.
    for (flag, warning) in [
        (
            "experimental-compact-hash-check-enabled",
            "--experimental-compact-hash-check-enabled is deprecated in 3.6 and will be decommissioned in 3.7. Use '--feature-gates=CompactHashCheck=true' instead.",
        ),
        (
            "experimental-txn-mode-write-with-shared-buffer",
            "--experimental-txn-mode-write-with-shared-buffer is deprecated in v3.6 and will be decommissioned in v3.7. Use '--feature-gates=TxnModeWriteWithSharedBuffer=true' instead.",
        ),
    ] {
        if given(m, flag) {
            out.warnings.push(warning.to_string());
        }
    }
    Ok(out)
}

/// How flag `name` (a 3.5 name) with `value` was spelled by the user:
/// `--new=value` when given under its 3.6 name, `--feature-gates=Gate=value`
/// when set through a gate, else `--name=value`; so that an error names
/// what was written.
pub(super) fn spelled(m: &ArgMatches, name: &str, value: &str) -> String {
    if let Some((_, new)) = RENAMED.iter().find(|(old, _)| *old == name) {
        if m.try_get_raw(new).is_ok() && given(m, new) {
            return format!("--{new}={value}");
        }
    }
    let gates = match m.try_get_raw(&id(m, "feature-gates")) {
        Ok(_) => parse_gates(&raw(m, "feature-gates")).unwrap_or_default(),
        Err(_) => Vec::new(),
    };
    for (gate, _) in gates {
        if GATES
            .iter()
            .any(|(g, flag, ..)| *g == gate && *flag == Some(name))
        {
            return format!("--feature-gates={gate}={value}");
        }
    }
    format!("--{name}={value}")
}

/// Parses `args` with `cmd`, then again with what [`resolve`] adds when
/// 3.6 names or gates were given. `clap_error` turns a parse failure into
/// the caller's error (the command line exits with clap's usage, a file
/// reports it).
pub(super) fn parse(
    cmd: impl Fn() -> clap::Command,
    args: Vec<OsString>,
    clap_error: impl Fn(clap::Error) -> ConfigError,
) -> Result<(ArgMatches, Vec<String>), ConfigError> {
    let m = cmd().try_get_matches_from(&args).map_err(&clap_error)?;
    let migrated = resolve(&m)?;
    if migrated.extra.is_empty() {
        return Ok((m, migrated.warnings));
    }
    let again = args.into_iter().chain(migrated.extra);
    let m = cmd().try_get_matches_from(again).map_err(clap_error)?;
    Ok((m, migrated.warnings))
}

/// etcd 3.6's warning for a renamed flag given under its old name (its
/// words vary from flag to flag, as 3.6's `deprecatedFlags` do).
fn deprecation(old: &str, new: &str) -> String {
    if new.contains("distributed-tracing") {
        format!(
            "--{old} is deprecated in 3.6 and will be decommissioned in 3.7. Use --{new} instead."
        )
    } else if new == "compact-hash-check-time" {
        format!("--{old} is deprecated in 3.6 and will be decommissioned in 3.7. Use '--{new}' instead.")
    } else if new == "compaction-sleep-interval" {
        format!("--{old} is deprecated in v3.6 and will be decommissioned in v3.7. Use '{new}' instead.")
    } else {
        format!("--{old} is deprecated in v3.6 and will be decommissioned in v3.7. Use '--{new}' instead.")
    }
}

/// `Name=bool,...` as etcd 3.6's feature gate flag takes it, `AllAlpha`
/// and `AllBeta` expanded to the gates of their stage (an explicit gate
/// wins). Errors in etcd's words.
fn parse_gates(s: &str) -> Result<Vec<(&'static str, bool)>, ConfigError> {
    let mut explicit: Vec<(&'static str, bool)> = Vec::new();
    let mut stages: Vec<(bool, bool)> = Vec::new();
    for part in s.split(',').map(str::trim).filter(|p| !p.is_empty()) {
        let Some((name, value)) = part.split_once('=') else {
            return Err(ConfigError(format!("missing bool value for {part}")));
        };
        let (name, value) = (name.trim(), value.trim());
        let on = goflags::parse_bool(value)
            .map_err(|e| ConfigError(format!("invalid value of {name}={value}, err: {e}")))?;
        match name {
            "AllAlpha" => stages.push((true, on)),
            "AllBeta" => stages.push((false, on)),
            _ => match GATES.iter().find(|(g, ..)| *g == name) {
                Some((g, ..)) => explicit.push((g, on)),
                None => return Err(ConfigError(format!("unrecognized feature gate: {name}"))),
            },
        }
    }
    let mut out = Vec::new();
    for (alpha, on) in stages {
        for (g, _, _, is_alpha) in GATES {
            if *is_alpha == alpha && !explicit.iter().any(|(e, _)| e == g) {
                out.push((*g, on));
            }
        }
    }
    out.extend(explicit);
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Config;
    use clap::FromArgMatches;

    fn load(args: &[&str]) -> Result<(Config, Vec<String>), ConfigError> {
        let args = std::iter::once("etcd")
            .chain(args.iter().copied())
            .map(OsString::from)
            .collect();
        let cmd = || super::super::command().mut_args(|a| a.env(None::<&str>));
        let (m, warnings) = parse(cmd, args, |e| ConfigError(e.to_string()))?;
        super::super::unsupported::check(&m)?;
        Ok((Config::from_arg_matches(&m).unwrap(), warnings))
    }

    #[test]
    fn both_spellings_set_the_same_flag() {
        let (c, w) = load(&["--watch-progress-notify-interval=5s"]).unwrap();
        assert_eq!(c.experimental_watch_progress_notify_interval, "5s");
        assert!(w.is_empty());
        let (c, _) = load(&["--corrupt-check-time=5m"]).unwrap();
        assert_eq!(c.experimental_corrupt_check_time, "5m");
        let (c, w) = load(&["--experimental-snapshot-catchup-entries=7"]).unwrap();
        assert_eq!(c.experimental_snapshot_catchup_entries, 7);
        assert_eq!(
            w,
            ["--experimental-snapshot-catchup-entries is deprecated in v3.6 and will be decommissioned in v3.7. Use '--snapshot-catchup-entries' instead."]
        );
        let (c, _) =
            load(&["--feature-gates=LeaseCheckpoint=true,InitialCorruptCheck=true"]).unwrap();
        assert!(c.experimental_enable_lease_checkpoint && c.experimental_initial_corrupt_check);
        let e = load(&[
            "--snapshot-catchup-entries=1",
            "--experimental-snapshot-catchup-entries=2",
        ])
        .err()
        .unwrap();
        assert_eq!(
            e.0,
            "cannot set --experimental-snapshot-catchup-entries and --snapshot-catchup-entries at the same time, please use --snapshot-catchup-entries only"
        );
    }

    #[test]
    fn an_unsupported_flag_is_named_as_written() {
        let e = load(&["--downgrade-check-time=1s"]).err().unwrap();
        assert!(
            e.0.starts_with("--downgrade-check-time=1s is not supported yet by etcd-rs"),
            "{}",
            e.0
        );
        let e = load(&["--experimental-downgrade-check-time=1s"])
            .err()
            .unwrap();
        assert!(e
            .0
            .starts_with("--experimental-downgrade-check-time=1s is not"));
        let e = load(&["--feature-gates=CompactHashCheck=true"])
            .err()
            .unwrap();
        assert!(
            e.0.starts_with("--feature-gates=CompactHashCheck=true is not supported yet"),
            "{}",
            e.0
        );
    }

    #[test]
    fn gates_parse_as_etcds() {
        assert_eq!(
            parse_gates("InitialCorruptCheck=true").unwrap(),
            vec![("InitialCorruptCheck", true)]
        );
        assert_eq!(
            parse_gates("Foo=true").unwrap_err().0,
            "unrecognized feature gate: Foo"
        );
        assert_eq!(
            parse_gates("InitialCorruptCheck").unwrap_err().0,
            "missing bool value for InitialCorruptCheck"
        );
        let all = parse_gates("AllAlpha=false,LeaseCheckpoint=true").unwrap();
        assert!(all.contains(&("LeaseCheckpoint", true)));
        assert!(all.contains(&("InitialCorruptCheck", false)));
        assert!(!all.contains(&("LeaseCheckpoint", false)));
    }
}

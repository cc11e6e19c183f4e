//! The compaction flags: `--auto-compaction-mode` and
//! `--auto-compaction-retention` (what auto-compaction keeps, read as etcd
//! 3.5 reads the two flags), and `--experimental-compaction-batch-limit`
//! and `--experimental-compaction-sleep-interval` (how a compaction
//! removes history in the background).

use std::time::Duration;

use super::ConfigError;

/// The compaction flags, flattened into [`super::Config`].
#[derive(clap::Args, Debug, Clone)]
pub struct CompactionFlags {
    /// Interpret 'auto-compaction-retention' one of: periodic|revision.
    /// 'periodic' for duration based retention, defaulting to hours if no
    /// time unit is provided (e.g. '5m'). 'revision' for revision number
    /// based retention.
    #[arg(long, env = "ETCD_AUTO_COMPACTION_MODE", default_value = "periodic")]
    pub auto_compaction_mode: String,
    /// Auto compaction retention for mvcc key value store. 0 means disable
    /// auto compaction.
    #[arg(long, env = "ETCD_AUTO_COMPACTION_RETENTION", default_value = "0")]
    pub auto_compaction_retention: String,
    /// Sets the maximum revisions deleted in each compaction batch.
    #[arg(
        long,
        env = "ETCD_EXPERIMENTAL_COMPACTION_BATCH_LIMIT",
        default_value_t = 0
    )]
    pub experimental_compaction_batch_limit: i64,
    /// Sets the sleep interval between each compaction batch.
    #[arg(
        long,
        env = "ETCD_EXPERIMENTAL_COMPACTION_SLEEP_INTERVAL",
        default_value = "0s"
    )]
    pub experimental_compaction_sleep_interval: String,
}

impl CompactionFlags {
    /// Rows per compaction batch: the flag, or etcd's 1,000 when it is 0
    /// or less.
    pub fn batch_limit(&self) -> usize {
        match self.experimental_compaction_batch_limit {
            n if n > 0 => n as usize,
            _ => 1000,
        }
    }

    /// The pause between compaction batches: the flag, or etcd's 10 ms
    /// when it is 0. Errors: a value that is no Go duration, with Go's
    /// flag message.
    pub fn sleep_interval(&self) -> Result<Duration, ConfigError> {
        let v = &self.experimental_compaction_sleep_interval;
        let d = goflags::parse_duration(v).map_err(|_| {
            ConfigError(format!(
                "invalid value {v:?} for flag -experimental-compaction-sleep-interval: parse error"
            ))
        })?;
        Ok(if d.is_zero() {
            Duration::from_millis(10)
        } else {
            d
        })
    }
}

/// What auto-compaction keeps (etcd's v3compactor modes).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AutoCompaction {
    /// `periodic`: history younger than this.
    Periodic(Duration),
    /// `revision`: this many revisions behind the current one.
    Revision(i64),
}

/// `--auto-compaction-mode` and `--auto-compaction-retention` as etcd 3.5
/// reads them (`parseCompactionRetention`): a non-negative integer is
/// hours in periodic mode and a revision count in revision mode; anything
/// else is a Go duration (in revision mode too, taken as a count of
/// nanoseconds, as etcd does). 0 turns it off. Errors: `unknown
/// auto-compaction-mode "x"`, `error parsing CompactionRetention: time:
/// invalid duration "x"`.
pub fn auto_compaction(mode: &str, retention: &str) -> Result<Option<AutoCompaction>, ConfigError> {
    let periodic = match mode {
        "periodic" => true,
        "revision" => false,
        "" => false,
        other => {
            return Err(ConfigError(format!(
                "unknown auto-compaction-mode {other:?}"
            )))
        }
    };
    let amount = match retention.parse::<i64>() {
        // An empty mode makes an integer retention mean nothing (off).
        Ok(n) if n >= 0 && mode.is_empty() => Duration::ZERO,
        Ok(n) if n >= 0 && periodic => Duration::from_secs(n as u64 * 3600),
        Ok(n) if n >= 0 => Duration::from_nanos(n as u64),
        _ => goflags::parse_duration(retention)
            .map_err(|e| ConfigError(format!("error parsing CompactionRetention: {e}")))?,
    };
    if amount.is_zero() {
        return Ok(None);
    }
    if mode.is_empty() {
        return Err(ConfigError("unsupported compaction mode ".into()));
    }
    Ok(Some(if periodic {
        AutoCompaction::Periodic(amount)
    } else {
        AutoCompaction::Revision(amount.as_nanos().min(i64::MAX as u128) as i64)
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn auto_compaction_retention_reads_as_etcds() {
        use AutoCompaction::*;
        let h = |n: u64| Duration::from_secs(n * 3600);
        assert_eq!(auto_compaction("periodic", "0").unwrap(), None);
        assert_eq!(
            auto_compaction("periodic", "5").unwrap(),
            Some(Periodic(h(5)))
        );
        assert_eq!(
            auto_compaction("periodic", "30m").unwrap(),
            Some(Periodic(Duration::from_secs(1800)))
        );
        assert_eq!(
            auto_compaction("revision", "1000").unwrap(),
            Some(Revision(1000))
        );
        assert_eq!(auto_compaction("", "1").unwrap(), None);
        assert_eq!(
            auto_compaction("periodic", "abc").unwrap_err().0,
            "error parsing CompactionRetention: time: invalid duration \"abc\""
        );
        assert_eq!(
            auto_compaction("bogus", "1").unwrap_err().0,
            "unknown auto-compaction-mode \"bogus\""
        );
    }
}

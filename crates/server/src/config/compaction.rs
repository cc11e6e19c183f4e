//! `--auto-compaction-mode` and `--auto-compaction-retention`: what
//! auto-compaction keeps, read as etcd 3.5 reads the two flags.

use std::time::Duration;

use super::ConfigError;

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

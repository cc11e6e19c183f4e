//! `snapshot status`: the hash, revision, row count and size of a
//! snapshot file (or a backend file), printed as etcdutl 3.5 prints them
//! (`etcdutl/etcdutl/printer*.go`): `-w simple` (`c8d4e820, 6, 11, 20 kB`),
//! `json`, `table`, `fields`; `protobuf` is refused as etcdutl refuses it.
//! `snapshot restore`: a new data dir from a snapshot, with etcdutl 3.5's
//! flags, defaults, log lines and errors ([`RestoreArgs`]).

use std::path::{Path, PathBuf};

use storage::snapshot::restore::{self, RestoreConfig};
use storage::snapshot::{self, Mapped, Status};

use crate::{exit, print, Failure};

/// An output format of `-w/--write-out`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Format {
    Simple,
    Json,
    Table,
    Fields,
    Protobuf,
}

impl Format {
    /// The format named `name`. Errors: etcdutl's for any other name.
    pub fn parse(name: &str) -> Result<Format, Failure> {
        Ok(match name {
            "simple" => Format::Simple,
            "json" => Format::Json,
            "table" => Format::Table,
            "fields" => Format::Fields,
            "protobuf" => Format::Protobuf,
            _ => return Err(Failure::new(exit::BAD_FEATURE, "unsupported output format")),
        })
    }
}

/// The status of the file at `path`. Errors (exit code 1): a missing
/// file in Go's words (`stat PATH: no such file or directory`), one that
/// is not bbolt or is damaged.
pub fn status(path: &Path) -> Result<Status, Failure> {
    let failed = |e: String| Failure::new(exit::ERROR, e);
    if let Err(e) = std::fs::metadata(path) {
        return Err(failed(go_io_error("stat", path, &e)));
    }
    let mapped = Mapped::open(path).map_err(|e| failed(e.to_string()))?;
    snapshot::status(mapped.bytes()).map_err(|e| failed(e.to_string()))
}

/// `status` as `format` prints it, ending with a newline. Errors:
/// `protobuf`, which etcdutl cannot print a status in.
pub fn render_status(s: &Status, format: Format) -> Result<String, Failure> {
    let row = [
        format!("{:x}", s.hash),
        s.revision.to_string(),
        s.total_key.to_string(),
        print::human_bytes(s.total_size as i64),
    ];
    Ok(match format {
        Format::Simple => format!("{}\n", row.join(", ")),
        Format::Json => format!(
            "{{\"hash\":{},\"revision\":{},\"totalKey\":{},\"totalSize\":{}}}\n",
            s.hash, s.revision, s.total_key, s.total_size
        ),
        Format::Table => print::table::render(
            &["HASH", "REVISION", "TOTAL KEYS", "TOTAL SIZE"],
            &[row.to_vec()],
        ),
        Format::Fields => format!(
            "\"Hash\" : {}\n\"Revision\" : {}\n\"Keys\" : {}\n\"Size\" : {}\n",
            s.hash, s.revision, s.total_key, s.total_size
        ),
        Format::Protobuf => {
            return Err(Failure::new(
                exit::BAD_FEATURE,
                "protobuf not supported as output format",
            ))
        }
    })
}

/// `snapshot status FILE`, printed in `format`. Errors: not one file, an
/// unknown format, the file's.
pub fn status_command(files: &[PathBuf], format: &str) -> Result<String, Failure> {
    let [file] = files else {
        return Err(Failure::new(
            exit::BAD_ARGS,
            "snapshot status requires exactly one argument",
        ));
    };
    let format = Format::parse(format)?;
    render_status(&status(file)?, format)
}

/// The flags of `snapshot restore`, as etcdutl 3.5 (and etcdctl 3.5's
/// deprecated copy) names them and defaults them.
#[derive(clap::Args, Clone, Debug)]
pub struct RestoreArgs {
    /// The snapshot file.
    pub files: Vec<PathBuf>,
    /// Path to the output data directory
    #[arg(long = "data-dir", default_value = "")]
    pub data_dir: String,
    /// Path to the WAL directory (use --data-dir if none given)
    #[arg(long = "wal-dir", default_value = "")]
    pub wal_dir: String,
    /// Initial cluster configuration for restore bootstrap
    #[arg(
        long = "initial-cluster",
        default_value = "default=http://localhost:2380"
    )]
    pub initial_cluster: String,
    /// Initial cluster token for the etcd cluster during restore bootstrap
    #[arg(long = "initial-cluster-token", default_value = "etcd-cluster")]
    pub initial_cluster_token: String,
    /// List of this member's peer URLs to advertise to the rest of the cluster
    #[arg(
        long = "initial-advertise-peer-urls",
        default_value = "http://localhost:2380"
    )]
    pub initial_advertise_peer_urls: String,
    /// Human-readable name for this member
    #[arg(long = "name", default_value = "default")]
    pub name: String,
    /// Ignore snapshot integrity hash value (required if copied from data directory)
    #[arg(long = "skip-hash-check")]
    pub skip_hash_check: bool,
    /// Initial memory map size of the database in bytes (bbolt's; ignored: the backend is redb)
    #[arg(long = "initial-memory-map-size", default_value_t = 0)]
    pub initial_memory_map_size: u64,
    /// How much to increase the latest revision after restore
    #[arg(long = "bump-revision", default_value_t = 0)]
    pub bump_revision: u64,
    /// Mark the latest revision after restore as the point of scheduled compaction (required if --bump-revision > 0, disallowed otherwise)
    #[arg(long = "mark-compacted")]
    pub mark_compacted: bool,
}

/// `snapshot restore FILE`: checks the flags as etcdutl does, restores,
/// and logs etcdutl's two lines on standard error. Errors: etcdutl's.
pub fn restore_command(a: &RestoreArgs) -> Result<(), Failure> {
    let [file] = a.files.as_slice() else {
        return Err(Failure::new(
            exit::BAD_ARGS,
            "snapshot restore requires exactly one argument",
        ));
    };
    if (a.bump_revision == 0) == a.mark_compacted {
        return Err(Failure::new(
            exit::BAD_ARGS,
            "--mark-compacted required if --revision-bump > 0",
        ));
    }
    let failed = |e: String| Failure::new(exit::ERROR, e);
    let initial = storage::bootstrap::parse_initial_cluster(&a.initial_cluster).map_err(failed)?;
    let peer_urls: Vec<String> = a
        .initial_advertise_peer_urls
        .split(',')
        .map(str::to_string)
        .collect();
    storage::bootstrap::verify_local_member(&a.name, &peer_urls, &initial).map_err(failed)?;
    let data_dir = match a.data_dir.as_str() {
        "" => restore::default_data_dir(&a.name),
        d => PathBuf::from(d),
    };
    let wal_dir = match a.wal_dir.as_str() {
        "" => restore::default_wal_dir(&data_dir),
        d => PathBuf::from(d),
    };
    let cfg = RestoreConfig {
        snapshot: file.clone(),
        name: a.name.clone(),
        data_dir,
        wal_dir,
        initial_cluster: initial,
        token: a.initial_cluster_token.clone(),
        skip_hash_check: a.skip_hash_check,
        bump_revision: a.bump_revision,
    };
    log_restore("restoring snapshot", &cfg, a.initial_memory_map_size);
    restore::restore(&cfg).map_err(|e| failed(e.to_string()))?;
    log_restore("restored snapshot", &cfg, a.initial_memory_map_size);
    Ok(())
}

/// One of restore's log lines, as etcdutl's logger writes it (JSON on
/// standard error).
fn log_restore(msg: &str, cfg: &RestoreConfig, mmap: u64) {
    let snap_dir = cfg.data_dir.join("member").join("snap");
    let line = serde_json::json!({
        "level": "info",
        "ts": ts(),
        "caller": "snapshot/restore.rs",
        "msg": msg,
        "path": cfg.snapshot.display().to_string(),
        "wal-dir": cfg.wal_dir.display().to_string(),
        "data-dir": cfg.data_dir.display().to_string(),
        "snap-dir": snap_dir.display().to_string(),
        "initial-memory-map-size": mmap,
    });
    eprintln!("{line}");
}

/// Seconds since the epoch, as zap's default `ts`.
fn ts() -> f64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0.0, |d| d.as_secs_f64())
}

/// An I/O error of `op` on `path` as Go's `os.PathError` reads.
pub fn go_io_error(op: &str, path: &Path, e: &std::io::Error) -> String {
    let what = match e.kind() {
        std::io::ErrorKind::NotFound => "no such file or directory".to_string(),
        std::io::ErrorKind::PermissionDenied => "permission denied".to_string(),
        _ => e.to_string(),
    };
    format!("{op} {}: {what}", path.display())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_status_prints_as_etcdutl_prints_it() {
        // The figures of a snapshot real etcd 3.4.23 saved, and what its
        // etcdctl printed for them.
        let s = Status {
            hash: 3369396256,
            revision: 6,
            total_key: 11,
            total_size: 20480,
        };
        assert_eq!(
            render_status(&s, Format::Simple).unwrap(),
            "c8d4e820, 6, 11, 20 kB\n"
        );
        assert_eq!(
            render_status(&s, Format::Json).unwrap(),
            "{\"hash\":3369396256,\"revision\":6,\"totalKey\":11,\"totalSize\":20480}\n"
        );
        assert_eq!(
            render_status(&s, Format::Table).unwrap(),
            "+----------+----------+------------+------------+\n\
             |   HASH   | REVISION | TOTAL KEYS | TOTAL SIZE |\n\
             +----------+----------+------------+------------+\n\
             | c8d4e820 |        6 |         11 |      20 kB |\n\
             +----------+----------+------------+------------+\n"
        );
        assert_eq!(
            render_status(&s, Format::Fields).unwrap(),
            "\"Hash\" : 3369396256\n\"Revision\" : 6\n\"Keys\" : 11\n\"Size\" : 20480\n"
        );
        assert_eq!(
            render_status(&s, Format::Protobuf).unwrap_err().code,
            exit::BAD_FEATURE
        );
    }
}

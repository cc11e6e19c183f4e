//! `snapshot status`: the hash, revision, row count and size of a
//! snapshot file (or a backend file), printed as etcdutl 3.5 prints them
//! (`etcdutl/etcdutl/printer*.go`): `-w simple` (`c8d4e820, 6, 11, 20 kB`),
//! `json`, `table`, `fields`; `protobuf` is refused as etcdutl refuses it.

use std::path::Path;

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

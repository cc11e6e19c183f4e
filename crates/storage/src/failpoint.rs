//! Injected disk failures for the robustness harness: active only in a
//! build with the feature `failpoints`, never in a real member (other
//! builds have only the marker's name). While a file named
//! [`DISK_FULL`] exists in a member's `member/` directory, its WAL writes
//! stop halfway and fail, and its backend commits fail, with ENOSPC: the
//! member's disk is full. The harness creates and removes the file.

#[cfg(feature = "failpoints")]
use std::io;
#[cfg(feature = "failpoints")]
use std::path::Path;

/// The marker file's name, in `<data-dir>/member/`.
pub const DISK_FULL: &str = "FAIL_WRITES_DISK_FULL";

#[cfg(feature = "failpoints")]
/// ENOSPC, if the disk of the member whose `member/` directory is `dir`
/// is full now.
pub fn disk_full(dir: Option<&Path>) -> io::Result<()> {
    match dir {
        Some(dir) if dir.join(DISK_FULL).exists() => Err(io::Error::from_raw_os_error(28)),
        _ => Ok(()),
    }
}

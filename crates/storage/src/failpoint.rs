//! Injected disk failures for the robustness harness: active only in a
//! build with the feature `failpoints`, never in a real member (other
//! builds have only the marker's name). While a file named
//! [`DISK_FULL`] exists in a member's `member/` directory, its WAL writes
//! stop halfway and fail, and its backend commits fail, with ENOSPC: the
//! member's disk is full. The harness creates and removes the file.
//! While a file named [`SLOW_BACKEND_FSYNC`] exists there, every fsync of
//! its backend takes [`SLOW_FSYNC_DELAY`] longer: a slow disk.

#[cfg(feature = "failpoints")]
use std::io;
#[cfg(feature = "failpoints")]
use std::path::Path;

/// The marker file's name, in `<data-dir>/member/`.
pub const DISK_FULL: &str = "FAIL_WRITES_DISK_FULL";

/// The slow-disk marker's name, in `<data-dir>/member/`.
pub const SLOW_BACKEND_FSYNC: &str = "FAIL_BACKEND_FSYNC_SLOW";

/// What the slow-disk marker adds to each backend fsync.
pub const SLOW_FSYNC_DELAY: std::time::Duration = std::time::Duration::from_secs(3);

#[cfg(feature = "failpoints")]
/// Sleeps [`SLOW_FSYNC_DELAY`] (and says so in the log) if the disk of the
/// member whose `member/` directory is `dir` is slow now.
pub fn slow_fsync(dir: Option<&Path>) {
    if dir.is_some_and(|d| d.join(SLOW_BACKEND_FSYNC).exists()) {
        tracing::warn!(delay = ?SLOW_FSYNC_DELAY, "failpoint: backend fsync slowed");
        std::thread::sleep(SLOW_FSYNC_DELAY);
    }
}

#[cfg(feature = "failpoints")]
/// ENOSPC, if the disk of the member whose `member/` directory is `dir`
/// is full now.
pub fn disk_full(dir: Option<&Path>) -> io::Result<()> {
    match dir {
        Some(dir) if dir.join(DISK_FULL).exists() => Err(io::Error::from_raw_os_error(28)),
        _ => Ok(()),
    }
}

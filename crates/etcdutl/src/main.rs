//! `etcdutl`: etcd 3.5's administrative tool for a data directory that no
//! member is using, on the storage crate alone (no network, no server).
//! Its commands, flags, output and exit codes are etcdutl 3.5's:
//!
//! - `defrag --data-dir DIR`: defragments the backend of DIR
//!   (`member/snap/db`) in place; prints nothing on success, and
//!   `Error: Failed to defragment etcd data[DIR] (...)` with exit code 1
//!   on failure. While a member has the file open it waits, saying so
//!   after a second, as etcdutl waits for bbolt's file lock.
//! - `snapshot status FILE`: the hash, revision, rows and size of a
//!   snapshot (or backend) file in etcd's format, `-w simple|json|table|fields`
//!   (`etcdutl::snapshot`).
//! - `snapshot restore FILE`: a new data dir from a snapshot of etcd or
//!   etcd-rs, with etcdutl 3.5's flags (`etcdutl::snapshot::RestoreArgs`).
//! - `hashkv FILE [--rev N]`: the KV history hash of a backend or
//!   snapshot file (etcdutl 3.6's command; `etcdutl::hashkv`).
//! - `version`: etcdutl's and the API's version.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use clap::{Parser, Subcommand};
use storage::{Backend, BackendError};

/// The command line.
#[derive(Parser, Debug)]
#[command(
    name = "etcdutl",
    about = "An administrative command line tool for etcd3.",
    disable_version_flag = true
)]
struct Cli {
    /// set the output format (fields, json, protobuf, simple, table)
    #[arg(
        short = 'w',
        long = "write-out",
        global = true,
        default_value = "simple"
    )]
    write_out: String,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Defragments the storage of the etcd
    Defrag {
        /// Required. Defragments a data directory not in use by etcd.
        #[arg(long = "data-dir")]
        data_dir: PathBuf,
    },
    /// Prints the KV history hash of a given file
    Hashkv {
        /// The backend or snapshot file.
        files: Vec<PathBuf>,
        /// maximum revision to hash (default: latest revision)
        #[arg(long = "rev", default_value_t = 0)]
        rev: i64,
    },
    /// Manages etcd node snapshots
    Snapshot {
        #[command(subcommand)]
        command: SnapshotCommand,
    },
    /// Prints the version of etcdutl
    Version,
}

#[derive(Subcommand, Debug)]
enum SnapshotCommand {
    /// Gets backend snapshot status of a given file
    Status {
        /// The snapshot file.
        files: Vec<PathBuf>,
    },
    /// Restores an etcd member snapshot to an etcd directory
    Restore(snapshot::RestoreArgs),
}

/// The API version etcdutl 3.5 reports.
const API_VERSION: &str = "3.5";

use etcdutl::{exit, snapshot};

fn main() {
    let cmd = <Cli as clap::CommandFactory>::command();
    let args = goflags::normalize(&cmd, std::env::args_os());
    let cli = match Cli::try_parse_from(args) {
        Ok(cli) => cli,
        Err(e) => refuse(e),
    };
    match cli.command {
        Command::Defrag { data_dir } => {
            if let Err(e) = defrag(&data_dir) {
                eprintln!(
                    "Error: Failed to defragment etcd data[{}] ({e})",
                    data_dir.display()
                );
                std::process::exit(exit::ERROR);
            }
        }
        Command::Hashkv { files, rev } => {
            match etcdutl::hashkv::hashkv_command(&files, rev, &cli.write_out) {
                Ok(out) => print!("{out}"),
                Err(f) => {
                    eprintln!("Error: {}", f.message);
                    std::process::exit(f.code);
                }
            }
        }
        Command::Snapshot { command } => {
            let done = match command {
                SnapshotCommand::Status { files } => {
                    snapshot::status_command(&files, &cli.write_out).map(|out| print!("{out}"))
                }
                SnapshotCommand::Restore(args) => snapshot::restore_command(&args),
            };
            if let Err(f) = done {
                eprintln!("Error: {}", f.message);
                std::process::exit(f.code);
            }
        }
        Command::Version => {
            println!("etcdutl version: {}", api::ETCD_VERSION);
            println!("API version: {API_VERSION}");
        }
    }
}

/// Exits on a command line clap refused: a missing flag in cobra's words
/// (`Error: required flag(s) "data-dir" not set`, exit code 1), anything
/// else (help included) as clap says it.
fn refuse(e: clap::Error) -> ! {
    use clap::error::{ContextKind, ContextValue, ErrorKind};
    if e.kind() == ErrorKind::MissingRequiredArgument {
        if let Some(ContextValue::Strings(missing)) = e.get(ContextKind::InvalidArg) {
            let flags: Vec<String> = missing
                .iter()
                .map(|m| {
                    let name = m.trim_start_matches('-');
                    format!("{:?}", name.split_whitespace().next().unwrap_or(name))
                })
                .collect();
            eprintln!("Error: required flag(s) {} not set", flags.join(", "));
            std::process::exit(exit::ERROR);
        }
    }
    e.exit()
}

/// Defragments the backend of `data_dir`, waiting for a member that has it
/// open to close it. Errors, in Go's words where etcd has them: a missing
/// file as `open PATH: no such file or directory`, else the backend's.
fn defrag(data_dir: &Path) -> Result<(), String> {
    let path = storage::backend::path_in(data_dir);
    let started = Instant::now();
    let mut said = false;
    let backend = loop {
        match Backend::open_existing(&path) {
            Ok(b) => break b,
            Err(BackendError::InUse) => {
                if !said && started.elapsed() >= Duration::from_secs(1) {
                    eprintln!(
                        "waiting for etcd to close and release its lock on {:?}. \
                         To defrag a running etcd instance, omit --data-dir.",
                        path.display().to_string()
                    );
                    said = true;
                }
                std::thread::sleep(Duration::from_millis(100));
            }
            Err(BackendError::Io(e)) if e.kind() == std::io::ErrorKind::NotFound => {
                return Err(format!(
                    "open {}: no such file or directory",
                    path.display()
                ));
            }
            Err(e) => return Err(e.to_string()),
        }
    };
    backend.defragment().map(|_| ()).map_err(|e| e.to_string())
}

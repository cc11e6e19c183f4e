//! `alarm list|disarm`, `defrag`, `snapshot save` and `version`.

use std::io::Write;

use api::etcdserverpb::alarm_request::AlarmAction;
use api::etcdserverpb::{AlarmRequest, DefragmentRequest, SnapshotRequest};
use clap::{ArgAction, Args, Subcommand};

use super::cluster::cluster_endpoints;
use crate::error::{CtlError, EXIT_BAD_ARGS, EXIT_ERROR, EXIT_IO};
use crate::global::GlobalFlags;

/// The etcd API version this etcdctl speaks.
const API_VERSION: &str = "3.5";
/// The etcd version this etcdctl stands in for.
const ETCDCTL_VERSION: &str = api::ETCD_VERSION;

/// The alarm subcommands.
#[derive(Subcommand, Debug)]
pub enum AlarmCommand {
    /// Lists all alarms
    List,
    /// Disarms all alarms
    Disarm,
}

/// `alarm list` / `alarm disarm` (as clientv3 disarms: list the alarms,
/// deactivate each, print those deactivated).
pub async fn alarm(g: &GlobalFlags, cmd: &AlarmCommand) -> Result<(), CtlError> {
    let p = g.printer()?;
    let c = g.client().await?;
    let get = AlarmRequest {
        action: AlarmAction::Get as i32,
        member_id: 0,
        alarm: 0,
    };
    let mut resp = g.timed(c.maintenance().alarm(get)).await?.into_inner();
    if let AlarmCommand::Disarm = cmd {
        let mut disarmed = Vec::new();
        for a in &resp.alarms {
            let req = AlarmRequest {
                action: AlarmAction::Deactivate as i32,
                member_id: a.member_id,
                alarm: a.alarm,
            };
            let r = g.timed(c.maintenance().alarm(req)).await?.into_inner();
            disarmed.extend(r.alarms);
        }
        resp.alarms = disarmed;
    }
    p.alarm(&resp)
}

/// `defrag [--cluster]`.
#[derive(Args, Debug)]
pub struct DefragArgs {
    /// use all endpoints from the cluster member list
    #[arg(long, num_args = 0..=1, require_equals = true, default_missing_value = "true",
          default_value_t = false, value_parser = goflags::parse_bool, action = ArgAction::Set)]
    cluster: bool,
}

/// `defrag`: each endpoint in turn; failures are reported and make the
/// exit code 1.
pub async fn defrag(g: &GlobalFlags, a: &DefragArgs) -> Result<(), CtlError> {
    let endpoints = if a.cluster {
        cluster_endpoints(g).await?
    } else {
        g.endpoints.clone()
    };
    let mut failed = false;
    for ep in &endpoints {
        let res = match g.client_of(std::slice::from_ref(ep)).await {
            Ok(c) => g
                .timed(c.maintenance().defragment(DefragmentRequest {}))
                .await
                .map(|_| ()),
            Err(e) => Err(e),
        };
        match res {
            Ok(()) => println!("Finished defragmenting etcd member[{ep}]"),
            Err(e) => {
                eprintln!("Failed to defragment etcd member[{ep}] ({})", e.msg);
                failed = true;
            }
        }
    }
    if failed {
        std::process::exit(EXIT_ERROR);
    }
    Ok(())
}

/// The snapshot subcommands.
#[derive(Subcommand, Debug)]
pub enum SnapshotCommand {
    /// Stores an etcd node backend snapshot to a given file
    Save {
        /// the file
        args: Vec<String>,
    },
    /// [deprecated] Gets backend snapshot status of a given file
    Status {
        /// the file
        files: Vec<std::path::PathBuf>,
    },
    /// [deprecated] Restores an etcd member snapshot to an etcd directory
    Restore(etcdutl::snapshot::RestoreArgs),
}

/// `snapshot save <file>`: streams the member's backend into
/// `<file>.part`, then renames it. `status` and `restore` are etcdutl's,
/// after etcdctl 3.5's deprecation notice.
pub async fn snapshot(g: &GlobalFlags, cmd: &SnapshotCommand) -> Result<(), CtlError> {
    let forwarded = match cmd {
        SnapshotCommand::Save { args } => return save_command(g, args).await,
        SnapshotCommand::Status { files } => {
            eprint!("Deprecated: Use `etcdutl snapshot status` instead.\n\n");
            etcdutl::snapshot::status_command(files, &g.write_out).map(|out| print!("{out}"))
        }
        SnapshotCommand::Restore(args) => {
            eprint!("Deprecated: Use `etcdutl snapshot restore` instead.\n\n");
            etcdutl::snapshot::restore_command(args)
        }
    };
    forwarded.map_err(|f| CtlError::new(f.code, f.message))
}

/// `snapshot save <file>`.
async fn save_command(g: &GlobalFlags, args: &[String]) -> Result<(), CtlError> {
    let [path] = args else {
        return Err(CtlError::new(
            EXIT_BAD_ARGS,
            "snapshot save expects one argument",
        ));
    };
    if g.endpoints.len() != 1 {
        return Err(CtlError::new(
            EXIT_BAD_ARGS,
            format!(
                "snapshot must be requested to one selected node, not multiple [{}]",
                g.endpoints.join(" ")
            ),
        ));
    }
    let c = g.client().await?;
    let partial = format!("{path}.part");
    let saved = save(&c, &partial, path).await;
    if saved.is_err() {
        let _ = std::fs::remove_file(&partial);
    }
    saved
}

/// Streams the snapshot into `partial` (mode 0600: it holds every key),
/// checks etcd's SHA-256 trailer is there, and renames it to `path`.
async fn save(c: &client::Client, partial: &str, path: &str) -> Result<(), CtlError> {
    let io = |e: std::io::Error| CtlError::new(EXIT_IO, e.to_string());
    let mut file = {
        use std::os::unix::fs::OpenOptionsExt;
        std::fs::OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .mode(0o600)
            .open(partial)
            .map_err(io)?
    };
    let mut stream = c
        .maintenance()
        .snapshot(SnapshotRequest {})
        .await
        .map_err(|e| CtlError::new(EXIT_ERROR, crate::error::status_text(&e)))?
        .into_inner();
    let mut size = 0u64;
    while let Some(chunk) = stream
        .message()
        .await
        .map_err(|e| CtlError::new(EXIT_ERROR, crate::error::status_text(&e)))?
    {
        file.write_all(&chunk.blob).map_err(io)?;
        size += chunk.blob.len() as u64;
    }
    // The member appends the SHA-256 of its backend file (whose size is a
    // multiple of 512 bytes); `snapshot restore` checks it.
    if size % 512 != 32 {
        return Err(CtlError::new(
            EXIT_ERROR,
            format!("sha256 checksum not found [bytes: {size}]"),
        ));
    }
    file.sync_all().map_err(io)?;
    std::fs::rename(partial, path).map_err(io)?;
    println!("Snapshot saved at {path}");
    Ok(())
}

/// `version`.
pub fn version() {
    println!("etcdctl version: {ETCDCTL_VERSION}");
    println!("API version: {API_VERSION}");
}

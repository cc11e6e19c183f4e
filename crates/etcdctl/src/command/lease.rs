//! `lease grant|revoke|timetolive|list|keep-alive`.

use std::time::Duration;

use api::etcdserverpb::{
    LeaseGrantRequest, LeaseKeepAliveRequest, LeaseLeasesRequest, LeaseRevokeRequest,
    LeaseTimeToLiveRequest,
};
use clap::{ArgAction, Subcommand};

use super::{parse_lease_id, strconv_error};
use crate::error::{CtlError, EXIT_BAD_CONNECTION, EXIT_ERROR};
use crate::global::GlobalFlags;
use crate::printer::Format;

/// The lease subcommands.
#[derive(Subcommand, Debug)]
pub enum LeaseCommand {
    /// Creates leases
    Grant {
        /// TTL in seconds
        args: Vec<String>,
    },
    /// Revokes leases
    Revoke {
        /// lease ID (hex)
        args: Vec<String>,
    },
    /// Get lease information
    Timetolive {
        /// Get keys attached to this lease
        #[arg(long, num_args = 0..=1, require_equals = true, default_missing_value = "true",
              default_value_t = false, value_parser = goflags::parse_bool, action = ArgAction::Set)]
        keys: bool,
        /// lease ID (hex)
        args: Vec<String>,
    },
    /// List all active leases
    List,
    /// Keeps leases alive (renew)
    KeepAlive {
        /// Resets the keep-alive time to its original value and exits immediately
        #[arg(long, num_args = 0..=1, require_equals = true, default_missing_value = "true",
              default_value_t = false, value_parser = goflags::parse_bool, action = ArgAction::Set)]
        once: bool,
        /// lease ID (hex)
        args: Vec<String>,
    },
}

fn lease_arg(args: &[String], missing: &str) -> Result<i64, CtlError> {
    let [id] = args else {
        return Err(CtlError::bad_args(missing));
    };
    parse_lease_id(id).map_err(|e| {
        CtlError::bad_args(format!(
            "bad lease ID arg ({}), expecting ID in Hex",
            strconv_error("ParseInt", id, &e)
        ))
    })
}

/// Runs a lease subcommand.
pub async fn run(g: &GlobalFlags, cmd: &LeaseCommand) -> Result<(), CtlError> {
    let p = g.printer()?;
    match cmd {
        LeaseCommand::Grant { args } => {
            let [ttl] = args.as_slice() else {
                return Err(CtlError::bad_args("lease grant command needs TTL argument"));
            };
            let ttl: i64 = ttl.parse().map_err(|e| {
                CtlError::bad_args(format!("bad TTL ({})", strconv_error("ParseInt", ttl, &e)))
            })?;
            let c = g.client().await?;
            let resp = g
                .timed(c.lease().lease_grant(LeaseGrantRequest { ttl, id: 0 }))
                .await
                .map_err(|e| {
                    CtlError::new(EXIT_ERROR, format!("failed to grant lease ({})", e.msg))
                })?
                .into_inner();
            p.grant(&resp)
        }
        LeaseCommand::Revoke { args } => {
            let id = lease_arg(args, "lease revoke command needs 1 argument")?;
            let c = g.client().await?;
            let resp = g
                .timed(c.lease().lease_revoke(LeaseRevokeRequest { id }))
                .await
                .map_err(|e| {
                    CtlError::new(EXIT_ERROR, format!("failed to revoke lease ({})", e.msg))
                })?
                .into_inner();
            p.revoke(id, &resp)
        }
        LeaseCommand::Timetolive { keys, args } => {
            let id = lease_arg(args, "lease timetolive command needs lease ID as argument")?;
            let c = g.client().await?;
            let req = LeaseTimeToLiveRequest { id, keys: *keys };
            let resp = g
                .timed(c.lease().lease_time_to_live(req))
                .await
                .map_err(|e| CtlError::new(EXIT_BAD_CONNECTION, e.msg))?
                .into_inner();
            p.time_to_live(&resp, *keys)
        }
        LeaseCommand::List => {
            let c = g.client().await?;
            let resp = g
                .timed(c.lease().lease_leases(LeaseLeasesRequest {}))
                .await
                .map_err(|e| CtlError::new(EXIT_BAD_CONNECTION, e.msg))?
                .into_inner();
            p.leases(&resp)
        }
        LeaseCommand::KeepAlive { once, args } => {
            let id = lease_arg(args, "lease keep-alive command needs lease ID as argument")?;
            keep_alive(g, &p, id, *once).await
        }
    }
}

/// Renews lease `id` once, or every third of its TTL until it is gone.
async fn keep_alive(
    g: &GlobalFlags,
    p: &crate::printer::Printer,
    id: i64,
    once: bool,
) -> Result<(), CtlError> {
    let c = g.client().await?;
    let (tx, rx) = tokio::sync::mpsc::channel(4);
    let mut replies = c
        .lease()
        .lease_keep_alive(tokio_stream::wrappers::ReceiverStream::new(rx))
        .await
        .map_err(|e| CtlError::new(EXIT_BAD_CONNECTION, crate::error::status_text(&e)))?
        .into_inner();
    loop {
        let _ = tx.send(LeaseKeepAliveRequest { id }).await;
        let reply = replies
            .message()
            .await
            .map_err(|e| CtlError::new(EXIT_BAD_CONNECTION, crate::error::status_text(&e)))?;
        let Some(r) = reply.filter(|r| r.ttl > 0) else {
            if once {
                return Err(CtlError::new(
                    EXIT_BAD_CONNECTION,
                    "etcdserver: requested lease not found",
                ));
            }
            if p.format == Format::Simple {
                println!("lease {id:016x} expired or revoked.");
            }
            return Ok(());
        };
        p.keep_alive(&r)?;
        if once {
            return Ok(());
        }
        tokio::time::sleep(Duration::from_millis((r.ttl as u64 * 1000 / 3).max(500))).await;
    }
}

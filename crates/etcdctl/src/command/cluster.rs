//! `member list|add|remove|update|promote`, `endpoint
//! health|status|hashkv` (with `--cluster`) and `move-leader`.

use std::time::Instant;

use api::etcdserverpb::alarm_request::AlarmAction;
use api::etcdserverpb::{
    AlarmRequest, AlarmType, HashKvRequest, MemberAddRequest, MemberListRequest,
    MemberPromoteRequest, MemberRemoveRequest, MemberUpdateRequest, MoveLeaderRequest,
    RangeRequest, StatusRequest,
};
use clap::{ArgAction, Args, Subcommand};

use super::strconv_error;
use crate::error::{CtlError, EXIT_BAD_ARGS, EXIT_ERROR};
use crate::global::GlobalFlags;
use crate::printer::{id_hex, members_response, EndpointHash, EndpointStatus, Health};

/// The member subcommands.
#[derive(Subcommand, Debug)]
pub enum MemberCommand {
    /// Lists all members in the cluster
    List,
    /// Adds a member into the cluster
    Add {
        /// comma separated peer URLs for the new member.
        #[arg(long, default_value = "")]
        peer_urls: String,
        /// indicates if the new member is raft learner
        #[arg(long, num_args = 0..=1, require_equals = true, default_missing_value = "true",
              default_value_t = false, value_parser = goflags::parse_bool, action = ArgAction::Set)]
        learner: bool,
        /// the member's name
        args: Vec<String>,
    },
    /// Removes a member from the cluster
    Remove {
        /// member ID (hex)
        args: Vec<String>,
    },
    /// Updates a member in the cluster
    Update {
        /// comma separated peer URLs for the updated member.
        #[arg(long, default_value = "")]
        peer_urls: String,
        /// member ID (hex)
        args: Vec<String>,
    },
    /// Promotes a non-voting member in the cluster
    Promote {
        /// member ID (hex)
        args: Vec<String>,
    },
}

fn member_id(args: &[String]) -> Result<u64, CtlError> {
    let [id] = args else {
        return Err(CtlError::bad_args("member ID is not provided"));
    };
    u64::from_str_radix(id, 16).map_err(|e| {
        CtlError::bad_args(format!(
            "bad member ID arg ({}), expecting ID in Hex",
            strconv_error("ParseUint", id, &e)
        ))
    })
}

fn peer_urls(s: &str) -> Result<Vec<String>, CtlError> {
    if s.is_empty() {
        return Err(CtlError::bad_args("member peer urls not provided"));
    }
    Ok(s.split(',').map(String::from).collect())
}

/// The cluster id a response header names (0 without a header).
fn cluster_of(h: &Option<api::etcdserverpb::ResponseHeader>) -> u64 {
    h.as_ref().map_or(0, |h| h.cluster_id)
}

/// etcdctl's line for a removed, updated or promoted member:
/// `Member <id> <what> cluster <cluster id>`.
fn member_changed(
    id: u64,
    what: &str,
    header: &Option<api::etcdserverpb::ResponseHeader>,
) -> String {
    format!(
        "Member {:>16} {what} cluster {:>16}\n",
        id_hex(id),
        id_hex(cluster_of(header))
    )
}

/// Runs a member subcommand.
pub async fn member(g: &GlobalFlags, cmd: &MemberCommand) -> Result<(), CtlError> {
    let p = g.printer()?;
    match cmd {
        MemberCommand::List => {
            let c = g.client().await?;
            let resp = g
                .timed(
                    c.cluster()
                        .member_list(MemberListRequest { linearizable: true }),
                )
                .await?
                .into_inner();
            p.member_list(&resp)
        }
        MemberCommand::Add {
            peer_urls: urls,
            learner,
            args,
        } => {
            let Some(name) = args.first() else {
                return Err(CtlError::bad_args("member name not provided"));
            };
            if args.len() > 1 {
                return Err(CtlError::bad_args("too many arguments"));
            }
            let req = MemberAddRequest {
                peer_ur_ls: peer_urls(urls)?,
                is_learner: *learner,
            };
            let c = g.client().await?;
            let resp = g.timed(c.cluster().member_add(req)).await?.into_inner();
            p.member_add(&resp, || member_added_lines(name, &resp))
        }
        MemberCommand::Remove { args } => {
            let id = member_id(args)?;
            let c = g.client().await?;
            let resp = g
                .timed(c.cluster().member_remove(MemberRemoveRequest { id }))
                .await?
                .into_inner();
            p.member_changed(
                &resp,
                || member_changed(id, "removed from", &resp.header),
                || members_response(&resp.header, &resp.members),
            )
        }
        MemberCommand::Update {
            peer_urls: urls,
            args,
        } => {
            let id = member_id(args)?;
            let req = MemberUpdateRequest {
                id,
                peer_ur_ls: peer_urls(urls)?,
            };
            let c = g.client().await?;
            let resp = g.timed(c.cluster().member_update(req)).await?.into_inner();
            p.member_changed(
                &resp,
                || member_changed(id, "updated in", &resp.header),
                || members_response(&resp.header, &resp.members),
            )
        }
        MemberCommand::Promote { args } => {
            let id = member_id(args)?;
            let c = g.client().await?;
            let resp = g
                .timed(c.cluster().member_promote(MemberPromoteRequest { id }))
                .await?
                .into_inner();
            p.member_changed(
                &resp,
                || member_changed(id, "promoted in", &resp.header),
                || members_response(&resp.header, &resp.members),
            )
        }
    }
}

/// `member add`'s simple output: the line, then the `ETCD_*` block to
/// start the new member with.
fn member_added_lines(name: &str, resp: &api::etcdserverpb::MemberAddResponse) -> String {
    let m = resp.member.clone().unwrap_or_default();
    let role = if m.is_learner { " as learner " } else { " " };
    let mut text = format!(
        "Member {:>16} added{role}to cluster {:>16}\n\n",
        id_hex(m.id),
        id_hex(cluster_of(&resp.header))
    );
    let mut initial: Vec<String> = Vec::new();
    for member in &resp.members {
        let mname = if member.id == m.id {
            name
        } else {
            member.name.as_str()
        };
        if mname.is_empty() {
            continue;
        }
        for u in &member.peer_ur_ls {
            initial.push(format!("{mname}={u}"));
        }
    }
    text += &format!("ETCD_NAME={name:?}\n");
    text += &format!("ETCD_INITIAL_CLUSTER={:?}\n", initial.join(","));
    text += &format!(
        "ETCD_INITIAL_ADVERTISE_PEER_URLS={:?}\n",
        m.peer_ur_ls.join(",")
    );
    text += "ETCD_INITIAL_CLUSTER_STATE=\"existing\"\n";
    text
}

/// The endpoint subcommands.
#[derive(Subcommand, Debug)]
pub enum EndpointCommand {
    /// Checks the healthiness of endpoints specified in `--endpoints` flag
    Health(ClusterFlag),
    /// Prints out the status of endpoints specified in `--endpoints` flag
    Status(ClusterFlag),
    /// Prints the KV history hash for each endpoint in --endpoints
    Hashkv {
        #[command(flatten)]
        cluster: ClusterFlag,
        /// maximum revision to hash (default: all revisions)
        #[arg(long, default_value_t = 0)]
        rev: i64,
    },
}

/// `--cluster`: use every member's client URLs instead of `--endpoints`.
#[derive(Args, Debug)]
pub struct ClusterFlag {
    /// use all endpoints from the cluster member list
    #[arg(long, num_args = 0..=1, require_equals = true, default_missing_value = "true",
          default_value_t = false, value_parser = goflags::parse_bool, action = ArgAction::Set)]
    cluster: bool,
}

/// Every member's client URLs, in member order.
pub async fn cluster_endpoints(g: &GlobalFlags) -> Result<Vec<String>, CtlError> {
    let fetch = async {
        let c = g.client().await?;
        g.timed(c.cluster().member_list(MemberListRequest {
            linearizable: false,
        }))
        .await
    };
    let resp = fetch.await.map_err(|e| {
        CtlError::new(
            EXIT_ERROR,
            format!(
                "failed to fetch endpoints from etcd cluster member list: {}",
                e.msg
            ),
        )
    })?;
    let mut out: Vec<String> = Vec::new();
    for m in resp.into_inner().members {
        for u in m.client_ur_ls {
            if !out.contains(&u) {
                out.push(u);
            }
        }
    }
    Ok(out)
}

async fn endpoints(g: &GlobalFlags, f: &ClusterFlag) -> Result<Vec<String>, CtlError> {
    if f.cluster {
        cluster_endpoints(g).await
    } else {
        Ok(g.endpoints.clone())
    }
}

/// Go's `time.Duration` text (`1.5ms`, `812.3µs`, `2.1s`).
fn go_duration(d: std::time::Duration) -> String {
    let ns = d.as_nanos();
    let trim = |v: f64, unit: &str| {
        let s = format!("{v:.9}");
        let s = s.trim_end_matches('0').trim_end_matches('.');
        format!("{s}{unit}")
    };
    match ns {
        0 => "0s".to_string(),
        n if n < 1_000 => format!("{n}ns"),
        n if n < 1_000_000 => trim(n as f64 / 1e3, "µs"),
        n if n < 1_000_000_000 => trim(n as f64 / 1e6, "ms"),
        n => trim(n as f64 / 1e9, "s"),
    }
}

/// etcdctl 3.5's second health rule: once the read passed, any active
/// alarm makes the endpoint unhealthy (`Active Alarm(s): NOSPACE `, a
/// name and a space per alarm), and so does a failed alarm list.
async fn alarm_check(g: &GlobalFlags, c: &client::Client) -> String {
    let req = AlarmRequest {
        action: AlarmAction::Get as i32,
        member_id: 0,
        alarm: AlarmType::None as i32,
    };
    let alarms = match g.timed(c.maintenance().alarm(req)).await {
        Ok(resp) => resp.into_inner().alarms,
        Err(_) => return "Unable to fetch the alarm list".to_string(),
    };
    if alarms.is_empty() {
        return String::new();
    }
    alarms.iter().fold("Active Alarm(s): ".to_string(), |s, a| {
        let name = match AlarmType::try_from(a.alarm) {
            Ok(AlarmType::Nospace) => "NOSPACE",
            Ok(AlarmType::Corrupt) => "CORRUPT",
            _ => "UNKNOWN",
        };
        s + name + " "
    })
}

/// Runs an endpoint subcommand.
pub async fn endpoint(g: &GlobalFlags, cmd: &EndpointCommand) -> Result<(), CtlError> {
    let p = g.printer()?;
    match cmd {
        EndpointCommand::Health(f) => {
            let eps = endpoints(g, f).await?;
            let checks = eps.iter().map(|ep| async move {
                let start = Instant::now();
                let client = g.client_of(std::slice::from_ref(ep)).await;
                let res = match &client {
                    Ok(c) => {
                        let req = RangeRequest {
                            key: b"health".to_vec(),
                            ..Default::default()
                        };
                        g.timed(c.kv().range(req)).await.map(drop)
                    }
                    Err(e) => Err(CtlError::new(e.code, e.msg.clone())),
                };
                let took = go_duration(start.elapsed());
                let mut error = match res {
                    Ok(()) => String::new(),
                    Err(e) if e.msg == "etcdserver: permission denied" => String::new(),
                    Err(e) => e.msg,
                };
                if let (true, Ok(c)) = (error.is_empty(), &client) {
                    error = alarm_check(g, c).await;
                }
                Health {
                    endpoint: ep.clone(),
                    health: error.is_empty(),
                    took,
                    error,
                }
            });
            let hs = futures::future::join_all(checks).await;
            p.endpoint_health(&hs)?;
            if hs.iter().any(|h| !h.health) {
                return Err(CtlError::new(EXIT_ERROR, "unhealthy cluster"));
            }
            Ok(())
        }
        EndpointCommand::Status(f) => {
            let mut list = Vec::new();
            let mut failed = false;
            for ep in endpoints(g, f).await? {
                let res = async {
                    let c = g.client_of(std::slice::from_ref(&ep)).await?;
                    g.timed(c.maintenance().status(StatusRequest {})).await
                }
                .await;
                match res {
                    Ok(r) => list.push(EndpointStatus {
                        endpoint: ep,
                        status: r.into_inner(),
                    }),
                    Err(e) => {
                        eprintln!("Failed to get the status of endpoint {ep} ({})", e.msg);
                        failed = true;
                    }
                }
            }
            p.endpoint_status(&list)?;
            if failed {
                std::process::exit(EXIT_ERROR);
            }
            Ok(())
        }
        EndpointCommand::Hashkv { cluster, rev } => {
            let mut list = Vec::new();
            let mut last_err = None;
            for ep in endpoints(g, cluster).await? {
                let res = async {
                    let c = g.client_of(std::slice::from_ref(&ep)).await?;
                    g.timed(c.maintenance().hash_kv(HashKvRequest { revision: *rev }))
                        .await
                }
                .await;
                match res {
                    Ok(r) => list.push(EndpointHash {
                        endpoint: ep,
                        hash: r.into_inner(),
                    }),
                    Err(e) => {
                        eprintln!("Failed to get the hash of endpoint {ep} ({})", e.msg);
                        last_err = Some(e);
                    }
                }
            }
            p.endpoint_hashkv(&list)?;
            match last_err {
                Some(e) => Err(e),
                None => Ok(()),
            }
        }
    }
}

/// `move-leader <transferee-member-id>`.
#[derive(Args, Debug)]
pub struct MoveLeaderArgs {
    /// the transferee's member id (hex)
    args: Vec<String>,
}

/// `move-leader`: finds the leader among the endpoints, then asks it.
pub async fn move_leader(g: &GlobalFlags, a: &MoveLeaderArgs) -> Result<(), CtlError> {
    let [id] = a.args.as_slice() else {
        return Err(CtlError::bad_args("move-leader command needs 1 argument"));
    };
    let target = u64::from_str_radix(id, 16)
        .map_err(|e| CtlError::bad_args(strconv_error("ParseUint", id, &e)))?;
    let p = g.printer()?;
    for ep in &g.endpoints {
        let c = g.client_of(std::slice::from_ref(ep)).await?;
        let st = g
            .timed(c.maintenance().status(StatusRequest {}))
            .await?
            .into_inner();
        let me = st.header.as_ref().map_or(0, |h| h.member_id);
        if me != st.leader {
            continue;
        }
        let resp = g
            .timed(
                c.maintenance()
                    .move_leader(MoveLeaderRequest { target_id: target }),
            )
            .await?
            .into_inner();
        return p.move_leader(st.leader, target, &resp);
    }
    Err(CtlError::new(
        EXIT_BAD_ARGS,
        format!("no leader endpoint given at [{}]", g.endpoints.join(" ")),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn durations_print_as_go_does() {
        assert_eq!(go_duration(Duration::from_nanos(1_340_840)), "1.34084ms");
        assert_eq!(go_duration(Duration::from_nanos(934_729)), "934.729µs");
        assert_eq!(go_duration(Duration::from_millis(2000)), "2s");
        assert_eq!(go_duration(Duration::from_nanos(999)), "999ns");
    }
}

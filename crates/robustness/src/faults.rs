//! The faults of a run, chosen from its seed and injected one at a time on
//! a member that is the leader half of the time, each held 0.5 to 3 s:
//! SIGKILL and restart; a second SIGKILL while the restarted member
//! catches up (the cluster snapshots often, so that is while a snapshot
//! is sent to it); SIGSTOP past the election timeout, then SIGCONT; the
//! member cut off, or unheard (its links out cut); its links slowed or
//! made lossy; leadership moved to another member; its disk full (a
//! `failpoints` build of the server fails its writes with ENOSPC while
//! the marker file of `storage::failpoint` exists, and stops at the first,
//! as etcd does; the member is restarted once the disk has room again).
//! The next fault comes 0.5 to 2 s after the member is healthy again.

use std::time::{Duration, Instant};

use api::etcdserverpb::maintenance_client::MaintenanceClient;
use api::etcdserverpb::MoveLeaderRequest;
use etcd_rs_tests::TestCluster;
use rand::rngs::StdRng;
use rand::Rng;

use crate::proxy::Links;

/// A fault, as the timeline reports it.
pub enum Fault {
    /// SIGKILL of member `0`, restarted after `1`.
    Kill(usize, Duration),
    /// SIGKILL of member `0`, restarted after `1`, killed again `2` after
    /// that (catching up), and restarted.
    KillCatchingUp(usize, Duration, Duration),
    /// SIGSTOP of member `0` for `1`, then SIGCONT.
    Pause(usize, Duration),
    /// Every link to and from member `0` cut for `1`.
    Isolate(usize, Duration),
    /// Every link from member `0` cut for `1` (it hears, nobody hears it).
    Mute(usize, Duration),
    /// Every link to and from member `0` delayed by `1` for `2`.
    Slow(usize, Duration, Duration),
    /// Every link to and from member `0` losing connections for `1`.
    Lossy(usize, Duration),
    /// Leadership moved from member `0` to member `1`; whether it was
    /// acknowledged.
    Transfer(usize, usize, bool),
    /// The disk of member `0` full for `1`; whether the member stopped.
    DiskFull(usize, Duration, bool),
}

impl std::fmt::Display for Fault {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Fault::Kill(m, hold) => write!(f, "SIGKILL m{m}, restarted after {hold:?}"),
            Fault::KillCatchingUp(m, hold, again) => write!(
                f,
                "SIGKILL m{m}, restarted after {hold:?}, killed again {again:?} into catching up"
            ),
            Fault::Pause(m, hold) => write!(f, "SIGSTOP m{m} for {hold:?}"),
            Fault::Isolate(m, hold) => write!(f, "m{m} cut off for {hold:?}"),
            Fault::Mute(m, hold) => write!(f, "links from m{m} cut for {hold:?}"),
            Fault::Slow(m, delay, hold) => {
                write!(f, "links of m{m} slowed by {delay:?} for {hold:?}")
            }
            Fault::Lossy(m, hold) => write!(f, "links of m{m} lossy for {hold:?}"),
            Fault::Transfer(from, to, ok) => {
                write!(
                    f,
                    "leadership moved from m{from} to m{to} (acknowledged: {ok})"
                )
            }
            Fault::DiskFull(m, hold, stopped) => {
                write!(f, "disk of m{m} full for {hold:?} (it stopped: {stopped})")
            }
        }
    }
}

impl Fault {
    /// What kind of fault it is, for counting.
    pub fn kind(&self) -> &'static str {
        match self {
            Fault::Kill(..) => "kill",
            Fault::KillCatchingUp(..) => "kill while catching up",
            Fault::Pause(..) => "pause",
            Fault::Isolate(..) => "cut off",
            Fault::Mute(..) => "muted",
            Fault::Slow(..) => "slow links",
            Fault::Lossy(..) => "lossy links",
            Fault::Transfer(..) => "leader transfer",
            Fault::DiskFull(..) => "disk full",
        }
    }
}

/// Sends `sig` (as `kill` spells it, e.g. `-STOP`) to `pid`; whether
/// it was delivered.
pub fn signal(pid: u32, sig: &str) -> bool {
    std::process::Command::new("kill")
        .args([sig, &pid.to_string()])
        .status()
        .is_ok_and(|s| s.success())
}

/// The index of the member that leads, if the others agree on one; with
/// every member's id.
fn leader(c: &TestCluster) -> (Option<usize>, Vec<Option<u64>>) {
    let statuses: Vec<_> = (0..3).map(|i| c.status(i)).collect();
    let ids = statuses.iter().map(|s| s.map(|s| s.0)).collect();
    let Some(lead) = statuses.iter().flatten().map(|s| s.1).find(|&l| l != 0) else {
        return (None, ids);
    };
    let index = statuses
        .iter()
        .position(|s| s.is_some_and(|(id, _, _)| id == lead));
    (index, ids)
}

fn each_link_of(m: usize, mut rule: impl FnMut(usize, usize)) {
    for other in (0..3).filter(|&o| o != m) {
        rule(m, other);
        rule(other, m);
    }
}

fn restart(c: &mut TestCluster, links: &Links, m: usize) {
    c.member_mut(m).start_again();
    links.set_pid(m, c.member(m).pid());
}

/// Asks the leader `from` to hand leadership to `to`; whether it did.
async fn transfer(c: &TestCluster, from: usize, to_id: u64) -> bool {
    let Ok(mut m) = MaintenanceClient::connect(c.member(from).endpoint()).await else {
        return false;
    };
    let req = MoveLeaderRequest { target_id: to_id };
    matches!(
        tokio::time::timeout(Duration::from_secs(5), m.move_leader(req)).await,
        Ok(Ok(_))
    )
}

/// Injects faults one at a time until `until`; the timeline.
pub async fn inject(
    c: &mut TestCluster,
    links: &Links,
    rng: &mut StdRng,
    start: Instant,
    until: Instant,
) -> Vec<(Duration, Fault)> {
    let mut timeline = Vec::new();
    tokio::time::sleep(Duration::from_millis(rng.gen_range(500..1500))).await;
    while Instant::now() < until {
        let (lead, ids) = leader(c);
        let target = match lead {
            Some(l) if rng.gen_bool(0.5) => l,
            _ => rng.gen_range(0..3),
        };
        let hold = Duration::from_millis(rng.gen_range(500..3000));
        let at = start.elapsed();
        let fault = match rng.gen_range(0..22) {
            0..=5 => {
                c.member_mut(target).kill9();
                tokio::time::sleep(hold).await;
                restart(c, links, target);
                Fault::Kill(target, hold)
            }
            6..=7 => {
                c.member_mut(target).kill9();
                tokio::time::sleep(hold).await;
                restart(c, links, target);
                let again = Duration::from_millis(rng.gen_range(100..800));
                tokio::time::sleep(again).await;
                c.member_mut(target).kill9();
                restart(c, links, target);
                Fault::KillCatchingUp(target, hold, again)
            }
            8..=9 => {
                let pid = c.member(target).pid().expect("a running member");
                let _ = signal(pid, "-STOP");
                tokio::time::sleep(hold).await;
                let _ = signal(pid, "-CONT");
                Fault::Pause(target, hold)
            }
            10..=12 => {
                each_link_of(target, |f, t| links.cut(f, t));
                tokio::time::sleep(hold).await;
                links.heal();
                Fault::Isolate(target, hold)
            }
            13 => {
                for other in (0..3).filter(|&o| o != target) {
                    links.cut(target, other);
                }
                tokio::time::sleep(hold).await;
                links.heal();
                Fault::Mute(target, hold)
            }
            14..=15 => {
                let delay = Duration::from_millis(rng.gen_range(50..400));
                each_link_of(target, |f, t| links.slow(f, t, delay));
                tokio::time::sleep(hold).await;
                links.heal();
                Fault::Slow(target, delay, hold)
            }
            16..=17 => {
                each_link_of(target, |f, t| links.lossy(f, t));
                tokio::time::sleep(hold).await;
                links.heal();
                Fault::Lossy(target, hold)
            }
            20..=21 => {
                let marker = c
                    .member(target)
                    .data_dir()
                    .join("member")
                    .join(storage::failpoint::DISK_FULL);
                let _ = std::fs::write(&marker, b"");
                tokio::time::sleep(hold).await;
                let _ = std::fs::remove_file(&marker);
                let stopped = c.member_mut(target).wait_exit(Duration::ZERO).is_some();
                if stopped {
                    restart(c, links, target);
                }
                Fault::DiskFull(target, hold, stopped)
            }
            _ => {
                let from = lead.unwrap_or(target);
                let to = (from + rng.gen_range(1..3)) % 3;
                let ok = match ids[to] {
                    Some(id) => transfer(c, from, id).await,
                    None => false,
                };
                Fault::Transfer(from, to, ok)
            }
        };
        timeline.push((at, fault));
        let _ = c.member_mut(target).wait_healthy().await;
        tokio::time::sleep(Duration::from_millis(rng.gen_range(500..2000))).await;
    }
    timeline
}

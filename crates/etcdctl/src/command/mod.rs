//! The commands: clap definitions (etcdctl's names, flags and defaults) and
//! what each does. One module per group: `kv` (put, get, del, compaction),
//! `txn`, `watch`, `lease`, `cluster` (member, endpoint, move-leader),
//! `maintenance` (alarm, defrag, snapshot, version), `check` (perf) and
//! `concurrency` (lock, elect).

mod auth;
mod check;
mod cluster;
mod concurrency;
mod kv;
mod lease;
mod maintenance;
mod txn;
mod watch;

use clap::Subcommand;

use crate::error::CtlError;
use crate::global::GlobalFlags;

/// Every command.
#[derive(Subcommand, Debug)]
pub enum Command {
    /// Puts the given key into the store
    Put(kv::PutArgs),
    /// Gets the key or a range of keys
    Get(kv::GetArgs),
    /// Removes the specified key or range of keys [key, range_end)
    Del(kv::DelArgs),
    /// Txn processes all the requests in one transaction
    Txn(txn::TxnArgs),
    /// Compacts the event history in etcd
    Compaction(kv::CompactionArgs),
    /// Watches events stream on keys or prefixes
    Watch(watch::WatchArgs),
    /// Lease related commands
    #[command(subcommand)]
    Lease(lease::LeaseCommand),
    /// Membership related commands
    #[command(subcommand)]
    Member(cluster::MemberCommand),
    /// Endpoint related commands
    #[command(subcommand)]
    Endpoint(cluster::EndpointCommand),
    /// Transfers leadership to another etcd cluster member.
    MoveLeader(cluster::MoveLeaderArgs),
    /// Alarm related commands
    #[command(subcommand)]
    Alarm(maintenance::AlarmCommand),
    /// Defragments the storage of the etcd members with given endpoints
    Defrag(maintenance::DefragArgs),
    /// Manages etcd node snapshots
    #[command(subcommand)]
    Snapshot(maintenance::SnapshotCommand),
    /// User related commands
    #[command(subcommand)]
    User(auth::UserCommand),
    /// Role related commands
    #[command(subcommand)]
    Role(auth::RoleCommand),
    /// Enable or disable authentication
    #[command(subcommand)]
    Auth(auth::AuthCommand),
    /// Acquires a named lock
    Lock(concurrency::LockArgs),
    /// Observes and participates in leader election
    Elect(concurrency::ElectArgs),
    /// Prints the version of etcdctl
    Version,
    /// commands for checking properties of the etcd cluster
    #[command(subcommand)]
    Check(check::CheckCommand),
}

impl Command {
    /// Runs the command with the global flags `g`.
    pub async fn run(&self, g: &GlobalFlags) -> Result<(), CtlError> {
        match self {
            Command::Put(a) => kv::put(g, a).await,
            Command::Get(a) => kv::get(g, a).await,
            Command::Del(a) => kv::del(g, a).await,
            Command::Txn(a) => txn::run(g, a).await,
            Command::Compaction(a) => kv::compaction(g, a).await,
            Command::Watch(a) => watch::run(g, a).await,
            Command::Lease(c) => lease::run(g, c).await,
            Command::User(c) => auth::user(g, c).await,
            Command::Role(c) => auth::role(g, c).await,
            Command::Auth(c) => auth::auth(g, c).await,
            Command::Member(c) => cluster::member(g, c).await,
            Command::Endpoint(c) => cluster::endpoint(g, c).await,
            Command::MoveLeader(a) => cluster::move_leader(g, a).await,
            Command::Alarm(c) => maintenance::alarm(g, c).await,
            Command::Defrag(a) => maintenance::defrag(g, a).await,
            Command::Snapshot(c) => maintenance::snapshot(g, c).await,
            Command::Check(c) => check::run(g, c).await,
            Command::Lock(a) => concurrency::lock(g, a).await,
            Command::Elect(a) => concurrency::elect(g, a).await,
            Command::Version => {
                maintenance::version();
                Ok(())
            }
        }
    }
}

pub use watch::split_exec as split_watch_exec;

pub use client::prefix_end;

/// A lease id given in hex, as etcdctl parses it.
pub fn parse_lease_id(s: &str) -> Result<i64, std::num::ParseIntError> {
    i64::from_str_radix(s, 16)
}

/// Go's `strconv` error text for a number that does not parse.
pub fn strconv_error(func: &str, s: &str, e: &std::num::ParseIntError) -> String {
    use std::num::IntErrorKind;
    let why = match e.kind() {
        IntErrorKind::PosOverflow | IntErrorKind::NegOverflow => "value out of range",
        _ => "invalid syntax",
    };
    format!("strconv.{func}: parsing {s:?}: {why}")
}

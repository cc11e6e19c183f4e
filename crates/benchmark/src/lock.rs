//! `lock` (ours; etcd's benchmark has none): `--total` rounds of taking
//! and releasing a lock, by `--clients` loops contending for `--locks`
//! names, through v3lock's Lock and Unlock RPCs (`--lock-kind rpc`) or
//! clientv3's Mutex recipe on KV (`--lock-kind client`). A round's latency
//! is from the lock request to the release's answer, so with one name and
//! many clients it includes the wait for the others.

use std::sync::{Arc, Mutex};

use api::etcdserverpb::{LeaseGrantRequest, LeaseRevokeRequest};
use api::v3lockpb::{LockRequest, UnlockRequest};
use clap::Args;
use client::concurrency::Mutex as KvMutex;
use client::load;

use crate::report::render;
use crate::run::connections;
use crate::Global;

/// TTL in seconds of each client's lease; revoked at the end.
const LEASE_TTL: i64 = 600;

/// `lock` flags.
#[derive(Args, Debug)]
pub struct LockArgs {
    /// Total number of lock acquire-and-release rounds
    #[arg(long, default_value_t = 1000)]
    total: u64,
    /// How to lock: rpc (the Lock and Unlock RPCs) or client (the Mutex recipe on KV)
    #[arg(long, default_value = "rpc")]
    lock_kind: String,
    /// Number of lock names; round n takes lock n mod locks
    #[arg(long, default_value_t = 1)]
    locks: u64,
}

/// `lock`.
pub async fn lock(g: &Global, a: &LockArgs) -> Result<String, String> {
    let by_rpc = match a.lock_kind.as_str() {
        "rpc" => true,
        "client" => false,
        other => return Err(format!("unknown lock kind {other:?} (rpc or client)")),
    };
    let conns = connections(g).await?;
    let mut leases = Vec::new();
    for i in 0..g.clients.max(1) {
        let grant = LeaseGrantRequest {
            ttl: LEASE_TTL,
            id: 0,
        };
        let r = conns[i % conns.len()].lease().lease_grant(grant).await;
        leases.push(r.map_err(|e| e.message().to_string())?.into_inner().id);
    }
    // One lease per round in flight: a lease is the lock's owner, so two
    // rounds must never share one. There are as many as clients.
    let free = Arc::new(Mutex::new(leases.clone()));
    let locks = a.locks.max(1);
    let op = move |c: client::Client, n: u64| {
        let free = free.clone();
        let name = format!("benchmark-lock-{}", n % locks).into_bytes();
        async move {
            let lease = free
                .lock()
                .expect("lease pool")
                .pop()
                .ok_or("no free lease")?;
            let round = if by_rpc {
                rpc_round(&c, name, lease).await
            } else {
                recipe_round(&c, &name, lease).await
            };
            free.lock().expect("lease pool").push(lease);
            round
        }
    };
    let (results, took) = load::run(&conns, g.clients, a.total, 0, op).await;
    for (i, id) in leases.into_iter().enumerate() {
        let _ = conns[i % conns.len()]
            .lease()
            .lease_revoke(LeaseRevokeRequest { id })
            .await;
    }
    Ok(render(results, took, g.precise))
}

/// Lock then Unlock.
async fn rpc_round(c: &client::Client, name: Vec<u8>, lease: i64) -> Result<(), String> {
    let text = |e: tonic::Status| e.message().to_string();
    let held = c
        .lock()
        .lock(LockRequest { name, lease })
        .await
        .map_err(text)?
        .into_inner();
    c.lock()
        .unlock(UnlockRequest { key: held.key })
        .await
        .map_err(text)?;
    Ok(())
}

/// The Mutex recipe's lock then unlock.
async fn recipe_round(c: &client::Client, name: &[u8], lease: i64) -> Result<(), String> {
    let m = KvMutex::new(c, name, lease);
    m.lock().await.map_err(|e| e.to_string())?;
    m.unlock().await.map_err(|e| e.to_string())
}

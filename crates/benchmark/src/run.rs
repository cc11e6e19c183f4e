//! The subcommands: each builds its requests and hands one closure to
//! [`drive`], which runs `--clients` loops over the connections, paces them
//! by `--rate`, and collects latencies for the report.

use std::collections::HashMap;
use std::future::Future;
use std::sync::Arc;

use api::etcdserverpb::request_op::Request as Op;
use api::etcdserverpb::{
    LeaseGrantRequest, LeaseKeepAliveRequest, PutRequest, RangeRequest, RequestOp, StatusRequest,
    TxnRequest,
};
use clap::Args;
use client::load::{self, varint_key};
use client::Client;
use rand::Rng;

use crate::report::render;
use crate::Global;

/// `put` flags.
#[derive(Args, Debug)]
pub struct PutArgs {
    /// Total number of put requests
    #[arg(long, default_value_t = 10000)]
    total: u64,
    /// Key size of put request
    #[arg(long, default_value_t = 8)]
    key_size: usize,
    /// Value size of put request
    #[arg(long, default_value_t = 8)]
    val_size: usize,
    /// Use sequential keys
    #[arg(long, default_value_t = false)]
    sequential_keys: bool,
    /// Maximum possible keys
    #[arg(long, default_value_t = 1)]
    key_space_size: u64,
    /// Maximum puts per second (0 is no limit)
    #[arg(long, default_value_t = 0)]
    rate: u64,
}

/// `range` flags and arguments.
#[derive(Args, Debug)]
pub struct RangeArgs {
    /// key [end-range]
    #[arg(required = true, num_args = 1..=2)]
    args: Vec<String>,
    /// Linearizable(l) or Serializable(s)
    #[arg(long, default_value = "l")]
    consistency: String,
    /// Total number of range requests
    #[arg(long, default_value_t = 10000)]
    total: u64,
    /// Maximum range requests per second (0 is no limit)
    #[arg(long, default_value_t = 0)]
    rate: u64,
    /// Maximum number of results
    #[arg(long, default_value_t = 0)]
    limit: i64,
    /// Only returns the count of keys
    #[arg(long, default_value_t = false)]
    count_only: bool,
}

/// `txn-put` flags.
#[derive(Args, Debug)]
pub struct TxnPutArgs {
    /// Total number of txn requests
    #[arg(long, default_value_t = 10000)]
    total: u64,
    /// Key size of txn put
    #[arg(long, default_value_t = 8)]
    key_size: usize,
    /// Value size of txn put
    #[arg(long, default_value_t = 8)]
    val_size: usize,
    /// Number of puts per txn
    #[arg(long, default_value_t = 1)]
    txn_ops: usize,
    /// Maximum possible keys
    #[arg(long, default_value_t = 1)]
    key_space_size: u64,
    /// Maximum txns per second (0 is no limit)
    #[arg(long, default_value_t = 0)]
    rate: u64,
}

/// `lease-keepalive` flags.
#[derive(Args, Debug)]
pub struct LeaseArgs {
    /// Total number of lease keepalive requests
    #[arg(long, default_value_t = 10000)]
    total: u64,
}

/// `--conns` connections, spread over the endpoints (only the leader's
/// with `--target-leader`).
pub(crate) async fn connections(g: &Global) -> Result<Vec<Client>, String> {
    let opts = g.connect_options()?;
    let mut endpoints = g.endpoints.clone();
    if g.target_leader {
        let mut leader = None;
        for ep in &g.endpoints {
            let c = Client::connect(std::slice::from_ref(ep), &opts)
                .await
                .map_err(|e| format!("{ep}: {e}"))?;
            let st = c
                .maintenance()
                .status(StatusRequest {})
                .await
                .map_err(|e| e.message().to_string())?
                .into_inner();
            if st.header.as_ref().map(|h| h.member_id) == Some(st.leader) {
                leader = Some(ep.clone());
                break;
            }
        }
        endpoints = vec![leader.ok_or("no leader among the endpoints")?];
    }
    let mut conns = Vec::new();
    for i in 0..g.conns.max(1) {
        let ep = &endpoints[i % endpoints.len()];
        let c = Client::connect(std::slice::from_ref(ep), &opts)
            .await
            .map_err(|e| format!("{ep}: {e}"))?;
        conns.push(c);
    }
    Ok(conns)
}

/// Runs request numbers `0..total` on `--clients` loops over the
/// connections, at most `rate` per second overall when non-zero; returns
/// the report.
async fn drive<F, Fut>(g: &Global, total: u64, rate: u64, op: F) -> Result<String, String>
where
    F: Fn(Client, u64) -> Fut + Clone + Send + Sync + 'static,
    Fut: Future<Output = Result<(), tonic::Status>> + Send,
{
    let conns = connections(g).await?;
    let op = move |c, n| {
        let fut = op(c, n);
        async move { fut.await.map_err(|s| s.message().to_string()) }
    };
    let (results, took) = load::run(&conns, g.clients, total, rate, op).await;
    Ok(render(results, took, g.precise))
}

/// Request `n`'s key number: `n` in turn with `sequential`, else random;
/// both below `space`.
pub(crate) fn key_number(n: u64, space: u64, sequential: bool) -> u64 {
    let space = space.max(1);
    if sequential {
        n % space
    } else {
        rand::thread_rng().gen_range(0..space)
    }
}

pub(crate) fn random_bytes(n: usize) -> Vec<u8> {
    let mut v = vec![0u8; n];
    rand::thread_rng().fill(v.as_mut_slice());
    v
}

/// `put`.
pub async fn put(g: &Global, a: &PutArgs) -> Result<String, String> {
    let value = Arc::new(random_bytes(a.val_size));
    let (size, space, seq) = (a.key_size, a.key_space_size, a.sequential_keys);
    drive(g, a.total, a.rate, move |c, n| {
        let req = PutRequest {
            key: varint_key(key_number(n, space, seq), size),
            value: value.to_vec(),
            ..Default::default()
        };
        async move {
            c.with_token_refresh(|c| {
                let req = req.clone();
                async move { c.kv().put(req).await }
            })
            .await
            .map(|_| ())
        }
    })
    .await
}

/// `range`.
pub async fn range(g: &Global, a: &RangeArgs) -> Result<String, String> {
    let serializable = match a.consistency.as_str() {
        "l" => false,
        "s" => true,
        other => return Err(format!("unknown consistency {other:?} (l or s)")),
    };
    let req = RangeRequest {
        key: a.args[0].clone().into_bytes(),
        range_end: a
            .args
            .get(1)
            .map(|e| e.clone().into_bytes())
            .unwrap_or_default(),
        limit: a.limit,
        serializable,
        count_only: a.count_only,
        ..Default::default()
    };
    drive(g, a.total, a.rate, move |c, _| {
        let req = req.clone();
        async move {
            c.with_token_refresh(|c| {
                let req = req.clone();
                async move { c.kv().range(req).await }
            })
            .await
            .map(|_| ())
        }
    })
    .await
}

/// `txn-put`.
pub async fn txn_put(g: &Global, a: &TxnPutArgs) -> Result<String, String> {
    let value = Arc::new(random_bytes(a.val_size));
    let (size, space, ops) = (a.key_size, a.key_space_size, a.txn_ops.max(1));
    drive(g, a.total, a.rate, move |c, n| {
        // Sequential keys, `ops` per request, as etcd's txn-put.
        let success = (0..ops as u64)
            .map(|j| RequestOp {
                request: Some(Op::RequestPut(PutRequest {
                    key: varint_key(key_number(n * ops as u64 + j, space, true), size),
                    value: value.to_vec(),
                    ..Default::default()
                })),
            })
            .collect();
        let req = TxnRequest {
            success,
            ..Default::default()
        };
        async move {
            c.with_token_refresh(|c| {
                let req = req.clone();
                async move { c.kv().txn(req).await }
            })
            .await
            .map(|_| ())
        }
    })
    .await
}

/// `lease-keepalive`: one lease per connection, each request one
/// keep-alive (a new stream, as clientv3's KeepAliveOnce).
pub async fn lease_keepalive(g: &Global, a: &LeaseArgs) -> Result<String, String> {
    let conns = connections(g).await?;
    let mut leases = HashMap::new();
    for c in &conns {
        let id = c
            .lease()
            .lease_grant(LeaseGrantRequest { ttl: 100, id: 0 })
            .await
            .map_err(|e| e.message().to_string())?
            .into_inner()
            .id;
        leases.insert(c.endpoint_name().to_string(), id);
    }
    let leases = Arc::new(leases);
    drive(g, a.total, 0, move |c, _| {
        let id = leases.get(c.endpoint_name()).copied().unwrap_or(0);
        async move {
            let mut replies = c
                .lease()
                .lease_keep_alive(tokio_stream::iter([LeaseKeepAliveRequest { id }]))
                .await?
                .into_inner();
            match replies.message().await? {
                Some(r) if r.ttl > 0 => Ok(()),
                _ => Err(tonic::Status::not_found(
                    "etcdserver: requested lease not found",
                )),
            }
        }
    })
    .await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn key_numbers_stay_in_the_key_space() {
        assert_eq!(key_number(7, 5, true), 2);
        assert!(key_number(7, 5, false) < 5);
    }
}

//! Leases in a fault run: a client grants short leases (2 to 4 s), puts
//! a key on each, then revokes it, keeps it alive for a while, or
//! abandons it. While it keeps one alive, no member may say the lease is
//! gone before its TTL has passed since the last renewal that was
//! acknowledged (counted from when that renewal was sent). After the run
//! the lease guarantees are checked on every member: the key of a lease
//! whose revocation was acknowledged is gone at once; the key of every
//! other lease is gone once its TTL (plus the election timeouts a new
//! leader adds) has passed.

use std::time::{Duration, Instant};

use api::etcdserverpb::kv_client::KvClient;
use api::etcdserverpb::lease_client::LeaseClient;
use api::etcdserverpb::{
    LeaseGrantRequest, LeaseKeepAliveRequest, LeaseRevokeRequest, PutRequest, RangeRequest,
};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use tonic::transport::Channel;

/// How long to wait for one answer.
const OP_TIMEOUT: Duration = Duration::from_secs(2);
/// How long after the run a lease left to expire may still hold its key:
/// its TTL, a new leader's extension (one election timeout) per leader
/// change, and the expiry loop's rounds.
const EXPIRY_GRACE: Duration = Duration::from_secs(15);

/// A lease the client made and the key it put on it.
#[derive(Debug)]
pub struct Leased {
    /// The lease id.
    pub id: i64,
    /// The key attached to it.
    pub key: Vec<u8>,
    /// Whether its revocation was acknowledged.
    pub revoked: bool,
    /// Set when the lease was gone while it was kept alive: what was seen.
    pub expired_early: Option<String>,
}

fn channel(endpoint: &str) -> Option<Channel> {
    Some(
        Channel::from_shared(endpoint.to_string())
            .ok()?
            .connect_timeout(OP_TIMEOUT)
            .timeout(OP_TIMEOUT)
            .connect_lazy(),
    )
}

async fn within<T, E>(f: impl std::future::Future<Output = Result<T, E>>) -> Option<T> {
    tokio::time::timeout(OP_TIMEOUT, f).await.ok()?.ok()
}

/// Makes leases on random members until `until`; those whose key was
/// put.
pub async fn client(endpoints: Vec<String>, seed: u64, until: Instant) -> Vec<Leased> {
    let mut rng = StdRng::seed_from_u64(seed);
    let mut made = Vec::new();
    let mut n = 0;
    while Instant::now() < until {
        n += 1;
        let Some(ch) = channel(&endpoints[rng.gen_range(0..endpoints.len())]) else {
            continue;
        };
        let (mut lease, mut kv) = (LeaseClient::new(ch.clone()), KvClient::new(ch));
        let ttl = rng.gen_range(2..=4);
        let grant_sent = Instant::now();
        let Some(granted) = within(lease.lease_grant(LeaseGrantRequest { ttl, id: 0 })).await
        else {
            tokio::time::sleep(Duration::from_millis(200)).await;
            continue;
        };
        let id = granted.into_inner().id;
        let key = format!("/rb/lease/{n}").into_bytes();
        let put = PutRequest {
            key: key.clone(),
            value: b"leased".to_vec(),
            lease: id,
            ..Default::default()
        };
        if within(kv.put(put)).await.is_none() {
            // Whether the key is there or not, the lease goes: check it too.
            made.push(Leased {
                id,
                key,
                revoked: false,
                expired_early: None,
            });
            continue;
        }
        let (mut revoked, mut expired_early) = (false, None);
        match rng.gen_range(0..3) {
            0 => {
                revoked = within(lease.lease_revoke(LeaseRevokeRequest { id }))
                    .await
                    .is_some();
            }
            1 => {
                let renewals = rng.gen_range(2..8);
                let ttl = Duration::from_secs(ttl as u64);
                expired_early =
                    keep_alive(&endpoints, &mut rng, id, ttl, grant_sent, renewals).await;
            }
            _ => {}
        }
        made.push(Leased {
            id,
            key,
            revoked,
            expired_early,
        });
        tokio::time::sleep(Duration::from_millis(rng.gen_range(100..500))).await;
    }
    made
}

/// How much sooner than its TTL after a renewal a lease may be reported
/// gone (timer granularity).
const EARLY_MARGIN: Duration = Duration::from_millis(100);

/// Renews lease `id` (TTL `ttl`, granted by a request sent at `granted`)
/// `renewals` times, every 500 ms, each time on a random member; what
/// showed that the lease was gone before its TTL had passed since the
/// last acknowledged renewal was sent, if anything did.
async fn keep_alive(
    endpoints: &[String],
    rng: &mut StdRng,
    id: i64,
    ttl: Duration,
    granted: Instant,
    renewals: usize,
) -> Option<String> {
    let mut renewed = granted;
    for _ in 0..renewals {
        tokio::time::sleep(Duration::from_millis(500)).await;
        let endpoint = &endpoints[rng.gen_range(0..endpoints.len())];
        let Some(ch) = channel(endpoint) else {
            continue;
        };
        let mut lease = LeaseClient::new(ch);
        let sent = Instant::now();
        let req = tokio_stream::iter([LeaseKeepAliveRequest { id }]);
        let Some(replies) = within(lease.lease_keep_alive(req)).await else {
            continue;
        };
        let Some(Some(reply)) = within(replies.into_inner().message()).await else {
            continue;
        };
        let answered = Instant::now();
        if reply.ttl > 0 {
            renewed = sent;
        } else if answered + EARLY_MARGIN < renewed + ttl {
            return Some(format!(
                "{endpoint} said lease {id:x} (TTL {ttl:?}) was gone {:?} after the renewal sent last",
                answered - renewed
            ));
        } else {
            // Expired: the client renewed too late (faults kept it away).
            return None;
        }
    }
    None
}

/// Whether `endpoint` holds `key`, after a linearizable read; `None` when
/// it does not answer.
async fn holds(endpoint: &str, key: &[u8]) -> Option<bool> {
    let mut kv = KvClient::new(channel(endpoint)?);
    let r = within(kv.range(RangeRequest {
        key: key.to_vec(),
        ..Default::default()
    }))
    .await?;
    Some(!r.into_inner().kvs.is_empty())
}

/// Checks the leases' keys on every one of `endpoints` of a healed
/// cluster, waiting up to [`EXPIRY_GRACE`] for leases left to expire.
pub async fn check(endpoints: &[String], leases: &[Leased]) -> Result<(), String> {
    if let Some(l) = leases.iter().find(|l| l.expired_early.is_some()) {
        return Err(format!("a lease expired while kept alive: {l:?}"));
    }
    for l in leases.iter().filter(|l| l.revoked) {
        for ep in endpoints {
            if holds(ep, &l.key).await != Some(false) {
                return Err(format!("{ep} still holds the key of revoked lease {l:?}"));
            }
        }
    }
    let deadline = Instant::now() + EXPIRY_GRACE;
    for l in leases.iter().filter(|l| !l.revoked) {
        for ep in endpoints {
            while holds(ep, &l.key).await != Some(false) {
                if Instant::now() > deadline {
                    return Err(format!("{ep} still holds the key of expired lease {l:?}"));
                }
                tokio::time::sleep(Duration::from_millis(250)).await;
            }
        }
    }
    Ok(())
}

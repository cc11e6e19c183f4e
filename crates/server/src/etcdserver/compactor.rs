//! Auto-compaction (etcd 3.5's `v3compactor`): with
//! `--auto-compaction-retention`, the leader proposes a `Compact` of the
//! history the retention no longer covers, through the API layer like a
//! client's. Followers record revisions but propose nothing (etcd pauses
//! their compactor). The schedules are etcd's:
//!
//! - periodic, retention `p`: a revision is recorded every tenth of
//!   `min(p, 1h)`; once `p` has passed since the start (then every
//!   `min(p, 1h)` after the last success) the oldest recorded revision,
//!   about `p` old, is compacted. A failed compaction is retried a tenth
//!   later.
//! - revision, retention `n`: every 5 minutes, `current - n` is compacted
//!   unless it is not positive or was compacted last time.
//!
//! A compaction already done (`ErrCompacted`) counts as a success.

use std::collections::VecDeque;
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use api::etcdserverpb::CompactionRequest;
use tokio::time::Instant;

use super::v3server::Credentials;
use super::EtcdServer;
use crate::config::AutoCompaction;
use crate::rpctypes::EtcdError;

/// The longest compaction interval of periodic mode (etcd's
/// `getCompactInterval` cap).
const MAX_COMPACT_INTERVAL: Duration = Duration::from_secs(3600);
/// Revisions recorded per compaction interval (etcd's `retryDivisor`).
const RETRY_DIVISOR: u32 = 10;
/// Revision mode's period (etcd's `revInterval`).
const REVISION_INTERVAL: Duration = Duration::from_secs(300);

/// What the compactor needs of the member: its revision, whether it
/// leads, and a way to compact.
pub(crate) trait Compactable: Send + Sync + 'static {
    /// The store's current revision.
    fn revision(&self) -> i64;
    /// Whether this member is the leader.
    fn leads(&self) -> bool;
    /// Compacts the history before `rev` (a KV `Compact`).
    fn compact(&self, rev: i64) -> impl Future<Output = Result<(), EtcdError>> + Send;
}

impl Compactable for Arc<EtcdServer> {
    fn revision(&self) -> i64 {
        self.store.current_revision()
    }

    fn leads(&self) -> bool {
        self.leader() == self.member_id
    }

    async fn compact(&self, revision: i64) -> Result<(), EtcdError> {
        let r = CompactionRequest {
            revision,
            physical: false,
        };
        EtcdServer::compact(self, &Credentials::default(), r)
            .await
            .map(drop)
    }
}

/// Runs auto-compaction in `mode` for as long as the member runs.
pub async fn run(server: Arc<EtcdServer>, mode: AutoCompaction) {
    match mode {
        AutoCompaction::Periodic(period) => periodic(server, period).await,
        AutoCompaction::Revision(retention) => revision(server, retention).await,
    }
}

/// Compacts `r`; answers whether it counts as done.
async fn attempt<C: Compactable>(c: &C, rev: i64, what: &'static str) -> bool {
    let started = Instant::now();
    tracing::info!(revision = rev, "starting auto {what} compaction");
    match c.compact(rev).await {
        Ok(()) | Err(EtcdError::Compacted) => {
            tracing::info!(
                revision = rev,
                took = ?started.elapsed(),
                "completed auto {what} compaction"
            );
            true
        }
        Err(e) => {
            tracing::warn!(revision = rev, error = %e, "failed auto {what} compaction");
            false
        }
    }
}

/// etcd's `Periodic.Run`.
pub(crate) async fn periodic<C: Compactable>(c: C, period: Duration) {
    let compact_interval = period.min(MAX_COMPACT_INTERVAL);
    let retry = compact_interval / RETRY_DIVISOR;
    let retentions = (period.as_nanos() / retry.as_nanos().max(1)) as usize + 1;
    let mut revs = VecDeque::with_capacity(retentions + 1);
    let mut last_success = Instant::now();
    let mut base = period;
    loop {
        revs.push_back(c.revision());
        if revs.len() > retentions {
            // The front is always the revision of about `period` ago.
            revs.pop_front();
        }
        tokio::time::sleep(retry).await;
        if !c.leads() || last_success.elapsed() < base {
            continue;
        }
        // The first compaction waits a whole period, later ones an
        // interval.
        base = compact_interval;
        if attempt(&c, revs[0], "periodic").await {
            last_success = Instant::now();
        }
    }
}

/// etcd's `Revision.Run`.
pub(crate) async fn revision<C: Compactable>(c: C, retention: i64) {
    let mut prev = 0;
    loop {
        tokio::time::sleep(REVISION_INTERVAL).await;
        if !c.leads() {
            continue;
        }
        let rev = c.revision() - retention;
        if rev <= 0 || rev == prev {
            continue;
        }
        if attempt(&c, rev, "revision").await {
            prev = rev;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicBool, Ordering};
    use std::sync::Mutex;

    /// A member whose revision grows by 10 a second from 1 at the start,
    /// recording each compaction: (seconds since the start, revision).
    struct Fake {
        start: Instant,
        leads: AtomicBool,
        done: Mutex<Vec<(u64, i64)>>,
    }

    impl Compactable for Arc<Fake> {
        fn revision(&self) -> i64 {
            1 + 10 * self.start.elapsed().as_secs() as i64
        }
        fn leads(&self) -> bool {
            self.leads.load(Ordering::Relaxed)
        }
        async fn compact(&self, rev: i64) -> Result<(), EtcdError> {
            let at = self.start.elapsed().as_secs();
            self.done.lock().unwrap().push((at, rev));
            Ok(())
        }
    }

    /// The fake's revision `at` seconds after the start.
    fn fake_revision(at: u64) -> i64 {
        1 + 10 * at as i64
    }

    fn fake(leads: bool) -> Arc<Fake> {
        Arc::new(Fake {
            start: Instant::now(),
            leads: AtomicBool::new(leads),
            done: Mutex::new(Vec::new()),
        })
    }

    #[tokio::test(start_paused = true)]
    async fn periodic_compacts_what_is_older_than_the_retention_each_period() {
        let f = fake(true);
        let task = tokio::spawn(periodic(f.clone(), Duration::from_secs(10)));
        tokio::time::sleep(Duration::from_millis(35_500)).await;
        task.abort();
        let done = f.done.lock().unwrap().clone();
        assert_eq!(done.iter().map(|d| d.0).collect::<Vec<_>>(), [10, 20, 30]);
        assert_eq!(done[0].1, 1, "the revision at the start");
        for &(at, rev) in &done[1..] {
            // Recorded about one period before: 10 or 11 seconds ago.
            let (oldest, newest) = (1 + 10 * (at as i64 - 11), 1 + 10 * (at as i64 - 10));
            assert!((oldest..=newest).contains(&rev), "{at}s: {rev}");
        }
    }

    #[tokio::test(start_paused = true)]
    async fn periodic_of_hours_compacts_hourly() {
        let f = fake(true);
        let task = tokio::spawn(periodic(f.clone(), Duration::from_secs(2 * 3600)));
        tokio::time::sleep(Duration::from_secs(4 * 3600 + 60)).await;
        task.abort();
        let at: Vec<u64> = f.done.lock().unwrap().iter().map(|d| d.0).collect();
        assert_eq!(at, [7200, 10800, 14400]);
    }

    #[tokio::test(start_paused = true)]
    async fn revision_mode_keeps_the_last_revisions_every_five_minutes() {
        let f = fake(true);
        let task = tokio::spawn(revision(f.clone(), 1000));
        tokio::time::sleep(Duration::from_secs(601)).await;
        task.abort();
        let done = f.done.lock().unwrap().clone();
        assert_eq!(done, [(300, 3001 - 1000), (600, 6001 - 1000)]);
    }

    #[tokio::test(start_paused = true)]
    async fn a_follower_compacts_nothing_until_it_leads() {
        let f = fake(false);
        let task = tokio::spawn(periodic(f.clone(), Duration::from_secs(10)));
        tokio::time::sleep(Duration::from_secs(25)).await;
        assert!(f.done.lock().unwrap().is_empty());
        f.leads.store(true, Ordering::Relaxed);
        tokio::time::sleep(Duration::from_secs(2)).await;
        task.abort();
        let done = f.done.lock().unwrap().clone();
        assert_eq!(done.len(), 1, "{done:?}");
        let (at, rev) = done[0];
        assert!(
            rev >= fake_revision(at - 11),
            "history of the last period only: {done:?}"
        );
    }
}

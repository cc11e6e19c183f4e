//! Black-box integration harness for etcd-rs.
//!
//! Owns nothing but child processes and temporary directories: it starts
//! real `etcd` server processes (ours, or the reference Go etcd), waits for
//! them to answer `/health`, drives them with the Go `etcdctl`, and kills and
//! reaps every process it started when the owning value is dropped, also when
//! a test panics. All traffic stays on 127.0.0.1.
//!
//! A test reads like a user session:
//!
//! ```no_run
//! # async fn session() {
//! use etcd_rs_tests::TestCluster;
//! let c = TestCluster::start(1).await;
//! c.etcdctl(&["put", "greeting", "hello"]).expect_stdout("OK\n");
//! c.etcdctl(&["get", "greeting"]).expect_stdout("greeting\nhello\n");
//! # }
//! ```
//!
//! Binaries: `ETCD_BIN` (default: our `etcd` next to the test executable),
//! `ETCD_REFERENCE_BIN` (default `/usr/bin/etcd`), `ETCDCTL_BIN` (default
//! `/usr/bin/etcdctl`); see [`bins`].

pub mod benchmark;
pub mod bins;
pub mod cluster;
pub mod etcdctl;
pub mod health;
pub mod member;
pub mod pki;
pub mod process;

pub use cluster::{Bootstrap, ClusterBuilder, TestCluster, TlsUrls};
pub use etcdctl::etcdctl;
pub use member::Member;
pub use process::Output;

use std::future::Future;
use std::time::Duration;

/// Runs `fut` to completion or panics once `limit` has passed.
///
/// Every async test body goes through this, so a hung server fails the test
/// instead of hanging the run. (Blocking calls inside, such as `etcdctl`,
/// carry their own per-command timeouts.)
pub async fn within<F: Future>(limit: Duration, fut: F) -> F::Output {
    match tokio::time::timeout(limit, fut).await {
        Ok(out) => out,
        Err(_) => panic!("test body did not finish within {limit:?}"),
    }
}

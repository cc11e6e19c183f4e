//! Why a lock alone does not protect a resource, and how the lock's
//! revision fences a holder that paused past its lease (docs/locks.md).
//!
//! Run against any etcd or etcd-rs:
//!
//! ```text
//! cargo run -p etcd-rs-client --example fencing -- --endpoints=http://127.0.0.1:2379
//! ```
//!
//! Client A takes the lock `fence-demo` on a 2-second session and stops
//! renewing it (a process paused by a GC, SIGSTOP or a slow disk looks
//! exactly like this to etcd). Its lease expires, B takes the lock. When A
//! wakes up it still believes it holds the lock:
//!
//! - a write to etcd guarded by `Mutex::is_owner` (a Txn comparing the
//!   lock key's create revision) is refused, because the key is gone;
//! - a write to a service outside etcd carries the revision the lock was
//!   taken at as a fencing token; the service keeps the highest token it
//!   has seen and refuses lower ones, so A's late write is refused there
//!   too.

use api::etcdserverpb::request_op::Request;
use api::etcdserverpb::{PutRequest, RequestOp, TxnRequest};
use client::concurrency::{Mutex, Session};
use client::{Client, ConnectOptions};

const RESOURCE: &[u8] = b"fence-demo-resource";

/// A store outside etcd that takes writes with a fencing token: it keeps
/// the highest token seen and refuses any write with a lower one.
#[derive(Default)]
struct FencedStore {
    highest: i64,
    value: String,
}

impl FencedStore {
    fn write(&mut self, token: i64, value: &str) -> Result<(), String> {
        if token < self.highest {
            return Err(format!("token {token} is older than {}", self.highest));
        }
        self.highest = token;
        self.value = value.to_string();
        Ok(())
    }
}

/// Puts the resource only while `m` is held: answers whether etcd wrote.
async fn guarded_put(c: &Client, m: &Mutex, value: &str) -> Result<bool, tonic::Status> {
    let put = PutRequest {
        key: RESOURCE.to_vec(),
        value: value.as_bytes().to_vec(),
        ..Default::default()
    };
    let txn = TxnRequest {
        compare: vec![m.is_owner()],
        success: vec![RequestOp {
            request: Some(Request::RequestPut(put)),
        }],
        failure: vec![],
    };
    Ok(c.kv().txn(txn).await?.into_inner().succeeded)
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let endpoint = std::env::args()
        .find_map(|a| a.strip_prefix("--endpoints=").map(str::to_string))
        .unwrap_or_else(|| "http://127.0.0.1:2379".to_string());
    let opts = ConnectOptions::default();
    let a = Client::connect(std::slice::from_ref(&endpoint), &opts).await?;
    let b = Client::connect(&[endpoint], &opts).await?;
    let mut external = FencedStore::default();

    let session_a = Session::new(&a, 2).await?;
    let lock_a = Mutex::new(&a, b"fence-demo", session_a.lease());
    let token_a = lock_a.lock().await?.revision;
    println!(
        "A holds {} at revision {token_a}",
        String::from_utf8_lossy(lock_a.key())
    );
    println!("A writes to etcd: {}", guarded_put(&a, &lock_a, "A").await?);
    external.write(token_a, "A")?;
    println!("A writes to the external store with token {token_a}: ok");

    // A pauses: nothing renews its lease any more.
    drop(session_a);
    println!("A pauses; its lease is no longer renewed");

    let session_b = Session::new(&b, 10).await?;
    let lock_b = Mutex::new(&b, b"fence-demo", session_b.lease());
    let token_b = lock_b.lock().await?.revision;
    println!(
        "B holds {} at revision {token_b} (A's lease expired)",
        String::from_utf8_lossy(lock_b.key())
    );
    println!("B writes to etcd: {}", guarded_put(&b, &lock_b, "B").await?);
    external.write(token_b, "B")?;
    println!("B writes to the external store with token {token_b}: ok");

    // A wakes up and, believing it still holds the lock, writes.
    println!(
        "A, resumed, writes to etcd: {}",
        guarded_put(&a, &lock_a, "A again").await?
    );
    match external.write(token_a, "A again") {
        Ok(()) => println!("A, resumed, writes to the external store: ok"),
        Err(why) => println!("A, resumed, writes to the external store: refused, {why}"),
    }
    println!("the external store holds {:?}", external.value);
    lock_b.unlock().await?;
    Ok(())
}

//! Watchers of a fault run and etcd's watch guarantees. Each watcher
//! watches the run's key prefix from revision 1 on a random member; when
//! its stream breaks it watches again, from the revision after the last
//! event it saw, on another member (resumable). After the run, one more
//! watch from revision 1 on a healed member reads every event: the
//! reference. Each watcher's events must be the start of the reference,
//! event for event: ordered, unique and without gaps (reliable). Every
//! write a client was told succeeded must be in the reference.

use std::time::{Duration, Instant};

use api::etcdserverpb::watch_client::WatchClient;
use api::etcdserverpb::watch_request::RequestUnion;
use api::etcdserverpb::{WatchCreateRequest, WatchRequest};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use tonic::transport::Channel;

use crate::linearizability::{Input, Operation, Output};

/// One event as a watcher saw it: (mod revision, key, is a delete, value).
pub type Event = (i64, Vec<u8>, bool, Vec<u8>);

/// The prefix every key of the run starts with.
pub const PREFIX: &[u8] = b"/rb/";

fn prefix_end() -> Vec<u8> {
    let mut end = PREFIX.to_vec();
    *end.last_mut().expect("a prefix") += 1;
    end
}

/// Watches from revision `from` on `endpoint` until `until` or until an
/// event at `stop_at` arrives, appending to `seen`; `Err` when the
/// stream broke.
async fn watch_once(
    endpoint: &str,
    from: i64,
    until: Instant,
    stop_at: Option<i64>,
    seen: &mut Vec<Event>,
) -> Result<(), ()> {
    let channel = Channel::from_shared(endpoint.to_string())
        .map_err(|_| ())?
        .connect_timeout(Duration::from_secs(2))
        .connect()
        .await
        .map_err(|_| ())?;
    let create = WatchRequest {
        request_union: Some(RequestUnion::CreateRequest(WatchCreateRequest {
            key: PREFIX.to_vec(),
            range_end: prefix_end(),
            start_revision: from,
            ..Default::default()
        })),
    };
    let (tx, rx) = tokio::sync::mpsc::channel(1);
    tx.send(create).await.map_err(|_| ())?;
    let mut stream = WatchClient::new(channel)
        .watch(tokio_stream::wrappers::ReceiverStream::new(rx))
        .await
        .map_err(|_| ())?
        .into_inner();
    loop {
        let left = until.saturating_duration_since(Instant::now());
        let msg = match tokio::time::timeout(left, stream.message()).await {
            Err(_) => return Ok(()),
            Ok(Ok(Some(m))) => m,
            Ok(_) => return Err(()),
        };
        if msg.canceled {
            return Err(());
        }
        for e in msg.events {
            let kv = e.kv.unwrap_or_default();
            let rev = kv.mod_revision;
            seen.push((rev, kv.key, e.r#type == 1, kv.value));
            if Some(rev) == stop_at {
                return Ok(());
            }
        }
    }
}

/// A watcher of the run: what it saw until `until`.
pub async fn watcher(endpoints: Vec<String>, seed: u64, until: Instant) -> Vec<Event> {
    let mut rng = StdRng::seed_from_u64(seed);
    let mut seen = Vec::new();
    while Instant::now() < until {
        let from = seen.last().map_or(1, |e: &Event| e.0 + 1);
        let ep = &endpoints[rng.gen_range(0..endpoints.len())];
        if watch_once(ep, from, until, None, &mut seen).await.is_err() {
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
    seen
}

/// Every event from revision 1 to `last` on `endpoint` (within 20 s).
pub async fn reference(endpoint: &str, last: i64) -> Vec<Event> {
    let mut seen = Vec::new();
    let until = Instant::now() + Duration::from_secs(20);
    if last > 0 {
        let _ = watch_once(endpoint, 1, until, Some(last), &mut seen).await;
    }
    seen
}

/// What broke a guarantee, if anything: a watcher whose events are not
/// the start of `reference`, or an acknowledged write missing from it.
pub fn check(
    reference: &[Event],
    watchers: &[Vec<Event>],
    history: &[Operation],
) -> Result<(), String> {
    for (w, seen) in watchers.iter().enumerate() {
        if let Some(i) = (0..seen.len()).find(|&i| reference.get(i) != Some(&seen[i])) {
            return Err(format!(
                "watcher {w}: event {i} is {:?}, the reference has {:?}",
                seen[i],
                reference.get(i)
            ));
        }
    }
    for op in history {
        let written = match (&op.input, &op.output) {
            (Input::Put(v), Output::Ok) => v,
            (Input::CompareAndSwap { value, .. }, Output::Swapped(true)) => value,
            _ => continue,
        };
        let found = reference
            .iter()
            .any(|e| !e.2 && e.1 == op.key && e.3 == *written);
        if !found {
            return Err(format!("an acknowledged write is lost: {op:?}"));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ev(rev: i64, v: &str) -> Event {
        (rev, b"/rb/k".to_vec(), false, v.as_bytes().to_vec())
    }

    #[test]
    fn watchers_must_see_a_start_of_the_reference() {
        let reference = vec![ev(2, "a"), ev(3, "b"), ev(4, "c")];
        assert!(check(&reference, &[vec![ev(2, "a"), ev(3, "b")]], &[]).is_ok());
        let gap = vec![ev(2, "a"), ev(4, "c")];
        assert!(check(&reference, &[gap], &[]).is_err());
        let twice = vec![ev(2, "a"), ev(2, "a")];
        assert!(check(&reference, &[twice], &[]).is_err());
        let put = |v: &str| Operation {
            client: 0,
            key: b"/rb/k".to_vec(),
            input: Input::Put(v.as_bytes().to_vec()),
            output: Output::Ok,
            invoked: 0,
            returned: Some(1),
        };
        assert!(check(&reference, &[], &[put("b")]).is_ok());
        assert!(check(&reference, &[], &[put("z")]).is_err());
    }
}

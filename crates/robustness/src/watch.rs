//! Watchers of a fault run and etcd's watch guarantees. Each watcher
//! watches the run's key prefix from revision 1 on a random member; when
//! its stream breaks it watches again, from the revision after the last
//! event it saw, on another member (resumable). After the run, one more
//! watch from revision 1 on a healed member reads every event: the
//! reference. Each watcher's events must be the start of the reference,
//! event for event: ordered, unique and without gaps (reliable). Within
//! each stream, the events of one revision come in one response (atomic:
//! the run's two-key txns make such revisions), and progress
//! notifications (asked for every 250 ms, and sent by the members every
//! 500 ms) never go backwards nor claim a revision whose events are still
//! to come (bookmarkable). Every write a client was told succeeded must
//! be in the reference, and every serializable read must have answered
//! the key's value at the revision it reported.

use std::time::{Duration, Instant};

use api::etcdserverpb::watch_client::WatchClient;
use api::etcdserverpb::watch_request::RequestUnion;
use api::etcdserverpb::{WatchCreateRequest, WatchProgressRequest, WatchRequest};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use tonic::transport::Channel;

use crate::linearizability::{Input, Operation, Output};
use crate::workload::SerializableRead;

/// One event as a watcher saw it: (mod revision, key, is a delete, value).
pub type Event = (i64, Vec<u8>, bool, Vec<u8>);

/// What a watcher saw: its events, and what broke the atomic or
/// bookmarkable guarantee within one of its streams.
#[derive(Default)]
pub struct WatchLog {
    /// Every event, in the order received.
    pub seen: Vec<Event>,
    /// Broken guarantees, as found.
    pub broken: Vec<String>,
}

/// What one stream saw last, for its per-stream checks.
#[derive(Default)]
struct StreamState {
    /// The revision of the last event and whether its response was a
    /// fragment (the revision may go on in the next response).
    last_event: Option<(i64, bool)>,
    /// The last progress notification's revision.
    last_progress: i64,
}

impl StreamState {
    /// Checks one response: its events' revisions and fragment flag, or
    /// for a progress notification none and its header revision.
    fn response(&mut self, revisions: &[i64], fragment: bool, header: i64) -> Result<(), String> {
        let Some(&first) = revisions.first() else {
            let last = self.last_event.map_or(0, |e| e.0);
            if header < last || header < self.last_progress {
                return Err(format!(
                    "a progress notification at revision {header} after an event at {last} and a notification at {}",
                    self.last_progress
                ));
            }
            self.last_progress = header;
            return Ok(());
        };
        if first <= self.last_progress {
            return Err(format!(
                "an event at revision {first} after a progress notification at {}",
                self.last_progress
            ));
        }
        if let Some((last, false)) = self.last_event {
            if first == last {
                return Err(format!(
                    "the events of revision {first} came in two responses"
                ));
            }
        }
        self.last_event = revisions.last().map(|&r| (r, fragment));
        Ok(())
    }
}

/// The prefix every key of the run starts with.
pub const PREFIX: &[u8] = b"/rb/";

fn prefix_end() -> Vec<u8> {
    let mut end = PREFIX.to_vec();
    *end.last_mut().expect("a prefix") += 1;
    end
}

/// How often a watcher asks for a progress notification.
const PROGRESS_EVERY: Duration = Duration::from_millis(250);

/// Watches from revision `from` on `endpoint` until `until` or until the
/// events of revision `stop_at` arrived, appending to `log`; `Err` when
/// the stream broke.
async fn watch_once(
    endpoint: &str,
    from: i64,
    until: Instant,
    stop_at: Option<i64>,
    log: &mut WatchLog,
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
            progress_notify: true,
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
    let mut state = StreamState::default();
    let mut ask = tokio::time::interval(PROGRESS_EVERY);
    loop {
        let left = until.saturating_duration_since(Instant::now());
        let msg = tokio::select! {
            _ = ask.tick() => {
                let progress = WatchRequest {
                    request_union: Some(RequestUnion::ProgressRequest(WatchProgressRequest {})),
                };
                let _ = tx.try_send(progress);
                continue;
            }
            msg = tokio::time::timeout(left, stream.message()) => match msg {
                Err(_) => return Ok(()),
                Ok(Ok(Some(m))) => m,
                Ok(_) => return Err(()),
            },
        };
        if msg.canceled {
            return Err(());
        }
        if msg.created {
            continue;
        }
        let revisions: Vec<i64> = msg
            .events
            .iter()
            .map(|e| e.kv.as_ref().map_or(0, |kv| kv.mod_revision))
            .collect();
        let header = msg.header.as_ref().map_or(0, |h| h.revision);
        if let Err(e) = state.response(&revisions, msg.fragment, header) {
            log.broken.push(format!("{endpoint}: {e}"));
        }
        for e in msg.events {
            let kv = e.kv.unwrap_or_default();
            log.seen
                .push((kv.mod_revision, kv.key, e.r#type == 1, kv.value));
        }
        // A revision's events come in one response: all of `stop_at`'s
        // are in.
        if stop_at.is_some_and(|stop| revisions.last().is_some_and(|&r| r >= stop)) {
            return Ok(());
        }
    }
}

/// A watcher of the run: what it saw until `until`.
pub async fn watcher(endpoints: Vec<String>, seed: u64, until: Instant) -> WatchLog {
    let mut rng = StdRng::seed_from_u64(seed);
    let mut log = WatchLog::default();
    while Instant::now() < until {
        let from = log.seen.last().map_or(1, |e: &Event| e.0 + 1);
        let ep = &endpoints[rng.gen_range(0..endpoints.len())];
        if watch_once(ep, from, until, None, &mut log).await.is_err() {
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
    log
}

/// Every event from revision 1 to `last` on `endpoint` (within 20 s).
pub async fn reference(endpoint: &str, last: i64) -> WatchLog {
    let mut log = WatchLog::default();
    let until = Instant::now() + Duration::from_secs(20);
    if last > 0 {
        let _ = watch_once(endpoint, 1, until, Some(last), &mut log).await;
    }
    log
}

/// Whether every serializable read answered what `reference` (every
/// event) says its key held at the revision it reported.
pub fn check_serializable(reference: &[Event], reads: &[SerializableRead]) -> Result<(), String> {
    let last = reference.last().map_or(0, |e| e.0);
    for r in reads {
        if r.revision > last {
            return Err(format!("{r:?} is past the last revision {last}"));
        }
        let held = reference
            .iter()
            .take_while(|e| e.0 <= r.revision)
            .filter(|e| e.1 == r.key)
            .last()
            .and_then(|e| (!e.2).then(|| e.3.clone()));
        if held != r.value {
            return Err(format!(
                "a serializable read {r:?}: the key held {held:?} at that revision"
            ));
        }
    }
    Ok(())
}

/// What broke a guarantee, if anything: a watcher whose events are not
/// the start of `reference`, or an acknowledged write missing from it.
pub fn check(
    reference: &[Event],
    watchers: &[WatchLog],
    history: &[Operation],
) -> Result<(), String> {
    for (w, log) in watchers.iter().enumerate() {
        if let Some(e) = log.broken.first() {
            return Err(format!("watcher {w}: {e}"));
        }
        let seen = &log.seen;
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
        let log = |seen: Vec<Event>| WatchLog {
            seen,
            broken: Vec::new(),
        };
        assert!(check(&reference, &[log(vec![ev(2, "a"), ev(3, "b")])], &[]).is_ok());
        let gap = vec![ev(2, "a"), ev(4, "c")];
        assert!(check(&reference, &[log(gap)], &[]).is_err());
        let twice = vec![ev(2, "a"), ev(2, "a")];
        assert!(check(&reference, &[log(twice)], &[]).is_err());
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

    #[test]
    fn a_stream_keeps_revisions_whole_and_bookmarks_forward() {
        let mut s = StreamState::default();
        assert!(s.response(&[2, 3, 3], false, 3).is_ok());
        assert!(s.response(&[], false, 5).is_ok(), "progress at 5");
        assert!(s.response(&[], false, 4).is_err(), "progress went back");
        let mut s = StreamState::default();
        s.response(&[], false, 5).unwrap();
        assert!(
            s.response(&[5], false, 5).is_err(),
            "an event at a bookmark"
        );
        let mut s = StreamState::default();
        s.response(&[6, 7], false, 7).unwrap();
        assert!(s.response(&[7, 8], false, 8).is_err(), "revision 7 split");
        let mut s = StreamState::default();
        s.response(&[6, 7], true, 7).unwrap();
        assert!(
            s.response(&[7, 8], false, 8).is_ok(),
            "a fragment may split it"
        );
    }

    #[test]
    fn serializable_reads_must_match_the_history_at_their_revision() {
        let reference = vec![
            ev(2, "a"),
            ev(3, "b"),
            (4, b"/rb/k".to_vec(), true, Vec::new()),
        ];
        let read = |revision, value: Option<&str>| SerializableRead {
            key: b"/rb/k".to_vec(),
            revision,
            value: value.map(|v| v.as_bytes().to_vec()),
        };
        assert!(check_serializable(&reference, &[read(2, Some("a")), read(4, None)]).is_ok());
        assert!(check_serializable(&reference, &[read(1, None), read(3, Some("b"))]).is_ok());
        assert!(
            check_serializable(&reference, &[read(3, Some("a"))]).is_err(),
            "stale value"
        );
        assert!(
            check_serializable(&reference, &[read(9, None)]).is_err(),
            "future"
        );
    }
}

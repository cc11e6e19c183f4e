//! The hub's delivery rules: order, catching up, fan-out, progress.

use std::sync::{Arc, Mutex as StdMutex};

use super::*;

struct Log {
    events: Vec<Event>,
    compact: i64,
}

impl History for Log {
    fn events(&self, from: i64, to: i64, _max: usize) -> Result<HistoryRead, crate::MvccError> {
        let evs = self
            .events
            .iter()
            .filter(|e| (from..=to).contains(&e.kv.as_ref().unwrap().mod_revision))
            .cloned()
            .collect();
        Ok(HistoryRead {
            events: evs,
            upto: to,
            compact_revision: self.compact,
        })
    }
    fn current_revision(&self) -> i64 {
        self.events
            .last()
            .map_or(1, |e| e.kv.as_ref().unwrap().mod_revision)
    }
}

fn put(key: &str, rev: i64) -> Event {
    put_event(KeyValue {
        key: key.into(),
        mod_revision: rev,
        ..Default::default()
    })
}

fn spec(key: &str, end: &str) -> WatchSpec {
    WatchSpec {
        key: key.into(),
        range_end: end.into(),
        no_put: false,
        no_delete: false,
        progress_notify: true,
    }
}

type Got = Arc<StdMutex<Vec<Delivery>>>;

fn sink(got: &Got, capacity: usize) -> Sink {
    let got = got.clone();
    Box::new(move |d| {
        let mut g = got.lock().unwrap();
        if g.len() >= capacity {
            return false;
        }
        g.push(d);
        true
    })
}

/// A sink that takes as many deliveries as `room` says, then refuses.
fn sink_with_room(got: &Got, room: &Arc<StdMutex<usize>>) -> Sink {
    let (g, r) = (got.clone(), room.clone());
    Box::new(move |d| {
        let mut room = r.lock().unwrap();
        if *room == 0 {
            return false;
        }
        *room -= 1;
        g.lock().unwrap().push(d);
        true
    })
}

fn revs(got: &Got) -> Vec<i64> {
    let mut out = Vec::new();
    for d in got.lock().unwrap().iter() {
        if let Delivery::Events { events, .. } = d {
            out.extend(events.iter().map(|e| e.kv.as_ref().unwrap().mod_revision));
        }
    }
    out
}

#[test]
fn a_watcher_from_the_past_gets_history_then_live_events_without_gaps() {
    let mut log = Log {
        events: (2..=5).map(|r| put("a", r)).collect(),
        compact: -1,
    };
    let hub = WatchHub::default();
    let got: Got = Default::default();
    hub.watch(spec("a", ""), 3, || 5, sink(&got, 100));
    hub.notify(&[put("a", 6)], 6); // unsynced: skipped, replayed later
    log.events.push(put("a", 6));
    assert!(!hub.sync(&log));
    assert!(hub.all_synced());
    hub.notify(&[put("a", 7), put("b", 7)], 7);
    assert_eq!(revs(&got), vec![3, 4, 5, 6, 7]);
}

#[test]
fn a_slow_watcher_falls_back_to_history_and_misses_nothing() {
    let mut log = Log {
        events: vec![],
        compact: -1,
    };
    let hub = WatchHub::default();
    let got: Got = Default::default();
    let room = Arc::new(StdMutex::new(1usize));
    hub.watch(spec("a", "b"), 2, || 1, sink_with_room(&got, &room));
    for rev in 2..=4 {
        log.events.push(put("a", rev));
        hub.notify(&[put("a", rev)], rev);
    }
    assert_eq!(revs(&got), vec![2], "the sink took one delivery");
    assert!(!hub.all_synced());
    // The client drained its queue: room again; history fills the gap.
    *room.lock().unwrap() = 10;
    assert!(!hub.sync(&log));
    log.events.push(put("a", 5));
    hub.notify(&[put("a", 5)], 5);
    assert_eq!(revs(&got), vec![2, 3, 4, 5]);
}

/// A round that reads from where the watchers still taking deliveries
/// are leaves a stalled watcher further back where it is, instead of
/// handing it the read's events and skipping those before them.
#[test]
fn a_round_that_skips_stalled_watchers_gives_them_no_gap() {
    let log = Log {
        events: (2..=6).map(|r| put("a", r)).collect(),
        compact: -1,
    };
    let hub = WatchHub::default();
    let slow: Got = Default::default();
    let room = Arc::new(StdMutex::new(0usize));
    hub.watch(spec("a", ""), 3, || 6, sink_with_room(&slow, &room));
    let fast: Got = Default::default();
    hub.watch(spec("a", ""), 5, || 6, sink(&fast, 100));
    // Round 0 reads from 3: the first watcher's client is not reading.
    assert!(hub.sync(&log));
    assert_eq!(revs(&fast), vec![5, 6]);
    assert!(revs(&slow).is_empty());
    // Its client reads again; a new watcher from 5 joins the unsynced.
    *room.lock().unwrap() = 10;
    let other: Got = Default::default();
    hub.watch(spec("a", ""), 5, || 6, sink(&other, 100));
    // Round 1 skips the stalled watcher when choosing where to read.
    while hub.sync(&log) {}
    assert_eq!(revs(&other), vec![5, 6]);
    assert_eq!(revs(&slow), vec![3, 4, 5, 6]);
}

/// A history read that stops early (the byte budget) never moves a
/// watcher that is further ahead backwards.
#[test]
fn a_short_read_leaves_watchers_ahead_of_it_where_they_are() {
    struct Short(Log);
    impl History for Short {
        fn events(&self, from: i64, _to: i64, m: usize) -> Result<HistoryRead, crate::MvccError> {
            self.0.events(from, from + 1, m)
        }
        fn current_revision(&self) -> i64 {
            self.0.current_revision()
        }
    }
    let log = Short(Log {
        events: (2..=9).map(|r| put("a", r)).collect(),
        compact: -1,
    });
    let hub = WatchHub::default();
    let (early, late): (Got, Got) = Default::default();
    hub.watch(spec("a", ""), 2, || 9, sink(&early, 100));
    hub.watch(spec("a", ""), 7, || 9, sink(&late, 100));
    while hub.sync(&log) {}
    assert_eq!(revs(&early), (2..=9).collect::<Vec<_>>());
    assert_eq!(revs(&late), vec![7, 8, 9]);
}

/// Thousands of watchers from the past are served 512 a round, in
/// turn, and every one of them gets the whole history once.
#[test]
fn many_unsynced_watchers_are_caught_up_in_rounds_of_512() {
    let log = Log {
        events: (2..=4).map(|r| put("a", r)).collect(),
        compact: -1,
    };
    let hub = WatchHub::default();
    let gots: Vec<Got> = (0..1200).map(|_| Got::default()).collect();
    for got in &gots {
        hub.watch(spec("a", ""), 2, || 4, sink(got, 10));
    }
    let served = |gots: &[Got]| gots.iter().filter(|g| !revs(g).is_empty()).count();
    assert!(hub.sync(&log), "more watchers than one round serves");
    assert_eq!(served(&gots), SYNC_WATCHERS);
    assert!(hub.sync(&log));
    assert_eq!(served(&gots), 2 * SYNC_WATCHERS);
    assert!(!hub.sync(&log), "the third round serves the last 176");
    assert!(hub.all_synced());
    for got in &gots {
        assert_eq!(revs(got), vec![2, 3, 4]);
    }
}

fn keys(got: &Got) -> Vec<String> {
    let mut out = Vec::new();
    for d in got.lock().unwrap().iter() {
        if let Delivery::Events { events, .. } = d {
            out.extend(
                events
                    .iter()
                    .map(|e| String::from_utf8(e.kv.as_ref().unwrap().key.clone()).unwrap()),
            );
        }
    }
    out
}

/// One revision with several events (a txn): each watcher gets the
/// ones in its range, together and in the revision's order, whether
/// it watches a key, a prefix or another range.
#[test]
fn a_revision_of_several_events_reaches_each_watcher_once_in_order() {
    let hub = WatchHub::default();
    let (all, one, range, other): (Got, Got, Got, Got) = Default::default();
    hub.watch(spec("", "\0"), 7, || 6, sink(&all, 10));
    hub.watch(spec("a", ""), 7, || 6, sink(&one, 10));
    hub.watch(spec("a", "c"), 7, || 6, sink(&range, 10));
    hub.watch(spec("x", ""), 7, || 6, sink(&other, 10));
    hub.notify(&[put("b", 7), put("a", 7), put("c", 7)], 7);
    assert_eq!(keys(&all), ["b", "a", "c"]);
    assert_eq!(keys(&one), ["a"]);
    assert_eq!(keys(&range), ["b", "a"]);
    assert!(other.lock().unwrap().is_empty());
    assert_eq!(all.lock().unwrap().len(), 1, "one delivery per revision");
}

#[test]
fn idle_synced_watchers_get_progress_at_the_revision_they_are_complete_to() {
    let hub = WatchHub::default();
    let (a, b): (Got, Got) = Default::default();
    let ida = hub.watch(spec("a", ""), 5, || 4, sink(&a, 100));
    hub.watch(spec("b", ""), 5, || 4, sink(&b, 100));
    hub.notify(&[put("b", 5)], 5);
    hub.progress_notify(|| 5);
    assert_eq!(*a.lock().unwrap(), vec![Delivery::Progress { revision: 5 }]);
    assert_eq!(revs(&b), vec![5], "b was active: no progress this round");
    let mut answered = None;
    assert!(hub.request_progress(&[ida], || 5, |r| answered = Some(r)));
    assert_eq!(answered, Some(5));
}

#[test]
fn compacted_history_cancels_the_watcher() {
    let log = Log {
        events: vec![put("a", 9)],
        compact: 8,
    };
    let hub = WatchHub::default();
    let got: Got = Default::default();
    hub.watch(spec("a", ""), 5, || 9, sink(&got, 10));
    assert!(!hub.sync(&log));
    assert_eq!(
        got.lock().unwrap()[0],
        Delivery::Compacted {
            compact_revision: 8
        }
    );
    assert!(hub.all_synced(), "the compacted watcher is gone");
    // As in etcd, a watch may start at the compaction revision itself.
    let at: Got = Default::default();
    hub.watch(spec("a", ""), 8, || 9, sink(&at, 10));
    assert!(!hub.sync(&log));
    assert_eq!(revs(&at), vec![9]);
}

//! Watch notification benchmarks: one revision's put handed to the hub's
//! watchers, with N watchers on the key and with N idle watchers on other
//! keys. The sinks only count, so the figures are the hub's own cost.
//! Figures go to docs/benchmarks.md with the command that made them.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use api::mvccpb::{event::EventType, Event, KeyValue};
use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use storage::mvcc::{Delivery, Sink, WatchHub, WatchSpec};

fn spec(key: &[u8], range_end: &[u8]) -> WatchSpec {
    WatchSpec {
        key: key.to_vec(),
        range_end: range_end.to_vec(),
        no_put: false,
        no_delete: false,
        progress_notify: false,
    }
}

fn counting(n: &Arc<AtomicU64>) -> Sink {
    let n = n.clone();
    Box::new(move |d| {
        if let Delivery::Events { events, .. } = d {
            n.fetch_add(events.len() as u64, Ordering::Relaxed);
        }
        true
    })
}

fn put(key: &[u8], rev: i64) -> Event {
    Event {
        r#type: EventType::Put as i32,
        kv: Some(KeyValue {
            key: key.to_vec(),
            value: vec![b'v'; 256],
            mod_revision: rev,
            create_revision: 2,
            version: rev - 1,
            lease: 0,
        }),
        prev_kv: None,
    }
}

/// A hub whose watchers are `on_key` watchers of `key/a` and `idle`
/// watchers of other keys, half on single keys and half on prefixes.
fn hub(on_key: usize, idle: usize, delivered: &Arc<AtomicU64>) -> WatchHub {
    let hub = WatchHub::default();
    for _ in 0..on_key {
        hub.watch(spec(b"key/a", b""), 2, || 1, counting(delivered));
    }
    for i in 0..idle {
        let s = if i % 2 == 0 {
            spec(format!("other/{i:08}").as_bytes(), b"")
        } else {
            let p = format!("other/{i:08}/");
            let mut end = p.clone().into_bytes();
            *end.last_mut().unwrap() += 1;
            spec(p.as_bytes(), &end)
        };
        hub.watch(s, 2, || 1, counting(delivered));
    }
    hub
}

fn notify(c: &mut Criterion) {
    let mut g = c.benchmark_group("watch notify");
    for (on_key, idle) in [(1, 0), (1, 100_000), (10_000, 0), (10_000, 100_000)] {
        let delivered = Arc::new(AtomicU64::new(0));
        let h = hub(on_key, idle, &delivered);
        let mut rev = 1;
        g.throughput(Throughput::Elements(on_key as u64));
        g.bench_function(
            format!("1 put, {on_key} watchers on its key, {idle} on others"),
            |b| {
                b.iter(|| {
                    rev += 1;
                    h.notify(&[put(b"key/a", rev)], rev);
                })
            },
        );
        assert_eq!(
            delivered.load(Ordering::Relaxed),
            (rev - 1) as u64 * on_key as u64
        );
    }
    g.finish();
}

criterion_group!(benches, notify);
criterion_main!(benches);

//! MVCC store benchmarks: the apply stage's put path and the range path, on
//! a real redb file in a temporary directory. Figures go to
//! docs/benchmarks.md with the command that made them.

use criterion::{criterion_group, criterion_main, BatchSize, Criterion, Throughput};
use storage::mvcc::{RangeEnd, RangeOptions};
use storage::{Backend, KvStore};

const VALUE: [u8; 256] = [b'v'; 256];

fn store_with(dir: &std::path::Path, keys: usize) -> KvStore {
    let s = KvStore::open(Backend::open(&dir.join("db")).unwrap()).unwrap();
    for chunk in (0..keys).collect::<Vec<_>>().chunks(1000) {
        let mut t = s.begin().unwrap();
        for i in chunk {
            t.put(format!("key/{i:08}").as_bytes(), &VALUE, 0).unwrap();
            t.end_request();
        }
        t.commit().unwrap();
    }
    s
}

fn put(c: &mut Criterion) {
    let mut g = c.benchmark_group("put");
    g.throughput(Throughput::Elements(1));
    for per_batch in [1usize, 100] {
        let dir = tempfile::tempdir().unwrap();
        let s = store_with(dir.path(), 10_000);
        let mut n = 0u64;
        g.throughput(Throughput::Elements(per_batch as u64));
        g.bench_function(format!("256B value, {per_batch} per batch commit"), |b| {
            b.iter(|| {
                let mut t = s.begin().unwrap();
                for _ in 0..per_batch {
                    n += 1;
                    t.put(format!("key/{:08}", n % 10_000).as_bytes(), &VALUE, 0)
                        .unwrap();
                    t.end_request();
                }
                t.commit().unwrap();
            })
        });
    }
    g.finish();
}

fn range(c: &mut Criterion) {
    let dir = tempfile::tempdir().unwrap();
    let s = store_with(dir.path(), 10_000);
    let mut g = c.benchmark_group("range");
    g.bench_function("1 key of 10000", |b| {
        b.iter_batched(
            || format!("key/{:08}", fastrand_index()),
            |k| {
                s.range(k.as_bytes(), RangeEnd::Single, RangeOptions::default())
                    .unwrap()
            },
            BatchSize::SmallInput,
        )
    });
    g.throughput(Throughput::Elements(1000));
    g.bench_function("1000 keys of 10000", |b| {
        b.iter(|| {
            let r = s
                .range(
                    b"key/00002000",
                    RangeEnd::Before(b"key/00003000"),
                    RangeOptions::default(),
                )
                .unwrap();
            assert_eq!(r.kvs.len(), 1000);
            r
        })
    });
    g.finish();
}

/// A cheap changing index without a random-number dependency.
fn fastrand_index() -> u64 {
    use std::sync::atomic::{AtomicU64, Ordering};
    static N: AtomicU64 = AtomicU64::new(0);
    N.fetch_add(7919, Ordering::Relaxed) % 10_000
}

criterion_group!(benches, put, range);
criterion_main!(benches);

use std::io::Cursor;

use super::*;

type Buckets = Vec<(Vec<u8>, Vec<(Vec<u8>, Vec<u8>)>)>;

fn write(buckets: &Buckets) -> Vec<u8> {
    let mut w = Writer::new(Cursor::new(Vec::new())).unwrap();
    for (name, rows) in buckets {
        let mut b = w.bucket(name);
        for (k, v) in rows {
            b.put(k, v).unwrap();
        }
        b.finish().unwrap();
    }
    let (out, size) = w.finish().unwrap();
    let data = out.into_inner();
    assert_eq!(data.len() as u64, size);
    data
}

fn read(data: &[u8]) -> Buckets {
    let bolt = Bolt::open(data).unwrap();
    let mut out = Vec::new();
    for b in bolt.buckets().unwrap() {
        let mut rows = Vec::new();
        bolt.for_each(&b, |k, v| {
            rows.push((k.to_vec(), v.to_vec()));
            Ok::<_, BoltError>(())
        })
        .unwrap();
        out.push((b.name.to_vec(), rows));
    }
    out
}

fn rows(n: usize, value: usize) -> Vec<(Vec<u8>, Vec<u8>)> {
    (0..n)
        .map(|i| (format!("key{i:08}").into_bytes(), vec![b'v'; value + i % 7]))
        .collect()
}

#[test]
fn what_is_written_reads_back_in_order() {
    let buckets: Buckets = vec![
        (b"alarm".to_vec(), vec![]),
        (b"key".to_vec(), rows(20_000, 100)),
        (b"lease".to_vec(), rows(3, 10)),
        (b"meta".to_vec(), rows(40, 8)),
        (b"values".to_vec(), rows(5, 70_000)),
    ];
    let data = write(&buckets);
    assert_eq!(read(&data), buckets);
    let bolt = Bolt::open(&data).unwrap();
    assert_eq!(bolt.meta().txid, 2);
    assert_eq!(bolt.size(), data.len() as u64);
    assert!(read::is_meta(&data[..4096]) && read::is_meta(&data[4096..8192]));
}

#[test]
fn an_empty_file_has_its_root_and_no_buckets() {
    let data = write(&vec![]);
    assert_eq!(data.len(), 4 * 4096);
    assert!(read(&data).is_empty());
}

#[test]
fn keys_out_of_order_are_refused() {
    let mut w = Writer::new(Cursor::new(Vec::new())).unwrap();
    let mut b = w.bucket(b"b");
    b.put(b"2", b"").unwrap();
    assert!(b.put(b"1", b"").is_err());
    assert!(b.put(b"", b"").is_err());
    b.finish().unwrap();
    assert!(w.bucket(b"a").finish().is_err());
}

#[test]
fn damage_is_an_error_not_a_panic() {
    let data = write(&vec![(b"key".to_vec(), rows(2000, 50))]);
    assert_eq!(Bolt::open(&data[..4096]).err(), Some(BoltError::TooSmall));
    let short = &data[..data.len() - 4096];
    assert!(matches!(
        Bolt::open(short),
        Err(BoltError::Truncated { .. })
    ));
    let mut bad = data.clone();
    bad[16] ^= 1;
    // Meta 0's magic is gone; meta 1 still opens the file.
    assert!(Bolt::open(&bad).is_ok());
    bad[4096 + 16] ^= 1;
    assert_eq!(Bolt::open(&bad).err(), Some(BoltError::Invalid));
    let mut sum = data.clone();
    sum[16 + 60] ^= 1;
    sum[4096 + 16 + 60] ^= 1;
    assert_eq!(Bolt::open(&sum).err(), Some(BoltError::Checksum));
    // Every byte of every tree page flipped in turn: never a panic.
    for at in (3 * 4096..data.len()).step_by(97) {
        let mut d = data.clone();
        d[at] ^= 0xff;
        if let Ok(bolt) = Bolt::open(&d) {
            if let Ok(buckets) = bolt.buckets() {
                for b in buckets {
                    let _ = bolt.for_each(&b, |_, _| Ok::<_, BoltError>(()));
                }
            }
        }
    }
}

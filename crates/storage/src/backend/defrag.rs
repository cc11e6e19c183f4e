//! Online defragmentation (etcd's `Maintenance.Defragment`): the backend is
//! copied into a fresh file, which replaces it, so the space freed by
//! compactions and overwrites goes back to the file system.
//!
//! etcd holds every read and write of the member for its whole copy. Here
//! the copy is read from snapshots while the member goes on: first
//! everything, then, round after round, the `key` rows added meanwhile
//! (rows of that table are only ever added while the rewrite guard is
//! held, and always after every row there). Only the last round holds
//! writes, by holding the old file's write transaction: it copies the few
//! rows left and the small tables whole, makes the copy durable and swaps
//! it in. Reads never stop; a read begun on the old file finishes there.

use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use redb::{
    Database, Durability, ReadTransaction, ReadableDatabase, ReadableTable, TableHandle,
    WriteTransaction,
};

use super::{create, file_size, Backend, BackendError, Opened};
use crate::schema::{KEY_TABLE, TABLES};

/// Bytes of rows copied per write transaction of the copy.
const COPY_BATCH_BYTES: usize = 16 * 1024 * 1024;
/// Catch-up rounds stop, and the final round begins, once a round finds
/// at most this many new rows (or after [`MAX_CATCH_UP_ROUNDS`]).
const CATCH_UP_ROWS: usize = 10_000;
/// At most this many catch-up rounds before the final one.
const MAX_CATCH_UP_ROUNDS: u32 = 8;

/// What a defragmentation did.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Defragmented {
    /// The file's size before, in bytes.
    pub size_before: u64,
    /// The file's size after, in bytes.
    pub size_after: u64,
    /// The whole defragmentation.
    pub took: Duration,
    /// How long writes were held: the final round, from holding the old
    /// file's write transaction to the swap.
    pub writes_held: Duration,
}

impl Backend {
    /// Defragments the backend online: copies it into `<file>.defrag` beside
    /// it, then renames the copy over the file and serves from it. Waits
    /// for a compaction or restore in progress (the rewrite guard) and
    /// holds them off until done. Errors: any backend or file-system
    /// failure; the backend is then unchanged and the partial copy removed.
    pub fn defragment(&self) -> Result<Defragmented, BackendError> {
        self.defragment_with(&mut |_| {})
    }

    /// [`Backend::defragment`], calling `between` with the round number
    /// after each round but the final one (tests write there).
    fn defragment_with(&self, between: &mut dyn FnMut(u32)) -> Result<Defragmented, BackendError> {
        let _rewrites = self.rewrite_guard();
        let started = Instant::now();
        let size_before = file_size(&self.path);
        let tmp = self.path.with_extension("defrag");
        // A copy left by a crash is of no use.
        let _ = std::fs::remove_file(&tmp);
        let ((db, syncs), held, writes_held) = match self.copy_into(&tmp, between) {
            Ok(copy) => copy,
            Err(e) => {
                let _ = std::fs::remove_file(&tmp);
                return Err(e);
            }
        };
        let mut current = self.db.write().expect("backend lock");
        *self.syncs.write().expect("backend lock") = syncs;
        *current = Arc::new(db);
        drop(current);
        // The old file's writers wait on `held`; once it ends they find the
        // copy swapped in and begin there (`Backend::write`). Nothing was
        // written in it.
        held.abort()?;
        let writes_held = writes_held.elapsed();
        let size_after = file_size(&self.path);
        self.size
            .store(size_after, std::sync::atomic::Ordering::Relaxed);
        // The in-use figure is measured again when next asked.
        self.in_use.lock().expect("in-use lock").0 = 0;
        Ok(Defragmented {
            size_before,
            size_after,
            took: started.elapsed(),
            writes_held,
        })
    }

    /// Builds the copy at `tmp` and renames it over the file. Returns it
    /// with the old file's write transaction, which holds its writers until
    /// the caller has swapped the copy in, and when that hold began.
    fn copy_into(
        &self,
        tmp: &Path,
        between: &mut dyn FnMut(u32),
    ) -> Result<(Opened, WriteTransaction, Instant), BackendError> {
        let (mut db, syncs) = create(tmp)?;
        let mut after: Option<Vec<u8>> = None;
        let mut round = 0;
        loop {
            let rows = copy_key_rows(&*self.read()?, &db, &mut after)?;
            round += 1;
            between(round);
            if rows <= CATCH_UP_ROWS || round > MAX_CATCH_UP_ROUNDS {
                break;
            }
        }
        // Nothing else has the copy open: give back its free space now,
        // before writes are held.
        while db.compact()? {}
        let old = self.current();
        let held = old.begin_write()?;
        let holding = Instant::now();
        let rtx = old.begin_read()?;
        copy_key_rows(&rtx, &db, &mut after)?;
        let mut tx = db.begin_write()?;
        tx.set_durability(Durability::Immediate)
            .expect("durability is set before any write");
        for def in TABLES {
            let mut dst = tx.open_table(def)?;
            if def.name() == KEY_TABLE.name() {
                // Opened so that it exists, even with no rows.
                continue;
            }
            dst.retain(|_, _| false)?;
            for item in rtx.open_table(def)?.iter()? {
                let (k, v) = item?;
                dst.insert(k.value(), v.value())?;
            }
        }
        tx.commit()?;
        // On disk before it takes the file's name.
        syncs.wait()?;
        std::fs::rename(tmp, &self.path)?;
        if let Some(dir) = self.path.parent() {
            std::fs::File::open(dir)?.sync_all()?;
        }
        Ok(((db, syncs), held, holding))
    }
}

/// Copies the `key` rows of `rtx` after the key `after` (all when `None`)
/// into `db`, durably, in transactions of [`COPY_BATCH_BYTES`]; moves
/// `after` to the last row copied and returns how many were.
fn copy_key_rows(
    rtx: &ReadTransaction,
    db: &Database,
    after: &mut Option<Vec<u8>>,
) -> Result<usize, BackendError> {
    use std::ops::Bound;
    let src = rtx.open_table(KEY_TABLE)?;
    let lower = match after.as_deref() {
        Some(k) => Bound::Excluded(k),
        None => Bound::Unbounded,
    };
    let mut rows = src.range::<&[u8]>((lower, Bound::Unbounded))?.peekable();
    let mut copied = 0;
    let mut last = Vec::new();
    while rows.peek().is_some() {
        let mut tx = db.begin_write()?;
        tx.set_durability(Durability::Immediate)
            .expect("durability is set before any write");
        {
            let mut dst = tx.open_table(KEY_TABLE)?;
            let mut bytes = 0;
            for item in rows.by_ref() {
                let (k, v) = item?;
                dst.insert(k.value(), v.value())?;
                bytes += k.value().len() + v.value().len();
                last.clear();
                last.extend_from_slice(k.value());
                copied += 1;
                if bytes >= COPY_BATCH_BYTES {
                    break;
                }
            }
        }
        tx.commit()?;
    }
    if copied > 0 {
        *after = Some(last);
    }
    Ok(copied)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::schema::META_TABLE;
    use redb::ReadableTableMetadata;

    fn key(i: u64) -> [u8; 8] {
        i.to_be_bytes()
    }

    fn put_rows(b: &Backend, range: std::ops::Range<u64>, value: &[u8]) {
        let tx = b.write(false).unwrap();
        {
            let mut t = tx.open_table(KEY_TABLE).unwrap();
            for i in range {
                t.insert(key(i).as_slice(), value).unwrap();
            }
        }
        b.commit(tx).unwrap();
    }

    fn rows(b: &Backend) -> Vec<(Vec<u8>, Vec<u8>)> {
        let rtx = b.read().unwrap();
        let t = rtx.open_table(KEY_TABLE).unwrap();
        t.iter()
            .unwrap()
            .map(|r| {
                let (k, v) = r.unwrap();
                (k.value().to_vec(), v.value().to_vec())
            })
            .collect()
    }

    #[test]
    fn gives_back_freed_space_and_keeps_every_row_and_table() {
        let dir = tempfile::tempdir().unwrap();
        let b = Backend::open(&dir.path().join("db")).unwrap();
        put_rows(&b, 0..4000, &[7; 4096]);
        let tx = b.write(true).unwrap();
        {
            tx.open_table(KEY_TABLE)
                .unwrap()
                .retain(|k, _| k[7] % 100 == 0)
                .unwrap();
            tx.open_table(META_TABLE)
                .unwrap()
                .insert(
                    b"consistent_index".as_slice(),
                    42u64.to_be_bytes().as_slice(),
                )
                .unwrap();
        }
        b.commit(tx).unwrap();
        let before = rows(&b);
        let d = b.defragment().unwrap();
        assert_eq!(d.size_before, b.size_bytes().max(d.size_before));
        assert!(
            d.size_after * 4 < d.size_before,
            "{} bytes after, {} before",
            d.size_after,
            d.size_before
        );
        assert_eq!(b.size_bytes(), d.size_after);
        assert_eq!(rows(&b), before);
        let rtx = b.read().unwrap();
        let meta = rtx.open_table(META_TABLE).unwrap();
        assert_eq!(
            crate::schema::meta_u64(&meta, b"consistent_index").unwrap(),
            42
        );
        assert!(!dir.path().join("db.defrag").exists());
        drop((meta, rtx, b));
        // The copy is the file now: it opens again with the same rows.
        let b = Backend::open(&dir.path().join("db")).unwrap();
        assert_eq!(rows(&b), before);
    }

    #[test]
    fn an_empty_backend_keeps_its_tables() {
        let dir = tempfile::tempdir().unwrap();
        let b = Backend::open(&dir.path().join("db")).unwrap();
        b.defragment().unwrap();
        let rtx = b.read().unwrap();
        for def in TABLES {
            assert_eq!(rtx.open_table(def).unwrap().len().unwrap(), 0);
        }
    }

    #[test]
    fn writes_made_while_it_copies_are_carried_over() {
        let dir = tempfile::tempdir().unwrap();
        let b = Backend::open(&dir.path().join("db")).unwrap();
        put_rows(&b, 0..100, b"v");
        let mut rounds = 0;
        b.defragment_with(&mut |round| {
            rounds = round;
            put_rows(&b, 100 * round as u64..100 * round as u64 + 100, b"w");
            let tx = b.write(false).unwrap();
            tx.open_table(META_TABLE)
                .unwrap()
                .insert(b"term".as_slice(), (round as u64).to_be_bytes().as_slice())
                .unwrap();
            b.commit(tx).unwrap();
        })
        .unwrap();
        // Each round found the previous round's rows, until one found too
        // few to go on; the final round took the last ones.
        assert_eq!(rounds, 1);
        assert_eq!(rows(&b).len(), 200);
        let rtx = b.read().unwrap();
        let meta = rtx.open_table(META_TABLE).unwrap();
        assert_eq!(crate::schema::meta_u64(&meta, b"term").unwrap(), 1);
    }

    #[test]
    fn a_read_begun_before_the_swap_finishes_on_the_old_file() {
        let dir = tempfile::tempdir().unwrap();
        let b = Backend::open(&dir.path().join("db")).unwrap();
        put_rows(&b, 0..10, b"v");
        let old = b.read().unwrap();
        b.defragment().unwrap();
        put_rows(&b, 10..20, b"v");
        // The old file's database was dropped by the swap; its snapshot
        // still reads.
        assert_eq!(old.open_table(KEY_TABLE).unwrap().len().unwrap(), 10);
        assert_eq!(rows(&b).len(), 20);
    }

    #[test]
    fn a_writer_waiting_on_the_old_file_writes_to_the_new_one() {
        let dir = tempfile::tempdir().unwrap();
        let b = std::sync::Arc::new(Backend::open(&dir.path().join("db")).unwrap());
        put_rows(&b, 0..1000, &[1; 1024]);
        let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let writer = {
            let (b, stop) = (b.clone(), stop.clone());
            std::thread::spawn(move || {
                let mut next = 1000;
                while !stop.load(std::sync::atomic::Ordering::Acquire) {
                    put_rows(&b, next..next + 1, b"w");
                    next += 1;
                }
                next
            })
        };
        for _ in 0..3 {
            b.defragment().unwrap();
        }
        stop.store(true, std::sync::atomic::Ordering::Release);
        let next = writer.join().unwrap();
        let all = rows(&b);
        assert_eq!(all.len() as u64, next);
        assert_eq!(all.last().unwrap().0, key(next - 1));
    }
}

use std::fs::OpenOptions;
use std::os::unix::fs::FileExt;

use super::*;

fn entry(index: u64, data: &[u8]) -> EntryRef<'_> {
    EntryRef {
        index,
        term: 1,
        entry_type: 0,
        data,
        context: b"",
    }
}

fn snapshot() -> SnapshotRecord {
    SnapshotRecord {
        index: 0,
        term: 0,
        voters: vec![7],
        learners: vec![],
    }
}

fn meta() -> Metadata {
    Metadata {
        member_id: 7,
        cluster_id: 9,
    }
}

#[test]
fn entries_and_hard_state_survive_reopen() {
    let dir = tempfile::tempdir().unwrap();
    let mut wal = Wal::create(dir.path(), meta(), &snapshot()).unwrap();
    let hs = HardState {
        term: 2,
        vote: 7,
        commit: 2,
    };
    wal.save(Some(hs), [entry(1, b"a"), entry(2, b"b")])
        .unwrap();
    drop(wal);
    let (mut wal, c) = Wal::open(dir.path()).unwrap();
    assert_eq!(c.metadata, meta());
    assert_eq!(c.snapshot.voters, vec![7]);
    assert_eq!(c.hard_state, hs);
    assert_eq!(
        c.entries.iter().map(|e| e.data.clone()).collect::<Vec<_>>(),
        vec![b"a".to_vec(), b"b".to_vec()]
    );
    // A conflicting entry replaces index 2 and everything after it.
    wal.save(None, [entry(2, b"c")]).unwrap();
    drop(wal);
    let (_, c) = Wal::open(dir.path()).unwrap();
    assert_eq!(c.entries.len(), 2);
    assert_eq!(c.entries[1].data, b"c");
}

#[test]
fn torn_tail_is_cut_and_appends_continue() {
    let dir = tempfile::tempdir().unwrap();
    let mut wal = Wal::create(dir.path(), meta(), &snapshot()).unwrap();
    wal.save(None, [entry(1, b"first")]).unwrap();
    let torn_at = wal.offset;
    wal.save(None, [entry(2, b"second, cut short by a crash")])
        .unwrap();
    let path = segment::list(dir.path()).unwrap()[0].path.clone();
    drop(wal);
    // Keep only the first 10 bytes of the second record.
    let f = OpenOptions::new().write(true).open(&path).unwrap();
    f.write_all_at(&[0u8; 64], torn_at + 10).unwrap();
    drop(f);
    let (mut wal, c) = Wal::open(dir.path()).unwrap();
    assert_eq!(c.entries.len(), 1);
    wal.save(None, [entry(2, b"again")]).unwrap();
    drop(wal);
    let (_, c) = Wal::open(dir.path()).unwrap();
    assert_eq!(
        c.entries.iter().map(|e| e.index).collect::<Vec<_>>(),
        vec![1, 2]
    );
    assert_eq!(c.entries[1].data, b"again");
}

#[test]
fn corrupt_record_before_the_tail_is_an_error() {
    let dir = tempfile::tempdir().unwrap();
    let mut wal = Wal::create(dir.path(), meta(), &snapshot()).unwrap();
    let first_at = wal.offset;
    wal.save(None, [entry(1, b"first")]).unwrap();
    wal.save(None, [entry(2, b"second")]).unwrap();
    let path = segment::list(dir.path()).unwrap()[0].path.clone();
    drop(wal);
    let f = OpenOptions::new().write(true).open(&path).unwrap();
    f.write_all_at(b"X", first_at + 20).unwrap();
    drop(f);
    assert!(matches!(
        Wal::open(dir.path()),
        Err(WalError::Corrupt { .. })
    ));
}

#[test]
fn segments_rotate_and_read_back_in_order() {
    let dir = tempfile::tempdir().unwrap();
    let mut wal = Wal::create(dir.path(), meta(), &snapshot()).unwrap();
    let big = vec![0xab; 1024 * 1024];
    for i in 1..=70 {
        wal.save(
            Some(HardState {
                term: 1,
                vote: 7,
                commit: i,
            }),
            [entry(i, &big)],
        )
        .unwrap();
    }
    drop(wal);
    assert_eq!(segment::list(dir.path()).unwrap().len(), 2);
    let (_, c) = Wal::open(dir.path()).unwrap();
    assert_eq!(c.entries.len(), 70);
    assert_eq!(c.hard_state.commit, 70);
    assert!(c
        .entries
        .iter()
        .enumerate()
        .all(|(i, e)| e.index == i as u64 + 1));
}

#[test]
fn corrupt_length_before_acknowledged_records_is_an_error_not_a_torn_tail() {
    let dir = tempfile::tempdir().unwrap();
    let mut wal = Wal::create(dir.path(), meta(), &snapshot()).unwrap();
    let first_at = wal.offset;
    wal.save(None, [entry(1, b"first")]).unwrap();
    wal.save(None, [entry(2, b"second")]).unwrap();
    let path = segment::list(dir.path()).unwrap()[0].path.clone();
    drop(wal);
    // A length pointing far into the zero tail would hide entry 2.
    let f = OpenOptions::new().write(true).open(&path).unwrap();
    f.write_all_at(&(1_000_000u32).to_le_bytes(), first_at)
        .unwrap();
    drop(f);
    assert!(matches!(
        Wal::open(dir.path()),
        Err(WalError::Corrupt { .. })
    ));
}

#[test]
fn an_index_gap_is_an_error() {
    let dir = tempfile::tempdir().unwrap();
    let mut wal = Wal::create(dir.path(), meta(), &snapshot()).unwrap();
    wal.save(None, [entry(1, b"a"), entry(3, b"c")]).unwrap();
    drop(wal);
    assert!(matches!(
        Wal::open(dir.path()),
        Err(WalError::Corrupt { .. })
    ));
}

#[test]
fn segments_covered_by_a_snapshot_are_released_and_the_rest_reads_back() {
    let dir = tempfile::tempdir().unwrap();
    let mut wal = Wal::create(dir.path(), meta(), &snapshot()).unwrap();
    let big = vec![0xcd; 1024 * 1024];
    for i in 1..=140 {
        wal.save(
            Some(HardState {
                term: 1,
                vote: 7,
                commit: i,
            }),
            [entry(i, &big)],
        )
        .unwrap();
    }
    let segs = segment::list(dir.path()).unwrap();
    assert_eq!(segs.len(), 3);
    // A snapshot before the second segment's start releases nothing.
    assert_eq!(wal.release_to(segs[1].first_index - 2).unwrap(), 0);
    let at = segs[2].first_index - 1;
    assert_eq!(wal.release_to(at).unwrap(), 2);
    drop(wal);
    let snap = SnapshotRecord {
        index: at,
        term: 1,
        voters: vec![7],
        learners: vec![],
    };
    let (_, c) = Wal::open_from(dir.path(), snap).unwrap();
    assert_eq!(c.entries.first().unwrap().index, at + 1);
    assert_eq!(c.entries.last().unwrap().index, 140);
    assert_eq!(c.hard_state.commit, 140);
}

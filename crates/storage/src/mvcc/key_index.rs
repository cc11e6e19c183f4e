//! The key index: for every key, its generations of revisions (etcd's
//! `keyIndex` and `treeIndex`).
//!
//! Owned by the mvcc store and rebuilt from the backend at start-up. It
//! answers "which revision of key K was live at revision R" without touching
//! disk. A generation runs from a key's creation to its deletion (the
//! tombstone is the generation's last revision); the last generation of a
//! live key is open. Invariant: revisions within a key strictly increase.
//!
//! Memory: most keys have one generation with one retained revision, so
//! both live inline in the tree node (no allocation besides the key's
//! bytes); about 100 bytes a key in all.

use std::collections::{BTreeMap, HashSet};
use std::ops::Bound;

use smallvec::SmallVec;

use super::revision::Revision;

/// One life of a key: created at `created`, changed at each of `revs`.
#[derive(Clone, Debug, Default, PartialEq)]
struct Generation {
    /// Number of changes in this generation, including compacted ones.
    ver: i64,
    created: Revision,
    revs: SmallVec<[Revision; 1]>,
}

impl Generation {
    fn is_empty(&self) -> bool {
        self.revs.is_empty()
    }
}

/// The revisions of one key.
#[derive(Clone, Debug, Default)]
struct KeyIndex {
    generations: SmallVec<[Generation; 1]>,
}

/// What the index knows of a key at a revision.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct KeyAt {
    /// The revision of the key's last change at or before the asked one.
    pub modified: Revision,
    /// The revision that created the key's current generation.
    pub created: Revision,
    /// The key's version: changes since creation, counting the creation.
    pub version: i64,
}

impl KeyIndex {
    fn put(&mut self, rev: Revision) {
        if self.generations.is_empty() {
            self.generations.push(Generation::default());
        }
        let g = self.generations.last_mut().expect("one generation");
        if g.is_empty() {
            g.created = rev;
        }
        g.revs.push(rev);
        g.ver += 1;
    }

    /// Rebuilds from a stored record, which carries the creation revision
    /// and version even when older records were compacted away.
    fn restore(&mut self, rev: Revision, created_main: i64, version: i64) {
        if self.generations.last().is_none_or(Generation::is_empty) {
            if self.generations.is_empty() {
                self.generations.push(Generation::default());
            }
            let g = self.generations.last_mut().expect("one generation");
            g.created = Revision::new(created_main, 0);
        }
        let g = self.generations.last_mut().expect("one generation");
        g.revs.push(rev);
        g.ver = version;
    }

    fn is_live(&self) -> bool {
        self.generations.last().is_some_and(|g| !g.is_empty())
    }

    fn tombstone(&mut self, rev: Revision) {
        self.put(rev);
        self.generations.push(Generation::default());
    }

    /// The generation live at `rev`, or `None` if the key did not exist then.
    fn find_generation(&self, rev: i64) -> Option<&Generation> {
        let last = self.generations.len().checked_sub(1)?;
        for (i, g) in self.generations.iter().enumerate().rev() {
            if g.is_empty() {
                continue;
            }
            if i != last && g.revs.last().expect("not empty").main <= rev {
                // The generation ended (tombstone) at or before `rev`.
                return None;
            }
            if g.revs[0].main <= rev {
                return Some(g);
            }
        }
        None
    }

    fn get(&self, at_rev: i64) -> Option<KeyAt> {
        let g = self.find_generation(at_rev)?;
        let n = g.revs.iter().rposition(|r| r.main <= at_rev)?;
        Some(KeyAt {
            modified: g.revs[n],
            created: g.created,
            version: g.ver - (g.revs.len() - n - 1) as i64,
        })
    }

    /// Where compacting at `at_rev` cuts (etcd's `doCompact`): the first
    /// generation that survives (closed ones whose tombstone is at or below
    /// `at_rev` do not) and, in it, the position of the latest revision at
    /// or below `at_rev`. `None` for a key with no generation.
    fn compaction_point(&self, at_rev: i64) -> Option<(usize, Option<usize>)> {
        let last = self.generations.len().checked_sub(1)?;
        let mut gi = 0;
        while gi < last
            && self.generations[gi]
                .revs
                .last()
                .is_some_and(|t| t.main <= at_rev)
        {
            gi += 1;
        }
        let n = self.generations[gi]
            .revs
            .iter()
            .rposition(|r| r.main <= at_rev);
        Some((gi, n))
    }

    /// Whether the kept revision at `n` of generation `gi` is a closed
    /// generation's tombstone, which compaction drops with its generation.
    fn only_tombstone_left(&self, gi: usize, n: usize) -> bool {
        gi + 1 != self.generations.len() && self.generations[gi].revs.len() - n == 1
    }

    /// The revision [`KeyIndex::compact`] would keep at `at_rev`, if any.
    fn keep(&self, at_rev: i64) -> Option<Revision> {
        let (gi, n) = self.compaction_point(at_rev)?;
        let n = n?;
        (!self.only_tombstone_left(gi, n)).then(|| self.generations[gi].revs[n])
    }

    /// Drops revisions at or below `at_rev` except the latest live one,
    /// which is added to `keep`. Returns true when nothing is left.
    fn compact(&mut self, at_rev: i64, keep: &mut HashSet<Revision>) -> bool {
        let Some((mut gi, n)) = self.compaction_point(at_rev) else {
            return true;
        };
        if let Some(n) = n {
            if self.only_tombstone_left(gi, n) {
                gi += 1;
            } else {
                let g = &mut self.generations[gi];
                keep.insert(g.revs[n]);
                g.revs.drain(..n);
                g.revs.shrink_to_fit();
            }
        }
        self.generations.drain(..gi);
        // A key down to one revision goes back inline.
        self.generations.shrink_to_fit();
        self.generations.iter().all(Generation::is_empty)
    }
}

/// The end of a key range, as etcd's `range_end` encodes it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RangeEnd<'a> {
    /// Only the key itself (`range_end` empty).
    Single,
    /// Every key at or after the key (`range_end` is `\0`).
    Unbounded,
    /// Keys in `[key, end)`.
    Before(&'a [u8]),
}

impl<'a> RangeEnd<'a> {
    /// Interprets a request's `range_end` field.
    pub fn from_request(range_end: &'a [u8]) -> Self {
        match range_end {
            [] => RangeEnd::Single,
            [0] => RangeEnd::Unbounded,
            end => RangeEnd::Before(end),
        }
    }

    /// Whether `key` lies in the range that starts at `start`.
    pub fn contains(&self, start: &[u8], key: &[u8]) -> bool {
        match self {
            RangeEnd::Single => key == start,
            RangeEnd::Unbounded => key >= start,
            RangeEnd::Before(end) => key >= start && key < *end,
        }
    }
}

/// The index over all keys (etcd's `treeIndex`).
#[derive(Default)]
pub struct TreeIndex {
    keys: BTreeMap<Box<[u8]>, KeyIndex>,
}

impl TreeIndex {
    /// Records a put of `key` at `rev`.
    pub fn put(&mut self, key: &[u8], rev: Revision) {
        match self.keys.get_mut(key) {
            Some(ki) => ki.put(rev),
            None => {
                let mut ki = KeyIndex::default();
                ki.put(rev);
                self.keys.insert(key.into(), ki);
            }
        }
    }

    /// Records the deletion of a live `key` at `rev`; false if it was not live.
    pub fn tombstone(&mut self, key: &[u8], rev: Revision) -> bool {
        match self.keys.get_mut(key) {
            Some(ki) if ki.is_live() => {
                ki.tombstone(rev);
                true
            }
            _ => false,
        }
    }

    /// Replays one stored record at start-up, in revision order.
    pub fn restore(
        &mut self,
        key: &[u8],
        rev: Revision,
        tombstone: bool,
        created_main: i64,
        ver: i64,
    ) {
        if tombstone {
            // A tombstone whose puts were compacted away deletes nothing.
            if let Some(ki) = self.keys.get_mut(key).filter(|ki| ki.is_live()) {
                ki.tombstone(rev);
            }
        } else {
            self.keys
                .entry(key.into())
                .or_default()
                .restore(rev, created_main, ver);
        }
    }

    /// The state of `key` at revision `at_rev`, if it was live then.
    pub fn get(&self, key: &[u8], at_rev: i64) -> Option<KeyAt> {
        self.keys.get(key)?.get(at_rev)
    }

    /// Keys live at `at_rev` in the range, in key order, up to `limit`
    /// (0: no limit), and the number of all such keys.
    pub fn range(
        &self,
        key: &[u8],
        end: RangeEnd<'_>,
        at_rev: i64,
        limit: usize,
    ) -> (Vec<(Vec<u8>, KeyAt)>, usize) {
        let mut out = Vec::new();
        let mut total = 0;
        let mut visit = |k: &[u8], ki: &KeyIndex| {
            if let Some(at) = ki.get(at_rev) {
                total += 1;
                if limit == 0 || out.len() < limit {
                    out.push((k.to_vec(), at));
                }
            }
        };
        match end {
            RangeEnd::Single => {
                if let Some((k, ki)) = self.keys.get_key_value(key) {
                    visit(k, ki);
                }
            }
            RangeEnd::Unbounded => {
                for (k, ki) in self
                    .keys
                    .range::<[u8], _>((Bound::Included(key), Bound::Unbounded))
                {
                    visit(k, ki);
                }
            }
            RangeEnd::Before(end) => {
                if key < end {
                    for (k, ki) in self
                        .keys
                        .range::<[u8], _>((Bound::Included(key), Bound::Excluded(end)))
                    {
                        visit(k, ki);
                    }
                }
            }
        }
        (out, total)
    }

    /// The revisions at or below `at_rev` that compacting there keeps (the
    /// latest live one of each key), without changing the index.
    pub fn keep(&self, at_rev: i64) -> HashSet<Revision> {
        self.keys
            .values()
            .filter_map(|ki| ki.keep(at_rev))
            .collect()
    }

    /// Compacts every key at `at_rev`; returns the revisions at or below it
    /// that must stay in the backend (the latest live one of each key).
    pub fn compact(&mut self, at_rev: i64) -> HashSet<Revision> {
        let mut keep = HashSet::new();
        self.keys.retain(|_, ki| !ki.compact(at_rev, &mut keep));
        keep
    }

    /// Number of keys with any retained revision.
    pub fn len(&self) -> usize {
        self.keys.len()
    }

    /// Whether no key has a retained revision.
    pub fn is_empty(&self) -> bool {
        self.keys.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn r(main: i64) -> Revision {
        Revision::new(main, 0)
    }

    #[test]
    fn get_walks_generations() {
        let mut ti = TreeIndex::default();
        ti.put(b"a", r(2));
        ti.put(b"a", r(4));
        assert!(ti.tombstone(b"a", r(6)));
        ti.put(b"a", r(8));
        assert_eq!(ti.get(b"a", 1), None);
        let at = ti.get(b"a", 5).unwrap();
        assert_eq!((at.modified, at.created, at.version), (r(4), r(2), 2));
        assert_eq!(ti.get(b"a", 6), None);
        assert_eq!(ti.get(b"a", 7), None);
        let at = ti.get(b"a", 9).unwrap();
        assert_eq!((at.modified, at.created, at.version), (r(8), r(8), 1));
        assert!(!ti.tombstone(b"b", r(9)));
    }

    #[test]
    fn compaction_keeps_latest_live_revision_only() {
        let mut ti = TreeIndex::default();
        ti.put(b"a", r(2));
        ti.put(b"a", r(3));
        ti.put(b"b", r(4));
        assert!(ti.tombstone(b"b", r(5)));
        ti.put(b"a", r(6));
        assert_eq!(ti.keep(5), HashSet::from([r(3)]));
        let keep = ti.compact(5);
        assert_eq!(keep, HashSet::from([r(3)]));
        assert_eq!(ti.len(), 1, "b's only generation ended in a tombstone");
        assert_eq!(ti.get(b"a", 5).unwrap().modified, r(3));
        assert_eq!(ti.get(b"a", 6).unwrap().version, 3);
    }

    #[test]
    fn a_key_with_one_revision_needs_no_allocation_beyond_its_bytes() {
        assert_eq!(std::mem::size_of::<KeyIndex>(), 56);
        let mut ki = KeyIndex::default();
        ki.put(r(2));
        assert!(!ki.generations.spilled() && !ki.generations[0].revs.spilled());
        // Deleted, put again, then compacted down to the live revision:
        // inline again.
        ki.put(r(3));
        ki.tombstone(r(4));
        ki.put(r(5));
        assert!(ki.generations.spilled());
        ki.compact(5, &mut HashSet::new());
        assert!(!ki.generations.spilled() && !ki.generations[0].revs.spilled());
    }

    #[test]
    fn range_counts_all_but_returns_limit() {
        let mut ti = TreeIndex::default();
        for (i, k) in [b"a", b"b", b"c", b"d"].iter().enumerate() {
            ti.put(*k, r(i as i64 + 2));
        }
        let (kvs, total) = ti.range(b"b", RangeEnd::Unbounded, 10, 2);
        assert_eq!(total, 3);
        assert_eq!(kvs.len(), 2);
        assert_eq!(kvs[0].0, b"b");
        let (kvs, total) = ti.range(b"a", RangeEnd::Before(b"c"), 3, 0);
        assert_eq!((kvs.len(), total), (2, 2));
    }
}

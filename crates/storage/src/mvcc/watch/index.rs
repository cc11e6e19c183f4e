//! Which watchers an event's key may concern, found without looking at
//! the others (the role of etcd's `watcherGroup`: its key map and interval
//! tree).
//!
//! Watchers on one key are kept in a map by key, and prefix watchers (a
//! `range_end` that is the key's prefix end, as `etcdctl watch --prefix`
//! and every Kubernetes list-watch ask) in a map by prefix, probed once
//! for each prefix length in use; only the rare other ranges (from a key
//! on, or `[key, end)` that is no prefix) are checked one by one. So a
//! revision costs its own watchers, plus the distinct prefix lengths, plus
//! the other ranges, whatever the number of watchers on unrelated keys.
//! The index returns candidates: the caller still checks each watcher's
//! range and filters.

use std::collections::{BTreeMap, HashMap};

use super::WatchSpec;

/// Where a watcher is indexed, worked out from its spec.
enum Slot<'a> {
    Key(&'a [u8]),
    Prefix(&'a [u8]),
    Range,
}

fn slot(spec: &WatchSpec) -> Slot<'_> {
    match spec.range_end.as_slice() {
        [] => Slot::Key(&spec.key),
        // Every key: the empty prefix.
        [0] if spec.key.is_empty() => Slot::Prefix(&[]),
        end if is_prefix_end(&spec.key, end) => Slot::Prefix(&spec.key),
        _ => Slot::Range,
    }
}

/// Whether `end` is clientv3's `GetPrefixRangeEnd(key)`: the key with its
/// trailing `0xff` bytes dropped and the last other byte incremented. A
/// key of only `0xff` bytes has no prefix end (its watch runs to the end
/// of the key space, a plain range).
fn is_prefix_end(key: &[u8], end: &[u8]) -> bool {
    let Some(last) = key.iter().rposition(|b| *b != 0xff) else {
        return false;
    };
    end.len() == last + 1 && end[..last] == key[..last] && end[last] == key[last] + 1
}

/// The watchers of a hub by the keys they watch; ids are the hub's.
#[derive(Default)]
pub(super) struct WatchIndex {
    keys: HashMap<Box<[u8]>, Vec<u64>>,
    prefixes: HashMap<Box<[u8]>, Vec<u64>>,
    /// Prefix length -> how many prefixes of that length have watchers.
    prefix_lens: BTreeMap<usize, usize>,
    ranges: Vec<u64>,
}

impl WatchIndex {
    /// Indexes watcher `id` watching `spec`.
    pub(super) fn insert(&mut self, id: u64, spec: &WatchSpec) {
        match slot(spec) {
            Slot::Key(k) => self.keys.entry(k.into()).or_default().push(id),
            Slot::Prefix(p) => {
                let ids = self.prefixes.entry(p.into()).or_default();
                if ids.is_empty() {
                    *self.prefix_lens.entry(p.len()).or_default() += 1;
                }
                ids.push(id);
            }
            Slot::Range => self.ranges.push(id),
        }
    }

    /// Removes watcher `id`, indexed with the same `spec`.
    pub(super) fn remove(&mut self, id: u64, spec: &WatchSpec) {
        fn take(ids: &mut Vec<u64>, id: u64) {
            if let Some(i) = ids.iter().position(|x| *x == id) {
                ids.swap_remove(i);
            }
        }
        match slot(spec) {
            Slot::Key(k) => {
                if let Some(ids) = self.keys.get_mut(k) {
                    take(ids, id);
                    if ids.is_empty() {
                        self.keys.remove(k);
                    }
                }
            }
            Slot::Prefix(p) => {
                if let Some(ids) = self.prefixes.get_mut(p) {
                    take(ids, id);
                    if ids.is_empty() {
                        self.prefixes.remove(p);
                        let n = self
                            .prefix_lens
                            .get_mut(&p.len())
                            .expect("a counted length");
                        *n -= 1;
                        if *n == 0 {
                            self.prefix_lens.remove(&p.len());
                        }
                    }
                }
            }
            Slot::Range => take(&mut self.ranges, id),
        }
    }

    /// Calls `f` with every watcher whose range may hold `key`: those on
    /// the key, on one of its prefixes, and those on other ranges.
    pub(super) fn candidates(&self, key: &[u8], mut f: impl FnMut(u64)) {
        if let Some(ids) = self.keys.get(key) {
            ids.iter().for_each(|id| f(*id));
        }
        for len in self.prefix_lens.keys().take_while(|len| **len <= key.len()) {
            if let Some(ids) = self.prefixes.get(&key[..*len]) {
                ids.iter().for_each(|id| f(*id));
            }
        }
        self.ranges.iter().for_each(|id| f(*id));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(key: &[u8], end: &[u8]) -> WatchSpec {
        WatchSpec {
            key: key.into(),
            range_end: end.into(),
            no_put: false,
            no_delete: false,
            progress_notify: false,
        }
    }

    fn found(ix: &WatchIndex, key: &[u8]) -> Vec<u64> {
        let mut out = Vec::new();
        ix.candidates(key, |id| out.push(id));
        out.sort_unstable();
        out
    }

    #[test]
    fn prefix_ends_are_recognised_as_clientv3_makes_them() {
        assert!(is_prefix_end(b"abc", b"abd"));
        assert!(is_prefix_end(b"a\xff", b"b"));
        assert!(is_prefix_end(b"a\xfe\xff", b"a\xff"));
        assert!(!is_prefix_end(b"abc", b"abe"));
        assert!(!is_prefix_end(b"abc", b"abd\0"));
        assert!(!is_prefix_end(b"\xff", b"\0"));
        assert!(!is_prefix_end(b"", b"\0"));
    }

    #[test]
    fn keys_prefixes_and_ranges_find_their_watchers_and_no_others() {
        let mut ix = WatchIndex::default();
        let specs = [
            (1, spec(b"a", b"")),
            (2, spec(b"a", b"b")),
            (3, spec(b"ab", b"ac")),
            (4, spec(b"", b"\0")),
            (5, spec(b"b", b"\0")),
            (6, spec(b"x", b"")),
            (7, spec(b"a", b"")),
        ];
        for (id, s) in &specs {
            ix.insert(*id, s);
        }
        assert_eq!(found(&ix, b"a"), vec![1, 2, 4, 5, 7]);
        assert_eq!(found(&ix, b"abc"), vec![2, 3, 4, 5]);
        assert_eq!(found(&ix, b"x"), vec![4, 5, 6]);
        for (id, s) in &specs {
            ix.remove(*id, s);
        }
        assert_eq!(found(&ix, b"a"), Vec::<u64>::new());
        assert!(ix.keys.is_empty() && ix.prefixes.is_empty() && ix.prefix_lens.is_empty());
    }

    #[test]
    fn a_prefix_length_stays_probed_while_any_prefix_of_it_has_watchers() {
        let mut ix = WatchIndex::default();
        let (p, q) = (spec(b"ab", b"ac"), spec(b"xy", b"xz"));
        ix.insert(1, &p);
        ix.insert(2, &q);
        ix.remove(1, &p);
        assert_eq!(found(&ix, b"xyz"), vec![2]);
        assert_eq!(ix.prefix_lens.get(&2), Some(&1));
    }
}

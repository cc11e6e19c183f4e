//! A user's key permissions as sets of key intervals (etcd's
//! `auth/range_perm_cache.go`): the union of its roles' READ and WRITE
//! permissions, merged into sorted, disjoint intervals, so a request
//! range is allowed when one merged interval covers it, even if several
//! permissions together make that interval.
//!
//! Shapes, as etcd's: a permission with no range end is the one key
//! `[key, key\0)`; a range end of `"\0"` means every key from `key` on;
//! otherwise `[key, range_end)`. A request for one key (no range end) is
//! allowed when an interval holds the key; a request range `[key, end)`,
//! `end` `"\0"` meaning unbounded, must be covered whole.

use api::authpb::{permission::Type, Role};

/// An interval's end: a key (exclusive), or none (every key after).
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
enum End {
    Key(Vec<u8>),
    Unbounded,
}

/// Sorted, disjoint, non-touching intervals `[begin, end)`.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
struct Intervals(Vec<(Vec<u8>, End)>);

impl Intervals {
    fn from_unsorted(mut v: Vec<(Vec<u8>, End)>) -> Intervals {
        v.sort();
        let mut out: Vec<(Vec<u8>, End)> = Vec::with_capacity(v.len());
        for (begin, end) in v {
            if let Some(last) = out.last_mut() {
                // Touching intervals merge: [a, b) and [b, c) cover [a, c).
                if End::Key(begin.clone()) <= last.1 {
                    if end > last.1 {
                        last.1 = end;
                    }
                    continue;
                }
            }
            out.push((begin, end));
        }
        Intervals(out)
    }

    /// The interval that starts at or before `key`, if any.
    fn around(&self, key: &[u8]) -> Option<&(Vec<u8>, End)> {
        let at = self.0.partition_point(|(b, _)| b.as_slice() <= key);
        at.checked_sub(1).map(|i| &self.0[i])
    }

    fn holds_key(&self, key: &[u8]) -> bool {
        self.around(key).is_some_and(|(_, end)| match end {
            End::Unbounded => true,
            End::Key(e) => key < e.as_slice(),
        })
    }

    fn covers(&self, key: &[u8], end: &End) -> bool {
        self.around(key).is_some_and(|(_, e)| e >= end)
    }
}

/// What one user may do.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct UserPerms {
    /// Holds the `root` role: may do everything.
    pub root: bool,
    read: Intervals,
    write: Intervals,
}

/// READ or WRITE, what a request needs on its keys.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Need {
    /// Reading: Range, compares, watches, `prev_kv`.
    Read,
    /// Writing: Put, DeleteRange, revoking a lease.
    Write,
}

impl UserPerms {
    /// The union of `roles` (the user's, found in the store), `root`
    /// meaning the user holds the root role.
    pub fn of<'a>(roles: impl Iterator<Item = &'a Role>, root: bool) -> UserPerms {
        let (mut read, mut write) = (Vec::new(), Vec::new());
        for role in roles {
            for p in &role.key_permission {
                let end = if p.range_end.is_empty() {
                    let mut e = p.key.clone();
                    e.push(0);
                    End::Key(e)
                } else if p.range_end == [0] {
                    End::Unbounded
                } else {
                    End::Key(p.range_end.clone())
                };
                let t = Type::try_from(p.perm_type).unwrap_or(Type::Read);
                if matches!(t, Type::Read | Type::Readwrite) {
                    read.push((p.key.clone(), end.clone()));
                }
                if matches!(t, Type::Write | Type::Readwrite) {
                    write.push((p.key.clone(), end));
                }
            }
        }
        UserPerms {
            root,
            read: Intervals::from_unsorted(read),
            write: Intervals::from_unsorted(write),
        }
    }

    /// Whether the user may `need` on `[key, range_end)` (a single key
    /// when `range_end` is empty; `"\0"` is every key from `key` on).
    pub fn allows(&self, need: Need, key: &[u8], range_end: &[u8]) -> bool {
        if self.root {
            return true;
        }
        let set = match need {
            Need::Read => &self.read,
            Need::Write => &self.write,
        };
        if range_end.is_empty() {
            return set.holds_key(key);
        }
        let end = if range_end == [0] {
            End::Unbounded
        } else {
            End::Key(range_end.to_vec())
        };
        set.covers(key, &end)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use api::authpb::Permission;

    fn role(perms: &[(&str, &str, Type)]) -> Role {
        Role {
            name: b"r".to_vec(),
            key_permission: perms
                .iter()
                .map(|(k, e, t)| Permission {
                    perm_type: *t as i32,
                    key: k.as_bytes().to_vec(),
                    range_end: e.as_bytes().to_vec(),
                })
                .collect(),
        }
    }

    #[test]
    fn intervals_merge_and_cover_as_etcds() {
        let r = role(&[
            ("a", "c", Type::Read),
            ("c", "e", Type::Readwrite),
            ("k", "", Type::Write),
            ("x", "\0", Type::Read),
        ]);
        let p = UserPerms::of([&r].into_iter(), false);
        assert!(p.allows(Need::Read, b"a", b"e"), "touching ranges merge");
        assert!(p.allows(Need::Read, b"b", b""));
        assert!(!p.allows(Need::Read, b"a", b"f"));
        assert!(!p.allows(Need::Read, b"e", b""));
        assert!(p.allows(Need::Write, b"d", b""));
        assert!(!p.allows(Need::Write, b"b", b""));
        assert!(p.allows(Need::Write, b"k", b""));
        assert!(p.allows(Need::Write, b"k", b"k\0"));
        assert!(!p.allows(Need::Write, b"k", b"l"));
        assert!(!p.allows(Need::Write, b"k0", b""));
        assert!(p.allows(Need::Read, b"x", b"\0"));
        assert!(p.allows(Need::Read, b"zzz", b""));
        assert!(!p.allows(Need::Read, b"w", b"\0"));
        let none = UserPerms::default();
        assert!(!none.allows(Need::Read, b"a", b""));
        let root = UserPerms::of(std::iter::empty(), true);
        assert!(root.allows(Need::Write, b"\0", b"\0"));
    }
}

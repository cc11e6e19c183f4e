//! Reading a bbolt file: the meta pages, then the tree of buckets walked
//! from the root (never the pages in order: etcd on Linux keeps no
//! freelist, so free pages hold stale data). Every page number is checked
//! against the file and the meta's high-water mark before it is read, and
//! a walk visits at most that many pages, so a corrupt file is an error,
//! never a panic or a loop.

use super::{
    BoltError, BRANCH_PAGE, BUCKET_ELEMENT, BUCKET_HEADER, ELEMENT, LEAF_PAGE, MAGIC, PAGE_HEADER,
    VERSION,
};

/// Levels a tree may have: bbolt's trees of billions of keys have fewer
/// than ten.
const MAX_DEPTH: u32 = 32;

/// The fields of a meta page that a reader needs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Meta {
    /// Bytes per page.
    pub page_size: u32,
    /// The page of the root bucket's tree.
    pub root: u64,
    /// Pages in use: the file holds at least this many.
    pub pgid: u64,
    /// The transaction that wrote it.
    pub txid: u64,
}

fn u16_at(b: &[u8], at: usize) -> u16 {
    u16::from_le_bytes(b[at..at + 2].try_into().expect("2 bytes"))
}

fn u32_at(b: &[u8], at: usize) -> u32 {
    u32::from_le_bytes(b[at..at + 4].try_into().expect("4 bytes"))
}

fn u64_at(b: &[u8], at: usize) -> u64 {
    u64::from_le_bytes(b[at..at + 8].try_into().expect("8 bytes"))
}

/// Decodes and checks the meta page at the start of `page` (bbolt's
/// `meta.validate`).
fn meta_of(page: &[u8]) -> Result<Meta, BoltError> {
    if page.len() < PAGE_HEADER + 64 {
        return Err(BoltError::TooSmall);
    }
    let m = &page[PAGE_HEADER..PAGE_HEADER + 64];
    if u32_at(m, 0) != MAGIC {
        return Err(BoltError::Invalid);
    }
    if u32_at(m, 4) != VERSION {
        return Err(BoltError::VersionMismatch);
    }
    if u64_at(m, 56) != super::checksum(&m[..56]) {
        return Err(BoltError::Checksum);
    }
    Ok(Meta {
        page_size: u32_at(m, 8),
        root: u64_at(m, 16),
        pgid: u64_at(m, 40),
        txid: u64_at(m, 48),
    })
}

/// A bbolt file in memory.
pub struct Bolt<'a> {
    data: &'a [u8],
    meta: Meta,
}

/// Where a bucket's keys are: a tree of pages, or inline in its value.
#[derive(Clone, Copy, Debug)]
enum Root<'a> {
    Page(u64),
    Inline(&'a [u8]),
}

/// A top-level bucket.
#[derive(Clone, Copy, Debug)]
pub struct Bucket<'a> {
    /// Its name.
    pub name: &'a [u8],
    root: Root<'a>,
}

/// One element of a leaf: a key and its value, or a nested bucket.
struct Element<'a> {
    bucket: bool,
    key: &'a [u8],
    value: &'a [u8],
}

impl<'a> Bolt<'a> {
    /// Opens the bbolt image `data` (a snapshot without its trailer, or
    /// a data dir's `member/snap/db`): picks the valid meta with the higher
    /// transaction id, as bbolt does. Errors: too small, not bbolt, another
    /// version, both metas corrupt, a file shorter than its meta says.
    pub fn open(data: &'a [u8]) -> Result<Bolt<'a>, BoltError> {
        let first = meta_of(data);
        let page_size = match &first {
            Ok(m) => m.page_size as usize,
            // bbolt probes for the second meta at 1 KiB << i.
            Err(_) => (0..15)
                .map(|i| 1024usize << i)
                .find(|&ps| data.get(ps..).is_some_and(|p| meta_of(p).is_ok()))
                .ok_or_else(|| first.clone().unwrap_err())?,
        };
        if !(512..=1 << 16).contains(&page_size) || !page_size.is_power_of_two() {
            return Err(BoltError::Invalid);
        }
        if data.len() < 2 * page_size {
            return Err(BoltError::TooSmall);
        }
        let second = data
            .get(page_size..)
            .map_or(Err(BoltError::TooSmall), meta_of);
        let meta = match (first, second) {
            (Ok(a), Ok(b)) => {
                if b.txid > a.txid {
                    b
                } else {
                    a
                }
            }
            (Ok(a), Err(_)) | (Err(_), Ok(a)) => a,
            (Err(e), Err(_)) => return Err(e),
        };
        if meta.page_size as usize != page_size || meta.pgid < 2 {
            return Err(BoltError::Invalid);
        }
        let size = meta.pgid.checked_mul(meta.page_size as u64);
        if size.is_none_or(|s| s > data.len() as u64) {
            return Err(BoltError::Truncated {
                needed: size.unwrap_or(u64::MAX),
                have: data.len() as u64,
            });
        }
        Ok(Bolt { data, meta })
    }

    /// The meta in use.
    pub fn meta(&self) -> Meta {
        self.meta
    }

    /// The bytes the database takes: pages in use times the page size
    /// (bbolt's `Tx.Size`).
    pub fn size(&self) -> u64 {
        self.meta.pgid * self.meta.page_size as u64
    }

    /// The bytes of page `id` with its overflow pages, checked to be in the
    /// file, below the high-water mark, and to carry its own number.
    fn page(&self, id: u64) -> Result<&'a [u8], BoltError> {
        let ps = self.meta.page_size as usize;
        if id < 2 || id >= self.meta.pgid {
            return Err(BoltError::Page(id, "out of range"));
        }
        let start = id as usize * ps;
        let head = &self.data[start..start + PAGE_HEADER];
        if u64_at(head, 0) != id {
            return Err(BoltError::Page(id, "holds another page's id"));
        }
        let overflow = u32_at(head, 12) as u64;
        if id + overflow >= self.meta.pgid {
            return Err(BoltError::Page(id, "overflows the file"));
        }
        Ok(&self.data[start..start + (1 + overflow as usize) * ps])
    }

    /// The top-level buckets, in name order.
    pub fn buckets(&self) -> Result<Vec<Bucket<'a>>, BoltError> {
        let mut out = Vec::new();
        let mut budget = self.meta.pgid;
        self.walk(Root::Page(self.meta.root), &mut budget, 0, &mut |e| {
            if !e.bucket {
                return Err(BoltError::Page(self.meta.root, "has a key outside buckets"));
            }
            out.push(Bucket {
                name: e.key,
                root: bucket_root(e.value)?,
            });
            Ok(())
        })?;
        Ok(out)
    }

    /// Calls `f` with every key and value of `bucket`, in key order. A
    /// nested bucket (etcd makes none) is an error.
    pub fn for_each<E: From<BoltError>>(
        &self,
        bucket: &Bucket<'a>,
        mut f: impl FnMut(&'a [u8], &'a [u8]) -> Result<(), E>,
    ) -> Result<(), E> {
        let mut budget = self.meta.pgid;
        let mut failed = None;
        let walked = self.walk(bucket.root, &mut budget, 0, &mut |e| {
            if e.bucket {
                return Err(BoltError::Nested);
            }
            f(e.key, e.value).map_err(|err| {
                failed = Some(err);
                BoltError::Stopped
            })
        });
        match (walked, failed) {
            (_, Some(err)) => Err(err),
            (Err(e), None) => Err(e.into()),
            (Ok(()), None) => Ok(()),
        }
    }

    /// Visits the leaf elements under `root` in order; `budget` bounds the
    /// pages visited (a cycle exhausts it), [`MAX_DEPTH`] the levels.
    fn walk(
        &self,
        root: Root<'a>,
        budget: &mut u64,
        depth: u32,
        f: &mut dyn FnMut(Element<'a>) -> Result<(), BoltError>,
    ) -> Result<(), BoltError> {
        if depth > MAX_DEPTH {
            return Err(BoltError::Bucket("tree deeper than any bbolt makes"));
        }
        let (id, page) = match root {
            Root::Inline(page) => (0, page),
            Root::Page(id) => {
                if *budget == 0 {
                    return Err(BoltError::Page(id, "is part of a cycle"));
                }
                *budget -= 1;
                (id, self.page(id)?)
            }
        };
        let flags = u16_at(page, 8);
        let count = u16_at(page, 10) as usize;
        if PAGE_HEADER + count * ELEMENT > page.len() {
            return Err(BoltError::Page(id, "has more elements than room"));
        }
        let mut last: Option<&[u8]> = None;
        for i in 0..count {
            let at = PAGE_HEADER + i * ELEMENT;
            let (key, element) = match flags {
                LEAF_PAGE => {
                    let pos = u32_at(page, at + 4) as usize;
                    let (ks, vs) = (
                        u32_at(page, at + 8) as usize,
                        u32_at(page, at + 12) as usize,
                    );
                    let key =
                        slice(page, at + pos, ks).ok_or(BoltError::Page(id, "key out of page"))?;
                    let value = slice(page, at + pos + ks, vs)
                        .ok_or(BoltError::Page(id, "value out of page"))?;
                    let bucket = u32_at(page, at) & BUCKET_ELEMENT != 0;
                    (key, Some(Element { bucket, key, value }))
                }
                BRANCH_PAGE if matches!(root, Root::Page(_)) => {
                    let pos = u32_at(page, at) as usize;
                    let ks = u32_at(page, at + 4) as usize;
                    let key =
                        slice(page, at + pos, ks).ok_or(BoltError::Page(id, "key out of page"))?;
                    self.walk(Root::Page(u64_at(page, at + 8)), budget, depth + 1, f)?;
                    (key, None)
                }
                _ => return Err(BoltError::Page(id, "is neither a leaf nor a branch")),
            };
            if last.is_some_and(|l| l >= key) {
                return Err(BoltError::Page(id, "has keys out of order"));
            }
            last = Some(key);
            if let Some(e) = element {
                f(e)?;
            }
        }
        Ok(())
    }
}

/// `len` bytes of `page` at `at`, if they are inside it.
fn slice(page: &[u8], at: usize, len: usize) -> Option<&[u8]> {
    page.get(at..at.checked_add(len)?)
}

/// Where the keys of the bucket whose value is `value` are.
fn bucket_root(value: &[u8]) -> Result<Root<'_>, BoltError> {
    if value.len() < BUCKET_HEADER {
        return Err(BoltError::Bucket("value shorter than its header"));
    }
    match u64_at(value, 0) {
        0 => {
            let page = &value[BUCKET_HEADER..];
            if page.len() < PAGE_HEADER || u16_at(page, 8) != LEAF_PAGE {
                return Err(BoltError::Bucket("inline page is not a leaf"));
            }
            Ok(Root::Inline(page))
        }
        id => Ok(Root::Page(id)),
    }
}

/// Whether `page` is a meta page (for tests of what a writer produced).
#[cfg(test)]
pub(super) fn is_meta(page: &[u8]) -> bool {
    u16_at(page, 8) == super::META_PAGE && meta_of(page).is_ok()
}

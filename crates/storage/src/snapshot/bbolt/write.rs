//! Writing a new bbolt file from buckets given in order, each with its
//! keys in order, as bbolt's `Tx.WriteTo` would have produced the file
//! that holds them: pages 0 and 1 the metas (transaction [`TXID`] and the
//! one before), page 2 an empty freelist, then every bucket's leaves and
//! branches, packed full, and last the root bucket's tree; no page free,
//! none missing. A bucket whose keys fit in a quarter page is stored
//! inline in its value, as bbolt does. Pages are written as they fill, so
//! memory holds one leaf and the branch keys, not the file.

use std::io::{self, Seek, SeekFrom, Write};

use super::{
    BRANCH_PAGE, BUCKET_ELEMENT, BUCKET_HEADER, ELEMENT, FREELIST_PAGE, LEAF_PAGE, MAGIC,
    META_PAGE, PAGE_HEADER, VERSION,
};

/// The page size of files we write (etcd's on x86-64 and most arm64).
pub const PAGE_SIZE: usize = 4096;
/// The transaction id of the current meta (page 0); page 1 has the one
/// before, as `Tx.WriteTo` writes them.
const TXID: u64 = 2;
/// The freelist's page.
const FREELIST: u64 = 2;

/// A bbolt file being written to `out`.
pub struct Writer<W: Write> {
    out: W,
    /// The next page to write.
    next: u64,
    /// The root bucket's elements: (name, bucket value), in name order.
    buckets: Vec<(Vec<u8>, Vec<u8>)>,
}

/// One tree (a bucket's keys, or the root's buckets) as it is written:
/// the leaf filling now and, per level, the first key and page of each
/// full node.
struct Tree {
    /// Elements of the leaf filling: (element flags, key, value).
    leaf: Vec<(u32, Vec<u8>, Vec<u8>)>,
    /// Bytes the leaf takes (header, elements, keys and values).
    leaf_bytes: usize,
    /// Leaves written: (first key, page).
    leaves: Vec<(Vec<u8>, u64)>,
}

/// A bucket being written; [`BucketWriter::finish`] adds it to the file.
pub struct BucketWriter<'w, W: Write> {
    writer: &'w mut Writer<W>,
    name: Vec<u8>,
    tree: Tree,
    last: Option<Vec<u8>>,
}

impl<W: Write + Seek> Writer<W> {
    /// Starts a file on `out` (at its start): the metas come last, once
    /// the root is known, so `out` must seek.
    pub fn new(mut out: W) -> io::Result<Writer<W>> {
        out.seek(SeekFrom::Start(2 * PAGE_SIZE as u64))?;
        Writer::body(out)
    }

    /// Writes the root bucket's tree and the metas; returns `out` and the
    /// file's size in bytes (a whole number of pages).
    pub fn finish(self) -> io::Result<(W, u64)> {
        let (mut out, metas, size) = self.finish_body()?;
        out.seek(SeekFrom::Start(0))?;
        out.write_all(&metas)?;
        out.flush()?;
        Ok((out, size))
    }
}

impl<W: Write> Writer<W> {
    /// Starts the body of a file on `out`: what follows the two meta pages
    /// (page 2 on). [`Writer::finish_body`] returns the metas, which a
    /// stream must send first: write the same buckets once to a sink to
    /// learn them, then again after them.
    pub fn body(mut out: W) -> io::Result<Writer<W>> {
        let mut page = vec![0u8; PAGE_SIZE];
        header(&mut page, FREELIST, FREELIST_PAGE, 0, 0);
        out.write_all(&page)?;
        Ok(Writer {
            out,
            next: FREELIST + 1,
            buckets: Vec::new(),
        })
    }

    /// Writes the root bucket's tree; returns `out`, the two meta pages
    /// that go before the body, and the file's size in bytes.
    pub fn finish_body(mut self) -> io::Result<(W, Vec<u8>, u64)> {
        let mut root = Tree::new();
        for (name, value) in std::mem::take(&mut self.buckets) {
            root.push(&mut self, BUCKET_ELEMENT, name, value)?;
        }
        let root = match root.finish(&mut self, false)? {
            Root::Page(id) => id,
            Root::Inline(_) => unreachable!("the root tree is never inline"),
        };
        let mut metas = vec![0u8; 2 * PAGE_SIZE];
        for (page_id, txid) in [(0u64, TXID), (1, TXID - 1)] {
            let at = page_id as usize * PAGE_SIZE;
            let page = &mut metas[at..at + PAGE_SIZE];
            header(page, page_id, META_PAGE, 0, 0);
            let m = &mut page[PAGE_HEADER..PAGE_HEADER + 64];
            m[0..4].copy_from_slice(&MAGIC.to_le_bytes());
            m[4..8].copy_from_slice(&VERSION.to_le_bytes());
            m[8..12].copy_from_slice(&(PAGE_SIZE as u32).to_le_bytes());
            m[16..24].copy_from_slice(&root.to_le_bytes());
            m[32..40].copy_from_slice(&FREELIST.to_le_bytes());
            m[40..48].copy_from_slice(&self.next.to_le_bytes());
            m[48..56].copy_from_slice(&txid.to_le_bytes());
            let sum = super::checksum(&m[..56]);
            m[56..64].copy_from_slice(&sum.to_le_bytes());
        }
        self.out.flush()?;
        Ok((self.out, metas, self.next * PAGE_SIZE as u64))
    }

    /// Starts the bucket `name`; buckets must come in name order.
    pub fn bucket(&mut self, name: &[u8]) -> BucketWriter<'_, W> {
        BucketWriter {
            writer: self,
            name: name.to_vec(),
            tree: Tree::new(),
            last: None,
        }
    }

    /// Writes one node as page(s) from `self.next` on; returns its page.
    fn write_node(&mut self, flags: u16, mut buf: Vec<u8>) -> io::Result<u64> {
        let id = self.next;
        let pages = buf.len().div_ceil(PAGE_SIZE).max(1);
        let count = u16_from(&buf[10..12]);
        buf.resize(pages * PAGE_SIZE, 0);
        header(&mut buf, id, flags, count, (pages - 1) as u32);
        self.out.write_all(&buf)?;
        self.next += pages as u64;
        Ok(id)
    }
}

fn u16_from(b: &[u8]) -> u16 {
    u16::from_le_bytes([b[0], b[1]])
}

/// Fills the page header at the start of `page`.
fn header(page: &mut [u8], id: u64, flags: u16, count: u16, overflow: u32) {
    page[0..8].copy_from_slice(&id.to_le_bytes());
    page[8..10].copy_from_slice(&flags.to_le_bytes());
    page[10..12].copy_from_slice(&count.to_le_bytes());
    page[12..16].copy_from_slice(&overflow.to_le_bytes());
}

/// A node's bytes (header with id 0, elements, then keys and values) from
/// `elements` of (element flags, key, value or page number); a leaf's
/// elements are (flags, pos, ksize, vsize), a branch's (pos, ksize, pgid).
fn node(flags: u16, elements: &[(u32, &[u8], &[u8])], children: Option<&[u64]>) -> Vec<u8> {
    let data: usize = elements.iter().map(|(_, k, v)| k.len() + v.len()).sum();
    let mut out = vec![0u8; PAGE_HEADER + elements.len() * ELEMENT + data];
    header(&mut out, 0, flags, elements.len() as u16, 0);
    let mut at = PAGE_HEADER + elements.len() * ELEMENT;
    for (i, (eflags, k, v)) in elements.iter().enumerate() {
        let e = PAGE_HEADER + i * ELEMENT;
        let pos = (at - e) as u32;
        match children {
            None => {
                out[e..e + 4].copy_from_slice(&eflags.to_le_bytes());
                out[e + 4..e + 8].copy_from_slice(&pos.to_le_bytes());
                out[e + 8..e + 12].copy_from_slice(&(k.len() as u32).to_le_bytes());
                out[e + 12..e + 16].copy_from_slice(&(v.len() as u32).to_le_bytes());
            }
            Some(pages) => {
                out[e..e + 4].copy_from_slice(&pos.to_le_bytes());
                out[e + 4..e + 8].copy_from_slice(&(k.len() as u32).to_le_bytes());
                out[e + 8..e + 16].copy_from_slice(&pages[i].to_le_bytes());
            }
        }
        out[at..at + k.len()].copy_from_slice(k);
        at += k.len();
        out[at..at + v.len()].copy_from_slice(v);
        at += v.len();
    }
    out
}

/// Where a finished tree is.
enum Root {
    Page(u64),
    /// The leaf's bytes, to store in the bucket's value.
    Inline(Vec<u8>),
}

impl Tree {
    fn new() -> Tree {
        Tree {
            leaf: Vec::new(),
            leaf_bytes: PAGE_HEADER,
            leaves: Vec::new(),
        }
    }

    fn leaf_node(&self) -> Vec<u8> {
        let elements: Vec<(u32, &[u8], &[u8])> = self
            .leaf
            .iter()
            .map(|(f, k, v)| (*f, k.as_slice(), v.as_slice()))
            .collect();
        node(LEAF_PAGE, &elements, None)
    }

    /// Writes the filling leaf (if any) as a page.
    fn flush<W: Write>(&mut self, w: &mut Writer<W>) -> io::Result<()> {
        if self.leaf.is_empty() {
            return Ok(());
        }
        let id = w.write_node(LEAF_PAGE, self.leaf_node())?;
        let first = std::mem::take(&mut self.leaf).swap_remove(0).1;
        self.leaves.push((first, id));
        self.leaf_bytes = PAGE_HEADER;
        Ok(())
    }

    /// Adds an element; a full leaf is written first.
    fn push<W: Write>(
        &mut self,
        w: &mut Writer<W>,
        flags: u32,
        key: Vec<u8>,
        value: Vec<u8>,
    ) -> io::Result<()> {
        let bytes = ELEMENT + key.len() + value.len();
        if !self.leaf.is_empty() && self.leaf_bytes + bytes > PAGE_SIZE {
            self.flush(w)?;
        }
        self.leaf_bytes += bytes;
        self.leaf.push((flags, key, value));
        Ok(())
    }

    /// Finishes the tree: inline if `inline_ok` and it is one small leaf,
    /// else its leaves written and branches above them up to one root.
    fn finish<W: Write>(mut self, w: &mut Writer<W>, inline_ok: bool) -> io::Result<Root> {
        if inline_ok && self.leaves.is_empty() && self.leaf_bytes <= PAGE_SIZE / 4 {
            return Ok(Root::Inline(self.leaf_node()));
        }
        if self.leaves.is_empty() && self.leaf.is_empty() {
            // An empty root tree: one empty leaf page.
            return Ok(Root::Page(w.write_node(LEAF_PAGE, self.leaf_node())?));
        }
        self.flush(w)?;
        let mut level = self.leaves;
        while level.len() > 1 {
            level = branches(w, level)?;
        }
        Ok(Root::Page(level[0].1))
    }
}

/// Writes branch pages over `children` (first key, page), packed full but
/// never leaving a branch with one child; returns the level above.
fn branches<W: Write>(
    w: &mut Writer<W>,
    children: Vec<(Vec<u8>, u64)>,
) -> io::Result<Vec<(Vec<u8>, u64)>> {
    let mut groups: Vec<Vec<(Vec<u8>, u64)>> = vec![Vec::new()];
    let mut bytes = PAGE_HEADER;
    for child in children {
        let b = ELEMENT + child.0.len();
        let group = groups.last_mut().expect("a group");
        if !group.is_empty() && bytes + b > PAGE_SIZE {
            groups.push(Vec::new());
            bytes = PAGE_HEADER;
        }
        bytes += b;
        groups.last_mut().expect("a group").push(child);
    }
    let n = groups.len();
    if n > 1 && groups[n - 1].len() == 1 {
        let moved = groups[n - 2].pop().expect("a full group has children");
        groups[n - 1].insert(0, moved);
    }
    let mut above = Vec::with_capacity(n);
    for group in groups {
        let elements: Vec<(u32, &[u8], &[u8])> = group
            .iter()
            .map(|(k, _)| (0, k.as_slice(), &[][..]))
            .collect();
        let pages: Vec<u64> = group.iter().map(|(_, p)| *p).collect();
        let id = w.write_node(BRANCH_PAGE, node(BRANCH_PAGE, &elements, Some(&pages)))?;
        above.push((group[0].0.clone(), id));
    }
    Ok(above)
}

impl<W: Write> BucketWriter<'_, W> {
    /// Adds `key` with `value`. Errors: a key not above the last one
    /// (`InvalidInput`), or an empty key, as bbolt refuses them.
    pub fn put(&mut self, key: &[u8], value: &[u8]) -> io::Result<()> {
        if key.is_empty() || self.last.as_deref().is_some_and(|l| l >= key) {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                "bbolt keys must be non-empty and ascending",
            ));
        }
        self.last = Some(key.to_vec());
        self.tree.push(self.writer, 0, key.to_vec(), value.to_vec())
    }

    /// Ends the bucket and records it in the root. Errors: a bucket name
    /// not above the previous one (`InvalidInput`), or the output's.
    pub fn finish(self) -> io::Result<()> {
        let w = self.writer;
        if w.buckets.last().is_some_and(|(n, _)| n >= &self.name) {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                "bbolt buckets must come in name order",
            ));
        }
        let mut value = vec![0u8; BUCKET_HEADER];
        match self.tree.finish(w, true)? {
            Root::Page(id) => value[0..8].copy_from_slice(&id.to_le_bytes()),
            Root::Inline(leaf) => value.extend_from_slice(&leaf),
        }
        w.buckets.push((self.name, value));
        Ok(())
    }
}

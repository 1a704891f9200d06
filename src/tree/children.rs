//! A node's child names, kept in order so that a walk can stop anywhere and resume after the
//! last name it took, whatever was added or removed meanwhile (the fuzzy snapshot walks a
//! parent with a million children a few names at a time, between requests).
//!
//! Why not a `BTreeSet` of strings: at a million children under one parent that costs 35–47
//! bytes per child (a 24-byte string slot, nodes part full, internal nodes), three to five
//! times the names themselves. Here the names are packed into sorted blocks of about
//! [`BLOCK_MAX`] bytes, each name after its length — or, when every name in a block has the
//! same length (sequential nodes: `lock-0000001234`), with no lengths at all — and a small
//! index finds a name's block by binary search over the blocks' first names. Blocks are
//! allocated to size plus a little, so a child costs about its name plus a byte: 8–9 bytes
//! for `n123456`, 15–16 for `lock-0000001234`.
//!
//! A block is a `String`: lengths are written in ASCII bytes, so the block stays valid UTF-8
//! and a name is sliced out as `&str` with neither `unsafe` nor re-validation.
//!
//! Lookups binary-search the index, then a same-length block, or scan a mixed one (at most
//! [`BLOCK_MAX`] bytes). An insert splices into one block and splits it when full; a name
//! that lands at the end of a block (sequential creates) starts the next block and leaves
//! this one full. A remove splices out and merges a small block into a neighbour, so mass
//! deletes give the memory back. Most znodes are leaves: a leaf pays the 8-byte handle, and
//! a few children are one block behind it.

use std::collections::VecDeque;
use std::fmt;
use std::iter::{Chain, FusedIterator};
use std::slice;

/// Bytes of names a block holds before it splits (one longer name is a block on its own).
const BLOCK_MAX: usize = 1024;
/// A block smaller than this merges into a neighbour when the two fit in one.
const BLOCK_MIN: usize = BLOCK_MAX / 4;
/// Most spare capacity a block gets when it grows: it grows by small steps, not by doubling,
/// since doubled blocks would be a third empty on average.
const SPARE_MAX: usize = 64;

/// Spare capacity for a block of `len` bytes.
fn spare_for(len: usize) -> usize {
    (len / 2).min(SPARE_MAX)
}

// A name's length is a varint of ASCII bytes, 6 bits each, low first; 0x40 marks "more
// follows". One byte below 64, two below 4096; no limit.

/// Bytes of the length `n`.
fn header_len(mut n: usize) -> usize {
    let mut h = 1;
    while n >= 0x40 {
        n >>= 6;
        h += 1;
    }
    h
}

/// Append the length `n` to `out`.
fn push_len(out: &mut String, mut n: usize) {
    loop {
        let digit = (n & 0x3f) as u8;
        n >>= 6;
        if n == 0 {
            out.push(char::from(digit));
            return;
        }
        out.push(char::from(digit | 0x40));
    }
}

/// The length at the start of `bytes`: (length, bytes it took).
fn read_len(bytes: &[u8]) -> (usize, usize) {
    let mut n = 0;
    // Eleven digits hold any usize.
    for (i, &b) in bytes.iter().enumerate().take(11) {
        n |= usize::from(b & 0x3f) << (6 * i);
        if b & 0x40 == 0 {
            return (n, i + 1);
        }
    }
    (n, bytes.len().min(11))
}

/// Names in byte order, packed: each after its length, or, when `width` is set, each exactly
/// `width` bytes with nothing between them. Never empty once in a set.
#[derive(Clone, Default)]
struct Block {
    names: String,
    /// Names in the block.
    count: u32,
    /// Length of every name (1–255), or 0: names of any length, each after its length.
    width: u8,
}

impl Block {
    /// A block of sorted, distinct names, allocated to size.
    fn from_sorted(names: &[&str]) -> Block {
        let width = uniform_width(names.iter().map(|n| n.len()));
        let size = match width {
            0 => names.iter().map(|n| header_len(n.len()) + n.len()).sum(),
            w => names.len() * usize::from(w),
        };
        let mut packed = String::with_capacity(size);
        for name in names {
            if width == 0 {
                push_len(&mut packed, name.len());
            }
            packed.push_str(name);
        }
        Block {
            names: packed,
            count: names.len() as u32,
            width,
        }
    }

    fn len(&self) -> usize {
        self.count as usize
    }

    fn bytes(&self) -> usize {
        self.names.len()
    }

    /// The names from byte offset `at` (an entry's start) on.
    fn entries_from(&self, at: usize) -> Entries<'_> {
        Entries {
            rest: self.names.get(at..).unwrap_or_default(),
            width: usize::from(self.width),
        }
    }

    fn entries(&self) -> Entries<'_> {
        self.entries_from(0)
    }

    fn first(&self) -> &[u8] {
        self.entries().next().unwrap_or_default().as_bytes()
    }

    /// Bytes of the entry at offset `at`, its length included.
    fn entry_len(&self, at: usize) -> usize {
        match self.width {
            0 => {
                let (len, h) = read_len(&self.names.as_bytes()[at..]);
                h + len
            }
            w => usize::from(w),
        }
    }

    /// Where `name` is (`Ok`) or would go (`Err`), as a byte offset.
    fn find(&self, name: &[u8]) -> Result<usize, usize> {
        let bytes = self.names.as_bytes();
        if self.width == 0 {
            let mut at = 0;
            while at < bytes.len() {
                let (len, h) = read_len(&bytes[at..]);
                match bytes[at + h..at + h + len].cmp(name) {
                    std::cmp::Ordering::Less => at += h + len,
                    std::cmp::Ordering::Equal => return Ok(at),
                    std::cmp::Ordering::Greater => return Err(at),
                }
            }
            return Err(at);
        }
        let w = usize::from(self.width);
        let (mut lo, mut hi) = (0, self.len());
        while lo < hi {
            let mid = lo + (hi - lo) / 2;
            match bytes[mid * w..mid * w + w].cmp(name) {
                std::cmp::Ordering::Less => lo = mid + 1,
                std::cmp::Ordering::Equal => return Ok(mid * w),
                std::cmp::Ordering::Greater => hi = mid,
            }
        }
        Err(lo * w)
    }

    /// Whether `name` can go in as the block is: a same-length block takes only its length.
    fn fits(&self, name: &str) -> bool {
        self.width == 0 || name.len() == usize::from(self.width)
    }

    /// Store `name` at offset `at`, from [`Block::find`]; it must [`Block::fits`].
    fn insert_at(&mut self, at: usize, name: &str) {
        let h = if self.width == 0 {
            header_len(name.len())
        } else {
            0
        };
        let need = self.bytes() + h + name.len();
        if need > self.names.capacity() {
            self.names
                .reserve_exact(need - self.bytes() + spare_for(need));
        }
        self.names.insert_str(at, name);
        if h == 1 {
            self.names.insert(at, char::from(name.len() as u8));
        } else if h > 1 {
            let mut len = String::new();
            push_len(&mut len, name.len());
            self.names.insert_str(at, &len);
        }
        self.count += 1;
    }

    /// Drop the entry at offset `at`, and spare capacity past a step's worth.
    fn remove_at(&mut self, at: usize) {
        let n = self.entry_len(at);
        self.names.drain(at..at + n);
        self.count -= 1;
        let len = self.bytes();
        if self.names.capacity() > len + 2 * spare_for(len) + 16 {
            self.names.shrink_to(len + spare_for(len));
        }
    }

    /// Give every name its length, so that names of any length can join.
    fn make_variable(&mut self) {
        if self.width != 0 {
            let w = usize::from(self.width);
            let mut packed = String::with_capacity(self.len() * (header_len(w) + w));
            for name in self.entries() {
                push_len(&mut packed, w);
                packed.push_str(name);
            }
            self.names = packed;
            self.width = 0;
        }
    }

    /// Drop the lengths if every name has the same one (after a split or merge).
    fn settle(&mut self) {
        if self.width == 0 && uniform_width(self.entries().map(str::len)) != 0 {
            *self = Block::from_sorted(&self.entries().collect::<Vec<_>>());
        }
    }

    /// Bytes the block would take with its names' lengths stored.
    fn variable_size(&self) -> usize {
        match self.width {
            0 => self.bytes(),
            w => self.len() * (header_len(usize::from(w)) + usize::from(w)),
        }
    }

    /// The first entry boundary at or past the middle, leaving a name on each side (of two
    /// or more).
    fn middle(&self) -> usize {
        if self.width != 0 {
            return self.len() / 2 * usize::from(self.width);
        }
        let half = self.bytes() / 2;
        let (mut prev, mut at) = (0, self.entry_len(0));
        while at < half {
            prev = at;
            at += self.entry_len(at);
        }
        if at >= self.bytes() {
            prev
        } else {
            at
        }
    }

    /// Split at offset `at` (an entry's start): this block keeps the names before it,
    /// allocated to size; the rest are returned.
    fn split_off(&mut self, at: usize) -> Block {
        let mut right = Block {
            names: self.names.split_off(at),
            count: 0,
            width: self.width,
        };
        right.count = right.entries().count() as u32;
        self.count -= right.count;
        self.names.shrink_to_fit();
        self.settle();
        right.settle();
        right
    }

    /// Append `other`, whose names all sort after this block's.
    fn append(&mut self, mut other: Block) {
        if self.width != other.width {
            self.make_variable();
            other.make_variable();
        }
        self.names.reserve_exact(other.bytes());
        self.names.push_str(&other.names);
        self.count += other.count;
        self.settle();
    }
}

/// The common length of names with these lengths if there is one and it is 1–255, else 0.
fn uniform_width(mut lens: impl Iterator<Item = usize>) -> u8 {
    let Some(first) = lens.next() else { return 0 };
    match u8::try_from(first) {
        Ok(w) if w > 0 && lens.all(|l| l == first) => w,
        _ => 0,
    }
}

impl fmt::Debug for Block {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_list().entries(self.entries()).finish()
    }
}

/// The names of one block, from some point on.
#[derive(Clone, Default)]
struct Entries<'a> {
    rest: &'a str,
    width: usize,
}

impl<'a> Iterator for Entries<'a> {
    type Item = &'a str;

    fn next(&mut self) -> Option<&'a str> {
        if self.rest.is_empty() {
            return None;
        }
        let (h, len) = match self.width {
            0 => {
                let (len, h) = read_len(self.rest.as_bytes());
                (h, len)
            }
            w => (0, w),
        };
        // Entry boundaries are char boundaries: a length is ASCII, a name whole.
        let name = self.rest.get(h..h + len)?;
        self.rest = self.rest.get(h + len..)?;
        Some(name)
    }
}

#[derive(Clone, Debug)]
enum Inner {
    /// Up to a block of names (most sets): no index to allocate.
    One(Block),
    /// Blocks in order, none empty; `len` names in all. A deque, so that a queue's consumer
    /// dropping the first block moves nothing.
    Many { len: usize, blocks: VecDeque<Block> },
}

impl Inner {
    fn len(&self) -> usize {
        match self {
            Inner::One(b) => b.len(),
            Inner::Many { len, .. } => *len,
        }
    }

    /// The block that holds `name` or would take it: the last one starting at or before it.
    fn locate(&self, name: &[u8]) -> usize {
        match self {
            Inner::One(_) => 0,
            Inner::Many { blocks, .. } => blocks
                .partition_point(|b| b.first() <= name)
                .saturating_sub(1),
        }
    }

    fn block(&self, i: usize) -> &Block {
        match self {
            Inner::One(b) => b,
            Inner::Many { blocks, .. } => &blocks[i],
        }
    }

    fn block_mut(&mut self, i: usize) -> &mut Block {
        match self {
            Inner::One(b) => b,
            Inner::Many { blocks, .. } => &mut blocks[i],
        }
    }

    fn insert(&mut self, name: &str) -> bool {
        let i = self.locate(name.as_bytes());
        let block = self.block_mut(i);
        if !block.fits(name) {
            // A name of another length is not in a same-length block: it goes in.
            block.make_variable();
        }
        let Err(at) = block.find(name.as_bytes()) else {
            return false;
        };
        block.insert_at(at, name);
        let appended = at + block.entry_len(at) == block.bytes();
        if let Inner::Many { len, .. } = self {
            *len += 1;
        }
        let block = self.block_mut(i);
        if appended && block.bytes() > BLOCK_MAX && block.len() > 1 {
            // Sequential creates: the new name starts the next block, this one stays full.
            let right = block.split_off(at);
            self.insert_block(i + 1, right);
        }
        // Otherwise halve it if it is over the bound.
        self.split(i);
        true
    }

    /// Halve block `i`, and the halves, until each is within the bound or one name.
    fn split(&mut self, i: usize) {
        let block = self.block_mut(i);
        if block.bytes() <= BLOCK_MAX || block.len() < 2 {
            return;
        }
        let right = block.split_off(block.middle());
        self.insert_block(i + 1, right);
        self.split(i + 1);
        self.split(i);
    }

    fn insert_block(&mut self, at: usize, block: Block) {
        if let Inner::One(first) = self {
            let first = std::mem::take(first);
            let len = first.len() + block.len();
            let mut blocks = VecDeque::with_capacity(4);
            blocks.push_back(first);
            *self = Inner::Many { len, blocks };
        }
        if let Inner::Many { blocks, .. } = self {
            if blocks.len() == blocks.capacity() {
                // Grow the index by an eighth, not double.
                blocks.reserve_exact(blocks.len() / 8 + 4);
            }
            blocks.insert(at, block);
        }
    }

    fn remove(&mut self, name: &[u8]) -> bool {
        let i = self.locate(name);
        let block = self.block_mut(i);
        let Ok(at) = block.find(name) else {
            return false;
        };
        block.remove_at(at);
        let Inner::Many { len, blocks } = self else {
            return true;
        };
        *len -= 1;
        if blocks[i].len() == 0 {
            blocks.remove(i);
        } else if blocks[i].bytes() < BLOCK_MIN {
            // Into a neighbour if the two fit in one block: no churn at the bound.
            let fit = |l: &Block, r: &Block| {
                let size = if l.width == r.width {
                    l.bytes() + r.bytes()
                } else {
                    l.variable_size() + r.variable_size()
                };
                size <= BLOCK_MAX
            };
            let left = if i + 1 < blocks.len() && fit(&blocks[i], &blocks[i + 1]) {
                Some(i)
            } else if i > 0 && fit(&blocks[i - 1], &blocks[i]) {
                Some(i - 1)
            } else {
                None
            };
            if let Some(l) = left {
                if let Some(right) = blocks.remove(l + 1) {
                    blocks[l].append(right);
                }
            }
        }
        if blocks.capacity() > blocks.len() + blocks.len() / 4 + 8 {
            blocks.shrink_to(blocks.len() + blocks.len() / 8 + 4);
        }
        if blocks.len() == 1 {
            if let Some(only) = blocks.pop_front() {
                *self = Inner::One(only);
            }
        }
        true
    }

    /// The names from byte offset `at` of block `i` on.
    fn cursor(&self, i: usize, at: usize) -> Cursor<'_> {
        let (front, back): (&[Block], &[Block]) = match self {
            Inner::One(b) => (slice::from_ref(b), &[]),
            Inner::Many { blocks, .. } => blocks.as_slices(),
        };
        let (front, back) = match front.get(i..) {
            Some(f) => (f, back),
            None => (back.get(i - front.len()..).unwrap_or_default(), &[][..]),
        };
        let mut blocks = front.iter().chain(back);
        let names = blocks
            .next()
            .map(|b| b.entries_from(at))
            .unwrap_or_default();
        Cursor { blocks, names }
    }
}

/// The names (not paths) of a node's children, in byte order: an 8-byte handle, empty for a
/// leaf, with the names packed behind it (see the module doc for why).
#[derive(Clone, Debug, Default)]
pub struct Children(Option<Box<Inner>>);

impl Children {
    /// A set of `names` (any order; duplicates kept once), built at once: a snapshot load.
    /// Blocks are filled to the bound.
    pub fn from_names<'a>(names: impl IntoIterator<Item = &'a str>) -> Children {
        let mut v: Vec<&str> = names.into_iter().collect();
        // Our own snapshots list children in order, so this is usually a linear check.
        v.sort_unstable();
        v.dedup();
        let len = v.len();
        let mut blocks = VecDeque::new();
        let mut rest = &v[..];
        while let Some(first) = rest.first() {
            // As many names as fit, at least one.
            let (mut n, mut var_size, mut width) = (0, 0, Some(first.len()));
            for name in rest {
                let var = var_size + header_len(name.len()) + name.len();
                if width != Some(name.len()) {
                    width = None;
                }
                let size = match width {
                    Some(w) if (1..=255).contains(&w) => (n + 1) * w,
                    _ => var,
                };
                if n > 0 && size > BLOCK_MAX {
                    break;
                }
                var_size = var;
                n += 1;
            }
            let (take, after) = rest.split_at(n);
            blocks.push_back(Block::from_sorted(take));
            rest = after;
        }
        match blocks.len() {
            0 => Children(None),
            1 => Children(blocks.pop_front().map(|b| Box::new(Inner::One(b)))),
            _ => {
                blocks.shrink_to_fit();
                Children(Some(Box::new(Inner::Many { len, blocks })))
            }
        }
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_none()
    }

    pub fn len(&self) -> usize {
        self.0.as_deref().map_or(0, Inner::len)
    }

    pub fn contains(&self, name: &str) -> bool {
        let Some(inner) = self.0.as_deref() else {
            return false;
        };
        let block = inner.block(inner.locate(name.as_bytes()));
        block.fits(name) && block.find(name.as_bytes()).is_ok()
    }

    /// Add a name; false if it was already there.
    pub fn insert(&mut self, name: &str) -> bool {
        match self.0.as_deref_mut() {
            Some(inner) => inner.insert(name),
            None => {
                self.0 = Some(Box::new(Inner::One(Block::from_sorted(&[name]))));
                true
            }
        }
    }

    /// Remove a name; the set goes when it empties, so a former parent is a leaf again.
    pub fn remove(&mut self, name: &str) -> bool {
        let Some(inner) = self.0.as_deref_mut() else {
            return false;
        };
        let removed = inner.remove(name.as_bytes());
        if inner.len() == 0 {
            self.0 = None;
        }
        removed
    }

    /// The names in byte order.
    pub fn iter(&self) -> Iter<'_> {
        match self.0.as_deref() {
            None => Iter::default(),
            Some(inner) => Iter {
                names: inner.cursor(0, 0),
                left: inner.len(),
            },
        }
    }

    /// Up to `max` names that sort after `after` (all names when `None`), in order: how a
    /// walk resumes. A name added behind the walk's position is not seen; one removed ahead
    /// of it is not returned.
    pub fn after(&self, after: Option<&str>, max: usize) -> Vec<&str> {
        let Some(inner) = self.0.as_deref() else {
            return Vec::new();
        };
        let names = match after {
            None => inner.cursor(0, 0),
            Some(a) => {
                let a = a.as_bytes();
                let i = inner.locate(a);
                let block = inner.block(i);
                let at = match block.find(a) {
                    Ok(at) => at + block.entry_len(at),
                    Err(at) => at,
                };
                inner.cursor(i, at)
            }
        };
        let mut out = Vec::with_capacity(max.min(inner.len()));
        out.extend(names.take(max));
        out
    }

    /// Bytes allocated behind the handle.
    #[cfg(test)]
    fn heap_bytes(&self) -> usize {
        let Some(inner) = self.0.as_deref() else {
            return 0;
        };
        let blocks = match inner {
            Inner::One(b) => b.names.capacity(),
            Inner::Many { blocks, .. } => {
                blocks.capacity() * std::mem::size_of::<Block>()
                    + blocks.iter().map(|b| b.names.capacity()).sum::<usize>()
            }
        };
        std::mem::size_of::<Inner>() + blocks
    }

    /// Panics unless the blocks are in order, non-empty, counted and bounded.
    #[cfg(test)]
    fn check(&self) {
        let Some(inner) = self.0.as_deref() else {
            return;
        };
        let blocks: Vec<&Block> = match inner {
            Inner::One(b) => vec![b],
            Inner::Many { blocks, .. } => {
                assert!(blocks.len() > 1);
                blocks.iter().collect()
            }
        };
        let mut total = 0;
        let mut prev: Option<&str> = None;
        for b in blocks {
            let names: Vec<&str> = b.entries().collect();
            assert!(!names.is_empty());
            assert_eq!(names.len(), b.len());
            assert_eq!(
                names.iter().map(|n| n.len()).sum::<usize>()
                    + names
                        .iter()
                        .map(|n| if b.width == 0 { header_len(n.len()) } else { 0 })
                        .sum::<usize>(),
                b.bytes()
            );
            assert!(b.bytes() <= BLOCK_MAX || b.len() == 1);
            if b.width != 0 {
                assert!(names.iter().all(|n| n.len() == usize::from(b.width)));
            }
            for n in names {
                assert!(prev < Some(n));
                prev = Some(n);
            }
            total += b.len();
        }
        assert_eq!(total, inner.len());
    }
}

/// Names of one set from some point on, block by block.
#[derive(Clone, Default)]
struct Cursor<'a> {
    blocks: Chain<slice::Iter<'a, Block>, slice::Iter<'a, Block>>,
    names: Entries<'a>,
}

impl<'a> Iterator for Cursor<'a> {
    type Item = &'a str;

    fn next(&mut self) -> Option<&'a str> {
        loop {
            if let Some(name) = self.names.next() {
                return Some(name);
            }
            self.names = self.blocks.next()?.entries();
        }
    }
}

/// The names of a [`Children`], in byte order.
#[derive(Clone, Default)]
pub struct Iter<'a> {
    names: Cursor<'a>,
    left: usize,
}

impl<'a> Iterator for Iter<'a> {
    type Item = &'a str;

    fn next(&mut self) -> Option<&'a str> {
        let name = self.names.next()?;
        self.left = self.left.saturating_sub(1);
        Some(name)
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        (self.left, Some(self.left))
    }
}

impl ExactSizeIterator for Iter<'_> {}
impl FusedIterator for Iter<'_> {}

impl<'a> IntoIterator for &'a Children {
    type Item = &'a str;
    type IntoIter = Iter<'a>;

    fn into_iter(self) -> Self::IntoIter {
        self.iter()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeSet;
    use std::ops::Bound;

    #[test]
    fn a_leaf_costs_a_pointer_and_empties_back_to_one() {
        assert_eq!(std::mem::size_of::<Children>(), 8);
        let mut c = Children::default();
        assert!(c.is_empty());
        assert!(c.insert("b"));
        assert!(!c.insert("b"));
        assert!(c.insert("a"));
        assert_eq!(c.len(), 2);
        assert!(c.contains("a"));
        assert_eq!(c.iter().collect::<Vec<_>>(), ["a", "b"]);
        assert!(c.remove("a"));
        assert!(!c.remove("a"));
        assert!(c.remove("b"));
        assert!(c.0.is_none());
    }

    #[test]
    fn small_and_large_sets_agree_with_a_model() {
        use std::collections::BTreeSet as Model;
        let mut c = Children::default();
        let mut m = Model::new();
        // Grow well past the small limit, shrink, grow again; names out of order.
        for round in 0..3u32 {
            for i in 0..300u32 {
                let name = format!("n{}", (i * 7919 + round) % 1000);
                assert_eq!(c.insert(&name), m.insert(name.clone()));
            }
            for i in 0..250u32 {
                let name = format!("n{}", (i * 104_729) % 1000);
                assert_eq!(c.remove(&name), m.remove(&name));
            }
            assert_eq!(c.len(), m.len());
            assert!(c.iter().eq(m.iter().map(String::as_str)));
            for probe in ["n0", "n7", "n999", "zz", ""] {
                assert_eq!(c.contains(probe), m.contains(probe));
            }
        }
    }

    #[test]
    fn a_walk_resumes_after_its_last_name_across_changes() {
        for n in [5usize, 64, 65, 1000] {
            let mut c = Children::from_names(
                (0..n)
                    .map(|i| format!("c{i:05}"))
                    .collect::<Vec<_>>()
                    .iter()
                    .map(String::as_str),
            );
            assert_eq!(c.len(), n);
            let mut seen = Vec::new();
            let mut pos: Option<String> = None;
            let mut step = 0;
            loop {
                let got: Vec<String> = c
                    .after(pos.as_deref(), 7)
                    .into_iter()
                    .map(str::to_owned)
                    .collect();
                let Some(last) = got.last().cloned() else {
                    break;
                };
                seen.extend(got);
                pos = Some(last);
                // Meanwhile: a name behind the walk and one ahead of it come and go.
                step += 1;
                c.insert(&format!("a{step}"));
                c.remove(&format!("c{:05}", (step * 13) % n));
                c.insert(&format!("c{:05}", (step * 13) % n));
            }
            // Every name present throughout was seen exactly once, in order.
            let mut sorted = seen.clone();
            sorted.sort();
            sorted.dedup();
            assert_eq!(sorted, seen, "n={n}");
            for i in 0..n {
                let name = format!("c{i:05}");
                assert!(
                    seen.contains(&name) || !c.contains(&name),
                    "n={n}: missed {name}"
                );
            }
        }
        assert!(Children::from_names(std::iter::empty()).0.is_none());
        let dup = Children::from_names(["x", "y", "x"]);
        assert_eq!(dup.iter().collect::<Vec<_>>(), ["x", "y"]);
    }

    /// splitmix64: a fixed-seed generator, no crate needed.
    struct Rng(u64);

    impl Rng {
        fn next(&mut self) -> u64 {
            self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
            let mut z = self.0;
            z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
            z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
            z ^ (z >> 31)
        }

        fn below(&mut self, n: usize) -> usize {
            (self.next() % n as u64) as usize
        }
    }

    fn name(rng: &mut Rng, seq: &mut u64) -> String {
        match rng.below(100) {
            0..=39 => format!("n{}", rng.below(40_000)),
            40..=69 => {
                *seq += 1 + rng.below(2) as u64;
                format!("n{:010}", *seq)
            }
            70..=79 => format!("lock-{:010}", rng.below(20_000)),
            80..=84 => format!("{}{}", "L".repeat(100 + rng.below(200)), rng.below(500)),
            85..=87 => format!("{}{}", "W".repeat(1000 + rng.below(2000)), rng.below(100)),
            88..=92 => format!("é名{}", rng.below(1000)),
            93 => String::new(),
            _ => format!("{}", rng.below(300)),
        }
    }

    #[test]
    fn packed_blocks_agree_with_a_model() {
        let mut rng = Rng(0x5eed);
        let mut seq = 0;
        let mut c = Children::default();
        let mut m: BTreeSet<String> = BTreeSet::new();
        // Names present, to pick removes from.
        let mut pool: Vec<String> = Vec::new();
        let mut most = 0;
        for op in 0..180_000usize {
            // Grow to about 20k names, shrink to nothing, grow again.
            let growing = (op / 30_000) % 2 == 0;
            let roll = rng.below(100);
            if roll < if growing { 75 } else { 15 } {
                let n = name(&mut rng, &mut seq);
                let added = m.insert(n.clone());
                assert_eq!(c.insert(&n), added, "insert {n:?}");
                if added {
                    pool.push(n);
                }
            } else if roll < 92 {
                if pool.is_empty() || rng.below(10) == 0 {
                    let n = name(&mut rng, &mut seq);
                    let removed = m.remove(&n);
                    assert_eq!(c.remove(&n), removed, "remove {n:?}");
                    if removed {
                        let at = pool.iter().position(|p| *p == n).expect("in the pool");
                        pool.swap_remove(at);
                    }
                } else {
                    let n = pool.swap_remove(rng.below(pool.len()));
                    assert!(m.remove(&n));
                    assert!(c.remove(&n), "remove {n:?}");
                }
            } else if roll < 96 {
                let n = if !pool.is_empty() && rng.below(2) == 0 {
                    pool[rng.below(pool.len())].clone()
                } else {
                    name(&mut rng, &mut seq)
                };
                assert_eq!(c.contains(&n), m.contains(&n), "contains {n:?}");
            } else {
                let from = match rng.below(4) {
                    0 => None,
                    1 if !pool.is_empty() => Some(pool[rng.below(pool.len())].clone()),
                    _ => Some(name(&mut rng, &mut seq)),
                };
                let max = rng.below(40);
                let lower = from.as_deref().map_or(Bound::Unbounded, Bound::Excluded);
                let want: Vec<&str> = m
                    .range::<str, _>((lower, Bound::Unbounded))
                    .take(max)
                    .map(String::as_str)
                    .collect();
                assert_eq!(c.after(from.as_deref(), max), want, "after {from:?}");
            }
            assert_eq!(c.len(), m.len());
            most = most.max(m.len());
            if op % 1000 == 0 {
                c.check();
            }
            if op % 5000 == 0 {
                assert!(c.iter().eq(m.iter().map(String::as_str)));
                assert_eq!(c.iter().len(), m.len());
            }
            if m.is_empty() {
                assert!(c.0.is_none());
            }
        }
        assert!(most > 15_000, "{most}");
        c.check();
        assert!(c.iter().eq(m.iter().map(String::as_str)));
        let copy = Children::from_names(m.iter().map(String::as_str));
        copy.check();
        assert!(copy.iter().eq(m.iter().map(String::as_str)));
        for n in m.iter() {
            assert!(c.remove(n));
        }
        assert!(c.0.is_none());
    }

    #[test]
    fn a_queue_drains_from_the_front() {
        // Sequential creates at the back, deletes at the front: the index deque wraps.
        let mut c = Children::default();
        for i in 0..20_000 {
            assert!(c.insert(&format!("q-{i:010}")));
            if i >= 5_000 {
                assert!(c.remove(&format!("q-{:010}", i - 5_000)));
            }
        }
        c.check();
        assert!(matches!(c.0.as_deref(), Some(Inner::Many { blocks, .. })
            if !blocks.as_slices().1.is_empty()));
        assert_eq!(c.len(), 5_000);
        let want: Vec<String> = (15_000..20_000).map(|i| format!("q-{i:010}")).collect();
        assert!(c.iter().eq(want.iter().map(String::as_str)));
        let mut walked = Vec::new();
        let mut pos: Option<String> = None;
        loop {
            let got = c.after(pos.as_deref(), 7);
            let Some(last) = got.last() else { break };
            pos = Some(last.to_string());
            walked.extend(got.into_iter().map(str::to_owned));
        }
        assert_eq!(walked, want);
        // Full blocks of 12-byte names, no lengths stored.
        assert!(c.heap_bytes() < 5_000 * 13, "{}", c.heap_bytes());
    }

    #[test]
    fn a_same_length_block_takes_another_length() {
        // 85 names of 12 bytes fill a block without lengths; with lengths it would be over
        // the bound.
        let names: Vec<String> = (0..85).map(|i| format!("a-{i:010}")).collect();
        for extra in ["b", "a", "a-0000000042x", ""] {
            let mut c = Children::from_names(names.iter().map(String::as_str));
            assert!(matches!(c.0.as_deref(), Some(Inner::One(b)) if b.width == 12));
            assert!(c.insert(extra));
            c.check();
            assert!(c.contains(extra));
            assert!(c.remove(extra));
            c.check();
            assert!(c.iter().eq(names.iter().map(String::as_str)));
        }
    }

    /// 0..n in an order fixed by `seed`.
    fn shuffled(n: usize, seed: u64) -> Vec<usize> {
        let mut rng = Rng(seed);
        let mut order: Vec<usize> = (0..n).collect();
        for i in (1..n).rev() {
            order.swap(i, rng.below(i + 1));
        }
        order
    }

    /// Random order (`n{i}`, names of mixed length) and sequential (`lock-{:010}`, one
    /// length) at a million children.
    #[test]
    fn a_child_costs_about_its_name() {
        let n = 1_000_000;
        let order = shuffled(n, 7);
        let mut random = Children::default();
        for &i in &order {
            assert!(random.insert(&format!("n{i}")));
        }
        random.check();
        let per_random = random.heap_bytes() as f64 / n as f64;
        drop(random);

        let mut sequential = Children::default();
        for i in 0..n {
            assert!(sequential.insert(&format!("lock-{i:010}")));
        }
        sequential.check();
        let per_sequential = sequential.heap_bytes() as f64 / n as f64;

        eprintln!(
            "bytes per child at {n}: random n{{i}} {per_random:.2}, \
             sequential lock-{{:010}} {per_sequential:.2}"
        );
        assert!(per_random <= 16.0, "{per_random}");
        assert!(per_sequential <= 16.0, "{per_sequential}");
    }

    /// A snapshot load packs full blocks; removing nine names in ten gives the memory back.
    #[test]
    fn loads_pack_and_deletes_give_memory_back() {
        let n = 200_000;
        let order = shuffled(n, 11);
        let names: Vec<String> = order.iter().map(|i| format!("n{i}")).collect();
        let mut c = Children::from_names(names.iter().map(String::as_str));
        c.check();
        assert_eq!(c.len(), n);
        let per_loaded = c.heap_bytes() as f64 / n as f64;
        for (name, i) in names.iter().zip(&order) {
            if i % 10 != 0 {
                assert!(c.remove(name));
            }
        }
        c.check();
        let per_thinned = c.heap_bytes() as f64 / c.len() as f64;
        eprintln!(
            "bytes per child at {n}: loaded n{{i}} {per_loaded:.2}, \
             after removing 9 in 10 {per_thinned:.2}"
        );
        assert!(per_loaded <= 12.0, "{per_loaded}");
        assert!(per_thinned <= 16.0, "{per_thinned}");
        for name in &names {
            c.remove(name);
        }
        assert!(c.0.is_none());
    }
}

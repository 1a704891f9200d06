//! One znode in one allocation: its metadata, path and data packed together behind a thin
//! pointer, so the node table holds 8 bytes per znode and a znode costs one heap block.
//!
//! A million 100-byte znodes is the load operators size ZooKeeper for; there the tree's
//! memory is what matters, and a node made of a boxed struct, a boxed key and a boxed value
//! paid three allocator headers and ~150 bytes of fields. Here the fields a fresh node leaves
//! at their defaults (modified = created, version 0, no owner…) are not stored at all: a
//! flag word says which are present, so a typical leaf's metadata is 30 bytes.
//!
//! Layout (little-endian, byte-addressed, no alignment needed):
//!
//! ```text
//! flags u16 | path_len u32 | data_len u32 | czxid i64 | ctime i64 | acl i32
//! [mzxid i64] [mtime i64] [pzxid i64] [owner i64] [acl i64] [version i32] [cversion i32]
//! [aversion i32]                       (each present only when its flag is set)
//! path bytes | data bytes
//! ```

use std::alloc::{alloc_zeroed, dealloc, handle_alloc_error, Layout};
use std::borrow::Borrow;
use std::hash::{Hash, Hasher};
use std::ptr::NonNull;

use super::StatPersisted;

const DATA_NULL: u16 = 1;
const HAS_MZXID: u16 = 1 << 1;
const HAS_MTIME: u16 = 1 << 2;
const HAS_PZXID: u16 = 1 << 3;
const HAS_OWNER: u16 = 1 << 4;
const WIDE_ACL: u16 = 1 << 5;
const HAS_VERSION: u16 = 1 << 6;
const HAS_CVERSION: u16 = 1 << 7;
const HAS_AVERSION: u16 = 1 << 8;
/// The node has children (kept in the tree's table of parents).
const PARENT: u16 = 1 << 9;

/// flags, path_len, data_len, czxid, ctime, acl (narrow).
const FIXED: usize = 2 + 4 + 4 + 8 + 8 + 4;
/// The optional fields in storage order, with their flag and width.
const OPTIONAL: [(u16, usize); 8] = [
    (HAS_MZXID, 8),
    (HAS_MTIME, 8),
    (HAS_PZXID, 8),
    (HAS_OWNER, 8),
    (WIDE_ACL, 8),
    (HAS_VERSION, 4),
    (HAS_CVERSION, 4),
    (HAS_AVERSION, 4),
];
/// Allocation alignment (the allocator's minimum anyway; nothing is read unaligned-sensitive).
const ALIGN: usize = 8;

/// A node's metadata, decoded: what [`NodeBox`] stores besides its path, data and whether it
/// has children (that flag belongs to the tree's bookkeeping: [`NodeBox::set_parent`]).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub(crate) struct Meta {
    pub stat: StatPersisted,
    /// Reference into the tree's ACL cache.
    pub acl: i64,
}

impl Meta {
    fn flags(&self, data_null: bool, parent: bool) -> u16 {
        let s = &self.stat;
        let mut f = 0;
        let mut set = |cond: bool, bit: u16| {
            if cond {
                f |= bit;
            }
        };
        set(data_null, DATA_NULL);
        set(s.mzxid != s.czxid, HAS_MZXID);
        set(s.mtime != s.ctime, HAS_MTIME);
        set(s.pzxid != s.czxid, HAS_PZXID);
        set(s.ephemeral_owner != 0, HAS_OWNER);
        set(i32::try_from(self.acl).is_err(), WIDE_ACL);
        set(s.version != 0, HAS_VERSION);
        set(s.cversion != 0, HAS_CVERSION);
        set(s.aversion != 0, HAS_AVERSION);
        set(parent, PARENT);
        f
    }
}

fn header_len(flags: u16) -> usize {
    FIXED
        + OPTIONAL
            .iter()
            .filter(|(bit, _)| flags & bit != 0)
            .map(|(_, w)| w)
            .sum::<usize>()
}

fn rd_u16(b: &[u8], at: usize) -> u16 {
    u16::from_le_bytes([b[at], b[at + 1]])
}

fn rd_u32(b: &[u8], at: usize) -> u32 {
    let mut a = [0u8; 4];
    a.copy_from_slice(&b[at..at + 4]);
    u32::from_le_bytes(a)
}

fn rd_i64(b: &[u8], at: usize) -> i64 {
    let mut a = [0u8; 8];
    a.copy_from_slice(&b[at..at + 8]);
    i64::from_le_bytes(a)
}

/// Write the header for `meta` into `out` (exactly `header_len(flags)` bytes).
fn encode_header(out: &mut [u8], flags: u16, meta: &Meta, path_len: u32, data_len: u32) {
    let s = &meta.stat;
    out[0..2].copy_from_slice(&flags.to_le_bytes());
    out[2..6].copy_from_slice(&path_len.to_le_bytes());
    out[6..10].copy_from_slice(&data_len.to_le_bytes());
    out[10..18].copy_from_slice(&s.czxid.to_le_bytes());
    out[18..26].copy_from_slice(&s.ctime.to_le_bytes());
    // The narrow ACL slot holds the reference, or 0 when the wide slot has it.
    let narrow = i32::try_from(meta.acl).unwrap_or(0);
    out[26..30].copy_from_slice(&narrow.to_le_bytes());
    let mut at = FIXED;
    let mut put = |bytes: &[u8]| {
        out[at..at + bytes.len()].copy_from_slice(bytes);
        at += bytes.len();
    };
    for (bit, _) in OPTIONAL {
        if flags & bit == 0 {
            continue;
        }
        match bit {
            HAS_MZXID => put(&s.mzxid.to_le_bytes()),
            HAS_MTIME => put(&s.mtime.to_le_bytes()),
            HAS_PZXID => put(&s.pzxid.to_le_bytes()),
            HAS_OWNER => put(&s.ephemeral_owner.to_le_bytes()),
            WIDE_ACL => put(&meta.acl.to_le_bytes()),
            HAS_VERSION => put(&s.version.to_le_bytes()),
            HAS_CVERSION => put(&s.cversion.to_le_bytes()),
            _ => put(&s.aversion.to_le_bytes()),
        }
    }
}

/// A znode's path, metadata and data in one heap block behind an 8-byte pointer; the node
/// table's element. It hashes and compares as its path, so the table is looked up by `&str`.
pub(crate) struct NodeBox(NonNull<u8>);

// SAFETY: a NodeBox owns its block exclusively, like a Box<[u8]>; nothing else points into it.
unsafe impl Send for NodeBox {}
// SAFETY: shared access only reads.
unsafe impl Sync for NodeBox {}

impl NodeBox {
    /// A node (without children) with `path`, `data` (None: a null buffer) and `meta`.
    pub fn new(path: &str, data: Option<&[u8]>, meta: &Meta) -> NodeBox {
        NodeBox::build(path, data, meta, false)
    }

    fn build(path: &str, data: Option<&[u8]>, meta: &Meta, parent: bool) -> NodeBox {
        let flags = meta.flags(data.is_none(), parent);
        let head = header_len(flags);
        let data = data.unwrap_or_default();
        let total = head + path.len() + data.len();
        let (path_len, data_len) = (len32(path.len()), len32(data.len()));
        let layout = Layout::from_size_align(total, ALIGN).unwrap_or_else(|_| layout_overflow());
        // SAFETY: `total` ≥ FIXED > 0, so the layout is non-zero-sized. Zeroed, so the
        // slice below is over initialized bytes from the start.
        let raw = unsafe { alloc_zeroed(layout) };
        let Some(ptr) = NonNull::new(raw) else {
            handle_alloc_error(layout)
        };
        // SAFETY: the block is `total` initialized bytes, freshly allocated and exclusively
        // ours.
        let buf = unsafe { std::slice::from_raw_parts_mut(ptr.as_ptr(), total) };
        encode_header(&mut buf[..head], flags, meta, path_len, data_len);
        buf[head..head + path.len()].copy_from_slice(path.as_bytes());
        buf[head + path.len()..].copy_from_slice(data);
        NodeBox(ptr)
    }

    /// The block's length, from its fixed header.
    fn total(&self) -> usize {
        // SAFETY: every block is at least FIXED bytes and its header was written at creation.
        let fixed = unsafe { std::slice::from_raw_parts(self.0.as_ptr(), FIXED) };
        let flags = rd_u16(fixed, 0);
        header_len(flags) + rd_u32(fixed, 2) as usize + rd_u32(fixed, 6) as usize
    }

    fn bytes(&self) -> &[u8] {
        // SAFETY: the block is `total()` initialized bytes, owned by self, borrowed shared.
        unsafe { std::slice::from_raw_parts(self.0.as_ptr(), self.total()) }
    }

    fn bytes_mut(&mut self) -> &mut [u8] {
        let total = self.total();
        // SAFETY: as in `bytes`, borrowed exclusively through &mut self.
        unsafe { std::slice::from_raw_parts_mut(self.0.as_ptr(), total) }
    }

    fn flags(&self) -> u16 {
        rd_u16(self.bytes(), 0)
    }

    /// The block, and where its path starts and ends in it.
    fn split(&self) -> (&[u8], usize, usize) {
        let b = self.bytes();
        let start = header_len(rd_u16(b, 0));
        (b, start, start + rd_u32(b, 2) as usize)
    }

    /// The node's full path ("/" for the root).
    pub fn path(&self) -> &str {
        let (b, start, end) = self.split();
        // SAFETY: the path bytes were copied from a `&str` in `new` and are never written
        // again (in-place updates touch only the header and data).
        unsafe { std::str::from_utf8_unchecked(&b[start..end]) }
    }

    /// The data; `None` is a null buffer, distinct from empty data.
    pub fn data(&self) -> Option<&[u8]> {
        let (b, _, end) = self.split();
        if rd_u16(b, 0) & DATA_NULL != 0 {
            return None;
        }
        Some(&b[end..])
    }

    /// The data's length (0 for null).
    pub fn data_len(&self) -> usize {
        rd_u32(self.bytes(), 6) as usize
    }

    pub fn is_parent(&self) -> bool {
        self.flags() & PARENT != 0
    }

    /// The node's ACL reference, without decoding the rest.
    pub fn acl(&self) -> i64 {
        let b = self.bytes();
        let flags = rd_u16(b, 0);
        if flags & WIDE_ACL == 0 {
            return i32::from_le_bytes([b[26], b[27], b[28], b[29]]) as i64;
        }
        let at = FIXED
            + OPTIONAL
                .iter()
                .take_while(|(bit, _)| *bit != WIDE_ACL)
                .filter(|(bit, _)| flags & bit != 0)
                .map(|(_, w)| w)
                .sum::<usize>();
        rd_i64(b, at)
    }

    /// The metadata, decoded.
    pub fn meta(&self) -> Meta {
        let b = self.bytes();
        let flags = rd_u16(b, 0);
        let czxid = rd_i64(b, 10);
        let ctime = rd_i64(b, 18);
        let mut m = Meta {
            stat: StatPersisted {
                czxid,
                mzxid: czxid,
                ctime,
                mtime: ctime,
                pzxid: czxid,
                ..Default::default()
            },
            acl: i32::from_le_bytes([b[26], b[27], b[28], b[29]]) as i64,
        };
        let mut at = FIXED;
        for (bit, width) in OPTIONAL {
            if flags & bit == 0 {
                continue;
            }
            let v64 = || rd_i64(b, at);
            let v32 = || rd_u32(b, at) as i32;
            let s = &mut m.stat;
            match bit {
                HAS_MZXID => s.mzxid = v64(),
                HAS_MTIME => s.mtime = v64(),
                HAS_PZXID => s.pzxid = v64(),
                HAS_OWNER => s.ephemeral_owner = v64(),
                WIDE_ACL => m.acl = v64(),
                HAS_VERSION => s.version = v32(),
                HAS_CVERSION => s.cversion = v32(),
                _ => s.aversion = v32(),
            }
            at += width;
        }
        m
    }

    /// Mark the node as having children or not (in place: the flag has no field).
    pub fn set_parent(&mut self, on: bool) {
        let mut flags = self.flags();
        if on {
            flags |= PARENT;
        } else {
            flags &= !PARENT;
        }
        self.bytes_mut()[0..2].copy_from_slice(&flags.to_le_bytes());
    }

    /// Replace the metadata, in place when its encoding keeps its length, else by moving to
    /// a new block.
    pub fn set_meta(&mut self, meta: &Meta) {
        let data_null = self.flags() & DATA_NULL != 0;
        let parent = self.is_parent();
        let flags = meta.flags(data_null, parent);
        let old = header_len(self.flags());
        if header_len(flags) == old {
            let (path_len, data_len) = (len32(self.path().len()), len32(self.data_len()));
            encode_header(
                &mut self.bytes_mut()[..old],
                flags,
                meta,
                path_len,
                data_len,
            );
        } else {
            *self = NodeBox::build(self.path(), self.data(), meta, parent);
        }
    }

    /// Replace data and metadata together, in place when the lengths allow.
    pub fn set_data(&mut self, data: Option<&[u8]>, meta: &Meta) {
        let parent = self.is_parent();
        let flags = meta.flags(data.is_none(), parent);
        let new_len = data.map_or(0, <[u8]>::len);
        if header_len(flags) == header_len(self.flags()) && new_len == self.data_len() {
            let head = header_len(flags);
            let path_len = self.path().len();
            let b = self.bytes_mut();
            encode_header(&mut b[..head], flags, meta, len32(path_len), len32(new_len));
            b[head + path_len..].copy_from_slice(data.unwrap_or_default());
        } else {
            *self = NodeBox::build(self.path(), data, meta, parent);
        }
    }
}

/// Lengths are stored in 32 bits; a request is bounded far below that (jute.maxbuffer), so
/// a longer one is a broken invariant, not input.
fn len32(n: usize) -> u32 {
    u32::try_from(n).unwrap_or_else(|_| layout_overflow())
}

#[cold]
fn layout_overflow() -> ! {
    panic!("znode larger than 4 GiB")
}

impl Drop for NodeBox {
    fn drop(&mut self) {
        let total = self.total();
        // SAFETY: allocated in `new` with exactly this size and alignment, which validated.
        unsafe {
            dealloc(
                self.0.as_ptr(),
                Layout::from_size_align_unchecked(total, ALIGN),
            )
        }
    }
}

impl Borrow<str> for NodeBox {
    fn borrow(&self) -> &str {
        self.path()
    }
}

impl Hash for NodeBox {
    fn hash<H: Hasher>(&self, state: &mut H) {
        // As `str` hashes, so that lookups by `&str` find it.
        self.path().hash(state)
    }
}

impl PartialEq for NodeBox {
    fn eq(&self, other: &Self) -> bool {
        self.path() == other.path()
    }
}

impl Eq for NodeBox {}

impl std::fmt::Debug for NodeBox {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("NodeBox")
            .field("path", &self.path())
            .field("meta", &self.meta())
            .field("data_len", &self.data().map(<[u8]>::len))
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn meta(seed: i64) -> Meta {
        Meta {
            stat: StatPersisted {
                czxid: seed,
                mzxid: seed,
                ctime: seed * 10,
                mtime: seed * 10,
                version: 0,
                cversion: 0,
                aversion: 0,
                ephemeral_owner: 0,
                pzxid: seed,
            },
            acl: 1,
        }
    }

    #[test]
    fn a_fresh_leaf_stores_only_what_differs_from_defaults() {
        let m = meta(7);
        let b = NodeBox::new("/a/b", Some(b"xyz"), &m);
        assert_eq!(b.total(), FIXED + 4 + 3);
        assert_eq!(b.path(), "/a/b");
        assert_eq!(b.data(), Some(&b"xyz"[..]));
        assert_eq!(b.meta(), m);
        assert_eq!(b.acl(), 1);
        let null = NodeBox::new("/", None, &m);
        assert_eq!(null.data(), None);
        let empty = NodeBox::new("/", Some(b""), &m);
        assert_eq!(empty.data(), Some(&b""[..]));
    }

    #[test]
    fn every_field_round_trips_through_every_change() {
        // Each field away from its default, alone and together, with wide and narrow ACLs.
        let base = meta(1 << 40);
        let mut variants = vec![base.clone()];
        let tweaks: [fn(&mut Meta); 9] = [
            |m| m.stat.mzxid += 5,
            |m| m.stat.mtime -= 3,
            |m| m.stat.pzxid = i64::MAX,
            |m| m.stat.ephemeral_owner = -1,
            |m| m.acl = -1,
            |m| m.acl = i64::from(i32::MAX) + 9,
            |m| m.stat.version = i32::MIN,
            |m| m.stat.cversion = 3,
            |m| m.stat.aversion = -1,
        ];
        for (i, t) in tweaks.iter().enumerate() {
            let mut one = base.clone();
            t(&mut one);
            variants.push(one);
            let mut all = base.clone();
            for t in &tweaks[i..] {
                t(&mut all);
            }
            variants.push(all);
        }
        for (i, from) in variants.iter().enumerate() {
            let mut b = NodeBox::new("/p/q", Some(b"data"), from);
            assert_eq!(&b.meta(), from);
            // The children flag survives every change, set or not.
            let parent = i % 2 == 0;
            b.set_parent(parent);
            for to in &variants {
                b.set_meta(to);
                assert_eq!(b.is_parent(), parent);
                assert_eq!(&b.meta(), to);
                assert_eq!(b.acl(), to.acl);
                assert_eq!(b.path(), "/p/q");
                assert_eq!(b.data(), Some(&b"data"[..]));
            }
            for data in [
                None,
                Some(&b""[..]),
                Some(&b"four"[..]),
                Some(&b"longer"[..]),
            ] {
                b.set_data(data, from);
                assert_eq!(b.is_parent(), parent);
                assert_eq!(b.data(), data);
                assert_eq!(&b.meta(), from);
                assert_eq!(b.path(), "/p/q");
            }
        }
    }

    #[test]
    fn it_hashes_and_compares_as_its_path() {
        use std::collections::HashSet;
        let mut set = HashSet::new();
        set.insert(NodeBox::new("/x", None, &meta(1)));
        set.insert(NodeBox::new("/y", None, &meta(2)));
        assert!(set.contains("/x"));
        assert!(!set.contains("/z"));
        assert!(!set.insert(NodeBox::new("/x", Some(b"other"), &meta(3))));
    }
}

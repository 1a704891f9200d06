//! The DataTree: every znode, its data, ACL and Stat, plus the indexes the server needs
//! (ephemerals by session, containers, TTL nodes, quota roots).
//!
//! Pure data: no watches, no ACL checks, no clock. Mutations take the zxid and time that prep
//! put in the txn, so every replica that applies the same txns holds the same tree.

mod acl_cache;
mod children;
mod node;
mod path;
mod persist;

use std::collections::{BTreeSet, HashMap};
use std::time::{Duration, Instant};

// griddle's maps grow incrementally: a std HashMap of a million znodes stalls the server for
// hundreds of milliseconds each time it doubles; griddle spreads that work over inserts.
use griddle::hash_map::RawEntryMut;
use griddle::HashMap as GrowingMap;

use bytes::Bytes;
use thiserror::Error;

use crate::jute::codes::EphemeralKind;
use crate::jute::records::{Acl, Stat};

pub use acl_cache::{AclCache, OPEN_UNSAFE_ACL_REF};
pub use children::Children;
use node::{Meta, NodeBox};
pub use path::{parent_and_name, sequential_suffix, validate_path};
pub use persist::{LoadError, PreparedNode, TreeLoader, WalkStack};

/// The quota tree's root.
pub const QUOTA_ROOT: &str = "/zookeeper/quota";
/// Name of the node holding a quota's limits.
pub const QUOTA_LIMITS: &str = "zookeeper_limits";
/// Name of the node holding a quota root's usage, kept current by the tree.
pub const QUOTA_STATS: &str = "zookeeper_stats";

/// A node's persisted metadata (Java's `StatPersisted`): what snapshots store; the
/// client-visible [`Stat`] is derived from it.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct StatPersisted {
    pub czxid: i64,
    pub mzxid: i64,
    pub ctime: i64,
    pub mtime: i64,
    pub version: i32,
    /// Stored cversion counts child creations only.
    pub cversion: i32,
    pub aversion: i32,
    pub ephemeral_owner: i64,
    pub pzxid: i64,
}

/// A read-only view of one znode, as [`DataTree::node`] finds it: the tree stores a node
/// packed into one block (see `node.rs`), and this is how the rest of the server reads it.
#[derive(Clone, Copy, Debug)]
pub struct Node<'a> {
    blob: &'a NodeBox,
    children: &'a Children,
}

impl<'a> Node<'a> {
    /// The data; `None` is a null buffer, distinct from empty data on the wire and in
    /// snapshots.
    pub fn data(&self) -> Option<&'a [u8]> {
        self.blob.data()
    }

    /// The stored metadata.
    pub fn stat(&self) -> StatPersisted {
        self.blob.meta().stat
    }

    /// Reference into the tree's [`AclCache`].
    pub fn acl(&self) -> i64 {
        self.blob.acl()
    }

    /// Child names (not full paths).
    pub fn children(&self) -> &'a Children {
        self.children
    }
}

/// A txn that disagrees with the tree (prep should have caught it).
#[derive(Debug, Error, PartialEq, Eq)]
pub enum TreeError {
    #[error("no node {0}")]
    NoNode(String),
    #[error("node {0} already exists")]
    NodeExists(String),
    #[error("node {0} has children")]
    NotEmpty(String),
}

/// The in-memory znode store.
#[derive(Debug)]
pub struct DataTree {
    /// Every znode, one packed block each, found by path: the table holds 8 bytes a node.
    nodes: GrowingMap<NodeBox, ()>,
    /// The children of every node that has any (a node's `PARENT` flag says whether it is
    /// here); leaves, most of a tree, pay nothing for a set they do not have.
    kids: GrowingMap<Box<str>, Children>,
    /// What a leaf's [`Node::children`] refers to.
    no_children: Children,
    acls: AclCache,
    ephemerals: HashMap<i64, BTreeSet<String>>,
    containers: BTreeSet<String>,
    ttls: BTreeSet<String>,
    quota_roots: BTreeSet<String>,
    data_size: u64,
    extended_types: bool,
    /// Java's tree digest: the wrapping sum of every node's [`node_digest`].
    digest: u64,
    /// Inserts still needed before the node table's last growth is surely complete (see
    /// [`DataTree::finish_growth`]).
    carry_debt: usize,
}

/// How many old-table entries the node table moves to its new table on each insert after it
/// grows (griddle's incremental resize moves 8; counting 4 errs on the side of finishing).
const CARRIED_PER_INSERT: usize = 4;

impl Default for DataTree {
    fn default() -> Self {
        Self::new()
    }
}

fn key(path: &str) -> &str {
    if path.is_empty() {
        "/"
    } else {
        path
    }
}

fn child_path(parent: &str, name: &str) -> String {
    if parent == "/" {
        format!("/{name}")
    } else {
        format!("{parent}/{name}")
    }
}

/// The stored Stat of a system node as Java creates it: all zero, except that
/// `/zookeeper/config` starts with aversion −1.
pub(crate) fn system_stat(path: &str) -> StatPersisted {
    StatPersisted {
        aversion: if path == "/zookeeper/config" { -1 } else { 0 },
        ..Default::default()
    }
}

/// One node's contribution to the tree digest (Java's `DigestCalculator`, version 2): CRC-32
/// of the path ("" for the root), the data, and czxid, mzxid, pzxid, ctime, mtime, version,
/// cversion, aversion, ephemeralOwner; 0 for nodes below `/zookeeper/`.
pub fn node_digest(path: &str, data: Option<&[u8]>, s: &StatPersisted) -> u64 {
    if path.starts_with("/zookeeper/") {
        return 0;
    }
    let mut h = crc32fast::Hasher::new();
    h.update(if path == "/" { b"" } else { path.as_bytes() });
    if let Some(d) = data {
        h.update(d);
    }
    let mut b = [0u8; 60];
    b[0..8].copy_from_slice(&s.czxid.to_be_bytes());
    b[8..16].copy_from_slice(&s.mzxid.to_be_bytes());
    b[16..24].copy_from_slice(&s.pzxid.to_be_bytes());
    b[24..32].copy_from_slice(&s.ctime.to_be_bytes());
    b[32..40].copy_from_slice(&s.mtime.to_be_bytes());
    b[40..44].copy_from_slice(&s.version.to_be_bytes());
    b[44..48].copy_from_slice(&s.cversion.to_be_bytes());
    b[48..52].copy_from_slice(&s.aversion.to_be_bytes());
    b[52..60].copy_from_slice(&s.ephemeral_owner.to_be_bytes());
    h.update(&b);
    h.finalize() as u64
}

fn blob_digest(b: &NodeBox) -> u64 {
    node_digest(b.path(), b.data(), &b.meta().stat)
}

/// The digest version Java 3.9 writes.
pub const DIGEST_VERSION: i32 = 2;

impl DataTree {
    /// A fresh tree with Java's system nodes.
    pub fn new() -> DataTree {
        let mut t = DataTree::empty();
        t.add_system_nodes();
        t
    }

    /// The tree digest Java computes (`zookeeper.digest.enabled`), kept current by every
    /// mutation; logged with each txn and stored in snapshots.
    pub fn digest(&self) -> u64 {
        self.digest
    }

    /// The digest recomputed from every node (for checks; [`DataTree::digest`] is incremental).
    pub fn full_digest(&self) -> u64 {
        self.nodes
            .keys()
            .fold(0u64, |acc, b| acc.wrapping_add(blob_digest(b)))
    }

    fn digest_of(&self, path: &str) -> u64 {
        self.blob(path).map(blob_digest).unwrap_or(0)
    }

    /// `zookeeper.extendedTypesEnabled`: decides whether `0xFF…` owners are TTLs.
    pub fn set_extended_types(&mut self, on: bool) {
        self.extended_types = on;
    }

    fn blob(&self, path: &str) -> Option<&NodeBox> {
        self.nodes.get_key_value(key(path)).map(|(b, _)| b)
    }

    /// The node's block, to change in place. Changing it never changes its path, so the
    /// table's hash of it stays right.
    fn blob_mut(&mut self, path: &str) -> Option<&mut NodeBox> {
        match self.nodes.raw_entry_mut().from_key(key(path)) {
            RawEntryMut::Occupied(e) => Some(e.into_key()),
            RawEntryMut::Vacant(_) => None,
        }
    }

    fn view<'a>(&'a self, blob: &'a NodeBox) -> Node<'a> {
        debug_assert_eq!(blob.is_parent(), self.kids.contains_key(blob.path()));
        let children = if blob.is_parent() {
            self.kids.get(blob.path()).unwrap_or(&self.no_children)
        } else {
            &self.no_children
        };
        Node { blob, children }
    }

    pub fn node(&self, path: &str) -> Option<Node<'_>> {
        self.blob(path).map(|b| self.view(b))
    }

    /// The client-visible Stat of a node.
    pub fn stat(&self, path: &str) -> Option<Stat> {
        self.node(path).map(|n| self.client_stat(n))
    }

    fn client_stat(&self, n: Node<'_>) -> Stat {
        let s = n.stat();
        let num_children = n.children().len() as i32;
        let ephemeral_owner = match EphemeralKind::of(s.ephemeral_owner, self.extended_types) {
            EphemeralKind::Session(id) => id,
            _ => 0,
        };
        Stat {
            czxid: s.czxid,
            mzxid: s.mzxid,
            ctime: s.ctime,
            mtime: s.mtime,
            version: s.version,
            cversion: s.cversion.wrapping_mul(2).wrapping_sub(num_children),
            aversion: s.aversion,
            ephemeral_owner,
            data_length: n.blob.data_len() as i32,
            num_children,
            pzxid: s.pzxid,
        }
    }

    pub fn acl(&self, path: &str) -> Option<&[Acl]> {
        self.blob(path).map(|b| self.acls.get(b.acl()))
    }

    pub fn children(&self, path: &str) -> Option<Vec<String>> {
        self.node(path)
            .map(|n| n.children().iter().map(str::to_owned).collect())
    }

    /// The children of `parent`, to add to: the one place a node becomes a parent (its flag
    /// set, its entry in the parents' table made). `None` if there is no such node.
    fn children_mut(&mut self, parent: &str) -> Option<&mut Children> {
        let parent = key(parent);
        let Self { nodes, kids, .. } = self;
        match kids.raw_entry_mut().from_key(parent) {
            // Already a parent: its flag is set.
            RawEntryMut::Occupied(e) => Some(e.into_mut()),
            RawEntryMut::Vacant(v) => {
                match nodes.raw_entry_mut().from_key(parent) {
                    RawEntryMut::Occupied(n) => n.into_key().set_parent(true),
                    RawEntryMut::Vacant(_) => return None,
                }
                let (_, set) = v.insert(parent.into(), Children::default());
                Some(set)
            }
        }
    }

    /// Add `name` to the children of `parent`; false if there is no such node.
    fn add_child(&mut self, parent: &str, name: &str) -> bool {
        self.children_mut(parent).is_some_and(|set| {
            set.insert(name);
            true
        })
    }

    /// Remove `name` from the children of `parent`; when the last goes, the node is a leaf
    /// again (entry dropped, flag cleared).
    fn remove_child(&mut self, parent: &str, name: &str) {
        let Some(set) = self.kids.get_mut(parent) else {
            return;
        };
        set.remove(name);
        if set.is_empty() {
            self.kids.remove(parent);
            if let Some(p) = self.blob_mut(parent) {
                p.set_parent(false);
            }
        }
    }

    fn index(&mut self, path: &str, owner: i64) {
        match EphemeralKind::of(owner, self.extended_types) {
            EphemeralKind::Session(id) => {
                self.ephemerals
                    .entry(id)
                    .or_default()
                    .insert(path.to_owned());
            }
            EphemeralKind::Container => {
                self.containers.insert(path.to_owned());
            }
            EphemeralKind::Ttl(_) => {
                self.ttls.insert(path.to_owned());
            }
            EphemeralKind::Persistent => {}
        }
    }

    fn unindex(&mut self, path: &str, owner: i64) {
        match EphemeralKind::of(owner, self.extended_types) {
            EphemeralKind::Session(id) => {
                if let Some(set) = self.ephemerals.get_mut(&id) {
                    set.remove(path);
                    if set.is_empty() {
                        self.ephemerals.remove(&id);
                    }
                }
            }
            EphemeralKind::Container => {
                self.containers.remove(path);
            }
            EphemeralKind::Ttl(_) => {
                self.ttls.remove(path);
            }
            EphemeralKind::Persistent => {}
        }
    }

    /// Add a node. `parent_cversion` is the parent's new stored cversion (from prep).
    #[allow(clippy::too_many_arguments)]
    pub fn create_node(
        &mut self,
        path: &str,
        data: Option<Bytes>,
        acl: Vec<Acl>,
        ephemeral_owner: i64,
        parent_cversion: i32,
        zxid: i64,
        time: i64,
    ) -> Result<(), TreeError> {
        let (parent_path, name) = parent_and_name(path);
        if self.nodes.contains_key(path) {
            return Err(TreeError::NodeExists(path.to_owned()));
        }
        let parent = self
            .blob_mut(parent_path)
            .ok_or_else(|| TreeError::NoNode(parent_path.to_owned()))?;
        // A node's digest covers its own fields, not its children: the parent's is final
        // once its stat is.
        let parent_before = blob_digest(parent);
        let mut pm = parent.meta();
        let parent_cversion = if parent_cversion == -1 {
            pm.stat.cversion.wrapping_add(1)
        } else {
            parent_cversion
        };
        if parent_cversion > pm.stat.cversion {
            pm.stat.cversion = parent_cversion;
            pm.stat.pzxid = zxid;
        }
        parent.set_meta(&pm);
        let parent_after = blob_digest(parent);
        self.add_child(parent_path, name);
        let acl_ref = self.acls.intern(&acl);
        let len = data.as_ref().map(|d| d.len()).unwrap_or(0) as i64;
        self.data_size += (path.len() as i64 + len) as u64;
        let meta = Meta {
            stat: StatPersisted {
                czxid: zxid,
                mzxid: zxid,
                ctime: time,
                mtime: time,
                ephemeral_owner,
                pzxid: zxid,
                ..Default::default()
            },
            acl: acl_ref,
        };
        let blob = NodeBox::new(path, data.as_deref(), &meta);
        let own = blob_digest(&blob);
        self.insert_blob(blob);
        self.digest = self
            .digest
            .wrapping_sub(parent_before)
            .wrapping_add(parent_after)
            .wrapping_add(own);
        self.index(path, ephemeral_owner);
        self.quota_after_create(path, parent_path, name, len);
        Ok(())
    }

    /// Put a new block in the node table, keeping count of how far its incremental growth has
    /// to go: when the table outgrows its capacity it allocates one twice the size and moves
    /// the old entries a few per insert, so until that many more inserts have happened both
    /// tables are allocated.
    fn insert_blob(&mut self, blob: NodeBox) {
        let before = self.nodes.capacity();
        self.nodes.insert(blob, ());
        self.note_insert(before);
    }

    /// Count one insert into the node table, whose capacity was `before` it. A growth at
    /// least doubles the capacity; an insert into a deleted entry's slot raises it by one.
    pub(super) fn note_insert(&mut self, before: usize) {
        if self.nodes.capacity() > before + 1 {
            self.started_growth();
        } else {
            self.carry_debt = self.carry_debt.saturating_sub(1);
        }
    }

    /// The node table just grew: every entry but the newest is still in its old table.
    pub(super) fn started_growth(&mut self) {
        let moving = self.nodes.len().saturating_sub(1);
        self.carry_debt = moving.div_ceil(CARRIED_PER_INSERT) + 1;
    }

    /// Whether the node table may still hold its pre-growth table.
    pub fn growing(&self) -> bool {
        self.carry_debt > 0
    }

    /// Spend up to `limit` finishing the node table's incremental growth without new nodes,
    /// so that a tree which stopped growing (a load of a million nodes, then reads) frees the
    /// old table, about 9 bytes a node, instead of keeping it until the next writes. Each
    /// step takes the root out of the table and puts it back: an insert, which moves old
    /// entries along. Returns whether more remains.
    pub fn finish_growth(&mut self, limit: Duration) -> bool {
        let t0 = Instant::now();
        let mut steps = 0u32;
        while self.growing() {
            let Some((root, ())) = self.nodes.remove_entry("/") else {
                self.carry_debt = 0;
                break;
            };
            self.insert_blob(root);
            steps += 1;
            if steps % 64 == 0 && t0.elapsed() >= limit {
                break;
            }
        }
        self.growing()
    }

    /// Remove a leaf node.
    pub fn delete_node(&mut self, path: &str, zxid: i64) -> Result<(), TreeError> {
        let (parent_path, name) = parent_and_name(path);
        let node = match self.nodes.raw_entry_mut().from_key(key(path)) {
            RawEntryMut::Vacant(_) => return Err(TreeError::NoNode(path.to_owned())),
            RawEntryMut::Occupied(e) => {
                debug_assert_eq!(e.key().is_parent(), self.kids.contains_key(e.key().path()));
                if e.key().is_parent() {
                    return Err(TreeError::NotEmpty(path.to_owned()));
                }
                e.remove_entry().0
            }
        };
        let mut before = blob_digest(&node);
        let mut after = 0;
        if let Some(parent) = self.blob_mut(parent_path) {
            before = before.wrapping_add(blob_digest(parent));
            let mut pm = parent.meta();
            if zxid > pm.stat.pzxid {
                pm.stat.pzxid = zxid;
                parent.set_meta(&pm);
            }
            after = blob_digest(parent);
        }
        self.remove_child(parent_path, name);
        self.digest = self.digest.wrapping_sub(before).wrapping_add(after);
        let meta = node.meta();
        self.acls.release(meta.acl);
        let len = node.data_len() as u64;
        self.data_size = self.data_size.saturating_sub(path.len() as u64 + len);
        self.unindex(path, meta.stat.ephemeral_owner);
        if parent_path.starts_with(QUOTA_ROOT) && name == QUOTA_LIMITS {
            self.quota_roots.remove(&parent_path[QUOTA_ROOT.len()..]);
        }
        if let Some(root) = self.quota_root_of(path) {
            self.bump_quota(&root, -(len as i64), -1);
        }
        Ok(())
    }

    /// Replace a node's data; `version` is the new version prep computed.
    pub fn set_data(
        &mut self,
        path: &str,
        data: Option<Bytes>,
        version: i32,
        zxid: i64,
        time: i64,
    ) -> Result<Stat, TreeError> {
        let before = self.digest_of(path);
        let n = self
            .blob_mut(path)
            .ok_or_else(|| TreeError::NoNode(path.to_owned()))?;
        let old = n.data_len() as i64;
        let new = data.as_ref().map(|d| d.len()).unwrap_or(0) as i64;
        let mut m = n.meta();
        m.stat.version = version;
        m.stat.mzxid = zxid;
        m.stat.mtime = time;
        n.set_data(data.as_deref(), &m);
        self.digest = self
            .digest
            .wrapping_sub(before)
            .wrapping_add(self.digest_of(path));
        self.data_size = (self.data_size as i64 + new - old).max(0) as u64;
        if let Some(root) = self.quota_root_of(path) {
            self.bump_quota(&root, new - old, 0);
        }
        self.stat(path)
            .ok_or_else(|| TreeError::NoNode(path.to_owned()))
    }

    /// Replace a node's ACL; `aversion` is the new ACL version prep computed.
    pub fn set_acl(&mut self, path: &str, acl: Vec<Acl>, aversion: i32) -> Result<Stat, TreeError> {
        let before = self.digest_of(path);
        let new_ref = self.acls.intern(&acl);
        let Some(n) = self.blob_mut(path) else {
            self.acls.release(new_ref);
            return Err(TreeError::NoNode(path.to_owned()));
        };
        let mut m = n.meta();
        let old_ref = std::mem::replace(&mut m.acl, new_ref);
        m.stat.aversion = aversion;
        n.set_meta(&m);
        self.acls.release(old_ref);
        self.digest = self
            .digest
            .wrapping_sub(before)
            .wrapping_add(self.digest_of(path));
        self.stat(path)
            .ok_or_else(|| TreeError::NoNode(path.to_owned()))
    }

    /// Paths of the ephemerals a session owns, sorted.
    pub fn ephemerals(&self, session_id: i64) -> Vec<String> {
        self.ephemerals
            .get(&session_id)
            .map(|s| s.iter().cloned().collect())
            .unwrap_or_default()
    }

    pub fn sessions_with_ephemerals(&self) -> Vec<(i64, Vec<String>)> {
        let mut v: Vec<(i64, Vec<String>)> = self
            .ephemerals
            .iter()
            .map(|(k, s)| (*k, s.iter().cloned().collect()))
            .collect();
        v.sort();
        v
    }

    pub fn containers(&self) -> Vec<String> {
        self.containers.iter().cloned().collect()
    }

    pub fn ttls(&self) -> Vec<String> {
        self.ttls.iter().cloned().collect()
    }

    /// getAllChildrenNumber: every descendant.
    pub fn count_descendants(&self, path: &str) -> Option<i32> {
        let path = key(path);
        if path == "/" {
            return Some(self.node_count() as i32 - 2);
        }
        let mut count = 0i32;
        let mut stack = vec![path.to_owned()];
        while let Some(p) = stack.pop() {
            let n = self.node(&p)?;
            for c in n.children() {
                count += 1;
                stack.push(child_path(&p, c));
            }
        }
        Some(count)
    }

    /// Node count as Java reports it (its map holds the root twice, as "" and "/").
    pub fn node_count(&self) -> usize {
        self.nodes.len() + 1
    }

    /// Sum of path and data lengths (`zk_approximate_data_size`).
    pub fn approximate_data_size(&self) -> u64 {
        self.data_size
    }

    pub fn ephemeral_count(&self) -> usize {
        self.ephemerals.values().map(BTreeSet::len).sum()
    }

    /// The interned ACL lists (for snapshots).
    pub fn acl_cache_entries(&self) -> Vec<(i64, Vec<Acl>)> {
        self.acls.entries()
    }

    // ----- quotas ----------------------------------------------------------------------

    /// The deepest quota root at or above `path`, if any.
    fn quota_root_of(&self, path: &str) -> Option<String> {
        if self.quota_roots.is_empty() || path.starts_with(QUOTA_ROOT) {
            return None;
        }
        let mut p = Some(path);
        while let Some(cur) = p {
            if self.quota_roots.contains(cur) {
                return Some(cur.to_owned());
            }
            p = if cur == "/" {
                None
            } else {
                Some(parent_and_name(cur).0)
            };
        }
        None
    }

    fn quota_after_create(&mut self, path: &str, parent_path: &str, name: &str, len: i64) {
        if let Some(quota_path) = parent_path.strip_prefix(QUOTA_ROOT) {
            if name == QUOTA_LIMITS {
                self.quota_roots.insert(quota_path.to_owned());
            }
            if name == QUOTA_LIMITS || name == QUOTA_STATS {
                self.recount_quota(quota_path);
            }
            return;
        }
        if let Some(root) = self.quota_root_of(path) {
            self.bump_quota(&root, len, 1);
        }
    }

    fn stats_node_path(root: &str) -> String {
        format!("{QUOTA_ROOT}{root}/{QUOTA_STATS}")
    }

    fn write_quota_stats(&mut self, root: &str, count: i64, bytes: i64) {
        let p = Self::stats_node_path(root);
        let text = format!("count={count},bytes={bytes}");
        if let Some(n) = self.blob_mut(&p) {
            let old = n.data_len() as i64;
            let meta = n.meta();
            n.set_data(Some(text.as_bytes()), &meta);
            self.data_size = (self.data_size as i64 + text.len() as i64 - old).max(0) as u64;
        }
    }

    /// Recompute a quota root's usage from its subtree.
    fn recount_quota(&mut self, root: &str) {
        if !self.nodes.contains_key(root) {
            return;
        }
        let (mut count, mut bytes) = (0i64, 0i64);
        let mut stack = vec![root.to_owned()];
        while let Some(p) = stack.pop() {
            if let Some(n) = self.node(&p) {
                count += 1;
                bytes += n.blob.data_len() as i64;
                stack.extend(n.children().iter().map(|c| child_path(&p, c)));
            }
        }
        self.write_quota_stats(root, count, bytes);
    }

    fn bump_quota(&mut self, root: &str, bytes: i64, count: i64) {
        let p = Self::stats_node_path(root);
        let Some(n) = self.blob(&p) else {
            return;
        };
        let text = n
            .data()
            .map(|d| String::from_utf8_lossy(d).into_owned())
            .unwrap_or_default();
        let (mut c, mut b) = (0i64, 0i64);
        for part in text.split(',') {
            match part.split_once('=') {
                Some(("count", v)) => c = v.trim().parse().unwrap_or(0),
                Some(("bytes", v)) => b = v.trim().parse().unwrap_or(0),
                _ => {}
            }
        }
        self.write_quota_stats(root, c + count, b + bytes);
    }
}

#[cfg(test)]
mod tests;

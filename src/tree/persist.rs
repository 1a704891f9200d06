//! The tree's side of persistence: rebuilding from a snapshot, serializing itself in slices
//! for a fuzzy snapshot, and the repairs a replay over a fuzzy snapshot needs.

use bytes::Bytes;
use griddle::hash_map::Entry;

use super::QUOTA_ROOT;
use super::{blob_digest, child_path, key, parent_and_name, DataTree, StatPersisted};
use super::{Children, Meta, NodeBox};
use super::{OPEN_UNSAFE_ACL_REF, QUOTA_LIMITS};
use crate::jute::records::Acl;
use crate::jute::{Perms, Writer};

/// Why a snapshot's nodes do not form a tree.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum LoadError {
    #[error("node {0} comes before its parent")]
    Orphan(String),
    #[error("node {path} refers to ACL {acl_ref}, which is not in the snapshot's ACL cache")]
    MissingAcl { path: String, acl_ref: i64 },
    #[error("node {0} appears twice")]
    Duplicate(String),
}

impl StatPersisted {
    /// The record as a snapshot stores it (jute `StatPersisted`).
    pub fn write_to(&self, w: &mut Writer) {
        w.i64(self.czxid)
            .i64(self.mzxid)
            .i64(self.ctime)
            .i64(self.mtime)
            .i32(self.version)
            .i32(self.cversion)
            .i32(self.aversion)
            .i64(self.ephemeral_owner)
            .i64(self.pzxid);
    }
}

/// Children queued per step of a walk: a parent with a million children is taken a run at a
/// time, resuming after the last name, not all at once.
const CHILD_RUN: usize = 16;

/// Where a preorder walk of the tree (a snapshot's node section) stands, so that it can stop
/// after any number of nodes and resume while the tree changes: a node is written before its
/// children, and each parent's children are taken in runs, in name order, resuming after the
/// last name taken. A node created behind the walk is missed and one deleted ahead of it is
/// skipped; the log replayed over the snapshot covers both.
#[derive(Debug)]
pub struct WalkStack(Vec<Frame>);

#[derive(Debug)]
enum Frame {
    Node(String),
    Children {
        parent: String,
        after: Option<Box<str>>,
    },
}

impl WalkStack {
    /// A walk from the root.
    pub fn new() -> WalkStack {
        WalkStack(vec![Frame::Node("/".to_owned())])
    }

    /// The walk is done.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

impl Default for WalkStack {
    fn default() -> Self {
        Self::new()
    }
}

/// Builds a [`DataTree`] from a snapshot's sections, in file order.
pub struct TreeLoader {
    tree: DataTree,
    /// The chain of nodes from the root to the last one added (`open[..depth]`; the entries
    /// past it are kept for their buffers), each with the names of its children so far.
    open: Vec<Open>,
    depth: usize,
}

/// A node on the chain [`TreeLoader`] keeps: its children's names wait here until the load
/// has moved past its subtree, then go into its set at once (built in one pass from the
/// sorted names rather than one insert at a time).
#[derive(Default)]
struct Open {
    path: String,
    /// The names, one after another, each ending at the next offset in `ends`.
    names: String,
    ends: Vec<usize>,
}

impl Open {
    /// Put the waiting names into the node's children.
    fn close(&mut self, tree: &mut DataTree) {
        if self.ends.is_empty() {
            return;
        }
        if let Some(set) = tree.children_mut(&self.path) {
            let mut start = 0;
            let names = self.ends.iter().map(|&end| {
                let name = &self.names[start..end];
                start = end;
                name
            });
            if set.is_empty() {
                *set = Children::from_names(names);
            } else {
                for name in names {
                    set.insert(name);
                }
            }
        }
        self.names.clear();
        self.ends.clear();
    }
}

/// A node ready to go into the tree: its packed block and its digest. Making one needs
/// nothing from the tree, so a load can make them on another thread than the one that adds
/// them.
pub struct PreparedNode {
    blob: NodeBox,
    digest: u64,
}

impl PreparedNode {
    pub fn new(path: &str, data: Option<&[u8]>, acl_ref: i64, stat: StatPersisted) -> PreparedNode {
        let meta = Meta { stat, acl: acl_ref };
        let blob = NodeBox::new(key(path), data, &meta);
        // The digest as the node is made, while its bytes are in the cache.
        let digest = blob_digest(&blob);
        PreparedNode { blob, digest }
    }
}

impl TreeLoader {
    /// Start from the snapshot's ACL cache.
    pub fn new(acls: Vec<(i64, Vec<Acl>)>, extended_types: bool) -> TreeLoader {
        let mut tree = DataTree::empty();
        tree.extended_types = extended_types;
        tree.acls.restore(acls);
        TreeLoader {
            tree,
            open: Vec::new(),
            depth: 0,
        }
    }

    /// Add one node; its parent must already be loaded (snapshots are in preorder).
    pub fn add(
        &mut self,
        path: &str,
        data: Option<Bytes>,
        acl_ref: i64,
        stat: StatPersisted,
    ) -> Result<(), LoadError> {
        self.add_prepared(PreparedNode::new(path, data.as_deref(), acl_ref, stat))
    }

    /// [`TreeLoader::add`] for data borrowed from a reader: it is copied once, into the node.
    pub fn add_ref(
        &mut self,
        path: &str,
        data: Option<&[u8]>,
        acl_ref: i64,
        stat: StatPersisted,
    ) -> Result<(), LoadError> {
        self.add_prepared(PreparedNode::new(path, data, acl_ref, stat))
    }

    /// Make room for `additional` more nodes, so the node table does not grow (and move every
    /// node) during the load. Call early: what is loaded by then moves once.
    pub fn reserve(&mut self, additional: usize) {
        let before = self.tree.nodes.capacity();
        self.tree.nodes.reserve(additional);
        if self.tree.nodes.capacity() > before + 1 {
            self.tree.started_growth();
        }
    }

    /// Add a node made by [`PreparedNode::new`]; its parent must already be loaded.
    pub fn add_prepared(&mut self, prepared: PreparedNode) -> Result<(), LoadError> {
        let PreparedNode { blob, digest } = prepared;
        let path: &str = blob.path();
        let (parent, name) = parent_and_name(path);
        if path == "/" {
            self.close_to(None);
        } else if let Some(level) = self.close_to(Some(parent)) {
            // Snapshots are in preorder, so the parent is on the chain.
            let o = &mut self.open[level];
            o.names.push_str(name);
            o.ends.push(o.names.len());
        } else {
            // Not in preorder: straight into the parent's set.
            if !self.tree.add_child(parent, name) {
                return Err(LoadError::Orphan(path.to_owned()));
            }
        }
        let t = &mut self.tree;
        let meta = blob.meta();
        let acl_ref = meta.acl;
        if acl_ref != OPEN_UNSAFE_ACL_REF && !t.acls.add_use(acl_ref) {
            return Err(LoadError::MissingAcl {
                path: path.to_owned(),
                acl_ref,
            });
        }
        let len = blob.data_len();
        t.data_size += (path.len() + len) as u64;
        t.digest = t.digest.wrapping_add(digest);
        t.index(path, meta.stat.ephemeral_owner);
        if let Some(q) = parent.strip_prefix(QUOTA_ROOT) {
            if name == QUOTA_LIMITS {
                t.quota_roots.insert(q.to_owned());
            }
        }
        if self.open.len() == self.depth {
            self.open.push(Open::default());
        }
        let o = &mut self.open[self.depth];
        o.path.clear();
        o.path.push_str(path);
        self.depth += 1;
        // (A failed load is dropped whole, so what was recorded above does not matter then.)
        let before = self.tree.nodes.capacity();
        match self.tree.nodes.entry(blob) {
            Entry::Occupied(e) => Err(LoadError::Duplicate(e.key().path().to_owned())),
            Entry::Vacant(v) => {
                v.insert(());
                self.tree.note_insert(before);
                Ok(())
            }
        }
    }

    /// Close the chain's nodes below `parent` (all of them for `None`); the level of
    /// `parent`, if it is on the chain.
    fn close_to(&mut self, parent: Option<&str>) -> Option<usize> {
        while self.depth > 0 {
            let top = &mut self.open[self.depth - 1];
            if parent == Some(top.path.as_str()) {
                return Some(self.depth - 1);
            }
            top.close(&mut self.tree);
            self.depth -= 1;
        }
        None
    }

    /// Nodes loaded so far.
    pub fn len(&self) -> usize {
        self.tree.nodes.len()
    }

    pub fn is_empty(&self) -> bool {
        self.tree.nodes.is_empty()
    }

    /// The finished tree: unused ACL entries dropped, missing system nodes added.
    pub fn finish(mut self) -> DataTree {
        self.close_to(None);
        let t = &mut self.tree;
        t.acls.purge_unused();
        t.add_system_nodes();
        self.tree
    }
}

impl DataTree {
    /// A tree with no nodes at all (the start of a load, or of [`DataTree::new`]).
    pub(super) fn empty() -> DataTree {
        DataTree {
            nodes: Default::default(),
            kids: Default::default(),
            no_children: Children::default(),
            acls: Default::default(),
            ephemerals: Default::default(),
            containers: Default::default(),
            ttls: Default::default(),
            quota_roots: Default::default(),
            data_size: 0,
            extended_types: false,
            digest: 0,
            carry_debt: 0,
        }
    }

    /// The root, `/zookeeper`, `/zookeeper/quota` and `/zookeeper/config`, where missing, as
    /// Java creates them, each added to the digest (which covers every other node already).
    pub(super) fn add_system_nodes(&mut self) {
        for path in ["/", "/zookeeper", QUOTA_ROOT, "/zookeeper/config"] {
            if self.nodes.contains_key(path) {
                continue;
            }
            let acl = if path == "/zookeeper/config" {
                self.acls
                    .intern(&[Acl::new(Perms::READ, "world", "anyone")])
            } else {
                OPEN_UNSAFE_ACL_REF
            };
            if path != "/" {
                let (parent, name) = parent_and_name(path);
                self.add_child(parent, name);
                self.data_size += path.len() as u64;
            }
            let meta = Meta {
                stat: super::system_stat(path),
                acl,
            };
            let blob = NodeBox::new(path, Some(&[]), &meta);
            self.digest = self.digest.wrapping_add(blob_digest(&blob));
            self.insert_blob(blob);
        }
        debug_assert_eq!(self.digest, self.full_digest());
    }

    /// Recompute every quota root's usage from the tree (after a load and replay, as Java's
    /// `setupQuota` does: a fuzzy snapshot's stats nodes may be stale).
    pub fn recount_quotas(&mut self) {
        let roots: Vec<String> = self.quota_roots.iter().cloned().collect();
        for r in roots {
            self.recount_quota(&r);
        }
    }

    /// Replay of a create that found its node already there (a fuzzy snapshot caught it):
    /// bring the parent's cversion and pzxid up to what the txn says, as Java does.
    pub fn repair_parent_after_create(&mut self, path: &str, parent_cversion: i32, zxid: i64) {
        let (parent, _) = parent_and_name(path);
        let before = self.digest_of(parent);
        if let Some(p) = self.blob_mut(parent) {
            let mut m = p.meta();
            let cv = if parent_cversion == -1 {
                m.stat.cversion.wrapping_add(1)
            } else {
                parent_cversion
            };
            if cv > m.stat.cversion {
                m.stat.cversion = cv;
                m.stat.pzxid = zxid;
                p.set_meta(&m);
            }
        }
        self.digest = self
            .digest
            .wrapping_sub(before)
            .wrapping_add(self.digest_of(parent));
    }

    /// Replay of a delete whose node a fuzzy snapshot already lacks: the delete still moved
    /// the parent's pzxid. (Java leaves the parent as the snapshot caught it; its digest then
    /// disagrees until a later change. Raising pzxid to the txn's zxid is what the parent
    /// held after the delete, and later txns only raise it further.)
    pub fn repair_parent_after_delete(&mut self, path: &str, zxid: i64) {
        let (parent, _) = parent_and_name(path);
        let before = self.digest_of(parent);
        if let Some(p) = self.blob_mut(parent) {
            let mut m = p.meta();
            if zxid > m.stat.pzxid {
                m.stat.pzxid = zxid;
                p.set_meta(&m);
            }
        }
        self.digest = self
            .digest
            .wrapping_sub(before)
            .wrapping_add(self.digest_of(parent));
    }

    /// Serialize up to `budget` nodes of a preorder walk into `w`, in the snapshot's node
    /// format. `stack` holds the paths still to visit (start it with `["/"]`); nodes that
    /// were deleted since they were queued are skipped, and children created after their
    /// parent was visited are not visited (the log replay after the snapshot covers both).
    /// Returns how many nodes were written.
    pub fn serialize_slice(&self, stack: &mut WalkStack, w: &mut Writer, budget: usize) -> usize {
        let mut max_acl = i64::MIN;
        self.serialize_slice_acls(stack, w, budget, &mut max_acl)
    }

    /// [`DataTree::serialize_slice`], also raising `max_acl` to the largest ACL reference a
    /// written node carries (a snapshot written as it walks checks that its ACL section,
    /// taken before the walk, holds them all).
    pub fn serialize_slice_acls(
        &self,
        stack: &mut WalkStack,
        w: &mut Writer,
        budget: usize,
        max_acl: &mut i64,
    ) -> usize {
        let mut written = 0;
        // Work units: one per node, one per run of children queued.
        let mut work = 0;
        while work < budget {
            let Some(frame) = stack.0.pop() else { break };
            work += 1;
            match frame {
                Frame::Node(path) => {
                    let Some(n) = self.blob(&path) else {
                        continue;
                    };
                    let meta = n.meta();
                    w.ustring(if path == "/" { "" } else { &path })
                        .buffer(n.data())
                        .i64(meta.acl);
                    meta.stat.write_to(w);
                    *max_acl = (*max_acl).max(meta.acl);
                    written += 1;
                    if n.is_parent() {
                        stack.0.push(Frame::Children {
                            parent: path,
                            after: None,
                        });
                    }
                }
                Frame::Children { parent, after } => {
                    let Some(set) = self.kids.get(parent.as_str()) else {
                        continue;
                    };
                    let names = set.after(after.as_deref(), CHILD_RUN);
                    let Some(last) = names.last() else { continue };
                    let more = names.len() == CHILD_RUN;
                    let last: Box<str> = (*last).into();
                    let paths: Vec<String> = names.iter().map(|c| child_path(&parent, c)).collect();
                    if more {
                        stack.0.push(Frame::Children {
                            parent,
                            after: Some(last),
                        });
                    }
                    // Reversed, so the first name is walked first (and its subtree before
                    // the next name).
                    stack.0.extend(paths.into_iter().rev().map(Frame::Node));
                }
            }
        }
        written
    }

    /// The reference the next newly interned ACL list will get (references only grow).
    pub fn acl_next_ref(&self) -> i64 {
        self.acls.next_ref()
    }

    /// Keep every ACL entry while a snapshot is being written (see [`super::AclCache::pin`]).
    pub fn pin_acls(&mut self, on: bool) {
        if on {
            self.acls.pin();
        } else {
            self.acls.unpin();
        }
    }
}

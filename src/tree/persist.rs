//! The tree's side of persistence: rebuilding from a snapshot, serializing itself in slices
//! for a fuzzy snapshot, and the repairs a replay over a fuzzy snapshot needs.

use bytes::Bytes;

use super::{child_path, key, parent_and_name, DataTree, Node, StatPersisted, QUOTA_ROOT};
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

/// Builds a [`DataTree`] from a snapshot's sections, in file order.
pub struct TreeLoader {
    tree: DataTree,
}

impl TreeLoader {
    /// Start from the snapshot's ACL cache.
    pub fn new(acls: Vec<(i64, Vec<Acl>)>, extended_types: bool) -> TreeLoader {
        let mut tree = DataTree::empty();
        tree.extended_types = extended_types;
        tree.acls.restore(acls);
        TreeLoader { tree }
    }

    /// Add one node; its parent must already be loaded (snapshots are in preorder).
    pub fn add(
        &mut self,
        path: &str,
        data: Option<Bytes>,
        acl_ref: i64,
        stat: StatPersisted,
    ) -> Result<(), LoadError> {
        let path = key(path);
        let t = &mut self.tree;
        if t.nodes.contains_key(path) {
            return Err(LoadError::Duplicate(path.to_owned()));
        }
        if path != "/" {
            let (parent, name) = parent_and_name(path);
            let Some(p) = t.nodes.get_mut(parent) else {
                return Err(LoadError::Orphan(path.to_owned()));
            };
            p.children.insert(name);
        }
        if acl_ref != OPEN_UNSAFE_ACL_REF && !t.acls.add_use(acl_ref) {
            return Err(LoadError::MissingAcl {
                path: path.to_owned(),
                acl_ref,
            });
        }
        let len = data.as_ref().map(|d| d.len()).unwrap_or(0);
        t.data_size += (path.len() + len) as u64;
        let owner = stat.ephemeral_owner;
        t.nodes.insert(
            path.into(),
            Box::new(Node {
                data: data.map(|d| Box::from(&d[..])),
                acl: acl_ref,
                stat,
                children: Default::default(),
            }),
        );
        t.index(path, owner);
        if let Some(q) = parent_and_name(path).0.strip_prefix(QUOTA_ROOT) {
            if parent_and_name(path).1 == QUOTA_LIMITS {
                t.quota_roots.insert(q.to_owned());
            }
        }
        Ok(())
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
            acls: Default::default(),
            ephemerals: Default::default(),
            containers: Default::default(),
            ttls: Default::default(),
            quota_roots: Default::default(),
            data_size: 0,
            extended_types: false,
            digest: 0,
        }
    }

    /// The root, `/zookeeper`, `/zookeeper/quota` and `/zookeeper/config`, where missing, as
    /// Java creates them; then the digest, computed over the whole tree.
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
                if let Some(p) = self.nodes.get_mut(parent) {
                    p.children.insert(name);
                }
                self.data_size += path.len() as u64;
            }
            self.nodes.insert(
                path.into(),
                Box::new(Node {
                    data: Some(Box::default()),
                    acl,
                    stat: super::system_stat(path),
                    ..Default::default()
                }),
            );
        }
        self.digest = self.full_digest();
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
        if let Some(p) = self.nodes.get_mut(parent) {
            let cv = if parent_cversion == -1 {
                p.stat.cversion.wrapping_add(1)
            } else {
                parent_cversion
            };
            if cv > p.stat.cversion {
                p.stat.cversion = cv;
                p.stat.pzxid = zxid;
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
        if let Some(p) = self.nodes.get_mut(parent) {
            if zxid > p.stat.pzxid {
                p.stat.pzxid = zxid;
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
    pub fn serialize_slice(&self, stack: &mut Vec<String>, w: &mut Writer, budget: usize) -> usize {
        let mut written = 0;
        // Work units: one per node, plus one per 16 children queued (a parent with a million
        // children is a lot of paths to queue).
        let mut work = 0;
        while work < budget {
            let Some(path) = stack.pop() else { break };
            let Some(n) = self.nodes.get(path.as_str()) else {
                continue;
            };
            w.ustring(if path == "/" { "" } else { &path })
                .buffer(n.data.as_deref())
                .i64(n.acl);
            let s = &n.stat;
            w.i64(s.czxid)
                .i64(s.mzxid)
                .i64(s.ctime)
                .i64(s.mtime)
                .i32(s.version)
                .i32(s.cversion)
                .i32(s.aversion)
                .i64(s.ephemeral_owner)
                .i64(s.pzxid);
            for c in &n.children {
                stack.push(child_path(&path, c));
            }
            written += 1;
            work += 1 + n.children.len() / 16;
        }
        written
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

//! Apply: a committed [`TxnEntry`] changes the DataTree and fires watches.
//!
//! This is the half of Java's `FinalRequestProcessor` (with `DataTree.processTxn`) that every
//! replica runs identically. It returns what the reply needs and which connections must hear
//! which events; the caller delivers the events before it sends any reply.

use crate::jute::records::{Acl, Stat};
use crate::jute::{ErrorCode, EventType, OpCode};
use crate::tree::{parent_and_name, DataTree};
use crate::watch::{ConnId, WatchManager};

use super::txn::{Txn, TxnEntry};

/// A watch event to deliver: the connections registered for it, and the ACL that decides
/// whether each may see it (READ needed at fire time).
#[derive(Debug, Clone)]
pub struct Fired {
    pub event: EventType,
    pub path: String,
    pub conns: Vec<ConnId>,
    pub acl: Vec<Acl>,
}

/// The result of one applied (sub-)txn, as the reply reports it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum OpResult {
    Created {
        op: OpCode,
        path: String,
        stat: Stat,
    },
    Deleted,
    SetData {
        stat: Stat,
    },
    SetAcl {
        stat: Stat,
    },
    Checked,
    SessionCreated,
    SessionClosed,
    Error(ErrorCode),
    Multi(Vec<OpResult>),
}

/// Applies txns to the tree and the watch manager.
pub struct Applier<'a> {
    pub tree: &'a mut DataTree,
    pub watches: &'a mut WatchManager,
    pub fired: &'a mut Vec<Fired>,
}

impl Applier<'_> {
    fn fire(&mut self, path: &str, event: EventType, acl: Vec<Acl>) {
        let conns = self.watches.trigger(path, event);
        if !conns.is_empty() {
            self.fired.push(Fired {
                event,
                path: path.to_owned(),
                conns,
                acl,
            });
        }
    }

    fn acl_of(&self, path: &str) -> Vec<Acl> {
        self.tree.acl(path).map(<[Acl]>::to_vec).unwrap_or_default()
    }

    /// Apply one entry. A txn that cannot be applied (the tree disagrees with prep) yields an
    /// error result; with a single writer this only happens on a bug, and is logged.
    pub fn apply(&mut self, entry: &TxnEntry) -> OpResult {
        self.apply_txn(&entry.txn, entry.header.zxid, entry.header.time)
    }

    /// Apply a logged entry at start-up, over a snapshot that may already hold some of its
    /// effects (snapshots are fuzzy). What is already there is left alone, as Java's replay
    /// does; a create that finds its node still brings the parent's cversion up to date.
    pub fn replay(&mut self, entry: &TxnEntry) {
        let (zxid, time) = (entry.header.zxid, entry.header.time);
        self.replay_txn(&entry.txn, entry.header.client_id, zxid, time);
    }

    fn replay_txn(&mut self, txn: &Txn, session: i64, zxid: i64, time: i64) {
        match txn {
            Txn::Create {
                path,
                parent_cversion,
                ..
            } if self.tree.node(path).is_some() => {
                self.tree
                    .repair_parent_after_create(path, *parent_cversion, zxid);
            }
            Txn::Delete { path } | Txn::DeleteContainer { path }
                if self.tree.node(path).is_none() =>
            {
                self.tree.repair_parent_after_delete(path, zxid);
            }
            Txn::Delete { path } | Txn::DeleteContainer { path }
                if self
                    .tree
                    .node(path)
                    .is_some_and(|n| !n.children().is_empty()) => {}
            Txn::SetData { path, .. } | Txn::SetAcl { path, .. }
                if self.tree.node(path).is_none() => {}
            Txn::CloseSession { paths } => {
                // Java kills the session's ephemerals as the tree knows them; older logs
                // carry no paths.
                let mut all = self.tree.ephemerals(session);
                all.extend(paths.iter().cloned());
                all.sort();
                all.dedup();
                for p in all.iter().rev() {
                    match self.tree.node(p) {
                        Some(n) if n.children().is_empty() => {
                            self.delete(p, zxid);
                        }
                        Some(_) => {}
                        None => self.tree.repair_parent_after_delete(p, zxid),
                    }
                }
            }
            Txn::Multi(ops) if !txn.is_failed_multi() => {
                for op in ops {
                    self.replay_txn(op, session, zxid, time);
                }
            }
            _ => {
                self.apply_txn(txn, zxid, time);
            }
        }
    }

    fn apply_txn(&mut self, txn: &Txn, zxid: i64, time: i64) -> OpResult {
        match txn {
            Txn::CreateSession { .. } => OpResult::SessionCreated,
            Txn::CloseSession { paths } => {
                for p in paths {
                    self.delete(p, zxid);
                }
                OpResult::SessionClosed
            }
            Txn::Create {
                op,
                path,
                data,
                acl,
                ephemeral_owner,
                parent_cversion,
                ..
            } => {
                if let Err(e) = self.tree.create_node(
                    path,
                    data.clone(),
                    acl.clone(),
                    *ephemeral_owner,
                    *parent_cversion,
                    zxid,
                    time,
                ) {
                    tracing::error!(path = %path, zxid, error = %e, "create txn did not apply");
                    return OpResult::Error(ErrorCode::NodeExists);
                }
                let acl_node = self.acl_of(path);
                self.fire(path, EventType::NodeCreated, acl_node);
                let (parent, _) = parent_and_name(path);
                let parent = parent.to_owned();
                let acl_parent = self.acl_of(&parent);
                self.fire(&parent, EventType::NodeChildrenChanged, acl_parent);
                match self.tree.stat(path) {
                    Some(stat) => OpResult::Created {
                        op: *op,
                        path: path.clone(),
                        stat,
                    },
                    None => OpResult::Error(ErrorCode::NoNode),
                }
            }
            Txn::Delete { path } | Txn::DeleteContainer { path } => {
                if self.delete(path, zxid) {
                    OpResult::Deleted
                } else {
                    OpResult::Error(ErrorCode::NoNode)
                }
            }
            Txn::SetData {
                path,
                data,
                version,
            } => match self.tree.set_data(path, data.clone(), *version, zxid, time) {
                Ok(stat) => {
                    let acl = self.acl_of(path);
                    self.fire(path, EventType::NodeDataChanged, acl);
                    OpResult::SetData { stat }
                }
                Err(e) => {
                    tracing::error!(path = %path, zxid, error = %e, "setData txn did not apply");
                    OpResult::Error(ErrorCode::NoNode)
                }
            },
            Txn::SetAcl { path, acl, version } => {
                match self.tree.set_acl(path, acl.clone(), *version) {
                    Ok(stat) => OpResult::SetAcl { stat },
                    Err(e) => {
                        tracing::error!(path = %path, zxid, error = %e, "setACL txn did not apply");
                        OpResult::Error(ErrorCode::NoNode)
                    }
                }
            }
            Txn::Check { .. } => OpResult::Checked,
            Txn::Multi(ops) => {
                if txn.is_failed_multi() {
                    return OpResult::Multi(
                        ops.iter()
                            .map(|t| match t {
                                Txn::Error(e) => OpResult::Error(*e),
                                _ => OpResult::Error(ErrorCode::Ok),
                            })
                            .collect(),
                    );
                }
                OpResult::Multi(ops.iter().map(|t| self.apply_txn(t, zxid, time)).collect())
            }
            Txn::Error(e) => OpResult::Error(*e),
        }
    }

    /// Delete `path`, firing NodeDeleted on it and NodeChildrenChanged on its parent.
    fn delete(&mut self, path: &str, zxid: i64) -> bool {
        let acl = self.acl_of(path);
        if let Err(e) = self.tree.delete_node(path, zxid) {
            tracing::error!(path = %path, zxid, error = %e, "delete txn did not apply");
            return false;
        }
        self.fire(path, EventType::NodeDeleted, acl);
        let (parent, _) = parent_and_name(path);
        let parent = parent.to_owned();
        let acl_parent = self.acl_of(&parent);
        self.fire(&parent, EventType::NodeChildrenChanged, acl_parent);
        true
    }
}

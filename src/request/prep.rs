//! Prep: validate a write against the current (and pending) state and turn it into a [`Txn`].
//!
//! This is Java's `PrepRequestProcessor`: the checks run in the same order as Java's, so the
//! same bad request fails with the same error code. Prep never mutates the tree; it records
//! what the txn will do in a [`Pending`] overlay so that later sub-ops of a multi (and, with a
//! pipelined log, later requests) see earlier ones' effects.

use std::collections::HashMap;

use bytes::Bytes;

use crate::auth::{self, AuthConfig};
use crate::jute::codes::{
    ttl_ephemeral_owner, CreateMode, EphemeralKind, CONTAINER_EPHEMERAL_OWNER, MAX_TTL,
};
use crate::jute::records::{
    Acl, CheckVersionRequest, CreateRequest, CreateTtlRequest, DeleteRequest, Id, MultiHeader,
    SetAclRequest, SetDataRequest,
};
use crate::jute::{Decode, ErrorCode, JuteError, OpCode, Perms, Reader};
use crate::tree::{self, DataTree, StatPersisted};

use super::txn::Txn;

/// What prep knows about a node: Java's `ChangeRecord`.
#[derive(Debug, Clone)]
pub struct ChangeRecord {
    pub stat: StatPersisted,
    pub child_count: i32,
    pub acl: Vec<Acl>,
}

/// Changes decided by prep but not yet applied to the tree (`None` = deleted).
#[derive(Debug, Default)]
pub struct Pending {
    records: HashMap<String, Option<ChangeRecord>>,
}

impl Pending {
    pub fn clear(&mut self) {
        self.records.clear();
    }
}

/// A decoded write request.
#[derive(Debug, Clone)]
pub enum WriteRequest {
    Create {
        op: OpCode,
        req: CreateRequest,
        ttl: i64,
    },
    Delete(DeleteRequest),
    DeleteContainer(String),
    SetData(SetDataRequest),
    SetAcl(SetAclRequest),
    Check(CheckVersionRequest),
}

impl WriteRequest {
    /// Decode the body of a single (non-multi) write with opcode `op`.
    pub fn decode(op: OpCode, r: &mut Reader<'_>) -> Result<WriteRequest, JuteError> {
        Ok(match op {
            OpCode::Create | OpCode::Create2 | OpCode::CreateContainer => WriteRequest::Create {
                op,
                req: CreateRequest::decode(r)?,
                ttl: -1,
            },
            OpCode::CreateTtl => {
                let t = CreateTtlRequest::decode(r)?;
                WriteRequest::Create {
                    op,
                    req: CreateRequest {
                        path: t.path,
                        data: t.data,
                        acl: t.acl,
                        flags: t.flags,
                    },
                    ttl: t.ttl,
                }
            }
            OpCode::Delete => WriteRequest::Delete(DeleteRequest::decode(r)?),
            OpCode::DeleteContainer => {
                let raw = r.read_buffer()?.unwrap_or_default();
                WriteRequest::DeleteContainer(String::from_utf8_lossy(&raw).into_owned())
            }
            OpCode::SetData => WriteRequest::SetData(SetDataRequest::decode(r)?),
            OpCode::SetAcl => WriteRequest::SetAcl(SetAclRequest::decode(r)?),
            OpCode::Check => WriteRequest::Check(CheckVersionRequest::decode(r)?),
            _ => {
                return Err(JuteError::BadValue {
                    what: "write opcode",
                    value: op as i64,
                })
            }
        })
    }

    /// Decode a multi body: sub-ops until the `done` header. Only write kinds are allowed.
    pub fn decode_multi(r: &mut Reader<'_>) -> Result<Vec<WriteRequest>, JuteError> {
        let mut ops = Vec::new();
        loop {
            let h = MultiHeader::decode(r)?;
            if h.done {
                return Ok(ops);
            }
            let op = OpCode::from_i32(h.op_type).ok_or(JuteError::BadValue {
                what: "multi op type",
                value: h.op_type as i64,
            })?;
            match op {
                OpCode::Create
                | OpCode::Create2
                | OpCode::CreateContainer
                | OpCode::CreateTtl
                | OpCode::Delete
                | OpCode::SetData
                | OpCode::Check => ops.push(WriteRequest::decode(op, r)?),
                _ => {
                    return Err(JuteError::BadValue {
                        what: "multi op type",
                        value: h.op_type as i64,
                    })
                }
            }
        }
    }
}

/// Everything prep needs to judge one request.
pub struct Prep<'a> {
    pub tree: &'a DataTree,
    pub pending: &'a mut Pending,
    pub auth: &'a AuthConfig,
    pub ids: &'a [Id],
    pub session_id: i64,
    pub extended_types: bool,
    pub zxid: i64,
}

fn is_system_path(path: &str) -> bool {
    matches!(
        path,
        "/" | "/zookeeper" | "/zookeeper/quota" | "/zookeeper/config"
    )
}

/// Parent of a path as Java's prep computes it: the text before the last '/' ("" → "/").
fn parent_of(path: &str) -> Result<&str, ErrorCode> {
    match path.rfind('/') {
        None => Err(ErrorCode::BadArguments),
        Some(0) => Ok("/"),
        Some(i) => Ok(&path[..i]),
    }
}

impl Prep<'_> {
    fn record(&self, path: &str) -> Option<ChangeRecord> {
        if let Some(r) = self.pending.records.get(path) {
            return r.clone();
        }
        let node = self.tree.node(path)?;
        Some(ChangeRecord {
            stat: node.stat(),
            child_count: node.children().len() as i32,
            acl: self.tree.acl(path).map(<[Acl]>::to_vec).unwrap_or_default(),
        })
    }

    fn check_acl(&self, acl: &[Acl], perm: i32) -> Result<(), ErrorCode> {
        if auth::check_acl(self.auth, acl, perm, self.ids) {
            Ok(())
        } else {
            Err(ErrorCode::NoAuth)
        }
    }

    fn fixup_acl(&self, acl: &[Acl]) -> Result<Vec<Acl>, ErrorCode> {
        auth::fixup_acl(acl, self.ids).map_err(|_| ErrorCode::InvalidAcl)
    }

    fn put(&mut self, path: &str, rec: Option<ChangeRecord>) {
        self.pending.records.insert(path.to_owned(), rec);
    }

    /// Prep one write (not multi). On error nothing is recorded in `pending`.
    pub fn prep(&mut self, req: WriteRequest) -> Result<Txn, ErrorCode> {
        match req {
            WriteRequest::Create { op, req, ttl } => self.create(op, req, ttl),
            WriteRequest::Delete(d) => self.delete(d),
            WriteRequest::DeleteContainer(path) => self.delete_container(path),
            WriteRequest::SetData(s) => self.set_data(s),
            WriteRequest::SetAcl(s) => self.set_acl(s),
            WriteRequest::Check(c) => self.check(c),
        }
    }

    /// Prep a multi: all-or-nothing. The result is always a `Txn::Multi`; on failure the
    /// failing slot holds its error, later slots `RuntimeInconsistency`, earlier ones `Ok`
    /// (as Java logs them), and the overlay is rolled back.
    pub fn prep_multi(&mut self, ops: Vec<WriteRequest>) -> Txn {
        let saved = self.pending.records.clone();
        let mut txns = Vec::with_capacity(ops.len());
        let mut failed: Option<usize> = None;
        for (i, op) in ops.into_iter().enumerate() {
            if failed.is_some() {
                txns.push(Txn::Error(ErrorCode::RuntimeInconsistency));
                continue;
            }
            match self.prep(op) {
                Ok(t) => txns.push(t),
                Err(e) => {
                    failed = Some(i);
                    txns.push(Txn::Error(e));
                }
            }
        }
        if failed.is_some() {
            // Earlier ops keep their real txns in the log, as Java's; apply turns a failed
            // multi's ops into no-ops.
            self.pending.records = saved;
        }
        Txn::Multi(txns)
    }

    fn create(&mut self, op: OpCode, req: CreateRequest, ttl: i64) -> Result<Txn, ErrorCode> {
        let mode = CreateMode::from_flags(req.flags).ok_or(ErrorCode::BadArguments)?;
        if mode.is_ttl() && !self.extended_types {
            return Err(ErrorCode::Unimplemented);
        }
        if mode.is_ttl() {
            if ttl <= 0 || ttl > MAX_TTL {
                return Err(ErrorCode::BadArguments);
            }
        } else if ttl >= 0 {
            return Err(ErrorCode::BadArguments);
        }
        let path = req.path;
        if path.contains('\0') {
            return Err(ErrorCode::BadArguments);
        }
        let parent_path = parent_of(&path)?.to_owned();
        let acl = self.fixup_acl(&req.acl)?;
        let parent = self.record(&parent_path).ok_or(ErrorCode::NoNode)?;
        self.check_acl(&parent.acl, Perms::CREATE)?;
        let parent_cversion = parent.stat.cversion;
        let path = if mode.is_sequential() {
            format!("{}{}", path, tree::sequential_suffix(parent_cversion))
        } else {
            path
        };
        if !tree::validate_path(&path, false) {
            return Err(ErrorCode::BadArguments);
        }
        if self.record(&path).is_some() {
            return Err(ErrorCode::NodeExists);
        }
        if matches!(
            EphemeralKind::of(parent.stat.ephemeral_owner, self.extended_types),
            EphemeralKind::Session(_)
        ) {
            return Err(ErrorCode::NoChildrenForEphemerals);
        }
        let new_cversion = parent_cversion.wrapping_add(1);
        let (op, ephemeral_owner) = if mode.is_container() && op == OpCode::CreateContainer {
            (op, CONTAINER_EPHEMERAL_OWNER)
        } else if mode.is_ttl() {
            (op, ttl_ephemeral_owner(ttl))
        } else if mode.is_ephemeral() {
            (op, self.session_id)
        } else {
            (op, 0)
        };
        let mut parent = parent;
        parent.stat.cversion = new_cversion;
        parent.stat.pzxid = self.zxid;
        parent.child_count += 1;
        self.put(&parent_path, Some(parent));
        let stat = StatPersisted {
            czxid: self.zxid,
            mzxid: self.zxid,
            pzxid: self.zxid,
            ephemeral_owner,
            ..Default::default()
        };
        self.put(
            &path,
            Some(ChangeRecord {
                stat,
                child_count: 0,
                acl: acl.clone(),
            }),
        );
        Ok(Txn::Create {
            op,
            path,
            data: req.data.map(Bytes::from),
            acl,
            ephemeral_owner,
            parent_cversion: new_cversion,
            ttl: if mode.is_ttl() { ttl } else { -1 },
        })
    }

    fn delete(&mut self, req: DeleteRequest) -> Result<Txn, ErrorCode> {
        let path = req.path;
        if path.contains('\0') || is_system_path(&path) {
            return Err(ErrorCode::BadArguments);
        }
        let parent_path = parent_of(&path)?.to_owned();
        let parent = self.record(&parent_path).ok_or(ErrorCode::NoNode)?;
        self.check_acl(&parent.acl, Perms::DELETE)?;
        let node = self.record(&path).ok_or(ErrorCode::NoNode)?;
        if req.version != -1 && req.version != node.stat.version {
            return Err(ErrorCode::BadVersion);
        }
        if node.child_count > 0 {
            return Err(ErrorCode::NotEmpty);
        }
        self.remove_pending(&path, parent_path, parent);
        Ok(Txn::Delete { path })
    }

    fn remove_pending(&mut self, path: &str, parent_path: String, mut parent: ChangeRecord) {
        parent.child_count -= 1;
        parent.stat.pzxid = self.zxid;
        self.put(&parent_path, Some(parent));
        self.put(path, None);
    }

    fn delete_container(&mut self, path: String) -> Result<Txn, ErrorCode> {
        if path.contains('\0') || is_system_path(&path) {
            return Err(ErrorCode::BadArguments);
        }
        let parent_path = parent_of(&path)?.to_owned();
        let parent = self.record(&parent_path).ok_or(ErrorCode::NoNode)?;
        let node = self.record(&path).ok_or(ErrorCode::NoNode)?;
        if node.child_count > 0 {
            return Err(ErrorCode::NotEmpty);
        }
        match EphemeralKind::of(node.stat.ephemeral_owner, self.extended_types) {
            EphemeralKind::Container | EphemeralKind::Ttl(_) => {}
            // Only the server's own sweep issues this; refuse it for anything else.
            _ => return Err(ErrorCode::BadVersion),
        }
        self.remove_pending(&path, parent_path, parent);
        Ok(Txn::DeleteContainer { path })
    }

    fn set_data(&mut self, req: SetDataRequest) -> Result<Txn, ErrorCode> {
        if !tree::validate_path(&req.path, false) {
            return Err(ErrorCode::BadArguments);
        }
        let mut node = self.record(&req.path).ok_or(ErrorCode::NoNode)?;
        self.check_acl(&node.acl, Perms::WRITE)?;
        if req.version != -1 && req.version != node.stat.version {
            return Err(ErrorCode::BadVersion);
        }
        let version = node.stat.version.wrapping_add(1);
        node.stat.version = version;
        node.stat.mzxid = self.zxid;
        self.put(&req.path, Some(node));
        Ok(Txn::SetData {
            path: req.path,
            data: req.data.map(Bytes::from),
            version,
        })
    }

    fn set_acl(&mut self, req: SetAclRequest) -> Result<Txn, ErrorCode> {
        if !tree::validate_path(&req.path, false) {
            return Err(ErrorCode::BadArguments);
        }
        let acl = self.fixup_acl(&req.acl)?;
        let mut node = self.record(&req.path).ok_or(ErrorCode::NoNode)?;
        self.check_acl(&node.acl, Perms::ADMIN)?;
        if req.version != -1 && req.version != node.stat.aversion {
            return Err(ErrorCode::BadVersion);
        }
        let version = node.stat.aversion.wrapping_add(1);
        node.stat.aversion = version;
        node.acl = acl.clone();
        self.put(&req.path, Some(node));
        Ok(Txn::SetAcl {
            path: req.path,
            acl,
            version,
        })
    }

    fn check(&mut self, req: CheckVersionRequest) -> Result<Txn, ErrorCode> {
        if !tree::validate_path(&req.path, false) {
            return Err(ErrorCode::BadArguments);
        }
        let node = self.record(&req.path).ok_or(ErrorCode::NoNode)?;
        self.check_acl(&node.acl, Perms::READ)?;
        if req.version != -1 && req.version != node.stat.version {
            return Err(ErrorCode::BadVersion);
        }
        Ok(Txn::Check {
            path: req.path,
            version: node.stat.version,
        })
    }

    /// closeSession: gather the session's ephemerals (applied and pending).
    pub fn close_session(&mut self) -> Txn {
        let mut paths = self.tree.ephemerals(self.session_id);
        for (p, rec) in &self.pending.records {
            match rec {
                Some(r) if r.stat.ephemeral_owner == self.session_id && !paths.contains(p) => {
                    paths.push(p.clone());
                }
                None => paths.retain(|x| x != p),
                _ => {}
            }
        }
        paths.sort();
        for p in &paths {
            self.put(p, None);
        }
        Txn::CloseSession { paths }
    }
}

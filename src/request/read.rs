//! Reads: requests answered from the local tree without a txn (Java's read path in
//! `FinalRequestProcessor`), including watch registration and the watch-management opcodes.

use crate::auth::{self, AuthConfig};
use crate::jute::codes::WatcherType;
use crate::jute::records::{
    AddWatchRequest, ClientInfo, GetAclResponse, GetAllChildrenNumberResponse,
    GetChildren2Response, GetChildrenResponse, GetEphemeralsResponse, Id, MultiHeader, PathRequest,
    PathWatchRequest, StatResponse, WatchesRequest, WhoAmIResponse,
};
use crate::jute::{Decode, Encode, ErrorCode, JuteError, OpCode, Perms, Reader, Writer};
use crate::tree::DataTree;
use crate::watch::{ConnId, WatchManager};

/// Why a read produced no body.
#[derive(Debug)]
pub enum ReadError {
    /// Reply with this code and no body.
    Code(ErrorCode),
    /// The body did not decode: Java answers with a marshalling error.
    Decode(JuteError),
}

impl From<ErrorCode> for ReadError {
    fn from(e: ErrorCode) -> Self {
        ReadError::Code(e)
    }
}

impl From<JuteError> for ReadError {
    fn from(e: JuteError) -> Self {
        ReadError::Decode(e)
    }
}

/// Everything a read needs: the state it reads and who is asking.
pub struct Reads<'a> {
    pub tree: &'a DataTree,
    pub watches: &'a mut WatchManager,
    pub auth: &'a AuthConfig,
    pub ids: &'a [Id],
    pub conn: ConnId,
    pub session_id: i64,
}

impl Reads<'_> {
    fn check(&self, path: &str, perm: i32) -> Result<(), ErrorCode> {
        let acl = self.tree.acl(path).unwrap_or(&[]);
        if auth::check_acl(self.auth, acl, perm, self.ids) {
            Ok(())
        } else {
            Err(ErrorCode::NoAuth)
        }
    }

    /// Answer read request `op` whose body is in `r`, writing the response record to `out`.
    pub fn read(
        &mut self,
        op: OpCode,
        r: &mut Reader<'_>,
        out: &mut Writer,
    ) -> Result<(), ReadError> {
        match op {
            OpCode::Exists => {
                let req = PathWatchRequest::decode(r)?;
                if req.path.contains('\0') {
                    return Err(ErrorCode::BadArguments.into());
                }
                if self.tree.node(&req.path).is_some() {
                    self.check(&req.path, Perms::READ)?;
                }
                if req.watch {
                    self.watches.add_data_watch(&req.path, self.conn);
                }
                let stat = self.tree.stat(&req.path).ok_or(ErrorCode::NoNode)?;
                StatResponse { stat }.encode(out);
            }
            OpCode::GetData => {
                let req = PathWatchRequest::decode(r)?;
                self.get_data(&req.path, req.watch, out)?;
            }
            OpCode::GetChildren | OpCode::GetChildren2 => {
                let req = PathWatchRequest::decode(r)?;
                self.get_children(&req.path, req.watch, op == OpCode::GetChildren2, out)?;
            }
            OpCode::GetAcl => {
                let req = PathRequest::decode(r)?;
                let stat = self.tree.stat(&req.path).ok_or(ErrorCode::NoNode)?;
                self.check(&req.path, Perms::READ | Perms::ADMIN)?;
                let acl = self.tree.acl(&req.path).unwrap_or(&[]);
                let acl = if self.check(&req.path, Perms::ADMIN).is_ok() {
                    acl.to_vec()
                } else {
                    auth::mask_digest_acls(acl)
                };
                GetAclResponse { acl, stat }.encode(out);
            }
            OpCode::Sync => {
                let req = PathRequest::decode(r)?;
                req.encode(out);
            }
            OpCode::GetAllChildrenNumber => {
                let req = PathRequest::decode(r)?;
                if self.tree.node(&req.path).is_none() {
                    return Err(ErrorCode::NoNode.into());
                }
                self.check(&req.path, Perms::READ)?;
                let total_number = self.tree.count_descendants(&req.path).unwrap_or(0);
                GetAllChildrenNumberResponse { total_number }.encode(out);
            }
            OpCode::GetEphemerals => {
                let prefix = PathRequest::decode(r)?.path;
                let mut ephemerals = self.tree.ephemerals(self.session_id);
                if !(prefix.trim().is_empty() || prefix == "/") {
                    ephemerals.retain(|p| p.starts_with(&prefix));
                }
                ephemerals.sort();
                GetEphemeralsResponse { ephemerals }.encode(out);
            }
            OpCode::WhoAmI => {
                let client_info = self
                    .ids
                    .iter()
                    .filter(|id| id.scheme != "super")
                    .map(|id| ClientInfo {
                        auth_scheme: id.scheme.clone(),
                        user: match id.scheme.as_str() {
                            "digest" => id.id.split(':').next().unwrap_or("").to_owned(),
                            _ => id.id.clone(),
                        },
                    })
                    .collect();
                WhoAmIResponse { client_info }.encode(out);
            }
            OpCode::CheckWatches | OpCode::RemoveWatches => {
                let req = WatchesRequest::decode(r)?;
                let kind =
                    WatcherType::from_i32(req.watcher_type).ok_or(ErrorCode::MarshallingError)?;
                let found = if op == OpCode::CheckWatches {
                    self.watches.check(&req.path, self.conn, kind)
                } else {
                    self.watches.remove(&req.path, self.conn, kind)
                };
                if !found {
                    return Err(ErrorCode::NoWatcher.into());
                }
            }
            OpCode::AddWatch => {
                let req = AddWatchRequest::decode(r)?;
                match req.mode {
                    0 => self.watches.add_persistent(&req.path, self.conn, false),
                    1 => self.watches.add_persistent(&req.path, self.conn, true),
                    _ => return Err(ErrorCode::MarshallingError.into()),
                }
                out.i32(0);
            }
            OpCode::MultiRead => self.multi_read(r, out)?,
            _ => return Err(ErrorCode::Unimplemented.into()),
        }
        Ok(())
    }

    fn get_data(&mut self, path: &str, watch: bool, out: &mut Writer) -> Result<(), ErrorCode> {
        let node = self.tree.node(path).ok_or(ErrorCode::NoNode)?;
        self.check(path, Perms::READ)?;
        let stat = self.tree.stat(path).ok_or(ErrorCode::NoNode)?;
        if watch {
            self.watches.add_data_watch(path, self.conn);
        }
        out.buffer(node.data());
        stat.encode(out);
        Ok(())
    }

    fn get_children(
        &mut self,
        path: &str,
        watch: bool,
        with_stat: bool,
        out: &mut Writer,
    ) -> Result<(), ErrorCode> {
        let children = self.tree.children(path).ok_or(ErrorCode::NoNode)?;
        self.check(path, Perms::READ)?;
        if watch {
            self.watches.add_child_watch(path, self.conn);
        }
        if with_stat {
            let stat = self.tree.stat(path).ok_or(ErrorCode::NoNode)?;
            GetChildren2Response { children, stat }.encode(out);
        } else {
            GetChildrenResponse { children }.encode(out);
        }
        Ok(())
    }

    /// multiRead: each op runs on its own; failures become error results (no watches set).
    fn multi_read(&mut self, r: &mut Reader<'_>, out: &mut Writer) -> Result<(), ReadError> {
        let mut ops = Vec::new();
        loop {
            let h = MultiHeader::decode(r)?;
            if h.done {
                break;
            }
            match OpCode::from_i32(h.op_type) {
                Some(op @ (OpCode::GetChildren | OpCode::GetData)) => {
                    ops.push((op, PathWatchRequest::decode(r)?.path));
                }
                _ => {
                    return Err(ReadError::Decode(JuteError::BadValue {
                        what: "multiRead op type",
                        value: h.op_type as i64,
                    }))
                }
            }
        }
        for (op, path) in ops {
            let mut body = Writer::new();
            let res = match op {
                OpCode::GetData => self.get_data(&path, false, &mut body),
                _ => self.get_children(&path, false, false, &mut body),
            };
            match res {
                Ok(()) => {
                    MultiHeader {
                        op_type: op as i32,
                        done: false,
                        err: 0,
                    }
                    .encode(out);
                    out.buf.extend_from_slice(&body.buf);
                }
                Err(e) => multi_error(e, out),
            }
        }
        MultiHeader {
            op_type: -1,
            done: true,
            err: -1,
        }
        .encode(out);
        Ok(())
    }
}

/// One failed sub-op in a multi/multiRead reply: header type −1 and an ErrorResponse.
fn multi_error(e: ErrorCode, out: &mut Writer) {
    MultiHeader {
        op_type: -1,
        done: false,
        err: e.code(),
    }
    .encode(out);
    out.i32(e.code());
}

/// Encode the reply body of an applied write (`None` = no body).
pub fn encode_write_result(op: OpCode, res: &super::apply::OpResult, out: &mut Writer) {
    use super::apply::OpResult;
    match res {
        OpResult::Created { path, stat, .. } => {
            out.ustring(path);
            if op != OpCode::Create {
                stat.encode(out);
            }
        }
        OpResult::SetData { stat } | OpResult::SetAcl { stat } => stat.encode(out),
        OpResult::Multi(results) => {
            for r in results {
                match r {
                    OpResult::Created { op, path, stat } => {
                        // A plain create reports CreateResponse; the create2 kinds Create2Response.
                        let t = if *op == OpCode::Create { 1 } else { 15 };
                        MultiHeader {
                            op_type: t,
                            done: false,
                            err: 0,
                        }
                        .encode(out);
                        out.ustring(path);
                        if t == 15 {
                            stat.encode(out);
                        }
                    }
                    OpResult::Deleted => MultiHeader {
                        op_type: 2,
                        done: false,
                        err: 0,
                    }
                    .encode(out),
                    OpResult::Checked => MultiHeader {
                        op_type: 13,
                        done: false,
                        err: 0,
                    }
                    .encode(out),
                    OpResult::SetData { stat } => {
                        MultiHeader {
                            op_type: 5,
                            done: false,
                            err: 0,
                        }
                        .encode(out);
                        stat.encode(out);
                    }
                    OpResult::Error(e) => multi_error(*e, out),
                    _ => {}
                }
            }
            MultiHeader {
                op_type: -1,
                done: true,
                err: -1,
            }
            .encode(out);
        }
        _ => {}
    }
}

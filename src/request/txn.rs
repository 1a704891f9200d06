//! Transactions: what a write becomes after prep, and what the log stores and replicas apply.
//!
//! A [`Txn`] carries every value the apply step needs (the new version, the parent's new
//! cversion, the ephemeral owner), so applying it is deterministic on any replica. The variants
//! mirror Java's txn records (`CreateTxn`, `DeleteTxn`, `SetDataTxn`, …) so the log format of
//! the durability issue is a plain encoding of this type.

use bytes::Bytes;

use crate::jute::records::Acl;
use crate::jute::{ErrorCode, OpCode};

/// One state change, as decided by prep.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Txn {
    CreateSession {
        timeout: i32,
    },
    /// `paths` are the session's ephemerals at prep time, deleted on apply.
    CloseSession {
        paths: Vec<String>,
    },
    /// create, create2, createContainer and createTTL; `op` keeps which one for the log.
    Create {
        op: OpCode,
        path: String,
        data: Option<Bytes>,
        acl: Vec<Acl>,
        ephemeral_owner: i64,
        parent_cversion: i32,
        ttl: i64,
    },
    Delete {
        path: String,
    },
    DeleteContainer {
        path: String,
    },
    SetData {
        path: String,
        data: Option<Bytes>,
        version: i32,
    },
    SetAcl {
        path: String,
        acl: Vec<Acl>,
        version: i32,
    },
    Check {
        path: String,
        version: i32,
    },
    /// All sub-ops of one multi; when any failed, the failed slots are [`Txn::Error`] and
    /// nothing is applied.
    Multi(Vec<Txn>),
    /// A write that failed in prep still gets a zxid (as in Java) and is logged as an error txn.
    Error(ErrorCode),
}

impl Txn {
    /// The `TxnHeader.type` Java writes for this txn.
    pub fn op_code(&self) -> OpCode {
        match self {
            Txn::CreateSession { .. } => OpCode::CreateSession,
            Txn::CloseSession { .. } => OpCode::CloseSession,
            Txn::Create { op, .. } => *op,
            Txn::Delete { .. } => OpCode::Delete,
            Txn::DeleteContainer { .. } => OpCode::DeleteContainer,
            Txn::SetData { .. } => OpCode::SetData,
            Txn::SetAcl { .. } => OpCode::SetAcl,
            Txn::Check { .. } => OpCode::Check,
            Txn::Multi(_) => OpCode::Multi,
            Txn::Error(_) => OpCode::Error,
        }
    }

    /// Whether this is a multi whose sub-ops failed (it is logged but changes nothing).
    pub fn is_failed_multi(&self) -> bool {
        matches!(self, Txn::Multi(ops) if ops.iter().any(|t| matches!(t, Txn::Error(_))))
    }
}

/// `TxnHeader`: who asked for the change, its zxid and the leader's wall-clock time.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TxnHeader {
    pub client_id: i64,
    pub cxid: i32,
    pub zxid: i64,
    pub time: i64,
}

/// A txn with its header: the unit the log appends and apply consumes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TxnEntry {
    pub header: TxnHeader,
    pub txn: Txn,
}

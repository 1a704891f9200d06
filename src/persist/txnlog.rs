//! Java ZooKeeper's transaction log format (`FileTxnLog`): reading, for `log-dump` and, with
//! the durability issue, for recovery.
//!
//! A log file is a 16-byte header (`ZKLG`, version 2, dbid 0) followed by entries of
//! `long adler32, int length, payload, byte 'B'`; the payload is a TxnHeader, the txn record
//! for its type, and an optional TxnDigest. A zero length (preallocated space) or EOF ends the
//! log; a short or unterminated last entry is a torn tail; a checksum mismatch is corruption.

use bytes::Bytes;
use thiserror::Error;

use crate::jute::codes::{ttl_ephemeral_owner, CONTAINER_EPHEMERAL_OWNER};
use crate::jute::records::Acl;
use crate::jute::{ErrorCode, JuteError, OpCode, Reader};
use crate::request::txn::{Txn, TxnEntry, TxnHeader};

/// `ZKLG`.
pub const LOG_MAGIC: i32 = 0x5A4B_4C47;
/// The end-of-record marker after every entry.
pub const EOR: u8 = b'B';

/// Why a log could not be read.
#[derive(Debug, Error, PartialEq, Eq)]
pub enum LogError {
    #[error("not a txn log: bad header")]
    BadHeader,
    #[error("checksum mismatch in the entry at offset {offset}")]
    Checksum { offset: usize },
    #[error("entry at offset {offset} does not decode: {source}")]
    Record { offset: usize, source: JuteError },
    #[error("entry at offset {offset} has unknown txn type {ty}")]
    UnknownType { offset: usize, ty: i32 },
}

/// How the readable part of a log ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogEnd {
    /// End of file right after an entry.
    Eof,
    /// A zero length: preallocated space.
    Preallocated { offset: usize },
    /// A partial last entry (crash mid-write): everything before `offset` is good.
    TornTail { offset: usize },
}

/// One logged txn, with the digest Java may append.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LogEntry {
    pub offset: usize,
    pub entry: TxnEntry,
    pub digest: Option<(i32, i64)>,
}

/// Adler-32 (zlib), the per-entry checksum.
pub fn adler32(data: &[u8]) -> u32 {
    const MOD: u32 = 65_521;
    let (mut a, mut b) = (1u32, 0u32);
    for chunk in data.chunks(5552) {
        for &x in chunk {
            a += x as u32;
            b += a;
        }
        a %= MOD;
        b %= MOD;
    }
    (b << 16) | a
}

fn acls(r: &mut Reader<'_>) -> Result<Vec<Acl>, JuteError> {
    r.read_vec(|r| r.read())
}

fn data(r: &mut Reader<'_>) -> Result<Option<Bytes>, JuteError> {
    Ok(r.read_buffer()?.map(Bytes::from))
}

/// Decode the txn record of type `ty` (header's `clientId` is needed for ephemeral owners).
fn decode_txn(ty: i32, client_id: i64, r: &mut Reader<'_>) -> Result<Option<Txn>, JuteError> {
    let Some(op) = OpCode::from_i32(ty) else {
        return Ok(None);
    };
    Ok(Some(match op {
        OpCode::Create | OpCode::Create2 => {
            let path = r.read_ustring()?;
            let data = data(r)?;
            let acl = acls(r)?;
            let ephemeral = r.read_bool()?;
            // CreateTxnV0 ends here; its parent cversion means "parent's + 1".
            let parent_cversion = if r.remaining() >= 4 {
                r.read_i32()?
            } else {
                -1
            };
            Txn::Create {
                op,
                path,
                data,
                acl,
                ephemeral_owner: if ephemeral { client_id } else { 0 },
                parent_cversion,
                ttl: -1,
            }
        }
        OpCode::CreateContainer => Txn::Create {
            op,
            path: r.read_ustring()?,
            data: data(r)?,
            acl: acls(r)?,
            ephemeral_owner: CONTAINER_EPHEMERAL_OWNER,
            parent_cversion: r.read_i32()?,
            ttl: -1,
        },
        OpCode::CreateTtl => {
            let path = r.read_ustring()?;
            let data = data(r)?;
            let acl = acls(r)?;
            let parent_cversion = r.read_i32()?;
            let ttl = r.read_i64()?;
            Txn::Create {
                op,
                path,
                data,
                acl,
                ephemeral_owner: ttl_ephemeral_owner(ttl),
                parent_cversion,
                ttl,
            }
        }
        OpCode::Delete => Txn::Delete {
            path: r.read_ustring()?,
        },
        OpCode::DeleteContainer => Txn::DeleteContainer {
            path: r.read_ustring()?,
        },
        OpCode::SetData | OpCode::Reconfig => Txn::SetData {
            path: r.read_ustring()?,
            data: data(r)?,
            version: r.read_i32()?,
        },
        OpCode::SetAcl => Txn::SetAcl {
            path: r.read_ustring()?,
            acl: acls(r)?,
            version: r.read_i32()?,
        },
        OpCode::Check => Txn::Check {
            path: r.read_ustring()?,
            version: r.read_i32()?,
        },
        OpCode::CreateSession => Txn::CreateSession {
            timeout: r.read_i32()?,
        },
        OpCode::CloseSession => Txn::CloseSession {
            paths: if r.remaining() >= 4 {
                r.read_vec(|r| r.read_ustring())?
            } else {
                Vec::new()
            },
        },
        OpCode::Error => Txn::Error(error_code(r.read_i32()?)),
        OpCode::Multi => {
            let subs = r.read_vec(|r| {
                let ty = r.read_i32()?;
                let body = r.read_buffer()?.unwrap_or_default();
                Ok((ty, body))
            })?;
            let mut txns = Vec::with_capacity(subs.len());
            for (ty, body) in subs {
                match decode_txn(ty, client_id, &mut Reader::new(&body))? {
                    Some(t) => txns.push(t),
                    None => {
                        return Err(JuteError::BadValue {
                            what: "multi sub-txn type",
                            value: ty as i64,
                        })
                    }
                }
            }
            Txn::Multi(txns)
        }
        _ => return Ok(None),
    }))
}

fn error_code(v: i32) -> ErrorCode {
    use ErrorCode::*;
    [
        Ok,
        SystemError,
        RuntimeInconsistency,
        DataInconsistency,
        ConnectionLoss,
        MarshallingError,
        Unimplemented,
        OperationTimeout,
        BadArguments,
        UnknownSession,
        NewConfigNoQuorum,
        ReconfigInProgress,
        ApiError,
        NoNode,
        NoAuth,
        BadVersion,
        NoChildrenForEphemerals,
        NodeExists,
        NotEmpty,
        SessionExpired,
        InvalidCallback,
        InvalidAcl,
        AuthFailed,
        SessionMoved,
        NotReadOnly,
        EphemeralOnLocalSession,
        NoWatcher,
        RequestTimeout,
        ReconfigDisabled,
        SessionClosedRequireSaslAuth,
        QuotaExceeded,
        ThrottledOp,
    ]
    .into_iter()
    .find(|c| c.code() == v)
    .unwrap_or(SystemError)
}

/// Read every good entry of a log file's bytes.
pub fn read_log(buf: &[u8]) -> Result<(Vec<LogEntry>, LogEnd), LogError> {
    let mut r = Reader::new(buf);
    let magic = r.read_i32().map_err(|_| LogError::BadHeader)?;
    let version = r.read_i32().map_err(|_| LogError::BadHeader)?;
    r.read_i64().map_err(|_| LogError::BadHeader)?;
    if magic != LOG_MAGIC || version != 2 {
        return Err(LogError::BadHeader);
    }
    let mut entries = Vec::new();
    loop {
        let offset = r.position();
        if r.remaining() == 0 {
            return Ok((entries, LogEnd::Eof));
        }
        if r.rest().iter().take(12).all(|b| *b == 0) {
            // Preallocated zeros (however few are left) end the log.
            return Ok((entries, LogEnd::Preallocated { offset }));
        }
        if r.remaining() < 12 {
            return Ok((entries, LogEnd::TornTail { offset }));
        }
        let crc = r.read_i64().map_err(|_| LogError::BadHeader)? as u64;
        let len = r.read_i32().map_err(|_| LogError::BadHeader)?;
        if len == 0 {
            return Ok((entries, LogEnd::Preallocated { offset }));
        }
        if len < 0 || r.remaining() < len as usize + 1 {
            return Ok((entries, LogEnd::TornTail { offset }));
        }
        let payload = &r.rest()[..len as usize];
        let eor = r.rest()[len as usize];
        if eor != EOR {
            return Ok((entries, LogEnd::TornTail { offset }));
        }
        if adler32(payload) as u64 != crc {
            return Err(LogError::Checksum { offset });
        }
        entries.push(decode_entry(offset, payload)?);
        // Advance past payload and EOR.
        for _ in 0..=len {
            let _ = r.read_u8();
        }
    }
}

fn decode_entry(offset: usize, payload: &[u8]) -> Result<LogEntry, LogError> {
    let rec = |source| LogError::Record { offset, source };
    let mut p = Reader::new(payload);
    let client_id = p.read_i64().map_err(rec)?;
    let cxid = p.read_i32().map_err(rec)?;
    let zxid = p.read_i64().map_err(rec)?;
    let time = p.read_i64().map_err(rec)?;
    let ty = p.read_i32().map_err(rec)?;
    let txn = decode_txn(ty, client_id, &mut p)
        .map_err(rec)?
        .ok_or(LogError::UnknownType { offset, ty })?;
    let digest = if p.remaining() >= 12 {
        Some((p.read_i32().map_err(rec)?, p.read_i64().map_err(rec)?))
    } else {
        None
    };
    Ok(LogEntry {
        offset,
        entry: TxnEntry {
            header: TxnHeader {
                client_id,
                cxid,
                zxid,
                time,
            },
            txn,
        },
        digest,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn adler32_matches_zlib() {
        assert_eq!(adler32(b""), 1);
        assert_eq!(adler32(b"Wikipedia"), 0x11E6_0398);
    }

    #[test]
    fn bad_headers_are_refused() {
        assert_eq!(read_log(b"nope").unwrap_err(), LogError::BadHeader);
        let mut h = LOG_MAGIC.to_be_bytes().to_vec();
        h.extend(3i32.to_be_bytes());
        h.extend(0i64.to_be_bytes());
        assert_eq!(read_log(&h).unwrap_err(), LogError::BadHeader);
    }
}

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
use crate::jute::{ErrorCode, JuteError, OpCode, Reader, Writer};
use crate::request::txn::{Txn, TxnEntry, TxnHeader};

/// `ZKLG`.
pub const LOG_MAGIC: i32 = 0x5A4B_4C47;
/// The end-of-record marker after every entry.
pub const EOR: u8 = b'B';

/// Why a log could not be read.
#[derive(Debug, Error, PartialEq, Eq)]
pub enum LogError {
    #[error("not a txn log: bad file header at offset 0")]
    BadHeader,
    #[error("checksum mismatch in the entry at offset {offset}")]
    Checksum { offset: usize },
    #[error("damaged entry at offset {offset}: {why}")]
    Corrupt { offset: usize, why: &'static str },
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
    let mut a = Adler32::default();
    a.update(data);
    a.value()
}

/// A running Adler-32 (zlib's), summed sixteen bytes at a time in independent lanes, which
/// the compiler turns into vector code: the seals cover the whole file.
#[derive(Debug, Clone, Copy)]
pub struct Adler32 {
    a: u32,
    b: u32,
}

impl Default for Adler32 {
    fn default() -> Self {
        Adler32 { a: 1, b: 0 }
    }
}

impl Adler32 {
    const MOD: u32 = 65_521;
    /// Bytes per reduction: the most zlib sums before `b` could overflow 32 bits.
    const NMAX: usize = 5552;
    const LANES: usize = 16;

    pub fn update(&mut self, data: &[u8]) {
        // NMAX rounded down to whole lane groups, so only the last block has a scalar tail.
        const BLOCK: usize = Adler32::NMAX / Adler32::LANES * Adler32::LANES;
        for block in data.chunks(BLOCK) {
            let groups = block.chunks_exact(Self::LANES);
            let tail = groups.remainder();
            let n = (block.len() - tail.len()) as u64;
            if n > 0 {
                // Lane i sums bytes i, i+16, …; lane b sums the running lane a after each
                // group. Then Σ(n−j)·x_j = 16·Σb_i − Σ i·a_i over the block.
                let mut la = [0u32; Self::LANES];
                let mut lb = [0u32; Self::LANES];
                for g in groups {
                    for i in 0..Self::LANES {
                        la[i] += g[i] as u32;
                        lb[i] += la[i];
                    }
                }
                let mut sum_a = 0u64;
                let mut sum_b = 0u64;
                for i in 0..Self::LANES {
                    sum_a += la[i] as u64;
                    sum_b += Self::LANES as u64 * lb[i] as u64 - i as u64 * la[i] as u64;
                }
                let m = Self::MOD as u64;
                let b = self.b as u64 + n * self.a as u64 + sum_b;
                self.a = ((self.a as u64 + sum_a) % m) as u32;
                self.b = (b % m) as u32;
            }
            for &x in tail {
                self.a += x as u32;
                self.b += self.a;
            }
            self.a %= Self::MOD;
            self.b %= Self::MOD;
        }
    }

    pub fn value(&self) -> u32 {
        (self.b << 16) | self.a
    }
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

/// An entry claiming more than this is taken for damage, not for a write cut short.
const MAX_ENTRY: usize = 100 << 20;

fn all_zero(b: &[u8]) -> bool {
    b.iter().all(|x| *x == 0)
}

/// Whether a complete, checksummed entry starts anywhere in `buf` after `from`. A crash
/// leaves at most one broken entry at the end of a log; broken bytes with a good entry after
/// them are damage, not a tear.
fn good_entry_after(buf: &[u8], from: usize) -> Option<usize> {
    let mut p = from + 1;
    while p + 13 <= buf.len() {
        if buf[p..p + 12].iter().all(|b| *b == 0) {
            // A good entry has a non-zero byte among its first 12 (checksum or length); skip a
            // run of zeros (preallocated space) in one scan.
            match buf[p + 12..].iter().position(|b| *b != 0) {
                Some(q) => {
                    p = (p + 12 + q).saturating_sub(11).max(p + 1);
                    continue;
                }
                None => return None,
            }
        }
        let len = i32::from_be_bytes([buf[p + 8], buf[p + 9], buf[p + 10], buf[p + 11]]);
        if len >= 28 && (len as usize) <= buf.len() - p - 13 {
            let len = len as usize;
            if buf[p + 12 + len] == EOR && buf[p..p + 4] == [0, 0, 0, 0] {
                let crc = u64::from_be_bytes(buf[p..p + 8].try_into().unwrap_or_default());
                if adler32(&buf[p + 12..p + 12 + len]) as u64 == crc {
                    return Some(p);
                }
            }
        }
        p += 1;
    }
    None
}

/// Read every good entry of a log file's bytes.
///
/// A log ends at EOF or at preallocated zeros. A last entry cut short by a crash (it runs past
/// the end of the file, or its checksum or end marker is wrong and no good entry follows) is
/// a torn tail: everything before it is good. Damage followed by a good entry is corruption
/// and an error, so nothing after it is dropped silently.
pub fn read_log(buf: &[u8]) -> Result<(Vec<LogEntry>, LogEnd), LogError> {
    let mut r = Reader::new(buf);
    let magic = r.read_i32().map_err(|_| LogError::BadHeader)?;
    let version = r.read_i32().map_err(|_| LogError::BadHeader)?;
    r.read_i64().map_err(|_| LogError::BadHeader)?;
    if magic != LOG_MAGIC || version != 2 {
        return Err(LogError::BadHeader);
    }
    let mut entries = Vec::new();
    let mut pos = 16usize;
    // The end of the readable log at `offset`: zeros, a tear, or damage.
    let broken = |offset: usize, why: &'static str, checksum: bool| {
        if good_entry_after(buf, offset).is_some() {
            Err(if checksum {
                LogError::Checksum { offset }
            } else {
                LogError::Corrupt { offset, why }
            })
        } else if all_zero(&buf[offset..]) {
            Ok(LogEnd::Preallocated { offset })
        } else {
            Ok(LogEnd::TornTail { offset })
        }
    };
    loop {
        let offset = pos;
        let rest = &buf[pos..];
        if rest.is_empty() {
            return Ok((entries, LogEnd::Eof));
        }
        if rest.len() < 12 {
            return Ok((entries, broken(offset, "", false)?));
        }
        let crc = u64::from_be_bytes(rest[..8].try_into().unwrap_or_default());
        let len = i32::from_be_bytes(rest[8..12].try_into().unwrap_or_default());
        if len == 0 {
            return Ok((
                entries,
                broken(
                    offset,
                    "an entry of length 0 is followed by more entries",
                    false,
                )?,
            ));
        }
        if len < 0 || len as usize > MAX_ENTRY {
            return Ok((entries, broken(offset, "impossible entry length", false)?));
        }
        let len = len as usize;
        if rest.len() < 12 + len + 1 {
            // The entry runs past the end of the file: a write cut short, unless its length
            // is what is damaged.
            return Ok((
                entries,
                broken(offset, "entry length runs past the end of the file", false)?,
            ));
        }
        let payload = &rest[12..12 + len];
        if rest[12 + len] != EOR {
            return Ok((
                entries,
                broken(offset, "missing end-of-record marker", false)?,
            ));
        }
        if adler32(payload) as u64 != crc {
            return Ok((entries, broken(offset, "", true)?));
        }
        entries.push(decode_entry(offset, payload)?);
        pos += 12 + len + 1;
    }
}

/// Decode one entry's payload (TxnHeader, txn, optional TxnDigest): the bytes a log entry
/// holds, and the data of a Zab PROPOSAL or INFORM.
pub fn decode_payload(payload: &[u8]) -> Result<LogEntry, LogError> {
    decode_entry(0, payload)
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

/// Encode the txn record of `txn` (the bytes after the TxnHeader), as Java serializes it.
pub fn encode_txn(txn: &Txn, w: &mut Writer) {
    let acls = |w: &mut Writer, acl: &[Acl]| {
        w.vec(acl, |w, a| {
            w.record(a);
        });
    };
    match txn {
        Txn::CreateSession { timeout } => {
            w.i32(*timeout);
        }
        Txn::CloseSession { paths } => {
            w.strings(paths);
        }
        Txn::Create {
            op,
            path,
            data,
            acl,
            ephemeral_owner,
            parent_cversion,
            ttl,
        } => {
            w.ustring(path).buffer(data.as_deref());
            acls(w, acl);
            match op {
                OpCode::CreateContainer => {
                    w.i32(*parent_cversion);
                }
                OpCode::CreateTtl => {
                    w.i32(*parent_cversion).i64(*ttl);
                }
                _ => {
                    w.bool(*ephemeral_owner != 0).i32(*parent_cversion);
                }
            }
        }
        Txn::Delete { path } | Txn::DeleteContainer { path } => {
            w.ustring(path);
        }
        Txn::SetData {
            path,
            data,
            version,
        } => {
            w.ustring(path).buffer(data.as_deref()).i32(*version);
        }
        Txn::SetAcl { path, acl, version } => {
            w.ustring(path);
            acls(w, acl);
            w.i32(*version);
        }
        Txn::Check { path, version } => {
            w.ustring(path).i32(*version);
        }
        Txn::Error(e) => {
            w.i32(e.code());
        }
        Txn::Multi(ops) => {
            w.i32(ops.len() as i32);
            for op in ops {
                let mut sub = Writer::new();
                encode_txn(op, &mut sub);
                w.i32(op.op_code() as i32).buffer(Some(&sub.buf));
            }
        }
    }
}

/// The payload of one log entry: TxnHeader, txn record and, when given, the TxnDigest.
pub fn encode_payload(entry: &TxnEntry, digest: Option<(i32, i64)>, w: &mut Writer) {
    let h = &entry.header;
    w.i64(h.client_id)
        .i32(h.cxid)
        .i64(h.zxid)
        .i64(h.time)
        .i32(entry.txn.op_code() as i32);
    encode_txn(&entry.txn, w);
    if let Some((version, tree_digest)) = digest {
        w.i32(version).i64(tree_digest);
    }
}

/// Append one complete log record (`checksum, length, payload, 'B'`) to `out`.
pub fn encode_record(entry: &TxnEntry, digest: Option<(i32, i64)>, out: &mut Vec<u8>) {
    let mut w = Writer::with_capacity(128);
    encode_payload(entry, digest, &mut w);
    let payload = &w.buf;
    out.extend_from_slice(&(adler32(payload) as i64).to_be_bytes());
    out.extend_from_slice(&(payload.len() as i32).to_be_bytes());
    out.extend_from_slice(payload);
    out.push(EOR);
}

/// The 16-byte file header of a txn log.
pub fn file_header() -> [u8; 16] {
    let mut h = [0u8; 16];
    h[..4].copy_from_slice(&LOG_MAGIC.to_be_bytes());
    h[4..8].copy_from_slice(&2i32.to_be_bytes());
    h
}

#[cfg(test)]
mod tests {
    use super::*;

    /// zlib's Adler-32 written plainly, the reference for the lane-parallel one.
    fn adler32_reference(data: &[u8]) -> u32 {
        let (mut a, mut b) = (1u32, 0u32);
        for &x in data {
            a = (a + x as u32) % 65_521;
            b = (b + a) % 65_521;
        }
        (b << 16) | a
    }

    #[test]
    fn adler_matches_the_reference_at_every_length_and_split() {
        let data: Vec<u8> = (0..40_000u32).map(|i| (i * 7 + i / 13) as u8).collect();
        for len in (0..200).chain([5551, 5552, 5553, 11_104, 16_000, 40_000]) {
            let mut a = Adler32::default();
            a.update(&data[..len]);
            assert_eq!(a.value(), adler32_reference(&data[..len]), "len {len}");
        }
        let ones = vec![0xffu8; 100_000];
        let mut a = Adler32::default();
        for piece in ones.chunks(777) {
            a.update(piece);
        }
        assert_eq!(a.value(), adler32_reference(&ones));
    }

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

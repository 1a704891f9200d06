//! Java ZooKeeper's snapshot format (`FileSnap`, uncompressed): reading, for `snapshot-dump`
//! and, with the durability issue, for recovery.
//!
//! Layout: header (`ZKSN`, version 2, dbid −1), sessions, the ACL cache, every node in
//! preorder ending with the path "/", then "seals": the running Adler-32 of every byte so far,
//! each followed by "/". After the first seal, 3.6+ writes the tree digest and 3.9 the last
//! processed zxid, each sealed again.

use bytes::Bytes;
use thiserror::Error;

use super::txnlog::adler32;
use crate::jute::records::Acl;
use crate::jute::{JuteError, Reader};
use crate::tree::StatPersisted;

/// `ZKSN`.
pub const SNAP_MAGIC: i32 = 0x5A4B_534E;

/// Why a snapshot could not be read.
#[derive(Debug, Error, PartialEq, Eq)]
pub enum SnapError {
    #[error("not a snapshot: bad header")]
    BadHeader,
    #[error("checksum seal at offset {offset} does not match the data before it")]
    Checksum { offset: usize },
    #[error("snapshot is malformed at offset {offset}: {source}")]
    Record { offset: usize, source: JuteError },
    #[error("seal at offset {offset} is not followed by \"/\"")]
    BadSeal { offset: usize },
}

/// One node as a snapshot stores it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SnapNode {
    pub path: String,
    pub data: Option<Bytes>,
    pub acl_ref: i64,
    pub stat: StatPersisted,
}

/// A decoded snapshot.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Snapshot {
    pub sessions: Vec<(i64, i32)>,
    pub acls: Vec<(i64, Vec<Acl>)>,
    pub nodes: Vec<SnapNode>,
    /// `(zxid, digestVersion, digest)` when the writer had digests on.
    pub digest: Option<(i64, i32, i64)>,
    /// Written by 3.9+.
    pub last_processed_zxid: Option<i64>,
}

fn stat(r: &mut Reader<'_>) -> Result<StatPersisted, JuteError> {
    Ok(StatPersisted {
        czxid: r.read_i64()?,
        mzxid: r.read_i64()?,
        ctime: r.read_i64()?,
        mtime: r.read_i64()?,
        version: r.read_i32()?,
        cversion: r.read_i32()?,
        aversion: r.read_i32()?,
        ephemeral_owner: r.read_i64()?,
        pzxid: r.read_i64()?,
    })
}

/// Read and check one seal at the reader's position.
fn seal(buf: &[u8], r: &mut Reader<'_>) -> Result<(), SnapError> {
    let offset = r.position();
    let expected = adler32(&buf[..offset]) as i64;
    let val = r
        .read_i64()
        .map_err(|source| SnapError::Record { offset, source })?;
    if val != expected {
        return Err(SnapError::Checksum { offset });
    }
    match r.read_ustring() {
        Ok(s) if s == "/" => Ok(()),
        _ => Err(SnapError::BadSeal { offset }),
    }
}

/// Decode an uncompressed snapshot file's bytes.
pub fn read_snapshot(buf: &[u8]) -> Result<Snapshot, SnapError> {
    let mut r = Reader::new(buf);
    let rec = |r: &Reader<'_>| {
        let offset = r.position();
        move |source| SnapError::Record { offset, source }
    };
    let magic = r.read_i32().map_err(|_| SnapError::BadHeader)?;
    let version = r.read_i32().map_err(|_| SnapError::BadHeader)?;
    r.read_i64().map_err(|_| SnapError::BadHeader)?;
    if magic != SNAP_MAGIC || version != 2 {
        return Err(SnapError::BadHeader);
    }
    let mut snap = Snapshot::default();
    let n = r.read_i32().map_err(rec(&r))?;
    for _ in 0..n.max(0) {
        let id = r.read_i64().map_err(rec(&r))?;
        let timeout = r.read_i32().map_err(rec(&r))?;
        snap.sessions.push((id, timeout));
    }
    let n = r.read_i32().map_err(rec(&r))?;
    for _ in 0..n.max(0) {
        let id = r.read_i64().map_err(rec(&r))?;
        let acl = r.read_vec(|r| r.read()).map_err(rec(&r))?;
        snap.acls.push((id, acl));
    }
    loop {
        let path = r.read_ustring().map_err(rec(&r))?;
        if path == "/" {
            break;
        }
        let data = r.read_buffer().map_err(rec(&r))?.map(Bytes::from);
        let acl_ref = r.read_i64().map_err(rec(&r))?;
        let stat = stat(&mut r).map_err(rec(&r))?;
        snap.nodes.push(SnapNode {
            path,
            data,
            acl_ref,
            stat,
        });
    }
    seal(buf, &mut r)?;
    if r.remaining() > 0 {
        let zxid = r.read_i64().map_err(rec(&r))?;
        let v = r.read_i32().map_err(rec(&r))?;
        let d = r.read_i64().map_err(rec(&r))?;
        snap.digest = Some((zxid, v, d));
        seal(buf, &mut r)?;
    }
    if r.remaining() > 0 {
        snap.last_processed_zxid = Some(r.read_i64().map_err(rec(&r))?);
        seal(buf, &mut r)?;
    }
    Ok(snap)
}

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

/// A snapshot read as a stream of nodes, so a large one never exists twice in memory.
pub struct SnapshotReader<'a> {
    buf: &'a [u8],
    r: Reader<'a>,
    done: bool,
}

fn rec(r: &Reader<'_>) -> impl FnOnce(JuteError) -> SnapError {
    let offset = r.position();
    move |source| SnapError::Record { offset, source }
}

impl<'a> SnapshotReader<'a> {
    /// Read the header, sessions and ACL cache; nodes follow through [`Self::next_node`].
    #[allow(clippy::type_complexity)]
    pub fn open(
        buf: &'a [u8],
    ) -> Result<(SnapshotReader<'a>, Vec<(i64, i32)>, Vec<(i64, Vec<Acl>)>), SnapError> {
        let mut r = Reader::new(buf);
        let magic = r.read_i32().map_err(|_| SnapError::BadHeader)?;
        let version = r.read_i32().map_err(|_| SnapError::BadHeader)?;
        r.read_i64().map_err(|_| SnapError::BadHeader)?;
        if magic != SNAP_MAGIC || version != 2 {
            return Err(SnapError::BadHeader);
        }
        let n = r.read_i32().map_err(rec(&r))?;
        let mut sessions = Vec::new();
        for _ in 0..n.max(0) {
            let id = r.read_i64().map_err(rec(&r))?;
            let timeout = r.read_i32().map_err(rec(&r))?;
            sessions.push((id, timeout));
        }
        let n = r.read_i32().map_err(rec(&r))?;
        let mut acls = Vec::new();
        for _ in 0..n.max(0) {
            let id = r.read_i64().map_err(rec(&r))?;
            let acl = r.read_vec(|r| r.read()).map_err(rec(&r))?;
            acls.push((id, acl));
        }
        Ok((
            SnapshotReader {
                buf,
                r,
                done: false,
            },
            sessions,
            acls,
        ))
    }

    /// Bytes consumed so far.
    pub fn position(&self) -> usize {
        self.r.position()
    }

    /// The next node in preorder, or `None` at the end marker.
    pub fn next_node(&mut self) -> Result<Option<SnapNode>, SnapError> {
        if self.done {
            return Ok(None);
        }
        let r = &mut self.r;
        let path = r.read_ustring().map_err(rec(r))?;
        if path == "/" {
            self.done = true;
            return Ok(None);
        }
        let data = r.read_buffer().map_err(rec(r))?.map(Bytes::from);
        let acl_ref = r.read_i64().map_err(rec(r))?;
        let stat = stat(r).map_err(rec(r))?;
        Ok(Some(SnapNode {
            path,
            data,
            acl_ref,
            stat,
        }))
    }

    /// Check the seals after the nodes; returns the digest and last processed zxid, if any.
    #[allow(clippy::type_complexity)]
    pub fn finish(mut self) -> Result<(Option<(i64, i32, i64)>, Option<i64>), SnapError> {
        while self.next_node()?.is_some() {}
        let (buf, r) = (self.buf, &mut self.r);
        seal(buf, r)?;
        let mut digest = None;
        let mut last = None;
        if r.remaining() > 0 {
            let zxid = r.read_i64().map_err(rec(r))?;
            let v = r.read_i32().map_err(rec(r))?;
            let d = r.read_i64().map_err(rec(r))?;
            digest = Some((zxid, v, d));
            seal(buf, r)?;
        }
        if r.remaining() > 0 {
            last = Some(r.read_i64().map_err(rec(r))?);
            seal(buf, r)?;
        }
        Ok((digest, last))
    }
}

/// Decode an uncompressed snapshot file's bytes.
pub fn read_snapshot(buf: &[u8]) -> Result<Snapshot, SnapError> {
    let (mut reader, sessions, acls) = SnapshotReader::open(buf)?;
    let mut snap = Snapshot {
        sessions,
        acls,
        ..Default::default()
    };
    while let Some(n) = reader.next_node()? {
        snap.nodes.push(n);
    }
    let (digest, last) = reader.finish()?;
    snap.digest = digest;
    snap.last_processed_zxid = last;
    Ok(snap)
}

//! The payloads Zab packets carry between leader and learners (ZK-PROTOCOL §8.5–8.9), apart
//! from the QuorumPacket envelope itself (`wire`): forwarded client requests, session touches,
//! revalidation, and the SNAP stream (sessions + tree, then "BenWasHere") that a leader writes
//! straight onto the socket.

use bytes::Bytes;
use thiserror::Error;
use tokio::io::{AsyncRead, AsyncReadExt};

use crate::jute::records::{Acl, Id};
use crate::jute::{JuteError, Reader, Writer};
use crate::persist::snap_writer::write_sessions_and_acls;
use crate::persist::txnlog::{decode_payload, encode_payload, LogEntry, LogError};
use crate::request::txn::TxnEntry;
use crate::tree::{DataTree, StatPersisted};
use crate::tree::{LoadError, TreeLoader};

use super::wire::SNAP_SIGNATURE;

/// Why a Zab payload could not be read.
#[derive(Debug, Error)]
pub enum ZabError {
    #[error("malformed {what}: {source}")]
    Jute {
        what: &'static str,
        source: JuteError,
    },
    #[error("malformed txn: {0}")]
    Txn(#[from] LogError),
    #[error("snapshot stream: {0}")]
    Snapshot(String),
    #[error("snapshot stream does not form a tree: {0}")]
    Tree(#[from] LoadError),
    #[error("connection: {0}")]
    Io(#[from] std::io::Error),
}

fn jute(what: &'static str) -> impl Fn(JuteError) -> ZabError {
    move |source| ZabError::Jute { what, source }
}

/// A PROPOSAL's or INFORM's data: the txn as a log entry holds it.
pub fn encode_txn_data(entry: &TxnEntry, digest: Option<(i32, i64)>) -> Bytes {
    let mut w = Writer::new();
    encode_payload(entry, digest, &mut w);
    w.into_bytes()
}

/// Decode a PROPOSAL's or INFORM's data.
pub fn decode_txn_data(data: &[u8]) -> Result<LogEntry, ZabError> {
    Ok(decode_payload(data)?)
}

/// A client request a learner forwards to the leader (REQUEST packet data): the session,
/// the client's xid, the opcode, and the request record's raw bytes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LearnerRequest {
    pub session_id: i64,
    pub cxid: i32,
    pub op: i32,
    pub body: Bytes,
}

impl LearnerRequest {
    pub fn encode(&self) -> Bytes {
        let mut w = Writer::with_capacity(16 + self.body.len());
        w.i64(self.session_id).i32(self.cxid).i32(self.op);
        w.buf.extend_from_slice(&self.body);
        w.into_bytes()
    }

    pub fn decode(data: &[u8]) -> Result<LearnerRequest, ZabError> {
        let mut r = Reader::new(data);
        let session_id = r.read_i64().map_err(jute("REQUEST"))?;
        let cxid = r.read_i32().map_err(jute("REQUEST"))?;
        let op = r.read_i32().map_err(jute("REQUEST"))?;
        Ok(LearnerRequest {
            session_id,
            cxid,
            op,
            body: Bytes::copy_from_slice(r.rest()),
        })
    }
}

/// A learner's PING reply: the sessions it has seen alive, with their timeouts.
pub fn encode_touches(touches: &[(i64, i32)]) -> Bytes {
    let mut w = Writer::with_capacity(12 * touches.len());
    for (id, timeout) in touches {
        w.i64(*id).i32(*timeout);
    }
    w.into_bytes()
}

/// Decode a PING reply's touch table.
pub fn decode_touches(data: &[u8]) -> Result<Vec<(i64, i32)>, ZabError> {
    let mut r = Reader::new(data);
    let mut out = Vec::with_capacity(data.len() / 12);
    while r.remaining() >= 12 {
        let id = r.read_i64().map_err(jute("PING"))?;
        let timeout = r.read_i32().map_err(jute("PING"))?;
        out.push((id, timeout));
    }
    Ok(out)
}

/// REVALIDATE from a learner: a reconnecting client's session and timeout.
pub fn encode_revalidate_request(session_id: i64, timeout: i32) -> Bytes {
    let mut w = Writer::new();
    w.i64(session_id).i32(timeout);
    w.into_bytes()
}

/// Decode a learner's REVALIDATE: (session, timeout).
pub fn decode_revalidate_request(data: &[u8]) -> Result<(i64, i32), ZabError> {
    let mut r = Reader::new(data);
    Ok((
        r.read_i64().map_err(jute("REVALIDATE"))?,
        r.read_i32().map_err(jute("REVALIDATE"))?,
    ))
}

/// REVALIDATE from the leader: is the session still alive?
pub fn encode_revalidate_reply(session_id: i64, valid: bool) -> Bytes {
    let mut w = Writer::new();
    w.i64(session_id).bool(valid);
    w.into_bytes()
}

/// Decode the leader's REVALIDATE answer: (session, still valid).
pub fn decode_revalidate_reply(data: &[u8]) -> Result<(i64, bool), ZabError> {
    let mut r = Reader::new(data);
    Ok((
        r.read_i64().map_err(jute("REVALIDATE"))?,
        r.read_bool().map_err(jute("REVALIDATE"))?,
    ))
}

/// The SNAP stream a leader writes after the SNAP packet: sessions, the ACL cache, every node
/// in preorder, the "/" end marker, and the signature. No header, seals or digest.
pub fn encode_snapshot_stream(tree: &DataTree, sessions: &[(i64, i32)]) -> Vec<u8> {
    let mut w = Writer::with_capacity(64 + tree.node_count() * 128);
    write_sessions_and_acls(&mut w, sessions, &tree.acl_cache_entries());
    let mut stack = crate::tree::WalkStack::new();
    while !stack.is_empty() {
        tree.serialize_slice(&mut stack, &mut w, usize::MAX);
    }
    w.ustring("/");
    w.ustring(SNAP_SIGNATURE);
    w.buf.to_vec()
}

/// A snapshot received from the leader.
pub struct ReceivedSnapshot {
    pub sessions: Vec<(i64, i32)>,
    pub tree: DataTree,
}

/// Reads jute primitives straight off a socket, for the one unframed thing Zab sends.
struct StreamReader<'a, R> {
    r: &'a mut R,
    max: usize,
}

impl<R: AsyncRead + Unpin> StreamReader<'_, R> {
    async fn i32(&mut self) -> Result<i32, ZabError> {
        Ok(self.r.read_i32().await?)
    }

    async fn i64(&mut self) -> Result<i64, ZabError> {
        Ok(self.r.read_i64().await?)
    }

    async fn len(&mut self, what: &str) -> Result<Option<usize>, ZabError> {
        let n = self.i32().await?;
        if n == -1 {
            return Ok(None);
        }
        if n < 0 || n as usize > self.max {
            return Err(ZabError::Snapshot(format!(
                "{what} length {n} out of range"
            )));
        }
        Ok(Some(n as usize))
    }

    async fn bytes(&mut self, what: &str) -> Result<Option<Vec<u8>>, ZabError> {
        let Some(n) = self.len(what).await? else {
            return Ok(None);
        };
        let mut buf = vec![0u8; n];
        self.r.read_exact(&mut buf).await?;
        Ok(Some(buf))
    }

    async fn string(&mut self, what: &str) -> Result<String, ZabError> {
        let b = self.bytes(what).await?.unwrap_or_default();
        String::from_utf8(b).map_err(|_| ZabError::Snapshot(format!("{what} is not UTF-8")))
    }
}

/// Read the SNAP stream (see [`encode_snapshot_stream`]) into a tree. `max` bounds every
/// length field (jute.maxbuffer).
pub async fn read_snapshot_stream<R: AsyncRead + Unpin>(
    r: &mut R,
    max: usize,
    extended_types: bool,
) -> Result<ReceivedSnapshot, ZabError> {
    let mut s = StreamReader { r, max };
    let n = s.i32().await?;
    if n < 0 {
        return Err(ZabError::Snapshot(format!("session count {n}")));
    }
    let mut sessions = Vec::with_capacity((n as usize).min(1 << 16));
    for _ in 0..n {
        let id = s.i64().await?;
        let timeout = s.i32().await?;
        sessions.push((id, timeout));
    }
    let n = s.i32().await?;
    if n < 0 {
        return Err(ZabError::Snapshot(format!("ACL cache size {n}")));
    }
    let mut acls = Vec::with_capacity((n as usize).min(1 << 16));
    for _ in 0..n {
        let r = s.i64().await?;
        let count = s.i32().await?;
        let mut list = Vec::new();
        for _ in 0..count.max(0) {
            let perms = s.i32().await?;
            let scheme = s.string("ACL scheme").await?;
            let id = s.string("ACL id").await?;
            list.push(Acl {
                perms,
                id: Id { scheme, id },
            });
        }
        acls.push((r, list));
    }
    let mut loader = TreeLoader::new(acls, extended_types);
    loop {
        let path = s.string("path").await?;
        if path == "/" {
            break;
        }
        let data = s.bytes("node data").await?.map(Bytes::from);
        let acl_ref = s.i64().await?;
        let stat = StatPersisted {
            czxid: s.i64().await?,
            mzxid: s.i64().await?,
            ctime: s.i64().await?,
            mtime: s.i64().await?,
            version: s.i32().await?,
            cversion: s.i32().await?,
            aversion: s.i32().await?,
            ephemeral_owner: s.i64().await?,
            pzxid: s.i64().await?,
        };
        // Java's serializer writes the root as "" (its path in the map).
        let path = if path.is_empty() {
            "/".to_owned()
        } else {
            path
        };
        loader.add(&path, data, acl_ref, stat)?;
    }
    let sig = s.string("signature").await?;
    if sig != SNAP_SIGNATURE {
        return Err(ZabError::Snapshot(format!(
            "missing signature, got {sig:?}"
        )));
    }
    Ok(ReceivedSnapshot {
        sessions,
        tree: loader.finish(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::request::apply::Applier;
    use crate::request::txn::{Txn, TxnHeader};
    use crate::watch::WatchManager;

    #[test]
    fn request_and_touches_round_trip() {
        let r = LearnerRequest {
            session_id: 0x0100_0000_0000_0005,
            cxid: 7,
            op: 1,
            body: Bytes::from_static(b"\0\0\0\x02/a"),
        };
        let enc = r.encode();
        assert_eq!(&enc[..8], &0x0100_0000_0000_0005i64.to_be_bytes());
        assert_eq!(LearnerRequest::decode(&enc).unwrap(), r);
        assert!(LearnerRequest::decode(&enc[..10]).is_err());
        let t = vec![(1, 4000), (2, 6000)];
        assert_eq!(decode_touches(&encode_touches(&t)).unwrap(), t);
        assert_eq!(
            decode_revalidate_reply(&encode_revalidate_reply(9, true)).unwrap(),
            (9, true)
        );
    }

    #[tokio::test]
    async fn snapshot_stream_round_trips_and_rejects_damage() {
        let mut tree = DataTree::new();
        let mut watches = WatchManager::new();
        let mut fired = Vec::new();
        for (i, path) in ["/a", "/a/b", "/c"].iter().enumerate() {
            let entry = TxnEntry {
                header: TxnHeader {
                    client_id: 1,
                    cxid: i as i32,
                    zxid: i as i64 + 1,
                    time: 5,
                },
                txn: Txn::Create {
                    op: crate::jute::OpCode::Create,
                    path: path.to_string(),
                    data: Some(Bytes::from_static(b"x")),
                    acl: Acl::open_unsafe(),
                    ephemeral_owner: 0,
                    parent_cversion: 1,
                    ttl: -1,
                },
            };
            Applier {
                tree: &mut tree,
                watches: &mut watches,
                fired: &mut fired,
            }
            .apply(&entry);
        }
        let bytes = encode_snapshot_stream(&tree, &[(42, 5000)]);
        let got = read_snapshot_stream(&mut &bytes[..], 1 << 20, false)
            .await
            .unwrap();
        assert_eq!(got.sessions, vec![(42, 5000)]);
        assert_eq!(got.tree.node_count(), tree.node_count());
        assert_eq!(got.tree.digest(), tree.digest());
        for cut in [0, 3, bytes.len() / 2, bytes.len() - 1] {
            assert!(read_snapshot_stream(&mut &bytes[..cut], 1 << 20, false)
                .await
                .is_err());
        }
    }
}

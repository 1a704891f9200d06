//! Java ZooKeeper's snapshot format (`FileSnap`, uncompressed): reading, for `snapshot-dump`
//! and, with the durability issue, for recovery.
//!
//! Layout: header (`ZKSN`, version 2, dbid −1), sessions, the ACL cache, every node in
//! preorder ending with the path "/", then "seals": the running Adler-32 of every byte so far,
//! each followed by "/". After the first seal, 3.6+ writes the tree digest and 3.9 the last
//! processed zxid, each sealed again.
//!
//! The reader streams: it holds one window of the file (a MiB, or one record if larger), so a
//! snapshot of hundreds of MiB is never in memory as a whole, and it sums the Adler-32 of the
//! seals over each window as it moves on, while those bytes are still in the cache.

use std::io::{self, Read};
use std::time::{Duration, Instant};

use bytes::Bytes;
use thiserror::Error;

use super::txnlog::Adler32;
use crate::jute::records::Acl;
use crate::jute::{JuteError, Reader, DEFAULT_MAX_BUFFER};
use crate::tree::StatPersisted;

/// `ZKSN`.
pub const SNAP_MAGIC: i32 = 0x5A4B_534E;

/// Bytes read from the source at a time (the window grows only for a larger record).
const WINDOW: usize = 1 << 20;

/// The longest string or buffer accepted, as [`Reader`] limits them.
const MAX_LEN: usize = DEFAULT_MAX_BUFFER * 2;

/// A node record after its path and data: the ACL reference and the 60-byte stat.
const NODE_TAIL: usize = 8 + 60;

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
    #[error("cannot read the snapshot at offset {offset}: {error}")]
    Io { offset: usize, error: String },
}

/// One node as a snapshot stores it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SnapNode {
    pub path: String,
    pub data: Option<Bytes>,
    pub acl_ref: i64,
    pub stat: StatPersisted,
}

/// One node, borrowed from the reader's window (valid until the next call).
#[derive(Debug, PartialEq, Eq)]
pub struct NodeRef<'w> {
    /// As stored: "" for the root.
    pub path: &'w str,
    pub data: Option<&'w [u8]>,
    pub acl_ref: i64,
    pub stat: StatPersisted,
}

impl NodeRef<'_> {
    pub fn to_snap_node(&self) -> SnapNode {
        SnapNode {
            path: self.path.to_owned(),
            data: self.data.map(Bytes::copy_from_slice),
            acl_ref: self.acl_ref,
            stat: self.stat.clone(),
        }
    }
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

fn i32_at(b: &[u8], at: usize) -> i32 {
    i32::from_be_bytes([b[at], b[at + 1], b[at + 2], b[at + 3]])
}

fn i64_at(b: &[u8], at: usize) -> i64 {
    let mut a = [0u8; 8];
    a.copy_from_slice(&b[at..at + 8]);
    i64::from_be_bytes(a)
}

fn stat_at(b: &[u8], at: usize) -> StatPersisted {
    StatPersisted {
        czxid: i64_at(b, at),
        mzxid: i64_at(b, at + 8),
        ctime: i64_at(b, at + 16),
        mtime: i64_at(b, at + 24),
        version: i32_at(b, at + 32),
        cversion: i32_at(b, at + 36),
        aversion: i32_at(b, at + 40),
        ephemeral_owner: i64_at(b, at + 44),
        pzxid: i64_at(b, at + 52),
    }
}

fn rec(r: &Reader<'_>) -> impl FnOnce(JuteError) -> SnapError {
    let offset = r.position();
    move |source| SnapError::Record { offset, source }
}

fn truncated(offset: usize, needed: usize) -> SnapError {
    SnapError::Record {
        offset,
        source: JuteError::Truncated { offset, needed },
    }
}

type Preamble = (usize, Vec<(i64, i32)>, Vec<(i64, Vec<Acl>)>);

/// The header, sessions and ACL cache at the start of `buf`, and their length.
fn preamble(buf: &[u8]) -> Result<Preamble, SnapError> {
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
    Ok((r.position(), sessions, acls))
}

/// A snapshot read as a stream of nodes from `R` (a file, or bytes already in memory).
pub struct SnapshotReader<R> {
    src: R,
    /// The window: `buf[pos..end]` is read and not yet consumed.
    buf: Vec<u8>,
    pos: usize,
    end: usize,
    /// Stream offset of `buf[0]`.
    base: usize,
    eof: bool,
    /// Adler-32 of the stream up to `buf[summed]`.
    sum: Adler32,
    summed: usize,
    done: bool,
    io_time: Duration,
}

impl<R: Read> SnapshotReader<R> {
    /// Read the header, sessions and ACL cache; nodes follow through [`Self::next_node`].
    #[allow(clippy::type_complexity)]
    pub fn open(src: R) -> Result<(Self, Vec<(i64, i32)>, Vec<(i64, Vec<Acl>)>), SnapError> {
        Self::open_with_window(src, WINDOW)
    }

    #[allow(clippy::type_complexity)]
    fn open_with_window(
        src: R,
        window: usize,
    ) -> Result<(Self, Vec<(i64, i32)>, Vec<(i64, Vec<Acl>)>), SnapError> {
        let mut s = SnapshotReader {
            src,
            buf: vec![0; window.max(16)],
            pos: 0,
            end: 0,
            base: 0,
            eof: false,
            sum: Adler32::default(),
            summed: 0,
            done: false,
            io_time: Duration::ZERO,
        };
        // The preamble is small but of unknown length: parse what the window holds and read
        // more while it was cut short. Nothing is consumed yet, so offsets are the stream's.
        loop {
            let parsed = preamble(&s.buf[..s.end]);
            let short = match &parsed {
                Err(SnapError::BadHeader) => s.end < 16,
                Err(SnapError::Record { source, .. }) => match source {
                    JuteError::Truncated { .. } => true,
                    // A vector's count beyond the bytes at hand reads as a bad length.
                    JuteError::BadLength { len, .. } => *len >= 0 && *len as usize <= MAX_LEN,
                    _ => false,
                },
                _ => false,
            };
            if short && !s.eof {
                s.fill(s.end + 1)?;
                continue;
            }
            let (len, sessions, acls) = parsed?;
            s.pos = len;
            return Ok((s, sessions, acls));
        }
    }

    /// Bytes consumed so far.
    pub fn position(&self) -> usize {
        self.base + self.pos
    }

    /// Time spent waiting for the source.
    pub fn io_time(&self) -> Duration {
        self.io_time
    }

    /// Make `buf[pos..pos + n]` readable; false if the stream ends first.
    fn fill(&mut self, n: usize) -> Result<bool, SnapError> {
        while self.end - self.pos < n {
            if self.eof {
                return Ok(false);
            }
            if self.end == self.buf.len() || self.buf.len() - self.pos < n {
                if self.pos > 0 {
                    // Sum what is consumed before it leaves the window.
                    self.sum.update(&self.buf[self.summed..self.pos]);
                    self.buf.copy_within(self.pos..self.end, 0);
                    self.base += self.pos;
                    self.end -= self.pos;
                    self.pos = 0;
                    self.summed = 0;
                }
                if self.buf.len() < n || self.end == self.buf.len() {
                    let grown = n.max(self.buf.len() * 2);
                    self.buf.resize(grown, 0);
                }
            }
            let started = Instant::now();
            let got = loop {
                match self.src.read(&mut self.buf[self.end..]) {
                    Ok(got) => break got,
                    Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                    Err(e) => {
                        return Err(SnapError::Io {
                            offset: self.base + self.end,
                            error: e.to_string(),
                        })
                    }
                }
            };
            self.io_time += started.elapsed();
            if got == 0 {
                self.eof = true;
            }
            self.end += got;
        }
        Ok(true)
    }

    /// Make `n` bytes at `at` past the current position readable, or name what is missing.
    fn need(&mut self, at: usize, n: usize) -> Result<(), SnapError> {
        if self.end - self.pos >= at + n || self.fill(at + n)? {
            return Ok(());
        }
        // Callers ask for fields in order, so the bytes before `at` are there.
        let have = (self.end - self.pos).saturating_sub(at);
        Err(truncated(self.position() + at, n - have))
    }

    /// A length field at `at`: `None` for −1 (null), else a length within [`MAX_LEN`].
    fn len_at(&mut self, at: usize) -> Result<Option<usize>, SnapError> {
        self.need(at, 4)?;
        let len = i32_at(&self.buf, self.pos + at);
        if len == -1 {
            return Ok(None);
        }
        if len < 0 || len as usize > MAX_LEN {
            let offset = self.position() + at;
            return Err(SnapError::Record {
                offset,
                source: JuteError::BadLength { offset, len },
            });
        }
        Ok(Some(len as usize))
    }

    /// The next node in preorder, borrowed from the window, or `None` at the end marker.
    pub fn next_ref(&mut self) -> Result<Option<NodeRef<'_>>, SnapError> {
        if self.done {
            return Ok(None);
        }
        // path, data, acl, stat: lengths first, then the whole record is in the window.
        let path_len = self.len_at(0)?.unwrap_or(0);
        self.need(4, path_len)?;
        let data_at = 4 + path_len;
        if &self.buf[self.pos + 4..self.pos + data_at] == b"/" {
            // The end marker: only its path is part of the node section.
            self.pos += data_at;
            self.done = true;
            return Ok(None);
        }
        let data_len = self.len_at(data_at)?;
        self.need(data_at + 4, data_len.unwrap_or(0))?;
        let tail_at = data_at + 4 + data_len.unwrap_or(0);
        self.need(tail_at, NODE_TAIL)?;
        let p = self.pos;
        let buf = &self.buf[..self.end];
        let Ok(path) = std::str::from_utf8(&buf[p + 4..p + data_at]) else {
            let offset = self.base + p;
            return Err(SnapError::Record {
                offset,
                source: JuteError::BadUtf8 { offset },
            });
        };
        let data = data_len.map(|n| &buf[p + data_at + 4..p + data_at + 4 + n]);
        let acl_ref = i64_at(buf, p + tail_at);
        let stat = stat_at(buf, p + tail_at + 8);
        self.pos = p + tail_at + NODE_TAIL;
        Ok(Some(NodeRef {
            path,
            data,
            acl_ref,
            stat,
        }))
    }

    /// The next node in preorder, or `None` at the end marker.
    pub fn next_node(&mut self) -> Result<Option<SnapNode>, SnapError> {
        Ok(self.next_ref()?.map(|n| n.to_snap_node()))
    }

    fn read_i64(&mut self) -> Result<i64, SnapError> {
        self.need(0, 8)?;
        let v = i64_at(&self.buf, self.pos);
        self.pos += 8;
        Ok(v)
    }

    fn read_i32(&mut self) -> Result<i32, SnapError> {
        self.need(0, 4)?;
        let v = i32_at(&self.buf, self.pos);
        self.pos += 4;
        Ok(v)
    }

    /// Read and check one seal at the current position.
    fn seal(&mut self) -> Result<(), SnapError> {
        let offset = self.position();
        self.sum.update(&self.buf[self.summed..self.pos]);
        self.summed = self.pos;
        let expected = self.sum.value() as i64;
        let val = self.read_i64().map_err(|e| match e {
            SnapError::Record { source, .. } => SnapError::Record { offset, source },
            e => e,
        })?;
        if val != expected {
            return Err(SnapError::Checksum { offset });
        }
        let slash = match self.len_at(0).and_then(|len| match len {
            Some(1) => self.need(4, 1),
            _ => Err(SnapError::BadSeal { offset }),
        }) {
            Ok(()) => self.buf[self.pos + 4] == b'/',
            Err(e @ SnapError::Io { .. }) => return Err(e),
            Err(_) => false,
        };
        if !slash {
            return Err(SnapError::BadSeal { offset });
        }
        self.pos += 5;
        Ok(())
    }

    /// Whether any bytes follow.
    fn more(&mut self) -> Result<bool, SnapError> {
        self.fill(1)
    }

    /// Check the seals after the nodes; returns the digest and last processed zxid, if any.
    #[allow(clippy::type_complexity)]
    pub fn finish(mut self) -> Result<(Option<(i64, i32, i64)>, Option<i64>), SnapError> {
        while self.next_ref()?.is_some() {}
        self.seal()?;
        let mut digest = None;
        let mut last = None;
        if self.more()? {
            let zxid = self.read_i64()?;
            let v = self.read_i32()?;
            let d = self.read_i64()?;
            digest = Some((zxid, v, d));
            self.seal()?;
        }
        if self.more()? {
            last = Some(self.read_i64()?);
            self.seal()?;
        }
        Ok((digest, last))
    }
}

/// Decode an uncompressed snapshot file's bytes.
pub fn read_snapshot(buf: &[u8]) -> Result<Snapshot, SnapError> {
    read_all(SnapshotReader::open(buf)?)
}

/// A snapshot opened for reading: the reader positioned at the first node, the sessions and
/// the ACL cache.
type Opened<R> = (SnapshotReader<R>, Vec<(i64, i32)>, Vec<(i64, Vec<Acl>)>);

/// The rest of an opened snapshot, node by node, then its trailers.
fn read_all<R: Read>((mut reader, sessions, acls): Opened<R>) -> Result<Snapshot, SnapError> {
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::jute::Writer;
    use crate::persist::compress::Compression;
    use crate::persist::snap_writer::{write_file, Preamble};

    /// A source that hands out at most `step` bytes per read, and fails where asked.
    struct Trickle<'a> {
        data: &'a [u8],
        step: usize,
        fail_at: Option<usize>,
        at: usize,
    }

    impl Read for Trickle<'_> {
        fn read(&mut self, out: &mut [u8]) -> io::Result<usize> {
            if self.fail_at.is_some_and(|f| self.at >= f) {
                return Err(io::Error::other("disk on fire"));
            }
            let n = self.step.min(out.len()).min(self.data.len() - self.at);
            out[..n].copy_from_slice(&self.data[self.at..self.at + n]);
            self.at += n;
            Ok(n)
        }
    }

    fn read_with(data: &[u8], window: usize, step: usize) -> Result<Snapshot, SnapError> {
        let src = Trickle {
            data,
            step,
            fail_at: None,
            at: 0,
        };
        read_all(SnapshotReader::open_with_window(src, window)?)
    }

    /// A snapshot with records of every size up to beyond the test windows, null data,
    /// empty data, and both trailers.
    fn sample(count: i64) -> Vec<u8> {
        let mut nodes = Writer::new();
        let stat = |i: i64| StatPersisted {
            czxid: i,
            mzxid: i + 1,
            ctime: i + 2,
            mtime: i + 3,
            version: i as i32,
            cversion: -(i as i32),
            aversion: 7,
            ephemeral_owner: i * 1000,
            pzxid: i + 4,
        };
        let put = |w: &mut Writer, path: &str, data: Option<&[u8]>, i: i64| {
            w.ustring(path).buffer(data).i64(-1);
            stat(i).write_to(w);
        };
        put(&mut nodes, "", Some(b""), 0);
        for i in 0..count {
            let data = vec![(i % 251) as u8; (i as usize * 37) % 900];
            let d = match i % 5 {
                0 => None,
                _ => Some(&data[..]),
            };
            put(&mut nodes, &format!("/n{i}é"), d, i);
        }
        let pre = Preamble {
            sessions: (0..40).map(|i| (i, 30_000)).collect(),
            acls: vec![(1, crate::jute::records::Acl::open_unsafe())],
            digest: Some((9, 12345)),
            last_zxid: 9,
        };
        let d = tempfile::tempdir().unwrap();
        let path = d.path().join("snapshot.9");
        write_file(&path, Compression::None, &pre, &mut &nodes.buf[..]).unwrap();
        std::fs::read(&path).unwrap()
    }

    #[test]
    fn any_window_and_read_size_reads_the_same() {
        let bytes = sample(300);
        let whole = read_snapshot(&bytes).unwrap();
        assert_eq!(whole.nodes.len(), 301);
        assert_eq!(whole.sessions.len(), 40);
        assert_eq!(whole.digest, Some((9, crate::tree::DIGEST_VERSION, 12345)));
        assert_eq!(whole.last_processed_zxid, Some(9));
        assert_eq!(whole.nodes[0].data.as_deref(), Some(&b""[..]));
        assert_eq!(whole.nodes[1].data, None);
        for window in [16, 17, 100, 1000, 4096] {
            for step in [1, 3, 64, 1 << 20] {
                let got = read_with(&bytes, window, step);
                assert!(got.as_ref() == Ok(&whole), "window {window} step {step}");
            }
        }
    }

    #[test]
    fn damage_and_truncation_are_errors_wherever_they_are() {
        let bytes = sample(30);
        // A file cut right after a seal is a valid older format (no digest, or no last zxid).
        let seal = 8 + 4 + 1;
        let whole_seals = [bytes.len() - 8 - seal, bytes.len() - 8 - seal - 20 - seal];
        for cut in 0..bytes.len() {
            let streamed = read_with(&bytes[..cut], 64, 13);
            assert_eq!(streamed.is_ok(), whole_seals.contains(&cut), "cut at {cut}");
            assert_eq!(read_snapshot(&bytes[..cut]).is_ok(), streamed.is_ok());
        }
        for at in (0..bytes.len()).step_by(3) {
            let mut bad = bytes.clone();
            bad[at] ^= 0x20;
            assert!(read_with(&bad, 100, 33).is_err(), "flip at {at}");
        }
        let src = Trickle {
            data: &bytes,
            step: 100,
            fail_at: Some(5000),
            at: 0,
        };
        let (mut r, _, _) = SnapshotReader::open_with_window(src, 256).unwrap();
        let err = loop {
            match r.next_node() {
                Ok(Some(_)) => {}
                Ok(None) => panic!("read past a failing source"),
                Err(e) => break e,
            }
        };
        assert!(matches!(err, SnapError::Io { offset: 5000, .. }), "{err:?}");
    }
}

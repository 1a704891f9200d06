//! Jute, ZooKeeper's binary record encoding, and every record ferrokeeper speaks.
//!
//! Jute is simple: big-endian ints and longs, one-byte booleans, length-prefixed strings and
//! buffers (length −1 means null), count-prefixed vectors, and records as their fields in
//! declaration order. [`Reader`] decodes from a borrowed frame and never panics on short or
//! hostile input; [`Writer`] encodes into a growable buffer.

pub mod codes;
pub mod records;

use bytes::{BufMut, BytesMut};
use thiserror::Error;

pub use codes::{ErrorCode, EventType, OpCode, Perms};

/// Default `jute.maxbuffer`: the largest frame, string or buffer a peer may send (1 MiB − 1).
pub const DEFAULT_MAX_BUFFER: usize = 0xfffff;

/// Why a jute frame could not be decoded. Any of these closes the offending connection.
#[derive(Debug, Error, PartialEq, Eq)]
pub enum JuteError {
    #[error("frame ended early: needed {needed} more bytes at offset {offset}")]
    Truncated { offset: usize, needed: usize },
    #[error("invalid length {len} at offset {offset}")]
    BadLength { offset: usize, len: i32 },
    #[error("string at offset {offset} is not valid UTF-8")]
    BadUtf8 { offset: usize },
    #[error("unexpected value {value} for {what}")]
    BadValue { what: &'static str, value: i64 },
}

/// A cursor over one received frame. Every read checks bounds and lengths, so a malformed
/// frame becomes a [`JuteError`] instead of a panic or a huge allocation.
#[derive(Debug, Clone)]
pub struct Reader<'a> {
    buf: &'a [u8],
    pos: usize,
    max_len: usize,
}

impl<'a> Reader<'a> {
    /// A reader over `buf` that rejects strings and buffers longer than [`DEFAULT_MAX_BUFFER`]
    /// (they could not have fit in the frame anyway; the check keeps allocations honest).
    pub fn new(buf: &'a [u8]) -> Self {
        Reader {
            buf,
            pos: 0,
            max_len: DEFAULT_MAX_BUFFER * 2,
        }
    }

    /// Bytes not yet consumed.
    pub fn remaining(&self) -> usize {
        self.buf.len() - self.pos
    }

    /// Offset of the next byte to be read.
    pub fn position(&self) -> usize {
        self.pos
    }

    /// The unread tail of the frame.
    pub fn rest(&self) -> &'a [u8] {
        &self.buf[self.pos..]
    }

    fn take(&mut self, n: usize) -> Result<&'a [u8], JuteError> {
        if self.remaining() < n {
            return Err(JuteError::Truncated {
                offset: self.pos,
                needed: n - self.remaining(),
            });
        }
        let s = &self.buf[self.pos..self.pos + n];
        self.pos += n;
        Ok(s)
    }

    pub fn read_u8(&mut self) -> Result<u8, JuteError> {
        Ok(self.take(1)?[0])
    }

    /// Jute booleans: any non-zero byte is true, as Java's reader treats them.
    pub fn read_bool(&mut self) -> Result<bool, JuteError> {
        Ok(self.read_u8()? != 0)
    }

    pub fn read_i32(&mut self) -> Result<i32, JuteError> {
        let b = self.take(4)?;
        Ok(i32::from_be_bytes([b[0], b[1], b[2], b[3]]))
    }

    pub fn read_i64(&mut self) -> Result<i64, JuteError> {
        let b = self.take(8)?;
        let mut a = [0u8; 8];
        a.copy_from_slice(b);
        Ok(i64::from_be_bytes(a))
    }

    fn read_len(&mut self) -> Result<Option<usize>, JuteError> {
        let offset = self.pos;
        let len = self.read_i32()?;
        if len == -1 {
            return Ok(None);
        }
        if len < 0 || len as usize > self.max_len {
            return Err(JuteError::BadLength { offset, len });
        }
        Ok(Some(len as usize))
    }

    /// A `buffer`: `None` for the null buffer (length −1), which Java keeps distinct from empty.
    pub fn read_buffer(&mut self) -> Result<Option<Vec<u8>>, JuteError> {
        match self.read_len()? {
            None => Ok(None),
            Some(n) => Ok(Some(self.take(n)?.to_vec())),
        }
    }

    /// A `ustring`: `None` for the null string.
    pub fn read_ustring_opt(&mut self) -> Result<Option<String>, JuteError> {
        let offset = self.pos;
        match self.read_len()? {
            None => Ok(None),
            Some(n) => {
                let raw = self.take(n)?;
                match std::str::from_utf8(raw) {
                    Ok(s) => Ok(Some(s.to_owned())),
                    Err(_) => Err(JuteError::BadUtf8 { offset }),
                }
            }
        }
    }

    /// A `ustring` where null is read as the empty string (how Java's server treats paths).
    pub fn read_ustring(&mut self) -> Result<String, JuteError> {
        Ok(self.read_ustring_opt()?.unwrap_or_default())
    }

    /// A `vector<T>`; the null vector (count −1) reads as `None`.
    pub fn read_vec_opt<T>(
        &mut self,
        mut item: impl FnMut(&mut Self) -> Result<T, JuteError>,
    ) -> Result<Option<Vec<T>>, JuteError> {
        let offset = self.pos;
        let count = self.read_i32()?;
        if count == -1 {
            return Ok(None);
        }
        // Every element takes at least one byte, so a count beyond the frame is a lie.
        if count < 0 || count as usize > self.remaining() {
            return Err(JuteError::BadLength { offset, len: count });
        }
        let mut v = Vec::with_capacity(count as usize);
        for _ in 0..count {
            v.push(item(self)?);
        }
        Ok(Some(v))
    }

    /// A `vector<T>` where null reads as empty.
    pub fn read_vec<T>(
        &mut self,
        item: impl FnMut(&mut Self) -> Result<T, JuteError>,
    ) -> Result<Vec<T>, JuteError> {
        Ok(self.read_vec_opt(item)?.unwrap_or_default())
    }

    /// A record's decoder; reads exactly that record's fields.
    pub fn read<T: Decode>(&mut self) -> Result<T, JuteError> {
        T::decode(self)
    }
}

/// A record that can be read from jute bytes.
pub trait Decode: Sized {
    fn decode(r: &mut Reader<'_>) -> Result<Self, JuteError>;

    /// Decode a whole frame body. Trailing bytes are tolerated, as Java's reader does.
    fn from_bytes(buf: &[u8]) -> Result<Self, JuteError> {
        Self::decode(&mut Reader::new(buf))
    }
}

/// A record that can be written as jute bytes.
pub trait Encode {
    fn encode(&self, w: &mut Writer);
}

/// Encodes jute values into a growable buffer.
#[derive(Debug, Default)]
pub struct Writer {
    pub buf: BytesMut,
}

impl Writer {
    pub fn new() -> Self {
        Writer {
            buf: BytesMut::with_capacity(128),
        }
    }

    pub fn with_capacity(n: usize) -> Self {
        Writer {
            buf: BytesMut::with_capacity(n),
        }
    }

    pub fn len(&self) -> usize {
        self.buf.len()
    }

    pub fn is_empty(&self) -> bool {
        self.buf.is_empty()
    }

    pub fn u8(&mut self, v: u8) -> &mut Self {
        self.buf.put_u8(v);
        self
    }

    pub fn bool(&mut self, v: bool) -> &mut Self {
        self.buf.put_u8(v as u8);
        self
    }

    pub fn i32(&mut self, v: i32) -> &mut Self {
        self.buf.put_i32(v);
        self
    }

    pub fn i64(&mut self, v: i64) -> &mut Self {
        self.buf.put_i64(v);
        self
    }

    pub fn buffer(&mut self, v: Option<&[u8]>) -> &mut Self {
        match v {
            None => self.buf.put_i32(-1),
            Some(b) => {
                self.buf.put_i32(b.len() as i32);
                self.buf.put_slice(b);
            }
        }
        self
    }

    pub fn ustring(&mut self, v: &str) -> &mut Self {
        self.buffer(Some(v.as_bytes()))
    }

    pub fn ustring_opt(&mut self, v: Option<&str>) -> &mut Self {
        self.buffer(v.map(str::as_bytes))
    }

    pub fn vec<T>(&mut self, items: &[T], mut f: impl FnMut(&mut Self, &T)) -> &mut Self {
        self.buf.put_i32(items.len() as i32);
        for it in items {
            f(self, it);
        }
        self
    }

    pub fn strings(&mut self, items: &[String]) -> &mut Self {
        self.vec(items, |w, s| {
            w.ustring(s);
        })
    }

    pub fn record<T: Encode + ?Sized>(&mut self, r: &T) -> &mut Self {
        r.encode(self);
        self
    }

    /// Reserve 4 bytes for a frame length; finish with [`Writer::finish_frame`].
    pub fn begin_frame(&mut self) -> usize {
        let at = self.buf.len();
        self.buf.put_i32(0);
        at
    }

    /// Patch the length reserved by [`Writer::begin_frame`] at `at`.
    pub fn finish_frame(&mut self, at: usize) {
        let len = (self.buf.len() - at - 4) as i32;
        self.buf[at..at + 4].copy_from_slice(&len.to_be_bytes());
    }

    pub fn into_bytes(self) -> bytes::Bytes {
        self.buf.freeze()
    }
}

/// Encode one record to a fresh buffer (tests and tools).
pub fn to_bytes<T: Encode + ?Sized>(r: &T) -> Vec<u8> {
    let mut w = Writer::new();
    r.encode(&mut w);
    w.buf.to_vec()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn null_and_empty_buffers_differ() {
        let mut w = Writer::new();
        w.buffer(None).buffer(Some(b"")).ustring("ab");
        assert_eq!(
            &w.buf[..],
            &[255, 255, 255, 255, 0, 0, 0, 0, 0, 0, 0, 2, b'a', b'b']
        );
        let mut r = Reader::new(&w.buf);
        assert_eq!(r.read_buffer().unwrap(), None);
        assert_eq!(r.read_buffer().unwrap(), Some(vec![]));
        assert_eq!(r.read_ustring().unwrap(), "ab");
        assert_eq!(r.remaining(), 0);
    }

    #[test]
    fn hostile_lengths_are_errors_not_panics() {
        assert!(matches!(
            Reader::new(&[0x7f, 0xff, 0xff, 0xff]).read_buffer(),
            Err(JuteError::BadLength { .. })
        ));
        assert!(matches!(
            Reader::new(&[0, 0, 0, 9, 1]).read_buffer(),
            Err(JuteError::Truncated { .. })
        ));
        assert!(matches!(
            Reader::new(&[0x7f, 0, 0, 0]).read_vec(|r| r.read_i32()),
            Err(JuteError::BadLength { .. })
        ));
        assert!(matches!(
            Reader::new(&[0, 0, 0, 1, 0xff]).read_ustring(),
            Err(JuteError::BadUtf8 { .. })
        ));
        assert!(Reader::new(&[1, 2]).read_i32().is_err());
    }
}

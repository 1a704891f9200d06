//! Snapshot compression, as Java's `SnapStream` offers it (`zookeeper.snapshot.compression.method`):
//! none, `gz` (a gzip stream) or `snappy` (the block format of the snappy-java library's
//! `SnappyOutputStream`: an 8-byte magic, two int32 versions, then int32-length-prefixed raw
//! snappy blocks).
//!
//! The Adler-32 seals inside a snapshot cover the uncompressed bytes, so compression wraps the
//! whole file.

use std::io::{self, Read, Write};

use flate2::read::GzDecoder;
use flate2::write::GzEncoder;

/// snappy-java's stream magic.
pub const SNAPPY_MAGIC: [u8; 8] = [0x82, b'S', b'N', b'A', b'P', b'P', b'Y', 0];
/// Uncompressed bytes per snappy block (snappy-java's default block size).
const SNAPPY_BLOCK: usize = 32 * 1024;

/// A compression method and its file-name suffix.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Compression {
    None,
    Gz,
    Snappy,
}

impl Compression {
    /// The method named by the setting (Java treats anything unknown as none).
    pub fn from_setting(v: Option<&str>) -> Compression {
        match v.map(str::trim) {
            Some("gz") => Compression::Gz,
            Some("snappy") => Compression::Snappy,
            _ => Compression::None,
        }
    }

    /// The method a snapshot file name implies.
    pub fn from_name(name: &str) -> Compression {
        if name.ends_with(".gz") {
            Compression::Gz
        } else if name.ends_with(".snappy") {
            Compression::Snappy
        } else {
            Compression::None
        }
    }

    pub fn suffix(self) -> &'static str {
        match self {
            Compression::None => "",
            Compression::Gz => ".gz",
            Compression::Snappy => ".snappy",
        }
    }
}

/// Undo `method` on a whole file's bytes.
pub fn decompress(method: Compression, raw: Vec<u8>) -> io::Result<Vec<u8>> {
    match method {
        Compression::None => Ok(raw),
        Compression::Gz => {
            let mut out = Vec::with_capacity(raw.len() * 4);
            GzDecoder::new(&raw[..]).read_to_end(&mut out)?;
            Ok(out)
        }
        Compression::Snappy => snappy_decode(&raw),
    }
}

fn bad(what: &str) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, what.to_owned())
}

fn snappy_decode(raw: &[u8]) -> io::Result<Vec<u8>> {
    if raw.len() < 16 || raw[..8] != SNAPPY_MAGIC {
        return Err(bad("not a snappy-java stream"));
    }
    let mut out = Vec::with_capacity(raw.len() * 3);
    let mut dec = snap::raw::Decoder::new();
    let mut pos = 16;
    while pos < raw.len() {
        if raw.len() - pos < 4 {
            return Err(bad("snappy stream ends inside a block length"));
        }
        let len = i32::from_be_bytes([raw[pos], raw[pos + 1], raw[pos + 2], raw[pos + 3]]);
        pos += 4;
        if len < 0 || raw.len() - pos < len as usize {
            return Err(bad("snappy block runs past the end of the file"));
        }
        let block = &raw[pos..pos + len as usize];
        pos += len as usize;
        let n = snap::raw::decompress_len(block).map_err(|e| bad(&e.to_string()))?;
        let at = out.len();
        out.resize(at + n, 0);
        dec.decompress(block, &mut out[at..])
            .map_err(|e| bad(&e.to_string()))?;
    }
    Ok(out)
}

/// A writer that compresses with `method` into `inner` (one per snapshot, so the size of
/// its variants does not matter).
#[allow(clippy::large_enum_variant)]
pub enum Compressor<W: Write> {
    None(W),
    Gz(GzEncoder<W>),
    Snappy {
        inner: W,
        pending: Vec<u8>,
        enc: snap::raw::Encoder,
    },
}

impl<W: Write> Compressor<W> {
    pub fn new(method: Compression, mut inner: W) -> io::Result<Compressor<W>> {
        Ok(match method {
            Compression::None => Compressor::None(inner),
            Compression::Gz => Compressor::Gz(GzEncoder::new(inner, flate2::Compression::fast())),
            Compression::Snappy => {
                inner.write_all(&SNAPPY_MAGIC)?;
                inner.write_all(&1i32.to_be_bytes())?;
                inner.write_all(&1i32.to_be_bytes())?;
                Compressor::Snappy {
                    inner,
                    pending: Vec::with_capacity(SNAPPY_BLOCK),
                    enc: snap::raw::Encoder::new(),
                }
            }
        })
    }

    fn snappy_block(inner: &mut W, enc: &mut snap::raw::Encoder, block: &[u8]) -> io::Result<()> {
        let packed = enc
            .compress_vec(block)
            .map_err(|e| io::Error::other(e.to_string()))?;
        inner.write_all(&(packed.len() as i32).to_be_bytes())?;
        inner.write_all(&packed)
    }

    /// Flush everything and return the inner writer.
    pub fn finish(self) -> io::Result<W> {
        match self {
            Compressor::None(w) => Ok(w),
            Compressor::Gz(g) => g.finish(),
            Compressor::Snappy {
                mut inner,
                pending,
                mut enc,
            } => {
                if !pending.is_empty() {
                    Self::snappy_block(&mut inner, &mut enc, &pending)?;
                }
                Ok(inner)
            }
        }
    }
}

impl<W: Write> Write for Compressor<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        match self {
            Compressor::None(w) => w.write(buf),
            Compressor::Gz(g) => g.write(buf),
            Compressor::Snappy {
                inner,
                pending,
                enc,
            } => {
                let take = buf.len().min(SNAPPY_BLOCK - pending.len());
                pending.extend_from_slice(&buf[..take]);
                if pending.len() == SNAPPY_BLOCK {
                    Self::snappy_block(inner, enc, pending)?;
                    pending.clear();
                }
                Ok(take)
            }
        }
    }

    fn flush(&mut self) -> io::Result<()> {
        match self {
            Compressor::None(w) => w.flush(),
            Compressor::Gz(g) => g.flush(),
            Compressor::Snappy { inner, .. } => inner.flush(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn round_trip(method: Compression) {
        let data: Vec<u8> = (0..200_000u32)
            .flat_map(|i| (i % 251).to_be_bytes())
            .collect();
        let mut c = Compressor::new(method, Vec::new()).unwrap();
        c.write_all(&data).unwrap();
        let packed = c.finish().unwrap();
        assert_eq!(decompress(method, packed).unwrap(), data);
    }

    #[test]
    fn every_method_round_trips() {
        round_trip(Compression::None);
        round_trip(Compression::Gz);
        round_trip(Compression::Snappy);
    }

    #[test]
    fn truncated_snappy_is_an_error_not_a_panic() {
        let mut c = Compressor::new(Compression::Snappy, Vec::new()).unwrap();
        c.write_all(&[7u8; 100_000]).unwrap();
        let packed = c.finish().unwrap();
        for cut in [0, 5, 15, 19, 25, packed.len() - 1] {
            assert!(decompress(Compression::Snappy, packed[..cut].to_vec()).is_err());
        }
    }

    #[test]
    fn names_and_settings() {
        assert_eq!(Compression::from_setting(Some("gz")), Compression::Gz);
        assert_eq!(Compression::from_setting(Some("lz4")), Compression::None);
        assert_eq!(
            Compression::from_name("snapshot.1f.snappy"),
            Compression::Snappy
        );
        assert_eq!(Compression::Gz.suffix(), ".gz");
    }
}

//! The byte formats of the quorum ports, as Java ZooKeeper 3.9 writes and reads them.
//!
//! * The quorum port (learner ↔ leader): back-to-back jute `QuorumPacket` records with no outer
//!   length prefix ([`QuorumPacket`], [`read_packet`]), the `LearnerInfo` payload of
//!   FOLLOWERINFO/OBSERVERINFO ([`LearnerInfo`]) and the SNAP stream's trailer
//!   ([`SNAP_SIGNATURE`]).
//! * The election port: the header an initiating peer sends first ([`encode_initial_message`],
//!   [`read_initial_message`]) and the FLE notification payload ([`encode_notification`],
//!   [`decode_notification`]). The `int length` framing of election messages belongs to `cnx`.
//!
//! Every decoder here is total: short, truncated or hostile input becomes a [`WireError`], never a
//! panic or an allocation larger than the configured limits. See ZK-PROTOCOL §8.

use std::net::IpAddr;

use bytes::Bytes;
use thiserror::Error;
use tokio::io::{AsyncRead, AsyncReadExt};

use crate::jute::records::Id;
use crate::jute::{JuteError, Reader, Writer, DEFAULT_MAX_BUFFER};
use crate::quorum::{Notification, ServerState, Vote};

/// QuorumPacket types (Java's `Leader` constants).
pub mod ptype {
    /// Learner → leader: a client write forwarded for ordering.
    pub const REQUEST: i32 = 1;
    /// Leader → follower: a txn to log and ack.
    pub const PROPOSAL: i32 = 2;
    /// Follower → leader: a proposal (or NEWLEADER / UPTODATE) is logged.
    pub const ACK: i32 = 3;
    /// Leader → follower: a proposal reached quorum.
    pub const COMMIT: i32 = 4;
    /// Both ways: liveness, and the learner's session touches.
    pub const PING: i32 = 5;
    /// Both ways: reconnect of a session to a learner.
    pub const REVALIDATE: i32 = 6;
    /// Leader → learner: answer to a forwarded `sync`.
    pub const SYNC: i32 = 7;
    /// Leader → observer: a committed txn.
    pub const INFORM: i32 = 8;
    /// Leader → follower: commit of a reconfig txn.
    pub const COMMITANDACTIVATE: i32 = 9;
    /// Leader → learner: end of sync, carries the leader's config.
    pub const NEWLEADER: i32 = 10;
    /// Follower → leader: first packet, carries a [`super::LearnerInfo`].
    pub const FOLLOWERINFO: i32 = 11;
    /// Leader → learner: start serving.
    pub const UPTODATE: i32 = 12;
    /// Leader → learner: sync by replaying proposals.
    pub const DIFF: i32 = 13;
    /// Leader → learner: truncate the log first.
    pub const TRUNC: i32 = 14;
    /// Leader → learner: a snapshot stream follows.
    pub const SNAP: i32 = 15;
    /// Observer → leader: first packet, carries a [`super::LearnerInfo`].
    pub const OBSERVERINFO: i32 = 16;
    /// Leader → learner: the new epoch and the leader's protocol version.
    pub const LEADERINFO: i32 = 17;
    /// Learner → leader: epoch accepted, with the learner's current epoch.
    pub const ACKEPOCH: i32 = 18;
    /// Leader → observer: a committed reconfig txn.
    pub const INFORMANDACTIVATE: i32 = 19;
}

/// The name Java's logs use for a QuorumPacket type (`"UNKNOWN"` for anything else).
pub fn ptype_name(t: i32) -> &'static str {
    match t {
        ptype::REQUEST => "REQUEST",
        ptype::PROPOSAL => "PROPOSAL",
        ptype::ACK => "ACK",
        ptype::COMMIT => "COMMIT",
        ptype::PING => "PING",
        ptype::REVALIDATE => "REVALIDATE",
        ptype::SYNC => "SYNC",
        ptype::INFORM => "INFORM",
        ptype::COMMITANDACTIVATE => "COMMITANDACTIVATE",
        ptype::NEWLEADER => "NEWLEADER",
        ptype::FOLLOWERINFO => "FOLLOWERINFO",
        ptype::UPTODATE => "UPTODATE",
        ptype::DIFF => "DIFF",
        ptype::TRUNC => "TRUNC",
        ptype::SNAP => "SNAP",
        ptype::OBSERVERINFO => "OBSERVERINFO",
        ptype::LEADERINFO => "LEADERINFO",
        ptype::ACKEPOCH => "ACKEPOCH",
        ptype::INFORMANDACTIVATE => "INFORMANDACTIVATE",
        _ => "UNKNOWN",
    }
}

/// Largest `data` buffer (and authinfo string) [`read_packet`] accepts by default: Java's
/// `BinaryInputArchive` limit, `jute.maxbuffer` (0xfffff) + the same again as "extrasize".
/// The SNAP stream is not a packet and is not bound by this.
pub const DEFAULT_MAX_PACKET_DATA: usize = DEFAULT_MAX_BUFFER * 2;

/// Largest authinfo vector accepted; a client connection has a handful of Ids at most.
pub const MAX_AUTHINFO: usize = 1024;

/// Zab 1.0's protocol version, sent in LearnerInfo and LEADERINFO.
pub const ZAB_PROTOCOL_VERSION: i32 = 0x10000;

/// The string the leader writes (as a jute ustring) after the snapshot in a SNAP sync.
pub const SNAP_SIGNATURE: &str = "BenWasHere";

/// Election-port header version with one `host:port` address.
pub const PROTOCOL_VERSION_V1: i64 = -65536;
/// Election-port header version with `host:port|host:port|…` (multiAddress enabled).
pub const PROTOCOL_VERSION_V2: i64 = -65535;
/// Largest address string an election-port header may carry (Java's `maxBuffer`).
pub const MAX_INITIAL_ADDRESS_LEN: usize = 2048;

/// The notification format version 3.5+ servers send (with a config).
pub const NOTIFICATION_VERSION: i32 = 0x2;

/// Why quorum bytes could not be read or decoded. Every variant means the message (and, on a
/// stream, the connection) is unusable; [`WireError::is_disconnect`] tells the ordinary "peer
/// went away" cases apart so callers can log them quietly.
#[derive(Debug, Error)]
pub enum WireError {
    /// The peer closed the stream cleanly, between messages.
    #[error("connection closed by peer")]
    Eof,
    /// The peer closed the stream partway through a message.
    #[error("connection closed in the middle of {what}")]
    UnexpectedEof { what: &'static str },
    /// The socket failed.
    #[error("i/o error: {0}")]
    Io(#[from] std::io::Error),
    /// A length or count field is negative (other than −1 where null is allowed) or too big.
    #[error("unreasonable {what} length {len} (allowed up to {max})")]
    BadLength {
        what: &'static str,
        len: i64,
        max: usize,
    },
    /// A byte-slice decode ran off the end or met a bad jute length.
    #[error("malformed record: {0}")]
    Jute(#[from] JuteError),
    /// An FLE notification shorter than the oldest format (28 bytes).
    #[error("notification of {len} bytes is shorter than 28")]
    ShortNotification { len: usize },
    /// An FLE notification whose state is not LOOKING/FOLLOWING/LEADING/OBSERVING.
    #[error("unknown server state {0} in notification")]
    UnknownState(i32),
    /// An election-port header with a negative first long that is neither V1 nor V2.
    #[error("unrecognized election protocol version {0}")]
    UnknownProtocolVersion(i64),
    /// An election-port header address that is not `host:port` / `[v6]:port`.
    #[error("badly formed election address {addr:?}: {why}")]
    BadAddress { addr: String, why: &'static str },
}

impl WireError {
    /// Is this just the peer going away (EOF, reset, broken pipe) rather than a protocol error?
    pub fn is_disconnect(&self) -> bool {
        use std::io::ErrorKind::*;
        match self {
            WireError::Eof | WireError::UnexpectedEof { .. } => true,
            WireError::Io(e) => matches!(
                e.kind(),
                UnexpectedEof | ConnectionReset | ConnectionAborted | BrokenPipe
            ),
            _ => false,
        }
    }
}

// ---------------------------------------------------------------------------------------------
// QuorumPacket

/// One learner ↔ leader message: `{int type, long zxid, buffer data, vector<Id> authinfo}`.
/// It exists as its own type because every Zab step is one of these, written back to back on
/// the quorum port with no length prefix.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct QuorumPacket {
    /// One of [`ptype`].
    pub ptype: i32,
    /// Meaning depends on the type (ZK-PROTOCOL §8.5).
    pub zxid: i64,
    /// `None` is the null buffer (length −1), which Java keeps distinct from empty.
    pub data: Option<Bytes>,
    /// The forwarding client's identities (REQUEST only). Empty is written as Java writes a
    /// packet without authinfo: the null vector (−1), except for REQUEST, see [`Self::encode_into`].
    pub auth: Vec<Id>,
}

impl QuorumPacket {
    /// A packet without authinfo (everything but REQUEST).
    pub fn new(ptype: i32, zxid: i64, data: Option<Bytes>) -> QuorumPacket {
        QuorumPacket {
            ptype,
            zxid,
            data,
            auth: Vec::new(),
        }
    }

    /// The jute bytes of this packet (no length prefix).
    pub fn encode(&self) -> Vec<u8> {
        let mut w = Writer::with_capacity(20 + self.data.as_ref().map_or(0, |d| d.len()));
        self.encode_into(&mut w);
        w.buf.to_vec()
    }

    /// Append the jute bytes of this packet to `w`.
    ///
    /// Java constructs every packet except REQUEST with a null authinfo, written as count −1, so
    /// an empty `auth` is written as −1. For REQUEST an empty list is written as count 0: a Java
    /// leader iterates a REQUEST's authinfo in `checkACL` and would throw on null.
    pub fn encode_into(&self, w: &mut Writer) {
        w.i32(self.ptype)
            .i64(self.zxid)
            .buffer(self.data.as_deref());
        if self.auth.is_empty() && self.ptype != ptype::REQUEST {
            w.i32(-1);
        } else {
            w.vec(&self.auth, |w, id| {
                w.ustring(&id.scheme).ustring(&id.id);
            });
        }
    }

    /// Decode one packet from a byte slice (tests and tools; the network uses [`read_packet`]).
    /// Limits are those of [`Reader::new`] (= [`DEFAULT_MAX_PACKET_DATA`]) and [`MAX_AUTHINFO`].
    pub fn decode(r: &mut Reader<'_>) -> Result<QuorumPacket, WireError> {
        let ptype = r.read_i32()?;
        let zxid = r.read_i64()?;
        let data = r.read_buffer()?.map(Bytes::from);
        let count = r.read_i32()?;
        check_auth_count(count)?;
        let mut auth = Vec::new();
        for _ in 0..count.max(0) {
            let scheme = lossy(r.read_buffer()?);
            let id = lossy(r.read_buffer()?);
            auth.push(Id { scheme, id });
        }
        Ok(QuorumPacket {
            ptype,
            zxid,
            data,
            auth,
        })
    }
}

fn check_auth_count(count: i32) -> Result<(), WireError> {
    if count < -1 || count as i64 > MAX_AUTHINFO as i64 {
        return Err(WireError::BadLength {
            what: "authinfo",
            len: count as i64,
            max: MAX_AUTHINFO,
        });
    }
    Ok(())
}

/// Java decodes strings with `new String(bytes, UTF_8)`, which replaces bad sequences rather
/// than failing; and Java's writer emits CESU-8 for non-BMP characters, which strict UTF-8
/// rejects. Be as lenient, so one odd client identity cannot break a learner link.
fn lossy(b: Option<Vec<u8>>) -> String {
    match b {
        None => String::new(),
        Some(v) => match String::from_utf8(v) {
            Ok(s) => s,
            Err(e) => String::from_utf8_lossy(e.as_bytes()).into_owned(),
        },
    }
}

/// Fill `buf` from `r`. EOF before the first byte of a message (`boundary`) is a clean
/// [`WireError::Eof`]; anywhere else it is [`WireError::UnexpectedEof`].
async fn fill<R: AsyncRead + Unpin>(
    r: &mut R,
    buf: &mut [u8],
    what: &'static str,
    boundary: bool,
) -> Result<(), WireError> {
    let mut got = 0;
    while got < buf.len() {
        let n = match r.read(&mut buf[got..]).await {
            Ok(n) => n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(WireError::Io(e)),
        };
        if n == 0 {
            return Err(if boundary && got == 0 {
                WireError::Eof
            } else {
                WireError::UnexpectedEof { what }
            });
        }
        got += n;
    }
    Ok(())
}

async fn read_i32<R: AsyncRead + Unpin>(
    r: &mut R,
    what: &'static str,
    boundary: bool,
) -> Result<i32, WireError> {
    let mut b = [0u8; 4];
    fill(r, &mut b, what, boundary).await?;
    Ok(i32::from_be_bytes(b))
}

async fn read_i64<R: AsyncRead + Unpin>(
    r: &mut R,
    what: &'static str,
    boundary: bool,
) -> Result<i64, WireError> {
    let mut b = [0u8; 8];
    fill(r, &mut b, what, boundary).await?;
    Ok(i64::from_be_bytes(b))
}

/// A jute `buffer`/`ustring` body: length −1 is null, other negatives or > `max` are errors.
async fn read_jute_buffer<R: AsyncRead + Unpin>(
    r: &mut R,
    what: &'static str,
    max: usize,
) -> Result<Option<Vec<u8>>, WireError> {
    let len = read_i32(r, what, false).await?;
    if len == -1 {
        return Ok(None);
    }
    if len < 0 || len as usize > max {
        return Err(WireError::BadLength {
            what,
            len: len as i64,
            max,
        });
    }
    let mut v = vec![0u8; len as usize];
    fill(r, &mut v, what, false).await?;
    Ok(Some(v))
}

/// Read one QuorumPacket from the quorum-port stream, field by field. `max_len` bounds the data
/// buffer and each authinfo string (use [`DEFAULT_MAX_PACKET_DATA`] to match Java). A stream
/// that ends cleanly before the packet starts yields [`WireError::Eof`].
pub async fn read_packet<R: AsyncRead + Unpin>(
    r: &mut R,
    max_len: usize,
) -> Result<QuorumPacket, WireError> {
    let ptype = read_i32(r, "packet type", true).await?;
    let zxid = read_i64(r, "packet zxid", false).await?;
    let data = read_jute_buffer(r, "packet data", max_len)
        .await?
        .map(Bytes::from);
    let count = read_i32(r, "authinfo", false).await?;
    check_auth_count(count)?;
    let mut auth = Vec::new();
    for _ in 0..count.max(0) {
        let scheme = lossy(read_jute_buffer(r, "authinfo scheme", max_len).await?);
        let id = lossy(read_jute_buffer(r, "authinfo id", max_len).await?);
        auth.push(Id { scheme, id });
    }
    Ok(QuorumPacket {
        ptype,
        zxid,
        data,
        auth,
    })
}

// ---------------------------------------------------------------------------------------------
// LearnerInfo

/// The data of FOLLOWERINFO / OBSERVERINFO: who the learner is, which Zab it speaks and which
/// config it has activated. Its own type because the leader must accept the shorter forms that
/// older learners send.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LearnerInfo {
    /// The learner's myid.
    pub server_id: i64,
    /// [`ZAB_PROTOCOL_VERSION`] for 3.4+; [`LearnerInfo::LEGACY_PROTOCOL_VERSION`] when absent.
    pub protocol_version: i32,
    /// The learner's activated config version; 0 when absent (never "ahead" of a leader).
    pub config_version: i64,
}

impl LearnerInfo {
    /// The protocol version Java's LearnerHandler assumes when the learner did not send one
    /// (it then skips LEADERINFO/ACKEPOCH and fakes the epoch ack from the zxid).
    pub const LEGACY_PROTOCOL_VERSION: i32 = 0x1;

    /// The 20-byte jute record `{long serverid, int protocolVersion, long configVersion}`.
    pub fn encode(&self) -> Vec<u8> {
        let mut w = Writer::with_capacity(20);
        w.i64(self.server_id)
            .i32(self.protocol_version)
            .i64(self.config_version);
        w.buf.to_vec()
    }

    /// Decode a non-null FOLLOWERINFO/OBSERVERINFO data buffer the way Java's LearnerHandler
    /// does: each field is read only if the buffer is long enough for it (≥ 8, ≥ 12, ≥ 20
    /// bytes), otherwise it keeps its default (sid 0, version 0x1, config version 0); extra
    /// bytes are ignored. Never fails. (A *null* data buffer is different: Java then assigns a
    /// fresh negative sid, which is the caller's business.)
    pub fn decode(data: &[u8]) -> LearnerInfo {
        let mut info = LearnerInfo {
            server_id: 0,
            protocol_version: Self::LEGACY_PROTOCOL_VERSION,
            config_version: 0,
        };
        let mut r = Reader::new(data);
        if let Ok(sid) = r.read_i64() {
            info.server_id = sid;
            if let Ok(v) = r.read_i32() {
                info.protocol_version = v;
                if let Ok(cv) = r.read_i64() {
                    info.config_version = cv;
                }
            }
        }
        info
    }
}

// ---------------------------------------------------------------------------------------------
// FLE notifications

/// The election-port notification payload in the form 3.5+ servers send (44 + N bytes):
/// `int state, long leader, long zxid, long electionEpoch, long peerEpoch, int version = 0x2,
/// int configLength, config bytes`. The version written is always 0x2 whatever `n.version`
/// says (Java always sends its current version); a `None` config is written as length 0.
pub fn encode_notification(n: &Notification) -> Vec<u8> {
    let config: &[u8] = n.config.as_deref().unwrap_or(&[]);
    let mut w = Writer::with_capacity(44 + config.len());
    w.i32(n.state as i32)
        .i64(n.vote.leader)
        .i64(n.vote.zxid)
        .i64(n.election_epoch)
        .i64(n.vote.peer_epoch)
        .i32(NOTIFICATION_VERSION)
        .i32(config.len() as i32);
    w.buf.extend_from_slice(config);
    w.buf.to_vec()
}

/// Decode a notification payload as Java's `WorkerReceiver` does:
/// * < 28 bytes: error.
/// * exactly 28: no peerEpoch (taken as `zxid >> 32`), version 0, no config.
/// * exactly 40: peerEpoch read, the version field is *not* read (version 0), no config.
/// * anything else: peerEpoch and version read (so 29..=39 bytes fail as truncated); if the
///   version is above 1, `configLength` must be 0..=buffer length and the config must fit.
///   With version ≤ 1 there is no config. Trailing bytes are ignored.
/// * state must be 0..=3, checked after the body (Java drops such a message from a voter).
pub fn decode_notification(buf: &[u8]) -> Result<Notification, WireError> {
    let cap = buf.len();
    if cap < 28 {
        return Err(WireError::ShortNotification { len: cap });
    }
    let mut r = Reader::new(buf);
    let state = r.read_i32()?;
    let leader = r.read_i64()?;
    let zxid = r.read_i64()?;
    let election_epoch = r.read_i64()?;
    let (peer_epoch, version) = if cap == 28 {
        (zxid >> 32, 0)
    } else {
        let peer_epoch = r.read_i64()?;
        let version = if cap == 40 { 0 } else { r.read_i32()? };
        (peer_epoch, version)
    };
    let config = if version > 0x1 {
        let len = r.read_i32()?;
        if len < 0 || len as usize > cap {
            return Err(WireError::BadLength {
                what: "notification config",
                len: len as i64,
                max: cap,
            });
        }
        let rest = r.rest();
        match rest.get(..len as usize) {
            Some(c) => Some(c.to_vec()),
            None => {
                return Err(WireError::Jute(JuteError::Truncated {
                    offset: r.position(),
                    needed: len as usize - rest.len(),
                }))
            }
        }
    } else {
        None
    };
    let state = ServerState::from_i32(state).ok_or(WireError::UnknownState(state))?;
    Ok(Notification {
        state,
        vote: Vote {
            leader,
            zxid,
            peer_epoch,
        },
        election_epoch,
        version,
        config,
    })
}

// ---------------------------------------------------------------------------------------------
// Election-port initial message

/// What an election-port connection's initiator said about itself. Its own type because the
/// header has three forms (bare sid, V1, V2) that all reduce to this.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InitialMessage {
    /// The initiator's sid (Long.MAX_VALUE is an old observer; mapping it to a temporary
    /// negative id is the caller's job, as in Java).
    pub sid: i64,
    /// Its election addresses as `host:port` / `[v6]:port`, wildcard hosts dropped; empty for
    /// the pre-3.5 bare-sid form.
    pub addresses: Vec<String>,
}

/// The header an initiating peer sends (V1, what Java sends unless multiAddress is enabled):
/// `long -65536, long sid, int n, n bytes of UTF-8 "host:port"` (IPv6 as `[h]:port`).
pub fn encode_initial_message(sid: i64, election_addr: &str) -> Vec<u8> {
    let mut w = Writer::with_capacity(20 + election_addr.len());
    w.i64(PROTOCOL_VERSION_V1)
        .i64(sid)
        .i32(election_addr.len() as i32);
    w.buf.extend_from_slice(election_addr.as_bytes());
    w.buf.to_vec()
}

/// Read the header an initiating peer sends, following Java's `handleConnection` and
/// `InitialMessage.parse`: a first long ≥ 0 is a pre-3.5 bare sid and nothing else is read;
/// otherwise the version must be V1 or V2 (checked before the sid is read), then the sid, then
/// an address string of 1..=2048 bytes split on `|` (both versions are split alike).
pub async fn read_initial_message<R: AsyncRead + Unpin>(
    r: &mut R,
) -> Result<InitialMessage, WireError> {
    let first = read_i64(r, "protocol version", true).await?;
    if first >= 0 {
        return Ok(InitialMessage {
            sid: first,
            addresses: Vec::new(),
        });
    }
    if first != PROTOCOL_VERSION_V1 && first != PROTOCOL_VERSION_V2 {
        return Err(WireError::UnknownProtocolVersion(first));
    }
    let sid = read_i64(r, "sid", false).await?;
    let len = read_i32(r, "address length", false).await?;
    if len <= 0 || len as usize > MAX_INITIAL_ADDRESS_LEN {
        return Err(WireError::BadLength {
            what: "election address",
            len: len as i64,
            max: MAX_INITIAL_ADDRESS_LEN,
        });
    }
    let mut raw = vec![0u8; len as usize];
    fill(r, &mut raw, "election address", false).await?;
    let text = String::from_utf8_lossy(&raw);
    let mut pieces: Vec<&str> = text.split('|').collect();
    // Java's String.split drops trailing empty strings.
    while pieces.last() == Some(&"") {
        pieces.pop();
    }
    let mut addresses = Vec::with_capacity(pieces.len());
    for piece in pieces {
        if let Some(a) = parse_election_address(piece)? {
            addresses.push(a);
        }
    }
    Ok(InitialMessage { sid, addresses })
}

/// One `host:port` or `[v6]:port` piece, normalised; `None` for a wildcard host.
fn parse_election_address(s: &str) -> Result<Option<String>, WireError> {
    let bad = |why| WireError::BadAddress {
        addr: s.to_owned(),
        why,
    };
    let (host, port) = if let Some(inner) = s.strip_prefix('[') {
        let close = inner.find(']').ok_or_else(|| bad("no matching ']'"))?;
        let host = &inner[..close];
        // Java skips the one character after ']' (meant to be ':') without checking it.
        let tail = inner[close + 1..].get(1..).unwrap_or("");
        if tail.is_empty() {
            return Err(bad("no port after ']'"));
        }
        let parts = java_split_colon(tail);
        if parts.len() != 1 {
            return Err(bad("expected [host]:port"));
        }
        (host, parts[0])
    } else {
        let parts = java_split_colon(s);
        if parts.len() != 2 {
            return Err(bad("expected host:port"));
        }
        (parts[0], parts[1])
    };
    if host.is_empty() {
        return Err(bad("empty host"));
    }
    let port: i32 = port.parse().map_err(|_| bad("bad port number"))?;
    if !(0..=65535).contains(&port) {
        return Err(bad("port out of range"));
    }
    if host.parse::<IpAddr>().is_ok_and(|ip| ip.is_unspecified()) {
        return Ok(None);
    }
    Ok(Some(if host.contains(':') {
        format!("[{host}]:{port}")
    } else {
        format!("{host}:{port}")
    }))
}

/// `s.split(":")` as Java does it: trailing empty strings removed.
fn java_split_colon(s: &str) -> Vec<&str> {
    let mut v: Vec<&str> = s.split(':').collect();
    while v.last() == Some(&"") {
        v.pop();
    }
    v
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hex(s: &str) -> Vec<u8> {
        let s: String = s.split_whitespace().collect();
        (0..s.len())
            .step_by(2)
            .map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap())
            .collect()
    }

    fn block_on<F: std::future::Future>(f: F) -> F::Output {
        tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap()
            .block_on(f)
    }

    fn sample_request() -> QuorumPacket {
        QuorumPacket {
            ptype: ptype::REQUEST,
            zxid: -1,
            data: Some(Bytes::from_static(b"\x00\x01\x02")),
            auth: vec![Id::new("ip", "10.0.0.1"), Id::new("digest", "u:h")],
        }
    }

    #[test]
    fn ping_golden_bytes() {
        let p = QuorumPacket::new(ptype::PING, 0x1_0000_0005, None);
        let want = hex("00000005 0000000100000005 ffffffff ffffffff");
        assert_eq!(p.encode(), want);
        let back = QuorumPacket::decode(&mut Reader::new(&want)).unwrap();
        assert_eq!(back, p);
        let back = block_on(read_packet(&mut &want[..], DEFAULT_MAX_PACKET_DATA)).unwrap();
        assert_eq!(back, p);
    }

    #[test]
    fn leaderinfo_golden_bytes() {
        let data = ZAB_PROTOCOL_VERSION.to_be_bytes().to_vec();
        let p = QuorumPacket::new(ptype::LEADERINFO, 5 << 32, Some(Bytes::from(data)));
        assert_eq!(
            p.encode(),
            hex("00000011 0000000500000000 00000004 00010000 ffffffff")
        );
        // Empty (not null) data stays empty.
        let p = QuorumPacket::new(ptype::ACK, 7, Some(Bytes::new()));
        assert_eq!(
            p.encode(),
            hex("00000003 0000000000000007 00000000 ffffffff")
        );
    }

    #[test]
    fn request_golden_bytes_and_round_trip() {
        let p = sample_request();
        let want = hex("00000001 ffffffffffffffff 00000003 000102 00000002
             00000002 6970 00000008 31302e302e302e31
             00000006 646967657374 00000003 753a68");
        assert_eq!(p.encode(), want);
        assert_eq!(QuorumPacket::decode(&mut Reader::new(&want)).unwrap(), p);
        assert_eq!(
            block_on(read_packet(&mut &want[..], DEFAULT_MAX_PACKET_DATA)).unwrap(),
            p
        );
        // A REQUEST without identities is an empty vector, not null.
        let mut q = p.clone();
        q.auth.clear();
        assert!(q.encode().ends_with(&[0, 0, 0, 0]));
    }

    #[test]
    fn empty_and_null_authinfo_both_decode_empty() {
        for tail in [[0xff; 4], [0; 4]] {
            let mut b = hex("00000005 0000000000000001 ffffffff");
            b.extend_from_slice(&tail);
            let p = QuorumPacket::decode(&mut Reader::new(&b)).unwrap();
            assert!(p.auth.is_empty());
        }
    }

    #[test]
    fn back_to_back_packets_on_a_stream() {
        let a = QuorumPacket::new(
            ptype::PROPOSAL,
            0x2_0000_0001,
            Some(Bytes::from(vec![9; 100])),
        );
        let b = sample_request();
        let mut stream = a.encode();
        stream.extend(b.encode());
        let mut s = &stream[..];
        block_on(async {
            assert_eq!(read_packet(&mut s, 1000).await.unwrap(), a);
            assert_eq!(read_packet(&mut s, 1000).await.unwrap(), b);
            assert!(matches!(
                read_packet(&mut s, 1000).await,
                Err(WireError::Eof)
            ));
        });
    }

    #[test]
    fn every_truncation_is_an_error() {
        let full = sample_request().encode();
        for cut in 0..full.len() {
            let part = &full[..cut];
            assert!(
                QuorumPacket::decode(&mut Reader::new(part)).is_err(),
                "cut {cut}"
            );
            let err = block_on(read_packet(&mut &part[..], DEFAULT_MAX_PACKET_DATA)).unwrap_err();
            if cut == 0 {
                assert!(matches!(err, WireError::Eof), "cut {cut}: {err}");
            } else {
                assert!(
                    matches!(err, WireError::UnexpectedEof { .. }),
                    "cut {cut}: {err}"
                );
            }
            assert!(err.is_disconnect());
        }
    }

    #[test]
    fn hostile_lengths_are_rejected() {
        // data longer than max_len
        let b = hex("00000002 0000000000000001 00000065");
        let e = block_on(read_packet(&mut &b[..], 100)).unwrap_err();
        assert!(matches!(e, WireError::BadLength { len: 101, .. }), "{e}");
        assert!(!e.is_disconnect());
        // data length -2
        let b = hex("00000002 0000000000000001 fffffffe");
        assert!(matches!(
            block_on(read_packet(&mut &b[..], 100)),
            Err(WireError::BadLength { len: -2, .. })
        ));
        assert!(QuorumPacket::decode(&mut Reader::new(&b)).is_err());
        // authinfo counts
        for count in ["00000401", "fffffffe", "7fffffff"] {
            let b = hex(&format!("00000005 0000000000000001 ffffffff {count}"));
            assert!(matches!(
                block_on(read_packet(&mut &b[..], 100)),
                Err(WireError::BadLength {
                    what: "authinfo",
                    ..
                })
            ));
            assert!(matches!(
                QuorumPacket::decode(&mut Reader::new(&b)),
                Err(WireError::BadLength {
                    what: "authinfo",
                    ..
                })
            ));
        }
        // an authinfo string too long
        let b = hex("00000001 0000000000000001 ffffffff 00000001 00000010");
        assert!(matches!(
            block_on(read_packet(&mut &b[..], 8)),
            Err(WireError::BadLength {
                what: "authinfo scheme",
                ..
            })
        ));
    }

    #[test]
    fn invalid_utf8_in_authinfo_is_tolerated() {
        // CESU-8 surrogate pair as Java writes U+1F600.
        let b =
            hex("00000001 0000000000000001 ffffffff 00000001 00000002 6970 00000006 eda0bdedb880");
        let p = block_on(read_packet(&mut &b[..], 100)).unwrap();
        assert_eq!(p.auth[0].scheme, "ip");
        assert!(p.auth[0].id.contains('\u{fffd}'));
        assert_eq!(QuorumPacket::decode(&mut Reader::new(&b)).unwrap(), p);
    }

    #[test]
    fn ptype_names() {
        assert_eq!(ptype_name(ptype::REQUEST), "REQUEST");
        assert_eq!(ptype_name(ptype::INFORMANDACTIVATE), "INFORMANDACTIVATE");
        assert_eq!(ptype_name(ptype::SNAP), "SNAP");
        assert_eq!(ptype_name(0), "UNKNOWN");
        assert_eq!(ptype_name(20), "UNKNOWN");
        for t in 1..=19 {
            assert_ne!(ptype_name(t), "UNKNOWN");
        }
    }

    #[test]
    fn learner_info_forms() {
        let li = LearnerInfo {
            server_id: 3,
            protocol_version: ZAB_PROTOCOL_VERSION,
            config_version: 0x1_0000_0000,
        };
        let b = li.encode();
        assert_eq!(b, hex("0000000000000003 00010000 0000000100000000"));
        assert_eq!(LearnerInfo::decode(&b), li);
        // Extra bytes ignored.
        let mut longer = b.clone();
        longer.push(7);
        assert_eq!(LearnerInfo::decode(&longer), li);
        // 12 bytes: sid + version (3.4 learners).
        assert_eq!(
            LearnerInfo::decode(&b[..12]),
            LearnerInfo {
                config_version: 0,
                ..li
            }
        );
        // 8 bytes: sid only.
        assert_eq!(
            LearnerInfo::decode(&b[..8]),
            LearnerInfo {
                server_id: 3,
                protocol_version: 0x1,
                config_version: 0
            }
        );
        // Anything in between behaves like the shorter form; shorter than 8: defaults.
        assert_eq!(LearnerInfo::decode(&b[..19]), LearnerInfo::decode(&b[..12]));
        assert_eq!(LearnerInfo::decode(&b[..11]), LearnerInfo::decode(&b[..8]));
        assert_eq!(LearnerInfo::decode(&b[..5]).server_id, 0);
    }

    fn sample_notification(config: Option<&[u8]>) -> Notification {
        Notification {
            state: ServerState::Following,
            vote: Vote {
                leader: 3,
                zxid: 0x2_0000_0007,
                peer_epoch: 2,
            },
            election_epoch: 4,
            version: NOTIFICATION_VERSION,
            config: config.map(<[u8]>::to_vec),
        }
    }

    #[test]
    fn notification_golden_bytes() {
        let n = sample_notification(Some(b"abc"));
        let b = encode_notification(&n);
        assert_eq!(
            b,
            hex("00000001 0000000000000003 0000000200000007 0000000000000004
                 0000000000000002 00000002 00000003 616263")
        );
        assert_eq!(b.len(), 44 + 3);
        assert_eq!(decode_notification(&b).unwrap(), n);
        // No config: length 0, which decodes as an empty config.
        let b = encode_notification(&sample_notification(None));
        assert_eq!(b.len(), 44);
        assert_eq!(&b[40..], &[0, 0, 0, 0]);
        assert_eq!(decode_notification(&b).unwrap().config, Some(vec![]));
    }

    #[test]
    fn notification_28_byte_form() {
        let b = &encode_notification(&sample_notification(None))[..28];
        let n = decode_notification(b).unwrap();
        assert_eq!(n.vote.peer_epoch, 2, "derived from zxid");
        assert_eq!(n.version, 0);
        assert_eq!(n.config, None);
        assert_eq!(n.election_epoch, 4);
        // Negative zxid: arithmetic shift, as Java's getEpochFromZxid.
        let mut b = b.to_vec();
        b[12..20].copy_from_slice(&(-1i64).to_be_bytes());
        assert_eq!(decode_notification(&b).unwrap().vote.peer_epoch, -1);
    }

    #[test]
    fn notification_40_byte_form_ignores_version() {
        // A 3.4 sender: 40 bytes ending in version 0x1; Java treats the version as 0.
        let mut b = encode_notification(&sample_notification(None))[..40].to_vec();
        b[36..40].copy_from_slice(&1i32.to_be_bytes());
        let n = decode_notification(&b).unwrap();
        assert_eq!(n.version, 0);
        assert_eq!(n.vote.peer_epoch, 2);
        assert_eq!(n.config, None);
        // Even a version of 2 in a 40-byte message is not read.
        b[36..40].copy_from_slice(&2i32.to_be_bytes());
        assert_eq!(decode_notification(&b).unwrap().config, None);
    }

    #[test]
    fn notification_other_lengths() {
        let full = encode_notification(&sample_notification(Some(b"server.1=a:1:2\nversion=0")));
        for len in 0..28 {
            assert!(matches!(
                decode_notification(&full[..len]),
                Err(WireError::ShortNotification { .. })
            ));
        }
        // 29..=39: peerEpoch or version missing.
        for len in 29..40 {
            assert!(decode_notification(&full[..len]).is_err(), "len {len}");
        }
        // 41..=43: version 2 read, configLength missing.
        for len in 41..44 {
            assert!(decode_notification(&full[..len]).is_err(), "len {len}");
        }
        // 44..full: config truncated.
        for len in 44..full.len() {
            assert!(decode_notification(&full[..len]).is_err(), "len {len}");
        }
        // Trailing bytes after the config are ignored.
        let mut longer = full.clone();
        longer.extend_from_slice(b"xyz");
        assert_eq!(
            decode_notification(&longer).unwrap(),
            decode_notification(&full).unwrap()
        );
        // version <= 1 in a long message: no config read.
        let mut v1 = full.clone();
        v1[36..40].copy_from_slice(&1i32.to_be_bytes());
        let n = decode_notification(&v1).unwrap();
        assert_eq!((n.version, n.config), (1, None));
        let mut v1 = full[..43].to_vec();
        v1[36..40].copy_from_slice(&1i32.to_be_bytes());
        assert_eq!(decode_notification(&v1).unwrap().version, 1);
    }

    #[test]
    fn notification_bad_fields() {
        let full = encode_notification(&sample_notification(Some(b"abc")));
        for bad_len in [-1i32, -100, 48, i32::MAX] {
            let mut b = full.clone();
            b[40..44].copy_from_slice(&bad_len.to_be_bytes());
            assert!(
                matches!(decode_notification(&b), Err(WireError::BadLength { .. })),
                "{bad_len}"
            );
        }
        // Within capacity but past the end: truncated.
        let mut b = full.clone();
        b[40..44].copy_from_slice(&10i32.to_be_bytes());
        assert!(matches!(decode_notification(&b), Err(WireError::Jute(_))));
        for state in [4i32, -1, 100] {
            let mut b = full.clone();
            b[0..4].copy_from_slice(&state.to_be_bytes());
            assert!(matches!(
                decode_notification(&b),
                Err(WireError::UnknownState(s)) if s == state
            ));
        }
        for (v, s) in [
            (0, ServerState::Looking),
            (2, ServerState::Leading),
            (3, ServerState::Observing),
        ] {
            let mut b = full.clone();
            b[3] = v;
            assert_eq!(decode_notification(&b).unwrap().state, s);
        }
    }

    #[test]
    fn initial_message_golden_bytes() {
        let b = encode_initial_message(2, "127.0.0.1:3888");
        assert_eq!(
            b,
            hex("ffffffffffff0000 0000000000000002 0000000e 3132372e302e302e313a33383838")
        );
        let m = block_on(read_initial_message(&mut &b[..])).unwrap();
        assert_eq!(
            m,
            InitialMessage {
                sid: 2,
                addresses: vec!["127.0.0.1:3888".into()]
            }
        );
    }

    fn read_init(b: &[u8]) -> Result<InitialMessage, WireError> {
        block_on(read_initial_message(&mut &b[..]))
    }

    fn v2(sid: i64, text: &str) -> Vec<u8> {
        let mut b = encode_initial_message(sid, text);
        b[0..8].copy_from_slice(&PROTOCOL_VERSION_V2.to_be_bytes());
        b
    }

    #[test]
    fn initial_message_forms() {
        // Old-style bare sid: nothing else read.
        let mut b = 7i64.to_be_bytes().to_vec();
        b.extend_from_slice(b"garbage");
        assert_eq!(
            read_init(&b).unwrap(),
            InitialMessage {
                sid: 7,
                addresses: vec![]
            }
        );
        assert_eq!(read_init(&i64::MAX.to_be_bytes()).unwrap().sid, i64::MAX);
        // V2 with several addresses, IPv6, a wildcard and a trailing '|'.
        let m = read_init(&v2(5, "h1:3888|[::1]:3889|0.0.0.0:3890|[::]:1|")).unwrap();
        assert_eq!(m.sid, 5);
        assert_eq!(
            m.addresses,
            vec!["h1:3888".to_string(), "[::1]:3889".into()]
        );
        // V1 is split on '|' too.
        let m = read_init(&encode_initial_message(5, "a:1|b:2")).unwrap();
        assert_eq!(m.addresses.len(), 2);
        // Only wildcards: no addresses, not an error.
        assert!(read_init(&v2(5, "0.0.0.0:3888"))
            .unwrap()
            .addresses
            .is_empty());
    }

    #[test]
    fn initial_message_errors() {
        // Unknown negative version: rejected before anything else is read.
        assert!(matches!(
            read_init(&(-1i64).to_be_bytes()),
            Err(WireError::UnknownProtocolVersion(-1))
        ));
        assert!(matches!(
            read_init(&(-65537i64).to_be_bytes()),
            Err(WireError::UnknownProtocolVersion(-65537))
        ));
        // Length bounds.
        for len in [0i32, -1, 2049] {
            let mut b = encode_initial_message(1, "");
            b[16..20].copy_from_slice(&len.to_be_bytes());
            b.extend(vec![b'a'; 2100]);
            assert!(
                matches!(read_init(&b), Err(WireError::BadLength { .. })),
                "{len}"
            );
        }
        let long = format!("{}:1", "h".repeat(2046));
        assert_eq!(long.len(), 2048);
        assert_eq!(
            read_init(&encode_initial_message(1, &long))
                .unwrap()
                .addresses,
            vec![long]
        );
        // Badly formed addresses.
        for addr in [
            "noport", "h:", "h:1:2", "h:x", "h:70000", ":1", "[::1", "[::1]", "[::1]:", "a:1||b:2",
            "|a:1", "::1:3888",
        ] {
            assert!(
                matches!(
                    read_init(&encode_initial_message(1, addr)),
                    Err(WireError::BadAddress { .. })
                ),
                "{addr}"
            );
        }
        // Java quirks that are accepted.
        assert_eq!(
            read_init(&encode_initial_message(1, "h:1:"))
                .unwrap()
                .addresses,
            vec!["h:1".to_string()]
        );
        // Truncations.
        let full = encode_initial_message(9, "127.0.0.1:3888");
        for cut in 0..full.len() {
            let e = read_init(&full[..cut]).unwrap_err();
            assert!(e.is_disconnect(), "cut {cut}: {e}");
            assert_eq!(cut == 0, matches!(e, WireError::Eof), "cut {cut}");
        }
    }

    #[test]
    fn snap_signature_is_a_jute_string() {
        let mut w = Writer::new();
        w.ustring(SNAP_SIGNATURE);
        assert_eq!(&w.buf[..], &hex("0000000a 42656e57617348657265")[..]);
    }
}

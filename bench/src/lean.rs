//! The lean measured loop: every session a raw client-protocol connection, all of them driven
//! by one thread over one epoll instance, one request in flight per session (the same closed
//! loop as the `zookeeper-client` loop in `main.rs`).
//!
//! Why it exists: against ferrokeeper the `zookeeper-client` loop kept the generator's core
//! 92–100% busy at 8 sessions and up for reads, so those rows measured the client. Here a
//! request costs the client a frame encode, one `write`, one `read` and a header check; no
//! task switch, no channel, no per-request allocation. The set-up (nodes, delete pools) is
//! still done through `zookeeper-client`, which also proves the nodes exist as a stock client
//! sees them.
//!
//! The frames follow the ZooKeeper client protocol: a 4-byte big-endian length, then a
//! request header (xid, opcode) and the request's fields; a reply starts with xid, zxid and an
//! error code.

use std::io::{ErrorKind, Read, Write};
use std::net::ToSocketAddrs;
use std::time::{Duration, Instant};

use hdrhistogram::Histogram;
use mio::net::TcpStream;
use mio::{Events, Interest, Poll, Token};

use crate::Op;

const OP_CREATE: i32 = 1;
const OP_DELETE: i32 = 2;
const OP_EXISTS: i32 = 3;
const OP_GET_DATA: i32 = 4;
const OP_SET_DATA: i32 = 5;
const OP_GET_CHILDREN: i32 = 8;
const OP_CLOSE: i32 = -11;

/// What one run measures; the nodes it names exist already (made by the set-up).
pub struct Spec<'a> {
    pub hosts: &'a [String],
    pub root: &'a str,
    pub workload: &'a str,
    pub sessions: usize,
    pub value: &'a [u8],
    /// For `delete`: how many `x{k}` children each session's node has.
    pub pool: usize,
    pub warmup: Duration,
    pub run: Duration,
    pub ready_file: Option<std::path::PathBuf>,
    pub keep_samples: bool,
    /// The node whose children `children` lists.
    pub children_of: &'a str,
}

/// The measured requests: their latencies, how many, and (if asked) each one's start as Unix
/// ns with its latency in µs.
pub struct Outcome {
    pub histogram: Histogram<u64>,
    pub ops: u64,
    pub samples: Vec<(u64, u32)>,
    /// Sessions that ran out of nodes to delete before the end (the row is then cut short).
    pub exhausted: usize,
}

struct Session {
    stream: TcpStream,
    node: String,
    seq: u64,
    xid: i32,
    /// When the request in flight was sent; `None` once the session has stopped.
    sent: Option<Instant>,
    out: Vec<u8>,
    written: usize,
    /// Received bytes: `inbuf[..filled]` (a fixed buffer: a reply here is well under its size).
    inbuf: Box<[u8]>,
    filled: usize,
    /// Scratch for the child paths of create and delete.
    path: String,
    /// The session ran out of nodes to delete before the end.
    exhausted: bool,
}

fn put_i32(b: &mut Vec<u8>, v: i32) {
    b.extend_from_slice(&v.to_be_bytes());
}

fn put_bytes(b: &mut Vec<u8>, v: &[u8]) {
    put_i32(b, v.len() as i32);
    b.extend_from_slice(v);
}

/// Start a frame: a length placeholder, then xid and opcode.
fn begin(b: &mut Vec<u8>, xid: i32, op: i32) {
    b.clear();
    put_i32(b, 0);
    put_i32(b, xid);
    put_i32(b, op);
}

fn finish(b: &mut [u8]) {
    let len = (b.len() - 4) as i32;
    b[..4].copy_from_slice(&len.to_be_bytes());
}

fn be_i32(b: &[u8]) -> i32 {
    i32::from_be_bytes([b[0], b[1], b[2], b[3]])
}

/// Open a session the way every client does: a ConnectRequest with no session id, then the
/// server's ConnectResponse (read whole, blocking, before the socket joins the poll).
fn connect(host: &str) -> Result<std::net::TcpStream, String> {
    let addr = host
        .to_socket_addrs()
        .map_err(|e| format!("{host}: {e}"))?
        .next()
        .ok_or_else(|| format!("{host}: no address"))?;
    let mut s = std::net::TcpStream::connect_timeout(&addr, Duration::from_secs(10))
        .map_err(|e| format!("connect {host}: {e}"))?;
    s.set_nodelay(true).map_err(|e| e.to_string())?;
    s.set_read_timeout(Some(Duration::from_secs(10)))
        .map_err(|e| e.to_string())?;
    let mut b = Vec::with_capacity(64);
    put_i32(&mut b, 0);
    put_i32(&mut b, 0); // protocol version
    b.extend_from_slice(&0i64.to_be_bytes()); // last zxid seen
    put_i32(&mut b, 30_000); // session timeout, ms
    b.extend_from_slice(&0i64.to_be_bytes()); // session id: a new session
    put_bytes(&mut b, &[0u8; 16]); // password
    b.push(0); // not read-only
    finish(&mut b);
    s.write_all(&b)
        .map_err(|e| format!("connect {host}: {e}"))?;
    let mut len = [0u8; 4];
    s.read_exact(&mut len)
        .map_err(|e| format!("connect {host}: {e}"))?;
    let n = be_i32(&len);
    if !(20..=1024).contains(&n) {
        return Err(format!("connect {host}: reply of {n} bytes"));
    }
    let mut reply = vec![0u8; n as usize];
    s.read_exact(&mut reply)
        .map_err(|e| format!("connect {host}: {e}"))?;
    // protocolVersion, timeOut, sessionId: a timeout of 0 means the session was refused.
    if be_i32(&reply[4..8]) <= 0 {
        return Err(format!("connect {host}: session refused"));
    }
    s.set_nonblocking(true).map_err(|e| e.to_string())?;
    Ok(s)
}

impl Session {
    /// The next request's xid (positive: negative xids are the server's own).
    fn bump_xid(&mut self) {
        self.xid = self.xid.wrapping_add(1) & i32::MAX;
    }

    /// Encode the session's next request into `out`, or stop the session (`false`).
    fn next(&mut self, spec: &Spec<'_>) -> bool {
        self.bump_xid();
        let b = &mut self.out;
        let child = |path: &mut String, seq: u64| {
            use std::fmt::Write as _;
            path.clear();
            let _ = write!(path, "{}/x{seq}", self.node);
        };
        match Op::of(spec.workload, self.seq) {
            Op::Create => {
                child(&mut self.path, self.seq);
                begin(b, self.xid, OP_CREATE);
                put_bytes(b, self.path.as_bytes());
                put_bytes(b, spec.value);
                put_i32(b, 1); // one ACL: world:anyone, all permissions
                put_i32(b, 31);
                put_bytes(b, b"world");
                put_bytes(b, b"anyone");
                put_i32(b, 0); // persistent
            }
            Op::Delete => {
                if self.seq as usize >= spec.pool {
                    self.exhausted = true;
                    return false;
                }
                child(&mut self.path, self.seq);
                begin(b, self.xid, OP_DELETE);
                put_bytes(b, self.path.as_bytes());
                put_i32(b, -1);
            }
            Op::Set => {
                begin(b, self.xid, OP_SET_DATA);
                put_bytes(b, self.node.as_bytes());
                put_bytes(b, spec.value);
                put_i32(b, -1);
            }
            Op::Exists => {
                begin(b, self.xid, OP_EXISTS);
                put_bytes(b, self.node.as_bytes());
                b.push(0);
            }
            Op::Children => {
                begin(b, self.xid, OP_GET_CHILDREN);
                put_bytes(b, spec.children_of.as_bytes());
                b.push(0);
            }
            Op::Get => {
                begin(b, self.xid, OP_GET_DATA);
                put_bytes(b, self.node.as_bytes());
                b.push(0);
            }
        }
        finish(b);
        self.written = 0;
        self.seq += 1;
        true
    }

    /// Write what is left of `out`; `Ok(true)` once all of it is in the socket.
    fn flush(&mut self) -> Result<bool, String> {
        while self.written < self.out.len() {
            match self.stream.write(&self.out[self.written..]) {
                Ok(0) => return Err("server closed the connection".into()),
                Ok(n) => self.written += n,
                Err(e) if e.kind() == ErrorKind::WouldBlock => return Ok(false),
                Err(e) if e.kind() == ErrorKind::Interrupted => {}
                Err(e) => return Err(format!("write: {e}")),
            }
        }
        Ok(true)
    }

    /// Read until the reply to the request in flight is whole; `Ok(true)` when it is (then
    /// nothing else can be in the socket: one request in flight, no watches, no pings).
    fn receive(&mut self) -> Result<bool, String> {
        loop {
            if self.filled >= 4 {
                let n = be_i32(&self.inbuf) as usize;
                if n < 16 || 4 + n > self.inbuf.len() {
                    return Err(format!("reply of {n} bytes"));
                }
                if self.filled >= 4 + n {
                    let xid = be_i32(&self.inbuf[4..]);
                    let err = be_i32(&self.inbuf[16..]);
                    if xid != self.xid {
                        return Err(format!("reply xid {xid}, expected {}", self.xid));
                    }
                    if err != 0 {
                        return Err(format!("{} on {}: error {err}", self.xid, self.node));
                    }
                    self.inbuf.copy_within(4 + n..self.filled, 0);
                    self.filled -= 4 + n;
                    return Ok(true);
                }
            }
            match self.stream.read(&mut self.inbuf[self.filled..]) {
                Ok(0) => return Err("server closed the connection".into()),
                Ok(n) => self.filled += n,
                Err(e) => match e.kind() {
                    ErrorKind::WouldBlock => return Ok(false),
                    ErrorKind::Interrupted => {}
                    _ => return Err(format!("read: {e}")),
                },
            }
        }
    }
}

/// `poll`, retried when a signal interrupts it.
fn wait(poll: &mut Poll, events: &mut Events) -> Result<(), String> {
    loop {
        match poll.poll(events, Some(Duration::from_millis(100))) {
            Ok(()) => return Ok(()),
            Err(e) if e.kind() == ErrorKind::Interrupted => {}
            Err(e) => return Err(format!("poll: {e}")),
        }
    }
}

/// Run the measured loop to the end of `spec.run` after `spec.warmup`; then close every
/// session.
pub fn run(spec: &Spec<'_>) -> Result<Outcome, String> {
    let mut poll = Poll::new().map_err(|e| e.to_string())?;
    let mut sessions = Vec::with_capacity(spec.sessions);
    for i in 0..spec.sessions {
        let std = connect(&spec.hosts[i % spec.hosts.len()])?;
        let mut stream = TcpStream::from_std(std);
        poll.registry()
            .register(
                &mut stream,
                Token(i),
                Interest::READABLE | Interest::WRITABLE,
            )
            .map_err(|e| e.to_string())?;
        sessions.push(Session {
            stream,
            node: format!("{}/n{i}", spec.root),
            seq: 0,
            xid: 0,
            sent: None,
            out: Vec::with_capacity(256 + spec.value.len()),
            written: 0,
            // getChildren of ten names, or a Stat with data of the value's size, and slack.
            inbuf: vec![0u8; 64 * 1024 + spec.value.len()].into_boxed_slice(),
            filled: 0,
            path: String::with_capacity(64),
            exhausted: false,
        });
    }
    let unix_at_start = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos() as u64)
        .unwrap_or(0);
    let start = Instant::now();
    let end = start + spec.warmup + spec.run;
    let mut histogram = Histogram::<u64>::new(3).map_err(|e| e.to_string())?;
    let mut ops = 0u64;
    let mut samples = Vec::new();
    let mut live = 0;
    for s in &mut sessions {
        if s.next(spec) {
            s.sent = Some(Instant::now());
            s.flush()?;
            live += 1;
        }
    }
    let mut ready = spec.ready_file.clone();
    let mut events = Events::with_capacity(1024);
    while live > 0 {
        wait(&mut poll, &mut events)?;
        if let Some(path) = &ready {
            if start.elapsed() >= spec.warmup {
                let _ = std::fs::write(path, b"");
                ready = None;
            }
        }
        if Instant::now() > end + Duration::from_secs(30) {
            return Err(format!("{live} sessions still waiting 30 s after the end"));
        }
        for ev in events.iter() {
            let s = &mut sessions[ev.token().0];
            let Some(t0) = s.sent else { continue };
            if s.written < s.out.len() && !s.flush()? {
                continue;
            }
            if !ev.is_readable() || !s.receive()? {
                continue;
            }
            let now = Instant::now();
            if t0 - start >= spec.warmup {
                let us = (now - t0).as_micros() as u64;
                histogram.record(us).ok();
                ops += 1;
                if spec.keep_samples {
                    let at = unix_at_start + (t0 - start).as_nanos() as u64;
                    samples.push((at, us.min(u32::MAX as u64) as u32));
                }
            }
            if now < end && s.next(spec) {
                s.sent = Some(now);
                s.flush()?;
            } else {
                s.sent = None;
                live -= 1;
            }
        }
    }
    // Close the sessions, so they do not linger on the server for the next row.
    for s in &mut sessions {
        s.bump_xid();
        begin(&mut s.out, s.xid, OP_CLOSE);
        finish(&mut s.out);
        s.written = 0;
        let _ = s.flush();
    }
    let deadline = Instant::now() + Duration::from_secs(5);
    let mut open: Vec<bool> = vec![true; sessions.len()];
    let mut left = sessions.len();
    while left > 0 && Instant::now() < deadline {
        wait(&mut poll, &mut events)?;
        for ev in events.iter() {
            let i = ev.token().0;
            if open[i] && matches!(sessions[i].receive(), Ok(true) | Err(_)) {
                open[i] = false;
                left -= 1;
            }
        }
    }
    Ok(Outcome {
        histogram,
        ops,
        samples,
        exhausted: sessions.iter().filter(|s| s.exhausted).count(),
    })
}

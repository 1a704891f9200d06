//! The election-port connection manager (Java's `QuorumCnxManager`): one TCP connection per
//! pair of ensemble members, carrying length-prefixed election messages (ZK-PROTOCOL §8.2).
//!
//! This is a thin tokio layer with no election logic. What it guarantees, mirroring Java so
//! that ferrokeeper and Java servers can share an ensemble:
//!
//! * **Tie-break.** Only a connection initiated by the larger sid survives. When we dial a
//!   larger sid we send our initial message and close; the peer dials back. When a smaller sid
//!   dials us we read its initial message, close, and dial it back. Equal sids are dropped.
//!   A new valid connection for a sid replaces the old one.
//! * **Sending never blocks.** Each peer has a send slot of capacity one (Java's
//!   `SEND_CAPACITY = 1`): a newer message replaces an unsent older one, since election
//!   notifications supersede each other. Sending to ourselves is a loopback.
//! * **Resend on reconnect.** When a connection starts and nothing is queued for that peer, the
//!   last message sent to it is sent again, so a message lost with a dropped connection is not
//!   lost for good (duplicates are harmless to FLE).
//! * **Lazy reconnects.** A failed dial is retried only when a new message is sent to that peer
//!   or [`CnxHandle::connect_all`] is called; there is no background retry loop.
//! * **Bounded receive queue.** At most [`RECV_CAPACITY`] received messages wait for the
//!   consumer; when full, the *oldest* is dropped (Java's `CircularBlockingQueue`), so readers
//!   never block and the newest notifications survive.

use std::collections::{HashMap, HashSet, VecDeque};
use std::fmt;
use std::io;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use crate::quorum::wire::{encode_initial_message, read_initial_message, MAX_INITIAL_ADDRESS_LEN};
use bytes::{BufMut, Bytes, BytesMut};
use thiserror::Error;
use tokio::io::{AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{mpsc, watch, Notify};
use tokio::task::JoinHandle;
use tracing::{debug, error, info, warn};

/// Largest election message payload accepted or sent (Java's `PACKETMAXSIZE`, 512 KiB); a
/// frame announcing a length outside `1..=MAX_PACKET` closes that connection.
pub const MAX_PACKET: usize = 512 * 1024;

/// How many received messages may wait for the consumer (Java's `RECV_CAPACITY`); beyond
/// this the oldest waiting message is dropped.
pub const RECV_CAPACITY: usize = 100;

/// Java's default `zookeeper.cnxTimeout`: bound on dialing a peer and on reading the initial
/// message of an accepted connection.
pub const DEFAULT_CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

/// Java's default `zookeeper.electionPortBindRetry`: how many times binding the election port
/// is attempted (one second apart) before giving up.
pub const DEFAULT_BIND_RETRY: u32 = 3;

/// The sid pre-3.5 observers announce (Java's `QuorumPeer.OBSERVER_ID`); such connections get
/// a temporary negative id.
const OBSERVER_ID: i64 = i64::MAX;
/// Pause after a failed bind or accept before trying again (Java sleeps one second).
const LISTEN_RETRY_PAUSE: Duration = Duration::from_secs(1);

/// Settings of one connection manager.
#[derive(Debug, Clone)]
pub struct CnxConfig {
    /// Our server id; decides the tie-break and is announced in our initial message.
    pub my_sid: i64,
    /// The election address to bind (may be a wildcard address when listening on all IPs).
    pub listen: SocketAddr,
    /// The `host:port` we announce to peers in our initial message (IPv6 as `[h]:port`);
    /// peers may use it to dial us back.
    pub my_election_addr: String,
    /// Every other member's election address, voters and observers alike: where we dial.
    pub peers: HashMap<i64, SocketAddr>,
    /// Bound on dialing and on reading an accepted connection's initial message
    /// (`zookeeper.cnxTimeout`, default 5 s).
    pub connect_timeout: Duration,
    /// Bind attempts before [`start`] fails (`zookeeper.electionPortBindRetry`, default 3;
    /// 0 retries forever as in Java), one second apart.
    pub bind_retry: u32,
}

impl CnxConfig {
    /// A configuration with Java's default timeout and bind retries.
    pub fn new(
        my_sid: i64,
        listen: SocketAddr,
        my_election_addr: impl Into<String>,
        peers: HashMap<i64, SocketAddr>,
    ) -> CnxConfig {
        CnxConfig {
            my_sid,
            listen,
            my_election_addr: my_election_addr.into(),
            peers,
            connect_timeout: DEFAULT_CONNECT_TIMEOUT,
            bind_retry: DEFAULT_BIND_RETRY,
        }
    }
}

/// One election message received from a peer (or sent to ourselves).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Incoming {
    /// The sender's sid (a negative temporary id for a pre-3.5 observer).
    pub from: i64,
    /// The message body, without the length prefix.
    pub payload: Bytes,
}

/// A live peer connection, as reported by [`CnxHandle::connections`] for logs and tests.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PeerConnection {
    /// The peer's sid.
    pub sid: i64,
    /// Our end of the TCP connection.
    pub local: SocketAddr,
    /// The peer's end of the TCP connection.
    pub remote: SocketAddr,
    /// True when we dialed it (so we have the larger sid), false when the peer dialed us.
    pub outbound: bool,
}

/// Why the connection manager could not start or accept a message.
#[derive(Debug, Error)]
pub enum CnxError {
    /// The election port could not be bound; the server cannot take part in elections.
    #[error("cannot bind election address {addr} after {attempts} attempt(s): {source}")]
    Bind {
        /// The address we tried to bind.
        addr: SocketAddr,
        /// How many binds were attempted.
        attempts: u32,
        /// The last bind error.
        #[source]
        source: io::Error,
    },
    /// The address to announce is empty or longer than peers accept (2048 bytes).
    #[error("election address to announce {0:?} must be 1..=2048 bytes")]
    BadAnnounceAddress(String),
    /// The bound listener's address could not be read.
    #[error("cannot read the listener's address: {0}")]
    ListenerAddress(#[source] io::Error),
    /// A payload outside `1..=MAX_PACKET` bytes, which peers would reject.
    #[error("election message of {0} bytes is outside 1..=524288")]
    PayloadSize(usize),
    /// The manager has been shut down.
    #[error("election connection manager is shut down")]
    Shutdown,
}

/// A cheap, cloneable handle on a running connection manager: send messages, trigger
/// connections, inspect who is connected, and shut it down.
#[derive(Clone)]
pub struct CnxHandle {
    shared: Arc<Shared>,
}

impl fmt::Debug for CnxHandle {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CnxHandle")
            .field("my_sid", &self.shared.my_sid)
            .field("local_addr", &self.shared.local_addr)
            .finish_non_exhaustive()
    }
}

/// Binds the election port (retrying every second up to `cfg.bind_retry` attempts) and starts
/// accepting peers. Returns the handle and the receive side of the message queue, which yields
/// `None` once the manager is shut down.
pub async fn start(cfg: CnxConfig) -> Result<(CnxHandle, mpsc::Receiver<Incoming>), CnxError> {
    validate(&cfg)?;
    let mut attempts = 0u32;
    let listener = loop {
        attempts += 1;
        match TcpListener::bind(cfg.listen).await {
            Ok(l) => break l,
            Err(e) => {
                error!(my_sid = cfg.my_sid, addr = %cfg.listen, attempt = attempts, error = %e,
                    "cannot bind election address");
                if cfg.bind_retry != 0 && attempts >= cfg.bind_retry {
                    return Err(CnxError::Bind {
                        addr: cfg.listen,
                        attempts,
                        source: e,
                    });
                }
                tokio::time::sleep(LISTEN_RETRY_PAUSE).await;
            }
        }
    };
    start_with_listener(cfg, listener).await
}

/// Like [`start`] but on an already bound listener (`cfg.listen` is ignored). Lets callers
/// bind port 0 first and learn every member's address before starting any of them.
pub async fn start_with_listener(
    cfg: CnxConfig,
    listener: TcpListener,
) -> Result<(CnxHandle, mpsc::Receiver<Incoming>), CnxError> {
    validate(&cfg)?;
    let local_addr = listener.local_addr().map_err(CnxError::ListenerAddress)?;
    let (shutdown_tx, _) = watch::channel(false);
    let shared = Arc::new(Shared {
        my_sid: cfg.my_sid,
        my_election_addr: cfg.my_election_addr,
        connect_timeout: cfg.connect_timeout,
        local_addr,
        state: Mutex::new(State {
            shutdown: false,
            peers: cfg.peers,
            next_conn_id: 0,
            conns: HashMap::new(),
            queues: HashMap::new(),
            last_sent: HashMap::new(),
            dialing: HashSet::new(),
            observer_counter: -1,
            listener: None,
        }),
        recv: RecvQueue::default(),
        shutdown_tx,
        next_seq: AtomicU64::new(0),
        dial_attempts: AtomicU64::new(0),
    });
    info!(my_sid = shared.my_sid, addr = %local_addr, "accepting election connections");

    let (tx, rx) = mpsc::channel(1);
    tokio::spawn(relay_incoming(shared.clone(), tx));
    let accept = tokio::spawn(accept_loop(shared.clone(), listener));
    shared.lock().listener = Some(accept);
    Ok((CnxHandle { shared }, rx))
}

fn validate(cfg: &CnxConfig) -> Result<(), CnxError> {
    let n = cfg.my_election_addr.len();
    if n == 0 || n > MAX_INITIAL_ADDRESS_LEN {
        return Err(CnxError::BadAnnounceAddress(cfg.my_election_addr.clone()));
    }
    Ok(())
}

impl CnxHandle {
    /// Queues `payload` for peer `to` without blocking (Java's `toSend`). A message to
    /// ourselves goes straight to the receive queue. Otherwise it replaces any unsent message
    /// for that peer, and a connection is initiated if none exists.
    pub fn send(&self, to: i64, payload: Bytes) -> Result<(), CnxError> {
        if payload.is_empty() || payload.len() > MAX_PACKET {
            return Err(CnxError::PayloadSize(payload.len()));
        }
        let sh = &self.shared;
        if to == sh.my_sid {
            if sh.lock().shutdown {
                return Err(CnxError::Shutdown);
            }
            sh.recv.push(sh.my_sid, Incoming { from: to, payload });
            return Ok(());
        }
        {
            let mut st = sh.lock();
            if st.shutdown {
                return Err(CnxError::Shutdown);
            }
            let q = st.queues.entry(to).or_default();
            if q.slot.replace(payload).is_some() {
                debug!(my_sid = sh.my_sid, sid = to, "replaced an unsent message");
            }
            q.notify.notify_one();
        }
        sh.connect_one(to);
        Ok(())
    }

    /// Dials every peer we have ever queued a message for or been connected to, unless
    /// already connected (Java's `connectAll`; FLE calls it when notifications time out).
    pub fn connect_all(&self) {
        let sids: Vec<i64> = self.shared.lock().queues.keys().copied().collect();
        for sid in sids {
            self.shared.connect_one(sid);
        }
    }

    /// Is there a live connection to `sid`? (Java's `connectedToPeer`.)
    pub fn is_connected(&self, sid: i64) -> bool {
        self.shared.lock().conns.contains_key(&sid)
    }

    /// The sids we currently have a connection with, sorted.
    pub fn connected_peers(&self) -> Vec<i64> {
        let mut v: Vec<i64> = self.shared.lock().conns.keys().copied().collect();
        v.sort_unstable();
        v
    }

    /// Details of every live connection, sorted by sid, for logs and tests.
    pub fn connections(&self) -> Vec<PeerConnection> {
        let mut v: Vec<PeerConnection> = self
            .shared
            .lock()
            .conns
            .iter()
            .map(|(&sid, c)| PeerConnection {
                sid,
                local: c.local,
                remote: c.remote,
                outbound: c.outbound,
            })
            .collect();
        v.sort_unstable_by_key(|c| c.sid);
        v
    }

    /// The address the election listener is bound to (useful when binding port 0).
    pub fn local_addr(&self) -> SocketAddr {
        self.shared.local_addr
    }

    /// Our own sid.
    pub fn my_sid(&self) -> i64 {
        self.shared.my_sid
    }

    /// How many received messages were dropped because the receive queue was full.
    pub fn dropped_incoming(&self) -> u64 {
        self.shared.recv.dropped.load(Ordering::Relaxed)
    }

    /// Stops accepting, closes the listener and every connection, abandons pending dials and
    /// ends the receive channel. When this returns the election port is free again.
    /// Idempotent; later sends fail with [`CnxError::Shutdown`].
    pub async fn shutdown(&self) {
        let sh = &self.shared;
        let (listener, conns) = {
            let mut st = sh.lock();
            if st.shutdown {
                return;
            }
            st.shutdown = true;
            let conns: Vec<Conn> = st.conns.drain().map(|(_, c)| c).collect();
            (st.listener.take(), conns)
        };
        sh.shutdown_tx.send_replace(true);
        info!(my_sid = sh.my_sid, "shutting down election connections");
        if let Some(l) = listener {
            l.abort();
            let _ = l.await;
        }
        for c in conns {
            c.reader.abort();
            c.writer.abort();
            let _ = c.reader.await;
            let _ = c.writer.await;
        }
    }
}

/// State shared by the handle and every task.
struct Shared {
    my_sid: i64,
    my_election_addr: String,
    connect_timeout: Duration,
    local_addr: SocketAddr,
    state: Mutex<State>,
    recv: RecvQueue,
    shutdown_tx: watch::Sender<bool>,
    /// Orders connections by when they were accepted or dialed (see [`Conn::seq`]).
    next_seq: AtomicU64,
    /// Dials started, so tests can check that failures are not retried in a loop.
    dial_attempts: AtomicU64,
}

/// Everything mutable, behind one short-held lock (never held across an await).
struct State {
    shutdown: bool,
    peers: HashMap<i64, SocketAddr>,
    next_conn_id: u64,
    /// Java's `senderWorkerMap`: the one live connection per sid.
    conns: HashMap<i64, Conn>,
    /// Java's `queueSendMap`: the send slot per sid, created on first send or connection.
    queues: HashMap<i64, SendQueue>,
    /// Java's `lastMessageSent`, resent when a connection starts with nothing queued.
    last_sent: HashMap<i64, Bytes>,
    /// Java's `inprogressConnections`: sids with a dial under way.
    dialing: HashSet<i64>,
    /// Next temporary id for pre-3.5 observers (Java's `observerCounter`).
    observer_counter: i64,
    listener: Option<JoinHandle<()>>,
}

/// A live connection: its reader and writer tasks own the socket halves, so aborting both
/// closes the socket.
struct Conn {
    id: u64,
    /// When the TCP connection was accepted or dialed. Handshakes run concurrently (Java runs
    /// them one at a time on its listener thread), so an older connection may finish its
    /// handshake after a newer one; it must not replace it.
    seq: u64,
    local: SocketAddr,
    remote: SocketAddr,
    outbound: bool,
    reader: JoinHandle<()>,
    writer: JoinHandle<()>,
}

impl Conn {
    fn abort(&self) {
        self.reader.abort();
        self.writer.abort();
    }
}

/// A send queue of capacity one; `notify` wakes the connection's writer.
#[derive(Default)]
struct SendQueue {
    slot: Option<Bytes>,
    notify: Arc<Notify>,
}

/// The bounded receive ring that drops its oldest entry when full; a relay task moves
/// messages from it into the consumer's channel.
#[derive(Default)]
struct RecvQueue {
    ring: Mutex<VecDeque<Incoming>>,
    notify: Notify,
    dropped: AtomicU64,
}

impl RecvQueue {
    fn push(&self, my_sid: i64, msg: Incoming) {
        {
            let mut ring = self.ring.lock().unwrap_or_else(|p| p.into_inner());
            if ring.len() >= RECV_CAPACITY {
                if let Some(old) = ring.pop_front() {
                    let n = self.dropped.fetch_add(1, Ordering::Relaxed) + 1;
                    debug!(
                        my_sid,
                        sid = old.from,
                        dropped = n,
                        "receive queue full, discarding the oldest message"
                    );
                }
            }
            ring.push_back(msg);
        }
        self.notify.notify_one();
    }

    fn pop(&self) -> Option<Incoming> {
        self.ring
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .pop_front()
    }
}

/// Where to dial a peer.
enum DialTarget {
    /// The configured election address.
    Configured(SocketAddr),
    /// The `host:port` strings an unknown peer announced in its initial message.
    Announced(Vec<String>),
}

impl fmt::Display for DialTarget {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            DialTarget::Configured(a) => write!(f, "{a}"),
            DialTarget::Announced(v) => write!(f, "{}", v.join("|")),
        }
    }
}

/// Removes a sid from `dialing` when its dial task ends, however it ends.
struct DialGuard {
    shared: Arc<Shared>,
    sid: i64,
}

impl Drop for DialGuard {
    fn drop(&mut self) {
        self.shared.lock().dialing.remove(&self.sid);
    }
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, State> {
        // A panic elsewhere while holding the lock leaves the maps consistent enough to go on.
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn shutdown_signal(&self) -> watch::Receiver<bool> {
        self.shutdown_tx.subscribe()
    }

    /// Java's `connectOne(sid)`: dial the configured address unless connected or dialing.
    fn connect_one(self: &Arc<Self>, sid: i64) {
        let target = {
            let st = self.lock();
            if st.shutdown || st.conns.contains_key(&sid) {
                return;
            }
            match st.peers.get(&sid) {
                Some(&a) => DialTarget::Configured(a),
                None => {
                    warn!(
                        my_sid = self.my_sid,
                        sid, "invalid server id, no election address"
                    );
                    return;
                }
            }
        };
        self.start_dial(sid, target);
    }

    /// A smaller sid dialed us: drop any connection we think we have with it (it evidently
    /// does not) and dial it back, preferring its configured address over the announced one.
    fn dial_back(self: &Arc<Self>, sid: i64, announced: Vec<String>, seq: u64) {
        let target = {
            let mut st = self.lock();
            if st.shutdown {
                return;
            }
            if st.conns.get(&sid).is_some_and(|c| c.seq > seq) {
                debug!(
                    my_sid = self.my_sid,
                    sid, "stale dial from a smaller sid, ignored"
                );
                return;
            }
            if let Some(old) = st.conns.remove(&sid) {
                debug!(
                    my_sid = self.my_sid,
                    sid, "closing old connection before dialing back"
                );
                old.abort();
            }
            match st.peers.get(&sid) {
                Some(&a) => DialTarget::Configured(a),
                None if !announced.is_empty() => DialTarget::Announced(announced),
                None => {
                    warn!(
                        my_sid = self.my_sid,
                        sid, "cannot dial back: unknown server id and no announced address"
                    );
                    return;
                }
            }
        };
        self.start_dial(sid, target);
    }

    fn start_dial(self: &Arc<Self>, sid: i64, target: DialTarget) {
        {
            let mut st = self.lock();
            if st.shutdown || !st.dialing.insert(sid) {
                debug!(my_sid = self.my_sid, sid, "a dial is already in progress");
                return;
            }
        }
        self.dial_attempts.fetch_add(1, Ordering::Relaxed);
        let guard = DialGuard {
            shared: self.clone(),
            sid,
        };
        // Spawned outside the lock: the guard locks when dropped.
        tokio::spawn(dial(self.clone(), sid, target, guard));
    }

    /// Registers an established connection, replacing any older one for the same sid, and
    /// starts its reader and writer.
    fn register(self: &Arc<Self>, sid: i64, stream: TcpStream, outbound: bool, seq: u64) {
        let (local, remote) = match (stream.local_addr(), stream.peer_addr()) {
            (Ok(l), Ok(r)) => (l, r),
            (Err(e), _) | (_, Err(e)) => {
                info!(my_sid = self.my_sid, sid, error = %e, "connection gone before it started");
                return;
            }
        };
        let (rd, wr) = stream.into_split();
        let mut st = self.lock();
        if st.shutdown {
            return;
        }
        if st.conns.get(&sid).is_some_and(|c| c.seq > seq) {
            debug!(my_sid = self.my_sid, sid, %remote, "a newer connection exists, dropping this one");
            return;
        }
        if let Some(old) = st.conns.remove(&sid) {
            info!(my_sid = self.my_sid, sid, old = %old.remote, new = %remote,
                "replacing existing connection");
            old.abort();
        }
        st.next_conn_id += 1;
        let id = st.next_conn_id;
        let notify = st.queues.entry(sid).or_default().notify.clone();
        // Spawned under the lock so the entry exists before either task can look for it;
        // both tasks take the lock first thing.
        let reader = tokio::spawn(read_loop(self.clone(), sid, id, rd));
        let writer = tokio::spawn(write_loop(self.clone(), sid, id, wr, notify));
        st.conns.insert(
            sid,
            Conn {
                id,
                seq,
                local,
                remote,
                outbound,
                reader,
                writer,
            },
        );
        info!(my_sid = self.my_sid, sid, %remote, outbound, "election connection established");
    }

    /// Closes connection `id` to `sid` if it is still the current one.
    fn close_conn(&self, sid: i64, id: u64) {
        let mut st = self.lock();
        if st.conns.get(&sid).is_some_and(|c| c.id == id) {
            if let Some(c) = st.conns.remove(&sid) {
                c.abort();
            }
        }
    }

    fn is_current(st: &State, sid: i64, id: u64) -> bool {
        st.conns.get(&sid).is_some_and(|c| c.id == id)
    }
}

async fn wait_shutdown(rx: &mut watch::Receiver<bool>) {
    // An error means the sender is gone, which only happens when everything is torn down.
    let _ = rx.wait_for(|down| *down).await;
}

/// Moves messages from the drop-oldest ring into the consumer's channel.
async fn relay_incoming(shared: Arc<Shared>, tx: mpsc::Sender<Incoming>) {
    let mut down = shared.shutdown_signal();
    loop {
        let msg = loop {
            if let Some(m) = shared.recv.pop() {
                break m;
            }
            tokio::select! {
                _ = shared.recv.notify.notified() => {}
                _ = wait_shutdown(&mut down) => return,
            }
        };
        tokio::select! {
            r = tx.send(msg) => if r.is_err() { return },
            _ = wait_shutdown(&mut down) => return,
        }
    }
}

async fn accept_loop(shared: Arc<Shared>, listener: TcpListener) {
    loop {
        match listener.accept().await {
            Ok((stream, remote)) => {
                if let Err(e) = stream.set_nodelay(true) {
                    debug!(my_sid = shared.my_sid, %remote, error = %e, "cannot set TCP_NODELAY");
                }
                info!(my_sid = shared.my_sid, %remote, "received election connection request");
                // Each handshake runs on its own so a slow peer cannot hold up the others.
                let seq = shared.next_seq.fetch_add(1, Ordering::Relaxed);
                tokio::spawn(handshake(shared.clone(), stream, remote, seq));
            }
            Err(e) => {
                error!(my_sid = shared.my_sid, error = %e, "accepting election connections failed");
                tokio::time::sleep(LISTEN_RETRY_PAUSE).await;
            }
        }
    }
}

/// Reads an accepted connection's initial message and applies the tie-break.
async fn handshake(shared: Arc<Shared>, mut stream: TcpStream, remote: SocketAddr, seq: u64) {
    let my_sid = shared.my_sid;
    let mut down = shared.shutdown_signal();
    let read = tokio::time::timeout(shared.connect_timeout, read_initial_message(&mut stream));
    let msg = tokio::select! {
        r = read => r,
        _ = wait_shutdown(&mut down) => return,
    };
    let msg = match msg {
        Ok(Ok(m)) => m,
        Ok(Err(e)) => {
            warn!(my_sid, %remote, error = %e, "bad initial message, closing the connection");
            return;
        }
        Err(_) => {
            warn!(my_sid, %remote, "timed out reading the initial message, closing the connection");
            return;
        }
    };
    let mut sid = msg.sid;
    if sid == OBSERVER_ID {
        let mut st = shared.lock();
        sid = st.observer_counter;
        st.observer_counter -= 1;
        info!(
            my_sid,
            sid, "assigned a temporary id to an old-style observer"
        );
    }
    debug!(my_sid, sid, addresses = ?msg.addresses, "initial message received");

    if sid < my_sid {
        info!(
            my_sid,
            sid, "connection from a smaller sid, closing it and dialing back"
        );
        drop(stream);
        shared.dial_back(sid, msg.addresses, seq);
    } else if sid == my_sid {
        warn!(my_sid, %remote,
            "connection request from a server with our own id: a configuration error or a bug");
    } else {
        shared.register(sid, stream, false, seq);
    }
}

/// Dials a peer and sends our initial message; keeps the connection only if we have the
/// larger sid.
async fn dial(shared: Arc<Shared>, sid: i64, target: DialTarget, _guard: DialGuard) {
    let my_sid = shared.my_sid;
    let mut down = shared.shutdown_signal();
    let attempt = async {
        let mut stream = tokio::time::timeout(shared.connect_timeout, connect(&target))
            .await
            .map_err(|_| io::Error::new(io::ErrorKind::TimedOut, "connect timed out"))??;
        let seq = shared.next_seq.fetch_add(1, Ordering::Relaxed);
        if let Err(e) = stream.set_nodelay(true) {
            debug!(my_sid, sid, error = %e, "cannot set TCP_NODELAY");
        }
        let hello = encode_initial_message(my_sid, &shared.my_election_addr);
        stream.write_all(&hello).await?;
        stream.flush().await?;
        Ok::<(TcpStream, u64), io::Error>((stream, seq))
    };
    let result = tokio::select! {
        r = attempt => r,
        _ = wait_shutdown(&mut down) => return,
    };
    let (stream, seq) = match result {
        Ok(s) => s,
        Err(e) => {
            warn!(my_sid, sid, addr = %target, error = %e, "cannot open election channel");
            return;
        }
    };
    if sid > my_sid {
        info!(
            my_sid,
            sid, "have the smaller sid, dropping our connection; the peer dials back"
        );
        return;
    }
    shared.register(sid, stream, true, seq);
}

async fn connect(target: &DialTarget) -> io::Result<TcpStream> {
    match target {
        DialTarget::Configured(a) => TcpStream::connect(a).await,
        DialTarget::Announced(list) => {
            let mut last = io::Error::new(io::ErrorKind::InvalidInput, "no address to dial");
            for a in list {
                match TcpStream::connect(a.as_str()).await {
                    Ok(s) => return Ok(s),
                    Err(e) => last = e,
                }
            }
            Err(last)
        }
    }
}

/// Reads length-prefixed frames into the receive queue until the connection breaks.
async fn read_loop(shared: Arc<Shared>, sid: i64, id: u64, rd: OwnedReadHalf) {
    let my_sid = shared.my_sid;
    let mut rd = BufReader::new(rd);
    loop {
        let len = match rd.read_i32().await {
            Ok(n) => n,
            Err(e) => {
                info!(my_sid, sid, error = %e, "election connection closed");
                break;
            }
        };
        let len = match usize::try_from(len) {
            Ok(n) if (1..=MAX_PACKET).contains(&n) => n,
            _ => {
                warn!(
                    my_sid,
                    sid, len, "invalid election message length, closing the connection"
                );
                break;
            }
        };
        let mut buf = vec![0u8; len];
        if let Err(e) = rd.read_exact(&mut buf).await {
            info!(my_sid, sid, error = %e, "election connection closed mid-message");
            break;
        }
        shared.recv.push(
            my_sid,
            Incoming {
                from: sid,
                payload: Bytes::from(buf),
            },
        );
    }
    shared.close_conn(sid, id);
}

/// Sends the last message again if nothing is queued, then sends whatever is queued.
async fn write_loop(
    shared: Arc<Shared>,
    sid: i64,
    id: u64,
    mut wr: OwnedWriteHalf,
    notify: Arc<Notify>,
) {
    let my_sid = shared.my_sid;
    let resend = {
        let st = shared.lock();
        if !Shared::is_current(&st, sid, id) {
            return;
        }
        let queued = st.queues.get(&sid).is_some_and(|q| q.slot.is_some());
        if queued {
            None
        } else {
            st.last_sent.get(&sid).cloned()
        }
    };
    if let Some(m) = resend {
        debug!(
            my_sid,
            sid, "resending the last message on a new connection"
        );
        if let Err(e) = write_frame(&mut wr, &m).await {
            info!(my_sid, sid, error = %e, "election connection closed while sending");
            shared.close_conn(sid, id);
            return;
        }
    }
    loop {
        let next = {
            let mut st = shared.lock();
            // A replaced writer must not take a message meant for its successor.
            if !Shared::is_current(&st, sid, id) {
                return;
            }
            let m = st.queues.get_mut(&sid).and_then(|q| q.slot.take());
            if let Some(m) = &m {
                st.last_sent.insert(sid, m.clone());
            }
            m
        };
        match next {
            Some(m) => {
                if let Err(e) = write_frame(&mut wr, &m).await {
                    info!(my_sid, sid, error = %e, "election connection closed while sending");
                    shared.close_conn(sid, id);
                    return;
                }
            }
            None => notify.notified().await,
        }
    }
}

async fn write_frame(wr: &mut OwnedWriteHalf, payload: &Bytes) -> io::Result<()> {
    let len = i32::try_from(payload.len())
        .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "payload too large"))?;
    let mut buf = BytesMut::with_capacity(4 + payload.len());
    buf.put_i32(len);
    buf.extend_from_slice(payload);
    wr.write_all(&buf).await
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::quorum::wire::PROTOCOL_VERSION_V1;
    use std::collections::BTreeSet;
    use std::time::Instant;

    const WAIT: Duration = Duration::from_secs(3);

    fn cfg(sid: i64, listen: SocketAddr, peers: &HashMap<i64, SocketAddr>) -> CnxConfig {
        let others = peers
            .iter()
            .filter(|(&s, _)| s != sid)
            .map(|(&s, &a)| (s, a))
            .collect();
        let mut c = CnxConfig::new(sid, listen, listen.to_string(), others);
        c.connect_timeout = Duration::from_millis(500);
        c
    }

    /// Starts one manager per sid on pre-bound ephemeral ports of 127.0.0.1.
    async fn cluster(sids: &[i64]) -> Vec<(CnxHandle, mpsc::Receiver<Incoming>)> {
        cluster_on("127.0.0.1", sids).await
    }

    /// Like `cluster` on another loopback address, for tests that free a port and bind it
    /// again: tests run in parallel and would otherwise grab each other's freed ports.
    async fn cluster_on(ip: &str, sids: &[i64]) -> Vec<(CnxHandle, mpsc::Receiver<Incoming>)> {
        let mut listeners = Vec::new();
        let mut addrs = HashMap::new();
        for &sid in sids {
            let l = TcpListener::bind((ip, 0)).await.expect("bind");
            addrs.insert(sid, l.local_addr().expect("addr"));
            listeners.push((sid, l));
        }
        let mut out = Vec::new();
        for (sid, l) in listeners {
            let c = cfg(sid, addrs[&sid], &addrs);
            out.push(start_with_listener(c, l).await.expect("start"));
        }
        out
    }

    /// An address nothing listens on; each test passes a loopback IP no other test binds.
    async fn free_addr(ip: &str) -> SocketAddr {
        let l = TcpListener::bind((ip, 0)).await.expect("bind");
        l.local_addr().expect("addr")
    }

    async fn recv(rx: &mut mpsc::Receiver<Incoming>) -> Incoming {
        tokio::time::timeout(WAIT, rx.recv())
            .await
            .expect("timed out waiting for a message")
            .expect("channel closed")
    }

    /// Receives until `want` has been seen (duplicates from resends are fine).
    async fn recv_all(rx: &mut mpsc::Receiver<Incoming>, want: &BTreeSet<(i64, Vec<u8>)>) {
        let mut seen = BTreeSet::new();
        while !want.is_subset(&seen) {
            let m = recv(rx).await;
            seen.insert((m.from, m.payload.to_vec()));
        }
    }

    async fn eventually(what: &str, mut f: impl FnMut() -> bool) {
        let deadline = Instant::now() + WAIT;
        while !f() {
            assert!(Instant::now() < deadline, "timed out waiting for: {what}");
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }

    async fn expect_closed(s: &mut TcpStream) {
        let mut b = [0u8; 64];
        loop {
            match tokio::time::timeout(WAIT, s.read(&mut b)).await {
                Ok(Ok(0)) | Ok(Err(_)) => return,
                Ok(Ok(_)) => continue,
                Err(_) => panic!("connection was not closed"),
            }
        }
    }

    fn header(version: i64, sid: i64, addr: &[u8], n: i32) -> Vec<u8> {
        let mut v = Vec::new();
        v.extend_from_slice(&version.to_be_bytes());
        v.extend_from_slice(&sid.to_be_bytes());
        v.extend_from_slice(&n.to_be_bytes());
        v.extend_from_slice(addr);
        v
    }

    fn frame(payload: &[u8]) -> Vec<u8> {
        let mut v = (payload.len() as i32).to_be_bytes().to_vec();
        v.extend_from_slice(payload);
        v
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn three_managers_exchange_in_every_direction() {
        let mut c = cluster(&[1, 2, 3]).await;
        for (h, _) in &c {
            for to in 1..=3 {
                let msg = format!("{}->{}", h.my_sid(), to);
                h.send(to, Bytes::from(msg)).expect("send");
            }
        }
        for (h, rx) in c.iter_mut() {
            let me = h.my_sid();
            let want = (1..=3)
                .map(|from| (from, format!("{from}->{me}").into_bytes()))
                .collect();
            recv_all(rx, &want).await;
        }
        // One TCP connection per pair, initiated by the larger sid.
        let handles: Vec<CnxHandle> = c.iter().map(|(h, _)| h.clone()).collect();
        eventually("a single connection per pair", || {
            let conns: Vec<Vec<PeerConnection>> = handles.iter().map(|h| h.connections()).collect();
            conns.iter().all(|v| v.len() == 2)
                && conns.iter().enumerate().all(|(i, v)| {
                    v.iter().all(|pc| {
                        let other = &conns[(pc.sid - 1) as usize];
                        let me = (i + 1) as i64;
                        pc.outbound == (me > pc.sid)
                            && other.iter().any(|o| {
                                o.sid == me && o.local == pc.remote && o.remote == pc.local
                            })
                    })
                })
        })
        .await;
        for h in &handles {
            h.shutdown().await;
        }
    }

    #[tokio::test]
    async fn smaller_sid_dial_is_turned_around() {
        let mut c = cluster(&[1, 2]).await;
        let (h1, _) = &c[0];
        let h1 = h1.clone();
        h1.send(2, Bytes::from_static(b"hi")).expect("send");
        let m = recv(&mut c[1].1).await;
        assert_eq!((m.from, &m.payload[..]), (1, &b"hi"[..]));
        let h2 = c[1].0.clone();
        eventually("both ends see the connection", || {
            h1.is_connected(2) && h2.is_connected(1)
        })
        .await;
        let (c1, c2) = (h1.connections(), h2.connections());
        assert_eq!(c1.len(), 1);
        assert_eq!(c2.len(), 1);
        assert!(
            !c1[0].outbound,
            "sid 1 must not keep the connection it dialed"
        );
        assert!(c2[0].outbound, "sid 2 dialed back");
        assert_eq!((c1[0].local, c1[0].remote), (c2[0].remote, c2[0].local));
        // And the reverse direction uses the same connection.
        h2.send(1, Bytes::from_static(b"back")).expect("send");
        let m = recv(&mut c[0].1).await;
        assert_eq!((m.from, &m.payload[..]), (2, &b"back"[..]));
        assert_eq!(h1.connections(), c1);
        h1.shutdown().await;
        h2.shutdown().await;
    }

    #[tokio::test]
    async fn message_to_a_late_peer_arrives_after_connect_all() {
        // Sid 2 starts late; sid 1 (smaller, turned around) and sid 3 (larger, direct) wait.
        let late = free_addr("127.0.0.2").await;
        let mut c = cluster(&[1, 3]).await;
        let mut addrs: HashMap<i64, SocketAddr> = c
            .iter()
            .map(|(h, _)| (h.my_sid(), h.local_addr()))
            .collect();
        addrs.insert(2, late);
        for (h, _) in &c {
            // The cluster helper did not know about sid 2; rebuild its view.
            h.shared.lock().peers.insert(2, late);
        }
        let (h1, h3) = (c[0].0.clone(), c[1].0.clone());
        h1.send(2, Bytes::from_static(b"from1")).expect("send");
        h3.send(2, Bytes::from_static(b"from3")).expect("send");

        // Both dials fail and are not retried on their own.
        eventually("failed dials finish", || {
            h1.shared.lock().dialing.is_empty() && h3.shared.lock().dialing.is_empty()
        })
        .await;
        let attempts = h1.shared.dial_attempts.load(Ordering::Relaxed)
            + h3.shared.dial_attempts.load(Ordering::Relaxed);
        tokio::time::sleep(Duration::from_millis(200)).await;
        assert_eq!(
            attempts,
            h1.shared.dial_attempts.load(Ordering::Relaxed)
                + h3.shared.dial_attempts.load(Ordering::Relaxed),
            "no background redial"
        );
        assert!(!h1.is_connected(2) && !h3.is_connected(2));

        let (h2, mut rx2) = start(cfg(2, late, &addrs)).await.expect("start late peer");
        h1.connect_all();
        h3.connect_all();
        let want = [(1, b"from1".to_vec()), (3, b"from3".to_vec())]
            .into_iter()
            .collect();
        recv_all(&mut rx2, &want).await;
        assert!(c[0].1.try_recv().is_err());
        for h in [&h1, &h2, &h3] {
            h.shutdown().await;
        }
    }

    #[tokio::test]
    async fn last_message_is_resent_on_a_new_connection() {
        let mut c = cluster_on("127.0.0.3", &[1, 2]).await;
        let (h2, _rx2) = c.pop().expect("sid 2");
        let (h1, mut rx1) = c.pop().expect("sid 1");
        let addr1 = h1.local_addr();
        let addrs: HashMap<i64, SocketAddr> = [(1, addr1), (2, h2.local_addr())].into();
        h2.send(1, Bytes::from_static(b"vote")).expect("send");
        assert_eq!(&recv(&mut rx1).await.payload[..], b"vote");

        // Sid 1 restarts on the same port; the message it got is resent to the new instance.
        h1.shutdown().await;
        let h2c = h2.clone();
        eventually("old connection noticed closed", || !h2c.is_connected(1)).await;
        let (h1, mut rx1) = start(cfg(1, addr1, &addrs)).await.expect("restart");
        h2.connect_all();
        let m = recv(&mut rx1).await;
        assert_eq!((m.from, &m.payload[..]), (2, &b"vote"[..]));
        h1.shutdown().await;
        h2.shutdown().await;
    }

    #[tokio::test]
    async fn bad_initial_messages_and_frames_close_only_that_connection() {
        let mut c = cluster(&[1, 2]).await;
        let (h1, h2) = (c[0].0.clone(), c[1].0.clone());
        let a1 = h1.local_addr();
        h2.send(1, Bytes::from_static(b"before")).expect("send");
        assert_eq!(&recv(&mut c[0].1).await.payload[..], b"before");

        let garbage: Vec<Vec<u8>> = vec![
            (-5i64).to_be_bytes().to_vec(),                     // unknown version
            header(PROTOCOL_VERSION_V1, 9, b"", 0),             // empty address
            header(PROTOCOL_VERSION_V1, 9, b"", 5000),          // too long
            header(PROTOCOL_VERSION_V1, 9, b"nocolon", 7),      // no port
            header(PROTOCOL_VERSION_V1, 9, b"h:99999", 7),      // port out of range
            header(PROTOCOL_VERSION_V1, 1, b"127.0.0.1:1", 11), // our own sid
            vec![0xff, 0xff],                                   // truncated, then EOF
        ];
        for g in garbage {
            let mut s = TcpStream::connect(a1).await.expect("connect");
            s.write_all(&g).await.expect("write");
            if g.len() == 2 {
                s.shutdown().await.expect("half-close");
            }
            expect_closed(&mut s).await;
        }

        // A larger sid with a valid header is kept; a valid frame is delivered; an oversize
        // frame closes it.
        let mut s = TcpStream::connect(a1).await.expect("connect");
        s.write_all(&header(PROTOCOL_VERSION_V1, 9, b"127.0.0.1:1", 11))
            .await
            .expect("write");
        s.write_all(&frame(b"ok")).await.expect("write");
        let m = recv(&mut c[0].1).await;
        assert_eq!((m.from, &m.payload[..]), (9, &b"ok"[..]));
        assert!(h1.is_connected(9));
        s.write_all(&((MAX_PACKET as i32) + 1).to_be_bytes())
            .await
            .expect("write");
        expect_closed(&mut s).await;
        let h1c = h1.clone();
        eventually("oversize frame closed sid 9", || !h1c.is_connected(9)).await;

        // Zero-length frame from an old-style peer (bare sid) is rejected too.
        let mut s = TcpStream::connect(a1).await.expect("connect");
        s.write_all(&7i64.to_be_bytes()).await.expect("write");
        s.write_all(&frame(b"old")).await.expect("write");
        let m = recv(&mut c[0].1).await;
        assert_eq!((m.from, &m.payload[..]), (7, &b"old"[..]));
        s.write_all(&0i32.to_be_bytes()).await.expect("write");
        expect_closed(&mut s).await;

        // The real peer's connection is untouched.
        assert_eq!(h1.connected_peers(), vec![2]);
        h2.send(1, Bytes::from_static(b"after")).expect("send");
        let m = recv(&mut c[0].1).await;
        assert_eq!((m.from, &m.payload[..]), (2, &b"after"[..]));
        h1.shutdown().await;
        h2.shutdown().await;
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn send_never_blocks() {
        // Peer 1 is down (refused); peer 0 accepts nothing, so its socket buffer fills.
        let stuck = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let mut peers = HashMap::new();
        peers.insert(1, free_addr("127.0.0.4").await);
        peers.insert(0, stuck.local_addr().expect("addr"));
        let l = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let me = l.local_addr().expect("addr");
        let mut c = CnxConfig::new(2, me, me.to_string(), peers);
        c.connect_timeout = Duration::from_millis(500);
        let (h, _rx) = start_with_listener(c, l).await.expect("start");

        let big = Bytes::from(vec![7u8; MAX_PACKET]);
        let t = Instant::now();
        for _ in 0..2_000 {
            h.send(1, Bytes::from_static(b"x")).expect("send");
            h.send(0, big.clone()).expect("send");
        }
        assert!(
            t.elapsed() < Duration::from_millis(500),
            "send blocked: {:?}",
            t.elapsed()
        );
        let hc = h.clone();
        eventually("connected to the stuck peer", || hc.is_connected(0)).await;
        let t = Instant::now();
        for _ in 0..2_000 {
            h.send(0, big.clone()).expect("send");
        }
        assert!(
            t.elapsed() < Duration::from_millis(500),
            "send blocked: {:?}",
            t.elapsed()
        );
        assert!(matches!(
            h.send(0, Bytes::from(vec![0u8; MAX_PACKET + 1])),
            Err(CnxError::PayloadSize(_))
        ));
        assert!(matches!(
            h.send(0, Bytes::new()),
            Err(CnxError::PayloadSize(0))
        ));
        h.shutdown().await;
        drop(stuck);
    }

    #[tokio::test]
    async fn full_receive_queue_drops_the_oldest() {
        let mut c = cluster(&[1]).await;
        let (h, rx) = &mut c[0];
        // On this single-threaded runtime the relay cannot run until we yield.
        for i in 0..250u32 {
            h.send(1, Bytes::from(i.to_be_bytes().to_vec()))
                .expect("send");
        }
        assert_eq!(h.dropped_incoming(), 150);
        let mut got = Vec::new();
        while got.len() < RECV_CAPACITY {
            let m = recv(rx).await;
            assert_eq!(m.from, 1);
            let b: [u8; 4] = m.payload[..].try_into().expect("4 bytes");
            got.push(u32::from_be_bytes(b));
        }
        assert_eq!(got, (150..250).collect::<Vec<u32>>());
        h.shutdown().await;
        assert!(rx.recv().await.is_none(), "channel ends after shutdown");
    }

    #[tokio::test]
    async fn shutdown_closes_listener_and_connections() {
        let mut c = cluster(&[1, 2]).await;
        let (h1, h2) = (c[0].0.clone(), c[1].0.clone());
        h2.send(1, Bytes::from_static(b"x")).expect("send");
        recv(&mut c[0].1).await;
        h1.shutdown().await;
        h1.shutdown().await; // idempotent
        assert!(TcpStream::connect(h1.local_addr()).await.is_err());
        assert!(h1.connected_peers().is_empty());
        assert!(matches!(
            h1.send(2, Bytes::from_static(b"y")),
            Err(CnxError::Shutdown)
        ));
        assert!(matches!(
            h1.send(1, Bytes::from_static(b"y")),
            Err(CnxError::Shutdown)
        ));
        eventually("peer noticed", || !h2.is_connected(1)).await;
        h2.shutdown().await;
    }

    #[tokio::test]
    async fn bind_failure_is_reported() {
        let taken = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let addr = taken.local_addr().expect("addr");
        let mut c = CnxConfig::new(1, addr, addr.to_string(), HashMap::new());
        c.bind_retry = 1;
        match start(c).await {
            Err(CnxError::Bind { attempts: 1, .. }) => {}
            other => panic!("expected a bind error, got {other:?}"),
        }
        let bad = CnxConfig::new(1, addr, "", HashMap::new());
        assert!(matches!(
            start(bad).await,
            Err(CnxError::BadAnnounceAddress(_))
        ));
    }
}

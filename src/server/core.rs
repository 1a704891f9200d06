//! The server core: one task that owns the DataTree, the sessions and the watches, and runs
//! every request through prep → log → apply → reply in arrival order.
//!
//! Connection tasks decode frames and hand them over through a bounded channel; the core
//! answers through each connection's own bounded outbound queue. Because replies and watch
//! events for a connection are pushed onto that one queue by this one task, a client always
//! sees the event for a change before any reply that reflects it, and a session's requests are
//! answered in order.

use std::collections::{HashMap, VecDeque};
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use tokio::sync::{mpsc, oneshot};

use crate::auth::{self, AuthConfig};
use crate::config::ServerConfig;
use crate::jute::codes::{EphemeralKind, STATE_SYNC_CONNECTED};
use crate::jute::records::{
    AuthPacket, ConnectRequest, ConnectResponse, Id, ReplyHeader, SetWatches, SetWatches2,
    WatcherEvent,
};
use crate::jute::{Decode, Encode, ErrorCode, EventType, OpCode, Perms, Reader, Writer};
use crate::persist::compress::Compression;
use crate::persist::files::version_dir;
use crate::persist::log_writer::{LogCmd, LogSettings, LogWriter};
use crate::persist::recovery::{recover, RecoveryError, RecoveryOptions, Restored};
use crate::persist::snap_writer::{self, SnapSettings, Snapshotter};
use crate::request::apply::{Applier, Fired, OpResult};
use crate::request::prep::{Pending, Prep, WriteRequest};
use crate::request::read::{encode_write_result, ReadError, Reads};
use crate::request::txn::{Txn, TxnEntry, TxnHeader};
use crate::session::{session_password, SessionTracker};
use crate::tree::{DataTree, DIGEST_VERSION};
use crate::watch::{ConnId, WatchManager};

use super::stats::{ConnStats, ServerStats};

mod ensemble;
pub use ensemble::{PeerEvent, QuorumCtx, QuorumMsg, Role, LEARNER_QUEUE};

/// Txns applied but not yet durable before the core stops taking requests.
const MAX_UNSYNCED: i64 = 20_000;
const _: () = assert!(
    (MAX_UNSYNCED as usize) < crate::persist::log_writer::LOG_QUEUE,
    "the log queue must hold every txn the core may leave unsynced"
);
/// Frames waiting for the log before the core stops taking requests.
const MAX_HELD: usize = 200_000;
/// Snapshot walk per idle millisecond: a request that arrives meanwhile waits at most this.
const SNAP_SLICE_IDLE: Duration = Duration::from_micros(250);
/// Node-table growth finished per idle millisecond (see [`DataTree::finish_growth`]): a
/// million-node table frees its old half within about a second of idle.
const GROWTH_SLICE_IDLE: Duration = Duration::from_micros(100);
/// Under load the walk is paced by time instead: it may take this share of the core's wall
/// time, in slices of at most [`SNAP_SLICE_MAX`] (a request waits behind at most one). Walking
/// a node costs about half a microsecond (mostly cache misses), so a million-node tree takes
/// about two seconds at this share, against Java's five or more for the same snapshot, and
/// the requests keep three quarters of the core.
const SNAP_SHARE: f64 = 0.25;
const SNAP_SLICE_MAX: Duration = Duration::from_micros(60);
/// Nodes walked between two looks at the clock.
const SNAP_UNIT: usize = 32;

/// Time accounting for the snapshot walk under load (see [`SNAP_SHARE`]).
#[derive(Debug)]
struct WalkPacer {
    since: Instant,
    spent: Duration,
}

impl WalkPacer {
    fn new() -> WalkPacer {
        WalkPacer {
            since: Instant::now(),
            spent: Duration::ZERO,
        }
    }

    /// How long the walk may run now: its share of the time since it began, less what it
    /// has used, at most one slice.
    fn allowance(&self, now: Instant) -> Duration {
        let earned = now
            .saturating_duration_since(self.since)
            .mul_f64(SNAP_SHARE);
        earned.saturating_sub(self.spent).min(SNAP_SLICE_MAX)
    }
}

/// Per-connection outbound queue depth. A client that lets this many frames pile up is not
/// reading; it is disconnected rather than allowed to grow the server's memory.
pub const OUTBOUND_QUEUE: usize = 8192;

/// What the core sends to a connection's writer task.
#[derive(Debug)]
pub enum Outbound {
    Frame(Bytes),
    /// Flush what was queued, then close the socket.
    Close,
}

/// What connection tasks send to the core.
#[derive(Debug)]
pub enum CoreMsg {
    Open {
        conn: ConnId,
        remote: SocketAddr,
        out: mpsc::Sender<Outbound>,
    },
    Connect {
        conn: ConnId,
        req: ConnectRequest,
        has_read_only: bool,
    },
    Packet {
        conn: ConnId,
        xid: i32,
        op: i32,
        body: Bytes,
        received: Instant,
    },
    Closed {
        conn: ConnId,
    },
    FourLetter {
        word: String,
        reply: oneshot::Sender<String>,
    },
    Shutdown,
}

/// The core's view of one client connection.
#[derive(Debug)]
pub(crate) struct Conn {
    pub remote: SocketAddr,
    pub out: mpsc::Sender<Outbound>,
    pub session_id: i64,
    pub timeout: i32,
    pub ids: Vec<Id>,
    pub stats: ConnStats,
    pub closing: bool,
}

/// Wall-clock milliseconds, as Java's `System.currentTimeMillis`.
pub fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

fn frame(header: &ReplyHeader, body: &[u8]) -> Bytes {
    let mut w = Writer::with_capacity(20 + body.len());
    let at = w.begin_frame();
    header.encode(&mut w);
    w.buf.extend_from_slice(body);
    w.finish_frame(at);
    w.into_bytes()
}

/// A watch notification frame: ReplyHeader{xid −1, zxid} + WatcherEvent{type, SyncConnected, path}.
fn notification(event: EventType, path: &str, zxid: i64) -> Bytes {
    let mut w = Writer::new();
    let at = w.begin_frame();
    ReplyHeader {
        xid: -1,
        zxid,
        err: 0,
    }
    .encode(&mut w);
    WatcherEvent {
        event_type: event as i32,
        state: STATE_SYNC_CONNECTED,
        path: path.to_owned(),
    }
    .encode(&mut w);
    w.finish_frame(at);
    w.into_bytes()
}

/// Where the core reads the time: the real clock, or the deterministic simulator's.
#[derive(Clone, Debug)]
pub enum Clock {
    Real,
    /// `base` plus the simulated milliseconds in `ms`.
    Sim {
        base: Instant,
        ms: Arc<std::sync::atomic::AtomicU64>,
    },
}

impl Clock {
    pub fn now(&self) -> Instant {
        match self {
            Clock::Real => Instant::now(),
            Clock::Sim { base, ms } => {
                *base + Duration::from_millis(ms.load(std::sync::atomic::Ordering::Relaxed))
            }
        }
    }
}

/// A ConnectResponse frame: the session and negotiated timeout it grants, or a refusal
/// (session 0, timeout 0, zero password); the readOnly byte only if the client sent one.
fn connect_response(granted: Option<(i64, i32)>, has_ro: bool, read_only: bool) -> Bytes {
    let mut w = Writer::new();
    let at = w.begin_frame();
    let (session_id, time_out, passwd) = match granted {
        Some((id, timeout)) => (id, timeout, session_password(id).to_vec()),
        None => (0, 0, vec![0; 16]),
    };
    ConnectResponse {
        protocol_version: 0,
        time_out,
        session_id,
        passwd: Some(passwd),
    }
    .encode(&mut w);
    if has_ro {
        w.bool(read_only);
    }
    w.finish_frame(at);
    w.into_bytes()
}

/// The standalone ZooKeeper server state machine (Java's `ZooKeeperServer` and its
/// processor chain), driven by [`Core::run`].
pub struct Core {
    pub(crate) config: Arc<ServerConfig>,
    pub(crate) tree: DataTree,
    pub(crate) watches: WatchManager,
    pub(crate) sessions: SessionTracker,
    log: LogWriter,
    /// The last zxid on disk.
    synced: i64,
    /// Frames that reflect state up to this zxid may leave: the log is durable that far
    /// (standalone) or a quorum has it (leader). Nothing later has left the server.
    released: i64,
    /// Frames (and closes) that wait until `released` reaches their zxid, in send order.
    held: VecDeque<(i64, ConnId, Outbound)>,
    /// The log writer was replaced (a learner's TRUNC or SNAP): the run loop re-subscribes.
    synced_changed: bool,
    /// What this server is in an ensemble (standalone: always [`Role::Standalone`]).
    pub(crate) role: Role,
    /// Ensemble settings and epochs; `None` when standalone.
    pub(crate) quorum: Option<QuorumCtx>,
    /// Cut off from the quorum and serving read-only clients (`readonlymode.enabled`).
    pub(crate) read_only: bool,
    /// Sessions opened in read-only mode: local to this server, gone when it rejoins.
    ro_sessions: std::collections::HashSet<i64>,
    /// When this server last started LOOKING.
    looking_since: Instant,
    clock: Clock,
    /// Java's digest log: (zxid, tree digest) for every applied zxid divisible by 128, the
    /// last 1024 of them; what `hash` prints.
    pub(crate) digest_log: VecDeque<(i64, i64)>,
    /// Every commit as (zxid, tree digest after it), when the simulator asks for it.
    pub(crate) commit_trace: Option<Vec<(i64, Option<i64>)>>,
    snapshots: Snapshotter,
    txns_since_snapshot: u64,
    walk_pacer: WalkPacer,
    snapshot_after: u64,
    pending: Pending,
    pub(crate) conns: HashMap<ConnId, Conn>,
    session_conn: HashMap<i64, ConnId>,
    pub(crate) last_zxid: i64,
    pub(crate) auth: AuthConfig,
    pub(crate) stats: ServerStats,
    pub(crate) started: Instant,
}

/// Why the core could not open its data directory.
#[derive(Debug, thiserror::Error)]
pub enum OpenError {
    #[error(transparent)]
    Recovery(#[from] RecoveryError),
    #[error("cannot write to {path}: {source}")]
    Io {
        path: std::path::PathBuf,
        source: std::io::Error,
    },
}

/// Rebuild the state in the configured data directories.
fn recover_data(
    config: &ServerConfig,
    trust_empty_snapshot: bool,
) -> Result<Restored, RecoveryError> {
    recover(
        &config.data_dir,
        &config.data_log_dir,
        &RecoveryOptions {
            extended_types: config.extended_types_enabled(),
            trust_empty_snapshot,
        },
    )
}

impl Core {
    /// Load the data directory (see [`recover`]) and start the txn log writer.
    pub fn open(config: Arc<ServerConfig>) -> Result<Core, OpenError> {
        let restored = recover_data(&config, config.trust_empty_snapshot())?;
        Core::from_restored(config, restored, false)
    }

    /// [`Core::open`] with a log that writes without a thread and is durable only when the
    /// caller says so: the deterministic simulator's core.
    #[cfg(test)]
    pub(crate) fn open_inline(config: Arc<ServerConfig>) -> Result<Core, OpenError> {
        let restored = recover_data(&config, config.trust_empty_snapshot())?;
        Core::from_restored(config, restored, true)
    }

    fn from_restored(
        config: Arc<ServerConfig>,
        restored: Restored,
        inline_log: bool,
    ) -> Result<Core, OpenError> {
        let now = Instant::now();
        let Restored {
            mut tree,
            sessions: restored_sessions,
            zxid,
            snapshot,
            replayed,
            ..
        } = restored;
        tree.set_extended_types(config.extended_types_enabled());
        let snap_dir = version_dir(&config.data_dir);
        let log_dir = version_dir(&config.data_log_dir);
        let compression = Compression::from_setting(config.snapshot_compression());
        let io = |path: &std::path::Path| {
            let path = path.to_owned();
            move |source| OpenError::Io { path, source }
        };
        std::fs::create_dir_all(&snap_dir).map_err(io(&snap_dir))?;
        snap_writer::remove_scratch(&snap_dir);
        if snapshot.is_none() {
            // As Java: a data directory starts with a snapshot, so that its logs are never
            // mistaken for a partial copy.
            let sessions = restored_sessions.iter().map(|(k, v)| (*k, *v)).collect();
            let path = snap_writer::write_now(
                &snap_dir,
                compression,
                &tree,
                sessions,
                zxid,
                config.digest_enabled(),
            )
            .map_err(io(&snap_dir))?;
            tracing::info!(file = %path.display(), "initial snapshot written");
        }
        let settings = LogSettings {
            dir: log_dir.clone(),
            prealloc: config.pre_alloc_size_kb.saturating_mul(1024),
            force_sync: config.force_sync,
        };
        let log = if inline_log {
            LogWriter::start_inline(settings, zxid)
        } else {
            LogWriter::start(settings, zxid)
        }
        .map_err(io(&log_dir))?;
        let snapshots = Snapshotter::new(
            SnapSettings {
                dir: snap_dir,
                compression,
                digest: config.digest_enabled(),
            },
            log.synced_shared.clone(),
        );
        let mut sessions = SessionTracker::new(1, config.tick_time as u64, now);
        for (id, timeout) in &restored_sessions {
            sessions.add_session(*id, *timeout, now);
        }
        let auth = AuthConfig {
            super_digest: config.super_digest().map(str::to_owned),
            skip_acl: config.skip_acl(),
        };
        let snapshot_after = snapshot_threshold(config.snap_count);
        let mut core = Core {
            sessions,
            config,
            tree,
            watches: WatchManager::new(),
            log,
            synced: zxid,
            released: zxid,
            held: VecDeque::new(),
            synced_changed: false,
            role: Role::Standalone,
            quorum: None,
            read_only: false,
            ro_sessions: Default::default(),
            looking_since: now,
            clock: Clock::Real,
            commit_trace: None,
            digest_log: VecDeque::new(),
            snapshots,
            txns_since_snapshot: 0,
            walk_pacer: WalkPacer::new(),
            snapshot_after,
            pending: Pending::default(),
            conns: HashMap::new(),
            session_conn: HashMap::new(),
            last_zxid: zxid,
            auth,
            stats: ServerStats::default(),
            started: now,
        };
        if replayed > 0 {
            // As Java after loading: a fresh snapshot, so the next start replays nothing;
            // ours is written in the background while clients are served.
            core.begin_snapshot(zxid);
        }
        Ok(core)
    }

    /// Run until a [`CoreMsg::Shutdown`] arrives or every sender is gone. `qrx` carries the
    /// ensemble's messages (none when standalone).
    pub async fn run(
        mut self,
        mut rx: mpsc::Receiver<CoreMsg>,
        mut qrx: Option<mpsc::Receiver<QuorumMsg>>,
    ) {
        let tick_every = Duration::from_millis((self.config.tick_time as u64 / 2).max(1));
        let mut quorum_tick = tokio::time::interval(tick_every);
        quorum_tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let sweep_every = Duration::from_millis(self.config.container_check_interval_ms().max(10));
        let mut sweep =
            tokio::time::interval_at(tokio::time::Instant::now() + sweep_every, sweep_every);
        sweep.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut synced_rx = self.log.synced.clone();
        // While idle, a snapshot walk advances one slice per millisecond: the core still
        // sleeps between slices, so it never competes for the CPU with connection I/O.
        let mut walk_tick = tokio::time::interval(Duration::from_millis(1));
        walk_tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
        loop {
            let next_expiry = self
                .sessions
                .next_expiry()
                .unwrap_or_else(|| Instant::now() + Duration::from_secs(3600));
            // Backpressure: stop taking requests while too much waits for the disk.
            let accepting = self.last_zxid - self.synced < MAX_UNSYNCED
                && self.held.len() < MAX_HELD
                && !self.draining_for_sync();
            let walking = self.snapshots.walking();
            let growing = self.tree.growing();
            let owns_sessions = match &self.role {
                Role::Standalone => true,
                Role::Leading(_) => self.role.serving(),
                _ => false,
            };
            let in_quorum = qrx.is_some();
            // Biased: durability news first (it releases replies), then the ensemble, then
            // requests, then timers and snapshot slices.
            tokio::select! {
                biased;
                changed = synced_rx.changed() => {
                    if changed.is_err() {
                        tracing::error!("txn log writer stopped; shutting down");
                        break;
                    }
                    let z = *synced_rx.borrow_and_update();
                    self.on_synced(z);
                }
                qmsg = async { match qrx.as_mut() { Some(q) => q.recv().await, None => None } }, if in_quorum => {
                    match qmsg {
                        Some(m) => self.handle_quorum(m),
                        None => break,
                    }
                    if self.synced_changed {
                        self.synced_changed = false;
                        synced_rx = self.log.synced.clone();
                    }
                }
                _ = quorum_tick.tick(), if in_quorum => self.quorum_tick(),
                msg = rx.recv(), if accepting => match msg {
                    None | Some(CoreMsg::Shutdown) => break,
                    Some(m) => {
                        self.handle(m);
                        // Under sustained load there is no idle moment: the walk takes its
                        // share of the core between requests.
                        if self.snapshots.walking() {
                            self.walk_paced();
                        }
                    }
                },
                _ = tokio::time::sleep_until(next_expiry.into()), if owns_sessions => self.expire_sessions(),
                _ = sweep.tick(), if owns_sessions => self.sweep_containers(),
                _ = walk_tick.tick(), if walking || growing => self.idle_slice(),
            }
        }
        // Everything applied is handed to the log; wait for it to be durable, then let the
        // last replies out.
        self.log.close();
        let last = self.last_zxid;
        self.on_synced(last);
        self.snapshots
            .shutdown(&mut self.tree, Duration::from_secs(10));
        for c in self.conns.values() {
            let _ = c.out.try_send(Outbound::Close);
        }
        tracing::info!(zxid = format_args!("{:#x}", self.last_zxid), "core stopped");
    }

    fn now(&self) -> Instant {
        self.clock.now()
    }

    /// One paced slice of the snapshot walk (see [`SNAP_SHARE`]). Real time, not the core's
    /// clock: this shares the CPU, which simulated time does not model.
    fn walk_paced(&mut self) {
        let allowed = self.walk_pacer.allowance(Instant::now());
        self.walk_for(allowed);
    }

    /// One millisecond tick's worth of background work while no request is waiting: a slice
    /// of the snapshot walk, and a slice of the node table's unfinished growth.
    fn idle_slice(&mut self) {
        if self.snapshots.walking() {
            self.walk_for(SNAP_SLICE_IDLE);
        }
        self.tree.finish_growth(GROWTH_SLICE_IDLE);
    }

    /// Walk for up to `limit`, stopping early when the walk ends or the writer thread is
    /// behind (no progress: the walk waits for it); the time counts against the pacer.
    fn walk_for(&mut self, limit: Duration) {
        if limit.is_zero() {
            return;
        }
        let t0 = Instant::now();
        while self.snapshots.walking()
            && self
                .snapshots
                .step(&mut self.tree, &self.sessions, self.last_zxid, SNAP_UNIT)
            && t0.elapsed() < limit
        {}
        self.walk_pacer.spent += t0.elapsed();
    }

    fn begin_snapshot(&mut self, zxid: i64) {
        if self.snapshots.begin(&mut self.tree, &self.sessions, zxid) {
            self.walk_pacer = WalkPacer::new();
        }
    }

    /// The log is durable up to `zxid`: release what waited for it.
    fn on_synced(&mut self, zxid: i64) {
        self.synced = self.synced.max(zxid);
        match self.role {
            Role::Standalone => self.release(self.synced),
            Role::Leading(_) => self.leader_synced(),
            Role::Learning(_) => self.learner_synced(),
            Role::Looking => {}
        }
    }

    /// How far frames may reflect state: a learner applies only committed txns, so anything
    /// it shows may leave at once; otherwise up to what is durable (standalone) or committed
    /// (leader).
    fn release_point(&self) -> i64 {
        match self.role {
            Role::Learning(_) => self.last_zxid,
            _ => self.released,
        }
    }

    /// Frames that reflect state up to `zxid` may leave now.
    pub(crate) fn release(&mut self, zxid: i64) {
        self.released = self.released.max(zxid);
        while let Some((z, _, _)) = self.held.front() {
            if *z > self.released {
                break;
            }
            if let Some((_, conn, out)) = self.held.pop_front() {
                self.emit_now(conn, out);
            }
        }
    }

    pub fn handle(&mut self, msg: CoreMsg) {
        match msg {
            CoreMsg::Open { conn, remote, out } => {
                let ids = vec![auth::ip_id(remote.ip())];
                self.conns.insert(
                    conn,
                    Conn {
                        remote,
                        out,
                        session_id: 0,
                        timeout: 0,
                        ids,
                        stats: ConnStats::new(now_ms()),
                        closing: false,
                    },
                );
            }
            CoreMsg::Connect {
                conn,
                req,
                has_read_only,
            } => self.connect(conn, req, has_read_only),
            CoreMsg::Packet {
                conn,
                xid,
                op,
                body,
                received,
            } => self.packet(conn, xid, op, &body, received),
            CoreMsg::Closed { conn } => self.drop_conn(conn),
            CoreMsg::FourLetter { word, reply } => {
                let _ = reply.send(super::four_letter::run(self, &word));
            }
            CoreMsg::Shutdown => {}
        }
    }

    fn drop_conn(&mut self, conn: ConnId) {
        if let Some(c) = self.conns.remove(&conn) {
            if self.session_conn.get(&c.session_id) == Some(&conn) {
                self.session_conn.remove(&c.session_id);
            }
            self.watches.remove_connection(conn);
        }
    }

    /// Queue a frame for a connection. A frame leaves only once the state it reflects is
    /// durable: while any txn is on its way to disk, frames wait in `held`, in order.
    fn send(&mut self, conn: ConnId, bytes: Bytes) {
        self.emit(conn, Outbound::Frame(bytes));
    }

    fn emit(&mut self, conn: ConnId, out: Outbound) {
        if self.held.is_empty() && self.release_point() >= self.last_zxid {
            self.emit_now(conn, out);
        } else {
            self.held.push_back((self.last_zxid, conn, out));
        }
    }

    /// Hand a frame to the connection's writer; a connection whose queue is full is closed.
    fn emit_now(&mut self, conn: ConnId, out: Outbound) {
        let Some(c) = self.conns.get_mut(&conn) else {
            return;
        };
        let bytes = match out {
            Outbound::Frame(b) => b,
            Outbound::Close => {
                let _ = c.out.try_send(Outbound::Close);
                return;
            }
        };
        let len = bytes.len();
        match c.out.try_send(Outbound::Frame(bytes)) {
            Ok(()) => {
                c.stats.sent += 1;
                self.stats.packets_sent += 1;
                self.stats.record_response_size(len);
            }
            Err(mpsc::error::TrySendError::Full(_)) => {
                tracing::warn!(remote = %c.remote, "client is not reading its replies; closing");
                c.closing = true;
                let out = c.out.clone();
                tokio::spawn(async move {
                    let _ = out.send(Outbound::Close).await;
                });
            }
            Err(mpsc::error::TrySendError::Closed(_)) => {}
        }
    }

    fn close_conn(&mut self, conn: ConnId) {
        if let Some(c) = self.conns.get_mut(&conn) {
            c.closing = true;
            self.emit(conn, Outbound::Close);
        }
    }

    fn reply(&mut self, conn: ConnId, xid: i32, zxid: i64, err: ErrorCode, body: &[u8]) {
        let h = ReplyHeader {
            xid,
            zxid,
            err: err.code(),
        };
        self.send(conn, frame(&h, body));
    }

    // ----- handshake -------------------------------------------------------------------

    fn connect(&mut self, conn: ConnId, req: ConnectRequest, has_ro: bool) {
        let Some(remote) = self.conns.get(&conn).map(|c| c.remote) else {
            return;
        };
        if !self.role.serving() {
            if self.read_only && req.read_only {
                self.read_only_connect(conn, req, has_ro);
                return;
            }
            // As Java's server when it is not running: the client tries another server.
            tracing::debug!(%remote, mode = self.role.mode(), "not serving yet; closing");
            self.close_conn(conn);
            return;
        }
        if req.last_zxid_seen > self.last_zxid {
            tracing::info!(
                %remote,
                client_zxid = format_args!("{:#x}", req.last_zxid_seen),
                server_zxid = format_args!("{:#x}", self.last_zxid),
                "client has seen a newer zxid than this server; closing so it tries another"
            );
            self.close_conn(conn);
            return;
        }
        let timeout = req
            .time_out
            .max(self.config.min_session_timeout)
            .min(self.config.max_session_timeout);
        if matches!(self.role, Role::Learning(_)) {
            let pw_ok = req.passwd.as_deref() == Some(&session_password(req.session_id)[..]);
            self.learner_connect(conn, req.session_id, pw_ok, timeout, has_ro);
            return;
        }
        let now = self.now();
        let (session_id, valid) = if req.session_id == 0 {
            let id = self.sessions.next_session_id();
            self.write(id, 0, |_| Ok(Txn::CreateSession { timeout }));
            (id, true)
        } else {
            let id = req.session_id;
            let pw_ok = req.passwd.as_deref() == Some(&session_password(id)[..]);
            let valid = pw_ok && self.sessions.touch(id, now);
            if valid {
                if let Some(old) = self.session_conn.get(&id).copied() {
                    if old != conn {
                        tracing::debug!(
                            session = format_args!("{id:#x}"),
                            "session moved to a new connection"
                        );
                        self.close_conn(old);
                        self.watches.remove_connection(old);
                    }
                }
            }
            (id, valid)
        };
        let granted = valid.then_some((session_id, timeout));
        if valid {
            self.attach_session(conn, session_id, timeout);
        }
        self.send(conn, connect_response(granted, has_ro, false));
        if valid {
            self.session_conn.insert(session_id, conn);
            tracing::debug!(%remote, session = format_args!("{session_id:#x}"), timeout, "session established");
        } else {
            tracing::info!(%remote, session = format_args!("{:#x}", req.session_id), "invalid or expired session");
            self.close_conn(conn);
        }
    }

    /// A read-only client's connect while this server has no quorum: a local session, and
    /// the response says read-only.
    fn read_only_connect(&mut self, conn: ConnId, req: ConnectRequest, has_ro: bool) {
        let timeout = req
            .time_out
            .max(self.config.min_session_timeout)
            .min(self.config.max_session_timeout);
        let id = if req.session_id != 0
            && req.passwd.as_deref() == Some(&session_password(req.session_id)[..])
        {
            req.session_id
        } else {
            self.sessions.next_session_id()
        };
        self.sessions.add_session(id, timeout, self.now());
        self.ro_sessions.insert(id);
        self.attach_session(conn, id, timeout);
        self.session_conn.insert(id, conn);
        self.send(conn, connect_response(Some((id, timeout)), has_ro, true));
        tracing::info!(session = format_args!("{id:#x}"), "read-only session");
    }

    /// The connection now carries this session (after a ConnectResponse that grants it).
    fn attach_session(&mut self, conn: ConnId, session_id: i64, timeout: i32) {
        if let Some(c) = self.conns.get_mut(&conn) {
            c.session_id = session_id;
            c.timeout = timeout;
            // Java counts the connect request (cxid 0) as the last one answered.
            c.stats.last_cxid = c.stats.last_cxid.max(0);
        }
    }

    /// Close every client connection at once (a role change, leaving read-only mode).
    fn close_all_clients(&mut self) {
        let conns: Vec<ConnId> = self.conns.keys().copied().collect();
        for c in conns {
            if let Some(conn) = self.conns.get(&c) {
                let _ = conn.out.try_send(Outbound::Close);
            }
            self.drop_conn(c);
        }
    }

    /// Enter or leave read-only mode; leaving closes every read-only client (it reconnects
    /// to a server with a quorum).
    pub(crate) fn set_read_only(&mut self, on: bool) {
        if self.read_only == on {
            return;
        }
        self.read_only = on;
        if on {
            tracing::warn!("no quorum for a while: serving read-only clients");
            return;
        }
        self.close_all_clients();
        for id in std::mem::take(&mut self.ro_sessions) {
            self.sessions.remove(id);
        }
    }

    // ----- requests --------------------------------------------------------------------

    fn packet(&mut self, conn: ConnId, xid: i32, op_raw: i32, body: &[u8], received: Instant) {
        let Some(c) = self.conns.get_mut(&conn) else {
            return;
        };
        if c.session_id == 0 || c.closing {
            return;
        }
        let session_id = c.session_id;
        c.stats.recved += 1;
        self.stats.packets_received += 1;
        let op = OpCode::from_i32(op_raw);
        if let Some(c) = self.conns.get_mut(&conn) {
            c.stats.last_op = op.map(OpCode::short_name).unwrap_or("NA");
            if xid >= 0 {
                c.stats.last_cxid = xid;
            }
        }
        if matches!(self.role, Role::Learning(_)) {
            // The leader owns session liveness; this server forwards writes and keeps the
            // session's order.
            if self.learner_packet(conn, session_id, xid, op_raw, body, received) {
                return;
            }
        } else if !self.sessions.touch(session_id, self.now()) {
            // The session expired (or is closing) under this connection.
            self.reply(conn, xid, self.last_zxid, ErrorCode::SessionExpired, &[]);
            self.close_conn(conn);
            return;
        }
        self.local_packet(conn, xid, op_raw, body, received);
    }

    /// Run one request here (standalone, leader, or a learner's reads).
    fn local_packet(
        &mut self,
        conn: ConnId,
        xid: i32,
        op_raw: i32,
        body: &[u8],
        received: Instant,
    ) {
        let Some(c) = self.conns.get(&conn) else {
            return;
        };
        if c.closing {
            return;
        }
        let session_id = c.session_id;
        let remote = c.remote;
        let op = OpCode::from_i32(op_raw);
        let mut r = Reader::new(body);
        if self.read_only && ensemble::is_forwarded(op) {
            // Java's ReadOnlyRequestProcessor: no writes (nor sync) without a quorum.
            if op == Some(OpCode::CloseSession) {
                self.reply(conn, xid, self.last_zxid, ErrorCode::Ok, &[]);
                self.ro_sessions.remove(&session_id);
                self.sessions.remove(session_id);
                self.session_conn.remove(&session_id);
                self.close_conn(conn);
            } else {
                self.reply(conn, xid, self.last_zxid, ErrorCode::NotReadOnly, &[]);
            }
            return;
        }
        match op {
            Some(OpCode::Ping) => {
                self.reply(conn, xid, self.last_zxid, ErrorCode::Ok, &[]);
            }
            Some(OpCode::Auth) => self.auth_packet(conn, xid, remote, &mut r),
            Some(OpCode::SetWatches) | Some(OpCode::SetWatches2) => {
                self.set_watches(conn, xid, op == Some(OpCode::SetWatches2), &mut r)
            }
            Some(OpCode::CloseSession) => {
                let (zxid, _) = self.write(session_id, xid, |p| Ok(p.close_session()));
                self.reply(conn, xid, zxid, ErrorCode::Ok, &[]);
                self.session_conn.remove(&session_id);
                self.close_conn(conn);
            }
            Some(OpCode::Reconfig) => {
                let err = if self.config.reconfig_enabled {
                    ErrorCode::Unimplemented
                } else {
                    ErrorCode::ReconfigDisabled
                };
                self.reply(conn, xid, self.last_zxid, err, &[]);
            }
            Some(
                op @ (OpCode::Create
                | OpCode::Create2
                | OpCode::CreateContainer
                | OpCode::CreateTtl
                | OpCode::Delete
                | OpCode::DeleteContainer
                | OpCode::SetData
                | OpCode::SetAcl),
            ) => {
                let decoded = WriteRequest::decode(op, &mut r);
                let (zxid, result) = self.write(session_id, xid, |p| match decoded {
                    Ok(req) => p.prep(req),
                    Err(_) => Err(ErrorCode::MarshallingError),
                });
                self.write_reply(conn, xid, op, zxid, &result);
            }
            Some(OpCode::Multi) => {
                let decoded = WriteRequest::decode_multi(&mut r);
                let (zxid, result) = self.write(session_id, xid, |p| match decoded {
                    Ok(ops) => Ok(p.prep_multi(ops)),
                    Err(_) => Err(ErrorCode::MarshallingError),
                });
                self.write_reply(conn, xid, OpCode::Multi, zxid, &result);
            }
            Some(
                op @ (OpCode::Exists
                | OpCode::GetData
                | OpCode::GetChildren
                | OpCode::GetChildren2
                | OpCode::GetAcl
                | OpCode::Sync
                | OpCode::GetAllChildrenNumber
                | OpCode::GetEphemerals
                | OpCode::WhoAmI
                | OpCode::CheckWatches
                | OpCode::RemoveWatches
                | OpCode::AddWatch
                | OpCode::MultiRead),
            ) => {
                let ids = self
                    .conns
                    .get(&conn)
                    .map(|c| c.ids.clone())
                    .unwrap_or_default();
                let mut out = Writer::new();
                let res = Reads {
                    tree: &self.tree,
                    watches: &mut self.watches,
                    auth: &self.auth,
                    ids: &ids,
                    conn,
                    session_id,
                }
                .read(op, &mut r, &mut out);
                let zxid = self.last_zxid;
                match res {
                    Ok(()) => self.reply(conn, xid, zxid, ErrorCode::Ok, &out.buf),
                    Err(ReadError::Code(e)) => self.reply(conn, xid, zxid, e, &[]),
                    Err(ReadError::Decode(e)) => {
                        tracing::info!(%remote, error = %e, "undecodable request; closing");
                        self.reply(conn, xid, zxid, ErrorCode::MarshallingError, &[]);
                        self.close_conn(conn);
                    }
                }
            }
            _ => {
                tracing::info!(%remote, op = op_raw, "unsupported opcode; closing");
                self.reply(conn, xid, self.last_zxid, ErrorCode::Unimplemented, &[]);
                self.close_conn(conn);
            }
        }
        let lat = received.elapsed().as_millis() as i64;
        self.stats.record_latency(lat);
        let zxid = self.last_zxid;
        if let Some(c) = self.conns.get_mut(&conn) {
            c.stats.record(lat, zxid, now_ms());
        }
    }

    fn write_reply(&mut self, conn: ConnId, xid: i32, op: OpCode, zxid: i64, res: &OpResult) {
        match res {
            OpResult::Error(e) => self.reply(conn, xid, zxid, *e, &[]),
            _ => {
                let mut out = Writer::new();
                encode_write_result(op, res, &mut out);
                self.reply(conn, xid, zxid, ErrorCode::Ok, &out.buf);
            }
        }
    }

    /// prep → apply → log for one write. Every write, failed or not, consumes a zxid.
    ///
    /// The tree changes at once, but nothing that shows the change (the reply, watch events,
    /// any later reply) leaves the server before the log has the txn on disk: see `emit`.
    fn write(
        &mut self,
        session_id: i64,
        cxid: i32,
        prep: impl FnOnce(&mut Prep<'_>) -> Result<Txn, ErrorCode>,
    ) -> (i64, OpResult) {
        let ids = self
            .session_conn
            .get(&session_id)
            .and_then(|c| self.conns.get(c))
            .map(|c| c.ids.clone())
            .unwrap_or_default();
        self.write_as(session_id, cxid, &ids, prep)
    }

    /// [`Core::write`] with the caller's auth ids (a learner's forwarded request carries its
    /// client's).
    pub(crate) fn write_as(
        &mut self,
        session_id: i64,
        cxid: i32,
        ids: &[Id],
        prep: impl FnOnce(&mut Prep<'_>) -> Result<Txn, ErrorCode>,
    ) -> (i64, OpResult) {
        let zxid = self.last_zxid + 1;
        let txn = {
            let mut p = Prep {
                tree: &self.tree,
                pending: &mut self.pending,
                auth: &self.auth,
                ids,
                session_id,
                extended_types: self.config.extended_types_enabled(),
                zxid,
            };
            prep(&mut p).unwrap_or_else(Txn::Error)
        };
        self.pending.clear();
        let entry = TxnEntry {
            header: TxnHeader {
                client_id: session_id,
                cxid,
                zxid,
                time: now_ms(),
            },
            txn,
        };
        self.last_zxid = zxid;
        let (result, digest) = self.apply_entry(&entry);
        if matches!(self.role, Role::Leading(_)) {
            let data = crate::quorum::zab::encode_txn_data(&entry, digest);
            self.remember_commit(zxid, data.clone());
            self.propose(zxid, data, digest.map(|d| d.1));
        }
        self.log.send(LogCmd::Append(entry, digest));
        self.maybe_snapshot(zxid);
        (zxid, result)
    }

    /// Apply one txn to the tree, the sessions and the watches; returns its result and the
    /// tree digest after it.
    fn apply_entry(&mut self, entry: &TxnEntry) -> (OpResult, Option<(i32, i64)>) {
        let session_id = entry.header.client_id;
        let mut fired = Vec::new();
        let result = Applier {
            tree: &mut self.tree,
            watches: &mut self.watches,
            fired: &mut fired,
        }
        .apply(entry);
        match &entry.txn {
            Txn::CreateSession { timeout } => {
                self.sessions.add_session(session_id, *timeout, self.now());
            }
            Txn::CloseSession { .. } => self.sessions.remove(session_id),
            _ => {}
        }
        let digest = self
            .config
            .digest_enabled()
            .then(|| (DIGEST_VERSION, self.tree.digest() as i64));
        if let Some((_, d)) = digest {
            if entry.header.zxid % 128 == 0 {
                self.digest_log.push_back((entry.header.zxid, d));
                if self.digest_log.len() > 1024 {
                    self.digest_log.pop_front();
                }
            }
        }
        self.deliver(&fired, entry.header.zxid);
        (result, digest)
    }

    /// Count a txn towards the next snapshot, and start one when it is due.
    fn maybe_snapshot(&mut self, zxid: i64) {
        self.txns_since_snapshot += 1;
        if self.txns_since_snapshot > self.snapshot_after {
            self.txns_since_snapshot = 0;
            self.snapshot_after = snapshot_threshold(self.config.snap_count);
            // As Java: the next txn starts a new log file, and the tree as of this txn is
            // written in the background.
            self.log.send(LogCmd::Roll);
            self.begin_snapshot(zxid);
        }
    }

    /// Send watch events to every registered connection that may READ the node.
    fn deliver(&mut self, fired: &[Fired], zxid: i64) {
        for f in fired {
            let bytes = notification(f.event, &f.path, zxid);
            for conn in &f.conns {
                let allowed = match self.conns.get(conn) {
                    Some(c) => auth::check_acl(&self.auth, &f.acl, Perms::READ, &c.ids),
                    None => false,
                };
                if allowed {
                    self.send(*conn, bytes.clone());
                }
            }
        }
    }

    /// Java echoes the request's xid (the Java client sends −4, others their next xid).
    fn auth_packet(&mut self, conn: ConnId, xid: i32, remote: SocketAddr, r: &mut Reader<'_>) {
        let res = AuthPacket::decode(r).map_err(|_| ()).and_then(|p| {
            auth::authenticate(
                &self.auth,
                &p.scheme,
                p.auth.as_deref().unwrap_or(&[]),
                remote.ip(),
            )
            .map_err(|e| {
                tracing::info!(%remote, scheme = %p.scheme, error = %e, "authentication failed");
            })
        });
        match res {
            Ok(new_ids) => {
                if let Some(c) = self.conns.get_mut(&conn) {
                    for id in new_ids {
                        if !c.ids.contains(&id) {
                            c.ids.push(id);
                        }
                    }
                }
                self.reply(conn, xid, 0, ErrorCode::Ok, &[]);
            }
            Err(()) => {
                self.stats.auth_failed += 1;
                self.reply(conn, xid, 0, ErrorCode::AuthFailed, &[]);
                self.close_conn(conn);
            }
        }
    }

    fn set_watches(&mut self, conn: ConnId, xid: i32, v2: bool, r: &mut Reader<'_>) {
        let sw = if v2 {
            SetWatches2::decode(r)
        } else {
            SetWatches::decode(r).map(|s| SetWatches2 {
                relative_zxid: s.relative_zxid,
                data_watches: s.data_watches,
                exist_watches: s.exist_watches,
                child_watches: s.child_watches,
                ..Default::default()
            })
        };
        let Ok(sw) = sw else {
            self.reply(conn, xid, self.last_zxid, ErrorCode::MarshallingError, &[]);
            self.close_conn(conn);
            return;
        };
        let rel = sw.relative_zxid;
        let mut events: Vec<(EventType, String)> = Vec::new();
        for p in sw.data_watches {
            match self.tree.node(&p) {
                None => events.push((EventType::NodeDeleted, p)),
                Some(n) if n.stat().mzxid > rel => events.push((EventType::NodeDataChanged, p)),
                Some(_) => self.watches.add_data_watch(&p, conn),
            }
        }
        for p in sw.exist_watches {
            if self.tree.node(&p).is_some() {
                events.push((EventType::NodeCreated, p));
            } else {
                self.watches.add_data_watch(&p, conn);
            }
        }
        for p in sw.child_watches {
            match self.tree.node(&p) {
                None => events.push((EventType::NodeDeleted, p)),
                Some(n) if n.stat().pzxid > rel => events.push((EventType::NodeChildrenChanged, p)),
                Some(_) => self.watches.add_child_watch(&p, conn),
            }
        }
        for p in sw.persistent_watches {
            self.watches.add_persistent(&p, conn, false);
        }
        for p in sw.persistent_recursive_watches {
            self.watches.add_persistent(&p, conn, true);
        }
        for (ev, path) in events {
            // Catch-up events carry zxid −1, as Java's.
            self.send(conn, notification(ev, &path, -1));
        }
        self.reply(conn, xid, self.last_zxid, ErrorCode::Ok, &[]);
    }

    // ----- timers ----------------------------------------------------------------------

    fn expire_sessions(&mut self) {
        let expired = self.sessions.expired(self.now());
        for id in expired {
            tracing::info!(session = format_args!("{id:#x}"), "session expired");
            self.write(id, 0, |p| Ok(p.close_session()));
            if let Some(conn) = self.session_conn.remove(&id) {
                self.close_conn(conn);
            }
        }
    }

    /// Java's ContainerManager: delete empty containers that once had children, and TTL nodes
    /// without children whose TTL has passed since their last modification.
    fn sweep_containers(&mut self) {
        let now = now_ms();
        let extended = self.config.extended_types_enabled();
        let never_used = self.config.max_never_used_interval_ms() as i64;
        let mut doomed = Vec::new();
        for path in self.tree.containers() {
            if let Some(n) = self.tree.node(&path) {
                let s = n.stat();
                if n.children().is_empty()
                    && (s.cversion > 0 || (never_used > 0 && now - s.mtime > never_used))
                {
                    doomed.push(path);
                }
            }
        }
        for path in self.tree.ttls() {
            if let Some(n) = self.tree.node(&path) {
                let s = n.stat();
                if let EphemeralKind::Ttl(ttl) = EphemeralKind::of(s.ephemeral_owner, extended) {
                    if n.children().is_empty() && now - s.mtime > ttl {
                        doomed.push(path);
                    }
                }
            }
        }
        doomed.truncate(self.config.container_max_per_minute() as usize);
        for path in doomed {
            let (zxid, res) = self.write(0, 0, |p| {
                p.prep(WriteRequest::DeleteContainer(path.clone()))
            });
            if !matches!(res, OpResult::Error(_)) {
                tracing::debug!(%path, zxid, "container/TTL node removed");
            }
        }
    }
}

#[cfg(test)]
mod sim;

/// Txns between snapshots: Java's `snapCount / 2 + random(snapCount / 2)`, so that the
/// servers of an ensemble do not all snapshot at once.
fn snapshot_threshold(snap_count: u64) -> u64 {
    let half = (snap_count.max(2) / 2).max(1);
    half + rand::random::<u64>() % half
}

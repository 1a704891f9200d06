//! The core's part in an ensemble: Zab's leader and learner duties, run on the same task that
//! owns the tree, so that a txn is proposed, logged, committed and applied in one order.
//!
//! * **Leader** (Java's `Leader` + `LearnerHandler` + `ProposalRequestProcessor`): discovery
//!   (FOLLOWERINFO → LEADERINFO → ACKEPOCH, epochs persisted), synchronisation (DIFF, TRUNC or
//!   SNAP chosen as Java chooses, then NEWLEADER and UPTODATE), broadcast (PROPOSAL to
//!   followers, commit on a quorum of ACKs, COMMIT to followers and INFORM to observers),
//!   PINGs with the learners' session touches, REVALIDATE and forwarded `sync`.
//!   The leader applies a txn to its tree as soon as it proposes it, and, as in standalone
//!   mode, nothing that reflects it leaves the server before it is committed.
//! * **Learner** (Java's `Learner`, `Follower`, `Observer`): the other half of each step; it
//!   forwards client writes as REQUEST and answers the client when the txn's COMMIT is
//!   applied, keeping each session's requests in order.
//!
//! Sockets are not here: the peer task (`quorum::peer`) moves packets between the network and
//! this code through [`QuorumMsg`].

use std::collections::{BTreeMap, BTreeSet, HashMap, VecDeque};
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use tokio::sync::{mpsc, oneshot};

use super::Core;
use crate::jute::records::Id;
use crate::jute::{ErrorCode, OpCode, Reader, Writer};
use crate::persist::epoch::{write_epoch, ACCEPTED_EPOCH, CURRENT_EPOCH};
use crate::persist::log_writer::{LogSettings, LogWriter};
use crate::persist::txnlog::LogEntry;
use crate::persist::{files::version_dir, snap_writer, truncate};
use crate::quorum::wire::{ptype, LearnerInfo, QuorumPacket, ZAB_PROTOCOL_VERSION};
use crate::quorum::zab::{self, LearnerRequest, ReceivedSnapshot};
use crate::quorum::Quorum;
use crate::request::apply::OpResult;
use crate::request::prep::WriteRequest;
use crate::request::txn::{Txn, TxnEntry};
use crate::tree::DataTree;
use crate::watch::ConnId;

/// Committed txns a leader keeps in memory to bring a learner up to date by DIFF
/// (`zookeeper.commitLogCount`).
const COMMIT_LOG_COUNT: usize = 500;
/// Packets queued for one learner before it is considered lost.
pub const LEARNER_QUEUE: usize = 65_536;

/// The zxid that opens `epoch`.
pub fn epoch_zxid(epoch: i64) -> i64 {
    epoch << 32
}

/// The epoch of a zxid.
pub fn epoch_of(zxid: i64) -> i64 {
    zxid >> 32
}

/// What the peer task tells the core.
pub enum QuorumMsg {
    /// The election is over and this server leads: start discovery.
    Lead,
    /// A learner connected to our quorum port; `out` carries bytes to it.
    LearnerUp {
        link: u64,
        out: mpsc::Sender<Bytes>,
    },
    FromLearner {
        link: u64,
        pkt: QuorumPacket,
    },
    LearnerDown {
        link: u64,
    },
    /// The election is over and this server follows (or observes) `leader`; the connection
    /// is open and `out` carries bytes to it.
    Follow {
        leader: i64,
        observer: bool,
        out: mpsc::Sender<Bytes>,
    },
    FromLeader(QuorumPacket),
    /// The leader's SNAP, already read off the socket into a tree.
    Snapshot {
        zxid: i64,
        snap: Box<ReceivedSnapshot>,
    },
    LeaderDown {
        why: String,
    },
    /// The inputs of this server's vote: (last zxid, currentEpoch).
    VoteInputs {
        reply: oneshot::Sender<(i64, i64)>,
    },
}

/// What the core tells the peer task.
#[derive(Debug)]
pub enum PeerEvent {
    /// The role is over (leader lost its quorum, the leader went away, a protocol error):
    /// back to LOOKING.
    RoleEnded { why: String },
    /// The ensemble is established in `epoch` (for the vote reported to late joiners).
    Established { epoch: i64 },
}

/// Ensemble settings and the epochs, held by the core of a quorum peer.
pub struct QuorumCtx {
    pub my_id: i64,
    pub quorum: Arc<dyn Quorum + Send + Sync>,
    /// The config text sent in NEWLEADER (Java's `QuorumVerifier.toString()`).
    pub config_text: String,
    pub tick: Duration,
    pub init_limit: u32,
    pub sync_limit: u32,
    pub accepted_epoch: i64,
    pub current_epoch: i64,
    pub events: mpsc::Sender<PeerEvent>,
    /// The last committed txns (zxid, PROPOSAL data), for DIFF.
    pub committed_log: VecDeque<(i64, Bytes)>,
}

/// What the server is in the ensemble.
pub enum Role {
    Standalone,
    /// Electing: no client is served.
    Looking,
    Leading(Box<Leading>),
    Learning(Box<Learning>),
}

impl Role {
    /// The `Mode:` of `srvr` / `stat`, and `zk_server_state`.
    pub fn mode(&self) -> &'static str {
        match self {
            Role::Standalone => "standalone",
            Role::Looking => "looking",
            Role::Leading(_) => "leader",
            Role::Learning(l) if l.observer => "observer",
            Role::Learning(_) => "follower",
        }
    }

    /// May clients be served?
    pub fn serving(&self) -> bool {
        match self {
            Role::Standalone => true,
            Role::Looking => false,
            Role::Leading(l) => l.phase == LeadPhase::Serving,
            Role::Learning(l) => l.phase == LearnPhase::Serving,
        }
    }
}

/// Where a leader is in Zab's phases; it serves clients only in the last.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LeadPhase {
    /// Collecting FOLLOWERINFO until a quorum proposes an epoch, then ACKEPOCHs.
    Discovery,
    /// Epoch agreed; learners are being synced; waiting for a quorum of NEWLEADER acks.
    Sync,
    Serving,
}

/// How far one learner has come through discovery and sync.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum LinkState {
    /// Connected; waiting for FOLLOWERINFO / OBSERVERINFO.
    New,
    /// LEADERINFO sent (or waiting for the epoch); waiting for ACKEPOCH.
    Info,
    /// ACKEPOCH in; waiting to be synced.
    WantsSync,
    /// Sync packets and NEWLEADER queued; waiting for its ack.
    Syncing,
    /// NEWLEADER acked; UPTODATE sent once the leader serves.
    Synced,
}

/// One learner connection, as the leader sees it.
struct Link {
    sid: i64,
    observer: bool,
    out: mpsc::Sender<Bytes>,
    state: LinkState,
    peer_zxid: i64,
    peer_epoch: i64,
    last_heard: Instant,
    /// Receives proposals and commits.
    forwarding: bool,
    uptodate_sent: bool,
}

/// A txn proposed and not yet committed.
struct Proposal {
    /// Participants that acked it.
    acks: BTreeSet<i64>,
    /// Its PROPOSAL data, sent again as INFORM to observers when it commits.
    data: Bytes,
    /// The tree digest after it (for the simulator's commit trace).
    digest: Option<i64>,
}

/// A leader's state.
pub struct Leading {
    pub phase: LeadPhase,
    new_epoch: Option<i64>,
    /// sid → acceptedEpoch of the participants that announced themselves (me included).
    connecting: BTreeMap<i64, i64>,
    epoch_acks: BTreeSet<i64>,
    newleader_acks: BTreeSet<i64>,
    links: BTreeMap<u64, Link>,
    /// Proposed, not yet committed: zxid → participants that acked it.
    outstanding: BTreeMap<i64, Proposal>,
    committed: i64,
    /// Forwarded `sync`s: (link, zxid that must commit first).
    pending_syncs: Vec<(u64, i64)>,
    deadline: Instant,
    /// Requests from learners that arrived while a learner was being synced.
    deferred: VecDeque<(u64, QuorumPacket)>,
}

impl Leading {
    /// The links whose (id, state) satisfy `pred`, collected so the caller may send to them.
    fn link_ids(&self, pred: impl Fn(u64, &Link) -> bool) -> Vec<u64> {
        self.links
            .iter()
            .filter(|(id, k)| pred(**id, k))
            .map(|(id, _)| *id)
            .collect()
    }

    /// Participants (me included) that have been heard from within syncLimit ticks.
    fn synced_voters(&self, me: i64, limit: Duration, now: Instant) -> BTreeSet<i64> {
        let mut s: BTreeSet<i64> = self
            .links
            .values()
            .filter(|l| l.forwarding && !l.observer && now.duration_since(l.last_heard) <= limit)
            .map(|l| l.sid)
            .collect();
        s.insert(me);
        s
    }

    /// Learners this server talks to (for `mntr`): (followers, synced followers, observers).
    pub fn counts(&self) -> (usize, usize, usize) {
        let f = self.links.values().filter(|l| !l.observer).count();
        let s = self
            .links
            .values()
            .filter(|l| !l.observer && l.state == LinkState::Synced)
            .count();
        let o = self.links.values().filter(|l| l.observer).count();
        (f, s, o)
    }

    pub fn pending_syncs(&self) -> usize {
        self.pending_syncs.len()
    }

    /// A one-line summary for logs and the simulator.
    pub fn describe(&self) -> String {
        let links: Vec<String> = self
            .links
            .iter()
            .map(|(id, k)| format!("{id}:sid{}:{:?}:fwd{}", k.sid, k.state, k.forwarding))
            .collect();
        format!(
            "phase={:?} epoch={:?} outstanding={} first={:?} committed={:#x} links={links:?}",
            self.phase,
            self.new_epoch,
            self.outstanding.len(),
            self.outstanding
                .iter()
                .next()
                .map(|(z, p)| (format!("{z:#x}"), p.acks.clone())),
            self.committed
        )
    }
}

/// Where a learner is in Zab's phases; it serves clients only in the last.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LearnPhase {
    /// FOLLOWERINFO sent; waiting for LEADERINFO.
    Handshake,
    /// ACKEPOCH sent; receiving DIFF/TRUNC/SNAP and the txns up to NEWLEADER and UPTODATE.
    Syncing,
    Serving,
}

/// A client request waiting on a learner for an earlier write of its session.
enum Waiting {
    /// Forwarded; answered when its txn commits here.
    Write { conn: ConnId, xid: i32, op: OpCode },
    /// Forwarded `sync`; answered when the leader's SYNC arrives.
    Sync {
        conn: ConnId,
        xid: i32,
        path: String,
    },
    /// A local request (read, ping, setWatches) that must not overtake the writes before it.
    Local {
        conn: ConnId,
        xid: i32,
        op: i32,
        body: Bytes,
        received: Instant,
    },
}

/// A learner's state.
pub struct Learning {
    pub leader: i64,
    pub observer: bool,
    pub phase: LearnPhase,
    out: mpsc::Sender<Bytes>,
    new_epoch: i64,
    /// Logged proposals waiting for COMMIT, in zxid order.
    not_committed: VecDeque<(LogEntry, Bytes)>,
    /// Logged proposals to ACK once the log has them on disk.
    unacked: VecDeque<i64>,
    /// NEWLEADER is acked once the log is durable up to this zxid.
    newleader_ack: Option<(i64, i64)>,
    /// Logged but not yet durable: the highest zxid handed to the log.
    last_logged: i64,
    queues: HashMap<i64, VecDeque<Waiting>>,
    pending_syncs: VecDeque<i64>,
    pending_connects: HashMap<i64, (ConnId, i32, bool)>,
    pending_revalidations: HashMap<i64, (ConnId, i32, bool)>,
}

impl Learning {
    pub fn pending_syncs(&self) -> usize {
        self.pending_syncs.len()
    }
}

fn packet(ptype: i32, zxid: i64, data: Option<Bytes>) -> Bytes {
    Bytes::from(QuorumPacket::new(ptype, zxid, data).encode())
}

fn int_data(v: i32) -> Bytes {
    Bytes::copy_from_slice(&v.to_be_bytes())
}

/// Is this opcode one a learner forwards to the leader (Java's `FollowerRequestProcessor`)?
pub fn is_forwarded(op: Option<OpCode>) -> bool {
    matches!(
        op,
        Some(
            OpCode::Create
                | OpCode::Create2
                | OpCode::CreateContainer
                | OpCode::CreateTtl
                | OpCode::Delete
                | OpCode::DeleteContainer
                | OpCode::SetData
                | OpCode::SetAcl
                | OpCode::Multi
                | OpCode::Reconfig
                | OpCode::CloseSession
                | OpCode::Sync
        )
    )
}

impl Core {
    fn qctx(&mut self) -> Option<&mut QuorumCtx> {
        self.quorum.as_mut()
    }

    /// The duration of `n` ticks.
    fn ticks(&self, n: u32) -> Duration {
        self.quorum
            .as_ref()
            .map(|q| q.tick.saturating_mul(n.max(1)))
            .unwrap_or(Duration::from_secs(10))
    }

    fn tell_peer(&self, ev: PeerEvent) {
        if let Some(q) = &self.quorum {
            if q.events.try_send(ev).is_err() {
                tracing::warn!("peer task is not listening");
            }
        }
    }

    /// Record a committed txn for DIFF syncs.
    pub(crate) fn remember_commit(&mut self, zxid: i64, data: Bytes) {
        if let Some(q) = self.qctx() {
            q.committed_log.push_back((zxid, data));
            while q.committed_log.len() > COMMIT_LOG_COUNT {
                q.committed_log.pop_front();
            }
        }
    }

    /// Turn this standalone core into a quorum peer: it starts LOOKING (serving no client)
    /// and session ids carry `my_id` in their top byte.
    pub fn enable_quorum(&mut self, ctx: QuorumCtx) {
        self.quorum = Some(ctx);
        self.sessions = self.session_tracker(&self.sessions.with_timeouts());
        self.role = Role::Looking;
        self.looking_since = self.now();
        self.init_config_node();
    }

    /// `/zookeeper/config` holds the ensemble's config text, version −1, as Java's
    /// `initConfigInZKDatabase` leaves it (at start and after every sync that replaced the
    /// tree). The node is outside the digest.
    fn init_config_node(&mut self) {
        let Some(q) = &self.quorum else { return };
        let text = Bytes::from(q.config_text.clone().into_bytes());
        let _ = self
            .tree
            .set_data("/zookeeper/config", Some(text), -1, 0, super::now_ms());
    }

    /// A learner waits to be synced, which happens when no proposal is in flight: the core
    /// stops taking new client requests until the pipeline drains (one round trip).
    pub(crate) fn draining_for_sync(&self) -> bool {
        matches!(&self.role, Role::Leading(l)
            if l.links.values().any(|k| k.state == LinkState::WantsSync))
    }

    /// The last zxid applied (for epoch checks at start-up).
    pub fn last_zxid(&self) -> i64 {
        self.last_zxid
    }

    pub fn handle_quorum(&mut self, msg: QuorumMsg) {
        match msg {
            QuorumMsg::VoteInputs { reply } => {
                let epoch = self.quorum.as_ref().map(|q| q.current_epoch).unwrap_or(0);
                let _ = reply.send((self.last_zxid, epoch));
            }
            QuorumMsg::Lead => self.start_leading(),
            QuorumMsg::LearnerUp { link, out } => {
                let now = self.now();
                if let Role::Leading(l) = &mut self.role {
                    l.links.insert(
                        link,
                        Link {
                            sid: -1,
                            observer: false,
                            out,
                            state: LinkState::New,
                            peer_zxid: 0,
                            peer_epoch: 0,
                            last_heard: now,
                            forwarding: false,
                            uptodate_sent: false,
                        },
                    );
                }
            }
            QuorumMsg::FromLearner { link, pkt } => self.on_learner_packet(link, pkt),
            QuorumMsg::LearnerDown { link } => {
                if let Role::Leading(l) = &mut self.role {
                    if let Some(gone) = l.links.remove(&link) {
                        tracing::info!(sid = gone.sid, "learner disconnected");
                    }
                }
            }
            QuorumMsg::Follow {
                leader,
                observer,
                out,
            } => self.start_learning(leader, observer, out),
            QuorumMsg::FromLeader(pkt) => self.on_leader_packet(pkt),
            QuorumMsg::Snapshot { zxid, snap } => self.snapshot_from_leader(zxid, *snap),
            QuorumMsg::LeaderDown { why } => {
                if matches!(self.role, Role::Learning(_)) {
                    self.step_down(&why);
                }
            }
        }
    }

    /// Leave the current role: close every client, settle the tree to what is logged, and
    /// tell the peer task to elect again.
    pub(crate) fn step_down(&mut self, why: &str) {
        if matches!(self.role, Role::Looking | Role::Standalone) {
            return;
        }
        tracing::warn!(
            mode = self.role.mode(),
            why,
            "leaving the role; back to LOOKING"
        );
        let role = std::mem::replace(&mut self.role, Role::Looking);
        // Whatever waited for a commit will not get one from this role.
        self.held.clear();
        self.close_all_clients();
        if let Role::Learning(l) = role {
            // Proposals we logged count as ours for the next election (Java fast-forwards
            // its database over the log the same way).
            for (e, data) in l.not_committed {
                if e.entry.header.zxid > self.last_zxid {
                    self.apply_logged(&e.entry);
                    // Part of this server's history now: a DIFF it sends as leader must
                    // include it.
                    self.remember_commit(e.entry.header.zxid, data);
                }
            }
        }
        self.released = self.last_zxid;
        self.looking_since = self.now();
        self.tell_peer(PeerEvent::RoleEnded {
            why: why.to_owned(),
        });
    }

    /// Apply a txn that is already logged (no proposal, no reply).
    fn apply_logged(&mut self, entry: &TxnEntry) -> OpResult {
        let (result, _) = self.apply_entry(entry);
        self.last_zxid = entry.header.zxid;
        self.maybe_snapshot(entry.header.zxid);
        result
    }

    /// Periodic duties: the leader pings and checks its quorum; everyone checks deadlines.
    pub(crate) fn quorum_tick(&mut self) {
        let now = self.now();
        if matches!(self.role, Role::Looking)
            && !self.read_only
            && self.config.read_only_mode_enabled()
            && now.duration_since(self.looking_since) >= self.ticks(1).max(Duration::from_secs(2))
        {
            self.set_read_only(true);
        }
        let sync_limit = self.ticks(self.quorum.as_ref().map(|q| q.sync_limit).unwrap_or(5));
        let me = self.quorum.as_ref().map(|q| q.my_id).unwrap_or(0);
        let quorum = match &self.quorum {
            Some(q) => q.quorum.clone(),
            None => return,
        };
        let Role::Leading(l) = &mut self.role else {
            return;
        };
        if l.phase != LeadPhase::Serving {
            if now > l.deadline {
                let phase = l.phase;
                self.step_down(&format!(
                    "no quorum of learners within initLimit during {phase:?}"
                ));
            }
            return;
        }
        let last_proposed = self.last_zxid;
        let ping = packet(ptype::PING, last_proposed, None);
        let mut lost = Vec::new();
        for (id, link) in &l.links {
            if link.state == LinkState::Synced && link.out.try_send(ping.clone()).is_err() {
                lost.push(*id);
            }
        }
        for id in lost {
            l.links.remove(&id);
        }
        let synced = l.synced_voters(me, sync_limit, now);
        if !quorum.contains_quorum(&synced) {
            self.step_down(&format!(
                "not sufficient followers synced, only synced with sids: {synced:?}"
            ));
        }
    }

    // ----- leader ---------------------------------------------------------------------

    fn start_leading(&mut self) {
        self.set_read_only(false);
        let Some(q) = &self.quorum else { return };
        let me = q.my_id;
        let accepted = q.accepted_epoch;
        let deadline = self.now() + self.ticks(q.init_limit);
        tracing::info!(
            zxid = format_args!("{:#x}", self.last_zxid),
            "LEADING: waiting for a quorum of followers"
        );
        let mut connecting = BTreeMap::new();
        connecting.insert(me, accepted);
        self.role = Role::Leading(Box::new(Leading {
            phase: LeadPhase::Discovery,
            new_epoch: None,
            connecting,
            epoch_acks: BTreeSet::new(),
            newleader_acks: BTreeSet::new(),
            links: BTreeMap::new(),
            outstanding: BTreeMap::new(),
            committed: self.last_zxid,
            pending_syncs: Vec::new(),
            deadline,
            deferred: VecDeque::new(),
        }));
    }

    fn send_to_link(&mut self, link: u64, bytes: Bytes) {
        let Role::Leading(l) = &mut self.role else {
            return;
        };
        let full = match l.links.get(&link) {
            Some(k) => k.out.try_send(bytes).is_err(),
            None => false,
        };
        if full {
            if let Some(k) = l.links.remove(&link) {
                tracing::warn!(
                    sid = k.sid,
                    "learner is not keeping up (queue full); dropping it"
                );
            }
        }
    }

    fn on_learner_packet(&mut self, link: u64, pkt: QuorumPacket) {
        let now = self.now();
        let Some(q) = &self.quorum else { return };
        let quorum = q.quorum.clone();
        let Role::Leading(l) = &mut self.role else {
            return;
        };
        let Some(k) = l.links.get_mut(&link) else {
            return;
        };
        k.last_heard = now;
        match pkt.ptype {
            ptype::FOLLOWERINFO | ptype::OBSERVERINFO => {
                let info = LearnerInfo::decode(pkt.data.as_deref().unwrap_or(&[]));
                k.sid = info.server_id;
                k.observer = pkt.ptype == ptype::OBSERVERINFO || !quorum.is_voter(info.server_id);
                k.state = LinkState::Info;
                let sid = k.sid;
                let observer = k.observer;
                tracing::info!(
                    sid,
                    observer,
                    accepted_epoch = epoch_of(pkt.zxid),
                    "learner announced itself"
                );
                // Of two links from one sid, the newer wins.
                let stale: Vec<u64> = l.link_ids(|id, k| id != link && k.sid == sid);
                for s in stale {
                    l.links.remove(&s);
                }
                let decided_before = l.new_epoch.is_some();
                if !observer && !decided_before {
                    l.connecting.insert(sid, epoch_of(pkt.zxid));
                }
                // Deciding the epoch sends LEADERINFO to everyone waiting, this one included.
                self.leader_progress();
                if let (Role::Leading(l), true) = (&self.role, decided_before) {
                    if let Some(e) = l.new_epoch {
                        self.send_to_link(
                            link,
                            packet(
                                ptype::LEADERINFO,
                                epoch_zxid(e),
                                Some(int_data(ZAB_PROTOCOL_VERSION)),
                            ),
                        );
                    }
                }
            }
            ptype::ACKEPOCH => {
                let epoch = pkt
                    .data
                    .as_deref()
                    .and_then(|d| d.get(..4))
                    .map(|b| i32::from_be_bytes([b[0], b[1], b[2], b[3]]) as i64)
                    .unwrap_or(-1);
                k.peer_zxid = pkt.zxid;
                k.peer_epoch = epoch;
                k.state = LinkState::WantsSync;
                let (sid, observer) = (k.sid, k.observer);
                let my_epoch = self.quorum.as_ref().map(|q| q.current_epoch).unwrap_or(0);
                if epoch != -1 && (epoch, pkt.zxid) > (my_epoch, self.last_zxid) {
                    self.step_down(&format!(
                        "follower {sid} is ahead of the leader (epoch {epoch}, zxid {:#x})",
                        pkt.zxid
                    ));
                    return;
                }
                if let Role::Leading(l) = &mut self.role {
                    if !observer && l.phase == LeadPhase::Discovery {
                        l.epoch_acks.insert(sid);
                    }
                }
                self.leader_progress();
            }
            ptype::ACK => {
                let (sid, state, observer) = (k.sid, k.state, k.observer);
                if state == LinkState::Syncing {
                    if Some(epoch_of(pkt.zxid)) == l.new_epoch && (pkt.zxid & 0xffff_ffff) == 0 {
                        k.state = LinkState::Synced;
                        if !observer {
                            l.newleader_acks.insert(sid);
                        }
                        tracing::info!(sid, "learner acked NEWLEADER");
                        self.leader_progress();
                    }
                    return;
                }
                if (pkt.zxid & 0xffff_ffff) == 0 || observer {
                    // The ack of UPTODATE, or an observer's.
                    return;
                }
                if let Some(p) = l.outstanding.get_mut(&pkt.zxid) {
                    p.acks.insert(sid);
                }
                self.try_commit();
            }
            ptype::PING => {
                if let Ok(touches) = zab::decode_touches(pkt.data.as_deref().unwrap_or(&[])) {
                    let now = self.now();
                    for (id, _) in touches {
                        self.sessions.touch(id, now);
                    }
                }
            }
            ptype::REVALIDATE => {
                let Ok((session, _timeout)) =
                    zab::decode_revalidate_request(pkt.data.as_deref().unwrap_or(&[]))
                else {
                    return;
                };
                let valid = self.sessions.touch(session, self.now());
                tracing::debug!(session = format_args!("{session:#x}"), valid, "revalidated");
                self.send_to_link(
                    link,
                    packet(
                        ptype::REVALIDATE,
                        -1,
                        Some(zab::encode_revalidate_reply(session, valid)),
                    ),
                );
            }
            ptype::REQUEST => {
                if l.phase != LeadPhase::Serving
                    || l.links.values().any(|k| k.state == LinkState::WantsSync)
                {
                    if l.deferred.len() < LEARNER_QUEUE {
                        l.deferred.push_back((link, pkt));
                    }
                    return;
                }
                self.learner_request(link, pkt);
            }
            other => {
                tracing::warn!(
                    ptype = crate::quorum::wire::ptype_name(other),
                    "unexpected packet from a learner"
                );
            }
        }
    }

    /// Advance discovery and sync as far as the learners heard so far allow.
    fn leader_progress(&mut self) {
        let Some(q) = &self.quorum else { return };
        let quorum = q.quorum.clone();
        let me = q.my_id;
        let data_dir = self.config.data_dir.clone();
        let Role::Leading(l) = &mut self.role else {
            return;
        };
        // Discovery: a quorum announced its accepted epochs.
        if l.new_epoch.is_none() {
            let ids: BTreeSet<i64> = l.connecting.keys().copied().collect();
            if !quorum.contains_quorum(&ids) {
                return;
            }
            let epoch = l.connecting.values().copied().max().unwrap_or(0) + 1;
            l.new_epoch = Some(epoch);
            l.epoch_acks.insert(me);
            if let Err(e) = write_epoch(&data_dir, ACCEPTED_EPOCH, epoch) {
                tracing::error!(error = %e, "cannot write acceptedEpoch");
                std::process::exit(2);
            }
            if let Some(q) = self.qctx() {
                q.accepted_epoch = epoch;
            }
            tracing::info!(epoch, "new epoch proposed");
            let Role::Leading(l) = &mut self.role else {
                return;
            };
            let info = packet(
                ptype::LEADERINFO,
                epoch_zxid(epoch),
                Some(int_data(ZAB_PROTOCOL_VERSION)),
            );
            let targets: Vec<u64> = l.link_ids(|_, k| k.state == LinkState::Info);
            for t in targets {
                self.send_to_link(t, info.clone());
            }
        }
        let Role::Leading(l) = &mut self.role else {
            return;
        };
        let Some(epoch) = l.new_epoch else { return };
        if l.phase == LeadPhase::Discovery {
            if !quorum.contains_quorum(&l.epoch_acks) {
                return;
            }
            l.phase = LeadPhase::Sync;
            l.newleader_acks.insert(me);
            if let Err(e) = write_epoch(&data_dir, CURRENT_EPOCH, epoch) {
                tracing::error!(error = %e, "cannot write currentEpoch");
                std::process::exit(2);
            }
            if let Some(q) = self.qctx() {
                q.current_epoch = epoch;
            }
            tracing::info!(epoch, "a quorum acked the epoch; syncing learners");
        }
        // Sync every learner that is waiting, when no proposal is in flight (so that the
        // tree we send is exactly the committed state).
        let Role::Leading(l) = &mut self.role else {
            return;
        };
        if l.outstanding.is_empty() {
            let waiting: Vec<u64> = l.link_ids(|_, k| k.state == LinkState::WantsSync);
            for link in waiting {
                self.sync_learner(link, epoch);
            }
        }
        let Role::Leading(l) = &mut self.role else {
            return;
        };
        if l.phase == LeadPhase::Sync && quorum.contains_quorum(&l.newleader_acks) {
            self.establish(epoch);
        }
        let Role::Leading(l) = &mut self.role else {
            return;
        };
        if l.phase == LeadPhase::Serving {
            let up = packet(ptype::UPTODATE, -1, None);
            let ready: Vec<u64> =
                l.link_ids(|_, k| k.state == LinkState::Synced && !k.uptodate_sent);
            for id in &ready {
                if let Some(k) = l.links.get_mut(id) {
                    k.uptodate_sent = true;
                }
            }
            let deferred: Vec<(u64, QuorumPacket)> =
                if !l.links.values().any(|k| k.state == LinkState::WantsSync) {
                    l.deferred.drain(..).collect()
                } else {
                    Vec::new()
                };
            for id in ready {
                self.send_to_link(id, up.clone());
            }
            for (link, pkt) in deferred {
                self.learner_request(link, pkt);
            }
        }
    }

    /// Queue what brings one learner up to date (DIFF, TRUNC or SNAP, then the txns it
    /// lacks), then NEWLEADER; from here on it receives every proposal.
    fn sync_learner(&mut self, link: u64, epoch: i64) {
        let Some(q) = &self.quorum else { return };
        let config_text = q.config_text.clone();
        let mut log: Vec<(i64, Bytes)> = q.committed_log.iter().cloned().collect();
        let last = self.last_zxid;
        let peer = match &self.role {
            Role::Leading(l) => match l.links.get(&link) {
                Some(k) => k.peer_zxid,
                None => return,
            },
            _ => return,
        };
        // A learner further behind than the txns kept in memory: read the gap from the txn
        // log on disk when that is much smaller than a snapshot (Java's snapshotSizeFactor).
        let first = log.first().map(|e| e.0).unwrap_or(last);
        if peer > 0 && peer < first {
            // With txns in memory, the disk must reach the first of them (proving there is
            // no gap); without, it must reach the last txn applied.
            let until = match log.first() {
                Some(e) => Some(e.0),
                None if last & 0xffff_ffff != 0 => Some(last),
                None => None,
            };
            if let Some(mut older) = self.disk_history(peer, until) {
                if !log.is_empty() {
                    older.pop();
                }
                older.append(&mut log);
                log = older;
            }
        }
        let Role::Leading(l) = &mut self.role else {
            return;
        };
        let Some(k) = l.links.get_mut(&link) else {
            return;
        };
        let sid = k.sid;
        let min = log.first().map(|e| e.0).unwrap_or(last);
        let max = log.last().map(|e| e.0).unwrap_or(last);
        let new_epoch_zxid = peer & 0xffff_ffff == 0;
        let mut packets: Vec<Bytes> = Vec::new();
        let mut snap = false;
        let mut mode = "DIFF";
        if peer == last {
            packets.push(packet(ptype::DIFF, peer, None));
        } else if peer > max && !new_epoch_zxid {
            mode = "TRUNC";
            packets.push(packet(ptype::TRUNC, max, None));
        } else if !log.is_empty() && min <= peer && peer <= max {
            // Walk the committed log: DIFF from the peer's zxid if we have it, TRUNC back
            // to the last txn we share if the peer has one we never committed in the same
            // epoch, SNAP if its history forked in another epoch.
            let mut prev = None;
            let mut start = None;
            for (i, (z, _)) in log.iter().enumerate() {
                if *z == peer {
                    start = Some(i + 1);
                    packets.push(packet(ptype::DIFF, max, None));
                    break;
                }
                if *z > peer {
                    if new_epoch_zxid {
                        packets.push(packet(ptype::DIFF, max, None));
                    } else if epoch_of(*z) == epoch_of(peer) {
                        match prev {
                            Some(p) => {
                                mode = "TRUNC+DIFF";
                                packets.push(packet(ptype::TRUNC, p, None));
                            }
                            None => snap = true,
                        }
                    } else {
                        snap = true;
                    }
                    start = Some(i);
                    break;
                }
                prev = Some(*z);
            }
            if !snap {
                for (z, data) in &log[start.unwrap_or(log.len())..] {
                    packets.push(packet(ptype::PROPOSAL, *z, Some(data.clone())));
                    packets.push(packet(ptype::COMMIT, *z, None));
                }
            }
        } else {
            snap = true;
        }
        if snap {
            mode = "SNAP";
            packets.clear();
            let sessions = self.sessions.with_timeouts();
            let mut bytes = QuorumPacket::new(ptype::SNAP, last, None).encode();
            bytes.extend_from_slice(&zab::encode_snapshot_stream(&self.tree, &sessions));
            packets.push(Bytes::from(bytes));
        }
        packets.push(packet(
            ptype::NEWLEADER,
            epoch_zxid(epoch),
            Some(Bytes::from(config_text.into_bytes())),
        ));
        tracing::info!(
            sid,
            mode,
            peer_zxid = format_args!("{peer:#x}"),
            leader_zxid = format_args!("{last:#x}"),
            "syncing learner"
        );
        let Role::Leading(l) = &mut self.role else {
            return;
        };
        if let Some(k) = l.links.get_mut(&link) {
            k.state = LinkState::Syncing;
            k.forwarding = true;
        }
        for p in packets {
            self.send_to_link(link, p);
        }
    }

    /// The logged txns with zxid in `[from, until]` (to the end of the log if `until` is
    /// None), as PROPOSAL data, if the log on disk holds both ends and the range is smaller
    /// than a third of the tree.
    fn disk_history(&self, from: i64, until: Option<i64>) -> Option<Vec<(i64, Bytes)>> {
        let budget = (self.tree.approximate_data_size() / 3).max(1 << 20) as usize;
        let dir = version_dir(&self.config.data_log_dir);
        let logs = crate::persist::files::list(&dir, "log").ok()?;
        let start = logs.iter().rposition(|(z, _)| *z <= from)?;
        let mut out = Vec::new();
        let mut bytes = 0usize;
        for (_, path) in &logs[start..] {
            let raw = std::fs::read(path).ok()?;
            let (entries, _) = crate::persist::txnlog::read_log(&raw).ok()?;
            for e in entries {
                let z = e.entry.header.zxid;
                if z < from {
                    continue;
                }
                if until.is_some_and(|u| z > u) {
                    break;
                }
                let data = zab::encode_txn_data(&e.entry, e.digest);
                bytes += data.len();
                if bytes > budget {
                    return None;
                }
                out.push((z, data));
            }
        }
        // Only useful if it starts at the learner's own last txn and reaches the first txn
        // kept in memory (which proves there is no gap between the two).
        if out.first().map(|e| e.0) != Some(from)
            || until.is_some_and(|u| out.last().map(|e| e.0) != Some(u))
        {
            return None;
        }
        Some(out)
    }

    /// A quorum acked NEWLEADER: start serving clients in the new epoch.
    fn establish(&mut self, epoch: i64) {
        let Role::Leading(l) = &mut self.role else {
            return;
        };
        l.phase = LeadPhase::Serving;
        let z = epoch_zxid(epoch).max(self.last_zxid);
        self.last_zxid = z;
        l.committed = z;
        self.released = z;
        // No txn lies between what the log holds and the epoch's opening zxid.
        self.synced = self.synced.max(z);
        // Every session starts a fresh timeout under the new leader.
        let now = self.now();
        for (id, timeout) in self.sessions.with_timeouts() {
            self.sessions.add_session(id, timeout, now);
        }
        tracing::info!(
            epoch,
            zxid = format_args!("{z:#x}"),
            "a quorum acked NEWLEADER; serving as leader"
        );
        self.tell_peer(PeerEvent::Established { epoch });
    }

    /// Send a new txn to the followers; it commits when a quorum has logged it.
    pub(crate) fn propose(&mut self, zxid: i64, data: Bytes, digest: Option<i64>) {
        let Role::Leading(l) = &mut self.role else {
            return;
        };
        let p = packet(ptype::PROPOSAL, zxid, Some(data.clone()));
        l.outstanding.insert(
            zxid,
            Proposal {
                acks: BTreeSet::new(),
                data,
                digest,
            },
        );
        let targets: Vec<u64> = l.link_ids(|_, k| k.forwarding && !k.observer);
        for t in targets {
            self.send_to_link(t, p.clone());
        }
    }

    pub(crate) fn leader_synced(&mut self) {
        self.try_commit();
    }

    /// Commit, in zxid order, every proposal a quorum (counting this server once its own log
    /// has it) has acked.
    fn try_commit(&mut self) {
        let Some(q) = &self.quorum else { return };
        let quorum = q.quorum.clone();
        let me = q.my_id;
        let synced = self.synced;
        let mut commits = Vec::new();
        {
            let Role::Leading(l) = &mut self.role else {
                return;
            };
            while let Some((&zxid, p)) = l.outstanding.iter().next() {
                let mut set = p.acks.clone();
                if synced >= zxid {
                    set.insert(me);
                }
                if !quorum.contains_quorum(&set) {
                    break;
                }
                if let Some(p) = l.outstanding.remove(&zxid) {
                    commits.push((zxid, p));
                }
                l.committed = zxid;
            }
        }
        if commits.is_empty() {
            return;
        }
        if let Some(t) = self.commit_trace.as_mut() {
            t.extend(commits.iter().map(|(z, p)| (*z, p.digest)));
        }
        let Role::Leading(l) = &mut self.role else {
            return;
        };
        let mut sends: Vec<(u64, Bytes)> = Vec::new();
        for (zxid, p) in commits {
            let commit = packet(ptype::COMMIT, zxid, None);
            let inform = packet(ptype::INFORM, zxid, Some(p.data));
            for (id, k) in &l.links {
                if k.forwarding {
                    let b = if k.observer { &inform } else { &commit };
                    sends.push((*id, b.clone()));
                }
            }
        }
        let committed = l.committed;
        let no_outstanding = l.outstanding.is_empty();
        let mut syncs = Vec::new();
        l.pending_syncs.retain(|(link, z)| {
            if *z <= committed {
                syncs.push(*link);
                false
            } else {
                true
            }
        });
        for (id, b) in sends {
            self.send_to_link(id, b);
        }
        for link in syncs {
            self.send_to_link(link, packet(ptype::SYNC, 0, None));
        }
        self.release(committed);
        if no_outstanding {
            // Learners that waited for the pipeline to drain can be synced now.
            self.leader_progress();
        }
    }

    /// A client request a learner forwarded.
    fn learner_request(&mut self, link: u64, pkt: QuorumPacket) {
        let Ok(req) = LearnerRequest::decode(pkt.data.as_deref().unwrap_or(&[])) else {
            tracing::warn!("undecodable REQUEST from a learner");
            return;
        };
        let ids: Vec<Id> = pkt.auth.clone();
        let session = req.session_id;
        let cxid = req.cxid;
        let op = OpCode::from_i32(req.op);
        let mut r = Reader::new(&req.body);
        // Java's LeaderSessionTracker: with local sessions on, a session another server
        // created locally is unknown here and still valid.
        let my_id = self.quorum.as_ref().map(|q| q.my_id).unwrap_or(0);
        let foreign_local = self.config.local_sessions_enabled() && (session >> 56) != my_id;
        match op {
            Some(OpCode::CreateSession) => {
                let timeout = r.read_i32().unwrap_or(self.config.min_session_timeout);
                self.write_as(session, cxid, &ids, |_| Ok(Txn::CreateSession { timeout }));
            }
            Some(OpCode::CloseSession) => {
                // Always a txn, even for a session already gone: the learner answers its
                // client when it commits.
                self.write_as(session, cxid, &ids, |p| Ok(p.close_session()));
            }
            Some(OpCode::Sync) => {
                let Role::Leading(l) = &mut self.role else {
                    return;
                };
                match l.outstanding.keys().next_back() {
                    None => self.send_to_link(link, packet(ptype::SYNC, 0, None)),
                    Some(&z) => l.pending_syncs.push((link, z)),
                }
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
                let live = self.sessions.touch(session, self.now()) || foreign_local;
                let decoded = WriteRequest::decode(op, &mut r);
                self.write_as(session, cxid, &ids, |p| {
                    if !live {
                        return Err(ErrorCode::SessionExpired);
                    }
                    match decoded {
                        Ok(req) => p.prep(req),
                        Err(_) => Err(ErrorCode::MarshallingError),
                    }
                });
            }
            Some(OpCode::Multi) => {
                let live = self.sessions.touch(session, self.now()) || foreign_local;
                let decoded = WriteRequest::decode_multi(&mut r);
                self.write_as(session, cxid, &ids, |p| {
                    if !live {
                        return Err(ErrorCode::SessionExpired);
                    }
                    match decoded {
                        Ok(ops) => Ok(p.prep_multi(ops)),
                        Err(_) => Err(ErrorCode::MarshallingError),
                    }
                });
            }
            Some(OpCode::Reconfig) => {
                let err = if self.config.reconfig_enabled {
                    ErrorCode::Unimplemented
                } else {
                    ErrorCode::ReconfigDisabled
                };
                self.write_as(session, cxid, &ids, |_| Err(err));
            }
            _ => tracing::warn!(
                op = req.op,
                "learner forwarded an opcode that is not a write"
            ),
        }
    }

    // ----- learner --------------------------------------------------------------------

    fn start_learning(&mut self, leader: i64, observer: bool, out: mpsc::Sender<Bytes>) {
        self.set_read_only(false);
        let Some(q) = &self.quorum else { return };
        let info = LearnerInfo {
            server_id: q.my_id,
            protocol_version: ZAB_PROTOCOL_VERSION,
            config_version: 0,
        };
        let ptype = if observer {
            ptype::OBSERVERINFO
        } else {
            ptype::FOLLOWERINFO
        };
        let hello = packet(
            ptype,
            epoch_zxid(q.accepted_epoch),
            Some(Bytes::from(info.encode())),
        );
        tracing::info!(leader, observer, "connected to the leader; registering");
        let _ = out.try_send(hello);
        self.role = Role::Learning(Box::new(Learning {
            leader,
            observer,
            phase: LearnPhase::Handshake,
            out,
            new_epoch: 0,
            not_committed: VecDeque::new(),
            unacked: VecDeque::new(),
            newleader_ack: None,
            last_logged: self.last_zxid,
            queues: HashMap::new(),
            pending_syncs: VecDeque::new(),
            pending_connects: HashMap::new(),
            pending_revalidations: HashMap::new(),
        }));
    }

    fn send_to_leader(&mut self, bytes: Bytes) {
        let Role::Learning(l) = &mut self.role else {
            return;
        };
        if l.out.try_send(bytes).is_err() {
            self.step_down("connection to the leader is not draining");
        }
    }

    fn on_leader_packet(&mut self, pkt: QuorumPacket) {
        let data_dir = self.config.data_dir.clone();
        let Role::Learning(l) = &mut self.role else {
            return;
        };
        match pkt.ptype {
            ptype::LEADERINFO if l.phase == LearnPhase::Handshake => {
                let new_epoch = epoch_of(pkt.zxid);
                let Some(q) = self.quorum.as_mut() else {
                    return;
                };
                let reply_epoch = if new_epoch > q.accepted_epoch {
                    if let Err(e) = write_epoch(&data_dir, ACCEPTED_EPOCH, new_epoch) {
                        tracing::error!(error = %e, "cannot write acceptedEpoch");
                        std::process::exit(2);
                    }
                    q.accepted_epoch = new_epoch;
                    q.current_epoch as i32
                } else if new_epoch == q.accepted_epoch {
                    -1
                } else {
                    let why = format!(
                        "leader's epoch {new_epoch} is older than our accepted epoch {}",
                        q.accepted_epoch
                    );
                    self.step_down(&why);
                    return;
                };
                l.new_epoch = new_epoch;
                l.phase = LearnPhase::Syncing;
                let ack = packet(ptype::ACKEPOCH, self.last_zxid, Some(int_data(reply_epoch)));
                self.send_to_leader(ack);
            }
            ptype::DIFF if l.phase == LearnPhase::Syncing => {
                tracing::info!(zxid = format_args!("{:#x}", pkt.zxid), "sync by DIFF");
            }
            ptype::TRUNC if l.phase == LearnPhase::Syncing => {
                tracing::warn!(
                    zxid = format_args!("{:#x}", pkt.zxid),
                    "sync by TRUNC: truncating the log"
                );
                if let Err(e) = self.truncate_to(pkt.zxid) {
                    self.step_down(&format!("cannot truncate to {:#x}: {e}", pkt.zxid));
                }
            }
            ptype::PROPOSAL => {
                let data = pkt.data.unwrap_or_default();
                let Ok(e) = zab::decode_txn_data(&data) else {
                    self.step_down("undecodable PROPOSAL");
                    return;
                };
                let zxid = e.entry.header.zxid;
                if zxid <= l.last_logged {
                    return;
                }
                l.last_logged = zxid;
                if l.phase == LearnPhase::Serving && !l.observer {
                    l.unacked.push_back(zxid);
                }
                self.log.send(crate::persist::log_writer::LogCmd::Append(
                    e.entry.clone(),
                    e.digest,
                ));
                let Role::Learning(l) = &mut self.role else {
                    return;
                };
                l.not_committed.push_back((e, data));
            }
            ptype::COMMIT => {
                let front = l.not_committed.front().map(|e| e.0.entry.header.zxid);
                match front {
                    Some(z) if z == pkt.zxid => {
                        if let Some((e, data)) = l.not_committed.pop_front() {
                            self.remember_commit(pkt.zxid, data);
                            self.commit_here(&e.entry, e.digest);
                        }
                    }
                    _ if pkt.zxid <= self.last_zxid => {}
                    other => {
                        let why = format!(
                            "COMMIT {:#x} but the next proposal is {:?}",
                            pkt.zxid,
                            other.map(|z| format!("{z:#x}"))
                        );
                        self.step_down(&why);
                    }
                }
            }
            ptype::INFORM => {
                let data = pkt.data.unwrap_or_default();
                let Ok(e) = zab::decode_txn_data(&data) else {
                    self.step_down("undecodable INFORM");
                    return;
                };
                let zxid = e.entry.header.zxid;
                if zxid <= self.last_zxid {
                    return;
                }
                l.last_logged = l.last_logged.max(zxid);
                self.log.send(crate::persist::log_writer::LogCmd::Append(
                    e.entry.clone(),
                    e.digest,
                ));
                self.remember_commit(zxid, data);
                self.commit_here(&e.entry, e.digest);
            }
            ptype::NEWLEADER if l.phase == LearnPhase::Syncing => {
                // Acked once the log holds everything before it (see learner_synced).
                l.newleader_ack = Some((l.last_logged, pkt.zxid));
                self.learner_synced();
            }
            ptype::UPTODATE if l.phase == LearnPhase::Syncing => {
                l.phase = LearnPhase::Serving;
                let epoch = l.new_epoch;
                if !l.observer {
                    let pending: Vec<i64> = l
                        .not_committed
                        .iter()
                        .map(|e| e.0.entry.header.zxid)
                        .collect();
                    l.unacked.extend(pending);
                }
                tracing::info!(epoch, "UPTODATE: serving clients");
                self.send_to_leader(packet(ptype::ACK, epoch_zxid(epoch), None));
                self.learner_synced();
                self.tell_peer(PeerEvent::Established { epoch });
            }
            ptype::PING => {
                let touches: Vec<(i64, i32)> = self
                    .conns
                    .values()
                    .filter(|c| c.session_id != 0)
                    .map(|c| (c.session_id, c.timeout))
                    .collect();
                let reply = QuorumPacket {
                    ptype: ptype::PING,
                    zxid: pkt.zxid,
                    data: Some(zab::encode_touches(&touches)),
                    auth: pkt.auth,
                };
                self.send_to_leader(Bytes::from(reply.encode()));
            }
            ptype::REVALIDATE => {
                if let Ok((session, valid)) =
                    zab::decode_revalidate_reply(pkt.data.as_deref().unwrap_or(&[]))
                {
                    if let Some((conn, timeout, ro)) = l.pending_revalidations.remove(&session) {
                        self.finish_connect(conn, session, timeout, ro, valid);
                    }
                }
            }
            ptype::SYNC => {
                if let Some(session) = l.pending_syncs.pop_front() {
                    self.sync_done(session);
                }
            }
            other => {
                tracing::warn!(
                    ptype = crate::quorum::wire::ptype_name(other),
                    phase = ?l.phase,
                    "unexpected packet from the leader"
                );
            }
        }
    }

    /// The log is durable further: ACK what it now holds.
    pub(crate) fn learner_synced(&mut self) {
        let synced = self.synced;
        let data_dir = self.config.data_dir.clone();
        let Role::Learning(l) = &mut self.role else {
            return;
        };
        let mut out = Vec::new();
        if let Some((need, z)) = l.newleader_ack {
            if synced >= need {
                l.newleader_ack = None;
                let epoch = l.new_epoch;
                if let Err(e) = write_epoch(&data_dir, CURRENT_EPOCH, epoch) {
                    tracing::error!(error = %e, "cannot write currentEpoch");
                    std::process::exit(2);
                }
                if let Some(q) = self.quorum.as_mut() {
                    q.current_epoch = epoch;
                }
                out.push(packet(ptype::ACK, z, None));
            }
        }
        let Role::Learning(l) = &mut self.role else {
            return;
        };
        if l.phase == LearnPhase::Serving {
            while let Some(&z) = l.unacked.front() {
                if z > synced {
                    break;
                }
                l.unacked.pop_front();
                out.push(packet(ptype::ACK, z, None));
            }
        }
        for b in out {
            self.send_to_leader(b);
        }
    }

    /// Replace the tree with the leader's snapshot, and make it durable at once (the log
    /// has nothing that leads up to it).
    fn snapshot_from_leader(&mut self, zxid: i64, snap: ReceivedSnapshot) {
        if !matches!(&self.role, Role::Learning(l) if l.phase == LearnPhase::Syncing) {
            return;
        }
        tracing::info!(
            zxid = format_args!("{zxid:#x}"),
            nodes = snap.tree.node_count(),
            "sync by SNAP"
        );
        let ReceivedSnapshot { sessions, tree } = snap;
        self.install_state(tree, &sessions, zxid);
        if let Err(e) = self.reset_storage(zxid, sessions) {
            self.step_down(&format!("cannot store the leader's snapshot: {e}"));
        }
    }

    /// Replace the tree and the sessions wholesale (a SNAP from the leader, or a reload
    /// after TRUNC): watches start over, and txns remembered for DIFF belong to the history
    /// that was replaced.
    fn install_state(&mut self, mut tree: DataTree, sessions: &[(i64, i32)], zxid: i64) {
        // A snapshot of the old tree must not land after the storage is reset.
        self.snapshots
            .cancel(&mut self.tree, std::time::Duration::from_secs(10));
        tree.set_extended_types(self.config.extended_types_enabled());
        self.tree = tree;
        self.watches = crate::watch::WatchManager::new();
        self.sessions = self.session_tracker(sessions);
        self.last_zxid = zxid;
        self.released = zxid;
        if let Some(q) = self.quorum.as_mut() {
            q.committed_log.clear();
        }
        self.init_config_node();
        if let Role::Learning(l) = &mut self.role {
            l.last_logged = zxid;
        }
    }

    /// A session tracker holding `sessions` from now on, its new ids carrying this
    /// server's id in their top byte.
    fn session_tracker(&self, sessions: &[(i64, i32)]) -> crate::session::SessionTracker {
        let now = self.now();
        let my_id = self.quorum.as_ref().map(|q| q.my_id).unwrap_or(1);
        let mut tracker =
            crate::session::SessionTracker::new(my_id, self.config.tick_time as u64, now);
        for (id, t) in sessions {
            tracker.add_session(*id, *t, now);
        }
        tracker
    }

    /// Restart the log after a snapshot received from the leader.
    fn reset_storage(&mut self, zxid: i64, sessions: Vec<(i64, i32)>) -> std::io::Result<()> {
        self.log.close();
        let snap_dir = version_dir(&self.config.data_dir);
        let compression =
            crate::persist::compress::Compression::from_setting(self.config.snapshot_compression());
        snap_writer::write_now(
            &snap_dir,
            compression,
            &self.tree,
            sessions,
            zxid,
            self.config.digest_enabled(),
        )?;
        truncate::remove_logs(&self.config.data_log_dir)?;
        self.restart_log(zxid)
    }

    fn restart_log(&mut self, zxid: i64) -> std::io::Result<()> {
        let settings = LogSettings {
            dir: version_dir(&self.config.data_log_dir),
            prealloc: self.config.pre_alloc_size_kb.saturating_mul(1024),
            force_sync: self.config.force_sync,
        };
        self.log = if self.log.is_inline() {
            LogWriter::start_inline(settings, zxid)?
        } else {
            LogWriter::start(settings, zxid)?
        };
        self.snapshots.set_synced(self.log.synced_shared.clone());
        self.synced = zxid;
        self.synced_changed = true;
        Ok(())
    }

    /// TRUNC: drop logged txns after `zxid` and reload the tree from disk.
    fn truncate_to(&mut self, zxid: i64) -> Result<(), String> {
        self.log.close();
        // Before the files above `zxid` go: a snapshot being written could put one back.
        self.snapshots
            .cancel(&mut self.tree, std::time::Duration::from_secs(10));
        truncate::truncate_after(&self.config.data_dir, &self.config.data_log_dir, zxid)
            .map_err(|e| e.to_string())?;
        let restored = super::recover_data(&self.config, true).map_err(|e| e.to_string())?;
        let sessions: Vec<(i64, i32)> = restored.sessions.into_iter().collect();
        self.install_state(restored.tree, &sessions, restored.zxid);
        self.restart_log(restored.zxid).map_err(|e| e.to_string())
    }

    /// Apply a committed txn on a learner and answer the local client that asked for it.
    fn commit_here(&mut self, entry: &TxnEntry, stated: Option<(i32, i64)>) {
        let result = self.apply_logged(entry);
        let computed = self.tree.digest() as i64;
        if let Some((_, d)) = stated {
            if d != computed && self.config.digest_enabled() {
                // Java logs this and counts it; so do we. The simulator fails on it.
                tracing::error!(
                    zxid = format_args!("{:#x}", entry.header.zxid),
                    leader = d,
                    ours = computed,
                    "digest mismatch after applying a committed txn"
                );
            }
        }
        if let Some(t) = self.commit_trace.as_mut() {
            t.push((entry.header.zxid, Some(computed)));
        }
        let session = entry.header.client_id;
        let zxid = entry.header.zxid;
        match &entry.txn {
            Txn::CreateSession { timeout } => {
                let pending = match &mut self.role {
                    Role::Learning(l) => l.pending_connects.remove(&session),
                    _ => None,
                };
                if let Some((conn, _, ro)) = pending {
                    self.finish_connect(conn, session, *timeout, ro, true);
                }
                return;
            }
            Txn::CloseSession { .. } => {
                // Expired by the leader, or closed by its client: either way its connection
                // here ends.
                let waiting = self.pop_write(session, entry.header.cxid);
                if let Some((conn, xid, _)) = waiting {
                    self.reply(conn, xid, zxid, ErrorCode::Ok, &[]);
                }
                if let Some(conn) = self.session_conn.remove(&session) {
                    self.close_conn(conn);
                }
                if let Role::Learning(l) = &mut self.role {
                    l.queues.remove(&session);
                }
                return;
            }
            _ => {}
        }
        if let Some((conn, xid, op)) = self.pop_write(session, entry.header.cxid) {
            self.write_reply(conn, xid, op, zxid, &result);
            self.drain_session(session);
        }
    }

    /// The head of a session's queue, if it is the write with this cxid.
    fn pop_write(&mut self, session: i64, cxid: i32) -> Option<(ConnId, i32, OpCode)> {
        let Role::Learning(l) = &mut self.role else {
            return None;
        };
        let q = l.queues.get_mut(&session)?;
        match q.front() {
            Some(Waiting::Write { xid, .. }) if *xid == cxid => {}
            _ => return None,
        }
        match q.pop_front() {
            Some(Waiting::Write { conn, xid, op }) => Some((conn, xid, op)),
            _ => None,
        }
    }

    fn sync_done(&mut self, session: i64) {
        let item = match &mut self.role {
            Role::Learning(l) => l.queues.get_mut(&session).and_then(|q| match q.front() {
                Some(Waiting::Sync { .. }) => q.pop_front(),
                _ => None,
            }),
            _ => None,
        };
        if let Some(Waiting::Sync { conn, xid, path }) = item {
            let mut w = Writer::new();
            w.ustring(&path);
            let zxid = self.last_zxid;
            self.reply(conn, xid, zxid, ErrorCode::Ok, &w.buf);
        }
        self.drain_session(session);
    }

    /// Run the local requests at the head of a session's queue, up to its next write.
    fn drain_session(&mut self, session: i64) {
        loop {
            let item = match &mut self.role {
                Role::Learning(l) => {
                    let Some(q) = l.queues.get_mut(&session) else {
                        return;
                    };
                    match q.front() {
                        Some(Waiting::Local { .. }) => q.pop_front(),
                        None => {
                            l.queues.remove(&session);
                            return;
                        }
                        _ => return,
                    }
                }
                _ => return,
            };
            if let Some(Waiting::Local {
                conn,
                xid,
                op,
                body,
                received,
            }) = item
            {
                self.local_packet(conn, xid, op, &body, received);
            }
        }
    }

    /// A learner's handling of a client request: writes go to the leader; anything else
    /// runs here, after the session's earlier writes. Returns false if the request is the
    /// caller's to run now.
    pub(crate) fn learner_packet(
        &mut self,
        conn: ConnId,
        session: i64,
        xid: i32,
        op_raw: i32,
        body: &[u8],
        received: Instant,
    ) -> bool {
        let op = OpCode::from_i32(op_raw);
        let ids = self
            .conns
            .get(&conn)
            .map(|c| c.ids.clone())
            .unwrap_or_default();
        let Role::Learning(l) = &mut self.role else {
            return false;
        };
        if is_forwarded(op) {
            let op = op.unwrap_or(OpCode::Create);
            let q = l.queues.entry(session).or_default();
            if op == OpCode::Sync {
                let path = Reader::new(body).read_ustring().unwrap_or_default();
                q.push_back(Waiting::Sync { conn, xid, path });
                l.pending_syncs.push_back(session);
            } else {
                q.push_back(Waiting::Write { conn, xid, op });
            }
            let req = LearnerRequest {
                session_id: session,
                cxid: xid,
                op: op_raw,
                body: Bytes::copy_from_slice(body),
            };
            let pkt = QuorumPacket {
                ptype: ptype::REQUEST,
                zxid: -1,
                data: Some(req.encode()),
                auth: ids,
            };
            self.send_to_leader(Bytes::from(pkt.encode()));
            return true;
        }
        match l.queues.get_mut(&session) {
            Some(q) if !q.is_empty() => {
                q.push_back(Waiting::Local {
                    conn,
                    xid,
                    op: op_raw,
                    body: Bytes::copy_from_slice(body),
                    received,
                });
                true
            }
            _ => false,
        }
    }

    /// A learner's connect: a new session is created through the leader; a reconnect is
    /// revalidated with it. The ConnectResponse goes out when the leader answers.
    pub(crate) fn learner_connect(
        &mut self,
        conn: ConnId,
        session_id: i64,
        passwd_ok: bool,
        timeout: i32,
        has_ro: bool,
    ) {
        if session_id == 0 {
            let id = self.sessions.next_session_id();
            let Role::Learning(l) = &mut self.role else {
                return;
            };
            l.pending_connects.insert(id, (conn, timeout, has_ro));
            let req = LearnerRequest {
                session_id: id,
                cxid: 0,
                op: OpCode::CreateSession as i32,
                body: int_data(timeout),
            };
            let ids = self
                .conns
                .get(&conn)
                .map(|c| c.ids.clone())
                .unwrap_or_default();
            let pkt = QuorumPacket {
                ptype: ptype::REQUEST,
                zxid: -1,
                data: Some(req.encode()),
                auth: ids,
            };
            self.send_to_leader(Bytes::from(pkt.encode()));
            return;
        }
        if !passwd_ok {
            self.finish_connect(conn, session_id, timeout, has_ro, false);
            return;
        }
        let Role::Learning(l) = &mut self.role else {
            return;
        };
        l.pending_revalidations
            .insert(session_id, (conn, timeout, has_ro));
        let data = zab::encode_revalidate_request(session_id, timeout);
        self.send_to_leader(packet(ptype::REVALIDATE, -1, Some(data)));
    }

    /// Send the ConnectResponse for a session the leader created or revalidated.
    pub(crate) fn finish_connect(
        &mut self,
        conn: ConnId,
        session_id: i64,
        timeout: i32,
        has_ro: bool,
        valid: bool,
    ) {
        if !self.conns.contains_key(&conn) {
            return;
        }
        if valid {
            self.attach_session(conn, session_id, timeout);
        }
        let granted = valid.then_some((session_id, timeout));
        self.send(conn, super::connect_response(granted, has_ro, false));
        if valid {
            if let Some(old) = self.session_conn.insert(session_id, conn) {
                if old != conn {
                    self.close_conn(old);
                    self.watches.remove_connection(old);
                }
            }
        } else {
            self.close_conn(conn);
        }
    }
}

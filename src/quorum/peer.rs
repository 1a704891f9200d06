//! The quorum peer's runtime (Java's `QuorumPeer.run`): elect with FLE over the election
//! port, then lead or learn over the quorum port until the role ends, and elect again.
//!
//! This task owns the sockets; the core owns the state. Election runs here, because while it
//! runs the core has nothing to serve. Once decided, this task opens the quorum connection(s)
//! and moves packets between them and the core ([`QuorumMsg`]); it keeps answering other
//! servers' election notifications with the settled vote until the core reports that the role
//! is over ([`PeerEvent::RoleEnded`]).

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use thiserror::Error;
use tokio::io::{AsyncWriteExt, BufReader};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{mpsc, oneshot};
use tokio::task::JoinHandle;

use super::cnx::{self, CnxConfig, CnxHandle, Incoming};
use super::fle::{answer_when_settled, Action, Election, Settled};
use super::verifier::QuorumVerifier;
use super::wire::{self, ptype, read_packet, WireError};
use super::zab::read_snapshot_stream;
use super::{Quorum, ServerState};
use crate::server::core::{PeerEvent, QuorumMsg, LEARNER_QUEUE};

/// Why the peer could not start.
#[derive(Debug, Error)]
pub enum PeerError {
    #[error("server {0} is not in the server list")]
    NotAMember(i64),
    #[error("server {0} has no usable election address")]
    NoAddress(i64),
    #[error("election port: {0}")]
    Cnx(#[from] cnx::CnxError),
}

/// What the peer task needs to know.
#[derive(Clone)]
pub struct PeerSettings {
    pub my_id: i64,
    pub verifier: Arc<QuorumVerifier>,
    pub tick: Duration,
    pub init_limit: u32,
    pub sync_limit: u32,
    /// `quorumListenOnAllIPs`: bind the quorum and election ports on the wildcard address.
    pub listen_all: bool,
    pub bind_retry: u32,
    /// jute.maxbuffer: the bound of every length on the quorum port.
    pub max_packet: usize,
    pub extended_types: bool,
}

/// Start the election port and the peer task.
pub async fn start(
    s: PeerSettings,
    core: mpsc::Sender<QuorumMsg>,
    events: mpsc::Receiver<PeerEvent>,
) -> Result<JoinHandle<()>, PeerError> {
    let me = s
        .verifier
        .member(s.my_id)
        .ok_or(PeerError::NotAMember(s.my_id))?;
    let election_addr = me.election_addr().ok_or(PeerError::NoAddress(s.my_id))?;
    let listen = if s.listen_all {
        SocketAddr::new(IpAddr::V4(Ipv4Addr::UNSPECIFIED), election_addr.port())
    } else {
        election_addr
    };
    let mut peers = std::collections::HashMap::new();
    for m in s.verifier.members() {
        if m.sid != s.my_id {
            if let Some(a) = m.election_addr() {
                peers.insert(m.sid, a);
            }
        }
    }
    let mut cfg = CnxConfig::new(s.my_id, listen, election_addr.to_string(), peers);
    cfg.bind_retry = s.bind_retry;
    let (cnx, rx) = cnx::start(cfg).await?;
    tracing::info!(myid = s.my_id, %election_addr, "election port open");
    Ok(tokio::spawn(run(s, cnx, rx, core, events)))
}

fn now_ms(start: Instant) -> u64 {
    start.elapsed().as_millis() as u64
}

async fn run(
    s: PeerSettings,
    cnx: CnxHandle,
    mut rx: mpsc::Receiver<Incoming>,
    core: mpsc::Sender<QuorumMsg>,
    mut events: mpsc::Receiver<PeerEvent>,
) {
    let config_text = s.verifier.to_config_text().into_bytes();
    let clock_start = Instant::now();
    let mut logical_clock = 0i64;
    // LOOKING notifications that arrived while this server was still settled: when its role
    // ends too (the leader died for everyone at once), they are the first votes of the new
    // election and must not be lost to the settled answer.
    let mut replay: std::collections::VecDeque<(Instant, i64, super::Notification)> =
        Default::default();
    loop {
        let (reply, inputs) = oneshot::channel();
        if core.send(QuorumMsg::VoteInputs { reply }).await.is_err() {
            return;
        }
        let Ok((zxid, epoch)) = inputs.await else {
            return;
        };
        tracing::info!(
            myid = s.my_id,
            zxid = format_args!("{zxid:#x}"),
            epoch,
            "LOOKING"
        );
        let mut election = Election::new(
            s.my_id,
            Box::new(s.verifier.as_ref().clone()),
            zxid,
            epoch,
            logical_clock,
            config_text.clone(),
        );
        let mut decided = None;
        let acts = election.start(now_ms(clock_start));
        perform(&cnx, acts, &mut decided);
        for (at, from, n) in replay.drain(..) {
            if decided.is_none() && at.elapsed() < Duration::from_secs(2) {
                let acts = election.on_notification(from, n, now_ms(clock_start));
                perform(&cnx, acts, &mut decided);
            }
        }
        let started = Instant::now();
        while decided.is_none() {
            let deadline = election
                .next_deadline()
                .map(|d| clock_start + Duration::from_millis(d))
                .unwrap_or_else(|| Instant::now() + Duration::from_millis(200));
            tokio::select! {
                m = rx.recv() => {
                    let Some(m) = m else { return };
                    match wire::decode_notification(&m.payload) {
                        Ok(n) => {
                            let acts = election.on_notification(m.from, n, now_ms(clock_start));
                            perform(&cnx, acts, &mut decided);
                        }
                        Err(e) => tracing::debug!(from = m.from, error = %e, "bad notification"),
                    }
                }
                _ = tokio::time::sleep_until(deadline.into()) => {
                    let acts = election.on_tick(now_ms(clock_start));
                    if acts.iter().any(|a| matches!(a, Action::Send { .. })) {
                        cnx.connect_all();
                    }
                    perform(&cnx, acts, &mut decided);
                }
            }
        }
        logical_clock = election.logical_clock();
        let Some((state, vote, election_epoch)) = decided else {
            continue;
        };
        tracing::info!(
            myid = s.my_id,
            state = state.mode_name(),
            leader = vote.leader,
            election_ms = started.elapsed().as_millis() as u64,
            "election decided"
        );
        let mut settled = Settled {
            state,
            vote,
            election_epoch,
            logical_clock,
        };
        // Stale news from a previous role must not end this one.
        while events.try_recv().is_ok() {}
        replay.clear();
        let tasks = match state {
            ServerState::Leading => lead(&s, &core).await,
            ServerState::Following | ServerState::Observing => {
                follow(&s, &core, vote.leader, state == ServerState::Observing).await
            }
            ServerState::Looking => None,
        };
        let Some(tasks) = tasks else {
            // Could not take up the role (port busy, leader unreachable): elect again.
            tokio::time::sleep(Duration::from_millis(200)).await;
            continue;
        };
        loop {
            tokio::select! {
                m = rx.recv() => {
                    let Some(m) = m else { return };
                    if let Ok(n) = wire::decode_notification(&m.payload) {
                        let voter = s.verifier.is_voter(m.from);
                        if let Some(reply) = answer_when_settled(&settled, voter, &n, &config_text) {
                            let _ = cnx.send(m.from, Bytes::from(wire::encode_notification(&reply)));
                        }
                        if n.state == ServerState::Looking {
                            if replay.len() >= 16 {
                                replay.pop_front();
                            }
                            replay.push_back((Instant::now(), m.from, n));
                        }
                    }
                }
                ev = events.recv() => match ev {
                    None => return,
                    Some(PeerEvent::RoleEnded { why }) => {
                        tracing::info!(myid = s.my_id, why, "role ended");
                        break;
                    }
                    Some(PeerEvent::Established { epoch }) => {
                        settled.vote.peer_epoch = epoch;
                    }
                }
            }
        }
        for t in tasks {
            t.abort();
        }
    }
}

fn perform(
    cnx: &CnxHandle,
    acts: Vec<Action>,
    decided: &mut Option<(ServerState, super::Vote, i64)>,
) {
    for a in acts {
        match a {
            Action::Send { to, n } => {
                let _ = cnx.send(to, Bytes::from(wire::encode_notification(&n)));
            }
            Action::Decided {
                state,
                vote,
                election_epoch,
            } => *decided = Some((state, vote, election_epoch)),
        }
    }
}

/// Open the quorum port and hand every learner connection to the core.
async fn lead(s: &PeerSettings, core: &mpsc::Sender<QuorumMsg>) -> Option<Vec<JoinHandle<()>>> {
    let addr = s.verifier.quorum_addr(s.my_id)?;
    let bind = if s.listen_all {
        SocketAddr::new(IpAddr::V4(Ipv4Addr::UNSPECIFIED), addr.port())
    } else {
        addr
    };
    let mut listener = None;
    for _ in 0..10 {
        match TcpListener::bind(bind).await {
            Ok(l) => {
                listener = Some(l);
                break;
            }
            Err(e) => {
                tracing::warn!(%bind, error = %e, "cannot bind the quorum port; retrying");
                tokio::time::sleep(Duration::from_millis(500)).await;
            }
        }
    }
    let listener = listener?;
    if core.send(QuorumMsg::Lead).await.is_err() {
        return None;
    }
    let core = core.clone();
    let settings = s.clone();
    let accept = tokio::spawn(async move {
        let mut next_link = 1u64;
        let mut links: Vec<JoinHandle<()>> = Vec::new();
        loop {
            let Ok((sock, remote)) = listener.accept().await else {
                continue;
            };
            let _ = sock.set_nodelay(true);
            let link = next_link;
            next_link += 1;
            tracing::info!(%remote, link, "learner connected");
            links.retain(|h| !h.is_finished());
            let (out_tx, out_rx) = mpsc::channel::<Bytes>(LEARNER_QUEUE);
            if core
                .send(QuorumMsg::LearnerUp { link, out: out_tx })
                .await
                .is_err()
            {
                return;
            }
            let (r, w) = sock.into_split();
            links.push(tokio::spawn(writer(w, out_rx)));
            let core2 = core.clone();
            let limit = settings.tick.saturating_mul(
                settings
                    .init_limit
                    .saturating_add(settings.sync_limit)
                    .max(2),
            );
            let max = settings.max_packet;
            links.push(tokio::spawn(async move {
                let mut r = BufReader::with_capacity(64 * 1024, r);
                loop {
                    match tokio::time::timeout(limit, read_packet(&mut r, max)).await {
                        Ok(Ok(pkt)) => {
                            if core2
                                .send(QuorumMsg::FromLearner { link, pkt })
                                .await
                                .is_err()
                            {
                                return;
                            }
                        }
                        Ok(Err(e)) => {
                            log_read_end(&e, "learner");
                            break;
                        }
                        Err(_) => {
                            tracing::warn!(link, "learner silent too long; dropping it");
                            break;
                        }
                    }
                }
                let _ = core2.send(QuorumMsg::LearnerDown { link }).await;
            }));
        }
    });
    Some(vec![accept])
}

fn log_read_end(e: &WireError, who: &str) {
    if e.is_disconnect() {
        tracing::info!(error = %e, "{who} connection closed");
    } else {
        tracing::warn!(error = %e, "{who} sent a bad packet; closing");
    }
}

/// Write queued bytes to a quorum connection, coalescing what is queued into one write.
async fn writer(mut w: tokio::net::tcp::OwnedWriteHalf, mut rx: mpsc::Receiver<Bytes>) {
    let mut buf: Vec<u8> = Vec::with_capacity(64 * 1024);
    while let Some(b) = rx.recv().await {
        buf.clear();
        buf.extend_from_slice(&b);
        while buf.len() < 256 * 1024 {
            match rx.try_recv() {
                Ok(more) => buf.extend_from_slice(&more),
                Err(_) => break,
            }
        }
        if w.write_all(&buf).await.is_err() {
            return;
        }
    }
    let _ = w.shutdown().await;
}

/// Connect to the leader's quorum port (retrying for up to initLimit ticks, as Java does)
/// and hand the connection to the core.
async fn follow(
    s: &PeerSettings,
    core: &mpsc::Sender<QuorumMsg>,
    leader: i64,
    observer: bool,
) -> Option<Vec<JoinHandle<()>>> {
    let addr = s.verifier.quorum_addr(leader)?;
    // Java's LeaderConnector: at most 5 tries, 100 ms apart, within initLimit ticks. A
    // leader that is not there (a stale vote) costs half a second, not initLimit.
    let give_up = Instant::now() + s.tick.saturating_mul(s.init_limit.max(1));
    let mut tries = 0;
    let sock = loop {
        tries += 1;
        let left = give_up.saturating_duration_since(Instant::now());
        match tokio::time::timeout(
            left.max(Duration::from_millis(100)),
            TcpStream::connect(addr),
        )
        .await
        {
            Ok(Ok(sock)) => break sock,
            Ok(Err(e)) => {
                tracing::debug!(%addr, error = %e, tries, "leader not reachable yet");
            }
            Err(_) => tracing::debug!(%addr, tries, "connecting to the leader timed out"),
        }
        if tries >= 5 || Instant::now() >= give_up {
            tracing::warn!(leader, %addr, tries, "cannot connect to the leader");
            return None;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    let _ = sock.set_nodelay(true);
    let (out_tx, out_rx) = mpsc::channel::<Bytes>(LEARNER_QUEUE);
    core.send(QuorumMsg::Follow {
        leader,
        observer,
        out: out_tx,
    })
    .await
    .ok()?;
    let (r, w) = sock.into_split();
    let wtask = tokio::spawn(writer(w, out_rx));
    let core = core.clone();
    let init = s.tick.saturating_mul(s.init_limit.max(1));
    let sync = s.tick.saturating_mul(s.sync_limit.max(1));
    let max = s.max_packet;
    let extended = s.extended_types;
    let rtask = tokio::spawn(async move {
        let mut r = BufReader::with_capacity(256 * 1024, r);
        let mut limit = init;
        let why = loop {
            let pkt = match tokio::time::timeout(limit, read_packet(&mut r, max)).await {
                Ok(Ok(p)) => p,
                Ok(Err(e)) => {
                    log_read_end(&e, "leader");
                    break format!("connection to the leader ended: {e}");
                }
                Err(_) => break "the leader went silent".to_owned(),
            };
            let msg = match pkt.ptype {
                ptype::SNAP => match read_snapshot_stream(&mut r, max, extended).await {
                    Ok(snap) => QuorumMsg::Snapshot {
                        zxid: pkt.zxid,
                        snap: Box::new(snap),
                    },
                    Err(e) => break format!("bad snapshot from the leader: {e}"),
                },
                ptype::UPTODATE => {
                    limit = sync;
                    QuorumMsg::FromLeader(pkt)
                }
                _ => QuorumMsg::FromLeader(pkt),
            };
            if core.send(msg).await.is_err() {
                return;
            }
        };
        let _ = core.send(QuorumMsg::LeaderDown { why }).await;
    });
    Some(vec![wtask, rtask])
}

//! Fast Leader Election (Java's `FastLeaderElection`) as a sans-IO state machine.
//!
//! An [`Election`] is one run of Java's `lookForLeader`: the caller feeds it the notifications
//! that arrive on the election port ([`Election::on_notification`]) and the passing of time
//! ([`Election::on_tick`] once [`Election::next_deadline`] is reached), and carries out the
//! [`Action`]s it returns: notifications to send, and at most one decision. There are no
//! sockets, clocks or random numbers inside, so the same code runs under the deterministic
//! simulator in `fle_sim` and under the tokio runtime.
//!
//! Java runs the election in two threads that share state: the `WorkerReceiver` answers some
//! notifications right away (a LOOKING peer whose round is behind mine gets my proposal back, a
//! non-voting peer gets my current vote), then queues the rest for `lookForLeader`, which
//! tallies votes. [`Election::on_notification`] does both steps in that order. A server that is
//! not looking (FOLLOWING, LEADING, OBSERVING) still answers LOOKING peers; that is
//! [`answer_when_settled`], which the runtime calls with the vote the election decided.
//!
//! The decision rules match Java 3.9 so that mixed Java/ferrokeeper ensembles agree (see
//! ZK-PROTOCOL §8.4). Dynamic reconfiguration is not supported yet: the config text we send is
//! the caller's, and configs we receive are ignored. The `QuorumOracleMaj` (two-node oracle)
//! extension is not supported either.

use std::collections::{BTreeMap, BTreeSet, VecDeque};

use super::{Notification, Quorum, ServerState, Vote};

/// How long a server that sees a quorum for its proposal keeps listening for a better vote
/// before it decides (Java's `finalizeWait`, a constant there too).
pub const FINALIZE_WAIT_MS: u64 = 200;

/// First notification timeout: with nothing received for this long, resend my vote to everyone
/// (Java's `zookeeper.fastleader.minNotificationInterval`, default `finalizeWait`).
pub const MIN_NOTIFICATION_INTERVAL_MS: u64 = 200;

/// The notification timeout doubles on each expiry up to this ceiling (Java's
/// `zookeeper.fastleader.maxNotificationInterval`).
pub const MAX_NOTIFICATION_INTERVAL_MS: u64 = 60_000;

/// The notification format version we send: 0x2 (3.5+, carries the config text). Java reads a
/// config only from senders with version > 1, so every notification we send carries one.
pub const NOTIFICATION_VERSION: i32 = 0x2;

/// What the runtime must do on behalf of an [`Election`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Action {
    /// Send this notification to server `to` over the election port.
    Send {
        /// The recipient's sid.
        to: i64,
        /// The notification to encode and send.
        n: Notification,
    },
    /// The election is over: become `state` (LEADING, FOLLOWING or OBSERVING) under `vote`'s
    /// leader. `election_epoch` is the round the decision was made in; the runtime keeps `vote`
    /// and `election_epoch` as its current vote (Java's `QuorumPeer.currentVote`) for
    /// [`answer_when_settled`], and [`Election::logical_clock`] for the next election.
    Decided {
        /// LEADING if I am the leader, FOLLOWING (voters) or OBSERVING (non-voters) otherwise.
        state: ServerState,
        /// The leader, its last zxid and its currentEpoch as the winning votes named them.
        vote: Vote,
        /// The round (electionEpoch) of the winning votes.
        election_epoch: i64,
    },
}

/// A server that is not looking: what it answers with (Java's `QuorumPeer.currentVote`, its
/// state and the FLE logical clock). Built by the runtime from [`Action::Decided`] (and updated
/// when Zab moves the vote's peer epoch, Java's `updateElectionVote`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Settled {
    /// FOLLOWING, LEADING or OBSERVING.
    pub state: ServerState,
    /// My current vote: who I follow or that I lead.
    pub vote: Vote,
    /// The round in which that vote won.
    pub election_epoch: i64,
    /// The FLE logical clock (Java answers non-voters with it instead of the vote's round).
    pub logical_clock: i64,
}

/// The answer of a server that is not looking to a notification from `n`'s sender (Java's
/// `WorkerReceiver` outside `lookForLeader`). A LOOKING voter gets my vote, state and the round
/// of my vote so that it can join the leader; a non-voter (observer) gets my vote and logical
/// clock whatever its state; a voter that is not looking gets nothing. (As in Java, a LOOKING
/// voter answers every non-voter message too, so a settled observer and a looking voter keep
/// answering each other until the voter decides: chatter, not a decision input.)
pub fn answer_when_settled(
    me: &Settled,
    from_is_voter: bool,
    n: &Notification,
    config_text: &[u8],
) -> Option<Notification> {
    if !from_is_voter {
        return Some(notification(
            me.state,
            me.vote,
            me.logical_clock,
            config_text,
        ));
    }
    if n.state != ServerState::Looking {
        return None;
    }
    Some(notification(
        me.state,
        me.vote,
        me.election_epoch,
        config_text,
    ))
}

fn notification(
    state: ServerState,
    vote: Vote,
    election_epoch: i64,
    config_text: &[u8],
) -> Notification {
    Notification {
        state,
        vote,
        election_epoch,
        version: NOTIFICATION_VERSION,
        config: Some(config_text.to_vec()),
    }
}

/// A vote as Java's `lookForLeader` records it in its tallies: with the round, the sender's
/// state and the message version, because Java's `Vote.equals` looks at all of them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Recorded {
    vote: Vote,
    election_epoch: i64,
    state: ServerState,
    version: i32,
}

impl Recorded {
    /// Java's `Vote.equals`, which decides whether two votes count towards the same quorum.
    /// If either is a LOOKING vote, leader, zxid, round and peer epoch must all match. Votes of
    /// servers that are out of the election (FOLLOWING/LEADING) are compared by leader and peer
    /// epoch only, because their zxid and round may be stale (ZOOKEEPER-1805); and by leader
    /// alone when exactly one side has version 0, for rolling upgrades (ZOOKEEPER-1732).
    fn same_as(&self, other: &Recorded) -> bool {
        if self.state == ServerState::Looking || other.state == ServerState::Looking {
            self.vote == other.vote && self.election_epoch == other.election_epoch
        } else if (self.version > 0) != (other.version > 0) {
            self.vote.leader == other.vote.leader
        } else {
            self.vote.leader == other.vote.leader && self.vote.peer_epoch == other.vote.peer_epoch
        }
    }
}

/// Where an election is: not started, polling for notifications, in the final wait after my
/// proposal reached a quorum, or over.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    NotStarted,
    Looking,
    Finalizing,
    Decided,
}

/// One leader election (one call of Java's `lookForLeader`), driven by the caller. Create it
/// when the server turns LOOKING, call [`Election::start`], then feed it notifications and
/// ticks until it returns [`Action::Decided`]. The logical clock outlives one election: pass
/// [`Election::logical_clock`] of the previous one to [`Election::new`] for the next.
pub struct Election {
    me: i64,
    quorum: Box<dyn Quorum + Send>,
    /// My initial vote: (me, last logged zxid, currentEpoch), or all Long.MIN_VALUE for a
    /// non-voter (Java's getInitId/getInitLastLoggedZxid/getPeerEpoch).
    init: Vote,
    /// Does my own vote count (am I a voting member)?
    voter: bool,
    logical_clock: i64,
    proposal: Vote,
    /// Votes of the current round (Java's `recvset`).
    recvset: BTreeMap<i64, Recorded>,
    /// FOLLOWING/LEADING votes of any round (Java's `outofelection`).
    out_of_election: BTreeMap<i64, Recorded>,
    phase: Phase,
    not_timeout: u64,
    min_interval: u64,
    max_interval: u64,
    deadline: Option<u64>,
    /// Notifications received before [`Election::start`].
    early: VecDeque<(i64, Notification)>,
    /// Notifications I sent to myself, processed right after the current input (Java loops them
    /// back through its receive queue).
    loopback: VecDeque<Notification>,
    /// Java's `QuorumPeer.currentVote`: what non-voters are answered with while I look.
    current_vote: Vote,
    decided: Option<Settled>,
    decision_reported: bool,
    config_text: Vec<u8>,
}

impl Election {
    /// An election for server `me` with membership `quorum`. `last_logged_zxid` and
    /// `current_epoch` make my initial vote (a non-voter votes Long.MIN_VALUE for all three
    /// fields instead, and ends OBSERVING). A last logged zxid of -1 marks a server that lost its
    /// data (Java's "empty database not trusted"): it ignores LOOKING votes and can only join an
    /// existing leader. `logical_clock` is the previous election's clock (0 at process start).
    /// `config_text` is sent in every notification (Java's `QuorumVerifier.toString()`).
    pub fn new(
        me: i64,
        quorum: Box<dyn Quorum + Send>,
        last_logged_zxid: i64,
        current_epoch: i64,
        logical_clock: i64,
        config_text: Vec<u8>,
    ) -> Election {
        let voter = quorum.is_voter(me);
        let init = if voter {
            Vote {
                leader: me,
                zxid: last_logged_zxid,
                peer_epoch: current_epoch,
            }
        } else {
            Vote {
                leader: i64::MIN,
                zxid: i64::MIN,
                peer_epoch: i64::MIN,
            }
        };
        Election {
            me,
            quorum,
            init,
            voter,
            logical_clock,
            proposal: init,
            recvset: BTreeMap::new(),
            out_of_election: BTreeMap::new(),
            phase: Phase::NotStarted,
            not_timeout: MIN_NOTIFICATION_INTERVAL_MS,
            min_interval: MIN_NOTIFICATION_INTERVAL_MS,
            max_interval: MAX_NOTIFICATION_INTERVAL_MS,
            deadline: None,
            early: VecDeque::new(),
            loopback: VecDeque::new(),
            current_vote: Vote {
                leader: me,
                zxid: last_logged_zxid,
                peer_epoch: current_epoch,
            },
            decided: None,
            decision_reported: false,
            config_text,
        }
    }

    /// Overrides the notification timeout bounds (Java's `minNotificationInterval` and
    /// `maxNotificationInterval` system properties). Call before [`Election::start`].
    pub fn with_notification_intervals(mut self, min_ms: u64, max_ms: u64) -> Election {
        self.min_interval = min_ms.max(1);
        self.max_interval = max_ms.max(self.min_interval);
        self.not_timeout = self.min_interval;
        self
    }

    /// Sets the vote non-voters are answered with while I look (Java answers them with
    /// `QuorumPeer.currentVote`, the previous election's result, not the current proposal).
    /// Defaults to (me, last logged zxid, currentEpoch), Java's value at process start.
    pub fn set_current_vote(&mut self, vote: Vote) {
        self.current_vote = vote;
    }

    /// Begins the election: next round, vote for myself, tell every voter. Notifications that
    /// arrived before are processed now. Calling it again has no effect.
    pub fn start(&mut self, now_ms: u64) -> Vec<Action> {
        let mut out = Vec::new();
        if self.phase != Phase::NotStarted {
            return out;
        }
        self.logical_clock = self.logical_clock.saturating_add(1);
        self.proposal = self.init;
        self.phase = Phase::Looking;
        self.not_timeout = self.min_interval;
        tracing::debug!(
            me = self.me,
            round = self.logical_clock,
            zxid = format_args!("{:#x}", self.init.zxid),
            peer_epoch = self.init.peer_epoch,
            "FLE: new election"
        );
        self.send_notifications(&mut out);
        self.deadline = Some(now_ms.saturating_add(self.not_timeout));
        self.drain_loopback(now_ms, &mut out);
        while let Some((from, n)) = self.early.pop_front() {
            if self.phase == Phase::Decided {
                break;
            }
            self.receive(from, n, now_ms, &mut out);
        }
        self.early.clear();
        self.report_decision(&mut out);
        out
    }

    /// A notification from server `from` arrived. Returns what to send and, perhaps, the
    /// decision. After the decision, answers as [`answer_when_settled`] would.
    pub fn on_notification(&mut self, from: i64, n: Notification, now_ms: u64) -> Vec<Action> {
        let mut out = Vec::new();
        match self.phase {
            Phase::NotStarted => self.early.push_back((from, n)),
            Phase::Decided => {
                if let Some(settled) = self.decided {
                    let from_is_voter = self.quorum.is_voter(from);
                    if let Some(reply) =
                        answer_when_settled(&settled, from_is_voter, &n, &self.config_text)
                    {
                        out.push(Action::Send { to: from, n: reply });
                    }
                }
            }
            Phase::Looking | Phase::Finalizing => self.receive(from, n, now_ms, &mut out),
        }
        self.report_decision(&mut out);
        out
    }

    /// Time passed. At the deadline: in the final wait, decide for my proposal; otherwise resend
    /// my vote to everyone and double the notification timeout.
    pub fn on_tick(&mut self, now_ms: u64) -> Vec<Action> {
        let mut out = Vec::new();
        let Some(deadline) = self.deadline else {
            return out;
        };
        if now_ms < deadline {
            return out;
        }
        match self.phase {
            Phase::Finalizing => self.decide_for_proposal(),
            Phase::Looking => {
                // Java resends only when its connection manager has delivered everything and
                // otherwise reconnects to all; a runtime that sees a send still queued can treat
                // these sends as "connect". The connection manager keeps only the newest
                // message per peer, so resending is harmless either way.
                self.send_notifications(&mut out);
                self.not_timeout = self.not_timeout.saturating_mul(2).min(self.max_interval);
                tracing::debug!(
                    me = self.me,
                    round = self.logical_clock,
                    timeout_ms = self.not_timeout,
                    "FLE: notification timeout, resent my vote"
                );
                self.deadline = Some(now_ms.saturating_add(self.not_timeout));
                self.drain_loopback(now_ms, &mut out);
            }
            Phase::NotStarted | Phase::Decided => {}
        }
        self.report_decision(&mut out);
        out
    }

    /// When [`Election::on_tick`] has something to do; `None` before start and after the
    /// decision.
    pub fn next_deadline(&self) -> Option<u64> {
        match self.phase {
            Phase::Looking | Phase::Finalizing => self.deadline,
            Phase::NotStarted | Phase::Decided => None,
        }
    }

    /// The election round (Java's `logicalclock`). Keep it for the next election.
    pub fn logical_clock(&self) -> i64 {
        self.logical_clock
    }

    /// My current proposal (Java's `getVote()`), for `srvr`/JMX-style reporting.
    pub fn proposal(&self) -> Vote {
        self.proposal
    }

    /// The decision, once there is one, as the runtime should keep it.
    pub fn settled(&self) -> Option<Settled> {
        self.decided
    }

    /// Emits [`Action::Decided`] once, after the sends of the input that led to it.
    fn report_decision(&mut self, out: &mut Vec<Action>) {
        if self.decision_reported {
            return;
        }
        if let Some(s) = self.decided {
            self.decision_reported = true;
            out.push(Action::Decided {
                state: s.state,
                vote: s.vote,
                election_epoch: s.election_epoch,
            });
        }
    }

    /// Java's `WorkerReceiver` step, then (for queued notifications) one pass of the
    /// `lookForLeader` loop.
    fn receive(&mut self, from: i64, n: Notification, now_ms: u64, out: &mut Vec<Action>) {
        if !self.quorum.is_voter(from) {
            // A non-voter gets my current vote at once and is never tallied.
            out.push(Action::Send {
                to: from,
                n: notification(
                    ServerState::Looking,
                    self.current_vote,
                    self.logical_clock,
                    &self.config_text,
                ),
            });
            return;
        }
        if n.state == ServerState::Looking && n.election_epoch < self.logical_clock {
            // A LOOKING voter behind my round gets my proposal so that it catches up.
            out.push(Action::Send {
                to: from,
                n: notification(
                    ServerState::Looking,
                    self.proposal,
                    self.logical_clock,
                    &self.config_text,
                ),
            });
        }
        self.dequeue(from, n, now_ms, out);
        self.drain_loopback(now_ms, out);
    }

    fn drain_loopback(&mut self, now_ms: u64, out: &mut Vec<Action>) {
        while let Some(n) = self.loopback.pop_front() {
            if self.phase == Phase::Decided {
                self.loopback.clear();
                return;
            }
            let me = self.me;
            self.dequeue(me, n, now_ms, out);
        }
    }

    /// A notification leaves the receive queue: in the final wait, a better vote ends the wait
    /// and is processed normally, anything else is dropped and restarts the wait.
    fn dequeue(&mut self, from: i64, n: Notification, now_ms: u64, out: &mut Vec<Action>) {
        match self.phase {
            Phase::Finalizing => {
                if self.beats(&n.vote, &self.proposal) {
                    tracing::debug!(
                        me = self.me,
                        from,
                        leader = n.vote.leader,
                        "FLE: better vote during the final wait, continuing"
                    );
                    self.phase = Phase::Looking;
                    self.process(from, n, now_ms, out);
                } else {
                    // Java drops it (not tallied) and polls again for finalizeWait.
                    self.deadline = Some(now_ms.saturating_add(FINALIZE_WAIT_MS));
                }
            }
            Phase::Looking => self.process(from, n, now_ms, out),
            Phase::NotStarted | Phase::Decided => {}
        }
    }

    /// One pass of the `lookForLeader` loop for notification `n` from `from`.
    fn process(&mut self, from: i64, n: Notification, now_ms: u64, out: &mut Vec<Action>) {
        if !self.quorum.is_voter(from) || !self.quorum.is_voter(n.vote.leader) {
            tracing::debug!(
                me = self.me,
                from,
                leader = n.vote.leader,
                "FLE: ignoring a vote from or for a non-voter"
            );
        } else {
            match n.state {
                ServerState::Looking => self.process_looking(from, &n, now_ms, out),
                ServerState::Observing => {}
                ServerState::Following | ServerState::Leading => {
                    self.process_settled_peer(from, &n)
                }
            }
        }
        if self.phase == Phase::Looking {
            self.deadline = Some(now_ms.saturating_add(self.not_timeout));
        }
    }

    fn process_looking(&mut self, from: i64, n: &Notification, now_ms: u64, out: &mut Vec<Action>) {
        if self.init.zxid == -1 {
            // ZOOKEEPER-261: a server that lost its data must not help elect anyone.
            return;
        }
        if n.vote.zxid == -1 {
            return;
        }
        if n.election_epoch > self.logical_clock {
            self.logical_clock = n.election_epoch;
            self.recvset.clear();
            self.proposal = if self.beats(&n.vote, &self.init) {
                n.vote
            } else {
                self.init
            };
            tracing::debug!(
                me = self.me,
                round = self.logical_clock,
                leader = self.proposal.leader,
                "FLE: joined a newer round"
            );
            self.send_notifications(out);
        } else if n.election_epoch < self.logical_clock {
            return;
        } else if self.beats(&n.vote, &self.proposal) {
            self.proposal = n.vote;
            tracing::debug!(
                me = self.me,
                round = self.logical_clock,
                leader = self.proposal.leader,
                "FLE: adopted a better vote"
            );
            self.send_notifications(out);
        }
        self.recvset.insert(
            from,
            Recorded {
                vote: n.vote,
                election_epoch: n.election_epoch,
                state: ServerState::Looking,
                version: 0,
            },
        );
        let mine = Recorded {
            vote: self.proposal,
            election_epoch: self.logical_clock,
            state: ServerState::Looking,
            version: 0,
        };
        if self.has_quorum(&self.recvset, &mine) {
            tracing::debug!(
                me = self.me,
                round = self.logical_clock,
                leader = self.proposal.leader,
                "FLE: my proposal has a quorum, final wait"
            );
            self.phase = Phase::Finalizing;
            self.deadline = Some(now_ms.saturating_add(FINALIZE_WAIT_MS));
        }
    }

    /// A FOLLOWING or LEADING voter told me whom it follows: decide if a quorum of this round
    /// agrees, or a quorum of settled servers of any round follows a leader that says it leads.
    fn process_settled_peer(&mut self, from: i64, n: &Notification) {
        let theirs = Recorded {
            vote: n.vote,
            election_epoch: n.election_epoch,
            state: n.state,
            version: n.version,
        };
        if n.election_epoch == self.logical_clock {
            // Java records these with version 0, so against a version-2 notification only the
            // leader is compared.
            self.recvset.insert(
                from,
                Recorded {
                    version: 0,
                    ..theirs
                },
            );
            if self.has_quorum(&self.recvset, &theirs)
                && self.check_leader(&self.recvset, n.vote.leader, n.election_epoch)
            {
                tracing::debug!(
                    me = self.me,
                    round = self.logical_clock,
                    leader = n.vote.leader,
                    "FLE: a quorum of this round follows a leader"
                );
                self.decide(n.vote, n.election_epoch);
                return;
            }
        }
        self.out_of_election.insert(from, theirs);
        if self.has_quorum(&self.out_of_election, &theirs)
            && self.check_leader(&self.out_of_election, n.vote.leader, n.election_epoch)
        {
            tracing::debug!(
                me = self.me,
                my_round = self.logical_clock,
                round = n.election_epoch,
                leader = n.vote.leader,
                "FLE: joining an established leader"
            );
            self.logical_clock = n.election_epoch;
            self.decide(n.vote, n.election_epoch);
        }
    }

    /// Java's `checkLeader`: someone else is leader only if I have heard it say LEADING; I am
    /// leader only if the votes are of my current round (so that a restarted server does not
    /// take over a leadership it lost).
    fn check_leader(&self, votes: &BTreeMap<i64, Recorded>, leader: i64, round: i64) -> bool {
        if leader != self.me {
            votes
                .get(&leader)
                .is_some_and(|v| v.state == ServerState::Leading)
        } else {
            self.logical_clock == round
        }
    }

    fn has_quorum(&self, votes: &BTreeMap<i64, Recorded>, target: &Recorded) -> bool {
        let acks: BTreeSet<i64> = votes
            .iter()
            .filter(|(_, v)| v.same_as(target))
            .map(|(sid, _)| *sid)
            .collect();
        self.quorum.contains_quorum(&acks)
    }

    /// Java's `totalOrderPredicate`: does `new` beat `cur`?
    fn beats(&self, new: &Vote, cur: &Vote) -> bool {
        new.beats(cur, self.quorum.weight(new.leader))
    }

    fn decide_for_proposal(&mut self) {
        let (vote, round) = (self.proposal, self.logical_clock);
        self.decide(vote, round);
    }

    fn decide(&mut self, vote: Vote, election_epoch: i64) {
        let state = if vote.leader == self.me {
            ServerState::Leading
        } else if self.voter {
            ServerState::Following
        } else {
            ServerState::Observing
        };
        tracing::debug!(
            me = self.me,
            state = state.mode_name(),
            leader = vote.leader,
            zxid = format_args!("{:#x}", vote.zxid),
            peer_epoch = vote.peer_epoch,
            election_epoch,
            logical_clock = self.logical_clock,
            "FLE: decided"
        );
        self.phase = Phase::Decided;
        self.deadline = None;
        self.recvset.clear();
        self.out_of_election.clear();
        self.loopback.clear();
        self.current_vote = vote;
        self.decided = Some(Settled {
            state,
            vote,
            election_epoch,
            logical_clock: self.logical_clock,
        });
    }

    /// Java's `sendNotifications`: my proposal to every voter; the copy to myself goes through
    /// the loopback queue like Java's, so it is tallied and may complete a quorum.
    fn send_notifications(&mut self, out: &mut Vec<Action>) {
        let n = notification(
            ServerState::Looking,
            self.proposal,
            self.logical_clock,
            &self.config_text,
        );
        for sid in self.quorum.voters() {
            if sid == self.me {
                self.loopback.push_back(n.clone());
            } else {
                out.push(Action::Send {
                    to: sid,
                    n: n.clone(),
                });
            }
        }
    }
}

#[cfg(test)]
#[path = "fle_sim.rs"]
mod fle_sim;

#[cfg(test)]
mod tests {
    use super::fle_sim::Majority;
    use super::*;

    const CFG: &[u8] = b"version=0";

    fn quorum(n: i64) -> Box<dyn Quorum + Send> {
        Box::new(Majority {
            voters: (1..=n).collect(),
        })
    }

    fn vote(leader: i64, zxid: i64, peer_epoch: i64) -> Vote {
        Vote {
            leader,
            zxid,
            peer_epoch,
        }
    }

    fn note(state: ServerState, v: Vote, round: i64) -> Notification {
        Notification {
            state,
            vote: v,
            election_epoch: round,
            version: NOTIFICATION_VERSION,
            config: Some(CFG.to_vec()),
        }
    }

    fn looking(v: Vote, round: i64) -> Notification {
        note(ServerState::Looking, v, round)
    }

    fn sends(actions: &[Action]) -> Vec<(i64, Notification)> {
        actions
            .iter()
            .filter_map(|a| match a {
                Action::Send { to, n } => Some((*to, n.clone())),
                Action::Decided { .. } => None,
            })
            .collect()
    }

    fn decision(actions: &[Action]) -> Option<(ServerState, Vote, i64)> {
        actions.iter().find_map(|a| match a {
            Action::Decided {
                state,
                vote,
                election_epoch,
            } => Some((*state, *vote, *election_epoch)),
            Action::Send { .. } => None,
        })
    }

    fn election(me: i64, n: i64, zxid: i64, epoch: i64, clock: i64) -> Election {
        Election::new(me, quorum(n), zxid, epoch, clock, CFG.to_vec())
    }

    #[test]
    fn start_votes_for_self_and_notifies_other_voters() {
        let mut e = election(2, 3, 0x1_0000_0005, 1, 7);
        let out = e.start(0);
        assert_eq!(e.logical_clock(), 8);
        let s = sends(&out);
        assert_eq!(s.iter().map(|(to, _)| *to).collect::<Vec<_>>(), vec![1, 3]);
        for (_, n) in &s {
            assert_eq!(*n, looking(vote(2, 0x1_0000_0005, 1), 8));
        }
        assert_eq!(e.next_deadline(), Some(MIN_NOTIFICATION_INTERVAL_MS));
        assert!(decision(&out).is_none());
    }

    #[test]
    fn three_voters_agree_after_the_final_wait() {
        let mut e = election(1, 3, 10, 1, 0);
        e.start(0);
        // Server 3 has the best vote: adopt it and tell everyone.
        let out = e.on_notification(3, looking(vote(3, 12, 1), 1), 5);
        let s = sends(&out);
        assert_eq!(s.len(), 2);
        assert!(s.iter().all(|(_, n)| n.vote == vote(3, 12, 1)));
        // My own vote (loopback) and 3's make a quorum: final wait.
        assert_eq!(e.next_deadline(), Some(5 + FINALIZE_WAIT_MS));
        assert!(e.on_tick(100).is_empty());
        // A worse vote during the wait is dropped and restarts the wait.
        assert!(e
            .on_notification(2, looking(vote(2, 11, 1), 1), 150)
            .is_empty());
        assert_eq!(e.next_deadline(), Some(150 + FINALIZE_WAIT_MS));
        let out = e.on_tick(350);
        assert_eq!(
            decision(&out),
            Some((ServerState::Following, vote(3, 12, 1), 1))
        );
        assert_eq!(e.next_deadline(), None);
        assert_eq!(e.settled().map(|s| s.state), Some(ServerState::Following));
    }

    #[test]
    fn leader_decides_leading() {
        let mut e = election(3, 3, 12, 1, 0);
        e.start(0);
        e.on_notification(1, looking(vote(3, 12, 1), 1), 10);
        let out = e.on_tick(10 + FINALIZE_WAIT_MS);
        assert_eq!(
            decision(&out),
            Some((ServerState::Leading, vote(3, 12, 1), 1))
        );
    }

    #[test]
    fn better_vote_during_final_wait_is_processed() {
        let mut e = election(1, 5, 10, 1, 0);
        e.start(0);
        e.on_notification(2, looking(vote(3, 12, 1), 1), 1);
        e.on_notification(4, looking(vote(3, 12, 1), 1), 2);
        // {1, 2, 4} vote 3: final wait.
        assert_eq!(e.next_deadline(), Some(2 + FINALIZE_WAIT_MS));
        // A better vote (higher peer epoch beats higher zxid) ends the wait.
        let out = e.on_notification(5, looking(vote(5, 1, 2), 1), 50);
        assert!(sends(&out).iter().all(|(_, n)| n.vote == vote(5, 1, 2)));
        assert_eq!(sends(&out).len(), 4);
        assert_eq!(e.proposal(), vote(5, 1, 2));
        // Only {1, 5} vote 5 so far: back to polling with the notification timeout.
        assert_eq!(e.next_deadline(), Some(50 + MIN_NOTIFICATION_INTERVAL_MS));
        assert!(decision(&e.on_tick(260)).is_none());
    }

    #[test]
    fn higher_round_is_adopted_with_the_better_of_its_vote_and_mine() {
        let mut e = election(3, 5, 12, 1, 0);
        e.start(0);
        e.on_notification(1, looking(vote(3, 12, 1), 1), 1);
        e.on_notification(2, looking(vote(2, 11, 1), 1), 1);
        // Round 5 from server 1 with a worse vote: round adopted, my initial vote kept,
        // the round-1 tally forgotten (2's vote no longer counts).
        let out = e.on_notification(1, looking(vote(2, 11, 1), 5), 2);
        assert_eq!(e.logical_clock(), 5);
        let s = sends(&out);
        assert_eq!(s.len(), 4);
        assert!(s.iter().all(|(_, n)| *n == looking(vote(3, 12, 1), 5)));
        e.on_notification(4, looking(vote(3, 12, 1), 5), 3);
        assert_eq!(e.next_deadline(), Some(3 + MIN_NOTIFICATION_INTERVAL_MS));
        // Round 6 with a better vote: taken.
        let out = e.on_notification(2, looking(vote(2, 20, 1), 6), 4);
        assert_eq!(sends(&out).len(), 4);
        assert!(sends(&out)
            .iter()
            .all(|(_, n)| *n == looking(vote(2, 20, 1), 6)));
    }

    #[test]
    fn final_wait_drops_a_newer_round_with_a_worse_vote() {
        // Java's final wait only asks "is this vote better?", not "is this round newer?".
        let mut e = election(3, 3, 12, 1, 0);
        e.start(0);
        e.on_notification(1, looking(vote(3, 12, 1), 1), 1);
        assert!(e
            .on_notification(2, looking(vote(2, 11, 1), 9), 2)
            .is_empty());
        assert_eq!(e.logical_clock(), 1);
        let out = e.on_tick(2 + FINALIZE_WAIT_MS);
        assert_eq!(
            decision(&out),
            Some((ServerState::Leading, vote(3, 12, 1), 1))
        );
    }

    #[test]
    fn lower_round_looking_sender_gets_my_vote_and_is_not_counted() {
        let mut e = election(1, 3, 10, 1, 4);
        e.start(0);
        let out = e.on_notification(2, looking(vote(2, 1, 1), 2), 1);
        assert_eq!(sends(&out), vec![(2, looking(vote(1, 10, 1), 5))]);
        assert_eq!(e.logical_clock(), 5);
        assert_eq!(e.proposal(), vote(1, 10, 1));
        // A lower-round FOLLOWING sender gets nothing back.
        let out = e.on_notification(2, note(ServerState::Following, vote(3, 1, 1), 2), 2);
        assert!(out.is_empty());
    }

    #[test]
    fn equal_round_worse_vote_is_recorded_without_broadcast() {
        let mut e = election(3, 3, 12, 1, 0);
        e.start(0);
        let out = e.on_notification(1, looking(vote(1, 10, 1), 1), 1);
        assert!(out.is_empty());
        // Server 1 then comes round to vote 3: quorum {1, 3}.
        e.on_notification(1, looking(vote(3, 12, 1), 1), 2);
        assert_eq!(e.next_deadline(), Some(2 + FINALIZE_WAIT_MS));
    }

    #[test]
    fn notification_timeout_resends_and_doubles() {
        let mut e = election(1, 3, 10, 1, 0).with_notification_intervals(200, 1_000);
        e.start(0);
        let mut now = 0;
        let mut expect = [400, 800, 1_000, 1_000].into_iter();
        for _ in 0..4 {
            now = e.next_deadline().unwrap_or(u64::MAX);
            let out = e.on_tick(now);
            assert_eq!(sends(&out).len(), 2);
            assert_eq!(e.next_deadline(), Some(now + expect.next().unwrap_or(0)));
        }
        // Anything that arrives restarts the poll with the current (long) timeout.
        e.on_notification(2, looking(vote(1, 10, 1), 0), now + 5);
        assert_eq!(e.next_deadline(), Some(now + 5 + 1_000));
    }

    #[test]
    fn late_joiner_with_higher_zxid_follows_the_established_leader() {
        // Servers 1 (leader) and 2 were elected in round 3; server 3 restarts with a higher
        // zxid and logical clock 0. Java's outofelection tally makes it follow 1 anyway.
        let mut e = election(3, 3, 0x2_0000_0009, 2, 0);
        let out = e.start(0);
        assert_eq!(sends(&out).len(), 2);
        let leader_vote = vote(1, 0x2_0000_0001, 2);
        let settled_follower = Settled {
            state: ServerState::Following,
            vote: leader_vote,
            election_epoch: 3,
            logical_clock: 3,
        };
        let settled_leader = Settled {
            state: ServerState::Leading,
            ..settled_follower
        };
        let my_note = looking(vote(3, 0x2_0000_0009, 2), 1);
        let from2 = answer_when_settled(&settled_follower, true, &my_note, CFG);
        let from1 = answer_when_settled(&settled_leader, true, &my_note, CFG);
        let (Some(from2), Some(from1)) = (from2, from1) else {
            panic!("settled servers answer LOOKING voters");
        };
        assert_eq!(from2.election_epoch, 3);
        // A quorum follows 1, but 1 has not said it leads yet: wait.
        assert!(decision(&e.on_notification(2, from2, 10)).is_none());
        let out = e.on_notification(1, from1, 11);
        assert_eq!(
            decision(&out),
            Some((ServerState::Following, leader_vote, 3))
        );
        assert_eq!(e.logical_clock(), 3);
    }

    #[test]
    fn out_of_election_can_lower_the_logical_clock() {
        let mut e = election(3, 3, 5, 1, 41);
        e.start(0);
        let lv = vote(1, 4, 1);
        e.on_notification(2, note(ServerState::Following, lv, 7), 1);
        let out = e.on_notification(1, note(ServerState::Leading, lv, 7), 2);
        assert_eq!(decision(&out), Some((ServerState::Following, lv, 7)));
        assert_eq!(e.logical_clock(), 7);
    }

    #[test]
    fn same_round_settled_votes_count_with_looking_ones() {
        // 5 voters, round 1: 2 and 4 vote 5 while looking, 5 says LEADING. The tally of
        // round 1 has {2, 4, 5} for leader 5.
        let mut e = election(1, 5, 1, 1, 0);
        e.start(0);
        let lv = vote(5, 9, 1);
        e.on_notification(2, note(ServerState::Following, lv, 1), 1);
        e.on_notification(4, note(ServerState::Following, lv, 1), 2);
        let out = e.on_notification(5, note(ServerState::Leading, lv, 1), 3);
        assert_eq!(decision(&out), Some((ServerState::Following, lv, 1)));
    }

    #[test]
    fn settled_votes_of_this_round_match_by_leader_only() {
        // Java records same-round FOLLOWING votes with version 0 and compares them with the
        // (version 2) notification by leader id alone: differing zxids and peer epochs count.
        let mut e = election(1, 3, 1, 1, 0);
        e.start(0);
        e.on_notification(2, note(ServerState::Following, vote(3, 7, 1), 1), 1);
        let out = e.on_notification(3, note(ServerState::Leading, vote(3, 9, 2), 1), 2);
        assert_eq!(decision(&out).map(|d| d.0), Some(ServerState::Following));
    }

    #[test]
    fn out_of_election_votes_need_the_same_peer_epoch() {
        let mut e = election(1, 3, 1, 1, 0);
        e.start(0);
        e.on_notification(2, note(ServerState::Following, vote(3, 7, 1), 4), 1);
        let out = e.on_notification(3, note(ServerState::Leading, vote(3, 9, 2), 4), 2);
        assert!(decision(&out).is_none());
        // A version-0 sender is compared by leader alone.
        let mut old = note(ServerState::Following, vote(3, 7, 1), 4);
        old.version = 0;
        let out = e.on_notification(2, old, 3);
        assert!(decision(&out).is_some());
    }

    #[test]
    fn i_lead_only_if_the_votes_are_of_my_round() {
        let mut e = election(1, 3, 1, 1, 0);
        e.start(0);
        // Others still follow me from round 4, but I am in round 1: no.
        let mine = vote(1, 1, 1);
        e.on_notification(2, note(ServerState::Following, mine, 4), 1);
        let out = e.on_notification(3, note(ServerState::Following, mine, 4), 2);
        assert!(decision(&out).is_none());
    }

    #[test]
    fn non_voters_are_answered_with_the_current_vote_and_ignored() {
        let mut e = election(1, 3, 10, 1, 0);
        let previous = vote(3, 8, 1);
        e.set_current_vote(previous);
        e.start(0);
        let out = e.on_notification(9, looking(vote(i64::MIN, i64::MIN, i64::MIN), 1), 1);
        assert_eq!(sends(&out), vec![(9, looking(previous, 1))]);
        // A voter's vote for a non-voter is not tallied either.
        e.on_notification(2, looking(vote(9, 100, 5), 1), 2);
        assert_eq!(e.proposal(), vote(1, 10, 1));
    }

    #[test]
    fn observer_votes_min_value_and_ends_observing() {
        let mut e = election(4, 3, 50, 9, 0);
        let out = e.start(0);
        // Observers send to the voters only, and propose nobody.
        let s = sends(&out);
        assert_eq!(s.len(), 3);
        assert!(s
            .iter()
            .all(|(_, n)| n.vote == vote(i64::MIN, i64::MIN, i64::MIN)));
        let v = vote(2, 5, 1);
        e.on_notification(1, looking(v, 1), 1);
        e.on_notification(2, looking(v, 1), 2);
        let out = e.on_tick(2 + FINALIZE_WAIT_MS);
        assert_eq!(decision(&out), Some((ServerState::Observing, v, 1)));
    }

    #[test]
    fn server_with_lost_data_does_not_vote_but_joins_a_leader() {
        let mut e = election(1, 3, -1, 0, 0);
        e.start(0);
        assert!(sends(&e.on_notification(2, looking(vote(2, 5, 1), 1), 1)).is_empty());
        assert_eq!(e.proposal(), vote(1, -1, 0));
        let lv = vote(2, 5, 1);
        e.on_notification(3, note(ServerState::Following, lv, 2), 2);
        let out = e.on_notification(2, note(ServerState::Leading, lv, 2), 3);
        assert_eq!(decision(&out), Some((ServerState::Following, lv, 2)));
        // And its -1 votes are ignored by others.
        let mut other = election(2, 3, 5, 1, 0);
        other.start(0);
        other.on_notification(1, looking(vote(1, -1, 9), 1), 1);
        assert_eq!(other.proposal(), vote(2, 5, 1));
    }

    #[test]
    fn weight_zero_candidates_never_win() {
        struct Weighted;
        impl Quorum for Weighted {
            fn is_voter(&self, sid: i64) -> bool {
                (1..=3).contains(&sid)
            }
            fn weight(&self, sid: i64) -> u64 {
                u64::from(sid != 3)
            }
            fn contains_quorum(&self, sids: &BTreeSet<i64>) -> bool {
                sids.iter()
                    .filter(|s| **s != 3 && self.is_voter(**s))
                    .count()
                    >= 2
            }
            fn voters(&self) -> Vec<i64> {
                vec![1, 2, 3]
            }
        }
        let mut e = Election::new(1, Box::new(Weighted), 1, 1, 0, CFG.to_vec());
        e.start(0);
        e.on_notification(3, looking(vote(3, 99, 9), 1), 1);
        assert_eq!(e.proposal(), vote(1, 1, 1));
    }

    #[test]
    fn early_notifications_wait_for_start() {
        let mut e = election(1, 3, 10, 1, 0);
        assert!(e
            .on_notification(3, looking(vote(3, 12, 1), 1), 0)
            .is_empty());
        let out = e.start(1);
        assert_eq!(e.proposal(), vote(3, 12, 1));
        assert!(sends(&out).iter().any(|(_, n)| n.vote == vote(3, 12, 1)));
    }

    #[test]
    fn single_voter_elects_itself() {
        let mut e = election(1, 1, 10, 1, 0);
        let out = e.start(0);
        assert!(sends(&out).is_empty());
        let out = e.on_tick(FINALIZE_WAIT_MS);
        assert_eq!(
            decision(&out),
            Some((ServerState::Leading, vote(1, 10, 1), 1))
        );
    }

    #[test]
    fn settled_answers() {
        let s = Settled {
            state: ServerState::Leading,
            vote: vote(2, 7, 3),
            election_epoch: 4,
            logical_clock: 6,
        };
        let from_looking = looking(vote(1, 1, 1), 9);
        assert_eq!(
            answer_when_settled(&s, true, &from_looking, CFG),
            Some(note(ServerState::Leading, vote(2, 7, 3), 4))
        );
        let from_following = note(ServerState::Following, vote(2, 7, 3), 4);
        assert_eq!(answer_when_settled(&s, true, &from_following, CFG), None);
        // Non-voters get an answer whatever their state, with the logical clock.
        assert_eq!(
            answer_when_settled(&s, false, &from_following, CFG),
            Some(note(ServerState::Leading, vote(2, 7, 3), 6))
        );
        // After deciding, the election answers the same way.
        let mut e = election(3, 3, 12, 1, 0);
        e.start(0);
        e.on_notification(1, looking(vote(3, 12, 1), 1), 1);
        e.on_tick(1 + FINALIZE_WAIT_MS);
        let out = e.on_notification(2, looking(vote(2, 1, 1), 1), 500);
        assert_eq!(
            sends(&out),
            vec![(2, note(ServerState::Leading, vote(3, 12, 1), 1))]
        );
        assert!(decision(&out).is_none());
    }
}

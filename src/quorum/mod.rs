//! The ensemble: peer connections on the election port, Fast Leader Election, and Zab
//! (leader, followers, observers) on the quorum port, all speaking Java ZooKeeper 3.9's
//! quorum protocol so that ferrokeeper and Java servers can form one ensemble.
//!
//! Election (`fle`) is a pure state machine: messages and clock readings in, messages and a
//! decision out. `cnx` is the thin tokio layer that carries its messages; `wire` holds the
//! byte formats; `verifier` decides what counts as a quorum.

pub mod cnx;
pub mod fle;
pub mod peer;
pub mod verifier;
pub mod wire;
pub mod zab;

use std::collections::BTreeSet;

/// A server's state as FLE notifications carry it (Java's `QuorumPeer.ServerState`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ServerState {
    Looking = 0,
    Following = 1,
    Leading = 2,
    Observing = 3,
}

impl ServerState {
    /// The wire value; unknown values are `None` and the notification is dropped.
    pub fn from_i32(v: i32) -> Option<ServerState> {
        Some(match v {
            0 => ServerState::Looking,
            1 => ServerState::Following,
            2 => ServerState::Leading,
            3 => ServerState::Observing,
            _ => return None,
        })
    }

    /// The word `srvr`/`stat`/`mntr` print for this state.
    pub fn mode_name(self) -> &'static str {
        match self {
            ServerState::Looking => "looking",
            ServerState::Following => "follower",
            ServerState::Leading => "leader",
            ServerState::Observing => "observer",
        }
    }
}

/// A proposal of who should lead: the candidate and how recent its history is. Votes are
/// ordered by peer epoch, then zxid, then sid (see [`Vote::beats`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Vote {
    /// The proposed leader's sid.
    pub leader: i64,
    /// The proposed leader's last logged zxid.
    pub zxid: i64,
    /// The proposed leader's currentEpoch.
    pub peer_epoch: i64,
}

impl Vote {
    /// Java's `totalOrderPredicate`: does `self` beat `other`? A candidate of weight 0 never
    /// wins; the caller passes the weight of `self.leader`.
    pub fn beats(&self, other: &Vote, self_weight: u64) -> bool {
        if self_weight == 0 {
            return false;
        }
        (self.peer_epoch, self.zxid, self.leader) > (other.peer_epoch, other.zxid, other.leader)
    }
}

/// One decoded FLE notification (the election-port message, see ZK-PROTOCOL §8.3).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Notification {
    /// The sender's state.
    pub state: ServerState,
    /// The sender's current vote.
    pub vote: Vote,
    /// The sender's logical clock (election round).
    pub election_epoch: i64,
    /// Format version: 0x2 for 3.5+ senders (0 for the 40-byte form, 0x1 for 3.4).
    pub version: i32,
    /// The sender's quorum config text, when the format carries one.
    pub config: Option<Vec<u8>>,
}

/// What an election needs to know about the ensemble's membership.
pub trait Quorum {
    /// Does this sid vote?
    fn is_voter(&self, sid: i64) -> bool;
    /// Its vote weight (1 unless hierarchical quorums give weights; 0 never wins).
    fn weight(&self, sid: i64) -> u64;
    /// Do these sids form a quorum (majority, or hierarchical groups and weights)?
    fn contains_quorum(&self, sids: &BTreeSet<i64>) -> bool;
    /// Every voting sid.
    fn voters(&self) -> Vec<i64>;
}

//! Who is in the ensemble and what counts as a quorum: Java's `QuorumMaj` (more than half of
//! the participants) and `QuorumHierarchical` (a majority of groups, each by a weighted
//! majority), built from zoo.cfg's `server.N` / `group.G` / `weight.N` lines.
//!
//! The verifier also prints itself as Java's `QuorumVerifier.toString()` does, because that
//! text travels on the wire: in every FLE notification and in NEWLEADER. Java peers parse it
//! and compare versions, so the text must be Java's, line for line.

use std::collections::{BTreeMap, BTreeSet};
use std::net::{IpAddr, SocketAddr, ToSocketAddrs};

use crate::config::{
    ConfigError, GroupLine, LearnerType, Membership, ServerConfig, ServerLine, WeightLine,
};
use crate::quorum::Quorum;

/// A client endpoint as the config text shows it (host as written, `0.0.0.0` for a bare port).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClientAddr {
    /// Host or IP literal as written (IPv6 without brackets).
    pub host: String,
    /// Client port.
    pub port: u16,
}

/// One ensemble member (Java's `QuorumPeer.QuorumServer`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Member {
    /// Server id.
    pub sid: i64,
    /// Host as written in the config (resolved only when connecting).
    pub host: String,
    /// Port learners connect to when this member leads.
    pub quorum_port: u16,
    /// Port for election connections.
    pub election_port: u16,
    /// Participant (votes) or observer.
    pub learner_type: LearnerType,
    /// Client endpoint from the `;…` part of the line, or, for this server only, from
    /// clientPort/clientPortAddress.
    pub client: Option<ClientAddr>,
    /// The client endpoint came from clientPort/clientPortAddress rather than the server line:
    /// Java then leaves it out of the config text.
    pub client_from_static: bool,
}

impl Member {
    fn from_line(s: &ServerLine) -> Member {
        Member {
            sid: s.id,
            host: s.host.clone(),
            quorum_port: s.quorum_port,
            election_port: s.election_port,
            learner_type: s.learner_type(),
            client: s.client_port.map(|port| ClientAddr {
                host: s.client_addr.clone().unwrap_or_else(|| "0.0.0.0".into()),
                port,
            }),
            client_from_static: false,
        }
    }

    /// The value of this member's `server.N=` line in Java's format
    /// (`QuorumServer.toString`): `host:quorumPort:electionPort:role[;clientHost:clientPort]`,
    /// IPv6 hosts in brackets.
    pub fn config_value(&self) -> String {
        let mut s = format!(
            "{}:{}:{}:{}",
            delimited(&self.host),
            self.quorum_port,
            self.election_port,
            self.learner_type.as_str()
        );
        if let (Some(c), false) = (&self.client, self.client_from_static) {
            s.push_str(&format!(";{}:{}", delimited(&c.host), c.port));
        }
        s
    }

    /// Resolve the election endpoint (for dialing this member's election port).
    pub fn election_addr(&self) -> Option<SocketAddr> {
        resolve(&self.host, self.election_port)
    }

    /// Resolve the quorum endpoint (for a learner dialing this member as leader).
    pub fn quorum_addr(&self) -> Option<SocketAddr> {
        resolve(&self.host, self.quorum_port)
    }
}

/// Java's `delimitedHostString`: a host containing ':' is an IPv6 literal and gets brackets.
fn delimited(host: &str) -> String {
    if host.contains(':') {
        format!("[{host}]")
    } else {
        host.to_owned()
    }
}

/// Resolve as Java's `InetSocketAddress(host, port)` does: an IP literal as is, otherwise the
/// first IPv4 address of the name (Java prefers IPv4 by default), else the first address.
fn resolve(host: &str, port: u16) -> Option<SocketAddr> {
    if let Ok(ip) = host.parse::<IpAddr>() {
        return Some(SocketAddr::new(ip, port));
    }
    let addrs: Vec<SocketAddr> = match (host, port).to_socket_addrs() {
        Ok(a) => a.collect(),
        Err(e) => {
            tracing::debug!(host, error = %e, "cannot resolve quorum member");
            return None;
        }
    };
    addrs
        .iter()
        .find(|a| a.is_ipv4())
        .or_else(|| addrs.first())
        .copied()
}

/// Hierarchical quorum data (Java's `QuorumHierarchical`): disjoint groups of servers, and a
/// weight per server.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Hierarchy {
    /// gid → member sids, ascending.
    groups: BTreeMap<i64, Vec<i64>>,
    /// sid → gid.
    server_group: BTreeMap<i64, i64>,
    /// sid → weight: every weight line, plus 1 for each participant without one.
    weights: BTreeMap<i64, u64>,
    /// gid → total weight of its members.
    group_weight: BTreeMap<i64, u64>,
    /// Groups with non-zero total weight (zero-weight groups do not count).
    num_groups: usize,
}

impl Hierarchy {
    /// The group `sid` belongs to.
    pub fn group_of(&self, sid: i64) -> Option<i64> {
        self.server_group.get(&sid).copied()
    }

    /// Every group id with its member sids, both ascending.
    pub fn groups(&self) -> impl Iterator<Item = (i64, &[i64])> {
        self.groups.iter().map(|(g, m)| (*g, m.as_slice()))
    }

    /// A server's weight (explicit, or the default 1 for a participant).
    pub fn weight(&self, sid: i64) -> Option<u64> {
        self.weights.get(&sid).copied()
    }

    /// Java's `QuorumHierarchical.containsQuorum`: sum the weights of `sids` per group; a
    /// group is won when that sum exceeds half its total weight (integer halving); a quorum
    /// needs more than half of the non-zero-weight groups (integer halving again).
    fn contains_quorum<'a>(&self, sids: impl Iterator<Item = &'a i64>) -> bool {
        let mut per_group: BTreeMap<i64, u64> = BTreeMap::new();
        let mut any = false;
        for sid in sids {
            any = true;
            if let (Some(g), Some(w)) = (self.server_group.get(sid), self.weights.get(sid)) {
                *per_group.entry(*g).or_default() += w;
            }
        }
        if !any {
            return false;
        }
        let won = per_group
            .iter()
            .filter(|(g, sum)| **sum > self.group_weight.get(g).copied().unwrap_or(0) / 2)
            .count();
        won > self.num_groups / 2
    }
}

/// The ensemble membership and quorum rule, as Java's `QuorumVerifier`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QuorumVerifier {
    members: BTreeMap<i64, Member>,
    hierarchy: Option<Hierarchy>,
    version: i64,
}

impl QuorumVerifier {
    /// Build the verifier from a parsed zoo.cfg (membership lines plus, for our own member,
    /// clientPort/clientPortAddress when its line has no client part, as Java's
    /// `setupClientPort` does). Errors name the file, line and key of the offending line.
    pub fn from_config(cfg: &ServerConfig) -> Result<QuorumVerifier, ConfigError> {
        let mut v = Self::build(
            &cfg.membership_origin,
            &cfg.servers,
            &cfg.groups,
            &cfg.weights,
            cfg.config_version,
        )?;
        if let (Some(id), Some(port)) = (cfg.myid, cfg.client_port) {
            if let Some(me) = v.members.get_mut(&id) {
                if me.client.is_none() {
                    me.client = Some(ClientAddr {
                        host: cfg
                            .client_port_address
                            .map_or_else(|| "0.0.0.0".to_owned(), |ip| ip.to_string()),
                        port,
                    });
                    me.client_from_static = true;
                }
            }
        }
        Ok(v)
    }

    /// Parse a config text as peers send it (FLE notifications, NEWLEADER) or as a dynamic
    /// config file holds it: only `server.`, `group.`, `weight.` and `version` keys (Java's
    /// `QuorumPeer.configFromString`). `origin` names the source in errors.
    pub fn from_config_text(text: &str, origin: &str) -> Result<QuorumVerifier, ConfigError> {
        let m = Membership::parse_text(text, origin)?;
        Self::build(
            origin,
            &m.servers,
            &m.groups,
            &m.weights,
            m.version.map_or(0, |v| v.0),
        )
    }

    fn build(
        origin: &str,
        servers: &[ServerLine],
        groups: &[GroupLine],
        weights: &[WeightLine],
        version: i64,
    ) -> Result<QuorumVerifier, ConfigError> {
        let bad = |line: usize, key: String, why: String| ConfigError::BadValue {
            origin: origin.to_owned(),
            line,
            key,
            why,
        };
        let mut members = BTreeMap::new();
        for s in servers {
            if members.insert(s.id, Member::from_line(s)).is_some() {
                return Err(bad(
                    s.line,
                    format!("server.{}", s.id),
                    "server id given twice".into(),
                ));
            }
        }
        // Java: any group or weight key makes the quorum hierarchical.
        let hierarchy = if groups.is_empty() && weights.is_empty() {
            None
        } else {
            let mut h = Hierarchy {
                groups: BTreeMap::new(),
                server_group: BTreeMap::new(),
                weights: BTreeMap::new(),
                group_weight: BTreeMap::new(),
                num_groups: 0,
            };
            let mut group_line = BTreeMap::new();
            for g in groups {
                for sid in &g.members {
                    if let Some(other) = h.server_group.insert(*sid, g.gid) {
                        return Err(bad(
                            g.line,
                            format!("group.{}", g.gid),
                            format!("server {sid} is also in group {other}"),
                        ));
                    }
                }
                let mut sorted = g.members.clone();
                sorted.sort_unstable();
                if h.groups.insert(g.gid, sorted).is_some() {
                    return Err(bad(
                        g.line,
                        format!("group.{}", g.gid),
                        "group id given twice".into(),
                    ));
                }
                group_line.insert(g.gid, g.line);
            }
            for w in weights {
                h.weights.insert(w.sid, w.weight);
            }
            for m in members.values() {
                if m.learner_type != LearnerType::Participant {
                    continue;
                }
                if !h.server_group.contains_key(&m.sid) {
                    let line = servers.iter().find(|s| s.id == m.sid).map_or(0, |s| s.line);
                    return Err(bad(
                        line,
                        format!("server.{}", m.sid),
                        format!(
                            "server {} is in no group: with group/weight lines every \
                             participant must be in exactly one group.G line",
                            m.sid
                        ),
                    ));
                }
                h.weights.entry(m.sid).or_insert(1);
            }
            for (sid, gid) in &h.server_group {
                // Java would fail with a NullPointerException here.
                let Some(w) = h.weights.get(sid) else {
                    return Err(bad(
                        group_line.get(gid).copied().unwrap_or(0),
                        format!("group.{gid}"),
                        format!(
                            "server {sid} is not a participant server.{sid} line and has no \
                             weight.{sid} line"
                        ),
                    ));
                };
                *h.group_weight.entry(*gid).or_default() += w;
            }
            h.num_groups = h.group_weight.values().filter(|w| **w > 0).count();
            if h.num_groups == 0 {
                tracing::warn!("every group weighs 0: no set of servers can form a quorum");
            }
            Some(h)
        };
        Ok(QuorumVerifier {
            members,
            hierarchy,
            version,
        })
    }

    /// The config version (0 for a static config). A Java leader bumps a version-0 config to
    /// its NEWLEADER zxid when reconfig is enabled; see [`QuorumVerifier::with_version`].
    pub fn version(&self) -> i64 {
        self.version
    }

    /// The same membership under another version (Java's `setVersion`).
    pub fn with_version(mut self, version: i64) -> QuorumVerifier {
        self.version = version;
        self
    }

    /// A member by sid.
    pub fn member(&self, sid: i64) -> Option<&Member> {
        self.members.get(&sid)
    }

    /// Every member (participants and observers), ascending by sid.
    pub fn members(&self) -> impl Iterator<Item = &Member> {
        self.members.values()
    }

    /// Observer sids, ascending.
    pub fn observers(&self) -> Vec<i64> {
        self.members
            .values()
            .filter(|m| m.learner_type == LearnerType::Observer)
            .map(|m| m.sid)
            .collect()
    }

    /// The group/weight data when the quorum is hierarchical.
    pub fn hierarchy(&self) -> Option<&Hierarchy> {
        self.hierarchy.as_ref()
    }

    /// Resolve a member's election endpoint; None for an unknown sid or an unresolvable host.
    pub fn election_addr(&self, sid: i64) -> Option<SocketAddr> {
        self.member(sid)?.election_addr()
    }

    /// Resolve a member's quorum (leader) endpoint; None for an unknown sid or an unresolvable
    /// host.
    pub fn quorum_addr(&self, sid: i64) -> Option<SocketAddr> {
        self.member(sid)?.quorum_addr()
    }

    /// Java's `QuorumVerifier.toString()`, byte for byte: one `server.N=…\n` line per member,
    /// for a hierarchical quorum `group.G=…\n` and `weight.N=…\n` lines, then
    /// `version=<hex>` with no final newline. Entries come in Java `HashMap` iteration order
    /// (bucket of the id's hash, which is ascending for small ids).
    pub fn to_config_text(&self) -> String {
        let mut out = String::new();
        for sid in java_hashmap_order(self.members.keys().copied()) {
            if let Some(m) = self.members.get(&sid) {
                out.push_str(&format!("server.{sid}={}\n", m.config_value()));
            }
        }
        if let Some(h) = &self.hierarchy {
            let mut lists: BTreeMap<i64, String> = BTreeMap::new();
            for sid in java_hashmap_order(h.server_group.keys().copied()) {
                if let Some(gid) = h.server_group.get(&sid) {
                    let list = lists.entry(*gid).or_default();
                    if !list.is_empty() {
                        list.push(':');
                    }
                    list.push_str(&sid.to_string());
                }
            }
            for gid in java_hashmap_order(lists.keys().copied()) {
                if let Some(list) = lists.get(&gid) {
                    out.push_str(&format!("group.{gid}={list}\n"));
                }
            }
            for sid in java_hashmap_order(h.weights.keys().copied()) {
                if let Some(w) = h.weights.get(&sid) {
                    out.push_str(&format!("weight.{sid}={w}\n"));
                }
            }
        }
        // Long.toHexString: two's complement, lower case, no padding.
        out.push_str(&format!("version={:x}", self.version));
        out
    }
}

/// The order a `java.util.HashMap<Long, …>` filled with `keys` iterates in: by bucket index
/// (`hash ^ hash >>> 16` masked by the table size, which starts at 16 and doubles whenever
/// the map holds more than 3/4 of it). Keys sharing a bucket are in insertion order in Java;
/// here ascending, which is what a config written in id order produces.
fn java_hashmap_order(keys: impl IntoIterator<Item = i64>) -> Vec<i64> {
    let mut keys: Vec<i64> = keys.into_iter().collect();
    keys.sort_unstable();
    keys.dedup();
    let mut cap = 16usize;
    while keys.len() > cap / 4 * 3 {
        cap *= 2;
    }
    let bucket = |k: i64| {
        let k = k as u64;
        let h = (k ^ (k >> 32)) as u32; // Long.hashCode
        ((h ^ (h >> 16)) as usize) & (cap - 1)
    };
    keys.sort_by_key(|k| (bucket(*k), *k));
    keys
}

impl Quorum for QuorumVerifier {
    fn is_voter(&self, sid: i64) -> bool {
        self.members
            .get(&sid)
            .is_some_and(|m| m.learner_type == LearnerType::Participant)
    }

    /// Majority quorums weigh every sid 1 (Java's `QuorumMaj.getWeight`); hierarchical ones
    /// use the weight lines (an sid without a weight, which Java would not survive, weighs 0).
    fn weight(&self, sid: i64) -> u64 {
        match &self.hierarchy {
            None => 1,
            Some(h) => h.weight(sid).unwrap_or(0),
        }
    }

    /// Only voters count (Java's ack trackers drop everyone else before asking). Majority:
    /// more than half of the voters (`size > voters / 2`); hierarchical: see [`Hierarchy`].
    fn contains_quorum(&self, sids: &BTreeSet<i64>) -> bool {
        let mut voting = sids.iter().filter(|s| self.is_voter(**s));
        match &self.hierarchy {
            None => {
                let voters = self
                    .members
                    .values()
                    .filter(|m| m.learner_type == LearnerType::Participant)
                    .count();
                voting.count() > voters / 2
            }
            Some(h) => h.contains_quorum(&mut voting),
        }
    }

    fn voters(&self) -> Vec<i64> {
        self.members
            .values()
            .filter(|m| m.learner_type == LearnerType::Participant)
            .map(|m| m.sid)
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn text(t: &str) -> QuorumVerifier {
        QuorumVerifier::from_config_text(t, "test").expect("valid config text")
    }

    fn set(s: &[i64]) -> BTreeSet<i64> {
        s.iter().copied().collect()
    }

    fn ensemble(voters: i64, observers: i64) -> QuorumVerifier {
        let mut t = String::new();
        for i in 1..=voters {
            t.push_str(&format!("server.{i}=10.0.0.{i}:2888:3888\n"));
        }
        for i in voters + 1..=voters + observers {
            t.push_str(&format!("server.{i}=10.0.0.{i}:2888:3888:observer\n"));
        }
        text(&t)
    }

    #[test]
    fn majority_arithmetic_one_to_seven_voters() {
        for n in 1..=7i64 {
            let q = ensemble(n, 2);
            assert_eq!(q.voters(), (1..=n).collect::<Vec<_>>());
            assert_eq!(q.observers(), vec![n + 1, n + 2]);
            let need = n / 2 + 1;
            let yes: BTreeSet<i64> = (1..=need).collect();
            let no: BTreeSet<i64> = (1..need).collect();
            assert!(q.contains_quorum(&yes), "{n} voters, {need} acks");
            assert!(!q.contains_quorum(&no), "{n} voters, {} acks", need - 1);
            // Observers never help.
            let mut with_obs = no.clone();
            with_obs.extend([n + 1, n + 2]);
            assert!(!q.contains_quorum(&with_obs), "{n} voters + observers");
            assert_eq!(q.weight(1), 1);
            assert!(q.is_voter(1) && !q.is_voter(n + 1) && !q.is_voter(99));
        }
        assert!(!ensemble(3, 0).contains_quorum(&set(&[])));
        // 4 voters: 2 is not enough, 3 is.
        assert!(!ensemble(4, 0).contains_quorum(&set(&[1, 4])));
        assert!(ensemble(4, 0).contains_quorum(&set(&[1, 2, 4])));
    }

    const NINE: &str = "server.1=h1:2888:3888\nserver.2=h2:2888:3888\nserver.3=h3:2888:3888\n\
        server.4=h4:2888:3888\nserver.5=h5:2888:3888\nserver.6=h6:2888:3888\n\
        server.7=h7:2888:3888\nserver.8=h8:2888:3888\nserver.9=h9:2888:3888\n\
        group.1=1:2:3\ngroup.2=4:5:6\ngroup.3=7:8:9\n";

    #[test]
    fn hierarchical_three_groups_of_three() {
        let mut t = NINE.to_owned();
        for i in 1..=9 {
            t.push_str(&format!("weight.{i}=1\n"));
        }
        let q = text(&t);
        // Two of three groups, each by 2 of 3.
        assert!(q.contains_quorum(&set(&[1, 2, 4, 5])));
        // All of one group and one of another: only one group won.
        assert!(!q.contains_quorum(&set(&[1, 2, 3, 4])));
        // A majority of servers, but only one group won.
        assert!(!q.contains_quorum(&set(&[1, 2, 3, 4, 7])));
        assert!(q.contains_quorum(&set(&[1, 2, 4, 7, 9])));
        assert!(q.contains_quorum(&set(&[1, 2, 4, 5, 7])));
        assert!(!q.contains_quorum(&set(&[])));
        assert_eq!(q.hierarchy().and_then(|h| h.group_of(5)), Some(2));
        // Weights default to 1 without weight lines.
        assert_eq!(text(NINE).to_config_text(), q.to_config_text());
    }

    #[test]
    fn hierarchical_weights_and_zero_weight_groups() {
        // Group 3 weighs nothing: it does not count, so 1 of the 2 remaining groups is not a
        // majority (1 > 2/2 is false), both are.
        let t = format!("{NINE}weight.7=0\nweight.8=0\nweight.9=0\nweight.1=3\n");
        let q = text(&t);
        assert_eq!(q.weight(7), 0);
        assert_eq!(q.weight(1), 3);
        assert!(!q.contains_quorum(&set(&[1, 7, 8, 9])));
        // Server 1 alone wins group 1 (3 > 5/2); with 4 and 5 group 2 too.
        assert!(q.contains_quorum(&set(&[1, 4, 5])));
        assert!(!q.contains_quorum(&set(&[2, 3, 4, 5])));
    }

    #[test]
    fn hierarchical_errors() {
        let e = QuorumVerifier::from_config_text(
            "server.1=a:1:2\nserver.2=b:1:2\nserver.3=c:1:2\ngroup.1=1:2\n",
            "zoo.cfg",
        )
        .unwrap_err()
        .to_string();
        assert!(
            e.starts_with("zoo.cfg:3: server.3: server 3 is in no group"),
            "{e}"
        );
        let e =
            QuorumVerifier::from_config_text("server.1=a:1:2\ngroup.1=1\ngroup.2=1\n", "zoo.cfg")
                .unwrap_err()
                .to_string();
        assert!(
            e.starts_with("zoo.cfg:3: group.2: server 1 is already in group 1"),
            "{e}"
        );
        let e = QuorumVerifier::from_config_text("server.1=a:1:2\ngroup.1=1:7\n", "zoo.cfg")
            .unwrap_err()
            .to_string();
        assert!(
            e.starts_with("zoo.cfg:2: group.1: server 7 is not a participant"),
            "{e}"
        );
        // A weight line alone makes the quorum hierarchical (Java's rule).
        let e = QuorumVerifier::from_config_text("server.1=a:1:2\nweight.1=2\n", "zoo.cfg")
            .unwrap_err()
            .to_string();
        assert!(e.contains("server 1 is in no group"), "{e}");
        let e = QuorumVerifier::from_config_text("server.1=a:1:2\nweight.1=-1\n", "x")
            .unwrap_err()
            .to_string();
        assert!(e.starts_with("x:2: weight.1:"), "{e}");
        // A group member without a server line is fine with an explicit weight.
        assert!(
            QuorumVerifier::from_config_text("server.1=a:1:2\ngroup.1=1:7\nweight.7=1\n", "x")
                .is_ok()
        );
    }

    #[test]
    fn config_text_golden() {
        let q = text(
            "server.3=10.0.0.3:2888:3888;2181\nserver.1=zk1.example.com:2888:3888\n\
             server.2=[fe80::2]:2888:3888:participant;[::1]:2182\n\
             server.4=10.0.0.4:2888:3888:observer;10.0.0.4:2181\n",
        );
        assert_eq!(
            q.to_config_text(),
            "server.1=zk1.example.com:2888:3888:participant\n\
             server.2=[fe80::2]:2888:3888:participant;[::1]:2182\n\
             server.3=10.0.0.3:2888:3888:participant;0.0.0.0:2181\n\
             server.4=10.0.0.4:2888:3888:observer;10.0.0.4:2181\n\
             version=0"
        );
        assert_eq!(q.version(), 0);
        let q = q.with_version(0x1_0000_0000);
        assert!(q.to_config_text().ends_with("\nversion=100000000"));
        assert_eq!(text(&q.to_config_text()), q);
        // A version inside the text is read as hex.
        assert_eq!(text("server.1=a:1:2\nversion=1a").version(), 0x1a);
    }

    #[test]
    fn config_text_hierarchical_golden() {
        let q = text(
            "server.1=a:1:2\nserver.2=b:1:2\nserver.3=c:1:2\nserver.4=d:1:2\n\
             group.2=3:4\ngroup.1=2:1\nweight.3=2\nversion=5",
        );
        assert_eq!(
            q.to_config_text(),
            "server.1=a:1:2:participant\nserver.2=b:1:2:participant\n\
             server.3=c:1:2:participant\nserver.4=d:1:2:participant\n\
             group.1=1:2\ngroup.2=3:4\n\
             weight.1=1\nweight.2=1\nweight.3=2\nweight.4=1\n\
             version=5"
        );
        assert_eq!(text(&q.to_config_text()), q);
    }

    #[test]
    fn java_hashmap_order_matches_java() {
        // Small ids: ascending.
        assert_eq!(java_hashmap_order([3, 1, 2]), vec![1, 2, 3]);
        // 16 lands in bucket 0 of a 16-slot table, 17 in bucket 1 next to 1.
        assert_eq!(java_hashmap_order([1, 16, 17, 2]), vec![16, 1, 17, 2]);
        // 13 entries grow the table to 32: 16 and 17 get their own buckets, 40 shares 8's.
        let keys: Vec<i64> = (1..=12).chain([16, 17, 40]).collect();
        assert_eq!(
            java_hashmap_order(keys),
            vec![1, 2, 3, 4, 5, 6, 7, 8, 40, 9, 10, 11, 12, 16, 17]
        );
    }

    #[test]
    fn addresses_resolve() {
        let q = text("server.1=127.0.0.1:2888:3888\nserver.2=[::1]:2889:3889\n");
        assert_eq!(
            q.election_addr(1),
            Some("127.0.0.1:3888".parse().expect("addr"))
        );
        assert_eq!(q.quorum_addr(2), Some("[::1]:2889".parse().expect("addr")));
        assert_eq!(q.quorum_addr(3), None);
        let q = text("server.1=localhost:2888:3888\n");
        assert!(q.election_addr(1).is_some_and(|a| a.port() == 3888));
    }
}

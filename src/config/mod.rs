//! Configuration: zoo.cfg (Java properties syntax) plus Java-style system properties.
//!
//! An operator's existing zoo.cfg and SERVER_JVMFLAGS carry over unchanged: the keys are
//! Java's, unknown zoo.cfg keys become `zookeeper.<key>` properties (Java's prefix rule), and
//! `-D name=value` flags set properties under the names Java reads. Every error names the
//! file, the line and the key.

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr, ToSocketAddrs};
use std::path::{Path, PathBuf};

use thiserror::Error;

use crate::quorum::verifier::QuorumVerifier;

/// A zoo.cfg problem that stops start-up.
#[derive(Debug, Error)]
pub enum ConfigError {
    /// A file (zoo.cfg, dynamic config, myid) cannot be read.
    #[error("{origin}: cannot read: {source}")]
    Read {
        origin: String,
        source: std::io::Error,
    },
    /// A key with a bad value; names file, line and key.
    #[error("{origin}:{line}: {key}: {why}")]
    BadValue {
        origin: String,
        line: usize,
        key: String,
        why: String,
    },
    /// A required key is absent.
    #[error("{origin}: {key} is required")]
    Missing { origin: String, key: String },
    /// A `-D` flag without `=`.
    #[error("bad -D definition {0:?}: expected NAME=VALUE")]
    BadDefine(String),
    /// A setting an ensemble cannot run without (Java: "initLimit is not set").
    #[error("{origin}: {key} is required when running as part of an ensemble")]
    MissingForQuorum { origin: String, key: String },
    /// `<dataDir>/myid` does not exist but the configuration is distributed.
    #[error("{}: myid file is missing (required when running as part of an ensemble)", path.display())]
    MyidMissing { path: PathBuf },
    /// The first line of `<dataDir>/myid` is not a decimal long.
    #[error("{}: myid {content:?} is not a number (the first line must be this server's id)", path.display())]
    BadMyid { path: PathBuf, content: String },
    /// The id in `<dataDir>/myid` has no `server.N` line.
    #[error("{}: myid {id} is not in the server list of {origin}", path.display())]
    MyidNotInServers {
        path: PathBuf,
        id: i64,
        origin: String,
    },
}

/// Java system properties (`zookeeper.*`, `jute.maxbuffer`, `znode.container.*`, …).
#[derive(Debug, Clone, Default)]
pub struct SystemProps(HashMap<String, String>);

impl SystemProps {
    /// The value of a property, as zoo.cfg (prefix rule) or `-D` set it.
    pub fn get(&self, name: &str) -> Option<&str> {
        self.0.get(name).map(String::as_str)
    }

    fn bool(&self, name: &str, default: bool) -> bool {
        match self.get(name).map(|v| v.trim().to_ascii_lowercase()) {
            Some(v) => v == "true" || v == "yes",
            None => default,
        }
    }

    fn num<T: std::str::FromStr>(&self, name: &str, default: T) -> T {
        self.get(name)
            .and_then(|v| v.trim().parse().ok())
            .unwrap_or(default)
    }
}

/// Which four-letter words are enabled (`4lw.commands.whitelist`).
#[derive(Debug, Clone)]
pub struct FourLetterWhitelist {
    all: bool,
    words: Vec<String>,
}

impl Default for FourLetterWhitelist {
    fn default() -> Self {
        FourLetterWhitelist {
            all: false,
            words: vec!["srvr".into()],
        }
    }
}

impl FourLetterWhitelist {
    /// Parse the comma-separated word list (`*` allows every word).
    pub fn parse(v: &str) -> FourLetterWhitelist {
        let words: Vec<String> = v
            .split(',')
            .map(|w| w.trim().to_owned())
            .filter(|w| !w.is_empty())
            .collect();
        FourLetterWhitelist {
            all: words.iter().any(|w| w == "*"),
            words,
        }
    }

    /// May this four-letter word run?
    pub fn allows(&self, word: &str) -> bool {
        self.all || self.words.iter().any(|w| w == word)
    }
}

/// A member's role in the ensemble (Java's `LearnerType`): participants vote, observers only
/// follow the leader's commits.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum LearnerType {
    /// Votes in elections and acks proposals.
    #[default]
    Participant,
    /// Learns committed txns (INFORM) but never votes.
    Observer,
}

impl LearnerType {
    /// The word the config text uses (`server.N=…:participant`).
    pub fn as_str(self) -> &'static str {
        match self {
            LearnerType::Participant => "participant",
            LearnerType::Observer => "observer",
        }
    }
}

/// One `server.N=host:quorumPort:electionPort[:role][;[clientHost:]clientPort]` line, kept as
/// written so that the quorum verifier can rebuild Java's config text from it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServerLine {
    /// The server id N.
    pub id: i64,
    /// Host as written (IPv6 without its brackets); resolved only when connecting.
    pub host: String,
    /// Port followers use to reach this server when it leads (e.g. 2888).
    pub quorum_port: u16,
    /// Port for leader election (e.g. 3888).
    pub election_port: u16,
    /// `:observer` role (the default role is participant).
    pub observer: bool,
    /// Client host after `;`, when the line gives `host:port` (None for a bare port, which
    /// Java reads as 0.0.0.0).
    pub client_addr: Option<String>,
    /// Client port after `;`.
    pub client_port: Option<u16>,
    /// Line number in the file the line came from (for errors).
    pub line: usize,
}

impl ServerLine {
    /// The role this line gives the server.
    pub fn learner_type(&self) -> LearnerType {
        if self.observer {
            LearnerType::Observer
        } else {
            LearnerType::Participant
        }
    }
}

/// One `group.G=sid:sid:…` line (hierarchical quorums).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GroupLine {
    /// The group id G.
    pub gid: i64,
    /// The member sids, in the order written.
    pub members: Vec<i64>,
    /// Line number (for errors).
    pub line: usize,
}

/// One `weight.SID=W` line (hierarchical quorums; a participant without one weighs 1).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WeightLine {
    /// The server id.
    pub sid: i64,
    /// Its vote weight; 0 means it never decides anything.
    pub weight: u64,
    /// Line number (for errors).
    pub line: usize,
}

/// What a distributed (ensemble) configuration adds on top of the standalone settings. Present
/// in [`ServerConfig::quorum`] exactly when Java's `QuorumPeerConfig.isDistributed()` holds.
#[derive(Debug, Clone)]
pub struct QuorumConfig {
    /// This server's id, from `<dataDir>/myid`.
    pub myid: i64,
    /// Where the id came from (for messages).
    pub myid_path: PathBuf,
    /// Ticks a learner may take to connect to and sync with the leader.
    pub init_limit: u32,
    /// Ticks a learner may lag behind the leader before it is dropped.
    pub sync_limit: u32,
    /// This server's role as its own `server.N` line gives it.
    pub learner_type: LearnerType,
    /// The membership: who votes, their addresses, and what counts as a quorum.
    pub verifier: QuorumVerifier,
}

impl QuorumConfig {
    /// This server's own entry (always present: load checks that myid has a server line).
    pub fn me(&self) -> Option<&crate::quorum::verifier::Member> {
        self.verifier.member(self.myid)
    }
}

/// The server's typed configuration.
#[derive(Debug, Clone)]
pub struct ServerConfig {
    /// `tickTime` in ms: the unit of session timeouts, initLimit and syncLimit.
    pub tick_time: u32,
    /// `dataDir`: snapshots, epoch files and myid.
    pub data_dir: PathBuf,
    /// `dataLogDir` (defaults to dataDir): transaction logs.
    pub data_log_dir: PathBuf,
    /// The client port to listen on. For an ensemble member whose `server.<myid>` line has a
    /// `;clientPort`, that port (Java: the server line wins; a different clientPort= is an error).
    pub client_port: Option<u16>,
    /// The client listen address (see `client_port` for the server-line rule).
    pub client_port_address: Option<IpAddr>,
    /// `maxClientCnxns`: connections per client IP (0 = unlimited).
    pub max_client_cnxns: u32,
    /// `minSessionTimeout` in ms (default 2 ticks).
    pub min_session_timeout: i32,
    /// `maxSessionTimeout` in ms (default 20 ticks).
    pub max_session_timeout: i32,
    /// `globalOutstandingLimit`: stop reading sockets above this many queued requests.
    pub global_outstanding_limit: usize,
    /// `4lw.commands.whitelist`.
    pub four_letter_whitelist: FourLetterWhitelist,
    /// `initLimit` as written (required when distributed; see [`QuorumConfig::init_limit`]).
    pub init_limit: Option<u32>,
    /// `syncLimit` as written (required when distributed; see [`QuorumConfig::sync_limit`]).
    pub sync_limit: Option<u32>,
    /// The `server.N` lines, in file order.
    pub servers: Vec<ServerLine>,
    /// The `group.G` lines (hierarchical quorums), in file order.
    pub groups: Vec<GroupLine>,
    /// The `weight.N` lines (hierarchical quorums), in file order.
    pub weights: Vec<WeightLine>,
    /// The membership version (`version=<hex>`, or the hex suffix of the dynamic config file's
    /// name); 0 for a static config.
    pub config_version: i64,
    /// The file the server/group/weight lines came from (zoo.cfg or `dynamicConfigFile`).
    pub membership_origin: String,
    /// This server's role: Java's `peerType`, overridden by the role on `server.<myid>`.
    pub peer_type: LearnerType,
    /// `quorumListenOnAllIPs`: bind quorum and election ports on the wildcard address.
    pub quorum_listen_on_all_ips: bool,
    /// `syncEnabled`: observers log txns to disk (see [`ServerConfig::observer_sync_enabled`]).
    pub sync_enabled: bool,
    /// `zookeeper.electionPortBindRetry`: attempts to bind the election port (0 = forever).
    pub election_port_bind_retry: u32,
    /// `zookeeper.leaderServes`: false only for exactly `no`; then the leader takes no clients.
    pub leader_serves: bool,
    /// The id in `<dataDir>/myid`, when that file exists (Java reads it even standalone).
    pub myid: Option<i64>,
    /// Set iff the configuration is distributed (runs as an ensemble member).
    pub quorum: Option<QuorumConfig>,
    /// `snapCount`: txns between snapshots (randomised per server).
    pub snap_count: u64,
    /// `preAllocSize` in KB: txn log preallocation.
    pub pre_alloc_size_kb: u64,
    /// `forceSync`: fsync the txn log (false only for exactly `no`).
    pub force_sync: bool,
    /// `autopurge.snapRetainCount`: snapshots kept by the purge task.
    pub autopurge_snap_retain_count: u32,
    /// `autopurge.purgeInterval` in hours (0 = off).
    pub autopurge_purge_interval_hours: u32,
    /// `standaloneEnabled`: one participant runs standalone (false: an ensemble of one).
    pub standalone_enabled: bool,
    /// `reconfigEnabled`: allow the reconfig opcode.
    pub reconfig_enabled: bool,
    /// `clientPortListenBacklog` (-1 = OS default).
    pub client_port_listen_backlog: i32,
    /// Java system properties: prefixed zoo.cfg keys and `-D` flags.
    pub props: SystemProps,
    /// The zoo.cfg this came from (None for [`ServerConfig::parse_str`]).
    pub source: Option<PathBuf>,
}

/// Keys Java recognises whose feature ferrokeeper does not implement yet: one warning each.
const NOT_YET: &[&str] = &[
    "secureClientPort",
    "secureClientPortAddress",
    "connectToLearnerMasterLimit",
    "observerMasterPort",
    "multiAddress.enabled",
    "sslQuorum",
    "portUnification",
    "metricsProvider.className",
];

/// Parse one `-D NAME=VALUE` flag.
pub fn parse_define(s: &str) -> Result<(String, String), ConfigError> {
    match s.split_once('=') {
        Some((k, v)) if !k.trim().is_empty() => Ok((k.trim().to_owned(), v.trim().to_owned())),
        _ => Err(ConfigError::BadDefine(s.to_owned())),
    }
}

/// Java .properties lines → (key, value, line number). Supports `=`, `:` and whitespace
/// separators, `#`/`!` comments and trailing-backslash continuations.
fn properties(text: &str) -> Vec<(String, String, usize)> {
    let mut out = Vec::new();
    let mut lines = text.lines().enumerate();
    while let Some((i, line)) = lines.next() {
        let mut logical = line.trim_start().to_owned();
        if logical.is_empty() || logical.starts_with('#') || logical.starts_with('!') {
            continue;
        }
        while logical.ends_with('\\') {
            logical.pop();
            match lines.next() {
                Some((_, next)) => logical.push_str(next.trim_start()),
                None => break,
            }
        }
        let sep = logical.find(['=', ':', ' ', '\t']).unwrap_or(logical.len());
        let key = logical[..sep].trim().to_owned();
        let mut rest = logical[sep..].trim_start();
        if rest.starts_with('=') || rest.starts_with(':') {
            rest = &rest[1..];
        }
        out.push((key, rest.trim().to_owned(), i + 1));
    }
    out
}

struct Ctx<'a> {
    origin: &'a str,
}

impl Ctx<'_> {
    fn bad(&self, line: usize, key: &str, why: String) -> ConfigError {
        ConfigError::BadValue {
            origin: self.origin.to_owned(),
            line,
            key: key.to_owned(),
            why,
        }
    }

    fn int<T: std::str::FromStr>(&self, line: usize, key: &str, v: &str) -> Result<T, ConfigError> {
        v.parse()
            .map_err(|_| self.bad(line, key, format!("{v:?} is not a valid number")))
    }

    fn boolean(&self, line: usize, key: &str, v: &str) -> Result<bool, ConfigError> {
        match v.to_ascii_lowercase().as_str() {
            "true" | "yes" => Ok(true),
            "false" | "no" => Ok(false),
            _ => Err(self.bad(line, key, format!("{v:?} is not true/false"))),
        }
    }
}

/// Java's `String.split(c)`: trailing empty pieces are dropped (and "" splits to [""]).
fn java_split(s: &str, c: char) -> Vec<&str> {
    let mut parts: Vec<&str> = s.split(c).collect();
    if parts.len() > 1 {
        while parts.last() == Some(&"") {
            parts.pop();
        }
    }
    parts
}

/// Java's `ConfigUtils.getHostAndPort`: `[ipv6]:a:b` → ["ipv6", "a", "b"], else split on ':'.
fn host_and_port(s: &str) -> Result<Vec<&str>, String> {
    let Some(inner) = s.strip_prefix('[') else {
        return Ok(java_split(s, ':'));
    };
    let end = inner
        .find(']')
        .ok_or_else(|| format!("{s} starts with '[' but has no matching ']:'"))?;
    let host = &inner[..end];
    let after = &inner[end + 1..];
    if after.is_empty() {
        return Ok(vec![host]);
    }
    let Some(rest) = after.strip_prefix(':') else {
        return Err(format!("{s}: expected ':' after ']'"));
    };
    if rest.is_empty() {
        return Err(format!("{s} doesn't have a port after colon"));
    }
    let mut out = vec![host];
    out.extend(java_split(rest, ':'));
    Ok(out)
}

const SERVER_FORMAT: &str =
    "expected host:quorumPort:electionPort[:participant|observer][;[clientHost:]clientPort]";

fn parse_server_line(
    ctx: &Ctx<'_>,
    line: usize,
    key: &str,
    id: i64,
    v: &str,
) -> Result<ServerLine, ConfigError> {
    let bad = |why: String| ctx.bad(line, key, why);
    let server_client = java_split(v, ';');
    if server_client.len() > 2 || server_client.first().is_none_or(|s| s.is_empty()) {
        return Err(bad(format!("{v:?}: {SERVER_FORMAT}")));
    }
    let server = server_client[0];
    if server.contains('|') {
        return Err(bad(format!(
            "{v:?} gives several addresses for server {id}; ferrokeeper does not support \
             multiAddress"
        )));
    }
    let (client_addr, client_port) = match server_client.get(1) {
        None => (None, None),
        Some(c) => {
            let parts = host_and_port(c).map_err(&bad)?;
            match parts.as_slice() {
                [port] => (None, Some(ctx.int(line, key, port)?)),
                [host, port] if !host.is_empty() => {
                    (Some((*host).to_owned()), Some(ctx.int(line, key, port)?))
                }
                _ => return Err(bad(format!("{v:?}: {SERVER_FORMAT}"))),
            }
        }
    };
    let parts = host_and_port(server).map_err(&bad)?;
    if parts.len() < 3 || parts.len() > 4 {
        return Err(bad(format!("{v:?}: {SERVER_FORMAT}")));
    }
    if parts[0].is_empty() {
        return Err(bad(format!("{v:?} has an empty host")));
    }
    let quorum_port: u16 = ctx.int(line, key, parts[1])?;
    let election_port: u16 = ctx.int(line, key, parts[2])?;
    if quorum_port == election_port {
        return Err(bad("quorum and election ports must differ".into()));
    }
    let observer = match parts.get(3).map(|r| r.trim().to_ascii_lowercase()) {
        None => false,
        Some(r) if r == "participant" => false,
        Some(r) if r == "observer" => true,
        Some(_) => return Err(bad(format!("unrecognised peer type {:?}", parts[3]))),
    };
    Ok(ServerLine {
        id,
        host: parts[0].to_owned(),
        quorum_port,
        election_port,
        observer,
        client_addr,
        client_port,
        line,
    })
}

/// The membership lines of one file (zoo.cfg, a dynamic config file, or a config text that a
/// peer sent): `server.N`, `group.G`, `weight.N` and `version`.
#[derive(Debug, Clone, Default)]
pub(crate) struct Membership {
    pub(crate) servers: Vec<ServerLine>,
    pub(crate) groups: Vec<GroupLine>,
    pub(crate) weights: Vec<WeightLine>,
    /// `version=<hex>` and its line.
    pub(crate) version: Option<(i64, usize)>,
}

impl Membership {
    /// Keys that belong to the membership (Java rejects them in zoo.cfg next to
    /// `dynamicConfigFile`).
    fn is_member_key(key: &str) -> bool {
        key.starts_with("server.") || key.starts_with("group.") || key.starts_with("weight.")
    }

    /// Parse text that holds only membership keys (Java's `parseDynamicConfig` without the
    /// backward-compatibility mode): anything else is an error.
    pub(crate) fn parse_text(text: &str, origin: &str) -> Result<Membership, ConfigError> {
        let ctx = Ctx { origin };
        let mut m = Membership::default();
        for (key, v, line) in properties(text) {
            if Self::is_member_key(&key) || key == "version" {
                m.add(&ctx, &key, &v, line)?;
            } else {
                return Err(ctx.bad(line, &key, "unrecognised parameter".into()));
            }
        }
        Ok(m)
    }

    /// Take one membership key; duplicates are errors (Java silently keeps the last one).
    fn add(&mut self, ctx: &Ctx<'_>, key: &str, v: &str, line: usize) -> Result<(), ConfigError> {
        if let Some(n) = key.strip_prefix("server.") {
            let id: i64 = ctx.int(line, key, n)?;
            if let Some(prev) = self.servers.iter().find(|s| s.id == id) {
                return Err(ctx.bad(
                    line,
                    key,
                    format!("server {id} is already defined on line {}", prev.line),
                ));
            }
            self.servers.push(parse_server_line(ctx, line, key, id, v)?);
        } else if let Some(g) = key.strip_prefix("group.") {
            let gid: i64 = ctx.int(line, key, g)?;
            if let Some(prev) = self.groups.iter().find(|x| x.gid == gid) {
                return Err(ctx.bad(
                    line,
                    key,
                    format!("group {gid} is already defined on line {}", prev.line),
                ));
            }
            let mut members = Vec::new();
            for s in v.split(':') {
                let sid: i64 = ctx.int(line, key, s)?;
                let other = self
                    .groups
                    .iter()
                    .find(|x| x.members.contains(&sid))
                    .map(|x| x.gid)
                    .or_else(|| members.contains(&sid).then_some(gid));
                if let Some(other) = other {
                    return Err(ctx.bad(
                        line,
                        key,
                        format!(
                            "server {sid} is already in group {other}; groups must be disjoint"
                        ),
                    ));
                }
                members.push(sid);
            }
            self.groups.push(GroupLine { gid, members, line });
        } else if let Some(n) = key.strip_prefix("weight.") {
            let sid: i64 = ctx.int(line, key, n)?;
            if let Some(prev) = self.weights.iter().find(|x| x.sid == sid) {
                return Err(ctx.bad(
                    line,
                    key,
                    format!(
                        "weight of server {sid} is already set on line {}",
                        prev.line
                    ),
                ));
            }
            let weight: u64 = v
                .parse()
                .map_err(|_| ctx.bad(line, key, format!("{v:?} is not a weight (0 or more)")))?;
            self.weights.push(WeightLine { sid, weight, line });
        } else if key == "version" {
            let version = i64::from_str_radix(v, 16)
                .map_err(|_| ctx.bad(line, key, format!("{v:?} is not a hex version")))?;
            self.version = Some((version, line));
        }
        Ok(())
    }
}

/// The version a dynamic config file's name carries (`zoo.cfg.dynamic.1a` → 0x1a); 0 when the
/// suffix after the last dot is not hex.
fn version_from_filename(name: &str) -> i64 {
    name.rsplit_once('.')
        .and_then(|(_, hex)| i64::from_str_radix(hex, 16).ok())
        .unwrap_or(0)
}

/// Read `<dataDir>/myid`: its first line is this server's id as a decimal long, nothing
/// trimmed but the line end (Java's `BufferedReader.readLine` + `Long.parseLong`). A missing
/// file is an error here; [`ServerConfig::load`] only requires it for a distributed config.
pub fn read_myid(data_dir: &Path) -> Result<i64, ConfigError> {
    let path = data_dir.join("myid");
    read_myid_if_present(&path)?.ok_or(ConfigError::MyidMissing { path })
}

/// `Ok(None)` when `path` is not a file (Java: standalone servers need no myid).
fn read_myid_if_present(path: &Path) -> Result<Option<i64>, ConfigError> {
    if !path.is_file() {
        return Ok(None);
    }
    let bytes = std::fs::read(path).map_err(|source| ConfigError::Read {
        origin: path.display().to_string(),
        source,
    })?;
    let text = String::from_utf8_lossy(&bytes);
    let first = text.split(['\n', '\r']).next().unwrap_or("");
    first
        .parse::<i64>()
        .map(Some)
        .map_err(|_| ConfigError::BadMyid {
            path: path.to_path_buf(),
            content: first.to_owned(),
        })
}

/// Resolve a client host from a server line to one IP (Java: `InetAddress.getByName`, which
/// prefers IPv4).
fn resolve_ip(host: &str, port: u16) -> Option<IpAddr> {
    if let Ok(ip) = host.parse::<IpAddr>() {
        return Some(ip);
    }
    let addrs: Vec<SocketAddr> = (host, port).to_socket_addrs().ok()?.collect();
    addrs
        .iter()
        .find(|a| a.is_ipv4())
        .or_else(|| addrs.first())
        .map(SocketAddr::ip)
}

/// Where the quorum-relevant keys of zoo.cfg were (for errors raised after parsing).
struct Lines<'a> {
    origin: &'a str,
    client_port: Option<usize>,
    client_port_address: Option<usize>,
    init_limit: Option<usize>,
    sync_limit: Option<usize>,
    standalone_enabled: usize,
    peer_type: Option<usize>,
}

impl ServerConfig {
    /// Load `path` and apply `-D` overrides.
    pub fn load(path: &Path, overrides: &[(String, String)]) -> Result<ServerConfig, ConfigError> {
        let origin = path.display().to_string();
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            origin: origin.clone(),
            source,
        })?;
        let mut c = Self::parse_str(&text, &origin, overrides)?;
        c.source = Some(path.to_path_buf());
        Ok(c)
    }

    /// Parse zoo.cfg text; `origin` names it in errors. Relative dataDir/dataLogDir are kept
    /// relative, i.e. resolved against the current directory, as Java does.
    ///
    /// Like Java's `QuorumPeerConfig.parse`, this also reads `<dataDir>/myid` when it exists
    /// and the `dynamicConfigFile` when one is named, and for a distributed configuration
    /// checks everything an ensemble member needs (see [`ServerConfig::quorum`]).
    pub fn parse_str(
        text: &str,
        origin: &str,
        overrides: &[(String, String)],
    ) -> Result<ServerConfig, ConfigError> {
        let ctx = Ctx { origin };
        let mut props = SystemProps::default();
        let mut tick_time = 3000u32;
        let mut data_dir = None;
        let mut data_log_dir = None;
        let mut client_port: Option<(u16, usize)> = None;
        let mut client_port_address: Option<(IpAddr, usize)> = None;
        let mut max_client_cnxns = 60;
        let mut min_st: Option<(i32, usize)> = None;
        let mut max_st: Option<(i32, usize)> = None;
        let mut whitelist: Option<FourLetterWhitelist> = None;
        let mut init_limit: Option<(u32, usize)> = None;
        let mut sync_limit: Option<(u32, usize)> = None;
        let mut membership = Membership::default();
        let mut first_member_key: Option<(String, usize)> = None;
        let mut dynamic_file: Option<(String, usize)> = None;
        let mut peer_type: Option<(LearnerType, usize)> = None;
        let mut quorum_listen_on_all_ips = false;
        let mut sync_enabled = true;
        let mut standalone_enabled: (bool, usize) = (true, 0);
        let mut reconfig_enabled = false;
        let mut backlog = -1;
        let mut snap_retain = 3;
        let mut purge_interval = 0;
        for (key, v, line) in properties(text) {
            let k = key.as_str();
            if NOT_YET.contains(&k) {
                tracing::warn!(key = k, line, "accepted, but not used by ferrokeeper yet");
            }
            match k {
                "tickTime" => tick_time = ctx.int(line, k, &v)?,
                "dataDir" => data_dir = Some(PathBuf::from(&v)),
                "dataLogDir" => data_log_dir = Some(PathBuf::from(&v)),
                "clientPort" => client_port = Some((ctx.int::<u16>(line, k, &v)?, line)),
                "clientPortAddress" => {
                    let ip = v
                        .parse()
                        .map_err(|_| ctx.bad(line, k, format!("{v:?} is not an IP address")))?;
                    client_port_address = Some((ip, line));
                }
                "maxClientCnxns" => max_client_cnxns = ctx.int(line, k, &v)?,
                "minSessionTimeout" => min_st = Some((ctx.int(line, k, &v)?, line)),
                "maxSessionTimeout" => max_st = Some((ctx.int(line, k, &v)?, line)),
                "4lw.commands.whitelist" => whitelist = Some(FourLetterWhitelist::parse(&v)),
                "initLimit" => init_limit = Some((ctx.int(line, k, &v)?, line)),
                "syncLimit" => sync_limit = Some((ctx.int(line, k, &v)?, line)),
                "electionAlg" => {
                    let alg: i32 = ctx.int(line, k, &v)?;
                    if alg != 3 {
                        return Err(ctx.bad(
                            line,
                            k,
                            format!("{alg} is not supported: only 3 (fast leader election) exists"),
                        ));
                    }
                }
                "peerType" => {
                    let t = match v.to_ascii_lowercase().as_str() {
                        "participant" => LearnerType::Participant,
                        "observer" => LearnerType::Observer,
                        _ => {
                            return Err(ctx.bad(
                                line,
                                k,
                                format!("{v:?} is not a peer type (participant or observer)"),
                            ))
                        }
                    };
                    peer_type = Some((t, line));
                }
                "quorumListenOnAllIPs" => quorum_listen_on_all_ips = ctx.boolean(line, k, &v)?,
                "syncEnabled" => sync_enabled = ctx.boolean(line, k, &v)?,
                "dynamicConfigFile" => dynamic_file = Some((v.clone(), line)),
                "standaloneEnabled" => standalone_enabled = (ctx.boolean(line, k, &v)?, line),
                "reconfigEnabled" => reconfig_enabled = ctx.boolean(line, k, &v)?,
                "clientPortListenBacklog" => backlog = ctx.int(line, k, &v)?,
                "autopurge.snapRetainCount" => snap_retain = ctx.int(line, k, &v)?,
                "autopurge.purgeInterval" => purge_interval = ctx.int(line, k, &v)?,
                _ if Membership::is_member_key(k) || k == "version" => {
                    if Membership::is_member_key(k) && first_member_key.is_none() {
                        first_member_key = Some((key.clone(), line));
                    }
                    membership.add(&ctx, k, &v, line)?;
                }
                _ if NOT_YET.contains(&k) => {}
                // Java's prefix rule: anything else becomes the system property zookeeper.<key>.
                _ => {
                    props.0.insert(format!("zookeeper.{k}"), v);
                }
            }
        }
        for (k, v) in overrides {
            props.0.insert(k.clone(), v.clone());
        }
        // Typed numbers that arrive through the prefix rule or -D.
        let prop_num = |name: &str, default: u64| -> Result<u64, ConfigError> {
            match props.get(name) {
                None => Ok(default),
                Some(v) => v.trim().parse().map_err(|_| ConfigError::BadValue {
                    origin: origin.to_owned(),
                    line: 0,
                    key: name.to_owned(),
                    why: format!("{v:?} is not a valid number"),
                }),
            }
        };
        let snap_count = prop_num("zookeeper.snapCount", 100_000)?;
        let pre_alloc_size_kb = prop_num("zookeeper.preAllocSize", 65_536)?;
        let global_outstanding_limit = prop_num("zookeeper.globalOutstandingLimit", 1000)? as usize;
        // Java syncs unless the value is exactly "no".
        let force_sync = props.get("zookeeper.forceSync").map(str::trim) != Some("no");
        // Java's leader takes clients unless the value is exactly "no".
        let leader_serves = props.get("zookeeper.leaderServes").map(str::trim) != Some("no");
        // Java: Integer.getInteger(…, 3); a negative value falls back to 3; 0 retries forever.
        let election_port_bind_retry = match props.get("zookeeper.electionPortBindRetry") {
            None => 3,
            Some(v) => match v.trim().parse::<i64>() {
                Ok(n) if n >= 0 => u32::try_from(n).unwrap_or(u32::MAX),
                Ok(n) => {
                    tracing::warn!(value = n, "electionPortBindRetry must be >= 0; using 3");
                    3
                }
                Err(_) => {
                    return Err(ConfigError::BadValue {
                        origin: origin.to_owned(),
                        line: 0,
                        key: "zookeeper.electionPortBindRetry".into(),
                        why: format!("{v:?} is not a valid number"),
                    })
                }
            },
        };
        let whitelist = whitelist
            .or_else(|| {
                props
                    .get("zookeeper.4lw.commands.whitelist")
                    .map(FourLetterWhitelist::parse)
            })
            .unwrap_or_default();
        let data_dir = data_dir.ok_or_else(|| ConfigError::Missing {
            origin: origin.to_owned(),
            key: "dataDir".into(),
        })?;
        if tick_time == 0 {
            return Err(ConfigError::Missing {
                origin: origin.to_owned(),
                key: "tickTime (non-zero)".into(),
            });
        }
        if let Some((_, line)) = client_port_address {
            if client_port.is_none() {
                return Err(ctx.bad(line, "clientPortAddress", "set without clientPort".into()));
            }
        }
        let min_session_timeout = min_st
            .map(|x| x.0)
            .filter(|v| *v > 0)
            .unwrap_or(tick_time as i32 * 2);
        let max_session_timeout = max_st
            .map(|x| x.0)
            .filter(|v| *v > 0)
            .unwrap_or(tick_time as i32 * 20);
        if min_session_timeout > max_session_timeout {
            let line = min_st.or(max_st).map(|x| x.1).unwrap_or(0);
            return Err(ctx.bad(
                line,
                "minSessionTimeout",
                format!(
                    "{min_session_timeout} is larger than maxSessionTimeout {max_session_timeout}"
                ),
            ));
        }
        // The membership lives either in zoo.cfg or, with dynamicConfigFile, only there.
        let mut membership_origin = origin.to_owned();
        if let Some((file, line)) = dynamic_file {
            if let Some((key, kline)) = first_member_key {
                return Err(ctx.bad(
                    kline,
                    &key,
                    format!("must be in the dynamic config file {file} (dynamicConfigFile, line {line})"),
                ));
            }
            let dyn_text = std::fs::read_to_string(&file).map_err(|source| ConfigError::Read {
                origin: file.clone(),
                source,
            })?;
            membership = Membership::parse_text(&dyn_text, &file)?;
            if let Some((_, vline)) = membership.version {
                return Err(ConfigError::BadValue {
                    origin: file.clone(),
                    line: vline,
                    key: "version".into(),
                    why: "a dynamic config file carries its version in its name, not inside".into(),
                });
            }
            membership.version = Some((version_from_filename(&file), 0));
            membership_origin = file;
        }
        let mut c = ServerConfig {
            tick_time,
            data_log_dir: data_log_dir.unwrap_or_else(|| data_dir.clone()),
            data_dir,
            client_port: client_port.map(|x| x.0),
            client_port_address: client_port_address.map(|x| x.0),
            max_client_cnxns,
            min_session_timeout,
            max_session_timeout,
            global_outstanding_limit,
            four_letter_whitelist: whitelist,
            init_limit: init_limit.map(|x| x.0),
            sync_limit: sync_limit.map(|x| x.0),
            servers: membership.servers,
            groups: membership.groups,
            weights: membership.weights,
            config_version: membership.version.map_or(0, |x| x.0),
            membership_origin,
            peer_type: peer_type.map_or(LearnerType::Participant, |x| x.0),
            quorum_listen_on_all_ips,
            sync_enabled,
            election_port_bind_retry,
            leader_serves,
            myid: None,
            quorum: None,
            snap_count,
            pre_alloc_size_kb,
            force_sync,
            autopurge_snap_retain_count: snap_retain,
            autopurge_purge_interval_hours: purge_interval,
            standalone_enabled: standalone_enabled.0,
            reconfig_enabled,
            client_port_listen_backlog: backlog,
            props,
            source: None,
        };
        c.setup_quorum(&Lines {
            origin,
            client_port: client_port.map(|x| x.1),
            client_port_address: client_port_address.map(|x| x.1),
            init_limit: init_limit.map(|x| x.1),
            sync_limit: sync_limit.map(|x| x.1),
            standalone_enabled: standalone_enabled.1,
            peer_type: peer_type.map(|x| x.1),
        })?;
        Ok(c)
    }

    /// Java's `setupQuorumPeerConfig`, in its order: the membership and its voter counts, myid,
    /// the client address, the peer type, then what a distributed config requires.
    fn setup_quorum(&mut self, lines: &Lines) -> Result<(), ConfigError> {
        let origin = self.membership_origin.clone();
        let bad = |line: usize, key: String, why: String| ConfigError::BadValue {
            origin: origin.clone(),
            line,
            key,
            why,
        };
        // Groups and weights are validated here, before myid is read, as in Java (whose
        // parseDynamicConfig builds the verifier first); the final verifier is built below,
        // once our own client address is known.
        QuorumVerifier::from_config(self)?;
        let voters = self.servers.iter().filter(|s| !s.observer).count();
        let first_observer = self.servers.iter().find(|s| s.observer);
        if voters == 0 {
            if !self.standalone_enabled {
                return Err(ConfigError::BadValue {
                    origin: lines.origin.to_owned(),
                    line: lines.standalone_enabled,
                    key: "standaloneEnabled".into(),
                    why: "false needs at least one participant server.N line".into(),
                });
            }
            if let Some(o) = first_observer {
                return Err(bad(
                    o.line,
                    format!("server.{}", o.id),
                    "observers without participants are not a valid configuration".into(),
                ));
            }
        } else if voters == 1 && self.standalone_enabled {
            // Java keeps this for HBase's sake: a single server line means standalone.
            if let Some(o) = first_observer {
                return Err(bad(
                    o.line,
                    format!("server.{}", o.id),
                    "observers without a quorum (only one participant and standaloneEnabled) \
                     are not a valid configuration"
                        .into(),
                ));
            }
            tracing::warn!("only one server specified: running standalone");
        } else if voters <= 2 {
            tracing::warn!("no server failure will be tolerated: you need at least 3 servers");
        } else if voters % 2 == 0 {
            tracing::warn!("non-optimal configuration: consider an odd number of servers");
        }
        self.check_duplicate_addresses()?;

        let myid_path = self.data_dir.join("myid");
        self.myid = read_myid_if_present(&myid_path)?;

        // Java's setupClientPort: the server line's client address wins; a static
        // clientPort/clientPortAddress that says otherwise is an error.
        if let Some(me) = self
            .myid
            .and_then(|id| self.servers.iter().find(|s| s.id == id))
        {
            if let Some(port) = me.client_port {
                let key = format!("server.{}", me.id);
                let host = me.client_addr.as_deref().unwrap_or("0.0.0.0");
                let ip = resolve_ip(host, port).ok_or_else(|| {
                    bad(
                        me.line,
                        key.clone(),
                        format!("cannot resolve client host {host:?}"),
                    )
                })?;
                if let Some(static_port) = self.client_port {
                    let static_ip = self.client_port_address;
                    let wildcard = static_ip.is_none_or(|ip| ip.is_unspecified());
                    let same = static_port == port && (wildcard || static_ip == Some(ip));
                    if !same {
                        let line = lines.client_port_address.or(lines.client_port).unwrap_or(0);
                        let shown = static_ip.map_or("0.0.0.0".to_owned(), |ip| ip.to_string());
                        return Err(bad(
                            me.line,
                            key,
                            format!(
                                "client address {host}:{port} differs from \
                                 clientPort/clientPortAddress {shown}:{static_port} of {} line \
                                 {line}",
                                lines.origin.to_owned()
                            ),
                        ));
                    }
                }
                self.client_port = Some(port);
                self.client_port_address = Some(ip);
            }
        }

        // Java's setupPeerType: the role on our server line wins over peerType.
        let by_list = match self
            .myid
            .and_then(|id| self.servers.iter().find(|s| s.id == id))
        {
            Some(me) => me.learner_type(),
            None => LearnerType::Participant,
        };
        if by_list != self.peer_type {
            tracing::warn!(
                line = lines.peer_type,
                servers_list = by_list.as_str(),
                peer_type = self.peer_type.as_str(),
                "peer type from the servers list does not match peerType; using the servers list"
            );
            self.peer_type = by_list;
        }

        let verifier = QuorumVerifier::from_config(self)?;
        let distributed = voters > 1 || (!self.standalone_enabled && voters > 0);
        if !distributed {
            return Ok(());
        }
        let src = lines.origin;
        let limit = |v: Option<u32>, line: Option<usize>, key: &str| match (v, line) {
            (Some(0), Some(line)) => Err(ConfigError::BadValue {
                origin: src.to_owned(),
                line,
                key: key.into(),
                why: "must be at least 1 tick in an ensemble".into(),
            }),
            (Some(n), _) => Ok(n),
            (None, _) => Err(ConfigError::MissingForQuorum {
                origin: src.to_owned(),
                key: key.into(),
            }),
        };
        let init_limit = limit(self.init_limit, lines.init_limit, "initLimit")?;
        let sync_limit = limit(self.sync_limit, lines.sync_limit, "syncLimit")?;
        let myid = self.myid.ok_or_else(|| ConfigError::MyidMissing {
            path: myid_path.clone(),
        })?;
        if verifier.member(myid).is_none() {
            return Err(ConfigError::MyidNotInServers {
                path: myid_path,
                id: myid,
                origin: self.membership_origin.clone(),
            });
        }
        self.quorum = Some(QuorumConfig {
            myid,
            myid_path,
            init_limit,
            sync_limit,
            learner_type: self.peer_type,
            verifier,
        });
        Ok(())
    }

    /// Two servers claiming the same endpoint cannot both bind it. Java checks this only on
    /// reconfig; ferrokeeper refuses it at start-up. Client endpoints on a wildcard or loopback
    /// address are per machine and not compared (as Java's check).
    fn check_duplicate_addresses(&self) -> Result<(), ConfigError> {
        let mut seen: Vec<(String, u16, &ServerLine, &str)> = Vec::new();
        for s in &self.servers {
            let mut mine = vec![
                (s.host.to_ascii_lowercase(), s.quorum_port, "quorum port"),
                (
                    s.host.to_ascii_lowercase(),
                    s.election_port,
                    "election port",
                ),
            ];
            if let (Some(h), Some(p)) = (&s.client_addr, s.client_port) {
                let local = h
                    .parse::<IpAddr>()
                    .is_ok_and(|ip| ip.is_unspecified() || ip.is_loopback())
                    || h.eq_ignore_ascii_case("localhost");
                if !local {
                    mine.push((h.to_ascii_lowercase(), p, "client port"));
                }
            }
            for (host, port, what) in &mine {
                if let Some((_, _, other, owhat)) = seen
                    .iter()
                    .find(|(h, p, o, _)| h == host && p == port && o.id != s.id)
                {
                    return Err(ConfigError::BadValue {
                        origin: self.membership_origin.clone(),
                        line: s.line,
                        key: format!("server.{}", s.id),
                        why: format!(
                            "{what} {host}:{port} is also the {owhat} of server.{} (line {})",
                            other.id, other.line
                        ),
                    });
                }
            }
            seen.extend(mine.into_iter().map(|(h, p, w)| (h, p, s, w)));
        }
        Ok(())
    }

    /// `extendedTypesEnabled`: TTL nodes.
    pub fn extended_types_enabled(&self) -> bool {
        self.props.bool("zookeeper.extendedTypesEnabled", false)
    }
    /// `DigestAuthenticationProvider.superDigest`: the super user's digest.
    pub fn super_digest(&self) -> Option<&str> {
        self.props
            .get("zookeeper.DigestAuthenticationProvider.superDigest")
    }
    /// `skipACL`: no ACL checks at all.
    pub fn skip_acl(&self) -> bool {
        self.props.bool("zookeeper.skipACL", false)
    }
    /// `znode.container.checkIntervalMs`: how often empty containers are reaped.
    pub fn container_check_interval_ms(&self) -> u64 {
        self.props.num("znode.container.checkIntervalMs", 60_000)
    }
    /// `znode.container.maxPerMinute`: reaping rate limit.
    pub fn container_max_per_minute(&self) -> u32 {
        self.props.num("znode.container.maxPerMinute", 10_000)
    }
    /// `znode.container.maxNeverUsedIntervalMs`: reap never-used containers after this (0 = never).
    pub fn max_never_used_interval_ms(&self) -> u64 {
        self.props.num("znode.container.maxNeverUsedIntervalMs", 0)
    }
    /// `readonlymode.enabled`: serve reads when out of quorum.
    /// `localSessionsEnabled`: other servers may run local sessions, whose writes a leader
    /// accepts without knowing the session (ferrokeeper's own sessions are always global).
    pub fn local_sessions_enabled(&self) -> bool {
        self.props.bool("zookeeper.localSessionsEnabled", false)
    }

    pub fn read_only_mode_enabled(&self) -> bool {
        self.props.bool("readonlymode.enabled", false)
    }
    /// `jute.maxbuffer` (the property Java reads; zoo.cfg's `jute.maxbuffer` does not set it).
    pub fn jute_max_buffer(&self) -> usize {
        self.props
            .num("jute.maxbuffer", crate::jute::DEFAULT_MAX_BUFFER)
    }
    /// `maxCnxns`: total client connections (0 = unlimited).
    pub fn max_cnxns(&self) -> u32 {
        self.props.num("zookeeper.maxCnxns", 0)
    }
    /// `snapshot.compression.method`: `gz`, `snappy`, or none.
    pub fn snapshot_compression(&self) -> Option<&str> {
        self.props.get("zookeeper.snapshot.compression.method")
    }
    /// `digest.enabled`: log a tree digest with every txn and store it in snapshots.
    pub fn digest_enabled(&self) -> bool {
        self.props.bool("zookeeper.digest.enabled", true)
    }
    /// `snapshot.trust.empty`: start from logs alone when there is no snapshot.
    pub fn trust_empty_snapshot(&self) -> bool {
        self.props.bool("zookeeper.snapshot.trust.empty", false)
    }
    /// Does this server run as an ensemble member (Java's `isDistributed`)? Otherwise it is
    /// standalone, whatever server lines there are.
    pub fn is_distributed(&self) -> bool {
        self.quorum.is_some()
    }
    /// Whether an observer logs txns: `zookeeper.observer.syncEnabled` (zoo.cfg
    /// `observer.syncEnabled` or -D) overrides `syncEnabled`, true only for "true" as Java's
    /// `Boolean.getBoolean`.
    pub fn observer_sync_enabled(&self) -> bool {
        match self.props.get("zookeeper.observer.syncEnabled") {
            Some(v) => v.trim().eq_ignore_ascii_case("true"),
            None => self.sync_enabled,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(t: &str) -> Result<ServerConfig, ConfigError> {
        ServerConfig::parse_str(t, "zoo.cfg", &[])
    }

    #[test]
    fn defaults_follow_tick_time() {
        let c = parse("dataDir=/tmp/x\ntickTime=2000\nclientPort=2181\n").unwrap();
        assert_eq!(c.min_session_timeout, 4000);
        assert_eq!(c.max_session_timeout, 40000);
        assert_eq!(c.max_client_cnxns, 60);
        assert_eq!(c.data_log_dir, PathBuf::from("/tmp/x"));
        assert!(c.four_letter_whitelist.allows("srvr"));
        assert!(!c.four_letter_whitelist.allows("ruok"));
        assert_eq!(c.jute_max_buffer(), 0xfffff);
    }

    #[test]
    fn errors_name_file_line_and_key() {
        let e = parse("dataDir=/x\n\ntickTime=abc\n")
            .unwrap_err()
            .to_string();
        assert_eq!(e, "zoo.cfg:3: tickTime: \"abc\" is not a valid number");
        let e = parse("tickTime=2000\n").unwrap_err().to_string();
        assert_eq!(e, "zoo.cfg: dataDir is required");
        let e = parse("dataDir=/x\nminSessionTimeout=9000\nmaxSessionTimeout=5000\n")
            .unwrap_err()
            .to_string();
        assert!(e.starts_with("zoo.cfg:2: minSessionTimeout"), "{e}");
        let e = parse("dataDir=/x\nclientPortAddress=127.0.0.1\n")
            .unwrap_err()
            .to_string();
        assert!(e.contains(":2: clientPortAddress"), "{e}");
        assert!(parse("dataDir=/x\nclientPort=-1\n").is_err());
        assert!(parse("dataDir=/x\nserver.1=h:1:1\n").is_err());
    }

    #[test]
    fn prefix_rule_and_defines() {
        let c = ServerConfig::parse_str(
            "dataDir=/x\nextendedTypesEnabled=true\njute.maxbuffer=5\nskipACL=yes\n",
            "zoo.cfg",
            &[("znode.container.checkIntervalMs".into(), "100".into())],
        )
        .unwrap();
        assert!(c.extended_types_enabled());
        assert!(c.skip_acl());
        assert_eq!(c.props.get("zookeeper.jute.maxbuffer"), Some("5"));
        assert_eq!(c.jute_max_buffer(), 0xfffff);
        assert_eq!(c.container_check_interval_ms(), 100);
        let c = ServerConfig::parse_str(
            "dataDir=/x\nextendedTypesEnabled=true\n",
            "zoo.cfg",
            &[("zookeeper.extendedTypesEnabled".into(), "false".into())],
        )
        .unwrap();
        assert!(!c.extended_types_enabled());
    }

    #[test]
    fn whitelist_and_defines() {
        let c = parse("dataDir=/x\n4lw.commands.whitelist = ruok, srvr ,mntr\n").unwrap();
        assert!(c.four_letter_whitelist.allows("mntr"));
        assert!(!c.four_letter_whitelist.allows("stat"));
        assert_eq!(parse_define("a.b=c").unwrap(), ("a.b".into(), "c".into()));
        assert!(parse_define("nothing").is_err());
    }

    fn members(t: &str) -> Result<Membership, ConfigError> {
        Membership::parse_text(t, "zoo.cfg")
    }

    fn err(r: Result<impl std::fmt::Debug, ConfigError>) -> String {
        r.expect_err("expected an error").to_string()
    }

    #[test]
    fn server_line_syntax() {
        let m = members(
            "server.1=10.0.0.1:2888:3888\nserver.2=[::1]:2888:3888:Observer;[::1]:2181\n\
             server.3=10.0.0.3:2888:3888;2182\nserver.04=h4:2888:3888:participant;h4:2183\n\
             server.5=h5:2888:3888:;\n",
        )
        .unwrap();
        let s = &m.servers;
        assert_eq!(
            (s[0].host.as_str(), s[0].line, s[0].observer),
            ("10.0.0.1", 1, false)
        );
        assert!(s[1].observer);
        assert_eq!(s[1].host, "::1");
        assert_eq!(s[1].client_addr.as_deref(), Some("::1"));
        assert_eq!(s[1].client_port, Some(2181));
        assert_eq!(
            (s[2].client_addr.as_deref(), s[2].client_port),
            (None, Some(2182))
        );
        assert_eq!(s[3].id, 4);
        assert_eq!(s[3].client_addr.as_deref(), Some("h4"));
        // Java's split drops the trailing empty pieces.
        assert_eq!((s[4].quorum_port, s[4].client_port), (2888, None));

        let e = err(members("server.1=h:2888\n"));
        assert!(
            e.starts_with("zoo.cfg:1: server.1: \"h:2888\": expected host:"),
            "{e}"
        );
        let e = err(members("\nserver.1=h:1:1\n"));
        assert_eq!(
            e,
            "zoo.cfg:2: server.1: quorum and election ports must differ"
        );
        let e = err(members("server.1=h:1:2:leader\n"));
        assert!(e.contains("unrecognised peer type \"leader\""), "{e}");
        let e = err(members("server.1=[::1:1:2\n"));
        assert!(e.contains("has no matching ']:'"), "{e}");
        let e = err(members("server.1=h:1:2|g:1:2\n"));
        assert!(e.contains("multiAddress"), "{e}");
        let e = err(members("server.1=h:1:2;a:b:2181\n"));
        assert!(e.starts_with("zoo.cfg:1: server.1:"), "{e}");
        let e = err(members("server.1=h:1:2;;2181\n"));
        assert!(e.starts_with("zoo.cfg:1: server.1:"), "{e}");
        let e = err(members("server.1=h:1:99999\n"));
        assert!(e.contains("\"99999\" is not a valid number"), "{e}");
        let e = err(members("server.x=h:1:2\n"));
        assert!(e.starts_with("zoo.cfg:1: server.x:"), "{e}");
        let e = err(members("server.1=a:1:2\n# c\nserver.1=b:1:2\n"));
        assert_eq!(
            e,
            "zoo.cfg:3: server.1: server 1 is already defined on line 1"
        );
    }

    #[test]
    fn group_and_weight_lines() {
        let m = members("group.1=1:2:3\ngroup.2=4:5\nweight.4=3\nweight.5=0\n").unwrap();
        assert_eq!(m.groups[1].members, vec![4, 5]);
        assert_eq!((m.groups[1].gid, m.groups[1].line), (2, 2));
        assert_eq!((m.weights[0].sid, m.weights[0].weight), (4, 3));
        assert_eq!(m.weights[1].line, 4);
        let e = err(members("group.1=1:2\ngroup.2=2:3\n"));
        assert_eq!(
            e,
            "zoo.cfg:2: group.2: server 2 is already in group 1; groups must be disjoint"
        );
        let e = err(members("group.1=1:1\n"));
        assert!(
            e.starts_with("zoo.cfg:1: group.1: server 1 is already in group 1"),
            "{e}"
        );
        let e = err(members("group.1=1\ngroup.1=2\n"));
        assert_eq!(
            e,
            "zoo.cfg:2: group.1: group 1 is already defined on line 1"
        );
        let e = err(members("group.1=1:x\n"));
        assert_eq!(e, "zoo.cfg:1: group.1: \"x\" is not a valid number");
        let e = err(members("group.1=\n"));
        assert!(e.starts_with("zoo.cfg:1: group.1:"), "{e}");
        let e = err(members("weight.1=2\nweight.1=3\n"));
        assert_eq!(
            e,
            "zoo.cfg:2: weight.1: weight of server 1 is already set on line 1"
        );
        let e = err(members("weight.1=-2\n"));
        assert_eq!(e, "zoo.cfg:1: weight.1: \"-2\" is not a weight (0 or more)");
        let e = err(members("version=xyz\n"));
        assert_eq!(e, "zoo.cfg:1: version: \"xyz\" is not a hex version");
        let e = err(members("server.1=a:1:2\ntickTime=5\n"));
        assert_eq!(e, "zoo.cfg:2: tickTime: unrecognised parameter");
    }

    /// A data directory holding `myid` (when given) and the zoo.cfg text for it.
    fn dir_with_myid(myid: Option<&str>) -> tempfile::TempDir {
        let d = tempfile::tempdir().expect("tempdir");
        if let Some(id) = myid {
            std::fs::write(d.path().join("myid"), id).expect("write myid");
        }
        d
    }

    const THREE: &str = "server.1=10.0.0.1:2888:3888\nserver.2=10.0.0.2:2888:3888\n\
                         server.3=10.0.0.3:2888:3888\n";

    /// Parse `body` with `dataDir=<d>` as line 1.
    fn parse_in(d: &tempfile::TempDir, body: &str) -> Result<ServerConfig, ConfigError> {
        parse(&format!("dataDir={}\n{body}", d.path().display()))
    }

    #[test]
    fn read_myid_follows_java() {
        let d = dir_with_myid(None);
        let e = err(read_myid(d.path()));
        assert!(
            e.ends_with(
                "/myid: myid file is missing (required when running as part of an ensemble)"
            ),
            "{e}"
        );
        for (content, want) in [
            ("7", 7),
            ("7\n", 7),
            ("12\r\njunk", 12),
            ("+3\n", 3),
            ("-1", -1),
        ] {
            std::fs::write(d.path().join("myid"), content).expect("write");
            assert_eq!(read_myid(d.path()).unwrap(), want, "{content:?}");
        }
        for (content, shown) in [
            ("1 \n", "\"1 \""),
            (" 1", "\" 1\""),
            ("", "\"\""),
            ("one", "\"one\""),
        ] {
            std::fs::write(d.path().join("myid"), content).expect("write");
            let e = err(read_myid(d.path()));
            let path = d.path().join("myid");
            assert_eq!(
                e,
                format!(
                    "{}: myid {shown} is not a number (the first line must be this server's id)",
                    path.display()
                )
            );
        }
    }

    #[test]
    fn distributed_happy_path() {
        let d = dir_with_myid(Some("2\n"));
        let c = parse_in(
            &d,
            &format!(
                "{THREE}server.4=10.0.0.4:2888:3888:observer\ninitLimit=10\nsyncLimit=5\n\
                 clientPort=2181\nquorumListenOnAllIPs=true\nelectionAlg=3\n"
            ),
        )
        .unwrap();
        assert!(c.is_distributed());
        assert!(c.quorum_listen_on_all_ips);
        assert_eq!(c.myid, Some(2));
        let q = c.quorum.as_ref().expect("quorum");
        assert_eq!((q.myid, q.init_limit, q.sync_limit), (2, 10, 5));
        assert_eq!(q.learner_type, LearnerType::Participant);
        assert_eq!(q.me().map(|m| m.election_port), Some(3888));
        assert_eq!(q.verifier.observers(), vec![4]);
        assert_eq!(q.myid_path, d.path().join("myid"));
        // Our client address came from clientPort: Java leaves it out of the text.
        assert_eq!(
            q.verifier.to_config_text(),
            "server.1=10.0.0.1:2888:3888:participant\nserver.2=10.0.0.2:2888:3888:participant\n\
             server.3=10.0.0.3:2888:3888:participant\nserver.4=10.0.0.4:2888:3888:observer\n\
             version=0"
        );
        assert_eq!(
            q.me().and_then(|m| m.client.clone()),
            Some(crate::quorum::verifier::ClientAddr {
                host: "0.0.0.0".into(),
                port: 2181
            })
        );
    }

    #[test]
    fn server_line_client_port_wins() {
        let d = dir_with_myid(Some("2"));
        let base = "server.1=127.0.0.1:2888:3888\nserver.2=127.0.0.1:2889:3889;127.0.0.1:2182\n\
                    initLimit=5\nsyncLimit=2\n";
        // No clientPort line: the server line sets it.
        let c = parse_in(&d, base).unwrap();
        assert_eq!(c.client_port, Some(2182));
        assert_eq!(c.client_port_address, Some("127.0.0.1".parse().unwrap()));
        let text = c.quorum.as_ref().unwrap().verifier.to_config_text();
        assert!(
            text.contains("server.2=127.0.0.1:2889:3889:participant;127.0.0.1:2182\n"),
            "{text}"
        );
        // A wildcard clientPort only has to agree on the port.
        let c = parse_in(&d, &format!("{base}clientPort=2182\n")).unwrap();
        assert_eq!(c.client_port_address, Some("127.0.0.1".parse().unwrap()));
        // A different port is an error naming our server line and the clientPort line.
        let e = err(parse_in(&d, &format!("{base}clientPort=2181\n")));
        assert_eq!(
            e,
            "zoo.cfg:3: server.2: client address 127.0.0.1:2182 differs from \
             clientPort/clientPortAddress 0.0.0.0:2181 of zoo.cfg line 6"
        );
        // A specific clientPortAddress must match the address too.
        let e = err(parse_in(
            &d,
            &format!("{base}clientPort=2182\nclientPortAddress=10.1.1.1\n"),
        ));
        assert!(
            e.starts_with("zoo.cfg:3: server.2: client address 127.0.0.1:2182 differs"),
            "{e}"
        );
        assert!(e.ends_with("10.1.1.1:2182 of zoo.cfg line 7"), "{e}");
    }

    #[test]
    fn distributed_requirements() {
        let d = dir_with_myid(Some("1"));
        let e = err(parse_in(&d, &format!("{THREE}syncLimit=2\n")));
        assert_eq!(
            e,
            "zoo.cfg: initLimit is required when running as part of an ensemble"
        );
        let e = err(parse_in(&d, &format!("{THREE}initLimit=2\n")));
        assert_eq!(
            e,
            "zoo.cfg: syncLimit is required when running as part of an ensemble"
        );
        let e = err(parse_in(&d, &format!("{THREE}initLimit=0\nsyncLimit=2\n")));
        assert_eq!(
            e,
            "zoo.cfg:5: initLimit: must be at least 1 tick in an ensemble"
        );
        let e = err(parse_in(&d, &format!("{THREE}initLimit=x\n")));
        assert_eq!(e, "zoo.cfg:5: initLimit: \"x\" is not a valid number");

        let none = dir_with_myid(None);
        let e = err(parse_in(
            &none,
            &format!("{THREE}initLimit=5\nsyncLimit=2\n"),
        ));
        assert_eq!(
            e,
            format!(
                "{}: myid file is missing (required when running as part of an ensemble)",
                none.path().join("myid").display()
            )
        );
        let nine = dir_with_myid(Some("9\n"));
        let e = err(parse_in(
            &nine,
            &format!("{THREE}initLimit=5\nsyncLimit=2\n"),
        ));
        assert_eq!(
            e,
            format!(
                "{}: myid 9 is not in the server list of zoo.cfg",
                nine.path().join("myid").display()
            )
        );
        // Java reads (and rejects) a garbled myid even when standalone.
        let bad = dir_with_myid(Some("x"));
        let e = err(parse_in(&bad, ""));
        assert!(e.contains("myid \"x\" is not a number"), "{e}");
    }

    #[test]
    fn standalone_or_distributed() {
        let none = dir_with_myid(None);
        // No servers, or a single participant with standaloneEnabled: standalone, no myid needed.
        assert!(!parse_in(&none, "").unwrap().is_distributed());
        let c = parse_in(&none, "server.1=10.0.0.1:2888:3888\n").unwrap();
        assert!(!c.is_distributed());
        assert_eq!(c.servers.len(), 1);
        // standaloneEnabled=false makes a single participant an ensemble of one.
        let d = dir_with_myid(Some("1"));
        let c = parse_in(
            &d,
            "server.1=10.0.0.1:2888:3888\nstandaloneEnabled=false\ninitLimit=5\nsyncLimit=2\n",
        )
        .unwrap();
        let q = c.quorum.expect("distributed");
        assert!(crate::quorum::Quorum::contains_quorum(
            &q.verifier,
            &[1].into()
        ));
        let e = err(parse_in(&none, "standaloneEnabled=false\n"));
        assert_eq!(
            e,
            "zoo.cfg:2: standaloneEnabled: false needs at least one participant server.N line"
        );
        let e = err(parse_in(&none, "server.1=10.0.0.1:2888:3888:observer\n"));
        assert_eq!(
            e,
            "zoo.cfg:2: server.1: observers without participants are not a valid configuration"
        );
        let e = err(parse_in(
            &none,
            "server.1=10.0.0.1:2888:3888\nserver.2=10.0.0.2:2888:3888:observer\n",
        ));
        assert!(
            e.starts_with("zoo.cfg:3: server.2: observers without a quorum"),
            "{e}"
        );
    }

    #[test]
    fn duplicate_endpoints() {
        let none = dir_with_myid(None);
        let e = err(parse_in(
            &none,
            "server.1=10.0.0.1:2888:3888\nserver.2=10.0.0.1:3888:3889\n",
        ));
        assert_eq!(
            e,
            "zoo.cfg:3: server.2: quorum port 10.0.0.1:3888 is also the election port of \
             server.1 (line 2)"
        );
        // Same ports on different hosts, and loopback client ports, are fine.
        assert!(parse_in(
            &none,
            "server.1=a:2888:3888;127.0.0.1:2181\nserver.2=b:2888:3888;127.0.0.1:2181\n\
             server.3=c:2888:3888;2181\nstandaloneEnabled=true\n",
        )
        .is_err_and(|e| matches!(e, ConfigError::MissingForQuorum { .. })));
        let e = err(parse_in(
            &none,
            "server.1=a:2888:3888;10.9.9.9:2181\nserver.2=b:2888:3888;10.9.9.9:2181\n",
        ));
        assert!(
            e.contains("client port 10.9.9.9:2181 is also the client port of server.1"),
            "{e}"
        );
    }

    #[test]
    fn quorum_keys() {
        let none = dir_with_myid(None);
        let e = err(parse_in(&none, "\nelectionAlg=1\n"));
        assert_eq!(
            e,
            "zoo.cfg:3: electionAlg: 1 is not supported: only 3 (fast leader election) exists"
        );
        let e = err(parse_in(&none, "peerType=leader\n"));
        assert_eq!(
            e,
            "zoo.cfg:2: peerType: \"leader\" is not a peer type (participant or observer)"
        );
        let e = err(parse_in(&none, "syncEnabled=maybe\n"));
        assert!(e.starts_with("zoo.cfg:2: syncEnabled:"), "{e}");
        let c = parse_in(
            &none,
            "syncEnabled=false\nleaderServes=no\nelectionPortBindRetry=0\n",
        )
        .unwrap();
        assert!(!c.sync_enabled && !c.observer_sync_enabled());
        assert!(!c.leader_serves);
        assert_eq!(c.election_port_bind_retry, 0);
        let c = ServerConfig::parse_str(
            &format!(
                "dataDir={}\nobserver.syncEnabled=TRUE\nsyncEnabled=false\n",
                none.path().display()
            ),
            "zoo.cfg",
            &[("zookeeper.electionPortBindRetry".into(), "-4".into())],
        )
        .unwrap();
        assert!(c.observer_sync_enabled());
        assert_eq!(c.election_port_bind_retry, 3);
        assert!(c.leader_serves);
        let e = err(parse_in(&none, "electionPortBindRetry=lots\n"));
        assert!(
            e.contains("zookeeper.electionPortBindRetry: \"lots\""),
            "{e}"
        );
        // Standalone: peerType=observer gives way to the servers list (no myid: participant).
        let c = parse_in(&none, "peerType=observer\n").unwrap();
        assert_eq!(c.peer_type, LearnerType::Participant);
    }

    #[test]
    fn observer_role_comes_from_the_server_line() {
        let d = dir_with_myid(Some("4"));
        let body =
            format!("{THREE}server.4=10.0.0.4:2888:3888:observer\ninitLimit=5\nsyncLimit=2\n");
        for extra in ["peerType=observer\n", "peerType=participant\n", ""] {
            let c = parse_in(&d, &format!("{body}{extra}")).unwrap();
            assert_eq!(c.peer_type, LearnerType::Observer, "{extra}");
            assert_eq!(c.quorum.unwrap().learner_type, LearnerType::Observer);
        }
        // And a participant line wins over peerType=observer.
        let d = dir_with_myid(Some("1"));
        let c = parse_in(&d, &format!("{body}peerType=observer\n")).unwrap();
        assert_eq!(c.peer_type, LearnerType::Participant);
    }

    #[test]
    fn hierarchical_config() {
        let d = dir_with_myid(Some("1"));
        let c = parse_in(
            &d,
            &format!(
                "{THREE}server.4=10.0.0.4:2888:3888\ngroup.1=1:2\ngroup.2=3:4\nweight.1=2\n\
                 initLimit=5\nsyncLimit=2\n"
            ),
        )
        .unwrap();
        assert_eq!(c.groups.len(), 2);
        assert_eq!(c.weights[0].line, 8);
        let q = c.quorum.unwrap();
        assert!(crate::quorum::Quorum::contains_quorum(
            &q.verifier,
            &[1, 3, 4].into()
        ));
        assert!(!crate::quorum::Quorum::contains_quorum(
            &q.verifier,
            &[2, 3, 4].into()
        ));
        let e = err(parse_in(
            &d,
            &format!("{THREE}group.1=1:2\ninitLimit=5\nsyncLimit=2\n"),
        ));
        assert!(
            e.starts_with("zoo.cfg:4: server.3: server 3 is in no group"),
            "{e}"
        );
    }

    #[test]
    fn dynamic_config_file() {
        let d = dir_with_myid(Some("2"));
        let dyn_path = d.path().join("zoo.cfg.dynamic.100000000");
        std::fs::write(&dyn_path, THREE).expect("write");
        let c = parse_in(
            &d,
            &format!(
                "dynamicConfigFile={}\ninitLimit=5\nsyncLimit=2\n",
                dyn_path.display()
            ),
        )
        .unwrap();
        assert_eq!(c.config_version, 0x1_0000_0000);
        assert_eq!(c.membership_origin, dyn_path.display().to_string());
        let q = c.quorum.unwrap();
        assert_eq!(q.verifier.version(), 0x1_0000_0000);
        assert!(q.verifier.to_config_text().ends_with("\nversion=100000000"));
        // Membership lines in zoo.cfg next to dynamicConfigFile.
        let e = err(parse_in(
            &d,
            &format!("dynamicConfigFile={}\nserver.1=a:1:2\n", dyn_path.display()),
        ));
        assert!(
            e.starts_with("zoo.cfg:3: server.1: must be in the dynamic config file"),
            "{e}"
        );
        // A version inside the dynamic file, and unknown keys, are errors naming that file.
        std::fs::write(&dyn_path, format!("{THREE}version=5\n")).expect("write");
        let e = err(parse_in(
            &d,
            &format!("dynamicConfigFile={}\n", dyn_path.display()),
        ));
        assert!(
            e.starts_with(&format!("{}:4: version:", dyn_path.display())),
            "{e}"
        );
        std::fs::write(&dyn_path, format!("{THREE}tickTime=5\n")).expect("write");
        let e = err(parse_in(
            &d,
            &format!("dynamicConfigFile={}\n", dyn_path.display()),
        ));
        assert_eq!(
            e,
            format!("{}:4: tickTime: unrecognised parameter", dyn_path.display())
        );
        // An error in a dynamic file's server line names that file.
        std::fs::write(&dyn_path, "server.1=a:1:1\n").expect("write");
        let e = err(parse_in(
            &d,
            &format!("dynamicConfigFile={}\n", dyn_path.display()),
        ));
        assert!(
            e.starts_with(&format!("{}:1: server.1:", dyn_path.display())),
            "{e}"
        );
        assert_eq!(version_from_filename("zoo.cfg.dynamic"), 0);
        assert_eq!(version_from_filename("/a/zoo.cfg.dynamic.1a"), 0x1a);
    }
}

//! Configuration: zoo.cfg (Java properties syntax) plus Java-style system properties.
//!
//! An operator's existing zoo.cfg and SERVER_JVMFLAGS carry over unchanged: the keys are
//! Java's, unknown zoo.cfg keys become `zookeeper.<key>` properties (Java's prefix rule), and
//! `-D name=value` flags set properties under the names Java reads. Every error names the
//! file, the line and the key.

use std::collections::HashMap;
use std::net::IpAddr;
use std::path::{Path, PathBuf};

use thiserror::Error;

/// A zoo.cfg problem that stops start-up.
#[derive(Debug, Error)]
pub enum ConfigError {
    #[error("{origin}: cannot read: {source}")]
    Read {
        origin: String,
        source: std::io::Error,
    },
    #[error("{origin}:{line}: {key}: {why}")]
    BadValue {
        origin: String,
        line: usize,
        key: String,
        why: String,
    },
    #[error("{origin}: {key} is required")]
    Missing { origin: String, key: String },
    #[error("bad -D definition {0:?}: expected NAME=VALUE")]
    BadDefine(String),
}

/// Java system properties (`zookeeper.*`, `jute.maxbuffer`, `znode.container.*`, …).
#[derive(Debug, Clone, Default)]
pub struct SystemProps(HashMap<String, String>);

impl SystemProps {
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

    pub fn allows(&self, word: &str) -> bool {
        self.all || self.words.iter().any(|w| w == word)
    }
}

/// One `server.N=` line (used by the ensemble issue).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServerLine {
    pub id: i64,
    pub host: String,
    pub quorum_port: u16,
    pub election_port: u16,
    pub observer: bool,
    pub client_addr: Option<String>,
    pub client_port: Option<u16>,
}

/// The server's typed configuration.
#[derive(Debug, Clone)]
pub struct ServerConfig {
    pub tick_time: u32,
    pub data_dir: PathBuf,
    pub data_log_dir: PathBuf,
    pub client_port: Option<u16>,
    pub client_port_address: Option<IpAddr>,
    pub max_client_cnxns: u32,
    pub min_session_timeout: i32,
    pub max_session_timeout: i32,
    pub global_outstanding_limit: usize,
    pub four_letter_whitelist: FourLetterWhitelist,
    pub init_limit: Option<u32>,
    pub sync_limit: Option<u32>,
    pub servers: Vec<ServerLine>,
    pub snap_count: u64,
    pub pre_alloc_size_kb: u64,
    pub force_sync: bool,
    pub autopurge_snap_retain_count: u32,
    pub autopurge_purge_interval_hours: u32,
    pub standalone_enabled: bool,
    pub reconfig_enabled: bool,
    pub client_port_listen_backlog: i32,
    pub props: SystemProps,
    pub source: Option<PathBuf>,
}

/// Keys Java recognises whose feature ferrokeeper does not implement yet: one warning each.
const NOT_YET: &[&str] = &[
    "initLimit",
    "syncLimit",
    "electionAlg",
    "peerType",
    "quorumListenOnAllIPs",
    "syncEnabled",
    "dynamicConfigFile",
    "secureClientPort",
    "secureClientPortAddress",
    "localSessionsEnabled",
    "localSessionsUpgradingEnabled",
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

fn parse_server_line(
    ctx: &Ctx<'_>,
    line: usize,
    key: &str,
    id: i64,
    v: &str,
) -> Result<ServerLine, ConfigError> {
    let (addr, client) = match v.split_once(';') {
        Some((a, c)) => (a.trim(), Some(c.trim())),
        None => (v.trim(), None),
    };
    let (host, rest) = if let Some(stripped) = addr.strip_prefix('[') {
        let end = stripped
            .find(']')
            .ok_or_else(|| ctx.bad(line, key, "unterminated [ipv6] address".into()))?;
        (
            &stripped[..end],
            stripped[end + 1..].trim_start_matches(':'),
        )
    } else {
        match addr.split_once(':') {
            Some((h, r)) => (h, r),
            None => {
                return Err(ctx.bad(
                    line,
                    key,
                    format!("{v:?} needs host:quorumPort:electionPort"),
                ))
            }
        }
    };
    let parts: Vec<&str> = rest.split(':').collect();
    if parts.len() < 2 || parts.len() > 3 {
        return Err(ctx.bad(
            line,
            key,
            format!("{v:?} needs host:quorumPort:electionPort[:role]"),
        ));
    }
    let quorum_port: u16 = ctx.int(line, key, parts[0])?;
    let election_port: u16 = ctx.int(line, key, parts[1])?;
    if quorum_port == election_port {
        return Err(ctx.bad(line, key, "quorum and election ports must differ".into()));
    }
    let observer = match parts.get(2).copied() {
        None | Some("participant") => false,
        Some("observer") => true,
        Some(r) => return Err(ctx.bad(line, key, format!("unknown role {r:?}"))),
    };
    let (client_addr, client_port) = match client {
        None => (None, None),
        Some(c) => match c.rsplit_once(':') {
            Some((a, p)) => (Some(a.to_owned()), Some(ctx.int(line, key, p)?)),
            None => (None, Some(ctx.int(line, key, c)?)),
        },
    };
    Ok(ServerLine {
        id,
        host: host.to_owned(),
        quorum_port,
        election_port,
        observer,
        client_addr,
        client_port,
    })
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
        let mut client_port = None;
        let mut client_port_address: Option<(IpAddr, usize)> = None;
        let mut max_client_cnxns = 60;
        let mut min_st: Option<(i32, usize)> = None;
        let mut max_st: Option<(i32, usize)> = None;
        let mut whitelist: Option<FourLetterWhitelist> = None;
        let mut init_limit = None;
        let mut sync_limit = None;
        let mut servers = Vec::new();
        let mut standalone_enabled = true;
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
                "clientPort" => client_port = Some(ctx.int::<u16>(line, k, &v)?),
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
                "initLimit" => init_limit = Some(ctx.int(line, k, &v)?),
                "syncLimit" => sync_limit = Some(ctx.int(line, k, &v)?),
                "standaloneEnabled" => standalone_enabled = ctx.boolean(line, k, &v)?,
                "reconfigEnabled" => reconfig_enabled = ctx.boolean(line, k, &v)?,
                "clientPortListenBacklog" => backlog = ctx.int(line, k, &v)?,
                "autopurge.snapRetainCount" => snap_retain = ctx.int(line, k, &v)?,
                "autopurge.purgeInterval" => purge_interval = ctx.int(line, k, &v)?,
                _ if k.starts_with("server.") => {
                    let id: i64 = ctx.int(line, k, &k["server.".len()..])?;
                    servers.push(parse_server_line(&ctx, line, k, id, &v)?);
                }
                _ if NOT_YET.contains(&k)
                    || k.starts_with("group.")
                    || k.starts_with("weight.") => {}
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
        Ok(ServerConfig {
            tick_time,
            data_log_dir: data_log_dir.unwrap_or_else(|| data_dir.clone()),
            data_dir,
            client_port,
            client_port_address: client_port_address.map(|x| x.0),
            max_client_cnxns,
            min_session_timeout,
            max_session_timeout,
            global_outstanding_limit,
            four_letter_whitelist: whitelist,
            init_limit,
            sync_limit,
            servers,
            snap_count,
            pre_alloc_size_kb,
            force_sync,
            autopurge_snap_retain_count: snap_retain,
            autopurge_purge_interval_hours: purge_interval,
            standalone_enabled,
            reconfig_enabled,
            client_port_listen_backlog: backlog,
            props,
            source: None,
        })
    }

    pub fn extended_types_enabled(&self) -> bool {
        self.props.bool("zookeeper.extendedTypesEnabled", false)
    }
    pub fn super_digest(&self) -> Option<&str> {
        self.props
            .get("zookeeper.DigestAuthenticationProvider.superDigest")
    }
    pub fn skip_acl(&self) -> bool {
        self.props.bool("zookeeper.skipACL", false)
    }
    pub fn container_check_interval_ms(&self) -> u64 {
        self.props.num("znode.container.checkIntervalMs", 60_000)
    }
    pub fn container_max_per_minute(&self) -> u32 {
        self.props.num("znode.container.maxPerMinute", 10_000)
    }
    pub fn max_never_used_interval_ms(&self) -> u64 {
        self.props.num("znode.container.maxNeverUsedIntervalMs", 0)
    }
    pub fn read_only_mode_enabled(&self) -> bool {
        self.props.bool("readonlymode.enabled", false)
    }
    /// `jute.maxbuffer` (the property Java reads; zoo.cfg's `jute.maxbuffer` does not set it).
    pub fn jute_max_buffer(&self) -> usize {
        self.props
            .num("jute.maxbuffer", crate::jute::DEFAULT_MAX_BUFFER)
    }
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
    fn server_lines_and_whitelist() {
        let c = parse(
            "dataDir=/x\nserver.1=10.0.0.1:2888:3888\nserver.2=[::1]:2888:3888:observer;127.0.0.1:2181\n4lw.commands.whitelist = ruok, srvr ,mntr\n",
        )
        .unwrap();
        assert_eq!(c.servers[0].host, "10.0.0.1");
        assert!(c.servers[1].observer);
        assert_eq!(c.servers[1].host, "::1");
        assert_eq!(c.servers[1].client_port, Some(2181));
        assert!(c.four_letter_whitelist.allows("mntr"));
        assert!(!c.four_letter_whitelist.allows("stat"));
        assert_eq!(parse_define("a.b=c").unwrap(), ("a.b".into(), "c".into()));
        assert!(parse_define("nothing").is_err());
    }
}

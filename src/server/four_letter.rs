//! Four-letter words: the text commands monitoring tools send on the client port.
//!
//! Formats follow Java ZooKeeper 3.9 byte for byte where tools parse them (`srvr`, `stat`,
//! `mntr`, `ruok`, `isro`, `envi`'s version line).

use std::fmt::Write as _;

use super::core::Core;
use super::stats::java_double;

/// The version string we report: Java's 3.9 line (clients parse the numbers) plus our name.
pub const VERSION: &str = concat!(
    "3.9.5-ferrokeeper-",
    env!("CARGO_PKG_VERSION"),
    ", built on 1970-01-01 00:00 UTC"
);

/// Every word Java knows.
pub const WORDS: &[&str] = &[
    "conf", "cons", "crst", "dirs", "dump", "envi", "gtmk", "ruok", "stmk", "srst", "srvr", "stat",
    "wchc", "wchp", "wchs", "mntr", "isro", "hash",
];

/// Whether the first four bytes of a connection are a four-letter word.
pub fn is_word(first: &[u8; 4]) -> Option<&'static str> {
    WORDS.iter().copied().find(|w| w.as_bytes() == first)
}

fn dir_size(path: &std::path::Path) -> u64 {
    let dir = path.join("version-2");
    std::fs::read_dir(dir)
        .map(|rd| {
            rd.filter_map(|e| e.ok())
                .filter_map(|e| e.metadata().ok())
                .map(|m| m.len())
                .sum()
        })
        .unwrap_or(0)
}

fn abs(p: &std::path::Path) -> String {
    std::path::absolute(p)
        .unwrap_or_else(|_| p.to_path_buf())
        .join("version-2")
        .display()
        .to_string()
}

/// Build the output of `word` (already known to be whitelisted).
pub fn run(core: &mut Core, word: &str) -> String {
    if !core.config.four_letter_whitelist.allows(word) {
        return format!("{word} is not executed because it is not in the whitelist.\n");
    }
    let mut s = String::new();
    let needs_server = !matches!(
        word,
        "ruok" | "envi" | "conf" | "dirs" | "gtmk" | "stmk" | "isro"
    );
    if needs_server && !core.role.serving() && !core.read_only {
        // Java's answer while electing or syncing.
        return "This ZooKeeper instance is not currently serving requests\n".to_owned();
    }
    match word {
        "ruok" => s.push_str("imok"),
        "isro" => s.push_str(if core.read_only { "ro" } else { "rw" }),
        "gtmk" | "stmk" => s.push('0'),
        "srvr" => server_stats(core, &mut s, false),
        "stat" => server_stats(core, &mut s, true),
        "cons" => {
            let mut conns: Vec<_> = core.conns.values().collect();
            conns.sort_by_key(|c| c.stats.established);
            for c in conns {
                let st = &c.stats;
                let _ = write!(
                    s,
                    " /{}[{}](queued=0,recved={},sent={}",
                    c.remote,
                    if c.session_id != 0 { 1 } else { 0 },
                    st.recved,
                    st.sent
                );
                if c.session_id != 0 {
                    let _ = write!(
                        s,
                        ",sid={:#x},lop={},est={},to={}",
                        c.session_id, st.last_op, st.established, c.timeout
                    );
                    if st.last_cxid >= 0 {
                        let _ = write!(s, ",lcxid={:#x}", st.last_cxid);
                    }
                    let _ = write!(
                        s,
                        ",lzxid={:#x},lresp={},llat={},minlat={},avglat={},maxlat={}",
                        st.last_zxid,
                        st.last_response,
                        st.last_latency,
                        st.min_latency,
                        st.avg_latency(),
                        st.max_latency
                    );
                }
                s.push_str(")\n");
            }
            s.push('\n');
        }
        "crst" => {
            for c in core.conns.values_mut() {
                c.stats.reset();
            }
            s.push_str("Connection stats reset.\n");
        }
        "srst" => {
            core.stats.reset();
            s.push_str("Server stats reset.\n");
        }
        "conf" => {
            let c = &core.config;
            let _ = writeln!(
                s,
                "clientPort={}",
                c.client_port.map(i32::from).unwrap_or(-1)
            );
            let _ = writeln!(s, "secureClientPort=-1");
            let _ = writeln!(s, "dataDir={}", abs(&c.data_dir));
            let _ = writeln!(s, "dataDirSize={}", dir_size(&c.data_dir));
            let _ = writeln!(s, "dataLogDir={}", abs(&c.data_log_dir));
            let _ = writeln!(s, "dataLogSize={}", dir_size(&c.data_log_dir));
            let _ = writeln!(s, "tickTime={}", c.tick_time);
            let _ = writeln!(s, "maxClientCnxns={}", c.max_client_cnxns);
            let _ = writeln!(s, "minSessionTimeout={}", c.min_session_timeout);
            let _ = writeln!(s, "maxSessionTimeout={}", c.max_session_timeout);
            let _ = writeln!(
                s,
                "clientPortListenBacklog={}",
                c.client_port_listen_backlog
            );
            let _ = writeln!(s, "serverId=0");
        }
        "dirs" => {
            let _ = writeln!(s, "datadir_size: {}", dir_size(&core.config.data_dir));
            let _ = writeln!(s, "logdir_size: {}", dir_size(&core.config.data_log_dir));
        }
        "envi" => {
            s.push_str("Environment:\n");
            let _ = writeln!(s, "zookeeper.version={VERSION}");
            let host = std::fs::read_to_string("/etc/hostname").unwrap_or_default();
            let _ = writeln!(s, "host.name={}", host.trim());
            let _ = writeln!(s, "java.version=n/a (ferrokeeper, Rust)");
            let _ = writeln!(s, "java.vendor=n/a");
            let _ = writeln!(s, "os.name={}", std::env::consts::OS);
            let _ = writeln!(s, "os.arch={}", std::env::consts::ARCH);
            let _ = writeln!(s, "user.name={}", std::env::var("USER").unwrap_or_default());
            let _ = writeln!(
                s,
                "user.dir={}",
                std::env::current_dir()
                    .map(|p| p.display().to_string())
                    .unwrap_or_default()
            );
        }
        "wchs" => {
            let (c, p, t) = core.watches.summary();
            let _ = writeln!(s, "{c} connections watching {p} paths");
            let _ = writeln!(s, "Total watches:{t}");
        }
        "wchc" => {
            for (conn, paths) in core.watches.by_connection() {
                let sid = core.conns.get(&conn).map(|c| c.session_id).unwrap_or(0);
                let _ = writeln!(s, "{sid:#x}");
                for p in paths {
                    let _ = writeln!(s, "\t{p}");
                }
            }
            s.push('\n');
        }
        "wchp" => {
            for (path, conns) in core.watches.by_path() {
                let _ = writeln!(s, "{path}");
                for conn in conns {
                    let sid = core.conns.get(&conn).map(|c| c.session_id).unwrap_or(0);
                    let _ = writeln!(s, "\t{sid:#x}");
                }
            }
            s.push('\n');
        }
        "dump" => {
            s.push_str("SessionTracker dump:\n");
            s.push_str(&core.sessions.dump(std::time::Instant::now()));
            if !s.ends_with('\n') {
                s.push('\n');
            }
            s.push_str("ephemeral nodes dump:\n");
            let eph = core.tree.sessions_with_ephemerals();
            let _ = writeln!(s, "Sessions with Ephemerals ({}):", eph.len());
            for (sid, paths) in eph {
                let _ = writeln!(s, "{sid:#x}:");
                for p in paths {
                    let _ = writeln!(s, "\t{p}");
                }
            }
            s.push_str("Connections dump:\n");
        }
        "mntr" => monitor(core, &mut s),
        "hash" => {
            for (zxid, digest) in &core.digest_log {
                let _ = writeln!(s, "{zxid:x}: {digest}");
            }
        }
        _ => {}
    }
    s
}

fn server_stats(core: &Core, s: &mut String, with_clients: bool) {
    let _ = writeln!(s, "Zookeeper version: {VERSION}");
    if with_clients {
        s.push_str("Clients:\n");
        let mut conns: Vec<_> = core.conns.values().collect();
        conns.sort_by_key(|c| c.stats.established);
        for c in conns {
            let _ = writeln!(
                s,
                " /{}[{}](queued=0,recved={},sent={})",
                c.remote,
                if c.session_id != 0 { 1 } else { 0 },
                c.stats.recved,
                c.stats.sent
            );
        }
        s.push('\n');
    }
    let st = &core.stats;
    let _ = writeln!(
        s,
        "Latency min/avg/max: {}/{}/{}",
        st.latency_min,
        java_double(st.avg_latency()),
        st.latency_max
    );
    let _ = writeln!(s, "Received: {}", st.packets_received);
    let _ = writeln!(s, "Sent: {}", st.packets_sent);
    let _ = writeln!(s, "Connections: {}", core.conns.len());
    let _ = writeln!(s, "Outstanding: 0");
    let _ = writeln!(s, "Zxid: {:#x}", core.last_zxid);
    let mode = if core.read_only {
        "read-only"
    } else {
        core.role.mode()
    };
    let _ = writeln!(s, "Mode: {mode}");
    let _ = writeln!(s, "Node count: {}", core.tree.node_count());
}

fn open_fds() -> u64 {
    std::fs::read_dir("/proc/self/fd")
        .map(|d| d.count() as u64)
        .unwrap_or(0)
}

fn max_fds() -> u64 {
    std::fs::read_to_string("/proc/self/limits")
        .ok()
        .and_then(|t| {
            t.lines()
                .find(|l| l.starts_with("Max open files"))
                .and_then(|l| l.split_whitespace().nth(3).and_then(|v| v.parse().ok()))
        })
        .unwrap_or(0)
}

fn monitor(core: &Core, s: &mut String) {
    let st = &core.stats;
    let mut kv = |k: &str, v: String| {
        let _ = writeln!(s, "zk_{k}\t{v}");
    };
    kv("version", VERSION.to_owned());
    kv(
        "server_state",
        if core.read_only {
            "read-only"
        } else {
            core.role.mode()
        }
        .into(),
    );
    kv("avg_latency", java_double(st.avg_latency()));
    kv("max_latency", st.latency_max.to_string());
    kv("min_latency", st.latency_min.to_string());
    kv("packets_received", st.packets_received.to_string());
    kv("packets_sent", st.packets_sent.to_string());
    kv("num_alive_connections", core.conns.len().to_string());
    kv("outstanding_requests", "0".into());
    kv("znode_count", core.tree.node_count().to_string());
    kv("watch_count", core.watches.watch_count().to_string());
    kv("ephemerals_count", core.tree.ephemeral_count().to_string());
    kv(
        "approximate_data_size",
        core.tree.approximate_data_size().to_string(),
    );
    kv("open_file_descriptor_count", open_fds().to_string());
    kv("max_file_descriptor_count", max_fds().to_string());
    kv("global_sessions", core.sessions.session_count().to_string());
    kv("local_sessions", "0".into());
    kv(
        "uptime",
        (core.started.elapsed().as_millis() as u64).to_string(),
    );
    kv(
        "last_client_response_size",
        st.last_response_size.to_string(),
    );
    kv("min_client_response_size", st.min_response_size.to_string());
    kv("max_client_response_size", st.max_response_size.to_string());
    kv("connection_drop_probability", "0.0".into());
    kv("auth_failed_count", st.auth_failed.to_string());
    kv("outstanding_tls_handshake", "0".into());
    use crate::server::core::Role;
    if let Some(q) = &core.quorum {
        kv("quorum_size", q.quorum.voters().len().to_string());
        let zab = if core.role.serving() {
            "broadcast"
        } else {
            "synchronization"
        };
        let state = match &core.role {
            Role::Leading(_) => format!("leading - {zab}"),
            Role::Learning(l) if l.observer => format!("observing - {zab}"),
            Role::Learning(_) => format!("following - {zab}"),
            _ => "looking - election".to_owned(),
        };
        kv("peer_state", state);
    }
    match &core.role {
        Role::Leading(l) => {
            let (followers, synced, observers) = l.counts();
            kv("learners", (followers + observers).to_string());
            kv("synced_followers", synced.to_string());
            kv("synced_non_voting_followers", "0".into());
            kv("synced_observers", observers.to_string());
            kv("pending_syncs", l.pending_syncs().to_string());
        }
        Role::Learning(l) if l.observer => {
            kv("observer_master_id", l.leader.to_string());
        }
        Role::Learning(_) => kv("synced_observers", "0".into()),
        _ => {}
    }
    kv("non_mtls_remote_conn_count", "0".into());
    kv("non_mtls_local_conn_count", "0".into());
}

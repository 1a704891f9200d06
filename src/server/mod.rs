//! The client-facing server: the TCP listener, connection tasks, the core and the
//! four-letter words.

pub mod conn;
pub mod core;
pub mod four_letter;
pub mod stats;

use std::collections::HashMap;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use thiserror::Error;
use tokio::net::TcpListener;
use tokio::sync::mpsc;

use crate::config::ServerConfig;

pub use self::core::{Core, CoreMsg};

/// Why the server could not start.
#[derive(Debug, Error)]
pub enum ServerError {
    #[error("no clientPort configured")]
    NoClientPort,
    #[error("quorum: {0}")]
    Epoch(String),
    #[error("cannot load the data directory: {0}")]
    Data(#[from] self::core::OpenError),
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        addr: SocketAddr,
        source: std::io::Error,
    },
}

/// A running server: its bound address and a handle to stop it.
pub struct Running {
    pub addr: SocketAddr,
    core_tx: mpsc::Sender<CoreMsg>,
    core: tokio::task::JoinHandle<()>,
    accept: tokio::task::JoinHandle<()>,
}

impl Running {
    /// Stop accepting, close every connection and wait for the core to finish.
    pub async fn shutdown(self) {
        self.accept.abort();
        let _ = self.core_tx.send(CoreMsg::Shutdown).await;
        let _ = self.core.await;
    }
}

/// Connections per client IP, for `maxClientCnxns`.
#[derive(Default)]
struct PerIp(Mutex<HashMap<IpAddr, u32>>);

impl PerIp {
    fn acquire(&self, ip: IpAddr, max: u32) -> bool {
        let mut m = self.0.lock().unwrap_or_else(|e| e.into_inner());
        let n = m.entry(ip).or_insert(0);
        if max != 0 && *n >= max {
            return false;
        }
        *n += 1;
        true
    }

    fn release(&self, ip: IpAddr) {
        let mut m = self.0.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(n) = m.get_mut(&ip) {
            *n -= 1;
            if *n == 0 {
                m.remove(&ip);
            }
        }
    }

    fn total(&self) -> u32 {
        self.0
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .values()
            .sum()
    }
}

/// Read (or create, as Java does) the epoch files, check them against the data, and start
/// the election port and the peer task.
async fn start_peer(
    config: &Arc<ServerConfig>,
    qc: &crate::config::QuorumConfig,
    core: &mut Core,
) -> Result<mpsc::Receiver<self::core::QuorumMsg>, ServerError> {
    use crate::persist::epoch::{read_epoch, write_epoch, ACCEPTED_EPOCH, CURRENT_EPOCH};
    let dir = &config.data_dir;
    let io = |source: std::io::Error| {
        ServerError::Data(self::core::OpenError::Io {
            path: crate::persist::files::version_dir(dir),
            source,
        })
    };
    let zxid_epoch = core.last_zxid() >> 32;
    let current = match read_epoch(dir, CURRENT_EPOCH).map_err(io)? {
        Some(e) => e,
        None => {
            write_epoch(dir, CURRENT_EPOCH, zxid_epoch).map_err(io)?;
            zxid_epoch
        }
    };
    if zxid_epoch > current {
        return Err(ServerError::Epoch(format!(
            "the last zxid's epoch {zxid_epoch} is newer than currentEpoch {current}"
        )));
    }
    let accepted = match read_epoch(dir, ACCEPTED_EPOCH).map_err(io)? {
        Some(e) => e,
        None => {
            write_epoch(dir, ACCEPTED_EPOCH, current).map_err(io)?;
            current
        }
    };
    if accepted < current {
        return Err(ServerError::Epoch(format!(
            "acceptedEpoch {accepted} is less than currentEpoch {current}"
        )));
    }
    let verifier = Arc::new(qc.verifier.clone());
    let (ev_tx, ev_rx) = mpsc::channel(64);
    let tick = std::time::Duration::from_millis(config.tick_time as u64);
    core.enable_quorum(self::core::QuorumCtx {
        my_id: qc.myid,
        quorum: verifier.clone(),
        config_text: verifier.to_config_text(),
        tick,
        init_limit: qc.init_limit,
        sync_limit: qc.sync_limit,
        accepted_epoch: accepted,
        current_epoch: current,
        events: ev_tx,
        committed_log: Default::default(),
    });
    let (qtx, qrx) = mpsc::channel(4096);
    crate::quorum::peer::start(
        crate::quorum::peer::PeerSettings {
            my_id: qc.myid,
            verifier,
            tick,
            init_limit: qc.init_limit,
            sync_limit: qc.sync_limit,
            listen_all: config.quorum_listen_on_all_ips,
            bind_retry: config.election_port_bind_retry,
            max_packet: config.jute_max_buffer().saturating_mul(2),
            extended_types: config.extended_types_enabled(),
        },
        qtx,
        ev_rx,
    )
    .await
    .map_err(|e| ServerError::Epoch(e.to_string()))?;
    tracing::info!(myid = qc.myid, accepted, current, "quorum peer started");
    Ok(qrx)
}

/// Bind the client port and start the core; returns once the server is accepting.
pub async fn start(config: ServerConfig) -> Result<Running, ServerError> {
    let port = config.client_port.ok_or(ServerError::NoClientPort)?;
    let ip = config
        .client_port_address
        .unwrap_or(IpAddr::V4(Ipv4Addr::UNSPECIFIED));
    let addr = SocketAddr::new(ip, port);
    let config = Arc::new(config);
    // Loading a large data directory takes a while; it happens before the port opens, so a
    // client never reaches a server that cannot serve yet.
    let cfg = config.clone();
    let core = tokio::task::spawn_blocking(move || Core::open(cfg))
        .await
        .map_err(|e| {
            ServerError::Data(self::core::OpenError::Io {
                path: config.data_dir.clone(),
                source: std::io::Error::other(e.to_string()),
            })
        })??;
    let listener = TcpListener::bind(addr)
        .await
        .map_err(|source| ServerError::Bind { addr, source })?;
    let addr = listener.local_addr().unwrap_or(addr);
    let (core_tx, core_rx) = mpsc::channel(config.global_outstanding_limit.max(1));
    let mut core = core;
    let qrx = match &config.quorum {
        None => None,
        Some(qc) => Some(start_peer(&config, qc, &mut core).await?),
    };
    let core = tokio::spawn(core.run(core_rx, qrx));
    spawn_autopurge(&config);
    let accept = tokio::spawn(accept_loop(listener, config.clone(), core_tx.clone()));
    tracing::info!(%addr, "serving clients");
    Ok(Running {
        addr,
        core_tx,
        core,
        accept,
    })
}

/// `autopurge.purgeInterval` hours > 0: purge at start and then every interval, as Java's
/// `DatadirCleanupManager`.
fn spawn_autopurge(config: &ServerConfig) {
    let hours = config.autopurge_purge_interval_hours;
    if hours == 0 {
        return;
    }
    let (data, logs) = (config.data_dir.clone(), config.data_log_dir.clone());
    let retain = config.autopurge_snap_retain_count as usize;
    tracing::info!(hours, retain, "autopurge enabled");
    tokio::spawn(async move {
        let mut every = tokio::time::interval(std::time::Duration::from_secs(hours as u64 * 3600));
        loop {
            every.tick().await;
            let (d, l) = (data.clone(), logs.clone());
            match tokio::task::spawn_blocking(move || crate::persist::purge::purge(&d, &l, retain))
                .await
            {
                Ok(Ok(removed)) => tracing::info!(files = removed.len(), "autopurge done"),
                Ok(Err(e)) => tracing::warn!(error = %e, "autopurge failed"),
                Err(e) => tracing::warn!(error = %e, "autopurge task failed"),
            }
        }
    });
}

async fn accept_loop(
    listener: TcpListener,
    config: Arc<ServerConfig>,
    core: mpsc::Sender<CoreMsg>,
) {
    let per_ip = Arc::new(PerIp::default());
    let next_id = AtomicU64::new(1);
    let max_buffer = config.jute_max_buffer();
    loop {
        let (stream, remote) = match listener.accept().await {
            Ok(x) => x,
            Err(e) => {
                tracing::warn!(error = %e, "accept failed");
                tokio::time::sleep(std::time::Duration::from_millis(50)).await;
                continue;
            }
        };
        let max_total = config.max_cnxns();
        if max_total != 0 && per_ip.total() >= max_total {
            tracing::warn!(%remote, max_total, "too many connections; refusing");
            continue;
        }
        if !per_ip.acquire(remote.ip(), config.max_client_cnxns) {
            tracing::warn!(%remote, max = config.max_client_cnxns, "too many connections from this address (maxClientCnxns); refusing");
            continue;
        }
        let conn = next_id.fetch_add(1, Ordering::Relaxed);
        let core = core.clone();
        let per_ip = per_ip.clone();
        tokio::spawn(async move {
            conn::serve(stream, remote, conn, core, max_buffer).await;
            per_ip.release(remote.ip());
        });
    }
}

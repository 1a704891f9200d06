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
    let core = tokio::spawn(core.run(core_rx));
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

//! One client connection: frame reader and writer tasks around the core.
//!
//! The reader enforces `jute.maxbuffer`, answers four-letter words, decodes the connect
//! request and request headers, and forwards everything to the core (awaiting the bounded
//! core channel is the server's back-pressure). The writer drains the connection's bounded
//! outbound queue, batching frames into as few writes as it can.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use bytes::Bytes;
use thiserror::Error;
use tokio::io::{AsyncReadExt, AsyncWriteExt, BufWriter};
use tokio::net::tcp::OwnedWriteHalf;
use tokio::net::TcpStream;
use tokio::sync::{mpsc, oneshot};

use crate::jute::records::{ConnectRequest, RequestHeader};
use crate::jute::{Decode, JuteError, Reader};
use crate::watch::ConnId;

use super::core::{CoreMsg, Outbound, OUTBOUND_QUEUE};
use super::four_letter;

/// How long a connection may take to send its ConnectRequest (Java's sessionless timeout).
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// Why a connection was closed by the server.
#[derive(Debug, Error)]
pub enum ConnError {
    #[error("i/o: {0}")]
    Io(#[from] std::io::Error),
    #[error("frame length {0} outside 0..={1}")]
    BadLength(i32, usize),
    #[error("malformed frame: {0}")]
    Jute(#[from] JuteError),
    #[error("no connect request within {0:?}")]
    HandshakeTimeout(Duration),
    #[error("server is shutting down")]
    CoreGone,
}

async fn read_frame(
    rd: &mut tokio::net::tcp::OwnedReadHalf,
    len_bytes: [u8; 4],
    max: usize,
) -> Result<Vec<u8>, ConnError> {
    let len = i32::from_be_bytes(len_bytes);
    if len < 0 || len as usize > max {
        return Err(ConnError::BadLength(len, max));
    }
    let mut buf = vec![0u8; len as usize];
    rd.read_exact(&mut buf).await?;
    Ok(buf)
}

/// Serve one accepted socket until it closes.
pub async fn serve(
    stream: TcpStream,
    remote: SocketAddr,
    conn: ConnId,
    core: mpsc::Sender<CoreMsg>,
    max_buffer: usize,
) {
    let _ = stream.set_nodelay(true);
    let (mut rd, wr) = stream.into_split();
    let mut first = [0u8; 4];
    match tokio::time::timeout(HANDSHAKE_TIMEOUT, rd.read_exact(&mut first)).await {
        Ok(Ok(_)) => {}
        _ => return,
    }
    if let Some(word) = four_letter::is_word(&first) {
        let (tx, rx) = oneshot::channel();
        if core
            .send(CoreMsg::FourLetter {
                word: word.to_owned(),
                reply: tx,
            })
            .await
            .is_ok()
        {
            if let Ok(text) = rx.await {
                let mut wr = wr;
                let _ = wr.write_all(text.as_bytes()).await;
                let _ = wr.shutdown().await;
            }
        }
        return;
    }
    let result = serve_session(&mut rd, wr, first, remote, conn, &core, max_buffer).await;
    match &result {
        Ok(()) | Err(ConnError::CoreGone) => {}
        Err(ConnError::Io(e)) if e.kind() == std::io::ErrorKind::UnexpectedEof => {
            tracing::debug!(%remote, "client closed the connection");
        }
        Err(e) => tracing::info!(%remote, error = %e, "closing connection"),
    }
    let _ = core.send(CoreMsg::Closed { conn }).await;
}

async fn serve_session(
    rd: &mut tokio::net::tcp::OwnedReadHalf,
    wr: OwnedWriteHalf,
    first: [u8; 4],
    remote: SocketAddr,
    conn: ConnId,
    core: &mpsc::Sender<CoreMsg>,
    max_buffer: usize,
) -> Result<(), ConnError> {
    let connect = tokio::time::timeout(HANDSHAKE_TIMEOUT, read_frame(rd, first, max_buffer))
        .await
        .map_err(|_| ConnError::HandshakeTimeout(HANDSHAKE_TIMEOUT))??;
    let (req, has_read_only) = ConnectRequest::decode_frame(&connect)?;
    let (out_tx, out_rx) = mpsc::channel(OUTBOUND_QUEUE);
    let mut writer = tokio::spawn(write_loop(wr, out_rx));
    core.send(CoreMsg::Open {
        conn,
        remote,
        out: out_tx,
    })
    .await
    .map_err(|_| ConnError::CoreGone)?;
    core.send(CoreMsg::Connect {
        conn,
        req,
        has_read_only,
    })
    .await
    .map_err(|_| ConnError::CoreGone)?;
    let res = read_loop(rd, conn, core, max_buffer, &mut writer).await;
    writer.abort();
    res
}

async fn read_loop(
    rd: &mut tokio::net::tcp::OwnedReadHalf,
    conn: ConnId,
    core: &mpsc::Sender<CoreMsg>,
    max_buffer: usize,
    writer: &mut tokio::task::JoinHandle<()>,
) -> Result<(), ConnError> {
    let mut rd = tokio::io::BufReader::with_capacity(64 * 1024, rd);
    loop {
        let mut len = [0u8; 4];
        tokio::select! {
            r = rd.read_exact(&mut len) => { r?; }
            // The writer ends when the core closes the connection.
            _ = &mut *writer => return Ok(()),
        }
        let l = i32::from_be_bytes(len);
        if l < 0 || l as usize > max_buffer {
            return Err(ConnError::BadLength(l, max_buffer));
        }
        let mut buf = vec![0u8; l as usize];
        rd.read_exact(&mut buf).await?;
        let received = Instant::now();
        let mut r = Reader::new(&buf);
        let h = RequestHeader::decode(&mut r)?;
        let body = Bytes::from(buf).slice(8..);
        core.send(CoreMsg::Packet {
            conn,
            xid: h.xid,
            op: h.op_type,
            body,
            received,
        })
        .await
        .map_err(|_| ConnError::CoreGone)?;
    }
}

async fn write_loop(wr: OwnedWriteHalf, mut rx: mpsc::Receiver<Outbound>) {
    let mut w = BufWriter::with_capacity(64 * 1024, wr);
    while let Some(msg) = rx.recv().await {
        let mut close = false;
        let mut next = Some(msg);
        while let Some(m) = next.take() {
            match m {
                Outbound::Frame(b) => {
                    if w.write_all(&b).await.is_err() {
                        return;
                    }
                }
                Outbound::Close => {
                    close = true;
                    break;
                }
            }
            next = rx.try_recv().ok();
        }
        if w.flush().await.is_err() {
            return;
        }
        if close {
            let _ = w.shutdown().await;
            return;
        }
    }
}

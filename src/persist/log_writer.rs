//! The txn log writer: Java's `FileTxnLog` on disk, with group commit.
//!
//! One OS thread owns the open log file. The core hands it entries through a bounded channel
//! and goes on; the thread takes everything that has queued up, writes it in one `write`,
//! fsyncs once, and publishes the last durable zxid. A lone writer waits for no timer: its
//! entry is written as soon as the thread wakes, and entries that arrive while an fsync is
//! running form the next batch. The core never lets a client see a change before the zxid
//! that made it is published here.

use std::fs::{self, File, OpenOptions};
use std::io;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::mpsc::{self, Receiver, SyncSender, TrySendError};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Instant;

use tokio::sync::watch;

use super::files::{log_name, sync_dir};
use super::txnlog::{encode_record, file_header};
use crate::request::txn::TxnEntry;

/// How many entries may wait for the writer. The core applies backpressure well below this.
/// The queue's slots are allocated up front and carry a pointer each (the command itself is
/// boxed): 16 bytes a slot, where a 160-byte command inline would pin 10 MiB for good once a
/// burst had cycled through the ring.
pub const LOG_QUEUE: usize = 65_536;
/// Largest batch written before an fsync, so one fsync never waits behind a huge write.
const MAX_BATCH_BYTES: usize = 8 << 20;
/// Java extends a log when the write position comes within this many bytes of its end.
const PREALLOC_MARGIN: u64 = 4096;

/// What the core asks of the writer.
#[derive(Debug)]
pub enum LogCmd {
    /// An entry and the TxnDigest to log with it (`(version, tree digest after the txn)`).
    Append(TxnEntry, Option<(i32, i64)>),
    /// Start a new file with the next appended entry (Java's `rollLog`, at a snapshot).
    Roll,
}

/// Settings of the log files.
#[derive(Debug, Clone)]
pub struct LogSettings {
    /// `<dataLogDir>/version-2`.
    pub dir: PathBuf,
    /// `preAllocSize` in bytes.
    pub prealloc: u64,
    /// `forceSync`: fsync each batch.
    pub force_sync: bool,
}

/// The open log file and its write position.
struct LogFile {
    file: File,
    path: PathBuf,
    pos: u64,
    size: u64,
}

/// Writes entries into `log.<zxid>` files. Used by the writer thread; synchronous, so it is
/// also what tests drive directly.
pub struct LogFiles {
    settings: LogSettings,
    current: Option<LogFile>,
    buf: Vec<u8>,
    /// First zxid of the batch in `buf`, if the batch opens a new file.
    batch_first: Option<i64>,
}

impl LogFiles {
    pub fn new(settings: LogSettings) -> LogFiles {
        LogFiles {
            settings,
            current: None,
            buf: Vec::with_capacity(64 * 1024),
            batch_first: None,
        }
    }

    /// Buffer one entry (written by the next [`LogFiles::commit`]).
    pub fn append(&mut self, entry: &TxnEntry, digest: Option<(i32, i64)>) {
        if self.current.is_none() && self.batch_first.is_none() {
            self.batch_first = Some(entry.header.zxid);
        }
        encode_record(entry, digest, &mut self.buf);
    }

    /// Bytes buffered and not yet written.
    pub fn buffered(&self) -> usize {
        self.buf.len()
    }

    fn open(&mut self, first_zxid: i64) -> io::Result<()> {
        let path = self.settings.dir.join(log_name(first_zxid));
        let file = match OpenOptions::new()
            .read(true)
            .write(true)
            .create_new(true)
            .open(&path)
        {
            Ok(f) => f,
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {
                // Only a log with no entries may be reused (recovery removes those it finds;
                // this covers one created since). Anything else holds txns: refuse.
                let existing = fs::read(&path)?;
                let empty = existing.len() <= 16
                    || super::txnlog::read_log(&existing).is_ok_and(|(e, _)| e.is_empty());
                if !empty {
                    return Err(io::Error::new(
                        io::ErrorKind::AlreadyExists,
                        format!("{} already holds txns", path.display()),
                    ));
                }
                let f = OpenOptions::new().read(true).write(true).open(&path)?;
                f.set_len(0)?;
                f
            }
            Err(e) => return Err(e),
        };
        file.write_all_at(&file_header(), 0)?;
        sync_dir(&self.settings.dir)?;
        tracing::info!(file = %path.display(), "new txn log");
        self.current = Some(LogFile {
            file,
            path,
            pos: 16,
            size: 16,
        });
        Ok(())
    }

    /// Write the buffered entries and, with forceSync, make them durable.
    pub fn commit(&mut self) -> io::Result<()> {
        if self.buf.is_empty() {
            return Ok(());
        }
        if let Some(first) = self.batch_first.take() {
            self.open(first)?;
        }
        let prealloc = self.settings.prealloc.max(4096);
        let force = self.settings.force_sync;
        let Some(f) = self.current.as_mut() else {
            return Err(io::Error::other("no log file open"));
        };
        let end = f.pos + self.buf.len() as u64;
        if end + PREALLOC_MARGIN >= f.size {
            let mut size = f.size;
            while end + PREALLOC_MARGIN >= size {
                size += prealloc;
            }
            f.file.set_len(size)?;
            f.size = size;
        }
        f.file.write_all_at(&self.buf, f.pos)?;
        f.pos = end;
        self.buf.clear();
        if force {
            f.file.sync_data()?;
        }
        Ok(())
    }

    /// Close the current file; the next entry starts a new one.
    pub fn roll(&mut self) -> io::Result<()> {
        self.commit()?;
        if let Some(f) = self.current.take() {
            tracing::debug!(file = %f.path.display(), bytes = f.pos, "txn log rolled");
        }
        Ok(())
    }
}

/// The core's handle on the writer thread.
pub struct LogWriter {
    tx: Option<SyncSender<Box<LogCmd>>>,
    /// Deterministic mode (simulation): entries are written at once, without fsync, and
    /// count as durable only when [`LogWriter::sync_inline`] says so.
    inline: Option<Inline>,
    /// The last durable zxid, for the core's select loop.
    pub synced: watch::Receiver<i64>,
    /// The same figure, for the snapshot thread.
    pub synced_shared: Arc<AtomicI64>,
    join: Option<JoinHandle<()>>,
}

/// The state of an inline (simulated) log.
struct Inline {
    files: LogFiles,
    written: i64,
    synced_tx: watch::Sender<i64>,
}

impl LogWriter {
    /// A writer without a thread, for the deterministic simulator: `send` writes each entry
    /// to the file at once (no fsync), and nothing is durable until [`LogWriter::sync_inline`].
    pub fn start_inline(settings: LogSettings, last_zxid: i64) -> io::Result<LogWriter> {
        fs::create_dir_all(&settings.dir)?;
        let (synced_tx, synced) = watch::channel(last_zxid);
        Ok(LogWriter {
            tx: None,
            inline: Some(Inline {
                files: LogFiles::new(LogSettings {
                    force_sync: false,
                    ..settings
                }),
                written: last_zxid,
                synced_tx,
            }),
            synced,
            synced_shared: Arc::new(AtomicI64::new(last_zxid)),
            join: None,
        })
    }

    /// Inline mode: everything written so far becomes durable; returns the durable zxid.
    pub fn sync_inline(&mut self) -> Option<i64> {
        let i = self.inline.as_mut()?;
        self.synced_shared.store(i.written, Ordering::Release);
        i.synced_tx.send_replace(i.written);
        Some(i.written)
    }

    /// Is this an inline (simulated) log?
    pub fn is_inline(&self) -> bool {
        self.inline.is_some()
    }

    /// Start the writer thread. `last_zxid` is what recovery restored (already durable).
    pub fn start(settings: LogSettings, last_zxid: i64) -> io::Result<LogWriter> {
        fs::create_dir_all(&settings.dir)?;
        let (tx, rx) = mpsc::sync_channel(LOG_QUEUE);
        let (synced_tx, synced) = watch::channel(last_zxid);
        let shared = Arc::new(AtomicI64::new(last_zxid));
        let shared2 = shared.clone();
        let join = std::thread::Builder::new()
            .name("txnlog".into())
            .spawn(move || writer_loop(LogFiles::new(settings), rx, synced_tx, shared2))?;
        Ok(LogWriter {
            tx: Some(tx),
            inline: None,
            synced,
            synced_shared: shared,
            join: Some(join),
        })
    }

    /// Queue a command. The core bounds what it has in flight below [`LOG_QUEUE`], so this
    /// does not block in practice; if it would, it waits rather than drop a txn.
    pub fn send(&mut self, cmd: LogCmd) {
        if let Some(i) = self.inline.as_mut() {
            let r = match cmd {
                LogCmd::Append(e, digest) => {
                    i.files.append(&e, digest);
                    i.written = e.header.zxid;
                    i.files.commit()
                }
                LogCmd::Roll => i.files.roll(),
            };
            if let Err(e) = r {
                fatal(&format!("cannot write the txn log: {e}"));
            }
            return;
        }
        let Some(tx) = &self.tx else { return };
        match tx.try_send(Box::new(cmd)) {
            Ok(()) => {}
            Err(TrySendError::Full(cmd)) => {
                tracing::warn!("txn log queue full; waiting for the writer");
                let _ = tx.send(cmd);
            }
            Err(TrySendError::Disconnected(_)) => fatal("the txn log writer has stopped"),
        }
    }

    /// Flush what is queued and stop the thread.
    pub fn close(&mut self) {
        self.tx = None;
        if let Some(j) = self.join.take() {
            let _ = j.join();
        }
    }
}

impl Drop for LogWriter {
    fn drop(&mut self) {
        self.close();
    }
}

/// Without its log the server cannot acknowledge anything: stop rather than lie.
fn fatal(what: &str) -> ! {
    tracing::error!("{what}; shutting down");
    std::process::exit(2)
}

fn writer_loop(
    mut files: LogFiles,
    rx: Receiver<Box<LogCmd>>,
    synced: watch::Sender<i64>,
    shared: Arc<AtomicI64>,
) {
    let mut last = None;
    let handle = |files: &mut LogFiles, cmd: Box<LogCmd>, last: &mut Option<i64>| match *cmd {
        LogCmd::Append(e, digest) => {
            files.append(&e, digest);
            *last = Some(e.header.zxid);
        }
        LogCmd::Roll => {
            if let Err(e) = files.roll() {
                fatal(&format!("cannot roll the txn log: {e}"));
            }
        }
    };
    while let Ok(cmd) = rx.recv() {
        handle(&mut files, cmd, &mut last);
        while files.buffered() < MAX_BATCH_BYTES {
            match rx.try_recv() {
                Ok(cmd) => handle(&mut files, cmd, &mut last),
                Err(_) => break,
            }
        }
        let t = Instant::now();
        if let Err(e) = files.commit() {
            fatal(&format!("cannot write the txn log: {e}"));
        }
        if let Some(z) = last.take() {
            tracing::trace!(
                zxid = z,
                micros = t.elapsed().as_micros() as u64,
                "log batch durable"
            );
            shared.store(z, Ordering::Release);
            synced.send_replace(z);
        }
    }
    if let Err(e) = files.commit() {
        tracing::error!(error = %e, "cannot write the txn log at shutdown");
    }
}

/// Remove a file with a warning (used by recovery for empty or headerless last logs).
pub fn remove_with_warning(path: &Path, why: &str) -> io::Result<()> {
    tracing::warn!(file = %path.display(), "{why}; removing it");
    fs::remove_file(path)
}

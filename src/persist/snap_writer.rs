//! Writing snapshots in Java's format, without stalling writes.
//!
//! Like Java's, our snapshots are fuzzy: the core serializes the tree a slice at a time
//! between requests, taking a bounded share of its time (see [`DataTree::serialize_slice`]
//! and the core's walk pacing), so a snapshot named after zxid Z holds every change up to Z
//! and possibly some later ones; recovery replays the log from Z and tolerates what is
//! already there. A background thread at idle CPU priority writes the file as the slices
//! come: header, the sessions and ACL cache as of the start (the cache is pinned while the
//! walk runs, so every reference it held stays valid), the nodes, the Adler-32 seal; with
//! direct I/O where the file system allows, so that the snapshot's bytes neither pass
//! through the page cache nor queue up as dirty pages ahead of the log's fsyncs. If a walked
//! node carries an ACL interned after the start (rare: a new ACL list during the walk), or
//! the snapshot is compressed, the file is written again at the end with the ACL cache of
//! then. Last it fsyncs, waits until the log is durable up to Z, and renames the file into
//! place.

use std::fs::{self, File, OpenOptions};
use std::io::{self, BufWriter, Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicI64, Ordering};
use std::sync::mpsc::{self, Receiver, SyncSender, TrySendError};
use std::sync::Arc;
use std::time::{Duration, Instant};

use super::compress::{Compression, Compressor};
use super::files::{snapshot_name, sync_dir};
use super::snapshot::SNAP_MAGIC;
use super::txnlog::Adler32;
use crate::jute::records::Acl;
use crate::jute::Writer;
use crate::session::SessionTracker;
use crate::tree::{DataTree, WalkStack, DIGEST_VERSION};

/// Slices the core may hand over before it waits for the writer thread.
const SLICE_QUEUE: usize = 16;
/// A slice is cut when it holds this many bytes.
const SLICE_BYTES: usize = 256 * 1024;

/// What goes around the nodes: the sessions and ACL cache before them, and after them the
/// tree digest (when digests are on) and the last processed zxid, both as of the end of the
/// walk, as Java writes them.
#[derive(Debug, Default)]
pub struct Preamble {
    pub sessions: Vec<(i64, i32)>,
    pub acls: Vec<(i64, Vec<Acl>)>,
    /// `(zxid, digest)`: the tree digest after txn `zxid`.
    pub digest: Option<(i64, i64)>,
    pub last_zxid: i64,
}

enum SnapMsg {
    /// The sessions and ACL cache as the walk begins; the writer starts the file with them.
    Begin {
        sessions: Vec<(i64, i32)>,
        acls: Vec<(i64, Vec<Acl>)>,
    },
    Nodes(Vec<u8>),
    /// The walk is done. `diverted`: some node walked refers to an ACL interned after the
    /// walk began, which the file's ACL section (written first) lacks; the file is then
    /// written again with the cache as of the end.
    Finish {
        pre: Preamble,
        diverted: bool,
    },
}

/// Bytes written to a snapshot between two syncs when it goes through the page cache. A
/// snapshot is tens or hundreds of MiB; left to one fsync at the end it floods the disk queue,
/// and the txn log's fsyncs (which every acknowledged write waits for) queue behind it.
const SNAPSHOT_SYNC_BYTES: u64 = 512 * 1024;
/// Size of each direct write, and the alignment direct I/O needs for buffers, sizes and
/// offsets. One write in flight at a time, so a log fsync waits behind at most this much.
const DIRECT_CHUNK: usize = 128 * 1024;
const DIRECT_ALIGN: usize = 4096;

/// The snapshot file. Written with direct I/O (`O_DIRECT`) where the file system allows it:
/// the bytes go from our buffer to the disk without being copied into the page cache, so
/// the snapshot neither costs the server's core that copy nor leaves hundreds of MiB of dirty
/// pages whose writeback (by kernel threads at normal priority) competes with requests and
/// with the log's fsyncs. Otherwise it goes through the page cache, fdatasync'ed every
/// [`SNAPSHOT_SYNC_BYTES`].
struct SnapFile {
    file: File,
    direct: Option<Direct>,
    unsynced: u64,
}

/// The direct-I/O buffer: `raw` holds an aligned window of [`DIRECT_CHUNK`] at `start`.
struct Direct {
    raw: Vec<u8>,
    start: usize,
    len: usize,
    offset: u64,
}

impl SnapFile {
    fn create(path: &Path) -> io::Result<SnapFile> {
        use std::os::unix::fs::OpenOptionsExt;
        let mut opts = OpenOptions::new();
        opts.write(true).create(true).truncate(true);
        match opts.clone().custom_flags(libc::O_DIRECT).open(path) {
            Ok(file) => {
                let raw = vec![0u8; DIRECT_CHUNK + DIRECT_ALIGN];
                let start = raw.as_ptr().align_offset(DIRECT_ALIGN);
                Ok(SnapFile {
                    file,
                    direct: Some(Direct {
                        raw,
                        start,
                        len: 0,
                        offset: 0,
                    }),
                    unsynced: 0,
                })
            }
            Err(e) => {
                tracing::debug!(error = %e, "no direct I/O for snapshots here");
                Ok(SnapFile {
                    file: opts.open(path)?,
                    direct: None,
                    unsynced: 0,
                })
            }
        }
    }

    /// Write the direct buffer's first `len` bytes (a multiple of the alignment) at its offset.
    /// A file system that accepts `O_DIRECT` at open but refuses the write gets the rest
    /// through the page cache.
    fn write_direct(&mut self, len: usize) -> io::Result<()> {
        use std::os::unix::fs::FileExt;
        use std::os::unix::io::AsRawFd;
        let Some(d) = self.direct.as_mut() else {
            return Ok(());
        };
        let chunk = &d.raw[d.start..d.start + len];
        match self.file.write_all_at(chunk, d.offset) {
            Ok(()) => {
                d.offset += len as u64;
                d.len = 0;
                Ok(())
            }
            Err(e) if e.raw_os_error() == Some(libc::EINVAL) && d.offset == 0 => {
                tracing::debug!("direct snapshot write refused; using the page cache");
                let fd = self.file.as_raw_fd();
                // SAFETY: F_GETFL/F_SETFL on a descriptor we own; no memory is passed.
                let ok = unsafe {
                    let flags = libc::fcntl(fd, libc::F_GETFL);
                    flags >= 0 && libc::fcntl(fd, libc::F_SETFL, flags & !libc::O_DIRECT) == 0
                };
                if !ok {
                    return Err(e);
                }
                let pending = d.raw[d.start..d.start + d.len].to_vec();
                self.direct = None;
                self.write_all(&pending)
            }
            Err(e) => Err(e),
        }
    }

    /// Write what is buffered (padded to the alignment, then the file cut to its real
    /// length) and return the file, not yet synced.
    fn finish(mut self) -> io::Result<File> {
        if let Some(d) = self.direct.as_mut() {
            if d.len > 0 {
                let real = d.offset + d.len as u64;
                let padded = d.len.div_ceil(DIRECT_ALIGN) * DIRECT_ALIGN;
                d.raw[d.start + d.len..d.start + padded].fill(0);
                self.write_direct(padded)?;
                self.file.set_len(real)?;
            }
        }
        Ok(self.file)
    }
}

impl Write for SnapFile {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        if let Some(d) = self.direct.as_mut() {
            let n = (DIRECT_CHUNK - d.len).min(buf.len());
            d.raw[d.start + d.len..d.start + d.len + n].copy_from_slice(&buf[..n]);
            d.len += n;
            if d.len == DIRECT_CHUNK {
                self.write_direct(DIRECT_CHUNK)?;
            }
            return Ok(n);
        }
        let n = self.file.write(buf)?;
        self.unsynced += n as u64;
        if self.unsynced >= SNAPSHOT_SYNC_BYTES {
            self.file.sync_data()?;
            self.unsynced = 0;
        }
        Ok(n)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.file.flush()
    }
}

/// Bytes that go through the Adler-32 of the seals, then to the (compressing) file.
struct Checked<W: Write> {
    inner: W,
    sum: Adler32,
    /// Bytes put so far (before compression).
    written: u64,
}

impl<W: Write> Checked<W> {
    fn put(&mut self, bytes: &[u8]) -> io::Result<()> {
        self.sum.update(bytes);
        self.written += bytes.len() as u64;
        self.inner.write_all(bytes)
    }

    fn seal(&mut self) -> io::Result<()> {
        let v = self.sum.value() as i64;
        self.put(&v.to_be_bytes())?;
        self.put(&1i32.to_be_bytes())?;
        self.put(b"/")
    }
}

/// The sections every serialized database starts with, in a snapshot file and in a Zab
/// SNAP stream alike: the sessions with their timeouts, then the ACL cache.
pub fn write_sessions_and_acls(w: &mut Writer, sessions: &[(i64, i32)], acls: &[(i64, Vec<Acl>)]) {
    w.i32(sessions.len() as i32);
    for (id, timeout) in sessions {
        w.i64(*id).i32(*timeout);
    }
    w.i32(acls.len() as i32);
    for (r, list) in acls {
        w.i64(*r);
        w.vec(list, |w, a| {
            w.record(a);
        });
    }
}

type SnapOut = Checked<Compressor<BufWriter<SnapFile>>>;

/// Create the snapshot file at `path` and write its header, sessions and ACL cache; returns
/// the writer and how many bytes precede the nodes (uncompressed).
fn open_file(
    path: &Path,
    method: Compression,
    sessions: &[(i64, i32)],
    acls: &[(i64, Vec<Acl>)],
) -> io::Result<(SnapOut, u64)> {
    let mut out = Checked {
        inner: Compressor::new(
            method,
            BufWriter::with_capacity(64 * 1024, SnapFile::create(path)?),
        )?,
        sum: Adler32::default(),
        written: 0,
    };
    let mut w = Writer::new();
    w.i32(SNAP_MAGIC).i32(2).i64(-1);
    write_sessions_and_acls(&mut w, sessions, acls);
    out.put(&w.buf)?;
    Ok((out, w.buf.len() as u64))
}

/// Write what follows the nodes (end marker, seals, digest, last zxid), then fsync; returns
/// the file's size.
fn finish_file(mut out: SnapOut, pre: &Preamble) -> io::Result<u64> {
    let mut end = Writer::new();
    end.ustring("/");
    out.put(&end.buf)?;
    out.seal()?;
    if let Some((zxid, digest)) = pre.digest {
        let mut w = Writer::new();
        w.i64(zxid).i32(DIGEST_VERSION).i64(digest);
        out.put(&w.buf)?;
        out.seal()?;
    }
    out.put(&pre.last_zxid.to_be_bytes())?;
    out.seal()?;
    let bufw = out.inner.finish()?;
    let file = bufw.into_inner().map_err(|e| e.into_error())?.finish()?;
    file.sync_all()?;
    Ok(file.metadata()?.len())
}

/// Write a complete snapshot file at `path`: preamble, the node records in `nodes`, the end
/// marker and the seal, compressed with `method`, fsynced.
pub fn write_file(
    path: &Path,
    method: Compression,
    pre: &Preamble,
    nodes: &mut dyn Read,
) -> io::Result<u64> {
    let (mut out, _) = open_file(path, method, &pre.sessions, &pre.acls)?;
    let mut buf = vec![0u8; 1 << 20];
    loop {
        let n = nodes.read(&mut buf)?;
        if n == 0 {
            break;
        }
        out.put(&buf[..n])?;
    }
    finish_file(out, pre)
}

/// Write a whole snapshot of `tree` at `zxid` synchronously (start-up's `snapshot.0`, tests).
pub fn write_now(
    dir: &Path,
    method: Compression,
    tree: &DataTree,
    sessions: Vec<(i64, i32)>,
    zxid: i64,
    digest: bool,
) -> io::Result<PathBuf> {
    fs::create_dir_all(dir)?;
    let mut nodes = Writer::new();
    let mut stack = crate::tree::WalkStack::new();
    while !stack.is_empty() {
        tree.serialize_slice(&mut stack, &mut nodes, usize::MAX);
    }
    let pre = Preamble {
        sessions,
        acls: tree.acl_cache_entries(),
        digest: digest.then(|| (zxid, tree.digest() as i64)),
        last_zxid: zxid,
    };
    let name = snapshot_name(zxid, method.suffix());
    let tmp = dir.join(format!("{name}.tmp"));
    write_file(&tmp, method, &pre, &mut &nodes.buf[..])?;
    let path = dir.join(name);
    fs::rename(&tmp, &path)?;
    sync_dir(dir)?;
    Ok(path)
}

/// Settings of snapshot files.
#[derive(Debug, Clone)]
pub struct SnapSettings {
    /// `<dataDir>/version-2`.
    pub dir: PathBuf,
    pub compression: Compression,
    /// `digest.enabled`: store the tree digest.
    pub digest: bool,
}

/// A snapshot in progress, driven by the core.
struct Job {
    zxid: i64,
    stack: WalkStack,
    tx: SyncSender<SnapMsg>,
    /// Serialized nodes not yet handed to the writer thread.
    slice: Vec<u8>,
    nodes: u64,
    /// ACL references from here on were interned after the walk began.
    acl_next: i64,
    /// The largest ACL reference a walked node carried.
    max_acl: i64,
    /// The walk is done and this waits for room in the writer's queue.
    finish: Option<SnapMsg>,
}

/// The core's snapshot driver: at most one snapshot at a time.
pub struct Snapshotter {
    settings: SnapSettings,
    /// True from the start of a snapshot until its file is in place.
    busy: Arc<AtomicBool>,
    synced: Arc<AtomicI64>,
    job: Option<Job>,
    /// The writer thread of the last snapshot begun.
    thread: Option<std::thread::JoinHandle<()>>,
    /// Set to make that thread drop its file instead of putting it in place.
    discard: Arc<AtomicBool>,
}

impl Snapshotter {
    pub fn new(settings: SnapSettings, synced: Arc<AtomicI64>) -> Snapshotter {
        Snapshotter {
            settings,
            busy: Arc::new(AtomicBool::new(false)),
            synced,
            job: None,
            thread: None,
            discard: Arc::new(AtomicBool::new(false)),
        }
    }

    /// Whether the core still has slices to serialize.
    pub fn walking(&self) -> bool {
        self.job.is_some()
    }

    /// Begin a snapshot of the tree as of `zxid`; false (and nothing happens) if the previous
    /// one is still being written, as Java skips a snapshot when it is "too busy".
    pub fn begin(&mut self, tree: &mut DataTree, sessions: &SessionTracker, zxid: i64) -> bool {
        if self.busy.swap(true, Ordering::AcqRel) {
            tracing::warn!("previous snapshot still being written; skipping this one");
            return false;
        }
        let (tx, rx) = mpsc::sync_channel(SLICE_QUEUE);
        let settings = self.settings.clone();
        let busy = self.busy.clone();
        let synced = self.synced.clone();
        self.discard = Arc::new(AtomicBool::new(false));
        let discard = self.discard.clone();
        let spawned = std::thread::Builder::new()
            .name("snapshot".into())
            .spawn(move || {
                let mut prio = Priority::lower();
                let started = Instant::now();
                match write_snapshot(&settings, zxid, rx, &synced, &discard, &mut prio) {
                    Ok(Some((path, bytes))) => tracing::info!(
                        file = %path.display(),
                        bytes,
                        seconds = started.elapsed().as_secs_f64(),
                        "snapshot written"
                    ),
                    Ok(None) => {}
                    Err(e) => tracing::error!(zxid, error = %e, "snapshot failed"),
                }
                busy.store(false, Ordering::Release);
            });
        match spawned {
            Ok(handle) => self.thread = Some(handle),
            Err(e) => {
                tracing::error!(error = %e, "cannot start the snapshot thread");
                self.busy.store(false, Ordering::Release);
                return false;
            }
        }
        tree.pin_acls(true);
        // The file starts with the sessions and ACL cache of now (Java takes them at the
        // start too); the queue is empty, so this cannot block.
        let _ = tx.send(SnapMsg::Begin {
            sessions: sessions.with_timeouts(),
            acls: tree.acl_cache_entries(),
        });
        self.job = Some(Job {
            zxid,
            stack: WalkStack::new(),
            tx,
            slice: Vec::new(),
            nodes: 0,
            acl_next: tree.acl_next_ref(),
            max_acl: i64::MIN,
            finish: None,
        });
        tracing::info!(zxid = format_args!("{zxid:#x}"), "snapshot started");
        true
    }

    /// Serialize up to `budget` more nodes. Call between requests while [`walking`] is true.
    /// False when nothing could be done: the writer thread is behind.
    ///
    /// [`walking`]: Snapshotter::walking
    pub fn step(
        &mut self,
        tree: &mut DataTree,
        sessions: &SessionTracker,
        last_zxid: i64,
        budget: usize,
    ) -> bool {
        let Some(job) = self.job.as_mut() else {
            return false;
        };
        if let Some(msg) = job.finish.take() {
            return match job.tx.try_send(msg) {
                Ok(()) => {
                    tracing::debug!(zxid = job.zxid, nodes = job.nodes, "snapshot walk done");
                    self.job = None;
                    true
                }
                Err(TrySendError::Full(msg)) => {
                    job.finish = Some(msg);
                    false
                }
                Err(TrySendError::Disconnected(_)) => {
                    tracing::error!("snapshot thread went away");
                    self.job = None;
                    false
                }
            };
        }
        // Hand over a full slice (or the last one); if the writer is behind, wait for it
        // rather than buffer more.
        let full =
            job.slice.len() >= SLICE_BYTES || (job.stack.is_empty() && !job.slice.is_empty());
        if full {
            let slice = std::mem::take(&mut job.slice);
            match job.tx.try_send(SnapMsg::Nodes(slice)) {
                Ok(()) => {}
                Err(TrySendError::Full(SnapMsg::Nodes(s))) => {
                    job.slice = s;
                    return false;
                }
                Err(_) => {
                    self.abandon(tree);
                    return false;
                }
            }
        }
        if !job.stack.is_empty() {
            let mut w = Writer::with_capacity(16 * 1024);
            job.nodes +=
                tree.serialize_slice_acls(&mut job.stack, &mut w, budget, &mut job.max_acl) as u64;
            job.slice.extend_from_slice(&w.buf);
        }
        if job.stack.is_empty() && job.slice.is_empty() {
            // The walk is over: the ACL cache, digest and zxid as of now go after the nodes.
            // The message waits in the job if the writer's queue is full (the core never
            // blocks on the writer).
            let pre = Preamble {
                sessions: sessions.with_timeouts(),
                acls: tree.acl_cache_entries(),
                digest: self
                    .settings
                    .digest
                    .then(|| (last_zxid, tree.digest() as i64)),
                last_zxid,
            };
            tree.pin_acls(false);
            let diverted = job.max_acl >= job.acl_next;
            job.finish = Some(SnapMsg::Finish { pre, diverted });
            self.step(tree, sessions, last_zxid, 0);
            return true;
        }
        true
    }

    /// Where the writer thread learns how far the txn log is durable (a learner restarts its
    /// log after a SNAP or TRUNC, with a new one).
    pub fn set_synced(&mut self, synced: Arc<AtomicI64>) {
        self.synced = synced;
    }

    /// Drop the snapshot in progress, if any, and wait (up to `grace`) until its thread is
    /// gone without putting a file in place: the tree it was taken from is being replaced
    /// (a SNAP or TRUNC from the leader), so the file must not appear after the storage is
    /// reset.
    pub fn cancel(&mut self, tree: &mut DataTree, grace: Duration) {
        self.discard.store(true, Ordering::Release);
        self.stop(tree, grace, false);
    }

    /// At shutdown: a walk still going is abandoned (its thread removes what it wrote); a file
    /// being finished gets up to `grace` to go into place. Either way no unfinished file is
    /// left for the next start, or for Java, to find.
    pub fn shutdown(&mut self, tree: &mut DataTree, grace: Duration) {
        self.stop(tree, grace, true);
    }

    /// End the snapshot in progress; `finish`: a walk already complete still gets its file.
    fn stop(&mut self, tree: &mut DataTree, grace: Duration, finish: bool) {
        if let Some(job) = self.job.as_mut() {
            let finished = match job.finish.take() {
                Some(msg) if finish => job.tx.send(msg).is_ok(),
                _ => false,
            };
            if !finished {
                tracing::info!("snapshot walk interrupted; abandoning it");
            }
            self.abandon(tree);
        }
        let Some(handle) = self.thread.take() else {
            return;
        };
        let deadline = Instant::now() + grace;
        while !handle.is_finished() && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(2));
        }
        if handle.is_finished() {
            let _ = handle.join();
        } else {
            tracing::warn!("snapshot thread still running; its file is left unfinished");
        }
    }

    fn abandon(&mut self, tree: &mut DataTree) {
        tree.pin_acls(false);
        self.job = None;
    }
}

/// Where the writer thread puts the nodes while the walk runs.
enum Sink {
    /// Straight into the snapshot file, after the sessions and ACL cache of the walk's
    /// start: each byte is written once. `nodes_at` is where the nodes begin.
    File { out: Box<SnapOut>, nodes_at: u64 },
    /// Into a scratch file, and the snapshot file is written at the end with the ACL cache
    /// of then: for a compressed snapshot, which cannot be re-read cheaply if the walk meets
    /// an ACL newer than its start.
    Scratch {
        file: BufWriter<File>,
        path: PathBuf,
    },
}

fn write_snapshot(
    settings: &SnapSettings,
    zxid: i64,
    rx: Receiver<SnapMsg>,
    synced: &AtomicI64,
    discard: &AtomicBool,
    prio: &mut Priority,
) -> io::Result<Option<(PathBuf, u64)>> {
    fs::create_dir_all(&settings.dir)?;
    let name = snapshot_name(zxid, settings.compression.suffix());
    let tmp = settings.dir.join(format!("{name}.tmp"));
    let scratch_path = settings
        .dir
        .join(format!(".fk-snapshot-nodes.{zxid:x}.tmp"));
    let result = (|| {
        let Ok(SnapMsg::Begin { sessions, acls }) = rx.recv() else {
            return Ok(None);
        };
        let mut sink = if settings.compression == Compression::None {
            let (out, nodes_at) = open_file(&tmp, settings.compression, &sessions, &acls)?;
            Sink::File {
                out: Box::new(out),
                nodes_at,
            }
        } else {
            let file = OpenOptions::new()
                .write(true)
                .create(true)
                .truncate(true)
                .open(&scratch_path)?;
            Sink::Scratch {
                file: BufWriter::with_capacity(1 << 20, file),
                path: scratch_path.clone(),
            }
        };
        let (pre, diverted) = loop {
            prio.check();
            match rx.recv() {
                Ok(SnapMsg::Nodes(b)) => match &mut sink {
                    Sink::File { out, .. } => out.put(&b)?,
                    Sink::Scratch { file, .. } => file.write_all(&b)?,
                },
                Ok(SnapMsg::Finish { pre, diverted }) => break (pre, diverted),
                Ok(SnapMsg::Begin { .. }) | Err(_) => return Ok(None),
            }
        };
        prio.check();
        let bytes = match sink {
            Sink::File { out, .. } if !diverted => finish_file(*out, &pre)?,
            Sink::File { out, nodes_at } => {
                // A walked node carries an ACL interned after the start: the file is written
                // again, its ACL section from the end of the walk, its nodes copied over.
                tracing::info!(
                    zxid,
                    "an ACL was added during the walk; rewriting the snapshot"
                );
                let nodes_end = out.written;
                let first = out.inner.finish()?;
                drop(first.into_inner().map_err(|e| e.into_error())?.finish()?);
                fs::rename(&tmp, &scratch_path)?;
                let mut nodes = File::open(&scratch_path)?;
                nodes.seek(SeekFrom::Start(nodes_at))?;
                write_file(
                    &tmp,
                    settings.compression,
                    &pre,
                    &mut nodes.take(nodes_end - nodes_at),
                )?
            }
            Sink::Scratch { mut file, path } => {
                file.flush()?;
                drop(file);
                write_file(&tmp, settings.compression, &pre, &mut File::open(&path)?)?
            }
        };
        // The snapshot may include txns up to `zxid` that are still on their way to disk; it
        // must not outlive them in a crash, so it goes into place only once they are durable.
        let deadline = Instant::now() + Duration::from_secs(120);
        while synced.load(Ordering::Acquire) < zxid && !discard.load(Ordering::Acquire) {
            if Instant::now() > deadline {
                return Err(io::Error::other(
                    "txn log never became durable up to the snapshot",
                ));
            }
            std::thread::sleep(Duration::from_millis(1));
        }
        if discard.load(Ordering::Acquire) {
            tracing::info!(
                zxid,
                "snapshot dropped: the tree it was taken from was replaced"
            );
            return Ok(None);
        }
        let path = settings.dir.join(name);
        fs::rename(&tmp, &path)?;
        sync_dir(&settings.dir)?;
        Ok(Some((path, bytes)))
    })();
    let _ = fs::remove_file(&scratch_path);
    if !matches!(result, Ok(Some(_))) {
        let _ = fs::remove_file(&tmp);
    }
    result
}

/// Niceness of the snapshot thread once it has run for [`IDLE_FOR`] at idle priority: it
/// still yields to the core and the log writer, and finishes under full load (about a tenth
/// of a core).
const SNAPSHOT_NICE: i32 = 10;
/// How long the snapshot thread runs at idle priority first.
const IDLE_FOR: Duration = Duration::from_secs(5);

/// The snapshot thread's CPU priority. Where the thread may later return to normal
/// scheduling (CAP_SYS_NICE, or an RLIMIT_NICE that allows nice [`SNAPSHOT_NICE`]), it starts
/// at `SCHED_IDLE`: whenever the core or the log writer wakes it is preempted at once, so a
/// request never waits behind snapshot work for a scheduler slice (a nice value alone still
/// lets it finish its slice first: milliseconds of p99). Idle priority can starve under
/// sustained full load, so after [`IDLE_FOR`] the thread moves to nice [`SNAPSHOT_NICE`] and
/// the snapshot completes. Without that permission Linux would refuse the move back, so the
/// thread runs at nice 19 throughout instead.
struct Priority {
    since: Instant,
    idle: bool,
}

impl Priority {
    fn lower() -> Priority {
        let mut idle = false;
        if may_renice(SNAPSHOT_NICE) {
            // Nice first: leaving SCHED_IDLE is checked against the nice value then held.
            set_nice(SNAPSHOT_NICE);
            let param = libc::sched_param { sched_priority: 0 };
            // SAFETY: sched_setscheduler reads the parameter struct we pass; pid 0 is this
            // thread.
            idle = unsafe { libc::sched_setscheduler(0, libc::SCHED_IDLE, &param) } == 0;
        }
        if !idle {
            set_nice(19);
        }
        Priority {
            since: Instant::now(),
            idle,
        }
    }

    /// Called as the thread works: leave idle priority once it has had it for long enough.
    fn check(&mut self) {
        if self.idle && self.since.elapsed() >= IDLE_FOR {
            self.idle = false;
            let param = libc::sched_param { sched_priority: 0 };
            // SAFETY: as in `lower`.
            let rc = unsafe { libc::sched_setscheduler(0, libc::SCHED_OTHER, &param) };
            if rc != 0 {
                tracing::warn!(error = %io::Error::last_os_error(), "snapshot thread cannot leave idle priority");
            }
        }
    }
}

/// Whether this thread could go back to nice `nice` after raising it: Linux allows that with
/// CAP_SYS_NICE, or when RLIMIT_NICE is at least `20 - nice`.
fn may_renice(nice: i32) -> bool {
    let mut lim = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit writes into the struct we pass.
    let rc = unsafe { libc::getrlimit(libc::RLIMIT_NICE, &mut lim) };
    if rc == 0 && lim.rlim_cur >= (20 - nice) as libc::rlim_t {
        return true;
    }
    // CAP_SYS_NICE is bit 23 of the effective capability mask.
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix("CapEff:"))
                .and_then(|v| u64::from_str_radix(v.trim(), 16).ok())
        })
        .is_some_and(|caps| caps & (1 << 23) != 0)
}

/// Set the calling thread's nice value (Linux nice values are per thread).
fn set_nice(nice: i32) {
    // SAFETY: setpriority has no memory-safety preconditions; `who = 0` is the calling thread.
    let rc = unsafe { libc::setpriority(libc::PRIO_PROCESS, 0, nice) };
    if rc != 0 {
        tracing::debug!(error = %io::Error::last_os_error(), "cannot lower the snapshot thread's priority");
    }
}

/// Remove what a snapshot interrupted by a crash or shutdown left behind: its scratch file
/// and its unfinished `snapshot.<zxid>.tmp` (never renamed, so never a valid snapshot).
pub fn remove_scratch(dir: &Path) {
    let Ok(rd) = fs::read_dir(dir) else { return };
    for ent in rd.flatten() {
        let name = ent.file_name();
        let name = name.to_string_lossy();
        let scratch = name.starts_with(".fk-snapshot-nodes.");
        let unfinished = name.starts_with("snapshot.") && name.ends_with(".tmp");
        if scratch || unfinished {
            tracing::info!(file = %ent.path().display(), "removing an unfinished snapshot file");
            let _ = fs::remove_file(ent.path());
        }
    }
}

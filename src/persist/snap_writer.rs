//! Writing snapshots in Java's format, without stalling writes.
//!
//! Like Java's, our snapshots are fuzzy: the core serializes the tree a slice at a time
//! between requests (see [`DataTree::serialize_slice`]), so a snapshot named after zxid Z
//! holds every change up to Z and possibly some later ones; recovery replays the log from Z
//! and tolerates what is already there. A background thread takes the slices, stores them in
//! a scratch file, and at the end writes the real file: header, sessions, the ACL cache (taken
//! last, and pinned while the walk runs, so every reference the nodes carry is in it), the
//! nodes, and the Adler-32 seal; then it fsyncs, waits until the log is durable up to Z, and
//! renames the file into place.

use std::fs::{self, File, OpenOptions};
use std::io::{self, BufWriter, Read, Write};
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
use crate::tree::{DataTree, DIGEST_VERSION};

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
    Nodes(Vec<u8>),
    Finish(Preamble),
}

/// Bytes written to a snapshot between two syncs. A snapshot is tens or hundreds of MiB; left
/// to one fsync at the end it floods the disk queue, and the txn log's fsyncs (which every
/// acknowledged write waits for) queue behind it. Syncing as it goes keeps each log fsync
/// behind at most this much.
const SNAPSHOT_SYNC_BYTES: u64 = 512 * 1024;

/// A file that is fdatasync'ed every [`SNAPSHOT_SYNC_BYTES`].
struct Paced {
    file: File,
    unsynced: u64,
}

impl Write for Paced {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
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
}

impl<W: Write> Checked<W> {
    fn put(&mut self, bytes: &[u8]) -> io::Result<()> {
        self.sum.update(bytes);
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

/// Write a complete snapshot file at `path`: preamble, the node records in `nodes`, the end
/// marker and the seal, compressed with `method`, fsynced.
pub fn write_file(
    path: &Path,
    method: Compression,
    pre: &Preamble,
    nodes: &mut dyn Read,
) -> io::Result<u64> {
    let file = OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .open(path)?;
    let mut out = Checked {
        inner: Compressor::new(
            method,
            BufWriter::with_capacity(256 * 1024, Paced { file, unsynced: 0 }),
        )?,
        sum: Adler32::default(),
    };
    let mut w = Writer::new();
    w.i32(SNAP_MAGIC).i32(2).i64(-1);
    write_sessions_and_acls(&mut w, &pre.sessions, &pre.acls);
    out.put(&w.buf)?;
    let mut buf = vec![0u8; 1 << 20];
    loop {
        let n = nodes.read(&mut buf)?;
        if n == 0 {
            break;
        }
        out.put(&buf[..n])?;
    }
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
    let file = bufw.into_inner().map_err(|e| e.into_error())?.file;
    file.sync_all()?;
    Ok(file.metadata()?.len())
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
    let mut stack = vec!["/".to_owned()];
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
    stack: Vec<String>,
    tx: SyncSender<SnapMsg>,
    /// Serialized nodes not yet handed to the writer thread.
    slice: Vec<u8>,
    nodes: u64,
}

/// The core's snapshot driver: at most one snapshot at a time.
pub struct Snapshotter {
    settings: SnapSettings,
    /// True from the start of a snapshot until its file is in place.
    busy: Arc<AtomicBool>,
    synced: Arc<AtomicI64>,
    job: Option<Job>,
}

impl Snapshotter {
    pub fn new(settings: SnapSettings, synced: Arc<AtomicI64>) -> Snapshotter {
        Snapshotter {
            settings,
            busy: Arc::new(AtomicBool::new(false)),
            synced,
            job: None,
        }
    }

    /// Whether the core still has slices to serialize.
    pub fn walking(&self) -> bool {
        self.job.is_some()
    }

    /// Begin a snapshot of the tree as of `zxid`; false (and nothing happens) if the previous
    /// one is still being written, as Java skips a snapshot when it is "too busy".
    pub fn begin(&mut self, tree: &mut DataTree, zxid: i64) -> bool {
        if self.busy.swap(true, Ordering::AcqRel) {
            tracing::warn!("previous snapshot still being written; skipping this one");
            return false;
        }
        let (tx, rx) = mpsc::sync_channel(SLICE_QUEUE);
        let settings = self.settings.clone();
        let busy = self.busy.clone();
        let synced = self.synced.clone();
        let spawned = std::thread::Builder::new()
            .name("snapshot".into())
            .spawn(move || {
                lower_priority();
                let started = Instant::now();
                match write_snapshot(&settings, zxid, rx, &synced) {
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
        if let Err(e) = spawned {
            tracing::error!(error = %e, "cannot start the snapshot thread");
            self.busy.store(false, Ordering::Release);
            return false;
        }
        tree.pin_acls(true);
        self.job = Some(Job {
            zxid,
            stack: vec!["/".to_owned()],
            tx,
            slice: Vec::new(),
            nodes: 0,
        });
        tracing::info!(zxid = format_args!("{zxid:#x}"), "snapshot started");
        true
    }

    /// Serialize up to `budget` more nodes. Call between requests while [`walking`] is true.
    ///
    /// [`walking`]: Snapshotter::walking
    pub fn step(
        &mut self,
        tree: &mut DataTree,
        sessions: &SessionTracker,
        last_zxid: i64,
        budget: usize,
    ) {
        let Some(job) = self.job.as_mut() else { return };
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
                    return;
                }
                Err(_) => {
                    self.abandon(tree);
                    return;
                }
            }
        }
        if !job.stack.is_empty() {
            let mut w = Writer::with_capacity(16 * 1024);
            job.nodes += tree.serialize_slice(&mut job.stack, &mut w, budget) as u64;
            job.slice.extend_from_slice(&w.buf);
        }
        if job.stack.is_empty() && job.slice.is_empty() {
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
            let nodes = job.nodes;
            let zxid = job.zxid;
            if job.tx.send(SnapMsg::Finish(pre)).is_err() {
                tracing::error!("snapshot thread went away");
            }
            tracing::debug!(zxid, nodes, "snapshot walk done");
            self.job = None;
        }
    }

    fn abandon(&mut self, tree: &mut DataTree) {
        tree.pin_acls(false);
        self.job = None;
    }
}

fn write_snapshot(
    settings: &SnapSettings,
    zxid: i64,
    rx: Receiver<SnapMsg>,
    synced: &AtomicI64,
) -> io::Result<Option<(PathBuf, u64)>> {
    fs::create_dir_all(&settings.dir)?;
    let scratch_path = settings
        .dir
        .join(format!(".fk-snapshot-nodes.{zxid:x}.tmp"));
    let mut scratch = BufWriter::with_capacity(
        1 << 20,
        OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(true)
            .open(&scratch_path)?,
    );
    let result = (|| {
        let pre = loop {
            match rx.recv() {
                Ok(SnapMsg::Nodes(b)) => scratch.write_all(&b)?,
                Ok(SnapMsg::Finish(pre)) => break Some(pre),
                Err(_) => break None,
            }
        };
        let Some(pre) = pre else { return Ok(None) };
        scratch.flush()?;
        let mut nodes: File = File::open(&scratch_path)?;
        let name = snapshot_name(zxid, settings.compression.suffix());
        let tmp = settings.dir.join(format!("{name}.tmp"));
        let bytes = write_file(&tmp, settings.compression, &pre, &mut nodes)?;
        // The snapshot may include txns up to `zxid` that are still on their way to disk; it
        // must not outlive them in a crash, so it goes into place only once they are durable.
        let deadline = Instant::now() + Duration::from_secs(120);
        while synced.load(Ordering::Acquire) < zxid {
            if Instant::now() > deadline {
                return Err(io::Error::other(
                    "txn log never became durable up to the snapshot",
                ));
            }
            std::thread::sleep(Duration::from_millis(1));
        }
        let path = settings.dir.join(name);
        fs::rename(&tmp, &path)?;
        sync_dir(&settings.dir)?;
        Ok(Some((path, bytes)))
    })();
    let _ = fs::remove_file(&scratch_path);
    result
}

/// Niceness of the snapshot thread: it yields the CPU to the core and the log writer, whose
/// latency every client sees, and still finishes under full load (about a tenth of a core).
const SNAPSHOT_NICE: i32 = 10;

/// Lower the calling thread's CPU priority (Linux nice values are per thread).
fn lower_priority() {
    // SAFETY: setpriority has no memory-safety preconditions; `who = 0` is the calling thread.
    let rc = unsafe { libc::setpriority(libc::PRIO_PROCESS, 0, SNAPSHOT_NICE) };
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

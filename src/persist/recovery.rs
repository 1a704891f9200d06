//! Start-up: rebuild the tree and the sessions from a data directory, Java's way.
//!
//! The newest snapshot that reads back whole (seals and all) is loaded, then every logged txn
//! after it is replayed in zxid order. A torn last entry is cut off with a warning; damage
//! followed by more data stops start-up with the file and offset named, because going on
//! would drop acknowledged txns without a word.

use std::collections::BTreeMap;
use std::fs::{self, File, OpenOptions};
use std::io::{self, Read};
use std::path::{Path, PathBuf};
use std::sync::{mpsc, Mutex};
use std::time::{Duration, Instant};

use thiserror::Error;

use super::compress::{decompress, Compression};
use super::files::{list, version_dir};
use super::snapshot::{SnapError, SnapshotReader};
use super::txnlog::{read_log, LogEnd, LogError};
use crate::request::apply::Applier;
use crate::request::txn::Txn;
use crate::tree::{DataTree, LoadError, PreparedNode, TreeLoader};
use crate::watch::WatchManager;

/// Java tries at most this many snapshots, newest first.
const MAX_SNAPSHOTS_TRIED: usize = 100;

/// Why a data directory cannot be loaded.
#[derive(Debug, Error)]
pub enum RecoveryError {
    #[error("cannot read {path}: {source}")]
    Io { path: PathBuf, source: io::Error },
    #[error("{path}: {source}")]
    Log { path: PathBuf, source: LogError },
    #[error("no valid snapshot among {count} in {dir} (newest failed: {why})")]
    NoValidSnapshot {
        count: usize,
        dir: PathBuf,
        why: String,
    },
    #[error(
        "{dir} has txn logs but no snapshot; refusing to start on a partial data directory \
         (set snapshot.trust.empty=true to accept it)"
    )]
    LogsWithoutSnapshot { dir: PathBuf },
    #[error(
        "{path}: the log starts at zxid {first:#x} but the snapshot ends at {snap:#x}; \
         txns in between are missing"
    )]
    Gap {
        path: PathBuf,
        first: i64,
        snap: i64,
    },
}

/// What recovery rebuilt.
pub struct Restored {
    pub tree: DataTree,
    /// Live sessions and their negotiated timeouts.
    pub sessions: BTreeMap<i64, i32>,
    /// The last txn applied.
    pub zxid: i64,
    /// The snapshot loaded, if there was one.
    pub snapshot: Option<PathBuf>,
    /// Txns replayed from the logs.
    pub replayed: u64,
    /// Logged or snapshot digests that the rebuilt tree did not match (reported, as Java).
    pub digest_mismatches: u64,
    /// Where the time went.
    pub phases: RecoveryPhases,
}

/// Wall-clock time of each phase of [`recover`] (for logs and the `recover_time` example).
#[derive(Debug, Clone, Copy, Default)]
pub struct RecoveryPhases {
    /// Reading the chosen snapshot file (waiting for the disk, when it is streamed).
    pub read: Duration,
    /// Undoing its compression.
    pub decompress: Duration,
    /// Decoding the nodes and inserting them into the tree (with their digests).
    pub nodes: Duration,
    /// Checking the seals after the nodes.
    pub seals: Duration,
    /// Finishing the tree: ACL purge, system nodes.
    pub finish: Duration,
    /// Reading the logs and replaying them, quotas recounted.
    pub replay: Duration,
    /// The part of `replay` spent reading and decoding the logs.
    pub log_read: Duration,
    /// All of [`recover`], including snapshots that failed to load.
    pub total: Duration,
}

/// Options that change what recovery accepts.
#[derive(Debug, Clone, Default)]
pub struct RecoveryOptions {
    pub extended_types: bool,
    /// `snapshot.trust.empty`: accept logs without any snapshot.
    pub trust_empty_snapshot: bool,
}

fn io_err(path: &Path) -> impl FnOnce(io::Error) -> RecoveryError + '_ {
    move |source| RecoveryError::Io {
        path: path.to_owned(),
        source,
    }
}

/// Load one snapshot file completely; on success the tree, sessions and the zxid it is named
/// after.
#[allow(clippy::type_complexity)]
fn load_snapshot(
    path: &Path,
    zxid: i64,
    extended_types: bool,
    phases: &mut RecoveryPhases,
) -> Result<(DataTree, BTreeMap<i64, i32>, Option<(i64, i64)>), String> {
    let started = Instant::now();
    let name = path.file_name().and_then(|n| n.to_str()).unwrap_or("");
    let (tree, sessions, digest) = match Compression::from_name(name) {
        // Streamed from the file: read a window at a time while the tree is built.
        Compression::None => {
            let file = File::open(path).map_err(|e| e.to_string())?;
            let len = file.metadata().map_err(|e| e.to_string())?.len();
            load_nodes(path, file, len, extended_types, pipelined(len), phases)?
        }
        method => {
            let raw = fs::read(path).map_err(|e| e.to_string())?;
            phases.read = started.elapsed();
            let t = Instant::now();
            let buf = decompress(method, raw).map_err(|e| e.to_string())?;
            phases.decompress = t.elapsed();
            let len = buf.len() as u64;
            load_nodes(path, &buf[..], len, extended_types, pipelined(len), phases)?
        }
    };
    // Java ignores a digest of another version, or one older than the snapshot's name.
    let digest = digest
        .filter(|(z, v, _)| *v == crate::tree::DIGEST_VERSION && *z >= zxid)
        .map(|(z, _, d)| (z, d));
    tracing::info!(
        file = %path.display(),
        znodes = tree.node_count().saturating_sub(1),
        sessions = sessions.len(),
        zxid = format_args!("{zxid:#x}"),
        seconds = started.elapsed().as_secs_f64(),
        "snapshot loaded"
    );
    Ok((tree, sessions.into_iter().collect(), digest))
}

/// Nodes loaded before the node table is sized from the bytes they took (and again at 16
/// times as many, from a larger sample).
const SIZE_SAMPLE: usize = 16_384;
/// Nodes per batch handed from the reading thread to the loading one.
const BATCH: usize = 2048;
/// Batches on their way between the two.
const BATCHES_IN_FLIGHT: usize = 8;
/// Smaller snapshots load on one thread: a second one would cost more than it saves.
const PIPELINE_MIN_BYTES: u64 = 4 << 20;

/// What follows the nodes: `(zxid, digest version, digest)` and the last processed zxid.
type Trailer = (Option<(i64, i32, i64)>, Option<i64>);

/// Sizing the node table, and progress in the log, as a load goes.
struct Progress<'p> {
    path: &'p Path,
    len: u64,
    nodes_from: u64,
    sized: u32,
    next_report: Instant,
}

impl Progress<'_> {
    /// Call every few thousand nodes, with the reader's position after the last one loaded.
    fn step(&mut self, loader: &mut TreeLoader, position: usize) {
        let loaded = loader.len();
        if self.sized < 2 && loaded >= SIZE_SAMPLE << (4 * self.sized) {
            // Size the node table for the whole file from the bytes per node so far, so it
            // never grows (and moves every node) later.
            self.sized += 1;
            let used = (position as u64).saturating_sub(self.nodes_from).max(1);
            let total = self.len.saturating_sub(self.nodes_from) as u128;
            let expected = (total * loaded as u128 / used as u128).min(usize::MAX as u128);
            loader.reserve((expected as usize).saturating_sub(loaded));
        }
        if Instant::now() >= self.next_report {
            self.next_report = Instant::now() + Duration::from_secs(2);
            tracing::info!(
                file = %self.path.display(),
                znodes = loaded,
                percent = (position as f64 * 100.0 / self.len.max(1) as f64) as u32,
                "loading snapshot"
            );
        }
    }
}

/// Whether a snapshot of `len` bytes loads on two threads: one reads and decodes, the other
/// builds the tree. Even on one CPU (a server pinned with `taskset`) this measured a little
/// faster than one thread doing both, node by node.
fn pipelined(len: u64) -> bool {
    len >= PIPELINE_MIN_BYTES
}

/// The tree, sessions and digest trailer of the (uncompressed) snapshot bytes in `src`, of
/// `len` bytes in all.
#[allow(clippy::type_complexity)]
fn load_nodes<R: Read + Send>(
    path: &Path,
    src: R,
    len: u64,
    extended_types: bool,
    threads: bool,
    phases: &mut RecoveryPhases,
) -> Result<(DataTree, Vec<(i64, i32)>, Option<(i64, i32, i64)>), String> {
    let t = Instant::now();
    let (reader, sessions, acls) = SnapshotReader::open(src).map_err(|e| e.to_string())?;
    let mut loader = TreeLoader::new(acls, extended_types);
    let mut progress = Progress {
        path,
        len,
        nodes_from: reader.position() as u64,
        sized: 0,
        next_report: Instant::now() + Duration::from_secs(2),
    };
    let slot = Mutex::new(Some(reader));
    let piped = if threads {
        load_piped(&slot, &mut loader, &mut progress)?
    } else {
        None
    };
    let ((digest, _), read, seals, overlapped) = match piped {
        Some((trailer, read, seals)) => (trailer, read, seals, true),
        None => {
            // One thread (or the second could not be started).
            let reader = slot.into_inner().ok().flatten();
            let reader = reader.ok_or("the snapshot reader was lost")?;
            let (trailer, read, seals) = load_serial(reader, &mut loader, &mut progress)?;
            (trailer, read, seals, false)
        }
    };
    phases.read += read;
    phases.seals = seals;
    // On two threads, the reads happen on the other one, alongside the loading.
    let busy = t.elapsed().saturating_sub(seals);
    phases.nodes = if overlapped {
        busy
    } else {
        busy.saturating_sub(read)
    };
    let t = Instant::now();
    let tree = loader.finish();
    phases.finish = t.elapsed();
    Ok((tree, sessions, digest))
}

/// The nodes read and added on this thread; the trailer, and the time spent reading and on
/// the seals.
fn load_serial<R: Read>(
    mut reader: SnapshotReader<R>,
    loader: &mut TreeLoader,
    progress: &mut Progress<'_>,
) -> Result<(Trailer, Duration, Duration), String> {
    loop {
        let node = reader.next_ref().map_err(|e: SnapError| e.to_string())?;
        let Some(n) = node else { break };
        loader
            .add_ref(n.path, n.data, n.acl_ref, n.stat)
            .map_err(|e: LoadError| e.to_string())?;
        if loader.len() % 4096 == 0 {
            progress.step(loader, reader.position());
        }
    }
    let read = reader.io_time();
    let t = Instant::now();
    let trailer = reader.finish().map_err(|e| e.to_string())?;
    Ok((trailer, read, t.elapsed()))
}

/// From the reading thread to the loading one.
enum Batch {
    /// Nodes in file order, and the reader's position after the last.
    Nodes(Vec<PreparedNode>, usize),
    /// The end of the nodes: the seals checked (or why the file is unusable), the time spent
    /// reading and checking the seals.
    End(Result<Trailer, SnapError>, Duration, Duration),
}

/// Load with a second thread that reads, decodes, checks the seals and prepares the nodes
/// (allocations and digests), while this one adds them to the tree. As [`load_serial`], or
/// `None` if the thread could not be started: the reader is then still in `slot`.
#[allow(clippy::type_complexity)]
fn load_piped<R: Read + Send>(
    slot: &Mutex<Option<SnapshotReader<R>>>,
    loader: &mut TreeLoader,
    progress: &mut Progress<'_>,
) -> Result<Option<(Trailer, Duration, Duration)>, String> {
    let (tx, rx) = mpsc::sync_channel(BATCHES_IN_FLIGHT);
    let (spare_tx, spare_rx) = mpsc::channel();
    std::thread::scope(|s| {
        let producer = std::thread::Builder::new()
            .name("snapshot-reader".into())
            .spawn_scoped(s, move || produce(slot, tx, spare_rx));
        let producer = match producer {
            Ok(p) => p,
            Err(e) => {
                tracing::debug!(error = %e, "cannot start a snapshot reader thread; loading on one");
                return Ok(None);
            }
        };
        // On an error here the receiver goes, and with it the reader's next send.
        let result = consume(rx, spare_tx, loader, progress);
        if producer.join().is_err() {
            return Err("the snapshot reader thread panicked".to_owned());
        }
        result.map(Some)
    })
}

/// The reading thread: batches of prepared nodes, then the end.
fn produce<R: Read>(
    slot: &Mutex<Option<SnapshotReader<R>>>,
    tx: mpsc::SyncSender<Batch>,
    spare: mpsc::Receiver<Vec<PreparedNode>>,
) {
    let Some(mut reader) = slot.lock().ok().and_then(|mut r| r.take()) else {
        return;
    };
    loop {
        let mut batch = spare
            .try_recv()
            .unwrap_or_else(|_| Vec::with_capacity(BATCH));
        let mut end = None;
        while batch.len() < BATCH {
            match reader.next_ref() {
                Ok(Some(n)) => batch.push(PreparedNode::new(n.path, n.data, n.acl_ref, n.stat)),
                Ok(None) => {
                    end = Some(Ok(()));
                    break;
                }
                Err(e) => {
                    end = Some(Err(e));
                    break;
                }
            }
        }
        if !batch.is_empty() && tx.send(Batch::Nodes(batch, reader.position())).is_err() {
            return;
        }
        let Some(end) = end else { continue };
        let read = reader.io_time();
        let t = Instant::now();
        let trailer = end.and_then(|()| reader.finish());
        let _ = tx.send(Batch::End(trailer, read, t.elapsed()));
        return;
    }
}

/// The loading thread's side of [`load_piped`].
fn consume(
    rx: mpsc::Receiver<Batch>,
    spare: mpsc::Sender<Vec<PreparedNode>>,
    loader: &mut TreeLoader,
    progress: &mut Progress<'_>,
) -> Result<(Trailer, Duration, Duration), String> {
    for batch in rx {
        match batch {
            Batch::Nodes(mut nodes, position) => {
                for n in nodes.drain(..) {
                    loader
                        .add_prepared(n)
                        .map_err(|e: LoadError| e.to_string())?;
                }
                let _ = spare.send(nodes);
                progress.step(loader, position);
            }
            Batch::End(trailer, read, seals) => {
                return trailer.map(|t| (t, read, seals)).map_err(|e| e.to_string())
            }
        }
    }
    Err("the snapshot reader stopped early".to_owned())
}

/// Rebuild the state held in `data_dir` (snapshots) and `log_dir` (txn logs).
pub fn recover(
    data_dir: &Path,
    log_dir: &Path,
    opts: &RecoveryOptions,
) -> Result<Restored, RecoveryError> {
    let recover_started = Instant::now();
    let mut phases = RecoveryPhases::default();
    let snap_dir = version_dir(data_dir);
    let logs_dir = version_dir(log_dir);
    let mut snaps: Vec<(i64, PathBuf)> = list(&snap_dir, "snapshot")
        .map_err(io_err(&snap_dir))?
        .into_iter()
        .filter(|(_, p)| !p.to_string_lossy().ends_with(".tmp"))
        .collect();
    snaps.reverse();
    let logs = list(&logs_dir, "log").map_err(io_err(&logs_dir))?;

    let mut loaded = None;
    let mut first_failure = None;
    for (zxid, path) in snaps.iter().take(MAX_SNAPSHOTS_TRIED) {
        match load_snapshot(path, *zxid, opts.extended_types, &mut phases) {
            Ok((tree, sessions, digest)) => {
                loaded = Some((tree, sessions, *zxid, path.clone(), digest));
                break;
            }
            Err(why) => {
                tracing::warn!(file = %path.display(), error = %why, "snapshot is not usable; trying an older one");
                first_failure.get_or_insert(why);
            }
        }
    }
    let (mut tree, mut sessions, snap_zxid, snapshot, mut snap_digest) = match loaded {
        Some((t, s, z, p, d)) => (t, s, z, Some(p), d),
        None if !snaps.is_empty() => {
            return Err(RecoveryError::NoValidSnapshot {
                count: snaps.len(),
                dir: snap_dir,
                why: first_failure.unwrap_or_default(),
            })
        }
        None if !logs.is_empty() && !opts.trust_empty_snapshot => {
            return Err(RecoveryError::LogsWithoutSnapshot { dir: logs_dir })
        }
        None => {
            let mut t = DataTree::new();
            t.set_extended_types(opts.extended_types);
            (t, BTreeMap::new(), 0, None, None)
        }
    };
    let mut digest_check = DigestCheck::default();
    if let Some((z, d)) = snap_digest {
        if z == snap_zxid {
            digest_check.compare(z, tree.digest(), d);
            snap_digest = None;
        }
    }

    // The newest log that starts at or before the snapshot, and every later one.
    let start = logs.iter().rposition(|(z, _)| *z <= snap_zxid).unwrap_or(0);
    let mut zxid = snap_zxid;
    let mut replayed = 0u64;
    let started = Instant::now();
    let mut watches = WatchManager::new();
    let mut fired = Vec::new();
    let n_logs = logs.len();
    for (i, (first, path)) in logs.iter().enumerate().skip(start) {
        let is_last = i + 1 == n_logs;
        let read_started = Instant::now();
        let buf = fs::read(path).map_err(io_err(path))?;
        if buf.len() < 16 && is_last {
            // Created, then the crash came before its header was on disk.
            super::log_writer::remove_with_warning(path, "txn log has no complete header")
                .map_err(io_err(path))?;
            continue;
        }
        let (entries, end) = read_log(&buf).map_err(|source| RecoveryError::Log {
            path: path.clone(),
            source,
        })?;
        phases.log_read += read_started.elapsed();
        if *first > zxid + 1 && zxid_epoch(*first) == zxid_epoch(zxid) && !entries.is_empty() {
            return Err(RecoveryError::Gap {
                path: path.clone(),
                first: *first,
                snap: zxid,
            });
        }
        for e in &entries {
            let h = &e.entry.header;
            if h.zxid <= zxid {
                continue;
            }
            match &e.entry.txn {
                Txn::CreateSession { timeout } => {
                    sessions.insert(h.client_id, *timeout);
                }
                Txn::CloseSession { .. } => {
                    sessions.remove(&h.client_id);
                }
                _ => {}
            }
            Applier {
                tree: &mut tree,
                watches: &mut watches,
                fired: &mut fired,
            }
            .replay(&e.entry);
            fired.clear();
            zxid = h.zxid;
            replayed += 1;
            // As Java: logged digests are comparable only once replay has passed the end of
            // the fuzzy snapshot, where the snapshot's own digest is checked.
            match snap_digest {
                Some((z, d)) if z == h.zxid => {
                    digest_check.compare(z, tree.digest(), d);
                    snap_digest = None;
                }
                Some(_) => {}
                None => {
                    if let Some((v, d)) = e.digest {
                        if v == crate::tree::DIGEST_VERSION {
                            digest_check.compare(h.zxid, tree.digest(), d);
                        }
                    }
                }
            }
        }
        if let LogEnd::TornTail { offset } = end {
            tracing::warn!(
                file = %path.display(),
                offset,
                dropped_bytes = buf.len() - offset,
                "txn log ends in a partly written entry (a crash during a write); truncating it there"
            );
            truncate(path, offset as u64).map_err(io_err(path))?;
        }
        if entries.is_empty() && is_last {
            // Created (or cut back to its header) by a crash before any entry was durable; the
            // writer will want this name again for the next txn.
            super::log_writer::remove_with_warning(path, "txn log holds no entries")
                .map_err(io_err(path))?;
        }
    }
    tree.recount_quotas();
    phases.replay = started.elapsed();
    phases.total = recover_started.elapsed();
    digest_check.report();
    tracing::info!(
        znodes = tree.node_count().saturating_sub(1),
        sessions = sessions.len(),
        zxid = format_args!("{zxid:#x}"),
        replayed,
        seconds = started.elapsed().as_secs_f64(),
        "data directory loaded"
    );
    Ok(Restored {
        tree,
        sessions,
        zxid,
        snapshot,
        replayed,
        digest_mismatches: digest_check.mismatched,
        phases,
    })
}

/// Counts digest mismatches during replay. Like Java, a mismatch is reported, not fatal: the
/// digest catches divergence between servers, and the data itself passed its checksums.
#[derive(Default)]
struct DigestCheck {
    checked: u64,
    mismatched: u64,
}

impl DigestCheck {
    fn compare(&mut self, zxid: i64, ours: u64, logged: i64) {
        self.checked += 1;
        if ours as i64 != logged {
            self.mismatched += 1;
            if self.mismatched <= 3 {
                tracing::warn!(
                    zxid = format_args!("{zxid:#x}"),
                    ours = ours as i64,
                    logged,
                    "tree digest differs from the one logged with this txn"
                );
            }
        }
    }

    fn report(&self) {
        if self.mismatched > 0 {
            tracing::warn!(
                mismatched = self.mismatched,
                checked = self.checked,
                "tree digests differed during replay"
            );
        } else {
            tracing::debug!(checked = self.checked, "tree digests matched during replay");
        }
    }
}

fn zxid_epoch(z: i64) -> i64 {
    z >> 32
}

fn truncate(path: &Path, len: u64) -> io::Result<()> {
    let f = OpenOptions::new().write(true).open(path)?;
    f.set_len(len)?;
    f.sync_all()
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use bytes::Bytes;

    use super::*;
    use crate::jute::records::{Acl, Id};
    use crate::jute::{Perms, Writer};
    use crate::persist::snap_writer::{write_file, write_now, Preamble};

    type Canon = BTreeMap<String, (Option<Box<[u8]>>, Vec<Acl>, crate::tree::StatPersisted)>;

    fn canon(t: &DataTree) -> (Canon, u64, u64, usize) {
        let mut out = BTreeMap::new();
        let mut stack = vec!["/".to_owned()];
        while let Some(p) = stack.pop() {
            let n = t.node(&p).expect("listed node exists");
            for k in t.children(&p).unwrap_or_default() {
                stack.push(if p == "/" {
                    format!("/{k}")
                } else {
                    format!("{p}/{k}")
                });
            }
            let acl = t.acl(&p).map(<[Acl]>::to_vec).unwrap_or_default();
            out.insert(p, (n.data().map(Box::from), acl, n.stat()));
        }
        let digest = t.digest();
        assert_eq!(digest, t.full_digest());
        (out, digest, t.approximate_data_size(), t.node_count())
    }

    /// A tree of `n` nodes in a few levels, with ACLs, ephemerals, a container and a quota.
    fn tree(n: usize) -> DataTree {
        let mut t = DataTree::new();
        t.set_extended_types(true);
        let open = Acl::open_unsafe();
        let digest = vec![Acl {
            perms: Perms::ALL,
            id: Id {
                scheme: "digest".into(),
                id: "u:x".into(),
            },
        }];
        let mut z = 1;
        let mut create = |t: &mut DataTree, p: &str, acl: &[Acl], owner: i64| {
            z += 1;
            let data = Bytes::from(format!("data of {p}").repeat(z as usize % 7));
            t.create_node(p, Some(data), acl.to_vec(), owner, -1, z, z * 10)
                .expect("create");
        };
        create(&mut t, "/a", &open, 0);
        create(&mut t, "/zookeeper/quota/a", &open, 0);
        create(&mut t, "/zookeeper/quota/a/zookeeper_limits", &open, 0);
        create(
            &mut t,
            "/c",
            &open,
            crate::jute::codes::CONTAINER_EPHEMERAL_OWNER,
        );
        for i in 0..n {
            let parent = format!("/a/p{}", i % 37);
            if t.node(&parent).is_none() {
                create(&mut t, &parent, &digest, 0);
            }
            let owner = if i % 101 == 0 { 0x55 } else { 0 };
            create(&mut t, &format!("{parent}/n{i}"), &open, owner);
        }
        t.recount_quotas();
        t
    }

    type Loaded = (DataTree, Option<(i64, i32, i64)>);

    fn load(buf: &[u8], threads: bool) -> Result<Loaded, String> {
        let mut phases = RecoveryPhases::default();
        let len = buf.len() as u64;
        load_nodes(Path::new("s"), buf, len, true, threads, &mut phases).map(|(t, _, d)| (t, d))
    }

    #[test]
    fn one_thread_and_two_load_the_same_tree() {
        let d = tempfile::tempdir().unwrap();
        let t = tree(20_000);
        let path = write_now(d.path(), Compression::None, &t, vec![(5, 4000)], 99, true).unwrap();
        let buf = fs::read(&path).unwrap();
        let want = canon(&t);
        let mut sizes = Vec::new();
        for threads in [false, true] {
            let (got, digest) = load(&buf, threads).unwrap();
            let got = canon(&got);
            assert!(got.0 == want.0, "threads: {threads}");
            assert_eq!((got.1, got.3), (want.1, want.3), "threads: {threads}");
            assert_eq!(
                digest,
                Some((99, crate::tree::DIGEST_VERSION, t.digest() as i64))
            );
            sizes.push(got.2);
        }
        assert_eq!(sizes[0], sizes[1]);
        let (got, _) = load(&buf, true).unwrap();
        assert_eq!(got.ephemerals(0x55), t.ephemerals(0x55));
        assert_eq!(got.containers(), t.containers());
    }

    #[test]
    fn one_thread_and_two_fail_alike() {
        let d = tempfile::tempdir().unwrap();
        let path = write_now(d.path(), Compression::None, &tree(5000), vec![], 9, true).unwrap();
        let good = fs::read(&path).unwrap();
        let mut cases: Vec<Vec<u8>> = Vec::new();
        for cut in [20, 5000, good.len() / 2, good.len() - 30, good.len() - 1] {
            cases.push(good[..cut].to_vec());
        }
        for at in [100, 3000, good.len() / 3, good.len() - 60, good.len() - 10] {
            let mut bad = good.clone();
            bad[at] ^= 0x40;
            cases.push(bad);
        }
        // Nodes that do not form a tree: an orphan, a duplicate, an unknown ACL.
        let node = |w: &mut Writer, path: &str, acl: i64| {
            w.ustring(path).buffer(Some(b"x")).i64(acl);
            for _ in 0..6 {
                w.i64(1);
            }
            w.i32(0).i32(0).i32(0);
        };
        for bad_nodes in [
            &[("", -1), ("/a", -1), ("/b/c", -1)][..],
            &[("", -1), ("/a", -1), ("/a", -1)],
            &[("", -1), ("/a", -1), ("/a/b", 7)],
        ] {
            let mut w = Writer::new();
            for i in 0..3000 {
                node(&mut w, &format!("/n{i}"), -1);
            }
            for (p, acl) in bad_nodes {
                node(&mut w, p, *acl);
            }
            let pre = Preamble::default();
            let f = d.path().join("crafted");
            write_file(&f, Compression::None, &pre, &mut &w.buf[..]).unwrap();
            cases.push(fs::read(&f).unwrap());
        }
        for (i, case) in cases.iter().enumerate() {
            let one = load(case, false).map(|_| ());
            let two = load(case, true).map(|_| ());
            assert!(one.is_err(), "case {i} loads");
            assert_eq!(one, two, "case {i}");
        }
    }
}

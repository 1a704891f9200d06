//! Start-up: rebuild the tree and the sessions from a data directory, Java's way.
//!
//! The newest snapshot that reads back whole (seals and all) is loaded, then every logged txn
//! after it is replayed in zxid order. A torn last entry is cut off with a warning; damage
//! followed by more data stops start-up with the file and offset named, because going on
//! would drop acknowledged txns without a word.

use std::collections::BTreeMap;
use std::fs::{self, OpenOptions};
use std::io;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use thiserror::Error;

use super::compress::{decompress, Compression};
use super::files::{list, version_dir};
use super::snapshot::{SnapError, SnapshotReader};
use super::txnlog::{read_log, LogEnd, LogError};
use crate::request::apply::Applier;
use crate::request::txn::Txn;
use crate::tree::{DataTree, LoadError, TreeLoader};
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
) -> Result<(DataTree, BTreeMap<i64, i32>, Option<(i64, i64)>), String> {
    let started = Instant::now();
    let raw = fs::read(path).map_err(|e| e.to_string())?;
    let name = path.file_name().and_then(|n| n.to_str()).unwrap_or("");
    let buf = decompress(Compression::from_name(name), raw).map_err(|e| e.to_string())?;
    let (mut reader, sessions, acls) = SnapshotReader::open(&buf).map_err(|e| e.to_string())?;
    let mut loader = TreeLoader::new(acls, extended_types);
    let mut next_report = Instant::now() + Duration::from_secs(2);
    loop {
        let node = reader.next_node().map_err(|e: SnapError| e.to_string())?;
        let Some(n) = node else { break };
        loader
            .add(&n.path, n.data, n.acl_ref, n.stat)
            .map_err(|e: LoadError| e.to_string())?;
        if loader.len() % 65_536 == 0 && Instant::now() >= next_report {
            next_report = Instant::now() + Duration::from_secs(2);
            tracing::info!(
                file = %path.display(),
                znodes = loader.len(),
                percent = (reader_progress(&buf, &reader) * 100.0) as u32,
                "loading snapshot"
            );
        }
    }
    let znodes = loader.len();
    let (digest, _) = reader.finish().map_err(|e| e.to_string())?;
    // Java ignores a digest of another version, or one older than the snapshot's name.
    let digest = digest
        .filter(|(z, v, _)| *v == crate::tree::DIGEST_VERSION && *z >= zxid)
        .map(|(z, _, d)| (z, d));
    let tree = loader.finish();
    tracing::info!(
        file = %path.display(),
        znodes,
        sessions = sessions.len(),
        zxid = format_args!("{zxid:#x}"),
        seconds = started.elapsed().as_secs_f64(),
        "snapshot loaded"
    );
    Ok((tree, sessions.into_iter().collect(), digest))
}

fn reader_progress(buf: &[u8], r: &SnapshotReader<'_>) -> f64 {
    if buf.is_empty() {
        return 1.0;
    }
    r.position() as f64 / buf.len() as f64
}

/// Rebuild the state held in `data_dir` (snapshots) and `log_dir` (txn logs).
pub fn recover(
    data_dir: &Path,
    log_dir: &Path,
    opts: &RecoveryOptions,
) -> Result<Restored, RecoveryError> {
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
        match load_snapshot(path, *zxid, opts.extended_types) {
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

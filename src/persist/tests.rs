//! Persistence round trips: what the log writer and the snapshot writer produce reads back
//! to the same state, torn tails are cut where a crash could leave them, damage before the
//! tail is refused, and a fuzzy snapshot plus the log rebuilds exactly the live tree.

use std::collections::BTreeMap;
use std::fs;
use std::path::Path;

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

use super::compress::Compression;
use super::files::{list, version_dir};
use super::log_writer::{LogFiles, LogSettings};
use super::recovery::{recover, RecoveryError, RecoveryOptions};
use super::snap_writer::{write_file, write_now, Preamble};
use super::txnlog::{read_log, LogEnd, LogError};
use crate::auth::AuthConfig;
use crate::jute::records::{Acl, CreateRequest, DeleteRequest, Id, SetAclRequest, SetDataRequest};
use crate::jute::{OpCode, Perms, Writer};
use crate::request::apply::Applier;
use crate::request::prep::{Pending, Prep, WriteRequest};
use crate::request::txn::{Txn, TxnEntry, TxnHeader};
use crate::tree::{DataTree, StatPersisted};
use crate::watch::WatchManager;

/// A node as the tests compare it.
type Canon = BTreeMap<String, (Option<Box<[u8]>>, Vec<Acl>, StatPersisted, Vec<String>)>;

fn canon(t: &DataTree) -> Canon {
    let mut out = BTreeMap::new();
    let mut stack = vec!["/".to_owned()];
    while let Some(p) = stack.pop() {
        let n = t.node(&p).expect("listed node exists");
        let mut kids = t.children(&p).unwrap_or_default();
        kids.sort();
        for k in &kids {
            stack.push(if p == "/" {
                format!("/{k}")
            } else {
                format!("{p}/{k}")
            });
        }
        let acl = t.acl(&p).map(<[Acl]>::to_vec).unwrap_or_default();
        out.insert(p, (n.data().map(Box::from), acl, n.stat(), kids));
    }
    out
}

/// Drives random valid writes through prep and apply, as the core does.
struct World {
    tree: DataTree,
    watches: WatchManager,
    pending: Pending,
    zxid: i64,
    sessions: Vec<i64>,
    rng: StdRng,
    entries: Vec<TxnEntry>,
    /// The tree digest after each entry, as the core logs it.
    digests: Vec<i64>,
}

impl World {
    fn new(seed: u64) -> World {
        let mut tree = DataTree::new();
        tree.set_extended_types(true);
        World {
            tree,
            watches: WatchManager::new(),
            pending: Pending::default(),
            zxid: 0,
            sessions: Vec::new(),
            rng: StdRng::seed_from_u64(seed),
            entries: Vec::new(),
            digests: Vec::new(),
        }
    }

    fn apply(&mut self, session: i64, txn: Txn) {
        self.zxid += 1;
        let entry = TxnEntry {
            header: TxnHeader {
                client_id: session,
                cxid: self.zxid as i32,
                zxid: self.zxid,
                time: 1_700_000_000_000 + self.zxid,
            },
            txn,
        };
        let mut fired = Vec::new();
        Applier {
            tree: &mut self.tree,
            watches: &mut self.watches,
            fired: &mut fired,
        }
        .apply(&entry);
        self.entries.push(entry);
        self.digests.push(self.tree.digest() as i64);
        assert_eq!(self.tree.digest(), self.tree.full_digest());
    }

    fn path(&mut self) -> String {
        let a = self.rng.gen_range(0..4);
        if self.rng.gen_bool(0.5) {
            format!("/n{a}")
        } else {
            format!("/n{a}/c{}", self.rng.gen_range(0..6))
        }
    }

    fn step(&mut self) {
        if self.sessions.is_empty() || self.rng.gen_ratio(1, 40) {
            let id = 0x100 + self.zxid;
            self.sessions.push(id);
            self.apply(id, Txn::CreateSession { timeout: 30_000 });
            return;
        }
        let session = self.sessions[self.rng.gen_range(0..self.sessions.len())];
        let auth = AuthConfig::default();
        let ids = vec![Id::new("ip", "127.0.0.1")];
        let acls = [
            Acl::open_unsafe(),
            vec![Acl::new(Perms::ALL, "ip", "127.0.0.1")],
            vec![Acl::new(Perms::READ | Perms::WRITE, "world", "anyone")],
        ];
        let path = self.path();
        let data = Some(vec![self.rng.gen::<u8>(); self.rng.gen_range(0..40)]);
        let kind = self.rng.gen_range(0..10);
        let req = match kind {
            0..=3 => WriteRequest::Create {
                op: OpCode::Create2,
                req: CreateRequest {
                    path,
                    data,
                    acl: acls[self.rng.gen_range(0..3)].clone(),
                    flags: [0, 1, 2, 3, 4][self.rng.gen_range(0..5)],
                },
                ttl: -1,
            },
            4 | 5 => WriteRequest::Delete(DeleteRequest { path, version: -1 }),
            6 | 7 => WriteRequest::SetData(SetDataRequest {
                path,
                data,
                version: -1,
            }),
            8 => WriteRequest::SetAcl(SetAclRequest {
                path,
                acl: acls[self.rng.gen_range(0..3)].clone(),
                version: -1,
            }),
            _ => {
                let idx = self.rng.gen_range(0..self.sessions.len());
                let id = self.sessions.remove(idx);
                let txn = Prep {
                    tree: &self.tree,
                    pending: &mut self.pending,
                    auth: &auth,
                    ids: &ids,
                    session_id: id,
                    extended_types: true,
                    zxid: self.zxid + 1,
                }
                .close_session();
                self.pending.clear();
                self.apply(id, txn);
                return;
            }
        };
        let txn = if self.rng.gen_ratio(1, 8) {
            let second = WriteRequest::SetData(SetDataRequest {
                path: "/n0".into(),
                data: Some(b"multi".to_vec()),
                version: -1,
            });
            Prep {
                tree: &self.tree,
                pending: &mut self.pending,
                auth: &auth,
                ids: &ids,
                session_id: session,
                extended_types: true,
                zxid: self.zxid + 1,
            }
            .prep_multi(vec![req, second])
        } else {
            Prep {
                tree: &self.tree,
                pending: &mut self.pending,
                auth: &auth,
                ids: &ids,
                session_id: session,
                extended_types: true,
                zxid: self.zxid + 1,
            }
            .prep(req)
            .unwrap_or_else(Txn::Error)
        };
        self.pending.clear();
        self.apply(session, txn);
    }
}

fn settings(dir: &Path) -> LogSettings {
    LogSettings {
        dir: version_dir(dir),
        prealloc: 64 * 1024,
        force_sync: false,
    }
}

fn write_log(dir: &Path, entries: &[TxnEntry], roll_every: usize) {
    write_log_digests(dir, entries, &[], roll_every)
}

fn write_log_digests(dir: &Path, entries: &[TxnEntry], digests: &[i64], roll_every: usize) {
    fs::create_dir_all(version_dir(dir)).unwrap();
    let mut files = LogFiles::new(settings(dir));
    for (i, e) in entries.iter().enumerate() {
        files.append(e, digests.get(i).map(|d| (crate::tree::DIGEST_VERSION, *d)));
        if i % 7 == 0 {
            files.commit().unwrap();
        }
        if roll_every > 0 && i % roll_every == roll_every - 1 {
            files.roll().unwrap();
        }
    }
    files.commit().unwrap();
}

fn only_log(dir: &Path) -> std::path::PathBuf {
    let logs = list(&version_dir(dir), "log").unwrap();
    assert_eq!(logs.len(), 1);
    logs[0].1.clone()
}

#[test]
fn every_txn_kind_round_trips_through_the_log() {
    let mut w = World::new(1);
    for _ in 0..400 {
        w.step();
    }
    let d = tempfile::tempdir().unwrap();
    write_log(d.path(), &w.entries, 0);
    let path = only_log(d.path());
    let buf = fs::read(&path).unwrap();
    assert_eq!(
        buf.len() % (64 * 1024),
        16,
        "preallocated in preAllocSize steps"
    );
    let (read, end) = read_log(&buf).unwrap();
    assert!(matches!(end, LogEnd::Preallocated { .. }));
    let read: Vec<TxnEntry> = read.into_iter().map(|e| e.entry).collect();
    assert_eq!(read, w.entries);
}

#[test]
fn a_cut_anywhere_in_the_last_entry_is_a_torn_tail() {
    let mut w = World::new(2);
    for _ in 0..30 {
        w.step();
    }
    let d = tempfile::tempdir().unwrap();
    write_log(d.path(), &w.entries, 0);
    let buf = fs::read(only_log(d.path())).unwrap();
    let (entries, end) = read_log(&buf).unwrap();
    let LogEnd::Preallocated { offset: end } = end else {
        panic!("expected preallocated end")
    };
    let last = entries.last().unwrap().offset;
    for cut in last + 1..end {
        // Truncated file: the entry runs past EOF.
        let (got, tail) = read_log(&buf[..cut]).unwrap();
        assert_eq!(got.len(), entries.len() - 1, "cut at {cut}");
        // A cut inside the checksum's zero high bytes leaves nothing but zeros.
        assert!(
            tail == LogEnd::TornTail { offset: last }
                || tail == LogEnd::Preallocated { offset: last },
            "cut at {cut}: {tail:?}"
        );
        // Preallocated file: the rest of the entry is still zeros.
        let mut zeroed = buf.clone();
        zeroed[cut..end].fill(0);
        let (got, _) = read_log(&zeroed).unwrap();
        assert_eq!(got.len(), entries.len() - 1, "zeroed from {cut}");
    }
}

#[test]
fn damage_before_the_tail_is_refused_with_its_offset() {
    let mut w = World::new(3);
    for _ in 0..30 {
        w.step();
    }
    let d = tempfile::tempdir().unwrap();
    write_log(d.path(), &w.entries, 0);
    let buf = fs::read(only_log(d.path())).unwrap();
    let (entries, _) = read_log(&buf).unwrap();
    let victim = &entries[10];
    let next = entries[11].offset;
    for at in victim.offset..next {
        let mut bad = buf.clone();
        bad[at] ^= 0x5a;
        match read_log(&bad) {
            Err(LogError::Checksum { offset }) | Err(LogError::Corrupt { offset, .. }) => {
                assert_eq!(offset, victim.offset, "byte {at}")
            }
            Err(e) => panic!("byte {at}: unexpected error {e}"),
            Ok((got, end)) => panic!("byte {at}: accepted {} entries, {end:?}", got.len()),
        }
    }
}

#[test]
fn recovery_replays_logs_over_the_newest_snapshot_and_restores_sessions() {
    let mut w = World::new(4);
    let d = tempfile::tempdir().unwrap();
    let snap_dir = version_dir(d.path());
    write_now(&snap_dir, Compression::None, &w.tree, vec![], 0, true).unwrap();
    for _ in 0..300 {
        w.step();
    }
    // A snapshot in the middle, compressed, and one older that must not be chosen.
    let mid_tree_sessions: Vec<(i64, i32)> = vec![];
    write_now(
        &snap_dir,
        Compression::Gz,
        &w.tree,
        mid_tree_sessions,
        w.zxid,
        true,
    )
    .unwrap();
    for _ in 0..300 {
        w.step();
    }
    write_log_digests(d.path(), &w.entries, &w.digests, 97);
    let r = recover_dir(d.path());
    assert_eq!(r.zxid, w.zxid);
    assert_eq!(canon(&r.tree), canon(&w.tree));
    assert!(r.snapshot.unwrap().to_string_lossy().ends_with(".gz"));
    assert_eq!(r.replayed, 300);
    assert_eq!(r.digest_mismatches, 0);
    // Sessions: every created and not closed session, from the log after the snapshot.
    let live: Vec<i64> = r.sessions.keys().copied().collect();
    for s in &live {
        assert!(w.sessions.contains(s) || *s < 0x100 + 300, "session {s:#x}");
    }
}

/// A data directory holding only `snapshot.0` of an empty tree, as a fresh server starts.
fn empty_data_dir() -> (tempfile::TempDir, std::path::PathBuf) {
    let d = tempfile::tempdir().unwrap();
    let snap_dir = version_dir(d.path());
    fs::create_dir_all(&snap_dir).unwrap();
    write_now(
        &snap_dir,
        Compression::None,
        &DataTree::new(),
        vec![],
        0,
        true,
    )
    .unwrap();
    (d, snap_dir)
}

/// Recovery of a data directory that holds its own logs, as the tests' worlds write them.
fn recover_dir(dir: &Path) -> super::recovery::Restored {
    recover(
        dir,
        dir,
        &RecoveryOptions {
            extended_types: true,
            trust_empty_snapshot: false,
        },
    )
    .unwrap()
}

/// Seeds per run; `FK_FUZZY_SEEDS` raises it for a longer search.
const FUZZY_SEEDS: u64 = 60;

#[test]
fn a_fuzzy_snapshot_plus_the_log_is_the_live_tree() {
    let seeds = std::env::var("FK_FUZZY_SEEDS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(FUZZY_SEEDS);
    for seed in 0..seeds {
        let mut w = World::new(100 + seed);
        for _ in 0..200 {
            w.step();
        }
        let (d, snap_dir) = empty_data_dir();
        // Serialize a few nodes at a time while writes keep changing the tree.
        let snap_zxid = w.zxid;
        w.tree.pin_acls(true);
        let mut stack = crate::tree::WalkStack::new();
        let mut nodes = Writer::new();
        while !stack.is_empty() {
            w.tree.serialize_slice(&mut stack, &mut nodes, 3);
            for _ in 0..w.rng.gen_range(0..4) {
                w.step();
            }
        }
        let pre = Preamble {
            sessions: vec![],
            acls: w.tree.acl_cache_entries(),
            digest: Some((w.zxid, w.tree.digest() as i64)),
            last_zxid: w.zxid,
        };
        w.tree.pin_acls(false);
        let name = snap_dir.join(format!("snapshot.{snap_zxid:x}"));
        write_file(&name, Compression::None, &pre, &mut &nodes.buf[..]).unwrap();
        for _ in 0..50 {
            w.step();
        }
        write_log_digests(d.path(), &w.entries, &w.digests, 0);
        let r = recover_dir(d.path());
        assert_eq!(r.zxid, w.zxid, "seed {seed}");
        assert_eq!(canon(&r.tree), canon(&w.tree), "seed {seed}");
        assert_eq!(r.digest_mismatches, 0, "seed {seed}");
    }
}

/// The core's snapshot writer (walk in slices, file written by its thread) while writes go
/// on, for each compression: the file plus the log rebuilds the live tree. Half the seeds
/// give every node a brand-new ACL just after the walk begins, so the file written as the
/// walk goes lacks it in its ACL section and has to be written again.
#[test]
fn the_snapshot_writer_under_writes_rebuilds_the_live_tree() {
    use super::snap_writer::{SnapSettings, Snapshotter};
    use crate::session::SessionTracker;
    use std::sync::atomic::AtomicI64;
    use std::sync::Arc;
    for seed in 0..24u64 {
        let compression =
            [Compression::None, Compression::Gz, Compression::Snappy][seed as usize % 3];
        let fresh_acl = seed % 2 == 1;
        let mut w = World::new(500 + seed);
        for _ in 0..200 {
            w.step();
        }
        let (d, snap_dir) = empty_data_dir();
        let mut snaps = Snapshotter::new(
            SnapSettings {
                dir: snap_dir.clone(),
                compression,
                digest: true,
            },
            Arc::new(AtomicI64::new(i64::MAX)),
        );
        let sessions = SessionTracker::new(1, 2000, std::time::Instant::now());
        let snap_zxid = w.zxid;
        assert!(snaps.begin(&mut w.tree, &sessions, snap_zxid));
        let mut first = true;
        while snaps.walking() {
            snaps.step(&mut w.tree, &sessions, w.zxid, 3);
            if first && fresh_acl {
                let acl = vec![Acl::new(Perms::ALL, "digest", &format!("fresh{seed}:x"))];
                for p in canon(&w.tree)
                    .into_keys()
                    .filter(|p| !p.starts_with("/zookeeper"))
                {
                    let aversion = w.tree.node(&p).unwrap().stat().aversion + 1;
                    let txn = Txn::SetAcl {
                        path: p,
                        acl: acl.clone(),
                        version: aversion,
                    };
                    let client = w.sessions.first().copied().unwrap_or(0x100);
                    w.apply(client, txn);
                }
            }
            first = false;
            for _ in 0..w.rng.gen_range(0..4) {
                w.step();
            }
        }
        let name = snap_dir.join(super::files::snapshot_name(snap_zxid, compression.suffix()));
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
        while !name.exists() {
            assert!(
                std::time::Instant::now() < deadline,
                "seed {seed}: no {}",
                name.display()
            );
            std::thread::sleep(std::time::Duration::from_millis(5));
        }
        // The file is in place; let the thread finish its clean-up (the scratch file goes
        // just after the rename) before looking for leftovers.
        snaps.shutdown(&mut w.tree, std::time::Duration::from_secs(20));
        for _ in 0..50 {
            w.step();
        }
        write_log_digests(d.path(), &w.entries, &w.digests, 0);
        let r = recover_dir(d.path());
        assert_eq!(
            r.snapshot.as_deref(),
            Some(name.as_path()),
            "seed {seed}: not from the new snapshot"
        );
        assert_eq!(r.zxid, w.zxid, "seed {seed}");
        assert_eq!(canon(&r.tree), canon(&w.tree), "seed {seed}");
        assert_eq!(r.digest_mismatches, 0, "seed {seed}");
        let leftovers: Vec<_> = fs::read_dir(&snap_dir)
            .unwrap()
            .flatten()
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .filter(|n| n.ends_with(".tmp"))
            .collect();
        assert!(leftovers.is_empty(), "seed {seed}: {leftovers:?}");
    }
}

/// A snapshot cancelled because its tree is being replaced (a learner's SNAP or TRUNC) never
/// lands, whether it was mid-walk or already complete and waiting for the log; and the
/// writer follows a replaced log's durability figure.
#[test]
fn a_cancelled_snapshot_leaves_no_file_and_a_new_log_is_followed() {
    use super::snap_writer::{SnapSettings, Snapshotter};
    use crate::session::SessionTracker;
    use std::sync::atomic::{AtomicI64, Ordering};
    use std::sync::Arc;
    use std::time::Duration;
    let files = |dir: &Path| -> Vec<String> {
        let mut v: Vec<String> = fs::read_dir(dir)
            .unwrap()
            .flatten()
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .collect();
        v.sort();
        v
    };
    for complete_walk in [false, true] {
        let mut w = World::new(900);
        for _ in 0..300 {
            w.step();
        }
        let d = tempfile::tempdir().unwrap();
        let dir = version_dir(d.path());
        fs::create_dir_all(&dir).unwrap();
        // The log is not yet durable up to the snapshot: it cannot go into place by itself.
        let synced = Arc::new(AtomicI64::new(0));
        let mut snaps = Snapshotter::new(
            SnapSettings {
                dir: dir.clone(),
                compression: Compression::None,
                digest: true,
            },
            synced.clone(),
        );
        let sessions = SessionTracker::new(1, 2000, std::time::Instant::now());
        assert!(snaps.begin(&mut w.tree, &sessions, w.zxid));
        if complete_walk {
            while snaps.walking() {
                snaps.step(&mut w.tree, &sessions, w.zxid, 1000);
            }
        } else {
            snaps.step(&mut w.tree, &sessions, w.zxid, 2);
            assert!(snaps.walking());
        }
        snaps.cancel(&mut w.tree, Duration::from_secs(10));
        synced.store(i64::MAX, Ordering::Release);
        assert!(!snaps.walking());
        assert!(files(&dir).is_empty(), "left behind: {:?}", files(&dir));
        // A replaced log: the next snapshot waits on the new figure, not the old one.
        let old = Arc::new(AtomicI64::new(0));
        snaps.set_synced(old.clone());
        snaps.set_synced(Arc::new(AtomicI64::new(i64::MAX)));
        assert!(snaps.begin(&mut w.tree, &sessions, w.zxid));
        while snaps.walking() {
            snaps.step(&mut w.tree, &sessions, w.zxid, 1000);
        }
        snaps.shutdown(&mut w.tree, Duration::from_secs(10));
        let name = super::files::snapshot_name(w.zxid, "");
        assert_eq!(files(&dir), vec![name], "complete_walk={complete_walk}");
    }
}

#[test]
fn logs_without_a_snapshot_and_gaps_are_refused() {
    let mut w = World::new(5);
    for _ in 0..20 {
        w.step();
    }
    let d = tempfile::tempdir().unwrap();
    write_log(d.path(), &w.entries, 0);
    let opts = RecoveryOptions {
        extended_types: true,
        trust_empty_snapshot: false,
    };
    assert!(matches!(
        recover(d.path(), d.path(), &opts),
        Err(RecoveryError::LogsWithoutSnapshot { .. })
    ));
    let trusted = RecoveryOptions {
        trust_empty_snapshot: true,
        ..opts.clone()
    };
    assert_eq!(recover(d.path(), d.path(), &trusted).unwrap().zxid, w.zxid);

    // A log that starts past the snapshot: txns in between are gone.
    let d2 = tempfile::tempdir().unwrap();
    write_now(
        &version_dir(d2.path()),
        Compression::None,
        &DataTree::new(),
        vec![],
        0,
        true,
    )
    .unwrap();
    write_log(d2.path(), &w.entries[5..], 0);
    assert!(matches!(
        recover(d2.path(), d2.path(), &opts),
        Err(RecoveryError::Gap { .. })
    ));
}

#[test]
fn a_damaged_newest_snapshot_falls_back_to_an_older_one() {
    let mut w = World::new(6);
    let d = tempfile::tempdir().unwrap();
    let snap_dir = version_dir(d.path());
    write_now(&snap_dir, Compression::None, &w.tree, vec![], 0, true).unwrap();
    for _ in 0..100 {
        w.step();
    }
    let newest = write_now(
        &snap_dir,
        Compression::Snappy,
        &w.tree,
        vec![],
        w.zxid,
        true,
    )
    .unwrap();
    write_log(d.path(), &w.entries, 0);
    let mut raw = fs::read(&newest).unwrap();
    let mid = raw.len() / 2;
    raw[mid] ^= 0xff;
    fs::write(&newest, raw).unwrap();
    let r = recover_dir(d.path());
    assert!(r.snapshot.unwrap().ends_with("snapshot.0"));
    assert_eq!(canon(&r.tree), canon(&w.tree));
}

#[test]
fn the_tree_digest_matches_every_digest_java_logged() {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/golden/java-3.9.5-log.1");
    let (entries, _) = read_log(&fs::read(path).unwrap()).unwrap();
    let mut tree = DataTree::new();
    tree.set_extended_types(true);
    let mut watches = WatchManager::new();
    let mut checked = 0;
    for e in &entries {
        let mut fired = Vec::new();
        Applier {
            tree: &mut tree,
            watches: &mut watches,
            fired: &mut fired,
        }
        .apply(&e.entry);
        let (version, digest) = e.digest.expect("Java 3.9 logs a digest with every txn");
        assert_eq!(version, crate::tree::DIGEST_VERSION);
        assert_eq!(
            tree.digest() as i64,
            digest,
            "after zxid {:#x}: {:?}",
            e.entry.header.zxid,
            e.entry.txn
        );
        assert_eq!(tree.digest(), tree.full_digest());
        checked += 1;
    }
    assert_eq!(checked, 18);
}

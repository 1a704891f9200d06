//! Time `recover()` on a large data directory, phase by phase.
//!
//! Builds (once, cached) a dataDir in Java's format: a snapshot of N znodes of 100-byte data
//! spread over P parents, then a txn log of L creates after it, each logged with its digest.
//! Then times recovery with the page cache dropped (when allowed: root) and warm, checking
//! the recovered tree's digest each time.
//!
//! ```text
//! cargo run --release --example recover_time -- [--znodes 1000000] [--parents 256]
//!     [--log 50000] [--size 100] [--dir /tmp/fk-recover-1m] [--runs 3] [--no-cold]
//!     [--no-warm] [--rebuild] [--leak] [--parse-only] [--in-thread] [--keep-cache]
//! ```
//!
//! Runs after the first in one process reuse the memory the previous tree freed; a server
//! starting up has fresh memory (page faults) and loads on a thread of its runtime. For the
//! server's case run one cold run per process, on a thread, pinned to one CPU as
//! `bench/run.sh` pins the restarted server: `taskset -c 0 recover_time --runs 1 --no-warm
//! --in-thread`.
use std::fs;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use bytes::Bytes;
use ferrokeeper::jute::records::Acl;
use ferrokeeper::jute::OpCode;
use ferrokeeper::persist::compress::Compression;
use ferrokeeper::persist::files::version_dir;
use ferrokeeper::persist::log_writer::{LogFiles, LogSettings};
use ferrokeeper::persist::recovery::{recover, RecoveryOptions, RecoveryPhases};
use ferrokeeper::persist::snap_writer::write_now;
use ferrokeeper::persist::snapshot::SnapshotReader;
use ferrokeeper::request::txn::{Txn, TxnEntry, TxnHeader};
use ferrokeeper::tree::{DataTree, DIGEST_VERSION};

struct Args {
    znodes: usize,
    parents: usize,
    log: usize,
    size: usize,
    dir: Option<PathBuf>,
    runs: usize,
    cold: bool,
    warm: bool,
    rebuild: bool,
    /// Leak each recovered tree instead of dropping it (and skip the full digest check), so
    /// a profile holds recovery alone.
    leak: bool,
    /// Only stream the newest snapshot's records and check its seals (no tree).
    parse_only: bool,
    /// Recover on a spawned thread, as the server does (its allocator arena differs).
    in_thread: bool,
    /// Runs without the warm-up pass read the dataDir into the page cache instead of
    /// dropping it ("fresh": fresh memory, warm cache).
    keep_cache: bool,
}

fn args() -> Args {
    let mut a = Args {
        znodes: 1_000_000,
        parents: 256,
        log: 50_000,
        size: 100,
        dir: None,
        runs: 3,
        cold: true,
        warm: true,
        rebuild: false,
        leak: false,
        parse_only: false,
        in_thread: false,
        keep_cache: false,
    };
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        let mut num = || -> usize {
            it.next()
                .and_then(|v| v.parse().ok())
                .unwrap_or_else(|| panic!("{flag} needs a number"))
        };
        match flag.as_str() {
            "--znodes" => a.znodes = num(),
            "--parents" => a.parents = num().max(1),
            "--log" => a.log = num(),
            "--size" => a.size = num(),
            "--runs" => a.runs = num().max(1),
            "--dir" => a.dir = it.next().map(PathBuf::from),
            "--no-cold" => a.cold = false,
            "--no-warm" => a.warm = false,
            "--rebuild" => a.rebuild = true,
            "--leak" => a.leak = true,
            "--parse-only" => a.parse_only = true,
            "--in-thread" => a.in_thread = true,
            "--keep-cache" => a.keep_cache = true,
            other => panic!("unknown argument {other}"),
        }
    }
    a
}

fn rss_mb() -> u64 {
    fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmRSS"))
                .and_then(|l| l.split_whitespace().nth(1).and_then(|v| v.parse().ok()))
        })
        .unwrap_or(0)
        / 1024
}

/// Build the data directory; returns the tree digest recovery must end with.
fn build(a: &Args, dir: &Path) -> u64 {
    let started = Instant::now();
    let _ = fs::remove_dir_all(dir);
    let vdir = version_dir(dir);
    fs::create_dir_all(&vdir).expect("create dataDir");
    let mut tree = DataTree::new();
    tree.set_extended_types(true);
    let acl = Acl::open_unsafe();
    let value = Bytes::from(vec![b'v'; a.size]);
    let mut zxid = 0x1_0000_0000i64;
    let time = 1_700_000_000_000i64;
    let next = |z: &mut i64| {
        *z += 1;
        *z
    };
    let z = next(&mut zxid);
    tree.create_node("/bench", Some(Bytes::new()), acl.clone(), 0, -1, z, time)
        .expect("create");
    for p in 0..a.parents {
        let z = next(&mut zxid);
        tree.create_node(
            &format!("/bench/d{p}"),
            Some(Bytes::new()),
            acl.clone(),
            0,
            -1,
            z,
            time,
        )
        .expect("create");
    }
    for i in 0..a.znodes {
        let z = next(&mut zxid);
        let path = format!("/bench/d{}/n{}", i % a.parents, i / a.parents);
        tree.create_node(
            &path,
            Some(value.clone()),
            acl.clone(),
            0,
            -1,
            z,
            time + i as i64,
        )
        .expect("create");
    }
    let sessions: Vec<(i64, i32)> = (0..8).map(|s| (0x100 + s, 30_000)).collect();
    let snap = write_now(&vdir, Compression::None, &tree, sessions, zxid, true).expect("snapshot");
    let mut files = LogFiles::new(LogSettings {
        dir: vdir.clone(),
        prealloc: 64 << 20,
        force_sync: false,
    });
    for j in 0..a.log {
        let i = a.znodes + j;
        let parent = format!("/bench/d{}", i % a.parents);
        let path = format!("{parent}/n{}", i / a.parents);
        let parent_cversion = tree.node(&parent).map_or(0, |n| n.stat().cversion) + 1;
        let z = next(&mut zxid);
        let entry = TxnEntry {
            header: TxnHeader {
                client_id: 0x100 + (j % 8) as i64,
                cxid: j as i32,
                zxid: z,
                time: time + i as i64,
            },
            txn: Txn::Create {
                op: OpCode::Create,
                path: path.clone(),
                data: Some(value.clone()),
                acl: acl.clone(),
                ephemeral_owner: 0,
                parent_cversion,
                ttl: 0,
            },
        };
        tree.create_node(
            &path,
            Some(value.clone()),
            acl.clone(),
            0,
            parent_cversion,
            z,
            time + i as i64,
        )
        .expect("create");
        files.append(&entry, Some((DIGEST_VERSION, tree.digest() as i64)));
        if j % 1000 == 999 {
            files.commit().expect("log");
        }
    }
    files.commit().expect("log");
    drop(files);
    let digest = tree.digest();
    fs::write(dir.join("expected-digest"), digest.to_string()).expect("write");
    println!(
        "built {} in {:.1} s: snapshot {:.1} MiB ({}), {} logged creates",
        dir.display(),
        started.elapsed().as_secs_f64(),
        fs::metadata(&snap).map(|m| m.len()).unwrap_or(0) as f64 / (1 << 20) as f64,
        snap.display(),
        a.log
    );
    digest
}

/// CPU time of the whole process (user + system): unlike wall time, not stretched when other
/// processes take the core.
fn cpu_time() -> Duration {
    // SAFETY: rusage is plain integers, so all zeros is a valid value; getrusage only writes
    // into the struct it is given.
    let u = unsafe {
        let mut u: libc::rusage = std::mem::zeroed();
        libc::getrusage(libc::RUSAGE_SELF, &mut u);
        u
    };
    let tv = |t: libc::timeval| Duration::new(t.tv_sec as u64, t.tv_usec as u32 * 1000);
    tv(u.ru_utime) + tv(u.ru_stime)
}

fn drop_caches() -> bool {
    // SAFETY: sync(2) has no preconditions.
    unsafe { libc::sync() };
    fs::write("/proc/sys/vm/drop_caches", "3").is_ok()
}

/// Read every file of the dataDir, so it is in the page cache.
fn warm_cache(dir: &Path) {
    for e in fs::read_dir(version_dir(dir)).expect("dataDir").flatten() {
        let mut f = fs::File::open(e.path()).expect("open");
        std::io::copy(&mut f, &mut std::io::sink()).expect("read");
    }
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

const COLUMNS: [&str; 10] = [
    "read",
    "decompress",
    "nodes",
    "seals",
    "finish",
    "log read",
    "replay",
    "other",
    "total",
    "cpu",
];

/// The phases, and a slot for the CPU time.
fn row(p: &RecoveryPhases) -> [f64; 10] {
    let known = p.read + p.decompress + p.nodes + p.seals + p.finish + p.replay;
    [
        ms(p.read),
        ms(p.decompress),
        ms(p.nodes),
        ms(p.seals),
        ms(p.finish),
        ms(p.log_read),
        ms(p.replay.saturating_sub(p.log_read)),
        ms(p.total.saturating_sub(known)),
        ms(p.total),
        0.0,
    ]
}

fn print_row(label: &str, v: &[f64; 10]) {
    print!("{label:>12}");
    for x in v {
        print!(" {x:>10.0}");
    }
    println!();
}

fn median(rows: &[[f64; 10]]) -> [f64; 10] {
    let mut out = [0.0; 10];
    for (c, slot) in out.iter_mut().enumerate() {
        let mut col: Vec<f64> = rows.iter().map(|r| r[c]).collect();
        col.sort_by(f64::total_cmp);
        *slot = col[col.len() / 2];
    }
    out
}

/// Time the snapshot reader alone over the newest snapshot (warm cache).
fn parse_only(dir: &Path, runs: usize) {
    let mut snaps: Vec<PathBuf> = fs::read_dir(version_dir(dir))
        .expect("dataDir")
        .flatten()
        .map(|e| e.path())
        .filter(|p| {
            p.file_name()
                .is_some_and(|n| n.to_string_lossy().starts_with("snapshot."))
        })
        .collect();
    snaps.sort();
    let path = snaps.last().expect("a snapshot");
    for _ in 0..runs {
        let started = Instant::now();
        let file = fs::File::open(path).expect("open");
        let (mut r, _, _) = SnapshotReader::open(file).expect("header");
        let (mut nodes, mut bytes) = (0usize, 0usize);
        while let Some(n) = r.next_ref().expect("node") {
            nodes += 1;
            bytes += n.path.len() + n.data.map_or(0, |d| d.len());
        }
        let parsed = started.elapsed();
        r.finish().expect("seals");
        println!(
            "parse only: {nodes} nodes ({} MiB of paths and data) in {:.0} ms, seals checked at {:.0} ms",
            bytes >> 20,
            ms(parsed),
            ms(started.elapsed())
        );
    }
}

fn main() {
    let a = args();
    let dir = a.dir.clone().unwrap_or_else(|| {
        if (a.znodes, a.parents, a.log, a.size) == (1_000_000, 256, 50_000, 100) {
            PathBuf::from("/tmp/fk-recover-1m")
        } else {
            PathBuf::from(format!(
                "/tmp/fk-recover-{}-{}p-{}l-{}b",
                a.znodes, a.parents, a.log, a.size
            ))
        }
    });
    let cached = fs::read_to_string(dir.join("expected-digest"))
        .ok()
        .and_then(|s| s.trim().parse::<u64>().ok());
    let expected = match cached {
        Some(d) if !a.rebuild => {
            println!("reusing {}", dir.display());
            d
        }
        _ => build(&a, &dir),
    };
    if a.parse_only {
        parse_only(&dir, a.runs);
        return;
    }
    let opts = RecoveryOptions {
        extended_types: true,
        trust_empty_snapshot: false,
    };
    let mut kinds = Vec::new();
    if a.cold {
        kinds.push(if a.keep_cache { "fresh" } else { "cold" });
    }
    if a.warm {
        kinds.push("warm");
    }
    println!(
        "{:>12} {}",
        "ms",
        COLUMNS.map(|c| format!("{c:>10}")).join(" ")
    );
    for kind in kinds {
        let mut rows = Vec::new();
        if kind == "warm" {
            // One untimed pass to fill the page cache.
            drop(recover(&dir, &dir, &opts).expect("recover"));
        }
        for run in 0..a.runs {
            if kind == "fresh" {
                warm_cache(&dir);
            } else if kind == "cold" && !drop_caches() {
                println!("cannot drop the page cache (not root?); cold runs skipped");
                break;
            }
            let cpu0 = cpu_time();
            let started = Instant::now();
            let r = if a.in_thread {
                let (d, o) = (dir.clone(), opts.clone());
                std::thread::spawn(move || recover(&d, &d, &o))
                    .join()
                    .expect("recovery thread")
            } else {
                recover(&dir, &dir, &opts)
            }
            .expect("recover");
            let wall = started.elapsed();
            let cpu = cpu_time().saturating_sub(cpu0);
            assert_eq!(r.tree.digest(), expected, "recovered tree differs");
            if !a.leak {
                assert_eq!(r.tree.digest(), r.tree.full_digest(), "digest not current");
            }
            assert_eq!(r.digest_mismatches, 0);
            assert_eq!(r.replayed as usize, a.log);
            let mut v = row(&r.phases);
            v[9] = ms(cpu);
            print_row(&format!("{kind} {}", run + 1), &v);
            if run == 0 {
                println!(
                    "{:>12} wall {:.0} ms, {} znodes, {} sessions, RSS {} MiB",
                    "",
                    ms(wall),
                    r.tree.node_count() - 1,
                    r.sessions.len(),
                    rss_mb()
                );
            }
            rows.push(v);
            if a.leak {
                std::mem::forget(r);
                continue;
            }
            let t = Instant::now();
            drop(r);
            if run == 0 {
                println!("{:>12} (tree dropped in {:.0} ms)", "", ms(t.elapsed()));
            }
        }
        if !rows.is_empty() {
            print_row(&format!("{kind} median"), &median(&rows));
        }
    }
}

//! Crash-safety tests: run the real `ferrokeeper` binary as a child process, SIGKILL it while
//! clients write, damage its newest txn log, and check that restarts never lose an
//! acknowledged write, never panic, never hang.
//!
//! * `kill9_rounds`: one dataDir, 24 rounds of four sessions writing (a create per step plus a
//!   setData on the writer's counter) until a seeded SIGKILL. After every restart: each
//!   acknowledged create exists with its exact data, each writer's nodes are gap-free, each
//!   counter is at least its last acknowledged value (and its node exists), and the server
//!   log has no panic and no ERROR line.
//! * `torn_and_corrupt_log`: 300+ acknowledged creates, SIGKILL, then copies of the dataDir
//!   with the newest `log.*` truncated or one byte flipped (edge cases, then seeded random
//!   rounds). The server must start with every create whose entry ends before the damage, or,
//!   only for a flipped byte in the header or in an entry followed by more complete entries,
//!   exit non-zero naming the file and the offset.
//!
//! Both are seeded: `FK_CRASH_SEED=<u64>` replays a run (the seed and a reproduction command
//! are printed first). On failure the temporary directory (data dirs, zoo.cfg, one server log
//! per start) is kept and its path printed.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::fs::{self, File, OpenOptions};
use std::io::{Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use serde_json::Value;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use zookeeper_client as zk;
// Linked for its side effect: it registers tokio as the spawner zookeeper-client uses.
extern crate spawns;

const BIN: &str = env!("CARGO_BIN_EXE_ferrokeeper");
/// How long a start (recovery included) may take before the server counts as hung.
const READY_TIMEOUT: Duration = Duration::from_secs(20);
/// Bound on any single client request.
const OP_TIMEOUT: Duration = Duration::from_secs(5);
/// How much of a server log a failure prints.
const LOG_TAIL: usize = 24 * 1024;
/// The size of Java's txn log file header (`ZKLG`, version, dbid).
const LOG_HEADER: u64 = 16;

// ---------------------------------------------------------------------------------------------
// Shared helpers: seed, temp dir, server process, readiness, client, log checks.
// ---------------------------------------------------------------------------------------------

fn seed_for(test: &str) -> u64 {
    let seed = match std::env::var("FK_CRASH_SEED") {
        Ok(s) => s
            .trim()
            .parse()
            .unwrap_or_else(|_| panic!("FK_CRASH_SEED={s:?} is not a u64")),
        Err(_) => {
            let t = SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .unwrap_or_default();
            // Mix in the test name so the two tests do not share a seed.
            let salt = test
                .bytes()
                .fold(0u64, |h, b| h.wrapping_mul(31) ^ b as u64);
            (t.as_nanos() as u64) ^ salt.rotate_left(17)
        }
    };
    println!("{test}: seed {seed}");
    println!("{test}: reproduce with: FK_CRASH_SEED={seed} cargo test --test crash {test}");
    seed
}

/// A temporary directory that survives a failure (its path is in the panic message) and is
/// removed by [`Scratch::cleanup`] when the test passes.
struct Scratch {
    path: PathBuf,
}

impl Scratch {
    fn new(test: &str) -> Scratch {
        let dir = tempfile::Builder::new()
            .prefix(&format!("fk-crash-{test}-"))
            .tempdir()
            .expect("tempdir");
        Scratch { path: dir.keep() }
    }

    fn cleanup(self) {
        let _ = fs::remove_dir_all(&self.path);
    }
}

fn free_port() -> u16 {
    let l = std::net::TcpListener::bind("127.0.0.1:0").expect("bind 127.0.0.1:0");
    l.local_addr().expect("local addr").port()
}

fn write_cfg(cfg: &Path, data: &Path, port: u16) {
    let text = format!(
        "tickTime=2000\ndataDir={}\nclientPort={port}\nclientPortAddress=127.0.0.1\n\
         4lw.commands.whitelist=*\nsnapCount=200\n",
        data.display()
    );
    fs::write(cfg, text).expect("write zoo.cfg");
}

/// How a start ended.
#[derive(Debug)]
enum Start {
    /// `srvr` answered with a `Mode:` line.
    Ready(Duration),
    /// The process exited before it was ready.
    Exited(ExitStatus),
    /// Neither within [`READY_TIMEOUT`] (the process has been killed).
    Hung,
}

/// The server as a child process; killed (SIGKILL) and reaped on drop.
struct Server {
    child: Option<Child>,
    port: u16,
    log: PathBuf,
}

impl Server {
    /// Write `cfg` for a fresh free port and start the binary with its output in `log`.
    fn spawn(cfg: &Path, data: &Path, log: &Path) -> Server {
        let port = free_port();
        write_cfg(cfg, data, port);
        let out = File::create(log).expect("create server log");
        let err = out.try_clone().expect("clone server log handle");
        let child = Command::new(BIN)
            .arg("--config")
            .arg(cfg)
            .env("NO_COLOR", "1")
            .env("RUST_LOG", "info")
            .env("RUST_BACKTRACE", "1")
            .stdin(Stdio::null())
            .stdout(Stdio::from(out))
            .stderr(Stdio::from(err))
            .spawn()
            .expect("spawn ferrokeeper");
        Server {
            child: Some(child),
            port,
            log: log.to_path_buf(),
        }
    }

    fn addr(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    /// Poll until `srvr` answers with `Mode:`, the process exits, or the time is up.
    async fn wait_start(&mut self) -> Start {
        let t0 = Instant::now();
        loop {
            if let Some(child) = self.child.as_mut() {
                if let Ok(Some(status)) = child.try_wait() {
                    self.child = None;
                    return Start::Exited(status);
                }
            }
            if let Some(reply) = four_letter(self.port, "srvr").await {
                if reply.contains("Mode:") {
                    return Start::Ready(t0.elapsed());
                }
            }
            if t0.elapsed() > READY_TIMEOUT {
                self.kill();
                return Start::Hung;
            }
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
    }

    /// How the process ended, if it has by now or within a second (for failure reports).
    async fn exit_status(&mut self) -> Option<ExitStatus> {
        for _ in 0..20 {
            if let Some(status) = self.child.as_mut()?.try_wait().ok().flatten() {
                return Some(status);
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        None
    }

    /// SIGKILL (what `Child::kill` sends on Unix) and reap.
    fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    fn output(&self) -> String {
        read_log(&self.log)
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.kill();
    }
}

fn read_log(path: &Path) -> String {
    strip_ansi(&String::from_utf8_lossy(
        &fs::read(path).unwrap_or_default(),
    ))
}

fn tail(text: &str) -> &str {
    if text.len() <= LOG_TAIL {
        return text;
    }
    let mut start = text.len() - LOG_TAIL;
    while !text.is_char_boundary(start) {
        start += 1;
    }
    &text[start..]
}

fn strip_ansi(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let mut chars = s.chars().peekable();
    while let Some(c) = chars.next() {
        if c == '\u{1b}' && chars.peek() == Some(&'[') {
            chars.next();
            for d in chars.by_ref() {
                if d.is_ascii_alphabetic() {
                    break;
                }
            }
        } else {
            out.push(c);
        }
    }
    out
}

/// Lines of a server log that are a panic or an ERROR-level event.
fn log_problems(text: &str, errors_too: bool) -> Vec<String> {
    text.lines()
        .filter(|line| {
            let level = line
                .split_whitespace()
                .take(4)
                .find(|t| matches!(*t, "TRACE" | "DEBUG" | "INFO" | "WARN" | "ERROR"));
            line.contains("panicked") || (errors_too && level == Some("ERROR"))
        })
        .map(str::to_owned)
        .collect()
}

/// Send a four-letter word; the reply, or `None` if the server is not answering.
async fn four_letter(port: u16, word: &str) -> Option<String> {
    let exchange = async {
        let mut s = TcpStream::connect(("127.0.0.1", port)).await.ok()?;
        s.write_all(word.as_bytes()).await.ok()?;
        let mut buf = Vec::new();
        s.read_to_end(&mut buf).await.ok()?;
        Some(String::from_utf8_lossy(&buf).into_owned())
    };
    tokio::time::timeout(Duration::from_secs(2), exchange)
        .await
        .ok()
        .flatten()
}

async fn connect(addr: &str) -> Result<zk::Client, String> {
    let connecting = zk::Client::connector()
        .with_session_timeout(Duration::from_secs(6))
        .with_fail_eagerly()
        .connect(addr);
    match tokio::time::timeout(Duration::from_secs(10), connecting).await {
        Ok(Ok(c)) => Ok(c),
        Ok(Err(e)) => Err(format!("connect to {addr}: {e}")),
        Err(_) => Err(format!("connect to {addr}: timed out")),
    }
}

fn open() -> zk::CreateOptions<'static> {
    zk::CreateMode::Persistent.with_acls(zk::Acls::anyone_all())
}

/// `get_data` for many paths, pipelined in chunks; `None` for a missing node.
async fn get_many(c: &zk::Client, paths: &[String]) -> Result<Vec<Option<Vec<u8>>>, String> {
    let mut out = Vec::with_capacity(paths.len());
    for chunk in paths.chunks(256) {
        // The requests are sent when the futures are created; awaiting them in turn pipelines.
        let pending: Vec<_> = chunk.iter().map(|p| c.get_data(p)).collect();
        for (path, fut) in chunk.iter().zip(pending) {
            match tokio::time::timeout(OP_TIMEOUT, fut).await {
                Ok(Ok((data, _))) => out.push(Some(data)),
                Ok(Err(zk::Error::NoNode)) => out.push(None),
                Ok(Err(e)) => return Err(format!("get_data {path}: {e}")),
                Err(_) => return Err(format!("get_data {path}: timed out")),
            }
        }
    }
    Ok(out)
}

async fn children(c: &zk::Client, path: &str) -> Result<Option<Vec<String>>, String> {
    match tokio::time::timeout(OP_TIMEOUT, c.list_children(path)).await {
        Ok(Ok(names)) => Ok(Some(names)),
        Ok(Err(zk::Error::NoNode)) => Ok(None),
        Ok(Err(e)) => Err(format!("list_children {path}: {e}")),
        Err(_) => Err(format!("list_children {path}: timed out")),
    }
}

/// Where failures are reported from: the test, its seed, its kept files.
struct Ctx {
    test: &'static str,
    seed: u64,
    dir: PathBuf,
}

impl Ctx {
    /// Print the tail of a server log (if any), then panic with the seed and where the files are.
    fn fail(&self, log: Option<&Path>, msg: &str) -> ! {
        if let Some(path) = log {
            eprintln!(
                "----- server output {} (last {} KiB) -----\n{}\n----- end of server output -----",
                path.display(),
                LOG_TAIL / 1024,
                tail(&read_log(path))
            );
        }
        let (test, seed) = (self.test, self.seed);
        panic!(
            "{test} failed: {msg}\n  seed {seed}; reproduce with: FK_CRASH_SEED={seed} cargo \
             test --test crash {test}\n  files kept in {}",
            self.dir.display()
        );
    }
}

fn version2(data: &Path) -> PathBuf {
    data.join("version-2")
}

/// `(log.* files, snapshot.* files)` in a data dir.
fn data_files(data: &Path) -> (Vec<String>, Vec<String>) {
    let mut logs = Vec::new();
    let mut snaps = Vec::new();
    if let Ok(rd) = fs::read_dir(version2(data)) {
        for e in rd.flatten() {
            let name = e.file_name().to_string_lossy().into_owned();
            if name.starts_with("log.") {
                logs.push(name);
            } else if name.starts_with("snapshot.") {
                snaps.push(name);
            }
        }
    }
    logs.sort();
    snaps.sort();
    (logs, snaps)
}

/// The `log.<hex zxid>` file with the highest zxid.
fn newest_log(data: &Path) -> Option<PathBuf> {
    let (logs, _) = data_files(data);
    logs.into_iter()
        .filter_map(|name| {
            let z = u64::from_str_radix(name.strip_prefix("log.")?, 16).ok()?;
            Some((z, name))
        })
        .max()
        .map(|(_, name)| version2(data).join(name))
}

// ---------------------------------------------------------------------------------------------
// Test 1: kill -9 while four sessions write, restart, verify, twenty-odd times on one dataDir.
// ---------------------------------------------------------------------------------------------

const ROUNDS: usize = 24;
const WRITERS: usize = 4;
/// Upper bounds on one round's writing phase.
const MAX_OPS_PER_WRITER: usize = 50_000;
const MAX_WRITE_PHASE: Duration = Duration::from_secs(20);

#[derive(Debug, Clone, Copy)]
enum Ack {
    Create(u64),
    Set(u64),
}

#[derive(Debug, Default)]
struct WriterReport {
    /// Every create sent, acknowledged or not (at most the last one is not).
    attempted: Vec<u64>,
    /// Every write that got a successful reply, in order.
    acked: Vec<Ack>,
    /// An error (or timeout) seen while the server was still supposed to be up.
    error_while_up: Option<String>,
}

/// What the test knows about the tree: what was attempted and what was acknowledged.
#[derive(Debug, Default)]
struct Model {
    /// `/crash` and the counters whose create was acknowledged.
    setup_acked: BTreeSet<String>,
    /// (writer, n) -> round of the latest create sent for `/crash/<writer>-<n>`.
    attempted: HashMap<(usize, u64), usize>,
    /// Highest acknowledged create per writer.
    last_create: [Option<u64>; WRITERS],
    /// Last acknowledged counter value per writer.
    last_counter: [Option<u64>; WRITERS],
}

fn counter_path(k: usize) -> String {
    format!("/crash/counter-{k}")
}

fn node_path(k: usize, n: u64) -> String {
    format!("/crash/{k}-{n}")
}

fn node_data(round: usize, n: u64) -> String {
    format!("round {round} n {n}")
}

/// Check the recovered tree against the model. Returns the next `n` for each writer, or the
/// list of violations.
async fn verify_kill9(addr: &str, model: &Model) -> Result<([u64; WRITERS], usize), Vec<String>> {
    let c = connect(addr).await.map_err(|e| vec![e])?;
    let mut problems = Vec::new();

    // The setup nodes and the counters.
    let setup: Vec<String> = model.setup_acked.iter().cloned().collect();
    let setup_data = get_many(&c, &setup).await.map_err(|e| vec![e])?;
    let mut counters: [Option<i64>; WRITERS] = [None; WRITERS];
    for (path, data) in setup.iter().zip(&setup_data) {
        let Some(data) = data else {
            problems.push(format!("acknowledged create {path} lost"));
            continue;
        };
        if let Some(k) = (0..WRITERS).find(|k| counter_path(*k) == *path) {
            let text = String::from_utf8_lossy(data);
            match text.parse::<i64>() {
                Ok(v) => counters[k] = Some(v),
                Err(_) => problems.push(format!("{path} holds {text:?}, not a number")),
            }
        }
    }

    // Every writer's nodes.
    let names = children(&c, "/crash").await.map_err(|e| vec![e])?;
    let mut present: [BTreeSet<u64>; WRITERS] = Default::default();
    for name in names.unwrap_or_default() {
        if name.starts_with("counter-") {
            continue;
        }
        let parsed = name.split_once('-').and_then(|(k, n)| {
            let k: usize = k.parse().ok()?;
            (k < WRITERS).then_some(())?;
            Some((k, n.parse::<u64>().ok()?))
        });
        match parsed {
            Some((k, n)) => {
                present[k].insert(n);
            }
            None => problems.push(format!("unexpected node /crash/{name}")),
        }
    }

    let mut next = [0u64; WRITERS];
    for k in 0..WRITERS {
        let max = present[k].iter().next_back().copied();
        if let Some(max) = max {
            next[k] = max + 1;
            if present[k].len() as u64 != max + 1 {
                let missing: Vec<u64> = (0..=max)
                    .filter(|n| !present[k].contains(n))
                    .take(10)
                    .collect();
                problems.push(format!(
                    "writer {k}: nodes not gap-free: highest present {} but missing n = {missing:?}{}",
                    node_path(k, max),
                    if (max + 1) - (present[k].len() as u64) > 10 { " ..." } else { "" },
                ));
            }
        }
        if let Some(last) = model.last_create[k] {
            if max.is_none_or(|m| m < last) {
                problems.push(format!(
                    "writer {k}: acknowledged create {} lost (highest present: {:?})",
                    node_path(k, last),
                    max
                ));
            }
        }
        if let Some(v) = counters[k] {
            if let Some(last) = model.last_counter[k] {
                if v < last as i64 {
                    problems.push(format!(
                        "{} = {v}, but {last} was acknowledged",
                        counter_path(k)
                    ));
                }
            }
            // The counter is set to n only after /crash/k-n was acknowledged.
            if v >= 0 && !present[k].contains(&(v as u64)) {
                problems.push(format!(
                    "{} = {v}, but {} does not exist",
                    counter_path(k),
                    node_path(k, v as u64)
                ));
            }
        }
    }

    // Exact data on every present node.
    let mut paths = Vec::new();
    let mut expect = Vec::new();
    for (k, set) in present.iter().enumerate() {
        for &n in set {
            match model.attempted.get(&(k, n)) {
                Some(&round) => {
                    paths.push(node_path(k, n));
                    expect.push(node_data(round, n));
                }
                None => problems.push(format!("{} exists but was never sent", node_path(k, n))),
            }
        }
    }
    let got = get_many(&c, &paths).await.map_err(|e| vec![e])?;
    for ((path, want), data) in paths.iter().zip(&expect).zip(&got) {
        match data {
            None => problems.push(format!("{path} listed but get_data says NoNode")),
            Some(d) if d != want.as_bytes() => problems.push(format!(
                "{path} holds {:?}, expected {want:?}",
                String::from_utf8_lossy(d)
            )),
            Some(_) => {}
        }
    }
    drop(c);
    if problems.is_empty() {
        Ok((next, paths.len()))
    } else {
        Err(problems)
    }
}

/// Create `/crash` and the counters if they are not there yet.
async fn setup_kill9(addr: &str, model: &mut Model) -> Result<(), String> {
    let c = connect(addr).await?;
    let mut paths = vec!["/crash".to_owned()];
    paths.extend((0..WRITERS).map(counter_path));
    for path in paths {
        if model.setup_acked.contains(&path) {
            continue;
        }
        match tokio::time::timeout(OP_TIMEOUT, c.create(&path, b"-1", &open())).await {
            Ok(Ok(_)) => {
                model.setup_acked.insert(path);
            }
            // Applied in an earlier round without its reply: fine, it is there now.
            Ok(Err(zk::Error::NodeExists)) => {}
            Ok(Err(e)) => return Err(format!("create {path}: {e}")),
            Err(_) => return Err(format!("create {path}: timed out")),
        }
    }
    Ok(())
}

async fn writer(
    c: zk::Client,
    k: usize,
    round: usize,
    mut n: u64,
    killed: Arc<AtomicBool>,
    acks: Arc<AtomicU64>,
) -> WriterReport {
    let mut report = WriterReport::default();
    let deadline = Instant::now() + MAX_WRITE_PHASE;
    let options = open();
    let counter = counter_path(k);
    let note_error = |report: &mut WriterReport, what: String| {
        if !killed.load(Ordering::SeqCst) {
            report.error_while_up = Some(what);
        }
    };
    for _ in 0..MAX_OPS_PER_WRITER {
        if killed.load(Ordering::SeqCst) || Instant::now() > deadline {
            break;
        }
        let path = node_path(k, n);
        let data = node_data(round, n);
        report.attempted.push(n);
        match tokio::time::timeout(OP_TIMEOUT, c.create(&path, data.as_bytes(), &options)).await {
            Ok(Ok(_)) => {
                report.acked.push(Ack::Create(n));
                acks.fetch_add(1, Ordering::SeqCst);
            }
            Ok(Err(e)) => {
                note_error(&mut report, format!("create {path}: {e}"));
                break;
            }
            Err(_) => {
                note_error(
                    &mut report,
                    format!("create {path}: no reply in {OP_TIMEOUT:?}"),
                );
                break;
            }
        }
        let value = n.to_string();
        match tokio::time::timeout(OP_TIMEOUT, c.set_data(&counter, value.as_bytes(), None)).await {
            Ok(Ok(_)) => {
                report.acked.push(Ack::Set(n));
                acks.fetch_add(1, Ordering::SeqCst);
            }
            Ok(Err(e)) => {
                note_error(&mut report, format!("set {counter} = {n}: {e}"));
                break;
            }
            Err(_) => {
                note_error(
                    &mut report,
                    format!("set {counter} = {n}: no reply in {OP_TIMEOUT:?}"),
                );
                break;
            }
        }
        n += 1;
    }
    report
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill9_rounds() {
    const TEST: &str = "kill9_rounds";
    let seed = seed_for(TEST);
    let mut rng = StdRng::seed_from_u64(seed);
    let scratch = Scratch::new(TEST);
    let dir = scratch.path.clone();
    let ctx = Ctx {
        test: TEST,
        seed,
        dir: dir.clone(),
    };
    let data = dir.join("data");
    let cfg = dir.join("zoo.cfg");
    let t_start = Instant::now();
    let mut model = Model::default();
    let mut total_acked = 0u64;

    // Rounds 0..ROUNDS write and are killed; start number ROUNDS only verifies.
    for round in 0..=ROUNDS {
        let log = dir.join(format!("server-{round:02}.log"));
        let mut server = Server::spawn(&cfg, &data, &log);
        let ready_in = match server.wait_start().await {
            Start::Ready(d) => d,
            other => {
                ctx.fail(
                    Some(&log),
                    &format!(
                        "round {round}: restart on the same dataDir did not come up: {other:?}"
                    ),
                );
            }
        };
        let addr = server.addr();

        // Everything acknowledged before the last kill must be there.
        let (next, total_verified) = match verify_kill9(&addr, &model).await {
            Ok(v) => v,
            Err(mut problems) => {
                if let Some(status) = server.exit_status().await {
                    problems.push(format!("the server exited ({status}) after it was ready"));
                }
                server.kill();
                ctx.fail(
                    Some(&log),
                    &format!(
                        "round {round}: after restart ({} problems):\n    {}",
                        problems.len(),
                        problems.join("\n    ")
                    ),
                );
            }
        };
        let problems = log_problems(&server.output(), true);
        if !problems.is_empty() {
            server.kill();
            ctx.fail(
                Some(&log),
                &format!(
                    "round {round}: server log after restart has panics/ERROR lines:\n    {}",
                    problems.join("\n    ")
                ),
            );
        }
        if round == ROUNDS {
            server.kill();
            println!(
                "{TEST}: final restart ready in {} ms, {total_verified} nodes verified",
                ready_in.as_millis()
            );
            break;
        }

        if let Err(e) = setup_kill9(&addr, &mut model).await {
            server.kill();
            ctx.fail(Some(&log), &format!("round {round}: setup: {e}"));
        }

        // Four sessions, connected before the clock starts.
        let mut clients = Vec::with_capacity(WRITERS);
        for _ in 0..WRITERS {
            match connect(&addr).await {
                Ok(c) => clients.push(c),
                Err(e) => {
                    server.kill();
                    ctx.fail(Some(&log), &format!("round {round}: {e}"));
                }
            }
        }
        let killed = Arc::new(AtomicBool::new(false));
        let acks = Arc::new(AtomicU64::new(0));
        let tasks: Vec<_> = clients
            .into_iter()
            .enumerate()
            .map(|(k, c)| tokio::spawn(writer(c, k, round, next[k], killed.clone(), acks.clone())))
            .collect();

        let delay = Duration::from_millis(rng.gen_range(50..=500));
        tokio::time::sleep(delay).await;
        // Make sure the round writes something before the kill (bounded).
        let waited = Instant::now();
        while acks.load(Ordering::SeqCst) == 0 && waited.elapsed() < Duration::from_secs(10) {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        // The flag goes up before the signal, so an error seen with it down is a real one.
        killed.store(true, Ordering::SeqCst);
        server.kill();

        let mut reports = Vec::with_capacity(WRITERS);
        for (k, task) in tasks.into_iter().enumerate() {
            match tokio::time::timeout(Duration::from_secs(15), task).await {
                Ok(Ok(r)) => reports.push(r),
                Ok(Err(e)) => ctx.fail(None, &format!("round {round}: writer {k} panicked: {e}")),
                Err(_) => ctx.fail(
                    None,
                    &format!("round {round}: writer {k} did not stop within 15 s of the kill"),
                ),
            }
        }

        let out = server.output();
        let mut round_acked = 0u64;
        let mut errors = Vec::new();
        for (k, r) in reports.iter().enumerate() {
            for &n in &r.attempted {
                model.attempted.insert((k, n), round);
            }
            for ack in &r.acked {
                match *ack {
                    Ack::Create(n) => model.last_create[k] = Some(n),
                    Ack::Set(n) => model.last_counter[k] = Some(n),
                }
            }
            round_acked += r.acked.len() as u64;
            if let Some(e) = &r.error_while_up {
                errors.push(format!("writer {k}: {e}"));
            }
        }
        if !errors.is_empty() {
            ctx.fail(
                Some(&log),
                &format!(
                    "round {round}: writes failed while the server was up:\n    {}",
                    errors.join("\n    ")
                ),
            );
        }
        let problems = log_problems(&out, true);
        if !problems.is_empty() {
            ctx.fail(
                Some(&log),
                &format!(
                    "round {round}: server log has panics/ERROR lines:\n    {}",
                    problems.join("\n    ")
                ),
            );
        }
        if round_acked == 0 {
            ctx.fail(
                Some(&log),
                &format!("round {round}: no write was acknowledged before the kill"),
            );
        }
        total_acked += round_acked;
        let (logs, snaps) = data_files(&data);
        println!(
            "{TEST}: round {round:2}: ready in {:4} ms, verified {total_verified:5} nodes, \
             killed after {:3} ms with {round_acked:4} acked writes; {} logs, {} snapshots",
            ready_in.as_millis(),
            delay.as_millis(),
            logs.len(),
            snaps.len()
        );
    }

    let (logs, snaps) = data_files(&data);
    println!(
        "{TEST}: {ROUNDS} kills, {total_acked} acknowledged writes, {} s; final dataDir: {} logs, \
         {} snapshots",
        t_start.elapsed().as_secs(),
        logs.len(),
        snaps.len()
    );
    if snaps.is_empty() || logs.len() < 2 {
        println!(
            "{TEST}: note: with snapCount=200 expected log rolls and snapshots; found {logs:?} {snaps:?}"
        );
    }
    scratch.cleanup();
}

// ---------------------------------------------------------------------------------------------
// Test 2: torn and corrupted txn logs.
// ---------------------------------------------------------------------------------------------

const TORN_NODES: usize = 300;
/// At least this many of the nodes' creates should be in the newest log (more are written
/// until they are, a bounded number of times).
const MIN_IN_NEWEST_LOG: usize = 30;
/// Seeded random damage rounds (half truncations, half flipped bytes), after the control
/// round and the edge cases.
const RANDOM_ROUNDS: usize = 20;

#[derive(Debug, Clone)]
struct LogEntryInfo {
    offset: u64,
    end: u64,
    zxid: String,
    /// The path, for a create.
    created: Option<String>,
}

#[derive(Debug, Clone)]
struct LogInfo {
    entries: Vec<LogEntryInfo>,
    /// End of the last complete entry (the file header's end if there is none).
    data_end: u64,
    file_len: u64,
    summary: String,
}

/// Run `ferrokeeper log-dump --json` on `file` (bounded) and work out each entry's extent.
fn log_dump(file: &Path, scratch: &Path) -> Result<LogInfo, String> {
    let out_path = scratch.join("log-dump.out");
    let out = File::create(&out_path).map_err(|e| e.to_string())?;
    let err = out.try_clone().map_err(|e| e.to_string())?;
    let mut child = Command::new(BIN)
        .arg("log-dump")
        .arg("--json")
        .arg(file)
        .stdin(Stdio::null())
        .stdout(Stdio::from(out))
        .stderr(Stdio::from(err))
        .spawn()
        .map_err(|e| format!("spawn log-dump: {e}"))?;
    let t0 = Instant::now();
    let status = loop {
        if let Some(s) = child.try_wait().map_err(|e| e.to_string())? {
            break s;
        }
        if t0.elapsed() > Duration::from_secs(30) {
            let _ = child.kill();
            let _ = child.wait();
            return Err("log-dump did not finish in 30 s".into());
        }
        std::thread::sleep(Duration::from_millis(10));
    };
    let text = fs::read_to_string(&out_path).map_err(|e| e.to_string())?;
    if !status.success() {
        return Err(format!(
            "log-dump {} exited {status}: {}",
            file.display(),
            tail(&text)
        ));
    }
    let bytes = fs::read(file).map_err(|e| e.to_string())?;
    let mut entries = Vec::new();
    let mut summary = String::new();
    for line in text.lines().filter(|l| !l.trim().is_empty()) {
        let v: Value =
            serde_json::from_str(line).map_err(|e| format!("log-dump line {line:?}: {e}"))?;
        if let Some(offset) = v.get("offset").and_then(Value::as_u64) {
            let txn = v.get("txn");
            let ty = txn
                .and_then(|t| t.get("type"))
                .and_then(Value::as_str)
                .unwrap_or("");
            let created = if ty.starts_with("Create") {
                txn.and_then(|t| t.get("path"))
                    .and_then(Value::as_str)
                    .map(str::to_owned)
            } else {
                None
            };
            entries.push(LogEntryInfo {
                offset,
                end: 0,
                zxid: v
                    .get("zxid")
                    .and_then(Value::as_str)
                    .unwrap_or("?")
                    .to_owned(),
                created,
            });
        } else if v.get("entries").is_some() {
            summary = v.get("end").map(|e| e.to_string()).unwrap_or_default();
        }
    }
    // An entry is `long crc, int len, payload[len], 'B'`; it ends where the next one starts.
    let n = entries.len();
    for i in 0..n {
        let off = entries[i].offset as usize;
        let len_bytes: [u8; 4] = bytes
            .get(off + 8..off + 12)
            .and_then(|s| s.try_into().ok())
            .ok_or_else(|| format!("entry at offset {off} runs past the end of the file"))?;
        let own_end = off as u64 + 12 + i32::from_be_bytes(len_bytes) as u64 + 1;
        if i + 1 < n && entries[i + 1].offset != own_end {
            return Err(format!(
                "entry at offset {off} should end at {own_end}, the next starts at {}",
                entries[i + 1].offset
            ));
        }
        entries[i].end = own_end;
    }
    let data_end = entries.last().map(|e| e.end).unwrap_or(LOG_HEADER);
    Ok(LogInfo {
        entries,
        data_end,
        file_len: bytes.len() as u64,
        summary,
    })
}

/// Copy a directory tree; runs of zeros (preallocated log space) become holes.
fn copy_dir(from: &Path, to: &Path) -> std::io::Result<()> {
    fs::create_dir_all(to)?;
    for e in fs::read_dir(from)? {
        let e = e?;
        let dst = to.join(e.file_name());
        let ty = e.file_type()?;
        if ty.is_dir() {
            copy_dir(&e.path(), &dst)?;
        } else if ty.is_file() {
            let mut src = File::open(e.path())?;
            let len = src.metadata()?.len();
            let mut out = File::create(&dst)?;
            let mut buf = vec![0u8; 1 << 20];
            let zeros = vec![0u8; 1 << 20];
            loop {
                let got = src.read(&mut buf)?;
                if got == 0 {
                    break;
                }
                if buf[..got] == zeros[..got] {
                    out.seek(SeekFrom::Current(got as i64))?;
                } else {
                    out.write_all(&buf[..got])?;
                }
            }
            out.set_len(len)?;
        }
    }
    Ok(())
}

#[derive(Debug, Clone, Copy)]
enum Damage {
    None,
    Truncate(u64),
    Flip { offset: u64, xor: u8 },
}

impl Damage {
    fn offset(self) -> Option<u64> {
        match self {
            Damage::None => None,
            Damage::Truncate(o) | Damage::Flip { offset: o, .. } => Some(o),
        }
    }

    fn apply(self, file: &Path) -> std::io::Result<()> {
        match self {
            Damage::None => Ok(()),
            Damage::Truncate(o) => OpenOptions::new().write(true).open(file)?.set_len(o),
            Damage::Flip { offset, xor } => {
                let mut f = OpenOptions::new().read(true).write(true).open(file)?;
                let mut b = [0u8; 1];
                f.seek(SeekFrom::Start(offset))?;
                f.read_exact(&mut b)?;
                b[0] ^= xor;
                f.seek(SeekFrom::Start(offset))?;
                f.write_all(&b)
            }
        }
    }
}

/// Damage where a crash (or a bad sector) most likely leaves it, each with a seeded detail:
/// a log cut right after it was created or rolled, a torn first or last entry, a garbage
/// length at the tail.
fn edge_damages(rng: &mut StdRng, log: &LogInfo) -> Vec<(&'static str, Damage)> {
    let mut plan = vec![
        (
            "partial header",
            Damage::Truncate(rng.gen_range(0..LOG_HEADER)),
        ),
        ("header only", Damage::Truncate(LOG_HEADER)),
        (
            "bad magic or version",
            Damage::Flip {
                offset: rng.gen_range(0..8),
                xor: rng.gen_range(1..=255),
            },
        ),
    ];
    if let (Some(first), Some(last)) = (log.entries.first(), log.entries.last()) {
        plan.extend([
            (
                "torn first entry",
                Damage::Truncate(rng.gen_range(first.offset + 1..first.end)),
            ),
            (
                "torn last entry",
                Damage::Truncate(rng.gen_range(last.offset + 1..last.end)),
            ),
            (
                "last entry's checksum",
                Damage::Flip {
                    offset: last.offset + rng.gen_range(0..8),
                    xor: rng.gen_range(1..=255),
                },
            ),
            (
                "last entry's length negative",
                Damage::Flip {
                    offset: last.offset + 8,
                    xor: rng.gen_range(0x80..=0xff),
                },
            ),
        ]);
    }
    if log.file_len >= log.data_end + 12 {
        plan.push((
            "garbage length after the last entry",
            Damage::Flip {
                offset: log.data_end + 8,
                xor: rng.gen_range(0x80..=0xff),
            },
        ));
    }
    plan
}

fn choose_damage(rng: &mut StdRng, round: usize, log: &LogInfo) -> Damage {
    if round % 2 == 1 {
        // Truncation: sometimes exactly on an entry boundary, otherwise anywhere up to the end
        // of the data.
        if rng.gen_ratio(1, 4) && !log.entries.is_empty() {
            let i = rng.gen_range(0..=log.entries.len());
            let o = log.entries.get(i).map(|e| e.offset).unwrap_or(log.data_end);
            Damage::Truncate(o)
        } else {
            Damage::Truncate(rng.gen_range(0..=log.data_end))
        }
    } else {
        let xor = rng.gen_range(1..=255u8);
        let offset = match log.entries.last() {
            // Sometimes in the last entry (a torn final write can look like a bad checksum).
            Some(last) if rng.gen_ratio(1, 5) => rng.gen_range(last.offset..last.end),
            // Otherwise anywhere in the data or just past it.
            _ => rng.gen_range(0..(log.data_end + 16).min(log.file_len).max(1)),
        };
        Damage::Flip { offset, xor }
    }
}

/// May the server refuse to start after this damage? Only for a flipped byte in the header or
/// in an entry that is followed by further complete entries.
fn refusal_allowed(damage: Damage, log: &LogInfo) -> bool {
    let Damage::Flip { offset, .. } = damage else {
        return false;
    };
    if offset < LOG_HEADER {
        return true;
    }
    match log
        .entries
        .iter()
        .position(|e| e.offset <= offset && offset < e.end)
    {
        Some(i) => i + 1 < log.entries.len(),
        None => false,
    }
}

async fn torn_verify(
    addr: &str,
    nodes: &[(String, String)],
    required: &[bool],
) -> Result<(usize, Vec<String>), Vec<String>> {
    let c = connect(addr).await.map_err(|e| vec![e])?;
    let mut problems = Vec::new();
    let mut notes = Vec::new();
    let listed: BTreeSet<String> = children(&c, "/t")
        .await
        .map_err(|e| vec![e])?
        .unwrap_or_default()
        .into_iter()
        .map(|n| format!("/t/{n}"))
        .collect();
    let known: BTreeSet<&str> = nodes.iter().map(|(p, _)| p.as_str()).collect();
    for extra in listed.iter().filter(|p| !known.contains(p.as_str())) {
        problems.push(format!("{extra} exists but was never created"));
    }
    let paths: Vec<String> = nodes.iter().map(|(p, _)| p.clone()).collect();
    let got = get_many(&c, &paths).await.map_err(|e| vec![e])?;
    let mut present_count = 0;
    let mut first_missing: Option<&str> = None;
    let mut out_of_order = Vec::new();
    for (((path, want), req), data) in nodes.iter().zip(required).zip(&got) {
        match data {
            None if *req => problems.push(format!("{path} lost (its create precedes the damage)")),
            None => {
                first_missing.get_or_insert(path);
            }
            Some(d) => {
                present_count += 1;
                if d != want.as_bytes() {
                    problems.push(format!(
                        "{path} holds {:?}, expected {want:?}",
                        String::from_utf8_lossy(d)
                    ));
                }
                if let Some(m) = first_missing {
                    out_of_order.push(format!(
                        "{path} present though {m} (created before it) is not"
                    ));
                }
            }
        }
    }
    if !out_of_order.is_empty() {
        notes.push(format!(
            "note: recovered state is not a prefix of the acknowledged creates ({} cases), e.g. {}",
            out_of_order.len(),
            out_of_order[0]
        ));
    }
    drop(c);
    if problems.is_empty() {
        Ok((present_count, notes))
    } else {
        Err(problems)
    }
}

async fn create_node(
    c: &zk::Client,
    path: String,
    data: String,
) -> Result<(String, String), String> {
    match tokio::time::timeout(OP_TIMEOUT, c.create(&path, data.as_bytes(), &open())).await {
        Ok(Ok(_)) => Ok((path, data)),
        Ok(Err(e)) => Err(format!("create {path}: {e}")),
        Err(_) => Err(format!("create {path}: timed out")),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn torn_and_corrupt_log() {
    const TEST: &str = "torn_and_corrupt_log";
    let seed = seed_for(TEST);
    let mut rng = StdRng::seed_from_u64(seed);
    let scratch = Scratch::new(TEST);
    let dir = scratch.path.clone();
    let ctx = Ctx {
        test: TEST,
        seed,
        dir: dir.clone(),
    };
    let t_start = Instant::now();

    // 1. A known set of acknowledged creates, then kill -9.
    let pristine = dir.join("pristine");
    fs::create_dir_all(&pristine).expect("mkdir");
    let pdata = pristine.join("data");
    let plog = pristine.join("server.log");
    let mut server = Server::spawn(&pristine.join("zoo.cfg"), &pdata, &plog);
    if let other @ (Start::Exited(_) | Start::Hung) = server.wait_start().await {
        ctx.fail(
            Some(&plog),
            &format!("fresh server did not come up: {other:?}"),
        );
    }
    let c = match connect(&server.addr()).await {
        Ok(c) => c,
        Err(e) => ctx.fail(None, &e),
    };
    // (path, data) of every acknowledged create, in order.
    let mut nodes: Vec<(String, String)> = Vec::new();
    let mut want = TORN_NODES;
    let mut newest_count = 0;
    match create_node(&c, "/t".into(), "t".into()).await {
        Ok(n) => nodes.push(n),
        Err(e) => ctx.fail(None, &e),
    }
    for attempt in 0..10 {
        while nodes.len() - 1 < want {
            let i = nodes.len() - 1;
            match create_node(&c, format!("/t/n-{i:04}"), format!("value {i}")).await {
                Ok(n) => nodes.push(n),
                Err(e) => {
                    server.kill();
                    ctx.fail(Some(&plog), &e)
                }
            }
        }
        // Enough of them in the newest log to make the damage interesting?
        newest_count = newest_log(&pdata)
            .and_then(|f| log_dump(&f, &dir).ok())
            .map(|l| l.entries.iter().filter(|e| e.created.is_some()).count())
            .unwrap_or(0);
        if newest_count >= MIN_IN_NEWEST_LOG || attempt == 9 {
            break;
        }
        want += 50;
    }
    drop(c);
    server.kill();
    let out = server.output();
    let problems = log_problems(&out, true);
    if !problems.is_empty() {
        ctx.fail(
            Some(&plog),
            &format!(
                "panics/ERROR lines while writing:\n    {}",
                problems.join("\n    ")
            ),
        );
    }
    drop(server);

    // 2. The newest log and where each entry lies.
    let Some(newest) = newest_log(&pdata) else {
        let (logs, snaps) = data_files(&pdata);
        ctx.fail(
            Some(&plog),
            &format!(
                "no version-2/log.* file after {} acknowledged creates (logs {logs:?}, snapshots \
                 {snaps:?})",
                nodes.len()
            ),
        );
    };
    let log_name = newest
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let info = match log_dump(&newest, &dir) {
        Ok(i) => i,
        Err(e) => ctx.fail(Some(&plog), &format!("log-dump: {e}")),
    };
    let entry_of: BTreeMap<&str, &LogEntryInfo> = info
        .entries
        .iter()
        .filter_map(|e| Some((e.created.as_deref()?, e)))
        .collect();
    let (logs, snaps) = data_files(&pdata);
    println!(
        "{TEST}: {} acknowledged creates; newest log {log_name}: {} entries ({newest_count} of \
         our creates, zxids {}..{}), data ends at {} of {} bytes, end: {}; logs {logs:?}, \
         snapshots {snaps:?}",
        nodes.len(),
        info.entries.len(),
        info.entries.first().map(|e| e.zxid.as_str()).unwrap_or("-"),
        info.entries.last().map(|e| e.zxid.as_str()).unwrap_or("-"),
        info.data_end,
        info.file_len,
        info.summary,
    );

    // 3. Damage copies of the data dir and restart on each.
    let mut failures = Vec::new();
    let mut plan = vec![("control", Damage::None)];
    plan.extend(edge_damages(&mut rng, &info));
    plan.extend((1..=RANDOM_ROUNDS).map(|i| ("random", choose_damage(&mut rng, i, &info))));
    let rounds = plan.len();
    for (round, (label, damage)) in plan.into_iter().enumerate() {
        let rdir = dir.join(format!("round-{round:02}"));
        let rdata = rdir.join("data");
        if let Err(e) = copy_dir(&pdata, &rdata) {
            ctx.fail(None, &format!("copy data dir: {e}"));
        }
        let rlog_file = version2(&rdata).join(&log_name);
        if let Err(e) = damage.apply(&rlog_file) {
            ctx.fail(None, &format!("damage {damage:?}: {e}"));
        }
        // Which acknowledged creates must survive: all but those in the newest log at or
        // after the damage.
        let required: Vec<bool> = nodes
            .iter()
            .map(|(p, _)| match (entry_of.get(p.as_str()), damage.offset()) {
                (Some(e), Some(o)) => e.end <= o,
                _ => true,
            })
            .collect();
        let n_required = required.iter().filter(|r| **r).count();
        let may_refuse = refusal_allowed(damage, &info);
        let where_ = damage.offset().map(|o| {
            match info.entries.iter().position(|e| e.offset <= o && o < e.end) {
                Some(i) => format!(
                    "in entry {i} of {} ({})",
                    info.entries.len(),
                    info.entries[i].zxid
                ),
                None if o < LOG_HEADER => "in the header".to_owned(),
                None if o >= info.data_end => "after the last entry".to_owned(),
                None => "between entries?".to_owned(),
            }
        });

        let rlog = rdir.join("server.log");
        let mut s = Server::spawn(&rdir.join("zoo.cfg"), &rdata, &rlog);
        let start = s.wait_start().await;
        let mut problems = Vec::new();
        let mut notes = Vec::new();
        let outcome = match &start {
            Start::Ready(d) => match torn_verify(&s.addr(), &nodes, &required).await {
                Ok((present, n)) => {
                    notes = n;
                    format!(
                        "started in {} ms, {present}/{} nodes present ({n_required} required)",
                        d.as_millis(),
                        nodes.len()
                    )
                }
                Err(p) => {
                    problems = p;
                    if let Some(status) = s.exit_status().await {
                        problems.push(format!("the server exited ({status}) after it was ready"));
                    }
                    "started, verification failed".to_owned()
                }
            },
            Start::Exited(status) => {
                let out = s.output();
                if !may_refuse {
                    problems.push(format!(
                        "refused to start ({status}) though this damage must be recovered from"
                    ));
                }
                if status.code().is_none_or(|c| c == 0) {
                    problems.push(format!(
                        "exited with {status}, expected a non-zero exit code"
                    ));
                }
                if !out.contains(&log_name) || !out.contains("offset") {
                    problems.push(format!(
                        "the refusal message does not name {log_name} and an offset"
                    ));
                }
                format!("refused to start ({status})")
            }
            Start::Hung => {
                problems.push(format!(
                    "neither ready nor exited within {} s (killed)",
                    READY_TIMEOUT.as_secs()
                ));
                "hung".to_owned()
            }
        };
        s.kill();
        let out = s.output();
        problems.extend(
            log_problems(&out, false)
                .into_iter()
                .map(|l| format!("panic in output: {l}")),
        );
        println!(
            "{TEST}: round {round:2} ({label}): {damage:?} {} -> {outcome}{}",
            where_.unwrap_or_default(),
            if problems.is_empty() { "" } else { " FAILED" }
        );
        for n in &notes {
            println!("{TEST}: round {round:2}: {n}");
        }
        if problems.is_empty() {
            let _ = fs::remove_dir_all(&rdir);
        } else {
            eprintln!(
                "----- round {round} server output {} -----\n{}\n----- end -----",
                rlog.display(),
                tail(&out)
            );
            failures.push(format!(
                "round {round} ({label}): {damage:?} of {log_name} (data ends at {}): {}",
                info.data_end,
                problems.join("; ")
            ));
        }
    }
    println!("{TEST}: {} s", t_start.elapsed().as_secs());
    if !failures.is_empty() {
        ctx.fail(
            None,
            &format!(
                "{} of {} rounds failed:\n  {}",
                failures.len(),
                rounds,
                failures.join("\n  ")
            ),
        );
    }
    scratch.cleanup();
}

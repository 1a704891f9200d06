//! zkbench: one workload against one ZooKeeper server, one line of JSON out.
//!
//! The same binary drives Java ZooKeeper and ferrokeeper, so the client side is identical.
//! Each session is a separate `zookeeper-client` connection with one request in flight (a
//! closed loop), so latency is per request and throughput is sessions / latency.
//!
//! Ensembles (bench/ensemble.sh): `--server h1:p1,h2:p2,h3:p3 --spread` connects session i to
//! member i mod 3 (without `--spread` the whole string goes to the client, as before), and the
//! `failover` workload kills the leader (`--kill-pid`) and times the recovery through the
//! surviving members given in `--server`.

use std::sync::Arc;
use std::time::{Duration, Instant};

use clap::Parser;
use hdrhistogram::Histogram;
use zookeeper_client as zk;

mod lean;

// Linked for its side effect: routes zookeeper-client's task spawning onto tokio.
extern crate spawns;

#[derive(Parser, Debug)]
struct Args {
    /// host:port of the server.
    #[arg(long)]
    server: String,
    /// create | set | delete | get | exists | children | mixed90 | mixed50 | load | storm |
    /// fanout
    #[arg(long)]
    workload: String,
    /// Concurrent sessions.
    #[arg(long, default_value_t = 1)]
    sessions: usize,
    /// Value size in bytes.
    #[arg(long, default_value_t = 100)]
    size: usize,
    /// Seconds to run (after a 1 s warm-up).
    #[arg(long, default_value_t = 5.0)]
    seconds: f64,
    /// Created when the measured part starts (after set-up and warm-up), so the harness can
    /// read the server's CPU time from that moment.
    #[arg(long)]
    ready_file: Option<std::path::PathBuf>,
    /// For `load`: how many znodes to create.
    #[arg(long, default_value_t = 100_000)]
    znodes: usize,
    /// `--server` is a comma-separated list of members: session i connects to member i mod n.
    #[arg(long)]
    spread: bool,
    /// For `failover`: pid of the leader to kill -9; `--server` lists the surviving members.
    #[arg(long)]
    kill_pid: Option<u32>,
    /// Also write every measured request as `<start, Unix ns> <latency µs>` to this file, so
    /// the harness can split them by what the server was doing (bench/snapsplit.py).
    #[arg(long)]
    samples: Option<std::path::PathBuf>,
    /// Measure through the lean loop (bench/src/lean.rs: raw frames, one thread, one epoll)
    /// instead of `zookeeper-client`; the set-up still goes through `zookeeper-client`.
    #[arg(long)]
    lean: bool,
}

/// One request of a measured loop; both loops (`zookeeper-client` here, and `lean`) take
/// their requests from [`Op::of`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Op {
    Create,
    Delete,
    Set,
    Get,
    Exists,
    Children,
}

impl Op {
    /// The `seq`-th request of `workload`: `mixed90` / `mixed50` are a setData every 10th /
    /// 2nd request and getData otherwise; an unknown workload reads.
    fn of(workload: &str, seq: u64) -> Op {
        match workload {
            "create" => Op::Create,
            "delete" => Op::Delete,
            "set" => Op::Set,
            "exists" => Op::Exists,
            "children" => Op::Children,
            "mixed90" if seq.is_multiple_of(10) => Op::Set,
            "mixed50" if seq.is_multiple_of(2) => Op::Set,
            _ => Op::Get,
        }
    }
}

fn open() -> zk::CreateOptions<'static> {
    zk::CreateMode::Persistent.with_acls(zk::Acls::anyone_all())
}

async fn connect(server: &str) -> zk::Client {
    zk::Client::connector()
        .with_session_timeout(Duration::from_secs(30))
        .connect(server)
        .await
        .expect("connect")
}

#[tokio::main(flavor = "multi_thread", worker_threads = 1)]
async fn main() {
    let a = Args::parse();
    let root = format!("/bench-{}-{}", a.workload, std::process::id());
    let admin = connect(&a.server).await;
    admin.create(&root, b"", &open()).await.expect("root");
    let value = vec![b'v'; a.size];
    // One host per session: the whole --server string unless --spread.
    let hosts: Vec<String> = if a.spread {
        a.server.split(',').map(str::to_owned).collect()
    } else {
        vec![a.server.clone()]
    };
    if a.workload == "load" {
        load(&admin, &root, &value, a.znodes, a.sessions, &hosts).await;
        return;
    }
    if a.workload == "failover" {
        let pid = a.kill_pid.expect("failover needs --kill-pid");
        failover(&root, &a.server, pid, &value).await;
        return;
    }
    if a.workload == "storm" {
        storm(&a.server, a.sessions).await;
        return;
    }
    if a.workload == "fanout" {
        fanout(&admin, &root, &a.server, a.sessions).await;
        return;
    }
    // Per-session node for set/get/exists; a small fan-out for children.
    let mut clients = Vec::new();
    for i in 0..a.sessions {
        let c = connect(&hosts[i % hosts.len()]).await;
        c.create(&format!("{root}/n{i}"), &value, &open())
            .await
            .expect("node");
        clients.push(c);
    }
    // For delete: a pool of nodes per session, made before the clock starts (pipelined).
    // Sized above what a session can delete in the run: each delete waits for an fsync
    // (about 0.1 ms at best here), and a server spends at least ~8 µs of its core on one.
    let pool = if a.workload == "delete" {
        let per_session_rate = (125_000 / a.sessions.max(1)).min(10_000);
        (per_session_rate as f64 * (a.seconds + 1.0)) as usize
    } else {
        0
    };
    for (i, c) in clients.iter().enumerate() {
        for chunk in (0..pool).collect::<Vec<_>>().chunks(200) {
            let futs: Vec<_> = chunk
                .iter()
                .map(|k| {
                    let path = format!("{root}/n{i}/x{k}");
                    let c = c.clone();
                    let value = value.clone();
                    async move { c.create(&path, &value, &open()).await.map(|_| ()) }
                })
                .collect();
            for f in futs {
                f.await.expect("pool create");
            }
        }
    }
    for i in 0..10 {
        admin
            .create(&format!("{root}/n0/c{i}"), b"", &open())
            .await
            .expect("child");
    }
    let warmup = Duration::from_secs(1);
    let run = Duration::from_secs_f64(a.seconds);
    if a.lean {
        drop(clients);
        let hosts = hosts.clone();
        let (root, workload, value) = (root.clone(), a.workload.clone(), value.clone());
        let (sessions, ready_file, keep_samples) =
            (a.sessions, a.ready_file.clone(), a.samples.is_some());
        let children_of = format!("{root}/n0");
        let outcome = tokio::task::spawn_blocking(move || {
            lean::run(&lean::Spec {
                hosts: &hosts,
                root: &root,
                workload: &workload,
                sessions,
                value: &value,
                pool,
                warmup,
                run,
                ready_file,
                keep_samples,
                children_of: &children_of,
            })
        })
        .await
        .expect("lean loop");
        let outcome = match outcome {
            Ok(o) => o,
            Err(e) => {
                eprintln!("lean loop: {e}");
                std::process::exit(1);
            }
        };
        if outcome.exhausted > 0 {
            eprintln!(
                "{} sessions ran out of nodes to delete before the end",
                outcome.exhausted
            );
        }
        report(
            &a,
            run,
            outcome.histogram,
            outcome.ops,
            outcome.samples,
            outcome.exhausted,
        );
        return;
    }
    let start = Instant::now();
    if let Some(path) = a.ready_file.clone() {
        tokio::spawn(async move {
            tokio::time::sleep(warmup).await;
            let _ = std::fs::write(path, b"");
        });
    }
    let workload = Arc::new(a.workload.clone());
    let keep_samples = a.samples.is_some();
    // The monotonic clock's start as Unix time, so each sample gets a wall-clock start.
    let unix_at_start = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos() as u64)
        .unwrap_or(0);
    let mut tasks = Vec::new();
    for (i, c) in clients.into_iter().enumerate() {
        let workload = workload.clone();
        let root = root.clone();
        let value = value.clone();
        tasks.push(tokio::spawn(async move {
            let mut h = Histogram::<u64>::new(3).expect("histogram");
            let mut n = 0u64;
            let mut samples: Vec<(u64, u32)> = Vec::new();
            let node = format!("{root}/n{i}");
            let mut seq = 0u64;
            let mut ran_out = false;
            loop {
                let now = Instant::now();
                if now - start > warmup + run {
                    break;
                }
                let t0 = Instant::now();
                match Op::of(&workload, seq) {
                    Op::Create => {
                        c.create(&format!("{node}/x{seq}"), &value, &open())
                            .await
                            .expect("create");
                    }
                    Op::Set => {
                        c.set_data(&node, &value, None).await.expect("set");
                    }
                    Op::Delete => {
                        if seq as usize >= pool {
                            ran_out = true;
                            break;
                        }
                        c.delete(&format!("{node}/x{seq}"), None)
                            .await
                            .expect("delete");
                    }
                    Op::Get => {
                        c.get_data(&node).await.expect("get");
                    }
                    Op::Exists => {
                        c.check_stat(&node).await.expect("exists");
                    }
                    Op::Children => {
                        c.list_children(&format!("{root}/n0"))
                            .await
                            .expect("children");
                    }
                }
                seq += 1;
                if t0 - start >= warmup {
                    let us = t0.elapsed().as_micros() as u64;
                    h.record(us).ok();
                    n += 1;
                    if keep_samples {
                        let at = unix_at_start + (t0 - start).as_nanos() as u64;
                        samples.push((at, us.min(u32::MAX as u64) as u32));
                    }
                }
            }
            (h, n, samples, ran_out)
        }));
    }
    let mut total = Histogram::<u64>::new(3).expect("histogram");
    let mut ops = 0;
    let mut all_samples = Vec::new();
    let mut exhausted = 0;
    for t in tasks {
        let (h, n, samples, ran_out) = t.await.expect("task");
        total.add(h).ok();
        ops += n;
        all_samples.extend(samples);
        exhausted += usize::from(ran_out);
    }
    report(&a, run, total, ops, all_samples, exhausted);
}

/// Write the samples file (if asked) and print the run's line of JSON.
fn report(
    a: &Args,
    run: Duration,
    total: Histogram<u64>,
    ops: u64,
    samples: Vec<(u64, u32)>,
    exhausted: usize,
) {
    if let Some(path) = &a.samples {
        let mut text = String::with_capacity(samples.len() * 24);
        for (at, us) in &samples {
            text.push_str(&format!("{at} {us}\n"));
        }
        std::fs::write(path, text).expect("write samples");
    }
    println!(
        "{{\"workload\":\"{}\",\"sessions\":{},\"size\":{},\"ops\":{},\"ops_per_sec\":{:.0},\"p50_us\":{},\"p99_us\":{},\"p999_us\":{},\"generator\":\"{}\",\"exhausted\":{}}}",
        a.workload,
        a.sessions,
        a.size,
        ops,
        ops as f64 / run.as_secs_f64(),
        total.value_at_quantile(0.5),
        total.value_at_quantile(0.99),
        total.value_at_quantile(0.999),
        if a.lean { "lean" } else { "zookeeper-client" },
        exhausted
    );
}

/// Create `znodes` nodes under `root` (for the memory figures), using `sessions` writers.
async fn load(
    admin: &zk::Client,
    root: &str,
    value: &[u8],
    znodes: usize,
    sessions: usize,
    hosts: &[String],
) {
    let _ = admin;
    let per = znodes.div_ceil(sessions.max(1));
    let mut tasks = Vec::new();
    let start = Instant::now();
    for s in 0..sessions.max(1) {
        let c = connect(&hosts[s % hosts.len()]).await;
        let dir = format!("{root}/d{s}");
        c.create(&dir, b"", &open()).await.expect("dir");
        let value = value.to_vec();
        tasks.push(tokio::spawn(async move {
            for i in 0..per {
                c.create(&format!("{dir}/n{i}"), &value, &open())
                    .await
                    .expect("create");
            }
        }));
    }
    for t in tasks {
        t.await.expect("task");
    }
    println!(
        "{{\"workload\":\"load\",\"znodes\":{},\"seconds\":{:.1}}}",
        per * sessions.max(1),
        start.elapsed().as_secs_f64()
    );
}

/// Connection storm: `n` sessions connect at once; time until the last is connected.
async fn storm(server: &str, n: usize) {
    let start = Instant::now();
    let mut tasks = Vec::with_capacity(n);
    for _ in 0..n {
        let server = server.to_owned();
        tasks.push(tokio::spawn(async move {
            let c = connect(&server).await;
            (c, start.elapsed())
        }));
    }
    let mut h = Histogram::<u64>::new(3).expect("histogram");
    let mut clients = Vec::with_capacity(n);
    for t in tasks {
        let (c, at) = t.await.expect("task");
        h.record(at.as_micros() as u64).ok();
        clients.push(c);
    }
    let all = start.elapsed();
    println!(
        "{{\"workload\":\"storm\",\"sessions\":{n},\"all_connected_s\":{:.3},\"p50_us\":{},\"p99_us\":{}}}",
        all.as_secs_f64(),
        h.value_at_quantile(0.5),
        h.value_at_quantile(0.99)
    );
    drop(clients);
}

/// Watch fan-out: `n` sessions each watch one node; one setData; time from the write's start
/// until every session has its NodeDataChanged event.
async fn fanout(admin: &zk::Client, root: &str, server: &str, n: usize) {
    let node = format!("{root}/w");
    admin
        .create(&node, b"0", &open())
        .await
        .expect("watched node");
    // Connect in waves so the figure is the fan-out, not a connection storm.
    let mut watchers = Vec::with_capacity(n);
    let mut clients = Vec::with_capacity(n);
    for wave in (0..n).collect::<Vec<_>>().chunks(500) {
        let mut tasks = Vec::new();
        for _ in wave {
            let server = server.to_owned();
            let node = node.clone();
            tasks.push(tokio::spawn(async move {
                let c = connect(&server).await;
                let (_, _, w) = c.get_and_watch_data(&node).await.expect("watch");
                (c, w)
            }));
        }
        for t in tasks {
            let (c, w) = t.await.expect("task");
            clients.push(c);
            watchers.push(w);
        }
    }
    let start = Instant::now();
    let mut tasks = Vec::with_capacity(n);
    for w in watchers {
        tasks.push(tokio::spawn(async move {
            w.changed().await;
            start.elapsed()
        }));
    }
    admin.set_data(&node, b"1", None).await.expect("set");
    let mut h = Histogram::<u64>::new(3).expect("histogram");
    for t in tasks {
        h.record(t.await.expect("task").as_micros() as u64).ok();
    }
    let all = start.elapsed();
    println!(
        "{{\"workload\":\"fanout\",\"sessions\":{n},\"all_notified_s\":{:.3},\"p50_us\":{},\"p99_us\":{}}}",
        all.as_secs_f64(),
        h.value_at_quantile(0.5),
        h.value_at_quantile(0.99)
    );
    drop(clients);
}

/// `srvr` four-letter word on host:port: the Mode line ("leader", "follower", ...), if any.
fn srvr_mode(host: &str) -> Option<String> {
    use std::io::{Read, Write};
    let addr: std::net::SocketAddr = host.parse().ok()?;
    let mut s = std::net::TcpStream::connect_timeout(&addr, Duration::from_millis(200)).ok()?;
    s.set_read_timeout(Some(Duration::from_millis(500))).ok()?;
    s.write_all(b"srvr").ok()?;
    let mut out = String::new();
    s.read_to_string(&mut out).ok()?;
    out.lines()
        .find_map(|l| l.strip_prefix("Mode: ").map(|m| m.trim().to_owned()))
}

/// A fresh session on `host` (short connection timeout, so a member that is not serving fails
/// fast) and one create through it.
async fn fresh_write(host: &str, path: &str, value: &[u8]) -> bool {
    let c = match zk::Client::connector()
        .with_session_timeout(Duration::from_secs(10))
        .with_connection_timeout(Duration::from_millis(500))
        .connect(host)
        .await
    {
        Ok(c) => c,
        Err(_) => return false,
    };
    c.create(path, value, &open()).await.is_ok()
}

/// Leader failover: sessions already open on each surviving member (`survivors`, comma
/// separated), then kill -9 of `pid` (the leader) and, from that instant:
/// - leader_s: until a survivor answers `srvr` with Mode: leader (polled every 10 ms);
/// - write_any_s / write_all_s: until a write succeeds through a survivor, through each
///   survivor: a new attempt (fresh session + create, 500 ms connection timeout) starts every
///   25 ms on each survivor, so the client's reconnect back-off is not in the figure;
/// - session_s: until the sessions opened before the kill write again (zookeeper-client's own
///   reconnection, with its back-off: 100 ms, 200 ms, 400 ms... between rounds), max over them.
async fn failover(root: &str, survivors: &str, pid: u32, value: &[u8]) {
    let hosts: Vec<String> = survivors.split(',').map(str::to_owned).collect();
    let limit = Duration::from_secs(60);
    // Pre-existing sessions, one per survivor, each checked with a write.
    let mut olds = Vec::new();
    for (i, h) in hosts.iter().enumerate() {
        let c = connect(h).await;
        c.create(&format!("{root}/pre{i}"), value, &open())
            .await
            .expect("write before the kill");
        olds.push(c);
    }
    let t0 = Instant::now();
    let killed = std::process::Command::new("kill")
        .args(["-9", &pid.to_string()])
        .status()
        .expect("kill");
    assert!(killed.success(), "kill -9 {pid} failed");
    // srvr pollers (blocking sockets, own threads).
    let leader = Arc::new(std::sync::Mutex::new(None::<(f64, String)>));
    let mut pollers = Vec::new();
    for h in hosts.clone() {
        let leader = leader.clone();
        pollers.push(std::thread::spawn(move || {
            while t0.elapsed() < limit && leader.lock().unwrap().is_none() {
                let at = t0.elapsed();
                if srvr_mode(&h).as_deref() == Some("leader") {
                    let mut l = leader.lock().unwrap();
                    if l.is_none() {
                        *l = Some((at.as_secs_f64(), h.clone()));
                    }
                    return;
                }
                std::thread::sleep(Duration::from_millis(10));
            }
        }));
    }
    // Old sessions: write in a loop until one succeeds (unique paths).
    let mut old_tasks = Vec::new();
    for (i, c) in olds.into_iter().enumerate() {
        let root = root.to_owned();
        let value = value.to_vec();
        old_tasks.push(tokio::spawn(async move {
            let mut k = 0u64;
            while t0.elapsed() < limit {
                k += 1;
                let path = format!("{root}/old{i}-{k}");
                let r =
                    tokio::time::timeout(Duration::from_secs(2), c.create(&path, &value, &open()))
                        .await;
                if let Ok(Ok(_)) = r {
                    return Some(t0.elapsed().as_secs_f64());
                }
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
            None
        }));
    }
    // Fresh attempts every 25 ms on each survivor until each has taken a write.
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel::<(usize, f64)>();
    let mut first = vec![None::<f64>; hosts.len()];
    let mut k = 0u64;
    let mut tick = tokio::time::interval(Duration::from_millis(25));
    while first.iter().any(Option::is_none) && t0.elapsed() < limit {
        tokio::select! {
            _ = tick.tick() => {
                for (i, h) in hosts.iter().enumerate() {
                    if first[i].is_some() {
                        continue;
                    }
                    k += 1;
                    let (h, path, value, tx) = (h.clone(), format!("{root}/f{i}-{k}"), value.to_vec(), tx.clone());
                    tokio::spawn(async move {
                        let ok = tokio::time::timeout(Duration::from_secs(5), fresh_write(&h, &path, &value))
                            .await
                            .unwrap_or(false);
                        if ok {
                            let _ = tx.send((i, t0.elapsed().as_secs_f64()));
                        }
                    });
                }
            }
            Some((i, at)) = rx.recv() => {
                if first[i].is_none() {
                    first[i] = Some(at);
                }
            }
        }
    }
    let mut session_s = Some(0.0f64);
    for t in old_tasks {
        session_s = match (session_s, t.await.expect("task")) {
            (Some(a), Some(b)) => Some(a.max(b)),
            _ => None,
        };
    }
    for p in pollers {
        let _ = p.join();
    }
    let leader = leader.lock().unwrap().clone();
    let js = |v: Option<f64>| v.map_or("null".to_owned(), |x| format!("{x:.3}"));
    let any = first
        .iter()
        .flatten()
        .cloned()
        .fold(None, |m: Option<f64>, x| Some(m.map_or(x, |m| m.min(x))));
    let all = if first.iter().all(Option::is_some) {
        first
            .iter()
            .flatten()
            .cloned()
            .fold(None, |m: Option<f64>, x| Some(m.map_or(x, |m| m.max(x))))
    } else {
        None
    };
    println!(
        "{{\"workload\":\"failover\",\"leader_s\":{},\"new_leader\":{},\"write_any_s\":{},\"write_all_s\":{},\"session_s\":{}}}",
        js(leader.as_ref().map(|l| l.0)),
        leader.as_ref().map_or("null".to_owned(), |l| format!("\"{}\"", l.1)),
        js(any),
        js(all),
        js(session_s)
    );
}

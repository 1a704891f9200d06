//! Memory of the DataTree alone: RSS after creating N znodes of 100 bytes under 8 parents,
//! the shape `bench/run.sh` loads. `cargo run --release --example tree_mem -- 1000000`
use bytes::Bytes;
use ferrokeeper::jute::records::Acl;
use ferrokeeper::tree::DataTree;

fn rss_kb() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmRSS"))
                .and_then(|l| l.split_whitespace().nth(1).and_then(|v| v.parse().ok()))
        })
        .unwrap_or(0)
}

fn main() {
    let n: usize = std::env::args()
        .nth(1)
        .and_then(|v| v.parse().ok())
        .unwrap_or(1_000_000);
    let before = rss_kb();
    let mut t = DataTree::new();
    let acl = Acl::open_unsafe();
    t.create_node("/bench", None, acl.clone(), 0, -1, 1, 0)
        .unwrap();
    for s in 0..8 {
        t.create_node(&format!("/bench/d{s}"), None, acl.clone(), 0, -1, 2, 0)
            .unwrap();
    }
    let value = vec![b'v'; 100];
    for i in 0..n {
        let p = format!("/bench/d{}/n{}", i % 8, i / 8);
        let data = Bytes::from(value.clone());
        // The core keeps a clone in the txn it logs, as here.
        let keep = data.clone();
        t.create_node(&p, Some(data), acl.clone(), 0, -1, 10 + i as i64, 0)
            .unwrap();
        drop(keep);
    }
    let after = rss_kb();
    println!(
        "{n} znodes: RSS {} MiB -> {} MiB, {} bytes/znode",
        before / 1024,
        after / 1024,
        (after - before) * 1024 / n as u64
    );
}

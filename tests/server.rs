//! Integration tests: start the real server in-process on an ephemeral loopback port and
//! drive it with the independent `zookeeper-client` crate and with raw protocol bytes.

use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use zookeeper_client as zk;
// Linked for its side effect: it registers tokio as the spawner zookeeper-client uses.
extern crate spawns;

use ferrokeeper::config::ServerConfig;
use ferrokeeper::server::{self, Running};

async fn start(extra: &str) -> Running {
    let dir = tempfile::tempdir().expect("tempdir");
    let cfg = format!(
        "tickTime=500\ndataDir={}\nclientPort=0\nclientPortAddress=127.0.0.1\n4lw.commands.whitelist=*\n{extra}",
        dir.path().display()
    );
    let config = ServerConfig::parse_str(
        &cfg,
        "test.cfg",
        &[
            ("zookeeper.extendedTypesEnabled".into(), "true".into()),
            ("znode.container.checkIntervalMs".into(), "100".into()),
        ],
    )
    .expect("config");
    std::mem::forget(dir);
    server::start(config).await.expect("server starts")
}

async fn client(s: &Running) -> zk::Client {
    zk::Client::connector()
        .with_session_timeout(Duration::from_secs(5))
        .connect(&s.addr.to_string())
        .await
        .expect("connect")
}

fn open() -> zk::CreateOptions<'static> {
    zk::CreateMode::Persistent.with_acls(zk::Acls::anyone_all())
}

#[tokio::test]
async fn crud_and_stat_arithmetic() {
    let s = start("").await;
    let c = client(&s).await;
    let (stat, _) = c.create("/a", b"hello", &open()).await.unwrap();
    assert_eq!(stat.czxid, stat.mzxid);
    assert_eq!(stat.czxid, stat.pzxid);
    assert_eq!(stat.version, 0);
    let (data, st) = c.get_data("/a").await.unwrap();
    assert_eq!(data, b"hello");
    assert_eq!(st.data_length, 5);
    assert_eq!(
        c.create("/a", b"", &open()).await.unwrap_err(),
        zk::Error::NodeExists
    );
    let st2 = c.set_data("/a", b"bye", Some(0)).await.unwrap();
    assert_eq!(st2.version, 1);
    assert!(st2.mzxid > st.mzxid);
    assert_eq!(
        c.set_data("/a", b"x", Some(0)).await.unwrap_err(),
        zk::Error::BadVersion
    );
    c.create("/a/b", b"", &open()).await.unwrap();
    c.create("/a/c", b"", &open()).await.unwrap();
    assert_eq!(c.delete("/a", None).await.unwrap_err(), zk::Error::NotEmpty);
    c.delete("/a/b", None).await.unwrap();
    let (children, parent) = c.get_children("/a").await.unwrap();
    assert_eq!(children, vec!["c".to_string()]);
    // Two creates and one delete: cversion counts both kinds of change.
    assert_eq!(parent.cversion, 3);
    assert_eq!(parent.num_children, 1);
    assert_eq!(c.get_data("/nope").await.unwrap_err(), zk::Error::NoNode);
    assert_eq!(c.check_stat("/nope").await.unwrap(), None);
    // A fresh root: /zookeeper plus ours.
    let (_, root) = c.get_children("/").await.unwrap();
    assert_eq!(root.num_children, 2);
    assert_eq!(c.count_descendants_number("/a").await.unwrap(), 1);
    s.shutdown().await;
}

#[tokio::test]
async fn sequential_and_ephemeral_nodes() {
    let s = start("").await;
    let a = client(&s).await;
    let b = client(&s).await;
    a.create("/q", b"", &open()).await.unwrap();
    let seq = zk::CreateMode::PersistentSequential.with_acls(zk::Acls::anyone_all());
    let (_, n0) = a.create("/q/n-", b"", &seq).await.unwrap();
    let (_, n1) = a.create("/q/n-", b"", &seq).await.unwrap();
    assert_eq!(n0.into_i64(), 0);
    assert_eq!(n1.into_i64(), 1);
    assert!(a.check_stat("/q/n-0000000001").await.unwrap().is_some());
    let eph = zk::CreateMode::Ephemeral.with_acls(zk::Acls::anyone_all());
    let (st, _) = b.create("/q/e", b"", &eph).await.unwrap();
    assert_eq!(st.ephemeral_owner, b.session_id().0);
    assert_eq!(
        b.create("/q/e/child", b"", &open()).await.unwrap_err(),
        zk::Error::NoChildrenForEphemerals
    );
    assert_eq!(
        b.list_ephemerals("/").await.unwrap(),
        vec!["/q/e".to_string()]
    );
    let (_, watcher) = a.check_and_watch_stat("/q/e").await.unwrap();
    drop(b);
    let ev = tokio::time::timeout(Duration::from_secs(10), watcher.changed())
        .await
        .expect("ephemeral deleted when its session closed");
    assert_eq!(ev.event_type, zk::EventType::NodeDeleted);
    assert_eq!(a.check_stat("/q/e").await.unwrap(), None);
    s.shutdown().await;
}

#[tokio::test]
async fn watch_fires_with_the_changing_zxid() {
    let s = start("").await;
    let a = client(&s).await;
    let b = client(&s).await;
    a.create("/w", b"1", &open()).await.unwrap();
    let (_, _, data_watch) = a.get_and_watch_data("/w").await.unwrap();
    let (_, _, child_watch) = a.get_and_watch_children("/w").await.unwrap();
    let st = b.set_data("/w", b"2", None).await.unwrap();
    let ev = tokio::time::timeout(Duration::from_secs(5), data_watch.changed())
        .await
        .unwrap();
    assert_eq!(ev.event_type, zk::EventType::NodeDataChanged);
    assert_eq!(ev.path, "/w");
    assert_eq!(ev.zxid, st.mzxid);
    b.create("/w/kid", b"", &open()).await.unwrap();
    let ev = tokio::time::timeout(Duration::from_secs(5), child_watch.changed())
        .await
        .unwrap();
    assert_eq!(ev.event_type, zk::EventType::NodeChildrenChanged);
    let mut rec = a
        .watch("/w", zk::AddWatchMode::PersistentRecursive)
        .await
        .unwrap();
    b.create("/w/kid/grand", b"", &open()).await.unwrap();
    let ev = tokio::time::timeout(Duration::from_secs(5), rec.changed())
        .await
        .unwrap();
    assert_eq!(ev.event_type, zk::EventType::NodeCreated);
    assert_eq!(ev.path, "/w/kid/grand");
    s.shutdown().await;
}

#[tokio::test]
async fn multi_is_all_or_nothing() {
    let s = start("").await;
    let c = client(&s).await;
    let mut w = c.new_multi_writer();
    w.add_create("/m1", b"", &open()).unwrap();
    w.add_check_version("/m1", 5).unwrap();
    let err = w.commit().await.unwrap_err();
    assert!(
        matches!(
            err,
            zk::MultiWriteError::OperationFailed {
                index: 1,
                source: zk::Error::BadVersion
            }
        ),
        "{err:?}"
    );
    assert_eq!(c.check_stat("/m1").await.unwrap(), None);
    let mut w = c.new_multi_writer();
    w.add_create("/m1", b"", &open()).unwrap();
    w.add_set_data("/m1", b"v", None).unwrap();
    let res = w.commit().await.unwrap();
    assert_eq!(res.len(), 2);
    let (d, st) = c.get_data("/m1").await.unwrap();
    assert_eq!(d, b"v");
    assert_eq!(st.czxid, st.mzxid, "one multi, one zxid");
    s.shutdown().await;
}

#[tokio::test]
async fn digest_acl_denies_strangers() {
    let s = start("").await;
    let owner = client(&s).await;
    owner.auth("digest", b"u1:p1").await.unwrap();
    let opts = zk::CreateMode::Persistent.with_acls(zk::Acls::creator_all());
    owner.create("/secret", b"x", &opts).await.unwrap();
    let stranger = client(&s).await;
    assert_eq!(
        stranger.get_data("/secret").await.unwrap_err(),
        zk::Error::NoAuth
    );
    let (acl, _) = owner.get_acl("/secret").await.unwrap();
    assert_eq!(acl[0].scheme(), "digest");
    assert_eq!(acl[0].id(), "u1:fpT/y03U+EjItKZOSLGvjnJlyng=");
    assert_eq!(owner.get_data("/secret").await.unwrap().0, b"x");
    s.shutdown().await;
}

async fn four_letter(s: &Running, word: &str) -> String {
    let mut t = TcpStream::connect(s.addr).await.unwrap();
    t.write_all(word.as_bytes()).await.unwrap();
    let mut out = String::new();
    tokio::time::timeout(Duration::from_secs(5), t.read_to_string(&mut out))
        .await
        .unwrap()
        .unwrap();
    out
}

#[tokio::test]
async fn four_letter_words() {
    let s = start("").await;
    assert_eq!(four_letter(&s, "ruok").await, "imok");
    let srvr = four_letter(&s, "srvr").await;
    assert!(srvr.starts_with("Zookeeper version: 3.9."), "{srvr}");
    assert!(srvr.contains("\nMode: standalone\n"), "{srvr}");
    assert!(srvr.contains("\nNode count: 5\n"), "{srvr}");
    let mntr = four_letter(&s, "mntr").await;
    assert!(mntr.contains("zk_server_state\tstandalone\n"), "{mntr}");
    assert!(mntr.contains("zk_znode_count\t5\n"), "{mntr}");
    s.shutdown().await;
}

#[tokio::test]
async fn whitelist_refuses_other_words() {
    let s = start("4lw.commands.whitelist=srvr\n").await;
    // The cfg line above comes after the default one and wins.
    assert_eq!(
        four_letter(&s, "ruok").await,
        "ruok is not executed because it is not in the whitelist.\n"
    );
    s.shutdown().await;
}

/// A connect request for `session` with `passwd`, with the trailing readOnly byte.
fn connect_frame(session: i64, passwd: &[u8]) -> Vec<u8> {
    let mut body = Vec::new();
    body.extend_from_slice(&0i32.to_be_bytes());
    body.extend_from_slice(&0i64.to_be_bytes());
    body.extend_from_slice(&30000i32.to_be_bytes());
    body.extend_from_slice(&session.to_be_bytes());
    body.extend_from_slice(&(passwd.len() as i32).to_be_bytes());
    body.extend_from_slice(passwd);
    body.push(0);
    let mut f = (body.len() as i32).to_be_bytes().to_vec();
    f.extend(body);
    f
}

#[tokio::test]
async fn wrong_password_gets_the_expired_answer() {
    let s = start("").await;
    let c = client(&s).await;
    let sid = c.session_id().0;
    let mut t = TcpStream::connect(s.addr).await.unwrap();
    t.write_all(&connect_frame(sid, &[7u8; 16])).await.unwrap();
    let mut resp = Vec::new();
    tokio::time::timeout(Duration::from_secs(5), t.read_to_end(&mut resp))
        .await
        .unwrap()
        .unwrap();
    // len, protocolVersion 0, timeOut 0, sessionId 0, passwd 16 zero bytes, readOnly 0.
    assert_eq!(&resp[0..4], &(4 + 4 + 8 + 4 + 16 + 1i32).to_be_bytes());
    assert_eq!(&resp[8..12], &0i32.to_be_bytes(), "timeout 0 means expired");
    assert_eq!(&resp[12..20], &0i64.to_be_bytes());
    // The real owner is undisturbed.
    c.create("/still-here", b"", &open()).await.unwrap();
    s.shutdown().await;
}

#[tokio::test]
async fn oversized_and_garbage_frames_close_only_that_connection() {
    let s = start("").await;
    let c = client(&s).await;
    for bad in [
        vec![0x7f, 0xff, 0xff, 0xff],
        vec![0xff, 0xff, 0xff, 0xfe],
        vec![0, 0, 0, 3, 1, 2, 3],
    ] {
        let mut t = TcpStream::connect(s.addr).await.unwrap();
        t.write_all(&bad).await.unwrap();
        let mut buf = Vec::new();
        let n = tokio::time::timeout(Duration::from_secs(5), t.read_to_end(&mut buf))
            .await
            .unwrap();
        assert!(n.is_ok() || n.is_err());
        assert!(buf.is_empty(), "no reply to a bad frame");
    }
    c.create("/alive", b"", &open()).await.unwrap();
    s.shutdown().await;
}

#[tokio::test]
async fn container_is_swept_after_its_last_child_goes() {
    let s = start("").await;
    let c = client(&s).await;
    let container = zk::CreateMode::Container.with_acls(zk::Acls::anyone_all());
    c.create("/box", b"", &container).await.unwrap();
    c.create("/box/item", b"", &open()).await.unwrap();
    tokio::time::sleep(Duration::from_millis(400)).await;
    assert!(
        c.check_stat("/box").await.unwrap().is_some(),
        "a container with a child stays"
    );
    c.delete("/box/item", None).await.unwrap();
    let mut gone = false;
    for _ in 0..50 {
        if c.check_stat("/box").await.unwrap().is_none() {
            gone = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(gone, "empty container removed by the sweep");
    s.shutdown().await;
}

async fn read_frame(t: &mut TcpStream) -> Vec<u8> {
    let mut len = [0u8; 4];
    tokio::time::timeout(Duration::from_secs(5), t.read_exact(&mut len))
        .await
        .unwrap()
        .unwrap();
    let mut buf = vec![0u8; i32::from_be_bytes(len) as usize];
    t.read_exact(&mut buf).await.unwrap();
    buf
}

#[tokio::test]
async fn pre_3_4_clients_get_no_read_only_byte() {
    let s = start("").await;
    let mut t = TcpStream::connect(s.addr).await.unwrap();
    let mut f = connect_frame(0, &[0u8; 16]);
    f.pop(); // no readOnly byte, as a 3.3 client sends
    let n = (f.len() - 4) as i32;
    f[0..4].copy_from_slice(&n.to_be_bytes());
    t.write_all(&f).await.unwrap();
    let resp = read_frame(&mut t).await;
    assert_eq!(resp.len(), 4 + 4 + 8 + 4 + 16, "no trailing readOnly byte");
    let mut t2 = TcpStream::connect(s.addr).await.unwrap();
    t2.write_all(&connect_frame(0, &[0u8; 16])).await.unwrap();
    assert_eq!(read_frame(&mut t2).await.len(), 4 + 4 + 8 + 4 + 16 + 1);
    s.shutdown().await;
}

#[tokio::test]
async fn session_timeout_is_negotiated_into_bounds() {
    let s = start("").await; // tickTime 500: bounds 1000..=10000
    for (asked, got) in [(100i32, 1000), (5000, 5000), (99999, 10000)] {
        let mut t = TcpStream::connect(s.addr).await.unwrap();
        let mut f = connect_frame(0, &[0u8; 16]);
        f[16..20].copy_from_slice(&asked.to_be_bytes());
        t.write_all(&f).await.unwrap();
        let resp = read_frame(&mut t).await;
        assert_eq!(
            i32::from_be_bytes(resp[4..8].try_into().unwrap()),
            got,
            "asked {asked}"
        );
    }
    s.shutdown().await;
}

#[tokio::test]
async fn max_client_cnxns_is_enforced_per_ip() {
    let s = start("maxClientCnxns=2\n").await;
    let _a = client(&s).await;
    let _b = client(&s).await;
    let mut t = TcpStream::connect(s.addr).await.unwrap();
    t.write_all(&connect_frame(0, &[0u8; 16])).await.unwrap();
    let mut buf = Vec::new();
    let _ = tokio::time::timeout(Duration::from_secs(5), t.read_to_end(&mut buf)).await;
    assert!(buf.is_empty(), "third connection from one IP is refused");
    drop(_b);
    tokio::time::sleep(Duration::from_millis(200)).await;
    let _c = client(&s).await;
    s.shutdown().await;
}

#[tokio::test]
async fn set_watches_fires_what_the_client_missed() {
    let s = start("").await;
    let c = client(&s).await;
    c.create("/sw", b"1", &open()).await.unwrap();
    c.create("/sw/kid", b"", &open()).await.unwrap();
    c.create("/sw-stays", b"", &open()).await.unwrap();
    let (_, st) = c.get_data("/sw-stays").await.unwrap();
    c.set_data("/sw", b"2", None).await.unwrap();
    // A raw session that "reconnects" having last seen /sw-stays's zxid.
    let mut t = TcpStream::connect(s.addr).await.unwrap();
    t.write_all(&connect_frame(0, &[0u8; 16])).await.unwrap();
    read_frame(&mut t).await;
    let mut body = Vec::new();
    body.extend_from_slice(&(-8i32).to_be_bytes());
    body.extend_from_slice(&101i32.to_be_bytes());
    body.extend_from_slice(&st.mzxid.to_be_bytes());
    let list = |paths: &[&str], out: &mut Vec<u8>| {
        out.extend_from_slice(&(paths.len() as i32).to_be_bytes());
        for p in paths {
            out.extend_from_slice(&(p.len() as i32).to_be_bytes());
            out.extend_from_slice(p.as_bytes());
        }
    };
    list(&["/sw", "/sw-stays", "/gone"], &mut body); // data watches
    list(&["/sw/kid", "/nothing"], &mut body); // exist watches
    list(&[], &mut body); // child watches
    let mut f = (body.len() as i32).to_be_bytes().to_vec();
    f.extend(body);
    t.write_all(&f).await.unwrap();
    let mut events = Vec::new();
    loop {
        let fr = read_frame(&mut t).await;
        let xid = i32::from_be_bytes(fr[0..4].try_into().unwrap());
        if xid == -8 {
            break;
        }
        assert_eq!(xid, -1);
        assert_eq!(
            i64::from_be_bytes(fr[4..12].try_into().unwrap()),
            -1,
            "catch-up events carry zxid -1"
        );
        let ty = i32::from_be_bytes(fr[16..20].try_into().unwrap());
        let plen = i32::from_be_bytes(fr[24..28].try_into().unwrap()) as usize;
        events.push((ty, String::from_utf8(fr[28..28 + plen].to_vec()).unwrap()));
    }
    assert_eq!(
        events,
        vec![
            (3, "/sw".to_string()),
            (2, "/gone".to_string()),
            (1, "/sw/kid".to_string())
        ]
    );
    // The registered ones still fire later.
    c.create("/nothing", b"", &open()).await.unwrap();
    let fr = read_frame(&mut t).await;
    assert_eq!(i32::from_be_bytes(fr[16..20].try_into().unwrap()), 1);
    s.shutdown().await;
}

#[tokio::test]
async fn multi_read_answers_each_op_on_its_own() {
    let s = start("").await;
    let c = client(&s).await;
    c.create("/mr", b"data", &open()).await.unwrap();
    c.create("/mr/k", b"", &open()).await.unwrap();
    let mut r = c.new_multi_reader();
    r.add_get_data("/mr").unwrap();
    r.add_get_children("/mr").unwrap();
    r.add_get_data("/mr-missing").unwrap();
    let res = r.commit().await.unwrap();
    assert!(
        matches!(&res[0], zk::MultiReadResult::Data { data, stat } if data == b"data" && stat.num_children == 1)
    );
    assert!(
        matches!(&res[1], zk::MultiReadResult::Children { children } if children == &vec!["k".to_string()])
    );
    assert!(matches!(
        &res[2],
        zk::MultiReadResult::Error {
            err: zk::Error::NoNode
        }
    ));
    s.shutdown().await;
}

#[tokio::test]
async fn super_digest_passes_every_acl() {
    let sup = ferrokeeper::auth::digest("super:secret");
    let s = start(&format!("DigestAuthenticationProvider.superDigest={sup}\n")).await;
    let owner = client(&s).await;
    owner.auth("digest", b"u1:p1").await.unwrap();
    let opts = zk::CreateMode::Persistent.with_acls(zk::Acls::creator_all());
    owner.create("/locked", b"x", &opts).await.unwrap();
    let admin = client(&s).await;
    assert_eq!(
        admin.get_data("/locked").await.unwrap_err(),
        zk::Error::NoAuth
    );
    admin.auth("digest", b"super:secret").await.unwrap();
    assert_eq!(admin.get_data("/locked").await.unwrap().0, b"x");
    admin.delete("/locked", None).await.unwrap();
    s.shutdown().await;
}

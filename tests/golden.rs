//! Codec tests against golden bytes captured from the real Java ZooKeeper 3.9.5 client (zkCli)
//! talking to the real Java 3.9.5 server (`tests/golden/capture.py` recorded them). Our decoder
//! must read every frame, our encoder must reproduce it byte for byte, and our session-password
//! function must produce the passwords the Java server handed out.

use ferrokeeper::jute::records::*;
use ferrokeeper::jute::{to_bytes, Decode, OpCode, Reader};
use ferrokeeper::session::session_password;

fn frames() -> Vec<(char, Vec<u8>)> {
    let text = include_str!("golden/java-3.9.5-zkcli.frames");
    text.lines()
        .filter_map(|l| {
            let (tag, hex) = l.split_once(' ')?;
            let bytes = (0..hex.len())
                .step_by(2)
                .map(|i| u8::from_str_radix(&hex[i..i + 2], 16).expect("hex"))
                .collect();
            Some((tag.chars().next()?, bytes))
        })
        .collect()
}

fn same<T: Decode + ferrokeeper::jute::Encode>(bytes: &[u8]) -> T {
    let mut r = Reader::new(bytes);
    let v = T::decode(&mut r).expect("decodes");
    assert_eq!(r.remaining(), 0, "record consumed exactly");
    assert_eq!(to_bytes(&v), bytes, "re-encodes to the same bytes");
    v
}

#[test]
fn java_frames_decode_and_reencode_exactly() {
    let frames = frames();
    assert!(frames.len() >= 20, "golden file present");
    let mut checked_passwords = 0;
    let mut last_op = None;
    let mut expect_connect = true;
    for (tag, bytes) in &frames {
        match (tag, expect_connect) {
            ('C', true) => {
                let (req, has_ro) = ConnectRequest::decode_frame(bytes).unwrap();
                assert!(has_ro, "Java 3.9 sends the readOnly byte");
                assert_eq!(req.session_id, 0);
                assert_eq!(req.time_out, 30000);
                assert_eq!(req.passwd, Some(vec![0; 16]));
                assert_eq!(to_bytes(&req), *bytes);
            }
            ('S', true) => {
                let mut r = Reader::new(bytes);
                let resp = ConnectResponse::decode(&mut r).unwrap();
                assert_eq!(r.remaining(), 1, "trailing readOnly byte");
                assert_eq!(
                    resp.passwd.as_deref(),
                    Some(&session_password(resp.session_id)[..])
                );
                assert_eq!(
                    (resp.session_id as u64) >> 56,
                    1,
                    "standalone ids carry server id 1"
                );
                checked_passwords += 1;
                expect_connect = false;
            }
            ('C', false) => {
                let mut r = Reader::new(bytes);
                let h = RequestHeader::decode(&mut r).unwrap();
                let body = r.rest();
                let op = OpCode::from_i32(h.op_type).expect("known opcode");
                match op {
                    OpCode::Create => {
                        let c: CreateRequest = same(body);
                        assert_eq!(c.acl, Acl::open_unsafe());
                    }
                    OpCode::GetData | OpCode::Exists => {
                        same::<PathWatchRequest>(body);
                    }
                    OpCode::SetData => {
                        same::<SetDataRequest>(body);
                    }
                    OpCode::GetAcl => {
                        same::<PathRequest>(body);
                    }
                    OpCode::Delete => {
                        same::<DeleteRequest>(body);
                    }
                    other => panic!("unexpected op {other:?} in golden capture"),
                }
                last_op = Some(op);
            }
            ('S', false) => {
                let mut r = Reader::new(bytes);
                let h = ReplyHeader::decode(&mut r).unwrap();
                let body = r.rest();
                if h.err != 0 {
                    assert!(body.is_empty(), "error replies carry no body");
                } else {
                    match last_op {
                        Some(OpCode::Create) => {
                            same::<CreateResponse>(body);
                        }
                        Some(OpCode::GetData) => {
                            let d: GetDataResponse = same(body);
                            assert_eq!(
                                d.stat.data_length as usize,
                                d.data.map(|x| x.len()).unwrap_or(0)
                            );
                        }
                        Some(OpCode::SetData) => {
                            let s: StatResponse = same(body);
                            assert_eq!(s.stat.version, 1);
                        }
                        Some(OpCode::GetAcl) => {
                            same::<GetAclResponse>(body);
                        }
                        Some(OpCode::Delete) => assert!(body.is_empty()),
                        _ => {}
                    }
                }
                // Each zkCli invocation is one connection: connect, one request, one reply.
                expect_connect = true;
            }
            _ => unreachable!(),
        }
    }
    assert!(checked_passwords >= 5);
}

mod txn_log {
    use ferrokeeper::jute::codes::CONTAINER_EPHEMERAL_OWNER;
    use ferrokeeper::jute::OpCode;
    use ferrokeeper::persist::txnlog::{read_log, LogEnd, LogError};
    use ferrokeeper::request::txn::Txn;

    /// A txn log written by the real Java 3.9.5 server while zkCli ran: create, ephemeral,
    /// sequential, set, setAcl, container, TTL, delete, deleteall (a multi); its 64 MiB of
    /// preallocated zeros cut to 8 bytes.
    const LOG: &[u8] = include_bytes!("golden/java-3.9.5-log.1");

    #[test]
    fn reads_every_entry_java_wrote() {
        let (entries, end) = read_log(LOG).expect("reads");
        assert!(matches!(end, LogEnd::Preallocated { .. }), "{end:?}");
        for (i, e) in entries.iter().enumerate() {
            assert_eq!(
                e.entry.header.zxid,
                i as i64 + 1,
                "zxids are consecutive from 1"
            );
            assert!(
                e.digest.is_some(),
                "Java 3.9 appends a TxnDigest by default"
            );
        }
        let txns: Vec<&Txn> = entries.iter().map(|e| &e.entry.txn).collect();
        assert!(txns
            .iter()
            .any(|t| matches!(t, Txn::CreateSession { timeout: 30000 })));
        assert!(txns.iter().any(|t| matches!(t,
            Txn::Create { path, data: Some(d), ephemeral_owner: 0, .. } if path == "/g" && &d[..] == b"hello")));
        let eph = entries
            .iter()
            .find(|e| matches!(&e.entry.txn, Txn::Create { path, .. } if path == "/g/e"))
            .expect("ephemeral create");
        assert!(
            matches!(eph.entry.txn, Txn::Create { ephemeral_owner, .. } if ephemeral_owner == eph.entry.header.client_id)
        );
        assert!(txns
            .iter()
            .any(|t| matches!(t, Txn::Create { path, .. } if path == "/g/s-0000000001")));
        assert!(txns
            .iter()
            .any(|t| matches!(t, Txn::SetData { path, version: 1, .. } if path == "/g")));
        assert!(txns
            .iter()
            .any(|t| matches!(t, Txn::SetAcl { path, version: 1, .. } if path == "/g")));
        assert!(txns.iter().any(|t| matches!(t,
            Txn::Create { op: OpCode::CreateContainer, ephemeral_owner, .. } if *ephemeral_owner == CONTAINER_EPHEMERAL_OWNER)));
        assert!(txns.iter().any(|t| matches!(
            t,
            Txn::Create {
                op: OpCode::CreateTtl,
                ttl: 5000,
                ..
            }
        )));
        assert!(txns.iter().any(
            |t| matches!(t, Txn::Multi(ops) if ops.iter().all(|o| matches!(o, Txn::Delete { .. })))
        ));
    }

    #[test]
    fn corruption_is_reported_and_torn_tails_are_cut() {
        let (entries, _) = read_log(LOG).unwrap();
        let second = entries[1].offset;
        // Flip a payload byte of the second entry: a checksum error at its offset.
        let mut bad = LOG.to_vec();
        bad[second + 12 + 3] ^= 0x40;
        assert_eq!(
            read_log(&bad).unwrap_err(),
            LogError::Checksum { offset: second }
        );
        // Cut the log inside the third entry: the first two survive, the tail is torn.
        let third = entries[2].offset;
        let (kept, end) = read_log(&LOG[..third + 7]).unwrap();
        assert_eq!(kept.len(), 2);
        assert_eq!(end, LogEnd::TornTail { offset: third });
        // Every prefix reads without panicking.
        for cut in 0..LOG.len() {
            let _ = read_log(&LOG[..cut]);
        }
    }
}

#[test]
fn log_dump_renders_java_logs() {
    let log = include_bytes!("golden/java-3.9.5-log.1");
    let text = ferrokeeper::persist::dump::render(log, false).unwrap();
    assert!(
        text.ends_with("EOF reached after 18 txns: preallocated space from offset 1416\n"),
        "{text}"
    );
    let json = ferrokeeper::persist::dump::render(log, true).unwrap();
    let lines: Vec<serde_json::Value> = json
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(lines.len(), 19);
    assert_eq!(lines[1]["txn"]["path"], "/g");
    assert_eq!(lines[1]["txn"]["data"], "hello");
    assert_eq!(lines[1]["zxid"], "0x2");
}

mod snapshot {
    use ferrokeeper::jute::codes::CONTAINER_EPHEMERAL_OWNER;
    use ferrokeeper::persist::snapshot::{read_snapshot, SnapError};

    /// A snapshot written by the real Java 3.9.5 server (snapCount=4) after zkCli created
    /// /s (data "hello"), /s/a, set a digest ACL on /s, a container /s2 and a TTL node /s3.
    const SNAP: &[u8] = include_bytes!("golden/java-3.9.5-snapshot.d");

    #[test]
    fn reads_a_java_snapshot_and_checks_its_seals() {
        let s = read_snapshot(SNAP).expect("reads");
        let paths: Vec<&str> = s.nodes.iter().map(|n| n.path.as_str()).collect();
        assert_eq!(paths[0], "", "root is stored with the empty path");
        for p in [
            "/zookeeper",
            "/zookeeper/quota",
            "/zookeeper/config",
            "/s",
            "/s/a",
            "/s2",
            "/s3",
        ] {
            assert!(paths.contains(&p), "{p} in {paths:?}");
        }
        let s_node = s.nodes.iter().find(|n| n.path == "/s").unwrap();
        assert_eq!(s_node.data.as_deref(), Some(&b"hello"[..]));
        assert_eq!(s_node.stat.aversion, 1);
        let acl = &s
            .acls
            .iter()
            .find(|(r, _)| *r == s_node.acl_ref)
            .expect("ACL in cache")
            .1;
        assert_eq!(acl[0].id.id, "u1:fpT/y03U+EjItKZOSLGvjnJlyng=");
        let container = s.nodes.iter().find(|n| n.path == "/s2").unwrap();
        assert_eq!(container.stat.ephemeral_owner, CONTAINER_EPHEMERAL_OWNER);
        assert!(s.digest.is_some(), "3.9 writes the tree digest");
        assert_eq!(
            s.last_processed_zxid,
            Some(0xd),
            "3.9 writes lastProcessedZxid = the name's zxid"
        );
        assert!(!s.sessions.is_empty());
    }

    #[test]
    fn damage_is_detected_and_never_panics() {
        let mut bad = SNAP.to_vec();
        let at = bad.len() / 2;
        bad[at] ^= 0x01;
        assert!(read_snapshot(&bad).is_err());
        assert_eq!(
            read_snapshot(b"ZKLGxxxxxxxxxxxx").unwrap_err(),
            SnapError::BadHeader
        );
        for cut in 0..SNAP.len() {
            let _ = read_snapshot(&SNAP[..cut]);
        }
    }
}

#[test]
fn snapshot_dump_renders_java_snapshots() {
    let snap = include_bytes!("golden/java-3.9.5-snapshot.d");
    let text = ferrokeeper::persist::dump::render_snapshot(snap, false).unwrap();
    assert!(text.starts_with("ZNode Details (count=9):\n"), "{text}");
    assert!(text.contains("\n/s\n  cZxid = "), "{text}");
    assert!(text.contains("Last processed zxid: 0xd\n"), "{text}");
    let json = ferrokeeper::persist::dump::render_snapshot(snap, true).unwrap();
    let last: serde_json::Value = serde_json::from_str(json.lines().last().unwrap()).unwrap();
    assert_eq!(last["znodes"], 9);
    assert_eq!(last["lastProcessedZxid"], "0xd");
}

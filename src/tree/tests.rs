use super::*;
use crate::jute::Perms;

fn open() -> Vec<Acl> {
    Acl::open_unsafe()
}

#[test]
fn fresh_tree_has_java_system_nodes() {
    let t = DataTree::new();
    assert_eq!(t.node_count(), 5);
    let root = t.stat("/").unwrap();
    assert_eq!(root.cversion, -1);
    assert_eq!(root.num_children, 1);
    assert_eq!(t.stat("").unwrap(), root);
    assert_eq!(t.stat("/zookeeper").unwrap().cversion, -2);
    assert_eq!(t.acl("/zookeeper/config").unwrap()[0].perms, Perms::READ);
    assert_eq!(t.count_descendants("/"), Some(3));
}

#[test]
fn create_and_delete_keep_java_stat_arithmetic() {
    let mut t = DataTree::new();
    t.create_node(
        "/a",
        Some(Bytes::from_static(b"xy")),
        open(),
        0,
        1,
        10,
        1000,
    )
    .unwrap();
    t.create_node("/a/b", None, open(), 0, 1, 11, 1001).unwrap();
    t.create_node("/a/c", None, open(), 0, 2, 12, 1002).unwrap();
    t.delete_node("/a/b", 13).unwrap();
    let a = t.stat("/a").unwrap();
    assert_eq!(a.cversion, 3, "two creates and a delete");
    assert_eq!(a.pzxid, 13);
    assert_eq!(a.data_length, 2);
    assert_eq!(t.stat("/a/c").unwrap().data_length, 0);
    assert_eq!(t.node("/a/c").unwrap().data(), None);
    assert_eq!(
        t.delete_node("/a", 14),
        Err(TreeError::NotEmpty("/a".into()))
    );
    assert_eq!(t.count_descendants("/a"), Some(1));
    let s = t
        .set_data("/a", Some(Bytes::from_static(b"z")), 1, 15, 2000)
        .unwrap();
    assert_eq!((s.version, s.mzxid, s.mtime, s.czxid), (1, 15, 2000, 10));
    assert!(matches!(
        t.create_node("/x/y", None, open(), 0, 1, 16, 0),
        Err(TreeError::NoNode(_))
    ));
}

#[test]
fn sequential_suffix_is_java_format() {
    assert_eq!(sequential_suffix(42), "0000000042");
    assert_eq!(sequential_suffix(0), "0000000000");
    assert_eq!(sequential_suffix(-5), "-000000005");
    assert_eq!(sequential_suffix(i32::MIN), "-2147483648");
}

#[test]
fn path_validation() {
    for ok in ["/", "/a", "/a/b", "/a b", "/ü", "/a.b"] {
        assert!(validate_path(ok, false), "{ok}");
    }
    for bad in [
        "",
        "a",
        "/a/",
        "//",
        "/a//b",
        "/.",
        "/a/..",
        "/a\u{0}",
        "/a\u{1}",
        "/\u{1f600}",
    ] {
        assert!(!validate_path(bad, false), "{bad:?}");
    }
    assert!(validate_path("/a/", true));
}

#[test]
fn ephemeral_container_ttl_indexes() {
    let mut t = DataTree::new();
    t.set_extended_types(true);
    t.create_node("/e", None, open(), 0x55, 1, 1, 0).unwrap();
    t.create_node("/c", None, open(), i64::MIN, 2, 2, 0)
        .unwrap();
    let ttl = crate::jute::codes::ttl_ephemeral_owner(1000);
    t.create_node("/t", None, open(), ttl, 3, 3, 0).unwrap();
    assert_eq!(t.ephemerals(0x55), vec!["/e".to_string()]);
    assert_eq!(t.ephemeral_count(), 1);
    assert_eq!(t.containers(), vec!["/c".to_string()]);
    assert_eq!(t.ttls(), vec!["/t".to_string()]);
    assert_eq!(t.stat("/c").unwrap().ephemeral_owner, 0);
    assert_eq!(t.stat("/t").unwrap().ephemeral_owner, 0);
    assert_eq!(t.stat("/e").unwrap().ephemeral_owner, 0x55);
    t.delete_node("/e", 4).unwrap();
    assert!(t.ephemerals(0x55).is_empty());
    assert!(t.sessions_with_ephemerals().is_empty());
}

#[test]
fn acl_lists_are_shared_and_released() {
    let mut t = DataTree::new();
    let before = t.acl_cache_entries().len();
    let digest = vec![Acl::new(Perms::ALL, "digest", "u:h")];
    t.create_node("/a", None, digest.clone(), 0, 1, 1, 0)
        .unwrap();
    t.create_node("/b", None, digest.clone(), 0, 2, 2, 0)
        .unwrap();
    assert_eq!(t.acl_cache_entries().len(), before + 1);
    t.set_acl("/a", open(), 1).unwrap();
    t.delete_node("/b", 3).unwrap();
    assert!(t.acl_cache_entries().iter().all(|(_, l)| *l != digest));
    assert_eq!(t.acl("/a").unwrap(), open().as_slice());
}

#[test]
fn quota_stats_track_the_subtree() {
    let mut t = DataTree::new();
    t.create_node("/p", Some(Bytes::from_static(b"ab")), open(), 0, 1, 1, 0)
        .unwrap();
    t.create_node("/p/c", Some(Bytes::from_static(b"x")), open(), 0, 1, 2, 0)
        .unwrap();
    t.create_node("/zookeeper/quota/p", None, open(), 0, 1, 3, 0)
        .unwrap();
    t.create_node(
        "/zookeeper/quota/p/zookeeper_limits",
        Some(Bytes::from_static(b"count=10,bytes=-1")),
        open(),
        0,
        1,
        4,
        0,
    )
    .unwrap();
    t.create_node(
        "/zookeeper/quota/p/zookeeper_stats",
        Some(Bytes::from_static(b"count=0,bytes=0")),
        open(),
        0,
        2,
        5,
        0,
    )
    .unwrap();
    let stats = |t: &DataTree| {
        t.node("/zookeeper/quota/p/zookeeper_stats")
            .unwrap()
            .data()
            .unwrap()
            .to_vec()
    };
    assert_eq!(&stats(&t)[..], b"count=2,bytes=3");
    t.create_node("/p/d", Some(Bytes::from_static(b"xyz")), open(), 0, 2, 6, 0)
        .unwrap();
    assert_eq!(&stats(&t)[..], b"count=3,bytes=6");
    t.set_data("/p/d", None, 1, 7, 0).unwrap();
    assert_eq!(&stats(&t)[..], b"count=3,bytes=3");
    t.delete_node("/p/d", 8).unwrap();
    assert_eq!(&stats(&t)[..], b"count=2,bytes=3");
}

#[test]
fn odd_paths_do_not_panic() {
    let mut t = DataTree::new();
    for p in ["", "//", "/a/", "a", "/zookeeper/"] {
        let _ = t.stat(p);
        let _ = t.children(p);
        let _ = t.count_descendants(p);
        let _ = t.delete_node(p, 1);
    }
}

#[test]
fn a_load_out_of_preorder_still_links_every_child() {
    let stat = |z: i64| StatPersisted {
        czxid: z,
        mzxid: z,
        pzxid: z,
        ..Default::default()
    };
    let mut l = TreeLoader::new(Vec::new(), false);
    for (i, p) in ["/", "/a", "/a/b", "/c", "/a/d", "/c/e", "/a/b/f"]
        .into_iter()
        .enumerate()
    {
        l.add(
            p,
            Some(Bytes::from_static(b"v")),
            OPEN_UNSAFE_ACL_REF,
            stat(i as i64),
        )
        .unwrap();
    }
    assert_eq!(
        l.add("/x/y", None, OPEN_UNSAFE_ACL_REF, stat(9)),
        Err(LoadError::Orphan("/x/y".into()))
    );
    let mut t = l.finish();
    assert_eq!(t.children("/a").unwrap(), ["b", "d"]);
    assert_eq!(t.children("/a/b").unwrap(), ["f"]);
    assert_eq!(t.children("/c").unwrap(), ["e"]);
    assert_eq!(t.stat("/a").unwrap().num_children, 2);
    assert_eq!(t.digest(), t.full_digest());
    // Leaves and parents behave as built by creates: the last child's delete makes a leaf.
    assert_eq!(
        t.delete_node("/a/b", 20),
        Err(TreeError::NotEmpty("/a/b".into()))
    );
    t.delete_node("/a/b/f", 21).unwrap();
    t.delete_node("/a/b", 22).unwrap();
    t.delete_node("/a/d", 23).unwrap();
    assert_eq!(t.stat("/a").unwrap().num_children, 0);
    t.delete_node("/a", 24).unwrap();
    assert_eq!(t.digest(), t.full_digest());
}

#[test]
fn finishing_the_node_tables_growth_keeps_every_node() {
    let mut t = DataTree::new();
    let mut n = 0;
    // Stop right after a growth of a table of a few thousand nodes.
    loop {
        let before = t.nodes.capacity();
        t.create_node(&format!("/n{n}"), None, open(), 0, 0, 10 + n, 1000)
            .unwrap();
        n += 1;
        if t.nodes.capacity() > before + 1 && n > 2000 {
            break;
        }
    }
    assert!(t.growing(), "a growth was just started");
    let digest = t.digest();
    let mut rounds = 0;
    while t.finish_growth(Duration::ZERO) {
        rounds += 1;
        assert!(rounds < 10_000, "growth never finishes");
    }
    assert!(rounds > 0);
    assert!(!t.growing());
    assert_eq!(t.digest(), digest);
    assert_eq!(t.digest(), t.full_digest());
    for i in 0..n {
        assert!(t.node(&format!("/n{i}")).is_some(), "/n{i} lost");
    }
    assert_eq!(t.node_count(), n as usize + 5);
    assert_eq!(t.stat("/").unwrap().num_children, n as i32 + 1);
    // Inserts pay the debt too.
    let before = t.nodes.capacity();
    while t.nodes.capacity() == before {
        t.create_node(&format!("/n{n}"), None, open(), 0, 0, 10 + n, 1000)
            .unwrap();
        n += 1;
    }
    assert!(t.growing());
    while t.growing() {
        t.create_node(&format!("/n{n}"), None, open(), 0, 0, 10 + n, 1000)
            .unwrap();
        n += 1;
    }
    assert_eq!(t.node_count(), n as usize + 5);
}

#[test]
fn reusing_a_deleted_nodes_slot_is_not_a_growth() {
    let mut t = DataTree::new();
    for i in 0..5000 {
        t.create_node(&format!("/n{i}"), None, open(), 0, 0, 10 + i, 1000)
            .unwrap();
    }
    while t.finish_growth(Duration::ZERO) {}
    // Churn well inside the capacity: deletes leave tombstones, creates reuse them.
    for i in 0..2000 {
        t.delete_node(&format!("/n{i}"), 20_000 + i).unwrap();
        t.create_node(&format!("/m{i}"), None, open(), 0, 0, 30_000 + i, 1000)
            .unwrap();
        assert!(!t.growing(), "churn {i} taken for a growth");
    }
}

//! The WatchManager: who is watching which path, and who hears about a change.
//!
//! Watchers are connections ([`ConnId`]): many client-side watchers on one path collapse into
//! one registration per connection, as in Java. Two tables (data and child) hold a set of mode
//! flags per (path, connection). Recursive watches are looked up by walking the changed
//! path's ancestors, and only when any exist.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use crate::jute::codes::WatcherType;
use crate::jute::EventType;

/// A client connection, the unit of watch registration.
pub type ConnId = u64;

const STANDARD: u8 = 1;
const PERSISTENT: u8 = 2;
const RECURSIVE: u8 = 4;

/// path → connection → mode flags.
type Table = HashMap<String, HashMap<ConnId, u8>>;

/// All watch registrations of the server.
#[derive(Debug, Default)]
pub struct WatchManager {
    data: Table,
    child: Table,
    recursive_count: usize,
}

fn add(table: &mut Table, path: &str, conn: ConnId, flag: u8) -> bool {
    let m = table.entry(path.to_owned()).or_default();
    let f = m.entry(conn).or_insert(0);
    let added = *f & flag == 0;
    *f |= flag;
    added
}

/// Clear `flags` of `conn` at `path`; returns the flags that were actually cleared.
fn clear(table: &mut Table, path: &str, conn: ConnId, flags: u8) -> u8 {
    let Some(m) = table.get_mut(path) else {
        return 0;
    };
    let Some(f) = m.get_mut(&conn) else {
        return 0;
    };
    let cleared = *f & flags;
    *f &= !flags;
    if *f == 0 {
        m.remove(&conn);
        if m.is_empty() {
            table.remove(path);
        }
    }
    cleared
}

fn parent(path: &str) -> Option<&str> {
    if path == "/" || path.is_empty() {
        return None;
    }
    match path.rfind('/') {
        Some(0) => Some("/"),
        Some(i) => Some(&path[..i]),
        None => None,
    }
}

impl WatchManager {
    pub fn new() -> Self {
        Self::default()
    }

    /// One-shot data watch (getData, and exists whether or not the node exists).
    pub fn add_data_watch(&mut self, path: &str, conn: ConnId) {
        add(&mut self.data, path, conn, STANDARD);
    }

    /// One-shot child watch (getChildren).
    pub fn add_child_watch(&mut self, path: &str, conn: ConnId) {
        add(&mut self.child, path, conn, STANDARD);
    }

    /// addWatch: persistent (both tables) or persistent-recursive (data table).
    pub fn add_persistent(&mut self, path: &str, conn: ConnId, recursive: bool) {
        if recursive {
            if add(&mut self.data, path, conn, RECURSIVE) {
                self.recursive_count += 1;
            }
        } else {
            add(&mut self.data, path, conn, PERSISTENT);
            add(&mut self.child, path, conn, PERSISTENT);
        }
    }

    /// Collect from `table` at `path` every connection with one of `flags`, removing the
    /// standard (one-shot) registrations that fire.
    fn fire(table: &mut Table, path: &str, flags: u8, out: &mut BTreeSet<ConnId>) {
        let Some(m) = table.get_mut(path) else {
            return;
        };
        m.retain(|conn, f| {
            if *f & flags != 0 {
                out.insert(*conn);
            }
            if flags & STANDARD != 0 {
                *f &= !STANDARD;
            }
            *f != 0
        });
        if m.is_empty() {
            table.remove(path);
        }
    }

    /// A change happened: the connections to notify (each once, sorted).
    pub fn trigger(&mut self, path: &str, event: EventType) -> Vec<ConnId> {
        let mut out = BTreeSet::new();
        match event {
            EventType::NodeChildrenChanged => {
                Self::fire(&mut self.child, path, STANDARD | PERSISTENT, &mut out);
            }
            EventType::NodeCreated | EventType::NodeDataChanged | EventType::NodeDeleted => {
                Self::fire(&mut self.data, path, STANDARD | PERSISTENT, &mut out);
                if event == EventType::NodeDeleted {
                    Self::fire(&mut self.child, path, STANDARD | PERSISTENT, &mut out);
                }
                if self.recursive_count > 0 {
                    let mut p = Some(path);
                    while let Some(cur) = p {
                        if let Some(m) = self.data.get(cur) {
                            out.extend(
                                m.iter()
                                    .filter(|(_, f)| **f & RECURSIVE != 0)
                                    .map(|(c, _)| *c),
                            );
                        }
                        p = parent(cur);
                    }
                }
            }
            EventType::None => {}
        }
        out.into_iter().collect()
    }

    fn flags(table: &Table, path: &str, conn: ConnId) -> u8 {
        table
            .get(path)
            .and_then(|m| m.get(&conn))
            .copied()
            .unwrap_or(0)
    }

    /// checkWatches: does `conn` hold a registration of `kind` at `path`? Removes nothing.
    pub fn check(&self, path: &str, conn: ConnId, kind: WatcherType) -> bool {
        let d = Self::flags(&self.data, path, conn);
        let c = Self::flags(&self.child, path, conn);
        match kind {
            WatcherType::Children => c != 0,
            WatcherType::Data => d != 0,
            WatcherType::Any => d != 0 || c != 0,
            WatcherType::Persistent => d & PERSISTENT != 0 || c & PERSISTENT != 0,
            WatcherType::PersistentRecursive => d & RECURSIVE != 0,
        }
    }

    /// removeWatches: drop registrations of `kind`; false if there were none.
    pub fn remove(&mut self, path: &str, conn: ConnId, kind: WatcherType) -> bool {
        let (dflags, cflags) = match kind {
            WatcherType::Children => (0, STANDARD),
            WatcherType::Data => (STANDARD, 0),
            WatcherType::Any => (STANDARD | PERSISTENT | RECURSIVE, STANDARD | PERSISTENT),
            WatcherType::Persistent => (PERSISTENT, PERSISTENT),
            WatcherType::PersistentRecursive => (RECURSIVE, 0),
        };
        let d = clear(&mut self.data, path, conn, dflags);
        let c = clear(&mut self.child, path, conn, cflags);
        if d & RECURSIVE != 0 {
            self.recursive_count -= 1;
        }
        d != 0 || c != 0
    }

    /// The connection closed: forget all its registrations.
    pub fn remove_connection(&mut self, conn: ConnId) {
        for table in [&mut self.data, &mut self.child] {
            table.retain(|_, m| {
                m.remove(&conn);
                !m.is_empty()
            });
        }
        self.recursive_count = self
            .data
            .values()
            .flat_map(|m| m.values())
            .filter(|f| **f & RECURSIVE != 0)
            .count();
    }

    /// `zk_watch_count`: (path, connection) registrations in both tables.
    pub fn watch_count(&self) -> usize {
        self.data.values().map(HashMap::len).sum::<usize>()
            + self.child.values().map(HashMap::len).sum::<usize>()
    }

    /// `wchs`: (connections, paths, watches) of the data table.
    pub fn summary(&self) -> (usize, usize, usize) {
        let conns: BTreeSet<ConnId> = self.data.values().flat_map(|m| m.keys().copied()).collect();
        let total = self.data.values().map(HashMap::len).sum();
        (conns.len(), self.data.len(), total)
    }

    /// `wchc`: data-table paths per connection.
    pub fn by_connection(&self) -> Vec<(ConnId, Vec<String>)> {
        let mut m: BTreeMap<ConnId, Vec<String>> = BTreeMap::new();
        for (path, conns) in &self.data {
            for c in conns.keys() {
                m.entry(*c).or_default().push(path.clone());
            }
        }
        m.into_iter()
            .map(|(c, mut v)| {
                v.sort();
                (c, v)
            })
            .collect()
    }

    /// `wchp`: data-table connections per path.
    pub fn by_path(&self) -> Vec<(String, Vec<ConnId>)> {
        let mut v: Vec<(String, Vec<ConnId>)> = self
            .data
            .iter()
            .map(|(p, m)| {
                let mut c: Vec<ConnId> = m.keys().copied().collect();
                c.sort();
                (p.clone(), c)
            })
            .collect();
        v.sort();
        v
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use EventType::*;

    #[test]
    fn one_shot_watches_fire_once() {
        let mut w = WatchManager::new();
        w.add_data_watch("/a", 1);
        w.add_data_watch("/a", 1);
        w.add_data_watch("/a", 2);
        assert_eq!(w.trigger("/a", NodeDataChanged), vec![1, 2]);
        assert!(w.trigger("/a", NodeDataChanged).is_empty());
        assert_eq!(w.watch_count(), 0);
    }

    #[test]
    fn child_events_go_to_the_child_table_only() {
        let mut w = WatchManager::new();
        w.add_data_watch("/a", 1);
        w.add_child_watch("/a", 2);
        assert_eq!(w.trigger("/a", NodeChildrenChanged), vec![2]);
        assert_eq!(w.trigger("/a", NodeDataChanged), vec![1]);
    }

    #[test]
    fn delete_fires_both_tables_once_per_connection() {
        let mut w = WatchManager::new();
        w.add_data_watch("/a", 1);
        w.add_child_watch("/a", 1);
        w.add_child_watch("/a", 2);
        assert_eq!(w.trigger("/a", NodeDeleted), vec![1, 2]);
        assert_eq!(w.watch_count(), 0);
    }

    #[test]
    fn persistent_and_recursive() {
        let mut w = WatchManager::new();
        w.add_persistent("/a", 1, false);
        w.add_persistent("/", 2, true);
        assert_eq!(w.trigger("/a", NodeDataChanged), vec![1, 2]);
        assert_eq!(w.trigger("/a", NodeChildrenChanged), vec![1]);
        assert_eq!(w.trigger("/a/b/c", NodeCreated), vec![2]);
        assert_eq!(w.trigger("/a", NodeDeleted), vec![1, 2]);
        // Persistent watches survive NodeDeleted.
        assert_eq!(w.trigger("/a", NodeCreated), vec![1, 2]);
        assert!(w.check("/", 2, WatcherType::PersistentRecursive));
        assert!(w.check("/a", 1, WatcherType::Persistent));
        assert!(!w.check("/a", 1, WatcherType::PersistentRecursive));
    }

    #[test]
    fn check_and_remove() {
        let mut w = WatchManager::new();
        w.add_data_watch("/a", 1);
        w.add_child_watch("/b", 1);
        assert!(w.check("/a", 1, WatcherType::Data));
        assert!(!w.check("/a", 1, WatcherType::Children));
        assert!(w.check("/b", 1, WatcherType::Any));
        assert!(!w.remove("/a", 1, WatcherType::Children));
        assert!(w.remove("/a", 1, WatcherType::Data));
        assert!(!w.check("/a", 1, WatcherType::Any));
        assert!(w.remove("/b", 1, WatcherType::Any));
        assert!(!w.remove("/b", 1, WatcherType::Any));
        w.add_persistent("/r", 3, true);
        assert!(w.remove("/r", 3, WatcherType::PersistentRecursive));
        assert!(w.trigger("/r/x", NodeCreated).is_empty());
    }

    #[test]
    fn closing_a_connection_forgets_it() {
        let mut w = WatchManager::new();
        w.add_data_watch("/a", 1);
        w.add_persistent("/", 1, true);
        w.add_data_watch("/a", 2);
        w.remove_connection(1);
        assert_eq!(w.trigger("/a", NodeDataChanged), vec![2]);
        assert_eq!(w.summary(), (0, 0, 0));
    }

    #[test]
    fn summaries() {
        let mut w = WatchManager::new();
        w.add_data_watch("/a", 1);
        w.add_data_watch("/b", 1);
        w.add_data_watch("/b", 2);
        w.add_child_watch("/c", 3);
        assert_eq!(w.summary(), (2, 2, 3));
        assert_eq!(w.watch_count(), 4);
        assert_eq!(w.by_path()[1], ("/b".to_string(), vec![1, 2]));
        assert_eq!(
            w.by_connection()[0],
            (1, vec!["/a".to_string(), "/b".to_string()])
        );
    }
}

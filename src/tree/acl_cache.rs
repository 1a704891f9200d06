//! Interned ACL lists (Java's `ReferenceCountedACLCache`): nodes store a small reference,
//! identical lists share one entry, and snapshots store the table.

use std::collections::HashMap;

use crate::jute::records::Acl;

/// The reference of `OPEN_ACL_UNSAFE` on nodes that were given no list (the system nodes).
pub const OPEN_UNSAFE_ACL_REF: i64 = -1;

/// ACL lists by reference, with reference counts.
#[derive(Debug)]
pub struct AclCache {
    by_ref: HashMap<i64, (Vec<Acl>, u64)>,
    by_list: HashMap<Vec<Acl>, i64>,
    next: i64,
    open: Vec<Acl>,
    /// While a snapshot is written, unused entries stay so every reference it saw resolves.
    pinned: bool,
}

impl Default for AclCache {
    fn default() -> Self {
        AclCache {
            by_ref: HashMap::new(),
            by_list: HashMap::new(),
            next: 1,
            open: Acl::open_unsafe(),
            pinned: false,
        }
    }
}

impl AclCache {
    /// The reference for `acl`, adding one use.
    pub fn intern(&mut self, acl: &[Acl]) -> i64 {
        if let Some(r) = self.by_list.get(acl) {
            if let Some(e) = self.by_ref.get_mut(r) {
                e.1 += 1;
            }
            return *r;
        }
        let r = self.next;
        self.next += 1;
        self.by_list.insert(acl.to_vec(), r);
        self.by_ref.insert(r, (acl.to_vec(), 1));
        r
    }

    /// Drop one use of `r`; the entry goes when unused.
    pub fn release(&mut self, r: i64) {
        if let Some(e) = self.by_ref.get_mut(&r) {
            e.1 = e.1.saturating_sub(1);
            if e.1 == 0 && !self.pinned {
                if let Some((list, _)) = self.by_ref.remove(&r) {
                    self.by_list.remove(&list);
                }
            }
        }
    }

    /// Entries from a snapshot, with no uses yet; numbering continues after the largest.
    pub fn restore(&mut self, entries: Vec<(i64, Vec<Acl>)>) {
        for (r, list) in entries {
            self.next = self.next.max(r.saturating_add(1));
            self.by_list.insert(list.clone(), r);
            self.by_ref.insert(r, (list, 0));
        }
    }

    /// Count one more use of `r`; false if there is no such entry.
    pub fn add_use(&mut self, r: i64) -> bool {
        match self.by_ref.get_mut(&r) {
            Some(e) => {
                e.1 += 1;
                true
            }
            None => false,
        }
    }

    /// Drop entries nobody uses.
    pub fn purge_unused(&mut self) {
        let unused: Vec<i64> = self
            .by_ref
            .iter()
            .filter(|(_, e)| e.1 == 0)
            .map(|(r, _)| *r)
            .collect();
        for r in unused {
            if let Some((list, _)) = self.by_ref.remove(&r) {
                if self.by_list.get(&list) == Some(&r) {
                    self.by_list.remove(&list);
                }
            }
        }
    }

    /// The reference the next new entry will get; every existing one is below it.
    pub fn next_ref(&self) -> i64 {
        self.next
    }

    /// Keep unused entries until [`AclCache::unpin`].
    pub fn pin(&mut self) {
        self.pinned = true;
    }

    /// Stop pinning and drop what became unused meanwhile.
    pub fn unpin(&mut self) {
        self.pinned = false;
        self.purge_unused();
    }

    pub fn get(&self, r: i64) -> &[Acl] {
        if r == OPEN_UNSAFE_ACL_REF {
            return &self.open;
        }
        self.by_ref.get(&r).map(|e| e.0.as_slice()).unwrap_or(&[])
    }

    pub fn len(&self) -> usize {
        self.by_ref.len()
    }

    pub fn is_empty(&self) -> bool {
        self.by_ref.is_empty()
    }

    pub fn entries(&self) -> Vec<(i64, Vec<Acl>)> {
        let mut v: Vec<(i64, Vec<Acl>)> =
            self.by_ref.iter().map(|(r, e)| (*r, e.0.clone())).collect();
        v.sort_by_key(|e| e.0);
        v
    }
}

//! A node's child names, kept in order so that a walk can stop anywhere and resume after the
//! last name it took, whatever was added or removed meanwhile (the fuzzy snapshot walks a
//! parent with a million children a few names at a time, between requests).
//!
//! Most znodes are leaves, so a leaf pays one pointer. A few names sit in a sorted vector
//! (found by binary search); past [`SMALL_MAX`] they move to a B-tree, which grows a node at a
//! time: no table doubling, so no stall when a parent gets its millionth child. A name of up
//! to 24 bytes (nearly all of them) is stored inline in its 24-byte slot, without an
//! allocation of its own.

use std::collections::BTreeSet;
use std::ops::Bound;

use compact_str::CompactString;

/// One child's name.
type Name = CompactString;

/// Names a sorted vector holds before they move to a B-tree.
const SMALL_MAX: usize = 64;

#[derive(Clone, Debug)]
enum Set {
    /// Sorted, no duplicates.
    Small(Vec<Name>),
    Large(BTreeSet<Name>),
}

/// The names (not paths) of a node's children, in byte order.
#[derive(Clone, Debug, Default)]
pub struct Children(Option<Box<Set>>);

impl Children {
    /// A set of `names` (any order; duplicates kept once), built at once: a snapshot load.
    pub fn from_names<'a>(names: impl IntoIterator<Item = &'a str>) -> Children {
        let mut v: Vec<Name> = names.into_iter().map(Name::from).collect();
        if v.is_empty() {
            return Children(None);
        }
        // Our own snapshots list children in order, so this is usually a linear check.
        v.sort_unstable();
        v.dedup();
        if v.len() <= SMALL_MAX {
            Children(Some(Box::new(Set::Small(v))))
        } else {
            // From sorted input the B-tree is built bottom-up in one pass.
            Children(Some(Box::new(Set::Large(v.into_iter().collect()))))
        }
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    pub fn len(&self) -> usize {
        match self.0.as_deref() {
            None => 0,
            Some(Set::Small(v)) => v.len(),
            Some(Set::Large(s)) => s.len(),
        }
    }

    pub fn contains(&self, name: &str) -> bool {
        match self.0.as_deref() {
            None => false,
            Some(Set::Small(v)) => v.binary_search_by(|n| n.as_str().cmp(name)).is_ok(),
            Some(Set::Large(s)) => s.contains(name),
        }
    }

    /// Add a name; false if it was already there.
    pub fn insert(&mut self, name: &str) -> bool {
        let set = self
            .0
            .get_or_insert_with(|| Box::new(Set::Small(Vec::new())));
        match &mut **set {
            Set::Small(v) => match v.binary_search_by(|n| n.as_str().cmp(name)) {
                Ok(_) => false,
                Err(at) => {
                    v.insert(at, Name::from(name));
                    if v.len() > SMALL_MAX {
                        let names = std::mem::take(v);
                        **set = Set::Large(names.into_iter().collect());
                    }
                    true
                }
            },
            Set::Large(s) => s.insert(Name::from(name)),
        }
    }

    /// Remove a name; the set goes when it empties, so a former parent is a leaf again. A
    /// large set stays a B-tree until then (no back-and-forth at the boundary).
    pub fn remove(&mut self, name: &str) -> bool {
        let Some(set) = self.0.as_deref_mut() else {
            return false;
        };
        let removed = match set {
            Set::Small(v) => match v.binary_search_by(|n| n.as_str().cmp(name)) {
                Ok(at) => {
                    v.remove(at);
                    true
                }
                Err(_) => false,
            },
            Set::Large(s) => s.remove(name),
        };
        if self.is_empty() {
            self.0 = None;
        }
        removed
    }

    /// The names in byte order.
    pub fn iter(&self) -> Box<dyn Iterator<Item = &str> + '_> {
        match self.0.as_deref() {
            None => Box::new(std::iter::empty()),
            Some(Set::Small(v)) => Box::new(v.iter().map(Name::as_str)),
            Some(Set::Large(s)) => Box::new(s.iter().map(Name::as_str)),
        }
    }

    /// Up to `max` names that sort after `after` (all names when `None`), in order: how a
    /// walk resumes. A name added behind the walk's position is not seen; one removed ahead
    /// of it is not returned.
    pub fn after(&self, after: Option<&str>, max: usize) -> Vec<&str> {
        match self.0.as_deref() {
            None => Vec::new(),
            Some(Set::Small(v)) => {
                let from = match after {
                    None => 0,
                    Some(a) => v.partition_point(|n| n.as_str() <= a),
                };
                v[from..].iter().take(max).map(Name::as_str).collect()
            }
            Some(Set::Large(s)) => {
                let lower = match after {
                    None => Bound::Unbounded,
                    Some(a) => Bound::Excluded(a),
                };
                s.range::<str, _>((lower, Bound::Unbounded))
                    .take(max)
                    .map(Name::as_str)
                    .collect()
            }
        }
    }
}

impl<'a> IntoIterator for &'a Children {
    type Item = &'a str;
    type IntoIter = Box<dyn Iterator<Item = &'a str> + 'a>;

    fn into_iter(self) -> Self::IntoIter {
        self.iter()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_leaf_costs_a_pointer_and_empties_back_to_one() {
        assert_eq!(std::mem::size_of::<Children>(), 8);
        let mut c = Children::default();
        assert!(c.is_empty());
        assert!(c.insert("b"));
        assert!(!c.insert("b"));
        assert!(c.insert("a"));
        assert_eq!(c.len(), 2);
        assert!(c.contains("a"));
        assert_eq!(c.iter().collect::<Vec<_>>(), ["a", "b"]);
        assert!(c.remove("a"));
        assert!(!c.remove("a"));
        assert!(c.remove("b"));
        assert!(c.0.is_none());
    }

    #[test]
    fn small_and_large_sets_agree_with_a_model() {
        use std::collections::BTreeSet as Model;
        let mut c = Children::default();
        let mut m = Model::new();
        // Grow well past the small limit, shrink, grow again; names out of order.
        for round in 0..3u32 {
            for i in 0..300u32 {
                let name = format!("n{}", (i * 7919 + round) % 1000);
                assert_eq!(c.insert(&name), m.insert(name.clone()));
            }
            for i in 0..250u32 {
                let name = format!("n{}", (i * 104_729) % 1000);
                assert_eq!(c.remove(&name), m.remove(&name));
            }
            assert_eq!(c.len(), m.len());
            assert!(c.iter().eq(m.iter().map(String::as_str)));
            for probe in ["n0", "n7", "n999", "zz", ""] {
                assert_eq!(c.contains(probe), m.contains(probe));
            }
        }
    }

    #[test]
    fn a_walk_resumes_after_its_last_name_across_changes() {
        for n in [5usize, 64, 65, 1000] {
            let mut c = Children::from_names(
                (0..n)
                    .map(|i| format!("c{i:05}"))
                    .collect::<Vec<_>>()
                    .iter()
                    .map(String::as_str),
            );
            assert_eq!(c.len(), n);
            let mut seen = Vec::new();
            let mut pos: Option<String> = None;
            let mut step = 0;
            loop {
                let got: Vec<String> = c
                    .after(pos.as_deref(), 7)
                    .into_iter()
                    .map(str::to_owned)
                    .collect();
                let Some(last) = got.last().cloned() else {
                    break;
                };
                seen.extend(got);
                pos = Some(last);
                // Meanwhile: a name behind the walk and one ahead of it come and go.
                step += 1;
                c.insert(&format!("a{step}"));
                c.remove(&format!("c{:05}", (step * 13) % n));
                c.insert(&format!("c{:05}", (step * 13) % n));
            }
            // Every name present throughout was seen exactly once, in order.
            let mut sorted = seen.clone();
            sorted.sort();
            sorted.dedup();
            assert_eq!(sorted, seen, "n={n}");
            for i in 0..n {
                let name = format!("c{i:05}");
                assert!(
                    seen.contains(&name) || !c.contains(&name),
                    "n={n}: missed {name}"
                );
            }
        }
        assert!(Children::from_names(std::iter::empty()).0.is_none());
        let dup = Children::from_names(["x", "y", "x"]);
        assert_eq!(dup.iter().collect::<Vec<_>>(), ["x", "y"]);
    }
}

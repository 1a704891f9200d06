//! A node's child names, sized for the common case: most znodes are leaves, so a leaf pays
//! one pointer; a parent holds its names in an incrementally growing set (no stall when a
//! parent with a million children doubles its table).

use griddle::HashSet as GrowingSet;

/// The names (not paths) of a node's children.
#[derive(Clone, Debug, Default)]
pub struct Children(Option<Box<GrowingSet<Box<str>>>>);

impl Children {
    pub fn is_empty(&self) -> bool {
        self.0.as_ref().is_none_or(|s| s.is_empty())
    }

    pub fn len(&self) -> usize {
        self.0.as_ref().map_or(0, |s| s.len())
    }

    pub fn contains(&self, name: &str) -> bool {
        self.0.as_ref().is_some_and(|s| s.contains(name))
    }

    /// Add a name; false if it was already there.
    pub fn insert(&mut self, name: &str) -> bool {
        self.0
            .get_or_insert_with(Default::default)
            .insert(name.into())
    }

    /// Make room for `additional` more names (a snapshot load, which knows how many come).
    pub fn reserve(&mut self, additional: usize) {
        if additional > 0 {
            self.0
                .get_or_insert_with(Default::default)
                .reserve(additional);
        }
    }

    /// Remove a name; the set goes when it empties, so a former parent is a leaf again.
    pub fn remove(&mut self, name: &str) -> bool {
        let Some(s) = self.0.as_mut() else {
            return false;
        };
        let removed = s.remove(name);
        if s.is_empty() {
            self.0 = None;
        }
        removed
    }

    pub fn iter(&self) -> impl Iterator<Item = &str> {
        self.0.iter().flat_map(|s| s.iter().map(|n| &**n))
    }
}

impl<'a> IntoIterator for &'a Children {
    type Item = &'a str;
    type IntoIter = Box<dyn Iterator<Item = &'a str> + 'a>;

    fn into_iter(self) -> Self::IntoIter {
        Box::new(self.iter())
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
        assert!(c.insert("a"));
        assert!(!c.insert("a"));
        assert!(c.insert("b"));
        assert_eq!(c.len(), 2);
        assert!(c.contains("a"));
        let mut names: Vec<&str> = c.iter().collect();
        names.sort();
        assert_eq!(names, ["a", "b"]);
        assert!(c.remove("a"));
        assert!(!c.remove("a"));
        assert!(c.remove("b"));
        assert!(c.0.is_none());
    }
}

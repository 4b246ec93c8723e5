//! An ordered table with keyset paging.
//!
//! Every listable resource lives in a `Collection`: items are kept in a `BTreeMap` by a
//! monotonically increasing sequence number (for messages, the sequence number *is* the message
//! index), with hash indexes by SID and by unique name. Reading a page after or before a key is
//! O(log n + page) at any depth, and a page token (the key of the last item seen) stays correct
//! while items are added or removed elsewhere.
use std::collections::{BTreeMap, HashMap};
use std::ops::Bound;

pub trait Keyed {
    fn sid(&self) -> &str;
    /// The second name the item can be addressed by (unique name, identity), if any.
    fn name(&self) -> Option<&str> {
        None
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Order {
    Asc,
    Desc,
}

#[derive(Debug, Clone)]
pub struct Collection<T> {
    items: BTreeMap<u64, T>,
    by_sid: HashMap<String, u64>,
    by_name: HashMap<String, u64>,
    next_seq: u64,
}

impl<T> Default for Collection<T> {
    fn default() -> Self {
        Collection {
            items: BTreeMap::new(),
            by_sid: HashMap::new(),
            by_name: HashMap::new(),
            next_seq: 0,
        }
    }
}

/// One page of a keyset walk.
#[derive(Debug)]
pub struct Window<'a, T> {
    pub items: Vec<(u64, &'a T)>,
    /// More items exist beyond the last returned one, in the walk's order.
    pub has_more: bool,
    /// Items exist before the first returned one, in the walk's order.
    pub has_before: bool,
}

impl<T: Keyed> Collection<T> {
    pub fn len(&self) -> usize {
        self.items.len()
    }

    pub fn is_empty(&self) -> bool {
        self.items.is_empty()
    }

    /// The sequence number the next insert will get.
    pub fn next_seq(&self) -> u64 {
        self.next_seq
    }

    pub fn insert(&mut self, item: T) -> u64 {
        let seq = self.next_seq;
        self.next_seq += 1;
        self.insert_at(seq, item);
        seq
    }

    /// Inserts with a given sequence number (snapshot import); later inserts continue after it.
    pub fn insert_at(&mut self, seq: u64, item: T) {
        self.by_sid.insert(item.sid().to_owned(), seq);
        if let Some(n) = item.name() {
            self.by_name.insert(n.to_owned(), seq);
        }
        self.items.insert(seq, item);
        self.next_seq = self.next_seq.max(seq + 1);
    }

    /// Restores the counter after an import, so removed items' numbers are never reused.
    pub fn set_next_seq(&mut self, next: u64) {
        self.next_seq = self.next_seq.max(next);
    }

    pub fn seq_of(&self, sid_or_name: &str) -> Option<u64> {
        self.by_sid.get(sid_or_name).or_else(|| self.by_name.get(sid_or_name)).copied()
    }

    pub fn seq_of_sid(&self, sid: &str) -> Option<u64> {
        self.by_sid.get(sid).copied()
    }

    pub fn seq_of_name(&self, name: &str) -> Option<u64> {
        self.by_name.get(name).copied()
    }

    pub fn get(&self, sid_or_name: &str) -> Option<&T> {
        self.seq_of(sid_or_name).and_then(|s| self.items.get(&s))
    }

    pub fn get_seq(&self, seq: u64) -> Option<&T> {
        self.items.get(&seq)
    }

    /// Mutable access; the caller must not change the SID, and must call [`Collection::rename`]
    /// when changing the name.
    pub fn get_seq_mut(&mut self, seq: u64) -> Option<&mut T> {
        self.items.get_mut(&seq)
    }

    pub fn rename(&mut self, seq: u64, old: Option<&str>, new: Option<&str>) {
        if let Some(o) = old {
            if self.by_name.get(o) == Some(&seq) {
                self.by_name.remove(o);
            }
        }
        if let Some(n) = new {
            self.by_name.insert(n.to_owned(), seq);
        }
    }

    pub fn remove_seq(&mut self, seq: u64) -> Option<T> {
        let item = self.items.remove(&seq)?;
        self.by_sid.remove(item.sid());
        if let Some(n) = item.name() {
            if self.by_name.get(n) == Some(&seq) {
                self.by_name.remove(n);
            }
        }
        Some(item)
    }

    pub fn iter(&self) -> impl DoubleEndedIterator<Item = (u64, &T)> {
        self.items.iter().map(|(k, v)| (*k, v))
    }

    /// How many items come after `seq` (O(log n + count)).
    pub fn count_after(&self, seq: u64) -> usize {
        self.items.range(seq.saturating_add(1)..).count()
    }

    pub fn first_seq(&self) -> Option<u64> {
        self.items.keys().next().copied()
    }

    pub fn last_seq(&self) -> Option<u64> {
        self.items.keys().next_back().copied()
    }

    /// Up to `size` items strictly after `after` (ascending) or strictly before it (descending).
    pub fn page_after(&self, after: Option<u64>, size: usize, order: Order) -> Window<'_, T> {
        let (lo, hi) = match (order, after) {
            (_, None) => (Bound::Unbounded, Bound::Unbounded),
            (Order::Asc, Some(k)) => (Bound::Excluded(k), Bound::Unbounded),
            (Order::Desc, Some(k)) => (Bound::Unbounded, Bound::Excluded(k)),
        };
        self.window((lo, hi), size, order)
    }

    /// Up to `size` items starting at `from` inclusive, walking in `order`.
    pub fn page_from(&self, from: Option<u64>, size: usize, order: Order) -> Window<'_, T> {
        let range = match (order, from) {
            (_, None) => (Bound::Unbounded, Bound::Unbounded),
            (Order::Asc, Some(k)) => (Bound::Included(k), Bound::Unbounded),
            (Order::Desc, Some(k)) => (Bound::Unbounded, Bound::Included(k)),
        };
        self.window(range, size, order)
    }

    fn window(&self, range: (Bound<u64>, Bound<u64>), size: usize, order: Order) -> Window<'_, T> {
        let mut it: Box<dyn Iterator<Item = (&u64, &T)>> = match order {
            Order::Asc => Box::new(self.items.range(range)),
            Order::Desc => Box::new(self.items.range(range).rev()),
        };
        let items: Vec<(u64, &T)> = it.by_ref().take(size).map(|(k, v)| (*k, v)).collect();
        let has_more = it.next().is_some();
        let has_before = match (order, items.first()) {
            (Order::Asc, Some((k, _))) => self.items.range(..*k).next_back().is_some(),
            (Order::Desc, Some((k, _))) => self.items.range(k + 1..).next().is_some(),
            (Order::Asc, None) => match range.0 {
                Bound::Included(k) => self.items.range(..k).next_back().is_some(),
                Bound::Excluded(k) => self.items.range(..=k).next_back().is_some(),
                Bound::Unbounded => false,
            },
            (Order::Desc, None) => match range.1 {
                Bound::Included(k) => self.items.range(k.saturating_add(1)..).next().is_some() && k != u64::MAX,
                Bound::Excluded(k) => self.items.range(k..).next().is_some(),
                Bound::Unbounded => false,
            },
        };
        Window {
            items,
            has_more,
            has_before,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, Clone)]
    struct Item(String, Option<String>);
    impl Keyed for Item {
        fn sid(&self) -> &str {
            &self.0
        }
        fn name(&self) -> Option<&str> {
            self.1.as_deref()
        }
    }

    fn coll(n: u64) -> Collection<Item> {
        let mut c = Collection::default();
        for i in 0..n {
            c.insert(Item(format!("S{i}"), Some(format!("n{i}"))));
        }
        c
    }

    #[test]
    fn keyset_pages_both_ways() {
        let c = coll(5);
        let w = c.page_after(None, 2, Order::Asc);
        assert_eq!(w.items.iter().map(|x| x.0).collect::<Vec<_>>(), vec![0, 1]);
        assert!(w.has_more && !w.has_before);
        let w = c.page_after(Some(3), 2, Order::Asc);
        assert_eq!(w.items.iter().map(|x| x.0).collect::<Vec<_>>(), vec![4]);
        assert!(!w.has_more && w.has_before);
        let w = c.page_after(Some(3), 2, Order::Desc);
        assert_eq!(w.items.iter().map(|x| x.0).collect::<Vec<_>>(), vec![2, 1]);
        assert!(w.has_more && w.has_before);
        let w = c.page_from(Some(3), 10, Order::Desc);
        assert_eq!(w.items.iter().map(|x| x.0).collect::<Vec<_>>(), vec![3, 2, 1, 0]);
        assert!(w.has_before && !w.has_more);
    }

    #[test]
    fn lookup_rename_remove() {
        let mut c = coll(3);
        assert_eq!(c.seq_of("S1"), Some(1));
        assert_eq!(c.seq_of("n2"), Some(2));
        c.rename(1, Some("n1"), Some("x"));
        assert!(c.get("n1").is_none());
        assert_eq!(c.get("x").unwrap().0, "S1");
        let removed = c.remove_seq(0).unwrap();
        assert_eq!(removed.0, "S0");
        assert!(c.get("S0").is_none() && c.get("n0").is_none());
        assert_eq!(c.insert(Item("S9".into(), None)), 3, "sequence numbers are never reused");
    }
}

/// Snapshots store a collection as its items with their sequence numbers, plus the counter, so
/// an import continues numbering (message indexes) exactly where the export stopped.
#[derive(serde::Serialize, serde::Deserialize)]
struct CollectionRepr<T> {
    next_seq: u64,
    items: Vec<(u64, T)>,
}

impl<T: serde::Serialize + Clone> serde::Serialize for Collection<T> {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeStruct;
        let mut st = s.serialize_struct("Collection", 2)?;
        st.serialize_field("next_seq", &self.next_seq)?;
        st.serialize_field("items", &self.items.iter().collect::<Vec<_>>())?;
        st.end()
    }
}

impl<'de, T: serde::Deserialize<'de> + Keyed> serde::Deserialize<'de> for Collection<T> {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let repr = CollectionRepr::<T>::deserialize(d)?;
        let mut c = Collection::default();
        for (seq, item) in repr.items {
            c.insert_at(seq, item);
        }
        c.set_next_seq(repr.next_seq);
        Ok(c)
    }
}

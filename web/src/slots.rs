//! Counted slots per key with a cap: open connections per address, open event streams per
//! user. A [`Slot`] gives its place back when dropped.

use std::collections::HashMap;
use std::hash::Hash;
use std::sync::{Arc, Mutex, MutexGuard};

type Counts<K> = Arc<Mutex<HashMap<K, usize>>>;

/// How many slots each key holds.
pub struct Slots<K> {
    open: Counts<K>,
}

impl<K> Default for Slots<K> {
    fn default() -> Self {
        Slots {
            open: Arc::default(),
        }
    }
}

/// One held slot of a key.
pub struct Slot<K: Eq + Hash> {
    open: Counts<K>,
    key: K,
}

fn lock<K>(open: &Mutex<HashMap<K, usize>>) -> MutexGuard<'_, HashMap<K, usize>> {
    open.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

impl<K: Eq + Hash + Clone> Slots<K> {
    /// A slot for `key`, or `None` when it holds `cap` already.
    pub fn take(&self, key: K, cap: usize) -> Option<Slot<K>> {
        let mut open = lock(&self.open);
        let count = open.entry(key.clone()).or_default();
        if *count >= cap {
            if *count == 0 {
                open.remove(&key);
            }
            return None;
        }
        *count += 1;
        Some(Slot {
            open: self.open.clone(),
            key,
        })
    }
}

impl<K: Eq + Hash> Drop for Slot<K> {
    fn drop(&mut self) {
        let mut open = lock(&self.open);
        if let Some(count) = open.get_mut(&self.key) {
            *count -= 1;
            if *count == 0 {
                open.remove(&self.key);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_key_holds_at_most_its_cap_and_dropped_slots_come_back() {
        let slots = Slots::default();
        let first = slots.take("a", 2).expect("one");
        let _second = slots.take("a", 2).expect("two");
        assert!(slots.take("a", 2).is_none());
        assert!(slots.take("b", 2).is_some());
        drop(first);
        assert!(slots.take("a", 2).is_some());
    }
}

//! The states this process saw last, by aggregate: the next command on a hot aggregate decides
//! on it instead of loading the stream again. Only a hint — a commit holds every remembered
//! state it decided on to its version, so a state another process has moved past makes the
//! commit conflict, and the retry loads from the store (see `pipeline`). What is put here: the
//! states a landed commit read or wrote, and an allocation read to find its item's queue.

use std::any::Any;
use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex};
use uuid::Uuid;

use crate::domain::{Aggregate, Versioned};

pub struct StateCache {
    capacity: usize,
    inner: Mutex<Entries>,
}

#[derive(Default)]
struct Entries {
    states: HashMap<Uuid, Arc<dyn Any + Send + Sync>>,
    /// Insertion order, for evicting the oldest when full.
    order: VecDeque<Uuid>,
}

impl StateCache {
    /// Holds at most `capacity` states; 0 turns the cache off.
    pub fn new(capacity: usize) -> Self {
        Self {
            capacity,
            inner: Mutex::new(Entries::default()),
        }
    }

    fn entries(&self) -> std::sync::MutexGuard<'_, Entries> {
        crate::sync::lock(&self.inner)
    }

    /// The state of `id`, if this process committed it last.
    pub fn peek<A: Aggregate>(&self, id: Uuid) -> Option<Versioned<A>> {
        let entry = self.entries().states.get(&id)?.clone();
        entry
            .downcast::<Versioned<A>>()
            .ok()
            .map(|state| (*state).clone())
    }

    /// Remembers the state a commit produced.
    pub fn put<A: Aggregate>(&self, id: Uuid, state: Versioned<A>) {
        if self.capacity == 0 {
            return;
        }
        let mut entries = self.entries();
        if entries.states.insert(id, Arc::new(state)).is_none() {
            entries.order.push_back(id);
        }
        while entries.states.len() > self.capacity {
            match entries.order.pop_front() {
                Some(oldest) => {
                    entries.states.remove(&oldest);
                }
                None => break,
            }
        }
    }

    #[cfg(test)]
    pub fn len(&self) -> usize {
        self.entries().states.len()
    }

    #[cfg(test)]
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::item::InventoryItem;
    use crate::domain::warehouse::Warehouse;

    fn state(version: u64) -> Versioned<InventoryItem> {
        Versioned {
            version,
            ..Default::default()
        }
    }

    #[test]
    fn a_state_is_served_only_as_its_own_type_and_replaced_by_the_next_commit() {
        let cache = StateCache::new(10);
        let id = Uuid::now_v7();
        cache.put(id, state(3));
        assert!(
            cache.peek::<Warehouse>(id).is_none(),
            "wrong type: not served"
        );
        assert_eq!(cache.peek::<InventoryItem>(id).map(|s| s.version), Some(3));
        cache.put(id, state(4));
        assert_eq!(cache.peek::<InventoryItem>(id).map(|s| s.version), Some(4));
        assert_eq!(cache.len(), 1);
    }

    #[test]
    fn it_stays_within_capacity_and_evicts_the_oldest() {
        let cache = StateCache::new(3);
        let ids: Vec<Uuid> = (0..5).map(|_| Uuid::now_v7()).collect();
        for (n, id) in ids.iter().enumerate() {
            cache.put(*id, state(n as u64));
        }
        assert_eq!(cache.len(), 3);
        assert!(cache.peek::<InventoryItem>(ids[0]).is_none());
        assert_eq!(
            cache.peek::<InventoryItem>(ids[4]).map(|s| s.version),
            Some(4)
        );
        let off = StateCache::new(0);
        off.put(ids[0], state(1));
        assert!(off.is_empty());
    }
}

//! What a process remembers of the projection rows it wrote: per batch, the rows read or
//! written in it; between batches, hints that spare a read. A hint may decide what to write
//! (the write's condition checks it), never what to skip.

use std::collections::HashMap;
use uuid::Uuid;

use super::stock_movements;
use crate::projection::{AllocationView, ItemView, TransferView, WarehouseView};

/// Rows and checkpoints as read or written in this batch; and, remembered from earlier
/// batches, hints that spare the read altogether in the steady state (one writer per row).
/// Only hints: every write is still conditioned on the version it expects, a failed condition
/// drops the entry and re-reads, and a remembered row never decides on its own that an event
/// is a duplicate or a gap (a row that vanished with its table must not make us skip an
/// event): that takes a read.
#[derive(Default)]
pub(super) struct Cache {
    pub(super) warehouses: Rows<WarehouseView>,
    pub(super) items: Rows<ItemView>,
    pub(super) allocations: Rows<AllocationView>,
    pub(super) movements: Rows<stock_movements::Checkpoint>,
    pub(super) transfers: Rows<TransferView>,
}

impl Cache {
    /// What this batch learned, as hints for the next one.
    pub(super) fn remember(self) -> Cache {
        Cache {
            warehouses: self.warehouses.remember(),
            items: self.items.remember(),
            allocations: self.allocations.remember(),
            movements: self.movements.remember(),
            transfers: self.transfers.remember(),
        }
    }

    pub(super) fn len(&self) -> usize {
        self.warehouses.len()
            + self.items.len()
            + self.allocations.len()
            + self.movements.len()
            + self.transfers.len()
    }
}

/// At most this many rows are remembered between batches; past it the hints start afresh.
pub(super) const MAX_REMEMBERED: usize = 50_000;

/// One projector's rows by aggregate id.
pub(super) struct Rows<V> {
    /// Read or written in this batch: `None` is a row known to be absent.
    pub(super) known: HashMap<Uuid, Option<V>>,
    /// Written by an earlier batch of this process.
    pub(super) remembered: HashMap<Uuid, V>,
}

impl<V> Default for Rows<V> {
    fn default() -> Self {
        Self {
            known: HashMap::new(),
            remembered: HashMap::new(),
        }
    }
}

/// A row as the cache has it.
pub(super) enum Cached<V> {
    /// Known in this batch: trusted.
    Known(Option<V>),
    /// Remembered from an earlier batch: good to write against, not to skip on.
    Remembered(V),
}

impl<V: Clone> Rows<V> {
    pub(super) fn get(&mut self, id: &Uuid) -> Option<Cached<V>> {
        if let Some(row) = self.known.get(id) {
            return Some(Cached::Known(row.clone()));
        }
        self.remembered.remove(id).map(Cached::Remembered)
    }

    pub(super) fn insert(&mut self, id: Uuid, row: Option<V>) {
        self.known.insert(id, row);
    }

    /// Returns what `get` took, unused.
    pub(super) fn put_back(&mut self, id: Uuid, row: Option<Cached<V>>) {
        match row {
            Some(Cached::Known(row)) => {
                self.known.insert(id, row);
            }
            Some(Cached::Remembered(row)) => {
                self.remembered.insert(id, row);
            }
            None => {}
        }
    }

    pub(super) fn remember(mut self) -> Rows<V> {
        for (id, row) in self.known {
            if let Some(row) = row {
                self.remembered.insert(id, row);
            }
        }
        Rows {
            known: HashMap::new(),
            remembered: self.remembered,
        }
    }

    pub(super) fn len(&self) -> usize {
        self.known.len() + self.remembered.len()
    }
}

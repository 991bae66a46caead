//! Which tables serve each projection. Every projection lives in a *generation* of tables
//! (generation 0 is the one a fresh deployment creates); a replay builds the projections it
//! rebuilds into a new generation while the live ones keep serving, then switches them over.
//! The layout is one small durable record, changed only by compare-and-set on its revision, so
//! every process sharing the storage (API servers, a `replay` command) agrees on it.

use serde::{Deserialize, Serialize};

use crate::domain::AggregateType;
use std::collections::BTreeMap;
use std::fmt;
use std::str::FromStr;

/// The projections, each rebuilt and switched on its own.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ProjectionName {
    Warehouses,
    CurrentInventory,
    AllocationStatus,
    InventoryHistory,
    StockMovements,
    TransferStatus,
}

impl ProjectionName {
    pub const ALL: [ProjectionName; 6] = [
        Self::Warehouses,
        Self::CurrentInventory,
        Self::AllocationStatus,
        Self::InventoryHistory,
        Self::StockMovements,
        Self::TransferStatus,
    ];

    /// The aggregate type whose events this projection folds.
    pub fn handles(self) -> AggregateType {
        match self {
            Self::Warehouses => AggregateType::Warehouse,
            Self::AllocationStatus => AggregateType::Allocation,
            Self::TransferStatus => AggregateType::Transfer,
            Self::CurrentInventory | Self::InventoryHistory | Self::StockMovements => {
                AggregateType::InventoryItem
            }
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Warehouses => "warehouses",
            Self::CurrentInventory => "current_inventory",
            Self::AllocationStatus => "allocation_status",
            Self::InventoryHistory => "inventory_history",
            Self::StockMovements => "stock_movements",
            Self::TransferStatus => "transfer_status",
        }
    }
}

impl fmt::Display for ProjectionName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for ProjectionName {
    type Err = String;
    fn from_str(text: &str) -> Result<Self, Self::Err> {
        Self::ALL
            .into_iter()
            .find(|p| p.as_str() == text)
            .ok_or_else(|| {
                let names: Vec<_> = Self::ALL.iter().map(|p| p.as_str()).collect();
                format!(
                    "unknown projection {text:?}; expected one of {}",
                    names.join(", ")
                )
            })
    }
}

/// Where a rebuild stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Phase {
    /// Reading every stored event into the new generation.
    Scanning,
    /// Switched over; nothing left to do.
    Done,
}

/// A rebuild, as recorded durably: enough to resume it after an interruption and to report
/// its progress from any process.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Rebuild {
    pub generation: u32,
    pub projections: Vec<ProjectionName>,
    pub phase: Phase,
    /// Where the scan of the store resumes (`read_all`'s cursor); `None` before the first page.
    pub cursor: Option<String>,
    pub events_done: u64,
    /// The store's event count when the rebuild started, when the store can tell cheaply.
    pub events_total: Option<u64>,
    pub started_at: i64,
    pub updated_at: i64,
    /// Events done when this process picked it up (a resume starts counting its rate there).
    #[serde(default)]
    pub resumed_at_events: u64,
    #[serde(default)]
    pub resumed_at: i64,
}

impl Rebuild {
    /// A rebuild of `projections` into `generation`, starting `now`.
    pub fn new(
        generation: u32,
        projections: Vec<ProjectionName>,
        events_total: Option<u64>,
        now: i64,
    ) -> Self {
        Self {
            generation,
            projections,
            phase: Phase::Scanning,
            cursor: None,
            events_done: 0,
            events_total,
            started_at: now,
            updated_at: now,
            resumed_at_events: 0,
            resumed_at: now,
        }
    }

    /// Events per second since this run (the first or a resume) began.
    pub fn rate(&self) -> f64 {
        let seconds = (self.updated_at - self.resumed_at) as f64 / 1000.0;
        if seconds <= 0.0 {
            return 0.0;
        }
        self.events_done.saturating_sub(self.resumed_at_events) as f64 / seconds
    }

    /// Seconds left at the current rate, when the total is known (an estimate already passed
    /// is not).
    pub fn seconds_left(&self) -> Option<f64> {
        let total = self
            .events_total
            .filter(|total| *total >= self.events_done)?;
        let rate = self.rate();
        match self.phase {
            Phase::Done => Some(0.0),
            Phase::Scanning if rate > 0.0 => {
                Some(total.saturating_sub(self.events_done) as f64 / rate)
            }
            Phase::Scanning => None,
        }
    }
}

/// The durable routing record.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Layout {
    /// Bumped by every change; a change is written only if nobody changed it meanwhile.
    pub revision: u64,
    /// The generation serving each projection; a projection not named is in generation 0.
    pub active: BTreeMap<ProjectionName, u32>,
    /// The rebuild in progress, if any: live projectors apply new events to it as well.
    pub building: Option<Rebuild>,
    /// The last rebuild that finished, for status queries.
    pub last: Option<Rebuild>,
}

impl Layout {
    pub fn generation_of(&self, projection: ProjectionName) -> u32 {
        self.active.get(&projection).copied().unwrap_or(0)
    }

    /// The generation number a new rebuild takes: above every one in use or used before.
    pub fn next_generation(&self) -> u32 {
        let used = self
            .active
            .values()
            .copied()
            .chain(self.building.as_ref().map(|b| b.generation))
            .chain(self.last.as_ref().map(|b| b.generation));
        used.max().unwrap_or(0) + 1
    }

    pub fn encode(&self) -> String {
        serde_json::to_string(self).unwrap_or_default()
    }

    pub fn decode(text: &str) -> Result<Self, serde_json::Error> {
        serde_json::from_str(text)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip_and_unknown_names_are_refused() {
        for projection in ProjectionName::ALL {
            assert_eq!(projection.as_str().parse(), Ok(projection));
        }
        let error = "inventory".parse::<ProjectionName>().unwrap_err();
        assert!(error.contains("current_inventory"), "{error}");
    }

    #[test]
    fn generations_route_each_projection_and_new_ones_never_reuse_a_number() {
        let mut layout = Layout::default();
        let in_generation = |layout: &Layout, generation: u32| -> Vec<ProjectionName> {
            ProjectionName::ALL
                .into_iter()
                .filter(|p| layout.generation_of(*p) == generation)
                .collect()
        };
        assert_eq!(in_generation(&layout, 0).len(), ProjectionName::ALL.len());
        assert_eq!(layout.next_generation(), 1);
        layout.active.insert(ProjectionName::StockMovements, 1);
        layout.last = Some(Rebuild {
            phase: Phase::Done,
            ..Rebuild::new(2, vec![ProjectionName::Warehouses], None, 0)
        });
        assert_eq!(
            in_generation(&layout, 1),
            vec![ProjectionName::StockMovements]
        );
        assert_eq!(
            in_generation(&layout, 0).len(),
            ProjectionName::ALL.len() - 1
        );
        assert_eq!(layout.next_generation(), 3);
        assert_eq!(Layout::decode(&layout.encode()).ok(), Some(layout));
    }
}

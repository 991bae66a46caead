//! The DynamoDB counters the service exposes in `/metrics` (requests by operation, capacity
//! units by table, index and kind), read from the Prometheus text, subtracted and scaled; and
//! what the idle service keeps doing, so a settled service can be told from a busy one.

use std::collections::{BTreeMap, BTreeSet};

use inventory_service::metrics::{
    DYNAMODB_CAPACITY as UNITS, DYNAMODB_REQUESTS as REQUESTS, OUTBOX_DEPTH,
};

/// Capacity units of one table or index (`index` empty for the table itself).
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct UnitKey {
    pub table: String,
    pub index: String,
    /// `read` or `write`.
    pub kind: String,
}

/// The DynamoDB counters of one scrape (or a difference of two, or per command).
#[derive(Clone, Debug, Default)]
pub struct Counters {
    /// Requests by operation (`TransactWriteItems`, `Query`, ...).
    pub requests: BTreeMap<String, f64>,
    pub units: BTreeMap<UnitKey, f64>,
    pub outbox_depth: Option<f64>,
}

impl Counters {
    /// Reads the counters from Prometheus text; table names lose the instance's `prefix`.
    pub fn parse(text: &str, prefix: &str) -> Self {
        let mut counters = Self::default();
        for line in text.lines() {
            let Some((name, labels, value)) = parse_sample(line) else {
                continue;
            };
            let label = |key: &str| {
                labels
                    .iter()
                    .find(|(k, _)| k == key)
                    .map(|(_, v)| v.clone())
                    .unwrap_or_default()
            };
            match name {
                REQUESTS => {
                    *counters.requests.entry(label("operation")).or_default() += value;
                }
                UNITS => {
                    let table = label("table");
                    let key = UnitKey {
                        table: table.strip_prefix(prefix).unwrap_or(&table).to_owned(),
                        index: label("index"),
                        kind: label("kind"),
                    };
                    *counters.units.entry(key).or_default() += value;
                }
                OUTBOX_DEPTH => counters.outbox_depth = Some(value),
                _ => {}
            }
        }
        counters
    }

    /// `self − earlier`, figure by figure (the gauge is `self`'s).
    pub fn minus(&self, earlier: &Counters) -> Counters {
        let mut out = self.clone();
        for (op, v) in &earlier.requests {
            *out.requests.entry(op.clone()).or_default() -= v;
        }
        for (key, v) in &earlier.units {
            *out.units.entry(key.clone()).or_default() -= v;
        }
        out
    }

    pub fn scaled(&self, factor: f64) -> Counters {
        Counters {
            requests: self
                .requests
                .iter()
                .map(|(k, v)| (k.clone(), v * factor))
                .collect(),
            units: self
                .units
                .iter()
                .map(|(k, v)| (k.clone(), v * factor))
                .collect(),
            outbox_depth: self.outbox_depth,
        }
    }

    pub fn requests_total(&self) -> f64 {
        self.requests.values().sum()
    }

    /// Capacity units of one kind (`read`, `write`), or all with `None`.
    pub fn units_total(&self, kind: Option<&str>) -> f64 {
        // `+ 0.0`: an empty f64 sum is -0.0, which prints as "-0.00".
        self.units
            .iter()
            .filter(|(k, _)| kind.is_none_or(|kind| k.kind == kind))
            .map(|(_, v)| v)
            .sum::<f64>()
            + 0.0
    }

    /// Every unit says whether it was a read or a write.
    pub fn kinds_known(&self) -> bool {
        self.units.keys().all(|k| !k.kind.is_empty())
    }

    /// The requests and units of the operations, tables and indexes that the idle service
    /// does not touch: they change only while work is going on.
    pub fn work(&self, noise: &Noise) -> f64 {
        let requests: f64 = self
            .requests
            .iter()
            .filter(|(op, _)| !noise.operations.contains(*op))
            .map(|(_, v)| v)
            .sum();
        let units: f64 = self
            .units
            .iter()
            .filter(|(key, _)| !noise.units.contains(*key))
            .map(|(_, v)| v)
            .sum();
        requests + units
    }

    /// Units per table (indexes included), for the short breakdown.
    pub fn units_by_table(&self) -> BTreeMap<String, f64> {
        let mut out = BTreeMap::new();
        for (key, v) in &self.units {
            *out.entry(key.table.clone()).or_insert(0.0) += v;
        }
        out
    }
}

/// What the idle service keeps doing (the relay's sweeps of the outbox, its lease renewals):
/// the operations and the tables or indexes it touches.
#[derive(Debug, Default)]
pub struct Noise {
    operations: BTreeSet<String>,
    units: BTreeSet<UnitKey>,
}

impl Noise {
    /// The idle service calls this operation.
    pub fn touches(&self, operation: &str) -> bool {
        self.operations.contains(operation)
    }

    pub fn of(idle: &Counters) -> Self {
        Self {
            operations: idle
                .requests
                .iter()
                .filter(|(_, v)| **v > 0.0)
                .map(|(op, _)| op.clone())
                .collect(),
            units: idle
                .units
                .iter()
                .filter(|(_, v)| **v > 0.0)
                .map(|(key, _)| key.clone())
                .collect(),
        }
    }
}

/// A metric's name, labels and value.
type Sample<'a> = (&'a str, Vec<(String, String)>, f64);

/// One sample line of the Prometheus text format.
fn parse_sample(line: &str) -> Option<Sample<'_>> {
    let line = line.trim();
    if line.is_empty() || line.starts_with('#') {
        return None;
    }
    let (name, rest) = match line.find('{') {
        Some(open) => (&line[..open], &line[open + 1..]),
        None => {
            let (name, value) = line.split_once(' ')?;
            return Some((name, vec![], first_number(value)?));
        }
    };
    let mut labels = Vec::new();
    let mut chars = rest.char_indices().peekable();
    loop {
        let (start, c) = chars.next()?;
        if c == '}' {
            return Some((name, labels, first_number(&rest[start + 1..])?));
        }
        if c == ',' || c == ' ' {
            continue;
        }
        // key="value"
        let mut key = String::from(c);
        loop {
            let (_, c) = chars.next()?;
            if c == '=' {
                break;
            }
            key.push(c);
        }
        if chars.next()?.1 != '"' {
            return None;
        }
        let mut value = String::new();
        loop {
            match chars.next()?.1 {
                '"' => break,
                '\\' => match chars.next()?.1 {
                    'n' => value.push('\n'),
                    other => value.push(other),
                },
                other => value.push(other),
            }
        }
        labels.push((key, value));
    }
}

fn first_number(text: &str) -> Option<f64> {
    text.split_whitespace().next()?.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_counters_from_prometheus_text() {
        let text = r#"# TYPE inventory_dynamodb_requests_total counter
inventory_dynamodb_requests_total{operation="TransactWriteItems"} 12
inventory_dynamodb_requests_total{operation="Query"} 3
inventory_dynamodb_capacity_units_total{table="b_projection_items",index="by_sku",kind="write"} 2.5
inventory_dynamodb_capacity_units_total{table="b_projection_items",index="",kind="write"} 1
inventory_outbox_depth 0
inventory_commands_total{mutation="a\"b",outcome="ok"} 7
"#;
        let c = Counters::parse(text, "b_");
        assert_eq!(c.requests.get("TransactWriteItems"), Some(&12.0));
        assert_eq!(c.requests_total(), 15.0);
        assert_eq!(c.units_total(Some("write")), 3.5);
        assert_eq!(c.units_by_table().get("projection_items"), Some(&3.5));
        assert_eq!(c.outbox_depth, Some(0.0));
        let mut idle = Counters::default();
        idle.requests.insert("Query".into(), 1.0);
        assert_eq!(c.work(&Noise::of(&idle)), 12.0 + 3.5);
    }
}

//! The cost section's figures: per command kind, requests and capacity units net of the idle
//! background, priced at DynamoDB's on-demand rates; printed as a table and written as JSON.

use serde_json::{json, Value};
use std::time::Duration;

use inventory_service::store::dynamodb::{DEFAULT_OUTBOX_LEASE, DEFAULT_OUTBOX_SHARDS};

use super::counters::Counters;

/// DynamoDB on-demand prices, US East (N. Virginia), as of writing: dollars per million
/// write request units and per million read request units. They may change; see
/// <https://aws.amazon.com/dynamodb/pricing/on-demand/>. One consumed WCU is one write request
/// unit and one consumed RCU one read request unit, so capacity units price directly.
pub const DOLLARS_PER_MILLION_WRITE_UNITS: f64 = 0.625;
pub const DOLLARS_PER_MILLION_READ_UNITS: f64 = 0.125;
/// 30 days.
const SECONDS_PER_MONTH: f64 = 30.0 * 86_400.0;

/// The cost of one command kind, per command.
#[derive(Clone, Debug)]
pub struct CommandCost {
    /// `inventoryAdjust`, ..., or `rawAppend` for the baseline.
    pub key: String,
    pub label: String,
    /// Commands applied in the measured window (failed ones are not counted).
    pub commands: usize,
    pub failures: usize,
    pub window_seconds: f64,
    /// Per command, net of the idle background.
    pub per_command: Counters,
    /// The idle background subtracted, per command.
    pub background: Counters,
}

impl CommandCost {
    /// From the difference of two scrapes `window` apart and the idle rate per second.
    pub fn new(
        key: &str,
        label: &str,
        commands: usize,
        failures: usize,
        delta: &Counters,
        background_per_second: &Counters,
        window: Duration,
    ) -> Self {
        let background = background_per_second.scaled(window.as_secs_f64());
        let per = 1.0 / commands.max(1) as f64;
        Self {
            key: key.into(),
            label: label.into(),
            commands,
            failures,
            window_seconds: window.as_secs_f64(),
            per_command: delta.minus(&background).scaled(per),
            background: background.scaled(per),
        }
    }

    pub fn requests(&self) -> f64 {
        self.per_command.requests_total()
    }

    pub fn units(&self) -> f64 {
        self.per_command.units_total(None)
    }

    /// On-demand dollars per million commands. Units whose kind is not known are priced as
    /// writes (an upper bound).
    pub fn dollars_per_million(&self) -> f64 {
        let all = self.per_command.units_total(None);
        let read = self.per_command.units_total(Some("read"));
        (all - read) * DOLLARS_PER_MILLION_WRITE_UNITS + read * DOLLARS_PER_MILLION_READ_UNITS
    }

    pub fn json(&self) -> Value {
        let c = &self.per_command;
        json!({
            "command": self.key,
            "label": self.label,
            "commands": self.commands,
            "failures": self.failures,
            "windowSeconds": self.window_seconds,
            "requestsPerCommand": c.requests_total(),
            "requestsByOperation": c.requests,
            "unitsPerCommand": c.units_total(None),
            "writeUnitsPerCommand": c.units_total(Some("write")),
            "readUnitsPerCommand": c.units_total(Some("read")),
            "unitsByTable": c.units_by_table(),
            "units": c.units.iter().map(|(k, v)| json!({ "table": k.table, "index": k.index,
                "kind": k.kind, "perCommand": v })).collect::<Vec<_>>(),
            "dollarsPerMillionCommands": self.dollars_per_million(),
            "backgroundSubtracted": { "requestsPerCommand": self.background.requests_total(),
                "unitsPerCommand": self.background.units_total(None) },
        })
    }
}

/// The cost section of a run.
pub struct CostReport {
    pub kinds: Vec<CommandCost>,
    /// One single-event `TransactWriteItems` on a bare events table, measured in-process.
    pub baseline: Option<CommandCost>,
    pub background_per_second: Counters,
    /// Figures that could not be trusted (a read model not caught up, no capacity reported).
    pub problems: Vec<String>,
}

impl CostReport {
    pub fn get(&self, key: &str) -> Option<&CommandCost> {
        self.kinds
            .iter()
            .chain(&self.baseline)
            .find(|c| c.key == key)
    }

    /// No command failed.
    pub fn passed(&self) -> bool {
        self.kinds.iter().all(|c| c.failures == 0)
    }

    pub fn print(&self) {
        let raw = self.baseline.as_ref().map(CommandCost::units);
        println!(
            "\ncost per command (sequential, consumed capacity as the endpoint reports it, net of the idle background)"
        );
        println!(
            "| {:<28} | {:>5} | {:>8} | {:>8} | {:>7} | {:>7} | {:>11} | {:>6} |",
            "command", "n", "requests", "units", "write", "read", "$ / million", "× raw"
        );
        println!(
            "|{:-<30}|{:->7}|{:->10}|{:->10}|{:->9}|{:->9}|{:->13}|{:->8}|",
            "", "", "", "", "", "", "", ""
        );
        for cost in self.kinds.iter().chain(&self.baseline) {
            let times_raw = match raw {
                Some(raw) if raw > 0.0 => format!("{:.1}", cost.units() / raw),
                _ => "-".into(),
            };
            let kind = |kind: &str| {
                if cost.per_command.kinds_known() {
                    format!("{:.2}", cost.per_command.units_total(Some(kind)))
                } else {
                    "-".into()
                }
            };
            println!(
                "| {:<28} | {:>5} | {:>8.2} | {:>8.2} | {:>7} | {:>7} | {:>11.2} | {:>6} |",
                cost.label,
                cost.commands,
                cost.requests(),
                cost.units(),
                kind("write"),
                kind("read"),
                cost.dollars_per_million(),
                times_raw,
            );
        }
        for cost in self.kinds.iter().chain(&self.baseline) {
            println!("\n  {}", cost.key);
            let ops: Vec<String> = cost
                .per_command
                .requests
                .iter()
                .filter(|(_, v)| v.abs() >= 0.005)
                .map(|(op, v)| format!("{op} {v:.2}"))
                .collect();
            println!("    requests: {}", ops.join(", "));
            let mut tables: Vec<(String, f64)> =
                cost.per_command.units_by_table().into_iter().collect();
            tables.sort_by(|a, b| b.1.total_cmp(&a.1));
            for (table, total) in tables {
                if total.abs() < 0.005 {
                    continue;
                }
                let parts: Vec<String> = cost
                    .per_command
                    .units
                    .iter()
                    .filter(|(k, v)| k.table == table && v.abs() >= 0.005)
                    .map(|(k, v)| {
                        let index = if k.index.is_empty() {
                            "table"
                        } else {
                            &k.index
                        };
                        if k.kind.is_empty() {
                            format!("{index} {v:.2}")
                        } else {
                            format!("{index} {} {v:.2}", k.kind)
                        }
                    })
                    .collect();
                println!(
                    "    {:<24} {total:>6.2}  ({})",
                    short_table(&table),
                    parts.join(", ")
                );
            }
            if cost.background.requests_total() > 0.0 {
                println!(
                    "    idle background subtracted: {:.2} requests, {:.2} units per command ({:.1} s window)",
                    cost.background.requests_total(),
                    cost.background.units_total(None),
                    cost.window_seconds
                );
            }
        }
        let bg = &self.background_per_second;
        println!(
            "\n  idle background: {:.1} requests/s ({}), {:.2} units/s",
            bg.requests_total(),
            bg.requests
                .iter()
                .filter(|(_, v)| **v > 0.0)
                .map(|(op, v)| format!("{op} {v:.1}"))
                .collect::<Vec<_>>()
                .join(", "),
            bg.units_total(None)
        );
        // Kept out of the windows by a long lease; with the default one each shard's lease
        // is renewed (one conditional PutItem, one write unit) every third of it.
        let renewals = f64::from(DEFAULT_OUTBOX_SHARDS) * 3.0 / DEFAULT_OUTBOX_LEASE.as_secs_f64();
        println!(
            "  not in the figures: outbox lease renewals, with the default {} shards and {} s lease {renewals:.1} PutItem/s per instance (≈ ${:.2} a month at the write price)",
            DEFAULT_OUTBOX_SHARDS,
            DEFAULT_OUTBOX_LEASE.as_secs_f64(),
            renewals * SECONDS_PER_MONTH * DOLLARS_PER_MILLION_WRITE_UNITS / 1e6
        );
        println!(
            "  prices: ${DOLLARS_PER_MILLION_WRITE_UNITS} per million write units, ${DOLLARS_PER_MILLION_READ_UNITS} per million read units (on-demand, US East, as of writing)"
        );
        for problem in &self.problems {
            println!("  WARNING: {problem}");
        }
    }

    pub fn json(&self) -> Value {
        let bg = &self.background_per_second;
        json!({
            "prices": { "dollarsPerMillionWriteUnits": DOLLARS_PER_MILLION_WRITE_UNITS,
                "dollarsPerMillionReadUnits": DOLLARS_PER_MILLION_READ_UNITS,
                "note": "DynamoDB on-demand, US East, as of writing; may change" },
            "kinds": self.kinds.iter().map(CommandCost::json).collect::<Vec<_>>(),
            "baseline": self.baseline.as_ref().map(CommandCost::json),
            "idleBackgroundPerSecond": { "requests": bg.requests_total(),
                "requestsByOperation": bg.requests, "units": bg.units_total(None),
                "excludes": "outbox lease renewals (the measured service holds 1 h leases)" },
            "problems": self.problems,
            "passed": self.passed(),
        })
    }
}

/// `projection_items` → `items`, `inventory_outbox` → `outbox`; generations keep their `gN_`.
fn short_table(table: &str) -> String {
    table.replace("projection_", "").replace("inventory_", "")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn per_command_is_net_of_background() {
        let mut delta = Counters::default();
        delta.requests.insert("Query".into(), 30.0);
        delta.requests.insert("TransactWriteItems".into(), 10.0);
        let mut background = Counters::default();
        background.requests.insert("Query".into(), 5.0);
        let cost = CommandCost::new("x", "x", 10, 0, &delta, &background, Duration::from_secs(2));
        assert_eq!(cost.per_command.requests.get("Query"), Some(&2.0));
        assert_eq!(cost.requests(), 3.0);
        assert_eq!(cost.background.requests_total(), 1.0);
    }
}

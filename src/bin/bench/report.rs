//! The run's report: the table of medians, the ratios to the baselines, each target with
//! PASS/FAIL, and every figure of every repeat as JSON for scripts to compare.

use serde_json::{json, Value};
use std::time::Duration;

use crate::cost::CostReport;
use crate::stats::Row;
use crate::Args;

pub struct Target {
    name: String,
    value: Option<f64>,
    pass: Option<bool>,
}

pub struct Report {
    store: String,
    bus: String,
    quick: bool,
    seconds: f64,
    runs: Vec<Vec<Row>>,
    medians: Vec<Row>,
    ratios: Vec<(&'static str, Option<f64>)>,
    targets: Vec<Target>,
    /// What a command costs (DynamoDB only).
    cost: Option<CostReport>,
}

/// Figures shown in their own columns; the rest go to the last column as `name=value`.
const COLUMNS: [&str; 7] = [
    "opsPerSec",
    "p50Ms",
    "p99Ms",
    "maxMs",
    "failures",
    "conflicts",
    "rejections",
];

impl Report {
    pub fn new(
        args: &Args,
        runs: &[Vec<Row>],
        medians: Vec<Row>,
        cost: Option<CostReport>,
        elapsed: Duration,
    ) -> Self {
        let figures = Figures {
            medians: &medians,
            cost: cost.as_ref(),
        };
        let ratios = figures.ratios();
        let targets = figures.targets(&args.store, &ratios);
        Self {
            store: args.store.clone(),
            bus: args.bus.clone(),
            quick: args.quick,
            seconds: elapsed.as_secs_f64(),
            runs: runs.to_vec(),
            medians,
            ratios,
            targets,
            cost,
        }
    }

    pub fn checks_passed(&self) -> bool {
        self.medians
            .iter()
            .all(|r| !matches!(r.check, Some(Err(_))))
            && self.cost.as_ref().is_none_or(CostReport::passed)
    }

    pub fn print(&self) {
        println!(
            "\nservice benchmark: store {}, bus {}, {} repeat(s){}, medians; {:.0}s in all",
            self.store,
            self.bus,
            self.runs.len(),
            if self.quick { ", --quick" } else { "" },
            self.seconds
        );
        println!(
            "| {:<46} | {:>9} | {:>8} | {:>8} | {:>8} | {:>5} | {:>5} | {:>5} | {:<5} | other",
            "scenario", "ops/s", "p50 ms", "p99 ms", "max ms", "fail", "confl", "rej", "check"
        );
        println!(
            "|{:-<48}|{:->11}|{:->10}|{:->10}|{:->10}|{:->7}|{:->7}|{:->7}|{:-<7}|------",
            "", "", "", "", "", "", "", "", ""
        );
        for row in &self.medians {
            let cell = |name: &str, width: usize, digits: usize| match row.get(name) {
                Some(v) if v.is_finite() => format!("{v:>width$.digits$}"),
                _ => format!("{:>width$}", "-"),
            };
            let check = match &row.check {
                None => "-",
                Some(Ok(())) => "ok",
                Some(Err(_)) => "FAIL",
            };
            let other: Vec<String> = row
                .figures
                .iter()
                .filter(|(name, _)| !COLUMNS.contains(&name.as_str()))
                .map(|(name, value)| format!("{name}={}", short(*value)))
                .collect();
            println!(
                "| {:<46} | {} | {} | {} | {} | {} | {} | {} | {:<5} | {}",
                row.label,
                cell("opsPerSec", 9, 1),
                cell("p50Ms", 8, 2),
                cell("p99Ms", 8, 2),
                cell("maxMs", 8, 2),
                cell("failures", 5, 0),
                cell("conflicts", 5, 0),
                cell("rejections", 5, 0),
                check,
                other.join(" ")
            );
            if let Some(Err(reason)) = &row.check {
                println!("|   check failed: {reason}");
            }
        }
        if let Some(cost) = &self.cost {
            cost.print();
        }
        println!("\nratios");
        for (name, value) in &self.ratios {
            if let Some(value) = value {
                println!("  {name:<34} {value:.3}");
            }
        }
        println!("\ntargets");
        for target in &self.targets {
            let verdict = match target.pass {
                Some(true) => "PASS",
                Some(false) => "FAIL",
                None => "n/a ",
            };
            let value = target.value.map(short).unwrap_or_else(|| "-".into());
            println!("  {verdict}  {:<52} {value}", target.name);
        }
    }

    pub fn json(&self) -> Value {
        let rows = |rows: &[Row]| -> Value {
            rows.iter()
                .map(|r| {
                    json!({ "key": r.key, "label": r.label, "figures": r.figures,
                        "check": match &r.check { None => Value::Null, Some(Ok(())) => json!("ok"),
                            Some(Err(e)) => json!({ "failed": e }) } })
                })
                .collect()
        };
        json!({
            "benchmark": "service",
            "store": self.store,
            "bus": self.bus,
            "quick": self.quick,
            "repeat": self.runs.len(),
            "cpus": std::thread::available_parallelism().map(|n| n.get()).unwrap_or(0),
            "seconds": self.seconds,
            "medians": rows(&self.medians),
            "runs": self.runs.iter().map(|r| rows(r.as_slice())).collect::<Vec<_>>(),
            "ratios": self.ratios.iter().map(|(n, v)| (n.to_string(), json!(v))).collect::<serde_json::Map<_, _>>(),
            "targets": self.targets.iter().map(|t| json!({ "target": t.name, "value": t.value, "pass": t.pass })).collect::<Vec<_>>(),
            "cost": self.cost.as_ref().map(CostReport::json),
            "checksPassed": self.checks_passed(),
        })
    }
}

fn short(value: f64) -> String {
    if value.fract() == 0.0 && value.abs() < 1e12 {
        format!("{value:.0}")
    } else if value.abs() >= 100.0 {
        format!("{value:.1}")
    } else {
        format!("{value:.3}")
    }
}

/// The medians and costs of one run, read by name.
struct Figures<'a> {
    medians: &'a [Row],
    cost: Option<&'a CostReport>,
}

type Ratios = Vec<(&'static str, Option<f64>)>;

fn ratio(a: Option<f64>, b: Option<f64>) -> Option<f64> {
    match (a, b) {
        (Some(a), Some(b)) if b > 0.0 => Some(a / b),
        _ => None,
    }
}

fn at_least(name: &str, value: Option<f64>, limit: f64) -> Target {
    Target {
        name: name.into(),
        value,
        pass: value.map(|v| v >= limit),
    }
}

fn at_most(name: &str, value: Option<f64>, limit: f64) -> Target {
    Target {
        name: name.into(),
        value,
        pass: value.map(|v| v <= limit),
    }
}

impl Figures<'_> {
    fn figure(&self, key: &str, name: &str) -> Option<f64> {
        self.medians
            .iter()
            .find(|r| r.key == key)
            .and_then(|r| r.get(name))
    }

    fn ops(&self, key: &str) -> Option<f64> {
        self.figure(key, "opsPerSec")
    }

    fn per_command(&self, key: &str, figure: fn(&crate::cost::CommandCost) -> f64) -> Option<f64> {
        self.cost.and_then(|c| c.get(key)).map(figure)
    }

    fn units(&self, key: &str) -> Option<f64> {
        self.per_command(key, crate::cost::CommandCost::units)
    }

    /// p50 at the largest prior history over p50 at the smallest (scenario 6).
    fn latency_ratio(&self) -> Option<f64> {
        let sizes: Vec<u64> = self
            .medians
            .iter()
            .filter_map(|r| r.key.strip_prefix("s6_prior_"))
            .filter_map(|s| s.parse().ok())
            .collect();
        let p50_at =
            |size: Option<&u64>| size.and_then(|s| self.figure(&format!("s6_prior_{s}"), "p50Ms"));
        ratio(p50_at(sizes.iter().max()), p50_at(sizes.iter().min()))
    }

    /// The worse of the two subscriptions' lag figures.
    fn lag(&self, name: &str) -> Option<f64> {
        let a = self.figure("s5_lag_item_changed", name);
        let b = self.figure("s5_lag_low_stock", name);
        match (a, b) {
            (Some(a), Some(b)) => Some(a.max(b)),
            (a, b) => a.or(b),
        }
    }

    fn ratios(&self) -> Ratios {
        let ops = |key: &str| self.ops(key);
        let mut ratios = vec![
            (
                "s1_over_raw_dynamodb_sequential",
                ratio(ops("s1_sequential_adjust"), ops("raw_dynamodb_sequential")),
            ),
            (
                "s2_over_raw_dynamodb_16",
                ratio(ops("s2_concurrent_adjust"), ops("raw_dynamodb_16")),
            ),
            (
                "s3_over_raw_dynamodb_sequential",
                ratio(ops("s3_hot_item"), ops("raw_dynamodb_sequential")),
            ),
            (
                "s1_over_floor_1",
                ratio(ops("s1_sequential_adjust"), ops("floor_c1")),
            ),
            (
                "s2_over_floor_16",
                ratio(ops("s2_concurrent_adjust"), ops("floor_c16")),
            ),
            (
                "s3_over_floor_32",
                ratio(ops("s3_hot_item"), ops("floor_c32")),
            ),
            (
                "s1_over_raw_sqlite",
                ratio(ops("s1_sequential_adjust"), ops("raw_sqlite_sequential")),
            ),
            ("s6_p50_largest_over_smallest", self.latency_ratio()),
            (
                "s9_rows_over_s1_commands",
                ratio(
                    self.figure("s9_bulk_adjust", "rowsPerSec"),
                    ops("s1_sequential_adjust"),
                ),
            ),
        ];
        if self.cost.is_some() {
            ratios.extend([
                (
                    "cost_adjust_units_over_raw_append",
                    ratio(self.units("inventoryAdjust"), self.units("rawAppend")),
                ),
                (
                    "cost_allocate_units_over_raw_append",
                    ratio(self.units("allocationCreate"), self.units("rawAppend")),
                ),
            ]);
        }
        ratios
    }

    fn targets(&self, store: &str, ratios: &Ratios) -> Vec<Target> {
        let get = |name: &str| {
            ratios
                .iter()
                .find(|(n, _)| *n == name)
                .and_then(|(_, v)| *v)
        };
        let mut targets = vec![at_most(
            "3. hot item: failed or conflicted commands = 0",
            self.figure("s3_hot_item", "failures"),
            0.0,
        )];
        if store == "dynamodb" {
            targets.extend([
                at_least(
                    "1. sequential ≥ 0.75 × raw sequential appends",
                    get("s1_over_raw_dynamodb_sequential"),
                    0.75,
                ),
                at_least(
                    "2. 16 clients ≥ 0.75 × raw 16-way appends",
                    get("s2_over_raw_dynamodb_16"),
                    0.75,
                ),
                at_least(
                    "3. hot item ≥ 1.0 × raw sequential appends",
                    get("s3_over_raw_dynamodb_sequential"),
                    1.0,
                ),
                at_most(
                    "6. p50 at largest history ≤ 1.2 × p50 at smallest",
                    self.latency_ratio(),
                    1.2,
                ),
                at_most(
                    "cost: inventoryAdjust ≤ 8 capacity units / command",
                    self.units("inventoryAdjust"),
                    8.0,
                ),
                at_most(
                    "cost: inventoryAdjust ≤ 3 requests / command",
                    self.per_command("inventoryAdjust", crate::cost::CommandCost::requests),
                    3.0,
                ),
                at_most(
                    "cost: allocationCreate ≤ 14 capacity units / command",
                    self.units("allocationCreate"),
                    14.0,
                ),
            ]);
        } else {
            targets.extend([
                at_least(
                    "3. hot item ≥ 0.5 × framework floor at 32",
                    get("s3_over_floor_32"),
                    0.5,
                ),
                at_most(
                    "5. lag p99 ≤ 50 ms (worse subscription)",
                    self.lag("p99Ms"),
                    50.0,
                ),
                at_most(
                    "5. lag p50 ≤ 5 ms (worse subscription)",
                    self.lag("p50Ms"),
                    5.0,
                ),
                at_most(
                    "8. service RSS ≤ 200 MB",
                    self.figure("s8_memory", "rssMb"),
                    200.0,
                ),
            ]);
        }
        targets
    }
}

//! Figures: one row per scenario or baseline, holding named numbers (throughput, latency
//! percentiles, counts) and the result of its correctness check; medians over repeats.

use serde::Serialize;
use std::collections::BTreeMap;
use std::time::Duration;

/// One line of the table and of the JSON file.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Row {
    /// Stable key for scripts, e.g. `s1_sequential_adjust`.
    pub key: String,
    /// What the row measures, as printed.
    pub label: String,
    /// Named figures: `opsPerSec`, `p50Ms`, `p99Ms`, `maxMs`, `ops`, `failures`, ...
    pub figures: BTreeMap<String, f64>,
    /// The correctness check after the scenario: None when it has none, `Ok` or the reasons.
    pub check: Option<Result<(), String>>,
}

impl Row {
    pub fn new(key: &str, label: &str) -> Self {
        Self {
            key: key.into(),
            label: label.into(),
            figures: BTreeMap::new(),
            check: None,
        }
    }

    pub fn set(&mut self, name: &str, value: f64) -> &mut Self {
        self.figures.insert(name.into(), value);
        self
    }

    pub fn get(&self, name: &str) -> Option<f64> {
        self.figures.get(name).copied()
    }

    /// Sets p50/p99/max (ms) from a list of latencies.
    pub fn latencies(&mut self, latencies: &mut [Duration]) -> &mut Self {
        if latencies.is_empty() {
            return self;
        }
        latencies.sort();
        self.set("p50Ms", percentile(latencies, 0.50));
        self.set("p99Ms", percentile(latencies, 0.99));
        self.set("maxMs", percentile(latencies, 1.0));
        self
    }

    /// Sets p50/p99/max (ms) from signed millisecond samples (lags may be negative when the
    /// subscription message overtakes the HTTP response).
    pub fn samples_ms(&mut self, samples: &mut [f64]) -> &mut Self {
        if samples.is_empty() {
            return self;
        }
        samples.sort_by(f64::total_cmp);
        let at = |p: f64| samples[(((samples.len() - 1) as f64) * p).round() as usize];
        self.set("p50Ms", at(0.50));
        self.set("p99Ms", at(0.99));
        self.set("maxMs", at(1.0));
        self
    }
}

pub fn percentile(sorted: &[Duration], p: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let index = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[index.min(sorted.len() - 1)].as_secs_f64() * 1_000.0
}

fn median(values: &mut [f64]) -> f64 {
    values.sort_by(f64::total_cmp);
    let n = values.len();
    if n % 2 == 1 {
        values[n / 2]
    } else {
        (values[n / 2 - 1] + values[n / 2]) / 2.0
    }
}

/// The median of every figure over the repeats, row by row (rows matched by key, in the order
/// of the first repeat). A check fails if it failed in any repeat.
pub fn medians(runs: &[Vec<Row>]) -> Vec<Row> {
    let Some(first) = runs.first() else {
        return vec![];
    };
    let mut out = Vec::new();
    for template in first {
        let same: Vec<&Row> = runs
            .iter()
            .filter_map(|run| run.iter().find(|r| r.key == template.key))
            .collect();
        let mut row = Row::new(&template.key, &template.label);
        for name in template.figures.keys() {
            let mut values: Vec<f64> = same.iter().filter_map(|r| r.get(name)).collect();
            row.set(name, median(&mut values));
        }
        let checks: Vec<&Result<(), String>> =
            same.iter().filter_map(|r| r.check.as_ref()).collect();
        if !checks.is_empty() {
            let failures: Vec<String> = checks
                .iter()
                .filter_map(|c| c.as_ref().err().cloned())
                .collect();
            row.check = Some(if failures.is_empty() {
                Ok(())
            } else {
                Err(failures.join("; "))
            });
        }
        out.push(row);
    }
    out
}

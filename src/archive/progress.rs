//! Progress on standard error for long commands: how many done, the rate, the time left (when
//! a total is known), at most once a second and once at the end.

use std::time::{Duration, Instant};

pub struct Progress {
    what: &'static str,
    unit: &'static str,
    total: Option<u64>,
    started: Instant,
    last: Instant,
}

impl Progress {
    pub fn new(what: &'static str, unit: &'static str, total: Option<u64>) -> Self {
        let now = Instant::now();
        Self {
            what,
            unit,
            total,
            started: now,
            last: now,
        }
    }

    pub fn set_total(&mut self, total: u64) {
        self.total = Some(total);
    }

    pub fn rate(&self, done: u64) -> f64 {
        done as f64 / self.started.elapsed().as_secs_f64().max(1e-6)
    }

    pub fn seconds(&self) -> f64 {
        self.started.elapsed().as_secs_f64()
    }

    /// Reports `done` if a second has passed since the last report.
    pub fn tick(&mut self, done: u64) {
        if self.last.elapsed() >= Duration::from_secs(1) {
            self.report(done);
        }
    }

    pub fn report(&mut self, done: u64) {
        self.last = Instant::now();
        let rate = self.rate(done);
        let (of, left) = match self.total {
            Some(total) if total >= done => {
                let left = if rate > 0.0 {
                    format!("{:.0} s", (total - done) as f64 / rate)
                } else {
                    "unknown".to_owned()
                };
                (format!(" of {total}"), left)
            }
            _ => (String::new(), "unknown".to_owned()),
        };
        eprintln!(
            "{}: {done}{of} {}, {rate:.0} {}/s, time left {left}",
            self.what, self.unit, self.unit
        );
    }
}

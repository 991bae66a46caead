//! What one HTTP request (or one WebSocket operation) may still spend: cost and response bytes.
//! A batch's operations share one allowance, so a batch costs what one operation may, however
//! its cost is split. Responses are measured by serializing into a counter that stops at the
//! limit, so measuring a too-large answer allocates nothing more.

use async_graphql::{Response, ServerResult};
use std::io;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use super::{code, refusal, Limits};

/// The cost and bytes a request has left, shared by the operations of a batch.
#[derive(Debug)]
pub struct Allowance {
    limits: Limits,
    batch: bool,
    cost_left: AtomicUsize,
    bytes_left: AtomicUsize,
}

impl Allowance {
    /// One operation, held to the per-operation limits.
    pub fn single(limits: Limits) -> Arc<Self> {
        Arc::new(Self {
            limits,
            batch: false,
            cost_left: AtomicUsize::new(limits.max_complexity),
            bytes_left: AtomicUsize::new(limits.max_response_bytes),
        })
    }

    /// The operations of one batch: each held to the per-operation limits, all of them together
    /// to the batch's cost and to one response size.
    pub fn batch(limits: Limits) -> Arc<Self> {
        Arc::new(Self {
            limits,
            batch: true,
            cost_left: AtomicUsize::new(limits.max_batch_complexity),
            bytes_left: AtomicUsize::new(limits.max_response_bytes),
        })
    }

    pub fn limits(&self) -> &Limits {
        &self.limits
    }

    /// Refuses an operation whose cost is at least `floor` when less is left.
    pub(super) fn afford(&self, floor: usize) -> ServerResult<()> {
        if floor > self.cost_left.load(Ordering::Relaxed) {
            return Err(self.over_budget());
        }
        Ok(())
    }

    /// Takes `cost` from what is left, or refuses the operation.
    pub(super) fn spend(&self, cost: usize) -> ServerResult<()> {
        take(&self.cost_left, cost).map_err(|()| self.over_budget())
    }

    fn over_budget(&self) -> async_graphql::ServerError {
        if self.batch {
            refusal(
                code::BATCH_TOO_COMPLEX,
                format!(
                    "The batch is too complex: its operations cost more than {} together; \
                     send fewer or smaller operations.",
                    self.limits.max_batch_complexity
                ),
            )
        } else {
            super::too_complex(self.limits.max_complexity.saturating_add(1), &self.limits)
        }
    }

    /// The response as it is when it fits in the bytes left (which it then takes), else an
    /// error in its place.
    pub(super) fn fit(&self, response: Response) -> Response {
        let left = self.bytes_left.load(Ordering::Relaxed);
        match serialized_size(&response, left) {
            Some(size) if take(&self.bytes_left, size).is_ok() => response,
            _ => too_large(self.limits.max_response_bytes, self.batch),
        }
    }
}

/// The response, or an error in its place when it is larger than `max` bytes (one
/// subscription event).
pub(super) fn cut(response: Response, max: usize) -> Response {
    match serialized_size(&response, max) {
        Some(_) => response,
        None => too_large(max, false),
    }
}

fn too_large(max: usize, batch: bool) -> Response {
    let whose = if batch {
        "The batch's responses would be"
    } else {
        "The response would be"
    };
    Response::from_errors(vec![refusal(
        code::RESPONSE_TOO_LARGE,
        format!("{whose} larger than {max} bytes; ask for smaller pages or fewer fields."),
    )])
}

fn take(left: &AtomicUsize, amount: usize) -> Result<(), ()> {
    left.fetch_update(Ordering::Relaxed, Ordering::Relaxed, |left| {
        left.checked_sub(amount)
    })
    .map(|_| ())
    .map_err(|_| ())
}

/// The JSON size of a response, or `None` as soon as it passes `max`.
fn serialized_size(response: &Response, max: usize) -> Option<usize> {
    let mut counter = Counter { written: 0, max };
    serde_json::to_writer(&mut counter, response).ok()?;
    Some(counter.written)
}

struct Counter {
    written: usize,
    max: usize,
}

impl io::Write for Counter {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.written = self.written.saturating_add(buf.len());
        if self.written > self.max {
            return Err(io::Error::other("over the response size limit"));
        }
        Ok(buf.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use async_graphql::Value;

    fn response_of(bytes: usize) -> Response {
        Response::new(Value::String("x".repeat(bytes)))
    }

    #[test]
    fn a_response_over_the_limit_is_replaced_by_an_error() {
        let limits = Limits {
            max_response_bytes: 1_000,
            ..Limits::default()
        };
        let fits = Allowance::single(limits).fit(response_of(100));
        assert!(fits.errors.is_empty());
        let cut = Allowance::single(limits).fit(response_of(2_000));
        assert_eq!(cut.data, Value::Null);
        let code = cut.errors[0]
            .extensions
            .as_ref()
            .and_then(|e| e.get("code").cloned());
        assert_eq!(code, Some(Value::from(code::RESPONSE_TOO_LARGE)));
    }

    #[test]
    fn each_subscription_event_is_measured_on_its_own() {
        for _ in 0..3 {
            assert!(cut(response_of(900), 1_000).errors.is_empty());
        }
        assert_eq!(cut(response_of(1_000), 1_000).data, Value::Null);
    }

    #[test]
    fn a_batch_shares_its_bytes_and_cost() {
        let limits = Limits {
            max_response_bytes: 1_000,
            max_batch_complexity: 100,
            ..Limits::default()
        };
        let batch = Allowance::batch(limits);
        assert!(batch.fit(response_of(600)).errors.is_empty());
        assert!(!batch.fit(response_of(600)).errors.is_empty());
        assert!(batch.spend(60).is_ok());
        assert!(batch.afford(60).is_err());
        assert!(batch.spend(60).is_err());
        assert!(batch.spend(40).is_ok());
    }
}

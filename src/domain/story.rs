//! Given/when/then support for domain tests: fold a history of events into state.

use super::{Aggregate, Versioned};

/// The state after the given history, as the store would load it.
pub fn given<A: Aggregate>(events: &[A::Event]) -> Versioned<A> {
    let mut state = Versioned::<A>::default();
    for (index, event) in events.iter().enumerate() {
        state.apply(event, index as u64 + 1, 1_000 + index as i64);
    }
    state
}

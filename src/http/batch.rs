//! Counting a batch (a JSON array of requests) before reading it: a request becomes a struct of
//! a few hundred bytes once read, so a 1 MiB body of 20,000 tiny operations would take
//! megabytes just to be refused. The count keeps nothing and stops one past the limit.

/// How many elements a JSON array body holds, counted up to `max + 1` and keeping none of
/// them; `None` when the body is not an array (a single request, or not JSON).
pub fn length(body: &[u8], max: usize) -> Option<usize> {
    use serde::de::{Deserializer, IgnoredAny, SeqAccess, Visitor};
    use std::cell::Cell;

    struct Count<'a> {
        seen: &'a Cell<usize>,
        max: usize,
    }
    impl<'de> Visitor<'de> for Count<'_> {
        type Value = ();
        fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
            f.write_str("an array")
        }
        fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<(), A::Error> {
            while seq.next_element::<IgnoredAny>()?.is_some() {
                self.seen.set(self.seen.get() + 1);
                if self.seen.get() > self.max {
                    // Stopping here leaves the rest unread: the caller refuses the batch.
                    break;
                }
            }
            Ok(())
        }
    }

    let first = body.iter().find(|b| !b.is_ascii_whitespace())?;
    if *first != b'[' {
        return None;
    }
    let seen = Cell::new(0);
    // A malformed array is reported by the full read that follows; only the count matters.
    let _ = serde_json::Deserializer::from_slice(body).deserialize_seq(Count { seen: &seen, max });
    Some(seen.get())
}

#[cfg(test)]
mod tests {
    use super::length;

    #[test]
    fn a_batch_is_counted_up_to_one_past_the_limit() {
        let body = format!("[{}]", vec![r#"{"query":"{ a }"}"#; 50].join(","));
        assert_eq!(length(body.as_bytes(), 100), Some(50));
        assert_eq!(length(body.as_bytes(), 10), Some(11));
        assert_eq!(length(b"  []", 10), Some(0));
    }

    #[test]
    fn anything_but_an_array_is_not_a_batch() {
        assert_eq!(length(br#"{"query":"{ a }"}"#, 10), None);
        assert_eq!(length(b"", 10), None);
        // Malformed arrays are counted as far as they go; the full read reports them.
        assert_eq!(length(b"[{}, {", 10), Some(1));
    }
}

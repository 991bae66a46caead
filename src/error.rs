//! Reporting errors whole: every layer's error names what that layer was doing and keeps the
//! cause as its `source()`, so the full story is one walk down the chain. `Report` is that
//! walk, for the log; clients never see it (they get a code and a generic message).

use std::fmt;

/// Displays an error and each of its causes: "outer: inner: innermost".
pub struct Report<'a>(pub &'a (dyn std::error::Error + 'static));

impl fmt::Display for Report<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut last = self.0.to_string();
        write!(f, "{last}")?;
        let mut cause = self.0.source();
        while let Some(error) = cause {
            let text = error.to_string();
            // Some errors repeat their cause in their own message; say it once.
            if !last.contains(&text) {
                write!(f, ": {text}")?;
            }
            last = text;
            cause = error.source();
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, thiserror::Error)]
    #[error("outer")]
    struct Outer(#[source] std::io::Error);

    #[test]
    fn a_report_walks_the_chain() {
        let error = Outer(std::io::Error::other("disk gone"));
        assert_eq!(Report(&error).to_string(), "outer: disk gone");
    }
}

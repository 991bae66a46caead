//! Errors as clients see them: a stable `extensions.code`, `retryable` where a retry can
//! help, the request's correlation id, and a generic message — never a store's or a parser's
//! own text, which goes to the log whole (with its causes) under that correlation id.

use async_graphql::ErrorExtensions;

use crate::application::CommandError;
use crate::error::Report;
use crate::store::StoreError;

/// An infrastructure failure as a GraphQL error with a stable `extensions.code`.
///
/// The client gets a generic message and the code; what failed inside (a store's or a bus's
/// own error text) goes to the log only, under the request's correlation id, which
/// `prepare_errors` adds to every error the client sees.
pub fn infrastructure<E: std::error::Error + 'static>(error: E) -> async_graphql::Error {
    unavailable(&error)
}

fn unavailable(error: &(dyn std::error::Error + 'static)) -> async_graphql::Error {
    tracing::error!(cause = %Report(error), "infrastructure failure answering a request");
    async_graphql::Error::new(
        "the service could not complete the request (its store or bus is unavailable); retry later",
    )
    .extend_with(|_, e| {
        e.set("code", "SERVICE_UNAVAILABLE");
        e.set("retryable", true);
    })
}

/// A store failure as the client sees it: throttling is told apart (retry later, with the
/// same idempotency key); anything else is the generic `infrastructure` answer.
impl ErrorExtensions for StoreError {
    fn extend(&self) -> async_graphql::Error {
        match self {
            StoreError::Throttled { .. } => {
                tracing::warn!(cause = %Report(self), "a request was throttled");
                async_graphql::Error::new(
                    "the store is throttling requests; retry with the same idempotency key",
                )
                .extend_with(|_, e| {
                    e.set("code", "THROTTLED");
                    e.set("retryable", true);
                })
            }
            other => unavailable(other),
        }
    }
}

/// A command failure as a GraphQL error; a business-rule refusal normally travels as a
/// `userErrors` entry instead (`outcome`), and here keeps its code.
impl ErrorExtensions for CommandError {
    fn extend(&self) -> async_graphql::Error {
        match self {
            CommandError::Rejected(error) => {
                let code = error.code();
                async_graphql::Error::new(error.to_string()).extend_with(|_, e| e.set("code", code))
            }
            CommandError::Contention(attempts) => async_graphql::Error::new(format!(
                "the item is under heavy concurrent change; gave up after {attempts} attempts, retry with the same idempotency key"
            ))
            .extend_with(|_, e| {
                e.set("code", "CONTENTION");
                e.set("retryable", true);
            }),
            CommandError::Store(error) => error.extend(),
            CommandError::Denied(denied) => denied.extend(),
        }
    }
}

/// Readies a response's errors for the client: each gets the request's correlation id
/// (`extensions.correlationId`), so a client can quote it and an operator find the request in
/// the logs; a syntax error says where and what was expected without echoing the query back
/// (the parser quotes the offending line, which may be the whole query); no message is longer
/// than `MAX_ERROR_MESSAGE` characters.
pub fn prepare_errors(response: &mut async_graphql::Response, correlation_id: &str) {
    for error in &mut response.errors {
        if let Some(message) = without_source_echo(&error.message) {
            error.message = message;
        }
        if error.message.chars().count() > MAX_ERROR_MESSAGE {
            let kept: String = error.message.chars().take(MAX_ERROR_MESSAGE).collect();
            error.message = format!("{kept}…");
        }
        error
            .extensions
            .get_or_insert_with(Default::default)
            .set("correlationId", correlation_id);
    }
}

/// The longest error message a client gets.
const MAX_ERROR_MESSAGE: usize = 200;

/// A parser message (` --> line:column`, the quoted source line, `= expected …`) as one line
/// without the source.
fn without_source_echo(message: &str) -> Option<String> {
    let position = message.lines().next()?.trim().strip_prefix("--> ")?;
    let expected = message
        .lines()
        .map(str::trim)
        .find_map(|line| line.strip_prefix("= "));
    Some(match expected {
        Some(expected) => format!("syntax error at line:column {position}: {expected}"),
        None => format!("syntax error at line:column {position}"),
    })
}

/// A bad argument to a query, as a GraphQL error with `extensions.code = INVALID_INPUT`.
pub fn bad_argument(message: impl Into<String>) -> async_graphql::Error {
    async_graphql::Error::new(message.into()).extend_with(|_, e| e.set("code", "INVALID_INPUT"))
}

//! Every attribute name in every expression we send goes through `ExpressionAttributeNames`
//! (`#shard`, never `shard`): DynamoDB refuses a bare name that is one of its 573 reserved words
//! (`shard`, `status`, `day`, `name`...), and a lenient emulator accepts it, which once hid a
//! broken outbox relay. `bare_names` finds bare names in an expression; the `ExpressionCheck`
//! interceptor, on every client, refuses a request naming a reserved word bare before it leaves.

use aws_sdk_dynamodb::config::interceptors::BeforeTransmitInterceptorContextRef;
use aws_sdk_dynamodb::config::{ConfigBag, Intercept, RuntimeComponents};
use aws_sdk_dynamodb::error::BoxError;
use serde_json::Value;
use std::collections::HashSet;
use std::sync::{Arc, LazyLock, Mutex};

/// The request fields that hold expressions, at any depth (a transaction nests them).
const EXPRESSION_FIELDS: [&str; 5] = [
    "KeyConditionExpression",
    "FilterExpression",
    "ConditionExpression",
    "UpdateExpression",
    "ProjectionExpression",
];

/// Words of the expression grammar itself, which are not attribute names.
const KEYWORDS: [&str; 9] = [
    "AND", "OR", "NOT", "BETWEEN", "IN", "SET", "REMOVE", "ADD", "DELETE",
];

static RESERVED: LazyLock<HashSet<&'static str>> = LazyLock::new(|| {
    include_str!("reserved_words.txt")
        .lines()
        .map(str::trim)
        .filter(|line| !line.is_empty() && !line.starts_with('#'))
        .collect()
});

/// Whether DynamoDB reserves `word` (case-insensitive).
pub fn is_reserved(word: &str) -> bool {
    RESERVED.contains(word.to_ascii_uppercase().as_str())
}

/// The attribute names an expression uses bare, in order: every identifier that is not a
/// `#name` or `:value` placeholder, a keyword of the grammar or a function name.
pub fn bare_names(expression: &str) -> Vec<String> {
    let chars: Vec<char> = expression.chars().collect();
    let is_word = |c: char| c.is_ascii_alphanumeric() || c == '_';
    let mut found = Vec::new();
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        if c == '#' || c == ':' {
            i += 1;
            while i < chars.len() && is_word(chars[i]) {
                i += 1;
            }
        } else if c.is_ascii_alphabetic() || c == '_' {
            let start = i;
            while i < chars.len() && is_word(chars[i]) {
                i += 1;
            }
            let word: String = chars[start..i].iter().collect();
            let next = chars[i..].iter().find(|c| !c.is_whitespace());
            let function = next == Some(&'(');
            if !function && !KEYWORDS.contains(&word.to_ascii_uppercase().as_str()) {
                found.push(word);
            }
        } else {
            i += 1;
        }
    }
    found
}

/// One expression of one request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Expression {
    pub operation: String,
    pub field: String,
    pub text: String,
}

/// Every expression in a request body (a JSON document), however deeply nested.
pub fn expressions_in(body: &Value, operation: &str) -> Vec<Expression> {
    let mut found = Vec::new();
    collect(body, operation, &mut found);
    found
}

fn collect(value: &Value, operation: &str, found: &mut Vec<Expression>) {
    match value {
        Value::Object(fields) => {
            for (name, value) in fields {
                match value {
                    Value::String(text) if EXPRESSION_FIELDS.contains(&name.as_str()) => found
                        .push(Expression {
                            operation: operation.to_owned(),
                            field: name.clone(),
                            text: text.clone(),
                        }),
                    _ => collect(value, operation, found),
                }
            }
        }
        Value::Array(values) => values.iter().for_each(|v| collect(v, operation, found)),
        _ => {}
    }
}

/// The operation a request calls, from its `X-Amz-Target` (`DynamoDB_20120810.Query`).
pub(crate) fn operation_of(target: Option<&str>) -> String {
    target
        .and_then(|t| t.rsplit('.').next())
        .unwrap_or("unknown")
        .to_owned()
}

/// Refuses, before it is sent, a request whose expressions name a reserved word bare, with the
/// word and the expression in the error. Optionally records every expression it sees (tests).
#[derive(Debug, Default, Clone)]
pub struct ExpressionCheck {
    recorder: Option<Arc<Mutex<Vec<Expression>>>>,
}

impl ExpressionCheck {
    /// A check that also appends every expression it sees to `recorder`.
    pub fn recording(recorder: Arc<Mutex<Vec<Expression>>>) -> Self {
        Self {
            recorder: Some(recorder),
        }
    }
}

impl Intercept for ExpressionCheck {
    fn name(&self) -> &'static str {
        "ExpressionCheck"
    }

    fn read_before_transmit(
        &self,
        context: &BeforeTransmitInterceptorContextRef<'_>,
        _components: &RuntimeComponents,
        _cfg: &mut ConfigBag,
    ) -> Result<(), BoxError> {
        let request = context.request();
        let Some(bytes) = request.body().bytes() else {
            return Ok(());
        };
        let Ok(body) = serde_json::from_slice::<Value>(bytes) else {
            return Ok(());
        };
        let operation = operation_of(request.headers().get("x-amz-target"));
        let expressions = expressions_in(&body, &operation);
        let refused: Vec<String> = expressions
            .iter()
            .flat_map(|e| {
                bare_names(&e.text)
                    .into_iter()
                    .filter(|name| is_reserved(name))
                    .map(move |name| format!("`{name}` in {} `{}`", e.field, e.text))
            })
            .collect();
        if let Some(recorder) = &self.recorder {
            if let Ok(mut recorded) = recorder.lock() {
                recorded.extend(expressions);
            }
        }
        if refused.is_empty() {
            Ok(())
        } else {
            Err(format!(
                "{operation} names DynamoDB reserved words bare (alias them in ExpressionAttributeNames): {}",
                refused.join("; ")
            )
            .into())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_reserved_list_is_dynamodbs() {
        assert_eq!(RESERVED.len(), 573);
        for word in ["shard", "Status", "DAY", "name", "timestamp", "data"] {
            assert!(is_reserved(word), "{word}");
        }
        for word in ["aggregateId", "sequenceNumber", "outboxId", "listKey"] {
            assert!(!is_reserved(word), "{word}");
        }
    }

    #[test]
    fn placeholders_keywords_and_functions_are_not_bare_names() {
        assert!(bare_names("#a = :a AND #s BETWEEN :low AND :high").is_empty());
        assert!(bare_names("attribute_not_exists(#k) OR #v < :v").is_empty());
        assert!(bare_names("SET #n = if_not_exists(#n, :zero) + :d REMOVE #x").is_empty());
        assert!(bare_names("begins_with(#d, :p) AND size (#l) > :n").is_empty());
    }

    #[test]
    fn bare_names_are_found_reserved_or_not() {
        assert_eq!(bare_names("shard = :shard"), ["shard"]);
        assert_eq!(
            bare_names("attribute_not_exists(sequenceNumber) AND a.b[0] = :x"),
            ["sequenceNumber", "a", "b"]
        );
    }

    #[test]
    fn nested_expressions_are_all_found() {
        let body = serde_json::json!({
            "TransactItems": [
                {"Put": {"ConditionExpression": "attribute_not_exists(#s)"}},
                {"Update": {"UpdateExpression": "SET day = :d", "ConditionExpression": "#v = :v"}}
            ]
        });
        let found = expressions_in(&body, "TransactWriteItems");
        assert_eq!(found.len(), 3);
        let bare: Vec<String> = found.iter().flat_map(|e| bare_names(&e.text)).collect();
        assert_eq!(bare, ["day"]);
    }
}

//! What DynamoDB calls cost: every request attempt is counted by operation, and with
//! `--dynamodb-report-capacity` every request asks for `ReturnConsumedCapacity: INDEXES` and
//! the units DynamoDB reports are added up by table and index. Both go to `/metrics` and to a
//! process-wide tally (`capacity_snapshot`) that the benchmark reads in-process. Off by
//! default: asking for capacity adds bytes to every reply and nothing to correctness.

use aws_sdk_dynamodb::config::interceptors::{
    AfterDeserializationInterceptorContextRef, BeforeTransmitInterceptorContextMut,
    BeforeTransmitInterceptorContextRef,
};
use aws_sdk_dynamodb::config::{ConfigBag, Intercept, RuntimeComponents};
use aws_sdk_dynamodb::error::BoxError;
use aws_smithy_types::body::SdkBody;
use serde_json::Value;
use std::collections::BTreeMap;
use std::sync::{LazyLock, Mutex};

use super::expressions::operation_of;
use crate::metrics::{DYNAMODB_CAPACITY, DYNAMODB_REQUESTS};

/// Operations that accept `ReturnConsumedCapacity`.
const METERED: [&str; 10] = [
    "PutItem",
    "UpdateItem",
    "DeleteItem",
    "GetItem",
    "Query",
    "Scan",
    "TransactWriteItems",
    "TransactGetItems",
    "BatchWriteItem",
    "BatchGetItem",
];

/// Requests and capacity units since the process started (or since `reset`).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct CapacitySnapshot {
    /// Request attempts sent, by operation.
    pub requests: BTreeMap<String, u64>,
    /// Capacity units consumed, by (table, index); the index is empty for the table itself.
    pub units: BTreeMap<(String, String), f64>,
}

impl CapacitySnapshot {
    /// What happened between `earlier` and `self`.
    pub fn since(&self, earlier: &CapacitySnapshot) -> CapacitySnapshot {
        let requests = self
            .requests
            .iter()
            .map(|(op, n)| {
                (
                    op.clone(),
                    n - earlier.requests.get(op).copied().unwrap_or(0),
                )
            })
            .filter(|(_, n)| *n > 0)
            .collect();
        let units = self
            .units
            .iter()
            .map(|(key, u)| {
                (
                    key.clone(),
                    u - earlier.units.get(key).copied().unwrap_or(0.0),
                )
            })
            .filter(|(_, u)| *u > 0.0)
            .collect();
        CapacitySnapshot { requests, units }
    }

    pub fn total_requests(&self) -> u64 {
        self.requests.values().sum()
    }

    pub fn total_units(&self) -> f64 {
        self.units.values().sum()
    }
}

static TALLY: LazyLock<Mutex<CapacitySnapshot>> = LazyLock::new(Mutex::default);

/// The process-wide tally of every client built with `client_with`.
pub fn capacity_snapshot() -> CapacitySnapshot {
    TALLY.lock().map(|t| t.clone()).unwrap_or_default()
}

fn add_units(table: &str, index: &str, units: f64) {
    if units <= 0.0 {
        return;
    }
    if let Ok(mut tally) = TALLY.lock() {
        *tally
            .units
            .entry((table.to_owned(), index.to_owned()))
            .or_default() += units;
    }
    metrics::gauge!(DYNAMODB_CAPACITY, "table" => table.to_owned(), "index" => index.to_owned())
        .increment(units);
}

/// Adds the units of one `ConsumedCapacity` object: per table and per index when DynamoDB
/// breaks them down (INDEXES), else its total against the table.
fn record_consumed(consumed: &Value) {
    let Some(table) = consumed.get("TableName").and_then(Value::as_str) else {
        return;
    };
    let units = |v: Option<&Value>| {
        v.and_then(|v| v.get("CapacityUnits"))
            .and_then(Value::as_f64)
            .unwrap_or(0.0)
    };
    let mut broken_down = false;
    if let Some(own) = consumed.get("Table") {
        broken_down = true;
        add_units(table, "", units(Some(own)));
    }
    for kind in ["GlobalSecondaryIndexes", "LocalSecondaryIndexes"] {
        if let Some(Value::Object(indexes)) = consumed.get(kind) {
            broken_down = true;
            for (index, value) in indexes {
                add_units(table, index, units(Some(value)));
            }
        }
    }
    if !broken_down {
        add_units(table, "", units(Some(consumed)));
    }
}

/// Counts every request attempt; with `report` on, asks each for its consumed capacity and
/// adds it up.
#[derive(Debug, Clone, Copy)]
pub struct CapacityMeter {
    pub report: bool,
}

impl Intercept for CapacityMeter {
    fn name(&self) -> &'static str {
        "CapacityMeter"
    }

    fn modify_before_signing(
        &self,
        context: &mut BeforeTransmitInterceptorContextMut<'_>,
        _components: &RuntimeComponents,
        _cfg: &mut ConfigBag,
    ) -> Result<(), BoxError> {
        if !self.report {
            return Ok(());
        }
        let request = context.request_mut();
        let operation = operation_of(request.headers().get("x-amz-target"));
        if !METERED.contains(&operation.as_str()) {
            return Ok(());
        }
        let Some(Ok(Value::Object(mut body))) =
            request.body().bytes().map(serde_json::from_slice::<Value>)
        else {
            return Ok(());
        };
        body.insert("ReturnConsumedCapacity".into(), "INDEXES".into());
        let bytes = serde_json::to_vec(&Value::Object(body))?;
        request
            .headers_mut()
            .insert("content-length", bytes.len().to_string());
        *request.body_mut() = SdkBody::from(bytes);
        Ok(())
    }

    fn read_before_transmit(
        &self,
        context: &BeforeTransmitInterceptorContextRef<'_>,
        _components: &RuntimeComponents,
        _cfg: &mut ConfigBag,
    ) -> Result<(), BoxError> {
        let operation = operation_of(context.request().headers().get("x-amz-target"));
        if let Ok(mut tally) = TALLY.lock() {
            *tally.requests.entry(operation.clone()).or_default() += 1;
        }
        metrics::counter!(DYNAMODB_REQUESTS, "operation" => operation).increment(1);
        Ok(())
    }

    // After deserialization: only then is the reply's body read into memory.
    fn read_after_deserialization(
        &self,
        context: &AfterDeserializationInterceptorContextRef<'_>,
        _components: &RuntimeComponents,
        _cfg: &mut ConfigBag,
    ) -> Result<(), BoxError> {
        if !self.report {
            return Ok(());
        }
        let Some(Ok(body)) = context
            .response()
            .body()
            .bytes()
            .map(serde_json::from_slice::<Value>)
        else {
            return Ok(());
        };
        match body.get("ConsumedCapacity") {
            Some(Value::Array(all)) => all.iter().for_each(record_consumed),
            Some(one @ Value::Object(_)) => record_consumed(one),
            _ => {}
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn consumed_capacity_is_split_by_table_and_index() {
        let before = capacity_snapshot();
        record_consumed(&serde_json::json!({
            "TableName": "unit_items", "CapacityUnits": 3.0,
            "Table": {"CapacityUnits": 1.0},
            "GlobalSecondaryIndexes": {"by_warehouse": {"CapacityUnits": 1.0}, "all": {"CapacityUnits": 1.0}}
        }));
        record_consumed(&serde_json::json!({"TableName": "unit_events", "CapacityUnits": 2.0}));
        let delta = capacity_snapshot().since(&before);
        assert_eq!(
            delta.units.get(&("unit_items".into(), "".into())),
            Some(&1.0)
        );
        assert_eq!(
            delta
                .units
                .get(&("unit_items".into(), "by_warehouse".into())),
            Some(&1.0)
        );
        assert_eq!(
            delta.units.get(&("unit_events".into(), "".into())),
            Some(&2.0)
        );
        assert_eq!(delta.total_units(), 5.0);
    }
}

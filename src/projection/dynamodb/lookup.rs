//! A DynamoDB Query under construction (`Lookup`): key conditions, filters and keyset ranges,
//! every attribute named through placeholders; run page after page (rows from a keys-only
//! index fetched from the table in the index's order) or counted with `Select: COUNT`.

use aws_sdk_dynamodb::types::{AttributeValue, Select};
use std::collections::HashMap;

use super::attributes::Record;
use super::{unavailable, DynamoProjections};
use crate::projection::{Keys, ProjectionError};

/// The most rows one call returns, as in the SQLite adapter.
pub(super) const MAX_ROWS: usize = 10_000;

/// A Query under construction: key conditions, filters and their placeholders.
pub(super) struct Lookup {
    index: Option<&'static str>,
    /// For an index that projects only keys: the table's key attributes, by which the rows
    /// are then read from the table.
    fetch: Option<&'static [&'static str]>,
    /// Equality filters checked on the fetched rows (a keys-only index cannot filter on the
    /// attributes it does not hold).
    fetched_filters: Vec<(String, AttributeValue)>,
    keys: Vec<String>,
    filters: Vec<String>,
    names: HashMap<String, String>,
    values: HashMap<String, AttributeValue>,
    /// Read the key range from its end (`ScanIndexForward=false`); `run` still returns the
    /// rows in ascending order.
    backward: bool,
    /// Rows whose `attribute` equals one of these are dropped: the bounds of a `BETWEEN`
    /// that stands for an exclusive range (a sort key takes one condition only).
    excluded: Option<(String, Vec<AttributeValue>)>,
    /// An empty key range (`after >= before`): no need to ask.
    empty: bool,
}

impl Lookup {
    /// A Query on the table itself (`None`) or on one of its indexes.
    pub(super) fn on(index: Option<&'static str>) -> Self {
        Self {
            index,
            fetch: None,
            fetched_filters: Vec::new(),
            keys: Vec::new(),
            filters: Vec::new(),
            names: HashMap::new(),
            values: HashMap::new(),
            backward: false,
            excluded: None,
            empty: false,
        }
    }

    /// Bounds the sort key `attribute` by a keyset (`after < key < before`) and sets the
    /// direction it is read in; `value` is the key as the attribute stores it.
    pub(super) fn range<K: PartialOrd>(
        mut self,
        attribute: &str,
        keys: &Keys<K>,
        value: impl Fn(&K) -> AttributeValue,
    ) -> Self {
        self.backward = keys.backward;
        match (&keys.after, &keys.before) {
            (Some(after), Some(before)) if after >= before => self.empty = true,
            (Some(after), Some(before)) => {
                let (low, high) = (value(after), value(before));
                self.excluded = Some((attribute.to_owned(), vec![low.clone(), high.clone()]));
                self = self.key_between(attribute, low, high);
            }
            (Some(after), None) => self = self.key(attribute, ">", value(after)),
            (None, Some(before)) => self = self.key(attribute, "<", value(before)),
            (None, None) => {}
        }
        self
    }

    /// A Query on an index that holds only keys (`crate::dynamodb` creates them so, since a
    /// write that leaves an index's keys alone then costs that index nothing): the rows are
    /// read from the table by `table_key`, in the index's order.
    pub(super) fn on_keys(index: &'static str, table_key: &'static [&'static str]) -> Self {
        Self {
            fetch: Some(table_key),
            ..Self::on(Some(index))
        }
    }

    /// `#attribute op :value`, with placeholders throughout (`status`, `day` and `name` are
    /// reserved words in expressions).
    fn condition(&mut self, attribute: &str, op: &str, values: &[AttributeValue]) -> String {
        self.names
            .insert(format!("#{attribute}"), attribute.to_owned());
        let placeholders: Vec<String> = values
            .iter()
            .map(|value| {
                let placeholder = format!(":v{}", self.values.len());
                self.values.insert(placeholder.clone(), value.clone());
                placeholder
            })
            .collect();
        format!("#{attribute} {op} {}", placeholders.join(" AND "))
    }

    pub(super) fn key(mut self, attribute: &str, op: &str, value: AttributeValue) -> Self {
        let condition = self.condition(attribute, op, &[value]);
        self.keys.push(condition);
        self
    }

    pub(super) fn key_between(
        mut self,
        attribute: &str,
        low: AttributeValue,
        high: AttributeValue,
    ) -> Self {
        let condition = self.condition(attribute, "BETWEEN", &[low, high]);
        self.keys.push(condition);
        self
    }

    pub(super) fn filter(mut self, attribute: &str, op: &str, value: AttributeValue) -> Self {
        if self.fetch.is_some() && op == "=" {
            self.fetched_filters.push((attribute.to_owned(), value));
            return self;
        }
        let condition = self.condition(attribute, op, &[value]);
        self.filters.push(condition);
        self
    }

    /// Runs the Query page after page until `limit` rows came back or the key range is done.
    /// With a filter a page may hold fewer rows than asked for (Limit counts rows read, not
    /// rows returned), so filtered queries read somewhat larger pages.
    pub(super) async fn run<T>(
        self,
        store: &DynamoProjections,
        table: String,
        limit: usize,
        decode: fn(&Record) -> Result<T, ProjectionError>,
    ) -> Result<Vec<T>, ProjectionError> {
        let limit = limit.min(MAX_ROWS);
        if self.empty || limit == 0 {
            return Ok(Vec::new());
        }
        let backward = self.backward;
        let excluded = self.excluded;
        let kept = |record: &Record| match &excluded {
            Some((attribute, values)) => record.get(attribute).is_none_or(|v| !values.contains(v)),
            None => true,
        };
        let fetch = self.fetch;
        let fetched_filters = self.fetched_filters;
        let filtered = !self.filters.is_empty() || !fetched_filters.is_empty();
        let query = store
            .client
            .query()
            .table_name(&table)
            .set_index_name(self.index.map(str::to_owned))
            // Global indexes cannot be read consistently; the table can.
            .consistent_read(self.index.is_none())
            .scan_index_forward(!backward)
            .key_condition_expression(self.keys.join(" AND "))
            .set_filter_expression((!self.filters.is_empty()).then(|| self.filters.join(" AND ")))
            .set_expression_attribute_names(Some(self.names))
            .set_expression_attribute_values(Some(self.values));
        let mut rows = Vec::new();
        let mut start = None;
        while rows.len() < limit {
            let remaining = limit - rows.len();
            let page_size = if filtered {
                remaining.max(100)
            } else {
                remaining
            };
            let page = query
                .clone()
                .limit(page_size.min(1_000) as i32)
                .set_exclusive_start_key(start)
                .send()
                .await
                .map_err(unavailable("querying a projection index"))?;
            match fetch {
                None => {
                    for record in page.items() {
                        if kept(record) {
                            rows.push(decode(record)?);
                        }
                    }
                }
                Some(key) => {
                    for record in fetch_rows(store, &table, key, page.items()).await? {
                        let wanted = kept(&record)
                            && fetched_filters
                                .iter()
                                .all(|(attribute, value)| record.get(attribute) == Some(value));
                        if wanted {
                            rows.push(decode(&record)?);
                        }
                    }
                }
            }
            start = page.last_evaluated_key;
            if start.is_none() {
                break;
            }
        }
        rows.truncate(limit);
        if backward {
            rows.reverse();
        }
        Ok(rows)
    }

    /// How many rows the Query matches: `Select: COUNT` pages, following LastEvaluatedKey.
    /// Filters on a keys-only index's fetched rows cannot be counted by DynamoDB, so such a
    /// lookup (an order's allocations by item or status: a handful of rows) reads them.
    pub(super) async fn count(
        self,
        store: &DynamoProjections,
        table: String,
    ) -> Result<u64, ProjectionError> {
        if self.empty {
            return Ok(0);
        }
        if !self.fetched_filters.is_empty() {
            let rows = self.run(store, table, MAX_ROWS, |_| Ok(())).await?;
            return Ok(rows.len() as u64);
        }
        let query = store
            .client
            .query()
            .table_name(&table)
            .set_index_name(self.index.map(str::to_owned))
            .consistent_read(self.index.is_none())
            .select(Select::Count)
            .key_condition_expression(self.keys.join(" AND "))
            .set_filter_expression((!self.filters.is_empty()).then(|| self.filters.join(" AND ")))
            .set_expression_attribute_names(Some(self.names))
            .set_expression_attribute_values(Some(self.values));
        let mut total = 0u64;
        let mut start = None;
        loop {
            let page = query
                .clone()
                .set_exclusive_start_key(start)
                .send()
                .await
                .map_err(unavailable("querying a projection index"))?;
            total += page.count.max(0) as u64;
            start = page.last_evaluated_key;
            if start.is_none() {
                return Ok(total);
            }
        }
    }
}

/// The table rows of index entries, in the entries' order (strongly consistent). An entry
/// whose row is gone (it cannot be, rows are never deleted) is skipped.
async fn fetch_rows(
    store: &DynamoProjections,
    table: &str,
    key: &[&str],
    entries: &[Record],
) -> Result<Vec<Record>, ProjectionError> {
    let key_of = |record: &Record| -> Record {
        key.iter()
            .filter_map(|name| record.get(*name).map(|v| ((*name).to_owned(), v.clone())))
            .collect()
    };
    // AttributeValue is not Hash; its debug form of the key attributes is a faithful key.
    let identity = |record: &Record| -> String {
        format!(
            "{:?}",
            key.iter().map(|name| record.get(*name)).collect::<Vec<_>>()
        )
    };
    let keys = entries.iter().map(key_of).collect();
    let rows = crate::dynamodb::batch_get(&store.client, table, keys)
        .await
        .map_err(unavailable("reading the rows an index found"))?;
    let mut found: HashMap<String, Record> =
        rows.into_iter().map(|row| (identity(&row), row)).collect();
    Ok(entries
        .iter()
        .filter_map(|entry| found.remove(&identity(entry)))
        .collect())
}

//! Attribute-value codec for projection rows: numbers as N, strings as S, booleans as BOOL,
//! an optional string omitted when `None` and read back as `None` when missing. A row that
//! does not decode is reported with its table and attribute, never guessed at.

use aws_sdk_dynamodb::types::AttributeValue;
use std::collections::HashMap;
use std::fmt::Display;
use uuid::Uuid;

use crate::projection::ProjectionError;

/// One DynamoDB item (called a record here, since "item" means an inventory item).
pub type Record = HashMap<String, AttributeValue>;

pub fn s(value: impl Into<String>) -> AttributeValue {
    AttributeValue::S(value.into())
}

pub fn n(value: impl Display) -> AttributeValue {
    AttributeValue::N(value.to_string())
}

/// Builds a record attribute by attribute.
#[derive(Default)]
pub struct RecordBuilder(Record);

impl RecordBuilder {
    pub fn s(mut self, name: &str, value: impl Into<String>) -> Self {
        self.0.insert(name.to_owned(), s(value));
        self
    }

    pub fn n(mut self, name: &str, value: impl Display) -> Self {
        self.0.insert(name.to_owned(), n(value));
        self
    }

    pub fn bool(mut self, name: &str, value: bool) -> Self {
        self.0.insert(name.to_owned(), AttributeValue::Bool(value));
        self
    }

    /// Omits the attribute when `None`: absent and NULL would otherwise be two spellings of
    /// one value.
    pub fn opt_s(self, name: &str, value: Option<&str>) -> Self {
        match value {
            Some(value) => self.s(name, value),
            None => self,
        }
    }

    /// Omits the attribute when `None`, as `opt_s` does.
    pub fn opt_n(self, name: &str, value: Option<impl Display>) -> Self {
        match value {
            Some(value) => self.n(name, value),
            None => self,
        }
    }

    pub fn build(self) -> Record {
        self.0
    }
}

/// Reads typed attributes out of a record of `table`.
pub struct RecordReader<'a> {
    record: &'a Record,
    table: &'static str,
}

impl<'a> RecordReader<'a> {
    pub fn new(table: &'static str, record: &'a Record) -> Self {
        Self { record, table }
    }

    fn malformed(&self, name: &str, expected: &str) -> ProjectionError {
        ProjectionError::Unavailable(format!(
            "malformed {} row: attribute {name} is missing or not {expected}",
            self.table
        ))
    }

    pub fn opt_string(&self, name: &str) -> Result<Option<String>, ProjectionError> {
        match self.record.get(name) {
            None | Some(AttributeValue::Null(_)) => Ok(None),
            Some(AttributeValue::S(value)) => Ok(Some(value.clone())),
            Some(_) => Err(self.malformed(name, "a string")),
        }
    }

    pub fn string(&self, name: &str) -> Result<String, ProjectionError> {
        self.opt_string(name)?
            .ok_or_else(|| self.malformed(name, "a string"))
    }

    pub fn uuid(&self, name: &str) -> Result<Uuid, ProjectionError> {
        Uuid::parse_str(&self.string(name)?).map_err(|_| self.malformed(name, "a UUID"))
    }

    pub fn int(&self, name: &str) -> Result<i64, ProjectionError> {
        match self.record.get(name) {
            Some(AttributeValue::N(value)) => value
                .parse()
                .map_err(|_| self.malformed(name, "an integer")),
            _ => Err(self.malformed(name, "a number")),
        }
    }

    pub fn opt_int(&self, name: &str) -> Result<Option<i64>, ProjectionError> {
        match self.record.get(name) {
            None | Some(AttributeValue::Null(_)) => Ok(None),
            Some(_) => self.int(name).map(Some),
        }
    }

    pub fn uint(&self, name: &str) -> Result<u64, ProjectionError> {
        match self.record.get(name) {
            Some(AttributeValue::N(value)) => value
                .parse()
                .map_err(|_| self.malformed(name, "a non-negative integer")),
            _ => Err(self.malformed(name, "a number")),
        }
    }

    pub fn bool(&self, name: &str) -> Result<bool, ProjectionError> {
        match self.record.get(name) {
            Some(AttributeValue::Bool(value)) => Ok(*value),
            _ => Err(self.malformed(name, "a boolean")),
        }
    }
}

//! API keys in DynamoDB, table `inventory_api_keys` (partition key `keyId`), two rows per key:
//! `hash#<sha256>` holds the key (the edge's lookup is one GetItem) and `name#<name>` claims
//! the name. Both are written in one transaction, each Put conditioned on its row being new, so
//! two creators of one name cannot both win; a revoke sets `revokedAt` on the hash row, the
//! name row stays (revoked keys keep their name). Attribute names avoid DynamoDB's reserved
//! words (`name`, `hash`, `role` are), and every expression names them through `#` anyway.

use async_trait::async_trait;
use aws_sdk_dynamodb::operation::transact_write_items::TransactWriteItemsError;
use aws_sdk_dynamodb::types::{AttributeValue, TransactWriteItem};
use std::collections::HashMap;
use std::time::Duration;
use uuid::Uuid;

use super::{build, conditional_put, n, number, s, text, unavailable, DynamoEventStore, Item};
use crate::auth::keys::{ApiKey, KeyError, KeyStore};
use crate::auth::Role;
use crate::dynamodb::ConditionalWrite;
use crate::store::StoreError;

const HASH_ROW: &str = "hash#";
const NAME_ROW: &str = "name#";
/// How often a create is tried again when another transaction on the same rows was in flight
/// (DynamoDB cancels both; neither wrote anything).
const CREATE_ATTEMPTS: u32 = 5;

fn hash_row(key: &ApiKey) -> Item {
    let mut item = HashMap::from([
        ("keyId".to_owned(), s(format!("{HASH_ROW}{}", key.hash))),
        ("keyName".to_owned(), s(key.name.clone())),
        ("secretHash".to_owned(), s(key.hash.clone())),
        ("keyRole".to_owned(), s(key.role.as_str())),
        (
            "warehouses".to_owned(),
            AttributeValue::L(key.warehouses.iter().map(|w| s(w.to_string())).collect()),
        ),
        (
            "actsForOthers".to_owned(),
            AttributeValue::Bool(key.acts_for_others),
        ),
        ("createdAt".to_owned(), n(key.created_at)),
    ]);
    if let Some(at) = key.revoked_at {
        item.insert("revokedAt".to_owned(), n(at));
    }
    item
}

fn name_row(key: &ApiKey) -> Item {
    HashMap::from([
        ("keyId".to_owned(), s(format!("{NAME_ROW}{}", key.name))),
        ("keyName".to_owned(), s(key.name.clone())),
        ("secretHash".to_owned(), s(key.hash.clone())),
        ("createdAt".to_owned(), n(key.created_at)),
    ])
}

fn key_from_row(item: &Item) -> Result<ApiKey, StoreError> {
    let name = text(item, "keyName")?;
    let role = text(item, "keyRole")?;
    let role = Role::parse(&role)
        .ok_or_else(|| StoreError::corrupt(format!("API key {name:?}: unknown role {role}")))?;
    let warehouses = match item.get("warehouses") {
        Some(AttributeValue::L(values)) => values
            .iter()
            .map(|value| match value {
                AttributeValue::S(id) => Uuid::parse_str(id).map_err(|e| {
                    StoreError::corrupt_because(format!("API key {name:?}: warehouse"), e)
                }),
                _ => Err(StoreError::corrupt(format!(
                    "API key {name:?}: a warehouse is not a string"
                ))),
            })
            .collect::<Result<Vec<_>, _>>()?,
        _ => {
            return Err(StoreError::corrupt(format!(
                "API key {name:?}: warehouses missing or not a list"
            )))
        }
    };
    let acts_for_others = match item.get("actsForOthers") {
        Some(AttributeValue::Bool(value)) => *value,
        _ => {
            return Err(StoreError::corrupt(format!(
                "API key {name:?}: actsForOthers missing or not a boolean"
            )))
        }
    };
    Ok(ApiKey {
        role,
        warehouses,
        acts_for_others,
        hash: text(item, "secretHash")?,
        created_at: number(item, "createdAt")?,
        revoked_at: match item.get("revokedAt") {
            Some(_) => Some(number(item, "revokedAt")?),
            None => None,
        },
        name,
    })
}

impl DynamoEventStore {
    /// The key row at `key_id`, read strongly consistent (a revoke is seen at once).
    async fn key_row(&self, key_id: String) -> Result<Option<Item>, StoreError> {
        let found = self
            .client
            .get_item()
            .table_name(self.tables.api_keys())
            .key("keyId", s(key_id))
            .consistent_read(true)
            .send()
            .await
            .map_err(unavailable)?;
        Ok(found.item)
    }
}

#[async_trait]
impl KeyStore for DynamoEventStore {
    async fn create_key(&self, key: &ApiKey) -> Result<(), KeyError> {
        let table = self.tables.api_keys();
        let put = |item: Item| -> Result<TransactWriteItem, StoreError> {
            let put = build(
                conditional_put(table.clone(), "keyId")
                    .set_item(Some(item))
                    .build(),
            )?;
            Ok(TransactWriteItem::builder().put(put).build())
        };
        let items = vec![put(name_row(key))?, put(hash_row(key))?];
        for attempt in 0..CREATE_ATTEMPTS {
            let error = match self
                .client
                .transact_write_items()
                .set_transact_items(Some(items.clone()))
                .send()
                .await
            {
                Ok(_) => return Ok(()),
                Err(error) => error,
            };
            let Some(TransactWriteItemsError::TransactionCanceledException(cancelled)) =
                error.as_service_error()
            else {
                return Err(unavailable(error).into());
            };
            let codes: Vec<&str> = cancelled
                .cancellation_reasons()
                .iter()
                .map(|r| r.code().unwrap_or("None"))
                .collect();
            match codes.as_slice() {
                ["ConditionalCheckFailed", ..] => {
                    // Taken, but perhaps by this very key: an attempt cancelled as a conflict
                    // above may have landed (its reply lost), and the next then meets its rows.
                    let claim = self.key_row(format!("{NAME_ROW}{}", key.name)).await?;
                    let ours = claim.is_some_and(|row| {
                        text(&row, "secretHash").is_ok_and(|hash| hash == key.hash)
                    });
                    return if ours {
                        Ok(())
                    } else {
                        Err(KeyError::NameTaken(key.name.clone()))
                    };
                }
                [_, "ConditionalCheckFailed"] => {
                    return Err(StoreError::corrupt(format!(
                        "API key {:?}: another key has the same hash",
                        key.name
                    ))
                    .into())
                }
                codes if codes.contains(&"TransactionConflict") => {
                    tokio::time::sleep(Duration::from_millis(20 << attempt)).await;
                }
                codes => {
                    return Err(StoreError::unavailable(format!(
                        "creating API key {:?}: transaction cancelled: {codes:?}",
                        key.name
                    ))
                    .into())
                }
            }
        }
        Err(StoreError::unavailable(format!(
            "creating API key {:?}: conflicting transactions {CREATE_ATTEMPTS} times",
            key.name
        ))
        .into())
    }

    async fn keys(&self) -> Result<Vec<ApiKey>, StoreError> {
        let mut keys = Vec::new();
        let mut start: Option<Item> = None;
        loop {
            let page = self
                .client
                .scan()
                .table_name(self.tables.api_keys())
                .filter_expression("begins_with(#id, :rows)")
                .expression_attribute_names("#id", "keyId")
                .expression_attribute_values(":rows", s(HASH_ROW))
                .consistent_read(true)
                .set_exclusive_start_key(start)
                .send()
                .await
                .map_err(unavailable)?;
            for item in page.items() {
                keys.push(key_from_row(item)?);
            }
            match page.last_evaluated_key() {
                Some(key) if !key.is_empty() => start = Some(key.clone()),
                _ => break,
            }
        }
        keys.sort_by(|a, b| a.name.cmp(&b.name));
        Ok(keys)
    }

    async fn revoke_key(&self, name: &str, at: i64) -> Result<bool, StoreError> {
        let Some(claim) = self.key_row(format!("{NAME_ROW}{name}")).await? else {
            return Ok(false);
        };
        let hash = text(&claim, "secretHash")?;
        let updated = self
            .client
            .update_item()
            .table_name(self.tables.api_keys())
            .key("keyId", s(format!("{HASH_ROW}{hash}")))
            .update_expression("SET #revoked = :at")
            // Only an existing, unrevoked key: the first revocation's time stays. (A retry
            // after a lost reply then answers false: revoked, though not by this call.)
            .condition_expression("attribute_exists(#id) AND attribute_not_exists(#revoked)")
            .expression_attribute_names("#id", "keyId")
            .expression_attribute_names("#revoked", "revokedAt")
            .expression_attribute_values(":at", n(at))
            .send()
            .await;
        updated
            .map(|_| true)
            .or_if_condition_failed(false)
            .map_err(unavailable)
    }

    async fn key_by_hash(&self, hash: &str) -> Result<Option<ApiKey>, StoreError> {
        self.key_row(format!("{HASH_ROW}{hash}"))
            .await?
            .map(|item| key_from_row(&item))
            .transpose()
    }
}

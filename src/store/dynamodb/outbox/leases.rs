//! Leases on outbox shards: one row per shard in the guards table (`outbox-lease#<shard>`,
//! owner and expiry), taken and renewed by one conditional PutItem, so two relays never sweep
//! one shard at once and a dead relay's shards are taken when its leases run out. The keeper
//! runs on its own timer, so a publish that backs off does not cost the shards.

use aws_sdk_dynamodb::types::KeysAndAttributes;
use aws_sdk_dynamodb::Client;
use std::collections::HashMap;
use std::sync::Weak;
use std::time::{Duration, Instant};

use super::super::{build, n, number, s, text, unavailable, Item};
use super::{Outbox, RELAY_SILENT};
use crate::dynamodb::{ConditionalWrite, Tables};
use crate::metrics::OUTBOX_SHARDS_OWNED as SHARDS_OWNED;
use crate::store::StoreError;

/// The guards-table key of a shard's lease row, and back.
fn lease_key(shard: u32) -> String {
    format!("outbox-lease#{shard}")
}

fn lease_shard(key: &str) -> Option<u32> {
    key.strip_prefix("outbox-lease#")?.parse().ok()
}

/// What a conditional PutItem on a lease row found.
enum Claim {
    Held,
    TakenByAnother,
}

impl Outbox {
    /// One round of the lease keeper: renews the leases held, takes any shard whose lease is
    /// free, expired or still this process's, and schedules the next round.
    pub(super) async fn lease_round(&self, client: &Client, tables: &Tables) {
        let now = Instant::now();
        let (held, relay_alive) = {
            let state = self.state();
            let held: Vec<u32> = (0..self.shards)
                .filter(|&shard| state.leases[shard as usize].is_some_and(|until| now < until))
                .collect();
            let alive = state
                .asked
                .is_some_and(|asked| now.duration_since(asked) < RELAY_SILENT);
            (held, alive)
        };
        let mut candidates = Vec::new();
        // The earliest expiry of a lease another instance holds: when it may be free.
        let mut foreign_expiry: Option<i64> = None;
        if relay_alive {
            candidates.clone_from(&held);
            let others: Vec<u32> = (0..self.shards).filter(|s| !held.contains(s)).collect();
            if !others.is_empty() {
                match read_leases(client, tables, &others).await {
                    Ok(found) => {
                        let wall = crate::application::now_ms();
                        for shard in others {
                            match found.get(&shard) {
                                Some(None) => {}
                                Some(Some((owner, expires)))
                                    if *owner != self.instance && *expires >= wall =>
                                {
                                    foreign_expiry =
                                        Some(foreign_expiry.map_or(*expires, |e| e.min(*expires)));
                                }
                                // No row, an expired one, or this process's own.
                                _ => candidates.push(shard),
                            }
                        }
                    }
                    Err(error) => tracing::warn!(%error, "cannot read the outbox leases"),
                }
            }
        } else if !held.is_empty() {
            tracing::warn!("the outbox relay is not asking for work; letting its shards go");
        }
        let claims = candidates.iter().map(|&shard| async move {
            let sent = Instant::now();
            (shard, sent, self.claim(client, tables, shard).await)
        });
        let results = futures::future::join_all(claims).await;
        let mut state = self.state();
        for (shard, sent, result) in results {
            let index = shard as usize;
            match result {
                Ok(Claim::Held) => {
                    if !held.contains(&shard) {
                        tracing::info!(shard, instance = %self.instance, "outbox shard acquired");
                        state.fresh[index] = true;
                    }
                    state.leases[index] = Some(sent + self.lease);
                }
                Ok(Claim::TakenByAnother) => {
                    if state.leases[index].take().is_some() {
                        tracing::warn!(shard, "outbox shard lease lost to another instance");
                    }
                }
                // The lease stays what it was until it runs out by this process's clock.
                Err(error) => tracing::warn!(%error, shard, "cannot renew an outbox lease"),
            }
        }
        let now = Instant::now();
        for lease in state.leases.iter_mut() {
            if lease.is_some_and(|until| until <= now) {
                *lease = None;
            }
        }
        let mut next = now + self.lease / 3;
        if let Some(expires) = foreign_expiry {
            // Look again just after the other holder's lease would expire, not a round later.
            let left = (expires - crate::application::now_ms()).max(0) as u64;
            let wait = Duration::from_millis(left.saturating_add(20));
            if wait < self.lease / 3 {
                next = now + wait;
            }
        }
        state.next_round = Some(next);
        for shard in 0..self.shards {
            let owned = self.may_sweep(&state, shard, now);
            metrics::gauge!(SHARDS_OWNED, "shard" => shard.to_string())
                .set(f64::from(u8::from(owned)));
        }
    }

    /// Takes or renews the lease on `shard` for this process: one conditional PutItem.
    async fn claim(
        &self,
        client: &Client,
        tables: &Tables,
        shard: u32,
    ) -> Result<Claim, StoreError> {
        let wall = crate::application::now_ms();
        let item = HashMap::from([
            ("guardKey".to_owned(), s(lease_key(shard))),
            ("owner".to_owned(), s(self.instance.clone())),
            (
                "expiresAt".to_owned(),
                n(wall + self.lease.as_millis() as i64),
            ),
        ]);
        let written = client
            .put_item()
            .table_name(tables.guards())
            .set_item(Some(item))
            .condition_expression("attribute_not_exists(#key) OR #expires < :now OR #owner = :me")
            .expression_attribute_names("#key", "guardKey")
            .expression_attribute_names("#expires", "expiresAt")
            .expression_attribute_names("#owner", "owner")
            .expression_attribute_values(":now", n(wall))
            .expression_attribute_values(":me", s(self.instance.clone()))
            .send()
            .await;
        written
            .map(|_| Claim::Held)
            .or_if_condition_failed(Claim::TakenByAnother)
            .map_err(unavailable)
    }
}

/// Renews and acquires leases on the keeper's own clock (not the relay's: a publish that backs
/// off must not cost the shards), until the store is dropped.
pub(super) async fn keep_leases(outbox: Weak<Outbox>, client: Client, tables: Tables) {
    loop {
        let Some(at) = outbox
            .upgrade()
            .and_then(|outbox| outbox.state().next_round)
        else {
            return;
        };
        tokio::time::sleep_until(at.into()).await;
        let Some(outbox) = outbox.upgrade() else {
            return;
        };
        outbox.lease_round(&client, &tables).await;
    }
}

/// The lease rows of these shards (owner, expiresAt in ms), read with one eventually
/// consistent BatchGetItem per 100 (staleness only delays a takeover: the conditional PutItem
/// decides). A shard missing from the answer has no lease row; `None`: not read this time.
async fn read_leases(
    client: &Client,
    tables: &Tables,
    shards: &[u32],
) -> Result<HashMap<u32, Option<(String, i64)>>, StoreError> {
    let mut found = HashMap::new();
    for chunk in shards.chunks(100) {
        let keys: Vec<Item> = chunk
            .iter()
            .map(|&shard| HashMap::from([("guardKey".to_owned(), s(lease_key(shard)))]))
            .collect();
        let request = build(KeysAndAttributes::builder().set_keys(Some(keys)).build())?;
        let answer = client
            .batch_get_item()
            .request_items(tables.guards(), request)
            .send()
            .await
            .map_err(unavailable)?;
        for item in answer
            .responses()
            .and_then(|r| r.get(&tables.guards()))
            .into_iter()
            .flatten()
        {
            let Some(shard) = lease_shard(&text(item, "guardKey")?) else {
                continue;
            };
            found.insert(
                shard,
                Some((text(item, "owner")?, number(item, "expiresAt")?)),
            );
        }
        // Keys DynamoDB left unprocessed are looked at next round.
        for key in answer
            .unprocessed_keys()
            .and_then(|u| u.get(&tables.guards()))
            .map(|k| k.keys().to_vec())
            .unwrap_or_default()
        {
            if let Some(shard) = text(&key, "guardKey").ok().as_deref().and_then(lease_shard) {
                found.insert(shard, None);
            }
        }
    }
    Ok(found)
}

//! The broker objects this adapter owns, by name, and their idempotent declarations. Every
//! name carries the prefix so that several environments can share one broker; every
//! declaration can be repeated on each reconnect (RabbitMQ accepts a re-declare only with the
//! same arguments, so changing one of them means deleting the old object first).

use lapin::options::{ExchangeDeclareOptions, QueueBindOptions, QueueDeclareOptions};
use lapin::types::{AMQPValue, FieldTable, LongString, ShortString};
use lapin::{Channel, ExchangeKind};

use super::RabbitConfig;

/// Routing key that matches every event / change on a topic exchange.
const EVERYTHING: &str = "#";
/// Live messages kept for one instance before the oldest are dropped: a stalled instance must
/// not make the broker hoard its fan-out (live subscribers tolerate gaps; projections don't
/// use this queue).
const LIVE_MAX_LENGTH: i64 = 100_000;

/// The names of everything declared, derived from one prefix.
#[derive(Debug, Clone)]
pub struct Names {
    prefix: String,
    /// Topic exchange of events, routing key `<aggregateType>.<eventType>`.
    pub events: String,
    /// Topic exchange of read-model changes, routing keys `readmodel.item|allocation`.
    pub changes: String,
    /// Direct exchange where durable queues dead-letter, routing key = the queue's name.
    pub dead_letter: String,
}

impl Names {
    pub fn new(prefix: &str) -> Self {
        Self {
            prefix: prefix.to_owned(),
            events: format!("{prefix}inventory.events"),
            changes: format!("{prefix}inventory.changes"),
            dead_letter: format!("{prefix}inventory.dead-letter"),
        }
    }

    /// The durable queue of consumer group `queue`: `<prefix>inventory.<queue>`.
    pub fn queue(&self, queue: &str) -> String {
        format!("{}inventory.{queue}", self.prefix)
    }

    /// Where that queue's given-up messages wait for an operator: `<prefix>inventory.<queue>.dead`.
    pub fn dead_queue(&self, queue: &str) -> String {
        format!("{}.dead", self.queue(queue))
    }
}

fn durable() -> ExchangeDeclareOptions {
    ExchangeDeclareOptions {
        durable: true,
        ..ExchangeDeclareOptions::default()
    }
}

fn long_string(text: &str) -> AMQPValue {
    AMQPValue::LongString(LongString::from(text))
}

/// The two topic exchanges every instance publishes to.
pub async fn declare_exchanges(channel: &Channel, names: &Names) -> lapin::Result<()> {
    for exchange in [&names.events, &names.changes] {
        channel
            .exchange_declare(
                exchange.as_str().into(),
                ExchangeKind::Topic,
                durable(),
                FieldTable::default(),
            )
            .await?;
    }
    Ok(())
}

/// The durable queue of one consumer group, bound to every event, with its dead-letter queue.
///
/// A quorum queue, because it counts redeliveries itself (`x-delivery-count`) and enforces
/// `x-delivery-limit` even when the consumer crashes mid-message, so a poison message cannot
/// loop forever; it is replicated in a cluster too. Its dead letters go through a *direct*
/// exchange keyed by queue name rather than a fanout one, so that two consumer groups never
/// receive each other's dead letters. `at-least-once` dead-lettering (RabbitMQ ≥ 3.10) keeps a
/// message in the source queue until the dead-letter queue has confirmed it.
pub async fn declare_durable_queue(
    channel: &Channel,
    names: &Names,
    queue: &str,
    config: &RabbitConfig,
) -> lapin::Result<()> {
    let main = names.queue(queue);
    let dead = names.dead_queue(queue);
    declare_exchanges(channel, names).await?;
    channel
        .exchange_declare(
            names.dead_letter.as_str().into(),
            ExchangeKind::Direct,
            durable(),
            FieldTable::default(),
        )
        .await?;

    let quorum = QueueDeclareOptions {
        durable: true,
        ..QueueDeclareOptions::default()
    };
    let mut dead_args = FieldTable::default();
    dead_args.insert("x-queue-type".into(), long_string("quorum"));
    channel
        .queue_declare(dead.as_str().into(), quorum, dead_args)
        .await?;
    channel
        .queue_bind(
            dead.as_str().into(),
            names.dead_letter.as_str().into(),
            main.as_str().into(),
            QueueBindOptions::default(),
            FieldTable::default(),
        )
        .await?;

    let mut args = FieldTable::default();
    args.insert("x-queue-type".into(), long_string("quorum"));
    args.insert(
        "x-delivery-limit".into(),
        AMQPValue::LongLongInt(i64::from(config.max_deliveries)),
    );
    args.insert(
        "x-dead-letter-exchange".into(),
        long_string(&names.dead_letter),
    );
    args.insert("x-dead-letter-routing-key".into(), long_string(&main));
    args.insert(
        "x-dead-letter-strategy".into(),
        long_string("at-least-once"),
    );
    // Required by at-least-once dead-lettering; without a length limit it never triggers.
    args.insert("x-overflow".into(), long_string("reject-publish"));
    channel
        .queue_declare(main.as_str().into(), quorum, args)
        .await?;
    channel
        .queue_bind(
            main.as_str().into(),
            names.events.as_str().into(),
            EVERYTHING.into(),
            QueueBindOptions::default(),
            FieldTable::default(),
        )
        .await
}

/// This instance's fan-out queue: server-named, exclusive, deleted with the connection, bound
/// to every event and every read-model change. Returns its name.
pub async fn declare_live_queue(channel: &Channel, names: &Names) -> lapin::Result<ShortString> {
    let options = QueueDeclareOptions {
        exclusive: true,
        auto_delete: true,
        ..QueueDeclareOptions::default()
    };
    let mut args = FieldTable::default();
    args.insert(
        "x-max-length".into(),
        AMQPValue::LongLongInt(LIVE_MAX_LENGTH),
    );
    let queue = channel.queue_declare("".into(), options, args).await?;
    for exchange in [&names.events, &names.changes] {
        channel
            .queue_bind(
                queue.name().clone(),
                exchange.as_str().into(),
                EVERYTHING.into(),
                QueueBindOptions::default(),
                FieldTable::default(),
            )
            .await?;
    }
    Ok(queue.name().clone())
}

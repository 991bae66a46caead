//! This instance's live feed: an exclusive, server-named queue bound to every event and every
//! read-model change, forwarded to the in-process broadcast that GraphQL subscriptions read.
//! So a mutation applied on instance A reaches a subscriber on instance B. Best effort by
//! design: auto-acknowledged, and a new queue (without what was missed) after a reconnect.

use futures::StreamExt;
use lapin::options::BasicConsumeOptions;
use lapin::types::FieldTable;
use lapin::Consumer;
use std::sync::Arc;

use super::session::Session;
use super::{codec, topology, Shared};

pub(super) async fn start(shared: &Arc<Shared>, session: &Arc<Session>) -> lapin::Result<()> {
    let channel = session.connection.create_channel().await?;
    let queue = topology::declare_live_queue(&channel, &shared.names).await?;
    let options = BasicConsumeOptions {
        no_ack: true,
        exclusive: true,
        ..BasicConsumeOptions::default()
    };
    let tag = format!("{queue}.live");
    let consumer = channel
        .basic_consume(queue, tag.as_str().into(), options, FieldTable::default())
        .await?;
    tokio::spawn(run(shared.clone(), session.clone(), consumer));
    Ok(())
}

async fn run(shared: Arc<Shared>, session: Arc<Session>, mut consumer: Consumer) {
    while let Some(Ok(delivery)) = consumer.next().await {
        let from_events = delivery.exchange.as_str() == shared.names.events;
        match codec::live(from_events, delivery.routing_key.as_str(), &delivery.data) {
            // No receivers is fine: nobody is subscribed right now.
            Ok(message) => drop(shared.live.send(Arc::new(message))),
            Err(error) => {
                tracing::warn!(routing_key = %delivery.routing_key, %error, "dropped an undecodable live message");
            }
        }
    }
    session.fail("the live consumer stopped");
}

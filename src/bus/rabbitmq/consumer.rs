//! A durable consumer: takes the deliveries its group's quorum queue has sent (up to the
//! prefetch), hands them to the handler as one batch, so a projector folds them into one write
//! per row, and acknowledges them only after the handler returned. A batch the handler does not
//! take whole is handed over again one delivery at a time (the handler is idempotent, so what
//! the batch applied is skipped), and each delivery is then judged alone: `Reject` and bodies
//! that are not an envelope are dead-lettered at once; `Retry` is requeued after a pause that
//! grows with each try, and dead-lettered on the last permitted delivery. A retried message
//! waits out its pause off the loop, so the messages behind it keep flowing (it then arrives
//! after its successors; the gap-aware projector fills the hole from the store meanwhile).
//! While the handler keeps failing, retried messages hold their prefetch slots, so at most
//! `prefetch` of them are in flight and the rest wait in the queue rather than burning tries.

use futures::{FutureExt, StreamExt};
use lapin::message::Delivery;
use lapin::options::{BasicAckOptions, BasicConsumeOptions, BasicNackOptions, BasicQosOptions};
use lapin::types::FieldTable;
use lapin::{Acker, Consumer};
use std::panic::AssertUnwindSafe;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use super::session::Session;
use super::{codec, topology, Registration, Shared};
use crate::bus::HandlerError;
use crate::store::EventEnvelope;

/// Declares the group's queue on a channel of its own and starts consuming it.
pub(super) async fn start(
    shared: &Arc<Shared>,
    session: &Arc<Session>,
    registration: &Registration,
) -> lapin::Result<()> {
    let channel = session.connection.create_channel().await?;
    channel
        .basic_qos(shared.config.prefetch, BasicQosOptions::default())
        .await?;
    topology::declare_durable_queue(&channel, &shared.names, &registration.queue, &shared.config)
        .await?;
    let queue = shared.names.queue(&registration.queue);
    let tag = format!("{queue}.{}", uuid::Uuid::new_v4());
    let consumer = channel
        .basic_consume(
            queue.as_str().into(),
            tag.as_str().into(),
            BasicConsumeOptions::default(),
            FieldTable::default(),
        )
        .await?;
    session.add_consumer(tokio::spawn(run(
        shared.clone(),
        session.clone(),
        registration.clone(),
        consumer,
    )));
    Ok(())
}

async fn run(
    shared: Arc<Shared>,
    session: Arc<Session>,
    registration: Registration,
    mut consumer: Consumer,
) {
    let mut closing = session.closing();
    loop {
        // A delivery in hand is always finished; only the wait for the next one is cut short.
        let next = tokio::select! {
            biased;
            _ = closing.wait_for(|closing| *closing) => return,
            next = consumer.next() => next,
        };
        match next {
            Some(Ok(delivery)) => {
                // Whatever else has arrived already joins the batch; nothing waits for more.
                let mut batch = vec![delivery];
                while batch.len() < usize::from(shared.config.prefetch.max(1)) {
                    match consumer.next().now_or_never() {
                        Some(Some(Ok(delivery))) => batch.push(delivery),
                        _ => break,
                    }
                }
                handle_batch(&shared, &registration, batch).await;
            }
            Some(Err(error)) => {
                tracing::debug!(queue = %registration.queue, %error, "consumer stopped");
                break;
            }
            None => break,
        }
    }
    // The connection or channel is gone, or the broker cancelled us (queue deleted): either
    // way the session is incomplete without this consumer, so rebuild it.
    session.fail(&format!("the consumer of {} stopped", registration.queue));
}

/// Hands a batch to the handler at once; on any failure, delivery by delivery.
async fn handle_batch(shared: &Shared, registration: &Registration, batch: Vec<Delivery>) {
    if batch.len() == 1 {
        for delivery in batch {
            handle(shared, registration, delivery).await;
        }
        return;
    }
    let mut envelopes = Vec::with_capacity(batch.len());
    let mut deliveries = Vec::with_capacity(batch.len());
    for delivery in batch {
        match serde_json::from_slice::<EventEnvelope>(&delivery.data) {
            Ok(envelope) => {
                envelopes.push(envelope);
                deliveries.push(delivery);
            }
            // Judged alone below: dead-lettered.
            Err(_) => handle(shared, registration, delivery).await,
        }
    }
    let outcome = AssertUnwindSafe(registration.handler.handle(&envelopes))
        .catch_unwind()
        .await
        .unwrap_or_else(|_| Err(HandlerError::Retry("the handler panicked".into())));
    match outcome {
        Ok(()) => {
            for delivery in deliveries {
                if let Err(error) = delivery.acker.ack(BasicAckOptions::default()).await {
                    // It comes back after the reconnect; the handler drops the duplicate.
                    tracing::debug!(queue = %registration.queue, %error, "cannot acknowledge");
                }
            }
        }
        Err(error) => {
            tracing::debug!(queue = %registration.queue, ?error, size = deliveries.len(), "batch not taken whole; handling its deliveries one by one");
            for delivery in deliveries {
                handle(shared, registration, delivery).await;
            }
        }
    }
}

async fn handle(shared: &Shared, registration: &Registration, delivery: Delivery) {
    let attempt = codec::previous_deliveries(&delivery.properties) + 1;
    let envelope: EventEnvelope = match serde_json::from_slice(&delivery.data) {
        Ok(envelope) => envelope,
        Err(error) => {
            let reason = format!("not an event envelope: {error}");
            return dead_letter(shared, registration, &delivery, None, &reason).await;
        }
    };
    // A panicking handler is a bug, but must not take the consumer down: treat it as a failed
    // try, so the message is dead-lettered if it keeps panicking.
    let outcome = AssertUnwindSafe(registration.handler.handle(std::slice::from_ref(&envelope)))
        .catch_unwind()
        .await
        .unwrap_or_else(|_| Err(HandlerError::Retry("the handler panicked".into())));
    let event_id = Some(envelope.event_id);
    match outcome {
        Ok(()) => {
            if let Err(error) = delivery.acker.ack(BasicAckOptions::default()).await {
                // It comes back after the reconnect; the handler drops the duplicate.
                tracing::debug!(queue = %registration.queue, %error, "cannot acknowledge");
            }
        }
        Err(HandlerError::Reject(cause)) => {
            let reason = crate::bus::chain(&*cause);
            dead_letter(shared, registration, &delivery, event_id, &reason).await;
        }
        Err(HandlerError::Retry(cause)) if attempt >= shared.config.max_deliveries => {
            let reason = format!(
                "still failing after {attempt} tries: {}",
                crate::bus::chain(&*cause)
            );
            dead_letter(shared, registration, &delivery, event_id, &reason).await;
        }
        Err(HandlerError::Retry(cause)) => {
            let reason = crate::bus::chain(&*cause);
            let pause = retry_pause(&shared.config, attempt);
            tracing::warn!(queue = %registration.queue, event_id = %envelope.event_id, attempt, %reason, retry_in = ?pause, "handler failed; will retry");
            tokio::spawn(requeue_after(pause, delivery.acker));
        }
    }
}

fn retry_pause(config: &super::RabbitConfig, attempt: u32) -> Duration {
    let factor = 1u32 << attempt.saturating_sub(1).min(16);
    config
        .retry_delay
        .saturating_mul(factor)
        .min(config.retry_delay_max)
}

async fn requeue_after(pause: Duration, acker: Acker) {
    tokio::time::sleep(pause).await;
    let requeue = BasicNackOptions {
        requeue: true,
        ..BasicNackOptions::default()
    };
    // If the channel is gone the broker has requeued it already.
    let _ = acker.nack(requeue).await;
}

/// Rejects without requeue: the quorum queue moves the message to its dead-letter queue.
async fn dead_letter(
    shared: &Shared,
    registration: &Registration,
    delivery: &Delivery,
    event_id: Option<uuid::Uuid>,
    reason: &str,
) {
    let reject = BasicNackOptions {
        requeue: false,
        ..BasicNackOptions::default()
    };
    match delivery.acker.nack(reject).await {
        Ok(_) => {
            shared.dead_letters.fetch_add(1, Ordering::Relaxed);
            let dead_queue = shared.names.dead_queue(&registration.queue);
            tracing::error!(queue = %registration.queue, %dead_queue, event_id = ?event_id, %reason, "dead-lettered a message");
        }
        Err(error) => {
            // Redelivered after the reconnect and judged again.
            tracing::warn!(queue = %registration.queue, %error, %reason, "cannot dead-letter");
        }
    }
}

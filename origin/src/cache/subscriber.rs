//! The invalidation subscriber: applies other instances' writes to this instance's L1.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt;

use super::l1::L1Store;
use super::l2::{parse_invalidation, L2Store, FLUSH_ALL};

/// Pause before reconnecting after the subscription drops; doubled up to [`MAX_RETRY`].
const FIRST_RETRY: Duration = Duration::from_millis(100);
const MAX_RETRY: Duration = Duration::from_secs(2);

/// State of the invalidation subscription, read by warm-up.
#[derive(Debug, Default)]
pub struct Subscription {
    live: AtomicBool,
}

impl Subscription {
    /// Whether this instance currently receives invalidations.
    pub fn is_live(&self) -> bool {
        self.live.load(Ordering::Acquire)
    }
}

/// Subscribes to the invalidation channel until the process stops, reconnecting with backoff.
///
/// Invalidations published while the subscription was down are lost, so every
/// reconnection clears L1: the first reads after it go to L2 or the database.
pub fn spawn(l2: Arc<L2Store>, l1: L1Store) -> (Arc<Subscription>, tokio::task::JoinHandle<()>) {
    let subscription = Arc::new(Subscription::default());
    let task = tokio::spawn({
        let subscription = Arc::clone(&subscription);
        async move {
            let channel = l2.channel();
            let mut retry = FIRST_RETRY;
            let mut subscribed_before = false;
            loop {
                match l2.client().get_async_pubsub().await {
                    Ok(mut pubsub) => match pubsub.subscribe(&channel).await {
                        Ok(()) => {
                            if subscribed_before {
                                l1.clear();
                                tracing::info!(%channel, "invalidation subscription restored; cleared L1");
                            } else {
                                tracing::info!(%channel, "subscribed to invalidations");
                            }
                            subscribed_before = true;
                            retry = FIRST_RETRY;
                            subscription.live.store(true, Ordering::Release);
                            let mut messages = pubsub.on_message();
                            while let Some(message) = messages.next().await {
                                apply(&l1, l2.instance_id(), message.get_payload_bytes());
                            }
                            subscription.live.store(false, Ordering::Release);
                            tracing::warn!(%channel, "invalidation subscription lost; reconnecting");
                        }
                        Err(error) => {
                            tracing::warn!(%channel, %error, "subscribing to invalidations failed")
                        }
                    },
                    Err(error) => tracing::debug!(%error, "connecting for invalidations failed"),
                }
                tokio::time::sleep(retry).await;
                retry = (retry * 2).min(MAX_RETRY);
            }
        }
    });
    (subscription, task)
}

fn apply(l1: &L1Store, own_instance: &str, payload: &[u8]) {
    let Some((sender, tags)) = std::str::from_utf8(payload)
        .ok()
        .and_then(parse_invalidation)
    else {
        tracing::warn!(
            bytes = payload.len(),
            "ignoring a malformed invalidation message"
        );
        return;
    };
    if tags.contains(&FLUSH_ALL) {
        // Sent after an outage too long to remember each tag, by any instance, this one included.
        l1.clear();
        tracing::info!(sender, "cleared L1 on a flush message");
    } else if sender != own_instance {
        // This instance bumped its own L1 when it wrote.
        l1.invalidate_tags(tags);
    }
}

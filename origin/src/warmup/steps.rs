//! The individual warm-up steps.

use std::time::Duration;

use velro_shared::token;

use crate::app::AppState;
use crate::db::{generations, projects, users};
use crate::http::reads::ReadRequest;
use crate::http::{generations as generation_routes, models, users as user_routes};

/// Concurrent batches of hot queries run at warm-up.
const PREPARE_BATCHES: u32 = 4;
/// How long warm-up waits for the invalidation subscription before it reports the step degraded.
const SUBSCRIBE_TIMEOUT: Duration = Duration::from_millis(500);
/// Hot-set users loaded at once, so pre-loading does not take every pool connection.
const HOT_SET_CONCURRENCY: usize = 4;

/// Opens the pool to `DB_POOL_SIZE` connections, then runs each hot query in a few
/// concurrent batches, so statements land in sqlx's per-connection statement
/// caches before the first request needs them.
pub(super) async fn open_pool_and_prepare(state: &AppState) -> anyhow::Result<()> {
    let connections = state.config.pool.size;
    // Acquired together, so the pool opens all of them at once and warm-up pays
    // for about one connect round trip rather than one per connection.
    let held = futures::future::join_all((0..connections).map(|_| state.db.acquire())).await;
    for connection in held {
        connection?;
    }

    // NOTE: a batch runs on whichever connection is free, so the statements are
    // prepared on a few connections and the rest prepare theirs on first use.
    // One batch per connection would make the pool open extra connections instead.
    let batches = (0..connections.min(PREPARE_BATCHES)).map(|_| prepare_hot_queries(state));
    for outcome in futures::future::join_all(batches).await {
        outcome?;
    }
    Ok(())
}

async fn prepare_hot_queries(state: &AppState) -> anyhow::Result<()> {
    // An id no row has: the queries run and prepare, and return nothing.
    let probe = "00000000-0000-0000-0000-000000000000";
    sqlx::query("SELECT 1").execute(&state.db).await?;
    users::find_by_id(&state.db, probe).await?;
    users::find_by_email(&state.db, probe).await?;
    generations::find(&state.db, probe, probe).await?;
    generations::list(
        &state.db,
        probe,
        &generations::ListQuery {
            limit: 1,
            ..Default::default()
        },
    )
    .await?;
    projects::list(&state.db, probe).await?;
    Ok(())
}

/// Signs and verifies a probe token, so a broken key fails here and not on the first login.
pub(super) async fn check_token_key(state: &AppState) -> anyhow::Result<()> {
    let now = crate::app::unix_now();
    let probe = state.tokens.access_token("warm-up", now);
    let claims = token::verify(state.tokens.key(), &probe, now)
        .map_err(|error| anyhow::anyhow!("the JWT key cannot verify its own token: {error}"))?;
    anyhow::ensure!(
        claims.sub == "warm-up",
        "the JWT key returned different claims"
    );
    Ok(())
}

/// Hashes a throwaway password, so the hasher's memory is allocated before the first login.
pub(super) async fn check_password_hasher(state: &AppState) -> anyhow::Result<()> {
    state
        .passwords
        .dummy_hash()
        .await
        .map(drop)
        .map_err(anyhow::Error::from)
}

/// Checks that Redis responds to PING.
pub(super) async fn ping_redis(state: &AppState) -> anyhow::Result<()> {
    match state.cache.l2() {
        Some(l2) => l2.ping().await,
        None => Ok(()),
    }
}

/// Starts the invalidation subscriber and waits until it is subscribed.
///
/// The subscriber keeps reconnecting in the background, so a Redis that is down
/// now is subscribed to once it returns.
pub(super) async fn subscribe_to_invalidations(state: &AppState) -> anyhow::Result<()> {
    let subscription = match state.subscription.get() {
        Some(subscription) => std::sync::Arc::clone(subscription),
        None => {
            let Some((subscription, _task)) = state.cache.subscribe() else {
                return Ok(());
            };
            // A retried warm-up finds the first subscriber already running.
            let _ = state.subscription.set(std::sync::Arc::clone(&subscription));
            subscription
        }
    };
    let deadline = tokio::time::Instant::now() + SUBSCRIBE_TIMEOUT;
    while !subscription.is_live() {
        anyhow::ensure!(
            tokio::time::Instant::now() < deadline,
            "not subscribed to invalidations after {SUBSCRIBE_TIMEOUT:?}; retrying in the background"
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    Ok(())
}

/// Loads the model catalogue into the cache.
pub(super) async fn load_model_catalogue(state: &AppState) -> anyhow::Result<()> {
    models::serve_catalogue(state, &ReadRequest::get("/models"))
        .await
        .map(drop)
        .map_err(anyhow::Error::from)
}

/// Loads the profiles and first generation pages of the `HOT_SET_SIZE` most
/// recently active users into the cache, so their first requests are hits.
pub(super) async fn load_hot_set(state: &AppState) -> anyhow::Result<()> {
    let limit = i64::from(state.config.hot_set_size);
    if limit == 0 {
        return Ok(());
    }
    let user_ids = users::most_recently_active(&state.db, limit).await?;
    for batch in user_ids.chunks(HOT_SET_CONCURRENCY) {
        let loads = batch.iter().map(|user_id| load_hot_user(state, user_id));
        for outcome in futures::future::join_all(loads).await {
            outcome?;
        }
    }
    tracing::debug!(users = user_ids.len(), "hot set loaded");
    Ok(())
}

async fn load_hot_user(state: &AppState, user_id: &str) -> Result<(), crate::error::AppError> {
    let first_page = generations::ListQuery {
        limit: velro_shared::api::DEFAULT_PAGE_LIMIT,
        ..Default::default()
    };
    user_routes::serve_profile(state, &ReadRequest::get("/users/profile"), user_id).await?;
    generation_routes::serve_list(
        state,
        &ReadRequest::get("/generations"),
        user_id,
        &first_page,
    )
    .await?;
    Ok(())
}

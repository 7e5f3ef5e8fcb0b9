//! Background checks that move the circuit breakers: a heartbeat that opens the
//! database breaker when the database stops responding, and the probes that close
//! each breaker once its dependency responds again.

use std::sync::Arc;
use std::time::Duration;

use sqlx::{ConnectOptions, Connection};

use crate::app::AppState;
use crate::breaker::CircuitBreaker;
use crate::db::{self, Db};

/// How long a breaker's probe may take before it counts as failed.
const PROBE_TIMEOUT: Duration = Duration::from_secs(2);
/// How often the database heartbeat runs while the breaker is closed, and how long one may take.
const HEARTBEAT_INTERVAL: Duration = Duration::from_secs(1);

/// Starts the probes that close the database and Redis breakers once their dependency responds again.
pub fn spawn(state: &AppState) -> Vec<tokio::task::JoinHandle<()>> {
    let mut probes = vec![spawn_database_heartbeat(
        state.db.clone(),
        state.db_breaker.clone(),
    )];
    let db = state.db.clone();
    probes.push(state.db_breaker.spawn_probe(PROBE_TIMEOUT, move || {
        let db = db.clone();
        async move {
            // A fresh acquire: `before_acquire` pings it, so a dead pooled connection is replaced.
            let mut connection = db.acquire().await?;
            sqlx::query("SELECT 1").execute(&mut *connection).await?;
            Ok(())
        }
    }));
    if let Some(l2) = state.cache.l2() {
        let l2_for_probe = Arc::clone(l2);
        probes.push(l2.breaker().spawn_probe(PROBE_TIMEOUT, move || {
            let l2 = Arc::clone(&l2_for_probe);
            async move { l2.recover().await }
        }));
    }
    probes
}

/// Opens and closes one connection outside the pool, to tell a busy pool from an unreachable database.
async fn can_connect(db: &Db) -> bool {
    let options = db.connect_options();
    match tokio::time::timeout(HEARTBEAT_INTERVAL, options.connect()).await {
        Ok(Ok(connection)) => {
            let _ = connection.close().await;
            true
        }
        Ok(Err(_)) | Err(_) => false,
    }
}

/// Runs `SELECT 1` every [`HEARTBEAT_INTERVAL`] while the database breaker is closed,
/// counting failures against it.
///
/// Requests alone cannot open the breaker when the database refuses connections:
/// sqlx retries a refused connect until `DB_POOL_TIMEOUT`, so the first failure
/// would arrive after 30 s. A heartbeat that times out is followed by one direct
/// connection attempt: when that works too, the pool was only busy, which is not
/// counted.
fn spawn_database_heartbeat(db: Db, breaker: CircuitBreaker) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        loop {
            tokio::time::sleep(HEARTBEAT_INTERVAL).await;
            if !breaker.allows() {
                continue;
            }
            let check = async {
                let mut connection = db.acquire().await?;
                sqlx::query("SELECT 1").execute(&mut *connection).await?;
                Ok::<(), sqlx::Error>(())
            };
            let failed = match tokio::time::timeout(HEARTBEAT_INTERVAL, check).await {
                Ok(Ok(())) => false,
                Ok(Err(error)) if db::is_connection_error(&error) => true,
                Ok(Err(sqlx::Error::PoolTimedOut)) | Err(_) => !can_connect(&db).await,
                Ok(Err(_)) => false,
            };
            if failed {
                tracing::debug!("database heartbeat failed");
                breaker.record_failure();
            }
        }
    })
}

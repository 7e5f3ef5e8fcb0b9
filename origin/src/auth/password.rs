//! Password hashing with argon2id, off the async workers.
//!
//! One hash takes tens of milliseconds of CPU by design. Running it on a tokio
//! worker would stall every request scheduled there, so hashes run on the
//! blocking pool, and a semaphore caps how many run at once so a burst of logins
//! queues here instead of taking every core from the reads.

use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use argon2::password_hash::rand_core::OsRng;
use argon2::password_hash::{PasswordHash, PasswordHasher as _, PasswordVerifier, SaltString};
use argon2::Argon2;
use tokio::sync::{OnceCell, Semaphore};

use crate::error::AppError;

/// How long a login waits for a hashing slot before it answers 503.
const QUEUE_TIMEOUT: Duration = Duration::from_secs(10);

/// Hashes and verifies passwords with a bound on concurrent work.
#[derive(Clone)]
pub struct PasswordHasher {
    permits: Arc<Semaphore>,
    /// Hash checked when the email is unknown, so a failed login takes as long
    /// whether or not the account exists and timing cannot reveal registered emails.
    dummy_hash: Arc<OnceCell<String>>,
}

impl PasswordHasher {
    /// Allows `max_concurrent` hashes at once; the core count is a good value.
    pub fn new(max_concurrent: usize) -> Self {
        Self {
            permits: Arc::new(Semaphore::new(max_concurrent.max(1))),
            dummy_hash: Arc::new(OnceCell::new()),
        }
    }

    /// Hashes a password into a PHC string with a fresh salt.
    pub async fn hash(&self, password: String) -> Result<String, AppError> {
        self.run(move || {
            let salt = SaltString::generate(&mut OsRng);
            Argon2::default()
                .hash_password(password.as_bytes(), &salt)
                .map(|hash| hash.to_string())
                .map_err(|error| anyhow::anyhow!("hashing a password failed: {error}"))
        })
        .await
    }

    /// Checks a password against a stored PHC hash, or against the dummy hash when there is none.
    pub async fn verify(&self, password: String, stored: Option<String>) -> Result<bool, AppError> {
        let stored = match stored {
            Some(hash) => hash,
            None => self.dummy_hash().await?,
        };
        self.run(move || {
            let parsed = PasswordHash::new(&stored).map_err(|error| anyhow::anyhow!("stored password hash is invalid: {error}"))?;
            Ok(Argon2::default().verify_password(password.as_bytes(), &parsed).is_ok())
        })
        .await
    }

    /// Computes the dummy hash; warm-up calls this so the first failed login pays nothing extra.
    pub async fn dummy_hash(&self) -> Result<String, AppError> {
        let hash = self
            .dummy_hash
            .get_or_try_init(|| self.hash("velro-dummy-password-for-timing".to_string()))
            .await?;
        Ok(hash.clone())
    }

    async fn run<T: Send + 'static>(&self, work: impl FnOnce() -> anyhow::Result<T> + Send + 'static) -> Result<T, AppError> {
        let _permit = tokio::time::timeout(QUEUE_TIMEOUT, self.permits.acquire())
            .await
            .map_err(|_| AppError::Unavailable { reason: "password hashing queue is full".to_string() })?
            .context("password hashing semaphore closed")?;
        let outcome = tokio::task::spawn_blocking(work).await.context("password hashing task panicked")?;
        Ok(outcome?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn hash_then_verify() {
        let hasher = PasswordHasher::new(2);
        let hash = hasher.hash("correct horse".to_string()).await.unwrap();
        assert!(hash.starts_with("$argon2id$"));
        assert!(hasher.verify("correct horse".to_string(), Some(hash.clone())).await.unwrap());
        assert!(!hasher.verify("wrong horse".to_string(), Some(hash)).await.unwrap());
    }

    #[tokio::test]
    async fn unknown_account_never_verifies() {
        let hasher = PasswordHasher::new(1);
        assert!(!hasher.verify("velro-dummy-password".to_string(), None).await.unwrap());
    }
}

//! Password hashing with argon2id, off the async workers.
//!
//! One hash takes tens of milliseconds of CPU by design. Running it on a tokio
//! worker would stall every request scheduled there, so hashes run on the
//! blocking pool. A semaphore caps how many run at once, so a burst of logins
//! queues here instead of taking every core from the reads.
//!
//! A successful login is also remembered for a while as an HMAC of the stored
//! hash and the password under a key that lives only in this process. A repeat
//! login with the same password then costs one HMAC instead of one argon2 run.
//! Wrong passwords are never remembered, so online guessing still pays the full
//! argon2 cost per attempt. The trade-off: someone who can read this process's
//! memory could test guesses at HMAC speed for users who logged in recently, but
//! such an attacker can already read passwords from requests in flight.

use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use argon2::password_hash::rand_core::OsRng;
use argon2::password_hash::{PasswordHash, PasswordHasher as _, PasswordVerifier, SaltString};
use argon2::Argon2;
use hmac::{Hmac, Mac};
use rand::RngCore;
use sha2::Sha256;
use tokio::sync::{OnceCell, Semaphore};

use crate::error::AppError;

/// How long a login waits for a hashing slot before it fails with 503.
const QUEUE_TIMEOUT: Duration = Duration::from_secs(10);
/// How long a successful login is remembered. A changed password hash no longer matches the remembered one.
const REMEMBER_LOGIN_FOR: Duration = Duration::from_secs(10 * 60);
/// Most remembered logins, one per user.
const MAX_REMEMBERED_LOGINS: u64 = 100_000;

/// Hashes and verifies passwords with a bound on concurrent work.
#[derive(Clone)]
pub struct PasswordHasher {
    permits: Arc<Semaphore>,
    /// Hash checked when the email is unknown, so a failed login takes as long
    /// whether or not the account exists and timing cannot reveal registered emails.
    dummy_hash: Arc<OnceCell<String>>,
    /// User id -> HMAC of (stored hash, password) of their last successful login.
    /// Behind an `Arc` because cloning a moka cache updates several reference
    /// counts, and the application state holding it is cloned on every request.
    remembered: Arc<moka::sync::Cache<String, [u8; 32]>>,
    /// HMAC keyed with a random key made at start-up, cloned for each fingerprint.
    remember_mac: Arc<Hmac<Sha256>>,
}

impl PasswordHasher {
    /// Allows `max_concurrent` hashes at once; the core count is a good value.
    pub fn new(max_concurrent: usize) -> Self {
        Self {
            permits: Arc::new(Semaphore::new(max_concurrent.max(1))),
            dummy_hash: Arc::new(OnceCell::new()),
            remembered: Arc::new(
                moka::sync::Cache::builder()
                    .max_capacity(MAX_REMEMBERED_LOGINS)
                    .time_to_live(REMEMBER_LOGIN_FOR)
                    .build(),
            ),
            remember_mac: Arc::new(random_mac()),
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
            let parsed = PasswordHash::new(&stored)
                .map_err(|error| anyhow::anyhow!("stored password hash is invalid: {error}"))?;
            Ok(Argon2::default()
                .verify_password(password.as_bytes(), &parsed)
                .is_ok())
        })
        .await
    }

    /// Checks a login's password for `user_id`, skipping argon2 when the same
    /// password matched the same stored hash recently; see the module docs.
    pub async fn verify_login(
        &self,
        user_id: &str,
        password: String,
        stored: String,
    ) -> Result<bool, AppError> {
        let fingerprint = self.fingerprint(&stored, &password);
        let remembered = self
            .remembered
            .get(user_id)
            .is_some_and(|known| constant_time_eq(&known, &fingerprint));
        if remembered {
            return Ok(true);
        }
        let verified = self.verify(password, Some(stored)).await?;
        if verified {
            self.remembered.insert(user_id.to_string(), fingerprint);
        }
        Ok(verified)
    }

    fn fingerprint(&self, stored: &str, password: &str) -> [u8; 32] {
        let mut mac = (*self.remember_mac).clone();
        mac.update(stored.as_bytes());
        mac.update(&[0]);
        mac.update(password.as_bytes());
        mac.finalize().into_bytes().into()
    }

    /// Computes the dummy hash; warm-up calls this so the first failed login pays nothing extra.
    pub async fn dummy_hash(&self) -> Result<String, AppError> {
        let hash = self
            .dummy_hash
            .get_or_try_init(|| self.hash("velro-dummy-password-for-timing".to_string()))
            .await?;
        Ok(hash.clone())
    }

    async fn run<T: Send + 'static>(
        &self,
        work: impl FnOnce() -> anyhow::Result<T> + Send + 'static,
    ) -> Result<T, AppError> {
        let _permit = tokio::time::timeout(QUEUE_TIMEOUT, self.permits.acquire())
            .await
            .map_err(|_| AppError::Unavailable {
                reason: "password hashing queue is full".to_string(),
            })?
            .context("password hashing semaphore closed")?;
        let outcome = tokio::task::spawn_blocking(work)
            .await
            .context("password hashing task panicked")?;
        Ok(outcome?)
    }
}

fn random_mac() -> Hmac<Sha256> {
    let mut key = [0u8; 32];
    rand::rngs::OsRng.fill_bytes(&mut key);
    // HMAC accepts a key of any length, so this cannot fail.
    <Hmac<Sha256> as Mac>::new_from_slice(&key).expect("HMAC takes keys of any length")
}

/// Compares two fingerprints in time that does not depend on where they differ.
fn constant_time_eq(left: &[u8; 32], right: &[u8; 32]) -> bool {
    left.iter()
        .zip(right)
        .fold(0u8, |difference, (a, b)| difference | (a ^ b))
        == 0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn hash_then_verify() {
        let hasher = PasswordHasher::new(2);
        let hash = hasher.hash("correct horse".to_string()).await.unwrap();
        assert!(hash.starts_with("$argon2id$"));
        assert!(hasher
            .verify("correct horse".to_string(), Some(hash.clone()))
            .await
            .unwrap());
        assert!(!hasher
            .verify("wrong horse".to_string(), Some(hash))
            .await
            .unwrap());
    }

    #[tokio::test]
    async fn remembered_login_needs_right_password() {
        let hasher = PasswordHasher::new(1);
        let hash = hasher.hash("correct horse".to_string()).await.unwrap();
        assert!(!hasher
            .verify_login("u1", "wrong horse".to_string(), hash.clone())
            .await
            .unwrap());
        assert_eq!(hasher.remembered.get("u1"), None);
        assert!(hasher
            .verify_login("u1", "correct horse".to_string(), hash.clone())
            .await
            .unwrap());
        assert!(hasher.remembered.get("u1").is_some());
        // A wrong password is still rejected while a right one is remembered.
        assert!(!hasher
            .verify_login("u1", "wrong horse".to_string(), hash.clone())
            .await
            .unwrap());
        // A changed stored hash (new password) does not match the remembered fingerprint.
        let new_hash = hasher.hash("new password".to_string()).await.unwrap();
        assert!(!hasher
            .verify_login("u1", "correct horse".to_string(), new_hash)
            .await
            .unwrap());
    }

    #[tokio::test]
    async fn unknown_account_never_verifies() {
        let hasher = PasswordHasher::new(1);
        assert!(!hasher
            .verify("velro-dummy-password".to_string(), None)
            .await
            .unwrap());
    }
}

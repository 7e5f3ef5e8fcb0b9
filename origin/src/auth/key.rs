//! Loading the JWT signing key.

use std::path::Path;

use anyhow::Context;
use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use rand::RngCore;
use velro_shared::token::TokenKey;

use crate::config::Config;

const SECRET_FILE: &str = "jwt-secret";

/// Returns the key from `JWT_SECRET`, or in development the one persisted under
/// the data folder, generating and saving it on first run so tokens survive restarts.
pub fn load_token_key(config: &Config) -> anyhow::Result<TokenKey> {
    if let Some(secret) = &config.jwt_secret {
        return TokenKey::new(secret.expose().as_bytes())
            .map_err(|error| anyhow::anyhow!("JWT_SECRET is unusable: {error}"));
    }
    let path = config.data_dir.join(SECRET_FILE);
    let secret = match std::fs::read_to_string(&path) {
        Ok(secret) => secret.trim().to_string(),
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => {
            let secret = generate_secret();
            write_secret(&path, &secret)?;
            tracing::warn!(
                path = %path.display(),
                "JWT_SECRET is not set; generated a development secret and saved it. Set JWT_SECRET in production"
            );
            secret
        }
        Err(error) => {
            return Err(error).with_context(|| format!("reading {} failed", path.display()))
        }
    };
    TokenKey::new(secret.as_bytes()).map_err(|error| {
        anyhow::anyhow!(
            "the secret in {} is unusable: {error}; delete the file to generate a new one",
            path.display()
        )
    })
}

fn generate_secret() -> String {
    let mut bytes = [0u8; 48];
    rand::rngs::OsRng.fill_bytes(&mut bytes);
    STANDARD.encode(bytes)
}

fn write_secret(path: &Path, secret: &str) -> anyhow::Result<()> {
    if let Some(folder) = path.parent() {
        std::fs::create_dir_all(folder)
            .with_context(|| format!("creating {} failed", folder.display()))?;
    }
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o600);
    }
    let mut file = options
        .open(path)
        .with_context(|| format!("creating {} failed", path.display()))?;
    std::io::Write::write_all(&mut file, secret.as_bytes())
        .with_context(|| format!("writing {} failed", path.display()))
}

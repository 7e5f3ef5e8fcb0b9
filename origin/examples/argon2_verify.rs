//! Times one password verification the way a login pays for it: `PasswordHasher::verify`
//! with the server's argon2id parameters, including the hop to the blocking pool.
//!
//!     cargo run --release -p velro-origin --example argon2_verify -- [SAMPLES]
//!
//! Prints one JSON object with the median and the range of SAMPLES verifications
//! (default 15), in milliseconds. `bench/run` reads it to state the login target,
//! which is "p95 within 5 ms of one argon2 verification".

use std::process::ExitCode;
use std::time::Instant;

use velro_origin::auth::PasswordHasher;

const DEFAULT_SAMPLES: usize = 15;
const PASSWORD: &str = "velro-demo-password";

#[tokio::main]
async fn main() -> ExitCode {
    let samples = match std::env::args().nth(1).map(|value| value.parse::<usize>()) {
        None => DEFAULT_SAMPLES,
        Some(Ok(count)) if count > 0 => count,
        Some(_) => {
            eprintln!("error: SAMPLES must be a positive whole number of verifications");
            return ExitCode::FAILURE;
        }
    };
    match measure(samples).await {
        Ok(mut times_ms) => {
            times_ms.sort_by(f64::total_cmp);
            let median_ms = times_ms[times_ms.len() / 2];
            println!(
                r#"{{"samples":{samples},"median_ms":{median_ms:.3},"min_ms":{:.3},"max_ms":{:.3}}}"#,
                times_ms[0],
                times_ms[times_ms.len() - 1]
            );
            ExitCode::SUCCESS
        }
        Err(error) => {
            eprintln!("error: {error:#}");
            ExitCode::FAILURE
        }
    }
}

/// Hashes the demo password once, then verifies it `samples` times, one at a time.
async fn measure(samples: usize) -> anyhow::Result<Vec<f64>> {
    let hasher = PasswordHasher::new(1);
    let hash = hasher.hash(PASSWORD.to_string()).await?;
    let mut times_ms = Vec::with_capacity(samples);
    for _ in 0..samples {
        let started = Instant::now();
        let verified = hasher
            .verify(PASSWORD.to_string(), Some(hash.clone()))
            .await?;
        times_ms.push(started.elapsed().as_secs_f64() * 1000.0);
        anyhow::ensure!(
            verified,
            "the demo password did not verify against its own hash"
        );
    }
    Ok(times_ms)
}

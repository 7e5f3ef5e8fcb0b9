//! Logins of the first and the last demo user before the clock starts, so that a
//! wrong URL, a stopped server or unseeded demo users end the command with an
//! explanation instead of a report full of errors.

use std::time::Duration;

use anyhow::{bail, Context};
use reqwest::{StatusCode, Url};
use velro_shared::api::{LoginRequest, TokenResponse};

use super::workflow::{demo_email, describe_error_body, RunContext};

/// Logs in as the first and the last demo user, which covers both a server that
/// is not there and fewer seeded demo users than `--users`.
pub async fn check_first_and_last_login(
    context: &RunContext,
    base_url: &Url,
    users: u32,
    timeout: Duration,
) -> anyhow::Result<()> {
    check_login(context, base_url, 1, users, timeout).await?;
    if users > 1 {
        check_login(context, base_url, users, users, timeout).await?;
    }
    Ok(())
}

/// Logs in as demo user `index`, failing with a message that names what went
/// wrong and what to do. `users` is the `--users` value, quoted in the advice.
async fn check_login(
    context: &RunContext,
    base_url: &Url,
    index: u32,
    users: u32,
    timeout: Duration,
) -> anyhow::Result<()> {
    let email = demo_email(index);
    let url = &context.urls.login;
    let request = LoginRequest {
        email: email.clone(),
        password: context.password.clone(),
    };

    let response = match context.client.post(url.clone()).json(&request).send().await {
        Ok(response) => response,
        Err(error) if error.is_connect() => {
            let cause = format!("{:#}", anyhow::Error::new(error));
            bail!(
                "could not connect to {base_url} ({cause}); check that the Velro server is running there \
                 (`velro-origin serve`) and that --base-url is right"
            );
        }
        Err(error) if error.is_timeout() => {
            bail!(
                "POST {url} as {email} got no response within {timeout:?} (--timeout); \
                 check that the server at {base_url} is healthy, or raise --timeout"
            );
        }
        Err(error) => {
            return Err(anyhow::Error::new(error).context(format!("POST {url} as {email} failed")));
        }
    };
    let status = response.status();
    let body = response
        .bytes()
        .await
        .with_context(|| format!("reading the response of POST {url} as {email} failed"))?;

    if status == StatusCode::UNAUTHORIZED {
        let cause = if index == 1 {
            "the demo users are probably not seeded, or were seeded with another password"
                .to_string()
        } else {
            format!(
                "demo1@velro.test logged in, so probably fewer than {users} demo users are seeded"
            )
        };
        bail!(
            "login as {email} was rejected with HTTP 401 ({}): {cause}; run `velro-origin seed --users {users}` \
             against the server's database, or pass the seeded password with --password",
            describe_error_body(&body)
        );
    }
    if status == StatusCode::NOT_FOUND {
        bail!(
            "POST {url} returned HTTP 404 ({}); check that --base-url is the root of the Velro API",
            describe_error_body(&body)
        );
    }
    if !status.is_success() {
        bail!(
            "login as {email} at {url} failed with HTTP {status} ({}); check the server's logs",
            describe_error_body(&body)
        );
    }
    serde_json::from_slice::<TokenResponse>(&body).with_context(|| {
        format!(
            "POST {url} returned HTTP {status} but not a token response; check that --base-url is the root of the Velro API"
        )
    })?;
    Ok(())
}

//! Registration, login, refresh-token rotation, logout and access-token checks.

mod common;

use std::time::{SystemTime, UNIX_EPOCH};

use reqwest::Method;
use serde_json::json;
use velro_shared::api::{TokenResponse, User};
use velro_shared::token::{sign, Claims, TokenKey};

use common::{assert_error, parse_json, unique_email, TestApp, JWT_SECRET};

const PASSWORD: &str = "correct horse battery staple";

fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .expect("the system clock should be after 1970")
        .as_secs()
}

/// Signs an access token for `user_id` with `secret`, valid from `iat` until `exp` (unix seconds).
fn forge_token(secret: &str, user_id: &str, iat: u64, exp: u64) -> String {
    let key = TokenKey::new(secret.as_bytes()).expect("the test secret is long enough for HS256");
    let claims = Claims {
        sub: user_id.to_owned(),
        iat,
        exp,
        jti: uuid::Uuid::new_v4().to_string(),
    };
    sign(&key, &claims)
}

#[tokio::test]
async fn register_returns_tokens_and_user() {
    let app = TestApp::spawn().await;
    let email = unique_email();

    let tokens: TokenResponse = parse_json(app.register(&email, PASSWORD).await, 201).await;

    assert_eq!(tokens.token_type, "Bearer");
    assert_eq!(tokens.expires_in, 900);
    assert!(!tokens.access_token.is_empty());
    assert!(!tokens.refresh_token.is_empty());
    assert_eq!(tokens.user.email, email);
    assert!(
        uuid::Uuid::parse_str(&tokens.user.id).is_ok(),
        "user id is not a UUID: {}",
        tokens.user.id
    );

    let profile: User = parse_json(app.profile(&tokens.access_token).await, 200).await;
    assert_eq!(profile, tokens.user);
}

#[tokio::test]
async fn register_normalises_email_and_defaults_display_name() {
    let app = TestApp::spawn().await;
    let local_part = format!("Mixed.Case-{}", uuid::Uuid::new_v4().simple());
    let email = format!("  {local_part}@Example.COM \t");

    let tokens: TokenResponse = parse_json(app.register(&email, PASSWORD).await, 201).await;

    let expected_local_part = local_part.to_lowercase();
    assert_eq!(
        tokens.user.email,
        format!("{expected_local_part}@example.com")
    );
    assert_eq!(tokens.user.display_name, expected_local_part);
}

#[tokio::test]
async fn register_keeps_given_display_name() {
    let app = TestApp::spawn().await;
    let body =
        json!({ "email": unique_email(), "password": PASSWORD, "display_name": "Ada Lovelace" });

    let tokens: TokenResponse = parse_json(app.register_with(&body).await, 201).await;

    assert_eq!(tokens.user.display_name, "Ada Lovelace");
}

#[tokio::test]
async fn register_rejects_invalid_email() {
    let app = TestApp::spawn().await;

    for email in ["", "   ", "no-at-sign.example.com", "@example.com", "user@"] {
        let response = app.register(email, PASSWORD).await;
        assert_eq!(response.status(), 400, "email {email:?}");
        assert_error(response, 400, "validation_failed").await;
    }
}

#[tokio::test]
async fn register_enforces_password_length() {
    let app = TestApp::spawn().await;

    for password in ["1234567".to_owned(), "x".repeat(257)] {
        let response = app.register(&unique_email(), &password).await;
        assert_eq!(
            response.status(),
            400,
            "password of {} characters",
            password.len()
        );
        assert_error(response, 400, "validation_failed").await;
    }

    for password in ["12345678".to_owned(), "x".repeat(256)] {
        let response = app.register(&unique_email(), &password).await;
        assert_eq!(
            response.status(),
            201,
            "password of {} characters should be accepted",
            password.len()
        );
    }
}

#[tokio::test]
async fn register_rejects_taken_email() {
    let app = TestApp::spawn().await;
    let user = app.signup().await;

    let same = app.register(&user.email, "another password").await;
    assert_error(same, 409, "conflict").await;

    let differently_cased = app
        .register(&user.email.to_uppercase(), "another password")
        .await;
    assert_error(differently_cased, 409, "conflict").await;
}

#[tokio::test]
async fn concurrent_registrations_of_one_email_conflict() {
    let app = TestApp::spawn().await;
    let email = unique_email();

    let (first, second) = tokio::join!(
        app.register(&email, PASSWORD),
        app.register(&email, PASSWORD)
    );

    let mut statuses = [first.status().as_u16(), second.status().as_u16()];
    statuses.sort_unstable();
    assert_eq!(
        statuses,
        [201, 409],
        "one registration should win and the other conflict"
    );
    let loser = if first.status() == 409 { first } else { second };
    assert_error(loser, 409, "conflict").await;
}

#[tokio::test]
async fn login_returns_tokens_for_correct_password() {
    let app = TestApp::spawn().await;
    let user = app.signup().await;

    let tokens: TokenResponse = parse_json(app.login(&user.email, &user.password).await, 200).await;

    assert_eq!(tokens.token_type, "Bearer");
    assert_eq!(tokens.expires_in, 900);
    assert_eq!(tokens.user, user.user);
    let profile = app.profile(&tokens.access_token).await;
    assert_eq!(profile.status(), 200);
}

#[tokio::test]
async fn login_rejects_wrong_password_and_unknown_email() {
    let app = TestApp::spawn().await;
    let user = app.signup().await;

    let wrong_password = app.login(&user.email, "not the password").await;
    assert_error(wrong_password, 401, "invalid_credentials").await;

    let unknown_email = app.login(&unique_email(), PASSWORD).await;
    assert_error(unknown_email, 401, "invalid_credentials").await;
}

#[tokio::test]
async fn refresh_rotates_refresh_token() {
    let app = TestApp::spawn().await;
    let user = app.signup().await;

    let rotated: TokenResponse = parse_json(app.refresh(&user.refresh_token).await, 200).await;

    assert_ne!(rotated.refresh_token, user.refresh_token);
    assert_eq!(rotated.token_type, "Bearer");
    assert_eq!(rotated.user, user.user);
    assert_eq!(app.profile(&rotated.access_token).await.status(), 200);

    // The rotated token is itself usable once.
    let again: TokenResponse = parse_json(app.refresh(&rotated.refresh_token).await, 200).await;
    assert_ne!(again.refresh_token, rotated.refresh_token);
}

#[tokio::test]
async fn refresh_token_reuse_revokes_its_successors() {
    let app = TestApp::spawn().await;
    let user = app.signup().await;
    let rotated: TokenResponse = parse_json(app.refresh(&user.refresh_token).await, 200).await;

    let reuse = app.refresh(&user.refresh_token).await;
    assert_error(reuse, 401, "unauthorized").await;

    // Reuse suggests the token was stolen, so the token issued from it is revoked too.
    let successor = app.refresh(&rotated.refresh_token).await;
    assert_error(successor, 401, "unauthorized").await;
}

#[tokio::test]
async fn refresh_rejects_unknown_token() {
    let app = TestApp::spawn().await;

    let response = app.refresh("not-a-refresh-token").await;

    assert_error(response, 401, "unauthorized").await;
}

#[tokio::test]
async fn logout_revokes_refresh_token() {
    let app = TestApp::spawn().await;
    let user = app.signup().await;

    let logout = app.logout(&user.refresh_token).await;
    assert_eq!(logout.status(), 204);
    let body = logout
        .bytes()
        .await
        .expect("reading the logout body should succeed");
    assert!(body.is_empty(), "204 must not carry a body");

    let refresh = app.refresh(&user.refresh_token).await;
    assert_error(refresh, 401, "unauthorized").await;
}

#[tokio::test]
async fn protected_routes_require_token() {
    let app = TestApp::spawn().await;

    for (method, path) in [
        (Method::GET, "/users/profile"),
        (Method::PATCH, "/users/profile"),
        (Method::GET, "/projects"),
        (Method::POST, "/projects"),
        (Method::GET, "/generations"),
        (Method::POST, "/generations"),
        (
            Method::GET,
            "/generations/00000000-0000-0000-0000-000000000000",
        ),
    ] {
        let response = app
            .request(method.clone(), path)
            .send()
            .await
            .expect("the request should reach the server");
        assert_eq!(response.status(), 401, "{method} {path}");
        assert_error(response, 401, "unauthorized").await;
    }
}

#[tokio::test]
async fn malformed_or_foreign_tokens_are_rejected() {
    let app = TestApp::spawn().await;
    let user = app.signup().await;
    let now = unix_now();

    let other_secret = "a-different-secret-that-is-also-48-bytes-long!!!";
    let wrong_signature = forge_token(other_secret, &user.user.id, now, now + 900);
    let mut tampered = user.access_token.clone();
    // Replacing the first signature character changes the decoded signature bytes;
    // the last character could differ only in padding bits.
    let signature_start = tampered.rfind('.').expect("a JWT has two dots") + 1;
    let replacement = if tampered[signature_start..].starts_with('A') {
        "B"
    } else {
        "A"
    };
    tampered.replace_range(signature_start..signature_start + 1, replacement);

    let cases = [
        ("garbage", "Bearer not-a-jwt".to_owned()),
        ("wrong signature", format!("Bearer {wrong_signature}")),
        ("tampered signature", format!("Bearer {tampered}")),
        ("basic scheme", format!("Basic {}", user.access_token)),
        ("empty bearer", "Bearer ".to_owned()),
    ];
    for (case, authorization) in cases {
        let response = app
            .request(Method::GET, "/users/profile")
            .header("authorization", authorization)
            .send()
            .await
            .expect("the request should reach the server");
        assert_eq!(response.status(), 401, "case {case}");
        assert_error(response, 401, "unauthorized").await;
    }
}

#[tokio::test]
async fn expired_token_is_rejected_as_expired() {
    let app = TestApp::spawn().await;
    let user = app.signup().await;
    let now = unix_now();
    let expired = forge_token(JWT_SECRET, &user.user.id, now - 3_600, now - 60);

    let response = app.profile(&expired).await;

    assert_error(response, 401, "token_expired").await;
}

#[tokio::test]
async fn forged_token_with_test_secret_is_accepted() {
    // Checks the forging helper itself, so the expiry test cannot pass for the wrong reason.
    let app = TestApp::spawn().await;
    let user = app.signup().await;
    let now = unix_now();
    let token = forge_token(JWT_SECRET, &user.user.id, now, now + 900);

    let profile: User = parse_json(app.profile(&token).await, 200).await;

    assert_eq!(profile.id, user.user.id);
}

//! Malformed requests get the API's error envelope with the right status, and none
//! of them brings the server down.

mod common;

use reqwest::{Method, Response};
use serde_json::json;

use common::{assert_error, header, parse_json, TestApp, MODEL};

/// Size limit of request bodies: 64 KiB.
const BODY_LIMIT_BYTES: usize = 64 * 1024;

/// Sends `body` as-is with `content-type: application/json`.
async fn post_raw_json(
    app: &TestApp,
    path: &str,
    token: Option<&str>,
    body: impl Into<reqwest::Body>,
) -> Response {
    let mut request = app
        .request(Method::POST, path)
        .header("content-type", "application/json");
    if let Some(token) = token {
        request = request.bearer_auth(token);
    }
    request
        .body(body)
        .send()
        .await
        .expect("the request should reach the server")
}

#[tokio::test]
async fn malformed_json_is_invalid_json() {
    let app = TestApp::spawn().await;
    let user = app.signup().await;

    for body in [
        "{not json",
        "",
        "{\"email\": \"a@example.com\",}",
        "[]",
        "null",
    ] {
        let response = post_raw_json(&app, "/auth/register", None, body).await;
        assert_eq!(response.status(), 400, "body {body:?}");
        assert_error(response, 400, "invalid_json").await;
    }

    let generation = post_raw_json(
        &app,
        "/generations",
        Some(&user.access_token),
        "{\"prompt\": ",
    )
    .await;
    assert_error(generation, 400, "invalid_json").await;

    let not_utf8 = post_raw_json(&app, "/auth/login", None, vec![0xff_u8, 0xfe, 0x7b]).await;
    assert_error(not_utf8, 400, "invalid_json").await;
}

#[tokio::test]
async fn wrongly_shaped_json_is_invalid_json() {
    let app = TestApp::spawn().await;
    let user = app.signup().await;

    let cases = [
        (
            "missing password",
            "/auth/register",
            json!({ "email": "someone@example.com" }),
        ),
        (
            "email is a number",
            "/auth/login",
            json!({ "email": 5, "password": "correct horse" }),
        ),
        (
            "unknown field",
            "/auth/login",
            json!({ "email": "a@example.com", "password": "x", "remember": true }),
        ),
    ];
    for (case, path, body) in cases {
        let response = post_raw_json(&app, path, None, body.to_string()).await;
        assert_eq!(response.status(), 400, "case {case}");
        assert_error(response, 400, "invalid_json").await;
    }

    let missing_model = app
        .create_generation(&user.access_token, &json!({ "prompt": "a fox" }), None)
        .await;
    assert_error(missing_model, 400, "invalid_json").await;
}

#[tokio::test]
async fn profile_update_rejects_unknown_field() {
    let app = TestApp::spawn().await;
    let user = app.signup().await;

    let response = app
        .update_profile(&user.access_token, &json!({ "display_nme": "Typo" }))
        .await;

    assert_error(response, 400, "invalid_json").await;
    let profile: velro_shared::api::User =
        parse_json(app.profile(&user.access_token).await, 200).await;
    assert_eq!(profile.display_name, user.user.display_name);
}

#[tokio::test]
async fn profile_update_validates_display_name() {
    let app = TestApp::spawn().await;
    let user = app.signup().await;

    for display_name in [String::new(), "d".repeat(101)] {
        let response = app
            .update_profile(&user.access_token, &json!({ "display_name": display_name }))
            .await;
        assert_eq!(
            response.status(),
            400,
            "display name of {} characters",
            display_name.len()
        );
        assert_error(response, 400, "validation_failed").await;
    }

    let longest = app
        .update_profile(
            &user.access_token,
            &json!({ "display_name": "d".repeat(100) }),
        )
        .await;
    assert_eq!(
        longest.status(),
        200,
        "a display name of 100 characters should be accepted"
    );
}

#[tokio::test]
async fn non_json_content_type_is_unsupported() {
    let app = TestApp::spawn().await;
    let user = app.signup().await;
    let body =
        json!({ "email": "someone@example.com", "password": "correct horse battery" }).to_string();

    let register = app
        .request(Method::POST, "/auth/register")
        .header("content-type", "text/plain")
        .body(body)
        .send()
        .await
        .expect("the request should reach the server");
    assert_error(register, 415, "unsupported_media_type").await;

    let generation = app
        .authed(Method::POST, "/generations", &user.access_token)
        .header("content-type", "text/plain")
        .body(json!({ "prompt": "a fox", "model": MODEL }).to_string())
        .send()
        .await
        .expect("the request should reach the server");
    assert_error(generation, 415, "unsupported_media_type").await;
}

#[tokio::test]
async fn oversized_body_is_rejected() {
    let app = TestApp::spawn().await;
    let user = app.signup().await;
    let password = "p".repeat(BODY_LIMIT_BYTES + 1024);
    let body = json!({ "email": "big@example.com", "password": password }).to_string();
    assert!(body.len() > BODY_LIMIT_BYTES);

    let response = post_raw_json(&app, "/auth/register", None, body).await;
    assert_error(response, 413, "payload_too_large").await;

    // A body just under the limit reaches validation instead.
    let prompt = "p".repeat(BODY_LIMIT_BYTES - 1024);
    let under_limit = app
        .create_generation(
            &user.access_token,
            &json!({ "prompt": prompt, "model": MODEL }),
            None,
        )
        .await;
    assert_error(under_limit, 400, "validation_failed").await;
}

#[tokio::test]
async fn unknown_route_is_not_found() {
    let app = TestApp::spawn().await;
    let user = app.signup().await;

    for path in [
        "/no-such-route",
        "/auth",
        "/generations/00000000-0000-0000-0000-000000000000/extra",
        "/users",
    ] {
        let response = app
            .authed(Method::GET, path, &user.access_token)
            .send()
            .await
            .expect("the request should reach the server");
        assert_eq!(response.status(), 404, "path {path}");
        assert_error(response, 404, "not_found").await;
    }

    let anonymous = app
        .request(Method::GET, "/no-such-route")
        .send()
        .await
        .expect("the request should reach the server");
    assert_error(anonymous, 404, "not_found").await;
}

#[tokio::test]
async fn wrong_method_is_not_allowed() {
    let app = TestApp::spawn().await;
    let user = app.signup().await;

    for (method, path) in [
        (Method::DELETE, "/models"),
        (Method::GET, "/auth/login"),
        (Method::PUT, "/users/profile"),
        (Method::PUT, "/generations"),
        (Method::POST, "/health"),
    ] {
        let response = app
            .authed(method.clone(), path, &user.access_token)
            .send()
            .await
            .expect("the request should reach the server");
        assert_eq!(response.status(), 405, "{method} {path}");
        // RFC 9110 §15.5.6: a 405 response must list the allowed methods in `Allow`.
        let allow = header(&response, "allow").unwrap_or_default();
        assert!(
            !allow.is_empty(),
            "{method} {path} returned 405 without an allow header"
        );
        assert_error(response, 405, "method_not_allowed").await;
    }
}

#[tokio::test]
async fn burst_of_bad_requests_leaves_server_healthy() {
    let mut app = TestApp::spawn().await;
    let user = app.signup().await;
    let oversized = "x".repeat(BODY_LIMIT_BYTES * 2);

    let mut requests = Vec::new();
    for round in 0..10 {
        requests.push(post_raw_json(
            &app,
            "/auth/login",
            None,
            "{broken".to_owned(),
        ));
        requests.push(post_raw_json(
            &app,
            "/generations",
            Some(&user.access_token),
            oversized.clone(),
        ));
        requests.push(post_raw_json(
            &app,
            "/generations",
            Some("garbage"),
            format!("{{\"n\": {round}}}"),
        ));
        requests.push(post_raw_json(
            &app,
            "/projects",
            Some(&user.access_token),
            "[1, 2".to_owned(),
        ));
        requests.push(post_raw_json(&app, "/no-such-route", None, "{}".to_owned()));
    }
    let responses = futures::future::join_all(requests).await;

    for response in responses {
        let status = response.status();
        assert!(
            status.is_client_error(),
            "bad input should get a 4xx, got {status} from {}",
            response.url()
        );
    }
    let health = app.health().await;
    assert_eq!(health.status(), 200);
    assert!(
        app.is_running(),
        "the server process exited during the burst"
    );
}

#[tokio::test]
async fn invalid_utf8_path_id_is_not_found() {
    let app = TestApp::spawn().await;
    let user = app.signup().await;

    for (method, path) in [
        (Method::GET, "/projects/%FF"),
        (Method::PATCH, "/projects/%FF"),
        (Method::DELETE, "/projects/%FF"),
        (Method::GET, "/generations/%FF"),
        (Method::DELETE, "/generations/%FF"),
    ] {
        let mut request = app.authed(method.clone(), path, &user.access_token);
        if method == Method::PATCH {
            request = request.json(&json!({ "name": "x" }));
        }
        let response = request.send().await.unwrap();
        assert_error(response, 404, "not_found").await;
    }
}

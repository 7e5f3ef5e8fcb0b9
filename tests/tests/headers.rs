//! Headers on every response (`x-request-id`, `server-timing`) and gzip compression.

mod common;

use reqwest::Method;
use velro_shared::api::GenerationPage;

use common::{assert_error, header, TestApp};

#[tokio::test]
async fn request_id_is_generated_when_absent() {
    let app = TestApp::spawn().await;

    let first = app.health().await;
    let second = app.health().await;

    let first_id =
        header(&first, "x-request-id").expect("every response should carry x-request-id");
    let second_id =
        header(&second, "x-request-id").expect("every response should carry x-request-id");
    assert!(!first_id.is_empty());
    assert_ne!(first_id, second_id, "each request should get its own id");
}

#[tokio::test]
async fn request_id_is_echoed() {
    let app = TestApp::spawn().await;
    let request_id = format!("client-{}", uuid::Uuid::new_v4());

    let success = app
        .request(Method::GET, "/models")
        .header("x-request-id", &request_id)
        .send()
        .await
        .expect("the request should reach the server");
    assert_eq!(success.status(), 200);
    assert_eq!(
        header(&success, "x-request-id").as_deref(),
        Some(request_id.as_str())
    );

    let failure = app
        .request(Method::GET, "/users/profile")
        .header("x-request-id", &request_id)
        .send()
        .await
        .expect("the request should reach the server");
    let error = assert_error(failure, 401, "unauthorized").await;
    assert_eq!(error.request_id, request_id);
}

#[tokio::test]
async fn server_timing_reports_app_duration() {
    let app = TestApp::spawn().await;
    let user = app.signup().await;

    let responses = [
        app.health().await,
        app.models().await,
        app.profile(&user.access_token).await,
        app.request(Method::GET, "/no-such-route")
            .send()
            .await
            .expect("the request should reach the server"),
        app.login(&user.email, "wrong password").await,
    ];
    for response in responses {
        let url = response.url().path().to_owned();
        let status = response.status();
        let timing = header(&response, "server-timing")
            .unwrap_or_else(|| panic!("{status} {url} has no server-timing header"));
        assert!(
            timing.contains("app;dur="),
            "{status} {url} server-timing: {timing}"
        );
        assert!(
            header(&response, "x-request-id").is_some(),
            "{status} {url} has no x-request-id"
        );
    }
}

#[tokio::test]
async fn large_list_is_gzipped_on_request() {
    let app = TestApp::spawn().await;
    let user = app.signup().await;
    for index in 0..8 {
        let prompt = format!(
            "scene {index}: {}",
            "a long and detailed description ".repeat(10)
        );
        app.new_generation(&user.access_token, &prompt, None).await;
    }

    // reqwest is built without its gzip feature, so it neither advertises gzip nor
    // decompresses: the bytes below are exactly what the server sent.
    let plain = app.list_generations(&user.access_token, "limit=100").await;
    assert_eq!(plain.status(), 200);
    assert_eq!(
        header(&plain, "content-encoding"),
        None,
        "gzip was not requested"
    );
    let plain_body = plain
        .bytes()
        .await
        .expect("reading the body should succeed");
    assert!(
        plain_body.len() > 1024,
        "the test needs a body over 1 KB, got {} bytes",
        plain_body.len()
    );
    let page: GenerationPage =
        serde_json::from_slice(&plain_body).expect("an uncompressed body should be JSON");
    assert_eq!(page.items.len(), 8);

    let gzipped = app
        .authed(Method::GET, "/generations?limit=100", &user.access_token)
        .header("accept-encoding", "gzip")
        .send()
        .await
        .expect("the request should reach the server");
    assert_eq!(gzipped.status(), 200);
    assert_eq!(
        header(&gzipped, "content-encoding").as_deref(),
        Some("gzip")
    );
    let gzipped_body = gzipped
        .bytes()
        .await
        .expect("reading the body should succeed");
    assert!(
        gzipped_body.starts_with(&[0x1f, 0x8b]),
        "body should start with the gzip magic bytes"
    );
    assert!(
        gzipped_body.len() < plain_body.len(),
        "{} gzip bytes vs {} plain",
        gzipped_body.len(),
        plain_body.len()
    );
}

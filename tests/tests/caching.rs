//! HTTP caching as a client sees it: `Cache-Control`, `Vary`, weak ETags with
//! `If-None-Match`, the origin's in-process cache reported in `Cache-Status`
//! (RFC 9211), and invalidation of cached reads by writes.

mod common;

use reqwest::Method;
use serde_json::json;
use velro_shared::api::{GenerationPage, GenerationStatus, User};

use common::{
    assert_error, cache_control, cache_status_params, header, header_list, max_age, parse_json,
    TestApp,
};

/// Returns whether the comma-separated header value lists `token`, compared case-insensitively.
fn lists_token(value: &str, token: &str) -> bool {
    value
        .split(',')
        .any(|item| item.trim().eq_ignore_ascii_case(token))
}

#[tokio::test]
async fn models_are_publicly_cacheable() {
    let app = TestApp::spawn().await;

    let response = app.models().await;

    assert_eq!(response.status(), 200);
    let cache_control = cache_control(&response);
    assert!(
        cache_control.starts_with("public"),
        "cache-control: {cache_control}"
    );
    assert!(
        max_age(&cache_control).is_some_and(|seconds| seconds > 0),
        "cache-control: {cache_control}"
    );
}

#[tokio::test]
async fn models_etag_revalidates_to_not_modified() {
    let app = TestApp::spawn().await;
    let first = app.models().await;
    let etag = header(&first, "etag").expect("GET /models should carry an etag");
    assert!(etag.starts_with("W/\""), "etag should be weak: {etag}");

    let revalidated = app
        .request(Method::GET, "/models")
        .header("if-none-match", &etag)
        .send()
        .await
        .expect("the request should reach the server");

    assert_eq!(revalidated.status(), 304);
    assert_eq!(header(&revalidated, "etag").as_deref(), Some(etag.as_str()));
    let body = revalidated
        .bytes()
        .await
        .expect("reading the 304 body should succeed");
    assert!(
        body.is_empty(),
        "304 must not carry a body, got {} bytes",
        body.len()
    );

    let other_etag = app
        .request(Method::GET, "/models")
        .header("if-none-match", "W/\"something-else\"")
        .send()
        .await
        .expect("the request should reach the server");
    assert_eq!(other_etag.status(), 200);
}

#[tokio::test]
async fn private_reads_vary_on_authorization() {
    let app = TestApp::spawn().await;
    let user = app.signup().await;
    let generation = app.new_generation(&user.access_token, "a fox", None).await;

    let responses = [
        app.profile(&user.access_token).await,
        app.list_projects(&user.access_token).await,
        app.list_generations(&user.access_token, "").await,
        app.get_generation(&user.access_token, &generation.id).await,
    ];
    for response in responses {
        let url = response.url().path().to_owned();
        assert_eq!(response.status(), 200, "{url}");
        let cache_control = cache_control(&response);
        assert!(
            cache_control.starts_with("private"),
            "{url} cache-control: {cache_control}"
        );
        let vary = header_list(&response, "vary");
        assert!(
            lists_token(&vary, "authorization"),
            "{url} vary should list Authorization: {vary:?}"
        );
    }
}

#[tokio::test]
async fn auth_responses_are_not_stored() {
    let app = TestApp::spawn().await;
    let user = app.signup().await;

    let register = app
        .register(&common::unique_email(), "correct horse battery staple")
        .await;
    let login = app.login(&user.email, &user.password).await;
    let refresh = app.refresh(&user.refresh_token).await;
    let failed_login = app.login(&user.email, "wrong password").await;

    for response in [register, login, refresh, failed_login] {
        let url = response.url().path().to_owned();
        let cache_control = cache_control(&response);
        assert!(
            lists_token(&cache_control, "no-store"),
            "{url} cache-control: {cache_control}"
        );
    }
}

#[tokio::test]
async fn repeated_profile_read_hits_origin_cache() {
    let app = TestApp::spawn().await;
    let user = app.signup().await;

    let first = app.profile(&user.access_token).await;
    let first_params = cache_status_params(&first);
    let second = app.profile(&user.access_token).await;
    let second_params = cache_status_params(&second);

    assert!(
        first_params.iter().any(|param| param == "fwd=miss"),
        "first read: {first_params:?}"
    );
    assert!(
        second_params.iter().any(|param| param == "hit"),
        "second read: {second_params:?}"
    );
    let first_body: User = parse_json(first, 200).await;
    let second_body: User = parse_json(second, 200).await;
    assert_eq!(first_body, second_body);
}

#[tokio::test]
async fn origin_cache_is_per_user() {
    let app = TestApp::spawn().await;
    let alice = app.signup().await;
    let bob = app.signup().await;
    let alice_first: User = parse_json(app.profile(&alice.access_token).await, 200).await;
    let alice_cached: User = parse_json(app.profile(&alice.access_token).await, 200).await;
    assert_eq!(alice_first, alice_cached);

    let bob_response = app.profile(&bob.access_token).await;

    let params = cache_status_params(&bob_response);
    assert!(
        params.iter().any(|param| param == "fwd=miss"),
        "bob's first read: {params:?}"
    );
    let bob_profile: User = parse_json(bob_response, 200).await;
    assert_eq!(bob_profile.id, bob.user.id);
}

#[tokio::test]
async fn profile_etag_revalidates_to_not_modified() {
    let app = TestApp::spawn().await;
    let user = app.signup().await;
    let first = app.profile(&user.access_token).await;
    let etag = header(&first, "etag").expect("GET /users/profile should carry an etag");
    assert!(etag.starts_with("W/\""), "etag should be weak: {etag}");

    let revalidated = app
        .authed(Method::GET, "/users/profile", &user.access_token)
        .header("if-none-match", &etag)
        .send()
        .await
        .expect("the request should reach the server");

    assert_eq!(revalidated.status(), 304);
    assert_eq!(header(&revalidated, "etag").as_deref(), Some(etag.as_str()));
    let body = revalidated
        .bytes()
        .await
        .expect("reading the 304 body should succeed");
    assert!(
        body.is_empty(),
        "304 must not carry a body, got {} bytes",
        body.len()
    );
}

#[tokio::test]
async fn profile_update_invalidates_cached_profile() {
    let app = TestApp::spawn().await;
    let user = app.signup().await;
    let before = app.profile(&user.access_token).await;
    let old_etag = header(&before, "etag").expect("GET /users/profile should carry an etag");
    // A second read puts the profile in the origin's cache for certain.
    let cached = app.profile(&user.access_token).await;
    assert!(cache_status_params(&cached)
        .iter()
        .any(|param| param == "hit"));

    let updated: User = parse_json(
        app.update_profile(&user.access_token, &json!({ "display_name": "Renamed" }))
            .await,
        200,
    )
    .await;
    assert_eq!(updated.display_name, "Renamed");

    let after: User = parse_json(app.profile(&user.access_token).await, 200).await;
    assert_eq!(after.display_name, "Renamed");

    let revalidated = app
        .authed(Method::GET, "/users/profile", &user.access_token)
        .header("if-none-match", &old_etag)
        .send()
        .await
        .expect("the request should reach the server");
    assert_eq!(
        revalidated.status(),
        200,
        "the old etag must not match the changed profile"
    );
    assert_ne!(
        header(&revalidated, "etag").as_deref(),
        Some(old_etag.as_str())
    );
}

#[tokio::test]
async fn new_generation_invalidates_cached_list() {
    let app = TestApp::spawn().await;
    let user = app.signup().await;
    let first = app.generation_page(&user.access_token, "").await;
    assert!(first.items.is_empty());
    let cached = app.list_generations(&user.access_token, "").await;
    assert!(cache_status_params(&cached)
        .iter()
        .any(|param| param == "hit"));

    let generation = app.new_generation(&user.access_token, "a fox", None).await;

    let after: GenerationPage = app.generation_page(&user.access_token, "").await;
    let ids: Vec<String> = after.items.into_iter().map(|item| item.id).collect();
    assert_eq!(ids, [generation.id]);
}

#[tokio::test]
async fn deleted_generation_is_not_served_from_cache() {
    let app = TestApp::spawn().await;
    let user = app.signup().await;
    let generation = app.new_generation(&user.access_token, "a fox", None).await;
    app.wait_for_generation_status(
        &user.access_token,
        &generation.id,
        GenerationStatus::Completed,
    )
    .await;
    // The worker invalidates the detail once more just after storing the result, so
    // the poll above may have cached a copy that is already gone. Prime it again.
    app.get_generation(&user.access_token, &generation.id).await;
    let cached = app.get_generation(&user.access_token, &generation.id).await;
    assert!(cache_status_params(&cached)
        .iter()
        .any(|param| param == "hit"));

    let delete = app
        .delete_generation(&user.access_token, &generation.id)
        .await;
    assert_eq!(delete.status(), 204);

    let after = app.get_generation(&user.access_token, &generation.id).await;
    assert_error(after, 404, "not_found").await;
}

#[tokio::test]
async fn project_deletion_invalidates_cached_list() {
    // The worker picks the generation up at once and then spends a minute on it, so
    // once it is running nothing else invalidates the list before the delete does.
    let app = TestApp::builder()
        .env("GENERATION_STEP_MS", "60000")
        .spawn()
        .await;
    let user = app.signup().await;
    let project = app.new_project(&user.access_token, "Short-lived").await;
    let generation = app
        .new_generation(&user.access_token, "a fox", Some(&project.id))
        .await;
    app.wait_for_generation_status(
        &user.access_token,
        &generation.id,
        GenerationStatus::Running,
    )
    .await;
    let before = app.generation_page(&user.access_token, "").await;
    assert_eq!(before.items.len(), 1);
    let cached = app.list_generations(&user.access_token, "").await;
    assert!(cache_status_params(&cached)
        .iter()
        .any(|param| param == "hit"));

    let delete = app.delete_project(&user.access_token, &project.id).await;
    assert_eq!(delete.status(), 204);

    let after = app.generation_page(&user.access_token, "").await;
    assert!(
        after.items.is_empty(),
        "the project's generations were deleted: {:?}",
        after.items
    );
}

#[tokio::test]
async fn completed_generation_is_immutable() {
    let app = TestApp::spawn().await;
    let user = app.signup().await;
    let generation = app.new_generation(&user.access_token, "a fox", None).await;
    app.wait_for_generation_status(
        &user.access_token,
        &generation.id,
        GenerationStatus::Completed,
    )
    .await;

    let response = app.get_generation(&user.access_token, &generation.id).await;

    let cache_control = cache_control(&response);
    assert!(
        cache_control.starts_with("private"),
        "cache-control: {cache_control}"
    );
    assert!(
        lists_token(&cache_control, "immutable"),
        "cache-control: {cache_control}"
    );
}

#[tokio::test]
async fn pending_generation_is_fresh_briefly() {
    // A one-minute worker stage keeps the generation queued or running for the whole test.
    let app = TestApp::builder()
        .env("GENERATION_STEP_MS", "60000")
        .spawn()
        .await;
    let user = app.signup().await;
    let generation = app.new_generation(&user.access_token, "a fox", None).await;

    let response = app.get_generation(&user.access_token, &generation.id).await;

    let cache_control = cache_control(&response);
    let pending: velro_shared::api::Generation = parse_json(response, 200).await;
    assert!(
        !pending.status.is_final(),
        "the generation finished despite the slow worker: {pending:?}"
    );
    assert!(
        cache_control.starts_with("private"),
        "cache-control: {cache_control}"
    );
    assert!(
        !lists_token(&cache_control, "immutable"),
        "cache-control: {cache_control}"
    );
    match max_age(&cache_control) {
        Some(seconds) => assert!(seconds <= 2, "cache-control: {cache_control}"),
        // Without max-age the response must be revalidated or not stored at all.
        None => assert!(
            lists_token(&cache_control, "no-cache") || lists_token(&cache_control, "no-store"),
            "cache-control: {cache_control}"
        ),
    }
}

/// Spells `id` with its first character percent-encoded: the same resource under another path.
fn percent_encode_first(id: &str) -> String {
    let first = id.as_bytes()[0];
    format!("%{first:02X}{}", &id[1..])
}

#[tokio::test]
async fn encoded_path_shares_cache_entry() {
    let app = TestApp::spawn().await;
    let user = app.signup().await;
    let project = app.new_project(&user.access_token, "Aliases").await;
    let generation = app.new_generation(&user.access_token, "a fox", None).await;
    let encoded = percent_encode_first(&generation.id);
    let encoded_project = percent_encode_first(&project.id);

    // Cache both resources under their encoded spelling, then delete them by their plain one.
    assert_eq!(
        app.get_generation(&user.access_token, &encoded)
            .await
            .status(),
        200
    );
    assert_eq!(
        app.get_project(&user.access_token, &encoded_project)
            .await
            .status(),
        200
    );
    assert_eq!(
        app.delete_generation(&user.access_token, &generation.id)
            .await
            .status(),
        204
    );
    assert_eq!(
        app.delete_project(&user.access_token, &project.id)
            .await
            .status(),
        204
    );

    let generation_after = app.get_generation(&user.access_token, &encoded).await;
    assert_error(generation_after, 404, "not_found").await;
    let project_after = app.get_project(&user.access_token, &encoded_project).await;
    assert_error(project_after, 404, "not_found").await;
}

#[tokio::test]
async fn uppercase_id_names_same_generation() {
    let app = TestApp::spawn().await;
    let user = app.signup().await;
    let generation = app.new_generation(&user.access_token, "a fox", None).await;

    let response = app
        .get_generation(&user.access_token, &generation.id.to_uppercase())
        .await;

    let found: velro_shared::api::Generation = parse_json(response, 200).await;
    assert_eq!(found.id, generation.id);
}

#[tokio::test]
async fn profile_cache_ignores_query_string() {
    let app = TestApp::spawn().await;
    let user = app.signup().await;

    let first = app
        .authed(Method::GET, "/users/profile?junk=1", &user.access_token)
        .send()
        .await
        .unwrap();
    let second = app
        .authed(Method::GET, "/users/profile?junk=2", &user.access_token)
        .send()
        .await
        .unwrap();

    assert_eq!(first.status(), 200);
    assert_eq!(second.status(), 200);
    assert!(
        cache_status_params(&second)
            .iter()
            .any(|param| param == "hit"),
        "a different query string made a new cache entry: {:?}",
        cache_status_params(&second)
    );
}

#[tokio::test]
async fn raw_non_ascii_query_avoids_500() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    let app = TestApp::spawn().await;
    let user = app.signup().await;
    // reqwest percent-encodes what it sends, so the raw UTF-8 bytes of U+00A0 go over a plain socket.
    let mut request =
        b"GET /users/profile?a=\xc2\xa0 HTTP/1.1\r\nhost: 127.0.0.1\r\nconnection: close\r\n"
            .to_vec();
    request.extend_from_slice(
        format!("authorization: Bearer {}\r\n\r\n", user.access_token).as_bytes(),
    );
    let mut stream = tokio::net::TcpStream::connect(("127.0.0.1", app.port))
        .await
        .unwrap();
    stream.write_all(&request).await.unwrap();
    let mut reply = Vec::new();
    stream.read_to_end(&mut reply).await.unwrap();

    let reply = String::from_utf8_lossy(&reply);
    let status_line = reply.lines().next().unwrap_or_default();
    assert!(
        !status_line.contains(" 500 "),
        "raw query got {status_line}\n{reply}"
    );
    assert!(
        status_line.starts_with("HTTP/1.1 "),
        "no HTTP reply: {reply}"
    );
}

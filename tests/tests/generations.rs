//! Generations: creation and validation, the background worker, idempotency keys,
//! cursor pagination and filters, ownership and deletion.

mod common;

use std::collections::HashSet;

use serde_json::json;
use velro_shared::api::{Generation, GenerationPage, GenerationStatus};

use common::{assert_error, header, parse_json, TestApp, MODEL};

#[tokio::test]
async fn create_generation_is_queued_with_location() {
    let app = TestApp::spawn().await;
    let user = app.signup().await;

    let response = app
        .create_generation(
            &user.access_token,
            &json!({ "prompt": "a red fox", "model": MODEL }),
            None,
        )
        .await;

    assert_eq!(response.status(), 202);
    let location =
        header(&response, "location").expect("202 Accepted should carry a location header");
    let generation: Generation = parse_json(response, 202).await;
    assert_eq!(location, format!("/generations/{}", generation.id));
    assert_eq!(generation.status, GenerationStatus::Queued);
    assert_eq!(generation.prompt, "a red fox");
    assert_eq!(generation.model, MODEL);
    assert_eq!(generation.project_id, None);
    assert_eq!(generation.result, None);
    assert_eq!(generation.completed_at, None);
}

#[tokio::test]
async fn generation_completes_with_svg() {
    let app = TestApp::spawn().await;
    let user = app.signup().await;
    let queued = app
        .new_generation(&user.access_token, "a red fox", None)
        .await;

    let completed = app
        .wait_for_generation_status(&user.access_token, &queued.id, GenerationStatus::Completed)
        .await;

    assert_eq!(completed.result_type.as_deref(), Some("image/svg+xml"));
    let result = completed
        .result
        .as_deref()
        .expect("a completed generation has a result");
    assert!(
        result.starts_with("<svg"),
        "result should be an SVG document: {result:.80}"
    );
    assert!(completed.completed_at.is_some());
    assert_eq!(completed.error, None);
}

#[tokio::test]
async fn same_prompt_and_model_give_same_result() {
    let app = TestApp::spawn().await;
    let user = app.signup().await;
    let first = app
        .new_generation(&user.access_token, "a blue whale", None)
        .await;
    let second = app
        .new_generation(&user.access_token, "a blue whale", None)
        .await;
    let other = app
        .new_generation(&user.access_token, "a green turtle", None)
        .await;

    let mut results = Vec::new();
    for queued in [&first, &second, &other] {
        let done = app
            .wait_for_generation_status(&user.access_token, &queued.id, GenerationStatus::Completed)
            .await;
        results.push(done.result.expect("a completed generation has a result"));
    }

    assert_ne!(first.id, second.id);
    assert_eq!(results[0], results[1]);
    assert_ne!(
        results[0], results[2],
        "different prompts should give different images"
    );
}

#[tokio::test]
async fn create_generation_validates_input() {
    let app = TestApp::spawn().await;
    let user = app.signup().await;

    let cases = [
        (
            "unknown model",
            json!({ "prompt": "a fox", "model": "no-such-model" }),
        ),
        ("empty prompt", json!({ "prompt": "", "model": MODEL })),
        (
            "prompt over 2000 characters",
            json!({ "prompt": "p".repeat(2_001), "model": MODEL }),
        ),
    ];
    for (case, body) in cases {
        let response = app.create_generation(&user.access_token, &body, None).await;
        assert_eq!(response.status(), 400, "case {case}");
        assert_error(response, 400, "validation_failed").await;
    }

    let longest = app
        .create_generation(
            &user.access_token,
            &json!({ "prompt": "p".repeat(2_000), "model": MODEL }),
            None,
        )
        .await;
    assert_eq!(
        longest.status(),
        202,
        "a prompt of exactly 2000 characters should be accepted"
    );

    let page = app.generation_page(&user.access_token, "").await;
    assert_eq!(
        page.items.len(),
        1,
        "rejected requests must not create generations"
    );
}

#[tokio::test]
async fn prompt_limit_counts_characters_not_bytes() {
    let app = TestApp::spawn().await;
    let user = app.signup().await;
    // 2000 two-byte characters: 4000 bytes, but within the 2000-character limit.
    let prompt = "é".repeat(2_000);

    let response = app
        .create_generation(
            &user.access_token,
            &json!({ "prompt": prompt, "model": MODEL }),
            None,
        )
        .await;

    assert_eq!(response.status(), 202);
}

#[tokio::test]
async fn generation_in_other_users_project_is_not_found() {
    let app = TestApp::spawn().await;
    let owner = app.signup().await;
    let stranger = app.signup().await;
    let project = app.new_project(&owner.access_token, "Owner only").await;

    let body = json!({ "prompt": "a fox", "model": MODEL, "project_id": project.id });
    let response = app
        .create_generation(&stranger.access_token, &body, None)
        .await;

    assert_error(response, 404, "not_found").await;
    let page = app.generation_page(&stranger.access_token, "").await;
    assert!(page.items.is_empty());
}

#[tokio::test]
async fn generation_in_own_project_records_project() {
    let app = TestApp::spawn().await;
    let user = app.signup().await;
    let project = app.new_project(&user.access_token, "Mine").await;

    let generation = app
        .new_generation(&user.access_token, "a fox", Some(&project.id))
        .await;

    assert_eq!(generation.project_id.as_deref(), Some(project.id.as_str()));
}

#[tokio::test]
async fn idempotency_key_replays_same_generation() {
    let app = TestApp::spawn().await;
    let user = app.signup().await;
    let body = json!({ "prompt": "a paper crane", "model": MODEL });
    let key = format!("create-{}", uuid::Uuid::new_v4());

    let first: Generation = parse_json(
        app.create_generation(&user.access_token, &body, Some(&key))
            .await,
        202,
    )
    .await;
    let replay: Generation = parse_json(
        app.create_generation(&user.access_token, &body, Some(&key))
            .await,
        202,
    )
    .await;

    assert_eq!(replay.id, first.id);
    let page = app.generation_page(&user.access_token, "").await;
    assert_eq!(
        page.items.len(),
        1,
        "a replay must not create a second generation"
    );

    // A replay after the worker finished still names the same generation.
    app.wait_for_generation_status(&user.access_token, &first.id, GenerationStatus::Completed)
        .await;
    let late: Generation = parse_json(
        app.create_generation(&user.access_token, &body, Some(&key))
            .await,
        202,
    )
    .await;
    assert_eq!(late.id, first.id);
    let page = app.generation_page(&user.access_token, "").await;
    assert_eq!(page.items.len(), 1);
}

#[tokio::test]
async fn idempotency_key_with_other_body_is_rejected() {
    let app = TestApp::spawn().await;
    let user = app.signup().await;
    let key = format!("create-{}", uuid::Uuid::new_v4());
    let body = json!({ "prompt": "a paper crane", "model": MODEL });
    let first = app
        .create_generation(&user.access_token, &body, Some(&key))
        .await;
    assert_eq!(first.status(), 202);

    let other_body = json!({ "prompt": "a paper boat", "model": MODEL });
    let response = app
        .create_generation(&user.access_token, &other_body, Some(&key))
        .await;

    assert_error(response, 422, "idempotency_key_reused").await;
    let page = app.generation_page(&user.access_token, "").await;
    assert_eq!(page.items.len(), 1);
}

#[tokio::test]
async fn idempotency_keys_are_per_user() {
    let app = TestApp::spawn().await;
    let alice = app.signup().await;
    let bob = app.signup().await;
    let key = "shared-key-1";
    let body = json!({ "prompt": "a paper crane", "model": MODEL });

    let for_alice: Generation = parse_json(
        app.create_generation(&alice.access_token, &body, Some(key))
            .await,
        202,
    )
    .await;
    let for_bob: Generation = parse_json(
        app.create_generation(&bob.access_token, &body, Some(key))
            .await,
        202,
    )
    .await;

    assert_ne!(for_alice.id, for_bob.id);
    let bob_view = app.get_generation(&bob.access_token, &for_alice.id).await;
    assert_error(bob_view, 404, "not_found").await;
}

#[tokio::test]
async fn invalid_idempotency_key_is_rejected() {
    let app = TestApp::spawn().await;
    let user = app.signup().await;
    let body = json!({ "prompt": "a fox", "model": MODEL });

    // Keys must be 1 to 255 visible ASCII characters.
    for (case, key) in [
        ("empty", String::new()),
        ("256 characters", "k".repeat(256)),
        ("contains a space", "two words".to_owned()),
    ] {
        let response = app
            .create_generation(&user.access_token, &body, Some(&key))
            .await;
        assert_eq!(response.status(), 400, "key {case}");
        assert_error(response, 400, "validation_failed").await;
    }

    let longest = app
        .create_generation(&user.access_token, &body, Some(&"k".repeat(255)))
        .await;
    assert_eq!(
        longest.status(),
        202,
        "a key of 255 characters should be accepted"
    );
}

#[tokio::test]
async fn list_pages_visit_every_generation_once() {
    let app = TestApp::spawn().await;
    let user = app.signup().await;
    let mut created_ids = Vec::new();
    for index in 0..7 {
        let generation = app
            .new_generation(&user.access_token, &format!("scene {index}"), None)
            .await;
        created_ids.push(generation.id);
    }

    let mut visited_ids = Vec::new();
    let mut page_sizes = Vec::new();
    let mut query = "limit=3".to_owned();
    loop {
        let page: GenerationPage = app.generation_page(&user.access_token, &query).await;
        page_sizes.push(page.items.len());
        visited_ids.extend(page.items.into_iter().map(|generation| generation.id));
        match page.next_cursor {
            Some(cursor) => query = format!("limit=3&cursor={cursor}"),
            None => break,
        }
        assert!(
            page_sizes.len() <= 10,
            "pagination does not terminate: {page_sizes:?}"
        );
    }

    assert_eq!(page_sizes, [3, 3, 1]);
    created_ids.reverse();
    assert_eq!(
        visited_ids, created_ids,
        "pages should list every generation once, newest first"
    );
}

#[tokio::test]
async fn list_limit_defaults_to_twenty() {
    let app = TestApp::spawn().await;
    let user = app.signup().await;
    for index in 0..21 {
        app.new_generation(&user.access_token, &format!("scene {index}"), None)
            .await;
    }

    let first_page = app.generation_page(&user.access_token, "").await;
    assert_eq!(first_page.items.len(), 20);
    let cursor = first_page
        .next_cursor
        .expect("a 21st generation remains, so there is a next page");

    let second_page = app
        .generation_page(&user.access_token, &format!("cursor={cursor}"))
        .await;
    assert_eq!(second_page.items.len(), 1);
    assert_eq!(second_page.next_cursor, None);

    let everything = app.generation_page(&user.access_token, "limit=100").await;
    assert_eq!(everything.items.len(), 21);
    assert_eq!(everything.next_cursor, None);
}

#[tokio::test]
async fn list_rejects_invalid_query() {
    let app = TestApp::spawn().await;
    let user = app.signup().await;
    app.new_generation(&user.access_token, "a fox", None).await;

    for query in [
        "limit=0",
        "limit=101",
        "limit=-1",
        "limit=abc",
        "cursor=not-a-cursor",
        "status=done",
        "status=COMPLETED",
    ] {
        let response = app.list_generations(&user.access_token, query).await;
        assert_eq!(response.status(), 400, "query {query:?}");
        assert_error(response, 400, "validation_failed").await;
    }

    for query in ["limit=1", "limit=100"] {
        let response = app.list_generations(&user.access_token, query).await;
        assert_eq!(response.status(), 200, "query {query:?}");
    }
}

#[tokio::test]
async fn list_filters_by_status_and_project() {
    let app = TestApp::spawn().await;
    let user = app.signup().await;
    let project = app.new_project(&user.access_token, "Filtered").await;
    let in_project = app
        .new_generation(&user.access_token, "inside", Some(&project.id))
        .await;
    let loose = app
        .new_generation(&user.access_token, "outside", None)
        .await;
    for id in [&in_project.id, &loose.id] {
        app.wait_for_generation_status(&user.access_token, id, GenerationStatus::Completed)
            .await;
    }

    let completed = app
        .generation_page(&user.access_token, "status=completed")
        .await;
    let completed_ids: HashSet<String> = completed
        .items
        .into_iter()
        .map(|generation| generation.id)
        .collect();
    assert_eq!(
        completed_ids,
        HashSet::from([in_project.id.clone(), loose.id.clone()])
    );

    let queued = app
        .generation_page(&user.access_token, "status=queued")
        .await;
    assert!(
        queued.items.is_empty(),
        "no generation is still queued: {:?}",
        queued.items
    );

    let by_project = app
        .generation_page(&user.access_token, &format!("project_id={}", project.id))
        .await;
    let by_project_ids: Vec<String> = by_project
        .items
        .into_iter()
        .map(|generation| generation.id)
        .collect();
    assert_eq!(by_project_ids, [in_project.id]);
}

#[tokio::test]
async fn list_shows_only_own_generations() {
    let app = TestApp::spawn().await;
    let alice = app.signup().await;
    let bob = app.signup().await;
    let mine = app
        .new_generation(&alice.access_token, "alice's fox", None)
        .await;
    app.new_generation(&bob.access_token, "bob's fox", None)
        .await;

    let page = app.generation_page(&alice.access_token, "").await;

    let ids: Vec<String> = page
        .items
        .into_iter()
        .map(|generation| generation.id)
        .collect();
    assert_eq!(ids, [mine.id]);
}

#[tokio::test]
async fn other_users_generation_is_not_found() {
    let app = TestApp::spawn().await;
    let owner = app.signup().await;
    let stranger = app.signup().await;
    let generation = app.new_generation(&owner.access_token, "a fox", None).await;

    let get = app
        .get_generation(&stranger.access_token, &generation.id)
        .await;
    assert_error(get, 404, "not_found").await;
    let delete = app
        .delete_generation(&stranger.access_token, &generation.id)
        .await;
    assert_error(delete, 404, "not_found").await;

    let still_there = app
        .get_generation(&owner.access_token, &generation.id)
        .await;
    assert_eq!(still_there.status(), 200);
}

#[tokio::test]
async fn deleted_generation_is_gone() {
    let app = TestApp::spawn().await;
    let user = app.signup().await;
    let generation = app.new_generation(&user.access_token, "a fox", None).await;
    app.wait_for_generation_status(
        &user.access_token,
        &generation.id,
        GenerationStatus::Completed,
    )
    .await;

    let delete = app
        .delete_generation(&user.access_token, &generation.id)
        .await;
    assert_eq!(delete.status(), 204);

    let get = app.get_generation(&user.access_token, &generation.id).await;
    assert_error(get, 404, "not_found").await;
    let page = app.generation_page(&user.access_token, "").await;
    assert!(page.items.is_empty());
    let again = app
        .delete_generation(&user.access_token, &generation.id)
        .await;
    assert_error(again, 404, "not_found").await;
}

#[tokio::test]
async fn generation_id_must_be_uuid() {
    let app = TestApp::spawn().await;
    let user = app.signup().await;

    for id in ["not-a-uuid", "42", "%20"] {
        let response = app.get_generation(&user.access_token, id).await;
        assert_eq!(response.status(), 404, "id {id:?}");
        assert_error(response, 404, "not_found").await;
    }
}

#[tokio::test]
async fn concurrent_idempotent_creates_make_one_generation() {
    let app = TestApp::spawn().await;
    let user = app.signup().await;
    let body = json!({ "prompt": "a paper crane", "model": MODEL });
    let key = format!("race-{}", uuid::Uuid::new_v4());

    let attempts = (0..6).map(|_| app.create_generation(&user.access_token, &body, Some(&key)));
    let responses = futures::future::join_all(attempts).await;

    let mut ids = HashSet::new();
    for response in responses {
        let generation: Generation = parse_json(response, 202).await;
        ids.insert(generation.id);
    }
    assert_eq!(
        ids.len(),
        1,
        "every attempt with one key should name one generation: {ids:?}"
    );
    let page = app.generation_page(&user.access_token, "").await;
    assert_eq!(page.items.len(), 1);
}

#[tokio::test]
async fn cursor_skips_generations_created_after_it() {
    let app = TestApp::spawn().await;
    let user = app.signup().await;
    let mut older_ids = Vec::new();
    for index in 0..5 {
        older_ids.push(
            app.new_generation(&user.access_token, &format!("old {index}"), None)
                .await
                .id,
        );
    }
    older_ids.reverse();

    let first_page = app.generation_page(&user.access_token, "limit=3").await;
    let cursor = first_page
        .next_cursor
        .expect("5 generations need a second page of 3");
    for index in 0..2 {
        app.new_generation(&user.access_token, &format!("new {index}"), None)
            .await;
    }
    let second_page = app
        .generation_page(&user.access_token, &format!("limit=3&cursor={cursor}"))
        .await;

    let mut visited_ids: Vec<String> = first_page
        .items
        .into_iter()
        .map(|generation| generation.id)
        .collect();
    visited_ids.extend(
        second_page
            .items
            .into_iter()
            .map(|generation| generation.id),
    );
    assert_eq!(
        visited_ids, older_ids,
        "newer generations must not shift the pages after the cursor"
    );
    assert_eq!(second_page.next_cursor, None);
}

//! One user's whole journey through the API, as a client application drives it.

mod common;

use serde_json::json;
use velro_shared::api::{GenerationStatus, ModelList, Project, ProjectList, TokenResponse, User};

use common::{assert_error, parse_json, unique_email, TestApp, MODEL};

#[tokio::test]
async fn user_journey_from_signup_to_cleanup() {
    let app = TestApp::spawn().await;

    // Pick a model from the public catalogue.
    let models: ModelList = parse_json(app.models().await, 200).await;
    let model = models
        .items
        .iter()
        .find(|model| model.id == MODEL)
        .unwrap_or_else(|| panic!("the catalogue should list {MODEL}: {models:?}"));
    assert_eq!(model.output_type, "image/svg+xml");

    // Sign up, then log in again as a returning client would.
    let email = unique_email();
    let password = "correct horse battery staple";
    let registered: TokenResponse = parse_json(app.register(&email, password).await, 201).await;
    let session: TokenResponse = parse_json(app.login(&email, password).await, 200).await;
    assert_eq!(session.user.id, registered.user.id);
    let token = session.access_token.clone();

    let renamed: User = parse_json(
        app.update_profile(&token, &json!({ "display_name": "Journey" }))
            .await,
        200,
    )
    .await;
    assert_eq!(renamed.display_name, "Journey");

    // Organise work in a project and generate into it.
    let project = app.new_project(&token, "Storyboard").await;
    let projects: ProjectList = parse_json(app.list_projects(&token).await, 200).await;
    assert_eq!(projects.items, std::slice::from_ref(&project));

    let mut generation_ids = Vec::new();
    for prompt in ["opening shot", "closing shot"] {
        let generation = app.new_generation(&token, prompt, Some(&project.id)).await;
        generation_ids.push(generation.id);
    }
    for id in &generation_ids {
        let done = app
            .wait_for_generation_status(&token, id, GenerationStatus::Completed)
            .await;
        assert!(done.result.is_some_and(|svg| svg.starts_with("<svg")));
    }

    let in_project = app
        .generation_page(
            &token,
            &format!("project_id={}&status=completed", project.id),
        )
        .await;
    let listed_ids: Vec<String> = in_project
        .items
        .into_iter()
        .map(|generation| generation.id)
        .collect();
    let newest_first: Vec<String> = generation_ids.iter().rev().cloned().collect();
    assert_eq!(listed_ids, newest_first);

    // Describe the project, then rotate the session's refresh token.
    let updated: Project = parse_json(
        app.update_project(&token, &project.id, &json!({ "description": "Final cut" }))
            .await,
        200,
    )
    .await;
    assert_eq!(updated.description, "Final cut");
    let refreshed: TokenResponse = parse_json(app.refresh(&session.refresh_token).await, 200).await;
    let token = refreshed.access_token;

    // Clean up: delete one generation, then the project with the rest.
    let delete_one = app.delete_generation(&token, &generation_ids[0]).await;
    assert_eq!(delete_one.status(), 204);
    let delete_project = app.delete_project(&token, &project.id).await;
    assert_eq!(delete_project.status(), 204);
    let remaining = app.generation_page(&token, "").await;
    assert!(
        remaining.items.is_empty(),
        "deleting the project should delete its generations"
    );
    let deleted = app.get_generation(&token, &generation_ids[1]).await;
    assert_error(deleted, 404, "not_found").await;

    // Log out; the refresh token no longer works.
    let logout = app.logout(&refreshed.refresh_token).await;
    assert_eq!(logout.status(), 204);
    let after_logout = app.refresh(&refreshed.refresh_token).await;
    assert_error(after_logout, 401, "unauthorized").await;
}

#[tokio::test]
async fn models_are_listed_without_token() {
    let app = TestApp::spawn().await;

    let models: ModelList = parse_json(app.models().await, 200).await;

    let builtin = models
        .items
        .iter()
        .find(|model| model.id == MODEL)
        .unwrap_or_else(|| panic!("the catalogue should list {MODEL}: {models:?}"));
    assert!(!builtin.name.is_empty());
    assert_eq!(builtin.max_prompt_chars, 2_000);
}

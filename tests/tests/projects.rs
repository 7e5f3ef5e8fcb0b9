//! Project CRUD, ownership checks, and deletion of a project's generations.

mod common;

use serde_json::json;
use velro_shared::api::{Project, ProjectList};

use common::{assert_error, header, parse_json, TestApp};

#[tokio::test]
async fn create_project_returns_location() {
    let app = TestApp::spawn().await;
    let user = app.signup().await;

    let response = app
        .create_project(
            &user.access_token,
            &json!({ "name": "Posters", "description": "Spring campaign" }),
        )
        .await;

    assert_eq!(response.status(), 201);
    let location =
        header(&response, "location").expect("201 Created should carry a location header");
    let project: Project = parse_json(response, 201).await;
    assert_eq!(location, format!("/projects/{}", project.id));
    assert_eq!(project.name, "Posters");
    assert_eq!(project.description, "Spring campaign");
    assert!(
        uuid::Uuid::parse_str(&project.id).is_ok(),
        "project id is not a UUID: {}",
        project.id
    );

    let fetched: Project =
        parse_json(app.get_project(&user.access_token, &project.id).await, 200).await;
    assert_eq!(fetched, project);
}

#[tokio::test]
async fn list_projects_is_newest_first() {
    let app = TestApp::spawn().await;
    let user = app.signup().await;
    let empty: ProjectList = parse_json(app.list_projects(&user.access_token).await, 200).await;
    assert!(empty.items.is_empty());

    let mut created = Vec::new();
    for name in ["first", "second", "third"] {
        created.push(app.new_project(&user.access_token, name).await);
    }

    let listed: ProjectList = parse_json(app.list_projects(&user.access_token).await, 200).await;
    let listed_names: Vec<&str> = listed
        .items
        .iter()
        .map(|project| project.name.as_str())
        .collect();
    assert_eq!(listed_names, ["third", "second", "first"]);
    created.reverse();
    assert_eq!(listed.items, created);
}

#[tokio::test]
async fn update_project_changes_only_given_fields() {
    let app = TestApp::spawn().await;
    let user = app.signup().await;
    let created: Project = parse_json(
        app.create_project(
            &user.access_token,
            &json!({ "name": "Logos", "description": "Draft marks" }),
        )
        .await,
        201,
    )
    .await;

    let renamed: Project = parse_json(
        app.update_project(
            &user.access_token,
            &created.id,
            &json!({ "name": "Final logos" }),
        )
        .await,
        200,
    )
    .await;

    assert_eq!(renamed.id, created.id);
    assert_eq!(renamed.name, "Final logos");
    assert_eq!(renamed.description, "Draft marks");
    assert_eq!(renamed.created_at, created.created_at);

    let fetched: Project =
        parse_json(app.get_project(&user.access_token, &created.id).await, 200).await;
    assert_eq!(fetched, renamed);
}

#[tokio::test]
async fn project_name_is_validated() {
    let app = TestApp::spawn().await;
    let user = app.signup().await;
    let project = app.new_project(&user.access_token, "valid").await;

    for name in [String::new(), "n".repeat(101)] {
        let create = app
            .create_project(&user.access_token, &json!({ "name": name }))
            .await;
        assert_eq!(
            create.status(),
            400,
            "create with a name of {} characters",
            name.len()
        );
        assert_error(create, 400, "validation_failed").await;

        let update = app
            .update_project(&user.access_token, &project.id, &json!({ "name": name }))
            .await;
        assert_eq!(
            update.status(),
            400,
            "update with a name of {} characters",
            name.len()
        );
        assert_error(update, 400, "validation_failed").await;
    }

    let longest = app
        .create_project(&user.access_token, &json!({ "name": "n".repeat(100) }))
        .await;
    assert_eq!(
        longest.status(),
        201,
        "a name of 100 characters should be accepted"
    );
}

#[tokio::test]
async fn delete_project_removes_its_generations() {
    let app = TestApp::spawn().await;
    let user = app.signup().await;
    let project = app.new_project(&user.access_token, "To delete").await;
    let inside = app
        .new_generation(&user.access_token, "a lighthouse", Some(&project.id))
        .await;
    let outside = app
        .new_generation(&user.access_token, "a harbour", None)
        .await;

    let delete = app.delete_project(&user.access_token, &project.id).await;
    assert_eq!(delete.status(), 204);

    let project_after = app.get_project(&user.access_token, &project.id).await;
    assert_error(project_after, 404, "not_found").await;
    let inside_after = app.get_generation(&user.access_token, &inside.id).await;
    assert_error(inside_after, 404, "not_found").await;
    let outside_after = app.get_generation(&user.access_token, &outside.id).await;
    assert_eq!(
        outside_after.status(),
        200,
        "a generation outside the project must survive"
    );

    let again = app.delete_project(&user.access_token, &project.id).await;
    assert_error(again, 404, "not_found").await;
}

#[tokio::test]
async fn other_users_project_is_not_found() {
    let app = TestApp::spawn().await;
    let owner = app.signup().await;
    let stranger = app.signup().await;
    let project = app.new_project(&owner.access_token, "Private").await;

    let get = app.get_project(&stranger.access_token, &project.id).await;
    assert_error(get, 404, "not_found").await;
    let update = app
        .update_project(
            &stranger.access_token,
            &project.id,
            &json!({ "name": "Hijacked" }),
        )
        .await;
    assert_error(update, 404, "not_found").await;
    let delete = app
        .delete_project(&stranger.access_token, &project.id)
        .await;
    assert_error(delete, 404, "not_found").await;

    let stranger_list: ProjectList =
        parse_json(app.list_projects(&stranger.access_token).await, 200).await;
    assert!(stranger_list.items.is_empty());

    let unchanged: Project =
        parse_json(app.get_project(&owner.access_token, &project.id).await, 200).await;
    assert_eq!(unchanged, project);
}

#[tokio::test]
async fn project_id_must_be_uuid() {
    let app = TestApp::spawn().await;
    let user = app.signup().await;

    for id in ["not-a-uuid", "123", "00000000-0000-0000-0000-00000000000g"] {
        let response = app.get_project(&user.access_token, id).await;
        assert_eq!(response.status(), 404, "id {id:?}");
        assert_error(response, 404, "not_found").await;
    }

    let unknown = app
        .get_project(&user.access_token, &uuid::Uuid::new_v4().to_string())
        .await;
    assert_error(unknown, 404, "not_found").await;
}

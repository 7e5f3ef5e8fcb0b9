//! The Redis L2 cache behind the in-process L1: entries shared by the instances of
//! one deployment, hit and miss counts per level, key prefixes that separate
//! deployments, and cross-instance invalidation after writes.
//!
//! Each test starts a `redis-server` of its own, so these tests run in every suite
//! run, on SQLite or Postgres, whether or not `VELRO_TEST_REDIS_URL` is set. A second
//! instance shares the first one's database, Redis and key prefix.

mod common;

use serde_json::json;
use velro_shared::api::{GenerationPage, ProjectList, Readiness, StepOutcome, User};

use common::{cache_status_params, parse_json, TestApp, ThrowawayRedis};

/// Starts an origin with its own database and `redis` as its L2 cache.
async fn spawn_with_redis(redis: &ThrowawayRedis) -> TestApp {
    TestApp::builder().redis(redis).spawn().await
}

/// Starts a second instance on the database, Redis and key prefix of `first`.
async fn spawn_second_instance(first: &TestApp) -> TestApp {
    TestApp::builder().share_database_with(first).spawn().await
}

/// Returns whether the origin's `cache-status` entry lists `param`.
fn has_param(params: &[String], param: &str) -> bool {
    params.iter().any(|item| item == param)
}

#[tokio::test]
async fn second_instance_reads_profile_from_l2() {
    let redis = ThrowawayRedis::start().await;
    let first = spawn_with_redis(&redis).await;
    let second = spawn_second_instance(&first).await;
    // The user signs up after both instances have warmed up, so neither pre-loaded the profile.
    let user = first.signup().await;
    let keys = redis.entry_count().await;
    let stored = first.profile(&user.access_token).await;
    redis.wait_for_more_entries_than(keys).await;
    let stored_params = cache_status_params(&stored);
    assert!(
        has_param(&stored_params, "fwd=miss") && has_param(&stored_params, "stored"),
        "first read on the first instance: {stored_params:?}"
    );
    let stored_profile: User = parse_json(stored, 200).await;
    let before = second.fetch_health().await;

    let from_l2 = second.profile(&user.access_token).await;

    let params = cache_status_params(&from_l2);
    assert!(
        has_param(&params, "hit"),
        "read on the second instance: {params:?}"
    );
    assert!(
        has_param(&params, "detail=l2"),
        "read on the second instance: {params:?}"
    );
    let profile: User = parse_json(from_l2, 200).await;
    assert_eq!(profile, stored_profile);
    let after = second.fetch_health().await;
    assert_eq!(after.l2_hits, before.l2_hits + 1, "l2_hits: {after:?}");

    // The L2 hit also filled the second instance's L1.
    let from_l1 = second.profile(&user.access_token).await;
    let params = cache_status_params(&from_l1);
    assert!(
        has_param(&params, "hit"),
        "second read on the second instance: {params:?}"
    );
    assert!(
        !has_param(&params, "detail=l2"),
        "second read on the second instance: {params:?}"
    );
}

#[tokio::test]
async fn cache_levels_count_hits_and_misses() {
    let redis = ThrowawayRedis::start().await;
    let first = spawn_with_redis(&redis).await;
    let second = spawn_second_instance(&first).await;
    let user = first.signup().await;

    let start = first.fetch_health().await;
    let keys = redis.entry_count().await;
    first.profile(&user.access_token).await;
    redis.wait_for_more_entries_than(keys).await;
    let after_miss = first.fetch_health().await;
    first.profile(&user.access_token).await;
    let after_hit = first.fetch_health().await;

    assert_eq!(after_miss.l1_misses, start.l1_misses + 1, "{after_miss:?}");
    assert_eq!(after_miss.l2_misses, start.l2_misses + 1, "{after_miss:?}");
    assert_eq!(after_miss.l1_hits, start.l1_hits, "{after_miss:?}");
    assert_eq!(after_miss.l2_hits, start.l2_hits, "{after_miss:?}");
    assert_eq!(after_hit.l1_hits, after_miss.l1_hits + 1, "{after_hit:?}");
    assert_eq!(after_hit.l1_misses, after_miss.l1_misses, "{after_hit:?}");
    assert_eq!(after_hit.l2_hits, after_miss.l2_hits, "{after_hit:?}");
    assert_eq!(after_hit.l2_misses, after_miss.l2_misses, "{after_hit:?}");

    let second_start = second.fetch_health().await;
    second.profile(&user.access_token).await;
    let second_after = second.fetch_health().await;

    assert_eq!(
        second_after.l1_misses,
        second_start.l1_misses + 1,
        "{second_after:?}"
    );
    assert_eq!(
        second_after.l2_hits,
        second_start.l2_hits + 1,
        "{second_after:?}"
    );
    assert_eq!(
        second_after.l2_misses, second_start.l2_misses,
        "{second_after:?}"
    );
    assert_eq!(
        second_after.l1_hits, second_start.l1_hits,
        "{second_after:?}"
    );
}

#[tokio::test]
async fn health_reports_redis_disabled_without_url() {
    let app = TestApp::builder().without_redis().spawn().await;
    let user = app.signup().await;

    app.profile(&user.access_token).await;
    app.profile(&user.access_token).await;
    let health = app.fetch_health().await;

    assert_eq!(health.redis, "disabled");
    assert_eq!(health.database, "closed");
    assert_eq!(health.l2_hits, 0, "{health:?}");
    assert_eq!(health.l2_misses, 0, "{health:?}");
    assert!(health.l1_hits >= 1, "{health:?}");
    assert!(health.l1_misses >= 1, "{health:?}");
}

#[tokio::test]
async fn health_reports_closed_breakers_with_redis() {
    let redis = ThrowawayRedis::start().await;
    let app = spawn_with_redis(&redis).await;

    let health = app.fetch_health().await;

    assert_eq!(health.redis, "closed");
    assert_eq!(health.database, "closed");
}

#[tokio::test]
async fn readiness_lists_redis_warmup_steps() {
    let redis = ThrowawayRedis::start().await;
    let app = spawn_with_redis(&redis).await;

    let readiness: Readiness = parse_json(app.readiness().await, 200).await;

    for name in ["redis", "invalidation_subscription", "hot_set"] {
        let step = readiness
            .steps
            .iter()
            .find(|step| step.name == name)
            .unwrap_or_else(|| panic!("warm-up should list step {name}: {:?}", readiness.steps));
        assert_eq!(step.outcome, StepOutcome::Ok, "step {step:?}");
    }
}

#[tokio::test]
async fn key_prefix_separates_deployments() {
    let redis = ThrowawayRedis::start().await;
    let first = spawn_with_redis(&redis).await;
    let other_prefix = format!("velro-test-{}", uuid::Uuid::new_v4().simple());
    let other_deployment = TestApp::builder()
        .share_database_with(&first)
        .env("REDIS_KEY_PREFIX", &other_prefix)
        .spawn()
        .await;
    let user = first.signup().await;
    let keys = redis.entry_count().await;
    first.profile(&user.access_token).await;
    redis.wait_for_more_entries_than(keys).await;

    let response = other_deployment.profile(&user.access_token).await;

    let params = cache_status_params(&response);
    assert!(
        has_param(&params, "fwd=miss"),
        "an instance with another key prefix must not read the first one's L2 entry: {params:?}"
    );
}

#[tokio::test]
async fn profile_update_reaches_other_instance() {
    let redis = ThrowawayRedis::start().await;
    let first = spawn_with_redis(&redis).await;
    let second = spawn_second_instance(&first).await;
    let user = first.signup().await;

    // Rounds alternate the instance that writes, so both directions of the channel are covered.
    for round in 0..6 {
        let (writer, reader) = if round % 2 == 0 {
            (&first, &second)
        } else {
            (&second, &first)
        };
        reader.profile(&user.access_token).await;
        let cached = reader.profile(&user.access_token).await;
        let params = cache_status_params(&cached);
        assert!(
            has_param(&params, "hit"),
            "round {round}, before the write: {params:?}"
        );

        let name = format!("Renamed in round {round}");
        let body = json!({ "display_name": name });
        let updated: User =
            parse_json(writer.update_profile(&user.access_token, &body).await, 200).await;
        assert_eq!(updated.display_name, name);

        let response = reader.profile(&user.access_token).await;
        let params = cache_status_params(&response);
        let seen: User = parse_json(response, 200).await;
        assert_eq!(
            seen.display_name, name,
            "round {round}: the other instance served the profile from before the write \
             (cache-status {params:?})"
        );
    }
}

#[tokio::test]
async fn profile_update_invalidates_l2_entry() {
    let redis = ThrowawayRedis::start().await;
    let first = spawn_with_redis(&redis).await;
    let second = spawn_second_instance(&first).await;
    let user = first.signup().await;
    let keys = redis.entry_count().await;
    first.profile(&user.access_token).await;
    redis.wait_for_more_entries_than(keys).await;
    // The profile is now in the first instance's L1 and in L2, but not in the second's L1.

    let body = json!({ "display_name": "Changed on the first" });
    parse_json::<User>(first.update_profile(&user.access_token, &body).await, 200).await;
    let seen: User = parse_json(second.profile(&user.access_token).await, 200).await;

    assert_eq!(
        seen.display_name, "Changed on the first",
        "the second instance read the L2 entry from before the write"
    );
}

#[tokio::test]
async fn evicted_tag_version_hides_old_entry() {
    let redis = ThrowawayRedis::start().await;
    let first = spawn_with_redis(&redis).await;
    let user = first.signup().await;
    let entries = redis.entry_count().await;
    first.profile(&user.access_token).await;
    redis.wait_for_more_entries_than(entries).await;
    let body = json!({ "display_name": "Written before the eviction" });
    parse_json::<User>(first.update_profile(&user.access_token, &body).await, 200).await;

    // Redis evicts the profile's tag version; the L2 entry from before the write stays.
    let deleted = redis.delete_keys("*:t:user:*:profile").await;
    let second = spawn_second_instance(&first).await;
    let seen: User = parse_json(second.profile(&user.access_token).await, 200).await;

    assert_eq!(deleted, 1, "tag version keys deleted");
    assert_eq!(
        seen.display_name, "Written before the eviction",
        "the second instance served the L2 entry from before the write"
    );
}

#[tokio::test]
async fn new_generation_reaches_other_instance_list() {
    let redis = ThrowawayRedis::start().await;
    let first = spawn_with_redis(&redis).await;
    let second = spawn_second_instance(&first).await;
    let user = first.signup().await;
    let empty = second.generation_page(&user.access_token, "").await;
    assert!(empty.items.is_empty(), "{:?}", empty.items);
    let cached = second.list_generations(&user.access_token, "").await;
    let params = cache_status_params(&cached);
    assert!(has_param(&params, "hit"), "before the write: {params:?}");

    let generation = first
        .new_generation(&user.access_token, "a fox", None)
        .await;
    let response = second.list_generations(&user.access_token, "").await;

    let params = cache_status_params(&response);
    let page: GenerationPage = parse_json(response, 200).await;
    let ids: Vec<&str> = page.items.iter().map(|item| item.id.as_str()).collect();
    assert_eq!(
        ids,
        [generation.id.as_str()],
        "the second instance's list (cache-status {params:?})"
    );
}

#[tokio::test]
async fn new_project_reaches_other_instance_list() {
    let redis = ThrowawayRedis::start().await;
    let first = spawn_with_redis(&redis).await;
    let second = spawn_second_instance(&first).await;
    let user = first.signup().await;
    let empty: ProjectList = parse_json(second.list_projects(&user.access_token).await, 200).await;
    assert!(empty.items.is_empty(), "{:?}", empty.items);
    let cached = second.list_projects(&user.access_token).await;
    let params = cache_status_params(&cached);
    assert!(has_param(&params, "hit"), "before the write: {params:?}");

    let project = first.new_project(&user.access_token, "Shared").await;
    let response = second.list_projects(&user.access_token).await;

    let params = cache_status_params(&response);
    let list: ProjectList = parse_json(response, 200).await;
    assert_eq!(
        list.items,
        [project],
        "the second instance's list (cache-status {params:?})"
    );
}

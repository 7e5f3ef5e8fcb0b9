use std::sync::atomic::AtomicUsize;
use std::time::Duration;

use velro_shared::policy::{cache_key, invalidations, match_route, read_tags};

use super::*;

fn profile_key(user: &str) -> (CacheKey, Vec<String>) {
    let route = match_route("GET", "/users/profile").unwrap();
    (
        cache_key("GET", "/users/profile", None, Some(user)).unwrap(),
        read_tags(&route, Some(user)),
    )
}

fn body(text: &str) -> CachedBody {
    CachedBody::new(
        text.as_bytes().to_vec(),
        match_route("GET", "/users/profile").unwrap().policy,
    )
}

/// A profile body loaded `seconds` ago: the profile policy is fresh for 60 s.
fn body_aged(text: &str, seconds: u64) -> CachedBody {
    let mut body = body(text);
    body.stored_at_ms -= seconds * 1000;
    body
}

fn database_down() -> AppError {
    AppError::from(sqlx::Error::Io(std::io::Error::from(
        std::io::ErrorKind::ConnectionRefused,
    )))
}

#[tokio::test]
async fn second_lookup_is_a_hit() {
    let cache = Cache::new(1 << 20, None);
    let (key, tags) = profile_key("u1");
    let (_, first) = cache
        .get_or_load(&key, &tags, || async { Ok(body("a")) })
        .await
        .unwrap();
    let (value, second) = cache
        .get_or_load(&key, &tags, || async { Ok(body("b")) })
        .await
        .unwrap();
    assert_eq!(first, Lookup::Miss);
    assert_eq!(second, Lookup::L1Hit);
    assert_eq!(&value.body[..], b"a");
    let stats = cache.stats();
    assert_eq!((stats.l1_hits, stats.l1_misses), (1, 1));
    assert_eq!((stats.l2_hits, stats.l2_misses), (0, 0));
}

#[tokio::test]
async fn invalidation_forces_a_reload() {
    let cache = Cache::new(1 << 20, None);
    let (key, tags) = profile_key("u1");
    cache
        .get_or_load(&key, &tags, || async { Ok(body("old")) })
        .await
        .unwrap();
    cache
        .invalidate(&invalidations("PATCH", "/users/profile", "u1"))
        .await;
    let (value, lookup) = cache
        .get_or_load(&key, &tags, || async { Ok(body("new")) })
        .await
        .unwrap();
    assert_eq!(lookup, Lookup::Miss);
    assert_eq!(&value.body[..], b"new");
}

#[tokio::test]
async fn other_users_entries_survive_invalidation() {
    let cache = Cache::new(1 << 20, None);
    let (key, tags) = profile_key("u2");
    cache
        .get_or_load(&key, &tags, || async { Ok(body("u2")) })
        .await
        .unwrap();
    cache
        .invalidate(&invalidations("PATCH", "/users/profile", "u1"))
        .await;
    let (_, lookup) = cache
        .get_or_load(&key, &tags, || async { Ok(body("x")) })
        .await
        .unwrap();
    assert_eq!(lookup, Lookup::L1Hit);
}

#[tokio::test]
async fn concurrent_misses_share_one_load() {
    let cache = Cache::new(1 << 20, None);
    let (key, tags) = profile_key("u1");
    let loads = Arc::new(AtomicUsize::new(0));
    let lookups = (0..16).map(|_| {
        let loads = Arc::clone(&loads);
        let (cache, key, tags) = (cache.clone(), key.clone(), tags.clone());
        async move {
            cache
                .get_or_load(&key, &tags, || async move {
                    loads.fetch_add(1, Ordering::SeqCst);
                    tokio::time::sleep(Duration::from_millis(20)).await;
                    Ok(body("shared"))
                })
                .await
                .unwrap()
        }
    });
    futures::future::join_all(lookups).await;
    assert_eq!(loads.load(Ordering::SeqCst), 1);
}

#[tokio::test]
async fn errors_are_not_cached() {
    let cache = Cache::new(1 << 20, None);
    let (key, tags) = profile_key("u1");
    let failed = cache
        .get_or_load(&key, &tags, || async { Err(AppError::not_found("user")) })
        .await;
    assert!(failed.is_err());
    let (_, lookup) = cache
        .get_or_load(&key, &tags, || async { Ok(body("ok")) })
        .await
        .unwrap();
    assert_eq!(lookup, Lookup::Miss);
}

#[tokio::test]
async fn stale_entry_served_when_database_down() {
    let cache = Cache::new(1 << 20, None);
    let (key, tags) = profile_key("u1");
    cache
        .get_or_load(&key, &tags, || async { Ok(body_aged("old", 61)) })
        .await
        .unwrap();
    let (value, lookup) = cache
        .get_or_load(&key, &tags, || async { Err(database_down()) })
        .await
        .unwrap();
    assert_eq!(lookup, Lookup::StaleOnError);
    assert_eq!(&value.body[..], b"old");
}

#[tokio::test]
async fn stale_entry_not_served_for_client_errors() {
    let cache = Cache::new(1 << 20, None);
    let (key, tags) = profile_key("u1");
    cache
        .get_or_load(&key, &tags, || async { Ok(body_aged("old", 61)) })
        .await
        .unwrap();
    let outcome = cache
        .get_or_load(&key, &tags, || async { Err(AppError::not_found("user")) })
        .await;
    assert!(outcome.is_err());
}

#[tokio::test]
async fn entry_past_stale_window_is_not_served() {
    let cache = Cache::new(1 << 20, None);
    let (key, tags) = profile_key("u1");
    // 60 s fresh plus 300 s stale-if-error have passed.
    cache
        .get_or_load(&key, &tags, || async { Ok(body_aged("old", 361)) })
        .await
        .unwrap();
    let outcome = cache
        .get_or_load(&key, &tags, || async { Err(database_down()) })
        .await;
    assert!(outcome.unwrap_err().is_unavailable());
}

#[tokio::test]
async fn stale_entry_refreshed_when_database_returns() {
    let cache = Cache::new(1 << 20, None);
    let (key, tags) = profile_key("u1");
    cache
        .get_or_load(&key, &tags, || async { Ok(body_aged("old", 61)) })
        .await
        .unwrap();
    let (value, lookup) = cache
        .get_or_load(&key, &tags, || async { Ok(body("new")) })
        .await
        .unwrap();
    assert_eq!(lookup, Lookup::Miss);
    assert_eq!(&value.body[..], b"new");
}

//! `GET /dashboard`: the page's headers over HTTP, then the page itself in
//! headless Chromium against a running origin, with real requests behind its
//! figures.
//!
//! The browser tests need the `chromium` and `chromium-driver` packages, which
//! `scripts/test` installs; `VELRO_SKIP_BROWSER_TESTS=1` skips them.

mod common;

use std::time::{Duration, Instant};

use common::{header, parse_json, Browser, TestApp};
use fantoccini::Client;
use serde::Deserialize;

/// How long the page may take to show what a test waits for. It refreshes every
/// 2 s, and the chart needs two refreshes to draw a line.
const PAGE_TIMEOUT: Duration = Duration::from_secs(30);

/// Reads what the page shows, in one round trip: the chart's polylines, the
/// status banner, the hit-rate card and the rows of the route table.
const SNAPSHOT_SCRIPT: &str = r##"
const points = (id) => (document.getElementById(id).getAttribute("points") || "").trim().split(/\s+/).filter(Boolean);
const card = document.getElementById("card-hit-rate");
const status = document.getElementById("status");
return {
  status_state: status.dataset.state,
  status_text: status.textContent,
  p50: points("line-p50"),
  p95: points("line-p95"),
  p99: points("line-p99"),
  target: points("line-target"),
  target_legend: document.getElementById("legend-target").textContent,
  target_dasharray: getComputedStyle(document.getElementById("line-target")).strokeDasharray,
  hit_rate: card.querySelector(".value").textContent,
  hit_rate_status: card.dataset.status,
  card_statuses: Array.from(document.querySelectorAll(".card")).map((each) => each.dataset.status),
  routes: Array.from(document.querySelectorAll("#routes tbody tr[data-route]")).map((row) => ({
    route: row.dataset.route,
    requests: row.querySelector('[data-field="requests"]').textContent,
    hit_rate: row.querySelector('[data-field="cache_hit_rate_percent"]').textContent,
  })),
};
"##;

/// What the page shows at one moment; see [`SNAPSHOT_SCRIPT`].
#[derive(Debug, Deserialize)]
struct PageSnapshot {
    status_state: String,
    status_text: String,
    p50: Vec<String>,
    p95: Vec<String>,
    p99: Vec<String>,
    target: Vec<String>,
    target_legend: String,
    target_dasharray: String,
    hit_rate: String,
    hit_rate_status: String,
    /// `pass`, `fail` or `none` for each card, in page order.
    card_statuses: Vec<String>,
    routes: Vec<RouteRow>,
}

#[derive(Debug, Deserialize)]
struct RouteRow {
    route: String,
    requests: String,
    hit_rate: String,
}

async fn snapshot(client: &Client) -> PageSnapshot {
    let value = client
        .execute(SNAPSHOT_SCRIPT, Vec::new())
        .await
        .expect("running the snapshot script in the page should succeed");
    serde_json::from_value(value.clone())
        .unwrap_or_else(|error| panic!("unexpected page snapshot {value}: {error}"))
}

/// Polls the page until `ready` accepts its snapshot, and returns that snapshot.
async fn wait_for_page(
    browser: &Browser,
    goal: &str,
    ready: impl Fn(&PageSnapshot) -> bool,
) -> PageSnapshot {
    let deadline = Instant::now() + PAGE_TIMEOUT;
    loop {
        let page = snapshot(browser.client()).await;
        if ready(&page) {
            return page;
        }
        if Instant::now() >= deadline {
            panic!(
                "the dashboard did not {goal} within {PAGE_TIMEOUT:?}; it shows {page:#?}\n{}",
                browser.driver_log()
            );
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// Parses an SVG `points` entry such as `48.0,120.5`.
fn parse_point(point: &str) -> (f64, f64) {
    let (x, y) = point
        .split_once(',')
        .unwrap_or_else(|| panic!("chart point {point:?} is not `x,y`"));
    let parse = |text: &str| -> f64 {
        text.parse()
            .unwrap_or_else(|_| panic!("chart point {point:?} has a non-numeric coordinate"))
    };
    (parse(x), parse(y))
}

/// Asserts that every point lies inside the chart's 720 x 260 view box.
fn assert_inside_chart(series: &str, points: &[String]) {
    for point in points {
        let (x, y) = parse_point(point);
        assert!(
            (0.0..=720.0).contains(&x) && (0.0..=260.0).contains(&y),
            "{series} point {point} lies outside the chart"
        );
    }
}

#[tokio::test]
async fn dashboard_page_headers() {
    let app = TestApp::spawn().await;

    let response = app
        .request(reqwest::Method::GET, "/dashboard")
        .send()
        .await
        .unwrap();

    assert_eq!(response.status(), 200);
    assert_eq!(
        header(&response, "content-type").as_deref(),
        Some("text/html; charset=utf-8")
    );
    assert_eq!(
        header(&response, "cache-control").as_deref(),
        Some("no-store")
    );
    let policy = header(&response, "content-security-policy")
        .expect("the page should carry a Content-Security-Policy");
    assert!(policy.contains("default-src 'none'"), "policy: {policy}");
    assert!(policy.contains("connect-src 'self'"), "policy: {policy}");
    assert!(policy.contains("script-src 'sha256-"), "policy: {policy}");
    assert!(policy.contains("style-src 'sha256-"), "policy: {policy}");
    assert!(!policy.contains("unsafe-inline"), "policy: {policy}");
    let body = response.text().await.unwrap();
    assert!(body.contains("id=\"latency-chart\""));
}

#[tokio::test]
async fn dashboard_renders_live_figures() {
    let mut app = TestApp::spawn().await;
    let Some(browser) = Browser::start().await else {
        return;
    };

    // Real requests, so every figure on the page comes from the origin's own recording.
    let user = app.signup().await;
    let profile_requests = 7;
    for _ in 0..profile_requests {
        assert_eq!(app.profile(&user.access_token).await.status(), 200);
    }
    let model_requests = 4;
    for _ in 0..model_requests {
        let response = app
            .request(reqwest::Method::GET, "/models")
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 200);
    }
    let expected_rows = [
        ("POST /auth/register", 1),
        ("GET /users/profile", profile_requests),
        ("GET /models", model_requests),
    ];
    let performance: serde_json::Value = parse_json(
        app.request(reqwest::Method::GET, "/performance")
            .send()
            .await
            .unwrap(),
        200,
    )
    .await;
    let target_ms = performance["targets"]["response_time_ms"]
        .as_f64()
        .expect("/performance should report targets.response_time_ms");

    browser
        .client()
        .goto(&app.url("/dashboard"))
        .await
        .expect("loading the dashboard should succeed");
    let page = wait_for_page(&browser, "draw two refreshes", |page| {
        page.status_state == "ok" && page.p50.len() >= 2 && page.routes.len() >= 3
    })
    .await;

    // The chart: a line per percentile, and the target as a horizontal line.
    for (series, points) in [("p50", &page.p50), ("p95", &page.p95), ("p99", &page.p99)] {
        assert!(points.len() >= 2, "{series} has {} points", points.len());
        assert_inside_chart(series, points);
    }
    assert_eq!(page.target.len(), 2, "target line: {:?}", page.target);
    assert_inside_chart("target", &page.target);
    let (_, target_start_y) = parse_point(&page.target[0]);
    let (_, target_end_y) = parse_point(&page.target[1]);
    assert_eq!(
        target_start_y, target_end_y,
        "the target line should be horizontal"
    );
    assert_eq!(page.target_legend, format!("target {target_ms:.0} ms"));
    // The inline style block applied, so the policy's style hash matches it.
    assert_ne!(page.target_dasharray, "none");

    // The table: one row per route the test requested, with the exact count.
    for (route, requests) in expected_rows {
        let row = page
            .routes
            .iter()
            .find(|row| row.route == route)
            .unwrap_or_else(|| panic!("no table row for {route}; rows: {:?}", page.routes));
        assert_eq!(row.requests, requests.to_string(), "requests of {route}");
    }
    let profile_row = page
        .routes
        .iter()
        .find(|row| row.route == "GET /users/profile")
        .expect("the profile row was found above");
    assert!(
        profile_row.hit_rate.ends_with(" %"),
        "profile hit rate: {}",
        profile_row.hit_rate
    );

    // The hit-rate card shows a number with a verdict against its target.
    let hit_rate: f64 = page
        .hit_rate
        .trim_end_matches(" %")
        .parse()
        .unwrap_or_else(|_| panic!("the hit-rate card shows {:?}, not a number", page.hit_rate));
    assert!((0.0..=100.0).contains(&hit_rate), "hit rate {hit_rate}");
    assert!(
        page.hit_rate_status == "pass" || page.hit_rate_status == "fail",
        "hit-rate card status {:?}",
        page.hit_rate_status
    );

    // With the origin stopped, the page reports that it cannot load the figures.
    app.send_sigterm();
    app.wait_for_exit(Duration::from_secs(10))
        .await
        .expect("the origin should exit after SIGTERM");
    let page = wait_for_page(&browser, "report the failed refresh", |page| {
        page.status_state == "error"
    })
    .await;
    assert!(
        page.status_text.starts_with("Cannot load /performance"),
        "status: {}",
        page.status_text
    );

    browser.close().await;
}

#[tokio::test]
async fn dashboard_reports_disabled_monitoring() {
    let app = TestApp::builder()
        .env("PERF_MONITORING_ENABLED", "false")
        .env("PERF_TARGET_RESPONSE_TIME_MS", "0.5")
        .spawn()
        .await;
    let Some(browser) = Browser::start().await else {
        return;
    };

    browser
        .client()
        .goto(&app.url("/dashboard"))
        .await
        .expect("loading the dashboard should succeed");
    let page = wait_for_page(&browser, "report disabled monitoring", |page| {
        page.status_state == "disabled"
    })
    .await;

    assert!(
        page.status_text.contains("PERF_MONITORING_ENABLED=false"),
        "status: {}",
        page.status_text
    );
    assert!(page.p50.is_empty(), "p50 points: {:?}", page.p50);
    assert_eq!(page.hit_rate, "\u{2013}");
    // A fractional target keeps its decimals instead of rounding to "1 ms".
    assert_eq!(page.target_legend, "target 0.5 ms");
    // Nothing was measured, so no card may show a pass or a fail.
    assert!(
        page.card_statuses.iter().all(|status| status == "none"),
        "card statuses: {:?}",
        page.card_statuses
    );

    browser.close().await;
}

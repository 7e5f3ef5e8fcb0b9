//! `/performance`, `/metrics` and the slow-request warning, checked against
//! requests with known outcomes.

mod common;

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use reqwest::Method;
use serde_json::Value;

use common::{header, parse_json, Sandbox, TestApp};

/// Sends the requests whose figures the tests check, and returns their count.
///
/// Warm-up has already loaded the model catalogue, so both `/models` reads are L1
/// hits. The new user's profile is not in the hot set, so its first read is a
/// miss and the next two are hits: 4 hits of 5 cacheable reads. The unknown
/// generation and route return 404 and use no cache entry.
async fn send_known_requests(app: &TestApp) -> u64 {
    let user = app.signup().await;
    for expected in [
        "velro-origin; fwd=miss; stored",
        "velro-origin; hit",
        "velro-origin; hit",
    ] {
        let response = app.profile(&user.access_token).await;
        assert_eq!(response.status(), 200);
        assert_eq!(header(&response, "cache-status").as_deref(), Some(expected));
    }
    for _ in 0..2 {
        assert_eq!(app.models().await.status(), 200);
    }
    let missing_generation = app
        .get_generation(&user.access_token, &uuid::Uuid::new_v4().to_string())
        .await;
    assert_eq!(missing_generation.status(), 404);
    let unknown_route = app
        .request(Method::GET, "/no-such-route")
        .send()
        .await
        .unwrap();
    assert_eq!(unknown_route.status(), 404);
    // Monitoring requests, which are not recorded.
    assert_eq!(app.health().await.status(), 200);
    assert_eq!(app.readiness().await.status(), 200);
    1 + 3 + 2 + 1 + 1
}

async fn performance(app: &TestApp) -> Value {
    let response = app
        .request(Method::GET, "/performance")
        .send()
        .await
        .unwrap();
    parse_json(response, 200).await
}

/// Finds the row of `route` in the `routes` of `since_start` or `window`.
fn route_row<'a>(figures: &'a Value, route: &str) -> &'a Value {
    figures["routes"]
        .as_array()
        .and_then(|rows| rows.iter().find(|row| row["route"] == route))
        .unwrap_or_else(|| panic!("no row for {route} in {figures:#}"))
}

#[tokio::test]
async fn performance_counts_known_requests() {
    let app = TestApp::spawn().await;
    let sent = send_known_requests(&app).await;

    let report = performance(&app).await;
    assert_eq!(report["monitoring_enabled"], true);
    assert!(report["uptime_hours"]
        .as_f64()
        .is_some_and(|hours| hours > 0.0));
    for (period, figures) in [
        ("since_start", &report["since_start"]),
        ("window", &report["window"]),
    ] {
        assert_eq!(figures["total_requests"], sent, "{period}: {figures:#}");
        assert_eq!(figures["cache_hit_rate_percent"], 80.0, "{period}");
        assert_eq!(figures["error_rate_percent"], 0.0, "{period}");
        assert_eq!(figures["availability_percent"], 100.0, "{period}");
        for percentile in ["p50_ms", "p95_ms", "p99_ms"] {
            let value = figures[percentile].as_f64();
            assert!(
                value.is_some_and(|ms| ms > 0.0),
                "{period} {percentile}: {value:?}"
            );
        }
        assert!(
            figures["avg_response_ms"]
                .as_f64()
                .is_some_and(|ms| ms > 0.0),
            "{period}"
        );
        let rate = figures["performance_rate_percent"].as_f64().unwrap();
        assert!((0.0..=100.0).contains(&rate), "{period}: {rate}");
        assert_eq!(
            figures["targets_met"]["cache_hit_rate"], false,
            "{period}: 80 < 95"
        );
        assert_eq!(figures["targets_met"]["error_rate"], true, "{period}");

        let profile = route_row(figures, "GET /users/profile");
        assert_eq!(profile["requests"], 3, "{period}");
        assert_eq!(profile["errors"], 0, "{period}");
        assert_eq!(profile["cache_hit_rate_percent"], 66.67, "{period}");
        assert!(
            profile["p99_ms"].as_f64().is_some_and(|ms| ms > 0.0),
            "{period}"
        );
        let models = route_row(figures, "GET /models");
        assert_eq!(models["requests"], 2, "{period}");
        assert_eq!(models["cache_hit_rate_percent"], 100.0, "{period}");
        let generation = route_row(figures, "GET /generations/{id}");
        assert_eq!(generation["requests"], 1, "{period}");
        assert_eq!(
            generation["cache_hit_rate_percent"],
            Value::Null,
            "{period}"
        );
        assert_eq!(route_row(figures, "unmatched")["requests"], 1, "{period}");
        assert_eq!(
            route_row(figures, "POST /auth/register")["requests"],
            1,
            "{period}"
        );
        assert_eq!(
            figures["routes"].as_array().map(Vec::len),
            Some(5),
            "{period}"
        );
    }
    assert_eq!(report["window"]["window_seconds"], 300);
    assert_eq!(report["since_start"]["window_seconds"], Value::Null);

    let memory = &report["memory"];
    let rss = memory["rss_bytes"].as_i64().expect("Linux reports VmRSS");
    let startup = memory["startup_rss_bytes"]
        .as_i64()
        .expect("Linux reports VmRSS");
    assert!(rss > 0, "{memory}");
    assert!(startup > 0, "{memory}");
    assert_eq!(memory["growth_bytes"].as_i64(), Some(rss - startup));

    // Reading /performance is not recorded either.
    let again = performance(&app).await;
    assert_eq!(again["since_start"]["total_requests"], sent);
}

#[tokio::test]
async fn disabled_monitoring_records_nothing() {
    let app = TestApp::builder()
        .env("PERF_MONITORING_ENABLED", "false")
        .spawn()
        .await;
    send_known_requests(&app).await;

    let report = performance(&app).await;
    assert_eq!(report["monitoring_enabled"], false);
    for period in ["since_start", "window"] {
        assert_eq!(report[period]["total_requests"], 0, "{period}");
        assert_eq!(report[period]["p50_ms"], Value::Null, "{period}");
        assert_eq!(report[period]["routes"], serde_json::json!([]), "{period}");
        for target in ["performance", "cache_hit_rate", "error_rate"] {
            assert_eq!(
                report[period]["targets_met"][target], false,
                "{period} {target}: nothing measured, so nothing met"
            );
        }
    }
    let metrics = scrape(&app).await;
    assert!(
        !metrics
            .iter()
            .any(|sample| sample.name == "velro_http_requests_total"),
        "requests recorded while monitoring is off"
    );
}

#[tokio::test]
async fn variables_change_targets_and_window() {
    let app = TestApp::builder()
        .env("PERF_TARGET_RESPONSE_TIME_MS", "250")
        .env("PERF_CACHE_HIT_RATE_TARGET", "80")
        .env("PERF_WINDOW_SECS", "60")
        .spawn()
        .await;
    send_known_requests(&app).await;

    let report = performance(&app).await;
    let targets = &report["targets"];
    assert_eq!(targets["response_time_ms"], 250.0);
    assert_eq!(targets["cache_hit_rate_percent"], 80.0);
    assert_eq!(targets["performance_rate_percent"], 90.0);
    assert_eq!(targets["error_rate_percent"], 0.1);
    assert_eq!(targets["availability_percent"], 99.9);
    assert_eq!(report["window"]["window_seconds"], 60);
    assert_eq!(
        report["window"]["targets_met"]["cache_hit_rate"], true,
        "80 >= 80"
    );
}

#[tokio::test]
async fn invalid_variables_stop_startup() {
    let sandbox = Sandbox::new();
    let cases = [
        ("PERF_MONITORING_ENABLED", "sometimes"),
        ("PERF_WINDOW_SECS", "10"),
        ("PERF_TARGET_RESPONSE_TIME_MS", "-5"),
        ("PERF_CACHE_HIT_RATE_TARGET", "0.95%"),
    ];
    for (name, value) in cases {
        let mut command = sandbox.command(&["serve"]);
        command.env("PORT", "0").env(name, value);
        let output = sandbox.run(command, Duration::from_secs(30)).await;
        assert!(
            !output.status.success(),
            "{name}={value} started\n{}",
            output.combined()
        );
        let expected = format!("invalid {name}=\"{value}\": expected ");
        assert!(
            output.stderr.contains(&expected),
            "{name}={value}\n{}",
            output.combined()
        );
    }
}

#[tokio::test]
async fn monitoring_routes_skip_warmup_gate() {
    let app = TestApp::builder()
        .env("WARMUP_HOLD_MS", "2000")
        .spawn_listening()
        .await;
    assert_eq!(
        app.models().await.status(),
        503,
        "the API waits for warm-up"
    );
    let report = performance(&app).await;
    assert_eq!(
        report["since_start"]["total_requests"], 1,
        "the gated /models read"
    );
    let route = route_row(&report["since_start"], "GET /models");
    assert_eq!(route["errors"], 1);
    assert_eq!(report["since_start"]["availability_percent"], 0.0);
    let metrics = app.request(Method::GET, "/metrics").send().await.unwrap();
    assert_eq!(metrics.status(), 200);
}

#[tokio::test]
async fn metrics_count_known_requests() {
    let app = TestApp::spawn().await;
    send_known_requests(&app).await;

    let samples = scrape(&app).await;
    let requests = |route: &str, status: &str| {
        value(
            &samples,
            "velro_http_requests_total",
            &[("route", route), ("status", status)],
        )
    };
    assert_eq!(requests("GET /users/profile", "200"), Some(3.0));
    assert_eq!(requests("GET /models", "200"), Some(2.0));
    assert_eq!(requests("POST /auth/register", "201"), Some(1.0));
    assert_eq!(requests("GET /generations/{id}", "404"), Some(1.0));
    assert_eq!(requests("unmatched", "404"), Some(1.0));
    let recorded: f64 = samples
        .iter()
        .filter(|sample| sample.name == "velro_http_requests_total")
        .map(|sample| sample.value)
        .sum();
    assert_eq!(recorded, 8.0, "monitoring requests must not be counted");

    let lookups = |level: &str| value(&samples, "velro_cache_lookups_total", &[("level", level)]);
    assert_eq!(lookups("l1"), Some(4.0));
    assert_eq!(lookups("miss"), Some(1.0));
    assert_eq!(lookups("l2"), Some(0.0));
    assert_eq!(lookups("stale"), Some(0.0));

    let profile = [("route", "GET /users/profile")];
    let duration = "velro_http_request_duration_seconds";
    assert_eq!(
        value(&samples, &format!("{duration}_count"), &profile),
        Some(3.0)
    );
    let in_target = [("route", "GET /users/profile"), ("le", "0.075")];
    assert!(
        value(&samples, &format!("{duration}_bucket"), &in_target).is_some(),
        "no 75 ms bucket"
    );
    let all = [("route", "GET /users/profile"), ("le", "+Inf")];
    assert_eq!(
        value(&samples, &format!("{duration}_bucket"), &all),
        Some(3.0)
    );
    assert!(
        value(&samples, &format!("{duration}_sum"), &profile).is_some_and(|seconds| seconds > 0.0)
    );

    // The test harness sets DB_POOL_SIZE=4 and DB_MAX_OVERFLOW=8.
    assert_eq!(
        value(&samples, "velro_db_pool_max_connections", &[]),
        Some(12.0)
    );
    let open = value(&samples, "velro_db_pool_connections", &[]).unwrap_or_default();
    let idle = value(&samples, "velro_db_pool_idle_connections", &[]).unwrap_or(-1.0);
    assert!(
        open >= 4.0 && (0.0..=open).contains(&idle),
        "open {open}, idle {idle}"
    );
    let breaker = [("dependency", "database")];
    assert_eq!(
        value(&samples, "velro_circuit_breaker_state", &breaker),
        Some(0.0)
    );
    let migrations = [("step", "migrations")];
    let step = value(&samples, "velro_warmup_step_duration_seconds", &migrations);
    assert!(step.is_some_and(|seconds| seconds > 0.0), "{step:?}");
    assert!(value(&samples, "velro_process_resident_memory_bytes", &[])
        .is_some_and(|bytes| bytes > 0.0));
}

#[tokio::test]
async fn slow_request_warning_is_rate_limited() {
    // Every request takes longer than 1.5 times a 1 µs target.
    let app = TestApp::builder()
        .env("PERF_TARGET_RESPONSE_TIME_MS", "0.001")
        .spawn()
        .await;
    let request_ids: Vec<String> = (0..5)
        .map(|i| format!("slow-{i}-{}", uuid::Uuid::new_v4()))
        .collect();
    for request_id in &request_ids {
        let response = app
            .request(Method::GET, "/models")
            .header("x-request-id", request_id)
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 200);
    }
    let unknown = app
        .request(Method::GET, "/no-such-route")
        .send()
        .await
        .unwrap();
    assert_eq!(unknown.status(), 404);

    let deadline = Instant::now() + Duration::from_secs(10);
    let warnings = loop {
        let warnings = slow_warnings(&app.logs());
        if warnings.len() >= 2 || Instant::now() > deadline {
            break warnings;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    let models: Vec<&Value> = warnings
        .iter()
        .filter(|line| line["fields"]["route"] == "GET /models")
        .collect();
    assert_eq!(
        models.len(),
        1,
        "one warning for five slow reads: {warnings:#?}"
    );
    let fields = &models[0]["fields"];
    assert_eq!(fields["request_id"], request_ids[0].as_str());
    assert_eq!(fields["suppressed"], 0);
    assert!(fields["duration_ms"].as_f64().is_some_and(|ms| ms > 0.0015));
    let unmatched = warnings
        .iter()
        .filter(|line| line["fields"]["route"] == "unmatched")
        .count();
    assert_eq!(unmatched, 1, "each route has its own limit: {warnings:#?}");
}

/// Returns the JSON log lines of slow-request warnings.
fn slow_warnings(logs: &str) -> Vec<Value> {
    logs.lines()
        .filter_map(|line| serde_json::from_str::<Value>(line).ok())
        .filter(|line| {
            line["level"] == "WARN"
                && line["fields"]["message"]
                    .as_str()
                    .is_some_and(|message| message.starts_with("request slower than"))
        })
        .collect()
}

/// One sample line of the Prometheus text format.
#[derive(Debug)]
struct MetricSample {
    name: String,
    labels: BTreeMap<String, String>,
    value: f64,
}

async fn scrape(app: &TestApp) -> Vec<MetricSample> {
    let response = app.request(Method::GET, "/metrics").send().await.unwrap();
    assert_eq!(response.status(), 200);
    let content_type = header(&response, "content-type").unwrap_or_default();
    assert!(
        content_type.starts_with("text/plain; version=0.0.4"),
        "{content_type}"
    );
    let text = response.text().await.unwrap();
    text.lines()
        .filter(|line| !line.is_empty() && !line.starts_with('#'))
        .map(|line| {
            parse_sample(line).unwrap_or_else(|| panic!("unparsable line {line:?} in\n{text}"))
        })
        .collect()
}

/// Returns the value of the sample of `name` whose labels are exactly `labels`.
fn value(samples: &[MetricSample], name: &str, labels: &[(&str, &str)]) -> Option<f64> {
    let wanted: BTreeMap<String, String> = labels
        .iter()
        .map(|(key, value)| (key.to_string(), value.to_string()))
        .collect();
    samples
        .iter()
        .find(|sample| sample.name == name && sample.labels == wanted)
        .map(|sample| sample.value)
}

/// Parses `name{key="value",...} number` or `name number`. Label values may
/// contain braces, commas and escaped quotes.
fn parse_sample(line: &str) -> Option<MetricSample> {
    let name_end = line.find(['{', ' '])?;
    let name = line[..name_end].to_string();
    let mut labels = BTreeMap::new();
    let mut rest = &line[name_end..];
    if let Some(after_brace) = rest.strip_prefix('{') {
        let mut chars = after_brace.char_indices();
        let mut key = String::new();
        loop {
            let (index, c) = chars.next()?;
            match c {
                '}' => {
                    rest = &after_brace[index + 1..];
                    break;
                }
                ',' => {}
                '=' => {
                    if chars.next()?.1 != '"' {
                        return None;
                    }
                    let mut value = String::new();
                    loop {
                        match chars.next()?.1 {
                            '\\' => value.push(chars.next()?.1),
                            '"' => break,
                            other => value.push(other),
                        }
                    }
                    labels.insert(std::mem::take(&mut key), value);
                }
                other => key.push(other),
            }
        }
    }
    let value = match rest.trim() {
        "+Inf" => f64::INFINITY,
        number => number.parse().ok()?,
    };
    Some(MetricSample {
        name,
        labels,
        value,
    })
}

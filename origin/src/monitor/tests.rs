use super::*;

fn settings() -> MonitoringSettings {
    MonitoringSettings {
        enabled: true,
        window: Duration::from_secs(300),
        targets: PerformanceTargets::DEFAULT,
    }
}

fn monitor() -> Monitor {
    Monitor::new(settings(), Instant::now()).unwrap()
}

const MS: Duration = Duration::from_millis(1);

#[test]
fn recorder_fits_memory_budget() {
    let bytes = monitor().approximate_bytes();
    assert!(bytes < 1_250_000, "{bytes} bytes");
    assert!(
        bytes > 500_000,
        "{bytes} bytes; the budget comment is out of date"
    );
}

#[test]
fn report_counts_recorded_requests() {
    let monitor = monitor();
    monitor.record("GET", "/models", 200, 2 * MS, Some(Lookup::Miss), "r1");
    monitor.record("GET", "/models", 200, MS, Some(Lookup::L1Hit), "r2");
    monitor.record("GET", "/models", 304, MS, Some(Lookup::L2Hit), "r3");
    monitor.record("GET", "/nowhere", 404, MS, None, "r4");
    monitor.record("POST", "/generations", 503, 100 * MS, None, "r5");

    let report = monitor.performance();
    for figures in [&report.since_start, &report.window] {
        assert_eq!(figures.total_requests, 5);
        assert_eq!(figures.cache_hit_rate_percent, Some(66.67));
        assert_eq!(figures.error_rate_percent, 20.0);
        assert_eq!(figures.availability_percent, 80.0);
        assert_eq!(figures.performance_rate_percent, 80.0);
        let routes: Vec<(&str, u64)> = figures
            .routes
            .iter()
            .map(|route| (route.route.as_str(), route.requests))
            .collect();
        assert_eq!(
            routes,
            [
                ("GET /models", 3),
                ("POST /generations", 1),
                ("unmatched", 1)
            ]
        );
    }
    assert_eq!(report.window.window_seconds, Some(300));
    assert_eq!(report.since_start.window_seconds, None);
}

#[test]
fn monitoring_routes_are_not_recorded() {
    let monitor = monitor();
    for path in [
        "/health",
        "/health/ready",
        "/metrics",
        "/performance",
        "/dashboard",
    ] {
        monitor.record("GET", path, 200, MS, None, "r");
    }
    assert_eq!(monitor.performance().since_start.total_requests, 0);
}

#[test]
fn disabled_monitor_records_nothing() {
    let monitor = Monitor::new(
        MonitoringSettings {
            enabled: false,
            ..settings()
        },
        Instant::now(),
    )
    .unwrap();
    monitor.record("GET", "/models", 200, MS, Some(Lookup::L1Hit), "r");
    let report = monitor.performance();
    assert!(!report.monitoring_enabled);
    assert_eq!(report.since_start.total_requests, 0);
    assert_eq!(report.window.total_requests, 0);
    assert_eq!(monitor.approximate_bytes(), 0);
}

#[test]
fn two_monitors_keep_separate_metrics() {
    let first = monitor();
    let second = monitor();
    first.record("GET", "/models", 200, MS, Some(Lookup::L1Hit), "r");
    let gauges = Gauges {
        pool_connections: 0,
        pool_idle: 0,
        pool_max: 0,
        breakers: &[],
        warmup_steps: &[],
        resident_bytes: None,
    };
    let first_text = first.render_metrics(&gauges);
    let second_text = second.render_metrics(&gauges);
    let line = "velro_http_requests_total{route=\"GET /models\",status=\"200\"} 1";
    assert!(first_text.contains(line), "{first_text}");
    assert!(
        !second_text.contains("velro_http_requests_total{"),
        "{second_text}"
    );
}

#[test]
fn monitoring_paths_are_exact() {
    for path in [
        "/health",
        "/health/ready",
        "/metrics",
        "/performance",
        "/dashboard",
    ] {
        assert!(is_monitoring_path(path), "{path}");
    }
    for path in [
        "/health/",
        "/health/x",
        "/healthz",
        "/metrics/",
        "/dashboard/x",
    ] {
        assert!(!is_monitoring_path(path), "{path}");
    }
}

#[test]
fn disabled_report_meets_no_target() {
    let monitor = Monitor::new(
        MonitoringSettings {
            enabled: false,
            ..settings()
        },
        Instant::now(),
    )
    .unwrap();
    let report = monitor.performance();
    for figures in [&report.since_start, &report.window] {
        assert!(!figures.targets_met.performance);
        assert!(!figures.targets_met.cache_hit_rate);
        assert!(!figures.targets_met.error_rate);
    }
}

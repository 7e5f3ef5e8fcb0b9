use super::variables::VARIABLES;
use super::*;

#[test]
fn defaults_fit_a_laptop() {
    let config = Config::from_source(&[]).unwrap();
    assert_eq!(config.port, 8000);
    assert_eq!(config.host.to_string(), "127.0.0.1");
    assert_eq!(config.database_url, "sqlite://./data/velro.db?mode=rwc");
    assert_eq!(config.environment, Environment::Development);
    assert!(config.jwt_secret.is_none());
    assert_eq!(config.pool.size, 20);
    assert_eq!(config.pool.max_connections(), 50);
    assert_eq!(config.pool.timeout, Duration::from_secs(30));
    assert_eq!(config.pool.recycle, Duration::from_secs(3600));
}

#[test]
fn pool_settings_from_environment() {
    let config = Config::from_source(&[
        ("DB_POOL_SIZE", "5"),
        ("DB_MAX_OVERFLOW", "0"),
        ("DB_POOL_TIMEOUT", "2"),
        ("DB_POOL_RECYCLE", "60"),
    ])
    .unwrap();
    assert_eq!(
        config.pool,
        PoolSettings {
            size: 5,
            max_overflow: 0,
            timeout: Duration::from_secs(2),
            recycle: Duration::from_secs(60)
        }
    );
    let error = Config::from_source(&[("DB_POOL_TIMEOUT", "0")])
        .unwrap_err()
        .to_string();
    assert!(
        error.starts_with("invalid DB_POOL_TIMEOUT=\"0\""),
        "{error}"
    );
}

#[test]
fn invalid_port_names_variable() {
    let error = Config::from_source(&[("PORT", "eighty")])
        .unwrap_err()
        .to_string();
    assert_eq!(
        error,
        "invalid PORT=\"eighty\": expected a TCP port number from 0 to 65535"
    );
}

#[test]
fn production_requires_jwt_secret() {
    let error = Config::from_source(&[("ENVIRONMENT", "production")])
        .unwrap_err()
        .to_string();
    assert!(error.starts_with("invalid JWT_SECRET="), "{error}");
}

#[test]
fn short_jwt_secret_is_rejected_without_echo() {
    let error = Config::from_source(&[("JWT_SECRET", "hunter2")])
        .unwrap_err()
        .to_string();
    assert!(error.contains("at least 32 bytes"), "{error}");
    assert!(!error.contains("hunter2"), "{error}");
}

#[test]
fn wildcard_origin_cannot_mix_with_a_list() {
    let error = Config::from_source(&[("ALLOWED_ORIGINS", "*,https://app.velro.ai")]);
    assert!(error.is_err());
    let config = Config::from_source(&[("ALLOWED_ORIGINS", "*")]).unwrap();
    assert_eq!(config.allowed_origins, AllowedOrigins::Any);
}

#[test]
fn origin_list_is_parsed() {
    let config = Config::from_source(&[(
        "ALLOWED_ORIGINS",
        "https://app.velro.ai, http://localhost:3000/",
    )])
    .unwrap();
    assert_eq!(
        config.allowed_origins,
        AllowedOrigins::List(vec![
            "https://app.velro.ai".into(),
            "http://localhost:3000".into()
        ])
    );
    assert!(Config::from_source(&[("ALLOWED_ORIGINS", "https://app.velro.ai/path")]).is_err());
}

#[test]
fn database_url_error_hides_credentials() {
    let error = Config::from_source(&[("DATABASE_URL", "mysql://root:pw@db/velro")])
        .unwrap_err()
        .to_string();
    assert!(!error.contains("pw@"), "{error}");
    assert!(error.contains("DATABASE_URL"), "{error}");
}

#[test]
fn secret_debug_is_redacted() {
    assert_eq!(
        format!("{:?}", Secret::new("s3cr3t".into())),
        "Secret(<redacted>)"
    );
}

/// An environment that records every variable the parser requests.
struct RecordingEnv {
    values: Vec<(&'static str, &'static str)>,
    requested: std::cell::RefCell<Vec<String>>,
}

impl EnvSource for RecordingEnv {
    fn get(&self, name: &str) -> Option<String> {
        self.requested.borrow_mut().push(name.to_string());
        self.values
            .iter()
            .find(|(key, _)| *key == name)
            .map(|(_, value)| (*value).to_string())
    }
}

#[test]
fn variables_table_lists_every_variable_read() {
    // REDIS_URL set, so the Redis variables are read too.
    let env = RecordingEnv {
        values: vec![("REDIS_URL", "redis://127.0.0.1:6379")],
        requested: Default::default(),
    };
    Config::from_source(&env).unwrap();
    let listed: Vec<&str> = VARIABLES.iter().map(|variable| variable.name).collect();
    for name in env.requested.borrow().iter() {
        assert!(
            listed.contains(&name.as_str()),
            "{name} is read but not listed in VARIABLES"
        );
    }
    for name in &listed {
        assert!(
            env.requested
                .borrow()
                .iter()
                .any(|requested| requested == name),
            "{name} is listed in VARIABLES but never read"
        );
    }
}

#[test]
fn variables_table_defaults_match_parser() {
    let with_redis = [("REDIS_URL", "redis://127.0.0.1:6379")];
    let implicit = format!("{:?}", Config::from_source(&with_redis).unwrap());
    for variable in VARIABLES
        .iter()
        .filter(|variable| !variable.default.is_empty())
    {
        let env = RecordingEnv {
            values: vec![with_redis[0], (variable.name, variable.default)],
            requested: Default::default(),
        };
        let explicit = format!("{:?}", Config::from_source(&env).unwrap());
        assert_eq!(
            explicit, implicit,
            "the listed default of {} differs from the parser's",
            variable.name
        );
    }
}

#[test]
fn redis_settings_from_environment() {
    assert!(Config::from_source(&[]).unwrap().redis.is_none());
    let config = Config::from_source(&[
        ("REDIS_URL", "redis://:pw@127.0.0.1:6380/2"),
        ("REDIS_POOL_SIZE", "4"),
        ("REDIS_KEY_PREFIX", "staging"),
        ("REDIS_TIMEOUT_MS", "10"),
    ])
    .unwrap();
    let redis = config.redis.unwrap();
    assert_eq!(redis.pool_size, 4);
    assert_eq!(redis.key_prefix, "staging");
    assert_eq!(redis.timeout, Duration::from_millis(10));
    assert_eq!(redis.url.expose(), "redis://:pw@127.0.0.1:6380/2");
}

#[test]
fn redis_url_error_hides_credentials() {
    let error = Config::from_source(&[("REDIS_URL", "http://:pw@cache:6379")])
        .unwrap_err()
        .to_string();
    assert!(
        error.starts_with("invalid REDIS_URL=\"http://...\""),
        "{error}"
    );
    assert!(!error.contains("pw"), "{error}");
}

#[test]
fn breaker_settings_reject_zero() {
    let config =
        Config::from_source(&[("DB_BREAKER_FAILURES", "2"), ("DB_BREAKER_RESET_MS", "300")])
            .unwrap();
    assert_eq!(
        config.db_breaker,
        BreakerSettings {
            failures: 2,
            reset_after: Duration::from_millis(300)
        }
    );
    let error = Config::from_source(&[("REDIS_BREAKER_RESET_MS", "0")])
        .unwrap_err()
        .to_string();
    assert!(
        error.starts_with("invalid REDIS_BREAKER_RESET_MS=\"0\""),
        "{error}"
    );
}

#[test]
fn url_without_scheme_is_not_echoed() {
    let error = Config::from_source(&[("REDIS_URL", "hunter2secretpassword")])
        .unwrap_err()
        .to_string();
    assert!(
        error.starts_with("invalid REDIS_URL=\"<redacted>\""),
        "{error}"
    );
    let error = Config::from_source(&[("DATABASE_URL", "hunter2secretpassword")])
        .unwrap_err()
        .to_string();
    assert!(!error.contains("hunter2"), "{error}");
}

#[test]
fn tls_urls_are_rejected() {
    let error = Config::from_source(&[("REDIS_URL", "rediss://:pw@cache:6380")])
        .unwrap_err()
        .to_string();
    assert!(error.contains("TLS"), "{error}");
    assert!(!error.contains(":pw@"), "{error}");
    let error =
        Config::from_source(&[("DATABASE_URL", "postgres://u:pw@db/velro?sslmode=require")])
            .unwrap_err()
            .to_string();
    assert!(error.contains("TLS"), "{error}");
    assert!(!error.contains(":pw@"), "{error}");
}

#[test]
fn redis_variables_checked_without_url() {
    let error = Config::from_source(&[("REDIS_TIMEOUT_MS", "0")])
        .unwrap_err()
        .to_string();
    assert!(
        error.starts_with("invalid REDIS_TIMEOUT_MS=\"0\""),
        "{error}"
    );
    assert!(Config::from_source(&[("REDIS_KEY_PREFIX", "a b")]).is_err());
}

#[test]
fn monitoring_defaults_follow_shared_targets() {
    let monitoring = Config::from_source(&[]).unwrap().monitoring;
    assert!(monitoring.enabled);
    assert_eq!(monitoring.window, Duration::from_secs(300));
    assert_eq!(
        monitoring.targets,
        velro_shared::perf::PerformanceTargets::DEFAULT
    );
}

#[test]
fn monitoring_settings_from_environment() {
    let monitoring = Config::from_source(&[
        ("PERF_MONITORING_ENABLED", "false"),
        ("PERF_WINDOW_SECS", "60"),
        ("PERF_TARGET_RESPONSE_TIME_MS", "0.5"),
        ("PERF_CACHE_HIT_RATE_TARGET", "80"),
    ])
    .unwrap()
    .monitoring;
    assert!(!monitoring.enabled);
    assert_eq!(monitoring.window, Duration::from_secs(60));
    assert_eq!(monitoring.targets.response_time_ms, 0.5);
    assert_eq!(monitoring.targets.cache_hit_rate_percent, 80.0);
    assert_eq!(monitoring.targets.error_rate_percent, 0.1);
}

#[test]
fn monitoring_rejects_bad_values() {
    let cases = [
        ("PERF_MONITORING_ENABLED", "maybe"),
        ("PERF_WINDOW_SECS", "29"),
        ("PERF_WINDOW_SECS", "86401"),
        ("PERF_WINDOW_SECS", "5m"),
        ("PERF_TARGET_RESPONSE_TIME_MS", "0"),
        ("PERF_TARGET_RESPONSE_TIME_MS", "-1"),
        ("PERF_TARGET_RESPONSE_TIME_MS", "NaN"),
        ("PERF_TARGET_RESPONSE_TIME_MS", "inf"),
        ("PERF_TARGET_RESPONSE_TIME_MS", "1e-9"),
        ("PERF_CACHE_HIT_RATE_TARGET", "101"),
        ("PERF_CACHE_HIT_RATE_TARGET", "95%"),
    ];
    for (name, value) in cases {
        let error = Config::from_source(&[(name, value)])
            .unwrap_err()
            .to_string();
        assert!(
            error.starts_with(&format!("invalid {name}={value:?}: expected ")),
            "{error}"
        );
    }
}

#[test]
fn release_is_optional_and_checked() {
    assert_eq!(Config::from_source(&[]).unwrap().release, None);
    assert_eq!(
        Config::from_source(&[("RELEASE", "")]).unwrap().release,
        None
    );
    let config = Config::from_source(&[("RELEASE", "3f9c2e1")]).unwrap();
    assert_eq!(config.release.as_deref(), Some("3f9c2e1"));
    let error = Config::from_source(&[("RELEASE", "a b")])
        .unwrap_err()
        .to_string();
    assert_eq!(
        error,
        "invalid RELEASE=\"a b\": expected 1 to 100 letters, digits, '-', '_', '.' or '+'"
    );
}

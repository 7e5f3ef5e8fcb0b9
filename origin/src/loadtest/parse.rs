//! Parsers for the flag values of `loadtest`: durations, think times, the base URL
//! and the latency target.
//!
//! Each parser returns its error as a `String`, which clap prints after the flag
//! name and the rejected value, so the messages here only state what is wrong
//! and which form is accepted.

use std::fmt;
use std::time::Duration;

use rand::Rng;
use reqwest::Url;

/// The accepted duration forms, quoted in every duration error.
const DURATION_FORMS: &str = "a number with a unit (ms, s, m or h), such as 500ms, 20s, 1.5s or 2m";

/// Parses a duration such as `500ms`, `20s`, `1.5s`, `2m` or `1h`; a bare `0` is zero.
pub fn parse_duration(value: &str) -> Result<Duration, String> {
    let value = value.trim();
    if value == "0" {
        return Ok(Duration::ZERO);
    }
    let Some(unit_start) = value.find(|c: char| c.is_ascii_alphabetic()) else {
        return Err(format!("missing unit; expected {DURATION_FORMS}"));
    };
    let (number, unit) = value.split_at(unit_start);

    // `f64::from_str` would also take `inf`, `1e3` and `-1`, so only digits and a
    // decimal point get that far.
    let is_decimal = !number.is_empty() && number.chars().all(|c| c.is_ascii_digit() || c == '.');
    let amount: f64 = match number.parse() {
        Ok(amount) if is_decimal => amount,
        _ => {
            return Err(format!(
                "`{number}` is not a number; expected {DURATION_FORMS}"
            ))
        }
    };
    let seconds = match unit {
        "ms" => amount / 1000.0,
        "s" => amount,
        "m" => amount * 60.0,
        "h" => amount * 3600.0,
        _ => return Err(format!("unknown unit `{unit}`; expected {DURATION_FORMS}")),
    };
    Duration::try_from_secs_f64(seconds).map_err(|_| format!("`{value}` is too long to represent"))
}

/// Parses a duration that must be greater than zero, such as `--duration` and `--timeout`.
pub fn parse_positive_duration(value: &str) -> Result<Duration, String> {
    let duration = parse_duration(value)?;
    if duration.is_zero() {
        return Err(format!(
            "must be greater than zero; expected {DURATION_FORMS}"
        ));
    }
    Ok(duration)
}

/// Pause of a virtual user between two workflows, drawn uniformly from `min..=max`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ThinkTime {
    min: Duration,
    max: Duration,
}

impl ThinkTime {
    /// No pause: each user starts its next workflow at once, for a stress run.
    pub const ZERO: Self = Self {
        min: Duration::ZERO,
        max: Duration::ZERO,
    };

    /// Builds a range; `None` when `min` is above `max`.
    pub fn new(min: Duration, max: Duration) -> Option<Self> {
        (min <= max).then_some(Self { min, max })
    }

    /// Shortest pause.
    pub fn min(&self) -> Duration {
        self.min
    }

    /// Longest pause.
    pub fn max(&self) -> Duration {
        self.max
    }

    /// Draws one pause from the range.
    pub fn sample(&self, rng: &mut impl Rng) -> Duration {
        if self.min == self.max {
            return self.min;
        }
        rng.gen_range(self.min..=self.max)
    }
}

impl fmt::Display for ThinkTime {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.min == self.max {
            write!(f, "{:?}", self.min)
        } else {
            write!(f, "{:?}..{:?}", self.min, self.max)
        }
    }
}

/// Parses `--think-time`: a range `1s..5s`, a fixed pause `2s`, or `0` for none.
pub fn parse_think_time(value: &str) -> Result<ThinkTime, String> {
    let forms = "a range such as 1s..5s, a single duration such as 2s, or 0 for no pause";
    let Some((min, max)) = value.split_once("..") else {
        let pause = parse_duration(value)
            .map_err(|error| format!("{error}; --think-time takes {forms}"))?;
        return Ok(ThinkTime {
            min: pause,
            max: pause,
        });
    };
    let min = parse_duration(min)
        .map_err(|error| format!("lower bound: {error}; --think-time takes {forms}"))?;
    let max = parse_duration(max)
        .map_err(|error| format!("upper bound: {error}; --think-time takes {forms}"))?;
    ThinkTime::new(min, max)
        .ok_or_else(|| format!("the lower bound {min:?} is above the upper bound {max:?}"))
}

/// Parses `--base-url`: an absolute `http` or `https` URL with no query or fragment.
///
/// The path is kept, so an API mounted under a prefix works, and it always ends
/// in `/` so that endpoint paths can be appended as segments.
pub fn parse_base_url(value: &str) -> Result<Url, String> {
    let example = "expected an absolute http:// or https:// URL such as http://127.0.0.1:8080";
    let mut url = Url::parse(value).map_err(|error| format!("{error}; {example}"))?;
    if !matches!(url.scheme(), "http" | "https") {
        return Err(format!("unsupported scheme `{}`; {example}", url.scheme()));
    }
    if url.query().is_some() || url.fragment().is_some() {
        return Err(format!("must not contain a query or fragment; {example}"));
    }
    if !url.path().ends_with('/') {
        let path = format!("{}/", url.path());
        url.set_path(&path);
    }
    Ok(url)
}

/// Parses `--target-ms`: a finite number of milliseconds greater than zero.
pub fn parse_target_ms(value: &str) -> Result<f64, String> {
    match value.trim().parse::<f64>() {
        Ok(target) if target.is_finite() && target > 0.0 => Ok(target),
        _ => Err(
            "expected a number of milliseconds greater than zero, such as 75 or 120.5".to_string(),
        ),
    }
}

/// Lowest `--rate` accepted, in requests per second (one request in about 17
/// minutes). It keeps every due time within what `Instant` can represent.
const MIN_RATE: f64 = 0.001;

/// Highest `--rate` accepted, in requests per second: far above what one
/// client machine can send, so a larger value is a typing error.
const MAX_RATE: f64 = 1_000_000.0;

/// Parses `--rate`: requests per second, from [`MIN_RATE`] to [`MAX_RATE`].
pub fn parse_rate(value: &str) -> Result<f64, String> {
    match value.trim().parse::<f64>() {
        Ok(rate) if (MIN_RATE..=MAX_RATE).contains(&rate) => Ok(rate),
        _ => Err(format!(
            "expected requests per second, a number from {MIN_RATE} to {MAX_RATE}, such as 200 or 12.5"
        )),
    }
}

#[cfg(test)]
mod tests {
    use rand::rngs::StdRng;
    use rand::SeedableRng;

    use super::*;

    #[test]
    fn duration_accepts_documented_forms() {
        let cases = [
            ("20s", Duration::from_secs(20)),
            ("500ms", Duration::from_millis(500)),
            ("2m", Duration::from_secs(120)),
            ("1.5s", Duration::from_millis(1500)),
            ("0.1s", Duration::from_millis(100)),
            ("1h", Duration::from_secs(3600)),
            ("0", Duration::ZERO),
            ("0s", Duration::ZERO),
            (" 3s ", Duration::from_secs(3)),
        ];
        for (input, expected) in cases {
            assert_eq!(parse_duration(input), Ok(expected), "input {input:?}");
        }
    }

    #[test]
    fn duration_rejects_malformed_values() {
        let cases = [
            ("20", "missing unit"),
            ("", "missing unit"),
            ("20x", "unknown unit `x`"),
            ("20sec", "unknown unit `sec`"),
            ("s", "is not a number"),
            ("-1s", "is not a number"),
            ("1.2.3s", "is not a number"),
            ("1e3ms", "unknown unit `e3ms`"),
            ("infs", "is not a number"),
        ];
        for (input, expected) in cases {
            let error = parse_duration(input).expect_err(input);
            assert!(error.contains(expected), "input {input:?} gave {error:?}");
            assert!(
                error.contains("20s"),
                "input {input:?} gave {error:?} without the accepted forms"
            );
        }
    }

    #[test]
    fn duration_rejects_overflow() {
        let error = parse_duration("99999999999999999999h").expect_err("overflow");
        assert!(error.contains("too long"), "{error}");
    }

    #[test]
    fn positive_duration_rejects_zero() {
        assert!(parse_positive_duration("0").is_err());
        assert!(parse_positive_duration("0ms").is_err());
        assert_eq!(parse_positive_duration("1ms"), Ok(Duration::from_millis(1)));
    }

    #[test]
    fn think_time_accepts_range_single_and_zero() {
        let range = parse_think_time("1s..5s").expect("range");
        assert_eq!(range.min(), Duration::from_secs(1));
        assert_eq!(range.max(), Duration::from_secs(5));

        let fixed = parse_think_time("2s").expect("single value");
        assert_eq!(fixed.min(), Duration::from_secs(2));
        assert_eq!(fixed.max(), Duration::from_secs(2));

        assert_eq!(parse_think_time("0"), Ok(ThinkTime::ZERO));
        assert_eq!(
            parse_think_time("0..500ms")
                .expect("zero lower bound")
                .max(),
            Duration::from_millis(500)
        );
    }

    #[test]
    fn think_time_rejects_bad_bounds() {
        let reversed = parse_think_time("5s..1s").expect_err("reversed range");
        assert!(reversed.contains("above the upper bound"), "{reversed}");

        let bad_lower = parse_think_time("x..5s").expect_err("bad lower bound");
        assert!(bad_lower.starts_with("lower bound"), "{bad_lower}");

        let bad_upper = parse_think_time("1s..5").expect_err("bad upper bound");
        assert!(bad_upper.starts_with("upper bound"), "{bad_upper}");
        assert!(bad_upper.contains("1s..5s"), "{bad_upper}");
    }

    #[test]
    fn think_time_samples_stay_in_range() {
        let range = ThinkTime::new(Duration::from_millis(10), Duration::from_millis(20))
            .expect("valid range");
        let mut rng = StdRng::seed_from_u64(7);
        for _ in 0..1_000 {
            let pause = range.sample(&mut rng);
            assert!((range.min()..=range.max()).contains(&pause), "{pause:?}");
        }
        assert_eq!(ThinkTime::ZERO.sample(&mut rng), Duration::ZERO);
    }

    #[test]
    fn think_time_displays_as_parsed() {
        assert_eq!(
            parse_think_time("1s..5s").expect("range").to_string(),
            "1s..5s"
        );
        assert_eq!(parse_think_time("2s").expect("fixed").to_string(), "2s");
    }

    #[test]
    fn base_url_normalises_trailing_slash() {
        assert_eq!(
            parse_base_url("http://127.0.0.1:8080")
                .expect("host only")
                .as_str(),
            "http://127.0.0.1:8080/"
        );
        assert_eq!(
            parse_base_url("https://api.example.com/v1")
                .expect("prefix")
                .as_str(),
            "https://api.example.com/v1/"
        );
        assert_eq!(
            parse_base_url("http://127.0.0.1:8080/v1/")
                .expect("prefix with slash")
                .as_str(),
            "http://127.0.0.1:8080/v1/"
        );
    }

    #[test]
    fn base_url_rejects_unusable_urls() {
        let cases = [
            ("127.0.0.1:8080", "http://"),
            ("/relative", "relative URL"),
            ("ftp://127.0.0.1", "unsupported scheme `ftp`"),
            ("http://127.0.0.1:8080/?a=1", "query or fragment"),
            ("http://127.0.0.1:8080/#top", "query or fragment"),
        ];
        for (input, expected) in cases {
            let error = parse_base_url(input).expect_err(input);
            assert!(error.contains(expected), "input {input:?} gave {error:?}");
        }
    }

    #[test]
    fn target_ms_accepts_positive_numbers_only() {
        assert_eq!(parse_rate("200"), Ok(200.0));
        assert_eq!(parse_rate(" 12.5 "), Ok(12.5));
        assert_eq!(parse_rate("0.001"), Ok(0.001));
        for input in [
            "0", "-1", "NaN", "inf", "2000000", "2e-19", "0.0009", "ten", "",
        ] {
            assert!(parse_rate(input).is_err(), "input {input:?}");
        }
        assert_eq!(parse_target_ms("75"), Ok(75.0));
        assert_eq!(parse_target_ms("120.5"), Ok(120.5));
        for input in ["0", "-5", "NaN", "inf", "abc", ""] {
            assert!(parse_target_ms(input).is_err(), "input {input:?}");
        }
    }
}

//! Parsers for the flag values only `loadtest` takes: think times, the latency
//! target and the rate. Durations and URLs come from [`crate::cli::values`].
//!
//! Each parser returns its error as a `String`, which clap prints after the flag
//! name and the rejected value, so the messages here only state what is wrong
//! and which form is accepted.

use std::fmt;
use std::time::Duration;

use rand::Rng;

use crate::cli::values::parse_duration;

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

//! Parsers for flag values that several subcommands share: durations and base URLs.
//!
//! Each parser returns its error as a `String`, which clap prints after the flag
//! name and the rejected value, so the messages here only state what is wrong
//! and which form is accepted.

use std::time::Duration;

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

#[cfg(test)]
mod tests {
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
}

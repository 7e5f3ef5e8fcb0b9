//! Per-endpoint latency histograms and error counts, filled while the test runs.
//!
//! Memory stays the same however long the test runs: each endpoint has one
//! fixed-size histogram and one error counter per kind of failure.

use std::collections::BTreeMap;
use std::fmt;
use std::time::Duration;

use hdrhistogram::Histogram;

/// Highest latency a histogram tracks, in microseconds (one hour). Longer samples
/// are recorded as this value; the client timeout ends requests far sooner.
const HIGHEST_TRACKABLE_US: u64 = 3_600_000_000;

/// Significant decimal figures each histogram keeps, so a reported percentile is
/// within 0.1% of the true value.
const SIGNIFICANT_FIGURES: u8 = 3;

/// One step of the virtual user's workflow, labelled by its route template.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Endpoint {
    Login,
    Profile,
    Generations,
    GenerationDetail,
}

impl Endpoint {
    /// Every endpoint, in workflow order.
    pub const ALL: [Self; 4] = [
        Self::Login,
        Self::Profile,
        Self::Generations,
        Self::GenerationDetail,
    ];

    /// Method and route template, as used in the report.
    pub fn label(self) -> &'static str {
        match self {
            Self::Login => "POST /auth/login",
            Self::Profile => "GET /users/profile",
            Self::Generations => "GET /generations",
            Self::GenerationDetail => "GET /generations/{id}",
        }
    }

    fn index(self) -> usize {
        match self {
            Self::Login => 0,
            Self::Profile => 1,
            Self::Generations => 2,
            Self::GenerationDetail => 3,
        }
    }
}

/// Cause of a request that counts as an error.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum ErrorKind {
    /// No complete response within the client timeout.
    Timeout,
    /// The TCP or TLS connection could not be opened.
    Connect,
    /// The server responded with a status outside 2xx.
    Status(u16),
    /// A 2xx response whose body is not the JSON the API documents.
    InvalidBody,
    /// Any other transport failure, such as a connection reset while reading the body.
    Transport,
}

impl fmt::Display for ErrorKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Timeout => f.write_str("timeout"),
            Self::Connect => f.write_str("connect"),
            Self::Status(status) => write!(f, "status_{status}"),
            Self::InvalidBody => f.write_str("invalid_body"),
            Self::Transport => f.write_str("transport"),
        }
    }
}

/// Latencies of the successful requests to one endpoint, and counts of its failures.
#[derive(Debug, Clone)]
pub struct EndpointRecord {
    /// Latency of each 2xx response with a valid body, in microseconds.
    pub latency_us: Histogram<u64>,
    /// Failed requests by cause.
    pub errors: BTreeMap<ErrorKind, u64>,
}

impl EndpointRecord {
    fn new() -> Self {
        Self {
            latency_us: new_latency_histogram(),
            errors: BTreeMap::new(),
        }
    }

    /// Number of successful requests.
    pub fn successes(&self) -> u64 {
        self.latency_us.len()
    }

    /// Number of failed requests, whatever the cause.
    pub fn error_count(&self) -> u64 {
        self.errors.values().sum()
    }
}

/// Everything measured during one run, for every endpoint.
#[derive(Debug, Clone)]
pub struct Recorder {
    endpoints: [EndpointRecord; 4],
}

impl Default for Recorder {
    fn default() -> Self {
        Self::new()
    }
}

impl Recorder {
    /// Creates an empty recorder.
    pub fn new() -> Self {
        Self {
            endpoints: Endpoint::ALL.map(|_| EndpointRecord::new()),
        }
    }

    /// Records the latency of one successful request.
    pub fn record_success(&mut self, endpoint: Endpoint, latency: Duration) {
        let micros = u64::try_from(latency.as_micros()).unwrap_or(u64::MAX);
        self.endpoints[endpoint.index()]
            .latency_us
            .saturating_record(micros);
    }

    /// Counts one failed request. Returns true when it is the first failure of
    /// this kind at this endpoint, so the caller can log it once.
    pub fn record_error(&mut self, endpoint: Endpoint, kind: ErrorKind) -> bool {
        let count = self.endpoints[endpoint.index()]
            .errors
            .entry(kind)
            .or_insert(0);
        *count += 1;
        *count == 1
    }

    /// Returns what was recorded for one endpoint.
    pub fn endpoint(&self, endpoint: Endpoint) -> &EndpointRecord {
        &self.endpoints[endpoint.index()]
    }

    /// Requests sent and errors counted so far, over all endpoints.
    pub fn totals(&self) -> (u64, u64) {
        self.endpoints
            .iter()
            .fold((0, 0), |(requests, errors), record| {
                let endpoint_errors = record.error_count();
                (
                    requests + record.successes() + endpoint_errors,
                    errors + endpoint_errors,
                )
            })
    }
}

/// Creates an empty histogram with the bounds every latency histogram here shares,
/// which is what lets [`Histogram::add`] merge them without error.
pub fn new_latency_histogram() -> Histogram<u64> {
    // The bounds are constants that satisfy the rules of hdrhistogram 7's
    // `new_with_bounds` (low >= 1, high >= 2 * low, at most 5 significant
    // figures), so creation cannot fail.
    Histogram::new_with_bounds(1, HIGHEST_TRACKABLE_US, SIGNIFICANT_FIGURES)
        .expect("constant histogram bounds are valid")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn endpoint_indexes_follow_all() {
        for (position, endpoint) in Endpoint::ALL.into_iter().enumerate() {
            assert_eq!(endpoint.index(), position, "{endpoint:?}");
        }
    }

    #[test]
    fn recorder_counts_successes_and_errors() {
        let mut recorder = Recorder::new();
        recorder.record_success(Endpoint::Login, Duration::from_millis(40));
        recorder.record_success(Endpoint::Profile, Duration::from_millis(3));
        assert!(recorder.record_error(Endpoint::Profile, ErrorKind::Status(500)));
        assert!(!recorder.record_error(Endpoint::Profile, ErrorKind::Status(500)));
        assert!(recorder.record_error(Endpoint::Profile, ErrorKind::Timeout));

        assert_eq!(recorder.totals(), (5, 3));
        assert_eq!(recorder.endpoint(Endpoint::Profile).successes(), 1);
        assert_eq!(recorder.endpoint(Endpoint::Profile).error_count(), 3);
        assert_eq!(recorder.endpoint(Endpoint::Login).error_count(), 0);
    }

    #[test]
    fn recorder_clamps_latency_above_highest() {
        let mut recorder = Recorder::new();
        recorder.record_success(Endpoint::Login, Duration::from_secs(10 * 3600));
        let histogram = &recorder.endpoint(Endpoint::Login).latency_us;
        assert_eq!(histogram.len(), 1);
        assert!(
            histogram.max() >= HIGHEST_TRACKABLE_US,
            "{}",
            histogram.max()
        );
    }

    #[test]
    fn error_kind_labels() {
        assert_eq!(ErrorKind::Timeout.to_string(), "timeout");
        assert_eq!(ErrorKind::Connect.to_string(), "connect");
        assert_eq!(ErrorKind::Status(503).to_string(), "status_503");
        assert_eq!(ErrorKind::InvalidBody.to_string(), "invalid_body");
        assert_eq!(ErrorKind::Transport.to_string(), "transport");
    }
}

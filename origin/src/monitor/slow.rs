//! Rate limit of the slow-request warning, kept per route.

use std::time::Duration;

/// Shortest time between two slow-request warnings of one route. Across all
/// routes that bounds the warnings to a few dozen per minute, however slow the server is.
pub const SLOW_WARNING_INTERVAL: Duration = Duration::from_secs(60);

/// Warning state of one route.
#[derive(Debug, Default)]
pub struct SlowWarnings {
    /// When the last warning was logged, as time since the recorder started.
    last_logged: Option<Duration>,
    /// Slow requests since the last warning that were not logged.
    suppressed: u64,
}

impl SlowWarnings {
    /// Notes a slow request at `now`. Returns `Some(suppressed)` when a warning
    /// should be logged, with the number of slow requests left unlogged since the
    /// previous one, and `None` while the route is inside its interval.
    pub fn note(&mut self, now: Duration) -> Option<u64> {
        let due = self
            .last_logged
            .is_none_or(|last| now.saturating_sub(last) >= SLOW_WARNING_INTERVAL);
        if !due {
            self.suppressed += 1;
            return None;
        }
        self.last_logged = Some(now);
        Some(std::mem::take(&mut self.suppressed))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn first_slow_request_is_logged() {
        let mut warnings = SlowWarnings::default();
        assert_eq!(warnings.note(Duration::from_secs(5)), Some(0));
    }

    #[test]
    fn repeats_are_counted_until_interval_passes() {
        let mut warnings = SlowWarnings::default();
        let start = Duration::from_secs(1);
        assert_eq!(warnings.note(start), Some(0));
        for offset in 1..=3 {
            assert_eq!(warnings.note(start + Duration::from_secs(offset)), None);
        }
        let later = start + SLOW_WARNING_INTERVAL;
        assert_eq!(warnings.note(later), Some(3));
        assert_eq!(warnings.note(later), None);
    }
}

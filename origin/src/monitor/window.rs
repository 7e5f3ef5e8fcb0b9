//! The figures of one route: counters and a latency histogram since start, and
//! the same over a sliding window kept as a ring of buckets.
//!
//! Time is passed in as the [`Duration`] since the recorder started, so the
//! window logic runs the same under a test's clock as under the real one. A
//! bucket belongs to the "epoch" `now / bucket_width`. Recording into a slot that
//! still contains an older epoch resets it first, and reading skips slots whose epoch
//! has left the window, so no background task has to rotate the ring.

use std::time::Duration;

use hdrhistogram::{CreationError, Histogram};

/// Highest latency the histograms track, in microseconds (60 s); slower requests
/// are recorded as 60 s. The database pool timeout defaults to 30 s, so only a
/// request stuck past every timeout reaches it.
const MAX_LATENCY_MICROS: u64 = 60_000_000;
/// One significant digit: a percentile is reported within about 6 % of its true
/// value (hdrhistogram keeps 32 sub-buckets per power of two for this setting).
/// Percentiles are only read by people and dashboards, and the exact average and
/// the Prometheus histogram are kept apart from these.
const SIGNIFICANT_DIGITS: u8 = 1;
/// Marks a slot that no request has been recorded into yet.
const EMPTY_SLOT: u64 = u64::MAX;

/// Builds an empty latency histogram with the recorder's range and precision.
pub fn latency_histogram<T: hdrhistogram::Counter>() -> Result<Histogram<T>, CreationError> {
    Histogram::new_with_bounds(1, MAX_LATENCY_MICROS, SIGNIFICANT_DIGITS)
}

/// One served request, as recorded.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Sample {
    pub latency: Duration,
    pub status: u16,
    /// `Some(true)` for a cacheable read served from L1 or L2, `Some(false)` for one
    /// that was loaded or served stale, `None` for a request that did not use the cache.
    pub cache_hit: Option<bool>,
    /// Whether the latency is within the response-time target.
    pub within_target: bool,
}

impl Sample {
    /// Returns the latency in whole microseconds, rounded up, so a sub-microsecond
    /// response still counts as taking time.
    fn latency_micros(&self) -> u64 {
        let micros = self.latency.as_nanos().div_ceil(1000);
        u64::try_from(micros).unwrap_or(u64::MAX).max(1)
    }
}

/// Request counters of one period.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Counts {
    pub requests: u64,
    /// Responses with a 5xx status.
    pub server_errors: u64,
    /// Responses with 502, 503 or 504: the server could not serve the request at all.
    pub unavailable: u64,
    /// Responses sent within the response-time target.
    pub within_target: u64,
    /// Sum of the latencies, for an exact average.
    pub total_micros: u64,
    /// Requests that looked up the read cache.
    pub cache_lookups: u64,
    /// Lookups served from L1 or L2.
    pub cache_hits: u64,
}

impl Counts {
    fn record(&mut self, sample: &Sample) {
        self.requests += 1;
        if sample.status >= 500 {
            self.server_errors += 1;
        }
        if matches!(sample.status, 502..=504) {
            self.unavailable += 1;
        }
        if sample.within_target {
            self.within_target += 1;
        }
        self.total_micros = self.total_micros.saturating_add(sample.latency_micros());
        if let Some(hit) = sample.cache_hit {
            self.cache_lookups += 1;
            if hit {
                self.cache_hits += 1;
            }
        }
    }

    /// Adds another period's counters to these.
    pub fn add(&mut self, other: &Counts) {
        self.requests += other.requests;
        self.server_errors += other.server_errors;
        self.unavailable += other.unavailable;
        self.within_target += other.within_target;
        self.total_micros = self.total_micros.saturating_add(other.total_micros);
        self.cache_lookups += other.cache_lookups;
        self.cache_hits += other.cache_hits;
    }
}

/// Position of the sliding window's buckets in time.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct WindowClock {
    bucket_width: Duration,
    buckets: u32,
}

impl WindowClock {
    /// Splits a window of `length` into `buckets` equal buckets. A zero count is taken as 1.
    pub fn new(length: Duration, buckets: u32) -> Self {
        let buckets = buckets.max(1);
        let bucket_width = (length / buckets).max(Duration::from_millis(1));
        Self {
            bucket_width,
            buckets,
        }
    }

    fn epoch(&self, now: Duration) -> u64 {
        let epoch = now.as_nanos() / self.bucket_width.as_nanos();
        u64::try_from(epoch).unwrap_or(EMPTY_SLOT - 1)
    }

    fn slot_index(&self, epoch: u64) -> usize {
        // The remainder is below `buckets`, a u32, so it fits in usize.
        (epoch % u64::from(self.buckets)) as usize
    }

    /// Returns whether a slot of `epoch` is inside the window ending in `current`: the
    /// current bucket, which is still filling, and the `buckets - 1` before it.
    fn covers(&self, epoch: u64, current: u64) -> bool {
        epoch != EMPTY_SLOT && epoch <= current && current - epoch < u64::from(self.buckets)
    }
}

/// One bucket of the window.
#[derive(Debug)]
struct Slot {
    epoch: u64,
    counts: Counts,
    // u32 counts halve the memory of the window. A window would need 2^32 requests
    // of one latency value on one route to saturate a count.
    latency: Histogram<u32>,
}

/// The figures of one route.
#[derive(Debug)]
pub struct RouteSeries {
    since_start: Counts,
    since_start_latency: Histogram<u64>,
    slots: Vec<Slot>,
}

impl RouteSeries {
    /// Empty figures, with every slot of `clock`'s ring allocated up front, so
    /// recording never allocates.
    pub fn new(clock: &WindowClock) -> Result<Self, CreationError> {
        let mut slots = Vec::with_capacity(clock.buckets as usize);
        for _ in 0..clock.buckets {
            slots.push(Slot {
                epoch: EMPTY_SLOT,
                counts: Counts::default(),
                latency: latency_histogram()?,
            });
        }
        Ok(Self {
            since_start: Counts::default(),
            since_start_latency: latency_histogram()?,
            slots,
        })
    }

    /// Records one request served at `now`.
    pub fn record(&mut self, clock: &WindowClock, now: Duration, sample: &Sample) {
        let micros = sample.latency_micros();
        self.since_start.record(sample);
        self.since_start_latency.saturating_record(micros);

        let epoch = clock.epoch(now);
        let slot = &mut self.slots[clock.slot_index(epoch)];
        if slot.epoch != epoch {
            slot.epoch = epoch;
            slot.counts = Counts::default();
            slot.latency.reset();
        }
        slot.counts.record(sample);
        slot.latency.saturating_record(micros);
    }

    /// Counters and latencies since start.
    pub fn since_start(&self) -> (Counts, &Histogram<u64>) {
        (self.since_start, &self.since_start_latency)
    }

    /// Adds the counters and latencies of the window ending at `now` to `counts` and `latency`.
    pub fn add_window(
        &self,
        clock: &WindowClock,
        now: Duration,
        counts: &mut Counts,
        latency: &mut Histogram<u32>,
    ) {
        let current = clock.epoch(now);
        for slot in &self.slots {
            if clock.covers(slot.epoch, current) {
                counts.add(&slot.counts);
                // Both histograms have the same range, so adding cannot fail.
                let _ = latency.add(&slot.latency);
            }
        }
    }

    /// Bytes this series keeps, counting the histograms' count arrays, which are nearly all of it.
    #[cfg(test)]
    pub fn approximate_bytes(&self) -> usize {
        let window: usize = self
            .slots
            .iter()
            .map(|slot| {
                std::mem::size_of::<Slot>()
                    + slot.latency.distinct_values() * std::mem::size_of::<u32>()
            })
            .sum();
        std::mem::size_of::<Self>()
            + self.since_start_latency.distinct_values() * std::mem::size_of::<u64>()
            + window
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SECOND: Duration = Duration::from_secs(1);

    fn clock() -> WindowClock {
        // A 30 s window of 30 buckets, one second each.
        WindowClock::new(30 * SECOND, 30)
    }

    fn sample(latency_ms: u64) -> Sample {
        Sample {
            latency: Duration::from_millis(latency_ms),
            status: 200,
            cache_hit: None,
            within_target: true,
        }
    }

    fn window(
        series: &RouteSeries,
        clock: &WindowClock,
        now: Duration,
    ) -> (Counts, Histogram<u32>) {
        let mut counts = Counts::default();
        let mut latency = latency_histogram().unwrap();
        series.add_window(clock, now, &mut counts, &mut latency);
        (counts, latency)
    }

    #[test]
    fn window_keeps_requests_for_its_length() {
        let clock = clock();
        let mut series = RouteSeries::new(&clock).unwrap();
        series.record(&clock, Duration::from_millis(500), &sample(2));

        // The bucket of t=0.5 s stays in the window until the 30th bucket after it starts.
        assert_eq!(window(&series, &clock, 29 * SECOND).0.requests, 1);
        assert_eq!(window(&series, &clock, 30 * SECOND).0.requests, 0);
        assert_eq!(series.since_start().0.requests, 1);
    }

    #[test]
    fn reused_slot_forgets_old_requests() {
        let clock = clock();
        let mut series = RouteSeries::new(&clock).unwrap();
        series.record(&clock, SECOND, &sample(100));
        series.record(&clock, SECOND, &sample(100));
        // 31 s lands in the same slot as 1 s, one lap of the ring later.
        series.record(&clock, 31 * SECOND, &sample(1));

        let (counts, latency) = window(&series, &clock, 31 * SECOND);
        assert_eq!(counts.requests, 1);
        assert_eq!(latency.len(), 1);
        assert!(latency.value_at_quantile(0.99) < 2_000);
        assert_eq!(series.since_start().0.requests, 3);
    }

    #[test]
    fn window_adds_buckets_across_the_ring() {
        let clock = clock();
        let mut series = RouteSeries::new(&clock).unwrap();
        for second in 0..40u32 {
            series.record(&clock, second * SECOND, &sample(u64::from(second) + 1));
        }
        // At t=39 s the window covers the buckets of 10 s to 39 s.
        let (counts, latency) = window(&series, &clock, 39 * SECOND);
        assert_eq!(counts.requests, 30);
        assert_eq!(counts.total_micros, (11..=40).sum::<u64>() * 1000);
        assert!(latency.min() >= 10_000, "{}", latency.min());
        // Nothing recorded later: the window empties as time passes.
        assert_eq!(window(&series, &clock, 68 * SECOND).0.requests, 1);
        assert_eq!(window(&series, &clock, 69 * SECOND).0.requests, 0);
    }

    #[test]
    fn counts_classify_statuses_and_cache() {
        let clock = clock();
        let mut series = RouteSeries::new(&clock).unwrap();
        let cases = [
            (200, Some(true), true),
            (200, Some(false), false),
            (404, None, true),
            (500, None, true),
            (503, Some(false), true),
        ];
        for (status, cache_hit, within_target) in cases {
            let sample = Sample {
                status,
                cache_hit,
                within_target,
                ..sample(1)
            };
            series.record(&clock, SECOND, &sample);
        }
        let (counts, _) = series.since_start();
        assert_eq!(counts.requests, 5);
        assert_eq!(counts.server_errors, 2);
        assert_eq!(counts.unavailable, 1);
        assert_eq!(counts.within_target, 4);
        assert_eq!(counts.cache_lookups, 3);
        assert_eq!(counts.cache_hits, 1);
        assert_eq!(window(&series, &clock, SECOND).0, counts);
    }

    #[test]
    fn sub_microsecond_latency_counts_as_one() {
        let zero = Sample {
            latency: Duration::from_nanos(300),
            ..sample(0)
        };
        assert_eq!(zero.latency_micros(), 1);
        let slow = Sample {
            latency: Duration::from_secs(3600),
            ..sample(0)
        };
        let clock = clock();
        let mut series = RouteSeries::new(&clock).unwrap();
        series.record(&clock, SECOND, &slow);
        assert!(series.since_start().1.max() <= MAX_LATENCY_MICROS * 11 / 10);
    }

    #[test]
    fn clock_splits_window_into_buckets() {
        let clock = WindowClock::new(Duration::from_secs(300), 30);
        assert_eq!(clock.bucket_width, Duration::from_secs(10));
        assert_eq!(clock.epoch(Duration::from_millis(9_999)), 0);
        assert_eq!(clock.epoch(Duration::from_secs(10)), 1);
    }
}

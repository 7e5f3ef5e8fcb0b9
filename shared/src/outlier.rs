//! Passive outlier detection of regional origins, in the style of Envoy's: a
//! region that fails is ejected for a while, so later requests skip it without
//! paying for another timeout, and after the ejection it is tried again.
//!
//! A connection error or timeout ejects the region at once, because it will most
//! likely repeat. A 5xx response may belong to one bad request, so only
//! [`SERVER_ERRORS_TO_EJECT`] in a row eject the region. Each ejection in a row
//! lasts [`BASE_EJECTION_MS`] longer than the one before, up to [`MAX_EJECTION_MS`].
//! Once an ejection ends the region is half-open: the next request goes to it,
//! and its outcome either restores the region or ejects it again for longer.

use crate::routing::Region;

/// Consecutive 5xx responses that eject a region.
pub const SERVER_ERRORS_TO_EJECT: u32 = 3;

/// Length of a first ejection, in milliseconds.
pub const BASE_EJECTION_MS: u64 = 10_000;

/// Maximum length of an ejection, in milliseconds.
pub const MAX_EJECTION_MS: u64 = 120_000;

/// Kind of failure of a request to an origin.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OriginFailure {
    /// The connection failed or the origin did not respond in time.
    Unreachable,
    /// The origin responded with a 5xx status.
    ServerError,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
struct RegionHealth {
    consecutive_server_errors: u32,
    /// Ejections since the region last succeeded.
    ejections: u32,
    /// Unix milliseconds until which the region is skipped; 0 when it is not ejected.
    ejected_until_ms: u64,
}

/// Health of each region's origin, as seen by one caller.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct OutlierDetector {
    regions: [RegionHealth; 3],
}

impl OutlierDetector {
    /// Builds a detector with every region healthy.
    pub fn new() -> OutlierDetector {
        OutlierDetector::default()
    }

    /// Returns whether `region` is ejected at `now_ms` (unix milliseconds).
    pub fn is_ejected(&self, region: Region, now_ms: u64) -> bool {
        now_ms < self.health(region).ejected_until_ms
    }

    /// Orders `regions` for one request: the regions that are not ejected, in
    /// the given order, then the ejected ones, as a last resort.
    pub fn order(&self, regions: [Region; 3], now_ms: u64) -> [Region; 3] {
        let mut ordered = regions;
        // A stable sort keeps the failover order within each group.
        ordered.sort_by_key(|region| self.is_ejected(*region, now_ms));
        ordered
    }

    /// Records a usable response from `region`, which restores it.
    pub fn record_success(&mut self, region: Region) {
        *self.health_mut(region) = RegionHealth::default();
    }

    /// Records a failed request to `region` at `now_ms`, and ejects the region
    /// when the failure calls for it. Returns whether the region is now ejected.
    pub fn record_failure(&mut self, region: Region, failure: OriginFailure, now_ms: u64) -> bool {
        let health = self.health_mut(region);
        let eject = match failure {
            OriginFailure::Unreachable => true,
            OriginFailure::ServerError => {
                health.consecutive_server_errors += 1;
                health.consecutive_server_errors >= SERVER_ERRORS_TO_EJECT
            }
        };
        if eject {
            health.ejections = health.ejections.saturating_add(1);
            health.consecutive_server_errors = 0;
            let ejection_ms = BASE_EJECTION_MS
                .saturating_mul(u64::from(health.ejections))
                .min(MAX_EJECTION_MS);
            health.ejected_until_ms = now_ms.saturating_add(ejection_ms);
        }
        eject
    }

    fn health(&self, region: Region) -> &RegionHealth {
        &self.regions[index(region)]
    }

    fn health_mut(&mut self, region: Region) -> &mut RegionHealth {
        &mut self.regions[index(region)]
    }
}

fn index(region: Region) -> usize {
    match region {
        Region::UsWest1 => 0,
        Region::UsEast1 => 1,
        Region::EuWest1 => 2,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::routing::failover_order;

    const WEST_FIRST: [Region; 3] = [Region::UsWest1, Region::UsEast1, Region::EuWest1];

    #[test]
    fn unreachable_origin_is_ejected_at_once() {
        let mut detector = OutlierDetector::new();
        assert!(detector.record_failure(Region::UsWest1, OriginFailure::Unreachable, 1_000));
        assert!(detector.is_ejected(Region::UsWest1, 1_000));
        assert!(detector.is_ejected(Region::UsWest1, 1_000 + BASE_EJECTION_MS - 1));
        assert!(!detector.is_ejected(Region::UsWest1, 1_000 + BASE_EJECTION_MS));
        assert!(!detector.is_ejected(Region::UsEast1, 1_000));
    }

    #[test]
    fn server_errors_eject_only_in_a_row() {
        let mut detector = OutlierDetector::new();
        assert!(!detector.record_failure(Region::UsEast1, OriginFailure::ServerError, 0));
        assert!(!detector.record_failure(Region::UsEast1, OriginFailure::ServerError, 0));
        detector.record_success(Region::UsEast1);
        assert!(!detector.record_failure(Region::UsEast1, OriginFailure::ServerError, 0));
        assert!(!detector.record_failure(Region::UsEast1, OriginFailure::ServerError, 0));
        assert!(!detector.is_ejected(Region::UsEast1, 0));
        assert!(detector.record_failure(Region::UsEast1, OriginFailure::ServerError, 0));
        assert!(detector.is_ejected(Region::UsEast1, 0));
    }

    #[test]
    fn repeated_ejections_grow_up_to_the_maximum() {
        let mut detector = OutlierDetector::new();
        let mut now = 0;
        let mut lengths = Vec::new();
        for _ in 0..15 {
            detector.record_failure(Region::EuWest1, OriginFailure::Unreachable, now);
            let until = detector.health(Region::EuWest1).ejected_until_ms;
            lengths.push(until - now);
            // Half-open after the ejection, and the trial request fails again.
            now = until;
        }
        assert_eq!(lengths[0], BASE_EJECTION_MS);
        assert_eq!(lengths[1], 2 * BASE_EJECTION_MS);
        assert_eq!(lengths[2], 3 * BASE_EJECTION_MS);
        assert_eq!(lengths[14], MAX_EJECTION_MS);
    }

    #[test]
    fn success_after_half_open_restores_the_region() {
        let mut detector = OutlierDetector::new();
        detector.record_failure(Region::UsWest1, OriginFailure::Unreachable, 0);
        detector.record_failure(
            Region::UsWest1,
            OriginFailure::Unreachable,
            BASE_EJECTION_MS,
        );
        detector.record_success(Region::UsWest1);
        assert!(!detector.is_ejected(Region::UsWest1, BASE_EJECTION_MS));
        detector.record_failure(Region::UsWest1, OriginFailure::Unreachable, 0);
        assert_eq!(
            detector.health(Region::UsWest1).ejected_until_ms,
            BASE_EJECTION_MS,
            "a success resets the ejection count"
        );
    }

    #[test]
    fn order_moves_ejected_regions_last() {
        let mut detector = OutlierDetector::new();
        assert_eq!(detector.order(WEST_FIRST, 0), WEST_FIRST);

        detector.record_failure(Region::UsWest1, OriginFailure::Unreachable, 0);
        assert_eq!(
            detector.order(WEST_FIRST, 5),
            [Region::UsEast1, Region::EuWest1, Region::UsWest1]
        );

        let from_europe = failover_order(Region::EuWest1);
        detector.record_failure(Region::EuWest1, OriginFailure::Unreachable, 0);
        assert_eq!(
            detector.order(from_europe, 5),
            [Region::UsEast1, Region::EuWest1, Region::UsWest1]
        );
        assert_eq!(detector.order(from_europe, BASE_EJECTION_MS), from_europe);
    }
}

//! The regions Velro's origin runs in, the nearest one to a client, and the order
//! in which to try them when one fails.
//!
//! The primary database lives in [`Region::PRIMARY`], so every write goes there,
//! and reads go to the region nearest the client. Nearness is judged from the
//! fields Cloudflare attaches to each request (`request.cf`): continent, country
//! and longitude. It is a choice of geography, not a latency measurement.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

/// A region running an origin.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum Region {
    /// US west coast, with the primary database.
    #[serde(rename = "us-west1")]
    UsWest1,
    /// US east coast, also the nearest region to South America.
    #[serde(rename = "us-east1")]
    UsEast1,
    /// Western Europe, also serving Africa, the Middle East and South Asia.
    #[serde(rename = "eu-west1")]
    EuWest1,
}

impl Region {
    /// Every region, primary first.
    pub const ALL: [Region; 3] = [Region::UsWest1, Region::UsEast1, Region::EuWest1];

    /// Region of the primary database, which takes every write.
    pub const PRIMARY: Region = Region::UsWest1;

    /// Returns the region's name, such as `us-west1`.
    pub fn as_str(self) -> &'static str {
        match self {
            Region::UsWest1 => "us-west1",
            Region::UsEast1 => "us-east1",
            Region::EuWest1 => "eu-west1",
        }
    }

    /// Parses a lowercase region name such as `us-west1`.
    pub fn parse(s: &str) -> Result<Region, UnknownRegion> {
        Region::ALL
            .into_iter()
            .find(|region| region.as_str() == s)
            .ok_or_else(|| UnknownRegion(s.to_owned()))
    }

    /// Returns the default share of traffic, in percent. The three shares sum to 100.
    pub fn weight(self) -> u8 {
        match self {
            Region::UsWest1 => 40,
            Region::UsEast1 => 35,
            Region::EuWest1 => 25,
        }
    }

    /// Returns the default Railway deployment region hosting this region's origin.
    pub fn default_railway_region(self) -> &'static str {
        match self {
            Region::UsWest1 => "us-west2",
            Region::UsEast1 => "us-east4-eqdc4a",
            Region::EuWest1 => "europe-west4-drams3a",
        }
    }

    /// Position in [`Region::ALL`].
    fn index(self) -> usize {
        match self {
            Region::UsWest1 => 0,
            Region::UsEast1 => 1,
            Region::EuWest1 => 2,
        }
    }
}

impl fmt::Display for Region {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Region {
    type Err = UnknownRegion;

    fn from_str(s: &str) -> Result<Region, UnknownRegion> {
        Region::parse(s)
    }
}

/// A region name that is not one of [`Region::ALL`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown region {0:?}: expected one of us-west1, us-east1, eu-west1")]
pub struct UnknownRegion(pub String);

/// Deployment settings of one region.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RegionEntry {
    /// The region.
    pub region: Region,
    /// Share of traffic, in percent.
    pub weight: u8,
    /// Railway deployment region hosting the origin, such as `us-west2`.
    pub railway_region: String,
    /// Base URL of the region's origin, such as `https://us-west1.origin.example.com`.
    pub origin_url: String,
}

impl RegionEntry {
    /// Builds an entry with the region's default weight and Railway region.
    pub fn with_defaults(region: Region, origin_url: impl Into<String>) -> RegionEntry {
        RegionEntry {
            region,
            weight: region.weight(),
            railway_region: region.default_railway_region().to_owned(),
            origin_url: origin_url.into(),
        }
    }
}

/// Reason a list of region entries is not a valid [`RegionTable`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RegionTableError {
    /// A region appears more than once.
    #[error("region {0} is listed more than once; list each region exactly once")]
    DuplicateRegion(Region),
    /// A region is not listed.
    #[error("region {0} is missing; list each of us-west1, us-east1, eu-west1 exactly once")]
    MissingRegion(Region),
    /// The weights do not add up to 100 percent.
    #[error("region weights sum to {sum}, expected 100")]
    WeightSum {
        /// The actual sum.
        sum: u32,
    },
    /// An origin URL lacks an `http://` or `https://` scheme or a host.
    #[error(
        "origin URL {url:?} of region {region} is invalid: expected http://host or https://host"
    )]
    InvalidOriginUrl {
        /// The region whose URL is invalid.
        region: Region,
        /// The rejected URL.
        url: String,
    },
    /// A Railway region name is empty.
    #[error("railway region of region {0} is empty")]
    EmptyRailwayRegion(Region),
}

/// Validated settings of all regions: each region once, weights summing to 100, and http(s) origin URLs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RegionTable {
    /// One entry per region, in the order of [`Region::ALL`].
    entries: Vec<RegionEntry>,
}

impl RegionTable {
    /// Validates `entries`, in any order, and stores them in the order of [`Region::ALL`].
    pub fn new(entries: Vec<RegionEntry>) -> Result<RegionTable, RegionTableError> {
        let mut slots: [Option<RegionEntry>; 3] = [None, None, None];
        for entry in entries {
            validate_entry(&entry)?;
            let slot = &mut slots[entry.region.index()];
            if slot.is_some() {
                return Err(RegionTableError::DuplicateRegion(entry.region));
            }
            *slot = Some(entry);
        }

        let mut ordered = Vec::with_capacity(Region::ALL.len());
        for (region, slot) in Region::ALL.into_iter().zip(slots) {
            ordered.push(slot.ok_or(RegionTableError::MissingRegion(region))?);
        }

        let sum: u32 = ordered.iter().map(|entry| u32::from(entry.weight)).sum();
        if sum != 100 {
            return Err(RegionTableError::WeightSum { sum });
        }
        Ok(RegionTable { entries: ordered })
    }

    /// Returns the entry of `region`.
    pub fn entry(&self, region: Region) -> &RegionEntry {
        // `new` stores exactly one entry per region at `region.index()`, so the index is in bounds.
        &self.entries[region.index()]
    }

    /// Returns all entries, in the order of [`Region::ALL`].
    pub fn entries(&self) -> &[RegionEntry] {
        &self.entries
    }
}

fn validate_entry(entry: &RegionEntry) -> Result<(), RegionTableError> {
    let host = entry
        .origin_url
        .strip_prefix("https://")
        .or_else(|| entry.origin_url.strip_prefix("http://"));
    let has_host = host.is_some_and(|rest| !rest.is_empty() && !rest.starts_with('/'));
    if !has_host {
        return Err(RegionTableError::InvalidOriginUrl {
            region: entry.region,
            url: entry.origin_url.clone(),
        });
    }
    if entry.railway_region.trim().is_empty() {
        return Err(RegionTableError::EmptyRailwayRegion(entry.region));
    }
    Ok(())
}

/// Longitude, in degrees, dividing North America between the two US regions. It
/// runs through the Great Plains, so the Pacific and Mountain states go west.
const AMERICAS_SPLIT_LONGITUDE: f64 = -100.0;

/// Longitude, in degrees, east of which an Asian client goes to us-west1 when its
/// country is unknown; it lies just east of India and Bangladesh.
const ASIA_SPLIT_LONGITUDE: f64 = 90.0;

/// Asian countries (ISO 3166-1 alpha-2) served from Europe: the Middle East, the
/// Caucasus, Central Asia and South Asia, which have shorter routes to western
/// Europe than to the US west coast. East and Southeast Asia go to us-west1.
#[rustfmt::skip]
const ASIA_SERVED_FROM_EUROPE: [&str; 32] = [
    // Middle East.
    "AE", "BH", "CY", "IL", "IQ", "IR", "JO", "KW", "LB", "OM", "PS", "QA", "SA", "SY", "TR", "YE",
    // Caucasus.
    "AM", "AZ", "GE",
    // Central Asia.
    "AF", "KG", "KZ", "TJ", "TM", "UZ",
    // South Asia.
    "BD", "BT", "IN", "LK", "MV", "NP", "PK",
];

/// Picks the nearest region to a client from Cloudflare's `request.cf` fields: the
/// continent code (`NA`, `EU`, `AS`, ...), the ISO country code, and the longitude when known.
///
/// - Europe (`EU`) and Africa (`AF`) go to eu-west1.
/// - Asia (`AS`) goes to eu-west1 for the Middle East, the Caucasus, Central and
///   South Asia, and to us-west1 for the rest. Without a country, a longitude west
///   of 90°E means eu-west1.
/// - North America (`NA`) is split at 100°W: west of it us-west1, east of it us-east1.
///   Without a longitude, the US, Canada and Mexico go to the primary, and the
///   Caribbean and Central America to us-east1.
/// - South America (`SA`) goes to us-east1, because its submarine cables land on the US east coast.
/// - Oceania (`OC`) goes to us-west1.
/// - Anything else (missing, `AN`, Cloudflare's `T1` for Tor) goes to the primary.
///
/// Codes are compared case-insensitively. A longitude that is not finite or lies
/// outside ±180° counts as unknown.
pub fn nearest_region(
    continent: Option<&str>,
    country: Option<&str>,
    longitude: Option<f64>,
) -> Region {
    let longitude = longitude.filter(|degrees| degrees.is_finite() && degrees.abs() <= 180.0);
    let country = country.map(str::trim).filter(|code| !code.is_empty());
    let Some(continent) = continent.map(str::trim) else {
        return Region::PRIMARY;
    };

    if continent.eq_ignore_ascii_case("EU") || continent.eq_ignore_ascii_case("AF") {
        Region::EuWest1
    } else if continent.eq_ignore_ascii_case("AS") {
        nearest_for_asia(country, longitude)
    } else if continent.eq_ignore_ascii_case("NA") {
        nearest_for_north_america(country, longitude)
    } else if continent.eq_ignore_ascii_case("SA") {
        Region::UsEast1
    } else if continent.eq_ignore_ascii_case("OC") {
        Region::UsWest1
    } else {
        Region::PRIMARY
    }
}

fn nearest_for_asia(country: Option<&str>, longitude: Option<f64>) -> Region {
    let served_from_europe = match (country, longitude) {
        (Some(country), _) => ASIA_SERVED_FROM_EUROPE
            .iter()
            .any(|code| code.eq_ignore_ascii_case(country)),
        (None, Some(longitude)) => longitude < ASIA_SPLIT_LONGITUDE,
        (None, None) => false,
    };
    if served_from_europe {
        Region::EuWest1
    } else {
        Region::UsWest1
    }
}

fn nearest_for_north_america(country: Option<&str>, longitude: Option<f64>) -> Region {
    if let Some(longitude) = longitude {
        return if longitude < AMERICAS_SPLIT_LONGITUDE {
            Region::UsWest1
        } else {
            Region::UsEast1
        };
    }
    // The US, Canada and Mexico span both sides of the split, so without a
    // longitude there is no better guess than the primary.
    match country {
        Some(country)
            if ["US", "CA", "MX"]
                .iter()
                .any(|code| code.eq_ignore_ascii_case(country)) =>
        {
            Region::PRIMARY
        }
        Some(_) => Region::UsEast1,
        None => Region::PRIMARY,
    }
}

/// Lists `region` first, then the other regions in the order to try when it fails.
///
/// Each region falls back to the other US region before crossing the Atlantic,
/// and eu-west1 tries us-east1 first because it is closer.
pub fn failover_order(region: Region) -> [Region; 3] {
    match region {
        Region::UsWest1 => [Region::UsWest1, Region::UsEast1, Region::EuWest1],
        Region::UsEast1 => [Region::UsEast1, Region::UsWest1, Region::EuWest1],
        Region::EuWest1 => [Region::EuWest1, Region::UsEast1, Region::UsWest1],
    }
}

/// Picks the region that serves a request. Writes (non-safe methods) always go to
/// [`Region::PRIMARY`], where the primary database is, and reads go to `nearest`.
///
/// The safe methods are GET, HEAD, OPTIONS and TRACE (RFC 9110 §9.2.1). Method
/// names are case-sensitive (RFC 9110 §9.1), so `get` counts as a write.
pub fn serving_region(method: &str, nearest: Region) -> Region {
    match method {
        "GET" | "HEAD" | "OPTIONS" | "TRACE" => nearest,
        _ => Region::PRIMARY,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entries() -> Vec<RegionEntry> {
        Region::ALL
            .into_iter()
            .map(|region| {
                RegionEntry::with_defaults(region, format!("https://{region}.origin.test"))
            })
            .collect()
    }

    fn table(entries: Vec<RegionEntry>) -> RegionTable {
        match RegionTable::new(entries) {
            Ok(table) => table,
            Err(error) => panic!("entries should be valid: {error}"),
        }
    }

    #[test]
    fn names_round_trip() {
        for region in Region::ALL {
            assert_eq!(Region::parse(region.as_str()), Ok(region));
            assert_eq!(region.to_string().parse::<Region>(), Ok(region));
        }
        assert_eq!(Region::UsWest1.as_str(), "us-west1");
        assert_eq!(Region::UsEast1.as_str(), "us-east1");
        assert_eq!(Region::EuWest1.as_str(), "eu-west1");
    }

    #[test]
    fn unknown_name_is_rejected() {
        assert_eq!(
            Region::parse("US-WEST1"),
            Err(UnknownRegion("US-WEST1".to_owned()))
        );
        assert_eq!(
            "ap-south1".parse::<Region>(),
            Err(UnknownRegion("ap-south1".to_owned()))
        );
        assert_eq!(
            UnknownRegion("mars".to_owned()).to_string(),
            "unknown region \"mars\": expected one of us-west1, us-east1, eu-west1"
        );
    }

    #[test]
    fn serde_uses_region_names() {
        assert_eq!(
            serde_json::to_string(&Region::UsEast1).ok(),
            Some("\"us-east1\"".to_owned())
        );
        assert_eq!(
            serde_json::from_str::<Region>("\"eu-west1\"").ok(),
            Some(Region::EuWest1)
        );
        assert!(serde_json::from_str::<Region>("\"EuWest1\"").is_err());
    }

    #[test]
    fn default_weights_sum_to_100() {
        let sum: u32 = Region::ALL
            .into_iter()
            .map(|region| u32::from(region.weight()))
            .sum();
        assert_eq!(sum, 100);
        assert_eq!(Region::UsWest1.weight(), 40);
        assert_eq!(Region::UsEast1.weight(), 35);
        assert_eq!(Region::EuWest1.weight(), 25);
    }

    #[test]
    fn default_railway_regions() {
        assert_eq!(Region::UsWest1.default_railway_region(), "us-west2");
        assert_eq!(Region::UsEast1.default_railway_region(), "us-east4-eqdc4a");
        assert_eq!(
            Region::EuWest1.default_railway_region(),
            "europe-west4-drams3a"
        );
    }

    #[test]
    fn table_orders_entries() {
        let mut shuffled = entries();
        shuffled.reverse();
        let table = table(shuffled);
        let order: Vec<Region> = table.entries().iter().map(|entry| entry.region).collect();
        assert_eq!(order, Region::ALL);
        assert_eq!(
            table.entry(Region::EuWest1).origin_url,
            "https://eu-west1.origin.test"
        );
        assert_eq!(table.entry(Region::UsEast1).weight, 35);
    }

    #[test]
    fn table_rejects_duplicate_region() {
        let mut duplicated = entries();
        duplicated.push(RegionEntry::with_defaults(
            Region::UsEast1,
            "https://again.test",
        ));
        assert_eq!(
            RegionTable::new(duplicated),
            Err(RegionTableError::DuplicateRegion(Region::UsEast1))
        );
    }

    #[test]
    fn table_rejects_missing_region() {
        let mut missing = entries();
        missing.retain(|entry| entry.region != Region::EuWest1);
        assert_eq!(
            RegionTable::new(missing),
            Err(RegionTableError::MissingRegion(Region::EuWest1))
        );
    }

    #[test]
    fn table_rejects_bad_weight_sum() {
        let mut heavy = entries();
        heavy[0].weight = 41;
        assert_eq!(
            RegionTable::new(heavy),
            Err(RegionTableError::WeightSum { sum: 101 })
        );

        let mut all_max = entries();
        for entry in &mut all_max {
            entry.weight = u8::MAX;
        }
        assert_eq!(
            RegionTable::new(all_max),
            Err(RegionTableError::WeightSum { sum: 765 })
        );
    }

    #[test]
    fn table_rejects_bad_origin_urls() {
        for url in [
            "",
            "us-west1.origin.test",
            "ftp://host",
            "https://",
            "http:///path",
            "HTTPS://host",
        ] {
            let mut bad = entries();
            bad[1].origin_url = url.to_owned();
            assert_eq!(
                RegionTable::new(bad),
                Err(RegionTableError::InvalidOriginUrl {
                    region: Region::UsEast1,
                    url: url.to_owned()
                }),
                "{url:?}"
            );
        }
        let mut plain_http = entries();
        plain_http[2].origin_url = "http://127.0.0.1:8080".to_owned();
        assert!(RegionTable::new(plain_http).is_ok());
    }

    #[test]
    fn table_rejects_empty_railway_region() {
        let mut blank = entries();
        blank[0].railway_region = "  ".to_owned();
        assert_eq!(
            RegionTable::new(blank),
            Err(RegionTableError::EmptyRailwayRegion(Region::UsWest1))
        );
    }

    #[test]
    fn europe_and_africa_go_to_eu() {
        assert_eq!(
            nearest_region(Some("EU"), Some("DE"), Some(13.4)),
            Region::EuWest1
        );
        assert_eq!(
            nearest_region(Some("AF"), Some("NG"), None),
            Region::EuWest1
        );
        assert_eq!(nearest_region(Some("eu"), None, None), Region::EuWest1);
    }

    #[test]
    fn north_america_splits_by_longitude() {
        assert_eq!(
            nearest_region(Some("NA"), Some("US"), Some(-122.4)),
            Region::UsWest1
        );
        assert_eq!(
            nearest_region(Some("NA"), Some("US"), Some(-104.9)),
            Region::UsWest1
        );
        assert_eq!(
            nearest_region(Some("NA"), Some("US"), Some(-87.6)),
            Region::UsEast1
        );
        assert_eq!(
            nearest_region(Some("NA"), Some("CA"), Some(-79.4)),
            Region::UsEast1
        );
        assert_eq!(
            nearest_region(Some("NA"), Some("US"), Some(-157.8)),
            Region::UsWest1
        );
    }

    #[test]
    fn north_america_without_longitude() {
        assert_eq!(
            nearest_region(Some("NA"), Some("US"), None),
            Region::PRIMARY
        );
        assert_eq!(nearest_region(Some("NA"), None, None), Region::PRIMARY);
        assert_eq!(
            nearest_region(Some("NA"), Some("JM"), None),
            Region::UsEast1
        );
        assert_eq!(
            nearest_region(Some("NA"), Some("US"), Some(f64::NAN)),
            Region::PRIMARY
        );
        assert_eq!(
            nearest_region(Some("NA"), Some("US"), Some(500.0)),
            Region::PRIMARY
        );
    }

    #[test]
    fn south_america_goes_east() {
        assert_eq!(
            nearest_region(Some("SA"), Some("BR"), Some(-46.6)),
            Region::UsEast1
        );
        assert_eq!(
            nearest_region(Some("SA"), Some("CL"), Some(-70.7)),
            Region::UsEast1
        );
    }

    #[test]
    fn asia_splits_between_europe_and_us_west() {
        assert_eq!(
            nearest_region(Some("AS"), Some("AE"), Some(55.3)),
            Region::EuWest1
        );
        assert_eq!(
            nearest_region(Some("AS"), Some("IN"), Some(72.9)),
            Region::EuWest1
        );
        assert_eq!(
            nearest_region(Some("AS"), Some("il"), None),
            Region::EuWest1
        );
        assert_eq!(
            nearest_region(Some("AS"), Some("JP"), Some(139.7)),
            Region::UsWest1
        );
        assert_eq!(
            nearest_region(Some("AS"), Some("SG"), Some(103.8)),
            Region::UsWest1
        );
        assert_eq!(
            nearest_region(Some("AS"), None, Some(51.4)),
            Region::EuWest1
        );
        assert_eq!(
            nearest_region(Some("AS"), None, Some(121.5)),
            Region::UsWest1
        );
        assert_eq!(nearest_region(Some("AS"), None, None), Region::UsWest1);
    }

    #[test]
    fn oceania_goes_west() {
        assert_eq!(
            nearest_region(Some("OC"), Some("AU"), Some(151.2)),
            Region::UsWest1
        );
        assert_eq!(
            nearest_region(Some("OC"), Some("NZ"), None),
            Region::UsWest1
        );
    }

    #[test]
    fn unknown_location_goes_to_primary() {
        assert_eq!(nearest_region(None, None, None), Region::PRIMARY);
        assert_eq!(
            nearest_region(None, Some("DE"), Some(13.4)),
            Region::PRIMARY
        );
        assert_eq!(nearest_region(Some("T1"), None, None), Region::PRIMARY);
        assert_eq!(
            nearest_region(Some("AN"), None, Some(166.7)),
            Region::PRIMARY
        );
        assert_eq!(nearest_region(Some(""), None, None), Region::PRIMARY);
    }

    #[test]
    fn failover_orders() {
        assert_eq!(
            failover_order(Region::UsWest1),
            [Region::UsWest1, Region::UsEast1, Region::EuWest1]
        );
        assert_eq!(
            failover_order(Region::UsEast1),
            [Region::UsEast1, Region::UsWest1, Region::EuWest1]
        );
        assert_eq!(
            failover_order(Region::EuWest1),
            [Region::EuWest1, Region::UsEast1, Region::UsWest1]
        );
    }

    #[test]
    fn failover_order_lists_each_region_once() {
        for region in Region::ALL {
            let order = failover_order(region);
            for other in Region::ALL {
                assert_eq!(
                    order.iter().filter(|&&r| r == other).count(),
                    1,
                    "{region}: {other}"
                );
            }
        }
    }

    #[test]
    fn reads_stay_near_and_writes_go_primary() {
        for method in ["GET", "HEAD", "OPTIONS", "TRACE"] {
            assert_eq!(
                serving_region(method, Region::EuWest1),
                Region::EuWest1,
                "{method}"
            );
        }
        for method in ["POST", "PUT", "PATCH", "DELETE", "get", "BREW"] {
            assert_eq!(
                serving_region(method, Region::EuWest1),
                Region::PRIMARY,
                "{method}"
            );
        }
    }
}

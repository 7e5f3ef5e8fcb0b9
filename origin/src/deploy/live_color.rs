//! `velro-origin regions --live-color EDGE_URL`: the color the edge routes to.
//!
//! The edge's `/edge/health` reports each region's origin URL. The live color
//! is the one whose URLs in `regions.toml` those are, and the deploy workflow
//! deploys the other one. Read from the edge instead of kept in a record, the
//! color cannot drift from where traffic goes, even after a deploy
//! that stopped between the switch and the end of its watch.

use std::time::Duration;

use anyhow::{anyhow, bail, Context};
use reqwest::{StatusCode, Url};
use serde::Deserialize;
use serde_json::Value;

use super::probe::{self, endpoint};
use super::regions::{service_url, Color, DeployRegion};
use crate::cli::values::parse_base_url;

/// Maximum duration of the request to the edge.
const EDGE_TIMEOUT: Duration = Duration::from_secs(10);

/// The part of the `/edge/health` body read here.
/// Each region is kept as raw JSON, because a missing `origin` (an edge built
/// before the field existed) and a `null` one (a region without an origin)
/// mean different things, and serde reads both as `None`.
#[derive(Debug, Deserialize)]
struct EdgeHealth {
    regions: Vec<Value>,
}

/// Asks the edge at `edge` which origins it routes to and returns their color.
pub async fn read(edge: &Url, regions: &[DeployRegion]) -> anyhow::Result<Color> {
    let client = probe::client("regions")?;
    let url = endpoint(edge, "edge/health");
    let (status, body) = probe::get(&client, &url, EDGE_TIMEOUT)
        .await
        .map_err(|why| anyhow!("reading {url} failed: {why}"))?;
    if status != StatusCode::OK {
        bail!("{url} returned {status} instead of 200");
    }
    let health: EdgeHealth = serde_json::from_slice(&body)
        .with_context(|| format!("{url} did not return the edge's health report"))?;
    color_of(&health, regions).with_context(|| format!("reading the live color from {url} failed"))
}

fn color_of(health: &EdgeHealth, regions: &[DeployRegion]) -> anyhow::Result<Color> {
    let mut live: Option<(Color, &DeployRegion)> = None;
    for region in regions {
        let name = region.name.as_str();
        let Some(reported) = health
            .regions
            .iter()
            .find(|entry| entry["region"].as_str() == Some(name))
        else {
            bail!("the edge does not list region {name}");
        };
        let origin = match reported.get("origin") {
            None => bail!(
                "the edge does not report its origins, so it predates this pipeline; deploy it with scripts/deploy/switch-edge and the color that serves traffic now"
            ),
            Some(Value::String(origin)) => origin,
            Some(_) => bail!(
                "the edge has no origin for region {name}; point every region at one color with scripts/deploy/switch-edge"
            ),
        };
        // Both sides go through parse_base_url, so a trailing `/` makes no difference.
        let origin = parse_base_url(origin).map_err(|why| {
            anyhow!("the edge's origin {origin:?} for region {name} is invalid: {why}")
        })?;
        let color = [Color::Blue, Color::Green]
            .into_iter()
            .find(|color| {
                service_url(region.name, *color, region.url(*color))
                    .is_ok_and(|listed| listed == origin)
            })
            .ok_or_else(|| {
                anyhow!("the edge routes region {name} to {origin}, which is neither its blue nor its green URL in the regions file")
            })?;
        match live {
            Some((first, first_region)) if first != color => bail!(
                "the edge routes {} to {first} but {name} to {color}; move all regions to one color with scripts/deploy/switch-edge",
                first_region.name
            ),
            Some(_) => {}
            None => live = Some((color, region)),
        }
    }
    live.map(|(color, _)| color)
        .ok_or_else(|| anyhow!("the regions file lists no regions"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::deploy::regions::parse;

    const FILE: &str = include_str!("../../../regions.toml");

    /// Parses a body shaped like the edge's `/edge/health`.
    fn health(origins: [Option<&str>; 3]) -> EdgeHealth {
        let regions: Vec<Value> = ["us-west1", "us-east1", "eu-west1"]
            .into_iter()
            .zip(origins)
            .map(|(region, origin)| {
                serde_json::json!({"region": region, "configured": origin.is_some(), "origin": origin, "ejected": false})
            })
            .collect();
        let body = serde_json::json!({"status": "ok", "regions": regions}).to_string();
        serde_json::from_str(&body).expect("parses")
    }

    fn regions() -> Vec<DeployRegion> {
        parse(FILE).expect("regions.toml is valid")
    }

    #[test]
    fn all_green_origins_mean_green() {
        let report = health([
            Some("https://us-west1-green.origin.velro.example"),
            Some("https://us-east1-green.origin.velro.example/"),
            Some("https://eu-west1-green.origin.velro.example"),
        ]);
        assert_eq!(color_of(&report, &regions()).ok(), Some(Color::Green));
    }

    #[test]
    fn mixed_colors_are_an_error() {
        let report = health([
            Some("https://us-west1-green.origin.velro.example"),
            Some("https://us-east1-blue.origin.velro.example"),
            Some("https://eu-west1-green.origin.velro.example"),
        ]);
        let error = format!("{:#}", color_of(&report, &regions()).expect_err("mixed"));
        assert!(
            error.contains("routes us-west1 to green but us-east1 to blue"),
            "{error}"
        );
    }

    #[test]
    fn unknown_or_missing_origin_is_an_error() {
        let report = health([Some("https://elsewhere.example"), None, None]);
        let error = format!("{:#}", color_of(&report, &regions()).expect_err("unknown"));
        assert!(
            error.contains("which is neither its blue nor its green URL"),
            "{error}"
        );

        let report = health([
            Some("https://us-west1-blue.origin.velro.example"),
            None,
            None,
        ]);
        let error = format!("{:#}", color_of(&report, &regions()).expect_err("missing"));
        assert!(
            error.contains("the edge has no origin for region us-east1"),
            "{error}"
        );

        let old_edge: EdgeHealth = serde_json::from_str(
            r#"{"regions": [{"region": "us-west1", "configured": true, "ejected": false}]}"#,
        )
        .expect("parses");
        let error = format!(
            "{:#}",
            color_of(&old_edge, &regions()).expect_err("old edge")
        );
        assert!(error.contains("predates this pipeline"), "{error}");
    }
}

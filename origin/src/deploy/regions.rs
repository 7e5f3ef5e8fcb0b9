//! `velro-origin regions`: reads `regions.toml`, the deploy's list of regions,
//! checks it, and prints it as a table or as JSON for the deploy scripts.
//!
//! Each region runs two Railway services, blue and green, one live and one idle
//! (see the README's Deploy section). The file names both URLs. The weights and
//! the primary must match [`velro_shared::routing`], because the edge compiles
//! that table in and would not follow an edit to the file alone.

use std::fmt;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::{bail, Context};
use reqwest::Url;
use serde::{Deserialize, Serialize};
use velro_shared::routing::{Region, RegionEntry, RegionTable};

use super::live_color;
use super::probe::print_line;
use crate::cli::values::parse_base_url;

/// Options of `regions`.
#[derive(Debug, clap::Args)]
pub struct RegionsArgs {
    /// The regions file.
    #[arg(long, value_name = "PATH", default_value = "regions.toml")]
    pub file: PathBuf,

    /// Print JSON instead of a table.
    #[arg(long, conflicts_with_all = ["color", "live_color"])]
    pub json: bool,

    /// Print one line per region for the deploy scripts instead of a table:
    /// name, edge variable and the URL of this color, separated by tabs.
    #[arg(long, value_enum, conflicts_with = "live_color")]
    pub color: Option<Color>,

    /// Print the color the edge at this URL routes to, read from its /edge/health.
    #[arg(long, value_name = "EDGE_URL", value_parser = parse_base_url)]
    pub live_color: Option<Url>,
}

/// One of the two services of a region.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Color {
    Blue,
    Green,
}

impl fmt::Display for Color {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Color::Blue => "blue",
            Color::Green => "green",
        })
    }
}

/// Role of a region: primary (with the database that takes writes) or fallback.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    Primary,
    Fallback,
}

/// The file as written.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RegionsFile {
    region: Vec<RegionRow>,
}

/// One `[[region]]` table.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
struct RegionRow {
    name: String,
    role: Role,
    weight: u8,
    railway_region: String,
    blue_url: String,
    green_url: String,
}

/// A checked region, as printed.
#[derive(Debug, Clone, Serialize)]
pub struct DeployRegion {
    pub name: Region,
    pub role: Role,
    pub weight: u8,
    pub railway_region: String,
    /// Name of the edge variable that contains this region's origin URL, such as `ORIGIN_US_WEST1`.
    pub edge_variable: String,
    pub blue_url: String,
    pub green_url: String,
}

/// Returns the name of the edge variable with `region`'s origin URL, as `edge/src/config.rs` reads it.
pub fn edge_variable(region: Region) -> String {
    format!(
        "ORIGIN_{}",
        region.as_str().to_ascii_uppercase().replace('-', "_")
    )
}

impl DeployRegion {
    /// Returns the URL of the region's service of `color`, as the file gives it.
    pub fn url(&self, color: Color) -> &str {
        match color {
            Color::Blue => &self.blue_url,
            Color::Green => &self.green_url,
        }
    }
}

/// Reads and checks a regions file; the regions come back in the order of [`Region::ALL`].
pub fn load(path: &Path) -> anyhow::Result<Vec<DeployRegion>> {
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("reading {} failed", path.display()))?;
    parse(&text).with_context(|| format!("{} is invalid", path.display()))
}

/// Parses and checks the text of a regions file.
pub fn parse(text: &str) -> anyhow::Result<Vec<DeployRegion>> {
    let file: RegionsFile = toml::from_str(text)?;
    let mut rows = Vec::with_capacity(file.region.len());
    for row in file.region {
        let region: Region = row.name.parse()?;
        rows.push((region, row));
    }

    // velro-shared checks that each region appears once, that the weights sum to
    // 100 and that the URLs are http(s). Its table has one URL per region, so it runs per color.
    let table = |color: Color| {
        let entries = rows
            .iter()
            .map(|(region, row)| RegionEntry {
                region: *region,
                weight: row.weight,
                railway_region: row.railway_region.clone(),
                origin_url: match color {
                    Color::Blue => row.blue_url.clone(),
                    Color::Green => row.green_url.clone(),
                },
            })
            .collect();
        RegionTable::new(entries).with_context(|| format!("the {color} services"))
    };
    let blue = table(Color::Blue)?;
    let green = table(Color::Green)?;

    let mut regions = Vec::with_capacity(Region::ALL.len());
    for (blue, green) in blue.entries().iter().zip(green.entries()) {
        let region = blue.region;
        let Some((_, row)) = rows.iter().find(|(listed, _)| *listed == region) else {
            bail!("region {region} is missing");
        };
        check_against_shared(region, row)?;
        let blue_url = service_url(region, Color::Blue, &blue.origin_url)?;
        let green_url = service_url(region, Color::Green, &green.origin_url)?;
        if blue_url == green_url {
            bail!("region {region} gives the same URL to blue and green; each color needs its own service");
        }
        regions.push(DeployRegion {
            name: region,
            role: row.role,
            weight: blue.weight,
            railway_region: blue.railway_region.clone(),
            edge_variable: edge_variable(region),
            blue_url: blue.origin_url.clone(),
            green_url: green.origin_url.clone(),
        });
    }
    Ok(regions)
}

/// Checks a service URL as `health-check` and `watch-deploy` will take it (no
/// query or fragment) and returns it with the trailing `/` they add.
pub fn service_url(region: Region, color: Color, url: &str) -> anyhow::Result<Url> {
    let parsed = parse_base_url(url).map_err(|why| {
        anyhow::anyhow!("the {color} URL {url:?} of region {region} is invalid: {why}")
    })?;
    // The edge shows its origin URLs on the public /edge/health.
    if !parsed.username().is_empty() || parsed.password().is_some() {
        bail!("the {color} URL of region {region} contains credentials; the edge would publish them on /edge/health");
    }
    Ok(parsed)
}

/// The edge routes by velro-shared's compiled-in table, so the file must agree with it.
fn check_against_shared(region: Region, row: &RegionRow) -> anyhow::Result<()> {
    let expected_role = if region == Region::PRIMARY {
        Role::Primary
    } else {
        Role::Fallback
    };
    if row.role != expected_role {
        bail!(
            "region {region} has role {:?}, but velro-shared makes {} the primary; change Region::PRIMARY in shared/src/routing.rs as well",
            row.role,
            Region::PRIMARY
        );
    }
    if row.weight != region.weight() {
        bail!(
            "region {region} has weight {}, but the routing table of velro-shared has {}; change Region::weight in shared/src/routing.rs as well",
            row.weight,
            region.weight()
        );
    }
    if row.railway_region != region.default_railway_region() {
        bail!(
            "region {region} runs in Railway region {:?}, but the routing table of velro-shared has {:?}; change Region::default_railway_region in shared/src/routing.rs as well",
            row.railway_region,
            region.default_railway_region()
        );
    }
    Ok(())
}

/// Runs the command: prints the checked file, or fails with the first problem.
pub async fn run(args: &RegionsArgs) -> anyhow::Result<ExitCode> {
    let regions = load(&args.file)?;
    if let Some(edge) = &args.live_color {
        let color = live_color::read(edge, &regions).await?;
        print_line(&color.to_string());
        return Ok(ExitCode::SUCCESS);
    }
    if args.json {
        print_line(&serde_json::to_string_pretty(&regions)?);
        return Ok(ExitCode::SUCCESS);
    }
    if let Some(color) = args.color {
        for region in &regions {
            let url = region.url(color);
            print_line(&format!(
                "{}\t{}\t{url}",
                region.name.as_str(),
                region.edge_variable
            ));
        }
        return Ok(ExitCode::SUCCESS);
    }
    print_line(&format!(
        "{:<9} {:<8} {:>6}  {:<22} {:<16} URLS",
        "REGION", "ROLE", "WEIGHT", "RAILWAY REGION", "EDGE VARIABLE"
    ));
    for region in &regions {
        let role = match region.role {
            Role::Primary => "primary",
            Role::Fallback => "fallback",
        };
        print_line(&format!(
            "{:<9} {:<8} {:>5}%  {:<22} {:<16} blue {} | green {}",
            region.name.as_str(),
            role,
            region.weight,
            region.railway_region,
            region.edge_variable,
            region.blue_url,
            region.green_url
        ));
    }
    Ok(ExitCode::SUCCESS)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A valid file: the one in the repository's root.
    const FILE: &str = include_str!("../../../regions.toml");

    #[test]
    fn repository_file_is_valid() {
        let regions = parse(FILE).expect("regions.toml is valid");
        let names: Vec<&str> = regions.iter().map(|region| region.name.as_str()).collect();
        assert_eq!(names, ["us-west1", "us-east1", "eu-west1"]);
        let weights: Vec<u8> = regions.iter().map(|region| region.weight).collect();
        assert_eq!(weights, [40, 35, 25]);
        assert_eq!(regions[0].role, Role::Primary);
        assert_eq!(regions[0].edge_variable, "ORIGIN_US_WEST1");
        assert_eq!(regions[2].edge_variable, "ORIGIN_EU_WEST1");
    }

    fn error_of(text: &str) -> String {
        format!("{:#}", parse(text).expect_err("invalid"))
    }

    #[test]
    fn weight_must_match_shared_table() {
        let text = FILE.replacen("weight = 40", "weight = 45", 1).replacen(
            "weight = 35",
            "weight = 30",
            1,
        );
        assert!(
            error_of(&text).contains(
                "region us-west1 has weight 45, but the routing table of velro-shared has 40"
            ),
            "{}",
            error_of(&text)
        );
    }

    #[test]
    fn primary_must_match_shared_table() {
        let text = FILE.replacen(r#"role = "fallback""#, r#"role = "primary""#, 1);
        assert!(
            error_of(&text).contains("region us-east1 has role Primary"),
            "{}",
            error_of(&text)
        );
    }

    #[test]
    fn colors_need_their_own_urls() {
        let text = FILE.replacen("us-west1-green.", "us-west1-blue.", 1);
        assert!(
            error_of(&text).contains("region us-west1 gives the same URL to blue and green"),
            "{}",
            error_of(&text)
        );
        // A trailing slash does not make a URL another service.
        let text = FILE.replacen(
            "https://us-west1-green.origin.velro.example",
            "https://us-west1-blue.origin.velro.example/",
            1,
        );
        assert!(
            error_of(&text).contains("region us-west1 gives the same URL to blue and green"),
            "{}",
            error_of(&text)
        );
    }

    #[test]
    fn urls_take_no_query_or_fragment() {
        let text = FILE.replacen(
            "https://eu-west1-blue.origin.velro.example",
            "https://eu-west1-blue.origin.velro.example/?a=1",
            1,
        );
        let error = error_of(&text);
        assert!(
            error.contains("the blue URL \"https://eu-west1-blue.origin.velro.example/?a=1\" of region eu-west1 is invalid"),
            "{error}"
        );
        assert!(
            error.contains("must not contain a query or fragment"),
            "{error}"
        );

        let text = FILE.replacen(
            "https://eu-west1-blue.",
            "https://user:secret@eu-west1-blue.",
            1,
        );
        let error = error_of(&text);
        assert!(
            error.contains("the blue URL of region eu-west1 contains credentials"),
            "{error}"
        );
        assert!(!error.contains("secret"), "{error}");
    }

    #[test]
    fn shared_checks_apply_to_each_color() {
        let text = FILE.replacen("https://eu-west1-green.", "ftp://eu-west1-green.", 1);
        let error = error_of(&text);
        assert!(error.contains("the green services"), "{error}");
        assert!(
            error.contains("origin URL \"ftp://eu-west1-green"),
            "{error}"
        );
    }

    #[test]
    fn unknown_region_and_field_are_rejected() {
        let error = error_of(&FILE.replacen("us-east1", "us-east9", 1));
        assert!(error.contains("unknown region \"us-east9\""), "{error}");
        let error = error_of(&FILE.replacen("weight = 25", "weight = 25\nreplicas = 2", 1));
        assert!(error.contains("unknown field `replicas`"), "{error}");
    }
}

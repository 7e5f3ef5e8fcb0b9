//! The deploy pipeline's files: `.github/workflows/deploy.yml`, the scripts in
//! `scripts/deploy/` and `regions.toml`. No GitHub runner, Railway project or
//! Cloudflare account is reachable here. So these tests parse the workflow and
//! check that every command it runs exists and takes the flags it passes. They
//! check that `regions.toml`, `wrangler.toml` and the routing table of
//! velro-shared agree. They run the scripts with the outside CLIs printed
//! instead of run (`VELRO_DEPLOY_DRY_RUN=1`), and the health gate against a real origin.

mod common;
// Only the readers for plain files are used here, not those for the Dockerfile.
#[allow(dead_code)]
#[path = "common/deploy.rs"]
mod deploy;

use std::collections::BTreeSet;
use std::os::unix::fs::PermissionsExt;
use std::process::Command;
use std::time::Duration;

use velro_shared::routing::Region;
use yaml_rust2::{Yaml, YamlLoader};

use common::{origin_binary, EdgeWorker, Sandbox, TestApp};
use deploy::{help_subcommands, read_workspace_file, split_words, workspace_root};

const WORKFLOW: &str = ".github/workflows/deploy.yml";

/// Bound on each script and `--help` run.
const COMMAND_TIMEOUT: Duration = Duration::from_secs(60);

fn workflow() -> Yaml {
    let text = read_workspace_file(WORKFLOW);
    let mut documents = YamlLoader::load_from_str(&text)
        .unwrap_or_else(|error| panic!("{WORKFLOW} is not valid YAML: {error}"));
    assert_eq!(documents.len(), 1, "{WORKFLOW} holds one document");
    documents.remove(0)
}

fn job<'a>(workflow: &'a Yaml, name: &str) -> &'a Yaml {
    let job = &workflow["jobs"][name];
    assert!(!job.is_badvalue(), "{WORKFLOW} has no job {name}");
    job
}

fn steps(job: &Yaml) -> Vec<&Yaml> {
    job["steps"]
        .as_vec()
        .map(|steps| steps.iter().collect())
        .unwrap_or_default()
}

/// Returns the `run:` scripts of a job, in order.
fn run_scripts(job: &Yaml) -> Vec<String> {
    steps(job)
        .into_iter()
        .filter_map(|step| step["run"].as_str().map(str::to_string))
        .collect()
}

/// Splits a shell script into commands: one per line, with `\` continuations
/// joined and comment lines left out.
fn commands(script: &str) -> Vec<Vec<String>> {
    script
        .replace("\\\n", " ")
        .lines()
        .filter(|line| !line.trim_start().starts_with('#'))
        .map(split_words)
        .filter(|words| !words.is_empty())
        .collect()
}

/// Runs `velro-origin <args> --help` and returns its text.
fn help(args: &[&str]) -> String {
    let output = Command::new(origin_binary())
        .args(args)
        .arg("--help")
        .output()
        .expect("velro-origin --help runs");
    assert!(
        output.status.success(),
        "velro-origin {args:?} --help failed"
    );
    String::from_utf8_lossy(&output.stdout).into_owned()
}

/// Returns the long flags a `--help` text lists, such as `--url`.
fn help_flags(help: &str) -> BTreeSet<String> {
    help.split_whitespace()
        .filter(|word| word.starts_with("--"))
        .map(|word| {
            word.trim_end_matches(',')
                .split('=')
                .next()
                .unwrap_or(word)
                .to_string()
        })
        .collect()
}

/// Checks one velro-origin invocation: the subcommand exists and takes every flag passed.
fn check_origin_command(words: &[String], source: &str) {
    let subcommands = help_subcommands(&help(&[]));
    let Some(subcommand) = words.first() else {
        panic!("{source}: velro-origin without a subcommand");
    };
    assert!(
        subcommands.contains(subcommand),
        "{source}: velro-origin has no subcommand {subcommand}; it has {subcommands:?}"
    );
    let flags = help_flags(&help(&[subcommand]));
    for flag in words.iter().filter(|word| word.starts_with("--")) {
        assert!(
            flags.contains(flag.as_str()),
            "{source}: velro-origin {subcommand} has no flag {flag}; it has {flags:?}"
        );
    }
}

/// Checks that `path` is a file of the repository that can be executed.
fn check_repository_program(path: &str, source: &str) {
    let file = workspace_root().join(path);
    let mode = std::fs::metadata(&file)
        .unwrap_or_else(|_| panic!("{source} runs {path}, which does not exist"))
        .permissions()
        .mode();
    assert!(
        mode & 0o111 != 0,
        "{source} runs {path}, which is not executable"
    );
}

/// Checks every command of a script that names a program of this repository.
fn check_script(script: &str, source: &str) -> usize {
    let mut checked = 0;
    for words in commands(script) {
        for (index, word) in words.iter().enumerate() {
            if word.starts_with("scripts/") || word.starts_with("bench/") {
                check_repository_program(word, source);
                checked += 1;
            }
            let program = word.trim_start_matches(['"', '(']);
            if program == "velro-origin" || program == "velro_origin" {
                check_origin_command(&words[index + 1..], source);
                checked += 1;
            }
        }
    }
    checked
}

#[test]
fn workflow_runs_on_pull_requests_and_main() {
    let workflow = workflow();
    assert!(
        !workflow["on"]["pull_request"].is_badvalue(),
        "no pull_request trigger"
    );
    let branches: Vec<&str> = workflow["on"]["push"]["branches"]
        .as_vec()
        .map(|branches| branches.iter().filter_map(Yaml::as_str).collect())
        .unwrap_or_default();
    assert_eq!(branches, ["main"]);

    let staging = job(&workflow, "staging");
    assert_eq!(staging["needs"].as_str(), Some("test"));
    assert!(staging["if"]
        .as_str()
        .unwrap_or_default()
        .contains("pull_request"));
    let production = job(&workflow, "production");
    assert_eq!(production["needs"].as_str(), Some("test"));
    assert!(production["if"]
        .as_str()
        .unwrap_or_default()
        .contains("refs/heads/main"));
}

#[test]
fn workflow_tests_with_readme_command() {
    let workflow = workflow();
    let scripts = run_scripts(job(&workflow, "test"));
    let readme = read_workspace_file("README.md");
    assert!(
        readme.lines().any(|line| line.starts_with("scripts/test ")),
        "the README's quick start names scripts/test"
    );
    assert!(
        scripts.iter().any(|script| script.trim() == "scripts/test"),
        "{scripts:?}"
    );

    assert!(
        scripts
            .iter()
            .any(|script| script.trim() == "bench/run --quick"),
        "{scripts:?}"
    );
    assert!(
        read_workspace_file("bench/run").contains("--quick"),
        "bench/run takes --quick"
    );
}

#[test]
fn workflow_commands_exist() {
    let workflow = workflow();
    let jobs = workflow["jobs"].as_hash().expect("jobs is a mapping");
    let mut checked = 0;
    for (name, job) in jobs {
        let name = name.as_str().unwrap_or_default();
        for script in run_scripts(job) {
            checked += check_script(&script, &format!("{WORKFLOW} job {name}"));
        }
    }
    // Every script under scripts/deploy/ runs velro-origin through the same check.
    let scripts =
        std::fs::read_dir(workspace_root().join("scripts/deploy")).expect("scripts/deploy");
    for entry in scripts {
        let path = entry.expect("directory entry").path();
        let text = std::fs::read_to_string(&path).expect("script text");
        checked += check_script(&text, &path.display().to_string());
    }
    assert!(checked >= 12, "only {checked} commands were checked");
}

#[test]
fn production_steps_run_in_order() {
    let workflow = workflow();
    let scripts = run_scripts(job(&workflow, "production"));
    let position = |needle: &str| {
        scripts
            .iter()
            .position(|script| script.contains(needle))
            .unwrap_or_else(|| panic!("the production job does not run {needle}: {scripts:?}"))
    };
    let order = [
        position("velro-origin regions --live-color"),
        position("scripts/deploy/origins"),
        position("scripts/deploy/health-gate"),
        position("scripts/deploy/switch-edge"),
        position("scripts/deploy/watch"),
    ];
    assert!(
        order.windows(2).all(|pair| pair[0] < pair[1]),
        "order {order:?}"
    );

    let staging = run_scripts(job(&workflow, "staging"));
    let deploy = staging
        .iter()
        .position(|script| script.contains("scripts/deploy/railway-up"));
    let check = staging
        .iter()
        .position(|script| script.contains("velro-origin health-check"));
    assert!(deploy.is_some(), "{staging:?}");
    assert!(deploy < check, "{staging:?}");
}

#[test]
fn workflow_takes_secrets_from_repository() {
    let text = read_workspace_file(WORKFLOW);
    let workflow = workflow();
    let jobs = workflow["jobs"].as_hash().expect("jobs is a mapping");
    let mut secrets = 0;
    for job in jobs.values() {
        let mut envs = vec![&job["env"]];
        envs.extend(steps(job).into_iter().map(|step| &step["env"]));
        for env in envs.into_iter().filter_map(Yaml::as_hash) {
            for (name, value) in env {
                let name = name.as_str().unwrap_or_default();
                if name.ends_with("TOKEN") || name.ends_with("ACCOUNT_ID") {
                    let value = value.as_str().unwrap_or_default();
                    assert!(
                        value.starts_with("${{ secrets.") && value.ends_with("}}"),
                        "{name} must come from the repository's secrets, not {value:?}"
                    );
                    secrets += 1;
                }
            }
        }
    }
    assert!(secrets >= 4, "only {secrets} secrets found");
    assert!(
        !text.contains("JWT_SECRET"),
        "the JWT secret is set on the services, not in the workflow"
    );
    for line in text
        .lines()
        .filter(|line| line.trim_start().starts_with("- uses:"))
    {
        assert!(line.contains('@'), "{line}: pin the action to a version");
    }
}

#[derive(serde::Deserialize)]
struct RegionsFile {
    region: Vec<RegionRow>,
}

#[derive(serde::Deserialize)]
struct RegionRow {
    name: String,
    role: String,
    weight: u8,
    railway_region: String,
    blue_url: String,
    green_url: String,
}

#[test]
fn regions_agree_with_shared_and_wrangler() {
    let regions: RegionsFile =
        toml::from_str(&read_workspace_file("regions.toml")).expect("regions.toml is valid TOML");
    let names: Vec<&str> = regions.region.iter().map(|row| row.name.as_str()).collect();
    let shared: Vec<&str> = Region::ALL.iter().map(|region| region.as_str()).collect();
    assert_eq!(
        names, shared,
        "regions.toml lists the regions of velro-shared, primary first"
    );

    let wrangler: toml::Table = read_workspace_file("wrangler.toml")
        .parse()
        .expect("wrangler.toml");
    let vars = wrangler["vars"].as_table().expect("[vars]");
    for (row, region) in regions.region.iter().zip(Region::ALL) {
        assert_eq!(row.weight, region.weight(), "weight of {region}");
        assert_eq!(
            row.railway_region,
            region.default_railway_region(),
            "Railway region of {region}"
        );
        let role = if region == Region::PRIMARY {
            "primary"
        } else {
            "fallback"
        };
        assert_eq!(row.role, role, "role of {region}");
        assert_ne!(row.blue_url, row.green_url, "{region}");
        let variable = format!(
            "ORIGIN_{}",
            region.as_str().to_uppercase().replace('-', "_")
        );
        assert_eq!(
            vars[&variable].as_str(),
            Some(row.blue_url.as_str()),
            "wrangler.toml's {variable} is the blue URL of {region}"
        );
    }
    let sum: u32 = regions.region.iter().map(|row| u32::from(row.weight)).sum();
    assert_eq!(sum, 100);
}

#[test]
fn regions_command_accepts_repository_file() {
    let output = Command::new(origin_binary())
        .args(["regions", "--file"])
        .arg(workspace_root().join("regions.toml"))
        .arg("--json")
        .output()
        .expect("velro-origin regions runs");
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let regions: serde_json::Value = serde_json::from_slice(&output.stdout).expect("JSON");
    let variables: Vec<&str> = regions
        .as_array()
        .expect("an array")
        .iter()
        .filter_map(|region| region["edge_variable"].as_str())
        .collect();
    assert_eq!(
        variables,
        ["ORIGIN_US_WEST1", "ORIGIN_US_EAST1", "ORIGIN_EU_WEST1"]
    );
}

/// Runs a deploy script with the outside CLIs printed instead of run.
async fn dry_run(sandbox: &Sandbox, script: &str, args: &[&str]) -> common::CommandOutput {
    let mut command = Command::new(workspace_root().join("scripts/deploy").join(script));
    command
        .args(args)
        .env("VELRO_DEPLOY_DRY_RUN", "1")
        .env("VELRO_ORIGIN", origin_binary())
        .env("RELEASE", "3f9c2e1");
    sandbox.run(command, COMMAND_TIMEOUT).await
}

#[tokio::test]
async fn switch_edge_passes_color_urls() {
    let sandbox = Sandbox::new();
    let output = dry_run(&sandbox, "switch-edge", &["green"]).await;
    output.assert_success();
    let deploy = output
        .stdout
        .lines()
        .find(|line| line.contains("wrangler.js deploy"))
        .unwrap_or_else(|| panic!("no wrangler deploy:\n{}", output.combined()));
    for expected in [
        "--var ORIGIN_US_WEST1:https://us-west1-green.origin.velro.example",
        "--var ORIGIN_US_EAST1:https://us-east1-green.origin.velro.example",
        "--var ORIGIN_EU_WEST1:https://eu-west1-green.origin.velro.example",
    ] {
        assert!(
            deploy.contains(expected),
            "{expected} missing from {deploy}"
        );
    }
    assert!(!deploy.contains("-blue."), "{deploy}");

    let rejected = dry_run(&sandbox, "switch-edge", &["purple"]).await;
    assert_eq!(rejected.status.code(), Some(1));
    assert!(rejected
        .stderr
        .contains("expected the color blue or green, got 'purple'"));
}

#[tokio::test]
async fn origins_deploy_every_region_of_color() {
    let sandbox = Sandbox::new();
    let output = dry_run(&sandbox, "origins", &["blue", "3f9c2e1"]).await;
    output.assert_success();
    for region in Region::ALL {
        let service = format!("origin-{region}-blue");
        assert!(
            output.stdout.contains(&format!(
                "+ railway variables --service {service} --environment production --set REGION={region} --set RELEASE=3f9c2e1 --skip-deploys"
            )),
            "{}",
            output.stdout
        );
        assert!(
            output.stdout.contains(&format!(
                "+ railway up --service {service} --environment production --ci"
            )),
            "{}",
            output.stdout
        );
    }
}

#[tokio::test]
async fn scripts_stop_on_invalid_regions_file() {
    let sandbox = Sandbox::new();
    let broken = sandbox.path().join("regions.toml");
    let text = read_workspace_file("regions.toml").replacen("weight = 40", "weight = 50", 1);
    std::fs::write(&broken, text).expect("write the regions file");

    let mut command = Command::new(workspace_root().join("scripts/deploy/origins"));
    command
        .args(["green", "3f9c2e1"])
        .env("VELRO_DEPLOY_DRY_RUN", "1")
        .env("VELRO_ORIGIN", origin_binary())
        .env("REGIONS_FILE", &broken);
    let output = sandbox.run(command, COMMAND_TIMEOUT).await;
    assert_eq!(output.status.code(), Some(1), "{}", output.combined());
    assert!(
        output
            .stderr
            .contains("region weights sum to 110, expected 100"),
        "{}",
        output.combined()
    );
    assert!(!output.stdout.contains("railway"), "{}", output.stdout);
}

#[tokio::test]
async fn health_gate_checks_every_region() {
    let app = TestApp::builder().env("RELEASE", "3f9c2e1").spawn().await;
    // A regions file whose green services are all this origin.
    let mut text = read_workspace_file("regions.toml");
    for region in Region::ALL {
        text = text.replace(
            &format!("https://{region}-green.origin.velro.example"),
            &app.base_url,
        );
    }
    let file = app.sandbox().path().join("regions.toml");
    std::fs::write(&file, text).expect("write the regions file");

    let gate = |release: &str| {
        let mut command = Command::new(workspace_root().join("scripts/deploy/health-gate"));
        command
            .args(["green", release])
            .env("VELRO_ORIGIN", origin_binary())
            .env("REGIONS_FILE", &file)
            .env("HEALTH_TIMEOUT", "2s");
        command
    };
    let passed = app.sandbox().run(gate("3f9c2e1"), COMMAND_TIMEOUT).await;
    passed.assert_success();
    assert_eq!(
        passed.stdout.matches("healthy after 1 attempt(s)").count(),
        3,
        "{}",
        passed.stdout
    );

    let other = app.sandbox().run(gate("a0b1c2d"), COMMAND_TIMEOUT).await;
    assert_eq!(other.status.code(), Some(1), "{}", other.combined());
    assert!(
        other
            .stdout
            .contains("200 OK, but release 3f9c2e1 is serving"),
        "{}",
        other.stdout
    );
}

#[tokio::test]
async fn live_color_is_read_from_edge() {
    let sandbox = Sandbox::new();
    // The edge reports its origins without contacting them, so these need not run.
    let mut text = read_workspace_file("regions.toml");
    let mut edge = EdgeWorker::builder();
    for region in Region::ALL {
        let url = format!("http://{region}-green.test");
        text = text.replace(
            &format!("https://{region}-green.origin.velro.example"),
            &url,
        );
        edge = edge.origin(region.as_str(), &url);
    }
    let file = sandbox.path().join("regions.toml");
    std::fs::write(&file, &text).expect("write the regions file");
    let edge = edge.spawn().await;

    let mut command = Command::new(origin_binary());
    command
        .args(["regions", "--file"])
        .arg(&file)
        .args(["--live-color", &edge.base_url]);
    let output = sandbox.run(command, COMMAND_TIMEOUT).await;
    output.assert_success();
    assert_eq!(output.stdout.trim(), "green");

    // With the repository's file, whose URLs the edge does not use, it fails with the reason.
    let mut command = Command::new(origin_binary());
    command
        .args(["regions", "--file"])
        .arg(workspace_root().join("regions.toml"))
        .args(["--live-color", &edge.base_url]);
    let output = sandbox.run(command, COMMAND_TIMEOUT).await;
    assert_eq!(output.status.code(), Some(1), "{}", output.combined());
    assert!(
        output.stderr.contains(
            "the edge routes region us-west1 to http://us-west1-green.test/, which is neither its blue nor its green URL"
        ),
        "{}",
        output.stderr
    );
}

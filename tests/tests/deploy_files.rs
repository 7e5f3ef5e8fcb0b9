//! The deployment files, `Dockerfile` and `railway.toml`, checked against the
//! binary. No Docker engine runs on the build machines, so the image is never
//! built here. Instead these tests parse both files and compare them with each
//! other, with `velro-origin --help` and with `velro-origin env`. They also
//! start the server with the command and variables the files name.

mod common;
#[path = "common/deploy.rs"]
mod deploy;

use std::collections::{BTreeMap, BTreeSet};
use std::process::Command;
use std::time::Duration;

use reqwest::Method;

use common::{origin_binary, Sandbox, TestApp};
use deploy::{
    exec_form, healthcheck_command, help_subcommands, http_url_path, parse_copy, parse_dotenv,
    parse_railway_config, railway_top_level_keys, railway_variable_blocks, read_workspace_file,
    split_words, workspace_root, Dockerfile, RailwayConfig, Stage, VariableBlock,
};

/// Label of the `railway.toml` block whose values differ from the origin's defaults.
const PRODUCTION_BLOCK: &str = "production settings";

/// Label of the `railway.toml` block whose values repeat the origin's defaults.
const TUNING_BLOCK: &str = "tuning";

/// Variables that Railway's Postgres and Redis services or the operator provide.
/// They hold secrets, so `railway.toml`, which is committed, must not list them.
const SECRET_VARIABLES: [&str; 3] = ["DATABASE_URL", "REDIS_URL", "JWT_SECRET"];

/// Variables the test server keeps at the harness's values. The pool sizes stay
/// small because the tests run in parallel against one Postgres server and its
/// connection limit. The key prefix stays unique per test, so this test leaves no
/// keys under the production prefix in a shared Redis.
const HARNESS_VARIABLES: [&str; 3] = ["DB_POOL_SIZE", "DB_MAX_OVERFLOW", "REDIS_KEY_PREFIX"];

/// Top-level tables in Railway's config-as-code reference.
const RAILWAY_TOP_LEVEL_KEYS: [&str; 3] = ["build", "deploy", "environments"];

/// Values of `restartPolicyType` in Railway's config-as-code reference.
const RAILWAY_RESTART_POLICIES: [&str; 3] = ["ON_FAILURE", "ALWAYS", "NEVER"];

/// Directory the runtime image copies the binary into. It is on the default PATH
/// of Debian images, so the start command can name the binary without a path.
const BINARY_DIR: &str = "/usr/local/bin";

/// Bound on `velro-origin --help` and `velro-origin env`.
const COMMAND_TIMEOUT: Duration = Duration::from_secs(30);

fn railway_text() -> String {
    read_workspace_file("railway.toml")
}

fn railway() -> RailwayConfig {
    parse_railway_config(&railway_text())
}

fn dockerfile() -> Dockerfile {
    let path = railway()
        .build
        .dockerfile_path
        .unwrap_or_else(|| "Dockerfile".to_string());
    Dockerfile::parse(&read_workspace_file(&path))
}

/// Splits railway.toml's start command into words: the program, then its arguments.
fn start_command() -> Vec<String> {
    let words = split_words(&railway().deploy.start_command);
    assert!(!words.is_empty(), "railway.toml's startCommand is empty");
    words
}

/// Returns the variable block whose label starts with `label`.
fn variable_block<'a>(blocks: &'a [VariableBlock], label: &str) -> &'a VariableBlock {
    blocks
        .iter()
        .find(|block| block.label.starts_with(label))
        .unwrap_or_else(|| panic!("railway.toml has no `# BEGIN {label}` variable block"))
}

/// Runs `velro-origin env` with an empty environment and returns each variable
/// the origin reads with its default ("" when it has none).
async fn origin_variables() -> BTreeMap<String, String> {
    let sandbox = Sandbox::new();
    let mut command = Command::new(origin_binary());
    // An empty environment, so the output shows defaults rather than this shell's values.
    command.arg("env").env_clear().current_dir(sandbox.path());
    let output = sandbox.run(command, COMMAND_TIMEOUT).await;
    assert!(
        output.status.success(),
        "`velro-origin env` failed with {}, so railway.toml's variables cannot be checked \
         against the ones the origin reads\n{}",
        output.status,
        output.combined()
    );
    let variables = parse_dotenv(&output.stdout);
    assert!(
        !variables.is_empty(),
        "`velro-origin env` printed no NAME=value line\n{}",
        output.combined()
    );
    variables
}

fn builder_stage(dockerfile: &Dockerfile) -> &Stage {
    dockerfile
        .stages
        .iter()
        .find(|stage| {
            stage
                .all("RUN")
                .any(|run| run.arguments.contains("cargo build"))
        })
        .expect("no stage of the Dockerfile runs `cargo build`")
}

#[test]
fn railway_builds_from_the_dockerfile() {
    let build = railway().build;

    assert_eq!(
        build.builder, "DOCKERFILE",
        "railway.toml should build with the Dockerfile, not {}",
        build.builder
    );
    let path = build
        .dockerfile_path
        .expect("railway.toml should name the Dockerfile in build.dockerfilePath");
    assert!(
        workspace_root().join(&path).is_file(),
        "railway.toml's dockerfilePath {path} does not exist at the workspace root"
    );
}

#[test]
fn railway_uses_only_documented_tables() {
    for key in railway_top_level_keys(&railway_text()) {
        assert!(
            RAILWAY_TOP_LEVEL_KEYS.contains(&key.as_str()),
            "railway.toml has a top-level `{key}` table, which Railway's config-as-code \
             schema does not define; it defines only {RAILWAY_TOP_LEVEL_KEYS:?}"
        );
    }
}

#[test]
fn railway_restart_policy_is_documented() {
    let deploy = railway().deploy;

    assert!(
        RAILWAY_RESTART_POLICIES.contains(&deploy.restart_policy_type.as_str()),
        "railway.toml's restartPolicyType {} is not one of {RAILWAY_RESTART_POLICIES:?}",
        deploy.restart_policy_type
    );
    assert!(
        deploy.healthcheck_timeout > 0,
        "railway.toml's healthcheckTimeout should be a positive number of seconds"
    );
}

#[test]
fn start_command_equals_dockerfile_cmd() {
    let dockerfile = dockerfile();
    let cmd = dockerfile
        .runtime_stage()
        .last("CMD")
        .expect("the Dockerfile's runtime stage has no CMD");

    assert_eq!(
        exec_form(cmd),
        start_command(),
        "the Dockerfile's CMD (line {}) and railway.toml's startCommand differ, so \
         `docker run` and Railway would start different commands",
        cmd.line
    );
}

#[test]
fn start_command_runs_the_copied_binary() {
    let program = start_command()[0].clone();
    let built_name = origin_binary()
        .file_name()
        .expect("the binary path has a file name")
        .to_string_lossy()
        .into_owned();
    assert_eq!(
        program, built_name,
        "railway.toml's startCommand runs {program}, but the workspace builds {built_name}"
    );

    let dockerfile = dockerfile();
    let runtime = dockerfile.runtime_stage();
    let copied: Vec<String> = runtime
        .all("COPY")
        .map(parse_copy)
        .filter(|copy| copy.from_stage.is_some())
        .flat_map(|copy| {
            let destination = copy.destination.clone();
            copy.sources.into_iter().map(move |source| {
                if destination.ends_with('/') {
                    let file_name = source.rsplit('/').next().unwrap_or(&source).to_string();
                    format!("{destination}{file_name}")
                } else {
                    destination.clone()
                }
            })
        })
        .collect();
    let expected = format!("{BINARY_DIR}/{program}");
    assert!(
        copied.contains(&expected),
        "the Dockerfile's runtime stage copies {copied:?} from other stages, but not {expected}, \
         which the start command runs"
    );
}

#[tokio::test]
async fn start_subcommand_is_in_help() {
    let words = start_command();
    assert_eq!(
        words.len(),
        2,
        "railway.toml's startCommand should be `velro-origin <subcommand>`, not {words:?}"
    );

    let help = Sandbox::new().run_ok(&["--help"]).await;
    let subcommands = help_subcommands(&help.stdout);

    assert!(
        subcommands.contains(&words[1]),
        "railway.toml's startCommand runs the subcommand {}, which `velro-origin --help` \
         does not list; it lists {subcommands:?}",
        words[1]
    );
}

#[tokio::test]
async fn health_checks_pass_with_railway_settings() {
    let words = start_command();
    assert_eq!(
        words[1..],
        ["serve"],
        "the test harness starts `velro-origin serve`, so it cannot start railway.toml's \
         startCommand {words:?}"
    );

    let mut builder = TestApp::builder();
    for block in railway_variable_blocks(&railway_text()) {
        for (name, value) in block.variables {
            if !HARNESS_VARIABLES.contains(&name.as_str()) {
                builder = builder.env(&name, &value);
            }
        }
    }
    let app = builder.spawn().await;

    let railway_path = railway().deploy.healthcheck_path;
    let response = app
        .request(Method::GET, &railway_path)
        .send()
        .await
        .unwrap();
    assert_eq!(
        response.status().as_u16(),
        200,
        "railway.toml's healthcheckPath {railway_path} did not return 200 once the server was \
         ready: {}",
        response.text().await.unwrap_or_default()
    );

    let dockerfile = dockerfile();
    let healthcheck = dockerfile
        .runtime_stage()
        .last("HEALTHCHECK")
        .expect("the Dockerfile's runtime stage has no HEALTHCHECK");
    let command = healthcheck_command(healthcheck);
    let docker_path = http_url_path(&command).unwrap_or_else(|| {
        panic!("the Dockerfile's HEALTHCHECK command has no http:// URL: {command}")
    });
    let response = app.request(Method::GET, &docker_path).send().await.unwrap();
    assert_eq!(
        response.status().as_u16(),
        200,
        "the Dockerfile's HEALTHCHECK path {docker_path} did not return 200: {}",
        response.text().await.unwrap_or_default()
    );
}

#[tokio::test]
async fn railway_variables_are_read_by_the_origin() {
    let origin = origin_variables().await;

    for block in railway_variable_blocks(&railway_text()) {
        for (name, _) in &block.variables {
            assert!(
                origin.contains_key(name),
                "railway.toml lists {name}, which `velro-origin env` does not list, so the \
                 origin ignores it"
            );
        }
    }
}

#[tokio::test]
async fn railway_values_agree_with_origin_defaults() {
    let origin = origin_variables().await;
    let blocks = railway_variable_blocks(&railway_text());

    for (name, value) in &variable_block(&blocks, TUNING_BLOCK).variables {
        let Some(default) = origin.get(name).filter(|default| !default.is_empty()) else {
            continue;
        };
        assert_eq!(
            value, default,
            "railway.toml lists {name}={value} under `{TUNING_BLOCK}`, but the origin's \
             default is {default}; change the value, or move it to `{PRODUCTION_BLOCK}`"
        );
    }
    for (name, value) in &variable_block(&blocks, PRODUCTION_BLOCK).variables {
        assert_ne!(
            origin.get(name),
            Some(value),
            "railway.toml lists {name}={value} under `{PRODUCTION_BLOCK}`, but that is the \
             origin's default; move it to `{TUNING_BLOCK}`"
        );
    }
}

#[test]
fn railway_lists_no_secrets() {
    for block in railway_variable_blocks(&railway_text()) {
        for (name, _) in &block.variables {
            assert!(
                !SECRET_VARIABLES.contains(&name.as_str()),
                "railway.toml lists {name}, which holds a secret; set it on the Railway \
                 service instead"
            );
        }
    }
}

#[test]
fn railway_lists_each_variable_once() {
    let mut seen = BTreeSet::new();
    for block in railway_variable_blocks(&railway_text()) {
        for (name, _) in &block.variables {
            assert!(
                seen.insert(name.clone()),
                "railway.toml lists {name} more than once"
            );
        }
    }
}

#[test]
fn dockerfile_has_slim_runtime_stage() {
    let dockerfile = dockerfile();

    assert!(
        dockerfile.stages.len() >= 2,
        "the Dockerfile has {} stage(s); it needs a build stage and a runtime stage, so the \
         image ships without the Rust toolchain",
        dockerfile.stages.len()
    );
    let runtime = dockerfile.runtime_stage();
    assert!(
        runtime.base_image.contains("slim"),
        "the Dockerfile's runtime stage is based on {}, which is not a slim image",
        runtime.base_image
    );
}

#[test]
fn dockerfile_caches_dependencies_before_source() {
    let dockerfile = dockerfile();
    let builder = builder_stage(&dockerfile);

    let cook_line = builder
        .all("RUN")
        .find(|run| run.arguments.contains("cargo chef cook"))
        .map(|run| run.line)
        .expect("the Dockerfile's build stage does not run `cargo chef cook`");
    let source_copy_line = builder
        .all("COPY")
        .find(|copy| parse_copy(copy).sources == ["."])
        .map(|copy| copy.line)
        .expect("the Dockerfile's build stage does not copy the source with `COPY . .`");
    assert!(
        cook_line < source_copy_line,
        "the Dockerfile copies the source (line {source_copy_line}) before it compiles the \
         dependencies (line {cook_line}), so every source change rebuilds them"
    );
}

#[test]
fn dockerfile_runs_as_non_root() {
    let dockerfile = dockerfile();
    let user = dockerfile
        .runtime_stage()
        .last("USER")
        .expect("the Dockerfile's runtime stage sets no USER, so the server runs as root");

    let name = user.arguments.split(':').next().unwrap_or_default();
    assert!(
        name != "root" && name != "0",
        "the Dockerfile's runtime stage runs as {} (line {})",
        user.arguments,
        user.line
    );
}

#[test]
fn dockerfile_listens_on_all_interfaces() {
    let dockerfile = dockerfile();
    let runtime = dockerfile.runtime_stage();
    let env = runtime.env();

    assert_eq!(
        env.get("HOST").map(String::as_str),
        Some("0.0.0.0"),
        "the Dockerfile should set HOST=0.0.0.0; the origin's default 127.0.0.1 accepts no \
         connection from outside the container"
    );
    let port = env
        .get("PORT")
        .expect("the Dockerfile's runtime stage does not set PORT");
    let exposed: Vec<String> = runtime
        .all("EXPOSE")
        .flat_map(|expose| split_words(&expose.arguments))
        .collect();
    assert!(
        exposed.contains(port) || exposed.contains(&format!("{port}/tcp")),
        "the Dockerfile sets PORT={port} but exposes {exposed:?}"
    );
}

#[test]
fn dockerfile_health_check_uses_http() {
    let dockerfile = dockerfile();
    let healthcheck = dockerfile
        .runtime_stage()
        .last("HEALTHCHECK")
        .expect("the Dockerfile's runtime stage has no HEALTHCHECK");

    let command = healthcheck_command(healthcheck);
    assert!(
        http_url_path(&command).is_some(),
        "the Dockerfile's HEALTHCHECK (line {}) does not request an http:// URL: {command}",
        healthcheck.line
    );
}

// The readers in common/deploy.rs, on small inputs.

#[test]
fn dockerfile_reader_joins_continuation_lines() {
    let text =
        "FROM debian AS base\nRUN apt-get update \\\n    # a comment\n    && true\nUSER 1:1\n";

    let dockerfile = Dockerfile::parse(text);

    let stage = dockerfile.runtime_stage();
    assert_eq!(stage.name.as_deref(), Some("base"));
    let run = stage.last("RUN").expect("the sample has a RUN instruction");
    assert_eq!(run.arguments, "apt-get update && true");
    assert_eq!(run.line, 2);
    assert_eq!(stage.last("USER").map(|user| user.line), Some(5));
}

#[test]
fn dockerfile_reader_reads_both_env_forms() {
    let text = "FROM debian\nENV A=1 B=\"two words\"\nENV C three words\n";

    let env = Dockerfile::parse(text).runtime_stage().env();

    assert_eq!(env.get("A").map(String::as_str), Some("1"));
    assert_eq!(env.get("B").map(String::as_str), Some("two words"));
    assert_eq!(env.get("C").map(String::as_str), Some("three words"));
}

#[test]
fn url_path_reader_finds_the_path() {
    let command = "curl -fsS \"http://127.0.0.1:${PORT}/health\" || exit 1";

    assert_eq!(http_url_path(command).as_deref(), Some("/health"));
    assert_eq!(http_url_path("curl http://localhost:8000"), None);
}

#[test]
#[should_panic(expected = "is not `# NAME=value`")]
fn variable_block_reader_rejects_stray_lines() {
    railway_variable_blocks("# BEGIN tuning\n# A=1\n# a sentence\n# END tuning\n");
}

#[test]
fn dotenv_reader_skips_comments() {
    let variables = parse_dotenv("# Port to listen on.\nPORT=8000\n\n# Optional.\nREDIS_URL=\n");

    assert_eq!(variables.get("PORT").map(String::as_str), Some("8000"));
    assert_eq!(variables.get("REDIS_URL").map(String::as_str), Some(""));
    assert_eq!(variables.len(), 2);
}

/// Variables the edge worker reads from `[vars]`; `JWT_SECRET` is a secret instead.
const EDGE_VARIABLES: [&str; 6] = [
    "ENVIRONMENT",
    "ORIGIN_US_WEST1",
    "ORIGIN_US_EAST1",
    "ORIGIN_EU_WEST1",
    "ALLOWED_ORIGINS",
    "ORIGIN_TIMEOUT_MS",
];

fn wrangler() -> toml::Table {
    read_workspace_file("wrangler.toml")
        .parse()
        .expect("wrangler.toml should be valid TOML")
}

fn table<'a>(value: &'a toml::Table, path: &[&str]) -> &'a toml::Table {
    let mut current = value;
    for key in path {
        current = current
            .get(*key)
            .and_then(toml::Value::as_table)
            .unwrap_or_else(|| panic!("wrangler.toml has no table {}", path.join(".")));
    }
    current
}

fn var_names(vars: &toml::Table) -> BTreeSet<String> {
    vars.keys().cloned().collect()
}

#[test]
fn wrangler_builds_and_serves_the_bundle() {
    let wrangler = wrangler();
    assert_eq!(wrangler["name"].as_str(), Some("velro-edge"));
    assert_eq!(wrangler["main"].as_str(), Some("edge/build/index.js"));

    let command = table(&wrangler, &["build"])["command"].as_str().unwrap();
    assert_eq!(command, "scripts/build-edge");
    let script = workspace_root().join(command);
    let mode = std::fs::metadata(&script)
        .unwrap_or_else(|error| panic!("{} is missing: {error}", script.display()))
        .permissions();
    use std::os::unix::fs::PermissionsExt;
    assert_ne!(mode.mode() & 0o111, 0, "{command} must be executable");
}

#[test]
fn wrangler_compatibility_date_is_within_workerd() {
    // workerd's npm version is 1.YYYYMMDD.N, where YYYYMMDD is its build date, and
    // workerd rejects a compatibility date after it.
    let lock: serde_json::Value =
        serde_json::from_str(&read_workspace_file("edge/package-lock.json")).unwrap();
    let workerd = lock["packages"]["node_modules/workerd"]["version"]
        .as_str()
        .expect("edge/package-lock.json pins workerd");
    let build_date = workerd.split('.').nth(1).unwrap();
    let build_date = format!(
        "{}-{}-{}",
        &build_date[0..4],
        &build_date[4..6],
        &build_date[6..8]
    );

    let wrangler = wrangler();
    let compatibility_date = wrangler["compatibility_date"].as_str().unwrap();
    assert!(
        compatibility_date <= build_date.as_str(),
        "compatibility_date {compatibility_date} is after workerd's build date {build_date}"
    );
}

#[test]
fn wrangler_vars_match_the_edge_config() {
    let wrangler = wrangler();
    let expected: BTreeSet<String> = EDGE_VARIABLES.iter().map(|name| name.to_string()).collect();

    let production = table(&wrangler, &["vars"]);
    assert_eq!(var_names(production), expected);
    assert_eq!(production["ENVIRONMENT"].as_str(), Some("production"));
    for region in velro_shared::routing::Region::ALL {
        let name = format!(
            "ORIGIN_{}",
            region.as_str().replace('-', "_").to_uppercase()
        );
        let url = production[&name].as_str().unwrap();
        assert!(
            url.starts_with("https://"),
            "{name} = {url} must use https in production"
        );
    }

    let development = table(&wrangler, &["env", "dev", "vars"]);
    assert_eq!(var_names(development), expected);
    assert_eq!(development["ENVIRONMENT"].as_str(), Some("development"));
}

#[test]
fn wrangler_lists_no_secrets() {
    let text = read_workspace_file("wrangler.toml");
    let wrangler = wrangler();
    for vars in [
        table(&wrangler, &["vars"]),
        table(&wrangler, &["env", "dev", "vars"]),
    ] {
        assert!(
            !vars.contains_key("JWT_SECRET"),
            "JWT_SECRET must be a secret, not a var"
        );
    }
    assert!(text.contains("wrangler secret put JWT_SECRET"));
}

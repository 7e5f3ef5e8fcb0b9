use std::process::ExitCode;
use std::time::Instant;

use anyhow::Context;
use clap::Parser as _;
use velro_origin::app::{shutdown_signal, Application};
use velro_origin::cli::{Cli, Command};
use velro_origin::config::{Config, LogFormat, PoolSettings};
use velro_origin::telemetry::{self, LogTarget};
use velro_origin::{db, deploy, loadtest, seed};

fn main() -> ExitCode {
    let started = Instant::now();
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(error) => return usage_error(&error),
    };
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(error) => {
            eprintln!("error: starting the async runtime failed: {error}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(run(cli, started)) {
        Ok(code) => code,
        Err(error) => {
            tracing::error!(error = format!("{error:#}"), "exiting after an error");
            eprintln!("error: {error:#}");
            ExitCode::FAILURE
        }
    }
}

/// Prints clap's message and exits 0 for `--help` and `--version`, 1 for a
/// usage error. Clap would exit 2, which `watch-deploy` keeps for a rollback.
fn usage_error(error: &clap::Error) -> ExitCode {
    // If printing fails, the output is closed and the message cannot be shown anyway.
    let _ = error.print();
    if error.use_stderr() {
        ExitCode::FAILURE
    } else {
        ExitCode::SUCCESS
    }
}

async fn run(cli: Cli, started: Instant) -> anyhow::Result<ExitCode> {
    match cli.command.unwrap_or(Command::Serve) {
        Command::Serve => {
            let config = Config::from_env()?;
            telemetry::init(&config.log_level, config.log_format, LogTarget::Stdout);
            let application = Application::build(config, started).await?;
            application.run_until_stopped(shutdown_signal()).await?;
        }
        Command::Migrate => {
            let config = Config::from_env()?;
            telemetry::init(&config.log_level, config.log_format, LogTarget::Stderr);
            let db = db::connect(&config.database_url, &PoolSettings::SINGLE, None).await?;
            db::migrate(&db).await?;
            db.close().await;
            println!("migrations applied");
        }
        Command::Seed(args) => {
            let config = Config::from_env()?;
            telemetry::init(&config.log_level, config.log_format, LogTarget::Stderr);
            seed::run(&config, &args).await.context("seeding failed")?;
        }
        Command::Env => print!("{}", velro_origin::config::variables::render_dotenv()),
        Command::HealthCheck(args) => return deploy::health_check::run(args).await,
        Command::WatchDeploy(args) => return deploy::watch::run(args).await,
        Command::Regions(args) => return deploy::regions::run(&args).await,
        Command::Loadtest(args) => {
            // The load test talks to a server over HTTP and needs none of its configuration.
            let level = std::env::var("LOG_LEVEL").unwrap_or_else(|_| "warn".to_string());
            telemetry::init(&level, LogFormat::Pretty, LogTarget::Stderr);
            return loadtest::run(args).await;
        }
    }
    Ok(ExitCode::SUCCESS)
}

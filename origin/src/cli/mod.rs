//! The command line: `serve` (the default), `migrate`, `seed`, `env`,
//! `loadtest`, and the deploy job's `health-check`, `watch-deploy` and `regions`.
//!
//! A usage error exits 1, not clap's usual 2, because `watch-deploy` exits 2
//! only after a rollback decision (see `main.rs`).

pub mod values;

use clap::{Parser, Subcommand};

use crate::deploy::health_check::HealthCheckArgs;
use crate::deploy::regions::RegionsArgs;
use crate::deploy::watch::WatchDeployArgs;
use crate::loadtest::LoadtestArgs;
use crate::seed::SeedArgs;

/// The Velro origin server and its operations commands. Configuration comes
/// from the environment (HOST, PORT, DATABASE_URL, JWT_SECRET, ...); see the README.
#[derive(Debug, Parser)]
#[command(name = "velro-origin", version)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Option<Command>,
}

/// Subcommands of `velro-origin`.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Serve the API (the default when no command is given).
    Serve,
    /// Apply the database migrations to DATABASE_URL and exit.
    Migrate,
    /// Create demo users, projects and generations in DATABASE_URL; safe to run twice.
    Seed(SeedArgs),
    /// Print every environment variable the server reads, with its default, as a dotenv file.
    Env,
    /// Run the login -> profile -> list -> detail workflow against a running server and report latency.
    Loadtest(LoadtestArgs),
    /// Poll URL/health/ready until it reports ready (and --release, when given);
    /// exit 0 when it does, 1 after the timeout.
    HealthCheck(HealthCheckArgs),
    /// Read URL/performance every interval and roll the deployment back when it misses
    /// the targets. Exit 0 when healthy at the end of the window, 2 after a rollback decision.
    WatchDeploy(WatchDeployArgs),
    /// Check regions.toml against the shared region table and print it, whole or for one color.
    Regions(RegionsArgs),
}

//! The command line: `serve` (the default), `migrate`, `seed`, `env` and `loadtest`.

use clap::{Parser, Subcommand};

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
}

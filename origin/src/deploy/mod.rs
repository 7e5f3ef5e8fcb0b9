//! The deploy job's commands.
//!
//! - [`health_check`]: `health-check` polls `/health/ready` until a new
//!   deployment is ready to take traffic, or gives up after a timeout.
//! - [`watch`]: `watch-deploy` reads `/performance` of a live deployment at a
//!   fixed interval, applies the rollback rules of [`velro_shared::perf`], and
//!   runs a rollback command when they call for one.
//! - [`regions`]: `regions` reads `regions.toml`, checks it against the region
//!   table of [`velro_shared::routing`], and prints it for the deploy scripts.
//! - [`live_color`]: `regions --live-color` reads which color the edge routes to.
//! - [`probe`]: the HTTP client and error wording the others share.
//!
//! The exit codes are part of the interface: 0 healthy, 1 unhealthy or an error,
//! and 2 (from `watch-deploy` only) a rollback decision.

pub mod health_check;
mod live_color;
mod probe;
pub mod regions;
pub mod watch;

use std::time::Duration;

/// Exit status of `watch-deploy` after a rollback decision.
pub const ROLLBACK_EXIT_CODE: u8 = 2;

/// Maximum `--timeout` of `health-check` and `--window` of `watch-deploy`. A
/// day is far beyond any deploy, and the bound keeps every deadline representable.
pub const MAX_DURATION: Duration = Duration::from_secs(24 * 3600);

//! Code shared by the Velro edge worker and the origin server.
//!
//! Nothing here performs I/O or reads the clock, so the crate compiles natively
//! for the origin and to `wasm32-unknown-unknown` for the edge. Callers pass the
//! current time in where a function needs it.
//!
//! - [`api`]: request and response bodies, and the error envelope.
//! - [`cors`]: the CORS allow-list and preflight response of both tiers.
//! - [`error`]: the API's error codes and their HTTP statuses.
//! - [`policy`]: which routes cache, for whom and how long, cache keys, and what a write invalidates.
//! - [`freshness`]: when a stored response is fresh, stale but servable, or expired.
//! - [`decision`]: the edge's per-request decisions as one record, for test vectors.
//! - [`routing`]: regions, the nearest region to a client, and failover order.
//! - [`outlier`]: which regional origins to skip for a while after they fail.
//! - [`token`]: HS256 access tokens, signed by the origin and verified by both tiers.
//! - [`perf`]: performance targets and the rollback decision rules.

pub mod api;
pub mod cors;
pub mod decision;
pub mod error;
pub mod freshness;
pub mod outlier;
pub mod perf;
pub mod policy;
pub mod routing;
pub mod token;

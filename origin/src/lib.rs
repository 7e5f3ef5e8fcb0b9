//! The Velro origin: the API server that serves what the edge cannot serve from
//! its cache, and the operations commands that go with it.
//!
//! A request passes through [`http`] (router, middleware, one module per
//! resource), reads go through the [`cache`] (L1 in process, then L2 in Redis)
//! before the [`db`] (sqlx, SQLite by default or Postgres), and writes invalidate
//! the cache entries the shared policy names, in every instance. A [`breaker`]
//! guards each of Redis and the database. [`app`] builds and runs the server;
//! [`warmup`] gets it ready before it takes traffic; [`generation`] runs the
//! queued generations in the background; [`monitor`] records every request for
//! `/performance` and `/metrics`. `seed` and `loadtest` are the operations
//! commands, and [`deploy`] contains the deploy job's `health-check`,
//! `watch-deploy` and `regions`.

pub mod app;
pub mod auth;
pub mod breaker;
pub mod cache;
pub mod cli;
pub mod config;
pub mod db;
pub mod deploy;
pub mod error;
pub mod generation;
pub mod http;
pub mod loadtest;
pub mod monitor;
pub mod probes;
pub mod seed;
pub mod telemetry;
pub mod warmup;

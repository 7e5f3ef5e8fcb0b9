//! Harness for the integration tests: starts the real `velro-origin` binary on a
//! free port, with a fresh SQLite database in a temporary directory of its own,
//! and drives it over HTTP. With `VELRO_TEST_POSTGRES_URL` set (a server URL such
//! as `postgres://postgres@127.0.0.1:5432`), each test gets a fresh database on
//! that Postgres server instead, created and dropped with `psql`. With
//! `VELRO_TEST_REDIS_URL` set (such as `redis://127.0.0.1:6379`), every server
//! uses that Redis as its L2 cache, under a key prefix of its own sandbox.
//!
//! The binary is not a dependency of this crate, so `cargo test` does not build
//! it. Run `cargo build -p velro-origin` first (`scripts/test` does), or point
//! `VELRO_ORIGIN_BIN` at a binary built elsewhere.
//!
//! - [`TestApp`]: one running server, stopped when dropped.
//! - [`Sandbox`]: the temporary directory, and one-shot commands such as `migrate`.
//! - [`requests`]: one typed method per API request.
//! - [`checks`]: assertions on responses, such as [`assert_error`].
//! - [`servers`]: throwaway Redis servers, TCP proxies and database cuts for fault tests.
//! - [`edge`]: the edge worker in workerd, in front of one or more origins.
//! - [`browser`]: headless Chromium driven over WebDriver.

// Every test binary includes this module with `mod common;` and uses a different
// subset of it, so each binary would otherwise warn about the parts it leaves out.
#![allow(dead_code, unused_imports)]

mod browser;
mod checks;
mod edge;
mod requests;
mod servers;

use std::fs::File;
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

pub use browser::{Browser, SKIP_BROWSER_TESTS_ENV};
pub use checks::{
    assert_error, cache_control, cache_status_params, header, header_list, max_age, parse_json,
};
pub use edge::{EdgeWorker, EdgeWorkerBuilder, ALLOWED_ORIGIN};
pub use requests::{unique_email, TestUser};
pub use servers::{cut_database, local_postgres_port, restore_database, TcpProxy, ThrowawayRedis};

/// Secret the test servers sign access tokens with: 48 bytes, above the 32-byte minimum.
pub const JWT_SECRET: &str = "velro-integration-tests-secret-not-for-real-use!";

/// Id of the model the origin ships with.
pub const MODEL: &str = "velro-svg-sketch";

/// Password of every user that `velro-origin seed` creates.
pub const DEMO_PASSWORD: &str = "velro-demo-password";

/// How long a server may take to report ready before the test fails.
const READY_TIMEOUT: Duration = Duration::from_secs(30);

/// Pause between polls of a server's state.
pub const POLL_INTERVAL: Duration = Duration::from_millis(20);

/// Bound on every HTTP request, so a hung server fails the test instead of stalling it.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(30);

/// Variables passed through from the test's own environment. Everything else is
/// cleared, so a stray `DATABASE_URL` or `PORT` in the shell cannot leak into a test.
const INHERITED_ENV: [&str; 4] = ["PATH", "TMPDIR", "RUST_BACKTRACE", "LLVM_PROFILE_FILE"];

/// Variable naming a Postgres server to run the tests against instead of SQLite.
pub const POSTGRES_URL_ENV: &str = "VELRO_TEST_POSTGRES_URL";

/// Variable naming a Redis server that every test server uses as its L2 cache.
pub const REDIS_URL_ENV: &str = "VELRO_TEST_REDIS_URL";

/// Returns the path of the `velro-origin` binary under test.
///
/// `VELRO_ORIGIN_BIN` wins when set. Otherwise the binary is expected in the same
/// target directory and profile as this test, which cargo runs from
/// `target/<profile>/deps/`.
pub fn origin_binary() -> PathBuf {
    if let Some(path) = std::env::var_os("VELRO_ORIGIN_BIN") {
        let path = PathBuf::from(path);
        assert!(
            path.is_file(),
            "VELRO_ORIGIN_BIN points at {}, which is not a file",
            path.display()
        );
        return path;
    }

    let test_exe =
        std::env::current_exe().expect("the path of the running test binary should be readable");
    let profile_dir = test_exe
        .parent()
        .and_then(Path::parent)
        .expect("the test binary should live in target/<profile>/deps/");
    let path = profile_dir.join(format!("velro-origin{}", std::env::consts::EXE_SUFFIX));
    assert!(
        path.is_file(),
        "velro-origin binary not found at {}; run `cargo build -p velro-origin` first \
         (scripts/test does), or set VELRO_ORIGIN_BIN",
        path.display()
    );
    path
}

/// Ports the harness picks from: below Linux's default ephemeral range
/// (32768-60999), which the kernel draws from for `bind(0)` and outgoing
/// connections, so workerd, redis-server and clients cannot take them by chance.
const TEST_PORTS: std::ops::Range<u16> = 20_000..32_768;

/// Returns a port on 127.0.0.1 that was free a moment ago.
///
/// The port is a random one of [`TEST_PORTS`], checked by binding it. The
/// listener is dropped before the server binds the port, so another test could
/// still take it in between, but with thousands of ports to draw from that is
/// rare. A lost race shows up as the server failing to start, with its log in
/// the panic message.
fn free_port() -> u16 {
    let span = u128::from(TEST_PORTS.end - TEST_PORTS.start);
    for _ in 0..100 {
        let offset = uuid::Uuid::new_v4().as_u128() % span;
        // `offset` is below `span`, which fits in a u16.
        let port = TEST_PORTS.start + u16::try_from(offset).unwrap_or(0);
        if TcpListener::bind(("127.0.0.1", port)).is_ok() {
            return port;
        }
    }
    let listener = TcpListener::bind("127.0.0.1:0")
        .expect("binding an ephemeral port on 127.0.0.1 should succeed");
    listener
        .local_addr()
        .expect("a bound listener has a local address")
        .port()
}

/// Exit status and captured output of a command that ran to completion.
#[derive(Debug)]
pub struct CommandOutput {
    pub status: ExitStatus,
    pub stdout: String,
    pub stderr: String,
}

impl CommandOutput {
    /// Stdout and stderr together, for searching and for failure messages.
    pub fn combined(&self) -> String {
        format!(
            "--- stdout ---\n{}\n--- stderr ---\n{}",
            self.stdout, self.stderr
        )
    }

    /// Panics with the output unless the command exited with status 0.
    pub fn assert_success(&self) {
        assert!(
            self.status.success(),
            "command failed with {}\n{}",
            self.status,
            self.combined()
        );
    }
}

/// A temporary directory for one test, containing its database and logs; removed on drop.
pub struct Sandbox {
    path: PathBuf,
    /// The Postgres database of this sandbox, when the tests run against Postgres.
    postgres: Option<PostgresDatabase>,
    /// The Redis server from [`REDIS_URL_ENV`], when set.
    redis_url: Option<String>,
    /// `REDIS_KEY_PREFIX` of this sandbox's servers. It is unique per sandbox, so
    /// tests sharing one Redis never read each other's keys or invalidations.
    redis_key_prefix: String,
}

/// A database of its own on the shared Postgres server, dropped with the sandbox.
struct PostgresDatabase {
    server_url: String,
    name: String,
}

impl PostgresDatabase {
    fn create(server_url: &str) -> PostgresDatabase {
        let server_url = server_url.trim_end_matches('/').to_string();
        let name = format!("velro_test_{}", uuid::Uuid::new_v4().simple());
        run_psql(&server_url, &format!("CREATE DATABASE {name}")).unwrap_or_else(|error| {
            panic!("creating test database {name} on {server_url} failed: {error}")
        });
        PostgresDatabase { server_url, name }
    }

    fn url(&self) -> String {
        format!("{}/{}", self.server_url, self.name)
    }
}

impl Drop for PostgresDatabase {
    fn drop(&mut self) {
        // FORCE ends the connections of a server that is still shutting down.
        let drop_database = format!("DROP DATABASE IF EXISTS {} WITH (FORCE)", self.name);
        if let Err(error) = run_psql(&self.server_url, &drop_database) {
            eprintln!("dropping test database {} failed: {error}", self.name);
        }
    }
}

/// Runs one SQL statement with `psql` against the server's `postgres` database.
fn run_psql(server_url: &str, sql: &str) -> Result<(), String> {
    let output = Command::new("psql")
        .arg(format!("{server_url}/postgres"))
        .args(["-v", "ON_ERROR_STOP=1", "-q", "-c", sql])
        .output()
        .map_err(|error| format!("running psql failed: {error}; install the PostgreSQL client"))?;
    if output.status.success() {
        Ok(())
    } else {
        Err(String::from_utf8_lossy(&output.stderr).trim().to_string())
    }
}

impl Sandbox {
    /// Creates an empty directory under the system temporary directory.
    pub fn new() -> Sandbox {
        let id = uuid::Uuid::new_v4().simple();
        let path = std::env::temp_dir().join(format!("velro-test-{id}"));
        std::fs::create_dir_all(&path).unwrap_or_else(|error| {
            panic!(
                "failed to create test directory {}: {error}",
                path.display()
            )
        });
        let postgres = std::env::var(POSTGRES_URL_ENV)
            .ok()
            .filter(|url| !url.is_empty())
            .map(|url| PostgresDatabase::create(&url));
        let redis_url = std::env::var(REDIS_URL_ENV)
            .ok()
            .filter(|url| !url.is_empty());
        Sandbox {
            path,
            postgres,
            redis_url,
            redis_key_prefix: format!("velro-test-{id}"),
        }
    }

    /// Whether this sandbox's database is on Postgres rather than a SQLite file.
    pub fn is_postgres(&self) -> bool {
        self.postgres.is_some()
    }

    /// URL of the Postgres server holding this sandbox's database, without a database name.
    pub fn postgres_server_url(&self) -> Option<&str> {
        self.postgres
            .as_ref()
            .map(|database| database.server_url.as_str())
    }

    /// Name of this sandbox's Postgres database, such as `velro_test_<uuid>`.
    pub fn postgres_database_name(&self) -> Option<&str> {
        self.postgres
            .as_ref()
            .map(|database| database.name.as_str())
    }

    /// Returns the Postgres server URL and database name of this sandbox, or prints
    /// that `test` is skipped and returns `None` when the tests run on SQLite.
    pub fn postgres_or_skip(&self, test: &str, needs: &str) -> Option<(String, String)> {
        match (self.postgres_server_url(), self.postgres_database_name()) {
            (Some(server_url), Some(database)) => {
                Some((server_url.to_owned(), database.to_owned()))
            }
            _ => {
                eprintln!("skipping {test}: it {needs}; set {POSTGRES_URL_ENV} to run it");
                None
            }
        }
    }

    /// URL of the Redis server from [`REDIS_URL_ENV`], when set.
    pub fn redis_url(&self) -> Option<&str> {
        self.redis_url.as_deref()
    }

    /// `REDIS_KEY_PREFIX` that this sandbox's commands get, `velro-test-<uuid>`.
    pub fn redis_key_prefix(&self) -> &str {
        &self.redis_key_prefix
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// URL of this sandbox's database: its Postgres database, or a SQLite file that
    /// `mode=rwc` creates on first use.
    pub fn database_url(&self) -> String {
        match &self.postgres {
            Some(database) => database.url(),
            None => format!("sqlite://{}/velro.db?mode=rwc", self.path.display()),
        }
    }

    /// Builds a `velro-origin <args>` command that runs in this directory with the
    /// test environment: this sandbox's database, [`JWT_SECRET`], JSON logs at `info`,
    /// `ENVIRONMENT=test`, 50 ms per generation worker stage, a small pool, this
    /// sandbox's Redis key prefix, and the Redis of [`REDIS_URL_ENV`] when set.
    pub fn command(&self, args: &[&str]) -> Command {
        let mut command = Command::new(origin_binary());
        command.args(args).current_dir(&self.path).env_clear();
        for name in INHERITED_ENV {
            if let Some(value) = std::env::var_os(name) {
                command.env(name, value);
            }
        }
        command
            .env("HOST", "127.0.0.1")
            .env("DATABASE_URL", self.database_url())
            .env("JWT_SECRET", JWT_SECRET)
            .env("LOG_FORMAT", "json")
            .env("LOG_LEVEL", "info")
            .env("ENVIRONMENT", "test")
            .env("GENERATION_STEP_MS", "50")
            // Tests run in parallel against one Postgres server, whose default limit is 100 connections.
            .env("DB_POOL_SIZE", "4")
            .env("DB_MAX_OVERFLOW", "8")
            .env("REDIS_KEY_PREFIX", &self.redis_key_prefix);
        if let Some(redis_url) = &self.redis_url {
            command.env("REDIS_URL", redis_url);
        }
        command
    }

    /// Runs `command` to completion and captures its output; panics if it runs longer than `timeout`.
    pub async fn run(&self, command: Command, timeout: Duration) -> CommandOutput {
        let description = format!("{command:?}");
        let mut command = tokio::process::Command::from(command);
        command.stdin(Stdio::null()).kill_on_drop(true);

        let output = tokio::time::timeout(timeout, command.output())
            .await
            .unwrap_or_else(|_| panic!("command did not finish within {timeout:?}: {description}"))
            .unwrap_or_else(|error| panic!("failed to run {description}: {error}"));
        CommandOutput {
            status: output.status,
            stdout: String::from_utf8_lossy(&output.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
        }
    }

    /// Runs `velro-origin <args>` with the test environment and asserts that it exits with status 0.
    pub async fn run_ok(&self, args: &[&str]) -> CommandOutput {
        let output = self.run(self.command(args), Duration::from_secs(60)).await;
        output.assert_success();
        output
    }
}

impl Default for Sandbox {
    fn default() -> Self {
        Sandbox::new()
    }
}

impl Drop for Sandbox {
    fn drop(&mut self) {
        // A leftover directory is harmless, and panicking in drop would abort the test binary.
        if let Err(error) = std::fs::remove_dir_all(&self.path) {
            eprintln!(
                "failed to remove test directory {}: {error}",
                self.path.display()
            );
        }
        if let Some(redis_url) = &self.redis_url {
            if let Err(error) = delete_redis_keys(redis_url, &self.redis_key_prefix) {
                eprintln!(
                    "deleting the keys under {} on {redis_url} failed: {error}",
                    self.redis_key_prefix
                );
            }
        }
    }
}

/// Deletes every key starting with `prefix` from the Redis at `redis_url`, with `redis-cli`.
///
/// Cache entries expire on their own, but keys without a TTL would pile up on a
/// Redis that outlives the test run.
fn delete_redis_keys(redis_url: &str, prefix: &str) -> Result<(), String> {
    // The prefix is `velro-test-` and a hex uuid, so it contains no glob characters.
    let pattern = format!("{prefix}*");
    let scan = Command::new("redis-cli")
        .args(["-u", redis_url, "--scan", "--pattern", &pattern])
        .output()
        .map_err(|error| format!("running redis-cli failed: {error}; install redis-tools"))?;
    if !scan.status.success() {
        return Err(String::from_utf8_lossy(&scan.stderr).trim().to_string());
    }
    let stdout = String::from_utf8_lossy(&scan.stdout);
    let keys: Vec<&str> = stdout.lines().filter(|key| !key.is_empty()).collect();

    for batch in keys.chunks(500) {
        let delete = Command::new("redis-cli")
            .args(["-u", redis_url, "DEL"])
            .args(batch)
            .output()
            .map_err(|error| format!("running redis-cli failed: {error}"))?;
        if !delete.status.success() {
            return Err(String::from_utf8_lossy(&delete.stderr).trim().to_string());
        }
    }
    Ok(())
}

/// Settings of a server that has not started yet.
pub struct TestAppBuilder {
    sandbox: Sandbox,
    env: Vec<(String, String)>,
    /// Port to listen on; `None` picks a free one.
    port: Option<u16>,
    /// Starts the server without `REDIS_URL`, even when [`REDIS_URL_ENV`] is set.
    without_redis: bool,
}

impl TestAppBuilder {
    /// Sets an extra environment variable for `velro-origin serve`, overriding the test default.
    pub fn env(mut self, name: &str, value: &str) -> Self {
        if name == "REDIS_URL" {
            self.without_redis = false;
        }
        self.env.push((name.to_owned(), value.to_owned()));
        self
    }

    /// Listens on `port` instead of a free one, for a test that restarts a server
    /// at the address another process already uses.
    pub fn port(mut self, port: u16) -> Self {
        self.port = Some(port);
        self
    }

    /// Starts the server on the database, Redis and Redis key prefix of `other`, as a
    /// second instance of the same deployment.
    ///
    /// `other` must outlive the new server: dropping it removes the SQLite file or
    /// drops the Postgres database under the new server's feet.
    pub fn share_database_with(self, other: &TestApp) -> Self {
        let builder = self
            .env("DATABASE_URL", &other.database_url)
            .env("REDIS_KEY_PREFIX", &other.redis_key_prefix);
        match &other.redis_url {
            Some(redis_url) => builder.env("REDIS_URL", redis_url),
            None => builder.without_redis(),
        }
    }

    /// Starts the server without `REDIS_URL`, so it has no L2 cache even when
    /// [`REDIS_URL_ENV`] is set.
    pub fn without_redis(mut self) -> Self {
        self.without_redis = true;
        self.env.retain(|(name, _)| name != "REDIS_URL");
        self
    }

    /// Value of `name` that `velro-origin serve` gets: the last override, else the sandbox default.
    fn effective_env(&self, name: &str) -> Option<String> {
        if name == "REDIS_URL" && self.without_redis {
            return None;
        }
        let sandbox_default = match name {
            "DATABASE_URL" => Some(self.sandbox.database_url()),
            "REDIS_URL" => self.sandbox.redis_url().map(str::to_owned),
            "REDIS_KEY_PREFIX" => Some(self.sandbox.redis_key_prefix().to_owned()),
            _ => None,
        };
        self.env
            .iter()
            .rev()
            .find(|(key, _)| key == name)
            .map(|(_, value)| value.clone())
            .or(sandbox_default)
    }

    /// The directory the server will run in, for preparing its database before start-up.
    pub fn sandbox(&self) -> &Sandbox {
        &self.sandbox
    }

    /// Starts the server and waits until `GET /health/ready` returns 200.
    pub async fn spawn(self) -> TestApp {
        let mut app = self.start();
        app.wait_until(|status| status == 200, "report ready").await;
        app
    }

    /// Starts the server and waits only until `GET /health/ready` returns any status,
    /// so a test can watch warm-up from the outside.
    pub async fn spawn_listening(self) -> TestApp {
        let mut app = self.start();
        app.wait_until(|_| true, "accept HTTP requests").await;
        app
    }

    fn start(self) -> TestApp {
        let port = self.port.unwrap_or_else(free_port);
        let stdout_path = self.sandbox.path().join("stdout.log");
        let stderr_path = self.sandbox.path().join("stderr.log");
        let stdout =
            File::create(&stdout_path).expect("creating the server's stdout log should succeed");
        let stderr =
            File::create(&stderr_path).expect("creating the server's stderr log should succeed");

        let database_url = self
            .effective_env("DATABASE_URL")
            .expect("the sandbox always sets DATABASE_URL");
        let redis_url = self.effective_env("REDIS_URL");
        let redis_key_prefix = self
            .effective_env("REDIS_KEY_PREFIX")
            .expect("the sandbox always sets REDIS_KEY_PREFIX");

        let mut command = self.sandbox.command(&["serve"]);
        command
            .env("PORT", port.to_string())
            .envs(
                self.env
                    .iter()
                    .map(|(name, value)| (name.as_str(), value.as_str())),
            )
            .stdin(Stdio::null())
            .stdout(stdout)
            .stderr(stderr);
        if self.without_redis {
            command.env_remove("REDIS_URL");
        }
        let child = command
            .spawn()
            .unwrap_or_else(|error| panic!("failed to start {command:?}: {error}"));

        let client = reqwest::Client::builder()
            // Only the server under test is ever contacted, even if the shell sets a proxy.
            .no_proxy()
            .redirect(reqwest::redirect::Policy::none())
            .timeout(REQUEST_TIMEOUT)
            .build()
            .expect("a reqwest client with these settings should build");

        TestApp {
            base_url: format!("http://127.0.0.1:{port}"),
            port,
            client,
            child,
            stdout_path,
            stderr_path,
            database_url,
            redis_url,
            redis_key_prefix,
            sandbox: self.sandbox,
        }
    }
}

/// One running `velro-origin serve` process with its own database.
///
/// Dropping it kills the process and removes its directory. When the test is
/// panicking, the server's logs are printed first, so a failure shows what the
/// server saw.
pub struct TestApp {
    /// `http://127.0.0.1:<port>`, without a trailing slash.
    pub base_url: String,
    pub port: u16,
    /// Client without automatic decompression or redirects, so tests see raw responses.
    pub client: reqwest::Client,
    child: Child,
    stdout_path: PathBuf,
    stderr_path: PathBuf,
    /// `DATABASE_URL` of the server, which may be another app's database.
    database_url: String,
    /// `REDIS_URL` of the server; `None` when it runs without Redis.
    redis_url: Option<String>,
    /// `REDIS_KEY_PREFIX` of the server.
    redis_key_prefix: String,
    // Declared last so the directory is removed only after the fields above are dropped.
    sandbox: Sandbox,
}

impl TestApp {
    /// Starts a server with the default test environment and waits until it is ready.
    pub async fn spawn() -> TestApp {
        TestApp::builder().spawn().await
    }

    /// Returns a builder for a server with extra environment variables or a prepared database.
    pub fn builder() -> TestAppBuilder {
        TestAppBuilder {
            sandbox: Sandbox::new(),
            env: Vec::new(),
            port: None,
            without_redis: false,
        }
    }

    pub fn sandbox(&self) -> &Sandbox {
        &self.sandbox
    }

    /// `DATABASE_URL` the server was started with.
    pub fn database_url(&self) -> &str {
        &self.database_url
    }

    /// `REDIS_URL` the server was started with; `None` when it runs without Redis.
    pub fn redis_url(&self) -> Option<&str> {
        self.redis_url.as_deref()
    }

    /// `REDIS_KEY_PREFIX` the server was started with; it also names the
    /// invalidation channel `<prefix>:invalidate`.
    pub fn redis_key_prefix(&self) -> &str {
        &self.redis_key_prefix
    }

    /// Process id of the server.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Everything the server has written to stdout and stderr so far.
    pub fn logs(&self) -> String {
        let stdout = std::fs::read_to_string(&self.stdout_path).unwrap_or_default();
        let stderr = std::fs::read_to_string(&self.stderr_path).unwrap_or_default();
        format!("--- velro-origin stdout ---\n{stdout}\n--- velro-origin stderr ---\n{stderr}")
    }

    /// Sends SIGTERM to the server, the signal a process supervisor stops it with.
    pub fn send_sigterm(&self) {
        self.signal("TERM");
    }

    /// Freezes the server with SIGSTOP: the kernel still accepts connections on
    /// its port, but nothing responds until [`TestApp::resume`].
    pub fn freeze(&self) {
        self.signal("STOP");
    }

    /// Lets a frozen server run again with SIGCONT.
    pub fn resume(&self) {
        self.signal("CONT");
    }

    fn signal(&self, name: &str) {
        let status = Command::new("kill")
            .args([&format!("-{name}"), &self.pid().to_string()])
            .status()
            .unwrap_or_else(|error| panic!("running `kill -{name}` failed: {error}"));
        assert!(
            status.success(),
            "`kill -{name} {}` failed with {status}",
            self.pid()
        );
    }

    /// Waits for the server process to exit and returns its status, or `None` after `timeout`.
    pub async fn wait_for_exit(&mut self, timeout: Duration) -> Option<ExitStatus> {
        let deadline = Instant::now() + timeout;
        loop {
            let exited = self
                .child
                .try_wait()
                .expect("querying the server's exit status should succeed");
            if exited.is_some() || Instant::now() >= deadline {
                return exited;
            }
            tokio::time::sleep(POLL_INTERVAL).await;
        }
    }

    /// Returns whether the server process is still running.
    pub fn is_running(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(None))
    }

    /// Polls `GET /health/ready` until its status satisfies `accept`, failing the
    /// test with the server's logs if the process exits or [`READY_TIMEOUT`] passes.
    async fn wait_until(&mut self, accept: impl Fn(u16) -> bool, goal: &str) {
        let url = self.url("/health/ready");
        let deadline = Instant::now() + READY_TIMEOUT;
        loop {
            if let Some(status) = self
                .child
                .try_wait()
                .expect("querying the server's exit status should succeed")
            {
                panic!(
                    "velro-origin exited with {status} before it could {goal}\n{}",
                    self.logs()
                );
            }
            let response = self
                .client
                .get(&url)
                .timeout(Duration::from_secs(2))
                .send()
                .await;
            if let Ok(response) = response {
                if accept(response.status().as_u16()) {
                    return;
                }
            }
            if Instant::now() >= deadline {
                panic!(
                    "velro-origin did not {goal} within {READY_TIMEOUT:?}\n{}",
                    self.logs()
                );
            }
            tokio::time::sleep(POLL_INTERVAL).await;
        }
    }
}

impl Drop for TestApp {
    fn drop(&mut self) {
        if std::thread::panicking() {
            eprintln!("{}", self.logs());
        }
        // Both calls fail only when the process has already exited and been reaped,
        // which leaves nothing to clean up.
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

//! Dependencies that fault tests break on purpose, and what the origin reports
//! about them.
//!
//! - [`ThrowawayRedis`]: a `redis-server` child process on a free port, which a
//!   test can kill, restart on the same port, pause and resume.
//! - [`cut_database`] and [`restore_database`]: reject and then allow again new
//!   connections to one test database on the shared Postgres server, ending the
//!   open ones. Only databases that the harness created (`velro_test_*`) qualify.
//! - [`TcpProxy`]: a TCP forwarder in front of a server on 127.0.0.1, which a
//!   test can stop, so connections are refused and open ones break, and start again.
//! - [`TestApp::wait_for_health`]: polls the cache counters and circuit breaker
//!   states of `GET /health`.

use std::fs::{File, OpenOptions};
use std::io::{BufRead, BufReader, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use velro_shared::api::Health;

use super::{free_port, parse_json, TestApp, TestAppBuilder, POLL_INTERVAL};

/// How long a `redis-server` may take to reply to `PING` after it starts.
const REDIS_START_TIMEOUT: Duration = Duration::from_secs(10);

/// Bound on one command round trip to a throwaway `redis-server`.
const COMMAND_TIMEOUT: Duration = Duration::from_millis(500);

/// How long the origin may take to store an entry in L2, which it does in the
/// background after responding.
const L2_STORE_TIMEOUT: Duration = Duration::from_secs(5);

/// How long the backends of a cut database may take to end after `pg_terminate_backend`.
const TERMINATE_TIMEOUT: Duration = Duration::from_secs(10);

/// Prefix of the databases that the harness creates, the only ones a test may cut.
const TEST_DATABASE_PREFIX: &str = "velro_test_";

/// A `redis-server` of the test's own on a free port of 127.0.0.1, without persistence.
///
/// Restarting it gives an empty Redis on the same port, as after a crash of a
/// cache-only production Redis. Dropping it kills the process and removes its directory.
pub struct ThrowawayRedis {
    port: u16,
    /// Working directory of the server and its log file.
    dir: PathBuf,
    /// The running server, or `None` between [`ThrowawayRedis::stop`] and
    /// [`ThrowawayRedis::start_again`].
    child: Option<Child>,
}

impl ThrowawayRedis {
    /// Starts a `redis-server` on a free port and waits until it replies to `PING`.
    pub async fn start() -> ThrowawayRedis {
        let dir =
            std::env::temp_dir().join(format!("velro-redis-{}", uuid::Uuid::new_v4().simple()));
        std::fs::create_dir_all(&dir).unwrap_or_else(|error| {
            panic!(
                "failed to create Redis directory {}: {error}",
                dir.display()
            )
        });
        let mut redis = ThrowawayRedis {
            port: free_port(),
            dir,
            child: None,
        };
        redis.spawn_and_wait().await;
        redis
    }

    /// `redis://127.0.0.1:<port>`, for `REDIS_URL`.
    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}", self.port)
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    /// Process id of the running server, or `None` while it is stopped.
    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }

    /// Kills the server with SIGKILL, as a crash would end it, and reaps it.
    pub fn stop(&mut self) {
        let mut child = self
            .child
            .take()
            .expect("stop() needs a running redis-server; it was already stopped");
        // Both calls fail only when the process has already exited and been reaped.
        let _ = child.kill();
        let _ = child.wait();
    }

    /// Starts an empty server on the same port again and waits until it replies to `PING`.
    pub async fn start_again(&mut self) {
        assert!(
            self.child.is_none(),
            "start_again() needs a stopped redis-server; call stop() first"
        );
        self.spawn_and_wait().await;
    }

    /// Freezes the server with SIGSTOP. The kernel still accepts connections on its
    /// port, but no command gets a reply until [`ThrowawayRedis::resume`].
    pub fn pause(&self) {
        self.signal("STOP");
    }

    /// Lets a paused server run again with SIGCONT. It then processes the commands
    /// that queued up meanwhile.
    pub fn resume(&self) {
        self.signal("CONT");
    }

    /// Number of cache entries in the server: keys with `:c:` after the prefix. Tag
    /// version keys (`:t:`) are left out, because a read may create one before it
    /// stores its entry.
    pub async fn entry_count(&self) -> u64 {
        let reply = inline_command(self.port, COUNT_ENTRIES)
            .await
            .unwrap_or_else(|error| {
                panic!(
                    "counting keys on redis-server port {} failed: {error}",
                    self.port
                )
            });
        reply
            .strip_prefix(':')
            .and_then(|count| count.parse().ok())
            .unwrap_or_else(|| {
                panic!("counting keys returned {reply:?}, expected an integer reply")
            })
    }

    /// Waits until the server contains the cache entry of `GET path` read by
    /// `user_id`, which the origin stores in the background after a miss.
    ///
    /// Entry keys are `<prefix>:c:GET <path> user=<user id>` for a path without a query.
    pub async fn wait_for_entry(&self, path: &str, user_id: &str) {
        let is_plain = |text: &str| !text.contains(['*', '?', '[', '\\', '\'', '"', ' ']);
        assert!(
            is_plain(path) && is_plain(user_id),
            "{path:?} and {user_id:?} must not contain glob characters, quotes or spaces"
        );
        // `?` matches the spaces, which an inline command cannot contain unquoted.
        let pattern = format!("*:c:GET?{path}?user={user_id}");
        let script = format!("EVAL \"return #redis.call('KEYS', '{pattern}')\" 0");
        let deadline = Instant::now() + L2_STORE_TIMEOUT;
        loop {
            let reply = inline_command(self.port, &script)
                .await
                .unwrap_or_else(|error| {
                    panic!(
                        "looking up {pattern} on redis-server port {} failed: {error}",
                        self.port
                    )
                });
            let count: u64 = reply
                .strip_prefix(':')
                .and_then(|count| count.parse().ok())
                .unwrap_or_else(|| {
                    panic!("looking up {pattern} returned {reply:?}, expected an integer reply")
                });
            if count > 0 {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "redis-server contained no entry for GET {path} by user {user_id} \
                 {L2_STORE_TIMEOUT:?} after a read that should have stored it"
            );
            tokio::time::sleep(POLL_INTERVAL).await;
        }
    }

    /// Deletes the keys matching the glob `pattern`, as Redis does when it evicts them
    /// under memory pressure, and returns how many there were.
    pub async fn delete_keys(&self, pattern: &str) -> u64 {
        assert!(
            !pattern.contains(['\'', '"', ' ']),
            "the pattern {pattern:?} must not contain quotes or spaces"
        );
        let script = format!(
            "EVAL \"local keys = redis.call('KEYS', '{pattern}') for _, key in ipairs(keys) do redis.call('DEL', key) end return #keys\" 0"
        );
        let reply = inline_command(self.port, &script)
            .await
            .unwrap_or_else(|error| {
                panic!(
                    "deleting {pattern} on redis-server port {} failed: {error}",
                    self.port
                )
            });
        reply
            .strip_prefix(':')
            .and_then(|count| count.parse().ok())
            .unwrap_or_else(|| {
                panic!("deleting {pattern} returned {reply:?}, expected an integer reply")
            })
    }

    /// Waits until the server contains more than `count` cache entries.
    ///
    /// The origin stores an entry in L2 in the background, possibly after sending the
    /// response that loaded it, so a test waits for the new key before another
    /// instance reads it.
    pub async fn wait_for_more_entries_than(&self, count: u64) {
        let deadline = Instant::now() + L2_STORE_TIMEOUT;
        loop {
            let current = self.entry_count().await;
            if current > count {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "redis-server still contained {current} cache entries {L2_STORE_TIMEOUT:?} after a read \
                 that should have stored an L2 entry"
            );
            tokio::time::sleep(POLL_INTERVAL).await;
        }
    }

    /// Everything the server has logged since the first start.
    pub fn logs(&self) -> String {
        let log = std::fs::read_to_string(self.log_path()).unwrap_or_default();
        format!("--- redis-server on port {} ---\n{log}", self.port)
    }

    fn log_path(&self) -> PathBuf {
        self.dir.join("redis-server.log")
    }

    fn signal(&self, signal: &str) {
        let pid = self
            .pid()
            .unwrap_or_else(|| panic!("SIG{signal} needs a running redis-server; it is stopped"));
        let status = Command::new("kill")
            .args([&format!("-{signal}"), &pid.to_string()])
            .status()
            .unwrap_or_else(|error| panic!("running `kill -{signal} {pid}` failed: {error}"));
        assert!(
            status.success(),
            "`kill -{signal} {pid}` failed with {status}"
        );
    }

    async fn spawn_and_wait(&mut self) {
        // Appending keeps the log of every start, for the failure message.
        let log = OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.log_path())
            .expect("opening the redis-server log should succeed");
        let log_for_stderr: File = log
            .try_clone()
            .expect("cloning the redis-server log handle should succeed");
        let mut command = Command::new("redis-server");
        command
            .args(["--port", &self.port.to_string()])
            .args(["--bind", "127.0.0.1"])
            // No RDB snapshots and no AOF: a restart starts empty, and nothing is written to disk.
            .args(["--save", ""])
            .args(["--appendonly", "no"])
            .arg("--dir")
            .arg(&self.dir)
            .stdin(Stdio::null())
            .stdout(log)
            .stderr(log_for_stderr);
        let child = command.spawn().unwrap_or_else(|error| {
            panic!("failed to start {command:?}: {error}; install redis-server")
        });
        self.child = Some(child);

        let deadline = Instant::now() + REDIS_START_TIMEOUT;
        loop {
            let exited = self
                .child
                .as_mut()
                .expect("the child was stored just above")
                .try_wait()
                .expect("querying redis-server's exit status should succeed");
            if let Some(status) = exited {
                // Most likely another process took the port between free_port() and the bind.
                self.child = None;
                panic!(
                    "redis-server exited with {status} before answering PING\n{}",
                    self.logs()
                );
            }
            let reply = inline_command(self.port, "PING").await;
            if reply.is_ok_and(|reply| reply == "+PONG") {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "redis-server did not answer PING within {REDIS_START_TIMEOUT:?}\n{}",
                self.logs()
            );
            tokio::time::sleep(POLL_INTERVAL).await;
        }
    }
}

impl Drop for ThrowawayRedis {
    fn drop(&mut self) {
        if std::thread::panicking() {
            eprintln!("{}", self.logs());
        }
        // SIGKILL ends a paused process as well, so a failed test never leaves one behind.
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
        if let Err(error) = std::fs::remove_dir_all(&self.dir) {
            eprintln!(
                "failed to remove Redis directory {}: {error}",
                self.dir.display()
            );
        }
    }
}

/// Sends `command` in Redis's inline form to the server on `port` of 127.0.0.1 and
/// returns the first line of the reply, such as `+PONG` or `:42`.
/// A Lua script counting the keys that match `*:c:*`, sent as an inline command.
const COUNT_ENTRIES: &str = "EVAL \"return #redis.call('KEYS', '*:c:*')\" 0";

async fn inline_command(port: u16, command: &str) -> std::io::Result<String> {
    let command = command.to_owned();
    let exchange = move || -> std::io::Result<String> {
        let address = SocketAddr::from(([127, 0, 0, 1], port));
        let stream = TcpStream::connect_timeout(&address, COMMAND_TIMEOUT)?;
        stream.set_read_timeout(Some(COMMAND_TIMEOUT))?;
        stream.set_write_timeout(Some(COMMAND_TIMEOUT))?;
        (&stream).write_all(format!("{command}\r\n").as_bytes())?;
        let mut line = String::new();
        BufReader::new(&stream).read_line(&mut line)?;
        Ok(line.trim_end().to_owned())
    };
    // The standard library's socket calls block, so they run off the async workers.
    tokio::task::spawn_blocking(exchange)
        .await
        .map_err(std::io::Error::other)?
}

impl TestAppBuilder {
    /// Starts the server with `redis` as its L2 cache and invalidation channel.
    pub fn redis(self, redis: &ThrowawayRedis) -> Self {
        self.env("REDIS_URL", &redis.url())
    }
}

/// Makes the database `name` on the Postgres server at `server_url` unreachable:
/// new connections are rejected, and the open ones are terminated.
///
/// The server and its other databases keep running. Panics unless `name` is one
/// of the harness's `velro_test_*` databases.
pub async fn cut_database(server_url: &str, name: &str) {
    assert_test_database(name);
    run_sql(
        server_url,
        format!("ALTER DATABASE {name} ALLOW_CONNECTIONS false"),
    )
    .await;

    // A connection that passed the check just before the ALTER can register a moment
    // later, so the termination repeats until no backend of the database is left.
    let deadline = Instant::now() + TERMINATE_TIMEOUT;
    loop {
        let remaining = run_sql(
            server_url,
            format!(
                "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity \
                 WHERE datname = '{name}'"
            ),
        )
        .await;
        if remaining.trim() == "0" {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "backends of {name} were still running {TERMINATE_TIMEOUT:?} after the cut"
        );
        tokio::time::sleep(POLL_INTERVAL).await;
    }
}

/// Allows connections to the database `name` again after [`cut_database`].
pub async fn restore_database(server_url: &str, name: &str) {
    assert_test_database(name);
    run_sql(
        server_url,
        format!("ALTER DATABASE {name} ALLOW_CONNECTIONS true"),
    )
    .await;
}

fn assert_test_database(name: &str) {
    let is_test_database = name.starts_with(TEST_DATABASE_PREFIX)
        && name
            .bytes()
            .all(|byte| byte.is_ascii_alphanumeric() || byte == b'_');
    assert!(
        is_test_database,
        "only databases created by the test harness ({TEST_DATABASE_PREFIX}*) may be cut, not {name:?}"
    );
}

/// Runs one SQL statement with `psql` against the server's `postgres` database and
/// returns its unaligned output; panics when it fails.
async fn run_sql(server_url: &str, sql: String) -> String {
    let server_url = server_url.trim_end_matches('/').to_owned();
    let mut command = tokio::process::Command::new("psql");
    command
        .arg(format!("{server_url}/postgres"))
        .args(["-v", "ON_ERROR_STOP=1", "-q", "-t", "-A", "-c", &sql])
        .stdin(Stdio::null())
        .kill_on_drop(true);
    let output = command.output().await.unwrap_or_else(|error| {
        panic!("running psql failed: {error}; install the PostgreSQL client")
    });
    assert!(
        output.status.success(),
        "`{sql}` on {server_url} failed with {}: {}",
        output.status,
        String::from_utf8_lossy(&output.stderr).trim()
    );
    String::from_utf8_lossy(&output.stdout).into_owned()
}

impl TestApp {
    /// Fetches `GET /health` and panics unless it returns 200.
    pub async fn fetch_health(&self) -> Health {
        parse_json(self.health().await, 200).await
    }

    /// Polls `GET /health` until `accept` returns true and returns that health.
    ///
    /// Fails the test with the last health seen when `timeout` passes first. `goal`
    /// completes the sentence "the origin did not ... within".
    pub async fn wait_for_health(
        &self,
        goal: &str,
        timeout: Duration,
        accept: impl Fn(&Health) -> bool,
    ) -> Health {
        let deadline = Instant::now() + timeout;
        loop {
            let health = self.fetch_health().await;
            if accept(&health) {
                return health;
            }
            assert!(
                Instant::now() < deadline,
                "the origin did not {goal} within {timeout:?}; last /health: {health:?}"
            );
            tokio::time::sleep(POLL_INTERVAL).await;
        }
    }
}

/// Backlog of a [`TcpProxy`]'s listening socket.
const PROXY_BACKLOG: u32 = 128;

/// A TCP forwarder on a port of 127.0.0.1 that a test can take down and bring back,
/// to make a dependency refuse connections without touching the dependency itself.
///
/// Each accepted connection is forwarded to the same port of 127.0.0.1 in a task of
/// its own. [`TcpProxy::stop`] closes the listener and aborts those tasks, so new
/// connections are refused and open ones break, as when the dependency's host goes
/// away. [`TcpProxy::start_again`] listens on the same port again. Dropping the
/// proxy aborts its tasks.
pub struct TcpProxy {
    port: u16,
    target_port: u16,
    /// The accept loop and the signal that ends it, or `None` while stopped.
    running: Option<RunningProxy>,
}

struct RunningProxy {
    shutdown: tokio::sync::oneshot::Sender<()>,
    task: tokio::task::JoinHandle<()>,
}

impl TcpProxy {
    /// Starts forwarding from a free port of 127.0.0.1 to `target_port` of 127.0.0.1.
    pub async fn start(target_port: u16) -> TcpProxy {
        let listener = bind_proxy_listener(0);
        let port = listener
            .local_addr()
            .expect("a bound listener has a local address")
            .port();
        let mut proxy = TcpProxy {
            port,
            target_port,
            running: None,
        };
        proxy.run(listener);
        proxy
    }

    /// Port of 127.0.0.1 that the proxy listens on, also while it is stopped.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// Returns `server_url` with the port replaced by the proxy's and the path by
    /// `/<database>`, so a client of that URL connects through the proxy.
    pub fn database_url(&self, server_url: &str, database: &str) -> String {
        let mut url = reqwest::Url::parse(server_url)
            .unwrap_or_else(|error| panic!("{server_url:?} is not a valid URL: {error}"));
        url.set_port(Some(self.port))
            .unwrap_or_else(|()| panic!("setting the port of {server_url} failed"));
        url.set_path(&format!("/{database}"));
        url.to_string()
    }

    /// Closes the listener and breaks every forwarded connection, and returns once
    /// their sockets are closed. New connections to [`TcpProxy::port`] are then refused.
    pub async fn stop(&mut self) {
        let running = self
            .running
            .take()
            .expect("stop() needs a running proxy; it was already stopped");
        // The receiver is gone only when the accept loop has already ended.
        let _ = running.shutdown.send(());
        running
            .task
            .await
            .expect("the proxy's accept loop should end without panicking");
    }

    /// Listens on the same port again after [`TcpProxy::stop`].
    pub async fn start_again(&mut self) {
        assert!(
            self.running.is_none(),
            "start_again() needs a stopped proxy; call stop() first"
        );
        let listener = bind_proxy_listener(self.port);
        self.run(listener);
    }

    fn run(&mut self, listener: tokio::net::TcpListener) {
        let (shutdown, shutdown_received) = tokio::sync::oneshot::channel();
        let task = tokio::spawn(accept_and_forward(
            listener,
            self.target_port,
            shutdown_received,
        ));
        self.running = Some(RunningProxy { shutdown, task });
    }
}

impl Drop for TcpProxy {
    fn drop(&mut self) {
        // Aborting the accept loop drops its JoinSet, which aborts every forwarding task.
        if let Some(running) = self.running.take() {
            running.task.abort();
        }
    }
}

/// Binds a listener on `port` of 127.0.0.1, or on a free port when `port` is 0.
///
/// `SO_REUSEADDR` lets [`TcpProxy::start_again`] bind the port while connections
/// that the proxy closed are still in `TIME_WAIT`.
fn bind_proxy_listener(port: u16) -> tokio::net::TcpListener {
    let address = SocketAddr::from(([127, 0, 0, 1], port));
    let socket = tokio::net::TcpSocket::new_v4().expect("creating a TCP socket should succeed");
    socket
        .set_reuseaddr(true)
        .expect("setting SO_REUSEADDR should succeed");
    socket
        .bind(address)
        .unwrap_or_else(|error| panic!("binding the proxy to {address} failed: {error}"));
    socket
        .listen(PROXY_BACKLOG)
        .unwrap_or_else(|error| panic!("listening on {address} failed: {error}"))
}

/// Accepts connections and forwards each to `target_port` of 127.0.0.1 until
/// `shutdown` fires, then closes the listener and aborts the forwarding tasks.
async fn accept_and_forward(
    listener: tokio::net::TcpListener,
    target_port: u16,
    mut shutdown: tokio::sync::oneshot::Receiver<()>,
) {
    let mut connections = tokio::task::JoinSet::new();
    loop {
        tokio::select! {
            _ = &mut shutdown => break,
            accepted = listener.accept() => match accepted {
                Ok((client, _)) => {
                    connections.spawn(forward_connection(client, target_port));
                }
                Err(error) => eprintln!("the test proxy failed to accept a connection: {error}"),
            },
            // Reaps finished connections, so the set contains only open ones.
            Some(_) = connections.join_next(), if !connections.is_empty() => {}
        }
    }
    drop(listener);
    // Aborts every forwarding task and waits until each has dropped its sockets.
    connections.shutdown().await;
}

/// Copies bytes both ways between `client` and `target_port` of 127.0.0.1 until
/// either side closes. A refused target closes the client's connection.
async fn forward_connection(mut client: tokio::net::TcpStream, target_port: u16) {
    let target = SocketAddr::from(([127, 0, 0, 1], target_port));
    let mut upstream = match tokio::net::TcpStream::connect(target).await {
        Ok(upstream) => upstream,
        Err(error) => {
            eprintln!("the test proxy failed to connect to {target}: {error}");
            return;
        }
    };
    // An error only means that one side broke the connection, which ends it either way.
    let _ = tokio::io::copy_bidirectional(&mut client, &mut upstream).await;
}

/// Returns the port of the Postgres server at `server_url`, 5432 when the URL has
/// none. Panics unless the server is on 127.0.0.1, the only host a
/// [`TcpProxy`] forwards to.
pub fn local_postgres_port(server_url: &str) -> u16 {
    let url = reqwest::Url::parse(server_url)
        .unwrap_or_else(|error| panic!("{server_url:?} is not a valid URL: {error}"));
    assert_eq!(
        url.host_str(),
        Some("127.0.0.1"),
        "the Postgres server {server_url} must be on 127.0.0.1 to be reached through a test proxy"
    );
    url.port().unwrap_or(5432)
}

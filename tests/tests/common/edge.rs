//! The edge worker under test: the build in `edge/build`, served by workerd
//! through miniflare (`edge/runtime/serve.mjs`), in front of test origins.
//!
//! `scripts/build-edge` must have built the worker first; `scripts/test` does.
//! The worker runs with `ENVIRONMENT=test`, so requests can set the client's
//! location and the clock with the `x-velro-test-*` headers.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

use reqwest::{Method, RequestBuilder};
use serde_json::json;

use super::JWT_SECRET;

/// How long workerd may take to start listening before the test fails.
const START_TIMEOUT: Duration = Duration::from_secs(60);

/// Browser origin the test worker allows by CORS.
pub const ALLOWED_ORIGIN: &str = "http://localhost:5173";

/// Settings of an edge worker that has not started yet.
pub struct EdgeWorkerBuilder {
    vars: Vec<(String, String)>,
    cf: serde_json::Value,
}

impl EdgeWorkerBuilder {
    /// Points `region` (such as `us-west1`) at the origin at `base_url`.
    pub fn origin(self, region: &str, base_url: &str) -> Self {
        let name = format!("ORIGIN_{}", region.replace('-', "_").to_ascii_uppercase());
        self.var(&name, base_url)
    }

    /// Sets a worker variable, overriding the test default.
    pub fn var(mut self, name: &str, value: &str) -> Self {
        self.vars.retain(|(existing, _)| existing != name);
        self.vars.push((name.to_owned(), value.to_owned()));
        self
    }

    /// Starts workerd and waits until it accepts requests.
    pub async fn spawn(self) -> EdgeWorker {
        tokio::task::spawn_blocking(move || self.start())
            .await
            .expect("starting the edge worker should not panic")
    }

    fn start(self) -> EdgeWorker {
        let edge_dir = Path::new(env!("CARGO_MANIFEST_DIR"))
            .parent()
            .expect("the tests crate lives one level below the workspace root")
            .join("edge");
        let node = edge_dir.join("node_modules/.bin/node");
        let build = edge_dir.join("build/index.js");
        assert!(
            node.exists() && build.exists(),
            "the edge worker is not built: run scripts/build-edge (scripts/test does) before these tests"
        );

        let log_path =
            std::env::temp_dir().join(format!("velro-edge-{}.log", uuid::Uuid::new_v4()));
        let log = std::fs::File::create(&log_path).expect("creating the edge log should succeed");
        let mut command = Command::new(node);
        command
            .current_dir(&edge_dir)
            .arg("runtime/serve.mjs")
            .args(["--cf", &self.cf.to_string()])
            .env("WRANGLER_SEND_METRICS", "false")
            .env("CLOUDFLARE_CF_FETCH_ENABLED", "false")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(log);
        for (name, value) in &self.vars {
            command.args(["--var", &format!("{name}={value}")]);
        }
        let mut child = command
            .spawn()
            .unwrap_or_else(|error| panic!("failed to start {command:?}: {error}"));

        // serve.mjs prints `listening on http://127.0.0.1:PORT` once workerd is up.
        let stdout = child.stdout.take().expect("stdout is piped");
        let (sender, receiver) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                if let Some(url) = line.strip_prefix("listening on ") {
                    let _ = sender.send(url.trim().to_owned());
                }
            }
        });
        let stdin = child.stdin.take();
        let mut worker = EdgeWorker {
            base_url: String::new(),
            client: test_client(),
            child,
            _stdin: stdin,
            log_path,
        };
        match receiver.recv_timeout(START_TIMEOUT) {
            Ok(url) => worker.base_url = url,
            Err(_) => panic!(
                "the edge worker did not start within {START_TIMEOUT:?}\n{}",
                worker.logs()
            ),
        }
        worker
    }
}

/// One running workerd serving the edge worker, stopped when dropped.
pub struct EdgeWorker {
    /// `http://127.0.0.1:<port>`, without a trailing slash.
    pub base_url: String,
    pub client: reqwest::Client,
    child: Child,
    /// Held open so that serve.mjs, which exits when its stdin closes, outlives
    /// this value but not the test process.
    _stdin: Option<ChildStdin>,
    log_path: PathBuf,
}

impl EdgeWorker {
    /// Returns a builder with the test defaults: `ENVIRONMENT=test`, the tests'
    /// JWT secret, [`ALLOWED_ORIGIN`], and a client in San Francisco, whose
    /// nearest region is us-west1.
    pub fn builder() -> EdgeWorkerBuilder {
        EdgeWorkerBuilder {
            vars: vec![
                ("ENVIRONMENT".to_owned(), "test".to_owned()),
                ("JWT_SECRET".to_owned(), JWT_SECRET.to_owned()),
                ("ALLOWED_ORIGINS".to_owned(), ALLOWED_ORIGIN.to_owned()),
                // Short enough that a test waiting on a dead origin stays quick.
                ("ORIGIN_TIMEOUT_MS".to_owned(), "3000".to_owned()),
            ],
            cf: json!({
                "continent": "NA",
                "country": "US",
                "longitude": "-122.42",
                "colo": "SJC",
            }),
        }
    }

    /// Absolute URL of `path_and_query` on the edge.
    pub fn url(&self, path_and_query: &str) -> String {
        format!("{}{path_and_query}", self.base_url)
    }

    /// Builds a request without credentials.
    pub fn request(&self, method: Method, path_and_query: &str) -> RequestBuilder {
        self.client.request(method, self.url(path_and_query))
    }

    /// Builds a GET with `Authorization: Bearer <token>`.
    pub fn authed_get(&self, path_and_query: &str, token: &str) -> RequestBuilder {
        self.request(Method::GET, path_and_query).bearer_auth(token)
    }

    /// Everything workerd and miniflare have written to stderr so far.
    pub fn logs(&self) -> String {
        let log = std::fs::read_to_string(&self.log_path).unwrap_or_default();
        format!("--- edge worker (workerd) log ---\n{log}")
    }
}

impl Drop for EdgeWorker {
    fn drop(&mut self) {
        if std::thread::panicking() {
            eprintln!("{}", self.logs());
        }
        // SIGTERM lets miniflare stop its workerd child; a kill would orphan it.
        let _ = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status();
        for _ in 0..100 {
            if matches!(self.child.try_wait(), Ok(Some(_))) {
                let _ = std::fs::remove_file(&self.log_path);
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_file(&self.log_path);
    }
}

fn test_client() -> reqwest::Client {
    reqwest::Client::builder()
        // Only the worker under test is ever contacted, even if the shell sets a proxy.
        .no_proxy()
        .redirect(reqwest::redirect::Policy::none())
        .timeout(Duration::from_secs(30))
        .build()
        .expect("a reqwest client with these settings should build")
}

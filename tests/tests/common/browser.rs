//! Headless Chromium driven over WebDriver, for the tests that load a page in a
//! real browser.
//!
//! [`Browser::start`] starts `chromedriver` on a free 127.0.0.1 port in a process
//! group of its own, opens a session in which it starts Chromium with a fresh
//! profile directory, and returns a [`fantoccini::Client`] for it. The binaries
//! come from `PATH`: on Debian they are the packages `chromium` and
//! `chromium-driver`, which `scripts/test` installs when they are missing.

use std::fs::File;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use fantoccini::{Client, ClientBuilder};
use hyper_util::client::legacy::connect::HttpConnector;
use serde_json::json;

use super::{free_port, POLL_INTERVAL};

/// Variable that skips the browser tests when set to `1`, for machines where
/// Chromium cannot be installed.
pub const SKIP_BROWSER_TESTS_ENV: &str = "VELRO_SKIP_BROWSER_TESTS";

/// How long chromedriver may take to report `ready` on `GET /status`.
const DRIVER_READY_TIMEOUT: Duration = Duration::from_secs(20);

/// Command-line switches for Chromium. `--headless=new` is the full browser
/// without a window. `--no-sandbox` is needed because the tests may run as root,
/// and Chromium refuses to sandbox itself as root. The rest keep it from
/// contacting Google's services, using the GPU, or filling the small `/dev/shm`
/// of a container.
const CHROMIUM_ARGS: [&str; 8] = [
    "--headless=new",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-dev-shm-usage",
    "--disable-background-networking",
    "--disable-extensions",
    "--no-first-run",
    "--window-size=1280,1024",
];

/// One chromedriver process with one Chromium session.
///
/// Call [`Browser::close`] at the end of a test: it ends the session, which
/// quits Chromium, then stops chromedriver. When a test panics before that,
/// dropping the value sends SIGKILL to the whole process group, so Chromium
/// does not outlive the test either.
pub struct Browser {
    client: Option<Client>,
    driver: Child,
    /// Chromium's profile directory and chromedriver's log; removed on drop.
    directory: PathBuf,
}

impl Browser {
    /// Starts chromedriver and a Chromium session, or returns `None` when
    /// [`SKIP_BROWSER_TESTS_ENV`] is `1`. Panics with what to install when a
    /// binary is missing.
    pub async fn start() -> Option<Browser> {
        if std::env::var(SKIP_BROWSER_TESTS_ENV).is_ok_and(|value| value == "1") {
            eprintln!("skipping the browser test because {SKIP_BROWSER_TESTS_ENV}=1");
            return None;
        }
        let chromium = find_on_path("chromium");
        let chromedriver = find_on_path("chromedriver");

        let directory =
            std::env::temp_dir().join(format!("velro-browser-{}", uuid::Uuid::new_v4().simple()));
        std::fs::create_dir_all(directory.join("profile")).unwrap_or_else(|error| {
            panic!(
                "failed to create the browser directory {}: {error}",
                directory.display()
            )
        });

        let port = free_port();
        let log = File::create(directory.join("chromedriver.log"))
            .expect("creating chromedriver's log file should succeed");
        let log_for_stderr = log
            .try_clone()
            .expect("duplicating a file handle should succeed");
        // A process group of its own lets Drop stop Chromium with chromedriver.
        let driver = Command::new(&chromedriver)
            .arg(format!("--port={port}"))
            .stdin(Stdio::null())
            .stdout(log)
            .stderr(log_for_stderr)
            .process_group(0)
            .spawn()
            .unwrap_or_else(|error| panic!("failed to start {}: {error}", chromedriver.display()));

        let mut browser = Browser {
            client: None,
            driver,
            directory,
        };
        let driver_url = format!("http://127.0.0.1:{port}");
        browser.wait_for_driver(&driver_url).await;

        let mut args: Vec<String> = CHROMIUM_ARGS.iter().map(|arg| arg.to_string()).collect();
        args.push(format!(
            "--user-data-dir={}",
            browser.directory.join("profile").display()
        ));
        let mut capabilities = serde_json::Map::new();
        capabilities.insert("browserName".to_owned(), json!("chrome"));
        capabilities.insert(
            "goog:chromeOptions".to_owned(),
            json!({ "binary": chromium, "args": args }),
        );
        let client = ClientBuilder::new(HttpConnector::new())
            .capabilities(capabilities)
            .connect(&driver_url)
            .await
            .unwrap_or_else(|error| {
                panic!(
                    "starting a Chromium session through chromedriver failed: {error}\n{}",
                    browser.driver_log()
                )
            });
        browser.client = Some(client);
        Some(browser)
    }

    /// Returns the WebDriver client of the session.
    pub fn client(&self) -> &Client {
        self.client
            .as_ref()
            .expect("the session exists from start until close")
    }

    /// Ends the session, which quits Chromium, and stops chromedriver.
    pub async fn close(mut self) {
        if let Some(client) = self.client.take() {
            if let Err(error) = client.close().await {
                eprintln!("ending the WebDriver session failed: {error}");
            }
        }
        // Drop stops chromedriver and removes the directory.
    }

    /// chromedriver's output so far, for failure messages.
    pub fn driver_log(&self) -> String {
        let log =
            std::fs::read_to_string(self.directory.join("chromedriver.log")).unwrap_or_default();
        format!("--- chromedriver log ---\n{log}")
    }

    /// Polls chromedriver's `GET /status` until it reports `ready`.
    async fn wait_for_driver(&mut self, driver_url: &str) {
        let client = reqwest::Client::builder()
            .no_proxy()
            .timeout(Duration::from_secs(2))
            .build()
            .expect("a reqwest client with these settings should build");
        let deadline = Instant::now() + DRIVER_READY_TIMEOUT;
        loop {
            if let Ok(Some(status)) = self.driver.try_wait() {
                panic!(
                    "chromedriver exited with {status} before it was ready\n{}",
                    self.driver_log()
                );
            }
            let ready = match client.get(format!("{driver_url}/status")).send().await {
                Ok(response) => response
                    .json::<serde_json::Value>()
                    .await
                    .is_ok_and(|body| body["value"]["ready"] == true),
                Err(_) => false,
            };
            if ready {
                return;
            }
            if Instant::now() >= deadline {
                panic!(
                    "chromedriver did not report ready within {DRIVER_READY_TIMEOUT:?}\n{}",
                    self.driver_log()
                );
            }
            tokio::time::sleep(POLL_INTERVAL).await;
        }
    }
}

impl Drop for Browser {
    fn drop(&mut self) {
        if self.client.is_some() {
            // The session was not closed, so Chromium is still running. It is in
            // chromedriver's process group, which was created for this browser alone.
            let group = format!("-{}", self.driver.id());
            let _ = Command::new("kill").args(["-KILL", "--", &group]).status();
        }
        // Both calls fail only when chromedriver has already exited and been reaped.
        let _ = self.driver.kill();
        let _ = self.driver.wait();
        if let Err(error) = std::fs::remove_dir_all(&self.directory) {
            eprintln!(
                "failed to remove the browser directory {}: {error}",
                self.directory.display()
            );
        }
    }
}

/// Returns the path of `name` in one of `PATH`'s directories, or panics with
/// how to install it.
fn find_on_path(name: &str) -> PathBuf {
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .map(|directory| directory.join(name))
        .find(|candidate| is_executable(candidate))
        .unwrap_or_else(|| {
            panic!(
                "{name} is not installed, and the browser test needs it. Run scripts/test, \
                 which installs the Debian packages chromium and chromium-driver, or install \
                 them yourself; set {SKIP_BROWSER_TESTS_ENV}=1 to skip this test instead"
            )
        })
}

fn is_executable(path: &Path) -> bool {
    use std::os::unix::fs::PermissionsExt;
    path.metadata()
        .is_ok_and(|metadata| metadata.is_file() && metadata.permissions().mode() & 0o111 != 0)
}

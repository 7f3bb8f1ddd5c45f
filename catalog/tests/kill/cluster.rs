//! The catalog's roles as processes of their own, to start, kill (SIGKILL) and start again.

use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use testkit::free_port;

/// Taken by each test of this binary for as long as it runs its processes: a 2-core machine
/// running two clusters of four roles (and their engines) at once starves them both.
pub async fn one_at_a_time() -> tokio::sync::MutexGuard<'static, ()> {
    static CLUSTERS: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());
    CLUSTERS.lock().await
}

pub const ADMIN_EMAIL: &str = "admin@example.com";
pub const ADMIN_PASSWORD: &str = "kill test password";

pub struct Role {
    name: &'static str,
    /// The `--role` it runs.
    role: &'static str,
    port: u16,
    /// Set for this role only, after the cluster's.
    environment: Vec<(String, String)>,
    child: Option<Child>,
}

pub struct Cluster {
    data_dir: tempfile::TempDir,
    environment: Vec<(String, String)>,
    roles: Vec<Role>,
}

impl Cluster {
    /// Processes `(name, role)`, not started yet.
    pub fn new(
        environment: Vec<(String, String)>,
        roles: &[(&'static str, &'static str)],
    ) -> Cluster {
        Cluster {
            data_dir: tempfile::tempdir().expect("temp dir"),
            environment,
            roles: roles
                .iter()
                .map(|&(name, role)| Role {
                    name,
                    role,
                    port: free_port(),
                    environment: Vec::new(),
                    child: None,
                })
                .collect(),
        }
    }

    pub fn start(environment: Vec<(String, String)>) -> Cluster {
        let mut cluster = Cluster::new(
            environment,
            &[
                ("command", "command"),
                ("projectors", "projectors"),
                ("query", "query"),
            ],
        );
        cluster.start_all();
        cluster
    }

    /// Starts every role and waits until each is ready: `command` first, since it creates the
    /// signing key the others verify with, then the others at once.
    pub fn start_all(&mut self) {
        self.spawn("command");
        self.wait_ready("command");
        let others: Vec<&'static str> = self
            .roles
            .iter()
            .map(|role| role.name)
            .filter(|name| *name != "command")
            .collect();
        for name in &others {
            self.spawn(name);
        }
        for name in others {
            self.wait_ready(name);
        }
    }

    fn role(&mut self, name: &str) -> &mut Role {
        self.roles
            .iter_mut()
            .find(|role| role.name == name)
            .expect("known role")
    }

    /// Sets `name=value` for role `role` only (an empty value unsets one of the cluster's).
    pub fn set_role_env(&mut self, role: &str, name: &str, value: &str) {
        self.role(role)
            .environment
            .push((name.to_owned(), value.to_owned()));
    }

    /// Starts `name` and waits until it is ready, starting it again when it exits first (a
    /// role may refuse to start while an engine is down, as a supervisor would see it).
    pub fn start_until_ready(&mut self, name: &'static str) -> u32 {
        let url = self.url(name, "/readyz");
        let deadline = Instant::now() + Duration::from_secs(90);
        let mut starts = 0;
        loop {
            let exited = match self.role(name).child.as_mut() {
                Some(child) => matches!(child.try_wait(), Ok(Some(_))),
                None => true,
            };
            if exited {
                assert!(
                    Instant::now() < deadline,
                    "{name} never started: {}",
                    self.log(name)
                );
                self.spawn(name);
                starts += 1;
            }
            if let Ok(200) = blocking_status(&url) {
                return starts;
            }
            assert!(
                Instant::now() < deadline,
                "{name} never became ready: {}",
                self.log(name)
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    pub fn url(&self, name: &str, path: &str) -> String {
        let port = self
            .roles
            .iter()
            .find(|role| role.name == name)
            .expect("known role")
            .port;
        format!("http://127.0.0.1:{port}{path}")
    }

    pub fn spawn(&mut self, name: &'static str) {
        let data_dir = self.data_dir.path().to_path_buf();
        let environment = self.environment.clone();
        let role = self.role(name);
        let own = role.environment.clone();
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(data_dir.join(format!("{name}.log")))
            .expect("log");
        let mut command = Command::new(env!("CARGO_BIN_EXE_catalog"));
        command
            .args(["serve", "--role", role.role, "--listen"])
            .arg(format!("127.0.0.1:{}", role.port))
            .env_clear()
            .env("PATH", std::env::var_os("PATH").unwrap_or_default())
            .env("RUST_LOG", "info,sqlx=warn")
            .env("CATALOG_DATA_DIR", &data_dir)
            .env("CATALOG_ADMIN_EMAIL", ADMIN_EMAIL)
            .env("CATALOG_ADMIN_PASSWORD", ADMIN_PASSWORD)
            // One admin writes as fast as the processes answer: above the default write
            // limit (100/s per client), whose 429s are not what this test is about.
            .env("CATALOG_RATE_LIMIT_WRITES", "off")
            .envs(environment)
            .envs(own)
            .stdin(Stdio::null())
            .stdout(log.try_clone().expect("log"))
            .stderr(log);
        role.child = Some(command.spawn().expect("spawn catalog"));
    }

    pub fn wait_ready(&mut self, name: &'static str) {
        let url = self.url(name, "/readyz");
        let deadline = Instant::now() + Duration::from_secs(60);
        while Instant::now() < deadline {
            if let Ok(200) = blocking_status(&url) {
                return;
            }
            if let Some(child) = self.role(name).child.as_mut() {
                if let Ok(Some(status)) = child.try_wait() {
                    panic!("{name} exited with {status}: {}", self.log(name));
                }
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        panic!("{name} never became ready: {}", self.log(name));
    }

    pub fn log(&self, name: &str) -> String {
        std::fs::read_to_string(self.data_dir.path().join(format!("{name}.log")))
            .unwrap_or_default()
    }

    pub fn kill(&mut self, name: &'static str) {
        if let Some(mut child) = self.role(name).child.take() {
            let _ = child.kill(); // SIGKILL
            let _ = child.wait();
        }
    }
}

impl Cluster {
    /// Sends `name` SIGTERM (a graceful stop: it drains, then exits) without waiting.
    #[allow(dead_code)] // the operations tests' (this module is shared with them)
    pub fn terminate(&mut self, name: &'static str) {
        if let Some(child) = self.role(name).child.as_ref() {
            let sent = Command::new("kill")
                .args(["-TERM", &child.id().to_string()])
                .status()
                .expect("kill -TERM");
            assert!(sent.success(), "kill -TERM {name}");
        }
    }

    /// Whether `name` has exited (after [`Cluster::terminate`]); reaps it when it has.
    #[allow(dead_code)] // the operations tests'
    pub fn has_exited(&mut self, name: &'static str) -> bool {
        let role = self.role(name);
        match role.child.as_mut().map(Child::try_wait) {
            Some(Ok(Some(_))) | None => {
                role.child = None;
                true
            }
            _ => false,
        }
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        for role in &mut self.roles {
            if let Some(child) = role.child.as_mut() {
                let _ = child.kill();
                let _ = child.wait();
            }
        }
    }
}

/// The status code of a plain blocking GET (readiness polling, outside the async runtime's
/// work).
fn blocking_status(url: &str) -> std::io::Result<u16> {
    use std::io::{Read, Write};
    let without_scheme = url.trim_start_matches("http://");
    let (address, path) = without_scheme
        .split_once('/')
        .unwrap_or((without_scheme, ""));
    let mut stream = std::net::TcpStream::connect(address)?;
    stream.set_read_timeout(Some(Duration::from_secs(2)))?;
    write!(stream, "GET /{path} HTTP/1.0\r\nHost: localhost\r\n\r\n")?;
    let mut answer = String::new();
    stream.read_to_string(&mut answer)?;
    Ok(answer
        .split_whitespace()
        .nth(1)
        .and_then(|code| code.parse().ok())
        .unwrap_or(0))
}

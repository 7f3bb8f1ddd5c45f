//! Real engines for tests. Each helper either gives the test a fresh, isolated piece of a real
//! engine or panics with one line naming the engine that is missing and how to start it; no
//! test skips silently.

use std::str::FromStr;
use std::time::Duration;

use sqlx::postgres::{PgConnectOptions, PgPool, PgPoolOptions};
use sqlx::{ConnectOptions, Connection, Executor};

/// The server tests create their databases on; `CATALOG_TEST_DATABASE_URL` overrides it.
pub fn postgres_admin_url() -> String {
    std::env::var("CATALOG_TEST_DATABASE_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres".to_owned())
}

/// A database of its own for one test, dropped when the value is dropped.
pub struct TestDatabase {
    pub name: String,
    pub url: String,
    admin_url: String,
}

impl TestDatabase {
    /// Creates `catalog_test_<random>` on the test server.
    pub async fn create() -> TestDatabase {
        let admin_url = postgres_admin_url();
        let mut admin = match sqlx::PgConnection::connect(&admin_url).await {
            Ok(connection) => connection,
            Err(error) => panic!(
                "PostgreSQL is not reachable at {admin_url} ({error}); start it with \
                 `pg_ctlcluster --skip-systemctl-redirect $(ls /etc/postgresql) main start` \
                 or point CATALOG_TEST_DATABASE_URL at a server"
            ),
        };
        let name = format!("catalog_test_{}", uuid::Uuid::new_v4().simple());
        admin
            .execute(format!("CREATE DATABASE {name}").as_str())
            .await
            .expect("create the test database");
        let _ = admin.close().await;
        let options = PgConnectOptions::from_str(&admin_url)
            .expect("CATALOG_TEST_DATABASE_URL is a PostgreSQL URL")
            .database(&name);
        let url = options.to_url_lossy().to_string();
        TestDatabase {
            name,
            url,
            admin_url,
        }
    }

    /// A small pool on the test database.
    pub async fn pool(&self, max_connections: u32) -> PgPool {
        PgPoolOptions::new()
            .max_connections(max_connections)
            .acquire_timeout(Duration::from_secs(10))
            .connect(&self.url)
            .await
            .expect("connect to the test database")
    }
}

impl Drop for TestDatabase {
    fn drop(&mut self) {
        let admin_url = self.admin_url.clone();
        let name = self.name.clone();
        // Drop may run inside or outside a runtime: use a thread with its own.
        let dropped = std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .ok()?;
            runtime.block_on(async {
                let mut admin = sqlx::PgConnection::connect(&admin_url).await.ok()?;
                admin
                    .execute(format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)").as_str())
                    .await
                    .ok()
            })
        });
        let _ = dropped.join();
    }
}

/// `host:port` of a `moto_server` (SNS and SQS) for tests: `CATALOG_TEST_SQS_ENDPOINT` when the
/// test script started one, otherwise one started for this test process (from the virtual
/// environment the test script installs under `target/moto-venv`, or from `PATH`). Tests
/// isolate themselves by topic and queue names.
pub fn moto_endpoint() -> String {
    static ENDPOINT: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    ENDPOINT
        .get_or_init(|| {
            if let Ok(endpoint) = std::env::var("CATALOG_TEST_SQS_ENDPOINT") {
                if !endpoint.is_empty() {
                    return endpoint;
                }
            }
            start_moto()
        })
        .clone()
}

fn start_moto() -> String {
    let venv = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../target/moto-venv/bin/moto_server");
    let binary = if venv.exists() {
        venv.to_string_lossy().into_owned()
    } else {
        "moto_server".to_owned()
    };
    let port = free_port();
    // The shell stops moto when this test process is gone, so no server outlives the run.
    let script = format!(
        "{binary} -H 127.0.0.1 -p {port} >/dev/null 2>&1 & moto=$!; \
         while kill -0 {parent} 2>/dev/null; do sleep 1; done; kill $moto",
        parent = std::process::id()
    );
    let spawned = std::process::Command::new("sh")
        .args(["-c", &script])
        .stdin(std::process::Stdio::null())
        .spawn();
    if let Err(error) = spawned {
        panic!("cannot start moto_server ({error}); run scripts/test.sh, which installs it");
    }
    let address = format!("127.0.0.1:{port}");
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    while std::time::Instant::now() < deadline {
        if std::net::TcpStream::connect(&address).is_ok() {
            return address;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    panic!(
        "moto_server (SNS/SQS) did not start on {address}: install it with \
         `pip install 'moto[server]'` or run scripts/test.sh, which installs it into target/moto-venv"
    );
}

/// A loopback port that was free a moment ago, for a process a test starts and that binds it
/// later. Below the kernel's ephemeral range (32768–60999 by default), so no outgoing
/// connection of another test takes it as its local port in the meantime (a port from
/// `bind(:0)` is in that range and was taken so, once); never the same port twice in one
/// process; seeded by the process id, so test binaries running side by side start apart.
pub fn free_port() -> u16 {
    use std::sync::atomic::{AtomicU32, Ordering};
    const FIRST: u32 = 10_000;
    const COUNT: u32 = 20_000;
    static NEXT: AtomicU32 = AtomicU32::new(u32::MAX);
    let _ = NEXT.compare_exchange(
        u32::MAX,
        std::process::id().wrapping_mul(7_919) % COUNT,
        Ordering::Relaxed,
        Ordering::Relaxed,
    );
    for _ in 0..COUNT {
        let offset = NEXT.fetch_add(1, Ordering::Relaxed) % COUNT;
        let port = u16::try_from(FIRST + offset).expect("a port below 30000");
        if std::net::TcpListener::bind(("127.0.0.1", port)).is_ok() {
            return port;
        }
    }
    panic!(
        "no free loopback port from {FIRST} to {}",
        FIRST + COUNT - 1
    )
}

/// `redis://…` of the Redis tests use (`CATALOG_TEST_REDIS_URL`, default the local one on
/// 6379), with a key prefix of the test's own so tests never see each other's keys. Panics
/// with how to start Redis when it does not answer.
pub fn redis_url() -> String {
    let base = std::env::var("CATALOG_TEST_REDIS_URL")
        .unwrap_or_else(|_| "redis://127.0.0.1:6379".to_owned());
    let address = base
        .trim_start_matches("redis://")
        .split(['/', '?'])
        .next()
        .unwrap_or_default()
        .to_owned();
    if std::net::TcpStream::connect(&address).is_err() {
        panic!(
            "Redis is not reachable at {address}; start it with `redis-server --daemonize yes \
             --port 6379` or point CATALOG_TEST_REDIS_URL at one"
        );
    }
    format!(
        "{base}?prefix=test-{}",
        &uuid::Uuid::new_v4().simple().to_string()[..12]
    )
}

/// The URL of `database` on the streaming replica the test script runs on port 5433
/// (`CATALOG_TEST_REPLICA_URL` names another server), once the replica has it.
pub async fn replica_url(database: &TestDatabase) -> String {
    let base = std::env::var("CATALOG_TEST_REPLICA_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5433/postgres".to_owned());
    let options = PgConnectOptions::from_str(&base)
        .expect("CATALOG_TEST_REPLICA_URL is a PostgreSQL URL")
        .database(&database.name);
    let url = options.to_url_lossy().to_string();
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    loop {
        match sqlx::PgConnection::connect(&url).await {
            Ok(connection) => {
                let _ = connection.close().await;
                return url;
            }
            Err(error) if std::time::Instant::now() > deadline => panic!(
                "the PostgreSQL replica at {base} does not serve {} ({error}); scripts/test.sh \
                 starts it (a streaming standby on 127.0.0.1:5433 made with pg_basebackup -R)",
                database.name
            ),
            Err(_) => tokio::time::sleep(Duration::from_millis(100)).await,
        }
    }
}

/// `redis+cluster://…` of the three-master cluster the test script starts
/// (`CATALOG_TEST_REDIS_CLUSTER_URL`), with a key prefix of the test's own.
pub fn redis_cluster_url() -> String {
    let base = std::env::var("CATALOG_TEST_REDIS_CLUSTER_URL").unwrap_or_default();
    if base.is_empty() {
        panic!(
            "no Redis Cluster: scripts/test.sh starts three masters with redis-server and \
             redis-cli --cluster create and sets CATALOG_TEST_REDIS_CLUSTER_URL"
        );
    }
    format!(
        "{base}?prefix=test-{}",
        &uuid::Uuid::new_v4().simple().to_string()[..12]
    )
}

/// A `redis-server` of the test's own on a free port, to stop and start again.
pub struct RedisServer {
    pub port: u16,
    child: Option<std::process::Child>,
}

impl RedisServer {
    pub fn start() -> RedisServer {
        let mut server = RedisServer {
            port: free_port(),
            child: None,
        };
        server.start_again();
        server
    }

    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}", self.port)
    }

    /// Starts it (again) on the same port, and waits until it answers.
    pub fn start_again(&mut self) {
        let child = std::process::Command::new("redis-server")
            .args(["--port", &self.port.to_string(), "--bind", "127.0.0.1"])
            .args(["--save", "", "--appendonly", "no"])
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap_or_else(|error| {
                panic!("cannot start redis-server ({error}); install Redis (Debian: redis-server)")
            });
        self.child = Some(child);
        let deadline = std::time::Instant::now() + Duration::from_secs(10);
        while std::net::TcpStream::connect(("127.0.0.1", self.port)).is_err() {
            assert!(
                std::time::Instant::now() < deadline,
                "redis-server did not start on port {}",
                self.port
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Kills it (SIGKILL): its data is gone, as after a crash without persistence.
    pub fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

impl Drop for RedisServer {
    fn drop(&mut self) {
        self.stop();
    }
}

/// A TCP proxy on loopback in front of a server, which a test can cut (every connection
/// through it is dropped and new ones are refused) and restore: a dependency going down and
/// coming back, without stopping a server other tests share.
pub struct TcpProxy {
    pub port: u16,
    up: std::sync::Arc<std::sync::atomic::AtomicBool>,
    /// Bumped by every cut; each connection ends when it changes.
    cuts: std::sync::Arc<tokio::sync::watch::Sender<u64>>,
    /// Connections still open.
    open: std::sync::Arc<tokio::sync::watch::Sender<usize>>,
    task: tokio::task::JoinHandle<()>,
}

/// Counts one open connection for as long as it lives.
struct OpenConnection(std::sync::Arc<tokio::sync::watch::Sender<usize>>);

impl Drop for OpenConnection {
    fn drop(&mut self) {
        self.0.send_modify(|open| *open -= 1);
    }
}

impl TcpProxy {
    pub async fn start(target: std::net::SocketAddr) -> TcpProxy {
        use std::sync::atomic::{AtomicBool, Ordering};
        use std::sync::Arc;
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind the proxy");
        let port = listener.local_addr().expect("address").port();
        let up = Arc::new(AtomicBool::new(true));
        let cuts = Arc::new(tokio::sync::watch::Sender::new(0_u64));
        let open = Arc::new(tokio::sync::watch::Sender::new(0_usize));
        let (task_up, task_cuts, task_open) = (up.clone(), cuts.clone(), open.clone());
        let task = tokio::spawn(async move {
            loop {
                let Ok((mut client, _)) = listener.accept().await else {
                    continue;
                };
                // Counted and watching for cuts before `up` is read: a cut that lands after
                // this check still ends the connection, and waits for it.
                task_open.send_modify(|open| *open += 1);
                let guard = OpenConnection(task_open.clone());
                let mut cut = task_cuts.subscribe();
                if !task_up.load(Ordering::SeqCst) {
                    continue;
                }
                tokio::spawn(async move {
                    let _guard = guard;
                    let Ok(mut server) = tokio::net::TcpStream::connect(target).await else {
                        return;
                    };
                    tokio::select! {
                        _ = tokio::io::copy_bidirectional(&mut client, &mut server) => {}
                        _ = cut.changed() => {}
                    }
                });
            }
        });
        TcpProxy {
            port,
            up,
            cuts,
            open,
            task,
        }
    }

    /// Drops every connection and refuses new ones; returns once every connection through
    /// the proxy is closed.
    pub async fn cut(&self) {
        self.up.store(false, std::sync::atomic::Ordering::SeqCst);
        self.cuts.send_modify(|cuts| *cuts += 1);
        let _ = self.open.subscribe().wait_for(|open| *open == 0).await;
    }

    pub fn restore(&self) {
        self.up.store(true, std::sync::atomic::Ordering::SeqCst);
    }
}

impl Drop for TcpProxy {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// A tansu Kafka broker of the test's own on a free port, its log in an S3 bucket of its own on
/// moto, so that stopping and starting it again loses nothing (its memory storage would lose
/// every topic). The binary: `CATALOG_TEST_TANSU`, else where scripts/test.sh installs it.
pub struct Tansu {
    pub port: u16,
    binary: std::path::PathBuf,
    bucket: String,
    child: Option<std::process::Child>,
}

impl Tansu {
    pub fn start() -> Tansu {
        let binary = std::env::var_os("CATALOG_TEST_TANSU")
            .map(std::path::PathBuf::from)
            .or_else(|| {
                let home = std::env::var_os("HOME")?;
                let installed =
                    std::path::Path::new(&home).join(".cache/catalog-tools/tansu/bin/tansu");
                installed.exists().then_some(installed)
            })
            .unwrap_or_else(|| {
                panic!(
                    "the tansu Kafka broker is not installed: scripts/test.sh installs it \
                     (cargo install tansu --locked --features dynostore --root \
                     ~/.cache/catalog-tools/tansu), or set CATALOG_TEST_TANSU to its binary"
                )
            });
        let bucket = format!("tansu-{}", &uuid::Uuid::new_v4().simple().to_string()[..12]);
        create_bucket(&moto_endpoint(), &bucket);
        let mut tansu = Tansu {
            port: free_port(),
            binary,
            bucket,
            child: None,
        };
        tansu.start_again();
        tansu
    }

    pub fn bootstrap(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    /// Starts it (again) on the same port and bucket, and waits until it answers.
    pub fn start_again(&mut self) {
        let listener = format!("tcp://127.0.0.1:{}", self.port);
        let child = std::process::Command::new(&self.binary)
            .args(["broker", "--listener-url", &listener])
            .args(["--advertised-listener-url", &listener])
            .args(["--storage-engine", &format!("s3://{}/", self.bucket)])
            .env("AWS_ENDPOINT", format!("http://{}", moto_endpoint()))
            .env("AWS_ALLOW_HTTP", "true")
            .env("AWS_ACCESS_KEY_ID", "test")
            .env("AWS_SECRET_ACCESS_KEY", "test")
            .env("AWS_DEFAULT_REGION", "us-east-1")
            .env("AWS_REGION", "us-east-1")
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap_or_else(|error| panic!("cannot start {}: {error}", self.binary.display()));
        self.child = Some(child);
        let deadline = std::time::Instant::now() + Duration::from_secs(30);
        while std::net::TcpStream::connect(("127.0.0.1", self.port)).is_err() {
            assert!(
                std::time::Instant::now() < deadline,
                "tansu did not start on port {}",
                self.port
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Kills it (SIGKILL); what it stored is in its bucket.
    pub fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

impl Drop for Tansu {
    fn drop(&mut self) {
        self.stop();
    }
}

/// Creates S3 bucket `bucket` on moto at `endpoint` (moto takes unsigned requests).
fn create_bucket(endpoint: &str, bucket: &str) {
    use std::io::{Read, Write};
    let mut stream = std::net::TcpStream::connect(endpoint)
        .unwrap_or_else(|error| panic!("cannot reach moto at {endpoint}: {error}"));
    write!(
        stream,
        "PUT /{bucket} HTTP/1.1\r\nHost: {endpoint}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
    )
    .expect("send");
    let mut answer = String::new();
    let _ = stream.read_to_string(&mut answer);
    assert!(
        answer.starts_with("HTTP/1.1 200"),
        "moto refused to create bucket {bucket}: {answer}"
    );
}

//! The binary as a user runs it: bad configuration, graceful shutdown, seed, users.

use std::io::{BufRead, BufReader, Write};
use std::net::TcpListener;
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

fn catalog(data_dir: &std::path::Path) -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_catalog"));
    command
        .env_clear()
        .env("PATH", std::env::var_os("PATH").unwrap_or_default())
        .env("RUST_LOG", "info")
        .env("CATALOG_DATA_DIR", data_dir)
        .stdin(Stdio::null());
    command
}

fn run(command: &mut Command) -> Output {
    command.output().expect("the binary runs")
}

fn stderr(output: &Output) -> String {
    String::from_utf8_lossy(&output.stderr).into_owned()
}

#[test]
fn a_port_in_use_is_one_clear_line_and_a_failure_exit() {
    let dir = tempfile::tempdir().unwrap();
    let taken = TcpListener::bind("127.0.0.1:0").unwrap();
    let address = taken.local_addr().unwrap().to_string();
    let output = run(catalog(dir.path()).args(["serve", "--listen", &address]));
    assert!(!output.status.success());
    let message = stderr(&output);
    assert_eq!(message.lines().count(), 1, "{message}");
    assert!(
        message.starts_with(&format!("catalog: cannot listen on {address}")),
        "{message}"
    );
}

/// Arguments, environment, and how the one line of stderr starts.
type Case = (
    &'static [&'static str],
    &'static [(&'static str, &'static str)],
    &'static str,
);

#[test]
fn bad_engine_configuration_is_refused_with_one_line() {
    let dir = tempfile::tempdir().unwrap();
    let cases: [Case; 5] = [
        (
            &["serve", "--listen", "127.0.0.1:0"],
            &[("DATABASE_URL", "postgres://nobody@127.0.0.1:1/none")],
            "catalog: DATABASE_URL: ",
        ),
        (
            &["serve", "--listen", "127.0.0.1:0"],
            &[("DATABASE_URL", "mysql://x")],
            "catalog: DATABASE_URL must be a postgres:// URL",
        ),
        (
            &["serve", "--listen", "127.0.0.1:0"],
            &[("CATALOG_BUS", "kafka://127.0.0.1:9092")],
            "catalog: CATALOG_BUS needs DATABASE_URL",
        ),
        (
            &["serve", "--role", "query", "--listen", "127.0.0.1:0"],
            &[],
            "catalog: --role query needs DATABASE_URL",
        ),
        (
            &["serve", "--listen", "not an address"],
            &[],
            "catalog: cannot listen on not an address",
        ),
    ];
    for (args, environment, expected) in cases {
        let mut command = catalog(dir.path());
        command.args(args);
        for (name, value) in environment {
            command.env(name, value);
        }
        let output = run(&mut command);
        assert!(
            !output.status.success(),
            "{args:?} {environment:?} succeeded"
        );
        let message = stderr(&output);
        assert_eq!(message.lines().count(), 1, "{message}");
        assert!(message.starts_with(expected), "{expected} …: {message}");
    }
}

#[test]
fn a_bus_url_that_is_not_one_is_refused_by_bus_setup() {
    let dir = tempfile::tempdir().unwrap();
    let output = run(catalog(dir.path())
        .args(["bus", "setup"])
        .env("CATALOG_BUS", "amqp://localhost"));
    assert!(!output.status.success());
    assert!(
        stderr(&output).contains("is not a bus URL"),
        "{}",
        stderr(&output)
    );
    let output = run(catalog(dir.path()).args(["bus", "setup"]));
    assert!(
        stderr(&output).starts_with("catalog: CATALOG_BUS is not set"),
        "{}",
        stderr(&output)
    );
}

/// A serving process, killed when the test ends, also when it fails.
struct Serving(Child);

impl Drop for Serving {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// `catalog serve` on `data_dir`, once it listens.
fn serve(data_dir: &std::path::Path) -> Serving {
    let mut server = Serving(
        catalog(data_dir)
            .args(["serve", "--listen", "127.0.0.1:0"])
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap(),
    );
    wait_for_listening(&mut server.0);
    server
}

fn wait_for_listening(child: &mut Child) -> String {
    let stdout = child.stdout.take().expect("stdout");
    let mut lines = BufReader::new(stdout).lines();
    let deadline = Instant::now() + Duration::from_secs(60);
    while Instant::now() < deadline {
        let Some(Ok(line)) = lines.next() else { break };
        if let Some(address) = line.split("listening on ").nth(1) {
            // Keep draining stdout so the child never blocks on a full pipe.
            std::thread::spawn(move || for _ in lines {});
            return address.trim().to_owned();
        }
    }
    panic!("the catalog never logged `listening on`");
}

#[test]
fn sigterm_stops_the_server_gracefully() {
    let dir = tempfile::tempdir().unwrap();
    let mut child = catalog(dir.path())
        .args(["serve", "--listen", "127.0.0.1:0"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let address = wait_for_listening(&mut child);
    assert!(std::net::TcpStream::connect(&address).is_ok());
    let killed = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(killed.success());
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            assert!(status.success(), "exit status {status}");
            break;
        }
        assert!(
            Instant::now() < deadline,
            "still running 10 s after SIGTERM"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn seed_appends_products_and_users_create_adds_an_account() {
    let dir = tempfile::tempdir().unwrap();
    let output = run(catalog(dir.path()).args(["seed", "--products", "25", "--seed", "9"]));
    assert!(output.status.success(), "{}", stderr(&output));
    let text = String::from_utf8_lossy(&output.stdout);
    // 12 demo categories, then 25 products, some of them with their demo sales.
    assert!(text.contains("added 25 products"), "{text}");
    let position: u64 = text
        .rsplit("at position ")
        .next()
        .and_then(|rest| rest.trim().parse().ok())
        .expect("the store's position");
    assert!((38..=62).contains(&position), "{text}");

    let mut child = catalog(dir.path())
        .args([
            "users",
            "create",
            "--email",
            "ops@example.com",
            "--role",
            "analyst",
            "--password-stdin",
        ])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(b"a long password\n")
        .unwrap();
    let output = child.wait_with_output().unwrap();
    assert!(output.status.success(), "{}", stderr(&output));
    assert!(
        String::from_utf8_lossy(&output.stdout).starts_with("created ops@example.com (analyst)")
    );

    let again = run(catalog(dir.path()).args([
        "users",
        "create",
        "--email",
        "ops@example.com",
        "--role",
        "admin",
    ]));
    assert!(!again.status.success());
    assert!(stderr(&again).contains("exists"), "{}", stderr(&again));
}

#[test]
fn snapshots_take_writes_one_per_product_with_enough_events_and_then_none() {
    let dir = tempfile::tempdir().unwrap();
    let seeded = run(catalog(dir.path()).args(["seed", "--products", "25", "--seed", "9"]));
    assert!(seeded.status.success(), "{}", stderr(&seeded));
    let take = |min_events: &str| {
        let output =
            run(catalog(dir.path()).args(["snapshots", "take", "--min-events", min_events]));
        assert!(output.status.success(), "{}", stderr(&output));
        String::from_utf8_lossy(&output.stdout).into_owned()
    };
    // Every product has one or two events; categories are not products.
    assert!(take("1").contains("wrote 25 snapshots"));
    // Each is now snapshotted at its last version.
    assert!(take("1").contains("wrote 0 snapshots"));
    assert!(take("1000").contains("wrote 0 snapshots"));
}

#[test]
fn keys_generate_writes_an_owner_only_key_and_never_overwrites_one() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("signing.pem");
    let output = run(catalog(dir.path())
        .args(["keys", "generate", "--output"])
        .arg(&path));
    assert!(output.status.success(), "{}", stderr(&output));
    let pem = std::fs::read_to_string(&path).unwrap();
    assert!(pem.starts_with("-----BEGIN PRIVATE KEY-----"), "{pem}");
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&path).unwrap().permissions().mode();
        assert_eq!(mode & 0o077, 0, "group and others cannot read the key");
    }
    let again = run(catalog(dir.path())
        .args(["keys", "generate", "--output"])
        .arg(&path));
    assert!(!again.status.success());
    assert!(
        stderr(&again).contains("not overwriting"),
        "{}",
        stderr(&again)
    );
    assert_eq!(std::fs::read_to_string(&path).unwrap(), pem);
}

#[tokio::test]
async fn a_pool_larger_than_the_servers_free_connections_is_said_at_start() {
    let database = testkit::TestDatabase::create().await;
    let dir = tempfile::tempdir().unwrap();
    let mut child = catalog(dir.path())
        .args(["serve", "--role", "query", "--listen", "127.0.0.1:0"])
        .env("DATABASE_URL", &database.url)
        .env("CATALOG_DATABASE_POOL_SIZE", "5000")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let stdout = child.stdout.take().expect("stdout");
    let lines: Vec<String> = tokio::task::spawn_blocking(move || {
        BufReader::new(stdout)
            .lines()
            .map_while(Result::ok)
            .take_while(|line| !line.contains("listening on"))
            .collect()
    })
    .await
    .unwrap();
    let _ = child.kill();
    let _ = child.wait();
    let warning = lines
        .iter()
        .find(|line| line.contains("CATALOG_DATABASE_POOL_SIZE"))
        .unwrap_or_else(|| panic!("no warning about the pool before listening: {lines:#?}"));
    assert!(
        warning.contains("DATABASE_URL")
            && warning.contains("5000")
            && warning.contains("max_connections"),
        "{warning}"
    );
}

#[test]
fn keys_rotate_stages_then_promotes_after_the_overlap() {
    let dir = tempfile::tempdir().unwrap();
    let key = dir.path().join("signing.pem");
    let key_text = key.to_str().unwrap();
    let generated = run(catalog(dir.path()).args(["keys", "generate", "--output", key_text]));
    assert!(generated.status.success(), "{}", stderr(&generated));
    let rotate = |extra: &[&str]| {
        let mut command = catalog(dir.path());
        command
            .args(["keys", "rotate", "--key-file", key_text])
            .args(extra);
        run(&mut command)
    };
    let staged = rotate(&[]);
    assert!(staged.status.success(), "{}", stderr(&staged));
    assert!(String::from_utf8_lossy(&staged.stdout).contains("staged the next signing key"));
    assert!(dir.path().join("signing.pem.next").exists());
    let early = rotate(&[]);
    assert!(!early.status.success());
    assert!(stderr(&early).contains("--force"), "{}", stderr(&early));
    let promoted = rotate(&["--force"]);
    assert!(promoted.status.success(), "{}", stderr(&promoted));
    assert!(String::from_utf8_lossy(&promoted.stdout).contains("signing with"));
    assert!(dir.path().join("signing.pem.previous").exists());
    assert!(!dir.path().join("signing.pem.next").exists());
}

/// Rewrites the body of the store's first sale into one no version of `SaleRecorded` has;
/// returns its position.
fn poison_first_sale(data_dir: &std::path::Path) -> u64 {
    let runtime = tokio::runtime::Runtime::new().unwrap();
    runtime.block_on(async {
        let database = event_store::sqlite::SqliteDatabase::open(&data_dir.join("catalog.db"))
            .await
            .unwrap();
        let position: i64 = sqlx::query_scalar(
            "SELECT position FROM events WHERE event_type = 'SaleRecorded' ORDER BY position LIMIT 1",
        )
        .fetch_one(database.writer())
        .await
        .expect("the seed records sales");
        sqlx::query("UPDATE events SET data = '{\"quantity\": \"many\"}' WHERE position = ?")
            .bind(position)
            .execute(database.writer())
            .await
            .unwrap();
        database.close().await;
        u64::try_from(position).unwrap()
    })
}

#[test]
fn projections_lists_parked_events_and_asks_the_running_projector_to_skip_one() {
    let dir = tempfile::tempdir().unwrap();
    let seeded = run(catalog(dir.path()).args(["seed", "--products", "25", "--seed", "9"]));
    assert!(seeded.status.success(), "{}", stderr(&seeded));
    let poisoned = poison_first_sale(dir.path());
    let server = serve(dir.path());
    let stdout = |output: &Output| String::from_utf8_lossy(&output.stdout).into_owned();

    let status = run(catalog(dir.path()).args(["projections", "status"]));
    assert!(status.status.success(), "{}", stderr(&status));
    let line = stdout(&status)
        .lines()
        .find(|line| line.starts_with("read-model"))
        .map(str::to_owned)
        .expect("a line for the read model");
    let held: u64 = line.split_whitespace().last().unwrap().parse().unwrap();
    assert!(held >= 1, "{line}");

    let listed = run(catalog(dir.path()).args(["projections", "parked", "read-model"]));
    assert!(listed.status.success(), "{}", stderr(&listed));
    let records: Vec<serde_json::Value> = stdout(&listed)
        .lines()
        .filter(|line| line.starts_with('{'))
        .map(|line| serde_json::from_str(line).expect("NDJSON"))
        .collect();
    assert_eq!(records.len() as u64, held);
    assert_eq!(records[0]["position"], poisoned);
    assert_eq!(records[0]["state"], "failed");
    assert!(records[1..]
        .iter()
        .all(|record| record["state"] == "waiting"));

    let nothing = run(catalog(dir.path()).args(["projections", "retry", "read-model", "999999"]));
    assert!(!nothing.status.success());
    assert!(
        stderr(&nothing).contains("has no failed event at position 999999"),
        "{}",
        stderr(&nothing)
    );
    let position = poisoned.to_string();
    let skip = run(catalog(dir.path()).args(["projections", "skip", "read-model", &position]));
    assert!(skip.status.success(), "{}", stderr(&skip));
    assert!(stdout(&skip).starts_with("asked the read-model projector to skip"));

    // The serving process acts on it: the event is skipped and what waited is applied.
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        let listed = run(catalog(dir.path()).args(["projections", "parked", "read-model"]));
        let records: Vec<serde_json::Value> = stdout(&listed)
            .lines()
            .filter(|line| line.starts_with('{'))
            .map(|line| serde_json::from_str(line).expect("NDJSON"))
            .collect();
        let decided = records[0]["state"] == "skipped"
            && records[1..]
                .iter()
                .all(|record| record["state"] == "applied");
        if decided {
            assert!(records[0]["decided_by"]
                .as_str()
                .is_some_and(|by| by.starts_with("cli ")));
            break;
        }
        assert!(Instant::now() < deadline, "not acted on: {records:?}");
        std::thread::sleep(Duration::from_millis(200));
    }
    drop(server);
}

#[test]
fn projections_rebuild_waits_for_the_embedded_catalog_to_switch_and_status_shows_it() {
    let dir = tempfile::tempdir().unwrap();
    let seeded = run(catalog(dir.path()).args(["seed", "--products", "40", "--seed", "3"]));
    assert!(seeded.status.success(), "{}", stderr(&seeded));
    let server = serve(dir.path());
    let stdout = |output: &Output| String::from_utf8_lossy(&output.stdout).into_owned();
    let generation_of = |view: &str| -> Option<String> {
        let status = run(catalog(dir.path()).args(["projections", "status"]));
        assert!(status.status.success(), "{}", stderr(&status));
        stdout(&status)
            .lines()
            .find(|line| line.starts_with(view))
            .and_then(|line| line.split_whitespace().nth(2).map(str::to_owned))
    };
    // The serving process reports its views every 2 s.
    let deadline = Instant::now() + Duration::from_secs(15);
    while generation_of("read-model").as_deref() != Some("1") {
        assert!(
            Instant::now() < deadline,
            "the embedded views never reported"
        );
        std::thread::sleep(Duration::from_millis(200));
    }

    let rebuilt = run(catalog(dir.path()).args(["projections", "rebuild", "read-model"]));
    assert!(rebuilt.status.success(), "{}", stderr(&rebuilt));
    assert!(
        stdout(&rebuilt).contains("read-model: switched readers to generation 2"),
        "{}",
        stdout(&rebuilt)
    );
    assert_eq!(generation_of("read-model").as_deref(), Some("2"));
    let unknown = run(catalog(dir.path()).args(["projections", "rebuild", "nothing"]));
    assert!(!unknown.status.success());
    drop(server);
}

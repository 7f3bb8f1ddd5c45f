//! `catalog events tail` and `catalog events export` as an analyst runs them: NDJSON and a
//! Parquet file that read back as exactly the stored events.

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Duration;

use events::store::{EventStore, StreamAppend};
use events::{Envelope, EventMetadata, NewEvent};
use parquet::file::reader::{FileReader, SerializedFileReader};
use parquet::record::RowAccessor;
use serde_json::json;

fn catalog(data_dir: &Path) -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_catalog"));
    command
        .env_clear()
        .env("PATH", std::env::var_os("PATH").unwrap_or_default())
        .env("CATALOG_DATA_DIR", data_dir)
        .stdin(Stdio::null());
    command
}

/// A store with demo products, one stored version 1 price change and an event with every
/// optional field set; returns every envelope.
async fn prepared_store(dir: &Path) -> Vec<Envelope> {
    let output = catalog(dir)
        .args(["seed", "--products", "40", "--seed", "3"])
        .output()
        .expect("seed runs");
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let database = event_store::sqlite::SqliteDatabase::open(&dir.join("catalog.db"))
        .await
        .expect("open");
    let store = database.event_store();
    let product = store
        .read_all(0, 10_000)
        .await
        .expect("read")
        .into_iter()
        .find(|envelope| envelope.event_type == "ProductCreated")
        .expect("a product");
    let history = store
        .read_aggregate(product.aggregate_id)
        .await
        .expect("history");
    let version = history.last().expect("events").aggregate_version;
    let event = NewEvent {
        event_id: uuid::Uuid::now_v7(),
        event_type: "PriceChanged".into(),
        schema_version: 1,
        aggregate_id: product.aggregate_id,
        aggregate_version: version + 1,
        occurred_at: chrono::Utc::now(),
        metadata: EventMetadata {
            actor: Some("analyst-test".into()),
            correlation_id: Some("corr-1".into()),
            causation_id: Some("cause-1".into()),
            traceparent: None,
        },
        data: json!({"price_cents": 777, "currency": "EUR"}),
    };
    store
        .append(vec![StreamAppend {
            aggregate_id: product.aggregate_id,
            expected_version: version,
            events: vec![event],
            unique_claims: Vec::new(),
            snapshot: None,
        }])
        .await
        .expect("append");
    let all = store.read_all(0, 100_000).await.expect("read");
    database.close().await;
    all
}

#[tokio::test]
async fn tail_prints_the_log_as_ndjson_from_a_position() {
    let dir = tempfile::tempdir().expect("dir");
    let stored = prepared_store(dir.path()).await;
    let output = catalog(dir.path())
        .args(["events", "tail", "--after", "5"])
        .output()
        .expect("tail runs");
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let printed: Vec<Envelope> = String::from_utf8_lossy(&output.stdout)
        .lines()
        .map(|line| serde_json::from_str(line).expect("each line is an envelope"))
        .collect();
    assert_eq!(printed, stored[5..].to_vec());
    // The stored version 1 event is printed as written.
    let last = printed.last().expect("events");
    assert_eq!(last.schema_version, 1);
    assert_eq!(last.data, json!({"price_cents": 777, "currency": "EUR"}));
}

#[tokio::test]
async fn tail_follow_prints_new_events_as_they_are_written() {
    let dir = tempfile::tempdir().expect("dir");
    let stored = prepared_store(dir.path()).await;
    let head = stored.last().expect("events").position;
    let mut child = catalog(dir.path())
        .args(["events", "tail", "--after", &head.to_string(), "--follow"])
        .stdout(Stdio::piped())
        .spawn()
        .expect("tail --follow runs");
    let stdout = child.stdout.take().expect("stdout");
    let (lines, received) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            if lines.send(line).is_err() {
                break;
            }
        }
    });
    // Written after the tail started.
    let output = catalog(dir.path())
        .args(["seed", "--products", "1", "--seed", "9"])
        .output()
        .expect("seed runs");
    assert!(output.status.success());
    let line = received
        .recv_timeout(Duration::from_secs(10))
        .expect("the new event within 10 s");
    let envelope: Envelope = serde_json::from_str(&line).expect("envelope");
    assert_eq!(envelope.position, head + 1);
    let _ = child.kill();
    let _ = child.wait();
}

#[tokio::test]
async fn export_writes_parquet_that_reads_back_as_the_stored_events() {
    let dir = tempfile::tempdir().expect("dir");
    let stored = prepared_store(dir.path()).await;
    let head = stored.last().expect("events").position;
    let file = dir.path().join("events.parquet");
    let output = catalog(dir.path())
        .args(["events", "export", "--after", "2", "--output"])
        .arg(&file)
        .output()
        .expect("export runs");
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let said = String::from_utf8_lossy(&output.stdout);
    assert!(
        said.contains(&format!(
            "exported {} events (positions 3..={head})",
            head - 2
        )),
        "{said}"
    );
    let reader = SerializedFileReader::new(std::fs::File::open(&file).expect("open"))
        .expect("a Parquet file");
    let rows: Vec<parquet::record::Row> = reader
        .get_row_iter(None)
        .expect("rows")
        .map(|row| row.expect("row"))
        .collect();
    let expected = &stored[2..];
    assert_eq!(rows.len(), expected.len());
    for (row, envelope) in rows.iter().zip(expected) {
        assert_eq!(row.get_long(0).expect("position") as u64, envelope.position);
        assert_eq!(
            row.get_string(1).expect("event_id"),
            &envelope.event_id.to_string()
        );
        assert_eq!(row.get_string(2).expect("event_type"), &envelope.event_type);
        assert_eq!(
            row.get_int(3).expect("schema_version") as u32,
            envelope.schema_version
        );
        assert_eq!(
            row.get_string(4).expect("aggregate_id"),
            &envelope.aggregate_id.to_string()
        );
        assert_eq!(
            row.get_long(5).expect("aggregate_version") as u64,
            envelope.aggregate_version
        );
        assert_eq!(
            row.get_timestamp_micros(6).expect("occurred_at"),
            envelope.occurred_at.timestamp_micros()
        );
        for (column, value) in [
            (7, &envelope.actor),
            (8, &envelope.correlation_id),
            (9, &envelope.causation_id),
        ] {
            assert_eq!(
                row.get_string(column).ok(),
                value.as_ref(),
                "column {column}"
            );
        }
        let data: serde_json::Value =
            serde_json::from_str(row.get_string(10).expect("data")).expect("data is JSON");
        assert_eq!(data, envelope.data);
    }
    // A bounded export, and a range that makes no sense.
    let output = catalog(dir.path())
        .args([
            "events", "export", "--after", "0", "--until", "4", "--output",
        ])
        .arg(&file)
        .output()
        .expect("export runs");
    assert!(output.status.success());
    let reader = SerializedFileReader::new(std::fs::File::open(&file).expect("open"))
        .expect("a Parquet file");
    assert_eq!(reader.metadata().file_metadata().num_rows(), 4);
    let output = catalog(dir.path())
        .args([
            "events", "export", "--after", "9", "--until", "4", "--output",
        ])
        .arg(&file)
        .output()
        .expect("export runs");
    assert!(!output.status.success());
    assert!(String::from_utf8_lossy(&output.stderr).contains("--until (4) is before --after (9)"));
}

#[test]
fn reading_a_data_dir_without_a_store_is_one_clear_line() {
    let dir = tempfile::tempdir().expect("dir");
    let output = catalog(&dir.path().join("nothing-here"))
        .args(["events", "tail"])
        .output()
        .expect("runs");
    assert!(!output.status.success());
    let message = String::from_utf8_lossy(&output.stderr);
    assert!(
        message.starts_with("catalog: no event store at "),
        "{message}"
    );
    assert_eq!(message.lines().count(), 1);
}

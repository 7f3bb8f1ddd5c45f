//! `catalog events tail` and `catalog events export`: the event log for analysts' tools.
//!
//! Both read the event store directly: the embedded SQLite file under the data dir, or
//! PostgreSQL (`DATABASE_READ_URL` when set, so a replica serves the reads, else
//! `DATABASE_URL`). Events keep the schema version they were written with.

use std::io::Write;
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use events::store::EventStore;
use events::Envelope;
use parquet::basic::Compression;
use parquet::data_type::{ByteArray, ByteArrayType, Int32Type, Int64Type};
use parquet::file::properties::WriterProperties;
use parquet::file::writer::SerializedFileWriter;
use parquet::schema::parser::parse_message_type;

use crate::config::EngineConfig;

/// The Parquet schema of an export: one row per event, the envelope's fields as columns and
/// `data` as its JSON text.
pub const PARQUET_SCHEMA: &str = "
message catalog_event {
    required int64 position;
    required binary event_id (STRING);
    required binary event_type (STRING);
    required int32 schema_version;
    required binary aggregate_id (STRING);
    required int64 aggregate_version;
    required int64 occurred_at (TIMESTAMP(MICROS,true));
    optional binary actor (STRING);
    optional binary correlation_id (STRING);
    optional binary causation_id (STRING);
    required binary data (STRING);
}
";

/// Rows per Parquet row group.
const ROW_GROUP: usize = 100_000;
/// Events per read from the store.
const PAGE: usize = 5_000;

/// The event store named by the configuration, for reading.
pub async fn open_store(
    data_dir: &Path,
    config: &EngineConfig,
) -> anyhow::Result<Arc<dyn EventStore>> {
    match (&config.database_read_url, &config.database_url) {
        (Some(url), _) | (None, Some(url)) => {
            let database = event_store::postgres::PostgresDatabase::connect(url, 2)
                .await
                .context("cannot reach the event store")?;
            Ok(Arc::new(database.event_store(false)))
        }
        (None, None) => {
            let path = data_dir.join("catalog.db");
            if !path.exists() {
                bail!(
                    "no event store at {} (set --data-dir, or DATABASE_URL for PostgreSQL)",
                    path.display()
                );
            }
            let database = event_store::sqlite::SqliteDatabase::open(&path)
                .await
                .with_context(|| format!("cannot open the event store at {}", path.display()))?;
            Ok(Arc::new(database.event_store()))
        }
    }
}

/// Writes every event after `after` to `out` as NDJSON, in log order; with `follow`, keeps
/// polling for new events until `stop` resolves.
pub async fn tail(
    store: &dyn EventStore,
    mut after: u64,
    follow: bool,
    out: &mut (dyn Write + Send),
    stop: impl std::future::Future<Output = ()>,
) -> anyhow::Result<u64> {
    tokio::pin!(stop);
    let mut written = 0;
    loop {
        let page = store.read_all(after, 1000).await?;
        for envelope in &page {
            let mut line = serde_json::to_vec(envelope)?;
            line.push(b'\n');
            out.write_all(&line)?;
            after = envelope.position;
            written += 1;
        }
        out.flush()?;
        if page.len() == 1000 {
            continue;
        }
        if !follow {
            return Ok(written);
        }
        tokio::select! {
            _ = &mut stop => return Ok(written),
            _ = tokio::time::sleep(Duration::from_millis(200)) => {}
        }
    }
}

/// What an export wrote.
#[derive(Debug)]
pub struct Exported {
    pub events: u64,
    pub elapsed: Duration,
    /// The last position written (`after` when nothing was).
    pub last: u64,
}

/// Writes the events with positions in `after + 1 ..= until` to `output` as Parquet. The file
/// appears only when complete (written next to it, then renamed). `progress` is called with
/// the number of events written so far.
pub async fn export(
    store: &dyn EventStore,
    after: u64,
    until: u64,
    output: &Path,
    mut progress: impl FnMut(u64),
) -> anyhow::Result<Exported> {
    if until < after {
        bail!("--until ({until}) is before --after ({after})");
    }
    let started = Instant::now();
    let partial = output.with_extension("parquet.partial");
    let file = std::fs::File::create(&partial)
        .with_context(|| format!("cannot create {}", partial.display()))?;
    let schema = Arc::new(parse_message_type(PARQUET_SCHEMA).context("the export schema")?);
    let properties = Arc::new(
        WriterProperties::builder()
            .set_compression(Compression::SNAPPY)
            .build(),
    );
    let mut writer = SerializedFileWriter::new(file, schema, properties)?;
    let mut batch: Vec<Envelope> = Vec::with_capacity(ROW_GROUP);
    let mut position = after;
    let mut events = 0;
    let result: anyhow::Result<()> = async {
        while position < until {
            let limit = PAGE.min((until - position) as usize);
            let page = store.read_all(position, limit).await?;
            let Some(last) = page.last() else { break };
            position = last.position;
            events += page.len() as u64;
            batch.extend(
                page.into_iter()
                    .filter(|envelope| envelope.position <= until),
            );
            if batch.len() >= ROW_GROUP {
                write_row_group(&mut writer, &batch)?;
                batch.clear();
            }
            progress(events);
        }
        if !batch.is_empty() {
            write_row_group(&mut writer, &batch)?;
        }
        writer.close()?;
        Ok(())
    }
    .await;
    if let Err(error) = result {
        let _ = std::fs::remove_file(&partial);
        return Err(error);
    }
    std::fs::rename(&partial, output)
        .with_context(|| format!("cannot move the export to {}", output.display()))?;
    Ok(Exported {
        events,
        elapsed: started.elapsed(),
        last: position,
    })
}

fn text(value: &str) -> ByteArray {
    ByteArray::from(value.as_bytes().to_vec())
}

/// One optional string column: the present values and a definition level per row.
fn optional(values: impl Iterator<Item = Option<String>>) -> (Vec<ByteArray>, Vec<i16>) {
    let mut present = Vec::new();
    let mut levels = Vec::new();
    for value in values {
        match value {
            Some(value) => {
                present.push(text(&value));
                levels.push(1);
            }
            None => levels.push(0),
        }
    }
    (present, levels)
}

fn write_row_group(
    writer: &mut SerializedFileWriter<std::fs::File>,
    batch: &[Envelope],
) -> anyhow::Result<()> {
    let mut group = writer.next_row_group()?;
    let mut index = 0;
    while let Some(mut column) = group.next_column()? {
        match index {
            0 => {
                let values: Vec<i64> = batch.iter().map(|e| e.position as i64).collect();
                column
                    .typed::<Int64Type>()
                    .write_batch(&values, None, None)?;
            }
            1 | 2 | 4 => {
                let values: Vec<ByteArray> = batch
                    .iter()
                    .map(|e| match index {
                        1 => text(&e.event_id.to_string()),
                        2 => text(&e.event_type),
                        _ => text(&e.aggregate_id.to_string()),
                    })
                    .collect();
                column
                    .typed::<ByteArrayType>()
                    .write_batch(&values, None, None)?;
            }
            3 => {
                let values: Vec<i32> = batch
                    .iter()
                    .map(|e| i32::try_from(e.schema_version).unwrap_or(i32::MAX))
                    .collect();
                column
                    .typed::<Int32Type>()
                    .write_batch(&values, None, None)?;
            }
            5 => {
                let values: Vec<i64> = batch.iter().map(|e| e.aggregate_version as i64).collect();
                column
                    .typed::<Int64Type>()
                    .write_batch(&values, None, None)?;
            }
            6 => {
                let values: Vec<i64> = batch
                    .iter()
                    .map(|e| e.occurred_at.timestamp_micros())
                    .collect();
                column
                    .typed::<Int64Type>()
                    .write_batch(&values, None, None)?;
            }
            7..=9 => {
                let (values, levels) = optional(batch.iter().map(|e| match index {
                    7 => e.actor.clone(),
                    8 => e.correlation_id.clone(),
                    _ => e.causation_id.clone(),
                }));
                column
                    .typed::<ByteArrayType>()
                    .write_batch(&values, Some(&levels), None)?;
            }
            _ => {
                let values: Vec<ByteArray> =
                    batch.iter().map(|e| text(&e.data.to_string())).collect();
                column
                    .typed::<ByteArrayType>()
                    .write_batch(&values, None, None)?;
            }
        }
        column.close()?;
        index += 1;
    }
    group.close()?;
    Ok(())
}

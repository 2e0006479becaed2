//! A time window of an event topic decoded and written to a file: NDJSON (the webhook
//! envelope plus where the record was read), an Avro object container file, or Parquet, the
//! last two in the event types' reader schemas (see `herald_contract::export`).
//!
//! Parquet is made from Avro: the window is written to an object container file next to the
//! target, which arrow-avro reads into record batches that the parquet crate writes; the
//! temporary file is removed. A stopped export (Ctrl-C) finishes its file with what it read, so
//! a partial file is still a valid one, and says how far it got.

use std::fs::File;
use std::io::{BufReader, BufWriter, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use herald_contract::catalog::CatalogSchema;
use herald_contract::export::{AvroExport, ExportSchema, Origin};
use herald_contract::{Catalog, Decoder};
use herald_core::subscription::EventTypePattern;
use herald_kafka::reader::Isolation;
use herald_kafka::{KafkaConfig, KafkaError, ReadRecord, WindowReader};
use herald_router::route::{EventGate, envelope, raw_record};
use serde_json::json;

/// The file formats, told apart by the file's extension.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    /// `.ndjson` / `.jsonl`: one JSON object per line.
    Ndjson,
    /// `.avro`: an Avro object container file.
    Avro,
    /// `.parquet`.
    Parquet,
}

impl Format {
    /// The format of `path`, by its extension.
    pub fn from_path(path: &Path) -> Result<Self, ExportError> {
        match path.extension().and_then(|e| e.to_str()) {
            Some("ndjson" | "jsonl") => Ok(Self::Ndjson),
            Some("avro") => Ok(Self::Avro),
            Some("parquet") => Ok(Self::Parquet),
            _ => Err(ExportError::Format(format!(
                "{} has no known extension: use .ndjson (or .jsonl), .avro or .parquet",
                path.display()
            ))),
        }
    }
}

/// Why an export failed.
#[derive(Debug, thiserror::Error)]
pub enum ExportError {
    /// The output file's format is unknown.
    #[error("{0}")]
    Format(String),
    /// The event types to export could not be settled.
    #[error("{0}")]
    Types(String),
    /// Reading the window failed.
    #[error(transparent)]
    Kafka(#[from] KafkaError),
    /// Writing the file failed.
    #[error("writing {path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The error.
        source: std::io::Error,
    },
    /// Avro encoding failed.
    #[error(transparent)]
    Avro(#[from] herald_contract::export::ExportError),
    /// Converting to Parquet failed.
    #[error("writing Parquet: {0}")]
    Parquet(String),
}

/// What to export.
#[derive(Clone)]
pub struct ExportRequest {
    /// The event topic.
    pub topic: String,
    /// The window's start, epoch milliseconds (included).
    pub from_ms: i64,
    /// The window's end, epoch milliseconds (excluded).
    pub to_ms: i64,
    /// Which events of the window to export.
    pub gate: EventGate,
    /// The file to write; its extension picks the format.
    pub path: PathBuf,
}

/// How far an export got.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ExportProgress {
    /// Offsets of the window read so far.
    pub read: u64,
    /// Offsets in the window.
    pub total: u64,
    /// Events written to the file.
    pub written: u64,
    /// Records that could not be exported (undecodable, or not of an exported schema).
    pub skipped: u64,
    /// Why the first skipped record was skipped.
    pub first_skip: Option<String>,
    /// Whether the whole window was read (not stopped part way).
    pub complete: bool,
}

/// The writer of the chosen format.
enum Sink<'s> {
    Ndjson(BufWriter<File>),
    Avro(Box<AvroExport<'s, BufWriter<File>>>),
}

/// Exports the window of `request`; calls `progress` after every batch and stops early, with
/// a complete file of what was read, when `stop` is set.
pub fn export(
    kafka: &KafkaConfig,
    decoder: &Decoder,
    request: &ExportRequest,
    stop: &AtomicBool,
    runtime: &tokio::runtime::Handle,
    mut progress: impl FnMut(&ExportProgress),
) -> Result<ExportProgress, ExportError> {
    let format = Format::from_path(&request.path)?;
    let io = |path: &Path| {
        let path = path.to_owned();
        move |source| ExportError::Io { path, source }
    };
    // Parquet goes through an Avro file beside the target.
    let avro_path = match format {
        Format::Parquet => request.path.with_extension("parquet.avro.partial"),
        _ => request.path.clone(),
    };
    let schema = match format {
        Format::Ndjson => None,
        Format::Avro | Format::Parquet => {
            let types = export_types(decoder.catalog(), request.gate.types.as_ref())?;
            if format == Format::Parquet && types.len() != 1 {
                return Err(ExportError::Types(format!(
                    "a Parquet export holds one event type, and this one would hold {}: pass \
                     --type with one of {}",
                    types.len(),
                    type_names(&types)
                )));
            }
            Some(ExportSchema::new(&types)?)
        }
    };
    let mut reader = WindowReader::open(
        kafka,
        &request.topic,
        request.from_ms,
        request.to_ms,
        Isolation::ReadCommitted,
    )?;
    let file = File::create(&avro_path).map_err(io(&avro_path))?;
    let out = BufWriter::with_capacity(1 << 20, file);
    let mut sink = match &schema {
        None => Sink::Ndjson(out),
        Some(schema) => Sink::Avro(Box::new(schema.writer(out)?)),
    };
    let mut done = ExportProgress {
        total: reader.total(),
        ..ExportProgress::default()
    };
    progress(&done);
    while !reader.is_done() && !stop.load(Ordering::SeqCst) {
        for record in reader.next_batch(5000, Duration::from_millis(200))? {
            let event = match runtime.block_on(decoder.decode(&raw_record(&record))) {
                Ok(event) => event,
                Err(error) => {
                    skip(&mut done, &record, error.to_string());
                    continue;
                }
            };
            if !request.gate.admits(&event, &record) {
                continue;
            }
            match &mut sink {
                Sink::Ndjson(out) => {
                    let mut line = envelope(&event, &record);
                    line["kafka"] = json!({
                        "topic": record.topic,
                        "partition": record.partition,
                        "offset": record.offset,
                        "timestamp": record.timestamp_ms,
                    });
                    serde_json::to_writer(&mut *out, &line)
                        .map_err(std::io::Error::from)
                        .and_then(|()| out.write_all(b"\n"))
                        .map_err(io(&avro_path))?;
                }
                Sink::Avro(out) => {
                    let origin = Origin {
                        topic: &record.topic,
                        partition: record.partition,
                        offset: record.offset,
                        timestamp_ms: record.timestamp_ms,
                    };
                    if let Err(error) = out.append(origin, &event) {
                        skip(&mut done, &record, error.to_string());
                        continue;
                    }
                }
            }
            done.written += 1;
        }
        done.read = reader.consumed();
        progress(&done);
    }
    done.complete = reader.is_done();
    done.read = reader.consumed();
    match sink {
        Sink::Ndjson(mut out) => out.flush().map_err(io(&avro_path))?,
        Sink::Avro(out) => {
            out.finish()?.flush().map_err(io(&avro_path))?;
        }
    }
    if format == Format::Parquet {
        let converted = avro_to_parquet(&avro_path, &request.path);
        let _ = std::fs::remove_file(&avro_path);
        converted?;
    }
    Ok(done)
}

/// Counts a record that could not be exported, keeping the first reason.
fn skip(done: &mut ExportProgress, record: &ReadRecord, reason: String) {
    tracing::warn!(
        topic = %record.topic,
        partition = record.partition,
        offset = record.offset,
        %reason,
        "record not exported"
    );
    done.skipped += 1;
    done.first_skip.get_or_insert_with(|| {
        format!(
            "{}/{}@{}: {reason}",
            record.topic, record.partition, record.offset
        )
    });
}

/// The catalogue's event types `pattern` selects (all of them without one).
fn export_types<'c>(
    catalog: &'c Catalog,
    pattern: Option<&EventTypePattern>,
) -> Result<Vec<&'c CatalogSchema>, ExportError> {
    let types: Vec<&CatalogSchema> = catalog
        .schemas()
        .iter()
        .filter(|s| pattern.is_none_or(|p| p.matches(&s.event_type)))
        .collect();
    if types.is_empty() {
        let all: Vec<&CatalogSchema> = catalog.schemas().iter().collect();
        return Err(ExportError::Types(format!(
            "no event type in the schema catalogue matches --type; it has {}",
            type_names(&all)
        )));
    }
    Ok(types)
}

fn type_names(types: &[&CatalogSchema]) -> String {
    types
        .iter()
        .map(|t| t.event_type.as_str())
        .collect::<Vec<_>>()
        .join(", ")
}

/// Converts an Avro object container file to Parquet (snappy-compressed).
fn avro_to_parquet(avro: &Path, parquet: &Path) -> Result<(), ExportError> {
    let failed = |e: &dyn std::fmt::Display| ExportError::Parquet(e.to_string());
    let input = File::open(avro).map_err(|source| ExportError::Io {
        path: avro.to_owned(),
        source,
    })?;
    let reader = arrow_avro::reader::ReaderBuilder::new()
        .with_batch_size(8192)
        .build(BufReader::new(input))
        .map_err(|e| failed(&e))?;
    let output = File::create(parquet).map_err(|source| ExportError::Io {
        path: parquet.to_owned(),
        source,
    })?;
    let properties = parquet::file::properties::WriterProperties::builder()
        .set_compression(parquet::basic::Compression::SNAPPY)
        .build();
    let mut writer =
        parquet::arrow::ArrowWriter::try_new(output, reader.schema(), Some(properties))
            .map_err(|e| failed(&e))?;
    for batch in reader {
        let batch = batch.map_err(|e| failed(&e))?;
        writer.write(&batch).map_err(|e| failed(&e))?;
    }
    writer.close().map_err(|e| failed(&e))?;
    Ok(())
}

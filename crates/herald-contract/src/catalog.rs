//! The schemas Herald holds locally (the repo's `schemas/` folder, or an operator's copy):
//! reader schemas for resolution, writer schemas for single-object payloads, and the event-type
//! catalogue.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use apache_avro::Schema;

use crate::schema::{SchemaEntry, record_event_type, record_full_name};

/// Why the catalogue could not be loaded.
#[derive(Debug, thiserror::Error)]
pub enum CatalogError {
    /// A file or folder could not be read.
    #[error("cannot read {path}: {source}")]
    Io {
        /// The path.
        path: PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
    /// A schema file does not parse.
    #[error("{path} is not a valid Avro schema: {detail}")]
    Invalid {
        /// The file.
        path: PathBuf,
        /// The parser's message.
        detail: String,
    },
    /// Two files define the same record, or claim the same event type.
    #[error("{what} is defined twice: in {first} and in {second}")]
    Duplicate {
        /// The record full name or event type.
        what: String,
        /// The first file.
        first: PathBuf,
        /// The second file.
        second: PathBuf,
    },
}

/// One schema file of the catalogue.
#[derive(Debug, Clone)]
pub struct CatalogSchema {
    /// The file it came from, relative to the catalogue's root.
    pub path: PathBuf,
    /// Its text as written (what is registered, docs included).
    pub text: String,
    /// The parsed schema.
    pub entry: Arc<SchemaEntry>,
    /// Its record's full name.
    pub full_name: String,
    /// The event type it stands for.
    pub event_type: String,
}

/// Local schemas indexed by record name, event type and fingerprint.
#[derive(Debug, Default, Clone)]
pub struct Catalog {
    schemas: Vec<CatalogSchema>,
    by_name: HashMap<String, usize>,
    by_event_type: HashMap<String, usize>,
    by_fingerprint: HashMap<u64, usize>,
}

impl Catalog {
    /// Loads every `*.avsc` file under `root`, recursively, in path order.
    pub fn load_dir(root: &Path) -> Result<Self, CatalogError> {
        let mut files = Vec::new();
        collect_avsc(root, &mut files)?;
        files.sort();
        let mut catalog = Catalog::default();
        for path in files {
            let text = std::fs::read_to_string(&path).map_err(|source| CatalogError::Io {
                path: path.clone(),
                source,
            })?;
            let relative = path.strip_prefix(root).unwrap_or(&path).to_path_buf();
            catalog.add(relative, text)?;
        }
        Ok(catalog)
    }

    /// Adds one record schema given as text.
    pub fn add(&mut self, path: PathBuf, text: String) -> Result<(), CatalogError> {
        let entry = SchemaEntry::parse(&text).map_err(|detail| CatalogError::Invalid {
            path: path.clone(),
            detail,
        })?;
        let (Some(full_name), Some(event_type)) = (
            record_full_name(entry.schema()),
            record_event_type(entry.schema()),
        ) else {
            return Err(CatalogError::Invalid {
                path,
                detail: "the top-level schema must be a record".to_owned(),
            });
        };
        let index = self.schemas.len();
        for (map, key) in [
            (&mut self.by_name, &full_name),
            (&mut self.by_event_type, &event_type),
        ] {
            if let Some(existing) = map.get(key) {
                return Err(CatalogError::Duplicate {
                    what: key.clone(),
                    first: self.schemas[*existing].path.clone(),
                    second: path,
                });
            }
            map.insert(key.clone(), index);
        }
        self.by_fingerprint.insert(entry.fingerprint(), index);
        self.schemas.push(CatalogSchema {
            path,
            text,
            entry: Arc::new(entry),
            full_name,
            event_type,
        });
        Ok(())
    }

    /// Every schema, in load order.
    pub fn schemas(&self) -> &[CatalogSchema] {
        &self.schemas
    }

    /// The schema of the record with this full name.
    pub fn by_name(&self, full_name: &str) -> Option<&CatalogSchema> {
        self.by_name.get(full_name).map(|i| &self.schemas[*i])
    }

    /// The schema that stands for this event type.
    pub fn by_event_type(&self, event_type: &str) -> Option<&CatalogSchema> {
        self.by_event_type
            .get(event_type)
            .map(|i| &self.schemas[*i])
    }

    /// The schema with this CRC-64-AVRO fingerprint.
    pub fn by_fingerprint(&self, fingerprint: u64) -> Option<&CatalogSchema> {
        self.by_fingerprint
            .get(&fingerprint)
            .map(|i| &self.schemas[*i])
    }

    /// How to resolve values of `writer` to the catalogue's schemas: for a record, to the
    /// catalogue's record of the same name; for a union, branch by branch to the catalogue's
    /// record of each branch's name (apache-avro resolves a union value by validating it against
    /// each reader branch, which fails exactly when the writer's record is an older version, so
    /// branches are resolved here by name).
    pub fn reader_for(&self, writer: &SchemaEntry) -> ReaderPlan {
        match writer.schema() {
            Schema::Record(_) => {
                let local = record_full_name(writer.schema()).and_then(|name| self.by_name(&name));
                match local {
                    Some(local) if local.entry.fingerprint() != writer.fingerprint() => {
                        ReaderPlan::Record(local.entry.clone())
                    }
                    _ => ReaderPlan::Same,
                }
            }
            Schema::Union(union) => {
                let mut by_writer_branch = Vec::with_capacity(union.variants().len());
                let mut branches = Vec::with_capacity(union.variants().len());
                for variant in union.variants() {
                    let variant = writer.resolve(variant);
                    let local = record_full_name(variant)
                        .and_then(|name| self.by_name(&name))
                        .filter(|local| {
                            SchemaEntry::new(variant.clone()).fingerprint()
                                != local.entry.fingerprint()
                        });
                    let branch_json = match local {
                        Some(local) => serde_json::to_value(local.entry.schema()),
                        None => serde_json::to_value(variant),
                    };
                    let Ok(branch_json) = branch_json else {
                        return ReaderPlan::Same;
                    };
                    branches.push(branch_json);
                    by_writer_branch.push(local.map(|l| l.entry.clone()));
                }
                if by_writer_branch.iter().all(Option::is_none) {
                    return ReaderPlan::Same;
                }
                match SchemaEntry::parse(&serde_json::Value::Array(branches).to_string()) {
                    Ok(union) => ReaderPlan::Union {
                        union: Arc::new(union),
                        by_writer_branch,
                    },
                    Err(_) => ReaderPlan::Same,
                }
            }
            _ => ReaderPlan::Same,
        }
    }
}

/// How values written with one schema are resolved to the catalogue's reader schemas.
#[derive(Debug, Clone)]
pub enum ReaderPlan {
    /// The catalogue knows nothing newer: values are kept as written.
    Same,
    /// Resolve the record to this reader record.
    Record(Arc<SchemaEntry>),
    /// Resolve a union branch by branch; branch indexes stay the writer's.
    Union {
        /// The union the resolved values conform to.
        union: Arc<SchemaEntry>,
        /// For each writer branch, the reader record it resolves to (`None`: kept as written).
        by_writer_branch: Vec<Option<Arc<SchemaEntry>>>,
    },
}

fn collect_avsc(dir: &Path, files: &mut Vec<PathBuf>) -> Result<(), CatalogError> {
    let entries = std::fs::read_dir(dir).map_err(|source| CatalogError::Io {
        path: dir.to_path_buf(),
        source,
    })?;
    for entry in entries {
        let path = entry
            .map_err(|source| CatalogError::Io {
                path: dir.to_path_buf(),
                source,
            })?
            .path();
        if path.is_dir() {
            collect_avsc(&path, files)?;
        } else if path.extension().is_some_and(|e| e == "avsc") {
            files.push(path);
        }
    }
    Ok(())
}

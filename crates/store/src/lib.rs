//! The embedded log store: where flow records land and are searched.
//!
//! Records of a log topic are Parquet files partitioned Hive-style,
//! `log_group=<id>/log_topic=<id>/date=YYYYMMDD/hour=H/<file>.parquet`,
//! so DuckDB, Polars, pyarrow, chDB/ClickHouse, Spark or Trino read the same
//! directory alike: the date and hour are integers to all of them, nothing
//! else a directory scan reads is named but Parquet (the catalog and the
//! summaries start with `_`, the lock and temporary files with `.`), the
//! window's bounds are also timestamps (`start_time`, `end_time`), and a
//! value a record lacks is NULL, never `-`. Columns are the seed's fields
//! with `-` turned into `_` (`version` included), plus the extension fields.
//!
//! Guarantees:
//! - a closed window's records of one log topic become visible all at once
//!   or not at all: written to a hidden temporary name, fsynced, renamed,
//!   and the directory fsynced; a crash at any moment leaves earlier files
//!   intact and no partial file visible; [`Store::open`] removes leftovers;
//! - queries run embedded (Apache DataFusion) over the same files, no server;
//! - each records file has a window summary beside it ([`summary`]) that
//!   analyses read instead of the records where it answers them.
//!
//! This is the only crate that pulls in DataFusion.

mod catalog;
pub mod clickhouse;
mod compact;
mod layout;
pub mod limits;
mod query;
mod retention;
mod schema;
pub mod shipped;
mod skipping;
pub mod summary;
pub mod worker;
mod writer;

pub use vpcflow_querylang::search;

pub use catalog::{CATALOG_FILE, Catalog, CatalogGroup, CatalogTopic};
pub use compact::Compacted;
pub use layout::civil_date;
pub use limits::QueryLimits;
pub use query::{OutputFormat, Query, QueryResult, TimeRange};
pub use retention::GcReport;
pub use schema::{
    Column, ColumnType, END_TIME, PARTITIONS, RECORD_INDEX, START_TIME, columns, schema,
};
pub use writer::{HourFiles, Store, WrittenFile, read_rows};

/// What went wrong in the store.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// A file or directory operation failed.
    #[error("{path}: {source}")]
    Io {
        /// The path.
        path: String,
        /// The error.
        source: std::io::Error,
    },
    /// Parquet or Arrow refused the data.
    #[error("writing {path}: {message}")]
    Encode {
        /// The file.
        path: String,
        /// What the encoder said.
        message: String,
    },
    /// The query could not be planned or run.
    #[error("query: {0}")]
    Query(String),
    /// The query passed one of its limits (text, memory, time, result
    /// size; [`limits`]): the message names it.
    #[error("query refused: {0}")]
    Limit(String),
    /// Another process has the store open for writing.
    #[error(
        "the store at {dir} is open for writing by another process (one writer at a time; a running agent or server compacts and collects it by itself)"
    )]
    Locked {
        /// The store.
        dir: String,
    },
    /// A ClickHouse server refused a statement or could not be reached.
    #[error("ClickHouse at {at}: {message}")]
    ClickHouse {
        /// The server (`clickhouse://HOST:PORT/DATABASE`).
        at: String,
        /// What it said, or why it could not be asked.
        message: String,
    },
    /// A log group or topic that has no records in the store.
    #[error("no {kind} '{name}' in the store at {dir}")]
    NotFound {
        /// `log group` or `log topic`.
        kind: &'static str,
        /// The id asked for.
        name: String,
        /// The store.
        dir: String,
    },
}

impl StoreError {
    pub(crate) fn io(path: &std::path::Path, source: std::io::Error) -> StoreError {
        StoreError::Io {
            path: path.display().to_string(),
            source,
        }
    }
}

/// Where a log store is: a directory of Parquet files, or a ClickHouse
/// database (`clickhouse://HOST:PORT[,HOST:PORT...]/DATABASE[?cluster=NAME]`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StoreLocation {
    /// The embedded store's directory.
    Dir(std::path::PathBuf),
    /// A ClickHouse store.
    ClickHouse(clickhouse::ClickHouseUrl),
}

impl std::str::FromStr for StoreLocation {
    type Err = StoreError;
    fn from_str(s: &str) -> Result<StoreLocation, StoreError> {
        if s.starts_with(clickhouse::SCHEME) {
            clickhouse::ClickHouseUrl::parse(s).map(StoreLocation::ClickHouse)
        } else {
            Ok(StoreLocation::Dir(s.into()))
        }
    }
}

impl std::fmt::Display for StoreLocation {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            StoreLocation::Dir(d) => write!(f, "{}", d.display()),
            StoreLocation::ClickHouse(u) => write!(f, "{u}"),
        }
    }
}

/// A borrowed [`StoreLocation`]: what queries and analyses read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StoreRef<'a> {
    /// The embedded store's directory.
    Dir(&'a std::path::Path),
    /// A ClickHouse store.
    ClickHouse(&'a clickhouse::ClickHouseUrl),
}

impl<'a> From<&'a std::path::Path> for StoreRef<'a> {
    fn from(p: &'a std::path::Path) -> StoreRef<'a> {
        StoreRef::Dir(p)
    }
}

impl<'a> From<&'a std::path::PathBuf> for StoreRef<'a> {
    fn from(p: &'a std::path::PathBuf) -> StoreRef<'a> {
        StoreRef::Dir(p)
    }
}

impl<'a> From<&'a StoreLocation> for StoreRef<'a> {
    fn from(l: &'a StoreLocation) -> StoreRef<'a> {
        match l {
            StoreLocation::Dir(d) => StoreRef::Dir(d),
            StoreLocation::ClickHouse(u) => StoreRef::ClickHouse(u),
        }
    }
}

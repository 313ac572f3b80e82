//! The columns a query sees: the record's stored fields (derived from the
//! record's one field table, [`FIELDS`]), the record's index, and the
//! partition columns of the files' directories.

use vpcflow_core::schema::{FIELDS, FieldSpec, Kind};

/// The partition columns a query sees beside the stored ones (text): the
/// directories a record's file sits in.
pub const PARTITIONS: [&str; 4] = ["log_group", "log_topic", "date", "hour"];

/// The column after the record's stored fields: the record's position in
/// its window's output order (ingest's order).
pub const RECORD_INDEX: &str = "record_index";

/// A stored column: a record field, or the record's index.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Column {
    /// A field of the record ([`FieldSpec::stored`]).
    Field(&'static FieldSpec),
    /// [`RECORD_INDEX`].
    RecordIndex,
}

impl Column {
    /// The column's name.
    pub fn name(self) -> &'static str {
        match self {
            Column::Field(f) => f.column,
            Column::RecordIndex => RECORD_INDEX,
        }
    }

    /// Whether it holds numbers (UInt64); the rest are strings.
    pub fn is_number(self) -> bool {
        match self {
            Column::Field(f) => f.kind == Kind::Number,
            Column::RecordIndex => true,
        }
    }

    /// Whether a record may lack it.
    pub fn nullable(self) -> bool {
        match self {
            Column::Field(f) => f.nullable,
            Column::RecordIndex => false,
        }
    }
}

/// Stored columns, in order: the record's fields the store keeps (all but
/// `version`, which belongs to the text format asked for, and the log group
/// and topic, which are partitions), then [`RECORD_INDEX`]. Derived from
/// the record's one field table, [`FIELDS`].
pub fn columns() -> impl Iterator<Item = Column> {
    FIELDS
        .iter()
        .filter(|f| f.stored)
        .map(Column::Field)
        .chain([Column::RecordIndex])
}

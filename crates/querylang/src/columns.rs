//! The columns a query sees: the record's stored fields (derived from the
//! record's one field table, [`FIELDS`]), the window's bounds as
//! timestamps, the record's index, and the partition columns of the
//! files' directories.

use vpcflow_core::schema::{FIELDS, Field, FieldSpec, Kind};

/// A partition column: a level of the directories a record's file sits in
/// (`log_group=<id>/log_topic=<id>/date=YYYYMMDD/hour=H`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Partition {
    /// The column's name, and the directory level's key.
    pub name: &'static str,
    /// Whether its values are whole numbers. Written without leading
    /// zeros, so that every engine that infers Hive partition types
    /// (DuckDB, Polars, pyarrow, chDB, Spark) reads them as integers; the
    /// rest are text.
    pub number: bool,
}

/// The partition columns a query sees beside the stored ones, outermost first.
pub const PARTITIONS: [Partition; 4] = [
    Partition {
        name: "log_group",
        number: false,
    },
    Partition {
        name: "log_topic",
        number: false,
    },
    Partition {
        name: "date",
        number: true,
    },
    Partition {
        name: "hour",
        number: true,
    },
];

/// The column after the record's stored fields: the record's position in
/// its window's output order (ingest's order).
pub const RECORD_INDEX: &str = "record_index";

/// The columns of the window's bounds as timestamps (UTC, milliseconds),
/// beside the seed's integers `start` and `end`.
pub const START_TIME: &str = "start_time";
/// See [`START_TIME`].
pub const END_TIME: &str = "end_time";

/// A stored column: a record field, a window bound as a timestamp, or the
/// record's index.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Column {
    /// A field of the record ([`FieldSpec::stored`]).
    Field(&'static FieldSpec),
    /// The timestamp of a record field that is a Unix second (`start`, `end`).
    Time(&'static FieldSpec),
    /// [`RECORD_INDEX`].
    RecordIndex,
}

/// What a column holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ColumnType {
    /// Unsigned whole numbers.
    Number,
    /// Text (addresses included).
    Text,
    /// An instant (UTC, millisecond resolution).
    Timestamp,
}

impl Column {
    /// The column's name.
    pub fn name(self) -> &'static str {
        match self {
            Column::Field(f) => f.column,
            Column::Time(f) if f.field == Field::Start => START_TIME,
            Column::Time(_) => END_TIME,
            Column::RecordIndex => RECORD_INDEX,
        }
    }

    /// What it holds.
    pub fn ty(self) -> ColumnType {
        match self {
            Column::Field(f) if f.kind == Kind::Number => ColumnType::Number,
            Column::Field(_) => ColumnType::Text,
            Column::Time(_) => ColumnType::Timestamp,
            Column::RecordIndex => ColumnType::Number,
        }
    }

    /// Whether it holds numbers (UInt64).
    pub fn is_number(self) -> bool {
        self.ty() == ColumnType::Number
    }

    /// Whether a record may lack it.
    pub fn nullable(self) -> bool {
        match self {
            Column::Field(f) | Column::Time(f) => f.nullable,
            Column::RecordIndex => false,
        }
    }
}

/// Stored columns, in order: the record's fields the store keeps (all but
/// the log group and topic, which are partitions), with [`START_TIME`] and
/// [`END_TIME`] after `end`, then [`RECORD_INDEX`]. Derived from the
/// record's one field table, [`FIELDS`].
pub fn columns() -> impl Iterator<Item = Column> {
    let start = &FIELDS[Field::Start as usize];
    let end = &FIELDS[Field::End as usize];
    FIELDS
        .iter()
        .filter(|f| f.stored)
        .flat_map(move |f| {
            let times = (f.field == Field::End).then_some([Column::Time(start), Column::Time(end)]);
            std::iter::once(Column::Field(f)).chain(times.into_iter().flatten())
        })
        .chain([Column::RecordIndex])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_column_is_named_once_and_the_times_follow_end() {
        let names: Vec<&str> = columns().map(Column::name).collect();
        let mut unique = names.clone();
        unique.sort_unstable();
        unique.dedup();
        assert_eq!(unique.len(), names.len(), "{names:?}");
        assert_eq!(names[0], "version");
        let end = names.iter().position(|n| *n == "end").unwrap();
        assert_eq!(names[end + 1..end + 3], [START_TIME, END_TIME]);
        assert_eq!(names.last(), Some(&RECORD_INDEX));
        assert!(PARTITIONS.iter().all(|p| !names.contains(&p.name)));
    }
}

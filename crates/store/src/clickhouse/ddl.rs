//! The store's tables in ClickHouse, made when missing, and the version of
//! their shape recorded in `vpcflow_schema` on every host.
//!
//! `records`: the record's stored columns ([`crate::columns`], the one
//! field table's), then the Parquet store's partition columns
//! (`log_group`, `log_topic`, `date`, `hour`) as columns, then
//! `window_id`, the window a row came in with. Partitions are a log
//! group's days (retention drops them whole); rows are ordered by log
//! topic, window start and port, the keys of the queries we run.
//! `windows`: the ledger of windows written, each with its window summary
//! ([`crate::summary`]), which analyses read instead of the records. `catalog`: the store's
//! catalog ([`crate::Catalog`]: log groups' names and retention), a JSON
//! document a row, the newest in force.

use super::{ClickHouse, Target};
use crate::StoreError;
use crate::schema::{Column, ColumnType, PARTITIONS, columns};

/// The shape this vpcflow writes and reads.
pub const SCHEMA_VERSION: u32 = 1;

/// The ClickHouse type of a stored column.
pub(super) fn column_type(c: Column) -> String {
    let base = match c.ty() {
        ColumnType::Number => "UInt64",
        ColumnType::Text => "String",
        ColumnType::Timestamp => "DateTime('UTC')",
    };
    if c.nullable() {
        format!("Nullable({base})")
    } else {
        base.to_string()
    }
}

/// The columns of `records` with their types, in order.
pub(super) fn record_columns() -> Vec<(String, String)> {
    let mut cols: Vec<(String, String)> = columns()
        .map(|c| (c.name().to_string(), column_type(c)))
        .collect();
    for p in PARTITIONS {
        let ty = if p.number { "Int32" } else { "String" };
        cols.push((p.name.to_string(), ty.to_string()));
    }
    cols.push(("window_id".into(), "String".into()));
    cols
}

/// The sorting key: log topic, window start and port, and the record's
/// index (those of them that are never NULL: a sorting key cannot be).
fn order_by() -> String {
    let nullable = |name: &str| columns().any(|c| c.name() == name && c.nullable());
    let keys: Vec<String> = ["log_topic", "start", "interface_id", "record_index"]
        .iter()
        .map(|k| {
            if nullable(k) {
                format!("assumeNotNull(\"{k}\")")
            } else {
                format!("\"{k}\"")
            }
        })
        .collect();
    keys.join(", ")
}

/// `CREATE TABLE` statements of version 1, for the table each shard (or
/// the one server) holds; `(name, columns, partition, order)`.
fn tables() -> Vec<(&'static str, String, &'static str, String)> {
    let records: Vec<String> = record_columns()
        .iter()
        .map(|(n, t)| format!("\"{n}\" {t}"))
        .collect();
    vec![
        (
            "records",
            records.join(", "),
            "(log_group, date)",
            order_by(),
        ),
        (
            "windows",
            "\"id\" String, \"log_group\" String, \"log_topic\" String, \"start\" UInt64, \
             \"records\" UInt64, \"written\" DateTime('UTC'), \"summary\" String"
                .to_string(),
            "log_group",
            "\"log_topic\", \"start\", \"id\"".to_string(),
        ),
        (
            "catalog",
            "\"seq\" UInt64, \"doc\" String, \"saved\" DateTime('UTC')".to_string(),
            "tuple()",
            "\"seq\"".to_string(),
        ),
    ]
}

/// How rows are spread over shards: one port's records on one shard, a
/// window's ledger entry by its id, a catalog by its sequence.
fn sharding_key(table: &str) -> &'static str {
    match table {
        "records" => "cityHash64(assumeNotNull(interface_id))",
        "catalog" => "seq",
        _ => "cityHash64(id)",
    }
}

/// The statements that make the store's database and tables where
/// missing, the database first.
pub(super) fn statements(ch: &ClickHouse) -> Vec<String> {
    let db = ch.db();
    let mut out = vec![format!("CREATE DATABASE IF NOT EXISTS {db}")];
    for (name, cols, partition, order) in tables() {
        out.push(format!(
            "CREATE TABLE IF NOT EXISTS {} ({cols}) ENGINE = MergeTree \
             PARTITION BY {partition} ORDER BY ({order})",
            ch.local_table(name)
        ));
        if let Some(cluster) = &ch.url.cluster {
            out.push(format!(
                "CREATE TABLE IF NOT EXISTS {} AS {} ENGINE = Distributed({cluster}, {}, {}, {})",
                ch.table(name),
                ch.local_table(name),
                ch.url.database,
                format_args!("{name}_local"),
                sharding_key(name)
            ));
        }
    }
    out
}

/// Makes the database and tables where missing, on every host the URL
/// lists, and checks the cluster's shards have them.
pub(super) fn migrate(ch: &ClickHouse) -> Result<(), StoreError> {
    let db = ch.db();
    for i in 0..ch.url.hosts.len() {
        let host = Target::Host(i);
        ch.statement(
            host,
            &format!("CREATE DATABASE IF NOT EXISTS {db}"),
            None,
            &[],
        )?;
        ch.statement(
            host,
            &format!(
                "CREATE TABLE IF NOT EXISTS {db}.vpcflow_schema (version UInt32, applied DateTime('UTC')) \
                 ENGINE = MergeTree ORDER BY version"
            ),
            None,
            &[],
        )?;
        let have = ch.count(
            host,
            &format!("SELECT max(version) FROM {db}.vpcflow_schema"),
        )?;
        if have > u64::from(SCHEMA_VERSION) {
            return Err(ch.failed(
                &ch.url.hosts[i],
                format!(
                    "the database has the tables of a newer vpcflow (schema version {have}; this one knows {SCHEMA_VERSION})"
                ),
            ));
        }
        for sql in statements(ch).into_iter().skip(1) {
            ch.statement(host, &sql, None, &[])?;
        }
        if have < u64::from(SCHEMA_VERSION) {
            ch.statement(
                host,
                &format!(
                    "INSERT INTO {db}.vpcflow_schema VALUES ({SCHEMA_VERSION}, toDateTime(now(), 'UTC'))"
                ),
                None,
                &[],
            )?;
        }
    }
    if let Some(cluster) = &ch.url.cluster {
        let q = |sql: String| ch.count(Target::Any, &sql);
        let shards = q(format!(
            "SELECT count() FROM system.clusters WHERE cluster = {}",
            super::literal(cluster)
        ))?;
        if shards == 0 {
            return Err(ch.failed(
                &ch.url.hosts[0],
                format!("no cluster `{cluster}` in the server's remote_servers"),
            ));
        }
        let with_tables = q(format!(
            "SELECT count() FROM cluster({cluster}, system.tables) \
             WHERE database = {} AND name = 'records_local'",
            super::literal(&ch.url.database)
        ))?;
        if with_tables < shards {
            return Err(ch.failed(
                &ch.url.hosts[0],
                format!(
                    "{with_tables} of the {shards} shards of cluster `{cluster}` have the table \
                     records_local: list every shard's HTTP address in the URL \
                     (clickhouse://HOST:PORT,HOST:PORT/...) so vpcflow makes it on each"
                ),
            ));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn records_have_the_stored_columns_then_the_partitions_then_the_window() {
        let cols = record_columns();
        let names: Vec<&str> = cols.iter().map(|(n, _)| n.as_str()).collect();
        let stored: Vec<&str> = columns().map(|c| c.name()).collect();
        assert_eq!(names[..stored.len()], stored[..]);
        assert_eq!(
            names[stored.len()..],
            ["log_group", "log_topic", "date", "hour", "window_id"]
        );
        let ty = |n: &str| cols.iter().find(|(c, _)| c == n).unwrap().1.as_str();
        assert_eq!(ty("start"), "UInt64");
        assert_eq!(ty("start_time"), "DateTime('UTC')");
        assert_eq!(ty("date"), "Int32");
        assert!(
            ty("srcaddr").starts_with("Nullable(String"),
            "{}",
            ty("srcaddr")
        );
    }
}

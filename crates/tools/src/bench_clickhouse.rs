//! `vpcflow-tools bench clickhouse`: the store benchmark's records (the
//! same generator, ports and windows) written through vpcflow into
//! ClickHouse as `ingest --store clickhouse://` and the agent write them:
//! each closed window into the spool, and from it one insert a window
//! (the runtime's `Shipper` and `ClickHouseHop`), timed until ClickHouse
//! has every window. The baseline, in the same run: the same windows
//! written into the Parquet store (durable files, hours compacted).
//! Then bytes per record on disk, and the store benchmark's two queries
//! (top-10 talkers, a filtered one-day search) on both, best of three.

use std::path::Path;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use vpcflow_store::clickhouse::{ClickHouse, ClickHouseUrl};

use crate::bench::{best_of_three, store_bytes, store_queries, store_topology, store_windows};

/// Runs the benchmark: `records` records of `ports` ports, `per_window`
/// a window, into ClickHouse at `url` (a database of its own, dropped
/// first) and into a Parquet store under `work`.
pub fn run(url: &str, records: u64, ports: u32, per_window: u64, work: &Path) -> Result<()> {
    let url = ClickHouseUrl::parse(url)?;
    let (topology, rule_count) = store_topology(ports)?;
    let dir = work.join("parquet");
    let spool = work.join("spool");

    // The baseline: the Parquet store.
    let started = Instant::now();
    {
        let mut store = vpcflow_store::Store::open(&dir)?;
        store.compact_in_background();
        for w in store_windows(&topology, rule_count, records, per_window) {
            store.write_window(&topology, &w)?;
            store.compact_before(w.start)?;
        }
        store.compact_before(u64::MAX)?;
        store.finish_compaction()?;
    }
    let parquet_secs = started.elapsed().as_secs_f64();

    // ClickHouse: windows into the spool as they close, shipped as they
    // land.
    let ch = ClickHouse::shared(&url)?;
    let started = Instant::now();
    let mut windows = 0u64;
    let shipper = {
        let store = vpcflow_runtime::SharedStore::open_spool(&spool)?;
        let shipper = vpcflow_runtime::Shipper::start_on(
            &store,
            Box::new(vpcflow_runtime::ClickHouseHop::new(&url, &spool)?),
            u64::MAX,
        );
        for w in store_windows(&topology, rule_count, records, per_window) {
            store.write(&topology, &w, false)?;
            windows += 1;
        }
        shipper
    };
    let written_secs = started.elapsed().as_secs_f64();
    let waiting = shipper.finish(Duration::from_secs(3600));
    if waiting > 0 {
        bail!("{waiting} windows were not taken by ClickHouse");
    }
    let ch_secs = started.elapsed().as_secs_f64();
    let count = ch_count(&url, "SELECT count(*) AS n FROM records")?;
    if count != records {
        bail!("ClickHouse has {count} records, not {records}");
    }
    println!(
        "write: {records} records of {ports} ports in {windows} windows \
         ({per_window} a window, one insert each)"
    );
    println!(
        "  clickhouse: {ch_secs:.3} s = {:.0} records/s until every window was taken \
         (spooled in {written_secs:.3} s)",
        records as f64 / ch_secs
    );
    println!(
        "  parquet (baseline): {parquet_secs:.3} s = {:.0} records/s; clickhouse/parquet time {:.2}",
        records as f64 / parquet_secs,
        ch_secs / parquet_secs
    );
    let on_disk = ch.bytes_on_disk()?;
    let (parquet_bytes, _) = store_bytes(&dir)?;
    println!(
        "on disk: clickhouse {:.2} bytes/record (records {}, window ledger and summaries {}), \
         parquet {:.2} bytes/record",
        on_disk.0 as f64 / records as f64,
        on_disk.0,
        on_disk.1,
        parquet_bytes as f64 / records as f64
    );
    for (name, q) in store_queries()? {
        let (ch_best, ch_rows) = best_of_three(&q, vpcflow_store::StoreRef::ClickHouse(&url))?;
        let (pq_best, pq_rows) = best_of_three(&q, vpcflow_store::StoreRef::Dir(&dir))?;
        if ch_rows != pq_rows {
            bail!("query {name}: {ch_rows} rows from ClickHouse, {pq_rows} from Parquet");
        }
        println!(
            "query {name}: clickhouse {ch_best:.3} s, parquet {pq_best:.3} s \
             ({ch_rows} rows, best of 3)"
        );
    }
    Ok(())
}

fn ch_count(url: &ClickHouseUrl, sql: &str) -> Result<u64> {
    let q = vpcflow_store::Query {
        sql: Some(sql.to_string()),
        ..Default::default()
    };
    let text = q
        .run_at(vpcflow_store::StoreRef::ClickHouse(url))?
        .text_rows()?;
    text.first()
        .and_then(|r| r.first().cloned().flatten())
        .and_then(|n| n.parse().ok())
        .context("a count")
}

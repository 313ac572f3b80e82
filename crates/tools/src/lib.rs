//! Developer tooling, kept out of the `vpcflow` binary users run:
//!
//! - [`testbed`]: an inventory built as real network namespaces, veths,
//!   bridges and nftables rules (the live tests and `bench/live.sh`);
//! - [`bench`]: the benchmarks' helpers (`bench/*.sh`): a large capture
//!   built from real traces, the read and parse baselines, the log store's
//!   write and query benchmark, load on a running `vpcflow serve` (API
//!   calls, and a fleet's agents posting windows), and an IPFIX exporter
//!   for the collector benchmark.
//!
//! - [`attacks`]: the example VPC's crafted capture of ordinary traffic and
//!   attacks, for the analysis tests.
//!
//! The `vpcflow-tools` binary runs them from the command line.

pub mod attacks;
pub mod bench;
mod bench_api;
mod bench_clickhouse;
mod bench_export;
mod bench_fleet;
pub mod testbed;

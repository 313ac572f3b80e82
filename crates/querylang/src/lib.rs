//! What users type against the log store, checked and translated before
//! the SQL engine sees it:
//!
//! - [`columns`]: the columns a query sees (the record's stored fields,
//!   from the record's one field table, the record's index, and the
//!   partition columns);
//! - [`search`]: the field search of `vpcflow query` and the API
//!   (`action:REJECT AND dstport:22`) turned into an SQL condition;
//! - [`sql`]: SQL's text bounds (length, nesting, tokens, `NOT`s, set
//!   operations), checked by a linear scan before any recursive parser.
//!
//! Guarantees: no input makes these panic, recurse without bound or take
//! more than linear time before a limit refuses it (both are fuzzed:
//! `fuzz/`); every refusal names what is wrong. This crate has no SQL
//! engine below it, so its fuzz targets build in minutes.

pub mod columns;
pub mod search;
pub mod sql;

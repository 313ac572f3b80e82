//! The sinks of closed windows:
//!
//! - [`FormatSink`]: records as text (v1, v2, custom, JSON lines);
//! - [`IpfixSink`]: records as IPFIX over UDP, to a collector;
//! - with the `store` feature, [`SharedStore`]: the log store of a process
//!   (one writer, shared by the live capture and uploads) with its counters
//!   for `/metrics` and a [`WindowListener`] (the live tail); and
//!   [`StoreSink`]: the [`crate::Sink`] writing into a [`SharedStore`],
//!   saying each durable file, compacting the hours the windows have left
//!   behind; and [`Shipper`]: a spool's windows sent on to a
//!   [`NextHop`] (the fleet's server, or ClickHouse: [`ClickHouseHop`]).

mod ipfix;
#[cfg(feature = "store")]
mod spool;
#[cfg(feature = "store")]
mod store;
mod text;

pub use ipfix::{IPFIX_MTU, IpfixSink};

#[cfg(feature = "store")]
pub use spool::{
    Backlog, ClickHouseHop, Delivery, NextHop, Nudge, SentWaiter, Shipper, SpoolIds, notes_room,
};
#[cfg(feature = "store")]
pub use store::{Compaction, SharedStore, StoreSink, WindowListener, catalog_groups};
pub use text::FormatSink;

//! Packet sources that read capture files.
//!
//! [`CaptureFile`] reads one pcap or pcapng file (microsecond or nanosecond
//! pcap in either byte order; pcapng with any number of sections and
//! interfaces, each with its own link type and timestamp resolution),
//! optionally gzip-compressed. The format is recognised by its magic number,
//! never by the file name. [`MergedCaptures`] reads several files as one
//! timeline, in timestamp order.
//!
//! Guarantees: no panic on any input; a file that ends mid-packet yields
//! every packet before the cut and then reports [`Ending::Truncated`]; a
//! corrupt block stops that file with [`Ending::Corrupt`] after the packets
//! before it; frames are handed out borrowed, with no allocation per packet.

mod file;
mod merge;
mod write;

pub use file::{CaptureError, CaptureFile, Ending, OwnedFrame, check_head};
pub use merge::MergedCaptures;
pub use write::PcapWriter;

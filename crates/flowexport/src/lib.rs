//! Flow export datagrams: from the network's own exporters (routers,
//! switches, Open vSwitch, softflowd, sFlow agents), NetFlow v5, NetFlow
//! v9 (RFC 3954), IPFIX (RFC 7011) and sFlow v5 decoded into
//! [`ExportedFlow`]s; and vpcflow's own
//! records encoded as IPFIX ([`IpfixEncoder`]) for the collectors people
//! run.
//!
//! v9 and IPFIX describe their records with templates; a [`Decoder`] keeps
//! the templates of each exporter and observation domain (source id), as
//! the RFCs scope them, learns new ones, replaces refreshed ones and drops
//! withdrawn ones (IPFIX), and decodes data sets with them.
//!
//! Guarantees:
//! - no panic on any input (property-tested): a malformed datagram is an
//!   [`ExportError`] naming what is wrong, and what was decoded before the
//!   fault has already been handed over;
//! - no allocation per datagram or per flow: only learning a template
//!   allocates;
//! - a data set whose template is not known yet is counted and skipped
//!   ([`Datagram::unknown_template_records`]), not an error: exporters send
//!   templates periodically, and a collector that starts between two
//!   refreshes must wait for the next one.

mod decode;
mod encode;
mod fields;
mod sflow;

pub use decode::{
    Datagram, Decoder, ExportError, ExportedFlow, MOST_TEMPLATES, Observation, Version,
};
pub use encode::{
    ENTERPRISE, ENTERPRISE_ELEMENTS, IpfixEncoder, IpfixRecord, TEMPLATE_V4, TEMPLATE_V6,
};
pub use fields::Element;

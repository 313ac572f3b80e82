//! What the runtime's tests share: a sink that keeps every window as text
//! lines of chosen fields.

use vpcflow_core::Topology;
use vpcflow_core::aggregate::ClosedWindow;
use vpcflow_core::format::{self, Format};
use vpcflow_runtime::{Sink, SinkError};

/// Every window written: (start, partial, its non-NODATA records as
/// `fields`, sorted).
pub struct Collected {
    fields: Format,
    pub windows: Vec<(u64, bool, Vec<String>)>,
}

impl Collected {
    /// Keeps the records' `fields` (`custom:...`).
    pub fn new(fields: &str) -> Collected {
        Collected {
            fields: Format::parse(fields).unwrap(),
            windows: Vec::new(),
        }
    }
}

impl Sink for Collected {
    fn write(
        &mut self,
        topology: &Topology,
        window: &ClosedWindow,
        partial: bool,
    ) -> Result<(), SinkError> {
        let mut out = Vec::new();
        for r in &window.records {
            format::write_record(&self.fields, topology, r, &mut out)?;
        }
        let mut lines: Vec<String> = String::from_utf8(out)?
            .lines()
            .filter(|l| !l.contains("NODATA"))
            .map(str::to_string)
            .collect();
        lines.sort();
        self.windows.push((window.start, partial, lines));
        Ok(())
    }
}

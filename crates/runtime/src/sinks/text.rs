//! Records as text: v1, v2, custom fields, JSON lines.

use std::io::{self, Write};

use vpcflow_core::Topology;
use vpcflow_core::aggregate::ClosedWindow;
use vpcflow_core::format::{self, Format, LineWriter};

use crate::driver::{Sink, SinkError};

/// Records as text into `out`.
pub struct FormatSink<W> {
    lines_of: LineWriter,
    out: W,
    /// Lines not yet handed to `out`: written many at a time.
    lines: Vec<u8>,
}

/// Bytes of lines gathered before they are handed to the writer.
const LINES_BUFFER: usize = 64 * 1024;

impl<W: Write> FormatSink<W> {
    /// Writes `format`'s records to `out` (the header first if `header`).
    pub fn new(format: Format, header: bool, mut out: W) -> io::Result<FormatSink<W>> {
        if header {
            format::write_header(&format, &mut out)?;
        }
        Ok(FormatSink {
            lines_of: LineWriter::new(format),
            out,
            lines: Vec::with_capacity(LINES_BUFFER + 1024),
        })
    }

    /// Flushes and hands the writer back.
    pub fn into_inner(mut self) -> io::Result<W> {
        self.out.flush()?;
        Ok(self.out)
    }
}

impl<W: Write> Sink for FormatSink<W> {
    fn write(
        &mut self,
        topology: &Topology,
        window: &ClosedWindow,
        _partial: bool,
    ) -> Result<(), SinkError> {
        self.lines_of.new_window();
        for r in &window.records {
            self.lines_of.append(topology, r, &mut self.lines);
            if self.lines.len() >= LINES_BUFFER {
                self.out.write_all(&self.lines)?;
                self.lines.clear();
            }
        }
        self.out.write_all(&self.lines)?;
        self.lines.clear();
        Ok(())
    }
}

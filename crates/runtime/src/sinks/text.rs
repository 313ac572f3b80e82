//! Records as text: v1, v2, custom fields, JSON lines.
//!
//! A large window's lines are formatted on several threads when the sink
//! is given more than one ([`FormatSink::with_threads`]), a round of
//! records at a time, and written in the window's order: the output is
//! byte for byte one thread's.

use std::io::{self, Write};

use vpcflow_core::Topology;
use vpcflow_core::aggregate::ClosedWindow;
use vpcflow_core::format::{self, Format, LineWriter};
use vpcflow_core::record::FlowRecord;

use crate::driver::{Sink, SinkError};

/// Records as text into `out`.
pub struct FormatSink<W> {
    /// One line writer and its lines per thread (the first this one's),
    /// each buffer handed to `out` whole.
    workers: Vec<(LineWriter, Vec<u8>)>,
    out: W,
}

/// Bytes of lines gathered before they are handed to the writer.
const LINES_BUFFER: usize = 64 * 1024;

/// Records each thread formats per round: enough that starting the
/// threads is a small part of a round, few enough that the rounds' lines
/// (about 100 bytes each) take little memory beside the window.
const ROUND_RECORDS: usize = 16 * 1024;

impl<W: Write> FormatSink<W> {
    /// Writes `format`'s records to `out` (the header first if `header`).
    pub fn new(format: Format, header: bool, mut out: W) -> io::Result<FormatSink<W>> {
        if header {
            format::write_header(&format, &mut out)?;
        }
        Ok(FormatSink {
            workers: vec![(
                LineWriter::new(format),
                Vec::with_capacity(LINES_BUFFER + 1024),
            )],
            out,
        })
    }

    /// Formats windows of more than one round's records on `threads`
    /// threads (this one among them).
    pub fn with_threads(mut self, threads: usize) -> FormatSink<W> {
        let first = self.workers[0].0.clone();
        self.workers
            .resize_with(threads.max(1), || (first.clone(), Vec::new()));
        self
    }

    /// Flushes and hands the writer back.
    pub fn into_inner(mut self) -> io::Result<W> {
        self.out.flush()?;
        Ok(self.out)
    }

    /// One thread's share: `records` as lines, at the end of `lines`.
    fn format(
        (writer, lines): &mut (LineWriter, Vec<u8>),
        topology: &Topology,
        records: &[FlowRecord],
    ) {
        writer.new_window();
        for r in records {
            writer.append(topology, r, lines);
        }
    }
}

impl<W: Write> Sink for FormatSink<W> {
    fn write(
        &mut self,
        topology: &Topology,
        window: &ClosedWindow,
        _partial: bool,
    ) -> Result<(), SinkError> {
        let threads = self.workers.len();
        if threads == 1 || window.records.len() <= ROUND_RECORDS {
            let (writer, lines) = &mut self.workers[0];
            writer.new_window();
            for r in &window.records {
                writer.append(topology, r, lines);
                if lines.len() >= LINES_BUFFER {
                    self.out.write_all(lines)?;
                    lines.clear();
                }
            }
            self.out.write_all(lines)?;
            lines.clear();
            return Ok(());
        }
        for round in window.records.chunks(threads * ROUND_RECORDS) {
            let share = round.len().div_ceil(threads);
            let (mine, others) = self.workers.split_at_mut(1);
            std::thread::scope(|scope| {
                let mut shares = round.chunks(share);
                let first = shares.next().unwrap_or_default();
                for (records, worker) in shares.zip(others.iter_mut()) {
                    scope.spawn(move || Self::format(worker, topology, records));
                }
                Self::format(&mut mine[0], topology, first);
            });
            for (_, lines) in &mut self.workers {
                self.out.write_all(lines)?;
                lines.clear();
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use vpcflow_core::flow::{Action, Direction, FiveTuple};
    use vpcflow_core::record::{FlowFields, RecordBody};
    use vpcflow_core::{Inventory, RuleRef};
    use vpcflow_wire::IpProtocol;

    #[test]
    fn lines_formatted_on_many_threads_are_one_threads_byte_for_byte() {
        let inv = Inventory::from_toml("vpc.toml", include_str!("../../../../examples/vpc.toml"))
            .unwrap();
        let topology = Topology::from_inventory(&inv);
        // Rounds and shares that end mid-port, and a last round part full.
        let n = 3 * ROUND_RECORDS + 1234;
        let records: Vec<FlowRecord> = (0..n)
            .map(|i| FlowRecord {
                flow_log: (i / 7 % topology.flow_logs.len()) as u32,
                port: (i * topology.ports.len() / n) as u32,
                start: 600,
                end: 1200,
                body: match i % 5 {
                    0 => RecordBody::SkipData {
                        packets: i as u64,
                        bytes: 3 * i as u64,
                    },
                    _ => RecordBody::Flow(FlowFields {
                        tuple: FiveTuple {
                            src: std::net::IpAddr::from((i as u32).to_be_bytes()),
                            dst: "2001:db8::7".parse().unwrap(),
                            src_port: i as u16,
                            dst_port: 443,
                            protocol: IpProtocol::TCP,
                            infrastructure: false,
                        },
                        packets: i as u64,
                        bytes: 40 * i as u64,
                        action: Action::Accept,
                        direction: Direction::Egress,
                        tcp_flag: None,
                        rule: RuleRef::NONE,
                        passed: RuleRef::NONE,
                        sampling_rate: 1,
                        tcp_flags: 0,
                    }),
                },
            })
            .collect();
        let window = ClosedWindow {
            start: 600,
            end: 1200,
            records,
            rule_hits: Vec::new(),
        };
        let write = |threads: usize| {
            let mut sink = FormatSink::new(Format::V2, true, Vec::new())
                .unwrap()
                .with_threads(threads);
            sink.write(&topology, &window, false).unwrap();
            sink.write(&topology, &window, false).unwrap();
            sink.into_inner().unwrap()
        };
        let one = write(1);
        assert_eq!(one.iter().filter(|&&b| b == b'\n').count(), 2 * n + 1);
        for threads in [2, 3, 8] {
            assert!(one == write(threads), "{threads} threads");
        }
    }
}

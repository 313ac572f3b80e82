//! Writing classic pcap files (microsecond, little-endian): for generated
//! benchmark captures and test fixtures.

use std::io::{self, Write};

use vpcflow_wire::LinkType;

/// Writes frames to a pcap stream.
pub struct PcapWriter<W: Write> {
    out: W,
    snap_len: u32,
}

impl<W: Write> PcapWriter<W> {
    /// Writes the file header. Frames longer than `snap_len` are cut (their
    /// wire length is kept, as a capture's would be).
    pub fn new(mut out: W, link: u32, snap_len: u32) -> io::Result<PcapWriter<W>> {
        out.write_all(&0xa1b2_c3d4u32.to_le_bytes())?;
        out.write_all(&2u16.to_le_bytes())?;
        out.write_all(&4u16.to_le_bytes())?;
        out.write_all(&[0; 8])?;
        out.write_all(&snap_len.to_le_bytes())?;
        out.write_all(&link.to_le_bytes())?;
        Ok(PcapWriter { out, snap_len })
    }

    /// The pcap link-type number of a [`LinkType`] this crate reads.
    pub fn link_number(link: LinkType) -> u32 {
        match link {
            LinkType::Null => 0,
            LinkType::Ethernet => 1,
            LinkType::Raw => 101,
            LinkType::Loop => 108,
            LinkType::LinuxSll => 113,
            LinkType::Ipv4 => 228,
            LinkType::Ipv6 => 229,
            LinkType::Nflog => 239,
            LinkType::LinuxSll2 => 276,
            LinkType::Unknown(n) => n,
        }
    }

    /// Appends one frame captured at `timestamp_ns` that was `wire_len` long.
    pub fn write(&mut self, timestamp_ns: u64, data: &[u8], wire_len: u32) -> io::Result<()> {
        let cap = data.len().min(self.snap_len as usize);
        let secs = timestamp_ns / 1_000_000_000;
        let micros = (timestamp_ns % 1_000_000_000) / 1000;
        self.out.write_all(&(secs as u32).to_le_bytes())?;
        self.out.write_all(&(micros as u32).to_le_bytes())?;
        self.out.write_all(&(cap as u32).to_le_bytes())?;
        self.out
            .write_all(&wire_len.max(cap as u32).to_le_bytes())?;
        self.out.write_all(&data[..cap])
    }

    /// Flushes and returns the stream.
    pub fn finish(mut self) -> io::Result<W> {
        self.out.flush()?;
        Ok(self.out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::CaptureFile;

    #[test]
    fn round_trip_with_snap_length() {
        let mut w = PcapWriter::new(Vec::new(), 1, 4).unwrap();
        w.write(1_500_000_123_456_000, b"abcdefgh", 8).unwrap();
        w.write(1_500_000_124_000_000, b"xy", 60).unwrap();
        let bytes = w.finish().unwrap();
        let mut c = CaptureFile::from_reader("w.pcap", io::Cursor::new(bytes)).unwrap();
        let f = c.next_frame().unwrap();
        assert_eq!(
            (f.timestamp_ns, f.data, f.wire_len),
            (1_500_000_123_456_000, &b"abcd"[..], 8)
        );
        let f = c.next_frame().unwrap();
        assert_eq!(
            (f.data, f.wire_len, f.link),
            (&b"xy"[..], 60, LinkType::Ethernet)
        );
        assert!(c.next_frame().is_none());
    }
}

//! Legacy pcap (libpcap's format, the one most tools write): records
//! walked in place in one buffer that `read(2)` refills, without a
//! parser per record or a second copy of the bytes.
//!
//! pcap-parser's reader copies every byte into a circular buffer and
//! shifts it as it is consumed, and a block is parsed twice where its kind
//! must be known before it is borrowed; the format here is 24 bytes of
//! header and then 16-byte record headers, so it is read directly.
//! pcapng keeps going through pcap-parser.
//!
//! Guarantees: what pcap-parser's reader gives for the same bytes: every
//! record before a cut, then [`Ending::Truncated`]; a record longer than
//! the buffer (a corrupt length) is [`Ending::Corrupt`]; a file shorter
//! than its header is refused by [`LegacyReader::new`].

use std::io::{self, Read};
use std::ops::Range;

use vpcflow_wire::LinkType;

use pcap_parser::PcapError;

// The messages are pcap-parser's reader's, said once by `describe`, so a
// damaged file is described alike whichever reader met the damage.
use super::{BUFFER, Ending, LINKTYPE_MASK, describe};

/// Bytes of the file header and of each record's header.
const FILE_HEADER: usize = 24;
const RECORD_HEADER: usize = 16;

/// One record: its header's fields and where its bytes lie in the buffer.
#[derive(Debug, Clone)]
pub(super) struct Record {
    pub ts_sec: u32,
    pub ts_frac: u32,
    pub origlen: u32,
    pub data: Range<usize>,
}

/// A legacy pcap stream being read.
pub(super) struct LegacyReader {
    input: Box<dyn Read + Send>,
    buf: Box<[u8]>,
    /// The first byte not yet handed out.
    start: usize,
    /// The end of the bytes read.
    end: usize,
    exhausted: bool,
    big_endian: bool,
    /// The link type of every record.
    pub link: LinkType,
    /// Whether the fractions of seconds are nanoseconds (else microseconds).
    pub nanos: bool,
}

impl LegacyReader {
    /// Reads the file header. `Err` names what is wrong with it.
    pub fn new(input: Box<dyn Read + Send>) -> Result<LegacyReader, String> {
        let mut r = LegacyReader {
            input,
            buf: vec![0; BUFFER].into_boxed_slice(),
            start: 0,
            end: 0,
            exhausted: false,
            big_endian: false,
            link: LinkType::Ethernet,
            nanos: false,
        };
        r.fill(FILE_HEADER)
            .map_err(|e| format!("read error: {e}"))?;
        if r.end < FILE_HEADER {
            return Err(describe(&PcapError::<&[u8]>::Incomplete(
                FILE_HEADER - r.end,
            )));
        }
        let magic = u32::from_le_bytes([r.buf[0], r.buf[1], r.buf[2], r.buf[3]]);
        (r.big_endian, r.nanos) = match magic {
            0xa1b2_c3d4 => (false, false),
            0xa1b2_3c4d => (false, true),
            0xd4c3_b2a1 => (true, false),
            0x4d3c_b2a1 => (true, true),
            _ => return Err(describe(&PcapError::<&[u8]>::HeaderNotRecognized)),
        };
        r.link = LinkType::from_number(r.u32_at(20) & LINKTYPE_MASK);
        r.start = FILE_HEADER;
        Ok(r)
    }

    #[inline]
    fn u32_at(&self, at: usize) -> u32 {
        let mut b = [0; 4];
        b.copy_from_slice(&self.buf[at..at + 4]);
        if self.big_endian {
            u32::from_be_bytes(b)
        } else {
            u32::from_le_bytes(b)
        }
    }

    /// The bytes of `r`, valid until the next call to [`LegacyReader::next`].
    pub fn data(&self, r: &Record) -> &[u8] {
        &self.buf[r.data.clone()]
    }

    /// The next record, or how the file ended.
    pub fn next(&mut self) -> Result<Record, Ending> {
        loop {
            let available = self.end - self.start;
            let mut need = RECORD_HEADER;
            if available >= RECORD_HEADER {
                let caplen = self.u32_at(self.start + 8) as usize;
                need = RECORD_HEADER + caplen;
                if available >= need {
                    let at = self.start;
                    self.start += need;
                    return Ok(Record {
                        ts_sec: self.u32_at(at),
                        ts_frac: self.u32_at(at + 4),
                        origlen: self.u32_at(at + 12),
                        data: at + RECORD_HEADER..at + need,
                    });
                }
            } else if available == 0 && self.exhausted {
                return Err(Ending::Clean);
            }
            if self.exhausted {
                return Err(Ending::Truncated);
            }
            if need > self.buf.len() && available == self.buf.len() {
                // More follows that the record cannot hold (a cut is
                // told apart by reading up to the end first).
                return Err(Ending::Corrupt(describe(
                    &PcapError::<&[u8]>::BufferTooSmall,
                )));
            }
            self.fill(need.min(self.buf.len()))
                .map_err(|e| Ending::Corrupt(format!("read error: {e}")))?;
        }
    }

    /// Moves the unread bytes to the front and reads until `need` of them
    /// are there or the input ends.
    fn fill(&mut self, need: usize) -> io::Result<()> {
        if self.start > 0 {
            self.buf.copy_within(self.start..self.end, 0);
            self.end -= self.start;
            self.start = 0;
        }
        while self.end < need {
            match self.input.read(&mut self.buf[self.end..]) {
                Ok(0) => {
                    self.exhausted = true;
                    break;
                }
                Ok(n) => self.end += n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
        }
        Ok(())
    }
}

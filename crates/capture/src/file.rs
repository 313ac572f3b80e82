//! One capture file.

use std::fs::File;
use std::io::{self, BufRead, BufReader, Read};
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use flate2::read::MultiGzDecoder;
use pcap_parser::pcapng::Block;
use pcap_parser::traits::PcapReaderIterator;
use pcap_parser::{PcapBlockOwned, PcapError, PcapNGReader};
use vpcflow_wire::{Frame, LinkType};

mod legacy;

/// The link type proper; the upper bits of the pcap field carry FCS
/// information (libpcap's `LT_LINKTYPE`).
const LINKTYPE_MASK: u32 = 0x03ff_ffff;

/// Read buffer: must hold the largest block (a 64 KiB packet plus headers).
const BUFFER: usize = 1 << 20;

/// Why a capture file could not be read at all.
#[derive(Debug, thiserror::Error)]
pub enum CaptureError {
    /// The file could not be opened or read.
    #[error("{name}: {source}")]
    Io {
        /// File name.
        name: String,
        /// The I/O error.
        source: io::Error,
    },
    /// The file is empty.
    #[error("{name}: empty file, not a capture")]
    Empty {
        /// File name.
        name: String,
    },
    /// The first bytes are no pcap, pcapng or gzip magic number.
    #[error("{name}: not a pcap or pcapng capture (starts with {magic})")]
    NotACapture {
        /// File name.
        name: String,
        /// The first bytes, in hex.
        magic: String,
    },
    /// The header is recognised but malformed.
    #[error("{name}: bad capture header: {detail}")]
    BadHeader {
        /// File name.
        name: String,
        /// What is wrong.
        detail: String,
    },
}

/// How a file ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Ending {
    /// Not at the end yet.
    Reading,
    /// At a block boundary.
    Clean,
    /// In the middle of a block: the capture was cut.
    Truncated,
    /// A block could not be parsed; the rest of the file was not read.
    Corrupt(String),
}

#[derive(Debug, Clone, Copy)]
struct Interface {
    link: LinkType,
    /// Timestamp units per second.
    units: u64,
    /// Seconds added to every timestamp (`if_tsoffset`).
    offset_secs: i64,
}

/// Counts bytes read from the file, for progress reporting.
struct Counting<R> {
    inner: R,
    count: Arc<AtomicU64>,
}

impl<R: Read> Read for Counting<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.count.fetch_add(n as u64, Ordering::Relaxed);
        Ok(n)
    }
}

/// What the next block is, learnt without keeping a borrow of the reader.
enum Next {
    Packet,
    Skip(usize),
    Eof,
    Refill,
    Cut,
    Corrupt(String),
}

/// How the blocks of a file are read.
enum Blocks {
    /// pcapng, through pcap-parser.
    Ng(Box<PcapNGReader<Box<dyn Read + Send>>>),
    /// Legacy pcap, walked in place.
    Legacy(legacy::LegacyReader),
}

/// A pcap or pcapng file, read frame by frame.
pub struct CaptureFile {
    name: String,
    reader: Blocks,
    interfaces: Vec<Interface>,
    consume: usize,
    last_ts: u64,
    ending: Ending,
    bytes_read: Arc<AtomicU64>,
    size: Option<u64>,
    frames: u64,
}

impl std::fmt::Debug for CaptureFile {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CaptureFile")
            .field("name", &self.name)
            .field("frames", &self.frames)
            .field("ending", &self.ending)
            .finish()
    }
}

fn hex(bytes: &[u8]) -> String {
    bytes
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect::<Vec<_>>()
        .join(" ")
}

/// Checks the first bytes of a capture (at least 4, or all there are):
/// a pcap, pcapng or gzip magic number, else the error naming what was
/// found. For a stream to be refused before the rest of it is read.
pub fn check_head(name: &str, head: &[u8]) -> Result<(), CaptureError> {
    if head.starts_with(&[0x1f, 0x8b]) {
        return Ok(());
    }
    check_magic(name, head)
}

fn is_capture_magic(b: &[u8]) -> bool {
    matches!(
        b,
        [0xd4, 0xc3, 0xb2, 0xa1, ..]
            | [0xa1, 0xb2, 0xc3, 0xd4, ..]
            | [0x4d, 0x3c, 0xb2, 0xa1, ..]
            | [0xa1, 0xb2, 0x3c, 0x4d, ..]
            | [0x0a, 0x0d, 0x0d, 0x0a, ..]
    )
}

impl CaptureFile {
    /// Opens a capture file by path.
    pub fn open(path: &Path) -> Result<CaptureFile, CaptureError> {
        let name = path.display().to_string();
        let file = File::open(path).map_err(|source| CaptureError::Io {
            name: name.clone(),
            source,
        })?;
        let size = file.metadata().ok().map(|m| m.len());
        let mut c = Self::from_reader(&name, file)?;
        c.size = size;
        Ok(c)
    }

    /// Reads a capture from any byte stream; `name` labels errors.
    pub fn from_reader(
        name: &str,
        read: impl Read + Send + 'static,
    ) -> Result<CaptureFile, CaptureError> {
        let io_err = |source| CaptureError::Io {
            name: name.to_string(),
            source,
        };
        let bytes_read = Arc::new(AtomicU64::new(0));
        let mut r = BufReader::with_capacity(
            64 * 1024,
            Counting {
                inner: read,
                count: bytes_read.clone(),
            },
        );
        let head = r.fill_buf().map_err(io_err)?.to_vec();
        let (reader, pcapng): (Box<dyn Read + Send>, bool) = if head.starts_with(&[0x1f, 0x8b]) {
            let mut z = BufReader::with_capacity(64 * 1024, MultiGzDecoder::new(r));
            let inner = z.fill_buf().map_err(io_err)?;
            check_magic(name, inner)?;
            let pcapng = inner.starts_with(PCAPNG_MAGIC);
            (Box::new(z), pcapng)
        } else {
            check_magic(name, &head)?;
            (Box::new(r), head.starts_with(PCAPNG_MAGIC))
        };
        let bad_header = |detail| CaptureError::BadHeader {
            name: name.to_string(),
            detail,
        };
        let reader = if pcapng {
            Blocks::Ng(Box::new(
                PcapNGReader::new(BUFFER, reader).map_err(|e| bad_header(describe(&e)))?,
            ))
        } else {
            Blocks::Legacy(legacy::LegacyReader::new(reader).map_err(bad_header)?)
        };
        Ok(CaptureFile {
            name: name.to_string(),
            reader,
            interfaces: Vec::new(),
            consume: 0,
            last_ts: 0,
            ending: Ending::Reading,
            bytes_read,
            size: None,
            frames: 0,
        })
    }

    /// The file's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// How reading ended (`Reading` until it has).
    pub fn ending(&self) -> &Ending {
        &self.ending
    }

    /// Frames handed out so far.
    pub fn frames(&self) -> u64 {
        self.frames
    }

    /// Bytes read from the underlying file and its size, if known.
    pub fn progress(&self) -> (u64, Option<u64>) {
        (self.bytes_read.load(Ordering::Relaxed), self.size)
    }

    /// The next frame, or `None` at the end (see [`CaptureFile::ending`]).
    pub fn next_frame(&mut self) -> Option<Frame<'_>> {
        if self.ending != Ending::Reading {
            return None;
        }
        if matches!(self.reader, Blocks::Ng(_)) {
            return self.next_pcapng_frame();
        }
        let Blocks::Legacy(r) = &mut self.reader else {
            return None;
        };
        let record = match r.next() {
            Ok(record) => record,
            Err(ending) => {
                self.ending = ending;
                return None;
            }
        };
        let data = r.data(&record);
        let timestamp_ns = legacy_timestamp_ns(record.ts_sec, record.ts_frac, r.nanos);
        self.last_ts = timestamp_ns;
        self.frames += 1;
        Some(Frame {
            timestamp_ns,
            link: r.link,
            data,
            wire_len: record.origlen.max(data.len() as u32),
        })
    }

    /// [`CaptureFile::next_frame`] of a pcapng file.
    fn next_pcapng_frame(&mut self) -> Option<Frame<'_>> {
        let Blocks::Ng(reader) = &mut self.reader else {
            return None;
        };
        loop {
            if self.consume > 0 {
                reader.consume(self.consume);
                self.consume = 0;
            }
            match Self::peek(reader, &mut self.interfaces) {
                Next::Packet => break,
                Next::Skip(n) => self.consume = n,
                Next::Refill => {
                    if let Err(e) = reader.refill() {
                        self.ending = Ending::Corrupt(describe(&e));
                        return None;
                    }
                }
                Next::Eof => {
                    self.ending = Ending::Clean;
                    return None;
                }
                Next::Cut => {
                    self.ending = Ending::Truncated;
                    return None;
                }
                Next::Corrupt(why) => {
                    self.ending = Ending::Corrupt(why);
                    return None;
                }
            }
        }
        // The block is a packet whose interface is known (checked by `peek`);
        // parse it again, now keeping the borrow.
        let (offset, frame) = match reader.next() {
            Ok((offset, PcapBlockOwned::NG(Block::EnhancedPacket(p)))) => {
                let iface = self.interfaces[p.if_id as usize];
                let raw = (u64::from(p.ts_high) << 32) | u64::from(p.ts_low);
                let ns = u128::from(raw) * 1_000_000_000 / u128::from(iface.units);
                let ns = (ns as i128 + i128::from(iface.offset_secs) * 1_000_000_000).max(0);
                let data = &p.data[..(p.caplen as usize).min(p.data.len())];
                (
                    offset,
                    Frame {
                        timestamp_ns: u64::try_from(ns).unwrap_or(u64::MAX),
                        link: iface.link,
                        data,
                        wire_len: p.origlen.max(data.len() as u32),
                    },
                )
            }
            Ok((offset, PcapBlockOwned::NG(Block::SimplePacket(p)))) => {
                let link = self.interfaces[0].link;
                let data = &p.data[..(p.origlen as usize).min(p.data.len())];
                // A simple packet block has no timestamp: it shares the previous one.
                (
                    offset,
                    Frame {
                        timestamp_ns: self.last_ts,
                        link,
                        data,
                        wire_len: p.origlen.max(data.len() as u32),
                    },
                )
            }
            _ => unreachable_block(),
        };
        self.consume = offset;
        self.last_ts = frame.timestamp_ns;
        self.frames += 1;
        Some(frame)
    }

    /// Classifies the next pcapng block, handling the non-packet ones.
    fn peek(
        reader: &mut PcapNGReader<Box<dyn Read + Send>>,
        interfaces: &mut Vec<Interface>,
    ) -> Next {
        match reader.next() {
            Ok((offset, block)) => match block {
                PcapBlockOwned::LegacyHeader(_) | PcapBlockOwned::Legacy(_) => {
                    Next::Corrupt("a legacy pcap block inside a pcapng file".into())
                }
                PcapBlockOwned::NG(Block::SectionHeader(_)) => {
                    interfaces.clear();
                    Next::Skip(offset)
                }
                PcapBlockOwned::NG(Block::InterfaceDescription(idb)) => {
                    let Some(units) = units_per_second(idb.if_tsresol) else {
                        return Next::Corrupt(format!(
                            "interface {} has an unusable timestamp resolution ({})",
                            interfaces.len(),
                            idb.if_tsresol
                        ));
                    };
                    interfaces.push(Interface {
                        link: LinkType::from_number(idb.linktype.0 as u32 & LINKTYPE_MASK),
                        units,
                        offset_secs: idb.if_tsoffset,
                    });
                    Next::Skip(offset)
                }
                PcapBlockOwned::NG(Block::EnhancedPacket(p)) => {
                    if (p.if_id as usize) < interfaces.len() {
                        Next::Packet
                    } else {
                        Next::Corrupt(format!(
                            "a packet names interface {} but the section describes {}",
                            p.if_id,
                            interfaces.len()
                        ))
                    }
                }
                PcapBlockOwned::NG(Block::SimplePacket(_)) => {
                    if interfaces.is_empty() {
                        Next::Corrupt("a simple packet block comes before any interface".into())
                    } else {
                        Next::Packet
                    }
                }
                PcapBlockOwned::NG(_) => Next::Skip(offset),
            },
            Err(PcapError::Eof) => Next::Eof,
            Err(PcapError::Incomplete(_)) => Next::Refill,
            Err(PcapError::UnexpectedEof) => Next::Cut,
            Err(e) => Next::Corrupt(describe(&e)),
        }
    }
}

/// A frame copied out of a capture, for benchmarks and tests that replay
/// frames from memory.
pub type OwnedFrame = (u64, LinkType, Vec<u8>, u32);

impl CaptureFile {
    /// Every frame of the capture at `path`, copied into memory
    /// (timestamp ns, link type, bytes, wire length).
    pub fn read_all(path: &Path) -> Result<Vec<OwnedFrame>, CaptureError> {
        let mut c = CaptureFile::open(path)?;
        let mut v = Vec::new();
        while let Some(f) = c.next_frame() {
            v.push((f.timestamp_ns, f.link, f.data.to_vec(), f.wire_len));
        }
        Ok(v)
    }
}

/// A legacy pcap record's time. A fraction of a second of one second or
/// more is invalid: the seconds are kept rather than the packet jumped
/// into another window.
fn legacy_timestamp_ns(seconds: u32, fraction: u32, nanos: bool) -> u64 {
    let (unit, limit) = if nanos {
        (1, 1_000_000_000)
    } else {
        (1000, 1_000_000)
    };
    let fraction = if fraction < limit {
        u64::from(fraction) * unit
    } else {
        0
    };
    u64::from(seconds) * 1_000_000_000 + fraction
}

/// The first bytes of a pcapng file (a section header block's type).
const PCAPNG_MAGIC: &[u8] = &[0x0a, 0x0d, 0x0d, 0x0a];

#[cold]
fn unreachable_block() -> ! {
    // `peek` saw a packet block at this position and nothing was consumed
    // since, so parsing the same bytes again gives the same packet block.
    unreachable!("capture reader returned a different block on re-parse")
}

/// Timestamp units per second of a pcapng `if_tsresol` value: `10^n`, or
/// `2^n` when the high bit is set. (pcap-parser 0.17's own helper rejects
/// every power-of-two resolution, so it is not used.)
fn units_per_second(tsresol: u8) -> Option<u64> {
    let n = u32::from(tsresol & 0x7f);
    if tsresol & 0x80 == 0 {
        10u64.checked_pow(n)
    } else {
        1u64.checked_shl(n).filter(|_| n < 64)
    }
}

fn check_magic(name: &str, head: &[u8]) -> Result<(), CaptureError> {
    if head.is_empty() {
        return Err(CaptureError::Empty {
            name: name.to_string(),
        });
    }
    if !is_capture_magic(head) {
        return Err(CaptureError::NotACapture {
            name: name.to_string(),
            magic: hex(&head[..head.len().min(4)]),
        });
    }
    Ok(())
}

fn describe<I>(e: &PcapError<I>) -> String {
    match e {
        PcapError::Eof => "end of file".into(),
        PcapError::BufferTooSmall => "a block is larger than 1 MiB (corrupt length field?)".into(),
        PcapError::UnexpectedEof => "the file ends inside a block".into(),
        PcapError::ReadError => "read error".into(),
        PcapError::Incomplete(n) => format!("incomplete block ({n} more bytes needed)"),
        PcapError::HeaderNotRecognized => "header not recognised".into(),
        PcapError::NomError(_, kind) | PcapError::OwnedNomError(_, kind) => {
            format!("malformed block ({kind:?})")
        }
    }
}

#[cfg(test)]
mod tests;

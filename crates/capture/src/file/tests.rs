use std::io::{self, Cursor, Read, Write};

use super::*;

fn pcap(big_endian: bool, nanos: bool, link: u32, packets: &[(u32, u32, &[u8], u32)]) -> Vec<u8> {
    let w32 = |v: u32| {
        if big_endian {
            v.to_be_bytes()
        } else {
            v.to_le_bytes()
        }
    };
    let w16 = |v: u16| {
        if big_endian {
            v.to_be_bytes()
        } else {
            v.to_le_bytes()
        }
    };
    let mut f = Vec::new();
    f.extend_from_slice(&w32(if nanos { 0xa1b23c4d } else { 0xa1b2c3d4 }));
    f.extend_from_slice(&w16(2));
    f.extend_from_slice(&w16(4));
    f.extend_from_slice(&w32(0));
    f.extend_from_slice(&w32(0));
    f.extend_from_slice(&w32(65535));
    f.extend_from_slice(&w32(link));
    for (sec, frac, data, orig) in packets {
        f.extend_from_slice(&w32(*sec));
        f.extend_from_slice(&w32(*frac));
        f.extend_from_slice(&w32(data.len() as u32));
        f.extend_from_slice(&w32(*orig));
        f.extend_from_slice(data);
    }
    f
}

fn block(ty: u32, body: &[u8]) -> Vec<u8> {
    let len = 12 + body.len().div_ceil(4) * 4;
    let mut b = Vec::new();
    b.extend_from_slice(&ty.to_le_bytes());
    b.extend_from_slice(&(len as u32).to_le_bytes());
    b.extend_from_slice(body);
    b.resize(len - 4, 0);
    b.extend_from_slice(&(len as u32).to_le_bytes());
    b
}

fn shb() -> Vec<u8> {
    let mut body = Vec::new();
    body.extend_from_slice(&0x1a2b3c4du32.to_le_bytes());
    body.extend_from_slice(&1u16.to_le_bytes());
    body.extend_from_slice(&0u16.to_le_bytes());
    body.extend_from_slice(&(-1i64).to_le_bytes());
    block(0x0a0d0d0a, &body)
}

fn idb(link: u16, tsresol: Option<u8>) -> Vec<u8> {
    let mut body = Vec::new();
    body.extend_from_slice(&link.to_le_bytes());
    body.extend_from_slice(&0u16.to_le_bytes());
    body.extend_from_slice(&65535u32.to_le_bytes());
    if let Some(r) = tsresol {
        body.extend_from_slice(&9u16.to_le_bytes());
        body.extend_from_slice(&1u16.to_le_bytes());
        body.extend_from_slice(&[r, 0, 0, 0]);
        body.extend_from_slice(&[0, 0, 0, 0]);
    }
    block(1, &body)
}

fn epb(iface: u32, ts: u64, data: &[u8]) -> Vec<u8> {
    let mut body = Vec::new();
    body.extend_from_slice(&iface.to_le_bytes());
    body.extend_from_slice(&((ts >> 32) as u32).to_le_bytes());
    body.extend_from_slice(&(ts as u32).to_le_bytes());
    body.extend_from_slice(&(data.len() as u32).to_le_bytes());
    body.extend_from_slice(&(data.len() as u32).to_le_bytes());
    body.extend_from_slice(data);
    block(6, &body)
}

fn all(c: &mut CaptureFile) -> Vec<(u64, LinkType, Vec<u8>, u32)> {
    let mut v = Vec::new();
    while let Some(f) = c.next_frame() {
        v.push((f.timestamp_ns, f.link, f.data.to_vec(), f.wire_len));
    }
    v
}

fn open(bytes: Vec<u8>) -> Result<CaptureFile, CaptureError> {
    CaptureFile::from_reader("mem.pcap", Cursor::new(bytes))
}

#[test]
fn pcap_microseconds_little_endian_and_nanoseconds_big_endian() {
    let pkts: [(u32, u32, &[u8], u32); 2] = [(100, 5, b"abcd", 60), (101, 7, b"efgh", 4)];
    let mut c = open(pcap(false, false, 1, &pkts)).unwrap();
    let got = all(&mut c);
    assert_eq!(
        got[0],
        (100_000_005_000, LinkType::Ethernet, b"abcd".to_vec(), 60)
    );
    assert_eq!(got[1].0, 101_000_007_000);
    assert_eq!(c.ending(), &Ending::Clean);

    let mut c = open(pcap(true, true, 101, &pkts)).unwrap();
    let got = all(&mut c);
    assert_eq!(got[0].0, 100_000_000_005);
    assert_eq!(got[0].1, LinkType::Raw);
    assert_eq!(got.len(), 2);
}

#[test]
fn pcapng_interfaces_keep_their_own_link_type_and_resolution() {
    let mut f = shb();
    f.extend(idb(1, None)); // Ethernet, microseconds
    f.extend(idb(101, Some(9))); // raw IP, nanoseconds
    f.extend(idb(113, Some(0x80 | 10))); // cooked, 2^-10 s
    f.extend(epb(0, 1_000_000, b"eth"));
    f.extend(epb(1, 2_000_000_000, b"raw"));
    f.extend(epb(2, 3 * 1024, b"sll"));
    let mut c = open(f).unwrap();
    let got = all(&mut c);
    assert_eq!(c.ending(), &Ending::Clean);
    assert_eq!(got[0].0, 1_000_000_000);
    assert_eq!(got[0].1, LinkType::Ethernet);
    assert_eq!(got[1].0, 2_000_000_000);
    assert_eq!(got[1].1, LinkType::Raw);
    assert_eq!(got[2].0, 3_000_000_000);
    assert_eq!(got[2].1, LinkType::LinuxSll);
    assert_eq!(got[2].2, b"sll");
    assert_eq!(c.ending(), &Ending::Clean);
}

#[test]
fn a_packet_of_an_undescribed_interface_is_corrupt_not_a_panic() {
    let mut f = shb();
    f.extend(idb(1, None));
    f.extend(epb(0, 1, b"ok"));
    f.extend(epb(3, 2, b"bad"));
    let mut c = open(f).unwrap();
    assert_eq!(all(&mut c).len(), 1);
    assert!(matches!(c.ending(), Ending::Corrupt(m) if m.contains("interface 3")));
}

#[test]
fn gzip_is_recognised_by_magic_not_name() {
    let plain = pcap(false, false, 1, &[(5, 0, b"xyz", 3)]);
    let mut z = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    z.write_all(&plain).unwrap();
    let mut c = open(z.finish().unwrap()).unwrap();
    assert_eq!(all(&mut c).len(), 1);
}

#[test]
fn truncated_capture_yields_everything_before_the_cut() {
    let mut f = pcap(
        false,
        false,
        1,
        &[(1, 0, &[7; 40], 40), (2, 0, &[8; 40], 40)],
    );
    f.truncate(f.len() - 10);
    let mut c = open(f).unwrap();
    let got = all(&mut c);
    assert_eq!(got.len(), 1);
    assert_eq!(c.ending(), &Ending::Truncated);
}

#[test]
fn not_a_capture_and_empty_are_named() {
    let e = open(b"hello world".to_vec()).unwrap_err().to_string();
    assert_eq!(
        e,
        "mem.pcap: not a pcap or pcapng capture (starts with 68 65 6c 6c)"
    );
    let e = open(Vec::new()).unwrap_err().to_string();
    assert_eq!(e, "mem.pcap: empty file, not a capture");
    let e = CaptureFile::open(Path::new("/nonexistent/x.pcap"))
        .unwrap_err()
        .to_string();
    assert!(e.starts_with("/nonexistent/x.pcap: "), "{e}");
}

#[test]
fn every_shared_capture_opens_or_fails_with_a_named_error() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../../shared/data");
    let Ok(dirs) = std::fs::read_dir(&root) else {
        panic!("shared test data missing at {}", root.display());
    };
    let mut files = 0;
    let mut frames = 0;
    let mut stack: Vec<_> = dirs.flatten().map(|d| d.path()).collect();
    while let Some(p) = stack.pop() {
        if p.is_dir() {
            stack.extend(std::fs::read_dir(&p).unwrap().flatten().map(|d| d.path()));
            continue;
        }
        let name = p.to_string_lossy();
        if !(name.ends_with(".pcap") || name.ends_with(".pcapng") || name.ends_with(".gz")) {
            continue;
        }
        files += 1;
        match CaptureFile::open(&p) {
            Ok(mut c) => {
                while c.next_frame().is_some() {}
                frames += c.frames();
                assert_ne!(c.ending(), &Ending::Reading);
            }
            Err(e) => assert!(e.to_string().starts_with(&*name), "{e}"),
        }
    }
    assert!(files > 150, "found only {files} captures");
    assert!(frames > 80_000, "read only {frames} frames");
}

/// Hands out at most `step` bytes per read, as a pipe or a slow disk may.
struct Trickle {
    bytes: Vec<u8>,
    at: usize,
    step: usize,
}

impl Read for Trickle {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = buf.len().min(self.step).min(self.bytes.len() - self.at);
        buf[..n].copy_from_slice(&self.bytes[self.at..self.at + n]);
        self.at += n;
        Ok(n)
    }
}

#[test]
fn pcap_records_across_reads_and_past_the_buffer_are_read_whole() {
    // Records of every size up to 1,500 bytes, three buffers' worth, so
    // records straddle each refill.
    let payloads: Vec<Vec<u8>> = (0..4_000u32)
        .map(|i| vec![i as u8; (i as usize * 37) % 1_500])
        .collect();
    let pkts: Vec<(u32, u32, &[u8], u32)> = payloads
        .iter()
        .enumerate()
        .map(|(i, p)| (i as u32, 999_999, p.as_slice(), p.len() as u32 + 4))
        .collect();
    let bytes = pcap(true, false, 1, &pkts);
    assert!(bytes.len() > 2 * BUFFER);
    let whole = all(&mut open(bytes.clone()).unwrap());
    assert_eq!(whole.len(), payloads.len());
    for (i, f) in whole.iter().enumerate() {
        assert_eq!(f.0, i as u64 * 1_000_000_000 + 999_999_000);
        assert_eq!(f.2, payloads[i]);
        assert_eq!(f.3, payloads[i].len() as u32 + 4);
    }
    // Four bytes a read at the least: the magic number is checked on
    // the first read.
    for step in [4, 7, 4096] {
        let trickle = Trickle {
            bytes: bytes.clone(),
            at: 0,
            step,
        };
        let mut c = CaptureFile::from_reader("trickle.pcap", trickle).unwrap();
        assert_eq!(all(&mut c), whole, "{step} bytes a read");
        assert_eq!(c.ending(), &Ending::Clean);
    }
}

#[test]
fn a_pcap_record_longer_than_the_buffer_is_corrupt_or_cut() {
    let mut f = pcap(false, false, 1, &[(1, 0, b"ok", 2)]);
    let ok = f.len();
    // A record header claiming 16 MiB, followed by more than a buffer.
    f.extend_from_slice(&1u32.to_le_bytes());
    f.extend_from_slice(&0u32.to_le_bytes());
    f.extend_from_slice(&(16u32 << 20).to_le_bytes());
    f.extend_from_slice(&(16u32 << 20).to_le_bytes());
    f.resize(f.len() + BUFFER + 10, 0);
    let mut c = open(f.clone()).unwrap();
    assert_eq!(all(&mut c).len(), 1);
    assert!(
        matches!(c.ending(), Ending::Corrupt(m) if m.contains("larger than 1 MiB")),
        "{:?}",
        c.ending()
    );
    // The same header with the file ending soon after it: a cut.
    f.truncate(ok + 16 + 100);
    let mut c = open(f).unwrap();
    assert_eq!(all(&mut c).len(), 1);
    assert_eq!(c.ending(), &Ending::Truncated);
}

#[test]
fn a_pcap_header_cut_short_is_named() {
    let f = pcap(false, false, 1, &[]);
    let e = open(f[..20].to_vec()).unwrap_err().to_string();
    assert!(
        e.contains("bad capture header") && e.contains("4 more bytes"),
        "{e}"
    );
}

//! The TPACKET_V3 AF_PACKET ring: the kernel writes packets into blocks of
//! a memory area shared with this process; a block whose status says "user"
//! belongs to the reader until it hands it back by writing "kernel".
//!
//! Guarantees: no packet is copied or allocated for on the way to the
//! callback; a block is handed back only after the callback has returned for
//! each of its packets; a malformed block (offsets outside the block) is
//! handed back without reading past its end.
#![allow(
    unsafe_code,
    reason = "the ring is memory shared with the kernel, read through raw pointers"
)]

use std::io;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, FromRawFd, OwnedFd};
use std::sync::atomic::{AtomicU32, Ordering};

use crate::{LiveError, interface_index};

/// `TPACKET_V3` of `enum tpacket_versions` (libc has the enum, not a constant).
const TPACKET_V3: libc::c_int = 2;
/// `BPF_RET | BPF_K`: a classic BPF "accept this many bytes".
const BPF_RET_K: u16 = 0x06;
/// Header room before a packet's bytes, in the minimum frame size.
const FRAME_SIZE: u32 = 2048;

/// The ring's geometry.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RingConfig {
    /// Bytes kept of each packet: enough for link, IP and transport headers.
    pub snaplen: u32,
    /// Bytes per block (a multiple of the page size).
    pub block_size: u32,
    /// Blocks in the ring.
    pub block_count: u32,
    /// A block that is not full is handed to the reader after this long.
    pub block_timeout_ms: u32,
}

impl Default for RingConfig {
    fn default() -> RingConfig {
        RingConfig {
            // Ethernet + two VLAN tags + IPv6 with extension headers + TCP options.
            snaplen: 256,
            block_size: 1 << 20,
            block_count: 8,
            block_timeout_ms: 50,
        }
    }
}

/// One packet, valid during the callback of [`PacketRing::drain`].
#[derive(Debug)]
pub struct RingPacket<'a> {
    /// Capture time, nanoseconds since the Unix epoch.
    pub timestamp_ns: u64,
    /// The first bytes of the frame (at most the snap length).
    pub data: &'a [u8],
    /// The frame's length on the wire.
    pub wire_len: u32,
    /// The interface sent it (else it received it).
    pub outgoing: bool,
}

/// The kernel's counters since the previous call.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct RingStats {
    /// Packets the filter passed.
    pub packets: u64,
    /// Packets dropped because the ring was full.
    pub drops: u64,
}

/// An AF_PACKET TPACKET_V3 ring bound to one interface.
#[derive(Debug)]
pub struct PacketRing {
    fd: OwnedFd,
    map: *mut u8,
    map_len: usize,
    block_size: usize,
    block_count: usize,
    next_block: usize,
    interface: String,
}

// SAFETY: the mapping is owned by this value alone (no other handle to it
// exists in the process) and the kernel side synchronizes through the block
// status word, so moving the ring to another thread is sound.
unsafe impl Send for PacketRing {}

/// Sets a socket option of `fd` to `value` (its bytes, as the option takes).
pub fn setsockopt<T>(
    fd: &impl AsRawFd,
    level: libc::c_int,
    name: libc::c_int,
    value: &T,
) -> io::Result<()> {
    // SAFETY: `value` points to a live `T` of the size passed, and the kernel
    // only reads it during the call.
    let r = unsafe {
        libc::setsockopt(
            fd.as_raw_fd(),
            level,
            name,
            (value as *const T).cast(),
            size_of::<T>() as libc::socklen_t,
        )
    };
    if r == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}

impl PacketRing {
    /// Opens a ring on interface `interface` (in this network namespace).
    /// Needs CAP_NET_RAW.
    pub fn open(interface: &str, config: RingConfig) -> Result<PacketRing, LiveError> {
        let page = 4096;
        if config.block_size < FRAME_SIZE
            || !config.block_size.is_multiple_of(page)
            || config.block_count == 0
            || config.snaplen < 64
            || config.snaplen > FRAME_SIZE / 2
        {
            return Err(LiveError::Config(format!(
                "block size {} (a multiple of {page}), {} blocks, snap length {} (64..{})",
                config.block_size,
                config.block_count,
                config.snaplen,
                FRAME_SIZE / 2
            )));
        }
        let ifindex = interface_index(interface)?;
        let sys = |what: &'static str| {
            let interface = interface.to_string();
            move |source: io::Error| LiveError::Sys {
                interface,
                what,
                source,
            }
        };
        // Protocol 0: the socket receives nothing until it is bound to the
        // interface, so no other interface's packet lands in the ring.
        // SAFETY: a plain system call with constant arguments.
        let raw = unsafe {
            libc::socket(
                libc::AF_PACKET,
                libc::SOCK_RAW | libc::SOCK_CLOEXEC | libc::SOCK_NONBLOCK,
                0,
            )
        };
        if raw < 0 {
            return Err(sys("socket(AF_PACKET)")(io::Error::last_os_error()));
        }
        // SAFETY: `raw` is a descriptor just created and owned by nobody else.
        let fd = unsafe { OwnedFd::from_raw_fd(raw) };
        setsockopt(&fd, libc::SOL_PACKET, libc::PACKET_VERSION, &TPACKET_V3)
            .map_err(sys("PACKET_VERSION TPACKET_V3"))?;
        let snap = [libc::sock_filter {
            code: BPF_RET_K,
            jt: 0,
            jf: 0,
            k: config.snaplen,
        }];
        let prog = libc::sock_fprog {
            len: 1,
            filter: snap.as_ptr().cast_mut(),
        };
        setsockopt(&fd, libc::SOL_SOCKET, libc::SO_ATTACH_FILTER, &prog)
            .map_err(sys("SO_ATTACH_FILTER (snap length)"))?;
        let frames_per_block = config.block_size / FRAME_SIZE;
        let req = libc::tpacket_req3 {
            tp_block_size: config.block_size,
            tp_block_nr: config.block_count,
            tp_frame_size: FRAME_SIZE,
            tp_frame_nr: frames_per_block * config.block_count,
            tp_retire_blk_tov: config.block_timeout_ms,
            tp_sizeof_priv: 0,
            tp_feature_req_word: 0,
        };
        setsockopt(&fd, libc::SOL_PACKET, libc::PACKET_RX_RING, &req)
            .map_err(sys("PACKET_RX_RING"))?;
        let map_len = config.block_size as usize * config.block_count as usize;
        // SAFETY: maps the ring the kernel just allocated for this socket;
        // the result is checked before use and unmapped in `drop`.
        let map = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                map_len,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_SHARED,
                fd.as_raw_fd(),
                0,
            )
        };
        if map == libc::MAP_FAILED {
            return Err(sys("mmap of the ring")(io::Error::last_os_error()));
        }
        let ring = PacketRing {
            fd,
            map: map.cast(),
            map_len,
            block_size: config.block_size as usize,
            block_count: config.block_count as usize,
            next_block: 0,
            interface: interface.to_string(),
        };
        // SAFETY: sockaddr_ll is plain data; all-zero is a valid value.
        let mut addr: libc::sockaddr_ll = unsafe { std::mem::zeroed() };
        addr.sll_family = libc::AF_PACKET as u16;
        addr.sll_protocol = (libc::ETH_P_ALL as u16).to_be();
        addr.sll_ifindex = ifindex;
        // SAFETY: `addr` is a valid sockaddr_ll of the length passed.
        let r = unsafe {
            libc::bind(
                ring.fd.as_raw_fd(),
                (&addr as *const libc::sockaddr_ll).cast(),
                size_of::<libc::sockaddr_ll>() as libc::socklen_t,
            )
        };
        if r != 0 {
            return Err(sys("bind")(io::Error::last_os_error()));
        }
        Ok(ring)
    }

    /// The interface it captures on.
    pub fn interface(&self) -> &str {
        &self.interface
    }

    /// Hands every packet of every block the kernel has filled to `f`, in
    /// order, then gives the blocks back. Returns the packets handed over.
    /// Never blocks.
    pub fn drain(&mut self, mut f: impl FnMut(&RingPacket<'_>)) -> usize {
        let mut n = 0;
        // At most one lap, so a kernel that keeps filling cannot starve the caller.
        for _ in 0..self.block_count {
            // SAFETY: `next_block < block_count`, so the block lies inside the
            // mapping, which lives as long as `self`.
            let block = unsafe { self.map.add(self.next_block * self.block_size) };
            // SAFETY: block_status is the first u32 of the block header, 8-byte
            // aligned (blocks start on page boundaries), shared with the kernel,
            // which writes it; reading it atomically with Acquire orders the
            // reads of the packets after it.
            let status = unsafe { &*block.add(8).cast::<AtomicU32>() };
            if status.load(Ordering::Acquire) & libc::TP_STATUS_USER == 0 {
                break;
            }
            // SAFETY: the block belongs to us while its status says "user";
            // the header is plain data at the block's start.
            let desc = unsafe { std::ptr::read(block.cast::<libc::tpacket_block_desc>()) };
            // SAFETY: version 3 blocks carry the `bh1` header.
            let bh1 = unsafe { desc.hdr.bh1 };
            let mut off = bh1.offset_to_first_pkt as usize;
            for _ in 0..bh1.num_pkts {
                if off + size_of::<libc::tpacket3_hdr>() > self.block_size {
                    break;
                }
                // SAFETY: checked above that the header lies inside the block.
                let hdr = unsafe {
                    std::ptr::read_unaligned(block.add(off).cast::<libc::tpacket3_hdr>())
                };
                let sll_at = off + libc::TPACKET3_HDRLEN - size_of::<libc::sockaddr_ll>();
                let data_at = off + hdr.tp_mac as usize;
                let len = hdr.tp_snaplen as usize;
                if data_at + len > self.block_size
                    || sll_at + size_of::<libc::sockaddr_ll>() > self.block_size
                {
                    break;
                }
                // SAFETY: the sockaddr_ll after the header lies inside the block.
                let sll = unsafe {
                    std::ptr::read_unaligned(block.add(sll_at).cast::<libc::sockaddr_ll>())
                };
                // SAFETY: checked above that the packet's bytes lie inside the
                // block, which stays ours until the status is written back below.
                let data = unsafe { std::slice::from_raw_parts(block.add(data_at), len) };
                f(&RingPacket {
                    timestamp_ns: u64::from(hdr.tp_sec) * 1_000_000_000 + u64::from(hdr.tp_nsec),
                    data,
                    wire_len: hdr.tp_len,
                    outgoing: sll.sll_pkttype == libc::PACKET_OUTGOING,
                });
                n += 1;
                if hdr.tp_next_offset == 0 {
                    break;
                }
                off += hdr.tp_next_offset as usize;
            }
            status.store(libc::TP_STATUS_KERNEL, Ordering::Release);
            self.next_block = (self.next_block + 1) % self.block_count;
        }
        n
    }

    /// The kernel's packet and drop counters since the previous call.
    pub fn take_stats(&mut self) -> Result<RingStats, LiveError> {
        let mut s = libc::tpacket_stats_v3 {
            tp_packets: 0,
            tp_drops: 0,
            tp_freeze_q_cnt: 0,
        };
        let mut len = size_of::<libc::tpacket_stats_v3>() as libc::socklen_t;
        // SAFETY: `s` is a writable tpacket_stats_v3 of the length passed.
        let r = unsafe {
            libc::getsockopt(
                self.fd.as_raw_fd(),
                libc::SOL_PACKET,
                libc::PACKET_STATISTICS,
                (&mut s as *mut libc::tpacket_stats_v3).cast(),
                &mut len,
            )
        };
        if r != 0 {
            return Err(LiveError::Sys {
                interface: self.interface.clone(),
                what: "PACKET_STATISTICS",
                source: io::Error::last_os_error(),
            });
        }
        Ok(RingStats {
            packets: u64::from(s.tp_packets),
            drops: u64::from(s.tp_drops),
        })
    }
}

impl AsFd for PacketRing {
    fn as_fd(&self) -> BorrowedFd<'_> {
        self.fd.as_fd()
    }
}

impl Drop for PacketRing {
    fn drop(&mut self) {
        // SAFETY: unmaps exactly the mapping made in `open`; no slice into it
        // outlives `drain`, which borrows `self`.
        unsafe {
            libc::munmap(self.map.cast(), self.map_len);
        }
    }
}

/// Waits until one of `rings` has a block to read, or `timeout_ms` passes.
/// `fds` is scratch space, reused between calls.
pub fn wait_readable<'a>(
    rings: impl IntoIterator<Item = &'a PacketRing>,
    fds: &mut Vec<libc::pollfd>,
    timeout_ms: i32,
) -> io::Result<()> {
    fds.clear();
    fds.extend(rings.into_iter().map(|r| libc::pollfd {
        fd: r.fd.as_raw_fd(),
        events: libc::POLLIN | libc::POLLERR,
        revents: 0,
    }));
    if fds.is_empty() {
        std::thread::sleep(std::time::Duration::from_millis(timeout_ms.max(0) as u64));
        return Ok(());
    }
    // SAFETY: `fds` holds `fds.len()` initialized pollfd values.
    let r = unsafe { libc::poll(fds.as_mut_ptr(), fds.len() as libc::nfds_t, timeout_ms) };
    if r < 0 {
        let e = io::Error::last_os_error();
        if e.kind() != io::ErrorKind::Interrupted {
            return Err(e);
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bad_geometry_is_refused_before_any_system_call() {
        let e = PacketRing::open(
            "lo",
            RingConfig {
                block_size: 1000,
                ..RingConfig::default()
            },
        )
        .unwrap_err();
        assert!(matches!(e, LiveError::Config(_)), "{e}");
    }

    /// Needs CAP_NET_RAW: `scripts/test.sh` runs it as root.
    #[test]
    #[ignore = "needs root (CAP_NET_RAW): scripts/test.sh runs it"]
    fn loopback_packets_come_through_the_ring_cut_to_the_snap_length() {
        let mut ring = PacketRing::open("lo", RingConfig::default()).expect("root needed");
        let sock = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
        let to = sock.local_addr().unwrap();
        let payload = [7u8; 1000];
        for _ in 0..5 {
            sock.send_to(&payload, to).unwrap();
        }
        let mut fds = Vec::new();
        let mut seen = Vec::new();
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(3);
        while seen.len() < 5 && std::time::Instant::now() < deadline {
            wait_readable([&ring], &mut fds, 100).unwrap();
            ring.drain(|p| {
                // Only our datagrams: UDP to our port.
                if p.data.len() >= 38
                    && p.data[23] == 17
                    && p.data[36..38] == to.port().to_be_bytes()
                {
                    seen.push((p.data.len(), p.wire_len));
                }
            });
        }
        // Loopback shows each datagram once (as outgoing, or as incoming).
        assert!(seen.len() >= 5, "{seen:?}");
        assert!(
            seen.iter()
                .all(|&(len, wire)| len == 256 && wire == 14 + 20 + 8 + 1000),
            "{seen:?}"
        );
        let stats = ring.take_stats().unwrap();
        assert!(stats.packets >= 5 && stats.drops == 0, "{stats:?}");
    }
}

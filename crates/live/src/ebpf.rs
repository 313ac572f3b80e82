//! The eBPF source: a TC classifier (`bpf/flows.bpf.c`) on each monitored
//! port's interface counts packets per flow in the kernel; user space reads
//! the counters, never the packets.
//!
//! Guarantees:
//! - the program only reads packets and always lets them continue
//!   (`TC_ACT_UNSPEC`): no drop, delay or change;
//! - [`FlowCounter::collect`] flips the program to the other of two flow
//!   tables, waits for programs still running on the old one, then drains
//!   it: every packet is in exactly one collection;
//! - packets that found the table full come back as [`KernelLoss`] for
//!   their interface (they become SKIPDATA);
//! - kernel memory is fixed at load time (`max_flows` per table, two
//!   tables, preallocated).
//!
//! The filters are attached with netlink (clsact qdisc, direct action), so
//! they work on any kernel since 4.x. [`FlowCounter`] detaches them when
//! dropped; the clsact qdisc itself stays (empty, it does nothing) because
//! other tools may share it. A killed agent leaves its filters counting
//! into tables nobody reads, until the next agent replaces them.

#![allow(unsafe_code)] // the generated skeleton; no hand-written unsafe here

use std::mem::{MaybeUninit, offset_of};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::os::fd::AsFd;
use std::time::Duration;

use libbpf_rs::skel::{OpenSkel, SkelBuilder};
use libbpf_rs::{MapCore, MapFlags, MapMut, TC_EGRESS, TC_INGRESS, TcHook, TcHookBuilder};

use crate::LiveError;

#[allow(clippy::all, missing_docs, unreachable_pub, unsafe_op_in_unsafe_fn)]
#[allow(clippy::undocumented_unsafe_blocks)]
mod skel {
    include!(concat!(env!("OUT_DIR"), "/flows.skel.rs"));
}
use skel::types::{flow_counts, flow_key, lost_counts};
use skel::{FlowsSkel, FlowsSkelBuilder};

/// Our filters' handle and priority on the clsact hooks: a fixed pair, so
/// a restarted agent replaces the filters of one that was killed.
const FILTER_HANDLE: u32 = 0x7f10;
const FILTER_PRIORITY: u32 = 1;

/// How long after flipping the generation the old table may still see
/// updates: a TC program runs for microseconds, with preemption off.
const GENERATION_GRACE: Duration = Duration::from_millis(5);

/// The eBPF source's settings.
#[derive(Debug, Clone, Copy)]
pub struct EbpfConfig {
    /// Flows each of the two kernel tables holds (between two collections).
    pub max_flows: u32,
}

impl Default for EbpfConfig {
    fn default() -> Self {
        EbpfConfig { max_flows: 65_536 }
    }
}

/// A flow's counters since the last collection, summed over CPUs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct KernelFlow {
    /// The interface it crossed.
    pub ifindex: u32,
    /// Seen by the interface's egress hook (else its ingress hook).
    pub egress: bool,
    /// Source address.
    pub src: IpAddr,
    /// Destination address.
    pub dst: IpAddr,
    /// Source port (0 without ports).
    pub src_port: u16,
    /// Destination port.
    pub dst_port: u16,
    /// IANA protocol number.
    pub protocol: u8,
    /// Packets.
    pub packets: u64,
    /// Layer-3 bytes.
    pub bytes: u64,
    /// Unix time of the first packet, ns.
    pub first_ns: u64,
    /// Unix time of the last packet, ns.
    pub last_ns: u64,
    /// OR of the TCP flags.
    pub flags_any: u8,
    /// AND of the TCP flags.
    pub flags_all: u8,
}

/// Packets an interface's program could not count (table full).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct KernelLoss {
    /// The interface.
    pub ifindex: u32,
    /// Packets.
    pub packets: u64,
    /// Their layer-3 bytes.
    pub bytes: u64,
}

struct Attached {
    interface: String,
    ifindex: i32,
    ingress: TcHook,
    egress: TcHook,
}

/// The loaded program, its tables and the interfaces it is attached to.
pub struct FlowCounter {
    skel: FlowsSkel<'static>,
    attached: Vec<Attached>,
    generation: u32,
}

impl std::fmt::Debug for FlowCounter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FlowCounter")
            .field("interfaces", &self.interfaces().collect::<Vec<_>>())
            .field("generation", &self.generation)
            .finish()
    }
}

fn bpf_error(what: &'static str, interface: &str, e: libbpf_rs::Error) -> LiveError {
    LiveError::Sys {
        interface: interface.to_string(),
        what,
        source: std::io::Error::other(e.to_string()),
    }
}

impl FlowCounter {
    /// Loads the program and creates its tables (needs CAP_BPF and
    /// CAP_NET_ADMIN, i.e. root).
    pub fn load(config: EbpfConfig) -> Result<FlowCounter, LiveError> {
        if config.max_flows == 0 {
            return Err(LiveError::Config(
                "the flow table needs at least one entry".into(),
            ));
        }
        // The skeleton borrows its object for as long as it lives; the
        // counter lives as long as the agent, so the object does too (one
        // small allocation per load).
        let object: &'static mut MaybeUninit<libbpf_rs::OpenObject> =
            Box::leak(Box::new(MaybeUninit::uninit()));
        let mut open = FlowsSkelBuilder::default()
            .open(object)
            .map_err(|e| bpf_error("opening the eBPF object", "-", e))?;
        for map in [&mut open.maps.flows_0, &mut open.maps.flows_1] {
            map.set_max_entries(config.max_flows)
                .map_err(|e| bpf_error("sizing the flow tables", "-", e))?;
        }
        let skel = open.load().map_err(|e| {
            bpf_error(
                "loading the eBPF program (root, and a kernel with BPF and BTF, are needed)",
                "-",
                e,
            )
        })?;
        Ok(FlowCounter {
            skel,
            attached: Vec::new(),
            generation: 0,
        })
    }

    /// The interfaces counted, by name.
    pub fn interfaces(&self) -> impl Iterator<Item = &str> {
        self.attached.iter().map(|a| a.interface.as_str())
    }

    /// Counts `interface`'s traffic from now on, at ingress and egress.
    pub fn attach(&mut self, interface: &str) -> Result<u32, LiveError> {
        let ifindex = crate::interface_index(interface)?;
        if let Some(a) = self.attached.iter().find(|a| a.interface == interface) {
            return Ok(a.ifindex as u32);
        }
        let fail = |what, e| bpf_error(what, interface, e);
        let mut hooks = [TC_INGRESS, TC_EGRESS].map(|point| {
            let prog = if point == TC_INGRESS {
                &self.skel.progs.count_ingress
            } else {
                &self.skel.progs.count_egress
            };
            TcHookBuilder::new(prog.as_fd())
                .ifindex(ifindex)
                .replace(true)
                .handle(FILTER_HANDLE)
                .priority(FILTER_PRIORITY)
                .hook(point)
        });
        hooks[0]
            .create()
            .map_err(|e| fail("creating the clsact qdisc", e))?;
        hooks[0]
            .attach()
            .map_err(|e| fail("attaching the ingress filter", e))?;
        if let Err(e) = hooks[1].attach() {
            let _ = hooks[0].detach();
            return Err(fail("attaching the egress filter", e));
        }
        self.attached.push(Attached {
            interface: interface.to_string(),
            ifindex,
            ingress: hooks[0],
            egress: hooks[1],
        });
        Ok(ifindex as u32)
    }

    /// Stops counting `interface` (if it still exists; a deleted interface
    /// took its filters with it).
    pub fn detach(&mut self, interface: &str) {
        if let Some(i) = self.attached.iter().position(|a| a.interface == interface) {
            let mut a = self.attached.remove(i);
            let _ = a.ingress.detach();
            let _ = a.egress.detach();
        }
    }

    /// Takes every flow and loss counted since the last call (appended to
    /// `flows` and `losses`, in no particular order).
    pub fn collect(
        &mut self,
        flows: &mut Vec<KernelFlow>,
        losses: &mut Vec<KernelLoss>,
    ) -> Result<(), LiveError> {
        let old = self.generation & 1;
        self.generation = self.generation.wrapping_add(1);
        let maps = &self.skel.maps;
        maps.bss
            .update(
                &0u32.to_ne_bytes(),
                &self.generation.to_ne_bytes(),
                MapFlags::ANY,
            )
            .map_err(|e| bpf_error("switching flow tables", "-", e))?;
        std::thread::sleep(GENERATION_GRACE);
        let (table, lost) = if old == 0 {
            (&maps.flows_0, &maps.lost_0)
        } else {
            (&maps.flows_1, &maps.lost_1)
        };
        let offset = monotonic_to_unix_ns();
        drain(table, |key, values| {
            if let Some(f) = kernel_flow(key, values, offset) {
                flows.push(f);
            }
        })?;
        drain(lost, |key, values| {
            let ifindex = u32::from_ne_bytes(key[..4].try_into().unwrap_or_default());
            let mut l = KernelLoss {
                ifindex,
                packets: 0,
                bytes: 0,
            };
            for v in values {
                l.packets += u64_at(v, offset_of!(lost_counts, packets));
                l.bytes += u64_at(v, offset_of!(lost_counts, bytes));
            }
            if l.packets > 0 {
                losses.push(l);
            }
        })?;
        Ok(())
    }
}

impl Drop for FlowCounter {
    fn drop(&mut self) {
        for mut a in self.attached.drain(..) {
            let _ = a.ingress.detach();
            let _ = a.egress.detach();
        }
    }
}

/// Reads and deletes every entry of a per-CPU table nobody writes to now.
fn drain(map: &MapMut<'_>, mut each: impl FnMut(&[u8], &[Vec<u8>])) -> Result<(), LiveError> {
    // Deleting while walking restarts the walk: take the keys first.
    let keys: Vec<Vec<u8>> = map.keys().collect();
    for key in &keys {
        match map.lookup_percpu(key, MapFlags::ANY) {
            Ok(Some(values)) => each(key, &values),
            Ok(None) => {}
            Err(e) => return Err(bpf_error("reading a flow table", "-", e)),
        }
        map.delete(key)
            .map_err(|e| bpf_error("clearing a flow table", "-", e))?;
    }
    Ok(())
}

fn u64_at(b: &[u8], at: usize) -> u64 {
    b.get(at..at + 8)
        .and_then(|s| s.try_into().ok())
        .map_or(0, u64::from_ne_bytes)
}

fn u16_at(b: &[u8], at: usize) -> u16 {
    b.get(at..at + 2)
        .and_then(|s| s.try_into().ok())
        .map_or(0, u16::from_ne_bytes)
}

fn address(bytes: &[u8], family: u8) -> Option<IpAddr> {
    let a: [u8; 16] = bytes.try_into().ok()?;
    match family {
        4 => Some(IpAddr::V4(Ipv4Addr::new(a[0], a[1], a[2], a[3]))),
        6 => Some(IpAddr::V6(Ipv6Addr::from(a))),
        _ => None,
    }
}

/// A table entry as a flow: the key's fields at the offsets of the shared
/// `flow_key`, the CPUs' counters summed (a CPU with 0 packets never saw it).
fn kernel_flow(key: &[u8], values: &[Vec<u8>], unix_offset: i128) -> Option<KernelFlow> {
    if key.len() < size_of::<flow_key>() {
        return None;
    }
    let family = key[offset_of!(flow_key, family)];
    let src = offset_of!(flow_key, src);
    let dst = offset_of!(flow_key, dst);
    let mut f = KernelFlow {
        ifindex: u32::from_ne_bytes(key[offset_of!(flow_key, ifindex)..][..4].try_into().ok()?),
        egress: key[offset_of!(flow_key, egress)] != 0,
        src: address(&key[src..src + 16], family)?,
        dst: address(&key[dst..dst + 16], family)?,
        src_port: u16_at(key, offset_of!(flow_key, src_port)),
        dst_port: u16_at(key, offset_of!(flow_key, dst_port)),
        protocol: key[offset_of!(flow_key, protocol)],
        packets: 0,
        bytes: 0,
        first_ns: u64::MAX,
        last_ns: 0,
        flags_any: 0,
        flags_all: 0xff,
    };
    for v in values {
        let packets = u64_at(v, offset_of!(flow_counts, packets));
        if packets == 0 {
            continue;
        }
        f.packets += packets;
        f.bytes += u64_at(v, offset_of!(flow_counts, bytes));
        f.first_ns = f.first_ns.min(u64_at(v, offset_of!(flow_counts, first_ns)));
        f.last_ns = f.last_ns.max(u64_at(v, offset_of!(flow_counts, last_ns)));
        f.flags_any |= v.get(offset_of!(flow_counts, flags_any)).copied()?;
        f.flags_all &= v.get(offset_of!(flow_counts, flags_all)).copied()?;
    }
    if f.packets == 0 {
        return None;
    }
    let unix = |t: u64| (i128::from(t) + unix_offset).clamp(0, i128::from(u64::MAX)) as u64;
    f.first_ns = unix(f.first_ns);
    f.last_ns = unix(f.last_ns);
    Some(f)
}

/// Unix time minus the monotonic clock the program stamps packets with.
fn monotonic_to_unix_ns() -> i128 {
    use rustix::time::{ClockId, clock_gettime};
    let ns =
        |t: rustix::time::Timespec| i128::from(t.tv_sec) * 1_000_000_000 + i128::from(t.tv_nsec);
    let before = ns(clock_gettime(ClockId::Monotonic));
    let real = ns(clock_gettime(ClockId::Realtime));
    let after = ns(clock_gettime(ClockId::Monotonic));
    real - (before + after) / 2
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(ifindex: u32, family: u8) -> Vec<u8> {
        let mut k = flow_key {
            ifindex,
            src_port: 40000,
            dst_port: 5000,
            protocol: 17,
            family,
            egress: 1,
            ..flow_key::default()
        };
        k.src[..4].copy_from_slice(&[10, 77, 1, 10]);
        k.dst[..4].copy_from_slice(&[10, 77, 2, 20]);
        let mut b = vec![0u8; size_of::<flow_key>()];
        b[offset_of!(flow_key, src)..][..16].copy_from_slice(&k.src);
        b[offset_of!(flow_key, dst)..][..16].copy_from_slice(&k.dst);
        b[offset_of!(flow_key, ifindex)..][..4].copy_from_slice(&k.ifindex.to_ne_bytes());
        b[offset_of!(flow_key, src_port)..][..2].copy_from_slice(&k.src_port.to_ne_bytes());
        b[offset_of!(flow_key, dst_port)..][..2].copy_from_slice(&k.dst_port.to_ne_bytes());
        b[offset_of!(flow_key, protocol)] = k.protocol;
        b[offset_of!(flow_key, family)] = k.family;
        b[offset_of!(flow_key, egress)] = k.egress;
        b
    }

    fn counts(packets: u64, bytes: u64, first: u64, any: u8, all: u8) -> Vec<u8> {
        let mut v = vec![0u8; size_of::<flow_counts>()];
        let last = first + packets * 10;
        v[offset_of!(flow_counts, last_ns)..][..8].copy_from_slice(&last.to_ne_bytes());
        v[offset_of!(flow_counts, packets)..][..8].copy_from_slice(&packets.to_ne_bytes());
        v[offset_of!(flow_counts, bytes)..][..8].copy_from_slice(&bytes.to_ne_bytes());
        v[offset_of!(flow_counts, first_ns)..][..8].copy_from_slice(&first.to_ne_bytes());
        v[offset_of!(flow_counts, flags_any)] = any;
        v[offset_of!(flow_counts, flags_all)] = all;
        v
    }

    #[test]
    fn per_cpu_counters_sum_and_idle_cpus_do_not_count() {
        let values = [
            counts(3, 300, 2_000, 0x12, 0x10),
            counts(0, 0, 0, 0, 0), // this CPU never saw the flow
            counts(2, 120, 1_000, 0x11, 0x11),
        ];
        let f = kernel_flow(&key(7, 4), &values, 5_000).unwrap();
        assert_eq!(f.ifindex, 7);
        assert!(f.egress);
        assert_eq!(f.src, "10.77.1.10".parse::<IpAddr>().unwrap());
        assert_eq!(f.dst, "10.77.2.20".parse::<IpAddr>().unwrap());
        assert_eq!((f.src_port, f.dst_port, f.protocol), (40000, 5000, 17));
        assert_eq!((f.packets, f.bytes), (5, 420));
        assert_eq!(
            f.first_ns, 6_000,
            "earliest CPU's first packet, on the Unix clock"
        );
        assert_eq!((f.flags_any, f.flags_all), (0x13, 0x10));
    }

    #[test]
    fn entries_without_packets_or_with_a_bad_family_are_no_flows() {
        assert_eq!(kernel_flow(&key(1, 4), &[counts(0, 0, 0, 0, 0)], 0), None);
        assert_eq!(kernel_flow(&key(1, 9), &[counts(1, 60, 0, 0, 0)], 0), None);
        assert_eq!(kernel_flow(&[0u8; 3], &[counts(1, 60, 0, 0, 0)], 0), None);
    }

    #[test]
    fn the_monotonic_offset_is_about_the_boot_time() {
        let off = monotonic_to_unix_ns();
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_nanos() as i128;
        assert!(off > 0 && off < now, "{off}");
    }

    /// A network namespace of the test's own, entered by the calling thread
    /// only (so the flows counted on its `lo` are the test's alone), deleted
    /// when dropped.
    struct PrivateNetns(String);

    impl PrivateNetns {
        fn enter(tag: &str) -> PrivateNetns {
            let name = format!("vfl-{tag}-{}", std::process::id());
            let run = |args: &[&str]| {
                let s = std::process::Command::new("ip")
                    .args(args)
                    .status()
                    .unwrap();
                assert!(s.success(), "ip {args:?}");
            };
            let _ = std::process::Command::new("ip")
                .args(["netns", "del", &name])
                .stderr(std::process::Stdio::null())
                .status();
            run(&["netns", "add", &name]);
            run(&["-n", &name, "link", "set", "lo", "up"]);
            let ns = std::fs::File::open(format!("/var/run/netns/{name}")).unwrap();
            rustix::thread::move_into_link_name_space(
                ns.as_fd(),
                Some(rustix::thread::LinkNameSpaceType::Network),
            )
            .unwrap();
            PrivateNetns(name)
        }
    }

    impl Drop for PrivateNetns {
        fn drop(&mut self) {
            let _ = std::process::Command::new("ip")
                .args(["netns", "del", &self.0])
                .status();
        }
    }

    fn as_root() {
        assert!(
            rustix::process::geteuid().is_root(),
            "the eBPF tests need root (CAP_BPF, CAP_NET_ADMIN)"
        );
    }

    #[test]
    #[ignore = "needs root and a kernel with BPF: scripts/test.sh runs it as root"]
    fn datagrams_on_loopback_are_counted_exactly_at_both_hooks() {
        as_root();
        let _ns = PrivateNetns::enter("count");
        let mut counter = FlowCounter::load(EbpfConfig::default()).unwrap();
        let ifindex = counter.attach("lo").unwrap();
        let rx = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
        let tx = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
        let to = rx.local_addr().unwrap();
        for _ in 0..20 {
            tx.send_to(&[7u8; 100], to).unwrap();
        }
        let mut buf = [0u8; 200];
        for _ in 0..20 {
            assert_eq!(rx.recv(&mut buf).unwrap(), 100);
        }
        let (mut flows, mut losses) = (Vec::new(), Vec::new());
        counter.collect(&mut flows, &mut losses).unwrap();
        assert!(losses.is_empty(), "{losses:?}");
        assert_eq!(flows.len(), 2, "one flow per hook: {flows:?}");
        for f in &flows {
            assert_eq!(f.ifindex, ifindex);
            assert_eq!(f.src_port, tx.local_addr().unwrap().port());
            assert_eq!(f.dst_port, to.port());
            assert_eq!((f.protocol, f.packets, f.bytes), (17, 20, 20 * 128));
        }
        assert!(flows.iter().any(|f| f.egress) && flows.iter().any(|f| !f.egress));
        // The next collection has only what came after this one.
        tx.send_to(&[1u8; 10], to).unwrap();
        rx.recv(&mut buf).unwrap();
        flows.clear();
        counter.collect(&mut flows, &mut losses).unwrap();
        assert_eq!(
            flows
                .iter()
                .map(|f| (f.packets, f.bytes))
                .collect::<Vec<_>>(),
            [(1, 38), (1, 38)]
        );
        counter.detach("lo");
        tx.send_to(&[1u8; 10], to).unwrap();
        rx.recv(&mut buf).unwrap();
        flows.clear();
        counter.collect(&mut flows, &mut losses).unwrap();
        assert!(flows.is_empty(), "detached, yet counted: {flows:?}");
    }

    #[test]
    #[ignore = "needs root and a kernel with BPF: scripts/test.sh runs it as root"]
    fn later_fragments_count_in_the_flow_of_their_first() {
        as_root();
        let ns = PrivateNetns::enter("frag");
        let s = std::process::Command::new("ip")
            .args(["-n", &ns.0, "link", "set", "lo", "mtu", "1500"])
            .status()
            .unwrap();
        assert!(s.success());
        let mut counter = FlowCounter::load(EbpfConfig::default()).unwrap();
        counter.attach("lo").unwrap();
        let rx = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
        let tx = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
        // 3000 bytes of payload at an MTU of 1500: three IPv4 fragments
        // (1480 + 1480 + 48 bytes of UDP data, each behind 20 bytes of IP).
        tx.send_to(&[5u8; 3000], rx.local_addr().unwrap()).unwrap();
        let mut buf = [0u8; 4000];
        assert_eq!(rx.recv(&mut buf).unwrap(), 3000);
        let (mut flows, mut losses) = (Vec::new(), Vec::new());
        counter.collect(&mut flows, &mut losses).unwrap();
        assert_eq!(flows.len(), 2, "{flows:?}");
        for f in &flows {
            assert_eq!(f.dst_port, rx.local_addr().unwrap().port(), "{f:?}");
            assert_eq!((f.packets, f.bytes), (3, 3008 + 3 * 20), "{f:?}");
        }
    }

    #[test]
    #[ignore = "needs root and a kernel with BPF: scripts/test.sh runs it as root"]
    fn a_full_table_counts_what_it_could_not_hold_as_lost() {
        as_root();
        let _ns = PrivateNetns::enter("flood");
        let mut counter = FlowCounter::load(EbpfConfig { max_flows: 16 }).unwrap();
        counter.attach("lo").unwrap();
        let rx = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
        let to = rx.local_addr().unwrap();
        // 200 flows (one per source port), 2 hooks each: 400 flows, 400 packets.
        let senders: Vec<_> = (0..200)
            .map(|_| std::net::UdpSocket::bind("127.0.0.1:0").unwrap())
            .collect();
        let mut buf = [0u8; 100];
        for s in &senders {
            s.send_to(&[0u8; 72], to).unwrap();
            rx.recv(&mut buf).unwrap();
        }
        let (mut flows, mut losses) = (Vec::new(), Vec::new());
        counter.collect(&mut flows, &mut losses).unwrap();
        assert!(flows.len() <= 16, "{} flows in a table of 16", flows.len());
        let counted: u64 = flows.iter().map(|f| f.packets).sum();
        let lost: u64 = losses.iter().map(|l| l.packets).sum();
        let lost_bytes: u64 = losses.iter().map(|l| l.bytes).sum();
        assert!(lost >= 400 - 16, "lost {lost}");
        assert_eq!(counted + lost, 400, "counted {counted} + lost {lost}");
        assert_eq!(lost_bytes, lost * 100);
    }
}

//! Gives later IP fragments the ports of their first fragment (SPEC §2).
//!
//! A later fragment belongs to the flow of its first fragment when that one
//! arrived earlier (same source, destination, protocol and identification)
//! within 30 s; otherwise it keeps ports 0. The table is bounded: when full,
//! expired entries go, and if it is still full the oldest half is dropped
//! (counted in [`FragmentTracker::evicted`]).

use std::net::IpAddr;

use hashbrown::HashMap;
use vpcflow_wire::IpSummary;

use crate::time::Timestamp;

const REMEMBER_NS: u64 = 30_000_000_000;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
struct Key {
    src: IpAddr,
    dst: IpAddr,
    protocol: u8,
    id: u32,
}

/// Remembers the ports of first fragments.
#[derive(Debug)]
pub struct FragmentTracker {
    first: HashMap<Key, (u16, u16, Timestamp), foldhash::fast::RandomState>,
    capacity: usize,
    /// Entries dropped because the table was full.
    pub evicted: u64,
    /// Later fragments whose first fragment was not seen (recorded with ports 0).
    pub unmatched: u64,
}

impl FragmentTracker {
    /// A tracker remembering at most `capacity` first fragments.
    pub fn new(capacity: usize) -> FragmentTracker {
        FragmentTracker {
            first: HashMap::default(),
            capacity: capacity.max(1),
            evicted: 0,
            unmatched: 0,
        }
    }

    /// Records a first fragment, or fills in a later fragment's ports.
    pub fn resolve(&mut self, now: Timestamp, s: &mut IpSummary) {
        let Some(frag) = s.fragment else { return };
        let key = Key {
            src: s.src,
            dst: s.dst,
            protocol: s.protocol.0,
            id: frag.id,
        };
        if frag.offset == 0 {
            if self.first.len() >= self.capacity && !self.first.contains_key(&key) {
                self.make_room(now);
            }
            self.first.insert(key, (s.src_port, s.dst_port, now));
        } else {
            match self.first.get(&key) {
                Some(&(sp, dp, t)) if now.0 >= t.0 && now.0 - t.0 <= REMEMBER_NS => {
                    s.src_port = sp;
                    s.dst_port = dp;
                }
                _ => self.unmatched += 1,
            }
        }
    }

    fn make_room(&mut self, now: Timestamp) {
        let before = self.first.len();
        self.first
            .retain(|_, &mut (_, _, t)| now.0.saturating_sub(t.0) <= REMEMBER_NS);
        if self.first.len() >= self.capacity {
            let mut times: Vec<u64> = self.first.values().map(|v| v.2.0).collect();
            let mid = times.len() / 2;
            let (_, cut, _) = times.select_nth_unstable(mid);
            let cut = *cut;
            self.first.retain(|_, &mut (_, _, t)| t.0 > cut);
        }
        self.evicted += (before - self.first.len()) as u64;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use vpcflow_wire::{Fragment, IpProtocol, TcpFlags};

    fn frag(offset: u16, id: u32, ports: (u16, u16)) -> IpSummary {
        IpSummary {
            src: "10.0.0.1".parse().unwrap(),
            dst: "10.0.0.2".parse().unwrap(),
            protocol: IpProtocol::UDP,
            ip_bytes: 1500,
            src_port: ports.0,
            dst_port: ports.1,
            tcp_flags: TcpFlags(0),
            icmp_type: None,
            fragment: Some(Fragment {
                id,
                offset,
                more: offset == 0,
            }),
            transport_truncated: false,
        }
    }

    #[test]
    fn later_fragment_takes_the_first_fragments_ports() {
        let mut t = FragmentTracker::new(16);
        t.resolve(Timestamp::from_secs(100), &mut frag(0, 7, (5353, 53)));
        let mut later = frag(185, 7, (0, 0));
        t.resolve(Timestamp::from_secs(101), &mut later);
        assert_eq!((later.src_port, later.dst_port), (5353, 53));
    }

    #[test]
    fn too_late_or_unknown_keeps_ports_zero() {
        let mut t = FragmentTracker::new(16);
        t.resolve(Timestamp::from_secs(100), &mut frag(0, 7, (5353, 53)));
        let mut late = frag(185, 7, (0, 0));
        t.resolve(Timestamp::from_secs(131), &mut late);
        assert_eq!((late.src_port, late.dst_port), (0, 0));
        let mut other = frag(185, 8, (0, 0));
        t.resolve(Timestamp::from_secs(101), &mut other);
        assert_eq!(other.dst_port, 0);
        assert_eq!(t.unmatched, 2);
    }

    #[test]
    fn bounded_under_a_flood() {
        let mut t = FragmentTracker::new(100);
        for id in 0..10_000u32 {
            t.resolve(Timestamp(u64::from(id)), &mut frag(0, id, (1, 2)));
        }
        assert!(t.first.len() <= 100);
        assert!(t.evicted >= 9_900);
        // The newest is still there.
        let mut later = frag(10, 9_999, (0, 0));
        t.resolve(Timestamp(10_000), &mut later);
        assert_eq!(later.dst_port, 2);
    }
}

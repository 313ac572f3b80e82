//! Connection tracking, per port, with SPEC §1's timeouts.
//!
//! Every decided flow is remembered under its port and its 5-tuple. A later
//! flow with the same key belongs to the same connection and gets the same
//! decision; a flow whose reverse is remembered is the connection's return
//! traffic. Entries expire after: TCP 600 s, or 30 s once a FIN or RST was
//! seen; ICMP 30 s; other protocols 180 s once both directions were seen,
//! else 30 s. Activity is seen once per flow per capture window (the
//! aggregator asks only then), so a connection idle across most of a
//! window may expire a little early; it is then evaluated afresh.
//!
//! Bounded: when full, expired entries are dropped, and if that is not
//! enough the least recently active half goes ([`Conntrack::evicted`]).
//!
//! Across an inventory change, a table hands its accepted connections to
//! the next engine's ([`Conntrack::find_accepted`], [`Conntrack::adopt`]):
//! their state (activity, replies seen, closing) travels with them, so the
//! timeouts run on as if nothing had changed.

use std::net::IpAddr;

use hashbrown::HashMap;
use vpcflow_core::flow::FiveTuple;
use vpcflow_core::{Action, Decision, Timestamp};
use vpcflow_wire::{IpProtocol, TcpFlags};

const SECOND: u64 = 1_000_000_000;

/// A connection's port and 5-tuple, as first seen.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub(crate) struct Key {
    pub(crate) port: u32,
    src: IpAddr,
    dst: IpAddr,
    src_port: u16,
    dst_port: u16,
    protocol: u8,
}

impl Key {
    pub(crate) fn of(port: u32, t: &FiveTuple) -> Key {
        Key {
            port,
            src: t.src,
            dst: t.dst,
            src_port: t.src_port,
            dst_port: t.dst_port,
            protocol: t.protocol.0,
        }
    }
    /// The same connection on another port's numbering.
    pub(crate) fn on_port(self, port: u32) -> Key {
        Key { port, ..self }
    }
    pub(crate) fn reversed(self) -> Key {
        Key {
            src: self.dst,
            dst: self.src,
            src_port: self.dst_port,
            dst_port: self.src_port,
            ..self
        }
    }
}

/// What is known of one connection.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Conn {
    pub(crate) decision: Decision,
    last_ns: u64,
    replied: bool,
    closing: bool,
}

impl Conn {
    /// The same connection's state under another numbering of its rules.
    pub(crate) fn with_decision(self, decision: Decision) -> Conn {
        Conn { decision, ..self }
    }
    fn timeout_ns(&self, protocol: u8) -> u64 {
        SECOND
            * match IpProtocol(protocol) {
                IpProtocol::TCP if self.closing => 30,
                IpProtocol::TCP => 600,
                IpProtocol::ICMP | IpProtocol::ICMPV6 => 30,
                _ if self.replied => 180,
                _ => 30,
            }
    }
}

/// What the table knows of a flow.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Lookup {
    /// The flow's own connection was decided before: this decision.
    Same(Decision),
    /// The flow is the return traffic of a connection decided so.
    Return(Decision),
    /// Nothing: evaluate the rules.
    New,
}

/// The connection table.
#[derive(Debug)]
pub struct Conntrack {
    map: HashMap<Key, Conn, foldhash::fast::RandomState>,
    capacity: usize,
    /// Connections dropped to make room while still live.
    pub evicted: u64,
}

fn closes(flags: u8) -> bool {
    TcpFlags(flags).intersects(TcpFlags::FIN | TcpFlags::RST)
}

impl Conntrack {
    /// A table of at most `capacity` connections.
    pub fn new(capacity: usize) -> Conntrack {
        Conntrack {
            map: HashMap::default(),
            capacity: capacity.max(2),
            evicted: 0,
        }
    }

    /// Connections held.
    pub fn len(&self) -> usize {
        self.map.len()
    }

    /// Whether it holds none.
    pub fn is_empty(&self) -> bool {
        self.map.is_empty()
    }

    fn live(&mut self, key: &Key, now: u64) -> Option<&mut Conn> {
        let expired = match self.map.get(key) {
            None => return None,
            Some(c) => now.saturating_sub(c.last_ns) > c.timeout_ns(key.protocol),
        };
        if expired {
            self.map.remove(key);
            return None;
        }
        self.map.get_mut(key)
    }

    /// Looks a flow up, refreshing the connection it belongs to.
    pub fn lookup(&mut self, now: Timestamp, port: u32, t: &FiveTuple, tcp_flags: u8) -> Lookup {
        let key = Key::of(port, t);
        if let Some(c) = self.live(&key, now.0) {
            c.last_ns = c.last_ns.max(now.0);
            c.closing |= closes(tcp_flags);
            return Lookup::Same(c.decision);
        }
        if let Some(c) = self.live(&key.reversed(), now.0) {
            c.last_ns = c.last_ns.max(now.0);
            c.replied = true;
            c.closing |= closes(tcp_flags);
            return Lookup::Return(c.decision);
        }
        Lookup::New
    }

    /// Remembers a decided connection.
    pub fn insert(
        &mut self,
        now: Timestamp,
        port: u32,
        t: &FiveTuple,
        tcp_flags: u8,
        decision: Decision,
    ) {
        if self.map.len() >= self.capacity {
            self.make_room(now.0);
        }
        self.map.insert(
            Key::of(port, t),
            Conn {
                decision,
                last_ns: now.0,
                replied: false,
                closing: closes(tcp_flags),
            },
        );
    }

    /// The live accepted connection `t` belongs to on `port`, in either
    /// direction, under the key it was first seen with; not refreshed.
    /// `Err(())` if the connection is known and was rejected.
    pub(crate) fn find_accepted(
        &mut self,
        now: Timestamp,
        port: u32,
        t: &FiveTuple,
    ) -> Result<Option<(Key, Conn)>, ()> {
        let key = Key::of(port, t);
        for k in [key, key.reversed()] {
            if let Some(c) = self.live(&k, now.0) {
                return match c.decision.action {
                    Action::Accept => Ok(Some((k, *c))),
                    Action::Reject => Err(()),
                };
            }
        }
        Ok(None)
    }

    /// Every live accepted connection.
    pub(crate) fn accepted(&self, now: Timestamp) -> impl Iterator<Item = (Key, Conn)> + '_ {
        self.map
            .iter()
            .filter(move |(k, c)| {
                c.decision.action == Action::Accept
                    && now.0.saturating_sub(c.last_ns) <= c.timeout_ns(k.protocol)
            })
            .map(|(k, c)| (*k, *c))
    }

    /// Takes over a connection another table tracked, unless this one
    /// already knows it (its own state is newer).
    pub(crate) fn adopt(&mut self, now: Timestamp, key: Key, conn: Conn) {
        if self.live(&key, now.0).is_some() || self.live(&key.reversed(), now.0).is_some() {
            return;
        }
        if self.map.len() >= self.capacity {
            self.make_room(now.0);
        }
        self.map.insert(key, conn);
    }

    fn make_room(&mut self, now: u64) {
        self.map
            .retain(|k, c| now.saturating_sub(c.last_ns) <= c.timeout_ns(k.protocol));
        if self.map.len() >= self.capacity {
            let before = self.map.len();
            let mut times: Vec<u64> = self.map.values().map(|c| c.last_ns).collect();
            let mid = times.len() / 2;
            let cut = *times.select_nth_unstable(mid).1;
            self.map.retain(|_, c| c.last_ns > cut);
            self.evicted += (before - self.map.len()) as u64;
        }
    }
}

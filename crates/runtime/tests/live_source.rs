//! The live source's logic on a fake host ([`CaptureSystem`]): interfaces
//! that appear late, go away and come back under a new index, ring drops
//! that become SKIPDATA, and the open window written as partial at a stop,
//! all through the agent's own loop ([`vpcflow_runtime::run`]) under a
//! manual clock: no root, no interfaces, 60-second windows in milliseconds.
//! (The real kernel paths are the root tier's: `crates/vpcflow/tests/live_*`.)

mod common;

use std::collections::HashMap;
use std::io;
use std::sync::atomic::AtomicBool;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use vpcflow_core::aggregate::{AggregatorConfig, CLOSE_GRACE_NS};
use vpcflow_core::{Inventory, Timestamp, WindowLength};
use vpcflow_live::{CaptureRing, CaptureSystem, LiveError, RingConfig, RingPacket, RingStats};
use vpcflow_runtime::{
    CaptureKind, Clock, Driver, InventorySource, LiveConfig, LiveSource, ManualClock, RunLimits,
    Source, SourceError,
};

use common::Collected;

/// A window boundary (a multiple of 60 s).
const T: u64 = 1_800_000_000;
const SECOND: u64 = 1_000_000_000;

const INVENTORY: &str = r#"
region = "r1"
[[project]]
id = "p"
[[vpc]]
id = "vpc"
project = "p"
cidr = "10.0.0.0/16"
[[subnet]]
id = "sa"
vpc = "vpc"
cidr = "10.0.1.0/24"
[[port]]
id = "pa"
subnet = "sa"
ips = ["10.0.1.10"]
security_groups = ["open"]
interface = "vpa"
[[security_group]]
id = "open"
project = "p"
[[security_group.rule]]
id = "out"
direction = "egress"
remote_ip_prefix = "0.0.0.0/0"
[[log_group]]
id = "lg"
project = "p"
[[log_topic]]
id = "lt"
log_group = "lg"
[[flow_log]]
id = "fl"
project = "p"
name = "all"
resource_type = "vpc"
resource_id = "vpc"
traffic_type = "all"
log_group_id = "lg"
log_topic_id = "lt"
"#;

/// A UDP datagram of 10.0.1.10:`sport` to 10.0.9.9:53 in Ethernet (60
/// bytes on the wire, 46 at layer 3).
fn udp_frame(sport: u16) -> Vec<u8> {
    let mut f = vec![0u8; 60];
    f[12..14].copy_from_slice(&[0x08, 0x00]);
    let ip = &mut f[14..];
    ip[0] = 0x45;
    ip[2..4].copy_from_slice(&46u16.to_be_bytes());
    ip[8] = 64;
    ip[9] = 17;
    ip[12..16].copy_from_slice(&[10, 0, 1, 10]);
    ip[16..20].copy_from_slice(&[10, 0, 9, 9]);
    let udp = &mut ip[20..];
    udp[0..2].copy_from_slice(&sport.to_be_bytes());
    udp[2..4].copy_from_slice(&53u16.to_be_bytes());
    udp[4..6].copy_from_slice(&26u16.to_be_bytes());
    f
}

/// What the fake host does, and when.
enum Event {
    /// The interface exists from now on, with this index.
    Appear(&'static str, u32),
    /// A tap device (driver `tun`) exists from now on, with this index:
    /// the host side of its port, where what the port sends is received.
    AppearTap(&'static str, u32),
    /// The interface is deleted.
    Vanish(&'static str),
    /// A packet sent from the port, captured by its interface's ring.
    Packet(&'static str, u16),
    /// The interface's ring dropped packets.
    Drops(&'static str, u64),
}

/// The host's state, shared by the system and its rings.
#[derive(Default)]
struct Host {
    interfaces: HashMap<&'static str, u32>,
    /// Per interface index: frames waiting (time, frame) and drops.
    queued: HashMap<u32, Vec<(u64, Vec<u8>)>>,
    drops: HashMap<u32, u64>,
    /// Rings opened, by interface name.
    opened: Vec<&'static str>,
    /// Interfaces that are tap devices.
    taps: Vec<&'static str>,
}

/// The fake host: its events play as its clock passes them; waiting moves
/// the clock (so the agent's loop runs on).
struct FakeSystem {
    host: Arc<Mutex<Host>>,
    clock: ManualClock,
    events: Vec<(u64, Event)>,
    next: usize,
}

impl FakeSystem {
    fn play(&mut self) {
        let now = self.clock.now().0;
        let mut host = self.host.lock().unwrap();
        while let Some((at, e)) = self.events.get(self.next) {
            if *at > now {
                break;
            }
            match e {
                Event::Appear(name, index) => {
                    host.interfaces.insert(name, *index);
                }
                Event::AppearTap(name, index) => {
                    host.interfaces.insert(name, *index);
                    host.taps.push(name);
                }
                Event::Vanish(name) => {
                    if let Some(i) = host.interfaces.remove(name) {
                        // Whatever the deleted interface held is gone with it.
                        host.queued.remove(&i);
                    }
                }
                Event::Packet(name, sport) => {
                    if let Some(&i) = host.interfaces.get(name) {
                        host.queued
                            .entry(i)
                            .or_default()
                            .push((*at, udp_frame(*sport)));
                    }
                }
                Event::Drops(name, n) => {
                    if let Some(&i) = host.interfaces.get(name) {
                        *host.drops.entry(i).or_default() += n;
                    }
                }
            }
            self.next += 1;
        }
    }
}

struct FakeRing {
    host: Arc<Mutex<Host>>,
    index: u32,
}

impl CaptureRing for FakeRing {
    fn drain(&mut self, mut f: impl FnMut(&RingPacket<'_>)) -> usize {
        let (frames, tap) = {
            let mut host = self.host.lock().unwrap();
            let tap = host
                .taps
                .iter()
                .any(|t| host.interfaces.get(t) == Some(&self.index));
            (host.queued.remove(&self.index).unwrap_or_default(), tap)
        };
        for (at, data) in &frames {
            f(&RingPacket {
                timestamp_ns: *at,
                data,
                wire_len: data.len() as u32,
                // The port sent it: it left through the port's own
                // interface, and came in at its tap on the host side.
                outgoing: !tap,
            });
        }
        frames.len()
    }
    fn take_stats(&mut self) -> Result<RingStats, LiveError> {
        let drops = self
            .host
            .lock()
            .unwrap()
            .drops
            .remove(&self.index)
            .unwrap_or(0);
        Ok(RingStats { packets: 0, drops })
    }
}

impl CaptureSystem for FakeSystem {
    type Ring = FakeRing;

    fn interface_index(&self, name: &str) -> Option<u32> {
        self.host.lock().unwrap().interfaces.get(name).copied()
    }

    fn is_tap(&self, name: &str) -> bool {
        let host = self.host.lock().unwrap();
        host.interfaces.contains_key(name) && host.taps.contains(&name)
    }

    fn open_ring(&mut self, name: &str, _config: RingConfig) -> Result<FakeRing, LiveError> {
        let mut host = self.host.lock().unwrap();
        let (&name, &index) = host
            .interfaces
            .get_key_value(name)
            .ok_or_else(|| LiveError::NoSuchInterface(name.to_string()))?;
        host.opened.push(name);
        Ok(FakeRing {
            host: Arc::clone(&self.host),
            index,
        })
    }

    fn wait<'a>(
        &mut self,
        _rings: impl Iterator<Item = &'a FakeRing>,
        timeout_ms: i32,
    ) -> io::Result<()> {
        self.clock.advance(timeout_ms.max(1) as u64 * 1_000_000);
        self.play();
        Ok(())
    }
}

struct OneInventory(Inventory);

impl InventorySource for OneInventory {
    fn describe(&self) -> String {
        "one".into()
    }
    fn load(&mut self) -> Result<Inventory, SourceError> {
        Ok(self.0.clone())
    }
    fn changed(&mut self) -> bool {
        false
    }
}

/// The agent's loop from `T` for `secs` seconds on a fake host playing
/// `events` (at seconds after `T`); the windows written and the rings
/// opened.
fn agent(events: Vec<(u64, Event)>, secs: u64) -> (Collected, Vec<&'static str>) {
    agent_with(INVENTORY, events, secs)
}

/// [`agent`] with another inventory.
fn agent_with(
    inventory: &str,
    events: Vec<(u64, Event)>,
    secs: u64,
) -> (Collected, Vec<&'static str>) {
    let clock = ManualClock::at(Timestamp::from_secs(T));
    let host = Arc::new(Mutex::new(Host::default()));
    let mut system = FakeSystem {
        host: Arc::clone(&host),
        clock: clock.clone(),
        events: events
            .into_iter()
            .map(|(s, e)| (T * SECOND + s * SECOND / 10, e))
            .collect(),
        next: 0,
    };
    system.play();
    let config = LiveConfig {
        capture: Some(CaptureKind::AfPacket),
        snaplen: 256,
        flow_table: 1024,
    };
    let mut source = LiveSource::with_system(system, config, clock.now()).unwrap();
    let inventory = Inventory::from_toml("t.toml", inventory).unwrap();
    let mut driver = Driver::new(
        &inventory,
        AggregatorConfig {
            window: WindowLength::configured(60).unwrap(),
            max_records: 400_000,
            grace_ns: CLOSE_GRACE_NS,
        },
    );
    source.maintain(&mut driver, clock.now());
    let mut sink = Collected::new("custom:interface-id,srcport,direction,packets,log-status");
    vpcflow_runtime::run(
        &mut driver,
        &mut source,
        &mut OneInventory(inventory),
        &clock,
        &mut sink,
        &AtomicBool::new(false),
        RunLimits {
            duration: Some(Duration::from_secs(secs)),
        },
    )
    .unwrap();
    let opened = host.lock().unwrap().opened.clone();
    (sink, opened)
}

fn window(start: u64, partial: bool, lines: &[&str]) -> (u64, bool, Vec<String>) {
    (
        start,
        partial,
        lines.iter().map(|l| l.to_string()).collect(),
    )
}

// Event times below are in tenths of a second after `T`.

#[test]
fn an_interface_that_appears_late_is_captured_from_then_on() {
    let (got, opened) = agent(
        vec![
            // Before the interface exists nothing can be captured.
            (100, Event::Packet("vpa", 1000)),
            (200, Event::Appear("vpa", 7)),
            (300, Event::Packet("vpa", 2000)),
            (310, Event::Packet("vpa", 2000)),
        ],
        62,
    );
    assert_eq!(opened, ["vpa"]);
    // Stopped 2 s into the next window: written as partial, with no traffic.
    assert_eq!(
        got.windows,
        vec![
            window(T, false, &["pa 2000 egress 2 OK"]),
            window(T + 60, true, &[])
        ]
    );
}

#[test]
fn an_interface_deleted_and_created_again_is_reopened_on_its_new_index() {
    let (got, opened) = agent(
        vec![
            (0, Event::Appear("vpa", 7)),
            (50, Event::Packet("vpa", 1000)),
            (100, Event::Vanish("vpa")),
            (150, Event::Appear("vpa", 8)),
            (200, Event::Packet("vpa", 2000)),
        ],
        62,
    );
    assert_eq!(opened, ["vpa", "vpa"], "the ring is opened again");
    assert_eq!(
        got.windows,
        vec![
            window(T, false, &["pa 1000 egress 1 OK", "pa 2000 egress 1 OK"]),
            window(T + 60, true, &[])
        ]
    );
}

#[test]
fn ring_drops_become_the_ports_skipdata() {
    let (got, _) = agent(
        vec![
            (0, Event::Appear("vpa", 7)),
            (50, Event::Packet("vpa", 1000)),
            (60, Event::Drops("vpa", 40)),
        ],
        62,
    );
    assert_eq!(
        got.windows,
        vec![
            window(T, false, &["pa - - 40 SKIPDATA", "pa 1000 egress 1 OK"]),
            window(T + 60, true, &[])
        ]
    );
}

#[test]
fn a_stop_writes_the_open_window_as_partial() {
    let (got, _) = agent(
        vec![
            (0, Event::Appear("vpa", 7)),
            (50, Event::Packet("vpa", 1000)),
            (650, Event::Packet("vpa", 3000)),
        ],
        // Stopped 10 s into the second window.
        70,
    );
    assert_eq!(
        got.windows,
        vec![
            window(T, false, &["pa 1000 egress 1 OK"]),
            window(T + 60, true, &["pa 3000 egress 1 OK"]),
        ]
    );
}

/// SPEC §1, "Where a port is observed": a tap device is the host side of
/// its port whatever the inventory omits: what the port sent is received
/// there, and is still its egress.
#[test]
fn a_tap_device_is_its_ports_host_side_though_the_inventory_omits_it() {
    let (got, opened) = agent(
        vec![
            (0, Event::AppearTap("vpa", 7)),
            (50, Event::Packet("vpa", 1000)),
            (60, Event::Packet("vpa", 1000)),
        ],
        61,
    );
    assert_eq!(opened, ["vpa"]);
    assert_eq!(got.windows[0], window(T, false, &["pa 1000 egress 2 OK"]));
}

/// ... and an inventory that says `host_side = false` of a tap is refused:
/// the interface is not captured (no false directions), and it is said.
#[test]
fn a_tap_the_inventory_calls_the_ports_own_side_is_not_captured() {
    let inventory = INVENTORY.replace(
        "interface = \"vpa\"",
        "interface = \"vpa\"\nhost_side = false",
    );
    assert_ne!(inventory, INVENTORY);
    let (got, opened) = agent_with(
        &inventory,
        vec![
            (0, Event::AppearTap("vpa", 7)),
            (50, Event::Packet("vpa", 1000)),
        ],
        61,
    );
    assert!(opened.is_empty(), "{opened:?}");
    // Nothing captured, so no record with a direction it would have got wrong.
    assert_eq!(got.windows[0], window(T, false, &[]));
}

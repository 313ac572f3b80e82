//! The runtime's driver under a manual clock with a scripted source: no
//! root, no interfaces, 60-second windows in milliseconds. Generation
//! flips at window boundaries, connection state across an inventory
//! change, losses as SKIPDATA and the partial window at a stop.

mod common;

use std::sync::atomic::AtomicBool;
use std::time::Duration;

use vpcflow_core::aggregate::{AggregatorConfig, CLOSE_GRACE_NS};
use vpcflow_core::flow::FiveTuple;
use vpcflow_core::{Inventory, Timestamp, WindowLength};
use vpcflow_runtime::{
    Clock, Driver, InventorySource, ManualClock, RunLimits, Source, SourceError, TapFlow,
};
use vpcflow_wire::IpProtocol;

use common::{Collected, INVENTORY};

/// A window boundary (a multiple of 60 s).
const T: u64 = 1_800_000_000;

fn inventory(text: &str) -> Inventory {
    Inventory::from_toml("t.toml", text).unwrap()
}

/// The inventory after a change: the database port moved from 5432 to 5433.
fn moved_to_5433() -> Inventory {
    let text = INVENTORY.replace(
        "id = \"pg\"\ndirection = \"ingress\"\nprotocol = \"tcp\"\nmultiport = \"5432\"",
        "id = \"pg-5433\"\ndirection = \"ingress\"\nprotocol = \"tcp\"\nmultiport = \"5433\"",
    );
    assert_ne!(text, INVENTORY);
    inventory(&text)
}

fn config() -> AggregatorConfig {
    AggregatorConfig {
        window: WindowLength::configured(60).unwrap(),
        max_records: 400_000,
        grace_ns: CLOSE_GRACE_NS,
    }
}

fn at(secs: u64) -> Timestamp {
    Timestamp::from_secs(secs)
}

enum Event {
    Flow(&'static str, TapFlow),
    Lost(&'static str, u64),
}

/// Plays events when the clock reaches them; each poll moves the clock on.
struct Scripted {
    clock: ManualClock,
    events: Vec<(Timestamp, Event)>,
    next: usize,
}

impl Scripted {
    fn play(&mut self, driver: &mut Driver, now: Timestamp) {
        while let Some((t, e)) = self.events.get(self.next) {
            if *t > now {
                break;
            }
            let tap = |name: &str| {
                driver
                    .interfaces()
                    .iter()
                    .position(|i| i.name == name)
                    .unwrap_or_else(|| panic!("no tap {name}"))
            };
            match e {
                Event::Flow(name, f) => {
                    let t = tap(name);
                    driver.flow(t, f);
                }
                Event::Lost(name, n) => {
                    let tp = tap(name);
                    driver.lost(tp, *t, *n, *n * 100);
                }
            }
            self.next += 1;
        }
    }
}

impl Source for Scripted {
    fn name(&self) -> &'static str {
        "scripted"
    }
    fn maintain(&mut self, _driver: &mut Driver, _now: Timestamp) {}
    fn open(&self) -> usize {
        2
    }
    fn poll(
        &mut self,
        driver: &mut Driver,
        clock: &dyn Clock,
        timeout: Duration,
    ) -> Result<(), SourceError> {
        self.clock.advance(timeout.as_nanos() as u64);
        self.play(driver, clock.now());
        Ok(())
    }
    fn flush(&mut self, driver: &mut Driver, now: Timestamp) {
        self.play(driver, now);
    }
}

/// Inventory versions, each from an instant on.
struct Versions {
    clock: ManualClock,
    versions: Vec<(Timestamp, Inventory)>,
    loaded: usize,
}

impl InventorySource for Versions {
    fn describe(&self) -> String {
        "versions".into()
    }
    fn load(&mut self) -> Result<Inventory, SourceError> {
        let now = self.clock.now();
        self.loaded = self.versions.iter().filter(|(t, _)| *t <= now).count();
        Ok(self.versions[self.loaded - 1].1.clone())
    }
    fn changed(&mut self) -> bool {
        let now = self.clock.now();
        self.versions.iter().filter(|(t, _)| *t <= now).count() != self.loaded
    }
}

fn tcp(outgoing: bool, sport: u16, dport: u16, flags: u8, first: u64) -> TapFlow {
    let (a, b) = ("10.0.1.10".parse().unwrap(), "10.0.2.20".parse().unwrap());
    let (src, dst) = if dport == 40000 || dport == 40001 {
        (b, a)
    } else {
        (a, b)
    };
    TapFlow {
        outgoing,
        tuple: FiveTuple {
            src,
            dst,
            src_port: sport,
            dst_port: dport,
            protocol: IpProtocol::TCP,
            infrastructure: false,
        },
        packets: 2,
        bytes: 120,
        flags_any: flags,
        flags_all: flags,
        first: at(first),
    }
}

/// Runs from `T` for `secs` seconds.
fn run(
    versions: Vec<(Timestamp, Inventory)>,
    events: Vec<(Timestamp, Event)>,
    secs: u64,
) -> Collected {
    let clock = ManualClock::at(at(T));
    let mut driver = Driver::new(&versions[0].1, config());
    let mut source = Scripted {
        clock: clock.clone(),
        events,
        next: 0,
    };
    let mut inventories = Versions {
        clock: clock.clone(),
        versions,
        loaded: 1,
    };
    let mut sink = Collected::new(
        "custom:interface-id,srcport,dstport,direction,packets,action,log-status,rule-id",
    );
    vpcflow_runtime::run(
        &mut driver,
        &mut source,
        &mut inventories,
        &clock,
        &mut sink,
        &AtomicBool::new(false),
        RunLimits {
            duration: Some(Duration::from_secs(secs)),
        },
    )
    .unwrap();
    sink
}

#[test]
fn a_connection_opened_before_a_reload_keeps_its_replies_accepted() {
    let events = vec![
        // Window T: pa opens a connection to pb's database.
        (
            at(T + 10),
            Event::Flow("vpa", tcp(true, 40000, 5432, 0x02, T + 10)),
        ),
        (
            at(T + 10),
            Event::Flow("vpb", tcp(false, 40000, 5432, 0x02, T + 10)),
        ),
        // Window T+60, under the inventory changed at T+30: the replies
        // (pb has no egress rule: only connection tracking lets them out).
        (
            at(T + 70),
            Event::Flow("vpb", tcp(true, 5432, 40000, 0x12, T + 70)),
        ),
        (
            at(T + 70),
            Event::Flow("vpa", tcp(false, 5432, 40000, 0x12, T + 70)),
        ),
        // A new connection meets the new rules.
        (
            at(T + 75),
            Event::Flow("vpb", tcp(false, 40001, 5432, 0x02, T + 75)),
        ),
        (at(T + 80), Event::Lost("vpb", 7)),
    ];
    let versions = vec![(at(T), inventory(INVENTORY)), (at(T + 30), moved_to_5433())];
    let got = run(versions, events, 90);
    assert_eq!(
        got.windows,
        vec![
            (
                T,
                false,
                vec![
                    "pa 40000 5432 egress 2 ACCEPT OK out".to_string(),
                    "pb 40000 5432 ingress 2 ACCEPT OK pg".to_string(),
                ]
            ),
            (
                T + 60,
                true,
                vec![
                    "pa 5432 40000 ingress 2 ACCEPT OK stateful-return".to_string(),
                    "pb - - - 7 - SKIPDATA -".to_string(),
                    "pb 40001 5432 ingress 2 REJECT OK default-deny".to_string(),
                    "pb 5432 40000 egress 2 ACCEPT OK stateful-return".to_string(),
                ]
            ),
        ]
    );
}

#[test]
fn a_second_change_before_the_boundary_replaces_the_first() {
    let events = vec![(
        at(T + 70),
        Event::Flow("vpb", tcp(false, 40000, 5432, 0x02, T + 70)),
    )];
    // Moved to 5433 at T+20, back to 5432 at T+40: window T+60 runs the
    // last one, and window T is written once.
    let versions = vec![
        (at(T), inventory(INVENTORY)),
        (at(T + 20), moved_to_5433()),
        (at(T + 40), inventory(INVENTORY)),
    ];
    let got = run(versions, events, 125);
    assert_eq!(
        got.windows,
        vec![
            (T, false, vec![]),
            (
                T + 60,
                false,
                vec!["pb 40000 5432 ingress 2 ACCEPT OK pg".to_string()]
            ),
            (T + 120, true, vec![]),
        ]
    );
}

#[test]
fn a_port_added_by_a_reload_is_logged_from_the_next_window() {
    let with_pc = format!(
        "{INVENTORY}\n[[port]]\nid = \"pc\"\nsubnet = \"sa\"\nips = [\"10.0.1.30\"]\n\
         security_groups = [\"client\"]\ninterface = \"vpc3\"\n"
    );
    let mut from_pc = tcp(true, 40002, 5432, 0x02, T + 70);
    from_pc.tuple.src = "10.0.1.30".parse().unwrap();
    let events = vec![(at(T + 70), Event::Flow("vpc3", from_pc))];
    let versions = vec![
        (at(T), inventory(INVENTORY)),
        (at(T + 30), inventory(&with_pc)),
    ];
    let got = run(versions, events, 90);
    assert_eq!(
        got.windows,
        vec![
            (T, false, vec![]),
            (
                T + 60,
                true,
                vec!["pc 40002 5432 egress 2 ACCEPT OK out".to_string()]
            ),
        ]
    );
}

#[test]
fn a_traffic_filter_changed_by_a_reload_applies_from_the_next_window() {
    let rejected_only = INVENTORY.replace("traffic_type = \"all\"", "traffic_type = \"reject\"");
    let events = vec![
        (
            at(T + 10),
            Event::Flow("vpb", tcp(false, 40000, 5432, 0x02, T + 10)),
        ),
        // After the change (at T+30), in the next window: an accepted
        // connection, no longer logged, and a rejected one.
        (
            at(T + 70),
            Event::Flow("vpb", tcp(false, 40002, 5432, 0x02, T + 70)),
        ),
        (
            at(T + 70),
            Event::Flow("vpb", tcp(false, 40003, 5433, 0x02, T + 70)),
        ),
    ];
    let versions = vec![
        (at(T), inventory(INVENTORY)),
        (at(T + 30), inventory(&rejected_only)),
    ];
    let got = run(versions, events, 90);
    assert_eq!(
        got.windows,
        vec![
            (
                T,
                false,
                vec!["pb 40000 5432 ingress 2 ACCEPT OK pg".to_string()]
            ),
            (
                T + 60,
                true,
                vec!["pb 40003 5433 ingress 2 REJECT OK default-deny".to_string()]
            ),
        ]
    );
}

/// An exported flow of `packets` from `src` to `dst` at `secs`.
fn exported(
    src: [u8; 4],
    dst: [u8; 4],
    packets: u64,
    secs: u64,
) -> vpcflow_flowexport::ExportedFlow {
    vpcflow_flowexport::ExportedFlow {
        src: src.into(),
        dst: dst.into(),
        src_port: 40_000,
        dst_port: 5432,
        protocol: 6,
        packets,
        bytes: packets * 100,
        tcp_flags: 0x18,
        first_ns: at(secs).0,
        last_ns: at(secs).0,
        input_interface: None,
        output_interface: None,
        sampling_rate: 1,
        observation: None,
    }
}

#[test]
fn an_exporters_lost_flows_are_skipdata_on_the_ports_it_reports_only() {
    let mut driver = Driver::new(&inventory(INVENTORY), config());
    let a = "192.0.2.1:2055".parse().unwrap();
    let b = "192.0.2.2:2055".parse().unwrap();
    let mut sink = Collected::new("custom:interface-id,srcaddr,packets,bytes,log-status");
    // Exporter a sees the client (pa) talk to the outside; b sees the
    // database (pb).
    driver.exported(a, &exported([10, 0, 1, 10], [192, 0, 2, 99], 3, T + 1));
    driver.exported(b, &exported([10, 0, 2, 20], [192, 0, 2, 98], 4, T + 2));
    // a's sequence numbers skip in this window, and again in the next.
    driver.exported_lost(a, at(T + 30));
    driver.exported(a, &exported([10, 0, 1, 10], [192, 0, 2, 99], 1, T + 61));
    driver.exported_lost(a, at(T + 62));
    driver.end_of_input(&mut sink).unwrap();
    let windows: Vec<(u64, Vec<String>)> =
        sink.windows.into_iter().map(|(s, _, l)| (s, l)).collect();
    assert_eq!(
        windows,
        [
            (
                T,
                vec![
                    "pa - 0 0 SKIPDATA".to_string(),
                    "pa 10.0.1.10 3 300 OK".to_string(),
                    "pb 10.0.2.20 4 400 OK".to_string(),
                ]
            ),
            (
                T + 60,
                vec![
                    "pa - 0 0 SKIPDATA".to_string(),
                    "pa 10.0.1.10 1 100 OK".to_string(),
                ]
            ),
        ]
    );
}

#[test]
fn an_exporter_with_mapped_interfaces_has_its_flows_attributed_by_interface() {
    let text = INVENTORY
        .replace(
            "interface = \"vpa\"",
            "interface = \"vpa\"\nexporter = \"192.0.2.1\"\nif_index = 3",
        )
        .replace(
            "interface = \"vpb\"",
            "interface = \"vpb\"\nexporter = \"192.0.2.1\"\nif_index = 4",
        );
    let mut driver = Driver::new(&inventory(&text), config());
    let mapped = "192.0.2.1:2055".parse().unwrap();
    let other = "192.0.2.2:2055".parse().unwrap();
    let on = |input, output, packets, src, dst| vpcflow_flowexport::ExportedFlow {
        input_interface: Some(input),
        output_interface: Some(output),
        ..exported(src, dst, packets, T + 1)
    };
    // In on pa's interface, out on the uplink: pa's egress only, though
    // the destination is pb's address (pb is counted where it is seen).
    driver.exported(mapped, &on(3, 9, 2, [10, 0, 1, 10], [10, 0, 2, 20]));
    // In on the uplink, out on pb's: pb's ingress.
    driver.exported(mapped, &on(9, 4, 5, [192, 0, 2, 99], [10, 0, 2, 20]));
    // Neither interface a port's: no port's, whatever the addresses.
    driver.exported(mapped, &on(9, 8, 7, [10, 0, 1, 10], [10, 0, 2, 20]));
    // An exporter the inventory does not map: by address, both ports.
    driver.exported(other, &on(3, 4, 11, [10, 0, 1, 10], [10, 0, 2, 20]));
    // Observed entering the exporter (IPFIX flowDirection): on the input
    // interface's port only; its observation leaving is the output's.
    let observed = |observation, packets| vpcflow_flowexport::ExportedFlow {
        observation: Some(observation),
        ..on(3, 4, packets, [10, 0, 1, 10], [10, 0, 2, 20])
    };
    driver.exported(
        mapped,
        &observed(vpcflow_flowexport::Observation::Ingress, 100),
    );
    driver.exported(
        mapped,
        &observed(vpcflow_flowexport::Observation::Egress, 1000),
    );
    let mut sink = Collected::new("custom:interface-id,direction,srcaddr,packets,log-status");
    driver.end_of_input(&mut sink).unwrap();
    let windows: Vec<Vec<String>> = sink.windows.into_iter().map(|(_, _, l)| l).collect();
    assert_eq!(
        windows,
        [vec![
            "pa egress 10.0.1.10 113 OK".to_string(),
            "pb ingress 10.0.1.10 1011 OK".to_string(),
            "pb ingress 192.0.2.99 5 OK".to_string(),
        ]]
    );
}

#[test]
fn a_flow_log_deleted_has_no_records_from_the_next_window_even_on_a_stop_just_after_it() {
    let start = INVENTORY.find("[[flow_log]]").unwrap();
    let without = &INVENTORY[..start];
    let events = vec![
        (
            at(T + 10),
            Event::Flow("vpb", tcp(false, 40000, 5432, 0x02, T + 10)),
        ),
        (
            at(T + 61),
            Event::Flow("vpb", tcp(false, 40001, 5432, 0x02, T + 61)),
        ),
    ];
    let versions = vec![
        (at(T), inventory(INVENTORY)),
        (at(T + 30), inventory(without)),
    ];
    // Stopped a second after the boundary, before the deleted flow log's
    // generation is retired (the close grace): it writes window T whole,
    // and nothing of window T+60.
    let got = run(versions, events, 61);
    assert_eq!(
        got.windows,
        vec![
            (
                T,
                false,
                vec!["pb 40000 5432 ingress 2 ACCEPT OK pg".to_string()]
            ),
            (T + 60, true, vec![]),
        ]
    );
}

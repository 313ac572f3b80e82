//! The collector: flow exports in (NetFlow v5 and v9, IPFIX and sFlow v5
//! over UDP; IPFIX over TCP too), flow deltas into the [`Driver`], closed
//! windows out to a [`Sink`]. `vpcflow collect` runs it on its own, and
//! `vpcflow serve --collect` beside the API, under the control plane's
//! flow logs.
//!
//! Each exported flow is attributed to ports by its addresses and counted
//! in the window of its first packet on the exporter's clock (sFlow, which
//! has none, on the collector's); windows close when the exports' times
//! pass their end plus the grace. A stop writes every open window whole,
//! as the end of a capture does.
//!
//! Guarantees:
//! - receiving never waits for a window being written: threads of their
//!   own read the sockets into buffers that are given back and reused (no
//!   allocation per datagram once enough are in circulation), up to
//!   [`QUEUED_DATAGRAMS`] waiting;
//! - a malformed datagram is counted by reason and skipped; a TCP session
//!   that sends one is closed (its framing is lost), and its templates are
//!   forgotten with it (RFC 7011 §8: a template lives as long as its
//!   session);
//! - at most [`MOST_SESSIONS`] TCP sessions at once; more are refused.

use std::collections::BTreeMap;
use std::io::{self, Read};
use std::net::{SocketAddr, TcpListener, TcpStream, UdpSocket};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::mpsc;
use std::time::Duration;

use vpcflow_core::Timestamp;
use vpcflow_flowexport::Decoder;

use crate::clock::Clock;
use crate::driver::{Driver, Sink, SinkError};
use crate::run::{HOUSEKEEPING_EVERY, reload};
use crate::source::InventorySource;

/// How long a window stays open past its end on the exporters' clock, by
/// default: exporters send a long flow at their active timeout (commonly
/// 1 to 30 minutes) and their buffers late.
pub const EXPORT_GRACE: Duration = Duration::from_secs(600);

/// Datagrams received and waiting to be decoded, at most.
pub const QUEUED_DATAGRAMS: usize = 4_096;

/// TCP sessions served at once, at most.
pub const MOST_SESSIONS: usize = 256;

/// The UDP socket's receive buffer asked for: an exporter's burst (a
/// router flushing its cache) must wait there while a window is written.
/// Root may go past the system's `net.core.rmem_max` (SO_RCVBUFFORCE);
/// others get what it allows.
pub const RECEIVE_BUFFER_BYTES: libc::c_int = 16 << 20;

/// How often the receiving threads look at the stop flag.
const WAKE_EVERY: Duration = Duration::from_millis(100);

/// What the receiving threads hand to the decoding loop.
enum Received {
    /// A datagram (or a TCP session's message): its exporter, when it
    /// came (sFlow counts its samples then), its bytes.
    Message(SocketAddr, Timestamp, Vec<u8>),
    /// A TCP session ended: its templates go with it.
    Closed(SocketAddr),
}

/// What a collector received, for the line it ends with.
#[derive(Debug, Clone, Default)]
pub struct CollectReport {
    /// Datagrams (and TCP messages) received.
    pub datagrams: u64,
    /// Flows decoded.
    pub flows: u64,
    /// Packets those flows counted, over every window.
    pub packets: u64,
    /// Of them, attributed to monitored ports.
    pub attributed: u64,
    /// Of them, too late for their window.
    pub late: u64,
    /// Data sets that came before their template.
    pub unknown_template_sets: u64,
    /// Flow records without both addresses.
    pub incomplete: u64,
    /// TCP sessions served.
    pub sessions: u64,
    /// Lost by sequence numbers, per protocol (`netflow-v9`: export
    /// packets; `sflow-v5`: datagrams; others: flows).
    pub lost: BTreeMap<&'static str, u64>,
    /// Malformed datagrams by reason.
    pub malformed: BTreeMap<&'static str, u64>,
}

impl std::fmt::Display for CollectReport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let list = |m: &BTreeMap<&'static str, u64>, what: &dyn Fn(&str, u64) -> String| {
            if m.is_empty() {
                "none".to_string()
            } else {
                m.iter()
                    .map(|(k, n)| what(k, *n))
                    .collect::<Vec<_>>()
                    .join(", ")
            }
        };
        let lost = list(&self.lost, &|v, n| {
            let unit = match v {
                "netflow-v9" => "export packets",
                "sflow-v5" => "datagrams",
                _ => "flows",
            };
            format!("{n} {unit} ({v})")
        });
        let malformed = list(&self.malformed, &|k, n| format!("{k} {n}"));
        write!(
            f,
            "collected {} flows ({} packets, {} attributed to ports, {} late for their window) \
             from {} datagrams ({} TCP sessions); {} data sets before their template, {} flows \
             without addresses, malformed datagrams: {malformed}; lost by sequence numbers: {lost}",
            self.flows,
            self.packets,
            self.attributed,
            self.late,
            self.datagrams,
            self.sessions,
            self.unknown_template_sets,
            self.incomplete,
        )
    }
}

/// Bound sockets, not yet receiving.
#[derive(Debug)]
pub struct Collector {
    udp: UdpSocket,
    tcp: Option<TcpListener>,
}

impl Collector {
    /// Binds UDP `udp` (every protocol) and, if given, TCP `tcp` (IPFIX).
    pub fn bind(udp: SocketAddr, tcp: Option<SocketAddr>) -> io::Result<Collector> {
        let socket = UdpSocket::bind(udp)?;
        socket.set_read_timeout(Some(WAKE_EVERY))?;
        let raised = vpcflow_live::setsockopt(
            &socket,
            libc::SOL_SOCKET,
            libc::SO_RCVBUFFORCE,
            &RECEIVE_BUFFER_BYTES,
        );
        if raised.is_err() {
            // Not root: as much as the system allows.
            let _ = vpcflow_live::setsockopt(
                &socket,
                libc::SOL_SOCKET,
                libc::SO_RCVBUF,
                &RECEIVE_BUFFER_BYTES,
            );
        }
        let tcp = tcp.map(TcpListener::bind).transpose()?;
        if let Some(l) = &tcp {
            l.set_nonblocking(true)?;
        }
        Ok(Collector { udp: socket, tcp })
    }

    /// The UDP address bound.
    pub fn udp_addr(&self) -> io::Result<SocketAddr> {
        self.udp.local_addr()
    }

    /// The TCP address bound, if any.
    pub fn tcp_addr(&self) -> Option<io::Result<SocketAddr>> {
        self.tcp.as_ref().map(TcpListener::local_addr)
    }

    /// Receives until `stop` is set, handing flows to `driver` and closed
    /// windows to `sink`; then writes every open window. An `inventory`
    /// is followed: a change applies from the next window on `clock`.
    pub fn run(
        self,
        driver: &mut Driver,
        sink: &mut dyn Sink,
        mut inventory: Option<&mut dyn InventorySource>,
        clock: &dyn Clock,
        stop: &AtomicBool,
    ) -> Result<CollectReport, SinkError> {
        let halt = AtomicBool::new(false);
        let sessions = AtomicUsize::new(0);
        let (queue, received) = mpsc::sync_channel::<Received>(QUEUED_DATAGRAMS);
        let (give_back, free) = mpsc::channel::<Vec<u8>>();
        let free = std::sync::Mutex::new(free);
        let mut report = CollectReport::default();
        let mut decoder = Decoder::new();
        std::thread::scope(|s| {
            let udp = {
                let (queue, halt, free) = (queue.clone(), &halt, &free);
                let socket = &self.udp;
                s.spawn(move || receive_udp(socket, halt, clock, &queue, free))
            };
            if let Some(listener) = &self.tcp {
                let (queue, halt, free, sessions) = (queue.clone(), &halt, &free, &sessions);
                s.spawn(move || {
                    accept_tcp(s, listener, halt, clock, &queue, free, sessions);
                });
            }
            // Only the receiving threads hold senders now: when they are
            // gone, everything they received has been decoded.
            drop(queue);
            let mut written: Result<(), SinkError> = Ok(());
            let mut next_housekeeping = clock.now();
            loop {
                match received.recv_timeout(WAKE_EVERY) {
                    Ok(Received::Message(from, at, bytes)) => {
                        report.datagrams += 1;
                        let result = decoder.decode(from, &bytes, at.0, &mut |f| {
                            driver.exported(from, f);
                        });
                        // Its buffer goes back to be received into again.
                        let _ = give_back.send(bytes);
                        match result {
                            Ok(d) => {
                                report.flows += u64::from(d.flows);
                                report.unknown_template_sets += u64::from(d.unknown_template_sets);
                                report.incomplete += u64::from(d.incomplete);
                                if d.lost > 0 {
                                    *report.lost.entry(d.version.as_str()).or_default() +=
                                        u64::from(d.lost);
                                    driver.exported_lost(from, Timestamp(d.export_ns));
                                }
                            }
                            Err(e) => *report.malformed.entry(e.name()).or_default() += 1,
                        }
                    }
                    Ok(Received::Closed(from)) => {
                        report.sessions += 1;
                        decoder.forget(from);
                    }
                    Err(mpsc::RecvTimeoutError::Timeout) => {}
                    Err(mpsc::RecvTimeoutError::Disconnected) => break,
                }
                if stop.load(Ordering::Relaxed) || written.is_err() {
                    halt.store(true, Ordering::Relaxed);
                }
                if written.is_ok() {
                    written = driver.drain(sink);
                }
                let now = clock.now();
                if now >= next_housekeeping {
                    next_housekeeping = Timestamp(now.0 + HOUSEKEEPING_EVERY.as_nanos() as u64);
                    if let Some(inv) = inventory.as_deref_mut()
                        && inv.changed()
                    {
                        reload(driver, inv, sink, now);
                    }
                }
            }
            if let Ok(Err(e)) = udp.join() {
                eprintln!("vpcflow: error: receiving UDP exports stopped: {e}");
            }
            written
        })?;
        driver.end_of_input(sink)?;
        let stats = driver.pipeline_stats();
        report.packets = stats.packets;
        report.attributed = stats.attributed;
        report.late = stats.late_for_window;
        Ok(report)
    }
}

fn is_timeout(e: &io::Error) -> bool {
    matches!(
        e.kind(),
        io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut | io::ErrorKind::Interrupted
    )
}

/// A buffer given back by the decoding loop, or a new one.
fn buffer(free: &std::sync::Mutex<mpsc::Receiver<Vec<u8>>>) -> Vec<u8> {
    let mut b = free
        .lock()
        .ok()
        .and_then(|f| f.try_recv().ok())
        .unwrap_or_default();
    b.clear();
    b
}

fn receive_udp(
    socket: &UdpSocket,
    halt: &AtomicBool,
    clock: &dyn Clock,
    queue: &mpsc::SyncSender<Received>,
    free: &std::sync::Mutex<mpsc::Receiver<Vec<u8>>>,
) -> io::Result<()> {
    let mut buf = vec![0u8; 65_535];
    while !halt.load(Ordering::Relaxed) {
        match socket.recv_from(&mut buf) {
            Ok((n, from)) => {
                let mut datagram = buffer(free);
                datagram.extend_from_slice(&buf[..n]);
                if queue
                    .send(Received::Message(from, clock.now(), datagram))
                    .is_err()
                {
                    break;
                }
            }
            Err(e) if is_timeout(&e) => {}
            Err(e) => return Err(e),
        }
    }
    Ok(())
}

fn accept_tcp<'scope>(
    s: &'scope std::thread::Scope<'scope, '_>,
    listener: &'scope TcpListener,
    halt: &'scope AtomicBool,
    clock: &'scope dyn Clock,
    queue: &mpsc::SyncSender<Received>,
    free: &'scope std::sync::Mutex<mpsc::Receiver<Vec<u8>>>,
    sessions: &'scope AtomicUsize,
) {
    while !halt.load(Ordering::Relaxed) {
        match listener.accept() {
            Ok((stream, from)) => {
                if sessions.fetch_add(1, Ordering::Relaxed) >= MOST_SESSIONS {
                    sessions.fetch_sub(1, Ordering::Relaxed);
                    eprintln!(
                        "vpcflow: warning: refused an IPFIX session from {from}: {MOST_SESSIONS} are open"
                    );
                    continue;
                }
                let queue = queue.clone();
                s.spawn(move || {
                    session(stream, from, halt, clock, &queue, free);
                    sessions.fetch_sub(1, Ordering::Relaxed);
                    let _ = queue.send(Received::Closed(from));
                });
            }
            Err(e) if is_timeout(&e) => std::thread::sleep(WAKE_EVERY),
            Err(e) => {
                eprintln!("vpcflow: warning: accepting an IPFIX session: {e}");
                std::thread::sleep(WAKE_EVERY);
            }
        }
    }
}

/// Reads IPFIX messages from one TCP session (each says its length) until
/// it ends, fails, frames badly, or the collector halts.
fn session(
    mut stream: TcpStream,
    from: SocketAddr,
    halt: &AtomicBool,
    clock: &dyn Clock,
    queue: &mpsc::SyncSender<Received>,
    free: &std::sync::Mutex<mpsc::Receiver<Vec<u8>>>,
) {
    if stream.set_nonblocking(false).is_err() || stream.set_read_timeout(Some(WAKE_EVERY)).is_err()
    {
        return;
    }
    let mut pending: Vec<u8> = Vec::with_capacity(1 << 16);
    let mut buf = vec![0u8; 1 << 16];
    while !halt.load(Ordering::Relaxed) {
        match stream.read(&mut buf) {
            Ok(0) => return,
            Ok(n) => pending.extend_from_slice(&buf[..n]),
            Err(e) if is_timeout(&e) => continue,
            Err(_) => return,
        }
        let mut at = 0;
        while let [_, _, hi, lo, ..] = pending[at..] {
            let version = u16::from_be_bytes([pending[at], pending[at + 1]]);
            let len = usize::from(u16::from_be_bytes([hi, lo]));
            let framed = version == 10 && len >= 16;
            let len = if framed { len } else { pending.len() - at };
            if pending.len() - at < len {
                break;
            }
            let mut message = buffer(free);
            message.extend_from_slice(&pending[at..at + len]);
            at += len;
            if queue
                .send(Received::Message(from, clock.now(), message))
                .is_err()
                || !framed
            {
                // Not IPFIX: the decoder names what is wrong; the rest of
                // the stream cannot be framed.
                return;
            }
        }
        pending.drain(..at);
    }
}

//! [`IpfixSink`]: each closed window's flow records exported as IPFIX over
//! UDP or TCP, to the collectors people already run.
//!
//! An export is a copy for other tools, not the log store: a collector
//! that is down does not stop vpcflow. Over UDP nothing can tell; over TCP
//! a window whose session breaks is said (with how many of its records
//! were not sent) and the next window connects again.

use std::io::{self, Write};
use std::net::{SocketAddr, TcpStream, ToSocketAddrs, UdpSocket};
use std::time::Duration;

use vpcflow_core::aggregate::ClosedWindow;
use vpcflow_core::record::{RecordBody, TcpFlag};
use vpcflow_core::{Action, Direction, Topology};
use vpcflow_flowexport::{IpfixEncoder, IpfixRecord};
use vpcflow_wire::TcpFlags;

use crate::driver::{Sink, SinkError};

/// IPFIX messages stay within this many bytes (an Ethernet MTU less the
/// IP and UDP headers, with room for tunnels).
pub const IPFIX_MTU: usize = 1_400;

/// IPFIX messages over TCP stay within this many bytes (the message
/// length field's 16 bits, less room for one more record).
pub const IPFIX_SESSION_MESSAGE: usize = 60_000;

/// How long connecting to a TCP collector may take.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

#[derive(Debug)]
enum Transport {
    Udp(UdpSocket),
    /// The session, while it holds.
    Tcp(SocketAddr, Option<TcpStream>),
}

/// Exports the OK records of each closed window as IPFIX (NODATA and
/// SKIPDATA records have no addresses to export).
#[derive(Debug)]
pub struct IpfixSink {
    transport: Transport,
    encoder: IpfixEncoder,
    /// Records exported.
    pub records: u64,
    /// Records of windows whose TCP session broke or could not connect
    /// (those of a broken one may have been sent in part).
    pub unsent: u64,
}

impl IpfixSink {
    /// A sink exporting to `url`: `ipfix://HOST:PORT` (UDP) or
    /// `ipfix+tcp://HOST:PORT` (TCP, connected now, so that a collector
    /// that is not there is said at once).
    pub fn connect(url: &str) -> io::Result<IpfixSink> {
        let bad = |why: String| io::Error::new(io::ErrorKind::InvalidInput, why);
        let (target, tcp) = match (
            url.strip_prefix("ipfix://"),
            url.strip_prefix("ipfix+tcp://"),
        ) {
            (Some(t), _) => (t, false),
            (_, Some(t)) => (t, true),
            _ => {
                return Err(bad(format!(
                    "{url}: expected ipfix://HOST:PORT (IPFIX over UDP) or ipfix+tcp://HOST:PORT"
                )));
            }
        };
        let to: SocketAddr = target
            .to_socket_addrs()
            .map_err(|e| bad(format!("{url}: {e}")))?
            .next()
            .ok_or_else(|| bad(format!("{url}: no address")))?;
        if tcp {
            let stream = TcpStream::connect_timeout(&to, CONNECT_TIMEOUT)?;
            return Ok(IpfixSink {
                transport: Transport::Tcp(to, Some(stream)),
                encoder: IpfixEncoder::for_session(0, IPFIX_SESSION_MESSAGE),
                records: 0,
                unsent: 0,
            });
        }
        let local: SocketAddr = if to.is_ipv6() {
            "[::]:0".parse().map_err(|_| bad("[::]:0".into()))?
        } else {
            "0.0.0.0:0".parse().map_err(|_| bad("0.0.0.0:0".into()))?
        };
        let socket = UdpSocket::bind(local)?;
        socket.connect(to)?;
        Ok(IpfixSink {
            transport: Transport::Udp(socket),
            encoder: IpfixEncoder::new(0, IPFIX_MTU),
            records: 0,
            unsent: 0,
        })
    }
}

/// Flags standing for a record's TCP state (records keep the state, not
/// the flags): SYN for `syn_sent`, ACK for `established`, FIN and ACK for
/// `time-wait`.
fn flags_of(t: Option<TcpFlag>) -> u8 {
    match t {
        None => 0,
        Some(TcpFlag::SynSent) => TcpFlags::SYN,
        Some(TcpFlag::Established) => TcpFlags::ACK,
        Some(TcpFlag::TimeWait) => TcpFlags::FIN | TcpFlags::ACK,
    }
}

impl Sink for IpfixSink {
    fn write(
        &mut self,
        topology: &Topology,
        window: &ClosedWindow,
        _partial: bool,
    ) -> Result<(), SinkError> {
        let records: Vec<IpfixRecord<'_>> = window
            .records
            .iter()
            .filter_map(|r| {
                let RecordBody::Flow(f) = &r.body else {
                    return None;
                };
                let rule = topology.rules.get(f.rule);
                Some(IpfixRecord {
                    src: f.tuple.src,
                    dst: f.tuple.dst,
                    src_port: f.tuple.src_port,
                    dst_port: f.tuple.dst_port,
                    protocol: f.tuple.protocol.0,
                    tcp_flags: flags_of(f.tcp_flag),
                    packets: f.packets,
                    bytes: f.bytes,
                    start: r.start,
                    end: r.end,
                    ingress: f.direction == Direction::Ingress,
                    accepted: f.action == Action::Accept,
                    interface_id: &topology.ports[r.port as usize].id,
                    flow_log_id: &topology.flow_logs[r.flow_log as usize].id,
                    log_status: r.status().as_str(),
                    decided_by: rule.map_or("-", |i| i.stage.as_str()),
                    policy_id: rule.map_or("-", |i| i.owner.as_str()),
                    rule_id: rule.map_or("-", |i| i.id.as_str()),
                })
            })
            .collect();
        let export = u32::try_from(window.end).unwrap_or(u32::MAX);
        match &mut self.transport {
            Transport::Udp(socket) => {
                let sent = self
                    .encoder
                    .encode(export, &records, &mut |m| socket.send(m).map(|_| ()));
                match sent {
                    Ok(()) => {}
                    // A connected UDP socket hears of an earlier datagram's
                    // ICMP port unreachable: the collector is not (yet) up.
                    Err(e) if e.kind() == io::ErrorKind::ConnectionRefused => {}
                    Err(e) => return Err(Box::new(e)),
                }
            }
            Transport::Tcp(to, session) => {
                if session.is_none() {
                    match TcpStream::connect_timeout(to, CONNECT_TIMEOUT) {
                        Ok(s) => {
                            *session = Some(s);
                            self.encoder.new_session();
                        }
                        Err(e) => {
                            self.unsent += records.len() as u64;
                            eprintln!(
                                "vpcflow: warning: IPFIX collector {to}: {e}; {} records of the window at {} not exported",
                                records.len(),
                                window.start
                            );
                            return Ok(());
                        }
                    }
                }
                let mut sent = 0usize;
                let result = match session {
                    Some(stream) => self.encoder.encode(export, &records, &mut |m| {
                        stream.write_all(m)?;
                        sent += 1;
                        Ok::<(), io::Error>(())
                    }),
                    None => Ok(()),
                };
                if let Err(e) = result {
                    *session = None;
                    eprintln!(
                        "vpcflow: warning: IPFIX collector {to}: {e}; the window at {} was cut after {sent} messages, the next window connects again",
                        window.start
                    );
                    self.unsent += records.len() as u64;
                    return Ok(());
                }
            }
        }
        self.records += records.len() as u64;
        Ok(())
    }
}

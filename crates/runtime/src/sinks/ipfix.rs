//! [`IpfixSink`]: each closed window's flow records exported as IPFIX over
//! UDP, to the collectors people already run.

use std::io;
use std::net::{SocketAddr, ToSocketAddrs, UdpSocket};

use vpcflow_core::aggregate::ClosedWindow;
use vpcflow_core::record::{RecordBody, TcpFlag};
use vpcflow_core::{Action, Direction, Topology};
use vpcflow_flowexport::{IpfixEncoder, IpfixRecord};
use vpcflow_wire::TcpFlags;

use crate::driver::{Sink, SinkError};

/// IPFIX messages stay within this many bytes (an Ethernet MTU less the
/// IP and UDP headers, with room for tunnels).
pub const IPFIX_MTU: usize = 1_400;

/// Exports the OK records of each closed window as IPFIX over UDP (NODATA
/// and SKIPDATA records have no addresses to export).
#[derive(Debug)]
pub struct IpfixSink {
    socket: UdpSocket,
    encoder: IpfixEncoder,
    /// Records exported.
    pub records: u64,
}

impl IpfixSink {
    /// A sink exporting to `url`, `ipfix://HOST:PORT` (UDP).
    pub fn connect(url: &str) -> io::Result<IpfixSink> {
        let bad = |why: String| io::Error::new(io::ErrorKind::InvalidInput, why);
        let Some(target) = url.strip_prefix("ipfix://") else {
            return Err(bad(format!(
                "{url}: expected ipfix://HOST:PORT (IPFIX over UDP)"
            )));
        };
        let to: SocketAddr = target
            .to_socket_addrs()
            .map_err(|e| bad(format!("{url}: {e}")))?
            .next()
            .ok_or_else(|| bad(format!("{url}: no address")))?;
        let local: SocketAddr = if to.is_ipv6() {
            "[::]:0".parse().map_err(|_| bad("[::]:0".into()))?
        } else {
            "0.0.0.0:0".parse().map_err(|_| bad("0.0.0.0:0".into()))?
        };
        let socket = UdpSocket::bind(local)?;
        socket.connect(to)?;
        Ok(IpfixSink {
            socket,
            encoder: IpfixEncoder::new(0, IPFIX_MTU),
            records: 0,
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
        let socket = &self.socket;
        self.encoder
            .encode(export, &records, &mut |m| socket.send(m).map(|_| ()))
            .map_err(|e| Box::new(e) as SinkError)?;
        self.records += records.len() as u64;
        Ok(())
    }
}

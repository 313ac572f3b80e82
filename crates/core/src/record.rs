//! Flow records: what a closed capture window produces (SPEC §2).

use crate::flow::{Action, Direction, FiveTuple};
use crate::policy::RuleRef;

/// The seed's `log-status`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum LogStatus {
    /// Data logged normally.
    Ok = 0,
    /// No traffic passed the flow log's filter in the window.
    NoData = 1,
    /// Records over the cap were discarded; this record carries their totals.
    SkipData = 2,
}

impl LogStatus {
    /// The seed's spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            LogStatus::Ok => "OK",
            LogStatus::NoData => "NODATA",
            LogStatus::SkipData => "SKIPDATA",
        }
    }
    /// Every status, in index order.
    pub const ALL: [LogStatus; 3] = [LogStatus::Ok, LogStatus::NoData, LogStatus::SkipData];
}

/// The seed's `tcp-flag` (v2).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum TcpFlag {
    /// Every packet of the record had SYN (and none FIN or RST).
    SynSent,
    /// Anything else without FIN or RST.
    Established,
    /// Some packet had FIN or RST.
    TimeWait,
}

impl TcpFlag {
    /// Derives the state from the OR and the AND of the packets' flags.
    pub fn from_flags(any: u8, all: u8) -> TcpFlag {
        use vpcflow_wire::TcpFlags as F;
        if any & (F::FIN | F::RST) != 0 {
            TcpFlag::TimeWait
        } else if all & F::SYN != 0 {
            TcpFlag::SynSent
        } else {
            TcpFlag::Established
        }
    }
    /// The seed's spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            TcpFlag::SynSent => "syn_sent",
            TcpFlag::Established => "established",
            TcpFlag::TimeWait => "time-wait",
        }
    }
}

/// The traffic fields of an OK record.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FlowFields {
    /// Addresses, ports, protocol.
    pub tuple: FiveTuple,
    /// Packets in the window.
    pub packets: u64,
    /// Layer-3 bytes in the window.
    pub bytes: u64,
    /// ACCEPT or REJECT.
    pub action: Action,
    /// Direction on the port.
    pub direction: Direction,
    /// TCP state; `None` for other protocols.
    pub tcp_flag: Option<TcpFlag>,
    /// The rule that decided the action (extension field).
    pub rule: RuleRef,
    /// For ACCEPT, the other check's allowing rule (extension field;
    /// [`RuleRef::NONE`] when there was no other check).
    pub passed: RuleRef,
    /// 1 when the packets and bytes were counted; N when they are
    /// estimates from sampling 1 packet in N (the largest N of the
    /// record's samples).
    pub sampling_rate: u32,
    /// TCP flags seen, as the other big cloud's flow logs give them
    /// (`tcp-flags`): FIN 1, SYN 2, RST 4, and ACK 16 only with a SYN-ACK
    /// packet; 0 for other protocols.
    pub tcp_flags: u8,
}

/// What a record says.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RecordBody {
    /// `OK`: one flow.
    Flow(FlowFields),
    /// `NODATA`: nothing passed the filter.
    NoData,
    /// `SKIPDATA`: the totals of what the cap discarded.
    SkipData {
        /// Packets discarded.
        packets: u64,
        /// Bytes discarded.
        bytes: u64,
    },
}

/// One flow record of one flow log, port and window.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FlowRecord {
    /// Index into [`Topology::flow_logs`](crate::Topology).
    pub flow_log: u32,
    /// Index into [`Topology::ports`](crate::Topology).
    pub port: u32,
    /// Window start, Unix seconds.
    pub start: u64,
    /// Window end, Unix seconds.
    pub end: u64,
    /// The record's content.
    pub body: RecordBody,
}

impl FlowRecord {
    /// The record's `log-status`.
    pub fn status(&self) -> LogStatus {
        match self.body {
            RecordBody::Flow(_) => LogStatus::Ok,
            RecordBody::NoData => LogStatus::NoData,
            RecordBody::SkipData { .. } => LogStatus::SkipData,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use vpcflow_wire::TcpFlags as F;

    #[test]
    fn tcp_flag_rules_of_spec_section_2() {
        assert_eq!(TcpFlag::from_flags(F::SYN, F::SYN), TcpFlag::SynSent);
        assert_eq!(
            TcpFlag::from_flags(F::SYN | F::ACK, F::SYN),
            TcpFlag::SynSent
        );
        assert_eq!(
            TcpFlag::from_flags(F::SYN | F::ACK, 0),
            TcpFlag::Established
        );
        assert_eq!(
            TcpFlag::from_flags(F::ACK | F::FIN, F::ACK),
            TcpFlag::TimeWait
        );
        assert_eq!(
            TcpFlag::from_flags(F::SYN | F::RST, F::SYN),
            TcpFlag::TimeWait
        );
    }
}

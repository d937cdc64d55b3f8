//! Sent-packet tracking: every ack-eliciting packet in flight, keyed by
//! packet number, with what it carried so that an acknowledgement or a loss
//! can be applied to the stream, the flow-control state and the ack state.
//! Pure acknowledgements are not tracked (they are never acknowledged).

use alloc::collections::BTreeMap;
use smoltcp::time::Instant;

/// Most packets tracked at once (a second cap besides the congestion window).
pub const MAX_SENT_PACKETS: usize = 1024;

/// What one ack-eliciting packet carried.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SentPacket {
    /// When it was sent.
    pub time_sent: Instant,
    /// Datagram size in bytes.
    pub size: u16,
    /// Stream range `(offset, len)` it carried.
    pub stream: Option<(u64, u16)>,
    /// It carried a MAX_DATA frame.
    pub max_data: bool,
    /// Largest packet number it acknowledged (for ack-of-ack pruning).
    pub largest_ack: Option<u32>,
}

/// Packets in flight, ordered by packet number.
#[derive(Debug, Default)]
pub struct SentPackets {
    map: BTreeMap<u32, SentPacket>,
    bytes_in_flight: u64,
}

impl SentPackets {
    /// Nothing in flight.
    pub const fn new() -> Self {
        SentPackets {
            map: BTreeMap::new(),
            bytes_in_flight: 0,
        }
    }

    /// Track packet `pn`.
    pub fn insert(&mut self, pn: u32, p: SentPacket) {
        self.bytes_in_flight = self.bytes_in_flight.saturating_add(u64::from(p.size));
        if let Some(old) = self.map.insert(pn, p) {
            self.bytes_in_flight = self.bytes_in_flight.saturating_sub(u64::from(old.size));
        }
    }

    /// Stop tracking `pn` (acknowledged or lost).
    pub fn remove(&mut self, pn: u32) -> Option<SentPacket> {
        let p = self.map.remove(&pn)?;
        self.bytes_in_flight = self.bytes_in_flight.saturating_sub(u64::from(p.size));
        Some(p)
    }

    /// Tracked packet numbers in `lo..=hi`, in order.
    pub fn numbers_in(&self, lo: u32, hi: u32) -> impl Iterator<Item = u32> + '_ {
        // BTreeMap::range panics on lo > hi: ask for nothing then.
        let (lo, hi) = if lo <= hi { (lo, hi) } else { (1, 0) };
        self.map
            .range(lo..)
            .take_while(move |(pn, _)| **pn <= hi)
            .map(|(pn, _)| *pn)
    }

    /// The highest tracked packet number and its packet.
    pub fn newest(&self) -> Option<(u32, &SentPacket)> {
        self.map.iter().next_back().map(|(pn, p)| (*pn, p))
    }

    /// Stream ranges of the (at most) `n` newest packets that carried stream data.
    pub fn newest_streams(&self, n: usize) -> impl Iterator<Item = (u64, u16)> + '_ {
        self.map.values().rev().filter_map(|p| p.stream).take(n)
    }

    /// The lowest tracked packet number and its packet.
    pub fn oldest(&self) -> Option<(u32, &SentPacket)> {
        self.map.iter().next().map(|(pn, p)| (*pn, p))
    }

    /// Tracked packets below `pn`, in order.
    pub fn below(&self, pn: u32) -> impl Iterator<Item = (u32, &SentPacket)> + '_ {
        self.map.range(..pn).map(|(k, v)| (*k, v))
    }

    /// Bytes of all tracked packets.
    pub fn bytes_in_flight(&self) -> u64 {
        self.bytes_in_flight
    }

    /// Number of tracked packets.
    pub fn len(&self) -> usize {
        self.map.len()
    }

    /// True when nothing is in flight.
    pub fn is_empty(&self) -> bool {
        self.map.is_empty()
    }

    /// Remove and return every tracked packet (RTO: all declared lost).
    pub fn drain_all(&mut self) -> impl Iterator<Item = (u32, SentPacket)> {
        self.bytes_in_flight = 0;
        core::mem::take(&mut self.map).into_iter()
    }
}

//! A simulated Ethernet segment for host tests: N stations on one in-memory
//! hub, each a smoltcp `phy::Device`, with seeded loss, duplication,
//! reordering and delay, an optional frame filter, and a pcap of everything
//! put on the wire (what a hub port's `filter-dump` would see in QEMU).
//!
//! Time is simulated: a frame sent at `t` is delivered no earlier than
//! `t + delay`; a device only hands out frames whose delivery time has come,
//! judged by the timestamp smoltcp passes to `receive`. The same seed gives the
//! same run, to the frame.

use rand_chacha::rand_core::{RngCore, SeedableRng};
use rand_chacha::ChaCha8Rng;
use smoltcp::phy::{self, Device, DeviceCapabilities, Medium};
use smoltcp::time::{Duration, Instant};
use std::cell::RefCell;
use std::collections::VecDeque;
use std::rc::Rc;

use crate::link::TimedQueue;

/// Largest Ethernet frame (without FCS) a station sends or receives.
pub const MTU: usize = 1514;
/// Cap on frames waiting on the wire (all stations); more are dropped (tail drop).
pub const MAX_IN_FLIGHT: usize = 4096;
/// Cap on delivered-but-unread frames per station (a NIC's receive ring).
pub const MAX_INBOX: usize = 256;

/// Impairments of the segment. Probabilities are in `[0, 1]` and apply to each
/// copy of a frame on its way to each receiving station.
#[derive(Clone, Debug)]
pub struct WireConfig {
    /// One-way delay of every frame.
    pub delay: Duration,
    /// Probability that a copy is lost.
    pub loss: f64,
    /// Probability that a copy is delivered twice.
    pub duplicate: f64,
    /// Probability that a copy gets an extra random delay of up to `reorder_delay`
    /// (so later frames overtake it).
    pub reorder: f64,
    pub reorder_delay: Duration,
}

impl Default for WireConfig {
    fn default() -> Self {
        WireConfig {
            delay: Duration::from_micros(100),
            loss: 0.0,
            duplicate: 0.0,
            reorder: 0.0,
            reorder_delay: Duration::from_millis(5),
        }
    }
}

/// Counters of what the wire did.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct WireStats {
    pub sent: u64,
    pub delivered: u64,
    pub lost: u64,
    pub duplicated: u64,
    pub reordered: u64,
    pub filtered: u64,
    pub dropped_full: u64,
}

/// Decides whether a frame from `src` station may cross the wire (`false` drops it).
pub type Filter = Box<dyn FnMut(usize, &[u8]) -> bool>;

struct Segment {
    cfg: WireConfig,
    rng: ChaCha8Rng,
    /// Frames on the wire: (destination station, frame), by delivery time.
    wire: TimedQueue<(usize, Vec<u8>)>,
    inboxes: Vec<VecDeque<Vec<u8>>>,
    /// Stations that are switched off: they neither send nor receive.
    down: Vec<bool>,
    filter: Option<Filter>,
    pcap: Option<Vec<u8>>,
    stats: WireStats,
}

impl Segment {
    fn chance(&mut self, p: f64) -> bool {
        p > 0.0 && (self.rng.next_u64() as f64 / u64::MAX as f64) < p
    }

    fn advance(&mut self, now: Instant) {
        while let Some((dst, frame)) = self.wire.pop_due(now) {
            if self.down[dst] {
                continue;
            }
            let inbox = &mut self.inboxes[dst];
            if inbox.len() >= MAX_INBOX {
                self.stats.dropped_full += 1;
            } else {
                inbox.push_back(frame);
                self.stats.delivered += 1;
            }
        }
    }

    fn send(&mut self, now: Instant, src: usize, frame: Vec<u8>) {
        if self.down[src] {
            return;
        }
        self.stats.sent += 1;
        if let Some(pcap) = &mut self.pcap {
            pcap_record(pcap, now, &frame);
        }
        if let Some(filter) = &mut self.filter {
            if !filter(src, &frame) {
                self.stats.filtered += 1;
                return;
            }
        }
        for dst in 0..self.inboxes.len() {
            if dst == src {
                continue;
            }
            if self.chance(self.cfg.loss) {
                self.stats.lost += 1;
                continue;
            }
            let copies = if self.chance(self.cfg.duplicate) {
                self.stats.duplicated += 1;
                2
            } else {
                1
            };
            for _ in 0..copies {
                let mut at = now + self.cfg.delay;
                if self.chance(self.cfg.reorder) {
                    self.stats.reordered += 1;
                    let max = self.cfg.reorder_delay.total_micros().max(1);
                    at += Duration::from_micros(self.rng.next_u64() % max);
                }
                if self.wire.len() >= MAX_IN_FLIGHT {
                    self.stats.dropped_full += 1;
                    continue;
                }
                self.wire.push(at, (dst, frame.clone()));
            }
        }
    }
}

/// The shared segment; cheap to clone (all clones are the same wire).
#[derive(Clone)]
pub struct Wire(Rc<RefCell<Segment>>);

impl Wire {
    /// A segment with `stations` ports, impairments `cfg`, randomness from `seed`.
    pub fn new(stations: usize, cfg: WireConfig, seed: u64) -> Self {
        Wire(Rc::new(RefCell::new(Segment {
            cfg,
            rng: ChaCha8Rng::seed_from_u64(seed),
            wire: TimedQueue::default(),
            inboxes: (0..stations).map(|_| VecDeque::new()).collect(),
            down: vec![false; stations],
            filter: None,
            pcap: None,
            stats: WireStats::default(),
        })))
    }

    /// The device for port `station`.
    pub fn device(&self, station: usize) -> SimDevice {
        assert!(station < self.0.borrow().inboxes.len(), "no such station");
        SimDevice {
            wire: self.clone(),
            station,
        }
    }

    /// Changes the impairments from now on.
    pub fn set_config(&self, cfg: WireConfig) {
        self.0.borrow_mut().cfg = cfg;
    }

    /// Installs a filter that may drop frames (e.g. one UDP port).
    pub fn set_filter(&self, f: Option<Filter>) {
        self.0.borrow_mut().filter = f;
    }

    /// Switches a station off (its frames vanish, nothing reaches it) or on.
    pub fn set_down(&self, station: usize, down: bool) {
        let mut s = self.0.borrow_mut();
        s.down[station] = down;
        if down {
            s.inboxes[station].clear();
        }
    }

    /// Starts recording every frame put on the wire.
    pub fn start_pcap(&self) {
        let mut v = Vec::new();
        pcap_header(&mut v);
        self.0.borrow_mut().pcap = Some(v);
    }

    /// The pcap recorded so far (Ethernet link type; Wireshark reads it).
    pub fn pcap(&self) -> Option<Vec<u8>> {
        self.0.borrow().pcap.clone()
    }

    /// When the next frame in flight becomes deliverable.
    pub fn next_delivery(&self) -> Option<Instant> {
        self.0.borrow().wire.next_time()
    }

    /// Whether any station has a delivered frame it has not read yet.
    pub fn has_pending_rx(&self, now: Instant) -> bool {
        let mut s = self.0.borrow_mut();
        s.advance(now);
        s.inboxes.iter().any(|q| !q.is_empty())
    }

    pub fn stats(&self) -> WireStats {
        self.0.borrow().stats.clone()
    }
}

/// One station's NIC on the segment.
pub struct SimDevice {
    wire: Wire,
    station: usize,
}

impl SimDevice {
    pub fn station(&self) -> usize {
        self.station
    }
}

pub struct SimRxToken(Vec<u8>);
pub struct SimTxToken<'a> {
    dev: &'a mut SimDevice,
    now: Instant,
}

impl phy::RxToken for SimRxToken {
    fn consume<R, F: FnOnce(&[u8]) -> R>(self, f: F) -> R {
        f(&self.0)
    }
}

impl phy::TxToken for SimTxToken<'_> {
    fn consume<R, F: FnOnce(&mut [u8]) -> R>(self, len: usize, f: F) -> R {
        let mut buf = vec![0u8; len.min(MTU)];
        let r = f(&mut buf);
        self.dev
            .wire
            .0
            .borrow_mut()
            .send(self.now, self.dev.station, buf);
        r
    }
}

impl Device for SimDevice {
    type RxToken<'a> = SimRxToken;
    type TxToken<'a> = SimTxToken<'a>;

    fn receive(&mut self, now: Instant) -> Option<(Self::RxToken<'_>, Self::TxToken<'_>)> {
        let frame = {
            let mut s = self.wire.0.borrow_mut();
            s.advance(now);
            s.inboxes[self.station].pop_front()?
        };
        Some((SimRxToken(frame), SimTxToken { dev: self, now }))
    }

    fn transmit(&mut self, now: Instant) -> Option<Self::TxToken<'_>> {
        Some(SimTxToken { dev: self, now })
    }

    fn capabilities(&self) -> DeviceCapabilities {
        let mut caps = DeviceCapabilities::default();
        caps.medium = Medium::Ethernet;
        caps.max_transmission_unit = MTU;
        caps.max_burst_size = None;
        caps
    }
}

fn pcap_header(v: &mut Vec<u8>) {
    v.extend_from_slice(&0xa1b2_c3d4u32.to_le_bytes()); // magic, microsecond timestamps
    v.extend_from_slice(&2u16.to_le_bytes());
    v.extend_from_slice(&4u16.to_le_bytes());
    v.extend_from_slice(&0i32.to_le_bytes()); // thiszone
    v.extend_from_slice(&0u32.to_le_bytes()); // sigfigs
    v.extend_from_slice(&65535u32.to_le_bytes()); // snaplen
    v.extend_from_slice(&1u32.to_le_bytes()); // LINKTYPE_ETHERNET
}

fn pcap_record(v: &mut Vec<u8>, at: Instant, frame: &[u8]) {
    let us = at.total_micros().max(0) as u64;
    v.extend_from_slice(&((us / 1_000_000) as u32).to_le_bytes());
    v.extend_from_slice(&((us % 1_000_000) as u32).to_le_bytes());
    v.extend_from_slice(&(frame.len() as u32).to_le_bytes());
    v.extend_from_slice(&(frame.len() as u32).to_le_bytes());
    v.extend_from_slice(frame);
}

#[cfg(test)]
mod tests {
    use super::*;
    use smoltcp::phy::{RxToken, TxToken};

    fn send(dev: &mut SimDevice, now: Instant, payload: &[u8]) {
        let tx = dev.transmit(now).unwrap();
        tx.consume(payload.len(), |b| b.copy_from_slice(payload));
    }

    fn recv(dev: &mut SimDevice, now: Instant) -> Option<Vec<u8>> {
        dev.receive(now).map(|(rx, _)| rx.consume(|b| b.to_vec()))
    }

    #[test]
    fn frames_reach_every_other_station_after_the_delay() {
        let wire = Wire::new(3, WireConfig::default(), 1);
        let (mut a, mut b, mut c) = (wire.device(0), wire.device(1), wire.device(2));
        let t0 = Instant::from_millis(10);
        send(&mut a, t0, b"hello");
        assert_eq!(recv(&mut b, t0), None, "not before the delay");
        let t1 = t0 + WireConfig::default().delay;
        assert_eq!(recv(&mut b, t1).as_deref(), Some(&b"hello"[..]));
        assert_eq!(recv(&mut c, t1).as_deref(), Some(&b"hello"[..]));
        assert_eq!(recv(&mut a, t1), None, "a hub does not echo to the sender");
    }

    #[test]
    fn loss_rate_is_roughly_what_was_asked_and_seeded() {
        let cfg = WireConfig {
            loss: 0.1,
            ..WireConfig::default()
        };
        let run = |seed| {
            let wire = Wire::new(2, cfg.clone(), seed);
            let (mut a, mut b) = (wire.device(0), wire.device(1));
            let mut got = 0;
            for i in 0..10_000u32 {
                let t = Instant::from_micros(i as i64 * 10);
                send(&mut a, t, &i.to_le_bytes());
                while recv(&mut b, t + Duration::from_millis(1)).is_some() {
                    got += 1;
                }
            }
            (got, wire.stats())
        };
        let (got, stats) = run(7);
        assert!((8_800..=9_200).contains(&got), "{got}");
        assert_eq!(stats.lost + stats.delivered, 10_000);
        assert_eq!(run(7).0, got, "same seed, same run");
    }

    #[test]
    fn reordering_lets_later_frames_overtake() {
        let cfg = WireConfig {
            reorder: 0.5,
            reorder_delay: Duration::from_millis(5),
            ..WireConfig::default()
        };
        let wire = Wire::new(2, cfg, 3);
        let (mut a, mut b) = (wire.device(0), wire.device(1));
        for i in 0..100u8 {
            send(&mut a, Instant::from_micros(i as i64), &[i]);
        }
        let mut order = Vec::new();
        while let Some(f) = recv(&mut b, Instant::from_secs(1)) {
            order.push(f[0]);
        }
        assert_eq!(order.len(), 100);
        assert!(order.windows(2).any(|w| w[0] > w[1]), "something overtook");
    }

    #[test]
    fn filter_and_down_stations_drop_frames() {
        let wire = Wire::new(2, WireConfig::default(), 1);
        wire.set_filter(Some(Box::new(|_, f: &[u8]| f[0] != 0xff)));
        let (mut a, mut b) = (wire.device(0), wire.device(1));
        send(&mut a, Instant::ZERO, &[0xff]);
        send(&mut a, Instant::ZERO, &[0x01]);
        assert_eq!(
            recv(&mut b, Instant::from_secs(1)).as_deref(),
            Some(&[0x01][..])
        );
        assert_eq!(recv(&mut b, Instant::from_secs(1)), None);
        wire.set_down(1, true);
        send(&mut a, Instant::from_secs(1), &[0x02]);
        assert_eq!(recv(&mut b, Instant::from_secs(2)), None);
        assert_eq!(wire.stats().filtered, 1);
    }

    #[test]
    fn pcap_has_header_and_records() {
        let wire = Wire::new(2, WireConfig::default(), 1);
        wire.start_pcap();
        let mut a = wire.device(0);
        send(&mut a, Instant::from_millis(1500), &[1, 2, 3]);
        let p = wire.pcap().unwrap();
        assert_eq!(&p[..4], &0xa1b2_c3d4u32.to_le_bytes());
        assert_eq!(p.len(), 24 + 16 + 3);
        assert_eq!(&p[24..28], &1u32.to_le_bytes(), "seconds");
        assert_eq!(&p[28..32], &500_000u32.to_le_bytes(), "microseconds");
    }
}
